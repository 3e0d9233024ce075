//! Rules the whole API shares, through the Rust API and the C exports: one rule for every thread count
//! (0 = all cores, at most `QUANT_MAX_THREADS`, default 1), buffer-size errors counted in the unit of
//! the length parameter (bytes for packed codes), and how many calibration tokens each method needs.
use std::ffi::{c_char, CStr};
use std::ptr;

use quant::algos::QuantOptions;
use quant::calib::CalibrationOptions;
use quant::error::{QuantError, QUANT_ERR_INVALID_ARGUMENT, QUANT_ERR_NULL_POINTER, QUANT_OK};
use quant::ffi::calib::quant_calib_recommended_tokens;
use quant::ffi::method::{
    QUANT_AWQ, QUANT_FP8_E4M3, QUANT_GPTQ, QUANT_INT4_ASYMMETRIC, QUANT_INT8_SYMMETRIC,
    QUANT_SMOOTHQUANT,
};
use quant::ffi::options::{
    quant_options, quant_options_free, quant_options_new, quant_options_set_threads,
};
use quant::ffi::rtn::{quant_int4_quantize, quant_pack_int4};
use quant::ffi::simd::{quant_set_threads, quant_threads};
use quant::ffi::status::quant_last_error;
use quant::kernels::int4::int4_quantize;
use quant::kernels::kbit::kbit_quantize;
use quant::kernels::par::QUANT_MAX_THREADS;
use quant::kernels::Shape;
use quant::method::QuantMethod;

