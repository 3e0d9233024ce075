//! Helpers shared by the integration tests (`mod common;`): the bundled MiniLM data (`tests/data/minilm`,
//! see its README), and the relative output error `||X W^T - X Q^T||_F^2 / ||X W^T||_F^2`.
// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

/// `tests/data/minilm` of this repository.
pub fn minilm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm")
}

/// Reads a raw little-endian f32 file (no header) from `tests/data/minilm`; `name` without `.f32`.
pub fn read_f32(name: &str) -> Vec<f32> {
    let path = minilm_dir().join(format!("{name}.f32"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        bytes.len() % 4,
        0,
        "{}: not a whole number of f32",
        path.display()
    );
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// One linear layer of the bundled data, with the README's reference errors of the round-to-nearest
/// methods (numpy, ties to even, on all 2048 tokens).
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    /// The weight's name without `.weight` (e.g. `encoder.layer.0.attention.self.query`).
    pub name: &'static str,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// The activations file of its input (`x_calib.*`, without `.f32`), `n_tokens x cols`.
    pub x: &'static str,
    /// Reference relative output error of INT8 absmax/127 per output channel.
    pub int8_per_channel: f64,
    /// Reference relative output error of INT4 groups of 128 with integer zero points.
    pub int4_g128: f64,
    /// Reference relative output error of FP8 E4M3 with one scale amax/448 for the whole matrix.
    pub fp8_per_tensor: f64,
}

impl Layer {
    /// The weight, `rows x cols` row-major.
    pub fn weight(&self) -> Vec<f32> {
        let w = read_f32(&format!("{}.weight", self.name));
        assert_eq!(w.len(), self.rows * self.cols, "{}", self.name);
        w
    }

    /// The input activations, `n_tokens x cols` row-major (2048 tokens).
    pub fn activations(&self) -> Vec<f32> {
        let x = read_f32(self.x);
        assert_eq!(x.len() % self.cols, 0, "{}", self.x);
        x
    }
}

/// Every layer of `tests/data/minilm`, in the README's order.
pub const LAYERS: [Layer; 7] = [
    Layer {
        name: "encoder.layer.0.attention.self.query",
        rows: 384,
        cols: 384,
        x: "x_calib.layer0.attn_in",
        int8_per_channel: 4.5824e-05,
        int4_g128: 8.3063e-03,
        fp8_per_tensor: 5.2514e-04,
    },
    Layer {
        name: "encoder.layer.0.attention.output.dense",
        rows: 384,
        cols: 384,
        x: "x_calib.layer0.ctx",
        int8_per_channel: 7.5495e-05,
        int4_g128: 1.0461e-02,
        fp8_per_tensor: 5.9832e-04,
    },
    Layer {
        name: "encoder.layer.0.intermediate.dense",
        rows: 1536,
        cols: 384,
        x: "x_calib.layer0.ffn_in",
        int8_per_channel: 2.9892e-05,
        int4_g128: 5.6009e-03,
        fp8_per_tensor: 3.0895e-04,
    },
    Layer {
        name: "encoder.layer.0.output.dense",
        rows: 384,
        cols: 1536,
        x: "x_calib.layer0.ffn_act",
        int8_per_channel: 1.0262e-04,
        int4_g128: 3.0473e-03,
        fp8_per_tensor: 1.6842e-04,
    },
    Layer {
        name: "encoder.layer.5.attention.self.query",
        rows: 384,
        cols: 384,
        x: "x_calib.layer5.attn_in",
        int8_per_channel: 5.5098e-05,
        int4_g128: 1.0207e-02,
        fp8_per_tensor: 5.6068e-04,
    },
    Layer {
        name: "encoder.layer.5.attention.self.value",
        rows: 384,
        cols: 384,
        x: "x_calib.layer5.attn_in",
        int8_per_channel: 6.0623e-05,
        int4_g128: 1.1244e-02,
        fp8_per_tensor: 5.5613e-04,
    },
    Layer {
        name: "encoder.layer.5.intermediate.dense",
        rows: 1536,
        cols: 384,
        x: "x_calib.layer5.ffn_in",
        int8_per_channel: 4.2358e-05,
        int4_g128: 7.8910e-03,
        fp8_per_tensor: 3.7458e-04,
    },
];

/// The layer called `name` (panics if there is none).
pub fn layer(name: &str) -> Layer {
    *LAYERS
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no layer {name}"))
}

/// Measures `||X A^T||_F^2` for matrices `A` with `cols` columns, on fixed activations `X`
/// (`n_tokens x cols`), in f64 throughout (every f32 product is exact in f64).
///
/// It keeps the Gram matrix `G = X^T X` (upper triangle, computed once in `n * cols^2 / 2`
/// multiply-adds) and evaluates `||X A^T||^2 = sum_r a_r^T G a_r` in `rows * cols^2 / 2` per matrix,
/// much cheaper than `n * rows * cols` per matrix when several matrices are measured.
pub struct OutputMeter {
    cols: usize,
    n_tokens: usize,
    /// Row-major `cols x cols`; only the upper triangle (`j >= i`) is filled.
    gram: Vec<f64>,
}

impl OutputMeter {
    /// Precomputes `X^T X` for `x` (`n_tokens x cols`, row-major).
    pub fn new(x: &[f32], cols: usize) -> Self {
        assert!(cols > 0 && x.len().is_multiple_of(cols));
        let mut gram = vec![0f64; cols * cols];
        let mut xt = vec![0f64; cols];
        for token in x.chunks_exact(cols) {
            for (d, &v) in xt.iter_mut().zip(token) {
                *d = f64::from(v);
            }
            for i in 0..cols {
                let xi = xt[i];
                if xi == 0.0 {
                    continue;
                }
                let row = &mut gram[i * cols + i..(i + 1) * cols];
                for (g, &xj) in row.iter_mut().zip(&xt[i..]) {
                    *g += xi * xj;
                }
            }
        }
        Self {
            cols,
            n_tokens: x.len() / cols,
            gram,
        }
    }

    /// Number of tokens of `X`.
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    /// `||X A^T||_F^2` for `a` (`rows x cols`, row-major, f64).
    pub fn sq_norm(&self, a: &[f64]) -> f64 {
        let n = self.cols;
        assert_eq!(a.len() % n, 0);
        let mut total = 0.0;
        for row in a.chunks_exact(n) {
            // a^T G a = sum_i a_i (G_ii a_i + 2 sum_{j > i} G_ij a_j)
            let mut q = 0.0;
            for i in 0..n {
                let g = &self.gram[i * n + i..(i + 1) * n];
                let tail: f64 = g[1..].iter().zip(&row[i + 1..]).map(|(g, a)| g * a).sum();
                q += row[i] * (g[0] * row[i] + 2.0 * tail);
            }
            total += q;
        }
        total
    }

    /// `||X W^T||_F^2` for an f32 matrix.
    pub fn sq_norm_f32(&self, w: &[f32]) -> f64 {
        let a: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
        self.sq_norm(&a)
    }

    /// `||X W^T - X Q^T||_F^2 / ||X W^T||_F^2`, with `w_norm = ||X W^T||_F^2` computed once by
    /// [`sq_norm_f32`](Self::sq_norm_f32). The difference `W - Q` is taken exactly in f64.
    pub fn relative_error(&self, w: &[f32], q: &[f32], w_norm: f64) -> f64 {
        assert_eq!(w.len(), q.len());
        let d: Vec<f64> = w
            .iter()
            .zip(q)
            .map(|(&a, &b)| f64::from(a) - f64::from(b))
            .collect();
        self.sq_norm(&d) / w_norm
    }
}

/// `||X W^T - X Q^T||_F^2 / ||X W^T||_F^2` computed directly, token by token, in f64: the plain
/// reference that [`OutputMeter`] is checked against (cost `n * rows * cols`).
pub fn relative_output_error_direct(x: &[f32], w: &[f32], q: &[f32], cols: usize) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for token in x.chunks_exact(cols) {
        for (wr, qr) in w.chunks_exact(cols).zip(q.chunks_exact(cols)) {
            let (mut yw, mut yq) = (0.0f64, 0.0f64);
            for ((&xv, &wv), &qv) in token.iter().zip(wr).zip(qr) {
                yw += f64::from(xv) * f64::from(wv);
                yq += f64::from(xv) * f64::from(qv);
            }
            num += (yw - yq) * (yw - yq);
            den += yw * yw;
        }
    }
    num / den
}

/// `|got / want - 1| <= tol`.
pub fn within_relative(got: f64, want: f64, tol: f64) -> bool {
    (got / want - 1.0).abs() <= tol
}
