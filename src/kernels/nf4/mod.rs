//! bitsandbytes' 4-bit formats, NF4 and FP4 (`bitsandbytes.functional.quantize_4bit` /
//! `dequantize_4bit`), byte for byte as its CPU backend writes them (bitsandbytes 0.50.2).
//!
//! # Format
//! The tensor is flattened (row-major) to `n` values and cut into blocks of `blocksize` consecutive
//! values (a power of two from 32 to 4096, as bitsandbytes accepts; 64 by default), the last block
//! possibly shorter. Per block:
//! - `absmax` = the largest magnitude of the block (f32), stored as it is for the full blocks; the
//!   last, partial block stores `max(absmax, 1e-38)` (bitsandbytes clamps it there and not for the
//!   others);
//! - each value is scaled to `[-1, 1]`: `clamp(x * (1 / max(absmax, 1e-38)), -1, 1)` in f32 for the
//!   full blocks (a multiplication by the f32 reciprocal), `clamp(x / max(absmax, 1e-38), -1, 1)`
//!   for the partial one (a division);
//! - its code is the bucket of the scaled value among the 15 f32 midpoints of the sorted code book
//!   (`torch.bucketize`, `right=False`): the number of midpoints strictly below it, so a value exactly
//!   on a midpoint takes the lower entry; for FP4 the sorted position is mapped to the code book's
//!   index (`argsort` of the code book, as bitsandbytes does);
//! - two codes a byte, the **first value in the high nibble**; an odd `n` is padded with the code of
//!   0.0 (NF4 7, FP4 0) in the low nibble of the last byte.
//!
//! Dequantization is `code_book[code] * absmax` (one f32 product).
//!
//! The code books are bitsandbytes' `get_4bit_type("nf4")` (the NormalFloat levels of QLoRA) and
//! `get_4bit_type("fp4")` (a sign bit, two exponent bits and one mantissa bit, normalized by 6: codes
//! 0..7 are `0, 0.0052, 2/3, 1, 1/3, 1/2, 1/6, 1/4`, codes 8..15 their negatives). FP4 code 8
//! decodes to -0.0, as bitsandbytes' native CPU dequantizer does (the sign bit); its Python table
//! fallback, taken for an odd last dimension or (with AVX-512) block sizes from 2048, gives +0.0.
//!
//! Double quantization of the absmax values (`compress_statistics=True`) is in [`nested`]
//! ([`bnb4_quantize_nested`]): byte-exact with bitsandbytes given its offset, whose default here is the
//! correctly rounded mean (torch's f32 `mean` sums in a machine-dependent order).
use crate::error::{QuantError, Result};
use crate::kernels::elements::Src;
use crate::kernels::par::{self, Exec};
#[cfg(target_arch = "x86_64")]
use crate::kernels::simd::SimdLevel;
use crate::kernels::{absmax_bits, check_bytes, check_finite, check_len};

#[cfg(target_arch = "x86_64")]
mod x86;

pub mod nested;
pub use nested::{
    bnb4_absmax_mean, bnb4_dequantize_nested, bnb4_nested_absmax, bnb4_nested_len,
    bnb4_quantize_nested, bnb_dynamic_quantize, dynamic_map, QUANT_BNB4_NESTED_BLOCKSIZE,
};

/// Which of bitsandbytes' 4-bit code books (`quant_type`). The values are bitsandbytes' own
/// `DataType_t` numbers (`FP4 = 1`, `NF4 = 2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bnb4Type {
    Fp4,
    Nf4,
}

/// `quant_type = "fp4"`.
pub const QUANT_BNB4_FP4: i32 = 1;
/// `quant_type = "nf4"`.
pub const QUANT_BNB4_NF4: i32 = 2;
/// bitsandbytes' default block size.
pub const QUANT_BNB4_DEFAULT_BLOCKSIZE: usize = 64;

impl Bnb4Type {
    /// The type of a `QUANT_BNB4_*` code, or `InvalidArgument`.
    pub fn from_code(code: i32) -> Result<Self> {
        match code {
            QUANT_BNB4_FP4 => Ok(Self::Fp4),
            QUANT_BNB4_NF4 => Ok(Self::Nf4),
            other => Err(QuantError::invalid(format!(
                "quant_type is {other}: use QUANT_BNB4_FP4 (1) or QUANT_BNB4_NF4 (2)"
            ))),
        }
    }

