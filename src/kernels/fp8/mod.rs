//! FP8 casts (OCP E4M3FN and E5M2), the scaled FP8 E4M3 quantizer, and block-scaled FP8 E4M3 as
//! DeepSeek-V3 ships it (`block.rs`).
//!
//! # Formats
//! - **E4M3FN**: 1 sign, 4 exponent bits (bias 7), 3 significand bits. No infinities; the only NaN
//!   codes are `0x7F` and `0xFF` (S.1111.111). Largest finite: 448 (`0x7E`); smallest subnormal:
//!   2^-9; smallest normal: 2^-6.
//! - **E5M2**: 1 sign, 5 exponent bits (bias 15), 2 significand bits, IEEE-like: infinities `0x7C` /
//!   `0xFC`, NaN codes `0x7D..=0x7F` / `0xFD..=0xFF`. Largest finite: 57344 (`0x7B`); smallest
//!   subnormal: 2^-16; smallest normal: 2^-14.
//!
//! # Encoding f32 -> FP8
//! Round to nearest, ties to even, with the exponent range unbounded above: a value whose rounded
//! magnitude exceeds the largest finite one *overflows*. That happens from the midpoint between the
//! largest finite value and the next power-of-two step on: above 464 for E4M3 (464 itself is a tie and
//! goes to even, 448), from 61440 on for E5M2 (the tie goes to the even code, which is infinity).
//! - `saturate = false` (bit-exact with ml_dtypes `float8_e4m3fn` / `float8_e5m2` casts from float32):
//!   overflow and +-infinity give NaN of the input's sign (`0x7F`/`0xFF`) for E4M3, and +-infinity
//!   (`0x7C`/`0xFC`) for E5M2.
//! - `saturate = true`: overflow and +-infinity give +-max (`0x7E`/`0xFE` = +-448 for E4M3,
//!   `0x7B`/`0xFB` = +-57344 for E5M2); every other input gives the same code as without saturation.
//! - NaN (any payload) gives the canonical NaN of its sign in both modes: `0x7F`/`0xFF` for E4M3,
//!   `0x7E`/`0xFE` for E5M2 (as ml_dtypes).
//! - Signed zeros keep their sign; f32 subnormals become zeros of their sign.
//!
//! # Decoding FP8 -> f32
//! Exact. NaN codes give the canonical quiet NaN of the code's sign (`0x7FC0_0000`/`0xFFC0_0000`, as
//! ml_dtypes; the E5M2 payload is not kept); E5M2 infinities give f32 infinities.
//!
//! # Implementation
//! The fast encoder is branch-free per element (integer rounding for the normal range, the classic
//! "add 2^23" rounding for the subnormal range, selects for overflow and NaN) so that the compiler
//! vectorizes the loop. Like all Rust float code it assumes the default floating-point environment
//! (round to nearest even); flush-to-zero / denormals-are-zero modes set by a caller do not change
//! its results (f32 subnormals encode to zero either way). Decoding uses
//! a 256-entry table built at compile time by a `const fn`. The scalar references (`*_ref`) are written
//! from the definition of the formats with exact f64 arithmetic; `tests/casts.rs` holds the fast paths
//! to them over a dense sweep of the 2^32 f32 patterns and to ml_dtypes through golden fixtures.
use crate::error::Result;
use crate::kernels::minifloat::{decode_magnitude_ref, encode_magnitude_ref, MiniFloat};
use crate::kernels::par::{self, Exec};
use crate::kernels::simd::SimdLevel;
use crate::kernels::{absmax_bits, check_finite, check_len, finite_absmax, Shape};

mod block;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use block::{
    fp8_block_dequantize, fp8_block_dequantize_ref, fp8_block_quantize, fp8_block_quantize_ref,
    fp8_block_scale_count, BlockShape, QUANT_FP8_BLOCK_DEEPSEEK,
};

const E4M3_FORMAT: MiniFloat = MiniFloat {
    man_bits: 3,
    bias: 7,
};
const E5M2_FORMAT: MiniFloat = MiniFloat {
    man_bits: 2,
    bias: 15,
};

/// Reference f32 -> FP8 E4M3FN of one value (see the module docs for rounding, overflow and NaN).
pub fn f32_to_fp8_e4m3_ref(x: f32, saturate: bool) -> u8 {
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    if x.is_nan() {
        return sign | 0x7F;
    }
    let mag = encode_magnitude_ref(x.abs(), E4M3_FORMAT);
    let mag = match (mag > 0x7E, saturate) {
        (false, _) => mag as u8,
        (true, true) => 0x7E,
        (true, false) => 0x7F,
    };
    sign | mag
}

