//! `quant eval`: the perplexity of a model (GGUF, or a Hugging Face folder: plain, GPTQ, AWQ,
//! compressed-tensors pack-quantized) on a text, scored the way llama.cpp's `llama-perplexity`
//! scores it, so that the two figures can be compared directly:
//! - the whole text is tokenized once (with BOS in front if the model asks for it);
//! - it is cut into chunks of the context length (the tail that does not fill one is dropped);
//! - when the model adds BOS, each chunk's first token is replaced by BOS;
//! - only the second half of each chunk is scored: the logits at positions ctx/2 .. ctx-2 against the
//!   next token, so every scored token sees at least ctx/2 tokens of context;
//! - the estimate is exp(mean negative log-likelihood) over all scored tokens, its ± the standard error
//!   of that mean carried through the exponential.
//!
//! One difference is left on purpose: llama-perplexity first turns escape sequences in the text (`\n`,
//! `\t`, `\\`, ...) into the characters they name; the text is scored here as it is. The two agree on
//! texts without backslashes (the evaluation texts have none).
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::arch::llama::{Config, Llama};
use crate::model::packed::HfFolder;
use crate::model::GgufFile;
use crate::tokenizer::{Tokenizer, TokenizerSpec};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model: a GGUF file (general.architecture = llama), or a Hugging Face Llama folder whose
    /// linear layers are plain (f32, f16, bf16), GPTQ or AWQ GEMM 4-bit, or compressed-tensors
    /// pack-quantized (dequantized as the engines do).
    pub model: PathBuf,
    /// A GGUF file whose tokenizer reads the text (default: the model's own: a GGUF file's
    /// metadata, a folder's tokenizer.json). A folder's tokenizer.json has no pre-tokenizer name,
    /// so digits are split as GPT-2 splits them; the source GGUF's tokenizer gives llama.cpp's ids.
    #[arg(long, value_name = "GGUF")]
    pub tokenizer: Option<PathBuf>,
    /// The text to score (UTF-8).
    #[arg(long)]
    pub text: PathBuf,
    /// Context length: tokens per chunk.
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Score at most this many chunks (default: all that the text fills).
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Read only the first B bytes of the text (cut back to a character boundary).
    #[arg(long)]
    pub max_bytes: Option<usize>,
    /// Round every block linear layer's input to INT8 per token before its product (symmetric,
    /// scale max|x| / 127): the perplexity of an engine that runs the file's weights with dynamic
    /// per-token INT8 activations (W8A8), what SmoothQuant's smoothing is for.
    #[arg(long)]
    pub act_int8: bool,
    /// No progress bar and no timings on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// The result as one JSON object on stdout (model, text, ctx, chunks, scored, ppl, ppl_err,
    /// tokens_per_sec) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The result of a perplexity run.
#[derive(Debug, Clone)]
pub struct Perplexity {
    pub ppl: f64,
    /// One standard error of `ppl`.
    pub err: f64,
    pub chunks: usize,
    /// Tokens whose likelihood was scored.
    pub scored: usize,
    /// Tokens that went through the forward pass, per second of forward pass and scoring.
    pub tokens_per_sec: f64,
}

/// The model to score: a GGUF file, or a Hugging Face folder.
enum Model {
    Gguf(GgufFile),
    Folder(HfFolder),
}

impl Model {
    fn open(path: &Path) -> Result<Model> {
        Ok(if path.is_dir() {
            Model::Folder(HfFolder::open(path)?)
        } else {
            Model::Gguf(GgufFile::open(path)?)
        })
    }

    fn tokenizer(&self) -> Result<Tokenizer> {
        match self {
            Model::Gguf(g) => tokenizer(g),
            Model::Folder(f) => {
                let meta = f.tokenizer_metadata()?.with_context(|| {
                    format!(
                        "{}: no tokenizer.json; name a GGUF file whose tokenizer reads the text \
                         with --tokenizer",
                        f.path().display()
                    )
                })?;
                tokenizer_from_metadata(&meta)
                    .with_context(|| format!("{}: tokenizer.json", f.path().display()))
            }
        }
    }

    fn llama(&self) -> Result<Llama> {
        match self {
            Model::Gguf(g) => llama(g),
            Model::Folder(f) => folder_llama(f),
        }
    }
}

/// The Llama forward pass over a Hugging Face folder's weights (packed layers dequantized).
pub fn folder_llama(f: &HfFolder) -> Result<Llama> {
    Llama::load(f.llama_config(), |t| f.tensor(t))
        .with_context(|| format!("{}: weights", f.path().display()))
}

