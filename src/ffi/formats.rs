//! C exports for the on-disk layouts that engines load: GGML/GGUF blocks (`quant_ggml_*`), GPTQ and AWQ
//! checkpoint packing (`quant_weight_pack_gptq`, `quant_weight_pack_awq` and their size queries), and
//! the f16/bf16 source variants of the round-to-nearest kernels and of `quant_quantize` (`*_ex`).
use std::ffi::{c_char, c_void};

use crate::algos::QuantOptions;
use crate::error::{quant_status, QuantError, Result};
use crate::ffi::calib::quant_calib;
use crate::ffi::method::{method_in, quant_method};
use crate::ffi::options::quant_options;
use crate::ffi::weight::quant_weight;
use crate::ffi::{
    boundary, boundary_value, in_ref, into_handle, matrix_len, out_param, slice_in, slice_out,
};
use crate::kernels::ggml::{ggml_dequantize, ggml_quantize_src, ggml_quantize_weighted, GgmlType};
use crate::kernels::source::{
    dtype_name, fp8_e4m3_quantize_src, int4_quantize_src, int8_quantize_src, quantize_src, Src,
    QUANT_DTYPE_BF16, QUANT_DTYPE_F16, QUANT_DTYPE_F32,
};
use crate::kernels::Shape;
use crate::pack;

// ------------------------------------------------------------------------------------------------
// GGML / GGUF blocks

/// Values per block of the GGML type `ggml_type` (like ggml's `ggml_blck_size`): 32 for Q4_0, Q4_1,
/// Q5_0, Q5_1, Q8_0, IQ4_NL and MXFP4; 64 for NVFP4; 256 for the K-quants Q2_K, Q3_K, Q4_K, Q5_K
/// and Q6_K and for IQ4_XS, TQ1_0 and TQ2_0. The type ids are GGML's own (`QUANT_GGML_TYPE_*`).
///
/// Returns 0 for an unsupported type (and records a detail). Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_ggml_block_size(ggml_type: i32) -> usize {
    boundary_value(0, || Ok(GgmlType::from_id_checked(ggml_type)?.block_size()))
}

/// Bytes per block of the GGML type `ggml_type` (like ggml's `ggml_type_size`): Q4_0 18, Q4_1 20,
/// Q5_0 22, Q5_1 24, Q8_0 34, Q2_K 84, Q3_K 110, Q4_K 144, Q5_K 176, Q6_K 210, IQ4_NL 18,
/// IQ4_XS 136, TQ1_0 54, TQ2_0 66, MXFP4 17, NVFP4 36.
///
/// Returns 0 for an unsupported type (and records a detail). Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_ggml_type_size(ggml_type: i32) -> usize {
    boundary_value(0, || Ok(GgmlType::from_id_checked(ggml_type)?.type_size()))
}

/// Bytes of one row of `n_per_row` values in the GGML type `ggml_type` (like ggml's
/// `ggml_row_size`): `n_per_row / block_size * type_size`. A matrix of `nrows` rows takes `nrows`
/// times that (rows are stored back to back).
///
/// Returns 0 for an unsupported type or a `n_per_row` that is not a multiple of the block size (both
/// record a detail); 0 for `n_per_row` 0. Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_ggml_row_size(ggml_type: i32, n_per_row: usize) -> usize {
    boundary_value(0, || {
        let ty = GgmlType::from_id_checked(ggml_type)?;
        ty.row_size(n_per_row).ok_or_else(|| {
            QuantError::invalid(if n_per_row % ty.block_size() != 0 {
                format!(
                    "n_per_row is {n_per_row}: {} rows hold a multiple of {} values",
                    ty.name(),
                    ty.block_size()
                )
            } else {
                format!("n_per_row is {n_per_row}: its size in bytes overflows size_t")
            })
        })
    })
}

/// GGML's name of the type `ggml_type` ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K",
/// "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs", "tq1_0", "tq2_0", "mxfp4", "nvfp4", as ggml's
/// `ggml_type_name`), a static NUL-terminated string owned by the library (do not free it).
///
/// Returns NULL for an unsupported type (and records a detail). Thread-safe.
#[no_mangle]
pub extern "C" fn quant_ggml_type_name(ggml_type: i32) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        Ok(GgmlType::from_id_checked(ggml_type)?.c_name().as_ptr())
    })
}

