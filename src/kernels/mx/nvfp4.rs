//! NVFP4: blocks of 16 E2M1 values under an FP8 E4M3 block scale and one f32 scale for the whole
//! tensor (NVIDIA's format), as compressed-tensors (`nvfp4-pack-quantized`, the format vLLM loads)
//! computes it.
//!
//! The convention is compressed-tensors' (`generate_gparam`, `calculate_qparams`, `_quantize`,
//! `_dequantize` in 0.20.1), bit-exact with it (fixtures in `tests/data/mx`), with every step an f32
//! operation rounded to nearest even:
//! - `global = (1 / max(amax(tensor), f32::MIN_POSITIVE)) * 2688` (2688 = 448 * 6; torch evaluates
//!   `2688 / amax` as a reciprocal and a product), replaced by 1 when that is not finite (an all-zero
//!   or nearly all-zero tensor);
//! - block scale `s = e4m3(min((amax(block) / 6) * global, 448))`, replaced by 0.125 (`0x20`) when it
//!   rounds to 0, so that no block divides by zero;
//! - `code = e2m1(clamp(x / (f32(s) / global), -6, 6))`, round to nearest even; a non-zero negative
//!   value that rounds to zero is negative zero (code 8), a quotient that is itself zero (either sign)
//!   is code 0 (`torch.sign` of a zero is +0);
//! - decoded `x' = value(code) * (f32(s) / global)`.
//!
//! The codes are often written `e2m1(x * global / s)` (NVIDIA ModelOpt's form): the same in exact
//! arithmetic, but the product and the quotient round differently in f32, so the division by
//! `s / global` is the one kept here, being what compressed-tensors computes for these checkpoints.
//! The stored global scale is `global` itself (compressed-tensors' `weight_global_scale`), the
//! inverse of a dequantization factor.
//!
//! Packing: two codes a byte, the even column in the low nibble (compressed-tensors'
//! `pack_fp4_to_uint8`), each row starting on a byte; scales one byte per block of 16, row-major.
use super::elem::{decode_table, encode_float, encode_ref, pack_row, unpack_code, E2M1, E4M3};
use super::{Blocks, MxElem};
use crate::error::{QuantError, Result};
use crate::kernels::par::{self, Exec};
use crate::kernels::simd::SimdLevel;
use crate::kernels::{check_bytes, check_len, finite_absmax};

/// Values per NVFP4 block (the last block of a row may be shorter).
pub const QUANT_NVFP4_BLOCK: usize = 16;
/// Largest E2M1 magnitude.
const E2M1_MAX: f32 = 6.0;
/// The block scale that replaces a zero one: 0.125 as E4M3 (compressed-tensors' `_get_dtype_eps`).
const ZERO_SCALE_CODE: u8 = 0x20;

/// Bytes of the packed codes of a `rows x cols` matrix: `rows * ceil(cols / 2)`; 0 when the shape is
/// invalid.
pub fn nvfp4_packed_size(rows: usize, cols: usize) -> usize {
    geometry(rows, cols).map(|b| b.packed_len()).unwrap_or(0)
}

/// Number of block scales of a `rows x cols` matrix: `rows * ceil(cols / 16)`; 0 when the shape is
/// invalid.
pub fn nvfp4_scale_count(rows: usize, cols: usize) -> usize {
    geometry(rows, cols).map(|b| b.n_blocks()).unwrap_or(0)
}

fn geometry(rows: usize, cols: usize) -> Result<Blocks> {
    Blocks::new(rows, cols, QUANT_NVFP4_BLOCK, 4)
}

/// The global scale of a tensor whose largest magnitude is `amax` (finite): `(1 / max(amax,
/// f32::MIN_POSITIVE)) * 2688` in f32, or 1 when that overflows.
pub fn nvfp4_global_scale(amax: f32) -> f32 {
    // `2688.0 / tensor` in torch is `tensor.reciprocal() * 2688.0` (`Tensor.__rtruediv__`): two
    // roundings, kept so that the scale is bit-exact with compressed-tensors'.
    let g = (1.0 / amax.max(f32::MIN_POSITIVE)) * (448.0 * E2M1_MAX);
    if g.is_finite() {
        g
    } else {
        1.0
    }
}

