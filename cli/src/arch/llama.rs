//! The Llama forward pass in f32, as llama.cpp computes it for `general.architecture = llama`: RMSNorm,
//! rotary positions in GGUF's convention, grouped-query causal attention, SwiGLU feed-forward, and the
//! output projection (tied to the token embedding when the file has no `output.weight`).
//!
//! A whole sequence goes through each layer at once, so that every projection is one matrix product
//! (faer, multithreaded); attention runs head by head in parallel.
use anyhow::{bail, Context, Result};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use quant::algos::smoothquant::quantize_activations;
use rayon::prelude::*;

use crate::model::Tensor;

/// The hyperparameters, from the GGUF metadata (`llama.*`).
#[derive(Clone, Debug)]
pub struct Config {
    pub n_layer: usize,
    /// `llama.embedding_length`.
    pub n_embd: usize,
    /// `llama.feed_forward_length`.
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// `llama.rope.dimension_count`: how many leading dimensions of each head are rotated.
    pub rope_dims: usize,
    /// `llama.rope.freq_base`.
    pub rope_base: f32,
    /// `llama.attention.layer_norm_rms_epsilon`.
    pub rms_eps: f32,
    pub n_vocab: usize,
}

impl Config {
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    fn check(&self) -> Result<()> {
        if self.n_head == 0 || self.n_head_kv == 0 || self.n_embd % self.n_head != 0 {
            bail!(
                "llama: embedding length {} is not a multiple of the head count {}",
                self.n_embd,
                self.n_head
            );
        }
        if self.n_head % self.n_head_kv != 0 {
            bail!(
                "llama: head count {} is not a multiple of the KV head count {}",
                self.n_head,
                self.n_head_kv
            );
        }
        if self.rope_dims > self.head_dim() || self.rope_dims % 2 != 0 {
            bail!(
                "llama: rope dimension count {} does not fit a head of {}",
                self.rope_dims,
                self.head_dim()
            );
        }
        Ok(())
    }
}

/// A linear layer of a block, by its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linear {
    Q,
    K,
    V,
    Output,
    Gate,
    Up,
    Down,
}

impl Linear {
    pub const ALL: [Linear; 7] = [
        Self::Q,
        Self::K,
        Self::V,
        Self::Output,
        Self::Gate,
        Self::Up,
        Self::Down,
    ];

    /// The GGUF name of this layer's weight in block `l`.
    pub fn gguf_name(self, l: usize) -> String {
        let s = match self {
            Self::Q => "attn_q",
            Self::K => "attn_k",
            Self::V => "attn_v",
            Self::Output => "attn_output",
            Self::Gate => "ffn_gate",
            Self::Up => "ffn_up",
            Self::Down => "ffn_down",
        };
        format!("blk.{l}.{s}.weight")
    }

    /// The input this layer reads.
    pub fn input(self) -> Tap {
        match self {
            Self::Q | Self::K | Self::V => Tap::AttnIn,
            Self::Output => Tap::AttnOut,
            Self::Gate | Self::Up => Tap::FfnIn,
            Self::Down => Tap::FfnAct,
        }
    }
}

/// The four inputs of a block's linear layers (`[tokens, width]` row-major when a block shows them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tap {
    /// The normed residual that q, k and v read.
    AttnIn,
    /// The heads' outputs, which attn_output reads.
    AttnOut,
    /// The normed residual that gate and up read.
    FfnIn,
    /// `silu(gate) * up`, which ffn_down reads.
    FfnAct,
}

impl Tap {
    pub const ALL: [Tap; 4] = [Self::AttnIn, Self::AttnOut, Self::FfnIn, Self::FfnAct];
}

/// The working buffers of one block run over `t` tokens.
struct Buffers {
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    g: Vec<f32>,
    u: Vec<f32>,
    int8: Int8Buffers,
}