/// Reference f32 -> FP8 E5M2 of one value (see the module docs for rounding, overflow and NaN).
pub fn f32_to_fp8_e5m2_ref(x: f32, saturate: bool) -> u8 {
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    if x.is_nan() {
        return sign | 0x7E;
    }
    let mag = encode_magnitude_ref(x.abs(), E5M2_FORMAT);
    let mag = match (mag > 0x7B, saturate) {
        (false, _) => mag as u8,
        (true, true) => 0x7B,
        (true, false) => 0x7C,
    };
    sign | mag
}

/// Reference FP8 E4M3FN -> f32 of one code (exact; NaN codes give the canonical quiet NaN of their sign).
pub fn fp8_e4m3_to_f32_ref(c: u8) -> f32 {
    let neg = c & 0x80 != 0;
    let v = if c & 0x7F == 0x7F {
        f32::NAN
    } else {
        decode_magnitude_ref((c & 0x7F) as u32, E4M3_FORMAT) as f32
    };
    if neg {
        -v
    } else {
        v
    }
}

/// Reference FP8 E5M2 -> f32 of one code (exact; infinities map to infinities, NaN codes give the
/// canonical quiet NaN of their sign).
pub fn fp8_e5m2_to_f32_ref(c: u8) -> f32 {
    let neg = c & 0x80 != 0;
    let mag = (c & 0x7F) as u32;
    let v = match mag {
        0x7C => f32::INFINITY,
        0x7D..=0x7F => f32::NAN,
        _ => decode_magnitude_ref(mag, E5M2_FORMAT) as f32,
    };
    if neg {
        -v
    } else {
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Fast paths.

/// The constants of an FP8 format that the branch-free encoder needs.
trait Fp8Format {
    /// Significand bits.
    const MAN: u32;
    /// Exponent bias.
    const BIAS: u32;
    /// Largest finite magnitude code.
    const MAX: u32;
    /// Magnitude code of a non-saturated overflow (NaN for E4M3FN, infinity for E5M2).
    const OVERFLOW: u32;
    /// Magnitude code of NaN.
    const NAN: u32;
    /// 2^(bias + man - 1): scales the subnormal range onto integer codes.
    const SUB_SCALE: f32;
    /// 2^(1 - bias - man): the value of the smallest subnormal code.
    const SUB_UNIT: f32;
    /// IEEE-like specials (the all-ones exponent holds infinities and NaNs; E5M2) or only the
    /// all-ones code is NaN (E4M3FN).
    const IEEE: bool;
}

/// The constants of an FP8 format as run-time values, for the SIMD bodies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fp8Spec {
    pub(crate) man: u32,
    pub(crate) bias: u32,
    pub(crate) max: u32,
    /// Magnitude code of overflow and infinities (`max` when saturating).
    pub(crate) overflow: u32,
    pub(crate) nan: u32,
    /// Read by the NEON encoder only (the x86 ones round by addition, see `x86::avx2::Fp8Lanes`).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    pub(crate) sub_scale: f32,
    /// Read by the NEON decoder only (the x86 ones decode through f16).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    pub(crate) sub_unit: f32,
    pub(crate) ieee: bool,
}

fn spec<F: Fp8Format>(overflow: u32) -> Fp8Spec {
    Fp8Spec {
        man: F::MAN,
        bias: F::BIAS,
        max: F::MAX,
        overflow,
        nan: F::NAN,
        sub_scale: F::SUB_SCALE,
        sub_unit: F::SUB_UNIT,
        ieee: F::IEEE,
    }
}

struct E4m3;
impl Fp8Format for E4m3 {
    const MAN: u32 = 3;
    const BIAS: u32 = 7;
    const MAX: u32 = 0x7E;
    const OVERFLOW: u32 = 0x7F;
    const NAN: u32 = 0x7F;
    const SUB_SCALE: f32 = 512.0;
    const SUB_UNIT: f32 = 1.0 / 512.0;
    const IEEE: bool = false;
}

struct E5m2;
impl Fp8Format for E5m2 {
    const MAN: u32 = 2;
    const BIAS: u32 = 15;
    const MAX: u32 = 0x7B;
    const OVERFLOW: u32 = 0x7C;
    const NAN: u32 = 0x7E;
    const SUB_SCALE: f32 = 65536.0;
    const SUB_UNIT: f32 = 1.0 / 65536.0;
    const IEEE: bool = true;
}

/// 2^23: adding it to a non-negative f32 below 2^22 rounds the sum to an integer held in its low bits.
pub(crate) const MAGIC: f32 = 8_388_608.0;

/// Encodes the f32 with bits `bits`; `overflow` is the magnitude code for overflow and infinities
/// (`F::MAX` when saturating, `F::OVERFLOW` otherwise). Branch-free: both candidate codes are computed
/// and selected.
#[inline(always)]
fn encode_lane<F: Fp8Format>(bits: u32, overflow: u32) -> u8 {
    let sign = (bits >> 24) & 0x80;
    let a = bits & 0x7FFF_FFFF;
    // Normal range: round the f32 significand to MAN bits by adding half an ulp minus one plus the
    // parity of the kept part (round half to even; a carry moves into the exponent as it should),
    // then rebias the exponent.
    let shift = 23 - F::MAN;
    let normal = (a.wrapping_add((1 << (shift - 1)) - 1 + ((a >> shift) & 1)) >> shift)
        .wrapping_sub((127 - F::BIAS) << F::MAN);
    // Subnormal range (|x| < 2^(1 - bias)): the code is |x| / 2^(1 - bias - man) rounded to an
    // integer. The product is exact (a power-of-two scaling, below 2^man here), and adding 2^23 rounds
    // it to an integer, ties to even (f32 arithmetic rounds to nearest even: the only rounding mode
    // Rust supports), which the significand bits then hold. Garbage for the other lanes, selected away.
    let y = f32::from_bits(a) * F::SUB_SCALE + MAGIC;
    let sub = y.to_bits().wrapping_sub(MAGIC.to_bits());
    let mag = if a < (128 - F::BIAS) << 23 {
        sub
    } else {
        normal
    };
    let mag = if mag > F::MAX { overflow } else { mag };
    let mag = if a > 0x7F80_0000 { F::NAN } else { mag };
    (mag | sign) as u8
}

fn encode_slice<F: Fp8Format>(src: &[f32], dst: &mut [u8], saturate: bool) -> Result<()> {
    check_len("dst", dst.len(), src.len())?;
    let overflow = if saturate { F::MAX } else { F::OVERFLOW };
    let exec = Exec::current();
    let t = exec.threads_for(src.len(), usize::MAX);
    par::for_elements(t, src.len(), dst, |r, d| {
        encode_run::<F, false>(exec.level, &src[r], 1.0, overflow, d)
    });
    Ok(())
}

/// Codes of `x` (each divided by `s` first when `DIV`) into `out[..x.len()]`, with the body of `level`.
fn encode_run<F: Fp8Format, const DIV: bool>(
    level: SimdLevel,
    x: &[f32],
    s: f32,
    overflow: u32,
    out: &mut [u8],
) {
    let _spec = spec::<F>(overflow);
    let done = match level {
        // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => {
            unsafe { x86::avx512::fp8_encode::<DIV>(x, s, _spec, out) };
            x.len()
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { x86::avx2::fp8_encode::<DIV>(x, s, _spec, out) },
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => unsafe { neon::fp8_encode::<DIV>(x, s, _spec, out) },
        _ => 0,
    };
    for (d, &v) in out[done..x.len()].iter_mut().zip(&x[done..]) {
        let v = if DIV { v / s } else { v };
        *d = encode_lane::<F>(v.to_bits(), overflow);
    }
}

/// Converts `src` to FP8 E4M3FN codes in `dst[..src.len()]` (see the module docs for rounding,
/// saturation and NaN). Fails with `BufferTooSmall` (writing nothing) when `dst` is shorter than `src`.
pub fn f32_to_fp8_e4m3(src: &[f32], dst: &mut [u8], saturate: bool) -> Result<()> {
    encode_slice::<E4m3>(src, dst, saturate)
}

/// Converts `src` to FP8 E5M2 codes in `dst[..src.len()]` (see the module docs).
pub fn f32_to_fp8_e5m2(src: &[f32], dst: &mut [u8], saturate: bool) -> Result<()> {
    encode_slice::<E5m2>(src, dst, saturate)
}

/// f32 bits of an FP8 code (`man` significand bits, exponent `bias`; `ieee` = the all-ones exponent
/// holds infinities and NaNs, otherwise only the all-ones code is NaN), for the decode tables.
const fn decode_bits(c: u8, man: u32, bias: u32, ieee: bool) -> u32 {
    let sign = ((c as u32) & 0x80) << 24;
    let mag = (c & 0x7F) as u32;
    let exp = mag >> man;
    let m = mag & ((1 << man) - 1);
    let exp_max = (1 << (7 - man)) - 1;
    if ieee && exp == exp_max {
        return if m == 0 {
            sign | 0x7F80_0000
        } else {
            sign | 0x7FC0_0000
        };
    }
    if !ieee && mag == 0x7F {
        return sign | 0x7FC0_0000;
    }
    if exp == 0 {
        if m == 0 {
            return sign;
        }
        // m * 2^(1 - bias - man) with m's leading bit at position p: normalize.
        let mut p = 0;
        while (m >> (p + 1)) != 0 {
            p += 1;
        }
        let e32 = p + 1 + 127 - bias - man;
        return sign | (e32 << 23) | ((m - (1 << p)) << (23 - p));
    }
    sign | ((exp + 127 - bias) << 23) | (m << (23 - man))
}

const fn decode_table(man: u32, bias: u32, ieee: bool) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = decode_bits(i as u8, man, bias, ieee);
        i += 1;
    }
    t
}

