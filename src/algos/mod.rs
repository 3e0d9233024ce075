//! Calibration-based algorithms: GPTQ, AWQ and SmoothQuant, as pure functions over slices, and the
//! options that tune them.
//!
//! - [`gptq`]: Frantar et al. (2022), the reference `fasterquant` with lazy block updates.
//! - [`awq`]: Lin et al. (2023), llm-awq's `auto_scale` and `auto_clip`.
//! - [`smoothquant`]: Xiao et al. (2022), the migration scales and the W8A8 helpers (per-token INT8
//!   activations, an INT8 matrix product with i32 accumulation).
//!
//! Each takes row-major `rows x cols` f32 weights (`rows` = output features) and the statistics of a
//! [`crate::calib::Calibration`], and returns codes, scales, zero points (and `g_idx` / input scales).
use crate::calib::Calibration;
use crate::error::{QuantError, Result};
use crate::kernels::kbit::pack_row;
use crate::method::QuantMethod;
use crate::weight::QuantizedWeight;

pub mod awq;
mod factor;
pub mod gptq;
pub(crate) mod parallel;
pub(crate) mod qparams;
pub mod smoothquant;

/// Optional knobs of the calibration-based methods (`quant_options` in C). `Default` gives the
/// published defaults. The setters validate their value and leave the options unchanged on error;
/// [`QuantOptions::validate`] checks a value built field by field.
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
    /// Worker threads; 0 means all cores. Default 1: the library starts no thread unless asked.
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
            threads: 1,
        }
    }
}

impl QuantOptions {
    /// Checks every field: `damp_percent` finite in (0, 1), `block_size > 0`, `sample_tokens > 0`,
    /// `threads <= QUANT_MAX_THREADS`.
    pub fn validate(&self) -> Result<()> {
        check_damp(self.damp_percent)?;
        check_threads(self.threads)?;
        check_positive("block_size", self.block_size)?;
        check_positive("sample_tokens", self.sample_tokens)?;
        Ok(())
    }

    /// GPTQ act-order on or off.
    pub fn set_act_order(&mut self, on: bool) {
        self.act_order = on;
    }

    /// GPTQ damping fraction: finite and in (0, 1), else `InvalidArgument` (options unchanged).
    pub fn set_damp_percent(&mut self, value: f64) -> Result<()> {
        check_damp(value)?;
        self.damp_percent = value;
        Ok(())
    }

    /// GPTQ lazy-update block size: > 0, else `InvalidArgument` (options unchanged).
    pub fn set_block_size(&mut self, value: usize) -> Result<()> {
        check_positive("block_size", value)?;
        self.block_size = value;
        Ok(())
    }

    /// Symmetric codes on or off.
    pub fn set_symmetric(&mut self, on: bool) {
        self.symmetric = on;
    }

    /// GPTQ static groups on or off.
    pub fn set_static_groups(&mut self, on: bool) {
        self.static_groups = on;
    }

    /// GPTQ MSE scale search on or off.
    pub fn set_mse_search(&mut self, on: bool) {
        self.mse_search = on;
    }

    /// Tokens a calibration keeps for AWQ: > 0, else `InvalidArgument` (options unchanged).
    pub fn set_sample_tokens(&mut self, value: usize) -> Result<()> {
        check_positive("sample_tokens", value)?;
        self.sample_tokens = value;
        Ok(())
    }

    /// Worker threads, 0 = all cores; at most `QUANT_MAX_THREADS` (1024), else `InvalidArgument`
    /// (options unchanged).
    pub fn set_threads(&mut self, value: usize) -> Result<()> {
        check_threads(value)?;
        self.threads = value;
        Ok(())
    }

    /// The number of worker threads to use: `threads`, or every available core when it is 0.
    pub fn effective_threads(&self) -> usize {
        parallel::resolve_threads(self.threads)
    }
}

