//! Block-scaled FP8 E4M3 (DeepSeek-V3's `weight` + `weight_scale_inv`): every byte, scale and
//! decoded value of the fixtures in `tests/data/blockfp8` (written by scripts/gen_blockfp8_fixtures.py
//! from DeepSeek-V3's formulas evaluated with torch on the CPU), the fast kernels against the scalar
//! references at every SIMD level and thread count, the error paths, and the error on the real MiniLM
//! layers.
mod common;

use std::path::PathBuf;

use quant::error::QuantError;
use quant::kernels::fp8::{
    fp8_block_dequantize, fp8_block_dequantize_ref, fp8_block_quantize, fp8_block_quantize_ref,
    fp8_block_scale_count, fp8_e4m3_quantize, BlockShape,
};
use quant::kernels::par::with_threads;
use quant::kernels::simd::{available_levels, with_simd_level};
use quant::kernels::source::Src;
use quant::kernels::Shape;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/blockfp8")
}

fn read(name: &str) -> Vec<u8> {
    let p = dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn u16s(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// The value of a JSON field of one case in the manifest (a flat object of strings and integers),
/// read without a JSON dependency.
fn field<'a>(case: &'a str, key: &str) -> Option<&'a str> {
    let at = case.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = case[at..].trim_start();
    let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"'))
}

struct Case {
    name: String,
    shape: BlockShape,
    dtype: String,
    /// The source as stored: f32 values, or raw 16-bit bits.
    f32_in: Vec<f32>,
    u16_in: Vec<u16>,
    codes: Vec<u8>,
    scale_inv: Vec<f32>,
    deq: Vec<f32>,
}

impl Case {
    fn src(&self) -> Src<'_> {
        match self.dtype.as_str() {
            "f32" => Src::F32(&self.f32_in),
            "f16" => Src::F16(&self.u16_in),
            "bf16" => Src::Bf16(&self.u16_in),
            other => panic!("dtype {other}"),
        }
    }

    /// The source's values as f32 (exact for the 16-bit types).
    fn values(&self) -> Vec<f32> {
        match self.dtype.as_str() {
            "f32" => self.f32_in.clone(),
            "f16" => self
                .u16_in
                .iter()
                .map(|&h| half::f16::from_bits(h).to_f32())
                .collect(),
            _ => self
                .u16_in
                .iter()
                .map(|&h| f32::from_bits(u32::from(h) << 16))
                .collect(),
        }
    }
}

fn cases() -> Vec<Case> {
    let manifest = String::from_utf8(read("manifest.json")).unwrap();
    let body = &manifest[manifest.find("\"cases\"").expect("cases")..];
    let mut out = Vec::new();
    for case in body.split('{').skip(1) {
        let num = |k: &str| field(case, k).unwrap().parse::<usize>().unwrap();
        let name = field(case, "name").unwrap().to_string();
        let dtype = field(case, "dtype").unwrap().to_string();
        let shape = BlockShape::new(
            num("rows"),
            num("cols"),
            num("block_rows"),
            num("block_cols"),
        )
        .unwrap();
        let (mut f32_in, mut u16_in) = (Vec::new(), Vec::new());
        if let Some(w) = field(case, "minilm") {
            let all = common::read_f32(w);
            f32_in = all[..shape.len()].to_vec();
        } else if dtype == "f32" {
            f32_in = f32s(&read(&format!("{name}.in.f32")));
        } else {
            u16_in = u16s(&read(&format!("{name}.in.{dtype}")));
        }
        out.push(Case {
            codes: read(&format!("{name}.codes.u8")),
            scale_inv: f32s(&read(&format!("{name}.scale_inv.f32"))),
            deq: f32s(&read(&format!("{name}.deq.f32"))),
            name,
            shape,
            dtype,
            f32_in,
            u16_in,
        });
    }
    assert!(out.len() >= 12, "manifest lists {} cases", out.len());
    out
}

fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            a.to_bits() == b.to_bits(),
            "{what}[{i}]: {a:e} ({:#x}) but torch gives {b:e} ({:#x})",
            a.to_bits(),
            b.to_bits()
        );
    }
}