/// f32 bits of every E4M3FN code.
static E4M3_TABLE: [u32; 256] = decode_table(3, 7, false);
/// f32 bits of every E5M2 code.
static E5M2_TABLE: [u32; 256] = decode_table(2, 15, true);

fn decode_slice<F: Fp8Format>(table: &[u32; 256], src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_len("dst", dst.len(), src.len())?;
    let exec = Exec::current();
    let stream = src.len() >= super::STREAM_STORES_MIN;
    let t = exec.threads_for(src.len(), usize::MAX);
    par::for_elements(t, src.len(), dst, |r, d| {
        decode_run::<F, false>(exec.level, table, &src[r], 1.0, d, stream);
        if stream {
            super::fence_streaming_stores();
        }
    });
    Ok(())
}

/// Values of the codes `q` (each times `s` when `MUL`) into `out[..q.len()]`, with the body of `level`
/// (`stream`: the whole output is large, see `STREAM_STORES_MIN`).
fn decode_run<F: Fp8Format, const MUL: bool>(
    level: SimdLevel,
    table: &[u32; 256],
    q: &[u8],
    s: f32,
    out: &mut [f32],
    stream: bool,
) {
    let _ = stream; // only the x86 bodies have streaming stores
    let _spec = spec::<F>(F::OVERFLOW);
    let done = match level {
        // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => {
            unsafe { x86::avx512::fp8_decode::<MUL>(q, s, _spec, out, stream) };
            q.len()
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { x86::avx2::fp8_decode::<MUL>(q, s, _spec, out, stream) },
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => unsafe { neon::fp8_decode::<MUL>(q, s, _spec, out) },
        _ => 0,
    };
    for (d, &c) in out[done..q.len()].iter_mut().zip(&q[done..]) {
        let v = f32::from_bits(table[c as usize]);
        *d = if MUL { v * s } else { v };
    }
}

