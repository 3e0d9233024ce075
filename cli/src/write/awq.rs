//! AWQ GEMM checkpoints (AutoAWQ `quant_method "awq"`, `version "gemm"`): a Hugging Face folder
//! ([`super::checkpoint`]) whose linear layers are packed by the library (`quant::pack::pack_awq`:
//! `qweight` int32 `[in, out / 8]` and `qzeros` int32 `[in / group, out / 8]` in AutoAWQ's nibble
//! order, f16 `scales` `[in / group, out]`), with config.json's `quantization_config`. The codes are
//! the library's round-to-nearest INT4 with integer zero points and no input-channel scaling, or,
//! with a calibration text, the library's AWQ through the model with its scales folded into the
//! norms and ffn_up ([`crate::packed_calib::awq`]): the folder holds the folded layers, as
//! AutoAWQ's do.
use std::path::Path;

use anyhow::Result;
use quant::algos::QuantOptions;
use quant::method::QuantMethod;
use quant::pack::{awq_sizes, pack_awq};
use quant::weight::{self, QuantizedWeight};

use crate::calibrate::{summary_table, CalibOptions};
use crate::model::GgufFile;
use crate::packed_calib;
use serde_json::json;

use crate::write::checkpoint::{self, le_bytes_i32, le_bytes_u16, Packer};
use crate::write::safetensors::StTensor;

struct Awq {
    group_size: usize,
}

impl Packer for Awq {
    fn name(&self) -> &'static str {
        "AWQ"
    }

    fn tensors(&self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<StTensor>, String> {
        let group_size = self.group_size;
        if rows % 8 != 0 {
            return Err("AWQ needs rows a multiple of 8".into());
        }
        if group_size == 0 || cols % group_size != 0 {
            return Err(format!(
                "AWQ needs the {cols} input columns to be a multiple of the group size \
                 {group_size}"
            ));
        }
        let groups = cols / group_size;
        Ok(vec![
            StTensor {
                name: format!("{prefix}.qweight"),
                dtype: "I32".into(),
                shape: vec![cols, rows / 8],
                n_bytes: cols * rows / 8 * 4,
            },
            StTensor {
                name: format!("{prefix}.qzeros"),
                dtype: "I32".into(),
                shape: vec![groups, rows / 8],
                n_bytes: groups * rows / 8 * 4,
            },
            StTensor {
                name: format!("{prefix}.scales"),
                dtype: "F16".into(),
                shape: vec![groups, rows],
                n_bytes: groups * rows * 2,
            },
        ])
    }

    fn pack(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<Vec<u8>>> {
        let method = QuantMethod::Int4Asymmetric {
            group_size: self.group_size,
        };
        let q = weight::quantize(&method, &QuantOptions::default(), x, rows, cols, None)?;
        self.pack_weight(&q)
    }

    fn pack_weight(&self, q: &QuantizedWeight) -> Result<Vec<Vec<u8>>> {
        let s = awq_sizes(q)?;
        let (mut qw, mut qz, mut sc) = (
            vec![0i32; s.qweight],
            vec![0i32; s.qzeros],
            vec![0u16; s.scales],
        );
        pack_awq(q, &mut qw, &mut qz, &mut sc)?;
        Ok(vec![
            le_bytes_i32(&qw),
            le_bytes_i32(&qz),
            le_bytes_u16(&sc),
        ])
    }

    fn config(&self) -> serde_json::Value {
        json!({
            "quant_method": "awq",
            "bits": 4,
            "group_size": self.group_size,
            "zero_point": true,
            "version": "gemm",
            "modules_to_not_convert": null,
        })
    }
}

/// Writes `input` (a GGUF Llama model) as a 4-bit AWQ GEMM folder `out`: with `calib`, AWQ through
/// the model on its text (its summary printed unless `quiet`), else round-to-nearest.
pub fn run(
    input: &Path,
    out: &Path,
    group_size: usize,
    calib: Option<&CalibOptions>,
    quiet: bool,
) -> Result<()> {
    let packer = Awq { group_size };
    let Some(opts) = calib else {
        return checkpoint::write(input, out, &packer, None);
    };
    let g = GgufFile::open(input)?;
    checkpoint::check(&g, input, out, &packer)?;
    let prepared = packed_calib::awq(&g, opts, group_size, quiet)?;
    if !quiet {
        eprint!("{}", summary_table(&prepared.summary));
    }
    checkpoint::write(input, out, &packer, Some(&prepared))
}
