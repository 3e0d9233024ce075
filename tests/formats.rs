//! GPTQ and AWQ checkpoint packing, and f16/bf16 source weights.
//!
//! The packers are checked the way engines read their output: the unpackers below are written after
//! AutoGPTQ's torch fallback (`qlinear_cuda_old.py`, `QuantLinear.forward`: the `wf` shift tables,
//! the 3-bit fix-ups of values straddling words, `zeros + 1` for v1, `scales * (weight - zeros)`) and
//! AutoAWQ's `dequantize_gemm` (`awq/utils/packing_utils.py`: shifts of 4, `AWQ_REVERSE_ORDER`,
//! `(iweight - izeros) * scales` on the input-major layout). The weights packed are built with the
//! k-bit kernels (RTN) and labelled GPTQ / AWQ, with act-order group indices and input scales where
//! the methods have them; the engine's weight must equal `QuantizedWeight::dequantize` with the
//! scales rounded to f16, bit for bit. Real GPTQ (3 and 4 bits, with and without act-order) and AWQ
//! results on a MiniLM layer go through the same round trips.
mod common;

use half::{bf16, f16};
use quant::algos::QuantOptions;
use quant::error::QuantError;
use quant::kernels::fp8::fp8_e4m3_quantize;
use quant::kernels::int8::int8_quantize;
use quant::kernels::kbit::{kbit_packed_size, kbit_quantize};
use quant::kernels::source::{
    fp8_e4m3_quantize_src, int4_quantize_src, int8_quantize_src, kbit_quantize_src, quantize_src,
    Src,
};
use quant::kernels::Shape;
use quant::method::QuantMethod;
use quant::pack::{awq_sizes, gptq_sizes, pack_awq, pack_gptq};
use quant::weight::{quantize, QuantizedWeight};

/// A small deterministic generator (xorshift64*), so that the tests need no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Roughly normal (sum of uniforms), times `scale`.
    fn normal(&mut self, scale: f32) -> f32 {
        ((0..4).map(|_| self.unit()).sum::<f32>() - 2.0) * scale
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// An RTN-built weight with the given method's label (k-bit kernel codes, f32 zero points).
fn rtn_weight(method: QuantMethod, w: &[f32], rows: usize, cols: usize) -> QuantizedWeight {
    let bits = match method {
        QuantMethod::Gptq { bits, .. } | QuantMethod::Awq { bits, .. } => bits,
        QuantMethod::Int4Asymmetric { .. } => 4,
        other => panic!("{other}"),
    };
    let shape = Shape::new(rows, cols, method.group_size()).unwrap();
    let mut data = vec![0u8; kbit_packed_size(rows, cols, bits)];
    let mut scales = vec![0f32; shape.n_groups()];
    let mut zeros = vec![0u8; shape.n_groups()];
    kbit_quantize(w, shape, bits, &mut data, &mut scales, &mut zeros).unwrap();
    let q = QuantizedWeight {
        method,
        rows,
        cols,
        data,
        scales,
        zero_points: Some(zeros.iter().map(|&z| f32::from(z)).collect()),
        input_scales: None,
        g_idx: None,
    };
    q.check().unwrap();
    q
}

fn random_matrix(rng: &mut Rng, rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| rng.normal(if i % 97 == 0 { 0.5 } else { 0.05 }))
        .collect()
}

/// The same weight with its scales rounded to f16 (what a checkpoint stores).
fn with_f16_scales(q: &QuantizedWeight) -> QuantizedWeight {
    let mut q = q.clone();
    for s in &mut q.scales {
        *s = f16::from_f32(*s).to_f32();
    }
    q
}

// ---------------------------------------------------------------------------------------------
// The engines' unpackers

/// AutoGPTQ's unpacking of a `[n * bits / 32, m]` int32 tensor packed along its first dimension into
/// `[n, m]` integers (the `wf` shifts; at 3 bits the 12-wide shift table and the two fix-ups).
fn autogptq_unpack_rows(packed: &[i32], n: usize, m: usize, bits: u32) -> Vec<i32> {
    let mut out = vec![0i32; n * m];
    let mask = (1i64 << bits) - 1;
    let word = |w: usize, c: usize| i64::from(packed[w * m + c] as u32);
    if bits == 3 {
        let wf: [[u32; 12]; 3] = [
            [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0],
            [0, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31],
            [0, 2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0],
        ];
        for blk in 0..n / 32 {
            for c in 0..m {
                let mut t = [[0i64; 12]; 3];
                for (k, row) in t.iter_mut().enumerate() {
                    for (i, v) in row.iter_mut().enumerate() {
                        *v = word(3 * blk + k, c) >> wf[k][i];
                    }
                }
                t[0][10] = (t[0][10] & 0x3) | ((t[1][0] << 2) & 0x4);
                t[1][11] = (t[1][11] & 0x1) | ((t[2][0] << 1) & 0x6);
                let vals: Vec<i64> = t[0][..11]
                    .iter()
                    .chain(&t[1][1..12])
                    .chain(&t[2][1..11])
                    .map(|v| v & 0x7)
                    .collect();
                assert_eq!(vals.len(), 32);
                for (i, v) in vals.into_iter().enumerate() {
                    out[(32 * blk + i) * m + c] = v as i32;
                }
            }
        }
    } else {
        let per = (32 / bits) as usize;
        for j in 0..n {
            for c in 0..m {
                let shift = bits as usize * (j % per);
                out[j * m + c] = ((word(j / per, c) >> shift) & mask) as i32;
            }
        }
    }
    out
}

