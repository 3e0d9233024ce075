//! GGML block formats against ggml itself and against gguf-py (`pip install gguf`), whose
//! `gguf.quants` reproduces ggml's reference quantizers of the 32-value types byte for byte.
//!
//! `tests/data/ggml/golden/` holds blocks of every type written by ggml's `ggml_quantize_chunk` and
//! decoded by ggml's dequantizers (`scripts/ggml-golden.sh`, against the llama.cpp build of
//! `scripts/llama-cpp.sh`; version in its manifest.json): the library writes exactly those bytes and
//! decodes them to exactly those values, for random rows, real MiniLM rows and hand-made edge
//! super-blocks (all zero, zero sub-blocks, huge, tiny, f16-underflowing scales, outliers, constant,
//! all negative, exact ties).
//!
//! The fixtures in `tests/data/ggml/` were made by gguf-py 0.19.0; regenerate them with
//! `cargo build --release && python3 scripts/gen_ggml_fixtures.py --lib target/release/libquant.so`
//! (see the script's docstring for what each file holds). The test checks:
//! - Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: quantizing the inputs (random normal data at several scales, real
//!   MiniLM weights, hand-made blocks: all zero, largest magnitude negative, exact ties, constant, tiny,
//!   huge, equal magnitudes) gives gguf-py's bytes exactly, and dequantizing them gives gguf-py's
//!   values bit for bit;
//! - every type's dequantizer on random records (random bytes, random finite f16 headers) gives
//!   gguf-py's values bit for bit;
//! - the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), IQ4_NL, IQ4_XS, MXFP4, NVFP4, TQ1_0 and TQ2_0:
//!   the library still writes the committed blocks, and gguf-py's dequantizer decodes them to
//!   exactly the library's dequantization;
//! - the importance-weighted path (`ggml_quantize_weighted`) against ggml's `ggml_quantize_chunk`
//!   with an imatrix (golden `*.imatrix.bin`, `*.ones.bin`): bytes and decoded values, the `None`
//!   path against the reference fixtures, and its errors;
//! - IQ4_NL, IQ4_XS, MXFP4, NVFP4, TQ1_0 and TQ2_0, which gguf-py's fixtures do not cover, against
//!   ggml alone: the golden blocks above on both paths, and ggml's dequantizer on random records
//!   (`golden/records.*`);
//! - on the real layers, more bits give less error (Q2_K > Q3_K > Q4_K, Q5_K <= Q5_1, Q4_K <= Q4_0,
//!   Q6_K <= Q5_x and within 16x of Q8_0).
mod common;

use std::path::PathBuf;

use common::{OutputMeter, LAYERS};
use quant::error::QuantError;
use quant::kernels::ggml::{ggml_dequantize, ggml_quantize, ggml_quantize_weighted, GgmlType};
use quant::kernels::source::Src;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ggml")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_f32(name: &str) -> Vec<f32> {
    fixture(name)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn file_name(ty: GgmlType) -> String {
    ty.name().to_lowercase()
}

const BASIC: [GgmlType; 5] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
];

const K_QUANTS: [GgmlType; 5] = [
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

const NON_LINEAR: [GgmlType; 4] = [
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
    GgmlType::NVFP4,
];

const TERNARY: [GgmlType; 2] = [GgmlType::TQ1_0, GgmlType::TQ2_0];

/// `(name, rows, cols)` of the inputs of the 32-value types (manifest.json).
const INPUTS: [(&str, usize, usize); 3] =
    [("random", 8, 256), ("real", 16, 384), ("special", 1, 384)];

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: value {i}: {g} vs {w}");
    }
}

fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    got.iter().zip(want).position(|(a, b)| a != b)
}

/// Fails naming the first differing record of `ty` (and the byte in it) between the library's
/// bytes and `reference`'s.
fn assert_records_eq(ty: GgmlType, got: &[u8], want: &[u8], what: &str, reference: &str) {
    assert_eq!(got.len(), want.len(), "{what} {}: length", ty.name());
    if let Some(i) = first_difference(got, want) {
        let ts = ty.type_size();
        panic!(
            "{what} {}: byte {i} (block {}, byte {} of it) differs: {:?} vs {reference} {:?}",
            ty.name(),
            i / ts,
            i % ts,
            &got[i / ts * ts..(i / ts + 1) * ts],
            &want[i / ts * ts..(i / ts + 1) * ts]
        );
    }
}

