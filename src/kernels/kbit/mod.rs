//! Asymmetric b-bit round-to-nearest quantization, b in 1..=8, with the GPTQ/AWQ integer zero point.
//!
//! Per group (see [`Shape`]), with `maxq = 2^b - 1`:
//! - `lo = min(min x, 0)`, `hi = max(max x, 0)` (so that 0 is always exactly representable),
//! - `scale = (hi - lo) / maxq`, `zero = clamp(round_half_even(-lo / scale), 0, maxq)`,
//! - `q = clamp(round_half_even(x / scale) + zero, 0, maxq)`, `x' = (q - zero) * scale`.
//!
//! An all-zero group (`hi == lo`) has scale 0 and zero 0, and all its codes are 0: it dequantizes to
//! exact zeros. So does a group whose range is so small (a few subnormals) that `(hi - lo) / maxq`
//! rounds to 0. A group whose range overflows f32 (`hi - lo` infinite, e.g. -3e38 and 3e38 in one group)
//! cannot be represented and is `InvalidArgument`; so is a group one of whose dequantized values would
//! round to infinity (possible only for magnitudes within a few ulps of `f32::MAX`, e.g. a group
//! [0, f32::MAX] at 5 or 7 bits). Every element of any other group with a normal scale
//! comes back within one step: `|x - x'| <= scale` (half a step of rounding, plus the rounding of the zero
//! point).
//!
//! Packed codes: each row starts on a byte and takes
//! [`packed_row_bytes`]`(cols, b) = ceil(cols * b / 8)` bytes; element `j` of a row takes bits
//! `[j*b, (j+1)*b)` of the row's bit string, least significant bit first (b = 4: the even column in the
//! low nibble; b = 3: element 2 spans bits 6..9, the top two bits of byte 0 and the lowest of byte 1).
//! Unused high bits of a row's last byte are 0. Scales (f32) and zero points (u8) are stored one per group,
//! `[r * groups_per_row + g]`.
//!
//! The fast paths process a row in chunks of 64 columns (8 codes of b bits are exactly b bytes, so a chunk
//! always ends on a byte), with a kernel monomorphized per bit width; the `*_ref` functions are the scalar
//! references they are tested against, bit for bit.
use super::par::Exec;
use super::simd::SimdLevel;
use super::{check_bytes, check_finite, check_len, finite_absmax, Shape, ROUND_MAGIC};
use crate::error::{QuantError, Result};
use pack::{pack_fixed, unpack_fixed};
pub use pack::{pack_row, pack_row_ref, unpack_row, unpack_row_ref};

pub mod int4;
#[cfg(target_arch = "aarch64")]
mod neon;
mod pack;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Columns per chunk of the fast paths: a multiple of 8, so that a chunk's codes fill whole bytes.
const CHUNK: usize = 64;

/// Lane count of the min/max reductions.
const LANES: usize = 8;

/// `(scale, zero)` of a group whose minimum is `min` and maximum is `max`, for `bits`-bit codes:
/// `lo = min(min, 0)`, `hi = max(max, 0)`, `maxq = 2^bits - 1`, `scale = (hi - lo) / maxq`,
/// `zero = clamp(round_half_even(-lo / scale), 0, maxq)` (an integral f32, never -0.0).
/// When `hi == lo` (an all-zero group), or the range is so small that `scale` rounds to 0, the result is
/// `(0.0, 0.0)`. `bits` is expected in 1..=8 (checked in debug builds) and `min`, `max` finite; a range
/// that overflows f32 gives an infinite scale (the kernels reject such groups before calling this).
pub fn asym_params(min: f32, max: f32, bits: u32) -> (f32, f32) {
    debug_assert!((1..=8).contains(&bits), "asym_params: bits is {bits}");
    let maxq = maxq_of(bits) as f32;
    let lo = if min < 0.0 { min } else { 0.0 };
    let hi = if max > 0.0 { max } else { 0.0 };
    if hi == lo {
        return (0.0, 0.0);
    }
    let scale = (hi - lo) / maxq;
    if scale == 0.0 {
        return (0.0, 0.0);
    }
    let z = (-lo / scale).round_ties_even();
    // Written out (not `clamp`) so that -0.0 becomes +0.0.
    let zero = if z > 0.0 { z.min(maxq) } else { 0.0 };
    (scale, zero)
}

/// `2^bits - 1`, for bits in 1..=8 (larger widths saturate at 255).
fn maxq_of(bits: u32) -> u32 {
    (1u32 << bits.min(8)) - 1
}

