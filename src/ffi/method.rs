//! C exports for the quantization methods (`quant_method`), memory estimates and the per-layer
//! configuration (`quant_config`).
use std::ffi::{c_char, CStr};

use crate::error::{quant_status, QuantError, Result};
use crate::ffi::status::copy_c_string;
use crate::ffi::{
    boundary, boundary_value, free_handle, in_ref, into_handle, out_param, slice_out,
};
use crate::method::{QuantConfig, QuantMethod};

/// The kind of a quantization method, passed as a plain 32-bit integer: one of the `QUANT_*` method
/// codes below. Every function taking a method reports an unknown kind as `QUANT_ERR_INVALID_ARGUMENT`.
pub type quant_method_kind = i32;

/// Round-to-nearest INT8, symmetric: scale = absmax / 127, codes in [-127, 127]. `bits` and `alpha`
/// are ignored. Name "INT8-Symmetric".
pub const QUANT_INT8_SYMMETRIC: quant_method_kind = 0;
/// Round-to-nearest INT4, asymmetric with an integer zero point in [0, 15] (the GPTQ/AWQ convention).
/// `bits` and `alpha` are ignored. Name "INT4-Asymmetric".
pub const QUANT_INT4_ASYMMETRIC: quant_method_kind = 1;
/// Scaled FP8 E4M3: scale = absmax / 448, saturating float8_e4m3fn codes. `bits` and `alpha` are
/// ignored. Name "FP8-E4M3".
pub const QUANT_FP8_E4M3: quant_method_kind = 2;
/// AWQ (Lin et al. 2023): `bits` in [1, 8] (4 is the published setting, 3 is also supported; 0 means
/// 4), `group_size` > 0. Name "AWQ(group=128)" at 4 bits, "AWQ(3bit, group=128)" otherwise.
pub const QUANT_AWQ: quant_method_kind = 3;
/// SmoothQuant (Xiao et al. 2022): migration strength `alpha` in [0, 1], then INT8 symmetric with
/// `group_size` (0 = per output channel, the published setting). `bits` is ignored (always 8).
/// Name "SmoothQuant(α=0.50)" (UTF-8). The per-input-channel scale is
/// `s_j = max(max|X_j|^alpha / max(max|W_j|, 1e-5)^(1 - alpha), 1e-5)` (max|X_j| from the calibration,
/// max|W_j| over every matrix of a `quant_quantize_group` call); the codes quantize `W diag(s)` and
/// `quant_weight_input_scales` returns `s`. `alpha = 0` follows the formula (`s_j = 1 / max|W_j|`): it
/// does NOT mean "no smoothing".
pub const QUANT_SMOOTHQUANT: quant_method_kind = 4;
/// GPTQ (Frantar et al. 2022): `bits` in [1, 8] (the algorithm supports 2..8), `group_size` > 0.
/// Name "GPTQ(4bit, group=128)".
pub const QUANT_GPTQ: quant_method_kind = 5;

/// A quantization method, passed by value or by pointer; plain data owned by the caller.
///
/// - `kind`: one of `QUANT_INT8_SYMMETRIC` .. `QUANT_GPTQ`.
/// - `bits`: bit width of AWQ and GPTQ (see the kinds; for AWQ, 0 means the published 4). Ignored by
///   the fixed-width kinds; functions that return a method write their nominal width there (8, 4, 8;
///   8 for SmoothQuant).
/// - `group_size`: 0 = one scale per row (per output channel); k > 0 = one scale per k consecutive
///   columns of a row. AWQ and GPTQ require k > 0.
/// - `alpha`: SmoothQuant's migration strength, in [0, 1]; ignored by the other kinds (returned as 0).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct quant_method {
    pub kind: quant_method_kind,
    pub bits: u32,
    pub group_size: u32,
    pub alpha: f64,
}

impl quant_method {
    /// The Rust method of this C description. Only the kind is checked here (an unknown kind is
    /// `InvalidArgument`); the values are checked by [`QuantMethod::validate`]. AWQ with `bits` 0 means
    /// the published 4 bits.
    pub fn to_method(&self) -> Result<QuantMethod> {
        let group_size = self.group_size as usize;
        Ok(match self.kind {
            QUANT_INT8_SYMMETRIC => QuantMethod::Int8Symmetric { group_size },
            QUANT_INT4_ASYMMETRIC => QuantMethod::Int4Asymmetric { group_size },
            QUANT_FP8_E4M3 => QuantMethod::Fp8E4m3 { group_size },
            QUANT_AWQ => QuantMethod::Awq {
                group_size,
                bits: if self.bits == 0 { 4 } else { self.bits },
            },
            QUANT_SMOOTHQUANT => QuantMethod::SmoothQuant {
                alpha: self.alpha,
                group_size,
            },
            QUANT_GPTQ => QuantMethod::Gptq {
                group_size,
                bits: self.bits,
            },
            other => {
                return Err(QuantError::invalid(format!(
                    "unknown quantization method kind {other} (expected QUANT_INT8_SYMMETRIC = 0 .. QUANT_GPTQ = 5)"
                )))
            }
        })
    }

