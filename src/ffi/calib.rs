//! C handles for calibration statistics (`quant_calib`).
use crate::calib::{Calibration, CalibrationOptions};
use crate::error::{quant_status, QuantError};
use crate::ffi::method::{
    quant_method_kind, QUANT_AWQ, QUANT_FP8_E4M3, QUANT_GPTQ, QUANT_INT4_ASYMMETRIC,
    QUANT_INT8_SYMMETRIC, QUANT_SMOOTHQUANT,
};
use crate::ffi::options::quant_options;
use crate::ffi::{boundary, boundary_value, free_handle, in_ref, into_handle, out_param, slice_in};
use crate::method::QuantMethod;

/// Activation statistics for one layer input of width `cols`: the GPTQ Hessian `H = (2/n) sum x x^T`
/// (f64, optional), the per-channel max|x| (SmoothQuant) and mean|x| (AWQ), and a bounded,
/// deterministic sample of tokens (AWQ). Memory stays bounded (`cols^2` doubles for the Hessian plus
/// the sample) however many tokens are added. Opaque; create with `quant_calib_new` or
/// `quant_calib_new_ex`, release with `quant_calib_free`. May be read (quantized against) from several
/// threads at once, but not written (`quant_calib_add`, `quant_calib_set_hessian`) while read.
pub struct quant_calib {
    pub(crate) inner: Calibration,
}

/// `quant_calib_new_ex` flag: accumulate the GPTQ Hessian (`cols^2` doubles, `O(n cols^2)` time per
/// added batch). Without it the calibration serves AWQ and SmoothQuant only.
pub const QUANT_CALIB_HESSIAN: u32 = 1;

/// Creates an empty calibration for a layer input of width `cols` that accumulates everything: the
/// Hessian (GPTQ), max|x| and mean|x|, and a sample of 512 tokens. Same as
/// `quant_calib_new_ex(cols, QUANT_CALIB_HESSIAN, NULL, out)`.
///
/// `*out` receives the handle (owned by the caller, released with `quant_calib_free`), written only on
/// success. Errors: `QUANT_ERR_NULL_POINTER` (`out` NULL), `QUANT_ERR_INVALID_ARGUMENT` (`cols` 0 or
/// `cols^2` overflows), `QUANT_ERR_OUT_OF_MEMORY` (no room for the `cols x cols` Hessian).
#[no_mangle]
pub extern "C" fn quant_calib_new(cols: usize, out: *mut *mut quant_calib) -> quant_status {
    boundary(|| {
        let out = unsafe { out_param(out, "out") }?;
        let inner = Calibration::new(cols)?;
        *out = into_handle(quant_calib { inner });
        Ok(())
    })
}

/// Creates an empty calibration for a layer input of width `cols`, choosing what it accumulates.
///
/// - `flags`: 0 or `QUANT_CALIB_HESSIAN`. Without the Hessian, adding tokens costs `O(n cols)` and the
///   calibration holds `O(cols)` plus the sample: enough for AWQ and SmoothQuant, while GPTQ rejects it
///   (`QUANT_ERR_INVALID_ARGUMENT`).
/// - `o`: options or NULL (defaults). Read here: `sample_tokens` (tokens kept in the sample for AWQ,
///   default 512) and `threads` (for the Hessian product; default 1, 0 = all cores).
/// - `*out` receives the handle, written only on success.
///
/// The sample is a reservoir sample (algorithm R) driven by a fixed-seed hash of each token's position
/// in the stream: every token is equally likely to be kept, and the sample depends only on the tokens
/// added, in order (not on how they were split into calls): the same on every run.
///
/// Errors: `QUANT_ERR_NULL_POINTER` (`out` NULL), `QUANT_ERR_INVALID_ARGUMENT` (`cols` 0, `cols^2`
/// overflows, an unknown flag bit), `QUANT_ERR_OUT_OF_MEMORY`.
#[no_mangle]
pub extern "C" fn quant_calib_new_ex(
    cols: usize,
    flags: u32,
    o: *const quant_options,
    out: *mut *mut quant_calib,
) -> quant_status {
    boundary(|| {
        let out = unsafe { out_param(out, "out") }?;
        if flags & !QUANT_CALIB_HESSIAN != 0 {
            return Err(QuantError::invalid(format!(
                "flags is {flags:#x}: the only flag is QUANT_CALIB_HESSIAN (1)"
            )));
        }
        let defaults = crate::algos::QuantOptions::default();
        let opts = match unsafe { o.as_ref() } {
            Some(o) => &o.inner,
            None => &defaults,
        };
        let inner = Calibration::with_options(
            cols,
            &CalibrationOptions {
                hessian: flags & QUANT_CALIB_HESSIAN != 0,
                sample_tokens: opts.sample_tokens,
                threads: opts.threads,
            },
        )?;
        *out = into_handle(quant_calib { inner });
        Ok(())
    })
}

/// Adds `n_tokens` tokens of activations `x` (row-major `n_tokens x cols` floats) to the statistics.
/// Any number of calls; adding X in several calls gives the same statistics as one call (the Hessian
/// to rounding, the rest exactly). `n_tokens` 0 is a no-op (`x` may then be NULL).
///
/// Errors (the calibration is unchanged after any of them): `QUANT_ERR_NULL_POINTER` (`c` NULL, or `x`
/// NULL with tokens), `QUANT_ERR_SHAPE_MISMATCH` (`cols` is not the calibration's width),
/// `QUANT_ERR_INVALID_ARGUMENT` (`n_tokens * cols` overflows), `QUANT_ERR_NON_FINITE` (a NaN or an
/// infinity in `x`; the detail names its index), `QUANT_ERR_OUT_OF_MEMORY`. Not thread-safe on the
/// same `c`.
#[no_mangle]
pub extern "C" fn quant_calib_add(
    c: *mut quant_calib,
    x: *const f32,
    n_tokens: usize,
    cols: usize,
) -> quant_status {
    boundary(|| {
        let c = unsafe { out_param(c, "c") }?;
        if cols != c.inner.cols() {
            return Err(QuantError::ShapeMismatch(format!(
                "activations have {cols} columns but the calibration is for inputs of width {}",
                c.inner.cols()
            )));
        }
        let len = n_tokens.checked_mul(cols).ok_or_else(|| {
            QuantError::invalid(format!("{n_tokens} tokens x {cols} columns overflows"))
        })?;
        let x = unsafe { slice_in(x, len, "x") }?;
        c.inner.add(x, n_tokens, cols)
    })
}

