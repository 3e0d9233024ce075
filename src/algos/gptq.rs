//! GPTQ (Frantar et al. 2022), following the reference implementation's `fasterquant`.
//!
//! Steps, as in `gptq.py`:
//! 1. Dead columns: where `H_ii == 0`, set `H_ii = 1` and `W[:, i] = 0`.
//! 2. Static groups (option): every group's scale and zero point from the (dead-zeroed) original
//!    weights, up front.
//! 3. Act-order (option): permute columns by decreasing `diag(H)` (a stable sort: ties keep their
//!    order); the result is given back in the original column order with `g_idx`.
//! 4. Damping: `H += damp_percent * mean(diag H) * I`; `U` = the upper Cholesky factor of `H^-1`.
//!    When the factorization fails the damping is raised step by step (`damp_percent` times 4, 16, ...,
//!    then 1.0); `Numerical` only if every attempt fails, with a detail listing them.
//! 5. Columns in blocks of `block_size`: inside a block each column is quantized, its error
//!    `e = (w - q) / U_ii` is pushed onto the block's later columns with `U[i, i+1..]`; after the block,
//!    one matrix product `W[:, later] -= E U[block, later]` applies the lazy update.
//! 6. Groups (dynamic): a group's scale and zero point are computed when its first column is reached,
//!    from the group's current (error-updated) weights. With the default block and group sizes (128,
//!    aligned) this is exactly the reference; when a group starts inside a block and reaches past it,
//!    the reference reads the later columns before the pending block update reached them, while this
//!    implementation applies that update first, which is what the unblocked algorithm does.
//!
//! The quantizer is the reference's `Quantizer` (per output channel, per group): asymmetric with an
//! integer zero point (the library's convention, see [`super::qparams`]) or symmetric with
//! zero = (maxq + 1) / 2; the MSE option searches `p = 1 - i/100` for `i < 80`, shrinking the range to
//! `p * [lo, hi]`, and keeps the candidate with the smallest `sum |q(x) - x|^2.4`.
//!
//! GGUF grids ([`quantize_ggml`]): the same algorithm with the group quantizer replaced by a GGUF
//! record's: a 32-value block (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) or a 256-value K-quant super-block (Q2_K,
//! Q3_K, Q4_K, Q5_K, Q6_K). A record is consecutive input columns of one output row, i.e. a GPTQ group
//! of 32 or 256 in the original column order (so no act-order). When the column loop reaches a
//! record's first column, the record is fitted to its current (error-updated) weights by the type's
//! own quantizer (ggml's reference), and the grid of each of its sub-blocks is read from it as the
//! dequantizer computes it (one grid for the 32-value types; 16 sub-blocks of 16 values for Q2_K, Q3_K
//! and Q6_K, 8 of 32 for Q4_K and Q5_K, each with its quantized scale, and min for Q2_K, Q4_K, Q5_K);
//! each column is then rounded to the nearest point of its sub-block's grid (clamped to the code
//! range) and its error fed forward. The result is the fitted records with GPTQ's codes, which decode
//! (with [`crate::kernels::ggml::ggml_dequantize`]) to exactly the values whose error GPTQ propagated.
//! The rounding rules are in `kernels/ggml/grid.rs`.
//!
//! Numerics: the Hessian is accumulated in f64 (a [`Calibration`]'s; an explicit Hessian is f64 too).
//! Its damping, Cholesky factorization and triangular inverse run in f32, as the reference's do (the
//! factor is computed from `H / mean(diag H)`, rounded to f32 from f64, which gives the same updates
//! and keeps the factor in range); where the f32 factorization fails at a damping (a non-positive
//! pivot, a factor that is not finite), the f64 one is tried at the same damping before the damping is
//! raised, so the damping used and the errors are those of an f64 solve. On the bundled MiniLM layers
//! the f32 factor changes the held-out error by less than 0.1% for the integer grid and 0.4% for the
//! GGUF grids (`tests/algos_gptq.rs`, `tests/algos_gptq_ggml.rs`). The weight updates are f32 like the
//! reference. `U` is obtained with one Cholesky factorization and one
//! triangular inverse: with `J` the reversal permutation and `J H J = L L^T`, `U = J L^-1 J` is upper
//! triangular with a positive diagonal and `U^T U = H^-1`, so it is the factor the reference computes
//! with `cholesky(cholesky_inverse(cholesky(H)), upper=True)`.
//!
//! Rows are independent: they are processed in tiles of a fixed number of rows on up to `threads`
//! threads, and the result does not depend on the thread count.
//!
//! Memory (`cols = n`), besides the weight and the Hessian: first one buffer of `n (n + 1)` f32 (f64
//! when the f32 factorization failed), in which the factorization, the triangular inverse and the
//! conversion to the row-major factor all happen in place (see `factor_at`), shrunk to the `n^2` f32
//! of `U`; then `U`, the codes (`rows x cols` bytes), the scales and zero points, and a working copy of
//! one tile of rows per thread. The two phases never overlap: on a square layer the peak is the
//! weight, the Hessian, `n^2` f32 and the codes (1.5 x (Hessian + weight) with the f64 Hessian of a
//! [`Calibration`]; `cargo bench --bench algos` measures it).
use std::sync::Mutex;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::factor::{cholesky_lower_in_place, invert_lower_into, CholeskyError, Real, TILING};
use super::parallel::{for_each_job, resolve_threads};
use super::qparams::{fake_quant_segment, maxq, min_max, quantize_code, range_params};
use super::QuantOptions;
use crate::calib::Calibration;
use crate::error::{try_vec, QuantError, Result};
use crate::kernels::ggml::{check_importance, grid, row_sigma2, GgmlType};
use crate::kernels::simd::{run_compiled_for, simd_level, SimdLevel};
use crate::kernels::{check_finite, check_len, Shape};

/// Rows per work item.
const ROW_TILE: usize = 64;
/// Side of the square tiles in which the factor's buffers are copied and transposed.
const COPY_TILE: usize = 64;
/// MSE search: grid size, largest shrink and the error norm of the reference quantizer.
const MSE_GRID: usize = 100;
const MSE_MAXSHRINK: f32 = 0.8;
const MSE_NORM: f32 = 2.4;

/// Settings of one GPTQ run.
#[derive(Debug, Clone, PartialEq)]
pub struct GptqParams {
    /// Bits per weight, 1..=8 (the published range is 2..8).
    pub bits: u32,
    /// Columns per group; 0 = one group per row.
    pub group_size: usize,
    pub symmetric: bool,
    pub act_order: bool,
    pub static_groups: bool,
    pub mse_search: bool,
    /// Damping fraction of the mean Hessian diagonal, in (0, 1).
    pub damp_percent: f64,
    /// Columns per lazy-update block, > 0.
    pub block_size: usize,
    /// Worker threads, 0 = all cores.
    pub threads: usize,
}

impl GptqParams {
    /// `bits` and `group_size` with every other setting from `options`.
    pub fn new(bits: u32, group_size: usize, options: &QuantOptions) -> Self {
        Self {
            bits,
            group_size,
            symmetric: options.symmetric,
            act_order: options.act_order,
            static_groups: options.static_groups,
            mse_search: options.mse_search,
            damp_percent: options.damp_percent,
            block_size: options.block_size,
            threads: options.threads,
        }
    }
}

/// The result of GPTQ on a `rows x cols` matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct GptqResult {
    /// Unpacked codes in [0, 2^bits - 1], row-major `rows x cols`, original column order.
    pub codes: Vec<u8>,
    /// `rows x n_groups` scales; the group of column `j` is `g_idx[j]` or `j / group_len`.
    pub scales: Vec<f32>,
    /// `rows x n_groups` integer zero points (as f32; (maxq + 1) / 2 when symmetric).
    pub zeros: Vec<f32>,
    /// Group of each column, present with act-order (without static groups).
    pub g_idx: Option<Vec<i32>>,
    /// Columns per group (`group_size`, or `cols` when it is 0 or larger).
    pub group_len: usize,
    /// Groups per row.
    pub n_groups: usize,
    /// The damping fraction that factorized (`damp_percent` unless it had to be raised).
    pub damp_used: f64,
}