    /// bitsandbytes' name, `"fp4"` or `"nf4"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp4 => "fp4",
            Self::Nf4 => "nf4",
        }
    }

    /// The 16 code book values as f32 bits (`get_4bit_type`).
    fn book(self) -> &'static [u32; 16] {
        match self {
            Self::Fp4 => &FP4_BOOK,
            Self::Nf4 => &NF4_BOOK,
        }
    }

    /// The 15 midpoints of the sorted code book, f32 bits.
    fn bounds(self) -> &'static [u32; 15] {
        match self {
            Self::Fp4 => &FP4_BOUNDS,
            Self::Nf4 => &NF4_BOUNDS,
        }
    }

    /// Code book index of each sorted position (`argsort` of the code book).
    fn order(self) -> &'static [u8; 16] {
        match self {
            Self::Fp4 => &FP4_ORDER,
            Self::Nf4 => &IDENTITY,
        }
    }

    /// The code book value of `code` (0..16).
    pub fn value(self, code: u8) -> f32 {
        f32::from_bits(self.book()[(code & 15) as usize])
    }
}

const NF4_BOOK: [u32; 16] = [
    0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0, 0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000,
    0x3da2faff, 0x3e24cae3, 0x3e7c04dd, 0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000,
];
const NF4_BOUNDS: [u32; 15] = [
    0xbf591cd8, 0xbf1c5270, 0xbeeb8480, 0xbeadea76, 0xbe703cec, 0xbe0d38bc, 0xbd3a7871, 0x3d22faff,
    0x3df64862, 0x3e5067e0, 0x3e9582d4, 0x3ec753f9, 0x3f006d04, 0x3f248daf, 0x3f5c89da,
];
/// Code 8 is -0: the FP4 sign bit, as bitsandbytes' native CPU dequantizer
/// (`cdequantize_blockwise_cpu_fp4_fp32`) decodes it; its table fallback (`get_4bit_type("fp4")`, for
/// odd last dimensions and, with AVX-512, block sizes from 2048) holds +0 there.
const FP4_BOOK: [u32; 16] = [
    0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000, 0x3eaaaaab, 0x3f000000, 0x3e2aaaab, 0x3e800000,
    0x80000000, 0xbbaaaaab, 0xbf2aaaab, 0xbf800000, 0xbeaaaaab, 0xbf000000, 0xbe2aaaab, 0xbe800000,
];
const FP4_BOUNDS: [u32; 15] = [
    0xbf555556, 0xbf155556, 0xbed55556, 0xbe955556, 0xbe555556, 0xbdb00000, 0xbb2aaaab, 0x00000000,
    0x3b2aaaab, 0x3db00000, 0x3e555556, 0x3e955556, 0x3ed55556, 0x3f155556, 0x3f555556,
];
/// bitsandbytes' `argsort` of the FP4 code book (the two zeros: the negative side's bucket takes code
/// 0, the positive side's code 8).
const FP4_ORDER: [u8; 16] = [11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3];
const IDENTITY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// The absmax clamp of bitsandbytes' `absmax.clamp(min=1e-38)` (an f32 subnormal).
const ABSMAX_FLOOR: f32 = 1e-38;

/// Checks a block size: a power of two from 32 to 4096, as `quantize_4bit` accepts.
pub fn check_blocksize(blocksize: usize) -> Result<()> {
    if !(32..=4096).contains(&blocksize) || !blocksize.is_power_of_two() {
        return Err(QuantError::invalid(format!(
            "blocksize is {blocksize}: bitsandbytes accepts 32, 64, 128, 256, 512, 1024, 2048 or 4096"
        )));
    }
    Ok(())
}

/// Bytes of the packed codes of `n` values: `ceil(n / 2)`.
pub fn bnb4_packed_len(n: usize) -> usize {
    n.div_ceil(2)
}

/// Number of absmax values of `n` values in blocks of `blocksize`: `ceil(n / blocksize)`.
pub fn bnb4_absmax_len(n: usize, blocksize: usize) -> usize {
    n.div_ceil(blocksize)
}

fn check_n(n: usize) -> Result<()> {
    match n.checked_mul(4) {
        Some(b) if n > 0 && b <= isize::MAX as usize => Ok(()),
        _ => Err(QuantError::invalid(format!(
            "n is {n}: it must be > 0 and addressable as f32"
        ))),
    }
}

fn check_quantize(n: usize, blocksize: usize, dst: &[u8], absmax: &[f32]) -> Result<()> {
    check_n(n)?;
    check_blocksize(blocksize)?;
    check_bytes("dst", dst.len(), bnb4_packed_len(n))?;
    check_len("absmax", absmax.len(), bnb4_absmax_len(n, blocksize))
}

