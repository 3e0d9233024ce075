//! `quant export-compressed`: the pack-quantized tensors decode with compressed-tensors' formula
//! (`unpack_from_int32`: unsigned fields minus `2^(b-1)`, then `(q - zp) * scale`) to the source
//! weights within half a quantization step, in HF row order, for W4A16 (asymmetric, groups) and
//! W8A16 (symmetric, per channel).
mod common;

use common::*;
use std::path::Path;

use quant_cli::model::GgufFile;
use safetensors::SafeTensors;

fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

/// Decodes tensor `p` (`rows x cols`) of the folder `out` as compressed-tensors does and compares
/// it with `weights` (HF row order); `group` 0 is per channel.
#[allow(clippy::too_many_arguments)]
fn check_decodes(
    out: &Path,
    bits: u32,
    sym: bool,
    group: usize,
    p: &str,
    rows: usize,
    cols: usize,
    weights: &[f32],
) {
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        st.tensor("model.embed_tokens.weight").unwrap().dtype(),
        safetensors::Dtype::F16
    );
    let pf = 32 / bits as usize;
    let groups = cols.checked_div(group).unwrap_or(1);
    let glen = cols / groups;
    let packed = st.tensor(&format!("{p}.weight_packed")).unwrap();
    assert_eq!(packed.dtype(), safetensors::Dtype::I32);
    assert_eq!(packed.shape(), [rows, cols / pf]);
    let shape = st.tensor(&format!("{p}.weight_shape")).unwrap();
    assert_eq!(shape.dtype(), safetensors::Dtype::I64);
    assert_eq!(
        shape.data(),
        [(rows as i64).to_le_bytes(), (cols as i64).to_le_bytes()].concat()
    );
    let scale = st.tensor(&format!("{p}.weight_scale")).unwrap();
    assert_eq!(scale.shape(), [rows, groups]);
    let zp = st.tensor(&format!("{p}.weight_zero_point"));
    assert_eq!(zp.is_ok(), !sym);
    let qw = i32s(packed.data());
    let sc: Vec<f32> = scale
        .data()
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    let mask = (1i32 << bits) - 1;
    let offset = 1i32 << (bits - 1);
    let field = |word: i32, i: usize| ((word >> (bits as usize * i)) & mask) - offset;
    let zps = zp.ok().map(|t| {
        assert_eq!(t.dtype(), safetensors::Dtype::I32);
        assert_eq!(t.shape(), [rows / pf, groups]);
        i32s(t.data())
    });
    let mut negative = 0;
    for r in 0..rows {
        for c in 0..cols {
            let g = c / glen;
            let q = field(qw[r * (cols / pf) + c / pf], c % pf);
            let z = zps
                .as_ref()
                .map_or(0, |z| field(z[(r / pf) * groups + g], r % pf));
            negative += usize::from(q < 0);
            let s = sc[r * groups + g];
            let w = (q - z) as f32 * s;
            let x = weights[r * cols + c];
            // Half a step, plus the f16 rounding of the scale times the code.
            let tol = s * 0.5 + (q - z).abs() as f32 * s / 2048.0 + 1e-6;
            assert!(
                (w - x).abs() <= tol,
                "{bits} bits r{r} c{c}: {w} vs {x} (s {s})"
            );
        }
    }
    // The signed codes use their negative half (the offset is applied).
    assert!(negative > 0);
}

#[test]
fn compressed_folder_decodes_to_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = tiny_llama();
    let input = dir.path().join("tiny.gguf");
    write_gguf(&input, &meta, &ts);
    let cases: [(u32, &[&str], bool, usize); 3] = [
        (4, &["--group-size", "32"], false, 32),
        (8, &["--channel", "--symmetric"], true, 0),
        (8, &["--group-size", "16"], false, 16),
    ];
    for (bits, args, sym, group) in cases {
        let out = dir.path().join(format!("ct{bits}{sym}{group}"));
        let b = bits.to_string();
        let mut a = vec![
            "export-compressed",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--bits",
            &b,
        ];
        a.extend_from_slice(args);
        let o = run(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        let qc = &cfg["quantization_config"];
        assert_eq!(qc["quant_method"], "compressed-tensors");
        assert_eq!(qc["format"], "pack-quantized");
        assert_eq!(qc["ignore"], serde_json::json!(["lm_head"]));
        let g0 = &qc["config_groups"]["group_0"];
        assert_eq!(g0["targets"], serde_json::json!(["Linear"]));
        assert!(g0["input_activations"].is_null());
        let w = &g0["weights"];
        assert_eq!(w["num_bits"], bits);
        assert_eq!(w["type"], "int");
        assert_eq!(w["symmetric"], sym);
        if group == 0 {
            assert_eq!(w["strategy"], "channel");
            assert!(w["group_size"].is_null());
        } else {
            assert_eq!(w["strategy"], "group");
            assert_eq!(w["group_size"], group);
        }

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
        check_decodes(&out, bits, sym, group, p, rows, cols, &hf);
    }
    let bad = dir.path().join("bad");
    for (args, msg) in [
        (
            &["--bits", "4", "--symmetric"][..],
            "--symmetric needs --bits 8",
        ),
        (&["--group-size", "48"][..], "group size 48"),
    ] {
        let mut a = vec![
            "export-compressed",
            input.to_str().unwrap(),
            bad.to_str().unwrap(),
        ];
        a.extend_from_slice(args);
        let o = run(&a);
        assert!(
            !o.status.success() && stderr(&o).contains(msg),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn real_model_folders_decode_to_its_weights() {
    let Some(model) = env_path("QUANT_MODEL", "the real model") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // SmolLM2-135M's ffn_down: 576 outputs x 1536 inputs, rows in the same order in GGUF and HF.
    let w = GgufFile::open(&model)
        .unwrap()
        .tensor_f32("blk.3.ffn_down.weight")
        .unwrap();
    let (rows, cols) = (w.shape[0], w.shape[1]);
    for (bits, args, sym, group) in [
        (4u32, &["--group-size", "64"][..], false, 64),
        (8, &["--channel", "--symmetric"][..], true, 0),
    ] {
        let out = dir.path().join(format!("ct{bits}"));
        let b = bits.to_string();
        let mut a = vec![
            "export-compressed",
            model.to_str().unwrap(),
            out.to_str().unwrap(),
            "--bits",
            &b,
        ];
        a.extend_from_slice(args);
        let o = run(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        let p = "model.layers.3.mlp.down_proj";
        check_decodes(&out, bits, sym, group, p, rows, cols, &w.data);
    }
}