/// Quantizes `nrows` rows of `n_per_row` floats (`src`, row-major) to GGML blocks of type
/// `ggml_type`, byte for byte as ggml's reference quantizers (`quantize_row_*_ref`, ggml's
/// `quantize_*` without an importance matrix, which `ggml_quantize_chunk` runs when it is given none).
///
/// Layouts (little-endian, `f16` = IEEE binary16 rounded to nearest even; a row is
/// `n_per_row / block` records back to back, rows back to back):
/// - `QUANT_GGML_TYPE_Q4_0` (2), 32 values, 18 bytes: `f16 d; uint8 qs[16]`; value `(q - 8) * d`.
/// - `QUANT_GGML_TYPE_Q4_1` (3), 32 values, 20 bytes: `f16 d, m; uint8 qs[16]`; value `q * d + m`.
/// - `QUANT_GGML_TYPE_Q5_0` (6), 32 values, 22 bytes: `f16 d; uint32 qh; uint8 qs[16]`;
///   value `(q - 16) * d`.
/// - `QUANT_GGML_TYPE_Q5_1` (7), 32 values, 24 bytes: `f16 d, m; uint32 qh; uint8 qs[16]`;
///   value `q * d + m`.
/// - `QUANT_GGML_TYPE_Q8_0` (8), 32 values, 34 bytes: `f16 d; int8 qs[32]`; value `q * d`.
/// - In these, `qs[j]` holds value `j` in its low nibble and value `j + 16` in its high nibble; the
///   fifth bit of value `j` of a Q5 block is bit `j` of `qh`.
/// - `QUANT_GGML_TYPE_Q2_K` (10), 256 values, 84 bytes: `uint8 scales[16], qs[64]; f16 d, dmin`:
///   sixteen sub-blocks of 16, `scales[j]` = 4-bit scale (low nibble) and min (high nibble); value
///   `d * sc * q - dmin * m` with 2-bit `q`.
/// - `QUANT_GGML_TYPE_Q3_K` (11), 256 values, 110 bytes: `uint8 hmask[32], qs[64], scales[12];
///   f16 d`: sixteen sub-blocks of 16 with 6-bit scales stored plus 32; value
///   `d * (sc - 32) * (q - 4)` with 3-bit `q` (low two bits in `qs`, the third in `hmask`).
/// - `QUANT_GGML_TYPE_Q4_K` (12), 256 values, 144 bytes: `f16 d, dmin; uint8 scales[12];
///   uint8 qs[128]`: eight sub-blocks of 32 with 6-bit scales and mins (ggml's `get_scale_min_k4`
///   packing); value `d * sc * q - dmin * m`.
/// - `QUANT_GGML_TYPE_Q5_K` (13), 256 values, 176 bytes: `f16 d, dmin; uint8 scales[12], qh[32];
///   uint8 qs[128]`: Q4_K's scales and nibbles plus a fifth bit per value in `qh`; value
///   `d * sc * q - dmin * m`.
/// - `QUANT_GGML_TYPE_Q6_K` (14), 256 values, 210 bytes: `uint8 ql[128], qh[64]; int8 scales[16];
///   f16 d`: sixteen sub-blocks of 16; value `d * scale * (q - 32)` with 6-bit `q`.
/// - `QUANT_GGML_TYPE_IQ4_NL` (20), 32 values, 18 bytes: `f16 d; uint8 qs[16]` (nibbles as Q4_0);
///   value `d * kvalues_iq4nl[q]`, the 16 levels `-127, -104, -83, -65, -49, -35, -22, -10, 1, 13,
///   25, 38, 53, 69, 89, 113`. Written as ggml's `quantize_iq4_nl` (what `ggml_quantize_chunk`
///   runs, with weights `x^2` when there is no importance matrix), not `quantize_row_iq4_nl_ref`.
/// - `QUANT_GGML_TYPE_MXFP4` (39), 32 values, 17 bytes: `uint8 e; uint8 qs[16]` (nibbles as Q4_0);
///   value `kvalues_mxfp4[q] * 2^(e - 128)` with the doubled E2M1 values `0, 1, 2, 3, 4, 6, 8, 12`
///   (codes 8..15 their negatives), i.e. OCP MXFP4 with an E8M0 scale `2^(e - 127)`. Never fails
///   on finite input.
/// - `QUANT_GGML_TYPE_IQ4_XS` (23), 256 values, 136 bytes: `f16 d; uint16 scales_h;
///   uint8 scales_l[4], qs[128]`: eight blocks of 32, block `ib` with the 6-bit scale `ls` (nibble
///   `ib % 2` of `scales_l[ib / 2]`, high bits `2 ib, 2 ib + 1` of `scales_h`) and its 16 bytes of
///   `qs` (nibbles as Q4_0); value `d * (ls - 32) * kvalues_iq4nl[q]`. Written as ggml's
///   `quantize_iq4_xs`.
/// - `QUANT_GGML_TYPE_TQ1_0` (34), 256 values, 54 bytes: `uint8 qs[48], qh[4]; f16 d`: ternary
///   codes `t` in `0..=2`, value `(t - 1) * d`, with `d` the block's largest magnitude and
///   `t = round(x / d) + 1` (half away from zero). Five codes `t0..t4` form
///   `n = 81 t0 + 27 t1 + 9 t2 + 3 t3 + t4`, stored as the byte `ceil(n * 256 / 243)`; code `k` of a
///   byte `b` is `((b * 3^k) mod 256) * 3 >> 8`. `qs[m]` (`m < 32`) holds values `m + 32 k`
///   (`k < 5`), `qs[32 + m]` (`m < 16`) values `160 + m + 16 k`, `qh[j]` values `240 + j + 4 k`
///   (`k < 4`, fifth code 0).
/// - `QUANT_GGML_TYPE_TQ2_0` (35), 256 values, 66 bytes: `uint8 qs[64]; f16 d`: the same codes and
///   scale as TQ1_0, two bits each: `qs[32 c + m]` holds values `128 c + m + 32 k` at bits
///   `2 k .. 2 k + 2` (`c < 2`, `m < 32`, `k < 4`); value `(q - 1) * d` (a code 3, never written,
///   decodes to `2 d`).
/// - `QUANT_GGML_TYPE_NVFP4` (40), 64 values, 36 bytes: `uint8 d[4]; uint8 qs[32]`: four sub-blocks
///   of 16, sub-block `s` with the UE4M3 scale `d[s]` and the bytes `qs[8 s .. 8 s + 8)`, byte
///   `qs[8 s + j]` holding value `16 s + j` (low nibble) and `16 s + j + 8` (high nibble); value
///   `kvalues_mxfp4[q] * ue4m3(d[s]) / 2`. No per-tensor scale (ggml has none): sub-block scales
///   saturate at 448, so values beyond 2688 in magnitude are clamped, as ggml writes them. Never
///   fails on finite input.
///
/// The K-quants follow ggml's `quantize_row_q2_K_ref` ... `quantize_row_q6_K_ref` algorithms
/// (`make_qkx2_quants`, `make_q3_quants`, `make_qx_quants`); `src/kernels/ggml/k.rs` documents
/// every bit of their layouts.
///
/// - `dst`: receives `nrows * quant_ggml_row_size(ggml_type, n_per_row)` bytes; `dst_len` is its
///   length in bytes (only that prefix is written). The caller owns every buffer; no allocation;
///   thread-safe.
///
/// Errors (nothing is written on any of them):
/// - `QUANT_ERR_INVALID_ARGUMENT`: unsupported type; `nrows` or `n_per_row` 0, or the size overflows;
///   `n_per_row` not a multiple of the block size; a block whose f16 scale or min would overflow
///   (values beyond about 5e5 for Q4_0; the detail names the block).
/// - `QUANT_ERR_NULL_POINTER`: `src` NULL, or `dst` NULL with `dst_len` > 0.
/// - `QUANT_ERR_BUFFER_TOO_SMALL`: `dst_len` below the size of the rows.
/// - `QUANT_ERR_NON_FINITE`: NaN or infinity in `src` (the detail names the first index).
#[no_mangle]
pub extern "C" fn quant_ggml_quantize(
    ggml_type: i32,
    src: *const f32,
    nrows: usize,
    n_per_row: usize,
    dst: *mut c_void,
    dst_len: usize,
) -> quant_status {
    boundary(|| unsafe {
        ggml_quantize_in(
            ggml_type,
            src,
            nrows,
            n_per_row,
            std::ptr::null(),
            dst,
            dst_len,
        )
    })
}

