//! The one-pass quantizers (`quant_*_quantize_streaming`) against the checked ones, through the C
//! exports, on the same arguments (shapes, group sizes, buffer lengths, NULLs, special floats, SIMD
//! levels, thread counts): the same status and detail; on success the same outputs; on error the
//! checked outputs untouched, and the streaming ones either untouched or (a value error) their written
//! prefixes zero with nothing past them touched.
#![no_main]
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::error::{QUANT_ERR_INVALID_ARGUMENT, QUANT_ERR_NON_FINITE};
use quant::ffi::casts::quant_fp8_e4m3_quantize;
use quant::ffi::rtn::{quant_int4_packed_size, quant_int4_quantize, quant_int8_quantize};
use quant::ffi::streaming::*;
use quant::kernels::Shape;

struct Outputs {
    status: i32,
    detail: String,
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
    let run = |streaming: bool| {
        let mut o = Outputs {
            status: 0,
            detail: String::new(),
            dst: Out::new(dst_len, nulls[1]),
            scales: Out::new(groups_len, nulls[2]),
            zeros: Out::new(groups_len, nulls[3]),
        };
        let sp = in_ptr(&src, nulls[0]);
        let (d, dl, s, z) = (o.dst.ptr(), dst_len, o.scales.ptr(), o.zeros.ptr());
        o.status = match (kind, streaming) {
            (0, false) => quant_int8_quantize(sp, rows, cols, group, d.cast(), dl, s, groups_len),
            (0, true) => {
                quant_int8_quantize_streaming(sp, rows, cols, group, d.cast(), dl, s, groups_len)
            }
            (1, false) => quant_int4_quantize(sp, rows, cols, group, d, dl, s, z, groups_len),
            (1, true) => {
                quant_int4_quantize_streaming(sp, rows, cols, group, d, dl, s, z, groups_len)
            }
            (_, false) => quant_fp8_e4m3_quantize(sp, rows, cols, group, d, dl, s, groups_len),
            (_, true) => {
                quant_fp8_e4m3_quantize_streaming(sp, rows, cols, group, d, dl, s, groups_len)
            }
        };
        check_status("quantize", o.status);
        o.detail = detail();
        o
    };
    let (c, s) = (run(false), run(true));
    assert_eq!(c.status, s.status, "status: {} / {}", c.detail, s.detail);
    assert_eq!(c.detail, s.detail);
    let bytes = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if c.status == 0 {
        assert_eq!(c.dst.buf, s.dst.buf, "codes differ");
        assert_eq!(bytes(&c.scales.buf), bytes(&s.scales.buf), "scales differ");
        assert_eq!(c.zeros.buf, s.zeros.buf, "zero points differ");
        return;
    }
    assert!(c.dst.untouched() && c.scales.untouched() && c.zeros.untouched());
    if s.dst.untouched() && s.scales.untouched() && s.zeros.untouched() {
        return;
    }
    // Written: only on a value error, after every argument check passed, so the lengths are enough.
    assert!(
        c.status == QUANT_ERR_NON_FINITE || c.status == QUANT_ERR_INVALID_ARGUMENT,
        "streaming wrote on status {}: {}",
        c.status,
        c.detail
    );
    assert!(s.dst.buf[..need_dst].iter().all(|&b| b == 0) && s.dst.untouched_from(need_dst));
    assert!(s.scales.buf[..n_groups].iter().all(|&v| v.to_bits() == 0));
    assert!(s.scales.untouched_from(n_groups));
    if kind == 1 {
        assert!(
            s.zeros.buf[..n_groups].iter().all(|&b| b == 0) && s.zeros.untouched_from(n_groups)
        );
    } else {
        assert!(s.zeros.untouched());
    }
});
