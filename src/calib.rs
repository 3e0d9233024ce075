//! Activation statistics for one layer input of width `cols` (the calibration work fills this in; this
//! minimal version fixes the names other modules use: `Calibration::new`, `cols`, `tokens`).
use crate::error::{QuantError, Result};

/// Statistics of the activations that flow into one layer input.
#[derive(Debug, Clone)]
pub struct Calibration {
    cols: usize,
    tokens: u64,
}

impl Calibration {
    /// An empty calibration for inputs of width `cols` (> 0).
    pub fn new(cols: usize) -> Result<Self> {
        if cols == 0 {
            return Err(QuantError::invalid("calibration width cols must be > 0"));
        }
        Ok(Self { cols, tokens: 0 })
    }

    /// Width of the layer input.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of tokens added so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }
}
