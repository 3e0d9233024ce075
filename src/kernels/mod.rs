//! Allocation-free slice kernels, one file per number format. Each fast kernel keeps its scalar
//! reference (`*_ref`) beside it and the tests hold them to each other.
//!
//! This file holds what every kernel shares: the matrix/group geometry and the input checks. Each
//! kernel validates its arguments before it writes anything; the row quantizers check the values as
//! they go, in one pass, and zero-fill their outputs on a value error (see `streaming.rs`).
use crate::error::{QuantError, Result};

pub mod fp8;
pub mod ggml;
pub mod ggml_k;
pub mod half;
pub mod int4;
pub mod int8;
pub mod kbit;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod par;
pub mod simd;
pub mod source;
pub(crate) mod streaming;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Outputs of at least this many elements are written with non-temporal (streaming) stores where a
/// SIMD level has them (AVX2: every large output; AVX-512: the f32 outputs of the dequantizers and
/// casts): they bypass the caches, so memory no longer reads each output line before it is written.
/// Measured on Zen 3 (AVX2, 64 Mi elements): f32 -> f16 0.80-0.87 of the ceiling loop with ordinary
/// stores, 0.92-1.00 streaming; f16 -> f32 1.3-1.45 of the write-bound loop. On Zen 4 (AVX-512) the
/// INT8 dequantizers went from 0.86-0.95 to 1.18-1.31 of the write-bound loop. Below this size
/// (16 MiB of f32) the output is left in the caches for whoever reads it next.
pub(crate) const STREAM_STORES_MIN: usize = 4 << 20;

/// Orders the non-temporal stores made before it ahead of any later store (they are weakly ordered):
/// a kernel that streamed its output in many short runs calls it once the output is complete.
pub(crate) fn fence_streaming_stores() {
    // SAFETY: `sfence` is SSE, which every x86-64 CPU has; it only orders stores.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_sfence()
    }
}

/// Geometry of a row-major `rows x cols` matrix quantized in groups along its rows.
///
/// `group_size` 0 means one group per row; `k > 0` means groups of `k` consecutive columns of a row
/// (the last group of a row may be shorter; `k >= cols` is the same as one group per row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub rows: usize,
    pub cols: usize,
    pub group_size: usize,
}

impl Shape {
    /// Checks the geometry: both sides non-zero, and the element count (in f32 bytes) addressable.
    pub fn new(rows: usize, cols: usize, group_size: usize) -> Result<Self> {
        if rows == 0 || cols == 0 {
            return Err(QuantError::invalid(format!(
                "matrix is {rows} x {cols}: rows and cols must both be > 0"
            )));
        }
        match rows.checked_mul(cols).and_then(|n| n.checked_mul(4)) {
            Some(bytes) if bytes <= isize::MAX as usize => {}
            _ => {
                return Err(QuantError::invalid(format!(
                    "matrix of {rows} x {cols} elements is larger than any addressable buffer"
                )))
            }
        }
        Ok(Self {
            rows,
            cols,
            group_size,
        })
    }

    /// Number of elements, `rows * cols` (cannot overflow after `new`).
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Always false: a valid shape has at least one element (present for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Length of a full group: `group_size`, or `cols` when it is 0 or larger than a row.
    pub fn group_len(&self) -> usize {
        if self.group_size == 0 || self.group_size > self.cols {
            self.cols
        } else {
            self.group_size
        }
    }

    /// Groups in one row: `ceil(cols / group_len)`.
    pub fn groups_per_row(&self) -> usize {
        self.cols.div_ceil(self.group_len())
    }

    /// Groups in the matrix, i.e. the number of scales (and zero points): `rows * groups_per_row`.
    pub fn n_groups(&self) -> usize {
        self.rows * self.groups_per_row()
    }
}

/// Number of scales for a `rows x cols` matrix with `group_size` (see [`Shape`]); 0 when the shape is
/// invalid (a zero side or an overflowing size).
pub fn scale_count(rows: usize, cols: usize, group_size: usize) -> usize {
    Shape::new(rows, cols, group_size)
        .map(|s| s.n_groups())
        .unwrap_or(0)
}

/// Fails with `BufferTooSmall` when a buffer of `got` elements cannot hold the `need` ones.
pub fn check_len(what: &str, got: usize, need: usize) -> Result<()> {
    if got < need {
        return Err(QuantError::BufferTooSmall {
            what: what.to_string(),
            got,
            need,
            unit: "elements",
        });
    }
    Ok(())
}

/// [`check_len`] for a buffer of packed bytes (INT4 and k-bit codes, GGML blocks), whose length is
/// given in bytes: the error counts bytes.
pub fn check_bytes(what: &str, got: usize, need: usize) -> Result<()> {
    if got < need {
        return Err(QuantError::BufferTooSmall {
            what: what.to_string(),
            got,
            need,
            unit: "bytes",
        });
    }
    Ok(())
}

/// Fails with `NonFinite`, naming the first bad index, when `values` holds a NaN or an infinity.
///
/// The scan is one SIMD pass over `values` (non-finite values are exactly those whose sign-cleared bits
/// are at least those of infinity), on the threads and SIMD level in force (see [`par`], [`simd`]); the
/// index is searched only on failure.
pub fn check_finite(values: &[f32], what: &str) -> Result<()> {
    let exec = par::Exec::current();
    let t = exec.threads_for(values.len(), usize::MAX);
    let absmax = par::reduce(t, values, |c| int8::absmax_bits(exec.level, c), u32::max);
    if f32::from_bits(absmax).is_finite() {
        return Ok(());
    }
    // A branch-free scan of chunks first (vectorizes), then the exact index only on failure.
    const CHUNK: usize = 256;
    for (c, chunk) in values.chunks(CHUNK).enumerate() {
        let all_finite = chunk.iter().fold(true, |ok, x| ok & x.is_finite());
        if !all_finite {
            let (i, &value) = chunk
                .iter()
                .enumerate()
                .find(|(_, x)| !x.is_finite())
                .expect("found");
            return Err(QuantError::NonFinite {
                what: what.to_string(),
                index: c * CHUNK + i,
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_geometry() {
        let s = Shape::new(3, 10, 4).unwrap();
        assert_eq!(
            (s.len(), s.group_len(), s.groups_per_row(), s.n_groups()),
            (30, 4, 3, 9)
        );
        let s = Shape::new(3, 10, 0).unwrap();
        assert_eq!((s.group_len(), s.groups_per_row()), (10, 1));
        assert_eq!(Shape::new(2, 5, 99).unwrap().n_groups(), 2);
        assert!(Shape::new(0, 5, 0).is_err());
        assert!(Shape::new(5, 0, 0).is_err());
        assert!(Shape::new(usize::MAX, 2, 0).is_err());
        assert_eq!(scale_count(4, 300, 128), 12);
        assert_eq!(scale_count(0, 300, 128), 0);
    }

    #[test]
    fn finite_check_names_the_first_bad_index() {
        let mut v = vec![1.0f32; 1000];
        assert!(check_finite(&v, "w").is_ok());
        v[700] = f32::INFINITY;
        v[900] = f32::NAN;
        match check_finite(&v, "w") {
            Err(QuantError::NonFinite { index, .. }) => assert_eq!(index, 700),
            other => panic!("{other:?}"),
        }
    }
}
