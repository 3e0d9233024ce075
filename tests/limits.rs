//! Limits: sizes whose byte count overflows give `QUANT_ERR_INVALID_ARGUMENT`, and results larger than
//! the machine give `QUANT_ERR_OUT_OF_MEMORY` — never an abort, never a read or write out of bounds.
//!
//! The out-of-memory cases run in a child process (this test binary again, with `QUANT_LIMITS_CHILD`
//! set) that maps a huge read-only zero region as the input matrix (no physical memory is used) and
//! caps its own address space with `RLIMIT_AS`, so that the library's allocations fail on every machine
//! whatever its overcommit policy; an abort there fails the parent test.
use std::ffi::c_char;
use std::ptr;

use quant::error::*;
use quant::ffi::casts::*;
use quant::ffi::method::*;
use quant::ffi::rtn::*;
use quant::ffi::status::quant_last_error;
use quant::ffi::weight::*;

fn method(kind: i32, group_size: u32) -> quant_method {
    quant_method {
        kind,
        bits: 4,
        group_size,
        alpha: 0.5,
    }
}

fn detail() -> String {
    let mut buf = [0 as c_char; 512];
    quant_last_error(buf.as_mut_ptr(), buf.len());
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// (rows, cols) pairs whose element or byte count overflows: rows * cols overflows usize, or
/// rows * cols * 4 (the f32 bytes) exceeds isize::MAX although rows * cols fits.
const OVERFLOWING: [(usize, usize); 5] = [
    (usize::MAX, 2),
    (2, usize::MAX),
    (1 << 32, 1 << 32),
    (1 << 31, 1 << 31),
    (1, (isize::MAX as usize) / 4 + 1),
];

#[test]
fn overflowing_shapes_are_invalid_arguments_before_any_access() {
    // Real but tiny buffers: the calls must reject the shape before touching them.
    let src = [1.0f32; 4];
    let mut q = [0i8; 4];
    let mut p = [0u8; 4];
    let mut s = [0f32; 4];
    let mut z = [0u8; 4];
    let mut out = [0f32; 4];
    for (rows, cols) in OVERFLOWING {
        let what = format!("{rows} x {cols}");
        assert_eq!(
            quant_int8_quantize(
                src.as_ptr(),
                rows,
                cols,
                0,
                q.as_mut_ptr(),
                4,
                s.as_mut_ptr(),
                4
            ),
            QUANT_ERR_INVALID_ARGUMENT,
            "{what}"
        );
        assert!(!detail().is_empty());
        assert_eq!(
            quant_int8_dequantize(q.as_ptr(), s.as_ptr(), rows, cols, 1, out.as_mut_ptr(), 4),
            QUANT_ERR_INVALID_ARGUMENT,
            "{what}"
        );
        assert_eq!(
            quant_int4_quantize(
                src.as_ptr(),
                rows,
                cols,
                0,
                p.as_mut_ptr(),
                4,
                s.as_mut_ptr(),
                z.as_mut_ptr(),
                4
            ),
            QUANT_ERR_INVALID_ARGUMENT,
            "{what}"
        );
        assert_eq!(
            quant_int4_dequantize(
                p.as_ptr(),
                s.as_ptr(),
                z.as_ptr(),
                rows,
                cols,
                3,
                out.as_mut_ptr(),
                4
            ),
            QUANT_ERR_INVALID_ARGUMENT,
            "{what}"
        );
        assert_eq!(
            quant_fp8_e4m3_quantize(
                src.as_ptr(),
                rows,
                cols,
                0,
                p.as_mut_ptr(),
                4,
                s.as_mut_ptr(),
                4
            ),
            QUANT_ERR_INVALID_ARGUMENT,
            "{what}"
        );
        assert_eq!(
            quant_fp8_e4m3_dequantize(p.as_ptr(), s.as_ptr(), rows, cols, 0, out.as_mut_ptr(), 4),
            QUANT_ERR_INVALID_ARGUMENT,
            "{what}"
        );
        assert_eq!(quant_scale_count(rows, cols, 1), 0, "{what}");
        assert_eq!(quant_int4_packed_size(rows, cols), 0, "{what}");
        for kind in 0..6 {
            let mut h: *mut quant_weight = ptr::null_mut();
            assert_eq!(
                quant_quantize(
                    &method(kind, 128),
                    ptr::null(),
                    src.as_ptr(),
                    rows,
                    cols,
                    ptr::null(),
                    &mut h
                ),
                QUANT_ERR_INVALID_ARGUMENT,
                "kind {kind}, {what}"
            );
            assert!(h.is_null());
            let ws = [src.as_ptr()];
            let mut hs = [ptr::null_mut(); 1];
            assert_eq!(
                quant_quantize_group(
                    &method(kind, 128),
                    ptr::null(),
                    ws.as_ptr(),
                    &rows,
                    1,
                    cols,
                    ptr::null(),
                    hs.as_mut_ptr()
                ),
                QUANT_ERR_INVALID_ARGUMENT,
                "group: kind {kind}, {what}"
            );
            assert!(hs[0].is_null());
        }
    }
}

#[test]
fn overflowing_counts_are_invalid_arguments() {
    let src = [1.0f32; 4];
    let half = [0u16; 4];
    let codes = [0u8; 4];
    let mut dst16 = [0u16; 4];
    let mut dst8 = [0u8; 4];
    let mut dst32 = [0f32; 4];
    for n in [usize::MAX, usize::MAX / 2, (isize::MAX as usize) / 2 + 1] {
        assert_eq!(
            quant_f32_to_f16(src.as_ptr(), dst16.as_mut_ptr(), n),
            QUANT_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            quant_f32_to_bf16(src.as_ptr(), dst16.as_mut_ptr(), n),
            QUANT_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            quant_f16_to_f32(half.as_ptr(), dst32.as_mut_ptr(), n),
            QUANT_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            quant_bf16_to_f32(half.as_ptr(), dst32.as_mut_ptr(), n),
            QUANT_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            quant_f32_to_fp8_e4m3(src.as_ptr(), dst8.as_mut_ptr(), n, true),
            QUANT_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            quant_fp8_e5m2_to_f32(codes.as_ptr(), dst32.as_mut_ptr(), n),
            QUANT_ERR_INVALID_ARGUMENT
        );
        assert_eq!(dst32, [0.0; 4]);
    }
    // Byte buffers can have up to isize::MAX elements: a count beyond that is invalid, a count within
    // it is checked against the given length first.
    let vals = [0i8; 4];
    assert_eq!(
        quant_pack_int4(vals.as_ptr(), usize::MAX, dst8.as_mut_ptr(), 4),
        QUANT_ERR_INVALID_ARGUMENT
    );
    let mut un = [0i8; 4];
    assert_eq!(
        quant_unpack_int4(codes.as_ptr(), usize::MAX, un.as_mut_ptr(), 4),
        QUANT_ERR_INVALID_ARGUMENT
    );
    // A group of usize::MAX matrices, an error buffer of usize::MAX bytes.
    let ws = [src.as_ptr()];
    let rows = [1usize];
    let mut hs = [ptr::null_mut(); 1];
    assert_eq!(
        quant_quantize_group(
            &method(0, 0),
            ptr::null(),
            ws.as_ptr(),
            rows.as_ptr(),
            usize::MAX,
            4,
            ptr::null(),
            hs.as_mut_ptr()
        ),
        QUANT_ERR_INVALID_ARGUMENT
    );
    let mut buf = [0 as c_char; 4];
    assert_eq!(quant_last_error(buf.as_mut_ptr(), usize::MAX), 0);
    // Memory estimates that do not fit a size_t; effective bits of the widest matrix.
    let (mut a, mut b) = (7usize, 7usize);
    assert_eq!(
        quant_estimate_memory(usize::MAX, &method(0, 0), &mut a, &mut b),
        QUANT_ERR_INVALID_ARGUMENT
    );
    assert_eq!((a, b), (7, 7));
    assert_eq!(
        quant_estimate_memory(usize::MAX / 2, &method(0, 0), &mut a, &mut b),
        QUANT_OK
    );
    let e = quant_method_effective_bits(&method(QUANT_INT4_ASYMMETRIC, 1), usize::MAX);
    assert!(e.is_finite() && e > 4.0, "{e}");
}

// ------------------------------------------------------------------------------------------------
// Allocations larger than the machine, in a child process with a capped address space.

const CHILD: &str = "QUANT_LIMITS_CHILD";

/// Runs the test `name` of this binary in a child process with `CHILD` set, and fails unless it exits
/// successfully (an abort or a crash there fails here, with the child's output).
fn run_in_child(name: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child {name} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child ran no test"
    );
}