impl Buffers {
    /// With `act_int8`, room to round the widest linear input of `t` tokens.
    fn new(c: &Config, t: usize, act_int8: bool) -> Self {
        let (d, kvd) = (c.n_embd, c.n_head_kv * c.head_dim());
        Self {
            h: vec![0f32; t * d],
            q: vec![0f32; t * d],
            k: vec![0f32; t * kvd],
            v: vec![0f32; t * kvd],
            att: vec![0f32; t * d],
            g: vec![0f32; t * c.n_ff],
            u: vec![0f32; t * c.n_ff],
            int8: if act_int8 {
                Int8Buffers::new(t, d.max(c.n_ff))
            } else {
                Int8Buffers::default()
            },
        }
    }
}

/// The INT8 codes and per-token scales of a linear input being rounded (empty when activations are
/// not quantized).
#[derive(Default)]
struct Int8Buffers {
    codes: Vec<i8>,
    scales: Vec<f32>,
}

impl Int8Buffers {
    /// Room for `t` tokens of up to `width` values.
    fn new(t: usize, width: usize) -> Self {
        Self {
            codes: vec![0i8; t * width],
            scales: vec![0f32; t],
        }
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Vec<f32>,
    wk: Vec<f32>,
    wv: Vec<f32>,
    wo: Vec<f32>,
    ffn_norm: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
}

pub struct Llama {
    cfg: Config,
    token_embd: Vec<f32>,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    /// None: the output projection is the token embedding.
    output: Option<Vec<f32>>,
    /// (cos, sin) for position p and pair i at `p * rope_dims/2 + i`, filled up to the longest sequence.
    rope: std::sync::Mutex<(usize, Vec<f32>, Vec<f32>)>,
    /// Every block linear layer's input rounded to INT8 per token before the product (W8A8 engines'
    /// dynamic activation quantization); off by default.
    act_int8: bool,
}

impl Llama {
    /// Loads the weights by their GGUF names through `get` (f32, `[out, in]` for a linear layer), which
    /// returns None for an absent tensor.
    pub fn load(cfg: Config, mut get: impl FnMut(&str) -> Result<Option<Tensor>>) -> Result<Self> {
        cfg.check()?;
        let (d, kv, ff) = (cfg.n_embd, cfg.n_head_kv * cfg.head_dim(), cfg.n_ff);
        let mut need = |name: &str, rows: usize, cols: usize| -> Result<Vec<f32>> {
            let t = get(name)?.with_context(|| format!("llama: tensor {name} is missing"))?;
            if (t.rows(), t.cols()) != (rows, cols) {
                bail!(
                    "llama: tensor {name} is {:?}, expected [{rows}, {cols}]",
                    t.shape
                );
            }
            Ok(t.data)
        };
        let token_embd = need("token_embd.weight", cfg.n_vocab, d)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: need(&n("attn_norm"), 1, d)?,
                wq: need(&n("attn_q"), d, d)?,
                wk: need(&n("attn_k"), kv, d)?,
                wv: need(&n("attn_v"), kv, d)?,
                wo: need(&n("attn_output"), d, d)?,
                ffn_norm: need(&n("ffn_norm"), 1, d)?,
                gate: need(&n("ffn_gate"), ff, d)?,
                up: need(&n("ffn_up"), ff, d)?,
                down: need(&n("ffn_down"), d, ff)?,
            });
        }
        let output_norm = need("output_norm.weight", 1, d)?;
        let output = match get("output.weight")? {
            None => None,
            Some(t) if (t.rows(), t.cols()) == (cfg.n_vocab, d) => Some(t.data),
            Some(t) => bail!(
                "llama: tensor output.weight is {:?}, expected [{}, {d}]",
                t.shape,
                cfg.n_vocab
            ),
        };
        Ok(Self {
            cfg,
            token_embd,
            layers,
            output_norm,
            output,
            rope: Default::default(),
            act_int8: false,
        })
    }

    /// With `on`, each block linear layer's input is quantized to INT8 per token (symmetric, scale
    /// `max|x| / 127`, the library's `quantize_activations`) and dequantized before the product, as
    /// an engine running W8A8 with dynamic per-token activations computes it. The taps still see the
    /// unrounded inputs.
    pub fn set_activation_int8(&mut self, on: bool) {
        self.act_int8 = on;
    }

    /// `x` (`t` rows of `width`) rounded to INT8 per row and back, when activations are quantized.
    /// `buf` holds at least `x.len()` codes and `t` scales.
    fn round_activations(&self, x: &mut [f32], width: usize, buf: &mut Int8Buffers) {
        if !self.act_int8 {
            return;
        }
        let t = x.len() / width;
        let (codes, scales) = (&mut buf.codes[..x.len()], &mut buf.scales[..t]);
        // Finite inputs of a consistent shape cannot fail; a NaN leaves the values as they are.
        if quantize_activations(x, t, width, None, codes, scales).is_ok() {
            for ((row, q), &s) in x
                .chunks_exact_mut(width)
                .zip(codes.chunks_exact(width))
                .zip(scales.iter())
            {
                for (v, &c) in row.iter_mut().zip(q) {
                    *v = f32::from(c) * s;
                }
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The weight of `which` in block `l` (`[out, in]` row-major), to be replaced in place (by its
    /// quantized values, when a block is calibrated on the blocks already quantized).
    pub fn linear_mut(&mut self, l: usize, which: Linear) -> &mut [f32] {
        let b = &mut self.layers[l];
        match which {
            Linear::Q => &mut b.wq,
            Linear::K => &mut b.wk,
            Linear::V => &mut b.wv,
            Linear::Output => &mut b.wo,
            Linear::Gate => &mut b.gate,
            Linear::Up => &mut b.up,
            Linear::Down => &mut b.down,
        }
    }

    /// The weight of block `l`'s attention norm (`n_embd`), to be replaced in place (by a folded
    /// scale).
    pub fn attn_norm_mut(&mut self, l: usize) -> &mut [f32] {
        &mut self.layers[l].attn_norm
    }

    /// The weight of block `l`'s feed-forward norm (`n_embd`), to be replaced in place.
    pub fn ffn_norm_mut(&mut self, l: usize) -> &mut [f32] {
        &mut self.layers[l].ffn_norm
    }

    /// The token embeddings of `tokens`, `[tokens.len(), n_embd]`: the first block's input.
    pub fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let c = &self.cfg;
        let d = c.n_embd;
        let mut x = vec![0f32; tokens.len() * d];
        for (row, &tok) in x.chunks_exact_mut(d).zip(tokens) {
            let tok = tok as usize;
            if tok >= c.n_vocab {
                bail!(
                    "llama: token id {tok} is outside the vocabulary ({})",
                    c.n_vocab
                );
            }
            row.copy_from_slice(&self.token_embd[tok * d..(tok + 1) * d]);
        }
        Ok(x)
    }

    /// Runs block `l` on the residual stream `x` (`[t, n_embd]`, positions 0..t), updated in place;
    /// `tap` sees each input of the block's linear layers as it is computed.
    pub fn block(&self, l: usize, x: &mut [f32], tap: &mut dyn FnMut(Tap, &[f32])) -> Result<()> {
        let t = x.len() / self.cfg.n_embd;
        if l >= self.layers.len() || x.len() != t * self.cfg.n_embd {
            bail!(
                "llama: block {l} asked of a {}-block model, or a ragged input",
                self.layers.len()
            );
        }
        let (cos, sin) = self.rope_tables(t);
        let mut b = Buffers::new(&self.cfg, t, self.act_int8);
        self.run_block(&self.layers[l], x, t, &cos, &sin, &mut b, tap);
        Ok(())
    }

    /// One block: attention then feed-forward, each added to the residual `x`.
    #[allow(clippy::too_many_arguments)]
    fn run_block(
        &self,
        l: &Layer,
        x: &mut [f32],
        t: usize,
        cos: &[f32],
        sin: &[f32],
        b: &mut Buffers,
        tap: &mut dyn FnMut(Tap, &[f32]),
    ) {
        let c = &self.cfg;
        let (d, hd) = (c.n_embd, c.head_dim());
        let kvd = c.n_head_kv * hd;
        rms_norm(x, &mut b.h, &l.attn_norm, c.rms_eps);
        tap(Tap::AttnIn, &b.h);
        self.round_activations(&mut b.h, d, &mut b.int8);
        linear(&b.h, t, &l.wq, d, &mut b.q, Accum::Replace);
        linear(&b.h, t, &l.wk, kvd, &mut b.k, Accum::Replace);
        linear(&b.h, t, &l.wv, kvd, &mut b.v, Accum::Replace);
        rope(&mut b.q, hd, c.rope_dims, cos, sin);
        rope(&mut b.k, hd, c.rope_dims, cos, sin);
        self.attention(&b.q, &b.k, &b.v, t, &mut b.att);
        tap(Tap::AttnOut, &b.att);
        self.round_activations(&mut b.att, d, &mut b.int8);
        linear(&b.att, t, &l.wo, d, x, Accum::Add);

        rms_norm(x, &mut b.h, &l.ffn_norm, c.rms_eps);
        tap(Tap::FfnIn, &b.h);
        self.round_activations(&mut b.h, d, &mut b.int8);
        linear(&b.h, t, &l.gate, c.n_ff, &mut b.g, Accum::Replace);
        linear(&b.h, t, &l.up, c.n_ff, &mut b.u, Accum::Replace);
        b.g.par_chunks_mut(c.n_ff)
            .zip(b.u.par_chunks(c.n_ff))
            .for_each(|(g, u)| {
                for (g, &u) in g.iter_mut().zip(u) {
                    *g = *g / (1.0 + (-*g).exp()) * u;
                }
            });
        tap(Tap::FfnAct, &b.g);
        self.round_activations(&mut b.g, c.n_ff, &mut b.int8);
        linear(&b.g, t, &l.down, d, x, Accum::Add);
    }

    /// The logits of positions `from..` of the residual stream `x` after the last block,
    /// `[t - from, n_vocab]`.
    pub fn logits(&self, x: &[f32], from: usize) -> Vec<f32> {
        let c = &self.cfg;
        let d = c.n_embd;
        let rows = x.len() / d - from;
        let mut hn = vec![0f32; rows * d];
        rms_norm(&x[from * d..], &mut hn, &self.output_norm, c.rms_eps);
        let mut logits = vec![0f32; rows * c.n_vocab];
        let w = self.output.as_deref().unwrap_or(&self.token_embd);
        linear(&hn, rows, w, c.n_vocab, &mut logits, Accum::Replace);
        logits
    }

    /// Runs `tokens` (positions 0..) through the model and returns the logits of positions `from..`,
    /// row-major `[tokens.len() - from, n_vocab]`.
    pub fn forward(&self, tokens: &[u32], from: usize) -> Result<Vec<f32>> {
        let t = tokens.len();
        if from > t {
            bail!("llama: logits asked from position {from} of a {t}-token sequence");
        }
        let mut x = self.embed(tokens)?;
        let (cos, sin) = self.rope_tables(t);
        let mut b = Buffers::new(&self.cfg, t, self.act_int8);
        for l in &self.layers {
            self.run_block(l, &mut x, t, &cos, &sin, &mut b, &mut |_, _| {});
        }
        Ok(self.logits(&x, from))
    }

    /// Causal grouped-query attention: each query head attends to KV head `head / (n_head / n_head_kv)`,
    /// position i to positions 0..=i. Queries go in blocks, each against the keys up to its last
    /// position only, so the masked half of the score matrix is mostly never computed.
    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], t: usize, out: &mut [f32]) {
        const BLOCK: usize = 64;
        let c = &self.cfg;
        let (d, hd) = (c.n_embd, c.head_dim());
        let kvd = c.n_head_kv * hd;
        let group = c.n_head / c.n_head_kv;
        let scale = 1.0 / (hd as f32).sqrt();
        let heads: Vec<Vec<f32>> = (0..c.n_head)
            .into_par_iter()
            .map(|head| {
                let kvh = head / group;
                let qh = MatRef::from_row_major_slice(q, t, d).subcols(head * hd, hd);
                let kh = MatRef::from_row_major_slice(k, t, kvd).subcols(kvh * hd, hd);
                let vh = MatRef::from_row_major_slice(v, t, kvd).subcols(kvh * hd, hd);
                let mut o = vec![0f32; t * hd];
                let mut s = vec![0f32; BLOCK.min(t) * t];
                for b0 in (0..t).step_by(BLOCK) {
                    let (rows, keys) = (BLOCK.min(t - b0), (b0 + BLOCK).min(t));
                    let s = &mut s[..rows * keys];
                    matmul(
                        MatMut::from_row_major_slice_mut(s, rows, keys),
                        Accum::Replace,
                        qh.subrows(b0, rows),
                        kh.subrows(0, keys).transpose(),
                        scale,
                        Par::Seq,
                    );
                    for (r, row) in s.chunks_exact_mut(keys).enumerate() {
                        let i = b0 + r;
                        let max = row[..=i].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                        let mut sum = 0f32;
                        for x in &mut row[..=i] {
                            *x = (*x - max).exp();
                            sum += *x;
                        }
                        let inv = 1.0 / sum;
                        row[..=i].iter_mut().for_each(|x| *x *= inv);
                        row[i + 1..].fill(0.0);
                    }
                    matmul(
                        MatMut::from_row_major_slice_mut(
                            &mut o[b0 * hd..(b0 + rows) * hd],
                            rows,
                            hd,
                        ),
                        Accum::Replace,
                        MatRef::from_row_major_slice(s, rows, keys),
                        vh.subrows(0, keys),
                        1.0f32,
                        Par::Seq,
                    );
                }
                o
            })
            .collect();
        for (head, o) in heads.iter().enumerate() {
            for (dst, src) in out.chunks_exact_mut(d).zip(o.chunks_exact(hd)) {
                dst[head * hd..(head + 1) * hd].copy_from_slice(src);
            }
        }
    }

    /// cos and sin of `pos * base^(-2i/rope_dims)` for positions 0..t, computed once and kept.
    fn rope_tables(&self, t: usize) -> (Vec<f32>, Vec<f32>) {
        let half = self.cfg.rope_dims / 2;
        let mut cache = self.rope.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 < t {
            let base = self.cfg.rope_base as f64;
            let mut cos = Vec::with_capacity(t * half);
            let mut sin = Vec::with_capacity(t * half);
            for p in 0..t {
                for i in 0..half {
                    let theta = p as f64 * base.powf(-2.0 * i as f64 / self.cfg.rope_dims as f64);
                    cos.push(theta.cos() as f32);
                    sin.push(theta.sin() as f32);
                }
            }
            *cache = (t, cos, sin);
        }
        (cache.1[..t * half].to_vec(), cache.2[..t * half].to_vec())
    }
}

