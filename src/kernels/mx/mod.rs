//! OCP Microscaling (MX) formats (MXFP8 E4M3/E5M2, MXFP6 E2M3/E3M2, MXFP4, MXINT8) and NVFP4
//! ([`nvfp4`]): blocks of elements under a shared scale, as checkpoints (compressed-tensors'
//! `mxfp4-` and `mxfp6-pack-quantized` (E2M3), `mxfp8-quantized` (E4M3) and `nvfp4-pack-quantized`)
//! and accelerators store them.
//!
//! # MX (OCP Microscaling Formats v1.0)
//! Each block of 32 consecutive values of a row (the last block of a row may be shorter) shares one
//! E8M0 scale `2^shared`:
//! - `shared = floor(log2(amax)) - emax` (`emax` of the element type, see [`MxElem`]), clamped to
//!   E8M0's range `-127..=127`; `floor(log2)` is exact, read from the bits of the f32 `amax` (so an
//!   `amax` just below a power of two is never rounded up to it, as a float `log2` would). A block
//!   whose `amax` is 0 or an f32 subnormal gets `shared = -127` (byte 0), as torchao's `to_mx`, which
//!   reads the exponent field of `amax`, gives it.
//! - each element `code = round_half_even(x / 2^shared)` in the element type, saturating to its
//!   largest normal (MXINT8: `clamp(round_half_even(x / 2^shared * 64), -127, 127)`). The division
//!   is exact (a power of two), so every tie of the element grid is a true tie.
//! - decoded `x' = value(code) * 2^shared` (exact in f32).
//!
//! Scales are one byte per block, `shared + 127` (E8M0, bias 127; the quantizer writes 0..=254; 0xFF
//! is NaN and decodes its whole block to NaN). Packed codes, each row starting on a byte: 8-bit types
//! one a byte, FP4 two a byte with the even column in the low nibble (compressed-tensors'
//! `pack_fp4_to_uint8`, vLLM), FP6 four in three bytes little-endian (`c0 | c1 << 6 | c2 << 12 |
//! c3 << 18`, compressed-tensors' `pack_fp6_to_uint8`). Float codes are the OCP bit layouts (sign in
//! the top bit of the element).
//!
//! Bit-exact with numpy + ml_dtypes (the element casts `float8_e4m3fn`, `float8_e5m2`,
//! `float6_e2m3fn`, `float6_e3m2fn`, `float4_e2m1fn` under the floor rule; fixtures in
//! `tests/data/mx`, `tests/mx.rs`). Other writers differ: compressed-tensors rounds the block
//! maximum's significand to one bit (MXFP4, MXFP8) or three (MXFP6) before taking its exponent
//! (`round_to_power_2`), so it picks a scale twice as large for blocks whose maximum has a
//! significand of at least 1.75 (1.9375 for MXFP6): less clipping, a coarser grid. ggml's MXFP4
//! (type 39, [`super::ggml`]) takes the exponent from `floorf(log2f(amax))` (which can round up
//! just below a power of two), picks the nearest code with the first index on
//! ties (not to even), and stores element `j` and `j + 16` of a block in one byte beside its scale.
//!
//! Inputs must be finite: NaN or infinity is `NonFinite`, with the outputs zero-filled.
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{QuantError, Result};
use crate::kernels::par::{self, Exec};
use crate::kernels::simd::SimdLevel;
use crate::kernels::{check_bytes, check_finite, check_len};

mod elem;
pub mod nvfp4;

pub use elem::MxElem;
use elem::{decode_table, encode_float, encode_int8, encode_ref, pack_row, unpack_code};

/// Values per MX block (the last block of a row may be shorter).
pub const QUANT_MX_BLOCK: usize = 32;

