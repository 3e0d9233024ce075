//! `quant export-compressed`: compressed-tensors folders, pack-quantized (W4A16 asymmetric groups,
//! W8A16 symmetric channels), float-quantized (FP8 E4M3 per channel, per tensor and per 128 x 128
//! block), mxfp4- and mxfp6-pack-quantized (MXFP4A16, MXFP6A16), mxfp8-quantized (MXFP8A16) and
//! nvfp4-pack-quantized (NVFP4A16).
//!
//! Each folder is decoded here as compressed-tensors' formulas say (pack-quantized:
//! `unpack_from_int32`'s unsigned fields minus `2^(b-1)`, then `(q - zp) * scale`; float-quantized:
//! the library's E4M3 or block-FP8 dequantization with the stored scales; MXFP4, MXFP6, MXFP8 and
//! NVFP4: the library's `mx_dequantize` and `nvfp4_dequantize`, their codes also checked byte for
//! byte against `mx_quantize` and `nvfp4_quantize`) and the result compared with the source weights
//! within the codes' rounding. With `QUANT_TORCH_PYTHON` (a python with torch, compressed-tensors and
//! transformers; scripts/test-model.sh builds it), that decoding of every
//! quantized layer is also written to a safetensors file and scripts/check_compressed.py has
//! compressed-tensors and transformers load the folder and compare their weights with it bit for bit
//! (for the MX formats and NVFP4, which compressed-tensors decompresses in bfloat16, with it rounded
//! to bfloat16).
mod common;

use common::*;
use std::path::{Path, PathBuf};

use quant::kernels::fp8::{fp8_block_dequantize, fp8_e4m3_dequantize, BlockShape};
use quant::kernels::mx::nvfp4::{nvfp4_dequantize, nvfp4_quantize};
use quant::kernels::mx::{mx_dequantize, mx_quantize, MxElem};
use quant::kernels::Shape;
use quant_cli::model::GgufFile;
use safetensors::{Dtype, SafeTensors};

/// A weight scheme of `export-compressed`, as the tests pass it and decode it.
#[derive(Clone, Copy, Debug)]
enum Scheme {
    /// pack-quantized: `bits`, symmetric or not, `group` columns per scale (0: per channel).
    Int { bits: u32, sym: bool, group: usize },
    /// float-quantized FP8 E4M3: one scale per output row, or one for the whole weight.
    Fp8 { per_tensor: bool },
    /// float-quantized FP8 E4M3 with a scale per 128 x 128 block.
    Fp8Block,
    /// mxfp4-pack-quantized: E2M1 codes, E8M0 scales per 32 columns.
    Mxfp4,
    /// mxfp6-pack-quantized: E2M3 codes four in three bytes, E8M0 scales per 32 columns.
    Mxfp6,
    /// mxfp8-quantized: E4M3 codes (`weight`), E8M0 scales per 32 columns.
    Mxfp8,
    /// nvfp4-pack-quantized: E2M1 codes, E4M3 scales per 16 columns, an f32 global scale.
    Nvfp4,
}

impl Scheme {
    fn args(self) -> Vec<String> {
        let v: Vec<&str> = match self {
            Scheme::Int {
                bits: 4,
                sym: false,
                group: 32,
            } => vec!["--bits", "4", "--group-size", "32"],
            Scheme::Int {
                bits: 4,
                sym: false,
                group: 64,
            } => vec!["--bits", "4", "--group-size", "64"],
            Scheme::Int {
                bits: 8,
                sym: true,
                group: 0,
            } => vec!["--bits", "8", "--channel", "--symmetric"],
            Scheme::Int {
                bits: 8,
                sym: false,
                group: 16,
            } => vec!["--bits", "8", "--group-size", "16"],
            Scheme::Fp8 { per_tensor: false } => vec!["--type", "float"],
            Scheme::Fp8 { per_tensor: true } => vec!["--type", "float", "--tensor"],
            Scheme::Fp8Block => vec!["--type", "fp8-block"],
            Scheme::Mxfp4 => vec!["--type", "mxfp4"],
            Scheme::Mxfp6 => vec!["--type", "mxfp6"],
            Scheme::Mxfp8 => vec!["--type", "mxfp8"],
            Scheme::Nvfp4 => vec!["--type", "nvfp4"],
            s => panic!("no arguments for {s:?}"),
        };
        v.into_iter().map(String::from).collect()
    }