/// A read-only mapping of `bytes` zero bytes that uses no physical memory (pages are mapped on read),
/// and an address-space cap of the current size plus `headroom` bytes for the rest of the process.
#[cfg(unix)]
fn huge_zeros_and_cap(bytes: usize, headroom: u64) -> *const f32 {
    unsafe {
        let p = libc::mmap(
            ptr::null_mut(),
            bytes,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "cannot reserve {bytes} bytes of address space"
        );
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let vm_kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmSize:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        let cap = vm_kb * 1024 + headroom;
        let lim = libc::rlimit {
            rlim_cur: cap,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &lim), 0);
        p as *const f32
    }
}

#[cfg(target_os = "linux")]
#[test]
fn results_larger_than_the_machine_are_out_of_memory() {
    if std::env::var_os(CHILD).is_none() {
        return run_in_child("results_larger_than_the_machine_are_out_of_memory");
    }
    // 2^42 floats (16 TiB of input, read only, never touched): INT8 needs 4 TiB of codes, INT4 2 TiB,
    // FP8 4 TiB; 64 MiB of headroom is far below any of them.
    let (rows, cols) = (1usize << 21, 1usize << 21);
    let w = huge_zeros_and_cap(rows * cols * 4, 64 << 20);
    for kind in [QUANT_INT8_SYMMETRIC, QUANT_INT4_ASYMMETRIC, QUANT_FP8_E4M3] {
        for group in [0u32, 128] {
            let mut h: *mut quant_weight = ptr::null_mut();
            let s = quant_quantize(
                &method(kind, group),
                ptr::null(),
                w,
                rows,
                cols,
                ptr::null(),
                &mut h,
            );
            assert_eq!(
                s,
                QUANT_ERR_OUT_OF_MEMORY,
                "kind {kind}, group {group}: {}",
                detail()
            );
            assert!(h.is_null());
            assert!(detail().contains("out of memory"), "{}", detail());
            let ws = [w, w];
            let rs = [rows, 1];
            let mut hs = [ptr::null_mut(); 2];
            let s = quant_quantize_group(
                &method(kind, group),
                ptr::null(),
                ws.as_ptr(),
                rs.as_ptr(),
                2,
                cols,
                ptr::null(),
                hs.as_mut_ptr(),
            );
            assert_eq!(
                s,
                QUANT_ERR_OUT_OF_MEMORY,
                "group of kind {kind}: {}",
                detail()
            );
            assert_eq!(hs, [ptr::null_mut(); 2]);
        }
    }
    // A weight that fits still works under the cap (the library recovers after a failed allocation).
    let small = [1.0f32, -2.0, 3.0, 0.5];
    let mut h: *mut quant_weight = ptr::null_mut();
    assert_eq!(
        quant_quantize(
            &method(QUANT_INT8_SYMMETRIC, 0),
            ptr::null(),
            small.as_ptr(),
            2,
            2,
            ptr::null(),
            &mut h
        ),
        QUANT_OK
    );
    quant_weight_free(h);
}

