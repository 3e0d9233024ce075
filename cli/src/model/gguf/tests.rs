use super::*;
use crate::write::gguf::{encode_value, GgufWriter, TensorSpec};
use quant::kernels::ggml::{ggml_quantize, GgmlType};

fn all_types_metadata() -> Vec<(String, Value)> {
    let s = |k: &str, v: Value| (k.to_string(), v);
    vec![
        s("general.architecture", Value::string("llama")),
        s("u8", Value::U8(200)),
        s("i8", Value::I8(-100)),
        s("u16", Value::U16(60000)),
        s("i16", Value::I16(-30000)),
        s("u32", Value::U32(4_000_000_000)),
        s("i32", Value::I32(-2_000_000_000)),
        s("f32", Value::F32(1.5)),
        s("bool", Value::Bool(true)),
        s("string", Value::string("héllo")),
        s("u64", Value::U64(u64::MAX)),
        s("i64", Value::I64(i64::MIN)),
        s("f64", Value::F64(-0.25)),
        s(
            "tokens",
            Value::Array(
                ValueType::String,
                vec![
                    Value::string("a"),
                    Value::string(""),
                    Value::string("<0x0A>"),
                ],
            ),
        ),
        s("empty", Value::Array(ValueType::I32, vec![])),
        s(
            "nested",
            Value::Array(
                ValueType::Array,
                vec![
                    Value::Array(ValueType::U8, vec![Value::U8(1), Value::U8(2)]),
                    Value::Array(ValueType::Bool, vec![Value::Bool(false)]),
                ],
            ),
        ),
    ]
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32 - 0.5) * 2.0
        })
        .collect()
}

/// A small valid file with F32, F16, BF16, Q8_0 and Q4_K tensors; returns it and the f32 each
/// tensor decodes to.
fn sample_file(metadata: &[(String, Value)]) -> (Vec<u8>, Vec<(String, Vec<f32>)>) {
    let mut tensors = vec![];
    let mut datas: Vec<Vec<u8>> = vec![];
    let mut expect = vec![];
    let add = |name: &str,
               dims: Vec<u64>,
               dtype: DType,
               bytes: Vec<u8>,
               f: Vec<f32>,
               t: &mut Vec<TensorSpec>,
               d: &mut Vec<Vec<u8>>,
               e: &mut Vec<(String, Vec<f32>)>| {
        t.push(TensorSpec {
            name: name.into(),
            dims,
            dtype,
        });
        d.push(bytes);
        e.push((name.to_string(), f));
    };
    let v = values(8, 1);
    add(
        "norm.weight",
        vec![8],
        DType::F32,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        v.clone(),
        &mut tensors,
        &mut datas,
        &mut expect,
    );
    let h: Vec<half::f16> = values(6, 2)
        .iter()
        .map(|&x| half::f16::from_f32(x))
        .collect();
    add(
        "f16",
        vec![3, 2],
        DType::F16,
        h.iter().flat_map(|x| x.to_le_bytes()).collect(),
        h.iter().map(|x| x.to_f32()).collect(),
        &mut tensors,
        &mut datas,
        &mut expect,
    );
    let b: Vec<half::bf16> = values(4, 3)
        .iter()
        .map(|&x| half::bf16::from_f32(x))
        .collect();
    add(
        "bf16",
        vec![2, 2],
        DType::BF16,
        b.iter().flat_map(|x| x.to_le_bytes()).collect(),
        b.iter().map(|x| x.to_f32()).collect(),
        &mut tensors,
        &mut datas,
        &mut expect,
    );
    for (name, ty, cols) in [
        ("q8", GgmlType::Q8_0, 64usize),
        ("q4k", GgmlType::Q4_K, 256),
    ] {
        let x = values(cols * 3, 4);
        let mut q = vec![0u8; ty.row_size(cols).unwrap() * 3];
        ggml_quantize(ty, &x, 3, cols, &mut q).unwrap();
        let mut f = vec![0f32; cols * 3];
        quant::kernels::ggml::ggml_dequantize(ty, &q, cols * 3, &mut f).unwrap();
        add(
            name,
            vec![cols as u64, 3],
            ty.into(),
            q,
            f,
            &mut tensors,
            &mut datas,
            &mut expect,
        );
    }
    let mut w = GgufWriter::new(Vec::new(), metadata, tensors).unwrap();
    for d in &datas {
        w.write_tensor(d).unwrap();
    }
    (w.finish().unwrap(), expect)
}

fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, bytes).unwrap();
    f
}

#[test]
fn round_trip_every_value_type_and_tensor_type() {
    let meta = all_types_metadata();
    let (bytes, expect) = sample_file(&meta);
    let f = write_tmp(&bytes);
    let g = GgufFile::open(f.path()).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.metadata(), &meta[..]);
    assert_eq!(g.architecture(), Some("llama"));
    assert_eq!(g.get("string").unwrap().as_str(), Some("héllo"));
    assert_eq!(g.tensors().len(), expect.len());
    for (name, want) in &expect {
        let t = g.tensor_f32(name).unwrap();
        assert_eq!(&t.data, want, "{name}");
        let info = g.tensor(name).unwrap();
        assert_eq!(info.offset % 32, 0);
        assert_eq!(t.shape, info.shape());
    }
    assert_eq!(g.tensor("f16").unwrap().shape(), vec![2, 3]);
    assert_eq!(g.tensor("f16").unwrap().rows(), 2);
    assert_eq!(g.tensor("f16").unwrap().cols(), 3);
    let err = g.tensor_f32("missing").unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn custom_alignment_is_honoured() {
    let mut meta = all_types_metadata();
    meta.push(("general.alignment".into(), Value::U32(256)));
    let (bytes, expect) = sample_file(&meta);
    let h = Header::parse(&bytes).unwrap();
    assert_eq!(h.alignment, 256);
    assert_eq!(h.data_offset % 256, 0);
    for t in &h.tensors {
        assert_eq!(t.offset % 256, 0);
    }
    let f = write_tmp(&bytes);
    let g = GgufFile::open(f.path()).unwrap();
    for (name, want) in &expect {
        assert_eq!(&g.tensor_f32(name).unwrap().data, want);
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let (bytes, _) = sample_file(&all_types_metadata());
    for len in 0..bytes.len() - 1 {
        // The last tensor's padding may be cut without losing data; anything shorter than its end fails.
        let r = Header::parse(&bytes[..len]);
        let h = Header::parse(&bytes).unwrap();
        let last = h.tensors.last().unwrap();
        if (len as u64) < h.data_offset + last.offset + last.n_bytes {
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains("truncated")
                    || e.contains("beyond the end")
                    || e.contains("cannot fit")
                    || e.contains("remain"),
                "{len}: {e}"
            );
        }
    }
    let f = write_tmp(&bytes[..bytes.len() / 2]);
    let e = format!("{:#}", GgufFile::open(f.path()).err().unwrap());
    assert!(e.contains(&f.path().display().to_string()), "{e}");
    let empty = write_tmp(&[]);
    assert!(GgufFile::open(empty.path()).is_err());
}

#[test]
fn random_corruption_never_panics() {
    let (bytes, _) = sample_file(&all_types_metadata());
    let mut x = 0x9e3779b9u32;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as usize
    };
    for _ in 0..20000 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let i = next() % b.len();
            b[i] = match next() % 3 {
                0 => next() as u8,
                1 => 0xff,
                _ => 0,
            };
        }
        if let Ok(h) = Header::parse(&b) {
            for t in &h.tensors {
                let start = (h.data_offset + t.offset) as usize;
                let data = &b[start..start + t.n_bytes as usize];
                let mut out = vec![0f32; t.n_elements() as usize];
                let _ = dequantize(t.dtype, data, &mut out);
            }
        }
    }
}

/// Builds headers by hand for the corruptions the writer refuses to produce.
struct Raw(Vec<u8>);

