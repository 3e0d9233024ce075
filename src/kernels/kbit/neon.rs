//! NEON bodies of the 4-bit quantizer and dequantizer (the rules are in [`crate::kernels::neon`]).
#![allow(clippy::missing_safety_doc)]

use std::arch::aarch64::*;

use crate::kernels::neon::clamp_round;

/// Minimum and maximum folded with +0.0, by strict comparisons (see `kbit::lo_hi_fast`).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn lo_hi(x: &[f32]) -> (f32, f32) {
    let p = x.as_ptr();
    let n = x.len();
    let (mut lo, mut hi) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    let mut i = 0;
    while i + 4 <= n {
        let v = vld1q_f32(p.add(i));
        lo = vbslq_f32(vcltq_f32(v, lo), v, lo);
        hi = vbslq_f32(vcgtq_f32(v, hi), v, hi);
        i += 4;
    }
    let (mut l, mut h) = ([0f32; 4], [0f32; 4]);
    vst1q_f32(l.as_mut_ptr(), lo);
    vst1q_f32(h.as_mut_ptr(), hi);
    let (mut a, mut b) = (0.0f32, 0.0f32);
    for (&u, &w) in l.iter().zip(&h) {
        a = if u < a { u } else { a };
        b = if w > b { w } else { b };
    }
    for &v in &x[i..] {
        a = if v < a { v } else { a };
        b = if v > b { v } else { b };
    }
    (a, b)
}

/// Packed INT4 codes of `x[..32 * k]` with `(scale != 0, zero)`; returns `32 * k`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn int4_quant(x: &[f32], scale: f32, zero: f32, out: &mut [u8]) -> usize {
    let n = x.len() / 32 * 32;
    assert!(out.len() >= n / 2);
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    let (vs, lo, hi) = (
        vdupq_n_f32(scale),
        vdupq_n_f32(-zero),
        vdupq_n_f32(15.0 - zero),
    );
    let vz = vdupq_n_s32(zero as i32);
    let codes16 = |i: usize| {
        let q = |k: usize| {
            vreinterpretq_u32_s32(vaddq_s32(
                clamp_round(vld1q_f32(xp.add(i + 4 * k)), vs, lo, hi),
                vz,
            ))
        };
        let a = vcombine_u16(vmovn_u32(q(0)), vmovn_u32(q(1)));
        let b = vcombine_u16(vmovn_u32(q(2)), vmovn_u32(q(3)));
        vcombine_u8(vmovn_u16(a), vmovn_u16(b))
    };
    let mut i = 0;
    while i < n {
        let (c0, c1) = (codes16(i), codes16(i + 16));
        let even = vuzp1q_u8(c0, c1);
        let odd = vuzp2q_u8(c0, c1);
        vst1q_u8(op.add(i / 2), vorrq_u8(even, vshlq_n_u8::<4>(odd)));
        i += 32;
    }
    n
}

/// `out[..32 * k] = (code - zero) * scale` of packed INT4 codes; returns `32 * k`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn int4_dequant(src: &[u8], scale: f32, zero: f32, out: &mut [f32]) -> usize {
    let n = out.len() / 32 * 32;
    assert!(src.len() >= n / 2);
    let (sp, op) = (src.as_ptr(), out.as_mut_ptr());
    let (vs, vz) = (vdupq_n_f32(scale), vdupq_n_f32(zero));
    let mut i = 0;
    while i < n {
        let b = vld1q_u8(sp.add(i / 2));
        let lo = vandq_u8(b, vdupq_n_u8(0x0f));
        let hi = vshrq_n_u8::<4>(b);
        for (k, c) in [vzip1q_u8(lo, hi), vzip2q_u8(lo, hi)]
            .into_iter()
            .enumerate()
        {
            for (h, w) in [vmovl_u8(vget_low_u8(c)), vmovl_u8(vget_high_u8(c))]
                .into_iter()
                .enumerate()
            {
                let f0 = vcvtq_f32_u32(vmovl_u16(vget_low_u16(w)));
                let f1 = vcvtq_f32_u32(vmovl_u16(vget_high_u16(w)));
                let o = op.add(i + 16 * k + 8 * h);
                vst1q_f32(o, vmulq_f32(vsubq_f32(f0, vz), vs));
                vst1q_f32(o.add(4), vmulq_f32(vsubq_f32(f1, vz), vs));
            }
        }
        i += 32;
    }
    n
}
/// The NEON bodies of the 4-bit quantizer (called through the `#[target_feature]` functions above).
pub(crate) struct Body;

impl super::Int4Body for Body {
    unsafe fn lo_hi(x: &[f32]) -> (f32, f32) {
        lo_hi(x)
    }
    unsafe fn quant(x: &[f32], scale: f32, zero: f32, out: &mut [u8], _: &[f32]) -> usize {
        int4_quant(x, scale, zero, out)
    }
}
