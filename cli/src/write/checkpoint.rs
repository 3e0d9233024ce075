//! The folder that the packed checkpoint formats share (GPTQ, AWQ, compressed-tensors): a Hugging
//! Face Llama folder whose linear layers (attention and MLP projections) are stored by a
//! [`Packer`] and whose other tensors (embeddings, norms, lm_head) are f16, with the packer's
//! `quantization_config` in config.json. Every shape is checked before any work; the folder is
//! written beside the target and renamed into place when complete.
use std::io::BufWriter;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use half::f16;

use crate::model::hf::{self, LlamaConfig};
use crate::model::{GgufFile, Source};
use crate::packed_calib::Prepared;
use crate::write::safetensors::{SafetensorsWriter, StTensor};
use quant::weight::QuantizedWeight;

/// One checkpoint format's storage of a linear layer.
pub trait Packer {
    /// The format's name, for messages ("GPTQ").
    fn name(&self) -> &'static str;
    /// The tensors of a `rows x cols` weight (`rows` = out_features) whose HF name is
    /// `prefix.weight`, in the order [`Packer::pack`] returns them; or why the format cannot store it.
    fn tensors(&self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<StTensor>, String>;
    /// The bytes of each tensor of [`Packer::tensors`] for the weight `x` (row-major, HF row order).
    fn pack(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<Vec<u8>>>;
    /// The bytes of each tensor of [`Packer::tensors`] for codes already chosen (a calibrated run;
    /// rows in HF order), when the format takes them.
    fn pack_weight(&self, _q: &QuantizedWeight) -> Result<Vec<Vec<u8>>> {
        bail!(
            "{} folders are written from round-to-nearest codes only",
            self.name()
        )
    }
    /// config.json's `quantization_config`.
    fn config(&self) -> serde_json::Value;
    /// Other JSON files the format's loaders read (name, content).
    fn extra_files(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![]
    }
}

/// Linear layers (GGUF names) that the packers store: the attention and MLP projections.
pub fn is_linear(gguf: &str) -> bool {
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

pub fn le_bytes_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn le_bytes_u16(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Whether `input` can be written as `out` in `packer`'s format: a Llama model, `out` absent or an
/// empty folder, every linear layer of a shape the format stores (all of them reported).
pub fn check(g: &GgufFile, input: &Path, out: &Path, packer: &dyn Packer) -> Result<()> {
    let name = packer.name();
    if g.architecture() != Some("llama") {
        bail!(
            "{}: {name} folders are written for Llama models only",
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
    // Every layer that cannot be stored, one line per reason and shape (a model repeats its shapes in
    // every block).
    let mut errors: Vec<(String, Vec<&str>)> = vec![];
    for t in g.tensors() {
        if is_linear(&t.name) {
            let (rows, cols) = (t.rows(), t.cols());
            if let Err(e) = packer.tensors("", rows, cols) {
                let why = format!("({rows} x {cols})\0{e}");
                match errors.iter_mut().find(|(w, _)| *w == why) {
                    Some((_, names)) => names.push(&t.name),
                    None => errors.push((why, vec![&t.name])),
                }
            }
        }
    }
    if !errors.is_empty() {
        let errors: Vec<String> = errors
            .iter()
            .map(|(why, names)| {
                let (shape, e) = why.split_once('\0').unwrap_or((why, ""));
                match names.len() {
                    1 => format!("tensor '{}' {shape}: {e}", names[0]),
                    n => format!(
                        "tensor '{}' {shape} and {} more of that shape: {e}",
                        names[0],
                        n - 1
                    ),
                }
            })
            .collect();
        bail!(
            "{}: cannot be written as {name}:\n  {}",
            input.display(),
            errors.join("\n  ")
        );
    }
    Ok(())
}

/// `q` with its rows (codes, scales, zero points) reordered from GGUF to HF order for `n_head`
/// heads (the inverse of convert_hf_to_gguf's q/k permutation).
pub fn rows_to_hf(q: &QuantizedWeight, n_head: usize) -> Result<QuantizedWeight> {
    let mut p = q.clone();
    p.data = hf::permute_rows(&q.data, q.row_bytes(), n_head, false)?;
    let f32s = |v: &[f32]| -> Result<Vec<f32>> {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Ok(hf::permute_rows(&b, b.len() / q.rows, n_head, false)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    p.scales = f32s(&q.scales)?;
    if let Some(z) = &q.zero_points {
        p.zero_points = Some(f32s(z)?);
    }
    Ok(p)
}

/// Writes `input` (a GGUF Llama model) as a folder `out` in `packer`'s format: every linear layer
/// rounded to nearest, or, with `calibrated`, the codes it holds and the tensors it replaces.
pub fn write(
    input: &Path,
    out: &Path,
    packer: &dyn Packer,
    calibrated: Option<&Prepared>,
) -> Result<()> {
    let g = GgufFile::open(input)?;
    check(&g, input, out, packer)?;
    let tied = g.tensor("output.weight").is_none();
    let cfg = LlamaConfig::from_gguf(g.metadata(), tied)?;

    // The tensor list, with sizes (the shapes were checked by `check`).
    let mut specs = vec![];
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
            let s = packer
                .tensors(hf.trim_end_matches(".weight"), rows, cols)
                .map_err(|e| anyhow!("{}: tensor '{}': {e}", input.display(), t.name))?;
            specs.push((t, true, s));
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

    let tmp = super::folder_beside(out)?;
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
    for (t, linear, _) in &specs {
        let (rows, cols) = (t.rows(), t.cols());
        let what = || format!("{}: tensor '{}'", input.display(), t.name);
        let heads = hf::permuted_heads(&t.name, cfg.n_head as usize, cfg.n_head_kv as usize);
        if let Some(q) = calibrated.and_then(|c| c.weights.get(&t.name)) {
            let q = match heads {
                Some(h) => rows_to_hf(q, h).with_context(what)?,
                None => q.clone(),
            };
            for b in packer.pack_weight(&q).with_context(what)? {
                w.write_tensor(&b).with_context(ctx)?;
            }
            continue;
        }
        match calibrated.and_then(|c| c.replaced.get(&t.name)) {
            Some(v) => x.clone_from(v),
            None => g.read_f32(&t.name, &mut x)?,
        }
        if let Some(h) = heads {
            let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
            let p = hf::permute_rows(&bytes, cols * 4, h, false)?;
            x = p
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
        }
        if *linear {
            for b in packer.pack(&x, rows, cols).with_context(what)? {
                w.write_tensor(&b).with_context(ctx)?;
            }
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
    config["quantization_config"] = packer.config();
    let json = |name: &str, v: &serde_json::Value| -> Result<()> {
        let p = tmp.path().join(name);
        std::fs::write(&p, serde_json::to_string_pretty(v)? + "\n")
            .with_context(|| format!("{}", p.display()))
    };
    json("config.json", &config)?;
    for (name, v) in packer.extra_files() {
        json(name, &v)?;
    }
    if let Some((tok, tcfg)) = hf::tokenizer_files(g.metadata()) {
        json("tokenizer.json", &tok)?;
        json("tokenizer_config.json", &tcfg)?;
    }
    super::finish_folder(tmp, out)
}
