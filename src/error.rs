//! The library's error type, its mapping to the C status codes, and the per-thread error detail.
//!
//! The status numbers are part of the ABI: they are explicit, append-only, and a retired code is never
//! reused. They live here, beside the error type they encode, and cbindgen copies them into quant.h.
use std::cell::RefCell;
use std::ffi::CStr;
use thiserror::Error;

/// Status code returned by every fallible function: `QUANT_OK` (0) or one of the `QUANT_ERR_*` codes.
/// It is a plain 32-bit integer in the ABI; `quant_status_string` describes any value, known or not.
#[allow(non_camel_case_types)]
pub type quant_status = i32;

/// Success.
pub const QUANT_OK: quant_status = 0;
/// A required pointer was NULL (a pointer whose length is 0 may be NULL).
pub const QUANT_ERR_NULL_POINTER: quant_status = 1;
/// An argument is out of its documented range (zero rows, unknown kind, bad alpha, size overflow, ...).
pub const QUANT_ERR_INVALID_ARGUMENT: quant_status = 2;
/// An output buffer holds fewer elements than the call needs. Nothing was written.
pub const QUANT_ERR_BUFFER_TOO_SMALL: quant_status = 3;
/// Two arguments disagree about a shape (for example a calibration of another width).
pub const QUANT_ERR_SHAPE_MISMATCH: quant_status = 4;
/// A weight or activation given to a scaled quantizer is NaN or infinite; the detail names the index.
pub const QUANT_ERR_NON_FINITE: quant_status = 5;
/// A numerical method failed (for example a Hessian that cannot be factorized even after damping).
pub const QUANT_ERR_NUMERICAL: quant_status = 6;
/// The request is valid but not supported by this build or this method.
pub const QUANT_ERR_UNSUPPORTED: quant_status = 7;
/// Memory for the result or for working space could not be allocated.
pub const QUANT_ERR_OUT_OF_MEMORY: quant_status = 8;
/// A bug inside the library (a caught panic). Please report it with the detail.
pub const QUANT_ERR_INTERNAL: quant_status = 9;

/// Every failure the library reports. The message is the detail the C caller reads with
/// `quant_last_error`, so it names the argument and the value at fault.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QuantError {
    #[error("{0} is NULL")]
    NullPointer(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// `got` and `need` count in `unit`, the unit of the buffer's length parameter: "elements", or
    /// "bytes" for the packed codes (INT4, k-bit, GGML blocks).
    #[error("{what} holds {got} {unit} but {need} are needed")]
    BufferTooSmall {
        what: String,
        got: usize,
        need: usize,
        unit: &'static str,
    },
    #[error("{0}")]
    ShapeMismatch(String),
    #[error("{what}[{index}] is {value}: a scaled quantizer needs finite values")]
    NonFinite {
        what: String,
        index: usize,
        value: f32,
    },
    #[error("{0}")]
    Numerical(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl QuantError {
    /// The C status code of this error.
    pub fn status(&self) -> quant_status {
        match self {
            Self::NullPointer(_) => QUANT_ERR_NULL_POINTER,
            Self::InvalidArgument(_) => QUANT_ERR_INVALID_ARGUMENT,
            Self::BufferTooSmall { .. } => QUANT_ERR_BUFFER_TOO_SMALL,
            Self::ShapeMismatch(_) => QUANT_ERR_SHAPE_MISMATCH,
            Self::NonFinite { .. } => QUANT_ERR_NON_FINITE,
            Self::Numerical(_) => QUANT_ERR_NUMERICAL,
            Self::Unsupported(_) => QUANT_ERR_UNSUPPORTED,
            Self::OutOfMemory(_) => QUANT_ERR_OUT_OF_MEMORY,
            Self::Internal(_) => QUANT_ERR_INTERNAL,
        }
    }

    /// Shorthand for the most common error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }
}

/// Static description of a status code, for any value (unknown codes get a text of their own).
/// A C string so that `quant_status_string` can hand it out without copying.
pub fn status_description(status: quant_status) -> &'static CStr {
    match status {
        QUANT_OK => c"success",
        QUANT_ERR_NULL_POINTER => c"a required pointer is NULL",
        QUANT_ERR_INVALID_ARGUMENT => c"invalid argument",
        QUANT_ERR_BUFFER_TOO_SMALL => c"output buffer too small",
        QUANT_ERR_SHAPE_MISMATCH => c"shape mismatch",
        QUANT_ERR_NON_FINITE => c"non-finite value (NaN or infinity) in the input",
        QUANT_ERR_NUMERICAL => c"numerical failure",
        QUANT_ERR_UNSUPPORTED => c"unsupported",
        QUANT_ERR_OUT_OF_MEMORY => c"out of memory",
        QUANT_ERR_INTERNAL => c"internal error (a bug in quant)",
        _ => c"unknown status code",
    }
}

pub type Result<T> = std::result::Result<T, QuantError>;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

// The detail is reached with `try_with`, never `with`: a call made while the thread exits (from another
// thread-local's destructor, a pthread key destructor...) may come after the detail was destroyed, and
// `with` would then panic outside the panic boundary, which aborts the process. Such a call simply
// keeps no detail.

/// Records `err` as this thread's last error detail (nothing when the thread is exiting and its
/// detail is already gone).
pub fn set_last_error(err: &QuantError) {
    let text = err.to_string();
    let _ = LAST_ERROR.try_with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.push_str(&text);
    });
}

