//! GPTQ through the model, onto GGUF grids: calibration text -> tokens -> the Llama forward pass block
//! by block, each block's linear layers quantized by GPTQ from the inputs that reach it through the
//! blocks already quantized (GPTQModel's sequential mode).
//!
//! For each block:
//! 1. the calibration samples run through the block with its original weights, and the four inputs of
//!    its linear layers are accumulated, one `quant::calib::Calibration` per shared input (q/k/v share
//!    the normed residual, gate/up the other normed residual; attn_output and ffn_down each their own),
//!    with each column's sum of squares beside it (the statistic llama-imatrix collects);
//! 2. each linear weight planned as a GGUF block type (every one the library has: Q4_0, Q4_1, Q5_0,
//!    Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; in a mix, each tensor's own type) goes through
//!    `quant::algos::gptq::quantize_ggml_calibrated`: when GPTQ reaches a record, the
//!    record's scales are fitted to its current weights by ggml's weighted quantizer of the type, with
//!    the column sums of squares as importance weights (or by the type's rule alone, `weighted` off),
//!    and the codes are GPTQ's on that grid; one planned as F16, BF16 or F32 is rounded the ordinary
//!    way; copies (the planned type is the stored one) stay as they are;
//! 3. the block's weights are replaced by their quantized values and the samples run through it again:
//!    what comes out is the next block's input.
//!
//! The Hessian is token-normalized by default: each token's activation row is scaled to a root mean
//! square of 1 before it enters `X^T X`. A small Llama has a few tokens (BOS, the attention sinks)
//! whose activations are hundreds of times larger than the others'; in the plain `X^T X` they are
//! most of the layer's output error, and GPTQ then trades the other tokens' error for theirs. With
//! every token weighing alike, SmolLM2's Q4_0 GPTQ file scores 29.09 on held-out text against 31.10
//! with the plain Hessian (llama-perplexity, 40 chunks; see cli/README.md). The importance weights
//! stay the plain sums of squares, as llama-imatrix's.
//!
//! The result is the GGUF records of every GPTQ tensor, which the writer uses in place of its own
//! encoding, and a summary per tensor: the relative output error `||X (W - Q)^T|| / ||X W^T||` on
//! held-out tokens (the `held_out` samples cut from the text after the calibration samples, which
//! flow through the quantized blocks as the calibration samples do but never enter a Hessian or an
//! importance weight; each token weighed as GPTQ's objective weighs it: token-normalized by
//! default), of GPTQ and of ggml's quantizer of the same type with the same importance weights,
//! computed from the held-out tokens' `X^T X`. When the text has no tokens left for them, the
//! errors are on the calibration tokens, and the run says so.
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use indicatif::{ProgressBar, ProgressStyle};
use quant::algos::gptq::{self, GptqParams};
use quant::algos::QuantOptions;
use quant::calib::Calibration;
use quant::kernels::ggml::ggml_quantize_weighted;
use quant::kernels::source::Src;
use quant::QuantError;

use crate::arch::llama::{Linear, Llama, Tap};
use crate::eval;
use crate::imatrix::tap_width;
use crate::model::{dequantize, GgufFile};
use crate::plan::Method;
use crate::plan::Plan;
use crate::quantize::encode;

/// What to calibrate on.
#[derive(Clone, Debug)]
pub struct CalibOptions {
    /// The calibration text (UTF-8).
    pub text: PathBuf,
    /// Samples of `seq_len` tokens, taken one after the other from the start of the text.
    pub samples: usize,
    pub seq_len: usize,
    /// Samples cut after the calibration samples, on which the summary's errors are measured (as
    /// many as the text holds, up to this many).
    pub held_out: usize,
    /// Each record by a search over shrunk ranges, not the type's quantizer alone.
    pub mse_search: bool,
    /// Each record's scales fitted by the type's weighted quantizer (ggml's importance-matrix path)
    /// with the calibration's own importance weights (the mean square of each input column), not by
    /// the type's rule alone.
    pub weighted: bool,
    /// Whether a block linear layer no rule gives a method goes through GPTQ (`--method gptq`); a
    /// rule's `gptq` or `rtn` decides for its tensors.
    pub default_gptq: bool,
    /// Per-input-channel scales folded into the producers instead of GPTQ for the block linear
    /// layers (`--method awq` or `smoothquant`; a rule's `rtn` keeps its tensors, and their group,
    /// unscaled).
    pub awq: bool,
    /// With `awq`: SmoothQuant's closed-form scales with this migration strength instead of AWQ's
    /// search (`--method smoothquant --alpha A`).
    pub smooth_alpha: Option<f64>,
    /// GPTQ's Hessian from the tokens' activations each scaled to a root mean square of 1, so that
    /// every token weighs alike in the layer's output error (see the module's documentation).
    pub token_normalized: bool,
}

