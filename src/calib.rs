//! Activation statistics for one layer input of width `cols`, accumulated as a stream.
//!
//! What a [`Calibration`] keeps, and who needs it:
//! - the Hessian proxy `H = (2/n) sum x x^T` (GPTQ), accumulated in f64 as the raw sum `S = sum x x^T`
//!   (its lower triangle, with one matrix product `S += X^T X` per added chunk). It costs `cols^2` f64
//!   of memory and `O(n cols^2)` time, so it is **selectable**: [`Calibration::new`] accumulates it,
//!   [`CalibrationOptions::hessian`] = false skips it (SmoothQuant and AWQ never read it);
//! - the per-channel `max|x|` (SmoothQuant) and `mean|x|` (AWQ), always (`O(n cols)`);
//! - a bounded, deterministic sample of whole tokens (AWQ's loss and clip search), `sample_tokens`
//!   rows (512 by default). It is a reservoir sample (Vitter's algorithm R) driven by a fixed-seed hash
//!   of the token's position in the stream: token `t` (counting from 0 over every call) is kept at slot
//!   `t` while the reservoir is filling, then replaces slot `j = hash(t) mod (t + 1)` when `j` is below
//!   the sample size. Every token of the stream is equally likely to be kept, the result depends only
//!   on the sequence of tokens (not on how it was cut into calls), and it is the same on every run.
//!
//! Memory is bounded by `cols^2` f64 (when the Hessian is on) + `sample_tokens * cols` f32 +
//! `O(cols)`, plus a scratch of at most 256 tokens during [`Calibration::add`], however
//! many tokens are added. Adding `X` in several calls gives the same statistics as one call (the sum
//! `S` to rounding, everything else exactly).
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self as tri, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};

use crate::algos::parallel;
use crate::error::{try_vec, QuantError, Result};
use crate::kernels::check_finite;

/// Tokens converted to f64 and multiplied at once while accumulating the Hessian.
pub(crate) const CHUNK_TOKENS: usize = 256;
/// Columns of one panel of the Hessian product (fixed, so results do not depend on the thread count).
/// 256 rather than 64: the 4096^2 accumulation of 2048 tokens took 0.95-1.0 s instead of 1.05-1.19 s on
/// one thread (Zen 4), and the panel width does not change a bit of the result (tested).
const PANEL: usize = 256;
/// Seed of the reservoir sample's hash.
const SAMPLE_SEED: u64 = 0x5eed_ca1b_0000_0001;

/// What a calibration accumulates. `Default` accumulates everything with a 512-token sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibrationOptions {
    /// Accumulate the Hessian (needed by GPTQ only).
    pub hessian: bool,
    /// Tokens kept in the sample (AWQ), > 0.
    pub sample_tokens: usize,
    /// Worker threads for the Hessian product; 0 means all cores. Default 1 (as every thread count
    /// of the library: no thread is started unless asked).
    pub threads: usize,
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        Self {
            hessian: true,
            sample_tokens: 512,
            threads: 1,
        }
    }
}

/// Statistics of the activations that flow into one layer input.
#[derive(Debug, Clone)]
pub struct Calibration {
    cols: usize,
    tokens: u64,
    options: CalibrationOptions,
    /// Lower triangle (column-major, element (i, j) with i >= j at `j * cols + i`) of
    /// `sum x x^T` over `hessian_tokens` tokens; `None` when the Hessian is not accumulated.
    xtx: Option<Vec<f64>>,
    hessian_tokens: u64,
    abs_max: Vec<f32>,
    abs_sum: Vec<f64>,
    /// Row-major `sample_len x cols`.
    sample: Vec<f32>,
}

impl Calibration {
    /// An empty calibration for inputs of width `cols` (> 0) that accumulates everything (Hessian,
    /// max/mean, a 512-token sample).
    pub fn new(cols: usize) -> Result<Self> {
        Self::with_options(cols, &CalibrationOptions::default())
    }

