//! GGML K-quants Q2_K, Q3_K, Q4_K, Q5_K and Q6_K: super-blocks of 256 values, following ggml's
//! reference quantizers `quantize_row_q2_K_ref`, `_q4_K_ref` and `_q5_K_ref` (with
//! `make_qkx2_quants`), `quantize_row_q3_K_ref` (with `make_q3_quants`) and `quantize_row_q6_K_ref`
//! (with `make_qx_quants`), operation for operation in f32 (no fused multiply-add), and ggml's
//! dequantizers. The entry points are those of [`super::ggml`] with `GgmlType::Q2_K` ... `Q6_K`.
//!
//! With importance weights (ggml's `quantize_row_q2_K_impl` ... `_q6_K_impl`) the sub-block fits are
//! weighted by `qw * sqrt(sigma2 + x^2)` (Q6_K: `qw` alone) and searched harder
//! (`make_qkx3_quants`, 37 candidate scales, for Q2_K, Q4_K and Q5_K; the weighted `make_qx_quants`
//! for Q3_K and Q6_K), and the sub-block scales and mins of Q2_K, Q4_K and Q5_K are themselves
//! quantized by `make_qp_quants` and Q3_K's by `make_qx_quants`, instead of by a plain
//! `max / levels` rule. The layouts are the same; only the chosen numbers differ.
//!
//! # Q2_K (84 bytes per 256 values)
//! `scales[16], qs[64], d: f16, dmin: f16`. Sixteen sub-blocks of 16 values; `scales[j]` holds the
//! 4-bit scale of sub-block `j` in its low nibble and its 4-bit min in its high nibble. Codes: for each
//! half `h` (128 values) and `i` in 0..32, byte `qs[32h + i]` holds values `128h + i + 32k` (`k` =
//! 0..4) in bits `2k..2k+2`. Value: `(d * sc_j) * q - (dmin * m_j)`.
//!
//! # Q3_K (110 bytes per 256 values)
//! `hmask[32], qs[64], scales[12], d: f16`. Sixteen sub-blocks of 16 values with signed 6-bit scales
//! (stored plus 32): the low four bits of scale `j` are the low nibble of `scales[j]` (`j < 8`) or the
//! high nibble of `scales[j - 8]`, its high two bits are bits `2(j/4)..` of `scales[8 + j % 4]`. The
//! low two bits of the 3-bit codes are packed in `qs` as in Q2_K; the third bit of value `o` is bit
//! `o / 32` of `hmask[o % 32]`. Value: `(d * (sc_j - 32)) * (q - 4)` with `q` the 3-bit code.
//!
//! # Q4_K (144 bytes per 256 values)
//! `d: f16, dmin: f16, scales[12], qs[128]`. Eight sub-blocks of 32 values; sub-block `j` has a 6-bit
//! scale `sc_j` and a 6-bit min `m_j`, packed in `scales` as ggml's `get_scale_min_k4`: for `j < 4`,
//! `sc_j = scales[j] & 63`, `m_j = scales[j + 4] & 63`; for `j >= 4`,
//! `sc_j = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4)`,
//! `m_j = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4)`. Codes: for each 64 values `c..c+64`, byte
//! `qs[c/2 + l]` holds value `c + l` in its low nibble and `c + 32 + l` in its high nibble.
//! Value: `(d * sc_j) * q - (dmin * m_j)`.
//!
//! # Q5_K (176 bytes per 256 values)
//! `d: f16, dmin: f16, scales[12], qh[32], qs[128]`: Q4_K's header and nibbles, plus a fifth bit per
//! value: for the 64 values `64c..64c+64`, bit `2c` of `qh[l]` belongs to value `64c + l` and bit
//! `2c + 1` to value `64c + 32 + l`. Value: `(d * sc_j) * q - (dmin * m_j)`, `q` in 0..32.
//!
//! # Q6_K (210 bytes per 256 values)
//! `ql[128], qh[64], scales: i8[16], d: f16`. Sixteen sub-blocks of 16 values with int8 scales. For
//! each half `h` (128 values) and `l` in 0..32, with `ql = ql[64h..]`, `qh = qh[32h..]`: the 6-bit codes
//! of values `128h + l + 32k` (`k` = 0..4) are `(ql[l] & 15) | ((qh[l] & 3) << 4)`,
//! `(ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)`, `(ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)`,
//! `(ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)`. Value: `(d * scales[i / 16]) * (q - 32)`.

use super::{fp16, read_fp16};

/// Values per K-quant super-block.
pub(crate) const QK_K: usize = 256;
/// Bytes of a Q2_K record.
pub(crate) const Q2_K_BYTES: usize = 84;
/// Bytes of a Q3_K record.
pub(crate) const Q3_K_BYTES: usize = 110;
/// Bytes of a Q4_K record.
pub(crate) const Q4_K_BYTES: usize = 144;
/// Bytes of a Q5_K record.
pub(crate) const Q5_K_BYTES: usize = 176;
/// Bytes of a Q6_K record.
pub(crate) const Q6_K_BYTES: usize = 210;

