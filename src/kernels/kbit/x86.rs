//! AVX2 and AVX-512 bodies of the 4-bit quantizer and dequantizer (the k-bit kernels' fast path).
//! The rules every x86 body follows are in [`crate::kernels::x86`], with the pipelined loop and the
//! stores they share.
#![allow(clippy::missing_safety_doc)]

use crate::kernels::x86::{pipelined, prefetch, Group, Pipeline};

/// A level's two bodies of [`pipelined_int4`].
trait Int4Fused {
    /// Minimum and maximum of `x` folded with +0.0 by strict comparisons, and whether it holds a NaN.
    unsafe fn lo_hi_nan(x: &[f32]) -> (f32, f32, bool);
    /// Packed INT4 codes of `x[..32 k]` (the largest multiple of 32) with `(scale != 0, zero)` into
    /// `out[..16 k]` (the even code in the low nibble), and in the same loop the range of
    /// `next[..32 k]` (none when `next` is shorter), prefetching `ahead`: returns `32 k` and how
    /// much of `next` it took with its range.
    unsafe fn quant(
        x: &[f32],
        scale: f32,
        zero: f32,
        out: &mut [u8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, (f32, f32, bool)));
}

/// The 4-bit quantizer on whole rows (as many as `scales` and `zeros` hold), through [`pipelined`]:
/// each group's range is taken by the codes loop of an earlier group. `accept(lo, hi, has_nan)` (the
/// streaming form's check) sees each group's range before any of its codes; on a rejection the loop
/// stops and returns false. Groups start on a byte (an even group length, as the dispatch in `kbit`
/// ensures). Inlined into each level's `int4_quant_rows`, compiled for its features.
#[inline(always)]
unsafe fn pipelined_int4<B: Int4Fused, A: Fn(f32, f32, bool) -> bool>(
    src: &[f32],
    shape: crate::kernels::Shape,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
    accept: Option<&A>,
) -> bool {
    let (cols, glen, gpr) = (shape.cols, shape.group_len(), shape.groups_per_row());
    let row_bytes = crate::kernels::kbit::packed_row_bytes(cols, 4);
    let rows = (scales.len().min(zeros.len()) / gpr).min(dst.len() / row_bytes);
    let mut q = Int4::<B, A> {
        src,
        dst,
        scales,
        zeros,
        row_bytes,
        accept,
        level: std::marker::PhantomData,
    };
    pipelined(src, cols, glen, rows * gpr, &mut q)
}

/// INT4 as a [`Pipeline`], with a level's bodies `B`: see [`pipelined_int4`].
struct Int4<'a, B, A> {
    src: &'a [f32],
    dst: &'a mut [u8],
    scales: &'a mut [f32],
    zeros: &'a mut [u8],
    row_bytes: usize,
    accept: Option<&'a A>,
    level: std::marker::PhantomData<B>,
}

impl<B: Int4Fused, A: Fn(f32, f32, bool) -> bool> Pipeline for Int4<'_, B, A> {
    const LATE: bool = true;
    type Measure = (f32, f32, bool);
    type Params = (f32, f32);

    #[inline(always)]
    unsafe fn measure(&self, x: &[f32]) -> (f32, f32, bool) {
        B::lo_hi_nan(x)
    }

    #[inline(always)]
    fn fold((mut lo, mut hi, mut nan): (f32, f32, bool), rest: &[f32]) -> (f32, f32, bool) {
        for &v in rest {
            lo = if v < lo { v } else { lo };
            hi = if v > hi { v } else { hi };
            nan |= v.is_nan();
        }
        (lo, hi, nan)
    }

    #[inline(always)]
    fn params(&mut self, i: usize, (lo, hi, nan): (f32, f32, bool)) -> Option<(f32, f32)> {
        if self.accept.is_some_and(|accept| !accept(lo, hi, nan)) {
            return None;
        }
        let (scale, zero) = crate::kernels::kbit::asym_params(lo, hi, 4);
        self.scales[i] = scale;
        self.zeros[i] = zero as u8;
        Some((scale, zero))
    }

    #[inline(always)]
    unsafe fn codes(
        &mut self,
        g: &Group,
        p: std::ops::Range<usize>,
        (scale, zero): (f32, f32),
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (f32, f32, bool)) {
        // `p` is the group, or a piece of it at an even offset (so on a byte).
        let b0 = g.row * self.row_bytes + (p.start - g.row_start) / 2;
        let x = &self.src[p.clone()];
        let bytes = &mut self.dst[b0..b0 + p.len().div_ceil(2)];
        let (done, taken) = if scale == 0.0 {
            (0, (0, (0.0, 0.0, false)))
        } else {
            B::quant(x, scale, zero, bytes, next, ahead)
        };
        crate::kernels::kbit::int4_group_tail(x, done, scale, zero, bytes);
        taken
    }
}