fn assert_codes(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}[{i}]: code {:#04x} but torch gives {:#04x}",
            got[i], want[i]
        );
    }
}

#[test]
fn fixtures_are_bit_exact_with_torch() {
    for c in cases() {
        let (n, nb) = (c.shape.len(), c.shape.n_blocks());
        assert_eq!(
            fp8_block_scale_count(
                c.shape.rows,
                c.shape.cols,
                c.shape.block_rows,
                c.shape.block_cols
            ),
            nb
        );
        for level in available_levels() {
            for threads in [1, 3] {
                let (mut q, mut s) = (vec![0xAAu8; n], vec![f32::NAN; nb]);
                with_simd_level(level, || {
                    with_threads(threads, || {
                        fp8_block_quantize(c.src(), c.shape, &mut q, &mut s).unwrap()
                    })
                    .unwrap()
                })
                .unwrap();
                let what = format!("{} {level:?} {threads}t", c.name);
                assert_codes(&format!("{what} codes"), &q, &c.codes);
                assert_bits(&format!("{what} scale_inv"), &s, &c.scale_inv);
                let mut d = vec![f32::NAN; n];
                with_simd_level(level, || {
                    with_threads(threads, || {
                        fp8_block_dequantize(&q, &s, c.shape, &mut d).unwrap()
                    })
                    .unwrap()
                })
                .unwrap();
                assert_bits(&format!("{what} dequantized"), &d, &c.deq);
            }
        }
        // The scalar references, on the same values as f32.
        let x = c.values();
        let (mut q, mut s, mut d) = (vec![0u8; n], vec![0f32; nb], vec![0f32; n]);
        fp8_block_quantize_ref(&x, c.shape, &mut q, &mut s).unwrap();
        assert_codes(&format!("{} ref codes", c.name), &q, &c.codes);
        assert_bits(&format!("{} ref scale_inv", c.name), &s, &c.scale_inv);
        fp8_block_dequantize_ref(&c.codes, &c.scale_inv, c.shape, &mut d).unwrap();
        assert_bits(&format!("{} ref dequantized", c.name), &d, &c.deq);
        // Blocks of 1 x k are the grouped quantizer with groups of k (DeepSeek-V3's act_quant).
        if c.shape.block_rows == 1 {
            let shape = Shape::new(c.shape.rows, c.shape.cols, c.shape.block_cols).unwrap();
            let (mut q, mut s) = (vec![0u8; n], vec![0f32; nb]);
            fp8_e4m3_quantize(&x, shape, &mut q, &mut s).unwrap();
            assert_codes(&format!("{} grouped codes", c.name), &q, &c.codes);
            assert_bits(&format!("{} grouped scales", c.name), &s, &c.scale_inv);
        }
    }
}

/// Deterministic pseudo-random f32 of wide range (xorshift; a few exact zeros).
fn wide(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let m = ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
            let e = ((s >> 3) % 40) as i32 - 30;
            if s % 97 == 0 {
                0.0
            } else {
                (m * 2f64.powi(e)) as f32
            }
        })
        .collect()
}

