//! Model architectures: each one's forward pass over f32 weights named as in GGUF.
pub mod llama;