/// Folds per-lane minima and maxima with +0.0 by strict comparisons, lane 0 first.
fn fold_lo_hi(l: &[f32], h: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = (0.0f32, 0.0f32);
    for (&a, &b) in l.iter().zip(h) {
        lo = if a < lo { a } else { lo };
        hi = if b > hi { b } else { hi };
    }
    (lo, hi)
}

/// AVX-512 (F, BW, VL) bodies: 16 lanes, masked loads and stores for the tails.
pub(crate) mod avx512 {
    use super::{pipelined_int4, prefetch, Int4Fused};
    use crate::kernels::x86::avx512::{store_f32_blocks, tail_mask};
    use std::arch::x86_64::*;

    /// Minimum and maximum folded with +0.0, by strict comparisons (see `kbit::lo_hi_fast`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn lo_hi(x: &[f32]) -> (f32, f32) {
        lo_hi_body(x)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn lo_hi_body(x: &[f32]) -> (f32, f32) {
        let (lo, hi, _) = lo_hi_nan_body::<false>(x);
        (lo, hi)
    }

    /// `lo_hi_body`, and (with `NAN`) whether `x` holds a NaN: an unordered comparison per pair of
    /// vectors, in the same pass.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn lo_hi_nan_body<const NAN: bool>(x: &[f32]) -> (f32, f32, bool) {
        let p = x.as_ptr();
        let n = x.len();
        let (mut lo0, mut lo1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let (mut hi0, mut hi1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut nan: __mmask16 = 0;
        let mut i = 0;
        while i + 32 <= n {
            let (v0, v1) = (_mm512_loadu_ps(p.add(i)), _mm512_loadu_ps(p.add(i + 16)));
            // min(v, acc) = v < acc ? v : acc; max(v, acc) = v > acc ? v : acc.
            lo0 = _mm512_min_ps(v0, lo0);
            hi0 = _mm512_max_ps(v0, hi0);
            lo1 = _mm512_min_ps(v1, lo1);
            hi1 = _mm512_max_ps(v1, hi1);
            if NAN {
                nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v0, v1);
            }
            i += 32;
        }
        while i < n {
            // Masked-off lanes load +0.0, which never replaces an accumulator (they start at +0.0).
            let v = _mm512_maskz_loadu_ps(tail_mask((n - i).min(16)), p.add(i));
            lo0 = _mm512_min_ps(v, lo0);
            hi0 = _mm512_max_ps(v, hi0);
            if NAN {
                nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            }
            i += 16;
        }
        // Reductions in any order: the values are the minimum and maximum, whatever the order; only
        // the sign of a zero result could differ, and `asym_params` maps both zeros to +0.0.
        let lo = _mm512_reduce_min_ps(_mm512_min_ps(lo1, lo0));
        let hi = _mm512_reduce_max_ps(_mm512_max_ps(hi1, hi0));
        (lo + 0.0, hi + 0.0, nan != 0)
    }

