//! The plain casts (FP16, BF16, FP8 E4M3FN / E5M2) and the scaled FP8 E4M3 quantizer.
//!
//! Golden fixtures: `tests/data/golden/` holds reference outputs of numpy (float16) and ml_dtypes
//! (bfloat16, float8_e4m3fn, float8_e5m2) for every rounding boundary and tie of each format (+-1 f32
//! ulp), subnormals, signed zeros, infinities, NaNs, the overflow thresholds, 120,000 random f32
//! patterns, and the decoding of every 16-bit and 8-bit code. Regenerate them with
//!
//!     pip install numpy ml_dtypes && python3 scripts/gen_cast_fixtures.py
//!
//! (layout, versions and the NaN policy are in tests/data/golden/README.md).
//!
//! NaN comparison: FP8 outputs are compared bit for bit with ml_dtypes, NaN included. FP16 and BF16
//! follow the `half` crate, which quiets NaNs and keeps the payload's top bits, whereas numpy/ml_dtypes
//! do not quiet (f16) or canonicalize (bf16): for those a NaN expectation from the fixtures is checked
//! as "NaN of the same sign", and every output (NaN included) is compared bit for bit with `half`.
//!
//! The saturating FP8 expectation is derived from the non-saturating one as the header documents it.
use ::half::{bf16, f16};
use proptest::prelude::*;
use quant::kernels::fp8::{self, *};
use quant::kernels::half::{self as hk, *};
use quant::kernels::Shape;
use quant::QuantError;

// ------------------------------------------------------------------------------------------------
// Fixtures

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (see the top of tests/casts.rs)"))
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// One f32 input and its reference codes (non-saturating).
#[derive(Clone, Copy, Debug)]
struct Expect {
    x: u32,
    f16: u16,
    bf16: u16,
    e4m3: u8,
    e5m2: u8,
}

fn value_records(name: &str) -> Vec<Expect> {
    let b = golden(name);
    assert_eq!(b.len() % 10, 0, "{name}");
    b.chunks_exact(10)
        .map(|r| Expect {
            x: u32_at(r, 0),
            f16: u16_at(r, 4),
            bf16: u16_at(r, 6),
            e4m3: r[8],
            e5m2: r[9],
        })
        .collect()
}

fn f16_is_nan(h: u16) -> bool {
    h & 0x7C00 == 0x7C00 && h & 0x03FF != 0
}
fn bf16_is_nan(h: u16) -> bool {
    h & 0x7F80 == 0x7F80 && h & 0x007F != 0
}

/// The saturating E4M3 code derived from the non-saturating one (as the header documents it).
fn e4m3_sat(x: f32, code: u8) -> u8 {
    if !x.is_nan() && code & 0x7F == 0x7F {
        (code & 0x80) | 0x7E
    } else {
        code
    }
}
/// The saturating E5M2 code derived from the non-saturating one (as the header documents it).
fn e5m2_sat(x: f32, code: u8) -> u8 {
    if !x.is_nan() && code & 0x7F == 0x7C {
        (code & 0x80) | 0x7B
    } else {
        code
    }
}

/// Runs every fast encoder on `xs` and checks each output against `expect` (a 16-bit code for f16/bf16
/// given as `Some`, FP8 codes likewise; `None` skips a format), the scalar reference and `half`.
struct Outputs {
    f16: Vec<u16>,
    bf16: Vec<u16>,
    e4m3: [Vec<u8>; 2],
    e5m2: [Vec<u8>; 2],
}

fn encode_all(xs: &[f32]) -> Outputs {
    let n = xs.len();
    let mut o = Outputs {
        f16: vec![0; n],
        bf16: vec![0; n],
        e4m3: [vec![0; n], vec![0; n]],
        e5m2: [vec![0; n], vec![0; n]],
    };
    hk::f32_to_f16(xs, &mut o.f16).unwrap();
    hk::f32_to_bf16(xs, &mut o.bf16).unwrap();
    for (i, sat) in [false, true].into_iter().enumerate() {
        fp8::f32_to_fp8_e4m3(xs, &mut o.e4m3[i], sat).unwrap();
        fp8::f32_to_fp8_e5m2(xs, &mut o.e5m2[i], sat).unwrap();
    }
    o
}