/// E4M3 codes of whole rows of `cols` times their group's scale (groups of `glen`, `scales` one per
/// group, row by row) into `out`: [`decode_run`] group by group, or at AVX-512 one call for all the
/// groups (a call per group of 128 rebuilt the decoder's constants each time: 8.7 against 10.4 G
/// elements/s in L2).
fn decode_groups(
    level: SimdLevel,
    q: &[u8],
    scales: &[f32],
    (cols, glen): (usize, usize),
    out: &mut [f32],
    stream: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if level == SimdLevel::Avx512 {
        let spec = spec::<E4m3>(E4m3::OVERFLOW);
        // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
        unsafe { x86::avx512::fp8_decode_groups(q, scales, (cols, glen), spec, out, stream) };
        return;
    }
    let gpr = cols.div_ceil(glen);
    let rows = q.chunks_exact(cols).zip(out.chunks_exact_mut(cols));
    for ((q_row, x_row), s_row) in rows.zip(scales.chunks_exact(gpr)) {
        for ((q, x), &s) in q_row.chunks(glen).zip(x_row.chunks_mut(glen)).zip(s_row) {
            decode_run::<E4m3, true>(level, &E4M3_TABLE, q, s, x, stream);
        }
    }
}

/// Decodes FP8 E4M3FN codes to f32 in `dst[..src.len()]` (exact; NaN codes give a quiet NaN).
pub fn fp8_e4m3_to_f32(src: &[u8], dst: &mut [f32]) -> Result<()> {
    decode_slice::<E4m3>(&E4M3_TABLE, src, dst)
}

