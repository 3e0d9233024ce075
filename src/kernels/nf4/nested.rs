//! bitsandbytes' double quantization of the 4-bit absmax values (`quantize_4bit(...,
//! compress_statistics=True)`), byte for byte as its CPU backend writes them (bitsandbytes 0.50.2).
//!
//! # Format
//! The 4-bit codes are those of [`super::bnb4_quantize`]; the `nb = ceil(n / blocksize)` absmax values
//! are stored as:
//! - `offset`: one f32, subtracted from every absmax (bitsandbytes: `absmax.mean()`);
//! - `qabsmax`: one byte per absmax, the 8-bit code of `absmax - offset` (f32 subtraction) on the
//!   signed dynamic map ([`dynamic_map`], `create_dynamic_map(signed=True)`), in blocks of 256
//!   ([`QUANT_BNB4_NESTED_BLOCKSIZE`]) over the `nb` values, the last block possibly shorter;
//! - `absmax2`: one f32 per block of 256, its largest magnitude.
//!
//! The 8-bit step is bitsandbytes' native CPU `quantize_blockwise` (`quantize_cpu_impl`): per block
//! `a = max |v|`; a block with `a == 0` stores the code 0 everywhere; otherwise `s = v * (1 / a)`
//! (f32 reciprocal, then a product, for the partial block too), clamped to `[-1, 1]`, is placed on a
//! grid of 65536 points, `i = trunc(fma((s + 1) * 0.5, 65535, 0.5))` (one fused multiply-add, as the
//! shipped binary computes it), and the code is that of grid point `i`: the number of code book
//! midpoints `(c[k] + c[k + 1]) * 0.5` strictly below `(2 i) / 65535 - 1` (f32), which is the table
//! bitsandbytes builds. The code is therefore the nearest entry of the value's grid point, not always
//! of the value itself. Dequantization is `c[code] * absmax2[block]` (f32), then `+ offset`.
//!
//! # The offset
//! bitsandbytes' offset is torch's f32 `mean`, whose summation order follows torch's vectorization on
//! the machine, so its last bits are not portable. [`bnb4_absmax_mean`] computes the mean as the f64
//! sum in index order divided by the count in f64, rounded once to f32 (the correctly rounded mean
//! unless the f64 sum itself lost a bit next to an f32 rounding boundary); the quantizer uses it by
//! default and takes a caller-given offset instead, so that a checkpoint's bytes can be reproduced
//! given its stored offset. Everything after the offset is byte-exact with bitsandbytes.
use crate::error::{QuantError, Result};
use crate::kernels::elements::Src;
use crate::kernels::{check_bytes, check_finite, check_len};

use super::{bnb4_absmax_len, bnb4_dequantize, bnb4_packed_len, bnb4_quantize, Bnb4Type};

/// The block size of the 8-bit step (`quantize_blockwise(absmax - offset, blocksize=256)`).
pub const QUANT_BNB4_NESTED_BLOCKSIZE: usize = 256;

/// `create_dynamic_map(signed=True)` of bitsandbytes 0.50.2 as f32 bits, sorted (written from
/// `tests/data/bnb4/dynamic_map.f32`, which scripts/gen_bnb_fixtures.py takes from bitsandbytes;
/// `tests/bnb4.rs` checks the two equal).
const DYNAMIC_MAP: [u32; 256] = [
    0xbf7e3333, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333, 0xbf68999a, 0xbf650000,
    0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a, 0xbf530000, 0xbf4f6666, 0xbf4bcccd, 0xbf483333,
    0xbf44999a, 0xbf410000, 0xbf3d6666, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6666,
    0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a,
    0xbf0b0000, 0xbf076666, 0xbf03cccc, 0xbf003333, 0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a,
    0xbedc6666, 0xbed53333, 0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000,
    0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999, 0xbe6f3333, 0xbe60cccd,
    0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334,
    0xbdc9eb85, 0xbdc428f7, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c2a, 0xbda1999a,
    0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147b, 0xbd728f5d, 0xbd670a3d,
    0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3, 0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148,
    0xbcfeb852, 0xbce7ae15, 0xbcd0a3d7, 0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
    0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4,
    0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
    0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
    0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94, 0xb513a3b7, 0x00000000,
    0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
    0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
    0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
    0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
    0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
    0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
    0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
    0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
    0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
    0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
    0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
    0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
    0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666,
    0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
    0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
    0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000,
];

/// Number of points of the index grid of bitsandbytes' native 8-bit quantizer.
const GRID: usize = 65536;

/// The 256 entries of bitsandbytes' signed 8-bit dynamic map (`create_dynamic_map(signed=True)`),
/// sorted: `c[0] = -0.99296875`, `c[127] = 0`, `c[255] = 1`.
pub fn dynamic_map() -> [f32; 256] {
    DYNAMIC_MAP.map(f32::from_bits)
}

