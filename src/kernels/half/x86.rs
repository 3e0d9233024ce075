//! AVX2 and AVX-512 bodies of the f16 and bf16 casts. The rules every x86 body follows are in
//! [`crate::kernels::x86`], with the stores they share.
#![allow(clippy::missing_safety_doc)]

use crate::kernels::x86::{prefetch, PREFETCH_AHEAD};

/// AVX-512 (F, BW, VL) bodies: 16 lanes, masked loads and stores for the tails.
pub(crate) mod avx512 {
    use crate::kernels::x86::avx512::{store_code_run, store_f32_run};
    use std::arch::x86_64::*;

    /// f32 -> f16 bits (`vcvtps2ph`, round to nearest even; the F16C conversion `half` uses).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn f32_to_f16(x: &[f32], out: &mut [u16]) {
        f32_to_f16_body(x, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn f32_to_f16_body(x: &[f32], out: &mut [u16]) {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let block = |i: usize, k: __mmask16| {
            _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm512_maskz_loadu_ps(k, xp.add(i)))
        };
        store_code_run::<2>(op as *mut u8, n, block)
    }

    /// f16 bits -> f32 (`vcvtph2ps`, exact; NaN quieted).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn f16_to_f32(h: &[u16], out: &mut [f32]) {
        f16_to_f32_body(h, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn f16_to_f32_body(h: &[u16], out: &mut [f32]) {
        let n = h.len();
        assert!(out.len() >= n);
        let (hp, op) = (h.as_ptr(), out.as_mut_ptr());
        let block = |i: usize, k: __mmask16| {
            _mm512_cvtph_ps(if k == 0xffff {
                _mm256_loadu_si256(hp.add(i) as *const __m256i)
            } else {
                _mm256_maskz_loadu_epi16(k, hp.add(i) as *const i16)
            })
        };
        store_f32_run(op, n, block)
    }

    /// f32 -> bf16 bits: `(x + 0x7fff + ((x >> 16) & 1)) >> 16`, NaN `(x >> 16) | 0x40`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn f32_to_bf16(x: &[f32], out: &mut [u16]) {
        f32_to_bf16_body(x, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn f32_to_bf16_body(x: &[f32], out: &mut [u16]) {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let conv = |v: __m512| {
            let b = _mm512_castps_si512(v);
            let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
            let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(
                _mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)),
                odd,
            ));
            let nan = _mm512_or_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(0x40));
            let is_nan = _mm512_cmpgt_epu32_mask(
                _mm512_and_si512(b, _mm512_set1_epi32(0x7fff_ffff)),
                _mm512_set1_epi32(0x7f80_0000),
            );
            _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(is_nan, rounded, nan))
        };
        let block = |i: usize, k: __mmask16| conv(_mm512_maskz_loadu_ps(k, xp.add(i)));
        store_code_run::<2>(op as *mut u8, n, block)
    }

    /// bf16 bits -> f32: `(h | quiet) << 16`, `quiet = 0x40` for NaN.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn bf16_to_f32(h: &[u16], out: &mut [f32]) {
        bf16_to_f32_body(h, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn bf16_to_f32_body(h: &[u16], out: &mut [f32]) {
        let n = h.len();
        assert!(out.len() >= n);
        let (hp, op) = (h.as_ptr(), out.as_mut_ptr());
        let conv = |w: __m256i| {
            let v = _mm512_cvtepu16_epi32(w);
            let is_nan = _mm512_cmpgt_epu32_mask(
                _mm512_and_si512(v, _mm512_set1_epi32(0x7fff)),
                _mm512_set1_epi32(0x7f80),
            );
            let v = _mm512_mask_or_epi32(v, is_nan, v, _mm512_set1_epi32(0x40));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v))
        };
        let block = |i: usize, k: __mmask16| {
            conv(if k == 0xffff {
                _mm256_loadu_si256(hp.add(i) as *const __m256i)
            } else {
                _mm256_maskz_loadu_epi16(k, hp.add(i) as *const i16)
            })
        };
        store_f32_run(op, n, block)
    }
}

/// AVX2 bodies: 8 lanes; each function handles the largest multiple of its block and leaves the tail
/// to the portable code (it returns how many elements it did).
pub(crate) mod avx2 {
    use super::{prefetch, PREFETCH_AHEAD};
    use crate::kernels::x86::avx2::store_blocks_256;
    use crate::kernels::STREAM_STORES_MIN;
    use std::arch::x86_64::*;

    /// f32 -> f16 bits of a prefix of `x` (F16C `vcvtps2ph`); returns its length (see
    /// [`store_blocks_256`]: large outputs are streamed).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn f32_to_f16(x: &[f32], out: &mut [u16]) -> usize {
        f32_to_f16_body(x, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f32_to_f16_body(x: &[f32], out: &mut [u16]) -> usize {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let half =
            |i: usize| _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(xp.add(i)));
        let block = |i: usize| {
            prefetch(x, i + PREFETCH_AHEAD);
            _mm256_set_m128i(half(i + 8), half(i))
        };
        store_blocks_256(op as *mut u8, 2, n, 16, n >= STREAM_STORES_MIN, block)
    }