/// Code of one value: `clamp(round_half_even(x / scale) + zero, 0, maxq)`; with `scale == 0` the code is
/// `zero`. `maxq` is expected at most 255 (the result saturates to 255 otherwise); `x` is expected finite.
pub fn quantize_code(x: f32, scale: f32, zero: f32, maxq: u32) -> u8 {
    if scale == 0.0 {
        return zero.clamp(0.0, maxq as f32) as u8;
    }
    ((x / scale).round_ties_even() + zero).clamp(0.0, maxq as f32) as u8
}

/// Value of one code: `(q - zero) * scale`.
pub fn dequantize_code(q: u8, scale: f32, zero: f32) -> f32 {
    (f32::from(q) - zero) * scale
}

/// Bytes of one packed row of `cols` codes of `bits` bits: `ceil(cols * bits / 8)` (computed without
/// overflow for any `cols`; `bits` is expected in 1..=8).
pub fn packed_row_bytes(cols: usize, bits: u32) -> usize {
    let b = bits as usize;
    (cols / 8) * b + ((cols % 8) * b).div_ceil(8)
}

/// Bytes of a packed `rows x cols` matrix of `bits`-bit codes (`rows * packed_row_bytes(cols, bits)`),
/// or 0 when the shape is invalid (a zero side, an overflow) or `bits` is not in 1..=8.
pub fn kbit_packed_size(rows: usize, cols: usize, bits: u32) -> usize {
    if !(1..=8).contains(&bits) {
        return 0;
    }
    Shape::new(rows, cols, 0)
        .map(|s| s.rows * packed_row_bytes(s.cols, bits))
        .unwrap_or(0)
}

fn check_bits(bits: u32) -> Result<()> {
    if !(1..=8).contains(&bits) {
        return Err(QuantError::invalid(format!(
            "bits is {bits}: it must be in 1..=8"
        )));
    }
    Ok(())
}

/// Minimum and maximum of finite values, folded with 0 (the `lo` and `hi` of [`asym_params`]), over 8
/// lanes of compare-and-select so that it vectorizes. Starting from +0.0 and replacing only on a strict
/// comparison, the result never depends on the order of the elements.
fn lo_hi_fast(x: &[f32]) -> (f32, f32) {
    let mut lo = [0.0f32; LANES];
    let mut hi = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    let (mut l, mut h) = (0.0f32, 0.0f32);
    for (&a, &b) in lo.iter().zip(&hi) {
        l = if a < l { a } else { l };
        h = if b > h { b } else { h };
    }
    for &v in chunks.remainder() {
        l = if v < l { v } else { l };
        h = if v > h { v } else { h };
    }
    (l, h)
}

/// The argument checks of the quantizer: bit width and lengths.
fn check_sizes(
    src: &[f32],
    shape: Shape,
    bits: u32,
    dst: &[u8],
    scales: &[f32],
    zeros: &[u8],
) -> Result<()> {
    check_bits(bits)?;
    if src.len() != shape.len() {
        return Err(QuantError::ShapeMismatch(format!(
            "src holds {} elements but the shape {} x {} needs {}",
            src.len(),
            shape.rows,
            shape.cols,
            shape.len()
        )));
    }
    check_bytes(
        "dst",
        dst.len(),
        shape.rows * packed_row_bytes(shape.cols, bits),
    )?;
    check_len("scales", scales.len(), shape.n_groups())?;
    check_len("zeros", zeros.len(), shape.n_groups())
}

/// The value checks of the quantizer's input (`shape.len()` elements): every value finite, no group
/// whose range or dequantized values overflow f32.
fn check_values(src: &[f32], shape: Shape, bits: u32, exec: Exec) -> Result<()> {
    // One pass gives the largest magnitude, and tells whether every value is finite.
    let absmax = finite_absmax(src, "src", exec)?;
    // Below 2^126 nothing can overflow: hi - lo < 2^127, and every dequantized value is within half a
    // step (at most (hi - lo) / 2) of a value in [lo, hi]. Above it, look at each group exactly.
    if absmax < SAFE_ABSMAX {
        return Ok(());
    }
    let glen = shape.group_len();
    for (r, row) in src.chunks_exact(shape.cols).enumerate() {
        for (g, group) in row.chunks(glen).enumerate() {
            let (lo, hi) = lo_hi(exec.level, group);
            if let Some(why) = range_overflow(lo, hi, bits) {
                return Err(QuantError::invalid(format!("row {r}, group {g}: {why}")));
            }
        }
    }
    Ok(())
}

