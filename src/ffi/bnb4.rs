//! C exports of bitsandbytes' 4-bit formats NF4 and FP4 (`quant_bnb4_*`).
use std::ffi::c_void;

use crate::error::{quant_status, QuantError};
use crate::ffi::formats::src_in;
use crate::ffi::{boundary, boundary_value, slice_in, slice_out};
use crate::kernels::nf4::{
    bnb4_absmax_len, bnb4_dequantize, bnb4_packed_len, bnb4_quantize, check_blocksize, Bnb4Type,
};
use crate::kernels::source::QUANT_DTYPE_F32;

/// Bytes of the packed codes of `n` values in bitsandbytes' 4-bit layout: `ceil(n / 2)`.
///
/// Returns 0 for `n` 0 (and records a detail). Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_bnb4_packed_size(n: usize) -> usize {
    boundary_value(0, || {
        if n == 0 {
            return Err(QuantError::invalid("n is 0: there is nothing to pack"));
        }
        Ok(bnb4_packed_len(n))
    })
}

/// Number of absmax values of `n` values in blocks of `blocksize`: `ceil(n / blocksize)`.
///
/// Returns 0 for `n` 0 or a block size bitsandbytes does not accept (a power of two from 32 to
/// 4096); the detail says which. Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_bnb4_absmax_count(n: usize, blocksize: usize) -> usize {
    boundary_value(0, || {
        check_blocksize(blocksize)?;
        if n == 0 {
            return Err(QuantError::invalid("n is 0: there are no blocks"));
        }
        Ok(bnb4_absmax_len(n, blocksize))
    })
}

