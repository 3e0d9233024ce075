//! Reader of a Hugging Face Llama folder for the forward pass: config.json, safetensors shard(s)
//! (`model.safetensors.index.json` when sharded), and linear layers stored either plain (f32, f16,
//! bf16) or packed 4-bit with zero points as the folder's `quantization_config` says:
//! - GPTQ (`quant_method "gptq"`, `checkpoint_format` `gptq` or `gptq_v2`): `qweight` int32
//!   `[in / 8, out]`, `qzeros` int32 `[G, out / 8]` (v1 stores the zero minus one), f16 `scales`
//!   `[G, out]`, `g_idx` int32 `[in]` (the group of each input);
//! - AWQ GEMM (`quant_method "awq"`, `version "gemm"`): `qweight` int32 `[in, out / 8]` and `qzeros`
//!   int32 `[G, out / 8]` in AutoAWQ's nibble order, f16 `scales` `[G, out]`;
//! - compressed-tensors `pack-quantized` (4 or 8-bit int, group or channel): `weight_packed` int32
//!   `[out, in / pf]`, `weight_scale` `[out, G]` (f16, bf16 or f32), `weight_zero_point` int32 `[out / pf, G]`
//!   (asymmetric), codes and zero points stored as their signed values plus `2^(b-1)`.
//!
//! Each packed weight is dequantized as the engines' reference paths compute it (AutoGPTQ's torch
//! fallback, AutoAWQ's `dequantize_gemm`, compressed-tensors' `unpack_from_int32` and
//! dequantize): `w[r][j] = scales[g][r] * (q - zero)`, in f32 with the
//! f16 scale widened, `g = g_idx[j]` (GPTQ) or `j / group_size` (AWQ). That is the library's
//! [`quant::weight::QuantizedWeight::dequantize`] of the same codes with f16-rounded scales, bit for
//! bit. Tensors come out with GGUF names and q/k rows in GGUF order, as the forward pass reads them.
//! Every error names the folder (or file) and the tensor.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use memmap2::Mmap;
use safetensors::Dtype;
use serde_json::Value as Json;

use super::hf::{self, LlamaConfig};
use super::safetensors::{map_shard, read_json, shard_files};
use super::{dequantize, DType, Tensor};
use crate::arch::llama::Config;

/// How a folder stores its linear layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain f32 / f16 / bf16 `weight` tensors.
    Plain,
    /// GPTQ: `version` 1 (`gptq`, zeros stored minus one) or 2 (`gptq_v2`); `group_size` 0 for one
    /// group per row (config.json's -1).
    Gptq { version: u32, group_size: usize },
    /// AWQ GEMM.
    Awq { group_size: usize },
    /// compressed-tensors `pack-quantized`: `bits` 4 or 8, `group_size` 0 for one scale per output
    /// channel, zero points unless `symmetric`.
    Compressed {
        bits: u32,
        group_size: usize,
        symmetric: bool,
    },
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheme::Plain => write!(f, "plain"),
            Scheme::Gptq {
                version,
                group_size,
            } => write!(
                f,
                "GPTQ 4-bit ({}, group {group_size})",
                if *version == 1 { "gptq" } else { "gptq_v2" }
            ),
            Scheme::Awq { group_size } => write!(f, "AWQ GEMM 4-bit (group {group_size})"),
            Scheme::Compressed {
                bits,
                group_size,
                symmetric,
            } => write!(
                f,
                "compressed-tensors pack-quantized {bits}-bit ({}, {})",
                if *group_size == 0 {
                    "per channel".to_string()
                } else {
                    format!("group {group_size}")
                },
                if *symmetric {
                    "symmetric"
                } else {
                    "zero points"
                }
            ),
        }
    }
}

/// AutoAWQ's nibble order: nibble `i` of a word holds output `8c + AWQ_ORDER[i]`.
const AWQ_ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A Hugging Face Llama folder, read for the forward pass.
pub struct HfFolder {
    path: PathBuf,
    pub config: LlamaConfig,
    pub scheme: Scheme,
    shards: Vec<(PathBuf, Mmap)>,
    entries: HashMap<String, Entry>,
}

