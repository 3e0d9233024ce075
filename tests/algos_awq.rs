//! AWQ on every layer of the bundled MiniLM data: calibrate on the first 1024 tokens (mean|x| over all
//! of them, a 512-token sample for the searches), measure on the other 1024. AWQ must beat RTN INT4
//! g128 on every layer, layer 5's query and value share one s when quantized together, and the result
//! agrees within 1% with the plain re-implementation in `tests/reference/awq.rs`.
//! `cargo test --test algos_awq -- --nocapture` prints the table.
mod reference;

use quant::algos::awq::{self, AwqParams};
use quant::calib::{Calibration, CalibrationOptions};
use reference::{agrees, LayerData, CALIB, LAYERS};

fn calibrate(d: &LayerData) -> Calibration {
    let opts = CalibrationOptions {
        hessian: false,
        ..CalibrationOptions::default()
    };
    let mut c = Calibration::with_options(d.layer.cols, &opts).unwrap();
    c.add(d.calib(), CALIB, d.layer.cols).unwrap();
    c
}

fn params(bits: u32) -> AwqParams {
    AwqParams {
        bits,
        group_size: 128,
        symmetric: false,
        clip: true,
        threads: 0,
    }
}

#[test]
fn awq_beats_rtn_on_every_layer() {
    let mut table =
        String::from("| layer | INT4 g128 RTN | AWQ 4b g128 | r |\n|---|---|---|---|\n");
    let mut failures = Vec::new();
    for layer in LAYERS {
        let d = LayerData::load(layer);
        let (rows, cols) = (layer.rows, layer.cols);
        let c = calibrate(&d);
        assert_eq!(c.sample_len(), 512);
        let r = awq::quantize_group(
            &[(&d.w, rows)],
            cols,
            &c.abs_mean(),
            c.sample(),
            c.sample_len(),
            &params(4),
        )
        .unwrap();
        let e = d.err(&r.dequantize(0, cols));
        let rtn = d.err(&reference::rtn(&d.w, rows, cols, 128, 4));
        table.push_str(&format!(
            "| {} | {rtn:.4e} | {e:.4e} | {:.2} |\n",
            layer.short, r.ratio
        ));
        if e >= rtn {
            failures.push(format!("{}: AWQ {e:.4e} >= RTN {rtn:.4e}", layer.short));
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn awq_layer5_query_and_value_share_one_s_and_agree_with_the_reference() {
    let q = LayerData::load(LAYERS[4]);
    let v = LayerData::load(LAYERS[5]);
    assert_eq!(q.layer.input, v.layer.input);
    let cols = q.layer.cols;
    let c = calibrate(&q);
    let group = [(&q.w[..], q.layer.rows), (&v.w[..], v.layer.rows)];
    let r = awq::quantize_group(
        &group,
        cols,
        &c.abs_mean(),
        c.sample(),
        c.sample_len(),
        &params(4),
    )
    .unwrap();
    assert_eq!(r.s.len(), cols);
    assert_eq!(r.matrices.len(), 2);
    let eq = q.err(&r.dequantize(0, cols));
    let ev = v.err(&r.dequantize(1, cols));
    let rq = q.err(&reference::rtn(&q.w, q.layer.rows, cols, 128, 4));
    let rv = v.err(&reference::rtn(&v.w, v.layer.rows, cols, 128, 4));
    println!("L5 query+value joint AWQ (r = {:.2}): query {eq:.4e} (RTN {rq:.4e}), value {ev:.4e} (RTN {rv:.4e})", r.ratio);
    assert!(eq < rq && ev < rv);
    // The one s is a real compromise: not both matrices' own choices.
    let own_q = awq::quantize_group(
        &group[..1],
        cols,
        &c.abs_mean(),
        c.sample(),
        c.sample_len(),
        &params(4),
    )
    .unwrap();
    let own_v = awq::quantize_group(
        &group[1..],
        cols,
        &c.abs_mean(),
        c.sample(),
        c.sample_len(),
        &params(4),
    )
    .unwrap();
    println!(
        "separately: query r = {:.2}, value r = {:.2}",
        own_q.ratio, own_v.ratio
    );

    let re = reference::awq::awq(&group, cols, q.calib(), c.sample(), 128, 4);
    let (req, rev) = (q.err(&re.q[0]), v.err(&re.q[1]));
    println!(
        "reference: r = {:.2}, query {req:.4e}, value {rev:.4e}",
        re.ratio
    );
    assert_eq!(re.ratio, r.ratio);
    assert!(
        agrees(eq, req, 0.01) && agrees(ev, rev, 0.01),
        "{eq} {req} {ev} {rev}"
    );
    for (a, b) in r.s.iter().zip(&re.s) {
        assert!((*a as f64 - b).abs() <= 1e-5 * b.abs());
    }
}

#[test]
fn awq_agrees_with_the_reference_at_4_and_3_bits() {
    let d = LayerData::load(LAYERS[0]);
    let (rows, cols) = (d.layer.rows, d.layer.cols);
    let c = calibrate(&d);
    for bits in [4u32, 3] {
        let r = awq::quantize_group(
            &[(&d.w, rows)],
            cols,
            &c.abs_mean(),
            c.sample(),
            c.sample_len(),
            &params(bits),
        )
        .unwrap();
        let e = d.err(&r.dequantize(0, cols));
        let re = reference::awq::awq(&[(&d.w, rows)], cols, d.calib(), c.sample(), 128, bits);
        let ee = d.err(&re.q[0]);
        let rtn = d.err(&reference::rtn(&d.w, rows, cols, 128, bits));
        println!("L0 query AWQ {bits}b: {e:.4e} (r = {:.2}), reference {ee:.4e} (r = {:.2}), RTN {rtn:.4e}", r.ratio, re.ratio);
        assert!(agrees(e, ee, 0.01), "{bits} bits: {e} vs {ee}");
        assert!(e < rtn);
    }
}
