//! AWQ through the model, onto GGUF grids: per-input-channel scales searched on the calibration
//! activations (llm-awq's `auto_scale`), folded into the operation that produces the input, so the
//! written file is an ordinary GGUF that computes the same function before rounding.
//!
//! For each block, on the calibration samples flowing through the blocks already quantized:
//! 1. the inputs of the block's linear layers are accumulated as for GPTQ (`X^T X` per shared input,
//!    token-normalized unless `--plain-hessian`, and each column's mean |x| over the same rows; the
//!    plain column sums of squares for the importance weights);
//! 2. for each group of layers that read one input and whose producer can absorb a scale (q/k/v after
//!    attn_norm, gate/up after ffn_norm, ffn_down after ffn_up's rows), `s = mean|x|^r` (normalized,
//!    [`quant::algos::awq::scales_for_ratio`]) for `r = 0, 0.05, ..., 0.95`: every layer of the
//!    group becomes `Q(W diag(s)) diag(1/s)`, `Q` its planned GGUF type's quantizer (weighted by the
//!    importance of the scaled input, `sum x^2 / s^2`, in a weighted run), and the `r` with the
//!    smallest output error `sum_r d_r^T (X^T X) d_r` over the group wins (`r = 0` is the quantizer
//!    alone, so AWQ never does worse on the calibration tokens). attn_output is not scaled: with
//!    grouped-query attention its input channels are not attn_v's outputs one to one (AutoAWQ skips
//!    it for the same reason);
//! 3. the scales are folded: the norm's weight (or ffn_up's row) divided by `s`, the group's columns
//!    multiplied by it. The block's output before and after folding is compared on a calibration
//!    sample, unquantized: a difference above [`FOLD_TOLERANCE`] stops the run (the folded
//!    file would not compute the model's function);
//! 4. every linear layer is quantized to its planned type (the folded weights of a scaled group),
//!    the block's weights replaced by their quantized values, and the samples run through it again to
//!    give the next block its inputs.
//!
//! SmoothQuant (`opts.smooth_alpha`) replaces step 2's search by its closed form, `s_j =
//! max(max|x_j|^alpha / max|W_j|^(1 - alpha), 1e-5)` over the raw calibration inputs and the group's
//! weights (`quant::algos::smoothquant::migration_scales`); steps 3 and 4 are the same.
//!
//! A group is left unscaled when one of its layers (or the producer to fold into) is not planned as
//! a GGUF block type being requantized: a copy of the input's records (the Q4_1 ffn_down layers of a
//! weighted Q4_0 plan), F16/F32, or a rule that says `rtn`.
use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use quant::algos::awq::scales_for_ratio;
use quant::algos::smoothquant::{migration_scales, weight_absmax};
use quant::calib::Calibration;

use crate::arch::llama::{Linear, Llama, Tap};
use crate::calibrate::{
    collect_inputs, quadratic, rows_of, CalibOptions, Calibrated, Pass, SquareSums, TensorSummary,
};
use crate::imatrix::tap_width;
use crate::model::{dequantize, GgufFile};
use crate::plan::{Entry, Method, Plan};
use crate::quantize::encode;

/// Grid of the scale search: `r = i / SCALE_GRID`, `i = 0..SCALE_GRID` (llm-awq's 20 points).
const SCALE_GRID: usize = 20;

/// Largest relative difference `||y_folded - y|| / ||y - x||` of a block's output allowed by folding
/// (`x` the block's input: the difference is measured against what the block adds to it).
pub const FOLD_TOLERANCE: f64 = 1e-4;

/// A group of linear layers that read one input, and where its scales fold.
pub(crate) struct Group {
    tap: Tap,
    members: &'static [Linear],
    /// Divided by `s`: a norm (its weight) or a linear layer (its rows).
    into: Producer,
}

#[derive(Clone, Copy)]
enum Producer {
    AttnNorm,
    FfnNorm,
    UpRows,
}

const GROUPS: [Group; 3] = [
    Group {
        tap: Tap::AttnIn,
        members: &[Linear::Q, Linear::K, Linear::V],
        into: Producer::AttnNorm,
    },
    Group {
        tap: Tap::FfnIn,
        members: &[Linear::Gate, Linear::Up],
        into: Producer::FfnNorm,
    },
    Group {
        tap: Tap::FfnAct,
        members: &[Linear::Down],
        into: Producer::UpRows,
    },
];