fn check_f16(x: f32, got: u16, want: u16, what: &str) {
    if f16_is_nan(want) {
        assert!(
            f16_is_nan(got) && got & 0x8000 == want & 0x8000,
            "{what} f16 of {:#010x}: got {got:#06x}, want a NaN like {want:#06x}",
            x.to_bits()
        );
    } else {
        assert_eq!(got, want, "{what} f16 of {:#010x} ({x:e})", x.to_bits());
    }
    assert_eq!(
        got,
        f16::from_f32(x).to_bits(),
        "{what} f16 vs half of {:#010x}",
        x.to_bits()
    );
    assert_eq!(
        got,
        f32_to_f16_ref(x),
        "{what} f16 fast vs ref of {:#010x}",
        x.to_bits()
    );
}

fn check_bf16(x: f32, got: u16, want: u16, what: &str) {
    if bf16_is_nan(want) {
        assert!(
            bf16_is_nan(got) && got & 0x8000 == want & 0x8000,
            "{what} bf16 of {:#010x}: got {got:#06x}, want a NaN like {want:#06x}",
            x.to_bits()
        );
    } else {
        assert_eq!(got, want, "{what} bf16 of {:#010x} ({x:e})", x.to_bits());
    }
    assert_eq!(
        got,
        bf16::from_f32(x).to_bits(),
        "{what} bf16 vs half of {:#010x}",
        x.to_bits()
    );
    assert_eq!(
        got,
        f32_to_bf16_ref(x),
        "{what} bf16 fast vs ref of {:#010x}",
        x.to_bits()
    );
}

fn check_e4m3(x: f32, got: &[Vec<u8>; 2], i: usize, want: u8, what: &str) {
    let b = x.to_bits();
    assert_eq!(got[0][i], want, "{what} e4m3 of {b:#010x} ({x:e})");
    assert_eq!(
        got[1][i],
        e4m3_sat(x, want),
        "{what} e4m3 sat of {b:#010x} ({x:e})"
    );
    assert_eq!(
        got[0][i],
        f32_to_fp8_e4m3_ref(x, false),
        "{what} e4m3 ref of {b:#010x}"
    );
    assert_eq!(
        got[1][i],
        f32_to_fp8_e4m3_ref(x, true),
        "{what} e4m3 sat ref of {b:#010x}"
    );
}

fn check_e5m2(x: f32, got: &[Vec<u8>; 2], i: usize, want: u8, what: &str) {
    let b = x.to_bits();
    assert_eq!(got[0][i], want, "{what} e5m2 of {b:#010x} ({x:e})");
    assert_eq!(
        got[1][i],
        e5m2_sat(x, want),
        "{what} e5m2 sat of {b:#010x} ({x:e})"
    );
    assert_eq!(
        got[0][i],
        f32_to_fp8_e5m2_ref(x, false),
        "{what} e5m2 ref of {b:#010x}"
    );
    assert_eq!(
        got[1][i],
        f32_to_fp8_e5m2_ref(x, true),
        "{what} e5m2 sat ref of {b:#010x}"
    );
}

fn check_value_file(name: &str, min_records: usize) {
    let recs = value_records(name);
    assert!(recs.len() >= min_records, "{name}: {} records", recs.len());
    let xs: Vec<f32> = recs.iter().map(|r| f32::from_bits(r.x)).collect();
    let o = encode_all(&xs);
    for (i, (r, &x)) in recs.iter().zip(&xs).enumerate() {
        check_f16(x, o.f16[i], r.f16, name);
        check_bf16(x, o.bf16[i], r.bf16, name);
        check_e4m3(x, &o.e4m3, i, r.e4m3, name);
        check_e5m2(x, &o.e5m2, i, r.e5m2, name);
    }
}

#[test]
fn golden_special_values() {
    check_value_file("special.bin", 1000);
}

#[test]
fn golden_random_patterns() {
    check_value_file("random.bin", 100_000);
    check_value_file("random_in_range.bin", 20_000);
}

