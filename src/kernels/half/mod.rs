//! FP16 (IEEE 754 binary16) and BF16 (bfloat16) casts from and to f32, over slices.
//!
//! Rounding is to nearest, ties to even, with IEEE overflow: a finite f32 whose magnitude rounds
//! past the largest finite value gives an infinity of its sign (f16: from 65520 on; bf16: from
//! `0x7F7F_8000` on). Subnormals of both formats are produced and read exactly; signed zeros keep
//! their sign; infinities map to infinities.
//!
//! The reference for these formats is the `half` crate: every output, NaN bits included, equals
//! `half::f16::from_f32` / `to_f32` and `half::bf16::from_f32` / `to_f32`. For every non-NaN input
//! the outputs also equal numpy's `float16` and ml_dtypes' `bfloat16` casts (golden fixtures in
//! `tests/data/golden`).
//!
//! NaN: a NaN always stays a NaN of the same sign, and it comes out *quiet*:
//! - f32 -> f16: `sign | 0x7E00 | (f32 significand >> 13)` (quiet bit set, the top significand bits
//!   kept; this is also what x86 F16C does);
//! - f16 -> f32: `sign | 0x7FC0_0000 | (f16 significand << 13)`;
//! - f32 -> bf16: `(bits >> 16) | 0x0040`;
//! - bf16 -> f32: `(bits | 0x0040) << 16`.
//!
//! numpy and ml_dtypes differ only in NaN bits (numpy's f16 keeps a signalling payload unquieted,
//! e.g. `0x7F80_0001 -> 0x7C01`; ml_dtypes' bf16 encodes every NaN as `0x7FC0`/`0xFFC0` and decodes
//! bf16 NaN bits unchanged); the tests hold NaN outputs to them as "NaN of the same sign".
//!
//! The fast paths are chosen at run time (see [`super::simd`]): with AVX-512 or AVX2 the library's own
//! `vcvtps2ph`/`vcvtph2ps` (F16C) and integer bf16 bodies; at the portable level (and for the tails of
//! the AVX2 blocks) `half`'s slice conversions for f16 (which use F16C themselves when the CPU has it,
//! otherwise `half`'s software path) and branch-free integer code that the compiler vectorizes for
//! bf16. All are bit-exact with the scalar references. Every fast path keeps its scalar
//! reference (`*_ref`) beside it; `tests/casts.rs` holds them to each other over a dense sweep of all
//! 2^32 f32 patterns and every 16-bit pattern.
use ::half::f16;
use ::half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use crate::error::Result;
use crate::kernels::check_len;
use crate::kernels::par::{self, Exec};
use crate::kernels::simd::SimdLevel;

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Converts `src` to FP16 bits in `dst[..src.len()]` (round to nearest even; see the module docs for
/// overflow and NaN). Fails with `BufferTooSmall` (writing nothing) when `dst` is shorter than `src`.
pub fn f32_to_f16(src: &[f32], dst: &mut [u16]) -> Result<()> {
    check_len("dst", dst.len(), src.len())?;
    run(src, dst, |level, x, d| {
        let done = match level {
            // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                unsafe { x86::avx512::f32_to_f16(x, d) };
                x.len()
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => unsafe { x86::avx2::f32_to_f16(x, d) },
            _ => 0,
        };
        let d: &mut [f16] = d[done..].reinterpret_cast_mut();
        d.convert_from_f32_slice(&x[done..]);
    });
    Ok(())
}

/// Converts FP16 bits to f32 (exact; NaN quieted, see the module docs) into `dst[..src.len()]`.
pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) -> Result<()> {
    check_len("dst", dst.len(), src.len())?;
    run(src, dst, |level, h, d| {
        let done = match level {
            // SAFETY: as in `f32_to_f16`.
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                unsafe { x86::avx512::f16_to_f32(h, d) };
                h.len()
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => unsafe { x86::avx2::f16_to_f32(h, d) },
            _ => 0,
        };
        let h: &[f16] = h[done..].reinterpret_cast();
        h.convert_to_f32_slice(&mut d[done..]);
    });
    Ok(())
}

