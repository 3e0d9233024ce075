//! Writers of quantized models: GGUF, then the safetensors checkpoint formats.
pub mod gguf;
