//! GGML / GGUF block formats: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, the K-quants Q2_K, Q3_K, Q4_K, Q5_K
//! and Q6_K (in [`k`]), the non-linear 4-bit types IQ4_NL, IQ4_XS, MXFP4 and NVFP4 (in [`nl`]) and
//! the ternary TQ1_0 and TQ2_0 (in [`tq`]),
//! byte-exact with ggml's reference quantizers (`quantize_row_*_ref` in
//! `ggml-quants.c`, what `ggml_quantize_chunk` runs without an importance matrix) and, through
//! [`ggml_quantize_weighted`], with its importance-weighted ones (`quantize_row_*_impl`, what it runs
//! with an imatrix).
//!
//! # Layouts (little-endian; `f16` is IEEE binary16, rounded to nearest even from f32)
//! A row of `n_per_row` values (a multiple of the block size) is cut into consecutive blocks, each
//! stored as a fixed-size record; a row of `nrows x n_per_row` takes `n_per_row / block * type_size`
//! bytes and rows follow each other.
//!
//! | type | id | block | bytes | record | value |
//! |------|----|-------|-------|--------|-------|
//! | Q4_0 | 2  | 32  | 18  | `d: f16, qs[16]` | `(q - 8) * d` |
//! | Q4_1 | 3  | 32  | 20  | `d: f16, m: f16, qs[16]` | `q * d + m` |
//! | Q5_0 | 6  | 32  | 22  | `d: f16, qh: u32, qs[16]` | `(q - 16) * d` |
//! | Q5_1 | 7  | 32  | 24  | `d: f16, m: f16, qh: u32, qs[16]` | `q * d + m` |
//! | Q8_0 | 8  | 32  | 34  | `d: f16, qs: i8[32]` | `q * d` |
//! | Q2_K | 10 | 256 | 84  | `scales[16], qs[64], d, dmin: f16` | see [`k`] |
//! | Q3_K | 11 | 256 | 110 | `hmask[32], qs[64], scales[12], d: f16` | see [`k`] |
//! | Q4_K | 12 | 256 | 144 | `d, dmin: f16, scales[12], qs[128]` | see [`k`] |
//! | Q5_K | 13 | 256 | 176 | `d, dmin: f16, scales[12], qh[32], qs[128]` | see [`k`] |
//! | Q6_K | 14 | 256 | 210 | `ql[128], qh[64], scales: i8[16], d: f16` | see [`k`] |
//! | IQ4_NL | 20 | 32 | 18 | `d: f16, qs[16]` | `d * KVALUES_IQ4NL[q]`, see [`nl`] |
//! | TQ1_0 | 34 | 256 | 54 | `qs[48], qh[4], d: f16` | `(t - 1) * d`, trits, see [`tq`] |
//! | TQ2_0 | 35 | 256 | 66 | `qs[64], d: f16` | `(q - 1) * d`, see [`tq`] |
//! | IQ4_XS | 23 | 256 | 136 | `d: f16, scales_h: u16, scales_l[4], qs[128]` | see [`nl`] |
//! | MXFP4 | 39 | 32 | 17 | `e: u8 (E8M0), qs[16]` | `KVALUES_MXFP4[q] * 2^(e - 128)`, see [`nl`] |
//! | NVFP4 | 40 | 64 | 36 | `d[4]: UE4M3, qs[32]` | see [`nl`] |
//!
//! In the 32-value types (IQ4_NL and MXFP4 included), byte `qs[j]` holds element `j` in its low nibble and element `j + 16` in its
//! high nibble; for Q5 the fifth bit of element `j` is bit `j` of `qh`.
//!
//! # Quantization (ggml's reference, operation for operation, in f32)
//! - Q4_0 / Q5_0: `max` = the first element of largest magnitude (with its sign);
//!   `d = max / -8` (`-16`), `id = d != 0 ? 1/d : 0`, `q = min(15, (int8)(x*id + 8.5))` (`31`, `16.5`):
//!   truncation, not rounding.
//! - Q4_1 / Q5_1: `d = (max - min) / 15` (`31`), `id` as above, `m = min`,
//!   `q = min(15, (int8)((x - min)*id + 0.5))`.
//! - Q8_0: `d = amax / 127`, `q = roundf(x * id)` (ties away from zero).
//!
//! The products and sums are separate f32 operations: Rust never contracts them into a fused
//! multiply-add (and this file never calls `mul_add`), because an FMA changes Q4_0 codes. The
//! float-to-int conversions are those of C compiled for x86-64 (truncation toward zero to 32 bits, then
//! the low byte); a NaN or out-of-range value gives 0 there, which only happens for blocks whose scale
//! is so small (below about 1e-38) that `1/d` overflows.
//!
//! Signed zeros follow ggml's C loops too: Q4_0/Q5_0 keep `max = +0.0` for an all-zero block (so
//! `d = -0.0`, f16 `0x8000`), and Q4_1/Q5_1 keep the first minimum found (`-0.0` once seen before a
//! `+0.0`). gguf-py's numpy `argmax`/`min` may pick the other zero there, so its header then differs in
//! the sign bit of a zero scale or min, and only there (`scripts/gen_ggml_fixtures.py --verify N`
//! measures it: 0 other differences in 200000 random blocks per type); both decode to the same values.
//!
//! # What this library adds to ggml
//! - NaN or infinity in the input is `NonFinite` (ggml quantizes it to garbage).
//! - A block whose f16 scale (or min) would overflow (|value| above 65504: inputs of magnitude
//!   beyond about 5e5 for Q4_0) is `InvalidArgument` instead of an infinite scale in the file.
//! - The dequantizers reject a record whose f16 scale or min is infinite or NaN (`NonFinite`, naming
//!   the block).
//! - Everything is validated before anything is written.
use ::half::f16;

use super::elements::Src;
use super::{check_bytes, check_finite, check_len, Shape};
use crate::error::{try_vec, QuantError, Result};

pub(crate) mod grid;
pub mod k;
pub mod nl;
pub mod tq;