/// `y = x / sqrt(mean(x^2) + eps) * w`, row by row (the mean in f64, as ggml sums).
fn rms_norm(x: &[f32], y: &mut [f32], w: &[f32], eps: f32) {
    let d = w.len();
    y.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(y, x)| {
        let ss: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        let scale = 1.0 / ((ss / d as f64) as f32 + eps).sqrt();
        for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
            *y = x * scale * w;
        }
    });
}

/// GGUF's rotary convention (ggml's "normal" mode): within each head, the pairs (2i, 2i+1) for
/// i < rope_dims/2 rotate by angle `pos * base^(-2i/rope_dims)`. GGUF files store Llama's q and k rows
/// permuted for this pairing (Hugging Face's checkpoints pair i with i + dims/2 instead).
fn rope(x: &mut [f32], hd: usize, rope_dims: usize, cos: &[f32], sin: &[f32]) {
    let half = rope_dims / 2;
    let width = x.len() / (cos.len() / half);
    x.par_chunks_mut(width).enumerate().for_each(|(p, row)| {
        let (c, s) = (
            &cos[p * half..(p + 1) * half],
            &sin[p * half..(p + 1) * half],
        );
        for head in row.chunks_exact_mut(hd) {
            for i in 0..half {
                let (a, b) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = a * c[i] - b * s[i];
                head[2 * i + 1] = a * s[i] + b * c[i];
            }
        }
    });
}

