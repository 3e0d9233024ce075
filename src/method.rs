//! Quantization methods, their validation and sizes, and the per-layer configuration.
//!
//! [`QuantMethod`] names one way of quantizing a weight matrix; [`QuantConfig`] picks a method per layer.
//! Every method carries its group size, validation rejects a NaN alpha and out-of-range AWQ bits, sizes
//! are computed with overflow checks, and [`QuantMethod::effective_bits`] counts the storage of scales and zero points that
//! the nominal [`QuantMethod::bits_per_weight`] ignores.
use std::collections::HashMap;
use std::fmt;

use crate::error::{QuantError, Result};

/// One way of quantizing a weight matrix.
///
/// `group_size` follows the library's convention everywhere: 0 means one scale per row (per output
/// channel), `k > 0` one scale per `k` consecutive columns of a row (the last group of a row may be
/// shorter, and `k >= cols` is the same as one group per row). AWQ and GPTQ require `group_size > 0`.
///
/// ```
/// use quant::method::QuantMethod;
///
/// let m = QuantMethod::Gptq { group_size: 128, bits: 4 };
/// assert!(m.validate().is_ok());
/// assert_eq!(m.to_string(), "GPTQ(4bit, group=128)");
/// assert_eq!(m.bits_per_weight(), 4);
/// assert_eq!(m.compression_ratio(), 4.0);
/// // 4 bits per weight, plus one f32 scale and one 4-bit zero point per group of 128.
/// assert_eq!(m.effective_bits(384).unwrap(), 4.0 + 36.0 / 128.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuantMethod {
    /// Round-to-nearest INT8, symmetric: scale = absmax / 127, codes in [-127, 127].
    Int8Symmetric { group_size: usize },
    /// Round-to-nearest INT4, asymmetric with an integer zero point in [0, 15] (the GPTQ/AWQ convention).
    Int4Asymmetric { group_size: usize },
    /// Scaled FP8 E4M3: scale = absmax / 448, codes are saturating float8_e4m3fn.
    Fp8E4m3 { group_size: usize },
    /// AWQ (Lin et al. 2023): per-input-channel scales from activations, then asymmetric `bits`-bit
    /// group quantization. `bits` is 4 in the published setting; 3 is also supported.
    Awq { group_size: usize, bits: u32 },
    /// SmoothQuant (Xiao et al. 2022): migration strength `alpha` in [0, 1], then INT8 symmetric with
    /// `group_size` (0, per output channel, in the published setting).
    SmoothQuant { alpha: f64, group_size: usize },
    /// GPTQ (Frantar et al. 2022): Hessian-aware `bits`-bit group quantization.
    Gptq { group_size: usize, bits: u32 },
}

/// Smallest and largest bit width accepted for AWQ and GPTQ.
const MIN_BITS: u32 = 1;
const MAX_BITS: u32 = 8;

/// Storage of one scale, in bits (scales are f32).
const SCALE_BITS: f64 = 32.0;

impl fmt::Display for QuantMethod {
    /// The display names: "INT8-Symmetric", "INT4-Asymmetric", "FP8-E4M3", "AWQ(group=128)",
    /// "SmoothQuant(α=0.50)", "GPTQ(4bit, group=128)". The group size of the round-to-nearest kinds and
    /// of SmoothQuant is not shown. AWQ at its published 4 bits has no bits in its name; at any other
    /// width the bits are shown like GPTQ's: "AWQ(3bit, group=128)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int8Symmetric { .. } => write!(f, "INT8-Symmetric"),
            Self::Int4Asymmetric { .. } => write!(f, "INT4-Asymmetric"),
            Self::Fp8E4m3 { .. } => write!(f, "FP8-E4M3"),
            Self::Awq {
                group_size,
                bits: 4,
            } => write!(f, "AWQ(group={group_size})"),
            Self::Awq { group_size, bits } => write!(f, "AWQ({bits}bit, group={group_size})"),
            Self::SmoothQuant { alpha, .. } => write!(f, "SmoothQuant(α={alpha:.2})"),
            Self::Gptq { group_size, bits } => write!(f, "GPTQ({bits}bit, group={group_size})"),
        }
    }
}

