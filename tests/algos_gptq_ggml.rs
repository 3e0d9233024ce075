//! GPTQ onto GGUF grids (`quant::algos::gptq::quantize_ggml`) on the bundled MiniLM layers: without
//! feedback it is round-to-nearest on the same grid; with a real Hessian its output error is below
//! that of ggml's reference quantizer for every 32-value type, and the records decode through the
//! library's ggml dequantizer. `cargo test --release --test algos_gptq_ggml -- --nocapture` prints the
//! table.
mod reference;

use half::f16;
use quant::algos::gptq::{self, GptqParams};
use quant::algos::QuantOptions;
use quant::calib::Calibration;
use quant::kernels::ggml::{ggml_dequantize, ggml_quantize, GgmlType};
use quant::QuantError;
use reference::{LayerData, CALIB, LAYERS};

const TYPES: [GgmlType; 5] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
];

fn params() -> GptqParams {
    GptqParams::new(4, 32, &QuantOptions::default())
}

fn decode(ty: GgmlType, data: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    ggml_dequantize(ty, data, n, &mut out).unwrap();
    out
}

/// Round-to-nearest on a block's grid, written from the format's definition: `d` (and `m`) by the
/// type's rule, rounded to f16, then for each value the decoded grid point closest to it (ties to
/// the even code), found by trying every code.
fn rtn_on_grid(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    let f = |v: f32| f16::from_f32(v).to_f32();
    let mut out = Vec::with_capacity(x.len());
    for b in x.chunks_exact(32) {
        let (first_max, _) = b.iter().fold((0f32, 0f32), |(m, a), &v| {
            if a < v.abs() {
                (v, v.abs())
            } else {
                (m, a)
            }
        });
        let lo = b.iter().copied().fold(f32::MAX, f32::min);
        let hi = b.iter().copied().fold(-f32::MAX, f32::max);
        let amax = b.iter().fold(0f32, |a, v| a.max(v.abs()));
        // (d, m, codes, value of code q)
        let (d, m) = match ty {
            GgmlType::Q4_0 => (f(first_max / -8.0), 0.0),
            GgmlType::Q5_0 => (f(first_max / -16.0), 0.0),
            GgmlType::Q4_1 => (f((hi - lo) / 15.0), f(lo)),
            GgmlType::Q5_1 => (f((hi - lo) / 31.0), f(lo)),
            _ => (f(amax / 127.0), 0.0),
        };
        let (codes, value): (std::ops::RangeInclusive<i32>, Box<dyn Fn(i32) -> f32>) = match ty {
            GgmlType::Q4_0 => (0..=15, Box::new(move |q| (q - 8) as f32 * d)),
            GgmlType::Q5_0 => (0..=31, Box::new(move |q| (q - 16) as f32 * d)),
            GgmlType::Q4_1 => (0..=15, Box::new(move |q| q as f32 * d + m)),
            GgmlType::Q5_1 => (0..=31, Box::new(move |q| q as f32 * d + m)),
            _ => (-128..=127, Box::new(move |q| q as f32 * d)),
        };
        for &v in b {
            let mut best = (f32::INFINITY, 0i32, 0f32);
            for q in codes.clone() {
                let y = value(q);
                let e = (y - v).abs();
                if e < best.0 || (e == best.0 && q % 2 == 0) {
                    best = (e, q, y);
                }
            }
            out.push(best.2);
        }
    }
    out
}

#[test]
fn without_feedback_gptq_is_round_to_nearest_on_the_grid() {
    // A diagonal Hessian: every column's inverse factor row is zero beyond the diagonal, so no error
    // reaches another column.
    for layer in [LAYERS[0], LAYERS[3]] {
        let d = LayerData::load(layer);
        let (rows, cols) = (layer.rows, layer.cols);
        let mut h = vec![0f64; cols * cols];
        for i in 0..cols {
            h[i * cols + i] = 1.0 + (i % 7) as f64;
        }
        for ty in TYPES {
            let r = gptq::quantize_ggml(&d.w, rows, cols, &h, ty, &params()).unwrap();
            assert_eq!(r.data.len(), rows * ty.row_size(cols).unwrap());
            let got = decode(ty, &r.data, rows * cols);
            let want = rtn_on_grid(ty, &d.w);
            let differ = got
                .iter()
                .zip(&want)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(differ, 0, "{} {ty:?}: {differ} values differ", layer.short);
        }
    }
}

