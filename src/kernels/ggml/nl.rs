//! The GGUF types whose 4-bit codes index a table of 16 non-uniform values: MXFP4 and NVFP4 (E2M1
//! values under a power-of-two E8M0 scale per 32 values, or an FP8 UE4M3 scale per 16) and IQ4_NL
//! and IQ4_XS (16 hand-tuned levels under an f16 scale per 32 values, or an f16 scale per 256 with
//! 6-bit scales per 32), byte-exact with ggml (`quantize_row_mxfp4_ref`, `quantize_row_nvfp4_ref`,
//! `quantize_iq4_nl`, `quantize_iq4_xs` and their dequantizers in `ggml-quants.c`).
//!
//! | type   | id | block | bytes | record | value |
//! |--------|----|-------|-------|--------|-------|
//! | IQ4_NL | 20 | 32 | 18 | `d: f16, qs[16]` | `d * KVALUES_IQ4NL[q]` |
//! | IQ4_XS | 23 | 256 | 136 | `d: f16, scales_h: u16, scales_l[4], qs[128]` | `d * (ls - 32) * KVALUES_IQ4NL[q]` |
//! | MXFP4  | 39 | 32 | 17 | `e: u8 (E8M0), qs[16]` | `KVALUES_MXFP4[q] * 2^(e - 128)` |
//! | NVFP4  | 40 | 64 | 36 | `d[4]: UE4M3, qs[32]` | `KVALUES_MXFP4[q] * ue4m3(d[s]) / 2` |
//!
//! In IQ4_NL and MXFP4, byte `qs[j]` holds element `j` in its low nibble and element `j + 16` in its
//! high nibble, as in Q4_0; IQ4_XS stores each of its eight 32-value blocks that way
//! (`qs[16 ib..16 ib + 16]`), and NVFP4 each of its four 16-value sub-blocks with the halves at 8
//! (`qs[8 s + j]` holds elements `16 s + j` and `16 s + j + 8`). IQ4_XS's 6-bit scale `ls` of block
//! `ib` is nibble `ib % 2` of `scales_l[ib / 2]` below bits `2 ib..2 ib + 2` of `scales_h`.
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
//! # IQ4_XS
//! `quantize_iq4_xs` runs `quantize_row_iq4_nl_impl` on each 256-value super-block with 32-value
//! blocks and `ntry = 7`:
//! - each block's scale is fitted exactly as an IQ4_NL block's, except that `sigma2` (weighted path)
//!   is `2 * sum(x^2) / 256` over the super-block;
//! - `d = -max_scale / 32` with `max_scale` the first block scale of largest magnitude (with its
//!   sign), stored as f16; each block's scale becomes `l = clamp(nearest_int(scale / d), -32, 31)`
//!   (`nearest_int` rounds half to even), stored as `l + 32`;
//! - the codes are re-chosen against `1 / (d * l)` with the f32 `d` (0 when `d * l` is 0: an all-zero
//!   super-block is stored with `d = -0.0`, every `l` 0 and every code 8, the level 1).
//!
//! # NVFP4
//! ggml's NVFP4 has no per-tensor scale: each 16-value sub-block's scale is
//! `ggml_fp32_to_ue4m3(amax / 6)` (6 the largest E2M1 magnitude; rounding half up on the first dropped
//! mantissa bit, 448 for everything from 256 on, and ggml's own rounding of subnormals, see
//! [`fp32_to_ue4m3`]),
//! and its codes are MXFP4's nearest doubled-E2M1 values under half of that scale's value. Every
//! UE4M3 byte decodes to a finite value (0 and 0x7F to 0), so no record is refused.
//! `quantize_nvfp4` ignores the importance matrix; so does the weighted path here.
//!
//! # Overflow
//! MXFP4 quantization cannot fail on finite data: the exponent byte is at most 253 (for amax within
//! an ulp or so of f32::MAX, where `log2f` rounds to 128), and there the codes of magnitude 8 and 12
//! would decode to infinity, so their error is infinite and they are never chosen: ggml writes finite
//! records, and so does this library. The dequantizer refuses a record holding a code whose value
//! overflows under its exponent (only possible for `e >= 253`), naming the block. IQ4_NL's f16 scale
//! overflows for inputs beyond about 8e6 (IQ4_XS's for inputs 32 times larger), handled as for the
//! other f16 headers (see the parent module). NVFP4 saturates instead: its largest scale is 448, so
//! values beyond 6 * 448 are clamped to +-2688, as ggml writes them.
use super::{fp16, read_fp16, write_nibbles};