    fn name(self) -> String {
        match self {
            Scheme::Int { bits, sym, group } => format!("int{bits}-{sym}-{group}"),
            Scheme::Fp8 { per_tensor } => {
                format!("fp8-{}", if per_tensor { "tensor" } else { "channel" })
            }
            Scheme::Fp8Block => "fp8-block".into(),
            Scheme::Mxfp4 => "mxfp4".into(),
            Scheme::Mxfp6 => "mxfp6".into(),
            Scheme::Mxfp8 => "mxfp8".into(),
            Scheme::Nvfp4 => "nvfp4".into(),
        }
    }
}

fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

fn f16s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect()
}

/// A quantized layer decoded: `rows x cols` weights, and the scale of each weight.
struct Decoded {
    rows: usize,
    cols: usize,
    w: Vec<f32>,
    scale: Vec<f32>,
}

/// Decodes layer `p` of a pack-quantized folder as compressed-tensors does, checking every tensor's
/// dtype and shape on the way.
fn decode_int(st: &SafeTensors, p: &str, bits: u32, sym: bool, group: usize) -> Decoded {
    let shape = st.tensor(&format!("{p}.weight_shape")).unwrap();
    assert_eq!(shape.dtype(), Dtype::I64);
    assert_eq!(shape.shape(), [2]);
    let d: Vec<usize> = shape
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize)
        .collect();
    let (rows, cols) = (d[0], d[1]);
    let pf = 32 / bits as usize;
    let groups = cols.checked_div(group).unwrap_or(1);
    let glen = cols / groups;
    let packed = st.tensor(&format!("{p}.weight_packed")).unwrap();
    assert_eq!(packed.dtype(), Dtype::I32);
    assert_eq!(packed.shape(), [rows, cols / pf]);
    let scale = st.tensor(&format!("{p}.weight_scale")).unwrap();
    assert_eq!(scale.dtype(), Dtype::F16);
    assert_eq!(scale.shape(), [rows, groups]);
    let zp = st.tensor(&format!("{p}.weight_zero_point"));
    assert_eq!(zp.is_ok(), !sym);
    assert!(st.tensor(&format!("{p}.weight")).is_err());
    let qw = i32s(packed.data());
    let sc = f16s(scale.data());
    let mask = (1i32 << bits) - 1;
    let offset = 1i32 << (bits - 1);
    let field = |word: i32, i: usize| ((word >> (bits as usize * i)) & mask) - offset;
    let zps = zp.ok().map(|t| {
        assert_eq!(t.dtype(), Dtype::I32);
        assert_eq!(t.shape(), [rows / pf, groups]);
        i32s(t.data())
    });
    let (mut w, mut s) = (vec![0f32; rows * cols], vec![0f32; rows * cols]);
    let mut negative = 0;
    for r in 0..rows {
        for c in 0..cols {
            let g = c / glen;
            let q = field(qw[r * (cols / pf) + c / pf], c % pf);
            let z = zps
                .as_ref()
                .map_or(0, |z| field(z[(r / pf) * groups + g], r % pf));
            negative += usize::from(q < 0);
            s[r * cols + c] = sc[r * groups + g];
            w[r * cols + c] = (q - z) as f32 * sc[r * groups + g];
        }
    }
    // The signed codes use their negative half (the offset is applied).
    assert!(negative > 0, "{p}: no negative code");
    Decoded {
        rows,
        cols,
        w,
        scale: s,
    }
}

/// Decodes layer `p` of a float-quantized folder with the library's E4M3 dequantization, checking
/// every tensor's dtype and shape, and that each scale's largest code is +-448 (scale = absmax / 448).
fn decode_fp8(st: &SafeTensors, p: &str, per_tensor: bool) -> Decoded {
    let codes = st.tensor(&format!("{p}.weight")).unwrap();
    assert_eq!(codes.dtype(), Dtype::F8_E4M3);
    let (rows, cols) = (codes.shape()[0], codes.shape()[1]);
    assert_eq!(codes.shape().len(), 2);
    let scale = st.tensor(&format!("{p}.weight_scale")).unwrap();
    assert_eq!(scale.dtype(), Dtype::F16);
    let sc = f16s(scale.data());
    let shape = if per_tensor {
        assert_eq!(scale.shape(), [1]);
        Shape::new(1, rows * cols, 0).unwrap()
    } else {
        assert_eq!(scale.shape(), [rows, 1]);
        Shape::new(rows, cols, 0).unwrap()
    };
    for name in ["weight_packed", "weight_zero_point", "weight_shape"] {
        assert!(st.tensor(&format!("{p}.{name}")).is_err(), "{p}.{name}");
    }
    let mut w = vec![0f32; rows * cols];
    fp8_e4m3_dequantize(codes.data(), &sc, shape, &mut w).unwrap();
    let glen = shape.cols;
    for (g, (run, s)) in codes.data().chunks(glen).zip(&sc).enumerate() {
        let top = run.iter().map(|&c| c & 0x7F).max().unwrap();
        assert!(
            *s == 0.0 || top == 0x7E,
            "{p}: group {g}: largest code {top:#x}"
        );
    }
    let s = (0..rows * cols).map(|i| sc[i / glen]).collect();
    Decoded {
        rows,
        cols,
        w,
        scale: s,
    }
}

