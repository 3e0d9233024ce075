//! MX (MXFP8 E4M3/E5M2, MXFP6 E2M3/E3M2, MXFP4, MXINT8) and NVFP4 against their references, byte for
//! byte and value for value: the fixtures of `tests/data/mx` (numpy + ml_dtypes for MX,
//! compressed-tensors for NVFP4; `scripts/gen-mx-fixtures.sh`), the scalar references (`*_ref`)
//! against the fast paths, the f16/bf16 source forms, the error contract, and the error on the real
//! layers of `tests/data/minilm` against stated bounds.
mod common;

use ::half::{bf16, f16};
use common::{OutputMeter, LAYERS};
use proptest::prelude::*;
use quant::kernels::mx::nvfp4::{
    nvfp4_dequantize, nvfp4_dequantize_ref, nvfp4_global_scale, nvfp4_packed_size, nvfp4_quantize,
    nvfp4_quantize_ref, nvfp4_quantize_with_global, nvfp4_scale_count,
};
use quant::kernels::mx::{
    mx_dequantize, mx_dequantize_ref, mx_packed_size, mx_quantize, mx_quantize_ref, mx_scale_count,
    MxElem,
};
use quant::kernels::simd::{available_levels, with_simd_level};
use quant::kernels::source::{
    mx_quantize_src, nvfp4_quantize_src, nvfp4_quantize_src_with_global, Src,
};
use quant::QuantError;

type MxQuantize = fn(MxElem, &[f32], usize, usize, &mut [u8], &mut [u8]) -> quant::Result<()>;
type MxDequantize = fn(MxElem, &[u8], &[u8], usize, usize, &mut [f32]) -> quant::Result<()>;
type Nvfp4Quantize = fn(&[f32], usize, usize, &mut [u8], &mut [u8]) -> quant::Result<f32>;
type Nvfp4Dequantize = fn(&[u8], &[u8], f32, usize, usize, &mut [f32]) -> quant::Result<()>;

fn data(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/mx")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// `(rows, cols, values)` of `input_<m>.bin`.
fn input(m: &str) -> (usize, usize, Vec<f32>) {
    let b = data(&format!("input_{m}.bin"));
    let (rows, cols) = (u32_at(&b, 0), u32_at(&b, 4));
    let x = f32s(&b[8..]);
    assert_eq!(x.len(), rows * cols);
    (rows, cols, x)
}

/// The reference of one format on one input: codes, scales, decoded values (and NVFP4's global scale).
struct Expected {
    codes: Vec<u8>,
    scales: Vec<u8>,
    decoded: Vec<f32>,
    global: Option<f32>,
}

fn expected(file: &str, with_global: bool) -> Expected {
    let b = data(file);
    let (nc, ns) = (u32_at(&b, 0), u32_at(&b, 4));
    let mut at = 8;
    let global = with_global.then(|| {
        at += 4;
        f32::from_le_bytes(b[8..12].try_into().unwrap())
    });
    let codes = b[at..at + nc].to_vec();
    let scales = b[at + nc..at + nc + ns].to_vec();
    let decoded = f32s(&b[at + nc + ns..]);
    Expected {
        codes,
        scales,
        decoded,
        global,
    }
}

fn fixture_name(elem: MxElem) -> &'static str {
    match elem {
        MxElem::Fp8E4m3 => "mxfp8_e4m3",
        MxElem::Fp8E5m2 => "mxfp8_e5m2",
        MxElem::Fp6E2m3 => "mxfp6_e2m3",
        MxElem::Fp6E3m2 => "mxfp6_e3m2",
        MxElem::Fp4E2m1 => "mxfp4_e2m1",
        MxElem::Int8 => "mxint8",
    }
}

fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits(), "{what}[{i}]: {g:e} vs {w:e}");
    }
}

/// Runs `f` at every SIMD level the CPU has (each fast path compiled for it).
fn at_every_level(f: impl Fn()) {
    for level in available_levels() {
        with_simd_level(level, &f).unwrap();
    }
}

#[test]
fn mx_is_bit_exact_with_ml_dtypes() {
    at_every_level(mx_fixtures);
}