/// Forgets this thread's last error detail (a successful call does this).
pub fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|e| e.borrow_mut().clear());
}

/// Runs `f` on this thread's last error detail ("" when there is none, also when the thread is exiting
/// and its detail is already gone).
pub fn with_last_error<R>(f: impl FnOnce(&str) -> R) -> R {
    let mut f = Some(f);
    match LAST_ERROR.try_with(|e| (f.take().expect("called once"))(&e.borrow())) {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called"))(""),
    }
}

/// Allocates a vector of `n` copies of `value`, reporting failure instead of aborting the process.
pub fn try_vec<T: Clone>(n: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        QuantError::OutOfMemory(format!(
            "{what}: cannot allocate {n} elements of {} bytes",
            std::mem::size_of::<T>()
        ))
    })?;
    v.resize(n, value);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_its_own_status() {
        let errors = [
            QuantError::NullPointer("p".into()),
            QuantError::InvalidArgument("x".into()),
            QuantError::BufferTooSmall {
                what: "dst".into(),
                got: 1,
                need: 2,
                unit: "elements",
            },
            QuantError::ShapeMismatch("x".into()),
            QuantError::NonFinite {
                what: "w".into(),
                index: 3,
                value: f32::NAN,
            },
            QuantError::Numerical("x".into()),
            QuantError::Unsupported("x".into()),
            QuantError::OutOfMemory("x".into()),
            QuantError::Internal("x".into()),
        ];
        let codes: Vec<_> = errors.iter().map(QuantError::status).collect();
        assert_eq!(codes, (1..=9).collect::<Vec<_>>());
        for c in 0..=9 {
            assert_ne!(status_description(c), status_description(1000));
        }
    }

    #[test]
    fn last_error_is_per_thread() {
        set_last_error(&QuantError::invalid("main thread"));
        std::thread::spawn(|| with_last_error(|e| assert_eq!(e, "")))
            .join()
            .unwrap();
        with_last_error(|e| assert_eq!(e, "main thread"));
        clear_last_error();
        with_last_error(|e| assert_eq!(e, ""));
    }

    #[test]
    fn try_vec_reports_impossible_sizes() {
        let err = try_vec(usize::MAX / 2, 0u64, "scratch").unwrap_err();
        assert_eq!(err.status(), QUANT_ERR_OUT_OF_MEMORY);
    }
}
