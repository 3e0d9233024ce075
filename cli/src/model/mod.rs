//! Model readers: tensors by name, dtype and shape, mapped from their files.
pub mod dtype;
pub mod gguf;
pub mod hf;
pub mod packed;
pub mod safetensors;

use std::borrow::Cow;
use std::path::Path;

use anyhow::Result;

pub use dtype::{dequantize, f32_in_place, DType};
pub use gguf::{GgufFile, TensorInfo, Value, ValueType};

/// A tensor of a model as the plan sees it: GGUF name, GGUF dims (`dims[0]` the row length), type.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorMeta {
    pub name: String,
    pub dims: Vec<u64>,
    pub dtype: DType,
}

/// What the quantization mixes need to know of a model.
#[derive(Clone, Debug, Default)]
pub struct ModelInfo {
    pub arch: String,
    pub n_layer: usize,
    pub n_expert: usize,
    /// Query heads per KV head in the first layer (llama.cpp's `n_gqa()`; 0 when unknown).
    pub n_gqa: usize,
}

/// A model the tool reads (a GGUF file, a Hugging Face safetensors folder), seen as GGUF: metadata
/// to carry over, tensors with GGUF names, dims and layout.
pub trait Source {
    fn path(&self) -> &Path;
    fn metadata(&self) -> Vec<(String, Value)>;
    fn tensors(&self) -> Vec<TensorMeta>;
    fn info(&self) -> ModelInfo;
    /// The tensor's bytes in its own type, GGUF layout.
    fn raw(&self, name: &str) -> Result<Cow<'_, [u8]>>;
    /// The tensor as f32 into `out` (resized to its element count).
    fn read_f32(&self, name: &str, out: &mut Vec<f32>) -> Result<()>;
    /// The tensor's values where they lie, when it is stored as f32 in the reader's layout: no copy
    /// and no memory of the process's own (the mapped pages belong to the file). `None` otherwise:
    /// use [`read_f32`](Self::read_f32).
    fn f32_in_place(&self, _name: &str) -> Option<&[f32]> {
        None
    }
    /// Done with this tensor: its mapped pages may go.
    fn release(&self, _name: &str) {}
}

/// Opens a model: a GGUF file, or a folder holding config.json and safetensors shard(s).
pub fn open(path: &Path) -> Result<Box<dyn Source>> {
    if path.is_dir() {
        Ok(Box::new(safetensors::SafetensorsDir::open(path)?))
    } else {
        Ok(Box::new(GgufFile::open(path)?))
    }
}

/// A tensor dequantized to f32, row-major, outermost dimension first (a matrix is `[rows, cols]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// Length of the innermost dimension (1 for a scalar).
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Product of every dimension but the innermost.
    pub fn rows(&self) -> usize {
        self.shape.iter().rev().skip(1).product()
    }

    /// Row `r` of a matrix.
    pub fn row(&self, r: usize) -> &[f32] {
        let c = self.cols();
        &self.data[r * c..(r + 1) * c]
    }
}
