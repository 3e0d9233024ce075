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
use quant::kernels::ggml::{ggml_dequantize, ggml_quantize, ggml_quantize_weighted, GgmlType};
use quant::kernels::source::Src;
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
            let r = gptq::quantize_ggml_calibrated(&d.w, rows, cols, &calib, ty, &params(), None)
                .unwrap();
            let e = d.err(&decode(ty, &r.data, rows * cols));
            let mse = GptqParams {
                mse_search: true,
                ..params()
            };
            let r =
                gptq::quantize_ggml_calibrated(&d.w, rows, cols, &calib, ty, &mse, None).unwrap();
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
    let one =
        gptq::quantize_ggml_calibrated(&d.w, rows, cols, &calib, GgmlType::Q5_1, &p, None).unwrap();
    p.threads = 3;
    let three =
        gptq::quantize_ggml_calibrated(&d.w, rows, cols, &calib, GgmlType::Q5_1, &p, None).unwrap();
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

const K_TYPES: [GgmlType; 5] = [
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// A layer: name, `rows`, `cols`, weight, calibration tokens, held-out tokens.
type KLayer = (String, usize, usize, Vec<f32>, Vec<f32>, Vec<f32>);

/// Real layers with a multiple of 256 input columns: L0 output (384 x 1536), and L5 value restricted
/// to its first 256 inputs (the layer that reads only those features; 384 x 256).
fn k_layers() -> Vec<KLayer> {
    let mut out = Vec::new();
    let d = LayerData::load(LAYERS[3]);
    let (rows, cols) = (LAYERS[3].rows, LAYERS[3].cols);
    out.push((
        LAYERS[3].short.to_string(),
        rows,
        cols,
        d.w.clone(),
        d.calib().to_vec(),
        d.test().to_vec(),
    ));
    let d = LayerData::load(LAYERS[5]);
    let (rows, full, cols) = (LAYERS[5].rows, LAYERS[5].cols, 256);
    let cut = |m: &[f32]| -> Vec<f32> {
        m.chunks_exact(full)
            .flat_map(|r| r[..cols].iter().copied())
            .collect()
    };
    out.push((
        format!("{} [:, :256]", LAYERS[5].short),
        rows,
        cols,
        cut(&d.w),
        cut(d.calib()),
        cut(d.test()),
    ));
    out
}

/// GPTQ onto the grids of `types` against ggml's quantizer of each type, by the relative output error
/// on held-out tokens of the `k_layers`: both unweighted, or both with the calibration's importance
/// weights (`weighted`). Prints the table and fails naming every case where GPTQ is not below.
fn assert_gptq_beats_the_quantizer_on_held_out_tokens(types: &[GgmlType], weighted: bool) {
    let mut table = format!(
        "| layer | type | ggml{w} | GPTQ on the grid{w} | ratio |\n|---|---|---|---|---|\n",
        w = if weighted { " with imatrix" } else { "" }
    );
    let mut failures = Vec::new();
    for (name, rows, cols, w, xc, xt) in k_layers() {
        let mut calib = Calibration::new(cols).unwrap();
        calib.add(&xc, CALIB, cols).unwrap();
        let imp = weighted.then(|| mean_squares(&xc, cols));
        let n = xt.len() / cols;
        let err = |q: &[f32]| reference::rel_error(&xt, n, &w, q, rows, cols);
        for &ty in types {
            let mut rtn = vec![0u8; rows * ty.row_size(cols).unwrap()];
            ggml_quantize_weighted(ty, Src::F32(&w), rows, cols, imp.as_deref(), &mut rtn).unwrap();
            let e_rtn = err(&decode(ty, &rtn, rows * cols));
            let r = gptq::quantize_ggml_calibrated(
                &w,
                rows,
                cols,
                &calib,
                ty,
                &params(),
                imp.as_deref(),
            )
            .unwrap();
            assert_eq!(r.data.len(), rtn.len());
            let e = err(&decode(ty, &r.data, rows * cols));
            table.push_str(&format!(
                "| {name} | {} | {e_rtn:.4e} | {e:.4e} | {:.3} |\n",
                ty.name(),
                e / e_rtn
            ));
            if e >= e_rtn {
                failures.push(format!("{name} {ty:?}: GPTQ {e:.4e} >= ggml {e_rtn:.4e}"));
            }
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn k_quants_decode_and_beat_their_quantizer_on_held_out_tokens() {
    assert_gptq_beats_the_quantizer_on_held_out_tokens(&K_TYPES, false);
}

#[test]
fn k_quants_without_feedback_keep_their_quantizers_scales() {
    // A diagonal Hessian: no error reaches another column, so every super-block is fitted to the
    // original weights: its header and sub-block scales are the quantizer's, byte for byte. The
    // codes are the nearest points of those grids; ggml's `nearest_int((x + dmin m) / (d sc))` can
    // pick the other neighbour near a midpoint (and keeps its search's codes where `d sc` is 0), so
    // a code may differ, never for a worse value.
    let (name, rows, cols, w, _, _) = k_layers().swap_remove(0);
    let mut h = vec![0f64; cols * cols];
    for i in 0..cols {
        h[i * cols + i] = 1.0 + (i % 7) as f64;
    }
    for ty in K_TYPES {
        let mut rtn = vec![0u8; rows * ty.row_size(cols).unwrap()];
        ggml_quantize(ty, &w, rows, cols, &mut rtn).unwrap();
        let r = gptq::quantize_ggml(&w, rows, cols, &h, ty, &params()).unwrap();
        // The bytes that are not codes.
        let head: &[(usize, usize)] = match ty {
            GgmlType::Q2_K => &[(0, 16), (80, 84)],
            GgmlType::Q3_K => &[(96, 110)],
            GgmlType::Q4_K | GgmlType::Q5_K => &[(0, 16)],
            _ => &[(192, 210)],
        };
        for (k, (a, b)) in r
            .data
            .chunks_exact(ty.type_size())
            .zip(rtn.chunks_exact(ty.type_size()))
            .enumerate()
        {
            for &(from, to) in head {
                assert_eq!(a[from..to], b[from..to], "{name} {ty:?} record {k}");
            }
        }
        let (got, want) = (
            decode(ty, &r.data, rows * cols),
            decode(ty, &rtn, rows * cols),
        );
        let mut differ = 0;
        for ((&g, &q), &x) in got.iter().zip(&want).zip(&w) {
            if g != q {
                differ += 1;
                assert!(
                    (g - x).abs() <= (q - x).abs(),
                    "{ty:?}: {x} -> {g}, ggml {q}"
                );
            }
        }
        println!(
            "{name} {ty:?}: {differ} of {} values differ from ggml's",
            w.len()
        );
        assert!(differ <= w.len() / 1000, "{ty:?}: {differ} values differ");
    }
}

#[test]
fn k_quants_need_a_multiple_of_256_columns() {
    // L0 query: 384 input columns.
    let layer = LAYERS[0];
    let d = LayerData::load(layer);
    let mut calib = Calibration::new(layer.cols).unwrap();
    calib.add(d.calib(), CALIB, layer.cols).unwrap();
    for ty in K_TYPES {
        match gptq::quantize_ggml_calibrated(
            &d.w,
            layer.rows,
            layer.cols,
            &calib,
            ty,
            &params(),
            None,
        ) {
            Err(QuantError::InvalidArgument(m)) => {
                assert!(m.contains("384") && m.contains("256"), "{m}")
            }
            other => panic!("{ty:?}: {other:?}"),
        }
    }
}

/// Each column's mean square over `n` tokens of `x` (rows of `cols`): an imatrix entry.
fn mean_squares(x: &[f32], cols: usize) -> Vec<f32> {
    let n = x.len() / cols;
    let mut s = vec![0f64; cols];
    for row in x.chunks_exact(cols) {
        for (a, &v) in s.iter_mut().zip(row) {
            *a += f64::from(v) * f64::from(v);
        }
    }
    s.iter().map(|&v| (v / n as f64) as f32).collect()
}

fn weighted_rtn(ty: GgmlType, w: &[f32], rows: usize, cols: usize, imp: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; rows * ty.row_size(cols).unwrap()];
    ggml_quantize_weighted(ty, Src::F32(w), rows, cols, Some(imp), &mut out).unwrap();
    out
}

#[test]
fn weighted_gptq_beats_ggmls_weighted_quantizer_on_held_out_tokens() {
    let types: Vec<GgmlType> = GgmlType::all()
        .into_iter()
        .filter(|&t| gptq::ggml_supported(t))
        .collect();
    assert_gptq_beats_the_quantizer_on_held_out_tokens(&types, true);
}

#[test]
fn weighted_gptq_without_feedback_rounds_onto_ggmls_weighted_records() {
    // A diagonal Hessian feeds no error forward, so each record is fitted to the original weights:
    // the same record ggml's weighted quantizer writes. GPTQ then takes the grid point nearest to
    // each weight, which is never farther than ggml's choice on that grid (ggml picks its codes
    // against the scale before its f16 rounding, and the K-quants' `nearest_int` can land on the
    // farther neighbour).
    let (name, rows, cols, w, xc, _) = k_layers().swap_remove(0);
    let imp = mean_squares(&xc, cols);
    let mut h = vec![0f64; cols * cols];
    for i in 0..cols {
        h[i * cols + i] = 1.0 + (i % 5) as f64;
    }
    let mut calib = Calibration::new(cols).unwrap();
    calib.set_hessian(&h, cols, 10).unwrap();
    for ty in GgmlType::all()
        .into_iter()
        .filter(|&t| gptq::ggml_supported(t))
    {
        let want = decode(ty, &weighted_rtn(ty, &w, rows, cols, &imp), rows * cols);
        let r = gptq::quantize_ggml_calibrated(&w, rows, cols, &calib, ty, &params(), Some(&imp))
            .unwrap();
        let got = decode(ty, &r.data, rows * cols);
        let mut differ = 0;
        for (i, ((&x, &g), &q)) in w.iter().zip(&got).zip(&want).enumerate() {
            assert!(
                (x - g).abs() <= (x - q).abs(),
                "{name} {ty:?} value {i}: GPTQ {g} is farther from {x} than ggml's {q}"
            );
            differ += usize::from(g != q);
        }
        // The same grids: only values near a midpoint may go elsewhere (at most 0.7% measured, Q5_1 and Q8_0).
        println!(
            "{name} {ty:?}: {differ} of {} values differ from ggml's",
            w.len()
        );
        assert!(
            differ * 100 <= w.len(),
            "{name} {ty:?}: {differ} of {} values differ from ggml's",
            w.len()
        );
    }
}

#[test]
fn importance_weights_are_checked() {
    let (rows, cols) = (2, 64);
    let w = values_for_errors(rows * cols);
    let mut calib = Calibration::new(cols).unwrap();
    calib.add(&values_for_errors(4 * cols), 4, cols).unwrap();
    let run = |imp: &[f32], p: &GptqParams| {
        gptq::quantize_ggml_calibrated(&w, rows, cols, &calib, GgmlType::Q4_0, p, Some(imp))
    };
    let ok = vec![1f32; cols];
    assert!(run(&ok, &params()).is_ok());
    assert!(matches!(
        run(&ok[..cols - 1], &params()),
        Err(QuantError::ShapeMismatch(_))
    ));
    let mut bad = ok.clone();
    bad[9] = -1.0;
    match run(&bad, &params()) {
        Err(QuantError::InvalidArgument(m)) => assert!(m.contains("importance[9]"), "{m}"),
        other => panic!("{other:?}"),
    }
    bad[9] = f32::NAN;
    assert!(matches!(
        run(&bad, &params()),
        Err(QuantError::NonFinite { index: 9, .. })
    ));
    let mse = GptqParams {
        mse_search: true,
        ..params()
    };
    match run(&ok, &mse) {
        Err(QuantError::InvalidArgument(m)) => assert!(m.contains("mse_search"), "{m}"),
        other => panic!("{other:?}"),
    }
    // None is the unweighted function.
    let a = gptq::quantize_ggml_calibrated(&w, rows, cols, &calib, GgmlType::Q4_0, &params(), None)
        .unwrap();
    let b = gptq::quantize_ggml_calibrated(&w, rows, cols, &calib, GgmlType::Q4_0, &params(), None)
        .unwrap();
    assert_eq!(a, b);
}

/// Deterministic values in (-1, 1).
fn values_for_errors(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 % 2003) as f32 / 1001.5) - 1.0)
        .collect()
}
