//! The ternary GGUF types TQ1_0 and TQ2_0 (BitNet b1.58 and TriLM weights): every value is `-d`, `0`
//! or `d` with one f16 scale `d` per 256 values, byte-exact with ggml (`quantize_row_tq1_0_ref`,
//! `quantize_row_tq2_0_ref` and their dequantizers in `ggml-quants.c`).
//!
//! | type  | id | block | bytes | record | value |
//! |-------|----|-------|-------|--------|-------|
//! | TQ1_0 | 34 | 256 | 54 | `qs[48], qh[4], d: f16` | `(t - 1) * d`, five trits per byte |
//! | TQ2_0 | 35 | 256 | 66 | `qs[64], d: f16` | `(q - 1) * d`, four 2-bit codes per byte |
//!
//! # Quantization (both types)
//! `d = amax` (the block's largest magnitude), `id = d != 0 ? 1/d : 0`, and each value's code is
//! `t = round(x * id) + 1` in `0..=2`, rounding half away from zero (C's `lroundf`). There is no
//! search: the scale is the largest magnitude itself, so a block of nearly ternary weights (BitNet's
//! `{-a, 0, a}`) comes back exactly. When `1/d` overflows f32 (blocks whose largest magnitude is below
//! about 3e-39) every product is infinite or NaN, which C's `lroundf` turns into `LONG_MIN` and the
//! `+ 1` into code 1 after the conversion to `int`; the same code is written here, and such a block
//! decodes to zeros either way (its f16 scale is 0).
//!
//! ggml's `quantize_tq1_0` and `quantize_tq2_0` ignore the importance matrix; so does the weighted
//! path here. These types run this scalar code on every machine (no SIMD body).
//!
//! # TQ2_0 layout
//! Byte `qs[32 c + m]` (`c` in `0..2`, `m` in `0..32`) holds the codes of values `128 c + m + 32 k`,
//! `k` in `0..4`, at bits `2 k..2 k + 2`; `d` is at byte 64. The decoder reads all four code values:
//! code 3, which the quantizer never writes, decodes to `2 d` as in ggml.
//!
//! # TQ1_0 layout
//! Five trits `t0..t4` make the base-3 number `n = 81 t0 + 27 t1 + 9 t2 + 3 t3 + t4` (`0..=242`),
//! stored as the byte `ceil(n * 256 / 243)`: a fixed-point fraction `n / 243` of a turn, so that the
//! decoder finds trit `k` as the integer part of three times the fraction left after multiplying the
//! byte by `3^k` modulo 256: `t_k = ((byte * 3^k) mod 256) * 3 >> 8` (the ceiling keeps every
//! fraction just above its exact value, so no trit is read one short).
//! - `qs[m]`, `m` in `0..32`: values `m + 32 k`, `k` in `0..5` (values `0..160`);
//! - `qs[32 + m]`, `m` in `0..16`: values `160 + m + 16 k` (values `160..240`);
//! - `qh[j]`, `j` in `0..4`: values `240 + j + 4 k`, `k` in `0..4`, as the trits `t0..t3` with
//!   `t4 = 0` (values `240..256`);
//! - `d` at byte 52.
use super::k::QK_K;
use super::{fp16, read_fp16};

/// Bytes of a TQ1_0 record: 48 bytes of five trits, 4 of four, the f16 scale.
pub(crate) const TQ1_0_BYTES: usize = 54;
/// Bytes of a TQ2_0 record: 64 bytes of four 2-bit codes, the f16 scale.
pub(crate) const TQ2_0_BYTES: usize = 66;
/// Byte offset of the f16 scale in a TQ1_0 record.
pub(crate) const TQ1_0_D: usize = 52;
/// Byte offset of the f16 scale in a TQ2_0 record.
pub(crate) const TQ2_0_D: usize = 64;

/// Powers of three modulo 256, the multipliers that bring trit `k` of a TQ1_0 byte to its top.
const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// The stored scale and `1/d` of a block: `d` its largest magnitude.
fn scale(x: &[f32]) -> (f32, f32) {
    let d = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    (d, if d != 0.0 { 1.0 / d } else { 0.0 })
}

/// The code `round(v * id) + 1` of one value (`0`, `1` or `2`), as ggml's `lroundf(...) + 1` on
/// x86-64: a non-finite product gives 1 (see the module docs).
fn code(v: f32, id: f32) -> u8 {
    let p = v * id;
    if p.is_finite() {
        (p.round() as i32 + 1) as u8
    } else {
        1
    }
}

/// The byte of the trits `t` (most significant first, each `0..=2`; unused trailing ones 0).
fn pack_trits(t: [u8; 5]) -> u8 {
    let n = t.iter().fold(0u16, |n, &t| n * 3 + u16::from(t));
    (n * 256).div_ceil(243) as u8
}

/// Trit `k` of a TQ1_0 byte.
fn trit(byte: u8, k: usize) -> u8 {
    ((u16::from(byte.wrapping_mul(POW3[k])) * 3) >> 8) as u8
}