/// `quant_ggml_quantize` with an importance matrix: byte for byte what ggml's `ggml_quantize_chunk`
/// writes when given `quant_weights` as its `imatrix` (ggml's `quantize_row_*_impl`, what
/// `llama-quantize --imatrix` runs), for every type of `quant_ggml_quantize`. Q8_0, TQ1_0, TQ2_0,
/// MXFP4 and NVFP4 ignore the weights (the bytes are those of `quant_ggml_quantize`, the weights are
/// still checked), as ggml does.
///
/// - `quant_weights`: NULL, or `n_per_row` floats, one importance weight per column (the same for
///   every row; llama.cpp's imatrix holds the mean squared activation of each input column). NULL
///   gives exactly the bytes of `quant_ggml_quantize`. Every weight must be finite and at least 0.
/// - The other parameters are those of `quant_ggml_quantize`.
///
/// The weighted K-quants search many candidate scales per sub-block: expect them to be several times
/// slower than the unweighted path. The library allocates a scratch copy of the output (nothing
/// else): the records are copied to `dst` only once all of them are known to be valid.
/// The caller owns every buffer; the library keeps no pointer after the call; thread-safe (calls on
/// distinct `dst` buffers may run concurrently).
///
/// Errors (nothing is written on any of them): those of `quant_ggml_quantize`, and
/// - `QUANT_ERR_NON_FINITE`: a weight NaN or infinite (the detail names its index).
/// - `QUANT_ERR_INVALID_ARGUMENT`: a negative weight (the detail names its index); a block whose f16
///   scale or min would overflow (a weighted fit can extrapolate far from small values).
/// - `QUANT_ERR_OUT_OF_MEMORY`: the scratch output cannot be allocated.
#[no_mangle]
pub extern "C" fn quant_ggml_quantize_weighted(
    ggml_type: i32,
    src: *const f32,
    nrows: usize,
    n_per_row: usize,
    quant_weights: *const f32,
    dst: *mut c_void,
    dst_len: usize,
) -> quant_status {
    boundary(|| unsafe {
        ggml_quantize_in(
            ggml_type,
            src,
            nrows,
            n_per_row,
            quant_weights,
            dst,
            dst_len,
        )
    })
}

