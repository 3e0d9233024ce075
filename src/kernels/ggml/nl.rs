//! The two GGUF types whose 4-bit codes index a table of 16 non-uniform values: MXFP4 (OCP
//! microscaling FP4, E2M1 values under a power-of-two E8M0 scale) and IQ4_NL (16 hand-tuned levels
//! under an f16 scale), byte-exact with ggml (`quantize_row_mxfp4_ref`, `quantize_iq4_nl` and their
//! dequantizers in `ggml-quants.c`).
//!
//! | type   | id | block | bytes | record | value |
//! |--------|----|-------|-------|--------|-------|
//! | IQ4_NL | 20 | 32 | 18 | `d: f16, qs[16]` | `d * KVALUES_IQ4NL[q]` |
//! | MXFP4  | 39 | 32 | 17 | `e: u8 (E8M0), qs[16]` | `KVALUES_MXFP4[q] * 2^(e - 128)` |
//!
//! Byte `qs[j]` holds element `j` in its low nibble and element `j + 16` in its high nibble, as in
//! Q4_0.
//!
//! # MXFP4
//! ggml stores the E2M1 values doubled (`0, 1, 2, 3, 4, 6, 8, 12` and their negatives, so the
//! table is integral) and halves the scale instead: the value of code `q` is
//! `KVALUES_MXFP4[q] * 2^(e - 128)`, i.e. the OCP value `fp4(q) * 2^(e - 127)`.
//! - `e = (u8)(floorf(log2f(amax)) - 2 + 127)` (0 for an all-zero block): the largest E2M1 magnitude
//!   is 6 = 1.5 * 2^2, so the block's largest value lands in the top binade.
//! - every code is the table index nearest to `x` by `|KVALUES_MXFP4[i] * d - x|` (f32, no fused
//!   multiply-add), the first index on ties (so 0, never the negative zero 8).
//!
//! `log2f` is the platform's (Rust's `f32::log2` calls the same libm function ggml's C calls): near a
//! power of two it rounds up to the integer, and `floorf` of that is what decides the exponent, so an
//! exact bit-level exponent would differ from ggml for the largest floats below each power of two.
//! The `(u8)` conversion is C's on x86-64 (truncation to 32 bits, then the low byte): for inputs
//! below about 2^-125 the exponent goes negative and wraps (ggml writes such blocks with a huge scale
//! and all-zero codes; so does this library, as they decode to zeros).
//!
//! ggml's `quantize_mxfp4` ignores the importance matrix; so does the weighted path here.
//!
//! # IQ4_NL
//! `ggml_quantize_chunk` runs `quantize_iq4_nl`, i.e. `quantize_row_iq4_nl_impl` with one 32-value
//! block per "super-block" and `ntry = 7`, with or without an importance matrix:
//! - the weights are `x^2` without an imatrix, `qw[j] * sqrtf(sigma2 + x^2)` with one, where
//!   `sigma2 = 2 * sum(x^2) / 32` is taken over the block (not the row);
//! - a block with `amax < 1e-15` gets scale 0;
//! - otherwise the first scale is the weighted least-squares fit `sum(w q x) / sum(w q^2)` of the codes
//!   nearest to `x * (1 / d0)` with `d0 = max / 127` (`max` the first element of largest magnitude,
//!   with its sign), then fifteen candidates `id = (itry - 127) / max`, `itry` in `-7..=7`, each kept
//!   when its fit is better (`sumqx^2 > best * sumq2`);
//! - the codes are finally re-chosen against `1 / d` of the kept f32 `d`, which is stored as f16.
//!
//! ggml's `quantize_row_iq4_nl_ref` (`ntry = -1`, codes of the first fit) is what `from_float` uses
//! for activations, never what a model file holds, so it is not reproduced.
//!
//! # Overflow
//! MXFP4 quantization cannot fail on finite data: the exponent byte is at most 253 (for amax within
//! an ulp or so of f32::MAX, where `log2f` rounds to 128), and there the codes of magnitude 8 and 12
//! would decode to infinity, so their error is infinite and they are never chosen: ggml writes finite
//! records, and so does this library. The dequantizer refuses a record holding a code whose value
//! overflows under its exponent (only possible for `e >= 253`), naming the block. IQ4_NL's f16 scale overflows for inputs
//! beyond about 8e6, handled as for the other f16 headers (see the parent module).
use super::{fp16, read_fp16, write_nibbles};

