//! The grid of one GGUF record once its parameters are fixed: what an algorithm that chooses its own
//! codes (GPTQ) rounds onto, so that its result is an ordinary record of the type. Every type has one
//! ([`spec`]): the 32-value types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) one grid per record, the K-quants one
//! per sub-block (16 values for Q2_K, Q3_K, Q6_K; 32 for Q4_K, Q5_K) of their 256-value super-block.
//!
//! - [`GridSpec::fit`]: the record fitted to a block's values by the type's own quantizer (ggml's
//!   reference, see the parent module), and each sub-block's grid read from it: `(scale, zero)` with
//!   code `q` standing for `scale * k (+ zero)`, `k` the code minus the type's offset, computed as the
//!   dequantizer computes it.
//! - [`GridSpec::fit_search`]: the same with a search over shrunk copies of the values.
//! - [`GridSpec::nearest`]: the code of the grid point nearest to a value, clamped to the type's code
//!   range, and that point's value. Unlike ggml's 32-value quantizers (which truncate
//!   `x * (1/d) + 8.5`, with the f32 `d` before its rounding to f16), the code is chosen against the
//!   stored grid.
//! - [`GridSpec::set_codes`]: a fitted record's codes replaced by chosen ones (header and scales
//!   kept).
//!
//! Codes are the stored ones: `0..=15` (Q4_0, Q4_1, Q4_K), `0..=31` (Q5_0, Q5_1, Q5_K), for Q8_0 the
//! bits of the `i8` code (`-128..=127`; ggml's quantizer itself only emits `-127..=127`, the format
//! holds both), `0..=3` (Q2_K), `0..=7` (Q3_K), `0..=63` (Q6_K).
use super::{k, read_fp16, write_nibbles, GgmlType};

/// The grid of a GGUF type, as [`spec`] gives it.
#[derive(Clone, Copy, Debug)]
pub struct GridSpec {
    ty: GgmlType,
    /// Values per record (32, or 256 for the K-quants).
    pub block: usize,
    /// Values per sub-block, each with its own grid (`block` for the 32-value types).
    pub sub: usize,
    /// Range `lo..=hi` of `k`, the code minus `off`.
    lo: i32,
    hi: i32,
    off: i32,
    /// Whether a point is `scale * k + zero` (else `scale * k`, with no addition at all).
    with_zero: bool,
    /// The sub-block grids of a record.
    grids: fn(&[u8], &mut [f32], &mut [f32]),
    /// Writes a block's codes into a record, keeping the rest.
    set_codes: fn(&[u8], &mut [u8]),
}

/// The grid of `ty`, or `None` for a type GPTQ cannot round onto (IQ4_NL, IQ4_XS, MXFP4 and NVFP4,
/// whose codes index a non-linear table) or that this module does not cover (the ternary TQ1_0 and
/// TQ2_0).
pub fn spec(ty: GgmlType) -> Option<GridSpec> {
    type Grids = fn(&[u8], &mut [f32], &mut [f32]);
    type Codes = fn(&[u8], &mut [u8]);
    let (block, sub, lo, hi, off, with_zero, grids, set_codes): (_, _, _, _, _, _, Grids, Codes) =
        match ty {
            GgmlType::Q4_0 => (32, 32, -8, 7, 8, false, d_grid, |c, y| {
                write_nibbles(y, false, |j| c[j])
            }),
            GgmlType::Q5_0 => (32, 32, -16, 15, 16, false, d_grid, |c, y| {
                write_nibbles(y, true, |j| c[j])
            }),
            GgmlType::Q4_1 => (32, 32, 0, 15, 0, true, dm_grid, |c, y| {
                write_nibbles(&mut y[2..], false, |j| c[j])
            }),
            GgmlType::Q5_1 => (32, 32, 0, 31, 0, true, dm_grid, |c, y| {
                write_nibbles(&mut y[2..], true, |j| c[j])
            }),
            GgmlType::Q8_0 => (32, 32, -128, 127, 0, false, d_grid, |c, y| {
                y[2..34].copy_from_slice(&c[..32])
            }),
            GgmlType::Q2_K => (256, 16, 0, 3, 0, true, k::q2_k_grids, k::set_q2_k_codes),
            GgmlType::Q3_K => (256, 16, -4, 3, 4, false, k::q3_k_grids, k::set_q3_k_codes),
            GgmlType::Q4_K => (256, 32, 0, 15, 0, true, k::q4_k_grids, k::set_q4_k_codes),
            GgmlType::Q5_K => (256, 32, 0, 31, 0, true, k::q4_k_grids, k::set_q5_k_codes),
            GgmlType::Q6_K => (
                256,
                16,
                -32,
                31,
                32,
                false,
                k::q6_k_grids,
                k::set_q6_k_codes,
            ),
            // Non-linear code books: no grid of evenly spaced points to round onto.
            GgmlType::IQ4_NL | GgmlType::IQ4_XS | GgmlType::MXFP4 | GgmlType::NVFP4 => return None,
            GgmlType::TQ1_0 | GgmlType::TQ2_0 => return None,
        };
    Some(GridSpec {
        ty,
        block,
        sub,
        lo,
        hi,
        off,
        with_zero,
        grids,
        set_codes,
    })
}

