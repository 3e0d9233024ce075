//! Calibration, options and the calibration-based methods (GPTQ, AWQ, SmoothQuant) through the C ABI:
//! `quant_options_*` with any values, `quant_calib_new_ex` / `_add` / `_set_hessian` / `_tokens` with
//! any flags, widths, token counts, NaN/infinity and arbitrary Hessians, then `quant_quantize`,
//! `quant_quantize_group` and `quant_quantize_ex` for every kind against them.
//! Invariants: known status, never INTERNAL; on error no handle is written and a calibration is
//! unchanged (token count); on success the accessors agree with the layout, the dequantized weight is
//! finite, the result does not depend on the thread count, and `quant_quantize_ex` (F32) equals
//! `quant_quantize` bit for bit.
#![no_main]
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::ffi::calib::*;
use quant::ffi::formats::quant_quantize_ex;
use quant::ffi::method::*;
use quant::ffi::options::*;
use quant::ffi::weight::*;
use quant::kernels::source::QUANT_DTYPE_F32;

const MAX_ROWS: usize = 8;
const MAX_COLS: usize = 40;
const MAX_TOKENS: usize = 12;

fn method(inp: &mut Input) -> quant_method {
    let kind = match inp.u8() % 8 {
        0..=1 => QUANT_GPTQ,
        2..=3 => QUANT_AWQ,
        4..=5 => QUANT_SMOOTHQUANT,
        6 => inp.enum_i32(6),
        _ => inp.u32() as i32,
    };
    quant_method {
        kind,
        bits: if inp.u8() < 240 {
            (inp.u8() % 10) as u32
        } else {
            inp.u32()
        },
        group_size: if inp.u8() < 240 {
            [0, 1, 2, 4, 8, 16, 32, 7][inp.u8() as usize % 8]
        } else {
            inp.u32()
        },
        alpha: if inp.u8() < 230 {
            (inp.u8() % 11) as f64 / 10.0
        } else {
            f64::from_bits(inp.u64())
        },
    }
}

/// Options with arbitrary settings; every setter's status is checked (and the handle left valid).
fn options(inp: &mut Input) -> *mut quant_options {
    let mut o: *mut quant_options = std::ptr::null_mut();
    assert!(check_status("options_new", quant_options_new(&mut o)));
    for _ in 0..(inp.u8() % 6) {
        let s = match inp.u8() % 8 {
            0 => quant_options_set_act_order(o, inp.bool()),
            1 => {
                let v = match inp.u8() % 4 {
                    0 => f64::from_bits(inp.u64()),
                    1 => [0.0, 1.0, -0.1, f64::NAN, f64::INFINITY, 1e-12][inp.u8() as usize % 6],
                    _ => (inp.u8() as f64 + 1.0) / 300.0,
                };
                quant_options_set_damp_percent(o, v)
            }
            2 => quant_options_set_block_size(o, inp.size(200)),
            3 => quant_options_set_symmetric(o, inp.bool()),
            4 => quant_options_set_static_groups(o, inp.bool()),
            5 => quant_options_set_mse_search(o, inp.u8().is_multiple_of(4)),
            6 => quant_options_set_sample_tokens(o, inp.size(20)),
            _ => {
                quant_options_set_threads(o, inp.size(5000).min(if inp.bool() { 3 } else { 5000 }))
            }
        };
        check_status("options_set", s);
    }
    // NULL handles are errors, not crashes.
    assert!(!check_status(
        "options_set(NULL)",
        quant_options_set_threads(std::ptr::null_mut(), 1)
    ));
    o
}

struct Outcome {
    data: Vec<u8>,
    scales: Vec<u32>,
    deq: Vec<u32>,
}

