//! The k-bit group quantizer shared by GPTQ and AWQ: scale and zero point of a group, code of a value.
//!
//! Asymmetric (the library's convention, API.md's INT4 rule at any width): lo = min(min x, 0),
//! hi = max(max x, 0), scale = (hi - lo) / maxq, zero = clamp(round_half_even(-lo / scale), 0, maxq),
//! q = clamp(round_half_even(x / scale) + zero, 0, maxq), x' = (q - zero) * scale; an all-zero group has
//! scale 0, zero 0 and codes 0.
//!
//! Symmetric (the GPTQ reference's `Quantizer(sym=True)`): zero = (maxq + 1) / 2 and
//! scale = 2 max|x| / maxq, the same formula as the asymmetric one with lo = -max|x|, hi = max|x|.
//! (The reference keeps lo = 0 for a group without negative values, which halves the range it can
//! represent; here every symmetric group spans [-max|x|, max|x|].)
pub(crate) use self::kbit::{asym_params, dequantize_code, quantize_code};

/// `2^bits - 1` as f32.
pub(crate) fn maxq(bits: u32) -> f32 {
    ((1u32 << bits) - 1) as f32
}

/// Scale and zero point of a group whose values lie in [lo, hi] (lo <= 0 <= hi is not required).
pub(crate) fn range_params(lo: f32, hi: f32, bits: u32, symmetric: bool) -> (f32, f32) {
    if symmetric {
        let amax = lo.abs().max(hi.abs());
        let (scale, _) = asym_params(-amax, amax, bits);
        (scale, (maxq(bits) + 1.0) / 2.0)
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

/// Quantize-dequantize one value.
#[inline]
pub(crate) fn fake_quant(x: f32, scale: f32, zero: f32, maxq: f32) -> f32 {
    dequantize_code(quantize_code(x, scale, zero, maxq), scale, zero)
}

/// Private stand-in for `crate::kernels::kbit` until it lands (same names and semantics).
mod kbit {
    /// Asymmetric scale and integer zero point for values in [min, max] (0 is put inside the range).
    pub(crate) fn asym_params(min: f32, max: f32, bits: u32) -> (f32, f32) {
        let maxq = super::maxq(bits);
        let lo = min.min(0.0);
        let hi = max.max(0.0);
        let scale = (hi - lo) / maxq;
        if scale == 0.0 || !scale.is_finite() {
            return (0.0, 0.0);
        }
        let zero = (-lo / scale).round_ties_even().clamp(0.0, maxq);
        (scale, zero)
    }

    /// Code of `x`: clamp(round_half_even(x / scale) + zero, 0, maxq); the zero point when scale is 0.
    #[inline]
    pub(crate) fn quantize_code(x: f32, scale: f32, zero: f32, maxq: f32) -> u8 {
        if scale == 0.0 {
            return zero as u8;
        }
        ((x / scale).round_ties_even() + zero).clamp(0.0, maxq) as u8
    }

    /// (q - zero) * scale.
    #[inline]
    pub(crate) fn dequantize_code(q: u8, scale: f32, zero: f32) -> f32 {
        (q as f32 - zero) * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asymmetric_and_symmetric_params() {
        let (s, z) = range_params(-1.0, 2.0, 4, false);
        assert_eq!((s, z), (0.2, 5.0));
        assert_eq!(fake_quant(2.0, s, z, 15.0), 2.0);
        assert_eq!(fake_quant(-1.0, s, z, 15.0), -1.0);
        let (s, z) = range_params(-1.0, 2.0, 4, true);
        assert_eq!((s, z), (4.0 / 15.0, 8.0));
        assert_eq!(range_params(0.0, 0.0, 3, false), (0.0, 0.0));
        assert_eq!(fake_quant(0.0, 0.0, 0.0, 7.0), 0.0);
        assert_eq!(min_max(&[3.0, -2.0, 1.0]), (-2.0, 3.0));
    }
}
