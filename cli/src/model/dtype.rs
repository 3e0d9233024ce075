//! GGML tensor types as GGUF stores them (`enum ggml_type`): ids, names, block geometry, and the
//! dequantization of the types the quant library (or a plain cast) can decode.
use std::fmt;

use anyhow::{bail, Result};
use half::{bf16, f16};
use quant::kernels::ggml::{ggml_dequantize, GgmlType};

/// A GGML tensor type id. Every id ggml defines is known by name and block geometry (so a file
/// holding any of them can be read, listed and copied); [`DType::ggml`] says which ones the quant
/// library quantizes, and [`dequantize`] decodes F32, F16, BF16 and those.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct DType(pub u32);

/// (id, name as llama.cpp prints it, values per block, bytes per block) for every id ggml defines;
/// ids ggml retired (4, 5, 31..33, 36..38) are absent, so files using them are refused by name.
const TYPES: &[(u32, &str, usize, usize)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
    (42, "Q2_0", 64, 18),
];

impl DType {
    pub const F32: DType = DType(0);
    pub const F16: DType = DType(1);
    pub const Q4_0: DType = DType(2);
    pub const Q4_1: DType = DType(3);
    pub const Q5_0: DType = DType(6);
    pub const Q5_1: DType = DType(7);
    pub const Q8_0: DType = DType(8);
    pub const Q2_K: DType = DType(10);
    pub const Q3_K: DType = DType(11);
    pub const Q4_K: DType = DType(12);
    pub const Q5_K: DType = DType(13);
    pub const Q6_K: DType = DType(14);
    pub const IQ4_NL: DType = DType(20);
    pub const IQ4_XS: DType = DType(23);
    pub const MXFP4: DType = DType(39);
    pub const NVFP4: DType = DType(40);
    pub const BF16: DType = DType(30);

    fn entry(self) -> Option<&'static (u32, &'static str, usize, usize)> {
        TYPES.iter().find(|t| t.0 == self.0)
    }

    /// True for an id ggml defines.
    pub fn is_known(self) -> bool {
        self.entry().is_some()
    }

    /// llama.cpp's upper-case name ("Q4_K", "F32"), or `None` for an unknown id.
    pub fn name(self) -> Option<&'static str> {
        self.entry().map(|t| t.1)
    }

    /// The type named `name` (case-insensitive: "q8_0", "Q8_0", "bf16").
    pub fn from_name(name: &str) -> Option<DType> {
        TYPES
            .iter()
            .find(|t| t.1.eq_ignore_ascii_case(name))
            .map(|t| DType(t.0))
    }

    /// Values per block (1 for the plain types).
    pub fn block_size(self) -> Option<usize> {
        self.entry().map(|t| t.2)
    }

    /// Bytes per block.
    pub fn type_size(self) -> Option<usize> {
        self.entry().map(|t| t.3)
    }

    /// Bytes of `n` values, `None` for an unknown type, `n` not a multiple of the block, or overflow.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let (bs, ts) = (self.block_size()? as u64, self.type_size()? as u64);
        if n % bs != 0 {
            return None;
        }
        (n / bs).checked_mul(ts)
    }

    /// The quant library's block type for this id (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K ... Q6_K,
    /// IQ4_NL, IQ4_XS, MXFP4, NVFP4, TQ1_0, TQ2_0).
    pub fn ggml(self) -> Option<GgmlType> {
        GgmlType::from_id(self.0 as i32)
    }

    /// True when [`dequantize`] decodes this type.
    pub fn can_dequantize(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16) || self.ggml().is_some()
    }

    /// Bits per weight of a full block.
    pub fn bits_per_weight(self) -> Option<f64> {
        Some(self.type_size()? as f64 * 8.0 / self.block_size()? as f64)
    }
}

impl From<GgmlType> for DType {
    fn from(t: GgmlType) -> Self {
        DType(t.id() as u32)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "ggml type {}", self.0),
        }
    }
}

/// Decodes `out.len()` values of type `dtype` from `src` into `out` (f32, exact for F16/BF16; the
/// library's ggml dequantizers for the block types). `src` must hold exactly those values.
pub fn dequantize(dtype: DType, src: &[u8], out: &mut [f32]) -> Result<()> {
    let n = out.len() as u64;
    match dtype.bytes_for(n) {
        Some(b) if b == src.len() as u64 => {}
        Some(b) => bail!("{n} {dtype} values take {b} bytes, got {}", src.len()),
        None => bail!("{n} values cannot be stored as {dtype}"),
    }
    if out.is_empty() {
        return Ok(());
    }
    match dtype {
        DType::F32 => {
            for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::F16 => {
            for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            }
        }
        DType::BF16 => {
            for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            }
        }
        _ => match dtype.ggml() {
            Some(t) => ggml_dequantize(t, src, out.len(), out)?,
            None => bail!("{dtype} cannot be dequantized by this tool (it decodes F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4, NVFP4, TQ1_0, TQ2_0)"),
        },
    }
    Ok(())
}

