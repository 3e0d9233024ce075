//! Plain casts: f32 <-> FP16 / BF16 / FP8 E4M3 / FP8 E5M2 through the C exports. On success every
//! element equals the scalar reference (and, for FP16/BF16, the `half` crate); on error `dst` is
//! untouched.
#![no_main]
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::ffi::casts::*;
use quant::kernels::fp8::*;
use quant::kernels::half::*;

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    pick_simd_and_threads(&mut inp);
    let op = inp.u8() % 8;
    let n = inp.size(MAX_ELEMS);
    let saturate = inp.bool();
    let null_src = inp.null();
    let null_dst = inp.null();
    // A huge n is given with real (small) buffers only when no slice of n elements can exist (the call
    // must reject it before touching memory); otherwise with NULL pointers, since the contract forbids
    // lying about a buffer's length.
    let huge = n > MAX_ELEMS;
    let (null_src, null_dst) = if huge && n <= isize::MAX as usize {
        (true, true)
    } else {
        (null_src, null_dst)
    };
    let len = if huge { 0 } else { n };
    if !huge && n > 0 && inp.u8().is_multiple_of(16) {
        // Misaligned pointers (into a byte buffer at an odd offset): INVALID_ARGUMENT, nothing written.
        let off = 1 + 2 * (inp.u8() % 2) as usize; // odd: misaligned for u16 and f32
        let mut src_bytes = vec![0x3fu8; n * 4 + 8];
        let mut dst_bytes = Out::<u8>::new(n * 4 + 8, false);
        let which = inp.u8() % 3;
        let sp = unsafe { src_bytes.as_mut_ptr().add(if which != 1 { off } else { 0 }) };
        let dp = unsafe { dst_bytes.ptr().add(if which != 0 { off } else { 0 }) };
        let s = match op {
            0 => quant_f32_to_f16(sp as *const f32, dp as *mut u16, n),
            1 => quant_f32_to_bf16(sp as *const f32, dp as *mut u16, n),
            2 => quant_f32_to_fp8_e4m3(sp as *const f32, dp, n, saturate),
            3 => quant_f16_to_f32(sp as *const u16, dp as *mut f32, n),
            4 => quant_bf16_to_f32(sp as *const u16, dp as *mut f32, n),
            5 => quant_fp8_e5m2_to_f32(sp, dp as *mut f32, n),
            _ => quant_fp8_e4m3_to_f32(sp, dp as *mut f32, n),
        };
        let byte_ops = op == 2 && which == 1 || op >= 5 && which == 0;
        if byte_ops {
            // Only a byte pointer was offset: bytes have no alignment, so the call is valid.
            check_status("misaligned byte pointer", s);
        } else {
            assert_eq!(
                s,
                quant::error::QUANT_ERR_INVALID_ARGUMENT,
                "misaligned op {op}"
            );
            check_status("misaligned", s);
            assert!(dst_bytes.untouched());
        }
        return;
    }
    match op {
        0..=2 => {
            let src: Vec<f32> = (0..len).map(|_| inp.f32()).collect();
            if op == 0 {
                let mut dst = Out::<u16>::new(len, null_dst);
                let s = quant_f32_to_f16(in_ptr(&src, null_src), dst.ptr(), n);
                if check_status("f32_to_f16", s) {
                    for (x, &h) in src.iter().zip(&dst.buf) {
                        assert_eq!(h, f32_to_f16_ref(*x), "f16 of {x:e}");
                        assert_eq!(h, ::half::f16::from_f32(*x).to_bits(), "half f16 of {x:e}");
                    }
                } else {
                    assert!(dst.untouched());
                }
            } else if op == 1 {
                let mut dst = Out::<u16>::new(len, null_dst);
                let s = quant_f32_to_bf16(in_ptr(&src, null_src), dst.ptr(), n);
                if check_status("f32_to_bf16", s) {
                    for (x, &h) in src.iter().zip(&dst.buf) {
                        assert_eq!(h, f32_to_bf16_ref(*x), "bf16 of {x:e}");
                        assert_eq!(
                            h,
                            ::half::bf16::from_f32(*x).to_bits(),
                            "half bf16 of {x:e}"
                        );
                    }
                } else {
                    assert!(dst.untouched());
                }
            } else {
                let e4m3 = inp.bool();
                let mut dst = Out::<u8>::new(len, null_dst);
                let s = if e4m3 {
                    quant_f32_to_fp8_e4m3(in_ptr(&src, null_src), dst.ptr(), n, saturate)
                } else {
                    quant_f32_to_fp8_e5m2(in_ptr(&src, null_src), dst.ptr(), n, saturate)
                };
                if check_status("f32_to_fp8", s) {
                    for (x, &c) in src.iter().zip(&dst.buf) {
                        let r = if e4m3 {
                            f32_to_fp8_e4m3_ref(*x, saturate)
                        } else {
                            f32_to_fp8_e5m2_ref(*x, saturate)
                        };
                        assert_eq!(c, r, "fp8 of {x:e} (e4m3 {e4m3}, saturate {saturate})");
                    }
                } else {
                    assert!(dst.untouched());
                }
            }
        }
        3..=5 => {
            let src: Vec<u16> = (0..len).map(|_| inp.u16()).collect();
            let mut dst = Out::<f32>::new(len, null_dst);
            let s = if op == 3 {
                quant_f16_to_f32(in_ptr(&src, null_src), dst.ptr(), n)
            } else {
                quant_bf16_to_f32(in_ptr(&src, null_src), dst.ptr(), n)
            };
            if check_status("16-bit decode", s) {
                for (&h, &x) in src.iter().zip(&dst.buf) {
                    let r = if op == 3 {
                        f16_to_f32_ref(h)
                    } else {
                        bf16_to_f32_ref(h)
                    };
                    assert_eq!(x.to_bits(), r.to_bits(), "decode of {h:#06x}");
                }
            } else {
                assert!(dst.untouched());
            }
        }
        _ => {
            let src: Vec<u8> = (0..len).map(|_| inp.u8()).collect();
            let e4m3 = op == 6;
            let mut dst = Out::<f32>::new(len, null_dst);
            let s = if e4m3 {
                quant_fp8_e4m3_to_f32(in_ptr(&src, null_src), dst.ptr(), n)
            } else {
                quant_fp8_e5m2_to_f32(in_ptr(&src, null_src), dst.ptr(), n)
            };
            if check_status("fp8 decode", s) {
                for (&c, &x) in src.iter().zip(&dst.buf) {
                    let r = if e4m3 {
                        fp8_e4m3_to_f32_ref(c)
                    } else {
                        fp8_e5m2_to_f32_ref(c)
                    };
                    assert_eq!(x.to_bits(), r.to_bits(), "decode of {c:#04x}");
                }
            } else {
                assert!(dst.untouched());
            }
        }
    }
});
