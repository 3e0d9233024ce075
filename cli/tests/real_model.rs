//! The real model against llama.cpp's tools: `quant quantize` must write, for every type both
//! have, the tensor data llama-quantize writes (byte for byte), and its files must load in gguf-py
//! and llama.cpp. Inputs come from environment variables that scripts/test-model.sh sets:
//!   QUANT_MODEL      SmolLM2-135M-Instruct.Q4_1.gguf (scripts/inputs.sh)
//!   QUANT_LLAMA_BIN  the folder of llama-quantize and llama-perplexity (scripts/llama-cpp.sh)
//!   QUANT_PYTHON     a python with the `gguf` package
//!   QUANT_TEXT       a text file for llama-perplexity's load test
//! A test whose variable is unset is skipped with a note; one set to a missing path fails.
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::*;
use quant_cli::model::GgufFile;

const TYPES: [&str; 14] = [
    "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S",
    "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
];

fn quant(input: &Path, out: &Path, ty: &str) -> f64 {
    let t = Instant::now();
    let o = run(&[
        "quantize",
        "-q",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--type",
        ty,
    ]);
    assert!(o.status.success(), "quant {ty}: {}", stderr(&o));
    t.elapsed().as_secs_f64()
}

fn llama_quantize(bin: &Path, input: &Path, out: &Path, ty: &str) -> f64 {
    let t = Instant::now();
    let o = Command::new(bin.join("llama-quantize"))
        .arg("--allow-requantize")
        .args([input, out])
        .arg(ty)
        .output()
        .unwrap();
    assert!(o.status.success(), "llama-quantize {ty}: {}", stderr(&o));
    t.elapsed().as_secs_f64()
}

#[test]
fn tensor_data_is_byte_identical_to_llama_quantize() {
    let Some(model) = env_path("QUANT_MODEL", "the real model") else {
        return;
    };
    let Some(bin) = env_path("QUANT_LLAMA_BIN", "llama.cpp's tools") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The f32 reference, written by both tools (every tensor then goes through the quantizers,
    // the token embedding included, rather than being copied when its type is already the target).
    let f32_ours = dir.path().join("ref-f32.gguf");
    let f32_theirs = dir.path().join("ref-f32.llama.gguf");
    quant(&model, &f32_ours, "F32");
    llama_quantize(&bin, &model, &f32_theirs, "F32");
    let d = differences(&f32_ours, &f32_theirs);
    assert!(d.is_empty(), "F32: {d:#?}");
    std::fs::remove_file(&f32_theirs).unwrap();

    let mut failures = vec![];
    eprintln!(
        "{:<8} {:<10} {:>8} {:>8}  result",
        "type", "input", "quant s", "llama s"
    );
    for (label, input) in [("Q4_1 file", &model), ("f32 ref", &f32_ours)] {
        for ty in TYPES {
            let ours = dir.path().join(format!("ours-{ty}.gguf"));
            let theirs = dir.path().join(format!("llama-{ty}.gguf"));
            let t_ours = quant(input, &ours, ty);
            let t_theirs = llama_quantize(&bin, input, &theirs, ty);
            let d = differences(&ours, &theirs);
            let whole = std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap();
            eprintln!(
                "{ty:<8} {label:<10} {t_ours:>8.2} {t_theirs:>8.2}  {}",
                if d.is_empty() {
                    if whole {
                        "identical tensors, identical file"
                    } else {
                        "identical tensors"
                    }
                    .to_string()
                } else {
                    format!("{} differences", d.len())
                }
            );
            if !d.is_empty() {
                failures.push(format!("{ty} from {label}: {d:#?}"));
            }
            std::fs::remove_file(&ours).unwrap();
            std::fs::remove_file(&theirs).unwrap();
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn outputs_load_in_gguf_py_and_llama_cpp() {
    let Some(model) = env_path("QUANT_MODEL", "the real model") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let outs: Vec<_> = ["Q4_K_M", "Q3_K_M", "Q8_0"]
        .iter()
        .map(|ty| {
            let p = dir.path().join(format!("m-{ty}.gguf"));
            quant(&model, &p, ty);
            p
        })
        .collect();
    if let Some(py) = env_path("QUANT_PYTHON", "a python with the gguf package") {
        // gguf-py reads every tensor and dequantizes it; its sums must match ours.
        let script = r#"
import sys, numpy as np, gguf
r = gguf.GGUFReader(sys.argv[1])
for t in r.tensors:
    x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
    assert np.isfinite(x).all(), t.name
    print(t.name, x.size, repr(float(np.abs(x).sum())))
"#;
        for p in &outs {
            let o = Command::new(&py)
                .arg("-c")
                .arg(script)
                .arg(p)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "gguf-py on {}: {}",
                p.display(),
                stderr(&o)
            );
            let g = GgufFile::open(p).unwrap();
            let text = String::from_utf8(o.stdout).unwrap();
            assert_eq!(text.lines().count(), g.tensors().len());
            for line in text.lines() {
                let mut f = line.split(' ');
                let (name, n, sum) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
                let t = g.tensor_f32(name).unwrap();
                assert_eq!(n.parse::<usize>().unwrap(), t.data.len(), "{name}");
                let ours: f64 = t.data.iter().map(|v| f64::from(v.abs())).sum();
                let theirs: f64 = sum.parse().unwrap();
                assert!(
                    (ours - theirs).abs() <= 1e-9 * theirs.max(1.0),
                    "{name}: {ours} vs {theirs}"
                );
            }
        }
    }
    if let (Some(bin), Some(text)) = (
        env_path("QUANT_LLAMA_BIN", "llama.cpp's tools"),
        env_path("QUANT_TEXT", "a text for llama-perplexity"),
    ) {
        for p in &outs {
            let o = Command::new(bin.join("llama-perplexity"))
                .arg("-m")
                .arg(p)
                .arg("-f")
                .arg(&text)
                .args(["-c", "128", "--chunks", "2", "-t", "2", "-b", "128"])
                .output()
                .unwrap();
            let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
            assert!(
                o.status.success(),
                "llama-perplexity on {}: {all}",
                p.display()
            );
            let ppl = all
                .lines()
                .find_map(|l| l.split("Final estimate: PPL = ").nth(1))
                .unwrap_or_else(|| panic!("no PPL in {all}"));
            eprintln!(
                "llama-perplexity {}: PPL = {ppl}",
                p.file_name().unwrap().to_string_lossy()
            );
        }
    }
}