/// GGML type id of Q4_0 (32 values in 18 bytes: f16 scale, 4-bit codes, `(q - 8) * d`).
pub const QUANT_GGML_TYPE_Q4_0: i32 = 2;
/// GGML type id of Q4_1 (32 values in 20 bytes: f16 scale and min, 4-bit codes, `q * d + m`).
pub const QUANT_GGML_TYPE_Q4_1: i32 = 3;
/// GGML type id of Q5_0 (32 values in 22 bytes: f16 scale, 5-bit codes, `(q - 16) * d`).
pub const QUANT_GGML_TYPE_Q5_0: i32 = 6;
/// GGML type id of Q5_1 (32 values in 24 bytes: f16 scale and min, 5-bit codes, `q * d + m`).
pub const QUANT_GGML_TYPE_Q5_1: i32 = 7;
/// GGML type id of Q8_0 (32 values in 34 bytes: f16 scale, int8 codes, `q * d`).
pub const QUANT_GGML_TYPE_Q8_0: i32 = 8;
/// GGML type id of Q2_K (256 values in 84 bytes: sixteen 4-bit sub-block scales and mins, f16
/// super-block scales, 2-bit codes).
pub const QUANT_GGML_TYPE_Q2_K: i32 = 10;
/// GGML type id of Q3_K (256 values in 110 bytes: sixteen 6-bit signed sub-block scales, f16
/// super-block scale, 3-bit codes).
pub const QUANT_GGML_TYPE_Q3_K: i32 = 11;
/// GGML type id of Q4_K (256 values in 144 bytes: super-block f16 scales, eight 6-bit sub-block
/// scales and mins, 4-bit codes).
pub const QUANT_GGML_TYPE_Q4_K: i32 = 12;
/// GGML type id of Q5_K (256 values in 176 bytes: super-block f16 scales, eight 6-bit sub-block
/// scales and mins, 5-bit codes).
pub const QUANT_GGML_TYPE_Q5_K: i32 = 13;
/// GGML type id of Q6_K (256 values in 210 bytes: sixteen int8 sub-block scales, f16 super-block
/// scale, 6-bit codes).
pub const QUANT_GGML_TYPE_Q6_K: i32 = 14;
/// GGML type id of IQ4_NL (32 values in 18 bytes: f16 scale, 4-bit codes indexing 16 non-linear
/// levels, `d * kvalues_iq4nl[q]`).
pub const QUANT_GGML_TYPE_IQ4_NL: i32 = 20;
/// GGML type id of IQ4_XS (256 values in 136 bytes: f16 super-block scale, eight 6-bit scales of
/// 32 values, 4-bit codes indexing IQ4_NL's 16 non-linear levels).
pub const QUANT_GGML_TYPE_IQ4_XS: i32 = 23;
/// GGML type id of TQ1_0 (256 values in 54 bytes: f16 scale, ternary codes `-1, 0, 1` packed five
/// to a byte, `(t - 1) * d`).
pub const QUANT_GGML_TYPE_TQ1_0: i32 = 34;
/// GGML type id of TQ2_0 (256 values in 66 bytes: f16 scale, ternary codes in 2 bits,
/// `(q - 1) * d`).
pub const QUANT_GGML_TYPE_TQ2_0: i32 = 35;
/// GGML type id of MXFP4 (32 values in 17 bytes: E8M0 power-of-two scale, 4-bit E2M1 codes).
pub const QUANT_GGML_TYPE_MXFP4: i32 = 39;
/// GGML type id of NVFP4 (64 values in 36 bytes: four UE4M3 scales of 16 values, 4-bit E2M1 codes;
/// no per-tensor scale).
pub const QUANT_GGML_TYPE_NVFP4: i32 = 40;

/// The GGML block types this library reads and writes.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    IQ4_NL,
    IQ4_XS,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
}

impl GgmlType {
    /// Every supported type, in the order of their ids.
    pub fn all() -> [GgmlType; 16] {
        [
            Self::Q4_0,
            Self::Q4_1,
            Self::Q5_0,
            Self::Q5_1,
            Self::Q8_0,
            Self::Q2_K,
            Self::Q3_K,
            Self::Q4_K,
            Self::Q5_K,
            Self::Q6_K,
            Self::IQ4_NL,
            Self::IQ4_XS,
            Self::TQ1_0,
            Self::TQ2_0,
            Self::MXFP4,
            Self::NVFP4,
        ]
    }

    /// The type with GGML id `id` (`QUANT_GGML_TYPE_*`), or `None` for any other id.
    pub fn from_id(id: i32) -> Option<Self> {
        Self::all().into_iter().find(|t| t.id() == id)
    }

    /// The type with GGML id `id`, or `InvalidArgument` naming the id.
    pub fn from_id_checked(id: i32) -> Result<Self> {
        Self::from_id(id).ok_or_else(|| {
            QuantError::invalid(format!(
                "ggml type {id} is not supported: use Q4_0 (2), Q4_1 (3), Q5_0 (6), Q5_1 (7), \
                 Q8_0 (8), Q2_K (10), Q3_K (11), Q4_K (12), Q5_K (13), Q6_K (14), IQ4_NL (20), \
                 IQ4_XS (23), TQ1_0 (34), TQ2_0 (35), MXFP4 (39) or NVFP4 (40)"
            ))
        })
    }

    /// GGML's id of the type (`enum ggml_type`).
    pub fn id(self) -> i32 {
        match self {
            Self::Q4_0 => QUANT_GGML_TYPE_Q4_0,
            Self::Q4_1 => QUANT_GGML_TYPE_Q4_1,
            Self::Q5_0 => QUANT_GGML_TYPE_Q5_0,
            Self::Q5_1 => QUANT_GGML_TYPE_Q5_1,
            Self::Q8_0 => QUANT_GGML_TYPE_Q8_0,
            Self::Q2_K => QUANT_GGML_TYPE_Q2_K,
            Self::Q3_K => QUANT_GGML_TYPE_Q3_K,
            Self::Q4_K => QUANT_GGML_TYPE_Q4_K,
            Self::Q5_K => QUANT_GGML_TYPE_Q5_K,
            Self::Q6_K => QUANT_GGML_TYPE_Q6_K,
            Self::IQ4_NL => QUANT_GGML_TYPE_IQ4_NL,
            Self::IQ4_XS => QUANT_GGML_TYPE_IQ4_XS,
            Self::TQ1_0 => QUANT_GGML_TYPE_TQ1_0,
            Self::TQ2_0 => QUANT_GGML_TYPE_TQ2_0,
            Self::MXFP4 => QUANT_GGML_TYPE_MXFP4,
            Self::NVFP4 => QUANT_GGML_TYPE_NVFP4,
        }
    }