/// `y (+)= x w^T` with x `[t, in]`, w `[out, in]`, y `[t, out]`, all row-major.
fn linear(x: &[f32], t: usize, w: &[f32], out: usize, y: &mut [f32], accum: Accum) {
    let inp = x.len() / t;
    matmul(
        MatMut::from_row_major_slice_mut(&mut y[..t * out], t, out),
        accum,
        MatRef::from_row_major_slice(&x[..t * inp], t, inp),
        MatRef::from_row_major_slice(w, out, inp).transpose(),
        1.0f32,
        Par::rayon(0),
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small model with pseudo-random weights (a fixed LCG, so runs repeat).
    pub(crate) fn tiny(tied: bool) -> Llama {
        let cfg = Config {
            n_layer: 2,
            n_embd: 16,
            n_ff: 24,
            n_head: 4,
            n_head_kv: 2,
            rope_dims: 4,
            rope_base: 10000.0,
            rms_eps: 1e-5,
            n_vocab: 11,
        };
        let mut state = 0x2545_f491_4f6c_dd1du64;
        Llama::load(cfg, |name| {
            if name == "output.weight" && tied {
                return Ok(None);
            }
            let shape = match name {
                "token_embd.weight" | "output.weight" => vec![11, 16],
                n if n.ends_with("norm.weight") => vec![16],
                n if n.ends_with("attn_k.weight") || n.ends_with("attn_v.weight") => vec![8, 16],
                n if n.ends_with("ffn_gate.weight") || n.ends_with("ffn_up.weight") => vec![24, 16],
                n if n.ends_with("ffn_down.weight") => vec![16, 24],
                _ => vec![16, 16],
            };
            let data = (0..shape.iter().product::<usize>())
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8
                })
                .collect();
            Ok(Some(Tensor {
                name: name.into(),
                shape,
                data,
            }))
        })
        .unwrap()
    }

    /// Causal attention: a prefix's logits do not depend on what follows it, and asking for logits
    /// from a later position returns the same rows.
    #[test]
    fn prefix_logits_ignore_later_tokens() {
        for tied in [true, false] {
            let m = tiny(tied);
            // Longer than two query blocks of the attention, ending inside a third.
            let toks: Vec<u32> = (0..150u32).map(|i| (i * 7 + i / 3) % 11).collect();
            let full = m.forward(&toks, 0).unwrap();
            let v = m.config().n_vocab;
            let prefix = m.forward(&toks[..100], 0).unwrap();
            for (a, b) in prefix.iter().zip(&full[..100 * v]) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
            }
            let tail = m.forward(&toks, 130).unwrap();
            assert_eq!(tail.len(), 20 * v);
            for (a, b) in tail.iter().zip(&full[130 * v..]) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
            }
        }
    }

    /// Block by block (with taps) gives the bits of the whole forward pass, and the taps see each
    /// linear input once, at its width.
    #[test]
    fn block_by_block_is_the_forward_pass() {
        let m = tiny(false);
        let toks: Vec<u32> = (0..70u32).map(|i| (i * 5 + 1) % 11).collect();
        let full = m.forward(&toks, 3).unwrap();
        let mut x = m.embed(&toks).unwrap();
        for l in 0..m.config().n_layer {
            let mut seen = Vec::new();
            m.block(l, &mut x, &mut |tap, data| seen.push((tap, data.len())))
                .unwrap();
            assert_eq!(
                seen,
                [
                    (Tap::AttnIn, 70 * 16),
                    (Tap::AttnOut, 70 * 16),
                    (Tap::FfnIn, 70 * 16),
                    (Tap::FfnAct, 70 * 24)
                ]
            );
        }
        let logits = m.logits(&x, 3);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&logits), bits(&full));
        assert!(m.block(2, &mut x, &mut |_, _| {}).is_err());
    }

    /// INT8 activations: every linear input the block multiplies is on its token's INT8 grid (the
    /// taps still see the unrounded values), and the logits move by about INT8's rounding, not more.
    #[test]
    fn int8_activations_round_each_linear_input_per_token() {
        let mut m = tiny(false);
        let toks: Vec<u32> = (0..40u32).map(|i| (i * 7 + 2) % 11).collect();
        let plain = m.forward(&toks, 0).unwrap();
        m.set_activation_int8(true);
        let rounded = m.forward(&toks, 0).unwrap();
        let diff: f64 = plain
            .iter()
            .zip(&rounded)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        let norm: f64 = plain.iter().map(|a| f64::from(*a).powi(2)).sum();
        let rel = (diff / norm).sqrt();
        assert!(
            rel > 0.0 && rel < 0.05,
            "relative change of the logits {rel}"
        );
        // The rounding itself: each row becomes multiples of its max / 127, the max kept.
        let mut x = vec![0.3f32, -1.27, 0.001, 0.5, 2.0, 0.0, -0.7, 1.0];
        let mut buf = Int8Buffers::new(2, 4);
        m.round_activations(&mut x, 4, &mut buf);
        let s0 = 1.27f32 / 127.0;
        for v in &x[..4] {
            assert!(((v / s0).round() * s0 - v).abs() <= 1e-6, "{x:?}");
        }
        assert_eq!(x[1], -1.27);
        assert_eq!(x[4], 2.0);
        m.set_activation_int8(false);
        let mut y = vec![0.3f32, -1.27];
        m.round_activations(&mut y, 2, &mut buf);
        assert_eq!(y, [0.3, -1.27]);
    }

    /// RoPE at position 0 is the identity, and it keeps each rotated pair's norm at any position.
    #[test]
    fn rope_rotates_pairs() {
        let m = tiny(true);
        let (cos, sin) = m.rope_tables(3);
        let mut x: Vec<f32> = (0..3 * 16).map(|i| i as f32 * 0.1 - 1.0).collect();
        let before = x.clone();
        rope(&mut x, 4, 4, &cos, &sin);
        assert_eq!(&x[..16], &before[..16]);
        for (a, b) in x[16..].chunks_exact(2).zip(before[16..].chunks_exact(2)) {
            let (na, nb) = (a[0].hypot(a[1]), b[0].hypot(b[1]));
            assert!((na - nb).abs() < 1e-5, "{na} vs {nb}");
        }
        // Position 1, first pair of a head: angle 1 radian.
        let (c, s) = (1f32.cos(), 1f32.sin());
        let (a, b) = (before[16], before[17]);
        assert!((x[16] - (a * c - b * s)).abs() < 1e-6);
        assert!((x[17] - (a * s + b * c)).abs() < 1e-6);
    }

    #[test]
    fn wrong_shapes_and_ids_are_errors() {
        let cfg = tiny(true).config().clone();
        let err = Llama::load(cfg, |name| {
            Ok(Some(Tensor {
                name: name.into(),
                shape: vec![2, 2],
                data: vec![0.0; 4],
            }))
        })
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("token_embd.weight"), "{err:#}");
        assert!(tiny(true).forward(&[11], 0).is_err());
    }
}