impl QuantMethod {
    /// The group size (0 = one group per row).
    pub fn group_size(&self) -> usize {
        match *self {
            Self::Int8Symmetric { group_size }
            | Self::Int4Asymmetric { group_size }
            | Self::Fp8E4m3 { group_size }
            | Self::Awq { group_size, .. }
            | Self::SmoothQuant { group_size, .. }
            | Self::Gptq { group_size, .. } => group_size,
        }
    }

    /// True for the methods that need activation statistics (AWQ, SmoothQuant, GPTQ).
    pub fn needs_calibration(&self) -> bool {
        matches!(
            self,
            Self::Awq { .. } | Self::SmoothQuant { .. } | Self::Gptq { .. }
        )
    }

    /// True when the codes are unsigned with an integer zero point per group (INT4, AWQ, GPTQ).
    pub fn has_zero_points(&self) -> bool {
        matches!(
            self,
            Self::Int4Asymmetric { .. } | Self::Awq { .. } | Self::Gptq { .. }
        )
    }

    /// Nominal bits per weight: 8, 4, 8, AWQ's bits, 8, GPTQ's bits. It ignores the
    /// storage of scales and zero points; see [`effective_bits`](Self::effective_bits) for that.
    pub fn bits_per_weight(&self) -> u32 {
        match *self {
            Self::Int8Symmetric { .. } => 8,
            Self::Int4Asymmetric { .. } => 4,
            Self::Fp8E4m3 { .. } => 8,
            Self::Awq { bits, .. } => bits,
            Self::SmoothQuant { .. } => 8,
            Self::Gptq { bits, .. } => bits,
        }
    }

    /// Compression versus FP16: `16 / bits_per_weight()`. A method with 0 bits (an
    /// invalid AWQ or GPTQ) gives 0 rather than infinity.
    pub fn compression_ratio(&self) -> f64 {
        match self.bits_per_weight() {
            0 => 0.0,
            bits => 16.0 / f64::from(bits),
        }
    }

    /// Checks the method's rules, naming the rule that failed in the error (`InvalidArgument`):
    /// AWQ and GPTQ need `group_size > 0` and `bits` in [1, 8]; SmoothQuant needs a finite `alpha` in
    /// [0, 1]. The round-to-nearest kinds accept every group size (0 = per row).
    pub fn validate(&self) -> Result<()> {
        let bits_rule = |name: &str, bits: u32| {
            if (MIN_BITS..=MAX_BITS).contains(&bits) {
                Ok(())
            } else {
                Err(QuantError::invalid(format!(
                    "{name} bits must be in [{MIN_BITS}, {MAX_BITS}] (got {bits})"
                )))
            }
        };
        let group_rule = |name: &str, group_size: usize| {
            if group_size > 0 {
                Ok(())
            } else {
                Err(QuantError::invalid(format!(
                    "{name} group_size must be > 0 (got 0)"
                )))
            }
        };
        match *self {
            Self::Int8Symmetric { .. } | Self::Int4Asymmetric { .. } | Self::Fp8E4m3 { .. } => {
                Ok(())
            }
            Self::Awq { group_size, bits } => {
                group_rule("AWQ", group_size)?;
                bits_rule("AWQ", bits)
            }
            Self::SmoothQuant { alpha, .. } => {
                if alpha.is_finite() && (0.0..=1.0).contains(&alpha) {
                    Ok(())
                } else {
                    Err(QuantError::invalid(format!(
                        "SmoothQuant alpha must be a finite number in [0, 1] (got {alpha})"
                    )))
                }
            }
            Self::Gptq { group_size, bits } => {
                group_rule("GPTQ", group_size)?;
                bits_rule("GPTQ", bits)
            }
        }
    }

