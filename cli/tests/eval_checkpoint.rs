//! `quant eval` on GPTQ, AWQ and compressed-tensors pack-quantized folders: the packed layers decode to the library's dequantization of
//! the same codes (f16 scales) bit for bit, in GGUF row order; the folder scores exactly as a GGUF
//! file holding those weights; a folder missing a packed tensor, or whose group size does not divide
//! a layer, is an error naming it.
mod common;

use std::path::Path;

use common::*;
use quant::algos::QuantOptions;
use quant::method::QuantMethod;
use quant_cli::eval;
use quant_cli::model::packed::HfFolder;
use quant_cli::model::GgufFile;
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;

const LINEAR: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

fn export(cmd: &str, input: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![cmd, input.to_str().unwrap(), out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "{cmd}: {}", stderr(&o));
}

/// The library's round-to-nearest INT4 of `w` with its scales rounded to f16, dequantized.
fn library_dequant(w: &[f32], rows: usize, cols: usize, group: usize) -> (Vec<f32>, bool) {
    library_dequant_with(
        &QuantMethod::Int4Asymmetric { group_size: group },
        w,
        rows,
        cols,
    )
}

fn library_dequant_with(
    method: &QuantMethod,
    w: &[f32],
    rows: usize,
    cols: usize,
) -> (Vec<f32>, bool) {
    let mut q =
        quant::weight::quantize(method, &QuantOptions::default(), w, rows, cols, None).unwrap();
    for s in q.scales.iter_mut() {
        *s = half::f16::from_f32(*s).to_f32();
    }
    let zero_free = q
        .zero_points
        .as_ref()
        .is_none_or(|z| z.iter().all(|&z| z > 0.0));
    (q.dequantize_to_vec().unwrap(), zero_free)
}

#[test]
fn packed_folders_decode_as_the_library_and_score_as_the_same_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let (mut meta, ts) = tiny_llama();
    meta.push((
        "llama.attention.layer_norm_rms_epsilon".into(),
        quant_cli::model::Value::F32(1e-5),
    ));
    let input = dir.path().join("tiny.gguf");
    write_gguf(&input, &meta, &ts);
    let g32 = ["--group-size", "32"];
    let v1 = dir.path().join("gptq");
    let v2 = dir.path().join("gptq_v2");
    let awq = dir.path().join("awq");
    export(
        "export-gptq",
        &input,
        &v1,
        &[&g32[..], &["--format", "gptq"]].concat(),
    );
    export(
        "export-gptq",
        &input,
        &v2,
        &[&g32[..], &["--format", "gptq_v2"]].concat(),
    );
    export("export-awq", &input, &awq, &g32);
    let ct4 = dir.path().join("w4a16");
    let ct8 = dir.path().join("w8a16");
    export("export-compressed", &input, &ct4, &g32);
    export(
        "export-compressed",
        &input,
        &ct8,
        &["--bits", "8", "--channel", "--symmetric"],
    );
    let compressed: Vec<HfFolder> = [&ct4, &ct8]
        .iter()
        .map(|p| HfFolder::open(p).unwrap())
        .collect();
    let folders: Vec<HfFolder> = [&v1, &v2, &awq]
        .iter()
        .map(|p| HfFolder::open(p).unwrap())
        .collect();
    let mut checked = 0;
    for t in &ts {
        let kind = t.name.split('.').nth(2).unwrap_or("");
        let (cols, rows) = (
            t.dims[0] as usize,
            t.dims.get(1).copied().unwrap_or(1) as usize,
        );
        if LINEAR.contains(&kind) {
            for (f, method) in compressed.iter().zip([
                QuantMethod::Int4Asymmetric { group_size: 32 },
                QuantMethod::Int8Symmetric { group_size: 0 },
            ]) {
                let (want, _) = library_dequant_with(&method, &t.data, rows, cols);
                let got = f.tensor(&t.name).unwrap().unwrap();
                assert!(
                    got.data
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{method} {}: not the library's dequantization",
                    t.name
                );
                checked += 1;
            }
            let (want, zero_free) = library_dequant(&t.data, rows, cols, 32);
            for (f, name) in folders.iter().zip(["gptq", "gptq_v2", "awq"]) {
                let got = f.tensor(&t.name).unwrap().unwrap();
                assert_eq!(got.shape, [rows, cols], "{name} {}", t.name);
                // Version 1 cannot store a zero point of 0 (engines read it as 1).
                if name != "gptq" || zero_free {
                    let same = got
                        .data
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{name} {}: not the library's dequantization", t.name);
                    checked += 1;
                }
            }
        } else {
            // Everything else is stored f16.
            let got = folders[0].tensor(&t.name).unwrap().unwrap();
            for (a, b) in got.data.iter().zip(&t.data) {
                assert_eq!(*a, half::f16::from_f32(*b).to_f32(), "{}", t.name);
            }
        }
    }
    assert!(checked >= 4 * 14, "only {checked} layers compared");
    // compressed-tensors stores scales in the checkpoint's dtype (llm-compressor's f32 models: f32):
    // the same folder with f32 scales decodes to the same weights.
    let ct4_f32 = dir.path().join("w4a16-f32-scales");
    scales_as_f32(&ct4, &ct4_f32);
    let f32_scales = HfFolder::open(&ct4_f32).unwrap();
    for t in ts
        .iter()
        .filter(|t| LINEAR.contains(&t.name.split('.').nth(2).unwrap_or("")))
    {
        let (a, b) = (
            compressed[0].tensor(&t.name).unwrap().unwrap(),
            f32_scales.tensor(&t.name).unwrap().unwrap(),
        );
        assert!(
            a.data
                .iter()
                .zip(&b.data)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{}: f32 scales decode differently",
            t.name
        );
    }
    // Tied embeddings: no output.weight in the folder, none read.
    assert!(folders[0].tensor("output.weight").unwrap().is_none());

    // The folder's forward pass is the GGUF's over the same weights: the same perplexity.
    let deq: Vec<T> = ts
        .iter()
        .map(|t| T {
            name: t.name.clone(),
            dims: t.dims.clone(),
            data: folders[1].tensor(&t.name).unwrap().unwrap().data,
        })
        .collect();
    let same = dir.path().join("same.gguf");
    write_gguf(&same, &meta, &deq);
    let tokens: Vec<u32> = (0..96u32).map(|i| (i * 37 + 11) % 100).collect();
    let from_gguf = eval::llama(&GgufFile::open(&same).unwrap()).unwrap();
    let from_folder = eval::folder_llama(&folders[1]).unwrap();
    let a = eval::perplexity(&from_gguf, &tokens, 16, None, Some(0), true).unwrap();
    let b = eval::perplexity(&from_folder, &tokens, 16, None, Some(0), true).unwrap();
    assert_eq!(a.ppl.to_bits(), b.ppl.to_bits(), "{} vs {}", a.ppl, b.ppl);
    // And not the source's: the weights really are the quantized ones.
    let source = eval::llama(&GgufFile::open(&input).unwrap()).unwrap();
    let c = eval::perplexity(&source, &tokens, 16, None, Some(0), true).unwrap();
    assert_ne!(a.ppl, c.ppl);
}