/// The grid of a record with one f16 `d` first (Q4_0, Q5_0, Q8_0).
fn d_grid(b: &[u8], scale: &mut [f32], zero: &mut [f32]) {
    scale[0] = read_fp16(b);
    zero[0] = 0.0;
}

/// The grid of a record with f16 `d` and `m` first (Q4_1, Q5_1).
fn dm_grid(b: &[u8], scale: &mut [f32], zero: &mut [f32]) {
    scale[0] = read_fp16(b);
    zero[0] = read_fp16(&b[2..]);
}

/// Importance weights of one block for [`GridSpec::fit`]: the block's weights and its row's `sigma2`.
pub type Importance<'a> = Option<(&'a [f32], f32)>;

impl GridSpec {
    /// The type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Sub-blocks (grids) per record.
    pub fn sub_blocks(&self) -> usize {
        self.block / self.sub
    }

    /// Fits the record `rec` (`ty.type_size()` bytes) to the block `x` (`block` values) with the type's
    /// quantizer, and reads each sub-block's grid from it into `scale` and `zero` (`sub_blocks()`
    /// each). A record's f16 header may overflow to infinity (see [`Self::bad_header`]).
    ///
    /// `importance`: the block's weights and its row's statistic for the weighted fit (ggml's
    /// quantizers with an importance matrix, [`GgmlType::quantize_block_weighted`]).
    pub fn fit(
        &self,
        x: &[f32],
        importance: Importance<'_>,
        rec: &mut [u8],
        scale: &mut [f32],
        zero: &mut [f32],
    ) {
        match importance {
            None => self.ty.quantize_block(x, rec),
            Some((qw, row_sigma2)) => self.ty.quantize_block_weighted(x, qw, row_sigma2, rec),
        }
        (self.grids)(rec, scale, zero);
    }

    /// [`Self::fit`] (unweighted) with a search over shrunk ranges (GPTQ's MSE option carried over to
    /// the type's grid): the records fitted to `p * x` for `p = 1 - i/100`, `i < 80`, keeping the one
    /// whose grids give the smallest `sum |nearest(x) - x|^2.4` (the first one, `p = 1`, the type's
    /// quantizer, on ties).
    pub fn fit_search(&self, x: &[f32], rec: &mut [u8], scale: &mut [f32], zero: &mut [f32]) {
        let n = x.len();
        let nsub = self.sub_blocks();
        let mut scaled = [0f32; k::QK_K];
        let mut trial = [0u8; 256];
        let trial = &mut trial[..rec.len()];
        let (mut ts, mut tz) = ([0f32; 16], [0f32; 16]);
        self.fit(x, None, rec, scale, zero);
        let mut best = self.error(x, scale, zero);
        for i in 0..80 {
            let p = 1.0 - i as f32 / 100.0;
            for (s, &v) in scaled[..n].iter_mut().zip(x) {
                *s = v * p;
            }
            self.fit(&scaled[..n], None, trial, &mut ts[..nsub], &mut tz[..nsub]);
            let err = self.error(x, &ts, &tz);
            if err < best {
                best = err;
                rec.copy_from_slice(trial);
                scale[..nsub].copy_from_slice(&ts[..nsub]);
                zero[..nsub].copy_from_slice(&tz[..nsub]);
            }
        }
    }

    /// `sum |nearest(x) - x|^2.4` over a block on the grids `scale`, `zero`.
    fn error(&self, x: &[f32], scale: &[f32], zero: &[f32]) -> f32 {
        x.iter()
            .enumerate()
            .map(|(j, &v)| {
                let g = j / self.sub;
                (self.nearest(v, scale[g], zero[g]).1 - v).abs().powf(2.4)
            })
            .sum()
    }

    /// The code of the point of the grid `(scale, zero)` nearest to `x`, and that point's value as the
    /// type's dequantizer computes it (`k * scale`, or `k * scale + zero` in two roundings). Ties go to
    /// the even code.
    #[inline(always)]
    pub fn nearest(&self, x: f32, scale: f32, zero: f32) -> (u8, f32) {
        let zero = if self.with_zero { Some(zero) } else { None };
        nearest_in(x, scale, zero, self.lo, self.hi, self.off)
    }

    /// Writes `codes` (`block` of them, as [`Self::nearest`] gives them) into the fitted record `rec`.
    pub fn set_codes(&self, codes: &[u8], rec: &mut [u8]) {
        (self.set_codes)(codes, rec)
    }

    /// The value of the first f16 header field (scale or min) of `rec` that is infinite or NaN.
    pub fn bad_header(&self, rec: &[u8]) -> Option<f32> {
        self.ty.bad_header(rec).map(|(_, v)| v)
    }
}

