//! Exports of the plain casts (FP16, BF16, FP8) and of the scaled FP8 E4M3 quantizer.
//! Each export checks pointers and lengths, builds slices and calls `kernels::half` / `kernels::fp8`.
use crate::error::quant_status;
use crate::ffi::{boundary, slice_in, slice_out};
use crate::kernels::{fp8, half, Shape};

/// Converts `n` floats to IEEE binary16 (FP16) bit patterns.
///
/// Rounding: to nearest, ties to even. Finite values whose magnitude rounds above 65504 (that is,
/// from 65520 on) become infinities of their sign; infinities stay infinities; subnormal FP16 results
/// are produced exactly; signed zeros keep their sign. NaN stays NaN of the same sign and comes out
/// quiet: `sign | 0x7E00 | (f32 significand >> 13)`. Bit-exact with the Rust `half` crate (and with
/// numpy's float16 for every non-NaN input).
///
/// `src` holds `n` floats, `dst` room for `n` values; both are owned by the caller and may be NULL only
/// when `n` is 0. Thread-safe.
///
/// Errors (nothing written): QUANT_ERR_NULL_POINTER when `src` or `dst` is NULL and `n` > 0;
/// QUANT_ERR_INVALID_ARGUMENT when `n` elements cannot exist in memory.
#[no_mangle]
pub extern "C" fn quant_f32_to_f16(src: *const f32, dst: *mut u16, n: usize) -> quant_status {
    boundary(|| {
        let src = unsafe { slice_in(src, n, "src") }?;
        let dst = unsafe { slice_out(dst, n, "dst") }?;
        half::f32_to_f16(src, dst)
    })
}

/// Converts `n` FP16 bit patterns to floats, exactly (every FP16 value, subnormals included, is a
/// float). Infinities stay infinities; a NaN gives a quiet NaN of the same sign that keeps the
/// payload: `sign | 0x7FC00000 | (significand << 13)` (as the `half` crate).
///
/// Buffers: `src` holds `n` values, `dst` room for `n` floats (NULL allowed only when `n` is 0).
/// Thread-safe. Errors (nothing written): QUANT_ERR_NULL_POINTER, QUANT_ERR_INVALID_ARGUMENT as
/// for `quant_f32_to_f16`.
#[no_mangle]
pub extern "C" fn quant_f16_to_f32(src: *const u16, dst: *mut f32, n: usize) -> quant_status {
    boundary(|| {
        let src = unsafe { slice_in(src, n, "src") }?;
        let dst = unsafe { slice_out(dst, n, "dst") }?;
        half::f16_to_f32(src, dst)
    })
}

/// Converts `n` floats to bfloat16 (BF16) bit patterns.
///
/// Rounding: to nearest, ties to even. Finite values that round above the largest BF16 value (from
/// bits 0x7F7F8000 on) become infinities of their sign; infinities stay infinities; signed zeros keep
/// their sign. NaN stays NaN of the same sign and comes out quiet: `(bits >> 16) | 0x0040`.
/// Bit-exact with the Rust `half` crate (and with ml_dtypes' bfloat16 for every non-NaN input;
/// ml_dtypes encodes every NaN as 0x7FC0/0xFFC0).
///
/// Buffers: `src` holds `n` floats, `dst` room for `n` values (NULL allowed only when `n` is 0).
/// Thread-safe. Errors (nothing written): QUANT_ERR_NULL_POINTER, QUANT_ERR_INVALID_ARGUMENT as
/// for `quant_f32_to_f16`.
#[no_mangle]
pub extern "C" fn quant_f32_to_bf16(src: *const f32, dst: *mut u16, n: usize) -> quant_status {
    boundary(|| {
        let src = unsafe { slice_in(src, n, "src") }?;
        let dst = unsafe { slice_out(dst, n, "dst") }?;
        half::f32_to_bf16(src, dst)
    })
}

/// Converts `n` BF16 bit patterns to floats, exactly (`bits << 16`), except that a NaN comes out
/// quiet: `(bits | 0x0040) << 16` (as the `half` crate).
///
/// Buffers: `src` holds `n` values, `dst` room for `n` floats (NULL allowed only when `n` is 0).
/// Thread-safe. Errors (nothing written): QUANT_ERR_NULL_POINTER, QUANT_ERR_INVALID_ARGUMENT as
/// for `quant_f32_to_f16`.
#[no_mangle]
pub extern "C" fn quant_bf16_to_f32(src: *const u16, dst: *mut f32, n: usize) -> quant_status {
    boundary(|| {
        let src = unsafe { slice_in(src, n, "src") }?;
        let dst = unsafe { slice_out(dst, n, "dst") }?;
        half::bf16_to_f32(src, dst)
    })
}

