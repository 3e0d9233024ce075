//! The element formats of the MX blocks and of NVFP4: their codes, their round-to-nearest-even
//! saturating encoders (a fast branch-free one and the reference from [`super::super::minifloat`]),
//! their decode tables and the packing of a row of codes into bytes.
use crate::kernels::minifloat::{decode_magnitude_ref, encode_magnitude_ref, MiniFloat};

/// The element type of an MX block (OCP Microscaling Formats v1.0, section 5).
///
/// | type | code | bits | emax | largest normal | packing |
/// |------|------|------|------|----------------|---------|
/// | FP8 E4M3 | `S.EEEE.MMM`, bias 7 | 8 | 8 | 448 | one a byte |
/// | FP8 E5M2 | `S.EEEEE.MM`, bias 15 | 8 | 15 | 57344 | one a byte |
/// | FP6 E2M3 | `S.EE.MMM`, bias 1 | 6 | 2 | 7.5 | four in three bytes |
/// | FP6 E3M2 | `S.EEE.MM`, bias 3 | 6 | 4 | 28 | four in three bytes |
/// | FP4 E2M1 | `S.EE.M`, bias 1 | 4 | 2 | 6 | two a byte |
/// | INT8 | two's complement, value `q / 64` | 8 | 0 | 127/64 | one a byte |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MxElem {
    Fp8E4m3,
    Fp8E5m2,
    Fp6E2m3,
    Fp6E3m2,
    Fp4E2m1,
    Int8,
}

/// The parameters of a binary-float element format, for the encoders and the decode tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FloatElem {
    /// Significand bits.
    pub(crate) man: u32,
    /// Exponent bias.
    pub(crate) bias: u32,
    /// Largest finite magnitude code: encodings beyond it saturate to it.
    pub(crate) max: u32,
    /// Position of the sign bit (bits - 1).
    pub(crate) sign: u32,
    /// IEEE-like specials in the all-ones exponent (E5M2: infinities and NaNs) rather than only the
    /// all-ones code being NaN (E4M3FN); the 6- and 4-bit formats have neither.
    pub(crate) specials: Specials,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Specials {
    None,
    /// Only the all-ones magnitude is NaN (E4M3FN).
    AllOnesNan,
    /// The all-ones exponent holds infinity and NaNs (E5M2).
    Ieee,
}

pub(crate) const E4M3: FloatElem = FloatElem {
    man: 3,
    bias: 7,
    max: 0x7E,
    sign: 7,
    specials: Specials::AllOnesNan,
};
pub(crate) const E5M2: FloatElem = FloatElem {
    man: 2,
    bias: 15,
    max: 0x7B,
    sign: 7,
    specials: Specials::Ieee,
};
pub(crate) const E2M3: FloatElem = FloatElem {
    man: 3,
    bias: 1,
    max: 0x1F,
    sign: 5,
    specials: Specials::None,
};
pub(crate) const E3M2: FloatElem = FloatElem {
    man: 2,
    bias: 3,
    max: 0x1F,
    sign: 5,
    specials: Specials::None,
};
pub(crate) const E2M1: FloatElem = FloatElem {
    man: 1,
    bias: 1,
    max: 0x7,
    sign: 3,
    specials: Specials::None,
};

impl MxElem {
    /// Every element type, in the order of their `QUANT_MX_*` codes (a function, not an associated
    /// constant, which cbindgen would put into the header).
    pub fn all() -> [MxElem; 6] {
        [
            MxElem::Fp8E4m3,
            MxElem::Fp8E5m2,
            MxElem::Fp6E2m3,
            MxElem::Fp6E3m2,
            MxElem::Fp4E2m1,
            MxElem::Int8,
        ]
    }

