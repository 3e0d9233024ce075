//! Calls made while a thread exits, from the destructor of a thread-local (as a C library's
//! pthread-key destructor or a C++ `thread_local` destructor may do), after the library's own per-thread
//! error detail has been destroyed: they must return their status, never panic across the ABI (which
//! aborts the process). Regression test of a finding of the hardening work: the detail was accessed with
//! `LocalKey::with`, which panics after destruction, outside the panic boundary.
//!
//! The scenario runs in a child process (this binary again, with `QUANT_TLS_CHILD` set), so that an
//! abort fails this test instead of killing the test runner; under Miri it runs in place.
use std::ptr;

use quant::error::{QUANT_ERR_NULL_POINTER, QUANT_OK};
use quant::ffi::casts::quant_f32_to_f16;
use quant::ffi::status::quant_last_error;

struct CallsOnDrop;

impl Drop for CallsOnDrop {
    fn drop(&mut self) {
        // An error (sets the detail), a success (clears it), and a read of the detail.
        assert_eq!(
            quant_f32_to_f16(ptr::null(), ptr::null_mut(), 1),
            QUANT_ERR_NULL_POINTER
        );
        let x = [1.0f32];
        let mut h = [0u16];
        assert_eq!(quant_f32_to_f16(x.as_ptr(), h.as_mut_ptr(), 1), QUANT_OK);
        assert_eq!(h[0], 0x3C00);
        let _ = quant_last_error(ptr::null_mut(), 0);
        println!("calls during thread exit returned");
    }
}

thread_local! {
    static GUARD: CallsOnDrop = const { CallsOnDrop };
}

#[test]
fn calls_during_thread_exit_do_not_abort() {
    // Under Miri (which cannot spawn processes) the scenario runs in place: an abort fails the run.
    if !cfg!(miri) && std::env::var_os("QUANT_TLS_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "calls_during_thread_exit_do_not_abort",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("QUANT_TLS_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("calls during thread exit returned"),
            "child failed ({:?}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    std::thread::spawn(|| {
        // Register our destructor first, then the library's detail (destructors run in reverse order of
        // registration, so ours runs after the detail is gone).
        GUARD.with(|_| {});
        assert_eq!(
            quant_f32_to_f16(ptr::null(), ptr::null_mut(), 1),
            QUANT_ERR_NULL_POINTER
        );
    })
    .join()
    .unwrap();
}
