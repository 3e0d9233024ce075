//! NEON bodies of the bf16 casts (the rules are in [`crate::kernels::neon`]).
#![allow(clippy::missing_safety_doc)]

use std::arch::aarch64::*;

/// f32 -> bf16 bits of `x[..8 * k]`: `(x + 0x7fff + ((x >> 16) & 1)) >> 16`, NaN `(x >> 16) | 0x40`;
/// returns `8 * k`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn f32_to_bf16(x: &[f32], out: &mut [u16]) -> usize {
    let n = x.len() / 8 * 8;
    assert!(out.len() >= n);
    let (xp, op) = (x.as_ptr() as *const u32, out.as_mut_ptr());
    let conv = |i: usize| {
        let b = vld1q_u32(xp.add(i));
        let odd = vandq_u32(vshrq_n_u32::<16>(b), vdupq_n_u32(1));
        let rounded = vshrq_n_u32::<16>(vaddq_u32(vaddq_u32(b, vdupq_n_u32(0x7fff)), odd));
        let nan = vorrq_u32(vshrq_n_u32::<16>(b), vdupq_n_u32(0x40));
        let is_nan = vcgtq_u32(
            vandq_u32(b, vdupq_n_u32(0x7fff_ffff)),
            vdupq_n_u32(0x7f80_0000),
        );
        vmovn_u32(vbslq_u32(is_nan, nan, rounded))
    };
    let mut i = 0;
    while i < n {
        vst1q_u16(op.add(i), vcombine_u16(conv(i), conv(i + 4)));
        i += 8;
    }
    n
}

/// bf16 bits -> f32 of `h[..8 * k]`: `(h | quiet) << 16`, `quiet = 0x40` for NaN; returns `8 * k`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn bf16_to_f32(h: &[u16], out: &mut [f32]) -> usize {
    let n = h.len() / 8 * 8;
    assert!(out.len() >= n);
    let (hp, op) = (h.as_ptr(), out.as_mut_ptr());
    let conv = |v: uint32x4_t| {
        let is_nan = vcgtq_u32(vandq_u32(v, vdupq_n_u32(0x7fff)), vdupq_n_u32(0x7f80));
        let v = vorrq_u32(v, vandq_u32(is_nan, vdupq_n_u32(0x40)));
        vreinterpretq_f32_u32(vshlq_n_u32::<16>(v))
    };
    let mut i = 0;
    while i < n {
        let w = vld1q_u16(hp.add(i));
        vst1q_f32(op.add(i), conv(vmovl_u16(vget_low_u16(w))));
        vst1q_f32(op.add(i + 4), conv(vmovl_u16(vget_high_u16(w))));
        i += 8;
    }
    n
}