/// Regression test (hardening finding): when the OS refused a worker thread (here: no address space
/// for its stack), GPTQ and AWQ panicked inside `std::thread::scope` and the call failed with
/// `QUANT_ERR_INTERNAL`. The calling thread now takes the jobs of the threads that could not start.
#[cfg(target_os = "linux")]
#[test]
fn refused_worker_threads_are_not_an_error() {
    use quant::ffi::calib::{
        quant_calib, quant_calib_add, quant_calib_free, quant_calib_new_ex, QUANT_CALIB_HESSIAN,
    };
    use quant::ffi::options::{
        quant_options, quant_options_free, quant_options_new, quant_options_set_threads,
    };
    if std::env::var_os(CHILD).is_none() {
        return run_in_child("refused_worker_threads_are_not_an_error");
    }
    // More than one 64-row tile, so that the algorithms start worker threads.
    let (rows, cols, tokens) = (256usize, 64usize, 32usize);
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
        .collect();
    let x: Vec<f32> = (0..tokens * cols)
        .map(|i| ((i * 53 % 97) as f32 - 48.0) / 32.0)
        .collect();
    // Everything before the cap runs on this thread alone (threads = 1): a thread that ran and ended
    // would leave its stack in the C library's cache, and the capped call could reuse it.
    let mut one: *mut quant_options = ptr::null_mut();
    assert_eq!(quant_options_new(&mut one), QUANT_OK);
    assert_eq!(quant_options_set_threads(one, 1), QUANT_OK);
    let mut calib: *mut quant_calib = ptr::null_mut();
    assert_eq!(
        quant_calib_new_ex(cols, QUANT_CALIB_HESSIAN, one, &mut calib),
        QUANT_OK
    );
    assert_eq!(quant_calib_add(calib, x.as_ptr(), tokens, cols), QUANT_OK);
    let mut o: *mut quant_options = ptr::null_mut();
    assert_eq!(quant_options_new(&mut o), QUANT_OK);
    assert_eq!(quant_options_set_threads(o, 8), QUANT_OK);
    // The results do not depend on the thread count (documented), so one thread gives the reference.
    let reference: Vec<Vec<f32>> = [QUANT_GPTQ, QUANT_AWQ]
        .iter()
        .map(|&kind| {
            let mut h: *mut quant_weight = ptr::null_mut();
            let s = quant_quantize(
                &method(kind, 16),
                one,
                w.as_ptr(),
                rows,
                cols,
                calib,
                &mut h,
            );
            assert_eq!(s, QUANT_OK, "{}", detail());
            let mut out = vec![0f32; rows * cols];
            assert_eq!(
                quant_weight_dequantize(h, out.as_mut_ptr(), out.len()),
                QUANT_OK
            );
            quant_weight_free(h);
            out
        })
        .collect();
    // 1.5 MiB of address space left: enough for this layer's buffers, not for a thread's 2 MiB stack.
    let _ = huge_zeros_and_cap(4096, 3 << 19);
    assert!(
        std::thread::Builder::new().spawn(|| ()).is_err(),
        "the cap should leave no room for a thread stack"
    );
    for (k, &kind) in [QUANT_GPTQ, QUANT_AWQ].iter().enumerate() {
        let mut h: *mut quant_weight = ptr::null_mut();
        let s = quant_quantize(&method(kind, 16), o, w.as_ptr(), rows, cols, calib, &mut h);
        assert!(
            s == QUANT_OK || s == QUANT_ERR_OUT_OF_MEMORY,
            "kind {kind}: status {s}: {}",
            detail()
        );
        if s == QUANT_OK {
            let mut out = vec![0f32; rows * cols];
            assert_eq!(
                quant_weight_dequantize(h, out.as_mut_ptr(), out.len()),
                QUANT_OK
            );
            assert_eq!(
                out, reference[k],
                "kind {kind}: the result depends on the threads that started"
            );
            quant_weight_free(h);
        }
    }
    quant_options_free(o);
    quant_options_free(one);
    quant_calib_free(calib);
}

