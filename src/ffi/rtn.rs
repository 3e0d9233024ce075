//! Round-to-nearest kernels: INT8 symmetric, INT4 asymmetric, and the signed-nibble helpers.
//!
//! Each export checks pointers and lengths, builds slices and calls the safe kernels of
//! `crate::kernels::{int8, int4}`: the quantizers check the values as they quantize them (one pass;
//! zero-filled outputs on a value error), the other functions before writing anything.
use crate::error::{quant_status, Result};
use crate::ffi::{boundary, boundary_value, slice_in, slice_out};
use crate::kernels::int4::{
    int4_dequantize, int4_packed_size, int4_quantize, pack_int4, unpack_int4,
};
use crate::kernels::int8::{int8_dequantize, int8_quantize};
use crate::kernels::Shape;

/// Number of groups, i.e. of scales (and of INT4 zero points), of a `rows x cols` matrix quantized with
/// `group_size`: `rows * ceil(cols / g)`, where `g = group_size`, or `cols` when `group_size` is 0 (one
/// scale per row) or larger than `cols`.
///
/// Returns 0 when `rows` or `cols` is 0 or the matrix size overflows; the thread's error detail then
/// says why. Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_scale_count(rows: usize, cols: usize, group_size: usize) -> usize {
    boundary_value(0, || Ok(Shape::new(rows, cols, group_size)?.n_groups()))
}

