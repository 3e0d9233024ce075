//! GPTQ, AWQ and SmoothQuant through the whole-layer API (`weight::quantize`, `quantize_group`): the
//! packed results dequantize to exactly what the algorithms computed, groups share one s, and every
//! error of the calibrated kinds.
mod reference;

use quant::algos::awq::{self, AwqParams};
use quant::algos::gptq::{self, GptqParams};
use quant::algos::{smoothquant, QuantOptions};
use quant::calib::{Calibration, CalibrationOptions};
use quant::method::QuantMethod;
use quant::weight::{quantize, quantize_group};
use quant::QuantError;
use reference::{LayerData, CALIB, LAYERS};

fn calibrate(d: &LayerData) -> Calibration {
    let mut c = Calibration::new(d.layer.cols).unwrap();
    c.add(d.calib(), CALIB, d.layer.cols).unwrap();
    c
}

#[test]
fn gptq_through_the_weight_api() {
    let d = LayerData::load(LAYERS[0]);
    let (rows, cols) = (d.layer.rows, d.layer.cols);
    let c = calibrate(&d);
    for (bits, act_order) in [(4u32, true), (3, false)] {
        let opts = QuantOptions {
            act_order,
            ..QuantOptions::default()
        };
        let m = QuantMethod::Gptq {
            group_size: 128,
            bits,
        };
        let q = quantize(&m, &opts, &d.w, rows, cols, Some(&c)).unwrap();
        let direct =
            gptq::quantize_calibrated(&d.w, rows, cols, &c, &GptqParams::new(bits, 128, &opts))
                .unwrap();
        assert_eq!(q.g_idx, direct.g_idx);
        assert_eq!(q.scales, direct.scales);
        assert_eq!(q.zero_points.as_ref(), Some(&direct.zeros));
        assert!(q.input_scales.is_none());
        assert_eq!(q.data.len(), rows * (cols * bits as usize).div_ceil(8));
        assert_eq!(
            q.dequantize_to_vec().unwrap(),
            direct.dequantize(rows, cols)
        );
    }
}

#[test]
fn awq_group_through_the_weight_api_shares_one_s() {
    let qd = LayerData::load(LAYERS[4]);
    let vd = LayerData::load(LAYERS[5]);
    let cols = qd.layer.cols;
    let c = calibrate(&qd);
    let m = QuantMethod::Awq {
        group_size: 128,
        bits: 4,
    };
    let opts = QuantOptions::default();
    let out = quantize_group(&m, &opts, &[&qd.w, &vd.w], &[384, 384], cols, Some(&c)).unwrap();
    assert_eq!(out.len(), 2);
    let s0 = out[0].input_scales.clone().unwrap();
    assert_eq!(out[1].input_scales.as_ref(), Some(&s0));
    assert!(s0.iter().any(|&v| v != 1.0));
    let direct = awq::quantize_group(
        &[(&qd.w, 384), (&vd.w, 384)],
        cols,
        &c.abs_mean(),
        c.sample(),
        c.sample_len(),
        &AwqParams {
            bits: 4,
            group_size: 128,
            symmetric: false,
            clip: true,
            threads: 0,
        },
    )
    .unwrap();
    assert_eq!(direct.s, s0);
    for (k, d) in [&qd, &vd].iter().enumerate() {
        let deq = out[k].dequantize_to_vec().unwrap();
        assert_eq!(deq, direct.dequantize(k, cols));
        let rtn = d.err(&reference::rtn(&d.w, 384, cols, 128, 4));
        assert!(d.err(&deq) < rtn);
    }
    // A 3-bit AWQ works the same way.
    let m3 = QuantMethod::Awq {
        group_size: 128,
        bits: 3,
    };
    let q3 = quantize(&m3, &opts, &qd.w, 384, cols, Some(&c)).unwrap();
    assert!(
        qd.err(&q3.dequantize_to_vec().unwrap())
            < qd.err(&reference::rtn(&qd.w, 384, cols, 128, 3))
    );
}

