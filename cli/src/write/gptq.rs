//! GPTQ checkpoints (AutoGPTQ `checkpoint_format "gptq"`, GPTQModel `"gptq_v2"`): a Hugging Face
//! folder whose linear layers are packed by the library (`quant::pack::pack_gptq`: `qweight`,
//! `qzeros`, f16 `scales`, `g_idx`) and whose other tensors (embeddings, norms, lm_head) are f16, with
//! config.json's `quantization_config`. The codes are the library's round-to-nearest INT4 with integer
//! zero points (asymmetric, `sym: false`), the GPTQ layout's own convention; calibrated GPTQ needs
//! activations, which this command does not gather.
use std::io::BufWriter;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use half::f16;
use quant::algos::QuantOptions;
use quant::method::QuantMethod;
use quant::pack::{gptq_sizes, pack_gptq};
use quant::weight;
use serde_json::json;

use crate::model::hf::{self, LlamaConfig};
use crate::model::{GgufFile, Source};
use crate::write::safetensors::{SafetensorsWriter, StTensor};

/// Linear layers (GGUF names) that GPTQ packs: the attention and MLP projections.
fn is_linear(gguf: &str) -> bool {
    gguf.starts_with("blk.")
        && [
            ".attn_q.weight",
            ".attn_k.weight",
            ".attn_v.weight",
            ".attn_output.weight",
            ".ffn_gate.weight",
            ".ffn_up.weight",
            ".ffn_down.weight",
        ]
        .iter()
        .any(|s| gguf.ends_with(s))
}

