//! C exports for the quantization levels (`quant_level`).
use std::ffi::c_char;

use crate::error::{quant_status, QuantError, Result};
use crate::ffi::{boundary, boundary_value, out_param};
use crate::level::QuantizationLevel;

/// A storage width of model weights, passed as a plain 32-bit integer: one of the `QUANT_LEVEL_*`
/// codes. Every function taking a level accepts any value and reports an unknown one.
pub type quant_level = i32;

/// Full precision, IEEE-754 binary32: 32 bits per parameter.
pub const QUANT_LEVEL_FP32: quant_level = 0;
/// Half precision, IEEE-754 binary16: 16 bits per parameter.
pub const QUANT_LEVEL_FP16: quant_level = 1;
/// Brain floating point (bfloat16): 16 bits per parameter.
pub const QUANT_LEVEL_BF16: quant_level = 2;
/// 8-bit integers: 8 bits per parameter.
pub const QUANT_LEVEL_INT8: quant_level = 3;
/// 4-bit integers (GPTQ / AWQ style): 4 bits per parameter.
pub const QUANT_LEVEL_INT4: quant_level = 4;

/// The level of a C code, or `InvalidArgument` naming the unknown code.
fn level_of(level: quant_level) -> Result<QuantizationLevel> {
    QuantizationLevel::from_code(level).ok_or_else(|| {
        QuantError::invalid(format!(
            "unknown quantization level {level} (expected QUANT_LEVEL_FP32 = 0 .. QUANT_LEVEL_INT4 = 4)"
        ))
    })
}

/// Bits per parameter of `level`: 32, 16, 16, 8, 4 for FP32, FP16, BF16, INT8, INT4.
/// Returns 0 for an unknown level (and records a detail for `quant_last_error`).
/// Thread-safe; no allocation.
#[no_mangle]
pub extern "C" fn quant_level_bits(level: quant_level) -> u32 {
    boundary_value(0, || Ok(level_of(level)?.bits_per_param()))
}

/// Memory reduction factor of `level` relative to FP32: 1, 2, 2, 4, 8 for FP32, FP16, BF16, INT8,
/// INT4. Returns 0 for an unknown level (and records a detail for `quant_last_error`). Thread-safe.
#[no_mangle]
pub extern "C" fn quant_level_reduction_factor(level: quant_level) -> f64 {
    boundary_value(0.0, || Ok(level_of(level)?.memory_reduction_factor()))
}

/// Writes to `*out` the level with `bits` bits per parameter: 32 -> `QUANT_LEVEL_FP32`,
/// 16 -> `QUANT_LEVEL_FP16` (never BF16), 8 -> `QUANT_LEVEL_INT8`, 4 -> `QUANT_LEVEL_INT4`.
///
/// Errors: `out` NULL -> `QUANT_ERR_NULL_POINTER`; any other bit width ->
/// `QUANT_ERR_INVALID_ARGUMENT`. On error `*out` is not modified. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_level_from_bits(bits: u32, out: *mut quant_level) -> quant_status {
    boundary(|| {
        let out = unsafe { out_param(out, "out") }?;
        let level = QuantizationLevel::from_bits(bits)?;
        *out = level.code();
        Ok(())
    })
}

/// The name of `level`: "FP32", "FP16", "BF16", "INT8" or "INT4", as a static NUL-terminated string
/// owned by the library (valid for the whole process; do not free it). Returns NULL for an unknown
/// level (and records a detail for `quant_last_error`). Thread-safe.
#[no_mangle]
pub extern "C" fn quant_level_name(level: quant_level) -> *const c_char {
    boundary_value(std::ptr::null(), || Ok(level_of(level)?.c_name().as_ptr()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_constants() {
        let constants = [
            QUANT_LEVEL_FP32,
            QUANT_LEVEL_FP16,
            QUANT_LEVEL_BF16,
            QUANT_LEVEL_INT8,
            QUANT_LEVEL_INT4,
        ];
        for (level, code) in QuantizationLevel::all().iter().zip(constants) {
            assert_eq!(level.code(), code);
            assert_eq!(QuantizationLevel::from_code(code), Some(*level));
        }
    }
}
