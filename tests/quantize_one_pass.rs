//! The row quantizers (INT8, INT4, k-bit, FP8 E4M3) check their input in the pass that quantizes it.
//! Against their scalar references (which check the whole input first): the same outputs bit for bit
//! on success, at every SIMD level and thread count; on a value error (a NaN or infinity in a late
//! group, an overflowing group) the same status and detail (the first bad index), with the outputs'
//! prefixes zero-filled and nothing past them touched; on an argument error nothing written.
use proptest::prelude::*;
use quant::error::QuantError;
use quant::kernels::fp8::{fp8_e4m3_quantize, fp8_e4m3_quantize_ref};
use quant::kernels::int4::{int4_packed_size, int4_quantize, int4_quantize_ref};
use quant::kernels::int8::{int8_quantize, int8_quantize_ref};
use quant::kernels::kbit::{kbit_packed_size, kbit_quantize, kbit_quantize_ref};
use quant::kernels::par::with_threads;
use quant::kernels::simd::{available_levels, with_simd_level};
use quant::kernels::Shape;

/// Sentinel past the written prefixes: an error must never touch it.
const PAD: usize = 5;

/// Outputs of one quantizer call: status, codes, scale bits, zero points (empty if none), each
/// `PAD` elements longer than the call needs, starting as a non-zero sentinel.
type Outputs = (Result<(), QuantError>, Vec<u8>, Vec<u32>, Vec<u8>);

#[derive(Clone, Copy, Debug)]
enum Kind {
    Int8,
    Int4,
    Fp8,
    Kbit(u32),
}

/// `reference`: the scalar reference; else the quantizer itself.
fn run(kind: Kind, reference: bool, x: &[f32], shape: Shape) -> Outputs {
    let g = shape.n_groups();
    let mut s = vec![7.5f32; g + PAD];
    let mut z = vec![9u8; g + PAD];
    let (res, codes) = match kind {
        Kind::Int8 => {
            let mut q = vec![0x55i8; shape.len() + PAD];
            let f = if reference {
                int8_quantize_ref
            } else {
                int8_quantize
            };
            let r = f(x, shape, &mut q, &mut s);
            z.clear();
            (r, q.iter().map(|&v| v as u8).collect())
        }
        Kind::Fp8 => {
            let mut q = vec![0x55u8; shape.len() + PAD];
            let f = if reference {
                fp8_e4m3_quantize_ref
            } else {
                fp8_e4m3_quantize
            };
            let r = f(x, shape, &mut q, &mut s);
            z.clear();
            (r, q)
        }
        Kind::Int4 => {
            let mut q = vec![0x55u8; int4_packed_size(shape.rows, shape.cols) + PAD];
            let f = if reference {
                int4_quantize_ref
            } else {
                int4_quantize
            };
            (f(x, shape, &mut q, &mut s, &mut z), q)
        }
        Kind::Kbit(bits) => {
            let mut q = vec![0x55u8; kbit_packed_size(shape.rows, shape.cols, bits) + PAD];
            let f = if reference {
                kbit_quantize_ref
            } else {
                kbit_quantize
            };
            (f(x, shape, bits, &mut q, &mut s, &mut z), q)
        }
    };
    (res, codes, s.iter().map(|v| v.to_bits()).collect(), z)
}

const KINDS: [Kind; 5] = [
    Kind::Int8,
    Kind::Int4,
    Kind::Fp8,
    Kind::Kbit(3),
    Kind::Kbit(8),
];

/// The quantizer and its reference at every level and thread count: equal on success.
fn same_on_success(x: &[f32], shape: Shape) {
    for level in available_levels() {
        for threads in [1, 3] {
            for kind in KINDS {
                let (fast, reference) = with_simd_level(level, || {
                    with_threads(threads, || {
                        (run(kind, false, x, shape), run(kind, true, x, shape))
                    })
                    .unwrap()
                })
                .unwrap();
                assert!(fast.0.is_ok(), "{kind:?} {shape:?}: {:?}", fast.0);
                assert_eq!(
                    fast, reference,
                    "{kind:?} {shape:?} {level:?} {threads} threads"
                );
            }
        }
    }
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
        })
        .collect()
}