    /// The C description of a Rust method: `bits` is the nominal width of every kind, `alpha` is 0
    /// except for SmoothQuant. Fails (`InvalidArgument`) only when `group_size` does not fit in 32 bits.
    pub fn from_method(method: &QuantMethod) -> Result<Self> {
        let group_size = u32::try_from(method.group_size()).map_err(|_| {
            QuantError::invalid(format!(
                "group_size {} does not fit in quant_method.group_size (32 bits)",
                method.group_size()
            ))
        })?;
        let (kind, alpha) = match *method {
            QuantMethod::Int8Symmetric { .. } => (QUANT_INT8_SYMMETRIC, 0.0),
            QuantMethod::Int4Asymmetric { .. } => (QUANT_INT4_ASYMMETRIC, 0.0),
            QuantMethod::Fp8E4m3 { .. } => (QUANT_FP8_E4M3, 0.0),
            QuantMethod::Awq { .. } => (QUANT_AWQ, 0.0),
            QuantMethod::SmoothQuant { alpha, .. } => (QUANT_SMOOTHQUANT, alpha),
            QuantMethod::Gptq { .. } => (QUANT_GPTQ, 0.0),
        };
        Ok(Self {
            kind,
            bits: method.bits_per_weight(),
            group_size,
            alpha,
        })
    }
}

impl TryFrom<&quant_method> for QuantMethod {
    type Error = QuantError;

    /// See [`quant_method::to_method`].
    fn try_from(m: &quant_method) -> Result<Self> {
        m.to_method()
    }
}

impl TryFrom<&QuantMethod> for quant_method {
    type Error = QuantError;

    /// See [`quant_method::from_method`].
    fn try_from(m: &QuantMethod) -> Result<Self> {
        quant_method::from_method(m)
    }
}

/// Reads a C method pointer: NULL -> `NullPointer`, unknown kind -> `InvalidArgument`.
///
/// # Safety
/// `m` must be NULL or point to a valid `quant_method`.
pub(crate) unsafe fn method_in(m: *const quant_method, what: &str) -> Result<QuantMethod> {
    in_ref(m, what)?.to_method()
}

/// Reads a C method pointer and checks its values (`QuantMethod::validate`).
///
/// # Safety
/// `m` must be NULL or point to a valid `quant_method`.
pub(crate) unsafe fn valid_method_in(m: *const quant_method, what: &str) -> Result<QuantMethod> {
    let method = method_in(m, what)?;
    method.validate()?;
    Ok(method)
}

/// Checks `*m` against the rules of its kind: a known kind; AWQ and GPTQ: `group_size` > 0 and `bits`
/// in [1, 8] (AWQ `bits` 0 means 4); SmoothQuant: `alpha` a finite number in [0, 1]. The round-to-nearest
/// kinds accept any `group_size`.
///
/// Errors: `m` NULL -> `QUANT_ERR_NULL_POINTER`; a broken rule -> `QUANT_ERR_INVALID_ARGUMENT`, with a
/// detail that names the rule (for example "GPTQ bits must be in [1, 8] (got 9)"). Thread-safe.
#[no_mangle]
pub extern "C" fn quant_method_validate(m: *const quant_method) -> quant_status {
    boundary(|| {
        unsafe { valid_method_in(m, "m") }?;
        Ok(())
    })
}

/// Nominal bits per weight of `*m`: 8 (INT8), 4 (INT4), 8 (FP8), `bits` (AWQ), 8
/// (SmoothQuant), `bits` (GPTQ). Scales and zero points are not counted (see
/// `quant_method_effective_bits`). Returns 0 when `m` is NULL or invalid (see `quant_method_validate`),
/// and records the detail for `quant_last_error`. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_method_bits_per_weight(m: *const quant_method) -> u32 {
    boundary_value(0, || {
        Ok(unsafe { valid_method_in(m, "m") }?.bits_per_weight())
    })
}

/// Compression ratio of `*m` versus FP16: 16 / nominal bits per weight (2 for INT8, 4 for
/// INT4). Returns 0 when `m` is NULL or invalid, and records the detail. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_method_compression_ratio(m: *const quant_method) -> f64 {
    boundary_value(0.0, || {
        Ok(unsafe { valid_method_in(m, "m") }?.compression_ratio())
    })
}

