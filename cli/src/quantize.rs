//! `quant quantize`: model -> plan -> each tensor quantized with the library -> GGUF.
//!
//! The output is written tensor by tensor (one f32 tensor and its encoding in memory at a time) into
//! a temporary file beside the output, renamed over it only when complete; on any error the
//! temporary file is removed.
use std::collections::HashMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use half::{bf16, f16};
use indicatif::{ProgressBar, ProgressStyle};
use quant::kernels::check_finite;
use quant::kernels::ggml::ggml_quantize_weighted;
use quant::kernels::source::Src;
use quant::QuantError;

use crate::awq;
use crate::calibrate::{self, CalibOptions};
use crate::imatrix::Imatrix;
use crate::model::gguf::Value;
use crate::model::{dequantize, DType, GgufFile, Source};
use crate::plan::{self, Entry, Mix, Plan};
use crate::write;
use crate::write::gguf::{GgufWriter, TensorSpec};

/// Tensors with fewer values are encoded on one thread.
const MIN_PARALLEL: usize = 1 << 18;

/// `GGML_QNT_VERSION`, which llama-quantize writes as `general.quantization_version`.
pub const QNT_VERSION: u32 = 2;

pub struct Options {
    pub mix: Option<Mix>,
    pub rules: Option<PathBuf>,
    pub threads: usize,
    pub quiet: bool,
    /// Print a line per tensor (type, bits per weight, relative error, time).
    pub verbose: bool,
    /// GPTQ through the model on this calibration (a GGUF input only); None: round-to-nearest.
    pub gptq: Option<CalibOptions>,
    /// An importance matrix file (llama-imatrix's GGUF or legacy format, or `quant imatrix`'s):
    /// each tensor it names is quantized with its weights, as llama-quantize --imatrix does.
    pub imatrix: Option<PathBuf>,
}

/// Opens a model: a GGUF file or a safetensors folder.
pub fn open_source(path: &Path) -> Result<Box<dyn Source>> {
    crate::model::open(path)
}

/// The plan for `src` under `opts` (validated).
pub fn make_plan(src: &dyn Source, mix: Option<Mix>, rules: Option<&Path>) -> Result<Plan> {
    make_plan_for(src, mix, rules, false)
}

/// [`make_plan`] for a run with (`imatrix`) or without an importance matrix: the Q4_0 and Q5_0
/// mixes differ as llama-quantize's do.
pub fn make_plan_for(
    src: &dyn Source,
    mix: Option<Mix>,
    rules: Option<&Path>,
    imatrix: bool,
) -> Result<Plan> {
    let rules = match rules {
        Some(p) => plan::read_rules(p)?,
        None => vec![],
    };
    Plan::build_for(&src.tensors(), &src.info(), mix, &rules, imatrix)
        .with_context(|| format!("{}", src.path().display()))
}

/// llama-quantize's record of the importance matrix in the output's metadata, after
/// `general.file_type`: the file as given and the first dataset (each cut to 127 bytes, its buffer
/// size), the number of entries, and the chunk count when known.
pub fn imatrix_metadata(path: &Path, m: &Imatrix) -> Vec<(String, Value)> {
    fn cut(s: &str) -> Value {
        let b = s.as_bytes();
        Value::String(b[..b.len().min(127)].to_vec())
    }
    let mut kv = vec![(
        "quantize.imatrix.file".to_string(),
        cut(&path.to_string_lossy()),
    )];
    if let Some(d) = m.datasets.first() {
        kv.push(("quantize.imatrix.dataset".to_string(), cut(d)));
    }
    kv.push((
        "quantize.imatrix.entries_count".to_string(),
        Value::U32(m.entries.len() as u32),
    ));
    if m.chunk_count > 0 {
        kv.push((
            "quantize.imatrix.chunks_count".to_string(),
            Value::U32(m.chunk_count),
        ));
    }
    kv
}