/// Decodes layer `p` of a float-quantized folder with 128 x 128 blocks with the library's block-FP8
/// dequantization, checking every tensor's dtype and shape, and that each block's largest code is
/// +-448 (scale = absmax / 448).
fn decode_fp8_block(st: &SafeTensors, p: &str) -> Decoded {
    let codes = st.tensor(&format!("{p}.weight")).unwrap();
    assert_eq!(codes.dtype(), Dtype::F8_E4M3);
    assert_eq!(codes.shape().len(), 2);
    let (rows, cols) = (codes.shape()[0], codes.shape()[1]);
    let scale = st.tensor(&format!("{p}.weight_scale")).unwrap();
    assert_eq!(scale.dtype(), Dtype::F16);
    let (down, across) = (rows.div_ceil(128), cols.div_ceil(128));
    assert_eq!(scale.shape(), [down, across]);
    for name in ["weight_packed", "weight_zero_point", "weight_shape"] {
        assert!(st.tensor(&format!("{p}.{name}")).is_err(), "{p}.{name}");
    }
    let sc = f16s(scale.data());
    let shape = BlockShape::deepseek(rows, cols).unwrap();
    let mut w = vec![0f32; rows * cols];
    fp8_block_dequantize(codes.data(), &sc, shape, &mut w).unwrap();
    let block = |i: usize| (i / cols / 128) * across + (i % cols) / 128;
    let mut top = vec![0u8; down * across];
    for (i, &c) in codes.data().iter().enumerate() {
        top[block(i)] = top[block(i)].max(c & 0x7F);
    }
    for (b, (&t, &s)) in top.iter().zip(&sc).enumerate() {
        assert!(s == 0.0 || t == 0x7E, "{p}: block {b}: largest code {t:#x}");
    }
    let s = (0..rows * cols).map(|i| sc[block(i)]).collect();
    Decoded {
        rows,
        cols,
        w,
        scale: s,
    }
}

impl Scheme {
    /// The MX element type of an MX scheme.
    fn mx_elem(self) -> MxElem {
        match self {
            Scheme::Mxfp4 => MxElem::Fp4E2m1,
            Scheme::Mxfp6 => MxElem::Fp6E2m3,
            Scheme::Mxfp8 => MxElem::Fp8E4m3,
            s => panic!("{s:?} is not MX"),
        }
    }

    /// The codes of an MX scheme: their tensor, safetensors dtype and bytes per 32 columns.
    fn mx_codes(self) -> (&'static str, Dtype, usize) {
        match self {
            Scheme::Mxfp4 => ("weight_packed", Dtype::U8, 16),
            Scheme::Mxfp6 => ("weight_packed", Dtype::U8, 24),
            Scheme::Mxfp8 => ("weight", Dtype::F8_E4M3, 32),
            s => panic!("{s:?} is not MX"),
        }
    }
}