/// The body of `quant_ggml_quantize` (NULL `quant_weights`) and `quant_ggml_quantize_weighted`.
///
/// # Safety
/// The pointers must be valid for the lengths the C functions document (`quant_weights`, when not
/// NULL, for `n_per_row` floats).
unsafe fn ggml_quantize_in(
    ggml_type: i32,
    src: *const f32,
    nrows: usize,
    n_per_row: usize,
    quant_weights: *const f32,
    dst: *mut c_void,
    dst_len: usize,
) -> Result<()> {
    let ty = GgmlType::from_id_checked(ggml_type)?;
    let n = matrix_len(nrows, n_per_row)?;
    let src = slice_in(src, n, "src")?;
    let qw = if quant_weights.is_null() {
        None
    } else {
        Some(slice_in(quant_weights, n_per_row, "quant_weights")?)
    };
    let dst = slice_out(dst.cast::<u8>(), dst_len, "dst")?;
    ggml_quantize_weighted(ty, Src::F32(src), nrows, n_per_row, qw, dst).map(|_| ())
}

/// `quant_ggml_quantize` of a source of element type `src_dtype`: `QUANT_DTYPE_F32` (float),
/// `QUANT_DTYPE_F16` or `QUANT_DTYPE_BF16` (raw bits in `uint16_t`, 2-byte aligned), as llama.cpp
/// quantizes f16/bf16 models. Each block is converted into a stack buffer (no allocation); the bytes
/// equal those of `quant_ggml_quantize` on the same values as float.
///
/// Errors: those of `quant_ggml_quantize` (NaN or infinity as f16/bf16 bit patterns is
/// `QUANT_ERR_NON_FINITE`), and `QUANT_ERR_INVALID_ARGUMENT` for an unknown `src_dtype` or a
/// misaligned `src`. Nothing is written on error. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_ggml_quantize_ex(
    ggml_type: i32,
    src_dtype: i32,
    src: *const c_void,
    nrows: usize,
    n_per_row: usize,
    dst: *mut c_void,
    dst_len: usize,
) -> quant_status {
    boundary(|| {
        let ty = GgmlType::from_id_checked(ggml_type)?;
        let n = matrix_len(nrows, n_per_row)?;
        let src = unsafe { src_in(src_dtype, src, n, "src") }?;
        let dst = unsafe { slice_out(dst.cast::<u8>(), dst_len, "dst") }?;
        ggml_quantize_src(ty, src, nrows, n_per_row, dst).map(|_| ())
    })
}

/// Dequantizes the first `n` values of GGML blocks of type `ggml_type` (`src`, the layout of
/// `quant_ggml_quantize`) into `dst[0 .. n)`, as ggml's `dequantize_row_*` (bit for bit, every
/// type) and gguf-py's `gguf.quants.dequantize` (bit for bit; on random records IQ4_NL, IQ4_XS,
/// MXFP4, NVFP4, TQ1_0 and TQ2_0 are checked against ggml only).
///
/// - `src`: `src_len` bytes, of which the first `n / block_size * type_size` are read.
/// - `dst`: `n` floats; `n` must be a positive multiple of the block size.
///
/// Errors (nothing is written on any of them):
/// - `QUANT_ERR_INVALID_ARGUMENT`: unsupported type; `n` 0 or not a multiple of the block size.
/// - `QUANT_ERR_NULL_POINTER`: `src` or `dst` NULL.
/// - `QUANT_ERR_BUFFER_TOO_SMALL`: `src_len` below `n / block_size * type_size`.
/// - `QUANT_ERR_NON_FINITE`: a block whose f16 scale or min is infinite or NaN, or an MXFP4 block
///   whose exponent byte makes one of its codes decode to infinity (only for `e >= 253`; ggml's
///   quantizer never writes such a block); the detail names the block.
///
/// The caller owns every buffer; no allocation; thread-safe.
#[no_mangle]
pub extern "C" fn quant_ggml_dequantize(
    ggml_type: i32,
    src: *const c_void,
    src_len: usize,
    dst: *mut f32,
    n: usize,
) -> quant_status {
    boundary(|| {
        let ty = GgmlType::from_id_checked(ggml_type)?;
        if n == 0 {
            return Err(QuantError::invalid(format!(
                "n is 0: {} decodes a positive multiple of its block size {}",
                ty.name(),
                ty.block_size()
            )));
        }
        let src = unsafe { slice_in(src.cast::<u8>(), src_len, "src") }?;
        let dst = unsafe { slice_out(dst, n, "dst") }?;
        ggml_dequantize(ty, src, n, dst)
    })
}