/// Each quantized tensor's importance weights (one per column), checked against the plan: an entry
/// whose length is not the tensor's row length is an error naming both, as in llama-quantize.
fn imatrix_weights(plan: &Plan, m: &Imatrix) -> Result<HashMap<String, Vec<f32>>> {
    let mut out = HashMap::new();
    for e in &plan.entries {
        if e.is_copy() || e.target.ggml().is_none() {
            continue;
        }
        let Some(w) = m.weights(&e.name) else {
            continue;
        };
        let cols = e.dims.first().copied().unwrap_or(1);
        let mats: u64 = e.dims.iter().skip(2).product();
        if w.len() as u64 != cols * mats {
            bail!(
                "imatrix entry '{}' has {} values but the tensor's rows are {cols} long{}",
                e.name,
                w.len(),
                if mats > 1 {
                    format!(" ({mats} matrices)")
                } else {
                    String::new()
                }
            );
        }
        if mats > 1 {
            bail!(
                "tensor '{}': {mats} matrices with one imatrix row each are not supported",
                e.name
            );
        }
        out.insert(e.name.clone(), w);
    }
    Ok(out)
}

/// The output metadata: the input's, in order, then `general.quantization_version` and
/// `general.file_type` moved to the end with their new values and the split keys dropped, as
/// llama-quantize does.
pub fn output_metadata(src: &[(String, Value)], file_type: Option<u32>) -> Vec<(String, Value)> {
    let mut m: Vec<(String, Value)> = src
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "split.no" | "split.count" | "split.tensors.count"
            )
        })
        .cloned()
        .collect();
    let mut set = |k: &str, v: Value| {
        m.retain(|(key, _)| key != k);
        m.push((k.to_string(), v));
    };
    set("general.quantization_version", Value::U32(QNT_VERSION));
    if let Some(ft) = file_type {
        set("general.file_type", Value::U32(ft));
    }
    m
}

/// Encodes `x` (one tensor, `rows` rows of `dims[0]`) as `target` into `out`, on `threads` threads
/// (rows split into contiguous ranges: the bytes do not depend on the split); with importance
/// weights (one per column), the GGUF block types go through ggml's weighted quantizers, as
/// llama-quantize runs them with an imatrix.
pub fn encode(
    e: &Entry,
    x: &[f32],
    weights: Option<&[f32]>,
    out: &mut Vec<u8>,
    threads: usize,
) -> Result<()> {
    let cols = e.dims.first().copied().unwrap_or(1) as usize;
    let rows = x.len().checked_div(cols).unwrap_or(0);
    out.clear();
    out.resize(e.n_bytes() as usize, 0);
    if x.is_empty() {
        return Ok(());
    }
    // The library's check: a SIMD absmax over the tensor, the exact index searched only on failure.
    match check_finite(x, &e.name) {
        Ok(()) => {}
        Err(QuantError::NonFinite { index: i, value, .. }) => bail!(
            "tensor '{}': element {i} (row {}, column {}) is {value}: cannot quantize a non-finite weight",
            e.name,
            i / cols,
            i % cols,
        ),
        Err(other) => return Err(other.into()),
    }
    let row_bytes = out.len() / rows;
    let chunk = |o: &mut [u8], xs: &[f32]| -> Result<()> {
        match e.target {
            DType::F32 => {
                for (b, v) in o.chunks_exact_mut(4).zip(xs) {
                    b.copy_from_slice(&v.to_le_bytes());
                }
            }
            DType::F16 => {
                for (b, v) in o.chunks_exact_mut(2).zip(xs) {
                    b.copy_from_slice(&f16::from_f32(*v).to_le_bytes());
                }
            }
            DType::BF16 => {
                for (b, v) in o.chunks_exact_mut(2).zip(xs) {
                    b.copy_from_slice(&bf16::from_f32(*v).to_le_bytes());
                }
            }
            t => {
                let g = t.ggml().ok_or_else(|| anyhow!("{t} has no quantizer"))?;
                ggml_quantize_weighted(g, Src::F32(xs), xs.len() / cols, cols, weights, o)?;
            }
        }
        Ok(())
    };
    // Small tensors stay on this thread: on a loaded machine, waking a new thread costs more
    // (scheduling latency, measured at several ms per tensor) than encoding a few hundred thousand
    // values.
    let threads = if x.len() < MIN_PARALLEL {
        1
    } else {
        threads.clamp(1, rows)
    };
    let per = rows.div_ceil(threads);
    let result: Result<()> = std::thread::scope(|s| {
        let mut pieces = out.chunks_mut(per * row_bytes).zip(x.chunks(per * cols));
        let (first_o, first_x) = pieces.next().expect("at least one row");
        let handles: Vec<_> = pieces
            .map(|(o, xs)| s.spawn(move || chunk(o, xs)))
            .collect();
        let mut r = chunk(first_o, first_x);
        for h in handles {
            let joined = h
                .join()
                .map_err(|_| anyhow!("a quantization thread panicked"))
                .and_then(|x| x);
            r = r.and(joined);
        }
        r
    });
    result.with_context(|| format!("tensor '{}' -> {}", e.name, e.target))
}

