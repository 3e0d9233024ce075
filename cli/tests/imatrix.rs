//! Importance matrices on the real model, against llama.cpp:
//! - `quant imatrix` computes, through the model's own forward pass, the statistics llama-imatrix
//!   computes on the same chunks (the same entries, token counts and chunk metadata; values within
//!   llama.cpp's own activation rounding);
//! - `quant quantize --imatrix` writes the file llama-quantize --imatrix writes, byte for byte, from
//!   llama-imatrix's file and from quant's (which llama-quantize reads as its own).
//!
//! Inputs (scripts/test-model.sh sets them; a test skips, saying why, when one is unset):
//!   QUANT_MODEL       the reference GGUF (SmolLM2-135M-Instruct.Q4_1.gguf)
//!   QUANT_LLAMA_BIN   the folder holding llama-imatrix and llama-quantize
//!   QUANT_TEXTS       the inputs folder: texts/calibration.txt
mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use quant_cli::imatrix::Imatrix;

/// Chunks of 512 tokens the tests calibrate on (llama-imatrix takes about a second per chunk here).
const CHUNKS: usize = 8;

fn llama_imatrix(bin: &Path, model: &Path, text: &Path, out: &Path) {
    let o = Command::new(bin.join("llama-imatrix"))
        .arg("-m")
        .arg(model)
        .arg("-f")
        .arg(text)
        .args(["--chunks", &CHUNKS.to_string(), "-c", "512", "-o"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "llama-imatrix: {}", stderr(&o));
}

fn quant_imatrix(model: &Path, text: &Path, out: &Path) {
    let o = run(&[
        "imatrix",
        "-q",
        model.to_str().unwrap(),
        "--calib",
        text.to_str().unwrap(),
        "--samples",
        &CHUNKS.to_string(),
        "--seq-len",
        "512",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "quant imatrix: {}", stderr(&o));
}

struct Inputs {
    model: std::path::PathBuf,
    bin: std::path::PathBuf,
    text: std::path::PathBuf,
}

fn inputs() -> Option<Inputs> {
    Some(Inputs {
        model: env_path("QUANT_MODEL", "the real model")?,
        bin: env_path("QUANT_LLAMA_BIN", "llama.cpp's tools")?,
        text: env_path("QUANT_TEXTS", "the texts")?.join("texts/calibration.txt"),
    })
}

#[test]
fn quant_imatrix_agrees_with_llama_imatrix() {
    let Some(i) = inputs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (theirs, ours) = (dir.path().join("llama.gguf"), dir.path().join("quant.gguf"));
    llama_imatrix(&i.bin, &i.model, &i.text, &theirs);
    quant_imatrix(&i.model, &i.text, &ours);
    let (a, b) = (
        Imatrix::read(&theirs).unwrap(),
        Imatrix::read(&ours).unwrap(),
    );
    assert_eq!(
        a.entries.keys().collect::<Vec<_>>(),
        b.entries.keys().collect::<Vec<_>>()
    );
    assert_eq!(a.entries.len(), 210, "7 linear layers x 30 blocks");
    assert_eq!((a.chunk_count, a.chunk_size), (CHUNKS as u32, 512));
    assert_eq!((b.chunk_count, b.chunk_size), (CHUNKS as u32, 512));
    let (mut worst_rel, mut worst_corr) = (0f64, 1f64);
    for (name, sa) in &a.entries {
        let sb = &b.entries[name];
        assert_eq!(sa.counts, sb.counts, "{name}: token counts");
        assert_eq!(sa.counts, vec![(CHUNKS * 512) as u64]);
        let (x, y) = (a.weights(name).unwrap(), b.weights(name).unwrap());
        let max = x.iter().fold(0f64, |m, &v| m.max(v as f64));
        let diff = x
            .iter()
            .zip(&y)
            .fold(0f64, |m, (&p, &q)| m.max((p as f64 - q as f64).abs()));
        let n = x.len() as f64;
        let (mx, my) = (
            x.iter().map(|&v| v as f64).sum::<f64>() / n,
            y.iter().map(|&v| v as f64).sum::<f64>() / n,
        );
        let (mut sxy, mut sxx, mut syy) = (0f64, 0f64, 0f64);
        for (&p, &q) in x.iter().zip(&y) {
            let (p, q) = (p as f64 - mx, q as f64 - my);
            sxy += p * q;
            sxx += p * p;
            syy += q * q;
        }
        let corr = sxy / (sxx * syy).sqrt();
        worst_rel = worst_rel.max(diff / max);
        worst_corr = worst_corr.min(corr);
    }
    eprintln!(
        "quant vs llama-imatrix, {CHUNKS} chunks: largest difference {:.2}% of an entry's largest \
         value, smallest correlation {worst_corr:.6}",
        worst_rel * 100.0
    );
    // llama.cpp rounds the activations to 8 bits inside its matrix products; quant runs in f32.
    // Measured on 40 chunks: at most 1.6%, correlation at least 0.99987.
    assert!(worst_rel < 0.05, "largest difference {worst_rel}");
    assert!(worst_corr > 0.999, "smallest correlation {worst_corr}");
}

/// Mixes whose files hold all ten GGUF block types the library has (576-wide rows fall back to the
/// 32-value types; with an imatrix Q4_0 and Q5_0 raise their first ffn_down layers to Q4_1, Q5_1).
const MIXES: [&str; 5] = ["Q4_0", "Q5_0", "Q2_K", "Q4_K_M", "Q5_K_M"];

#[test]
fn imatrix_files_are_byte_identical_to_llama_quantize() {
    let Some(i) = inputs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (theirs, ours) = (dir.path().join("llama.gguf"), dir.path().join("quant.gguf"));
    llama_imatrix(&i.bin, &i.model, &i.text, &theirs);
    quant_imatrix(&i.model, &i.text, &ours);
    let mut failures = vec![];
    for (label, imatrix) in [("llama-imatrix", &theirs), ("quant imatrix", &ours)] {
        for mix in MIXES {
            let (a, b) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"));
            let o = run(&[
                "quantize",
                "-q",
                i.model.to_str().unwrap(),
                a.to_str().unwrap(),
                "--type",
                mix,
                "--imatrix",
                imatrix.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "quant {mix}: {}", stderr(&o));
            let o = Command::new(i.bin.join("llama-quantize"))
                .arg("--allow-requantize")
                .arg("--imatrix")
                .arg(imatrix)
                .args([&i.model, &b])
                .arg(mix)
                .output()
                .unwrap();
            assert!(o.status.success(), "llama-quantize {mix}: {}", stderr(&o));
            let d = differences(&a, &b);
            eprintln!(
                "{mix:<7} imatrix of {label:<14} {}",
                if d.is_empty() {
                    "identical".to_string()
                } else {
                    format!("{} differences", d.len())
                }
            );
            if !d.is_empty() {
                failures.push(format!("{mix} with the imatrix of {label}: {d:#?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn bad_imatrix_files_are_refused_and_nothing_is_written() {
    let Some(model) = env_path("QUANT_MODEL", "the real model") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    // An entry whose length is not the tensor's row length.
    let mut entries = std::collections::BTreeMap::new();
    entries.insert(
        "blk.0.attn_q.weight".to_string(),
        quant_cli::imatrix::Stat {
            sums: vec![1.0; 100],
            counts: vec![1],
        },
    );
    let m = Imatrix {
        entries,
        datasets: vec![],
        chunk_count: 1,
        chunk_size: 1,
        legacy: false,
    };
    let bad = dir.path().join("bad.gguf");
    m.write(&bad).unwrap();
    let junk = dir.path().join("junk.dat");
    std::fs::write(&junk, b"not an imatrix at all").unwrap();
    for (file, want) in [
        (
            &bad,
            "'blk.0.attn_q.weight' has 100 values but the tensor's rows are 576 long",
        ),
        (&junk, "junk.dat"),
    ] {
        let o = run(&[
            "quantize",
            model.to_str().unwrap(),
            out.to_str().unwrap(),
            "--type",
            "Q4_K_M",
            "--imatrix",
            file.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
        assert!(!out.exists());
    }
    assert_eq!(listing(dir.path()), vec!["bad.gguf", "junk.dat"]);
}