/// The doubled E2M1 values (`kvalues_mxfp4` in ggml-common.h): codes 8..15 are the negatives of
/// codes 0..7 (8 is a negative zero, which decodes to +0 as an integer).
pub(crate) const KVALUES_MXFP4: [i8; 16] =
    [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// The 16 levels of IQ4_NL (`kvalues_iq4nl` in ggml-common.h), ascending.
pub(crate) const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// `GGML_E8M0_TO_FP32_HALF`: `2^(e - 128)` as an f32, exact for every byte (subnormal for `e < 2`).
pub(crate) fn e8m0_half(e: u8) -> f32 {
    if e < 2 {
        f32::from_bits(0x0020_0000 << e)
    } else {
        f32::from_bits(u32::from(e - 1) << 23)
    }
}

/// The exponent byte of an MXFP4 block whose largest magnitude is `amax` (see the module docs).
fn mxfp4_exponent(amax: f32) -> u8 {
    if amax > 0.0 {
        // Three f32 operations as in C (all exact on these small integers), then C's conversion.
        super::c_float_to_i8(amax.log2().floor() - 2.0 + 127.0) as u8
    } else {
        0
    }
}

/// The index of `x`'s nearest value among `KVALUES_MXFP4[i] * d`, the first one on ties
/// (`best_index_mxfp4`).
fn mxfp4_code(x: f32, d: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (f32::from(KVALUES_MXFP4[0]) * d - x).abs();
    for (i, &k) in KVALUES_MXFP4.iter().enumerate().skip(1) {
        let err = (f32::from(k) * d - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

/// Quantizes one MXFP4 block of 32 values into 17 bytes (`quantize_row_mxfp4_ref`).
pub(crate) fn quantize_mxfp4(x: &[f32], y: &mut [u8]) {
    let mut amax = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
        }
    }
    let e = mxfp4_exponent(amax);
    let d = e8m0_half(e);
    y[0] = e;
    for j in 0..16 {
        y[1 + j] = mxfp4_code(x[j], d) | (mxfp4_code(x[j + 16], d) << 4);
    }
}

/// The first value of an MXFP4 record that decodes to infinity (a large code under an exponent byte
/// of 253 or more), or `None`.
pub(crate) fn mxfp4_overflow(b: &[u8]) -> Option<f32> {
    if b[0] <= 252 {
        return None; // 12 * 2^124 is the largest value then
    }
    let d = e8m0_half(b[0]);
    b[1..17]
        .iter()
        .flat_map(|&q| [q & 0x0F, q >> 4])
        .map(|q| f32::from(KVALUES_MXFP4[usize::from(q)]) * d)
        .find(|v| v.is_infinite())
}

/// Dequantizes one MXFP4 record (`dequantize_row_mxfp4`): `KVALUES_MXFP4[q] * d` in f32.
pub(crate) fn dequantize_mxfp4(b: &[u8], y: &mut [f32]) {
    let d = e8m0_half(b[0]);
    dequantize_table(&b[1..17], &KVALUES_MXFP4, |k| f32::from(k) * d, y);
}

/// Dequantizes one IQ4_NL record (`dequantize_row_iq4_nl`): `d * KVALUES_IQ4NL[q]` in f32.
pub(crate) fn dequantize_iq4_nl(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(b);
    dequantize_table(&b[2..18], &KVALUES_IQ4NL, |k| d * f32::from(k), y);
}

/// Element `j` from the low nibble of `qs[j]`, element `j + 16` from its high nibble, each mapped
/// through `table` then `value`.
fn dequantize_table(qs: &[u8], table: &[i8; 16], value: impl Fn(i8) -> f32, y: &mut [f32]) {
    for (j, &q) in qs.iter().enumerate() {
        y[j] = value(table[usize::from(q & 0x0F)]);
        y[j + 16] = value(table[usize::from(q >> 4)]);
    }
}

/// `best_index_int8(16, KVALUES_IQ4NL, x)`: the nearest level by bisection, the upper one unless the
/// lower is strictly nearer (differences in f32, as C promotes the `int8_t` levels).
fn iq4nl_index(x: f32) -> u8 {
    let v = |i: usize| f32::from(KVALUES_IQ4NL[i]);
    if x <= v(0) {
        return 0;
    }
    if x >= v(15) {
        return 15;
    }
    let (mut lo, mut hi) = (0usize, 15usize);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if x < v(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    if x - v(hi - 1) < v(hi) - x {
        (hi - 1) as u8
    } else {
        hi as u8
    }
}

/// `(sum(w q x), sum(w q^2))` of the codes nearest to `x * id`, accumulated in order as ggml does
/// (`w*q*x` is `(w*q)*x`); the codes go to `l` when given.
fn iq4nl_fit(x: &[f32], w: &[f32], id: f32, mut l: Option<&mut [u8; 32]>) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for (j, (&xj, &wj)) in x.iter().zip(w).enumerate() {
        let code = iq4nl_index(id * xj);
        if let Some(l) = l.as_deref_mut() {
            l[j] = code;
        }
        let q = f32::from(KVALUES_IQ4NL[usize::from(code)]);
        let wq = wj * q;
        sumqx += wq * xj;
        sumq2 += wq * q;
    }
    (sumqx, sumq2)
}

/// Quantizes one IQ4_NL block of 32 values into 18 bytes as ggml's `quantize_iq4_nl` does (with the
/// block's importance weights `qw`, or without: see the module docs).
pub(crate) fn quantize_iq4_nl(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    const NTRY: i32 = 7;
    let mut weight = [0f32; 32];
    match qw {
        Some(qw) => {
            let mut sigma2 = 0.0f32;
            for &v in x {
                sigma2 += v * v;
            }
            sigma2 *= 2.0 / 32.0;
            for ((w, &q), &v) in weight.iter_mut().zip(qw).zip(x) {
                *w = q * (sigma2 + v * v).sqrt();
            }
        }
        None => {
            for (w, &v) in weight.iter_mut().zip(x) {
                *w = v * v;
            }
        }
    }
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let d = if amax < 1e-15 {
        0.0
    } else {
        let v0 = f32::from(KVALUES_IQ4NL[0]);
        // ggml: d = -max / values[0] (ntry > 0), then the fit of the codes nearest to x / d.
        let (sumqx, sumq2) = iq4nl_fit(x, &weight, 1.0 / (-max / v0), None);
        let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
        let mut best = d * sumqx;
        for itry in -NTRY..=NTRY {
            let id = (itry as f32 + v0) / max;
            let (sumqx, sumq2) = iq4nl_fit(x, &weight, id, None);
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        d
    };
    y[0..2].copy_from_slice(&fp16(d).to_le_bytes());
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut l = [0u8; 32];
    for (c, &v) in l.iter_mut().zip(x) {
        *c = iq4nl_index(id * v);
    }
    write_nibbles(y, false, |j| l[j]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e8m0_half_is_two_to_the_e_minus_128() {
        for e in 0..=255u8 {
            assert_eq!(e8m0_half(e), 2f64.powi(i32::from(e) - 128) as f32, "e {e}");
        }
    }

    #[test]
    fn mxfp4_exponent_follows_log2f_and_wraps_like_c() {
        assert_eq!(mxfp4_exponent(0.0), 0);
        assert_eq!(mxfp4_exponent(6.0), 127);
        assert_eq!(mxfp4_exponent(4.0), 127);
        assert_eq!(mxfp4_exponent(3.99), 126);
        // log2f(f32::MAX) rounds to 128.0.
        assert_eq!(mxfp4_exponent(f32::MAX), 253);
        assert_eq!(mxfp4_exponent(2f32.powi(127)), 252);
        // log2f(largest float below 8) rounds to 3.0.
        assert_eq!(mxfp4_exponent(f32::from_bits(8f32.to_bits() - 1)), 128);
        // 2^-140: floor(-140) - 2 + 127 = -15, whose low byte is 241.
        assert_eq!(mxfp4_exponent(2f32.powi(-140)), 241);
    }

    #[test]
    fn iq4nl_index_is_the_nearest_level() {
        for i in -2000..2000 {
            let x = i as f32 / 8.0;
            let got = iq4nl_index(x);
            let err = |k: u8| (x - f32::from(KVALUES_IQ4NL[usize::from(k)])).abs();
            assert!((0..16).all(|k| err(got) <= err(k)), "x {x}: {got}");
        }
    }
}