    /// GGML's name of the type (`ggml_type_name`): "q4_0", ..., "q2_K", ..., "q6_K", "iq4_nl",
    /// "iq4_xs", "tq1_0", "tq2_0", "mxfp4", "nvfp4".
    pub fn name(self) -> &'static str {
        match self {
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Q5_0 => "q5_0",
            Self::Q5_1 => "q5_1",
            Self::Q8_0 => "q8_0",
            Self::Q2_K => "q2_K",
            Self::Q3_K => "q3_K",
            Self::Q4_K => "q4_K",
            Self::Q5_K => "q5_K",
            Self::Q6_K => "q6_K",
            Self::IQ4_NL => "iq4_nl",
            Self::IQ4_XS => "iq4_xs",
            Self::TQ1_0 => "tq1_0",
            Self::TQ2_0 => "tq2_0",
            Self::MXFP4 => "mxfp4",
            Self::NVFP4 => "nvfp4",
        }
    }

    /// [`name`](Self::name) as a static C string.
    pub fn c_name(self) -> &'static std::ffi::CStr {
        match self {
            Self::Q4_0 => c"q4_0",
            Self::Q4_1 => c"q4_1",
            Self::Q5_0 => c"q5_0",
            Self::Q5_1 => c"q5_1",
            Self::Q8_0 => c"q8_0",
            Self::Q2_K => c"q2_K",
            Self::Q3_K => c"q3_K",
            Self::Q4_K => c"q4_K",
            Self::Q5_K => c"q5_K",
            Self::Q6_K => c"q6_K",
            Self::IQ4_NL => c"iq4_nl",
            Self::IQ4_XS => c"iq4_xs",
            Self::TQ1_0 => c"tq1_0",
            Self::TQ2_0 => c"tq2_0",
            Self::MXFP4 => c"mxfp4",
            Self::NVFP4 => c"nvfp4",
        }
    }

    /// Values per block (`ggml_blck_size`): 32, 256 for the K-quants, IQ4_XS, TQ1_0 and TQ2_0, 64
    /// for NVFP4.
    pub fn block_size(self) -> usize {
        match self {
            Self::Q2_K
            | Self::Q3_K
            | Self::Q4_K
            | Self::Q5_K
            | Self::Q6_K
            | Self::IQ4_XS
            | Self::TQ1_0
            | Self::TQ2_0 => k::QK_K,
            Self::NVFP4 => nl::QK_NVFP4,
            _ => 32,
        }
    }

    /// Bytes per block (`ggml_type_size`).
    pub fn type_size(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q2_K => k::Q2_K_BYTES,
            Self::Q3_K => k::Q3_K_BYTES,
            Self::Q4_K => k::Q4_K_BYTES,
            Self::Q5_K => k::Q5_K_BYTES,
            Self::Q6_K => k::Q6_K_BYTES,
            Self::IQ4_NL => 18,
            Self::IQ4_XS => nl::IQ4_XS_BYTES,
            Self::TQ1_0 => tq::TQ1_0_BYTES,
            Self::TQ2_0 => tq::TQ2_0_BYTES,
            Self::MXFP4 => 17,
            Self::NVFP4 => nl::NVFP4_BYTES,
        }
    }

    /// Bytes of a row of `n_per_row` values (`ggml_row_size`), or `None` when `n_per_row` is not a
    /// multiple of the block size (0 gives `Some(0)`, as in ggml).
    pub fn row_size(self, n_per_row: usize) -> Option<usize> {
        if n_per_row % self.block_size() != 0 {
            return None;
        }
        (n_per_row / self.block_size()).checked_mul(self.type_size())
    }

    /// Quantizes one block of `block_size()` values into `type_size()` bytes (ggml's reference).
    fn quantize_block(self, x: &[f32], y: &mut [u8]) {
        match self {
            Self::Q4_0 => quantize_q4_0(x, y),
            Self::Q4_1 => quantize_q4_1(x, y),
            Self::Q5_0 => quantize_q5_0(x, y),
            Self::Q5_1 => quantize_q5_1(x, y),
            Self::Q8_0 => quantize_q8_0(x, y),
            Self::Q2_K => k::quantize_q2_k(x, y),
            Self::Q3_K => k::quantize_q3_k(x, y),
            Self::Q4_K => k::quantize_q4_k(x, y),
            Self::Q5_K => k::quantize_q5_k(x, y),
            Self::Q6_K => k::quantize_q6_k(x, y),
            Self::IQ4_NL => nl::quantize_iq4_nl(x, None, y),
            Self::IQ4_XS => nl::quantize_iq4_xs(x, None, y),
            Self::TQ1_0 => tq::quantize_tq1_0(x, y),
            Self::TQ2_0 => tq::quantize_tq2_0(x, y),
            Self::MXFP4 => nl::quantize_mxfp4(x, y),
            Self::NVFP4 => nl::quantize_nvfp4(x, y),
        }
    }

    /// Quantizes one block of `block_size()` values `x` with its importance weights `qw` (one per
    /// value, the imatrix entries of the block's columns) into `type_size()` bytes, as ggml's
    /// `quantize_row_*_impl` does for that block when `ggml_quantize_chunk` is given an imatrix.
    ///
    /// `row_sigma2` is the statistic of the whole row the 32-value types weigh with
    /// ([`row_sigma2`] of the row); the K-quants ignore it and compute theirs per super-block, and
    /// IQ4_NL and IQ4_XS weigh per block or super-block (their own `sigma2`), and Q8_0, TQ1_0,
    /// TQ2_0, MXFP4 and NVFP4 ignore the weights altogether (as ggml does).
    pub(crate) fn quantize_block_weighted(
        self,
        x: &[f32],
        qw: &[f32],
        row_sigma2: f32,
        y: &mut [u8],
    ) {
        match self {
            Self::Q4_0 => quantize_sym_weighted(x, qw, row_sigma2, y, 8, false),
            Self::Q5_0 => quantize_sym_weighted(x, qw, row_sigma2, y, 16, true),
            Self::Q4_1 => quantize_min_weighted(x, qw, row_sigma2, y, 15, false),
            Self::Q5_1 => quantize_min_weighted(x, qw, row_sigma2, y, 31, true),
            Self::Q8_0 => quantize_q8_0(x, y),
            Self::Q2_K => k::quantize_q2_k_weighted(x, qw, y),
            Self::Q3_K => k::quantize_q3_k_weighted(x, qw, y),
            Self::Q4_K => k::quantize_q4_k_weighted(x, qw, y),
            Self::Q5_K => k::quantize_q5_k_weighted(x, qw, y),
            Self::Q6_K => k::quantize_q6_k_weighted(x, qw, y),
            Self::IQ4_NL => nl::quantize_iq4_nl(x, Some(qw), y),
            Self::IQ4_XS => nl::quantize_iq4_xs(x, Some(qw), y),
            Self::TQ1_0 => tq::quantize_tq1_0(x, y),
            Self::TQ2_0 => tq::quantize_tq2_0(x, y),
            Self::MXFP4 => nl::quantize_mxfp4(x, y),
            Self::NVFP4 => nl::quantize_nvfp4(x, y),
        }
    }

    /// Dequantizes one record of `type_size()` bytes into `block_size()` values.
    fn dequantize_block(self, b: &[u8], y: &mut [f32]) {
        match self {
            Self::Q4_0 => dequantize_q4_0(b, y),
            Self::Q4_1 => dequantize_q4_1(b, y),
            Self::Q5_0 => dequantize_q5_0(b, y),
            Self::Q5_1 => dequantize_q5_1(b, y),
            Self::Q8_0 => dequantize_q8_0(b, y),
            Self::Q2_K => k::dequantize_q2_k(b, y),
            Self::Q3_K => k::dequantize_q3_k(b, y),
            Self::Q4_K => k::dequantize_q4_k(b, y),
            Self::Q5_K => k::dequantize_q5_k(b, y),
            Self::Q6_K => k::dequantize_q6_k(b, y),
            Self::IQ4_NL => nl::dequantize_iq4_nl(b, y),
            Self::IQ4_XS => nl::dequantize_iq4_xs(b, y),
            Self::TQ1_0 => tq::dequantize_tq1_0(b, y),
            Self::TQ2_0 => tq::dequantize_tq2_0(b, y),
            Self::MXFP4 => nl::dequantize_mxfp4(b, y),
            Self::NVFP4 => nl::dequantize_nvfp4(b, y),
        }
    }

    /// Byte offsets of the f16 header fields (scales and mins) of a record.
    fn header_offsets(self) -> &'static [usize] {
        match self {
            Self::Q4_0 | Self::Q5_0 | Self::Q8_0 | Self::IQ4_NL | Self::IQ4_XS => &[0],
            // MXFP4's exponent is checked by bad_header; every NVFP4 scale byte is finite.
            Self::MXFP4 | Self::NVFP4 => &[],
            Self::Q4_1 | Self::Q5_1 | Self::Q4_K | Self::Q5_K => &[0, 2],
            Self::Q2_K => &[80, 82],
            Self::Q3_K => &[108],
            Self::Q6_K => &[208],
            Self::TQ1_0 => &[tq::TQ1_0_D],
            Self::TQ2_0 => &[tq::TQ2_0_D],
        }
    }

    /// The first f16 header field of a record that is infinite or NaN, as `(offset, value)`; for
    /// MXFP4 (no f16 header) the exponent byte at offset 0 when it makes a code of the record decode
    /// to infinity, with that value.
    fn bad_header(self, record: &[u8]) -> Option<(usize, f32)> {
        if self == Self::MXFP4 {
            return nl::mxfp4_overflow(record).map(|v| (0, v));
        }
        self.header_offsets().iter().find_map(|&o| {
            let h = u16::from_le_bytes([record[o], record[o + 1]]);
            (h & 0x7C00 == 0x7C00).then(|| (o, f16::from_bits(h).to_f32()))
        })
    }
}

