//! f16 and bf16 source weights for the round-to-nearest kernels and whole-layer quantization.
//!
//! A [`Src`] borrows a row-major matrix of f32, f16 or bf16 elements. The `*_src` functions validate
//! the whole input first (lengths, NaN/infinity by bit pattern, overflowing ranges), then convert one
//! row at a time into a scratch row of `cols` f32 (the conversions f16/bf16 -> f32 are exact) and run
//! the f32 kernel on it. Every kernel works row by row, so the results equal, bit for bit, those of the
//! same values given as f32; the whole matrix is never copied to f32. f32 sources go straight to the
//! f32 kernels (no scratch).
pub use super::elements::Src;
use super::fp8::fp8_e4m3_quantize;
use super::int8::int8_quantize;
use super::kbit::{kbit_quantize, packed_row_bytes};
use super::{check_len, Shape};
use crate::algos::QuantOptions;
use crate::calib::Calibration;
use crate::error::{try_vec, QuantError, Result};
use crate::method::QuantMethod;
use crate::weight::{self, QuantizedWeight};

/// Source element type f32 (IEEE binary32), for the `_ex` functions' `dtype` argument.
pub const QUANT_DTYPE_F32: i32 = 0;
/// Source element type f16 (IEEE binary16 bits in a `uint16_t`).
pub const QUANT_DTYPE_F16: i32 = 1;
/// Source element type bf16 (bfloat16 bits in a `uint16_t`: the top half of an f32).
pub const QUANT_DTYPE_BF16: i32 = 2;

/// The element type named by a `QUANT_DTYPE_*` code, or `InvalidArgument`.
pub fn dtype_name(code: i32) -> Result<&'static str> {
    match code {
        QUANT_DTYPE_F32 => Ok("f32"),
        QUANT_DTYPE_F16 => Ok("f16"),
        QUANT_DTYPE_BF16 => Ok("bf16"),
        other => Err(QuantError::invalid(format!(
            "dtype {other} is unknown: use QUANT_DTYPE_F32 (0), QUANT_DTYPE_F16 (1) or \
             QUANT_DTYPE_BF16 (2)"
        ))),
    }
}

/// [`int8_quantize`] of an f32, f16 or bf16 source; the results equal those of the same values as f32.
/// Errors as [`int8_quantize`] (nothing written); allocates one scratch row for 16-bit sources
/// (`OutOfMemory` if that fails).
pub fn int8_quantize_src(src: Src, shape: Shape, dst: &mut [i8], scales: &mut [f32]) -> Result<()> {
    scaled_quantize_src(src, shape, dst, scales, int8_quantize)
}

/// [`fp8_e4m3_quantize`] of an f32, f16 or bf16 source; the results equal those of the same values as
/// f32. Errors as [`fp8_e4m3_quantize`] (nothing written), plus `ShapeMismatch` when `src` does not hold
/// exactly `shape.len()` elements; allocates one scratch row for 16-bit sources.
pub fn fp8_e4m3_quantize_src(
    src: Src,
    shape: Shape,
    dst: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    scaled_quantize_src(src, shape, dst, scales, fp8_e4m3_quantize)
}

/// An f32 kernel with one scale per group and codes of type `C`: [`int8_quantize`], [`fp8_e4m3_quantize`].
type ScaledKernel<C> = fn(&[f32], Shape, &mut [C], &mut [f32]) -> Result<()>;

/// Runs a one-scale-per-group f32 kernel (INT8, FP8) over a 16-bit source one converted row at a time:
/// every check (and, where a row could still fail, a dry run of every row) comes before the first write.
fn scaled_quantize_src<C: Copy + Default>(
    src: Src,
    shape: Shape,
    dst: &mut [C],
    scales: &mut [f32],
    kernel: ScaledKernel<C>,
) -> Result<()> {
    if let Src::F32(s) = src {
        return kernel(s, shape, dst, scales);
    }
    src.check_shape(shape)?;
    check_len("dst", dst.len(), shape.len())?;
    check_len("scales", scales.len(), shape.n_groups())?;
    let (cols, gpr) = (shape.cols, shape.groups_per_row());
    let dry = || {
        let mut codes = try_vec(cols, C::default(), "validation scratch")?;
        let mut s = try_vec(gpr, 0f32, "validation scratch")?;
        Ok(move |row: &[f32], rs: Shape| kernel(row, rs, &mut codes, &mut s))
    };
    by_rows(src, shape, dry, |row, rs, r| {
        let (codes, s) = (r * cols..(r + 1) * cols, r * gpr..(r + 1) * gpr);
        kernel(row, rs, &mut dst[codes], &mut scales[s])
    })
}