/// The scheme that config.json's `quantization_config` names.
fn scheme(cfg: &Json, file: &Path) -> Result<Scheme> {
    let Some(q) = cfg.get("quantization_config") else {
        return Ok(Scheme::Plain);
    };
    let method = q.get("quant_method").and_then(Json::as_str).unwrap_or("");
    let bits = q.get("bits").and_then(Json::as_u64);
    let group = || -> Result<usize> {
        match q.get("group_size").and_then(Json::as_i64) {
            Some(-1) => Ok(0),
            Some(g) if g > 0 => Ok(g as usize),
            other => bail!(
                "{}: quantization_config.group_size is {other:?}: a positive number of inputs, or \
                 -1 for one group per row",
                file.display()
            ),
        }
    };
    let four = |what: &str| -> Result<()> {
        if bits != Some(4) {
            bail!(
                "{}: quantization_config.bits is {bits:?}: {what} folders are read with 4-bit codes",
                file.display()
            );
        }
        Ok(())
    };
    match method {
        "gptq" => {
            four("GPTQ")?;
            let version = match q.get("checkpoint_format").and_then(Json::as_str) {
                None | Some("gptq") => 1,
                Some("gptq_v2") => 2,
                Some(f) => bail!(
                    "{}: quantization_config.checkpoint_format '{f}' is not gptq or gptq_v2",
                    file.display()
                ),
            };
            Ok(Scheme::Gptq {
                version,
                group_size: group()?,
            })
        }
        "awq" => {
            four("AWQ")?;
            let v = q
                .get("version")
                .and_then(Json::as_str)
                .unwrap_or("gemm")
                .to_ascii_lowercase();
            if v != "gemm" {
                bail!(
                    "{}: quantization_config.version '{v}': AWQ folders are read in the GEMM layout",
                    file.display()
                );
            }
            if q.get("zero_point").and_then(Json::as_bool) == Some(false) {
                bail!(
                    "{}: quantization_config.zero_point is false: AWQ GEMM folders are read with \
                     zero points",
                    file.display()
                );
            }
            let g = group()?;
            if g == 0 {
                bail!(
                    "{}: quantization_config.group_size -1: AWQ GEMM needs groups",
                    file.display()
                );
            }
            Ok(Scheme::Awq { group_size: g })
        }
        "compressed-tensors" => {
            let format = q.get("format").and_then(Json::as_str).unwrap_or("");
            if format != "pack-quantized" {
                bail!(
                    "{}: compressed-tensors format '{format}' is not read here (pack-quantized is)",
                    file.display()
                );
            }
            let groups = q
                .get("config_groups")
                .and_then(Json::as_object)
                .filter(|g| g.len() == 1)
                .with_context(|| {
                    format!(
                        "{}: quantization_config.config_groups: one group is read",
                        file.display()
                    )
                })?;
            let w = groups
                .values()
                .next()
                .and_then(|g| g.get("weights"))
                .with_context(|| format!("{}: config group without weights", file.display()))?;
            let bits = w.get("num_bits").and_then(Json::as_u64);
            if !matches!(bits, Some(4 | 8)) || w.get("type").and_then(Json::as_str) != Some("int") {
                bail!(
                    "{}: pack-quantized weights of {bits:?} bits, type {:?}: 4 or 8-bit int are read",
                    file.display(),
                    w.get("type")
                );
            }
            let group_size = match w.get("strategy").and_then(Json::as_str) {
                Some("channel") => 0,
                Some("group") => match w.get("group_size").and_then(Json::as_u64) {
                    Some(g) if g > 0 => g as usize,
                    g => bail!("{}: weights.group_size is {g:?}", file.display()),
                },
                s => bail!(
                    "{}: weights.strategy {s:?}: group and channel are read",
                    file.display()
                ),
            };
            Ok(Scheme::Compressed {
                bits: bits.unwrap_or(4) as u32,
                group_size,
                symmetric: w.get("symmetric").and_then(Json::as_bool).unwrap_or(true),
            })
        }
        m => bail!(
            "{}: quantization_config.quant_method '{m}' is not read here (gptq, awq and \
             compressed-tensors pack-quantized are)",
            file.display()
        ),
    }
}

fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

fn f16s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2)
        .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
        .collect()
}

/// Nibble `k` of `word`.
fn nibble(word: i32, k: usize) -> u32 {
    (word as u32 >> (4 * k)) & 15
}

impl HfFolder {
    pub fn open(dir: &Path) -> Result<HfFolder> {
        let cfg_path = dir.join("config.json");
        let cfg = read_json(&cfg_path)?;
        let config =
            LlamaConfig::from_json(&cfg).with_context(|| format!("{}", cfg_path.display()))?;
        let scheme = scheme(&cfg, &cfg_path)?;
        let files = shard_files(dir)?;
        let mut shards = vec![];
        let mut entries = HashMap::new();
        for (si, f) in files.iter().enumerate() {
            let (map, n, meta) = map_shard(f)?;
            for (name, info) in meta.tensors() {
                let e = Entry {
                    shard: si,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: 8 + n + info.data_offsets.0,
                    end: 8 + n + info.data_offsets.1,
                };
                if entries.insert(name.clone(), e).is_some() {
                    bail!("{}: tensor '{name}' appears in two shards", dir.display());
                }
            }
            shards.push((f.clone(), map));
        }
        Ok(HfFolder {
            path: dir.to_path_buf(),
            config,
            scheme,
            shards,
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The forward pass's hyperparameters.
    pub fn llama_config(&self) -> Config {
        let c = &self.config;
        Config {
            n_layer: c.n_layer as usize,
            n_embd: c.n_embd as usize,
            n_ff: c.n_ff as usize,
            n_head: c.n_head as usize,
            n_head_kv: c.n_head_kv as usize,
            rope_dims: (c.n_embd / c.n_head.max(1)) as usize,
            rope_base: c.rope_theta as f32,
            rms_eps: c.rms_eps as f32,
            n_vocab: c.n_vocab as usize,
        }
    }

    /// The file holding `name` and its bytes, checked to have `dtype` and `shape`.
    fn bytes(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&[u8]> {
        let e = self.entries.get(name).ok_or_else(|| {
            anyhow!(
                "{}: tensor '{name}' is missing ({} folders store it)",
                self.path.display(),
                self.scheme
            )
        })?;
        let file = &self.shards[e.shard].0;
        if e.dtype != dtype || e.shape != shape {
            bail!(
                "{}: tensor '{name}' is {:?} {:?}; a {} folder stores it as {dtype:?} {shape:?}",
                file.display(),
                e.dtype,
                e.shape,
                self.scheme
            );
        }
        Ok(&self.shards[e.shard].1[e.start..e.end])
    }

    /// A float tensor of `shape` (f32, f16 or bf16: compressed-tensors stores scales in the
    /// checkpoint's own dtype, llm-compressor's f32 models in f32) as f32.
    fn float_tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        match self.plain(name)? {
            Some((s, v)) if s == shape => Ok(v),
            Some((s, _)) => bail!(
                "{}: tensor '{name}' is {s:?}; a {} folder stores it as {shape:?}",
                self.path.display(),
                self.scheme
            ),
            None => bail!(
                "{}: tensor '{name}' is missing ({} folders store it)",
                self.path.display(),
                self.scheme
            ),
        }
    }

    /// A plain tensor (f32, f16, bf16) as f32, with its shape.
    fn plain(&self, name: &str) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
        let Some(e) = self.entries.get(name) else {
            return Ok(None);
        };
        let file = &self.shards[e.shard].0;
        let dtype = match e.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            d => bail!(
                "{}: tensor '{name}' is {d:?}; f32, f16 and bf16 are read",
                file.display()
            ),
        };
        let mut out = vec![0f32; e.shape.iter().product()];
        dequantize(dtype, &self.shards[e.shard].1[e.start..e.end], &mut out)
            .with_context(|| format!("{}: tensor '{name}'", file.display()))?;
        Ok(Some((e.shape.clone(), out)))
    }

    /// Rows (outputs) and columns (inputs) of the linear layer stored under `prefix`, from the
    /// hyperparameters.
    fn linear_shape(&self, gguf: &str) -> (usize, usize) {
        let c = self.llama_config();
        let kv = c.n_head_kv * c.head_dim();
        let (d, ff) = (c.n_embd, c.n_ff);
        match gguf.rsplit('.').nth(1).unwrap_or("") {
            "attn_k" | "attn_v" => (kv, d),
            "ffn_gate" | "ffn_up" => (ff, d),
            "ffn_down" => (d, ff),
            _ => (d, d),
        }
    }

    /// The inputs per group of a `cols`-input layer, checked to divide it.
    fn group_len(&self, prefix: &str, group_size: usize, cols: usize) -> Result<usize> {
        let g = if group_size == 0 { cols } else { group_size };
        if cols % g != 0 {
            bail!(
                "{}: {prefix}: quantization_config.group_size {g} does not divide the layer's \
                 {cols} inputs",
                self.path.display()
            );
        }
        Ok(g)
    }

    /// The weight of a packed linear layer (`prefix` its HF name without `.weight`), dequantized,
    /// `[rows, cols]` row-major in HF row order.
    fn packed(&self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<f32>> {
        if rows % 8 != 0 || cols % 8 != 0 {
            bail!(
                "{}: {prefix} is {rows} x {cols}: packed layers need multiples of 8",
                self.path.display()
            );
        }
        let t = |s: &str| format!("{prefix}.{s}");
        let mut w = vec![0f32; rows * cols];
        match self.scheme {
            Scheme::Plain => unreachable!("plain folders hold no packed layers"),
            Scheme::Gptq {
                version,
                group_size,
            } => {
                let glen = self.group_len(prefix, group_size, cols)?;
                let groups = cols / glen;
                let qw = i32s(self.bytes(&t("qweight"), Dtype::I32, &[cols / 8, rows])?);
                let qz = i32s(self.bytes(&t("qzeros"), Dtype::I32, &[groups, rows / 8])?);
                let sc = f16s(self.bytes(&t("scales"), Dtype::F16, &[groups, rows])?);
                let gi = match self.entries.get(&t("g_idx")) {
                    Some(_) => i32s(self.bytes(&t("g_idx"), Dtype::I32, &[cols])?),
                    None => (0..cols).map(|j| (j / glen) as i32).collect(),
                };
                if let Some(j) = gi.iter().position(|&g| g < 0 || g as usize >= groups) {
                    bail!(
                        "{}: {}[{j}] is {}: the layer has groups 0..{groups}",
                        self.path.display(),
                        t("g_idx"),
                        gi[j]
                    );
                }
                let offset = if version == 1 { 1 } else { 0 };
                for r in 0..rows {
                    for (j, &g) in gi.iter().enumerate() {
                        let g = g as usize;
                        let q = nibble(qw[(j / 8) * rows + r], j % 8);
                        let z = nibble(qz[g * (rows / 8) + r / 8], r % 8) + offset;
                        w[r * cols + j] = (q as f32 - z as f32) * sc[g * rows + r];
                    }
                }
            }
            Scheme::Awq { group_size } => {
                let glen = self.group_len(prefix, group_size, cols)?;
                let groups = cols / glen;
                let wpr = rows / 8;
                let qw = i32s(self.bytes(&t("qweight"), Dtype::I32, &[cols, wpr])?);
                let qz = i32s(self.bytes(&t("qzeros"), Dtype::I32, &[groups, wpr])?);
                let sc = f16s(self.bytes(&t("scales"), Dtype::F16, &[groups, rows])?);
                for j in 0..cols {
                    let g = j / glen;
                    for c in 0..wpr {
                        let (word, zword) = (qw[j * wpr + c], qz[g * wpr + c]);
                        for (i, &k) in AWQ_ORDER.iter().enumerate() {
                            let r = 8 * c + k;
                            let (q, z) = (nibble(word, i), nibble(zword, i));
                            w[r * cols + j] = (q as f32 - z as f32) * sc[g * rows + r];
                        }
                    }
                }
            }
            Scheme::Compressed {
                bits,
                group_size,
                symmetric,
            } => {
                let glen = self.group_len(prefix, group_size, cols)?;
                let groups = cols / glen;
                let b = bits as usize;
                let pf = 32 / b;
                let mask = (1u32 << b) - 1;
                let code = |word: i32, k: usize| (word as u32 >> (b * k)) & mask;
                let qw = i32s(self.bytes(&t("weight_packed"), Dtype::I32, &[rows, cols / pf])?);
                let sc = self.float_tensor(&t("weight_scale"), &[rows, groups])?;
                let zp = if symmetric {
                    None
                } else {
                    Some(i32s(self.bytes(
                        &t("weight_zero_point"),
                        Dtype::I32,
                        &[rows / pf, groups],
                    )?))
                };
                // Stored codes are the signed values plus 2^(b-1); the offsets cancel with zero
                // points, and the symmetric codes are centred on it.
                let half = 1u32 << (b - 1);
                for r in 0..rows {
                    for j in 0..cols {
                        let g = j / glen;
                        let q = code(qw[r * (cols / pf) + j / pf], j % pf);
                        let z = match &zp {
                            Some(zp) => code(zp[(r / pf) * groups + g], r % pf),
                            None => half,
                        };
                        w[r * cols + j] = (q as f32 - z as f32) * sc[r * groups + g];
                    }
                }
            }
        }
        Ok(w)
    }

    /// The tensor of GGUF name `gguf` as the forward pass reads it (f32, q/k rows in GGUF order), or
    /// `None` when the folder does not hold it.
    pub fn tensor(&self, gguf: &str) -> Result<Option<Tensor>> {
        let hf = hf::hf_name(gguf)
            .ok_or_else(|| anyhow!("{}: no Hugging Face name for '{gguf}'", self.path.display()))?;
        if gguf == "output.weight" && self.config.tied {
            return Ok(None);
        }
        let prefix = hf.trim_end_matches(".weight");
        let linear = crate::write::checkpoint::is_linear(gguf);
        let (shape, mut data) = if linear && self.scheme != Scheme::Plain {
            let (rows, cols) = self.linear_shape(gguf);
            // A layer a quantized folder keeps plain (modules_to_not_convert) is read as it is.
            match self.plain(&hf)? {
                Some(p) => p,
                None => (vec![rows, cols], self.packed(prefix, rows, cols)?),
            }
        } else {
            match self.plain(&hf)? {
                Some(p) => p,
                None => return Ok(None),
            }
        };
        if let Some(h) = hf::permuted_heads(
            gguf,
            self.config.n_head as usize,
            self.config.n_head_kv as usize,
        ) {
            let cols = shape.last().copied().unwrap_or(1);
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let p = hf::permute_rows(&bytes, cols * 4, h, true)
                .with_context(|| format!("{}: tensor '{hf}'", self.path.display()))?;
            data = p
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
        }
        Ok(Some(Tensor {
            name: gguf.to_string(),
            shape,
            data,
        }))
    }

    /// The tokenizer files' GGUF keys (tokenizer.json, tokenizer_config.json), or `None` when the
    /// folder has no tokenizer.json.
    pub fn tokenizer_metadata(&self) -> Result<Option<Vec<(String, super::Value)>>> {
        let tok = self.path.join("tokenizer.json");
        if !tok.exists() {
            return Ok(None);
        }
        let cfg = self.path.join("tokenizer_config.json");
        let cfg = if cfg.exists() {
            Some(read_json(&cfg)?)
        } else {
            None
        };
        Ok(Some(
            hf::tokenizer_metadata(&read_json(&tok)?, cfg.as_ref())
                .with_context(|| format!("{}", tok.display()))?,
        ))
    }
}
