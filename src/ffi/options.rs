//! C handles for the optional knobs (`quant_options`).
use crate::algos::QuantOptions;
use crate::error::quant_status;
use crate::ffi::{boundary, free_handle, into_handle, out_param};

/// Optional knobs of the quantization methods. Opaque; create with `quant_options_new` (published
/// defaults), release with `quant_options_free`. NULL wherever an options pointer is taken means the
/// defaults. May be read from several threads at once, but not set while read.
///
/// Defaults: act_order false, damp_percent 0.01, block_size 128, symmetric false, static_groups false,
/// mse_search false, sample_tokens 512, threads 1. The round-to-nearest kinds ignore every option.
pub struct quant_options {
    pub(crate) inner: QuantOptions,
}

/// Creates options holding the published defaults; `*out` receives the handle (owned by the caller,
/// released with `quant_options_free`), written only on success. Errors: `QUANT_ERR_NULL_POINTER`.
#[no_mangle]
pub extern "C" fn quant_options_new(out: *mut *mut quant_options) -> quant_status {
    boundary(|| {
        let out = unsafe { out_param(out, "out") }?;
        *out = into_handle(quant_options {
            inner: QuantOptions::default(),
        });
        Ok(())
    })
}

/// Releases options made by `quant_options_new`. NULL is ignored.
#[no_mangle]
pub extern "C" fn quant_options_free(o: *mut quant_options) {
    unsafe { free_handle(o) }
}

/// GPTQ act-order: quantize columns by decreasing Hessian diagonal; the result keeps the original
/// column order and carries a group index (`quant_weight_group_index`). Default false.
/// Errors: `QUANT_ERR_NULL_POINTER` (`o` NULL).
#[no_mangle]
pub extern "C" fn quant_options_set_act_order(o: *mut quant_options, on: bool) -> quant_status {
    boundary(|| {
        unsafe { out_param(o, "o") }?.inner.set_act_order(on);
        Ok(())
    })
}

/// GPTQ damping: `damp_percent * mean(diag H)` is added to the Hessian's diagonal. Default 0.01.
/// When the Cholesky factorization fails, GPTQ retries with 4, 16, ... times the damping, up to 1.
/// Errors (options unchanged): `QUANT_ERR_NULL_POINTER`, `QUANT_ERR_INVALID_ARGUMENT` (not finite or
/// not in (0, 1)).
#[no_mangle]
pub extern "C" fn quant_options_set_damp_percent(
    o: *mut quant_options,
    value: f64,
) -> quant_status {
    boundary(|| unsafe { out_param(o, "o") }?.inner.set_damp_percent(value))
}

/// GPTQ lazy-update block: columns quantized between two matrix-product updates. Default 128. Any
/// value gives the same result up to rounding; it only changes speed.
/// Errors (options unchanged): `QUANT_ERR_NULL_POINTER`, `QUANT_ERR_INVALID_ARGUMENT` (0).
#[no_mangle]
pub extern "C" fn quant_options_set_block_size(
    o: *mut quant_options,
    value: usize,
) -> quant_status {
    boundary(|| unsafe { out_param(o, "o") }?.inner.set_block_size(value))
}

/// GPTQ and AWQ: symmetric codes (zero point (2^bits)/2, scale 2 max|w| / (2^bits - 1)) instead of the
/// asymmetric ones. Default false. Errors: `QUANT_ERR_NULL_POINTER`.
#[no_mangle]
pub extern "C" fn quant_options_set_symmetric(o: *mut quant_options, on: bool) -> quant_status {
    boundary(|| {
        unsafe { out_param(o, "o") }?.inner.set_symmetric(on);
        Ok(())
    })
}

/// GPTQ static groups: every group's scale and zero point are computed up front from the original
/// weights (in their original column order, even with act-order, so no group index is needed),
/// instead of when the group's first column is reached. Default false.
/// Errors: `QUANT_ERR_NULL_POINTER`.
#[no_mangle]
pub extern "C" fn quant_options_set_static_groups(o: *mut quant_options, on: bool) -> quant_status {
    boundary(|| {
        unsafe { out_param(o, "o") }?.inner.set_static_groups(on);
        Ok(())
    })
}

/// GPTQ MSE scale search (the reference quantizer's `mse`): each group's range is shrunk by
/// `1 - i/100`, `i < 80`, keeping the one with the smallest `sum |q(w) - w|^2.4`. Default false.
/// Errors: `QUANT_ERR_NULL_POINTER`.
#[no_mangle]
pub extern "C" fn quant_options_set_mse_search(o: *mut quant_options, on: bool) -> quant_status {
    boundary(|| {
        unsafe { out_param(o, "o") }?.inner.set_mse_search(on);
        Ok(())
    })
}

/// Tokens of the calibration sample used by AWQ's scale and clip search. Read by `quant_calib_new_ex`
/// (the sample it keeps) and by AWQ (it uses at most this many of the kept tokens). Default 512.
/// Errors (options unchanged): `QUANT_ERR_NULL_POINTER`, `QUANT_ERR_INVALID_ARGUMENT` (0).
#[no_mangle]
pub extern "C" fn quant_options_set_sample_tokens(
    o: *mut quant_options,
    value: usize,
) -> quant_status {
    boundary(|| unsafe { out_param(o, "o") }?.inner.set_sample_tokens(value))
}

/// Worker threads of GPTQ, AWQ and the Hessian accumulation (of a calibration made with
/// `quant_calib_new_ex` and these options). The rule of every thread count in this API (as
/// `quant_set_threads`): 0 means every available core, 1 to `QUANT_MAX_THREADS` that many threads;
/// the default is 1 (the library starts no thread unless asked). The threads live only for the duration
/// of a call (no global pool), and the results are the same whatever the count. Errors (options
/// unchanged): `QUANT_ERR_NULL_POINTER`, `QUANT_ERR_INVALID_ARGUMENT` (more than `QUANT_MAX_THREADS`).
#[no_mangle]
pub extern "C" fn quant_options_set_threads(o: *mut quant_options, value: usize) -> quant_status {
    boundary(|| unsafe { out_param(o, "o") }?.inner.set_threads(value))
}
