//! GPTQ checkpoints (AutoGPTQ `checkpoint_format "gptq"`, GPTQModel `"gptq_v2"`): a Hugging Face
//! folder ([`super::checkpoint`]) whose linear layers are packed by the library
//! (`quant::pack::pack_gptq`: `qweight`, `qzeros`, f16 `scales`, `g_idx`), with config.json's
//! `quantization_config` (and quantize_config.json). The codes are the library's round-to-nearest
//! INT4 with integer zero points (asymmetric, `sym: false`), the GPTQ layout's own convention, or,
//! with a calibration text, the library's GPTQ through the model ([`crate::packed_calib::gptq`]).
use std::path::Path;

use anyhow::Result;
use quant::algos::QuantOptions;
use quant::method::QuantMethod;
use quant::pack::{gptq_sizes, pack_gptq};
use quant::weight::{self, QuantizedWeight};

use crate::calibrate::{summary_table, CalibOptions};
use crate::model::GgufFile;
use crate::packed_calib;
use serde_json::json;

use crate::write::checkpoint::{self, le_bytes_i32, le_bytes_u16, Packer};
use crate::write::safetensors::StTensor;

const BITS: usize = 4;

struct Gptq {
    version: u32,
    group_size: usize,
    /// What chose the codes, for `meta.quantizer`.
    quantizer: String,
}

impl Packer for Gptq {
    fn name(&self) -> &'static str {
        "GPTQ"
    }

    fn tensors(&self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<StTensor>, String> {
        let group_size = self.group_size;
        if cols * BITS % 32 != 0 || rows * BITS % 32 != 0 {
            return Err("GPTQ needs rows and columns multiple of 8".into());
        }
        if group_size == 0 || cols % group_size != 0 {
            return Err(format!(
                "GPTQ needs the {cols} input columns to be a multiple of the group size \
                 {group_size}"
            ));
        }
        let groups = cols / group_size;
        Ok(vec![
            StTensor {
                name: format!("{prefix}.qweight"),
                dtype: "I32".into(),
                shape: vec![cols * BITS / 32, rows],
                n_bytes: cols * BITS / 32 * rows * 4,
            },
            StTensor {
                name: format!("{prefix}.qzeros"),
                dtype: "I32".into(),
                shape: vec![groups, rows * BITS / 32],
                n_bytes: groups * rows * BITS / 32 * 4,
            },
            StTensor {
                name: format!("{prefix}.scales"),
                dtype: "F16".into(),
                shape: vec![groups, rows],
                n_bytes: groups * rows * 2,
            },
            StTensor {
                name: format!("{prefix}.g_idx"),
                dtype: "I32".into(),
                shape: vec![cols],
                n_bytes: cols * 4,
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
        let s = gptq_sizes(q)?;
        let (mut qw, mut qz, mut sc, mut gi) = (
            vec![0i32; s.qweight],
            vec![0i32; s.qzeros],
            vec![0u16; s.scales],
            vec![0i32; s.g_idx],
        );
        pack_gptq(q, self.version, &mut qw, &mut qz, &mut sc, &mut gi)?;
        Ok(vec![
            le_bytes_i32(&qw),
            le_bytes_i32(&qz),
            le_bytes_u16(&sc),
            le_bytes_i32(&gi),
        ])
    }

    fn config(&self) -> serde_json::Value {
        json!({
            "quant_method": "gptq",
            "bits": BITS,
            "group_size": self.group_size,
            "desc_act": false,
            "sym": false,
            "true_sequential": true,
            "static_groups": false,
            "damp_percent": 0.01,
            "checkpoint_format": if self.version == 1 { "gptq" } else { "gptq_v2" },
            "meta": {"quantizer": [self.quantizer]},
        })
    }

    fn extra_files(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![("quantize_config.json", self.config())]
    }
}

/// Writes `input` (a GGUF Llama model) as a 4-bit GPTQ folder `out`; `version` 1 (`gptq`) or 2
/// (`gptq_v2`); with `calib`, GPTQ through the model on its text (its summary printed unless
/// `quiet`), else round-to-nearest.
pub fn run(
    input: &Path,
    out: &Path,
    version: u32,
    group_size: usize,
    calib: Option<&CalibOptions>,
    quiet: bool,
) -> Result<()> {
    let Some(opts) = calib else {
        return checkpoint::write(
            input,
            out,
            &Gptq {
                version,
                group_size,
                quantizer: "quant (round-to-nearest INT4)".into(),
            },
            None,
        );
    };
    let packer = Gptq {
        version,
        group_size,
        quantizer: format!(
            "quant (GPTQ INT4, {} x {} calibration tokens)",
            opts.samples, opts.seq_len
        ),
    };
    let g = GgufFile::open(input)?;
    checkpoint::check(&g, input, out, &packer)?;
    let prepared = packed_calib::gptq(&g, opts, group_size, quiet)?;
    if !quiet {
        eprint!("{}", summary_table(&prepared.summary));
    }
    checkpoint::write(input, out, &packer, Some(&prepared))
}
