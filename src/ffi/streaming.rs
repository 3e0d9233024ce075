//! The one-pass (streaming) forms of the INT8, INT4 and FP8 E4M3 quantizers.
//!
//! Same arguments, same results and same errors as `quant_int8_quantize`, `quant_int4_quantize` and
//! `quant_fp8_e4m3_quantize`; they differ in one thing, which is why they are separate functions
//! and not the default: on a value error they do not leave the outputs untouched (see
//! `crate::kernels::streaming`).
use crate::error::quant_status;
use crate::ffi::{boundary, slice_in, slice_out};
use crate::kernels::fp8::fp8_e4m3_quantize_streaming;
use crate::kernels::int4::int4_quantize_streaming;
use crate::kernels::int8::int8_quantize_streaming;
use crate::kernels::Shape;

/// `quant_int8_quantize` in one pass over `src`: the same arguments, the same codes and scales bit for
/// bit, the same errors and error details; on a matrix larger than the CPU caches, 1.3 to 2 times
/// as fast on the benchmark machines (docs/speed.md).
///
/// The one difference: the checked form reads the whole input (to find any NaN, infinity or
/// `FLT_MAX` absmax) before it writes anything, which costs a second read from memory of an input
/// larger than the caches. This form checks the input as it goes, each group (at the scalar and NEON
/// levels, each block of a few rows) just before quantizing it, so on
/// `QUANT_ERR_NON_FINITE` and on the `FLT_MAX` `QUANT_ERR_INVALID_ARGUMENT` it has already written
/// earlier rows: it then zero-fills `dst[0 .. rows * cols)` and `scales[0 .. scale count)` before
/// returning, so the outputs never hold a mix of old and new values. Every other error (NULL
/// pointers, shape, `QUANT_ERR_BUFFER_TOO_SMALL`) is found before anything is written, as in the
/// checked form. With `rows == 1` (which includes one scale for the whole input: it needs every
/// element first) this is the checked form, and writes nothing on error.
///
/// Use it when the weights are known to be finite (they come from a checkpoint) and speed matters;
/// use `quant_int8_quantize` when the input is untrusted and the outputs must survive an error.
/// Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_int8_quantize_streaming(
    src: *const f32,
    rows: usize,
    cols: usize,
    group_size: usize,
    dst: *mut i8,
    dst_len: usize,
    scales: *mut f32,
    scales_len: usize,
) -> quant_status {
    boundary(|| {
        let shape = Shape::new(rows, cols, group_size)?;
        let src = unsafe { slice_in(src, shape.len(), "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let scales = unsafe { slice_out(scales, scales_len, "scales") }?;
        int8_quantize_streaming(src, shape, dst, scales)
    })
}

/// `quant_int4_quantize` in one pass over `src`: the same arguments, the same packed codes, scales and
/// zero points bit for bit, the same errors and error details.
///
/// As `quant_int8_quantize_streaming`: on `QUANT_ERR_NON_FINITE`, and on the
/// `QUANT_ERR_INVALID_ARGUMENT` of a group whose range overflows, it zero-fills
/// `dst[0 .. quant_int4_packed_size(rows, cols))`, `scales[0 .. scale count)` and
/// `zeros[0 .. scale count)` before returning; every other error writes nothing; `rows == 1` is the
/// checked form. Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_int4_quantize_streaming(
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
    boundary(|| {
        let shape = Shape::new(rows, cols, group_size)?;
        let src = unsafe { slice_in(src, shape.len(), "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let scales = unsafe { slice_out(scales, groups_len, "scales") }?;
        let zeros = unsafe { slice_out(zeros, groups_len, "zeros") }?;
        int4_quantize_streaming(src, shape, dst, scales, zeros)
    })
}

/// `quant_fp8_e4m3_quantize` in one pass over `src`: the same arguments, the same codes and scales bit
/// for bit, the same errors and error details.
///
/// As `quant_int8_quantize_streaming`: on `QUANT_ERR_NON_FINITE` it zero-fills `dst[0 .. rows * cols)`
/// and `scales[0 .. scale count)` before returning; every other error writes nothing; `rows == 1` is
/// the checked form. Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_fp8_e4m3_quantize_streaming(
    src: *const f32,
    rows: usize,
    cols: usize,
    group_size: usize,
    dst: *mut u8,
    dst_len: usize,
    scales: *mut f32,
    scales_len: usize,
) -> quant_status {
    boundary(|| {
        let shape = Shape::new(rows, cols, group_size)?;
        let src = unsafe { slice_in(src, shape.len(), "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let scales = unsafe { slice_out(scales, scales_len, "scales") }?;
        fp8_e4m3_quantize_streaming(src, shape, dst, scales)
    })
}