/// Decodes layer `p` of an mxfp4-, mxfp6-pack-quantized or mxfp8-quantized folder with the
/// library's MX dequantization, checking every tensor's dtype and shape; each weight's scale is its
/// block's `2^(byte - 127)`.
fn decode_mx(st: &SafeTensors, p: &str, s: Scheme) -> Decoded {
    let elem = s.mx_elem();
    let (name, dtype, block_bytes) = s.mx_codes();
    let codes = st.tensor(&format!("{p}.{name}")).unwrap();
    assert_eq!(codes.dtype(), dtype);
    assert_eq!(codes.shape().len(), 2);
    let (rows, cols) = (codes.shape()[0], codes.shape()[1] * 32 / block_bytes);
    assert_eq!(codes.shape()[1], cols / 32 * block_bytes);
    let scale = st.tensor(&format!("{p}.weight_scale")).unwrap();
    assert_eq!(scale.dtype(), Dtype::U8);
    assert_eq!(scale.shape(), [rows, cols / 32]);
    for other in [
        "weight",
        "weight_packed",
        "weight_zero_point",
        "weight_shape",
        "weight_global_scale",
    ] {
        if other != name {
            assert!(st.tensor(&format!("{p}.{other}")).is_err(), "{p}.{other}");
        }
    }
    let mut w = vec![0f32; rows * cols];
    mx_dequantize(elem, codes.data(), scale.data(), rows, cols, &mut w).unwrap();
    // The scale is 2^(floor(log2(amax)) - emax), so a non-zero block's largest magnitude is in
    // [2^emax, 2^(emax + 1)) scale steps: its largest decoded value is at least 2^emax steps (E2M1:
    // 4, E2M3: 4, E4M3: 256; also what a saturated value decodes to).
    let mut s = vec![0f32; rows * cols];
    for (b, &sc) in scale.data().iter().enumerate() {
        let step = 2f32.powi(i32::from(sc) - 127);
        let top = w[b * 32..(b + 1) * 32]
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            sc == 0 || top >= 2f32.powi(elem.emax()) * step,
            "{p}: block {b}: largest value {top}, scale {step}"
        );
        s[b * 32..(b + 1) * 32].fill(step);
    }
    Decoded {
        rows,
        cols,
        w,
        scale: s,
    }
}

/// Decodes layer `p` of an nvfp4-pack-quantized folder with the library's NVFP4 dequantization,
/// checking every tensor's dtype and shape; each weight's scale is its block's `scale / global`.
fn decode_nvfp4(st: &SafeTensors, p: &str) -> Decoded {
    let codes = st.tensor(&format!("{p}.weight_packed")).unwrap();
    assert_eq!(codes.dtype(), Dtype::U8);
    assert_eq!(codes.shape().len(), 2);
    let (rows, cols) = (codes.shape()[0], codes.shape()[1] * 2);
    let scale = st.tensor(&format!("{p}.weight_scale")).unwrap();
    assert_eq!(scale.dtype(), Dtype::F8_E4M3);
    assert_eq!(scale.shape(), [rows, cols / 16]);
    let global = st.tensor(&format!("{p}.weight_global_scale")).unwrap();
    assert_eq!(global.dtype(), Dtype::F32);
    assert_eq!(global.shape(), [1]);
    let global = f32::from_le_bytes(global.data().try_into().unwrap());
    for name in ["weight", "weight_zero_point", "weight_shape"] {
        assert!(st.tensor(&format!("{p}.{name}")).is_err(), "{p}.{name}");
    }
    let mut w = vec![0f32; rows * cols];
    nvfp4_dequantize(codes.data(), scale.data(), global, rows, cols, &mut w).unwrap();
    // A block scale is its amax / 6 rounded to E4M3, so under a normal (not subnormal) scale the
    // block's largest code is 6 (E2M1 0x7) or, rounded up by at most 2^-4, still at least 4 (0x6).
    let mut s = vec![0f32; rows * cols];
    for (b, &sc) in scale.data().iter().enumerate() {
        let top = codes.data()[b * 8..(b + 1) * 8]
            .iter()
            .map(|&c| (c & 0x7).max((c >> 4) & 0x7))
            .max()
            .unwrap();
        let normal = sc & 0x78 != 0;
        assert!(!normal || top >= 6, "{p}: block {b}: largest code {top:#x}");
        s[b * 16..(b + 1) * 16].fill(fp8_e4m3_to_f32(sc) / global);
    }
    Decoded {
        rows,
        cols,
        w,
        scale: s,
    }
}

/// Layer `p` of an nvfp4-pack-quantized folder holds the library's NVFP4 quantization of `x` (HF
/// row order), byte for byte.
fn assert_library_nvfp4(st: &SafeTensors, p: &str, x: &[f32], rows: usize, cols: usize) {
    let mut codes = vec![0u8; rows * cols / 2];
    let mut scales = vec![0u8; rows * cols / 16];
    let global = nvfp4_quantize(x, rows, cols, &mut codes, &mut scales).unwrap();
    let t = |n: &str| st.tensor(&format!("{p}.{n}")).unwrap().data().to_vec();
    assert!(t("weight_packed") == codes, "{p}: codes");
    assert!(t("weight_scale") == scales, "{p}: block scales");
    assert_eq!(
        t("weight_global_scale"),
        global.to_le_bytes(),
        "{p}: global scale"
    );
}