fn detail() -> String {
    let mut buf = [0 as c_char; 256];
    quant_last_error(buf.as_mut_ptr(), buf.len());
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_thread_count_follows_one_rule() {
    // Defaults: 1 everywhere (the library starts no thread unless asked).
    assert_eq!(QuantOptions::default().threads, 1);
    assert_eq!(CalibrationOptions::default().threads, 1);
    assert_eq!(quant_threads(), 1);
    assert_eq!(QUANT_MAX_THREADS, 1024);
    // 0 (all cores) and QUANT_MAX_THREADS are accepted; one more is INVALID_ARGUMENT, the setting kept.
    let mut o: *mut quant_options = ptr::null_mut();
    assert_eq!(quant_options_new(&mut o), QUANT_OK);
    for ok in [0, 1, QUANT_MAX_THREADS] {
        assert_eq!(quant_options_set_threads(o, ok), QUANT_OK);
        let mut r = QuantOptions::default();
        r.set_threads(ok).unwrap();
        assert_eq!(r.threads, ok);
    }
    for bad in [QUANT_MAX_THREADS + 1, 4096, usize::MAX] {
        assert_eq!(
            quant_options_set_threads(o, bad),
            QUANT_ERR_INVALID_ARGUMENT
        );
        let d = detail();
        assert!(d.contains("at most 1024"), "{d}");
        let mut r = QuantOptions::default();
        assert!(r.set_threads(bad).is_err());
        assert_eq!(r.threads, 1);
        assert_eq!(quant_set_threads(bad), QUANT_ERR_INVALID_ARGUMENT);
        assert_eq!(detail(), d, "the two settings report the same rule");
        assert_eq!(quant_threads(), 1);
    }
    quant_options_free(o);
    assert_eq!(quant_set_threads(QUANT_MAX_THREADS), QUANT_OK);
    assert_eq!(quant_threads(), QUANT_MAX_THREADS);
    assert_eq!(quant_set_threads(1), QUANT_OK);
}

#[test]
fn packed_buffers_are_counted_in_bytes() {
    let shape = Shape::new(2, 7, 4).unwrap(); // 4 bytes a row, 4 groups
    let x = [0.5f32; 14];
    let (mut s, mut z) = ([0f32; 4], [0u8; 4]);
    let mut dst = [0u8; 7];
    let e = int4_quantize(&x, shape, &mut dst, &mut s, &mut z).unwrap_err();
    assert!(
        matches!(
            e,
            QuantError::BufferTooSmall {
                got: 7,
                need: 8,
                unit: "bytes",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "dst holds 7 bytes but 8 are needed");
    let e = kbit_quantize(&x, shape, 3, &mut dst[..5], &mut s, &mut z).unwrap_err();
    assert_eq!(e.to_string(), "dst holds 5 bytes but 6 are needed");
    // The scales and zero points count in elements.
    let mut dst = [0u8; 8];
    let e = int4_quantize(&x, shape, &mut dst, &mut s[..3], &mut z).unwrap_err();
    assert_eq!(e.to_string(), "scales holds 3 elements but 4 are needed");
    // The same through the C exports.
    let (mut s, mut z) = ([0f32; 4], [0u8; 4]);
    let status = quant_int4_quantize(
        x.as_ptr(),
        2,
        7,
        4,
        dst.as_mut_ptr(),
        7,
        s.as_mut_ptr(),
        z.as_mut_ptr(),
        4,
    );
    assert_eq!(status, quant::error::QUANT_ERR_BUFFER_TOO_SMALL);
    assert_eq!(detail(), "dst holds 7 bytes but 8 are needed");
    let vals = [1i8, 2, 3];
    let status = quant_pack_int4(vals.as_ptr(), 3, dst.as_mut_ptr(), 1);
    assert_eq!(status, quant::error::QUANT_ERR_BUFFER_TOO_SMALL);
    assert_eq!(detail(), "dst holds 1 bytes but 2 are needed");
}

#[test]
fn recommended_calibration_tokens() {
    let gptq = QuantMethod::Gptq {
        group_size: 128,
        bits: 4,
    };
    assert_eq!(gptq.recommended_calibration_tokens(512).unwrap(), 8192);
    assert_eq!(gptq.recommended_calibration_tokens(4096).unwrap(), 65536);
    assert!(gptq.recommended_calibration_tokens(0).is_err());
    let awq = QuantMethod::Awq {
        group_size: 128,
        bits: 4,
    };
    assert_eq!(awq.recommended_calibration_tokens(4096).unwrap(), 512);
    let rtn = QuantMethod::Int4Asymmetric { group_size: 128 };
    assert_eq!(rtn.recommended_calibration_tokens(4096).unwrap(), 0);
    // Through C: every kind, then the errors (nothing written).
    let want = [
        (QUANT_INT8_SYMMETRIC, 0),
        (QUANT_INT4_ASYMMETRIC, 0),
        (QUANT_FP8_E4M3, 0),
        (QUANT_AWQ, 512),
        (QUANT_SMOOTHQUANT, 512),
        (QUANT_GPTQ, 16 * 4096),
    ];
    for (kind, tokens) in want {
        let mut t = u64::MAX;
        assert_eq!(quant_calib_recommended_tokens(kind, 4096, &mut t), QUANT_OK);
        assert_eq!(t, tokens, "kind {kind}");
    }
    let mut t = 7u64;
    assert_eq!(
        quant_calib_recommended_tokens(6, 4096, &mut t),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert!(detail().contains("kind is 6"), "{}", detail());
    assert_eq!(
        quant_calib_recommended_tokens(QUANT_GPTQ, 0, &mut t),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        quant_calib_recommended_tokens(QUANT_GPTQ, 16, ptr::null_mut()),
        QUANT_ERR_NULL_POINTER
    );
    assert_eq!(t, 7);
}

#[test]
fn the_activation_quantizer_writes_nothing_on_error() {
    use quant::algos::smoothquant::quantize_activations;
    // Unlike the weight quantizers, it checks every token before writing: FLT_MAX has no scale.
    let mut x = [0.5f32; 12];
    x[7] = f32::MAX;
    let (mut q, mut s) = ([5i8; 12], [9f32; 3]);
    let e = quantize_activations(&x, 3, 4, None, &mut q, &mut s).unwrap_err();
    assert!(e.to_string().starts_with("x[1][3] is"), "{e}");
    assert_eq!((q, s), ([5i8; 12], [9f32; 3]));
    x[7] = f32::NAN;
    let e = quantize_activations(&x, 3, 4, None, &mut q, &mut s).unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { index: 7, .. }), "{e:?}");
    assert_eq!((q, s), ([5i8; 12], [9f32; 3]));
}
