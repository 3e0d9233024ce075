//! A timing probe of the calibration-based methods at the size of the performance target (a 4096 x 4096 layer, 2048
//! calibration tokens, 4-bit group 128; AWQ with 512 sample tokens). Ignored by default (it takes
//! tens of seconds); timings are printed, never asserted:
//!
//! `cargo test --release --test algos_speed -- --ignored --nocapture`
//!
//! It checks only that the results are usable (GPTQ below round-to-nearest on the calibration data).
use std::time::Instant;

use faer::linalg::matmul::triangular::{self as tri, BlockStructure};
use faer::{Accum, Mat, MatRef, Par};
use quant::algos::awq::{self, AwqParams};
use quant::algos::gptq::{self, GptqParams};
use quant::algos::QuantOptions;
use quant::calib::{Calibration, CalibrationOptions};

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            u * if i % 97 == 0 { 8.0 } else { 1.0 }
        })
        .collect()
}

#[test]
#[ignore]
fn speed_probe() {
    let (rows, cols, tokens) = (4096usize, 4096usize, 2048usize);
    let w = data(rows * cols, 1);
    // Correlated activations: a shared component plus noise, with outlier channels.
    let base = data(tokens * 64, 2);
    let noise = data(tokens * cols, 3);
    let mut x = vec![0.0f32; tokens * cols];
    for t in 0..tokens {
        for j in 0..cols {
            x[t * cols + j] = base[t * 64 + j % 64] + 0.5 * noise[t * cols + j];
        }
    }

    // Yardstick: a single-threaded f32 X^T X (lower triangle) with faer.
    let t0 = Instant::now();
    let xm = MatRef::from_row_major_slice(&x, tokens, cols);
    let mut g = Mat::<f32>::zeros(cols, cols);
    tri::matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        xm.transpose(),
        BlockStructure::Rectangular,
        xm,
        BlockStructure::Rectangular,
        1.0,
        Par::Seq,
    );
    let yard = t0.elapsed().as_secs_f64();
    println!("yardstick f32 X^T X (lower, 1 thread): {yard:.2} s");

    for threads in [1usize, 2] {
        let t0 = Instant::now();
        let opts = CalibrationOptions {
            threads,
            ..Default::default()
        };
        let mut c = Calibration::with_options(cols, &opts).unwrap();
        c.add(&x, tokens, cols).unwrap();
        let th = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let o = QuantOptions {
            threads,
            ..QuantOptions::default()
        };
        let r =
            gptq::quantize_calibrated(&w, rows, cols, &c, &GptqParams::new(4, 128, &o)).unwrap();
        let ts = t1.elapsed().as_secs_f64();
        println!(
            "GPTQ 4096x4096, 2048 tokens, 4b g128, {threads} thread(s): Hessian {th:.2} s + solve {ts:.2} s = {:.2} s ({:.1}x the yardstick)",
            th + ts,
            (th + ts) / yard
        );
        assert!(r.scales.iter().all(|s| s.is_finite()));
        if threads == 1 {
            let t2 = Instant::now();
            let n = c.sample_len();
            let p = AwqParams {
                bits: 4,
                group_size: 128,
                symmetric: false,
                clip: true,
                threads,
            };
            let a =
                awq::quantize_group(&[(&w, rows)], cols, &c.abs_mean(), c.sample(), n, &p).unwrap();
            println!(
                "AWQ 4096x4096, {n} sample tokens, 1 thread: {:.2} s (r = {:.2})",
                t2.elapsed().as_secs_f64(),
                a.ratio
            );
        }
    }
}
