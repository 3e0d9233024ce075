//! GPTQ and AWQ timings on one 4096 x 4096 layer, with the f32 product X^T X measured in the same run
//! as the yardstick.
//!
//! Run: `cargo bench --bench algos` (`QUANT_BENCH_REPS`, default 3, repetitions of each figure; the
//! median is printed). GPTQ: 2048 calibration tokens, 4 bits, groups of 128; the Hessian accumulation
//! (`Calibration::add`, f64) and the solve (`gptq::quantize_calibrated`) are timed separately, with 1
//! and 2 threads. AWQ: the scale and clip search on the same layer with a 512-token sample, 1 thread.
//! The yardstick is the single-threaded f32 product X^T X of the same activations with faer, and
//! numpy's (`OPENBLAS_NUM_THREADS=1`) when python3 with numpy is available. The peer, when python3 can
//! import torch: the reference PyTorch GPTQ (`benches/gptq_reference.py`) on the same shapes, with 1
//! and 2 threads, and our totals as a fraction of its.
//!
//! Peak memory (the bound: no more than twice (Hessian + weight)), measured first, in an untimed pass
//! per thread count: this binary's global allocator counts the live heap bytes and their peak, which is
//! reset at the start of each phase. The accumulation phase counts the weight, the 2048 x 4096 f32
//! activations handed to `add` and the calibration it builds; the solve counts the weight, the
//! calibration and everything `quantize_calibrated` allocates (its result included). The peaks are
//! given against H + W: the Hessian as the library stores it (4096^2 f64, 128 MiB) plus the weight
//! (4096^2 f32, 64 MiB), and against an f32 Hessian (64 MiB) + W. VmHWM (the kernel's resident
//! high-water mark, reset through /proc/self/clear_refs where that is allowed) is printed next to it.
use std::hint::black_box;
use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use quant::algos::awq::{self, AwqParams};
use quant::algos::gptq::{self, GptqParams};
use quant::algos::QuantOptions;
use quant::calib::{Calibration, CalibrationOptions};

const COLS: usize = 4096;
const ROWS: usize = 4096;
const TOKENS: usize = 2048;
const MIB: f64 = (1u64 << 20) as f64;

#[path = "../tests/common/heap.rs"]
mod heap;

#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;

/// Starts a phase: the peak becomes the bytes live now; the kernel's VmHWM is reset when allowed.
/// Returns the resident set size at that moment (bytes), when known.
fn start_phase() -> Option<u64> {
    heap::reset_peak();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    proc_status("VmRSS:")
}

/// A `kB` line of /proc/self/status, in bytes.
fn proc_status(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

struct PhasePeak {
    heap: usize,
    rss_before: Option<u64>,
    hwm: Option<u64>,
}

fn end_phase(rss_before: Option<u64>) -> PhasePeak {
    PhasePeak {
        heap: heap::peak(),
        rss_before,
        hwm: proc_status("VmHWM:"),
    }
}

/// The activations: uniform noise with a few outlier channels, as real ones have.
fn activations() -> Vec<f32> {
    let mut x = random(TOKENS * COLS, 11, 2.0);
    for (i, v) in x.iter_mut().enumerate() {
        if (i % COLS).is_multiple_of(97) {
            *v *= 20.0;
        }
    }
    x
}

/// Peak memory of the Hessian accumulation and of the solve, untimed, with `threads` threads.
fn memory_pass(w: &[f32], threads: usize) -> [PhasePeak; 2] {
    let rss = start_phase();
    let x = activations();
    let opts = CalibrationOptions {
        hessian: true,
        sample_tokens: 512,
        threads,
    };
    let mut calib = Calibration::with_options(COLS, &opts).expect("calibration");
    calib.add(&x, TOKENS, COLS).expect("add");
    let accumulation = end_phase(rss);
    drop(x);
    let rss = start_phase();
    let options = QuantOptions {
        threads,
        ..QuantOptions::default()
    };
    let params = GptqParams::new(4, 128, &options);
    let r = gptq::quantize_calibrated(w, ROWS, COLS, &calib, &params).expect("gptq");
    let solve = end_phase(rss);
    drop(r);
    [accumulation, solve]
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.0}", b as f64 / MIB))
}

fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
        })
        .collect()
}

fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// `(hessian_s, solve_s)` of `benches/gptq_reference.py` with `threads` threads, when it runs.
fn torch_reference(threads: usize, reps: usize) -> Option<(f64, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/gptq_reference.py");
    let o = std::process::Command::new("python3")
        .args([script, &threads.to_string(), &reps.to_string()])
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    let out = String::from_utf8_lossy(&o.stdout);
    let mut it = out.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((it.next()??, it.next()??))
}

const NUMPY_XTX: &str = r#"
import os, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
x = np.random.default_rng(0).random((2048, 4096), dtype=np.float32)
np.dot(x.T, x)
t = []
for _ in range(3):
    s = time.perf_counter(); np.dot(x.T, x); t.append(time.perf_counter() - s)
t.sort(); print(t[1])
"#;

fn main() {
    let reps = std::env::var("QUANT_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let w = random(ROWS * COLS, 7, 0.1);
    println!("GPTQ / AWQ on a {ROWS} x {COLS} layer, {TOKENS} tokens, 4 bits, group 128; median of {reps}");
    println!();

    // Peak memory first, before the timings' buffers exist.
    let h_f64 = COLS * COLS * 8;
    let h_f32 = COLS * COLS * 4;
    let weight = ROWS * COLS * 4;
    println!(
        "GPTQ peak heap: live heap bytes at their peak (counting allocator; reset per phase). Yardstick: \
         H (f64, as stored) + W = {:.0} + {:.0} = {:.0} MiB; with an f32 Hessian {:.0} MiB.",
        h_f64 as f64 / MIB,
        weight as f64 / MIB,
        (h_f64 + weight) as f64 / MIB,
        (h_f32 + weight) as f64 / MIB
    );
    println!();
    println!("| GPTQ phase | threads | peak heap (MiB) | / (H f64 + W) | / (H f32 + W) | VmHWM (MiB) | VmRSS at start (MiB) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for threads in [1usize, 2] {
        let [acc, solve] = memory_pass(&w, threads);
        let whole = acc.heap.max(solve.heap);
        let rows = [
            (
                "Hessian accumulation (W + activations + calibration)",
                acc.heap,
                &acc,
            ),
            ("solve (W + calibration + solve)", solve.heap, &solve),
        ];
        for (name, heap, p) in rows {
            println!(
                "| {name} | {threads} | {:.0} | {:.2} | {:.2} | {} | {} |",
                heap as f64 / MIB,
                heap as f64 / (h_f64 + weight) as f64,
                heap as f64 / (h_f32 + weight) as f64,
                mib(p.hwm),
                mib(p.rss_before),
            );
        }
        println!(
            "| whole run (the larger) | {threads} | {:.0} | {:.2} | {:.2} | | |",
            whole as f64 / MIB,
            whole as f64 / (h_f64 + weight) as f64,
            whole as f64 / (h_f32 + weight) as f64,
        );
    }
    println!();

    let x = activations();
    println!("| step | 1 thread (s) | 2 threads (s) |");
    println!("|---|---:|---:|");

    // Yardstick: f32 X^T X, one thread.
    let mut xtx = vec![0f32; COLS * COLS];
    let xtx_secs = median_secs(reps, || {
        // x is row-major TOKENS x COLS, i.e. column-major COLS x TOKENS: X^T X = A A^T with A = that.
        let a = MatRef::from_column_major_slice(&x, COLS, TOKENS);
        let c = MatMut::from_column_major_slice_mut(&mut xtx, COLS, COLS);
        matmul(c, Accum::Replace, a, a.transpose(), 1.0f32, Par::Seq);
        black_box(&xtx);
    });
    println!("| yardstick: f32 X^T X (faer, {COLS} x {TOKENS}) | {xtx_secs:.3} | |");
    match std::process::Command::new("python3")
        .args(["-c", NUMPY_XTX])
        .output()
    {
        Ok(o) if o.status.success() => {
            let t: f64 = String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(f64::NAN);
            println!("| yardstick: f32 X^T X (numpy, OPENBLAS_NUM_THREADS=1) | {t:.3} | |");
        }
        _ => println!("| yardstick: numpy | (python3 with numpy not available) | |"),
    }

    let mut hessian = [0.0f64; 2];
    let mut solve = [0.0f64; 2];
    let mut calib_for_awq = None;
    for (k, threads) in [1usize, 2].into_iter().enumerate() {
        let opts = CalibrationOptions {
            hessian: true,
            sample_tokens: 512,
            threads,
        };
        let mut last = None;
        hessian[k] = median_secs(reps, || {
            let mut c = Calibration::with_options(COLS, &opts).expect("calibration");
            c.add(&x, TOKENS, COLS).expect("add");
            last = Some(c);
        });
        let calib = last.expect("ran");
        let options = QuantOptions {
            threads,
            ..QuantOptions::default()
        };
        let params = GptqParams::new(4, 128, &options);
        solve[k] = median_secs(reps, || {
            let r = gptq::quantize_calibrated(&w, ROWS, COLS, &calib, &params).expect("gptq");
            black_box(r);
        });
        if threads == 1 {
            calib_for_awq = Some(calib);
        }
    }
    println!(
        "| GPTQ Hessian accumulation (f64, faer) | {:.3} | {:.3} |",
        hessian[0], hessian[1]
    );
    println!("| GPTQ solve | {:.3} | {:.3} |", solve[0], solve[1]);
    println!(
        "| GPTQ total | {:.3} | {:.3} |",
        hessian[0] + solve[0],
        hessian[1] + solve[1]
    );
    println!(
        "| GPTQ total / yardstick | {:.1} | {:.1} |",
        (hessian[0] + solve[0]) / xtx_secs,
        (hessian[1] + solve[1]) / xtx_secs
    );
    // The peer: the reference PyTorch GPTQ on the same shapes and thread counts, when torch imports.
    let reference: Vec<Option<(f64, f64)>> = [1usize, 2]
        .iter()
        .map(|t| torch_reference(*t, reps))
        .collect();
    if let [Some(r1), Some(r2)] = reference[..] {
        println!(
            "| reference GPTQ (PyTorch fp32, benches/gptq_reference.py): Hessian | {:.3} | {:.3} |",
            r1.0, r2.0
        );
        println!("| reference GPTQ: solve | {:.3} | {:.3} |", r1.1, r2.1);
        let (t1, t2) = (r1.0 + r1.1, r2.0 + r2.1);
        println!("| reference GPTQ: total | {t1:.3} | {t2:.3} |");
        println!(
            "| GPTQ total / reference total (target <= 0.5) | {:.2} | {:.2} |",
            (hessian[0] + solve[0]) / t1,
            (hessian[1] + solve[1]) / t2
        );
    } else {
        println!("| reference GPTQ (PyTorch) | (python3 with torch not available) | |");
    }

    let calib = calib_for_awq.expect("calibration");
    let act_mean = calib.abs_mean();
    let params = AwqParams {
        bits: 4,
        group_size: 128,
        symmetric: false,
        clip: true,
        threads: 1,
    };
    let awq_secs = median_secs(reps.min(2), || {
        let r = awq::quantize_group(
            &[(&w[..], ROWS)],
            COLS,
            &act_mean,
            calib.sample(),
            calib.sample_len(),
            &params,
        )
        .expect("awq");
        black_box(r);
    });
    println!(
        "| AWQ scale + clip search ({} sample tokens) | {awq_secs:.3} | |",
        calib.sample_len()
    );
    println!();
    println!("Reference figures (PyTorch fp32 CPU, measured on a Zen 5): GPTQ 1 thread 1.7 s");
    println!("Hessian + 4.7 s solve, 2 threads 1.0 s + 3.1 s; X^T X (numpy/OpenBLAS, 1 thread) 0.4-0.5 s.");
}