/// The 255 f32 midpoints `(c[k] + c[k + 1]) * 0.5` of the dynamic map.
fn midpoints() -> [f32; 255] {
    let c = dynamic_map();
    std::array::from_fn(|k| (c[k] + c[k + 1]) * 0.5)
}

/// The code of grid point `i` (0..65536) from its definition: the number of midpoints strictly below
/// `(2 i) / 65535 - 1` in f32 (the midpoints are increasing).
#[cfg(test)]
fn grid_code(mids: &[f32; 255], i: usize) -> u8 {
    let f = i as f32;
    let val = (f + f) / (GRID - 1) as f32 - 1.0;
    mids.partition_point(|&m| m < val) as u8
}

/// The code of every grid point, built once as bitsandbytes builds its table (`build_quantize_lut`:
/// one pass over the grid advancing along the midpoints while the next one is strictly below the grid
/// point); the unit tests check it against [`grid_code`].
fn grid_table() -> &'static [u8; GRID] {
    static TABLE: std::sync::OnceLock<Box<[u8; GRID]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mids = midpoints();
        let mut t = Box::new([0u8; GRID]);
        let mut k = 0usize;
        for (i, c) in t.iter_mut().enumerate() {
            let f = i as f32;
            let val = (f + f) / (GRID - 1) as f32 - 1.0;
            while k < mids.len() && mids[k] < val {
                k += 1;
            }
            *c = k as u8;
        }
        t
    })
}

/// The grid point of the scaled value `s` (already in `[-1, 1]`).
fn grid_index(s: f32) -> usize {
    let t = (s + 1.0) * 0.5;
    t.mul_add((GRID - 1) as f32, 0.5) as usize
}

/// Number of `absmax2` values (one per 256 absmax values) of `n` values in blocks of `blocksize`.
pub fn bnb4_nested_len(n: usize, blocksize: usize) -> usize {
    bnb4_absmax_len(n, blocksize).div_ceil(QUANT_BNB4_NESTED_BLOCKSIZE)
}

/// The library's offset rule: the mean of `absmax` as the f64 sum in index order divided by the count
/// in f64, rounded once to f32. Errors: `InvalidArgument` for an empty slice, `NonFinite` for a NaN or
/// an infinity.
pub fn bnb4_absmax_mean(absmax: &[f32]) -> Result<f32> {
    if absmax.is_empty() {
        return Err(QuantError::invalid("absmax is empty: it has no mean"));
    }
    check_finite(absmax, "absmax")?;
    let sum: f64 = absmax.iter().map(|&v| f64::from(v)).sum();
    Ok((sum / absmax.len() as f64) as f32)
}

/// bitsandbytes' 8-bit step on its own (`quantize_blockwise(v, blocksize=256)` on the CPU): the codes
/// of `v` into `codes[..v.len()]` and the absmax of each block of 256 into `absmax2[..ceil(len / 256)]`
/// (see the module docs). Errors (nothing written): `InvalidArgument` for an empty `v`,
/// `BufferTooSmall` for short outputs, `NonFinite` for a NaN or an infinity in `v`.
pub fn bnb_dynamic_quantize(v: &[f32], codes: &mut [u8], absmax2: &mut [f32]) -> Result<()> {
    if v.is_empty() {
        return Err(QuantError::invalid("there are no values to quantize"));
    }
    let nb2 = v.len().div_ceil(QUANT_BNB4_NESTED_BLOCKSIZE);
    check_bytes("qabsmax", codes.len(), v.len())?;
    check_len("absmax2", absmax2.len(), nb2)?;
    check_finite(v, "absmax - offset")?;
    let table = grid_table();
    let blocks = v.chunks(QUANT_BNB4_NESTED_BLOCKSIZE);
    let out = codes.chunks_mut(QUANT_BNB4_NESTED_BLOCKSIZE);
    for ((block, q), a2) in blocks.zip(out).zip(absmax2.iter_mut()) {
        let a = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        *a2 = a;
        if a == 0.0 {
            q[..block.len()].fill(0);
            continue;
        }
        let inv = 1.0 / a;
        for (c, &x) in q.iter_mut().zip(block) {
            *c = table[grid_index((x * inv).clamp(-1.0, 1.0))];
        }
    }
    Ok(())
}

