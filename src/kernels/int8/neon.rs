//! NEON bodies of the INT8 quantizer and dequantizer (the rules are in [`crate::kernels::neon`]).
#![allow(clippy::missing_safety_doc)]

use std::arch::aarch64::*;

use crate::kernels::neon::clamp_round;

/// INT8 codes of `x[..16 * k]` with scale `s != 0`; returns `16 * k`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn int8_quant(x: &[f32], s: f32, out: &mut [i8]) -> usize {
    let n = x.len() / 16 * 16;
    assert!(out.len() >= n);
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    let (vs, lo, hi) = (vdupq_n_f32(s), vdupq_n_f32(-127.0), vdupq_n_f32(127.0));
    let mut i = 0;
    while i < n {
        let q0 = clamp_round(vld1q_f32(xp.add(i)), vs, lo, hi);
        let q1 = clamp_round(vld1q_f32(xp.add(i + 4)), vs, lo, hi);
        let q2 = clamp_round(vld1q_f32(xp.add(i + 8)), vs, lo, hi);
        let q3 = clamp_round(vld1q_f32(xp.add(i + 12)), vs, lo, hi);
        let a = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
        let b = vcombine_s16(vmovn_s32(q2), vmovn_s32(q3));
        vst1q_s8(op.add(i), vcombine_s8(vmovn_s16(a), vmovn_s16(b)));
        i += 16;
    }
    n
}

/// `out[i] = q[i] * s` for the largest multiple of 8; returns it.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn int8_dequant(q: &[i8], s: f32, out: &mut [f32]) -> usize {
    let n = q.len() / 8 * 8;
    assert!(out.len() >= n);
    let (qp, op) = (q.as_ptr(), out.as_mut_ptr());
    let vs = vdupq_n_f32(s);
    let mut i = 0;
    while i < n {
        let w = vmovl_s8(vld1_s8(qp.add(i)));
        let lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
        let hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
        vst1q_f32(op.add(i), vmulq_f32(lo, vs));
        vst1q_f32(op.add(i + 4), vmulq_f32(hi, vs));
        i += 8;
    }
    n
}