fn mx_fixtures() {
    for m in ["a", "b", "c"] {
        let (rows, cols, x) = input(m);
        for elem in MxElem::all() {
            let what = format!("{} on {m}", elem.name());
            let want = expected(&format!("{}_{m}.bin", fixture_name(elem)), false);
            assert_eq!(want.codes.len(), mx_packed_size(elem, rows, cols), "{what}");
            assert_eq!(want.scales.len(), mx_scale_count(rows, cols), "{what}");
            for (name, f) in [
                ("fast", mx_quantize as MxQuantize),
                ("ref", mx_quantize_ref),
            ] {
                let mut codes = vec![0u8; want.codes.len()];
                let mut scales = vec![0u8; want.scales.len()];
                f(elem, &x, rows, cols, &mut codes, &mut scales).unwrap();
                assert_eq!(codes, want.codes, "{what} codes ({name})");
                assert_eq!(scales, want.scales, "{what} scales ({name})");
            }
            for (name, f) in [
                ("fast", mx_dequantize as MxDequantize),
                ("ref", mx_dequantize_ref),
            ] {
                let mut y = vec![0f32; rows * cols];
                f(elem, &want.codes, &want.scales, rows, cols, &mut y).unwrap();
                assert_bits(&format!("{what} decoded ({name})"), &y, &want.decoded);
            }
        }
    }
}

#[test]
fn nvfp4_is_bit_exact_with_compressed_tensors() {
    at_every_level(nvfp4_fixtures);
}

fn nvfp4_fixtures() {
    for m in ["a", "b", "c"] {
        let (rows, cols, x) = input(m);
        let want = expected(&format!("nvfp4_{m}.bin"), true);
        assert_eq!(want.codes.len(), nvfp4_packed_size(rows, cols), "{m}");
        assert_eq!(want.scales.len(), nvfp4_scale_count(rows, cols), "{m}");
        for (name, f) in [
            ("fast", nvfp4_quantize as Nvfp4Quantize),
            ("ref", nvfp4_quantize_ref),
        ] {
            let mut codes = vec![0u8; want.codes.len()];
            let mut scales = vec![0u8; want.scales.len()];
            let g = f(&x, rows, cols, &mut codes, &mut scales).unwrap();
            assert_eq!(
                g.to_bits(),
                want.global.unwrap().to_bits(),
                "{m} global ({name})"
            );
            assert_eq!(codes, want.codes, "{m} codes ({name})");
            assert_eq!(scales, want.scales, "{m} scales ({name})");
        }
        let g = want.global.unwrap();
        for (name, f) in [
            ("fast", nvfp4_dequantize as Nvfp4Dequantize),
            ("ref", nvfp4_dequantize_ref),
        ] {
            let mut y = vec![0f32; rows * cols];
            f(&want.codes, &want.scales, g, rows, cols, &mut y).unwrap();
            assert_bits(&format!("nvfp4 {m} decoded ({name})"), &y, &want.decoded);
        }
    }
}

#[test]
fn nvfp4_under_a_given_global_scale_is_bit_exact_with_compressed_tensors() {
    at_every_level(|| {
        for (file, m) in [("nvfp4_given3_b.bin", "b"), ("nvfp4_given8th_c.bin", "c")] {
            let (rows, cols, x) = input(m);
            let want = expected(file, true);
            let g = want.global.unwrap();
            let (as_f16, h, b) = sixteen_bit(&x);
            let mut codes = vec![0u8; want.codes.len()];
            let mut scales = vec![0u8; want.scales.len()];
            nvfp4_quantize_with_global(&x, rows, cols, g, &mut codes, &mut scales).unwrap();
            assert_eq!(codes, want.codes, "{file} codes");
            assert_eq!(scales, want.scales, "{file} scales");
            let mut y = vec![0f32; rows * cols];
            nvfp4_dequantize(&codes, &scales, g, rows, cols, &mut y).unwrap();
            assert_bits(&format!("{file} decoded"), &y, &want.decoded);
            // The source forms: f32 as it is, and a 16-bit source as its values in f32.
            let (mut c2, mut s2) = (vec![0u8; codes.len()], vec![0u8; scales.len()]);
            nvfp4_quantize_src_with_global(Src::F32(&x), rows, cols, g, &mut c2, &mut s2).unwrap();
            assert_eq!((&c2, &s2), (&codes, &scales), "{file} f32 source");
            if m == "b" {
                let bf: Vec<f32> = b.iter().map(|&v| bf16::from_bits(v).to_f32()).collect();
                for (src, as_f32) in [(Src::F16(&h), &as_f16), (Src::Bf16(&b), &bf)] {
                    let (mut c1, mut s1) = (vec![0u8; codes.len()], vec![0u8; scales.len()]);
                    nvfp4_quantize_with_global(as_f32, rows, cols, g, &mut c1, &mut s1).unwrap();
                    nvfp4_quantize_src_with_global(src, rows, cols, g, &mut c2, &mut s2).unwrap();
                    assert_eq!((&c2, &s2), (&c1, &s1), "{file} 16-bit source");
                }
            }
        }
    });
}

