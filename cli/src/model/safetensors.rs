//! Reader of a Hugging Face Llama folder: config.json, one or more safetensors shards (f32, f16,
//! bf16; `model.safetensors.index.json` when sharded), tokenizer.json. Tensors are mapped and
//! presented as GGUF: GGUF names, dims reversed, q/k rows permuted as convert_hf_to_gguf.py does,
//! metadata from config.json and the tokenizer files.
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use memmap2::Mmap;
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;

use super::gguf::Value;
use super::hf::{self, LlamaConfig};
use super::{dequantize, DType, ModelInfo, Source, TensorMeta};

struct Entry {
    meta: TensorMeta,
    hf_name: String,
    shard: usize,
    start: usize,
    end: usize,
    /// Heads of the RoPE permutation applied on read (q/k).
    permute: Option<usize>,
}

pub struct SafetensorsDir {
    path: PathBuf,
    shards: Vec<(PathBuf, Mmap)>,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    config: LlamaConfig,
    metadata: Vec<(String, Value)>,
}

/// The JSON document in file `p`; errors name the file.
pub(super) fn read_json(p: &Path) -> Result<Json> {
    let text =
        std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", p.display()))
}

/// The safetensors files of a Hugging Face folder, sorted: those that
/// `model.safetensors.index.json`'s `weight_map` names when the folder has one, else every
/// `*.safetensors` file in it. At least one.
pub(super) fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if index.exists() {
        let j = read_json(&index)?;
        let map = j
            .get("weight_map")
            .and_then(Json::as_object)
            .ok_or_else(|| anyhow!("{}: no weight_map", index.display()))?;
        let mut f: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        f.sort();
        f.dedup();
        f.into_iter().map(|n| dir.join(n)).collect()
    } else {
        let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("{}: cannot list", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        f.sort();
        f
    };
    if files.is_empty() {
        bail!("{}: no .safetensors file", dir.display());
    }
    Ok(files)
}

/// Shard `f` mapped read-only, with the length of its JSON header and the header's tensor table.
pub(super) fn map_shard(f: &Path) -> Result<(Mmap, usize, Metadata)> {
    let file = File::open(f).with_context(|| format!("{}: cannot open", f.display()))?;
    // SAFETY: read-only map of an input this program never writes (see GgufFile::open).
    let map =
        unsafe { Mmap::map(&file) }.with_context(|| format!("{}: cannot map", f.display()))?;
    let (n, meta) = SafeTensors::read_metadata(&map)
        .map_err(|e| anyhow!("{}: not a valid safetensors file: {e}", f.display()))?;
    Ok((map, n, meta))
}

/// HF names that carry nothing a GGUF Llama needs.
fn ignorable(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq")
}

