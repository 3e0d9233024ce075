//! Levels, methods, memory estimates and the per-layer configuration: arbitrary enum values, bit
//! widths, group sizes, alphas (NaN, infinities), name buffers of any length, and layer names of
//! arbitrary bytes (invalid UTF-8, empty). The configuration is compared with a model map; on error no
//! out-parameter is modified.
#![no_main]
use std::collections::HashMap;
use std::ffi::{c_char, CStr};

use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::ffi::level::*;
use quant::ffi::method::*;

fn method(inp: &mut Input) -> quant_method {
    let alpha = match inp.u8() % 4 {
        0 => (inp.u8() as f64) / 255.0,
        1 => f64::from_bits(inp.u64()),
        2 => [f64::NAN, f64::INFINITY, -0.0, 1.0 + f64::EPSILON, -1e-300][inp.u8() as usize % 5],
        _ => 0.5,
    };
    quant_method {
        kind: inp.enum_i32(6),
        bits: if inp.u8() < 200 {
            (inp.u8() % 10) as u32
        } else {
            inp.u32()
        },
        group_size: if inp.u8() < 200 {
            [0, 32, 64, 128, 1, 7][inp.u8() as usize % 6]
        } else {
            inp.u32()
        },
        alpha,
    }
}

/// Arbitrary bytes as a NUL-terminated name (stops at the first NUL, like C).
fn name(inp: &mut Input) -> Vec<u8> {
    let len = (inp.u8() % 24) as usize;
    let mut v: Vec<u8> = match inp.u8() % 3 {
        0 => inp.bytes(len).to_vec(),
        1 => format!("layers.{}.mlp", inp.u8() % 4).into_bytes(),
        _ => vec![0xff, b'a', 0xc3],
    };
    v.retain(|&b| b != 0);
    v.push(0);
    v
}

