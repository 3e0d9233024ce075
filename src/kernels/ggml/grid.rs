//! The grid of one 32-value GGUF block (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) once its parameters are fixed:
//! what an algorithm that chooses its own codes (GPTQ) rounds onto, so that its result is an ordinary
//! record of the type.
//!
//! - [`fit`]: the block's `d` (and `m` for the `_1` types) by the type's own rule (that of ggml's
//!   reference quantizer, see the parent module), rounded to f16 as the record stores them.
//! - [`nearest`]: the code of the grid point nearest to a value (`round(x / d)`, ties to even, or
//!   `round((x - m) / d)`), clamped to the type's code range, and that point's value computed exactly
//!   as the dequantizer computes it. Unlike ggml's quantizer (which truncates `x * (1/d) + 8.5`, with the
//!   f32 `d` before its rounding to f16), the code is chosen against the stored `d`.
//! - [`write`]: the record from `d`, `m` and the 32 codes.
//!
//! Codes are the stored ones: `0..=15` (Q4), `0..=31` (Q5), and for Q8_0 the bits of the `i8` code
//! (`-128..=127`; ggml's quantizer itself only emits `-127..=127`, the format holds both).
use ::half::f16;

use super::{fp16, write_nibbles, GgmlType};

/// Values per block of the types this module handles.
pub(crate) const BLOCK: usize = 32;

/// Whether `ty` is one of the types this module handles: the uniform 32-value types, not the
/// K-quants and not IQ4_NL or MXFP4 (whose codes index a non-uniform table).
pub fn supports(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0
    )
}

fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// `(d, m)` of a block holding `x` (any length; 32 in a file), each as its f16 value (`m` is 0 for the
/// types without one). May be infinite when the values are too large for an f16 header.
pub fn fit(ty: GgmlType, x: &[f32]) -> (f32, f32) {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 => {
            // The first element of largest magnitude, with its sign (ggml's loop).
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in x {
                if amax < v.abs() {
                    amax = v.abs();
                    max = v;
                }
            }
            let half = if ty == GgmlType::Q4_0 { 8.0 } else { 16.0 };
            (f16_round(max / -half), 0.0)
        }
        GgmlType::Q4_1 | GgmlType::Q5_1 => {
            let (mut min, mut max) = (f32::MAX, -f32::MAX);
            for &v in x {
                if v < min {
                    min = v;
                }
                if v > max {
                    max = v;
                }
            }
            let levels = if ty == GgmlType::Q4_1 { 15.0 } else { 31.0 };
            (f16_round((max - min) / levels), f16_round(min))
        }
        GgmlType::Q8_0 => {
            let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            (f16_round(amax / 127.0), 0.0)
        }
        _ => unreachable!("grid: {} has no grid here (see supports)", ty.name()),
    }
}

/// [`fit`] with a search over shrunk ranges (GPTQ's MSE option carried over to the block's grid): the
/// parameters fitted to `p * x` for `p = 1 - i/100`, `i < 80`, keeping those whose grid gives the
/// smallest `sum |nearest(x) - x|^2.4` (the first one, `p = 1`, the type's rule, on ties).
pub fn fit_search(ty: GgmlType, x: &[f32]) -> (f32, f32) {
    let mut scaled = [0f32; BLOCK];
    let mut best = (f32::INFINITY, fit(ty, x));
    for i in 0..80 {
        let p = 1.0 - i as f32 / 100.0;
        let n = x.len().min(BLOCK);
        for (s, &v) in scaled[..n].iter_mut().zip(x) {
            *s = v * p;
        }
        let (d, m) = fit(ty, &scaled[..n]);
        let err: f32 = x
            .iter()
            .map(|&v| (nearest(ty, v, d, m).1 - v).abs().powf(2.4))
            .sum();
        if err < best.0 {
            best = (err, (d, m));
        }
    }
    best.1
}

/// The code of the grid point of `(d, m)` nearest to `x`, and that point's value as the type's
/// dequantizer computes it (`(q - 8) * d`, `q * d + m` in two roundings, `q * d`). Ties go to the
/// even code.
#[inline]
pub fn nearest(ty: GgmlType, x: f32, d: f32, m: f32) -> (u8, f32) {
    match ty {
        GgmlType::Q4_0 => nearest_in(x, d, None, -8, 7, 8),
        GgmlType::Q5_0 => nearest_in(x, d, None, -16, 15, 16),
        GgmlType::Q4_1 => nearest_in(x, d, Some(m), 0, 15, 0),
        GgmlType::Q5_1 => nearest_in(x, d, Some(m), 0, 31, 0),
        GgmlType::Q8_0 => nearest_in(x, d, None, -128, 127, 0),
        _ => unreachable!("grid: {} has no grid here (see supports)", ty.name()),
    }
}