    /// Packed INT4 codes of `x[..32 * k]` (the largest multiple of 32) with `(scale != 0, zero)`, into
    /// `out[..16 * k]`, two codes a byte (the even one in the low nibble), and in the same loop the
    /// range of `next[..32 * k]`, prefetching `ahead` (see [`super::Int4Fused::quant`]).
    #[inline(always)]
    unsafe fn int4_quant_body(
        x: &[f32],
        scale: f32,
        zero: f32,
        out: &mut [u8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, (f32, f32, bool))) {
        let n = x.len() / 32 * 32;
        assert!(out.len() >= n / 2);
        let mut next_range = NextRange::new(next, n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let vs = _mm512_set1_ps(scale);
        let vz = _mm512_set1_epi32(zero as i32);
        let (zeros, fifteen) = (_mm256_setzero_si256(), _mm256_set1_epi8(15));
        // maddubs with bytes (1, 16): even code + 16 * odd code in each 16-bit lane.
        let weights = _mm256_set1_epi16(0x1001);
        // As in the AVX2 body: the codes are round(x / s) + zero clamped to [0, 15] in the integer
        // lanes (the quotients are small, at most 22.5 in magnitude, so the conversion and the
        // saturating narrowing `vpmovsdb` are exact), instead of two float clamps per 16 lanes.
        let codes = |v: __m512| {
            let y = _mm512_div_ps(v, vs);
            let k =
                _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
            _mm512_cvtsepi32_epi8(_mm512_add_epi32(k, vz))
        };
        let mut i = 0;
        while i < n {
            prefetch(ahead, i);
            prefetch(ahead, i + 16);
            next_range.step(i);
            let c0 = codes(_mm512_loadu_ps(xp.add(i)));
            let c1 = codes(_mm512_loadu_ps(xp.add(i + 16)));
            let c = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(c0), c1);
            let c = _mm256_min_epu8(_mm256_max_epi8(c, zeros), fifteen);
            let pairs = _mm256_maddubs_epi16(c, weights);
            _mm_storeu_si128(op.add(i / 2) as *mut __m128i, _mm256_cvtepi16_epi8(pairs));
            i += 32;
        }
        (n, next_range.taken())
    }

    /// A range (minimum and maximum from +0.0, by strict comparisons, and whether a NaN was seen)
    /// taken 32 elements at a time inside another loop, as [`NextAbsmax`].
    struct NextRange {
        p: *const f32,
        n: usize,
        on: bool,
        lo: [__m512; 2],
        hi: [__m512; 2],
        nan: __mmask16,
    }

    impl NextRange {
        /// Over `next[..n]` (`n` a multiple of 32); off when `next` is shorter.
        #[inline(always)]
        unsafe fn new(next: &[f32], n: usize) -> Self {
            let z = _mm512_setzero_ps();
            Self {
                p: next.as_ptr(),
                n,
                on: next.len() >= n && n > 0,
                lo: [z; 2],
                hi: [z; 2],
                nan: 0,
            }
        }

        /// Takes `next[i..i + 32]` in (`i + 32 <= n`).
        #[inline(always)]
        unsafe fn step(&mut self, i: usize) {
            if self.on {
                let (v0, v1) = (
                    _mm512_loadu_ps(self.p.add(i)),
                    _mm512_loadu_ps(self.p.add(i + 16)),
                );
                // min(v, acc) = v < acc ? v : acc: a NaN lane never replaces the accumulator.
                self.lo[0] = _mm512_min_ps(v0, self.lo[0]);
                self.hi[0] = _mm512_max_ps(v0, self.hi[0]);
                self.lo[1] = _mm512_min_ps(v1, self.lo[1]);
                self.hi[1] = _mm512_max_ps(v1, self.hi[1]);
                self.nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v0, v1);
            }
        }

