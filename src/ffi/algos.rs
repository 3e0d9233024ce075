//! C exports of the SmoothQuant helpers: the unclamped migration scales and what an engine needs to run a
//! W8A8 layer (per-token INT8 activations, an INT8 matrix product).
use crate::algos::smoothquant;
use crate::error::{quant_status, QuantError};
use crate::ffi::{boundary, matrix_len, slice_in, slice_out};

/// SmoothQuant migration scales without clamping: for each of the `n` channels,
/// `out[j] = act_absmax[j]^alpha / weight_absmax[j]^(1 - alpha)` (computed in double), and 1 where both
/// maxima are 0 or where the weight part is 0. No clamping (the whole-layer `QUANT_SMOOTHQUANT` method
/// uses the published clamped formula instead; see `quant_quantize`). `out` holds `n` floats.
///
/// Errors (nothing written): `QUANT_ERR_NULL_POINTER` (a NULL array with `n > 0`),
/// `QUANT_ERR_INVALID_ARGUMENT` (alpha NaN or outside [0, 1]; a negative maximum, whose power would be
/// NaN), `QUANT_ERR_NON_FINITE` (NaN or infinity in a maximum).
#[no_mangle]
pub extern "C" fn quant_smooth_scales(
    weight_absmax: *const f32,
    act_absmax: *const f32,
    n: usize,
    alpha: f64,
    out: *mut f32,
) -> quant_status {
    boundary(|| {
        let w = unsafe { slice_in(weight_absmax, n, "weight_absmax") }?;
        let a = unsafe { slice_in(act_absmax, n, "act_absmax") }?;
        let out = unsafe { slice_out(out, n, "out") }?;
        smoothquant::smooth_scales_unclamped(w, a, alpha, out)
    })
}

/// Per-token INT8 quantization of activations, as a W8A8 engine runs a SmoothQuant layer:
/// `v[t][j] = x[t][j] / input_scales[j]` (the `quant_weight_input_scales` of the layer; NULL means no
/// division), then per token `token_scales[t] = max_j |v[t][j]| / 127` and
/// `dst[t][j] = clamp(round_half_even(v[t][j] / token_scales[t]), -127, 127)` (an all-zero token has
/// scale 0 and codes 0). `x` is row-major `n_tokens x cols`; `dst` receives `n_tokens * cols` codes
/// (`dst_len` at least that), `token_scales` `n_tokens` scales (`scales_len` at least that). With
/// `n_tokens = 1, cols = n_tokens * cols` and NULL input scales this is per-tensor quantization.
///
/// Errors (nothing written): `QUANT_ERR_NULL_POINTER` (`x`, `dst` or `token_scales` NULL),
/// `QUANT_ERR_INVALID_ARGUMENT` (`n_tokens` or `cols` 0, an overflowing size, an input scale that is
/// 0 or negative, a token whose maximum is the largest float, an `x / input_scales` that overflows
/// float), `QUANT_ERR_BUFFER_TOO_SMALL`,
/// `QUANT_ERR_NON_FINITE` (NaN or infinity in `x` or in the input scales).
#[no_mangle]
pub extern "C" fn quant_quantize_activations(
    x: *const f32,
    n_tokens: usize,
    cols: usize,
    input_scales: *const f32,
    dst: *mut i8,
    dst_len: usize,
    token_scales: *mut f32,
    scales_len: usize,
) -> quant_status {
    boundary(|| {
        let len = matrix_len(n_tokens, cols)?;
        let x = unsafe { slice_in(x, len, "x") }?;
        let s = if input_scales.is_null() {
            None
        } else {
            Some(unsafe { slice_in(input_scales, cols, "input_scales") }?)
        };
        if dst.is_null() {
            return Err(QuantError::NullPointer("dst".into()));
        }
        if token_scales.is_null() {
            return Err(QuantError::NullPointer("token_scales".into()));
        }
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        let ts = unsafe { slice_out(token_scales, scales_len, "token_scales") }?;
        smoothquant::quantize_activations(x, n_tokens, cols, s, dst, ts)
    })
}

/// INT8 matrix product with exact i32 accumulation, for W8A8 layers:
/// `out[i][j] = ((float)sum_l a[i][l] * b[j][l]) * a_scales[i] * b_scales[j]`, the two float
/// multiplications in that order. `a` is row-major `m x k` (activations, e.g. from
/// `quant_quantize_activations`, one scale per row), `b` row-major `n x k` (a weight: one row per output
/// feature, e.g. `quant_weight_data` of an INT8 or SmoothQuant weight with one scale per row), `out`
/// row-major `m x n` (`out_len` at least `m * n`). `k` is at most 131071, so that the i32 sum cannot
/// overflow even for -128 codes. Single-threaded; disjoint row ranges of `a` and `out` may be computed
/// from several threads at once.
///
/// Errors (nothing written): `QUANT_ERR_NULL_POINTER`, `QUANT_ERR_INVALID_ARGUMENT` (`m`, `n` or `k`
/// 0, `k > 131071`, an overflowing size), `QUANT_ERR_BUFFER_TOO_SMALL` (`out_len < m * n`),
/// `QUANT_ERR_NON_FINITE` (NaN or infinity in a scale).
#[no_mangle]
pub extern "C" fn quant_int8_gemm(
    a: *const i8,
    a_scales: *const f32,
    b: *const i8,
    b_scales: *const f32,
    m: usize,
    n: usize,
    k: usize,
    out: *mut f32,
    out_len: usize,
) -> quant_status {
    boundary(|| {
        let la = matrix_len(m, k)?;
        let lb = matrix_len(n, k)?;
        matrix_len(m, n)?;
        if k > smoothquant::GEMM_MAX_K {
            return Err(QuantError::invalid(format!(
                "k is {k}: at most {} so that the i32 accumulator cannot overflow",
                smoothquant::GEMM_MAX_K
            )));
        }
        let a = unsafe { slice_in(a, la, "a") }?;
        let sa = unsafe { slice_in(a_scales, m, "a_scales") }?;
        let b = unsafe { slice_in(b, lb, "b") }?;
        let sb = unsafe { slice_in(b_scales, n, "b_scales") }?;
        if out.is_null() {
            return Err(QuantError::NullPointer("out".into()));
        }
        let out = unsafe { slice_out(out, out_len, "out") }?;
        smoothquant::int8_gemm(a, sa, b, sb, (m, n, k), out)
    })
}
