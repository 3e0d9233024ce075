//! `quant`: takes a whole model through the quant library.
//!
//! Data flows one way, one module per step (see DESIGN.md of the project):
//! model file(s) -> `model` (tensors by name, mapped) -> `plan` (a rule per tensor, validated before any
//! work) -> quantize each tensor with the library -> `write` (GGUF, safetensors checkpoints);
//! `arch` + `tokenizer` + `eval` run the model's own forward pass for perplexity.
use clap::{Parser, Subcommand};

mod model;

#[derive(Parser)]
#[command(name = "quant", version, about = "Quantize a whole model with the quant library")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
