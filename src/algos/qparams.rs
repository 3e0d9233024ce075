//! The k-bit group quantizer shared by GPTQ and AWQ: scale and zero point of a group, code of a value.
//!
//! Asymmetric (the library's convention, the INT4 rule at any width: `crate::kernels::kbit`): lo = min(min x, 0),
//! hi = max(max x, 0), scale = (hi - lo) / maxq, zero = clamp(round_half_even(-lo / scale), 0, maxq),
//! q = clamp(round_half_even(x / scale) + zero, 0, maxq), x' = (q - zero) * scale; an all-zero group has
//! scale 0, zero 0 and codes 0.
//!
//! Symmetric (the GPTQ reference's `Quantizer(sym=True)`): zero = (maxq + 1) / 2 and
//! scale = 2 max|x| / maxq, the same formula as the asymmetric one with lo = -max|x|, hi = max|x|.
//! (The reference keeps lo = 0 for a group without negative values, which halves the range it can
//! represent; here every symmetric group spans [-max|x|, max|x|].)
pub(crate) use crate::kernels::kbit::{
    asym_params, dequantize_code, quantize_code, quantize_segment,
};

/// `2^bits - 1`.
pub(crate) fn maxq(bits: u32) -> u32 {
    (1u32 << bits) - 1
}

/// Scale and zero point of a group whose values lie in [lo, hi] (lo <= 0 <= hi is not required).
pub(crate) fn range_params(lo: f32, hi: f32, bits: u32, symmetric: bool) -> (f32, f32) {
    if symmetric {
        let amax = lo.abs().max(hi.abs());
        let (scale, _) = asym_params(-amax, amax, bits);
        (scale, (maxq(bits) + 1) as f32 / 2.0)
    } else {
        asym_params(lo, hi, bits)
    }
}

/// Min and max of `values` (0, 0 for an empty slice).
pub(crate) fn min_max(values: &[f32]) -> (f32, f32) {
    let mut lo = f32::INFINITY;
    let mut hi = f32::NEG_INFINITY;
    for &v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if values.is_empty() {
        (0.0, 0.0)
    } else {
        (lo, hi)
    }
}

/// Quantize-dequantize one value (the per-value form the tests compare the segment path with).
#[cfg(test)]
pub(crate) fn fake_quant(x: f32, scale: f32, zero: f32, maxq: u32) -> f32 {
    dequantize_code(quantize_code(x, scale, zero, maxq), scale, zero)
}

/// Quantize-dequantize a run of values sharing `(scale, zero)`: `out[i] = (q_i - zero) * scale` with
/// the codes of [`quantize_segment`] (equal to [`quantize_code`], without a libm call per element).
/// `codes` is scratch of at least `x.len()`.
#[inline]
pub(crate) fn fake_quant_segment(
    x: &[f32],
    scale: f32,
    zero: f32,
    maxq: u32,
    codes: &mut [u8],
    out: &mut [f32],
) {
    let codes = &mut codes[..x.len()];
    quantize_segment(x, scale, zero, maxq as f32, codes);
    for (o, &q) in out.iter_mut().zip(codes.iter()) {
        *o = dequantize_code(q, scale, zero);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asymmetric_and_symmetric_params() {
        let (s, z) = range_params(-1.0, 2.0, 4, false);
        assert_eq!((s, z), (0.2, 5.0));
        assert_eq!(fake_quant(2.0, s, z, 15), 2.0);
        assert_eq!(fake_quant(-1.0, s, z, 15), -1.0);
        let (s, z) = range_params(-1.0, 2.0, 4, true);
        assert_eq!((s, z), (4.0 / 15.0, 8.0));
        assert_eq!(range_params(0.0, 0.0, 3, false), (0.0, 0.0));
        assert_eq!(fake_quant(0.0, 0.0, 0.0, 7), 0.0);
        assert_eq!(min_max(&[3.0, -2.0, 1.0]), (-2.0, 3.0));
    }

    #[test]
    fn the_segment_path_equals_the_per_value_path() {
        let x: Vec<f32> = (0..200)
            .map(|i| (i as f32 - 90.0) * 0.013 + 1e7 * (i == 7) as i32 as f32)
            .collect();
        let (s, z) = range_params(-0.9, 1.1, 3, false);
        let mut codes = vec![0u8; x.len()];
        let mut out = vec![0.0f32; x.len()];
        fake_quant_segment(&x, s, z, 7, &mut codes, &mut out);
        for (i, &v) in x.iter().enumerate() {
            assert_eq!(out[i], fake_quant(v, s, z, 7), "{v}");
        }
    }
}