/// Relative error ||deq(q) - x|| / ||x|| of an encoding (0 for an exact copy of f32).
fn relative_error(target: DType, bytes: &[u8], x: &[f32], scratch: &mut Vec<f32>) -> Option<f64> {
    scratch.clear();
    scratch.resize(x.len(), 0.0);
    dequantize(target, bytes, scratch).ok()?;
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in scratch.iter().zip(x) {
        num += (f64::from(*a) - f64::from(*b)).powi(2);
        den += f64::from(*b).powi(2);
    }
    Some(if den == 0.0 { 0.0 } else { (num / den).sqrt() })
}

/// Refuses an output that is the input (or would replace it).
fn check_paths(input: &Path, output: &Path) -> Result<()> {
    let canon_in = input
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", input.display()))?;
    let canon_out = match output.canonicalize() {
        Ok(p) => p,
        Err(_) => {
            let parent = match output.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let parent = parent
                .canonicalize()
                .with_context(|| format!("{}: its folder does not exist", output.display()))?;
            parent.join(
                output
                    .file_name()
                    .ok_or_else(|| anyhow!("{}: not a file name", output.display()))?,
            )
        }
    };
    if canon_in == canon_out || canon_out.starts_with(&canon_in) && canon_in.is_dir() {
        bail!(
            "the output {} is the input {}: write to another file",
            output.display(),
            input.display()
        );
    }
    if canon_out.is_dir() {
        bail!("the output {} is a folder", output.display());
    }
    Ok(())
}

/// Summary of a run.
pub struct Report {
    pub tensors: usize,
    pub quantized: usize,
    /// Tensors written in their own type with new values (the norms AWQ folds its scales into).
    pub rewritten: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub elapsed: Duration,
}

