//! GPTQ and AWQ through the model for the packed checkpoints (`export-gptq --calib`,
//! `export-awq --calib`): the library's native 4-bit asymmetric group quantizers, calibrated block by
//! block on the samples flowing through the blocks already quantized ([`Pass`], as
//! `quantize --method gptq|awq` runs them for GGUF grids).
//!
//! GPTQ: each block's four linear-layer inputs are accumulated into one `Calibration` each (q/k/v
//! share the normed residual, gate/up the other; token-normalized as the GGUF path does unless
//! `--plain-hessian`), and every linear layer goes through
//! `quant::algos::gptq::quantize_calibrated` at 4 bits with groups of `group_size` (GPTQ's own grid:
//! each group's scale and zero point from its current weights, damping 0.01, raised when the Hessian
//! needs it; the summary shows the damping used). A Hessian that does not factorize even with the largest
//! damping leaves that layer round-to-nearest, with a warning.
//!
//! AWQ (AutoAWQ's way): `quant::algos::awq::quantize_group` searches one per-input-channel scale
//! `s` per group of layers that read one input and whose producer can absorb it (ffn_down after
//! ffn_up's rows, gate/up after ffn_norm, q/k/v after attn_norm), then clips and quantizes
//! `W diag(s)`; the producer is divided by `s` (ffn_up's rows before gate/up are searched, so ffn_up
//! is quantized folded). attn_output is rounded to nearest: with grouped-query attention its inputs
//! are not attn_v's outputs one to one (AutoAWQ skips it too). The checkpoint holds the folded
//! layers and norms, so it computes the original function up to quantization; the folding is checked
//! on a calibration sample before any rounding (at most [`FOLD_TOLERANCE`] of what the block adds).
//!
//! Scales are rounded to f16 before the block's weights are replaced by their dequantized values,
//! so the next blocks are calibrated through exactly what the checkpoint holds. The summary gives
//! each layer's relative output error on the held-out tokens, of round-to-nearest INT4 on the same
//! groups and of the method, both in the original input basis.
use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use quant::algos::awq::{self as awq_algo, AwqMatrix, AwqParams};
use quant::algos::gptq::{self as gptq_algo, GptqParams};
use quant::algos::QuantOptions;
use quant::calib::Calibration;
use quant::method::QuantMethod;
use quant::weight::{self, QuantizedWeight};
use quant::QuantError;

use crate::arch::llama::{Linear, Llama, Tap};
use crate::awq::{fold, fold_difference, group, FOLD_TOLERANCE};
use crate::calibrate::{
    collect_inputs, quadratic, rows_of, CalibOptions, Calibrated, Pass, TensorSummary,
};
use crate::imatrix::tap_width;
use crate::model::GgufFile;

/// Calibration tokens of the AWQ scale and clip searches at most (an even stride over the
/// calibration tokens; the channel means use every token).
pub const AWQ_SAMPLE_TOKENS: usize = 512;

/// What a calibrated run gives the checkpoint writer.
pub struct Prepared {
    /// GGUF name of each block linear layer -> its codes, rows in GGUF order, f16-exact scales.
    pub weights: HashMap<String, QuantizedWeight>,
    /// GGUF name -> replaced values (AWQ's folded norms).
    pub replaced: HashMap<String, Vec<f32>>,
    /// The per-layer summary.
    pub summary: Calibrated,
}

fn round_scales_f16(q: &mut QuantizedWeight) {
    for s in q.scales.iter_mut() {
        *s = half::f16::from_f32(*s).to_f32();
    }
}

/// Round-to-nearest INT4 with zero points on groups of `group_size`, scales f16-exact.
fn rtn(w: &[f32], rows: usize, cols: usize, group_size: usize) -> Result<QuantizedWeight> {
    let mut q = weight::quantize(
        &QuantMethod::Int4Asymmetric { group_size },
        &QuantOptions::default(),
        w,
        rows,
        cols,
        None,
    )?;
    round_scales_f16(&mut q);
    Ok(q)
}

/// The Hessians of the four inputs of block `l` on `xs`.
fn hessians(
    model: &Llama,
    l: usize,
    xs: &[Vec<f32>],
    normalized: bool,
) -> Result<HashMap<Tap, Calibration>> {
    let mut h = HashMap::new();
    for tap in Tap::ALL {
        h.insert(tap, Calibration::new(tap_width(model, tap))?);
    }
    collect_inputs(model, l, xs, normalized, &mut h, |_, _, _| {})?;
    Ok(h)
}

