//! Model readers: tensors by name, dtype and shape, mapped from their files.
pub mod dtype;
pub mod gguf;

pub use dtype::{dequantize, DType};
pub use gguf::{GgufFile, TensorInfo, Value, ValueType};

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
