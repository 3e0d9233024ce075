//! Block-scaled FP8 E4M3: the layout of DeepSeek-V3's FP8 checkpoints (`weight` in E4M3FN,
//! `weight_scale_inv` one f32 per 128 x 128 block) and of vLLM's `weight_block_size`.
//!
//! # Format
//! A row-major `rows x cols` matrix is cut into blocks of `block_rows x block_cols` (DeepSeek-V3:
//! 128 x 128); the blocks at the right and bottom edges may be smaller and have a scale of their
//! own. `scale_inv` holds one f32 per block, row-major over the `ceil(rows / block_rows) x
//! ceil(cols / block_cols)` grid, as DeepSeek-V3's `weight_scale_inv` tensors.
//! - `scale_inv = amax(|x| over the block) / 448`;
//! - `code = fp8_e4m3(x / scale_inv)`, round to nearest even, saturating (the E4M3 encoder of this
//!   module; `|x / scale_inv|` exceeds 448 by at most a rounding of the division, so saturation only
//!   ever moves such a value to 448, which it rounds to anyway);
//! - `x' = f32(code) * scale_inv` (DeepSeek-V3's `weight_dequant`: `y = x * s`).
//!
//! A block whose `scale_inv` is 0 (all zeros, or an amax so small that `amax / 448` underflows) gets
//! `scale_inv` 0 and codes `0x00`, so it decodes to zeros. DeepSeek-V3's `act_quant` formula divides
//! 0 by 0 there (NaN codes); vLLM's `per_token_group_quant_fp8` clamps the amax to 1e-10 first
//! (codes 0 with a tiny non-zero scale). Both other conventions decode such a block to the same zeros
//! as this one (or NaN), so the library keeps its scaled quantizers' rule.
//!
//! Dynamic activation quantization (DeepSeek-V3's `act_quant`: `s = amax / 448` per token per 128
//! channels) is the same computation with blocks of `1 x 128`, and equals the grouped quantizer
//! [`super::fp8_e4m3_quantize`] with `group_size` 128, bit for bit.
//!
//! # Implementation
//! The blocks are taken a chunk of side-by-side blocks at a time (about 512 KiB of f32), whose rows are
//! read twice while they are in the cache: the amax of each block (the shared SIMD absmax pass, which
//! also finds NaN and infinities), then the codes (the SIMD E4M3 encoder of the grouped quantizer).
//! Threads take bands of block rows. The scalar references (`*_ref`)
//! work element by element from the definition.
use crate::error::{try_vec, QuantError, Result};
use crate::kernels::elements::Src;
use crate::kernels::par::{self, Exec};
use crate::kernels::{absmax_bits, check_finite, check_len, Shape, STREAM_STORES_MIN};

use super::{
    decode_run, encode_run, f32_to_fp8_e4m3_ref, fp8_e4m3_to_f32_ref, E4m3, Fp8Format, E4M3_MAX,
    E4M3_TABLE,
};

/// Block side of DeepSeek-V3's FP8 checkpoints (`weight_block_size = [128, 128]`) and of its
/// per-token activation groups (`act_quant`, blocks of 1 x 128). The C name of the constant.
pub const QUANT_FP8_BLOCK_DEEPSEEK: usize = 128;

/// Geometry of a row-major `rows x cols` matrix cut into `block_rows x block_cols` blocks (the last
/// block row and column may be smaller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShape {
    pub rows: usize,
    pub cols: usize,
    pub block_rows: usize,
    pub block_cols: usize,
}

impl BlockShape {
    /// Checks the geometry: every side non-zero and the element count addressable.
    pub fn new(rows: usize, cols: usize, block_rows: usize, block_cols: usize) -> Result<Self> {
        Shape::new(rows, cols, 0)?;
        if block_rows == 0 || block_cols == 0 {
            return Err(QuantError::invalid(format!(
                "block is {block_rows} x {block_cols}: both sides must be > 0"
            )));
        }
        Ok(Self {
            rows,
            cols,
            block_rows,
            block_cols,
        })
    }

    /// DeepSeek-V3's geometry: blocks of 128 x 128.
    pub fn deepseek(rows: usize, cols: usize) -> Result<Self> {
        Self::new(
            rows,
            cols,
            QUANT_FP8_BLOCK_DEEPSEEK,
            QUANT_FP8_BLOCK_DEEPSEEK,
        )
    }

