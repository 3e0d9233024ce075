//! Helpers shared by the integration tests: tiny GGUF models written on the fly, the binary, and
//! the real inputs named by environment variables (scripts/test-model.sh sets them).
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use quant_cli::model::gguf::Value;
use quant_cli::model::{DType, GgufFile};
use quant_cli::write::gguf::{GgufWriter, TensorSpec};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quant"))
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run quant")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Deterministic values in [-scale, scale).
pub fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

/// One tensor of a tiny model: name, GGUF dims, f32 values.
pub struct T {
    pub name: String,
    pub dims: Vec<u64>,
    pub data: Vec<f32>,
}

/// A tiny Llama-shaped model (2 blocks, 64 wide, tied embeddings) with f32 weights.
pub fn tiny_llama() -> (Vec<(String, Value)>, Vec<T>) {
    let meta = vec![
        ("general.architecture".to_string(), Value::string("llama")),
        ("general.name".to_string(), Value::string("tiny")),
        ("llama.block_count".to_string(), Value::U32(2)),
        ("llama.embedding_length".to_string(), Value::U32(64)),
        ("llama.feed_forward_length".to_string(), Value::U32(256)),
        ("llama.context_length".to_string(), Value::U32(128)),
        ("llama.attention.head_count".to_string(), Value::U32(4)),
        ("llama.attention.head_count_kv".to_string(), Value::U32(2)),
        ("tokenizer.ggml.model".to_string(), Value::string("gpt2")),
        (
            "tokenizer.ggml.tokens".to_string(),
            Value::Array(
                quant_cli::model::ValueType::String,
                (0..100).map(|i| Value::string(&format!("t{i}"))).collect(),
            ),
        ),
        (
            "tokenizer.ggml.token_type".to_string(),
            Value::Array(
                quant_cli::model::ValueType::I32,
                (0..100)
                    .map(|i| Value::I32(if i < 2 { 3 } else { 1 }))
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.merges".to_string(),
            Value::Array(
                quant_cli::model::ValueType::String,
                vec![Value::string("t 1")],
            ),
        ),
        ("tokenizer.ggml.bos_token_id".to_string(), Value::U32(0)),
        ("tokenizer.ggml.eos_token_id".to_string(), Value::U32(1)),
        ("general.file_type".to_string(), Value::U32(0)),
    ];
    let mut ts = vec![];
    let mut seed = 1;
    let mut add = |name: &str, dims: &[u64]| {
        seed += 1;
        let n = dims.iter().product::<u64>() as usize;
        ts.push(T {
            name: name.into(),
            dims: dims.to_vec(),
            data: values(n, seed, 0.1),
        });
    };
    add("token_embd.weight", &[64, 100]);
    add("output_norm.weight", &[64]);
    for b in 0..2 {
        add(&format!("blk.{b}.attn_norm.weight"), &[64]);
        add(&format!("blk.{b}.attn_q.weight"), &[64, 64]);
        add(&format!("blk.{b}.attn_k.weight"), &[64, 32]);
        add(&format!("blk.{b}.attn_v.weight"), &[64, 32]);
        add(&format!("blk.{b}.attn_output.weight"), &[64, 64]);
        add(&format!("blk.{b}.ffn_norm.weight"), &[64]);
        add(&format!("blk.{b}.ffn_gate.weight"), &[64, 256]);
        add(&format!("blk.{b}.ffn_up.weight"), &[64, 256]);
        add(&format!("blk.{b}.ffn_down.weight"), &[256, 64]);
    }
    (meta, ts)
}

pub fn gguf_bytes(meta: &[(String, Value)], ts: &[T]) -> Vec<u8> {
    let specs = ts
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            dtype: DType::F32,
        })
        .collect();
    let mut w = GgufWriter::new(Vec::new(), meta, specs).unwrap();
    for t in ts {
        let b: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.write_tensor(&b).unwrap();
    }
    w.finish().unwrap()
}

pub fn write_gguf(path: &Path, meta: &[(String, Value)], ts: &[T]) {
    std::fs::write(path, gguf_bytes(meta, ts)).unwrap();
}

/// A path from an environment variable: `None` (with a note) when unset, a panic when set to
/// something missing.
pub fn env_path(var: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        None => {
            eprintln!("note: skipped: {var} is not set ({what}; scripts/test-model.sh sets it)");
            None
        }
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(p.exists(), "{var}={} does not exist", p.display());
            Some(p)
        }
    }
}

/// Files in `dir` (names), to check that no temporary file is left behind.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Tensor-by-tensor differences between two GGUF files (empty when they hold the same tensors,
/// types, shapes and bytes, and the same metadata).
pub fn differences(ours: &Path, theirs: &Path) -> Vec<String> {
    let (a, b) = (
        GgufFile::open(ours).unwrap(),
        GgufFile::open(theirs).unwrap(),
    );
    let mut diffs = vec![];
    if a.metadata() != b.metadata() {
        let ka: Vec<_> = a.metadata().iter().map(|(k, _)| k).collect();
        let kb: Vec<_> = b.metadata().iter().map(|(k, _)| k).collect();
        diffs.push(format!("metadata differs (keys {ka:?} vs {kb:?})"));
    }
    let names_a: BTreeMap<_, _> = a.tensors().iter().map(|t| (&t.name, t)).collect();
    let names_b: BTreeMap<_, _> = b.tensors().iter().map(|t| (&t.name, t)).collect();
    for (name, tb) in &names_b {
        let Some(ta) = names_a.get(name) else {
            diffs.push(format!("'{name}' missing from ours"));
            continue;
        };
        if ta.dtype != tb.dtype || ta.dims != tb.dims {
            diffs.push(format!(
                "'{name}': ours {} {:?}, llama-quantize {} {:?}",
                ta.dtype, ta.dims, tb.dtype, tb.dims
            ));
            continue;
        }
        let (da, db) = (a.data(ta), b.data(tb));
        if da != db {
            let bs = ta.dtype.type_size().unwrap();
            let blocks = da
                .chunks(bs)
                .zip(db.chunks(bs))
                .filter(|(x, y)| x != y)
                .count();
            let first = da
                .chunks(bs)
                .zip(db.chunks(bs))
                .position(|(x, y)| x != y)
                .unwrap();
            diffs.push(format!(
                "'{name}' ({}): {blocks} of {} blocks differ, first block {first}",
                ta.dtype,
                da.len() / bs
            ));
        }
    }
    for name in names_a.keys() {
        if !names_b.contains_key(name) {
            diffs.push(format!("'{name}' only in ours"));
        }
    }
    diffs
}