/// ggml's `GROUP_MAX_EPS`.
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round to nearest, ties to even, through the magic-number addition (valid for
/// `|fval| <= 4194303`; beyond that it gives what ggml's does, wrapped bits, never a panic).
pub(crate) fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// ggml's `make_qkx2_quants`: asymmetric codes `L[i]` in `0..=nmax` for `x` with a least-squares
/// refinement of scale and min over `nstep + 1` candidate scales; returns `(scale, the_min)` where the
/// values are approximated by `scale * L - the_min`.
///
/// It is also ggml's `make_qkx3_quants` whenever that one is given weights (always, on the
/// importance path): the two differ only in their degenerate test, `max == min` against
/// `max <= min`, which agree because `max >= min` holds for any values here.
#[allow(clippy::too_many_arguments)]
pub(super) fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out[..n].fill(0);
        return (0.0, -min);
    }
    let nmax_f = nmax as f32;
    let mut iscale = nmax_f / (max - min);
    let mut scale = 1.0 / iscale;
    // Each candidate first rounds all values (independent, so the compiler vectorizes it), then
    // accumulates its sums and its error in ggml's order (sequential f32 additions).
    debug_assert!(
        n <= 32,
        "make_qkx2_quants fits sub-blocks of at most 32 values"
    );
    let (x, weights, l_out, laux) = (&x[..n], &weights[..n], &mut l_out[..n], &mut laux[..n]);
    let round_all = |iscale: f32, min: f32, codes: &mut [u8]| {
        for (q, &v) in codes.iter_mut().zip(x) {
            *q = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
        }
    };
    let error = |scale: f32, min: f32, codes: &[u8]| {
        let mut terms = [0.0f32; 32];
        for ((t, (&q, &v)), &w) in terms.iter_mut().zip(codes.iter().zip(x)).zip(weights) {
            let diff = scale * f32::from(q) + min - v;
            *t = w * if use_mad { diff.abs() } else { diff * diff };
        }
        terms[..codes.len()].iter().fold(0.0f32, |acc, &t| acc + t)
    };
    round_all(iscale, min, l_out);
    let mut best_error = error(scale, min, l_out);
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax_f) / (max - min);
        round_all(iscale, min, laux);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((&q, &w), &v) in laux.iter().zip(weights).zip(x) {
            let lf = f32::from(q);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = error(this_scale, this_min, laux);
            if cur_error < best_error {
                l_out.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `make_qx_quants` with `rmse_type = 1`: symmetric codes `L[i] = l + nmax`, `l` in
/// `-nmax..nmax`, with a search over 18 perturbed scales that keeps the one maximizing
/// `sumlx^2 / suml2`; returns the least-squares scale. The error weights are `qw` (the importance
/// path) or, without them, `x^2` (the reference path).
pub(super) fn make_qx_quants(nmax: i32, x: &[f32], qw: Option<&[f32]>, l_out: &mut [i8]) -> f32 {
    let n = x.len();
    debug_assert!(
        n <= 32,
        "make_qx_quants fits sub-blocks of at most 32 values"
    );
    let mut default_w = [0.0f32; 32];
    let w: &[f32] = match qw {
        Some(q) => &q[..n],
        None => {
            for (d, &v) in default_w.iter_mut().zip(x) {
                *d = v * v;
            }
            &default_w[..n]
        }
    };
    let l_out = &mut l_out[..n];
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let nmax_f = nmax as f32;
    // The signed codes `l` of one candidate scale (independent, so the compiler vectorizes them),
    // then its sums in ggml's order (sequential f32 additions).
    let mut l = [0i32; 32];
    let candidate = |iscale: f32, l: &mut [i32; 32]| {
        for (c, &v) in l.iter_mut().zip(x) {
            *c = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        }
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for ((&c, &v), &wi) in l.iter().zip(x).zip(w) {
            let lf = c as f32;
            sumlx += wi * v * lf;
            suml2 += wi * lf * lf;
        }
        (sumlx, suml2)
    };
    let store = |l: &[i32; 32], l_out: &mut [i8]| {
        for (o, &c) in l_out.iter_mut().zip(l) {
            *o = (c + nmax) as i8;
        }
    };
    let (sumlx, suml2) = candidate(-nmax_f / max, &mut l);
    store(&l, l_out);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let (sumlx, suml2) = candidate(-(nmax_f + 0.1 * is as f32) / max, &mut l);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(&l, l_out);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_qp_quants`: non-negative codes `L[i]` in `0..=nmax` for the non-negative values `x`
/// (the sub-block scales or mins of a K-quant super-block) under the weights `qw`. The first scale
/// `max / nmax` is compared with eight perturbed ones (`max / (nmax + 0.1 is)`, `is` in -4..=4) by
/// weighted squared error; the best one's codes are then improved one value at a time (up to five
/// passes) while that raises `sumlx^2 / suml2`. Returns the least-squares scale `sumlx / suml2`.
///
/// Like ggml, the codes are clamped only from above and stored as bytes: a negative `x` (which the
/// K-quants never produce for finite inputs) wraps as it does in C rather than panicking.
fn make_qp_quants(nmax: i32, x: &[f32], l_out: &mut [u8], qw: &[f32]) -> f32 {
    let n = x.len();
    // `MAX(max, x[i])` is `max > x[i] ? max : x[i]`.
    let max = x.iter().fold(0.0f32, |m, &v| if m > v { m } else { v });
    if max < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let nmax_f = nmax as f32;
    let mut iscale = nmax_f / max;
    for i in 0..n {
        l_out[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * f32::from(l_out[i]);
        best_mse += qw[i] * diff * diff;
    }
    for is in -4..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1 * is as f32 + nmax_f) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * l as f32;
            mse += qw[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax);
        l_out[i] = l as u8;
        let w = qw[i];
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    let (sumlx, suml2) = refine_codes(
        x,
        |i| qw[i],
        l_out,
        (sumlx, suml2),
        i32::from,
        |v| v as u8,
        |v| v.min(nmax),
        true,
    );
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` of a Q4_K `scales` array.
fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs the 6-bit scale `ls` and min `lm` of sub-block `j` into the 12-byte `scales` array of a
/// Q4_K / Q5_K record (the inverse of [`get_scale_min_k4`]; `scales` starts zeroed).
fn put_scale_min_k4(j: usize, ls: u8, lm: u8, sc: &mut [u8]) {
    if j < 4 {
        sc[j] = ls;
        sc[j + 4] = lm;
    } else {
        sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
        sc[j - 4] |= (ls >> 4) << 6;
        sc[j] |= (lm >> 4) << 6;
    }
}

/// The header and codes shared by Q4_K and Q5_K (`quantize_row_q4_K_ref` / `_q5_K_ref` differ only
/// in `nmax` and the search of `make_qkx2_quants`): fits each 32-value sub-block, writes `d`, `dmin`
/// and the packed 6-bit scales and mins into `head[0..16]`, and leaves the codes (`0..=nmax`) in `l`.
fn quantize_scale_min_k4(
    x: &[f32],
    head: &mut [u8],
    l: &mut [u8; QK_K],
    nmax: i32,
    rmin: f32,
    nstep: i32,
) {
    let mut laux = [0u8; 32];
    let mut weights = [0.0f32; 32];
    let mut mins = [0.0f32; 8];
    let mut scales = [0.0f32; 8];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..8 {
        let xb = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xb {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xb) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(
            nmax,
            xb,
            &weights,
            &mut l[32 * j..32 * j + 32],
            &mut laux,
            rmin,
            0.1,
            nstep,
            false,
        );
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let sc = &mut head[4..16];
    sc.fill(0);
    for j in 0..8 {
        // `uint8_t ls = nearest_int(..)` keeps the low byte, then MIN(63, ls).
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        put_scale_min_k4(j, ls, lm, sc);
    }
    head[0..2].copy_from_slice(&fp16(max_scale / 63.0).to_le_bytes());
    head[2..4].copy_from_slice(&fp16(max_min / 63.0).to_le_bytes());
    requantize_scale_min_k4(x, head, l, nmax);
}

/// The last step of Q4_K and Q5_K (both paths): once `head` holds `d`, `dmin` and the packed 6-bit
/// scales and mins, each sub-block whose stored scale is not zero is rounded again against the
/// stored (f16, 6-bit) parameters: `L = clamp(nearest((x + dmin m) / (d sc)), 0, nmax)`. Sub-blocks
/// with a zero scale keep the codes of their fit.
fn requantize_scale_min_k4(x: &[f32], head: &[u8], l: &mut [u8; QK_K], nmax: i32) {
    let d_all = read_fp16(&head[0..2]);
    let dmin_all = read_fp16(&head[2..4]);
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, &head[4..16]);
        let d = d_all * f32::from(s);
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * f32::from(m);
        for ii in 0..32 {
            let q = nearest_int((x[32 * j + ii] + dm) / d);
            l[32 * j + ii] = q.clamp(0, nmax) as u8;
        }
    }
}

/// Packs the 4-bit codes of a Q4_K record: for each 64 values `c..c+64`, byte `qs[c/2 + i]` holds
/// value `c + i` in its low nibble and `c + 32 + i` in its high nibble.
fn pack_q4_k(l: &[u8; QK_K], y: &mut [u8]) {
    let qs = &mut y[16..144];
    for (c, chunk) in l.chunks_exact(64).enumerate() {
        for i in 0..32 {
            qs[32 * c + i] = chunk[i] | (chunk[i + 32] << 4);
        }
    }
}

/// Packs the 5-bit codes of a Q5_K record: the low nibbles as Q4_K's, the fifth bits in `qh`.
fn pack_q5_k(l: &[u8; QK_K], y: &mut [u8]) {
    let (qh, qs) = y[16..176].split_at_mut(32);
    qh.fill(0);
    for (c, chunk) in l.chunks_exact(64).enumerate() {
        for i in 0..32 {
            let (lo, hi) = (chunk[i], chunk[i + 32]);
            qh[i] |= ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1));
            qs[32 * c + i] = (lo & 0xF) | ((hi & 0xF) << 4);
        }
    }
}