#[test]
fn basic_types_are_byte_exact_with_gguf_py() {
    for (input, rows, cols) in INPUTS {
        let x = fixture_f32(&format!("{input}.f32"));
        assert_eq!(x.len(), rows * cols);
        for ty in BASIC {
            let want = fixture(&format!("{input}.{}.bin", file_name(ty)));
            let size = ty.row_size(cols).unwrap() * rows;
            assert_eq!(want.len(), size, "{input} {}", ty.name());
            let mut got = vec![0u8; size];
            assert_eq!(ggml_quantize(ty, &x, rows, cols, &mut got).unwrap(), size);
            assert_records_eq(ty, &got, &want, input, "gguf-py");
            let deq = fixture_f32(&format!("{input}.{}.deq.f32", file_name(ty)));
            let mut back = vec![0f32; rows * cols];
            ggml_dequantize(ty, &want, rows * cols, &mut back).unwrap();
            assert_bits_eq(&back, &deq, &format!("{input} {} dequantized", ty.name()));
        }
    }
}

/// `(name, rows, cols)` of the inputs of ggml's own golden blocks (golden/manifest.json).
const GOLDEN: [(&str, usize, usize); 3] =
    [("random", 3, 512), ("real", 2, 1536), ("edge", 1, 2048)];

#[test]
fn every_type_is_byte_exact_with_ggml_itself() {
    let manifest = String::from_utf8(fixture("golden/manifest.json")).unwrap();
    for ty in GgmlType::all() {
        assert!(
            manifest.contains(&format!("\"{}\"", ty.name())),
            "golden/manifest.json lists no {}: regenerate with scripts/ggml-golden.sh",
            ty.name()
        );
    }
    for (input, rows, cols) in GOLDEN {
        assert!(
            manifest.contains(&format!("\"{input}\": [{rows}, {cols}]")),
            "{input}"
        );
        let x = fixture_f32(&format!("golden/{input}.f32"));
        assert_eq!(x.len(), rows * cols);
        for ty in GgmlType::all() {
            let want = fixture(&format!("golden/{input}.{}.bin", file_name(ty)));
            let size = ty.row_size(cols).unwrap() * rows;
            assert_eq!(want.len(), size, "{input} {}", ty.name());
            let mut got = vec![0u8; size];
            assert_eq!(ggml_quantize(ty, &x, rows, cols, &mut got).unwrap(), size);
            assert_records_eq(ty, &got, &want, input, "ggml");
            let deq = fixture_f32(&format!("golden/{input}.{}.deq.f32", file_name(ty)));
            let mut back = vec![0f32; rows * cols];
            ggml_dequantize(ty, &want, rows * cols, &mut back).unwrap();
            assert_bits_eq(&back, &deq, &format!("{input} {} dequantized", ty.name()));
        }
    }
}

/// The library's bytes of `input` quantized as `ty` with the importance weights `w`, checked against
/// the ggml fixture `golden/<input>.<type><suffix>.bin`.
fn assert_weighted_matches(
    ty: GgmlType,
    input: &str,
    x: &[f32],
    w: &[f32],
    suffix: &str,
) -> Vec<u8> {
    let cols = w.len();
    let rows = x.len() / cols;
    let want = fixture(&format!("golden/{input}.{}{suffix}.bin", file_name(ty)));
    let size = ty.row_size(cols).unwrap() * rows;
    assert_eq!(want.len(), size, "{input} {} {suffix}", ty.name());
    let mut got = vec![0u8; size];
    let written = ggml_quantize_weighted(ty, Src::F32(x), rows, cols, Some(w), &mut got).unwrap();
    assert_eq!(written, size);
    assert_records_eq(ty, &got, &want, &format!("{input}{suffix}"), "ggml");
    got
}