#[test]
fn fast_paths_equal_the_reference() {
    let shapes = [
        (1, 1, 128, 128),
        (3, 517, 128, 128),
        (257, 130, 128, 128),
        (300, 300, 1, 128),
        (64, 96, 7, 33),
        (40, 40, 1000, 1000),
        // Several chunks of side-by-side blocks per band, the last one partial.
        (130, 2100, 128, 128),
        (5, 3000, 2, 16),
    ];
    for (seed, &(rows, cols, br, bc)) in shapes.iter().enumerate() {
        let shape = BlockShape::new(rows, cols, br, bc).unwrap();
        let (n, nb) = (shape.len(), shape.n_blocks());
        let x = wide(n, seed as u64 + 11);
        let (mut q0, mut s0, mut d0) = (vec![0u8; n], vec![0f32; nb], vec![0f32; n]);
        fp8_block_quantize_ref(&x, shape, &mut q0, &mut s0).unwrap();
        fp8_block_dequantize_ref(&q0, &s0, shape, &mut d0).unwrap();
        let bf: Vec<u16> = x
            .iter()
            .map(|v| half::bf16::from_f32(*v).to_bits())
            .collect();
        let xb: Vec<f32> = bf
            .iter()
            .map(|&h| f32::from_bits(u32::from(h) << 16))
            .collect();
        let (mut qb, mut sb) = (vec![0u8; n], vec![0f32; nb]);
        fp8_block_quantize_ref(&xb, shape, &mut qb, &mut sb).unwrap();
        for level in available_levels() {
            for threads in [1, 2, 5] {
                let run = |f: &mut dyn FnMut()| {
                    with_simd_level(level, || with_threads(threads, f).unwrap()).unwrap()
                };
                let (mut q, mut s, mut d) = (vec![0u8; n], vec![0f32; nb], vec![0f32; n]);
                run(&mut || fp8_block_quantize(Src::F32(&x), shape, &mut q, &mut s).unwrap());
                assert_eq!(q, q0, "{shape:?} {level:?} {threads}t codes");
                assert_bits("scale_inv", &s, &s0);
                run(&mut || fp8_block_dequantize(&q, &s, shape, &mut d).unwrap());
                assert_bits("dequantized", &d, &d0);
                run(&mut || fp8_block_quantize(Src::Bf16(&bf), shape, &mut q, &mut s).unwrap());
                assert_eq!(q, qb, "{shape:?} {level:?} {threads}t bf16 codes");
                assert_bits("bf16 scale_inv", &s, &sb);
            }
        }
    }
}

#[test]
fn round_trip_is_within_half_a_step() {
    let shape = BlockShape::deepseek(200, 300).unwrap();
    let x = wide(shape.len(), 5);
    let (mut q, mut s, mut d) = (
        vec![0u8; shape.len()],
        vec![0f32; shape.n_blocks()],
        vec![0f32; shape.len()],
    );
    fp8_block_quantize(Src::F32(&x), shape, &mut q, &mut s).unwrap();
    fp8_block_dequantize(&q, &s, shape, &mut d).unwrap();
    let across = shape.grid().1;
    for i in 0..shape.len() {
        let (r, c) = (i / shape.cols, i % shape.cols);
        let si = s[(r / 128) * across + c / 128] as f64;
        let (a, b) = (x[i] as f64, d[i] as f64);
        // E4M3 has 3 significand bits: half a step is 2^-4 of the magnitude in the normal range,
        // and half the subnormal step 2^-10 (times the scale) below it.
        let bound = (a.abs() / 16.0).max(si * 2f64.powi(-10)) * (1.0 + 1e-6);
        assert!((a - b).abs() <= bound, "{i}: {a} -> {b} (scale {si})");
    }
    // Idempotent: the decoded matrix quantizes to the same codes and scales.
    let (mut q2, mut s2) = (vec![0u8; shape.len()], vec![0f32; shape.n_blocks()]);
    fp8_block_quantize(Src::F32(&d), shape, &mut q2, &mut s2).unwrap();
    assert_eq!(q2, q);
    assert_bits("requantized scale_inv", &s2, &s);
}