/// Nearest point `k * d (+ m)` (two roundings; no addition at all without `m`, which keeps the sign
/// of a zero product as the dequantizer does) for `k` in `lo..=hi`, returned as the stored code `k + off`
/// (as `u8`: Q8_0's `i8` bits). The estimate `round((x - m) / d)` can land one step off the true
/// nearest point when `x` is close to a midpoint (the subtraction and division round), so its two
/// neighbours are compared too.
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

#[cfg(test)]
mod tests {
    use super::super::{dequantize_block_for_tests as dequantize, GgmlType};
    use super::*;

    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.4) * 3.0
            })
            .collect()
    }

    fn specs() -> Vec<GridSpec> {
        GgmlType::all().into_iter().filter_map(spec).collect()
    }

    /// A fitted record of `g` for `x`, with its grids.
    fn fitted(g: &GridSpec, x: &[f32]) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
        let mut rec = vec![0u8; g.ty.type_size()];
        let (mut s, mut z) = (vec![0f32; g.sub_blocks()], vec![0f32; g.sub_blocks()]);
        g.fit(x, None, &mut rec, &mut s, &mut z);
        (rec, s, z)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn every_linear_type_has_a_grid_of_its_block() {
        for ty in GgmlType::all() {
            let Some(g) = spec(ty) else {
                assert!(
                    matches!(
                        ty,
                        GgmlType::IQ4_NL
                            | GgmlType::IQ4_XS
                            | GgmlType::MXFP4
                            | GgmlType::NVFP4
                            | GgmlType::TQ1_0
                            | GgmlType::TQ2_0
                    ),
                    "{ty:?}"
                );
                continue;
            };
            assert_eq!((g.ty(), g.block), (ty, ty.block_size()));
            assert_eq!(g.block % g.sub, 0);
        }
        assert_eq!(specs().len(), GgmlType::all().len() - 6);
    }

    #[test]
    fn records_decode_to_the_values_nearest_gives() {
        for g in specs() {
            for seed in 1..50u64 {
                let x = values(seed, g.block);
                let (mut rec, s, z) = fitted(&g, &x);
                let (mut codes, mut want) = (vec![0u8; g.block], vec![0f32; g.block]);
                // Values beyond the block's range too, so that the clamps are exercised.
                for j in 0..g.block {
                    let v = if j % 32 == 3 { x[j] * 2.5 } else { x[j] };
                    (codes[j], want[j]) = g.nearest(v, s[j / g.sub], z[j / g.sub]);
                }
                g.set_codes(&codes, &mut rec);
                let mut got = vec![0f32; g.block];
                dequantize(g.ty, &rec, &mut got);
                assert_eq!(bits(&got), bits(&want), "{:?} seed {seed}", g.ty);
            }
        }
    }

    #[test]
    fn the_search_never_loses_to_the_rule() {
        for g in specs() {
            let mut better = 0;
            let seeds = if g.block == 32 { 40 } else { 6 };
            for seed in 1..seeds {
                let x = values(seed, g.block);
                let (_, s, z) = fitted(&g, &x);
                let rule = g.error(&x, &s, &z);
                let (mut rec, mut s, mut z) = fitted(&g, &x);
                g.fit_search(&x, &mut rec, &mut s, &mut z);
                let searched = g.error(&x, &s, &z);
                assert!(searched <= rule, "{:?} seed {seed}", g.ty);
                better += usize::from(searched < rule);
            }
            // On these uniform values Q8_0's 255 levels leave nothing to gain by clipping, nor do
            // the K-quants' sub-block scales (fitted by their own search).
            assert!(
                better > 0 || g.ty == GgmlType::Q8_0 || g.block != 32,
                "{:?}: the search never found better parameters",
                g.ty
            );
        }
    }

    #[test]
    fn nearest_is_the_nearest_point_of_the_grid() {
        for g in specs() {
            let x = values(7, g.block);
            let (rec, s, z) = fitted(&g, &x);
            // Every code in every position, decoded.
            let decoded: Vec<Vec<f32>> = (g.lo..=g.hi)
                .map(|k| {
                    let mut r = rec.clone();
                    g.set_codes(&vec![(k + g.off) as u8; g.block], &mut r);
                    let mut y = vec![0f32; g.block];
                    dequantize(g.ty, &r, &mut y);
                    y
                })
                .collect();
            for (j, &v) in x.iter().enumerate() {
                let (_, got) = g.nearest(v, s[j / g.sub], z[j / g.sub]);
                let best = decoded
                    .iter()
                    .map(|y| (y[j] - v).abs())
                    .fold(f32::INFINITY, f32::min);
                assert!(
                    (got - v).abs() <= best * (1.0 + 1e-6),
                    "{:?} {v}: {got}",
                    g.ty
                );
            }
        }
    }
}