/// Per input, beside its `X^T X`: the column sums of |x| over the rows as the Hessian weighs them,
/// and the plain column sums of squares.
struct TapStats {
    abs_sums: Vec<f64>,
    /// Each column's max |x| over the raw rows (SmoothQuant's activation statistic).
    abs_max: Vec<f32>,
    rows: u64,
    squares: SquareSums,
}

/// AWQ of every block linear layer of `g` planned as a GGUF block type (see the module's
/// documentation). The result holds the records of every layer requantized and the folded norms.
pub fn run(
    g: &GgufFile,
    plan: &Plan,
    opts: &CalibOptions,
    threads: usize,
    quiet: bool,
) -> Result<Calibrated> {
    let (tag, summary) = match opts.smooth_alpha {
        Some(_) => ("smoothquant", ("SmoothQuant", "alpha")),
        None => ("awq", ("AWQ", "r")),
    };
    let mut pass = Pass::start(g, opts, quiet, tag, summary)?;
    let errors_held_out = pass.out.errors_held_out;
    let n_layer = pass.model.config().n_layer;
    let entries: HashMap<&str, &Entry> =
        plan.entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let entry = |name: &str| -> Result<&Entry> {
        entries
            .get(name)
            .copied()
            .with_context(|| format!("{tag}: {name} is not in the plan"))
    };
    let (mut q, mut deq, mut dh) = (Vec::new(), Vec::new(), Vec::new());
    for l in 0..n_layer {
        // Whether a layer is requantized by this run (not a copy, not a rule's `rtn`, a block type).
        let requantized = |which: Linear| -> Result<bool> {
            let e = entry(&which.gguf_name(l))?;
            Ok(!e.is_copy()
                && e.target.ggml().is_some()
                && e.method.is_none_or(|m| m != Method::Rtn))
        };
        // 1. The inputs.
        pass.bar.set_message("collecting inputs");
        let mut hessians: HashMap<Tap, Calibration> = HashMap::new();
        let mut stats: HashMap<Tap, TapStats> = HashMap::new();
        for tap in Tap::ALL {
            let width = tap_width(&pass.model, tap);
            hessians.insert(tap, Calibration::new(width)?);
            stats.insert(
                tap,
                TapStats {
                    abs_sums: vec![0.0; width],
                    abs_max: vec![0.0; width],
                    rows: 0,
                    squares: SquareSums::new(width),
                },
            );
        }
        collect_inputs(
            &pass.model,
            l,
            &pass.xs,
            opts.token_normalized,
            &mut hessians,
            |tap, raw, weighed| {
                let s = stats.get_mut(&tap).expect("every tap has statistics");
                s.squares.add(raw);
                for row in raw.chunks_exact(s.abs_max.len()) {
                    for (m, &v) in s.abs_max.iter_mut().zip(row) {
                        *m = m.max(v.abs());
                    }
                }
                let weighed = weighed.expect("every tap has a Hessian");
                let width = s.abs_sums.len();
                for row in weighed.chunks_exact(width) {
                    for (a, &v) in s.abs_sums.iter_mut().zip(row) {
                        *a += f64::from(v.abs());
                    }
                }
                s.rows += (weighed.len() / width) as u64;
            },
        )
        .with_context(|| format!("{tag}: block {l}: calibration"))?;
        let mut held: HashMap<Tap, Calibration> = HashMap::new();
        if errors_held_out {
            for tap in Tap::ALL {
                held.insert(tap, Calibration::new(tap_width(&pass.model, tap))?);
            }
            collect_inputs(
                &pass.model,
                l,
                &pass.held_xs,
                opts.token_normalized,
                &mut held,
                |_, _, _| {},
            )
            .with_context(|| format!("{tag}: block {l}: held-out tokens"))?;
        }
        let importance = |tap: Tap, s: Option<&[f32]>| -> Option<Vec<f32>> {
            opts.weighted.then(|| {
                let sq = &stats[&tap].squares.sums;
                match s {
                    Some(s) => sq
                        .iter()
                        .zip(s)
                        .map(|(&v, &s)| (v / f64::from(s * s)) as f32)
                        .collect(),
                    None => sq.iter().map(|&v| v as f32).collect(),
                }
            })
        };

        // 2. The scale search, group by group, on the block's weights as they are.
        let original: Vec<Vec<f32>> = Linear::ALL
            .iter()
            .map(|&w| pass.model.linear_mut(l, w).to_vec())
            .collect();
        let weight =
            |which: Linear| &original[Linear::ALL.iter().position(|&w| w == which).unwrap()];
        let mut chosen: Vec<(usize, f64, Vec<f32>)> = Vec::new();
        for (gi, group) in GROUPS.iter().enumerate() {
            let mut eligible = true;
            for &m in group.members {
                eligible &= requantized(m)?;
            }
            if let Producer::UpRows = group.into {
                eligible &= requantized(Linear::Up)?;
            }
            if !eligible {
                continue;
            }
            let st = &stats[&group.tap];
            if let Some(alpha) = opts.smooth_alpha {
                // SmoothQuant: the published closed form from the activation and weight maxima.
                let ws: Vec<(&[f32], usize)> = group
                    .members
                    .iter()
                    .map(|&m| (weight(m).as_slice(), rows_of(&pass.model, m)))
                    .collect();
                let cols = tap_width(&pass.model, group.tap);
                let s = migration_scales(&st.abs_max, &weight_absmax(&ws, cols), alpha)
                    .with_context(|| format!("smoothquant: block {l}: {:?}", group.members))?;
                chosen.push((gi, alpha, s));
                continue;
            }
            pass.bar
                .set_message(format!("searching the scales of {:?}", group.members));
            let mean: Vec<f64> = st
                .abs_sums
                .iter()
                .map(|&a| a / st.rows.max(1) as f64)
                .collect();
            // The search ranks candidates: f32 products are exact enough for that, and twice as fast.
            let h: Vec<f32> = hessians[&group.tap]
                .hessian()?
                .iter()
                .map(|&v| v as f32)
                .collect();
            let cols = tap_width(&pass.model, group.tap);
            let mut best: Option<(f64, f64, Vec<f32>)> = None;
            for i in 0..SCALE_GRID {
                let r = i as f64 / SCALE_GRID as f64;
                let s = scales_for_ratio(&mean, r);
                let imp = importance(group.tap, Some(&s));
                let mut loss = 0.0;
                for &m in group.members {
                    let e = entry(&m.gguf_name(l))?;
                    let w = weight(m);
                    let scaled = scale_columns(w, &s);
                    encode(e, &scaled, imp.as_deref(), &mut q, threads)?;
                    deq.clear();
                    deq.resize(w.len(), 0.0);
                    dequantize(e.target, &q, &mut deq)?;
                    unscale_columns(&mut deq, &s);
                    for (d, &v) in deq.iter_mut().zip(w) {
                        *d = v - *d;
                    }
                    loss += quadratic_f32(&deq, &h, rows_of(&pass.model, m), cols, &mut dh);
                }
                if best.as_ref().is_none_or(|b| loss < b.0) {
                    best = Some((loss, r, s));
                }
            }
            let (_, r, s) = best.expect("the grid is not empty");
            chosen.push((gi, r, s));
        }

        // 3. Fold, and check that the block still computes the same function.
        let probe = pass.xs.first().cloned();
        let before = match &probe {
            Some(x) => {
                let mut y = x.clone();
                pass.model.block(l, &mut y, &mut |_, _| {})?;
                Some(y)
            }
            None => None,
        };
        for (gi, _, s) in &chosen {
            fold(&mut pass.model, l, &GROUPS[*gi], s);
        }
        if let (Some(x), Some(y)) = (probe, before) {
            let rel = fold_difference(&pass.model, l, &x, &y)?;
            if rel.is_nan() || rel > FOLD_TOLERANCE {
                bail!(
                    "{tag}: block {l}: folding the scales changed the block's output by {rel:.3e} \
                     (relative to what the block adds; at most {FOLD_TOLERANCE:e} allowed): the \
                     file would not compute the model's function"
                );
            }
        }

        // 4. Quantize every requantized linear layer (the folded weights), and write the norms.
        let scales_of = |tap: Tap| {
            chosen
                .iter()
                .find(|(gi, _, _)| GROUPS[*gi].tap == tap)
                .map(|(_, r, s)| (*r, s.as_slice()))
        };
        for which in Linear::ALL {
            if !requantized(which)? {
                continue;
            }
            pass.bar.set_message(which.gguf_name(l));
            let t = Instant::now();
            let e = entry(&which.gguf_name(l))?;
            let s = scales_of(which.input());
            let imp = importance(which.input(), s.map(|(_, s)| s));
            let w = pass.model.linear_mut(l, which).to_vec();
            encode(e, &w, imp.as_deref(), &mut q, threads)?;
            deq.clear();
            deq.resize(w.len(), 0.0);
            dequantize(e.target, &q, &mut deq)?;
            pass.model.linear_mut(l, which).copy_from_slice(&deq);
            pass.out.data.insert(e.name.clone(), q.clone());
            // The summary: both results in the original input basis, on the error tokens.
            let rows = rows_of(&pass.model, which);
            let cols = w.len() / rows;
            let h = match held.get(&which.input()) {
                Some(c) => c.hessian()?,
                None => hessians[&which.input()].hessian()?,
            };
            let w0 = weight(which);
            let mut effective = deq.clone();
            if let Some((_, s)) = s {
                unscale_columns(&mut effective, s);
            }
            if which == Linear::Up {
                if let Some((_, s)) = scales_of(Tap::FfnAct) {
                    // ffn_up's rows carry ffn_down's 1/s: back to the original outputs.
                    for (row, &sj) in effective.chunks_exact_mut(cols).zip(s) {
                        row.iter_mut().for_each(|v| *v *= sj);
                    }
                }
            }
            let w_hw = quadratic(w0, None, &h, rows, cols);
            let mut rtn = Vec::new();
            let imp0 = importance(which.input(), None);
            encode(e, w0, imp0.as_deref(), &mut rtn, threads)?;
            let mut rtn_deq = vec![0f32; w0.len()];
            dequantize(e.target, &rtn, &mut rtn_deq)?;
            pass.out.summary.push(TensorSummary {
                name: e.name.clone(),
                target: e.target.to_string(),
                err_rtn: (quadratic(w0, Some(&rtn_deq), &h, rows, cols) / w_hw).sqrt(),
                err: (quadratic(w0, Some(&effective), &h, rows, cols) / w_hw).sqrt(),
                detail: s.map_or("-".to_string(), |(r, _)| format!("{r:.2}")),
                secs: t.elapsed().as_secs_f64(),
            });
        }
        for (tap, name, norm) in [
            (
                Tap::AttnIn,
                "attn_norm",
                pass.model.attn_norm_mut(l).to_vec(),
            ),
            (Tap::FfnIn, "ffn_norm", pass.model.ffn_norm_mut(l).to_vec()),
        ] {
            if scales_of(tap).is_some() {
                let e = entry(&format!("blk.{l}.{name}.weight"))?;
                encode(e, &norm, None, &mut q, threads)?;
                pass.out.data.insert(e.name.clone(), q.clone());
            }
        }
        // 5. The next block's inputs, through this block quantized.
        pass.advance(l)?;
    }
    Ok(pass.finish("tensors"))
}