/// INT8 symmetric round-to-nearest quantization of a row-major `rows x cols` float matrix.
///
/// For each group (`group_size` 0: one per row; `k > 0`: `k` consecutive columns of a row, the last group
/// of a row may be shorter): `scale = absmax / 127` (float) and
/// `q = clamp(round_half_even(x / scale), -127, 127)` (never -128). An all-zero group has scale 0 and
/// codes 0 (so has a group whose absmax is at most 63 * 2^-149, about 8.8e-44, where `absmax / 127`
/// rounds to 0).
/// Dequantized, every element is within `scale / 2` of its input.
///
/// - `src`: `rows * cols` floats, read only.
/// - `dst`: receives the `rows * cols` codes, `dst[r * cols + c]`; `dst_len` is its length in elements.
/// - `scales`: receives `quant_scale_count(rows, cols, group_size)` scales, `scales[r * groups_per_row + g]`;
///   `scales_len` is its length in elements.
///
/// Only the needed prefix of each output is written. The caller owns every buffer; the buffers must not
/// overlap. No allocation; thread-safe.
///
/// One pass over `src`: every argument is checked before anything is written, and each group's values
/// just before the group is quantized, so the input is read from memory once.
///
/// Argument errors (nothing is written):
/// - `QUANT_ERR_INVALID_ARGUMENT`: `rows` or `cols` is 0, or `rows * cols` overflows.
/// - `QUANT_ERR_NULL_POINTER`: `src` is NULL, or `dst` / `scales` is NULL with a non-zero length.
/// - `QUANT_ERR_BUFFER_TOO_SMALL`: `dst_len < rows * cols` or `scales_len` below the scale count.
///
/// Value errors (`dst[0 .. rows * cols)` and `scales[0 .. scale count)` are zero-filled, never left
/// half written; nothing past them is touched):
/// - `QUANT_ERR_NON_FINITE`: a NaN or infinity in `src`; the detail names the first bad index.
/// - `QUANT_ERR_INVALID_ARGUMENT`: every value is finite but a group's absmax is exactly `FLT_MAX` (its
///   dequantized value `127 * scale` would round to infinity); the detail names the first such row
///   and group.
#[no_mangle]
pub extern "C" fn quant_int8_quantize(
    src: *const f32,
    rows: usize,
    cols: usize,
    group_size: usize,
    dst: *mut i8,
    dst_len: usize,
    scales: *mut f32,
    scales_len: usize,
) -> quant_status {
    boundary(|| -> Result<()> {
        let shape = Shape::new(rows, cols, group_size)?;
        let src = unsafe { slice_in(src, shape.len(), "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let scales = unsafe { slice_out(scales, scales_len, "scales") }?;
        int8_quantize(src, shape, dst, scales)
    })
}

/// Dequantizes INT8 symmetric codes: `dst[r * cols + c] = q * scale` of the element's group (the layout
/// of `quant_int8_quantize`).
///
/// - `src`: `rows * cols` codes; `scales`: `quant_scale_count(rows, cols, group_size)` scales. Their
///   lengths are implied by the shape; both are read only.
/// - `dst`: receives `rows * cols` floats; `dst_len` is its length in elements (only that prefix is
///   written).
///
/// Every code is accepted, -128 included. The caller owns every buffer; `dst` must not overlap the
/// inputs. No allocation; thread-safe.
///
/// Errors (nothing is written on any of them):
/// - `QUANT_ERR_INVALID_ARGUMENT`: `rows` or `cols` is 0, or `rows * cols` overflows.
/// - `QUANT_ERR_NULL_POINTER`: `src` or `scales` is NULL, or `dst` is NULL with a non-zero length.
/// - `QUANT_ERR_BUFFER_TOO_SMALL`: `dst_len < rows * cols`.
/// - `QUANT_ERR_NON_FINITE`: a NaN or infinite scale; the detail names its index.
#[no_mangle]
pub extern "C" fn quant_int8_dequantize(
    src: *const i8,
    scales: *const f32,
    rows: usize,
    cols: usize,
    group_size: usize,
    dst: *mut f32,
    dst_len: usize,
) -> quant_status {
    boundary(|| -> Result<()> {
        let shape = Shape::new(rows, cols, group_size)?;
        let src = unsafe { slice_in(src, shape.len(), "src") }?;
        let scales = unsafe { slice_in(scales, shape.n_groups(), "scales") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        int8_dequantize(src, scales, shape, dst)
    })
}

/// Bytes of a packed INT4 `rows x cols` matrix: `rows * ceil(cols / 2)` (each row starts on a byte).
///
/// Returns 0 when `rows` or `cols` is 0 or the size overflows; the thread's error detail then says why.
/// Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_int4_packed_size(rows: usize, cols: usize) -> usize {
    boundary_value(0, || {
        Shape::new(rows, cols, 0)?;
        Ok(int4_packed_size(rows, cols))
    })
}

/// INT4 asymmetric round-to-nearest quantization (the GPTQ/AWQ integer zero-point convention, which keeps
/// 0 exactly representable) of a row-major `rows x cols` float matrix.
///
/// For each group (`group_size` as in `quant_int8_quantize`): `lo = min(min x, 0)`, `hi = max(max x, 0)`,
/// `scale = (hi - lo) / 15`, `zero = clamp(round_half_even(-lo / scale), 0, 15)`,
/// `q = clamp(round_half_even(x / scale) + zero, 0, 15)`; dequantized `x' = (q - zero) * scale`, within one
/// `scale` of `x`. An all-zero group has scale 0, zero 0 and codes 0.
///
/// - `src`: `rows * cols` floats, read only.
/// - `dst`: receives the packed codes, `quant_int4_packed_size(rows, cols)` bytes: two codes a byte, the
///   even column in the low nibble, each row starting on a byte (`ceil(cols / 2)` bytes a row; with an
///   odd `cols` the high nibble of a row's last byte is 0). `dst_len` is its length in bytes.
/// - `scales`, `zeros`: receive one scale (float) and one zero point (0..=15) a group,
///   `[r * groups_per_row + g]`; `groups_len` is the length of EACH, in elements, and must be at least
///   `quant_scale_count(rows, cols, group_size)`.
///
/// Only the needed prefix of each output is written. The caller owns every buffer; the buffers must not
/// overlap. No allocation; thread-safe.
///
/// One pass over `src`, as `quant_int8_quantize`: every argument is checked before anything is
/// written, each group's values just before the group is quantized.
///
/// Argument errors (nothing is written):
/// - `QUANT_ERR_INVALID_ARGUMENT`: `rows` or `cols` is 0, or `rows * cols` overflows.
/// - `QUANT_ERR_NULL_POINTER`: `src` is NULL, or an output is NULL with a non-zero length.
/// - `QUANT_ERR_BUFFER_TOO_SMALL`: `dst_len` (bytes) below the packed size, or `groups_len`
///   (elements) below the scale count.
///
/// Value errors (`dst[0 .. quant_int4_packed_size(rows, cols))`, `scales[0 .. scale count)` and
/// `zeros[0 .. scale count)` are zero-filled, never left half written; nothing past them is touched):
/// - `QUANT_ERR_NON_FINITE`: a NaN or infinity in `src`; the detail names the first bad index.
/// - `QUANT_ERR_INVALID_ARGUMENT`: every value is finite but a group's range `hi - lo` overflows float
///   (e.g. -3e38 and 3e38 in one group), or one of its dequantized values would round to infinity
///   (only possible within a few ulps of `FLT_MAX`); the detail names the first such row and group.
#[no_mangle]
pub extern "C" fn quant_int4_quantize(
    src: *const f32,
    rows: usize,
    cols: usize,
    group_size: usize,
    dst: *mut u8,
    dst_len: usize,
    scales: *mut f32,
    zeros: *mut u8,
    groups_len: usize,
) -> quant_status {
    boundary(|| -> Result<()> {
        let shape = Shape::new(rows, cols, group_size)?;
        let src = unsafe { slice_in(src, shape.len(), "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let scales = unsafe { slice_out(scales, groups_len, "scales") }?;
        let zeros = unsafe { slice_out(zeros, groups_len, "zeros") }?;
        int4_quantize(src, shape, dst, scales, zeros)
    })
}

/// Dequantizes packed INT4 codes: `dst[r * cols + c] = (q - zero) * scale` of the element's group (the
/// layout of `quant_int4_quantize`).
///
/// - `src`: `quant_int4_packed_size(rows, cols)` bytes; `scales`, `zeros`:
///   `quant_scale_count(rows, cols, group_size)` elements each. Their lengths are implied by the shape;
///   all are read only.
/// - `dst`: receives `rows * cols` floats; `dst_len` is its length in elements (only that prefix is
///   written).
///
/// The caller owns every buffer; `dst` must not overlap the inputs. No allocation; thread-safe.
///
/// Errors (nothing is written on any of them):
/// - `QUANT_ERR_INVALID_ARGUMENT`: `rows` or `cols` is 0, `rows * cols` overflows, or a zero point is
///   above 15 (the detail names its index).
/// - `QUANT_ERR_NULL_POINTER`: `src`, `scales` or `zeros` is NULL, or `dst` is NULL with a non-zero length.
/// - `QUANT_ERR_BUFFER_TOO_SMALL`: `dst_len < rows * cols`.
/// - `QUANT_ERR_NON_FINITE`: a NaN or infinite scale; the detail names its index.
#[no_mangle]
pub extern "C" fn quant_int4_dequantize(
    src: *const u8,
    scales: *const f32,
    zeros: *const u8,
    rows: usize,
    cols: usize,
    group_size: usize,
    dst: *mut f32,
    dst_len: usize,
) -> quant_status {
    boundary(|| -> Result<()> {
        let shape = Shape::new(rows, cols, group_size)?;
        let src = unsafe { slice_in(src, int4_packed_size(rows, cols), "src") }?;
        let scales = unsafe { slice_in(scales, shape.n_groups(), "scales") }?;
        let zeros = unsafe { slice_in(zeros, shape.n_groups(), "zeros") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        int4_dequantize(src, scales, zeros, shape, dst)
    })
}

/// Packs `n` signed 4-bit values (-8..=7) two a byte, the first (even) value in the low nibble, each as
/// its two's-complement nibble (-8 -> 0x8, -1 -> 0xF). With an odd `n` the last byte's high nibble is 0.
///
/// - `values`: `n` int8 values, read only (may be NULL when `n` is 0).
/// - `dst`: receives `ceil(n / 2)` bytes; `dst_len` is its length in bytes (only that prefix is written).
///
/// The caller owns every buffer; they must not overlap. No allocation; thread-safe.
///
/// Errors (nothing is written on any of them):
/// - `QUANT_ERR_NULL_POINTER`: `values` is NULL with `n > 0`, or `dst` is NULL with a non-zero length.
/// - `QUANT_ERR_BUFFER_TOO_SMALL`: `dst_len < ceil(n / 2)`.
/// - `QUANT_ERR_INVALID_ARGUMENT`: a value outside -8..=7 (it does not fit a nibble; the detail names the
///   first such index), or `n` too large for memory.
#[no_mangle]
pub extern "C" fn quant_pack_int4(
    values: *const i8,
    n: usize,
    dst: *mut u8,
    dst_len: usize,
) -> quant_status {
    boundary(|| -> Result<()> {
        let values = unsafe { slice_in(values, n, "values") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        pack_int4(values, dst)
    })
}

/// Unpacks `n` signed 4-bit values packed by `quant_pack_int4`, sign-extending each nibble
/// (0x8..=0xF -> -8..=-1).
///
/// - `src`: `ceil(n / 2)` bytes (implied by `n`), read only (may be NULL when `n` is 0).
/// - `dst`: receives `n` values; `dst_len` is its length in elements (only that prefix is written).
///
/// The caller owns every buffer; they must not overlap. No allocation; thread-safe.
///
/// Errors (nothing is written on any of them):
/// - `QUANT_ERR_NULL_POINTER`: `src` is NULL with `n > 0`, or `dst` is NULL with a non-zero length.
/// - `QUANT_ERR_BUFFER_TOO_SMALL`: `dst_len < n`.
/// - `QUANT_ERR_INVALID_ARGUMENT`: `n` too large for memory.
#[no_mangle]
pub extern "C" fn quant_unpack_int4(
    src: *const u8,
    n: usize,
    dst: *mut i8,
    dst_len: usize,
) -> quant_status {
    boundary(|| -> Result<()> {
        let src = unsafe { slice_in(src, n.div_ceil(2), "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        unpack_int4(src, n, dst)
    })
}
