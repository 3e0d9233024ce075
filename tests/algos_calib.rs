//! The calibration statistics on real activations: the streamed f64 Hessian against a plain loop,
//! several adds against one, the max/mean, and the bounded deterministic sample.
mod reference;

use proptest::prelude::*;
use quant::calib::{Calibration, CalibrationOptions};
use quant::QuantError;
use reference::{LayerData, CALIB, LAYERS};

#[test]
fn real_activations_give_the_plain_statistics_in_one_add_or_many() {
    let d = LayerData::load(LAYERS[0]);
    let cols = d.layer.cols;
    let x = d.calib();
    let mut one = Calibration::new(cols).unwrap();
    one.add(x, CALIB, cols).unwrap();
    let mut many = Calibration::with_options(
        cols,
        &CalibrationOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut at = 0;
    for part in [1usize, 7, 300, 256, 460] {
        many.add(&x[at * cols..(at + part) * cols], part, cols)
            .unwrap();
        at += part;
    }
    assert_eq!(at, CALIB);
    let want = reference::hessian(x, CALIB, cols);
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for h in [one.hessian().unwrap(), many.hessian().unwrap()] {
        let worst = h
            .iter()
            .zip(&want)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst <= 1e-12 * scale, "{worst}");
    }
    for j in 0..cols {
        let col = (0..CALIB).map(|t| x[t * cols + j]);
        let max = col.clone().fold(0.0f32, |m, v| m.max(v.abs()));
        let mean = col.map(|v| v.abs() as f64).sum::<f64>() / CALIB as f64;
        assert_eq!(one.abs_max()[j], max);
        assert!((one.abs_mean()[j] - mean).abs() <= 1e-12 * mean);
        assert!((many.abs_mean()[j] - mean).abs() <= 1e-12 * mean);
    }
    assert_eq!(one.sample(), many.sample());
    assert_eq!(one.sample_len(), 512);
    assert_eq!(one.tokens(), CALIB as u64);
    // Every kept row is a real token of the stream.
    for row in one.sample().chunks(cols) {
        assert!(x.chunks(cols).any(|t| t == row));
    }
}

#[test]
fn the_sample_size_is_settable_and_bounded() {
    let d = LayerData::load(LAYERS[0]);
    let cols = d.layer.cols;
    let opts = CalibrationOptions {
        hessian: false,
        sample_tokens: 100,
        threads: 1,
    };
    let mut c = Calibration::with_options(cols, &opts).unwrap();
    for _ in 0..3 {
        c.add(&d.x, d.x.len() / cols, cols).unwrap();
    }
    assert_eq!(c.sample_len(), 100);
    assert_eq!(c.sample().len(), 100 * cols);
    assert_eq!(c.tokens(), 3 * 2048);
    assert!(matches!(c.hessian(), Err(QuantError::InvalidArgument(_))));
    assert!(Calibration::with_options(
        cols,
        &CalibrationOptions {
            sample_tokens: 0,
            ..opts
        }
    )
    .is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn any_split_gives_the_same_statistics(
        cols in 1usize..9,
        n in 1usize..80,
        cuts in proptest::collection::vec(0usize..80, 0..4),
        seed in any::<u32>(),
    ) {
        let x: Vec<f32> = (0..n * cols)
            .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 1.0e6) - 8.0)
            .collect();
        let opts = CalibrationOptions { sample_tokens: 5, ..Default::default() };
        let mut one = Calibration::with_options(cols, &opts).unwrap();
        one.add(&x, n, cols).unwrap();
        let mut parts: Vec<usize> = cuts.into_iter().map(|c| c % (n + 1)).collect();
        parts.push(0);
        parts.push(n);
        parts.sort_unstable();
        let mut many = Calibration::with_options(cols, &opts).unwrap();
        for w in parts.windows(2) {
            many.add(&x[w[0] * cols..w[1] * cols], w[1] - w[0], cols).unwrap();
        }
        prop_assert_eq!(one.sample(), many.sample());
        prop_assert_eq!(one.abs_max(), many.abs_max());
        for (a, b) in one.hessian().unwrap().iter().zip(many.hessian().unwrap()) {
            prop_assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0));
        }
    }
}