/// The group of layers that read `tap`; attn_output's input has none (its scales would fold
/// nowhere: see the module's documentation).
pub(crate) fn group(tap: Tap) -> &'static Group {
    GROUPS
        .iter()
        .find(|g| g.tap == tap)
        .expect("attn_output's input is not scaled")
}

/// Folds the scales `s` of `group` into block `l`: the group's columns multiplied by `s`, its
/// producer (a norm's weight, or ffn_up's rows) divided by it. Unquantized, the block then computes
/// the same function up to f32 rounding.
pub(crate) fn fold(model: &mut Llama, l: usize, group: &Group, s: &[f32]) {
    for &m in group.members {
        let w = model.linear_mut(l, m);
        let folded = scale_columns(w, s);
        w.copy_from_slice(&folded);
    }
    match group.into {
        Producer::AttnNorm => divide(model.attn_norm_mut(l), s),
        Producer::FfnNorm => divide(model.ffn_norm_mut(l), s),
        Producer::UpRows => {
            let up = model.linear_mut(l, Linear::Up);
            let cols = up.len() / s.len();
            for (row, &sj) in up.chunks_exact_mut(cols).zip(s) {
                row.iter_mut().for_each(|v| *v /= sj);
            }
        }
    }
}

/// `||y' - y|| / ||y - x||`: how far block `l`'s output on `x` (`y'`, run now) is from `y` (its
/// output before folding), against what the block adds to the residual stream, which the stream's
/// size would otherwise hide.
pub(crate) fn fold_difference(model: &Llama, l: usize, x: &[f32], y: &[f32]) -> Result<f64> {
    let mut y_folded = x.to_vec();
    model.block(l, &mut y_folded, &mut |_, _| {})?;
    let (mut num, mut den) = (0f64, 0f64);
    for ((&a, &b), &x0) in y_folded.iter().zip(y).zip(x) {
        num += (f64::from(a) - f64::from(b)).powi(2);
        den += (f64::from(b) - f64::from(x0)).powi(2);
    }
    Ok((num / den.max(f64::MIN_POSITIVE)).sqrt())
}