/// bitsandbytes' `dequantize_blockwise` of the 8-bit step: `dst[i] = c[codes[i]] * absmax2[i / 256]`
/// (f32) for `i < codes.len()` (`dst` at least that long; `absmax2` one value per 256 codes).
fn dynamic_dequantize(codes: &[u8], absmax2: &[f32], offset: f32, dst: &mut [f32]) {
    let c = dynamic_map();
    let blocks = codes.chunks(QUANT_BNB4_NESTED_BLOCKSIZE);
    for ((q, &a), d) in blocks
        .zip(absmax2)
        .zip(dst.chunks_mut(QUANT_BNB4_NESTED_BLOCKSIZE))
    {
        for (o, &k) in d.iter_mut().zip(q) {
            *o = c[k as usize] * a + offset;
        }
    }
}

fn check_offset(offset: f32) -> Result<()> {
    if !offset.is_finite() {
        return Err(QuantError::invalid(format!(
            "offset is {offset}: it must be finite"
        )));
    }
    Ok(())
}

/// The absmax values that double-quantized statistics decode to, as bitsandbytes'
/// `dequantize_blockwise(qabsmax, state2) + offset`: `dst[i] = c[qabsmax[i]] * absmax2[i / 256] +
/// offset` (two f32 operations, not fused) for `i < count`.
///
/// Errors (nothing written): `InvalidArgument` for `count` 0 or a non-finite `offset`;
/// `BufferTooSmall` for a short `qabsmax` (`count` bytes), `absmax2` (`ceil(count / 256)`) or `dst`;
/// `NonFinite` for a NaN or infinite `absmax2` value.
pub fn bnb4_nested_absmax(
    qabsmax: &[u8],
    absmax2: &[f32],
    offset: f32,
    count: usize,
    dst: &mut [f32],
) -> Result<()> {
    if count == 0 {
        return Err(QuantError::invalid(
            "count is 0: there are no absmax values",
        ));
    }
    check_offset(offset)?;
    let nb2 = count.div_ceil(QUANT_BNB4_NESTED_BLOCKSIZE);
    check_bytes("qabsmax", qabsmax.len(), count)?;
    check_len("absmax2", absmax2.len(), nb2)?;
    check_len("dst", dst.len(), count)?;
    check_finite(&absmax2[..nb2], "absmax2")?;
    dynamic_dequantize(
        &qabsmax[..count],
        &absmax2[..nb2],
        offset,
        &mut dst[..count],
    );
    Ok(())
}

/// Quantizes the flat tensor `src` to bitsandbytes' 4-bit `ty` with double-quantized statistics
/// (`quantize_4bit(x, blocksize, quant_type, compress_statistics=True)`): the packed codes into
/// `dst[..ceil(n / 2)]` (those of [`bnb4_quantize`]), the 8-bit codes of `absmax - offset` into
/// `qabsmax[..ceil(n / blocksize)]` and their absmax per 256 into
/// `absmax2[..`[`bnb4_nested_len`]`(n, blocksize)]`. `offset`: `None` for the library's mean rule
/// ([`bnb4_absmax_mean`] of the block absmax values), or the offset to subtract (finite). Returns the
/// offset used. Allocates `ceil(n / blocksize)` floats of working space.
///
/// Errors (nothing written): `InvalidArgument` for an empty source, an unaccepted block size or a
/// non-finite `offset`; `BufferTooSmall` for a short output. `NonFinite` for a NaN or an infinity in
/// `src`, or an `absmax - offset` that overflows (a caller-given offset near the f32 limit): the
/// three outputs' prefixes are then zero-filled.
pub fn bnb4_quantize_nested(
    ty: Bnb4Type,
    src: Src,
    blocksize: usize,
    offset: Option<f32>,
    dst: &mut [u8],
    qabsmax: &mut [u8],
    absmax2: &mut [f32],
) -> Result<f32> {
    let n = src.len();
    if n == 0 {
        return Err(QuantError::invalid("n is 0: there is nothing to quantize"));
    }
    super::check_blocksize(blocksize)?;
    let (bytes, nb, nb2) = (
        bnb4_packed_len(n),
        bnb4_absmax_len(n, blocksize),
        bnb4_nested_len(n, blocksize),
    );
    check_bytes("dst", dst.len(), bytes)?;
    check_bytes("qabsmax", qabsmax.len(), nb)?;
    check_len("absmax2", absmax2.len(), nb2)?;
    if let Some(o) = offset {
        check_offset(o)?;
    }
    let mut absmax = Vec::new();
    absmax
        .try_reserve_exact(nb)
        .map_err(|_| QuantError::OutOfMemory(format!("{nb} absmax values")))?;
    absmax.resize(nb, 0f32);
    let zero = |dst: &mut [u8], qabsmax: &mut [u8], absmax2: &mut [f32]| {
        dst[..bytes].fill(0);
        qabsmax[..nb].fill(0);
        absmax2[..nb2].fill(0.0);
    };
    if let Err(e) = bnb4_quantize(ty, src, blocksize, dst, &mut absmax) {
        zero(dst, qabsmax, absmax2);
        return Err(e);
    }
    let offset = match offset {
        Some(o) => o,
        None => bnb4_absmax_mean(&absmax)?,
    };
    for a in absmax.iter_mut() {
        *a -= offset;
    }
    if let Err(e) = bnb_dynamic_quantize(&absmax, qabsmax, absmax2) {
        zero(dst, qabsmax, absmax2);
        return Err(e);
    }
    Ok(offset)
}