    /// The name used in the docs and the error details ("MXFP8_E4M3", ...).
    pub fn name(self) -> &'static str {
        match self {
            MxElem::Fp8E4m3 => "MXFP8_E4M3",
            MxElem::Fp8E5m2 => "MXFP8_E5M2",
            MxElem::Fp6E2m3 => "MXFP6_E2M3",
            MxElem::Fp6E3m2 => "MXFP6_E3M2",
            MxElem::Fp4E2m1 => "MXFP4_E2M1",
            MxElem::Int8 => "MXINT8",
        }
    }

    /// Bits of one element.
    pub fn bits(self) -> u32 {
        match self {
            MxElem::Fp6E2m3 | MxElem::Fp6E3m2 => 6,
            MxElem::Fp4E2m1 => 4,
            _ => 8,
        }
    }

    /// `emax_elem` of the specification: the exponent of the largest normal power of two (INT8 is
    /// read as the fixed point `1.6`, emax 0).
    pub fn emax(self) -> i32 {
        match self {
            MxElem::Fp8E4m3 => 8,
            MxElem::Fp8E5m2 => 15,
            MxElem::Fp6E2m3 => 2,
            MxElem::Fp6E3m2 => 4,
            MxElem::Fp4E2m1 => 2,
            MxElem::Int8 => 0,
        }
    }

    /// The binary-float parameters, or `None` for INT8.
    pub(crate) fn float(self) -> Option<FloatElem> {
        match self {
            MxElem::Fp8E4m3 => Some(E4M3),
            MxElem::Fp8E5m2 => Some(E5M2),
            MxElem::Fp6E2m3 => Some(E2M3),
            MxElem::Fp6E3m2 => Some(E3M2),
            MxElem::Fp4E2m1 => Some(E2M1),
            MxElem::Int8 => None,
        }
    }

    /// Bytes of a packed row of `cols` elements (each row starts on a byte): `cols` for the 8-bit
    /// types, `ceil(cols / 2)` for FP4, `3 * ceil(cols / 4)` for FP6. `None` on overflow.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        packed_row_bytes(self.bits(), cols)
    }
}

/// Bytes of a packed row of `cols` codes of `bits` (8, 6 or 4) bits: see [`MxElem::row_bytes`].
pub(crate) fn packed_row_bytes(bits: u32, cols: usize) -> Option<usize> {
    match bits {
        8 => Some(cols),
        4 => Some(cols.div_ceil(2)),
        _ => cols.div_ceil(4).checked_mul(3),
    }
}

/// 2^23: adding it to a non-negative f32 below 2^22 rounds the sum to an integer in its low bits.
const MAGIC: f32 = 8_388_608.0;

/// The magnitude code of the f32 with sign-cleared bits `a` (finite), rounded to nearest even and
/// saturated to `f.max`. Branch-free (both the normal and the subnormal candidates are computed and
/// one selected), so loops over it vectorize. The same method as the FP8 casts' encoder.
#[inline(always)]
pub(crate) fn encode_float_mag(a: u32, f: FloatElem) -> u32 {
    // Normal range: round the f32 significand to `man` bits, half to even (add half an ulp minus
    // one plus the parity of the kept part; a carry moves into the exponent), then rebias.
    let shift = 23 - f.man;
    let normal = (a.wrapping_add((1 << (shift - 1)) - 1 + ((a >> shift) & 1)) >> shift)
        .wrapping_sub((127 - f.bias) << f.man);
    // Subnormal range (below 2^(1 - bias)): the code is a / 2^(1 - bias - man) rounded to an integer,
    // the product exact (a power-of-two scaling) and the rounding that of adding 2^23.
    let sub_scale = f32::from_bits((127 + f.bias + f.man - 1) << 23);
    let y = f32::from_bits(a) * sub_scale + MAGIC;
    let sub = y.to_bits().wrapping_sub(MAGIC.to_bits());
    let mag = if a < (128 - f.bias) << 23 {
        sub
    } else {
        normal
    };
    if mag > f.max {
        f.max
    } else {
        mag
    }
}

