//! compressed-tensors checkpoints, `format "float-quantized"` with 128 x 128 blocks (the FP8_BLOCK
//! scheme, DeepSeek-V3's layout): a Hugging Face folder ([`super::checkpoint`]) whose linear layers
//! hold, for an `out x in` weight:
//! - `weight` FP8 E4M3FN (safetensors dtype `F8_E4M3`) `[out, in]`: the library's block codes
//!   (`quant::kernels::fp8::fp8_block_quantize`: per block scale = amax / 448, round to nearest even);
//! - `weight_scale` f16 `[ceil(out / 128), ceil(in / 128)]`: the library's `scale_inv` (the factor
//!   the codes are multiplied by; compressed-tensors names it `weight_scale`, DeepSeek-V3
//!   `weight_scale_inv`), one per block, row-major over the blocks.
//!
//! Loaders compute `w = f16(code) * scale` in the scale's dtype, which compressed-tensors registers
//! as the weight's (f16, the folder's `torch_dtype`), as for the per-channel FP8 folders
//! ([`super::compressed_fp8`]): the codes were computed with the f32 scale, the stored one is within
//! half an f16 step (2^-11 relative) of it.
//!
//! Blocks at the bottom and right edges may be partial: compressed-tensors pads the weight to whole
//! blocks (`maybe_pad_tensor_for_block_quant`) and only warns when the input width is not a multiple
//! of 128, as these folders are written; vLLM's block-FP8 kernels need whole blocks across the input
//! width (a multiple of 128), which models such as SmolLM2-135M (width 576) lack. The config
//! declares FP8_BLOCK's input activations (FP8 per 128 channels of a token, dynamic: computed by the
//! engine at run time, no calibration), as compressed-tensors writes the preset. Layout and fields
//! followed: compressed-tensors 0.20.1 (`compressors/naive_quantized/base.py`,
//! `quantization/quant_scheme.py` `FP8_BLOCK`, `quantization/lifecycle/initialize.py` for the
//! scale's shape, `quantization/lifecycle/forward_helpers.py` `_process_block`).
use std::path::Path;

use anyhow::{bail, Result};
use half::f16;
use quant::kernels::fp8::{fp8_block_quantize, BlockShape, QUANT_FP8_BLOCK_DEEPSEEK as BLOCK};
use quant::kernels::source::Src;
use serde_json::json;

use crate::write::checkpoint::{self, le_bytes_u16, Packer};
use crate::write::safetensors::StTensor;

/// The largest E4M3 magnitude: each block's absmax is coded as +-448.
const E4M3_MAX: f32 = 448.0;

/// The FP8 128 x 128 block weight scheme of a float-quantized folder.
pub struct Fp8BlockCompressed;

impl Packer for Fp8BlockCompressed {
    fn name(&self) -> &'static str {
        "compressed-tensors FP8 block"
    }

    fn tensors(&self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<StTensor>, String> {
        let (down, across) = (rows.div_ceil(BLOCK), cols.div_ceil(BLOCK));
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
                shape: vec![down, across],
                n_bytes: down * across * 2,
            },
        ])
    }

    fn pack(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<Vec<u8>>> {
        let shape = BlockShape::deepseek(rows, cols)?;
        let mut codes = vec![0u8; rows * cols];
        let mut scale_inv = vec![0f32; shape.n_blocks()];
        fp8_block_quantize(Src::F32(x), shape, &mut codes, &mut scale_inv)?;
        let mut stored = Vec::with_capacity(scale_inv.len());
        for (i, s) in scale_inv.iter().enumerate() {
            let h = f16::from_f32(*s);
            // The loader multiplies in f16: the largest code times the scale must stay finite.
            if !f16::from_f32(E4M3_MAX * h.to_f32()).is_finite() {
                bail!(
                    "block {i} (scale {s}): weights up to {} are beyond the f16 range that the \
                     loader dequantizes to",
                    E4M3_MAX * s
                );
            }
            stored.push(h.to_bits());
        }
        Ok(vec![codes, le_bytes_u16(&stored)])
    }

    fn config(&self) -> serde_json::Value {
        // The fields compressed-tensors 0.20.1 writes for FP8_BLOCK (`QuantizationArgs.model_dump`).
        super::compressed::quantization_config(
            "float-quantized",
            json!({
                "num_bits": 8,
                "type": "float",
                "symmetric": true,
                "group_size": null,
                "strategy": "block",
                "block_structure": [BLOCK, BLOCK],
                "dynamic": false,
            }),
            json!({
                "num_bits": 8,
                "type": "float",
                "symmetric": true,
                "group_size": BLOCK,
                "strategy": "group",
                "dynamic": true,
            }),
        )
    }
}

/// Writes `input` (a GGUF Llama model) as a compressed-tensors float-quantized folder `out` with
/// 128 x 128 block scales.
pub fn run(input: &Path, out: &Path) -> Result<()> {
    checkpoint::write(input, out, &Fp8BlockCompressed, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_edge_blocks_have_scales_of_their_own() {
        let t = Fp8BlockCompressed.tensors("m", 576, 1536).unwrap();
        assert_eq!(t[0].shape, [576, 1536]);
        assert_eq!(t[1].shape, [5, 12]);
        let x: Vec<f32> = (0..200 * 130).map(|i| (i % 97) as f32 - 48.0).collect();
        let b = Fp8BlockCompressed.pack(&x, 200, 130).unwrap();
        assert_eq!((b[0].len(), b[1].len()), (200 * 130, 2 * 2 * 2));
    }
}
