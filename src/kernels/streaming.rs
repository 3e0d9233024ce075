//! The one-pass (streaming) form of the row quantizers: the input is checked as it is quantized (each
//! group just before its codes, or at the portable levels each call's block of rows before it), instead
//! of the whole input before anything is written.
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

/// Rows handed to one call of the kernel in [`rows`]: enough for its software pipeline to run from one
/// row into the next (AVX2), few enough that the other threads stop soon after a failure.
const CALL_ELEMENTS: usize = 16 * 1024;

/// Runs `quantize(rest, k, a, b, c)` over a `rows x cols` input on `threads` threads, a few rows at a
/// time (about [`CALL_ELEMENTS`] elements): it checks and quantizes the `k` rows that `a`, `b`, `c`
/// hold (`sa`, `sb`, `sc` elements a row) and returns false if one fails its check (having written
/// any part of them). `rest` is the input from the first of them to the end of the thread's block,
/// so that a kernel can prefetch the next rows while it works on these. Every thread stops at the
/// first failure; then `a`, `b` and `c` (the prefixes a success writes) are zero-filled and the error
/// is that of `check_all`, the checked form's value check of the whole input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rows<A: Send + Copy + Default, B: Send + Copy + Default, C: Send + Copy + Default>(
    threads: usize,
    cols: usize,
    src: &[f32],
    (a, sa): (&mut [A], usize),
    (b, sb): (&mut [B], usize),
    (c, sc): (&mut [C], usize),
    quantize: impl Fn(&[f32], usize, &mut [A], &mut [B], &mut [C]) -> bool + Sync,
    check_all: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let rows = src.len() / cols;
    let per_call = (CALL_ELEMENTS / cols).max(1);
    let failed = AtomicBool::new(false);
    par::for_rows(
        threads,
        rows,
        (&mut *a, sa),
        (&mut *b, sb),
        (&mut *c, sc),
        |r: Range<usize>, a, b, c| {
            for first in r.clone().step_by(per_call) {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let (k0, k) = (first - r.start, per_call.min(r.end - first));
                let ok = quantize(
                    &src[first * cols..r.end * cols],
                    k,
                    &mut a[k0 * sa..(k0 + k) * sa],
                    &mut b[k0 * sb..(k0 + k) * sb],
                    &mut c[k0 * sc..(k0 + k) * sc],
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
