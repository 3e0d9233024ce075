//! Calibration-based algorithms: GPTQ, AWQ and SmoothQuant, as pure functions over slices, and the
//! options that tune them.

/// Optional knobs of the calibration-based methods (`quant_options` in C). `Default` gives the
/// published defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantOptions {
    /// GPTQ: process columns by decreasing Hessian diagonal (keeps `g_idx`).
    pub act_order: bool,
    /// GPTQ: damping as a fraction of the mean Hessian diagonal.
    pub damp_percent: f64,
    /// GPTQ: columns per lazy-update block.
    pub block_size: usize,
    /// GPTQ/AWQ: symmetric codes (zero point at the middle) instead of asymmetric.
    pub symmetric: bool,
    /// GPTQ with act-order: compute every group's scale up front from the original weights.
    pub static_groups: bool,
    /// GPTQ: search a shrink grid for each group's scale (the reference's `mse` option).
    pub mse_search: bool,
    /// Tokens kept by a calibration for AWQ's loss and clip search.
    pub sample_tokens: usize,
    /// Worker threads; 0 means all cores.
    pub threads: usize,
}

impl Default for QuantOptions {
    fn default() -> Self {
        Self {
            act_order: false,
            damp_percent: 0.01,
            block_size: 128,
            symmetric: false,
            static_groups: false,
            mse_search: false,
            sample_tokens: 512,
            threads: 0,
        }
    }
}
