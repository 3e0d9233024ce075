//! The main job: what every method of `quant` does to real transformer weights.
//!
//! On the bundled all-MiniLM-L6-v2 layers (`tests/data/minilm`), each method quantizes the weight
//! (the calibration-based ones calibrate on the first 1024 tokens of the layer's real input), and the
//! demo prints its effective bits (codes plus scales and zero points), its compression against FP16,
//! the relative output error `||X W^T - X Q(W)^T||^2 / ||X W^T||^2` on the other 1024 tokens, and its
//! throughput (weights quantized per second, single call, this machine).
//!
//! The tables go to stdout; progress (one line per layer) goes to stderr, so that
//! `cargo run --release --example demo > results.txt` keeps the tables clean.
//!
//! Run: `cargo run --release --example demo`
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use quant::algos::QuantOptions;
use quant::calib::Calibration;
use quant::kernels::{half, par, simd};
use quant::method::QuantMethod;
use quant::weight;

#[path = "../tests/common/mod.rs"]
mod common;
use common::{OutputMeter, LAYERS};

/// One row of the demo: a name, what it costs per weight, and how to run it.
struct Method {
    label: String,
    /// `None` for the plain casts, which are not quantization methods.
    method: Option<QuantMethod>,
    options: QuantOptions,
    /// Effective bits for the plain casts.
    cast_bits: f64,
}

fn methods() -> Vec<Method> {
    let q = |label: &str, method: QuantMethod| Method {
        label: label.to_string(),
        method: Some(method),
        options: QuantOptions::default(),
        cast_bits: 0.0,
    };
    let cast = |label: &str| Method {
        label: label.to_string(),
        method: None,
        options: QuantOptions::default(),
        cast_bits: 16.0,
    };
    let act_order = QuantOptions {
        act_order: true,
        ..QuantOptions::default()
    };
    vec![
        cast("FP16 cast"),
        cast("BF16 cast"),
        q(
            "FP8-E4M3 per tensor",
            QuantMethod::Fp8E4m3 { group_size: 0 },
        ),
        q(
            "FP8-E4M3 per channel",
            QuantMethod::Fp8E4m3 { group_size: 0 },
        ),
        q(
            "INT8 per channel",
            QuantMethod::Int8Symmetric { group_size: 0 },
        ),
        q("INT8 g128", QuantMethod::Int8Symmetric { group_size: 128 }),
        q(
            "SmoothQuant a=0.5 (W8)",
            QuantMethod::SmoothQuant {
                alpha: 0.5,
                group_size: 0,
            },
        ),
        q(
            "INT4 g128 (RTN)",
            QuantMethod::Int4Asymmetric { group_size: 128 },
        ),
        q(
            "AWQ 4bit g128",
            QuantMethod::Awq {
                group_size: 128,
                bits: 4,
            },
        ),
        q(
            "GPTQ 4bit g128",
            QuantMethod::Gptq {
                group_size: 128,
                bits: 4,
            },
        ),
        Method {
            options: act_order.clone(),
            ..q(
                "GPTQ 4bit g128 act-order",
                QuantMethod::Gptq {
                    group_size: 128,
                    bits: 4,
                },
            )
        },
        q(
            "GPTQ 3bit g128",
            QuantMethod::Gptq {
                group_size: 128,
                bits: 3,
            },
        ),
        Method {
            options: act_order,
            ..q(
                "GPTQ 3bit g128 act-order",
                QuantMethod::Gptq {
                    group_size: 128,
                    bits: 3,
                },
            )
        },
    ]
}

/// Runs `f` repeatedly for at least `budget` (and at least 3 times); returns the fastest call.
fn fastest<T>(budget: Duration, mut f: impl FnMut() -> T) -> (T, Duration) {
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut runs = 0;
    let mut last = None;
    while runs < 3 || start.elapsed() < budget {
        let t = Instant::now();
        last = Some(f());
        best = best.min(t.elapsed());
        runs += 1;
    }
    (last.expect("ran at least once"), best)
}

/// Quantizes `w` with `m` and returns the effective weight (dequantized) and the time of one call.
fn run(
    m: &Method,
    w: &[f32],
    rows: usize,
    cols: usize,
    calib: &Calibration,
) -> Result<(Vec<f32>, Duration), String> {
    let budget = Duration::from_millis(300);
    match &m.method {
        None => {
            let mut codes = vec![0u16; w.len()];
            let mut back = vec![0f32; w.len()];
            let bf16 = m.label.starts_with("BF16");
            let (_, t) = fastest(budget, || {
                if bf16 {
                    half::f32_to_bf16(w, &mut codes)
                } else {
                    half::f32_to_f16(w, &mut codes)
                }
            });
            if bf16 {
                half::bf16_to_f32(&codes, &mut back).map_err(|e| e.to_string())?;
            } else {
                half::f16_to_f32(&codes, &mut back).map_err(|e| e.to_string())?;
            }
            Ok((back, t))
        }
        Some(method) => {
            // Per tensor = one group over the whole matrix viewed as a single row.
            let (r, c) = if m.label.contains("per tensor") {
                (1, rows * cols)
            } else {
                (rows, cols)
            };
            let calib = method.needs_calibration().then_some(calib);
            let budget = if method.needs_calibration() {
                Duration::ZERO
            } else {
                budget
            };
            let (q, t) = fastest(budget, || {
                weight::quantize(method, &m.options, w, r, c, calib)
            });
            let q = q.map_err(|e| e.to_string())?;
            Ok((q.dequantize_to_vec().map_err(|e| e.to_string())?, t))
        }
    }
}

