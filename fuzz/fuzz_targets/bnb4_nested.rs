//! bitsandbytes double quantization (`quant_bnb4_quantize_nested`, `_nested_absmax`,
//! `_dequantize_nested`, `_absmax_mean`, `_nested_count`) through the C exports. Inputs pick the code
//! book (also unknown), lengths (also zero and overflowing), block sizes (accepted or not), the source
//! type (f32, f16, bf16, unknown, misaligned), the offset (NULL for the mean rule, or any float,
//! including NaN, infinities and values that make `absmax - offset` overflow), buffer lengths (also one
//! too small), NULLs and special floats. On an argument error every output is untouched; on a value
//! error the three outputs are zero-filled prefixes and the offset is not written; on success the
//! outputs equal the scalar reference's 4-bit step followed by the offset rule and the 8-bit step, and
//! the decoded statistics and values equal the references'.
#![no_main]
use fuzz_common::bnb4::Bnb4Args;
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::ffi::bnb4::*;
use quant::kernels::nf4::{
    bnb4_absmax_mean, bnb4_dequantize_ref, bnb4_quantize_ref, bnb_dynamic_quantize, dynamic_map,
};

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    pick_simd_and_threads(&mut inp);
    let args = Bnb4Args::read(&mut inp, 6000);
    let count2 = args.query_count(quant_bnb4_nested_count, |blocks| blocks.div_ceil(256));
    let source = args.read_source(&mut inp);
    let (nq, na, n2) = if args.valid {
        (args.n.div_ceil(2), args.n.div_ceil(args.blocksize), count2)
    } else {
        (8, 1, 1)
    };
    let given = match inp.u8() % 4 {
        0 | 1 => None,
        2 => Some(inp.f32()),
        _ => Some(f32::from_bits(inp.u32())),
    };
    let mut dst = Out::<u8>::new(inp.len_for(nq), inp.null());
    let mut qabsmax = Out::<u8>::new(inp.len_for(na), inp.null());
    let mut absmax2 = Out::<f32>::new(inp.len_for(n2), inp.null());
    let mut offset_out = Out::<f32>::new(1, inp.null());
    let (ptr, as_f32) = source.arg(&mut inp, args.dtype, !args.valid && args.n > 16);
    let offset_ptr = given.as_ref().map_or(std::ptr::null(), |o| o as *const f32);
    let status = quant_bnb4_quantize_nested(
        args.code,
        args.dtype,
        ptr,
        args.n,
        args.blocksize,
        offset_ptr,
        dst.ptr(),
        dst.len(),
        qabsmax.ptr(),
        qabsmax.len(),
        absmax2.ptr(),
        absmax2.len(),
        offset_out.ptr(),
    );
    let ok = check_status("quant_bnb4_quantize_nested", status);
    let ty = match args.ty {
        Some(t) if args.valid && (ok || status == quant::error::QUANT_ERR_NON_FINITE) => t,
        _ => {
            assert!(!ok);
            assert!(
                dst.untouched()
                    && qabsmax.untouched()
                    && absmax2.untouched()
                    && offset_out.untouched(),
                "argument error wrote"
            );
            return;
        }
    };
    // The reference: the 4-bit step, the offset, the 8-bit step on absmax - offset.
    let (mut q, mut a) = (vec![0u8; nq], vec![0f32; na]);
    let want = bnb4_quantize_ref(ty, &as_f32, args.blocksize, &mut q, &mut a).and_then(|()| {
        let off = match given {
            Some(o) => o,
            None => bnb4_absmax_mean(&a)?,
        };
        let diff: Vec<f32> = a.iter().map(|&v| v - off).collect();
        let (mut qa, mut a2) = (vec![0u8; na], vec![0f32; n2]);
        bnb_dynamic_quantize(&diff, &mut qa, &mut a2)?;
        Ok((off, qa, a2))
    });
    if !ok {
        assert!(want.is_err(), "status {status} but the reference succeeded");
        assert!(dst.zeroed_to(nq) && qabsmax.zeroed_to(na) && absmax2.zeroed_to(n2));
        assert!(offset_out.untouched());
        return;
    }
    let (off, qa, a2) = want.expect("the reference failed");
    assert_eq!(offset_out.buf[0].to_bits(), off.to_bits(), "offset");
    assert_eq!(&dst.buf[..nq], &q[..], "codes");
    assert_eq!(&qabsmax.buf[..na], &qa[..], "qabsmax");
    assert!(bits_eq(&absmax2.buf[..n2], &a2), "absmax2");
    assert!(dst.untouched_from(nq) && qabsmax.untouched_from(na) && absmax2.untouched_from(n2));
    if given.is_none() {
        let mut mean = Out::<f32>::new(1, false);
        let s = quant_bnb4_absmax_mean(a.as_ptr(), na, mean.ptr());
        assert!(check_status("quant_bnb4_absmax_mean", s));
        assert_eq!(mean.buf[0].to_bits(), off.to_bits());
    }
    // Decoding: the recovered absmax, then the 4-bit values.
    let map = dynamic_map();
    let rec: Vec<f32> = qa
        .iter()
        .enumerate()
        .map(|(i, &c)| map[c as usize] * a2[i / 256] + off)
        .collect();
    let mut r = Out::<f32>::new(inp.len_for(na), inp.null());
    let s = quant_bnb4_nested_absmax(qa.as_ptr(), a2.as_ptr(), off, na, r.ptr(), r.len());
    check_decoded("quant_bnb4_nested_absmax", s, &r, || rec.clone());
    let mut d = Out::<f32>::new(inp.len_for(args.n), inp.null());
    let s = quant_bnb4_dequantize_nested(
        args.code,
        q.as_ptr(),
        qa.as_ptr(),
        a2.as_ptr(),
        off,
        args.n,
        args.blocksize,
        d.ptr(),
        d.len(),
    );
    let decoded = check_decoded("quant_bnb4_dequantize_nested", s, &d, || {
        let mut want = vec![0f32; args.n];
        bnb4_dequantize_ref(ty, &q, &rec, args.n, args.blocksize, &mut want).unwrap();
        want
    });
    if !decoded {
        let bad = rec.iter().any(|v| !v.is_finite());
        assert!(
            bad || d.null || d.len() < args.n,
            "dequantize failed on finite statistics"
        );
    }
});
