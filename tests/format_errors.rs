//! Every block format of the library on the bundled MiniLM layers (`tests/data/minilm`, 2048 real
//! input tokens each): the relative output error `||X W^T - X Q(W)^T||^2 / ||X W^T||^2` of round-trip
//! quantization, printed as the table of docs/formats.md ("Measured error"), and the orderings the
//! formats' bits promise checked where they must hold on every layer.
//!
//!   cargo test --release --test format_errors -- --nocapture
mod common;

use common::{OutputMeter, LAYERS};
use quant::kernels::fp8::{fp8_block_dequantize, fp8_block_quantize, BlockShape};
use quant::kernels::ggml::{ggml_dequantize, ggml_quantize, GgmlType};
use quant::kernels::mx::nvfp4::{
    nvfp4_dequantize, nvfp4_packed_size, nvfp4_quantize, nvfp4_scale_count,
};
use quant::kernels::mx::{mx_dequantize, mx_packed_size, mx_quantize, mx_scale_count, MxElem};
use quant::kernels::nf4::{
    bnb4_absmax_len, bnb4_dequantize, bnb4_packed_len, bnb4_quantize, Bnb4Type,
};
use quant::kernels::source::Src;

/// A format's round trip of a `rows x cols` matrix, or `None` where its blocks do not tile a row.
type RoundTrip = Box<dyn Fn(&[f32], usize, usize) -> Option<Vec<f32>>>;

fn formats() -> Vec<(String, RoundTrip)> {
    let mut out: Vec<(String, RoundTrip)> = Vec::new();
    for ty in GgmlType::all() {
        out.push((
            format!("GGUF {}", ty.name()),
            Box::new(move |w, rows, cols| {
                let row = ty.row_size(cols)?;
                let mut q = vec![0u8; rows * row];
                ggml_quantize(ty, w, rows, cols, &mut q).ok()?;
                let mut y = vec![0f32; rows * cols];
                ggml_dequantize(ty, &q, rows * cols, &mut y).unwrap();
                Some(y)
            }),
        ));
    }
    for elem in MxElem::all() {
        out.push((
            elem.name().to_string(),
            Box::new(move |w, rows, cols| {
                let mut c = vec![0u8; mx_packed_size(elem, rows, cols)];
                let mut s = vec![0u8; mx_scale_count(rows, cols)];
                mx_quantize(elem, w, rows, cols, &mut c, &mut s).unwrap();
                let mut y = vec![0f32; rows * cols];
                mx_dequantize(elem, &c, &s, rows, cols, &mut y).unwrap();
                Some(y)
            }),
        ));
    }
    out.push((
        "NVFP4 (per-tensor scale)".to_string(),
        Box::new(|w, rows, cols| {
            let mut c = vec![0u8; nvfp4_packed_size(rows, cols)];
            let mut s = vec![0u8; nvfp4_scale_count(rows, cols)];
            let g = nvfp4_quantize(w, rows, cols, &mut c, &mut s).unwrap();
            let mut y = vec![0f32; rows * cols];
            nvfp4_dequantize(&c, &s, g, rows, cols, &mut y).unwrap();
            Some(y)
        }),
    ));
    out.push((
        "FP8 block 128x128".to_string(),
        Box::new(|w, rows, cols| {
            let shape = BlockShape::deepseek(rows, cols).unwrap();
            let (mut q, mut s) = (vec![0u8; shape.len()], vec![0f32; shape.n_blocks()]);
            fp8_block_quantize(Src::F32(w), shape, &mut q, &mut s).unwrap();
            let mut y = vec![0f32; shape.len()];
            fp8_block_dequantize(&q, &s, shape, &mut y).unwrap();
            Some(y)
        }),
    ));
    for ty in [Bnb4Type::Nf4, Bnb4Type::Fp4] {
        out.push((
            format!("bnb {} b64", ty.name()),
            Box::new(move |w, _, _| {
                let n = w.len();
                let (mut q, mut a) = (
                    vec![0u8; bnb4_packed_len(n)],
                    vec![0f32; bnb4_absmax_len(n, 64)],
                );
                bnb4_quantize(ty, Src::F32(w), 64, &mut q, &mut a).unwrap();
                let mut y = vec![0f32; n];
                bnb4_dequantize(ty, &q, &a, n, 64, &mut y).unwrap();
                Some(y)
            }),
        ));
    }
    out
}

#[test]
fn every_format_on_the_real_layers() {
    let formats = formats();
    // errors[f][l]: None where the format's blocks do not tile the layer's rows.
    let mut errors = vec![vec![None; LAYERS.len()]; formats.len()];
    for (li, l) in LAYERS.iter().enumerate() {
        let w = l.weight();
        let meter = OutputMeter::new(&l.activations(), l.cols);
        let norm = meter.sq_norm_f32(&w);
        for (fi, (_, round_trip)) in formats.iter().enumerate() {
            if let Some(y) = round_trip(&w, l.rows, l.cols) {
                errors[fi][li] = Some(meter.relative_error(&w, &y, norm));
            }
        }
    }
    let mut table =
        String::from("| format | layers | min | median | max |\n|---|---:|---:|---:|---:|\n");
    for ((name, _), errs) in formats.iter().zip(&errors) {
        let mut e: Vec<f64> = errs.iter().flatten().copied().collect();
        assert!(!e.is_empty(), "{name}: no layer");
        // The ternary types round every weight to -d, 0 or d with d the largest magnitude of 256: made
        // for models trained ternary (BitNet b1.58, TriLM), they lose far more on a float model.
        let bound = if name.starts_with("GGUF tq") {
            0.5
        } else {
            0.1
        };
        assert!(e.iter().all(|&v| v > 0.0 && v < bound), "{name}: {e:?}");
        e.sort_by(f64::total_cmp);
        table += &format!(
            "| {name} | {} | {:.2e} | {:.2e} | {:.2e} |\n",
            e.len(),
            e[0],
            e[e.len() / 2],
            e[e.len() - 1]
        );
    }
    println!("{table}");

    let err = |name: &str, li: usize| -> Option<f64> {
        let fi = formats.iter().position(|(n, _)| n == name).unwrap();
        errors[fi][li]
    };
    // More bits, less error, on every layer the formats both tile: each family's ladder.
    let ladders: [&[&str]; 6] = [
        &[
            "GGUF q8_0",
            "GGUF q6_K",
            "GGUF q5_K",
            "GGUF q4_K",
            "GGUF q3_K",
            "GGUF q2_K",
        ],
        &["GGUF q8_0", "GGUF q5_0", "GGUF q4_0"],
        &["MXINT8", "MXFP6_E2M3", "MXFP4_E2M1"],
        &["FP8 block 128x128", "bnb nf4 b64", "bnb fp4 b64"],
        &["GGUF iq4_nl", "GGUF q4_0"],
        &["GGUF q2_K", "GGUF tq2_0"],
    ];
    let mut failures = Vec::new();
    for ladder in ladders {
        for pair in ladder.windows(2) {
            for (li, l) in LAYERS.iter().enumerate() {
                if let (Some(a), Some(b)) = (err(pair[0], li), err(pair[1], li)) {
                    if a >= b {
                        failures.push(format!(
                            "{}: {} {a:e} >= {} {b:e}",
                            l.name, pair[0], pair[1]
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // TQ1_0 and TQ2_0 store the same codes and scale, five to a byte or four.
    for (li, l) in LAYERS.iter().enumerate() {
        assert_eq!(err("GGUF tq1_0", li), err("GGUF tq2_0", li), "{}", l.name);
    }
}
