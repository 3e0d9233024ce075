//! Shared by the `algos_*` tests: the real MiniLM data, the error measure, and plain scalar
//! re-implementations (f64, straightforward loops, no blocking) of the published algorithms, written
//! independently of the library's code so that each algorithm can be checked against its steps.
#![allow(dead_code)]
// Plain index loops on purpose: these are the textbook steps.
#![allow(clippy::needless_range_loop)]

use std::path::PathBuf;

pub mod awq;
pub mod gptq;
pub mod smoothquant;

/// Tokens in every activation file; the first half calibrates, the second half measures.
pub const TOKENS: usize = 2048;
pub const CALIB: usize = 1024;

/// One linear layer of the bundled data.
#[derive(Clone, Copy, Debug)]
pub struct Layer {
    pub name: &'static str,
    pub short: &'static str,
    pub rows: usize,
    pub cols: usize,
    pub input: &'static str,
}

pub const LAYERS: [Layer; 7] = [
    Layer {
        name: "encoder.layer.0.attention.self.query",
        short: "L0 query",
        rows: 384,
        cols: 384,
        input: "x_calib.layer0.attn_in",
    },
    Layer {
        name: "encoder.layer.0.attention.output.dense",
        short: "L0 attn.out",
        rows: 384,
        cols: 384,
        input: "x_calib.layer0.ctx",
    },
    Layer {
        name: "encoder.layer.0.intermediate.dense",
        short: "L0 intermediate",
        rows: 1536,
        cols: 384,
        input: "x_calib.layer0.ffn_in",
    },
    Layer {
        name: "encoder.layer.0.output.dense",
        short: "L0 output",
        rows: 384,
        cols: 1536,
        input: "x_calib.layer0.ffn_act",
    },
    Layer {
        name: "encoder.layer.5.attention.self.query",
        short: "L5 query",
        rows: 384,
        cols: 384,
        input: "x_calib.layer5.attn_in",
    },
    Layer {
        name: "encoder.layer.5.attention.self.value",
        short: "L5 value",
        rows: 384,
        cols: 384,
        input: "x_calib.layer5.attn_in",
    },
    Layer {
        name: "encoder.layer.5.intermediate.dense",
        short: "L5 intermediate",
        rows: 1536,
        cols: 384,
        input: "x_calib.layer5.ffn_in",
    },
];

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm")
}

/// Reads a raw little-endian f32 file of the bundled data.
pub fn load(name: &str, len: usize) -> Vec<f32> {
    let path = data_dir().join(format!("{name}.f32"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len(), len * 4, "{}", path.display());
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A layer's weight and its full activations (2048 tokens).
pub struct LayerData {
    pub layer: Layer,
    pub w: Vec<f32>,
    pub x: Vec<f32>,
}

impl LayerData {
    pub fn load(layer: Layer) -> Self {
        Self {
            layer,
            w: load(&format!("{}.weight", layer.name), layer.rows * layer.cols),
            x: load(layer.input, TOKENS * layer.cols),
        }
    }
    /// The calibration half (tokens 0..1024).
    pub fn calib(&self) -> &[f32] {
        &self.x[..CALIB * self.layer.cols]
    }
    /// The held-out half (tokens 1024..2048).
    pub fn test(&self) -> &[f32] {
        &self.x[CALIB * self.layer.cols..]
    }
    /// Relative output error of `q` on the held-out tokens.
    pub fn err(&self, q: &[f32]) -> f64 {
        rel_error(
            self.test(),
            TOKENS - CALIB,
            &self.w,
            q,
            self.layer.rows,
            self.layer.cols,
        )
    }
}

/// `||X W^T - X Q^T||_F^2 / ||X W^T||_F^2` in f64 (X: `n x cols`, W and Q: `rows x cols`).
pub fn rel_error(x: &[f32], n: usize, w: &[f32], q: &[f32], rows: usize, cols: usize) -> f64 {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, Mat, MatRef, Par};
    let x64: Vec<f64> = x[..n * cols].iter().map(|&v| v as f64).collect();
    let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    let d64: Vec<f64> = w
        .iter()
        .zip(q)
        .map(|(&a, &b)| a as f64 - b as f64)
        .collect();
    let xm = MatRef::from_row_major_slice(&x64, n, cols);
    let mut y = Mat::<f64>::zeros(n, rows);
    let mut e = Mat::<f64>::zeros(n, rows);
    matmul(
        y.as_mut(),
        Accum::Replace,
        xm,
        MatRef::from_row_major_slice(&w64, rows, cols).transpose(),
        1.0,
        Par::Seq,
    );
    matmul(
        e.as_mut(),
        Accum::Replace,
        xm,
        MatRef::from_row_major_slice(&d64, rows, cols).transpose(),
        1.0,
        Par::Seq,
    );
    e.norm_l2().powi(2) / y.norm_l2().powi(2)
}

/// `X W^T` in f64 (row-major `n x rows`).
pub fn output(x: &[f32], n: usize, w: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, MatMut, MatRef, Par};
    let x64: Vec<f64> = x[..n * cols].iter().map(|&v| v as f64).collect();
    let w64: Vec<f64> = w[..rows * cols].iter().map(|&v| v as f64).collect();
    let mut y = vec![0.0f64; n * rows];
    matmul(
        MatMut::from_row_major_slice_mut(&mut y, n, rows),
        Accum::Replace,
        MatRef::from_row_major_slice(&x64, n, cols),
        MatRef::from_row_major_slice(&w64, rows, cols).transpose(),
        1.0,
        Par::Seq,
    );
    y
}