#[test]
fn weighted_path_is_byte_exact_with_ggml_itself() {
    // ggml_quantize_chunk with an importance matrix: random weights over three decades with zeros,
    // MiniLM's real imatrix (mean squared activations of the layer's input), and edge weights (all
    // zero but one, tiny, huge, zero halves) on the edge super-blocks.
    let manifest = String::from_utf8(fixture("golden/manifest.json")).unwrap();
    assert!(
        manifest.contains("imatrix.bin"),
        "regenerate with scripts/ggml-golden.sh"
    );
    for (input, rows, cols) in GOLDEN {
        let x = fixture_f32(&format!("golden/{input}.f32"));
        let w = fixture_f32(&format!("golden/{input}.imatrix.f32"));
        assert_eq!(w.len(), cols);
        for ty in GgmlType::all() {
            let got = assert_weighted_matches(ty, input, &x, &w, ".imatrix");
            let deq = fixture_f32(&format!("golden/{input}.{}.imatrix.deq.f32", file_name(ty)));
            let mut back = vec![0f32; rows * cols];
            ggml_dequantize(ty, &got, rows * cols, &mut back).unwrap();
            assert_bits_eq(
                &back,
                &deq,
                &format!("{input} {} weighted, dequantized", ty.name()),
            );
            // An f16 source gives the bytes of its values given as f32 (the inputs rounded to f16
            // are other values than the fixture's, so the comparison is with the f32 path).
            let h: Vec<u16> = x
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect();
            let hx: Vec<f32> = h
                .iter()
                .map(|&b| half::f16::from_bits(b).to_f32())
                .collect();
            if hx.iter().all(|v| v.is_finite()) {
                let mut a = vec![0u8; got.len()];
                let mut b = vec![0u8; got.len()];
                ggml_quantize_weighted(ty, Src::F16(&h), rows, cols, Some(&w), &mut a).unwrap();
                ggml_quantize_weighted(ty, Src::F32(&hx), rows, cols, Some(&w), &mut b).unwrap();
                assert_eq!(a, b, "{input} {} from f16", ty.name());
            }
        }
    }
}

#[test]
fn weighted_path_without_weights_is_the_reference_path() {
    for (input, rows, cols) in GOLDEN {
        let x = fixture_f32(&format!("golden/{input}.f32"));
        for ty in GgmlType::all() {
            let want = fixture(&format!("golden/{input}.{}.bin", file_name(ty)));
            let mut got = vec![0u8; want.len()];
            ggml_quantize_weighted(ty, Src::F32(&x), rows, cols, None, &mut got).unwrap();
            assert_eq!(got, want, "{input} {}", ty.name());
        }
    }
}

#[test]
fn equal_weights_are_not_the_reference_path_except_for_the_types_that_ignore_them() {
    // An importance matrix of all ones still runs ggml's weighted search (weights
    // sqrt(sigma2 + x^2), or 1 for Q6_K, instead of the reference's), so every type but Q8_0, MXFP4,
    // NVFP4, TQ1_0 and TQ2_0 (which ignore the weights) writes other bytes than without one; the
    // fixtures show both.
    let x = fixture_f32("golden/random.f32");
    let ones = vec![1.0f32; 512];
    for ty in GgmlType::all() {
        let got = assert_weighted_matches(ty, "random", &x, &ones, ".ones");
        let reference = fixture(&format!("golden/random.{}.bin", file_name(ty)));
        let ignores_weights = matches!(
            ty,
            GgmlType::Q8_0 | GgmlType::MXFP4 | GgmlType::NVFP4 | GgmlType::TQ1_0 | GgmlType::TQ2_0
        );
        assert_eq!(got == reference, ignores_weights, "{}", ty.name());
    }
}

