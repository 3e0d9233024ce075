//! Quantization levels of model weights: FP32, FP16, BF16, INT8, INT4.
//!
//! A level is a storage width per parameter, used for coarse memory planning. The C ABI passes a level
//! as an integer code (`QUANT_LEVEL_FP32` = 0 .. `QUANT_LEVEL_INT4` = 4, see [`QuantizationLevel::code`]).
use std::fmt;

use crate::error::{QuantError, Result};

/// Storage width of model weights.
///
/// ```
/// use quant::level::QuantizationLevel;
///
/// let q = QuantizationLevel::Int8;
/// assert_eq!(q.bits_per_param(), 8);
/// assert_eq!(q.memory_reduction_factor(), 4.0);
/// assert_eq!(QuantizationLevel::try_from(16u32).unwrap(), QuantizationLevel::Fp16);
/// assert_eq!(q.to_string(), "INT8");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantizationLevel {
    /// Full precision: IEEE-754 binary32, 32 bits per parameter.
    Fp32,
    /// Half precision: IEEE-754 binary16, 16 bits per parameter.
    Fp16,
    /// Brain floating point: bfloat16, 16 bits per parameter.
    Bf16,
    /// 8-bit integer quantization.
    Int8,
    /// 4-bit integer quantization (GPTQ / AWQ style).
    Int4,
}

impl QuantizationLevel {
    /// Every level, in the order of their C codes. (A function rather than an associated const:
    /// cbindgen would otherwise put this Rust type into the C header.)
    pub const fn all() -> [Self; 5] {
        [Self::Fp32, Self::Fp16, Self::Bf16, Self::Int8, Self::Int4]
    }

    /// Number of bits per model parameter: 32, 16, 16, 8, 4.
    pub fn bits_per_param(&self) -> u32 {
        match self {
            Self::Fp32 => 32,
            Self::Fp16 | Self::Bf16 => 16,
            Self::Int8 => 8,
            Self::Int4 => 4,
        }
    }

    /// Memory reduction factor relative to FP32: 1, 2, 2, 4, 8.
    pub fn memory_reduction_factor(&self) -> f64 {
        32.0 / f64::from(self.bits_per_param())
    }

    /// The level of a C code (`QUANT_LEVEL_FP32` = 0, FP16 = 1, BF16 = 2, INT8 = 3, INT4 = 4), or
    /// `None` for any other value.
    pub fn from_code(code: i32) -> Option<Self> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::all().get(i).copied())
    }

    /// The C code of this level (the inverse of [`from_code`](Self::from_code)).
    pub fn code(&self) -> i32 {
        match self {
            Self::Fp32 => 0,
            Self::Fp16 => 1,
            Self::Bf16 => 2,
            Self::Int8 => 3,
            Self::Int4 => 4,
        }
    }

    /// The display name as a static C string ("FP32", "FP16", "BF16", "INT8", "INT4").
    pub fn c_name(&self) -> &'static std::ffi::CStr {
        match self {
            Self::Fp32 => c"FP32",
            Self::Fp16 => c"FP16",
            Self::Bf16 => c"BF16",
            Self::Int8 => c"INT8",
            Self::Int4 => c"INT4",
        }
    }

    /// The level with `bits` per parameter: 32 -> FP32, 16 -> FP16 (not BF16),
    /// 8 -> INT8, 4 -> INT4; any other width is `InvalidArgument`.
    pub fn from_bits(bits: u32) -> Result<Self> {
        match bits {
            32 => Ok(Self::Fp32),
            16 => Ok(Self::Fp16),
            8 => Ok(Self::Int8),
            4 => Ok(Self::Int4),
            other => Err(QuantError::invalid(format!(
                "no quantization level has {other} bits per parameter (known: 32, 16, 8, 4)"
            ))),
        }
    }
}

impl TryFrom<u32> for QuantizationLevel {
    type Error = QuantError;

    /// See [`QuantizationLevel::from_bits`].
    fn try_from(bits: u32) -> Result<Self> {
        Self::from_bits(bits)
    }
}

impl fmt::Display for QuantizationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The C names are ASCII literals, so the conversion cannot fail.
        f.write_str(self.c_name().to_str().unwrap_or("?"))
    }
}
