//! C exports for whole-layer quantization (`quant_quantize`, `quant_quantize_group`) and the quantized
//! weight handle (`quant_weight`).
use crate::algos::QuantOptions;
use crate::calib::Calibration;
use crate::error::{quant_status, QuantError, Result};
use crate::ffi::calib::quant_calib;
use crate::ffi::method::{method_in, quant_method};
use crate::ffi::options::quant_options;
use crate::ffi::{
    boundary, boundary_value, free_handle, in_ref, into_handle, matrix_len, out_param, slice_in,
    slice_out,
};
use crate::weight::{self, QuantizedWeight};

/// One quantized weight matrix: the method, the shape, the packed codes, the per-group scales and
/// (depending on the method) zero points, input scales and group index. Opaque; made by
/// `quant_quantize` or `quant_quantize_group`, released with `quant_weight_free`. Immutable once made:
/// it may be read from several threads at once, but must not be freed while another thread uses it.
pub struct quant_weight {
    pub(crate) inner: QuantizedWeight,
}

/// The options behind a C pointer, or the defaults for NULL.
///
/// # Safety
/// `o` must be NULL or a live handle from `quant_options_new`.
unsafe fn options_in(o: *const quant_options, defaults: &QuantOptions) -> &QuantOptions {
    match o.as_ref() {
        Some(o) => &o.inner,
        None => defaults,
    }
}

/// The calibration behind a C pointer (NULL -> `None`).
///
/// # Safety
/// `c` must be NULL or a live handle from `quant_calib_new`.
unsafe fn calib_in<'a>(c: *const quant_calib) -> Option<&'a Calibration> {
    c.as_ref().map(|c| &c.inner)
}

/// Quantizes one row-major `rows x cols` float matrix `w` (rows = output features, cols = input
/// features) with the method `*m`, and writes a new handle to `*out`.
///
/// - `m`: the method (see `quant_method`); it is validated as by `quant_method_validate`.
/// - `o`: options, or NULL for the defaults. The round-to-nearest kinds ignore them.
/// - `w`: `rows * cols` floats, read only; they must all be finite.
/// - `calib`: the statistics of this layer's input (width `cols`). May be NULL for INT8, INT4 and FP8
///   (ignored by them); AWQ, SmoothQuant and GPTQ require it, with enough tokens:
///   `quant_calib_recommended_tokens` tells how many (GPTQ: 16 times `cols`; on fewer than a few times
///   `cols` it can come out worse than INT4 round-to-nearest).
/// - `out`: receives the handle, owned by the caller and released with `quant_weight_free`. Written only
///   on success.
///
/// Per-tensor scaling of a whole matrix is `rows = 1, cols = rows * cols` with `group_size` 0.
/// Thread-safe: `o` and `calib` are only read, and may be shared by concurrent calls.
///
/// Errors (nothing is written, nothing leaks):
/// - `QUANT_ERR_NULL_POINTER`: `m`, `w` or `out` is NULL.
/// - `QUANT_ERR_INVALID_ARGUMENT`: unknown kind or invalid method values; `rows` or `cols` is 0 or
///   `rows * cols` overflows; `calib` NULL or without tokens for AWQ, SmoothQuant or GPTQ; for GPTQ a
///   `calib` made without `QUANT_CALIB_HESSIAN`; options out of range; a group whose range overflows
///   float.
/// - `QUANT_ERR_SHAPE_MISMATCH`: `calib` has another width than `cols`.
/// - `QUANT_ERR_NON_FINITE`: NaN or infinity in `w` (the detail names the first index).
/// - `QUANT_ERR_NUMERICAL`: GPTQ's Hessian cannot be factorized even after raising the damping (the
///   detail lists every damping tried); possible only with a Hessian imported by
///   `quant_calib_set_hessian`, since one accumulated from finite activations is positive
///   semi-definite.
/// - `QUANT_ERR_OUT_OF_MEMORY`: the result or the working space cannot be allocated.
///
/// The calibration-based kinds: GPTQ (Frantar et al. 2022) uses the Hessian of `calib` and the GPTQ
/// options (act_order, damp_percent, block_size, symmetric, static_groups, mse_search, threads); AWQ
/// (Lin et al. 2023) uses mean|x| and the token sample of `calib` (searching the scale exponent on a
/// grid of 20 and the clipping of each group), with `symmetric` and `threads`; SmoothQuant (Xiao et al.
/// 2022) uses max|x| (see `QUANT_SMOOTHQUANT`).
#[no_mangle]
pub extern "C" fn quant_quantize(
    m: *const quant_method,
    o: *const quant_options,
    w: *const f32,
    rows: usize,
    cols: usize,
    calib: *const quant_calib,
    out: *mut *mut quant_weight,
) -> quant_status {
    boundary(|| {
        let method = unsafe { method_in(m, "m") }?;
        let out = unsafe { out_param(out, "out") }?;
        let len = matrix_len(rows, cols)?;
        let w = unsafe { slice_in(w, len, "w") }?;
        let defaults = QuantOptions::default();
        let options = unsafe { options_in(o, &defaults) };
        let calib = unsafe { calib_in(calib) };
        let q = weight::quantize(&method, options, w, rows, cols, calib)?;
        *out = into_handle(quant_weight { inner: q });
        Ok(())
    })
}

