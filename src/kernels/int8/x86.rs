//! AVX2 and AVX-512 bodies of the INT8 quantizer and dequantizer. The rules every x86 body follows
//! (bit-identical to the portable code, `unsafe` only for the CPU features) are in
//! [`crate::kernels::x86`], with the pipelined loop and the stores they share.
#![allow(clippy::missing_safety_doc)]

use crate::kernels::x86::{pipelined_groups, prefetch, SymmetricBody};

/// AVX-512 (F, BW, VL) bodies: 16 lanes, masked loads and stores for the tails.
pub(crate) mod avx512 {
    use super::{pipelined_groups, prefetch};
    use crate::kernels::x86::avx512::{absmax_bits_body, store_f32_blocks, tail_mask, NextAbsmax};
    use std::arch::x86_64::*;

    /// INT8 codes of one group with scale `s != 0` (all of `x`; `out.len() >= x.len()`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn int8_quant(x: &[f32], s: f32, out: &mut [i8]) {
        int8_quant_body(x, s, out)
    }

    /// The codes by division (see the module docs), the tail by masked loads and stores.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn int8_quant_body(x: &[f32], s: f32, out: &mut [i8]) {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let code = int8_code(s);
        let mut i = 0;
        while i + 16 <= n {
            let q = code(_mm512_loadu_ps(xp.add(i)));
            _mm_storeu_si128(op.add(i) as *mut __m128i, q);
            i += 16;
        }
        if i < n {
            let k = tail_mask(n - i);
            let q = code(_mm512_maskz_loadu_ps(k, xp.add(i)));
            _mm_mask_storeu_epi8(op.add(i), k, q);
        }
    }

    /// `v -> round_half_even(clamp(v / s, -127, 127))` as 16 bytes, for `s` the absmax / 127 of a
    /// group holding `v` (nonzero).
    ///
    /// The portable code clamps, then rounds. The bounds are integers, so clamping commutes with
    /// rounding: the codes are the rounded quotients clamped, here in the integer lanes (the
    /// narrowing `vpmovsdb` saturates at 127, `max` lifts -128), instead of two float clamps per 16
    /// lanes. The quotients are small, so the conversion is exact: |v / s| <= 127 plus the rounding
    /// of `s`, at most 190.5 even where `s` is a few subnormal steps.
    #[inline(always)]
    unsafe fn int8_code(s: f32) -> impl Fn(__m512) -> __m128i {
        let vs = _mm512_set1_ps(s);
        let minus_127 = _mm_set1_epi8(-127);
        move |v: __m512| {
            let y = _mm512_div_ps(v, vs);
            let k =
                _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
            _mm_max_epi8(_mm512_cvtsepi32_epi8(k), minus_127)
        }
    }

    /// The codes of `x[..64 k]` with scale `s != 0`, and in the same loop the absmax bits of
    /// `next[..64 k]` (the group quantized next), prefetching one cache line of `ahead` per 16 codes:
    /// see [`pipelined_groups`]. With `stream` and `out` 16-byte aligned the codes are written with
    /// non-temporal stores (the caller fences). Returns `64 k` (the tail is the caller's) and
    /// [`NextAbsmax::taken`].
    #[inline(always)]
    unsafe fn int8_quant_fused(
        x: &[f32],
        s: f32,
        out: &mut [i8],
        next: &[f32],
        ahead: &[f32],
        stream: bool,
    ) -> (usize, (usize, u32)) {
        let n = x.len() / 64 * 64;
        assert!(out.len() >= n);
        let mut next_abs = NextAbsmax::new(next, n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let code = int8_code(s);
        let stream = stream && op as usize % 16 == 0;
        let mut i = 0;
        while i < n {
            for k in [0, 16, 32, 48] {
                prefetch(ahead, i + k);
            }
            next_abs.step(i);
            for k in [0, 16, 32, 48] {
                let q = code(_mm512_loadu_ps(xp.add(i + k)));
                let p = op.add(i + k) as *mut __m128i;
                if stream {
                    _mm_stream_si128(p, q);
                } else {
                    _mm_storeu_si128(p, q);
                }
            }
            i += 64;
        }
        (n, next_abs.taken())
    }

    /// `out[i] = q[i] * s` (`out.len() >= q.len()`); `stream`: see [`store_f32_blocks`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn int8_dequant(q: &[i8], s: f32, out: &mut [f32], stream: bool) {
        int8_dequant_body(q, s, out, stream)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn int8_dequant_body(q: &[i8], s: f32, out: &mut [f32], stream: bool) {
        let n = q.len();
        assert!(out.len() >= n);
        let (qp, op) = (q.as_ptr(), out.as_mut_ptr());
        let vs = _mm512_set1_ps(s);
        let block = |i: usize, k: __mmask16| {
            let c = if k == 0xffff {
                _mm_loadu_si128(qp.add(i) as *const __m128i)
            } else {
                _mm_maskz_loadu_epi8(k, qp.add(i))
            };
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c)), vs)
        };
        store_f32_blocks(op, n, stream, block)
    }
    /// INT8 codes and scales of whole rows (`src`: `k * cols` elements, groups of `glen`), in one
    /// function compiled for AVX-512 (no call per group), through [`pipelined_groups`]. Stops and
    /// returns false at the first group whose absmax `accept` rejects (the groups before it are
    /// written). `stream` (the whole output is large, see [`crate::kernels::STREAM_STORES_MIN`]):
    /// the codes are written with non-temporal stores, fenced before this returns.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn int8_quant_rows(
        src: &[f32],
        cols: usize,
        glen: usize,
        dst: &mut [i8],
        scales: &mut [f32],
        stream: bool,
        accept: impl Fn(f32) -> bool,
    ) -> bool {
        let all_accepted =
            pipelined_groups(src, cols, glen, scales, accept, Int8Rows { dst, stream });
        if stream {
            _mm_sfence();
        }
        all_accepted
    }

    /// The INT8 bodies of [`int8_quant_rows`].
    struct Int8Rows<'a> {
        dst: &'a mut [i8],
        stream: bool,
    }

    impl super::SymmetricBody for Int8Rows<'_> {
        const QMAX: f32 = 127.0;

        #[inline(always)]
        unsafe fn absmax_bits(x: &[f32]) -> u32 {
            absmax_bits_body(x)
        }

        type Code = i8;

        #[inline(always)]
        fn dst(&mut self) -> &mut [i8] {
            self.dst
        }

        #[inline(always)]
        unsafe fn codes(
            &mut self,
            x: &[f32],
            s: f32,
            r: std::ops::Range<usize>,
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, u32) {
            let out = &mut self.dst[r];
            let (done, taken) = int8_quant_fused(x, s, out, next, ahead, self.stream);
            int8_quant_body(&x[done..], s, &mut out[done..]);
            taken
        }
    }
}