#[test]
fn gptq_on_the_grid_beats_ggmls_quantizer_on_every_layer() {
    let mut table = String::from(
        "| layer | type | ggml reference | GPTQ on the grid | GPTQ, MSE search |\n|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for layer in LAYERS {
        let d = LayerData::load(layer);
        let (rows, cols) = (layer.rows, layer.cols);
        let mut calib = Calibration::new(cols).unwrap();
        calib.add(d.calib(), CALIB, cols).unwrap();
        for ty in TYPES {
            let mut rtn = vec![0u8; rows * ty.row_size(cols).unwrap()];
            ggml_quantize(ty, &d.w, rows, cols, &mut rtn).unwrap();
            let e_rtn = d.err(&decode(ty, &rtn, rows * cols));
            let r =
                gptq::quantize_ggml_calibrated(&d.w, rows, cols, &calib, ty, &params()).unwrap();
            let e = d.err(&decode(ty, &r.data, rows * cols));
            let mse = GptqParams {
                mse_search: true,
                ..params()
            };
            let r = gptq::quantize_ggml_calibrated(&d.w, rows, cols, &calib, ty, &mse).unwrap();
            let e_mse = d.err(&decode(ty, &r.data, rows * cols));
            table.push_str(&format!(
                "| {} | {} | {e_rtn:.4e} | {e:.4e} | {e_mse:.4e} |\n",
                layer.short,
                ty.name()
            ));
            if e >= e_rtn || e_mse >= e_rtn {
                failures.push(format!(
                    "{} {ty:?}: GPTQ {e:.4e} or with the search {e_mse:.4e} >= ggml {e_rtn:.4e}",
                    layer.short
                ));
            }
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_result_does_not_depend_on_threads_or_the_hessian_form() {
    let layer = LAYERS[1];
    let d = LayerData::load(layer);
    let (rows, cols) = (layer.rows, layer.cols);
    let mut calib = Calibration::new(cols).unwrap();
    calib.add(d.calib(), CALIB, cols).unwrap();
    let mut p = params();
    p.threads = 1;
    let one = gptq::quantize_ggml_calibrated(&d.w, rows, cols, &calib, GgmlType::Q5_1, &p).unwrap();
    p.threads = 3;
    let three =
        gptq::quantize_ggml_calibrated(&d.w, rows, cols, &calib, GgmlType::Q5_1, &p).unwrap();
    assert_eq!(one, three);
    // An explicit Hessian rounds differently in the last bits: a handful of codes may move.
    let h = calib.hessian().unwrap();
    let via_h = gptq::quantize_ggml(&d.w, rows, cols, &h, GgmlType::Q5_1, &p).unwrap();
    let (a, b) = (
        decode(GgmlType::Q5_1, &one.data, rows * cols),
        decode(GgmlType::Q5_1, &via_h.data, rows * cols),
    );
    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(differ <= rows * cols / 1000, "{differ} values differ");
}

#[test]
fn bad_arguments_are_named() {
    let (rows, cols) = (2, 64);
    let w = vec![0.5f32; rows * cols];
    let mut h = vec![0f64; cols * cols];
    for i in 0..cols {
        h[i * cols + i] = 1.0;
    }
    let msg = |r: quant::Result<gptq::GgmlGptqResult>| match r {
        Err(QuantError::InvalidArgument(m)) => m,
        other => panic!("{other:?}"),
    };
    let m = msg(gptq::quantize_ggml(
        &w,
        rows,
        cols,
        &h,
        GgmlType::Q4_K,
        &params(),
    ));
    assert!(m.contains("q4_K"), "{m}");
    let m = msg(gptq::quantize_ggml(
        &w[..96],
        2,
        48,
        &h[..48 * 48],
        GgmlType::Q4_0,
        &params(),
    ));
    assert!(m.contains("48"), "{m}");
    let mut p = params();
    p.act_order = true;
    let m = msg(gptq::quantize_ggml(&w, rows, cols, &h, GgmlType::Q4_0, &p));
    assert!(m.contains("act_order"), "{m}");
    let mut big = w.clone();
    big[70] = 1e7;
    let m = msg(gptq::quantize_ggml(
        &big,
        rows,
        cols,
        &h,
        GgmlType::Q8_0,
        &params(),
    ));
    assert!(m.contains("row 1 block 0"), "{m}");
    let mut nan = w.clone();
    nan[3] = f32::NAN;
    assert!(matches!(
        gptq::quantize_ggml(&nan, rows, cols, &h, GgmlType::Q4_0, &params()),
        Err(QuantError::NonFinite { index: 3, .. })
    ));
}