/// AutoGPTQ's dequantization `scales[g][r] * (q[j][r] - zeros[g][r])`, `g = g_idx[j]`, `zeros` =
/// stored + 1 for v1; returned as the torch weight `[rows][cols]` (in f32, scales from f16).
fn gptq_engine_weight(
    q: &QuantizedWeight,
    version: u32,
    qweight: &[i32],
    qzeros: &[i32],
    scales: &[u16],
    g_idx: &[i32],
    bits: u32,
) -> Vec<f32> {
    let (rows, cols) = (q.rows, q.cols);
    let groups = scales.len() / rows;
    let iw = autogptq_unpack_rows(qweight, cols, rows, bits); // [cols][rows]
                                                              // qzeros [groups][rows*bits/32] packed along its second dimension: unpack the transpose.
    let zwords = rows * bits as usize / 32;
    let mut zt = vec![0i32; zwords * groups];
    for g in 0..groups {
        for w in 0..zwords {
            zt[w * groups + g] = qzeros[g * zwords + w];
        }
    }
    let iz = autogptq_unpack_rows(&zt, rows, groups, bits); // [rows][groups]
    let offset = if version == 1 { 1 } else { 0 };
    let mut out = vec![0f32; rows * cols];
    for j in 0..cols {
        let g = g_idx[j] as usize;
        for r in 0..rows {
            let s = f16::from_bits(scales[g * rows + r]).to_f32();
            let z = iz[r * groups + g] + offset;
            out[r * cols + j] = (iw[j * rows + r] - z) as f32 * s;
        }
    }
    out
}

/// AutoAWQ's `dequantize_gemm`: unpack nibbles, undo the order with `AWQ_REVERSE_ORDER`, then
/// `(iweight - izeros) * scales` on the `[cols][rows]` layout; returned as `[rows][cols]`.
fn awq_engine_weight(
    rows: usize,
    cols: usize,
    group: usize,
    qweight: &[i32],
    qzeros: &[i32],
    scales: &[u16],
) -> Vec<f32> {
    const REVERSE: [usize; 8] = [0, 4, 1, 5, 2, 6, 3, 7];
    let unpack = |packed: &[i32], n: usize| -> Vec<i32> {
        // [n][rows/8] words -> [n][rows] in packed order, then reordered.
        let mut raw = vec![0i32; n * rows];
        for i in 0..n {
            for c in 0..rows / 8 {
                let w = packed[i * (rows / 8) + c] as u32;
                for k in 0..8 {
                    raw[i * rows + 8 * c + k] = ((w >> (4 * k)) & 0xF) as i32;
                }
            }
        }
        let mut out = vec![0i32; n * rows];
        for i in 0..n {
            for c in 0..rows / 8 {
                for k in 0..8 {
                    out[i * rows + 8 * c + k] = raw[i * rows + 8 * c + REVERSE[k]];
                }
            }
        }
        out
    };
    let groups = cols / group;
    let iw = unpack(qweight, cols);
    let iz = unpack(qzeros, groups);
    let mut out = vec![0f32; rows * cols];
    for j in 0..cols {
        let g = j / group;
        for r in 0..rows {
            let s = f16::from_bits(scales[g * rows + r]).to_f32();
            out[r * cols + j] = (iw[j * rows + r] - iz[g * rows + r]) as f32 * s;
        }
    }
    out
}

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: element {i}: {g} vs {w}");
    }
}