/// Converts `n` floats to FP8 E4M3FN codes (OCP: 1 sign, 4 exponent bits with bias 7, 3 significand
/// bits; largest finite 448 = 0x7E; no infinities; NaN = S.1111.111, i.e. 0x7F/0xFF).
///
/// Rounding: to nearest, ties to even, subnormals (down to 2^-9) included; signed zeros keep their
/// sign. Values whose magnitude rounds above 448 overflow (that is, magnitudes above 464; 464 itself
/// is a tie and rounds to 448).
/// - `saturate` = false: bit-exact with ml_dtypes `float8_e4m3fn`: overflow and +-infinity give the
///   NaN of their sign (0x7F/0xFF).
/// - `saturate` = true: overflow and +-infinity clamp to +-448 (0x7E/0xFE); all else as above.
/// - NaN (any payload) gives 0x7F/0xFF (its sign kept) in both modes.
///
/// Buffers: `src` holds `n` floats, `dst` room for `n` codes (NULL allowed only when `n` is 0).
/// Thread-safe. Errors (nothing written): QUANT_ERR_NULL_POINTER when `src` or `dst` is NULL and
/// `n` > 0; QUANT_ERR_INVALID_ARGUMENT when `n` elements cannot exist in memory.
#[no_mangle]
pub extern "C" fn quant_f32_to_fp8_e4m3(
    src: *const f32,
    dst: *mut u8,
    n: usize,
    saturate: bool,
) -> quant_status {
    boundary(|| {
        let src = unsafe { slice_in(src, n, "src") }?;
        let dst = unsafe { slice_out(dst, n, "dst") }?;
        fp8::f32_to_fp8_e4m3(src, dst, saturate)
    })
}

/// Converts `n` FP8 E4M3FN codes to floats, exactly. The NaN codes 0x7F/0xFF give the quiet NaN
/// 0x7FC00000/0xFFC00000 (as ml_dtypes).
///
/// Buffers: `src` holds `n` codes, `dst` room for `n` floats (NULL allowed only when `n` is 0).
/// Thread-safe. Errors (nothing written): QUANT_ERR_NULL_POINTER, QUANT_ERR_INVALID_ARGUMENT as
/// for `quant_f32_to_fp8_e4m3`.
#[no_mangle]
pub extern "C" fn quant_fp8_e4m3_to_f32(src: *const u8, dst: *mut f32, n: usize) -> quant_status {
    boundary(|| {
        let src = unsafe { slice_in(src, n, "src") }?;
        let dst = unsafe { slice_out(dst, n, "dst") }?;
        fp8::fp8_e4m3_to_f32(src, dst)
    })
}

/// Converts `n` floats to FP8 E5M2 codes (1 sign, 5 exponent bits with bias 15, 2 significand bits;
/// largest finite 57344 = 0x7B; infinities 0x7C/0xFC; NaN codes 0x7D..0x7F and 0xFD..0xFF).
///
/// Rounding: to nearest, ties to even, subnormals (down to 2^-16) included; signed zeros keep their
/// sign. Magnitudes from 61440 on overflow (61440 is a tie and rounds to the even code, infinity).
/// - `saturate` = false: bit-exact with ml_dtypes `float8_e5m2`: overflow gives the infinity of its
///   sign (0x7C/0xFC), and infinities stay infinities.
/// - `saturate` = true: overflow and +-infinity clamp to +-57344 (0x7B/0xFB); all else as above.
/// - NaN (any payload) gives 0x7E/0xFE (its sign kept) in both modes, as ml_dtypes.
///
/// Buffers: `src` holds `n` floats, `dst` room for `n` codes (NULL allowed only when `n` is 0).
/// Thread-safe. Errors (nothing written): QUANT_ERR_NULL_POINTER, QUANT_ERR_INVALID_ARGUMENT as
/// for `quant_f32_to_fp8_e4m3`.
#[no_mangle]
pub extern "C" fn quant_f32_to_fp8_e5m2(
    src: *const f32,
    dst: *mut u8,
    n: usize,
    saturate: bool,
) -> quant_status {
    boundary(|| {
        let src = unsafe { slice_in(src, n, "src") }?;
        let dst = unsafe { slice_out(dst, n, "dst") }?;
        fp8::f32_to_fp8_e5m2(src, dst, saturate)
    })
}

