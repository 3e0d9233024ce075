//! The quantizers (`quant_int8_quantize`, `quant_int4_quantize`, `quant_fp8_e4m3_quantize`), which
//! check their input in the pass that quantizes it, against their scalar references (which check the
//! whole input first), on the same arguments (shapes, group sizes, buffer lengths, NULLs, special
//! floats, SIMD levels, thread counts): the same status and detail, and the same outputs, whether the
//! call succeeds or fails. On an argument error nothing is written; on a value error (NaN, infinity, an
//! overflowing group) the prefixes a success writes are zero and nothing past them is touched.
#![no_main]
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::error::{QUANT_ERR_INVALID_ARGUMENT, QUANT_ERR_NON_FINITE};
use quant::ffi::casts::quant_fp8_e4m3_quantize;
use quant::ffi::rtn::{quant_int4_packed_size, quant_int4_quantize, quant_int8_quantize};
use quant::kernels::fp8::fp8_e4m3_quantize_ref;
use quant::kernels::int4::int4_quantize_ref;
use quant::kernels::int8::int8_quantize_ref;
use quant::kernels::Shape;

struct Outputs {
    dst: Out<u8>,
    scales: Out<f32>,
    zeros: Out<u8>,
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    pick_simd_and_threads(&mut inp);
    let kind = inp.u8() % 3;
    let (rows, cols, group) = (inp.size(64), inp.size(300), inp.size(300));
    let shape = Shape::new(rows, cols, group).ok();
    if shape.is_some_and(|s| s.len() > MAX_ELEMS) {
        return;
    }
    let n = shape.map_or(16, |s| s.len());
    let n_groups = shape.map_or(4, |s| s.n_groups());
    let need_dst = match (kind, shape) {
        (1, Some(_)) => quant_int4_packed_size(rows, cols),
        _ => n,
    };
    let src: Vec<f32> = (0..n).map(|_| inp.f32()).collect();
    let (dst_len, groups_len) = (inp.len_for(need_dst), inp.len_for(n_groups));
    let nulls = [inp.null(), inp.null(), inp.null(), inp.null()];
    let mut o = Outputs {
        dst: Out::new(dst_len, nulls[1]),
        scales: Out::new(groups_len, nulls[2]),
        zeros: Out::new(groups_len, nulls[3]),
    };
    let sp = in_ptr(&src, nulls[0]);
    let (d, dl, s, z) = (o.dst.ptr(), dst_len, o.scales.ptr(), o.zeros.ptr());
    let status = match kind {
        0 => quant_int8_quantize(sp, rows, cols, group, d.cast(), dl, s, groups_len),
        1 => quant_int4_quantize(sp, rows, cols, group, d, dl, s, z, groups_len),
        _ => quant_fp8_e4m3_quantize(sp, rows, cols, group, d, dl, s, groups_len),
    };
    check_status("quantize", status);
    let detail = detail();
    // Every argument is fine: an error can only be a value error.
    // (The zero points' pointer is an argument of INT4 only.)
    let args_ok = shape.is_some()
        && !nulls[..3].iter().any(|&b| b)
        && (kind != 1 || !nulls[3])
        && dst_len >= need_dst
        && groups_len >= n_groups;
    let value_error = status != 0 && args_ok;
    if value_error {
        assert!(
            status == QUANT_ERR_NON_FINITE || status == QUANT_ERR_INVALID_ARGUMENT,
            "status {status} with valid arguments: {detail}"
        );
    }
    let untouched = o.dst.untouched() && o.scales.untouched() && o.zeros.untouched();
    if status != 0 && !value_error {
        assert!(untouched, "an argument error wrote: {detail}");
    }
    if value_error {
        assert!(o.dst.zeroed_to(need_dst), "codes not zero-filled: {detail}");
        assert!(
            o.scales.zeroed_to(n_groups),
            "scales not zero-filled: {detail}"
        );
        if kind == 1 {
            assert!(o.zeros.zeroed_to(n_groups), "zero points not zero-filled");
        } else {
            assert!(o.zeros.untouched());
        }
    }
    // The reference on the same arguments (it takes slices: not for NULLs or invalid shapes).
    let Some(shape) = shape else { return };
    if !args_ok && nulls.iter().any(|&b| b) {
        return;
    }
    let mut r = Outputs {
        dst: Out::new(dst_len, false),
        scales: Out::new(groups_len, false),
        zeros: Out::new(groups_len, false),
    };
    let result = match kind {
        0 => {
            let mut codes: Vec<i8> = r.dst.buf.iter().map(|&b| b as i8).collect();
            let res = int8_quantize_ref(&src, shape, &mut codes, &mut r.scales.buf);
            r.dst.buf = codes.iter().map(|&c| c as u8).collect();
            res
        }
        1 => int4_quantize_ref(
            &src,
            shape,
            &mut r.dst.buf,
            &mut r.scales.buf,
            &mut r.zeros.buf,
        ),
        _ => fp8_e4m3_quantize_ref(&src, shape, &mut r.dst.buf, &mut r.scales.buf),
    };
    let want = match &result {
        Ok(()) => 0,
        Err(e) => e.status(),
    };
    assert_eq!(status, want, "status differs from the reference: {detail}");
    if let Err(e) = &result {
        assert_eq!(detail, e.to_string(), "detail differs from the reference");
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(o.dst.buf, r.dst.buf, "codes differ from the reference");
    assert_eq!(bits(&o.scales.buf), bits(&r.scales.buf), "scales differ");
    assert_eq!(o.zeros.buf, r.zeros.buf, "zero points differ");
});
