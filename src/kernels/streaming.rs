//! The one-pass loop of the row quantizers (INT8, k-bit/INT4, FP8 E4M3): the input is checked as it
//! is quantized (each group just before its codes, or at the portable levels each call's block of
//! rows before it), so that an input larger than the caches is read from memory once.
//!
//! The contract of every row quantizer:
//! - the argument errors (lengths, shape, bit width) are found before anything is written;
//! - on a value error (a NaN or infinity, `NonFinite`; a group whose dequantized range overflows,
//!   `InvalidArgument`) the prefixes of the outputs that a success would have written (codes, scales,
//!   zero points) are zero-filled, never left half written, and the error names the first bad index
//!   of the whole input (or the first bad group, when every value is finite).
//!
//! One scale for a whole single row (per tensor) depends on every element, so that case reads the
//! input twice (the absmax, then the codes); it keeps the same contract ([`zero_on_error`]).
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{par, Shape};
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
/// is that of `check_all`, the value check of the whole input (which names the first bad index).
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

/// `result` of a quantizer whose arguments have all been checked: on an error (a value error) the
/// outputs' prefixes `a`, `b`, `c` are zero-filled, so that an error never leaves them half written
/// and every row quantizer fails the same way.
pub(crate) fn zero_on_error<A: Copy + Default, B: Copy + Default, C: Copy + Default>(
    result: Result<()>,
    a: &mut [A],
    b: &mut [B],
    c: &mut [C],
) -> Result<()> {
    if result.is_err() {
        a.fill(A::default());
        b.fill(B::default());
        c.fill(C::default());
    }
    result
}

/// The one-pass driver of the quantizers with one scale per group and no other parameter (INT8,
/// scaled FP8): `shape` (already checked against the outputs' lengths) quantized from `src` into
/// `dst[..shape.len()]` and `scales[..shape.n_groups()]`. A matrix of one row and one group (one scale
/// for everything, which needs every element first) goes to `per_tensor`, its outputs zero-filled on
/// error; any other to [`rows`], `quantize(rest, k, dst, scales)` quantizing `k` rows, `check_all` the
/// value check of the whole input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn symmetric<C: Send + Copy + Default>(
    threads: usize,
    src: &[f32],
    shape: Shape,
    dst: &mut [C],
    scales: &mut [f32],
    per_tensor: impl FnOnce(&mut [C], &mut [f32]) -> Result<()>,
    quantize: impl Fn(&[f32], usize, &mut [C], &mut [f32]) -> bool + Sync,
    check_all: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let (cols, gpr) = (shape.cols, shape.groups_per_row());
    let (dst, scales) = (&mut dst[..shape.len()], &mut scales[..shape.n_groups()]);
    if shape.rows == 1 && gpr == 1 {
        let result = per_tensor(dst, scales);
        return zero_on_error(result, dst, scales, &mut [0u8; 0]);
    }
    rows(
        threads,
        cols,
        src,
        (dst, cols),
        (scales, gpr),
        (&mut [] as &mut [u8], 0),
        |rest, k, dst, scales, _| quantize(rest, k, dst, scales),
        check_all,
    )
}