        /// How many elements of `next` were taken (`n`, or 0 when off), and their range.
        #[inline(always)]
        unsafe fn taken(&self) -> (usize, (f32, f32, bool)) {
            if !self.on {
                return (0, (0.0, 0.0, false));
            }
            // In any order, as in `lo_hi_nan_body`: only a zero's sign could differ.
            let lo = _mm512_reduce_min_ps(_mm512_min_ps(self.lo[1], self.lo[0]));
            let hi = _mm512_reduce_max_ps(_mm512_max_ps(self.hi[1], self.hi[0]));
            (self.n, (lo + 0.0, hi + 0.0, self.nan != 0))
        }
    }

    /// `out[..32 * k] = (code - zero) * scale` of the packed INT4 codes `src[..16 * k]`, for the largest
    /// `32 * k <= out.len()`; returns `32 * k`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    /// `stream`: see [`store_f32_blocks`] (only when `out` is 16-byte aligned, so that every block
    /// starts on a byte of `src`).
    pub(crate) unsafe fn int4_dequant(
        src: &[u8],
        scale: f32,
        zero: f32,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        int4_dequant_body(src, scale, zero, out, stream)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn int4_dequant_body(
        src: &[u8],
        scale: f32,
        zero: f32,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        let n = out.len() / 32 * 32;
        assert!(src.len() >= n / 2);
        let (sp, op) = (src.as_ptr(), out.as_mut_ptr());
        let vs = _mm512_set1_ps(scale);
        let vz = _mm512_set1_ps(zero);
        let m = _mm_set1_epi8(0x0f);
        // 16 codes from the 8 bytes at `i / 2` (`i` a multiple of 16, `i + 16 <= n`: never masked,
        // as `n` is a multiple of 32 and the stream starts at 0 when `out` is aligned).
        let block = |i: usize, _: __mmask16| {
            let b = _mm_loadl_epi64(sp.add(i / 2) as *const __m128i);
            let lo = _mm_and_si128(b, m);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), m);
            let f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
            _mm512_mul_ps(_mm512_sub_ps(f, vz), vs)
        };
        store_f32_blocks(op, n, stream && op as usize % 16 == 0, block);
        n
    }

    /// The 4-bit quantizer on whole rows, compiled for AVX-512: [`super::pipelined_int4`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn int4_quant_rows<A: Fn(f32, f32, bool) -> bool>(
        src: &[f32],
        shape: crate::kernels::Shape,
        dst: &mut [u8],
        scales: &mut [f32],
        zeros: &mut [u8],
        accept: Option<&A>,
    ) -> bool {
        pipelined_int4::<Fused, A>(src, shape, dst, scales, zeros, accept)
    }

    /// The AVX-512 bodies of [`super::pipelined_int4`].
    struct Fused;

    impl Int4Fused for Fused {
        #[inline(always)]
        unsafe fn lo_hi_nan(x: &[f32]) -> (f32, f32, bool) {
            lo_hi_nan_body::<true>(x)
        }
        #[inline(always)]
        unsafe fn quant(
            x: &[f32],
            scale: f32,
            zero: f32,
            out: &mut [u8],
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, (usize, (f32, f32, bool))) {
            int4_quant_body(x, scale, zero, out, next, ahead)
        }
    }
}

/// AVX2 bodies: 8 lanes; each function handles the largest multiple of its block and leaves the tail
/// to the portable code (it returns how many elements it did).
pub(crate) mod avx2 {
    use super::{pipelined_int4, prefetch, Int4Fused};
    use crate::kernels::x86::avx2::store_blocks_256;
    use std::arch::x86_64::*;

    /// Minimum and maximum folded with +0.0, by strict comparisons (see `kbit::lo_hi_fast`).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn lo_hi(x: &[f32]) -> (f32, f32) {
        lo_hi_body(x)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn lo_hi_body(x: &[f32]) -> (f32, f32) {
        let (lo, hi, _) = lo_hi_nan_body::<false>(x);
        (lo, hi)
    }

