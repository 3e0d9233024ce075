//! C exports of the OCP Microscaling formats (`quant_mx_*`) and NVFP4 (`quant_nvfp4_*`).
use std::ffi::c_void;

use crate::error::{quant_status, QuantError, Result};
use crate::ffi::formats::src_in;
use crate::ffi::{boundary, boundary_value, matrix_len, out_param, slice_in, slice_out};
use crate::kernels::mx::nvfp4::{
    nvfp4_dequantize, nvfp4_global_scale, nvfp4_packed_size, nvfp4_scale_count,
};
use crate::kernels::mx::{mx_dequantize, mx_packed_size, mx_scale_count, MxElem};
use crate::kernels::source::{
    mx_quantize_src, nvfp4_quantize_src, nvfp4_quantize_src_with_global, QUANT_DTYPE_F32,
};

/// Bytes of the packed codes of a `rows x cols` matrix of MX element type `elem` (`QUANT_MX_*`):
/// `rows * cols` for MXFP8 (E4M3, E5M2) and MXINT8, `rows * ceil(cols / 2)` for MXFP4,
/// `rows * 3 * ceil(cols / 4)` for MXFP6 (E2M3, E3M2). Each row starts on a byte.
///
/// Returns 0 for an unknown `elem`, a zero side or a size that overflows (the thread's error detail
/// says which). Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_mx_packed_size(elem: i32, rows: usize, cols: usize) -> usize {
    boundary_value(0, || {
        let elem = MxElem::from_code(elem)?;
        matrix_len(rows, cols)?;
        match mx_packed_size(elem, rows, cols) {
            0 => Err(QuantError::invalid("the packed size overflows size_t")),
            n => Ok(n),
        }
    })
}

/// Number of E8M0 scales (one byte each) of a `rows x cols` MX matrix: `rows * ceil(cols / 32)`.
///
/// Returns 0 when `rows` or `cols` is 0 or the size overflows (the detail says why). Thread-safe; no
/// allocation.
#[no_mangle]
pub extern "C" fn quant_mx_scale_count(rows: usize, cols: usize) -> usize {
    boundary_value(0, || {
        matrix_len(rows, cols)?;
        Ok(mx_scale_count(rows, cols))
    })
}

/// OCP Microscaling (MX v1.0) quantization of a row-major `rows x cols` float matrix: each block of
/// 32 consecutive values of a row (the last block of a row may be shorter) shares one E8M0 scale.
///
/// - `elem`: the element type, `QUANT_MX_FP8_E4M3` (0), `QUANT_MX_FP8_E5M2` (1), `QUANT_MX_FP6_E2M3`
///   (2), `QUANT_MX_FP6_E3M2` (3), `QUANT_MX_FP4_E2M1` (4) or `QUANT_MX_INT8` (5).
/// - The scale rule of the specification: `shared = floor(log2(amax)) - emax` (emax 8, 15, 2, 4, 2, 0
///   for the types above), clamped to -127..=127, `floor(log2)` exact; a block of zeros (or of f32
///   subnormals) gets -127. `scales[b] = shared + 127` (E8M0, bias 127).
/// - Elements: `round_half_even(x / 2^shared)` in the element type, saturating to its largest normal
///   (448, 57344, 7.5, 28, 6); MXINT8 `clamp(round_half_even(x / 2^shared * 64), -127, 127)`, two's
///   complement, value `q / 64`. Bit-exact with numpy + ml_dtypes' element casts under this rule.
/// - `dst`: `quant_mx_packed_size(elem, rows, cols)` bytes: 8-bit elements one a byte; FP4 two a
///   byte, the even column in the low nibble; FP6 four in three bytes, little-endian
///   (`c0 | c1 << 6 | c2 << 12 | c3 << 18`), as compressed-tensors packs them. Float codes are the OCP
///   layouts (sign in the element's top bit). `dst_len` in bytes.
/// - `scales`: `quant_mx_scale_count(rows, cols)` bytes, row-major by block.
///
/// Only the needed prefix of each output is written. The caller owns every buffer; the buffers must
/// not overlap. Rows are split over the threads set by `quant_set_threads`. Thread-safe.
///
/// Argument errors (nothing is written): `QUANT_ERR_INVALID_ARGUMENT` for an unknown `elem`, a zero
/// side or an overflowing size, or a misaligned `src`; `QUANT_ERR_NULL_POINTER` for `src` NULL, or an
/// output NULL with a non-zero length; `QUANT_ERR_BUFFER_TOO_SMALL` for `dst_len` or `scales_len`
/// below the sizes above. Value error: `QUANT_ERR_NON_FINITE` for NaN or infinity in `src` (the detail
/// names the first bad index), with `dst` and `scales` zero-filled.
#[no_mangle]
pub extern "C" fn quant_mx_quantize(
    elem: i32,
    src: *const f32,
    rows: usize,
    cols: usize,
    dst: *mut u8,
    dst_len: usize,
    scales: *mut u8,
    scales_len: usize,
) -> quant_status {
    boundary(|| unsafe {
        mx_quantize_in(
            elem,
            (QUANT_DTYPE_F32, src.cast()),
            (rows, cols),
            (dst, dst_len),
            (scales, scales_len),
        )
    })
}