/// Why a group of finite values with range `[lo, hi]` cannot be quantized to `bits` bits (its range,
/// or one of its dequantized values, overflows f32), if it cannot.
fn range_overflow(lo: f32, hi: f32, bits: u32) -> Option<String> {
    if !(hi - lo).is_finite() {
        return Some(format!(
            "the range [{lo:e}, {hi:e}] is wider than f32 can hold, so no scale represents it"
        ));
    }
    // Codes are monotonic in x, so the codes of lo and hi bound every code of the group, and
    // dequantization is monotonic in the code.
    let (scale, zero) = asym_params(lo, hi, bits);
    for x in [lo, hi] {
        let back = dequantize_code(quantize_code(x, scale, zero, maxq_of(bits)), scale, zero);
        if !back.is_finite() {
            return Some(format!(
                "{x:e} is too close to the largest float: its dequantized value \
                 (q - zero) * scale would overflow to infinity"
            ));
        }
    }
    None
}

/// Whether a group with range `[lo, hi]` (`nan`: it holds a NaN) passes [`check_values`]: the
/// quantizer's check of one group, from the range it computes anyway.
fn group_passes(lo: f32, hi: f32, nan: bool, bits: u32) -> bool {
    let finite = !nan && lo.is_finite() && hi.is_finite();
    finite
        && ((lo.abs() < SAFE_ABSMAX && hi < SAFE_ABSMAX) || range_overflow(lo, hi, bits).is_none())
}

/// `2^126`: below this magnitude no group's range or dequantized value can overflow f32.
const SAFE_ABSMAX: f32 = 8.507_059e37;

/// Shared validation of the dequantizers: bits, exact input lengths, finite scales, zeros <= maxq.
fn check_dequantize_args(
    src: &[u8],
    scales: &[f32],
    zeros: &[u8],
    shape: Shape,
    bits: u32,
    dst: &[f32],
) -> Result<()> {
    check_bits(bits)?;
    let need = shape.rows * packed_row_bytes(shape.cols, bits);
    if src.len() != need {
        return Err(QuantError::ShapeMismatch(format!(
            "src holds {} bytes but {} x {} codes of {bits} bits take {need}",
            src.len(),
            shape.rows,
            shape.cols
        )));
    }
    let groups = shape.n_groups();
    for (what, len) in [("scales", scales.len()), ("zeros", zeros.len())] {
        if len != groups {
            return Err(QuantError::ShapeMismatch(format!(
                "{what} holds {len} elements but the shape {} x {} with group_size {} has {groups} groups",
                shape.rows, shape.cols, shape.group_size
            )));
        }
    }
    check_len("dst", dst.len(), shape.len())?;
    check_finite(scales, "scales")?;
    let maxq = maxq_of(bits);
    if let Some((i, &z)) = zeros.iter().enumerate().find(|(_, &z)| u32::from(z) > maxq) {
        return Err(QuantError::invalid(format!(
            "zeros[{i}] is {z}: a {bits}-bit zero point is at most {maxq}"
        )));
    }
    Ok(())
}

/// Quantizes `src` (`shape.rows x shape.cols`, row-major) to packed `bits`-bit codes (module docs), in
/// one pass over `src` (each group is checked just before it is quantized; see
/// [`super::streaming`]).
///
/// `bits` must be in 1..=8 (else `InvalidArgument`); `src` must hold exactly `shape.len()` elements
/// (else `ShapeMismatch`); `dst` at least `rows * packed_row_bytes(cols, bits)` bytes, `scales` and `zeros`
/// at least `shape.n_groups()` elements (else `BufferTooSmall`); only those prefixes are written. These
/// argument errors are found before anything is written. NaN or infinity in `src` is `NonFinite`
/// naming the first bad index; a group whose range, or one of whose dequantized values, overflows f32
/// is `InvalidArgument` naming its row and group. On these value errors the prefixes of `dst`,
/// `scales` and `zeros` are zero-filled.
pub fn kbit_quantize(
    src: &[f32],
    shape: Shape,
    bits: u32,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
) -> Result<()> {
    check_sizes(src, shape, bits, dst, scales, zeros)?;
    let exec = Exec::current();
    let (cols, gpr, n_groups) = (shape.cols, shape.groups_per_row(), shape.n_groups());
    let row_bytes = packed_row_bytes(cols, bits);
    let row_exec = Exec { threads: 1, ..exec };
    super::streaming::rows(
        exec.threads_for(shape.len(), shape.rows),
        cols,
        src,
        (&mut dst[..shape.rows * row_bytes], row_bytes),
        (&mut scales[..n_groups], gpr),
        (&mut zeros[..n_groups], gpr),
        |rest, k, dst, scales, zeros| {
            let rows = Shape { rows: k, ..shape };
            if simd_int4(exec.level, rows, bits) {
                // Each group is checked from the range the quantizer computes anyway.
                let accept = |lo, hi, nan| group_passes(lo, hi, nan, bits);
                return quantize_int4_simd(
                    exec.level,
                    rest,
                    rows,
                    dst,
                    scales,
                    zeros,
                    Some(&accept),
                );
            }
            let ok = check_values(&rest[..k * cols], rows, bits, row_exec).is_ok();
            if ok {
                quantize_rows(exec.level, rest, rows, bits, dst, scales, zeros);
            }
            ok
        },
        || check_values(src, shape, bits, exec),
    )
}