/// The sorted-position bucket of the scaled value `v` (the number of midpoints strictly below it),
/// branch-free.
#[inline(always)]
fn bucket(bounds: &[u32; 15], v: f32) -> usize {
    bounds
        .iter()
        .map(|&b| (f32::from_bits(b) < v) as usize)
        .sum()
}

/// The codes of one block `x` (already f32, finite) into `q[i]` (one code a byte, unpacked), and
/// its stored absmax (`amax` is the whole block's, also when `x` is its tail). `last`: the partial last
/// block (division, clamped absmax stored). The portable body: the same body compiled for AVX2 or
/// AVX-512 (`#[target_feature]`) measured no faster on the shared AVX-512 machine (0.07 to 0.17 against
/// 0.11 to 0.32 G values/s); the AVX2 levels run `x86::avx2::codes` on the whole groups of 8 instead.
fn block_codes(
    (ty, x, amax, last): (Bnb4Type, &[f32], f32, bool),
    q: &mut [u8],
    scratch: &mut Scratch,
) -> f32 {
    let (bounds, order) = (ty.bounds(), ty.order());
    let am = amax.max(ABSMAX_FLOOR);
    let scaled = &mut scratch.scaled[..x.len()];
    let count = &mut scratch.count[..x.len()];
    let stored = if last {
        for (s, &v) in scaled.iter_mut().zip(x) {
            *s = (v / am).clamp(-1.0, 1.0);
        }
        am
    } else {
        let recip = 1.0 / am;
        for (s, &v) in scaled.iter_mut().zip(x) {
            *s = (v * recip).clamp(-1.0, 1.0);
        }
        amax
    };
    let bounds = bounds.map(f32::from_bits);
    // 16 values at a time against every midpoint, the counts in u32 lanes (per value, the 15
    // comparisons did not vectorize at all: 0.09 G values/s).
    let mut chunks = count.chunks_exact_mut(16);
    for (c, v) in (&mut chunks).zip(scaled.chunks_exact(16)) {
        let mut acc = [0u32; 16];
        for &b in &bounds {
            for (a, &v) in acc.iter_mut().zip(v) {
                *a += u32::from(b < v);
            }
        }
        c.copy_from_slice(&acc);
    }
    let done = x.len() / 16 * 16;
    for (c, &v) in chunks.into_remainder().iter_mut().zip(&scaled[done..]) {
        *c = bounds.iter().map(|&b| u32::from(b < v)).sum();
    }
    for (c, &k) in q.iter_mut().zip(count.iter()) {
        *c = order[k as usize & 15];
    }
    stored
}

/// One thread's working space for [`block_codes`]: a block's scaled values and bucket counts.
struct Scratch {
    scaled: [f32; MAX_BLOCK],
    count: [u32; MAX_BLOCK],
}

/// The largest block size (bitsandbytes' 4096).
const MAX_BLOCK: usize = 4096;

