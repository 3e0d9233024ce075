//! Writers of quantized models: GGUF, then the safetensors checkpoint formats (one folder writer,
//! `checkpoint`, and a packer per format).
pub mod awq;
pub mod checkpoint;
pub mod compressed;
pub mod gguf;
pub mod gptq;
pub mod safetensors;
