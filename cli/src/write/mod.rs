//! Writers of quantized models: GGUF, then the safetensors checkpoint formats.
pub mod gguf;
pub mod gptq;
pub mod safetensors;
