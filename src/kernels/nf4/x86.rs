//! The AVX2 body of the bitsandbytes 4-bit quantizer (used at the AVX2 and AVX-512 levels): per 8
//! values the scaled value (`x * s` with the f32 reciprocal for the full blocks, `x / s` for the
//! partial last block: the same IEEE operations as [`super::bnb4_quantize_ref`]), its count of the 15
//! midpoints strictly below it (a branch-free binary search: 4 vector comparisons), the code book index
//! of that sorted position (a byte shuffle) and two codes a byte. The clamp to `[-1, 1]` is left out: every midpoint lies inside
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
        let b = Bounds::new(bounds);
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

    /// Full blocks of an f32 source in one pass each: `x` holds `absmax.len()` blocks of `blocksize`
    /// values (a multiple of 16); per block its absmax (the largest sign-cleared bit pattern, as
    /// `absmax_bits`) into `absmax[b]` and its packed codes (`x * (1 / max(absmax, 1e-38))`) into
    /// `out[b * blocksize / 2..]`. Returns false at the first block holding a NaN or an infinity (that
    /// block and the later ones are then not written).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn full_blocks(
        x: &[f32],
        blocksize: usize,
        bounds: &[f32; 15],
        order: &[u8; 16],
        out: &mut [u8],
        absmax: &mut [f32],
    ) -> bool {
        let nb = absmax.len();
        assert!(blocksize % 16 == 0 && x.len() == nb * blocksize && out.len() >= x.len() / 2);
        let b = Bounds::new(bounds);
        let ord = _mm256_broadcastsi128_si256(_mm_loadu_si128(order.as_ptr().cast()));
        let gather = _mm256_setr_epi8(
            0, 8, 1, 9, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 8, 1, 9, -1, -1, -1, -1,
            -1, -1, -1, -1, -1, -1, -1, -1,
        );
        let low = _mm256_set1_epi64x(0xFF);
        let mag = _mm256_set1_epi32(0x7FFF_FFFF);
        for (k, a) in absmax.iter_mut().enumerate() {
            let p = x.as_ptr().add(k * blocksize);
            let (mut m0, mut m1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let mut i = 0;
            while i < blocksize {
                let v0 = _mm256_and_si256(_mm256_loadu_si256(p.add(i).cast()), mag);
                let v1 = _mm256_and_si256(_mm256_loadu_si256(p.add(i + 8).cast()), mag);
                m0 = _mm256_max_epu32(m0, v0);
                m1 = _mm256_max_epu32(m1, v1);
                i += 16;
            }
            let m = _mm256_max_epu32(m0, m1);
            let m = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256::<1>(m));
            let m = _mm_max_epu32(m, _mm_shuffle_epi32::<0b01_00_11_10>(m));
            let m = _mm_max_epu32(m, _mm_shuffle_epi32::<0b10_11_00_01>(m));
            let bits = _mm_cvtsi128_si32(m) as u32;
            if bits >= 0x7F80_0000 {
                return false;
            }
            let amax = f32::from_bits(bits);
            *a = amax;
            let sv = _mm256_set1_ps(1.0 / amax.max(1e-38));
            let o = out.as_mut_ptr().add(k * blocksize / 2);
            let mut i = 0;
            while i < blocksize {
                let p0 = pairs::<false>(_mm256_loadu_ps(p.add(i)), sv, &b, ord);
                let p1 = pairs::<false>(_mm256_loadu_ps(p.add(i + 8)), sv, &b, ord);
                let both = _mm256_or_si256(
                    _mm256_and_si256(p0, low),
                    _mm256_slli_epi64::<8>(_mm256_and_si256(p1, low)),
                );
                let g = _mm256_shuffle_epi8(both, gather);
                let r =
                    _mm_unpacklo_epi16(_mm256_castsi256_si128(g), _mm256_extracti128_si256::<1>(g));
                _mm_storel_epi64(o.add(i / 2).cast(), r);
                i += 16;
            }
        }
        true
    }

    /// The midpoints as the branch-free binary search reads them: `b7`, then `b3` or `b11`, then one
    /// of `b1, b5, b9, b13`, then one of `b0, b2, ..., b14`.
    pub(crate) struct Bounds {
        b7: __m256,
        b3: __m256,
        b11: __m256,
        odd: __m256,
        even: __m256,
    }

    impl Bounds {
        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        unsafe fn new(b: &[f32; 15]) -> Self {
            Self {
                b7: _mm256_set1_ps(b[7]),
                b3: _mm256_set1_ps(b[3]),
                b11: _mm256_set1_ps(b[11]),
                odd: _mm256_setr_ps(b[1], b[5], b[9], b[13], b[13], b[13], b[13], b[13]),
                even: _mm256_setr_ps(b[0], b[2], b[4], b[6], b[8], b[10], b[12], b[14]),
            }
        }
    }

    /// One vector's codes, paired: the low byte of each qword is `(code[2k] << 4) | code[2k + 1]`.
    /// The sorted position (the number of midpoints strictly below the scaled value, 0 to 15) is found
    /// by a branch-free binary search over the increasing midpoints: 4 comparisons instead of 15.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn pairs<const DIV: bool>(v: __m256, sv: __m256, b: &Bounds, ord: __m256i) -> __m256i {
        let y = if DIV {
            _mm256_div_ps(v, sv)
        } else {
            _mm256_mul_ps(v, sv)
        };
        let m8 = _mm256_cmp_ps::<_CMP_LT_OQ>(b.b7, y);
        let mut c = _mm256_and_si256(_mm256_castps_si256(m8), _mm256_set1_epi32(8));
        let m4 = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_blendv_ps(b.b3, b.b11, m8), y);
        c = _mm256_add_epi32(
            c,
            _mm256_and_si256(_mm256_castps_si256(m4), _mm256_set1_epi32(4)),
        );
        let s2 = _mm256_permutevar8x32_ps(b.odd, _mm256_srli_epi32::<2>(c));
        let m2 = _mm256_cmp_ps::<_CMP_LT_OQ>(s2, y);
        c = _mm256_add_epi32(
            c,
            _mm256_and_si256(_mm256_castps_si256(m2), _mm256_set1_epi32(2)),
        );
        let s1 = _mm256_permutevar8x32_ps(b.even, _mm256_srli_epi32::<1>(c));
        c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(s1, y)));
        let c = _mm256_shuffle_epi8(ord, c);
        _mm256_or_si256(_mm256_srli_epi64::<32>(c), _mm256_slli_epi64::<4>(c))
    }
}
