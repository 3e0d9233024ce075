//! Allocation-free slice kernels, one folder per number format. Each format's folder holds its
//! portable kernels with their scalar references (`*_ref`, which the tests hold the fast paths to, bit
//! for bit), the dispatch to a SIMD level, and its SIMD bodies (`x86.rs`: AVX2 and AVX-512; `neon.rs`):
//! - [`int8`]: symmetric INT8;
//! - [`fp8`]: the FP8 E4M3/E5M2 casts and the scaled FP8 E4M3 quantizer;
//! - [`kbit`]: asymmetric 1- to 8-bit codes, and INT4 ([`int4`], its 4-bit case, with SIMD bodies);
//! - [`half`]: the f16 and bf16 casts;
//! - [`ggml`]: ggml's block formats (Q4_0 to Q8_0, the K-quants Q2_K to Q6_K);
//! - [`nf4`]: bitsandbytes' 4-bit NF4 and FP4.
//! - [`mx`]: the OCP Microscaling formats (MXFP8, MXFP6, MXFP4, MXINT8) and NVFP4.
//!
//! What every format shares sits here, below them: this file (the matrix/group geometry, the input
//! checks, the absmax pass and the dequantizers' thread driver), [`simd`] (the SIMD level), [`par`]
//! (threads), `streaming.rs` (the one-pass drivers of the row quantizers), `x86.rs` and `neon.rs`
//! (the software-pipelined loop, the streaming stores and the SIMD reductions that several formats
//! use), `minifloat.rs` (the reference encoder of small binary floats) and `elements.rs`
//! ([`source::Src`], an f32/f16/bf16 input). [`source`] (the 16-bit source forms of the INT8, FP8
//! and k-bit quantizers) sits above the formats and calls them.
//!
//! The rule that keeps the imports acyclic: no import runs upward. The shared files use nothing of a
//! format folder (this file only declares them and re-exports `kbit::int4` as [`int4`]); a format
//! folder uses the shared files and no other format (its `x86.rs` and `neon.rs` use their own
//! `mod.rs` and the shared files); only [`source`] uses several formats. Checked with
//! `grep -n "int8::\|fp8::\|kbit::\|half::\|ggml::\|mx::\|source::" src/kernels/*.rs` (only
//! `source.rs` and the module declarations match) and, for each format folder, the same grep without
//! its own name (nothing matches).
//!
//! Each kernel validates its arguments before it writes anything; the row quantizers check the values
//! as they go, in one pass, and zero-fill their outputs on a value error (see `streaming.rs`).
use crate::error::{QuantError, Result};
use par::Exec;
use simd::SimdLevel;

mod elements;
pub mod fp8;
pub mod ggml;
pub mod half;
pub mod int8;
pub mod kbit;
mod minifloat;
pub mod mx;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod nf4;
pub mod par;
pub mod simd;
pub mod source;
pub(crate) mod streaming;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use kbit::int4;

/// Outputs of at least this many elements are written with non-temporal (streaming) stores where a
/// SIMD level has them (AVX2: every large output; AVX-512: the f32 outputs of the dequantizers and
/// casts): they bypass the caches, so memory no longer reads each output line before it is written.
/// Measured on Zen 3 (AVX2, 64 Mi elements): f32 -> f16 0.80-0.87 of the ceiling loop with ordinary
/// stores, 0.92-1.00 streaming; f16 -> f32 1.3-1.45 of the write-bound loop. On Zen 4 (AVX-512) the
/// INT8 dequantizers run at 1.18-1.31 of the write-bound loop streaming, 0.86-0.95 without. Below this size
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

/// One thread's part of a dequantizer's output, from [`dequantize_blocks`].
pub(crate) struct Block {
    /// The rows of the matrix it covers.
    pub(crate) rows: std::ops::Range<usize>,
    /// Its geometry: those rows, or a piece of the single row of a matrix with one group (then a row
    /// of its own, with one group).
    pub(crate) shape: Shape,
    /// Its elements in the matrix (`shape.len()` of them).
    pub(crate) elements: std::ops::Range<usize>,
    /// Its groups in the matrix (the indices of their scales).
    pub(crate) groups: std::ops::Range<usize>,
    /// The whole output is large: its stores may be streamed (see [`STREAM_STORES_MIN`]).
    pub(crate) stream: bool,
}