/// Layer `p` of an MX folder of scheme `s` holds the library's MX quantization of `x` (HF row
/// order), byte for byte.
fn assert_library_mx(st: &SafeTensors, p: &str, s: Scheme, x: &[f32], rows: usize, cols: usize) {
    let (name, _, block_bytes) = s.mx_codes();
    let mut codes = vec![0u8; rows * cols / 32 * block_bytes];
    let mut scales = vec![0u8; rows * cols / 32];
    mx_quantize(s.mx_elem(), x, rows, cols, &mut codes, &mut scales).unwrap();
    let t = |n: &str| st.tensor(&format!("{p}.{n}")).unwrap().data().to_vec();
    assert!(t(name) == codes, "{p}: codes");
    assert!(t("weight_scale") == scales, "{p}: block scales");
}

/// The value of an E4M3FN code.
fn fp8_e4m3_to_f32(code: u8) -> f32 {
    let mut v = [0f32];
    fp8_e4m3_dequantize(&[code], &[1.0], Shape::new(1, 1, 0).unwrap(), &mut v).unwrap();
    v[0]
}

fn decode(st: &SafeTensors, p: &str, s: Scheme) -> Decoded {
    match s {
        Scheme::Int { bits, sym, group } => decode_int(st, p, bits, sym, group),
        Scheme::Fp8 { per_tensor } => decode_fp8(st, p, per_tensor),
        Scheme::Fp8Block => decode_fp8_block(st, p),
        Scheme::Mxfp4 | Scheme::Mxfp6 | Scheme::Mxfp8 => decode_mx(st, p, s),
        Scheme::Nvfp4 => decode_nvfp4(st, p),
    }
}

/// `d` equals the source `x` (HF row order) within the rounding of its codes: half a step of the
/// integer grid, or half an E4M3 step (2^-4 of the value, 2^-10 of the scale below E4M3's normal
/// range); plus the f16 rounding of the scale (2^-11 of the value) and f32 slack.
fn assert_near(d: &Decoded, x: &[f32], s: Scheme, what: &str) {
    assert_eq!(x.len(), d.w.len());
    for (i, ((&w, &x), &sc)) in d.w.iter().zip(x).zip(&d.scale).enumerate() {
        let code = match s {
            Scheme::Int { .. } => sc * 0.5,
            Scheme::Fp8 { .. } | Scheme::Fp8Block => (x.abs() / 16.0).max(sc / 1024.0),
            // Half the widest E2M1 step (4 to 6); a value beyond 6 steps of a block scale rounded
            // down clamps to 6 steps, at most 6 / (1 - 2^-4) - 6 = 0.4 step away.
            Scheme::Nvfp4 => sc,
            // Half the widest E2M1 step (4 to 6), or a value of 6 .. 8 steps saturated to 6.
            Scheme::Mxfp4 => 2.0 * sc,
            // Half an E2M3 step (2^-4 of the value, 2^-4 of the scale among the subnormals), or a
            // value of 7.5 .. 8 steps saturated to 7.5.
            Scheme::Mxfp6 => (x.abs() / 16.0).max(sc / 16.0).max(x.abs() - 7.5 * sc),
            // Half an E4M3 step (2^-4 of the value, 2^-10 of the scale among the subnormals), or a
            // value of 448 .. 512 steps saturated to 448.
            Scheme::Mxfp8 => (x.abs() / 16.0).max(sc / 1024.0).max(x.abs() - 448.0 * sc),
        };
        let tol = code + w.abs() / 2048.0 + x.abs() * 1e-6 + 1e-7;
        assert!(
            (w - x).abs() <= tol,
            "{what}: r{} c{}: {w} vs {x} (scale {sc})",
            i / d.cols,
            i % d.cols
        );
    }
}