impl Raw {
    fn new(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut v = b"GGUF".to_vec();
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&n_tensors.to_le_bytes());
        v.extend_from_slice(&n_kv.to_le_bytes());
        Raw(v)
    }
    fn kv(mut self, key: &str, v: &Value) -> Raw {
        encode_value(&mut self.0, &Value::string(key));
        self.0
            .extend_from_slice(&(v.value_type() as u32).to_le_bytes());
        encode_value(&mut self.0, v);
        self
    }
    fn bytes(mut self, b: &[u8]) -> Raw {
        self.0.extend_from_slice(b);
        self
    }
    fn tensor(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Raw {
        encode_value(&mut self.0, &Value::string(name));
        self.0.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.0.extend_from_slice(&d.to_le_bytes());
        }
        self.0.extend_from_slice(&ty.to_le_bytes());
        self.0.extend_from_slice(&offset.to_le_bytes());
        self
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(mut self, n: usize) -> Raw {
        self.0.resize(self.0.len().div_ceil(32) * 32 + n, 0);
        self
    }
    fn err(self) -> String {
        format!("{:#}", Header::parse(&self.0).unwrap_err())
    }
}

fn has(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "'{p}' not in: {e}");
    }
}

#[test]
fn bad_headers_are_named_errors() {
    has(&Raw(b"GGML\x03\0\0\0".to_vec()).err(), &["not a GGUF file"]);
    has(&Raw::new(1, 0, 0).err(), &["version 1"]);
    has(&Raw::new(4, 0, 0).err(), &["version 4"]);
    has(&Raw::new(0x0300_0000, 0, 0).err(), &["big-endian"]);
    has(
        &Raw::new(3, 0, 1u64 << 40).err(),
        &["metadata entries cannot fit"],
    );
    has(&Raw::new(3, 1u64 << 40, 0).err(), &["tensors cannot fit"]);
    has(
        &Raw::new(3, 0, 1)
            .bytes(&[3, 0, 0, 0, 0, 0, 0, 0])
            .bytes(b"key")
            .bytes(&99u32.to_le_bytes())
            .err(),
        &["'key'", "unknown value type 99"],
    );
    has(
        &Raw::new(3, 0, 1)
            .bytes(&(u64::MAX).to_le_bytes())
            .bytes(&[0; 16])
            .err(),
        &["metadata key 0", "claims"],
    );
    has(
        &Raw::new(3, 0, 1)
            .bytes(&[1, 0, 0, 0, 0, 0, 0, 0, b'k'])
            .bytes(&9u32.to_le_bytes())
            .bytes(&4u32.to_le_bytes())
            .bytes(&(1u64 << 60).to_le_bytes())
            .err(),
        &["'k'", "array of"],
    );
    has(
        &Raw::new(3, 0, 1)
            .bytes(&[1, 0, 0, 0, 0, 0, 0, 0, b'b'])
            .bytes(&7u32.to_le_bytes())
            .bytes(&[2])
            .err(),
        &["'b'", "bool holds 2"],
    );
    has(
        &Raw::new(3, 0, 2)
            .kv("a", &Value::U8(1))
            .kv("a", &Value::U8(2))
            .err(),
        &["'a' appears twice"],
    );
    has(
        &Raw::new(3, 0, 1)
            .kv("general.alignment", &Value::U32(48))
            .err(),
        &["general.alignment", "power of two"],
    );
    has(
        &Raw::new(3, 0, 1)
            .kv("general.alignment", &Value::U64(32))
            .err(),
        &["general.alignment"],
    );
}

#[test]
fn bad_tensor_infos_name_the_tensor() {
    has(
        &Raw::new(3, 1, 0)
            .tensor("blk.0.attn_q.weight", &[32, 2], 4, 0)
            .data(64)
            .err(),
        &["'blk.0.attn_q.weight'", "unknown ggml type 4"],
    );
    has(
        &Raw::new(3, 1, 0)
            .tensor("t", &[32, 2], 1000, 0)
            .data(64)
            .err(),
        &["'t'", "unknown ggml type 1000"],
    );
    has(
        &Raw::new(3, 1, 0)
            .tensor("t", &[32, 2], 0, 64)
            .data(256)
            .err(),
        &["'t'", "beyond the end"],
    );
    has(
        &Raw::new(3, 1, 0)
            .tensor("t", &[32, 2], 0, u64::MAX - 31)
            .data(256)
            .err(),
        &["'t'"],
    );
    has(
        &Raw::new(3, 1, 0)
            .tensor("t", &[32, 2], 0, 8)
            .data(512)
            .err(),
        &["'t'", "not a multiple of the alignment"],
    );
    has(
        &Raw::new(3, 1, 0)
            .tensor("t", &[48, 2], 8, 0)
            .data(512)
            .err(),
        &["'t'", "Q8_0", "block size 32"],
    );
    has(
        &Raw::new(3, 1, 0)
            .tensor("t", &[1, 1, 1, 1, 1], 0, 0)
            .data(32)
            .err(),
        &["'t'", "5 dimensions"],
    );
    has(
        &Raw::new(3, 1, 0)
            .tensor("t", &[1 << 40, 1 << 40], 0, 0)
            .data(32)
            .err(),
        &["'t'", "overflows"],
    );
    has(
        &Raw::new(3, 2, 0)
            .tensor("t", &[8], 0, 0)
            .tensor("t", &[8], 0, 32)
            .data(64)
            .err(),
        &["'t' appears twice"],
    );
    // Truncated inside the tensor infos.
    let mut r = Raw::new(3, 1, 0).tensor("blk.3.ffn_up.weight", &[32, 2], 0, 0);
    r.0.truncate(r.0.len() - 4);
    has(&r.err(), &["truncated", "'blk.3.ffn_up.weight'"]);
}