    /// An empty calibration with the given options. The Hessian's `cols^2` f64 are allocated here
    /// (fallibly) when it is on.
    pub fn with_options(cols: usize, options: &CalibrationOptions) -> Result<Self> {
        if cols == 0 {
            return Err(QuantError::invalid("calibration width cols must be > 0"));
        }
        if options.sample_tokens == 0 {
            return Err(QuantError::invalid("sample_tokens must be > 0"));
        }
        let xtx = if options.hessian {
            let n2 = cols.checked_mul(cols).ok_or_else(|| {
                QuantError::invalid(format!(
                    "a Hessian of {cols} x {cols} does not fit in memory"
                ))
            })?;
            Some(try_vec(n2, 0.0f64, "calibration Hessian")?)
        } else {
            None
        };
        Ok(Self {
            cols,
            tokens: 0,
            options: options.clone(),
            xtx,
            hessian_tokens: 0,
            abs_max: try_vec(cols, 0.0f32, "calibration max|x|")?,
            abs_sum: try_vec(cols, 0.0f64, "calibration sum|x|")?,
            sample: Vec::new(),
        })
    }

    /// Width of the layer input.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of tokens added so far with [`Calibration::add`].
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// The options the calibration was created with.
    pub fn options(&self) -> &CalibrationOptions {
        &self.options
    }

    /// Whether the Hessian is accumulated.
    pub fn has_hessian(&self) -> bool {
        self.xtx.is_some()
    }

    /// Tokens behind the Hessian (those added, plus those of an imported Hessian).
    pub fn hessian_tokens(&self) -> u64 {
        self.hessian_tokens
    }

    /// Adds `n_tokens` rows of activations (`x` is row-major `n_tokens x cols`).
    ///
    /// Errors (the calibration is unchanged after any of them): `cols` other than the calibration's
    /// width is `ShapeMismatch`; `x` shorter than `n_tokens * cols` is `BufferTooSmall`; a NaN or an
    /// infinity is `NonFinite`; an overflowing size is `InvalidArgument`; no memory for the scratch is
    /// `OutOfMemory`. Zero tokens is a no-op.
    pub fn add(&mut self, x: &[f32], n_tokens: usize, cols: usize) -> Result<()> {
        if cols != self.cols {
            return Err(QuantError::ShapeMismatch(format!(
                "activations have {cols} columns but the calibration is for inputs of width {}",
                self.cols
            )));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        let len = n_tokens.checked_mul(cols).ok_or_else(|| {
            QuantError::invalid(format!("{n_tokens} tokens x {cols} columns overflows"))
        })?;
        crate::kernels::check_len("x", x.len(), len)?;
        let x = &x[..len];
        check_finite(x, "x")?;
        // Every allocation before the first change.
        let mut scratch = if self.xtx.is_some() {
            try_vec(
                CHUNK_TOKENS.min(n_tokens) * cols,
                0.0f64,
                "calibration scratch",
            )?
        } else {
            Vec::new()
        };
        let cap = self.options.sample_tokens;
        let want = cap.min(self.sample.len() / cols + n_tokens);
        let need = want * cols;
        if need > self.sample.capacity() {
            self.sample
                .try_reserve_exact(need - self.sample.len())
                .map_err(|_| {
                    QuantError::OutOfMemory(format!("calibration sample of {need} f32"))
                })?;
        }

        for row in x.chunks_exact(cols) {
            for ((m, s), &v) in self.abs_max.iter_mut().zip(&mut self.abs_sum).zip(row) {
                let a = v.abs();
                *m = m.max(a);
                *s += a as f64;
            }
        }
        for (i, row) in x.chunks_exact(cols).enumerate() {
            let t = self.tokens + i as u64;
            let kept = (self.sample.len() / cols) as u64;
            if kept < cap as u64 {
                self.sample.extend_from_slice(row);
            } else {
                let j = reservoir_slot(t);
                if j < cap as u64 {
                    let j = j as usize;
                    self.sample[j * cols..(j + 1) * cols].copy_from_slice(row);
                }
            }
        }
        if let Some(xtx) = self.xtx.as_mut() {
            for chunk in x.chunks(CHUNK_TOKENS * cols) {
                let m = chunk.len() / cols;
                let buf = &mut scratch[..chunk.len()];
                for (d, &s) in buf.iter_mut().zip(chunk) {
                    *d = s as f64;
                }
                syrk_lower_add(xtx, cols, buf, m, self.options.threads);
            }
            self.hessian_tokens += n_tokens as u64;
        }
        self.tokens += n_tokens as u64;
        Ok(())
    }

    /// Replaces the Hessian by `h` (row-major `cols x cols`, `H = (2/n) sum x x^T` accumulated elsewhere
    /// over `n_tokens` tokens; only its lower triangle is read). Later [`Calibration::add`] calls
    /// continue the same average. Turns the Hessian on if it was off. The other statistics (max, mean,
    /// sample, token count) are not touched.
    ///
    /// Errors (calibration unchanged): `cols` mismatch is `ShapeMismatch`; `h` shorter than `cols^2` is
    /// `BufferTooSmall`; `n_tokens` 0 is `InvalidArgument`; NaN or infinity is `NonFinite`.
    pub fn set_hessian(&mut self, h: &[f64], cols: usize, n_tokens: u64) -> Result<()> {
        if cols != self.cols {
            return Err(QuantError::ShapeMismatch(format!(
                "Hessian is {cols} x {cols} but the calibration is for inputs of width {}",
                self.cols
            )));
        }
        let n = self.cols;
        let n2 = n
            .checked_mul(n)
            .ok_or_else(|| QuantError::invalid("Hessian size overflows"))?;
        crate::kernels::check_len("h", h.len(), n2)?;
        if n_tokens == 0 {
            return Err(QuantError::invalid(
                "n_tokens must be > 0: the Hessian is an average over tokens",
            ));
        }
        if let Some((index, &value)) = h[..n2].iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(QuantError::NonFinite {
                what: "h".into(),
                index,
                value: value as f32,
            });
        }
        let mut xtx = match self.xtx.take() {
            Some(v) => v,
            None => try_vec(n2, 0.0f64, "calibration Hessian")?,
        };
        let half_n = n_tokens as f64 / 2.0;
        for j in 0..n {
            for i in j..n {
                xtx[j * n + i] = h[i * n + j] * half_n;
            }
        }
        self.xtx = Some(xtx);
        self.options.hessian = true;
        self.hessian_tokens = n_tokens;
        Ok(())
    }