#[test]
fn weighted_errors_write_nothing() {
    let x: Vec<f32> = (0..512)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
        .collect();
    let w = vec![0.5f32; 256];
    for ty in [GgmlType::Q4_0, GgmlType::Q4_K] {
        let mut dst = vec![0xA5u8; 2 * ty.row_size(256).unwrap()];
        let src = Src::F32(&x);
        let mut call = |w: &[f32]| ggml_quantize_weighted(ty, src, 2, 256, Some(w), &mut dst);
        assert!(matches!(call(&w[..255]), Err(QuantError::ShapeMismatch(_))));
        assert!(matches!(
            call(&vec![0.5f32; 512]),
            Err(QuantError::ShapeMismatch(_))
        ));
        let mut bad = w.clone();
        bad[9] = -1e-3;
        let e = call(&bad).unwrap_err();
        assert!(matches!(e, QuantError::InvalidArgument(_)), "{e}");
        assert!(e.to_string().contains("quant_weights[9]"), "{e}");
        bad[9] = f32::NAN;
        assert!(matches!(
            call(&bad),
            Err(QuantError::NonFinite { index: 9, .. })
        ));
        bad[9] = f32::INFINITY;
        assert!(matches!(
            call(&bad),
            Err(QuantError::NonFinite { index: 9, .. })
        ));
        // A negative zero is a zero weight.
        bad[9] = -0.0;
        let mut ok = vec![0u8; dst.len()];
        ggml_quantize_weighted(ty, src, 2, 256, Some(&bad), &mut ok).unwrap();
        // The checks of the unweighted path come first, with or without weights.
        let mut nan_x = x.clone();
        nan_x[300] = f32::NAN;
        assert!(matches!(
            ggml_quantize_weighted(ty, Src::F32(&nan_x), 2, 256, Some(&w), &mut dst),
            Err(QuantError::NonFinite { index: 300, .. })
        ));
        let e = ggml_quantize_weighted(ty, src, 2, 200, Some(&w), &mut dst).unwrap_err();
        assert!(matches!(e, QuantError::InvalidArgument(_)), "{e}");
        let e = ggml_quantize_weighted(ty, src, 3, 256, Some(&w), &mut dst).unwrap_err();
        assert!(matches!(e, QuantError::ShapeMismatch(_)), "{e}");
        let short = dst.len() - 1;
        let e = ggml_quantize_weighted(ty, src, 2, 256, Some(&w), &mut dst[..short]).unwrap_err();
        assert!(matches!(e, QuantError::BufferTooSmall { .. }), "{e}");
        // A header that overflows f16, found in the second row: nothing of the first is written.
        let mut huge = x.clone();
        huge[256 + 40] = -5e6;
        let e =
            ggml_quantize_weighted(ty, Src::F32(&huge), 2, 256, Some(&w), &mut dst).unwrap_err();
        assert!(matches!(e, QuantError::InvalidArgument(_)), "{e}");
        let block = if ty == GgmlType::Q4_0 {
            "block 9 "
        } else {
            "block 1 "
        };
        assert!(e.to_string().contains(block), "{e}");
        assert!(dst.iter().all(|&b| b == 0xA5), "{}", ty.name());
    }
}

#[test]
fn dequantizers_match_gguf_py_and_ggml_on_random_records() {
    for ty in GgmlType::all() {
        // gguf-py's fixtures for the types it was run on, ggml's own for the non-linear and
        // ternary ones.
        let dir = if NON_LINEAR.contains(&ty) || TERNARY.contains(&ty) {
            "golden/"
        } else {
            ""
        };
        let rec = fixture(&format!("{dir}records.{}.bin", file_name(ty)));
        let want = fixture_f32(&format!("{dir}records.{}.deq.f32", file_name(ty)));
        assert_eq!(rec.len(), 64 * ty.type_size());
        let n = 64 * ty.block_size();
        let mut got = vec![0f32; n];
        ggml_dequantize(ty, &rec, n, &mut got).unwrap();
        assert_bits_eq(&got, &want, &format!("records {}", ty.name()));
    }
}