/// The code of the finite `y` (sign included) in `f`, rounded to nearest even, saturating.
#[inline(always)]
pub(crate) fn encode_float(y: f32, f: FloatElem) -> u8 {
    let bits = y.to_bits();
    let sign = (bits >> 31) << f.sign;
    (encode_float_mag(bits & 0x7FFF_FFFF, f) | sign) as u8
}

/// The MXINT8 code of the finite `y` (the element value is `code / 64`): `round_half_even(y * 64)`
/// clamped to +-127 (the symmetric range; -128 is never produced).
#[inline(always)]
pub(crate) fn encode_int8(y: f32) -> u8 {
    // Adding 1.5 * 2^23 rounds a magnitude below 2^22 to an integer, ties to even, held in the low
    // bits of the sum (`round_ties_even` compiles to a libm call without SSE4.1: 15x slower).
    let q = (y * 64.0).clamp(-128.0, 128.0) + ROUND_MAGIC;
    let q = (q.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32).clamp(-127, 127);
    q as i8 as u8
}

/// 1.5 * 2^23 (see [`encode_int8`]).
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Reference encoder of one finite value: exact f64 rounding from the format's definition.
pub(crate) fn encode_ref(y: f32, elem: MxElem) -> u8 {
    match elem.float() {
        None => {
            let q = ((y as f64) * 64.0).round_ties_even().clamp(-127.0, 127.0);
            q as i8 as u8
        }
        Some(f) => {
            let fmt = MiniFloat {
                man_bits: f.man,
                bias: f.bias as i32,
            };
            let mag = encode_magnitude_ref(y.abs(), fmt).min(f.max);
            let sign = if y.is_sign_negative() { 1 << f.sign } else { 0 };
            (mag | sign) as u8
        }
    }
}

/// Reference decoder of one code (exact; the specials of E4M3 and E5M2 as the FP8 casts decode them).
pub(crate) fn decode_ref(code: u8, elem: MxElem) -> f32 {
    let Some(f) = elem.float() else {
        return code as i8 as f32 / 64.0;
    };
    let neg = (code >> f.sign) & 1 != 0;
    let mag = (code as u32) & ((1 << f.sign) - 1);
    let exp_ones = ((1 << f.sign) - 1) >> f.man;
    let v = match f.specials {
        Specials::AllOnesNan if mag == (1 << f.sign) - 1 => f32::NAN,
        Specials::Ieee if mag >> f.man == exp_ones && mag & ((1 << f.man) - 1) == 0 => {
            f32::INFINITY
        }
        Specials::Ieee if mag >> f.man == exp_ones => f32::NAN,
        _ => {
            let fmt = MiniFloat {
                man_bits: f.man,
                bias: f.bias as i32,
            };
            decode_magnitude_ref(mag, fmt) as f32
        }
    };
    if neg {
        -v
    } else {
        v
    }
}

/// The values of every code of `elem` (codes past the type's width decode their low bits).
pub(crate) fn decode_table(elem: MxElem) -> [f32; 256] {
    let mask = ((1u32 << elem.bits()) - 1) as u8;
    std::array::from_fn(|c| decode_ref(c as u8 & mask, elem))
}

/// Packs the codes of one row (`codes.len()` = cols, each within the type's width) into `out`
/// (`row_bytes(cols)` bytes): 8-bit types as they are; FP4 two a byte, the even column in the low
/// nibble; FP6 four in three bytes, little-endian (`c0 | c1 << 6 | c2 << 12 | c3 << 18` as bytes
/// 0, 1, 2). A row's missing last codes are zero.
#[inline(always)]
pub(crate) fn pack_row(bits: u32, codes: &[u8], out: &mut [u8]) {
    match bits {
        8 => out[..codes.len()].copy_from_slice(codes),
        4 => {
            let mut pairs = codes.chunks_exact(2);
            for (o, p) in out.iter_mut().zip(&mut pairs) {
                *o = p[0] | (p[1] << 4);
            }
            if let [last] = pairs.remainder() {
                out[codes.len() / 2] = *last;
            }
        }
        _ => {
            for (o, q) in out.chunks_exact_mut(3).zip(codes.chunks(4)) {
                let mut word = 0u32;
                for (k, &c) in q.iter().enumerate() {
                    word |= (c as u32) << (6 * k);
                }
                o.copy_from_slice(&word.to_le_bytes()[..3]);
            }
        }
    }
}