/// Nearest point `k * d (+ m)` (two roundings; no addition at all without `m`, which keeps the sign
/// of a zero product as the dequantizer does) for `k` in `lo..=hi`, returned as the stored code `k + off` (as `u8`: Q8_0's `i8` bits). The
/// estimate `round((x - m) / d)` can land one step off the true nearest point when `x` is close to a
/// midpoint (the subtraction and division round), so its two neighbours are compared too.
#[inline(always)]
fn nearest_in(x: f32, d: f32, m: Option<f32>, lo: i32, hi: i32, off: i32) -> (u8, f32) {
    let value = |k: i32| {
        let p = k as f32 * d;
        match m {
            Some(m) => p + m,
            None => p,
        }
    };
    let m0 = m.unwrap_or(0.0);
    let guess = if d != 0.0 {
        // Saturating cast: a huge quotient lands on a clamp.
        (((x - m0) / d).round_ties_even() as i32).clamp(lo, hi)
    } else {
        0i32.clamp(lo, hi)
    };
    let mut best = (guess, value(guess));
    let mut best_err = (best.1 - x).abs();
    for k in [guess - 1, guess + 1] {
        if k < lo || k > hi {
            continue;
        }
        let v = value(k);
        let e = (v - x).abs();
        if e < best_err || (e == best_err && (k + off) % 2 == 0) {
            best = (k, v);
            best_err = e;
        }
    }
    ((best.0 + off) as u8, best.1)
}

/// Writes the record of type `ty` (`ty.type_size()` bytes of `y`) holding `d`, `m` and `codes` (32,
/// as [`nearest`] gives them).
pub fn write(ty: GgmlType, d: f32, m: f32, codes: &[u8], y: &mut [u8]) {
    y[0..2].copy_from_slice(&fp16(d).to_le_bytes());
    match ty {
        GgmlType::Q4_0 => write_nibbles(y, false, |j| codes[j]),
        GgmlType::Q5_0 => write_nibbles(y, true, |j| codes[j]),
        GgmlType::Q4_1 | GgmlType::Q5_1 => {
            y[2..4].copy_from_slice(&fp16(m).to_le_bytes());
            write_nibbles(&mut y[2..], ty == GgmlType::Q5_1, |j| codes[j]);
        }
        GgmlType::Q8_0 => y[2..34].copy_from_slice(&codes[..BLOCK]),
        _ => unreachable!("grid: {} has no grid here (see supports)", ty.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{dequantize_block_for_tests as dequantize, GgmlType};
    use super::*;

    fn values(seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..BLOCK)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.4) * 3.0
            })
            .collect()
    }

    #[test]
    fn records_decode_to_the_values_nearest_gives() {
        for ty in GgmlType::all().into_iter().filter(|&t| supports(t)) {
            for seed in 1..50u64 {
                let x = values(seed);
                let (d, m) = fit(ty, &x);
                let (mut codes, mut want) = (vec![0u8; BLOCK], vec![0f32; BLOCK]);
                // Values beyond the block's range too, so that the clamps are exercised.
                for j in 0..BLOCK {
                    let v = if j == 3 { x[j] * 2.5 } else { x[j] };
                    (codes[j], want[j]) = nearest(ty, v, d, m);
                }
                let mut rec = vec![0u8; ty.type_size()];
                write(ty, d, m, &codes, &mut rec);
                let mut got = vec![0f32; BLOCK];
                dequantize(ty, &rec, &mut got);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{ty:?} seed {seed}");
            }
        }
    }

    #[test]
    fn the_search_never_loses_to_the_rule() {
        for ty in GgmlType::all().into_iter().filter(|&t| supports(t)) {
            let mut better = 0;
            for seed in 1..40u64 {
                let x = values(seed);
                let err = |(d, m): (f32, f32)| -> f32 {
                    x.iter()
                        .map(|&v| (nearest(ty, v, d, m).1 - v).abs().powf(2.4))
                        .sum()
                };
                let (rule, searched) = (err(fit(ty, &x)), err(fit_search(ty, &x)));
                assert!(searched <= rule, "{ty:?} seed {seed}");
                better += usize::from(searched < rule);
            }
            // On these uniform values Q8_0's 255 levels leave nothing to gain by clipping.
            assert!(
                better > 0 || ty == GgmlType::Q8_0,
                "{ty:?}: the search never found better parameters"
            );
        }
    }

    #[test]
    fn nearest_is_the_nearest_point_of_the_grid() {
        for ty in GgmlType::all().into_iter().filter(|&t| supports(t)) {
            let x = values(7);
            let (d, m) = fit(ty, &x);
            let codes: Vec<i32> = match ty {
                GgmlType::Q8_0 => (-128..=127).collect(),
                GgmlType::Q4_0 | GgmlType::Q4_1 => (0..=15).collect(),
                _ => (0..=31).collect(),
            };
            for &v in &x {
                let (_, got) = nearest(ty, v, d, m);
                let best = codes
                    .iter()
                    .map(|&q| {
                        let c = if ty == GgmlType::Q8_0 {
                            q as i8 as u8
                        } else {
                            q as u8
                        };
                        let mut rec = vec![0u8; ty.type_size()];
                        write(ty, d, m, &[c; BLOCK], &mut rec);
                        let mut y = vec![0f32; BLOCK];
                        dequantize(ty, &rec, &mut y);
                        (y[0] - v).abs()
                    })
                    .fold(f32::INFINITY, f32::min);
                assert!((got - v).abs() <= best * (1.0 + 1e-6), "{ty:?} {v}: {got}");
            }
        }
    }
}