/// The header and codes shared by Q4_K and Q5_K on the importance path (`quantize_row_q4_K_impl` /
/// `_q5_K_impl` differ only in `nmax` and in Q5_K's `MIN(63, ..)` on the 6-bit codes, `clamp63`): each
/// 32-value sub-block is fitted by `make_qkx3_quants` under the weights `qw * sqrt(sigma2 + x^2)`
/// (`sigma2` twice the super-block's mean square), then the eight scales and the eight mins are
/// quantized to 6 bits by `make_qp_quants`, weighted by each sub-block's total weight, whose scales
/// are the record's `d` and `dmin`.
fn quantize_scale_min_k4_weighted(
    x: &[f32],
    qw: &[f32],
    head: &mut [u8],
    l: &mut [u8; QK_K],
    nmax: i32,
    clamp63: bool,
) {
    let sigma2 = 2.0 * sum_x2(&x[..QK_K]) / QK_K as f32;
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    let (d_block, m_block) =
        fit_scales_and_mins_weighted(x, qw, sigma2, 32, nmax, 63, l, &mut ls, &mut lm);
    let sc = &mut head[4..16];
    sc.fill(0);
    for j in 0..8 {
        let (s, m) = if clamp63 {
            (ls[j].min(63), lm[j].min(63))
        } else {
            (ls[j], lm[j])
        };
        put_scale_min_k4(j, s, m, sc);
    }
    head[0..2].copy_from_slice(&fp16(d_block).to_le_bytes());
    head[2..4].copy_from_slice(&fp16(m_block).to_le_bytes());
    requantize_scale_min_k4(x, head, l, nmax);
}