/// Runs `export-compressed` on `input` into `dir/<scheme>` and checks its config.json.
fn export(input: &Path, dir: &Path, s: Scheme) -> PathBuf {
    let out = dir.join(s.name());
    let mut a = vec![
        "export-compressed".to_string(),
        input.display().to_string(),
        out.display().to_string(),
    ];
    a.extend(s.args());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["torch_dtype"], "float16");
    let qc = &cfg["quantization_config"];
    assert_eq!(qc["quant_method"], "compressed-tensors");
    assert_eq!(qc["ignore"], serde_json::json!(["lm_head"]));
    let g0 = &qc["config_groups"]["group_0"];
    assert_eq!(g0["targets"], serde_json::json!(["Linear"]));
    let w = &g0["weights"];
    match s {
        Scheme::Int { bits, sym, group } => {
            assert_eq!(qc["format"], "pack-quantized");
            assert!(g0["input_activations"].is_null());
            assert_eq!(w["num_bits"], bits);
            assert_eq!(w["type"], "int");
            assert_eq!(w["symmetric"], sym);
            if group == 0 {
                assert_eq!(w["strategy"], "channel");
                assert!(w["group_size"].is_null());
            } else {
                assert_eq!(w["strategy"], "group");
                assert_eq!(w["group_size"], group);
            }
        }
        Scheme::Fp8 { per_tensor } => {
            assert_eq!(qc["format"], "float-quantized");
            assert_eq!(w["num_bits"], 8);
            assert_eq!(w["type"], "float");
            assert_eq!(w["symmetric"], true);
            assert_eq!(w["strategy"], if per_tensor { "tensor" } else { "channel" });
            assert!(w["group_size"].is_null());
            let a = &g0["input_activations"];
            assert_eq!(a["type"], "float");
            assert_eq!(a["strategy"], "token");
            assert_eq!(a["dynamic"], true);
        }
        Scheme::Fp8Block => {
            assert_eq!(qc["format"], "float-quantized");
            assert_eq!(w["num_bits"], 8);
            assert_eq!(w["type"], "float");
            assert_eq!(w["symmetric"], true);
            assert_eq!(w["strategy"], "block");
            assert_eq!(w["block_structure"], serde_json::json!([128, 128]));
            assert!(w["group_size"].is_null());
            let a = &g0["input_activations"];
            assert_eq!(a["type"], "float");
            assert_eq!(a["strategy"], "group");
            assert_eq!(a["group_size"], 128);
            assert_eq!(a["dynamic"], true);
        }
        Scheme::Mxfp4 | Scheme::Mxfp6 | Scheme::Mxfp8 => {
            let (format, bits) = match s {
                Scheme::Mxfp4 => ("mxfp4-pack-quantized", 4),
                Scheme::Mxfp6 => ("mxfp6-pack-quantized", 6),
                _ => ("mxfp8-quantized", 8),
            };
            assert_eq!(qc["format"], format);
            assert!(g0["input_activations"].is_null());
            assert_eq!(w["num_bits"], bits);
            assert_eq!(w["type"], "float");
            assert_eq!(w["symmetric"], true);
            assert_eq!(w["strategy"], "group");
            assert_eq!(w["group_size"], 32);
            assert_eq!(w["scale_dtype"], "torch.uint8");
        }
        Scheme::Nvfp4 => {
            assert_eq!(qc["format"], "nvfp4-pack-quantized");
            assert!(g0["input_activations"].is_null());
            assert_eq!(w["num_bits"], 4);
            assert_eq!(w["type"], "float");
            assert_eq!(w["symmetric"], true);
            assert_eq!(w["strategy"], "tensor_group");
            assert_eq!(w["group_size"], 16);
            assert_eq!(w["scale_dtype"], "torch.float8_e4m3fn");
        }
    }
    out
}

/// Our decoding of every quantized layer of `out` (each module with a `weight_scale`), as f32
/// `<module>.weight`, into `out` + `.reference.safetensors`; returns that path.
fn write_reference(out: &Path, s: Scheme) -> PathBuf {
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut layers: Vec<String> = st
        .names()
        .into_iter()
        .filter_map(|n| n.strip_suffix(".weight_scale").map(String::from))
        .collect();
    layers.sort();
    assert!(!layers.is_empty());
    let decoded: Vec<(String, Decoded, Vec<u8>)> = layers
        .iter()
        .map(|p| {
            let d = decode(&st, p, s);
            let b = d.w.iter().flat_map(|v| v.to_le_bytes()).collect();
            (format!("{p}.weight"), d, b)
        })
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView)> = decoded
        .iter()
        .map(|(n, d, b)| {
            let v = safetensors::tensor::TensorView::new(Dtype::F32, vec![d.rows, d.cols], b);
            (n.as_str(), v.unwrap())
        })
        .collect();
    let reference = out.with_extension("reference.safetensors");
    safetensors::tensor::serialize_to_file(views, None, &reference).unwrap();
    reference
}