/// Regression test (hardening finding, fuzz target `algos`): AWQ (and GPTQ) handed out weights whose
/// effective values were infinite when a group's range came within a few ulps of the float limit
/// (scale 1.1e37, zero point 31 at 5 bits: (0 - 31) * scale rounds to -inf). Such groups are
/// `QUANT_ERR_INVALID_ARGUMENT`, as for the round-to-nearest kernels; a success is always finite.
#[test]
fn calibrated_methods_never_hand_out_infinite_weights() {
    use quant::ffi::calib::{quant_calib, quant_calib_add, quant_calib_free, quant_calib_new};
    let (rows, cols, tokens) = (2usize, 8usize, 4usize);
    let x: Vec<f32> = (0..tokens * cols).map(|i| 1.0 + (i % 5) as f32).collect();
    let mut calib: *mut quant_calib = ptr::null_mut();
    assert_eq!(quant_calib_new(cols, &mut calib), QUANT_OK);
    assert_eq!(quant_calib_add(calib, x.as_ptr(), tokens, cols), QUANT_OK);
    let mut hit_limit = 0;
    for big in [-3.4e38f32, -f32::MAX, 3.4e38, f32::MAX, -3.39e38] {
        let mut w = vec![0.5f32; rows * cols];
        w[4] = big;
        w[9] = -1.0;
        for kind in [QUANT_AWQ, QUANT_GPTQ] {
            for bits in [2u32, 4, 5, 8] {
                let m = quant_method {
                    kind,
                    bits,
                    group_size: 4,
                    alpha: 0.0,
                };
                let mut h: *mut quant_weight = ptr::null_mut();
                let s = quant_quantize(&m, ptr::null(), w.as_ptr(), rows, cols, calib, &mut h);
                match s {
                    QUANT_OK => {
                        let mut out = vec![0f32; rows * cols];
                        assert_eq!(
                            quant_weight_dequantize(h, out.as_mut_ptr(), out.len()),
                            QUANT_OK
                        );
                        assert!(
                            out.iter().all(|v| v.is_finite()),
                            "kind {kind}, {bits} bits, {big:e}: {out:?}"
                        );
                        quant_weight_free(h);
                    }
                    QUANT_ERR_INVALID_ARGUMENT => {
                        hit_limit += 1;
                        assert!(h.is_null());
                    }
                    other => panic!(
                        "kind {kind}, {bits} bits, {big:e}: status {other}: {}",
                        detail()
                    ),
                }
            }
        }
    }
    assert!(hit_limit > 0, "no case reached the float limit");
    quant_calib_free(calib);
}