/// The fit shared by Q2_K, Q4_K and Q5_K on the importance path: each sub-block of `sub` values
/// (16 or 32) is fitted by `make_qkx3_quants` (codes `0..=nmax` into `l`, 37 candidate scales from
/// `(nmax - 0.9) / range` in steps of 0.05) under the weights `qw * sqrt(sigma2 + x^2)`; then the
/// sub-block scales and mins are themselves quantized to `0..=levels` by `make_qp_quants` (codes into
/// `ls` and `lm`, one per sub-block), weighted by each sub-block's total weight. Returns the
/// super-block's `(d, dmin)` before their rounding to f16.
#[allow(clippy::too_many_arguments)]
fn fit_scales_and_mins_weighted(
    x: &[f32],
    qw: &[f32],
    sigma2: f32,
    sub: usize,
    nmax: i32,
    levels: i32,
    l: &mut [u8; QK_K],
    ls: &mut [u8],
    lm: &mut [u8],
) -> (f32, f32) {
    let nsub = QK_K / sub;
    let mut laux = [0u8; 32];
    let mut weights = [0.0f32; 32];
    let mut scales = [0.0f32; 16];
    let mut mins = [0.0f32; 16];
    let mut sw = [0.0f32; 16];
    for j in 0..nsub {
        let at = sub * j..sub * (j + 1);
        sw[j] = impl_weights(&x[at.clone()], &qw[at.clone()], sigma2, &mut weights[..sub]);
        (scales[j], mins[j]) = make_qkx2_quants(
            nmax,
            &x[at.clone()],
            &weights[..sub],
            &mut l[at],
            &mut laux[..sub],
            -0.9,
            0.05,
            36,
            false,
        );
    }
    let d = make_qp_quants(levels, &scales[..nsub], ls, &sw[..nsub]);
    let dmin = make_qp_quants(levels, &mins[..nsub], lm, &sw[..nsub]);
    (d, dmin)
}

/// ggml's `quantize_row_q4_K_impl` for one super-block of 256 values and its importance weights
/// `qw` into a 144-byte record.
pub(crate) fn quantize_q4_k_weighted(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    quantize_scale_min_k4_weighted(x, qw, &mut y[0..16], &mut l, 15, false);
    pack_q4_k(&l, y);
}

/// ggml's `quantize_row_q5_K_impl` for one super-block of 256 values and its importance weights
/// `qw` into a 176-byte record.
pub(crate) fn quantize_q5_k_weighted(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    quantize_scale_min_k4_weighted(x, qw, &mut y[0..16], &mut l, 31, true);
    pack_q5_k(&l, y);
}

/// ggml's `quantize_row_q4_K_ref` for one super-block of 256 values into a 144-byte record.
pub(crate) fn quantize_q4_k(x: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    quantize_scale_min_k4(x, &mut y[0..16], &mut l, 15, -1.0, 20);
    pack_q4_k(&l, y);
}

/// ggml's `quantize_row_q5_K_ref` for one super-block of 256 values into a 176-byte record.
pub(crate) fn quantize_q5_k(x: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    quantize_scale_min_k4(x, &mut y[0..16], &mut l, 31, -0.5, 15);
    pack_q5_k(&l, y);
}

/// ggml's `dequantize_row_q4_K` for one 144-byte record.
pub(crate) fn dequantize_q4_k(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(&b[0..2]);
    let min = read_fp16(&b[2..4]);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for c in 0..4 {
        let (s1, m1) = get_scale_min_k4(2 * c, scales);
        let (s2, m2) = get_scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
        let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
        let q = &qs[32 * c..32 * c + 32];
        let out = &mut y[64 * c..64 * c + 64];
        for i in 0..32 {
            let p = d1 * f32::from(q[i] & 0xF);
            out[i] = p - m1;
            let p = d2 * f32::from(q[i] >> 4);
            out[32 + i] = p - m2;
        }
    }
}

/// ggml's `dequantize_row_q5_K` for one 176-byte record.
pub(crate) fn dequantize_q5_k(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(&b[0..2]);
    let min = read_fp16(&b[2..4]);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for c in 0..4 {
        let (s1, m1) = get_scale_min_k4(2 * c, scales);
        let (s2, m2) = get_scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
        let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
        let q = &qs[32 * c..32 * c + 32];
        let out = &mut y[64 * c..64 * c + 64];
        for i in 0..32 {
            let lo = (q[i] & 0xF) | (((qh[i] >> (2 * c)) & 1) << 4);
            let hi = (q[i] >> 4) | (((qh[i] >> (2 * c + 1)) & 1) << 4);
            let p = d1 * f32::from(lo);
            out[i] = p - m1;
            let p = d2 * f32::from(hi);
            out[32 + i] = p - m2;
        }
    }
}

/// ggml's `quantize_row_q6_K_ref` for one super-block of 256 values into a 210-byte record.
pub(crate) fn quantize_q6_k(x: &[f32], y: &mut [u8]) {
    quantize_q6_k_with(x, None, y);
}

/// ggml's `quantize_row_q6_K_impl` with importance weights `qw` (256, one per value): the reference
/// algorithm with the sub-block fits weighted by `qw` itself (ggml leaves its `sqrt(sigma2 + x^2)`
/// factor commented out for this type).
pub(crate) fn quantize_q6_k_weighted(x: &[f32], qw: &[f32], y: &mut [u8]) {
    quantize_q6_k_with(x, Some(qw), y);
}