// ------------------------------------------------------------------------------------------------
// GPTQ and AWQ checkpoints

/// Writes the lengths, in elements, of the four GPTQ tensors of `q` (see `quant_weight_pack_gptq`):
/// `*qweight_len = cols * bits / 32 * rows`, `*qzeros_len = groups * rows * bits / 32`,
/// `*scales_len = groups * rows`, `*g_idx_len = cols`, with `groups = ceil(cols / group_size)`.
///
/// Errors (nothing written): any pointer NULL -> `QUANT_ERR_NULL_POINTER`; `q` not a GPTQ (or INT4)
/// weight, or `cols * bits` or `rows * bits` not a multiple of 32 -> `QUANT_ERR_INVALID_ARGUMENT`;
/// `bits` not 2, 3, 4 or 8 -> `QUANT_ERR_UNSUPPORTED`. Only reads `*q`; thread-safe.
#[no_mangle]
pub extern "C" fn quant_weight_gptq_sizes(
    q: *const quant_weight,
    qweight_len: *mut usize,
    qzeros_len: *mut usize,
    scales_len: *mut usize,
    g_idx_len: *mut usize,
) -> quant_status {
    boundary(|| {
        let q = unsafe { in_ref(q, "q") }?;
        let qweight_len = unsafe { out_param(qweight_len, "qweight_len") }?;
        let qzeros_len = unsafe { out_param(qzeros_len, "qzeros_len") }?;
        let scales_len = unsafe { out_param(scales_len, "scales_len") }?;
        let g_idx_len = unsafe { out_param(g_idx_len, "g_idx_len") }?;
        let s = pack::gptq_sizes(&q.inner)?;
        *qweight_len = s.qweight;
        *qzeros_len = s.qzeros;
        *scales_len = s.scales;
        *g_idx_len = s.g_idx;
        Ok(())
    })
}

/// Writes the GPTQ weight `q` (`QUANT_GPTQ` with 2, 3, 4 or 8 bits; `QUANT_INT4_ASYMMETRIC` is
/// accepted as 4-bit) as the tensors of a GPTQ checkpoint, as AutoGPTQ's `QuantLinear.pack` lays them
/// out and AutoGPTQ, GPTQModel, exllama, vLLM and TGI load them. `rows` = out_features, `cols` =
/// in_features, `b` = bits, `groups = ceil(cols / group_size)`:
///
/// - `qweight`: int32 `[cols * b / 32][rows]` (row-major): column `r` is the bit string of output
///   `r`'s codes along the input dimension, lowest bits first: input `j` takes bits `[j*b, (j+1)*b)`,
///   word `w` holds bits `[32w, 32w + 32)`. At 3 bits 32 values span three words and some values
///   straddle two.
/// - `qzeros`: int32 `[groups][rows * b / 32]`: row `g` is the bit string of the zero points of group
///   `g` over the outputs. `format_version` 1 (AutoGPTQ, `checkpoint_format "gptq"`) stores `zero - 1`,
///   version 2 (GPTQModel `"gptq_v2"`) the zero itself. Stored values are clamped to `0..2^b-1`, so
///   none spills into its neighbour; version 1 cannot represent a zero point of 0: it is stored as 0,
///   which engines read as 1 (use version 2 for an exact copy).
/// - `scales_f16`: IEEE f16 bits `[groups][rows]` (the float scales rounded to nearest even).
/// - `g_idx`: int32 `[cols]`: the group of each input column (GPTQ act-order), else `j / group_size`.
///
/// An engine computes `w[r][j] = scale[g][r] * (q[j][r] - zero[g][r])`, `g = g_idx[j]`, `zero` =
/// stored + 1 (v1) or stored (v2): `quant_weight_dequantize` up to the f16 rounding of the scales.
/// `cols * b` and `rows * b` must be multiples of 32. The `*_len` are lengths in elements; only the
/// sizes of `quant_weight_gptq_sizes` are written. Only reads `*q`; thread-safe; no allocation.
///
/// Errors (nothing is written on any of them):
/// - `QUANT_ERR_NULL_POINTER`: `q` NULL, or an output NULL with a non-zero length.
/// - `QUANT_ERR_INVALID_ARGUMENT`: `format_version` not 1 or 2; `q` not GPTQ or INT4; `cols * b` or
///   `rows * b` not a multiple of 32; a scale beyond the f16 range (65504).
/// - `QUANT_ERR_UNSUPPORTED`: `b` not 2, 3, 4 or 8.
/// - `QUANT_ERR_BUFFER_TOO_SMALL`: an output shorter than its size.
#[no_mangle]
pub extern "C" fn quant_weight_pack_gptq(
    q: *const quant_weight,
    format_version: u32,
    qweight: *mut i32,
    qweight_len: usize,
    qzeros: *mut i32,
    qzeros_len: usize,
    scales_f16: *mut u16,
    scales_len: usize,
    g_idx: *mut i32,
    g_idx_len: usize,
) -> quant_status {
    boundary(|| {
        let q = unsafe { in_ref(q, "q") }?;
        let qweight = unsafe { slice_out(qweight, qweight_len, "qweight") }?;
        let qzeros = unsafe { slice_out(qzeros, qzeros_len, "qzeros") }?;
        let scales = unsafe { slice_out(scales_f16, scales_len, "scales_f16") }?;
        let g_idx = unsafe { slice_out(g_idx, g_idx_len, "g_idx") }?;
        pack::pack_gptq(&q.inner, format_version, qweight, qzeros, scales, g_idx).map(|_| ())
    })
}

