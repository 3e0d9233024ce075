//! SmoothQuant (Xiao et al. 2022) and the W8A8 helpers an engine needs to run the smoothed layer.
//!
//! Migration scales, as in the published `smooth_ln_fcs`: with `a_j = max|X_j|` over the calibration
//! and `w_j = max(max|W_j|, 1e-5)` over every matrix of the group,
//! `s_j = max(a_j^alpha / w_j^(1 - alpha), 1e-5)`. `alpha = 0` follows the formula (`s_j = 1 / w_j`);
//! it does not mean "no smoothing". The weights `W diag(s)` are quantized INT8 symmetric (per output
//! channel, or per group), and the layer computes `(x / s) W_q^T`: the engine quantizes `x / s` per
//! token ([`quantize_activations`]) and multiplies the codes with [`int8_gemm`] (i32 accumulation, then
//! the two scales).
use crate::error::{try_vec, QuantError, Result};
use crate::kernels::int8::int8_quantize;
use crate::kernels::{check_finite, check_len, Shape};

/// Lower bound of the weight maxima and of the scales (the published clamp).
const CLAMP: f64 = 1e-5;
/// Largest inner dimension of [`int8_gemm`]: `k * 128 * 128 < 2^31`, so the i32 sum cannot overflow.
pub(crate) const GEMM_MAX_K: usize = 131_071;

/// One smoothed, quantized matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothMatrix {
    pub rows: usize,
    /// INT8 codes of `W diag(s)`, row-major `rows x cols`.
    pub codes: Vec<i8>,
    /// `rows x groups_per_row` scales (absmax / 127).
    pub scales: Vec<f32>,
}

/// SmoothQuant of a group of matrices that read one input.
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothResult {
    /// The per-input-channel scale shared by every matrix.
    pub s: Vec<f32>,
    pub matrices: Vec<SmoothMatrix>,
    pub group_len: usize,
}

impl SmoothResult {
    /// Effective weight of matrix `m` in the original basis: `q * scale / s_j`.
    pub fn dequantize(&self, m: usize, cols: usize) -> Vec<f32> {
        let mat = &self.matrices[m];
        let ng = cols.div_ceil(self.group_len);
        let mut out = vec![0.0f32; mat.rows * cols];
        for r in 0..mat.rows {
            for j in 0..cols {
                out[r * cols + j] = mat.codes[r * cols + j] as f32
                    * mat.scales[r * ng + j / self.group_len]
                    / self.s[j];
            }
        }
        out
    }
}

fn check_alpha(alpha: f64) -> Result<()> {
    if (0.0..=1.0).contains(&alpha) {
        Ok(())
    } else {
        Err(QuantError::invalid(format!(
            "alpha is {alpha}: it must be in [0, 1]"
        )))
    }
}

fn check_absmax(v: &[f32], what: &str) -> Result<()> {
    check_finite(v, what)?;
    if let Some(i) = v.iter().position(|&x| x < 0.0) {
        return Err(QuantError::invalid(format!(
            "{what}[{i}] is {}: a maximum of absolute values cannot be negative",
            v[i]
        )));
    }
    Ok(())
}

/// Per-column max|W_j| over every matrix of the group (`ws`: `(weights, rows)`, each `rows x cols`).
pub fn weight_absmax(ws: &[(&[f32], usize)], cols: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; cols];
    for &(w, rows) in ws {
        for row in w[..rows * cols].chunks_exact(cols) {
            for (a, &v) in m.iter_mut().zip(row) {
                *a = a.max(v.abs());
            }
        }
    }
    m
}

/// The published migration scales (see the module doc). Errors: alpha outside [0, 1] or NaN is
/// `InvalidArgument`; lengths differ `ShapeMismatch`; NaN, infinity `NonFinite`; negative values
/// `InvalidArgument`.
pub fn migration_scales(act_absmax: &[f32], weight_absmax: &[f32], alpha: f64) -> Result<Vec<f32>> {
    check_alpha(alpha)?;
    if act_absmax.len() != weight_absmax.len() {
        return Err(QuantError::ShapeMismatch(format!(
            "{} activation maxima but {} weight maxima",
            act_absmax.len(),
            weight_absmax.len()
        )));
    }
    check_absmax(act_absmax, "act_absmax")?;
    check_absmax(weight_absmax, "weight_absmax")?;
    Ok(act_absmax
        .iter()
        .zip(weight_absmax)
        .map(|(&a, &w)| {
            let w = (w as f64).max(CLAMP);
            ((a as f64).powf(alpha) / w.powf(1.0 - alpha)).max(CLAMP) as f32
        })
        .collect())
}

