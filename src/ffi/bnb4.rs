//! C exports of bitsandbytes' 4-bit formats NF4 and FP4 (`quant_bnb4_*`).
use std::ffi::c_void;

use crate::error::{quant_status, QuantError, Result};
use crate::ffi::formats::src_in;
use crate::ffi::{boundary, boundary_value, in_ref, out_param, slice_in, slice_out};
use crate::kernels::nf4::{
    bnb4_absmax_len, bnb4_absmax_mean, bnb4_dequantize, bnb4_dequantize_nested, bnb4_nested_absmax,
    bnb4_nested_len, bnb4_packed_len, bnb4_quantize, bnb4_quantize_nested, check_blocksize,
    Bnb4Type, QUANT_BNB4_NESTED_BLOCKSIZE,
};
use crate::kernels::source::{Src, QUANT_DTYPE_F32};

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
        check_blocks(n, blocksize)?;
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
/// (`compress_statistics=True`) is `quant_bnb4_quantize_nested`.
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
    boundary(|| unsafe {
        quantize(
            (quant_type, QUANT_DTYPE_F32, src.cast::<c_void>()),
            n,
            blocksize,
            (dst, dst_len),
            (absmax, absmax_len),
        )
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
    boundary(|| unsafe {
        quantize(
            (quant_type, src_dtype, src),
            n,
            blocksize,
            (dst, dst_len),
            (absmax, absmax_len),
        )
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
        let (ty, src) = unsafe { codes_in(quant_type, src, n, blocksize) }?;
        let absmax = unsafe { slice_in(absmax, bnb4_absmax_len(n, blocksize), "absmax") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        bnb4_dequantize(ty, src, absmax, n, blocksize, dst)
    })
}

/// `n` must be a positive number of floats that fits in memory (checked before any slice is built).
fn check_n(n: usize) -> Result<()> {
    crate::ffi::matrix_len(1, n).map(|_| ())
}

/// The size queries' checks: an accepted block size, then `n` not 0.
fn check_blocks(n: usize, blocksize: usize) -> Result<()> {
    check_blocksize(blocksize)?;
    if n == 0 {
        return Err(QuantError::invalid("n is 0: there are no blocks"));
    }
    Ok(())
}

/// A `count` of absmax values: not 0 (the detail then reads "count is 0: " and `why`), then one
/// that fits in memory.
fn check_count(count: usize, why: &str) -> Result<()> {
    if count == 0 {
        return Err(QuantError::invalid(format!("count is 0: {why}")));
    }
    check_n(count)
}

/// The quantizers' first checks, in their order: the code book, `n`, then the source of `n` elements
/// of type `src_dtype`.
///
/// # Safety
/// As [`src_in`].
unsafe fn source_in<'a>(
    quant_type: i32,
    src_dtype: i32,
    src: *const c_void,
    n: usize,
) -> Result<(Bnb4Type, Src<'a>)> {
    let ty = Bnb4Type::from_code(quant_type)?;
    check_n(n)?;
    Ok((ty, src_in(src_dtype, src, n, "src")?))
}

/// The dequantizers' first checks, in their order: the code book, `n`, the block size, then the
/// packed codes of `n` values.
///
/// # Safety
/// As [`slice_in`].
unsafe fn codes_in<'a>(
    quant_type: i32,
    src: *const u8,
    n: usize,
    blocksize: usize,
) -> Result<(Bnb4Type, &'a [u8])> {
    let ty = Bnb4Type::from_code(quant_type)?;
    check_n(n)?;
    check_blocksize(blocksize)?;
    Ok((ty, slice_in(src, bnb4_packed_len(n), "src")?))
}

/// The body of `quant_bnb4_quantize_ex`, and of `quant_bnb4_quantize` (whose source is f32).
///
/// # Safety
/// As [`src_in`] and [`slice_out`] for each pointer.
unsafe fn quantize(
    (quant_type, src_dtype, src): (i32, i32, *const c_void),
    n: usize,
    blocksize: usize,
    (dst, dst_len): (*mut u8, usize),
    (absmax, absmax_len): (*mut f32, usize),
) -> Result<()> {
    let (ty, src) = source_in(quant_type, src_dtype, src, n)?;
    let dst = slice_out(dst, dst_len, "dst")?;
    let absmax = slice_out(absmax, absmax_len, "absmax")?;
    bnb4_quantize(ty, src, blocksize, dst, absmax)
}

/// Number of `absmax2` floats of bitsandbytes' double quantization (`compress_statistics=True`) of
/// `n` values in blocks of `blocksize`: one per 256 absmax values, `ceil(ceil(n / blocksize) / 256)`.
/// The 8-bit absmax codes (`qabsmax`) are `quant_bnb4_absmax_count(n, blocksize)` bytes.
///
/// Returns 0 for `n` 0 or a block size bitsandbytes does not accept; the detail says which.
/// Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_bnb4_nested_count(n: usize, blocksize: usize) -> usize {
    boundary_value(0, || {
        check_blocks(n, blocksize)?;
        Ok(bnb4_nested_len(n, blocksize))
    })
}