/// Every rounding boundary of a format (the midpoint of two neighbouring codes) and one f32 ulp on
/// each side, positive and negative.
fn check_ties(fmt: &str, width: usize, n_min: usize) {
    let name = format!("ties_{fmt}.bin");
    let b = golden(&name);
    let rec = 4 + 3 * width;
    assert_eq!(b.len() % rec, 0);
    assert!(b.len() / rec >= n_min, "{name}: {} records", b.len() / rec);
    let mut xs = Vec::new();
    let mut want = Vec::new();
    for r in b.chunks_exact(rec) {
        let mid = u32_at(r, 0);
        for (k, d) in [-1i32, 0, 1].into_iter().enumerate() {
            let code = if width == 2 {
                u16_at(r, 4 + 2 * k) as u32
            } else {
                r[4 + k] as u32
            };
            let x = mid.wrapping_add_signed(d);
            let sign_code = if width == 2 { 0x8000 } else { 0x80 };
            xs.push(f32::from_bits(x));
            want.push(code);
            xs.push(f32::from_bits(x | 0x8000_0000));
            want.push(code | sign_code);
        }
    }
    let o = encode_all(&xs);
    for (i, (&x, &w)) in xs.iter().zip(&want).enumerate() {
        match fmt {
            "f16" => check_f16(x, o.f16[i], w as u16, &name),
            "bf16" => check_bf16(x, o.bf16[i], w as u16, &name),
            "e4m3" => check_e4m3(x, &o.e4m3, i, w as u8, &name),
            "e5m2" => check_e5m2(x, &o.e5m2, i, w as u8, &name),
            _ => unreachable!(),
        }
    }
}

#[test]
fn golden_ties_f16() {
    check_ties("f16", 2, 31744);
}
#[test]
fn golden_ties_bf16() {
    check_ties("bf16", 2, 32640);
}
#[test]
fn golden_ties_fp8() {
    check_ties("e4m3", 1, 127);
    check_ties("e5m2", 1, 124);
}

fn decode_fixture(name: &str, n: usize) -> Vec<u32> {
    let b = golden(name);
    assert_eq!(b.len(), 4 * n, "{name}");
    b.chunks_exact(4).map(|c| u32_at(c, 0)).collect()
}

/// `got` equals `want` bit for bit, or, when `nan_by_class`, both are NaNs of the same sign.
fn same_f32(got: f32, want: u32, nan_by_class: bool) -> bool {
    let w = f32::from_bits(want);
    if nan_by_class && w.is_nan() {
        got.is_nan() && got.is_sign_negative() == w.is_sign_negative()
    } else {
        got.to_bits() == want
    }
}

#[test]
fn golden_decode_every_16_bit_pattern() {
    let codes: Vec<u16> = (0..=u16::MAX).collect();
    let mut out = vec![0f32; codes.len()];
    let want = decode_fixture("decode_f16.bin", 65536);
    hk::f16_to_f32(&codes, &mut out).unwrap();
    for (&c, (&got, &w)) in codes.iter().zip(out.iter().zip(&want)) {
        assert!(
            same_f32(got, w, true),
            "f16 {c:#06x}: {:#010x} vs {w:#010x}",
            got.to_bits()
        );
        assert_eq!(
            got.to_bits(),
            f16::from_bits(c).to_f32().to_bits(),
            "f16 {c:#06x} vs half"
        );
        assert_eq!(
            got.to_bits(),
            f16_to_f32_ref(c).to_bits(),
            "f16 {c:#06x} vs ref"
        );
    }
    let want = decode_fixture("decode_bf16.bin", 65536);
    hk::bf16_to_f32(&codes, &mut out).unwrap();
    for (&c, (&got, &w)) in codes.iter().zip(out.iter().zip(&want)) {
        assert!(
            same_f32(got, w, true),
            "bf16 {c:#06x}: {:#010x} vs {w:#010x}",
            got.to_bits()
        );
        assert_eq!(
            got.to_bits(),
            bf16::from_bits(c).to_f32().to_bits(),
            "bf16 {c:#06x} vs half"
        );
        assert_eq!(
            got.to_bits(),
            bf16_to_f32_ref(c).to_bits(),
            "bf16 {c:#06x} vs ref"
        );
    }
    // NaN stays NaN, and every other pattern round-trips through the encoders.
    let mut back = vec![0u16; codes.len()];
    hk::f16_to_f32(&codes, &mut out).unwrap();
    hk::f32_to_f16(&out, &mut back).unwrap();
    for (&c, &b) in codes.iter().zip(&back) {
        let want = if f16_is_nan(c) { c | 0x0200 } else { c };
        assert_eq!(b, want, "f16 round trip of {c:#06x}");
    }
    hk::bf16_to_f32(&codes, &mut out).unwrap();
    hk::f32_to_bf16(&out, &mut back).unwrap();
    for (&c, &b) in codes.iter().zip(&back) {
        let want = if bf16_is_nan(c) { c | 0x0040 } else { c };
        assert_eq!(b, want, "bf16 round trip of {c:#06x}");
    }
}