/// Packs `q` as GPTQ, unpacks it as AutoGPTQ does and compares with `q`'s dequantization; returns the
/// number of v1-clamped zero points.
fn check_gptq_round_trip(q: &QuantizedWeight, version: u32, what: &str) -> usize {
    let bits = quant::weight::code_bits(&q.method);
    let sizes = gptq_sizes(q).unwrap();
    let mut qweight = vec![0x5A5A_5A5Ai32; sizes.qweight + 3];
    let mut qzeros = vec![0x5A5A_5A5Ai32; sizes.qzeros + 3];
    let mut scales = vec![0x5A5Au16; sizes.scales + 3];
    let mut g_idx = vec![-7i32; sizes.g_idx + 3];
    let clamped = pack_gptq(
        q,
        version,
        &mut qweight,
        &mut qzeros,
        &mut scales,
        &mut g_idx,
    )
    .unwrap();
    // Only the sizes are written.
    assert!(qweight[sizes.qweight..].iter().all(|&v| v == 0x5A5A_5A5A));
    assert!(qzeros[sizes.qzeros..].iter().all(|&v| v == 0x5A5A_5A5A));
    assert!(scales[sizes.scales..].iter().all(|&v| v == 0x5A5A));
    assert!(g_idx[sizes.g_idx..].iter().all(|&v| v == -7));
    let engine = gptq_engine_weight(q, version, &qweight, &qzeros, &scales, &g_idx, bits);
    if clamped == 0 {
        let want = with_f16_scales(q).dequantize_to_vec().unwrap();
        assert_bits_eq(&engine, &want, what);
        // And within the f16 rounding of the scales of the exact dequantization.
        let exact = q.dequantize_to_vec().unwrap();
        let maxq = ((1u32 << bits) - 1) as f32;
        let smax = q.scales.iter().fold(0f32, |m, &s| m.max(s));
        for (e, x) in engine.iter().zip(&exact) {
            assert!(
                (e - x).abs() <= maxq * smax * 2f32.powi(-11) + 1e-30,
                "{what}"
            );
        }
    }
    clamped
}

#[test]
fn gptq_packing_round_trips_through_autogptqs_unpacker() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for bits in [2u32, 3, 4, 8] {
        for (rows, cols, group) in [(32, 64, 32), (64, 128, 64), (96, 256, 128), (32, 96, 96)] {
            let w = random_matrix(&mut rng, rows, cols);
            let method = QuantMethod::Gptq {
                group_size: group,
                bits,
            };
            let mut q = rtn_weight(method, &w, rows, cols);
            for version in [1, 2] {
                let what = format!("{bits}-bit {rows}x{cols} g{group} v{version}");
                let clamped = check_gptq_round_trip(&q, version, &what);
                let zeros0 = q
                    .zero_points
                    .as_ref()
                    .unwrap()
                    .iter()
                    .filter(|&&z| z == 0.0);
                assert_eq!(clamped, if version == 1 { zeros0.count() } else { 0 });
            }
            // Act-order: an arbitrary group for every column.
            let gpr = q.shape().unwrap().groups_per_row();
            q.g_idx = Some((0..cols).map(|_| rng.below(gpr) as i32).collect());
            for version in [1, 2] {
                check_gptq_round_trip(&q, version, &format!("{bits}-bit act-order v{version}"));
            }
        }
    }
}

#[test]
fn gptq_v1_clamps_a_zero_point_of_zero_without_spilling() {
    let mut rng = Rng(99);
    let (rows, cols) = (32, 64);
    // Row 5 all positive: its zero point is 0.
    let mut w = random_matrix(&mut rng, rows, cols);
    for v in &mut w[5 * cols..6 * cols] {
        *v = v.abs() + 0.01;
    }
    let q = rtn_weight(
        QuantMethod::Gptq {
            group_size: cols,
            bits: 4,
        },
        &w,
        rows,
        cols,
    );
    assert_eq!(q.zero_points.as_ref().unwrap()[5], 0.0);
    let s = gptq_sizes(&q).unwrap();
    let (mut qw, mut qz, mut sc, mut gi) = (
        vec![0; s.qweight],
        vec![0; s.qzeros],
        vec![0; s.scales],
        vec![0; s.g_idx],
    );
    let clamped = pack_gptq(&q, 1, &mut qw, &mut qz, &mut sc, &mut gi).unwrap();
    assert!(clamped >= 1);
    let engine = gptq_engine_weight(&q, 1, &qw, &qz, &sc, &gi, 4);
    let want = with_f16_scales(&q).dequantize_to_vec().unwrap();
    let zeros = q.zero_points.as_ref().unwrap();
    for (r, &z) in zeros.iter().enumerate() {
        let row = r * cols..(r + 1) * cols;
        if z == 0.0 {
            // Read with zero 1: one step below, never garbage from a neighbour.
            let step = f16::from_f32(q.scales[r]).to_f32();
            for (e, x) in engine[row.clone()].iter().zip(&want[row]) {
                assert_eq!(*e, x - step);
            }
        } else {
            assert_bits_eq(&engine[row.clone()], &want[row], &format!("row {r}"));
        }
    }
    // Version 2 is exact.
    assert_eq!(check_gptq_round_trip(&q, 2, "v2"), 0);
}

