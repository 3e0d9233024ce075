//! `quant`: takes a whole model through the quant library.
//!
//! Data flows one way, one module per step (see DESIGN.md of the project):
//! model file(s) -> `model` (tensors by name, mapped) -> `plan` (a rule per tensor, validated before any
//! work) -> quantize each tensor with the library -> `write` (GGUF, safetensors checkpoints);
//! `arch` + `tokenizer` + `eval` run the model's own forward pass for perplexity.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The tool's modules live in the library crate (lib.rs) so that tests and fuzz targets reach them;
// `crate::model` etc. resolve through these imports in modules declared here.
#[allow(unused_imports)]
use quant_cli::{eval, inspect, model, write};

#[derive(Parser)]
#[command(
    name = "quant",
    version,
    about = "Quantize a whole model with the quant library"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model: architecture, metadata, tensors (name, type, shape), parameters and size.
    Inspect {
        /// A GGUF file.
        model: PathBuf,
    },
    /// Perplexity of a GGUF model on a text, scored as llama.cpp's llama-perplexity scores it.
    Eval(eval::EvalArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Inspect { model } => inspect::run(&model),
        Command::Eval(args) => eval::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
