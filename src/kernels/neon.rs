//! NEON (aarch64 Advanced SIMD) bodies of the kernels, chosen at run time (see [`super::simd`]).
//!
//! Written to the same rules as the x86 bodies (`x86.rs`): the same operations as the portable code in
//! the same order, no fused multiply-add, so the results are bit-identical. Rounding to an integer uses
//! `fcvtns` (to nearest, ties to even, whatever the FPCR says); comparisons and selects are written out
//! where NEON's `fmin`/`fmax` would order -0.0 below +0.0 differently from the portable code.
//!
//! No aarch64 machine was at hand: these bodies have run only under user-mode emulation
//! (`scripts/test-neon.sh`, qemu-aarch64), where `tests/simd_paths.rs` and the other kernel tests hold
//! them to the scalar references bit for bit. They run the same tests on any aarch64 machine.
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
unsafe fn clamp_round(
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

/// FP8 codes of `x[..16 * k]` (divided by `s` first when `DIV`), the branch-free encoder of `fp8.rs`
/// lane for lane (a multiply then an add for the subnormal range, never fused); returns `16 * k`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn fp8_encode<const DIV: bool>(
    x: &[f32],
    s: f32,
    f: super::fp8::Fp8Spec,
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
    let magic = vdupq_n_f32(super::fp8::MAGIC);
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
    f: super::fp8::Fp8Spec,
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

/// The NEON bodies of the 4-bit quantizer (called through the `#[target_feature]` functions above).
pub(crate) struct Body;

impl super::kbit::Int4Body for Body {
    unsafe fn lo_hi(x: &[f32]) -> (f32, f32) {
        lo_hi(x)
    }
    unsafe fn quant(x: &[f32], scale: f32, zero: f32, out: &mut [u8], _: &[f32]) -> usize {
        int4_quant(x, scale, zero, out)
    }
}