#[test]
fn gptq_packing_of_a_real_layer() {
    let l = common::layer("encoder.layer.0.attention.self.query");
    let w = l.weight();
    for bits in [3, 4] {
        let q = rtn_weight(
            QuantMethod::Gptq {
                group_size: 128,
                bits,
            },
            &w,
            l.rows,
            l.cols,
        );
        check_gptq_round_trip(&q, 2, &format!("real {bits}-bit"));
    }
}

/// Packs `q` as AWQ GEMM, unpacks it as AutoAWQ does and compares with `q`'s dequantization (the
/// checkpoint holds `W diag(s)`: dividing input `j` by `s_j` gives the original-basis weight).
fn check_awq_round_trip(q: &QuantizedWeight, what: &str) {
    let (rows, cols) = (q.rows, q.cols);
    let group = q.shape().unwrap().group_len();
    let sizes = awq_sizes(q).unwrap();
    assert_eq!(
        (sizes.qweight, sizes.qzeros, sizes.scales),
        (
            cols * rows / 8,
            cols / group * rows / 8,
            cols / group * rows
        )
    );
    let mut qw = vec![0x77i32; sizes.qweight + 1];
    let mut qz = vec![0x77i32; sizes.qzeros + 1];
    let mut sc = vec![0x77u16; sizes.scales + 1];
    pack_awq(q, &mut qw, &mut qz, &mut sc).unwrap();
    assert_eq!((qw[sizes.qweight], qz[sizes.qzeros]), (0x77, 0x77));
    assert_eq!(sc[sizes.scales], 0x77);
    let engine = awq_engine_weight(rows, cols, group, &qw, &qz, &sc);
    let want = with_f16_scales(q).dequantize_to_vec().unwrap();
    let back: Vec<f32> = engine
        .iter()
        .enumerate()
        .map(|(i, &e)| match &q.input_scales {
            Some(s) => e / s[i % cols],
            None => e,
        })
        .collect();
    assert_bits_eq(&back, &want, what);
}

#[test]
fn awq_packing_round_trips_through_autoawqs_unpacker() {
    let mut rng = Rng(0xDEAD_BEEF);
    for (rows, cols, group) in [(8, 32, 32), (64, 256, 64), (96, 128, 128)] {
        let w = random_matrix(&mut rng, rows, cols);
        let mut q = rtn_weight(
            QuantMethod::Awq {
                group_size: group,
                bits: 4,
            },
            &w,
            rows,
            cols,
        );
        // AWQ's input scales: the codes quantize W diag(s).
        let s: Vec<f32> = (0..cols).map(|_| 0.5 + 1.5 * rng.unit()).collect();
        for with_scales in [false, true] {
            q.input_scales = with_scales.then(|| s.clone());
            check_awq_round_trip(&q, &format!("AWQ {rows}x{cols} g{group} s={with_scales}"));
        }
    }
}

#[test]
fn awq_word_layout_by_hand() {
    // Codes: output r, input j -> (r + 2j) % 16; one group; zero 3 everywhere but output 1 (zero 9).
    let (rows, cols) = (8, 4);
    let mut data = vec![0u8; rows * 2];
    for r in 0..rows {
        for j in 0..cols {
            let code = ((r + 2 * j) % 16) as u8;
            data[r * 2 + j / 2] |= code << (4 * (j % 2));
        }
    }
    let mut zeros = vec![3f32; rows];
    zeros[1] = 9.0;
    let q = QuantizedWeight {
        method: QuantMethod::Awq {
            group_size: 4,
            bits: 4,
        },
        rows,
        cols,
        data,
        scales: vec![1.0; rows],
        zero_points: Some(zeros),
        input_scales: None,
        g_idx: None,
    };
    let (mut qw, mut qz, mut sc) = (vec![0; 4], vec![0; 1], vec![0; 8]);
    pack_awq(&q, &mut qw, &mut qz, &mut sc).unwrap();
    // Input 0: outputs in nibble order 0,2,4,6,1,3,5,7 -> codes 0,2,4,6,1,3,5,7.
    assert_eq!(qw[0] as u32, 0x7531_6420);
    // Input 1: codes r + 2.
    assert_eq!(qw[1] as u32, 0x9753_8642);
    // Zeros: output 1 (zero 9) sits in nibble 4.
    assert_eq!(qz[0] as u32, 0x3339_3333);
    assert_eq!(sc, vec![0x3C00; 8]);
}