/// Q6_K on either path: `qw` weights the sub-block fits (`None`: ggml's default weights `x^2`).
fn quantize_q6_k_with(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for ib in 0..16 {
        let scale = make_qx_quants(
            32,
            &x[16 * ib..16 * ib + 16],
            qw.map(|q| &q[16 * ib..16 * ib + 16]),
            &mut l[16 * ib..16 * ib + 16],
        );
        scales[ib] = scale;
        let abs_scale = scale.abs();
        if abs_scale > max_abs_scale {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    y[..Q6_K_BYTES].fill(0);
    if max_abs_scale < GROUP_MAX_EPS {
        // ggml zeroes the record; its d is f16(0.0).
        return;
    }
    let iscale = -128.0 / max_scale;
    y[208..210].copy_from_slice(&fp16(1.0 / iscale).to_le_bytes());
    for ib in 0..16 {
        // int -> int8_t: the low byte (values are in -128..=127 after MIN).
        y[192 + ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
    }
    let d_all = read_fp16(&y[208..210]);
    for j in 0..16 {
        let d = d_all * f32::from(y[192 + j] as i8);
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
            l[16 * j + ii] = (q + 32) as i8;
        }
    }
    let (ql, rest) = y.split_at_mut(128);
    let qh = &mut rest[..64];
    for h in 0..2 {
        let lh = &l[128 * h..128 * h + 128];
        for i in 0..32 {
            let q = |k: usize| lh[i + 32 * k] as u8;
            ql[64 * h + i] = (q(0) & 0xF) | ((q(2) & 0xF) << 4);
            ql[64 * h + 32 + i] = (q(1) & 0xF) | ((q(3) & 0xF) << 4);
            qh[32 * h + i] =
                (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
        }
    }
}

/// ggml's `dequantize_row_q6_K` for one 210-byte record.
pub(crate) fn dequantize_q6_k(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(&b[208..210]);
    let ql = &b[0..128];
    let qh = &b[128..192];
    let sc = &b[192..208];
    for h in 0..2 {
        let (ql, qh, sc) = (&ql[64 * h..], &qh[32 * h..], &sc[8 * h..]);
        let out = &mut y[128 * h..128 * h + 128];
        for i in 0..32 {
            let is = i / 16;
            let q1 = i32::from((ql[i] & 0xF) | ((qh[i] & 3) << 4)) - 32;
            let q2 = i32::from((ql[i + 32] & 0xF) | (((qh[i] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4)) - 32;
            let s = |k: usize| d * f32::from(sc[is + k] as i8);
            out[i] = s(0) * q1 as f32;
            out[i + 32] = s(2) * q2 as f32;
            out[i + 64] = s(4) * q3 as f32;
            out[i + 96] = s(6) * q4 as f32;
        }
    }
}

/// The coordinate descent that ends ggml's `make_q3_quants` (with `do_rmse`) and `make_qp_quants`:
/// up to five passes over the codes, each moving one code `l[i]` to `nearest(x[i] * sl2 / slx)` (the
/// least-squares code of the value against the sums without it), clamped by `clamp`, when that raises
/// `sumlx^2 / suml2` under the weights `w`; stops after a pass that changes nothing. Returns the final
/// `(sumlx, suml2)`.
///
/// The two ggml loops differ in where they require a positive `sl2`: `make_qp_quants` on the sums
/// without the value, before computing the new code (`sl2_first`), `make_q3_quants` on the sums with
/// the new code, in the final test. Codes are read with `code` and stored with `make`, in the
/// caller's storage type (ggml's `int8_t` or `uint8_t`, whose wrap this keeps).
#[allow(clippy::too_many_arguments)]
fn refine_codes<C: Copy>(
    x: &[f32],
    w: impl Fn(usize) -> f32,
    l: &mut [C],
    (mut sumlx, mut suml2): (f32, f32),
    code: impl Fn(C) -> i32,
    make: impl Fn(i32) -> C,
    clamp: impl Fn(i32) -> i32,
    sl2_first: bool,
) -> (f32, f32) {
    for _ in 0..5 {
        let mut n_changed = 0;
        for (i, &xi) in x.iter().enumerate() {
            let wi = w(i);
            let li = code(l[i]) as f32;
            let mut slx = sumlx - wi * xi * li;
            let mut sl2 = suml2 - wi * li * li;
            let eligible = slx > 0.0 && (!sl2_first || sl2 > 0.0);
            if !eligible {
                continue;
            }
            let new_l = clamp(nearest_int(xi * sl2 / slx));
            if new_l == code(l[i]) {
                continue;
            }
            let nl = new_l as f32;
            slx += wi * xi * nl;
            sl2 += wi * nl * nl;
            if (sl2_first || sl2 > 0.0) && slx * slx * suml2 > sumlx * sumlx * sl2 {
                l[i] = make(new_l);
                sumlx = slx;
                suml2 = sl2;
                n_changed += 1;
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    (sumlx, suml2)
}

/// ggml's `make_q3_quants` with `do_rmse`: symmetric codes `L[i] = l + nmax`, `l` in `-nmax..nmax`,
/// first rounded at `iscale = -nmax / max`, then improved one value at a time (up to five passes) while
/// that raises `sumlx^2 / suml2` under the weights `x^2`; returns the least-squares scale
/// `sumlx / suml2`.
fn make_q3_quants_rmse(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l_out[i] = l as i8;
        let w = x[i] * x[i];
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    let (sumlx, suml2) = refine_codes(
        x,
        |i| x[i] * x[i],
        l_out,
        (sumlx, suml2),
        i32::from,
        |v| v as i8,
        |v| v.clamp(-nmax, nmax - 1),
        false,
    );
    for v in &mut l_out[..n] {
        *v += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Packs 256 two-bit codes as Q2_K and Q3_K do: for each half `h` (128 values) and `i` in 0..32, byte
/// `qs[32h + i]` holds values `128h + i + 32k` (`k` = 0..4) in bits `2k..2k+2`.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for h in 0..2 {
        let lh = &l[128 * h..128 * h + 128];
        for i in 0..32 {
            qs[32 * h + i] = lh[i] | (lh[i + 32] << 2) | (lh[i + 64] << 4) | (lh[i + 96] << 6);
        }
    }
}

/// The two-bit code of value `o` (0..256) in a `qs` packed by [`pack_2bit`].
fn code_2bit(qs: &[u8], o: usize) -> u8 {
    (qs[32 * (o / 128) + o % 32] >> (2 * ((o % 128) / 32))) & 3
}

/// ggml's `quantize_row_q2_K_ref` for one super-block of 256 values into an 84-byte record.
pub(crate) fn quantize_q2_k(x: &[f32], y: &mut [u8]) {
    const Q4SCALE: f32 = 15.0;
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0.0f32; 16];
    let mut mins = [0.0f32; 16];
    let mut scales = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..16 {
        let xb = &x[16 * j..16 * j + 16];
        for (w, &v) in weights.iter_mut().zip(xb) {
            *w = v.abs();
        }
        let (scale, min) = make_qkx2_quants(
            3,
            xb,
            &weights,
            &mut l[16 * j..16 * j + 16],
            &mut laux,
            -0.5,
            0.1,
            15,
            true,
        );
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    let (sc, rest) = y.split_at_mut(16);
    let head = &mut rest[64..68];
    // `scales[j] = l` and `scales[j] |= l << 4` store the low byte of C's int.
    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(iscale * scales[j]) as u8;
        }
        head[0..2].copy_from_slice(&fp16(max_scale / Q4SCALE).to_le_bytes());
    } else {
        sc.fill(0);
        head[0..2].copy_from_slice(&fp16(0.0).to_le_bytes());
    }
    if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for j in 0..16 {
            sc[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
        }
        head[2..4].copy_from_slice(&fp16(max_min / Q4SCALE).to_le_bytes());
    } else {
        head[2..4].copy_from_slice(&fp16(0.0).to_le_bytes());
    }
    finish_q2_k(x, y, &mut l);
}

/// The last step of Q2_K (both paths): once the record holds its scales byte array, `d` and `dmin`,
/// each sub-block whose stored scale is not zero is rounded again against the stored parameters
/// (`L = clamp(nearest((x + dmin m) / (d sc)), 0, 3)`; the others keep the codes of their fit), and
/// the codes are packed.
fn finish_q2_k(x: &[f32], y: &mut [u8], l: &mut [u8; QK_K]) {
    let (sc, rest) = y.split_at_mut(16);
    let (qs, head) = rest.split_at_mut(64);
    let d_all = read_fp16(&head[0..2]);
    let dmin_all = read_fp16(&head[2..4]);
    for j in 0..16 {
        let d = d_all * f32::from(sc[j] & 0xF);
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * f32::from(sc[j] >> 4);
        for ii in 0..16 {
            let q = nearest_int((x[16 * j + ii] + dm) / d);
            l[16 * j + ii] = q.clamp(0, 3) as u8;
        }
    }
    pack_2bit(l, qs);
}

/// Sum of squares of a super-block, accumulated in order as ggml's `_impl` functions do before
/// deriving their `sigma2`.
fn sum_x2(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// The importance weights of one sub-block as ggml's `_impl` functions form them:
/// `qw[l] * sqrt(sigma2 + x[l]^2)` (the imatrix entry scaled by the value's size relative to the
/// super-block or row), and their sum in order.
pub(super) fn impl_weights(x: &[f32], qw: &[f32], sigma2: f32, out: &mut [f32]) -> f32 {
    let mut sumw = 0.0f32;
    for ((o, &v), &q) in out.iter_mut().zip(x).zip(qw) {
        *o = q * (sigma2 + v * v).sqrt();
        sumw += *o;
    }
    sumw
}

/// ggml's `quantize_row_q2_K_impl` for one super-block of 256 values and its importance weights
/// `qw` into an 84-byte record. Unlike the reference it fits each 16-value sub-block by weighted
/// least squares (`make_qkx3_quants`, 37 candidate scales) and quantizes the sixteen scales and
/// mins themselves with `make_qp_quants`, weighted by each sub-block's total weight.
pub(crate) fn quantize_q2_k_weighted(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    // Q2_K's sigma2 is the mean square (the other K types double it).
    let sigma2 = sum_x2(&x[..QK_K]) / QK_K as f32;
    let mut ls = [0u8; 16];
    let mut lm = [0u8; 16];
    let (dm, mm) = fit_scales_and_mins_weighted(x, qw, sigma2, 16, 3, 15, &mut l, &mut ls, &mut lm);
    y[80..82].copy_from_slice(&fp16(dm).to_le_bytes());
    y[82..84].copy_from_slice(&fp16(mm).to_le_bytes());
    for j in 0..16 {
        // `uint8_t = Ls | (Lm << 4)`: the low byte.
        y[j] = ls[j] | (lm[j] << 4);
    }
    finish_q2_k(x, y, &mut l);
}

/// ggml's `dequantize_row_q2_K` for one 84-byte record.
pub(crate) fn dequantize_q2_k(b: &[u8], y: &mut [f32]) {
    let sc = &b[0..16];
    let qs = &b[16..80];
    let d = read_fp16(&b[80..82]);
    let min = read_fp16(&b[82..84]);
    for (o, out) in y[..QK_K].iter_mut().enumerate() {
        let s = sc[o / 16];
        let dl = d * f32::from(s & 0xF);
        let ml = min * f32::from(s >> 4);
        let p = dl * f32::from(code_2bit(qs, o));
        *out = p - ml;
    }
}

/// The signed 6-bit scale of sub-block `j` (0..16) of a Q3_K `scales` array: low four bits from
/// `scales[j]` (`j < 8`) or the high nibble of `scales[j - 8]`, high two bits from bits `2(j/4)..` of
/// `scales[8 + j % 4]`, minus 32.
fn q3_k_scale(scales: &[u8], j: usize) -> i8 {
    let low = if j < 8 {
        scales[j] & 0xF
    } else {
        scales[j - 8] >> 4
    };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    ((low | (high << 4)) as i8) - 32
}

/// Packs the 6-bit scale `q` (0..64, the signed scale plus 32) of sub-block `j` into a Q3_K
/// `scales` array that starts zeroed (the inverse of [`q3_k_scale`]).
fn put_q3_k_scale(j: usize, q: u8, sc: &mut [u8]) {
    if j < 8 {
        sc[j] = q & 0xF;
    } else {
        sc[j - 8] |= (q & 0xF) << 4;
    }
    sc[8 + j % 4] |= (q >> 4) << (2 * (j / 4));
}

/// ggml's `quantize_row_q3_K_ref` for one super-block of 256 values into a 110-byte record.
pub(crate) fn quantize_q3_k(x: &[f32], y: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for j in 0..16 {
        scales[j] = make_q3_quants_rmse(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        let scale = scales[j].abs();
        if scale > amax {
            amax = scale;
            max_scale = scales[j];
        }
    }
    y[..Q3_K_BYTES].fill(0);
    let (sc, head) = y[96..110].split_at_mut(12);
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &scale) in scales.iter().enumerate() {
            // `int8_t l = nearest_int(..)` keeps the low byte before the clamp.
            let q = nearest_int(iscale * scale) as i8;
            let q = (i32::from(q).clamp(-32, 31) + 32) as u8;
            put_q3_k_scale(j, q, sc);
        }
        head.copy_from_slice(&fp16(1.0 / iscale).to_le_bytes());
    } else {
        head.copy_from_slice(&fp16(0.0).to_le_bytes());
    }
    finish_q3_k(x, y, &mut l);
}

/// ggml's `quantize_row_q3_K_impl` for one super-block of 256 values and its importance weights
/// `qw` into a 110-byte record: each 16-value sub-block is fitted by `make_qx_quants` under the
/// weights `qw * sqrt(sigma2 + x^2)` (`sigma2` twice the mean square), and the sixteen signed scales
/// by `make_qx_quants` again (32 levels, weighted by each sub-block's total weight), whose scale is
/// the record's `d`.
pub(crate) fn quantize_q3_k_weighted(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut weights = [0.0f32; 16];
    let mut scales = [0.0f32; 16];
    let mut sw = [0.0f32; 16];
    let sigma2 = 2.0 * sum_x2(&x[..QK_K]) / QK_K as f32;
    for j in 0..16 {
        let xb = &x[16 * j..16 * j + 16];
        sw[j] = impl_weights(xb, &qw[16 * j..16 * j + 16], sigma2, &mut weights);
        scales[j] = make_qx_quants(4, xb, Some(&weights), &mut l[16 * j..16 * j + 16]);
    }
    let mut ls = [0i8; 16];
    let d_block = make_qx_quants(32, &scales, Some(&sw), &mut ls);
    y[..Q3_K_BYTES].fill(0);
    for (j, &q) in ls.iter().enumerate() {
        put_q3_k_scale(j, q as u8, &mut y[96..108]);
    }
    y[108..110].copy_from_slice(&fp16(d_block).to_le_bytes());
    finish_q3_k(x, y, &mut l);
}

/// The last step of Q3_K (both paths), on a record zeroed but for its scales and `d`: each sub-block
/// whose stored scale is not zero is rounded again against the stored parameters
/// (`L = clamp(nearest(x / (d sc)), -4, 3) + 4`; the others keep the codes of their fit), and the
/// codes are split into `hmask` (third bit) and `qs` (low two bits).
fn finish_q3_k(x: &[f32], y: &mut [u8], l: &mut [i8; QK_K]) {
    let (hmask, rest) = y.split_at_mut(32);
    let (qs, rest) = rest.split_at_mut(64);
    let (sc, head) = rest.split_at_mut(12);
    let d_all = read_fp16(head);
    for j in 0..16 {
        let d = d_all * f32::from(q3_k_scale(sc, j));
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d).clamp(-4, 3);
            l[16 * j + ii] = (q + 4) as i8;
        }
    }
    // The third bit of value `o` goes to bit `o / 32` of `hmask[o % 32]`; the low two bits to `qs`.
    let mut low = [0u8; QK_K];
    for (o, (&q, lo)) in l.iter().zip(low.iter_mut()).enumerate() {
        let q = q as u8;
        if q > 3 {
            hmask[o % 32] |= 1 << (o / 32);
            *lo = q - 4;
        } else {
            *lo = q;
        }
    }
    pack_2bit(&low, qs);
}

/// ggml's `dequantize_row_q3_K` for one 110-byte record.
pub(crate) fn dequantize_q3_k(b: &[u8], y: &mut [f32]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let sc = &b[96..108];
    let d_all = read_fp16(&b[108..110]);
    for (o, out) in y[..QK_K].iter_mut().enumerate() {
        let dl = d_all * f32::from(q3_k_scale(sc, o / 16));
        let high = hmask[o % 32] & (1 << (o / 32)) != 0;
        let q = i32::from(code_2bit(qs, o)) - if high { 0 } else { 4 };
        *out = dl * q as f32;
    }
}

// The grids and codes of fitted records, for an algorithm that chooses its own codes (GPTQ, in
// `grid`): the grid of sub-block `j` is `(scale[j], zero[j])`, code `q` standing for
// `scale[j] * k + zero[j]` computed as the dequantizer computes it, with `k = q` for Q2_K, Q4_K and
// Q5_K (`scale = d * sc_j`, `zero = -(dmin * m_j)`: the dequantizer's `p - ml` is `p + (-ml)` bit for
// bit), `k = q - 4` for Q3_K and `k = q - 32` for Q6_K (`scale = d * sc_j`, `zero = 0`). Codes are
// the stored ones: `0..=3` (Q2_K), `0..=7` (Q3_K), `0..=15` (Q4_K), `0..=31` (Q5_K), `0..=63` (Q6_K).

/// The sixteen sub-block grids of a Q2_K record.
pub(crate) fn q2_k_grids(b: &[u8], scale: &mut [f32], zero: &mut [f32]) {
    let (d, min) = (read_fp16(&b[80..82]), read_fp16(&b[82..84]));
    for j in 0..16 {
        scale[j] = d * f32::from(b[j] & 0xF);
        zero[j] = -(min * f32::from(b[j] >> 4));
    }
}

/// The eight sub-block grids of a Q4_K or Q5_K record (the same header).
pub(crate) fn q4_k_grids(b: &[u8], scale: &mut [f32], zero: &mut [f32]) {
    let (d, min) = (read_fp16(&b[0..2]), read_fp16(&b[2..4]));
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, &b[4..16]);
        scale[j] = d * f32::from(s);
        zero[j] = -(min * f32::from(m));
    }
}

/// The sixteen sub-block grids of a Q3_K record.
pub(crate) fn q3_k_grids(b: &[u8], scale: &mut [f32], zero: &mut [f32]) {
    let d = read_fp16(&b[108..110]);
    for j in 0..16 {
        scale[j] = d * f32::from(q3_k_scale(&b[96..108], j));
        zero[j] = 0.0;
    }
}

/// The sixteen sub-block grids of a Q6_K record.
pub(crate) fn q6_k_grids(b: &[u8], scale: &mut [f32], zero: &mut [f32]) {
    let d = read_fp16(&b[208..210]);
    for j in 0..16 {
        scale[j] = d * f32::from(b[192 + j] as i8);
        zero[j] = 0.0;
    }
}

/// Writes 256 codes into a Q2_K record, keeping its scales and header.
pub(crate) fn set_q2_k_codes(codes: &[u8], y: &mut [u8]) {
    pack_2bit(codes[..QK_K].try_into().expect("256 codes"), &mut y[16..80]);
}

/// Writes 256 codes (`q + 4`, 0..8) into a Q3_K record, keeping its scales and header.
pub(crate) fn set_q3_k_codes(codes: &[u8], y: &mut [u8]) {
    let (hmask, qs) = y[..96].split_at_mut(32);
    hmask.fill(0);
    let mut low = [0u8; QK_K];
    for (o, (&q, lo)) in codes[..QK_K].iter().zip(low.iter_mut()).enumerate() {
        hmask[o % 32] |= (q >> 2) << (o / 32);
        *lo = q & 3;
    }
    pack_2bit(&low, qs);
}

/// Writes 256 codes into a Q4_K record, keeping its header and scales.
pub(crate) fn set_q4_k_codes(codes: &[u8], y: &mut [u8]) {
    for (c, chunk) in codes[..QK_K].chunks_exact(64).enumerate() {
        for i in 0..32 {
            y[16 + 32 * c + i] = chunk[i] | (chunk[i + 32] << 4);
        }
    }
}

/// Writes 256 codes into a Q5_K record, keeping its header and scales.
pub(crate) fn set_q5_k_codes(codes: &[u8], y: &mut [u8]) {
    let (qh, qs) = y[16..176].split_at_mut(32);
    qh.fill(0);
    for (c, chunk) in codes[..QK_K].chunks_exact(64).enumerate() {
        for i in 0..32 {
            let (lo, hi) = (chunk[i], chunk[i + 32]);
            qh[i] |= ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1));
            qs[32 * c + i] = (lo & 0xF) | ((hi & 0xF) << 4);
        }
    }
}