/// The library's offset rule of double quantization into `*mean`: the mean of the `count` floats
/// `absmax` as their double-precision sum in index order divided by `count`, rounded once to float
/// (the correctly rounded mean, barring a sum that loses a bit next to a float rounding boundary).
/// bitsandbytes uses torch's float `mean`, whose summation order depends on the machine, so its last
/// bits can differ; `quant_bnb4_quantize_nested` takes either.
///
/// Errors (nothing written): QUANT_ERR_INVALID_ARGUMENT for `count` 0; QUANT_ERR_NULL_POINTER for a
/// NULL pointer; QUANT_ERR_NON_FINITE for a NaN or an infinity in `absmax` (the detail names the
/// first index). The caller owns every buffer; no allocation; thread-safe.
#[no_mangle]
pub extern "C" fn quant_bnb4_absmax_mean(
    absmax: *const f32,
    count: usize,
    mean: *mut f32,
) -> quant_status {
    boundary(|| {
        check_count(count, "there is no mean")?;
        let absmax = unsafe { slice_in(absmax, count, "absmax") }?;
        let mean = unsafe { out_param(mean, "mean") }?;
        *mean = bnb4_absmax_mean(absmax)?;
        Ok(())
    })
}

/// Quantizes `n` values (`src`, of element type `src_dtype`: `QUANT_DTYPE_F32`, `_F16` or `_BF16`,
/// 16-bit values as raw bits, 2-byte aligned) to bitsandbytes' 4-bit format `quant_type` with
/// double-quantized statistics, byte for byte as
/// `bitsandbytes.functional.quantize_4bit(x, blocksize, quant_type, compress_statistics=True)` on the
/// CPU (bitsandbytes 0.50.2) given its offset: what transformers' `bnb_4bit_use_double_quant=True`
/// stores as `weight`, `weight.absmax` (uint8), `weight.nested_absmax` and `weight.nested_quant_map`
/// (the dynamic map), with the offset as `nested_offset` (a float that round-trips exactly) in its
/// quantization state.
///
/// The 4-bit codes are those of `quant_bnb4_quantize_ex`. Its block absmax values, minus an offset,
/// are coded to 8 bits on bitsandbytes' signed dynamic map in blocks of 256 (`quantize_blockwise`):
/// `qabsmax` one byte per 4-bit block, `absmax2` the largest magnitude of each block of 256. The offset
/// is `*offset` when `offset` is not NULL (to reproduce a checkpoint whose offset is known), else the
/// library's mean rule (`quant_bnb4_absmax_mean` of the block absmax values); bitsandbytes' own offset
/// is torch's float `mean`, whose last bits depend on the machine. Everything after the offset is
/// byte-exact. `*offset_out` receives the offset used. Dequantize with `quant_bnb4_dequantize_nested`.
///
/// - `dst`: receives `quant_bnb4_packed_size(n)` bytes (`dst_len` in bytes). `qabsmax`: receives
///   `quant_bnb4_absmax_count(n, blocksize)` bytes (`qabsmax_len` in bytes). `absmax2`: receives
///   `quant_bnb4_nested_count(n, blocksize)` floats (`absmax2_len` in elements). `offset_out`: one
///   float, required.
///
/// Only those prefixes are written. The caller owns every buffer; the call allocates
/// `quant_bnb4_absmax_count(n, blocksize)` floats of working space; thread-safe.
///
/// Argument errors (nothing written): QUANT_ERR_INVALID_ARGUMENT for an unknown `quant_type` or
/// `src_dtype`, a misaligned `src`, `n` 0 or too large, a block size bitsandbytes does not accept, or a
/// NaN or infinite `*offset`; QUANT_ERR_NULL_POINTER for a NULL pointer other than `offset`
/// (`dst`/`qabsmax`/`absmax2` NULL only with a length of 0, which is then too small);
/// QUANT_ERR_BUFFER_TOO_SMALL when `dst_len`, `qabsmax_len` or `absmax2_len` is too small;
/// QUANT_ERR_OUT_OF_MEMORY when the working space cannot be allocated. Value errors:
/// QUANT_ERR_NON_FINITE for a NaN or an infinity in `src` (the detail names the first index), or when
/// an absmax minus `*offset` overflows float; `dst`, `qabsmax` and `absmax2`'s prefixes are then
/// zero-filled and `*offset_out` is not written.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub extern "C" fn quant_bnb4_quantize_nested(
    quant_type: i32,
    src_dtype: i32,
    src: *const c_void,
    n: usize,
    blocksize: usize,
    offset: *const f32,
    dst: *mut u8,
    dst_len: usize,
    qabsmax: *mut u8,
    qabsmax_len: usize,
    absmax2: *mut f32,
    absmax2_len: usize,
    offset_out: *mut f32,
) -> quant_status {
    boundary(|| {
        let (ty, src) = unsafe { source_in(quant_type, src_dtype, src, n) }?;
        let offset = if offset.is_null() {
            None
        } else {
            Some(*unsafe { in_ref(offset, "offset") }?)
        };
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let qabsmax = unsafe { slice_out(qabsmax, qabsmax_len, "qabsmax") }?;
        let absmax2 = unsafe { slice_out(absmax2, absmax2_len, "absmax2") }?;
        let offset_out = unsafe { out_param(offset_out, "offset_out") }?;
        *offset_out = bnb4_quantize_nested(ty, src, blocksize, offset, dst, qabsmax, absmax2)?;
        Ok(())
    })
}