#[test]
fn golden_decode_every_fp8_code() {
    let codes: Vec<u8> = (0..=u8::MAX).collect();
    let mut out = vec![0f32; 256];
    let want = decode_fixture("decode_e4m3.bin", 256);
    fp8::fp8_e4m3_to_f32(&codes, &mut out).unwrap();
    for c in 0..256 {
        assert!(
            same_f32(out[c], want[c], false),
            "e4m3 {c:#04x}: {:#010x} vs {:#010x}",
            out[c].to_bits(),
            want[c]
        );
        assert_eq!(
            out[c].to_bits(),
            fp8_e4m3_to_f32_ref(c as u8).to_bits(),
            "e4m3 ref {c:#04x}"
        );
    }
    let want = decode_fixture("decode_e5m2.bin", 256);
    fp8::fp8_e5m2_to_f32(&codes, &mut out).unwrap();
    for c in 0..256 {
        assert!(
            same_f32(out[c], want[c], false),
            "e5m2 {c:#04x}: {:#010x} vs {:#010x}",
            out[c].to_bits(),
            want[c]
        );
        assert_eq!(
            out[c].to_bits(),
            fp8_e5m2_to_f32_ref(c as u8).to_bits(),
            "e5m2 ref {c:#04x}"
        );
    }
}

#[test]
fn known_values_and_saturation() {
    let xs = [
        1.0f32,
        448.0,
        480.0,
        -480.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        1e9,
    ];
    let o = encode_all(&xs);
    assert_eq!(o.f16[0], 0x3C00);
    assert_eq!(o.bf16[0], 0x3F80);
    assert_eq!(
        o.e4m3[0],
        [0x38, 0x7E, 0x7F, 0xFF, 0x7F, 0xFF, 0x7F, 0xFF, 0x7F]
    );
    assert_eq!(
        o.e4m3[1],
        [0x38, 0x7E, 0x7E, 0xFE, 0x7E, 0xFE, 0x7F, 0xFF, 0x7E]
    );
    assert_eq!(o.e5m2[0][4..], [0x7C, 0xFC, 0x7E, 0xFE, 0x7C]);
    assert_eq!(o.e5m2[1][4..], [0x7B, 0xFB, 0x7E, 0xFE, 0x7B]);
    // NaN stays NaN in every conversion.
    for (i, &x) in xs.iter().enumerate() {
        if x.is_nan() {
            assert!(f16_is_nan(o.f16[i]) && bf16_is_nan(o.bf16[i]));
        }
    }
}

#[test]
fn slice_kernels_check_the_destination_length() {
    let src = [1.0f32; 4];
    let mut d8 = [0xA5u8; 3];
    let mut d16 = [0xA5A5u16; 3];
    let mut df = [7f32; 3];
    let short = |e: QuantError| {
        matches!(
            e,
            QuantError::BufferTooSmall {
                got: 3,
                need: 4,
                ..
            }
        )
    };
    assert!(short(
        fp8::f32_to_fp8_e4m3(&src, &mut d8, false).unwrap_err()
    ));
    assert!(short(
        fp8::f32_to_fp8_e5m2(&src, &mut d8, true).unwrap_err()
    ));
    assert!(short(hk::f32_to_f16(&src, &mut d16).unwrap_err()));
    assert!(short(hk::f32_to_bf16(&src, &mut d16).unwrap_err()));
    assert!(short(fp8::fp8_e4m3_to_f32(&[0; 4], &mut df).unwrap_err()));
    assert!(short(fp8::fp8_e5m2_to_f32(&[0; 4], &mut df).unwrap_err()));
    assert!(short(hk::f16_to_f32(&[0; 4], &mut df).unwrap_err()));
    assert!(short(hk::bf16_to_f32(&[0; 4], &mut df).unwrap_err()));
    assert_eq!(d8, [0xA5; 3]);
    assert_eq!(d16, [0xA5A5; 3]);
    assert_eq!(df, [7.0; 3]);
}