/// Bits of storage per weight of a matrix with `cols` columns quantized with `*m`, including scales and
/// zero points: `bits + ceil(cols / g) * (32 + z) / cols`, where `g` is `group_size` (or `cols` when it
/// is 0 or larger), each group stores one f32 scale (32 bits) and, for INT4, AWQ and GPTQ, one integer
/// zero point of `z = bits` bits (`z` = 0 for the symmetric kinds). Not counted: the per-input-channel
/// scales of AWQ and SmoothQuant (folded into the previous operation) and GPTQ's act-order group index.
/// Example: INT4 with groups of 128 gives 4 + 36/128 = 4.28125.
///
/// Returns 0 when `m` is NULL or invalid or `cols` is 0, and records the detail. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_method_effective_bits(m: *const quant_method, cols: usize) -> f64 {
    boundary_value(0.0, || unsafe { method_in(m, "m") }?.effective_bits(cols))
}

/// Writes the display name of `*m` ("INT8-Symmetric", "INT4-Asymmetric",
/// "FP8-E4M3", "AWQ(group=128)" — "AWQ(3bit, group=128)" when AWQ's bits are not 4 —,
/// "SmoothQuant(α=0.50)", "GPTQ(4bit, group=128)") into `buf` as a NUL-terminated UTF-8 string,
/// truncated to fit in `buf_len` bytes, and returns the full length of the name in bytes (without the
/// NUL). Call with `buf = NULL, buf_len = 0` to learn the size; "α" takes two bytes. The method is
/// named even when its values are invalid (only its kind must be known).
///
/// Returns 0 and leaves `buf` untouched when `m` is NULL, its kind is unknown, or `buf` is NULL with
/// `buf_len` > 0 (the detail is recorded). Thread-safe.
#[no_mangle]
pub extern "C" fn quant_method_name(
    m: *const quant_method,
    buf: *mut c_char,
    buf_len: usize,
) -> usize {
    boundary_value(0, || {
        let method = unsafe { method_in(m, "m") }?;
        let out = unsafe { slice_out(buf, buf_len, "buf") }?;
        Ok(copy_c_string(&method.to_string(), out))
    })
}

/// Memory estimate for `num_params` weights quantized with `*m`:
/// `*fp16_bytes = num_params * 2` and `*quant_bytes = ceil(num_params * nominal bits / 8)` (scales and
/// zero points are not counted; see `quant_method_effective_bits` for them).
///
/// Errors: `m`, `fp16_bytes` or `quant_bytes` NULL -> `QUANT_ERR_NULL_POINTER`; an invalid method, or a
/// result that does not fit in a `size_t` -> `QUANT_ERR_INVALID_ARGUMENT`. On error neither output is
/// modified. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_estimate_memory(
    num_params: usize,
    m: *const quant_method,
    fp16_bytes: *mut usize,
    quant_bytes: *mut usize,
) -> quant_status {
    boundary(|| {
        let method = unsafe { method_in(m, "m") }?;
        let fp16_out = unsafe { out_param(fp16_bytes, "fp16_bytes") }?;
        let quant_out = unsafe { out_param(quant_bytes, "quant_bytes") }?;
        let (fp16, quant) = method.estimate_memory(num_params)?;
        *fp16_out = fp16;
        *quant_out = quant;
        Ok(())
    })
}

/// A per-layer quantization configuration: a default method plus overrides by layer name. Opaque;
/// create it with `quant_config_new`, release it with `quant_config_free`. It may be read
/// (`quant_config_method_for_layer`, `quant_config_validate`) from several threads at once, but must not
/// be written (`quant_config_set_layer`) or freed while another thread uses it.
pub struct quant_config {
    pub(crate) inner: QuantConfig,
}