/// Converts `src` to BF16 bits in `dst[..src.len()]` (round to nearest even; NaN quieted).
pub fn f32_to_bf16(src: &[f32], dst: &mut [u16]) -> Result<()> {
    check_len("dst", dst.len(), src.len())?;
    run(src, dst, |level, x, d| {
        let done = match level {
            // SAFETY: as in `f32_to_f16`.
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                unsafe { x86::avx512::f32_to_bf16(x, d) };
                x.len()
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => unsafe { x86::avx2::f32_to_bf16(x, d) },
            #[cfg(target_arch = "aarch64")]
            SimdLevel::Neon => unsafe { neon::f32_to_bf16(x, d) },
            _ => 0,
        };
        for (d, s) in d[done..].iter_mut().zip(&x[done..]) {
            *d = f32_to_bf16_lane(s.to_bits());
        }
    });
    Ok(())
}

/// Converts BF16 bits to f32 (exact; NaN quieted) into `dst[..src.len()]`.
pub fn bf16_to_f32(src: &[u16], dst: &mut [f32]) -> Result<()> {
    check_len("dst", dst.len(), src.len())?;
    run(src, dst, |level, h, d| {
        let done = match level {
            // SAFETY: as in `f32_to_f16`.
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                unsafe { x86::avx512::bf16_to_f32(h, d) };
                h.len()
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => unsafe { x86::avx2::bf16_to_f32(h, d) },
            #[cfg(target_arch = "aarch64")]
            SimdLevel::Neon => unsafe { neon::bf16_to_f32(h, d) },
            _ => 0,
        };
        for (d, &s) in d[done..].iter_mut().zip(&h[done..]) {
            let quiet = if s & 0x7FFF > 0x7F80 { 0x0040 } else { 0 };
            *d = f32::from_bits(((s | quiet) as u32) << 16);
        }
    });
    Ok(())
}

/// Runs `body(level, src_block, dst_block)` over the blocks of `src` (and the matching prefix of `dst`)
/// on the threads and SIMD level in force; `dst` is at least as long as `src`.
fn run<S: Sync, D: Send>(
    src: &[S],
    dst: &mut [D],
    body: impl Fn(SimdLevel, &[S], &mut [D]) + Sync,
) {
    let exec = Exec::current();
    let t = exec.threads_for(src.len(), usize::MAX);
    par::for_elements(t, src.len(), dst, |r, d| body(exec.level, &src[r], d));
}

