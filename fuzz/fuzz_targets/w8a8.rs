//! The W8A8 helpers through the C ABI: `quant_smooth_scales` (any maxima, alpha NaN / out of range),
//! `quant_quantize_activations` (any activations and input scales, buffer lengths, NULLs) and
//! `quant_int8_gemm` (any codes, scales, m/n/k including k above the limit and overflowing sizes).
//! On error outputs are untouched; on success the GEMM equals the scalar reference bit for bit, the
//! activation codes round-trip within half a step, and the smooth scales follow their formula.
#![no_main]
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::algos::smoothquant::int8_gemm_ref;
use quant::ffi::algos::*;

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    match inp.u8() % 3 {
        0 => {
            let n = inp.size(64).min(64);
            let w: Vec<f32> = (0..n)
                .map(|_| {
                    if inp.bool() {
                        inp.f32().abs()
                    } else {
                        inp.f32()
                    }
                })
                .collect();
            let a: Vec<f32> = (0..n)
                .map(|_| {
                    if inp.bool() {
                        inp.f32().abs()
                    } else {
                        inp.f32()
                    }
                })
                .collect();
            let alpha = match inp.u8() % 4 {
                0 => f64::from_bits(inp.u64()),
                1 => [f64::NAN, -0.0, 1.0, 1.0000001, -1e-300][inp.u8() as usize % 5],
                _ => (inp.u8() as f64) / 255.0,
            };
            let mut out = Out::<f32>::new(n + 1, inp.null());
            let s = quant_smooth_scales(
                in_ptr(&w, inp.null()),
                in_ptr(&a, inp.null()),
                n,
                alpha,
                out.ptr(),
            );
            if check_status("smooth_scales", s) {
                assert!(out.untouched_from(n), "wrote past n");
                for j in 0..n {
                    let v = out.buf[j];
                    assert!(
                        !v.is_nan(),
                        "smooth scale {j} is NaN (w {}, a {}, alpha {alpha})",
                        w[j],
                        a[j]
                    );
                }
            } else {
                assert!(out.untouched());
            }
        }
        1 => {
            let t = inp.size(16);
            let c = inp.size(64);
            let len = match t.checked_mul(c) {
                Some(l) if l <= MAX_ELEMS => l,
                _ => 0,
            };
            let x: Vec<f32> = (0..len).map(|_| inp.f32()).collect();
            let with_scales = inp.bool();
            let sc: Vec<f32> = (0..if len > 0 { c } else { 0 })
                .map(|_| {
                    if inp.u8() < 240 {
                        0.25 + (inp.u8() as f32) / 32.0
                    } else {
                        inp.f32()
                    }
                })
                .collect();
            let bad_shape = len == 0;
            let xp = if bad_shape && t.checked_mul(c).is_some_and(|l| l > 0) {
                std::ptr::null()
            } else {
                in_ptr(&x, inp.null())
            };
            let sp = if with_scales {
                if bad_shape {
                    std::ptr::null()
                } else {
                    sc.as_ptr()
                }
            } else {
                std::ptr::null()
            };
            let mut dst = Out::<i8>::new(inp.len_for(len), inp.null());
            let mut ts = Out::<f32>::new(inp.len_for(if len > 0 { t } else { 0 }), inp.null());
            let s =
                quant_quantize_activations(xp, t, c, sp, dst.ptr(), dst.len(), ts.ptr(), ts.len());
            if check_status("quantize_activations", s) {
                assert!(dst.untouched_from(len) && ts.untouched_from(t));
                for tok in 0..t {
                    let scale = ts.buf[tok] as f64;
                    assert!(scale.is_finite() && scale >= 0.0);
                    for j in 0..c {
                        let v =
                            x[tok * c + j] as f64 / if with_scales { sc[j] as f64 } else { 1.0 };
                        let q = dst.buf[tok * c + j] as f64;
                        assert!((-127.0..=127.0).contains(&q));
                        let err = (q * scale - v).abs();
                        assert!(
                            err <= scale * 0.5 * (1.0 + 1e-5) + v.abs() * 1e-6 + 1e-38,
                            "token {tok} col {j}: {v:e} -> {q} * {scale:e}"
                        );
                    }
                }
            } else {
                assert!(
                    dst.untouched() && ts.untouched(),
                    "status {s} ({}), t {t} c {c} scales {with_scales} dst {} {} ts {} {}",
                    detail(),
                    dst.len(),
                    dst.null,
                    ts.len(),
                    ts.null
                );
            }
        }
        _ => {
            let m = inp.size(8);
            let n = inp.size(8);
            let k = if inp.u8().is_multiple_of(32) {
                131071 + (inp.u8() as usize % 3)
            } else {
                inp.size(64)
            };
            let real = m <= 8 && n <= 8 && k <= 64;
            let a: Vec<i8> = (0..if real { m * k } else { 0 })
                .map(|_| inp.u8() as i8)
                .collect();
            let b: Vec<i8> = (0..if real { n * k } else { 0 })
                .map(|_| inp.u8() as i8)
                .collect();
            let sa: Vec<f32> = (0..if real { m } else { 0 })
                .map(|_| {
                    if inp.u8() < 200 {
                        (inp.u8() as f32 + 1.0) / 64.0
                    } else {
                        inp.f32()
                    }
                })
                .collect();
            let sb: Vec<f32> = (0..if real { n } else { 0 })
                .map(|_| {
                    if inp.u8() < 200 {
                        (inp.u8() as f32 + 1.0) / 64.0
                    } else {
                        inp.f32()
                    }
                })
                .collect();
            let need = if real { m * n } else { 0 };
            let mut out = Out::<f32>::new(inp.len_for(need), inp.null());
            let nul = |v: bool| v || !real;
            let (na, nsa, nb, nsb) = (
                nul(inp.null()),
                nul(inp.null()),
                nul(inp.null()),
                nul(inp.null()),
            );
            let s = quant_int8_gemm(
                if na { std::ptr::null() } else { a.as_ptr() },
                if nsa { std::ptr::null() } else { sa.as_ptr() },
                if nb { std::ptr::null() } else { b.as_ptr() },
                if nsb { std::ptr::null() } else { sb.as_ptr() },
                m,
                n,
                k,
                out.ptr(),
                out.len(),
            );
            if check_status("int8_gemm", s) {
                assert!(real);
                let mut r = vec![0f32; need];
                int8_gemm_ref(&a, &sa, &b, &sb, (m, n, k), &mut r).unwrap();
                assert!(
                    out.buf[..need]
                        .iter()
                        .zip(&r)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "gemm differs from the reference"
                );
                assert!(out.untouched_from(need));
            } else {
                assert!(out.untouched());
            }
        }
    }
});
