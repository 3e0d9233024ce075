//! `quant`: takes a whole model through the quant library.
//!
//! Data flows one way, one module per step (see DESIGN.md of the project):
//! model file(s) -> `model` (tensors by name, mapped) -> `plan` (a rule per tensor, validated before any
//! work) -> quantize each tensor with the library -> `write` (GGUF, safetensors checkpoints);
//! `arch` + `tokenizer` + `eval` run the model's own forward pass for perplexity.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

// The tool's modules live in the library crate (lib.rs) so that tests and fuzz targets reach them;
// `crate::model` etc. resolve through these imports in modules declared here.
#[allow(unused_imports)]
use quant_cli::{calibrate, eval, export, imatrix, inspect, model, plan, quantize, write};

const RULES_HELP: &str = "\
Plans: every tensor gets a target type before any work starts, and the whole plan is validated first.
  --type T     llama-quantize's mix for file type T: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
               Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K. 1-D tensors and
               norms stay as they are; the output (and a tied token embedding) gets Q6_K, or Q8_0
               when its rows do not fit; the K mixes raise some attn_v, attn_output and ffn_down
               layers to higher K types as llama-quantize does; rows a 256-value block does not
               divide fall back (Q2_K, Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0).
  --rules FILE one rule per line, first match wins, before the mix:
                   # comment
                   token_embd.weight          = Q8_0
                   blk.{0,1,2}.attn_v.weight  = Q6_K
                   blk.*.ffn_down.weight      = Q4_K gptq
                   *_norm.weight              = keep
               Patterns are globs over GGUF tensor names (* ? [0-9] {a,b}); types are F32, F16, BF16,
               Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4,
               NVFP4, TQ1_0, TQ2_0, or keep; a type may be followed by a method, rtn or gptq (GPTQ through the
               model: block linear layers of the types Q4_0 ... Q6_K, needs --calib), else --method
               decides. A rule that matches no tensor, an unknown type or method, a shape the type
               cannot take, or a block type for a 1-D tensor is an error.
               Without --type, tensors no rule names are kept.
A tensor whose target is its current type is copied as it is (like llama-quantize).";

#[derive(Parser)]
#[command(
    name = "quant",
    version,
    about = "Quantize a whole model with the quant library",
    after_long_help = RULES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct PlanArgs {
    /// llama-quantize file type (mix): F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S,
    /// Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K.
    #[arg(long = "type", value_name = "T", value_parser = plan::Mix::parse)]
    mix: Option<plan::Mix>,
    /// Per-tensor rules (PATTERN = TYPE lines, first match wins; see `quant help`).
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
}

/// The calibration of `export-gptq` and `export-awq`.
#[derive(clap::Args)]
struct PackedCalibArgs {
    /// A calibration text (UTF-8): the codes are chosen by the method through the model, block by
    /// block, instead of rounded to nearest.
    #[arg(long, value_name = "TEXT")]
    calib: Option<PathBuf>,
    /// Calibration samples (consecutive runs of --seq-len tokens from the text's start).
    #[arg(long, default_value_t = 40, requires = "calib")]
    samples: usize,
    /// Tokens per calibration sample.
    #[arg(long, default_value_t = 512, requires = "calib")]
    seq_len: usize,
    /// Samples of --seq-len tokens cut after the calibration samples and never calibrated on; the
    /// summary's errors are measured on them.
    #[arg(long, default_value_t = 4, requires = "calib")]
    held_out: usize,
    /// The GPTQ Hessian and the summary's errors from the activations as they are, instead of each
    /// token's activations scaled to a root mean square of 1.
    #[arg(long, requires = "calib")]
    plain_hessian: bool,
    /// No progress bar or summary.
    #[arg(long, short)]
    quiet: bool,
}

impl PackedCalibArgs {
    fn options(&self, awq: bool) -> Option<calibrate::CalibOptions> {
        self.calib.as_ref().map(|text| calibrate::CalibOptions {
            text: text.clone(),
            samples: self.samples,
            seq_len: self.seq_len,
            held_out: self.held_out,
            mse_search: false,
            weighted: false,
            default_gptq: !awq,
            awq,
            smooth_alpha: None,
            token_normalized: !self.plain_hessian,
        })
    }
}