#[test]
fn smoothquant_group_through_the_weight_api() {
    let qd = LayerData::load(LAYERS[4]);
    let vd = LayerData::load(LAYERS[5]);
    let cols = qd.layer.cols;
    let opts = CalibrationOptions {
        hessian: false,
        ..Default::default()
    };
    let mut c = Calibration::with_options(cols, &opts).unwrap();
    c.add(qd.calib(), CALIB, cols).unwrap();
    let m = QuantMethod::SmoothQuant {
        alpha: 0.5,
        group_size: 0,
    };
    let out = quantize_group(
        &m,
        &QuantOptions::default(),
        &[&qd.w, &vd.w],
        &[384, 384],
        cols,
        Some(&c),
    )
    .unwrap();
    let direct =
        smoothquant::quantize_group(&[(&qd.w, 384), (&vd.w, 384)], cols, c.abs_max(), 0.5, 0)
            .unwrap();
    for (k, q) in out.iter().enumerate() {
        assert_eq!(q.input_scales.as_ref(), Some(&direct.s));
        assert_eq!(q.scales, direct.matrices[k].scales);
        assert!(q
            .data
            .iter()
            .zip(&direct.matrices[k].codes)
            .all(|(&a, &b)| a as i8 == b));
        assert_eq!(q.dequantize_to_vec().unwrap(), direct.dequantize(k, cols));
    }
    // GPTQ needs the Hessian this calibration skipped.
    let g = QuantMethod::Gptq {
        group_size: 128,
        bits: 4,
    };
    assert!(matches!(
        quantize(&g, &QuantOptions::default(), &qd.w, 384, cols, Some(&c)),
        Err(QuantError::InvalidArgument(_))
    ));
}

#[test]
fn calibrated_kinds_reject_bad_input() {
    let (rows, cols) = (8, 16);
    let w: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let x: Vec<f32> = (0..32 * cols).map(|i| (i as f32 * 0.11).cos()).collect();
    let mut c = Calibration::new(cols).unwrap();
    let o = QuantOptions::default();
    let methods = [
        QuantMethod::Gptq {
            group_size: 8,
            bits: 4,
        },
        QuantMethod::Awq {
            group_size: 8,
            bits: 4,
        },
        QuantMethod::SmoothQuant {
            alpha: 0.5,
            group_size: 0,
        },
    ];
    for m in &methods {
        assert!(matches!(
            quantize(m, &o, &w, rows, cols, None),
            Err(QuantError::InvalidArgument(_))
        ));
        // No tokens yet.
        assert!(matches!(
            quantize(m, &o, &w, rows, cols, Some(&c)),
            Err(QuantError::InvalidArgument(_))
        ));
    }
    c.add(&x, 32, cols).unwrap();
    let other = {
        let mut c2 = Calibration::new(cols + 1).unwrap();
        c2.add(&vec![1.0; cols + 1], 1, cols + 1).unwrap();
        c2
    };
    let mut nan = w.clone();
    nan[9] = f32::NAN;
    for m in &methods {
        assert!(quantize(m, &o, &w, rows, cols, Some(&c)).is_ok(), "{m}");
        assert!(matches!(
            quantize(m, &o, &w, rows, cols, Some(&other)),
            Err(QuantError::ShapeMismatch(_))
        ));
        assert!(matches!(
            quantize(m, &o, &nan, rows, cols, Some(&c)),
            Err(QuantError::NonFinite { index: 9, .. })
        ));
        assert!(quantize_group(m, &o, &[], &[], cols, Some(&c)).is_err());
        let bad = QuantOptions {
            block_size: 0,
            ..QuantOptions::default()
        };
        assert!(matches!(
            quantize(m, &bad, &w, rows, cols, Some(&c)),
            Err(QuantError::InvalidArgument(_))
        ));
    }
    // An indefinite imported Hessian cannot be factorized, whatever the damping.
    let mut h = vec![0.0f64; cols * cols];
    for i in 0..cols {
        h[i * cols + i] = 1.0;
    }
    h[1] = 50.0;
    h[cols] = 50.0;
    c.set_hessian(&h, cols, 10).unwrap();
    match quantize(&methods[0], &o, &w, rows, cols, Some(&c)) {
        Err(QuantError::Numerical(m)) => {
            assert!(m.contains("damp 0.01") && m.contains("damp 1"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}
