//! Helpers shared by the fuzz targets: a byte reader that picks sizes, lengths, NULLs, enum values and
//! floats (with many NaN, infinity, subnormal and extreme values), the typed sources of the `_ex`
//! quantizers, and the ABI invariants every target checks (a known status, never INTERNAL; a recorded
//! detail on error; outputs untouched on error).
use std::ffi::{c_char, c_void};

use quant::error::{QUANT_ERR_INTERNAL, QUANT_OK};
use quant::ffi::status::quant_last_error;
use quant::kernels::source::{QUANT_DTYPE_BF16, QUANT_DTYPE_F16};

pub mod bnb4;

/// Largest element count a target builds (keeps each execution fast).
pub const MAX_ELEMS: usize = 4096;

/// Reads decisions from the fuzzer's bytes; past the end every read gives zeros.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        head
    }

    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        (self.u32() as u64) | ((self.u32() as u64) << 32)
    }

    /// Mostly a small value in `0..=max`, sometimes an extreme one (0, usize::MAX, powers of two that
    /// overflow a product).
    pub fn size(&mut self, max: usize) -> usize {
        match self.u8() {
            0..=239 => self.u16() as usize % max.saturating_add(1),
            240..=243 => 0,
            244..=247 => usize::MAX,
            248..=250 => 1usize << (self.u8() % 64),
            251..=252 => usize::MAX / (1 + self.u8() as usize),
            _ => self.u64() as usize,
        }
    }

    /// An enum-like C integer: mostly one of `0..count`, sometimes anything.
    pub fn enum_i32(&mut self, count: i32) -> i32 {
        match self.u8() {
            0..=223 => (self.u8() as i32) % count,
            224..=231 => -1,
            232..=239 => count,
            240..=247 => i32::MIN,
            _ => self.u32() as i32,
        }
    }

    /// A float: ordinary values, raw bit patterns, and the special values the kernels must handle.
    pub fn f32(&mut self) -> f32 {
        let k = self.u8();
        match k {
            0..=127 => (self.u16() as i16 as f32) / 1024.0,
            128..=175 => f32::from_bits(self.u32()),
            176..=191 => [
                0.0,
                -0.0,
                f32::NAN,
                -f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::MAX,
                f32::MIN,
                f32::MIN_POSITIVE,
                f32::from_bits(1),
                448.0,
                464.0,
                65504.0,
                65520.0,
                57344.0,
                3.0e38,
            ][(k - 176) as usize],
            192..=223 => {
                // Large magnitudes near the top of the range, where ranges and scales overflow.
                let m = f32::from_bits(0x7f00_0000 | (self.u32() & 0x007f_ffff));
                if k & 1 == 1 {
                    -m
                } else {
                    m
                }
            }
            _ => {
                // Tiny magnitudes (subnormals and the smallest normals), where scales underflow.
                let m = f32::from_bits(self.u32() & 0x00ff_ffff);
                if k & 1 == 1 {
                    -m
                } else {
                    m
                }
            }
        }
    }

    /// A length for a buffer that needs `need` elements: mostly exact or larger, sometimes one too
    /// small, sometimes 0.
    pub fn len_for(&mut self, need: usize) -> usize {
        match self.u8() % 8 {
            0..=3 => need,
            4 => need.saturating_sub(1),
            5 => 0,
            _ => need + (self.u8() % 5) as usize,
        }
    }

    /// Whether to pass NULL for a pointer (rarely).
    pub fn null(&mut self) -> bool {
        self.u8().is_multiple_of(16)
    }
}

/// A buffer of `len` elements whose bytes all hold the sentinel 0xA5; `ptr` gives NULL on request.
pub struct Out<T: Copy> {
    pub buf: Vec<T>,
    pub null: bool,
}

pub const SENTINEL: u8 = 0xA5;

impl<T: Copy> Out<T> {
    pub fn new(len: usize, null: bool) -> Self {
        let mut buf: Vec<T> = Vec::with_capacity(len);
        unsafe {
            std::ptr::write_bytes(buf.as_mut_ptr(), SENTINEL, len);
            buf.set_len(len);
        }
        Self { buf, null }
    }

