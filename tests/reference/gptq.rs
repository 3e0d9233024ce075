//! GPTQ as published (Frantar et al. 2022, Algorithm 1 and the reference `fasterquant`), unblocked:
//! every column's error is pushed onto all later columns at once. f64 throughout; the inverse Hessian
//! factor is computed the reference's way: Cholesky of H, the inverse from it, and the upper Cholesky
//! factor of the inverse.
use super::{asym, fq};

pub struct Config {
    pub bits: u32,
    pub group_size: usize,
    pub act_order: bool,
    pub static_groups: bool,
    pub symmetric: bool,
    pub damp: f64,
}

/// Lower Cholesky factor of the row-major SPD `a` (panics if not positive definite).
fn cholesky(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = vec![0.0f64; n * n];
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= l[j * n + k] * l[j * n + k];
        }
        assert!(d > 0.0, "not positive definite at {j}");
        let d = d.sqrt();
        l[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = s / d;
        }
    }
    l
}

/// `(L L^T)^-1` from the lower factor `l`.
fn cholesky_inverse(l: &[f64], n: usize) -> Vec<f64> {
    // Linv by forward substitution, column by column.
    let mut li = vec![0.0f64; n * n];
    for c in 0..n {
        for i in c..n {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in c..i {
                s -= l[i * n + k] * li[k * n + c];
            }
            li[i * n + c] = s / l[i * n + i];
        }
    }
    // Linv^T Linv.
    let mut inv = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = 0.0;
            for k in i..n {
                s += li[k * n + i] * li[k * n + j];
            }
            inv[i * n + j] = s;
            inv[j * n + i] = s;
        }
    }
    inv
}

fn params(vals: &[f64], bits: u32, sym: bool) -> (f64, f64) {
    let lo = vals.iter().fold(0.0f64, |m, &v| m.min(v));
    let hi = vals.iter().fold(0.0f64, |m, &v| m.max(v));
    if sym {
        let a = (-lo).max(hi);
        let (s, _) = asym(-a, a, bits);
        (s, ((1u32 << bits) as f64) / 2.0)
    } else {
        asym(lo, hi, bits)
    }
}

/// The dequantized GPTQ weight (row-major `rows x cols`, original column order).
pub fn gptq(w: &[f32], rows: usize, cols: usize, h: &[f64], cfg: &Config) -> Vec<f32> {
    let n = cols;
    let gs = if cfg.group_size == 0 {
        n
    } else {
        cfg.group_size
    };
    let mut h = h.to_vec();
    let mut wk: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    for i in 0..n {
        if h[i * n + i] == 0.0 {
            h[i * n + i] = 1.0;
            for r in 0..rows {
                wk[r * n + i] = 0.0;
            }
        }
    }
    let ngroups = n.div_ceil(gs);
    let mut static_p = vec![(0.0, 0.0); rows * ngroups];
    if cfg.static_groups {
        for r in 0..rows {
            for g in 0..ngroups {
                let vals = &wk[r * n + g * gs..r * n + ((g + 1) * gs).min(n)];
                static_p[r * ngroups + g] = params(vals, cfg.bits, cfg.symmetric);
            }
        }
    }
    let mut perm: Vec<usize> = (0..n).collect();
    if cfg.act_order {
        perm.sort_by(|&a, &b| h[b * n + b].total_cmp(&h[a * n + a]));
    }
    let mut hp = vec![0.0f64; n * n];
    let mut wp = vec![0.0f64; rows * n];
    for i in 0..n {
        for j in 0..n {
            hp[i * n + j] = h[perm[i] * n + perm[j]];
        }
        for r in 0..rows {
            wp[r * n + i] = wk[r * n + perm[i]];
        }
    }
    let mean = (0..n).map(|i| hp[i * n + i]).sum::<f64>() / n as f64;
    for i in 0..n {
        hp[i * n + i] += cfg.damp * mean;
    }
    let l = cholesky(&hp, n);
    let inv = cholesky_inverse(&l, n);
    let l2 = cholesky(&inv, n);
    // Upper factor U = L2^T: U[i][j] = l2[j][i].
    let mut ut = vec![0.0f64; n * n];
    for i in 0..n {
        for j in i..n {
            ut[i * n + j] = l2[j * n + i];
        }
    }
    let u = |i: usize, j: usize| ut[i * n + j];
    let mut out = vec![0.0f32; rows * n];
    for r in 0..rows {
        let row = &mut wp[r * n..(r + 1) * n];
        let mut p = (0.0, 0.0);
        for i in 0..n {
            if cfg.static_groups {
                p = static_p[r * ngroups + perm[i] / gs];
            } else if i % gs == 0 {
                p = params(&row[i..(i + gs).min(n)], cfg.bits, cfg.symmetric);
            }
            let q = fq(row[i], p.0, p.1, cfg.bits);
            let e = (row[i] - q) / u(i, i);
            for j in i + 1..n {
                row[j] -= e * u(i, j);
            }
            out[r * n + perm[i]] = q as f32;
        }
    }
    out
}