#[test]
fn packers_reject_what_engines_cannot_load_and_write_nothing() {
    let mut rng = Rng(5);
    let w = random_matrix(&mut rng, 16, 64);
    let gptq = |bits, group| {
        rtn_weight(
            QuantMethod::Gptq {
                group_size: group,
                bits,
            },
            &w,
            16,
            64,
        )
    };
    let mut qw = vec![1i32; 4096];
    let mut qz = vec![1i32; 4096];
    let mut sc = vec![1u16; 4096];
    let mut gi = vec![1i32; 4096];
    let status = |r: Result<usize, QuantError>| r.unwrap_err().status();
    use quant::error::{
        QUANT_ERR_BUFFER_TOO_SMALL as SMALL, QUANT_ERR_INVALID_ARGUMENT as INVALID,
        QUANT_ERR_UNSUPPORTED as UNSUPPORTED,
    };
    // Version, width, shape.
    assert_eq!(
        status(pack_gptq(
            &gptq(4, 32),
            3,
            &mut qw,
            &mut qz,
            &mut sc,
            &mut gi
        )),
        INVALID
    );
    assert_eq!(
        status(pack_gptq(
            &gptq(5, 32),
            1,
            &mut qw,
            &mut qz,
            &mut sc,
            &mut gi
        )),
        UNSUPPORTED
    );
    let w3 = random_matrix(&mut rng, 16, 48);
    let q3 = rtn_weight(
        QuantMethod::Gptq {
            group_size: 16,
            bits: 3,
        },
        &w3,
        16,
        48,
    );
    let e = pack_gptq(&q3, 2, &mut qw, &mut qz, &mut sc, &mut gi).unwrap_err();
    assert!(e.to_string().contains("multiple of 32"), "{e}");
    // Not a GPTQ weight.
    let int8 = quantize(
        &QuantMethod::Int8Symmetric { group_size: 0 },
        &QuantOptions::default(),
        &w,
        16,
        64,
        None,
    )
    .unwrap();
    assert_eq!(
        status(pack_gptq(&int8, 2, &mut qw, &mut qz, &mut sc, &mut gi)),
        INVALID
    );
    assert_eq!(
        pack_awq(&int8, &mut qw, &mut qz, &mut sc)
            .unwrap_err()
            .status(),
        INVALID
    );
    // A scale beyond f16.
    let mut big = gptq(4, 32);
    big.scales[3] = 1e6;
    assert_eq!(
        status(pack_gptq(&big, 2, &mut qw, &mut qz, &mut sc, &mut gi)),
        INVALID
    );
    // Buffers one element short.
    let q = gptq(4, 32);
    let s = gptq_sizes(&q).unwrap();
    assert_eq!(
        (s.qweight, s.qzeros, s.scales, s.g_idx),
        (8 * 16, 2 * 2, 2 * 16, 64)
    );
    let short = [
        pack_gptq(&q, 2, &mut qw[..s.qweight - 1], &mut qz, &mut sc, &mut gi),
        pack_gptq(&q, 2, &mut qw, &mut qz[..s.qzeros - 1], &mut sc, &mut gi),
        pack_gptq(&q, 2, &mut qw, &mut qz, &mut sc[..s.scales - 1], &mut gi),
        pack_gptq(&q, 2, &mut qw, &mut qz, &mut sc, &mut gi[..s.g_idx - 1]),
    ];
    for r in short {
        assert_eq!(status(r), SMALL);
    }
    // AWQ: width, rows, whole groups, act-order.
    let awq3 = rtn_weight(
        QuantMethod::Awq {
            group_size: 32,
            bits: 3,
        },
        &w,
        16,
        64,
    );
    assert_eq!(
        pack_awq(&awq3, &mut qw, &mut qz, &mut sc)
            .unwrap_err()
            .status(),
        UNSUPPORTED
    );
    let w12 = random_matrix(&mut rng, 12, 64);
    let awq12 = rtn_weight(
        QuantMethod::Awq {
            group_size: 32,
            bits: 4,
        },
        &w12,
        12,
        64,
    );
    assert_eq!(
        pack_awq(&awq12, &mut qw, &mut qz, &mut sc)
            .unwrap_err()
            .status(),
        INVALID
    );
    let awq_g48 = rtn_weight(
        QuantMethod::Awq {
            group_size: 48,
            bits: 4,
        },
        &w,
        16,
        64,
    );
    assert_eq!(
        pack_awq(&awq_g48, &mut qw, &mut qz, &mut sc)
            .unwrap_err()
            .status(),
        INVALID
    );
    let mut act = gptq(4, 32);
    act.g_idx = Some(vec![0; 64]);
    assert_eq!(
        pack_awq(&act, &mut qw, &mut qz, &mut sc)
            .unwrap_err()
            .status(),
        INVALID
    );
    let awq = rtn_weight(
        QuantMethod::Awq {
            group_size: 32,
            bits: 4,
        },
        &w,
        16,
        64,
    );
    let s = awq_sizes(&awq).unwrap();
    assert_eq!(
        pack_awq(&awq, &mut qw[..s.qweight - 1], &mut qz, &mut sc)
            .unwrap_err()
            .status(),
        SMALL
    );
    assert!(qw.iter().all(|&v| v == 1) && qz.iter().all(|&v| v == 1));
    assert!(sc.iter().all(|&v| v == 1) && gi.iter().all(|&v| v == 1));
}