/// Quantizes `n` matrices that read the same input of width `cols` (q, k and v; gate and up) together:
/// `ws[i]` is a row-major `rows[i] x cols` float matrix. AWQ and SmoothQuant choose ONE per-input-channel
/// scale for all of them; the round-to-nearest kinds quantize each matrix on its own. On success
/// `out[0..n)` receives `n` new handles, in the order of `ws`, each owned by the caller and released with
/// `quant_weight_free`.
///
/// Arguments as `quant_quantize`; `ws` and `rows` hold `n` elements, `out` room for `n` handles.
///
/// All or nothing: on any error no handle is written to `out` and nothing leaks.
/// Errors: those of `quant_quantize` (the detail names the matrix as `ws[i]`), and:
/// - `QUANT_ERR_INVALID_ARGUMENT`: `n` is 0, or `rows[i]` is 0 or `rows[i] * cols` overflows.
/// - `QUANT_ERR_NULL_POINTER`: `ws`, `rows` or `out` is NULL, or any `ws[i]` is NULL.
#[no_mangle]
pub extern "C" fn quant_quantize_group(
    m: *const quant_method,
    o: *const quant_options,
    ws: *const *const f32,
    rows: *const usize,
    n: usize,
    cols: usize,
    calib: *const quant_calib,
    out: *mut *mut quant_weight,
) -> quant_status {
    boundary(|| {
        let method = unsafe { method_in(m, "m") }?;
        if n == 0 {
            return Err(QuantError::invalid(
                "quant_quantize_group needs at least one matrix: n is 0",
            ));
        }
        let ptrs = unsafe { slice_in(ws, n, "ws") }?;
        let rows = unsafe { slice_in(rows, n, "rows") }?;
        let out = unsafe { slice_out(out, n, "out") }?;
        let mut matrices: Vec<&[f32]> = Vec::new();
        matrices
            .try_reserve_exact(n)
            .map_err(|_| QuantError::OutOfMemory(format!("{n} matrix slices")))?;
        for (i, (&p, &r)) in ptrs.iter().zip(rows).enumerate() {
            let len = matrix_len(r, cols)
                .map_err(|e| QuantError::invalid(format!("ws[{i}] ({r} x {cols}): {e}")))?;
            matrices.push(unsafe { slice_in(p, len, &format!("ws[{i}]")) }?);
        }
        let defaults = QuantOptions::default();
        let options = unsafe { options_in(o, &defaults) };
        let calib = unsafe { calib_in(calib) };
        let results = weight::quantize_group(&method, options, &matrices, rows, cols, calib)?;
        if results.len() != n {
            return Err(QuantError::Internal(format!(
                "quantize_group gave {} results for {n} matrices",
                results.len()
            )));
        }
        for (slot, q) in out.iter_mut().zip(results) {
            *slot = into_handle(quant_weight { inner: q });
        }
        Ok(())
    })
}