/// The folder `from` copied to `to` with every `*.weight_scale` tensor stored as f32.
fn scales_as_f32(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    let bytes = std::fs::read(from.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut widened: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    let mut kept: Vec<(String, TensorView)> = Vec::new();
    for (n, v) in st.tensors() {
        if n.ends_with(".weight_scale") {
            assert_eq!(v.dtype(), safetensors::Dtype::F16, "{n}");
            let data = v
                .data()
                .chunks_exact(2)
                .flat_map(|h| {
                    half::f16::from_le_bytes([h[0], h[1]])
                        .to_f32()
                        .to_le_bytes()
                })
                .collect();
            widened.push((n, data, v.shape().to_vec()));
        } else {
            kept.push((n, v));
        }
    }
    assert!(!widened.is_empty());
    for (n, data, shape) in &widened {
        kept.push((
            n.clone(),
            TensorView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap(),
        ));
    }
    let out = safetensors::serialize(kept, None).unwrap();
    std::fs::write(to.join("model.safetensors"), out).unwrap();
}

/// The folder `from` copied to `to` with `drop` left out of model.safetensors and config.json's
/// group size set to `group`.
fn altered(from: &Path, to: &Path, drop: Option<&str>, group: Option<i64>) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    if let Some(drop) = drop {
        let bytes = std::fs::read(from.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let kept: Vec<(String, TensorView)> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| n != drop)
            .collect();
        assert!(kept.len() + 1 == st.len(), "{drop} is not in the folder");
        let out = safetensors::serialize(kept, None).unwrap();
        std::fs::write(to.join("model.safetensors"), out).unwrap();
    }
    if let Some(g) = group {
        let p = to.join("config.json");
        let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        c["quantization_config"]["group_size"] = g.into();
        std::fs::write(&p, serde_json::to_vec(&c).unwrap()).unwrap();
    }
}

fn load_error(dir: &Path) -> String {
    let f = match HfFolder::open(dir) {
        Ok(f) => f,
        Err(e) => return format!("{e:#}"),
    };
    match eval::folder_llama(&f) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn broken_folders_are_errors_naming_the_tensor_or_the_group_size() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = tiny_llama();
    let input = dir.path().join("tiny.gguf");
    write_gguf(&input, &meta, &ts);
    let gptq = dir.path().join("gptq");
    let awq = dir.path().join("awq");
    export("export-gptq", &input, &gptq, &["--group-size", "32"]);
    export("export-awq", &input, &awq, &["--group-size", "32"]);

    let p = "model.layers.1.mlp.down_proj.qzeros";
    let no_zeros = dir.path().join("no-zeros");
    altered(&gptq, &no_zeros, Some(p), None);
    let e = load_error(&no_zeros);
    assert!(e.contains(p) && e.contains("missing"), "{e}");
    let no_zeros = dir.path().join("awq-no-zeros");
    altered(&awq, &no_zeros, Some(p), None);
    let e = load_error(&no_zeros);
    assert!(e.contains(p) && e.contains("missing"), "{e}");

    // 48 does not divide the 64 inputs of the attention layers.
    let bad_group = dir.path().join("group-48");
    altered(&gptq, &bad_group, None, Some(48));
    let e = load_error(&bad_group);
    assert!(
        e.contains("group_size 48 does not divide") && e.contains("64 inputs"),
        "{e}"
    );
    let bad_group = dir.path().join("awq-group-48");
    altered(&awq, &bad_group, None, Some(48));
    let e = load_error(&bad_group);
    assert!(e.contains("group_size 48 does not divide"), "{e}");

    // A group size that divides but is not the one the tensors were packed with: wrong shapes.
    let other_group = dir.path().join("group-16");
    altered(&gptq, &other_group, None, Some(16));
    let e = load_error(&other_group);
    assert!(e.contains("qzeros") && e.contains("stores it as"), "{e}");
}
