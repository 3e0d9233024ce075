//! `quant export-awq`: the packed tensors decode with AutoAWQ's formula (its reverse order map over
//! the nibbles) to the source weights within half a quantization step, in HF row order.
mod common;

use common::*;
use quant_cli::model::GgufFile;
use safetensors::SafeTensors;

fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

/// AutoAWQ's `AWQ_REVERSE_ORDER`: output `8c + k` sits in nibble `REVERSE[k]` of word `c`.
const REVERSE: [usize; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// Decodes tensor `p` (`rows x cols`, groups of `group` inputs) with AutoAWQ's formula and compares
/// it with `weights` (HF row order).
fn check_decodes(
    st: &SafeTensors,
    p: &str,
    rows: usize,
    cols: usize,
    group: usize,
    weights: &[f32],
) {
    let groups = cols / group;
    assert_eq!(
        st.tensor(&format!("{p}.qweight")).unwrap().shape(),
        [cols, rows / 8]
    );
    assert_eq!(
        st.tensor(&format!("{p}.qzeros")).unwrap().shape(),
        [groups, rows / 8]
    );
    assert_eq!(
        st.tensor(&format!("{p}.scales")).unwrap().shape(),
        [groups, rows]
    );
    let qw = i32s(st.tensor(&format!("{p}.qweight")).unwrap().data());
    let qz = i32s(st.tensor(&format!("{p}.qzeros")).unwrap().data());
    let sc: Vec<f32> = st
        .tensor(&format!("{p}.scales"))
        .unwrap()
        .data()
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    let wpr = rows / 8;
    // Decoding with the identity order instead must fail somewhere: the order is checked.
    let mut identity_misses = 0;
    let nib = |word: i32, k: usize| (word >> (4 * k)) & 15;
    for r in 0..rows {
        for c in 0..cols {
            let g = c / group;
            let q = nib(qw[c * wpr + r / 8], REVERSE[r % 8]);
            let z = nib(qz[g * wpr + r / 8], REVERSE[r % 8]);
            let s = sc[g * rows + r];
            let w = (q - z) as f32 * s;
            let x = weights[r * cols + c];
            assert!(
                (w - x).abs() <= s * 0.5 + 1e-3 * x.abs() + 1e-6,
                "{p} r{r} c{c}: {w} vs {x} (s {s})"
            );
            let wrong =
                (nib(qw[c * wpr + r / 8], r % 8) - nib(qz[g * wpr + r / 8], r % 8)) as f32 * s;
            if (wrong - x).abs() > s * 0.5 + 1e-3 * x.abs() + 1e-6 {
                identity_misses += 1;
            }
        }
    }
    assert!(identity_misses > 0);
}

#[test]
fn awq_folder_decodes_to_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = tiny_llama();
    let input = dir.path().join("tiny.gguf");
    write_gguf(&input, &meta, &ts);
    let out = dir.path().join("awq");
    let o = run(&[
        "export-awq",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--group-size",
        "32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    let qc = &cfg["quantization_config"];
    assert_eq!(qc["quant_method"], "awq");
    assert_eq!(qc["version"], "gemm");
    assert_eq!(qc["bits"], 4);
    assert_eq!(qc["group_size"], 32);
    assert_eq!(qc["zero_point"], true);
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        st.tensor("model.norm.weight").unwrap().dtype(),
        safetensors::Dtype::F16
    );
    assert!(st.tensor("model.layers.0.mlp.up_proj.qweight").is_ok());
    // k_proj of block 1: 32 outputs x 64 inputs, HF order = GGUF rows un-permuted (2 KV heads).
    let gguf = &ts
        .iter()
        .find(|t| t.name == "blk.1.attn_k.weight")
        .unwrap()
        .data;
    let (rows, cols, hd, half) = (32usize, 64usize, 16, 8);
    let mut hf = vec![0f32; rows * cols];
    for r in 0..rows {
        let (h, i, j) = (r / hd, (r % hd) / half, r % half);
        let g_row = h * hd + 2 * j + i;
        hf[r * cols..(r + 1) * cols].copy_from_slice(&gguf[g_row * cols..(g_row + 1) * cols]);
    }
    let p = "model.layers.1.self_attn.k_proj";
    check_decodes(&st, p, rows, cols, 32, &hf);
    let o = run(&[
        "export-awq",
        input.to_str().unwrap(),
        dir.path().join("bad").to_str().unwrap(),
        "--group-size",
        "48",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("group size 48"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn real_model_folder_decodes_to_its_weights() {
    let Some(model) = env_path("QUANT_MODEL", "the real model") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("awq");
    // SmolLM2-135M's 576-wide inputs take groups of 64, not the default 128.
    let o = run(&[
        "export-awq",
        model.to_str().unwrap(),
        out.to_str().unwrap(),
        "--group-size",
        "64",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    // ffn_down: 576 outputs x 1536 inputs, rows in the same order in GGUF and HF.
    let w = GgufFile::open(&model)
        .unwrap()
        .tensor_f32("blk.3.ffn_down.weight")
        .unwrap();
    let p = "model.layers.3.mlp.down_proj";
    check_decodes(&st, p, w.shape[0], w.shape[1], 64, &w.data);
}
