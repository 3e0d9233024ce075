//! Whole-layer quantization through `quant_quantize` / `quant_quantize_group` for every kind (valid
//! and invalid methods, NULLs, zero and overflowing shapes, special floats), then every `quant_weight_*`
//! accessor and `quant_weight_dequantize` with buffers of any length. On error no handle is written
//! and outputs are untouched; on success the round-to-nearest kinds equal the kernels' C exports bit
//! for bit, and the accessors' lengths agree with the layout.
#![no_main]
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::ffi::casts::quant_fp8_e4m3_quantize;
use quant::ffi::method::*;
use quant::ffi::rtn::{quant_int4_quantize, quant_int8_quantize};
use quant::ffi::weight::*;
use quant::kernels::Shape;

fn method(inp: &mut Input) -> quant_method {
    quant_method {
        kind: inp.enum_i32(6),
        bits: if inp.u8() < 230 {
            (inp.u8() % 10) as u32
        } else {
            inp.u32()
        },
        group_size: if inp.u8() < 230 {
            [0, 1, 2, 3, 4, 8, 16, 33][inp.u8() as usize % 8]
        } else {
            inp.u32()
        },
        alpha: if inp.bool() {
            0.5
        } else {
            f64::from_bits(inp.u64())
        },
    }
}

/// Checks a weight made by a successful call against the kernels, and exercises every accessor.
fn check_weight(
    q: *const quant_weight,
    m: &quant_method,
    w: &[f32],
    rows: usize,
    cols: usize,
    inp: &mut Input,
) {
    let (mut r, mut c) = (0usize, 0usize);
    assert!(check_status(
        "weight_shape",
        quant_weight_shape(q, &mut r, &mut c)
    ));
    assert_eq!((r, c), (rows, cols));
    let mut mo = quant_method {
        kind: -1,
        bits: 0,
        group_size: 0,
        alpha: 0.0,
    };
    assert!(check_status(
        "weight_method",
        quant_weight_method(q, &mut mo)
    ));
    assert_eq!((mo.kind, mo.group_size), (m.kind, m.group_size));
    let shape = Shape::new(rows, cols, m.group_size as usize).unwrap();
    let (mut dl, mut sl, mut zl, mut il, mut gl) = (1usize, 1usize, 1usize, 1usize, 1usize);
    let data = quant_weight_data(q, &mut dl);
    let scales = quant_weight_scales(q, &mut sl);
    let zeros = quant_weight_zero_points(q, &mut zl);
    let _ = quant_weight_input_scales(q, &mut il);
    let _ = quant_weight_group_index(q, &mut gl);
    assert!(!data.is_null() && !scales.is_null());
    assert_eq!(sl, shape.n_groups());
    let data = unsafe { std::slice::from_raw_parts(data, dl) };
    let scales = unsafe { std::slice::from_raw_parts(scales, sl) };
    // The same matrix through the kernels' C exports.
    match m.kind {
        QUANT_INT8_SYMMETRIC => {
            let (mut d, mut s) = (vec![0i8; shape.len()], vec![0f32; sl]);
            let st = quant_int8_quantize(
                w.as_ptr(),
                rows,
                cols,
                m.group_size as usize,
                d.as_mut_ptr(),
                d.len(),
                s.as_mut_ptr(),
                s.len(),
            );
            assert!(check_status("int8_quantize (kernel)", st));
            assert_eq!(
                data,
                d.iter().map(|&x| x as u8).collect::<Vec<_>>().as_slice()
            );
            assert!(s
                .iter()
                .zip(scales)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(zeros.is_null() && zl == 0);
        }
        QUANT_INT4_ASYMMETRIC => {
            let (mut d, mut s, mut z) = (vec![0u8; dl], vec![0f32; sl], vec![0u8; sl]);
            let st = quant_int4_quantize(
                w.as_ptr(),
                rows,
                cols,
                m.group_size as usize,
                d.as_mut_ptr(),
                d.len(),
                s.as_mut_ptr(),
                z.as_mut_ptr(),
                sl,
            );
            assert!(check_status("int4_quantize (kernel)", st));
            assert_eq!(data, d.as_slice());
            assert!(s
                .iter()
                .zip(scales)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            let zp = unsafe { std::slice::from_raw_parts(zeros, zl) };
            assert!(z.iter().zip(zp).all(|(&a, &b)| a as f32 == b));
        }
        QUANT_FP8_E4M3 => {
            let (mut d, mut s) = (vec![0u8; shape.len()], vec![0f32; sl]);
            let st = quant_fp8_e4m3_quantize(
                w.as_ptr(),
                rows,
                cols,
                m.group_size as usize,
                d.as_mut_ptr(),
                d.len(),
                s.as_mut_ptr(),
                s.len(),
            );
            assert!(check_status("fp8_quantize (kernel)", st));
            assert_eq!(data, d.as_slice());
            assert!(s
                .iter()
                .zip(scales)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        _ => {}
    }
    // Dequantize into buffers of any length.
    let need = rows * cols;
    let mut dst = Out::<f32>::new(inp.len_for(need), inp.null());
    let st = quant_weight_dequantize(q, dst.ptr(), dst.len());
    if check_status("weight_dequantize", st) {
        assert!(dst.untouched_from(need));
        for (i, (&x, &y)) in w.iter().zip(&dst.buf).enumerate() {
            let s =
                scales[(i / cols) * shape.groups_per_row() + (i % cols) / shape.group_len()] as f64;
            let err = (x as f64 - y as f64).abs();
            let bound = s * 1.000001 + (x.abs() as f64) * 0.0626 + 1e-40;
            assert!(err <= bound, "round trip of {x:e} gave {y:e} (scale {s:e})");
        }
    } else {
        assert!(dst.untouched());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let m = method(&mut inp);
    let null_m = inp.null();
    let cols = inp.size(96);
    let group = inp.u8().is_multiple_of(8);
    if !group {
        let rows = inp.size(48);
        let valid = Shape::new(rows, cols, 0).ok();
        let len = match valid {
            Some(s) if s.len() <= MAX_ELEMS => s.len(),
            Some(_) => return, // cannot back a buffer that large honestly: covered by tests/limits.rs
            None => 8,
        };
        let w: Vec<f32> = (0..len).map(|_| inp.f32()).collect();
        let null_w = inp.null();
        let null_out = inp.null();
        let mut out: *mut quant_weight = std::ptr::dangling_mut();
        let sentinel = out;
        let st = quant_quantize(
            if null_m { std::ptr::null() } else { &m },
            std::ptr::null(),
            in_ptr(&w, null_w),
            rows,
            cols,
            std::ptr::null(),
            if null_out {
                std::ptr::null_mut()
            } else {
                &mut out
            },
        );
        if check_status("quantize", st) {
            assert!(matches!(m.kind, 0..=2));
            check_weight(out, &m, &w, rows, cols, &mut inp);
            quant_weight_free(out);
        } else {
            assert_eq!(out, sentinel, "handle written on error");
        }
    } else {
        let n = inp.size(4);
        let n_real = n.min(4);
        let rows: Vec<usize> = (0..n_real).map(|_| inp.size(16)).collect();
        let mut mats: Vec<Vec<f32>> = Vec::new();
        for &r in &rows {
            let len = match Shape::new(r, cols, 0) {
                Ok(s) if s.len() <= MAX_ELEMS => s.len(),
                Ok(_) => return,
                Err(_) => 4,
            };
            mats.push((0..len).map(|_| inp.f32()).collect());
        }
        let null_one = inp.u8().is_multiple_of(8);
        let ptrs: Vec<*const f32> = mats
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if null_one && i + 1 == n_real {
                    std::ptr::null()
                } else {
                    v.as_ptr()
                }
            })
            .collect();
        let ptrs_p = if n > 4 {
            std::ptr::null()
        } else {
            in_ptr(&ptrs, inp.null())
        };
        let rows_p = if n > 4 {
            std::ptr::null()
        } else {
            in_ptr(&rows, inp.null())
        };
        let mut outs = Out::<*mut quant_weight>::new(n_real, inp.null());
        let st = quant_quantize_group(
            if null_m { std::ptr::null() } else { &m },
            std::ptr::null(),
            ptrs_p,
            rows_p,
            n,
            cols,
            std::ptr::null(),
            if n > 4 {
                std::ptr::null_mut()
            } else {
                outs.ptr()
            },
        );
        if check_status("quantize_group", st) {
            for (i, &q) in outs.buf.iter().enumerate() {
                check_weight(q, &m, &mats[i], rows[i], cols, &mut inp);
                quant_weight_free(q);
            }
        } else {
            assert!(outs.untouched(), "handles written on error");
        }
    }
    // NULL handles on every accessor.
    let mut len = 7usize;
    assert!(quant_weight_data(std::ptr::null(), &mut len).is_null());
    assert_eq!(len, 0);
    let (mut r, mut c) = (3usize, 4usize);
    assert!(!check_status(
        "weight_shape(NULL)",
        quant_weight_shape(std::ptr::null(), &mut r, &mut c)
    ));
    assert_eq!((r, c), (3, 4));
    quant_weight_free(std::ptr::null_mut());
});