    /// Number of elements, `rows * cols`.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Always false: a valid shape has at least one element.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Blocks down and across: `(ceil(rows / block_rows), ceil(cols / block_cols))`.
    pub fn grid(&self) -> (usize, usize) {
        (
            self.rows.div_ceil(self.block_rows),
            self.cols.div_ceil(self.block_cols),
        )
    }

    /// Number of blocks, i.e. of `scale_inv` values.
    pub fn n_blocks(&self) -> usize {
        let (down, across) = self.grid();
        down * across
    }
}

/// Number of `scale_inv` values of a `rows x cols` matrix in `block_rows x block_cols` blocks; 0
/// when the geometry is invalid.
pub fn fp8_block_scale_count(
    rows: usize,
    cols: usize,
    block_rows: usize,
    block_cols: usize,
) -> usize {
    BlockShape::new(rows, cols, block_rows, block_cols).map_or(0, |s| s.n_blocks())
}

fn check_quantize(src: Src, shape: BlockShape, dst: &[u8], scale_inv: &[f32]) -> Result<()> {
    if src.len() != shape.len() {
        return Err(QuantError::ShapeMismatch(format!(
            "src holds {} elements but the shape {} x {} needs {}",
            src.len(),
            shape.rows,
            shape.cols,
            shape.len()
        )));
    }
    check_len("dst", dst.len(), shape.len())?;
    check_len("scale_inv", scale_inv.len(), shape.n_blocks())
}

fn check_dequantize(src: &[u8], scale_inv: &[f32], shape: BlockShape, dst: &[f32]) -> Result<()> {
    check_len("src", src.len(), shape.len())?;
    check_len("scale_inv", scale_inv.len(), shape.n_blocks())?;
    check_len("dst", dst.len(), shape.len())?;
    check_finite(&scale_inv[..shape.n_blocks()], "scale_inv")
}

/// One thread's share of the matrix: a run of whole block rows.
struct Band<'a, T> {
    /// Its block rows.
    blocks: std::ops::Range<usize>,
    /// Its elements (`blocks` times `block_rows` rows of `cols`, the last band possibly shorter).
    out: &'a mut [T],
    /// Its `scale_inv` values.
    scale_inv: &'a mut [f32],
}

/// Cuts `out` and `scale_inv` into at most `t` bands of whole block rows.
fn bands<'a, T>(
    shape: BlockShape,
    t: usize,
    mut out: &'a mut [T],
    mut scale_inv: &'a mut [f32],
) -> Vec<Band<'a, T>> {
    let (down, across) = shape.grid();
    let mut jobs = Vec::with_capacity(t);
    for blocks in par::split(down, t.max(1), 1) {
        let first = blocks.start * shape.block_rows;
        let last = (blocks.end * shape.block_rows).min(shape.rows);
        let (o, o_rest) = std::mem::take(&mut out).split_at_mut((last - first) * shape.cols);
        let (s, s_rest) = std::mem::take(&mut scale_inv).split_at_mut(blocks.len() * across);
        (out, scale_inv) = (o_rest, s_rest);
        jobs.push(Band {
            blocks,
            out: o,
            scale_inv: s,
        });
    }
    jobs
}

