//! Throughput of every kernel against the memory limits of the machine, measured in one run.
//!
//! Run: `cargo bench --bench kernels` (release build, no external framework).
//! Environment knobs: `QUANT_BENCH_REPS` (timed repetitions per figure, default 7; the median is
//! reported), `QUANT_BENCH_FILTER` (run only kernels whose name contains it), `QUANT_BENCH_PEERS=0`
//! (skip the peers: scalar references, `half`, numpy), `QUANT_SIMD` (force a SIMD level).
//!
//! For each kernel and size the bench prints the median throughput in G elements/s with 1 and 2 threads,
//! and its ratio to the reference loop measured in the same run with the same thread count:
//! - quantizers and casts from f32: the *ceiling* loop, a plain `f32 -> i8` conversion (f32 read, int8
//!   write);
//! - dequantizers and casts to f32: the *write-bound* loop, a plain `i8 -> f32` conversion (int8 read,
//!   f32 write).
//!
//! memcpy and the validation scan alone (`check_finite`: one read of the f32 input) are measured too.
//! Timings are never asserted anywhere; this only prints.
use std::hint::black_box;
use std::time::Instant;

use quant::kernels::fp8::{
    f32_to_fp8_e4m3, f32_to_fp8_e4m3_ref, f32_to_fp8_e5m2, fp8_block_dequantize,
    fp8_block_quantize, fp8_e4m3_dequantize, fp8_e4m3_quantize, fp8_e4m3_quantize_ref,
    fp8_e4m3_to_f32, fp8_e5m2_to_f32, BlockShape,
};
use quant::kernels::ggml::{ggml_dequantize, ggml_quantize, GgmlType};
use quant::kernels::half::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16, f32_to_f16_ref};
use quant::kernels::int4::{int4_dequantize, int4_quantize, int4_quantize_ref};
use quant::kernels::int8::{int8_dequantize, int8_quantize, int8_quantize_ref};
use quant::kernels::mx::nvfp4::{
    nvfp4_dequantize, nvfp4_packed_size, nvfp4_quantize, nvfp4_quantize_with_global,
    nvfp4_scale_count,
};
use quant::kernels::mx::{mx_dequantize, mx_packed_size, mx_quantize, mx_scale_count, MxElem};
use quant::kernels::nf4::{
    bnb4_absmax_len, bnb4_dequantize, bnb4_dequantize_nested, bnb4_nested_len, bnb4_quantize,
    bnb4_quantize_nested, Bnb4Type,
};
use quant::kernels::par::with_threads;
use quant::kernels::simd::simd_level;
use quant::kernels::source::Src;
use quant::kernels::{check_finite, Shape};

const COLS: usize = 4096;
const SIZES: [(&str, usize); 2] = [("4096x4096", 4096), ("64 Mi", 16384)];

/// Which reference loop a kernel is compared with.
#[derive(Clone, Copy, PartialEq)]
enum Class {
    /// Reads f32, writes something smaller: compared with the ceiling loop.
    FromF32,
    /// Writes f32: compared with the write-bound loop.
    ToF32,
    /// A reference loop itself, or a figure shown without a ratio.
    Plain,
}

struct Row {
    name: String,
    size: &'static str,
    class: Class,
    gps: [f64; 2],
    /// Median over the repetitions of (reference loop time / kernel time), each pair measured back to
    /// back, so that a change of the machine's load between figures does not skew the ratio.
    ratio: [Option<f64>; 2],
}

/// The reference loops with their own buffers, run back to back with each kernel.
struct Refs {
    src: &'static [f32],
    q8: Vec<i8>,
    f32s: Vec<f32>,
}

impl Refs {
    /// Seconds of the reference loop of `class` over `n` elements with `t` threads.
    fn time(&mut self, class: Class, t: usize, n: usize) -> Option<f64> {
        let start = Instant::now();
        match class {
            Class::FromF32 => split2(t, &self.src[..n], &mut self.q8[..n], ceiling_loop),
            Class::ToF32 => split2(t, &self.q8[..n], &mut self.f32s[..n], write_bound_loop),
            Class::Plain => return None,
        }
        black_box((&self.q8, &self.f32s));
        Some(start.elapsed().as_secs_f64())
    }
}