/// AWQ, SmoothQuant or GPTQ of the matrices `ws` (`ws[i]` is `rows[i] x cols`, already checked by the
/// caller: same count, valid shapes, exact lengths) with the statistics `calib` of their shared input
/// (present, of width `cols`, with tokens). AWQ and SmoothQuant choose one `s` for all the matrices;
/// GPTQ quantizes each one with the calibration's Hessian. All or nothing.
pub(crate) fn quantize_calibrated(
    method: &QuantMethod,
    options: &QuantOptions,
    ws: &[&[f32]],
    rows: &[usize],
    cols: usize,
    calib: &Calibration,
) -> Result<Vec<QuantizedWeight>> {
    options.validate()?;
    let pairs: Vec<(&[f32], usize)> = ws.iter().copied().zip(rows.iter().copied()).collect();
    let mut out = Vec::new();
    out.try_reserve_exact(ws.len())
        .map_err(|_| QuantError::OutOfMemory("quantized weights".into()))?;
    match *method {
        QuantMethod::Gptq { group_size, bits } => {
            let params = gptq::GptqParams::new(bits, group_size, options);
            for &(w, r) in &pairs {
                let res = gptq::quantize_calibrated(w, r, cols, calib, &params)?;
                let mut q = QuantizedWeight::alloc(method, r, cols)?;
                pack_codes(&res.codes, bits, cols, &mut q);
                q.scales = res.scales;
                q.zero_points = Some(res.zeros);
                q.g_idx = res.g_idx;
                out.push(q);
            }
        }
        QuantMethod::Awq { group_size, bits } => {
            let n = calib.sample_len().min(options.sample_tokens);
            let params = awq::AwqParams {
                bits,
                group_size,
                symmetric: options.symmetric,
                clip: true,
                threads: options.threads,
            };
            let res = awq::quantize_group(
                &pairs,
                cols,
                &calib.abs_mean(),
                &calib.sample()[..n * cols],
                n,
                &params,
            )?;
            for m in res.matrices {
                let mut q = QuantizedWeight::alloc(method, m.rows, cols)?;
                pack_codes(&m.codes, bits, cols, &mut q);
                q.scales = m.scales;
                q.zero_points = Some(m.zeros);
                q.input_scales = Some(res.s.clone());
                out.push(q);
            }
        }
        QuantMethod::SmoothQuant { alpha, group_size } => {
            let res =
                smoothquant::quantize_group(&pairs, cols, calib.abs_max(), alpha, group_size)?;
            for m in res.matrices {
                let mut q = QuantizedWeight::alloc(method, m.rows, cols)?;
                for (d, &c) in q.data.iter_mut().zip(&m.codes) {
                    *d = c as u8;
                }
                q.scales = m.scales;
                q.input_scales = Some(res.s.clone());
                out.push(q);
            }
        }
        _ => {
            return Err(QuantError::Internal(format!(
                "{method} is not a calibration-based method"
            )))
        }
    }
    for q in &out {
        q.check().map_err(|e| {
            QuantError::Numerical(format!("{method} produced an unusable result: {e}"))
        })?;
    }
    Ok(out)
}

/// Packs unpacked row-major codes into `q.data`, row by row.
fn pack_codes(codes: &[u8], bits: u32, cols: usize, q: &mut QuantizedWeight) {
    let rb = q.row_bytes();
    for (row, dst) in codes.chunks_exact(cols).zip(q.data.chunks_exact_mut(rb)) {
        pack_row(row, bits, dst);
    }
}

fn check_damp(value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(QuantError::invalid(format!(
            "damp_percent is {value}: it must be finite and in (0, 1)"
        )))
    }
}

/// A thread count: 0 (all cores) to `QUANT_MAX_THREADS`, the rule of `quant_set_threads` too.
fn check_threads(value: usize) -> Result<()> {
    crate::kernels::par::check(value)
}

fn check_positive(what: &str, value: usize) -> Result<()> {
    if value == 0 {
        Err(QuantError::invalid(format!("{what} must be > 0")))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_reject_bad_values_and_leave_the_options_unchanged() {
        let mut o = QuantOptions::default();
        assert!(o.validate().is_ok());
        for bad in [0.0, -0.1, 1.0, 2.0, f64::NAN, f64::INFINITY] {
            assert!(o.set_damp_percent(bad).is_err());
        }
        assert!(o.set_block_size(0).is_err());
        assert!(o.set_sample_tokens(0).is_err());
        assert!(o
            .set_threads(crate::kernels::par::QUANT_MAX_THREADS + 1)
            .is_err());
        assert_eq!(o, QuantOptions::default());
        o.set_damp_percent(0.1).unwrap();
        o.set_block_size(32).unwrap();
        o.set_sample_tokens(64).unwrap();
        o.set_threads(3).unwrap();
        assert_eq!(
            (o.damp_percent, o.block_size, o.sample_tokens, o.threads),
            (0.1, 32, 64, 3)
        );
        assert_eq!(o.effective_threads(), 3);
        let bad = QuantOptions {
            block_size: 0,
            ..QuantOptions::default()
        };
        assert!(bad.validate().is_err());
    }
}
