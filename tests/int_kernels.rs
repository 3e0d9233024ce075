//! The integer round-to-nearest kernels (INT8 symmetric, k-bit/INT4 asymmetric, the signed-nibble
//! helpers) through the safe rlib API: round-trip bounds, all-zero groups, ties to even, idempotence,
//! packing at every width, fast paths equal to the scalar references bit for bit, every argument error
//! leaving the outputs untouched and every value error zero-filling them, and the relative output
//! error on a real MiniLM layer.
use proptest::prelude::*;
use quant::error::QuantError;
use quant::kernels::int4::{
    int4_dequantize, int4_dequantize_ref, int4_packed_size, int4_quantize, int4_quantize_ref,
    pack_int4, unpack_int4,
};
use quant::kernels::int8::{
    int8_dequantize, int8_dequantize_ref, int8_quantize, int8_quantize_ref,
};
use quant::kernels::kbit::{
    asym_params, dequantize_code, kbit_dequantize, kbit_dequantize_ref, kbit_packed_size,
    kbit_quantize, kbit_quantize_ref, pack_row, pack_row_ref, packed_row_bytes, quantize_code,
    unpack_row, unpack_row_ref,
};
use quant::kernels::Shape;

// ---------------------------------------------------------------------------------------------------
// Helpers

/// Everything one INT8 quantization produces.
struct Int8Out {
    codes: Vec<i8>,
    scales: Vec<f32>,
    deq: Vec<f32>,
}

fn int8_run(x: &[f32], shape: Shape) -> Int8Out {
    let mut codes = vec![0i8; shape.len()];
    let mut scales = vec![0f32; shape.n_groups()];
    int8_quantize(x, shape, &mut codes, &mut scales).unwrap();
    let mut deq = vec![0f32; shape.len()];
    int8_dequantize(&codes, &scales, shape, &mut deq).unwrap();
    Int8Out { codes, scales, deq }
}

/// Everything one k-bit quantization produces, with the codes unpacked.
struct KbitOut {
    packed: Vec<u8>,
    codes: Vec<u8>,
    scales: Vec<f32>,
    zeros: Vec<u8>,
    deq: Vec<f32>,
}

fn kbit_run(x: &[f32], shape: Shape, bits: u32) -> KbitOut {
    let mut packed = vec![0u8; kbit_packed_size(shape.rows, shape.cols, bits)];
    let mut scales = vec![0f32; shape.n_groups()];
    let mut zeros = vec![0u8; shape.n_groups()];
    kbit_quantize(x, shape, bits, &mut packed, &mut scales, &mut zeros).unwrap();
    let mut deq = vec![0f32; shape.len()];
    kbit_dequantize(&packed, &scales, &zeros, shape, bits, &mut deq).unwrap();
    let rb = packed_row_bytes(shape.cols, bits);
    let mut codes = vec![0u8; shape.len()];
    for (row, out) in packed.chunks(rb).zip(codes.chunks_mut(shape.cols)) {
        unpack_row(row, bits, out);
    }
    KbitOut {
        packed,
        codes,
        scales,
        zeros,
        deq,
    }
}

/// Index of the group (into scales/zeros) of element `i`.
fn group_of(shape: Shape, i: usize) -> usize {
    (i / shape.cols) * shape.groups_per_row() + (i % shape.cols) / shape.group_len()
}