/// Writes the lengths, in elements, of the three AWQ GEMM tensors of `q` (see
/// `quant_weight_pack_awq`): `*qweight_len = cols * rows / 8`, `*qzeros_len = groups * rows / 8`,
/// `*scales_len = groups * rows`, with `groups = cols / group_size`.
///
/// Errors (nothing written): any pointer NULL -> `QUANT_ERR_NULL_POINTER`; `q` not AWQ, INT4 or GPTQ
/// without act-order, `rows` not a multiple of 8 or `cols` not a multiple of the group size ->
/// `QUANT_ERR_INVALID_ARGUMENT`; codes other than 4-bit -> `QUANT_ERR_UNSUPPORTED`. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_weight_awq_sizes(
    q: *const quant_weight,
    qweight_len: *mut usize,
    qzeros_len: *mut usize,
    scales_len: *mut usize,
) -> quant_status {
    boundary(|| {
        let q = unsafe { in_ref(q, "q") }?;
        let qweight_len = unsafe { out_param(qweight_len, "qweight_len") }?;
        let qzeros_len = unsafe { out_param(qzeros_len, "qzeros_len") }?;
        let scales_len = unsafe { out_param(scales_len, "scales_len") }?;
        let s = pack::awq_sizes(&q.inner)?;
        *qweight_len = s.qweight;
        *qzeros_len = s.qzeros;
        *scales_len = s.scales;
        Ok(())
    })
}

/// Writes the 4-bit AWQ weight `q` (`QUANT_AWQ`; also INT4, or GPTQ without act-order) as the tensors
/// of an AWQ GEMM checkpoint, as AutoAWQ's `WQLinear_GEMM.from_linear` lays them out and AutoAWQ,
/// vLLM and TGI load them. `rows` = out_features (a multiple of 8), `cols` = in_features (a multiple
/// of the group size), `groups = cols / group_size`:
///
/// - `qweight`: int32 `[cols][rows / 8]` (input-major, the transpose of the torch weight): word
///   `[j][c]` holds the 4-bit codes of outputs `8c .. 8c+8` for input `j`, nibble `i` (bits
///   `4i .. 4i+4`) holding output `8c + order[i]`, `order = {0, 2, 4, 6, 1, 3, 5, 7}`.
/// - `qzeros`: int32 `[groups][rows / 8]`: the zero points packed the same way, as they are.
/// - `scales_f16`: IEEE f16 bits `[groups][rows]`.
///
/// An engine computes `w[r][j] = (q - zero) * scale`. With AWQ the codes quantize `W diag(s)`, `s` the
/// input scales (`quant_weight_input_scales`): the checkpoint holds `W diag(s)`, as AutoAWQ's does,
/// and is the original layer only for inputs already divided by `s`: fold `1/s` into the previous
/// operation (the norm's weight and bias, or the previous linear layer's output rows), as AutoAWQ
/// does. `quant_weight_dequantize` gives `W` itself (scales undone). Only the sizes of
/// `quant_weight_awq_sizes` are written. Only reads `*q`; thread-safe; allocates eight rows of scratch.
///
/// Errors (nothing is written on any of them):
/// - `QUANT_ERR_NULL_POINTER`: `q` NULL, or an output NULL with a non-zero length.
/// - `QUANT_ERR_INVALID_ARGUMENT`: `q` not AWQ, INT4 or GPTQ without act-order; `rows` not a multiple
///   of 8; `cols` not a multiple of the group size; a scale beyond the f16 range.
/// - `QUANT_ERR_UNSUPPORTED`: codes other than 4-bit.
/// - `QUANT_ERR_BUFFER_TOO_SMALL`: an output shorter than its size.
/// - `QUANT_ERR_OUT_OF_MEMORY`: no memory for the scratch.
#[no_mangle]
pub extern "C" fn quant_weight_pack_awq(
    q: *const quant_weight,
    qweight: *mut i32,
    qweight_len: usize,
    qzeros: *mut i32,
    qzeros_len: usize,
    scales_f16: *mut u16,
    scales_len: usize,
) -> quant_status {
    boundary(|| {
        let q = unsafe { in_ref(q, "q") }?;
        let qweight = unsafe { slice_out(qweight, qweight_len, "qweight") }?;
        let qzeros = unsafe { slice_out(qzeros, qzeros_len, "qzeros") }?;
        let scales = unsafe { slice_out(scales_f16, scales_len, "scales_f16") }?;
        pack::pack_awq(&q.inner, qweight, qzeros, scales)
    })
}