/// The E4M3 block scale code of a block whose largest magnitude is `amax`, under `global`.
#[inline(always)]
fn block_scale(amax: f32, global: f32) -> u8 {
    let s = ((amax / E2M1_MAX) * global).min(448.0);
    match encode_float(s, E4M3) {
        0 => ZERO_SCALE_CODE,
        c => c,
    }
}

fn check_quantize(src: &[f32], b: &Blocks, dst: &[u8], scales: &[u8]) -> Result<()> {
    check_len("src", src.len(), b.len())?;
    check_bytes("dst", dst.len(), b.packed_len())?;
    check_len("scales", scales.len(), b.n_blocks())
}

/// NVFP4 quantization of a row-major `rows x cols` matrix (see the module docs): the codes into
/// `dst[..nvfp4_packed_size]`, the E4M3 block scales into `scales[..nvfp4_scale_count]`, and the
/// global scale returned.
///
/// Two passes over `src` (the global scale needs the amax of the whole tensor first); the first
/// checks the values. Errors: `InvalidArgument` for a zero side or an overflowing size, and
/// `BufferTooSmall` when `src`, `dst` or `scales` is too short (nothing written); `NonFinite`
/// (naming the first bad index) for NaN or infinity in `src`, with `dst` and `scales` zero-filled.
pub fn nvfp4_quantize(
    src: &[f32],
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    scales: &mut [u8],
) -> Result<f32> {
    let b = geometry(rows, cols)?;
    check_quantize(src, &b, dst, scales)?;
    let exec = Exec::current();
    let amax = match finite_absmax(&src[..b.len()], "src", exec) {
        Ok(a) => a,
        Err(e) => {
            dst[..b.packed_len()].fill(0);
            scales[..b.n_blocks()].fill(0);
            return Err(e);
        }
    };
    let global = nvfp4_global_scale(amax);
    nvfp4_quantize_with_global(src, rows, cols, global, dst, scales)?;
    Ok(global)
}

