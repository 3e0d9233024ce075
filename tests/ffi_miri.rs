//! Tests of the unsafe `ffi` layer that Miri can run (small buffers, no files, short loops): pointer
//! checks, slice building (NULL, zero length, dangling-but-aligned pointers with length 0, overflowing
//! lengths), outputs untouched on argument errors (zero-filled on the quantizers' value errors), handle
//! lifetimes (every handle made is freed exactly once:
//! Miri reports leaks and use-after-free), and concurrent reads of shared handles (Miri reports data
//! races).
//!
//!   cargo +nightly miri test --test ffi_miri
//!   cargo +nightly miri test --lib ffi::
//!
//! They also run in the ordinary `cargo test`.
use std::ffi::{c_char, CStr};
use std::ptr::{self, NonNull};

use quant::error::*;
use quant::ffi::casts::*;
use quant::ffi::level::*;
use quant::ffi::method::*;
use quant::ffi::rtn::*;
use quant::ffi::status::*;
use quant::ffi::weight::*;
use quant::ffi::{in_ref, matrix_len, out_param, slice_in, slice_out};

const S8: u8 = 0xA5;

fn detail() -> String {
    let mut buf = [0 as c_char; 256];
    let n = quant_last_error(buf.as_mut_ptr(), buf.len());
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(n.min(255), s.len());
    s
}

fn method(kind: i32, group_size: u32) -> quant_method {
    quant_method {
        kind,
        bits: 0,
        group_size,
        alpha: 0.0,
    }
}

#[test]
fn helpers_never_build_a_slice_from_null_or_an_impossible_length() {
    unsafe {
        assert!(slice_in::<f32>(ptr::null(), 0, "a").unwrap().is_empty());
        assert!(slice_out::<f32>(ptr::null_mut(), 0, "a")
            .unwrap()
            .is_empty());
        assert_eq!(
            slice_in::<f32>(ptr::null(), 3, "src").unwrap_err().status(),
            QUANT_ERR_NULL_POINTER
        );
        assert_eq!(
            slice_out::<u16>(ptr::null_mut(), 1, "dst")
                .unwrap_err()
                .status(),
            QUANT_ERR_NULL_POINTER
        );
        // Lengths whose byte count exceeds isize::MAX are rejected before any slice exists.
        let x = [0u64; 1];
        for len in [usize::MAX, usize::MAX / 8 + 1, isize::MAX as usize / 4 + 1] {
            let e = slice_in(x.as_ptr(), len, "src").unwrap_err();
            assert_eq!(e.status(), QUANT_ERR_INVALID_ARGUMENT, "len {len}");
        }
        let mut y = [0u32; 1];
        assert!(slice_out(y.as_mut_ptr(), usize::MAX / 2, "dst").is_err());
        // A dangling but aligned pointer with length 0 is a valid empty slice.
        let d = NonNull::<f32>::dangling().as_ptr();
        assert!(slice_in(d, 0, "src").unwrap().is_empty());
        assert!(out_param::<u32>(ptr::null_mut(), "out").is_err());
        assert!(in_ref::<u32>(ptr::null(), "q").is_err());
        let v = 5u32;
        assert_eq!(*in_ref(&v, "v").unwrap(), 5);
    }
    assert!(matrix_len(0, 3).is_err());
    assert!(matrix_len(usize::MAX, 2).is_err());
    assert_eq!(matrix_len(3, 4).unwrap(), 12);
}