/// One tensor's calibrated quantization, as the summary shows it.
#[derive(Clone, Debug)]
pub struct TensorSummary {
    pub name: String,
    pub target: String,
    /// Relative output error (on the held-out tokens, or the calibration tokens when there are none):
    /// ggml's quantizer of the type (with the same importance weights), then the method's.
    pub err_rtn: f64,
    pub err: f64,
    /// The method's choice for the tensor: GPTQ's damping fraction that factorized (`RTN` when none
    /// did and the tensor was rounded by ggml's quantizer instead), AWQ's scale exponent `r`.
    pub detail: String,
    /// Seconds to quantize the tensor (both ways).
    pub secs: f64,
}

/// The tensors a calibrated method wrote.
pub struct Calibrated {
    /// GGUF tensor name -> the records of its planned type.
    pub data: HashMap<String, Vec<u8>>,
    pub summary: Vec<TensorSummary>,
    /// Tokens the summary's errors are measured on, and whether they are held out (otherwise the
    /// calibration tokens).
    pub error_tokens: usize,
    pub errors_held_out: bool,
    /// The method's name and the title of the summary's `detail` column.
    pub method: &'static str,
    pub detail: &'static str,
}

/// The samples of a calibration: those calibrated on, and those held out to measure the result.
pub struct Samples {
    pub calib: Vec<Vec<u32>>,
    pub held_out: Vec<Vec<u32>>,
}

/// The calibration samples: `samples` runs of `seq_len` tokens cut one after the other from the text's
/// tokens, each starting with BOS when the model adds one (as llama-imatrix cuts its chunks).
pub fn samples(tokens: &[u32], opts: &CalibOptions, bos: Option<u32>) -> Result<Samples> {
    if opts.samples == 0 || opts.seq_len < 2 {
        bail!(
            "calibration: {} samples of {} tokens: need at least one sample of at least 2 tokens",
            opts.samples,
            opts.seq_len
        );
    }
    let need = opts.samples * opts.seq_len;
    if tokens.len() < need {
        bail!(
            "calibration: {} is {} tokens; {} samples of {} need {need}",
            opts.text.display(),
            tokens.len(),
            opts.samples,
            opts.seq_len
        );
    }
    let cut = |t: &[u32]| -> Vec<Vec<u32>> {
        t.chunks_exact(opts.seq_len)
            .map(|c| {
                let mut c = c.to_vec();
                if let Some(b) = bos {
                    c[0] = b;
                }
                c
            })
            .collect()
    };
    let held_out_end = tokens
        .len()
        .min(need.saturating_add(opts.held_out.saturating_mul(opts.seq_len)));
    let held_out = cut(&tokens[need..held_out_end]);
    Ok(Samples {
        calib: cut(&tokens[..need]),
        held_out,
    })
}

/// The calibration samples of `opts` for the model `g`: the text tokenized by the model's own
/// tokenizer and cut by [`samples`] (BOS first when the model adds one).
pub fn model_samples(g: &GgufFile, opts: &CalibOptions) -> Result<Samples> {
    let tokenizer = eval::tokenizer(g)?;
    let text = std::fs::read_to_string(&opts.text)
        .with_context(|| format!("reading the calibration text {}", opts.text.display()))?;
    let tokens = tokenizer.encode(&text)?;
    let bos = if tokenizer.adds_bos() {
        tokenizer.bos()
    } else {
        None
    };
    samples(&tokens, opts, bos)
}