fn relative_error(w: &[f32], q: &[f32], h: &[f64], rows: usize, cols: usize) -> f64 {
    (quadratic(w, Some(q), h, rows, cols) / quadratic(w, None, h, rows, cols)).sqrt()
}

/// GPTQ 4-bit with groups of `group_size` of every block linear layer of `g`.
pub fn gptq(g: &GgufFile, opts: &CalibOptions, group_size: usize, quiet: bool) -> Result<Prepared> {
    let mut pass = Pass::start(g, opts, quiet, "gptq", ("GPTQ", "damp"))?;
    let n_layer = pass.model.config().n_layer;
    let method = QuantMethod::Gptq {
        group_size,
        bits: 4,
    };
    let options = QuantOptions {
        threads: 0,
        ..QuantOptions::default()
    };
    // No act-order: the groups are consecutive columns, so the codes need no g_idx.
    let params = GptqParams::new(4, group_size, &options);
    let mut weights = HashMap::new();
    for l in 0..n_layer {
        pass.bar.set_message("collecting inputs");
        let calibs = hessians(&pass.model, l, &pass.xs, opts.token_normalized)
            .with_context(|| format!("gptq: block {l}: calibration"))?;
        let held = if pass.out.errors_held_out {
            Some(
                hessians(&pass.model, l, &pass.held_xs, opts.token_normalized)
                    .with_context(|| format!("gptq: block {l}: held-out tokens"))?,
            )
        } else {
            None
        };
        for which in Linear::ALL {
            let name = which.gguf_name(l);
            pass.bar.set_message(name.clone());
            let t = Instant::now();
            let rows = rows_of(&pass.model, which);
            let w = pass.model.linear_mut(l, which).to_vec();
            let cols = w.len() / rows;
            let calib = &calibs[&which.input()];
            let base = rtn(&w, rows, cols, group_size).with_context(|| format!("gptq: {name}"))?;
            let (q, detail) = match gptq_algo::quantize_calibrated(&w, rows, cols, calib, &params) {
                Ok(r) => (
                    from_codes(&method, rows, cols, &r.codes, &r.scales, &r.zeros)
                        .with_context(|| format!("gptq: {name}"))?,
                    format!("{}", r.damp_used),
                ),
                Err(QuantError::Numerical(why)) => {
                    eprintln!(
                        "warning: gptq: {name}: {why}; this layer is written round-to-nearest \
                         instead"
                    );
                    (base.clone(), "RTN".to_string())
                }
                Err(e) => return Err(e).with_context(|| format!("gptq: {name}")),
            };
            let secs = t.elapsed().as_secs_f64();
            let deq = q.dequantize_to_vec()?;
            let h = match &held {
                Some(c) => c[&which.input()].hessian()?,
                None => calib.hessian()?,
            };
            pass.out.summary.push(TensorSummary {
                name: name.clone(),
                target: format!("INT4 g{group_size}"),
                err_rtn: relative_error(&w, &base.dequantize_to_vec()?, &h, rows, cols),
                err: relative_error(&w, &deq, &h, rows, cols),
                detail,
                secs,
            });
            pass.model.linear_mut(l, which).copy_from_slice(&deq);
            weights.insert(name, q);
        }
        pass.advance(l)?;
    }
    Ok(Prepared {
        weights,
        replaced: HashMap::new(),
        summary: pass.finish("layers"),
    })
}

/// Per input: the column sums of |x| over every calibration token and a strided sample of tokens.
struct TapStats {
    abs_sums: Vec<f64>,
    tokens: u64,
    sample: Vec<f32>,
}

/// Unpacked 4-bit codes (`rows x cols`), scales and zero points as a quantized weight of `method`,
/// scales f16-exact.
fn from_codes(
    method: &QuantMethod,
    rows: usize,
    cols: usize,
    codes: &[u8],
    scales: &[f32],
    zeros: &[f32],
) -> Result<QuantizedWeight> {
    let mut q = QuantizedWeight::alloc(method, rows, cols)?;
    let rb = q.row_bytes();
    for (row, codes) in q.data.chunks_exact_mut(rb).zip(codes.chunks_exact(cols)) {
        row.fill(0);
        for (j, &c) in codes.iter().enumerate() {
            row[j / 2] |= (c & 15) << (4 * (j % 2));
        }
    }
    q.scales.copy_from_slice(scales);
    q.zero_points = Some(zeros.to_vec());
    round_scales_f16(&mut q);
    q.check()?;
    Ok(q)
}

