//! Checkpoint packers: a [`QuantizedWeight`] written in the tensor layouts that GPTQ and AWQ engines
//! load as they are (AutoGPTQ / GPTQModel / exllama / vLLM / TGI for GPTQ; AutoAWQ's `WQLinear_GEMM` /
//! vLLM / TGI for AWQ).
//!
//! # GPTQ (`QuantLinear` of AutoGPTQ, "cuda_old" / exllama layout)
//! For a `rows x cols` weight (`rows` = out_features, `cols` = in_features) with `b`-bit codes,
//! b in {2, 3, 4, 8}, and `G = ceil(cols / group_size)` groups per row:
//! - `qweight`: int32 `[cols * b / 32, rows]`, row-major: column `r` holds the codes of output `r`
//!   along the input dimension as one bit string, lowest bits first: input `j` takes bits
//!   `[j*b, (j+1)*b)`, word `w` is bits `[32w, 32w + 32)`. At 3 bits a value may straddle two words
//!   (32 values span three words), exactly as AutoGPTQ's `pack`.
//! - `qzeros`: int32 `[G, rows * b / 32]`: row `g` holds the zero points of group `g` of every output,
//!   as a bit string over the outputs in the same way. Version 1 (AutoGPTQ, `checkpoint_format
//!   "gptq"`) stores `zero - 1` (engines add 1 back); version 2 (GPTQModel's `"gptq_v2"`) stores the
//!   zero as it is. Every stored value is clamped to `0..=2^b - 1` before packing, so nothing spills
//!   into a neighbour (AutoGPTQ's `zeros -= 1` wraps a zero point of 0 to all ones): in version 1 a
//!   zero point of 0 cannot be represented and is stored as 0, which engines read as 1.
//! - `scales`: f16 `[G, rows]` (IEEE binary16 bits, rounded to nearest even).
//! - `g_idx`: int32 `[cols]`: the group of each input (act-order), else `j / group_size`.
//!
//! Engines compute `w[r][j] = scales[g][r] * (q - (z_stored + 1))` (v1) or `* (q - z_stored)` (v2),
//! `g = g_idx[j]`, which is [`QuantizedWeight::dequantize`] with the scales rounded to f16.
//! Followed: AutoGPTQ `auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py`, `QuantLinear.pack` and its
//! torch fallback in `forward` (the `wf` shifts, `zeros + 1`, `scales * (weight - zeros)`).
//!
//! # AWQ GEMM (`WQLinear_GEMM` of AutoAWQ, `version "gemm"`)
//! For 4-bit codes, `rows` a multiple of 8 and `cols` a multiple of the group size:
//! - `qweight`: int32 `[cols, rows / 8]` (input-major: the transpose of the torch weight): word
//!   `[j][c]` holds the codes of outputs `8c .. 8c + 8` for input `j`, nibble `i` (bits `4i..4i+4`)
//!   holding output `8c + ORDER[i]` with `ORDER = [0, 2, 4, 6, 1, 3, 5, 7]`.
//! - `qzeros`: int32 `[G, rows / 8]`, the zero points packed the same way, as they are (no offset).
//! - `scales`: f16 `[G, rows]`.
//!
//! Engines compute `w[r][j] = (q - z) * s` on the packed tensors. Followed: AutoAWQ
//! `awq/modules/linear/gemm.py`, `WQLinear_GEMM.from_linear` (the `order_map` and the shapes).
//!
//! AWQ scales the input channels before quantizing: the codes quantize `W diag(s)` for the
//! per-input-channel scales `s` ([`QuantizedWeight::input_scales`]). The packed checkpoint therefore
//! holds `W diag(s)`, as AutoAWQ's does: the engine's layer computes `x . (W diag(s))^T`, which is the
//! original layer only when its input has already been divided by `s`. AutoAWQ folds `1/s` into the
//! previous operation (the RMSNorm/LayerNorm weight and bias, or the previous linear layer's output
//! rows); a user of this packer must do the same with `input_scales`.
use half::f16;

use crate::error::{try_vec, QuantError, Result};
use crate::kernels::check_len;
use crate::kernels::kbit::unpack_row;
use crate::method::QuantMethod;
use crate::weight::{code_bits, QuantizedWeight};

/// AWQ's nibble order: nibble `i` of a word holds output `8c + AWQ_ORDER[i]`.
pub(crate) const AWQ_ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

