//! What the NEON (aarch64 Advanced SIMD) bodies of the formats (`<format>/neon.rs`, chosen at run
//! time, see [`super::simd`]) share: the absmax reduction and the clamped rounding; and their rules.
//!
//! Written to the same rules as the x86 bodies (`kernels/x86.rs`): the same operations as the portable code in
//! the same order, no fused multiply-add, so the results are bit-identical. Rounding to an integer uses
//! `fcvtns` (to nearest, ties to even, whatever the FPCR says); comparisons and selects are written out
//! where NEON's `fmin`/`fmax` would order -0.0 below +0.0 differently from the portable code.
//!
//! The NEON bodies are tested under user-mode emulation (`scripts/test-neon.sh`, qemu-aarch64), where
//! `tests/simd_paths.rs` and the other kernel tests hold them to the scalar references bit for bit;
//! the same tests run on any aarch64 machine.
#![allow(clippy::missing_safety_doc)]

use std::arch::aarch64::*;

/// Largest sign-cleared bit pattern of `x`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn absmax_bits(x: &[f32]) -> u32 {
    let p = x.as_ptr() as *const u32;
    let n = x.len();
    let m = vdupq_n_u32(0x7fff_ffff);
    let (mut a0, mut a1, mut a2, mut a3) = (
        vdupq_n_u32(0),
        vdupq_n_u32(0),
        vdupq_n_u32(0),
        vdupq_n_u32(0),
    );
    let mut i = 0;
    while i + 16 <= n {
        a0 = vmaxq_u32(a0, vandq_u32(vld1q_u32(p.add(i)), m));
        a1 = vmaxq_u32(a1, vandq_u32(vld1q_u32(p.add(i + 4)), m));
        a2 = vmaxq_u32(a2, vandq_u32(vld1q_u32(p.add(i + 8)), m));
        a3 = vmaxq_u32(a3, vandq_u32(vld1q_u32(p.add(i + 12)), m));
        i += 16;
    }
    let mut r = vmaxvq_u32(vmaxq_u32(vmaxq_u32(a0, a1), vmaxq_u32(a2, a3)));
    for v in &x[i..] {
        r = r.max(v.to_bits() & 0x7fff_ffff);
    }
    r
}

/// `min(max(x / s, lo), hi)` rounded to nearest even, as the portable clamps (no NaN can occur).
#[inline(always)]
pub(crate) unsafe fn clamp_round(
    v: float32x4_t,
    s: float32x4_t,
    lo: float32x4_t,
    hi: float32x4_t,
) -> int32x4_t {
    let y = vdivq_f32(v, s);
    let y = vbslq_f32(vcltq_f32(y, lo), lo, y);
    let y = vbslq_f32(vcgtq_f32(y, hi), hi, y);
    vcvtnq_s32_f32(y)
}