/// The code type of `export-compressed` (compressed-tensors' `weights.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum WeightType {
    /// Integer codes packed into int32 words (format pack-quantized).
    Int,
    /// FP8 E4M3 codes (format float-quantized).
    Float,
    /// FP8 E4M3 codes with a scale per 128 x 128 block (format float-quantized, strategy block).
    Fp8Block,
    /// MXFP4: E2M1 codes in blocks of 32 with E8M0 (power of two) scales (format
    /// mxfp4-pack-quantized).
    Mxfp4,
    /// MXFP6: E2M3 codes (compressed-tensors' only FP6 element), four in three bytes, in blocks of
    /// 32 with E8M0 scales (format mxfp6-pack-quantized).
    Mxfp6,
    /// MXFP8: E4M3 codes (compressed-tensors' only FP8 element) in blocks of 32 with E8M0 scales
    /// (format mxfp8-quantized).
    Mxfp8,
    /// NVFP4: E2M1 codes in blocks of 16 with E4M3 block scales and a per-tensor f32 scale (format
    /// nvfp4-pack-quantized).
    Nvfp4,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model: architecture, metadata, tensors (name, type, shape), parameters and size; with
    /// --type/--rules, the type each tensor would get.
    #[command(after_long_help = RULES_HELP)]
    Inspect {
        /// A GGUF file, or a Hugging Face folder (config.json, safetensors f32/f16/bf16).
        model: PathBuf,
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Write a GGUF Llama model as a 4-bit GPTQ Hugging Face folder (qweight, qzeros, scales, g_idx;
    /// codes with zero points: round-to-nearest, or with --calib GPTQ through the model block by
    /// block; quantization_config in config.json).
    ExportGptq {
        /// A GGUF file (Llama).
        model: PathBuf,
        /// The folder to create (must not exist, or be empty).
        dir: PathBuf,
        /// checkpoint_format: gptq (zero points stored minus one) or gptq_v2.
        #[arg(long, default_value = "gptq", value_parser = ["gptq", "gptq_v2"])]
        format: String,
        /// Input columns per group (must divide every layer's input width).
        #[arg(long, default_value_t = 128)]
        group_size: usize,
        #[command(flatten)]
        calib: PackedCalibArgs,
    },
    /// Write a GGUF Llama model as a 4-bit AWQ GEMM Hugging Face folder (qweight, qzeros, scales in
    /// AutoAWQ's layout; codes with zero points: round-to-nearest, or with --calib AWQ through the
    /// model, its scales folded into the norms and ffn_up; quantization_config in config.json).
    ExportAwq {
        /// A GGUF file (Llama).
        model: PathBuf,
        /// The folder to create (must not exist, or be empty).
        dir: PathBuf,
        /// Input columns per group (must divide every layer's input width).
        #[arg(long, default_value_t = 128)]
        group_size: usize,
        #[command(flatten)]
        calib: PackedCalibArgs,
    },
    /// Write a GGUF Llama model as a compressed-tensors Hugging Face folder: pack-quantized
    /// (weight_packed, weight_scale, weight_zero_point, weight_shape; W4A16 or W8A16 round-to-nearest
    /// codes); with --type float, float-quantized (FP8 E4M3 weight and weight_scale, FP8_DYNAMIC); with
    /// --type fp8-block, float-quantized in 128 x 128 blocks (FP8_BLOCK); with --type mxfp4, mxfp6 or
    /// nvfp4, mxfp4-, mxfp6- or nvfp4-pack-quantized (MXFP4A16, MXFP6A16, NVFP4A16); with --type
    /// mxfp8, mxfp8-quantized (MXFP8A16); quantization_config in config.json. MXINT8 has no
    /// compressed-tensors format (none decodes integer codes under E8M0 scales), so it is not offered.
    ExportCompressed {
        /// A GGUF file (Llama).
        model: PathBuf,
        /// The folder to create (must not exist, or be empty).
        dir: PathBuf,
        /// Weight codes: int (pack-quantized), float (FP8 E4M3, float-quantized), fp8-block (FP8
        /// E4M3 in 128 x 128 blocks, float-quantized), mxfp4 (mxfp4-pack-quantized), mxfp6
        /// (E2M3, mxfp6-pack-quantized), mxfp8 (E4M3, mxfp8-quantized) or nvfp4
        /// (nvfp4-pack-quantized).
        #[arg(long = "type", value_name = "TYPE", value_enum, default_value = "int")]
        kind: WeightType,
        /// Bits per weight code [default: 4; 8 with --type float, the only width it takes].
        #[arg(long, value_parser = clap::value_parser!(u32).range(4..=8))]
        bits: Option<u32>,
        /// Input columns per group (must divide every layer's input width) [default: 128; --type int
        /// only].
        #[arg(long, conflicts_with_all = ["channel", "tensor"])]
        group_size: Option<usize>,
        /// One scale per output channel instead of groups (strategy "channel"; the default of
        /// --type float).
        #[arg(long, conflicts_with = "tensor")]
        channel: bool,
        /// One scale for the whole weight (strategy "tensor"; --type float only).
        #[arg(long)]
        tensor: bool,
        /// Symmetric codes, no zero points (8 bits only: the library's symmetric kernel is INT8;
        /// FP8 codes are always symmetric).
        #[arg(long)]
        symmetric: bool,
    },
    /// Write a GGUF Llama model, dequantized, as a Hugging Face folder: config.json, safetensors
    /// (HF names, q/k rows back in HF order), tokenizer.json for byte-level BPE tokenizers.
    ExportHf {
        /// A GGUF file (Llama).
        model: PathBuf,
        /// The folder to create (must not exist, or be empty).
        dir: PathBuf,
        /// Element type of the weights.
        #[arg(long, value_enum, default_value = "f32")]
        dtype: export::ExportDtype,
        /// Largest shard, in MiB (more shards and model.safetensors.index.json beyond it).
        #[arg(long, default_value_t = 5000)]
        shard_size: u64,
    },
    /// Quantize a model into a GGUF file (metadata and tokenizer carried over).
    #[command(after_long_help = RULES_HELP)]
    Quantize {
        /// A GGUF file, or a Hugging Face folder (config.json, safetensors f32/f16/bf16).
        model: PathBuf,
        /// The GGUF file to write (must not be the input).
        out: PathBuf,
        #[command(flatten)]
        plan: PlanArgs,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// No progress bar or summary.
        #[arg(long, short)]
        quiet: bool,
        /// A line per tensor: types, bits per weight, relative error, time.
        #[arg(long, short)]
        verbose: bool,
        /// rtn: each tensor rounded on its own (llama-quantize's bytes); gptq: the block linear
        /// layers by GPTQ onto the GGUF type planned for each (any type of a mix: Q4_0 ... Q8_0,
        /// Q2_K ... Q6_K), calibrated through the model block by block, each record fitted with the
        /// calibration's importance weights; awq: per-input-channel scales searched on the
        /// calibration (AWQ) and folded into the norms and ffn_up, then each block linear layer
        /// rounded by its type's weighted quantizer; smoothquant: SmoothQuant's scales (--alpha)
        /// folded the same way, for engines that quantize activations to INT8 per token (`quant
        /// eval --act-int8` measures that); the other tensors as rtn writes them (GGUF Llama input;
        /// gptq, awq and smoothquant need --calib).
        #[arg(long, default_value = "rtn", value_parser = ["rtn", "gptq", "awq", "smoothquant"])]
        method: String,
        /// With --method smoothquant: the migration strength alpha of SmoothQuant's scales
        /// `s_j = max|x_j|^alpha / max|W_j|^(1 - alpha)` (0 to 1).
        #[arg(long, default_value_t = 0.5, value_parser = alpha_in_range)]
        alpha: f64,
        /// The calibration text for --method gptq, awq and smoothquant and rules ending in gptq
        /// (UTF-8).
        #[arg(long, value_name = "TEXT")]
        calib: Option<PathBuf>,
        /// Calibration samples (consecutive runs of --seq-len tokens from the text's start).
        #[arg(long, default_value_t = 40)]
        samples: usize,
        /// Tokens per calibration sample.
        #[arg(long, default_value_t = 512)]
        seq_len: usize,
        /// With --calib: samples of --seq-len tokens cut after the calibration samples and never
        /// calibrated on; the summary's errors are measured on them.
        #[arg(long, default_value_t = 4)]
        held_out: usize,
        /// With --method gptq: each record's scales (and mins) by a search over shrunk ranges
        /// (GPTQ's MSE option) instead of the type's quantizer alone.
        #[arg(long)]
        mse_search: bool,
        /// With --method gptq: fit each record by the type's own rule (llama-quantize's without an
        /// imatrix) instead of ggml's weighted quantizer with the calibration's importance weights
        /// (the default, which also plans the Q4_0/Q5_0 mixes as llama-quantize does with an
        /// imatrix).
        #[arg(long)]
        unweighted: bool,
        /// With --method gptq: GPTQ's Hessian from the activations as they are, instead of each
        /// token's activations scaled to a root mean square of 1 (the default; a few tokens with
        /// huge activations otherwise dominate the layer's output error).
        #[arg(long)]
        plain_hessian: bool,
        /// An importance matrix (llama-imatrix's .gguf or legacy .dat, or `quant imatrix`'s): the
        /// tensors it names are quantized with ggml's weighted quantizers, and the Q4_0/Q5_0 mixes
        /// raise their first ffn_down layers, as llama-quantize --imatrix does.
        #[arg(long, value_name = "FILE")]
        imatrix: Option<PathBuf>,
    },
    /// Compute an importance matrix (llama-imatrix's GGUF format) with the model's own forward
    /// pass: per column, the sum of the squared inputs of every block linear layer over the
    /// calibration tokens.
    Imatrix {
        /// A GGUF file (Llama).
        model: PathBuf,
        /// The calibration text (UTF-8).
        #[arg(long, value_name = "TEXT")]
        calib: PathBuf,
        /// The imatrix file to write.
        #[arg(long, short, value_name = "FILE", default_value = "imatrix.gguf")]
        output: PathBuf,
        /// Calibration samples (consecutive runs of --seq-len tokens from the text's start).
        #[arg(long, default_value_t = 40)]
        samples: usize,
        /// Tokens per calibration sample.
        #[arg(long, default_value_t = 512)]
        seq_len: usize,
        /// No progress bar or summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Perplexity of a model (GGUF, or a Hugging Face folder: plain, GPTQ, AWQ or
    /// compressed-tensors pack-quantized) on a text, scored as llama.cpp's llama-perplexity scores it.
    Eval(eval::EvalArgs),
}

/// `--alpha`: a number from 0 to 1.
fn alpha_in_range(v: &str) -> std::result::Result<f64, String> {
    match v.parse::<f64>() {
        Ok(a) if (0.0..=1.0).contains(&a) => Ok(a),
        _ => Err(format!("{v} is not a number from 0 to 1")),
    }
}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Inspect { model, plan } => inspect::run(&model, plan.mix, plan.rules.as_deref()),
        Command::Imatrix {
            model,
            calib,
            output,
            samples,
            seq_len,
            quiet,
        } => {
            let g = model::GgufFile::open(&model)?;
            let opts = calibrate::CalibOptions {
                text: calib,
                samples,
                seq_len,
                held_out: 0,
                mse_search: false,
                weighted: false,
                default_gptq: false,
                awq: false,
                smooth_alpha: None,
                token_normalized: false,
            };
            let m = imatrix::collect(&g, &opts, quiet)?;
            m.write(&output)?;
            if !quiet {
                eprintln!("{}: {} entries", output.display(), m.entries.len());
            }
            Ok(())
        }
        Command::Eval(args) => eval::run(&args),
        Command::ExportGptq {
            model,
            dir,
            format,
            group_size,
            calib,
        } => write::gptq::run(
            &model,
            &dir,
            if format == "gptq" { 1 } else { 2 },
            group_size,
            calib.options(false).as_ref(),
            calib.quiet,
        ),
        Command::ExportAwq {
            model,
            dir,
            group_size,
            calib,
        } => write::awq::run(
            &model,
            &dir,
            group_size,
            calib.options(true).as_ref(),
            calib.quiet,
        ),
        Command::ExportCompressed {
            model,
            dir,
            kind,
            bits,
            group_size,
            channel,
            tensor,
            symmetric,
        } => match kind {
            WeightType::Int => {
                if tensor {
                    anyhow::bail!(
                        "--tensor needs --type float: pack-quantized folders have groups or \
                         channels"
                    );
                }
                write::compressed::run(
                    &model,
                    &dir,
                    &write::compressed::Compressed {
                        bits: bits.unwrap_or(4),
                        group_size: if channel {
                            0
                        } else {
                            group_size.unwrap_or(128)
                        },
                        symmetric,
                    },
                )
            }
            WeightType::Float => {
                if let Some(b) = bits.filter(|&b| b != 8) {
                    anyhow::bail!("--bits {b}: --type float writes 8-bit FP8 E4M3 codes");
                }
                if group_size.is_some() {
                    anyhow::bail!(
                        "--group-size: --type float takes --channel (the default) or --tensor"
                    );
                }
                write::compressed_fp8::run(
                    &model,
                    &dir,
                    &write::compressed_fp8::Fp8Compressed { per_tensor: tensor },
                )
            }
            WeightType::Fp8Block
            | WeightType::Mxfp4
            | WeightType::Mxfp6
            | WeightType::Mxfp8
            | WeightType::Nvfp4 => {
                // These layouts are fixed: FP8 codes in 128 x 128 blocks, microscaling codes in
                // blocks of 32 or 16.
                let mx = match kind {
                    WeightType::Mxfp4 => Some(write::compressed_mx::MxCompressed::Mxfp4),
                    WeightType::Mxfp6 => Some(write::compressed_mx::MxCompressed::Mxfp6),
                    WeightType::Mxfp8 => Some(write::compressed_mx::MxCompressed::Mxfp8),
                    WeightType::Nvfp4 => Some(write::compressed_mx::MxCompressed::Nvfp4),
                    _ => None,
                };
                for (given, flag) in [
                    (bits.is_some(), "--bits"),
                    (group_size.is_some(), "--group-size"),
                    (channel, "--channel"),
                    (tensor, "--tensor"),
                    (symmetric, "--symmetric"),
                ] {
                    if given {
                        let name = clap::ValueEnum::to_possible_value(&kind)
                            .map(|v| v.get_name().to_owned())
                            .unwrap_or_default();
                        let layout = match mx {
                            Some(f) => f.layout(),
                            None => "E4M3 codes in 128 x 128 blocks".into(),
                        };
                        anyhow::bail!("{flag}: --type {name} has a fixed layout ({layout})");
                    }
                }
                match mx {
                    Some(f) => write::compressed_mx::run(&model, &dir, f),
                    None => write::compressed_fp8_block::run(&model, &dir),
                }
            }
        },
        Command::ExportHf {
            model,
            dir,
            dtype,
            shard_size,
        } => export::run(&model, &dir, dtype, shard_size.saturating_mul(1 << 20)),
        Command::Quantize {
            model,
            out,
            plan,
            threads,
            quiet,
            verbose,
            method,
            alpha,
            calib,
            samples,
            seq_len,
            held_out,
            mse_search,
            unweighted,
            plain_hessian,
            imatrix,
        } => {
            if imatrix.is_some() && (method == "gptq" || calib.is_some()) {
                anyhow::bail!(
                    "--imatrix applies to round-to-nearest without --calib; a calibration (GPTQ) \
                     computes its own importance weights"
                );
            }
            // --calib serves --method gptq and rules that end in `gptq`; quantize::run checks
            // that something uses it.
            let gptq = match (method.as_str(), calib) {
                (m, Some(text)) => Some(calibrate::CalibOptions {
                    text,
                    samples,
                    seq_len,
                    held_out,
                    mse_search,
                    weighted: !unweighted && !mse_search,
                    default_gptq: m == "gptq",
                    awq: m == "awq" || m == "smoothquant",
                    smooth_alpha: (m == "smoothquant").then_some(alpha),
                    token_normalized: !plain_hessian,
                }),
                ("gptq" | "awq" | "smoothquant", None) => {
                    anyhow::bail!("--method {method} needs --calib TEXT")
                }
                _ => None,
            };
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let opts = quantize::Options {
                mix: plan.mix,
                rules: plan.rules,
                threads,
                quiet,
                verbose,
                gptq,
                imatrix,
            };
            let r = quantize::run(&model, &out, &opts)?;
            if !quiet {
                let rewritten = match r.rewritten {
                    0 => String::new(),
                    n => format!(", {n} rewritten with folded scales"),
                };
                eprintln!(
                    "{}: {} tensors ({} quantized{rewritten}, {} copied), {:.2} MiB -> {:.2} MiB \
                     in {:.2} s",
                    out.display(),
                    r.tensors,
                    r.quantized,
                    r.tensors - r.quantized - r.rewritten,
                    r.bytes_in as f64 / 1048576.0,
                    r.bytes_out as f64 / 1048576.0,
                    r.elapsed.as_secs_f64()
                );
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