// ------------------------------------------------------------------------------------------------
// f16 / bf16 source weights

/// Builds a [`Src`] of `len` elements of type `dtype` from a C pointer (aligned for the type).
///
/// # Safety
/// When non-NULL, `ptr` must point to `len` readable elements of the type `dtype` names.
pub(crate) unsafe fn src_in<'a>(
    dtype: i32,
    ptr: *const c_void,
    len: usize,
    what: &str,
) -> Result<Src<'a>> {
    let name = dtype_name(dtype)?;
    let align = if dtype == QUANT_DTYPE_F32 { 4 } else { 2 };
    if !ptr.is_null() && ptr as usize % align != 0 {
        return Err(QuantError::invalid(format!(
            "{what} is not aligned for {name} elements ({align} bytes)"
        )));
    }
    Ok(match dtype {
        QUANT_DTYPE_F32 => Src::F32(slice_in(ptr.cast::<f32>(), len, what)?),
        QUANT_DTYPE_F16 => Src::F16(slice_in(ptr.cast::<u16>(), len, what)?),
        QUANT_DTYPE_BF16 => Src::Bf16(slice_in(ptr.cast::<u16>(), len, what)?),
        _ => unreachable!("dtype_name accepted {dtype}"),
    })
}

/// The arguments of an `_ex` quantizer with one scale per group (INT8, FP8) as slices: the source of
/// `shape.len()` elements of type `dtype`, the codes and the scales.
///
/// # Safety
/// As [`src_in`] and `slice_out` for each pointer.
#[allow(clippy::type_complexity)]
unsafe fn scaled_ex<'a, C>(
    (dtype, src): (i32, *const c_void),
    shape: Shape,
    (dst, dst_len): (*mut C, usize),
    (scales, scales_len): (*mut f32, usize),
) -> Result<(Src<'a>, &'a mut [C], &'a mut [f32])> {
    let src = src_in(dtype, src, shape.len(), "src")?;
    let dst = slice_out(dst, dst_len, "dst")?;
    Ok((src, dst, slice_out(scales, scales_len, "scales")?))
}

/// `quant_int8_quantize` of a source of element type `src_dtype`: `QUANT_DTYPE_F32` (float),
/// `QUANT_DTYPE_F16` or `QUANT_DTYPE_BF16` (raw bits in `uint16_t`, 2-byte aligned). The outputs equal
/// bit for bit those of `quant_int8_quantize` on the same values as float; the matrix is converted
/// one row at a time (one scratch row of `cols` floats is allocated for the 16-bit types).
///
/// One pass over `src`, as `quant_int8_quantize`. Errors: those of `quant_int8_quantize` (the same
/// value errors with the same details and zero-filled outputs; NaN or infinity as f16/bf16 bit patterns
/// is `QUANT_ERR_NON_FINITE`), and, before anything is written, `QUANT_ERR_INVALID_ARGUMENT` for an
/// unknown `src_dtype` or a misaligned `src` and `QUANT_ERR_OUT_OF_MEMORY` if the scratch row cannot
/// be allocated. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_int8_quantize_ex(
    src_dtype: i32,
    src: *const c_void,
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
        unsafe {
            scaled_ex(
                (src_dtype, src),
                shape,
                (dst, dst_len),
                (scales, scales_len),
            )
        }
        .and_then(|(src, dst, scales)| int8_quantize_src(src, shape, dst, scales))
    })
}