/// Checks a weight made by a successful call and returns what must be reproducible.
fn check_weight(q: *const quant_weight, m: &quant_method, rows: usize, cols: usize) -> Outcome {
    let (mut r, mut c) = (0, 0);
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
    assert_eq!(mo.kind, m.kind);
    let bits = mo.bits as usize;
    let (mut dl, mut sl, mut zl, mut il, mut gl) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let data = quant_weight_data(q, &mut dl);
    let scales = quant_weight_scales(q, &mut sl);
    let zeros = quant_weight_zero_points(q, &mut zl);
    let input = quant_weight_input_scales(q, &mut il);
    let gidx = quant_weight_group_index(q, &mut gl);
    assert_eq!(
        dl,
        rows * (cols * bits).div_ceil(8),
        "data length, {bits} bits"
    );
    let glen = if m.group_size == 0 || m.group_size as usize > cols {
        cols
    } else {
        m.group_size as usize
    };
    let gpr = cols.div_ceil(glen);
    assert_eq!(sl, rows * gpr, "scales length");
    let scales = unsafe { std::slice::from_raw_parts(scales, sl) };
    assert!(scales.iter().all(|s| s.is_finite()), "non-finite scale");
    if m.kind != QUANT_GPTQ && m.kind != QUANT_AWQ && m.kind != QUANT_INT4_ASYMMETRIC {
        assert!(zeros.is_null() && zl == 0);
    } else {
        assert_eq!(zl, rows * gpr, "zero points length: {m:?} -> {mo:?}");
        let z = unsafe { std::slice::from_raw_parts(zeros, zl) };
        assert!(z.iter().all(|&v| v.is_finite()
            && v >= 0.0
            && v <= ((1u64 << bits) - 1) as f32
            && v.fract() == 0.0));
    }
    if m.kind != QUANT_AWQ && m.kind != QUANT_SMOOTHQUANT {
        assert!(input.is_null() && il == 0);
        if !gidx.is_null() {
            assert_eq!(gl, cols);
            let g = unsafe { std::slice::from_raw_parts(gidx, gl) };
            assert!(g.iter().all(|&v| v >= 0 && (v as usize) < gpr));
        }
    } else {
        assert_eq!(il, cols, "input scales length");
        let s = unsafe { std::slice::from_raw_parts(input, il) };
        assert!(
            s.iter().all(|v| v.is_finite() && *v > 0.0),
            "input scales {s:?}"
        );
        assert!(gidx.is_null() && gl == 0);
    }
    let mut deq = vec![f32::NAN; rows * cols];
    assert!(check_status(
        "weight_dequantize",
        quant_weight_dequantize(q, deq.as_mut_ptr(), deq.len())
    ));
    assert!(
        deq.iter().all(|v| v.is_finite()),
        "non-finite dequantized weight"
    );
    Outcome {
        data: unsafe { std::slice::from_raw_parts(data, dl) }.to_vec(),
        scales: scales.iter().map(|v| v.to_bits()).collect(),
        deq: deq.iter().map(|v| v.to_bits()).collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let o = if inp.u8().is_multiple_of(4) {
        std::ptr::null_mut()
    } else {
        options(&mut inp)
    };
    let cols = 1 + inp.size(MAX_COLS - 1).min(MAX_COLS - 1);
    let rows = 1 + inp.size(MAX_ROWS - 1).min(MAX_ROWS - 1);

    // The calibration.
    let flags = match inp.u8() % 8 {
        0 => 0,
        7 => inp.u32(),
        _ => QUANT_CALIB_HESSIAN,
    };
    // Widths beyond MAX_COLS only when the Hessian is asked for and cols^2 overflows, which is refused
    // before anything is allocated. Huge but valid widths are legitimate allocations of gigabytes
    // (tests/limits.rs covers those): without the Hessian a width of 2^32 allocates 16 GiB of
    // per-column statistics, which libFuzzer reports as out-of-memory (its malloc limit is the RSS
    // limit); that was a finding of this harness, not of the library (corpus/algos/oom-2pow32-width).
    let wants_hessian = flags & QUANT_CALIB_HESSIAN != 0;
    let calib_cols = match if inp.u8().is_multiple_of(16) {
        inp.size(MAX_COLS)
    } else {
        cols
    } {
        c if c <= MAX_COLS || (wants_hessian && c > u32::MAX as usize) => c,
        _ => cols,
    };
    let mut calib: *mut quant_calib = std::ptr::NonNull::dangling().as_ptr();
    let sentinel = calib;
    let s = quant_calib_new_ex(calib_cols, flags, o, &mut calib);
    if !check_status("calib_new_ex", s) {
        assert_eq!(calib, sentinel);
        calib = std::ptr::null_mut();
    } else {
        for _ in 0..(inp.u8() % 4) {
            let n = inp.size(MAX_TOKENS).min(MAX_TOKENS);
            let width = if inp.u8().is_multiple_of(16) {
                inp.size(MAX_COLS)
            } else {
                calib_cols
            };
            let x: Vec<f32> = (0..n * width.min(MAX_COLS)).map(|_| inp.f32()).collect();
            let before = quant_calib_tokens(calib);
            let xp = if n.checked_mul(width).is_none_or(|l| x.len() < l) {
                std::ptr::null()
            } else {
                in_ptr(&x, inp.null())
            };
            let s = quant_calib_add(calib, xp, n, width);
            if check_status("calib_add", s) {
                assert_eq!(quant_calib_tokens(calib), before + n as u64);
            } else {
                assert_eq!(
                    quant_calib_tokens(calib),
                    before,
                    "a failed add changed the calibration"
                );
            }
        }
        if inp.u8().is_multiple_of(8) && calib_cols <= MAX_COLS {
            let n = calib_cols * calib_cols;
            let h: Vec<f64> = (0..n)
                .map(|_| match inp.u8() % 4 {
                    0 => f64::from_bits(inp.u64()),
                    1 => (inp.u16() as i16) as f64,
                    _ => 1.0,
                })
                .collect();
            let len = inp.len_for(n);
            let s =
                quant_calib_set_hessian(calib, h.as_ptr(), len.min(n), calib_cols, inp.u64() % 4);
            check_status("calib_set_hessian", s);
        }
    }

    // The weight(s), then every path into the algorithms.
    let m = method(&mut inp);
    let w: Vec<f32> = (0..rows * cols)
        .map(|_| {
            if inp.u8() < 250 {
                (inp.u16() as i16 as f32) / 4096.0
            } else {
                inp.f32()
            }
        })
        .collect();
    let mut out: *mut quant_weight = std::ptr::NonNull::dangling().as_ptr();
    let hs = out;
    let s = quant_quantize(&m, o, w.as_ptr(), rows, cols, calib, &mut out);
    if check_status("quantize", s) {
        let first = check_weight(out, &m, rows, cols);
        quant_weight_free(out);
        // Same result with another thread count, and through quantize_ex with F32.
        if inp.u8().is_multiple_of(4) {
            let mut o2: *mut quant_options = std::ptr::null_mut();
            assert!(check_status("options_new", quant_options_new(&mut o2)));
            // Copy nothing else: only compare when the caller used the defaults.
            if o.is_null() {
                assert!(check_status(
                    "set_threads",
                    quant_options_set_threads(o2, 1 + (inp.u8() % 3) as usize)
                ));
                let mut q2: *mut quant_weight = std::ptr::null_mut();
                assert!(check_status(
                    "quantize (threads)",
                    quant_quantize(&m, o2, w.as_ptr(), rows, cols, calib, &mut q2)
                ));
                let again = check_weight(q2, &m, rows, cols);
                assert_eq!(first.data, again.data, "codes depend on the thread count");
                assert_eq!(
                    first.scales, again.scales,
                    "scales depend on the thread count"
                );
                assert_eq!(first.deq, again.deq);
                quant_weight_free(q2);
            }
            quant_options_free(o2);
        }
        let mut q3: *mut quant_weight = std::ptr::null_mut();
        let s = quant_quantize_ex(
            &m,
            o,
            QUANT_DTYPE_F32,
            w.as_ptr() as *const _,
            rows,
            cols,
            calib,
            &mut q3,
        );
        assert!(check_status("quantize_ex F32", s));
        let ex = check_weight(q3, &m, rows, cols);
        assert_eq!(first.data, ex.data, "quantize_ex differs from quantize");
        assert_eq!(first.deq, ex.deq);
        quant_weight_free(q3);
    } else {
        assert_eq!(out, hs, "handle written on error");
    }

    // A group of two matrices over the same input.
    if inp.u8().is_multiple_of(4) {
        let r2 = 1 + (inp.u8() as usize % MAX_ROWS);
        let w2: Vec<f32> = (0..r2 * cols)
            .map(|_| (inp.u16() as i16 as f32) / 8192.0)
            .collect();
        let ws = [w.as_ptr(), w2.as_ptr()];
        let rs = [rows, r2];
        let mut outs = [hs; 2];
        let s = quant_quantize_group(
            &m,
            o,
            ws.as_ptr(),
            rs.as_ptr(),
            2,
            cols,
            calib,
            outs.as_mut_ptr(),
        );
        if check_status("quantize_group", s) {
            let a = check_weight(outs[0], &m, rows, cols);
            let _ = check_weight(outs[1], &m, r2, cols);
            if m.kind == QUANT_AWQ || m.kind == QUANT_SMOOTHQUANT {
                // One per-input-channel scale for both.
                let (mut l0, mut l1) = (0, 0);
                let s0 = quant_weight_input_scales(outs[0], &mut l0);
                let s1 = quant_weight_input_scales(outs[1], &mut l1);
                let s0 = unsafe { std::slice::from_raw_parts(s0, l0) };
                let s1 = unsafe { std::slice::from_raw_parts(s1, l1) };
                assert_eq!(s0, s1, "group members got different input scales");
            }
            let _ = a;
            quant_weight_free(outs[0]);
            quant_weight_free(outs[1]);
        } else {
            assert_eq!(outs, [hs; 2], "handles written on error");
        }
    }

    assert_eq!(quant_calib_tokens(std::ptr::null()), 0);
    quant_calib_free(calib);
    quant_options_free(o);
});