// ---------------------------------------------------------------------------------------------
// f16 / bf16 sources

fn to_f16(x: &[f32]) -> Vec<u16> {
    x.iter().map(|&v| f16::from_f32(v).to_bits()).collect()
}

fn to_bf16(x: &[f32]) -> Vec<u16> {
    x.iter().map(|&v| bf16::from_f32(v).to_bits()).collect()
}

fn from_f16(x: &[u16]) -> Vec<f32> {
    x.iter().map(|&v| f16::from_bits(v).to_f32()).collect()
}

fn from_bf16(x: &[u16]) -> Vec<f32> {
    x.iter().map(|&v| bf16::from_bits(v).to_f32()).collect()
}

/// `(16-bit source, the same values as f32)` for both 16-bit types.
fn sources(w: &[f32]) -> Vec<(Vec<u16>, bool, Vec<f32>)> {
    let h = to_f16(w);
    let b = to_bf16(w);
    let hf = from_f16(&h);
    let bf = from_bf16(&b);
    vec![(h, true, hf), (b, false, bf)]
}

fn src_of(bits: &[u16], is_f16: bool) -> Src<'_> {
    if is_f16 {
        Src::F16(bits)
    } else {
        Src::Bf16(bits)
    }
}

#[test]
fn kernels_give_the_same_results_from_f16_bf16_as_from_f32() {
    let mut rng = Rng(42);
    for (rows, cols, group) in [(3, 70, 0), (5, 64, 16), (4, 130, 33), (1, 1, 0)] {
        let w = random_matrix(&mut rng, rows, cols);
        let shape = Shape::new(rows, cols, group).unwrap();
        for (bits16, is_f16, wf) in sources(&w) {
            let src = src_of(&bits16, is_f16);
            let what = format!("{rows}x{cols} g{group} f16={is_f16}");
            // INT8
            let (mut a, mut b) = (vec![0i8; rows * cols], vec![0i8; rows * cols]);
            let (mut sa, mut sb) = (vec![0f32; shape.n_groups()], vec![0f32; shape.n_groups()]);
            int8_quantize_src(src, shape, &mut a, &mut sa).unwrap();
            int8_quantize(&wf, shape, &mut b, &mut sb).unwrap();
            assert_eq!((&a, &sa), (&b, &sb), "INT8 {what}");
            // k-bit and INT4
            for kb in [3u32, 4] {
                let n = kbit_packed_size(rows, cols, kb);
                let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
                let (mut za, mut zb) = (vec![0u8; shape.n_groups()], vec![0u8; shape.n_groups()]);
                if kb == 4 {
                    int4_quantize_src(src, shape, &mut a, &mut sa, &mut za).unwrap();
                } else {
                    kbit_quantize_src(src, shape, kb, &mut a, &mut sa, &mut za).unwrap();
                }
                kbit_quantize(&wf, shape, kb, &mut b, &mut sb, &mut zb).unwrap();
                assert_eq!((&a, &sa, &za), (&b, &sb, &zb), "{kb}-bit {what}");
            }
            // FP8
            let (mut a, mut b) = (vec![0u8; rows * cols], vec![0u8; rows * cols]);
            fp8_e4m3_quantize_src(src, shape, &mut a, &mut sa).unwrap();
            fp8_e4m3_quantize(&wf, shape, &mut b, &mut sb).unwrap();
            assert_eq!((&a, &sa), (&b, &sb), "FP8 {what}");
        }
    }
}