/// `quant_mx_quantize` of a source of element type `src_dtype` (`QUANT_DTYPE_F32`, `_F16` or `_BF16`,
/// see `quant_int8_quantize_ex`; 16-bit sources are raw bits in `uint16_t`, 2-byte aligned). The
/// outputs equal bit for bit those of `quant_mx_quantize` on the same values as float; one scratch
/// row of `cols` floats is allocated for the 16-bit types.
///
/// Errors: those of `quant_mx_quantize`, and, before anything is written,
/// `QUANT_ERR_INVALID_ARGUMENT` for an unknown `src_dtype` and `QUANT_ERR_OUT_OF_MEMORY` if the
/// scratch row cannot be allocated (NaN or infinity as f16/bf16 bit patterns is
/// `QUANT_ERR_NON_FINITE`, outputs zero-filled). Thread-safe.
#[no_mangle]
pub extern "C" fn quant_mx_quantize_ex(
    elem: i32,
    src_dtype: i32,
    src: *const c_void,
    rows: usize,
    cols: usize,
    dst: *mut u8,
    dst_len: usize,
    scales: *mut u8,
    scales_len: usize,
) -> quant_status {
    boundary(|| unsafe {
        mx_quantize_in(
            elem,
            (src_dtype, src),
            (rows, cols),
            (dst, dst_len),
            (scales, scales_len),
        )
    })
}

/// The body of `quant_mx_quantize[_ex]`.
///
/// # Safety
/// As `src_in` and `slice_out` for each pointer.
unsafe fn mx_quantize_in(
    elem: i32,
    (src_dtype, src): (i32, *const c_void),
    (rows, cols): (usize, usize),
    (dst, dst_len): (*mut u8, usize),
    (scales, scales_len): (*mut u8, usize),
) -> Result<()> {
    let elem = MxElem::from_code(elem)?;
    let len = matrix_len(rows, cols)?;
    let src = src_in(src_dtype, src, len, "src")?;
    let dst = slice_out(dst, dst_len, "dst")?;
    let scales = slice_out(scales, scales_len, "scales")?;
    mx_quantize_src(elem, src, rows, cols, dst, scales)
}

