//! The scalar reference encoder and decoder of small binary floating-point formats (FP8, f16, bf16):
//! exact f64 arithmetic from the formats' definition, for the `*_ref` casts of [`super::fp8`] and
//! [`super::half`].

/// A binary floating-point format described by its significand width and exponent bias, for the
/// scalar references (the special values are handled by each caller).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MiniFloat {
    pub(crate) man_bits: u32,
    pub(crate) bias: i32,
}

/// 2^k as an f64 (exact; `k` within the normal f64 range).
fn pow2(k: i32) -> f64 {
    f64::from_bits(((1023 + k) as u64) << 52)
}

/// Reference encoder: the code (exponent field and significand, no sign) of the magnitude `a >= 0`
/// rounded to nearest even in `fmt`, with the exponent unbounded above (so the caller sees overflow as
/// a code beyond its largest finite one). An infinity gives `u32::MAX`.
pub(crate) fn encode_magnitude_ref(a: f32, fmt: MiniFloat) -> u32 {
    if a.is_infinite() {
        return u32::MAX;
    }
    if a == 0.0 {
        return 0;
    }
    let a = a as f64; // exact, and normal in f64 even for f32 subnormals
    let e = ((a.to_bits() >> 52) & 0x7FF) as i32 - 1023;
    let emin = 1 - fmt.bias;
    let e_eff = e.max(emin);
    // Multiples of `quantum` are exactly the format's values in the binade of `a` (or, below the
    // smallest normal, the subnormal grid).
    let quantum = pow2(e_eff - fmt.man_bits as i32);
    let n = (a / quantum).round_ties_even() as u64; // in [0, 2^(man_bits+1)]
                                                    // Exponent field e_eff + bias for n >= 2^man_bits (n = 2^(man_bits+1) carries into the next
                                                    // binade); subnormal codes are n itself.
    ((((e_eff + fmt.bias - 1) as u64) << fmt.man_bits) + n) as u32
}

/// Reference decoder of a magnitude code (no sign; the caller handles infinities and NaNs).
pub(crate) fn decode_magnitude_ref(code: u32, fmt: MiniFloat) -> f64 {
    let exp = (code >> fmt.man_bits) as i32;
    let man = (code & ((1 << fmt.man_bits) - 1)) as f64;
    let m = fmt.man_bits as i32;
    if exp == 0 {
        man * pow2(1 - fmt.bias - m)
    } else {
        (pow2(m) + man) * pow2(exp - fmt.bias - m)
    }
}