impl GptqResult {
    /// The effective weights `(q - zero) * scale`, row-major `rows x cols` in the original order.
    pub fn dequantize(&self, rows: usize, cols: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; rows * cols];
        for r in 0..rows {
            for j in 0..cols {
                let g = match &self.g_idx {
                    Some(g) => g[j] as usize,
                    None => j / self.group_len,
                };
                let k = r * self.n_groups + g;
                out[r * cols + j] =
                    (self.codes[r * cols + j] as f32 - self.zeros[k]) * self.scales[k];
            }
        }
        out
    }
}

/// Where the Hessian comes from: a full row-major matrix, or a calibration's lower triangle of
/// `sum x x^T` (column-major) with the factor `2 / n`.
#[derive(Clone, Copy)]
pub(crate) enum HessianRef<'a> {
    Full(&'a [f64]),
    LowerColMajor { xtx: &'a [f64], factor: f64 },
}

impl HessianRef<'_> {
    #[inline]
    fn get(&self, n: usize, i: usize, j: usize) -> f64 {
        match *self {
            Self::Full(h) => {
                let (i, j) = if i >= j { (i, j) } else { (j, i) };
                h[i * n + j]
            }
            Self::LowerColMajor { xtx, factor } => {
                let (i, j) = if i >= j { (i, j) } else { (j, i) };
                xtx[j * n + i] * factor
            }
        }
    }
}