/// Whether the 4-bit SIMD quantizer handles `bits` at `level` (groups starting on a byte).
fn simd_int4(level: SimdLevel, shape: Shape, bits: u32) -> bool {
    bits == 4 && level != SimdLevel::Scalar && shape.group_len().is_multiple_of(2)
}

/// The codes, scales and zero points of the `shape.rows` rows at the start of `src`, with the bodies
/// of `level`. `src` may go on past those rows: the 4-bit SIMD bodies prefetch from it.
fn quantize_rows(
    level: SimdLevel,
    src: &[f32],
    shape: Shape,
    bits: u32,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
) {
    if simd_int4(level, shape, bits) {
        quantize_int4_simd(
            level,
            src,
            shape,
            dst,
            scales,
            zeros,
            None::<&fn(f32, f32, bool) -> bool>,
        );
        return;
    }
    let src = &src[..shape.len()];
    match bits {
        1 => quantize_fixed::<1>(src, shape, dst, scales, zeros),
        2 => quantize_fixed::<2>(src, shape, dst, scales, zeros),
        3 => quantize_fixed::<3>(src, shape, dst, scales, zeros),
        4 => quantize_fixed::<4>(src, shape, dst, scales, zeros),
        5 => quantize_fixed::<5>(src, shape, dst, scales, zeros),
        6 => quantize_fixed::<6>(src, shape, dst, scales, zeros),
        7 => quantize_fixed::<7>(src, shape, dst, scales, zeros),
        _ => quantize_fixed::<8>(src, shape, dst, scales, zeros),
    }
}

/// `lo_hi_fast` with the body of `level`.
fn lo_hi(level: SimdLevel, x: &[f32]) -> (f32, f32) {
    match level {
        // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { x86::avx512::lo_hi(x) },
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { x86::avx2::lo_hi(x) },
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => unsafe { neon::lo_hi(x) },
        _ => lo_hi_fast(x),
    }
}

/// The SIMD bodies the 4-bit quantizer needs, for [`quantize_int4_generic`] (NEON; the x86 levels
/// have a software-pipelined loop, `x86::pipelined_int4`).
#[cfg(target_arch = "aarch64")]
pub(crate) trait Int4Body {
    /// `lo_hi_fast` of `x`.
    unsafe fn lo_hi(x: &[f32]) -> (f32, f32);
    /// `lo_hi` of `x`, and whether `x` holds a NaN (which `lo_hi` passes over).
    unsafe fn lo_hi_nan(x: &[f32]) -> (f32, f32, bool) {
        let (lo, hi) = Self::lo_hi(x);
        (lo, hi, x.iter().any(|v| v.is_nan()))
    }
    /// Packed codes of `x[..32 * k]` with `(scale != 0, zero)`; returns `32 * k`. `ahead` is data the
    /// caller reads next, for the body to prefetch (it may ignore it).
    unsafe fn quant(x: &[f32], scale: f32, zero: f32, out: &mut [u8], ahead: &[f32]) -> usize;
}