/// Largest input magnitude for which no type's f16 header can overflow (every header is at most a
/// few times the block's largest magnitude, far below 65504): above it the quantizer first checks
/// each block.
const SAFE_ABSMAX: f32 = 1000.0;

/// f32 -> f16 bits, round to nearest even (`GGML_FP32_TO_FP16`).
pub(crate) fn fp16(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// The f16 at `b[0..2]` (little-endian) as f32 (`GGML_FP16_TO_FP32`, exact).
pub(crate) fn read_fp16(b: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// C's `(int8_t)v` for a float `v` as compiled for x86-64 (`cvttss2si` then the low byte): truncation
/// toward zero, wrapping to 8 bits; NaN and values outside the 32-bit range give 0. Returned widened to
/// `i32`, as C's integer promotion does before `MIN`.
pub(crate) fn c_float_to_i8(v: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        i32::from((v as i32) as i8)
    } else {
        0
    }
}

fn quantize_q4_0(x: &[f32], y: &mut [u8]) {
    quantize_sym_nibbles(x, y, 8.0, 8.5, 15, false);
}

fn quantize_q5_0(x: &[f32], y: &mut [u8]) {
    quantize_sym_nibbles(x, y, 16.0, 16.5, 31, true);
}

/// Q4_0 (`half` 8) and Q5_0 (`half` 16): `d = max / -half`, `q = min(top, (int8)(x*id + bias))`.
fn quantize_sym_nibbles(x: &[f32], y: &mut [u8], half: f32, bias: f32, top: i32, five: bool) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -half;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    y[0..2].copy_from_slice(&fp16(d).to_le_bytes());
    let code = |v: f32| c_float_to_i8(v * id + bias).min(top) as u8;
    write_nibbles(y, five, |j| code(x[j]));
}

