//! Run-time choice of the instruction set the kernels use.
//!
//! One shipped binary runs on any x86-64 and any aarch64: nothing depends on `-C target-cpu`. Each
//! kernel has a portable path (plain Rust that the compiler vectorizes for the baseline target, the
//! level [`SimdLevel::Scalar`]) and, where it pays, hand-written paths for AVX2, AVX-512 and NEON
//! (`std::arch` intrinsics in functions compiled with `#[target_feature]`). Every path gives the same
//! bits as the scalar reference kernels (`*_ref`): the tests run every level available on the machine
//! against them.
//!
//! The level in force for a call is, first match wins:
//! 1. a level set for the calling thread with [`with_simd_level`] (Rust callers and the tests);
//! 2. the process-wide level set with [`set_simd_level`] (`quant_set_simd_level` in C);
//! 3. the environment variable `QUANT_SIMD` read once, at the first kernel call: `scalar`, `avx2`,
//!    `avx512`, `neon` or `auto` (case-insensitive). A level the CPU lacks is lowered to the best
//!    available level below it (e.g. `avx512` on an AVX2-only CPU gives AVX2); an unknown value is
//!    ignored (auto);
//! 4. the best level the CPU has ([`best_available`]).
//!
//! A kernel reads the level once at its start and uses it for the whole call (its helper threads
//! included), so changing the level while other threads run kernels is safe: each call sees the old
//! level or the new one.
use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use crate::error::{QuantError, Result};

/// An instruction-set level of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Portable Rust, vectorized by the compiler for the baseline target only (SSE2 on x86-64).
    Scalar,
    /// x86-64 with AVX2, FMA and F16C (Haswell and later, Zen and later).
    Avx2,
    /// x86-64 with AVX-512 F, BW and VL (and everything `Avx2` needs).
    Avx512,
    /// aarch64 Advanced SIMD (every aarch64 CPU has it).
    Neon,
}

/// SIMD level: portable code, no intrinsics (any CPU).
pub const QUANT_SIMD_SCALAR: i32 = 0;
/// SIMD level: x86-64 AVX2 + FMA + F16C.
pub const QUANT_SIMD_AVX2: i32 = 1;
/// SIMD level: x86-64 AVX-512 F/BW/VL (and AVX2).
pub const QUANT_SIMD_AVX512: i32 = 2;
/// SIMD level: aarch64 NEON (Advanced SIMD).
pub const QUANT_SIMD_NEON: i32 = 3;
/// For `quant_set_simd_level`: go back to the automatic choice (the best level of the CPU; the
/// environment variable is not read again).
pub const QUANT_SIMD_AUTO: i32 = -1;

impl SimdLevel {
    /// Every level, lowest first.
    pub fn all() -> [SimdLevel; 4] {
        [
            SimdLevel::Scalar,
            SimdLevel::Avx2,
            SimdLevel::Avx512,
            SimdLevel::Neon,
        ]
    }

    /// The C code (`QUANT_SIMD_*`).
    pub fn code(self) -> i32 {
        match self {
            SimdLevel::Scalar => QUANT_SIMD_SCALAR,
            SimdLevel::Avx2 => QUANT_SIMD_AVX2,
            SimdLevel::Avx512 => QUANT_SIMD_AVX512,
            SimdLevel::Neon => QUANT_SIMD_NEON,
        }
    }

    /// The level of a C code, `None` for an unknown code.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::all().into_iter().find(|l| l.code() == code)
    }

    /// Lower-case name: "scalar", "avx2", "avx512", "neon" (the values of `QUANT_SIMD`).
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Neon => "neon",
        }
    }

    /// Whether this CPU can run the level.
    pub fn is_available(self) -> bool {
        match self {
            SimdLevel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                SimdLevel::Avx2.is_available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "aarch64")]
            SimdLevel::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// Every level this CPU can run, lowest first (always starts with `Scalar`).
pub fn available_levels() -> Vec<SimdLevel> {
    SimdLevel::all()
        .into_iter()
        .filter(|l| l.is_available())
        .collect()
}

/// The best level of this CPU.
pub fn best_available() -> SimdLevel {
    *available_levels().last().unwrap_or(&SimdLevel::Scalar)
}

/// The best available level at or below `want` on the same architecture (`Scalar` at worst).
fn lowered(want: SimdLevel) -> SimdLevel {
    match want {
        SimdLevel::Neon if !want.is_available() => SimdLevel::Scalar,
        SimdLevel::Avx512 if !want.is_available() => lowered(SimdLevel::Avx2),
        SimdLevel::Avx2 if !want.is_available() => SimdLevel::Scalar,
        l => l,
    }
}

