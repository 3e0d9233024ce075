//! `export-gptq --calib` and `export-awq --calib` on a tiny model whose tokenizer reads letters: the
//! folders load in `quant eval`'s reader, their layers' held-out output errors are below
//! round-to-nearest's, and the whole model's held-out logits are closer to the source's than the
//! round-to-nearest folder's are. AWQ's folder holds folded norms and still computes the model.
mod common;

use std::path::Path;

use common::*;
use quant_cli::calibrate::CalibOptions;
use quant_cli::eval;
use quant_cli::model::packed::HfFolder;
use quant_cli::model::{GgufFile, Value, ValueType};
use quant_cli::packed_calib;

/// The tiny model with a byte-level vocabulary of single letters (and the space, `Ġ`), no merges.
fn lettered() -> (Vec<(String, Value)>, Vec<T>) {
    let (mut meta, ts) = tiny_llama();
    let mut tokens: Vec<String> = vec!["<s>".into(), "</s>".into(), "\u{120}".into()];
    tokens.extend(('a'..='z').map(String::from));
    while tokens.len() < 100 {
        tokens.push(format!("<pad{}>", tokens.len()));
    }
    for (k, v) in meta.iter_mut() {
        match k.as_str() {
            "tokenizer.ggml.tokens" => {
                *v = Value::Array(
                    ValueType::String,
                    tokens.iter().map(|t| Value::string(t)).collect(),
                )
            }
            "tokenizer.ggml.merges" => *v = Value::Array(ValueType::String, vec![]),
            _ => {}
        }
    }
    meta.push((
        "llama.attention.layer_norm_rms_epsilon".into(),
        Value::F32(1e-5),
    ));
    (meta, ts)
}

/// Words of pseudo-random letters, with a skewed letter distribution (so activations have
/// structure to calibrate on).
fn text(n_words: usize) -> String {
    let mut s = String::new();
    let mut x = 12345u32;
    for _ in 0..n_words {
        x = x.wrapping_mul(1664525).wrapping_add(1013904223);
        let len = 2 + (x >> 28) as usize % 6;
        for _ in 0..len {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            let r = (x >> 16) as f64 / 65536.0;
            s.push((b'a' + (r * r * 26.0) as u8).min(b'z') as char);
        }
        s.push(' ');
    }
    s
}

fn opts(text: &Path, awq: bool) -> CalibOptions {
    CalibOptions {
        text: text.to_path_buf(),
        samples: 8,
        seq_len: 32,
        held_out: 4,
        mse_search: false,
        weighted: false,
        default_gptq: !awq,
        awq,
        smooth_alpha: None,
        token_normalized: true,
    }
}

/// ||logits(folder) - logits(source)|| / ||logits(source)|| over `seqs`.
fn logit_error(source: &quant_cli::arch::llama::Llama, dir: &Path, seqs: &[Vec<u32>]) -> f64 {
    let f = HfFolder::open(dir).unwrap();
    let m = eval::folder_llama(&f).unwrap();
    let (mut num, mut den) = (0f64, 0f64);
    for s in seqs {
        let a = source.forward(s, 0).unwrap();
        let b = m.forward(s, 0).unwrap();
        for (x, y) in a.iter().zip(&b) {
            num += f64::from(x - y).powi(2);
            den += f64::from(*x).powi(2);
        }
    }
    (num / den).sqrt()
}

