//! `quant export-gptq`: the packed tensors decode (as engines decode them) to the source weights
//! within half a quantization step, in HF row order, for both checkpoint formats.
mod common;

use common::*;
use safetensors::SafeTensors;

fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

#[test]
fn gptq_folder_decodes_to_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = tiny_llama();
    let input = dir.path().join("tiny.gguf");
    write_gguf(&input, &meta, &ts);
    let mut zeros = vec![];
    for (format, version) in [("gptq", 1), ("gptq_v2", 2)] {
        let out = dir.path().join(format);
        let o = run(&[
            "export-gptq",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--format",
            format,
            "--group-size",
            "32",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        let qc = &cfg["quantization_config"];
        assert_eq!(
            (
                qc["quant_method"].as_str(),
                qc["bits"].as_u64(),
                qc["group_size"].as_u64()
            ),
            (Some("gptq"), Some(4), Some(32))
        );
        assert_eq!(qc["checkpoint_format"], format);
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(
            st.tensor("model.embed_tokens.weight").unwrap().dtype(),
            safetensors::Dtype::F16
        );
        // k_proj of block 1: 32 outputs x 64 inputs, HF order = GGUF rows un-permuted (2 KV heads).
        let p = "model.layers.1.self_attn.k_proj";
        let qw = i32s(st.tensor(&format!("{p}.qweight")).unwrap().data());
        let qz = i32s(st.tensor(&format!("{p}.qzeros")).unwrap().data());
        let sc: Vec<f32> = st
            .tensor(&format!("{p}.scales"))
            .unwrap()
            .data()
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        let gi = i32s(st.tensor(&format!("{p}.g_idx")).unwrap().data());
        assert_eq!(st.tensor(&format!("{p}.qweight")).unwrap().shape(), [8, 32]);
        assert_eq!(st.tensor(&format!("{p}.qzeros")).unwrap().shape(), [2, 4]);
        let (rows, cols) = (32usize, 64usize);
        let gguf = &ts
            .iter()
            .find(|t| t.name == "blk.1.attn_k.weight")
            .unwrap()
            .data;
        let (hd, half) = (16, 8);
        for r in 0..rows {
            // HF row r = head h, i, j -> GGUF row h*hd + 2j + i.
            let (h, i, j) = (r / hd, (r % hd) / half, r % half);
            let g_row = h * hd + 2 * j + i;
            for c in 0..cols {
                let q = (qw[(c / 8) * rows + r] >> (4 * (c % 8))) & 15;
                let g = gi[c] as usize;
                assert_eq!(g, c / 32);
                let mut z = (qz[g * (rows / 8) + r / 8] >> (4 * (r % 8))) & 15;
                zeros.push((version, z));
                if version == 1 {
                    z += 1;
                }
                let s = sc[g * rows + r];
                let w = s * (q - z) as f32;
                let x = gguf[g_row * cols + c];
                assert!(
                    (w - x).abs() <= s * 0.5 + 1e-3 * x.abs() + 1e-6,
                    "{format} r{r} c{c}: {w} vs {x} (s {s})"
                );
            }
        }
    }
    // Version 1 stores the zero point minus one.
    let (v1, v2): (Vec<_>, Vec<_>) = zeros.iter().partition(|(v, _)| *v == 1);
    assert!(v1
        .iter()
        .zip(&v2)
        .all(|((_, a), (_, b))| *a == (*b - 1).max(0)));
    let o = run(&[
        "export-gptq",
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