/// The thread driver of the dequantizers: runs `f(block, out)` over contiguous blocks of the rows of
/// `dst` (`out` the block's part of it) on the threads of `exec`, and fences each block's streamed
/// stores after it. With `split_row`, a matrix of one row and one group (one scale for everything)
/// is split by elements instead, each piece a [`Block`] of one row.
pub(crate) fn dequantize_blocks(
    exec: Exec,
    shape: Shape,
    split_row: bool,
    dst: &mut [f32],
    f: impl Fn(Block, &mut [f32]) + Sync,
) {
    let stream = shape.len() >= STREAM_STORES_MIN;
    let run = |block: Block, out: &mut [f32]| {
        f(block, out);
        if stream {
            fence_streaming_stores();
        }
    };
    let (cols, gpr) = (shape.cols, shape.groups_per_row());
    if split_row && shape.rows == 1 && gpr == 1 {
        let t = exec.threads_for(cols, usize::MAX);
        par::for_elements(t, cols, dst, |r, out| {
            let shape = Shape {
                rows: 1,
                cols: r.len(),
                group_size: 0,
            };
            let (rows, groups) = (0..1, 0..1);
            run(
                Block {
                    rows,
                    shape,
                    elements: r,
                    groups,
                    stream,
                },
                out,
            )
        });
        return;
    }
    let t = exec.threads_for(shape.len(), shape.rows);
    let none = || (&mut [] as &mut [u8], 0);
    par::for_rows(
        t,
        shape.rows,
        (dst, cols),
        none(),
        none(),
        |r, out, _, _| {
            let block = Block {
                shape: Shape {
                    rows: r.len(),
                    ..shape
                },
                elements: r.start * cols..r.end * cols,
                groups: r.start * gpr..r.end * gpr,
                rows: r,
                stream,
            };
            run(block, out)
        },
    );
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
    let absmax = par::reduce(t, values, |c| absmax_bits(exec.level, c), u32::max);
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

/// `1.5 * 2^23`: for `|y| < 2^22`, `y + MAGIC` rounds `y` to the nearest integer, ties to even (the
/// default IEEE rounding of the addition), and that integer sits in the low mantissa bits of the sum.
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;

/// Lane count of the chunked loops (a multiple of every SIMD width the compiler may use).
const LANES: usize = 8;

/// The largest magnitude in `values`, or `NonFinite` naming the first NaN or infinity: non-finite values
/// are exactly those whose sign-cleared bits are at least those of infinity, so the one vectorized
/// absmax pass checks both (on `exec`'s threads and SIMD level), and the index is searched only on
/// failure.
pub(crate) fn finite_absmax(values: &[f32], what: &str, exec: Exec) -> Result<f32> {
    let t = exec.threads_for(values.len(), usize::MAX);
    let absmax = par::reduce(t, values, |c| absmax_bits(exec.level, c), u32::max);
    let absmax = f32::from_bits(absmax);
    if absmax.is_finite() {
        return Ok(absmax);
    }
    check_finite(values, what)?;
    Err(QuantError::Internal(format!(
        "{what}: a non-finite magnitude without a non-finite value"
    )))
}

/// The largest sign-cleared bit pattern of `x`, with the body of `level`.
pub(crate) fn absmax_bits(level: SimdLevel, x: &[f32]) -> u32 {
    match level {
        // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { x86::avx512::absmax_bits(x) },
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { x86::avx2::absmax_bits(x) },
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => unsafe { neon::absmax_bits(x) },
        _ => absmax_fast(x).to_bits(),
    }
}

/// Absolute maximum: the maximum of the sign-cleared bit patterns, which order like the magnitudes they
/// encode (infinity above every finite value, NaN above infinity). An integer reduction over 8 lanes,
/// so it vectorizes.
pub(crate) fn absmax_fast(x: &[f32]) -> f32 {
    let mut acc = [0u32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i].to_bits() & 0x7fff_ffff);
        }
    }
    let mut m = acc.iter().copied().max().unwrap_or(0);
    for v in chunks.remainder() {
        m = m.max(v.to_bits() & 0x7fff_ffff);
    }
    f32::from_bits(m)
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
