//! compressed-tensors checkpoints, `format "mxfp4-pack-quantized"` (the MXFP4A16 scheme): a Hugging
//! Face folder ([`super::checkpoint`]) whose linear layers hold, for an `out x in` weight:
//! - `weight_packed` u8 `[out, in / 2]`: E2M1 codes, two a byte, the even column in the low nibble;
//! - `weight_scale` u8 `[out, in / 32]`: one E8M0 scale per 32 columns, the biased exponent
//!   (`2^(byte - 127)`).
//!
//! Loaders compute `w = e2m1(code) * 2^(scale - 127)` (compressed-tensors in bfloat16, where the
//! product is exact). The codes and scales are the library's OCP MX
//! quantization (`quant::kernels::mx::mx_quantize` with E2M1 elements), laid out as
//! compressed-tensors stores them, and stored as they are. Its scale rule is the specification's
//! (`floor(log2(amax)) - 2`); compressed-tensors' own quantizer first rounds the block maximum to
//! a power of two, so from the same weights it would pick twice the scale for some blocks: the
//! folder holds the library's codes, which compressed-tensors decodes to the library's values.
//!
//! The scheme is MXFP4A16, weights only (MXFP4's dynamic FP4 input activations are an engine's
//! choice, not the checkpoint's). Layout and fields followed: compressed-tensors 0.20.1
//! (`compressors/mxfp4/base.py`, `compressors/mx_utils.py`, `compressors/nvfp4/helpers.py`
//! `pack_fp4_to_uint8`, `quantization/quant_scheme.py` `MXFP4A16`).
use std::path::Path;

use anyhow::Result;
use quant::kernels::mx::{mx_packed_size, mx_quantize, mx_scale_count, MxElem, QUANT_MX_BLOCK};
use serde_json::json;

use crate::write::checkpoint::{self, Packer};
use crate::write::safetensors::StTensor;

/// The MXFP4 weight scheme of an mxfp4-pack-quantized folder.
pub struct Mxfp4Compressed;

impl Packer for Mxfp4Compressed {
    fn name(&self) -> &'static str {
        "compressed-tensors MXFP4"
    }

    fn tensors(&self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<StTensor>, String> {
        // compressed-tensors reshapes each row into whole groups of 32 (`_process_group`).
        if cols % QUANT_MX_BLOCK != 0 {
            return Err(format!(
                "columns must be a multiple of {QUANT_MX_BLOCK} (MX block)"
            ));
        }
        Ok(vec![
            StTensor {
                name: format!("{prefix}.weight_packed"),
                dtype: "U8".into(),
                shape: vec![rows, cols / 2],
                n_bytes: mx_packed_size(MxElem::Fp4E2m1, rows, cols),
            },
            StTensor {
                name: format!("{prefix}.weight_scale"),
                dtype: "U8".into(),
                shape: vec![rows, cols / QUANT_MX_BLOCK],
                n_bytes: mx_scale_count(rows, cols),
            },
        ])
    }

    fn pack(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<Vec<u8>>> {
        let mut codes = vec![0u8; mx_packed_size(MxElem::Fp4E2m1, rows, cols)];
        let mut scales = vec![0u8; mx_scale_count(rows, cols)];
        mx_quantize(MxElem::Fp4E2m1, x, rows, cols, &mut codes, &mut scales)?;
        Ok(vec![codes, scales])
    }

    fn config(&self) -> serde_json::Value {
        // The fields compressed-tensors 0.20.1 writes for MXFP4A16 (`QuantizationArgs.model_dump`).
        super::compressed::quantization_config(
            "mxfp4-pack-quantized",
            json!({
                "num_bits": 4,
                "type": "float",
                "symmetric": true,
                "group_size": QUANT_MX_BLOCK,
                "strategy": "group",
                "dynamic": false,
                "scale_dtype": "torch.uint8",
            }),
            serde_json::Value::Null,
        )
    }
}

/// Writes `input` (a GGUF Llama model) as a compressed-tensors mxfp4-pack-quantized folder `out`.
pub fn run(input: &Path, out: &Path) -> Result<()> {
    checkpoint::write(input, out, &Mxfp4Compressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_that_are_not_whole_blocks_are_refused() {
        let e = Mxfp4Compressed.tensors("m", 32, 48).unwrap_err();
        assert!(e.contains("multiple of 32"), "{e}");
        let t = Mxfp4Compressed.tensors("m", 32, 96).unwrap();
        let shapes: Vec<_> = t
            .iter()
            .map(|t| (t.name.as_str(), t.shape.clone()))
            .collect();
        assert_eq!(
            shapes,
            [
                ("m.weight_packed", vec![32, 48]),
                ("m.weight_scale", vec![32, 3])
            ]
        );
    }
}