/// A calibrated method's walk through the model, block by block: the model (each block replaced by
/// its quantized values once the method is done with it), the calibration and held-out samples'
/// hidden states entering the next block, the summary being filled, and the progress bar.
pub struct Pass {
    pub t0: Instant,
    pub model: Llama,
    /// The calibration samples' and the held-out samples' hidden states, entering the next block.
    pub xs: Vec<Vec<f32>>,
    pub held_xs: Vec<Vec<f32>>,
    pub out: Calibrated,
    /// One step per block; its message says what the method is doing in the block.
    pub bar: ProgressBar,
    /// Prefixes the messages ("gptq", "awq").
    tag: &'static str,
    quiet: bool,
}

impl Pass {
    /// Reads the samples and the model, says what it calibrates on (a warning when the text holds
    /// fewer held-out samples than asked for), and embeds the samples. `tag` prefixes the messages
    /// ("gptq", "awq"); `method` and `detail` title the summary.
    pub fn start(
        g: &GgufFile,
        opts: &CalibOptions,
        quiet: bool,
        tag: &'static str,
        (method, detail): (&'static str, &'static str),
    ) -> Result<Pass> {
        let t0 = Instant::now();
        let Samples {
            calib: samples,
            held_out,
        } = model_samples(g, opts)?;
        let model = eval::llama(g)?;
        if !quiet {
            eprintln!(
                "{tag}: {} samples of {} tokens from {} ({} held out); weights read in {:.1} s",
                samples.len(),
                opts.seq_len,
                opts.text.display(),
                held_out.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        if let Some(w) = held_out_shortfall(tag, opts, held_out.len()) {
            eprintln!("{w}");
        }
        let embed = |s: &[Vec<u32>]| -> Result<Vec<Vec<f32>>> {
            s.iter().map(|s| model.embed(s)).collect()
        };
        let (xs, held_xs) = (embed(&samples)?, embed(&held_out)?);
        let errors_held_out = !held_out.is_empty();
        let out = Calibrated {
            data: HashMap::new(),
            summary: Vec::new(),
            error_tokens: if errors_held_out { &held_out } else { &samples }
                .iter()
                .map(Vec::len)
                .sum(),
            errors_held_out,
            method,
            detail,
        };
        let bar = block_bar(tag, model.config().n_layer, quiet);
        Ok(Pass {
            t0,
            model,
            xs,
            held_xs,
            out,
            bar,
            tag,
            quiet,
        })
    }

    /// Runs the calibration and held-out samples through block `l` as the model now holds it
    /// (quantized), so that the next block is calibrated on what the quantized model gives it.
    pub fn advance(&mut self, l: usize) -> Result<()> {
        self.bar.set_message("running the quantized block");
        for x in self.xs.iter_mut().chain(self.held_xs.iter_mut()) {
            self.model.block(l, x, &mut |_, _| {})?;
        }
        self.bar.inc(1);
        Ok(())
    }

    /// Ends the walk: clears the bar, says how many of the summary's `unit`s ("tensors",
    /// "layers") took how long, and gives the summary.
    pub fn finish(self, unit: &str) -> Calibrated {
        self.bar.finish_and_clear();
        if !self.quiet {
            eprintln!(
                "{}: {} {unit} in {:.1} s",
                self.tag,
                self.out.summary.len(),
                self.t0.elapsed().as_secs_f64()
            );
        }
        self.out
    }
}

/// The warning for a text that leaves `got` held-out samples of the `opts.held_out` asked for, if it
/// leaves fewer.
fn held_out_shortfall(tag: &str, opts: &CalibOptions, got: usize) -> Option<String> {
    (got < opts.held_out).then(|| {
        format!(
            "warning: {tag}: {} holds {got} of the {} held-out samples asked for after the \
             calibration samples{}",
            opts.text.display(),
            opts.held_out,
            if got == 0 {
                ": the summary's errors are on the calibration tokens"
            } else {
                ""
            }
        )
    })
}

/// GPTQ of every block linear layer of `g` whose plan entry has a GPTQ form.
pub fn run(
    g: &GgufFile,
    plan: &Plan,
    opts: &CalibOptions,
    threads: usize,
    quiet: bool,
) -> Result<Calibrated> {
    let mut pass = Pass::start(g, opts, quiet, "gptq", ("GPTQ", "damp"))?;
    let n_layer = pass.model.config().n_layer;
    let entries: HashMap<&str, &crate::plan::Entry> =
        plan.entries.iter().map(|e| (e.name.as_str(), e)).collect();

    let params = GptqParams {
        threads,
        mse_search: opts.mse_search,
        ..GptqParams::new(4, 32, &QuantOptions::default())
    };
    let errors_held_out = pass.out.errors_held_out;
    let (mut rtn, mut deq) = (Vec::new(), Vec::new());
    for l in 0..n_layer {
        // What each linear layer of the block becomes.
        let mut gptq_layers = Vec::new();
        let mut rtn_layers = Vec::new();
        for which in Linear::ALL {
            let name = which.gguf_name(l);
            let Some(e) = entries.get(name.as_str()) else {
                bail!("gptq: {name} is not in the plan");
            };
            if e.is_copy() {
                continue;
            }
            let by_gptq = match e.method {
                Some(m) => m == Method::Gptq,
                None => opts.default_gptq,
            };
            match e.target.ggml() {
                Some(ty) if by_gptq && gptq::ggml_supported(ty) => {
                    gptq_layers.push((which, *e, ty))
                }
                _ => rtn_layers.push((which, *e)),
            }
        }
        // 1. The inputs of the block's linear layers.
        pass.bar.set_message("collecting inputs");
        let mut calibs: HashMap<Tap, Calibration> = HashMap::new();
        // Per input column, the sum of its squares over the tokens (the imatrix statistic): the
        // importance weights of a weighted fit, collected only for one.
        let mut squares: HashMap<Tap, SquareSums> = HashMap::new();
        for (which, _, _) in &gptq_layers {
            let width = pass.model.linear_mut(l, *which).len() / rows_of(&pass.model, *which);
            if let Entry::Vacant(v) = calibs.entry(which.input()) {
                v.insert(Calibration::new(width)?);
            }
        }
        if !calibs.is_empty() || opts.weighted && !rtn_layers.is_empty() {
            collect_inputs(
                &pass.model,
                l,
                &pass.xs,
                opts.token_normalized,
                &mut calibs,
                |tap, raw, _| {
                    if opts.weighted {
                        squares
                            .entry(tap)
                            .or_insert_with(|| SquareSums::new(tap_width(&pass.model, tap)))
                            .add(raw);
                    }
                },
            )
            .with_context(|| format!("gptq: block {l}: calibration"))?;
        }
        // The held-out tokens' `X^T X` for the same inputs, weighed as GPTQ's objective weighs them.
        let mut held_calibs: HashMap<Tap, Calibration> = HashMap::new();
        if !calibs.is_empty() && errors_held_out {
            for tap in calibs.keys() {
                held_calibs.insert(*tap, Calibration::new(tap_width(&pass.model, *tap))?);
            }
            collect_inputs(
                &pass.model,
                l,
                &pass.held_xs,
                opts.token_normalized,
                &mut held_calibs,
                |_, _, _| {},
            )
            .with_context(|| format!("gptq: block {l}: held-out tokens"))?;
        }
        // 2. Quantize.
        for (which, e, ty) in &gptq_layers {
            pass.bar.set_message(e.name.clone());
            let rows = rows_of(&pass.model, *which);
            let w = pass.model.linear_mut(l, *which).to_vec();
            let cols = w.len() / rows;
            let calib = &calibs[&which.input()];
            // The summary's errors: on the held-out tokens when there are some.
            let h = match held_calibs.get(&which.input()) {
                Some(c) => c.hessian()?,
                None => calib.hessian()?,
            };
            // The importance weights: each input column's sum of squares (the mean square up to a
            // common factor, which the weighted quantizers do not depend on), from the activations
            // as they are (not token-normalized), as llama-imatrix collects them.
            let importance: Option<Vec<f32>> =
                opts.weighted.then(|| squares[&which.input()].as_f32());
            let t_tensor = Instant::now();
            rtn.clear();
            rtn.resize(e.n_bytes() as usize, 0);
            ggml_quantize_weighted(
                *ty,
                Src::F32(&w),
                rows,
                cols,
                importance.as_deref(),
                &mut rtn,
            )?;
            let r = gptq::quantize_ggml_calibrated(
                &w,
                rows,
                cols,
                calib,
                *ty,
                &params,
                importance.as_deref(),
            );
            // A Hessian that does not factorize even with the largest damping: this tensor is
            // rounded by ggml's quantizer instead, and the run says so.
            let (data, damp) = match r {
                Ok(r) => (r.data, Some(r.damp_used)),
                Err(QuantError::Numerical(why)) => {
                    eprintln!(
                        "warning: gptq: {} -> {}: {why}; this tensor is written by ggml's \
                         quantizer{} instead",
                        e.name,
                        e.target,
                        if opts.weighted {
                            " with the importance weights"
                        } else {
                            ""
                        }
                    );
                    (rtn.clone(), None)
                }
                Err(other) => {
                    return Err(other)
                        .with_context(|| format!("gptq: tensor {} -> {}", e.name, e.target))
                }
            };
            let secs = t_tensor.elapsed().as_secs_f64();
            let w_hw = quadratic(&w, None, &h, rows, cols);
            deq.clear();
            deq.resize(w.len(), 0f32);
            dequantize(e.target, &rtn, &mut deq)?;
            let err_rtn = (quadratic(&w, Some(&deq), &h, rows, cols) / w_hw).sqrt();
            dequantize(e.target, &data, &mut deq)?;
            let err_gptq = (quadratic(&w, Some(&deq), &h, rows, cols) / w_hw).sqrt();
            pass.model.linear_mut(l, *which).copy_from_slice(&deq);
            pass.out.summary.push(TensorSummary {
                name: e.name.clone(),
                target: e.target.to_string(),
                err_rtn,
                err: err_gptq,
                detail: damp.map_or("RTN".to_string(), |d| d.to_string()),
                secs,
            });
            pass.out.data.insert(e.name.clone(), data);
        }
        // The others are rounded (with the importance weights in a weighted run) and written as
        // rounded here, so the file holds what the next blocks were calibrated through.
        for (which, e) in &rtn_layers {
            let w = pass.model.linear_mut(l, *which).to_vec();
            let importance: Option<Vec<f32>> = (opts.weighted && e.target.ggml().is_some())
                .then(|| squares.get(&which.input()))
                .flatten()
                .map(SquareSums::as_f32);
            encode(e, &w, importance.as_deref(), &mut rtn, threads)?;
            deq.clear();
            deq.resize(w.len(), 0f32);
            dequantize(e.target, &rtn, &mut deq)?;
            pass.model.linear_mut(l, *which).copy_from_slice(&deq);
            pass.out.data.insert(e.name.clone(), rtn.clone());
        }
        drop(calibs);
        // 3. The next block's inputs, through this block quantized.
        pass.advance(l)?;
    }
    Ok(pass.finish("tensors"))
}

/// Per-column sums of squares of one linear-layer input over the calibration tokens, in f64, and the
/// number of tokens: the statistic llama-imatrix collects, and the importance weights of a weighted
/// fit.
pub struct SquareSums {
    pub sums: Vec<f64>,
    pub tokens: u64,
}

impl SquareSums {
    pub fn new(width: usize) -> Self {
        SquareSums {
            sums: vec![0.0; width],
            tokens: 0,
        }
    }

    /// Adds the squares of each column of `x` (tokens of `sums.len()` values).
    pub fn add(&mut self, x: &[f32]) {
        let w = self.sums.len();
        for row in x.chunks_exact(w) {
            for (a, &v) in self.sums.iter_mut().zip(row) {
                *a += f64::from(v) * f64::from(v);
            }
        }
        self.tokens += (x.len() / w) as u64;
    }

    /// The sums as f32 (the precision of an imatrix file and of the quantizers' weights).
    pub fn as_f32(&self) -> Vec<f32> {
        self.sums.iter().map(|&v| v as f32).collect()
    }
}

/// The progress bar of a pass over the model's `n_layer` blocks (hidden when `quiet`); its message
/// says what the pass is doing in the block.
pub fn block_bar(label: &str, n_layer: usize, quiet: bool) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(n_layer as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{label} {{elapsed_precise}} [{{bar:30}}] block {{pos}}/{{len}} {{msg}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Runs the samples `xs` through block `l` as the model holds it (the samples themselves unchanged)
/// and accumulates `X^T X` of each input in `hessians`, every token's row scaled to a root mean
/// square of 1 when `token_normalized`. `on_tap` sees every input as it is and, for the inputs in
/// `hessians`, as the Hessian weighs it. The first calibration error is returned.
pub(crate) fn collect_inputs(
    model: &Llama,
    l: usize,
    xs: &[Vec<f32>],
    token_normalized: bool,
    hessians: &mut HashMap<Tap, Calibration>,
    mut on_tap: impl FnMut(Tap, &[f32], Option<&[f32]>),
) -> Result<()> {
    let mut normed = Vec::new();
    let mut failed = None;
    for x in xs {
        let mut x = x.clone();
        model.block(l, &mut x, &mut |tap, data| {
            let Some(c) = hessians.get_mut(&tap) else {
                on_tap(tap, data, None);
                return;
            };
            let width = tap_width(model, tap);
            let weighed = if token_normalized {
                normalize_tokens(data, width, &mut normed);
                &normed[..]
            } else {
                data
            };
            on_tap(tap, data, Some(weighed));
            if let Err(e) = c.add(weighed, weighed.len() / width, width) {
                failed.get_or_insert(e);
            }
        })?;
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// `x` (rows of `width`) with every row scaled to a root mean square of 1 (a zero row stays zero),
/// into `out`.
pub(crate) fn normalize_tokens(x: &[f32], width: usize, out: &mut Vec<f32>) {
    out.clear();
    for row in x.chunks_exact(width) {
        let ms = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            / width as f64;
        let k = if ms > 0.0 {
            (1.0 / ms.sqrt()) as f32
        } else {
            1.0
        };
        out.extend(row.iter().map(|&v| v * k));
    }
}

/// Output rows of `which` in the model.
pub(crate) fn rows_of(model: &Llama, which: Linear) -> usize {
    let c = model.config();
    let kv = c.n_head_kv * c.head_dim();
    match which {
        Linear::Q | Linear::Output => c.n_embd,
        Linear::K | Linear::V => kv,
        Linear::Gate | Linear::Up => c.n_ff,
        Linear::Down => c.n_embd,
    }
}

/// `sum_r d_r^T H d_r` with `d = w - q` (or `w` alone), `H` the full `cols x cols` Hessian: the squared
/// output error `||X d^T||^2` up to the Hessian's constant factor.
pub(crate) fn quadratic(w: &[f32], q: Option<&[f32]>, h: &[f64], rows: usize, cols: usize) -> f64 {
    let d: Vec<f64> = match q {
        Some(q) => w
            .iter()
            .zip(q)
            .map(|(&a, &b)| a as f64 - b as f64)
            .collect(),
        None => w.iter().map(|&a| a as f64).collect(),
    };
    let mut dh = vec![0f64; rows * cols];
    matmul(
        MatMut::from_row_major_slice_mut(&mut dh, rows, cols),
        Accum::Replace,
        MatRef::from_row_major_slice(&d, rows, cols),
        MatRef::from_row_major_slice(h, cols, cols),
        1.0f64,
        Par::rayon(0),
    );
    dh.iter().zip(&d).map(|(a, b)| a * b).sum()
}

/// The summary table (one line per tensor) and the mean ratio GPTQ / RTN, after a line saying which
/// tokens the errors are measured on.
pub fn summary_table(c: &Calibrated) -> String {
    let s = &c.summary;
    let mut t = format!(
        "relative output errors on {} {} tokens\n",
        c.error_tokens,
        if c.errors_held_out {
            "held-out"
        } else {
            "calibration"
        }
    );
    t += &format!(
        "{:<28} {:<6} {:>12} {:>12} {:>7} {:>6} {:>7}\n",
        "tensor",
        "type",
        "RTN rel.err",
        format!("{} rel.err", c.method),
        "ratio",
        c.detail,
        "s"
    );
    for r in s {
        t.push_str(&format!(
            "{:<28} {:<6} {:>12.4e} {:>12.4e} {:>7.3} {:>6} {:>7.2}\n",
            r.name,
            r.target,
            r.err_rtn,
            r.err,
            r.err / r.err_rtn,
            r.detail,
            r.secs
        ));
    }
    if !s.is_empty() {
        let mean = s.iter().map(|r| r.err / r.err_rtn).sum::<f64>() / s.len() as f64;
        t.push_str(&format!("mean ratio {} / RTN: {mean:.3}\n", c.method));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(samples: usize, seq_len: usize, held_out: usize) -> CalibOptions {
        CalibOptions {
            text: PathBuf::from("t.txt"),
            samples,
            seq_len,
            held_out,
            mse_search: false,
            weighted: true,
            default_gptq: true,
            awq: false,
            smooth_alpha: None,
            token_normalized: true,
        }
    }

    #[test]
    fn held_out_samples_follow_the_calibration_samples_and_never_overlap_them() {
        let tokens: Vec<u32> = (100..150).collect();
        // 3 x 8 calibration tokens, then 2 held-out samples of 8: tokens 24..40.
        let s = samples(&tokens, &opts(3, 8, 2), Some(1)).unwrap();
        assert_eq!(s.calib.len(), 3);
        assert_eq!(s.calib[1], [1, 109, 110, 111, 112, 113, 114, 115]);
        assert_eq!(s.held_out.len(), 2);
        assert_eq!(s.held_out[0], [1, 125, 126, 127, 128, 129, 130, 131]);
        assert_eq!(s.held_out[1][1..], [133, 134, 135, 136, 137, 138, 139]);
        // As many as the text holds (no partial sample): 50 - 24 = 26 tokens make 3 of 8.
        let s = samples(&tokens, &opts(3, 8, 10), None).unwrap();
        assert_eq!(s.held_out.len(), 3);
        assert_eq!(s.held_out[2][0], 140);
        // None left, and none asked for.
        assert!(samples(&tokens, &opts(6, 8, 4), None)
            .unwrap()
            .held_out
            .is_empty());
        assert!(samples(&tokens, &opts(3, 8, 0), None)
            .unwrap()
            .held_out
            .is_empty());
        // Fewer than asked for is a warning naming the method, the text and the counts; none left
        // says where the errors are measured instead.
        let w = held_out_shortfall("awq", &opts(3, 8, 10), 3).unwrap();
        assert!(
            w.starts_with("warning: awq: t.txt holds 3 of the 10"),
            "{w}"
        );
        assert!(!w.contains("calibration tokens"), "{w}");
        let w = held_out_shortfall("gptq", &opts(6, 8, 4), 0).unwrap();
        assert!(w.contains("errors are on the calibration tokens"), "{w}");
        assert_eq!(held_out_shortfall("gptq", &opts(3, 8, 2), 2), None);
        assert_eq!(held_out_shortfall("gptq", &opts(3, 8, 0), 0), None);
        // Calibration samples the text cannot hold are an error naming the counts.
        let e = samples(&tokens, &opts(7, 8, 0), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("50 tokens") && e.contains("need 56"), "{e}");
    }

    #[test]
    fn tokens_are_normalized_to_unit_rms_and_squares_are_summed() {
        // Two tokens of width 4: one ordinary, one a thousand times larger, and a zero token.
        let x = [
            1.0f32, -2.0, 2.0, 1.0, 1000.0, 0.0, -3000.0, 1000.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let mut out = Vec::new();
        normalize_tokens(&x, 4, &mut out);
        assert_eq!(out.len(), 12);
        for (t, row) in out.chunks_exact(4).take(2).enumerate() {
            let ms: f32 = row.iter().map(|v| v * v).sum::<f32>() / 4.0;
            assert!((ms - 1.0).abs() < 1e-6, "token {t}: mean square {ms}");
        }
        // The direction is kept.
        assert!((out[1] / out[0] + 2.0).abs() < 1e-6);
        assert_eq!(&out[8..], &[0.0; 4]);
        let mut sums = SquareSums::new(4);
        sums.add(&x);
        assert_eq!(sums.sums, vec![1_000_001.0, 4.0, 9_000_004.0, 1_000_001.0]);
        assert_eq!(sums.tokens, 3);
        assert_eq!(
            sums.as_f32(),
            vec![1_000_001.0, 4.0, 9_000_004.0, 1_000_001.0]
        );
    }
}