#[test]
fn ggml_blocks_are_the_same_from_f16_bf16_as_from_f32() {
    use quant::kernels::ggml::{ggml_quantize, ggml_quantize_src, GgmlType};
    let l = common::layer("encoder.layer.0.attention.self.query");
    let w = &l.weight()[..64 * 384];
    for (bits16, is_f16, wf) in sources(w) {
        for ty in GgmlType::all() {
            let (rows, cols) = (64 * 384 / 768, 768);
            let n = rows * ty.row_size(cols).unwrap();
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            ggml_quantize_src(ty, src_of(&bits16, is_f16), rows, cols, &mut a).unwrap();
            ggml_quantize(ty, &wf, rows, cols, &mut b).unwrap();
            assert!(a == b, "{} f16={is_f16}", ty.name());
        }
    }
}

#[test]
fn quantize_gives_the_same_weight_from_f16_bf16_as_from_f32_on_a_real_layer() {
    let l = common::layer("encoder.layer.0.intermediate.dense");
    let w = l.weight();
    let opts = QuantOptions::default();
    let methods = [
        QuantMethod::Int8Symmetric { group_size: 0 },
        QuantMethod::Int8Symmetric { group_size: 128 },
        QuantMethod::Int4Asymmetric { group_size: 128 },
        QuantMethod::Fp8E4m3 { group_size: 0 },
    ];
    for (bits16, is_f16, wf) in sources(&w) {
        for m in methods {
            let a = quantize_src(&m, &opts, src_of(&bits16, is_f16), l.rows, l.cols, None).unwrap();
            let b = quantize(&m, &opts, &wf, l.rows, l.cols, None).unwrap();
            assert!(a == b, "{m} f16={is_f16}");
        }
        // The calibrated methods give what the f32 path gives (today: the same error without calib).
        let gptq = QuantMethod::Gptq {
            group_size: 128,
            bits: 4,
        };
        let a = quantize_src(&gptq, &opts, src_of(&bits16, is_f16), l.rows, l.cols, None);
        let b = quantize(&gptq, &opts, &wf, l.rows, l.cols, None);
        assert_eq!(a.map_err(|e| e.to_string()), b.map_err(|e| e.to_string()));
    }
    // f32 passes straight through.
    let m = methods[2];
    let a = quantize_src(&m, &opts, Src::F32(&w), l.rows, l.cols, None).unwrap();
    assert!(a == quantize(&m, &opts, &w, l.rows, l.cols, None).unwrap());
}

