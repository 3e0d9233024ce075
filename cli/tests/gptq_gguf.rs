//! `quant quantize --method gptq` on the real model, checked by llama.cpp: the GPTQ Q4_0 file loads in
//! llama-perplexity, and its perplexity on a few chunks of the evaluation text is below that of the
//! round-to-nearest Q4_0 file (the same plan, `--method rtn`).
//!
//! Inputs (scripts/test-model.sh sets them; the test skips, saying why, when one is unset):
//!   QUANT_MODEL       the reference GGUF (SmolLM2-135M-Instruct.Q4_1.gguf)
//!   QUANT_LLAMA_BIN   the folder holding llama-perplexity
//!   QUANT_TEXTS       the inputs folder: texts/calibration.txt, texts/eval.txt
mod common;

use std::path::Path;
use std::process::Command;

use common::env_path;

/// `Final estimate: PPL = X` in llama-perplexity's log.
fn llama_ppl(bin: &Path, model: &Path, text: &Path, chunks: &str) -> f64 {
    let out = Command::new(bin.join("llama-perplexity"))
        .arg("-m")
        .arg(model)
        .arg("-f")
        .arg(text)
        .args(["-c", "512", "--chunks", chunks])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "llama-perplexity on {}: {log}",
        model.display()
    );
    let line = log
        .lines()
        .find_map(|l| l.split("Final estimate: PPL = ").nth(1))
        .unwrap_or_else(|| panic!("no final estimate in:\n{log}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn gptq_q4_0_loads_in_llama_cpp_and_beats_round_to_nearest() {
    let (Some(model), Some(bin), Some(texts)) = (
        env_path("QUANT_MODEL", "the reference model"),
        env_path("QUANT_LLAMA_BIN", "llama.cpp's tools"),
        env_path("QUANT_TEXTS", "the texts"),
    ) else {
        return;
    };
    let (calib, eval) = (
        texts.join("texts/calibration.txt"),
        texts.join("texts/eval.txt"),
    );
    let dir = tempfile::tempdir().unwrap();
    let quantize = |method: &str, extra: &[&str]| {
        let out = dir.path().join(format!("{method}.gguf"));
        let o = common::bin()
            .arg("quantize")
            .arg(&model)
            .arg(&out)
            .args(["--type", "Q4_0", "--method", method])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "quant quantize --method {method}: {}",
            common::stderr(&o)
        );
        (out, common::stderr(&o))
    };
    let (rtn, _) = quantize("rtn", &[]);
    // A short calibration (16 x 256 tokens) keeps the test's forward passes affordable.
    let calib = calib.to_str().unwrap();
    let (gptq, log) = quantize(
        "gptq",
        &["--calib", calib, "--samples", "16", "--seq-len", "256"],
    );
    // The summary: every block linear layer, each below round-to-nearest on the calibration tokens.
    let rows: Vec<&str> = log.lines().filter(|l| l.starts_with("blk.")).collect();
    assert_eq!(rows.len(), 30 * 7, "{log}");
    for r in &rows {
        let f: Vec<&str> = r.split_whitespace().collect();
        let (e_rtn, e_gptq): (f64, f64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        assert!(e_gptq < e_rtn, "{r}");
    }
    let p_rtn = llama_ppl(&bin, &rtn, &eval, "4");
    let p_gptq = llama_ppl(&bin, &gptq, &eval, "4");
    eprintln!("llama-perplexity, 4 chunks of 512: Q4_0 RTN {p_rtn:.4}, GPTQ {p_gptq:.4}");
    assert!(p_gptq < p_rtn, "GPTQ {p_gptq} >= RTN {p_rtn}");
}

#[test]
fn gptq_needs_a_calibration_text() {
    let o = common::run(&[
        "quantize", "in.gguf", "out.gguf", "--type", "Q4_0", "--method", "gptq",
    ]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("--calib"),
        "{}",
        common::stderr(&o)
    );
}