/// The level chosen from `QUANT_SIMD` and the CPU (read once).
fn initial_level() -> SimdLevel {
    static INITIAL: OnceLock<SimdLevel> = OnceLock::new();
    *INITIAL.get_or_init(|| {
        let wanted = std::env::var("QUANT_SIMD").ok().and_then(|v| {
            let v = v.trim().to_ascii_lowercase();
            SimdLevel::all().into_iter().find(|l| l.name() == v)
        });
        match wanted {
            Some(l) => lowered(l),
            None => best_available(),
        }
    })
}

/// Process-wide forced level: `UNSET`, or a level code.
static GLOBAL: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = 0xFF;

thread_local! {
    static SCOPED: Cell<Option<SimdLevel>> = const { Cell::new(None) };
}

/// The level the next kernel call on this thread will use (see the module docs for the order).
pub fn simd_level() -> SimdLevel {
    if let Some(l) = SCOPED.with(|s| s.get()) {
        return l;
    }
    match GLOBAL.load(Ordering::Relaxed) {
        UNSET => initial_level(),
        code => SimdLevel::from_code(i32::from(code)).unwrap_or(SimdLevel::Scalar),
    }
}

fn check_available(level: SimdLevel) -> Result<()> {
    if !level.is_available() {
        return Err(QuantError::Unsupported(format!(
            "SIMD level {} is not available on this CPU (available: {})",
            level.name(),
            available_levels()
                .iter()
                .map(|l| l.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// Forces the process-wide level (`Some`), or goes back to the automatic choice (`None`: the best level
/// of the CPU). `Unsupported` when the CPU lacks the level; nothing changes then.
pub fn set_simd_level(level: Option<SimdLevel>) -> Result<()> {
    match level {
        Some(l) => {
            check_available(l)?;
            GLOBAL.store(l.code() as u8, Ordering::Relaxed);
        }
        None => GLOBAL.store(best_available().code() as u8, Ordering::Relaxed),
    }
    Ok(())
}

/// Runs `f` with `level` forced for the calling thread only (kernel calls inside `f`, including the
/// helper threads they start, use it). `Unsupported` when the CPU lacks the level; `f` is not run then.
pub fn with_simd_level<R>(level: SimdLevel, f: impl FnOnce() -> R) -> Result<R> {
    check_available(level)?;
    struct Restore(Option<SimdLevel>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPED.with(|s| s.replace(Some(level))));
    Ok(f())
}

/// Runs `f` compiled for AVX2 when `level` is AVX2 or AVX-512 (x86-64), as built otherwise (the
/// baseline x86-64 or aarch64). For the algorithms' portable per-element loops, which the compiler
/// vectorizes: 8 lanes instead of the baseline's 4, and rounding in one instruction instead of a call to
/// libm. Nothing else changes: Rust never fuses a multiply and an add on its own, so the operations and
/// their rounding are those of the baseline build and the results are bit-identical (GPTQ's and AWQ's
/// tests compare every level with the scalar one). `f` is compiled for AVX2 only where it is inlined
/// into the AVX2 function: callers pass an `#[inline(always)]` closure whose body is inlined too.
#[inline(always)]
pub(crate) fn run_compiled_for<R>(level: SimdLevel, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if matches!(level, SimdLevel::Avx2 | SimdLevel::Avx512) {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: a level other than `Scalar` is only ever in force when the CPU has it
        // (`check_available`, `best_available`), and every CPU with AVX-512 has AVX2.
        return unsafe { avx2(f) };
    }
    let _ = level;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_scoping() {
        for l in SimdLevel::all() {
            assert_eq!(SimdLevel::from_code(l.code()), Some(l));
        }
        assert_eq!(SimdLevel::from_code(7), None);
        assert!(SimdLevel::Scalar.is_available());
        let before = simd_level();
        with_simd_level(SimdLevel::Scalar, || {
            assert_eq!(simd_level(), SimdLevel::Scalar)
        })
        .unwrap();
        assert_eq!(simd_level(), before);
        #[cfg(target_arch = "x86_64")]
        assert!(with_simd_level(SimdLevel::Neon, || ()).is_err());
        assert_eq!(lowered(SimdLevel::Scalar), SimdLevel::Scalar);
        assert!(lowered(SimdLevel::Avx512).is_available());
    }
}