#[test]
fn k_and_nonlinear_quants_write_the_committed_blocks_and_gguf_py_decodes_them_exactly() {
    let x = fixture_f32("kinput.f32");
    let (rows, cols) = (29, 512);
    assert_eq!(x.len(), rows * cols);
    for ty in K_QUANTS.into_iter().chain(NON_LINEAR).chain(TERNARY) {
        let want = fixture(&format!("kq.{}.bin", file_name(ty)));
        let mut got = vec![0u8; rows * ty.row_size(cols).unwrap()];
        ggml_quantize(ty, &x, rows, cols, &mut got).unwrap();
        assert_eq!(
            first_difference(&got, &want),
            None,
            "{}: the library no longer writes the committed blocks",
            ty.name()
        );
        let gguf_py = fixture_f32(&format!("kq.{}.deq.f32", file_name(ty)));
        let mut ours = vec![0f32; rows * cols];
        ggml_dequantize(ty, &got, rows * cols, &mut ours).unwrap();
        assert_bits_eq(&ours, &gguf_py, &format!("{} decoded", ty.name()));
        if !K_QUANTS.contains(&ty) {
            continue;
        }
        // The all-zero super-block decodes to zeros; the partly zero one keeps its zero sub-blocks.
        let last = &ours[(rows - 1) * cols..];
        assert!(last[..256].iter().all(|&v| v == 0.0), "{}", ty.name());
        assert!(
            last[256 + 16..256 + 48].iter().all(|v| v.abs() < 0.05),
            "{}: zero sub-block {:?}",
            ty.name(),
            &last[256 + 16..256 + 48]
        );
    }
}

/// Round trip of a real layer through `ty`: row by row when a row is a whole number of blocks, else
/// the matrix as one flat sequence of blocks (what ggml can store of it).
fn ggml_round_trip(ty: GgmlType, w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let (r, c) = if cols % ty.block_size() == 0 {
        (rows, cols)
    } else {
        (w.len() / ty.block_size(), ty.block_size())
    };
    let mut q = vec![0u8; r * ty.row_size(c).unwrap()];
    ggml_quantize(ty, w, r, c, &mut q).unwrap();
    let mut back = vec![0f32; w.len()];
    ggml_dequantize(ty, &q, w.len(), &mut back).unwrap();
    back
}

#[test]
fn k_quants_output_error_on_the_real_layers() {
    for l in LAYERS.iter().filter(|l| l.cols == 384) {
        let w = l.weight();
        let x = l.activations();
        let meter = OutputMeter::new(&x, l.cols);
        let norm = meter.sq_norm_f32(&w);
        let err = |ty| meter.relative_error(&w, &ggml_round_trip(ty, &w, l.rows, l.cols), norm);
        let (q4_0, q4_k) = (err(GgmlType::Q4_0), err(GgmlType::Q4_K));
        let (q5_0, q5_1) = (err(GgmlType::Q5_0), err(GgmlType::Q5_1));
        let (q8_0, q6_k) = (err(GgmlType::Q8_0), err(GgmlType::Q6_K));
        let (q2_k, q3_k, q5_k) = (
            err(GgmlType::Q2_K),
            err(GgmlType::Q3_K),
            err(GgmlType::Q5_K),
        );
        eprintln!(
            "{}: Q2_K {q2_k:.4e} Q3_K {q3_k:.4e} | Q4_0 {q4_0:.4e} Q4_K {q4_k:.4e} | Q5_0 {q5_0:.4e} \
             Q5_1 {q5_1:.4e} Q5_K {q5_k:.4e} Q6_K {q6_k:.4e} | Q8_0 {q8_0:.4e}",
            l.name
        );
        assert!(q4_k <= q4_0, "{}: Q4_K {q4_k:e} > Q4_0 {q4_0:e}", l.name);
        assert!(q5_k <= q5_1, "{}: Q5_K {q5_k:e} > Q5_1 {q5_1:e}", l.name);
        assert!(
            q4_k < q3_k && q3_k < q2_k,
            "{}: Q2_K {q2_k:e} Q3_K {q3_k:e}",
            l.name
        );
        // Q6_K (6.56 bits a weight, steps of about absmax/32 per 16 values) cannot match Q8_0 (8.5
        // bits, steps of absmax/127 per 32): two bits fewer cost up to 16x in squared error, and ggml's
        // reference algorithm is what it is. It must beat every 5-bit type and stay within that 16x.
        assert!(
            q6_k <= q5_0 && q6_k <= q5_1,
            "{}: Q6_K {q6_k:e} vs Q5",
            l.name
        );
        assert!(
            q6_k <= 16.0 * q8_0,
            "{}: Q6_K {q6_k:e} vs Q8_0 {q8_0:e}",
            l.name
        );
    }
}

