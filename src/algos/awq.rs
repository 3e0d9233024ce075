//! AWQ (Lin et al. 2023), following llm-awq's `auto_scale` and `auto_clip`.
//!
//! For the matrices that read one input (q, k, v; gate and up), given the per-channel mean|x| over
//! every calibration token and a sample `X` of calibration tokens:
//! 1. Scale search: for `r = 0, 0.05, ..., 0.95`, `s = max(mean|x|^r, 1e-4)`, normalized by
//!    `sqrt(max s * min s)`; each matrix becomes `W' = Q(W diag(s)) diag(1/s)` and the loss is the mean
//!    squared output error `|X W'^T - X W^T|^2` over the sample and every matrix of the group. The first
//!    `r` with the smallest loss wins (`r = 0` is plain round-to-nearest, so the loss never exceeds it).
//! 2. Clip search, per matrix, on `W diag(s)` against `X diag(1/s)`: for each output channel and group,
//!    the clip value `m = max|w| * (1 - i/20)` for `i = 0..10` (down to a shrink of 0.5, llm-awq's
//!    `n_grid = 20, max_shrink = 0.5`) that minimizes the mean over the sample of the squared error of
//!    the group's partial output; the weights are clamped to `[-m, m]`.
//! 3. `Q(clip(W diag(s)))` with `bits`-bit group quantization and zero points (the library's asymmetric
//!    convention, which puts 0 inside every group's range; llm-awq does not), or symmetric codes.
//!
//! The result's effective weight is `Q(W diag s) diag(1/s)`, in the original input basis.
//! Losses are accumulated from f32 matrix products (faer) into f64.
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::parallel::for_each_job;
use super::qparams::{fake_quant_segment, maxq, min_max, quantize_segment, range_params};
use crate::error::{try_vec, QuantError, Result};
use crate::kernels::simd::{run_compiled_for, simd_level, SimdLevel};
use crate::kernels::{check_finite, check_len, Shape};

/// Grid of the scale search (r = i / 20).
pub(crate) const SCALE_GRID: usize = 20;
/// Grid and largest shrink of the clip search.
const CLIP_GRID: usize = 20;
const CLIP_MAX_SHRINK: f64 = 0.5;
/// Rows per work item.
const ROW_TILE: usize = 64;

/// Settings of one AWQ run.
#[derive(Debug, Clone, PartialEq)]
pub struct AwqParams {
    /// Bits per weight, 1..=8 (4 in the published setting, 3 also common).
    pub bits: u32,
    /// Columns per group, 0 = one group per row (128 in the published setting).
    pub group_size: usize,
    /// Symmetric codes instead of zero points.
    pub symmetric: bool,
    /// Run the clip search (on in the published algorithm).
    pub clip: bool,
    /// Worker threads, 0 = all cores.
    pub threads: usize,
}

/// One quantized matrix of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct AwqMatrix {
    pub rows: usize,
    /// Unpacked codes, row-major `rows x cols`.
    pub codes: Vec<u8>,
    /// `rows x groups_per_row`.
    pub scales: Vec<f32>,
    pub zeros: Vec<f32>,
}

/// The result of AWQ on a group of matrices that share one input.
#[derive(Debug, Clone, PartialEq)]
pub struct AwqResult {
    /// The per-input-channel scale `s` shared by every matrix.
    pub s: Vec<f32>,
    /// The chosen exponent `r`.
    pub ratio: f64,
    /// The loss of every `r` of the grid.
    pub losses: Vec<f64>,
    pub matrices: Vec<AwqMatrix>,
    pub group_len: usize,
}

impl AwqResult {
    /// The effective weight of matrix `m` in the original basis: `(q - zero) * scale / s_j`.
    pub fn dequantize(&self, m: usize, cols: usize) -> Vec<f32> {
        let mat = &self.matrices[m];
        let ng = cols.div_ceil(self.group_len);
        let mut out = vec![0.0f32; mat.rows * cols];
        for r in 0..mat.rows {
            for j in 0..cols {
                let k = r * ng + j / self.group_len;
                out[r * cols + j] =
                    (mat.codes[r * cols + j] as f32 - mat.zeros[k]) * mat.scales[k] / self.s[j];
            }
        }
        out
    }
}