/// Regression test (hardening finding): with `quant_set_threads(n > 1)`, a kernel whose worker thread
/// the OS refused panicked inside `std::thread::scope` (`QUANT_ERR_INTERNAL`). The calling thread now
/// takes the jobs of the threads that could not start.
#[cfg(target_os = "linux")]
#[test]
fn refused_kernel_threads_are_not_an_error() {
    use quant::ffi::simd::quant_set_threads;
    if std::env::var_os(CHILD).is_none() {
        return run_in_child("refused_kernel_threads_are_not_an_error");
    }
    // Enough elements for four threads (65536 a thread at least). No thread has run in this process
    // yet, so no cached stack can be reused once the address space is capped.
    let n = 1usize << 19;
    let src: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 0.37 - 150.0).collect();
    let mut reference = vec![0u16; n];
    assert_eq!(
        quant_f32_to_f16(src.as_ptr(), reference.as_mut_ptr(), n),
        QUANT_OK
    );
    let (rows, cols) = (64usize, n / 64);
    let mut q_ref = vec![0i8; n];
    let mut s_ref = vec![0f32; rows];
    assert_eq!(
        quant_int8_quantize(
            src.as_ptr(),
            rows,
            cols,
            0,
            q_ref.as_mut_ptr(),
            n,
            s_ref.as_mut_ptr(),
            rows
        ),
        QUANT_OK
    );
    let mut out = vec![0u16; n];
    let mut q = vec![0i8; n];
    let mut s = vec![0f32; rows];
    assert_eq!(quant_set_threads(4), QUANT_OK);
    let _ = huge_zeros_and_cap(4096, 3 << 19);
    assert!(
        std::thread::Builder::new().spawn(|| ()).is_err(),
        "the cap should leave no room for a thread stack"
    );
    assert_eq!(
        quant_f32_to_f16(src.as_ptr(), out.as_mut_ptr(), n),
        QUANT_OK,
        "{}",
        detail()
    );
    assert_eq!(out, reference);
    assert_eq!(
        quant_int8_quantize(
            src.as_ptr(),
            rows,
            cols,
            0,
            q.as_mut_ptr(),
            n,
            s.as_mut_ptr(),
            rows
        ),
        QUANT_OK,
        "{}",
        detail()
    );
    assert_eq!(q, q_ref);
}