/// Decodes FP8 E5M2 codes to f32 in `dst[..src.len()]` (exact; infinities kept, NaN codes give a
/// quiet NaN).
pub fn fp8_e5m2_to_f32(src: &[u8], dst: &mut [f32]) -> Result<()> {
    decode_slice::<E5m2>(&E5M2_TABLE, src, dst)
}

// ---------------------------------------------------------------------------------------------
// The scaled FP8 E4M3 quantizer.

/// Largest finite E4M3FN value: the scaled quantizer maps each group's absmax onto it.
pub(crate) const E4M3_MAX: f32 = 448.0;

/// The format of the scaled quantizer's codes, for the SIMD bodies: E4M3FN, saturating.
#[cfg(target_arch = "x86_64")]
pub(crate) fn scaled_spec() -> Fp8Spec {
    spec::<E4m3>(E4m3::MAX)
}

/// The length checks of the scaled quantizer, made before anything is written.
fn check_sizes(src: &[f32], shape: Shape, dst: &[u8], scales: &[f32]) -> Result<()> {
    check_len("src", src.len(), shape.len())?;
    check_len("dst", dst.len(), shape.len())?;
    check_len("scales", scales.len(), shape.n_groups())
}

fn check_dequantize(src: &[u8], scales: &[f32], shape: Shape, dst: &[f32]) -> Result<()> {
    check_len("src", src.len(), shape.len())?;
    check_len("scales", scales.len(), shape.n_groups())?;
    check_len("dst", dst.len(), shape.len())?;
    check_finite(&scales[..shape.n_groups()], "scales")
}

/// FP8 E4M3 scaled quantization of a row-major `shape.rows x shape.cols` matrix, per group of
/// `shape` (one group per row, or groups of `group_size` columns, the last one of a row possibly
/// shorter): `scale = absmax / 448`, `code = fp8_e4m3(x / scale)` saturating (so the absmax element
/// maps to +-448 even when the division rounds above it). A group whose scale is 0 (all zeros, or an
/// absmax so small that `absmax / 448` underflows) gets scale 0 and codes `0x00`.
///
/// `dst[..rows*cols]` receives the codes, `scales[..n_groups]` the scales, row-major by group. One
/// pass over `src`: each group is checked just before it is quantized (see [`super::streaming`]).
/// Errors: `BufferTooSmall` when `src`, `dst` or `scales` is too short (nothing written); `NonFinite`
/// (naming the first bad index of `src`) when an input element is NaN or infinite, with
/// `dst[..rows*cols]` and `scales[..n_groups]` zero-filled.
pub fn fp8_e4m3_quantize(
    src: &[f32],
    shape: Shape,
    dst: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    check_sizes(src, shape, dst, scales)?;
    let cols = shape.cols;
    let src = &src[..shape.len()];
    let exec = Exec::current();
    super::streaming::symmetric(
        exec.threads_for(shape.len(), shape.rows),
        src,
        shape,
        dst,
        scales,
        // One scale for everything (per tensor): it needs the absmax of every element first.
        |dst, scales| quantize_per_tensor(src, dst, scales, exec),
        |rest, k, dst, scales| match exec.level {
            // The AVX-512 and AVX2 bodies check each group's absmax themselves, without a pass of
            // their own.
            // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => unsafe {
                let accept = |a: f32| a.is_finite();
                let g = shape.group_len();
                x86::avx512::fp8_quant_rows(rest, cols, g, dst, scales, accept)
            },
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => unsafe {
                let accept = |a: f32| a.is_finite();
                let g = shape.group_len();
                x86::avx2::fp8_quant_rows(rest, cols, g, dst, scales, accept)
            },
            _ => {
                let ok = absmax_bits(exec.level, &rest[..k * cols]) < 0x7F80_0000;
                if ok {
                    quantize_rows(exec.level, rest, shape, dst, scales);
                }
                ok
            }
        },
        || check_finite(src, "src"),
    )
}

