//! SmoothQuant as published (Xiao et al. 2022, `smooth_ln_fcs`) and the W8A8 layer it feeds, in f64.
use super::int8_rows;

/// The migration scales: `max(a^alpha / max(w, 1e-5)^(1-alpha), 1e-5)` with `a` = max|x| over the
/// calibration tokens and `w` = max|W_j| over every matrix of the group.
pub fn scales(ws: &[(&[f32], usize)], cols: usize, x_calib: &[f32], alpha: f64) -> Vec<f64> {
    let n = x_calib.len() / cols;
    let mut a = vec![0.0f64; cols];
    for t in 0..n {
        for j in 0..cols {
            a[j] = a[j].max((x_calib[t * cols + j] as f64).abs());
        }
    }
    let mut wm = vec![0.0f64; cols];
    for &(w, rows) in ws {
        for r in 0..rows {
            for j in 0..cols {
                wm[j] = wm[j].max((w[r * cols + j] as f64).abs());
            }
        }
    }
    (0..cols)
        .map(|j| (a[j].powf(alpha) / wm[j].max(1e-5).powf(1.0 - alpha)).max(1e-5))
        .collect()
}

/// The W8A8 output `Q_tok(x / s) Q_row(W diag s)^T` (row-major `n x rows`), `s` = 1 when `None`.
pub fn w8a8_output(w: &[f32], rows: usize, cols: usize, x: &[f32], s: Option<&[f64]>) -> Vec<f64> {
    let n = x.len() / cols;
    let one = vec![1.0f64; cols];
    let s = s.unwrap_or(&one);
    let ws: Vec<f64> = (0..rows * cols)
        .map(|k| w[k] as f64 * s[k % cols])
        .collect();
    let xs: Vec<f64> = (0..n * cols).map(|k| x[k] as f64 / s[k % cols]).collect();
    let (qw, sw) = int8_rows(&ws, rows, cols);
    let (qx, sx) = int8_rows(&xs, n, cols);
    let mut y = vec![0.0f64; n * rows];
    for t in 0..n {
        let xr = &qx[t * cols..(t + 1) * cols];
        for r in 0..rows {
            let wr = &qw[r * cols..(r + 1) * cols];
            let acc: f64 = xr.iter().zip(wr).map(|(a, b)| a * b).sum();
            y[t * rows + r] = acc * sx[t] * sw[r];
        }
    }
    y
}