// ------------------------------------------------------------------------------------------------
// Fast paths against the scalar references over the f32 patterns.

/// Compares every fast encoder with its scalar reference (and `half` for f16/bf16) on the patterns
/// `start, start + stride, ...` below `end` (at most 2^32).
fn sweep(start: u64, stride: u64, end: u64) -> u64 {
    const BATCH: usize = 1 << 16;
    let mut xs = Vec::with_capacity(BATCH);
    let mut checked = 0;
    let mut p = start;
    while p < end {
        xs.clear();
        while xs.len() < BATCH && p < end {
            xs.push(f32::from_bits(p as u32));
            p += stride;
        }
        let o = encode_all(&xs);
        for (i, &x) in xs.iter().enumerate() {
            let b = x.to_bits();
            let ok = o.f16[i] == f32_to_f16_ref(x)
                && o.f16[i] == f16::from_f32(x).to_bits()
                && o.bf16[i] == f32_to_bf16_ref(x)
                && o.bf16[i] == bf16::from_f32(x).to_bits()
                && o.e4m3[0][i] == f32_to_fp8_e4m3_ref(x, false)
                && o.e4m3[1][i] == f32_to_fp8_e4m3_ref(x, true)
                && o.e5m2[0][i] == f32_to_fp8_e5m2_ref(x, false)
                && o.e5m2[1][i] == f32_to_fp8_e5m2_ref(x, true);
            assert!(
                ok,
                "fast vs ref at {b:#010x}: f16 {:#06x}/{:#06x}/{:#06x} bf16 {:#06x}/{:#06x} e4m3 {:#04x}/{:#04x} sat {:#04x}/{:#04x} e5m2 {:#04x}/{:#04x} sat {:#04x}/{:#04x}",
                o.f16[i], f32_to_f16_ref(x), f16::from_f32(x).to_bits(),
                o.bf16[i], f32_to_bf16_ref(x),
                o.e4m3[0][i], f32_to_fp8_e4m3_ref(x, false), o.e4m3[1][i], f32_to_fp8_e4m3_ref(x, true),
                o.e5m2[0][i], f32_to_fp8_e5m2_ref(x, false), o.e5m2[1][i], f32_to_fp8_e5m2_ref(x, true),
            );
        }
        checked += xs.len() as u64;
    }
    checked
}

/// A dense stride through all 2^32 f32 patterns (one in 61, about 70 million, every pattern class and
/// every exponent), with an offset that changes from run to run (printed; set QUANT_SWEEP_OFFSET to
/// replay a failure), in two tests (the positive and the negative patterns) that the test harness
/// runs at the same time. The full sweep is `full_sweep_of_every_f32_pattern` (ignored by default).
const SWEEP_STRIDE: u64 = 61;

/// The stride: `SWEEP_STRIDE`, or QUANT_SWEEP_STRIDE when set (a larger one for emulated runs:
/// scripts/test-neon.sh, where the default stride took 2 x 116 s of CPU under qemu).
fn sweep_stride() -> u64 {
    let stride = match std::env::var("QUANT_SWEEP_STRIDE") {
        Ok(v) => v.parse().expect("QUANT_SWEEP_STRIDE is an integer"),
        Err(_) => SWEEP_STRIDE,
    };
    // Odd: an even stride from an even offset would never meet an odd pattern.
    assert!(
        stride % 2 == 1,
        "QUANT_SWEEP_STRIDE must be odd, not {stride}"
    );
    stride
}

/// The sweep's offset in `0..stride`.
fn sweep_offset(stride: u64) -> u64 {
    let offset = match std::env::var("QUANT_SWEEP_OFFSET") {
        Ok(v) => v.parse().expect("QUANT_SWEEP_OFFSET is an integer"),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.subsec_nanos() as u64 % stride
        }
    };
    println!("sweep offset {offset} (QUANT_SWEEP_OFFSET={offset} replays it)");
    offset
}