    /// The Hessian `H = (2/n) sum x x^T` as a full symmetric row-major `cols x cols` matrix.
    /// `InvalidArgument` when it is not accumulated or no token was added.
    pub fn hessian(&self) -> Result<Vec<f64>> {
        let (xtx, f) = self.hessian_parts()?;
        let n = self.cols;
        let mut h = try_vec(n * n, 0.0f64, "Hessian")?;
        for j in 0..n {
            for i in j..n {
                let v = xtx[j * n + i] * f;
                h[i * n + j] = v;
                h[j * n + i] = v;
            }
        }
        Ok(h)
    }

    /// The lower triangle (column-major) of `sum x x^T` and the factor `2 / n` that makes it `H`,
    /// without copying (GPTQ reads it in place). Same errors as [`Calibration::hessian`].
    pub(crate) fn hessian_parts(&self) -> Result<(&[f64], f64)> {
        let xtx = self.xtx.as_ref().ok_or_else(|| {
            QuantError::invalid(
                "this calibration does not accumulate the Hessian (GPTQ needs it): create it with the Hessian on",
            )
        })?;
        if self.hessian_tokens == 0 {
            return Err(QuantError::invalid(
                "the calibration has no tokens: add activations before quantizing",
            ));
        }
        Ok((xtx, 2.0 / self.hessian_tokens as f64))
    }

    /// Per-channel max|x| over every added token (zeros before the first token).
    pub fn abs_max(&self) -> &[f32] {
        &self.abs_max
    }

    /// Per-channel mean|x| over every added token (zeros before the first token).
    pub fn abs_mean(&self) -> Vec<f64> {
        let n = self.tokens.max(1) as f64;
        self.abs_sum.iter().map(|s| s / n).collect()
    }