/// Quantizes the flat tensor `src` (`src.len()` values; f32, f16 or bf16, 16-bit values converted
/// exactly) to bitsandbytes' 4-bit `ty`: packed codes into `dst[..ceil(n / 2)]`, one absmax per block
/// into `absmax[..ceil(n / blocksize)]` (see the module docs).
///
/// Errors (nothing written): `InvalidArgument` for an empty source or a block size bitsandbytes does
/// not accept; `BufferTooSmall` when `dst` or `absmax` is too short. `NonFinite` (naming the first bad
/// index) for a NaN or an infinity, with `dst[..ceil(n / 2)]` and `absmax[..blocks]` zero-filled.
pub fn bnb4_quantize(
    ty: Bnb4Type,
    src: Src,
    blocksize: usize,
    dst: &mut [u8],
    absmax: &mut [f32],
) -> Result<()> {
    let n = src.len();
    check_quantize(n, blocksize, dst, absmax)?;
    let (bytes, nb) = (bnb4_packed_len(n), bnb4_absmax_len(n, blocksize));
    let exec = Exec::current();
    let t = exec.threads_for(n, nb);
    // Each job takes whole blocks: a block of an even size starts on a byte.
    let ranges = par::split(nb, t.max(1), 1);
    let mut jobs = Vec::with_capacity(ranges.len());
    let (mut d, mut a) = (&mut dst[..bytes], &mut absmax[..nb]);
    for r in ranges {
        let first = r.start * blocksize;
        let last = (r.end * blocksize).min(n);
        let (d0, d1) = std::mem::take(&mut d).split_at_mut((last - first).div_ceil(2));
        let (a0, a1) = std::mem::take(&mut a).split_at_mut(r.len());
        (d, a) = (d1, a1);
        jobs.push((r, d0, a0));
    }
    let ok = std::sync::atomic::AtomicBool::new(true);
    #[cfg(target_arch = "x86_64")]
    let bounds: [f32; 15] = ty.bounds().map(f32::from_bits);
    par::run(jobs, |(blocks, d, a)| {
        let mut x = [0f32; MAX_BLOCK];
        let mut q = [0u8; MAX_BLOCK];
        let mut scratch = Scratch {
            scaled: [0f32; MAX_BLOCK],
            count: [0u32; MAX_BLOCK],
        };
        // The full blocks of an f32 source at the AVX2 levels: one pass per block in one call.
        #[cfg(target_arch = "x86_64")]
        let skip = match src {
            Src::F32(s) if matches!(exec.level, SimdLevel::Avx2 | SimdLevel::Avx512) => {
                let full = blocks.len() - usize::from(blocks.end * blocksize > n);
                let x = &s[blocks.start * blocksize..(blocks.start + full) * blocksize];
                // SAFETY: these levels are only in force when the CPU has AVX2 (see `SimdLevel`).
                let (order, a) = (ty.order(), &mut a[..full]);
                if !unsafe { x86::avx2::full_blocks(x, blocksize, &bounds, order, d, a) } {
                    ok.store(false, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                full
            }
            _ => 0,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let skip = 0;
        for (j, b) in blocks.enumerate().skip(skip) {
            let start = b * blocksize;
            let len = blocksize.min(n - start);
            let xs: &[f32] = match src {
                Src::F32(s) => &s[start..start + len],
                _ => {
                    src.convert(start, &mut x[..len]);
                    &x[..len]
                }
            };
            let bits = absmax_bits(exec.level, xs);
            if bits >= 0x7F80_0000 {
                ok.store(false, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            let last = len < blocksize;
            let out = &mut d[j * blocksize / 2..];
            // The AVX2 body codes the whole 8-value groups; the portable code the rest.
            #[cfg(target_arch = "x86_64")]
            let (done, stored) = if matches!(exec.level, SimdLevel::Avx2 | SimdLevel::Avx512) {
                let m = len / 8 * 8;
                let amax = f32::from_bits(bits);
                let am = amax.max(ABSMAX_FLOOR);
                // SAFETY: these levels are only in force when the CPU has AVX2 (see `SimdLevel`).
                unsafe {
                    if last {
                        x86::avx2::codes::<true>(&xs[..m], am, &bounds, ty.order(), out);
                    } else {
                        x86::avx2::codes::<false>(&xs[..m], 1.0 / am, &bounds, ty.order(), out);
                    }
                }
                (m, if last { am } else { amax })
            } else {
                (0, 0.0)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let (done, stored) = (0, 0.0);
            a[j] = stored;
            if done < len {
                let args = (ty, &xs[done..], f32::from_bits(bits), last);
                let rest = len - done;
                // The same scale as the AVX2 body's: the block's absmax, passed in.
                a[j] = block_codes(args, &mut q[..rest], &mut scratch);
                if rest % 2 == 1 {
                    q[rest] = ty.order()[bucket(ty.bounds(), 0.0)];
                }
                let out = &mut out[done / 2..];
                for (o, pair) in out
                    .iter_mut()
                    .zip(q[..rest.div_ceil(2) * 2].chunks_exact(2))
                {
                    *o = (pair[0] << 4) | pair[1];
                }
            }
        }
    });
    if ok.into_inner() {
        return Ok(());
    }
    dst[..bytes].fill(0);
    absmax[..nb].fill(0.0);
    src.check_finite("src")?;
    Err(QuantError::Internal(
        "src: a non-finite block without a non-finite value".into(),
    ))
}

fn check_dequantize(
    n: usize,
    blocksize: usize,
    src: &[u8],
    absmax: &[f32],
    dst: &[f32],
) -> Result<()> {
    check_n(n)?;
    check_blocksize(blocksize)?;
    check_bytes("src", src.len(), bnb4_packed_len(n))?;
    let nb = bnb4_absmax_len(n, blocksize);
    check_len("absmax", absmax.len(), nb)?;
    check_len("dst", dst.len(), n)?;
    check_finite(&absmax[..nb], "absmax")
}

/// Inverse of [`bnb4_quantize`]: `dst[i] = code_book[code i] * absmax[i / blocksize]` into
/// `dst[..n]` (bitsandbytes' `dequantize_4bit`). Errors (nothing written): `InvalidArgument` for
/// `n` 0 or an unaccepted block size; `BufferTooSmall` for a short `src`, `absmax` or `dst`;
/// `NonFinite` for a NaN or infinite absmax.
pub fn bnb4_dequantize(
    ty: Bnb4Type,
    src: &[u8],
    absmax: &[f32],
    n: usize,
    blocksize: usize,
    dst: &mut [f32],
) -> Result<()> {
    check_dequantize(n, blocksize, src, absmax, dst)?;
    let book: [f32; 16] = ty.book().map(f32::from_bits);
    let exec = Exec::current();
    let t = exec.threads_for(n, bnb4_absmax_len(n, blocksize));
    // Pieces of a multiple of 64 values: each starts on a byte, and a byte's two values share a block.
    par::for_elements(t, n, dst, |r, out| {
        let mut i = r.start;
        let mut rest = out;
        while !rest.is_empty() {
            // Up to the end of the block of value i.
            let len = (blocksize - i % blocksize).min(rest.len());
            let (seg, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            let a = absmax[i / blocksize];
            let bytes = &src[i / 2..(i + len).div_ceil(2)];
            let mut pairs = seg.chunks_exact_mut(2);
            for (o, &byte) in (&mut pairs).zip(bytes) {
                o[0] = book[(byte >> 4) as usize] * a;
                o[1] = book[(byte & 15) as usize] * a;
            }
            if let [o] = pairs.into_remainder() {
                *o = book[(bytes[len / 2] >> 4) as usize] * a;
            }
            i += len;
        }
    });
    Ok(())
}

/// Scalar reference of [`bnb4_quantize`] for f32 sources (same contract), value by value from the
/// definition (a linear search of the midpoints).
pub fn bnb4_quantize_ref(
    ty: Bnb4Type,
    src: &[f32],
    blocksize: usize,
    dst: &mut [u8],
    absmax: &mut [f32],
) -> Result<()> {
    let n = src.len();
    check_quantize(n, blocksize, dst, absmax)?;
    let (bytes, nb) = (bnb4_packed_len(n), bnb4_absmax_len(n, blocksize));
    if let Err(e) = check_finite(src, "src") {
        dst[..bytes].fill(0);
        absmax[..nb].fill(0.0);
        return Err(e);
    }
    let code_of = |v: f32| -> u8 {
        let bounds = ty.bounds();
        let pos = (0..15)
            .find(|&i| v <= f32::from_bits(bounds[i]))
            .unwrap_or(15);
        ty.order()[pos]
    };
    let mut codes = vec![0u8; bytes * 2];
    for b in 0..nb {
        let block = &src[b * blocksize..((b + 1) * blocksize).min(n)];
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let am = amax.max(ABSMAX_FLOOR);
        let partial = block.len() < blocksize;
        absmax[b] = if partial { am } else { amax };
        for (i, &v) in block.iter().enumerate() {
            let scaled = if partial { v / am } else { v * (1.0 / am) };
            codes[b * blocksize + i] = code_of(scaled.clamp(-1.0, 1.0));
        }
    }
    if n % 2 == 1 {
        codes[n] = code_of(0.0);
    }
    for (o, pair) in dst[..bytes].iter_mut().zip(codes.chunks_exact(2)) {
        *o = (pair[0] << 4) | pair[1];
    }
    Ok(())
}

/// Scalar reference of [`bnb4_dequantize`] (same contract).
pub fn bnb4_dequantize_ref(
    ty: Bnb4Type,
    src: &[u8],
    absmax: &[f32],
    n: usize,
    blocksize: usize,
    dst: &mut [f32],
) -> Result<()> {
    check_dequantize(n, blocksize, src, absmax, dst)?;
    for i in 0..n {
        let code = (src[i / 2] >> (4 * (1 - i % 2))) & 15;
        dst[i] = ty.value(code) * absmax[i / blocksize];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_the_f32_midpoints_of_the_sorted_books() {
        for ty in [Bnb4Type::Nf4, Bnb4Type::Fp4] {
            let sorted: Vec<f32> = ty.order().iter().map(|&c| ty.value(c)).collect();
            assert!(sorted.windows(2).all(|w| w[0] <= w[1]), "{ty:?}");
            for (i, &b) in ty.bounds().iter().enumerate() {
                assert_eq!(
                    (sorted[i] + sorted[i + 1]) / 2.0,
                    f32::from_bits(b),
                    "{ty:?} {i}"
                );
            }
        }
    }

    #[test]
    fn block_sizes() {
        for bs in [32, 64, 128, 256, 512, 1024, 2048, 4096] {
            assert!(check_blocksize(bs).is_ok());
        }
        for bs in [0, 16, 48, 96, 8192] {
            assert!(check_blocksize(bs).is_err());
        }
    }
}