#[test]
fn sixteen_bit_sources_report_non_finite_and_overflow_as_float_sources_do() {
    let shape = Shape::new(2, 8, 0).unwrap();
    let mut h = to_f16(&[0.5; 16]);
    h[11] = 0x7E00; // NaN
    let mut dst = vec![9i8; 16];
    let mut sc = vec![9f32; 2];
    match int8_quantize_src(Src::F16(&h), shape, &mut dst, &mut sc) {
        Err(QuantError::NonFinite { index: 11, .. }) => {}
        other => panic!("{other:?}"),
    }
    let mut b = to_bf16(&[0.5; 16]);
    b[3] = 0xFF80; // -inf
    let mut d8 = vec![9u8; 16];
    match fp8_e4m3_quantize_src(Src::Bf16(&b), shape, &mut d8, &mut sc) {
        Err(QuantError::NonFinite { index: 3, .. }) => {}
        other => panic!("{other:?}"),
    }
    // bf16 reaches 3e38: a group from -3e38 to 3e38 has no f32 scale.
    let mut b = to_bf16(&[0.5; 16]);
    b[9] = bf16::from_f32(3e38).to_bits();
    b[10] = bf16::from_f32(-3e38).to_bits();
    let mut z = vec![9u8; 2];
    let e = int4_quantize_src(Src::Bf16(&b), shape, &mut d8, &mut sc, &mut z).unwrap_err();
    assert!(e.to_string().starts_with("row 1, group 0"), "{e}");
    // The largest bf16 (3.39e38) is still 2^120 below f32::MAX, too far for the kernels' "dequantized
    // value overflows" rejection: both paths accept a 5-bit group [0, max] alike.
    let mut near = to_bf16(&[0.5; 16]);
    near[12] = 0x7F7F;
    let wf = from_bf16(&near);
    let (mut k1, mut s1, mut z1) = (vec![9u8; 10], vec![9f32; 2], vec![9u8; 2]);
    let f32_err =
        kbit_quantize(&wf, shape, 5, &mut k1, &mut s1, &mut z1).map_err(|e| e.to_string());
    let src_err = kbit_quantize_src(Src::Bf16(&near), shape, 5, &mut k1, &mut s1, &mut z1)
        .map_err(|e| e.to_string());
    assert_eq!(src_err, f32_err);
    assert!(src_err.is_ok());
    // Short buffers and a wrong source length: nothing written, even with a bad value in the input.
    let (mut dst, mut d8, mut sc, mut z) =
        (vec![9i8; 16], vec![9u8; 16], vec![9f32; 2], vec![9u8; 2]);
    assert!(int8_quantize_src(Src::F16(&h[..15]), shape, &mut dst, &mut sc).is_err());
    assert!(int8_quantize_src(Src::Bf16(&b), shape, &mut dst[..15], &mut sc).is_err());
    assert!(int4_quantize_src(Src::Bf16(&b), shape, &mut d8, &mut sc, &mut z[..1]).is_err());
    assert!(dst.iter().all(|&v| v == 9) && d8.iter().all(|&v| v == 9));
    assert!(sc.iter().all(|&v| v == 9.0) && z.iter().all(|&v| v == 9));
    // A value error in the second row zero-fills every output, the first row's included, and the
    // error is that of the same values as f32 (a NaN in a later row comes before an overflow).
    let mut b2 = b.clone();
    b2[15] = 0x7FC0; // NaN
    let (mut d8, mut sc, mut z) = (vec![9u8; 17], vec![9f32; 3], vec![9u8; 3]);
    let e = int4_quantize_src(Src::Bf16(&b2), shape, &mut d8, &mut sc, &mut z).unwrap_err();
    assert!(
        matches!(e, QuantError::NonFinite { index: 15, .. }),
        "{e:?}"
    );
    assert!(d8[..8].iter().all(|&v| v == 0) && d8[8..].iter().all(|&v| v == 9));
    assert_eq!((sc, z), (vec![0.0, 0.0, 9.0], vec![0, 0, 9]));
    let mut h2 = to_f16(&[0.5; 16]);
    h2[14] = 0x7C00; // +inf in row 1: row 0 was written, then zeroed
    let (mut dst, mut sc) = (vec![9i8; 17], vec![9f32; 3]);
    let e = int8_quantize_src(Src::F16(&h2), shape, &mut dst, &mut sc).unwrap_err();
    assert!(
        matches!(e, QuantError::NonFinite { index: 14, .. }),
        "{e:?}"
    );
    assert!(dst[..16].iter().all(|&v| v == 0) && dst[16] == 9);
    assert_eq!(sc, [0.0, 0.0, 9.0]);
    // Whole-layer quantization names the weight.
    let e = quantize_src(
        &QuantMethod::Int4Asymmetric { group_size: 0 },
        &QuantOptions::default(),
        Src::Bf16(&b),
        2,
        8,
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("row 1"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Real GPTQ and AWQ results (the calibrated algorithms on a MiniLM layer and its activations)

#[test]
fn real_gptq_and_awq_weights_round_trip_through_the_engines_unpackers() {
    use quant::calib::Calibration;
    let l = common::layer("encoder.layer.0.attention.self.query");
    let (w, x) = (l.weight(), l.activations());
    let mut calib = Calibration::new(l.cols).unwrap();
    calib.add(&x, x.len() / l.cols, l.cols).unwrap();
    for act_order in [false, true] {
        let opts = QuantOptions {
            act_order,
            ..QuantOptions::default()
        };
        for bits in [3, 4] {
            let m = QuantMethod::Gptq {
                group_size: 128,
                bits,
            };
            let q = quantize(&m, &opts, &w, l.rows, l.cols, Some(&calib)).unwrap();
            // Act-order (without static groups) keeps a g_idx that is not j / 128.
            assert_eq!(q.g_idx.is_some(), act_order);
            let what = format!("real GPTQ {bits}-bit act_order={act_order}");
            assert_eq!(check_gptq_round_trip(&q, 2, &what), 0);
            check_gptq_round_trip(&q, 1, &what);
        }
    }
    let m = QuantMethod::Awq {
        group_size: 128,
        bits: 4,
    };
    let q = quantize(
        &m,
        &QuantOptions::default(),
        &w,
        l.rows,
        l.cols,
        Some(&calib),
    )
    .unwrap();
    assert!(q.input_scales.is_some(), "AWQ keeps its input scales");
    check_awq_round_trip(&q, "real AWQ");

    // The calibrated methods from 16-bit weights: the same result as from the same values as f32.
    let wb = to_bf16(&w);
    let wf = from_bf16(&wb);
    let gptq = QuantMethod::Gptq {
        group_size: 128,
        bits: 4,
    };
    for m in [gptq, m] {
        let opts = QuantOptions::default();
        let a = quantize_src(&m, &opts, Src::Bf16(&wb), l.rows, l.cols, Some(&calib)).unwrap();
        let b = quantize(&m, &opts, &wf, l.rows, l.cols, Some(&calib)).unwrap();
        assert!(a == b, "{m} from bf16");
    }
}