/// The 4-bit quantizer with SIMD bodies, on validated arguments whose groups start on even columns
/// (an even group length), so that each group starts on a byte: per group, its range and parameters,
/// then its codes (blocks of 32 in SIMD, the tail in portable code). Inlined into one function per
/// SIMD level (compiled for its features), so that the per-group work is not a chain of calls.
///
/// # Safety
/// The CPU must have the features of `K`.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(crate) unsafe fn quantize_int4_generic<K: Int4Body>(
    src: &[f32],
    shape: Shape,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
    accept: Option<&dyn Fn(f32, f32, bool) -> bool>,
) -> bool {
    let glen = shape.group_len();
    let gpr = shape.groups_per_row();
    let row_bytes = packed_row_bytes(shape.cols, 4);
    let rows = src.chunks_exact(shape.cols);
    let out_rows = dst.chunks_exact_mut(row_bytes);
    let scale_rows = scales.chunks_exact_mut(gpr);
    let zero_rows = zeros.chunks_exact_mut(gpr);
    let all = rows
        .zip(out_rows)
        .zip(scale_rows)
        .zip(zero_rows)
        .enumerate();
    for (i, (((row, out), row_scales), row_zeros)) in all {
        // Up to 32 groups at a time: every range first (independent reductions that overlap), then
        // the parameters, then the codes (the groups are still in L1), while the next span of as
        // many elements is prefetched.
        for (c, (sc, zc)) in row_scales
            .chunks_mut(32)
            .zip(row_zeros.chunks_mut(32))
            .enumerate()
        {
            let g0 = c * 32;
            let cols = shape.cols;
            let span = |g: usize| g * glen..((g + 1) * glen).min(cols);
            let mut ranges = [(0f32, 0f32); 32];
            if let Some(accept) = accept {
                // With `accept`: check each group from its range before any code of the span.
                for (k, r) in ranges[..sc.len()].iter_mut().enumerate() {
                    let (lo, hi, nan) = K::lo_hi_nan(&row[span(g0 + k)]);
                    if !accept(lo, hi, nan) {
                        return false;
                    }
                    *r = (lo, hi);
                }
            } else {
                for (k, r) in ranges[..sc.len()].iter_mut().enumerate() {
                    *r = K::lo_hi(&row[span(g0 + k)]);
                }
            }
            for (k, (s, z)) in sc.iter_mut().zip(zc.iter_mut()).enumerate() {
                let (scale, zero) = asym_params(ranges[k].0, ranges[k].1, 4);
                *s = scale;
                *z = zero as u8;
            }
            let next_start = i * cols + span(g0 + sc.len() - 1).end;
            let next_len = span(g0 + sc.len() - 1).end - span(g0).start;
            let next = &src[next_start..src.len().min(next_start + next_len)];
            for (k, (&scale, &z)) in sc.iter().zip(zc.iter()).enumerate() {
                let g = g0 + k;
                let group = &row[span(g)];
                let ahead = next.get(span(g).start - span(g0).start..).unwrap_or(&[]);
                let ahead = &ahead[..ahead.len().min(group.len())];
                let zero = f32::from(z);
                let b0 = g * glen / 2;
                let bytes = &mut out[b0..b0 + group.len().div_ceil(2)];
                let done = if scale == 0.0 {
                    0
                } else {
                    K::quant(group, scale, zero, bytes, ahead)
                };
                int4_group_tail(group, done, scale, zero, bytes);
            }
        }
    }
    true
}

/// The packed 4-bit codes of `group[done..]` (what a SIMD body left: `done` even, all of the group
/// when its scale is 0) into the group's `bytes`, in portable code.
#[inline(always)]
pub(crate) fn int4_group_tail(group: &[f32], done: usize, scale: f32, zero: f32, bytes: &mut [u8]) {
    if done < group.len() {
        let mut codes = [0u8; CHUNK];
        for (x, b) in group[done..]
            .chunks(CHUNK)
            .zip(bytes[done / 2..].chunks_mut(CHUNK / 2))
        {
            quantize_segment(x, scale, zero, 15.0, &mut codes[..x.len()]);
            pack_fixed::<4>(&codes[..x.len()], b);
        }
    }
}

/// [`quantize_int4_generic`] at `level` (not `Scalar`).
/// `accept` is generic, not `dyn`, so that the AVX2 loop inlines it: through a pointer it is a call
/// per group, with a `vzeroupper` before it and the loop's vector constants reloaded after it.
fn quantize_int4_simd<A: Fn(f32, f32, bool) -> bool>(
    level: SimdLevel,
    src: &[f32],
    shape: Shape,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
    accept: Option<&A>,
) -> bool {
    #[cfg(target_arch = "aarch64")]
    let accept_dyn = accept.map(|a| a as &dyn Fn(f32, f32, bool) -> bool);
    // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it.
    unsafe {
        match level {
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                x86::avx512::int4_quant_rows(src, shape, dst, scales, zeros, accept)
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => x86::avx2::int4_quant_rows(src, shape, dst, scales, zeros, accept),
            #[cfg(target_arch = "aarch64")]
            SimdLevel::Neon => {
                quantize_int4_generic::<neon::Body>(src, shape, dst, scales, zeros, accept_dyn)
            }
            _ => unreachable!("the 4-bit SIMD quantizer at the scalar level"),
        }
    }
}