/// Reads a layer name: NULL -> `NullPointer`, not valid UTF-8 -> `InvalidArgument`.
///
/// # Safety
/// `name` must be NULL or point to a NUL-terminated string.
unsafe fn layer_name_in<'a>(name: *const c_char) -> Result<&'a str> {
    if name.is_null() {
        return Err(QuantError::NullPointer("layer_name".to_string()));
    }
    CStr::from_ptr(name).to_str().map_err(|e| {
        QuantError::invalid(format!(
            "layer_name is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// Creates a configuration that uses `*default_method` for every layer, and writes its handle to
/// `*out`. The caller owns the handle and releases it with `quant_config_free`.
///
/// The method's kind must be known; its values are checked later by `quant_config_validate` (which
/// then reports "default method: ...").
///
/// Errors: `default_method` or `out` NULL -> `QUANT_ERR_NULL_POINTER`; an unknown kind ->
/// `QUANT_ERR_INVALID_ARGUMENT`. On error `*out` is not modified and nothing is allocated.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn quant_config_new(
    default_method: *const quant_method,
    out: *mut *mut quant_config,
) -> quant_status {
    boundary(|| {
        let method = unsafe { method_in(default_method, "default_method") }?;
        let out = unsafe { out_param(out, "out") }?;
        *out = into_handle(quant_config {
            inner: QuantConfig::new(method),
        });
        Ok(())
    })
}

/// Uses `*m` for the layer named `layer_name` (a NUL-terminated UTF-8 string, copied), replacing an
/// earlier override of that name. The method's kind must be known; its values are not checked here:
/// `quant_config_validate` reports a bad one with its layer name.
///
/// Errors: `c`, `layer_name` or `m` NULL -> `QUANT_ERR_NULL_POINTER`; `layer_name` not valid UTF-8 or an
/// unknown kind -> `QUANT_ERR_INVALID_ARGUMENT`; no memory for the name ->
/// `QUANT_ERR_OUT_OF_MEMORY`. On error the configuration is unchanged. Writes `*c`: no other thread may
/// use `c` during the call.
#[no_mangle]
pub extern "C" fn quant_config_set_layer(
    c: *mut quant_config,
    layer_name: *const c_char,
    m: *const quant_method,
) -> quant_status {
    boundary(|| {
        let config = unsafe { out_param(c, "c") }?;
        let name = unsafe { layer_name_in(layer_name) }?;
        let method = unsafe { method_in(m, "m") }?;
        config.inner.try_set_layer_method(name, method)
    })
}

/// Writes to `*out` the method of the layer named `layer_name` (a NUL-terminated UTF-8 string): its
/// override, or the default method. `out->bits` holds the nominal width of every kind and `out->alpha`
/// is 0 except for SmoothQuant.
///
/// Errors: `c`, `layer_name` or `out` NULL -> `QUANT_ERR_NULL_POINTER`; `layer_name` not valid UTF-8 ->
/// `QUANT_ERR_INVALID_ARGUMENT`. On error `*out` is not modified. Only reads `*c`.
#[no_mangle]
pub extern "C" fn quant_config_method_for_layer(
    c: *const quant_config,
    layer_name: *const c_char,
    out: *mut quant_method,
) -> quant_status {
    boundary(|| {
        let config = unsafe { in_ref(c, "c") }?;
        let name = unsafe { layer_name_in(layer_name) }?;
        let out = unsafe { out_param(out, "out") }?;
        let method = quant_method::from_method(config.inner.method_for_layer(name))?;
        *out = method;
        Ok(())
    })
}

/// Validates the default method and every per-layer override (rules of `quant_method_validate`).
///
/// Errors: `c` NULL -> `QUANT_ERR_NULL_POINTER`; a bad method -> `QUANT_ERR_INVALID_ARGUMENT` with a
/// detail that names it: "default method: ..." or "layer 'NAME': ...". The default is checked first,
/// then the layers in sorted (byte-wise) name order, so the first bad one in that order is reported.
/// Only reads `*c`.
#[no_mangle]
pub extern "C" fn quant_config_validate(c: *const quant_config) -> quant_status {
    boundary(|| unsafe { in_ref(c, "c") }?.inner.validate())
}

/// Releases a configuration made by `quant_config_new`. NULL is accepted and ignored. The handle must not
/// be used afterwards, nor freed twice.
#[no_mangle]
pub extern "C" fn quant_config_free(c: *mut quant_config) {
    unsafe { free_handle(c) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_survive_the_round_trip_through_c() {
        let methods = [
            QuantMethod::Int8Symmetric { group_size: 0 },
            QuantMethod::Int4Asymmetric { group_size: 128 },
            QuantMethod::Fp8E4m3 { group_size: 32 },
            QuantMethod::Awq {
                group_size: 128,
                bits: 3,
            },
            QuantMethod::SmoothQuant {
                alpha: 0.5,
                group_size: 0,
            },
            QuantMethod::Gptq {
                group_size: 64,
                bits: 2,
            },
        ];
        for m in methods {
            let c = quant_method::from_method(&m).unwrap();
            assert_eq!(c.to_method().unwrap(), m);
        }
        let big = QuantMethod::Int8Symmetric {
            group_size: usize::MAX,
        };
        assert!(quant_method::from_method(&big).is_err());
    }

    #[test]
    fn awq_bits_zero_means_four() {
        let c = quant_method {
            kind: QUANT_AWQ,
            bits: 0,
            group_size: 128,
            alpha: 0.0,
        };
        assert_eq!(
            c.to_method().unwrap(),
            QuantMethod::Awq {
                group_size: 128,
                bits: 4
            }
        );
    }
}