struct Bench {
    reps: usize,
    filter: Option<String>,
    rows: Vec<Row>,
    refs: Refs,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Bench {
    fn wants(&self, name: &str) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| name.contains(f.as_str()))
    }

    /// Median seconds of `reps` calls of `f` after one warm-up call (no reference loop).
    fn median(&self, reps: usize, f: &mut dyn FnMut()) -> f64 {
        f();
        median(
            (0..reps)
                .map(|_| {
                    let start = Instant::now();
                    f();
                    start.elapsed().as_secs_f64()
                })
                .collect(),
        )
    }

    /// Median seconds of `f` and median ratio (reference time / kernel time), each repetition timing
    /// the reference loop of `class` and then `f`.
    fn paired(
        &mut self,
        class: Class,
        t: usize,
        n: usize,
        f: &mut dyn FnMut(),
    ) -> (f64, Option<f64>) {
        f();
        self.refs.time(class, t, n);
        let mut secs = Vec::new();
        let mut ratios = Vec::new();
        for _ in 0..self.reps {
            let r = self.refs.time(class, t, n);
            let start = Instant::now();
            f();
            let k = start.elapsed().as_secs_f64();
            secs.push(k);
            if let Some(r) = r {
                ratios.push(r / k);
            }
        }
        let ratio = (!ratios.is_empty()).then(|| median(ratios));
        (median(secs), ratio)
    }

    /// Measures `f` (which handles `n` elements) with 1 and 2 kernel threads.
    fn run(&mut self, name: &str, size: &'static str, class: Class, n: usize, f: &mut dyn FnMut()) {
        if !self.wants(name) {
            return;
        }
        let mut gps = [0.0; 2];
        let mut ratio = [None; 2];
        for (k, t) in [1usize, 2].into_iter().enumerate() {
            let (secs, r) = with_threads(t, || self.paired(class, t, n, f)).expect("thread count");
            gps[k] = n as f64 / secs / 1e9;
            ratio[k] = r;
        }
        self.push(name, size, class, gps, ratio);
    }

    /// Measures a loop that runs on `t` threads itself (`f(t)`), for 1 and 2 threads.
    fn run_manual(
        &mut self,
        name: &str,
        size: &'static str,
        class: Class,
        n: usize,
        f: &mut dyn FnMut(usize),
    ) {
        if !self.wants(name) {
            return;
        }
        let mut gps = [0.0; 2];
        let mut ratio = [None; 2];
        for (k, t) in [1usize, 2].into_iter().enumerate() {
            let (secs, r) = self.paired(class, t, n, &mut || f(t));
            gps[k] = n as f64 / secs / 1e9;
            ratio[k] = r;
        }
        self.push(name, size, class, gps, ratio);
    }

    fn push(
        &mut self,
        name: &str,
        size: &'static str,
        class: Class,
        gps: [f64; 2],
        ratio: [Option<f64>; 2],
    ) {
        let r = |x: Option<f64>| x.map_or("    ".to_string(), |x| format!("{x:4.2}"));
        eprintln!(
            "  {name:<38} {size:<10} {:7.3} G/s ({})  {:7.3} G/s ({})",
            gps[0],
            r(ratio[0]),
            gps[1],
            r(ratio[1])
        );
        self.rows.push(Row {
            name: name.to_string(),
            size,
            class,
            gps,
            ratio,
        });
    }

    fn reference(&self, name: &str, size: &str) -> Option<[f64; 2]> {
        self.rows
            .iter()
            .find(|r| r.name == name && r.size == size)
            .map(|r| r.gps)
    }
}

/// Runs `f(range)` over `t` contiguous halves of `0..n` on scoped threads (the reference loops).
fn split2<T: Send, U: Send + Sync>(
    t: usize,
    src: &[U],
    dst: &mut [T],
    f: impl Fn(&[U], &mut [T]) + Sync,
) {
    if t == 1 {
        f(src, dst);
        return;
    }
    let per = src.len().div_ceil(t).div_ceil(64) * 64;
    std::thread::scope(|s| {
        for (a, b) in src.chunks(per).zip(dst.chunks_mut(per)) {
            let f = &f;
            s.spawn(move || f(a, b));
        }
    });
}

