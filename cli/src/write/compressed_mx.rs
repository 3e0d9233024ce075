//! compressed-tensors checkpoints of the microscaling family: `format "mxfp4-pack-quantized"`,
//! `"mxfp6-pack-quantized"`, `"mxfp8-quantized"` (the MXFP4A16, MXFP6A16 and MXFP8A16 schemes) and
//! `"nvfp4-pack-quantized"` (NVFP4A16). A Hugging Face folder ([`super::checkpoint`]) whose linear
//! layers hold, for an `out x in` weight, its codes in blocks along each row and one scale a block:
//!
//! - MXFP4: `weight_packed` u8 `[out, in / 2]`, E2M1 codes two a byte, the even column in the low
//!   nibble; `weight_scale` u8 `[out, in / 32]`, E8M0;
//! - MXFP6: `weight_packed` u8 `[out, 3 in / 4]`, E2M3 codes four in three bytes little-endian
//!   (`c0 | c1 << 6 | c2 << 12 | c3 << 18`); `weight_scale` u8 `[out, in / 32]`, E8M0;
//! - MXFP8: `weight` FP8 E4M3FN (safetensors dtype `F8_E4M3`) `[out, in]`; `weight_scale` u8
//!   `[out, in / 32]`, E8M0;
//! - NVFP4: `weight_packed` as MXFP4; `weight_scale` FP8 E4M3FN `[out, in / 16]`;
//!   `weight_global_scale` f32 `[1]`.
//!
//! An E8M0 scale byte is the biased exponent: the scale is `2^(byte - 127)`. NVFP4's global scale is
//! stored as compressed-tensors stores it, `2688 / amax(weight)`, the inverse of a dequantization
//! factor. No zero points: every format here is symmetric.
//!
//! Loaders compute `w = value(code) * 2^(scale - 127)` (MX) or `w = e2m1(code) * (f32(scale) /
//! global_scale)` (NVFP4), in bfloat16 whatever the model's dtype: compressed-tensors decodes the E8M0
//! scales to bfloat16 (`decompress_mx_scale`) and the packed codes to bfloat16
//! (`unpack_fp4_from_uint8`, `unpack_fp6_from_uint8`). The MX products are exact in bfloat16; NVFP4's
//! f32 product is rounded to it.
//!
//! The codes and scales are the library's, stored as they are: `quant::kernels::mx::mx_quantize`
//! (OCP MX, the specification's floor scale rule `floor(log2(amax)) - emax`) with E2M1, E2M3 or E4M3
//! elements, and `quant::kernels::mx::nvfp4` (compressed-tensors' NVFP4 quantizer bit for bit), whose
//! layouts are compressed-tensors'. compressed-tensors' own MX quantizer first rounds the block
//! maximum to a power of two (`round_to_power_2`), so from the same weights it would pick twice the
//! scale for some blocks: the folder holds the library's codes, which compressed-tensors decodes to
//! the library's values. compressed-tensors' MXFP8 is E4M3 only (`QuantizationArgs.pytorch_dtype`)
//! and its MXFP6 E2M3 only (`compressors/mxfp6/helpers.py`), so the library's E5M2 and E3M2 elements
//! have no format here; nor has MXINT8 (no compressor decodes integer codes under E8M0 scales).
//!
//! Weights only (the A16 schemes): MX input activations are dynamic, an engine's choice rather than
//! the checkpoint's, and NVFP4's FP4 input activations need a calibrated `input_global_scale` per
//! layer, which this writer has no data for. Layout and fields followed: compressed-tensors 0.20.1
//! (`compressors/mxfp4/base.py`, `compressors/mxfp6/`, `compressors/mxfp8/base.py`,
//! `compressors/nvfp4/`, `compressors/mx_utils.py`, `quantization/quant_scheme.py`,
//! `quantization/lifecycle/initialize.py` for the global scale's shape and dtype).
use std::path::Path;

use anyhow::Result;
use quant::kernels::mx::nvfp4::{nvfp4_quantize, QUANT_NVFP4_BLOCK};
use quant::kernels::mx::{mx_quantize, MxElem, QUANT_MX_BLOCK};
use serde_json::json;

use crate::write::checkpoint::{self, Packer};
use crate::write::safetensors::StTensor;

/// A weight scheme of the microscaling family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MxCompressed {
    /// mxfp4-pack-quantized: E2M1 codes, E8M0 scales per 32 columns.
    Mxfp4,
    /// mxfp6-pack-quantized: E2M3 codes, E8M0 scales per 32 columns.
    Mxfp6,
    /// mxfp8-quantized: E4M3 codes, E8M0 scales per 32 columns.
    Mxfp8,
    /// nvfp4-pack-quantized: E2M1 codes, E4M3 scales per 16 columns, an f32 global scale.
    Nvfp4,
}