/// Code `i` of a packed row (the inverse of [`pack_row`]).
#[inline(always)]
pub(crate) fn unpack_code(bits: u32, row: &[u8], i: usize) -> u8 {
    match bits {
        8 => row[i],
        4 => (row[i / 2] >> ((i & 1) * 4)) & 0xF,
        _ => {
            let b = &row[i / 4 * 3..i / 4 * 3 + 3];
            let word = b[0] as u32 | (b[1] as u32) << 8 | (b[2] as u32) << 16;
            ((word >> (6 * (i % 4))) & 0x3F) as u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_encoder_equals_the_reference_on_every_code_and_midpoint() {
        for elem in MxElem::all() {
            let table = decode_table(elem);
            let n = 1usize << elem.bits();
            let mut values: Vec<f32> = (0..n).map(|c| table[c]).filter(|v| v.is_finite()).collect();
            let mut sorted = values.clone();
            sorted.sort_by(f32::total_cmp);
            for w in sorted.windows(2) {
                let mid = (w[0] as f64 + w[1] as f64) / 2.0;
                values.extend([mid as f32, (mid as f32).next_up(), (mid as f32).next_down()]);
            }
            values.extend([1e30, -1e30, 1e-30, 3.9, -7.99]);
            for &v in &values {
                let fast = match elem.float() {
                    Some(f) => encode_float(v, f),
                    None => encode_int8(v),
                };
                assert_eq!(fast, encode_ref(v, elem), "{} {v:e}", elem.name());
            }
        }
    }

    #[test]
    fn known_codes() {
        assert_eq!(encode_ref(6.0, MxElem::Fp4E2m1), 0x7);
        assert_eq!(encode_ref(-0.75, MxElem::Fp4E2m1), 0x8 | 0x2); // tie to even: 1.0
        assert_eq!(encode_ref(0.25, MxElem::Fp4E2m1), 0x0); // tie to even: 0
        assert_eq!(encode_ref(7.9, MxElem::Fp4E2m1), 0x7); // saturates
        assert_eq!(encode_ref(7.5, MxElem::Fp6E2m3), 0x1F);
        assert_eq!(encode_ref(-28.0, MxElem::Fp6E3m2), 0x3F);
        assert_eq!(encode_ref(500.0, MxElem::Fp8E4m3), 0x7E);
        assert_eq!(encode_ref(-1.0, MxElem::Int8), 0xC0);
        assert_eq!(decode_ref(0x3F, MxElem::Fp6E3m2), -28.0);
        assert_eq!(decode_ref(0x81, MxElem::Int8), -127.0 / 64.0);
    }

    #[test]
    fn packing_round_trips() {
        for bits in [4, 6, 8] {
            for cols in 1..13 {
                let codes: Vec<u8> = (0..cols)
                    .map(|i| {
                        (i as u8).wrapping_mul(37).wrapping_add(5) & ((1u16 << bits) - 1) as u8
                    })
                    .collect();
                let elem = match bits {
                    4 => MxElem::Fp4E2m1,
                    6 => MxElem::Fp6E2m3,
                    _ => MxElem::Int8,
                };
                let mut out = vec![0u8; elem.row_bytes(cols).unwrap()];
                pack_row(bits, &codes, &mut out);
                for (i, &c) in codes.iter().enumerate() {
                    assert_eq!(
                        unpack_code(bits, &out, i),
                        c,
                        "bits {bits} cols {cols} i {i}"
                    );
                }
            }
        }
    }
}
