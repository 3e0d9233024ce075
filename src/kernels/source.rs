//! f16 and bf16 source weights for the round-to-nearest kernels and whole-layer quantization.
//!
//! A [`Src`] borrows a row-major matrix of f32, f16 or bf16 elements. The `*_src` functions check the
//! arguments (lengths) first, then convert one row at a time into a scratch row of `cols` f32 (the
//! conversions f16/bf16 -> f32 are exact) and run the f32 kernel on it, which checks the row's values
//! as it quantizes them: one pass over the input. On a value error (NaN or infinity, a group whose
//! range overflows) the outputs are zero-filled and the error is that of the same values as f32 (the
//! first bad index of the whole input). Every kernel works row by row, so the results equal, bit for bit, those of the
//! same values given as f32; the whole matrix is never copied to f32. f32 sources go straight to the
//! f32 kernels (no scratch).

pub use super::elements::Src;
use super::fp8::fp8_e4m3_quantize;
use super::int8::int8_quantize;
use super::kbit::{kbit_quantize, packed_row_bytes};
use super::mx::nvfp4::{
    check_global, nvfp4_global_scale, nvfp4_packed_size, nvfp4_quantize,
    nvfp4_quantize_with_global, nvfp4_scale_count, QUANT_NVFP4_BLOCK,
};
use super::mx::{mx_packed_size, mx_quantize, mx_scale_count, MxElem, QUANT_MX_BLOCK};
use super::{check_bytes, check_len, Shape};
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
/// Errors as [`int8_quantize`] (argument errors write nothing, value errors zero-fill the outputs);
/// allocates one scratch row for 16-bit sources
/// (`OutOfMemory` if that fails).
pub fn int8_quantize_src(src: Src, shape: Shape, dst: &mut [i8], scales: &mut [f32]) -> Result<()> {
    scaled_quantize_src(src, shape, dst, scales, int8_quantize)
}

/// [`fp8_e4m3_quantize`] of an f32, f16 or bf16 source; the results equal those of the same values as
/// f32. Errors as [`fp8_e4m3_quantize`], plus `ShapeMismatch` (nothing written) when `src` does not hold
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

/// Runs a one-scale-per-group f32 kernel (INT8, FP8) over a 16-bit source one converted row at a time,
/// after the length checks; a row's value error zero-fills the outputs (see [`value_error`]).
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
    let out = (&mut dst[..shape.len()], &mut scales[..shape.n_groups()]);
    by_rows(
        src,
        shape,
        out,
        |row, rs, r, (dst, scales)| {
            let (codes, s) = (r * cols..(r + 1) * cols, r * gpr..(r + 1) * gpr);
            kernel(row, rs, &mut dst[codes], &mut scales[s])
        },
        |(dst, scales)| {
            dst.fill(C::default());
            scales.fill(0.0);
        },
    )
}

/// Runs `kernel(row, row_shape, r, out)` on every row `r` of a 16-bit source converted one row at a
/// time (`row_shape`: one row of `shape`), `out` holding the outputs; on a row's value error,
/// `clear(out)` zero-fills them and the error is that of the whole input (see [`value_error`]).
fn by_rows<O>(
    src: Src,
    shape: Shape,
    mut out: O,
    mut kernel: impl FnMut(&[f32], Shape, usize, &mut O) -> Result<()>,
    clear: impl FnOnce(O),
) -> Result<()> {
    let mut scratch = src.scratch(shape.cols)?;
    let row_shape = Shape::new(1, shape.cols, shape.group_size)?;
    for r in 0..shape.rows {
        let row = src.row(r, shape.cols, &mut scratch);
        if let Err(e) = kernel(row, row_shape, r, &mut out) {
            clear(out);
            return Err(value_error(src, "src", r, e));
        }
    }
    Ok(())
}

/// [`kbit_quantize`] of an f32, f16 or bf16 source; the results equal those of the same values as f32.
/// Errors as [`kbit_quantize`] (argument errors write nothing; value errors, such as a bf16 group whose
/// range overflows f32, zero-fill the outputs); allocates one scratch row for 16-bit sources.
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
    check_bytes("dst", dst.len(), shape.rows * row_bytes)?;
    check_len("scales", scales.len(), shape.n_groups())?;
    check_len("zeros", zeros.len(), shape.n_groups())?;
    let (gpr, n_groups) = (shape.groups_per_row(), shape.n_groups());
    let out = (
        &mut dst[..shape.rows * row_bytes],
        &mut scales[..n_groups],
        &mut zeros[..n_groups],
    );
    by_rows(
        src,
        shape,
        out,
        |row, rs, r, (dst, scales, zeros)| {
            let (codes, g) = (r * row_bytes..(r + 1) * row_bytes, r * gpr..(r + 1) * gpr);
            let (scales, zeros) = (&mut scales[g.clone()], &mut zeros[g]);
            kbit_quantize(row, rs, bits, &mut dst[codes], scales, zeros)
        },
        |(dst, scales, zeros)| {
            dst.fill(0);
            scales.fill(0.0);
            zeros.fill(0);
        },
    )
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

