//! GGUF writer: the header (metadata in the given order, tensor infos with offsets computed from
//! their types and shapes) first, then each tensor's data in header order as it becomes available,
//! each padded to the alignment, so a caller holds one tensor at a time.
use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};

use crate::model::gguf::{Value, DEFAULT_ALIGNMENT, MAX_DIMS};
use crate::model::DType;

/// A tensor to be written: GGUF dims (`dims[0]` contiguous) and type.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub dtype: DType,
}

impl TensorSpec {
    pub fn n_bytes(&self) -> Result<u64> {
        let n = self
            .dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| anyhow!("tensor '{}': shape {:?} overflows", self.name, self.dims))?;
        self.dtype.bytes_for(n).ok_or_else(|| {
            anyhow!(
                "tensor '{}': shape {:?} cannot be stored as {} (rows of {} values, blocks of {})",
                self.name,
                self.dims,
                self.dtype,
                self.dims.first().copied().unwrap_or(1),
                self.dtype.block_size().unwrap_or(0)
            )
        })
    }
}

/// Appends the encoding of `v` (without its type tag) to `out`.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s);
        }
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(t, items) => {
            out.extend_from_slice(&(*t as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for e in items {
                encode_value(out, e);
            }
        }
    }
}

fn check_value(key: &str, v: &Value) -> Result<()> {
    if let Value::Array(t, items) = v {
        for e in items {
            if e.value_type() != *t {
                bail!(
                    "metadata '{key}': an array of {t:?} holds a {:?} element",
                    e.value_type()
                );
            }
            check_value(key, e)?;
        }
    }
    Ok(())
}

/// An encoded GGUF header.
pub struct EncodedHeader {
    /// Magic to padding: the data section starts right after.
    pub bytes: Vec<u8>,
    /// Each tensor's (offset in the data section, byte count).
    pub extents: Vec<(u64, u64)>,
    pub alignment: u64,
}

/// Encodes a whole GGUF header: magic, version 3, counts, metadata, tensor infos, padding to the
/// alignment.
pub fn encode_header(
    metadata: &[(String, Value)],
    tensors: &[TensorSpec],
) -> Result<EncodedHeader> {
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) if *a != 0 && a.is_power_of_two() => u64::from(*a),
        Some((_, v)) => bail!("general.alignment is {v}: it must be a u32 power of two"),
    };
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    let mut seen = std::collections::HashSet::new();
    for (k, v) in metadata {
        if k.is_empty() || !seen.insert(k.as_str()) {
            bail!("metadata key '{k}' is empty or repeated");
        }
        check_value(k, v)?;
        encode_value(&mut out, &Value::string(k));
        out.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
        encode_value(&mut out, v);
    }
    let mut extents = Vec::with_capacity(tensors.len());
    let mut offset = 0u64;
    let mut names = std::collections::HashSet::new();
    for t in tensors {
        if !names.insert(t.name.as_str()) {
            bail!("tensor '{}' appears twice", t.name);
        }
        // ggml stores names in 64 bytes with a terminating zero.
        if t.name.len() >= 64 {
            bail!("tensor name '{}' is longer than ggml's 63 bytes", t.name);
        }
        if t.dims.is_empty() || t.dims.len() > MAX_DIMS {
            bail!(
                "tensor '{}': {} dimensions (1 to {MAX_DIMS})",
                t.name,
                t.dims.len()
            );
        }
        let n_bytes = t.n_bytes()?;
        encode_value(&mut out, &Value::string(&t.name));
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.dtype.0.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        extents.push((offset, n_bytes));
        offset = (offset + n_bytes).div_ceil(alignment) * alignment;
    }
    out.resize(
        (out.len() as u64).div_ceil(alignment) as usize * alignment as usize,
        0,
    );
    Ok(EncodedHeader {
        bytes: out,
        extents,
        alignment,
    })
}

/// Streams a GGUF file: [`GgufWriter::new`] writes the header, [`GgufWriter::write_tensor`] each
/// tensor's data in header order, [`GgufWriter::finish`] checks that all were written.
pub struct GgufWriter<W: Write> {
    w: W,
    tensors: Vec<TensorSpec>,
    extents: Vec<(u64, u64)>,
    alignment: u64,
    next: usize,
    written: u64,
}

impl<W: Write> GgufWriter<W> {
    pub fn new(mut w: W, metadata: &[(String, Value)], tensors: Vec<TensorSpec>) -> Result<Self> {
        let EncodedHeader {
            bytes,
            extents,
            alignment,
        } = encode_header(metadata, &tensors)?;
        w.write_all(&bytes).context("writing the GGUF header")?;
        Ok(GgufWriter {
            w,
            tensors,
            extents,
            alignment,
            next: 0,
            written: 0,
        })
    }

    /// The tensor the next [`write_tensor`](Self::write_tensor) call must provide.
    pub fn next_tensor(&self) -> Option<&TensorSpec> {
        self.tensors.get(self.next)
    }

    /// Writes the data of the next tensor (`data.len()` must be its byte count), then its padding.
    pub fn write_tensor(&mut self, data: &[u8]) -> Result<()> {
        let t = self
            .tensors
            .get(self.next)
            .ok_or_else(|| anyhow!("every tensor is already written"))?;
        let (offset, n_bytes) = self.extents[self.next];
        if data.len() as u64 != n_bytes {
            bail!(
                "tensor '{}' ({} {:?}) takes {n_bytes} bytes, got {}",
                t.name,
                t.dtype,
                t.dims,
                data.len()
            );
        }
        debug_assert_eq!(offset, self.written);
        self.w
            .write_all(data)
            .with_context(|| format!("writing tensor '{}'", t.name))?;
        let end = (self.written + n_bytes).div_ceil(self.alignment) * self.alignment;
        let mut pad = (end - self.written - n_bytes) as usize;
        while pad > 0 {
            let k = pad.min(256);
            self.w
                .write_all(&[0u8; 256][..k])
                .with_context(|| format!("writing tensor '{}'", t.name))?;
            pad -= k;
        }
        self.written = end;
        self.next += 1;
        Ok(())
    }

    /// Flushes and returns the sink once every tensor is written.
    pub fn finish(mut self) -> Result<W> {
        if let Some(t) = self.tensors.get(self.next) {
            bail!("tensor '{}' was never written", t.name);
        }
        self.w.flush().context("flushing the GGUF file")?;
        Ok(self.w)
    }
}