    /// Bits of storage per weight of a matrix with `cols` columns, including the per-group scales and
    /// zero points that [`bits_per_weight`](Self::bits_per_weight) ignores.
    ///
    /// Accounting: each row is cut into `ceil(cols / g)` groups, with `g = group_size`, or `cols` when
    /// `group_size` is 0 or larger than `cols`. Each group stores one f32 scale (32 bits) and, for the
    /// asymmetric kinds (INT4, AWQ, GPTQ), one integer zero point of `bits` bits. So
    /// `effective = bits + ceil(cols / g) * (32 + zero_bits) / cols`.
    /// Not counted: the per-input-channel scales of AWQ and SmoothQuant (one per column, folded into the
    /// previous operation by the engine, so they cost no storage in the layer), and GPTQ's act-order
    /// group index (one integer per column, independent of the number of rows).
    ///
    /// Errors: an invalid method (see [`validate`](Self::validate)) or `cols` = 0 (`InvalidArgument`).
    pub fn effective_bits(&self, cols: usize) -> Result<f64> {
        self.validate()?;
        if cols == 0 {
            return Err(QuantError::invalid(
                "effective bits: cols must be > 0".to_string(),
            ));
        }
        let bits = self.bits_per_weight();
        let group = match self.group_size() {
            0 => cols,
            g => g.min(cols),
        };
        let groups_per_row = cols.div_ceil(group);
        let zero_bits = if self.has_zero_points() {
            f64::from(bits)
        } else {
            0.0
        };
        Ok(f64::from(bits) + groups_per_row as f64 * (SCALE_BITS + zero_bits) / cols as f64)
    }

    /// Memory estimate for `num_params` weights: `(fp16_bytes, quant_bytes)` with
    /// `fp16_bytes = num_params * 2` and `quant_bytes = ceil(num_params * bits_per_weight / 8)` (nominal
    /// bits: scales and zero points are not counted).
    ///
    /// Errors (`InvalidArgument`): an invalid method, or a result that does not fit in `usize`.
    pub fn estimate_memory(&self, num_params: usize) -> Result<(usize, usize)> {
        self.validate()?;
        let too_large = || {
            QuantError::invalid(format!(
                "memory estimate of {num_params} parameters does not fit in a size_t"
            ))
        };
        let fp16_bytes = num_params.checked_mul(2).ok_or_else(too_large)?;
        let bits = u128::from(self.bits_per_weight());
        let quant_bytes = (num_params as u128 * bits).div_ceil(8);
        let quant_bytes = usize::try_from(quant_bytes).map_err(|_| too_large())?;
        Ok((fp16_bytes, quant_bytes))
    }
}

/// Calibration tokens per input column that GPTQ is recommended to be fitted on (see
/// [`QuantMethod::recommended_calibration_tokens`]).
const GPTQ_TOKENS_PER_COLUMN: u64 = 16;

/// Calibration tokens recommended for AWQ and SmoothQuant, whatever the layer width.
const ACTIVATION_STATS_TOKENS: u64 = 512;

impl QuantMethod {
    /// How many calibration tokens (rows of the layer's input activations) this method should be fitted
    /// on for a layer with `cols` input columns; fewer make a worse result, not an error.
    ///
    /// - Round-to-nearest (INT8, INT4, FP8): 0, no calibration.
    /// - GPTQ: `16 * cols`. Its Hessian `X^T X` is `cols x cols`; fitted on fewer tokens than a few
    ///   times `cols` it overfits the calibration and loses to round-to-nearest on other inputs
    ///   (measured on 512 columns, 4 bits, groups of 128: 1,024 random tokens gave 1.06-1.16 times
    ///   round-to-nearest's output error on held-out tokens, 8,192 tokens 0.87 times).
    /// - AWQ and SmoothQuant: 512. They use per-channel statistics (mean and max of |x|) and AWQ a
    ///   sample of tokens (`sample_tokens`, 512 by default) for its scale search: the width does not
    ///   change how many tokens they need.
    ///
    /// Errors: `InvalidArgument` when `cols` is 0 or `16 * cols` overflows.
    pub fn recommended_calibration_tokens(&self, cols: usize) -> Result<u64> {
        if cols == 0 {
            return Err(QuantError::invalid(
                "cols is 0: a layer has at least one input column",
            ));
        }
        Ok(match self {
            Self::Int8Symmetric { .. } | Self::Int4Asymmetric { .. } | Self::Fp8E4m3 { .. } => 0,
            Self::Awq { .. } | Self::SmoothQuant { .. } => ACTIVATION_STATS_TOKENS,
            Self::Gptq { .. } => (cols as u64)
                .checked_mul(GPTQ_TOKENS_PER_COLUMN)
                .ok_or_else(|| QuantError::invalid(format!("cols is {cols}: too large")))?,
        })
    }
}