/// A library AWQ matrix (codes of `W diag(s)`) as a quantized weight, scales f16-exact.
fn awq_weight(m: &AwqMatrix, cols: usize, group_size: usize) -> Result<QuantizedWeight> {
    let method = QuantMethod::Int4Asymmetric { group_size };
    from_codes(&method, m.rows, cols, &m.codes, &m.scales, &m.zeros)
}

/// AWQ 4-bit with groups of `group_size` of every block linear layer of `g`, the scales folded
/// into the norms and ffn_up (see the module's documentation).
pub fn awq(g: &GgufFile, opts: &CalibOptions, group_size: usize, quiet: bool) -> Result<Prepared> {
    let mut pass = Pass::start(g, opts, quiet, "awq", ("AWQ", "r"))?;
    let n_layer = pass.model.config().n_layer;
    let params = AwqParams {
        bits: 4,
        group_size,
        symmetric: false,
        clip: true,
        threads: 0,
    };
    let total: usize = pass.xs.iter().map(|x| x.len()).sum::<usize>() / pass.model.config().n_embd;
    let stride = total.div_ceil(AWQ_SAMPLE_TOKENS).max(1);
    let (mut weights, mut replaced) = (HashMap::new(), HashMap::new());
    for l in 0..n_layer {
        pass.bar.set_message("collecting inputs");
        let mut stats: HashMap<Tap, TapStats> = Tap::ALL
            .iter()
            .map(|&t| {
                let w = tap_width(&pass.model, t);
                (
                    t,
                    TapStats {
                        abs_sums: vec![0.0; w],
                        tokens: 0,
                        sample: Vec::new(),
                    },
                )
            })
            .collect();
        let mut none: HashMap<Tap, Calibration> = HashMap::new();
        collect_inputs(&pass.model, l, &pass.xs, false, &mut none, |tap, raw, _| {
            let s = stats.get_mut(&tap).expect("every tap has statistics");
            let width = s.abs_sums.len();
            for row in raw.chunks_exact(width) {
                for (a, &v) in s.abs_sums.iter_mut().zip(row) {
                    *a += f64::from(v.abs());
                }
                if s.tokens % stride as u64 == 0 {
                    s.sample.extend_from_slice(row);
                }
                s.tokens += 1;
            }
        })
        .with_context(|| format!("awq: block {l}: calibration"))?;
        let h_err = hessians(
            &pass.model,
            l,
            if pass.out.errors_held_out {
                &pass.held_xs
            } else {
                &pass.xs
            },
            opts.token_normalized,
        )
        .with_context(|| format!("awq: block {l}: error tokens"))?;
        let original: Vec<Vec<f32>> = Linear::ALL
            .iter()
            .map(|&w| pass.model.linear_mut(l, w).to_vec())
            .collect();
        let orig = |which: Linear| &original[Linear::ALL.iter().position(|&w| w == which).unwrap()];
        let probe = pass.xs.first().cloned();
        let before = match &probe {
            Some(x) => {
                let mut y = x.clone();
                pass.model.block(l, &mut y, &mut |_, _| {})?;
                Some(y)
            }
            None => None,
        };

        // The searches, each on the weights its producer's folding leaves: ffn_down first, whose
        // 1/s divides ffn_up's rows before gate/up are searched.
        let search = |tap: Tap, ws: &[(&[f32], usize)]| -> Result<awq_algo::AwqResult> {
            let st = &stats[&tap];
            let mean: Vec<f64> = st
                .abs_sums
                .iter()
                .map(|&a| a / st.tokens.max(1) as f64)
                .collect();
            let cols = st.abs_sums.len();
            awq_algo::quantize_group(ws, cols, &mean, &st.sample, st.sample.len() / cols, &params)
                .with_context(|| format!("awq: block {l}: {tap:?}"))
        };
        let c = pass.model.config().clone();
        let kv = c.n_head_kv * c.head_dim();
        pass.bar.set_message("searching ffn_down");
        let down = search(Tap::FfnAct, &[(orig(Linear::Down), c.n_embd)])?;
        fold(&mut pass.model, l, group(Tap::FfnAct), &down.s);
        let up = pass.model.linear_mut(l, Linear::Up).to_vec();
        pass.bar.set_message("searching ffn_gate, ffn_up");
        let ffn = search(Tap::FfnIn, &[(orig(Linear::Gate), c.n_ff), (&up, c.n_ff)])?;
        pass.bar.set_message("searching attn_q, attn_k, attn_v");
        let attn = search(
            Tap::AttnIn,
            &[
                (orig(Linear::Q), c.n_embd),
                (orig(Linear::K), kv),
                (orig(Linear::V), kv),
            ],
        )?;

        // Fold the other scales in f32 (ffn_down's already are) and check the block's function
        // before any rounding.
        fold(&mut pass.model, l, group(Tap::FfnIn), &ffn.s);
        fold(&mut pass.model, l, group(Tap::AttnIn), &attn.s);
        if let (Some(x), Some(y)) = (probe, before) {
            let rel = fold_difference(&pass.model, l, &x, &y)?;
            if rel.is_nan() || rel > FOLD_TOLERANCE {
                bail!(
                    "awq: block {l}: folding the scales changed the block's output by {rel:.3e} \
                     (relative to what the block adds; at most {FOLD_TOLERANCE:e} allowed): the \
                     checkpoint would not compute the model's function"
                );
            }
        }

        // The codes, and the block's weights replaced by what the checkpoint holds.
        let results = [
            (Linear::Q, &attn, 0, attn.ratio),
            (Linear::K, &attn, 1, attn.ratio),
            (Linear::V, &attn, 2, attn.ratio),
            (Linear::Gate, &ffn, 0, ffn.ratio),
            (Linear::Up, &ffn, 1, ffn.ratio),
            (Linear::Down, &down, 0, down.ratio),
        ];
        for which in Linear::ALL {
            let name = which.gguf_name(l);
            let t = Instant::now();
            let rows = rows_of(&pass.model, which);
            let w0 = orig(which);
            let cols = w0.len() / rows;
            let found = results.iter().find(|r| r.0 == which);
            let (q, detail) = match found {
                Some((_, res, m, r)) => (
                    awq_weight(&res.matrices[*m], cols, group_size)
                        .with_context(|| format!("awq: {name}"))?,
                    format!("{r:.2}"),
                ),
                None => (
                    rtn(w0, rows, cols, group_size).with_context(|| format!("awq: {name}"))?,
                    "-".to_string(),
                ),
            };
            let deq = q.dequantize_to_vec()?;
            // The effective weight in the original basis: columns divided by s, and ffn_up's rows
            // multiplied back by ffn_down's s.
            let mut effective = deq.clone();
            if let Some((_, res, _, _)) = found {
                for row in effective.chunks_exact_mut(cols) {
                    row.iter_mut().zip(&res.s).for_each(|(v, s)| *v /= s);
                }
            }
            if which == Linear::Up {
                for (row, &sj) in effective.chunks_exact_mut(cols).zip(&down.s) {
                    row.iter_mut().for_each(|v| *v *= sj);
                }
            }
            let h = h_err[&which.input()].hessian()?;
            let base = rtn(w0, rows, cols, group_size)?.dequantize_to_vec()?;
            pass.out.summary.push(TensorSummary {
                name: name.clone(),
                target: format!("INT4 g{group_size}"),
                err_rtn: relative_error(w0, &base, &h, rows, cols),
                err: relative_error(w0, &effective, &h, rows, cols),
                detail,
                secs: t.elapsed().as_secs_f64(),
            });
            pass.model.linear_mut(l, which).copy_from_slice(&deq);
            weights.insert(name, q);
        }
        replaced.insert(
            format!("blk.{l}.attn_norm.weight"),
            pass.model.attn_norm_mut(l).to_vec(),
        );
        replaced.insert(
            format!("blk.{l}.ffn_norm.weight"),
            pass.model.ffn_norm_mut(l).to_vec(),
        );
        pass.advance(l)?;
    }
    Ok(Prepared {
        weights,
        replaced,
        summary: pass.finish("layers"),
    })
}