impl MxCompressed {
    /// The element type of the codes (NVFP4's are E2M1, as MXFP4's).
    pub fn elem(self) -> MxElem {
        match self {
            Self::Mxfp4 | Self::Nvfp4 => MxElem::Fp4E2m1,
            Self::Mxfp6 => MxElem::Fp6E2m3,
            Self::Mxfp8 => MxElem::Fp8E4m3,
        }
    }

    /// Columns per scale.
    pub fn block(self) -> usize {
        match self {
            Self::Nvfp4 => QUANT_NVFP4_BLOCK,
            _ => QUANT_MX_BLOCK,
        }
    }

    /// The codes and their blocks, for messages ("E2M1 codes in blocks of 32").
    pub fn layout(self) -> String {
        let elem = match self.elem() {
            MxElem::Fp6E2m3 => "E2M3",
            MxElem::Fp8E4m3 => "E4M3",
            _ => "E2M1",
        };
        format!("{elem} codes in blocks of {}", self.block())
    }

    /// compressed-tensors' `format`.
    pub fn format(self) -> &'static str {
        match self {
            Self::Mxfp4 => "mxfp4-pack-quantized",
            Self::Mxfp6 => "mxfp6-pack-quantized",
            Self::Mxfp8 => "mxfp8-quantized",
            Self::Nvfp4 => "nvfp4-pack-quantized",
        }
    }

    /// The name and safetensors dtype of the codes: packed bytes, or MXFP8's E4M3 `weight` as
    /// compressed-tensors' FP8 formats store it.
    fn codes(self) -> (&'static str, &'static str) {
        match self {
            Self::Mxfp8 => ("weight", "F8_E4M3"),
            _ => ("weight_packed", "U8"),
        }
    }
}