/// The codes and block scales of `src` (finite values) under a given global scale (finite, > 0), as
/// [`nvfp4_quantize`] computes them after its first pass: for sources converted one row at a time,
/// or a tensor split into pieces quantized under one global scale. Errors as [`nvfp4_quantize`],
/// plus `InvalidArgument` for a bad `global` (nothing written); a non-finite value is `NonFinite`
/// with the outputs zero-filled.
pub fn nvfp4_quantize_with_global(
    src: &[f32],
    rows: usize,
    cols: usize,
    global: f32,
    dst: &mut [u8],
    scales: &mut [u8],
) -> Result<()> {
    let b = geometry(rows, cols)?;
    check_quantize(src, &b, dst, scales)?;
    check_global(global)?;
    let (dst, scales) = (&mut dst[..b.packed_len()], &mut scales[..b.n_blocks()]);
    let exec = Exec::current();
    let bad = std::sync::atomic::AtomicBool::new(false);
    let none = || (&mut [] as &mut [u8], 0);
    par::for_rows(
        exec.threads_for(b.len(), rows),
        rows,
        (dst, b.row_bytes),
        (scales, b.per_row()),
        none(),
        |r, dst, scales, _| {
            for (i, row) in r.enumerate() {
                let x_row = &src[row * cols..(row + 1) * cols];
                let out = &mut dst[i * b.row_bytes..(i + 1) * b.row_bytes];
                let s_row = &mut scales[i * b.per_row()..(i + 1) * b.per_row()];
                if !quantize_row(exec.level, x_row, global, out, s_row) {
                    bad.store(true, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
            }
        },
    );
    if bad.load(std::sync::atomic::Ordering::Relaxed) {
        dst.fill(0);
        scales.fill(0);
        crate::kernels::check_finite(&src[..b.len()], "src")?;
    }
    Ok(())
}

/// Codes and block scales of one row under `global`; false when a block holds a NaN or an infinity.
/// Compiled for AVX2 and AVX-512 where the CPU has them (the same IEEE operations, vectorized by the
/// compiler).
fn quantize_row(
    level: SimdLevel,
    x: &[f32],
    global: f32,
    out: &mut [u8],
    scales: &mut [u8],
) -> bool {
    match level {
        // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it, and
        // both x86 levels include AVX2.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { quantize_row_avx2(x, global, out, scales) },
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { quantize_row_avx512(x, global, out, scales) },
        _ => quantize_row_body(x, global, out, scales),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2(x: &[f32], global: f32, out: &mut [u8], scales: &mut [u8]) -> bool {
    quantize_row_body(x, global, out, scales)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_row_avx512(x: &[f32], global: f32, out: &mut [u8], scales: &mut [u8]) -> bool {
    quantize_row_body(x, global, out, scales)
}

#[inline(always)]
fn quantize_row_body(x_row: &[f32], global: f32, out: &mut [u8], scales: &mut [u8]) -> bool {
    // Whole blocks as fixed-size arrays, which the compiler turns into vector code (one AVX-512
    // register, two AVX2 ones); a short last block goes the general way below.
    let full = x_row.len() / QUANT_NVFP4_BLOCK;
    let (whole, tail) = x_row.split_at(full * QUANT_NVFP4_BLOCK);
    let e4m3: &[f32; 256] = &E4M3_VALUES;
    for ((x, s), o) in whole
        .chunks_exact(QUANT_NVFP4_BLOCK)
        .zip(scales.iter_mut())
        .zip(out.chunks_exact_mut(QUANT_NVFP4_BLOCK / 2))
    {
        let x: &[f32; QUANT_NVFP4_BLOCK] = x.try_into().expect("a whole block");
        let mut amax = 0u32;
        for v in x {
            amax = amax.max(v.to_bits() & 0x7FFF_FFFF);
        }
        if amax >= 0x7F80_0000 {
            return false;
        }
        *s = block_scale(f32::from_bits(amax), global);
        let eff = e4m3[*s as usize] / global;
        let mut codes = [0u8; QUANT_NVFP4_BLOCK];
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = encode_float(scaled(v, eff), E2M1);
        }
        for (b, pair) in o.iter_mut().zip(codes.chunks_exact(2)) {
            *b = pair[0] | (pair[1] << 4);
        }
    }
    if tail.is_empty() {
        return true;
    }
    let (scales, out) = (
        &mut scales[full..],
        &mut out[full * QUANT_NVFP4_BLOCK / 2..],
    );
    let mut codes = [0u8; QUANT_NVFP4_BLOCK];
    for (k, (x, s)) in tail.chunks(QUANT_NVFP4_BLOCK).zip(scales).enumerate() {
        let amax = x.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7FFF_FFFF));
        if amax >= 0x7F80_0000 {
            return false;
        }
        *s = block_scale(f32::from_bits(amax), global);
        let eff = E4M3_VALUES[*s as usize] / global;
        let codes = &mut codes[..x.len()];
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = encode_float(scaled(v, eff), E2M1);
        }
        pack_row(4, codes, &mut out[k * QUANT_NVFP4_BLOCK / 2..]);
    }
    true
}

/// `clamp(x / eff, -6, 6)` with a zero quotient made +0: compressed-tensors' `cast_to_fp4`
/// multiplies the rounded magnitude by `torch.sign(x)`, which is +0 for both zeros, so only a
/// non-zero negative value that rounds to zero keeps its sign (code 8).
#[inline(always)]
fn scaled(x: f32, eff: f32) -> f32 {
    // Adding +0 turns -0 into +0 (round to nearest even) and changes no other value.
    (x / eff).clamp(-E2M1_MAX, E2M1_MAX) + 0.0
}

/// `InvalidArgument` unless `global` is a usable global scale: finite and > 0.
pub(crate) fn check_global(global: f32) -> Result<()> {
    if !(global.is_finite() && global > 0.0) {
        return Err(QuantError::invalid(format!(
            "global scale is {global}: it must be finite and > 0"
        )));
    }
    Ok(())
}

/// The values of the E4M3 codes (block scales).
static E4M3_VALUES: std::sync::LazyLock<[f32; 256]> =
    std::sync::LazyLock::new(|| decode_table(MxElem::Fp8E4m3));
/// The values of the E2M1 codes (low nibble; the high nibble ignored).
static E2M1_VALUES: std::sync::LazyLock<[f32; 256]> =
    std::sync::LazyLock::new(|| decode_table(MxElem::Fp4E2m1));

fn check_dequantize(src: &[u8], scales: &[u8], b: &Blocks, dst: &[f32]) -> Result<()> {
    check_bytes("src", src.len(), b.packed_len())?;
    check_len("scales", scales.len(), b.n_blocks())?;
    check_len("dst", dst.len(), b.len())
}

/// Inverse of [`nvfp4_quantize`]: `dst[i] = value(code[i]) * (f32(scale of its block) / global)`
/// into `dst[..rows*cols]` (E4M3's NaN scale codes 0x7F/0xFF decode their block to NaN). Errors
/// (nothing written): `InvalidArgument` for a zero side, an overflowing size or a `global` that is
/// not finite and > 0; `BufferTooSmall` when `src`, `scales` or `dst` is too short.
pub fn nvfp4_dequantize(
    src: &[u8],
    scales: &[u8],
    global: f32,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
) -> Result<()> {
    let b = geometry(rows, cols)?;
    check_dequantize(src, scales, &b, dst)?;
    check_global(global)?;
    let exec = Exec::current();
    let none = || (&mut [] as &mut [u8], 0);
    par::for_rows(
        exec.threads_for(b.len(), rows),
        rows,
        (&mut dst[..b.len()], cols),
        none(),
        none(),
        |r, out, _, _| {
            for (i, row) in r.enumerate() {
                let packed = &src[row * b.row_bytes..(row + 1) * b.row_bytes];
                let s_row = &scales[row * b.per_row()..(row + 1) * b.per_row()];
                let out = &mut out[i * cols..(i + 1) * cols];
                for (k, (o, &s)) in out.chunks_mut(QUANT_NVFP4_BLOCK).zip(s_row).enumerate() {
                    let eff = E4M3_VALUES[s as usize] / global;
                    let p = &packed[k * QUANT_NVFP4_BLOCK / 2..];
                    for (pair, &c) in o.chunks_mut(2).zip(p) {
                        pair[0] = E2M1_VALUES[(c & 0xF) as usize] * eff;
                        if let Some(v) = pair.get_mut(1) {
                            *v = E2M1_VALUES[(c >> 4) as usize] * eff;
                        }
                    }
                }
            }
        },
    );
    Ok(())
}

/// Scalar reference of [`nvfp4_quantize`] (same contract), element by element with the exact f64
/// encoders of the element and scale formats.
pub fn nvfp4_quantize_ref(
    src: &[f32],
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    scales: &mut [u8],
) -> Result<f32> {
    let b = geometry(rows, cols)?;
    check_quantize(src, &b, dst, scales)?;
    if let Err(e) = crate::kernels::check_finite(&src[..b.len()], "src") {
        dst[..b.packed_len()].fill(0);
        scales[..b.n_blocks()].fill(0);
        return Err(e);
    }
    let amax = src[..b.len()].iter().fold(0f32, |m, v| m.max(v.abs()));
    let global = nvfp4_global_scale(amax);
    let mut codes = vec![0u8; cols];
    for r in 0..rows {
        for k in 0..b.per_row() {
            let x = &src[r * cols + k * QUANT_NVFP4_BLOCK
                ..r * cols + ((k + 1) * QUANT_NVFP4_BLOCK).min(cols)];
            let bmax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = encode_ref(((bmax / E2M1_MAX) * global).min(448.0), MxElem::Fp8E4m3);
            let s = if s == 0 { ZERO_SCALE_CODE } else { s };
            scales[r * b.per_row() + k] = s;
            let eff = super::elem::decode_ref(s, MxElem::Fp8E4m3) / global;
            for (j, &v) in x.iter().enumerate() {
                let y = v / eff;
                let y = if y == 0.0 {
                    0.0
                } else {
                    y.clamp(-E2M1_MAX, E2M1_MAX)
                };
                codes[k * QUANT_NVFP4_BLOCK + j] = encode_ref(y, MxElem::Fp4E2m1);
            }
        }
        pack_row(4, &codes, &mut dst[r * b.row_bytes..(r + 1) * b.row_bytes]);
    }
    Ok(global)
}

/// Scalar reference of [`nvfp4_dequantize`] (same contract).
pub fn nvfp4_dequantize_ref(
    src: &[u8],
    scales: &[u8],
    global: f32,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
) -> Result<()> {
    let b = geometry(rows, cols)?;
    check_dequantize(src, scales, &b, dst)?;
    check_global(global)?;
    for r in 0..rows {
        let row = &src[r * b.row_bytes..(r + 1) * b.row_bytes];
        for c in 0..cols {
            let s = scales[r * b.per_row() + c / QUANT_NVFP4_BLOCK];
            let eff = super::elem::decode_ref(s, MxElem::Fp8E4m3) / global;
            dst[r * cols + c] =
                super::elem::decode_ref(unpack_code(4, row, c), MxElem::Fp4E2m1) * eff;
        }
    }
    Ok(())
}
