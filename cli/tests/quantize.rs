//! `quant quantize` and `quant inspect` on tiny models the tests write, and on bad inputs.
mod common;

use common::*;
use quant_cli::model::{DType, GgufFile, Value};

#[test]
fn quantizes_a_tiny_model_by_mix_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = tiny_llama();
    let input = dir.path().join("tiny.gguf");
    write_gguf(&input, &meta, &ts);
    let out = dir.path().join("tiny-q8.gguf");
    let o = run(&[
        "quantize",
        "-q",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--type",
        "Q8_0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let g = GgufFile::open(&out).unwrap();
    // Metadata carried over, in order, with the two keys llama-quantize sets moved to the end.
    let keys: Vec<&str> = g.metadata().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "general.architecture",
            "general.name",
            "llama.block_count",
            "llama.embedding_length",
            "llama.feed_forward_length",
            "llama.context_length",
            "llama.attention.head_count",
            "llama.attention.head_count_kv",
            "tokenizer.ggml.model",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.token_type",
            "tokenizer.ggml.merges",
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
            "general.quantization_version",
            "general.file_type"
        ]
    );
    assert_eq!(g.get("general.file_type"), Some(&Value::U32(7)));
    assert_eq!(
        g.get("tokenizer.ggml.tokens"),
        meta.iter()
            .find(|(k, _)| k == "tokenizer.ggml.tokens")
            .map(|(_, v)| v)
    );
    for t in &ts {
        let info = g.tensor(&t.name).unwrap();
        let want = if t.dims.len() == 1 {
            DType::F32
        } else {
            DType::Q8_0
        };
        assert_eq!(info.dtype, want, "{}", t.name);
        let back = g.tensor_f32(&t.name).unwrap();
        let err = back
            .data
            .iter()
            .zip(&t.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err <= 0.1 / 127.0, "{}: {err}", t.name);
    }

    let rules = dir.path().join("rules.txt");
    std::fs::write(
        &rules,
        "blk.0.* = Q4_K\nblk.1.ffn_*.weight = Q4_0\n*_norm.weight = F16\n",
    )
    .unwrap();
    let out2 = dir.path().join("tiny-rules.gguf");
    let o = run(&[
        "quantize",
        "-q",
        input.to_str().unwrap(),
        out2.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]);
    // blk.0.attn_q has rows of 64: Q4_K (blocks of 256) cannot take them; the whole plan fails first.
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("'blk.0.attn_q.weight'") && e.contains("Q4_K") && e.contains("rules.txt:1"),
        "{e}"
    );
    assert!(!out2.exists());
    std::fs::write(
        &rules,
        "*_norm.weight = F16\nblk.0.ffn_down.weight = Q4_K\nblk.1.ffn_down.weight = IQ4_XS\n\
         blk.0.ffn_up.weight = NVFP4\nblk.1.ffn_*.weight = Q4_0\n",
    )
    .unwrap();
    let o = run(&[
        "quantize",
        "-q",
        input.to_str().unwrap(),
        out2.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let g = GgufFile::open(&out2).unwrap();
    assert_eq!(
        g.tensor("blk.0.ffn_down.weight").unwrap().dtype,
        DType::Q4_K
    );
    assert_eq!(g.tensor("blk.1.ffn_up.weight").unwrap().dtype, DType::Q4_0);
    // The non-linear types of 256 and 64 values per block, written and read back through the library.
    for (name, dtype) in [
        ("blk.1.ffn_down.weight", DType::IQ4_XS),
        ("blk.0.ffn_up.weight", DType::NVFP4),
    ] {
        assert_eq!(g.tensor(name).unwrap().dtype, dtype, "{name}");
        let t = ts.iter().find(|t| t.name == name).unwrap();
        let back = g.tensor_f32(name).unwrap();
        let amax = t.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = back
            .data
            .iter()
            .zip(&t.data)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // Half the widest step: amax / 6 for NVFP4 (whose UE4M3 scale may round up, by at most
        // 1/16), less for IQ4_XS.
        assert!(
            err > 0.0 && err <= amax / 6.0 * (17.0 / 16.0),
            "{name}: {err} (amax {amax})"
        );
    }
    assert_eq!(
        g.tensor("blk.1.attn_norm.weight").unwrap().dtype,
        DType::F16
    );
    assert_eq!(g.tensor("blk.1.ffn_norm.weight").unwrap().dtype, DType::F16);
    assert_eq!(g.tensor("blk.0.attn_q.weight").unwrap().dtype, DType::F32);
    // No --type: the input's file type stays.
    assert_eq!(g.get("general.file_type"), Some(&Value::U32(0)));

    let o = run(&["inspect", input.to_str().unwrap(), "--type", "Q4_K_M"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    // Rows of 64 fit no K block nor Q5_0's fallback chain beyond 32: Q4_K -> Q5_0.
    assert!(
        s.contains("blk.0.attn_q.weight") && s.contains("-> Q5_0"),
        "{s}"
    );
    assert!(
        s.contains("token_embd.weight") && s.contains("-> Q8_0"),
        "{s}"
    );
    assert_eq!(
        listing(dir.path()),
        ["rules.txt", "tiny-q8.gguf", "tiny-rules.gguf", "tiny.gguf"]
    );
}

#[test]
fn output_equal_to_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = tiny_llama();
    let input = dir.path().join("m.gguf");
    write_gguf(&input, &meta, &ts);
    let before = std::fs::read(&input).unwrap();
    let same = dir.path().join(".").join("m.gguf");
    let o = run(&[
        "quantize",
        input.to_str().unwrap(),
        same.to_str().unwrap(),
        "--type",
        "Q8_0",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is the input"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&input).unwrap(), before);
    assert_eq!(listing(dir.path()), ["m.gguf"]);
}

#[test]
fn nan_weight_names_the_tensor_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, mut ts) = tiny_llama();
    ts[5].data[70] = f32::NAN;
    let name = ts[5].name.clone();
    let input = dir.path().join("nan.gguf");
    write_gguf(&input, &meta, &ts);
    let out = dir.path().join("out.gguf");
    let o = run(&[
        "quantize",
        "-q",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--type",
        "Q4_0",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(&format!("'{name}'")) && e.contains("NaN") && e.contains("row 1"),
        "{e}"
    );
    assert_eq!(listing(dir.path()), ["nan.gguf"]);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = tiny_llama();
    let bytes = gguf_bytes(&meta, &ts);
    let out = dir.path().join("out.gguf");
    let check = |name: &str, data: &[u8], want: &[&str]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        let o = run(&[
            "quantize",
            p.to_str().unwrap(),
            out.to_str().unwrap(),
            "--type",
            "Q8_0",
        ]);
        assert!(!o.status.success(), "{name}");
        let e = stderr(&o);
        assert!(e.contains(p.to_str().unwrap()), "{name}: {e}");
        for w in want {
            assert!(e.contains(w), "{name}: '{w}' not in {e}");
        }
        assert!(!e.contains("panicked"), "{e}");
        assert!(!out.exists());
        std::fs::remove_file(&p).unwrap();
    };
    check(
        "truncated.gguf",
        &bytes[..bytes.len() - 5000],
        &["beyond the end", "truncated"],
    );
    check("header.gguf", &bytes[..100], &["truncated"]);
    check("empty.gguf", &[], &["truncated"]);
    check(
        "text.gguf",
        b"hello world, not a model at all",
        &["not a GGUF file"],
    );
    // The first tensor info (token_embd.weight) follows the metadata: find its type and offset.
    let h = quant_cli::model::gguf::Header::parse(&bytes).unwrap();
    let name_at = bytes
        .windows(17)
        .position(|w| w == b"token_embd.weight")
        .unwrap();
    let type_at = name_at + 17 + 4 + 2 * 8;
    let mut unknown = bytes.clone();
    unknown[type_at..type_at + 4].copy_from_slice(&31u32.to_le_bytes());
    check(
        "unknown.gguf",
        &unknown,
        &["'token_embd.weight'", "unknown ggml type 31"],
    );
    let mut far = bytes.clone();
    let off = (bytes.len() as u64 - h.data_offset).div_ceil(32) * 32;
    far[type_at + 4..type_at + 12].copy_from_slice(&off.to_le_bytes());
    check(
        "offset.gguf",
        &far,
        &["'token_embd.weight'", "beyond the end"],
    );
    let o = run(&[
        "quantize",
        "/nonexistent/m.gguf",
        out.to_str().unwrap(),
        "--type",
        "Q8_0",
    ]);
    assert!(stderr(&o).contains("/nonexistent/m.gguf"));
    // IQ4_XS is a type rules may name, not a mix: llama.cpp's IQ4_XS mix is not reproduced.
    let o = run(&["quantize", "x", "y", "--type", "IQ4_XS"]);
    assert!(
        stderr(&o).contains("unknown --type IQ4_XS"),
        "{}",
        stderr(&o)
    );
}

/// A write error (here the file-size limit, as a full disk would) is reported and the temporary
/// file removed.
#[test]
fn write_error_is_reported_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = tiny_llama();
    let input = dir.path().join("m.gguf");
    write_gguf(&input, &meta, &ts);
    let out = dir.path().join("out.gguf");
    // Ignore SIGXFSZ so that writes past the limit fail with EFBIG instead of killing the process.
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 40; exec '{}' quantize -q '{}' '{}' --type F32",
            env!("CARGO_BIN_EXE_quant"),
            input.display(),
            out.display()
        ))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(out.to_str().unwrap()) && e.contains("File too large"),
        "{e}"
    );
    assert_eq!(listing(dir.path()), ["m.gguf"]);
}
