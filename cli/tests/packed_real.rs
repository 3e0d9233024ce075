//! GPTQ and AWQ checkpoints of the real model, scored by `quant eval`: the folders calibrated on
//! 16 x 256 tokens of the calibration text (`export-gptq --calib`, `export-awq --calib`) have a lower
//! perplexity on 4 chunks of 512 tokens of the evaluation text than the round-to-nearest folder of
//! the same layout. Groups of 64: SmolLM2-135M's layers read 576 inputs, which 128 does not divide.
//!
//! Inputs (scripts/test-model.sh sets them; the test skips, saying why, when one is unset):
//!   QUANT_MODEL       the reference GGUF (SmolLM2-135M-Instruct.Q4_1.gguf)
//!   QUANT_TEXTS       the inputs folder: texts/calibration.txt, texts/eval.txt
mod common;

use std::path::Path;

use common::*;

/// `quant eval DIR --json`'s perplexity, the source GGUF's tokenizer reading the text.
fn ppl(dir: &Path, model: &Path, text: &Path) -> f64 {
    let o = run(&[
        "eval",
        dir.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        "512",
        "--chunks",
        "4",
        "--tokenizer",
        model.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    assert!(o.status.success(), "eval {}: {}", dir.display(), stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["chunks"], 4);
    j["ppl"].as_f64().unwrap()
}

#[test]
fn calibrated_gptq_and_awq_folders_score_below_round_to_nearest() {
    let (Some(model), Some(texts)) = (
        env_path("QUANT_MODEL", "the reference model"),
        env_path("QUANT_TEXTS", "the texts"),
    ) else {
        return;
    };
    let calib = texts.join("texts/calibration.txt");
    let eval = texts.join("texts/eval.txt");
    let dir = tempfile::tempdir().unwrap();
    let m = model.to_str().unwrap();
    let c = calib.to_str().unwrap();
    let mut figures = vec![];
    for (name, cmd, calibrated) in [
        ("rtn", "export-gptq", false),
        ("gptq", "export-gptq", true),
        ("awq", "export-awq", true),
    ] {
        let out = dir.path().join(name);
        let o_s = out.to_str().unwrap().to_string();
        let mut args = vec![cmd, m, &o_s, "--group-size", "64"];
        if calibrated {
            args.extend(["--calib", c, "--samples", "16", "--seq-len", "256", "-q"]);
        }
        let o = run(&args);
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        figures.push((name, ppl(&out, &model, &eval)));
    }
    eprintln!("perplexity, 4 chunks of 512: {figures:?}");
    let rtn = figures[0].1;
    assert!(rtn.is_finite() && rtn > 1.0, "{figures:?}");
    for (name, p) in &figures[1..] {
        assert!(*p < rtn, "{name} {p} is not below RTN {rtn}");
    }
}