/// `||W - Q||^2 / ||W||^2`, in f64.
fn relative_weight_error(w: &[f32], q: &[f32]) -> f64 {
    let num: f64 = w
        .iter()
        .zip(q)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    let den: f64 = w.iter().map(|&a| f64::from(a).powi(2)).sum();
    num / den
}

#[test]
fn k_quants_beat_q4_0_and_q5_in_weight_error_on_every_layer() {
    // Every layer, the 1536-column one included (whose rows are whole super-blocks).
    for l in LAYERS {
        let w = l.weight();
        let err = |ty| relative_weight_error(&w, &ggml_round_trip(ty, &w, l.rows, l.cols));
        let (q4_0, q4_k, q5_1, q6_k) = (
            err(GgmlType::Q4_0),
            err(GgmlType::Q4_K),
            err(GgmlType::Q5_1),
            err(GgmlType::Q6_K),
        );
        let (q2_k, q3_k, q5_k) = (
            err(GgmlType::Q2_K),
            err(GgmlType::Q3_K),
            err(GgmlType::Q5_K),
        );
        eprintln!(
            "{}: Q2_K {q2_k:.3e} Q3_K {q3_k:.3e} Q4_K {q4_k:.3e} Q4_0 {q4_0:.3e} Q5_K {q5_k:.3e} \
             Q5_1 {q5_1:.3e} Q6_K {q6_k:.3e}",
            l.name
        );
        assert!(q4_k <= q4_0, "{}: Q4_K {q4_k:e} > Q4_0 {q4_0:e}", l.name);
        assert!(q6_k <= q5_1, "{}: Q6_K {q6_k:e} > Q5_1 {q5_1:e}", l.name);
        assert!(q3_k < q2_k, "{}: Q3_K {q3_k:e} >= Q2_K {q2_k:e}", l.name);
        assert!(q4_k < q3_k, "{}: Q4_K {q4_k:e} >= Q3_K {q3_k:e}", l.name);
        assert!(q5_k < q4_k, "{}: Q5_K {q5_k:e} >= Q4_K {q4_k:e}", l.name);
        assert!(q5_k <= q5_1, "{}: Q5_K {q5_k:e} > Q5_1 {q5_1:e}", l.name);
    }
}

