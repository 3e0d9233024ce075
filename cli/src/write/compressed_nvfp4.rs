//! compressed-tensors checkpoints, `format "nvfp4-pack-quantized"` (the NVFP4A16 scheme): a Hugging
//! Face folder ([`super::checkpoint`]) whose linear layers hold, for an `out x in` weight:
//! - `weight_packed` u8 `[out, in / 2]`: E2M1 codes, two a byte, the even column in the low nibble;
//! - `weight_scale` FP8 E4M3FN (safetensors dtype `F8_E4M3`) `[out, in / 16]`: one block scale per
//!   16 columns;
//! - `weight_global_scale` f32 `[1]`: the global scale as compressed-tensors stores it, `2688 /
//!   amax(weight)`, the inverse of a dequantization factor.
//!
//! Loaders compute `w = e2m1(code) * (f32(scale) / global_scale)` (compressed-tensors rounds that
//! f32 product to bfloat16, whatever the model's dtype: `unpack_fp4_from_uint8`). The library's NVFP4
//! (`quant::kernels::mx::nvfp4`) is compressed-tensors' quantizer bit for bit and lays its codes and
//! scales out the same way, so its outputs are stored as they are. No zero point: NVFP4 is symmetric.
//!
//! The scheme is NVFP4A16, weights only: NVFP4's FP4 input activations need a calibrated
//! `input_global_scale` per layer, which this writer has no data for. Layout and fields followed:
//! compressed-tensors 0.20.1 (`compressors/nvfp4/base.py`, `compressors/nvfp4/helpers.py`
//! `pack_fp4_to_uint8`, `quantization/quant_scheme.py` `NVFP4A16`,
//! `quantization/lifecycle/initialize.py` for the global scale's shape and dtype).
use std::path::Path;

use anyhow::Result;
use quant::kernels::mx::nvfp4::{
    nvfp4_packed_size, nvfp4_quantize, nvfp4_scale_count, QUANT_NVFP4_BLOCK,
};
use serde_json::json;

use crate::write::checkpoint::{self, Packer};
use crate::write::safetensors::StTensor;

/// The NVFP4 weight scheme of an nvfp4-pack-quantized folder.
pub struct Nvfp4Compressed;

impl Packer for Nvfp4Compressed {
    fn name(&self) -> &'static str {
        "compressed-tensors NVFP4"
    }

    fn tensors(&self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<StTensor>, String> {
        // compressed-tensors reshapes each row into whole groups of 16 (`_process_group`).
        if cols % QUANT_NVFP4_BLOCK != 0 {
            return Err(format!(
                "columns must be a multiple of {QUANT_NVFP4_BLOCK} (NVFP4 block)"
            ));
        }
        Ok(vec![
            StTensor {
                name: format!("{prefix}.weight_packed"),
                dtype: "U8".into(),
                shape: vec![rows, cols / 2],
                n_bytes: nvfp4_packed_size(rows, cols),
            },
            StTensor {
                name: format!("{prefix}.weight_scale"),
                dtype: "F8_E4M3".into(),
                shape: vec![rows, cols / QUANT_NVFP4_BLOCK],
                n_bytes: nvfp4_scale_count(rows, cols),
            },
            StTensor {
                name: format!("{prefix}.weight_global_scale"),
                dtype: "F32".into(),
                shape: vec![1],
                n_bytes: 4,
            },
        ])
    }

    fn pack(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<Vec<u8>>> {
        let mut codes = vec![0u8; nvfp4_packed_size(rows, cols)];
        let mut scales = vec![0u8; nvfp4_scale_count(rows, cols)];
        let global = nvfp4_quantize(x, rows, cols, &mut codes, &mut scales)?;
        Ok(vec![codes, scales, global.to_le_bytes().to_vec()])
    }

    fn config(&self) -> serde_json::Value {
        super::compressed::quantization_config(
            "nvfp4-pack-quantized",
            // The fields compressed-tensors 0.20.1 writes for NVFP4A16 (`QuantizationArgs.model_dump`).
            json!({
                "num_bits": 4,
                "type": "float",
                "symmetric": true,
                "group_size": QUANT_NVFP4_BLOCK,
                "strategy": "tensor_group",
                "dynamic": false,
                "scale_dtype": "torch.float8_e4m3fn",
            }),
            serde_json::Value::Null,
        )
    }
}

/// Writes `input` (a GGUF Llama model) as a compressed-tensors nvfp4-pack-quantized folder `out`.
pub fn run(input: &Path, out: &Path) -> Result<()> {
    checkpoint::write(input, out, &Nvfp4Compressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_that_are_not_whole_blocks_are_refused() {
        let e = Nvfp4Compressed.tensors("m", 32, 40).unwrap_err();
        assert!(e.contains("multiple of 16"), "{e}");
        let t = Nvfp4Compressed.tensors("m", 32, 48).unwrap();
        let shapes: Vec<_> = t
            .iter()
            .map(|t| (t.name.as_str(), t.shape.clone()))
            .collect();
        assert_eq!(
            shapes,
            [
                ("m.weight_packed", vec![32, 24]),
                ("m.weight_scale", vec![32, 3]),
                ("m.weight_global_scale", vec![1]),
            ]
        );
    }
}