impl Packer for MxCompressed {
    fn name(&self) -> &'static str {
        match self {
            Self::Mxfp4 => "compressed-tensors MXFP4",
            Self::Mxfp6 => "compressed-tensors MXFP6",
            Self::Mxfp8 => "compressed-tensors MXFP8",
            Self::Nvfp4 => "compressed-tensors NVFP4",
        }
    }

    fn tensors(&self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<StTensor>, String> {
        // compressed-tensors reshapes each row into whole groups (`_process_group`).
        let block = self.block();
        if cols % block != 0 {
            let kind = if *self == Self::Nvfp4 { "NVFP4" } else { "MX" };
            return Err(format!(
                "columns must be a multiple of {block} ({kind} block)"
            ));
        }
        // Whole blocks of 32 or 16 are whole bytes of codes at 4, 6 or 8 bits.
        let row_bytes = cols * self.elem().bits() as usize / 8;
        let (codes, codes_dtype) = self.codes();
        let scale_dtype = if *self == Self::Nvfp4 {
            "F8_E4M3"
        } else {
            "U8"
        };
        let mut t = vec![
            StTensor {
                name: format!("{prefix}.{codes}"),
                dtype: codes_dtype.into(),
                shape: vec![rows, row_bytes],
                n_bytes: rows * row_bytes,
            },
            StTensor {
                name: format!("{prefix}.weight_scale"),
                dtype: scale_dtype.into(),
                shape: vec![rows, cols / block],
                n_bytes: rows * (cols / block),
            },
        ];
        if *self == Self::Nvfp4 {
            t.push(StTensor {
                name: format!("{prefix}.weight_global_scale"),
                dtype: "F32".into(),
                shape: vec![1],
                n_bytes: 4,
            });
        }
        Ok(t)
    }

    fn pack(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<Vec<u8>>> {
        let mut codes = vec![0u8; rows * (cols * self.elem().bits() as usize / 8)];
        let mut scales = vec![0u8; rows * (cols / self.block())];
        if *self == Self::Nvfp4 {
            let global = nvfp4_quantize(x, rows, cols, &mut codes, &mut scales)?;
            return Ok(vec![codes, scales, global.to_le_bytes().to_vec()]);
        }
        mx_quantize(self.elem(), x, rows, cols, &mut codes, &mut scales)?;
        Ok(vec![codes, scales])
    }

    fn config(&self) -> serde_json::Value {
        let nv = *self == Self::Nvfp4;
        // The fields compressed-tensors 0.20.1 writes for MXFP4A16, MXFP6A16, MXFP8A16 and NVFP4A16
        // (`QuantizationArgs.model_dump`).
        super::compressed::quantization_config(
            self.format(),
            json!({
                "num_bits": self.elem().bits(),
                "type": "float",
                "symmetric": true,
                "group_size": self.block(),
                "strategy": if nv { "tensor_group" } else { "group" },
                "dynamic": false,
                "scale_dtype": if nv { "torch.float8_e4m3fn" } else { "torch.uint8" },
            }),
            serde_json::Value::Null,
        )
    }
}

/// Writes `input` (a GGUF Llama model) as a compressed-tensors folder `out` in `format`.
pub fn run(input: &Path, out: &Path, format: MxCompressed) -> Result<()> {
    checkpoint::write(input, out, &format, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quant::kernels::mx::nvfp4::{nvfp4_packed_size, nvfp4_scale_count};
    use quant::kernels::mx::{mx_packed_size, mx_scale_count};

    fn shapes(f: MxCompressed, cols: usize) -> Vec<(String, String, Vec<usize>)> {
        f.tensors("m", 32, cols)
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.dtype, t.shape))
            .collect()
    }

    fn s(name: &str, dtype: &str, shape: &[usize]) -> (String, String, Vec<usize>) {
        (name.into(), dtype.into(), shape.to_vec())
    }

    #[test]
    fn widths_that_are_not_whole_blocks_are_refused() {
        for (f, bad) in [
            (MxCompressed::Mxfp4, "multiple of 32 (MX block)"),
            (MxCompressed::Mxfp6, "multiple of 32 (MX block)"),
            (MxCompressed::Mxfp8, "multiple of 32 (MX block)"),
            (MxCompressed::Nvfp4, "multiple of 16 (NVFP4 block)"),
        ] {
            let e = f.tensors("m", 32, 40).unwrap_err();
            assert!(e.contains(bad), "{f:?}: {e}");
        }
        // 48 columns: 3 NVFP4 blocks, 1.5 MX blocks.
        assert!(MxCompressed::Mxfp6.tensors("m", 32, 48).is_err());
        assert_eq!(
            shapes(MxCompressed::Nvfp4, 48),
            [
                s("m.weight_packed", "U8", &[32, 24]),
                s("m.weight_scale", "F8_E4M3", &[32, 3]),
                s("m.weight_global_scale", "F32", &[1]),
            ]
        );
        assert_eq!(
            shapes(MxCompressed::Mxfp4, 96),
            [
                s("m.weight_packed", "U8", &[32, 48]),
                s("m.weight_scale", "U8", &[32, 3]),
            ]
        );
        assert_eq!(
            shapes(MxCompressed::Mxfp6, 96),
            [
                s("m.weight_packed", "U8", &[32, 72]),
                s("m.weight_scale", "U8", &[32, 3]),
            ]
        );
        assert_eq!(
            shapes(MxCompressed::Mxfp8, 96),
            [
                s("m.weight", "F8_E4M3", &[32, 96]),
                s("m.weight_scale", "U8", &[32, 3]),
            ]
        );
    }

    #[test]
    fn configs_are_compressed_tensors_a16_schemes() {
        // `QuantizationArgs.model_dump()` of compressed-tensors 0.20.1's MXFP4A16, MXFP6A16,
        // MXFP8A16 and NVFP4A16 weights.
        for (f, bits, group, strategy, scale) in [
            (MxCompressed::Mxfp4, 4, 32, "group", "torch.uint8"),
            (MxCompressed::Mxfp6, 6, 32, "group", "torch.uint8"),
            (MxCompressed::Mxfp8, 8, 32, "group", "torch.uint8"),
            (
                MxCompressed::Nvfp4,
                4,
                16,
                "tensor_group",
                "torch.float8_e4m3fn",
            ),
        ] {
            let c = f.config();
            assert_eq!(c["format"], f.format());
            let g = &c["config_groups"]["group_0"];
            assert_eq!(
                g["weights"],
                json!({"num_bits": bits, "type": "float", "symmetric": true, "group_size": group,
                       "strategy": strategy, "dynamic": false, "scale_dtype": scale}),
                "{f:?}"
            );
            assert!(g["input_activations"].is_null(), "{f:?}");
        }
    }

    #[test]
    fn tensor_sizes_are_the_kernels_output_sizes() {
        let (rows, cols) = (8, 64);
        let x: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect();
        for f in [
            MxCompressed::Mxfp4,
            MxCompressed::Mxfp6,
            MxCompressed::Mxfp8,
            MxCompressed::Nvfp4,
        ] {
            let t = f.tensors("m", rows, cols).unwrap();
            let b = f.pack(&x, rows, cols).unwrap();
            let sizes: Vec<usize> = b.iter().map(Vec::len).collect();
            let want: Vec<usize> = t.iter().map(|t| t.n_bytes).collect();
            assert_eq!(sizes, want, "{f:?}");
            let (codes, scales) = if f == MxCompressed::Nvfp4 {
                (nvfp4_packed_size(rows, cols), nvfp4_scale_count(rows, cols))
            } else {
                (
                    mx_packed_size(f.elem(), rows, cols),
                    mx_scale_count(rows, cols),
                )
            };
            assert_eq!(&sizes[..2], [codes, scales], "{f:?}");
        }
    }
}