/// The tokenizer that GGUF-style `tokenizer.ggml.*` keys describe.
fn tokenizer_from_metadata(meta: &[(String, crate::model::Value)]) -> Result<Tokenizer> {
    let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let strings = |k: &str| -> Result<Vec<String>> {
        get(k)
            .and_then(|v| v.as_array())
            .and_then(|a| {
                a.iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .with_context(|| format!("{k} is missing or not an array of strings"))
    };
    let (tokens, merges) = (
        strings("tokenizer.ggml.tokens")?,
        strings("tokenizer.ggml.merges")?,
    );
    Tokenizer::new(&TokenizerSpec {
        model: get("tokenizer.ggml.model")
            .and_then(|v| v.as_str())
            .context("tokenizer.ggml.model is missing")?,
        pre: get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default"),
        tokens: &tokens,
        merges: &merges,
        bos: get("tokenizer.ggml.bos_token_id")
            .and_then(|v| v.as_u64())
            .and_then(|b| u32::try_from(b).ok()),
        add_bos: get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    })
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let m = Model::open(&args.model)?;
    let tokenizer = match &args.tokenizer {
        Some(p) => tokenizer(&GgufFile::open(p)?)?,
        None => m.tokenizer()?,
    };
    let mut bytes =
        std::fs::read(&args.text).with_context(|| format!("reading {}", args.text.display()))?;
    if let Some(max) = args.max_bytes {
        bytes.truncate(max);
        // A cut inside a multi-byte character drops that character's first bytes.
        while std::str::from_utf8(&bytes).is_err_and(|e| e.error_len().is_none()) {
            bytes.pop();
        }
    }
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8", args.text.display()))?;
    let t0 = Instant::now();
    let tokens = tokenizer.encode(&text)?;
    let note = |msg: String| {
        if !args.quiet {
            eprintln!("{msg}");
        }
    };
    note(format!(
        "eval: {} bytes -> {} tokens in {:.2} s",
        text.len(),
        tokens.len(),
        t0.elapsed().as_secs_f64()
    ));
    // A text too short fails before the weights are read.
    chunk_count(tokens.len(), args.ctx, args.chunks)?;
    let t1 = Instant::now();
    let mut model = m.llama()?;
    model.set_activation_int8(args.act_int8);
    note(format!(
        "eval: weights dequantized in {:.1} s",
        t1.elapsed().as_secs_f64()
    ));
    let bos = if tokenizer.adds_bos() {
        tokenizer.bos()
    } else {
        None
    };
    let r = perplexity(&model, &tokens, args.ctx, args.chunks, bos, args.quiet)?;
    if args.json {
        let j = serde_json::json!({
            "model": args.model.display().to_string(),
            "text": args.text.display().to_string(),
            "ctx": args.ctx,
            "chunks": r.chunks,
            "scored": r.scored,
            "ppl": r.ppl,
            "ppl_err": r.err,
            "tokens_per_sec": r.tokens_per_sec,
        });
        println!("{j}");
        return Ok(());
    }
    println!(
        "{}: ctx {}, {} chunks, {} tokens scored: PPL = {:.4} +/- {:.5}",
        args.model.display(),
        args.ctx,
        r.chunks,
        r.scored,
        r.ppl,
        r.err
    );
    println!("Final estimate: PPL = {:.4} +/- {:.5}", r.ppl, r.err);
    note(format!("eval: {:.1} tokens/s", r.tokens_per_sec));
    Ok(())
}

/// How many chunks of `ctx` tokens are scored, or why none can be.
fn chunk_count(n_tokens: usize, ctx: usize, chunks: Option<usize>) -> Result<usize> {
    if ctx < 4 {
        bail!("eval: a context of {ctx} tokens is too short to score");
    }
    if n_tokens < 2 * ctx {
        bail!(
            "eval: the text is {n_tokens} tokens; a context of {ctx} needs at least {} (llama-perplexity's rule)",
            2 * ctx
        );
    }
    match chunks.map_or(n_tokens / ctx, |c| c.min(n_tokens / ctx)) {
        0 => bail!("eval: --chunks 0 scores nothing"),
        n => Ok(n),
    }
}

/// Scores `tokens` in chunks of `ctx` (see the module's doc); `bos`: the token that replaces each
/// chunk's first one, when the model adds BOS.
pub fn perplexity(
    model: &Llama,
    tokens: &[u32],
    ctx: usize,
    chunks: Option<usize>,
    bos: Option<u32>,
    quiet: bool,
) -> Result<Perplexity> {
    let n_chunk = chunk_count(tokens.len(), ctx, chunks)?;
    let first = ctx / 2;
    let n_vocab = model.config().n_vocab;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(n_chunk as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("eval {bar:30} {pos}/{len} chunks {per_sec} ETA {eta} {msg}")
            .expect("static template"),
    );
    let (mut nll, mut nll2, mut count) = (0f64, 0f64, 0usize);
    let start = Instant::now();
    for i in 0..n_chunk {
        let mut chunk = tokens[i * ctx..(i + 1) * ctx].to_vec();
        if let Some(b) = bos {
            chunk[0] = b;
        }
        let logits = model.forward(&chunk, first)?;
        for (j, row) in logits
            .chunks_exact(n_vocab)
            .take(ctx - 1 - first)
            .enumerate()
        {
            let v = -log_softmax(row, chunk[first + j + 1] as usize);
            nll += v;
            nll2 += v * v;
        }
        count += ctx - 1 - first;
        bar.inc(1);
        bar.set_message(format!("PPL {:.4}", (nll / count as f64).exp()));
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let mean = nll / count as f64;
    let ppl = mean.exp();
    let var = nll2 / count as f64 - mean * mean;
    let err = if var > 0.0 && count > 1 {
        (var / (count - 1) as f64).sqrt() * ppl
    } else {
        0.0
    };
    Ok(Perplexity {
        ppl,
        err,
        chunks: n_chunk,
        scored: count,
        tokens_per_sec: (n_chunk * ctx) as f64 / secs,
    })
}

/// log p(tok) under softmax(logits), in f64.
fn log_softmax(logits: &[f32], tok: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let sum: f64 = logits.iter().map(|&x| ((x - max) as f64).exp()).sum();
    (logits[tok] - max) as f64 - sum.ln()
}

/// The model's forward pass and tokenizer, from a GGUF file.
pub fn load(path: &Path) -> Result<(Llama, Tokenizer)> {
    let g = GgufFile::open(path)?;
    Ok((llama(&g)?, tokenizer(&g)?))
}

/// Typed metadata look-ups whose errors name the file and the key.
struct Meta<'a>(&'a GgufFile);

impl Meta<'_> {
    fn get(&self, k: &str) -> Result<&crate::model::Value> {
        self.0
            .get(k)
            .with_context(|| format!("{}: metadata {k} is missing", self.0.path().display()))
    }
    fn uint(&self, k: &str) -> Result<usize> {
        let v = self.get(k)?;
        v.as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .with_context(|| {
                format!(
                    "{}: metadata {k} is {v}, not an unsigned integer",
                    self.0.path().display()
                )
            })
    }
    fn uint_or(&self, k: &str, default: usize) -> Result<usize> {
        if self.0.get(k).is_some() {
            self.uint(k)
        } else {
            Ok(default)
        }
    }
    fn float(&self, k: &str) -> Result<f32> {
        let v = self.get(k)?;
        v.as_f64().map(|v| v as f32).with_context(|| {
            format!(
                "{}: metadata {k} is {v}, not a number",
                self.0.path().display()
            )
        })
    }
    fn float_or(&self, k: &str, default: f32) -> Result<f32> {
        if self.0.get(k).is_some() {
            self.float(k)
        } else {
            Ok(default)
        }
    }
    fn string(&self, k: &str) -> Result<&str> {
        let v = self.get(k)?;
        v.as_str().with_context(|| {
            format!(
                "{}: metadata {k} is {v}, not a string",
                self.0.path().display()
            )
        })
    }
    fn strings(&self, k: &str) -> Result<Vec<String>> {
        self.get(k)?
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .with_context(|| {
                format!(
                    "{}: metadata {k} is not an array of strings",
                    self.0.path().display()
                )
            })
    }
}

/// The tokenizer that the file's `tokenizer.ggml.*` metadata describes.
pub fn tokenizer(g: &GgufFile) -> Result<Tokenizer> {
    let m = Meta(g);
    let tokens = m.strings("tokenizer.ggml.tokens")?;
    let merges = m.strings("tokenizer.ggml.merges")?;
    Tokenizer::new(&TokenizerSpec {
        model: m.string("tokenizer.ggml.model")?,
        pre: if g.get("tokenizer.ggml.pre").is_some() {
            m.string("tokenizer.ggml.pre")?
        } else {
            "default"
        },
        tokens: &tokens,
        merges: &merges,
        bos: m
            .uint("tokenizer.ggml.bos_token_id")
            .ok()
            .and_then(|b| u32::try_from(b).ok()),
        // Without the key, llama.cpp adds no BOS for the BPE pre-tokenizers that Tokenizer accepts.
        add_bos: g
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    })
    .with_context(|| format!("{}: tokenizer", g.path().display()))
}

/// The Llama forward pass over the file's weights, dequantized to f32.
pub fn llama(g: &GgufFile) -> Result<Llama> {
    let m = Meta(g);
    let name = g.path().display();
    let arch = m.string("general.architecture")?;
    if arch != "llama" {
        bail!("{name}: general.architecture is '{arch}'; eval runs llama only");
    }
    let n_embd = m.uint("llama.embedding_length")?;
    let n_head = m.uint("llama.attention.head_count")?;
    let n_vocab = match g.get("llama.vocab_size") {
        Some(_) => m.uint("llama.vocab_size")?,
        None => m
            .get("tokenizer.ggml.tokens")?
            .as_array()
            .map_or(0, |a| a.len()),
    };
    let cfg = Config {
        n_layer: m.uint("llama.block_count")?,
        n_embd,
        n_ff: m.uint("llama.feed_forward_length")?,
        n_head,
        n_head_kv: m.uint_or("llama.attention.head_count_kv", n_head)?,
        rope_dims: m.uint_or("llama.rope.dimension_count", n_embd / n_head.max(1))?,
        // llama.cpp's default base when the file has none.
        rope_base: m.float_or("llama.rope.freq_base", 10000.0)?,
        rms_eps: m.float("llama.attention.layer_norm_rms_epsilon")?,
        n_vocab,
    };
    Llama::load(cfg, |t| match g.tensor(t) {
        None => Ok(None),
        Some(_) => g.tensor_f32(t).map(Some),
    })
    .with_context(|| format!("{name}: weights"))
}
