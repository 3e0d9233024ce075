//! compressed-tensors checkpoints, `format "pack-quantized"` (W4A16, W8A16): a Hugging Face folder
//! ([`super::checkpoint`]) whose linear layers hold, for an `out x in` weight with `b`-bit codes and
//! `pf = 32 / b` codes a word:
//! - `weight_packed` int32 `[out, in / pf]`: code `j` of a row in bits `[b (j % pf), b (j % pf) + b)`
//!   of word `j / pf` (least significant first), each code stored unsigned, the signed code plus
//!   `2^(b-1)`;
//! - `weight_scale` f16 `[out, in / group]` (`[out, 1]` per channel);
//! - `weight_zero_point` (asymmetric only) int32 `[out / pf, in / group]`: the signed zero points
//!   plus `2^(b-1)`, packed the same way along the output dimension;
//! - `weight_shape` int64 `[2]` = `[out, in]`.
//!
//! Loaders compute `w = (q - zp) * scale` on the signed values. The library's asymmetric codes `u`
//! in `0..2^b` with zero `z` are stored as they are (signed `u - 2^(b-1)`, zero `z - 2^(b-1)`,
//! so `q - zp = u - z`); its symmetric INT8 codes `q` in `-127..=127` (scale absmax / 127) as `q + 128`.
//! The library has no symmetric 4-bit kernel, so W4A16 is asymmetric here.
//!
//! Followed: compressed-tensors `compressors/quantized_compressors/pack_quantized.py`
//! (`pack_to_int32`, `unpack_from_int32`, `compression_param_info`) at commit
//! 0199c6e7f96f7ac581138849ed8c7140f9842fe1 of neuralmagic/compressed-tensors. Its zero-point
//! packing pads along the wrong axis when `out` is not a multiple of `pf`, so such rows are refused.
//! compressed-tensors 0.20.1 loads the folders to the tests' decoding bit for bit
//! (`tests/compressed.rs`, `scripts/check_compressed.py`); its dense packing is the same layout for
//! 4 and 8 bits.
use std::path::Path;

use anyhow::{bail, Result};
use half::f16;
use quant::kernels::int8::int8_quantize;
use quant::kernels::kbit::{kbit_packed_size, kbit_quantize, packed_row_bytes, unpack_row};
use quant::kernels::Shape;
use serde_json::json;

use crate::write::checkpoint::{self, le_bytes_i32, le_bytes_u16, Packer};
use crate::write::safetensors::StTensor;

/// The weight scheme of a pack-quantized folder (`config_groups.group_0.weights`).
pub struct Compressed {
    /// 4 or 8.
    pub bits: u32,
    /// Input columns per group; 0 for one scale per output channel.
    pub group_size: usize,
    /// No zero points (the INT8 kernel); else the k-bit kernel's integer zero points.
    pub symmetric: bool,
}

impl Compressed {
    fn per_word(&self) -> usize {
        32 / self.bits as usize
    }
    fn groups(&self, cols: usize) -> usize {
        cols.checked_div(self.group_size).unwrap_or(1)
    }
}

/// `values` (`n x len`, row-major, each below `2^bits`) packed `32 / bits` a word along the rows
/// (`along_rows`: word `[k][c]` holds rows `k * pf ..`) or along each row (word `[r][k]`).
fn pack_words(values: &[u8], n: usize, len: usize, bits: u32, along_rows: bool) -> Vec<i32> {
    let pf = 32 / bits as usize;
    let mut out = vec![0u32; n * len / pf];
    for r in 0..n {
        for c in 0..len {
            let v = u32::from(values[r * len + c])
                << (bits as usize * if along_rows { r % pf } else { c % pf });
            if along_rows {
                out[(r / pf) * len + c] |= v;
            } else {
                out[r * (len / pf) + c / pf] |= v;
            }
        }
    }
    out.into_iter().map(|w| w as i32).collect()
}