fn quantize_q4_1(x: &[f32], y: &mut [u8]) {
    quantize_min_nibbles(x, y, 15.0, 15, false);
}

fn quantize_q5_1(x: &[f32], y: &mut [u8]) {
    quantize_min_nibbles(x, y, 31.0, 31, true);
}

/// Q4_1 (`levels` 15) and Q5_1 (31): `d = (max - min) / levels`, `m = min`,
/// `q = min(top, (int8)((x - min)*id + 0.5))`.
fn quantize_min_nibbles(x: &[f32], y: &mut [u8], levels: f32, top: i32, five: bool) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / levels;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    y[0..2].copy_from_slice(&fp16(d).to_le_bytes());
    y[2..4].copy_from_slice(&fp16(min).to_le_bytes());
    let code = |v: f32| c_float_to_i8((v - min) * id + 0.5).min(top) as u8;
    write_nibbles(&mut y[2..], five, |j| code(x[j]));
}

/// Writes the codes of a 32-value block (`code(j)`, element `j`) after its leading f16: for 4-bit
/// types `qs` at offset 2; for 5-bit types `qh` (u32, bit `j` = fifth bit of element `j`) at offset 2
/// and `qs` at offset 6. Byte `qs[j]` holds element `j` (low nibble) and `j + 16` (high nibble).
fn write_nibbles(y: &mut [u8], five: bool, code: impl Fn(usize) -> u8) {
    let qs_at = if five { 6 } else { 2 };
    let mut qh = 0u32;
    for j in 0..16 {
        let q0 = code(j);
        let q1 = code(j + 16);
        y[qs_at + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= u32::from((q0 & 0x10) >> 4) << j;
        qh |= u32::from((q1 & 0x10) >> 4) << (j + 16);
    }
    if five {
        y[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

fn quantize_q8_0(x: &[f32], y: &mut [u8]) {
    let mut amax = 0.0f32;
    for &v in x {
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    y[0..2].copy_from_slice(&fp16(d).to_le_bytes());
    if amax * id < 8_388_608.0 {
        // Every |v * id| is at most amax * id (products round monotonically), below 2^23: there
        // roundf is the truncation plus one step away from zero when the fraction is at least a half
        // (the fraction is exact), and `(int8_t)` of it is a wrap to 8 bits. Branch-free, so the
        // loop vectorizes: three times the speed of calling roundf.
        let mut codes = [0i32; 32];
        for (c, &v) in codes.iter_mut().zip(x) {
            let r = v * id;
            let t = r as i32;
            let f = r - t as f32;
            *c = t + i32::from(f >= 0.5) - i32::from(f <= -0.5);
        }
        for (q, c) in y[2..34].iter_mut().zip(codes) {
            *q = c as i8 as u8;
        }
    } else {
        quantize_q8_0_codes_ref(x, id, &mut y[2..34]);
    }
}

/// The codes of a Q8_0 block as ggml's reference writes them: `(int8_t)roundf(v * id)` (Rust's
/// `round` is roundf: ties away from zero).
fn quantize_q8_0_codes_ref(x: &[f32], id: f32, q: &mut [u8]) {
    for (q, &v) in q.iter_mut().zip(x) {
        *q = c_float_to_i8((v * id).round()) as u8;
    }
}

/// The row statistic of ggml's importance path for the 32-value types: the mean square of the row,
/// `sum(x^2) / n` accumulated in order in f32 (`sigma2` in `quantize_row_q4_0_impl` and its siblings).
pub(crate) fn row_sigma2(row: &[f32]) -> f32 {
    let mut sum_x2 = 0.0f32;
    for &v in row {
        sum_x2 += v * v;
    }
    sum_x2 / row.len() as f32
}

/// Q4_0 (`nmax` 8) and Q5_0 (16) on the importance path (`quantize_row_q4_0_impl` /
/// `_q5_0_impl`): instead of the reference's `d = max / -nmax`, the scale is fitted by
/// `make_qx_quants` (19 candidate scales, least squares) under the weights
/// `qw * sqrt(sigma2 + x^2)`, and the codes are that fit's (`l + nmax`, rounded to nearest).
fn quantize_sym_weighted(x: &[f32], qw: &[f32], sigma2: f32, y: &mut [u8], nmax: i32, five: bool) {
    let mut weight = [0f32; 32];
    k::impl_weights(x, qw, sigma2, &mut weight);
    let mut l = [0i8; 32];
    let d = k::make_qx_quants(nmax, x, Some(&weight), &mut l);
    y[0..2].copy_from_slice(&fp16(d).to_le_bytes());
    write_nibbles(y, five, |j| l[j] as u8);
}

/// Q4_1 (`nmax` 15) and Q5_1 (31) on the importance path (`quantize_row_q4_1_impl` /
/// `_q5_1_impl`): scale and min fitted by `make_qkx3_quants` (37 candidate scales, weighted least
/// squares for scale and min) under the weights `qw * sqrt(sigma2 + x^2)`.
fn quantize_min_weighted(x: &[f32], qw: &[f32], sigma2: f32, y: &mut [u8], nmax: i32, five: bool) {
    let mut weight = [0f32; 32];
    k::impl_weights(x, qw, sigma2, &mut weight);
    let mut l = [0u8; 32];
    let mut laux = [0u8; 32];
    let (d, the_min) =
        k::make_qkx2_quants(nmax, x, &weight, &mut l, &mut laux, -0.9, 0.05, 36, false);
    y[0..2].copy_from_slice(&fp16(d).to_le_bytes());
    y[2..4].copy_from_slice(&fp16(-the_min).to_le_bytes());
    write_nibbles(&mut y[2..], five, |j| l[j]);
}

/// Code `j` (0..32) of a 4- or 5-bit record whose `qs` starts at `qs_at` (and `qh` at `qs_at - 4`).
fn code_at(b: &[u8], qs_at: usize, five: bool, j: usize) -> u8 {
    let byte = b[qs_at + (j % 16)];
    let low = if j < 16 { byte & 0x0F } else { byte >> 4 };
    if five {
        let qh = u32::from_le_bytes([b[qs_at - 4], b[qs_at - 3], b[qs_at - 2], b[qs_at - 1]]);
        low | ((((qh >> j) & 1) as u8) << 4)
    } else {
        low
    }
}

fn dequantize_q4_0(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(b);
    for (j, o) in y.iter_mut().enumerate() {
        *o = (i32::from(code_at(b, 2, false, j)) - 8) as f32 * d;
    }
}

fn dequantize_q5_0(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(b);
    for (j, o) in y.iter_mut().enumerate() {
        *o = (i32::from(code_at(b, 6, true, j)) - 16) as f32 * d;
    }
}

fn dequantize_q4_1(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(b);
    let m = read_fp16(&b[2..]);
    for (j, o) in y.iter_mut().enumerate() {
        // Two roundings, as ggml's `x0*d + m` without contraction (and gguf-py's `(d * qs) + m`).
        let p = f32::from(code_at(b, 4, false, j)) * d;
        *o = p + m;
    }
}

fn dequantize_q5_1(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(b);
    let m = read_fp16(&b[2..]);
    for (j, o) in y.iter_mut().enumerate() {
        let p = f32::from(code_at(b, 8, true, j)) * d;
        *o = p + m;
    }
}

fn dequantize_q8_0(b: &[u8], y: &mut [f32]) {
    let d = read_fp16(b);
    for (o, &q) in y.iter_mut().zip(&b[2..34]) {
        *o = f32::from(q as i8) * d;
    }
}

/// Quantizes `nrows` rows of `n_per_row` values (`src`, row-major) to GGML blocks of type `ty` in
/// `dst` (rows back to back, each `ty.row_size(n_per_row)` bytes), like ggml's `quantize_*` without an
/// importance matrix. Returns the number of bytes written, `nrows * row_size`.
///
/// Errors (nothing written): `nrows` or `n_per_row` 0, or a size overflow, or `n_per_row` not a
/// multiple of the block size (`InvalidArgument`); `src.len() != nrows * n_per_row` (`ShapeMismatch`);
/// `dst` too short (`BufferTooSmall`); NaN or infinity in `src` (`NonFinite`, first index); a block
/// whose f16 scale or min would overflow (`InvalidArgument`, naming the block).
pub fn ggml_quantize(
    ty: GgmlType,
    src: &[f32],
    nrows: usize,
    n_per_row: usize,
    dst: &mut [u8],
) -> Result<usize> {
    ggml_quantize_src(ty, Src::F32(src), nrows, n_per_row, dst)
}

/// [`ggml_quantize`] of an f32, f16 or bf16 source: 16-bit values are converted one block at a time
/// into a stack buffer (no allocation), so the bytes equal those of the same values given as f32.
/// Errors as [`ggml_quantize`].
pub fn ggml_quantize_src(
    ty: GgmlType,
    src: Src,
    nrows: usize,
    n_per_row: usize,
    dst: &mut [u8],
) -> Result<usize> {
    let need = check_quantize_args(ty, src, nrows, n_per_row, dst.len())?;
    src.check_finite("src")?;
    check_headers(ty, src)?;
    let (bs, ts) = (ty.block_size(), ty.type_size());
    let mut block = [0f32; k::QK_K];
    for (i, y) in dst[..need].chunks_exact_mut(ts).enumerate() {
        match src {
            Src::F32(s) => ty.quantize_block(&s[i * bs..(i + 1) * bs], y),
            _ => {
                src.convert(i * bs, &mut block[..bs]);
                ty.quantize_block(&block[..bs], y);
            }
        }
    }
    Ok(need)
}

/// Checks a per-column importance vector (`what` names it in errors): one weight per column
/// (`ShapeMismatch`), finite (`NonFinite`) and at least 0 (`InvalidArgument`).
pub(crate) fn check_importance(qw: &[f32], cols: usize, what: &str) -> Result<()> {
    if qw.len() != cols {
        return Err(QuantError::ShapeMismatch(format!(
            "{what} holds {} values but rows of {cols} need one per column",
            qw.len()
        )));
    }
    check_finite(qw, what)?;
    if let Some(i) = qw.iter().position(|&w| w < 0.0) {
        return Err(QuantError::invalid(format!(
            "{what}[{i}] is {}: importance weights must be at least 0",
            qw[i]
        )));
    }
    Ok(())
}

/// [`ggml_quantize_src`] with an importance matrix, as ggml's `ggml_quantize_chunk` with a non-NULL
/// `imatrix` (what `llama-quantize --imatrix` runs): `quant_weights` holds one weight per column
/// (`n_per_row` values, the same for every row). Byte-exact with ggml's `quantize_row_*_impl`
/// functions; Q8_0, TQ1_0, TQ2_0, MXFP4 and NVFP4 ignore the weights, as ggml does (its
/// `quantize_tq1_0` and `quantize_tq2_0` never read them). `None` gives exactly the bytes
/// of [`ggml_quantize_src`]. Returns the number of bytes written, `nrows * row_size`.
///
/// Q4_0 to Q5_1 weigh each value by `qw[j] * sqrt(sigma2 + x[j]^2)` with `sigma2` the row's mean
/// square; the K-quants by the same with `sigma2` taken per super-block (Q2_K its mean square,
/// Q3_K, Q4_K and Q5_K twice that) and Q6_K by `qw[j]` alone; IQ4_NL and IQ4_XS with `sigma2` twice
/// the mean square of the block or super-block. The searches behind them (`make_qx_quants`,
/// `make_qkx3_quants`, `make_qp_quants`) are documented in [`k`], IQ4's in [`nl`].
///
/// Errors (nothing written): those of [`ggml_quantize_src`]; `quant_weights` not of length
/// `n_per_row` (`ShapeMismatch`); a weight NaN or infinite (`NonFinite`, naming its index) or
/// negative (`InvalidArgument`, naming its index). On the weighted path a block's f16 header can
/// overflow for inputs of any size (a fit that extrapolates from a few heavily weighted values), so
/// the records are built in a scratch buffer and copied to `dst` once every header is known to be
/// finite; that buffer is the size of the output (`OutOfMemory` if it cannot be allocated).
pub fn ggml_quantize_weighted(
    ty: GgmlType,
    src: Src,
    nrows: usize,
    n_per_row: usize,
    quant_weights: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<usize> {
    let Some(qw) = quant_weights else {
        return ggml_quantize_src(ty, src, nrows, n_per_row, dst);
    };
    let need = check_quantize_args(ty, src, nrows, n_per_row, dst.len())?;
    check_importance(qw, n_per_row, "quant_weights")?;
    src.check_finite("src")?;
    let (bs, ts) = (ty.block_size(), ty.type_size());
    let row_size = need / nrows;
    let mut out = try_vec(need, 0u8, "weighted GGML records")?;
    let mut scratch = src.scratch(n_per_row)?;
    for (r, out_row) in out.chunks_exact_mut(row_size).enumerate() {
        let row = src.row(r, n_per_row, &mut scratch);
        // Only Q4_0 to Q5_1 use the row statistic; the K-quants, IQ4_NL and IQ4_XS take theirs per
        // block or super-block.
        let sigma2 = match ty {
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 => row_sigma2(row),
            _ => 0.0,
        };
        for (b, y) in out_row.chunks_exact_mut(ts).enumerate() {
            let cols = b * bs..(b + 1) * bs;
            ty.quantize_block_weighted(&row[cols.clone()], &qw[cols], sigma2, y);
            if let Some((_, v)) = ty.bad_header(y) {
                let i = r * (n_per_row / bs) + b;
                return Err(header_overflow(ty, i, v));
            }
        }
    }
    dst[..need].copy_from_slice(&out);
    Ok(need)
}

/// The checks [`ggml_quantize_src`] and [`ggml_quantize_weighted`] share: the shape, the block size,
/// the source length and the room in `dst`. Returns the bytes of the output, `nrows * row_size`.
fn check_quantize_args(
    ty: GgmlType,
    src: Src,
    nrows: usize,
    n_per_row: usize,
    dst_len: usize,
) -> Result<usize> {
    let shape = Shape::new(nrows, n_per_row, 0)?;
    let row_size = ty.row_size(n_per_row).ok_or_else(|| {
        QuantError::invalid(format!(
            "n_per_row is {n_per_row}: {} needs a multiple of its block size {}",
            ty.name(),
            ty.block_size()
        ))
    })?;
    if src.len() != shape.len() {
        return Err(QuantError::ShapeMismatch(format!(
            "src holds {} values but {nrows} rows of {n_per_row} are {}",
            src.len(),
            shape.len()
        )));
    }
    // Cannot overflow: a row takes fewer bytes than its f32 values, and Shape bounds those.
    let need = nrows * row_size;
    check_bytes("dst", dst_len, need)?;
    Ok(need)
}

/// The error of block `i` whose f16 scale or min overflows to `v`.
fn header_overflow(ty: GgmlType, i: usize, v: f32) -> QuantError {
    let bs = ty.block_size();
    QuantError::invalid(format!(
        "block {i} (values {}..{}): its f16 scale or min overflows to {v}: {} cannot store \
         values this large (an f16 holds at most 65504)",
        i * bs,
        (i + 1) * bs,
        ty.name()
    ))
}

/// Checks that no block's f16 header overflows, by quantizing the blocks into a scratch record when
/// the input is large enough for that to be possible.
fn check_headers(ty: GgmlType, src: Src) -> Result<()> {
    let absmax = match src {
        Src::F32(s) => s.iter().fold(0.0f32, |m, v| m.max(v.abs())),
        _ => (0..src.len()).fold(0.0f32, |m, i| m.max(src.get(i).abs())),
    };
    if absmax <= SAFE_ABSMAX {
        return Ok(());
    }
    let bs = ty.block_size();
    let mut record = [0u8; 256];
    let record = &mut record[..ty.type_size()];
    let mut block = [0f32; k::QK_K];
    for i in 0..src.len() / bs {
        src.convert(i * bs, &mut block[..bs]);
        ty.quantize_block(&block[..bs], record);
        if let Some((_, v)) = ty.bad_header(record) {
            return Err(header_overflow(ty, i, v));
        }
    }
    Ok(())
}

/// Dequantizes the first `n` values (`n` a multiple of the block size) of GGML blocks of type `ty` in
/// `src` into `dst[..n]`, like ggml's `dequantize_row_*`.
///
/// Errors (nothing written): `n` 0 or not a multiple of the block size (`InvalidArgument`); `src`
/// shorter than `n / block * type_size` bytes or `dst` shorter than `n` (`BufferTooSmall`); a record
/// whose f16 scale or min is infinite or NaN (`NonFinite`, naming the block).
pub fn ggml_dequantize(ty: GgmlType, src: &[u8], n: usize, dst: &mut [f32]) -> Result<()> {
    let bs = ty.block_size();
    if n == 0 || n % bs != 0 {
        return Err(QuantError::invalid(format!(
            "n is {n}: {} decodes a positive multiple of its block size {bs}",
            ty.name()
        )));
    }
    let ts = ty.type_size();
    let need = (n / bs)
        .checked_mul(ts)
        .ok_or_else(|| QuantError::invalid(format!("n is {n}: the blocks overflow memory")))?;
    check_bytes("src", src.len(), need)?;
    check_len("dst", dst.len(), n)?;
    for (i, record) in src[..need].chunks_exact(ts).enumerate() {
        if let Some((offset, value)) = ty.bad_header(record) {
            return Err(QuantError::NonFinite {
                what: format!("src block {i}: the f16 header at byte {offset}"),
                index: i,
                value,
            });
        }
    }
    for (b, y) in src[..need]
        .chunks_exact(ts)
        .zip(dst[..n].chunks_exact_mut(bs))
    {
        ty.dequantize_block(b, y);
    }
    Ok(())
}

/// One record's values, for the tests of the sibling modules.
#[cfg(test)]
pub(crate) fn dequantize_block_for_tests(ty: GgmlType, b: &[u8], y: &mut [f32]) {
    ty.dequantize_block(b, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_codes_are_the_references() {
        // Blocks whose products land on halves (ties), near them, on integers and at the extremes,
        // at scales from subnormal to large, and random blocks.
        let mut blocks: Vec<[f32; 32]> = Vec::new();
        for scale in [1e-40f32, 1e-20, 1e-3, 1.0, 3.7, 1e10, 3e38] {
            let mut b = [0f32; 32];
            for (j, v) in b.iter_mut().enumerate() {
                let k = j as f32 - 16.0;
                *v = scale * (k * 4.0 + 0.5 * (j % 2) as f32) / 127.0;
            }
            b[31] = scale;
            blocks.push(b);
            for (j, v) in b.iter_mut().enumerate() {
                *v = f32::from_bits(v.to_bits().wrapping_add(j as u32 % 3))
                    * if j % 5 == 0 { -1.0 } else { 1.0 };
            }
            blocks.push(b);
        }
        let mut s = 0x2545_F491u32;
        for _ in 0..20_000 {
            let mut b = [0f32; 32];
            for v in &mut b {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                *v = (s as f32 / u32::MAX as f32 - 0.5) * (1 + s % 1000) as f32;
            }
            blocks.push(b);
        }
        blocks.push([0.0; 32]);
        for b in &blocks {
            let mut fast = [0u8; 34];
            quantize_q8_0(b, &mut fast);
            let d = read_fp16(&fast);
            let amax = b
                .iter()
                .fold(0f32, |m, v| if m > v.abs() { m } else { v.abs() });
            let id = if amax / 127.0 != 0.0 {
                1.0 / (amax / 127.0)
            } else {
                0.0
            };
            let mut want = [0u8; 32];
            quantize_q8_0_codes_ref(b, id, &mut want);
            assert_eq!(fast[2..], want, "block {b:?} (d {d})");
        }
    }

    #[test]
    fn block_level_weighted_quantizer_composes_to_the_row_quantizer() {
        // What GPTQ onto the grids will call: one block at a time, with the row's sigma2.
        let (rows, cols) = (3, 512);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 300.0 * (1 + i / cols) as f32)
            .collect();
        let w: Vec<f32> = (0..cols).map(|i| (i % 13) as f32 * 0.25).collect();
        for ty in GgmlType::all() {
            let (bs, ts) = (ty.block_size(), ty.type_size());
            let mut want = vec![0u8; rows * ty.row_size(cols).unwrap()];
            ggml_quantize_weighted(ty, Src::F32(&x), rows, cols, Some(&w), &mut want).unwrap();
            let mut got = vec![0u8; want.len()];
            for (r, row) in x.chunks_exact(cols).enumerate() {
                let sigma2 = row_sigma2(row);
                for b in 0..cols / bs {
                    let at = (r * cols / bs + b) * ts;
                    let cols = b * bs..(b + 1) * bs;
                    ty.quantize_block_weighted(
                        &row[cols.clone()],
                        &w[cols],
                        sigma2,
                        &mut got[at..at + ts],
                    );
                }
            }
            assert_eq!(got, want, "{}", ty.name());
        }
        assert_eq!(row_sigma2(&[3.0, 4.0]), 12.5);
    }

    #[test]
    fn sizes_are_ggmls() {
        let sizes: Vec<_> = GgmlType::all()
            .iter()
            .map(|t| (t.id(), t.block_size(), t.type_size()))
            .collect();
        assert_eq!(
            sizes,
            [
                (2, 32, 18),
                (3, 32, 20),
                (6, 32, 22),
                (7, 32, 24),
                (8, 32, 34),
                (10, 256, 84),
                (11, 256, 110),
                (12, 256, 144),
                (13, 256, 176),
                (14, 256, 210),
                (20, 32, 18),
                (23, 256, 136),
                (34, 256, 54),
                (35, 256, 66),
                (39, 32, 17),
                (40, 64, 36)
            ]
        );
        assert_eq!(GgmlType::Q4_0.row_size(4096), Some(128 * 18));
        assert_eq!(GgmlType::Q4_0.row_size(33), None);
        assert_eq!(GgmlType::Q6_K.row_size(384), None);
        assert_eq!(GgmlType::from_id(1), None);
        assert_eq!(GgmlType::from_id(14), Some(GgmlType::Q6_K));
    }

    #[test]
    fn c_conversion_wraps_and_zeroes_nan() {
        assert_eq!(c_float_to_i8(8.9), 8);
        assert_eq!(c_float_to_i8(-0.9), 0);
        assert_eq!(c_float_to_i8(300.7), 44);
        assert_eq!(c_float_to_i8(f32::NAN), 0);
        assert_eq!(c_float_to_i8(f32::INFINITY), 0);
        assert_eq!(c_float_to_i8(1e20), 0);
    }

    #[test]
    fn q4_1_keeps_the_first_minimum_like_ggml() {
        // 0.5 then -0.0 (< 0.5) then +0.0 (not < -0.0): min stays -0.0, f16 0x8000.
        let mut x = [0.0f32; 32];
        x[0] = 0.5;
        x[1] = -0.0;
        let mut y = [0u8; 20];
        quantize_q4_1(&x, &mut y);
        assert_eq!(&y[2..4], &[0x00, 0x80]);
    }

    #[test]
    fn q4_0_all_zero_block_has_negative_zero_scale() {
        // ggml: max stays +0.0, d = 0.0 / -8 = -0.0, stored as f16 0x8000; codes (int8)(0 + 8.5) = 8.
        let mut y = [0u8; 18];
        quantize_q4_0(&[0.0; 32], &mut y);
        assert_eq!(&y[..2], &[0x00, 0x80]);
        assert!(y[2..].iter().all(|&b| b == 0x88));
    }
}
