//! The AVX2 body of the bitsandbytes 4-bit quantizer (used at the AVX2 and AVX-512 levels): per 8
//! values the scaled value (`x * s` with the f32 reciprocal for the full blocks, `x / s` for the
//! partial last block: the same IEEE operations as [`super::bnb4_quantize_ref`]), its count of the 15
//! midpoints strictly below it (15 vector comparisons), the code book index of that sorted position (a
//! byte shuffle) and two codes a byte. The clamp to `[-1, 1]` is left out: every midpoint lies inside
//! `(-1, 1)`, so a value beyond 1 counts 15 midpoints and one below -1 none, as its clamped value
//! does.
#![allow(clippy::missing_safety_doc)]

pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// Packed codes of `x` (a multiple of 8 values) into `out[..x.len() / 2]`, the first value of each
    /// pair in the high nibble. `DIV`: `x / s`, else `x * s`. `bounds`: the 15 midpoints, increasing;
    /// `order`: the code book index of each sorted position.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn codes<const DIV: bool>(
        x: &[f32],
        s: f32,
        bounds: &[f32; 15],
        order: &[u8; 16],
        out: &mut [u8],
    ) {
        let n = x.len();
        assert!(n % 8 == 0 && out.len() >= n / 2);
        let sv = _mm256_set1_ps(s);
        let mut b = [_mm256_setzero_ps(); 15];
        for (bk, &m) in b.iter_mut().zip(bounds) {
            *bk = _mm256_set1_ps(m);
        }
        let ord = _mm256_broadcastsi128_si256(_mm_loadu_si128(order.as_ptr().cast()));
        // Per 128-bit lane: the pair bytes of the two vectors' qwords, first vector's pairs first.
        let gather = _mm256_setr_epi8(
            0, 8, 1, 9, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 8, 1, 9, -1, -1, -1, -1,
            -1, -1, -1, -1, -1, -1, -1, -1,
        );
        let p = x.as_ptr();
        let o = out.as_mut_ptr();
        let mut i = 0;
        while i + 16 <= n {
            let p0 = pairs::<DIV>(_mm256_loadu_ps(p.add(i)), sv, &b, ord);
            let p1 = pairs::<DIV>(_mm256_loadu_ps(p.add(i + 8)), sv, &b, ord);
            let both = _mm256_or_si256(
                _mm256_and_si256(p0, _mm256_set1_epi64x(0xFF)),
                _mm256_slli_epi64::<8>(_mm256_and_si256(p1, _mm256_set1_epi64x(0xFF))),
            );
            let g = _mm256_shuffle_epi8(both, gather);
            let r = _mm_unpacklo_epi16(_mm256_castsi256_si128(g), _mm256_extracti128_si256::<1>(g));
            _mm_storel_epi64(o.add(i / 2).cast(), r);
            i += 16;
        }
        if i < n {
            let p0 = pairs::<DIV>(_mm256_loadu_ps(p.add(i)), sv, &b, ord);
            let g = _mm256_shuffle_epi8(_mm256_and_si256(p0, _mm256_set1_epi64x(0xFF)), gather);
            let r = _mm_unpacklo_epi16(_mm256_castsi256_si128(g), _mm256_extracti128_si256::<1>(g));
            let w = _mm_cvtsi128_si32(r) as u32;
            std::ptr::copy_nonoverlapping(w.to_le_bytes().as_ptr(), o.add(i / 2), 4);
        }
    }

    /// One vector's codes, paired: the low byte of each qword is `(code[2k] << 4) | code[2k + 1]`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn pairs<const DIV: bool>(
        v: __m256,
        sv: __m256,
        b: &[__m256; 15],
        ord: __m256i,
    ) -> __m256i {
        let y = if DIV {
            _mm256_div_ps(v, sv)
        } else {
            _mm256_mul_ps(v, sv)
        };
        let mut c = _mm256_setzero_si256();
        for bk in b {
            c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(*bk, y)));
        }
        let c = _mm256_shuffle_epi8(ord, c);
        _mm256_or_si256(_mm256_srli_epi64::<32>(c), _mm256_slli_epi64::<4>(c))
    }
}