    /// The kept sample, row-major `sample_len() x cols` (its rows are not in stream order).
    pub fn sample(&self) -> &[f32] {
        &self.sample
    }

    /// Tokens in the sample: `min(tokens, sample_tokens)`.
    pub fn sample_len(&self) -> usize {
        self.sample.len() / self.cols
    }
}

/// Reservoir slot proposed for the token at stream position `t >= sample size`: uniform in [0, t].
fn reservoir_slot(t: u64) -> u64 {
    let r = splitmix64(SAMPLE_SEED ^ t);
    ((r as u128 * (t as u128 + 1)) >> 64) as u64
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `S += X^T X` on the lower triangle of the column-major `n x n` matrix `s`, `X` row-major `m x n`.
/// Column panels of fixed width are independent jobs (computed identically whatever the thread count).
pub(crate) fn syrk_lower_add(s: &mut [f64], n: usize, x: &[f64], m: usize, threads: usize) {
    syrk_lower_add_in_panels(s, n, x, m, threads, PANEL)
}

/// [`syrk_lower_add`] in column panels of `panel` columns (`columns`: a panel's storage in `s`).
fn syrk_lower_add_in_panels(
    s: &mut [f64],
    n: usize,
    x: &[f64],
    m: usize,
    threads: usize,
    panel: usize,
) {
    let xm = MatRef::from_row_major_slice(x, m, n);
    let jobs: Vec<(usize, &mut [f64])> = s
        .chunks_mut(panel * n)
        .enumerate()
        .map(|(p, columns)| (p * panel, columns))
        .collect();
    // Balance roughly: the first panels are the largest; the queue hands them out first.
    parallel::for_each_job(jobs, threads, |(c0, columns)| {
        let w = columns.len() / n;
        let pm = MatMut::from_column_major_slice_mut(columns, n, w);
        let xp = xm.subcols(c0, w);
        let (_, rest) = pm.split_at_row_mut(c0);
        let (top, bottom) = rest.split_at_row_mut(w);
        tri::matmul(
            top,
            BlockStructure::TriangularLower,
            Accum::Add,
            xp.transpose(),
            BlockStructure::Rectangular,
            xp,
            BlockStructure::Rectangular,
            1.0,
            Par::Seq,
        );
        if c0 + w < n {
            matmul(
                bottom,
                Accum::Add,
                xm.subcols(c0 + w, n - c0 - w).transpose(),
                xp,
                1.0,
                Par::Seq,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, cols: usize) -> Vec<f32> {
        (0..n * cols)
            .map(|i| ((i * 7919 % 1009) as f32 / 100.0 - 5.0) * if i % 13 == 0 { 3.0 } else { 1.0 })
            .collect()
    }

    #[test]
    fn hessian_matches_a_plain_loop_and_chunking_does_not_matter() {
        let (n, cols) = (700, 70);
        let x = data(n, cols);
        let mut one = Calibration::new(cols).unwrap();
        one.add(&x, n, cols).unwrap();
        let mut many = Calibration::with_options(
            cols,
            &CalibrationOptions {
                threads: 3,
                ..Default::default()
            },
        )
        .unwrap();
        let mut at = 0;
        for part in [1, 299, 0, 100, 300] {
            many.add(&x[at * cols..(at + part) * cols], part, cols)
                .unwrap();
            at += part;
        }
        assert_eq!(at, n);
        let (h1, h2) = (one.hessian().unwrap(), many.hessian().unwrap());
        for i in 0..cols {
            for j in 0..cols {
                let mut want = 0.0f64;
                for t in 0..n {
                    want += x[t * cols + i] as f64 * x[t * cols + j] as f64;
                }
                want *= 2.0 / n as f64;
                assert!((h1[i * cols + j] - want).abs() <= 1e-12 * want.abs().max(1.0));
                assert!((h2[i * cols + j] - want).abs() <= 1e-12 * want.abs().max(1.0));
            }
        }
        assert_eq!(one.abs_max(), many.abs_max());
        assert_eq!(one.sample(), many.sample());
        assert_eq!(one.sample_len(), 512);
        for (a, b) in one.abs_mean().iter().zip(many.abs_mean()) {
            assert!((a - b).abs() <= 1e-12 * a.abs());
        }
        assert_eq!(many.tokens(), n as u64);
    }

    /// Each entry of the product is one dot product over the chunk's tokens, computed the same way
    /// whichever panel (or diagonal block of a panel) it falls in: the panel width, like the thread
    /// count, changes no bit of the Hessian.
    #[test]
    fn the_panel_width_changes_no_bit_of_the_hessian() {
        for (n, m) in [(300, CHUNK_TOKENS), (1030, 97)] {
            let x: Vec<f64> = data(m, n).iter().map(|&v| v as f64).collect();
            let want = {
                let mut s = vec![0.0f64; n * n];
                syrk_lower_add_in_panels(&mut s, n, &x, m, 1, 64);
                s
            };
            for panel in [16, 100, PANEL, 512] {
                let mut s = vec![0.0f64; n * n];
                syrk_lower_add_in_panels(&mut s, n, &x, m, 2, panel);
                let same = s.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "n {n}, m {m}: panel {panel} differs from 64");
            }
        }
    }

    #[test]
    fn the_sample_is_a_deterministic_subset_of_the_tokens() {
        let (n, cols) = (2000, 3);
        let x: Vec<f32> = (0..n * cols).map(|i| (i / cols) as f32).collect();
        let mut c = Calibration::with_options(
            cols,
            &CalibrationOptions {
                hessian: false,
                sample_tokens: 100,
                threads: 1,
            },
        )
        .unwrap();
        c.add(&x, n, cols).unwrap();
        assert!(!c.has_hessian() && c.hessian().is_err());
        let ids: Vec<f32> = c.sample().chunks(cols).map(|r| r[0]).collect();
        assert_eq!(ids.len(), 100);
        let mut sorted = ids.clone();
        sorted.sort_by(f32::total_cmp);
        sorted.dedup();
        assert_eq!(sorted.len(), 100, "tokens kept twice");
        // Spread over the stream, not just the first tokens.
        assert!(ids.iter().filter(|&&t| t >= 1000.0).count() > 30);
    }

    #[test]
    fn errors_leave_the_calibration_unchanged() {
        let mut c = Calibration::new(4).unwrap();
        c.add(&[1.0; 8], 2, 4).unwrap();
        let before = format!("{c:?}");
        assert!(matches!(
            c.add(&[1.0; 8], 2, 3),
            Err(QuantError::ShapeMismatch(_))
        ));
        assert!(matches!(
            c.add(&[1.0; 7], 2, 4),
            Err(QuantError::BufferTooSmall { .. })
        ));
        let mut bad = [1.0f32; 8];
        bad[6] = f32::NAN;
        assert!(matches!(
            c.add(&bad, 2, 4),
            Err(QuantError::NonFinite { index: 6, .. })
        ));
        assert!(c.add(&[], usize::MAX, 4).is_err());
        assert!(c.set_hessian(&[0.0; 16], 4, 0).is_err());
        assert!(c.set_hessian(&[0.0; 15], 4, 1).is_err());
        assert_eq!(format!("{c:?}"), before);
        assert!(Calibration::new(0).is_err());
    }

    #[test]
    fn an_imported_hessian_continues_the_average() {
        let (n, cols) = (40, 5);
        let x = data(n, cols);
        let mut all = Calibration::new(cols).unwrap();
        all.add(&x, n, cols).unwrap();
        let mut first = Calibration::new(cols).unwrap();
        first.add(&x[..10 * cols], 10, cols).unwrap();
        let h = first.hessian().unwrap();
        let mut c = Calibration::with_options(
            cols,
            &CalibrationOptions {
                hessian: false,
                ..Default::default()
            },
        )
        .unwrap();
        c.set_hessian(&h, cols, 10).unwrap();
        c.add(&x[10 * cols..], n - 10, cols).unwrap();
        for (a, b) in all.hessian().unwrap().iter().zip(c.hessian().unwrap()) {
            assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0));
        }
    }
}
