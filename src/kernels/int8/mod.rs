//! INT8 symmetric round-to-nearest quantization, per row or per group of columns (see [`Shape`]).
//!
//! For each group: `scale = absmax / 127` (f32) and `q = clamp(round_half_even(x / scale), -127, 127)`;
//! dequantization is `x' = q * scale`. The range is symmetric (-127..=127, never -128).
//! An all-zero group has scale 0 and codes 0, and so has a group whose absmax is so small (at most
//! 63 * 2^-149, about 8.8e-44, deep in the subnormals) that `absmax / 127` rounds to 0: it dequantizes to
//! exact zeros.
//!
//! A group whose absmax is so close to `f32::MAX` that `127 * scale` rounds to infinity would dequantize
//! to infinity: it is `InvalidArgument`, naming the row and group (of the finite floats, only an absmax of
//! exactly `f32::MAX` does that).
//!
//! Every element of a group with a normal scale comes back within half a step: `|x - x'| <= scale / 2`.
//!
//! Layout: `dst[r * cols + c]` is the code of `src[r * cols + c]`; `scales[r * groups_per_row + g]` is the
//! scale of group `g` (columns `g * group_len .. min((g + 1) * group_len, cols)`) of row `r`.
//!
//! [`int8_quantize`] and [`int8_dequantize`] are the fast paths (branch-free chunked loops that the
//! compiler vectorizes); [`int8_quantize_ref`] and [`int8_dequantize_ref`] are the scalar references they
//! are tested against, bit for bit. The quantizers check their arguments before they write anything
//! and the values as they go (on a value error they zero-fill their outputs); the dequantizers check
//! everything before they write anything.
use super::par::{self, Exec};
use super::simd::SimdLevel;
use super::{absmax_bits, absmax_fast, check_finite, check_len, finite_absmax, Shape, ROUND_MAGIC};
use crate::error::{QuantError, Result};

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Largest code magnitude: the range is symmetric, -127..=127.
const QMAX: f32 = 127.0;

/// The length checks of the quantizer's arguments.
fn check_sizes(src: &[f32], shape: Shape, dst: &[i8], scales: &[f32]) -> Result<()> {
    if src.len() != shape.len() {
        return Err(QuantError::ShapeMismatch(format!(
            "src holds {} elements but the shape {} x {} needs {}",
            src.len(),
            shape.rows,
            shape.cols,
            shape.len()
        )));
    }
    check_len("dst", dst.len(), shape.len())?;
    check_len("scales", scales.len(), shape.n_groups())
}

/// The value checks of the quantizer's input (`shape.len()` elements): every value finite, no group
/// whose dequantized absmax overflows. Returns the absmax of the whole input.
fn check_values(src: &[f32], shape: Shape, exec: Exec) -> Result<f32> {
    // One pass gives the largest magnitude, and tells whether every value is finite.
    let absmax = finite_absmax(src, "src", exec)?;
    // 127 * scale rounds to infinity only when absmax is f32::MAX; the scale and 127 * scale grow with
    // absmax (monotonic rounding), so the matrix's absmax tells whether any group needs a look.
    if (absmax / QMAX * QMAX).is_finite() {
        return Ok(absmax);
    }
    let glen = shape.group_len();
    for (r, row) in src.chunks_exact(shape.cols).enumerate() {
        for (g, group) in row.chunks(glen).enumerate() {
            let absmax = absmax_fast(group);
            if !(absmax / QMAX * QMAX).is_finite() {
                return Err(QuantError::invalid(format!(
                    "row {r}, group {g}: absmax {absmax:e} is too close to the largest float: \
                     its dequantized value 127 * scale would overflow to infinity"
                )));
            }
        }
    }
    Ok(absmax)
}