fn check_method_fns(m: &quant_method, inp: &mut Input) {
    let valid = quant_method_validate(m) == 0;
    let rust = m.to_method();
    assert_eq!(
        valid,
        rust.as_ref().map(|r| r.validate().is_ok()).unwrap_or(false)
    );
    check_status("method_validate", quant_method_validate(m));
    clear_detail();
    let bits = quant_method_bits_per_weight(m);
    let ratio = quant_method_compression_ratio(m);
    let cols = inp.size(1 << 16);
    let eff = quant_method_effective_bits(m, cols);
    if valid {
        assert!((1..=8).contains(&bits), "bits {bits}");
        assert_eq!(ratio, 16.0 / bits as f64);
        if cols > 0 {
            assert!(
                eff.is_finite() && eff >= bits as f64,
                "effective bits {eff}"
            );
        } else {
            assert_eq!(eff, 0.0);
        }
    } else {
        assert_eq!((bits, ratio, eff), (0, 0.0, 0.0));
        assert!(!detail().is_empty());
    }
    // Names into buffers of any length, NULL included.
    let full = quant_method_name(m, std::ptr::null_mut(), 0);
    let len = inp.size(64).min(64);
    let mut buf = Out::<c_char>::new(len, inp.null());
    clear_detail();
    let got = quant_method_name(m, buf.ptr(), buf.len());
    let named = match &rust {
        Ok(r) if !(buf.null && len > 0) => Some(r.to_string()),
        _ => None,
    };
    if let Some(name) = named {
        assert_eq!(got, full);
        assert_eq!(full, name.len());
        if len > 0 {
            let s = unsafe { CStr::from_ptr(buf.buf.as_ptr()) };
            let n = name.len().min(len - 1);
            assert_eq!(s.to_bytes(), &name.as_bytes()[..n]);
            assert!(buf.untouched_from(n + 1));
        }
    } else {
        assert_eq!(got, 0);
        assert!(buf.untouched());
        assert!(!detail().is_empty());
    }
    // Memory estimate.
    let num = inp.size(usize::MAX);
    let (mut a, mut b) = (usize::MAX - 1, usize::MAX - 2);
    let pa: *mut usize = if inp.null() {
        std::ptr::null_mut()
    } else {
        &mut a
    };
    let pb: *mut usize = if inp.null() {
        std::ptr::null_mut()
    } else {
        &mut b
    };
    let s = quant_estimate_memory(num, if inp.null() { std::ptr::null() } else { m }, pa, pb);
    if check_status("estimate_memory", s) {
        assert!(valid);
        assert_eq!(a as u128, num as u128 * 2);
        assert_eq!(b as u128, (num as u128 * bits as u128).div_ceil(8));
    } else {
        assert_eq!((a, b), (usize::MAX - 1, usize::MAX - 2));
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    // Levels.
    let level = inp.enum_i32(5);
    clear_detail();
    let known = (0..5).contains(&level);
    assert_eq!(quant_level_bits(level) != 0, known);
    assert_eq!(quant_level_reduction_factor(level) != 0.0, known);
    assert_eq!(!quant_level_name(level).is_null(), known);
    assert_eq!(detail().is_empty(), known);
    let bits = if inp.bool() {
        inp.u32()
    } else {
        [32, 16, 8, 4, 0, 2][inp.u8() as usize % 6]
    };
    let mut out: quant_level = -77;
    let s = quant_level_from_bits(
        bits,
        if inp.null() {
            std::ptr::null_mut()
        } else {
            &mut out
        },
    );
    if check_status("level_from_bits", s) {
        assert_eq!(quant_level_bits(out), bits);
    } else {
        assert_eq!(out, -77);
    }

    // Methods.
    let m = method(&mut inp);
    check_method_fns(&m, &mut inp);

    // Configuration, against a model.
    let default = method(&mut inp);
    let mut cfg: *mut quant_config = std::ptr::null_mut();
    let s = quant_config_new(&default, &mut cfg);
    if !check_status("config_new", s) {
        assert!(cfg.is_null());
        return;
    }
    let mut model: HashMap<Vec<u8>, quant_method> = HashMap::new();
    let norm = |m: &quant_method| quant_method::from_method(&m.to_method().unwrap()).unwrap();
    while !inp.is_empty() {
        let nm = name(&mut inp);
        let key = nm[..nm.len() - 1].to_vec();
        let utf8 = std::str::from_utf8(&key).is_ok();
        match inp.u8() % 3 {
            0 => {
                let lm = method(&mut inp);
                let s = quant_config_set_layer(cfg, nm.as_ptr() as *const c_char, &lm);
                if check_status("config_set_layer", s) {
                    assert!(utf8);
                    model.insert(key, norm(&lm));
                } else {
                    assert!(!utf8 || lm.to_method().is_err());
                }
            }
            1 => {
                let mut out = quant_method {
                    kind: -5,
                    bits: 99,
                    group_size: 99,
                    alpha: -9.0,
                };
                let sentinel = out;
                let s = quant_config_method_for_layer(cfg, nm.as_ptr() as *const c_char, &mut out);
                if check_status("config_method_for_layer", s) {
                    let want = model.get(&key).copied().unwrap_or_else(|| norm(&default));
                    assert_eq!(format!("{out:?}"), format!("{want:?}"));
                } else {
                    assert!(!utf8);
                    assert_eq!(format!("{out:?}"), format!("{sentinel:?}"));
                }
            }
            _ => {
                let s = quant_config_validate(cfg);
                let ok = default.to_method().unwrap().validate().is_ok()
                    && model
                        .values()
                        .all(|m| m.to_method().unwrap().validate().is_ok());
                assert_eq!(check_status("config_validate", s), ok);
            }
        }
    }
    // NULL handles.
    assert!(!check_status(
        "config_validate(NULL)",
        quant_config_validate(std::ptr::null())
    ));
    quant_config_free(cfg);
    quant_config_free(std::ptr::null_mut());
});