/// `quant_int4_quantize` of a source of element type `src_dtype` (`QUANT_DTYPE_F32`, `_F16` or
/// `_BF16`, see `quant_int8_quantize_ex`). The outputs equal bit for bit those of
/// `quant_int4_quantize` on the same values as float.
///
/// One pass over `src`, as `quant_int4_quantize`. Errors: those of `quant_int4_quantize` (the same
/// value errors with the same details and zero-filled outputs; a bf16 group whose range overflows
/// float is one of them), and, before anything is written, `QUANT_ERR_INVALID_ARGUMENT` for an unknown
/// `src_dtype` or a misaligned `src` and `QUANT_ERR_OUT_OF_MEMORY` if the scratch row cannot be
/// allocated. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_int4_quantize_ex(
    src_dtype: i32,
    src: *const c_void,
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
        let src = unsafe { src_in(src_dtype, src, shape.len(), "src") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let scales = unsafe { slice_out(scales, groups_len, "scales") }?;
        let zeros = unsafe { slice_out(zeros, groups_len, "zeros") }?;
        int4_quantize_src(src, shape, dst, scales, zeros)
    })
}

/// FP8 E4M3 scaled quantization (as `quant_fp8_e4m3_quantize`: per group `scale = absmax / 448`,
/// `code = fp8_e4m3(x / scale)` saturating; `dst` receives `rows * cols` codes, `scales` one float per
/// group) of a source of element type `src_dtype` (`QUANT_DTYPE_F32`, `_F16` or `_BF16`, see
/// `quant_int8_quantize_ex`). The outputs equal bit for bit those of the float kernel on the same
/// values.
///
/// One pass over `src`, as `quant_fp8_e4m3_quantize`. Argument errors (nothing written):
/// `QUANT_ERR_INVALID_ARGUMENT` for zero rows or cols, an overflowing size, an unknown `src_dtype` or a
/// misaligned `src`; `QUANT_ERR_NULL_POINTER` for `src` NULL or an output NULL with a non-zero length;
/// `QUANT_ERR_BUFFER_TOO_SMALL` for `dst_len < rows * cols` or `scales_len` below the scale count;
/// `QUANT_ERR_OUT_OF_MEMORY` if the scratch row cannot be allocated. Value error:
/// `QUANT_ERR_NON_FINITE` for NaN or infinity in `src` (the detail names the first bad index;
/// `dst[0 .. rows * cols)` and `scales[0 .. scale count)` are zero-filled). Thread-safe.
#[no_mangle]
pub extern "C" fn quant_fp8_e4m3_quantize_ex(
    src_dtype: i32,
    src: *const c_void,
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
        unsafe {
            scaled_ex(
                (src_dtype, src),
                shape,
                (dst, dst_len),
                (scales, scales_len),
            )
        }
        .and_then(|(src, dst, scales)| fp8_e4m3_quantize_src(src, shape, dst, scales))
    })
}

/// `quant_quantize` of a weight of element type `w_dtype` (`QUANT_DTYPE_F32`, `QUANT_DTYPE_F16` or
/// `QUANT_DTYPE_BF16`; 16-bit weights as raw bits in `uint16_t`, 2-byte aligned). The result equals
/// that of `quant_quantize` on the same values as float. INT8, INT4 and FP8 convert one row at a time
/// (never the whole matrix); AWQ, SmoothQuant and GPTQ work on one float copy of the matrix, which
/// their algorithms need anyway.
///
/// Errors: those of `quant_quantize`, and `QUANT_ERR_INVALID_ARGUMENT` for an unknown `w_dtype` or a
/// misaligned `w`. `*out` is written only on success. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_quantize_ex(
    m: *const quant_method,
    o: *const quant_options,
    w_dtype: i32,
    w: *const c_void,
    rows: usize,
    cols: usize,
    calib: *const quant_calib,
    out: *mut *mut quant_weight,
) -> quant_status {
    boundary(|| {
        let method = unsafe { method_in(m, "m") }?;
        let out = unsafe { out_param(out, "out") }?;
        let len = matrix_len(rows, cols)?;
        let w = unsafe { src_in(w_dtype, w, len, "w") }?;
        let defaults = QuantOptions::default();
        let options = match unsafe { o.as_ref() } {
            Some(o) => &o.inner,
            None => &defaults,
        };
        let calib = unsafe { calib.as_ref() }.map(|c| &c.inner);
        let q = quantize_src(&method, options, w, rows, cols, calib)?;
        *out = into_handle(quant_weight { inner: q });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_codes_are_distinct() {
        assert_eq!(
            [QUANT_DTYPE_F32, QUANT_DTYPE_F16, QUANT_DTYPE_BF16],
            [0, 1, 2]
        );
        assert!(dtype_name(3).is_err());
    }
}