/// One scale for the single row `src` (from the absmax pass, which checks it), its codes into `dst`;
/// the elements split across threads.
fn quantize_per_tensor(src: &[f32], dst: &mut [u8], scales: &mut [f32], exec: Exec) -> Result<()> {
    let scale = finite_absmax(src, "src", exec)? / E4M3_MAX;
    scales[0] = scale;
    let t = exec.threads_for(src.len(), usize::MAX);
    par::for_elements(t, src.len(), dst, |r, q| {
        if scale == 0.0 {
            q.fill(0);
        } else {
            encode_run::<E4m3, true>(exec.level, &src[r], scale, E4m3::MAX, q);
        }
    });
    Ok(())
}

/// The codes and scales of the rows that `scales` holds (`scales.len() / groups_per_row` of them,
/// `dst` holding their codes), read from the start of `src`, with the bodies of `level`. `src` may
/// go on past those rows: the AVX-512 and AVX2 bodies prefetch from it.
fn quantize_rows(level: SimdLevel, src: &[f32], shape: Shape, dst: &mut [u8], scales: &mut [f32]) {
    let (cols, gpr, g) = (shape.cols, shape.groups_per_row(), shape.group_len());
    match level {
        // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => {
            return {
                unsafe { x86::avx512::fp8_quant_rows(src, cols, g, dst, scales, |_| true) };
            };
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => {
            return {
                unsafe { x86::avx2::fp8_quant_rows(src, cols, g, dst, scales, |_| true) };
            };
        }
        _ => {}
    }
    let rows = src
        .chunks_exact(cols)
        .zip(dst.chunks_exact_mut(cols))
        .zip(scales.chunks_exact_mut(gpr));
    for ((x_row, q_row), s_row) in rows {
        for ((x, q), s) in x_row.chunks(g).zip(q_row.chunks_mut(g)).zip(s_row) {
            *s = quantize_group(level, x, q);
        }
    }
}

/// Portable E4M3 codes of `x / s` (saturating), for the tails of the AVX2 blocks.
#[cfg(target_arch = "x86_64")]
pub(crate) fn e4m3_scaled_tail(x: &[f32], s: f32, q: &mut [u8]) {
    for (c, &v) in q.iter_mut().zip(x) {
        *c = encode_lane::<E4m3>((v / s).to_bits(), E4m3::MAX);
    }
}

fn quantize_group(level: SimdLevel, x: &[f32], q: &mut [u8]) -> f32 {
    // The inputs are finite: the largest magnitude bits are those of the largest magnitude.
    let absmax = f32::from_bits(absmax_bits(level, x));
    let scale = absmax / E4M3_MAX;
    if scale == 0.0 {
        q.fill(0);
        return 0.0;
    }
    encode_run::<E4m3, true>(level, x, scale, E4m3::MAX, q);
    scale
}

/// Inverse of [`fp8_e4m3_quantize`]: `dst[i] = f32(code[i]) * scale[group of i]` into
/// `dst[..rows*cols]`. Errors (nothing written): `BufferTooSmall` when `src`, `scales` or `dst` is too
/// short; `NonFinite` when a scale is NaN or infinite. NaN codes (`0x7F`/`0xFF`) give NaN.
pub fn fp8_e4m3_dequantize(
    src: &[u8],
    scales: &[f32],
    shape: Shape,
    dst: &mut [f32],
) -> Result<()> {
    check_dequantize(src, scales, shape, dst)?;
    let exec = Exec::current();
    super::dequantize_blocks(exec, shape, true, dst, |b, dst| {
        let (src, scales) = (&src[b.elements], &scales[b.groups]);
        let groups = (b.shape.cols, b.shape.group_len());
        decode_groups(exec.level, src, scales, groups, dst, b.stream);
    });
    Ok(())
}