impl Packer for Compressed {
    fn name(&self) -> &'static str {
        "compressed-tensors"
    }

    fn tensors(&self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<StTensor>, String> {
        let pf = self.per_word();
        if cols % pf != 0 {
            return Err(format!(
                "columns must be a multiple of {pf} (codes per word)"
            ));
        }
        if self.group_size != 0 && cols % self.group_size != 0 {
            return Err(format!(
                "columns must be a multiple of the group size {}",
                self.group_size
            ));
        }
        if !self.symmetric && rows % pf != 0 {
            return Err(format!(
                "rows must be a multiple of {pf} (zero points per word)"
            ));
        }
        let groups = self.groups(cols);
        let mut t = vec![
            StTensor {
                name: format!("{prefix}.weight_packed"),
                dtype: "I32".into(),
                shape: vec![rows, cols / pf],
                n_bytes: rows * cols / pf * 4,
            },
            StTensor {
                name: format!("{prefix}.weight_scale"),
                dtype: "F16".into(),
                shape: vec![rows, groups],
                n_bytes: rows * groups * 2,
            },
        ];
        if !self.symmetric {
            t.push(StTensor {
                name: format!("{prefix}.weight_zero_point"),
                dtype: "I32".into(),
                shape: vec![rows / pf, groups],
                n_bytes: rows / pf * groups * 4,
            });
        }
        t.push(StTensor {
            name: format!("{prefix}.weight_shape"),
            dtype: "I64".into(),
            shape: vec![2],
            n_bytes: 16,
        });
        Ok(t)
    }

    fn pack(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<Vec<u8>>> {
        let shape = Shape::new(rows, cols, self.group_size)?;
        let groups = self.groups(cols);
        let mut scales = vec![0f32; shape.n_groups()];
        let mut out = vec![];
        let zeros = if self.symmetric {
            // Only the INT8 kernel is symmetric (checked in `run`).
            let mut q = vec![0i8; rows * cols];
            int8_quantize(x, shape, &mut q, &mut scales)?;
            // Signed codes -127..=127 stored plus 2^(8-1): 1..=255, a byte.
            let u: Vec<u8> = q.iter().map(|&v| (i16::from(v) + 128) as u8).collect();
            out.push(le_bytes_i32(&pack_words(&u, rows, cols, self.bits, false)));
            None
        } else {
            let mut packed = vec![0u8; kbit_packed_size(rows, cols, self.bits)];
            let mut zeros = vec![0u8; shape.n_groups()];
            kbit_quantize(x, shape, self.bits, &mut packed, &mut scales, &mut zeros)?;
            let rb = packed_row_bytes(cols, self.bits);
            let mut codes = vec![0u8; rows * cols];
            for (src, dst) in packed.chunks_exact(rb).zip(codes.chunks_exact_mut(cols)) {
                unpack_row(src, self.bits, dst);
            }
            out.push(le_bytes_i32(&pack_words(
                &codes, rows, cols, self.bits, false,
            )));
            Some(zeros)
        };
        if let Some((i, s)) = scales
            .iter()
            .enumerate()
            .find(|(_, s)| !f16::from_f32(**s).is_finite())
        {
            bail!("scale {i} ({s}) is beyond the f16 range of weight_scale");
        }
        let sc: Vec<u16> = scales.iter().map(|s| f16::from_f32(*s).to_bits()).collect();
        out.push(le_bytes_u16(&sc));
        if let Some(z) = zeros {
            out.push(le_bytes_i32(&pack_words(&z, rows, groups, self.bits, true)));
        }
        out.push(
            [rows as i64, cols as i64]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        Ok(out)
    }

    fn config(&self) -> serde_json::Value {
        let channel = self.group_size == 0;
        quantization_config(
            "pack-quantized",
            json!({
                "num_bits": self.bits,
                "type": "int",
                "symmetric": self.symmetric,
                "strategy": if channel { "channel" } else { "group" },
                "group_size": if channel { None } else { Some(self.group_size) },
                "dynamic": false,
                "actorder": null,
                "block_structure": null,
                "observer": "minmax",
                "observer_kwargs": {},
            }),
            serde_json::Value::Null,
        )
    }
}

/// config.json's `quantization_config` of a compressed-tensors folder in `format`: one config group
/// targeting every `Linear` with the `weights` (and `input_activations`) arguments, lm_head left as
/// it is.
pub(crate) fn quantization_config(
    format: &str,
    weights: serde_json::Value,
    input_activations: serde_json::Value,
) -> serde_json::Value {
    json!({
        "quant_method": "compressed-tensors",
        "format": format,
        "quantization_status": "compressed",
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": weights,
                "input_activations": input_activations,
                "output_activations": null,
            },
        },
        "ignore": ["lm_head"],
        "kv_cache_scheme": null,
        "global_compression_ratio": null,
    })
}

/// Writes `input` (a GGUF Llama model) as a compressed-tensors pack-quantized folder `out`.
pub fn run(input: &Path, out: &Path, c: &Compressed) -> Result<()> {
    if c.bits != 4 && c.bits != 8 {
        bail!(
            "--bits {}: pack-quantized folders are written with 4 or 8 bits",
            c.bits
        );
    }
    if c.symmetric && c.bits != 8 {
        bail!(
            "--symmetric needs --bits 8: the library's only symmetric integer kernel is INT8 \
             (its 4-bit codes have zero points)"
        );
    }
    checkpoint::write(input, out, c, None)
}
