//! The outputs of the large kernels: plain stores, or non-temporal stores through a bounce buffer.
//!
//! A kernel whose output is large (at least [`NT_MIN_BYTES`] in one call) cannot expect its output to
//! stay in cache for its caller, and a plain store first reads the line it writes (the
//! read-for-ownership): for a dequantizer writing 4 bytes an element from 1 byte read, that read more
//! than doubles the memory traffic. With AVX2 or AVX-512, such kernels compute into a 4096-element
//! buffer (in L1) and copy it out with non-temporal stores (`vmovntdq`, full cache lines, no read);
//! the partial lines at the two ends of each copy get plain stores. Each block ends with `sfence`, so
//! the stores are ordered before the call returns (and before its helper threads are joined).
//! Smaller outputs, other levels and other architectures use plain stores. The values written are the
//! same either way.
use std::sync::atomic::{AtomicUsize, Ordering};

use super::simd::SimdLevel;

/// Default output size (bytes, whole call) from which the kernels use non-temporal stores: 8 MiB.
pub(crate) const NT_MIN_BYTES: usize = 8 << 20;

static NT_MIN: AtomicUsize = AtomicUsize::new(NT_MIN_BYTES);

/// Sets the output size (bytes, whole call) from which the kernels use non-temporal stores (default
/// 8 MiB; `usize::MAX` turns them off, 0 uses them always, which the tests do). Process-wide; only the
/// speed depends on it, never a result.
pub fn set_nt_min_bytes(bytes: usize) {
    NT_MIN.store(bytes, Ordering::Relaxed);
}

/// The current threshold of [`set_nt_min_bytes`].
pub fn nt_min_bytes() -> usize {
    NT_MIN.load(Ordering::Relaxed)
}

/// Elements of the bounce buffer.
const CAP: usize = 4096;

/// Largest piece the kernels ask [`Out::take`] for at once (even, a multiple of every SIMD block), so
/// that every piece fits the bounce buffer.
pub(crate) const PIECE: usize = CAP;

/// Element types the kernels write: plain bytes, no padding, any bit pattern valid.
///
/// # Safety
/// Implementors must be plain old data (`Copy`, no padding, no invalid bit patterns).
pub(crate) unsafe trait Plain: Copy + Default {}
// SAFETY: primitive integers and floats are plain data.
unsafe impl Plain for i8 {}
// SAFETY: as above.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for u16 {}
// SAFETY: as above.
unsafe impl Plain for f32 {}

/// Whether a call at `level` writing `bytes` bytes in all uses non-temporal stores (x86-64 with AVX2).
pub(crate) fn use_nt(level: SimdLevel, bytes: usize) -> bool {
    matches!(level, SimdLevel::Avx2 | SimdLevel::Avx512) && bytes >= nt_min_bytes()
}

/// A sequential writer over `dst`: [`Out::take`] hands out the next `k` elements to fill, in order.
pub(crate) struct Out<'a, T: Plain> {
    dst: &'a mut [T],
    /// Elements of `dst` already written (or handed out in direct mode).
    pos: usize,
    /// Elements waiting in `buf`.
    len: usize,
    /// The bounce buffer, in non-temporal mode only (`None` costs no initialization).
    buf: Option<[T; CAP]>,
}

impl<'a, T: Plain> Out<'a, T> {
    /// A writer over `dst`; `nt` selects the bounce buffer and non-temporal copies (only when the
    /// level allows it: see [`use_nt`]).
    pub(crate) fn new(dst: &'a mut [T], nt: bool) -> Self {
        Out {
            dst,
            pos: 0,
            len: 0,
            buf: nt.then(|| [T::default(); CAP]),
        }
    }

    /// The next `k` elements of the output, to be filled completely before the next call.
    pub(crate) fn take(&mut self, k: usize) -> &mut [T] {
        if self.buf.is_some() && self.len + k > CAP {
            self.flush();
        }
        match &mut self.buf {
            Some(buf) if k <= CAP => {
                let l = self.len;
                self.len += k;
                &mut buf[l..l + k]
            }
            _ => {
                let p = self.pos;
                self.pos += k;
                &mut self.dst[p..p + k]
            }
        }
    }

    fn flush(&mut self) {
        let Some(buf) = &self.buf else { return };
        if self.len == 0 {
            return;
        }
        let d = &mut self.dst[self.pos..self.pos + self.len];
        stream_copy(&buf[..self.len], d);
        self.pos += self.len;
        self.len = 0;
    }

    /// Writes what is buffered and orders the non-temporal stores (`sfence`).
    pub(crate) fn finish(mut self) {
        self.flush();
        #[cfg(target_arch = "x86_64")]
        if self.buf.is_some() {
            // SAFETY: `sfence` is SSE, part of the x86-64 baseline.
            unsafe { std::arch::x86_64::_mm_sfence() };
        }
    }
}

/// Copies `src` to `dst` (same length) with non-temporal stores for the whole cache lines.
fn stream_copy<T: Plain>(src: &[T], dst: &mut [T]) {
    let bytes = std::mem::size_of_val(src);
    assert_eq!(bytes, std::mem::size_of_val(dst));
    // SAFETY: `T` is plain data (see `Plain`), so its bytes may be read and written as `u8`; the
    // lengths are the byte sizes of the slices.
    let (s, d) = unsafe {
        (
            std::slice::from_raw_parts(src.as_ptr() as *const u8, bytes),
            std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut u8, bytes),
        )
    };
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        unsafe { stream_copy_avx2(s, d) };
        return;
    }
    d.copy_from_slice(s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn stream_copy_avx2(s: &[u8], d: &mut [u8]) {
    use std::arch::x86_64::*;
    let n = s.len();
    let head = d.as_ptr().align_offset(32).min(n);
    d[..head].copy_from_slice(&s[..head]);
    let (sp, dp) = (s.as_ptr(), d.as_mut_ptr());
    let mut i = head;
    while i + 64 <= n {
        let a = _mm256_loadu_si256(sp.add(i) as *const __m256i);
        let b = _mm256_loadu_si256(sp.add(i + 32) as *const __m256i);
        _mm256_stream_si256(dp.add(i) as *mut __m256i, a);
        _mm256_stream_si256(dp.add(i + 32) as *mut __m256i, b);
        i += 64;
    }
    d[i..].copy_from_slice(&s[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_hands_out_the_output_in_order() {
        for nt in [false, true] {
            for sizes in [vec![3usize, 4096, 1, 5000, 7], vec![4095, 2, 4096, 4096]] {
                let total: usize = sizes.iter().sum();
                let mut dst = vec![0u16; total + 3];
                let mut out = Out::new(&mut dst[1..total + 1], nt);
                let mut next = 1u16;
                for &k in &sizes {
                    for v in out.take(k) {
                        *v = next;
                        next = next.wrapping_add(1);
                    }
                }
                out.finish();
                assert_eq!(dst[0], 0);
                assert_eq!(dst[total + 1], 0);
                for (i, &v) in dst[1..=total].iter().enumerate() {
                    assert_eq!(v, (i + 1) as u16);
                }
            }
        }
    }
}