/// `sum_r d_r^T H d_r` for `d` (`rows x cols`) and `H` (`cols x cols`), in f32 products summed in
/// f64; `dh` is scratch.
fn quadratic_f32(d: &[f32], h: &[f32], rows: usize, cols: usize, dh: &mut Vec<f32>) -> f64 {
    dh.clear();
    dh.resize(rows * cols, 0.0);
    matmul(
        MatMut::from_row_major_slice_mut(dh, rows, cols),
        Accum::Replace,
        MatRef::from_row_major_slice(d, rows, cols),
        MatRef::from_row_major_slice(h, cols, cols),
        1.0f32,
        Par::rayon(0),
    );
    dh.iter().zip(d).map(|(&a, &b)| f64::from(a * b)).sum()
}

/// `w` (rows of `s.len()` columns) with column `j` multiplied by `s[j]`.
fn scale_columns(w: &[f32], s: &[f32]) -> Vec<f32> {
    let mut out = w.to_vec();
    for row in out.chunks_exact_mut(s.len()) {
        for (v, &sj) in row.iter_mut().zip(s) {
            *v *= sj;
        }
    }
    out
}

/// Divides column `j` of `w` (rows of `s.len()`) by `s[j]`.
fn unscale_columns(w: &mut [f32], s: &[f32]) {
    for row in w.chunks_exact_mut(s.len()) {
        for (v, &sj) in row.iter_mut().zip(s) {
            *v /= sj;
        }
    }
}