impl SafetensorsDir {
    pub fn open(dir: &Path) -> Result<SafetensorsDir> {
        let config = LlamaConfig::from_json(&read_json(&dir.join("config.json"))?)
            .with_context(|| format!("{}", dir.join("config.json").display()))?;
        let files = shard_files(dir)?;
        let mut shards = vec![];
        let mut entries = vec![];
        for (si, f) in files.iter().enumerate() {
            let (map, n, meta) = map_shard(f)?;
            let mut names: Vec<(String, safetensors::tensor::TensorInfo)> = meta
                .tensors()
                .into_iter()
                .map(|(k, v)| (k, v.clone()))
                .collect();
            names.sort_by_key(|(_, v)| v.data_offsets.0);
            for (name, info) in names {
                if ignorable(&name) || (config.tied && name == "lm_head.weight") {
                    continue;
                }
                let g = hf::gguf_name(&name).ok_or_else(|| {
                    anyhow!(
                        "{}: tensor '{name}' is not a Llama tensor this tool maps",
                        f.display()
                    )
                })?;
                let dtype = match info.dtype {
                    Dtype::F32 => DType::F32,
                    Dtype::F16 => DType::F16,
                    Dtype::BF16 => DType::BF16,
                    d => bail!(
                        "{}: tensor '{name}' is {d:?}; f32, f16 and bf16 are read",
                        f.display()
                    ),
                };
                if info.shape.is_empty() || info.shape.len() > 4 {
                    bail!(
                        "{}: tensor '{name}' has shape {:?}",
                        f.display(),
                        info.shape
                    );
                }
                let dims: Vec<u64> = info.shape.iter().rev().map(|&d| d as u64).collect();
                let permute =
                    hf::permuted_heads(&g, config.n_head as usize, config.n_head_kv as usize);
                if let Some(h) = permute {
                    let rows = dims.get(1).copied().unwrap_or(1) as usize;
                    if h == 0 || rows % h != 0 || (rows / h) % 2 != 0 {
                        bail!(
                            "{}: tensor '{name}': {rows} rows do not split into {h} heads",
                            f.display()
                        );
                    }
                }
                let start = 8 + n + info.data_offsets.0;
                entries.push(Entry {
                    meta: TensorMeta {
                        name: g,
                        dims,
                        dtype,
                    },
                    hf_name: name,
                    shard: si,
                    start,
                    end: 8 + n + info.data_offsets.1,
                    permute,
                });
            }
            shards.push((f.clone(), map));
        }
        let mut seen = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if seen.insert(e.meta.name.clone(), i).is_some() {
                bail!(
                    "{}: tensor '{}' appears in two shards",
                    dir.display(),
                    e.hf_name
                );
            }
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut metadata = config.gguf_metadata(&name);
        let tok = dir.join("tokenizer.json");
        if tok.exists() {
            let cfg = dir.join("tokenizer_config.json");
            let cfg = if cfg.exists() {
                Some(read_json(&cfg)?)
            } else {
                None
            };
            metadata.extend(
                hf::tokenizer_metadata(&read_json(&tok)?, cfg.as_ref())
                    .with_context(|| format!("{}", tok.display()))?,
            );
        }
        metadata.push(("general.quantization_version".into(), Value::U32(2)));
        Ok(SafetensorsDir {
            path: dir.to_path_buf(),
            shards,
            index: seen,
            entries,
            config,
            metadata,
        })
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.index
            .get(name)
            .map(|&i| &self.entries[i])
            .ok_or_else(|| anyhow!("{}: no tensor named '{name}'", self.path.display()))
    }
}

impl Source for SafetensorsDir {
    fn path(&self) -> &Path {
        &self.path
    }

    fn metadata(&self) -> Vec<(String, Value)> {
        self.metadata.clone()
    }

    fn tensors(&self) -> Vec<TensorMeta> {
        self.entries.iter().map(|e| e.meta.clone()).collect()
    }

    fn info(&self) -> ModelInfo {
        ModelInfo {
            arch: "llama".into(),
            n_layer: self.config.n_layer as usize,
            n_expert: 0,
            n_gqa: self
                .config
                .n_head
                .checked_div(self.config.n_head_kv)
                .unwrap_or(0) as usize,
        }
    }

    fn raw(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        let e = self.entry(name)?;
        let bytes = &self.shards[e.shard].1[e.start..e.end];
        match e.permute {
            None => Ok(Cow::Borrowed(bytes)),
            Some(h) => {
                let row = e.meta.dtype.bytes_for(e.meta.dims[0]).expect("plain type");
                Ok(Cow::Owned(
                    hf::permute_rows(bytes, row as usize, h, true).with_context(|| {
                        format!(
                            "{}: tensor '{}'",
                            self.shards[e.shard].0.display(),
                            e.hf_name
                        )
                    })?,
                ))
            }
        }
    }

    fn read_f32(&self, name: &str, out: &mut Vec<f32>) -> Result<()> {
        let e = self.entry(name)?;
        let raw = self.raw(name)?;
        out.clear();
        out.resize(e.meta.dims.iter().product::<u64>() as usize, 0.0);
        dequantize(e.meta.dtype, &raw, out).with_context(|| {
            format!(
                "{}: tensor '{}'",
                self.shards[e.shard].0.display(),
                e.hf_name
            )
        })
    }

    fn f32_in_place(&self, name: &str) -> Option<&[f32]> {
        let e = self.entry(name).ok()?;
        // Permuted rows (q and k) are a new buffer, not the file's bytes.
        if e.meta.dtype != DType::F32 || e.permute.is_some() {
            return None;
        }
        crate::model::f32_in_place(&self.shards[e.shard].1[e.start..e.end])
    }

    fn release(&self, name: &str) {
        #[cfg(unix)]
        if let Ok(e) = self.entry(name) {
            // SAFETY: read-only file-backed map: dropped pages come back from the file unchanged.
            let _ = unsafe {
                self.shards[e.shard].1.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    e.start,
                    e.end - e.start,
                )
            };
        }
    }
}
