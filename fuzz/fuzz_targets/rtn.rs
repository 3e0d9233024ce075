//! Round-to-nearest kernels (INT8 symmetric, INT4 asymmetric, FP8 E4M3 scaled) and their
//! dequantization, plus the size queries, through the C exports. Inputs pick shapes (also zero,
//! overflowing), group sizes, buffer lengths (also one too small), NULLs and special floats.
//! On an argument error every output is untouched, on a value error (NaN, infinity, an overflowing
//! group: the arguments all valid) the quantizers' outputs are zero-filled prefixes; on success the result equals the scalar reference bit for bit,
//! only the needed prefix of each output is written, and the round trip stays within the documented
//! bound.
#![no_main]
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::ffi::casts::{quant_fp8_e4m3_dequantize, quant_fp8_e4m3_quantize};
use quant::ffi::rtn::*;
use quant::kernels::fp8::{fp8_e4m3_dequantize_ref, fp8_e4m3_quantize_ref};
use quant::kernels::int4::{int4_dequantize_ref, int4_quantize_ref};
use quant::kernels::int8::{int8_dequantize_ref, int8_quantize_ref};
use quant::kernels::Shape;

/// Buffers can only be honest for shapes of at most MAX_ELEMS elements; bigger valid shapes are given
/// with NULL inputs (the call must reject them before reading), invalid ones with real small buffers.
struct Geometry {
    rows: usize,
    cols: usize,
    group: usize,
    shape: Option<Shape>,
    /// Elements the input buffers really hold.
    real: usize,
    /// The inputs must be NULL (valid shape too large to back with a buffer).
    force_null: bool,
}

fn geometry(inp: &mut Input) -> Geometry {
    let rows = inp.size(64);
    let cols = inp.size(300);
    let group = inp.size(300);
    let shape = Shape::new(rows, cols, group).ok();
    match shape {
        Some(s) if s.len() <= MAX_ELEMS => Geometry {
            rows,
            cols,
            group,
            shape,
            real: s.len(),
            force_null: false,
        },
        Some(_) => Geometry {
            rows,
            cols,
            group,
            shape,
            real: 0,
            force_null: true,
        },
        None => Geometry {
            rows,
            cols,
            group,
            shape,
            real: 16,
            force_null: false,
        },
    }
}

/// The scalar reference's result and output for a dequantization.
type RefResult = (quant::Result<()>, Vec<f32>);

fn status_of(r: quant::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.status(),
    }
}

/// Whether a failed quantizer call's outputs may be zero-filled: a value error, reported only once
/// every argument (shape, pointers, lengths) passed.
fn value_error(status: i32, args_ok: bool) -> bool {
    args_ok
        && (status == quant::error::QUANT_ERR_NON_FINITE
            || status == quant::error::QUANT_ERR_INVALID_ARGUMENT)
}

