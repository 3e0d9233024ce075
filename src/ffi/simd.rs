//! Run-time SIMD level and kernel threads: `quant_simd_level`, `quant_set_simd_level`,
//! `quant_simd_level_name`, `quant_set_threads`, `quant_threads`.
use std::ffi::c_char;

use crate::error::{quant_status, QuantError, Result};
use crate::ffi::{boundary, boundary_value};
use crate::kernels::par;
use crate::kernels::simd::{self, SimdLevel, QUANT_SIMD_AUTO};

/// The SIMD level the kernels use for calls from C: `QUANT_SIMD_SCALAR` (0, portable code),
/// `QUANT_SIMD_AVX2` (1), `QUANT_SIMD_AVX512` (2) or `QUANT_SIMD_NEON` (3).
///
/// The level is chosen at run time, once, from the CPU (the best level it has) and the environment
/// variable `QUANT_SIMD` (`scalar`, `avx2`, `avx512`, `neon` or `auto`; a level the CPU lacks is
/// lowered to the best one below it; an unknown value is ignored), unless `quant_set_simd_level`
/// forced one. Every level gives bit-identical results; only the speed differs.
/// Thread-safe; never fails.
#[no_mangle]
pub extern "C" fn quant_simd_level() -> i32 {
    boundary_value(QUANT_SIMD_AUTO, || Ok(simd::simd_level().code()))
}

/// Forces the SIMD level of every later kernel call in the process (`QUANT_SIMD_SCALAR` forces the
/// portable code), or goes back to the best level of the CPU with `QUANT_SIMD_AUTO` (-1).
///
/// A call already running keeps the level it started with, so this is safe while other threads run
/// kernels. Thread-safe.
///
/// Errors (the level is unchanged):
/// - `QUANT_ERR_INVALID_ARGUMENT`: `level` is not a `QUANT_SIMD_*` value.
/// - `QUANT_ERR_UNSUPPORTED`: this CPU does not have that level (e.g. AVX-512 on an AVX2 CPU, NEON on
///   x86-64); the detail lists the available ones.
#[no_mangle]
pub extern "C" fn quant_set_simd_level(level: i32) -> quant_status {
    boundary(|| -> Result<()> {
        if level == QUANT_SIMD_AUTO {
            return simd::set_simd_level(None);
        }
        let l = SimdLevel::from_code(level).ok_or_else(|| {
            QuantError::invalid(format!(
                "level is {level}: not a QUANT_SIMD_* value (-1..=3)"
            ))
        })?;
        simd::set_simd_level(Some(l))
    })
}

/// Name of a SIMD level: "scalar", "avx2", "avx512" or "neon" (static, NUL-terminated); NULL for an
/// unknown value. Thread-safe.
#[no_mangle]
pub extern "C" fn quant_simd_level_name(level: i32) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        Ok(match SimdLevel::from_code(level) {
            Some(SimdLevel::Scalar) => c"scalar".as_ptr(),
            Some(SimdLevel::Avx2) => c"avx2".as_ptr(),
            Some(SimdLevel::Avx512) => c"avx512".as_ptr(),
            Some(SimdLevel::Neon) => c"neon".as_ptr(),
            None => std::ptr::null(),
        })
    })
}

/// Sets how many threads one call of a large kernel may use, for the whole process: the round-to-nearest
/// quantizers and dequantizers (`quant_int8_*`, `quant_int4_*`, `quant_fp8_e4m3_quantize/dequantize`)
/// and the plain casts. The rule of every thread count in this API (as `quant_options_set_threads`):
/// `n = 0` means all the cores of the machine, 1 to `QUANT_MAX_THREADS` that many threads; the default
/// is 1 (the library starts no thread unless asked).
///
/// With `n > 1` a call splits its rows (casts: its elements) into at most `n` contiguous blocks and runs
/// them on threads started for the call and joined before it returns (`std::thread::scope`; there is no
/// pool and no thread outlives the call). Small inputs (under 65536 elements a thread) use fewer
/// threads. The results are bit-identical for every thread count.
///
/// An engine that runs its own threads can instead leave this at 1 and call the kernels on disjoint
/// row ranges of a matrix (pointer offset by `r0 * cols`, `rows = r1 - r0`, scales offset by
/// `r0 * quant_scale_count(1, cols, group_size)`): the result is the same as one call on the whole matrix.
///
/// Thread-safe; a call already running keeps the count it started with.
///
/// Errors: `QUANT_ERR_INVALID_ARGUMENT` when `n > QUANT_MAX_THREADS` (the count is unchanged).
#[no_mangle]
pub extern "C" fn quant_set_threads(n: usize) -> quant_status {
    boundary(|| par::set_threads(n))
}

/// The thread count set with `quant_set_threads` (0 = all cores; 1 by default). Thread-safe.
#[no_mangle]
pub extern "C" fn quant_threads() -> usize {
    boundary_value(1, || Ok(par::threads()))
}