#[test]
fn errors_write_nothing() {
    let x = vec![0.5f32; 64];
    let mut dst = vec![0xA5u8; 128];
    let ty = GgmlType::Q4_0;
    let cases: Vec<(Result<usize, QuantError>, &str)> = vec![
        (ggml_quantize(ty, &x, 2, 30, &mut dst), "multiple"),
        (ggml_quantize(ty, &x, 0, 32, &mut dst), "rows"),
        (ggml_quantize(ty, &x[..63], 2, 32, &mut dst), "holds"),
        (ggml_quantize(ty, &x, 2, 32, &mut dst[..35]), "dst"),
    ];
    for (r, needle) in cases {
        let e = r.unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    let mut bad = x.clone();
    bad[40] = f32::NAN;
    assert!(matches!(
        ggml_quantize(ty, &bad, 2, 32, &mut dst),
        Err(QuantError::NonFinite { index: 40, .. })
    ));
    let mut huge = x.clone();
    huge[33] = -5e6;
    let e = ggml_quantize(ty, &huge, 2, 32, &mut dst).unwrap_err();
    assert!(e.to_string().contains("block 1"), "{e}");
    // Q8_0 stores 5e6 / 127 < 65504 in f16: fine.
    ggml_quantize(GgmlType::Q8_0, &huge, 2, 32, &mut [0u8; 68]).unwrap();
    assert!(dst.iter().all(|&b| b == 0xA5));

    let mut out = vec![7f32; 64];
    let rec = vec![0u8; 36];
    assert!(ggml_dequantize(ty, &rec, 0, &mut out).is_err());
    assert!(ggml_dequantize(ty, &rec, 33, &mut out).is_err());
    assert!(ggml_dequantize(ty, &rec[..35], 64, &mut out).is_err());
    assert!(ggml_dequantize(ty, &rec, 64, &mut out[..63]).is_err());
    let mut inf = rec.clone();
    inf[18..20].copy_from_slice(&0x7C00u16.to_le_bytes());
    assert!(matches!(
        ggml_dequantize(ty, &inf, 64, &mut out),
        Err(QuantError::NonFinite { index: 1, .. })
    ));
    assert!(out.iter().all(|&v| v == 7.0));
}

#[test]
fn non_linear_types_refuse_what_would_overflow() {
    // IQ4_NL's f16 scale overflows like Q4_0's (|d| is at most amax / 127 or so): nothing written.
    let mut huge = vec![0.5f32; 64];
    huge[40] = -1e10;
    let mut dst = vec![0xA5u8; 36];
    let e = ggml_quantize(GgmlType::IQ4_NL, &huge, 2, 32, &mut dst).unwrap_err();
    assert!(
        matches!(e, QuantError::InvalidArgument(_)) && e.to_string().contains("block 1"),
        "{e}"
    );
    assert!(dst.iter().all(|&b| b == 0xA5));
    // MXFP4 takes any finite input: at f32::MAX the exponent byte is 253 (log2f rounds to 128) and,
    // as in ggml, the codes that would decode to infinity (8 and 12 times 2^125) are never chosen.
    let big = [f32::MAX, -f32::MAX, 1.0, 0.0].repeat(8);
    let mut q = [0u8; 17];
    ggml_quantize(GgmlType::MXFP4, &big, 1, 32, &mut q).unwrap();
    assert_eq!(q[0], 253);
    let mut back = [0f32; 32];
    ggml_dequantize(GgmlType::MXFP4, &q, 32, &mut back).unwrap();
    assert_eq!(back[..2], [6.0 * 2f32.powi(125), -6.0 * 2f32.powi(125)]);
    // A record whose code decodes to infinity under its exponent is refused, naming the block.
    // (Block 0 under the same exponent holds only codes of 6, which stay finite.)
    let mut rec = [0x77u8; 34];
    rec[..17].copy_from_slice(&q);
    rec[17] = 253;
    let mut out = [7f32; 64];
    assert!(matches!(
        ggml_dequantize(GgmlType::MXFP4, &rec, 64, &mut out),
        Err(QuantError::NonFinite { index: 1, .. })
    ));
    assert!(out.iter().all(|&v| v == 7.0));
    // An infinite IQ4_NL scale likewise.
    let mut rec = [0u8; 18];
    rec[..2].copy_from_slice(&0xFC00u16.to_le_bytes());
    assert!(matches!(
        ggml_dequantize(GgmlType::IQ4_NL, &rec, 32, &mut out[..32]),
        Err(QuantError::NonFinite { index: 0, .. })
    ));
    // IQ4_XS's f16 super-block scale (the largest block scale / 32) overflows too, here in the
    // second super-block: nothing written.
    let mut huge = vec![0.5f32; 512];
    huge[300] = -1e10;
    let mut dst = vec![0xA5u8; 272];
    let e = ggml_quantize(GgmlType::IQ4_XS, &huge, 1, 512, &mut dst).unwrap_err();
    assert!(
        matches!(e, QuantError::InvalidArgument(_)) && e.to_string().contains("block 1"),
        "{e}"
    );
    assert!(dst.iter().all(|&b| b == 0xA5));
    let mut rec = vec![0u8; 272];
    rec[136..138].copy_from_slice(&0x7E00u16.to_le_bytes()); // NaN
    let mut out = vec![7f32; 512];
    assert!(matches!(
        ggml_dequantize(GgmlType::IQ4_XS, &rec, 512, &mut out),
        Err(QuantError::NonFinite { index: 1, .. })
    ));
    assert!(out.iter().all(|&v| v == 7.0));
    // NVFP4 saturates instead, as ggml does: its largest UE4M3 scale, 448 (byte 0x7E), holds at
    // most 6 * 448 = 2688, and every scale byte decodes to a finite value.
    // (At f32::MAX, f32 cannot tell the codes' distances apart: every code is equally far and the
    // first, 0, is chosen, as in ggml.)
    let big = [1e6, -3000.0, 2688.0, 1.0, f32::MAX].repeat(13);
    let mut q = [0u8; 36];
    ggml_quantize(GgmlType::NVFP4, &big[..64], 1, 64, &mut q).unwrap();
    assert_eq!(q[..4], [0x7E; 4]);
    let mut back = [0f32; 64];
    ggml_dequantize(GgmlType::NVFP4, &q, 64, &mut back).unwrap();
    assert_eq!(back[..5], [2688.0, -2688.0, 2688.0, 0.0, 0.0]);
    ggml_dequantize(GgmlType::NVFP4, &[0xFF; 36], 64, &mut back).unwrap();
    assert!(back.iter().all(|&v| v == -2880.0), "{back:?}");
}

#[test]
fn c_conversion_edge_blocks_do_not_panic() {
    // Scales so small that 1/d overflows: ggml's C gives codes through (int8_t)NaN/inf; here 0.
    let tiny: Vec<f32> = (0..256).map(|i| (i as f32 - 128.0) * 1e-44).collect();
    for ty in GgmlType::all() {
        let mut q = vec![0u8; ty.row_size(256).unwrap()];
        ggml_quantize(ty, &tiny, 1, 256, &mut q).unwrap();
        let mut back = vec![0f32; 256];
        ggml_dequantize(ty, &q, 256, &mut back).unwrap();
        assert!(back.iter().all(|v| v.abs() < 1e-30), "{}", ty.name());
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// One step of the 32-value types for a block (before the f16 rounding of the scale).
    fn step(ty: GgmlType, x: &[f32]) -> f32 {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (lo, hi) = x
            .iter()
            .fold((f32::MAX, -f32::MAX), |(l, h), &v| (l.min(v), h.max(v)));
        match ty {
            GgmlType::Q8_0 => amax / 127.0,
            GgmlType::Q4_0 => amax / 8.0,
            GgmlType::Q5_0 => amax / 16.0,
            GgmlType::Q4_1 => (hi - lo) / 15.0,
            GgmlType::Q5_1 => (hi - lo) / 31.0,
            _ => unreachable!(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every value comes back within about one step (half a step of rounding; the extreme of
        /// Q4_0/Q5_0 clamps one step short; plus the f16 rounding of the scale and min).
        #[test]
        fn round_trip_within_a_step(
            x in prop::collection::vec(-1000f32..1000f32, 64),
            scale_exp in -8i32..2,
        ) {
            let x: Vec<f32> = x.iter().map(|v| v * 10f32.powi(scale_exp)).collect();
            for ty in BASIC {
                let mut q = vec![0u8; 2 * ty.type_size()];
                ggml_quantize(ty, &x, 2, 32, &mut q).unwrap();
                let mut back = vec![0f32; 64];
                ggml_dequantize(ty, &q, 64, &mut back).unwrap();
                for (b, (xb, yb)) in x.chunks(32).zip(back.chunks(32)).enumerate() {
                    let s = step(ty, xb);
                    let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                    // f16 keeps 11 bits: the scale's relative error is 2^-11 (more in its subnormals).
                    let tol = 1.01 * s + amax * 2f32.powi(-9) + 2f32.powi(-14);
                    for (v, w) in xb.iter().zip(yb) {
                        prop_assert!((v - w).abs() <= tol, "{} block {b}: {v} -> {w}, step {s}", ty.name());
                    }
                }
            }
        }
    }
}