fn check_dequantize_args(src: &[i8], scales: &[f32], shape: Shape, dst: &[f32]) -> Result<()> {
    if src.len() != shape.len() {
        return Err(QuantError::ShapeMismatch(format!(
            "src holds {} codes but the shape {} x {} needs {}",
            src.len(),
            shape.rows,
            shape.cols,
            shape.len()
        )));
    }
    if scales.len() != shape.n_groups() {
        return Err(QuantError::ShapeMismatch(format!(
            "scales holds {} elements but the shape {} x {} with group_size {} has {} groups",
            scales.len(),
            shape.rows,
            shape.cols,
            shape.group_size,
            shape.n_groups()
        )));
    }
    check_len("dst", dst.len(), shape.len())?;
    check_finite(scales, "scales")
}

/// Quantizes `src` (`shape.rows x shape.cols`, row-major) to INT8 symmetric codes, in one pass over
/// `src` (each group is checked just before it is quantized; see [`super::streaming`]).
///
/// `src` must hold exactly `shape.len()` elements (else `ShapeMismatch`); `dst` at least `shape.len()`
/// codes and `scales` at least `shape.n_groups()` elements (else `BufferTooSmall`); only those prefixes
/// are written. These argument errors are found before anything is written. A NaN or infinity in
/// `src` is `NonFinite` naming the first bad index; a group whose dequantized absmax would overflow (an
/// absmax of exactly `f32::MAX`) is `InvalidArgument` naming its row and group. On these value errors
/// `dst[..shape.len()]` and `scales[..shape.n_groups()]` are zero-filled.
pub fn int8_quantize(src: &[f32], shape: Shape, dst: &mut [i8], scales: &mut [f32]) -> Result<()> {
    check_sizes(src, shape, dst, scales)?;
    let exec = Exec::current();
    let cols = shape.cols;
    #[cfg(target_arch = "x86_64")]
    let glen = shape.group_len(); // the one-pass bodies take the group length
    let row_exec = Exec { threads: 1, ..exec };
    super::streaming::symmetric(
        exec.threads_for(shape.len(), shape.rows),
        src,
        shape,
        dst,
        scales,
        // One scale for everything (per tensor): it needs the absmax of every element first.
        |dst, scales| quantize_per_tensor(src, dst, scales, exec),
        |rest, k, dst, scales| match exec.level {
            // The AVX-512 and AVX2 bodies check each group's absmax themselves (a NaN or infinity
            // makes it non-finite; the overflow test is `check_values`'s), without a pass of their own.
            // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => unsafe {
                let accept = |a: f32| (a / QMAX * QMAX).is_finite();
                let stream = shape.len() >= super::STREAM_STORES_MIN;
                x86::avx512::int8_quant_rows(rest, cols, glen, dst, scales, stream, accept)
            },
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => unsafe {
                let accept = |a: f32| (a / QMAX * QMAX).is_finite();
                x86::avx2::int8_quant_rows(rest, cols, glen, dst, scales, accept)
            },
            _ => {
                let rows = Shape { rows: k, ..shape };
                let ok = check_values(&rest[..k * cols], rows, row_exec).is_ok();
                if ok {
                    quantize_rows(exec.level, rest, shape, dst, scales);
                }
                ok
            }
        },
        || check_values(src, shape, exec).map(|_| ()),
    )
}

/// One scale for the single row `src` (checked by the absmax pass), its codes into `dst`; the elements
/// split across threads.
fn quantize_per_tensor(src: &[f32], dst: &mut [i8], scales: &mut [f32], exec: Exec) -> Result<()> {
    let shape = Shape::new(1, src.len(), 0)?;
    let s = check_values(src, shape, exec)? / QMAX;
    scales[0] = s;
    let t = exec.threads_for(src.len(), usize::MAX);
    par::for_elements(t, src.len(), dst, |r, out| {
        quantize_group(exec.level, &src[r], s, out)
    });
    Ok(())
}