/// SmoothQuant migration scales without clamping (`quant_smooth_scales`): `s_j = a_j^alpha / w_j^(1 - alpha)` in
/// f64, and 1 where both maxima are 0 or where the weight part is 0; no clamping. Writes `out` only
/// when every check passed. Errors: alpha outside [0, 1] or NaN is `InvalidArgument`; `out` shorter
/// than the inputs `BufferTooSmall`; inputs of different lengths `ShapeMismatch`; NaN or infinity
/// `NonFinite`; a negative maximum `InvalidArgument` (its power would be NaN).
pub fn smooth_scales_unclamped(
    weight_absmax: &[f32],
    act_absmax: &[f32],
    alpha: f64,
    out: &mut [f32],
) -> Result<()> {
    check_alpha(alpha)?;
    if weight_absmax.len() != act_absmax.len() {
        return Err(QuantError::ShapeMismatch(
            "weight and activation dimensions must match".into(),
        ));
    }
    let n = weight_absmax.len();
    check_len("out", out.len(), n)?;
    check_absmax(weight_absmax, "weight_absmax")?;
    check_absmax(act_absmax, "act_absmax")?;
    for ((o, &w), &a) in out.iter_mut().zip(weight_absmax).zip(act_absmax) {
        let (w, a) = (w as f64, a as f64);
        *o = if w == 0.0 && a == 0.0 {
            1.0
        } else {
            let act_part = a.powf(alpha);
            let weight_part = w.powf(1.0 - alpha);
            if weight_part == 0.0 {
                1.0
            } else {
                (act_part / weight_part) as f32
            }
        };
    }
    Ok(())
}

/// SmoothQuant of the matrices `ws` that read one input of width `cols`, with the per-channel
/// `act_absmax` of the calibration: one `s` for all, then INT8 symmetric with `group_size`
/// (0 = per output channel, the published setting).
pub fn quantize_group(
    ws: &[(&[f32], usize)],
    cols: usize,
    act_absmax: &[f32],
    alpha: f64,
    group_size: usize,
) -> Result<SmoothResult> {
    if ws.is_empty() {
        return Err(QuantError::invalid("SmoothQuant needs at least one matrix"));
    }
    check_alpha(alpha)?;
    let mut group_len = cols;
    for (m, &(w, rows)) in ws.iter().enumerate() {
        let shape = Shape::new(rows, cols, group_size)?;
        group_len = shape.group_len();
        check_len(&format!("ws[{m}]"), w.len(), shape.len())?;
        check_finite(&w[..shape.len()], &format!("ws[{m}]"))?;
    }
    check_len("act_absmax", act_absmax.len(), cols)?;
    let s = migration_scales(&act_absmax[..cols], &weight_absmax(ws, cols), alpha)?;
    let mut matrices = Vec::with_capacity(ws.len());
    for &(w, rows) in ws {
        let shape = Shape::new(rows, cols, group_size)?;
        let mut scaled = try_vec(rows * cols, 0.0f32, "SmoothQuant scaled weights")?;
        for (d, row) in scaled.chunks_exact_mut(cols).zip(w.chunks_exact(cols)) {
            for ((o, &v), &sj) in d.iter_mut().zip(row).zip(&s) {
                *o = v * sj;
            }
        }
        let mut codes = try_vec(rows * cols, 0i8, "SmoothQuant codes")?;
        let mut scales = try_vec(shape.n_groups(), 0.0f32, "SmoothQuant scales")?;
        int8_quantize(&scaled, shape, &mut codes, &mut scales)?;
        matrices.push(SmoothMatrix {
            rows,
            codes,
            scales,
        });
    }
    Ok(SmoothResult {
        s,
        matrices,
        group_len,
    })
}