/// Scalar reference of [`fp8_e4m3_quantize`] (same contract), element by element with index arithmetic.
pub fn fp8_e4m3_quantize_ref(
    src: &[f32],
    shape: Shape,
    dst: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    check_sizes(src, shape, dst, scales)?;
    if let Err(e) = check_finite(&src[..shape.len()], "src") {
        dst[..shape.len()].fill(0);
        scales[..shape.n_groups()].fill(0.0);
        return Err(e);
    }
    let g = shape.group_len();
    for r in 0..shape.rows {
        for k in 0..shape.groups_per_row() {
            let (start, end) = (
                r * shape.cols + k * g,
                r * shape.cols + ((k + 1) * g).min(shape.cols),
            );
            let mut absmax = 0.0f32;
            for &v in &src[start..end] {
                if v.abs() > absmax {
                    absmax = v.abs();
                }
            }
            let scale = absmax / E4M3_MAX;
            scales[r * shape.groups_per_row() + k] = scale;
            for i in start..end {
                dst[i] = if scale == 0.0 {
                    0
                } else {
                    f32_to_fp8_e4m3_ref(src[i] / scale, true)
                };
            }
        }
    }
    Ok(())
}

/// Scalar reference of [`fp8_e4m3_dequantize`] (same contract).
pub fn fp8_e4m3_dequantize_ref(
    src: &[u8],
    scales: &[f32],
    shape: Shape,
    dst: &mut [f32],
) -> Result<()> {
    check_dequantize(src, scales, shape, dst)?;
    let g = shape.group_len();
    for i in 0..shape.len() {
        let (r, c) = (i / shape.cols, i % shape.cols);
        dst[i] = fp8_e4m3_to_f32_ref(src[i]) * scales[r * shape.groups_per_row() + c / g];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        assert_eq!(f32_to_fp8_e4m3_ref(1.0, false), 0x38);
        assert_eq!(f32_to_fp8_e4m3_ref(448.0, false), 0x7E);
        assert_eq!(f32_to_fp8_e4m3_ref(464.0, false), 0x7E);
        assert_eq!(f32_to_fp8_e4m3_ref(464.00003, false), 0x7F);
        assert_eq!(f32_to_fp8_e4m3_ref(-480.0, false), 0xFF);
        assert_eq!(f32_to_fp8_e4m3_ref(480.0, true), 0x7E);
        assert_eq!(f32_to_fp8_e4m3_ref(f32::NEG_INFINITY, true), 0xFE);
        assert_eq!(f32_to_fp8_e4m3_ref(2f32.powi(-10), false), 0x00);
        assert_eq!(f32_to_fp8_e4m3_ref(-(2f32.powi(-9)), false), 0x81);
        assert_eq!(f32_to_fp8_e5m2_ref(57344.0, false), 0x7B);
        assert_eq!(f32_to_fp8_e5m2_ref(61440.0, false), 0x7C);
        assert_eq!(f32_to_fp8_e5m2_ref(61440.0, true), 0x7B);
        assert_eq!(f32_to_fp8_e5m2_ref(-f32::NAN, true), 0xFE);
        assert_eq!(fp8_e4m3_to_f32_ref(0x7E), 448.0);
        assert_eq!(fp8_e4m3_to_f32_ref(0x01), 2f32.powi(-9));
        assert_eq!(fp8_e5m2_to_f32_ref(0xFC), f32::NEG_INFINITY);
    }

    #[test]
    fn tables_equal_the_reference_decoders() {
        for c in 0..=255u8 {
            let (a, b) = (
                f32::from_bits(E4M3_TABLE[c as usize]),
                fp8_e4m3_to_f32_ref(c),
            );
            assert!(a.to_bits() == b.to_bits(), "e4m3 {c:#x}: {a} vs {b}");
            let (a, b) = (
                f32::from_bits(E5M2_TABLE[c as usize]),
                fp8_e5m2_to_f32_ref(c),
            );
            assert!(a.to_bits() == b.to_bits(), "e5m2 {c:#x}: {a} vs {b}");
        }
    }

    #[test]
    fn every_code_round_trips_through_the_encoders() {
        for c in 0..=255u8 {
            let x = fp8_e4m3_to_f32_ref(c);
            for sat in [false, true] {
                let mut d = [0u8];
                f32_to_fp8_e4m3(&[x], &mut d, sat).unwrap();
                assert_eq!(d[0], c, "e4m3 {c:#x}");
                let y = fp8_e5m2_to_f32_ref(c);
                f32_to_fp8_e5m2(&[y], &mut d, sat).unwrap();
                let want = if y.is_nan() {
                    (c & 0x80) | 0x7E
                } else if y.is_infinite() && sat {
                    (c & 0x80) | 0x7B
                } else {
                    c
                };
                assert_eq!(d[0], want, "e5m2 {c:#x}");
            }
        }
    }
}