#[test]
fn fast_paths_equal_the_references_on_a_dense_stride_positive_patterns() {
    let stride = sweep_stride();
    let n = sweep(sweep_offset(stride), stride, 1 << 31);
    assert!(n >= (1 << 31) / stride);
}

#[test]
fn fast_paths_equal_the_references_on_a_dense_stride_negative_patterns() {
    let stride = sweep_stride();
    let n = sweep((1 << 31) + sweep_offset(stride), stride, 1 << 32);
    assert!(n >= (1 << 31) / stride);
}

/// Every f32 pattern: `cargo test --release --test casts -- --ignored` (about 8 minutes on two shared
/// cores).
#[test]
#[ignore]
fn full_sweep_of_every_f32_pattern() {
    assert_eq!(sweep(0, 1, 1 << 32), 1 << 32);
}

// ------------------------------------------------------------------------------------------------
// The scaled FP8 E4M3 quantizer.

fn quantize(x: &[f32], shape: Shape) -> (Vec<u8>, Vec<f32>) {
    let mut q = vec![0xA5u8; shape.len()];
    let mut s = vec![-1f32; shape.n_groups()];
    fp8_e4m3_quantize(x, shape, &mut q, &mut s).unwrap();
    let mut q_ref = vec![0x5Au8; shape.len()];
    let mut s_ref = vec![-2f32; shape.n_groups()];
    fp8_e4m3_quantize_ref(x, shape, &mut q_ref, &mut s_ref).unwrap();
    assert_eq!(q, q_ref, "fast vs ref codes");
    assert_eq!(bits(&s), bits(&s_ref), "fast vs ref scales");
    (q, s)
}