/// [`mx_quantize`] of an f32, f16 or bf16 source of `rows x cols` elements; the results equal those
/// of the same values as f32. Errors as [`mx_quantize`], plus `ShapeMismatch` (nothing written) when
/// `src` does not hold exactly `rows * cols` elements; allocates one scratch row for 16-bit sources.
pub fn mx_quantize_src(
    elem: MxElem,
    src: Src,
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    scales: &mut [u8],
) -> Result<()> {
    if let Src::F32(s) = src {
        return mx_quantize(elem, s, rows, cols, dst, scales);
    }
    let shape = Shape::new(rows, cols, QUANT_MX_BLOCK)?;
    src.check_shape(shape)?;
    let (bytes, n_scales) = (mx_packed_size(elem, rows, cols), mx_scale_count(rows, cols));
    check_bytes("dst", dst.len(), bytes)?;
    check_len("scales", scales.len(), n_scales)?;
    let (row_bytes, per_row) = (bytes / rows, n_scales / rows);
    let out = (&mut dst[..bytes], &mut scales[..n_scales]);
    by_rows(
        src,
        shape,
        out,
        |row, _, r, (dst, scales)| {
            let (codes, s) = (
                r * row_bytes..(r + 1) * row_bytes,
                r * per_row..(r + 1) * per_row,
            );
            mx_quantize(elem, row, 1, cols, &mut dst[codes], &mut scales[s])
        },
        |(dst, scales)| {
            dst.fill(0);
            scales.fill(0);
        },
    )
}

/// [`nvfp4_quantize`] of an f32, f16 or bf16 source of `rows x cols` elements; the results equal
/// those of the same values as f32 (the global scale from the amax of the 16-bit values, read from
/// their bits in a first pass that also checks them). Errors as [`nvfp4_quantize`], plus
/// `ShapeMismatch` (nothing written) when `src` does not hold exactly `rows * cols` elements;
/// allocates one scratch row for 16-bit sources.
pub fn nvfp4_quantize_src(
    src: Src,
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    scales: &mut [u8],
) -> Result<f32> {
    let amax_bits = match src {
        Src::F32(s) => return nvfp4_quantize(s, rows, cols, dst, scales),
        Src::F16(s) | Src::Bf16(s) => s.iter().fold(0u16, |m, &h| m.max(h & 0x7FFF)),
    };
    let (bytes, n_scales) = check_nvfp4(src, rows, cols, dst, scales)?;
    if let Err(e) = src.check_finite("src") {
        dst[..bytes].fill(0);
        scales[..n_scales].fill(0);
        return Err(e);
    }
    let amax = match src {
        Src::F16(_) => ::half::f16::from_bits(amax_bits).to_f32(),
        _ => f32::from_bits(u32::from(amax_bits) << 16),
    };
    let global = nvfp4_global_scale(amax);
    nvfp4_quantize_src_with_global(src, rows, cols, global, dst, scales)?;
    Ok(global)
}

/// The shape and buffer checks of an NVFP4 quantizer: `(packed bytes, scale count)`.
fn check_nvfp4(
    src: Src,
    rows: usize,
    cols: usize,
    dst: &[u8],
    scales: &[u8],
) -> Result<(usize, usize)> {
    src.check_shape(Shape::new(rows, cols, QUANT_NVFP4_BLOCK)?)?;
    let (bytes, n_scales) = (nvfp4_packed_size(rows, cols), nvfp4_scale_count(rows, cols));
    check_bytes("dst", dst.len(), bytes)?;
    check_len("scales", scales.len(), n_scales)?;
    Ok((bytes, n_scales))
}

/// [`nvfp4_quantize_with_global`] of an f32, f16 or bf16 source: the codes and block scales under a
/// global scale the caller chose (finite, > 0), equal to those of the same values as f32. Errors as
/// [`nvfp4_quantize_src`], plus `InvalidArgument` for a bad `global` (nothing written).
pub fn nvfp4_quantize_src_with_global(
    src: Src,
    rows: usize,
    cols: usize,
    global: f32,
    dst: &mut [u8],
    scales: &mut [u8],
) -> Result<()> {
    if let Src::F32(s) = src {
        return nvfp4_quantize_with_global(s, rows, cols, global, dst, scales);
    }
    let (bytes, n_scales) = check_nvfp4(src, rows, cols, dst, scales)?;
    let shape = Shape::new(rows, cols, QUANT_NVFP4_BLOCK)?;
    check_global(global)?;
    let (row_bytes, per_row) = (bytes / rows, n_scales / rows);
    let out = (&mut dst[..bytes], &mut scales[..n_scales]);
    by_rows(
        src,
        shape,
        out,
        |row, _, r, (dst, scales)| {
            let (codes, s) = (
                r * row_bytes..(r + 1) * row_bytes,
                r * per_row..(r + 1) * per_row,
            );
            nvfp4_quantize_with_global(row, 1, cols, global, &mut dst[codes], &mut scales[s])
        },
        |(dst, scales)| {
            dst.fill(0);
            scales.fill(0);
        },
    )
}

/// The error of the whole input when row `r`'s one-row kernel call failed with `e`: a NaN or
/// infinity anywhere in `src` comes first (the error of the same values as f32, which names the first
/// bad index), else `e` with its row numbered in the matrix.
fn value_error(src: Src, what: &str, r: usize, e: QuantError) -> QuantError {
    match src.check_finite(what) {
        Err(non_finite) => non_finite,
        Ok(()) => in_row(r)(e),
    }
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

/// Round-to-nearest quantization of a 16-bit source, row by row into the result's buffers, in one
/// pass over `w` (each row's kernel checks its values; the result is dropped on error).
fn quantize_rtn_src(method: &QuantMethod, w: Src, shape: Shape) -> Result<QuantizedWeight> {
    // Allocate first: a matrix too large for memory fails here, before its elements are read.
    let mut q = QuantizedWeight::alloc(method, shape.rows, shape.cols)?;
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
        let in_row = |e| value_error(w, "w", r, e);
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