/// Inverse of `quant_mx_quantize`: `dst[i] = value(code i) * 2^(scales[block of i] - 127)` for the
/// `rows * cols` elements (exact in float). A scale byte 0xFF (E8M0 NaN) decodes its block to NaN; so
/// do the NaN codes of E4M3 (0x7F, 0xFF), and E5M2's infinity codes give infinities.
///
/// - `src`: `src_len` bytes, at least `quant_mx_packed_size(elem, rows, cols)`.
/// - `scales`: `scales_len` bytes, at least `quant_mx_scale_count(rows, cols)`.
/// - `dst`: `dst_len` floats, at least `rows * cols`.
///
/// Errors (nothing is written): `QUANT_ERR_INVALID_ARGUMENT` for an unknown `elem`, a zero side, an
/// overflowing size or a misaligned `dst`; `QUANT_ERR_NULL_POINTER` for a NULL buffer with a non-zero
/// length; `QUANT_ERR_BUFFER_TOO_SMALL` for a length below its size. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_mx_dequantize(
    elem: i32,
    src: *const u8,
    src_len: usize,
    scales: *const u8,
    scales_len: usize,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    dst_len: usize,
) -> quant_status {
    boundary(|| -> Result<()> {
        let elem = MxElem::from_code(elem)?;
        matrix_len(rows, cols)?;
        let src = unsafe { slice_in(src, src_len, "src") }?;
        let scales = unsafe { slice_in(scales, scales_len, "scales") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        mx_dequantize(elem, src, scales, rows, cols, dst)
    })
}

/// Bytes of the packed NVFP4 codes of a `rows x cols` matrix: `rows * ceil(cols / 2)` (two E2M1 codes
/// a byte, each row starting on a byte).
///
/// Returns 0 when `rows` or `cols` is 0 or the size overflows (the detail says why). Thread-safe; no
/// allocation.
#[no_mangle]
pub extern "C" fn quant_nvfp4_packed_size(rows: usize, cols: usize) -> usize {
    boundary_value(0, || {
        matrix_len(rows, cols)?;
        Ok(nvfp4_packed_size(rows, cols))
    })
}

/// Number of NVFP4 block scales (FP8 E4M3, one byte each) of a `rows x cols` matrix:
/// `rows * ceil(cols / 16)`.
///
/// Returns 0 when `rows` or `cols` is 0 or the size overflows (the detail says why). Thread-safe; no
/// allocation.
#[no_mangle]
pub extern "C" fn quant_nvfp4_scale_count(rows: usize, cols: usize) -> usize {
    boundary_value(0, || {
        matrix_len(rows, cols)?;
        Ok(nvfp4_scale_count(rows, cols))
    })
}

/// NVFP4 quantization of a row-major `rows x cols` float matrix, as compressed-tensors computes it
/// (`nvfp4-pack-quantized`, the checkpoints vLLM loads), bit for bit: blocks of 16 consecutive values
/// of a row (the last block of a row may be shorter), every step a float operation rounded to nearest
/// even:
/// - `*global_scale = (1 / max(amax(src), FLT_MIN)) * 2688` (2688 = 448 * 6), or 1 if not finite;
/// - `scales[b] = e4m3(min(amax(block) / 6 * global, 448))`, 0x20 (0.125) when that rounds to 0;
/// - codes `e2m1(clamp(x / (e4m3_value(scale) / global), -6, 6))`, round half to even (a non-zero
///   negative value rounding to 0 is code 8, negative zero);
/// - decoded `x' = e2m1_value(code) * (e4m3_value(scale) / global)` (`quant_nvfp4_dequantize`).
///
/// - `dst`: `quant_nvfp4_packed_size(rows, cols)` bytes, two codes a byte, the even column in the low
///   nibble (`S.EE.M` codes). `dst_len` in bytes.
/// - `scales`: `quant_nvfp4_scale_count(rows, cols)` bytes, row-major by block.
/// - `global_scale`: receives the per-tensor scale (compressed-tensors' `weight_global_scale`).
///
/// Two passes over `src` (the global scale needs the whole tensor's amax first). The caller owns
/// every buffer; they must not overlap. Thread-safe.
///
/// Argument errors (nothing is written): `QUANT_ERR_INVALID_ARGUMENT` for a zero side, an overflowing
/// size or a misaligned pointer; `QUANT_ERR_NULL_POINTER` for `src` or `global_scale` NULL, or an
/// output NULL with a non-zero length; `QUANT_ERR_BUFFER_TOO_SMALL` for `dst_len` or `scales_len`
/// below the sizes above. Value error: `QUANT_ERR_NON_FINITE` for NaN or infinity in `src` (the detail
/// names the first bad index), with `dst`, `scales` and `*global_scale` zero-filled.
#[no_mangle]
pub extern "C" fn quant_nvfp4_quantize(
    src: *const f32,
    rows: usize,
    cols: usize,
    dst: *mut u8,
    dst_len: usize,
    scales: *mut u8,
    scales_len: usize,
    global_scale: *mut f32,
) -> quant_status {
    boundary(|| unsafe {
        nvfp4_quantize_in(
            (QUANT_DTYPE_F32, src.cast()),
            (rows, cols),
            (dst, dst_len),
            (scales, scales_len),
            global_scale,
        )
    })
}

/// `quant_nvfp4_quantize` of a source of element type `src_dtype` (`QUANT_DTYPE_F32`, `_F16` or
/// `_BF16`, see `quant_int8_quantize_ex`). The outputs equal bit for bit those of
/// `quant_nvfp4_quantize` on the same values as float; one scratch row of `cols` floats is allocated
/// for the 16-bit types.
///
/// Errors: those of `quant_nvfp4_quantize`, and, before anything is written,
/// `QUANT_ERR_INVALID_ARGUMENT` for an unknown `src_dtype` and `QUANT_ERR_OUT_OF_MEMORY` if the
/// scratch row cannot be allocated. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_nvfp4_quantize_ex(
    src_dtype: i32,
    src: *const c_void,
    rows: usize,
    cols: usize,
    dst: *mut u8,
    dst_len: usize,
    scales: *mut u8,
    scales_len: usize,
    global_scale: *mut f32,
) -> quant_status {
    boundary(|| unsafe {
        nvfp4_quantize_in(
            (src_dtype, src),
            (rows, cols),
            (dst, dst_len),
            (scales, scales_len),
            global_scale,
        )
    })
}

