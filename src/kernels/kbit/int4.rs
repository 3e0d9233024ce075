//! INT4 asymmetric quantization (the API's `QUANT_INT4_ASYMMETRIC`): the b-bit kernels of
//! [`super`] with b = 4, and the signed-nibble pack/unpack helpers.
//!
//! Per group: `lo = min(min x, 0)`, `hi = max(max x, 0)`, `scale = (hi - lo) / 15`,
//! `zero = clamp(round_half_even(-lo / scale), 0, 15)`, `q = clamp(round_half_even(x / scale) + zero, 0, 15)`,
//! `x' = (q - zero) * scale`. Codes are packed two a byte, the even column in the low nibble, each row
//! starting on a byte (`ceil(cols / 2)` bytes a row). See [`super`] for the edge cases (all-zero
//! groups, overflowing ranges) and the error conditions.
//!
//! The fast path is the 4-bit instance of the monomorphized k-bit kernel (nibble packing, vectorizable
//! loops); the `*_ref` functions are the scalar references, and the tests hold the two equal bit for bit.
use super::{kbit_dequantize, kbit_dequantize_ref, kbit_quantize, kbit_quantize_ref};
use crate::error::{QuantError, Result};
use crate::kernels::{check_bytes, check_len, Shape};

const BITS: u32 = 4;

/// Bytes of a packed INT4 `rows x cols` matrix: `rows * ceil(cols / 2)`; 0 when a side is 0 or the size
/// overflows.
pub fn int4_packed_size(rows: usize, cols: usize) -> usize {
    Shape::new(rows, cols, 0)
        .map(|s| s.rows * s.cols.div_ceil(2))
        .unwrap_or(0)
}

/// Quantizes `src` to packed INT4 codes with per-group scales and zero points (module docs).
/// `dst` needs `int4_packed_size(rows, cols)` bytes, `scales` and `zeros` `shape.n_groups()` elements.
/// One pass over `src`; errors as [`kbit_quantize`] (argument errors write nothing, value errors
/// zero-fill the outputs' prefixes).
pub fn int4_quantize(
    src: &[f32],
    shape: Shape,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
) -> Result<()> {
    kbit_quantize(src, shape, BITS, dst, scales, zeros)
}

/// Scalar reference of [`int4_quantize`].
pub fn int4_quantize_ref(
    src: &[f32],
    shape: Shape,
    dst: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
) -> Result<()> {
    kbit_quantize_ref(src, shape, BITS, dst, scales, zeros)
}

/// Dequantizes packed INT4 codes: `x' = (q - zero) * scale`. `src` must hold exactly
/// `int4_packed_size(rows, cols)` bytes, `scales` and `zeros` exactly `shape.n_groups()` elements.
/// Errors as [`kbit_dequantize`]; nothing is written on error.
pub fn int4_dequantize(
    src: &[u8],
    scales: &[f32],
    zeros: &[u8],
    shape: Shape,
    dst: &mut [f32],
) -> Result<()> {
    kbit_dequantize(src, scales, zeros, shape, BITS, dst)
}

/// Scalar reference of [`int4_dequantize`].
pub fn int4_dequantize_ref(
    src: &[u8],
    scales: &[f32],
    zeros: &[u8],
    shape: Shape,
    dst: &mut [f32],
) -> Result<()> {
    kbit_dequantize_ref(src, scales, zeros, shape, BITS, dst)
}

/// Packs signed 4-bit values two a byte, the first (even) value in the low nibble, each as its
/// two's-complement nibble (-8 -> 0x8, -1 -> 0xF, 7 -> 0x7). With an odd count the last byte's high
/// nibble is 0.
///
/// `dst` needs at least `ceil(values.len() / 2)` bytes (else `BufferTooSmall`); only those are written.
/// A value outside -8..=7 cannot be stored in a nibble: it is `InvalidArgument` naming the first such
/// index (keeping its low four bits would bring 9 back as -7). Nothing is written on error.
pub fn pack_int4(values: &[i8], dst: &mut [u8]) -> Result<()> {
    let need = values.len().div_ceil(2);
    check_bytes("dst", dst.len(), need)?;
    if let Some((i, &v)) = values
        .iter()
        .enumerate()
        .find(|(_, &v)| !(-8..=7).contains(&v))
    {
        return Err(QuantError::invalid(format!(
            "values[{i}] is {v}: a signed 4-bit value is in -8..=7"
        )));
    }
    let mut pairs = values.chunks_exact(2);
    for (d, p) in dst.iter_mut().zip(&mut pairs) {
        *d = (p[0] as u8 & 0x0f) | ((p[1] as u8) << 4);
    }
    if let [last] = pairs.remainder() {
        dst[need - 1] = *last as u8 & 0x0f;
    }
    Ok(())
}

/// Unpacks `n` signed 4-bit values (the layout of [`pack_int4`]), sign-extending each nibble
/// (0x8..=0xF -> -8..=-1). `src` needs at least `ceil(n / 2)` bytes and `dst` at least `n` elements
/// (else `BufferTooSmall`); only the first `n` of `dst` are written. Nothing is written on error.
pub fn unpack_int4(src: &[u8], n: usize, dst: &mut [i8]) -> Result<()> {
    check_bytes("src", src.len(), n.div_ceil(2))?;
    check_len("dst", dst.len(), n)?;
    // Shifting the nibble to the top of a byte and back arithmetically sign-extends it.
    let sext = |nibble: u8| ((nibble << 4) as i8) >> 4;
    let dst = &mut dst[..n];
    let mut pairs = dst.chunks_exact_mut(2);
    for (p, &s) in (&mut pairs).zip(src) {
        p[0] = sext(s & 0x0f);
        p[1] = sext(s >> 4);
    }
    if n % 2 == 1 {
        dst[n - 1] = sext(src[n / 2] & 0x0f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nibble_order_and_sign() {
        let mut packed = [0u8; 4];
        pack_int4(&[1, -2, 3, -4, 5, 6, 7], &mut packed).unwrap();
        assert_eq!(packed, [0xE1, 0xC3, 0x65, 0x07]);
        let mut back = [0i8; 7];
        unpack_int4(&packed, 7, &mut back).unwrap();
        assert_eq!(back, [1, -2, 3, -4, 5, 6, 7]);
        assert!(pack_int4(&[0, 8], &mut packed).is_err());
        assert!(pack_int4(&[-9], &mut packed).is_err());
    }
}
