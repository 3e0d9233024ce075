//! Every SIMD level the machine has, and several thread counts, against the scalar references: codes,
//! scales, zero points and dequantized values bit for bit.
use proptest::prelude::*;
use quant::error::QuantError;
use quant::kernels::int8::{
    int8_dequantize, int8_dequantize_ref, int8_quantize, int8_quantize_ref,
};
use quant::kernels::kbit::{
    kbit_dequantize, kbit_dequantize_ref, kbit_packed_size, kbit_quantize, kbit_quantize_ref,
};
use quant::kernels::par::with_threads;
use quant::kernels::simd::{available_levels, with_simd_level, SimdLevel};
use quant::kernels::Shape;

fn bits_of(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// INT8 codes, scales and dequantized values at the level and thread count in force.
fn int8_all(x: &[f32], shape: Shape) -> (Vec<i8>, Vec<u32>, Vec<u32>) {
    let mut q = vec![0i8; shape.len()];
    let mut s = vec![0f32; shape.n_groups()];
    int8_quantize(x, shape, &mut q, &mut s).unwrap();
    let mut d = vec![0f32; shape.len()];
    int8_dequantize(&q, &s, shape, &mut d).unwrap();
    (q, bits_of(&s), bits_of(&d))
}

fn int8_all_ref(x: &[f32], shape: Shape) -> (Vec<i8>, Vec<u32>, Vec<u32>) {
    let mut q = vec![0i8; shape.len()];
    let mut s = vec![0f32; shape.n_groups()];
    int8_quantize_ref(x, shape, &mut q, &mut s).unwrap();
    let mut d = vec![0f32; shape.len()];
    int8_dequantize_ref(&q, &s, shape, &mut d).unwrap();
    (q, bits_of(&s), bits_of(&d))
}

type KbitAll = (Vec<u8>, Vec<u32>, Vec<u8>, Vec<u32>);

fn kbit_all(x: &[f32], shape: Shape, bits: u32, reference: bool) -> KbitAll {
    let mut p = vec![0u8; kbit_packed_size(shape.rows, shape.cols, bits)];
    let mut s = vec![0f32; shape.n_groups()];
    let mut z = vec![0u8; shape.n_groups()];
    let mut d = vec![0f32; shape.len()];
    if reference {
        kbit_quantize_ref(x, shape, bits, &mut p, &mut s, &mut z).unwrap();
        kbit_dequantize_ref(&p, &s, &z, shape, bits, &mut d).unwrap();
    } else {
        kbit_quantize(x, shape, bits, &mut p, &mut s, &mut z).unwrap();
        kbit_dequantize(&p, &s, &z, shape, bits, &mut d).unwrap();
    }
    (p, bits_of(&s), z, bits_of(&d))
}

/// Runs `f` at every available level.
fn at_every_level(mut f: impl FnMut(SimdLevel)) {
    for level in available_levels() {
        with_simd_level(level, || f(level)).unwrap();
    }
}

/// The levels `at_every_level` runs are the ones the architecture has: on aarch64 that includes NEON
/// (so the tests here run the NEON bodies, not only the portable code), which is also the default,
/// in Rust and through the C ABI; on x86-64 NEON is never among them.
#[test]
fn the_levels_tested_include_the_architectures_simd() {
    let levels = available_levels();
    println!("levels tested: {levels:?}");
    assert_eq!(levels[0], SimdLevel::Scalar);
    let expect_neon = cfg!(target_arch = "aarch64");
    assert_eq!(levels.contains(&SimdLevel::Neon), expect_neon, "{levels:?}");
    assert_eq!(SimdLevel::Neon.is_available(), expect_neon);
    if expect_neon {
        assert_eq!(levels, [SimdLevel::Scalar, SimdLevel::Neon]);
        assert_eq!(quant::kernels::simd::best_available(), SimdLevel::Neon);
        // Unless the environment forces a level (read once, at the first kernel call).
        if std::env::var_os("QUANT_SIMD").is_none() {
            assert_eq!(quant::kernels::simd::simd_level(), SimdLevel::Neon);
            assert_eq!(
                quant::ffi::simd::quant_simd_level(),
                quant::kernels::simd::QUANT_SIMD_NEON
            );
        }
    }
}

/// Shapes whose rows span several SIMD blocks with tails, group sizes that are multiples of the blocks,
/// even, odd, 0 (per row) and larger than a row.
fn shape_strategy() -> impl Strategy<Value = Shape> {
    (1usize..4, 1usize..300).prop_flat_map(|(rows, cols)| {
        prop_oneof![
            Just(0usize),
            1usize..=cols,
            Just(32),
            Just(64),
            Just(128),
            Just(cols + 7),
        ]
        .prop_map(move |g| Shape::new(rows, cols, g).unwrap())
    })
}

/// Values of mixed magnitudes per matrix, with zeros, subnormals and all-zero stretches.
fn matrix_strategy() -> impl Strategy<Value = (Shape, Vec<f32>)> {
    shape_strategy().prop_flat_map(|shape| {
        let elem = prop_oneof![
            8 => -1.0f32..1.0,
            1 => Just(0.0f32),
            1 => Just(-0.0f32),
            1 => (-3i32..=3).prop_map(|k| k as f32 * 0.5),
        ];
        (
            Just(shape),
            proptest::collection::vec(elem, shape.len()),
            -140i32..100,
            proptest::bool::ANY,
        )
            .prop_map(|(shape, mut v, exp, zero_row)| {
                for x in &mut v {
                    *x *= 2f32.powi(exp);
                }
                if zero_row {
                    v[..shape.cols].fill(0.0);
                }
                (shape, v)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn int8_every_level_equals_ref((shape, x) in matrix_strategy()) {
        let want = int8_all_ref(&x, shape);
        at_every_level(|level| {
            assert_eq!(int8_all(&x, shape), want, "level {level:?}, shape {shape:?}");
        });
    }

    #[test]
    fn kbit_every_level_equals_ref((shape, x) in matrix_strategy(), bits in 1u32..=8) {
        let want = kbit_all(&x, shape, bits, true);
        at_every_level(|level| {
            assert_eq!(kbit_all(&x, shape, bits, false), want, "level {level:?}, {bits} bits, {shape:?}");
        });
    }
}

/// Exact ties of `x / scale` (scale 1 or 0.5), the clamps at +-127 and at 0..15, and signed zeros.
#[test]
fn ties_and_clamps_at_every_level() {
    let mut row = vec![127.0f32];
    for k in -127..127 {
        row.push(k as f32 + 0.5);
        row.push(-(k as f32) - 0.0);
    }
    row.push(-0.0);
    let shape = Shape::new(1, row.len(), 0).unwrap();
    let want = int8_all_ref(&row, shape);
    let want4 = kbit_all(&row, Shape::new(1, row.len(), 32).unwrap(), 4, true);
    let mut halves: Vec<f32> = (-16..16).map(|k| k as f32 * 0.25 + 0.125).collect();
    halves.extend([7.5f32, -7.5, 0.0, -0.0]);
    let hshape = Shape::new(1, halves.len(), 0).unwrap();
    let want_h = kbit_all(&halves, hshape, 4, true);
    at_every_level(|level| {
        assert_eq!(int8_all(&row, shape), want, "{level:?}");
        let s4 = Shape::new(1, row.len(), 32).unwrap();
        assert_eq!(kbit_all(&row, s4, 4, false), want4, "{level:?}");
        assert_eq!(kbit_all(&halves, hshape, 4, false), want_h, "{level:?}");
    });
}

/// A deterministic pseudo-random matrix (xorshift), values of a few magnitudes.
fn big_matrix(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            u * [1.0, 0.01, 300.0][i / 4099 % 3]
        })
        .collect()
}

/// Large enough inputs that several threads are used: the same bits for 1, 2, 3 and all threads.
#[test]
fn thread_count_does_not_change_a_bit() {
    let x = big_matrix(600 * 700, 7);
    let shapes = [
        Shape::new(600, 700, 0).unwrap(),
        Shape::new(600, 700, 128).unwrap(),
        Shape::new(600, 700, 35).unwrap(),
        Shape::new(1, 600 * 700, 0).unwrap(),
    ];
    for shape in shapes {
        let want8 = int8_all_ref(&x, shape);
        let want4 = kbit_all(&x, shape, 4, true);
        let want3 = kbit_all(&x, shape, 3, true);
        at_every_level(|level| {
            for t in [1, 2, 3, 0] {
                with_threads(t, || {
                    assert_eq!(
                        int8_all(&x, shape),
                        want8,
                        "{level:?} {t} threads {shape:?}"
                    );
                    assert_eq!(
                        kbit_all(&x, shape, 4, false),
                        want4,
                        "{level:?} {t} {shape:?}"
                    );
                    assert_eq!(
                        kbit_all(&x, shape, 3, false),
                        want3,
                        "{level:?} {t} {shape:?}"
                    );
                })
                .unwrap();
            }
        });
    }
}

/// A NaN in the very last element of a large input: the error names it and the outputs are
/// zero-filled (never left half written), whatever the level and thread count.
#[test]
fn late_nan_zero_fills_the_outputs_with_threads() {
    let mut x = big_matrix(600 * 700, 9);
    let last = x.len() - 1;
    x[last] = f32::NAN;
    let shape = Shape::new(600, 700, 128).unwrap();
    at_every_level(|level| {
        for t in [1, 2, 0] {
            with_threads(t, || {
                let mut q = vec![5i8; shape.len()];
                let mut s = vec![9f32; shape.n_groups()];
                match int8_quantize(&x, shape, &mut q, &mut s) {
                    Err(QuantError::NonFinite { index, .. }) => assert_eq!(index, last),
                    other => panic!("{level:?}: {other:?}"),
                }
                assert!(q.iter().all(|&v| v == 0) && s.iter().all(|&v| v == 0.0));
                let mut p = vec![5u8; kbit_packed_size(600, 700, 4)];
                let mut z = vec![7u8; shape.n_groups()];
                s.fill(9.0);
                match kbit_quantize(&x, shape, 4, &mut p, &mut s, &mut z) {
                    Err(QuantError::NonFinite { index, .. }) => assert_eq!(index, last),
                    other => panic!("{level:?}: {other:?}"),
                }
                assert!(p.iter().all(|&v| v == 0) && z.iter().all(|&v| v == 0));
                assert!(s.iter().all(|&v| v == 0.0));
            })
            .unwrap();
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// Casts and the scaled FP8 quantizer.

use quant::kernels::fp8::{
    f32_to_fp8_e4m3, f32_to_fp8_e5m2, fp8_e4m3_dequantize, fp8_e4m3_dequantize_ref,
    fp8_e4m3_quantize, fp8_e4m3_quantize_ref, fp8_e4m3_to_f32, fp8_e5m2_to_f32,
};
use quant::kernels::half::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};

/// Every cast of `xs` (encoders in both saturation modes) at the level in force.
fn casts_of(xs: &[f32]) -> Vec<Vec<u32>> {
    let n = xs.len();
    let mut h = vec![0u16; n];
    let mut b = vec![0u16; n];
    let mut e4 = [vec![0u8; n], vec![0u8; n]];
    let mut e5 = [vec![0u8; n], vec![0u8; n]];
    f32_to_f16(xs, &mut h).unwrap();
    f32_to_bf16(xs, &mut b).unwrap();
    for (k, sat) in [false, true].into_iter().enumerate() {
        f32_to_fp8_e4m3(xs, &mut e4[k], sat).unwrap();
        f32_to_fp8_e5m2(xs, &mut e5[k], sat).unwrap();
    }
    let widen16 = |v: &[u16]| v.iter().map(|&x| x as u32).collect::<Vec<_>>();
    let widen8 = |v: &[u8]| v.iter().map(|&x| x as u32).collect::<Vec<_>>();
    vec![
        widen16(&h),
        widen16(&b),
        widen8(&e4[0]),
        widen8(&e4[1]),
        widen8(&e5[0]),
        widen8(&e5[1]),
    ]
}

/// Every decoder on every 16-bit pattern (FP8: on every code, repeated) at the level in force.
fn decodes() -> Vec<Vec<u32>> {
    let all16: Vec<u16> = (0..=u16::MAX).collect();
    let all8: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
    let mut out = Vec::new();
    let mut d = vec![0f32; all16.len()];
    f16_to_f32(&all16, &mut d).unwrap();
    out.push(bits_of(&d));
    bf16_to_f32(&all16, &mut d).unwrap();
    out.push(bits_of(&d));
    fp8_e4m3_to_f32(&all8, &mut d).unwrap();
    out.push(bits_of(&d));
    fp8_e5m2_to_f32(&all8, &mut d).unwrap();
    out.push(bits_of(&d));
    out
}

/// f32 patterns that a stride through all of them steps over: for both signs and every exponent, the
/// ends and the middle of the significand range, and the significands just below, at and just above
/// every rounding tie of each cast (f16 drops 13 significand bits, bf16 16, E4M3 20, E5M2 21) with
/// the kept part even, odd and all ones (the carry into the exponent). Among them: the zeros, the
/// smallest subnormals, the largest finite values, the infinities and the NaNs next to them
/// (`0x7f800001`, `0x7fbfffff`, `0x7fc00000`, `0x7fffffff`). Odd length.
fn edge_patterns() -> Vec<f32> {
    let mut mantissas = vec![
        0u32, 1, 2, 3, 0x3f_ffff, 0x40_0000, 0x40_0001, 0x7f_fffe, 0x7f_ffff,
    ];
    for dropped in [13u32, 16, 20, 21] {
        let half = 1u32 << (dropped - 1);
        let all_ones = 0x7f_ffff >> dropped;
        for kept in [0, 1, 2, 3, all_ones - 1, all_ones] {
            for d in [half - 1, half, half + 1] {
                mantissas.push(((kept << dropped) + d) & 0x7f_ffff);
            }
        }
    }
    let mut out = Vec::new();
    for sign in [0u32, 0x8000_0000] {
        for exp in 0..256u32 {
            for &m in &mantissas {
                out.push(f32::from_bits(sign | exp << 23 | m));
            }
        }
    }
    if out.len() % 2 == 0 {
        out.push(1.0);
    }
    out
}

/// The casts at every level equal the portable ones (which `tests/casts.rs` holds to the scalar
/// references and the golden fixtures) on the edge patterns above and on a stride through all 2^32
/// f32 patterns (odd lengths, so that every block size leaves a tail), and every decoder on every
/// pattern.
#[test]
fn casts_at_every_level_equal_the_portable_path() {
    let edges = edge_patterns();
    let want = with_simd_level(SimdLevel::Scalar, || casts_of(&edges)).unwrap();
    at_every_level(|level| assert_eq!(casts_of(&edges), want, "{level:?}, edge patterns"));
    const STRIDE: u64 = 211;
    let offset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % STRIDE;
    println!("offset {offset}");
    let mut p = offset;
    let mut batch = Vec::new();
    let mut n_batches = 0;
    while p < 1 << 32 {
        batch.clear();
        while batch.len() < 100_003 && p < 1 << 32 {
            batch.push(f32::from_bits(p as u32));
            p += STRIDE;
        }
        let want = with_simd_level(SimdLevel::Scalar, || casts_of(&batch)).unwrap();
        at_every_level(|level| {
            assert_eq!(
                casts_of(&batch),
                want,
                "{level:?}, batch {n_batches}, offset {offset}"
            );
        });
        n_batches += 1;
    }
    let want = with_simd_level(SimdLevel::Scalar, decodes).unwrap();
    at_every_level(|level| assert_eq!(decodes(), want, "{level:?}"));
}

/// The FP8 dequantizer on every code (NaN codes included) times scales at the edges of f32 (the
/// smallest subnormal, a subnormal, near the largest finite, whose products overflow) gives the
/// reference's bits at every level: the AVX2 decoder scales by a power of two before the scale.
#[test]
fn fp8_dequantize_of_every_code_at_extreme_scales_gives_the_reference_bits() {
    let scales = [
        f32::from_bits(1),
        3.7e-39,
        1.0e-30,
        0.5,
        1.0,
        3.0,
        1.0e30,
        f32::MAX / 300.0,
        f32::MAX,
    ];
    // 8 rows of 32 codes per scale: each of the 256 codes meets every scale.
    let codes: Vec<u8> = (0..scales.len() * 256).map(|i| (i % 256) as u8).collect();
    let shape = Shape::new(scales.len() * 8, 32, 0).unwrap();
    let s: Vec<f32> = (0..shape.rows).map(|r| scales[r / 8]).collect();
    let run = |reference: bool| {
        let mut d = vec![0f32; shape.len()];
        if reference {
            fp8_e4m3_dequantize_ref(&codes, &s, shape, &mut d).unwrap();
        } else {
            fp8_e4m3_dequantize(&codes, &s, shape, &mut d).unwrap();
        }
        bits_of(&d)
    };
    let want = run(true);
    assert!(
        want.iter().any(|&b| f32::from_bits(b).is_infinite()),
        "no overflow tested"
    );
    assert!(
        want.iter().any(|&b| f32::from_bits(b).is_nan()),
        "no NaN code tested"
    );
    at_every_level(|level| assert_eq!(run(false), want, "{level:?}"));
}

/// The casts split across threads give the same bits.
#[test]
fn casts_with_threads_give_the_same_bits() {
    let x = big_matrix(300_001, 3);
    let want = with_simd_level(SimdLevel::Scalar, || casts_of(&x)).unwrap();
    at_every_level(|level| {
        for t in [2, 3, 0] {
            with_threads(t, || assert_eq!(casts_of(&x), want, "{level:?} {t}")).unwrap();
        }
    });
}

fn fp8_all(x: &[f32], shape: Shape, reference: bool) -> (Vec<u8>, Vec<u32>, Vec<u32>) {
    let mut q = vec![0u8; shape.len()];
    let mut s = vec![0f32; shape.n_groups()];
    let mut d = vec![0f32; shape.len()];
    if reference {
        fp8_e4m3_quantize_ref(x, shape, &mut q, &mut s).unwrap();
        fp8_e4m3_dequantize_ref(&q, &s, shape, &mut d).unwrap();
    } else {
        fp8_e4m3_quantize(x, shape, &mut q, &mut s).unwrap();
        fp8_e4m3_dequantize(&q, &s, shape, &mut d).unwrap();
    }
    (q, bits_of(&s), bits_of(&d))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fp8_scaled_every_level_equals_ref((shape, x) in matrix_strategy()) {
        let want = fp8_all(&x, shape, true);
        at_every_level(|level| {
            assert_eq!(fp8_all(&x, shape, false), want, "level {level:?}, shape {shape:?}");
        });
    }
}

#[test]
fn fp8_scaled_thread_count_does_not_change_a_bit() {
    let x = big_matrix(600 * 700, 11);
    for shape in [
        Shape::new(600, 700, 0).unwrap(),
        Shape::new(600, 700, 128).unwrap(),
        Shape::new(1, 600 * 700, 0).unwrap(),
    ] {
        let want = fp8_all(&x, shape, true);
        at_every_level(|level| {
            for t in [1, 2, 3, 0] {
                with_threads(t, || {
                    assert_eq!(fp8_all(&x, shape, false), want, "{level:?} {t}")
                })
                .unwrap();
            }
        });
    }
}

/// Groups long enough that the SIMD quantizers take their codes in pieces with the next group's
/// absmax (or range) as a pass of its own (256 elements and more on x86-64): whole rows, groups of
/// 256 and 512 with ragged last groups, an all-zero group and a group whose absmax is its last
/// element, at every level, bit for bit against the references.
#[test]
fn long_groups_at_every_level_equal_the_references() {
    let shapes = [
        Shape::new(3, 1030, 0).unwrap(),
        Shape::new(3, 1030, 256).unwrap(),
        Shape::new(4, 1000, 300).unwrap(),
        Shape::new(2, 1026, 512).unwrap(),
        Shape::new(2, 4100, 0).unwrap(),
    ];
    for shape in shapes {
        let mut x = big_matrix(shape.len(), 13);
        x[..shape.group_len()].fill(0.0);
        let last_of_second = (2 * shape.group_len()).min(shape.len()) - 1;
        x[last_of_second] = 1e4;
        let want8 = int8_all_ref(&x, shape);
        let want4 = kbit_all(&x, shape, 4, true);
        let want_fp8 = fp8_all(&x, shape, true);
        at_every_level(|level| {
            assert_eq!(int8_all(&x, shape), want8, "INT8 {level:?} {shape:?}");
            assert_eq!(
                kbit_all(&x, shape, 4, false),
                want4,
                "INT4 {level:?} {shape:?}"
            );
            assert_eq!(
                fp8_all(&x, shape, false),
                want_fp8,
                "FP8 {level:?} {shape:?}"
            );
        });
    }
}

/// The scaled FP8 quantizer on a stride through every f32 magnitude up to its group's absmax, with
/// both signs, for absmaxes that make the scale exact (448: scale 1, every quotient is the value
/// itself; 448 * 2^-100), inexact (3.7e-3), subnormal (600 and 2000 units of 2^-149: the quotients
/// reach past 448 and saturate) and either side of the smallest normal scale (448 * 2^-126, whose
/// scale is exactly 2^-126, and a few ulps below, whose scale is subnormal): the x86 bodies drop
/// their overflow clamps from a normal scale on. The codes, scales and dequantized values of every
/// level equal the reference's bit for bit.
#[test]
fn fp8_scaled_stride_through_the_quotients() {
    const COLS: usize = 4096;
    for absmax in [
        448.0f32,
        448.0 * 2f32.powi(-100),
        3.7e-3,
        f32::from_bits(600),
        f32::from_bits(2000),
        448.0 * f32::MIN_POSITIVE,
        f32::from_bits((448.0 * f32::MIN_POSITIVE).to_bits() - 3),
    ] {
        let top = absmax.to_bits() as u64;
        let stride = (top / 1_500_000).max(1);
        let mut x: Vec<f32> = (0..=top)
            .step_by(stride as usize)
            .enumerate()
            .map(|(i, b)| {
                let v = f32::from_bits(b as u32);
                if i % 2 == 1 {
                    -v
                } else {
                    v
                }
            })
            .collect();
        x.resize(x.len().div_ceil(COLS) * COLS, 0.0);
        // Each group's first value is its absmax, so every group has the same scale.
        for g in (0..x.len()).step_by(128) {
            x[g] = if g % 256 == 0 { absmax } else { -absmax };
        }
        for group in [128, 0] {
            let shape = Shape::new(x.len() / COLS, COLS, group).unwrap();
            let want = fp8_all(&x, shape, true);
            // Which side of the smallest normal scale the case is on is what it says.
            let scale = f32::from_bits(want.1[0]);
            assert_eq!(
                scale >= f32::MIN_POSITIVE,
                absmax >= 448.0 * f32::MIN_POSITIVE,
                "absmax {absmax:e}"
            );
            at_every_level(|level| {
                assert_eq!(
                    fp8_all(&x, shape, false),
                    want,
                    "{level:?} absmax {absmax:e}"
                );
            });
        }
    }
}

/// `x` moved by `d` ulps (through zero as the integers of the bit patterns do not, so only for x != 0
/// and small `d`).
fn nudge(x: f32, d: i32) -> f32 {
    f32::from_bits((x.to_bits() as i32 + d) as u32)
}

/// Values within a few ulps of every rounding boundary of the codes (integer ties, FP8 midpoints, the
/// FP8 subnormal range), for many scales, give the reference's codes at every level: a SIMD body that
/// computes `x / s` in any other way (an earlier AVX2 one multiplied by `1 / s`) is caught here.
#[test]
fn near_ties_give_the_references_codes() {
    let absmaxes = [
        1.0f32, 0.3, 7.3e-3, 3.3e5, 1.7e-35, 2.5e-37, 9.1e-40, 3.0e37,
    ];
    for &absmax in &absmaxes {
        // INT8: half-integer quotients and integer ones, nudged.
        let s = absmax / 127.0;
        let mut row = vec![absmax];
        for k in -127..=127 {
            for t in [k as f32 + 0.5, k as f32] {
                let x = t * s;
                if x != 0.0 && x.abs() <= absmax {
                    for d in -6..=6 {
                        let v = nudge(x, d);
                        if v.abs() <= absmax {
                            row.push(v);
                        }
                    }
                }
            }
        }
        let shape = Shape::new(1, row.len(), 0).unwrap();
        let want = int8_all_ref(&row, shape);
        let shape_g = Shape::new(1, row.len(), 64).unwrap();
        let want_g = int8_all_ref(&row, shape_g);
        // FP8 E4M3: midpoints between neighbouring codes, times the scale, nudged.
        let sf = absmax / 448.0;
        let vals: Vec<f32> = (0u8..=0x7e)
            .map(quant::kernels::fp8::fp8_e4m3_to_f32_ref)
            .collect();
        let mut frow = vec![absmax];
        for w in vals.windows(2) {
            let x = (w[0] + w[1]) / 2.0 * sf;
            if x != 0.0 && x.is_finite() {
                for d in -10..=10 {
                    let v = nudge(x, d);
                    if v.abs() <= absmax {
                        frow.push(v);
                        frow.push(-v);
                    }
                }
            }
        }
        let fshape = Shape::new(1, frow.len(), 0).unwrap();
        let want_f = fp8_all(&frow, fshape, true);
        // INT4: a group spanning [lo, hi] with its ties nudged.
        let (lo, hi) = (-0.37 * absmax, absmax);
        let (scale, zero) = quant::kernels::kbit::asym_params(lo, hi, 4);
        let mut row4 = vec![lo, hi];
        for k in 0..15 {
            let x = (k as f32 + 0.5 - zero) * scale;
            if x != 0.0 {
                for d in -6..=6 {
                    let v = nudge(x, d);
                    if v > lo && v < hi {
                        row4.push(v);
                    }
                }
            }
        }
        row4.truncate(row4.len() / 2 * 2);
        let shape4 = Shape::new(1, row4.len(), 0).unwrap();
        let want4 = kbit_all(&row4, shape4, 4, true);
        at_every_level(|level| {
            assert_eq!(int8_all(&row, shape), want, "{level:?} absmax {absmax:e}");
            assert_eq!(
                int8_all(&row, shape_g),
                want_g,
                "{level:?} absmax {absmax:e} g64"
            );
            assert_eq!(
                fp8_all(&frow, fshape, false),
                want_f,
                "{level:?} fp8 absmax {absmax:e}"
            );
            assert_eq!(
                kbit_all(&row4, shape4, 4, false),
                want4,
                "{level:?} int4 {absmax:e}"
            );
        });
    }
}

/// INT4 groups whose range is a few subnormal steps (1 to 40 steps of 2^-149, every split of it
/// around 0), holding every multiple of the step in their range: there the scale `(hi - lo) / 15`
/// rounds coarsely (1 step for a range of 8 to 22 steps), so the quotients `x / scale` reach past
/// [-15, 15] (up to 22), where the AVX2 and AVX-512 bodies clamp the codes after rounding, in integer
/// lanes. Every level, the checked and the one-pass quantizer, against the reference.
#[test]
fn int4_groups_a_few_subnormal_steps_wide_give_the_references_codes() {
    const GROUP: usize = 64;
    let step = f32::from_bits(1);
    let mut row = Vec::new();
    for width in 1..=40i32 {
        for below in 0..=width {
            let values: Vec<f32> = (-below..=width - below).map(|k| k as f32 * step).collect();
            row.extend(values.iter().cycle().take(GROUP));
        }
    }
    let shape = Shape::new(1, row.len(), GROUP).unwrap();
    let want = kbit_all(&row, shape, 4, true);
    // The case is what it says: some scale is one step for a range wider than 15 steps.
    let mut groups = row
        .chunks(GROUP)
        .zip(want.1.iter().map(|&b| f32::from_bits(b)));
    assert!(groups.any(|(g, s)| {
        let range = g.iter().fold(0f32, |m, &v| m.max(v)) - g.iter().fold(0f32, |m, &v| m.min(v));
        s == step && range > 15.0 * step
    }));
    at_every_level(|level| {
        assert_eq!(kbit_all(&row, shape, 4, false), want, "{level:?}");
    });
}

/// INT8 groups whose absmax is 1 to 400 subnormal steps, each holding +-absmax and 62 multiples of
/// the step between: there the scale absmax / 127 rounds coarsely (1 step for an absmax of 64 to 190
/// steps), so the quotients reach past 127 (up to 190), where the AVX2 and AVX-512 bodies clamp the
/// codes after rounding, in integer lanes. Every level, against the reference.
#[test]
fn int8_groups_a_few_subnormal_steps_wide_give_the_references_codes() {
    const GROUP: usize = 64;
    let step = f32::from_bits(1);
    let mut row = Vec::new();
    for a in 1..=400i32 {
        row.extend([a as f32 * step, -a as f32 * step]);
        row.extend((0..GROUP as i32 - 2).map(|j| (-a + 2 * a * j / 61) as f32 * step));
    }
    let shape = Shape::new(1, row.len(), GROUP).unwrap();
    let want = int8_all_ref(&row, shape);
    // The case is what it says: some scale is one step for an absmax above 127 steps.
    assert!(row
        .chunks(GROUP)
        .zip(&want.1)
        .any(|(g, &s)| f32::from_bits(s) == step && g[0] > 127.0 * step));
    at_every_level(|level| {
        assert_eq!(int8_all(&row, shape), want, "{level:?}");
    });
}

/// Outputs of `kernels::STREAM_STORES_MIN` (4 Mi) elements and more are written with non-temporal
/// stores by the x86 bodies: every dequantizer, decoder to f32, cast from f32 and INT8 quantizer
/// (checked and one-pass) on such an output,
/// at every level and on 1 and 2 threads, has the scalar bits, with the output 16-byte aligned and
/// not (its first element one element past an aligned address: the head before the first 16-byte
/// boundary).
#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "only the x86 bodies have streaming stores (and this is slow under emulation)"
)]
fn large_outputs_written_with_streaming_stores_keep_the_bits() {
    let (rows, cols) = (1025, 4099);
    let n = rows * cols;
    assert!(n >= 4 << 20);
    let x = big_matrix(n, 11);
    let per_row = Shape::new(rows, cols, 0).unwrap();
    let g128 = Shape::new(rows, cols, 128).unwrap();
    // The codes, made once at the scalar level.
    let codes = with_simd_level(SimdLevel::Scalar, || {
        let quantized = |shape: Shape| {
            let mut q8 = vec![0i8; n];
            let mut s8 = vec![0f32; shape.n_groups()];
            int8_quantize(&x, shape, &mut q8, &mut s8).unwrap();
            let mut f8 = vec![0u8; n];
            let mut sf = vec![0f32; shape.n_groups()];
            fp8_e4m3_quantize(&x, shape, &mut f8, &mut sf).unwrap();
            (q8, s8, f8, sf)
        };
        let mut p4 = vec![0u8; kbit_packed_size(rows, cols, 4)];
        let mut s4 = vec![0f32; g128.n_groups()];
        let mut z4 = vec![0u8; g128.n_groups()];
        kbit_quantize(&x, g128, 4, &mut p4, &mut s4, &mut z4).unwrap();
        let mut h = vec![0u16; n];
        f32_to_f16(&x, &mut h).unwrap();
        let mut b = vec![0u16; n];
        f32_to_bf16(&x, &mut b).unwrap();
        let mut e4 = vec![0u8; n];
        f32_to_fp8_e4m3(&x, &mut e4, false).unwrap();
        (
            [quantized(per_row), quantized(g128)],
            (p4, s4, z4),
            h,
            b,
            e4,
        )
    })
    .unwrap();
    let ([rowwise, grouped], (p4, s4, z4), h, b, e4) = &codes;
    // Every f32 output, written at `offset` elements into its buffer.
    let outputs = |offset: usize| -> Vec<Vec<u32>> {
        let mut buf = vec![0f32; n + offset];
        let d = &mut buf[offset..];
        let mut all = Vec::new();
        for ((q8, s8, f8, sf), shape) in [(rowwise, per_row), (grouped, g128)] {
            int8_dequantize(q8, s8, shape, d).unwrap();
            all.push(bits_of(d));
            fp8_e4m3_dequantize(f8, sf, shape, d).unwrap();
            all.push(bits_of(d));
        }
        kbit_dequantize(p4, s4, z4, g128, 4, d).unwrap();
        all.push(bits_of(d));
        f16_to_f32(h, d).unwrap();
        all.push(bits_of(d));
        bf16_to_f32(b, d).unwrap();
        all.push(bits_of(d));
        fp8_e4m3_to_f32(e4, d).unwrap();
        all.push(bits_of(d));
        fp8_e5m2_to_f32(e4, d).unwrap();
        all.push(bits_of(d));
        let mut buf16 = vec![0u16; n + offset];
        let h = &mut buf16[offset..];
        f32_to_f16(&x, h).unwrap();
        all.push(h.iter().map(|&v| v as u32).collect());
        f32_to_bf16(&x, h).unwrap();
        all.push(h.iter().map(|&v| v as u32).collect());
        let mut buf8 = vec![0u8; n + offset];
        let e = &mut buf8[offset..];
        f32_to_fp8_e4m3(&x, e, true).unwrap();
        all.push(e.iter().map(|&v| v as u32).collect());
        f32_to_fp8_e5m2(&x, e, false).unwrap();
        all.push(e.iter().map(|&v| v as u32).collect());
        // The INT8 quantizer streams its codes too.
        let mut buf_i8 = vec![0i8; n + offset];
        let q = &mut buf_i8[offset..];
        for shape in [per_row, g128] {
            let mut sc = vec![0f32; shape.n_groups()];
            int8_quantize(&x, shape, q, &mut sc).unwrap();
            all.push(q.iter().map(|&v| v as u32).chain(bits_of(&sc)).collect());
        }
        all
    };
    for offset in [0, 1] {
        let want = with_simd_level(SimdLevel::Scalar, || outputs(offset)).unwrap();
        at_every_level(|level| {
            for t in [1, 2] {
                let got = with_threads(t, || outputs(offset)).unwrap();
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        g == w,
                        "{level:?}, {t} threads, offset {offset}: output {k}"
                    );
                }
            }
        });
    }
}