/// Runs `kernel(row, row_shape, r)` on every row `r` of a source converted one row at a time
/// (`row_shape`: one row of `shape`), once every check has passed: every value finite, and where a
/// row could still be rejected (a bf16 group whose range or dequantized values overflow f32), a dry
/// run of every row through the kernel that `dry_kernel` gives (into scratch outputs), so that the
/// rejection comes before the first write.
fn by_rows<D: FnMut(&[f32], Shape) -> Result<()>>(
    src: Src,
    shape: Shape,
    dry_kernel: impl FnOnce() -> Result<D>,
    mut kernel: impl FnMut(&[f32], Shape, usize) -> Result<()>,
) -> Result<()> {
    src.check_finite("src")?;
    let mut scratch = src.scratch(shape.cols)?;
    if needs_dry_run(src) {
        dry_run(src, shape, &mut scratch, dry_kernel()?)?;
    }
    let row_shape = Shape::new(1, shape.cols, shape.group_size)?;
    for r in 0..shape.rows {
        let row = src.row(r, shape.cols, &mut scratch);
        kernel(row, row_shape, r)?;
    }
    Ok(())
}

/// [`kbit_quantize`] of an f32, f16 or bf16 source; the results equal those of the same values as f32.
/// Errors as [`kbit_quantize`] (nothing written; a bf16 group whose range overflows f32 is found before
/// anything is written); allocates one scratch row for 16-bit sources.
pub fn kbit_quantize_src(
    src: Src,
    shape: Shape,
    bits: u32,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
) -> Result<()> {
    if let Src::F32(s) = src {
        return kbit_quantize(s, shape, bits, dst, scales, zeros);
    }
    if !(1..=8).contains(&bits) {
        return Err(QuantError::invalid(format!(
            "bits is {bits}: it must be in 1..=8"
        )));
    }
    src.check_shape(shape)?;
    let row_bytes = packed_row_bytes(shape.cols, bits);
    check_len("dst", dst.len(), shape.rows * row_bytes)?;
    check_len("scales", scales.len(), shape.n_groups())?;
    check_len("zeros", zeros.len(), shape.n_groups())?;
    let gpr = shape.groups_per_row();
    let dry = || {
        let mut codes = try_vec(row_bytes, 0u8, "validation scratch")?;
        let mut s = try_vec(gpr, 0f32, "validation scratch")?;
        let mut z = try_vec(gpr, 0u8, "validation scratch")?;
        Ok(move |row: &[f32], rs: Shape| kbit_quantize(row, rs, bits, &mut codes, &mut s, &mut z))
    };
    by_rows(src, shape, dry, |row, rs, r| {
        let (codes, g) = (r * row_bytes..(r + 1) * row_bytes, r * gpr..(r + 1) * gpr);
        let (scales, zeros) = (&mut scales[g.clone()], &mut zeros[g]);
        kbit_quantize(row, rs, bits, &mut dst[codes], scales, zeros)
    })
}

/// [`kbit_quantize_src`] with 4 bits (the INT4 kernel).
pub fn int4_quantize_src(
    src: Src,
    shape: Shape,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
) -> Result<()> {
    kbit_quantize_src(src, shape, 4, dst, scales, zeros)
}

/// bf16 bits of `2^126`, the magnitude below which no kernel rejects a finite value (no group's range
/// and no dequantized value can overflow f32). f16 sources never reach it; bf16 ones may.
const BF16_SAFE_ABSMAX: u16 = 0x7E80;

/// True when a finite source may hold values that a kernel rejects (only bf16 can).
fn needs_dry_run(src: Src) -> bool {
    match src {
        Src::Bf16(s) => s.iter().any(|&h| h & 0x7FFF >= BF16_SAFE_ABSMAX),
        _ => false,
    }
}

/// Runs `kernel` on every row of `src` into scratch outputs, so that a rejection (a bf16 group whose
/// range or dequantized values overflow f32) is found before anything is written. The detail names
/// the row of the matrix.
fn dry_run(
    src: Src,
    shape: Shape,
    scratch: &mut [f32],
    mut kernel: impl FnMut(&[f32], Shape) -> Result<()>,
) -> Result<()> {
    let row_shape = Shape::new(1, shape.cols, shape.group_size)?;
    for r in 0..shape.rows {
        let row = src.row(r, shape.cols, scratch);
        kernel(row, row_shape).map_err(in_row(r))?;
    }
    Ok(())
}

