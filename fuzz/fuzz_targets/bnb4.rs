//! bitsandbytes NF4 / FP4 (`quant_bnb4_*`) through the C exports. Inputs pick the code book (also
//! unknown), lengths (also zero and overflowing), block sizes (accepted or not), the source type (f32,
//! f16, bf16, unknown, misaligned), buffer lengths (also one too small), NULLs and special floats. On
//! an argument error every output is untouched; on a value error (NaN or infinity) the outputs are
//! zero-filled prefixes; on success the bytes and absmax equal the scalar reference's (on the same
//! values as f32), only the needed prefixes are written, and dequantization equals the reference's.
#![no_main]
use fuzz_common::bnb4::Bnb4Args;
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::ffi::bnb4::*;
use quant::kernels::nf4::{bnb4_dequantize_ref, bnb4_quantize_ref};

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let args = Bnb4Args::read(&mut inp, 3000);
    args.query_count(quant_bnb4_absmax_count, |blocks| blocks);
    let source = args.read_source(&mut inp);
    let (nq, na) = if args.valid {
        (args.n.div_ceil(2), args.n.div_ceil(args.blocksize))
    } else {
        (8, 1)
    };
    let mut dst = Out::<u8>::new(inp.len_for(nq), inp.null());
    let mut absmax = Out::<f32>::new(inp.len_for(na), inp.null());
    // A valid-looking n larger than the buffers gets a NULL source (rejected before any read).
    let (ptr, as_f32) = source.arg(&mut inp, args.dtype, !args.valid && args.n > 16);
    let status = if args.dtype == 0 && inp.bool() {
        quant_bnb4_quantize(
            args.code,
            ptr.cast(),
            args.n,
            args.blocksize,
            dst.ptr(),
            dst.len(),
            absmax.ptr(),
            absmax.len(),
        )
    } else {
        quant_bnb4_quantize_ex(
            args.code,
            args.dtype,
            ptr,
            args.n,
            args.blocksize,
            dst.ptr(),
            dst.len(),
            absmax.ptr(),
            absmax.len(),
        )
    };
    let ok = check_status("quant_bnb4_quantize", status);
    let ty = match args.ty {
        Some(t) if args.valid && (ok || status == quant::error::QUANT_ERR_NON_FINITE) => t,
        _ => {
            assert!(!ok);
            assert!(
                dst.untouched() && absmax.untouched(),
                "argument error wrote"
            );
            return;
        }
    };
    let (mut q, mut a) = (vec![0u8; nq], vec![0f32; na]);
    let want = bnb4_quantize_ref(ty, &as_f32, args.blocksize, &mut q, &mut a);
    if !ok {
        assert!(want.is_err(), "status {status} but the reference succeeded");
        assert!(dst.zeroed_to(nq) && absmax.zeroed_to(na));
        return;
    }
    assert!(want.is_ok(), "the reference failed: {want:?}");
    assert_eq!(&dst.buf[..nq], &q[..], "codes");
    assert!(bits_eq(&absmax.buf[..na], &a), "absmax");
    assert!(dst.untouched_from(nq) && absmax.untouched_from(na));
    let mut d = Out::<f32>::new(inp.len_for(args.n), inp.null());
    let status = quant_bnb4_dequantize(
        args.code,
        q.as_ptr(),
        a.as_ptr(),
        args.n,
        args.blocksize,
        d.ptr(),
        d.len(),
    );
    check_decoded("quant_bnb4_dequantize", status, &d, || {
        let mut want = vec![0f32; args.n];
        bnb4_dequantize_ref(ty, &q, &a, args.n, args.blocksize, &mut want).unwrap();
        want
    });
});