/// The ceiling loop: f32 read, int8 write (`d = s` truncated, saturating), plain stores. Written with
/// AVX-512 or AVX2 intrinsics when the CPU has them: the compiler's `as i8` (NaN and saturation
/// semantics) does not vectorize well enough to be bound by memory, and the ceiling must be.
fn ceiling_loop(s: &[f32], d: &mut [i8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let n = s.len().min(d.len());
        let (sp, dp) = (s.as_ptr(), d.as_mut_ptr());
        if is_x86_feature_detected!("avx512f") {
            #[target_feature(enable = "avx512f")]
            unsafe fn body(sp: *const f32, dp: *mut i8, n: usize) -> usize {
                let mut i = 0;
                while i + 16 <= n {
                    let q = _mm512_cvttps_epi32(_mm512_loadu_ps(sp.add(i)));
                    _mm_storeu_si128(dp.add(i) as *mut __m128i, _mm512_cvtsepi32_epi8(q));
                    i += 16;
                }
                i
            }
            // SAFETY: the CPU has AVX-512F; `body` stays within `n` elements of both slices.
            let done = unsafe { body(sp, dp, n) };
            for (d, s) in d[done..n].iter_mut().zip(&s[done..n]) {
                *d = *s as i8;
            }
            return;
        }
        if is_x86_feature_detected!("avx2") {
            #[target_feature(enable = "avx2")]
            unsafe fn body(sp: *const f32, dp: *mut i8, n: usize) -> usize {
                let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
                let mut i = 0;
                while i + 32 <= n {
                    let q = |k: usize| _mm256_cvttps_epi32(_mm256_loadu_ps(sp.add(i + 8 * k)));
                    let ab = _mm256_packs_epi32(q(0), q(1));
                    let cd = _mm256_packs_epi32(q(2), q(3));
                    let v = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), perm);
                    _mm256_storeu_si256(dp.add(i) as *mut __m256i, v);
                    i += 32;
                }
                i
            }
            // SAFETY: the CPU has AVX2; `body` stays within `n` elements of both slices.
            let done = unsafe { body(sp, dp, n) };
            for (d, s) in d[done..n].iter_mut().zip(&s[done..n]) {
                *d = *s as i8;
            }
            return;
        }
    }
    for (d, s) in d.iter_mut().zip(s) {
        *d = *s as i8;
    }
}

/// The write-bound loop: int8 read, f32 write (`d = s as f32`), plain stores (AVX2 when the CPU has
/// it; this one vectorizes well).
fn write_bound_loop(s: &[i8], d: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(s: &[i8], d: &mut [f32]) {
            for (d, s) in d.iter_mut().zip(s) {
                *d = *s as f32;
            }
        }
        // SAFETY: the CPU has AVX2.
        return unsafe { avx2(s, d) };
    }
    for (d, s) in d.iter_mut().zip(s) {
        *d = *s as f32;
    }
}

fn random_weights(n: usize) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// numpy / ml_dtypes peers on a 4096 x 4096 matrix, single-threaded, through a python subprocess.
const NUMPY_PEER: &str = r#"
import time, numpy as np
try:
    import ml_dtypes
except Exception:
    ml_dtypes = None
rng = np.random.default_rng(0)
w = ((rng.random((4096, 4096), dtype=np.float32) - 0.5) * 0.2).astype(np.float32)
n = w.size
def med(f, reps=5):
    f(); t = []
    for _ in range(reps):
        s = time.perf_counter(); f(); t.append(time.perf_counter() - s)
    t.sort(); return n / t[len(t) // 2] / 1e9
def int8_row():
    s = np.abs(w).max(axis=1, keepdims=True) / 127
    return np.clip(np.round(w / s), -127, 127).astype(np.int8)
def int4_g128():
    g = w.reshape(-1, 128)
    lo = np.minimum(g.min(axis=1, keepdims=True), 0); hi = np.maximum(g.max(axis=1, keepdims=True), 0)
    s = (hi - lo) / 15; z = np.clip(np.round(-lo / s), 0, 15)
    q = np.clip(np.round(g / s) + z, 0, 15).astype(np.uint8).reshape(4096, 4096)
    return q[:, 0::2] | (q[:, 1::2] << 4)
print("numpy INT8 quantize per row", med(int8_row))
print("numpy INT4 quantize g128", med(int4_g128))
print("numpy f32->f16 astype", med(lambda: w.astype(np.float16)))
if ml_dtypes is not None:
    print("ml_dtypes f32->bf16 astype", med(lambda: w.astype(ml_dtypes.bfloat16)))
    print("ml_dtypes f32->fp8 e4m3fn astype", med(lambda: w.astype(ml_dtypes.float8_e4m3fn)))
"#;

fn numpy_peers(b: &mut Bench) {
    let out = std::process::Command::new("python3")
        .args(["-c", NUMPY_PEER])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                if let Some((name, v)) = line.rsplit_once(' ') {
                    if let Ok(g) = v.parse::<f64>() {
                        if b.wants(name) {
                            b.push(
                                &format!("peer: {name}"),
                                "4096x4096",
                                Class::FromF32,
                                [g, f64::NAN],
                                [None; 2],
                            );
                        }
                    }
                }
            }
        }
        _ => eprintln!("  (python3 with numpy not available: numpy peers skipped)"),
    }
}