/// The branch-free body of [`f32_to_bf16`]: add half an ulp minus one plus the ulp's parity bit
/// (round half to even in one addition), shift; NaN takes the quiet path instead.
#[inline(always)]
fn f32_to_bf16_lane(x: u32) -> u16 {
    let rounded = (x.wrapping_add(0x7FFF + ((x >> 16) & 1)) >> 16) as u16;
    let nan = ((x >> 16) | 0x0040) as u16;
    if x & 0x7FFF_FFFF > 0x7F80_0000 {
        nan
    } else {
        rounded
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar references: written from the definition of the formats (exact f64 arithmetic), not from the
// bit tricks of the fast paths.

/// Reference f32 -> FP16 bits of one value (round to nearest even, IEEE overflow, NaN quieted).
pub fn f32_to_f16_ref(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    if x.is_nan() {
        return sign | 0x7E00 | ((bits & 0x007F_FFFF) >> 13) as u16;
    }
    let mag = super::minifloat::encode_magnitude_ref(x.abs(), F16_FORMAT);
    // Largest finite f16 is 0x7BFF; anything beyond (infinities included) is infinity.
    sign | mag.min(0x7C00) as u16
}

/// Reference FP16 bits -> f32 of one value (exact; NaN quieted).
pub fn f16_to_f32_ref(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    if h & 0x7C00 == 0x7C00 {
        let man = (h & 0x03FF) as u32;
        return f32::from_bits(if man == 0 {
            sign | 0x7F80_0000
        } else {
            sign | 0x7FC0_0000 | (man << 13)
        });
    }
    let v = super::minifloat::decode_magnitude_ref((h & 0x7FFF) as u32, F16_FORMAT) as f32;
    f32::from_bits(sign | v.to_bits())
}

/// Reference f32 -> BF16 bits of one value (round to nearest even, IEEE overflow, NaN quieted).
pub fn f32_to_bf16_ref(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    if x.is_nan() {
        return ((bits >> 16) | 0x0040) as u16;
    }
    let mag = super::minifloat::encode_magnitude_ref(x.abs(), BF16_FORMAT);
    sign | mag.min(0x7F80) as u16
}

/// Reference BF16 bits -> f32 of one value (exact; NaN quieted).
pub fn bf16_to_f32_ref(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    if h & 0x7F80 == 0x7F80 {
        let man = (h & 0x007F) as u32;
        return f32::from_bits(if man == 0 {
            sign | 0x7F80_0000
        } else {
            sign | 0x7FC0_0000 | (man << 16)
        });
    }
    let v = super::minifloat::decode_magnitude_ref((h & 0x7FFF) as u32, BF16_FORMAT) as f32;
    f32::from_bits(sign | v.to_bits())
}

/// binary16: 10 significand bits, bias 15.
const F16_FORMAT: super::minifloat::MiniFloat = super::minifloat::MiniFloat {
    man_bits: 10,
    bias: 15,
};
/// bfloat16: 7 significand bits, bias 127.
const BF16_FORMAT: super::minifloat::MiniFloat = super::minifloat::MiniFloat {
    man_bits: 7,
    bias: 127,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(f32_to_f16_ref(1.0), 0x3C00);
        assert_eq!(f32_to_bf16_ref(1.0), 0x3F80);
        assert_eq!(f32_to_f16_ref(65504.0), 0x7BFF);
        assert_eq!(f32_to_f16_ref(65519.99), 0x7BFF);
        assert_eq!(f32_to_f16_ref(65520.0), 0x7C00);
        assert_eq!(f32_to_f16_ref(-0.0), 0x8000);
        assert_eq!(f32_to_f16_ref(f32::NEG_INFINITY), 0xFC00);
        assert_eq!(f32_to_f16_ref(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16_ref(2f32.powi(-25)), 0x0000); // tie to even
        assert_eq!(f16_to_f32_ref(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32_ref(0x7C01).to_bits(), 0x7FC0_2000);
        assert_eq!(bf16_to_f32_ref(0xFF81).to_bits(), 0xFFC1_0000);
        assert_eq!(f32_to_bf16_ref(f32::from_bits(0x7F7F_8000)), 0x7F80);
        assert_eq!(f32_to_bf16_ref(f32::from_bits(0x7F7F_7FFF)), 0x7F7F);
    }

    #[test]
    fn fast_paths_check_lengths_and_write_only_the_prefix() {
        let mut d = [7u16; 3];
        assert!(f32_to_f16(&[1.0, 2.0], &mut d[..1]).is_err());
        assert_eq!(d, [7; 3]);
        f32_to_f16(&[1.0, 2.0], &mut d).unwrap();
        assert_eq!(d, [0x3C00, 0x4000, 7]);
        f32_to_bf16(&[1.0], &mut d).unwrap();
        assert_eq!(d[..2], [0x3F80, 0x4000]);
        let mut f = [9f32; 2];
        assert!(bf16_to_f32(&[1, 2, 3], &mut f).is_err());
        f16_to_f32(&[0x3C00], &mut f).unwrap();
        assert_eq!(f, [1.0, 9.0]);
    }
}
