//! bitsandbytes NF4 / FP4 (`quant_bnb4_*`) through the C exports. Inputs pick the code book (also
//! unknown), lengths (also zero and overflowing), block sizes (accepted or not), the source type (f32,
//! f16, bf16, unknown, misaligned), buffer lengths (also one too small), NULLs and special floats. On
//! an argument error every output is untouched; on a value error (NaN or infinity) the outputs are
//! zero-filled prefixes; on success the bytes and absmax equal the scalar reference's (on the same
//! values as f32), only the needed prefixes are written, and dequantization equals the reference's.
#![no_main]
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;
use quant::ffi::bnb4::*;
use quant::kernels::nf4::{bnb4_dequantize_ref, bnb4_quantize_ref, check_blocksize, Bnb4Type};

fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let code = inp.enum_i32(3);
    let n = inp.size(3000);
    let blocksize = match inp.u8() % 10 {
        0 => inp.size(5000),
        k => 16usize << k,
    };
    let dtype = inp.enum_i32(3);
    let ty = Bnb4Type::from_code(code).ok();
    let valid = n > 0 && n <= MAX_ELEMS * 4 && check_blocksize(blocksize).is_ok();
    clear_detail();
    let count = quant_bnb4_absmax_count(n, blocksize);
    if check_blocksize(blocksize).is_ok() && n > 0 {
        assert_eq!(count, n.div_ceil(blocksize));
    } else {
        assert!(count == 0 && !detail().is_empty());
    }
    let real = if valid { n } else { 16 };
    let values: Vec<f32> = (0..real).map(|_| inp.f32()).collect();
    let halves: Vec<u16> = (0..real).map(|_| inp.u16()).collect();
    let (nq, na) = if valid {
        (n.div_ceil(2), n.div_ceil(blocksize))
    } else {
        (8, 1)
    };
    let mut dst = Out::<u8>::new(inp.len_for(nq), inp.null());
    let mut absmax = Out::<f32>::new(inp.len_for(na), inp.null());
    // A valid-looking n larger than the buffers gets a NULL source (rejected before any read).
    let src_null = inp.null() || (!valid && n > 16);
    let misalign = inp.u8().is_multiple_of(32);
    let (ptr, as_f32): (*const std::ffi::c_void, Vec<f32>) = match dtype {
        1 => (
            in_ptr(&halves, src_null).cast(),
            halves
                .iter()
                .map(|&h| half::f16::from_bits(h).to_f32())
                .collect(),
        ),
        2 => (
            in_ptr(&halves, src_null).cast(),
            halves
                .iter()
                .map(|&h| f32::from_bits(u32::from(h) << 16))
                .collect(),
        ),
        _ => (in_ptr(&values, src_null).cast(), values.clone()),
    };
    let ptr = if misalign && !ptr.is_null() {
        ptr.cast::<u8>().wrapping_add(1).cast()
    } else {
        ptr
    };
    let status = if dtype == 0 && inp.bool() {
        quant_bnb4_quantize(
            code,
            ptr.cast(),
            n,
            blocksize,
            dst.ptr(),
            dst.len(),
            absmax.ptr(),
            absmax.len(),
        )
    } else {
        quant_bnb4_quantize_ex(
            code,
            dtype,
            ptr,
            n,
            blocksize,
            dst.ptr(),
            dst.len(),
            absmax.ptr(),
            absmax.len(),
        )
    };
    let ok = check_status("quant_bnb4_quantize", status);
    let ty = match ty {
        Some(t) if valid && (ok || status == quant::error::QUANT_ERR_NON_FINITE) => t,
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
    let want = bnb4_quantize_ref(ty, &as_f32, blocksize, &mut q, &mut a);
    if !ok {
        assert!(want.is_err(), "status {status} but the reference succeeded");
        assert!(dst.zeroed_to(nq) && absmax.zeroed_to(na));
        return;
    }
    assert!(want.is_ok(), "the reference failed: {want:?}");
    assert_eq!(&dst.buf[..nq], &q[..], "codes");
    assert!(bits_eq(&absmax.buf[..na], &a), "absmax");
    assert!(dst.untouched_from(nq) && absmax.untouched_from(na));
    let mut d = Out::<f32>::new(inp.len_for(n), inp.null());
    let status =
        quant_bnb4_dequantize(code, q.as_ptr(), a.as_ptr(), n, blocksize, d.ptr(), d.len());
    if check_status("quant_bnb4_dequantize", status) {
        let mut want = vec![0f32; n];
        bnb4_dequantize_ref(ty, &q, &a, n, blocksize, &mut want).unwrap();
        assert!(bits_eq(&d.buf[..n], &want), "dequantized");
        assert!(d.untouched_from(n));
    } else {
        assert!(d.untouched(), "dequantize error wrote");
    }
});