#[test]
fn unsupported_type_is_listed_but_not_dequantized() {
    let (bytes, _) = {
        // IQ3_S: 256 values in 110 bytes, known to ggml, not to the library.
        let tensors = vec![TensorSpec {
            name: "iq3".into(),
            dims: vec![256, 1],
            dtype: DType(21),
        }];
        let mut w = GgufWriter::new(Vec::new(), &[], tensors).unwrap();
        w.write_tensor(&[0u8; 110]).unwrap();
        (w.finish().unwrap(), ())
    };
    let f = write_tmp(&bytes);
    let g = GgufFile::open(f.path()).unwrap();
    assert_eq!(g.tensors()[0].dtype.name(), Some("IQ3_S"));
    let e = format!("{:#}", g.tensor_f32("iq3").unwrap_err());
    has(&e, &["'iq3'", "IQ3_S", "cannot be dequantized"]);
}

#[test]
fn non_finite_block_scale_names_the_tensor() {
    let tensors = vec![TensorSpec {
        name: "bad".into(),
        dims: vec![32],
        dtype: DType::Q8_0,
    }];
    let mut w = GgufWriter::new(Vec::new(), &[], tensors).unwrap();
    let mut block = [0u8; 34];
    block[..2].copy_from_slice(&0x7e00u16.to_le_bytes()); // f16 NaN scale
    w.write_tensor(&block).unwrap();
    let f = write_tmp(&w.finish().unwrap());
    let g = GgufFile::open(f.path()).unwrap();
    has(
        &format!("{:#}", g.tensor_f32("bad").unwrap_err()),
        &["'bad'", "Q8_0"],
    );
}

/// The real model: `QUANT_MODEL` (set by scripts/test-model.sh), or the cache of scripts/inputs.sh.
pub(crate) fn real_model() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("QUANT_MODEL") {
        let p = std::path::PathBuf::from(p);
        assert!(p.is_file(), "QUANT_MODEL={} does not exist", p.display());
        return Some(p);
    }
    let home = std::env::var_os("HOME")?;
    let p = std::path::Path::new(&home).join(".cache/quant/inputs/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("note: skipped, no real model (run scripts/inputs.sh or set QUANT_MODEL)");
        None
    }
}

#[test]
fn real_model_reads_and_dequantizes() {
    let Some(path) = real_model() else { return };
    let g = GgufFile::open(&path).unwrap();
    assert_eq!(g.architecture(), Some("llama"));
    assert_eq!(g.arch_get("block_count").and_then(Value::as_u64), Some(30));
    let tokens = g.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap();
    assert_eq!(tokens.len(), 49152);
    assert_eq!(g.tensors().len(), 272);
    let params: u64 = g.tensors().iter().map(|t| t.n_elements()).sum();
    assert!((134_000_000..136_000_000).contains(&params), "{params}");
    for name in [
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.29.ffn_norm.weight",
    ] {
        let t = g.tensor_f32(name).unwrap();
        assert!(t.data.iter().all(|v| v.is_finite()), "{name}");
        assert!(t.data.iter().any(|&v| v != 0.0), "{name}");
    }
    assert_eq!(
        g.tensor("token_embd.weight").unwrap().shape(),
        vec![49152, 576]
    );
}