    /// f16 bits -> f32 of a prefix of `h` (F16C `vcvtph2ps`); returns its length (see
    /// [`store_blocks_256`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn f16_to_f32(h: &[u16], out: &mut [f32]) -> usize {
        f16_to_f32_body(h, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f16_to_f32_body(h: &[u16], out: &mut [f32]) -> usize {
        let n = h.len();
        assert!(out.len() >= n);
        let (hp, op) = (h.as_ptr(), out.as_mut_ptr());
        let block = |i: usize| {
            _mm256_castps_si256(_mm256_cvtph_ps(
                _mm_loadu_si128(hp.add(i) as *const __m128i),
            ))
        };
        store_blocks_256(op as *mut u8, 4, n, 8, n >= STREAM_STORES_MIN, block)
    }

    /// f32 -> bf16 bits of a prefix of `x` (as the AVX-512 version); returns its length (see
    /// [`store_blocks_256`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn f32_to_bf16(x: &[f32], out: &mut [u16]) -> usize {
        f32_to_bf16_body(x, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f32_to_bf16_body(x: &[f32], out: &mut [u16]) -> usize {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let conv = |i: usize| {
            let b = _mm256_castps_si256(_mm256_loadu_ps(xp.add(i)));
            let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(b), _mm256_set1_epi32(1));
            let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(
                _mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)),
                odd,
            ));
            let nan = _mm256_or_si256(_mm256_srli_epi32::<16>(b), _mm256_set1_epi32(0x40));
            let is_nan = _mm256_cmpgt_epi32(
                _mm256_and_si256(b, _mm256_set1_epi32(0x7fff_ffff)),
                _mm256_set1_epi32(0x7f80_0000),
            );
            _mm256_blendv_epi8(rounded, nan, is_nan)
        };
        let block = |i: usize| {
            prefetch(x, i + PREFETCH_AHEAD);
            let p = _mm256_packus_epi32(conv(i), conv(i + 8));
            _mm256_permute4x64_epi64::<0b11_01_10_00>(p)
        };
        store_blocks_256(op as *mut u8, 2, n, 16, n >= STREAM_STORES_MIN, block)
    }

    /// bf16 bits -> f32 of a prefix of `h`; returns its length (see [`store_blocks_256`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn bf16_to_f32(h: &[u16], out: &mut [f32]) -> usize {
        bf16_to_f32_body(h, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn bf16_to_f32_body(h: &[u16], out: &mut [f32]) -> usize {
        let n = h.len();
        assert!(out.len() >= n);
        let (hp, op) = (h.as_ptr(), out.as_mut_ptr());
        let block = |i: usize| {
            let v = _mm256_cvtepu16_epi32(_mm_loadu_si128(hp.add(i) as *const __m128i));
            let is_nan = _mm256_cmpgt_epi32(
                _mm256_and_si256(v, _mm256_set1_epi32(0x7fff)),
                _mm256_set1_epi32(0x7f80),
            );
            let v = _mm256_or_si256(v, _mm256_and_si256(is_nan, _mm256_set1_epi32(0x40)));
            _mm256_slli_epi32::<16>(v)
        };
        store_blocks_256(op as *mut u8, 4, n, 8, n >= STREAM_STORES_MIN, block)
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::half;
    use crate::kernels::simd::SimdLevel;
    use crate::kernels::x86::testing::cast_at;
    use crate::kernels::STREAM_STORES_MIN;

    /// The AVX2 16-bit casts of large outputs (`STREAM_STORES_MIN` elements and more, where they
    /// stream their stores) give the portable code's bits, with a misaligned destination and a length
    /// that leaves a tail.
    #[test]
    fn streamed_casts_equal_the_portable_path() {
        if !SimdLevel::Avx2.is_available() {
            return;
        }
        let n = STREAM_STORES_MIN + 37;
        // Every f32 pattern class: a stride through the bit patterns.
        let x: Vec<f32> = (0..n as u64)
            .map(|i| f32::from_bits((i * 1031 % (1 << 32)) as u32))
            .collect();
        let halves: Vec<u16> = (0..n).map(|i| (i * 13) as u16).collect();
        let both = |f: &dyn Fn(SimdLevel) -> Vec<u32>| {
            assert_eq!(f(SimdLevel::Avx2), f(SimdLevel::Scalar));
        };
        both(&|l| {
            let c = |s: &[f32], d: &mut [u16]| half::f32_to_f16(s, d).unwrap();
            cast_at(l, &x, 0x5555u16, c)
                .iter()
                .map(|&v| v as u32)
                .collect()
        });
        both(&|l| {
            let c = |s: &[f32], d: &mut [u16]| half::f32_to_bf16(s, d).unwrap();
            cast_at(l, &x, 0x5555u16, c)
                .iter()
                .map(|&v| v as u32)
                .collect()
        });
        let bits = |v: Vec<f32>| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
        both(&|l| {
            let c = |s: &[u16], d: &mut [f32]| half::f16_to_f32(s, d).unwrap();
            bits(cast_at(l, &halves, 7.5f32, c))
        });
        both(&|l| {
            let c = |s: &[u16], d: &mut [f32]| half::bf16_to_f32(s, d).unwrap();
            bits(cast_at(l, &halves, 7.5f32, c))
        });
    }
}