#[test]
fn nvfp4_under_its_own_global_scale_equals_the_two_pass_quantizer() {
    for m in ["a", "b", "c"] {
        let (rows, cols, x) = input(m);
        let n = (nvfp4_packed_size(rows, cols), nvfp4_scale_count(rows, cols));
        let (mut c1, mut s1) = (vec![0u8; n.0], vec![0u8; n.1]);
        let (mut c2, mut s2) = (vec![0u8; n.0], vec![0u8; n.1]);
        let g = nvfp4_quantize(&x, rows, cols, &mut c1, &mut s1).unwrap();
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        assert_eq!(g.to_bits(), nvfp4_global_scale(amax).to_bits(), "{m}");
        nvfp4_quantize_with_global(&x, rows, cols, g, &mut c2, &mut s2).unwrap();
        assert_eq!((c1, s1), (c2, s2), "{m}");
    }
    // A global scale that is not finite and > 0 writes nothing, from any source.
    let x = vec![1.0f32; 32];
    let h = vec![0x3C00u16; 32];
    for g in [0.0, -2.0, f32::NAN, f32::INFINITY] {
        let (mut c, mut s) = (vec![7u8; 16], vec![7u8; 2]);
        let e = nvfp4_quantize_with_global(&x, 1, 32, g, &mut c, &mut s).unwrap_err();
        assert!(matches!(e, QuantError::InvalidArgument(_)), "{e:?}");
        let e = nvfp4_quantize_src_with_global(Src::F16(&h), 1, 32, g, &mut c, &mut s).unwrap_err();
        assert!(matches!(e, QuantError::InvalidArgument(_)), "{e:?}");
        assert!(c.iter().chain(&s).all(|&v| v == 7));
    }
}

fn sixteen_bit(x: &[f32]) -> (Vec<f32>, Vec<u16>, Vec<u16>) {
    let h: Vec<u16> = x.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    let b: Vec<u16> = x.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
    let hf = h.iter().map(|&v| f16::from_bits(v).to_f32()).collect();
    (hf, h, b)
}

#[test]
fn sixteen_bit_sources_equal_their_f32_values() {
    let (rows, cols, x) = input("c");
    let x: Vec<f32> = x.iter().map(|v| v.clamp(-6e4, 6e4)).collect();
    let (hf, h, b) = sixteen_bit(&x);
    let bf: Vec<f32> = b.iter().map(|&v| bf16::from_bits(v).to_f32()).collect();
    for elem in MxElem::all() {
        for (src, as_f32) in [(Src::F16(&h), &hf), (Src::Bf16(&b), &bf)] {
            let n = (mx_packed_size(elem, rows, cols), mx_scale_count(rows, cols));
            let (mut c1, mut s1) = (vec![0u8; n.0], vec![0u8; n.1]);
            let (mut c2, mut s2) = (vec![0u8; n.0], vec![0u8; n.1]);
            mx_quantize(elem, as_f32, rows, cols, &mut c1, &mut s1).unwrap();
            mx_quantize_src(elem, src, rows, cols, &mut c2, &mut s2).unwrap();
            assert_eq!((c1, s1), (c2, s2), "{}", elem.name());
        }
    }
    for (src, as_f32) in [(Src::F16(&h), &hf), (Src::Bf16(&b), &bf)] {
        let n = (nvfp4_packed_size(rows, cols), nvfp4_scale_count(rows, cols));
        let (mut c1, mut s1) = (vec![0u8; n.0], vec![0u8; n.1]);
        let (mut c2, mut s2) = (vec![0u8; n.0], vec![0u8; n.1]);
        let g1 = nvfp4_quantize(as_f32, rows, cols, &mut c1, &mut s1).unwrap();
        let g2 = nvfp4_quantize_src(src, rows, cols, &mut c2, &mut s2).unwrap();
        assert_eq!((g1.to_bits(), c1, s1), (g2.to_bits(), c2, s2));
    }
}