/// `bytes` seen as the little-endian f32 values they hold, without a copy, when the machine is
/// little-endian and `bytes` is 4-aligned and a whole number of values (a mapped GGUF file aligns its
/// tensors to 32 bytes); `None` otherwise.
pub fn f32_in_place(bytes: &[u8]) -> Option<&[f32]> {
    if cfg!(target_endian = "big") {
        return None;
    }
    // SAFETY: every bit pattern is a valid f32, and align_to puts only aligned, whole values in the
    // middle part.
    let (head, mid, tail) = unsafe { bytes.align_to::<f32>() };
    (head.is_empty() && tail.is_empty()).then_some(mid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        assert_eq!(DType::from_name("q4_k"), Some(DType::Q4_K));
        assert_eq!(DType::Q6_K.type_size(), Some(210));
        // The non-linear 4-bit types, under llama.cpp's names (ggml's type_name "iq4_nl", "mxfp4").
        assert_eq!(DType::from_name("MXFP4"), Some(DType::MXFP4));
        assert_eq!(DType::from_name("iq4_nl"), Some(DType::IQ4_NL));
        assert_eq!(DType::MXFP4.ggml(), Some(GgmlType::MXFP4));
        assert_eq!(DType::IQ4_NL.ggml(), Some(GgmlType::IQ4_NL));
        assert_eq!(DType::MXFP4.bits_per_weight(), Some(4.25));
        assert_eq!(DType::IQ4_NL.bits_per_weight(), Some(4.5));
        assert_eq!(DType::from_name("iq4_xs"), Some(DType::IQ4_XS));
        assert_eq!(DType::from_name("NVFP4"), Some(DType::NVFP4));
        assert_eq!(DType::IQ4_XS.ggml(), Some(GgmlType::IQ4_XS));
        assert_eq!(DType::NVFP4.ggml(), Some(GgmlType::NVFP4));
        assert_eq!(DType::IQ4_XS.bits_per_weight(), Some(4.25));
        assert_eq!(DType::NVFP4.bits_per_weight(), Some(4.5));
        assert_eq!(DType(4).name(), None);
        assert_eq!(DType(4).to_string(), "ggml type 4");
        for t in GgmlType::all() {
            let d = DType::from(t);
            assert_eq!(d.block_size(), Some(t.block_size()));
            assert_eq!(d.type_size(), Some(t.type_size()));
            assert!(d.name().unwrap().eq_ignore_ascii_case(t.name()));
        }
    }

    #[test]
    fn f32_in_place_only_when_aligned_and_whole() {
        let values = [1.5f32, -2.0, 3.25];
        let mut bytes = vec![0u8; 4 * values.len() + 4];
        // An offset of 0..4 from a 4-aligned start finds one position where the values are aligned.
        let start = (4 - bytes.as_ptr() as usize % 4) % 4;
        for (b, v) in bytes[start..].chunks_exact_mut(4).zip(values) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        let whole = &bytes[start..start + 12];
        assert_eq!(f32_in_place(whole), Some(&values[..]));
        assert_eq!(f32_in_place(&whole[..11]), None);
        assert_eq!(f32_in_place(&bytes[start + 1..start + 9]), None);
        assert_eq!(f32_in_place(&[]), Some(&[][..]));
    }

    #[test]
    fn plain_types_decode() {
        let mut out = [0f32; 2];
        dequantize(DType::F16, &[0x00, 0x3c, 0x00, 0xc0], &mut out).unwrap();
        assert_eq!(out, [1.0, -2.0]);
        dequantize(DType::BF16, &[0x80, 0x3f, 0x00, 0x40], &mut out).unwrap();
        assert_eq!(out, [1.0, 2.0]);
        assert!(dequantize(DType::F32, &[0; 7], &mut out).is_err());
        // IQ4_NL and MXFP4 decode through the library: a zero scale gives zeros; 2^(127-128) * 6.
        let mut out32 = [1f32; 32];
        dequantize(DType::IQ4_NL, &[0; 18], &mut out32).unwrap();
        assert!(out32.iter().all(|&v| v == 0.0));
        let mut rec = [0u8; 17];
        rec[0] = 127;
        rec[1] = 0x05;
        dequantize(DType::MXFP4, &rec, &mut out32).unwrap();
        assert_eq!((out32[0], out32[16]), (3.0, 0.0));
        // IQ4_XS and NVFP4 too: scale d = 1 with 6-bit scale 33 (1) and code 9 (13); UE4M3 scale
        // 0x38 (1, halved) and code 5 (6): 3.
        let mut rec = [0u8; 136];
        rec[..2].copy_from_slice(&0x3C00u16.to_le_bytes());
        rec[2..4].copy_from_slice(&0xAAAAu16.to_le_bytes());
        rec[4..8].fill(0x11);
        rec[8..].fill(0x99);
        let mut out256 = [0f32; 256];
        dequantize(DType::IQ4_XS, &rec, &mut out256).unwrap();
        assert!(out256.iter().all(|&v| v == 13.0));
        let mut rec = [0x55u8; 36];
        rec[..4].fill(0x38);
        let mut out64 = [0f32; 64];
        dequantize(DType::NVFP4, &rec, &mut out64).unwrap();
        assert!(out64.iter().all(|&v| v == 3.0));
        // IQ3_S: known to ggml, not to the library.
        assert!(dequantize(DType(21), &[0; 110], &mut [0f32; 256]).is_err());
    }
}