/// Writes the shape of the quantized matrix: `*rows` output features, `*cols` input features.
///
/// Errors: `q`, `rows` or `cols` NULL -> `QUANT_ERR_NULL_POINTER` (nothing written). Only reads `*q`.
#[no_mangle]
pub extern "C" fn quant_weight_shape(
    q: *const quant_weight,
    rows: *mut usize,
    cols: *mut usize,
) -> quant_status {
    boundary(|| {
        let q = unsafe { in_ref(q, "q") }?;
        let rows = unsafe { out_param(rows, "rows") }?;
        let cols = unsafe { out_param(cols, "cols") }?;
        *rows = q.inner.rows;
        *cols = q.inner.cols;
        Ok(())
    })
}

/// Writes the method that produced the weight to `*out` (as given to `quant_quantize`, with `bits` set
/// to the nominal width of every kind, AWQ's 0 as 4, and `alpha` 0 except for SmoothQuant).
///
/// Errors: `q` or `out` NULL -> `QUANT_ERR_NULL_POINTER` (nothing written). Only reads `*q`.
#[no_mangle]
pub extern "C" fn quant_weight_method(
    q: *const quant_weight,
    out: *mut quant_method,
) -> quant_status {
    boundary(|| {
        let q = unsafe { in_ref(q, "q") }?;
        let out = unsafe { out_param(out, "out") }?;
        *out = quant_method::from_method(&q.inner.method)?;
        Ok(())
    })
}

/// Shared body of the pointer accessors: `(pointer, length)` of the part `get` picks, or `(NULL, 0)`
/// when it is absent or empty; `*len` (when `len` is not NULL) receives the length, also on a NULL
/// handle (0).
///
/// # Safety
/// `q` must be NULL or a live handle; `len` NULL or valid for a write.
unsafe fn accessor<T>(
    q: *const quant_weight,
    len: *mut usize,
    get: impl FnOnce(&QuantizedWeight) -> Option<&[T]>,
) -> Result<*const T> {
    crate::ffi::check_aligned(len, "len")?;
    crate::ffi::check_aligned(q, "q")?;
    let len = len.as_mut();
    let (ptr, n) = match q.as_ref() {
        None => {
            if let Some(len) = len {
                *len = 0;
            }
            return Err(QuantError::NullPointer("q".to_string()));
        }
        // Branch on the Option first: an absent part is never looked at further. (Folding the two
        // tests into one pattern let the optimizer test the length of an absent vector before its
        // presence, which valgrind reports as a jump on uninitialised memory.)
        Some(q) => match get(&q.inner) {
            None => (std::ptr::null(), 0),
            Some(s) => {
                let n = std::hint::black_box(s).len();
                if n == 0 {
                    (std::ptr::null(), 0)
                } else {
                    (s.as_ptr(), n)
                }
            }
        },
    };
    if let Some(len) = len {
        *len = n;
    }
    Ok(ptr)
}

/// The packed codes: `rows` rows of `ceil(cols * b / 8)` bytes each, every row
/// starting on a byte; element `j` of a row takes bits `[j*b, (j+1)*b)` of the row's bit string, least
/// significant bit first. `b` is 8 for INT8 and SmoothQuant (two's-complement codes), 8 for FP8 (raw
/// E4M3FN codes), 4 for INT4 (the even column in the low nibble), `bits` for AWQ and GPTQ (unsigned
/// codes with integer zero points). `*len` (if `len` is not NULL) receives the length in bytes.
///
/// The pointer is owned by the handle: valid until `quant_weight_free(q)`, read only.
/// A NULL `q` returns NULL, sets `*len` to 0 and records a detail.
#[no_mangle]
pub extern "C" fn quant_weight_data(q: *const quant_weight, len: *mut usize) -> *const u8 {
    boundary_value(std::ptr::null(), || unsafe {
        accessor(q, len, |w| Some(&w.data[..]))
    })
}

/// The per-group scales, `rows * groups_per_row` floats, `[r * groups_per_row + g]`, where
/// `groups_per_row = ceil(cols / group_size)` (1 for `group_size` 0). `*len` (if `len` is not NULL)
/// receives the count.
///
/// The pointer is owned by the handle: valid until `quant_weight_free(q)`, read only.
/// A NULL `q` returns NULL, sets `*len` to 0 and records a detail.
#[no_mangle]
pub extern "C" fn quant_weight_scales(q: *const quant_weight, len: *mut usize) -> *const f32 {
    boundary_value(std::ptr::null(), || unsafe {
        accessor(q, len, |w| Some(&w.scales[..]))
    })
}

