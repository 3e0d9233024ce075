//! AVX2 and AVX-512 bodies of the FP8 casts and of the scaled FP8 E4M3 quantizer and dequantizer.
//! The rules every x86 body follows are in [`crate::kernels::x86`], with the pipelined loop and the
//! stores they share.
#![allow(clippy::missing_safety_doc)]

use crate::kernels::fp8::Fp8Spec;
use crate::kernels::x86::{pipelined_groups, prefetch, SymmetricBody, PREFETCH_AHEAD};

/// From this scale on, the scaled FP8 quantizer's codes need no overflow clamp (`BOUNDED` in the
/// encoders): with `s = RN(absmax / 448)` normal, `s >= absmax / 448 * (1 - 2^-24)`, so every
/// `|x| / s` of the group is below `448 * (1 + 2^-23)` and rounds (as an f32) to at most
/// `448 + 2^-15`, far below 464, the midpoint where E4M3 would round past its largest value 448. A
/// subnormal scale carries fewer bits and the quotients can exceed 448 by far: those groups keep
/// the clamps. Saves two of the encoder's operations per 16 lanes (AVX-512, Zen 4: the scaled FP8
/// quantizer in L2 at 4.6 G elements/s per row without the clamps and 4.0 with them, 4.6 and 3.9 at
/// g128, best of 9 over four paired series).
const BOUNDED_SCALE_MIN: f32 = f32::MIN_POSITIVE;

/// A level's FP8 encoder as the scaled quantizer's rows kernel ([`quant_rows`]) uses it. Every
/// method is always inlined into the level's `fp8_quant_rows`, compiled for its features.
trait ScaledEncoder: Copy {
    /// The encoder of format `f` with scale `s` (its constants).
    unsafe fn new(f: Fp8Spec, s: f32) -> Self;
    /// This encoder with the scale `s` (the other constants kept).
    unsafe fn with_scale(&self, s: f32) -> Self;
    /// The level's absmax bits of `x`.
    unsafe fn absmax_bits(x: &[f32]) -> u32;
    /// The codes of `x[..k]` (the largest multiple of the level's step) into `out`, and in the same
    /// loop the absmax of `next[..k]`, prefetching `ahead`: returns `k` and (how much of `next` it
    /// took, its absmax bits). `BOUNDED`: no overflow clamps (see [`BOUNDED_SCALE_MIN`]).
    unsafe fn fused<const BOUNDED: bool>(
        &self,
        x: &[f32],
        out: &mut [u8],
        next: &[f32],
        ahead: &[f32],
    ) -> (usize, (usize, u32));
    /// The codes of the rest of a group, `x` (what `fused` left), with scale `s`.
    unsafe fn tail(&self, x: &[f32], s: f32, out: &mut [u8]);
}

/// FP8 E4M3 scaled codes and scales of whole rows through [`pipelined_groups`], with a level's
/// encoder `E`, whose constants are built once (each group sets its scale). Stops and returns false
/// at the first group whose absmax `accept` rejects (the groups before it are written).
#[inline(always)]
unsafe fn quant_rows<E: ScaledEncoder>(
    src: &[f32],
    cols: usize,
    glen: usize,
    dst: &mut [u8],
    scales: &mut [f32],
    accept: impl Fn(f32) -> bool,
) -> bool {
    let base = E::new(crate::kernels::fp8::scaled_spec(), 1.0);
    pipelined_groups(src, cols, glen, scales, accept, Fp8Rows { dst, base })
}

/// The scaled FP8 E4M3 bodies of [`quant_rows`], with a level's encoder `E`.
struct Fp8Rows<'a, E> {
    dst: &'a mut [u8],
    base: E,
}