/// A default method plus per-layer overrides by layer name.
///
/// ```
/// use quant::method::{QuantConfig, QuantMethod};
///
/// let mut config = QuantConfig::new(QuantMethod::Int8Symmetric { group_size: 0 });
/// config.set_layer_method("lm_head", QuantMethod::Fp8E4m3 { group_size: 0 });
/// assert_eq!(config.method_for_layer("lm_head").to_string(), "FP8-E4M3");
/// assert_eq!(config.method_for_layer("other").to_string(), "INT8-Symmetric");
/// config.set_layer_method("bad", QuantMethod::Awq { group_size: 0, bits: 4 });
/// assert!(config.validate().unwrap_err().to_string().contains("layer 'bad'"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QuantConfig {
    /// The method of every layer without an override.
    pub method: QuantMethod,
    /// Overrides by layer name.
    pub per_layer_config: HashMap<String, QuantMethod>,
}

impl QuantConfig {
    /// A configuration that uses `method` for every layer.
    pub fn new(method: QuantMethod) -> Self {
        Self {
            method,
            per_layer_config: HashMap::new(),
        }
    }

    /// Uses `method` for the layer `layer_name` (replacing an earlier override). The method is not
    /// validated here: [`validate`](Self::validate) reports a bad one with its layer name.
    pub fn set_layer_method(&mut self, layer_name: impl Into<String>, method: QuantMethod) {
        self.per_layer_config.insert(layer_name.into(), method);
    }

    /// Like [`set_layer_method`](Self::set_layer_method), but reports a failed allocation as
    /// `OutOfMemory` instead of aborting (the C ABI uses this one).
    pub fn try_set_layer_method(&mut self, layer_name: &str, method: QuantMethod) -> Result<()> {
        if let Some(slot) = self.per_layer_config.get_mut(layer_name) {
            *slot = method;
            return Ok(());
        }
        let oom = |_| QuantError::OutOfMemory(format!("layer name '{layer_name}'"));
        let mut name = String::new();
        name.try_reserve_exact(layer_name.len()).map_err(oom)?;
        name.push_str(layer_name);
        self.per_layer_config.try_reserve(1).map_err(oom)?;
        self.per_layer_config.insert(name, method);
        Ok(())
    }

    /// The method of `layer_name`: its override, or the default method.
    pub fn method_for_layer(&self, layer_name: &str) -> &QuantMethod {
        self.per_layer_config
            .get(layer_name)
            .unwrap_or(&self.method)
    }

    /// Validates the default method and every override. The error names what is bad: "default method:
    /// ..." or "layer 'NAME': ...". The default is checked first, then the layers in sorted name order,
    /// so the same configuration always reports the same layer.
    pub fn validate(&self) -> Result<()> {
        self.method
            .validate()
            .map_err(|e| QuantError::invalid(format!("default method: {e}")))?;
        let mut names: Vec<&String> = self.per_layer_config.keys().collect();
        names.sort();
        for name in names {
            self.per_layer_config[name]
                .validate()
                .map_err(|e| QuantError::invalid(format!("layer '{name}': {e}")))?;
        }
        Ok(())
    }
}
