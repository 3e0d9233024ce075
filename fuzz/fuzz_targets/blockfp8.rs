//! Block-scaled FP8 E4M3 (`quant_fp8_block_*`) through the C exports. Inputs pick shapes and block
//! shapes (also zero and overflowing), the source type (f32, f16, bf16, unknown, misaligned), buffer
//! lengths (also one too small), NULLs and special floats. On an argument error every output is
//! untouched; on a value error (NaN or infinity, every argument valid) the outputs are zero-filled
//! prefixes; on success the codes and scales equal the scalar reference's bit for bit (on the same
//! values as f32), only the needed prefixes are written, and dequantization equals the reference's.
#![no_main]
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::ffi::blockfp8::*;
use quant::kernels::fp8::{fp8_block_dequantize_ref, fp8_block_quantize_ref, BlockShape};

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let rows = inp.size(200);
    let cols = inp.size(200);
    let br = inp.size(160);
    let bc = inp.size(160);
    let dtype = inp.enum_i32(3);
    let shape = BlockShape::new(rows, cols, br, bc).ok();
    clear_detail();
    let count = quant_fp8_block_scale_count(rows, cols, br, bc);
    match shape {
        Some(s) => assert_eq!(count, s.n_blocks()),
        None => assert!(count == 0 && !detail().is_empty()),
    }
    // Shapes too large for honest buffers get NULL inputs (the call must reject them first).
    let real = match shape {
        Some(s) if s.len() <= MAX_ELEMS => s.len(),
        Some(_) => 0,
        None => 16,
    };
    let source = Source::read(&mut inp, real);
    let (n, nb) = shape.map_or((16, 4), |s| (s.len(), s.n_blocks()));
    let n = n.min(MAX_ELEMS);
    let mut dst = Out::<u8>::new(inp.len_for(n), inp.null());
    let mut sc = Out::<f32>::new(inp.len_for(nb.min(MAX_ELEMS)), inp.null());
    let (ptr, as_f32) = source.arg(&mut inp, dtype, shape.is_some() && real == 0);
    let status = if dtype == 0 && inp.bool() {
        quant_fp8_block_quantize(
            ptr.cast(),
            rows,
            cols,
            br,
            bc,
            dst.ptr(),
            dst.len(),
            sc.ptr(),
            sc.len(),
        )
    } else {
        quant_fp8_block_quantize_ex(
            dtype,
            ptr,
            rows,
            cols,
            br,
            bc,
            dst.ptr(),
            dst.len(),
            sc.ptr(),
            sc.len(),
        )
    };
    let ok = check_status("quant_fp8_block_quantize", status);
    let shape = match shape {
        Some(s) if ok || status == quant::error::QUANT_ERR_NON_FINITE => s,
        _ => {
            assert!(!ok);
            assert!(dst.untouched() && sc.untouched(), "argument error wrote");
            return;
        }
    };
    let (mut q, mut s) = (vec![0u8; shape.len()], vec![0f32; shape.n_blocks()]);
    let want = fp8_block_quantize_ref(&as_f32, shape, &mut q, &mut s);
    if !ok {
        assert!(want.is_err(), "status {status} but the reference succeeded");
        assert!(dst.zeroed_to(shape.len()) && sc.zeroed_to(shape.n_blocks()));
        return;
    }
    assert!(want.is_ok(), "the reference failed: {want:?}");
    assert_eq!(&dst.buf[..shape.len()], &q[..], "codes");
    assert!(bits_eq(&sc.buf[..shape.n_blocks()], &s), "scale_inv");
    assert!(dst.untouched_from(shape.len()) && sc.untouched_from(shape.n_blocks()));
    // Dequantize what was written, against the reference.
    let mut d = Out::<f32>::new(inp.len_for(shape.len()), inp.null());
    let status =
        quant_fp8_block_dequantize(q.as_ptr(), s.as_ptr(), rows, cols, br, bc, d.ptr(), d.len());
    check_decoded("quant_fp8_block_dequantize", status, &d, || {
        let mut want = vec![0f32; shape.len()];
        fp8_block_dequantize_ref(&q, &s, shape, &mut want).unwrap();
        want
    });
});