fn le_bytes_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `input` (a GGUF Llama model) as a 4-bit GPTQ folder `out`; `version` 1 (`gptq`) or 2
/// (`gptq_v2`).
pub fn run(input: &Path, out: &Path, version: u32, group_size: usize) -> Result<()> {
    let g = GgufFile::open(input)?;
    if g.architecture() != Some("llama") {
        bail!(
            "{}: GPTQ folders are written for Llama models only",
            input.display()
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
    let cfg = LlamaConfig::from_gguf(g.metadata(), tied)?;
    let method = QuantMethod::Int4Asymmetric { group_size };
    let bits = 4usize;

    // The tensor list, with sizes, before any work: shapes GPTQ cannot pack are reported first.
    let mut specs = vec![];
    let mut errors = vec![];
    for t in g.tensors() {
        if t.name == "rope_freqs.weight" {
            continue;
        }
        let hf = hf::hf_name(&t.name).ok_or_else(|| {
            anyhow!(
                "{}: tensor '{}' has no Hugging Face name",
                input.display(),
                t.name
            )
        })?;
        if is_linear(&t.name) {
            let (rows, cols) = (t.rows(), t.cols());
            if cols * bits % 32 != 0
                || rows * bits % 32 != 0
                || group_size == 0
                || cols % group_size != 0
            {
                errors.push(format!(
                    "tensor '{}' ({rows} x {cols}): GPTQ needs rows and columns multiple of 8 and \
                     columns a multiple of the group size {group_size}",
                    t.name
                ));
                continue;
            }
            let groups = cols / group_size;
            let prefix = hf.trim_end_matches(".weight");
            specs.push((
                t,
                true,
                vec![
                    StTensor {
                        name: format!("{prefix}.qweight"),
                        dtype: "I32".into(),
                        shape: vec![cols * bits / 32, rows],
                        n_bytes: cols * bits / 32 * rows * 4,
                    },
                    StTensor {
                        name: format!("{prefix}.qzeros"),
                        dtype: "I32".into(),
                        shape: vec![groups, rows * bits / 32],
                        n_bytes: groups * rows * bits / 32 * 4,
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
                ],
            ));
        } else {
            let n = t.n_elements() as usize;
            specs.push((
                t,
                false,
                vec![StTensor {
                    name: hf,
                    dtype: "F16".into(),
                    shape: t.shape(),
                    n_bytes: n * 2,
                }],
            ));
        }
    }
    if !errors.is_empty() {
        bail!(
            "{}: cannot be written as GPTQ:\n  {}",
            input.display(),
            errors.join("\n  ")
        );
    }

    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            out.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ))
        .tempdir_in(parent)
        .with_context(|| format!("{}: cannot create a temporary folder", parent.display()))?;
    let file = tmp.path().join("model.safetensors");
    let f = std::fs::File::create(&file)
        .with_context(|| format!("{}: cannot create", file.display()))?;
    let all: Vec<StTensor> = specs
        .iter()
        .flat_map(|(_, _, s)| s.iter().cloned())
        .collect();
    let ctx = || format!("{}", out.join("model.safetensors").display());
    let mut w = SafetensorsWriter::new(
        BufWriter::with_capacity(1 << 20, f),
        all,
        &[("format", "pt")],
    )
    .with_context(ctx)?;
    let mut x = Vec::new();
    let opts = QuantOptions::default();
    for (t, linear, _) in &specs {
        g.read_f32(&t.name, &mut x)?;
        let (rows, cols) = (t.rows(), t.cols());
        if let Some(h) = hf::permuted_heads(&t.name, cfg.n_head as usize, cfg.n_head_kv as usize) {
            let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
            let p = hf::permute_rows(&bytes, cols * 4, h, false)?;
            x = p
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
        }
        let what = || format!("{}: tensor '{}'", input.display(), t.name);
        if *linear {
            let q = weight::quantize(&method, &opts, &x, rows, cols, None).with_context(what)?;
            let s = gptq_sizes(&q).with_context(what)?;
            let (mut qw, mut qz, mut sc, mut gi) = (
                vec![0i32; s.qweight],
                vec![0i32; s.qzeros],
                vec![0u16; s.scales],
                vec![0i32; s.g_idx],
            );
            pack_gptq(&q, version, &mut qw, &mut qz, &mut sc, &mut gi).with_context(what)?;
            w.write_tensor(&le_bytes_i32(&qw)).with_context(ctx)?;
            w.write_tensor(&le_bytes_i32(&qz)).with_context(ctx)?;
            w.write_tensor(&sc.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
                .with_context(ctx)?;
            w.write_tensor(&le_bytes_i32(&gi)).with_context(ctx)?;
        } else {
            if let Some(i) = x.iter().position(|v| !v.is_finite() || v.abs() > 65504.0) {
                bail!("{}: element {i} ({}) does not fit f16", what(), x[i]);
            }
            let b: Vec<u8> = x
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect();
            w.write_tensor(&b).with_context(ctx)?;
        }
        g.release(t);
    }
    w.finish()?
        .into_inner()
        .map_err(|e| anyhow!("{}: {}", ctx(), e.error()))?
        .sync_all()?;

    let mut config = cfg.to_json("float16");
    config["quantization_config"] = json!({
        "quant_method": "gptq",
        "bits": bits,
        "group_size": group_size,
        "desc_act": false,
        "sym": false,
        "true_sequential": true,
        "static_groups": false,
        "damp_percent": 0.01,
        "checkpoint_format": if version == 1 { "gptq" } else { "gptq_v2" },
        "meta": {"quantizer": ["quant (round-to-nearest INT4)"]},
    });
    let json = |name: &str, v: &serde_json::Value| -> Result<()> {
        let p = tmp.path().join(name);
        std::fs::write(&p, serde_json::to_string_pretty(v)? + "\n")
            .with_context(|| format!("{}", p.display()))
    };
    json("config.json", &config)?;
    json("quantize_config.json", &config["quantization_config"])?;
    if let Some((tok, tcfg)) = hf::tokenizer_files(g.metadata()) {
        json("tokenizer.json", &tok)?;
        json("tokenizer_config.json", &tcfg)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    if out.exists() {
        std::fs::remove_dir(out).with_context(|| format!("{}: cannot replace", out.display()))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        anyhow!(
            "{}: cannot rename the finished folder into place: {e}",
            out.display()
        )
    })
}