#[test]
fn equal_to_the_reference_on_success() {
    // Rows larger than the thread split threshold, odd columns, groups that do not divide a row,
    // per tensor (one scale for a single row), per row.
    for (rows, cols, group) in [
        (64, 4096, 128),
        (300, 777, 64),
        (3, 50, 0),
        (1, 5000, 0),
        (1, 5000, 128),
        (33, 256, 256),
        (17, 130, 7),
    ] {
        let shape = Shape::new(rows, cols, group).unwrap();
        same_on_success(&values(shape.len(), (rows * cols) as u64), shape);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn equal_to_the_reference_on_any_shape(
        rows in 1usize..9, cols in 1usize..300, group in 0usize..70, seed in any::<u64>()
    ) {
        let shape = Shape::new(rows, cols, group).unwrap();
        same_on_success(&values(shape.len(), seed), shape);
    }
}

/// A value error: the quantizer returns the reference's error and detail (`first_bad`: the index the
/// detail must name, for a NaN or infinity), with the prefixes zero-filled and the padding untouched,
/// as the reference leaves them.
fn value_error(kind: Kind, x: &[f32], shape: Shape, first_bad: Option<usize>) {
    for level in available_levels() {
        for threads in [1, 2] {
            let (fast, reference) = with_simd_level(level, || {
                with_threads(threads, || {
                    (run(kind, false, x, shape), run(kind, true, x, shape))
                })
                .unwrap()
            })
            .unwrap();
            let what = format!("{kind:?} {shape:?} {level:?} {threads} threads");
            let (fe, re) = (
                fast.0.as_ref().unwrap_err(),
                reference.0.as_ref().unwrap_err(),
            );
            assert_eq!(fe.status(), re.status(), "{what}");
            assert_eq!(fe.to_string(), re.to_string(), "{what}");
            match (first_bad, fe) {
                (Some(i), QuantError::NonFinite { index, .. }) => assert_eq!(*index, i, "{what}"),
                (None, QuantError::InvalidArgument(_)) => {}
                _ => panic!("{what}: {fe:?}"),
            }
            for out in [&fast, &reference] {
                let (q, s, z) = (&out.1, &out.2, &out.3);
                assert!(q[..q.len() - PAD].iter().all(|&b| b == 0), "{what}");
                assert!(q[q.len() - PAD..].iter().all(|&b| b == 0x55), "{what}");
                assert!(s[..s.len() - PAD].iter().all(|&b| b == 0), "{what}");
                assert!(
                    s[s.len() - PAD..].iter().all(|&b| b == 7.5f32.to_bits()),
                    "{what}"
                );
                if !z.is_empty() {
                    assert!(z[..z.len() - PAD].iter().all(|&b| b == 0), "{what}");
                    assert!(z[z.len() - PAD..].iter().all(|&b| b == 9), "{what}");
                }
            }
        }
    }
}

#[test]
fn a_non_finite_value_zero_fills_the_outputs_and_names_the_first_bad_index() {
    let shape = Shape::new(40, 3000, 128).unwrap();
    let clean = values(shape.len(), 11);
    // First element, a late row (after many rows were written), the very last element; NaN and
    // both infinities; two bad values (the first one must be named).
    // A NaN inside a full group, whose range a pipelined body takes while it quantizes the group
    // before (AVX2). A NaN in the second group: the first group whose check the x86 INT4 loop makes
    // after the codes of the group before it (`Pipeline::LATE`).
    let cases: [&[(usize, f32)]; 7] = [
        &[(0, f32::NAN)],
        &[(130, f32::NAN)],
        &[(37 * 3000 + 5, f32::INFINITY)],
        &[(40 * 3000 - 1, f32::NEG_INFINITY)],
        &[(39 * 3000, f32::NAN), (2 * 3000 + 1, f32::INFINITY)],
        &[(20 * 3000 + 2999, f32::NAN)],
        &[(17 * 3000 + 300, f32::NAN)],
    ];
    for bad in cases {
        let mut x = clean.clone();
        for &(i, v) in bad {
            x[i] = v;
        }
        let first = bad.iter().map(|&(i, _)| i).min();
        for kind in KINDS {
            value_error(kind, &x, shape, first);
        }
    }
    // Groups of 100: a NaN in the SIMD part (multiples of 32) and one in the tail of a group.
    let shape = Shape::new(40, 3000, 100).unwrap();
    for at in [11 * 3000 + 1040, 11 * 3000 + 1099] {
        let mut x = clean.clone();
        x[at] = f32::NAN;
        for kind in KINDS {
            value_error(kind, &x, shape, Some(at));
        }
    }
}

#[test]
fn an_overflowing_group_zero_fills_the_outputs() {
    // f32::MAX: INT8's 127 * scale overflows; the 4-bit range hi - lo overflows with -f32::MAX.
    let shape = Shape::new(30, 200, 64).unwrap();
    let mut x = values(shape.len(), 5);
    x[25 * 200 + 70] = f32::MAX;
    value_error(Kind::Int8, &x, shape, None);
    x[25 * 200 + 71] = -f32::MAX;
    value_error(Kind::Int4, &x, shape, None);
    // A NaN in a later row wins over the overflow of an earlier group: the first bad index.
    x[29 * 200] = f32::NAN;
    value_error(Kind::Int8, &x, shape, Some(29 * 200));
    value_error(Kind::Int4, &x, shape, Some(29 * 200));
}

#[test]
fn an_argument_error_writes_nothing() {
    // A NaN in the input too: the length errors are found first, before anything is written.
    let shape = Shape::new(8, 100, 32).unwrap();
    let mut x = values(shape.len(), 3);
    x[50] = f32::NAN;
    let mut q = vec![0x55i8; shape.len() - 1];
    let mut s = vec![7.5f32; shape.n_groups()];
    let e = int8_quantize(&x, shape, &mut q, &mut s).unwrap_err();
    assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e:?}");
    assert!(q.iter().all(|&v| v == 0x55) && s.iter().all(|&v| v == 7.5));
    let mut q = vec![0x55u8; int4_packed_size(8, 100)];
    let mut z = vec![9u8; shape.n_groups() - 1];
    let e = int4_quantize(&x, shape, &mut q, &mut s, &mut z).unwrap_err();
    assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e:?}");
    assert!(q.iter().all(|&v| v == 0x55) && z.iter().all(|&v| v == 9));
    let mut q = vec![0x55u8; shape.len()];
    let e = fp8_e4m3_quantize(&x[1..], shape, &mut q, &mut s).unwrap_err();
    assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e:?}");
    assert!(q.iter().all(|&v| v == 0x55) && s.iter().all(|&v| v == 7.5));
    let e = kbit_quantize(&x, shape, 9, &mut q, &mut s, &mut z).unwrap_err();
    assert!(matches!(e, QuantError::InvalidArgument(_)), "{e:?}");
    assert!(q.iter().all(|&v| v == 0x55) && s.iter().all(|&v| v == 7.5));
}

#[test]
fn a_single_row_zero_fills_its_outputs_on_a_value_error_too() {
    // Per tensor (one scale, which needs every element first) and groups of one row.
    for (cols, group) in [(5000, 0), (5000, 128)] {
        let shape = Shape::new(1, cols, group).unwrap();
        let mut x = values(cols, 9);
        x[4000] = f32::NAN;
        for kind in KINDS {
            value_error(kind, &x, shape, Some(4000));
        }
    }
}
