//! AWQ as published (Lin et al. 2023; llm-awq `auto_scale` + `auto_clip`), in f64 loops.
use super::{asym, fq};

/// Quantize-dequantize a row in groups of `gs` (asymmetric, `bits`).
fn fq_row(row: &[f64], gs: usize, bits: u32) -> Vec<f64> {
    let mut out = Vec::with_capacity(row.len());
    for g in row.chunks(gs) {
        let lo = g.iter().fold(f64::INFINITY, |m, &v| m.min(v));
        let hi = g.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let (s, z) = asym(lo, hi, bits);
        out.extend(g.iter().map(|&v| fq(v, s, z, bits)));
    }
    out
}

pub struct Result {
    pub s: Vec<f64>,
    pub ratio: f64,
    /// Dequantized weights (original basis) of each matrix.
    pub q: Vec<Vec<f32>>,
}

/// `ws`: the matrices that share the input (`rows x cols` each); `x_all`: every calibration token
/// (for mean|x|); `sample`: the tokens of the loss and clip search.
pub fn awq(
    ws: &[(&[f32], usize)],
    cols: usize,
    x_all: &[f32],
    sample: &[f32],
    gs: usize,
    bits: u32,
) -> Result {
    let n_all = x_all.len() / cols;
    let ns = sample.len() / cols;
    let mut mean = vec![0.0f64; cols];
    for t in 0..n_all {
        for j in 0..cols {
            mean[j] += (x_all[t * cols + j] as f64).abs();
        }
    }
    mean.iter_mut().for_each(|m| *m /= n_all as f64);
    let xs: Vec<f64> = sample.iter().map(|&v| v as f64).collect();

    // auto_scale: grid of 20 ratios, loss = mean squared output error over the group.
    let mut best = (f64::INFINITY, 0.0, vec![1.0; cols]);
    for i in 0..20 {
        let ratio = i as f64 / 20.0;
        let mut s: Vec<f64> = mean.iter().map(|m| m.powf(ratio).max(1e-4)).collect();
        let mx = s.iter().cloned().fold(f64::MIN, f64::max);
        let mn = s.iter().cloned().fold(f64::MAX, f64::min);
        let norm = (mx * mn).sqrt();
        s.iter_mut().for_each(|v| *v /= norm);
        let (mut sum, mut count) = (0.0f64, 0usize);
        for &(w, rows) in ws {
            for r in 0..rows {
                let scaled: Vec<f64> = (0..cols).map(|j| w[r * cols + j] as f64 * s[j]).collect();
                let q = fq_row(&scaled, gs, bits);
                let d: Vec<f64> = (0..cols)
                    .map(|j| q[j] / s[j] - w[r * cols + j] as f64)
                    .collect();
                for t in 0..ns {
                    let xr = &xs[t * cols..(t + 1) * cols];
                    let e: f64 = xr.iter().zip(&d).map(|(a, b)| a * b).sum();
                    sum += e * e;
                }
                count += ns;
            }
        }
        let loss = sum / count as f64;
        if loss < best.0 {
            best = (loss, ratio, s);
        }
    }
    let (_, ratio, s) = best;

    // auto_clip on W diag(s) against X diag(1/s): per row and group, shrink 1 - i/20, i < 10.
    let xsc: Vec<f64> = (0..ns * cols).map(|k| xs[k] / s[k % cols]).collect();
    let mut q_all = Vec::new();
    for &(w, rows) in ws {
        let mut out = vec![0.0f32; rows * cols];
        for r in 0..rows {
            let mut row: Vec<f64> = (0..cols).map(|j| w[r * cols + j] as f64 * s[j]).collect();
            for c0 in (0..cols).step_by(gs) {
                let c1 = (c0 + gs).min(cols);
                let g: Vec<f64> = row[c0..c1].to_vec();
                let m0 = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let (mut best_e, mut best_m) = (f64::INFINITY, m0);
                for i in 0..10 {
                    let m = m0 * (1.0 - i as f64 / 20.0);
                    let c: Vec<f64> = g.iter().map(|v| v.clamp(-m, m)).collect();
                    let q = fq_row(&c, gs, bits);
                    let mut e = 0.0;
                    for t in 0..ns {
                        let xr = &xsc[t * cols + c0..t * cols + c1];
                        let d: f64 = xr
                            .iter()
                            .zip(q.iter().zip(&g))
                            .map(|(x, (a, b))| x * (a - b))
                            .sum();
                        e += d * d;
                    }
                    e /= ns as f64;
                    if e < best_e {
                        best_e = e;
                        best_m = m;
                    }
                }
                for v in &mut row[c0..c1] {
                    *v = v.clamp(-best_m, best_m);
                }
            }
            let q = fq_row(&row, gs, bits);
            for j in 0..cols {
                out[r * cols + j] = (q[j] / s[j]) as f32;
            }
        }
        q_all.push(out);
    }
    Result { s, ratio, q: q_all }
}