#[test]
fn errors_follow_the_contract() {
    let x = vec![1.0f32; 64];
    for elem in MxElem::all() {
        let n = mx_packed_size(elem, 2, 32);
        let (mut c, mut s) = (vec![7u8; n], vec![7u8; 2]);
        // Argument errors write nothing.
        let e = mx_quantize(elem, &x, 2, 32, &mut c[..n - 1], &mut s).unwrap_err();
        assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e:?}");
        let e = mx_quantize(elem, &x, 2, 32, &mut c, &mut s[..1]).unwrap_err();
        assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e:?}");
        let e = mx_quantize(elem, &x[..63], 2, 32, &mut c, &mut s).unwrap_err();
        assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e:?}");
        assert!(mx_quantize(elem, &x, 0, 32, &mut c, &mut s).is_err());
        assert!(c.iter().chain(&s).all(|&b| b == 7));
        // A value error zero-fills and names the first bad index.
        let mut bad = x.clone();
        bad[40] = f32::NAN;
        bad[50] = f32::INFINITY;
        for f in [mx_quantize as MxQuantize, mx_quantize_ref] {
            c.fill(7);
            s.fill(7);
            match f(elem, &bad, 2, 32, &mut c, &mut s) {
                Err(QuantError::NonFinite { index, .. }) => assert_eq!(index, 40),
                other => panic!("{other:?}"),
            }
            assert!(c.iter().chain(&s).all(|&b| b == 0));
        }
    }
    let (mut c, mut s) = (vec![7u8; 32], vec![7u8; 4]);
    let mut bad = x.clone();
    bad[3] = f32::NEG_INFINITY;
    match nvfp4_quantize(&bad, 2, 32, &mut c, &mut s) {
        Err(QuantError::NonFinite { index, .. }) => assert_eq!(index, 3),
        other => panic!("{other:?}"),
    }
    assert!(c.iter().chain(&s).all(|&b| b == 0));
    let mut y = vec![5f32; 64];
    for g in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(nvfp4_dequantize(&c, &s, g, 2, 32, &mut y).is_err());
    }
    assert!(y.iter().all(|&v| v == 5.0));
}

#[test]
fn zero_blocks_get_the_documented_scales() {
    let x = vec![0f32; 48];
    let mut c = vec![9u8; 48];
    let mut s = vec![9u8; 2];
    mx_quantize(MxElem::Fp8E4m3, &x, 1, 48, &mut c, &mut s).unwrap();
    assert_eq!(s, [0, 0]); // E8M0 2^-127
    assert!(c.iter().all(|&b| b == 0));
    let mut s = vec![9u8; 3];
    let g = nvfp4_quantize(&x, 1, 48, &mut c[..24], &mut s).unwrap();
    assert_eq!((g, s), (1.0, vec![0x20; 3])); // compressed-tensors' eps 0.125
}