/// Replaces the calibration's Hessian by `h`, a Hessian `H = (2/n) sum x x^T` accumulated elsewhere
/// (for example on a GPU) over `n_tokens` tokens: row-major `cols x cols` doubles, `h_len` of them,
/// symmetric (only the lower triangle, row >= column, is read). Later `quant_calib_add` calls continue
/// the same average. The Hessian is turned on if the calibration was made without it. The other
/// statistics (max, mean, sample, `quant_calib_tokens`) are not touched; GPTQ still needs at least one
/// token added with `quant_calib_add`.
///
/// Errors (nothing changed): `QUANT_ERR_NULL_POINTER` (`c` or `h` NULL), `QUANT_ERR_SHAPE_MISMATCH`
/// (`cols` is not the calibration's width), `QUANT_ERR_BUFFER_TOO_SMALL` (`h_len < cols * cols`),
/// `QUANT_ERR_INVALID_ARGUMENT` (`n_tokens` 0), `QUANT_ERR_NON_FINITE` (NaN or infinity in `h`),
/// `QUANT_ERR_OUT_OF_MEMORY`.
#[no_mangle]
pub extern "C" fn quant_calib_set_hessian(
    c: *mut quant_calib,
    h: *const f64,
    h_len: usize,
    cols: usize,
    n_tokens: u64,
) -> quant_status {
    boundary(|| {
        let c = unsafe { out_param(c, "c") }?;
        if h.is_null() {
            return Err(QuantError::NullPointer("h".into()));
        }
        let h = unsafe { slice_in(h, h_len, "h") }?;
        c.inner.set_hessian(h, cols, n_tokens)
    })
}

/// How many calibration tokens (rows of the layer's input activations, added with `quant_calib_add`)
/// the method `kind` should be fitted on, for a layer with `cols` input columns: `*tokens` receives the
/// count. Compare it with `quant_calib_tokens` before quantizing: fewer tokens are accepted (they are
/// not an error) but give a worse result.
///
/// - `QUANT_INT8_SYMMETRIC`, `QUANT_INT4_ASYMMETRIC`, `QUANT_FP8_E4M3`: 0 (no calibration).
/// - `QUANT_GPTQ`: `16 * cols` (65,536 for a 4096-wide layer). GPTQ fits the `cols x cols` Hessian of
///   its inputs: on fewer tokens than a few times `cols` it overfits them and loses to
///   round-to-nearest on other inputs (measured on 512 columns: 1,024 tokens gave 1.06 to 1.16 times
///   round-to-nearest's output error on held-out tokens, 8,192 tokens 0.87 times).
/// - `QUANT_AWQ`, `QUANT_SMOOTHQUANT`: 512, whatever `cols` (per-channel statistics of |x|, and AWQ's
///   search sample of `sample_tokens`, 512 by default).
///
/// Errors (`*tokens` unchanged): `QUANT_ERR_NULL_POINTER` (`tokens` NULL), `QUANT_ERR_INVALID_ARGUMENT`
/// (an unknown `kind`, `cols` 0, or `16 * cols` does not fit in 64 bits). Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_calib_recommended_tokens(
    kind: quant_method_kind,
    cols: usize,
    tokens: *mut u64,
) -> quant_status {
    boundary(|| {
        let out = unsafe { out_param(tokens, "tokens") }?;
        // The count depends on the kind only: any valid parameters stand for it.
        let method = match kind {
            QUANT_INT8_SYMMETRIC => QuantMethod::Int8Symmetric { group_size: 0 },
            QUANT_INT4_ASYMMETRIC => QuantMethod::Int4Asymmetric { group_size: 0 },
            QUANT_FP8_E4M3 => QuantMethod::Fp8E4m3 { group_size: 0 },
            QUANT_AWQ => QuantMethod::Awq {
                group_size: 128,
                bits: 4,
            },
            QUANT_SMOOTHQUANT => QuantMethod::SmoothQuant {
                alpha: 0.5,
                group_size: 0,
            },
            QUANT_GPTQ => QuantMethod::Gptq {
                group_size: 128,
                bits: 4,
            },
            other => {
                return Err(QuantError::invalid(format!(
                    "kind is {other}: not a QUANT_* method kind"
                )))
            }
        };
        *out = method.recommended_calibration_tokens(cols)?;
        Ok(())
    })
}

/// Tokens added so far with `quant_calib_add`; 0 (with a detail) when `c` is NULL.
#[no_mangle]
pub extern "C" fn quant_calib_tokens(c: *const quant_calib) -> u64 {
    boundary_value(0, || {
        let c = unsafe { in_ref(c, "c") }?;
        Ok(c.inner.tokens())
    })
}

/// Releases a calibration made by `quant_calib_new` or `quant_calib_new_ex`. NULL is ignored. Must not
/// be called while another thread uses `c`.
#[no_mangle]
pub extern "C" fn quant_calib_free(c: *mut quant_calib) {
    unsafe { free_handle(c) }
}