/// The 4-bit dequantizer with SIMD bodies (groups start on a byte, as in [`quantize_int4_simd`]).
/// `stream`: the whole output is large (see `STREAM_STORES_MIN`).
fn dequantize_int4_simd(
    level: SimdLevel,
    src: &[u8],
    scales: &[f32],
    zeros: &[u8],
    shape: Shape,
    dst: &mut [f32],
    stream: bool,
) {
    let _ = stream; // only the x86 bodies have streaming stores
    let glen = shape.group_len();
    let gpr = shape.groups_per_row();
    let row_bytes = packed_row_bytes(shape.cols, 4);
    let rows = src.chunks_exact(row_bytes);
    let out_rows = dst.chunks_exact_mut(shape.cols);
    for (r, (packed, out)) in rows.zip(out_rows).enumerate() {
        for (g, out) in out.chunks_mut(glen).enumerate() {
            let (s, z) = (scales[r * gpr + g], f32::from(zeros[r * gpr + g]));
            let b0 = g * glen / 2;
            let bytes = &packed[b0..b0 + out.len().div_ceil(2)];
            let done = match level {
                // SAFETY: as in `lo_hi`.
                #[cfg(target_arch = "x86_64")]
                SimdLevel::Avx512 => unsafe { x86::avx512::int4_dequant(bytes, s, z, out, stream) },
                #[cfg(target_arch = "x86_64")]
                SimdLevel::Avx2 => unsafe { x86::avx2::int4_dequant(bytes, s, z, out, stream) },
                #[cfg(target_arch = "aarch64")]
                SimdLevel::Neon => unsafe { neon::int4_dequant(bytes, s, z, out) },
                _ => 0,
            };
            let mut codes = [0u8; CHUNK];
            for (o, b) in out[done..]
                .chunks_mut(CHUNK)
                .zip(bytes[done / 2..].chunks(CHUNK / 2))
            {
                let n = o.len();
                unpack_fixed::<4>(&b[..n.div_ceil(2)], &mut codes[..n]);
                for (o, &q) in o.iter_mut().zip(&codes[..n]) {
                    *o = (f32::from(q) - z) * s;
                }
            }
        }
    }
}

/// The fast quantizer for a compile-time width, on validated arguments. Per row: pass 1 computes every
/// group's parameters (the row is then in cache), pass 2 quantizes 64 columns at a time into a stack
/// buffer and packs them.
fn quantize_fixed<const B: usize>(
    src: &[f32],
    shape: Shape,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
) {
    let maxq = maxq_of(B as u32) as f32;
    let glen = shape.group_len();
    let gpr = shape.groups_per_row();
    let row_bytes = packed_row_bytes(shape.cols, B as u32);
    let rows = src.chunks_exact(shape.cols);
    let out_rows = dst.chunks_exact_mut(row_bytes);
    let scale_rows = scales.chunks_exact_mut(gpr);
    let zero_rows = zeros.chunks_exact_mut(gpr);
    let mut codes = [0u8; CHUNK];
    for (((row, out), row_scales), row_zeros) in rows.zip(out_rows).zip(scale_rows).zip(zero_rows) {
        for ((group, s), z) in row
            .chunks(glen)
            .zip(row_scales.iter_mut())
            .zip(row_zeros.iter_mut())
        {
            let (lo, hi) = lo_hi_fast(group);
            let (scale, zero) = asym_params(lo, hi, B as u32);
            *s = scale;
            *z = zero as u8;
        }
        for (c, (chunk, out)) in row
            .chunks(CHUNK)
            .zip(out.chunks_mut(CHUNK / 8 * B))
            .enumerate()
        {
            let start = c * CHUNK;
            let mut j = 0;
            while j < chunk.len() {
                let g = (start + j) / glen;
                let end = ((g + 1) * glen - start).min(chunk.len());
                quantize_segment(
                    &chunk[j..end],
                    row_scales[g],
                    f32::from(row_zeros[g]),
                    maxq,
                    &mut codes[j..end],
                );
                j = end;
            }
            pack_fixed::<B>(&codes[..chunk.len()], out);
        }
    }
}