/// Quantizes `n` floats (`src`, a tensor flattened row-major) to bitsandbytes' 4-bit format
/// `quant_type` (`QUANT_BNB4_NF4` or `QUANT_BNB4_FP4`), byte for byte as
/// `bitsandbytes.functional.quantize_4bit(x, blocksize, quant_type, compress_statistics=False)` on
/// the CPU (bitsandbytes 0.50.2), what transformers' `load_in_4bit` stores as `weight` and
/// `weight.absmax`.
///
/// Blocks of `blocksize` consecutive values (32, 64 (bitsandbytes' default), 128, ..., 4096), the
/// last one possibly shorter. Per block `absmax = max |x|` (the last, partial block stores
/// `max(absmax, 1e-38)`), each value scaled to [-1, 1] (`x * (1 / absmax)` in float for full blocks,
/// `x / absmax` for the partial one, clamped) and coded as the code book entry whose bucket between
/// the float midpoints of the sorted code book holds it (a value on a midpoint takes the lower entry).
/// Two codes a byte, the first value in the high nibble; an odd `n` pads the last low nibble with the
/// code of 0.0. Dequantize with `quant_bnb4_dequantize`. Double quantization of the absmax values
/// (`compress_statistics=True`) is not provided.
///
/// - `src`: `n` floats. `dst`: receives `quant_bnb4_packed_size(n)` bytes (`dst_len` in bytes).
///   `absmax`: receives `quant_bnb4_absmax_count(n, blocksize)` floats (`absmax_len` in elements).
///
/// Only those prefixes are written. The caller owns every buffer; no allocation; thread-safe.
///
/// Argument errors (nothing written): QUANT_ERR_INVALID_ARGUMENT for an unknown `quant_type`, `n` 0
/// or too large, or a block size bitsandbytes does not accept; QUANT_ERR_NULL_POINTER for a NULL
/// pointer (`dst`/`absmax` NULL only with a length of 0, which is then too small);
/// QUANT_ERR_BUFFER_TOO_SMALL when `dst_len` or `absmax_len` is too small. Value error:
/// QUANT_ERR_NON_FINITE for a NaN or an infinity in `src` (the detail names the first index); the two
/// outputs' prefixes are then zero-filled.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub extern "C" fn quant_bnb4_quantize(
    quant_type: i32,
    src: *const f32,
    n: usize,
    blocksize: usize,
    dst: *mut u8,
    dst_len: usize,
    absmax: *mut f32,
    absmax_len: usize,
) -> quant_status {
    boundary(|| {
        let ty = Bnb4Type::from_code(quant_type)?;
        check_n(n)?;
        let src = unsafe { src_in(QUANT_DTYPE_F32, src.cast::<c_void>(), n, "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let absmax = unsafe { slice_out(absmax, absmax_len, "absmax") }?;
        bnb4_quantize(ty, src, blocksize, dst, absmax)
    })
}

/// `quant_bnb4_quantize` of a source of element type `src_dtype` (`QUANT_DTYPE_F32`, `_F16` or
/// `_BF16`; 16-bit values as raw bits in `uint16_t`, 2-byte aligned), as bitsandbytes quantizes f16
/// and bf16 weights (their exact float values). The outputs equal bit for bit those of
/// `quant_bnb4_quantize` on the same values as float.
///
/// Errors: those of `quant_bnb4_quantize`, and QUANT_ERR_INVALID_ARGUMENT (nothing written) for an
/// unknown `src_dtype` or a misaligned `src`. Thread-safe; no allocation.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub extern "C" fn quant_bnb4_quantize_ex(
    quant_type: i32,
    src_dtype: i32,
    src: *const c_void,
    n: usize,
    blocksize: usize,
    dst: *mut u8,
    dst_len: usize,
    absmax: *mut f32,
    absmax_len: usize,
) -> quant_status {
    boundary(|| {
        let ty = Bnb4Type::from_code(quant_type)?;
        check_n(n)?;
        let src = unsafe { src_in(src_dtype, src, n, "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let absmax = unsafe { slice_out(absmax, absmax_len, "absmax") }?;
        bnb4_quantize(ty, src, blocksize, dst, absmax)
    })
}

/// Dequantizes `n` values of bitsandbytes' 4-bit format `quant_type` (`src`: the packed codes of
/// `quant_bnb4_quantize`, `absmax`: one float per block) into `dst[0 .. n)`:
/// `dst[i] = code_book[code i] * absmax[i / blocksize]`, as bitsandbytes' `dequantize_4bit` to float32
/// (FP4 code 8 decodes to -0.0, as its native CPU kernel).
///
/// - `src`: `quant_bnb4_packed_size(n)` bytes; `absmax`: `quant_bnb4_absmax_count(n, blocksize)`
///   floats (lengths implied by `n`); `dst`: `dst_len` >= `n` floats.
///
/// Errors (nothing written): QUANT_ERR_INVALID_ARGUMENT for an unknown `quant_type`, `n` 0 or an
/// unaccepted block size; QUANT_ERR_NULL_POINTER for a NULL pointer; QUANT_ERR_BUFFER_TOO_SMALL when
/// `dst_len` < `n`; QUANT_ERR_NON_FINITE for a NaN or infinite absmax (the detail names its index).
/// The caller owns every buffer; no allocation; thread-safe.
#[no_mangle]
pub extern "C" fn quant_bnb4_dequantize(
    quant_type: i32,
    src: *const u8,
    absmax: *const f32,
    n: usize,
    blocksize: usize,
    dst: *mut f32,
    dst_len: usize,
) -> quant_status {
    boundary(|| {
        let ty = Bnb4Type::from_code(quant_type)?;
        check_n(n)?;
        check_blocksize(blocksize)?;
        let src = unsafe { slice_in(src, bnb4_packed_len(n), "src") }?;
        let absmax = unsafe { slice_in(absmax, bnb4_absmax_len(n, blocksize), "absmax") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        bnb4_dequantize(ty, src, absmax, n, blocksize, dst)
    })
}

/// `n` must be a positive number of floats that fits in memory (checked before any slice is built).
fn check_n(n: usize) -> crate::error::Result<()> {
    crate::ffi::matrix_len(1, n).map(|_| ())
}