/// The python of `QUANT_TORCH_PYTHON` (torch, compressed-tensors, transformers), when it is set.
fn torch_python() -> Option<PathBuf> {
    env_path(
        "QUANT_TORCH_PYTHON",
        "a python with torch, compressed-tensors and transformers",
    )
}

/// scripts/check_compressed.py: compressed-tensors and transformers load each folder of `checks`
/// and compare its weights with the reference beside it, bit for bit.
fn check_with_loaders(python: &Path, checks: &[(PathBuf, PathBuf)]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check_compressed.py");
    let o = std::process::Command::new(python)
        .arg(&script)
        .args(checks.iter().flat_map(|(f, r)| [f, r]))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    let text = String::from_utf8_lossy(&o.stdout);
    print!("{text}");
    assert!(
        o.status.success(),
        "{} {} failed:\n{text}{}",
        python.display(),
        script.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    // Each folder printed its two lines (one per loader).
    assert_eq!(text.lines().count(), 2 * checks.len(), "{text}");
}

/// Every scheme the loaders are checked on.
const SCHEMES: [Scheme; 9] = [
    Scheme::Int {
        bits: 4,
        sym: false,
        group: 32,
    },
    Scheme::Int {
        bits: 8,
        sym: true,
        group: 0,
    },
    Scheme::Fp8 { per_tensor: false },
    Scheme::Fp8 { per_tensor: true },
    Scheme::Fp8Block,
    Scheme::Nvfp4,
    Scheme::Mxfp4,
    Scheme::Mxfp6,
    Scheme::Mxfp8,
];

#[test]
fn compressed_folder_decodes_to_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, ts) = tiny_llama();
    let input = dir.path().join("tiny.gguf");
    write_gguf(&input, &meta, &ts);
    let more = Scheme::Int {
        bits: 8,
        sym: false,
        group: 16,
    };
    let python = torch_python();
    let mut checks = vec![];
    for s in SCHEMES.into_iter().chain([more]) {
        let out = export(&input, dir.path(), s);
        // k_proj of block 1: 32 outputs x 64 inputs, HF order = GGUF rows un-permuted (2 KV heads).
        let gguf = &ts
            .iter()
            .find(|t| t.name == "blk.1.attn_k.weight")
            .unwrap()
            .data;
        let (rows, cols, hd, half) = (32usize, 64usize, 16, 8);
        let mut hf = vec![0f32; rows * cols];
        for r in 0..rows {
            let (h, i, j) = (r / hd, (r % hd) / half, r % half);
            let g_row = h * hd + 2 * j + i;
            hf[r * cols..(r + 1) * cols].copy_from_slice(&gguf[g_row * cols..(g_row + 1) * cols]);
        }
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(
            st.tensor("model.embed_tokens.weight").unwrap().dtype(),
            Dtype::F16
        );
        let p = "model.layers.1.self_attn.k_proj";
        let d = decode(&st, p, s);
        assert_eq!((d.rows, d.cols), (rows, cols));
        assert_near(&d, &hf, s, &format!("{} {p}", s.name()));
        match s {
            Scheme::Nvfp4 => assert_library_nvfp4(&st, p, &hf, rows, cols),
            Scheme::Mxfp4 | Scheme::Mxfp6 | Scheme::Mxfp8 => {
                assert_library_mx(&st, p, s, &hf, rows, cols)
            }
            _ => {}
        }
        if python.is_some() {
            checks.push((out.clone(), write_reference(&out, s)));
        }
    }
    if let Some(python) = python {
        check_with_loaders(&python, &checks);
    }
    let bad = dir.path().join("bad");
    for (args, msg) in [
        (
            &["--bits", "4", "--symmetric"][..],
            "--symmetric needs --bits 8",
        ),
        (&["--group-size", "48"][..], "group size 48"),
        (&["--tensor"][..], "--tensor needs --type float"),
        (
            &["--type", "float", "--bits", "4"][..],
            "--type float writes 8-bit",
        ),
        (
            &["--type", "float", "--group-size", "32"][..],
            "--type float takes --channel",
        ),
        (
            &["--type", "nvfp4", "--group-size", "32"][..],
            "--type nvfp4 has a fixed layout",
        ),
        (
            &["--type", "fp8-block", "--channel"][..],
            "--type fp8-block has a fixed layout",
        ),
        (
            &["--type", "mxfp4", "--bits", "4"][..],
            "--type mxfp4 has a fixed layout",
        ),
        (
            &["--type", "mxfp6", "--group-size", "32"][..],
            "--type mxfp6 has a fixed layout (E2M3 codes in blocks of 32)",
        ),
        (
            &["--type", "mxfp8", "--bits", "8"][..],
            "--type mxfp8 has a fixed layout (E4M3 codes in blocks of 32)",
        ),
        (&["--type", "mxint8"][..], "invalid value 'mxint8'"),
    ] {
        let mut a = vec![
            "export-compressed",
            input.to_str().unwrap(),
            bad.to_str().unwrap(),
        ];
        a.extend_from_slice(args);
        let o = run(&a);
        assert!(
            !o.status.success() && stderr(&o).contains(msg),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!bad.exists());
    }
}