/// Quantizes 256 values into a 54-byte TQ1_0 record.
pub(crate) fn quantize_tq1_0(x: &[f32], y: &mut [u8]) {
    let x: &[f32; QK_K] = x.try_into().expect("a TQ1_0 block holds 256 values");
    let (d, id) = scale(x);
    let c = |i: usize| code(x[i], id);
    for (m, byte) in y[..32].iter_mut().enumerate() {
        *byte = pack_trits(std::array::from_fn(|k| c(m + 32 * k)));
    }
    for (m, byte) in y[32..48].iter_mut().enumerate() {
        *byte = pack_trits(std::array::from_fn(|k| c(160 + m + 16 * k)));
    }
    for (j, byte) in y[48..52].iter_mut().enumerate() {
        *byte = pack_trits(std::array::from_fn(|k| {
            if k < 4 {
                c(240 + j + 4 * k)
            } else {
                0
            }
        }));
    }
    y[TQ1_0_D..TQ1_0_BYTES].copy_from_slice(&fp16(d).to_le_bytes());
}

/// Decodes a 54-byte TQ1_0 record into 256 values.
pub(crate) fn dequantize_tq1_0(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(&b[TQ1_0_D..]);
    let value = |byte: u8, k: usize| (f32::from(trit(byte, k)) - 1.0) * d;
    for m in 0..32 {
        for k in 0..5 {
            y[m + 32 * k] = value(b[m], k);
        }
    }
    for m in 0..16 {
        for k in 0..5 {
            y[160 + m + 16 * k] = value(b[32 + m], k);
        }
    }
    for j in 0..4 {
        for k in 0..4 {
            y[240 + j + 4 * k] = value(b[48 + j], k);
        }
    }
}

/// Quantizes 256 values into a 66-byte TQ2_0 record.
pub(crate) fn quantize_tq2_0(x: &[f32], y: &mut [u8]) {
    let x: &[f32; QK_K] = x.try_into().expect("a TQ2_0 block holds 256 values");
    let (d, id) = scale(x);
    for c in 0..2 {
        for m in 0..32 {
            y[32 * c + m] = (0..4).fold(0u8, |byte, k| {
                byte | code(x[128 * c + m + 32 * k], id) << (2 * k)
            });
        }
    }
    y[TQ2_0_D..TQ2_0_BYTES].copy_from_slice(&fp16(d).to_le_bytes());
}

/// Decodes a 66-byte TQ2_0 record into 256 values.
pub(crate) fn dequantize_tq2_0(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(&b[TQ2_0_D..]);
    for c in 0..2 {
        for m in 0..32 {
            let byte = b[32 * c + m];
            for k in 0..4 {
                let q = (byte >> (2 * k)) & 3;
                y[128 * c + m + 32 * k] = (f32::from(q) - 1.0) * d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trit_string_packs_and_unpacks() {
        // All 243 strings of five trits, and the 81 of four with a zero fifth (qh's bytes).
        for n in 0..243u16 {
            let t: [u8; 5] = std::array::from_fn(|k| (n / 3u16.pow(4 - k as u32) % 3) as u8);
            let byte = pack_trits(t);
            let back: [u8; 5] = std::array::from_fn(|k| trit(byte, k));
            assert_eq!(back, t, "n {n}, byte {byte}");
        }
        assert_eq!(pack_trits([0; 5]), 0);
        assert_eq!(pack_trits([2; 5]), 255);
        assert_eq!(pack_trits([1, 1, 1, 1, 1]), 128);
    }

    #[test]
    fn codes_round_half_away_from_zero() {
        assert_eq!(code(0.5, 1.0), 2);
        assert_eq!(code(-0.5, 1.0), 0);
        assert_eq!(code(0.49, 1.0), 1);
        assert_eq!(code(-0.0, 1.0), 1);
        assert_eq!(code(1e-40, f32::INFINITY), 1);
        assert_eq!(code(0.0, f32::INFINITY), 1);
    }

    #[test]
    fn ternary_blocks_come_back_exactly() {
        let x: [f32; QK_K] = std::array::from_fn(|i| [-0.75f32, 0.0, 0.75][(i * 7 + i / 5) % 3]);
        let mut back = [0f32; QK_K];
        let mut r1 = [0u8; TQ1_0_BYTES];
        quantize_tq1_0(&x, &mut r1);
        dequantize_tq1_0(&r1, &mut back);
        assert_eq!(back, x);
        let mut r2 = [0u8; TQ2_0_BYTES];
        quantize_tq2_0(&x, &mut r2);
        dequantize_tq2_0(&r2, &mut back);
        assert_eq!(back, x);
        // An all-zero block: scale 0, every code 1 (five trits 1 are byte 128; TQ2_0 0b01010101).
        quantize_tq1_0(&[0.0; QK_K], &mut r1);
        assert!(r1[..48].iter().all(|&b| b == 128), "{r1:?}");
        assert!(r1[48..52].iter().all(|&b| b == pack_trits([1, 1, 1, 1, 0])));
        assert_eq!(&r1[52..], &[0, 0]);
        quantize_tq2_0(&[0.0; QK_K], &mut r2);
        assert!(r2[..64].iter().all(|&b| b == 0x55) && r2[64..] == [0, 0]);
    }
}
