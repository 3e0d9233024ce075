//! `quant export-hf` and the safetensors folder reader: a GGUF model exported to a Hugging Face
//! folder and quantized back must give the tensor data the GGUF input gives.
mod common;

use common::*;
use quant_cli::model::GgufFile;

fn same_tensors(a: &GgufFile, b: &GgufFile) {
    assert_eq!(a.tensors().len(), b.tensors().len());
    for t in a.tensors() {
        let u = b
            .tensor(&t.name)
            .unwrap_or_else(|| panic!("'{}' missing", t.name));
        assert_eq!((t.dtype, &t.dims), (u.dtype, &u.dims), "{}", t.name);
        assert!(
            a.data(t) == b.data(u),
            "'{}' ({}): data differ",
            t.name,
            t.dtype
        );
    }
}

#[test]
fn export_then_quantize_matches_the_gguf_path() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = tiny_llama();
    let input = dir.path().join("tiny.gguf");
    write_gguf(&input, &meta, &ts);
    let hf = dir.path().join("hf");
    let hf2 = dir.path().join("hf-sharded");
    let o = run(&["export-hf", input.to_str().unwrap(), hf.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Shards of at most 1 MiB: the tiny model takes more than one.
    let o = run(&[
        "export-hf",
        input.to_str().unwrap(),
        hf2.to_str().unwrap(),
        "--shard-size",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(hf2.join("model.safetensors.index.json").exists());
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(hf.join(f).exists(), "{f}");
    }
    // HF names and shapes, q rows back in HF order (GGUF row 2j+i of a head = HF row i*hd/2+j).
    let bytes = std::fs::read(hf.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let q = st.tensor("model.layers.1.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.shape(), [64, 64]);
    let q_gguf = &ts
        .iter()
        .find(|t| t.name == "blk.1.attn_q.weight")
        .unwrap()
        .data;
    let row = |r: usize| &q.data()[r * 256..(r + 1) * 256];
    let g_row = |r: usize| -> Vec<u8> {
        q_gguf[r * 64..(r + 1) * 64]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    };
    // Head 1 (rows 16..32), hd 16: HF row 16 + 8 + 3 (i=1, j=3) is GGUF row 16 + 2*3 + 1.
    assert_eq!(row(27), &g_row(23)[..]);
    assert_eq!(
        st.tensor("model.embed_tokens.weight").unwrap().shape(),
        [100, 64]
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(hf.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["num_key_value_heads"], 2);
    assert_eq!(cfg["tie_word_embeddings"], true);

    // The folder read back as GGUF: same tokenizer, same tensor data for every type.
    let src = quant_cli::model::open(&hf).unwrap();
    let m = src.metadata();
    let get = |k: &str| m.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    for k in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
    ] {
        assert_eq!(
            get(k).as_ref(),
            meta.iter().find(|(key, _)| key == k).map(|(_, v)| v),
            "{k}"
        );
    }
    for ty in ["F32", "Q8_0", "Q4_K_M", "BF16"] {
        let from_gguf = dir.path().join(format!("g-{ty}.gguf"));
        let o = run(&[
            "quantize",
            "-q",
            input.to_str().unwrap(),
            from_gguf.to_str().unwrap(),
            "--type",
            ty,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        for (k, d) in [("hf", &hf), ("sharded", &hf2)] {
            let from_dir = dir.path().join(format!("{k}-{ty}.gguf"));
            let o = run(&[
                "quantize",
                "-q",
                d.to_str().unwrap(),
                from_dir.to_str().unwrap(),
                "--type",
                ty,
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            same_tensors(
                &GgufFile::open(&from_gguf).unwrap(),
                &GgufFile::open(&from_dir).unwrap(),
            );
        }
    }
    // An existing non-empty folder is refused.
    let o = run(&["export-hf", input.to_str().unwrap(), hf.to_str().unwrap()]);
    assert!(
        !o.status.success() && stderr(&o).contains("not an empty folder"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn real_model_round_trips_through_a_sharded_folder() {
    let Some(model) = env_path("QUANT_MODEL", "the real model") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("hf");
    let o = run(&[
        "export-hf",
        model.to_str().unwrap(),
        hf.to_str().unwrap(),
        "--shard-size",
        "200",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(hf.join("model-00003-of-00003.safetensors").exists());
    let g = GgufFile::open(&model).unwrap();
    let src = quant_cli::model::open(&hf).unwrap();
    let m = src.metadata();
    for k in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.chat_template",
    ] {
        assert_eq!(
            m.iter().find(|(key, _)| key == k).map(|(_, v)| v),
            g.get(k),
            "{k}"
        );
    }
    for ty in ["Q8_0", "Q4_K_M"] {
        let a = dir.path().join(format!("a-{ty}.gguf"));
        let b = dir.path().join(format!("b-{ty}.gguf"));
        for (i, o) in [(&model, &a), (&hf, &b)] {
            let r = run(&[
                "quantize",
                "-q",
                i.to_str().unwrap(),
                o.to_str().unwrap(),
                "--type",
                ty,
            ]);
            assert!(r.status.success(), "{}", stderr(&r));
        }
        same_tensors(&GgufFile::open(&a).unwrap(), &GgufFile::open(&b).unwrap());
        eprintln!("{ty}: the HF folder gives the GGUF input's tensor data, byte for byte");
    }
}