/// Where a caller's Hessian comes from, before [`checked_hessian`] turns it into a [`HessianRef`].
#[derive(Clone, Copy)]
enum HessianIn<'a> {
    /// Row-major `cols x cols`.
    Full(&'a [f64]),
    Calibrated(&'a Calibration),
}

/// The Hessian of a `cols`-column weight, checked: a full matrix must hold `cols^2` finite values
/// (`InvalidArgument` when `cols^2` overflows, `BufferTooSmall`, `NonFinite`); a calibration must be
/// for inputs of width `cols` (`ShapeMismatch`) and hold a Hessian with tokens (`InvalidArgument`).
fn checked_hessian(h: HessianIn<'_>, cols: usize) -> Result<HessianRef<'_>> {
    match h {
        HessianIn::Full(h) => {
            let n2 = cols
                .checked_mul(cols)
                .ok_or_else(|| QuantError::invalid("Hessian size overflows"))?;
            check_len("hessian", h.len(), n2)?;
            if let Some((index, &value)) = h[..n2].iter().enumerate().find(|(_, v)| !v.is_finite())
            {
                return Err(QuantError::NonFinite {
                    what: "hessian".into(),
                    index,
                    value: value as f32,
                });
            }
            Ok(HessianRef::Full(&h[..n2]))
        }
        HessianIn::Calibrated(calib) => {
            if calib.cols() != cols {
                return Err(QuantError::ShapeMismatch(format!(
                    "the weight has {cols} columns but the calibration is for inputs of width {}",
                    calib.cols()
                )));
            }
            let (xtx, factor) = calib.hessian_parts()?;
            Ok(HessianRef::LowerColMajor { xtx, factor })
        }
    }
}

/// GPTQ of `w` (row-major `rows x cols`) with the Hessian `h` (row-major `cols x cols`, symmetric;
/// the lower triangle is read).
///
/// Errors: a bad shape, `bits` outside 1..=8 or a zero block size is `InvalidArgument`; short buffers
/// are `BufferTooSmall`; NaN or infinity in `w` or `h` is `NonFinite`; a Hessian that cannot be
/// factorized even with the largest damping is `Numerical`.
pub fn quantize(
    w: &[f32],
    rows: usize,
    cols: usize,
    h: &[f64],
    params: &GptqParams,
) -> Result<GptqResult> {
    let h = checked_hessian(HessianIn::Full(h), cols)?;
    Ok(quantize_with(w, rows, cols, h, params, Grid::int(params))?.0)
}

/// GPTQ of `w` with the Hessian of `calib`, read in place. `ShapeMismatch` when the calibration is for
/// another width; `InvalidArgument` when it has no Hessian or no tokens; otherwise as [`quantize`].
pub fn quantize_calibrated(
    w: &[f32],
    rows: usize,
    cols: usize,
    calib: &Calibration,
    params: &GptqParams,
) -> Result<GptqResult> {
    let h = checked_hessian(HessianIn::Calibrated(calib), cols)?;
    Ok(quantize_with(w, rows, cols, h, params, Grid::int(params))?.0)
}

/// The result of GPTQ onto a GGUF type's grid.
#[derive(Debug, Clone, PartialEq)]
pub struct GgmlGptqResult {
    /// The records of the type, rows back to back (`rows * ty.row_size(cols)` bytes): the tensor data
    /// of a GGUF file.
    pub data: Vec<u8>,
    /// The damping fraction that factorized.
    pub damp_used: f64,
}

/// GPTQ of `w` (row-major `rows x cols`, a linear layer's `[out, in]`) with the Hessian `h` (row-major
/// `cols x cols`), rounded onto the grid of the GGUF type `ty` (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, and the
/// K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): see the module's documentation. From `params` only
/// `damp_percent`, `block_size`, `threads` and `mse_search` apply (the type fixes the bits and the
/// groups). With `mse_search` a record's parameters are the best of the type's quantizer applied to
/// shrunk copies of its weights (`p * w`, `p = 1, 0.99, ..., 0.21`, by `sum |q(w) - w|^2.4`, as the
/// integer grid's search), otherwise the quantizer's.
///
/// Errors: as [`quantize`]; besides, `InvalidArgument` for `cols` not a multiple of the type's block
/// (32, or 256 for the K-quants), `act_order` or `static_groups` set (a GGUF record is consecutive
/// columns, fitted as GPTQ reaches it), or a record whose f16 header overflows (weights too large for
/// the type).
pub fn quantize_ggml(
    w: &[f32],
    rows: usize,
    cols: usize,
    h: &[f64],
    ty: GgmlType,
    params: &GptqParams,
) -> Result<GgmlGptqResult> {
    let h = checked_hessian(HessianIn::Full(h), cols)?;
    quantize_ggml_with(w, rows, cols, h, ty, params, None)
}

/// [`quantize_ggml`] with the Hessian of `calib`, read in place, and optionally importance weights:
/// with `importance` (`importance[j]` the weight of column `j`, an imatrix entry: the mean square of
/// the column's input), when GPTQ reaches a record its scales (and mins) are chosen by ggml's
/// weighted quantizer of the type (the importance-matrix path, `ggml_quantize_weighted`) on the
/// record's current weights, with, for the 32-value types, the row statistic of the row's original
/// weights; the codes are then GPTQ's on those grids. `None` fits each record with the type's
/// unweighted quantizer (or `mse_search`).
///
/// Errors: as [`quantize_calibrated`] and [`quantize_ggml`]; besides, `ShapeMismatch` when
/// `importance` is not `cols` long, `NonFinite`/`InvalidArgument` for a non-finite or negative
/// weight, `InvalidArgument` with `mse_search` (two different ways of choosing the scales).
pub fn quantize_ggml_calibrated(
    w: &[f32],
    rows: usize,
    cols: usize,
    calib: &Calibration,
    ty: GgmlType,
    params: &GptqParams,
    importance: Option<&[f32]>,
) -> Result<GgmlGptqResult> {
    if let Some(imp) = importance {
        check_importance(imp, cols, "importance")?;
        if params.mse_search {
            return Err(QuantError::invalid(
                "mse_search and importance weights both choose the scales: give one",
            ));
        }
    }
    let h = checked_hessian(HessianIn::Calibrated(calib), cols)?;
    quantize_ggml_with(w, rows, cols, h, ty, params, importance)
}

fn quantize_ggml_with(
    w: &[f32],
    rows: usize,
    cols: usize,
    h: HessianRef<'_>,
    ty: GgmlType,
    params: &GptqParams,
    importance: Option<&[f32]>,
) -> Result<GgmlGptqResult> {
    let (spec, p) = ggml_params(ty, cols, params)?;
    let grid = Grid::Ggml {
        spec,
        mse: params.mse_search,
        importance,
    };
    let (r, records) = quantize_with(w, rows, cols, h, &p, grid)?;
    Ok(pack_ggml(spec, r, records, rows, cols))
}

/// Whether [`quantize_ggml`] takes `ty` (every current type).
pub fn ggml_supported(ty: GgmlType) -> bool {
    grid::spec(ty).is_some()
}

/// The grid of `ty`, and `params` as it runs them: groups of one record in column order; `bits` only
/// passes the generic checks (the grid ignores it).
fn ggml_params(
    ty: GgmlType,
    cols: usize,
    params: &GptqParams,
) -> Result<(grid::GridSpec, GptqParams)> {
    let spec = grid::spec(ty)
        .ok_or_else(|| QuantError::invalid(format!("GPTQ cannot round onto {}", ty.name())))?;
    if cols % spec.block != 0 {
        return Err(QuantError::invalid(format!(
            "cols is {cols}: {} needs a multiple of {}",
            ty.name(),
            spec.block
        )));
    }
    if params.act_order || params.static_groups {
        return Err(QuantError::invalid(
            "GPTQ onto a GGUF grid takes neither act_order nor static_groups: a GGUF record is \
             consecutive columns whose parameters are fitted when GPTQ reaches them",
        ));
    }
    let p = GptqParams {
        bits: 8,
        group_size: spec.block,
        symmetric: false,
        ..params.clone()
    };
    Ok((spec, p))
}

/// `InvalidArgument` naming the first record whose f16 header (scale or min) is not finite.
fn check_ggml_headers(spec: grid::GridSpec, recs: &[u8], cols: usize) -> Result<()> {
    let per_row = cols / spec.block;
    let ts = spec.ty().type_size();
    match recs
        .chunks_exact(ts)
        .enumerate()
        .find_map(|(k, r)| spec.bad_header(r).map(|v| (k, v)))
    {
        None => Ok(()),
        Some((k, v)) => Err(QuantError::invalid(format!(
            "row {} block {} (columns {}..{}): its f16 scale or min overflows to {v}: {} cannot \
             store values this large (an f16 holds at most 65504)",
            k / per_row,
            k % per_row,
            k % per_row * spec.block,
            (k % per_row + 1) * spec.block,
            spec.ty().name()
        ))),
    }
}

/// The records of GPTQ's result: its fitted records with its codes written in.
fn pack_ggml(
    spec: grid::GridSpec,
    r: GptqResult,
    mut data: Vec<u8>,
    rows: usize,
    cols: usize,
) -> GgmlGptqResult {
    let ts = spec.ty().type_size();
    debug_assert_eq!(data.len(), rows * cols / spec.block * ts);
    for (rec, codes) in data
        .chunks_exact_mut(ts)
        .zip(r.codes.chunks_exact(spec.block))
    {
        spec.set_codes(codes, rec);
    }
    GgmlGptqResult {
        data,
        damp_used: r.damp_used,
    }
}

pub(crate) fn check_params(params: &GptqParams) -> Result<()> {
    if !(1..=8).contains(&params.bits) {
        return Err(QuantError::invalid(format!(
            "GPTQ bits is {}: it must be in 1..=8",
            params.bits
        )));
    }
    if params.block_size == 0 {
        return Err(QuantError::invalid("block_size must be > 0"));
    }
    if !(params.damp_percent.is_finite() && params.damp_percent > 0.0 && params.damp_percent < 1.0)
    {
        return Err(QuantError::invalid(format!(
            "damp_percent is {}: it must be finite and in (0, 1)",
            params.damp_percent
        )));
    }
    Ok(())
}

/// GPTQ with the grid `grid`; besides the result, the fitted records of a GGUF grid (rows back to
/// back, codes not yet written; empty for the integer grid).
fn quantize_with(
    w: &[f32],
    rows: usize,
    cols: usize,
    h: HessianRef<'_>,
    params: &GptqParams,
    grid: Grid<'_>,
) -> Result<(GptqResult, Vec<u8>)> {
    let shape = Shape::new(rows, cols, params.group_size)?;
    check_params(params)?;
    check_len("w", w.len(), shape.len())?;
    let w = &w[..shape.len()];
    check_finite(w, "w")?;

    let gl = shape.group_len();
    let ng = shape.groups_per_row();
    let bits = params.bits;

    // 1. Dead columns.
    let diag: Vec<f64> = (0..cols).map(|i| h.get(cols, i, i)).collect();
    let dead: Vec<bool> = diag.iter().map(|&d| d == 0.0).collect();
    // 3. Permutation (processing position -> original column).
    let perm: Vec<usize> = if params.act_order {
        let fixed: Vec<f64> = diag
            .iter()
            .map(|&d| if d == 0.0 { 1.0 } else { d })
            .collect();
        let mut p: Vec<usize> = (0..cols).collect();
        p.sort_by(|&a, &b| fixed[b].total_cmp(&fixed[a]));
        p
    } else {
        (0..cols).collect()
    };

    // 4. Damping and the factor of the inverse, before the codes and the working buffers exist, so
    // that they are never live together with its factorization buffer (see `inverse_factor`).
    let (u, damp_used) =
        fast_inverse_factor(h, cols, &perm, &dead, params.damp_percent, params.threads)?;

    // A GGUF record holds `spb` sub-blocks of `sub` columns, each with its own grid; the integer
    // grid has one per group.
    let (sub, ts) = match grid {
        Grid::Int { .. } => (gl, 0),
        Grid::Ggml { spec, .. } => (spec.sub, spec.ty().type_size()),
    };
    let (spb, nsub) = (gl / sub, ng * (gl / sub));
    let mut scales = try_vec(rows * nsub, 0.0f32, "GPTQ scales")?;
    let mut zeros = try_vec(rows * nsub, 0.0f32, "GPTQ zero points")?;
    let mut records = try_vec(rows * ng * ts, 0u8, "GGUF records")?;
    let mut codes = try_vec(shape.len(), 0u8, "GPTQ codes")?;
    // 2. Static groups: from the original order (dead columns zeroed), before any update.
    let static_groups = params.static_groups;
    if static_groups {
        let mut vals = Vec::with_capacity(gl);
        for r in 0..rows {
            for g in 0..ng {
                vals.clear();
                for j in g * gl..((g + 1) * gl).min(cols) {
                    vals.push(if dead[j] { 0.0 } else { w[r * cols + j] });
                }
                let (s, z) = find_params(&vals, bits, params.symmetric, params.mse_search);
                scales[r * ng + g] = s;
                zeros[r * ng + g] = z;
            }
        }
    }

    // 5-6. Row tiles.
    let ctx = Ctx {
        cols,
        gl,
        ng,
        sub,
        spb,
        nsub,
        ts,
        grid,
        block: params.block_size,
        static_groups,
        perm: &perm,
        u: u.as_f32(),
        level: simd_level(),
    };
    // The working copy of the weights (in processing order, dead columns zeroed) is made a tile at a
    // time, in one buffer of `ROW_TILE` rows per worker: the whole layer is never copied at once.
    let tile_len = ROW_TILE * cols;
    let tile_groups = ROW_TILE * nsub;
    let mut recs_left = &mut records[..];
    let jobs: Vec<_> = codes
        .chunks_mut(tile_len)
        .zip(scales.chunks_mut(tile_groups))
        .zip(zeros.chunks_mut(tile_groups))
        .enumerate()
        .map(|(t, ((c, s), z))| {
            let (rec, rest) = std::mem::take(&mut recs_left).split_at_mut(c.len() / cols * ng * ts);
            recs_left = rest;
            let out = TileOut {
                codes: c,
                scales: s,
                zeros: z,
                recs: rec,
            };
            (t * ROW_TILE, out)
        })
        .collect();
    let workers = resolve_threads(params.threads).min(jobs.len());
    let buf_len = tile_len.min(shape.len());
    let mut buffers = Vec::with_capacity(workers);
    for _ in 0..workers {
        buffers.push(try_vec(buf_len, 0.0f32, "GPTQ working weights")?);
    }
    let buffers = Mutex::new(buffers);
    let take = || buffers.lock().unwrap_or_else(|e| e.into_inner()).pop();
    for_each_job(jobs, params.threads, |(r0, out)| {
        // Every worker holds at most one buffer and there are as many as workers.
        let mut buf = take().unwrap_or_else(|| vec![0.0f32; buf_len]);
        let tile = &mut buf[..out.codes.len()];
        for (r, dst) in tile.chunks_exact_mut(cols).enumerate() {
            let src = &w[(r0 + r) * cols..(r0 + r + 1) * cols];
            for (k, &j) in perm.iter().enumerate() {
                dst[k] = if dead[j] { 0.0 } else { src[j] };
            }
        }
        ctx.run_tile(tile, out);
        buffers.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
    });
    drop(buffers);
    if let Grid::Ggml { spec, .. } = grid {
        check_ggml_headers(spec, &records, cols)?;
    }
    check_finite(&scales, "GPTQ scales").map_err(|e| {
        QuantError::Numerical(format!(
            "GPTQ produced a non-finite scale (the weights' range overflows f32): {e}"
        ))
    })?;

    let g_idx = if params.act_order && !static_groups {
        let mut g = vec![0i32; cols];
        for (k, &j) in perm.iter().enumerate() {
            g[j] = (k / gl) as i32;
        }
        Some(g)
    } else {
        None
    };
    let r = GptqResult {
        codes,
        scales,
        zeros,
        g_idx,
        group_len: gl,
        n_groups: ng,
        damp_used,
    };
    Ok((r, records))
}

/// The damping fractions tried, in order.
pub(crate) fn damp_schedule(first: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut d = first;
    while d < 1.0 {
        v.push(d);
        d *= 4.0;
    }
    v.push(1.0);
    v
}

/// `len` f32 values kept in the storage of a `Vec<T>` (the buffer they were converted from in place).
struct F32In<T> {
    buf: Vec<T>,
    len: usize,
}

impl<T: bytemuck::Pod> F32In<T> {
    fn as_f32(&self) -> &[f32] {
        &bytemuck::cast_slice::<T, f32>(&self.buf)[..self.len]
    }
}

/// The factor `U` as [`inverse_factor`] computes it, in the buffer of its f64 factorization.
type F32InF64 = F32In<f64>;

/// The factor `U` as [`fast_inverse_factor`] computes it: factorized in f32, or (where that failed at
/// a damping) in f64.
enum Factor {
    F32(F32In<f32>),
    F64(F32InF64),
}

impl Factor {
    fn as_f32(&self) -> &[f32] {
        match self {
            Self::F32(u) => u.as_f32(),
            Self::F64(u) => u.as_f32(),
        }
    }
}

/// Entry `(rr, c)` of `J H_p J` before scaling and damping: `H` at the permuted, reversed position,
/// with a dead column's diagonal 1 and its other entries 0.
#[inline]
fn permuted_entry(
    h: HessianRef<'_>,
    n: usize,
    perm: &[usize],
    dead: &[bool],
    rr: usize,
    c: usize,
) -> f64 {
    let (oi, oj) = (perm[n - 1 - rr], perm[n - 1 - c]);
    if oi == oj {
        if dead[oi] {
            1.0
        } else {
            h.get(n, oi, oi)
        }
    } else if dead[oi] || dead[oj] {
        0.0
    } else {
        h.get(n, oi, oj)
    }
}

/// The upper Cholesky factor `U` (row-major f32, in processing order) of `(H_p + damp I)^-1`, scaled
/// by `sqrt(mean diag)`, where `H_p` is `H` with dead columns fixed and permuted by `perm`, computed
/// in f64 at every damping (see [`factor_at`]): the tests' reference for the in-place layout and for
/// the f32 factor that GPTQ uses ([`fast_inverse_factor`]).
#[cfg(test)]
fn inverse_factor(
    h: HessianRef<'_>,
    n: usize,
    perm: &[usize],
    dead: &[bool],
    damp_percent: f64,
    threads: usize,
) -> Result<(F32InF64, f64)> {
    let base = factor_base(h, n, dead)?;
    let mut rows = try_vec(COPY_TILE.min(n) * n, 0.0f32, "GPTQ factor rows")?;
    let mut tried = Vec::new();
    for frac in damp_schedule(damp_percent) {
        match factor_at::<f64>(h, n, perm, dead, base, frac, threads, &mut rows)? {
            Ok(u) => return Ok((u, frac)),
            Err(why) => tried.push(why),
        }
    }
    Err(not_factorizable(&tried))
}

/// [`inverse_factor`] computed in f32: at each damping the factorization runs in f32 (half the
/// memory and twice the arithmetic rate of f64), and where it fails (a non-positive pivot, a factor
/// that is not finite) the f64 factorization of [`inverse_factor`] is tried at the same damping; the
/// damping is raised only when that fails too. So the damping used, and the errors, are those of the
/// f64 solve; on the Hessians it factorizes, the f32 factor gives the same held-out error to well
/// within 1% (`tests/algos_gptq.rs`).
fn fast_inverse_factor(
    h: HessianRef<'_>,
    n: usize,
    perm: &[usize],
    dead: &[bool],
    damp_percent: f64,
    threads: usize,
) -> Result<(Factor, f64)> {
    let base = factor_base(h, n, dead)?;
    let mut rows = try_vec(COPY_TILE.min(n) * n, 0.0f32, "GPTQ factor rows")?;
    let mut tried = Vec::new();
    for frac in damp_schedule(damp_percent) {
        if let Ok(u) = factor_at::<f32>(h, n, perm, dead, base, frac, threads, &mut rows)? {
            return Ok((Factor::F32(u), frac));
        }
        match factor_at::<f64>(h, n, perm, dead, base, frac, threads, &mut rows)? {
            Ok(u) => return Ok((Factor::F64(u), frac)),
            Err(why) => tried.push(why),
        }
    }
    Err(not_factorizable(&tried))
}

/// The mean diagonal of `H` (dead columns counted as 1), by which the factor's input is divided;
/// `Numerical` when it is not positive and finite.
fn factor_base(h: HessianRef<'_>, n: usize, dead: &[bool]) -> Result<f64> {
    let mut diag_sum = 0.0f64;
    for (i, &d) in dead.iter().enumerate() {
        diag_sum += if d { 1.0 } else { h.get(n, i, i) };
    }
    let base = diag_sum / n as f64;
    if !(base > 0.0 && base.is_finite()) {
        return Err(QuantError::Numerical(format!(
            "GPTQ: the Hessian's mean diagonal is {base}: it is not positive semi-definite"
        )));
    }
    Ok(base)
}

fn not_factorizable(tried: &[String]) -> QuantError {
    QuantError::Numerical(format!(
        "GPTQ: the Hessian cannot be factorized even after damping; tried {}",
        tried.join("; ")
    ))
}

/// One damping of the factor of [`inverse_factor`] in `T` (f32 or f64): the factor, or why this
/// damping failed. `rows` is the scratch of [`to_f32_factor`].
///
/// Memory: one buffer of `n (n + 1)` `T` holds the Cholesky factor `L` and then its inverse, and is
/// converted in place to the f32 factor (through a scratch of [`COPY_TILE`] rows) and shrunk to `n^2`
/// f32; nothing else of size `n^2` is live meanwhile (the caller allocates its working buffers after
/// this returns). The buffer `B` is column-major with `n + 1` columns of `n`: `L` is factorized in
/// place in its first `n` columns (lower triangle), exactly as in a plain `n x n` matrix. The inverse
/// `M = L^-1`, lower triangular, is written where `L` is not: column `j` of `M` (rows `j..n`) goes to
/// rows `0..n-j` of `B`'s column
/// `n - j`, i.e. `M(i, j)` at `B[(n - j) n + i - j]` (strides 1 and `-(n + 1)`): above `L`'s
/// diagonal for `j > 0`, in the extra column for `j = 0`. faer's triangular inverse reads only the lower
/// triangle of its source and writes only the lower triangle of its destination (its upper blocks are
/// never touched), so the two views never touch the same element although their rectangles overlap; the
/// arithmetic is that of the plain layout (the same faer calls on the same shapes, with unit row
/// strides), and the factor is bit-identical to one computed with a separate `n x n` inverse (tested
/// in f64).
#[allow(clippy::too_many_arguments)]
fn factor_at<T: Real + bytemuck::Pod + AsF32>(
    h: HessianRef<'_>,
    n: usize,
    perm: &[usize],
    dead: &[bool],
    base: f64,
    frac: f64,
    threads: usize,
    rows: &mut [f32],
) -> Result<std::result::Result<F32In<T>, String>> {
    let n2 = n * n;
    let len = n2
        .checked_add(n)
        .ok_or_else(|| QuantError::invalid("Hessian size overflows"))?;
    let mut b = try_vec(len, T::from_f64(0.0), "GPTQ factor")?;
    // R = J H_p J / base + frac I, column-major, lower triangle (rounded to `T` from f64). Element
    // (rr, c) reads H at (n-1-rr, n-1-c): walking a column of R walks a row of H's storage backwards
    // with a stride of n, so the copy goes by square tiles that stay in cache (otherwise a cache and
    // TLB miss per element; tiling this copy and `to_f32_factor`'s took the 4096^2 solve from
    // 4.7-5.4 s to 3.4 s, docs/speed.md).
    for c0 in (0..n).step_by(COPY_TILE) {
        let c1 = (c0 + COPY_TILE).min(n);
        for r0 in (c0..n).step_by(COPY_TILE) {
            let r1 = (r0 + COPY_TILE).min(n);
            for c in c0..c1 {
                for rr in r0.max(c)..r1 {
                    b[c * n + rr] = T::from_f64(
                        permuted_entry(h, n, perm, dead, rr, c) / base
                            + if rr == c { frac } else { 0.0 },
                    );
                }
            }
        }
    }
    let rm = MatMut::from_column_major_slice_mut(&mut b[..n2], n, n);
    match cholesky_lower_in_place(rm, threads, TILING) {
        Ok(()) => {}
        Err(CholeskyError::NonPositivePivot(index)) => {
            return Ok(Err(format!(
                "damp {frac}: Cholesky failed at column {}",
                perm[n - 1 - index]
            )));
        }
        Err(CholeskyError::OutOfMemory) => {
            return Err(QuantError::OutOfMemory("GPTQ Cholesky scratch".into()))
        }
    }
    invert_factor_in_place(&mut b, n, threads);
    // U[i][j] = M[n-1-i][n-1-j] for i <= j, which is at B[(j + 1) n + j - i].
    Ok(to_f32_factor(b, n, rows)
        .ok_or_else(|| format!("damp {frac}: the inverse factor is not finite")))
}

/// The conversions between the factorization's type and f64 (the Hessian) and f32 (the factor).
trait AsF32: Copy {
    fn from_f64(v: f64) -> Self;
    fn as_f32(self) -> f32;
}

impl AsF32 for f32 {
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn as_f32(self) -> f32 {
        self
    }
}

impl AsF32 for f64 {
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn as_f32(self) -> f32 {
        self as f32
    }
}

/// `M = L^-1` into the buffer `b` of [`inverse_factor`] (`L` in the lower triangle of its first `n`
/// columns; `M(i, j)` written at `b[(n - j) n + i - j]`).
fn invert_factor_in_place<T: Real>(b: &mut [T], n: usize, threads: usize) {
    assert!(b.len() >= n * n + n);
    if n == 0 {
        return;
    }
    let p = b.as_mut_ptr();
    let stride = (n + 1) as isize;
    // SAFETY: both views lie inside `b`, which is borrowed mutably for this whole block and accessed
    // only through them: `l` spans `b[..n^2]`, `m`'s element (i, j) is at `n^2 - j (n + 1) + i`, in
    // `1..=n^2 + n - 1`. The views overlap, but faer's triangular inverse reads only `l`'s lower
    // triangle (`b[c n + r]`, r >= c) and accesses only `m`'s lower triangle (i >= j: rows `0..n-j` of
    // column `n - j` of `b`, i.e. strictly above `l`'s diagonal, or the extra column), so no element is
    // both written through `m` and accessed through `l`.
    unsafe {
        let l = MatRef::from_raw_parts(p.cast_const(), n, n, 1, n as isize);
        let m = MatMut::from_raw_parts_mut(p.add(n * n), n, n, 1, -stride);
        invert_lower_into(m, l, threads, TILING);
    }
}

/// Converts the inverse in `b` (as left by [`invert_factor_in_place`]) to the row-major f32 factor `U`
/// in place, and shrinks the buffer to it; `None` when an entry is not finite in f32 or a diagonal
/// entry is not positive (the factor is unusable). `rows` is scratch of at least `COPY_TILE.min(n) n`.
///
/// `U[i][j] = b[(j + 1) n + j - i]` (`j >= i`): a row of `U` walks `b` with a stride of `n + 1`, a
/// column walks it contiguously. So `U` is built a tile of [`COPY_TILE`] rows at a time: the tile is
/// gathered column by column into `rows`, then copied to its place. Rows `i0..i1` of `U` (f32 elements
/// `i0 n .. i1 n`) lie in the elements of `b` below `i1 n` (below `i1 n / 2` when `b` is f64), and every
/// entry a later row reads,
/// `b[(j + 1) n + j - i]` with `j >= i >= i1`, is at or above `(i1 + 1) n`: a tile never overwrites a
/// value still to be read.
fn to_f32_factor<T: bytemuck::Pod + AsF32>(
    mut b: Vec<T>,
    n: usize,
    rows: &mut [f32],
) -> Option<F32In<T>> {
    let n2 = n * n;
    assert!(b.len() >= n2 + n);
    assert!(rows.len() >= COPY_TILE.min(n) * n);
    let mut ok = true;
    for i0 in (0..n).step_by(COPY_TILE) {
        let i1 = (i0 + COPY_TILE).min(n);
        let t = &mut rows[..(i1 - i0) * n];
        t.fill(0.0);
        for j in i0..n {
            for i in i0..i1.min(j + 1) {
                t[(i - i0) * n + j] = b[(j + 1) * n + j - i].as_f32();
            }
        }
        for (k, row) in t.chunks_exact(n).enumerate() {
            let i = i0 + k;
            ok &= row[i..].iter().all(|v| v.is_finite()) && row[i] > 0.0;
        }
        bytemuck::cast_slice_mut::<T, f32>(&mut b)[i0 * n..i1 * n].copy_from_slice(t);
    }
    if !ok {
        return None;
    }
    b.truncate((n2 * 4).div_ceil(std::mem::size_of::<T>()));
    b.shrink_to_fit();
    Some(F32In { buf: b, len: n2 })
}

/// Scale and zero point of one group (the reference `Quantizer.find_params`, per row).
pub(crate) fn find_params(values: &[f32], bits: u32, symmetric: bool, mse: bool) -> (f32, f32) {
    let (lo, hi) = min_max(values);
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let (lo, hi) = if symmetric {
        let a = (-lo).max(hi);
        (-a, a)
    } else {
        (lo, hi)
    };
    let (mut scale, mut zero) = range_params(lo, hi, bits, symmetric);
    if mse {
        let mq = maxq(bits);
        let mut best = f32::INFINITY;
        let mut codes = vec![0u8; values.len()];
        let mut deq = vec![0.0f32; values.len()];
        for i in 0..(MSE_MAXSHRINK * MSE_GRID as f32) as usize {
            let p = 1.0 - i as f32 / MSE_GRID as f32;
            let (s1, z1) = range_params(p * lo, p * hi, bits, symmetric);
            fake_quant_segment(values, s1, z1, mq, &mut codes, &mut deq);
            let err: f32 = values
                .iter()
                .zip(&deq)
                .map(|(&x, &d)| (d - x).abs().powf(MSE_NORM))
                .sum();
            if err < best {
                best = err;
                scale = s1;
                zero = z1;
            }
        }
    }
    (scale, zero)
}

/// The grid a group's values are rounded onto: the group's two parameters are kept as `(scale, zero)`.
#[derive(Clone, Copy)]
enum Grid<'a> {
    /// The k-bit integer grid of the reference's quantizer: `(q - zero) * scale`.
    Int {
        bits: u32,
        mq: u32,
        symmetric: bool,
        mse: bool,
    },
    /// A GGUF record's grids, one per sub-block: `scale` and `zero` as [`grid::GridSpec::nearest`]
    /// takes them; codes as the record stores them. `mse`: the record by a search over shrunk ranges
    /// instead of the type's quantizer alone. `importance`: per-column weights, the record fitted by
    /// the type's weighted quantizer.
    Ggml {
        spec: grid::GridSpec,
        mse: bool,
        importance: Option<&'a [f32]>,
    },
}

impl Grid<'_> {
    fn int(params: &GptqParams) -> Self {
        Self::Int {
            bits: params.bits,
            mq: maxq(params.bits),
            symmetric: params.symmetric,
            mse: params.mse_search,
        }
    }

    /// The parameters of a group holding `values` (its current weights, from column `col0` on; its
    /// row's original weights have the statistic `row_sigma2`): its grids into `scales` and `zeros`
    /// (one, or a GGUF record's sub-blocks), and a GGUF grid's fitted record into `rec`.
    fn fit(
        &self,
        values: &[f32],
        col0: usize,
        row_sigma2: f32,
        rec: &mut [u8],
        scales: &mut [f32],
        zeros: &mut [f32],
    ) {
        match *self {
            Self::Int {
                bits,
                symmetric,
                mse,
                ..
            } => (scales[0], zeros[0]) = find_params(values, bits, symmetric, mse),
            Self::Ggml {
                spec,
                mse: false,
                importance,
            } => {
                let imp = importance.map(|w| (&w[col0..col0 + values.len()], row_sigma2));
                spec.fit(values, imp, rec, scales, zeros)
            }
            Self::Ggml {
                spec, mse: true, ..
            } => spec.fit_search(values, rec, scales, zeros),
        }
    }

    /// Whether the fit needs each row's statistic (a weighted GGUF fit).
    fn weighted(&self) -> bool {
        matches!(
            self,
            Self::Ggml {
                importance: Some(_),
                ..
            }
        )
    }

    /// The code of `x` in the group `(scale, zero)`, and the value it stands for.
    #[inline(always)]
    fn round(&self, x: f32, scale: f32, zero: f32) -> (u8, f32) {
        match *self {
            Self::Int { mq, .. } => {
                let q = quantize_code(x, scale, zero, mq);
                (q, (q as f32 - zero) * scale)
            }
            Self::Ggml { spec, .. } => spec.nearest(x, scale, zero),
        }
    }
}

