//! The tokenizer and `quant eval` against llama.cpp on the real model and texts.
//!
//! Inputs come from the environment (scripts/test-model.sh sets them):
//!   QUANT_MODEL       the reference GGUF (SmolLM2-135M-Instruct.Q4_1.gguf)
//!   QUANT_LLAMA_BIN   the folder holding llama-tokenize, llama-perplexity, llama-quantize
//!   QUANT_TEXTS       the inputs folder: austen/, shakespeare/, texts/eval.txt
//! A test skips, saying why, when a variable is unset, and fails when it names a missing file.
use std::path::{Path, PathBuf};
use std::process::Command;

use quant_cli::eval;
use quant_cli::model::GgufFile;

/// The path in `var`, or None (the test then skips) when the variable is unset.
fn input(var: &str, sub: &str) -> Option<PathBuf> {
    let Ok(v) = std::env::var(var) else {
        eprintln!("skipped: {var} is not set (scripts/test-model.sh sets it)");
        return None;
    };
    let p = if sub.is_empty() {
        PathBuf::from(&v)
    } else {
        Path::new(&v).join(sub)
    };
    assert!(p.exists(), "{var}={v}: {} does not exist", p.display());
    Some(p)
}

fn inputs() -> Option<(PathBuf, PathBuf, PathBuf)> {
    Some((
        input("QUANT_MODEL", "")?,
        input("QUANT_LLAMA_BIN", "")?,
        input("QUANT_TEXTS", "")?,
    ))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// llama.cpp's ids for `text`, as its perplexity tool makes them (no escape processing, special tokens
/// not parsed, BOS as the model says).
fn llama_ids(bin: &Path, model: &Path, text: &str, dir: &Path) -> Vec<u32> {
    let f = dir.join("text.txt");
    std::fs::write(&f, text).unwrap();
    let out = run(Command::new(bin.join("llama-tokenize"))
        .arg("-m")
        .arg(model)
        .arg("-f")
        .arg(&f)
        .args([
            "--ids",
            "--log-disable",
            "--no-escape",
            "--no-parse-special",
        ]));
    let list = out.trim().trim_start_matches('[').trim_end_matches(']');
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("an id"))
        .collect()
}

/// The first `n` bytes of `text` cut back to a character boundary.
fn head(text: &str, n: usize) -> &str {
    let mut n = n.min(text.len());
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    &text[..n]
}

#[test]
fn token_ids_equal_llama_tokenize() {
    let Some((model, bin, texts)) = inputs() else {
        return;
    };
    let g = GgufFile::open(&model).unwrap();
    let tok = eval::tokenizer(&g).unwrap();
    let read = |p: &str| std::fs::read_to_string(texts.join(p)).unwrap();
    let emma = read("austen/emma.txt");
    let pride = read("austen/pride_prejudice.txt");
    let lear = read("shakespeare/lear_gut.txt");
    let samples = [
        read("texts/eval.txt"),
        head(&pride, 6000).to_string(),
        head(&emma[400_000..], 6000).to_string(),
        head(&lear, 5000).to_string(),
        // Whitespace runs, tabs, CRLF, digit runs, contractions, punctuation runs, non-ASCII letters and
        // numbers (No, Nd outside ASCII), an emoji, and special-token spellings (tokenized as text).
        "Numbers 1234567 and 3.14159, 1,000,000; dates 1815-12-23.\n\n\n   three spaces\tand\ttabs\t\t \
         and CRLF\r\nline   \n  \n\nNon-ASCII: café naïve — “quoted” ‘single’ ½ ² 中文 😀 Привет ٣٤ \
         it's I'LL we've   don't!!! ...?? <|endoftext|> <|im_start|>\n    \n end   "
            .to_string(),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in samples.iter().enumerate() {
        let want = llama_ids(&bin, &model, text, dir.path());
        let got = tok.encode(text).unwrap();
        let first_diff = want.iter().zip(&got).position(|(a, b)| a != b);
        assert!(
            want == got,
            "sample {i}: {} ids from llama-tokenize, {} ours, first difference at {first_diff:?}",
            want.len(),
            got.len()
        );
        eprintln!(
            "sample {i}: {} bytes, {} ids, identical",
            text.len(),
            got.len()
        );
    }
}

/// `Final estimate: PPL = X` in either tool's output.
fn final_ppl(out: &str) -> f64 {
    let line = out
        .lines()
        .find_map(|l| l.split("Final estimate: PPL = ").nth(1))
        .unwrap_or_else(|| panic!("no final estimate in:\n{out}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

/// Our perplexity and llama-perplexity's, same model, text, context and chunk count.
fn both_ppl(bin: &Path, model: &Path, text: &Path, chunks: &str) -> (f64, f64) {
    let ours = run(Command::new(env!("CARGO_BIN_EXE_quant"))
        .arg("eval")
        .arg(model)
        .arg("--text")
        .arg(text)
        .args(["--ctx", "512", "--chunks", chunks, "--quiet"]));
    let out = Command::new(bin.join("llama-perplexity"))
        .arg("-m")
        .arg(model)
        .arg("-f")
        .arg(text)
        .args(["-c", "512", "--chunks", chunks])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "llama-perplexity: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // llama.cpp logs to stderr.
    let theirs = final_ppl(&String::from_utf8_lossy(&out.stderr));
    (final_ppl(&ours), theirs)
}

fn assert_close(what: &str, ours: f64, theirs: f64) {
    let rel = ours / theirs - 1.0;
    eprintln!(
        "{what}: quant eval {ours:.4}, llama-perplexity {theirs:.4} ({:+.2}%)",
        rel * 100.0
    );
    assert!(
        rel.abs() < 0.01,
        "{what}: quant eval {ours} vs llama-perplexity {theirs}: more than 1% apart"
    );
}

#[test]
fn perplexity_agrees_with_llama_perplexity() {
    let Some((model, bin, texts)) = inputs() else {
        return;
    };
    let text = texts.join("texts/eval.txt");
    assert!(
        text.exists(),
        "{} does not exist (scripts/inputs.sh makes it)",
        text.display()
    );
    let (ours, theirs) = both_ppl(&bin, &model, &text, "4");
    assert_close("reference Q4_1", ours, theirs);

    // A file that llama.cpp quantized: other block types, same numbers expected.
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q8_0.gguf");
    run(Command::new(bin.join("llama-quantize"))
        .arg("--allow-requantize")
        .arg(&model)
        .arg(&q)
        .arg("Q8_0"));
    let (ours, theirs) = both_ppl(&bin, &q, &text, "4");
    assert_close("llama-quantize Q8_0", ours, theirs);

    // A file that this tool quantized (k-quants, the mix's fallbacks), which llama.cpp then loads.
    let q = dir.path().join("q4_k_m.gguf");
    run(Command::new(env!("CARGO_BIN_EXE_quant"))
        .arg("quantize")
        .arg(&model)
        .arg(&q)
        .args(["--type", "Q4_K_M", "--quiet"]));
    let (ours, theirs) = both_ppl(&bin, &q, &text, "4");
    assert_close("quant quantize Q4_K_M", ours, theirs);
}