/// Inverse of [`bnb4_quantize_nested`] (bitsandbytes' `dequantize_4bit` of a nested state): the absmax
/// values are recovered as [`bnb4_nested_absmax`] does, then `dst[i] = code_book[code i] *
/// absmax[i / blocksize]` into `dst[..n]`. Allocates `ceil(n / blocksize)` floats of working space.
///
/// Errors (nothing written): `InvalidArgument` for `n` 0, an unaccepted block size or a non-finite
/// `offset`; `BufferTooSmall` for a short `src`, `qabsmax`, `absmax2` or `dst`; `NonFinite` for a NaN
/// or infinite `absmax2` value or a recovered absmax that overflows.
#[allow(clippy::too_many_arguments)]
pub fn bnb4_dequantize_nested(
    ty: Bnb4Type,
    src: &[u8],
    qabsmax: &[u8],
    absmax2: &[f32],
    offset: f32,
    n: usize,
    blocksize: usize,
    dst: &mut [f32],
) -> Result<()> {
    if n == 0 {
        return Err(QuantError::invalid(
            "n is 0: there is nothing to dequantize",
        ));
    }
    super::check_blocksize(blocksize)?;
    check_bytes("src", src.len(), bnb4_packed_len(n))?;
    let nb = bnb4_absmax_len(n, blocksize);
    check_bytes("qabsmax", qabsmax.len(), nb)?;
    check_len("absmax2", absmax2.len(), bnb4_nested_len(n, blocksize))?;
    check_len("dst", dst.len(), n)?;
    let mut absmax = Vec::new();
    absmax
        .try_reserve_exact(nb)
        .map_err(|_| QuantError::OutOfMemory(format!("{nb} absmax values")))?;
    absmax.resize(nb, 0f32);
    bnb4_nested_absmax(qabsmax, absmax2, offset, nb, &mut absmax)?;
    check_finite(&absmax, "recovered absmax")?;
    bnb4_dequantize(ty, src, &absmax, n, blocksize, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bitsandbytes' `build_quantize_lut`, loop for loop: the grid codes and the table equal its table.
    #[test]
    fn grid_codes_are_bitsandbytes_table() {
        let mids = midpoints();
        let table = grid_table();
        let mut k = 0usize;
        for (i, &t) in table.iter().enumerate() {
            let val = (2.0 * i as f32) / 65535.0 - 1.0;
            while k < 255 && mids[k] < val {
                k = k.wrapping_add(1);
            }
            assert_eq!(grid_code(&mids, i), k as u8, "grid point {i}");
            assert_eq!(t, k as u8, "table entry {i}");
        }
        assert_eq!(grid_code(&mids, 0), 0);
        assert_eq!(grid_code(&mids, GRID - 1), 255);
    }

    #[test]
    fn dynamic_map_is_sorted_signed_and_ends_at_one() {
        let c = dynamic_map();
        assert!(c.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(c[127], 0.0);
        assert_eq!(c[255], 1.0);
        assert_eq!(c[0], -0.99296875);
    }

    #[test]
    fn grid_index_spans_the_grid() {
        assert_eq!(grid_index(-1.0), 0);
        assert_eq!(grid_index(1.0), GRID - 1);
        assert_eq!(grid_index(0.0), 32768);
    }

    #[test]
    fn mean_is_the_f64_mean_rounded_once() {
        // In f32 order 1 + 2^-24 + 2^-24 rounds to 1 twice; the f64 sum keeps them.
        let e = f32::EPSILON / 2.0;
        let v = [1.0, e, e, e, e, e];
        let want = ((1.0f64 + 5.0 * f64::from(e)) / 6.0) as f32;
        assert_eq!(bnb4_absmax_mean(&v).unwrap(), want);
        let seq = v.iter().fold(0f32, |s, &x| s + x) / 6.0;
        assert_ne!(seq.to_bits(), want.to_bits());
        assert_eq!(bnb4_absmax_mean(&[f32::MAX, f32::MAX]).unwrap(), f32::MAX);
        assert!(bnb4_absmax_mean(&[]).is_err());
        assert!(bnb4_absmax_mean(&[1.0, f32::NAN]).is_err());
    }
}