/// What GPTQ writes for a tile of rows: codes (original column order), grids (`scale`, `zero`) and,
/// for a GGUF grid, the fitted records.
struct TileOut<'a> {
    codes: &'a mut [u8],
    scales: &'a mut [f32],
    zeros: &'a mut [f32],
    recs: &'a mut [u8],
}

struct Ctx<'a> {
    cols: usize,
    gl: usize,
    ng: usize,
    /// Columns per grid (`gl`, or a GGUF sub-block's), grids per group and per row.
    sub: usize,
    spb: usize,
    nsub: usize,
    /// Bytes of a GGUF record (0 for the integer grid).
    ts: usize,
    grid: Grid<'a>,
    block: usize,
    static_groups: bool,
    perm: &'a [usize],
    u: &'a [f32],
    /// The SIMD level in force for the call (the scalar level gives the baseline build).
    level: SimdLevel,
}

impl Ctx<'_> {
    /// GPTQ on a tile of rows (`w` in processing order; codes written in the original order),
    /// compiled for AVX2 where the level in force has it: the column updates go 8 lanes wide (4 in the
    /// baseline build) and rounding is an instruction instead of libm's `rintf`, with the same bits
    /// (`simd::run_compiled_for`; tested).
    fn run_tile(&self, w: &mut [f32], out: TileOut<'_>) {
        run_compiled_for(
            self.level,
            #[inline(always)]
            || self.run_tile_body(w, out),
        )
    }

    #[inline(always)]
    fn run_tile_body(&self, w: &mut [f32], out: TileOut<'_>) {
        let TileOut {
            codes,
            scales,
            zeros,
            recs,
        } = out;
        let n = self.cols;
        let rows = w.len() / n;
        let u = self.u;
        let bs = self.block.min(n);
        let mut err = vec![0.0f32; rows * bs];
        let mut gvals = Vec::with_capacity(self.gl);
        // The rows' statistic for a weighted fit, from the weights before any update (ggml's, of the
        // row it quantizes; the order is the original one, as a GGUF grid takes no act_order).
        let sigma2: Vec<f32> = if self.grid.weighted() {
            w.chunks_exact(n).map(row_sigma2).collect()
        } else {
            vec![0.0; rows]
        };
        let mut i1 = 0;
        while i1 < n {
            let i2 = (i1 + bs).min(n);
            let count = i2 - i1;
            // Column by column, each across the tile's rows: a row sees the same operations in the
            // same order as row by row, but the rows of one column are independent work for the
            // CPU to overlap, where one row's columns are a chain (measured on the 4096^2 layer:
            // 0.05 s less than row by row with AVX2; the same in the baseline build).
            for i in i1..i2 {
                let g = if self.static_groups {
                    self.perm[i] / self.gl
                } else {
                    i / self.gl
                };
                let starts_group = !self.static_groups && i % self.gl == 0;
                // The grid of this column within its group.
                let gs = g * self.spb + (i % self.gl) / self.sub;
                let d = u[i * n + i];
                let urow = &u[i * n + i + 1..i * n + i2];
                let code_col = self.perm[i];
                for r in 0..rows {
                    let row = &mut w[r * n..(r + 1) * n];
                    let erow = &mut err[r * bs..r * bs + count];
                    let k = r * self.nsub + gs;
                    if starts_group {
                        let end = (i + self.gl).min(n);
                        gvals.clear();
                        gvals.extend_from_slice(&row[i..end.min(i2)]);
                        for j in i2..end {
                            // The pending update of this block's finished columns.
                            let mut v = row[j];
                            for (kk, &e) in erow[..i - i1].iter().enumerate() {
                                v -= e * u[(i1 + kk) * n + j];
                            }
                            gvals.push(v);
                        }
                        let kg = r * self.nsub + g * self.spb;
                        let rec = (r * self.ng + g) * self.ts;
                        self.grid.fit(
                            &gvals,
                            i,
                            sigma2[r],
                            &mut recs[rec..rec + self.ts],
                            &mut scales[kg..kg + self.spb],
                            &mut zeros[kg..kg + self.spb],
                        );
                    }
                    let (s, z) = (scales[k], zeros[k]);
                    let x = row[i];
                    let (q, deq) = self.grid.round(x, s, z);
                    codes[r * n + code_col] = q;
                    let e = (x - deq) / d;
                    erow[i - i1] = e;
                    for (wv, &uv) in row[i + 1..i2].iter_mut().zip(urow) {
                        *wv -= e * uv;
                    }
                }
            }
            if i2 < n {
                // (faer 0.24.4's `from_row_major_slice_with_stride_mut` builds a column-major view:
                // build the transposed column-major view instead.)
                let dst =
                    MatMut::from_column_major_slice_with_stride_mut(&mut w[i2..], n - i2, rows, n)
                        .transpose_mut();
                let lhs = MatRef::from_row_major_slice_with_stride(&err, rows, count, bs);
                let rhs =
                    MatRef::from_row_major_slice_with_stride(&u[i1 * n + i2..], count, n - i2, n);
                matmul(dst, Accum::Add, lhs, rhs, -1.0f32, Par::Seq);
            }
            i1 = i2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algos::qparams::fake_quant;
    use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
    use faer::linalg::triangular_inverse::invert_lower_triangular;

    fn problem(rows: usize, cols: usize, n: usize) -> (Vec<f32>, Vec<f64>) {
        let mut s = 1u64;
        let mut rnd = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
        };
        let w: Vec<f32> = (0..rows * cols).map(|_| rnd() as f32).collect();
        let x: Vec<f64> = (0..n * cols)
            .map(|i| rnd() * if i % cols == 3 { 10.0 } else { 1.0 })
            .collect();
        let mut h = vec![0.0f64; cols * cols];
        for t in 0..n {
            for i in 0..cols {
                for j in 0..cols {
                    h[i * cols + j] += 2.0 / n as f64 * x[t * cols + i] * x[t * cols + j];
                }
            }
        }
        (w, h)
    }

    #[test]
    fn the_inverse_factor_is_the_upper_cholesky_factor_of_the_inverse() {
        let cols = 9;
        let (_, h) = problem(1, cols, 40);
        let perm: Vec<usize> = (0..cols).collect();
        let (u, d) =
            inverse_factor(HessianRef::Full(&h), cols, &perm, &[false; 9], 0.01, 1).unwrap();
        let u = u.as_f32();
        assert_eq!(d, 0.01);
        let base = (0..cols).map(|i| h[i * cols + i]).sum::<f64>() / cols as f64;
        // U^T U (H / base + 0.01 I) == I.
        for i in 0..cols {
            for j in 0..cols {
                let mut v = 0.0f64;
                for k in 0..cols {
                    let mut utu = 0.0f64;
                    for m in 0..cols {
                        utu += u[m * cols + i] as f64 * u[m * cols + k] as f64;
                    }
                    let hk = h[k * cols + j] / base + if k == j { 0.01 } else { 0.0 };
                    v += utu * hk;
                }
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-4, "{i} {j} {v}");
            }
        }
    }

    /// The factor as computed before the in-place layout: `L` and its inverse in two separate `n x n`
    /// buffers, then copied to a zeroed f32 matrix. Kept to check that the in-place version gives the
    /// same bits.
    fn inverse_factor_two_buffers(
        h: HessianRef<'_>,
        n: usize,
        perm: &[usize],
        dead: &[bool],
        frac: f64,
    ) -> Option<Vec<f32>> {
        let base = (0..n)
            .map(|i| if dead[i] { 1.0 } else { h.get(n, i, i) })
            .sum::<f64>()
            / n as f64;
        let mut r = vec![0.0f64; n * n];
        for c in 0..n {
            for rr in c..n {
                r[c * n + rr] = permuted_entry(h, n, perm, dead, rr, c) / base
                    + if rr == c { frac } else { 0.0 };
            }
        }
        let mut mem = faer::dyn_stack::MemBuffer::new(cholesky_in_place_scratch::<f64>(
            n,
            Par::Seq,
            Default::default(),
        ));
        cholesky_in_place(
            MatMut::from_column_major_slice_mut(&mut r, n, n),
            Default::default(),
            Par::Seq,
            faer::dyn_stack::MemStack::new(&mut mem),
            Default::default(),
        )
        .ok()?;
        let mut inv = vec![0.0f64; n * n];
        invert_lower_triangular(
            MatMut::from_column_major_slice_mut(&mut inv, n, n),
            MatRef::from_column_major_slice(&r, n, n),
            Par::Seq,
        );
        let mut u = vec![0.0f32; n * n];
        for i in 0..n {
            for j in i..n {
                u[i * n + j] = inv[(n - 1 - j) * n + (n - 1 - i)] as f32;
            }
        }
        Some(u)
    }

    #[test]
    fn the_in_place_factor_has_the_bits_of_the_two_buffer_one() {
        // Sizes around faer's recursion and block thresholds, with act-order and dead columns.
        // (Under Miri, which checks the overlapping views of the in-place inverse, small sizes only.)
        let mut sizes: Vec<usize> = (1..=if cfg!(miri) { 20 } else { 40 }).collect();
        if !cfg!(miri) {
            sizes.extend([63, 64, 65, 127, 128, 129, 200, 257, 300, 515, 777]);
        }
        for n in sizes {
            let (_, mut h) = problem(1, n, n + 7);
            if n > 5 {
                for k in 0..n {
                    h[4 * n + k] = 0.0;
                    h[k * n + 4] = 0.0;
                }
            }
            let dead: Vec<bool> = (0..n).map(|i| h[i * n + i] == 0.0).collect();
            let ident: Vec<usize> = (0..n).collect();
            let mut by_diag = ident.clone();
            by_diag.sort_by(|&a, &b| h[b * n + b].total_cmp(&h[a * n + a]));
            for perm in [ident, by_diag] {
                let hr = HessianRef::Full(&h);
                // From 512 on, `factor` splits the Cholesky and the inverse into jobs.
                let threads: &[usize] = if n >= 512 { &[1, 2] } else { &[1] };
                for &t in threads {
                    let (u, frac) = inverse_factor(hr, n, &perm, &dead, 0.01, t).unwrap();
                    let want = inverse_factor_two_buffers(hr, n, &perm, &dead, frac).unwrap();
                    let got = u.as_f32();
                    assert_eq!(got.len(), n * n);
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "n = {n}, {t} threads: the factor differs");
                }
            }
        }
    }

    #[test]
    fn the_f32_factor_is_close_to_the_f64_one_and_threads_do_not_matter() {
        for n in [9, 100, 300, 600] {
            let (_, h) = problem(1, n, n + 40);
            let perm: Vec<usize> = (0..n).collect();
            let dead = vec![false; n];
            let hr = HessianRef::Full(&h);
            let (want, want_frac) = inverse_factor(hr, n, &perm, &dead, 0.01, 1).unwrap();
            let want = want.as_f32();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let mut first: Option<Vec<u32>> = None;
            for threads in [1, 2, 3] {
                let (u, frac) = fast_inverse_factor(hr, n, &perm, &dead, 0.01, threads).unwrap();
                assert!(matches!(u, Factor::F32(_)), "n = {n}: fell back to f64");
                assert_eq!(frac, want_frac);
                let got = u.as_f32();
                let worst = got
                    .iter()
                    .zip(want)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(worst <= 1e-3 * scale, "n = {n}: {worst} of {scale}");
                let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                match &first {
                    None => first = Some(bits),
                    Some(b) => assert!(*b == bits, "n = {n}: {threads} threads differ"),
                }
            }
        }
    }

    #[test]
    fn where_f32_cannot_factor_the_f64_factor_is_used_at_the_same_damping() {
        // H = [[1, 1 - 1e-9], [1 - 1e-9, 1]]: with a damping of 1e-12 the second pivot is about
        // 2e-9 in f64, but in f32 the matrix rounds to [[1, 1], [1, 1]] and the pivot is 0.
        let h = vec![1.0, 1.0 - 1e-9, 1.0 - 1e-9, 1.0];
        let (perm, dead) = ([0usize, 1], [false; 2]);
        let hr = HessianRef::Full(&h);
        let (u, frac) = fast_inverse_factor(hr, 2, &perm, &dead, 1e-12, 1).unwrap();
        assert!(matches!(u, Factor::F64(_)));
        assert_eq!(frac, 1e-12);
        let (want, _) = inverse_factor(hr, 2, &perm, &dead, 1e-12, 1).unwrap();
        assert_eq!(u.as_f32(), want.as_f32());
    }

    #[test]
    fn blocked_equals_unblocked_and_threads_do_not_matter() {
        let (rows, cols) = (70, 40);
        let (w, h) = problem(rows, cols, 100);
        for (gs, act, stat) in [
            (8, false, false),
            (12, true, false),
            (16, true, true),
            (0, false, false),
        ] {
            let mut p = GptqParams::new(4, gs, &QuantOptions::default());
            p.act_order = act;
            p.static_groups = stat;
            p.block_size = cols;
            p.threads = 1;
            let whole = quantize(&w, rows, cols, &h, &p).unwrap();
            for bs in [1, 5, 16] {
                for threads in [1, 3] {
                    p.block_size = bs;
                    p.threads = threads;
                    let r = quantize(&w, rows, cols, &h, &p).unwrap();
                    let a = whole.dequantize(rows, cols);
                    let b = r.dequantize(rows, cols);
                    let diff = a
                        .iter()
                        .zip(&b)
                        .filter(|(x, y)| (*x - *y).abs() > 1e-3)
                        .count();
                    // Rounding differences may flip a handful of codes; nothing more.
                    assert!(diff <= rows * cols / 200, "gs {gs} bs {bs}: {diff} differ");
                }
            }
        }
    }

    #[test]
    fn every_simd_level_gives_the_bits_of_the_scalar_build() {
        use crate::kernels::simd::{available_levels, with_simd_level, SimdLevel};
        // Groups that start inside a block and reach past it, act-order, static groups, MSE search,
        // and odd block sizes, so that every branch of the tile loop runs at every level.
        let (rows, cols) = (67, 150);
        let (w, h) = problem(rows, cols, 200);
        for (gs, bs, act, stat, mse) in [
            (128, 128, false, false, false),
            (24, 40, true, false, false),
            (16, 37, true, true, false),
            (0, 64, false, false, true),
        ] {
            let mut p = GptqParams::new(3, gs, &QuantOptions::default());
            p.block_size = bs;
            p.act_order = act;
            p.static_groups = stat;
            p.mse_search = mse;
            let want = with_simd_level(SimdLevel::Scalar, || quantize(&w, rows, cols, &h, &p))
                .unwrap()
                .unwrap();
            for level in available_levels() {
                let got = with_simd_level(level, || quantize(&w, rows, cols, &h, &p))
                    .unwrap()
                    .unwrap();
                assert_eq!(got.codes, want.codes, "{level:?} gs {gs} bs {bs}");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got.scales), bits(&want.scales), "{level:?} gs {gs}");
                assert_eq!(bits(&got.zeros), bits(&want.zeros), "{level:?} gs {gs}");
            }
        }
    }

    #[test]
    fn dead_columns_are_zero_and_an_indefinite_hessian_is_numerical() {
        let (rows, cols) = (4, 6);
        let (w, mut h) = problem(rows, cols, 30);
        for k in 0..cols {
            h[2 * cols + k] = 0.0;
            h[k * cols + 2] = 0.0;
        }
        let p = GptqParams::new(4, 0, &QuantOptions::default());
        let r = quantize(&w, rows, cols, &h, &p).unwrap();
        let d = r.dequantize(rows, cols);
        assert!((0..rows).all(|i| d[i * cols + 2] == 0.0));
        let mut bad = vec![0.0f64; cols * cols];
        for i in 0..cols {
            bad[i * cols + i] = 1.0;
        }
        bad[1] = 100.0;
        bad[cols] = 100.0;
        match quantize(&w, rows, cols, &bad, &p) {
            Err(QuantError::Numerical(m)) => {
                assert!(m.contains("damp 0.01") && m.contains("damp 1"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let mut p2 = p.clone();
        p2.bits = 0;
        assert!(quantize(&w, rows, cols, &h, &p2).is_err());
        let mut wn = w.clone();
        wn[5] = f32::NAN;
        assert!(matches!(
            quantize(&wn, rows, cols, &h, &p),
            Err(QuantError::NonFinite { index: 5, .. })
        ));
    }

    #[test]
    fn a_failed_factorization_is_retried_with_more_damping() {
        // H = I with H[0][1] = H[1][0] = 1.05 has the eigenvalue -0.05: damping 0.01 and 0.04 (of the
        // mean diagonal, 1) do not fix it, 0.16 does.
        let (rows, cols) = (3, 4);
        let (w, _) = problem(rows, cols, 10);
        let mut h = vec![0.0f64; cols * cols];
        for i in 0..cols {
            h[i * cols + i] = 1.0;
        }
        h[1] = 1.05;
        h[cols] = 1.05;
        assert_eq!(damp_schedule(0.01), vec![0.01, 0.04, 0.16, 0.64, 1.0]);
        let r = quantize(
            &w,
            rows,
            cols,
            &h,
            &GptqParams::new(4, 0, &QuantOptions::default()),
        )
        .unwrap();
        assert_eq!(r.damp_used, 0.16);
    }

    #[test]
    fn ggml_records_decode_to_the_grid_points_gptq_chose() {
        // Every value a record decodes to is the point of its sub-block's grid (as GPTQ kept it) whose
        // code GPTQ chose: the value whose error GPTQ fed forward.
        use crate::kernels::ggml::ggml_dequantize;
        let (rows, cols) = (5, 512);
        let (w, h) = problem(rows, cols, 600);
        for ty in GgmlType::all().into_iter().filter(|&t| ggml_supported(t)) {
            for mse in [false, true] {
                let params = GptqParams {
                    mse_search: mse,
                    ..GptqParams::new(4, 32, &QuantOptions::default())
                };
                let (spec, p) = ggml_params(ty, cols, &params).unwrap();
                let grid = Grid::Ggml {
                    spec,
                    mse,
                    importance: None,
                };
                let (r, records) =
                    quantize_with(&w, rows, cols, HessianRef::Full(&h), &p, grid).unwrap();
                let (codes, scales, zeros) = (r.codes.clone(), r.scales.clone(), r.zeros.clone());
                let data = pack_ggml(spec, r, records, rows, cols).data;
                let mut got = vec![0f32; rows * cols];
                ggml_dequantize(ty, &data, rows * cols, &mut got).unwrap();
                let nsub = cols / spec.sub;
                for (i, &v) in got.iter().enumerate() {
                    let k = i / cols * nsub + i % cols / spec.sub;
                    let point = spec.nearest(v, scales[k], zeros[k]);
                    assert_eq!(point.1.to_bits(), v.to_bits(), "{ty:?} value {i}");
                    // (A grid whose scale is 0 has one point for every code.)
                    if scales[k] != 0.0 {
                        assert_eq!(point.0, codes[i], "{ty:?} value {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn mse_search_never_increases_the_group_error() {
        let vals: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 - 20.0) / 7.0)
            .collect();
        for sym in [false, true] {
            let err = |(s, z): (f32, f32)| -> f32 {
                vals.iter()
                    .map(|&x| (fake_quant(x, s, z, 7) - x).abs().powf(2.4))
                    .sum()
            };
            let plain = find_params(&vals, 3, sym, false);
            let searched = find_params(&vals, 3, sym, true);
            assert!(err(searched) <= err(plain));
        }
    }
}