/// Writes 256 codes (`q + 32`, 0..64) into a Q6_K record, keeping its scales and header.
pub(crate) fn set_q6_k_codes(codes: &[u8], y: &mut [u8]) {
    let (ql, qh) = y[..192].split_at_mut(128);
    for h in 0..2 {
        let lh = &codes[128 * h..128 * h + 128];
        for i in 0..32 {
            let q = |k: usize| lh[i + 32 * k];
            ql[64 * h + i] = (q(0) & 0xF) | ((q(2) & 0xF) << 4);
            ql[64 * h + 32 + i] = (q(1) & 0xF) | ((q(3) & 0xF) << 4);
            qh[32 * h + i] =
                (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_is_ties_to_even() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-0.4), 0);
        assert_eq!(nearest_int(62.6), 63);
    }

    #[test]
    fn q3_k_scale_packing_round_trips() {
        let scales: [i8; 16] = [
            -32, 31, 0, -1, 17, -17, 5, -5, 30, -30, 1, 2, -3, 12, -12, 24,
        ];
        let mut sc = [0u8; 12];
        for (j, &s) in scales.iter().enumerate() {
            put_q3_k_scale(j, (s + 32) as u8, &mut sc);
        }
        for (j, &s) in scales.iter().enumerate() {
            assert_eq!(q3_k_scale(&sc, j), s, "sub-block {j}");
        }
    }

    #[test]
    fn two_bit_packing_puts_each_value_where_code_2bit_reads_it() {
        let mut l = [0u8; QK_K];
        for (o, v) in l.iter_mut().enumerate() {
            *v = ((o * 7 + o / 32) % 4) as u8;
        }
        let mut qs = [0u8; 64];
        pack_2bit(&l, &mut qs);
        for (o, &v) in l.iter().enumerate() {
            assert_eq!(code_2bit(&qs, o), v, "value {o}");
        }
    }

    #[test]
    fn scale_min_packing_round_trips() {
        // Pack eight (scale, min) pairs as Q4_K and Q5_K do and read them back.
        let pairs: [(u8, u8); 8] = [
            (1, 63),
            (63, 0),
            (17, 42),
            (0, 5),
            (33, 48),
            (63, 63),
            (16, 31),
            (47, 1),
        ];
        let mut sc = [0u8; 12];
        for (j, &(ls, lm)) in pairs.iter().enumerate() {
            put_scale_min_k4(j, ls, lm, &mut sc);
        }
        for (j, &p) in pairs.iter().enumerate() {
            assert_eq!(get_scale_min_k4(j, &sc), p, "sub-block {j}");
        }
    }
}
