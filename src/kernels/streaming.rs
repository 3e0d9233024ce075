//! The one-pass (streaming) form of the row quantizers: each row is checked just before it is
//! quantized, instead of the whole input before anything is written.
//!
//! The checked quantizers keep API.md's promise that nothing is written on error. For an input larger
//! than the caches that promise costs a second read of the input from memory: the first code may be
//! written only after the last element has been seen (docs/speed.md measures it). The streaming forms
//! (`int8_quantize_streaming`, `int4_quantize_streaming`, `fp8_e4m3_quantize_streaming`) read the
//! input once and give that promise up for the value errors only:
//! - the argument errors (NULL, lengths, shape) are found before anything is written, as always;
//! - on a value error (a NaN or infinity, `NonFinite`; a group whose dequantized range overflows,
//!   `InvalidArgument`) the prefixes of the outputs that a success would have written (codes, scales,
//!   zero points) are zero-filled, never left half written, and the error and its detail are exactly
//!   those of the checked form (the first bad index of the whole input).
//!
//! On success the outputs are bit for bit those of the checked form (tested). A single row (which
//! includes a per-tensor scale, one that depends on every element) is the checked form itself: the
//! one-pass form gains nothing there.
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use super::par;
use crate::error::{QuantError, Result};

/// Runs `quantize(rest, a, b, c)` for every row of a `rows x cols` input on `threads` threads; it
/// checks and quantizes one row (the one `a`, `b`, `c` hold: `sa`, `sb`, `sc` elements) and returns
/// false if the row fails its check (having written any part of it). `rest` is the input from the
/// row to the end of the thread's block, so that a kernel can prefetch the next row while it works
/// on this one. Every thread stops at the first failure; then `a`, `b` and `c` (the prefixes a
/// success writes) are zero-filled and the error is that of `check_all`, the checked form's value
/// check of the whole input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rows<A: Send + Copy + Default, B: Send + Copy + Default, C: Send + Copy + Default>(
    threads: usize,
    cols: usize,
    src: &[f32],
    (a, sa): (&mut [A], usize),
    (b, sb): (&mut [B], usize),
    (c, sc): (&mut [C], usize),
    quantize: impl Fn(&[f32], &mut [A], &mut [B], &mut [C]) -> bool + Sync,
    check_all: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let rows = src.len() / cols;
    let failed = AtomicBool::new(false);
    par::for_rows(
        threads,
        rows,
        (&mut *a, sa),
        (&mut *b, sb),
        (&mut *c, sc),
        |r: Range<usize>, a, b, c| {
            for (k, row) in r.clone().enumerate() {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let ok = quantize(
                    &src[row * cols..r.end * cols],
                    &mut a[k * sa..(k + 1) * sa],
                    &mut b[k * sb..(k + 1) * sb],
                    &mut c[k * sc..(k + 1) * sc],
                );
                if !ok {
                    failed.store(true, Ordering::Relaxed);
                    return;
                }
            }
        },
    );
    if !failed.into_inner() {
        return Ok(());
    }
    a.fill(A::default());
    b.fill(B::default());
    c.fill(C::default());
    check_all()?;
    Err(QuantError::Internal(
        "a row failed its check, and the whole input passed it".into(),
    ))
}