/// Converts `n` FP8 E5M2 codes to floats, exactly; 0x7C/0xFC give +-infinity and every NaN code gives
/// the quiet NaN 0x7FC00000/0xFFC00000 of its sign (the payload is not kept; as ml_dtypes).
///
/// Buffers: `src` holds `n` codes, `dst` room for `n` floats (NULL allowed only when `n` is 0).
/// Thread-safe. Errors (nothing written): QUANT_ERR_NULL_POINTER, QUANT_ERR_INVALID_ARGUMENT as
/// for `quant_f32_to_fp8_e4m3`.
#[no_mangle]
pub extern "C" fn quant_fp8_e5m2_to_f32(src: *const u8, dst: *mut f32, n: usize) -> quant_status {
    boundary(|| {
        let src = unsafe { slice_in(src, n, "src") }?;
        let dst = unsafe { slice_out(dst, n, "dst") }?;
        fp8::fp8_e5m2_to_f32(src, dst)
    })
}

/// FP8 E4M3 scaled quantization of the row-major `rows x cols` matrix `src`.
///
/// Per group (`group_size` 0: one group per row; `k` > 0: groups of `k` consecutive columns of a row,
/// the last one of a row possibly shorter): `scale = absmax / 448`, `code = fp8_e4m3(x / scale)` with
/// saturation (round to nearest even; see `quant_f32_to_fp8_e4m3`). A group whose scale is 0 (all
/// zeros, or only values so tiny that absmax / 448 underflows to 0) gets scale 0 and codes 0x00.
/// Dequantize with `quant_fp8_e4m3_dequantize`: `x' = f32(code) * scale`.
///
/// Buffers (owned by the caller; none is kept): `src` holds `rows * cols` floats; `dst` receives
/// `rows * cols` codes (`dst_len` >= rows * cols); `scales` receives
/// `quant_scale_count(rows, cols, group_size)` scales, row by row (`scales_len` >= that count).
/// Thread-safe.
///
/// One pass over `src`, as `quant_int8_quantize`: every argument is checked before anything is
/// written, each group's values just before the group is quantized.
///
/// Argument errors (nothing written): QUANT_ERR_INVALID_ARGUMENT when `rows` or `cols` is 0 or
/// `rows * cols` overflows; QUANT_ERR_NULL_POINTER when a pointer is NULL (`dst`/`scales` may be NULL
/// only with a length of 0, which is then too small); QUANT_ERR_BUFFER_TOO_SMALL when `dst_len` or
/// `scales_len` is too small.
///
/// Value error: QUANT_ERR_NON_FINITE when `src` holds a NaN or an infinity; the detail names the first
/// bad index, and `dst[0 .. rows * cols)` and `scales[0 .. scale count)` are zero-filled (never left
/// half written; nothing past them is touched).
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub extern "C" fn quant_fp8_e4m3_quantize(
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
        fp8::fp8_e4m3_quantize(src, shape, dst, scales)
    })
}

/// Dequantizes FP8 E4M3 scaled codes: `dst[i] = f32(src[i]) * scale of i's group`, the inverse of
/// `quant_fp8_e4m3_quantize` with the same `rows`, `cols`, `group_size`. NaN codes (0x7F/0xFF) give
/// NaN.
///
/// Buffers (owned by the caller; none is kept): `src` holds `rows * cols` codes; `scales` holds
/// `quant_scale_count(rows, cols, group_size)` scales (its length is implied by the shape); `dst`
/// receives `rows * cols` floats (`dst_len` >= rows * cols). Thread-safe.
///
/// Errors (nothing written): QUANT_ERR_INVALID_ARGUMENT when `rows` or `cols` is 0 or `rows * cols`
/// overflows; QUANT_ERR_NULL_POINTER when a pointer is NULL; QUANT_ERR_BUFFER_TOO_SMALL when `dst_len`
/// is too small; QUANT_ERR_NON_FINITE when a scale is NaN or infinite (the detail names its index).
#[no_mangle]
pub extern "C" fn quant_fp8_e4m3_dequantize(
    src: *const u8,
    scales: *const f32,
    rows: usize,
    cols: usize,
    group_size: usize,
    dst: *mut f32,
    dst_len: usize,
) -> quant_status {
    boundary(|| {
        let shape = Shape::new(rows, cols, group_size)?;
        let src = unsafe { slice_in(src, shape.len(), "src") }?;
        let scales = unsafe { slice_in(scales, shape.n_groups(), "scales") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        fp8::fp8_e4m3_dequantize(src, scales, shape, dst)
    })
}