/// The codes and scales of the rows that `scales` holds (`scales.len() / groups_per_row` of them,
/// `dst` holding their codes), read from the start of `src`, with the bodies of `level`. `src` may
/// go on past those rows: the AVX-512 and AVX2 bodies prefetch from it.
fn quantize_rows(level: SimdLevel, src: &[f32], shape: Shape, dst: &mut [i8], scales: &mut [f32]) {
    let (cols, gpr, glen) = (shape.cols, shape.groups_per_row(), shape.group_len());
    match level {
        // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => {
            let stream = shape.len() >= super::STREAM_STORES_MIN;
            let accept = |_| true;
            unsafe { x86::avx512::int8_quant_rows(src, cols, glen, dst, scales, stream, accept) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => {
            return {
                unsafe { x86::avx2::int8_quant_rows(src, cols, glen, dst, scales, |_| true) };
            };
        }
        _ => {}
    }
    let rows = src.chunks_exact(cols);
    let out_rows = dst.chunks_exact_mut(cols);
    let scale_rows = scales.chunks_exact_mut(gpr);
    for ((row, out), row_scales) in rows.zip(out_rows).zip(scale_rows) {
        for ((group, out), scale) in row
            .chunks(glen)
            .zip(out.chunks_mut(glen))
            .zip(row_scales.iter_mut())
        {
            let s = f32::from_bits(absmax_bits(level, group)) / QMAX;
            *scale = s;
            quantize_group(level, group, s, out);
        }
    }
}

/// Codes of one group with scale `s`, with the body of `level`.
fn quantize_group(level: SimdLevel, x: &[f32], s: f32, out: &mut [i8]) {
    if s == 0.0 {
        out[..x.len()].fill(0);
        return;
    }
    let done = match level {
        // SAFETY: as in `absmax_bits`.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => {
            unsafe { x86::avx512::int8_quant(x, s, out) };
            x.len()
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { x86::avx2::int8_quant(x, s, out) },
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => unsafe { neon::int8_quant(x, s, out) },
        _ => 0,
    };
    quantize_group_fast(&x[done..], s, &mut out[done..]);
}

/// `out = q * s` for one group, with the body of `level`.
/// `stream`: the whole output is large (see `STREAM_STORES_MIN`).
fn dequantize_group(level: SimdLevel, q: &[i8], s: f32, out: &mut [f32], stream: bool) {
    let _ = stream; // only the x86 bodies have streaming stores
    let done = match level {
        // SAFETY: as in `absmax_bits`.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => {
            unsafe { x86::avx512::int8_dequant(q, s, out, stream) };
            q.len()
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { x86::avx2::int8_dequant(q, s, out, stream) },
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => unsafe { neon::int8_dequant(q, s, out) },
        _ => 0,
    };
    for (o, &q) in out[done..].iter_mut().zip(&q[done..]) {
        *o = f32::from(q) * s;
    }
}

/// Codes of one group with scale `s`: `y = x / s` clamped to [-127, 127], then rounded to even by the
/// magic-number addition; the code is the low byte of the sum's bits (two's complement of the integer).
/// Clamping before rounding gives the same result as rounding before clamping, because the bounds are
/// integers and rounding is monotonic.
pub(crate) fn quantize_group_fast(x: &[f32], s: f32, out: &mut [i8]) {
    if s == 0.0 {
        out.fill(0);
        return;
    }
    for (q, &v) in out.iter_mut().zip(x) {
        let y = v / s;
        let y = if y < -QMAX { -QMAX } else { y };
        let y = if y > QMAX { QMAX } else { y };
        *q = (y + ROUND_MAGIC).to_bits() as u8 as i8;
    }
}

/// Scalar reference of [`int8_quantize`]: the formulas written out, one element at a time, after a
/// check of the whole input (the same errors; on a value error the same zero-filled outputs).
pub fn int8_quantize_ref(
    src: &[f32],
    shape: Shape,
    dst: &mut [i8],
    scales: &mut [f32],
) -> Result<()> {
    check_sizes(src, shape, dst, scales)?;
    if let Err(e) = check_values(src, shape, Exec::current()) {
        dst[..shape.len()].fill(0);
        scales[..shape.n_groups()].fill(0.0);
        return Err(e);
    }
    let glen = shape.group_len();
    let gpr = shape.groups_per_row();
    for r in 0..shape.rows {
        for g in 0..gpr {
            let start = r * shape.cols + g * glen;
            let end = r * shape.cols + ((g + 1) * glen).min(shape.cols);
            let absmax = src[start..end].iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let scale = absmax / QMAX;
            scales[r * gpr + g] = scale;
            for i in start..end {
                dst[i] = if scale == 0.0 {
                    0
                } else {
                    (src[i] / scale).round_ties_even().clamp(-QMAX, QMAX) as i8
                };
            }
        }
    }
    Ok(())
}

/// Dequantizes INT8 codes: `dst[i] = q * scale` of the element's group.
///
/// `src` must hold exactly `shape.len()` codes and `scales` exactly `shape.n_groups()` elements (else
/// `ShapeMismatch`); `dst` at least `shape.len()` elements (else `BufferTooSmall`). A NaN or infinite
/// scale is `NonFinite`. Any code is accepted, -128 included (`-128 * scale`). Nothing is written on error.
pub fn int8_dequantize(src: &[i8], scales: &[f32], shape: Shape, dst: &mut [f32]) -> Result<()> {
    check_dequantize_args(src, scales, shape, dst)?;
    let exec = Exec::current();
    super::dequantize_blocks(exec, shape, true, dst, |b, dst| {
        let (src, scales) = (&src[b.elements], &scales[b.groups]);
        dequantize_rows(exec.level, src, scales, b.shape, dst, b.stream)
    });
    Ok(())
}

/// The values of the rows of `src` (`shape.rows` of them, their scales in `scales`) into `dst`, with
/// the bodies of `level`.
fn dequantize_rows(
    level: SimdLevel,
    src: &[i8],
    scales: &[f32],
    shape: Shape,
    dst: &mut [f32],
    stream: bool,
) {
    let (cols, gpr, glen) = (shape.cols, shape.groups_per_row(), shape.group_len());
    let rows = src.chunks_exact(cols);
    let out_rows = dst.chunks_exact_mut(cols);
    for ((row, out), row_scales) in rows.zip(out_rows).zip(scales.chunks_exact(gpr)) {
        for ((group, out), &s) in row.chunks(glen).zip(out.chunks_mut(glen)).zip(row_scales) {
            dequantize_group(level, group, s, out, stream);
        }
    }
}

/// Scalar reference of [`int8_dequantize`].
pub fn int8_dequantize_ref(
    src: &[i8],
    scales: &[f32],
    shape: Shape,
    dst: &mut [f32],
) -> Result<()> {
    check_dequantize_args(src, scales, shape, dst)?;
    let glen = shape.group_len();
    let gpr = shape.groups_per_row();
    for r in 0..shape.rows {
        for c in 0..shape.cols {
            let i = r * shape.cols + c;
            dst[i] = src[i] as f32 * scales[r * gpr + c / glen];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_rounding_is_ties_to_even() {
        for k in -2540..=2540 {
            let y = k as f32 / 20.0;
            let y = y.clamp(-QMAX, QMAX);
            let fast = (y + ROUND_MAGIC).to_bits() as u8 as i8;
            assert_eq!(fast, y.round_ties_even() as i8, "y = {y}");
        }
    }

    #[test]
    fn a_small_row_and_its_tie() {
        let shape = Shape::new(1, 4, 0).unwrap();
        let mut q = [0i8; 4];
        let mut s = [0f32; 1];
        int8_quantize(&[1.0, -0.5, 0.25, -1.0], shape, &mut q, &mut s).unwrap();
        assert_eq!(q, [127, -64, 32, -127]);
        assert_eq!(s[0], 1.0 / 127.0);
    }
}
