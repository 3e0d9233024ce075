//! [`Src`]: a borrowed matrix of f32, f16 or bf16 elements, the input of the kernels' 16-bit source
//! forms ([`super::source`], [`super::ggml`]).
use ::half::{bf16, f16};

use super::Shape;
use crate::error::{try_vec, QuantError, Result};

/// A borrowed row-major source matrix (or vector) of one element type; 16-bit types hold raw bits.
#[derive(Debug, Clone, Copy)]
pub enum Src<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
    Bf16(&'a [u16]),
}

impl<'a> Src<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(s) => s.len(),
            Self::F16(s) | Self::Bf16(s) => s.len(),
        }
    }

    /// True when there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as f32 (exact).
    pub(crate) fn get(&self, i: usize) -> f32 {
        match self {
            Self::F32(s) => s[i],
            Self::F16(s) => f16::from_bits(s[i]).to_f32(),
            Self::Bf16(s) => bf16::from_bits(s[i]).to_f32(),
        }
    }

    /// Elements `start..start + out.len()` converted into `out` (exact).
    pub(crate) fn convert(&self, start: usize, out: &mut [f32]) {
        let end = start + out.len();
        match self {
            Self::F32(s) => out.copy_from_slice(&s[start..end]),
            Self::F16(s) => {
                for (o, &h) in out.iter_mut().zip(&s[start..end]) {
                    *o = f16::from_bits(h).to_f32();
                }
            }
            Self::Bf16(s) => {
                for (o, &h) in out.iter_mut().zip(&s[start..end]) {
                    *o = f32::from_bits(u32::from(h) << 16);
                }
            }
        }
    }

    /// Row `r` of `cols` elements as f32: borrowed for f32, converted into `scratch` otherwise.
    pub(crate) fn row<'s>(&'s self, r: usize, cols: usize, scratch: &'s mut [f32]) -> &'s [f32] {
        match self {
            Self::F32(s) => &s[r * cols..(r + 1) * cols],
            _ => {
                self.convert(r * cols, &mut scratch[..cols]);
                &scratch[..cols]
            }
        }
    }

    /// A scratch row for [`row`](Self::row): empty for f32, `cols` floats otherwise.
    pub(crate) fn scratch(&self, cols: usize) -> Result<Vec<f32>> {
        match self {
            Self::F32(_) => Ok(Vec::new()),
            _ => try_vec(cols, 0f32, "conversion scratch row"),
        }
    }

    /// Fails with `NonFinite`, naming the first index, when an element is NaN or infinite (tested on
    /// the bit patterns for the 16-bit types).
    pub fn check_finite(&self, what: &str) -> Result<()> {
        let bad = match self {
            Self::F32(s) => return super::check_finite(s, what),
            Self::F16(s) => s.iter().position(|&h| h & 0x7C00 == 0x7C00),
            Self::Bf16(s) => s.iter().position(|&h| h & 0x7F80 == 0x7F80),
        };
        match bad {
            None => Ok(()),
            Some(index) => Err(QuantError::NonFinite {
                what: what.to_string(),
                index,
                value: self.get(index),
            }),
        }
    }

    /// Checks that the source holds exactly `shape.len()` elements.
    pub(crate) fn check_shape(&self, shape: Shape) -> Result<()> {
        if self.len() != shape.len() {
            return Err(QuantError::ShapeMismatch(format!(
                "src holds {} elements but the shape {} x {} needs {}",
                self.len(),
                shape.rows,
                shape.cols,
                shape.len()
            )));
        }
        Ok(())
    }

    /// The source as f32: the slice itself for f32, a converted copy otherwise (used only where an
    /// algorithm needs an f32 working copy of the whole matrix anyway).
    pub(crate) fn to_f32_vec(self) -> Result<std::borrow::Cow<'a, [f32]>> {
        match self {
            Self::F32(s) => Ok(std::borrow::Cow::Borrowed(s)),
            other => {
                let mut v = try_vec(other.len(), 0f32, "f32 working copy")?;
                other.convert(0, &mut v);
                Ok(std::borrow::Cow::Owned(v))
            }
        }
    }
}