fn random_matrix(seed: u64, rows: usize, cols: usize) -> Vec<f32> {
    let mut s = seed | 1;
    (0..rows * cols)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            // Magnitudes over many binades, with exact zeros now and then.
            if i % 29 == 0 {
                0.0
            } else {
                u * 2f32.powi((s % 40) as i32 - 20)
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn fast_paths_equal_the_references(seed in any::<u64>(), rows in 1usize..5, cols in 1usize..100, e in 0usize..6, threads in 1usize..4, lvl in 0usize..4) {
        let elem = MxElem::all()[e];
        let x = random_matrix(seed, rows, cols);
        quant::kernels::par::set_threads(threads).unwrap();
        let levels = available_levels();
        quant::kernels::simd::set_simd_level(Some(levels[lvl % levels.len()])).unwrap();
        let n = (mx_packed_size(elem, rows, cols), mx_scale_count(rows, cols));
        let (mut c1, mut s1) = (vec![0u8; n.0], vec![0u8; n.1]);
        let (mut c2, mut s2) = (vec![0u8; n.0], vec![0u8; n.1]);
        mx_quantize(elem, &x, rows, cols, &mut c1, &mut s1).unwrap();
        mx_quantize_ref(elem, &x, rows, cols, &mut c2, &mut s2).unwrap();
        prop_assert_eq!(&c1, &c2);
        prop_assert_eq!(&s1, &s2);
        let (mut y1, mut y2) = (vec![0f32; rows * cols], vec![0f32; rows * cols]);
        mx_dequantize(elem, &c1, &s1, rows, cols, &mut y1).unwrap();
        mx_dequantize_ref(elem, &c1, &s1, rows, cols, &mut y2).unwrap();
        prop_assert_eq!(y1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), y2.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        // Round trip: within half a step of the block's grid, or, above the largest normal, the
        // saturation gap (the larger of the two: the gap from max normal to 2^(emax+1)).
        let max_normal = match elem { MxElem::Fp8E4m3 => 448.0, MxElem::Fp8E5m2 => 57344.0, MxElem::Fp6E2m3 => 7.5, MxElem::Fp6E3m2 => 28.0, MxElem::Fp4E2m1 => 6.0, MxElem::Int8 => 127.0 / 64.0 };
        for (i, (&a, &b)) in x.iter().zip(&y1).enumerate() {
            let scale = 2f64.powi(s1[(i / cols) * cols.div_ceil(32) + (i % cols) / 32] as i32 - 127);
            let gap = (2f64.powi(elem.emax() + 1) - max_normal) * scale;
            prop_assert!(((a - b).abs() as f64) <= gap, "{} {a} {b}", elem.name());
        }

        let n = (nvfp4_packed_size(rows, cols), nvfp4_scale_count(rows, cols));
        let (mut c1, mut s1) = (vec![0u8; n.0], vec![0u8; n.1]);
        let (mut c2, mut s2) = (vec![0u8; n.0], vec![0u8; n.1]);
        let g1 = nvfp4_quantize(&x, rows, cols, &mut c1, &mut s1).unwrap();
        let g2 = nvfp4_quantize_ref(&x, rows, cols, &mut c2, &mut s2).unwrap();
        prop_assert_eq!(g1.to_bits(), g2.to_bits());
        prop_assert_eq!(&c1, &c2);
        prop_assert_eq!(&s1, &s2);
        let (mut y1, mut y2) = (vec![0f32; rows * cols], vec![0f32; rows * cols]);
        nvfp4_dequantize(&c1, &s1, g1, rows, cols, &mut y1).unwrap();
        nvfp4_dequantize_ref(&c1, &s1, g1, rows, cols, &mut y2).unwrap();
        prop_assert_eq!(y1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), y2.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        quant::kernels::par::set_threads(1).unwrap();
        quant::kernels::simd::set_simd_level(None).unwrap();
    }
}

/// Relative output error `||X W^T - X Q^T||^2 / ||X W^T||^2` of every format on every bundled real
/// layer (2048 real input tokens each), printed (`--nocapture`), each below a bound stated from the
/// format's bits (measured values in docs/formats.md).
#[test]
fn error_on_the_real_layers() {
    // Format -> largest relative output error accepted on any layer.
    // The floor rule clips a block maximum whose significand exceeds that of the element's largest
    // normal (1.75 for E4M3, E5M2 and E3M2, 1.875 for E2M3, 1.5 for E2M1); on
    // encoder.layer.0.output.dense that clipping dominates, hence the wide MXFP8 bounds.
    let bounds: [(&str, f64); 7] = [
        ("MXFP8_E4M3", 1.6e-2),
        ("MXFP8_E5M2", 1.6e-2),
        ("MXFP6_E2M3", 3.5e-3),
        ("MXFP6_E3M2", 1.6e-2),
        ("MXFP4_E2M1", 7e-2),
        ("MXINT8", 1e-4),
        ("NVFP4", 1e-2),
    ];
    let mut failures = Vec::new();
    for l in LAYERS {
        let w = l.weight();
        let meter = OutputMeter::new(&l.activations(), l.cols);
        let w_norm = meter.sq_norm_f32(&w);
        let (rows, cols) = (l.rows, l.cols);
        let mut line = format!("{:<42}", l.name);
        for (k, (name, bound)) in bounds.iter().enumerate() {
            let mut y = vec![0f32; rows * cols];
            if let Some(&elem) = MxElem::all().get(k) {
                assert_eq!(elem.name(), *name);
                let mut c = vec![0u8; mx_packed_size(elem, rows, cols)];
                let mut s = vec![0u8; mx_scale_count(rows, cols)];
                mx_quantize(elem, &w, rows, cols, &mut c, &mut s).unwrap();
                mx_dequantize(elem, &c, &s, rows, cols, &mut y).unwrap();
            } else {
                let mut c = vec![0u8; nvfp4_packed_size(rows, cols)];
                let mut s = vec![0u8; nvfp4_scale_count(rows, cols)];
                let g = nvfp4_quantize(&w, rows, cols, &mut c, &mut s).unwrap();
                nvfp4_dequantize(&c, &s, g, rows, cols, &mut y).unwrap();
            }
            let err = meter.relative_error(&w, &y, w_norm);
            line += &format!(" {name} {err:.3e}");
            if !(err < *bound && err > 0.0) {
                failures.push(format!("{} {name}: {err:e} outside (0, {bound:e})", l.name));
            }
        }
        println!("{line}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