/// Codes of a run of elements sharing one `(scale, zero)`: `y = x / scale` clamped to
/// `[-zero, maxq - zero]`, rounded to even by the magic-number addition (the rounded integer `k` is in the
/// low bits of the sum), and the code is `k + zero` in integer arithmetic. Equal to [`quantize_code`]:
/// the clamp bounds are integers, so clamping commutes with the monotonic rounding, and adding the
/// integer zero after rounding is what the formula does.
pub(crate) fn quantize_segment(x: &[f32], scale: f32, zero: f32, maxq: f32, out: &mut [u8]) {
    if scale == 0.0 {
        out.fill(zero as u8);
        return;
    }
    let lo = -zero;
    let hi = maxq - zero;
    let z = zero as u32;
    for (q, &v) in out.iter_mut().zip(x) {
        let y = v / scale;
        let y = if y < lo { lo } else { y };
        let y = if y > hi { hi } else { y };
        *q = (y + ROUND_MAGIC).to_bits().wrapping_add(z) as u8;
    }
}

/// Scalar reference of [`kbit_quantize`]: group parameters from a plain min/max fold and
/// [`asym_params`], every code from [`quantize_code`], packed one bit at a time.
pub fn kbit_quantize_ref(
    src: &[f32],
    shape: Shape,
    bits: u32,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
) -> Result<()> {
    check_sizes(src, shape, bits, dst, scales, zeros)?;
    let b = bits as usize;
    let maxq = maxq_of(bits);
    let glen = shape.group_len();
    let gpr = shape.groups_per_row();
    let row_bytes = packed_row_bytes(shape.cols, bits);
    dst[..shape.rows * row_bytes].fill(0);
    if let Err(e) = check_values(src, shape, bits, Exec::current()) {
        scales[..shape.n_groups()].fill(0.0);
        zeros[..shape.n_groups()].fill(0);
        return Err(e);
    }
    for r in 0..shape.rows {
        for g in 0..gpr {
            let start = r * shape.cols + g * glen;
            let end = r * shape.cols + ((g + 1) * glen).min(shape.cols);
            let group = &src[start..end];
            let min = group.iter().copied().fold(f32::INFINITY, f32::min);
            let max = group.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let (scale, zero) = asym_params(min, max, bits);
            scales[r * gpr + g] = scale;
            zeros[r * gpr + g] = zero as u8;
            for (k, &x) in group.iter().enumerate() {
                let q = quantize_code(x, scale, zero, maxq);
                let col = g * glen + k;
                for bit in 0..b {
                    if (q >> bit) & 1 == 1 {
                        let pos = col * b + bit;
                        dst[r * row_bytes + pos / 8] |= 1 << (pos % 8);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Dequantizes packed `bits`-bit codes: `dst[r * cols + c] = (q - zero) * scale` of the element's group.
///
/// `bits` must be in 1..=8 (else `InvalidArgument`). `src` must hold exactly
/// `rows * packed_row_bytes(cols, bits)` bytes, `scales` and `zeros` exactly `shape.n_groups()` elements
/// (else `ShapeMismatch`); `dst` at least `shape.len()` elements (else `BufferTooSmall`). A NaN or infinite
/// scale is `NonFinite`, a zero point above `2^bits - 1` is `InvalidArgument`. Nothing is written on error.
pub fn kbit_dequantize(
    src: &[u8],
    scales: &[f32],
    zeros: &[u8],
    shape: Shape,
    bits: u32,
    dst: &mut [f32],
) -> Result<()> {
    check_dequantize_args(src, scales, zeros, shape, bits, dst)?;
    let exec = Exec::current();
    let row_bytes = packed_row_bytes(shape.cols, bits);
    let simd_int4 =
        bits == 4 && exec.level != SimdLevel::Scalar && shape.group_len().is_multiple_of(2);
    super::dequantize_blocks(exec, shape, false, dst, |b, dst| {
        let src = &src[b.rows.start * row_bytes..b.rows.end * row_bytes];
        let (scales, zeros) = (&scales[b.groups.clone()], &zeros[b.groups]);
        if simd_int4 {
            dequantize_int4_simd(exec.level, src, scales, zeros, b.shape, dst, b.stream);
        } else {
            dequantize_portable(src, scales, zeros, b.shape, bits, dst);
        }
    });
    Ok(())
}

/// The portable dequantizer, on validated arguments: 64 codes at a time unpacked into a stack buffer.
fn dequantize_portable(
    src: &[u8],
    scales: &[f32],
    zeros: &[u8],
    shape: Shape,
    bits: u32,
    dst: &mut [f32],
) {
    let glen = shape.group_len();
    let gpr = shape.groups_per_row();
    let row_bytes = packed_row_bytes(shape.cols, bits);
    let out_rows = dst[..shape.len()].chunks_exact_mut(shape.cols);
    let mut codes = [0u8; CHUNK];
    for (r, (packed, out)) in src.chunks_exact(row_bytes).zip(out_rows).enumerate() {
        let row_scales = &scales[r * gpr..(r + 1) * gpr];
        let row_zeros = &zeros[r * gpr..(r + 1) * gpr];
        let chunk_bytes = CHUNK / 8 * bits as usize;
        for (c, (out, packed)) in out
            .chunks_mut(CHUNK)
            .zip(packed.chunks(chunk_bytes))
            .enumerate()
        {
            let n = out.len();
            unpack_row(packed, bits, &mut codes[..n]);
            let start = c * CHUNK;
            let mut j = 0;
            while j < n {
                let g = (start + j) / glen;
                let end = ((g + 1) * glen - start).min(n);
                let (s, z) = (row_scales[g], f32::from(row_zeros[g]));
                for (o, &q) in out[j..end].iter_mut().zip(&codes[j..end]) {
                    *o = (f32::from(q) - z) * s;
                }
                j = end;
            }
        }
    }
}

/// Scalar reference of [`kbit_dequantize`]: one bit and one [`dequantize_code`] at a time.
pub fn kbit_dequantize_ref(
    src: &[u8],
    scales: &[f32],
    zeros: &[u8],
    shape: Shape,
    bits: u32,
    dst: &mut [f32],
) -> Result<()> {
    check_dequantize_args(src, scales, zeros, shape, bits, dst)?;
    let b = bits as usize;
    let glen = shape.group_len();
    let gpr = shape.groups_per_row();
    let row_bytes = packed_row_bytes(shape.cols, bits);
    for r in 0..shape.rows {
        for c in 0..shape.cols {
            let mut q = 0u8;
            for bit in 0..b {
                let pos = c * b + bit;
                q |= ((src[r * row_bytes + pos / 8] >> (pos % 8)) & 1) << bit;
            }
            let g = r * gpr + c / glen;
            dst[r * shape.cols + c] = dequantize_code(q, scales[g], f32::from(zeros[g]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_row_bytes_is_ceil_cols_bits_over_8() {
        for bits in 1..=8u32 {
            for cols in 0..100usize {
                assert_eq!(
                    packed_row_bytes(cols, bits),
                    (cols * bits as usize).div_ceil(8)
                );
            }
        }
        assert_eq!(packed_row_bytes(usize::MAX, 8), usize::MAX);
    }

    #[test]
    fn the_safe_magnitude_is_2_to_the_126() {
        assert_eq!(SAFE_ABSMAX, 2f32.powi(126));
    }

    #[test]
    fn three_bit_codes_span_bytes() {
        // codes 1..=8 (masked to 3 bits: 1,2,3,4,5,6,7,0) -> 24 bits, LSB first.
        let codes = [1u8, 2, 3, 4, 5, 6, 7, 0];
        let mut packed = [0u8; 3];
        pack_row(&codes, 3, &mut packed);
        let mut word = 0u32;
        for (i, &c) in codes.iter().enumerate() {
            word |= u32::from(c) << (3 * i);
        }
        assert_eq!(packed, [word as u8, (word >> 8) as u8, (word >> 16) as u8]);
        let mut back = [0u8; 8];
        unpack_row(&packed, 3, &mut back);
        assert_eq!(back, codes);
    }

    #[test]
    fn params_of_exact_ties() {
        // scale 1, -lo / scale = 7.5 -> 8 (even); 6.5 -> 6.
        assert_eq!(asym_params(-7.5, 7.5, 4), (1.0, 8.0));
        assert_eq!(asym_params(-6.5, 8.5, 4), (1.0, 6.0));
        assert_eq!(asym_params(0.0, 0.0, 4), (0.0, 0.0));
        let (s, z) = asym_params(2.0, 3.0, 4);
        assert_eq!((s, z.to_bits()), (0.2, 0.0f32.to_bits()));
    }
}