impl<E: ScaledEncoder> SymmetricBody for Fp8Rows<'_, E> {
    const QMAX: f32 = crate::kernels::fp8::E4M3_MAX;

    #[inline(always)]
    unsafe fn absmax_bits(x: &[f32]) -> u32 {
        E::absmax_bits(x)
    }

    type Code = u8;

    #[inline(always)]
    fn dst(&mut self) -> &mut [u8] {
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
        let enc = self.base.with_scale(s);
        let (done, taken) = if s >= BOUNDED_SCALE_MIN {
            enc.fused::<true>(x, out, next, ahead)
        } else {
            enc.fused::<false>(x, out, next, ahead)
        };
        enc.tail(&x[done..], s, &mut out[done..]);
        taken
    }
}

/// AVX-512 (F, BW, VL) bodies: 16 lanes, masked loads and stores for the tails.
pub(crate) mod avx512 {
    use super::{prefetch, Fp8Spec, ScaledEncoder};
    use crate::kernels::x86::avx512::{
        absmax_bits_body, store_code_run, store_f32_blocks, NextAbsmax,
    };
    use std::arch::x86_64::*;
    /// FP8 codes of `x` (divided by `s` first when `DIV`), by the AVX2 encoder's exact route
    /// (rounding by addition, `avx2::Fp8Lanes`), 16 lanes at a time; a select for NaN only in the
    /// plain casts (`DIV`: the scaled quantizers, whose inputs are finite, have no NaN to encode).
    /// All of `x`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn fp8_encode<const DIV: bool>(
        x: &[f32],
        s: f32,
        f: Fp8Spec,
        out: &mut [u8],
    ) {
        fp8_encode_body::<DIV>(x, s, f, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn fp8_encode_body<const DIV: bool>(x: &[f32], s: f32, f: Fp8Spec, out: &mut [u8]) {
        fp8_encode_run::<DIV>(&Fp8Lanes::new(f, s), x, out)
    }

    /// The codes of all of `x` by `enc` (`out.len() >= x.len()`): streamed when large (the plain
    /// casts), masked stores for the tail.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn fp8_encode_run<const DIV: bool>(enc: &Fp8Lanes, x: &[f32], out: &mut [u8]) {
        let n = x.len();
        assert!(out.len() >= n);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let block = |i: usize, k: __mmask16| {
            let c = enc.code::<DIV, false>(_mm512_maskz_loadu_ps(k, xp.add(i)));
            _mm256_castsi128_si256(_mm512_cvtepi32_epi8(c))
        };
        store_code_run::<1>(op, n, block);
    }

    /// The FP8 encoder's constants for one format and scale, in 16 lanes: rounding by addition, as
    /// the AVX2 encoder (see `avx2::Fp8Lanes`, which derives it). A struct with an
    /// `#[inline(always)]` method for the reason given there: with a closure returned for it (as
    /// `int8_code` is) the scaled quantizer runs at 0.03 of the ceiling (Zen 4).
    #[derive(Clone, Copy)]
    struct Fp8Lanes {
        vs: __m512,
        abs: __m512i,
        exp_mask: __m512i,
        top: __m512i,
        floor: __m512i,
        to_c: __m512i,
        c_shift: __m128i,
        offset: __m512i,
        overflow: __m512i,
        nan: __m512i,
        signbit: __m512i,
    }

    impl Fp8Lanes {
        /// The codes of `v` (`v / s` when `DIV`), one per i32 lane. `BOUNDED` (with `DIV` only):
        /// every `|v / s|` is at most the format's largest value plus one unit in the last place of
        /// an f32, so no code overflows and no clamp is needed (see [`BOUNDED_SCALE_MIN`]).
        #[inline(always)]
        unsafe fn code<const DIV: bool, const BOUNDED: bool>(&self, v: __m512) -> __m512i {
            let v = if DIV { _mm512_div_ps(v, self.vs) } else { v };
            let bits = _mm512_castps_si512(v);
            let a = _mm512_and_si512(bits, self.abs);
            let clamped = if BOUNDED {
                a
            } else {
                _mm512_min_epi32(a, self.top)
            };
            let c = _mm512_add_epi32(
                _mm512_max_epi32(_mm512_and_si512(clamped, self.exp_mask), self.floor),
                self.to_c,
            );
            let sum = _mm512_castps_si512(_mm512_add_ps(
                _mm512_castsi512_ps(clamped),
                _mm512_castsi512_ps(c),
            ));
            let mag = _mm512_sub_epi32(
                _mm512_add_epi32(_mm512_sub_epi32(sum, c), _mm512_srl_epi32(c, self.c_shift)),
                self.offset,
            );
            // One `min` is the overflow select (`overflow` is `max` or `max + 1`, and a code past
            // `max` is at least `max + 1`).
            let mag = if BOUNDED {
                mag
            } else {
                _mm512_min_epi32(mag, self.overflow)
            };
            // A scaled quantizer's input is finite (checked before its codes): no NaN to encode.
            let mag = if DIV {
                mag
            } else {
                let is_nan = _mm512_cmpgt_epi32_mask(a, self.exp_mask);
                _mm512_mask_blend_epi32(is_nan, mag, self.nan)
            };
            // mag | (bits >> 24 & 0x80): the sign into the code's top bit, one ternary-logic op.
            _mm512_ternarylogic_epi32::<0xf8>(mag, _mm512_srli_epi32::<24>(bits), self.signbit)
        }
    }

    /// f32 values of FP8 codes (times `s` when `MUL`): exactly the decode tables of `fp8.rs`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    /// `stream`: see [`store_f32_blocks`].
    pub(crate) unsafe fn fp8_decode<const MUL: bool>(
        q: &[u8],
        s: f32,
        f: Fp8Spec,
        out: &mut [f32],
        stream: bool,
    ) {
        fp8_decode_body::<MUL>(q, s, f, out, stream)
    }

    /// [`fp8_decode`] with `MUL` over whole rows of `cols` codes in groups of `glen`, group `k` of
    /// row `r` scaled by `scales[r * ceil(cols / glen) + k]`: one call for many groups (a call per
    /// group rebuilt the decoder's constants every 128 values). `q` and `out` hold whole rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn fp8_decode_groups(
        q: &[u8],
        scales: &[f32],
        (cols, glen): (usize, usize),
        f: Fp8Spec,
        out: &mut [f32],
        stream: bool,
    ) {
        let gpr = cols.div_ceil(glen);
        let rows = q.chunks_exact(cols).zip(out.chunks_exact_mut(cols));
        for ((q_row, x_row), s_row) in rows.zip(scales.chunks_exact(gpr)) {
            for ((q, x), &s) in q_row.chunks(glen).zip(x_row.chunks_mut(glen)).zip(s_row) {
                fp8_decode_body::<true>(q, s, f, x, stream);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn fp8_decode_body<const MUL: bool>(
        q: &[u8],
        s: f32,
        f: Fp8Spec,
        out: &mut [f32],
        stream: bool,
    ) {
        let n = q.len();
        assert!(out.len() >= n);
        let (qp, op) = (q.as_ptr(), out.as_mut_ptr());
        // Through f16 (`vcvtph2ps`, exact), as the AVX2 body: the code's magnitude bits shifted to
        // f16's field boundary are an f16 worth 2^(bias - 15) times the code's value, subnormals
        // included, scaled back by 2^(15 - bias) in f32; NaN codes become f16 0x7E00 (f32
        // 0x7FC00000, which the multiplications keep), E5M2's infinity is f16's. The lanes are
        // 16-bit until the conversion (half-width vectors), where building the f32 bits in 32-bit
        // lanes took twice as many full-width operations.
        let shift = _mm_cvtsi32_si128((10 - f.man) as i32);
        let mag_mask = _mm256_set1_epi16((0x7f << (10 - f.man)) as i16);
        let sign_mask = _mm256_set1_epi16(0x8000u16 as i16);
        // The largest magnitude that is not NaN: E4M3's `max`, E5M2's infinity (the code after it).
        let last = if f.ieee { f.max + 1 } else { f.max };
        let last = _mm256_set1_epi16((last << (10 - f.man)) as i16);
        let nan = _mm256_set1_epi16(0x7e00);
        let rebias = _mm512_set1_ps(f32::from_bits((127 + 15 - f.bias) << 23));
        let vs = _mm512_set1_ps(s);
        let block = |i: usize, k: __mmask16| {
            let c = if k == 0xffff {
                _mm_loadu_si128(qp.add(i) as *const __m128i)
            } else {
                _mm_maskz_loadu_epi8(k, qp.add(i) as *const i8)
            };
            let w = _mm256_cvtepu8_epi16(c);
            let mag = _mm256_and_si256(_mm256_sll_epi16(w, shift), mag_mask);
            let mag = _mm256_mask_blend_epi16(_mm256_cmpgt_epi16_mask(mag, last), mag, nan);
            let h = _mm256_or_si256(mag, _mm256_and_si256(_mm256_slli_epi16::<8>(w), sign_mask));
            let v = _mm512_mul_ps(_mm512_cvtph_ps(h), rebias);
            if MUL {
                _mm512_mul_ps(v, vs)
            } else {
                v
            }
        };
        store_f32_blocks(op, n, stream, block)
    }

    /// FP8 E4M3 scaled codes and scales of whole rows, software-pipelined as the INT8 ones
    /// (`int8::x86::avx512::int8_quant_rows`), through [`super::quant_rows`]; `accept` as there.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn fp8_quant_rows(
        src: &[f32],
        cols: usize,
        glen: usize,
        dst: &mut [u8],
        scales: &mut [f32],
        accept: impl Fn(f32) -> bool,
    ) -> bool {
        super::quant_rows::<Fp8Lanes>(src, cols, glen, dst, scales, accept)
    }

    impl ScaledEncoder for Fp8Lanes {
        #[inline(always)]
        unsafe fn new(f: Fp8Spec, s: f32) -> Self {
            debug_assert!(f.overflow == f.max || f.overflow == f.max + 1);
            let emin = 1 - f.bias as i32;
            let emax = (f.max >> f.man) as i32 - f.bias as i32;
            Self {
                vs: _mm512_set1_ps(s),
                abs: _mm512_set1_epi32(0x7fff_ffff),
                exp_mask: _mm512_set1_epi32(0x7f80_0000),
                top: _mm512_set1_epi32((127 + emax + 1) << 23),
                floor: _mm512_set1_epi32((127 + emin) << 23),
                to_c: _mm512_set1_epi32(((23 - f.man) << 23) as i32),
                c_shift: _mm_cvtsi32_si128((23 - f.man) as i32),
                offset: _mm512_set1_epi32((emin + 150 - f.man as i32) << f.man),
                overflow: _mm512_set1_epi32(f.overflow as i32),
                nan: _mm512_set1_epi32(f.nan as i32),
                signbit: _mm512_set1_epi32(0x80),
            }
        }

        #[inline(always)]
        unsafe fn with_scale(&self, s: f32) -> Self {
            Fp8Lanes {
                vs: _mm512_set1_ps(s),
                ..*self
            }
        }

        #[inline(always)]
        unsafe fn absmax_bits(x: &[f32]) -> u32 {
            absmax_bits_body(x)
        }

        /// The scaled FP8 codes of `x[..64 k]` (this encoder holds the scale), and in the same loop
        /// the absmax of `next[..64 k]`, prefetching `ahead`, as the INT8 quantizer
        /// (`int8_quant_fused`; ordinary stores: streamed, the codes measure no faster on Zen 4).
        /// Returns `64 k` and [`NextAbsmax::taken`]. Always inlined into the rows kernel, which
        /// builds the constants once, as at AVX2.
        #[inline(always)]
        unsafe fn fused<const BOUNDED: bool>(
            &self,
            x: &[f32],
            out: &mut [u8],
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, (usize, u32)) {
            let n = x.len() / 64 * 64;
            assert!(out.len() >= n);
            let mut next_abs = NextAbsmax::new(next, n);
            let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
            let mut i = 0;
            while i < n {
                for k in [0, 16, 32, 48] {
                    prefetch(ahead, i + k);
                }
                next_abs.step(i);
                for k in [0, 16, 32, 48] {
                    let v = _mm512_loadu_ps(xp.add(i + k));
                    let q = _mm512_cvtepi32_epi8(self.code::<true, BOUNDED>(v));
                    _mm_storeu_si128(op.add(i + k) as *mut __m128i, q);
                }
                i += 64;
            }
            (n, next_abs.taken())
        }

        /// The tail (none when the group is a multiple of 64) with the group's encoder.
        #[inline(always)]
        unsafe fn tail(&self, x: &[f32], _: f32, out: &mut [u8]) {
            fp8_encode_run::<true>(self, x, out);
        }
    }
}

/// AVX2 bodies: 8 lanes; each function handles the largest multiple of its block and leaves the tail
/// to the portable code (it returns how many elements it did).
pub(crate) mod avx2 {
    use super::{prefetch, Fp8Spec, ScaledEncoder, PREFETCH_AHEAD};
    use crate::kernels::x86::avx2::{absmax_bits_body, store_blocks_256, NextAbsmax};
    use std::arch::x86_64::*;

    /// The FP8 encoder's constants for one format and scale, in 8 lanes.
    ///
    /// Rounding by addition: for |y| = m 2^e (1 <= m < 2), `|y| + 2^(e + 23 - man)` is rounded by the
    /// f32 addition (to nearest, ties to even) at 2^(e - man), the format's ulp at |y|, and its low
    /// significand bits are then the rounded |y| in those ulps (a carry into the next binade
    /// included). With e raised to the format's smallest normal exponent, the same addition rounds at
    /// the subnormal ulp. The code is those bits plus the exponent part: `bits(sum) - bits(c) +
    /// (bits(c) >> (23 - man)) - offset`, where `c = 2^(max(e, emin) + 23 - man)`. |y| is first
    /// clamped to 2^(emax + 1), which gives a code above `max` (overflow) and keeps `c` finite.
    ///
    /// A struct with `#[inline(always)]` methods rather than a closure: LLVM keeps such a closure (four
    /// calls a block, two loops) out of line, its vectors passed through memory, and the encoder is
    /// then compute-bound at about 1.8 G elements/s even in L2 (Zen 3).
    #[derive(Clone, Copy)]
    struct Fp8Lanes {
        vs: __m256,
        abs: __m256i,
        exp_mask: __m256i,
        top: __m256i,
        floor: __m256i,
        to_c: __m256i,
        c_shift: __m128i,
        offset: __m256i,
        overflow: __m256i,
        nan: __m256i,
        signbit: __m256i,
        perm: __m256i,
    }

    impl Fp8Lanes {
        /// The magnitude codes of `p[..8]` (each divided by the scale first when `DIV`), one per i32
        /// lane; the signs are [`Self::codes_32`]'s.
        #[inline(always)]
        unsafe fn magnitudes_8<const DIV: bool, const BOUNDED: bool>(
            &self,
            p: *const f32,
        ) -> __m256i {
            let v = _mm256_loadu_ps(p);
            let v = if DIV { _mm256_div_ps(v, self.vs) } else { v };
            let a = _mm256_and_si256(_mm256_castps_si256(v), self.abs);
            // `BOUNDED`: no clamp, as in the AVX-512 encoder (see `BOUNDED_SCALE_MIN`).
            let clamped = if BOUNDED {
                a
            } else {
                _mm256_min_epi32(a, self.top)
            };
            let c = _mm256_add_epi32(
                _mm256_max_epi32(_mm256_and_si256(clamped, self.exp_mask), self.floor),
                self.to_c,
            );
            let sum = _mm256_castps_si256(_mm256_add_ps(
                _mm256_castsi256_ps(clamped),
                _mm256_castsi256_ps(c),
            ));
            let mag = _mm256_sub_epi32(
                _mm256_add_epi32(_mm256_sub_epi32(sum, c), _mm256_srl_epi32(c, self.c_shift)),
                self.offset,
            );
            // `overflow` is `max` (saturating) or `max + 1` (the first code past the finite ones),
            // and a code past `max` is at least `max + 1`: one `min` is the overflow select.
            let mag = if BOUNDED {
                mag
            } else {
                _mm256_min_epi32(mag, self.overflow)
            };
            // A quotient of finite values by a scale is finite (the quantizers check their inputs):
            // only the plain casts meet NaN.
            if DIV {
                mag
            } else {
                _mm256_blendv_epi8(mag, self.nan, _mm256_cmpgt_epi32(a, self.exp_mask))
            }
        }

        /// The codes of `p[..32]`, packed to bytes in order. The signs come from the inputs' bits
        /// packed with signed saturation, which keeps each one's sign in its byte's top bit (the
        /// scale is positive, so a quotient has its dividend's sign): three packs for 32 codes in
        /// place of a shift, a mask and an or for every 8.
        #[inline(always)]
        unsafe fn codes_32<const DIV: bool, const BOUNDED: bool>(&self, p: *const f32) -> __m256i {
            let m = |k: usize| self.magnitudes_8::<DIV, BOUNDED>(p.add(k));
            let b = |k: usize| _mm256_loadu_si256(p.add(k) as *const __m256i);
            let mags = _mm256_packus_epi16(
                _mm256_packus_epi32(m(0), m(8)),
                _mm256_packus_epi32(m(16), m(24)),
            );
            let signs = _mm256_packs_epi16(
                _mm256_packs_epi32(b(0), b(8)),
                _mm256_packs_epi32(b(16), b(24)),
            );
            let codes = _mm256_or_si256(mags, _mm256_and_si256(signs, self.signbit));
            _mm256_permutevar8x32_epi32(codes, self.perm)
        }
    }

    /// FP8 codes of a prefix of `x` (divided by `s` first when `DIV`), as the AVX-512 version; returns
    /// its length (`32 * k`). Every intermediate is below 2^31, so signed compares order them right.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn fp8_encode<const DIV: bool>(
        x: &[f32],
        s: f32,
        f: Fp8Spec,
        out: &mut [u8],
    ) -> usize {
        fp8_encode_body::<DIV>(x, s, f, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn fp8_encode_body<const DIV: bool>(
        x: &[f32],
        s: f32,
        f: Fp8Spec,
        out: &mut [u8],
    ) -> usize {
        assert!(out.len() >= x.len());
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let enc = Fp8Lanes::new(f, s);
        let block = |i: usize| {
            prefetch(x, i + PREFETCH_AHEAD);
            prefetch(x, i + PREFETCH_AHEAD + 16);
            enc.codes_32::<DIV, false>(xp.add(i))
        };
        // Ordinary stores even for large outputs: streamed, the casts measured 2.3-2.5 G elements/s
        // against 2.7-2.8 (Zen 3, 64 Mi elements, the prefetch above in both).
        store_blocks_256(op, 1, x.len(), 32, false, block)
    }

    /// f32 values of a prefix of the FP8 codes `q` (times `s` when `MUL`); returns its length (see
    /// [`store_blocks_256`]: large outputs are streamed).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn fp8_decode<const MUL: bool>(
        q: &[u8],
        s: f32,
        f: Fp8Spec,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        fp8_decode_body::<MUL>(q, s, f, out, stream)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn fp8_decode_body<const MUL: bool>(
        q: &[u8],
        s: f32,
        f: Fp8Spec,
        out: &mut [f32],
        stream: bool,
    ) -> usize {
        let n = q.len();
        assert!(out.len() >= n);
        let (qp, op) = (q.as_ptr(), out.as_mut_ptr());
        // Through f16 (F16C `vcvtph2ps`, exact): a code's magnitude bits shifted to f16's field
        // boundary are an f16 with the code's significand and exponent field, subnormals included
        // (f16's exponent field is wider), worth 2^(bias - 15) times the code's value; the f32 is
        // then scaled by 2^(15 - bias) exactly. NaN codes become f16 NaN 0x7E00 (f32 0x7FC00000,
        // which the multiplications keep); E5M2's infinity is f16's. The lanes are 16-bit until the
        // conversion: half the work of building f32 bits in 32-bit lanes.
        let shift = _mm_cvtsi32_si128((10 - f.man) as i32);
        let mag_mask = _mm_set1_epi16((0x7f << (10 - f.man)) as i16);
        let sign_mask = _mm_set1_epi16(0x8000u16 as i16);
        // The largest magnitude that is not NaN: E4M3's `max`, E5M2's infinity (the code after it).
        let last = if f.ieee { f.max + 1 } else { f.max };
        let last = _mm_set1_epi16((last << (10 - f.man)) as i16);
        let nan = _mm_set1_epi16(0x7e00);
        let rebias = _mm256_set1_ps(f32::from_bits((127 + 15 - f.bias) << 23));
        let vs = _mm256_set1_ps(s);
        let block = |i: usize| {
            let w = _mm_cvtepu8_epi16(_mm_loadl_epi64(qp.add(i) as *const __m128i));
            let mag = _mm_and_si128(_mm_sll_epi16(w, shift), mag_mask);
            let mag = _mm_blendv_epi8(mag, nan, _mm_cmpgt_epi16(mag, last));
            let h = _mm_or_si128(mag, _mm_and_si128(_mm_slli_epi16::<8>(w), sign_mask));
            let v = _mm256_mul_ps(_mm256_cvtph_ps(h), rebias);
            let v = if MUL { _mm256_mul_ps(v, vs) } else { v };
            _mm256_castps_si256(v)
        };
        store_blocks_256(op as *mut u8, 4, n, 8, stream, block)
    }

    /// FP8 E4M3 scaled codes and scales of whole rows, as the INT8 ones (`int8_quant_rows`),
    /// through [`super::quant_rows`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn fp8_quant_rows(
        src: &[f32],
        cols: usize,
        glen: usize,
        dst: &mut [u8],
        scales: &mut [f32],
        accept: impl Fn(f32) -> bool,
    ) -> bool {
        super::quant_rows::<Fp8Lanes>(src, cols, glen, dst, scales, accept)
    }

    impl ScaledEncoder for Fp8Lanes {
        #[inline(always)]
        unsafe fn new(f: Fp8Spec, s: f32) -> Self {
            // What the overflow select and the packed signs rest on (see the methods).
            debug_assert!(f.overflow == f.max || f.overflow == f.max + 1);
            debug_assert!(s > 0.0);
            let emin = 1 - f.bias as i32;
            let emax = (f.max >> f.man) as i32 - f.bias as i32;
            Self {
                vs: _mm256_set1_ps(s),
                abs: _mm256_set1_epi32(0x7fff_ffff),
                exp_mask: _mm256_set1_epi32(0x7f80_0000),
                top: _mm256_set1_epi32((127 + emax + 1) << 23),
                floor: _mm256_set1_epi32((127 + emin) << 23),
                to_c: _mm256_set1_epi32(((23 - f.man) << 23) as i32),
                c_shift: _mm_cvtsi32_si128((23 - f.man) as i32),
                offset: _mm256_set1_epi32((emin + 150 - f.man as i32) << f.man),
                overflow: _mm256_set1_epi32(f.overflow as i32),
                nan: _mm256_set1_epi32(f.nan as i32),
                signbit: _mm256_set1_epi8(0x80u8 as i8),
                perm: _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
            }
        }

        #[inline(always)]
        unsafe fn with_scale(&self, s: f32) -> Self {
            Fp8Lanes {
                vs: _mm256_set1_ps(s),
                ..*self
            }
        }

        #[inline(always)]
        unsafe fn absmax_bits(x: &[f32]) -> u32 {
            absmax_bits_body(x)
        }

        /// The scaled codes of `x[..32 * k]` (this encoder holds the scale), with the absmax of
        /// `next` and the prefetch of `ahead` as in the INT8 quantizer (`int8_quant_body`); returns
        /// `32 * k` and [`NextAbsmax::taken`]. Always inlined into the rows kernel, which builds the
        /// constants once (as an `#[inline]` function LLVM keeps it out of line: a call per group
        /// that rebuilds them). No closure inside: one would not inherit the caller's AVX2, having no
        /// `target_feature` of its own.
        #[inline(always)]
        unsafe fn fused<const BOUNDED: bool>(
            &self,
            x: &[f32],
            out: &mut [u8],
            next: &[f32],
            ahead: &[f32],
        ) -> (usize, (usize, u32)) {
            let n = x.len() / 32 * 32;
            assert!(out.len() >= n);
            let mut next_abs = NextAbsmax::new(next, n);
            let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
            let mut i = 0;
            while i < n {
                prefetch(ahead, i);
                prefetch(ahead, i + 16);
                next_abs.step(i);
                let q = self.codes_32::<true, BOUNDED>(xp.add(i));
                _mm256_storeu_si256(op.add(i) as *mut __m256i, q);
                i += 32;
            }
            (n, next_abs.taken())
        }

        /// The tail (fewer than 32 codes) in portable code.
        #[inline(always)]
        unsafe fn tail(&self, x: &[f32], s: f32, out: &mut [u8]) {
            crate::kernels::fp8::e4m3_scaled_tail(x, s, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::fp8;
    use crate::kernels::simd::SimdLevel;
    use crate::kernels::x86::testing::{cast_at, large_input, same};
    use crate::kernels::{Shape, STREAM_STORES_MIN};

    /// The AVX2 FP8 casts of large outputs (the decoders stream their stores there, the encoders do
    /// not) give the portable code's bits, with a misaligned destination and a length that leaves a
    /// tail.
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
        let codes: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
        let both = |f: &dyn Fn(SimdLevel) -> Vec<u32>| {
            assert_eq!(f(SimdLevel::Avx2), f(SimdLevel::Scalar));
        };
        for saturate in [false, true] {
            both(&|l| {
                let c = |s: &[f32], d: &mut [u8]| fp8::f32_to_fp8_e4m3(s, d, saturate).unwrap();
                cast_at(l, &x, 0x55u8, c)
                    .iter()
                    .map(|&v| v as u32)
                    .collect()
            });
            both(&|l| {
                let c = |s: &[f32], d: &mut [u8]| fp8::f32_to_fp8_e5m2(s, d, saturate).unwrap();
                cast_at(l, &x, 0x55u8, c)
                    .iter()
                    .map(|&v| v as u32)
                    .collect()
            });
        }
        let bits = |v: Vec<f32>| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
        both(&|l| {
            let c = |s: &[u8], d: &mut [f32]| fp8::fp8_e4m3_to_f32(s, d).unwrap();
            bits(cast_at(l, &codes, 7.5f32, c))
        });
        both(&|l| {
            let c = |s: &[u8], d: &mut [f32]| fp8::fp8_e5m2_to_f32(s, d).unwrap();
            bits(cast_at(l, &codes, 7.5f32, c))
        });
    }

    /// The AVX2 FP8 dequantizer streams its stores when the whole output is large (each group's run
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
            let mut f8 = vec![0u8; shape.len()];
            fp8::fp8_e4m3_quantize(&x, shape, &mut f8, &mut scales).unwrap();
            let deq = |l| {
                let c = |q: &[u8], d: &mut [f32]| {
                    fp8::fp8_e4m3_dequantize(q, &scales, shape, d).unwrap()
                };
                cast_at(l, &f8, 7.5f32, c)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            same(deq(SimdLevel::Avx2), deq(SimdLevel::Scalar), "FP8", group);
        }
    }
}