fn divide(v: &mut [f32], s: &[f32]) {
    for (a, &sj) in v.iter_mut().zip(s) {
        *a /= sj;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::llama::tests::tiny;

    /// Scales over a wide range, as AWQ's search gives them.
    fn scales(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|j| {
                2f32.powf(
                    (((j as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 250.0 - 2.0,
                )
            })
            .collect()
    }

    #[test]
    fn folding_keeps_the_blocks_function_and_a_wrong_fold_is_caught() {
        let mut model = tiny(true);
        let x = model.embed(&[0, 3, 7, 2, 9, 1]).unwrap();
        let mut y = x.clone();
        model.block(1, &mut y, &mut |_, _| {}).unwrap();
        for (i, g) in GROUPS.iter().enumerate() {
            let s = scales(tap_width(&model, g.tap), i as u32);
            fold(&mut model, 1, g, &s);
        }
        let rel = fold_difference(&model, 1, &x, &y).unwrap();
        assert!(rel < 1e-5, "folded: {rel:e}");
        // The scales of q/k/v without their norm's division: the block computes something else.
        let s = scales(tap_width(&model, Tap::AttnIn), 7);
        for m in [Linear::Q, Linear::K, Linear::V] {
            let w = model.linear_mut(1, m);
            let scaled = scale_columns(w, &s);
            w.copy_from_slice(&scaled);
        }
        let rel = fold_difference(&model, 1, &x, &y).unwrap();
        assert!(rel > FOLD_TOLERANCE * 100.0, "unfolded: {rel:e}");
    }

    #[test]
    fn the_f32_search_loss_agrees_with_the_f64_one() {
        let (rows, cols) = (5, 7);
        let w: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.731).sin()).collect();
        let q: Vec<f32> = w.iter().map(|v| (v * 4.0).round() / 4.0).collect();
        let x: Vec<f32> = (0..11 * cols).map(|i| (i as f32 * 0.377).cos()).collect();
        let mut h = vec![0f64; cols * cols];
        for row in x.chunks_exact(cols) {
            for i in 0..cols {
                for j in 0..cols {
                    h[i * cols + j] += f64::from(row[i]) * f64::from(row[j]);
                }
            }
        }
        let want = quadratic(&w, Some(&q), &h, rows, cols);
        let d: Vec<f32> = w.iter().zip(&q).map(|(a, b)| a - b).collect();
        let h32: Vec<f32> = h.iter().map(|&v| v as f32).collect();
        let got = quadratic_f32(&d, &h32, rows, cols, &mut Vec::new());
        assert!(
            want > 0.0 && ((got - want) / want).abs() < 1e-5,
            "{got} vs {want}"
        );
    }

    #[test]
    fn scaling_columns_and_back_is_the_identity_up_to_rounding() {
        let w: Vec<f32> = (0..12).map(|i| i as f32 * 0.37 - 2.0).collect();
        let s = [0.5f32, 2.0, 3.0];
        let mut x = scale_columns(&w, &s);
        assert_eq!(x[1], w[1] * 2.0);
        assert_eq!(x[5], w[5] * 3.0);
        unscale_columns(&mut x, &s);
        for (a, b) in x.iter().zip(&w) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0));
        }
    }
}