#[test]
fn real_model_folders_decode_to_its_weights() {
    let Some(model) = env_path("QUANT_MODEL", "the real model") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // SmolLM2-135M's ffn_down: 576 outputs x 1536 inputs, rows in the same order in GGUF and HF.
    let w = GgufFile::open(&model)
        .unwrap()
        .tensor_f32("blk.3.ffn_down.weight")
        .unwrap();
    let schemes = [
        Scheme::Int {
            bits: 4,
            sym: false,
            group: 64,
        },
        SCHEMES[1],
        SCHEMES[2],
        SCHEMES[3],
        SCHEMES[4],
        SCHEMES[5],
        SCHEMES[6],
        SCHEMES[7],
        SCHEMES[8],
    ];
    let python = torch_python();
    let mut checks = vec![];
    for s in schemes {
        let out = export(&model, dir.path(), s);
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let p = "model.layers.3.mlp.down_proj";
        let d = decode(&st, p, s);
        assert_eq!((d.rows, d.cols), (w.shape[0], w.shape[1]));
        assert_near(&d, &w.data, s, &format!("{} {p}", s.name()));
        match s {
            Scheme::Nvfp4 => assert_library_nvfp4(&st, p, &w.data, d.rows, d.cols),
            Scheme::Mxfp4 | Scheme::Mxfp6 | Scheme::Mxfp8 => {
                assert_library_mx(&st, p, s, &w.data, d.rows, d.cols)
            }
            _ => {}
        }
        if python.is_some() {
            checks.push((out.clone(), write_reference(&out, s)));
        }
    }
    if let Some(python) = python {
        check_with_loaders(&python, &checks);
    }
}

/// A layer whose input width is not a whole number of MX or NVFP4 blocks is refused, naming it;
/// block FP8 takes it (compressed-tensors pads partial blocks).
#[test]
fn microscaling_widths_must_be_whole_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let (mut meta, mut ts) = tiny_llama();
    // An MLP width of 264: ffn_down's input (GGUF's first dimension) is 16.5 blocks of 16.
    for (k, v) in meta.iter_mut() {
        if k == "llama.feed_forward_length" {
            *v = quant_cli::model::Value::U32(264);
        }
    }
    for (i, t) in ts.iter_mut().enumerate() {
        if t.dims.contains(&256) {
            t.dims = t
                .dims
                .iter()
                .map(|&d| if d == 256 { 264 } else { d })
                .collect();
            t.data = values(t.dims.iter().product::<u64>() as usize, 100 + i as u32, 0.1);
        }
    }
    let input = dir.path().join("wide.gguf");
    write_gguf(&input, &meta, &ts);
    for (kind, block) in [("nvfp4", 16), ("mxfp4", 32), ("mxfp6", 32), ("mxfp8", 32)] {
        let out = dir.path().join(kind);
        let o = run(&[
            "export-compressed",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--type",
            kind,
        ]);
        let e = stderr(&o);
        assert!(!o.status.success(), "{kind}: {e}");
        assert!(
            e.contains("tensor 'blk.0.ffn_down.weight' (64 x 264)")
                && e.contains(&format!("multiple of {block}")),
            "{kind}: {e}"
        );
        assert!(!e.contains("ffn_up"), "{kind}: {e}");
        assert!(!out.exists());
    }
    let out = dir.path().join("fp8-block");
    let o = run(&[
        "export-compressed",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--type",
        "fp8-block",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let d = decode(&st, "model.layers.0.mlp.down_proj", Scheme::Fp8Block);
    assert_eq!((d.rows, d.cols), (64, 264));
    let x = &ts
        .iter()
        .find(|t| t.name == "blk.0.ffn_down.weight")
        .unwrap()
        .data;
    assert_near(&d, x, Scheme::Fp8Block, "fp8-block partial blocks");
}
