//! `quant quantize --method gptq` on the real model, checked by llama.cpp: the GPTQ Q4_0 file and the
//! GPTQ Q4_K_M file (a mix: K-quants where a tensor's rows allow them, the mix's fallbacks elsewhere)
//! load in llama-perplexity, and their perplexities on a few chunks of the evaluation text are below
//! those of the round-to-nearest files (the same plan, `--method rtn`); a rules file that gives
//! tensors their own type and method (GPTQ Q4_K, GPTQ Q4_0, RTN Q8_0, the rest by a mix) works end
//! to end; SmoothQuant's Q8_0 file scores as the RTN file in llama-perplexity and below it with INT8
//! per-token activations (`quant eval --act-int8`).
//!
//! Inputs (scripts/test-model.sh sets them; the test skips, saying why, when one is unset):
//!   QUANT_MODEL       the reference GGUF (SmolLM2-135M-Instruct.Q4_1.gguf)
//!   QUANT_LLAMA_BIN   the folder holding llama-perplexity
//!   QUANT_TEXTS       the inputs folder: texts/calibration.txt, texts/eval.txt
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::env_path;
use quant_cli::model::GgufFile;

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

/// `quant quantize MODEL DIR/NAME.gguf --type TY --method METHOD EXTRA..`: the file and the log.
fn quantize(model: &Path, dir: &Path, ty: &str, method: &str, extra: &[&str]) -> (PathBuf, String) {
    let out = dir.join(format!("{ty}-{method}.gguf"));
    let o = common::bin()
        .arg("quantize")
        .arg(model)
        .arg(&out)
        .args(["--type", ty, "--method", method])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "quant quantize --type {ty} --method {method}: {}",
        common::stderr(&o)
    );
    (out, common::stderr(&o))
}

/// The reference model, llama.cpp's tools folder and the inputs folder, or `None` (the test does
/// nothing) when one of them is not set.
/// The round-to-nearest file of type `ty` and the file of `method` calibrated on 16 samples of 256
/// tokens of `calib`, in `dir`: `(rtn, calibrated, the calibrated run's log)`.
fn rtn_and_calibrated(
    model: &Path,
    dir: &Path,
    ty: &str,
    method: &str,
    calib: &Path,
) -> (PathBuf, PathBuf, String) {
    let (rtn, _) = quantize(model, dir, ty, "rtn", &[]);
    let calib = calib.to_str().unwrap();
    let args = ["--calib", calib, "--samples", "16", "--seq-len", "256"];
    let (calibrated, log) = quantize(model, dir, ty, method, &args);
    (rtn, calibrated, log)
}

fn inputs() -> Option<(PathBuf, PathBuf, PathBuf)> {
    Some((
        env_path("QUANT_MODEL", "the reference model")?,
        env_path("QUANT_LLAMA_BIN", "llama.cpp's tools")?,
        env_path("QUANT_TEXTS", "the texts")?,
    ))
}

