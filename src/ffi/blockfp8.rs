//! C exports of block-scaled FP8 E4M3 (`quant_fp8_block_*`): DeepSeek-V3's FP8 weights with one
//! `weight_scale_inv` per 128 x 128 block, and its per-token activation groups (blocks of 1 x 128).
use std::ffi::c_void;

use crate::error::quant_status;
use crate::ffi::formats::src_in;
use crate::ffi::{boundary, boundary_value, slice_in, slice_out};
use crate::kernels::fp8::{fp8_block_dequantize, fp8_block_quantize, BlockShape};
use crate::kernels::source::QUANT_DTYPE_F32;

/// Number of `scale_inv` values of a `rows x cols` matrix in blocks of `block_rows x block_cols`:
/// `ceil(rows / block_rows) * ceil(cols / block_cols)` (the blocks at the right and bottom edges may
/// be smaller and have a value of their own).
///
/// Returns 0 when a dimension is 0 or the matrix size overflows; the thread's error detail then says
/// why. Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_fp8_block_scale_count(
    rows: usize,
    cols: usize,
    block_rows: usize,
    block_cols: usize,
) -> usize {
    boundary_value(0, || {
        Ok(BlockShape::new(rows, cols, block_rows, block_cols)?.n_blocks())
    })
}

/// Block-scaled FP8 E4M3 quantization of the row-major float matrix `src` (`rows x cols`), as
/// DeepSeek-V3 ships its weights (`weight` E4M3FN, `weight_scale_inv` f32; blocks of 128 x 128, i.e.
/// `block_rows = block_cols = QUANT_FP8_BLOCK_DEEPSEEK`) and vLLM loads them (`weight_block_size`).
/// Blocks of `1 x 128` give DeepSeek-V3's per-token activation quantization (`act_quant`), equal to
/// `quant_fp8_e4m3_quantize` with `group_size` 128.
///
/// Per block (the blocks at the right and bottom edges may be smaller; each has its own value):
/// `scale_inv = amax(|x|) / 448` (float), `code = fp8_e4m3(x / scale_inv)`, round to nearest even,
/// saturating (see `quant_f32_to_fp8_e4m3`). A block whose `scale_inv` is 0 (all zeros, or an amax
/// so small that amax / 448 underflows) gets `scale_inv` 0 and codes 0x00. Dequantize with
/// `quant_fp8_block_dequantize`: `x' = f32(code) * scale_inv`. Bit-exact with those formulas
/// evaluated by torch (`torch.float8_e4m3fn`).
///
/// - `src`: `rows * cols` floats, read only.
/// - `dst`: receives the `rows * cols` codes, row-major; `dst_len` is its length in elements.
/// - `scale_inv`: receives `quant_fp8_block_scale_count(rows, cols, block_rows, block_cols)` floats,
///   row-major over the grid of blocks (`scale_inv[(r / block_rows) * ceil(cols / block_cols) +
///   c / block_cols]`), the layout of DeepSeek-V3's `weight_scale_inv`; `scale_inv_len` is its length.
///
/// Only the needed prefix of each output is written. The caller owns every buffer; the buffers must not
/// overlap. No allocation; thread-safe.
///
/// One pass over `src`: every argument is checked before anything is written, each block's values as
/// it is quantized.
///
/// Argument errors (nothing written): QUANT_ERR_INVALID_ARGUMENT when `rows`, `cols`, `block_rows` or
/// `block_cols` is 0 or `rows * cols` overflows; QUANT_ERR_NULL_POINTER when a pointer is NULL
/// (`dst`/`scale_inv` may be NULL only with a length of 0, which is then too small);
/// QUANT_ERR_BUFFER_TOO_SMALL when `dst_len` or `scale_inv_len` is too small.
///
/// Value error: QUANT_ERR_NON_FINITE when `src` holds a NaN or an infinity; the detail names the first
/// bad index, and `dst[0 .. rows * cols)` and `scale_inv[0 .. scale count)` are zero-filled (nothing
/// past them is touched).
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub extern "C" fn quant_fp8_block_quantize(
    src: *const f32,
    rows: usize,
    cols: usize,
    block_rows: usize,
    block_cols: usize,
    dst: *mut u8,
    dst_len: usize,
    scale_inv: *mut f32,
    scale_inv_len: usize,
) -> quant_status {
    boundary(|| {
        let shape = BlockShape::new(rows, cols, block_rows, block_cols)?;
        let src = unsafe { src_in(QUANT_DTYPE_F32, src.cast::<c_void>(), shape.len(), "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let scale_inv = unsafe { slice_out(scale_inv, scale_inv_len, "scale_inv") }?;
        fp8_block_quantize(src, shape, dst, scale_inv)
    })
}

/// `quant_fp8_block_quantize` of a source of element type `src_dtype`: `QUANT_DTYPE_F32` (float),
/// `QUANT_DTYPE_F16` or `QUANT_DTYPE_BF16` (raw bits in `uint16_t`, 2-byte aligned), as DeepSeek-V3's
/// bf16 weights are quantized. The outputs equal bit for bit those of `quant_fp8_block_quantize` on
/// the same values as float; 16-bit sources are converted one block at a time (the library allocates
/// one block of floats per thread for them).
///
/// Errors: those of `quant_fp8_block_quantize` (NaN or infinity as f16/bf16 bit patterns is
/// `QUANT_ERR_NON_FINITE`, with the outputs zero-filled), and, before anything is written,
/// `QUANT_ERR_INVALID_ARGUMENT` for an unknown `src_dtype` or a misaligned `src` and
/// `QUANT_ERR_OUT_OF_MEMORY` if the conversion block cannot be allocated. Thread-safe.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub extern "C" fn quant_fp8_block_quantize_ex(
    src_dtype: i32,
    src: *const c_void,
    rows: usize,
    cols: usize,
    block_rows: usize,
    block_cols: usize,
    dst: *mut u8,
    dst_len: usize,
    scale_inv: *mut f32,
    scale_inv_len: usize,
) -> quant_status {
    boundary(|| {
        let shape = BlockShape::new(rows, cols, block_rows, block_cols)?;
        let src = unsafe { src_in(src_dtype, src, shape.len(), "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let scale_inv = unsafe { slice_out(scale_inv, scale_inv_len, "scale_inv") }?;
        fp8_block_quantize(src, shape, dst, scale_inv)
    })
}

/// Dequantizes block-scaled FP8 E4M3 codes: `dst[i] = f32(src[i]) * scale_inv[block of i]`, the
/// inverse of `quant_fp8_block_quantize` with the same geometry (DeepSeek-V3's `weight_dequant`).
/// NaN codes (0x7F/0xFF) give NaN.
///
/// - `src`: `rows * cols` codes; `scale_inv`: `quant_fp8_block_scale_count(rows, cols, block_rows,
///   block_cols)` floats (lengths implied by the geometry); `dst` receives `rows * cols` floats
///   (`dst_len` >= rows * cols).
///
/// Errors (nothing written): QUANT_ERR_INVALID_ARGUMENT when a dimension is 0 or `rows * cols`
/// overflows; QUANT_ERR_NULL_POINTER when a pointer is NULL; QUANT_ERR_BUFFER_TOO_SMALL when `dst_len`
/// is too small; QUANT_ERR_NON_FINITE when a `scale_inv` value is NaN or infinite (the detail names its
/// index). The caller owns every buffer; no allocation; thread-safe.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub extern "C" fn quant_fp8_block_dequantize(
    src: *const u8,
    scale_inv: *const f32,
    rows: usize,
    cols: usize,
    block_rows: usize,
    block_cols: usize,
    dst: *mut f32,
    dst_len: usize,
) -> quant_status {
    boundary(|| {
        let shape = BlockShape::new(rows, cols, block_rows, block_cols)?;
        let src = unsafe { slice_in(src, shape.len(), "src") }?;
        let scale_inv = unsafe { slice_in(scale_inv, shape.n_blocks(), "scale_inv") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        fp8_block_dequantize(src, scale_inv, shape, dst)
    })
}
