//! The `quant` model tool as a library: the binary (`main.rs`), the integration tests and the fuzz
//! targets share these modules.
//!
//! Data flows one way, one module per step (see DESIGN.md of the project):
//! model file(s) -> `model` (tensors by name, mapped) -> `plan` (a rule per tensor, validated before any
//! work) -> quantize each tensor with the library -> `write` (GGUF, safetensors checkpoints);
//! `arch` + `tokenizer` + `eval` run the model's own forward pass for perplexity.
pub mod arch;
pub mod awq;
pub mod calibrate;
pub mod eval;
pub mod export;
pub mod imatrix;
pub mod inspect;
pub mod model;
pub mod packed_calib;
pub mod plan;
pub mod quantize;
pub mod tokenizer;
pub mod write;