/// Lengths, in elements, of the four GPTQ tensors of one weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GptqSizes {
    /// int32 words of `qweight`, `cols * bits / 32 * rows`.
    pub qweight: usize,
    /// int32 words of `qzeros`, `groups * rows * bits / 32`.
    pub qzeros: usize,
    /// f16 scales, `groups * rows`.
    pub scales: usize,
    /// int32 group indices, `cols`.
    pub g_idx: usize,
}

/// Lengths, in elements, of the three AWQ GEMM tensors of one weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwqSizes {
    /// int32 words of `qweight`, `cols * rows / 8`.
    pub qweight: usize,
    /// int32 words of `qzeros`, `groups * rows / 8`.
    pub qzeros: usize,
    /// f16 scales, `groups * rows`.
    pub scales: usize,
}

/// The zero points of `q`, checked to be integers in `0..=maxq`.
fn checked_zeros(q: &QuantizedWeight, bits: u32) -> Result<&[f32]> {
    let zeros = q.zero_points.as_deref().ok_or_else(|| {
        QuantError::invalid(format!(
            "{} has no zero points: GPTQ and AWQ checkpoints store asymmetric codes",
            q.method
        ))
    })?;
    let maxq = ((1u32 << bits) - 1) as f32;
    if let Some((i, &z)) = zeros
        .iter()
        .enumerate()
        .find(|(_, &z)| !(0.0..=maxq).contains(&z) || z.fract() != 0.0)
    {
        return Err(QuantError::invalid(format!(
            "zero_points[{i}] is {z}: a {bits}-bit zero point is an integer in 0..={maxq}"
        )));
    }
    Ok(zeros)
}

/// Checks that every scale has a finite f16 value (an engine reads f16 scales).
fn check_f16_scales(q: &QuantizedWeight) -> Result<()> {
    if let Some((i, &s)) = q
        .scales
        .iter()
        .enumerate()
        .find(|(_, &s)| !f16::from_f32(s).is_finite())
    {
        return Err(QuantError::invalid(format!(
            "scales[{i}] is {s}: beyond the f16 range (65504) that the checkpoint's scales use"
        )));
    }
    Ok(())
}

/// Writes the scales transposed to `[groups, rows]` as f16 bits.
fn write_scales_t(q: &QuantizedWeight, gpr: usize, out: &mut [u16]) {
    for (r, row) in q.scales.chunks_exact(gpr).enumerate() {
        for (g, &s) in row.iter().enumerate() {
            out[g * q.rows + r] = f16::from_f32(s).to_bits();
        }
    }
}