#[test]
fn errors_write_nothing_or_zero_fill() {
    let shape = BlockShape::deepseek(130, 260).unwrap();
    let (n, nb) = (shape.len(), shape.n_blocks());
    let mut x = wide(n, 9);
    // Argument errors: nothing written.
    let (mut q, mut s) = (vec![7u8; n], vec![3f32; nb]);
    let e = fp8_block_quantize(Src::F32(&x), shape, &mut q[..n - 1], &mut s).unwrap_err();
    assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e}");
    let e = fp8_block_quantize(Src::F32(&x), shape, &mut q, &mut s[..nb - 1]).unwrap_err();
    assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e}");
    let e = fp8_block_quantize(Src::F32(&x[1..]), shape, &mut q, &mut s).unwrap_err();
    assert!(matches!(e, QuantError::ShapeMismatch(_)), "{e}");
    assert!(q.iter().all(|&c| c == 7) && s.iter().all(|&v| v == 3.0));
    assert!(BlockShape::new(0, 5, 128, 128).is_err());
    assert!(BlockShape::new(5, 5, 0, 128).is_err());
    assert!(BlockShape::new(5, 5, 128, 0).is_err());
    assert_eq!(fp8_block_scale_count(5, 5, 0, 1), 0);
    assert_eq!(fp8_block_scale_count(257, 129, 128, 128), 6);
    // Value errors: outputs zero-filled, the first bad index named, at every level and thread count.
    x[200 + 129 * 260] = f32::NEG_INFINITY;
    x[n - 1] = f32::NAN;
    let first = 200 + 129 * 260;
    for level in available_levels() {
        for threads in [1, 2] {
            let (mut q, mut s) = (vec![7u8; n + 3], vec![3f32; nb + 2]);
            let e = with_simd_level(level, || {
                with_threads(threads, || {
                    fp8_block_quantize(Src::F32(&x), shape, &mut q, &mut s).unwrap_err()
                })
                .unwrap()
            })
            .unwrap();
            match e {
                QuantError::NonFinite { index, .. } => assert_eq!(index, first),
                other => panic!("{other}"),
            }
            assert!(q[..n].iter().all(|&c| c == 0) && q[n..].iter().all(|&c| c == 7));
            assert!(s[..nb].iter().all(|&v| v == 0.0) && s[nb..].iter().all(|&v| v == 3.0));
        }
    }
    let bf: Vec<u16> = x
        .iter()
        .map(|v| half::bf16::from_f32(*v).to_bits())
        .collect();
    let e = fp8_block_quantize(Src::Bf16(&bf), shape, &mut q, &mut s).unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { index, .. } if index == first));
    // Dequantize: a non-finite scale or a short buffer writes nothing.
    let mut d = vec![5f32; n];
    let mut bad = vec![1f32; nb];
    bad[2] = f32::INFINITY;
    let e = fp8_block_dequantize(&q, &bad, shape, &mut d).unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { index: 2, .. }), "{e}");
    let e = fp8_block_dequantize(&q, &s, shape, &mut d[..n - 1]).unwrap_err();
    assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e}");
    let e = fp8_block_dequantize(&q[..n - 1], &s, shape, &mut d).unwrap_err();
    assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e}");
    assert!(d.iter().all(|&v| v == 5.0));
}

/// The relative output error `||X W^T - X Q(W)^T||^2 / ||X W^T||^2` of 128 x 128 block FP8 on every
/// bundled MiniLM layer (its 2048 real input tokens). E4M3's relative step is the same at every
/// scale, so blocks change the error only through which small values fall into the subnormal range:
/// it stays within 25% of one scale for the whole matrix (the README's FP8 column), and below the
/// stated bound.
#[test]
fn real_layers_error() {
    const BOUND: f64 = 7.0e-4;
    let mut worst = 0f64;
    for l in common::LAYERS {
        let w = l.weight();
        let x = l.activations();
        let meter = common::OutputMeter::new(&x, l.cols);
        let shape = BlockShape::deepseek(l.rows, l.cols).unwrap();
        let (mut q, mut s, mut d) = (
            vec![0u8; shape.len()],
            vec![0f32; shape.n_blocks()],
            vec![0f32; shape.len()],
        );
        fp8_block_quantize(Src::F32(&w), shape, &mut q, &mut s).unwrap();
        fp8_block_dequantize(&q, &s, shape, &mut d).unwrap();
        let err = meter.relative_error(&w, &d, meter.sq_norm_f32(&w));
        println!(
            "block FP8 128x128 {:<40} {:.4e} (FP8 per tensor {:.4e})",
            l.name, err, l.fp8_per_tensor
        );
        assert!(err <= l.fp8_per_tensor * 1.25, "{}: {err:e}", l.name);
        worst = worst.max(err);
    }
    println!("block FP8 128x128 worst {worst:.4e} (bound {BOUND:.1e})");
    assert!(worst > 0.0 && worst <= BOUND, "{worst:e}");
}