/// The absmax values that double-quantized statistics decode to, into `dst[0 .. count)`:
/// `dst[i] = dynamic_map[qabsmax[i]] * absmax2[i / 256] + offset` (a float product, then a float
/// sum), as bitsandbytes' `dequantize_blockwise(qabsmax, state2) + offset`. With them
/// `quant_bnb4_dequantize` decodes the 4-bit values as `quant_bnb4_dequantize_nested` does.
///
/// - `qabsmax`: `count` bytes; `absmax2`: `ceil(count / 256)` floats (lengths implied by `count`);
///   `dst`: `dst_len` >= `count` floats. `count` is `quant_bnb4_absmax_count(n, blocksize)`.
///
/// Errors (nothing written): QUANT_ERR_INVALID_ARGUMENT for `count` 0 or a NaN or infinite `offset`;
/// QUANT_ERR_NULL_POINTER for a NULL pointer; QUANT_ERR_BUFFER_TOO_SMALL when `dst_len` < `count`;
/// QUANT_ERR_NON_FINITE for a NaN or infinite `absmax2` value (the detail names its index). The caller
/// owns every buffer; no allocation; thread-safe.
#[no_mangle]
pub extern "C" fn quant_bnb4_nested_absmax(
    qabsmax: *const u8,
    absmax2: *const f32,
    offset: f32,
    count: usize,
    dst: *mut f32,
    dst_len: usize,
) -> quant_status {
    boundary(|| {
        check_count(count, "there are no absmax values")?;
        let qabsmax = unsafe { slice_in(qabsmax, count, "qabsmax") }?;
        let absmax2 = unsafe {
            slice_in(
                absmax2,
                count.div_ceil(QUANT_BNB4_NESTED_BLOCKSIZE),
                "absmax2",
            )
        }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        bnb4_nested_absmax(qabsmax, absmax2, offset, count, dst)
    })
}

/// Dequantizes `n` values of bitsandbytes' 4-bit format `quant_type` with double-quantized statistics
/// (`src`: the packed codes, `qabsmax`, `absmax2` and `offset` as `quant_bnb4_quantize_nested` wrote
/// them) into `dst[0 .. n)`, as bitsandbytes' `dequantize_4bit` of a nested state to float32: the
/// absmax values are recovered as `quant_bnb4_nested_absmax` does, then
/// `dst[i] = code_book[code i] * absmax[i / blocksize]` (FP4 code 8 decodes to -0.0).
///
/// - `src`: `quant_bnb4_packed_size(n)` bytes; `qabsmax`: `quant_bnb4_absmax_count(n, blocksize)`
///   bytes; `absmax2`: `quant_bnb4_nested_count(n, blocksize)` floats (lengths implied by `n`); `dst`:
///   `dst_len` >= `n` floats.
///
/// Errors (nothing written): QUANT_ERR_INVALID_ARGUMENT for an unknown `quant_type`, `n` 0, an
/// unaccepted block size or a NaN or infinite `offset`; QUANT_ERR_NULL_POINTER for a NULL pointer;
/// QUANT_ERR_BUFFER_TOO_SMALL when `dst_len` < `n`; QUANT_ERR_NON_FINITE for a NaN or infinite
/// `absmax2` value or a recovered absmax that overflows float; QUANT_ERR_OUT_OF_MEMORY when the
/// working space cannot be allocated. The caller owns every buffer; the call allocates
/// `quant_bnb4_absmax_count(n, blocksize)` floats of working space; thread-safe.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub extern "C" fn quant_bnb4_dequantize_nested(
    quant_type: i32,
    src: *const u8,
    qabsmax: *const u8,
    absmax2: *const f32,
    offset: f32,
    n: usize,
    blocksize: usize,
    dst: *mut f32,
    dst_len: usize,
) -> quant_status {
    boundary(|| {
        let (ty, src) = unsafe { codes_in(quant_type, src, n, blocksize) }?;
        let qabsmax = unsafe { slice_in(qabsmax, bnb4_absmax_len(n, blocksize), "qabsmax") }?;
        let absmax2 = unsafe { slice_in(absmax2, bnb4_nested_len(n, blocksize), "absmax2") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        bnb4_dequantize_nested(ty, src, qabsmax, absmax2, offset, n, blocksize, dst)
    })
}
