//! Status strings, the per-thread error detail, and the library version.
use std::ffi::c_char;

use crate::error::{quant_status, status_description, with_last_error};
use crate::ffi::{boundary_value, slice_out};

/// Returns a static, NUL-terminated description of `status`; never NULL, also for unknown codes.
/// The string is owned by the library and lives for the whole process.
#[no_mangle]
pub extern "C" fn quant_status_string(status: quant_status) -> *const c_char {
    boundary_value(c"unknown status code".as_ptr(), || {
        Ok(status_description(status).as_ptr())
    })
}

/// Copies this thread's last error detail into `buf` (NUL-terminated, truncated to fit in
/// `buf_len` bytes) and returns the detail's full length in bytes without the NUL (0 when there is
/// none). Call it with `buf = NULL` to learn the size (`buf_len` is then ignored); this call never
/// changes the detail. The detail belongs to the calling
/// thread: it is set by every failing call and cleared by every successful status-returning call.
#[no_mangle]
pub extern "C" fn quant_last_error(buf: *mut c_char, buf_len: usize) -> usize {
    boundary_value(0, || {
        // A NULL `buf` is a size query whatever `buf_len` says: it must not replace the detail it
        // reports. (An impossible length with a real buffer is still an error, caught by slice_out.)
        let out = if buf.is_null() {
            &mut []
        } else {
            unsafe { slice_out(buf, buf_len, "buf") }?
        };
        Ok(with_last_error(|detail| copy_c_string(detail, out)))
    })
}

/// Copies `text` into `out` as a NUL-terminated C string, truncated to fit (when `out` is not empty),
/// and returns the full length of `text`. Shared by every export that returns a name into a buffer.
pub fn copy_c_string(text: &str, out: &mut [c_char]) -> usize {
    if let Some(room) = out.len().checked_sub(1) {
        let n = text.len().min(room);
        for (dst, &src) in out.iter_mut().zip(&text.as_bytes()[..n]) {
            *dst = src as c_char;
        }
        out[n] = 0;
    }
    text.len()
}

/// The library's version as `(major << 16) | (minor << 8) | patch`; equals `QUANT_VERSION_NUMBER` of
/// the header the program was compiled with when library and header match.
#[no_mangle]
pub extern "C" fn quant_version() -> u32 {
    boundary_value(0, || Ok(crate::version_number()))
}

/// The library's version as a static string such as "0.2.0" (never NULL, owned by the library).
#[no_mangle]
pub extern "C" fn quant_version_string() -> *const c_char {
    boundary_value(c"".as_ptr(), || Ok(crate::VERSION_CSTR.as_ptr()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn copy_c_string_truncates_and_terminates() {
        let mut buf = [1 as c_char; 4];
        assert_eq!(copy_c_string("hello", &mut buf), 5);
        assert_eq!(&buf, &[b'h' as c_char, b'e' as c_char, b'l' as c_char, 0]);
        assert_eq!(copy_c_string("hello", &mut []), 5);
    }

    #[test]
    fn status_strings_are_stable_pointers() {
        assert_eq!(quant_status_string(3), quant_status_string(3));
        let s = unsafe { CStr::from_ptr(quant_status_string(12345)) };
        assert_eq!(s.to_str().unwrap(), "unknown status code");
    }
}