    pub fn ptr(&mut self) -> *mut T {
        if self.null {
            std::ptr::null_mut()
        } else {
            self.buf.as_mut_ptr()
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// True when no byte of `buf[from..]` was written.
    pub fn untouched_from(&self, from: usize) -> bool {
        let from = from.min(self.buf.len());
        let tail = &self.buf[from..];
        let bytes = unsafe {
            std::slice::from_raw_parts(tail.as_ptr() as *const u8, std::mem::size_of_val(tail))
        };
        bytes.iter().all(|&b| b == SENTINEL)
    }

    pub fn untouched(&self) -> bool {
        self.untouched_from(0)
    }

    /// True when `buf[..n]` is all zero bytes and nothing past it was written: the outputs of a
    /// quantizer after a value error.
    pub fn zeroed_to(&self, n: usize) -> bool {
        let n = n.min(self.buf.len());
        let head = &self.buf[..n];
        let bytes = unsafe {
            std::slice::from_raw_parts(head.as_ptr() as *const u8, std::mem::size_of_val(head))
        };
        bytes.iter().all(|&b| b == 0) && self.untouched_from(n)
    }
}

/// An input pointer: NULL on request, else the buffer's (possibly dangling-but-aligned when empty).
pub fn in_ptr<T>(buf: &[T], null: bool) -> *const T {
    if null {
        std::ptr::null()
    } else {
        buf.as_ptr()
    }
}

/// The source of an `_ex` quantizer: the same count of elements read as floats and as 16-bit values,
/// so that it can be passed as whichever element type the input picks.
pub struct Source {
    values: Vec<f32>,
    halves: Vec<u16>,
}

impl Source {
    /// Reads `len` floats, then `len` 16-bit values.
    pub fn read(inp: &mut Input, len: usize) -> Self {
        let values = (0..len).map(|_| inp.f32()).collect();
        let halves = (0..len).map(|_| inp.u16()).collect();
        Self { values, halves }
    }

    /// The `src` argument for the element type `dtype` (f16 and bf16 pass the 16-bit values; f32 and
    /// unknown types the floats), and the values the library must see in it, as f32. The input picks
    /// a NULL pointer (always NULL when `null`: for a length the buffers do not hold, which the call
    /// must reject before reading) and, rarely, a pointer one byte past the start (misaligned).
    pub fn arg(&self, inp: &mut Input, dtype: i32, null: bool) -> (*const c_void, Vec<f32>) {
        let null = inp.null() || null;
        let misalign = inp.u8().is_multiple_of(32);
        let (ptr, as_f32): (*const c_void, Vec<f32>) = match dtype {
            QUANT_DTYPE_F16 => (
                in_ptr(&self.halves, null).cast(),
                self.halves
                    .iter()
                    .map(|&h| half::f16::from_bits(h).to_f32())
                    .collect(),
            ),
            QUANT_DTYPE_BF16 => (
                in_ptr(&self.halves, null).cast(),
                self.halves
                    .iter()
                    .map(|&h| f32::from_bits(u32::from(h) << 16))
                    .collect(),
            ),
            _ => (in_ptr(&self.values, null).cast(), self.values.clone()),
        };
        let ptr = if misalign && !ptr.is_null() {
            ptr.cast::<u8>().wrapping_add(1).cast()
        } else {
            ptr
        };
        (ptr, as_f32)
    }
}

/// Whether two float slices are equal bit for bit (NaN payloads and signed zeros included).
pub fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The calling thread's error detail.
pub fn detail() -> String {
    let need = quant_last_error(std::ptr::null_mut(), 0);
    let mut buf = vec![0 as c_char; need + 1];
    let got = quant_last_error(buf.as_mut_ptr(), buf.len());
    assert_eq!(got, need, "quant_last_error length changed between calls");
    let bytes: Vec<u8> = buf[..need].iter().map(|&c| c as u8).collect();
    String::from_utf8(bytes).expect("detail is UTF-8")
}

/// The ABI invariants of a status-returning call: a known code, never INTERNAL (a caught panic is a
/// bug), a non-empty detail on error and an empty one on success. Returns `status == QUANT_OK`.
pub fn check_status(what: &str, status: i32) -> bool {
    assert!(
        (QUANT_OK..=QUANT_ERR_INTERNAL).contains(&status),
        "{what}: unknown status {status}"
    );
    let d = detail();
    assert_ne!(status, QUANT_ERR_INTERNAL, "{what}: INTERNAL: {d}");
    if status == QUANT_OK {
        assert!(d.is_empty(), "{what}: success left a detail: {d}");
        true
    } else {
        assert!(!d.is_empty(), "{what}: error {status} without a detail");
        false
    }
}

/// The invariants of a decoding call `what` that returned `status` into `out`: on success its first
/// values equal `reference()` bit for bit and nothing past them was written; on error nothing was
/// written. Returns whether the call succeeded.
pub fn check_decoded(
    what: &str,
    status: i32,
    out: &Out<f32>,
    reference: impl FnOnce() -> Vec<f32>,
) -> bool {
    if check_status(what, status) {
        let want = reference();
        assert!(
            bits_eq(&out.buf[..want.len()], &want),
            "{what}: values differ from the reference"
        );
        assert!(
            out.untouched_from(want.len()),
            "{what}: wrote past its values"
        );
        true
    } else {
        assert!(out.untouched(), "{what}: error wrote");
        false
    }
}

/// Clears the thread's detail (a successful call does), so that value-returning calls can be checked.
pub fn clear_detail() {
    quant::error::clear_last_error();
}

/// Picks the process-wide SIMD level (also invalid or unavailable ones) and kernel thread count: every
/// level must give bit-identical results, so the targets' reference checks hold whatever is chosen.
pub fn pick_simd_and_threads(inp: &mut Input) {
    use quant::ffi::simd::{quant_set_simd_level, quant_set_threads};
    let level = match inp.u8() % 8 {
        0..=4 => [-1, 0, 1, 2, 3][inp.u8() as usize % 5],
        5 => inp.u32() as i32,
        _ => -1,
    };
    let s = quant_set_simd_level(level);
    check_status("set_simd_level", s);
    let s = quant_set_threads([1, 2, 3, 0, 2000][inp.u8() as usize % 5]);
    check_status("set_threads", s);
}
