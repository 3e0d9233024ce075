//! compressed-tensors checkpoints, `format "float-quantized"` (llm-compressor's FP8_DYNAMIC): a
//! Hugging Face folder ([`super::checkpoint`]) whose linear layers hold, for an `out x in` weight:
//! - `weight` FP8 E4M3FN (safetensors dtype `F8_E4M3`) `[out, in]`: the library's scaled E4M3 codes
//!   (`quant::kernels::fp8::fp8_e4m3_quantize`: scale = absmax / 448, codes rounded to nearest even,
//!   saturating);
//! - `weight_scale` f16 `[out, 1]` (strategy `channel`, one scale per output row) or `[1]` (strategy
//!   `tensor`, one scale for the whole weight).
//!
//! Loaders compute `w = f16(code) * scale` in the scale's dtype. The scale is stored in the model's
//! dtype (f16, the folder's `torch_dtype`), as compressed-tensors registers it (`initialize.py`: the
//! scale takes the weight's dtype); the codes were computed with the f32 scale, so the stored scale
//! differs from it by at most half an f16 step (2^-11 relative), well inside the FP8 step (2^-4).
//! No zero point: FP8 is symmetric.
//!
//! compressed-tensors names a scheme `float-quantized` only when it also quantizes the input
//! activations (`FloatQuantizationCompressor.can_compress`; without them it infers
//! `naive-quantized`, which stores the same tensors). The config therefore declares FP8_DYNAMIC's
//! input activations, FP8 per token with dynamic scales, which engines compute at run time and which
//! need no calibration. Layout and fields followed: compressed-tensors 0.20.1
//! (`compressors/naive_quantized/base.py`, `quantization/quant_scheme.py` `FP8_DYNAMIC`,
//! `quantization/lifecycle/initialize.py` for the scale's shape and dtype).
use std::path::Path;

use anyhow::{bail, Result};
use half::f16;
use quant::kernels::fp8::fp8_e4m3_quantize;
use quant::kernels::Shape;
use serde_json::json;

use crate::write::checkpoint::{self, le_bytes_u16, Packer};
use crate::write::safetensors::StTensor;

/// The largest E4M3 magnitude: the absmax of each scale's elements is coded as +-448.
const E4M3_MAX: f32 = 448.0;

/// The weight scheme of a float-quantized folder (`config_groups.group_0.weights`).
pub struct Fp8Compressed {
    /// One scale for the whole weight (strategy `tensor`); else one per output row (`channel`).
    pub per_tensor: bool,
}

impl Packer for Fp8Compressed {
    fn name(&self) -> &'static str {
        "compressed-tensors FP8"
    }

    fn tensors(&self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<StTensor>, String> {
        let scale_shape = if self.per_tensor {
            vec![1]
        } else {
            vec![rows, 1]
        };
        let n_scales = if self.per_tensor { 1 } else { rows };
        Ok(vec![
            StTensor {
                name: format!("{prefix}.weight"),
                dtype: "F8_E4M3".into(),
                shape: vec![rows, cols],
                n_bytes: rows * cols,
            },
            StTensor {
                name: format!("{prefix}.weight_scale"),
                dtype: "F16".into(),
                shape: scale_shape,
                n_bytes: n_scales * 2,
            },
        ])
    }

    fn pack(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<Vec<u8>>> {
        // Per tensor: the whole weight as one row, so that one group (one scale) covers it.
        let shape = if self.per_tensor {
            Shape::new(1, rows * cols, 0)?
        } else {
            Shape::new(rows, cols, 0)?
        };
        let mut codes = vec![0u8; rows * cols];
        let mut scales = vec![0f32; shape.n_groups()];
        fp8_e4m3_quantize(x, shape, &mut codes, &mut scales)?;
        let mut stored = Vec::with_capacity(scales.len());
        for (i, s) in scales.iter().enumerate() {
            let h = f16::from_f32(*s);
            // The loader multiplies in f16: the largest code times the scale must stay finite.
            if !f16::from_f32(E4M3_MAX * h.to_f32()).is_finite() {
                bail!(
                    "scale {i} ({s}): weights up to {} are beyond the f16 range that the \
                     loader dequantizes to",
                    E4M3_MAX * s
                );
            }
            stored.push(h.to_bits());
        }
        Ok(vec![codes, le_bytes_u16(&stored)])
    }

    fn config(&self) -> serde_json::Value {
        super::compressed::quantization_config(
            "float-quantized",
            json!({
                "num_bits": 8,
                "type": "float",
                "symmetric": true,
                "strategy": if self.per_tensor { "tensor" } else { "channel" },
                "group_size": null,
                "dynamic": false,
                "actorder": null,
                "block_structure": null,
                "observer": "minmax",
                "observer_kwargs": {},
            }),
            json!({
                "num_bits": 8,
                "type": "float",
                "symmetric": true,
                "strategy": "token",
                "group_size": null,
                "dynamic": true,
                "actorder": null,
                "block_structure": null,
                "observer": null,
                "observer_kwargs": {},
            }),
        )
    }
}

/// Writes `input` (a GGUF Llama model) as a compressed-tensors float-quantized folder `out`.
pub fn run(input: &Path, out: &Path, c: &Fp8Compressed) -> Result<()> {
    checkpoint::write(input, out, c, None)
}