/// The real model quantized to `ty` (a type or a mix) by round-to-nearest and by GPTQ (16 x 256
/// calibration tokens, which keeps the test's forward passes affordable): GPTQ's summary lists the
/// `gptq_tensors` block linear layers it requantizes, each below round-to-nearest on the held-out
/// tokens; `check` sees the RTN
/// file, the GPTQ file and the summary's rows; then both files load in llama-perplexity and GPTQ
/// scores below RTN on 4 chunks of the evaluation text. Nothing when the inputs are not set.
fn gptq_beats_rtn(ty: &str, gptq_tensors: usize, check: impl Fn(&Path, &Path, &[&str])) {
    let Some((model, bin, texts)) = inputs() else {
        return;
    };
    let (calib, eval) = (
        texts.join("texts/calibration.txt"),
        texts.join("texts/eval.txt"),
    );
    let dir = tempfile::tempdir().unwrap();
    let (rtn, gptq, log) = rtn_and_calibrated(&model, dir.path(), ty, "gptq", &calib);
    assert!(
        log.contains("relative output errors on 1024 held-out tokens"),
        "{log}"
    );
    let rows: Vec<&str> = log.lines().filter(|l| l.starts_with("blk.")).collect();
    assert_eq!(rows.len(), gptq_tensors, "{log}");
    for r in &rows {
        let f: Vec<&str> = r.split_whitespace().collect();
        let (e_rtn, e_gptq): (f64, f64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        assert!(e_gptq < e_rtn, "{r}");
    }
    check(&rtn, &gptq, &rows);
    let p_rtn = llama_ppl(&bin, &rtn, &eval, "4");
    let p_gptq = llama_ppl(&bin, &gptq, &eval, "4");
    eprintln!("llama-perplexity, 4 chunks of 512: {ty} RTN {p_rtn:.4}, GPTQ {p_gptq:.4}");
    assert!(p_gptq < p_rtn, "GPTQ {p_gptq} >= RTN {p_rtn}");
}

#[test]
fn gptq_q4_0_loads_in_llama_cpp_and_beats_round_to_nearest() {
    // The weighted fit plans Q4_0 as llama-quantize does with an imatrix: the first three ffn_down
    // layers are Q4_1, which the Q4_1 input already holds, so they are copied, not requantized.
    gptq_beats_rtn("Q4_0", 30 * 7 - 3, |_, _, _| {});
}

#[test]
fn gptq_q4_k_m_keeps_the_mix_loads_in_llama_cpp_and_beats_round_to_nearest() {
    gptq_beats_rtn("Q4_K_M", 30 * 7, |rtn, gptq, rows| {
        // The mix's per-tensor types and sizes; every tensor GPTQ did not write is the RTN file's,
        // byte for byte; K-quants among GPTQ's.
        let (a, b) = (GgufFile::open(rtn).unwrap(), GgufFile::open(gptq).unwrap());
        assert_eq!(a.tensors().len(), b.tensors().len());
        let mut k_quants = 0;
        for t in a.tensors() {
            let u = b.tensor(&t.name).unwrap();
            assert_eq!(
                (t.dtype, &t.dims, t.n_bytes),
                (u.dtype, &u.dims, u.n_bytes),
                "{}",
                t.name
            );
            let by_gptq = rows
                .iter()
                .any(|r| r.split_whitespace().next() == Some(&t.name));
            assert_eq!(a.data(t) == b.data(u), !by_gptq, "{}", t.name);
            k_quants += usize::from(by_gptq && t.dtype.to_string().ends_with("_K"));
        }
        assert!(k_quants > 0, "no K-quant tensor by GPTQ");
    });
}

#[test]
fn awq_folds_its_scales_loads_in_llama_cpp_and_beats_round_to_nearest() {
    let Some((model, bin, texts)) = inputs() else {
        return;
    };
    let (calib, eval) = (
        texts.join("texts/calibration.txt"),
        texts.join("texts/eval.txt"),
    );
    let dir = tempfile::tempdir().unwrap();
    let (rtn, awq, log) = rtn_and_calibrated(&model, dir.path(), "Q4_0", "awq", &calib);
    assert!(
        log.contains("relative output errors on 1024 held-out tokens"),
        "{log}"
    );
    // The norms that took the scales are counted as rewritten, not quantized: two per block.
    assert!(log.contains(", 60 rewritten with folded scales"), "{log}");
    // Every block linear layer but the three Q4_1 ffn_down copies of the weighted Q4_0 plan; on the
    // held-out tokens AWQ's error is below the weighted quantizer's on average.
    let rows: Vec<&str> = log.lines().filter(|l| l.starts_with("blk.")).collect();
    assert_eq!(rows.len(), 30 * 7 - 3, "{log}");
    let mean: f64 = log
        .lines()
        .find_map(|l| l.strip_prefix("mean ratio AWQ / RTN: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(mean < 1.0, "{log}");
    // The scales are folded into the norms: the file's norms are not the input's; its tensors
    // have the RTN file's shapes and types but for the three ffn_down layers the weighted plan
    // raises to Q4_1, as llama-quantize's imatrix plan does.
    let (a, b) = (GgufFile::open(&rtn).unwrap(), GgufFile::open(&awq).unwrap());
    let (mut folded, mut raised) = (0, 0);
    for t in a.tensors() {
        let u = b.tensor(&t.name).unwrap();
        assert_eq!(t.dims, u.dims, "{}", t.name);
        if t.dtype != u.dtype {
            assert!(t.name.ends_with("ffn_down.weight"), "{}", t.name);
            raised += 1;
        }
        if t.name.ends_with("_norm.weight") && t.name.starts_with("blk.") && a.data(t) != b.data(u)
        {
            folded += 1;
        }
    }
    assert!(folded > 30, "{folded} norms folded");
    assert_eq!(raised, 3);
    let p_rtn = llama_ppl(&bin, &rtn, &eval, "4");
    let p_awq = llama_ppl(&bin, &awq, &eval, "4");
    eprintln!("llama-perplexity, 4 chunks of 512: Q4_0 RTN {p_rtn:.4}, AWQ {p_awq:.4}");
    assert!(p_awq < p_rtn, "AWQ {p_awq} >= RTN {p_rtn}");
}

/// `quant eval FILE --chunks 4 [--act-int8]`'s perplexity on the evaluation text.
fn quant_ppl(model: &Path, text: &Path, act_int8: bool) -> f64 {
    let mut args = vec![
        "eval",
        model.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--chunks",
        "4",
        "--json",
        "-q",
    ];
    if act_int8 {
        args.push("--act-int8");
    }
    let o = common::run(&args);
    assert!(o.status.success(), "quant eval: {}", common::stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    j["ppl"]
        .as_f64()
        .unwrap_or_else(|| panic!("no number \"ppl\" in {j}"))
}

/// SmoothQuant through the model: its scales are folded into the norms and ffn_up (the file is an
/// ordinary Q8_0 GGUF computing the model's function: llama-perplexity scores it as the RTN file),
/// and with INT8 per-token activations (a W8A8 engine, `quant eval --act-int8`) its perplexity is
/// below the RTN file's.
#[test]
fn smoothquant_folds_its_scales_and_lowers_w8a8_perplexity() {
    let Some((model, bin, texts)) = inputs() else {
        return;
    };
    let (calib, eval) = (
        texts.join("texts/calibration.txt"),
        texts.join("texts/eval.txt"),
    );
    let dir = tempfile::tempdir().unwrap();
    let (rtn, sq, log) = rtn_and_calibrated(&model, dir.path(), "Q8_0", "smoothquant", &calib);
    assert!(log.contains(", 60 rewritten with folded scales"), "{log}");
    assert!(log.contains("mean ratio SmoothQuant / RTN: "), "{log}");
    let (p_rtn, p_sq) = (
        llama_ppl(&bin, &rtn, &eval, "4"),
        llama_ppl(&bin, &sq, &eval, "4"),
    );
    let (w8a8_rtn, w8a8_sq) = (quant_ppl(&rtn, &eval, true), quant_ppl(&sq, &eval, true));
    eprintln!(
        "Q8_0, 4 chunks of 512: llama-perplexity RTN {p_rtn:.4}, SmoothQuant {p_sq:.4}; \
         INT8 activations (quant eval --act-int8) RTN {w8a8_rtn:.4}, SmoothQuant {w8a8_sq:.4}"
    );
    assert!((p_sq / p_rtn - 1.0).abs() < 0.005, "{p_sq} vs {p_rtn}");
    assert!(
        w8a8_sq < w8a8_rtn,
        "SmoothQuant {w8a8_sq} >= RTN {w8a8_rtn}"
    );
    assert!(
        w8a8_rtn > p_rtn,
        "INT8 activations cost nothing: {w8a8_rtn} vs {p_rtn}"
    );
}

#[test]
fn rules_give_tensors_their_own_method_and_type() {
    let Some((model, bin, texts)) = inputs() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.txt");
    std::fs::write(
        &rules,
        "blk.*.ffn_down.weight = Q4_K gptq\n\
         blk.*.attn_v.weight   = Q8_0 rtn\n\
         blk.*.attn_{q,k,output}.weight = Q4_0 gptq\n",
    )
    .unwrap();
    let (calib, eval) = (
        texts.join("texts/calibration.txt"),
        texts.join("texts/eval.txt"),
    );
    let rules_arg = rules.to_str().unwrap();
    let calib_arg = calib.to_str().unwrap();
    let model_arg = model.to_str().unwrap();
    // GPTQ asked for by a rule needs a calibration text, and a calibration text needs a user.
    let o = common::run(&[
        "quantize", model_arg, "x.gguf", "--type", "Q4_K_M", "--rules", rules_arg,
    ]);
    assert!(
        common::stderr(&o).contains("blk.0.attn_k.weight")
            && common::stderr(&o).contains("--calib"),
        "{}",
        common::stderr(&o)
    );
    let o = common::run(&[
        "quantize", model_arg, "x.gguf", "--type", "Q4_K_M", "--calib", calib_arg,
    ]);
    assert!(
        common::stderr(&o).contains("--calib: nothing uses it"),
        "{}",
        common::stderr(&o)
    );
    // The rest of the model by the Q4_K_M mix, round-to-nearest.
    let (mixed, log) = quantize(
        &model,
        dir.path(),
        "Q4_K_M",
        "rtn",
        &[
            "--rules",
            rules_arg,
            "--calib",
            calib_arg,
            "--samples",
            "16",
            "--seq-len",
            "256",
        ],
    );
    assert!(
        log.contains("relative output errors on 1024 held-out tokens"),
        "{log}"
    );
    let rows: Vec<&str> = log.lines().filter(|l| l.starts_with("blk.")).collect();
    // GPTQ on ffn_down, attn_q, attn_k, attn_output: 4 of the 7 linear layers of each block.
    assert_eq!(rows.len(), 30 * 4, "{log}");
    assert!(!rows
        .iter()
        .any(|r| r.contains("attn_v") || r.contains("ffn_up")));
    let g = GgufFile::open(&mixed).unwrap();
    let ty = |n: &str| g.tensor(n).unwrap().dtype.to_string();
    for l in [0, 17, 29] {
        assert_eq!(ty(&format!("blk.{l}.ffn_down.weight")), "Q4_K");
        assert_eq!(ty(&format!("blk.{l}.attn_v.weight")), "Q8_0");
        assert_eq!(ty(&format!("blk.{l}.attn_q.weight")), "Q4_0");
        // Q4_K_M's Q4_K, which 576-wide rows turn into Q5_0.
        assert_eq!(ty(&format!("blk.{l}.ffn_up.weight")), "Q5_0");
    }
    // More bits than a Q4_0 file almost everywhere, and GPTQ where it is 4-bit: below RTN Q4_0.
    let (q4_0, _) = quantize(&model, dir.path(), "Q4_0", "rtn", &[]);
    let p_mixed = llama_ppl(&bin, &mixed, &eval, "4");
    let p_q4_0 = llama_ppl(&bin, &q4_0, &eval, "4");
    eprintln!("llama-perplexity, 4 chunks of 512: rules file {p_mixed:.4}, RTN Q4_0 {p_q4_0:.4}");
    assert!(p_mixed < p_q4_0, "{p_mixed} >= {p_q4_0}");
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