/// Block-FP8 quantization of the row-major matrix `src` (f32, f16 or bf16; 16-bit values are
/// converted exactly, so the results equal those of the same values as f32): codes into
/// `dst[..rows*cols]`, one `scale_inv` per block into `scale_inv[..n_blocks]` (see the module docs).
///
/// One pass over `src`: each block is checked as it is quantized. Errors: `ShapeMismatch` when `src`
/// does not hold `rows * cols` elements, `BufferTooSmall` when `dst` or `scale_inv` is too short
/// (nothing written); `OutOfMemory` if the conversion tile of a 16-bit source cannot be allocated
/// (nothing written); `NonFinite` (naming the first bad index of `src`) for a NaN or an infinity, with
/// `dst[..rows*cols]` and `scale_inv[..n_blocks]` zero-filled.
pub fn fp8_block_quantize(
    src: Src,
    shape: BlockShape,
    dst: &mut [u8],
    scale_inv: &mut [f32],
) -> Result<()> {
    check_quantize(src, shape, dst, scale_inv)?;
    let (down, _) = shape.grid();
    let exec = Exec::current();
    let t = exec.threads_for(shape.len(), down);
    let tile_len = shape.block_rows.min(shape.rows) * chunk_cols(shape);
    let mut tiles = Vec::with_capacity(t);
    for _ in 0..t {
        // f32 sources are read in place; the 16-bit ones are converted a chunk of blocks at a time.
        let len = if matches!(src, Src::F32(_)) {
            0
        } else {
            tile_len
        };
        tiles.push(try_vec(len, 0f32, "block conversion tile")?);
    }
    let (n, nb) = (shape.len(), shape.n_blocks());
    let jobs = bands(shape, t, &mut dst[..n], &mut scale_inv[..nb]);
    let ok = std::sync::atomic::AtomicBool::new(true);
    let jobs: Vec<_> = jobs.into_iter().zip(tiles).collect();
    par::run(jobs, |(band, mut tile)| {
        if !quantize_band(exec, src, shape, band, &mut tile) {
            ok.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    });
    if ok.into_inner() {
        return Ok(());
    }
    dst[..n].fill(0);
    scale_inv[..nb].fill(0.0);
    src.check_finite("src")?;
    Err(QuantError::Internal(
        "src: a non-finite block without a non-finite value".into(),
    ))
}

/// Elements (over a block's rows) of the chunk of side-by-side blocks that [`quantize_band`] takes at
/// once: its rows are read twice (amax, then codes), and 512 KiB of f32 stay in L2 between the two
/// reads, while each row is read as one contiguous run rather than 128 runs of a block's width at the
/// stride of a whole row (which alias in the caches for power-of-two widths).
const CHUNK_ELEMS: usize = 128 * 1024;

/// Most blocks side by side in one chunk (the amax of each is kept on the stack).
const CHUNK_BLOCKS: usize = 64;

/// Columns of one chunk of [`quantize_band`]: whole blocks, about [`CHUNK_ELEMS`] elements over the
/// block's rows, at least one block.
fn chunk_cols(shape: BlockShape) -> usize {
    let rows = shape.block_rows.min(shape.rows);
    let blocks = (CHUNK_ELEMS / rows.saturating_mul(shape.block_cols)).clamp(1, CHUNK_BLOCKS);
    (blocks * shape.block_cols).min(shape.cols)
}

/// Quantizes the blocks of `band`, a chunk of side-by-side blocks at a time: the amax of each block of
/// the chunk over its rows, then their codes row by row. False (stopping there) at the first chunk
/// holding a NaN or an infinity. `tile` holds a chunk's rows converted to f32 for 16-bit sources.
fn quantize_band(
    exec: Exec,
    src: Src,
    shape: BlockShape,
    band: Band<u8>,
    tile: &mut [f32],
) -> bool {
    let (cols, bc, (_, across)) = (shape.cols, shape.block_cols, shape.grid());
    let first_row = band.blocks.start * shape.block_rows;
    let chunk = chunk_cols(shape);
    for (i, b) in band.blocks.clone().enumerate() {
        let rows = b * shape.block_rows..((b + 1) * shape.block_rows).min(shape.rows);
        for c0 in (0..cols).step_by(chunk) {
            let c1 = (c0 + chunk).min(cols);
            let w = c1 - c0;
            // The chunk's rows as f32: in place, or converted into the tile.
            let in_place = matches!(src, Src::F32(_));
            let row_at = |r: usize| {
                if in_place {
                    r * cols + c0
                } else {
                    (r - rows.start) * w
                }
            };
            let data: &[f32] = match src {
                Src::F32(s) => s,
                _ => {
                    for r in rows.clone() {
                        let j = (r - rows.start) * w;
                        src.convert(r * cols + c0, &mut tile[j..j + w]);
                    }
                    tile
                }
            };
            let mut amax = [0u32; CHUNK_BLOCKS];
            for r in rows.clone() {
                let row = &data[row_at(r)..row_at(r) + w];
                for (a, seg) in amax.iter_mut().zip(row.chunks(bc)) {
                    *a = (*a).max(absmax_bits(exec.level, seg));
                }
            }
            let n_blocks = w.div_ceil(bc);
            if amax[..n_blocks].iter().any(|&a| a >= 0x7F80_0000) {
                return false;
            }
            let mut scale = [0f32; CHUNK_BLOCKS];
            for ((s, &a), k) in scale.iter_mut().zip(&amax[..n_blocks]).zip(c0 / bc..) {
                *s = f32::from_bits(a) / E4M3_MAX;
                band.scale_inv[i * across + k] = *s;
            }
            for r in rows.clone() {
                let row = &data[row_at(r)..row_at(r) + w];
                let o = (r - first_row) * cols + c0;
                let out = &mut band.out[o..o + w];
                for ((x, q), &s) in row.chunks(bc).zip(out.chunks_mut(bc)).zip(&scale) {
                    if s == 0.0 {
                        q.fill(0);
                    } else {
                        encode_run::<E4m3, true>(exec.level, x, s, E4m3::MAX, q);
                    }
                }
            }
        }
    }
    true
}

/// Inverse of [`fp8_block_quantize`]: `dst[i] = f32(code[i]) * scale_inv[block of i]` into
/// `dst[..rows*cols]` (DeepSeek-V3's `weight_dequant`). NaN codes (`0x7F`/`0xFF`) give NaN.
/// Errors (nothing written): `BufferTooSmall` when `src`, `scale_inv` or `dst` is too short;
/// `NonFinite` when a `scale_inv` is NaN or infinite.
pub fn fp8_block_dequantize(
    src: &[u8],
    scale_inv: &[f32],
    shape: BlockShape,
    dst: &mut [f32],
) -> Result<()> {
    check_dequantize(src, scale_inv, shape, dst)?;
    let (down, across) = shape.grid();
    let exec = Exec::current();
    let t = exec.threads_for(shape.len(), down);
    let stream = shape.len() >= STREAM_STORES_MIN;
    let mut jobs = Vec::with_capacity(t);
    let mut rest = &mut dst[..shape.len()];
    for blocks in par::split(down, t.max(1), 1) {
        let first = blocks.start * shape.block_rows;
        let last = (blocks.end * shape.block_rows).min(shape.rows);
        let (out, tail) = std::mem::take(&mut rest).split_at_mut((last - first) * shape.cols);
        rest = tail;
        jobs.push((first, out));
    }
    let cols = shape.cols;
    par::run(jobs, |(first_row, out)| {
        for (j, x_row) in out.chunks_exact_mut(cols).enumerate() {
            let r = first_row + j;
            let s_row = &scale_inv[(r / shape.block_rows) * across..][..across];
            let q_row = &src[r * cols..(r + 1) * cols];
            let blocks = q_row.chunks(shape.block_cols);
            for ((q, x), &s) in blocks.zip(x_row.chunks_mut(shape.block_cols)).zip(s_row) {
                decode_run::<E4m3, true>(exec.level, &E4M3_TABLE, q, s, x, stream);
            }
        }
        if stream {
            crate::kernels::fence_streaming_stores();
        }
    });
    Ok(())
}

/// Scalar reference of [`fp8_block_quantize`] for f32 sources (same contract), element by element.
pub fn fp8_block_quantize_ref(
    src: &[f32],
    shape: BlockShape,
    dst: &mut [u8],
    scale_inv: &mut [f32],
) -> Result<()> {
    check_quantize(Src::F32(src), shape, dst, scale_inv)?;
    if let Err(e) = check_finite(src, "src") {
        dst[..shape.len()].fill(0);
        scale_inv[..shape.n_blocks()].fill(0.0);
        return Err(e);
    }
    let (down, across) = shape.grid();
    for b in 0..down {
        for k in 0..across {
            let rows = b * shape.block_rows..((b + 1) * shape.block_rows).min(shape.rows);
            let cols = k * shape.block_cols..((k + 1) * shape.block_cols).min(shape.cols);
            let mut amax = 0f32;
            for r in rows.clone() {
                for c in cols.clone() {
                    amax = amax.max(src[r * shape.cols + c].abs());
                }
            }
            let s = amax / E4M3_MAX;
            scale_inv[b * across + k] = s;
            for r in rows.clone() {
                for c in cols.clone() {
                    let i = r * shape.cols + c;
                    dst[i] = if s == 0.0 {
                        0
                    } else {
                        f32_to_fp8_e4m3_ref(src[i] / s, true)
                    };
                }
            }
        }
    }
    Ok(())
}

/// Scalar reference of [`fp8_block_dequantize`] (same contract).
pub fn fp8_block_dequantize_ref(
    src: &[u8],
    scale_inv: &[f32],
    shape: BlockShape,
    dst: &mut [f32],
) -> Result<()> {
    check_dequantize(src, scale_inv, shape, dst)?;
    let (_, across) = shape.grid();
    for i in 0..shape.len() {
        let (r, c) = (i / shape.cols, i % shape.cols);
        let s = scale_inv[(r / shape.block_rows) * across + c / shape.block_cols];
        dst[i] = fp8_e4m3_to_f32_ref(src[i]) * s;
    }
    Ok(())
}