/// `||y - yq||^2 / ||y||^2`.
pub fn rel_output_error(y: &[f64], yq: &[f64]) -> f64 {
    let num: f64 = y.iter().zip(yq).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = y.iter().map(|a| a * a).sum();
    num / den
}

/// The asymmetric k-bit quantizer of the published methods (and the library's INT4 rule), in f64 with
/// round-half-to-even: returns (scale, zero) for values in [lo, hi] with 0 put inside the range.
pub fn asym(lo: f64, hi: f64, bits: u32) -> (f64, f64) {
    let maxq = ((1u32 << bits) - 1) as f64;
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = (hi - lo) / maxq;
    if scale == 0.0 {
        return (0.0, 0.0);
    }
    (scale, (-lo / scale).round_ties_even().clamp(0.0, maxq))
}

/// Quantize-dequantize one value.
pub fn fq(x: f64, scale: f64, zero: f64, bits: u32) -> f64 {
    if scale == 0.0 {
        return 0.0;
    }
    let maxq = ((1u32 << bits) - 1) as f64;
    let q = ((x / scale).round_ties_even() + zero).clamp(0.0, maxq);
    (q - zero) * scale
}

/// Round-to-nearest `bits`-bit asymmetric group quantization (groups of `gs` along each row).
pub fn rtn(w: &[f32], rows: usize, cols: usize, gs: usize, bits: u32) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c0 in (0..cols).step_by(gs) {
            let g = &w[r * cols + c0..r * cols + (c0 + gs).min(cols)];
            let lo = g.iter().fold(f64::INFINITY, |m, &v| m.min(v as f64));
            let hi = g.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let (s, z) = asym(lo, hi, bits);
            for (k, &v) in g.iter().enumerate() {
                out[r * cols + c0 + k] = fq(v as f64, s, z, bits) as f32;
            }
        }
    }
    out
}

/// INT8 symmetric per row: (codes, scales) with scale = absmax / 127.
pub fn int8_rows(v: &[f64], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    let mut q = vec![0.0; rows * cols];
    let mut s = vec![0.0; rows];
    for r in 0..rows {
        let row = &v[r * cols..(r + 1) * cols];
        let amax = row.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        s[r] = amax / 127.0;
        for (k, &x) in row.iter().enumerate() {
            q[r * cols + k] = if s[r] == 0.0 {
                0.0
            } else {
                (x / s[r]).round_ties_even().clamp(-127.0, 127.0)
            };
        }
    }
    (q, s)
}

/// `(2/n) X^T X` in f64, row-major `cols x cols` (plain loops).
pub fn hessian(x: &[f32], n: usize, cols: usize) -> Vec<f64> {
    let mut h = vec![0.0f64; cols * cols];
    for t in 0..n {
        let row = &x[t * cols..(t + 1) * cols];
        for i in 0..cols {
            let xi = row[i] as f64;
            if xi == 0.0 {
                continue;
            }
            for (hv, &xj) in h[i * cols..(i + 1) * cols].iter_mut().zip(row) {
                *hv += xi * xj as f64;
            }
        }
    }
    let f = 2.0 / n as f64;
    h.iter_mut().for_each(|v| *v *= f);
    h
}

/// Agreement within `tol` (relative) of two error figures.
pub fn agrees(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs())
}