/// Index of the group of element `i` in the scales array.
fn group_of(s: &Shape, i: usize) -> usize {
    let (r, c) = (i / s.cols, i % s.cols);
    r * s.groups_per_row() + c / s.group_len()
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    pick_simd_and_threads(&mut inp);
    let op = inp.u8() % 7;
    if op == 6 {
        let (rows, cols, group) = (inp.size(1 << 20), inp.size(1 << 20), inp.size(1 << 20));
        clear_detail();
        let count = quant_scale_count(rows, cols, group);
        let packed = quant_int4_packed_size(rows, cols);
        let valid =
            rows > 0 && cols > 0 && (rows as u128) * (cols as u128) <= (isize::MAX as u128) / 4;
        if valid {
            let glen = if group == 0 || group > cols {
                cols
            } else {
                group
            };
            assert_eq!(count as u128, rows as u128 * cols.div_ceil(glen) as u128);
            assert_eq!(packed as u128, rows as u128 * cols.div_ceil(2) as u128);
        } else {
            assert_eq!((count, packed), (0, 0));
            assert!(!detail().is_empty());
        }
        return;
    }
    let g = geometry(&mut inp);
    let n_groups = g.shape.map(|s| s.n_groups()).unwrap_or(4);
    let need_dst = match op {
        2 => g.shape.map(|s| s.rows * s.cols.div_ceil(2)).unwrap_or(8),
        _ => g.shape.map(|s| s.len()).unwrap_or(16),
    };
    let backed = !g.force_null;
    let dst_len = if backed {
        inp.len_for(need_dst)
    } else {
        inp.len_for(4).min(4)
    };
    let groups_len = if backed { inp.len_for(n_groups) } else { 2 };
    let null_src = g.force_null || inp.null();
    let null_a = inp.null();
    let null_b = inp.null();
    let null_c = inp.null();
    let args_ok = g.shape.is_some()
        && !null_src
        && !null_a
        && !null_b
        && (op != 2 || !null_c)
        && dst_len >= need_dst
        && groups_len >= n_groups;
    match op {
        0 | 2 | 4 => {
            let src: Vec<f32> = (0..g.real).map(|_| inp.f32()).collect();
            let sp = in_ptr(&src, null_src);
            let mut scales = Out::<f32>::new(groups_len, null_b);
            let status;
            let mut ok = false;
            if op == 0 {
                let mut dst = Out::<i8>::new(dst_len, null_a);
                status = quant_int8_quantize(
                    sp,
                    g.rows,
                    g.cols,
                    g.group,
                    dst.ptr(),
                    dst.len(),
                    scales.ptr(),
                    scales.len(),
                );
                if check_status("int8_quantize", status) {
                    ok = true;
                    let s = g.shape.unwrap();
                    let (mut rd, mut rs) = (vec![0i8; s.len()], vec![0f32; s.n_groups()]);
                    int8_quantize_ref(&src, s, &mut rd, &mut rs).unwrap();
                    assert_eq!(
                        &dst.buf[..s.len()],
                        &rd[..],
                        "int8 codes differ from the reference"
                    );
                    assert!(
                        bits_eq(&scales.buf[..s.n_groups()], &rs),
                        "int8 scales differ"
                    );
                    assert!(dst.untouched_from(s.len()) && scales.untouched_from(s.n_groups()));
                    let mut back = Out::<f32>::new(s.len(), false);
                    let st = quant_int8_dequantize(
                        dst.buf.as_ptr(),
                        scales.buf.as_ptr(),
                        g.rows,
                        g.cols,
                        g.group,
                        back.ptr(),
                        back.len(),
                    );
                    assert!(check_status("int8_dequantize (round trip)", st));
                    for (i, (&x, &y)) in src.iter().zip(&back.buf).enumerate() {
                        let sc = rs[group_of(&s, i)] as f64;
                        let err = (x as f64 - y as f64).abs();
                        let bound = sc * 0.5 * (1.0 + 1e-6) + (x.abs() as f64) * 1e-6 + 1e-40;
                        assert!(
                            err <= bound,
                            "int8 round trip of {x:e}: {y:e}, scale {sc:e}"
                        );
                    }
                } else if value_error(status, args_ok) {
                    assert!(dst.zeroed_to(need_dst), "int8 codes not zero-filled");
                } else {
                    assert!(dst.untouched());
                    if !null_src && !null_a && !null_b {
                        if let Some(s) = g.shape {
                            let mut d2 = vec![0i8; dst_len];
                            let mut s2 = vec![0f32; groups_len];
                            let r = int8_quantize_ref(&src, s, &mut d2, &mut s2);
                            assert_eq!(
                                status_of(r),
                                status,
                                "int8 status differs from the reference"
                            );
                        }
                    }
                }
            } else if op == 2 {
                let mut dst = Out::<u8>::new(dst_len, null_a);
                let mut zeros = Out::<u8>::new(groups_len, null_c);
                status = quant_int4_quantize(
                    sp,
                    g.rows,
                    g.cols,
                    g.group,
                    dst.ptr(),
                    dst.len(),
                    scales.ptr(),
                    zeros.ptr(),
                    groups_len,
                );
                if check_status("int4_quantize", status) {
                    ok = true;
                    let s = g.shape.unwrap();
                    let (mut rd, mut rs, mut rz) = (
                        vec![0u8; need_dst],
                        vec![0f32; s.n_groups()],
                        vec![0u8; s.n_groups()],
                    );
                    int4_quantize_ref(&src, s, &mut rd, &mut rs, &mut rz).unwrap();
                    assert_eq!(
                        &dst.buf[..need_dst],
                        &rd[..],
                        "int4 codes differ from the reference"
                    );
                    assert!(
                        bits_eq(&scales.buf[..s.n_groups()], &rs),
                        "int4 scales differ"
                    );
                    assert_eq!(&zeros.buf[..s.n_groups()], &rz[..], "int4 zeros differ");
                    assert!(rz.iter().all(|&z| z <= 15));
                    assert!(dst.untouched_from(need_dst));
                    assert!(
                        scales.untouched_from(s.n_groups()) && zeros.untouched_from(s.n_groups())
                    );
                    let mut back = Out::<f32>::new(s.len(), false);
                    let st = quant_int4_dequantize(
                        rd.as_ptr(),
                        rs.as_ptr(),
                        rz.as_ptr(),
                        g.rows,
                        g.cols,
                        g.group,
                        back.ptr(),
                        back.len(),
                    );
                    assert!(check_status("int4_dequantize (round trip)", st));
                    for (i, (&x, &y)) in src.iter().zip(&back.buf).enumerate() {
                        let sc = rs[group_of(&s, i)] as f64;
                        let err = (x as f64 - y as f64).abs();
                        let bound = sc * (1.0 + 1e-6) + (x.abs() as f64) * 1e-6 + 1e-40;
                        assert!(
                            err <= bound,
                            "int4 round trip of {x:e}: {y:e}, scale {sc:e}"
                        );
                        assert!(y.is_finite());
                    }
                } else if value_error(status, args_ok) {
                    assert!(dst.zeroed_to(need_dst) && zeros.zeroed_to(n_groups));
                } else {
                    assert!(dst.untouched() && zeros.untouched());
                    if !null_src && !null_a && !null_b && !null_c {
                        if let Some(s) = g.shape {
                            let mut d2 = vec![0u8; dst_len];
                            let (mut s2, mut z2) = (vec![0f32; groups_len], vec![0u8; groups_len]);
                            let r = int4_quantize_ref(&src, s, &mut d2, &mut s2, &mut z2);
                            assert_eq!(
                                status_of(r),
                                status,
                                "int4 status differs from the reference"
                            );
                        }
                    }
                }
            } else {
                let mut dst = Out::<u8>::new(dst_len, null_a);
                status = quant_fp8_e4m3_quantize(
                    sp,
                    g.rows,
                    g.cols,
                    g.group,
                    dst.ptr(),
                    dst.len(),
                    scales.ptr(),
                    scales.len(),
                );
                if check_status("fp8_e4m3_quantize", status) {
                    ok = true;
                    let s = g.shape.unwrap();
                    let (mut rd, mut rs) = (vec![0u8; s.len()], vec![0f32; s.n_groups()]);
                    fp8_e4m3_quantize_ref(&src, s, &mut rd, &mut rs).unwrap();
                    assert_eq!(
                        &dst.buf[..s.len()],
                        &rd[..],
                        "fp8 codes differ from the reference"
                    );
                    assert!(
                        bits_eq(&scales.buf[..s.n_groups()], &rs),
                        "fp8 scales differ"
                    );
                    assert!(dst.untouched_from(s.len()) && scales.untouched_from(s.n_groups()));
                    let mut back = Out::<f32>::new(s.len(), false);
                    let st = quant_fp8_e4m3_dequantize(
                        rd.as_ptr(),
                        rs.as_ptr(),
                        g.rows,
                        g.cols,
                        g.group,
                        back.ptr(),
                        back.len(),
                    );
                    assert!(check_status("fp8_e4m3_dequantize (round trip)", st));
                    for (i, (&x, &y)) in src.iter().zip(&back.buf).enumerate() {
                        let sc = rs[group_of(&s, i)] as f64;
                        let err = (x as f64 - y as f64).abs();
                        // 3 significand bits: half an ulp is 2^-4 relative; subnormal steps 2^-9.
                        let bound = (x.abs() as f64) * (0.0625 + 1e-6) + sc * 0.002 + 1e-40;
                        assert!(err <= bound, "fp8 round trip of {x:e}: {y:e}, scale {sc:e}");
                    }
                } else if value_error(status, args_ok) {
                    assert!(dst.zeroed_to(need_dst), "fp8 codes not zero-filled");
                } else {
                    assert!(dst.untouched());
                    if !null_src && !null_a && !null_b {
                        if let Some(s) = g.shape {
                            let mut d2 = vec![0u8; dst_len];
                            let mut s2 = vec![0f32; groups_len];
                            let r = fp8_e4m3_quantize_ref(&src, s, &mut d2, &mut s2);
                            assert_eq!(
                                status_of(r),
                                status,
                                "fp8 status differs from the reference"
                            );
                        }
                    }
                }
            }
            if !ok && value_error(status, args_ok) {
                assert!(
                    scales.zeroed_to(n_groups),
                    "scales not zero-filled on a value error"
                );
            } else if !ok {
                assert!(scales.untouched(), "scales written on an argument error");
            }
        }
        _ => {
            // Dequantization of arbitrary codes, scales (NaN, infinity...) and zero points.
            let scales: Vec<f32> = (0..if backed { n_groups } else { 0 })
                .map(|_| inp.f32())
                .collect();
            let scp = in_ptr(&scales, g.force_null || null_b);
            let mut dst = Out::<f32>::new(dst_len, null_a);
            let (name, status, reference): (&str, i32, Option<RefResult>);
            if op == 1 {
                let codes: Vec<i8> = (0..g.real).map(|_| inp.u8() as i8).collect();
                status = quant_int8_dequantize(
                    in_ptr(&codes, null_src),
                    scp,
                    g.rows,
                    g.cols,
                    g.group,
                    dst.ptr(),
                    dst.len(),
                );
                name = "int8_dequantize";
                reference = g.shape.filter(|_| !g.force_null).map(|s| {
                    let mut r = vec![0f32; dst_len];
                    (int8_dequantize_ref(&codes, &scales, s, &mut r), r)
                });
            } else if op == 3 {
                let packed = g.shape.map(|s| s.rows * s.cols.div_ceil(2)).unwrap_or(8);
                let codes: Vec<u8> = (0..if backed { packed } else { 0 })
                    .map(|_| inp.u8())
                    .collect();
                let zeros: Vec<u8> = (0..scales.len())
                    .map(|_| {
                        if inp.u8() < 250 {
                            inp.u8() % 16
                        } else {
                            inp.u8()
                        }
                    })
                    .collect();
                status = quant_int4_dequantize(
                    in_ptr(&codes, null_src),
                    scp,
                    in_ptr(&zeros, g.force_null || null_c),
                    g.rows,
                    g.cols,
                    g.group,
                    dst.ptr(),
                    dst.len(),
                );
                name = "int4_dequantize";
                reference = g.shape.filter(|_| !g.force_null).map(|s| {
                    let mut r = vec![0f32; dst_len];
                    (int4_dequantize_ref(&codes, &scales, &zeros, s, &mut r), r)
                });
            } else {
                let codes: Vec<u8> = (0..g.real).map(|_| inp.u8()).collect();
                status = quant_fp8_e4m3_dequantize(
                    in_ptr(&codes, null_src),
                    scp,
                    g.rows,
                    g.cols,
                    g.group,
                    dst.ptr(),
                    dst.len(),
                );
                name = "fp8_e4m3_dequantize";
                reference = g.shape.filter(|_| !g.force_null).map(|s| {
                    let mut r = vec![0f32; dst_len];
                    (fp8_e4m3_dequantize_ref(&codes, &scales, s, &mut r), r)
                });
            }
            let nulls = null_src || null_a || null_b || (op == 3 && null_c);
            if check_status(name, status) {
                let s = g.shape.unwrap();
                let (r, rv) = reference.expect("success needs a valid shape");
                r.expect("the reference fails where the export succeeded");
                assert!(
                    bits_eq(&dst.buf[..s.len()], &rv[..s.len()]),
                    "{name} differs from ref"
                );
                assert!(dst.untouched_from(s.len()));
            } else {
                assert!(dst.untouched(), "{name} wrote on error");
                if let (false, Some((r, _))) = (nulls, reference) {
                    assert_eq!(
                        status_of(r),
                        status,
                        "{name} status differs from the reference"
                    );
                }
            }
        }
    }
});