#[test]
fn last_error_copies_truncates_and_is_per_thread() {
    assert_eq!(
        quant_f32_to_f16(ptr::null(), ptr::null_mut(), 2),
        QUANT_ERR_NULL_POINTER
    );
    let full = quant_last_error(ptr::null_mut(), 0);
    assert_eq!(full, "src is NULL".len());
    // NULL is a size query whatever the length, and never replaces the detail it reports.
    assert_eq!(quant_last_error(ptr::null_mut(), 4), full);
    assert_eq!(quant_last_error(ptr::null_mut(), 0), full);
    assert_eq!(
        quant_f32_to_f16(ptr::null(), ptr::null_mut(), 2),
        QUANT_ERR_NULL_POINTER
    );
    for len in 1..6 {
        let mut buf = [S8 as c_char; 8];
        assert_eq!(quant_last_error(buf.as_mut_ptr(), len), full);
        assert_eq!(buf[len - 1], 0, "terminated within {len} bytes");
        assert!(
            buf[len..].iter().all(|&c| c == S8 as c_char),
            "nothing past {len}"
        );
    }
    std::thread::spawn(|| assert_eq!(quant_last_error(ptr::null_mut(), 0), 0))
        .join()
        .unwrap();
    let x = [1.0f32];
    let mut h = [0u16];
    assert_eq!(quant_f32_to_f16(x.as_ptr(), h.as_mut_ptr(), 1), QUANT_OK);
    assert_eq!(quant_last_error(ptr::null_mut(), 0), 0);
    assert!(!quant_status_string(-1).is_null());
    assert_eq!(
        unsafe { CStr::from_ptr(quant_version_string()) }
            .to_str()
            .unwrap(),
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn casts_with_null_empty_and_small_buffers() {
    let d = NonNull::<f32>::dangling().as_ptr();
    let e = NonNull::<u16>::dangling().as_ptr();
    assert_eq!(quant_f32_to_f16(ptr::null(), ptr::null_mut(), 0), QUANT_OK);
    assert_eq!(quant_f32_to_bf16(d, e, 0), QUANT_OK);
    assert_eq!(quant_f16_to_f32(e, d, 0), QUANT_OK);
    let src = [1.0f32, -2.5, f32::NAN, f32::INFINITY, 1e-40];
    let mut h = [0x5A5Au16; 6];
    assert_eq!(quant_f32_to_f16(src.as_ptr(), h.as_mut_ptr(), 5), QUANT_OK);
    assert_eq!(h[5], 0x5A5A, "only n elements are written");
    let mut back = [0f32; 5];
    assert_eq!(quant_f16_to_f32(h.as_ptr(), back.as_mut_ptr(), 5), QUANT_OK);
    assert_eq!(&back[..2], &[1.0, -2.5]);
    let mut b = [0u16; 5];
    assert_eq!(quant_f32_to_bf16(src.as_ptr(), b.as_mut_ptr(), 5), QUANT_OK);
    assert_eq!(
        quant_bf16_to_f32(b.as_ptr(), back.as_mut_ptr(), 5),
        QUANT_OK
    );
    let mut c = [S8; 5];
    assert_eq!(
        quant_f32_to_fp8_e4m3(src.as_ptr(), ptr::null_mut(), 5, true),
        QUANT_ERR_NULL_POINTER
    );
    assert_eq!(
        quant_f32_to_fp8_e4m3(src.as_ptr(), c.as_mut_ptr(), 5, false),
        QUANT_OK
    );
    assert_eq!(
        quant_fp8_e4m3_to_f32(c.as_ptr(), back.as_mut_ptr(), 5),
        QUANT_OK
    );
    assert_eq!(
        quant_f32_to_fp8_e5m2(src.as_ptr(), c.as_mut_ptr(), 5, true),
        QUANT_OK
    );
    assert_eq!(
        quant_fp8_e5m2_to_f32(c.as_ptr(), back.as_mut_ptr(), 5),
        QUANT_OK
    );
    // A count that no buffer can have is INVALID_ARGUMENT, checked before the memory is touched.
    let mut one = [0u8; 1];
    assert_eq!(
        quant_fp8_e5m2_to_f32(one.as_ptr(), back.as_mut_ptr(), usize::MAX),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        quant_f32_to_fp8_e4m3(src.as_ptr(), one.as_mut_ptr(), usize::MAX / 2, false),
        QUANT_ERR_INVALID_ARGUMENT
    );
}

#[test]
fn rtn_kernels_check_arguments_before_writing() {
    let src = [0.5f32, -1.0, 2.0, 0.0, 3.0, -0.25];
    let mut q = [S8 as i8; 7];
    let mut s = [f32::from_bits(0xA5A5_A5A5); 3];
    let untouched = |q: &[i8], s: &[f32]| {
        q.iter().all(|&v| v as u8 == S8) && s.iter().all(|v| v.to_bits() == 0xA5A5_A5A5)
    };
    // One scale too few, NULL src, zero rows, an overflowing shape, NaN.
    assert_eq!(
        quant_int8_quantize(src.as_ptr(), 2, 3, 2, q.as_mut_ptr(), 7, s.as_mut_ptr(), 3),
        QUANT_ERR_BUFFER_TOO_SMALL
    );
    assert!(untouched(&q, &s));
    assert_eq!(
        quant_int8_quantize(ptr::null(), 2, 3, 0, q.as_mut_ptr(), 7, s.as_mut_ptr(), 3),
        QUANT_ERR_NULL_POINTER
    );
    assert_eq!(
        quant_int8_quantize(src.as_ptr(), 0, 3, 0, q.as_mut_ptr(), 7, s.as_mut_ptr(), 3),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        quant_int8_quantize(
            src.as_ptr(),
            usize::MAX,
            3,
            0,
            q.as_mut_ptr(),
            7,
            s.as_mut_ptr(),
            3
        ),
        QUANT_ERR_INVALID_ARGUMENT
    );
    let mut bad = src;
    bad[4] = f32::NAN;
    assert_eq!(
        quant_int8_quantize(bad.as_ptr(), 2, 3, 0, q.as_mut_ptr(), 7, s.as_mut_ptr(), 3),
        QUANT_ERR_NON_FINITE
    );
    assert!(detail().contains("[4]"), "{}", detail());
    // A value error zero-fills the prefixes a success writes, nothing past them.
    assert!(q[..6].iter().all(|&v| v == 0) && q[6] as u8 == S8);
    assert!(s[..2].iter().all(|v| v.to_bits() == 0) && s[2].to_bits() == 0xA5A5_A5A5);
    // Success writes only the needed prefixes.
    assert_eq!(
        quant_int8_quantize(src.as_ptr(), 2, 3, 0, q.as_mut_ptr(), 7, s.as_mut_ptr(), 3),
        QUANT_OK
    );
    assert_eq!(q[6] as u8, S8);
    assert_eq!(s[2].to_bits(), 0xA5A5_A5A5);
    let mut back = [0f32; 6];
    assert_eq!(
        quant_int8_dequantize(q.as_ptr(), s.as_ptr(), 2, 3, 0, back.as_mut_ptr(), 5),
        QUANT_ERR_BUFFER_TOO_SMALL
    );
    assert_eq!(
        quant_int8_dequantize(q.as_ptr(), s.as_ptr(), 2, 3, 0, back.as_mut_ptr(), 6),
        QUANT_OK
    );
    assert_eq!(quant_scale_count(2, 3, 2), 4);
    assert_eq!(quant_scale_count(usize::MAX, usize::MAX, 1), 0);
    assert_eq!(quant_int4_packed_size(3, 3), 6);

    // INT4 and FP8 the same way, small.
    let (mut p, mut sc, mut z) = ([S8; 5], [0f32; 2], [S8; 2]);
    assert_eq!(
        quant_int4_quantize(
            src.as_ptr(),
            2,
            3,
            0,
            p.as_mut_ptr(),
            3,
            sc.as_mut_ptr(),
            z.as_mut_ptr(),
            2
        ),
        QUANT_ERR_BUFFER_TOO_SMALL
    );
    assert!(p.iter().all(|&b| b == S8) && z.iter().all(|&b| b == S8));
    assert_eq!(
        quant_int4_quantize(
            src.as_ptr(),
            2,
            3,
            0,
            p.as_mut_ptr(),
            4,
            sc.as_mut_ptr(),
            z.as_mut_ptr(),
            2
        ),
        QUANT_OK
    );
    assert_eq!(p[4], S8);
    z[1] = 16;
    assert_eq!(
        quant_int4_dequantize(
            p.as_ptr(),
            sc.as_ptr(),
            z.as_ptr(),
            2,
            3,
            0,
            back.as_mut_ptr(),
            6
        ),
        QUANT_ERR_INVALID_ARGUMENT
    );
    let (mut f, mut fs) = ([0u8; 6], [0f32; 2]);
    assert_eq!(
        quant_fp8_e4m3_quantize(src.as_ptr(), 2, 3, 0, f.as_mut_ptr(), 6, fs.as_mut_ptr(), 2),
        QUANT_OK
    );
    assert_eq!(
        quant_fp8_e4m3_dequantize(f.as_ptr(), fs.as_ptr(), 2, 3, 0, back.as_mut_ptr(), 6),
        QUANT_OK
    );
    // Signed nibbles.
    let vals = [-8i8, 7, 3];
    let mut packed = [S8; 3];
    assert_eq!(
        quant_pack_int4(vals.as_ptr(), 3, packed.as_mut_ptr(), 1),
        QUANT_ERR_BUFFER_TOO_SMALL
    );
    assert_eq!(
        quant_pack_int4(vals.as_ptr(), 3, packed.as_mut_ptr(), 3),
        QUANT_OK
    );
    assert_eq!(packed[2], S8);
    let mut un = [0i8; 3];
    assert_eq!(
        quant_unpack_int4(packed.as_ptr(), 3, un.as_mut_ptr(), 3),
        QUANT_OK
    );
    assert_eq!(un, vals);
    assert_eq!(
        quant_unpack_int4(packed.as_ptr(), usize::MAX, un.as_mut_ptr(), 3),
        QUANT_ERR_INVALID_ARGUMENT
    );
}

#[test]
fn config_handles_live_and_die_once() {
    let mut cfg: *mut quant_config = ptr::null_mut();
    assert_eq!(
        quant_config_new(&method(99, 0), &mut cfg),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert!(cfg.is_null());
    assert_eq!(
        quant_config_new(&method(QUANT_INT8_SYMMETRIC, 0), &mut cfg),
        QUANT_OK
    );
    let bad_utf8 = [0xffu8, b'x', 0];
    assert_eq!(
        quant_config_set_layer(
            cfg,
            bad_utf8.as_ptr() as *const c_char,
            &method(QUANT_GPTQ, 0)
        ),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        quant_config_set_layer(cfg, c"lm_head".as_ptr(), &method(QUANT_GPTQ, 0)),
        QUANT_OK
    );
    assert_eq!(
        quant_config_set_layer(cfg, c"".as_ptr(), &method(QUANT_FP8_E4M3, 3)),
        QUANT_OK
    );
    assert_eq!(quant_config_validate(cfg), QUANT_ERR_INVALID_ARGUMENT);
    assert!(detail().contains("lm_head"));
    let mut out = method(-1, 9);
    assert_eq!(
        quant_config_method_for_layer(cfg, c"".as_ptr(), &mut out),
        QUANT_OK
    );
    assert_eq!((out.kind, out.group_size), (QUANT_FP8_E4M3, 3));
    let mut name = [S8 as c_char; 4];
    assert_eq!(
        quant_method_name(&out, name.as_mut_ptr(), 4),
        "FP8-E4M3".len()
    );
    assert_eq!(unsafe { CStr::from_ptr(name.as_ptr()) }.to_bytes(), b"FP8");
    quant_config_free(cfg);
    quant_config_free(ptr::null_mut());
    let mut lvl = -1;
    assert_eq!(
        quant_level_from_bits(7, &mut lvl),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert_eq!(lvl, -1);
    assert!(quant_level_name(17).is_null());
}

#[test]
fn weight_handles_accessors_and_group_all_or_nothing() {
    let w = [0.5f32, -1.0, 2.0, 0.0, 3.0, -0.25];
    let mut q: *mut quant_weight = ptr::null_mut();
    for kind in [QUANT_INT8_SYMMETRIC, QUANT_INT4_ASYMMETRIC, QUANT_FP8_E4M3] {
        assert_eq!(
            quant_quantize(
                &method(kind, 2),
                ptr::null(),
                w.as_ptr(),
                2,
                3,
                ptr::null(),
                &mut q
            ),
            QUANT_OK
        );
        let mut len = 0;
        let data = quant_weight_data(q, &mut len);
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        assert_eq!(
            bytes.len(),
            if kind == QUANT_INT4_ASYMMETRIC { 4 } else { 6 }
        );
        let scales = quant_weight_scales(q, ptr::null_mut());
        assert!(!scales.is_null());
        let mut zl = 9;
        let z = quant_weight_zero_points(q, &mut zl);
        assert_eq!(z.is_null(), kind != QUANT_INT4_ASYMMETRIC);
        assert!(quant_weight_group_index(q, &mut zl).is_null() && zl == 0);
        let mut back = [0f32; 6];
        assert_eq!(
            quant_weight_dequantize(q, back.as_mut_ptr(), 5),
            QUANT_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(quant_weight_dequantize(q, back.as_mut_ptr(), 6), QUANT_OK);
        quant_weight_free(q);
    }
    // Errors never write the handle.
    let sentinel: *mut quant_weight = NonNull::dangling().as_ptr();
    q = sentinel;
    assert_eq!(
        quant_quantize(
            &method(QUANT_GPTQ, 2),
            ptr::null(),
            w.as_ptr(),
            2,
            3,
            ptr::null(),
            &mut q
        ),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert_eq!(q, sentinel);
    // A group where the second matrix fails leaks nothing and writes no handle.
    let bad = [f32::NAN; 3];
    let ws = [w.as_ptr(), bad.as_ptr()];
    let rows = [2usize, 1];
    let mut outs = [sentinel; 2];
    assert_eq!(
        quant_quantize_group(
            &method(QUANT_INT8_SYMMETRIC, 0),
            ptr::null(),
            ws.as_ptr(),
            rows.as_ptr(),
            2,
            3,
            ptr::null(),
            outs.as_mut_ptr()
        ),
        QUANT_ERR_NON_FINITE
    );
    assert_eq!(outs, [sentinel; 2]);
    let ws = [w.as_ptr(), ptr::null()];
    assert_eq!(
        quant_quantize_group(
            &method(QUANT_INT8_SYMMETRIC, 0),
            ptr::null(),
            ws.as_ptr(),
            rows.as_ptr(),
            2,
            3,
            ptr::null(),
            outs.as_mut_ptr()
        ),
        QUANT_ERR_NULL_POINTER
    );
    let ws = [w.as_ptr(), w.as_ptr()];
    assert_eq!(
        quant_quantize_group(
            &method(QUANT_INT4_ASYMMETRIC, 0),
            ptr::null(),
            ws.as_ptr(),
            rows.as_ptr(),
            2,
            3,
            ptr::null(),
            outs.as_mut_ptr()
        ),
        QUANT_OK
    );
    for q in outs {
        quant_weight_free(q);
    }
}

/// Handles shared read-only between threads (the header documents them as safe to read concurrently).
#[derive(Clone, Copy)]
struct Shared(*mut quant_weight, *mut quant_config);
unsafe impl Send for Shared {}

#[test]
fn shared_handles_are_read_from_several_threads() {
    let w = [0.5f32, -1.0, 2.0, 0.0, 3.0, -0.25];
    let mut q: *mut quant_weight = ptr::null_mut();
    assert_eq!(
        quant_quantize(
            &method(QUANT_INT4_ASYMMETRIC, 2),
            ptr::null(),
            w.as_ptr(),
            2,
            3,
            ptr::null(),
            &mut q
        ),
        QUANT_OK
    );
    let mut cfg: *mut quant_config = ptr::null_mut();
    assert_eq!(
        quant_config_new(&method(QUANT_INT8_SYMMETRIC, 0), &mut cfg),
        QUANT_OK
    );
    assert_eq!(
        quant_config_set_layer(cfg, c"a".as_ptr(), &method(QUANT_FP8_E4M3, 0)),
        QUANT_OK
    );
    let mut expect = [0f32; 6];
    assert_eq!(quant_weight_dequantize(q, expect.as_mut_ptr(), 6), QUANT_OK);
    let shared = Shared(q, cfg);
    let threads: Vec<_> = (0..3)
        .map(|t| {
            std::thread::spawn(move || {
                let shared = shared;
                let (q, cfg) = (
                    shared.0 as *const quant_weight,
                    shared.1 as *const quant_config,
                );
                let mut out = [0f32; 6];
                assert_eq!(quant_weight_dequantize(q, out.as_mut_ptr(), 6), QUANT_OK);
                let mut m = method(-1, 0);
                assert_eq!(
                    quant_config_method_for_layer(cfg, c"a".as_ptr(), &mut m),
                    QUANT_OK
                );
                assert_eq!(m.kind, QUANT_FP8_E4M3);
                // Each thread's own error detail.
                assert_eq!(
                    quant_weight_dequantize(q, out.as_mut_ptr(), t),
                    QUANT_ERR_BUFFER_TOO_SMALL
                );
                assert!(
                    detail().contains(&format!("holds {t} elements")),
                    "{}",
                    detail()
                );
                out
            })
        })
        .collect();
    for t in threads {
        let out = t.join().unwrap();
        assert!(out
            .iter()
            .zip(&expect)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
    quant_config_free(cfg);
    quant_weight_free(q);
}

/// Regression test (hardening finding): a misaligned pointer used to become a Rust slice or reference,
/// which is undefined behaviour (Miri reports it) even where the hardware tolerates the access. It is
/// now `QUANT_ERR_INVALID_ARGUMENT`, checked before anything is read or written.
#[test]
fn misaligned_pointers_are_invalid_arguments() {
    let mut bytes = [0u64; 8];
    let base = bytes.as_mut_ptr() as *mut u8;
    let odd_f32 = unsafe { base.add(1) } as *mut f32;
    let odd_u16 = unsafe { base.add(1) } as *mut u16;
    let src = [1.0f32, 2.0];
    let mut h = [0u16; 2];
    assert_eq!(
        quant_f32_to_f16(odd_f32, h.as_mut_ptr(), 2),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert!(detail().contains("not aligned"), "{}", detail());
    assert_eq!(
        quant_f32_to_f16(src.as_ptr(), odd_u16, 2),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert_eq!(bytes, [0u64; 8], "nothing written");
    let mut q = [0i8; 2];
    assert_eq!(
        quant_int8_quantize(src.as_ptr(), 1, 2, 0, q.as_mut_ptr(), 2, odd_f32, 1),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert_eq!(q, [0, 0]);
    // Out-parameters and struct pointers.
    let odd_usize = unsafe { base.add(3) } as *mut usize;
    let m = method(QUANT_INT8_SYMMETRIC, 0);
    assert_eq!(
        quant_estimate_memory(10, &m, odd_usize, odd_usize),
        QUANT_ERR_INVALID_ARGUMENT
    );
    let odd_method = unsafe { base.add(4) } as *const quant_method;
    assert_eq!(
        quant_method_validate(odd_method),
        QUANT_ERR_INVALID_ARGUMENT
    );
    let mut w: *mut quant_weight = ptr::null_mut();
    assert_eq!(
        quant_quantize(&m, ptr::null(), src.as_ptr(), 1, 2, ptr::null(), &mut w),
        QUANT_OK
    );
    assert!(quant_weight_data(w, odd_usize).is_null());
    assert_eq!(bytes, [0u64; 8], "nothing written");
    quant_weight_free(w);
    // NULL is still NULL_POINTER (NULL is aligned), and length 0 never looks at the pointer.
    assert_eq!(
        quant_f32_to_f16(ptr::null(), h.as_mut_ptr(), 2),
        QUANT_ERR_NULL_POINTER
    );
    assert_eq!(quant_f32_to_f16(odd_f32, odd_u16, 0), QUANT_OK);
}

/// Regression test (hardening finding, fuzz target `w8a8`): `quant_quantize_activations` with input
/// scales wrote the tokens before the one whose `x / s` overflowed to infinity, then failed. Every
/// divided value is now checked before anything is written.
#[test]
fn quantize_activations_validates_every_token_before_writing() {
    use quant::ffi::algos::quant_quantize_activations;
    let x = [1.0f32, 2.0, -3.0, 3.0e38, 0.5, 1.0];
    let s = [0.5f32, 0.25, 0.5];
    let mut q = [S8 as i8; 6];
    let mut ts = [f32::from_bits(0xA5A5_A5A5); 2];
    assert_eq!(
        quant_quantize_activations(
            x.as_ptr(),
            2,
            3,
            s.as_ptr(),
            q.as_mut_ptr(),
            6,
            ts.as_mut_ptr(),
            2
        ),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert!(detail().contains("x[1][0]"), "{}", detail());
    assert!(
        q.iter().all(|&v| v as u8 == S8),
        "codes written on error: {q:?}"
    );
    assert!(
        ts.iter().all(|v| v.to_bits() == 0xA5A5_A5A5),
        "scales written on error"
    );
    // Without the overflow the same call succeeds.
    let x = [1.0f32, 2.0, -3.0, 3.0, 0.5, 1.0];
    assert_eq!(
        quant_quantize_activations(
            x.as_ptr(),
            2,
            3,
            s.as_ptr(),
            q.as_mut_ptr(),
            6,
            ts.as_mut_ptr(),
            2
        ),
        QUANT_OK
    );
}

#[test]
fn quantizers_write_the_reference_outputs_or_zeros() {
    // 3 rows of 5 (rows are checked and quantized a block at a time), groups of 2.
    let mut src = [0f32; 15];
    for (i, v) in src.iter_mut().enumerate() {
        *v = i as f32 * 0.37 - 2.0;
    }
    let (mut q1, mut q2) = ([S8 as i8; 16], [S8 as i8; 16]);
    let (mut s1, mut s2) = ([0f32; 10], [0f32; 10]);
    assert_eq!(
        quant_int8_quantize(
            src.as_ptr(),
            3,
            5,
            2,
            q1.as_mut_ptr(),
            16,
            s1.as_mut_ptr(),
            10
        ),
        QUANT_OK
    );
    let shape = quant::kernels::Shape::new(3, 5, 2).unwrap();
    quant::kernels::int8::int8_quantize_ref(&src, shape, &mut q2, &mut s2).unwrap();
    assert_eq!((q1, s1.map(f32::to_bits)), (q2, s2.map(f32::to_bits)));
    // A NaN in the last row: rows 0 and 1 were written, then everything is zeroed; q[15] untouched.
    src[12] = f32::NAN;
    assert_eq!(
        quant_int8_quantize(
            src.as_ptr(),
            3,
            5,
            2,
            q2.as_mut_ptr(),
            16,
            s2.as_mut_ptr(),
            10
        ),
        QUANT_ERR_NON_FINITE
    );
    assert!(detail().contains("[12]"), "{}", detail());
    assert!(q2[..15].iter().all(|&v| v == 0) && q2[15] as u8 == S8);
    assert!(s2[..9].iter().all(|&v| v.to_bits() == 0));
    // INT4 and FP8: the same with their outputs; NULL and short buffers write nothing.
    let (mut p, mut z, mut s) = ([S8; 10], [S8; 9], [0f32; 9]);
    assert_eq!(
        quant_int4_quantize(
            src.as_ptr(),
            3,
            5,
            2,
            p.as_mut_ptr(),
            9,
            s.as_mut_ptr(),
            z.as_mut_ptr(),
            9
        ),
        QUANT_ERR_NON_FINITE
    );
    assert!(p[..9].iter().all(|&v| v == 0) && p[9] == S8 && z.iter().all(|&v| v == 0));
    let mut f = [S8; 15];
    assert_eq!(
        quant_fp8_e4m3_quantize(src.as_ptr(), 3, 5, 2, f.as_mut_ptr(), 14, s.as_mut_ptr(), 9),
        QUANT_ERR_BUFFER_TOO_SMALL
    );
    assert!(f.iter().all(|&v| v == S8));
    assert_eq!(
        quant_fp8_e4m3_quantize(ptr::null(), 3, 5, 2, f.as_mut_ptr(), 15, s.as_mut_ptr(), 9),
        QUANT_ERR_NULL_POINTER
    );
    assert!(f.iter().all(|&v| v == S8));
}