/// The bit width and group geometry of a weight that GPTQ can store, or why it cannot.
fn gptq_geometry(q: &QuantizedWeight) -> Result<(u32, GptqSizes)> {
    q.check()?;
    match q.method {
        QuantMethod::Gptq { .. } | QuantMethod::Int4Asymmetric { .. } => {}
        other => {
            return Err(QuantError::invalid(format!(
                "{other} cannot be written as a GPTQ checkpoint: it needs GPTQ (or INT4) codes \
                 with zero points and no input scales"
            )))
        }
    }
    let bits = code_bits(&q.method);
    if ![2, 3, 4, 8].contains(&bits) {
        return Err(QuantError::Unsupported(format!(
            "GPTQ checkpoints hold 2, 3, 4 or 8-bit codes, not {bits}"
        )));
    }
    let b = bits as usize;
    for (what, n) in [
        ("cols (in_features)", q.cols),
        ("rows (out_features)", q.rows),
    ] {
        if n * b % 32 != 0 {
            return Err(QuantError::invalid(format!(
                "{what} is {n}: {bits}-bit GPTQ packs whole 32-bit words, so it must be a multiple \
                 of {}",
                32 / gcd(32, b)
            )));
        }
    }
    let groups = q.shape()?.groups_per_row();
    Ok((
        bits,
        GptqSizes {
            qweight: q.cols * b / 32 * q.rows,
            qzeros: groups * (q.rows * b / 32),
            scales: groups * q.rows,
            g_idx: q.cols,
        },
    ))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Sizes of the GPTQ tensors of `q` (see the module docs).
///
/// Errors: an inconsistent weight (as [`QuantizedWeight::check`]); a method other than GPTQ or INT4
/// (`InvalidArgument`); a width other than 2, 3, 4, 8 (`Unsupported`); `cols * bits` or `rows * bits`
/// not a multiple of 32 (`InvalidArgument`).
pub fn gptq_sizes(q: &QuantizedWeight) -> Result<GptqSizes> {
    Ok(gptq_geometry(q)?.1)
}

/// Writes `q` as GPTQ checkpoint tensors (module docs): `qweight`, `qzeros` (`version` 1: zero minus
/// one, clamped at 0; `version` 2: the zero as it is), f16 `scales` and `g_idx`. Only the first
/// [`gptq_sizes`] elements of each output are written. Returns the number of zero points that version
/// 1 could not represent (zero points of 0, stored as 0 and read as 1 by engines); always 0 for
/// version 2.
///
/// Errors (nothing written): those of [`gptq_sizes`]; `version` not 1 or 2, a zero point that is not
/// an integer in `0..=2^bits - 1`, a scale beyond the f16 range (`InvalidArgument`); an output shorter
/// than its size (`BufferTooSmall`).
pub fn pack_gptq(
    q: &QuantizedWeight,
    version: u32,
    qweight: &mut [i32],
    qzeros: &mut [i32],
    scales: &mut [u16],
    g_idx: &mut [i32],
) -> Result<usize> {
    let (bits, sizes) = gptq_geometry(q)?;
    if version != 1 && version != 2 {
        return Err(QuantError::invalid(format!(
            "format_version is {version}: GPTQ checkpoints are version 1 (zero - 1) or 2"
        )));
    }
    let zeros = checked_zeros(q, bits)?;
    check_f16_scales(q)?;
    check_len("qweight", qweight.len(), sizes.qweight)?;
    check_len("qzeros", qzeros.len(), sizes.qzeros)?;
    check_len("scales", scales.len(), sizes.scales)?;
    check_len("g_idx", g_idx.len(), sizes.g_idx)?;

    let shape = q.shape()?;
    let (rows, gpr, glen) = (q.rows, shape.groups_per_row(), shape.group_len());
    // qweight: each row's packed codes are already its bit string, LSB first; as little-endian u32
    // words they are the row's column of qweight.
    let row_bytes = q.row_bytes();
    let words = row_bytes / 4;
    for (r, row) in q.data.chunks_exact(row_bytes).enumerate() {
        for (w, word) in row.chunks_exact(4).enumerate() {
            qweight[w * rows + r] = i32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
    }
    debug_assert_eq!(words * rows, sizes.qweight);
    // qzeros: per group, the bit string of the outputs' zero points.
    let zwords = rows * bits as usize / 32;
    let mut clamped = 0usize;
    for g in 0..gpr {
        let out = &mut qzeros[g * zwords..(g + 1) * zwords];
        out.fill(0);
        for r in 0..rows {
            let z = zeros[r * gpr + g] as u32;
            let stored = if version == 1 {
                if z == 0 {
                    clamped += 1;
                }
                z.saturating_sub(1)
            } else {
                z
            };
            put_bits(out, r * bits as usize, bits, stored);
        }
    }
    write_scales_t(q, gpr, &mut scales[..sizes.scales]);
    for (j, o) in g_idx[..q.cols].iter_mut().enumerate() {
        *o = match &q.g_idx {
            Some(g) => g[j],
            None => (j / glen) as i32,
        };
    }
    Ok(clamped)
}

/// ORs the low `bits` bits of `value` into the little-endian bit string of 32-bit `words` at bit `pos`
/// (a value may straddle two words).
fn put_bits(words: &mut [i32], pos: usize, bits: u32, value: u32) {
    let v = u64::from(value & ((1u32 << bits) - 1)) << (pos % 32);
    let w = pos / 32;
    words[w] |= v as u32 as i32;
    if (v >> 32) != 0 {
        words[w + 1] |= (v >> 32) as u32 as i32;
    }
}

/// The group geometry of a weight that AWQ GEMM can store, or why it cannot.
fn awq_geometry(q: &QuantizedWeight) -> Result<AwqSizes> {
    q.check()?;
    match q.method {
        QuantMethod::Awq { .. } | QuantMethod::Int4Asymmetric { .. } => {}
        QuantMethod::Gptq { .. } if q.g_idx.is_none() => {}
        other => {
            return Err(QuantError::invalid(format!(
                "{other} cannot be written as an AWQ checkpoint: it needs AWQ (or INT4, or GPTQ \
                 without act-order) codes with zero points"
            )))
        }
    }
    let bits = code_bits(&q.method);
    if bits != 4 {
        return Err(QuantError::Unsupported(format!(
            "AWQ GEMM checkpoints hold 4-bit codes, not {bits}"
        )));
    }
    if q.rows % 8 != 0 {
        return Err(QuantError::invalid(format!(
            "rows (out_features) is {}: AWQ packs 8 outputs a word, so it must be a multiple of 8",
            q.rows
        )));
    }
    let shape = q.shape()?;
    if q.cols % shape.group_len() != 0 {
        return Err(QuantError::invalid(format!(
            "cols (in_features) is {} and the group size {}: AWQ needs whole groups",
            q.cols,
            shape.group_len()
        )));
    }
    let groups = shape.groups_per_row();
    Ok(AwqSizes {
        qweight: q.cols * (q.rows / 8),
        qzeros: groups * (q.rows / 8),
        scales: groups * q.rows,
    })
}

/// Sizes of the AWQ GEMM tensors of `q` (see the module docs).
///
/// Errors: an inconsistent weight (as [`QuantizedWeight::check`]); a method other than AWQ, INT4 or
/// GPTQ without `g_idx` (`InvalidArgument`); codes of a width other than 4 (`Unsupported`); `rows` not a
/// multiple of 8 or `cols` not a multiple of the group size (`InvalidArgument`).
pub fn awq_sizes(q: &QuantizedWeight) -> Result<AwqSizes> {
    awq_geometry(q)
}

/// Writes `q` as AWQ GEMM checkpoint tensors (module docs): `qweight`, `qzeros` and f16 `scales`. The
/// tensors hold `W diag(s)` when `q` has input scales `s` (see the module docs). Only the first
/// [`awq_sizes`] elements of each output are written.
///
/// Errors (nothing written): those of [`awq_sizes`]; a zero point that is not an integer in `0..=15`
/// or a scale beyond the f16 range (`InvalidArgument`); an output shorter than its size
/// (`BufferTooSmall`); no memory for eight rows of scratch (`OutOfMemory`).
pub fn pack_awq(
    q: &QuantizedWeight,
    qweight: &mut [i32],
    qzeros: &mut [i32],
    scales: &mut [u16],
) -> Result<()> {
    let sizes = awq_geometry(q)?;
    let zeros = checked_zeros(q, 4)?;
    check_f16_scales(q)?;
    check_len("qweight", qweight.len(), sizes.qweight)?;
    check_len("qzeros", qzeros.len(), sizes.qzeros)?;
    check_len("scales", scales.len(), sizes.scales)?;
    let mut codes = try_vec(8 * q.cols, 0u8, "AWQ packing scratch")?;

    let (rows, cols) = (q.rows, q.cols);
    let gpr = q.shape()?.groups_per_row();
    let wpr = rows / 8;
    let row_bytes = q.row_bytes();
    for c in 0..wpr {
        for (k, dst) in codes.chunks_exact_mut(cols).enumerate() {
            let r = 8 * c + k;
            unpack_row(&q.data[r * row_bytes..(r + 1) * row_bytes], 4, dst);
        }
        for j in 0..cols {
            let mut word = 0u32;
            for (i, &k) in AWQ_ORDER.iter().enumerate() {
                word |= u32::from(codes[k * cols + j] & 0xF) << (4 * i);
            }
            qweight[j * wpr + c] = word as i32;
        }
        for g in 0..gpr {
            let mut word = 0u32;
            for (i, &k) in AWQ_ORDER.iter().enumerate() {
                word |= (zeros[(8 * c + k) * gpr + g] as u32) << (4 * i);
            }
            qzeros[g * wpr + c] = word as i32;
        }
    }
    write_scales_t(q, gpr, &mut scales[..sizes.scales]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_straddle_words_like_autogptq_3bit() {
        // 32 values of 3 bits: value 10 spans words 0 and 1, value 21 words 1 and 2.
        let mut w = [0i32; 3];
        for j in 0..32 {
            put_bits(&mut w, 3 * j, 3, 7);
        }
        assert_eq!(w, [-1, -1, -1]);
        let mut w = [0i32; 3];
        put_bits(&mut w, 30, 3, 0b101);
        assert_eq!((w[0] as u32, w[1]), (0b01 << 30, 0b1));
        let mut w = [0i32; 3];
        put_bits(&mut w, 63, 3, 0b111);
        assert_eq!((w[1] as u32, w[2]), (1 << 31, 0b11));
    }
}