    /// `lo_hi_body`, and (with `NAN`) whether `x` holds a NaN: an unordered comparison per pair of
    /// vectors, in the same pass.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn lo_hi_nan_body<const NAN: bool>(x: &[f32]) -> (f32, f32, bool) {
        let p = x.as_ptr();
        let n = x.len();
        let (mut lo0, mut lo1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut hi0, mut hi1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut nan = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            let (v0, v1) = (_mm256_loadu_ps(p.add(i)), _mm256_loadu_ps(p.add(i + 8)));
            lo0 = _mm256_min_ps(v0, lo0);
            hi0 = _mm256_max_ps(v0, hi0);
            lo1 = _mm256_min_ps(v1, lo1);
            hi1 = _mm256_max_ps(v1, hi1);
            if NAN {
                nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v0, v1));
            }
            i += 16;
        }
        let (mut l, mut h) = ([0f32; 16], [0f32; 16]);
        _mm256_storeu_ps(l.as_mut_ptr(), lo0);
        _mm256_storeu_ps(l.as_mut_ptr().add(8), lo1);
        _mm256_storeu_ps(h.as_mut_ptr(), hi0);
        _mm256_storeu_ps(h.as_mut_ptr().add(8), hi1);
        let (mut lo, mut hi) = super::fold_lo_hi(&l, &h);
        let mut has_nan = NAN && _mm256_movemask_ps(nan) != 0;
        for &v in &x[i..] {
            lo = if v < lo { v } else { lo };
            hi = if v > hi { v } else { hi };
            has_nan |= NAN && v.is_nan();
        }
        (lo, hi, has_nan)
    }

    /// Packed INT4 codes of `x[..32 * k]` (see the AVX-512 version), and in the same loop the range
    /// of `next[..32 * k]`, prefetching `ahead`, as `int8_quant_body` (INT8); returns `32 * k` and
    /// [`NextRange::taken`].
    #[inline(always)]
    unsafe fn int4_quant_body(
        x: &[f32],
        scale: f32,
        zero: f32,
        out: &mut [u8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, (f32, f32, bool))) {
        let n = x.len() / 32 * 32;
        assert!(out.len() >= n / 2);
        let mut next_range = NextRange::new(next, n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let vs = _mm256_set1_ps(scale);
        let vz = _mm256_set1_epi32(zero as i32);
        let fifteen = _mm256_set1_epi8(15);
        let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        // maddubs with bytes (1, 16): even code + 16 * odd code in each 16-bit lane.
        let weights = _mm256_set1_epi16(0x1001);
        // The portable code clamps `x / s` to [-zero, 15 - zero], rounds, adds `zero`. The bounds are
        // integers, so clamping commutes with rounding (monotone, integers fixed): the code is also
        // round(x / s) + zero clamped to [0, 15], which is clamped here in the integer lanes (the packs
        // saturate below 0, `min` caps at 15), without the two float clamps per 8 lanes. The
        // quotients are small, so `cvtps2dq` and the 16-bit pack are exact: every x lies in
        // [lo, hi] with lo <= 0 <= hi, s = (hi - lo) / 15 rounded and nonzero, so |x / s| <= 15 plus
        // the rounding of s, at most 22.5 even where s is a few subnormal steps.
        let code = |i: usize| {
            let k = _mm256_cvtps_epi32(_mm256_div_ps(_mm256_loadu_ps(xp.add(i)), vs));
            _mm256_add_epi32(k, vz)
        };
        let mut i = 0;
        while i < n {
            prefetch(ahead, i);
            prefetch(ahead, i + 16);
            next_range.step(i);
            let ab = _mm256_packs_epi32(code(i), code(i + 8));
            let cd = _mm256_packs_epi32(code(i + 16), code(i + 24));
            let codes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), perm);
            let pairs = _mm256_maddubs_epi16(_mm256_min_epu8(codes, fifteen), weights);
            let bytes = _mm_packus_epi16(
                _mm256_castsi256_si128(pairs),
                _mm256_extracti128_si256::<1>(pairs),
            );
            _mm_storeu_si128(op.add(i / 2) as *mut __m128i, bytes);
            i += 32;
        }
        (n, next_range.taken())
    }

    /// `out[i] = (code - zero) * scale` of the packed INT4 codes (two a byte, the even one in the
    /// low nibble) for a prefix of `out` (`src` holding its codes); returns its length (see
    /// [`store_blocks_256`]; `stream`: the whole output is large).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn int4_dequant(
        src: &[u8],
        scale: f32,
        zero: f32,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        int4_dequant_body(src, scale, zero, out, stream)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn int4_dequant_body(
        src: &[u8],
        scale: f32,
        zero: f32,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        let n = out.len().min(src.len() * 2) / 8 * 8;
        let (sp, op) = (src.as_ptr(), out.as_mut_ptr());
        let vs = _mm256_set1_ps(scale);
        let vz = _mm256_set1_ps(zero);
        let m = _mm_set1_epi8(0x0f);
        // Eight codes from four bytes: low nibbles and high nibbles interleaved.
        let block = |i: usize| {
            let b = _mm_cvtsi32_si128(std::ptr::read_unaligned(sp.add(i / 2) as *const i32));
            let lo = _mm_and_si128(b, m);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), m);
            let f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
            _mm256_castps_si256(_mm256_mul_ps(_mm256_sub_ps(f, vz), vs))
        };
        // A block starts on a byte of codes only at an even element: streaming starts at the first
        // 16-byte boundary of `out`, an even element when `out` is 8-byte aligned.
        let stream = stream && op as usize % 8 == 0;
        store_blocks_256(op as *mut u8, 4, n, 8, stream, block)
    }

    /// The 4-bit quantizer on whole rows, compiled for AVX2: [`pipelined_int4`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn int4_quant_rows<A: Fn(f32, f32, bool) -> bool>(
        src: &[f32],
        shape: crate::kernels::Shape,
        dst: &mut [u8],
        scales: &mut [f32],
        zeros: &mut [u8],
        accept: Option<&A>,
    ) -> bool {
        pipelined_int4::<Fused, A>(src, shape, dst, scales, zeros, accept)
    }

    /// The AVX2 bodies of [`pipelined_int4`].
    struct Fused;

    impl Int4Fused for Fused {
        #[inline(always)]
        unsafe fn lo_hi_nan(x: &[f32]) -> (f32, f32, bool) {
            lo_hi_nan_body::<true>(x)
        }
        #[inline(always)]
        unsafe fn quant(
            x: &[f32],
            scale: f32,
            zero: f32,
            out: &mut [u8],
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, (usize, (f32, f32, bool))) {
            int4_quant_body(x, scale, zero, out, next, ahead)
        }
    }

    /// A range (minimum and maximum from +0.0, by strict comparisons, and whether a NaN was seen)
    /// taken 32 elements at a time inside another loop, as [`NextAbsmax`].
    struct NextRange {
        p: *const f32,
        n: usize,
        on: bool,
        lo: [__m256; 2],
        hi: [__m256; 2],
        nan: __m256,
    }

    impl NextRange {
        /// Over `next[..n]` (`n` a multiple of 32); off when `next` is shorter.
        #[inline(always)]
        unsafe fn new(next: &[f32], n: usize) -> Self {
            let z = _mm256_setzero_ps();
            Self {
                p: next.as_ptr(),
                n,
                on: next.len() >= n && n > 0,
                lo: [z; 2],
                hi: [z; 2],
                nan: z,
            }
        }

        /// Takes `next[i..i + 32]` in (`i + 32 <= n`).
        #[inline(always)]
        unsafe fn step(&mut self, i: usize) {
            if self.on {
                let v = |k: usize| _mm256_loadu_ps(self.p.add(i + 8 * k));
                let (v0, v1, v2, v3) = (v(0), v(1), v(2), v(3));
                // min(v, acc) = v < acc ? v : acc: a NaN lane never replaces the accumulator.
                self.lo[0] = _mm256_min_ps(v2, _mm256_min_ps(v0, self.lo[0]));
                self.hi[0] = _mm256_max_ps(v2, _mm256_max_ps(v0, self.hi[0]));
                self.lo[1] = _mm256_min_ps(v3, _mm256_min_ps(v1, self.lo[1]));
                self.hi[1] = _mm256_max_ps(v3, _mm256_max_ps(v1, self.hi[1]));
                let unord = _mm256_or_ps(
                    _mm256_cmp_ps::<_CMP_UNORD_Q>(v0, v1),
                    _mm256_cmp_ps::<_CMP_UNORD_Q>(v2, v3),
                );
                self.nan = _mm256_or_ps(self.nan, unord);
            }
        }

        /// How many elements of `next` were taken (`n`, or 0 when off), and their range.
        #[inline(always)]
        unsafe fn taken(&self) -> (usize, (f32, f32, bool)) {
            if !self.on {
                return (0, (0.0, 0.0, false));
            }
            // In any order (a shuffle tree): the minimum and maximum are the same values, the
            // accumulators holding no NaN (only a zero's sign could differ, and `asym_params` maps both
            // zeros to +0.0).
            let lo = _mm256_min_ps(self.lo[0], self.lo[1]);
            let hi = _mm256_max_ps(self.hi[0], self.hi[1]);
            let lo = _mm_min_ps(_mm256_castps256_ps128(lo), _mm256_extractf128_ps::<1>(lo));
            let hi = _mm_max_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps::<1>(hi));
            let lo = _mm_min_ps(lo, _mm_movehl_ps(lo, lo));
            let hi = _mm_max_ps(hi, _mm_movehl_ps(hi, hi));
            let lo = _mm_min_ss(lo, _mm_shuffle_ps::<1>(lo, lo));
            let hi = _mm_max_ss(hi, _mm_shuffle_ps::<1>(hi, hi));
            let (lo, hi) = (_mm_cvtss_f32(lo) + 0.0, _mm_cvtss_f32(hi) + 0.0);
            (self.n, (lo, hi, _mm256_movemask_ps(self.nan) != 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::kbit;
    use crate::kernels::simd::{with_simd_level, SimdLevel};
    use crate::kernels::x86::testing::{large_input, same};
    use crate::kernels::Shape;

    /// The AVX2 4-bit dequantizer streams its stores when the whole output is large: the same bits as
    /// the portable code, nothing written outside the destination.
    #[test]
    fn streamed_dequantizer_equals_the_portable_path() {
        if !SimdLevel::Avx2.is_available() {
            return;
        }
        let (rows, cols, x) = large_input();
        let n = rows * cols;
        for group in [0, 128, 100] {
            let shape = Shape::new(rows, cols, group).unwrap();
            let mut scales = vec![0f32; shape.n_groups()];
            let mut p4 = vec![0u8; kbit::kbit_packed_size(rows, cols, 4)];
            let mut zeros = vec![0u8; shape.n_groups()];
            kbit::kbit_quantize(&x, shape, 4, &mut p4, &mut scales, &mut zeros).unwrap();
            // The 4-bit body streams only from an even element: destinations at an odd and an even
            // element past an aligned address take both paths.
            for at in [1, 2] {
                let deq = |l| {
                    let mut out = vec![7.5f32; n + 4];
                    let d = &mut out[at..at + n];
                    let c = || kbit::kbit_dequantize(&p4, &scales, &zeros, shape, 4, d).unwrap();
                    with_simd_level(l, c).unwrap();
                    assert_eq!((out[at - 1], out[at + n]), (7.5, 7.5), "wrote outside");
                    out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                same(deq(SimdLevel::Avx2), deq(SimdLevel::Scalar), "INT4", group);
            }
        }
    }
}