/// AVX2 bodies: 8 lanes; each function handles the largest multiple of its block and leaves the tail
/// to the portable code (it returns how many elements it did).
pub(crate) mod avx2 {
    use super::{pipelined_groups, prefetch};
    use crate::kernels::x86::avx2::{absmax_bits_body, store_blocks_256, NextAbsmax};
    use std::arch::x86_64::*;

    /// INT8 codes of `x[..32 * k]` with scale `s != 0`; returns `32 * k` (the tail is the caller's).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn int8_quant(x: &[f32], s: f32, out: &mut [i8]) -> usize {
        int8_quant_body(x, s, out, &[], &[]).0
    }

    /// The codes of `x[..32 * k]`, and in the same loop the absmax bits of `next[..32 * k]` (the group
    /// quantized next), prefetching the two cache lines of `ahead` per 32 codes: see
    /// [`pipelined_groups`]. Returns `32 * k` and [`NextAbsmax::taken`].
    #[inline(always)]
    unsafe fn int8_quant_body(
        x: &[f32],
        s: f32,
        out: &mut [i8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, u32)) {
        let n = x.len() / 32 * 32;
        assert!(out.len() >= n);
        let mut next_abs = NextAbsmax::new(next, n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let vs = _mm256_set1_ps(s);
        let minus_127 = _mm256_set1_epi8(-127);
        let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        // The portable code clamps `x / s` to [-127, 127], then rounds. The bounds are integers, so
        // clamping commutes with rounding: the codes are the rounded quotients clamped, here in the
        // integer lanes (the packs saturate at 127, `max` lifts -128), without the two float clamps
        // per 8 lanes. The quotients are small, so `cvtps2dq` and the 16-bit pack are exact: `s` is
        // the absmax / 127 of a group holding `x`, so |x / s| <= 127 plus the rounding of `s`, at most
        // 190.5 even where `s` is a few subnormal steps (it is nonzero here).
        let code = |i: usize| _mm256_cvtps_epi32(_mm256_div_ps(_mm256_loadu_ps(xp.add(i)), vs));
        let mut i = 0;
        while i < n {
            prefetch(ahead, i);
            prefetch(ahead, i + 16);
            next_abs.step(i);
            let ab = _mm256_packs_epi32(code(i), code(i + 8));
            let cd = _mm256_packs_epi32(code(i + 16), code(i + 24));
            let q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), perm);
            let q = _mm256_max_epi8(q, minus_127);
            _mm256_storeu_si256(op.add(i) as *mut __m256i, q);
            i += 32;
        }
        (n, next_abs.taken())
    }

    /// `out[i] = q[i] * s` for a prefix of `q`; returns its length (see [`store_blocks_256`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn int8_dequant(q: &[i8], s: f32, out: &mut [f32], stream: bool) -> usize {
        int8_dequant_body(q, s, out, stream)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn int8_dequant_body(q: &[i8], s: f32, out: &mut [f32], stream: bool) -> usize {
        let n = q.len();
        assert!(out.len() >= n);
        let (qp, op) = (q.as_ptr(), out.as_mut_ptr());
        let vs = _mm256_set1_ps(s);
        let block = |i: usize| {
            let c = _mm256_cvtepi8_epi32(_mm_loadl_epi64(qp.add(i) as *const __m128i));
            _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(c), vs))
        };
        store_blocks_256(op as *mut u8, 4, n, 8, stream, block)
    }
    /// INT8 codes and scales of whole rows (as many as `scales` holds), in one function compiled for
    /// AVX2 (the tails of the groups in portable code), through [`pipelined_groups`]. Stops and
    /// returns false at the first group whose absmax `accept` rejects (the groups before it are
    /// written).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn int8_quant_rows(
        src: &[f32],
        cols: usize,
        glen: usize,
        dst: &mut [i8],
        scales: &mut [f32],
        accept: impl Fn(f32) -> bool,
    ) -> bool {
        pipelined_groups(src, cols, glen, scales, accept, Int8Rows { dst })
    }

    /// The INT8 bodies of [`int8_quant_rows`].
    struct Int8Rows<'a> {
        dst: &'a mut [i8],
    }

    impl super::SymmetricBody for Int8Rows<'_> {
        const QMAX: f32 = 127.0;

        #[inline(always)]
        unsafe fn absmax_bits(x: &[f32]) -> u32 {
            absmax_bits_body(x)
        }

        type Code = i8;

        #[inline(always)]
        fn dst(&mut self) -> &mut [i8] {
            self.dst
        }

        #[inline(always)]
        unsafe fn codes(
            &mut self,
            x: &[f32],
            s: f32,
            r: std::ops::Range<usize>,
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, u32) {
            let out = &mut self.dst[r];
            let (done, taken) = int8_quant_body(x, s, out, next, ahead);
            crate::kernels::int8::quantize_group_fast(&x[done..], s, &mut out[done..]);
            taken
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::int8;
    use crate::kernels::simd::SimdLevel;
    use crate::kernels::x86::testing::{cast_at, large_input, same};
    use crate::kernels::Shape;

    /// The AVX2 INT8 dequantizer streams its stores when the whole output is large (each group's run
    /// then starts with an unaligned block): the same bits as the portable code, nothing written
    /// outside the destination.
    #[test]
    fn streamed_dequantizer_equals_the_portable_path() {
        if !SimdLevel::Avx2.is_available() {
            return;
        }
        let (rows, cols, x) = large_input();
        for group in [0, 128, 100] {
            let shape = Shape::new(rows, cols, group).unwrap();
            let mut scales = vec![0f32; shape.n_groups()];
            let mut q8 = vec![0i8; shape.len()];
            int8::int8_quantize(&x, shape, &mut q8, &mut scales).unwrap();
            let deq = |l| {
                let c =
                    |q: &[i8], d: &mut [f32]| int8::int8_dequantize(q, &scales, shape, d).unwrap();
                cast_at(l, &q8, 7.5f32, c)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            same(deq(SimdLevel::Avx2), deq(SimdLevel::Scalar), "INT8", group);
        }
    }
}