/// Quantizes `input` into the GGUF file `output`.
pub fn run(input: &Path, output: &Path, opts: &Options) -> Result<Report> {
    let start = Instant::now();
    check_paths(input, output)?;
    let src = open_source(input)?;
    let imatrix = match &opts.imatrix {
        Some(p) => Some((p, Imatrix::read(p)?)),
        None => None,
    };
    // Importance weights (a file, or GPTQ's weighted fit from its calibration) change the Q4_0 and
    // Q5_0 mixes as llama-quantize's imatrix does, so that the files compare at the same size.
    let weighted = imatrix.is_some() || opts.gptq.as_ref().is_some_and(|c| c.weighted);
    let plan = make_plan_for(src.as_ref(), opts.mix, opts.rules.as_deref(), weighted)?;
    let rule_gptq = plan
        .entries
        .iter()
        .find(|e| e.method == Some(plan::Method::Gptq));
    match (&opts.gptq, rule_gptq) {
        (None, Some(e)) => bail!(
            "tensor '{}' ({}) is to be quantized by GPTQ: give --calib TEXT",
            e.name,
            e.why
        ),
        (Some(c), Some(e)) if c.awq => {
            bail!(
            "tensor '{}' ({}) is to be quantized by GPTQ, and --method {} folds scales instead: \
             give one calibrated method",
            e.name,
            e.why,
            if c.smooth_alpha.is_some() { "smoothquant" } else { "awq" }
        )
        }
        (Some(c), None) if !c.default_gptq && !c.awq => {
            bail!(
                "--calib: nothing uses it (give --method gptq, awq or smoothquant, or end a rule \
                 with `gptq`)"
            )
        }
        _ => {}
    }
    let mut metadata = output_metadata(&src.metadata(), plan.file_type());
    let weights = match &imatrix {
        Some((p, m)) => {
            metadata.extend(imatrix_metadata(p, m));
            let w = imatrix_weights(&plan, m).with_context(|| format!("{}", p.display()))?;
            if !opts.quiet {
                let quantized = plan
                    .entries
                    .iter()
                    .filter(|e| !e.is_copy() && e.target.ggml().is_some())
                    .count();
                eprintln!(
                    "imatrix: {} entries from {}; {} of {quantized} quantized tensors weighted \
                     (the others have no entry)",
                    m.entries.len(),
                    p.display(),
                    w.len()
                );
            }
            w
        }
        None => HashMap::new(),
    };
    let mut gptq = match &opts.gptq {
        None => Default::default(),
        Some(c) => {
            if src.path().is_dir() {
                bail!(
                    "{}: calibration through the model needs a GGUF file (its forward pass reads GGUF)",
                    input.display()
                );
            }
            let g = GgufFile::open(input)?;
            let r = if c.awq {
                awq::run(&g, &plan, c, opts.threads, opts.quiet)?
            } else {
                calibrate::run(&g, &plan, c, opts.threads, opts.quiet)?
            };
            if !opts.quiet {
                eprint!("{}", calibrate::summary_table(&r));
            }
            r.data
        }
    };
    let specs: Vec<TensorSpec> = plan
        .entries
        .iter()
        .map(|e| TensorSpec {
            name: e.name.clone(),
            dims: e.dims.clone(),
            dtype: e.target,
        })
        .collect();

    let tmp = write::file_beside(output)?;
    let out_ctx = || format!("{}", output.display());
    let mut w = GgufWriter::new(
        BufWriter::with_capacity(1 << 20, tmp.as_file()),
        &metadata,
        specs,
    )
    .with_context(out_ctx)?;

    let bar = if opts.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(plan.entries.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let (mut x, mut q, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    let mut report = Report {
        tensors: plan.entries.len(),
        quantized: 0,
        rewritten: 0,
        bytes_in: 0,
        bytes_out: 0,
        elapsed: Duration::ZERO,
    };
    for e in &plan.entries {
        bar.set_message(e.name.clone());
        let t0 = Instant::now();
        let raw = src.raw(&e.name)?;
        report.bytes_in += raw.len() as u64;
        let err = if let Some(data) = gptq.remove(&e.name) {
            w.write_tensor(&data).with_context(out_ctx)?;
            if e.is_copy() {
                report.rewritten += 1;
            } else {
                report.quantized += 1;
            }
            if opts.verbose {
                src.read_f32(&e.name, &mut x)?;
                relative_error(e.target, &data, &x, &mut scratch)
            } else {
                None
            }
        } else if e.is_copy() {
            w.write_tensor(&raw).with_context(out_ctx)?;
            None
        } else {
            // An f32 input is encoded from its mapped pages: no copy of the tensor in memory.
            let xs = match src.f32_in_place(&e.name) {
                Some(xs) => xs,
                None => {
                    src.read_f32(&e.name, &mut x)?;
                    &x[..]
                }
            };
            let qw = weights.get(&e.name).map(Vec::as_slice);
            encode(e, xs, qw, &mut q, opts.threads)
                .with_context(|| format!("{}", src.path().display()))?;
            w.write_tensor(&q).with_context(out_ctx)?;
            report.quantized += 1;
            if opts.verbose {
                relative_error(e.target, &q, xs, &mut scratch)
            } else {
                None
            }
        };
        src.release(&e.name);
        report.bytes_out += e.n_bytes();
        if opts.verbose {
            let n: u64 = e.dims.iter().product();
            bar.suspend(|| {
                println!(
                    "{:<32} {:>6} -> {:<6} {:>6.2} bpw  rel.err {:<10} {:>7.1} ms  {}",
                    e.name,
                    e.src.to_string(),
                    e.target.to_string(),
                    e.n_bytes() as f64 * 8.0 / n.max(1) as f64,
                    err.map_or("-".to_string(), |v| format!("{v:.3e}")),
                    t0.elapsed().as_secs_f64() * 1e3,
                    e.why
                )
            });
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let buf = w.finish().with_context(out_ctx)?;
    drop(buf);
    write::finish_file(tmp, output)?;
    report.elapsed = start.elapsed();
    Ok(report)
}