/// Per-token INT8 quantization of activations, after dividing by the input scales:
/// `v = x[t][j] / s[j]` (or `x` when `input_scales` is `None`), then per token `scale_t = max|v| / 127`,
/// `q = clamp(round_half_even(v / scale_t), -127, 127)` (an all-zero token has scale 0 and codes 0).
/// `x` is row-major `n_tokens x cols`; `dst` gets `n_tokens * cols` codes, `token_scales` `n_tokens`.
/// Nothing is written on error (`InvalidArgument` for a zero side, `BufferTooSmall`, `NonFinite` in `x`
/// or in the scales, `InvalidArgument` for a zero or negative input scale).
pub fn quantize_activations(
    x: &[f32],
    n_tokens: usize,
    cols: usize,
    input_scales: Option<&[f32]>,
    dst: &mut [i8],
    token_scales: &mut [f32],
) -> Result<()> {
    let shape = Shape::new(n_tokens, cols, 0)?;
    check_len("x", x.len(), shape.len())?;
    check_len("dst", dst.len(), shape.len())?;
    check_len("token_scales", token_scales.len(), n_tokens)?;
    let x = &x[..shape.len()];
    check_finite(x, "x")?;
    if let Some(s) = input_scales {
        check_len("input_scales", s.len(), cols)?;
        check_finite(&s[..cols], "input_scales")?;
        if let Some(j) = s[..cols].iter().position(|&v| v <= 0.0) {
            return Err(QuantError::invalid(format!(
                "input_scales[{j}] is {}: input scales must be > 0",
                s[j]
            )));
        }
    }
    // x / s can overflow even when both are finite, and a token whose absmax is FLT_MAX has no
    // scale (127 * scale would be infinite): check every token before writing anything.
    for (t, xt) in x.chunks_exact(cols).enumerate() {
        for (j, &v) in xt.iter().enumerate() {
            let sj = input_scales.map_or(1.0, |s| s[j]);
            let y = v / sj;
            if !y.is_finite() || y.abs() == f32::MAX {
                return Err(QuantError::invalid(match input_scales {
                    Some(_) => format!(
                        "x[{t}][{j}] / input_scales[{j}] = {v:e} / {sj:e} = {y:e}: beyond the float range"
                    ),
                    None => format!(
                        "x[{t}][{j}] is {v:e}: its token's dequantized absmax 127 * scale would \
                         overflow to infinity"
                    ),
                }));
            }
        }
    }
    match input_scales {
        None => int8_quantize(
            x,
            shape,
            &mut dst[..shape.len()],
            &mut token_scales[..n_tokens],
        ),
        Some(s) => {
            let mut row = try_vec(cols, 0.0f32, "activation row")?;
            let one = Shape::new(1, cols, 0)?;
            for t in 0..n_tokens {
                for ((o, &v), &sj) in row.iter_mut().zip(&x[t * cols..(t + 1) * cols]).zip(s) {
                    *o = v / sj;
                }
                int8_quantize(
                    &row,
                    one,
                    &mut dst[t * cols..(t + 1) * cols],
                    &mut token_scales[t..t + 1],
                )?;
            }
            Ok(())
        }
    }
}

fn check_gemm(
    a: &[i8],
    a_scales: &[f32],
    b: &[i8],
    b_scales: &[f32],
    (m, n, k): (usize, usize, usize),
    out: &[f32],
) -> Result<()> {
    let sa = Shape::new(m, k, 0)?;
    let sb = Shape::new(n, k, 0)?;
    let so = Shape::new(m, n, 0)?;
    if k > GEMM_MAX_K {
        return Err(QuantError::invalid(format!(
            "k is {k}: at most {GEMM_MAX_K} so that the i32 accumulator cannot overflow"
        )));
    }
    check_len("a", a.len(), sa.len())?;
    check_len("b", b.len(), sb.len())?;
    check_len("a_scales", a_scales.len(), m)?;
    check_len("b_scales", b_scales.len(), n)?;
    check_len("out", out.len(), so.len())?;
    check_finite(&a_scales[..m], "a_scales")?;
    check_finite(&b_scales[..n], "b_scales")?;
    Ok(())
}

/// INT8 matrix product with i32 accumulation: `a` is row-major `m x k` codes with one scale per row,
/// `b` row-major `n x k` (the layout of a weight: one row per output) with one scale per row, and
/// `out[i][j] = ((float)sum_l a[i][l] * b[j][l]) * a_scales[i] * b_scales[j]` (row-major `m x n`, the
/// two multiplications in that order, in f32). `k` is at most 131071 (no i32 overflow). Nothing is
/// written on error.
pub fn int8_gemm(
    a: &[i8],
    a_scales: &[f32],
    b: &[i8],
    b_scales: &[f32],
    (m, n, k): (usize, usize, usize),
    out: &mut [f32],
) -> Result<()> {
    check_gemm(a, a_scales, b, b_scales, (m, n, k), out)?;
    const TILE_N: usize = 32;
    for j0 in (0..n).step_by(TILE_N) {
        let j1 = (j0 + TILE_N).min(n);
        for i in 0..m {
            let ar = &a[i * k..(i + 1) * k];
            for j in j0..j1 {
                let br = &b[j * k..(j + 1) * k];
                out[i * n + j] = dot_i8(ar, br) as f32 * a_scales[i] * b_scales[j];
            }
        }
    }
    Ok(())
}