/// The global scale `quant_nvfp4_quantize` computes for a tensor whose largest magnitude is `amax`:
/// `(1 / max(amax, FLT_MIN)) * 2688` in float, or 1 when that overflows. For layers an engine fuses
/// into one matrix (q, k and v; gate and up), which must share one global scale: pass the largest
/// `amax` of the group (the smallest of the members' own global scales, which is what llm-compressor
/// gives fused layers) to `quant_nvfp4_quantize_with_global` for each member.
///
/// Returns 0 for an `amax` that is NaN, infinite or negative (the thread's error detail says which).
/// Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_nvfp4_global_scale(amax: f32) -> f32 {
    boundary_value(0.0, || {
        if !(amax.is_finite() && amax >= 0.0) {
            return Err(QuantError::invalid(format!(
                "amax is {amax}: it must be finite and >= 0"
            )));
        }
        Ok(nvfp4_global_scale(amax))
    })
}

/// `quant_nvfp4_quantize_ex` under a global scale the caller gives instead of the one computed from
/// `src`: the block scales `e4m3(min(amax(block) / 6 * global_scale, 448))` and the codes as
/// `quant_nvfp4_quantize` defines them. With `global_scale` equal to
/// `quant_nvfp4_global_scale(amax(src))` the outputs equal `quant_nvfp4_quantize_ex`'s bit for bit.
/// One pass over `src`. Blocks whose values exceed 6 * 448 / `global_scale` saturate (their codes
/// clamp to +-6 under the largest block scale).
///
/// - `src_dtype`, `src`: as `quant_nvfp4_quantize_ex`.
/// - `global_scale`: finite and > 0 (for example `quant_nvfp4_global_scale` of a group's amax).
/// - `dst`, `scales`: as `quant_nvfp4_quantize`. Decode with `quant_nvfp4_dequantize` and the same
///   `global_scale`.
///
/// Argument errors (nothing is written): those of `quant_nvfp4_quantize_ex`, and
/// `QUANT_ERR_INVALID_ARGUMENT` for a `global_scale` that is not finite and > 0. Value error:
/// `QUANT_ERR_NON_FINITE` for NaN or infinity in `src` (the detail names the first bad index), with
/// `dst` and `scales` zero-filled. The caller owns every buffer; they must not overlap. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_nvfp4_quantize_with_global(
    src_dtype: i32,
    src: *const c_void,
    rows: usize,
    cols: usize,
    global_scale: f32,
    dst: *mut u8,
    dst_len: usize,
    scales: *mut u8,
    scales_len: usize,
) -> quant_status {
    boundary(|| unsafe {
        let len = matrix_len(rows, cols)?;
        let src = src_in(src_dtype, src, len, "src")?;
        let dst = slice_out(dst, dst_len, "dst")?;
        let scales = slice_out(scales, scales_len, "scales")?;
        nvfp4_quantize_src_with_global(src, rows, cols, global_scale, dst, scales)
    })
}