/// MXFP8 with E4M3 elements. The `QUANT_MX_*` codes name the element type of the `quant_mx_*`
/// functions (their `elem` argument).
pub const QUANT_MX_FP8_E4M3: i32 = 0;
/// MXFP8 with E5M2 elements.
pub const QUANT_MX_FP8_E5M2: i32 = 1;
/// MXFP6 with E2M3 elements.
pub const QUANT_MX_FP6_E2M3: i32 = 2;
/// MXFP6 with E3M2 elements.
pub const QUANT_MX_FP6_E3M2: i32 = 3;
/// MXFP4 (E2M1 elements).
pub const QUANT_MX_FP4_E2M1: i32 = 4;
/// MXINT8 (8-bit two's complement elements, value `q / 64`).
pub const QUANT_MX_INT8: i32 = 5;

impl MxElem {
    /// The element type of a `QUANT_MX_*` code, or `InvalidArgument`.
    pub fn from_code(code: i32) -> Result<Self> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::all().get(i).copied())
            .ok_or_else(|| {
                QuantError::invalid(format!(
                    "MX element type {code} is unknown: use QUANT_MX_FP8_E4M3 (0) to QUANT_MX_INT8 (5)"
                ))
            })
    }
}

/// The geometry of an MX or NVFP4 matrix: `rows x cols`, blocks of `block` along each row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Blocks {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) block: usize,
    /// Bytes of one packed row.
    pub(crate) row_bytes: usize,
}