/// The doubled E2M1 values (`kvalues_mxfp4` in ggml-common.h): codes 8..15 are the negatives of
/// codes 0..7 (8 is a negative zero, which decodes to +0 as an integer).
pub(crate) const KVALUES_MXFP4: [i8; 16] =
    [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// The 16 levels of IQ4_NL (`kvalues_iq4nl` in ggml-common.h), ascending.
pub(crate) const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Bytes of an IQ4_XS record, and its 32-value blocks per 256-value super-block.
pub(crate) const IQ4_XS_BYTES: usize = 136;
const IQ4_XS_BLOCKS: usize = 8;
/// Values of an NVFP4 block, bytes of its record, values per UE4M3 scale and scales per block.
pub(crate) const QK_NVFP4: usize = 64;
pub(crate) const NVFP4_BYTES: usize = 36;
const NVFP4_SUB: usize = 16;
const NVFP4_SUBS: usize = QK_NVFP4 / NVFP4_SUB;

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

/// `best_index_int8(16, KVALUES_IQ4NL, x)`, as ggml writes it: the nearest level by bisection, the
/// upper one unless the lower is strictly nearer (differences in f32, as C promotes the `int8_t`
/// levels). The reference the tests hold [`iq4nl_nearest`] to.
#[cfg(test)]
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

/// [`KVALUES_IQ4NL`] as f32.
const LEVELS_IQ4NL: [f32; 16] = {
    let mut l = [0f32; 16];
    let mut i = 0;
    while i < 16 {
        l[i] = KVALUES_IQ4NL[i] as f32;
        i += 1;
    }
    l
};

/// [`iq4nl_index`] of `id * x[j]` for each of the 32 values, into `codes`, and its level, into
/// `levels`, without branches, so that the loop vectorizes (the search is most of IQ4's time): the
/// upper level is the first one above `a = id * x[j]` and the lower the one before it (count of the
/// inner levels at or below `a`), then ggml's tie rule between them in f32. The same result as the
/// bisection for every `a` but NaN (never reached: `id` and `x` are finite, so `a` is finite or
/// infinite); the tests hold the two to each other.
fn iq4nl_nearest(x: &[f32], id: f32, codes: &mut [u8; 32], levels: &mut [f32; 32]) {
    for ((&xj, c), q) in x.iter().zip(codes.iter_mut()).zip(levels.iter_mut()) {
        let a = id * xj;
        let (mut lo, mut count) = (LEVELS_IQ4NL[0], 0u8);
        for &v in &LEVELS_IQ4NL[1..15] {
            let above = a >= v;
            lo = if above { v } else { lo };
            count += u8::from(above);
        }
        let mut hi = LEVELS_IQ4NL[15];
        for &v in LEVELS_IQ4NL[1..15].iter().rev() {
            hi = if a < v { v } else { hi };
        }
        let lower = a - lo < hi - a;
        *c = count + 1 - u8::from(lower);
        *q = if lower { lo } else { hi };
    }
}

/// `(sum(w q x), sum(w q^2))` of the levels `q` nearest to `x * id`, accumulated in order as ggml
/// does (`w*q*x` is `(w*q)*x`).
fn iq4nl_fit(x: &[f32], w: &[f32], id: f32) -> (f32, f32) {
    let (mut codes, mut levels) = ([0u8; 32], [0f32; 32]);
    iq4nl_nearest(x, id, &mut codes, &mut levels);
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for ((&xj, &wj), &q) in x.iter().zip(w).zip(&levels) {
        let wq = wj * q;
        sumqx += wq * xj;
        sumq2 += wq * q;
    }
    (sumqx, sumq2)
}

/// The weights of `quantize_row_iq4_nl_impl` for one 32-value block `x`: `x^2` without an importance
/// matrix, `qw[j] * sqrtf(sigma2 + x^2)` with one (`sigma2` that of the whole super-block).
fn iq4_weights(x: &[f32], qw: Option<&[f32]>, sigma2: f32, weight: &mut [f32; 32]) {
    match qw {
        Some(qw) => {
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
}

/// `2 * sum(x^2) / n`, accumulated in order (`sigma2` of `quantize_row_iq4_nl_impl`, over its
/// super-block: 32 values for IQ4_NL, 256 for IQ4_XS).
fn iq4_sigma2(x: &[f32]) -> f32 {
    let mut sigma2 = 0.0f32;
    for &v in x {
        sigma2 += v * v;
    }
    sigma2 * (2.0 / x.len() as f32)
}

/// The scale `quantize_row_iq4_nl_impl` fits to one 32-value block under `weight` with `ntry = 7`
/// (see the module docs): 0 for a block whose largest magnitude is below 1e-15, else the best of the
/// first least-squares fit and the fifteen candidates.
fn iq4_block_scale(x: &[f32], weight: &[f32]) -> f32 {
    const NTRY: i32 = 7;
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < 1e-15 {
        return 0.0;
    }
    let v0 = f32::from(KVALUES_IQ4NL[0]);
    // ggml: d = -max / values[0] (ntry > 0), then the fit of the codes nearest to x / d.
    let (sumqx, sumq2) = iq4nl_fit(x, weight, 1.0 / (-max / v0));
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        let id = (itry as f32 + v0) / max;
        let (sumqx, sumq2) = iq4nl_fit(x, weight, id);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Quantizes one IQ4_NL block of 32 values into 18 bytes as ggml's `quantize_iq4_nl` does (with the
/// block's importance weights `qw`, or without: see the module docs).
pub(crate) fn quantize_iq4_nl(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let mut weight = [0f32; 32];
    iq4_weights(x, qw, iq4_sigma2(x), &mut weight);
    let d = iq4_block_scale(x, &weight);
    y[0..2].copy_from_slice(&fp16(d).to_le_bytes());
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (mut l, mut levels) = ([0u8; 32], [0f32; 32]);
    iq4nl_nearest(x, id, &mut l, &mut levels);
    write_nibbles(y, false, |j| l[j]);
}

/// Quantizes one IQ4_XS super-block of 256 values into 136 bytes as ggml's `quantize_iq4_xs` does
/// (with the super-block's importance weights `qw`, or without: see the module docs).
pub(crate) fn quantize_iq4_xs(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let sigma2 = iq4_sigma2(x);
    let mut scales = [0f32; IQ4_XS_BLOCKS];
    let (mut amax_scale, mut max_scale) = (0.0f32, 0.0f32);
    let mut weight = [0f32; 32];
    for (ib, (xb, s)) in x.chunks_exact(32).zip(&mut scales).enumerate() {
        iq4_weights(
            xb,
            qw.map(|w| &w[32 * ib..32 * ib + 32]),
            sigma2,
            &mut weight,
        );
        *s = iq4_block_scale(xb, &weight);
        if s.abs() > amax_scale {
            amax_scale = s.abs();
            max_scale = *s;
        }
    }
    // The super-block scale maps the largest sub-block scale to -32, the end of the 6-bit range
    // -32..=31 that keeps the sign of max_scale's codes; the f32 d (not its f16) scales the codes.
    let d = -max_scale / 32.0;
    y[0..2].copy_from_slice(&fp16(d).to_le_bytes());
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (mut scales_h, mut scales_l) = (0u16, [0u8; 4]);
    let qs = &mut y[8..136];
    for (ib, (xb, &s)) in x.chunks_exact(32).zip(&scales).enumerate() {
        let l = super::k::nearest_int(id * s).clamp(-32, 31);
        let dl = d * l as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        let (mut codes, mut levels) = ([0u8; 32], [0f32; 32]);
        iq4nl_nearest(xb, idl, &mut codes, &mut levels);
        for j in 0..16 {
            qs[16 * ib + j] = codes[j] | (codes[j + 16] << 4);
        }
        let l = (l + 32) as u8;
        scales_l[ib / 2] |= (l & 0x0F) << (4 * (ib % 2));
        scales_h |= u16::from(l >> 4) << (2 * ib);
    }
    y[2..4].copy_from_slice(&scales_h.to_le_bytes());
    y[4..8].copy_from_slice(&scales_l);
}

/// Dequantizes one IQ4_XS record (`dequantize_row_iq4_xs`): sub-block `ib` is
/// `(d * (ls - 32)) * KVALUES_IQ4NL[q]` in f32, `ls` its 6-bit scale.
pub(crate) fn dequantize_iq4_xs(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(b);
    let scales_h = u16::from_le_bytes([b[2], b[3]]);
    for (ib, yb) in y.chunks_exact_mut(32).enumerate() {
        let ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0x0F)
            | ((((scales_h >> (2 * ib)) & 3) as u8) << 4);
        let dl = d * (i32::from(ls) - 32) as f32;
        let qs = &b[8 + 16 * ib..8 + 16 * ib + 16];
        dequantize_table(qs, &KVALUES_IQ4NL, |k| dl * f32::from(k), yb);
    }
}

/// `ggml_ue4m3_to_fp32`: the value of a UE4M3 byte (4 exponent bits with bias 7, 3 mantissa bits,
/// bit 7 ignored) halved, as `KVALUES_MXFP4` holds doubled E2M1 values. 0 and 0x7F (E4M3's NaN)
/// give 0; every other byte a finite value of at most 240, exactly (powers of two built from bits).
pub(crate) fn ue4m3_half(u: u8) -> f32 {
    if u == 0 || u == 0x7F {
        return 0.0;
    }
    let exp = u32::from((u >> 3) & 0x0F);
    let man = f32::from(u & 0x07);
    if exp == 0 {
        man * f32::from_bits((127 - 10) << 23) // man * 2^-9, halved
    } else {
        (1.0 + man / 8.0) * f32::from_bits((exp + 127 - 8) << 23) // 2^(exp - 7), halved
    }
}

/// `ggml_fp32_to_ue4m3`: the UE4M3 byte of `x`, 0 for `x <= 0` (or NaN); every value from 256 on
/// (UE4M3 exponent 15, or a rounding that carries into it) gives 0x7E (448), as in ggml; other normal
/// values round half up on the first dropped mantissa bit, subnormal ones (below 2^-6) are
/// `(int)(x * 512 + 0.5)` clamped to `1..=7` (0 below 1), as ggml computes them.
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x > 0)` is ggml's test, true for NaN
pub(crate) fn fp32_to_ue4m3(x: f32) -> u8 {
    if !(x > 0.0) {
        return 0;
    }
    let x = if x > 448.0 { 448.0 } else { x };
    let bits = x.to_bits();
    let mut exp = ((bits >> 23) & 0xFF) as i32 - 127 + 7;
    if exp <= 0 {
        // f32 arithmetic, then C's truncating conversion of a value in 0.5..8.5.
        let man = ((x * 512.0 + 0.5) as i32).min(7);
        return if man < 1 { 0 } else { man as u8 };
    }
    if exp >= 15 {
        return 0x7E;
    }
    let mut man = ((bits >> 20) & 0x07) + ((bits >> 19) & 1);
    if man > 7 {
        man = 0;
        exp += 1;
        if exp >= 15 {
            return 0x7E;
        }
    }
    ((exp as u8) << 3) | man as u8
}

/// Quantizes one NVFP4 block of 64 values into 36 bytes (`quantize_row_nvfp4_ref`): per 16-value
/// sub-block `s`, the UE4M3 scale of `amax / 6` in byte `s`, then the nearest doubled-E2M1 codes
/// under its halved value (`mxfp4_code`) in `qs[8 s..8 s + 8]` at byte 4.
pub(crate) fn quantize_nvfp4(x: &[f32], y: &mut [u8]) {
    let (scales, qs) = y.split_at_mut(NVFP4_SUBS);
    for ((xb, ue), q) in x
        .chunks_exact(NVFP4_SUB)
        .zip(scales)
        .zip(qs.chunks_exact_mut(NVFP4_SUB / 2))
    {
        let mut amax = 0.0f32;
        for &v in xb {
            if amax < v.abs() {
                amax = v.abs();
            }
        }
        *ue = fp32_to_ue4m3(amax / 6.0);
        let d = ue4m3_half(*ue);
        for (j, q) in q.iter_mut().enumerate() {
            *q = mxfp4_code(xb[j], d) | (mxfp4_code(xb[j + 8], d) << 4);
        }
    }
}

/// Dequantizes one NVFP4 record (`dequantize_row_nvfp4`): `KVALUES_MXFP4[q] * d` in f32 with `d`
/// the halved UE4M3 scale of the value's sub-block.
pub(crate) fn dequantize_nvfp4(b: &[u8], y: &mut [f32]) {
    for (s, yb) in y.chunks_exact_mut(NVFP4_SUB).enumerate() {
        let d = ue4m3_half(b[s]);
        let qs = &b[NVFP4_SUBS + 8 * s..NVFP4_SUBS + 8 * s + 8];
        for (j, &q) in qs.iter().enumerate() {
            yb[j] = f32::from(KVALUES_MXFP4[usize::from(q & 0x0F)]) * d;
            yb[j + 8] = f32::from(KVALUES_MXFP4[usize::from(q >> 4)]) * d;
        }
    }
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
    fn ue4m3_half_is_half_the_e4m3_value() {
        for u in 0..=255u8 {
            let (e, m) = (i32::from((u >> 3) & 0x0F), f64::from(u & 7));
            let v = if e == 0 {
                m * 2f64.powi(-9)
            } else {
                (1.0 + m / 8.0) * 2f64.powi(e - 7)
            };
            let want = if u == 0x7F { 0.0 } else { v / 2.0 };
            assert_eq!(f64::from(ue4m3_half(u)), want, "byte {u:#04x}");
        }
        // Bit 7 is ignored, except that 0xFF is not 0x7F's zero.
        assert_eq!(ue4m3_half(0xFF), 240.0);
        assert_eq!(ue4m3_half(0x80), 0.0);
    }

    #[test]
    fn fp32_to_ue4m3_rounds_like_ggml() {
        // Every byte below exponent 15 is its own value's byte; from 256 (exponent 15) on, ggml
        // saturates to 0x7E (448).
        for u in 1..=0x7Eu8 {
            let want = if u < 0x78 { u } else { 0x7E };
            assert_eq!(fp32_to_ue4m3(2.0 * ue4m3_half(u)), want, "byte {u:#04x}");
        }
        for x in [0.0, -0.0, -1.0, f32::NAN, 1e-4] {
            assert_eq!(fp32_to_ue4m3(x), 0, "{x}");
        }
        // Normal values round half up on bit 19 (away from zero at the midpoint 1.0625).
        assert_eq!(fp32_to_ue4m3(1.0625), 0x39);
        assert_eq!(fp32_to_ue4m3(f32::from_bits(1.0625f32.to_bits() - 1)), 0x38);
        // Saturation at 448 (0x7E), also when rounding carries past the top exponent.
        assert_eq!(fp32_to_ue4m3(1e30), 0x7E);
        assert_eq!(fp32_to_ue4m3(248.0), 0x7E);
        // Subnormals: (int)(x * 512 + 0.5), at most 7 even just below 2^-6 (whose byte is 8).
        assert_eq!(fp32_to_ue4m3(2.5 / 512.0), 3);
        assert_eq!(
            fp32_to_ue4m3(f32::from_bits((1.0f32 / 64.0).to_bits() - 1)),
            7
        );
        assert_eq!(fp32_to_ue4m3(1.0 / 64.0), 8);
    }

    #[test]
    fn all_zero_iq4_xs_super_block_is_ggmls() {
        // max_scale 0: d = -0.0 (f16 0x8000), every l = 0 stored as 32 (scales_h bits 0b10), and
        // every code nearest to 0, the level 1 (index 8).
        let mut y = [0u8; IQ4_XS_BYTES];
        quantize_iq4_xs(&[0.0; 256], None, &mut y);
        assert_eq!(y[..8], [0x00, 0x80, 0xAA, 0xAA, 0, 0, 0, 0]);
        assert!(y[8..].iter().all(|&b| b == 0x88));
    }

    #[test]
    fn iq4_xs_scales_pack_and_unpack() {
        // Blocks of growing magnitude and alternating sign: the 6-bit scales span -32..=31.
        let x: Vec<f32> = (0..256)
            .map(|i| {
                let b = i / 32;
                let s = if b % 2 == 0 { 1.0 } else { -1.0 };
                s * (b + 1) as f32 * (((i * 7) % 11) as f32 - 5.0)
            })
            .collect();
        let mut y = [0u8; IQ4_XS_BYTES];
        quantize_iq4_xs(&x, None, &mut y);
        let mut back = [0f32; 256];
        dequantize_iq4_xs(&y, &mut back);
        let d = read_fp16(&y);
        let scales_h = u16::from_le_bytes([y[2], y[3]]);
        for ib in 0..8 {
            let ls = ((y[4 + ib / 2] >> (4 * (ib % 2))) & 0x0F)
                | (((scales_h >> (2 * ib)) & 3) as u8) << 4;
            let dl = d * (f32::from(ls) - 32.0);
            for j in 0..32 {
                let q = y[8 + 16 * ib + j % 16] >> (4 * (j / 16)) & 0x0F;
                assert_eq!(
                    back[32 * ib + j],
                    dl * f32::from(KVALUES_IQ4NL[usize::from(q)])
                );
            }
        }
        // The largest block (the last, negative) takes the scale -32; its values come back close.
        assert_eq!(y[7] >> 4 | (((scales_h >> 14) & 3) as u8) << 4, 0);
        for (a, b) in x[224..].iter().zip(&back[224..]) {
            assert!((a - b).abs() <= 4.0, "{a} vs {b}"); // half the widest step, 40 * 24 / 127
        }
    }

    #[test]
    fn nvfp4_codes_are_the_nearest_under_each_sub_block_scale() {
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) * (1 + i / 16) as f32)
            .collect();
        let mut y = [0u8; NVFP4_BYTES];
        quantize_nvfp4(&x, &mut y);
        let mut back = [0f32; 64];
        dequantize_nvfp4(&y, &mut back);
        for (s, (xb, bb)) in x.chunks(16).zip(back.chunks(16)).enumerate() {
            let d = ue4m3_half(y[s]);
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert_eq!(y[s], fp32_to_ue4m3(amax / 6.0));
            for (&v, &b) in xb.iter().zip(bb) {
                let best = KVALUES_MXFP4
                    .iter()
                    .map(|&k| (f32::from(k) * d - v).abs())
                    .fold(f32::INFINITY, f32::min);
                assert_eq!((b - v).abs(), best, "sub-block {s}: {v} -> {b}");
            }
        }
    }

    #[test]
    fn branch_free_search_is_ggmls_bisection() {
        // Every level, the midpoints between neighbours and the floats around them, the ends,
        // infinities, and random bit patterns of every magnitude (NaN excluded: never searched).
        let mut xs: Vec<f32> = vec![
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -f32::MAX,
        ];
        for w in LEVELS_IQ4NL.windows(2) {
            for c in [w[0], w[1], (w[0] + w[1]) / 2.0] {
                for k in -3i32..=3 {
                    xs.push(f32::from_bits(c.to_bits().wrapping_add_signed(k)));
                }
            }
        }
        let mut s = 0x9E37_79B9u32;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let v = f32::from_bits(s);
            if !v.is_nan() {
                xs.push(v);
            }
            xs.push((s % 60_000) as f32 / 200.0 - 150.0);
        }
        for chunk in xs.chunks(32) {
            let mut x = [0f32; 32];
            x[..chunk.len()].copy_from_slice(chunk);
            for id in [1.0f32, -1.0, 0.37] {
                let (mut codes, mut levels) = ([0u8; 32], [0f32; 32]);
                iq4nl_nearest(&x, id, &mut codes, &mut levels);
                for j in 0..32 {
                    let want = iq4nl_index(id * x[j]);
                    assert_eq!(codes[j], want, "x {} id {id}", x[j]);
                    assert_eq!(levels[j], LEVELS_IQ4NL[usize::from(want)]);
                }
            }
        }
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
