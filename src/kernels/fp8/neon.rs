//! NEON bodies of the FP8 casts and of the scaled FP8 quantizer (the rules are in
//! [`crate::kernels::neon`]).
#![allow(clippy::missing_safety_doc)]

use std::arch::aarch64::*;

use crate::kernels::fp8::Fp8Spec;

/// FP8 codes of `x[..16 * k]` (divided by `s` first when `DIV`), the branch-free encoder of `fp8.rs`
/// lane for lane (a multiply then an add for the subnormal range, never fused); returns `16 * k`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn fp8_encode<const DIV: bool>(
    x: &[f32],
    s: f32,
    f: Fp8Spec,
    out: &mut [u8],
) -> usize {
    let n = x.len() / 16 * 16;
    assert!(out.len() >= n);
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    let vs = vdupq_n_f32(s);
    let rshift = vdupq_n_s32(-((23 - f.man) as i32));
    let half = vdupq_n_u32((1u32 << (22 - f.man)) - 1);
    let one = vdupq_n_u32(1);
    let rebias = vdupq_n_u32((127 - f.bias) << f.man);
    let sub_scale = vdupq_n_f32(f.sub_scale);
    let magic = vdupq_n_f32(crate::kernels::fp8::MAGIC);
    let sub_limit = vdupq_n_u32((128 - f.bias) << 23);
    let (max, overflow, nan) = (
        vdupq_n_u32(f.max),
        vdupq_n_u32(f.overflow),
        vdupq_n_u32(f.nan),
    );
    let code = |i: usize| {
        let v = vld1q_f32(xp.add(i));
        let v = if DIV { vdivq_f32(v, vs) } else { v };
        let bits = vreinterpretq_u32_f32(v);
        let sign = vandq_u32(vshrq_n_u32::<24>(bits), vdupq_n_u32(0x80));
        let a = vandq_u32(bits, vdupq_n_u32(0x7fff_ffff));
        let odd = vandq_u32(vshlq_u32(a, rshift), one);
        let normal = vsubq_u32(
            vshlq_u32(vaddq_u32(vaddq_u32(a, half), odd), rshift),
            rebias,
        );
        let y = vaddq_f32(vmulq_f32(vreinterpretq_f32_u32(a), sub_scale), magic);
        let sub = vsubq_u32(vreinterpretq_u32_f32(y), vreinterpretq_u32_f32(magic));
        let mag = vbslq_u32(vcltq_u32(a, sub_limit), sub, normal);
        let mag = vbslq_u32(vcgtq_u32(mag, max), overflow, mag);
        let mag = vbslq_u32(vcgtq_u32(a, vdupq_n_u32(0x7f80_0000)), nan, mag);
        vmovn_u32(vorrq_u32(mag, sign))
    };
    let mut i = 0;
    while i < n {
        let a = vcombine_u16(code(i), code(i + 4));
        let b = vcombine_u16(code(i + 8), code(i + 12));
        vst1q_u8(op.add(i), vcombine_u8(vmovn_u16(a), vmovn_u16(b)));
        i += 16;
    }
    n
}

/// f32 values of FP8 codes `q[..8 * k]` (times `s` when `MUL`), equal to the decode tables of
/// `fp8.rs`; returns `8 * k`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn fp8_decode<const MUL: bool>(
    q: &[u8],
    s: f32,
    f: Fp8Spec,
    out: &mut [f32],
) -> usize {
    let n = q.len() / 8 * 8;
    assert!(out.len() >= n);
    let (qp, op) = (q.as_ptr(), out.as_mut_ptr());
    let vs = vdupq_n_f32(s);
    let lshift = vdupq_n_s32((23 - f.man) as i32);
    let rebias = vdupq_n_u32((127 - f.bias) << 23);
    let unit = vdupq_n_f32(f.sub_unit);
    let sub_limit = vdupq_n_u32(1 << f.man);
    let value = |c: uint32x4_t| {
        let sign = vshlq_n_u32::<24>(vandq_u32(c, vdupq_n_u32(0x80)));
        let mag = vandq_u32(c, vdupq_n_u32(0x7f));
        let normal = vaddq_u32(vshlq_u32(mag, lshift), rebias);
        let sub = vreinterpretq_u32_f32(vmulq_f32(vcvtq_f32_u32(mag), unit));
        let v = vbslq_u32(vcltq_u32(mag, sub_limit), sub, normal);
        let v = if f.ieee {
            let v = vbslq_u32(
                vceqq_u32(mag, vdupq_n_u32(0x7c)),
                vdupq_n_u32(0x7f80_0000),
                v,
            );
            vbslq_u32(
                vcgtq_u32(mag, vdupq_n_u32(0x7c)),
                vdupq_n_u32(0x7fc0_0000),
                v,
            )
        } else {
            vbslq_u32(
                vceqq_u32(mag, vdupq_n_u32(0x7f)),
                vdupq_n_u32(0x7fc0_0000),
                v,
            )
        };
        let v = vreinterpretq_f32_u32(vorrq_u32(v, sign));
        if MUL {
            vmulq_f32(v, vs)
        } else {
            v
        }
    };
    let mut i = 0;
    while i < n {
        let w = vmovl_u8(vld1_u8(qp.add(i)));
        vst1q_f32(op.add(i), value(vmovl_u16(vget_low_u16(w))));
        vst1q_f32(op.add(i + 4), value(vmovl_u16(vget_high_u16(w))));
        i += 8;
    }
    n
}