impl Blocks {
    pub(crate) fn new(rows: usize, cols: usize, block: usize, bits: u32) -> Result<Self> {
        let shape = crate::kernels::Shape::new(rows, cols, block)?;
        let row_bytes = elem::packed_row_bytes(bits, cols)
            .filter(|b| b.checked_mul(rows).is_some())
            .ok_or_else(|| QuantError::invalid("the packed size overflows size_t"))?;
        Ok(Self {
            rows,
            cols,
            block: shape.group_len(),
            row_bytes,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub(crate) fn per_row(&self) -> usize {
        self.cols.div_ceil(self.block)
    }

    pub(crate) fn n_blocks(&self) -> usize {
        self.rows * self.per_row()
    }

    pub(crate) fn packed_len(&self) -> usize {
        self.rows * self.row_bytes
    }
}

/// Bytes of the packed codes of a `rows x cols` matrix of `elem` (see the module docs); 0 when
/// the shape is invalid (a zero side, or a size that overflows).
pub fn mx_packed_size(elem: MxElem, rows: usize, cols: usize) -> usize {
    Blocks::new(rows, cols, QUANT_MX_BLOCK, elem.bits())
        .map(|b| b.packed_len())
        .unwrap_or(0)
}

/// Number of E8M0 scales (blocks) of a `rows x cols` matrix: `rows * ceil(cols / 32)`; 0 when the
/// shape is invalid.
pub fn mx_scale_count(rows: usize, cols: usize) -> usize {
    Blocks::new(rows, cols, QUANT_MX_BLOCK, 8)
        .map(|b| b.n_blocks())
        .unwrap_or(0)
}

/// The length checks of the MX quantizer, made before anything is written.
fn check_quantize(src: &[f32], b: &Blocks, dst: &[u8], scales: &[u8]) -> Result<()> {
    check_len("src", src.len(), b.len())?;
    check_bytes("dst", dst.len(), b.packed_len())?;
    check_len("scales", scales.len(), b.n_blocks())
}

/// `shared` of a block whose largest magnitude has the f32 bits `amax_bits` (finite): the exact
/// `floor(log2(amax)) - emax` from the exponent field, clamped to `-127..=127`; zero and f32
/// subnormals (exponent field 0, `floor(log2) <= -127`) give -127.
#[inline(always)]
fn shared_exponent(amax_bits: u32, emax: i32) -> i32 {
    let e = (amax_bits >> 23) as i32;
    if e == 0 {
        -127
    } else {
        (e - 127 - emax).clamp(-127, 127)
    }
}

/// 2^k as an f32 for `k` in `-127..=127` (2^-127 is an f32 subnormal, still exact).
#[inline(always)]
pub(crate) fn pow2_f32(k: i32) -> f32 {
    if k >= -126 {
        f32::from_bits(((k + 127) as u32) << 23)
    } else {
        f32::from_bits(1 << (k + 149))
    }
}

/// The value of an E8M0 scale byte: `2^(byte - 127)`, NaN for 0xFF.
#[inline]
pub fn e8m0_to_f32(byte: u8) -> f32 {
    if byte == 0xFF {
        f32::NAN
    } else {
        pow2_f32(byte as i32 - 127)
    }
}

/// Codes of one block `x` under `2^shared` into `codes` (the division is exact: a multiplication by
/// the power of two `2^-shared`, representable for every `shared`).
#[inline(always)]
fn encode_block(elem: MxElem, x: &[f32], shared: i32, codes: &mut [u8]) {
    let inv = pow2_f32(-shared);
    match elem.float() {
        Some(f) => {
            for (c, &v) in codes.iter_mut().zip(x) {
                *c = encode_float(v * inv, f);
            }
        }
        None => {
            for (c, &v) in codes.iter_mut().zip(x) {
                *c = encode_int8(v * inv);
            }
        }
    }
}

/// MX quantization of a row-major `rows x cols` matrix with elements `elem` (see the module docs):
/// `dst[..mx_packed_size]` receives the packed codes, `scales[..mx_scale_count]` the E8M0 bytes.
///
/// One pass over `src` (each block is checked just before it is quantized); rows are split over the
/// threads in force. Errors: `InvalidArgument` for a zero side or an overflowing size, and
/// `BufferTooSmall` when `src`, `dst` or `scales` is too short (nothing written); `NonFinite`
/// (naming the first bad index) for NaN or infinity in `src`, with the outputs zero-filled.
pub fn mx_quantize(
    elem: MxElem,
    src: &[f32],
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    scales: &mut [u8],
) -> Result<()> {
    let b = Blocks::new(rows, cols, QUANT_MX_BLOCK, elem.bits())?;
    check_quantize(src, &b, dst, scales)?;
    let (dst, scales) = (&mut dst[..b.packed_len()], &mut scales[..b.n_blocks()]);
    let exec = Exec::current();
    let bad_row = AtomicUsize::new(usize::MAX);
    let none = || (&mut [] as &mut [u8], 0);
    par::for_rows(
        exec.threads_for(b.len(), rows),
        rows,
        (dst, b.row_bytes),
        (scales, b.per_row()),
        none(),
        |r, dst, scales, _| {
            for (i, row) in r.clone().enumerate() {
                let x_row = &src[row * cols..(row + 1) * cols];
                let out = &mut dst[i * b.row_bytes..(i + 1) * b.row_bytes];
                let s_row = &mut scales[i * b.per_row()..(i + 1) * b.per_row()];
                if !quantize_row(exec.level, elem, x_row, out, s_row) {
                    bad_row.fetch_min(row, Ordering::Relaxed);
                    return;
                }
            }
        },
    );
    if bad_row.load(Ordering::Relaxed) != usize::MAX {
        dst.fill(0);
        scales.fill(0);
        return check_finite(&src[..b.len()], "src").and(Err(QuantError::Internal(
            "a non-finite block without a non-finite value".into(),
        )));
    }
    Ok(())
}

/// Codes and scales of one row; false (the row left partly written) when a block holds a NaN or an
/// infinity. The same body compiled for AVX2 where the CPU has it: the compiler vectorizes the
/// branch-free encoders 8 lanes wide (IEEE operations either way, so the bytes are the same; measured
/// in `cargo bench --bench kernels`).
fn quantize_row(
    level: SimdLevel,
    elem: MxElem,
    x: &[f32],
    out: &mut [u8],
    scales: &mut [u8],
) -> bool {
    match level {
        // SAFETY: a `SimdLevel` other than `Scalar` is only ever in force when the CPU has it, and
        // both x86 levels include AVX2.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { quantize_row_avx2(elem, x, out, scales) },
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { quantize_row_avx512(elem, x, out, scales) },
        _ => quantize_row_body(elem, x, out, scales),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2(elem: MxElem, x: &[f32], out: &mut [u8], scales: &mut [u8]) -> bool {
    quantize_row_body(elem, x, out, scales)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_row_avx512(elem: MxElem, x: &[f32], out: &mut [u8], scales: &mut [u8]) -> bool {
    quantize_row_body(elem, x, out, scales)
}

#[inline(always)]
fn quantize_row_body(elem: MxElem, x_row: &[f32], out: &mut [u8], scales: &mut [u8]) -> bool {
    let mut codes = [0u8; QUANT_MX_BLOCK];
    let bits = elem.bits();
    for (k, (x, s)) in x_row.chunks(QUANT_MX_BLOCK).zip(scales).enumerate() {
        let amax = x.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7FFF_FFFF));
        if amax >= 0x7F80_0000 {
            return false;
        }
        let shared = shared_exponent(amax, elem.emax());
        *s = (shared + 127) as u8;
        // Blocks of 32 start on a byte boundary in every packing (32 is a multiple of the 2 and 4
        // codes that share bytes).
        let start = k * QUANT_MX_BLOCK * bits as usize / 8;
        if bits == 8 {
            encode_block(elem, x, shared, &mut out[start..start + x.len()]);
        } else {
            let codes = &mut codes[..x.len()];
            encode_block(elem, x, shared, codes);
            pack_row(bits, codes, &mut out[start..]);
        }
    }
    true
}

/// The length checks of the MX dequantizer.
fn check_dequantize(src: &[u8], scales: &[u8], b: &Blocks, dst: &[f32]) -> Result<()> {
    check_bytes("src", src.len(), b.packed_len())?;
    check_len("scales", scales.len(), b.n_blocks())?;
    check_len("dst", dst.len(), b.len())
}

/// Inverse of [`mx_quantize`]: `dst[i] = value(code[i]) * 2^(scale byte - 127)` into
/// `dst[..rows*cols]` (a 0xFF scale byte decodes its block to NaN; so do E4M3's NaN codes, and E5M2's
/// infinity codes give infinities). Errors (nothing written): `InvalidArgument` for a zero side or an
/// overflowing size; `BufferTooSmall` when `src`, `scales` or `dst` is too short.
pub fn mx_dequantize(
    elem: MxElem,
    src: &[u8],
    scales: &[u8],
    rows: usize,
    cols: usize,
    dst: &mut [f32],
) -> Result<()> {
    let b = Blocks::new(rows, cols, QUANT_MX_BLOCK, elem.bits())?;
    check_dequantize(src, scales, &b, dst)?;
    let table = decode_table(elem);
    let exec = Exec::current();
    let none = || (&mut [] as &mut [u8], 0);
    par::for_rows(
        exec.threads_for(b.len(), rows),
        rows,
        (&mut dst[..b.len()], cols),
        none(),
        none(),
        |r, out, _, _| {
            for (i, row) in r.enumerate() {
                let packed = &src[row * b.row_bytes..(row + 1) * b.row_bytes];
                let s_row = &scales[row * b.per_row()..(row + 1) * b.per_row()];
                let out = &mut out[i * cols..(i + 1) * cols];
                decode_row(exec.level, elem, &table, packed, s_row, out);
            }
        },
    );
    Ok(())
}

/// Values of one packed row into `out` (its `cols` elements), block by block; compiled for AVX2
/// where the CPU has it, as [`quantize_row`].
fn decode_row(
    level: SimdLevel,
    elem: MxElem,
    table: &[f32; 256],
    packed: &[u8],
    scales: &[u8],
    out: &mut [f32],
) {
    match level {
        // SAFETY: as in `quantize_row`.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 | SimdLevel::Avx512 => unsafe {
            decode_row_avx2(elem, table, packed, scales, out)
        },
        _ => decode_row_body(elem, table, packed, scales, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn decode_row_avx2(
    elem: MxElem,
    table: &[f32; 256],
    packed: &[u8],
    scales: &[u8],
    out: &mut [f32],
) {
    decode_row_body(elem, table, packed, scales, out)
}

#[inline(always)]
fn decode_row_body(
    elem: MxElem,
    table: &[f32; 256],
    packed: &[u8],
    scales: &[u8],
    out: &mut [f32],
) {
    let bits = elem.bits();
    for (k, (o, &s)) in out.chunks_mut(QUANT_MX_BLOCK).zip(scales).enumerate() {
        let scale = e8m0_to_f32(s);
        let start = k * QUANT_MX_BLOCK * bits as usize / 8;
        let p = &packed[start..];
        match bits {
            8 => {
                for (v, &c) in o.iter_mut().zip(p) {
                    *v = table[c as usize] * scale;
                }
            }
            4 => {
                for (pair, &c) in o.chunks_mut(2).zip(p) {
                    pair[0] = table[(c & 0xF) as usize] * scale;
                    if let Some(v) = pair.get_mut(1) {
                        *v = table[(c >> 4) as usize] * scale;
                    }
                }
            }
            _ => {
                for (quad, b) in o.chunks_mut(4).zip(p.chunks_exact(3)) {
                    let word = b[0] as u32 | (b[1] as u32) << 8 | (b[2] as u32) << 16;
                    for (k, v) in quad.iter_mut().enumerate() {
                        *v = table[((word >> (6 * k)) & 0x3F) as usize] * scale;
                    }
                }
            }
        }
    }
}

/// Scalar reference of [`mx_quantize`] (same contract): element by element, `floor(log2(amax))`
/// from the f64 exponent of `amax` and the elements from the exact f64 encoder.
pub fn mx_quantize_ref(
    elem: MxElem,
    src: &[f32],
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    scales: &mut [u8],
) -> Result<()> {
    let b = Blocks::new(rows, cols, QUANT_MX_BLOCK, elem.bits())?;
    check_quantize(src, &b, dst, scales)?;
    if let Err(e) = check_finite(&src[..b.len()], "src") {
        dst[..b.packed_len()].fill(0);
        scales[..b.n_blocks()].fill(0);
        return Err(e);
    }
    let mut codes = vec![0u8; cols];
    for r in 0..rows {
        for k in 0..b.per_row() {
            let x = &src
                [r * cols + k * QUANT_MX_BLOCK..r * cols + ((k + 1) * QUANT_MX_BLOCK).min(cols)];
            let amax = x.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
            let shared = if amax == 0.0 {
                -127
            } else {
                let floor_log2 = ((amax.to_bits() >> 52) & 0x7FF) as i32 - 1023;
                (floor_log2 - elem.emax()).clamp(-127, 127)
            };
            scales[r * b.per_row() + k] = (shared + 127) as u8;
            for (j, &v) in x.iter().enumerate() {
                let y = (v as f64 / 2f64.powi(shared)) as f32; // exact
                codes[k * QUANT_MX_BLOCK + j] = encode_ref(y, elem);
            }
        }
        pack_row(
            elem.bits(),
            &codes,
            &mut dst[r * b.row_bytes..(r + 1) * b.row_bytes],
        );
    }
    Ok(())
}

/// Scalar reference of [`mx_dequantize`] (same contract).
pub fn mx_dequantize_ref(
    elem: MxElem,
    src: &[u8],
    scales: &[u8],
    rows: usize,
    cols: usize,
    dst: &mut [f32],
) -> Result<()> {
    let b = Blocks::new(rows, cols, QUANT_MX_BLOCK, elem.bits())?;
    check_dequantize(src, scales, &b, dst)?;
    for r in 0..rows {
        let row = &src[r * b.row_bytes..(r + 1) * b.row_bytes];
        for c in 0..cols {
            let s = scales[r * b.per_row() + c / QUANT_MX_BLOCK];
            let v = elem::decode_ref(unpack_code(elem.bits(), row, c), elem);
            dst[r * cols + c] = if s == 0xFF {
                f32::NAN
            } else {
                (v as f64 * 2f64.powi(s as i32 - 127)) as f32
            };
        }
    }
    Ok(())
}