/// The candidate scales for exponent `r`: `max(mean^r, 1e-4)` normalized by `sqrt(max * min)`.
pub fn scales_for_ratio(act_mean: &[f64], r: f64) -> Vec<f32> {
    let raw: Vec<f64> = act_mean.iter().map(|&m| m.powf(r).max(1e-4)).collect();
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for &v in &raw {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let norm = (hi * lo).sqrt();
    raw.iter().map(|&v| (v / norm) as f32).collect()
}

/// AWQ of the matrices `ws` (each `(weights row-major rows x cols, rows)`) that read one input of
/// width `cols`. `act_mean` is the per-channel mean|x| over the calibration, `sample` a row-major
/// `n_sample x cols` sample of calibration tokens.
///
/// Errors: empty `ws`, a zero side, `bits` outside 1..=8, `n_sample` 0 are `InvalidArgument`; short
/// buffers `BufferTooSmall`; NaN or infinity `NonFinite`.
pub fn quantize_group(
    ws: &[(&[f32], usize)],
    cols: usize,
    act_mean: &[f64],
    sample: &[f32],
    n_sample: usize,
    params: &AwqParams,
) -> Result<AwqResult> {
    if ws.is_empty() {
        return Err(QuantError::invalid("AWQ needs at least one matrix"));
    }
    if !(1..=8).contains(&params.bits) {
        return Err(QuantError::invalid(format!(
            "AWQ bits is {}: it must be in 1..=8",
            params.bits
        )));
    }
    if n_sample == 0 {
        return Err(QuantError::invalid(
            "the calibration has no tokens: AWQ needs a sample of activations",
        ));
    }
    let mut group_len = cols;
    for (m, &(w, rows)) in ws.iter().enumerate() {
        let shape = Shape::new(rows, cols, params.group_size)?;
        group_len = shape.group_len();
        check_len(&format!("ws[{m}]"), w.len(), shape.len())?;
        check_finite(&w[..shape.len()], &format!("ws[{m}]"))?;
    }
    check_len("act_mean", act_mean.len(), cols)?;
    let xlen = n_sample
        .checked_mul(cols)
        .ok_or_else(|| QuantError::invalid("sample size overflows"))?;
    check_len("sample", sample.len(), xlen)?;
    let x = &sample[..xlen];
    check_finite(x, "sample")?;
    if let Some(j) = act_mean[..cols]
        .iter()
        .position(|v| !v.is_finite() || *v < 0.0)
    {
        return Err(QuantError::NonFinite {
            what: "act_mean".into(),
            index: j,
            value: act_mean[j] as f32,
        });
    }
    let q = Quantizer {
        bits: params.bits,
        mq: maxq(params.bits),
        gl: group_len,
        symmetric: params.symmetric,
        level: simd_level(),
    };

    // 1. Scale search.
    let total_rows: usize = ws.iter().map(|&(_, r)| r).sum();
    let mut losses = Vec::with_capacity(SCALE_GRID);
    let (mut best, mut best_r, mut best_s) = (f64::INFINITY, 0.0, vec![1.0f32; cols]);
    for i in 0..SCALE_GRID {
        let r = i as f64 / SCALE_GRID as f64;
        let s = scales_for_ratio(&act_mean[..cols], r);
        let mut sq = 0.0f64;
        for &(w, rows) in ws {
            sq += scale_loss(
                &q,
                &w[..rows * cols],
                rows,
                cols,
                &s,
                x,
                n_sample,
                params.threads,
            )?;
        }
        let loss = sq / (n_sample as f64 * total_rows as f64);
        losses.push(loss);
        if loss < best {
            best = loss;
            best_r = r;
            best_s = s;
        }
    }

    // 2-3. Clip search and quantization, per matrix.
    let mut xs = try_vec(xlen, 0.0f32, "AWQ scaled sample")?;
    for (d, row) in xs.chunks_exact_mut(cols).zip(x.chunks_exact(cols)) {
        for ((o, &v), &sj) in d.iter_mut().zip(row).zip(&best_s) {
            *o = v / sj;
        }
    }
    let ng = cols.div_ceil(group_len);
    let mut matrices = Vec::with_capacity(ws.len());
    for &(w, rows) in ws {
        let mut ws_ = try_vec(rows * cols, 0.0f32, "AWQ scaled weights")?;
        for (d, row) in ws_.chunks_exact_mut(cols).zip(w.chunks_exact(cols)) {
            for ((o, &v), &sj) in d.iter_mut().zip(row).zip(&best_s) {
                *o = v * sj;
            }
        }
        if params.clip {
            let jobs: Vec<_> = ws_.chunks_mut(ROW_TILE * cols).collect();
            for_each_job(jobs, params.threads, |tile| {
                clip_tile(&q, tile, cols, &xs, n_sample);
            });
        }
        let mut codes = try_vec(rows * cols, 0u8, "AWQ codes")?;
        let mut scales = try_vec(rows * ng, 0.0f32, "AWQ scales")?;
        let mut zeros = try_vec(rows * ng, 0.0f32, "AWQ zero points")?;
        for r in 0..rows {
            for g in 0..ng {
                let (c0, c1) = (g * group_len, ((g + 1) * group_len).min(cols));
                let vals = &ws_[r * cols + c0..r * cols + c1];
                let (s, z) = q.params(vals);
                scales[r * ng + g] = s;
                zeros[r * ng + g] = z;
                quantize_segment(
                    vals,
                    s,
                    z,
                    q.mq as f32,
                    &mut codes[r * cols + c0..r * cols + c1],
                );
            }
        }
        matrices.push(AwqMatrix {
            rows,
            codes,
            scales,
            zeros,
        });
    }
    Ok(AwqResult {
        s: best_s,
        ratio: best_r,
        losses,
        matrices,
        group_len,
    })
}

#[derive(Clone, Copy)]
struct Quantizer {
    bits: u32,
    mq: u32,
    gl: usize,
    symmetric: bool,
    /// The SIMD level in force for the call: the searches' per-element loops are compiled for AVX2
    /// where it has it, with the same bits (`simd::run_compiled_for`; tested).
    level: SimdLevel,
}

impl Quantizer {
    fn params(&self, vals: &[f32]) -> (f32, f32) {
        let (lo, hi) = min_max(vals);
        range_params(lo, hi, self.bits, self.symmetric)
    }

    /// Fake-quantizes one row in groups, in place (`codes`: scratch of a group). Inlined into the
    /// scale search, so that it is compiled for the SIMD level of the search.
    #[inline(always)]
    fn fake_row(&self, row: &mut [f32], codes: &mut [u8]) {
        for g in row.chunks_mut(self.gl) {
            let (s, z) = self.params(g);
            let n = g.len();
            let codes = &mut codes[..n];
            quantize_segment(g, s, z, self.mq as f32, codes);
            for (v, &q) in g.iter_mut().zip(codes.iter()) {
                *v = super::qparams::dequantize_code(q, s, z);
            }
        }
    }
}

/// Sum over the sample and the rows of the squared output error of `Q(W diag s) diag(1/s)`.
#[allow(clippy::too_many_arguments)]
fn scale_loss(
    q: &Quantizer,
    w: &[f32],
    rows: usize,
    cols: usize,
    s: &[f32],
    x: &[f32],
    n: usize,
    threads: usize,
) -> Result<f64> {
    let tiles = rows.div_ceil(ROW_TILE);
    let mut partial = try_vec(tiles, 0.0f64, "AWQ loss")?;
    let jobs: Vec<_> = w.chunks(ROW_TILE * cols).zip(partial.iter_mut()).collect();
    let xm = MatRef::from_row_major_slice(x, n, cols);
    for_each_job(jobs, threads, |(tile, out)| {
        run_compiled_for(
            q.level,
            #[inline(always)]
            || scale_loss_tile(q, tile, cols, s, xm, n, out),
        )
    });
    Ok(partial.iter().sum())
}

/// [`scale_loss`] of one tile of rows, into `out`.
#[inline(always)]
fn scale_loss_tile(
    q: &Quantizer,
    tile: &[f32],
    cols: usize,
    s: &[f32],
    xm: MatRef<'_, f32>,
    n: usize,
    out: &mut f64,
) {
    let tr = tile.len() / cols;
    let mut delta = vec![0.0f32; tile.len()];
    let mut codes = vec![0u8; q.gl];
    for (d, row) in delta.chunks_exact_mut(cols).zip(tile.chunks_exact(cols)) {
        for ((o, &v), &sj) in d.iter_mut().zip(row).zip(s) {
            *o = v * sj;
        }
        q.fake_row(d, &mut codes);
        for ((o, &v), &sj) in d.iter_mut().zip(row).zip(s) {
            *o = *o / sj - v;
        }
    }
    let mut prod = vec![0.0f32; n * tr];
    matmul(
        MatMut::from_row_major_slice_mut(&mut prod, n, tr),
        Accum::Replace,
        xm,
        MatRef::from_row_major_slice(&delta, tr, cols).transpose(),
        1.0f32,
        Par::Seq,
    );
    *out = prod.iter().map(|&v| v as f64 * v as f64).sum();
}

/// The clip search on a tile of rows of `W diag(s)` (clamped in place), against the scaled sample.
fn clip_tile(q: &Quantizer, tile: &mut [f32], cols: usize, xs: &[f32], n: usize) {
    run_compiled_for(
        q.level,
        #[inline(always)]
        || clip_tile_body(q, tile, cols, xs, n),
    )
}

#[inline(always)]
fn clip_tile_body(q: &Quantizer, tile: &mut [f32], cols: usize, xs: &[f32], n: usize) {
    let tr = tile.len() / cols;
    let gl = q.gl;
    let steps = (CLIP_MAX_SHRINK * CLIP_GRID as f64) as usize;
    let mut delta = vec![0.0f32; tr * gl];
    let mut prod = vec![0.0f32; tr * n];
    let mut best_err = vec![0.0f64; tr];
    let mut best_max = vec![0.0f32; tr];
    let mut cand = vec![0.0f32; gl];
    let mut codes = vec![0u8; gl];
    let mut lohi = vec![(0.0f32, 0.0f32); tr];
    for c0 in (0..cols).step_by(gl) {
        let c1 = (c0 + gl).min(cols);
        let w = c1 - c0;
        let mut orig_max = vec![0.0f32; tr];
        for r in 0..tr {
            let (lo, hi) = min_max(&tile[r * cols + c0..r * cols + c1]);
            lohi[r] = (lo, hi);
            orig_max[r] = lo.abs().max(hi.abs());
        }
        best_err.fill(f64::INFINITY);
        best_max.copy_from_slice(&orig_max);
        // The group's columns of the sample, transposed for the product: (w x n).
        let xg = MatRef::from_row_major_slice_with_stride(&xs[c0..], n, w, cols).transpose();
        for i in 0..steps {
            let shrink = (1.0 - i as f64 / CLIP_GRID as f64) as f32;
            for r in 0..tr {
                let mv = orig_max[r] * shrink;
                let src = &tile[r * cols + c0..r * cols + c1];
                let c = &mut cand[..w];
                for (o, &v) in c.iter_mut().zip(src) {
                    *o = v.clamp(-mv, mv);
                }
                // Clamping is monotonic: the clamped group's min and max are the clamped extremes.
                let (lo, hi) = lohi[r];
                let (s, z) =
                    range_params(lo.clamp(-mv, mv), hi.clamp(-mv, mv), q.bits, q.symmetric);
                let d = &mut delta[r * w..(r + 1) * w];
                fake_quant_segment(c, s, z, q.mq, &mut codes, d);
                for (dv, &v) in d.iter_mut().zip(src) {
                    *dv -= v;
                }
            }
            // prod (tr x n) = delta (tr x w) . X_g^T (w x n).
            matmul(
                MatMut::from_row_major_slice_mut(&mut prod, tr, n),
                Accum::Replace,
                MatRef::from_row_major_slice(&delta[..tr * w], tr, w),
                xg,
                1.0f32,
                Par::Seq,
            );
            for (r, row) in prod.chunks_exact(n).enumerate() {
                let e = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / n as f64;
                if e < best_err[r] {
                    best_err[r] = e;
                    best_max[r] = orig_max[r] * shrink;
                }
            }
        }
        for r in 0..tr {
            let m = best_max[r];
            for v in &mut tile[r * cols + c0..r * cols + c1] {
                *v = v.clamp(-m, m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic test pattern: `((i * mul) % modulus - modulus / 2) / div`.
    fn pattern(len: usize, mul: usize, modulus: usize, div: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * mul % modulus) as f32 - (modulus / 2) as f32) / div)
            .collect()
    }

    /// Per-channel mean |x| of a row-major `n x cols` sample.
    fn mean_abs(x: &[f32], n: usize, cols: usize) -> Vec<f64> {
        (0..cols)
            .map(|j| (0..n).map(|t| x[t * cols + j].abs() as f64).sum::<f64>() / n as f64)
            .collect()
    }

    #[test]
    fn ratio_zero_is_round_to_nearest_and_the_loss_never_exceeds_it() {
        let (rows, cols, n) = (20, 32, 50);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 31 % 97) as f32 - 48.0) / 50.0)
            .collect();
        let x: Vec<f32> = (0..n * cols)
            .map(|i| ((i * 17 % 89) as f32 - 44.0) / 40.0 * if i % cols == 5 { 8.0 } else { 1.0 })
            .collect();
        let mean = mean_abs(&x, n, cols);
        assert!(scales_for_ratio(&mean, 0.0).iter().all(|&s| s == 1.0));
        let s = scales_for_ratio(&mean, 0.5);
        let (lo, hi) = s
            .iter()
            .fold((f32::MAX, 0.0f32), |(a, b), &v| (a.min(v), b.max(v)));
        assert!((lo * hi - 1.0).abs() < 1e-5);
        let p = AwqParams {
            bits: 4,
            group_size: 16,
            symmetric: false,
            clip: true,
            threads: 2,
        };
        let r = quantize_group(&[(&w, rows)], cols, &mean, &x, n, &p).unwrap();
        assert!(r
            .losses
            .iter()
            .all(|&l| l >= r.losses.iter().cloned().fold(f64::MAX, f64::min)));
        assert!(r.losses.iter().cloned().fold(f64::MAX, f64::min) <= r.losses[0]);
        let d = r.dequantize(0, cols);
        assert!(d.iter().zip(&w).all(|(a, b)| (a - b).abs() < 0.5));
        assert!(quantize_group(&[], cols, &mean, &x, n, &p).is_err());
        assert!(quantize_group(&[(&w, rows)], cols, &mean, &x, 0, &p).is_err());
    }

    #[test]
    fn every_simd_level_gives_the_bits_of_the_scalar_build() {
        use crate::kernels::simd::{available_levels, with_simd_level};
        // Groups, one group per row, symmetric codes, no clip; two matrices sharing the input; a width
        // that is not a multiple of 8 (the vector loops' tails).
        let (cols, n) = (150, 61);
        let w1 = pattern(70 * cols, 37, 101, 60.0);
        let w2 = pattern(9 * cols, 13, 71, 30.0);
        let mut x = pattern(n * cols, 29, 83, 20.0);
        x.iter_mut().skip(7).step_by(cols).for_each(|v| *v *= 9.0);
        let mean = mean_abs(&x, n, cols);
        let ws = [(&w1[..], 70), (&w2[..], 9)];
        for (bits, group_size, symmetric, clip) in [
            (4, 32, false, true),
            (3, 0, false, true),
            (4, 64, true, true),
            (8, 32, false, false),
        ] {
            let p = AwqParams {
                bits,
                group_size,
                symmetric,
                clip,
                threads: 2,
            };
            let run = |level| {
                with_simd_level(level, || quantize_group(&ws, cols, &mean, &x, n, &p))
                    .unwrap()
                    .unwrap()
            };
            let want = run(SimdLevel::Scalar);
            let bits32 = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let bits64 = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for level in available_levels() {
                let got = run(level);
                let what = format!("{level:?} bits {bits} gs {group_size} sym {symmetric}");
                assert_eq!(bits64(&got.losses), bits64(&want.losses), "{what}");
                assert_eq!(got.ratio, want.ratio, "{what}");
                assert_eq!(bits32(&got.s), bits32(&want.s), "{what}");
                for (a, b) in got.matrices.iter().zip(&want.matrices) {
                    assert_eq!(a.codes, b.codes, "{what}");
                    assert_eq!(bits32(&a.scales), bits32(&b.scales), "{what}");
                    assert_eq!(bits32(&a.zeros), bits32(&b.zeros), "{what}");
                }
            }
        }
    }
}