#[inline]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    // Lanes of 16 independent i32 sums (vectorizes to widening multiply-adds); i32 addition is
    // associative, so the result equals the sequential sum exactly.
    let mut acc = [0i32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..16 {
            acc[l] += x[l] as i32 * y[l] as i32;
        }
    }
    let mut s: i32 = acc.iter().sum();
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x as i32 * y as i32;
    }
    s
}

/// The scalar reference of [`int8_gemm`] (a triple loop).
pub fn int8_gemm_ref(
    a: &[i8],
    a_scales: &[f32],
    b: &[i8],
    b_scales: &[f32],
    (m, n, k): (usize, usize, usize),
    out: &mut [f32],
) -> Result<()> {
    check_gemm(a, a_scales, b, b_scales, (m, n, k), out)?;
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0i32;
            for l in 0..k {
                acc += a[i * k + l] as i32 * b[j * k + l] as i32;
            }
            out[i * n + j] = acc as f32 * a_scales[i] * b_scales[j];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unclamped_scales_follow_the_formula() {
        let w = [0.0f32, 0.0, 2.0, 4.0, 1.0];
        let a = [0.0f32, 3.0, 8.0, 0.0, 1.0];
        let mut out = [9.0f32; 5];
        smooth_scales_unclamped(&w, &a, 0.5, &mut out).unwrap();
        assert_eq!(out[0], 1.0);
        assert_eq!(out[1], 1.0); // weight part 0
        assert_eq!(out[2], 2.0);
        assert_eq!(out[3], 0.0);
        assert_eq!(out[4], 1.0);
        let mut out2 = [9.0f32; 5];
        for bad in [-0.1, 1.1, f64::NAN] {
            assert!(smooth_scales_unclamped(&w, &a, bad, &mut out2).is_err());
        }
        assert!(smooth_scales_unclamped(&w, &a, 0.5, &mut out2[..4]).is_err());
        assert!(smooth_scales_unclamped(&w[..4], &a, 0.5, &mut out2).is_err());
        assert_eq!(out2, [9.0; 5]);
        // alpha = 1: s = a (w^0 = 1), even where w is 0.
        smooth_scales_unclamped(&w, &a, 1.0, &mut out2).unwrap();
        assert_eq!(out2, [1.0, 3.0, 8.0, 0.0, 1.0]);
    }

    #[test]
    fn migration_scales_follow_the_formula() {
        let s = migration_scales(&[4.0, 0.0, 9.0], &[1.0, 2.0, 0.0], 0.5).unwrap();
        assert_eq!(s[0], 2.0);
        assert_eq!(s[1], 1e-5);
        assert!((s[2] as f64 - 3.0 / 1e-5f64.sqrt()).abs() < 1.0);
        let s0 = migration_scales(&[4.0, 5.0], &[0.5, 2.0], 0.0).unwrap();
        assert_eq!(s0, vec![2.0, 0.5]);
    }

    #[test]
    fn gemm_is_exact_against_the_reference() {
        let (m, n, k) = (7, 45, 70);
        let a: Vec<i8> = (0..m * k).map(|i| ((i * 37) % 255) as i32 as i8).collect();
        let b: Vec<i8> = (0..n * k)
            .map(|i| ((i * 91 + 3) % 256) as u8 as i8)
            .collect();
        let sa: Vec<f32> = (0..m).map(|i| 0.01 + i as f32 * 0.003).collect();
        let sb: Vec<f32> = (0..n).map(|i| 0.02 + i as f32 * 0.001).collect();
        let mut o1 = vec![0.0f32; m * n];
        let mut o2 = vec![1.0f32; m * n];
        int8_gemm(&a, &sa, &b, &sb, (m, n, k), &mut o1).unwrap();
        int8_gemm_ref(&a, &sa, &b, &sb, (m, n, k), &mut o2).unwrap();
        assert_eq!(o1, o2);
        let full = vec![-128i8; GEMM_MAX_K];
        let mut o = [0.0f32];
        int8_gemm(&full, &[1.0], &full, &[1.0], (1, 1, GEMM_MAX_K), &mut o).unwrap();
        assert_eq!(o[0], (GEMM_MAX_K as f32) * 16384.0);
        assert!(int8_gemm(&a, &sa, &b, &sb, (m, n, GEMM_MAX_K + 1), &mut o1).is_err());
    }
}
