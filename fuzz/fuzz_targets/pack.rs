//! The signed-nibble helpers, `quant_pack_int4` / `quant_unpack_int4`: arbitrary values (also
//! outside -8..=7), counts, buffer lengths (also one too small) and NULLs. On error the output is
//! untouched; on success only the needed prefix is written and unpacking gives the values back.
#![no_main]
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::ffi::rtn::{quant_pack_int4, quant_unpack_int4};

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let pack = inp.bool();
    let mut n = inp.size(MAX_ELEMS);
    let null_src = inp.null();
    let null_dst = inp.null();
    if n > MAX_ELEMS {
        // Only NULL inputs may come with a count that no real buffer backs.
        let mut dst = Out::<u8>::new(2, null_dst);
        let s = if pack {
            quant_pack_int4(std::ptr::null(), n, dst.ptr(), dst.len())
        } else {
            quant_unpack_int4(std::ptr::null(), n, dst.ptr() as *mut i8, dst.len())
        };
        assert!(!check_status("pack/unpack of a huge NULL input", s));
        assert!(dst.untouched());
        n = inp.size(64).min(64);
    }
    if pack {
        let values: Vec<i8> = (0..n)
            .map(|_| {
                if inp.u8() < 240 {
                    (inp.u8() % 16) as i8 - 8
                } else {
                    inp.u8() as i8
                }
            })
            .collect();
        let need = n.div_ceil(2);
        let mut dst = Out::<u8>::new(inp.len_for(need), null_dst);
        let s = quant_pack_int4(in_ptr(&values, null_src), n, dst.ptr(), dst.len());
        if check_status("pack_int4", s) {
            assert!(values.iter().all(|v| (-8..=7).contains(v)));
            assert!(dst.untouched_from(need));
            if n % 2 == 1 {
                assert_eq!(
                    dst.buf[need - 1] >> 4,
                    0,
                    "odd count: high nibble of the last byte"
                );
            }
            let mut back = Out::<i8>::new(n, false);
            let s = quant_unpack_int4(dst.buf.as_ptr(), n, back.ptr(), back.len());
            assert!(check_status("unpack_int4 (round trip)", s));
            assert_eq!(back.buf, values);
        } else {
            assert!(dst.untouched());
        }
    } else {
        let src: Vec<u8> = (0..n.div_ceil(2)).map(|_| inp.u8()).collect();
        let mut dst = Out::<i8>::new(inp.len_for(n), null_dst);
        let s = quant_unpack_int4(in_ptr(&src, null_src), n, dst.ptr(), dst.len());
        if check_status("unpack_int4", s) {
            assert!(dst.untouched_from(n));
            for (i, &v) in dst.buf[..n].iter().enumerate() {
                let nib = (src[i / 2] >> (4 * (i % 2))) & 0xF;
                assert_eq!(v, ((nib << 4) as i8) >> 4, "element {i}");
            }
            let mut again = Out::<u8>::new(n.div_ceil(2), false);
            let s = quant_pack_int4(dst.buf.as_ptr(), n, again.ptr(), again.len());
            assert!(check_status("pack_int4 (round trip)", s));
            for (i, (&a, &b)) in again.buf.iter().zip(&src).enumerate() {
                let mask = if n % 2 == 1 && i == again.len() - 1 {
                    0x0F
                } else {
                    0xFF
                };
                assert_eq!(a, b & mask, "byte {i}");
            }
        } else {
            assert!(dst.untouched());
        }
    }
});