fn dequantize(q: &[u8], s: &[f32], shape: Shape) -> Vec<f32> {
    let mut y = vec![f32::NAN; shape.len()];
    fp8_e4m3_dequantize(q, s, shape, &mut y).unwrap();
    let mut y_ref = vec![0f32; shape.len()];
    fp8_e4m3_dequantize_ref(q, s, shape, &mut y_ref).unwrap();
    assert_eq!(bits(&y), bits(&y_ref), "fast vs ref dequantize");
    y
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Half the E4M3 spacing at the magnitude `q` (in units of the scaled domain): the grid in the binade
/// [2^e, 2^(e+1)) is 2^(e-3) (3 significand bits), and 2^-9 below the smallest normal 2^-6, so the
/// nearest code is at most 2^(max(e, -6) - 4) away. The saturated absmax (|q| just above 448) is at
/// most a few f32 ulps from 448.
fn half_step(q: f32) -> f64 {
    let q = q.abs() as f64;
    let e = if q == 0.0 {
        -6
    } else {
        q.log2().floor() as i32
    };
    2f64.powi(e.clamp(-6, 8) - 4)
}

/// The round-trip bound of one element: half a step of the format at |x / scale|, scaled back, plus
/// the f32 rounding of the division and of the dequantizing product (a few ulps of |x|).
fn within_half_step(x: f32, y: f32, scale: f32) -> bool {
    let q = x / scale;
    let bound =
        half_step(q) * scale as f64 * (1.0 + 1e-6) + 4.0 * f32::EPSILON as f64 * x.abs() as f64;
    ((x as f64) - (y as f64)).abs() <= bound
}

fn group_of(shape: Shape, i: usize) -> usize {
    (i / shape.cols) * shape.groups_per_row() + (i % shape.cols) / shape.group_len()
}

/// Finite test matrices: magnitudes spread over many binades (so that subnormal codes occur), some
/// exact zeros of both signs, an overall magnitude 2^k, and some all-zero rows.
fn matrix() -> impl Strategy<Value = (Vec<f32>, Shape)> {
    (
        1usize..6,
        1usize..70,
        prop_oneof![Just(0usize), 1usize..80],
        -30i32..30,
    )
        .prop_flat_map(|(rows, cols, g, k)| {
            let elem = prop_oneof![
                6 => (-1.0f32..1.0, -14i32..1).prop_map(|(m, e)| m * 2f32.powi(e)),
                1 => Just(0.0f32),
                1 => Just(-0.0f32),
            ];
            (
                proptest::collection::vec(elem, rows * cols),
                Just(Shape::new(rows, cols, g).unwrap()),
                Just(2f32.powi(k)),
                proptest::collection::vec(proptest::bool::weighted(0.25), rows),
            )
        })
        .prop_map(|(mut x, shape, mag, zero_rows)| {
            for (i, v) in x.iter_mut().enumerate() {
                *v *= mag;
                if zero_rows[i / shape.cols] {
                    // Whole rows of zeros (every group of the row all-zero) from time to time;
                    // elsewhere single zeros make some (short) groups all-zero too.
                    *v = if i % 2 == 0 { 0.0 } else { -0.0 };
                }
            }
            (x, shape)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Every element comes back within half a step of the format at its magnitude; the scales are
    /// absmax / 448 of their groups; all-zero groups have scale 0, codes 0 and stay exactly zero.
    #[test]
    fn scaled_round_trip_within_half_a_step((x, shape) in matrix()) {
        let (q, s) = quantize(&x, shape);
        let y = dequantize(&q, &s, shape);
        let mut absmax = vec![0f32; shape.n_groups()];
        for (i, v) in x.iter().enumerate() {
            let g = group_of(shape, i);
            absmax[g] = absmax[g].max(v.abs());
        }
        for g in 0..shape.n_groups() {
            prop_assert_eq!(s[g].to_bits(), (absmax[g] / 448.0).to_bits());
        }
        for (i, (&xv, &yv)) in x.iter().zip(&y).enumerate() {
            let sc = s[group_of(shape, i)];
            if sc == 0.0 {
                prop_assert_eq!(q[i], 0);
                prop_assert_eq!(yv, 0.0);
            } else {
                prop_assert!(within_half_step(xv, yv, sc),
                    "x[{}] = {:e} came back as {:e} (scale {:e}, code {:#04x})", i, xv, yv, sc, q[i]);
                prop_assert!(q[i] & 0x7F != 0x7F, "NaN code");
            }
            if xv == 0.0 {
                prop_assert_eq!(yv, 0.0);
            }
        }
    }

    /// Quantizing the dequantized matrix gives the same codes, and the same scales to within one f32
    /// ulp: the new absmax is fl(448 * s) and fl(fl(448 * s) / 448) differs from s by one ulp for
    /// about 11% of the f32 significands (448 = 7 * 2^6, and x -> fl(fl(7x) / 7) is not the identity).
    #[test]
    fn scaled_quantization_is_idempotent((x, shape) in matrix()) {
        let (q, s) = quantize(&x, shape);
        let y = dequantize(&q, &s, shape);
        let (q2, s2) = quantize(&y, shape);
        prop_assert_eq!(&q2, &q);
        for (a, b) in s.iter().zip(&s2) {
            prop_assert!((a.to_bits() as i64 - b.to_bits() as i64).abs() <= 1, "scale {:e} became {:e}", a, b);
        }
    }

    /// The fast kernels equal the scalar references on arbitrary finite input (any bit pattern).
    #[test]
    fn scaled_fast_equals_ref(rows in 1usize..5, cols in 1usize..50, g in 0usize..20,
                              seed in proptest::collection::vec(any::<u32>(), 250)) {
        let shape = Shape::new(rows, cols, g).unwrap();
        let x: Vec<f32> = seed[..shape.len()].iter()
            .map(|&b| { let v = f32::from_bits(b); if v.is_finite() { v } else { 1.0 } })
            .collect();
        let (q, s) = quantize(&x, shape);
        dequantize(&q, &s, shape);
    }
}

#[test]
fn scaled_group_geometry() {
    // 2 rows of 10 columns in groups of 4: groups [0,4) [4,8) [8,10) per row.
    let x: Vec<f32> = (0..20).map(|i| i as f32 - 3.0).collect();
    let shape = Shape::new(2, 10, 4).unwrap();
    let (q, s) = quantize(&x, shape);
    let absmax = [3.0f32, 4.0, 6.0, 10.0, 14.0, 16.0];
    assert_eq!(s, absmax.map(|a| a / 448.0).to_vec());
    // The absmax element of every group maps to +-448.
    assert_eq!(q[0], 0xFE); // -3 is the absmax of the first group
    assert_eq!(q[7], 0x7E);
    assert_eq!(q[9], 0x7E);
    // One group per row, and groups longer than a row, are the same thing.
    let (q0, s0) = quantize(&x, Shape::new(2, 10, 0).unwrap());
    let (q99, s99) = quantize(&x, Shape::new(2, 10, 99).unwrap());
    assert_eq!((&q0, &s0), (&q99, &s99));
    assert_eq!(s0, vec![6.0 / 448.0, 16.0 / 448.0]);
    // An all-zero group (signed zeros included) has scale 0 and codes 0x00, and stays exactly zero.
    let z = [0.0f32, -0.0, 0.0, 0.0, 1.0, -2.0];
    let shape = Shape::new(1, 6, 3).unwrap();
    let (q, s) = quantize(&z, shape);
    assert_eq!(s[0], 0.0);
    assert_eq!(&q[..3], &[0, 0, 0]);
    let y = dequantize(&q, &s, shape);
    assert_eq!(bits(&y[..3]), vec![0; 3]);
    assert_eq!(&y[3..], &[0.0, 1.0, -2.0]);
}

#[test]
fn scaled_argument_errors_write_nothing_value_errors_zero_fill() {
    let shape = Shape::new(2, 3, 2).unwrap(); // 6 elements, 4 groups
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let mut q = [0xA5u8; 6];
    let mut s = [7f32; 4];
    let e = fp8_e4m3_quantize(&x, shape, &mut q[..5], &mut s).unwrap_err();
    assert!(
        matches!(
            e,
            QuantError::BufferTooSmall {
                got: 5,
                need: 6,
                ..
            }
        ),
        "{e:?}"
    );
    let e = fp8_e4m3_quantize(&x, shape, &mut q, &mut s[..3]).unwrap_err();
    assert!(
        matches!(
            e,
            QuantError::BufferTooSmall {
                got: 3,
                need: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let e = fp8_e4m3_quantize(&x[..5], shape, &mut q, &mut s).unwrap_err();
    assert!(
        matches!(
            e,
            QuantError::BufferTooSmall {
                got: 5,
                need: 6,
                ..
            }
        ),
        "{e:?}"
    );
    // The argument errors above wrote nothing.
    assert_eq!(q, [0xA5; 6]);
    assert_eq!(s, [7.0; 4]);
    // A value error zero-fills the outputs' prefixes (here, all of them) and names the index.
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut xb = x;
        xb[4] = bad;
        let (mut q, mut s) = ([0xA5u8; 7], [7f32; 5]);
        let e = fp8_e4m3_quantize(&xb, shape, &mut q, &mut s).unwrap_err();
        assert!(matches!(e, QuantError::NonFinite { index: 4, .. }), "{e:?}");
        assert_eq!(q, [0, 0, 0, 0, 0, 0, 0xA5]);
        assert_eq!(s, [0.0, 0.0, 0.0, 0.0, 7.0]);
    }

    let mut y = [9f32; 6];
    let codes = [0x38u8; 6];
    let e = fp8_e4m3_dequantize(&codes, &[1.0; 4], shape, &mut y[..5]).unwrap_err();
    assert!(
        matches!(
            e,
            QuantError::BufferTooSmall {
                got: 5,
                need: 6,
                ..
            }
        ),
        "{e:?}"
    );
    let e = fp8_e4m3_dequantize(&codes, &[1.0; 3], shape, &mut y).unwrap_err();
    assert!(
        matches!(
            e,
            QuantError::BufferTooSmall {
                got: 3,
                need: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let e = fp8_e4m3_dequantize(&codes[..5], &[1.0; 4], shape, &mut y).unwrap_err();
    assert!(
        matches!(
            e,
            QuantError::BufferTooSmall {
                got: 5,
                need: 6,
                ..
            }
        ),
        "{e:?}"
    );
    let e = fp8_e4m3_dequantize(&codes, &[1.0, 1.0, f32::NAN, 1.0], shape, &mut y).unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { index: 2, .. }), "{e:?}");
    assert_eq!(y, [9.0; 6]);
    fp8_e4m3_dequantize(&codes, &[1.0, 2.0, 3.0, 4.0], shape, &mut y).unwrap();
    assert_eq!(y, [1.0, 1.0, 2.0, 3.0, 3.0, 4.0]);
}