fn effective_bits(m: &Method, rows: usize, cols: usize) -> f64 {
    match &m.method {
        None => m.cast_bits,
        Some(method) if m.label.contains("per tensor") => {
            method.effective_bits(rows * cols).unwrap_or(f64::NAN)
        }
        Some(method) => method.effective_bits(cols).unwrap_or(f64::NAN),
    }
}

/// A column label such as "L0.attn_out" for "encoder.layer.0.attention.output.dense".
fn short_name(name: &str) -> String {
    let layer = name.split('.').nth(2).unwrap_or("?");
    let part = match name
        .split_once(&format!("layer.{layer}."))
        .map(|(_, p)| p)
        .unwrap_or(name)
    {
        "attention.self.query" => "query",
        "attention.self.value" => "value",
        "attention.output.dense" => "attn_out",
        "intermediate.dense" => "ffn_up",
        "output.dense" => "ffn_down",
        other => other,
    };
    format!("L{layer}.{part}")
}

/// Progress on stderr: on a terminal one line rewritten in place, elsewhere (a log) one line per
/// layer.
struct Progress {
    tty: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// What is being done now (terminal only).
    fn show(&self, what: &str) {
        if self.tty {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K{what}");
            let _ = e.flush();
        }
    }

    /// Erases the line of `show` (before printing to stdout, which may be the same terminal).
    fn clear(&self) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
    }

    /// A step finished: its line stays.
    fn done(&self, what: &str) {
        self.clear();
        eprintln!("{what}");
    }
}

fn main() {
    let methods = methods();
    let calib_tokens = 1024;
    println!(
        "quant {} demo: real all-MiniLM-L6-v2 layers (tests/data/minilm)",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "calibration on tokens 0..{calib_tokens} of each layer's real input, error measured on tokens {calib_tokens}..2048"
    );
    println!("error = ||X W^T - X Q(W)^T||^2 / ||X W^T||^2; compression against FP16; speed = weights quantized per second (one call)");
    // The speeds depend on both: the SIMD level chosen for this CPU (QUANT_SIMD forces another) and
    // the kernels' thread count (quant_set_threads; 0 = all cores).
    let threads = match par::threads() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    println!(
        "SIMD level: {}; kernel threads: {threads}\n",
        simd::simd_level().name()
    );

    let progress = Progress::new();
    let started = Instant::now();

    // errors[method][layer]
    let mut errors = vec![Vec::new(); methods.len()];
    for (li, layer) in LAYERS.iter().enumerate() {
        let layer_start = Instant::now();
        progress.show(&format!(
            "[{}/{}] {}: loading",
            li + 1,
            LAYERS.len(),
            layer.name
        ));
        let w = layer.weight();
        let x = layer.activations();
        let (x_cal, x_eval) = x.split_at(calib_tokens * layer.cols);
        let t = Instant::now();
        let mut calib = Calibration::new(layer.cols).expect("calibration");
        calib
            .add(x_cal, calib_tokens, layer.cols)
            .expect("calibration data");
        let calib_time = t.elapsed();
        let meter = OutputMeter::new(x_eval, layer.cols);
        let w_norm = meter.sq_norm_f32(&w);
        let detailed = li == 2; // the layer whose full table is printed
        if detailed {
            progress.clear();
            println!(
                "{} ({} x {}), calibration statistics in {:.1} ms",
                layer.name,
                layer.rows,
                layer.cols,
                calib_time.as_secs_f64() * 1e3
            );
            println!(
                "{:<28} {:>9} {:>12} {:>14} {:>16}",
                "method", "eff.bits", "compression", "output error", "M weights/s"
            );
        }
        for (mi, m) in methods.iter().enumerate() {
            progress.show(&format!(
                "[{}/{}] {}: {} ({}/{})",
                li + 1,
                LAYERS.len(),
                layer.name,
                m.label,
                mi + 1,
                methods.len()
            ));
            match run(m, &w, layer.rows, layer.cols, &calib) {
                Ok((q, time)) => {
                    let err = meter.relative_error(&w, &q, w_norm);
                    errors[mi].push(Some(err));
                    if detailed {
                        progress.clear();
                        let bits = effective_bits(m, layer.rows, layer.cols);
                        let rate = (layer.rows * layer.cols) as f64 / time.as_secs_f64() / 1e6;
                        println!(
                            "{:<28} {:>9.3} {:>11.2}x {:>14.3e} {:>16.1}",
                            m.label,
                            bits,
                            16.0 / bits,
                            err,
                            rate
                        );
                    }
                }
                Err(e) => {
                    errors[mi].push(None);
                    if detailed {
                        progress.clear();
                        println!("{:<28} not available: {e}", m.label);
                    }
                }
            }
        }
        if detailed {
            println!();
        }
        progress.done(&format!(
            "[{}/{}] {} ({} x {}): {} methods in {:.1} s",
            li + 1,
            LAYERS.len(),
            layer.name,
            layer.rows,
            layer.cols,
            methods.len(),
            layer_start.elapsed().as_secs_f64()
        ));
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());

    println!("relative output error on every bundled layer (held-out tokens):");
    print!("{:<28}", "method");
    for layer in LAYERS.iter() {
        print!(" {:>12}", short_name(layer.name));
    }
    println!();
    for (m, errs) in methods.iter().zip(&errors) {
        print!("{:<28}", m.label);
        for e in errs {
            match e {
                Some(e) => print!(" {:>12.3e}", e),
                None => print!(" {:>12}", "n/a"),
            }
        }
        println!();
    }
}