/// The body of `quant_nvfp4_quantize[_ex]`.
///
/// # Safety
/// As `src_in`, `slice_out` and `out_param` for each pointer.
unsafe fn nvfp4_quantize_in(
    (src_dtype, src): (i32, *const c_void),
    (rows, cols): (usize, usize),
    (dst, dst_len): (*mut u8, usize),
    (scales, scales_len): (*mut u8, usize),
    global_scale: *mut f32,
) -> Result<()> {
    let len = matrix_len(rows, cols)?;
    let src = src_in(src_dtype, src, len, "src")?;
    let dst = slice_out(dst, dst_len, "dst")?;
    let scales = slice_out(scales, scales_len, "scales")?;
    let global_scale = out_param(global_scale, "global_scale")?;
    match nvfp4_quantize_src(src, rows, cols, dst, scales) {
        Ok(g) => {
            *global_scale = g;
            Ok(())
        }
        Err(e) => {
            if matches!(e, QuantError::NonFinite { .. }) {
                *global_scale = 0.0;
            }
            Err(e)
        }
    }
}

/// Inverse of `quant_nvfp4_quantize`: `dst[i] = e2m1_value(code i) * (e4m3_value(scales[block of i])
/// / global_scale)` for the `rows * cols` elements (E4M3's NaN scale codes 0x7F and 0xFF decode their
/// block to NaN).
///
/// - `src`: `src_len` bytes, at least `quant_nvfp4_packed_size(rows, cols)`.
/// - `scales`: `scales_len` bytes, at least `quant_nvfp4_scale_count(rows, cols)`.
/// - `global_scale`: the per-tensor scale the quantizer returned; finite and > 0.
/// - `dst`: `dst_len` floats, at least `rows * cols`.
///
/// Errors (nothing is written): `QUANT_ERR_INVALID_ARGUMENT` for a zero side, an overflowing size, a
/// misaligned `dst` or a `global_scale` that is not finite and > 0; `QUANT_ERR_NULL_POINTER` for a
/// NULL buffer with a non-zero length; `QUANT_ERR_BUFFER_TOO_SMALL` for a length below its size.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn quant_nvfp4_dequantize(
    src: *const u8,
    src_len: usize,
    scales: *const u8,
    scales_len: usize,
    global_scale: f32,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    dst_len: usize,
) -> quant_status {
    boundary(|| -> Result<()> {
        matrix_len(rows, cols)?;
        let src = unsafe { slice_in(src, src_len, "src") }?;
        let scales = unsafe { slice_in(scales, scales_len, "scales") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        nvfp4_dequantize(src, scales, global_scale, rows, cols, dst)
    })
}
