//! `quant export-hf`: the GGUF reference model (dequantized to f32, or cast to bf16/f16) as a
//! Hugging Face folder: config.json, safetensors shard(s) with HF names and the q/k rows back in HF
//! order, tokenizer.json and tokenizer_config.json for byte-level BPE tokenizers. Written into a
//! temporary folder beside the target, renamed when complete.
use std::io::BufWriter;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use half::{bf16, f16};
use serde_json::json;

use crate::model::hf::{self, LlamaConfig};
use crate::model::{GgufFile, Source};
use crate::write::safetensors::{SafetensorsWriter, StTensor};

/// Element type of the exported weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportDtype {
    F32,
    F16,
    Bf16,
}

impl ExportDtype {
    fn st(self) -> &'static str {
        match self {
            ExportDtype::F32 => "F32",
            ExportDtype::F16 => "F16",
            ExportDtype::Bf16 => "BF16",
        }
    }
    fn torch(self) -> &'static str {
        match self {
            ExportDtype::F32 => "float32",
            ExportDtype::F16 => "float16",
            ExportDtype::Bf16 => "bfloat16",
        }
    }
    fn size(self) -> usize {
        if self == ExportDtype::F32 {
            4
        } else {
            2
        }
    }
    fn encode(self, x: &[f32], out: &mut Vec<u8>) {
        out.clear();
        match self {
            ExportDtype::F32 => out.extend(x.iter().flat_map(|v| v.to_le_bytes())),
            ExportDtype::F16 => out.extend(x.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes())),
            ExportDtype::Bf16 => {
                out.extend(x.iter().flat_map(|v| bf16::from_f32(*v).to_le_bytes()))
            }
        }
    }
}

fn write_json(dir: &Path, name: &str, v: &serde_json::Value) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v)? + "\n")
        .with_context(|| format!("{}: cannot write", p.display()))
}

pub fn run(input: &Path, out: &Path, dtype: ExportDtype, shard_bytes: u64) -> Result<()> {
    let g = GgufFile::open(input)?;
    if g.architecture() != Some("llama") {
        bail!(
            "{}: architecture {:?}: export-hf writes Llama models only",
            input.display(),
            g.architecture()
        );
    }
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{}: exists and is not an empty folder", out.display());
    }
    let tied = g.tensor("output.weight").is_none();
    let cfg = LlamaConfig::from_gguf(g.metadata(), tied)
        .with_context(|| format!("{}", input.display()))?;
    let mut tensors = vec![];
    for t in g.tensors() {
        if t.name == "rope_freqs.weight" {
            continue;
        }
        let name = hf::hf_name(&t.name).ok_or_else(|| {
            anyhow!(
                "{}: tensor '{}' has no Hugging Face name here",
                input.display(),
                t.name
            )
        })?;
        let n = t.n_elements() as usize;
        tensors.push((
            t,
            StTensor {
                name,
                dtype: dtype.st().into(),
                shape: t.shape(),
                n_bytes: n * dtype.size(),
            },
        ));
    }
    // Greedy shards in file order.
    let mut shards: Vec<Vec<usize>> = vec![vec![]];
    let mut size = 0u64;
    for (i, (_, st)) in tensors.iter().enumerate() {
        if size > 0 && size + st.n_bytes as u64 > shard_bytes {
            shards.push(vec![]);
            size = 0;
        }
        shards.last_mut().expect("one").push(i);
        size += st.n_bytes as u64;
    }
    let names: Vec<String> = if shards.len() == 1 {
        vec!["model.safetensors".into()]
    } else {
        (1..=shards.len())
            .map(|i| format!("model-{i:05}-of-{:05}.safetensors", shards.len()))
            .collect()
    };

    let tmp = crate::write::folder_beside(out)?;
    let (mut x, mut bytes) = (Vec::new(), Vec::new());
    let mut weight_map = serde_json::Map::new();
    let mut total = 0u64;
    for (shard, file) in shards.iter().zip(&names) {
        let path = tmp.path().join(file);
        let f = std::fs::File::create(&path)
            .with_context(|| format!("{}: cannot create", path.display()))?;
        let specs = shard.iter().map(|&i| tensors[i].1.clone()).collect();
        let mut w = SafetensorsWriter::new(
            BufWriter::with_capacity(1 << 20, f),
            specs,
            &[("format", "pt")],
        )
        .with_context(|| format!("{}", out.join(file).display()))?;
        for &i in shard {
            let (t, st) = &tensors[i];
            g.read_f32(&t.name, &mut x)?;
            dtype.encode(&x, &mut bytes);
            if let Some(h) =
                hf::permuted_heads(&t.name, cfg.n_head as usize, cfg.n_head_kv as usize)
            {
                let row = t.cols() * dtype.size();
                bytes = hf::permute_rows(&bytes, row, h, false)
                    .with_context(|| format!("{}: tensor '{}'", input.display(), t.name))?;
            }
            w.write_tensor(&bytes)
                .with_context(|| format!("{}", out.join(file).display()))?;
            g.release(t);
            weight_map.insert(st.name.clone(), json!(file));
            total += st.n_bytes as u64;
        }
        w.finish()?
            .into_inner()
            .map_err(|e| anyhow!("{}: {}", out.join(file).display(), e.error()))?
            .sync_all()?;
    }
    if names.len() > 1 {
        write_json(
            tmp.path(),
            "model.safetensors.index.json",
            &json!({"metadata": {"total_size": total}, "weight_map": weight_map}),
        )?;
    }
    write_json(tmp.path(), "config.json", &cfg.to_json(dtype.torch()))?;
    let mut gen = json!({"_from_model_config": true});
    if let Some(b) = cfg.bos {
        gen["bos_token_id"] = json!(b);
    }
    if let Some(e) = cfg.eos {
        gen["eos_token_id"] = json!(e);
    }
    write_json(tmp.path(), "generation_config.json", &gen)?;
    if let Some((tok, tcfg)) = hf::tokenizer_files(g.metadata()) {
        write_json(tmp.path(), "tokenizer.json", &tok)?;
        write_json(tmp.path(), "tokenizer_config.json", &tcfg)?;
    }
    crate::write::finish_folder(tmp, out)?;
    Ok(())
}