fn bits_of(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Rounding slack of the f32 arithmetic (`x / scale`, `q * scale`): a few ulps of the larger magnitude.
fn slack(x: f32, y: f32) -> f32 {
    4.0 * f32::EPSILON * x.abs().max(y.abs())
}

// ---------------------------------------------------------------------------------------------------
// Strategies

/// A shape with a group size that divides cols, does not, is 0, or exceeds cols; cols up to 200 so that
/// rows span several 64-column chunks of the fast paths.
fn shape_strategy() -> impl Strategy<Value = Shape> {
    (1usize..4, 1usize..200).prop_flat_map(|(rows, cols)| {
        prop_oneof![
            Just(0usize),
            1usize..=cols,
            Just(cols),
            cols + 1..cols + 50,
            Just(if cols % 4 == 0 { 4 } else { 3 }),
            Just(64),
            Just(128),
        ]
        .prop_map(move |g| Shape::new(rows, cols, g).unwrap())
    })
}

/// Values of mixed magnitudes (each group gets its own exponent), with exact zeros, runs of zeros that
/// make all-zero groups, all-positive and all-negative stretches.
fn matrix_strategy() -> impl Strategy<Value = (Shape, Vec<f32>)> {
    shape_strategy().prop_flat_map(|shape| {
        let n = shape.len();
        let elem = prop_oneof![
            6 => -1.0f32..1.0,
            1 => Just(0.0f32),
            1 => 0.0f32..1.0,
        ];
        (
            Just(shape),
            proptest::collection::vec(elem, n),
            proptest::collection::vec(-60i32..60, shape.n_groups()),
            proptest::collection::vec(0u8..6, shape.n_groups()),
        )
            .prop_map(|(shape, mut v, exps, kinds)| {
                for (i, x) in v.iter_mut().enumerate() {
                    let g = group_of(shape, i);
                    *x *= 2f32.powi(exps[g]);
                    match kinds[g] {
                        0 => *x = 0.0,      // an all-zero group
                        1 => *x = x.abs(),  // no negative value: lo = 0, zero point 0
                        2 => *x = -x.abs(), // no positive value: hi = 0
                        _ => {}
                    }
                }
                (shape, v)
            })
    })
}

fn bits_strategy() -> impl Strategy<Value = u32> {
    1u32..=8
}

// ---------------------------------------------------------------------------------------------------
// INT8

proptest! {
    #[test]
    fn int8_round_trip_within_half_a_step((shape, x) in matrix_strategy()) {
        let out = int8_run(&x, shape);
        for (i, (&a, &b)) in x.iter().zip(&out.deq).enumerate() {
            let s = out.scales[group_of(shape, i)];
            prop_assert!((a - b).abs() <= s / 2.0 + slack(a, b), "x[{i}] = {a} -> {b}, scale {s}");
            prop_assert!((-127..=127).contains(&out.codes[i]));
        }
    }

    #[test]
    fn int8_fast_equals_ref((shape, x) in matrix_strategy()) {
        let out = int8_run(&x, shape);
        let mut codes = vec![0i8; shape.len()];
        let mut scales = vec![0f32; shape.n_groups()];
        int8_quantize_ref(&x, shape, &mut codes, &mut scales).unwrap();
        prop_assert_eq!(&codes, &out.codes);
        prop_assert_eq!(bits_of(&scales), bits_of(&out.scales));
        let mut deq = vec![0f32; shape.len()];
        int8_dequantize_ref(&codes, &scales, shape, &mut deq).unwrap();
        prop_assert_eq!(bits_of(&deq), bits_of(&out.deq));
    }

    #[test]
    fn int8_scale_is_absmax_over_127_and_zero_groups_stay_zero((shape, x) in matrix_strategy()) {
        let out = int8_run(&x, shape);
        for (g, &s) in out.scales.iter().enumerate() {
            let members: Vec<usize> = (0..x.len()).filter(|&i| group_of(shape, i) == g).collect();
            let absmax = members.iter().map(|&i| x[i].abs()).fold(0.0f32, f32::max);
            prop_assert_eq!(s.to_bits(), (absmax / 127.0).to_bits());
            if absmax == 0.0 {
                for &i in &members {
                    prop_assert_eq!(out.codes[i], 0);
                    prop_assert_eq!(out.deq[i].to_bits(), 0.0f32.to_bits());
                }
            }
        }
    }

    #[test]
    fn int8_is_idempotent((shape, x) in matrix_strategy()) {
        let first = int8_run(&x, shape);
        let second = int8_run(&first.deq, shape);
        prop_assert_eq!(&second.codes, &first.codes);
        for (&a, &b) in first.deq.iter().zip(&second.deq) {
            prop_assert!((a - b).abs() <= slack(a, b), "{a} vs {b}");
        }
    }

    #[test]
    fn kbit_round_trip_within_one_step((shape, x) in matrix_strategy(), bits in bits_strategy()) {
        let out = kbit_run(&x, shape, bits);
        let maxq = (1u32 << bits) - 1;
        for (i, (&a, &b)) in x.iter().zip(&out.deq).enumerate() {
            let g = group_of(shape, i);
            let s = out.scales[g];
            prop_assert!((a - b).abs() <= s + slack(a, b), "x[{i}] = {a} -> {b}, scale {s}");
            // In fact within half a step (plus rounding): the zero point only shifts the clamp bounds
            // by at most half a step, and the extremes stay inside them.
            prop_assert!(
                (a - b).abs() <= s / 2.0 + slack(a, b) + slack(s * maxq as f32, 0.0),
                "x[{i}] = {a} -> {b}, scale {s}"
            );
            prop_assert!(u32::from(out.codes[i]) <= maxq);
            prop_assert!(u32::from(out.zeros[g]) <= maxq);
        }
    }

    #[test]
    fn kbit_fast_equals_ref((shape, x) in matrix_strategy(), bits in bits_strategy()) {
        let out = kbit_run(&x, shape, bits);
        let mut packed = vec![0u8; out.packed.len()];
        let mut scales = vec![0f32; shape.n_groups()];
        let mut zeros = vec![0u8; shape.n_groups()];
        kbit_quantize_ref(&x, shape, bits, &mut packed, &mut scales, &mut zeros).unwrap();
        prop_assert_eq!(&packed, &out.packed);
        prop_assert_eq!(bits_of(&scales), bits_of(&out.scales));
        prop_assert_eq!(&zeros, &out.zeros);
        let mut deq = vec![0f32; shape.len()];
        kbit_dequantize_ref(&packed, &scales, &zeros, shape, bits, &mut deq).unwrap();
        prop_assert_eq!(bits_of(&deq), bits_of(&out.deq));
        // The per-element building blocks give the same codes as the kernel.
        let maxq = (1u32 << bits) - 1;
        for (i, &xi) in x.iter().enumerate() {
            let g = group_of(shape, i);
            let q = quantize_code(xi, scales[g], f32::from(zeros[g]), maxq);
            prop_assert_eq!(q, out.codes[i]);
            prop_assert_eq!(
                dequantize_code(q, scales[g], f32::from(zeros[g])).to_bits(),
                out.deq[i].to_bits()
            );
        }
    }

    #[test]
    fn int4_fast_equals_ref_and_is_kbit_4((shape, x) in matrix_strategy()) {
        let n = int4_packed_size(shape.rows, shape.cols);
        prop_assert_eq!(n, shape.rows * shape.cols.div_ceil(2));
        let (mut p1, mut p2) = (vec![0u8; n], vec![0u8; n]);
        let (mut s1, mut s2) = (vec![0f32; shape.n_groups()], vec![0f32; shape.n_groups()]);
        let (mut z1, mut z2) = (vec![0u8; shape.n_groups()], vec![0u8; shape.n_groups()]);
        int4_quantize(&x, shape, &mut p1, &mut s1, &mut z1).unwrap();
        int4_quantize_ref(&x, shape, &mut p2, &mut s2, &mut z2).unwrap();
        prop_assert_eq!(&p1, &p2);
        prop_assert_eq!(bits_of(&s1), bits_of(&s2));
        prop_assert_eq!(&z1, &z2);
        let k = kbit_run(&x, shape, 4);
        prop_assert_eq!(&p1, &k.packed);
        let (mut d1, mut d2) = (vec![0f32; shape.len()], vec![0f32; shape.len()]);
        int4_dequantize(&p1, &s1, &z1, shape, &mut d1).unwrap();
        int4_dequantize_ref(&p1, &s1, &z1, shape, &mut d2).unwrap();
        prop_assert_eq!(bits_of(&d1), bits_of(&d2));
        prop_assert_eq!(bits_of(&d1), bits_of(&k.deq));
    }

    #[test]
    fn kbit_params_and_zero_groups((shape, x) in matrix_strategy(), bits in bits_strategy()) {
        let out = kbit_run(&x, shape, bits);
        for g in 0..shape.n_groups() {
            let members: Vec<usize> = (0..x.len()).filter(|&i| group_of(shape, i) == g).collect();
            let min = members.iter().map(|&i| x[i]).fold(f32::INFINITY, f32::min);
            let max = members.iter().map(|&i| x[i]).fold(f32::NEG_INFINITY, f32::max);
            let (s, z) = asym_params(min, max, bits);
            prop_assert_eq!(out.scales[g].to_bits(), s.to_bits());
            prop_assert_eq!(f32::from(out.zeros[g]), z);
            // 0 is exactly representable: a zero input comes back as exactly zero.
            for &i in &members {
                if x[i] == 0.0 {
                    prop_assert_eq!(out.codes[i], out.zeros[g]);
                    prop_assert_eq!(out.deq[i], 0.0);
                }
            }
            if min == 0.0 && max == 0.0 {
                prop_assert_eq!((out.scales[g], out.zeros[g]), (0.0, 0));
                for &i in &members {
                    prop_assert_eq!(out.codes[i], 0);
                    prop_assert_eq!(out.deq[i].to_bits(), 0.0f32.to_bits());
                }
            }
        }
    }

    #[test]
    fn kbit_is_idempotent((shape, x) in matrix_strategy(), bits in bits_strategy()) {
        // Idempotence holds exactly unless a zero point is (within rounding) a tie, -lo / scale = k + 1/2:
        // see `kbit_zero_point_ties_break_idempotence` for why. Such inputs are set aside here.
        let maxq = ((1u32 << bits) - 1) as f32;
        for g in 0..shape.n_groups() {
            let members = (0..x.len()).filter(|&i| group_of(shape, i) == g);
            let (lo, hi) = members.fold((0.0f32, 0.0f32), |(l, h), i| (l.min(x[i]), h.max(x[i])));
            let u = -lo / ((hi - lo) / maxq);
            prop_assume!(hi == lo || ((u - u.floor()) - 0.5).abs() > 1e-3);
        }
        let first = kbit_run(&x, shape, bits);
        let second = kbit_run(&first.deq, shape, bits);
        prop_assert_eq!(&second.codes, &first.codes);
        prop_assert_eq!(&second.zeros, &first.zeros);
        for (&a, &b) in first.deq.iter().zip(&second.deq) {
            prop_assert!((a - b).abs() <= slack(a, b), "{a} vs {b}");
        }
    }

    #[test]
    fn pack_round_trip_at_every_width(
        bits in bits_strategy(),
        raw in proptest::collection::vec(any::<u8>(), 0..150),
    ) {
        let mask = ((1u16 << bits) - 1) as u8;
        let codes: Vec<u8> = raw.iter().map(|&c| c & mask).collect();
        let n = packed_row_bytes(codes.len(), bits);
        prop_assert_eq!(n, (codes.len() * bits as usize).div_ceil(8));
        // Two bytes of sentinel past the end: the packers write exactly n bytes.
        let mut fast = vec![0xA5u8; n + 2];
        let mut slow = vec![0x5Au8; n + 2];
        pack_row(&codes, bits, &mut fast);
        pack_row_ref(&codes, bits, &mut slow);
        prop_assert_eq!(&fast[..n], &slow[..n]);
        prop_assert_eq!(&fast[n..], &[0xA5, 0xA5]);
        prop_assert_eq!(&slow[n..], &[0x5A, 0x5A]);
        // Unused high bits of the last byte are 0.
        let used = codes.len() * bits as usize;
        if !used.is_multiple_of(8) {
            prop_assert_eq!(fast[n - 1] >> (used % 8), 0);
        }
        // Codes wider than the width are masked, not spilled into the neighbours.
        let mut wide = vec![0u8; n];
        pack_row(&raw, bits, &mut wide);
        prop_assert_eq!(&wide[..], &fast[..n]);
        let mut back = vec![0u8; codes.len()];
        unpack_row(&fast, bits, &mut back);
        prop_assert_eq!(&back, &codes);
        let mut back_ref = vec![0u8; codes.len()];
        unpack_row_ref(&fast, bits, &mut back_ref);
        prop_assert_eq!(&back_ref, &codes);
    }

    #[test]
    fn pack_int4_round_trip(values in proptest::collection::vec(-8i8..=7, 0..100)) {
        let n = values.len();
        let mut packed = vec![0xA5u8; n.div_ceil(2) + 1];
        pack_int4(&values, &mut packed).unwrap();
        prop_assert_eq!(packed[n.div_ceil(2)], 0xA5);
        for (i, &v) in values.iter().enumerate() {
            prop_assert_eq!((packed[i / 2] >> (4 * (i % 2))) & 0x0f, v as u8 & 0x0f);
        }
        let mut back = vec![0x55i8; n + 1];
        unpack_int4(&packed, n, &mut back).unwrap();
        prop_assert_eq!(&back[..n], &values[..]);
        prop_assert_eq!(back[n], 0x55);
    }
}

// ---------------------------------------------------------------------------------------------------
// Hand-made cases: ties, a small documented row, group geometry

#[test]
fn int8_ties_round_to_even() {
    // absmax 127 -> scale exactly 1, so every x / scale below is an exact tie.
    let x = [127.0f32, 0.5, 1.5, 2.5, -2.5, -0.5, 126.5, -3.5, -126.5];
    let shape = Shape::new(1, x.len(), 0).unwrap();
    let out = int8_run(&x, shape);
    assert_eq!(out.scales, [1.0]);
    assert_eq!(out.codes, [127, 0, 2, 2, -2, 0, 126, -4, -126]);
    // A small row: -0.5 / (1/127) is exactly -63.5 in f32 and rounds to -64, 0.25 -> 31.75 -> 32.
    let out = int8_run(&[1.0, -0.5, 0.25, -1.0], Shape::new(1, 4, 0).unwrap());
    assert_eq!(out.codes, [127, -64, 32, -127]);
    // Symmetric: never -128, even for the most negative value.
    let out = int8_run(&[-1.0, 0.5], Shape::new(1, 2, 0).unwrap());
    assert_eq!(out.codes, [-127, 64]);
}

#[test]
fn kbit_ties_round_to_even() {
    // min -7, max 8: scale 1, zero 7. x / scale ties round to even before the zero is added.
    let x = [-7.0f32, 8.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5];
    let out = kbit_run(&x, Shape::new(1, x.len(), 0).unwrap(), 4);
    assert_eq!((out.scales[0], out.zeros[0]), (1.0, 7));
    assert_eq!(out.codes, [0, 15, 7, 9, 9, 7, 5, 5]);
    // Zero point ties: -lo / scale = 7.5 -> 8, 6.5 -> 6.
    assert_eq!(asym_params(-7.5, 7.5, 4), (1.0, 8.0));
    assert_eq!(asym_params(-6.5, 8.5, 4), (1.0, 6.0));
    // 8 bits: min -127.5, max 127.5 -> scale 1, zero 128 (127.5 -> 128, even).
    assert_eq!(asym_params(-127.5, 127.5, 8), (1.0, 128.0));
    // quantize_code clamps and honours scale 0.
    assert_eq!(quantize_code(100.0, 1.0, 7.0, 15), 15);
    assert_eq!(quantize_code(-100.0, 1.0, 7.0, 15), 0);
    assert_eq!(quantize_code(3.0, 0.0, 0.0, 15), 0);
    assert_eq!(dequantize_code(9, 0.5, 7.0), 1.0);
}

#[test]
fn kbit_zero_point_ties_break_idempotence() {
    // lo = -2.5, hi = 12.5 at 4 bits: scale 1 and -lo / scale = 2.5, a tie, so zero = 2 (even). Then
    // hi / scale = 12.5 rounds to 12 (even), code 14, not 15: the dequantized group spans [-2, 12], and
    // quantizing it again picks scale 14/15 and moves 12 to code 15. This is the GPTQ/AWQ formula at an
    // exact tie, not a defect of the kernel (a rare event on real weights); the round trip stays in bounds.
    let x = [-2.5f32, 12.5];
    let shape = Shape::new(1, 2, 0).unwrap();
    let first = kbit_run(&x, shape, 4);
    assert_eq!((first.scales[0], first.zeros[0]), (1.0, 2));
    assert_eq!(first.codes, [0, 14]);
    assert_eq!(first.deq, [-2.0, 12.0]);
    let second = kbit_run(&first.deq, shape, 4);
    assert_eq!((second.scales[0], second.zeros[0]), (14.0 / 15.0, 2));
    assert_eq!(second.codes, [0, 15]);
}

#[test]
fn int4_known_values_and_nibble_order() {
    // One row of 5 (odd): lo = -1, hi = 2 -> scale 0.2, zero 5.
    let x = [-1.0f32, 2.0, 0.0, 1.0, -0.2];
    let shape = Shape::new(1, 5, 0).unwrap();
    let mut packed = [0xA5u8; 4];
    let mut scales = [0f32; 1];
    let mut zeros = [0u8; 1];
    int4_quantize(&x, shape, &mut packed, &mut scales, &mut zeros).unwrap();
    assert_eq!((scales[0], zeros[0]), (0.2, 5));
    // codes [0, 15, 5, 10, 4]: the even column in the low nibble, the odd row's pad nibble 0.
    assert_eq!(packed, [0xF0, 0xA5, 0x04, 0xA5]);
}

#[test]
fn the_seed_pack_values_round_trip() {
    let values: [i8; 7] = [1, -2, 3, -4, 5, 6, 7];
    let mut packed = [0u8; 4];
    pack_int4(&values, &mut packed).unwrap();
    assert_eq!(packed, [0xE1, 0xC3, 0x65, 0x07]);
    let mut back = [0i8; 7];
    unpack_int4(&packed, 7, &mut back).unwrap();
    assert_eq!(back, values);
    // Every nibble sign-extends.
    let all: Vec<i8> = (-8..=7).collect();
    let mut packed = [0u8; 8];
    pack_int4(&all, &mut packed).unwrap();
    let mut back = [0i8; 16];
    unpack_int4(&packed, 16, &mut back).unwrap();
    assert_eq!(&back[..], &all[..]);
    // n = 0 is fine and writes nothing.
    pack_int4(&[], &mut []).unwrap();
    unpack_int4(&[], 0, &mut []).unwrap();
}

#[test]
fn group_geometry_of_every_kind() {
    let x: Vec<f32> = (0..2 * 10).map(|i| (i as f32 * 0.37).sin()).collect();
    // (group_size, groups per row): divides, does not divide, 0, == cols, > cols.
    for (g, per_row) in [
        (5, 2),
        (4, 3),
        (3, 4),
        (0, 1),
        (10, 1),
        (11, 1),
        (1000, 1),
        (1, 10),
    ] {
        let shape = Shape::new(2, 10, g).unwrap();
        assert_eq!(shape.groups_per_row(), per_row, "group_size {g}");
        let out = int8_run(&x, shape);
        assert_eq!(out.scales.len(), 2 * per_row);
        let glen = shape.group_len();
        for r in 0..2 {
            for k in 0..per_row {
                let cols = k * glen..((k + 1) * glen).min(10);
                let absmax = cols.map(|c| x[r * 10 + c].abs()).fold(0.0f32, f32::max);
                assert_eq!(
                    out.scales[r * per_row + k],
                    absmax / 127.0,
                    "g {g} r {r} k {k}"
                );
            }
        }
        for bits in 1..=8 {
            let out = kbit_run(&x, shape, bits);
            assert_eq!(out.scales.len(), 2 * per_row);
        }
    }
}

#[test]
fn tiny_groups_whose_scale_underflows_dequantize_to_zero() {
    let tiny = f32::from_bits(1); // the smallest subnormal
    let out = int8_run(&[tiny, -tiny], Shape::new(1, 2, 0).unwrap());
    assert_eq!((out.scales[0], &out.codes[..]), (0.0, &[0i8, 0][..]));
    assert_eq!(out.deq, [0.0, 0.0]);
    let out = kbit_run(&[tiny, 0.0], Shape::new(1, 2, 0).unwrap(), 4);
    assert_eq!((out.scales[0], out.zeros[0]), (0.0, 0));
    assert_eq!(out.deq, [0.0, 0.0]);
}

// ---------------------------------------------------------------------------------------------------
// Errors: the status, and nothing written

const S8: i8 = 0x5A;
const SU8: u8 = 0xA5;
const SF: f32 = -12345.5;

#[test]
fn int8_argument_errors_leave_outputs_untouched_value_errors_zero_them() {
    let shape = Shape::new(2, 3, 2).unwrap(); // 6 elements, 4 groups
    let x = [1.0f32, 2.0, 3.0, -4.0, 5.0, 6.0];
    let check = |src: &[f32], dlen: usize, slen: usize| -> QuantError {
        let mut fast_out = (vec![S8; dlen], vec![SF; slen]);
        let fast = int8_quantize(src, shape, &mut fast_out.0, &mut fast_out.1).unwrap_err();
        let mut slow_out = (vec![S8; dlen], vec![SF; slen]);
        let slow = int8_quantize_ref(src, shape, &mut slow_out.0, &mut slow_out.1).unwrap_err();
        assert_eq!(fast.to_string(), slow.to_string());
        let (dst, scales) = &fast_out;
        if matches!(fast, QuantError::NonFinite { .. }) {
            // A value error: the 6 codes and 4 scales zero-filled, nothing past them touched.
            assert!(dst[..6].iter().all(|&v| v == 0) && dst[6..].iter().all(|&v| v == S8));
            assert!(scales[..4].iter().all(|&v| v == 0.0) && scales[4..].iter().all(|&v| v == SF));
        } else {
            assert!(dst.iter().all(|&v| v == S8) && scales.iter().all(|&v| v == SF));
        }
        assert_eq!(
            (
                &fast_out.0,
                fast_out.1.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            ),
            (
                &slow_out.0,
                slow_out.1.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            )
        );
        fast
    };
    assert!(matches!(
        check(&x, 5, 4),
        QuantError::BufferTooSmall {
            got: 5,
            need: 6,
            ..
        }
    ));
    assert!(matches!(
        check(&x, 6, 3),
        QuantError::BufferTooSmall {
            got: 3,
            need: 4,
            ..
        }
    ));
    assert!(matches!(check(&x[..5], 6, 4), QuantError::ShapeMismatch(_)));
    for (i, bad) in [(5, f32::NAN), (3, f32::INFINITY), (0, f32::NEG_INFINITY)] {
        let mut y = x;
        y[i] = bad;
        match check(&y, 7, 5) {
            QuantError::NonFinite { index, .. } => assert_eq!(index, i),
            other => panic!("{other:?}"),
        }
    }
    // Dequantize: wrong input lengths, a non-finite scale, a short dst.
    let codes = [1i8; 6];
    let scales = [1.0f32; 4];
    let mut dst = [SF; 6];
    assert!(matches!(
        int8_dequantize(&codes[..5], &scales, shape, &mut dst),
        Err(QuantError::ShapeMismatch(_))
    ));
    assert!(matches!(
        int8_dequantize(&codes, &scales[..3], shape, &mut dst),
        Err(QuantError::ShapeMismatch(_))
    ));
    assert!(matches!(
        int8_dequantize(&codes, &scales, shape, &mut dst[..5]),
        Err(QuantError::BufferTooSmall { .. })
    ));
    assert!(matches!(
        int8_dequantize(&codes, &[1.0, 1.0, f32::NAN, 1.0], shape, &mut dst),
        Err(QuantError::NonFinite { index: 2, .. })
    ));
    assert!(matches!(
        int8_dequantize_ref(&codes, &[1.0, 1.0, f32::NAN, 1.0], shape, &mut dst),
        Err(QuantError::NonFinite { index: 2, .. })
    ));
    assert!(dst.iter().all(|&v| v == SF));
    // -128 is accepted by the dequantizer.
    int8_dequantize(&[-128, 0, 0, 0, 0, 0], &scales, shape, &mut dst).unwrap();
    assert_eq!(dst[0], -128.0);
}

#[test]
fn kbit_argument_errors_leave_outputs_untouched_value_errors_zero_them() {
    let shape = Shape::new(2, 3, 2).unwrap(); // 4 groups, rows of ceil(3 * 3 / 8) = 2 bytes at 3 bits
    let x = [1.0f32, 2.0, 3.0, -4.0, 5.0, 6.0];
    let check = |src: &[f32], bits: u32, dlen: usize, slen: usize, zlen: usize| -> QuantError {
        let mut dst = vec![SU8; dlen];
        let mut scales = vec![SF; slen];
        let mut zeros = vec![SU8; zlen];
        let fast = kbit_quantize(src, shape, bits, &mut dst, &mut scales, &mut zeros).unwrap_err();
        let filled = |d: &[u8], s: &[f32], z: &[u8], v: (u8, f32)| {
            d.iter().all(|&x| x == v.0)
                && s.iter().all(|&x| x == v.1)
                && z.iter().all(|&x| x == v.0)
        };
        // An argument error writes nothing; a value error zero-fills all of these exact-size buffers.
        let value_error = matches!(fast, QuantError::NonFinite { .. })
            || matches!(&fast, QuantError::InvalidArgument(m) if m.contains("group"));
        let want = if value_error { (0, 0.0) } else { (SU8, SF) };
        assert!(filled(&dst, &scales, &zeros, want), "{fast:?}");
        let (mut dst, mut scales, mut zeros) = (vec![SU8; dlen], vec![SF; slen], vec![SU8; zlen]);
        let slow =
            kbit_quantize_ref(src, shape, bits, &mut dst, &mut scales, &mut zeros).unwrap_err();
        assert!(filled(&dst, &scales, &zeros, want), "{slow:?}");
        assert_eq!(fast.to_string(), slow.to_string());
        fast
    };
    assert_eq!(packed_row_bytes(3, 3), 2);
    assert!(matches!(
        check(&x, 0, 4, 4, 4),
        QuantError::InvalidArgument(_)
    ));
    assert!(matches!(
        check(&x, 9, 4, 4, 4),
        QuantError::InvalidArgument(_)
    ));
    assert!(matches!(
        check(&x, 3, 3, 4, 4),
        QuantError::BufferTooSmall {
            got: 3,
            need: 4,
            ..
        }
    ));
    assert!(matches!(
        check(&x, 3, 4, 3, 4),
        QuantError::BufferTooSmall {
            got: 3,
            need: 4,
            ..
        }
    ));
    assert!(matches!(
        check(&x, 3, 4, 4, 3),
        QuantError::BufferTooSmall {
            got: 3,
            need: 4,
            ..
        }
    ));
    assert!(matches!(
        check(&x[..5], 3, 4, 4, 4),
        QuantError::ShapeMismatch(_)
    ));
    let mut y = x;
    y[4] = f32::NAN;
    assert!(matches!(
        check(&y, 3, 4, 4, 4),
        QuantError::NonFinite { index: 4, .. }
    ));
    // A group whose range overflows f32: row 1, group 0 holds -3e38 and 3e38.
    let y = [1.0f32, 2.0, 3.0, -3e38, 3e38, 6.0];
    match check(&y, 3, 4, 4, 4) {
        QuantError::InvalidArgument(msg) => assert!(msg.contains("row 1, group 0"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // The same extremes in different groups are fine.
    let y = [3e38f32, 2.0, 3.0, -3e38, 5.0, 6.0];
    let out = kbit_run(&y, shape, 3);
    assert!(out.deq.iter().all(|v| v.is_finite()));

    // Dequantize errors.
    let packed = [0u8; 4];
    let scales = [1.0f32; 4];
    let zeros = [1u8; 4];
    let mut dst = [SF; 6];
    let r = |p: &[u8], s: &[f32], z: &[u8], bits: u32, d: &mut [f32]| {
        let a = kbit_dequantize(p, s, z, shape, bits, d).unwrap_err();
        let b = kbit_dequantize_ref(p, s, z, shape, bits, d).unwrap_err();
        assert_eq!(a.to_string(), b.to_string());
        a
    };
    assert!(matches!(
        r(&packed, &scales, &zeros, 0, &mut dst),
        QuantError::InvalidArgument(_)
    ));
    assert!(matches!(
        r(&packed[..3], &scales, &zeros, 3, &mut dst),
        QuantError::ShapeMismatch(_)
    ));
    assert!(matches!(
        r(&packed, &scales[..3], &zeros, 3, &mut dst),
        QuantError::ShapeMismatch(_)
    ));
    assert!(matches!(
        r(&packed, &scales, &zeros[..3], 3, &mut dst),
        QuantError::ShapeMismatch(_)
    ));
    assert!(matches!(
        r(&packed, &scales, &zeros, 3, &mut dst[..5]),
        QuantError::BufferTooSmall { .. }
    ));
    assert!(matches!(
        r(
            &packed,
            &[1.0, f32::INFINITY, 1.0, 1.0],
            &zeros,
            3,
            &mut dst
        ),
        QuantError::NonFinite { index: 1, .. }
    ));
    match r(&packed, &scales, &[0, 0, 0, 8], 3, &mut dst) {
        QuantError::InvalidArgument(msg) => assert!(msg.contains("zeros[3]"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(dst.iter().all(|&v| v == SF));
}

#[test]
fn values_whose_dequantization_would_overflow_are_rejected() {
    let max = f32::MAX;
    let below = f32::from_bits(max.to_bits() - 1);
    let shape = Shape::new(2, 2, 0).unwrap();
    // INT8: only an absmax of exactly f32::MAX makes 127 * scale round to infinity.
    let (q, s) = ([S8; 4], [SF; 2]);
    for f in [int8_quantize, int8_quantize_ref] {
        let (mut q, mut s) = (q, s);
        match f(&[1.0, 2.0, -max, 1.0], shape, &mut q, &mut s).unwrap_err() {
            QuantError::InvalidArgument(msg) => assert!(msg.contains("row 1, group 0"), "{msg}"),
            other => panic!("{other:?}"),
        }
        // A value error: the outputs zero-filled.
        assert_eq!((q, s.map(f32::to_bits)), ([0; 4], [0; 2]));
    }
    let out = int8_run(&[below, -below, 1.0, -3e38], shape);
    assert!(out.deq.iter().all(|v| v.is_finite()));
    assert_eq!(out.codes, [127, -127, 0, -127]);
    // k-bit: [0, f32::MAX] dequantizes to infinity at 5 and 7 bits (15 * (MAX / 15) is MAX, 31 * (MAX /
    // 31) is not); the same at 4 bits is fine.
    let shape = Shape::new(1, 2, 0).unwrap();
    for (bits, x) in [(5, [0.0, max]), (7, [-max, 0.0]), (5, [-max, -1.0])] {
        let mut p = [SU8; 2];
        let mut sc = [SF; 1];
        let mut z = [SU8; 1];
        let b = kbit_quantize_ref(&x, shape, bits, &mut p, &mut sc, &mut z).unwrap_err();
        let (mut p, mut sc, mut z) = ([SU8; 2], [SF; 1], [SU8; 1]);
        let a = kbit_quantize(&x, shape, bits, &mut p, &mut sc, &mut z).unwrap_err();
        assert_eq!(a.to_string(), b.to_string());
        assert!(
            matches!(&a, QuantError::InvalidArgument(m) if m.contains("row 0, group 0")),
            "{a:?}"
        );
        assert_eq!((p, sc[0].to_bits(), z), ([0; 2], 0, [0; 1]));
    }
    // Near the top of the range a quantization either fails or dequantizes to finite values.
    let mut accepted = 0;
    for bits in 1..=8 {
        for x in [
            [0.0, 3e38],
            [-3e38, 0.0],
            [1e38, -1e38],
            [below, 0.0],
            [max, -1e30],
            [max, 0.0],
        ] {
            let n = kbit_packed_size(1, 2, bits);
            let (mut p, mut sc, mut z) = (vec![0u8; n], [0f32; 1], [0u8; 1]);
            if kbit_quantize(&x, shape, bits, &mut p, &mut sc, &mut z).is_ok() {
                let mut deq = [0f32; 2];
                kbit_dequantize(&p, &sc, &z, shape, bits, &mut deq).unwrap();
                assert!(deq.iter().all(|v| v.is_finite()), "{bits} bits: {x:?}");
                accepted += 1;
            }
        }
    }
    assert!(accepted >= 40, "only {accepted} of 48 accepted");
    assert_eq!(kbit_run(&[max, 0.0], shape, 4).deq, [max, 0.0]);
    // Just below the threshold of the fast check (2^126), the fast check alone decides.
    let x = [8.5e37f32, -8.5e37];
    for bits in 1..=8 {
        assert!(kbit_run(&x, shape, bits).deq.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn pack_int4_errors_leave_outputs_untouched() {
    let mut dst = [SU8; 4];
    match pack_int4(&[1, 2, 3, 8, -9], &mut dst).unwrap_err() {
        QuantError::InvalidArgument(msg) => assert!(msg.contains("values[3]"), "{msg}"),
        other => panic!("{other:?}"),
    }
    match pack_int4(&[0, 0, -9], &mut dst).unwrap_err() {
        QuantError::InvalidArgument(msg) => assert!(msg.contains("values[2]"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        pack_int4(&[1, 2, 3], &mut dst[..1]),
        Err(QuantError::BufferTooSmall {
            got: 1,
            need: 2,
            ..
        })
    ));
    assert_eq!(dst, [SU8; 4]);
    let mut out = [S8; 5];
    assert!(matches!(
        unpack_int4(&[0x11, 0x22], 5, &mut out),
        Err(QuantError::BufferTooSmall {
            got: 2,
            need: 3,
            ..
        })
    ));
    assert!(matches!(
        unpack_int4(&[0x11, 0x22, 0x33], 5, &mut out[..4]),
        Err(QuantError::BufferTooSmall {
            got: 4,
            need: 5,
            ..
        })
    ));
    assert_eq!(out, [S8; 5]);
}

#[test]
fn sizes_of_invalid_shapes_are_zero() {
    assert_eq!(int4_packed_size(0, 5), 0);
    assert_eq!(int4_packed_size(5, 0), 0);
    assert_eq!(int4_packed_size(usize::MAX, 2), 0);
    assert_eq!(int4_packed_size(3, 5), 9);
    assert_eq!(kbit_packed_size(3, 5, 3), 6);
    assert_eq!(kbit_packed_size(3, 5, 0), 0);
    assert_eq!(kbit_packed_size(3, 5, 9), 0);
}

// ---------------------------------------------------------------------------------------------------
// Real data: a MiniLM layer and its activations

fn read_f32(name: &str, len: usize) -> Vec<f32> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/minilm")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len(), len * 4, "{}", path.display());
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// `||X M^T||_F^2` for every `M` in `ms` (`rows x cols`), through the Gram matrix `G = X^T X`
/// (`||X M^T||_F^2 = sum_r m_r^T G m_r`), all in f64.
fn output_energies(x: &[f32], cols: usize, ms: &[Vec<f64>]) -> Vec<f64> {
    let mut gram = vec![0f64; cols * cols];
    let mut xr = vec![0f64; cols];
    for row in x.chunks_exact(cols) {
        for (d, &v) in xr.iter_mut().zip(row) {
            *d = f64::from(v);
        }
        for i in 0..cols {
            let xi = xr[i];
            let g = &mut gram[i * cols..(i + 1) * cols];
            for (gj, &xj) in g.iter_mut().zip(&xr) {
                *gj += xi * xj;
            }
        }
    }
    ms.iter()
        .map(|m| {
            let mut total = 0f64;
            for mr in m.chunks_exact(cols) {
                for i in 0..cols {
                    let gi = &gram[i * cols..(i + 1) * cols];
                    let dot: f64 = gi.iter().zip(mr).map(|(a, b)| a * b).sum();
                    total += mr[i] * dot;
                }
            }
            total
        })
        .collect()
}

#[test]
fn real_layer_relative_output_error_matches_the_reference() {
    let (rows, cols, tokens) = (384, 384, 2048);
    let w = read_f32(
        "encoder.layer.0.attention.self.query.weight.f32",
        rows * cols,
    );
    let x = read_f32("x_calib.layer0.attn_in.f32", tokens * cols);

    let int8 = int8_run(&w, Shape::new(rows, cols, 0).unwrap());
    let int4 = kbit_run(&w, Shape::new(rows, cols, 128).unwrap(), 4);
    let diff = |q: &[f32]| -> Vec<f64> {
        w.iter()
            .zip(q)
            .map(|(&a, &b)| f64::from(a) - f64::from(b))
            .collect()
    };
    let wf: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
    let e = output_energies(&x, cols, &[wf, diff(&int8.deq), diff(&int4.deq)]);
    let (rel8, rel4) = (e[1] / e[0], e[2] / e[0]);
    eprintln!("relative output error: INT8 per channel {rel8:.5e}, INT4 g128 {rel4:.5e}");
    for (name, got, want) in [
        ("INT8 per channel", rel8, 4.5824e-05),
        ("INT4 g128", rel4, 8.3063e-03),
    ] {
        assert!(
            ((got - want) / want).abs() <= 0.01,
            "{name}: relative output error {got:.5e}, reference {want:.4e}"
        );
    }
}