fn main() {
    let reps = std::env::var("QUANT_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7usize)
        .max(1);
    let peers = std::env::var("QUANT_BENCH_PEERS").map_or(true, |v| v != "0");
    let max_n = SIZES.iter().map(|s| s.1 * COLS).max().unwrap();
    let src: &'static [f32] = Box::leak(random_weights(max_n).into_boxed_slice());
    let mut b = Bench {
        reps,
        filter: std::env::var("QUANT_BENCH_FILTER").ok(),
        rows: Vec::new(),
        refs: Refs {
            src,
            q8: vec![0i8; max_n],
            f32s: vec![0f32; max_n],
        },
    };
    eprintln!(
        "quant kernels bench: {}, {} CPUs, SIMD level {}, {} reps (median)",
        cpu_name(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        simd_level().name(),
        reps
    );
    let mut q8 = vec![0i8; max_n];
    let mut u8s = vec![0u8; max_n];
    let mut u16s = vec![0u16; max_n];
    let mut f32s = vec![0f32; max_n];
    let mut f32b = vec![0f32; max_n];
    let mut scales = vec![0f32; max_n / 32];
    let mut zeros = vec![0u8; max_n / 16]; // INT4 zero points, MX and NVFP4 scales
    let mut blocks = vec![0u8; max_n / 32 * 34]; // GGUF blocks (Q8_0's 8.5 bits per value at most)

    for (size, rows) in SIZES {
        let n = rows * COLS;
        let x = &src[..n];
        eprintln!("{size} ({n} elements):");
        // Reference loops.
        b.run_manual("ceiling: f32 -> i8 loop", size, Class::Plain, n, &mut |t| {
            split2(t, x, &mut q8[..n], ceiling_loop);
            black_box(&q8);
        });
        b.run_manual(
            "write-bound: i8 -> f32 loop",
            size,
            Class::Plain,
            n,
            &mut |t| {
                split2(t, &q8[..n], &mut f32s[..n], write_bound_loop);
                black_box(&f32s);
            },
        );
        b.run_manual("memcpy f32 (elements/s)", size, Class::Plain, n, &mut |t| {
            split2(t, x, &mut f32b[..n], |s, d| d.copy_from_slice(s));
            black_box(&f32b);
        });
        b.run(
            "validation scan (check_finite)",
            size,
            Class::Plain,
            n,
            &mut || {
                check_finite(black_box(x), "src").unwrap();
            },
        );

        // Quantizers and their dequantizers.
        for (g, label) in [(0usize, "per row"), (128, "g128")] {
            let shape = Shape::new(rows, COLS, g).unwrap();
            let ng = shape.n_groups();
            b.run(
                &format!("INT8 quantize {label}"),
                size,
                Class::FromF32,
                n,
                &mut || {
                    int8_quantize(x, shape, &mut q8[..n], &mut scales[..ng]).unwrap();
                },
            );
            int8_quantize(x, shape, &mut q8[..n], &mut scales[..ng]).unwrap();
            b.run(
                &format!("INT8 dequantize {label}"),
                size,
                Class::ToF32,
                n,
                &mut || {
                    int8_dequantize(&q8[..n], &scales[..ng], shape, &mut f32s[..n]).unwrap();
                },
            );
        }
        let shape = Shape::new(rows, COLS, 128).unwrap();
        let ng = shape.n_groups();
        b.run("INT4 quantize g128", size, Class::FromF32, n, &mut || {
            int4_quantize(
                x,
                shape,
                &mut u8s[..n / 2],
                &mut scales[..ng],
                &mut zeros[..ng],
            )
            .unwrap();
        });
        int4_quantize(
            x,
            shape,
            &mut u8s[..n / 2],
            &mut scales[..ng],
            &mut zeros[..ng],
        )
        .unwrap();
        b.run("INT4 dequantize g128", size, Class::ToF32, n, &mut || {
            int4_dequantize(
                &u8s[..n / 2],
                &scales[..ng],
                &zeros[..ng],
                shape,
                &mut f32s[..n],
            )
            .unwrap();
        });
        for (g, label) in [(0usize, "per row"), (128, "g128")] {
            let shape = Shape::new(rows, COLS, g).unwrap();
            let ng = shape.n_groups();
            b.run(
                &format!("FP8 E4M3 quantize {label}"),
                size,
                Class::FromF32,
                n,
                &mut || {
                    fp8_e4m3_quantize(x, shape, &mut u8s[..n], &mut scales[..ng]).unwrap();
                },
            );
            fp8_e4m3_quantize(x, shape, &mut u8s[..n], &mut scales[..ng]).unwrap();
            b.run(
                &format!("FP8 E4M3 dequantize {label}"),
                size,
                Class::ToF32,
                n,
                &mut || {
                    fp8_e4m3_dequantize(&u8s[..n], &scales[..ng], shape, &mut f32s[..n]).unwrap();
                },
            );
        }

        // Block FP8 (DeepSeek-V3's 128 x 128 blocks, one scale_inv each).
        let bshape = BlockShape::deepseek(rows, COLS).unwrap();
        let nb = bshape.n_blocks();
        b.run(
            "FP8 block 128x128 quantize",
            size,
            Class::FromF32,
            n,
            &mut || {
                fp8_block_quantize(Src::F32(x), bshape, &mut u8s[..n], &mut scales[..nb]).unwrap();
            },
        );
        fp8_block_quantize(Src::F32(x), bshape, &mut u8s[..n], &mut scales[..nb]).unwrap();
        b.run(
            "FP8 block 128x128 dequantize",
            size,
            Class::ToF32,
            n,
            &mut || {
                fp8_block_dequantize(&u8s[..n], &scales[..nb], bshape, &mut f32s[..n]).unwrap();
            },
        );

        // bitsandbytes NF4 (blocks of 64, its default; FP4 runs the same loop with other tables).
        let na = bnb4_absmax_len(n, 64);
        b.run(
            "bnb NF4 quantize bs64",
            size,
            Class::FromF32,
            n,
            &mut || {
                bnb4_quantize(
                    Bnb4Type::Nf4,
                    Src::F32(x),
                    64,
                    &mut u8s[..n / 2],
                    &mut scales[..na],
                )
                .unwrap();
            },
        );
        bnb4_quantize(
            Bnb4Type::Nf4,
            Src::F32(x),
            64,
            &mut u8s[..n / 2],
            &mut scales[..na],
        )
        .unwrap();
        b.run(
            "bnb NF4 dequantize bs64",
            size,
            Class::ToF32,
            n,
            &mut || {
                bnb4_dequantize(
                    Bnb4Type::Nf4,
                    &u8s[..n / 2],
                    &scales[..na],
                    n,
                    64,
                    &mut f32s[..n],
                )
                .unwrap();
            },
        );

        // Double quantization (compress_statistics=True): the same 4-bit pass, then the absmax values'
        // mean and their 8-bit step (1/64 of the values), and its inverse.
        let (mut qa, mut a2) = (vec![0u8; na], vec![0f32; bnb4_nested_len(n, 64)]);
        b.run(
            "bnb NF4 quantize bs64 nested",
            size,
            Class::FromF32,
            n,
            &mut || {
                bnb4_quantize_nested(
                    Bnb4Type::Nf4,
                    Src::F32(x),
                    64,
                    None,
                    &mut u8s[..n / 2],
                    &mut qa,
                    &mut a2,
                )
                .unwrap();
            },
        );
        let off = bnb4_quantize_nested(
            Bnb4Type::Nf4,
            Src::F32(x),
            64,
            None,
            &mut u8s[..n / 2],
            &mut qa,
            &mut a2,
        )
        .unwrap();
        b.run(
            "bnb NF4 dequantize bs64 nested",
            size,
            Class::ToF32,
            n,
            &mut || {
                bnb4_dequantize_nested(
                    Bnb4Type::Nf4,
                    &u8s[..n / 2],
                    &qa,
                    &a2,
                    off,
                    n,
                    64,
                    &mut f32s[..n],
                )
                .unwrap();
            },
        );

        // MX (one generic scalar path for the six element types) and NVFP4 (two passes).
        for elem in MxElem::all() {
            let (np, ns) = (mx_packed_size(elem, rows, COLS), mx_scale_count(rows, COLS));
            let name = elem.name();
            b.run(
                &format!("{name} quantize"),
                size,
                Class::FromF32,
                n,
                &mut || {
                    mx_quantize(elem, x, rows, COLS, &mut u8s[..np], &mut zeros[..ns]).unwrap();
                },
            );
            mx_quantize(elem, x, rows, COLS, &mut u8s[..np], &mut zeros[..ns]).unwrap();
            b.run(
                &format!("{name} dequantize"),
                size,
                Class::ToF32,
                n,
                &mut || {
                    mx_dequantize(elem, &u8s[..np], &zeros[..ns], rows, COLS, &mut f32s[..n])
                        .unwrap();
                },
            );
        }
        let (np, ns) = (nvfp4_packed_size(rows, COLS), nvfp4_scale_count(rows, COLS));
        b.run("NVFP4 quantize", size, Class::FromF32, n, &mut || {
            nvfp4_quantize(x, rows, COLS, &mut u8s[..np], &mut zeros[..ns]).unwrap();
        });
        let global = nvfp4_quantize(x, rows, COLS, &mut u8s[..np], &mut zeros[..ns]).unwrap();
        b.run(
            "NVFP4 quantize, given global scale (one pass)",
            size,
            Class::FromF32,
            n,
            &mut || {
                nvfp4_quantize_with_global(x, rows, COLS, global, &mut u8s[..np], &mut zeros[..ns])
                    .unwrap();
            },
        );
        b.run("NVFP4 dequantize", size, Class::ToF32, n, &mut || {
            nvfp4_dequantize(&u8s[..np], &zeros[..ns], global, rows, COLS, &mut f32s[..n]).unwrap();
        });

        // GGUF blocks: ggml's reference quantizers (no importance weights, what llama-quantize runs
        // without an imatrix) and the dequantizers, every type.
        for ty in GgmlType::all() {
            let bytes = ty.row_size(COLS).unwrap() * rows;
            let name = ty.name();
            b.run(
                &format!("GGUF {name} quantize"),
                size,
                Class::FromF32,
                n,
                &mut || {
                    ggml_quantize(ty, x, rows, COLS, &mut blocks[..bytes]).unwrap();
                },
            );
            b.run(
                &format!("GGUF {name} dequantize"),
                size,
                Class::ToF32,
                n,
                &mut || {
                    ggml_dequantize(ty, &blocks[..bytes], n, &mut f32s[..n]).unwrap();
                },
            );
        }

        // Plain casts.
        b.run(
            "f32 -> FP8 E4M3 (saturate)",
            size,
            Class::FromF32,
            n,
            &mut || {
                f32_to_fp8_e4m3(x, &mut u8s[..n], true).unwrap();
            },
        );
        b.run("FP8 E4M3 -> f32", size, Class::ToF32, n, &mut || {
            fp8_e4m3_to_f32(&u8s[..n], &mut f32s[..n]).unwrap();
        });
        b.run("f32 -> FP8 E5M2", size, Class::FromF32, n, &mut || {
            f32_to_fp8_e5m2(x, &mut u8s[..n], false).unwrap();
        });
        b.run("FP8 E5M2 -> f32", size, Class::ToF32, n, &mut || {
            fp8_e5m2_to_f32(&u8s[..n], &mut f32s[..n]).unwrap();
        });
        b.run("f32 -> f16", size, Class::FromF32, n, &mut || {
            f32_to_f16(x, &mut u16s[..n]).unwrap();
        });
        b.run("f16 -> f32", size, Class::ToF32, n, &mut || {
            f16_to_f32(&u16s[..n], &mut f32s[..n]).unwrap();
        });
        b.run("f32 -> bf16", size, Class::FromF32, n, &mut || {
            f32_to_bf16(x, &mut u16s[..n]).unwrap();
        });
        b.run("bf16 -> f32", size, Class::ToF32, n, &mut || {
            bf16_to_f32(&u16s[..n], &mut f32s[..n]).unwrap();
        });

        // Peers (single figures per thread count, on the same buffers).
        if peers {
            use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
            b.run_manual(
                "peer: half crate f32 -> f16",
                size,
                Class::FromF32,
                n,
                &mut |t| {
                    split2(t, x, &mut u16s[..n], |s, d| {
                        let d: &mut [half::f16] = d.reinterpret_cast_mut();
                        d.convert_from_f32_slice(s);
                    });
                },
            );
            b.run_manual(
                "peer: half crate f16 -> f32",
                size,
                Class::ToF32,
                n,
                &mut |t| {
                    split2(t, &u16s[..n], &mut f32s[..n], |s, d| {
                        let s: &[half::f16] = s.reinterpret_cast();
                        s.convert_to_f32_slice(d);
                    });
                },
            );
            if size == SIZES[0].0 {
                let shape0 = Shape::new(rows, COLS, 0).unwrap();
                let reps = b.reps.min(3);
                let one = |b: &mut Bench, name: &str, f: &mut dyn FnMut()| {
                    if b.wants(name) {
                        let secs = b.median(reps, f);
                        b.push(
                            name,
                            size,
                            Class::FromF32,
                            [n as f64 / secs / 1e9, f64::NAN],
                            [None; 2],
                        );
                    }
                };
                one(&mut b, "peer: scalar ref INT8 per row", &mut || {
                    int8_quantize_ref(x, shape0, &mut q8[..n], &mut scales[..rows]).unwrap();
                });
                one(&mut b, "peer: scalar ref INT4 g128", &mut || {
                    int4_quantize_ref(
                        x,
                        shape,
                        &mut u8s[..n / 2],
                        &mut scales[..ng],
                        &mut zeros[..ng],
                    )
                    .unwrap();
                });
                one(&mut b, "peer: scalar ref FP8 E4M3 g128", &mut || {
                    fp8_e4m3_quantize_ref(x, shape, &mut u8s[..n], &mut scales[..ng]).unwrap();
                });
                one(&mut b, "peer: scalar ref f32 -> FP8 E4M3", &mut || {
                    for (d, &s) in u8s[..n].iter_mut().zip(x) {
                        *d = f32_to_fp8_e4m3_ref(s, true);
                    }
                    black_box(&u8s);
                });
                one(&mut b, "peer: scalar ref f32 -> f16", &mut || {
                    for (d, &s) in u16s[..n].iter_mut().zip(x) {
                        *d = f32_to_f16_ref(s);
                    }
                    black_box(&u16s);
                });
                numpy_peers(&mut b);
            }
        }
    }
    print_table(&b);
}

fn fmt_ratio(v: f64, r: Option<f64>) -> String {
    match r {
        Some(r) if r > 0.0 && v.is_finite() => format!("{:.2}", v / r),
        _ => "".into(),
    }
}

fn print_table(b: &Bench) {
    println!();
    println!("| kernel | size | 1 thread G/s | ratio 1T | 2 threads G/s | ratio 2T | 2T / 1T |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in &b.rows {
        let reference = match r.class {
            Class::FromF32 => b.reference("ceiling: f32 -> i8 loop", r.size),
            Class::ToF32 => b.reference("write-bound: i8 -> f32 loop", r.size),
            Class::Plain => None,
        };
        let two = if r.gps[1].is_finite() {
            format!("{:.2}", r.gps[1])
        } else {
            "".into()
        };
        let speedup = if r.gps[1].is_finite() {
            format!("{:.2}", r.gps[1] / r.gps[0])
        } else {
            "".into()
        };
        println!(
            "| {} | {} | {:.2} | {} | {} | {} | {} |",
            r.name,
            r.size,
            r.gps[0],
            r.ratio[0].map_or_else(
                || fmt_ratio(r.gps[0], reference.map(|g| g[0])),
                |x| format!("{x:.2}")
            ),
            two,
            r.ratio[1].map_or_else(
                || fmt_ratio(r.gps[1], reference.map(|g| g[1])),
                |x| format!("{x:.2}")
            ),
            speedup
        );
    }
    println!();
    println!(
        "ratio: median over the repetitions of (reference loop time / kernel time), the two timed"
    );
    println!(
        "back to back with the same thread count (peers measured once: throughput / the reference"
    );
    println!("row's). Reference loop: for quantizers and casts from f32 the ceiling loop (f32 read, int8");
    println!(
        "write); for dequantizers and casts to f32 the write-bound loop (int8 read, f32 write)."
    );
    println!("memcpy is in f32 elements/s (x4 for bytes/s).");
}