/// Maps a kernel error on a one-row call to the row `r` of the matrix ("row 0, group g: .." ->
/// "row r, group g: ..").
fn in_row(r: usize) -> impl Fn(QuantError) -> QuantError {
    move |e| match e {
        QuantError::InvalidArgument(m) => {
            let rest = m.strip_prefix("row 0, ").unwrap_or(&m);
            QuantError::invalid(format!("row {r}, {rest}"))
        }
        other => other,
    }
}

/// [`weight::quantize`] of an f32, f16 or bf16 weight; the result equals that of the same values as
/// f32.
///
/// The round-to-nearest methods (INT8, INT4, FP8) convert one row at a time into a scratch row and
/// never copy the matrix. The calibrated methods (AWQ, SmoothQuant, GPTQ) transform the weight as a
/// whole (GPTQ updates the not-yet-quantized columns in place), so they get one f32 working copy of
/// the matrix, the copy they would make of an f32 input.
///
/// Errors: those of [`weight::quantize`].
pub fn quantize_src(
    method: &QuantMethod,
    options: &QuantOptions,
    w: Src,
    rows: usize,
    cols: usize,
    calib: Option<&Calibration>,
) -> Result<QuantizedWeight> {
    if let Src::F32(w) = w {
        return weight::quantize(method, options, w, rows, cols, calib);
    }
    method.validate()?;
    let shape = Shape::new(rows, cols, method.group_size())?;
    w.check_shape(shape)?;
    match method {
        QuantMethod::Int8Symmetric { .. }
        | QuantMethod::Int4Asymmetric { .. }
        | QuantMethod::Fp8E4m3 { .. } => quantize_rtn_src(method, w, shape),
        _ => {
            w.check_finite("w")?;
            let w = w.to_f32_vec()?;
            weight::quantize(method, options, &w, rows, cols, calib)
        }
    }
}

/// Round-to-nearest quantization of a 16-bit source, row by row into the result's buffers.
fn quantize_rtn_src(method: &QuantMethod, w: Src, shape: Shape) -> Result<QuantizedWeight> {
    // Allocate first: a matrix too large for memory fails here, before its elements are read.
    let mut q = QuantizedWeight::alloc(method, shape.rows, shape.cols)?;
    w.check_finite("w")?;
    let cols = shape.cols;
    let gpr = shape.groups_per_row();
    let row_bytes = q.row_bytes();
    let row_shape = Shape::new(1, cols, shape.group_size)?;
    let mut scratch = w.scratch(cols)?;
    let mut codes = try_vec(cols, 0i8, "quantization scratch")?;
    let mut zeros = try_vec(gpr, 0u8, "zero points")?;
    for r in 0..shape.rows {
        let row = w.row(r, cols, &mut scratch);
        let data = &mut q.data[r * row_bytes..(r + 1) * row_bytes];
        let scales = &mut q.scales[r * gpr..(r + 1) * gpr];
        let in_row = in_row(r);
        match method {
            QuantMethod::Int8Symmetric { .. } => {
                int8_quantize(row, row_shape, &mut codes, scales).map_err(&in_row)?;
                for (o, &c) in data.iter_mut().zip(&codes) {
                    *o = c as u8;
                }
            }
            QuantMethod::Int4Asymmetric { .. } => {
                kbit_quantize(row, row_shape, 4, data, scales, &mut zeros).map_err(&in_row)?;
                if let Some(z) = q.zero_points.as_mut() {
                    for (o, &v) in z[r * gpr..(r + 1) * gpr].iter_mut().zip(&zeros) {
                        *o = f32::from(v);
                    }
                }
            }
            QuantMethod::Fp8E4m3 { .. } => {
                fp8_e4m3_quantize(row, row_shape, data, scales).map_err(&in_row)?
            }
            other => {
                return Err(QuantError::Internal(format!(
                    "{other} is not a round-to-nearest method"
                )))
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::half::bf16;

    #[test]
    fn the_bf16_threshold_is_2_to_the_126() {
        assert_eq!(bf16::from_bits(BF16_SAFE_ABSMAX).to_f32(), 2f32.powi(126));
    }
}