/// The integer-valued zero points of INT4, AWQ and GPTQ (as floats, with the layout of the scales): a
/// code `c` stands for `(c - zero) * scale`. NULL with `*len = 0` for the symmetric kinds (INT8, FP8,
/// SmoothQuant). `*len` (if `len` is not NULL) receives the count.
///
/// The pointer is owned by the handle: valid until `quant_weight_free(q)`, read only.
/// A NULL `q` returns NULL, sets `*len` to 0 and records a detail.
#[no_mangle]
pub extern "C" fn quant_weight_zero_points(q: *const quant_weight, len: *mut usize) -> *const f32 {
    boundary_value(std::ptr::null(), || unsafe {
        accessor(q, len, |w| w.zero_points.as_deref())
    })
}

/// The per-input-channel scales `s_j` of AWQ and SmoothQuant (`cols` floats): the codes quantize
/// `W diag(s)`, so the layer computes `(x / s) . W_q^T`, with `1/s` folded into the previous operation.
/// NULL with `*len = 0` for the other methods. `*len` (if `len` is not NULL) receives the count.
///
/// The pointer is owned by the handle: valid until `quant_weight_free(q)`, read only.
/// A NULL `q` returns NULL, sets `*len` to 0 and records a detail.
#[no_mangle]
pub extern "C" fn quant_weight_input_scales(q: *const quant_weight, len: *mut usize) -> *const f32 {
    boundary_value(std::ptr::null(), || unsafe {
        accessor(q, len, |w| w.input_scales.as_deref())
    })
}

/// GPTQ's act-order group index `g_idx` (`cols` integers): column `j` uses the scale and zero point of
/// group `g_idx[j]` of its row. NULL with `*len = 0` when the columns use group `j / group_size` (every
/// method but GPTQ with act-order). `*len` (if `len` is not NULL) receives the count.
///
/// The pointer is owned by the handle: valid until `quant_weight_free(q)`, read only.
/// A NULL `q` returns NULL, sets `*len` to 0 and records a detail.
#[no_mangle]
pub extern "C" fn quant_weight_group_index(q: *const quant_weight, len: *mut usize) -> *const i32 {
    boundary_value(std::ptr::null(), || unsafe {
        accessor(q, len, |w| w.g_idx.as_deref())
    })
}

/// Writes the effective weight in the ORIGINAL input basis (input scales already undone), row-major,
/// to `dst[0 .. rows*cols)`: compare it with the `w` given to `quant_quantize`. For element `(r, j)`:
/// `(code value - zero) * scale / s_j`, with the scale and zero of its group and `s_j` = 1 without
/// input scales. For INT8, INT4 and FP8 this equals the kernels' dequantizers bit for bit.
///
/// `dst_len` is the length of `dst` in elements; only the first `rows * cols` are written. Thread-safe;
/// allocates one row of scratch.
///
/// Errors (nothing written): `q` NULL, or `dst` NULL with `dst_len` > 0 -> `QUANT_ERR_NULL_POINTER`;
/// `dst_len < rows * cols` -> `QUANT_ERR_BUFFER_TOO_SMALL`; no memory for the scratch ->
/// `QUANT_ERR_OUT_OF_MEMORY`.
#[no_mangle]
pub extern "C" fn quant_weight_dequantize(
    q: *const quant_weight,
    dst: *mut f32,
    dst_len: usize,
) -> quant_status {
    boundary(|| {
        let q = unsafe { in_ref(q, "q") }?;
        let dst = unsafe { slice_out(dst, dst_len, "dst") }?;
        q.inner.dequantize(dst)
    })
}

/// Releases a weight made by `quant_quantize` or `quant_quantize_group`, and every pointer its
/// accessors returned. NULL is accepted and ignored. The handle must not be used afterwards, nor freed
/// twice.
#[no_mangle]
pub extern "C" fn quant_weight_free(q: *mut quant_weight) {
    unsafe { free_handle(q) }
}