#[test]
fn calibrated_folders_load_and_beat_round_to_nearest_on_held_out_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = lettered();
    let input = dir.path().join("tiny.gguf");
    write_gguf(&input, &meta, &ts);
    let calib = dir.path().join("calib.txt");
    std::fs::write(&calib, text(400)).unwrap();
    let g = GgufFile::open(&input).unwrap();

    // Each layer's held-out output error, through the library's API.
    for awq in [false, true] {
        let o = opts(&calib, awq);
        let p = if awq {
            packed_calib::awq(&g, &o, 32, true).unwrap()
        } else {
            packed_calib::gptq(&g, &o, 32, true).unwrap()
        };
        let s = &p.summary;
        assert!(s.errors_held_out, "the text holds held-out samples");
        assert_eq!(s.summary.len(), 14);
        let (err, rtn): (f64, f64) = s
            .summary
            .iter()
            .fold((0.0, 0.0), |a, r| (a.0 + r.err, a.1 + r.err_rtn));
        assert!(err < rtn, "awq {awq}: mean error {err} vs RTN {rtn}");
        assert_eq!(p.weights.len(), 14);
        assert_eq!(p.replaced.len(), if awq { 4 } else { 0 });
    }

    // Through the command: folders that load, closer to the source than round-to-nearest.
    let mut folders = vec![];
    for (cmd, calibrated) in [
        ("export-gptq", false),
        ("export-gptq", true),
        ("export-awq", false),
        ("export-awq", true),
    ] {
        let out = dir.path().join(format!("{cmd}-{calibrated}"));
        let mut args = vec![
            cmd,
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--group-size",
            "32",
        ];
        if calibrated {
            args.extend([
                "--calib",
                calib.to_str().unwrap(),
                "--samples",
                "8",
                "--seq-len",
                "32",
            ]);
        }
        let o = run(&args);
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        if calibrated {
            let e = stderr(&o);
            assert!(e.contains("mean ratio") && e.contains("held-out"), "{e}");
        }
        folders.push(out);
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folders[1].join("config.json")).unwrap()).unwrap();
    let q = cfg["quantization_config"]["meta"]["quantizer"][0]
        .as_str()
        .unwrap();
    assert!(q.contains("GPTQ"), "{q}");

    let source = eval::llama(&g).unwrap();
    let tokenizer = eval::tokenizer(&g).unwrap();
    let tokens = tokenizer.encode(&text(400)).unwrap();
    // Held-out: after the 8 x 32 calibration tokens.
    let seqs: Vec<Vec<u32>> = tokens[8 * 32..]
        .chunks_exact(32)
        .take(4)
        .map(<[u32]>::to_vec)
        .collect();
    assert_eq!(seqs.len(), 4);
    let errs: Vec<f64> = folders
        .iter()
        .map(|d| logit_error(&source, d, &seqs))
        .collect();
    // The two round-to-nearest folders hold the same codes.
    assert!((errs[0] - errs[2]).abs() < 1e-6, "{errs:?}");
    assert!(errs[1] < errs[0], "GPTQ {} vs RTN {}", errs[1], errs[0]);
    assert!(errs[3] < errs[2], "AWQ {} vs RTN {}", errs[3], errs[2]);
    // `quant eval` on a folder: its tokenizer.json reads the letters as the GGUF's tokenizer does.
    let eval_ppl = |extra: &[&str]| -> f64 {
        let mut args = vec![
            "eval",
            folders[1].to_str().unwrap(),
            "--text",
            calib.to_str().unwrap(),
            "--ctx",
            "32",
            "--chunks",
            "4",
            "--json",
            "-q",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "eval: {}", stderr(&o));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["chunks"], 4);
        j["ppl"].as_f64().unwrap()
    };
    let own = eval_ppl(&[]);
    let given = eval_ppl(&["--tokenizer", input.to_str().unwrap()]);
    assert!(
        own.is_finite() && own > 1.0 && own == given,
        "{own} vs {given}"
    );

    // AWQ's norms are folded: not the source's.
    let awq = HfFolder::open(&folders[3]).unwrap();
    let norm = awq.tensor("blk.0.attn_norm.weight").unwrap().unwrap();
    let src = &ts
        .iter()
        .find(|t| t.name == "blk.0.attn_norm.weight")
        .unwrap()
        .data;
    assert!(norm
        .data
        .iter()
        .zip(src)
        .any(|(a, b)| (a - half::f16::from_f32(*b).to_f32()).abs() > 1e-3));
}
