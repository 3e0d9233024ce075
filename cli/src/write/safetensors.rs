//! Streaming safetensors writer: the header (every tensor's dtype, shape and byte range, known in
//! advance) first, then each tensor's bytes in header order, so one tensor is in memory at a time.
//! Format: u64 header length, the JSON header padded with spaces to 8 bytes, the data.
use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value as Json};

/// A tensor to be written.
#[derive(Clone, Debug)]
pub struct StTensor {
    pub name: String,
    /// "F32", "F16", "BF16", "I32", "U8", ...
    pub dtype: String,
    pub shape: Vec<usize>,
    pub n_bytes: usize,
}

pub struct SafetensorsWriter<W: Write> {
    w: W,
    tensors: Vec<StTensor>,
    next: usize,
}

impl<W: Write> SafetensorsWriter<W> {
    /// Writes the header; `metadata` becomes `__metadata__` (string values).
    pub fn new(mut w: W, tensors: Vec<StTensor>, metadata: &[(&str, &str)]) -> Result<Self> {
        let mut header = Map::new();
        if !metadata.is_empty() {
            let m: Map<String, Json> = metadata
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            header.insert("__metadata__".into(), Json::Object(m));
        }
        let mut offset = 0usize;
        for t in &tensors {
            if header.contains_key(&t.name) {
                bail!("tensor '{}' appears twice", t.name);
            }
            header.insert(
                t.name.clone(),
                json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.n_bytes]}),
            );
            offset += t.n_bytes;
        }
        let mut text = serde_json::to_vec(&Json::Object(header))?;
        text.resize(text.len().div_ceil(8) * 8, b' ');
        w.write_all(&(text.len() as u64).to_le_bytes())
            .and_then(|_| w.write_all(&text))
            .context("writing the safetensors header")?;
        Ok(SafetensorsWriter {
            w,
            tensors,
            next: 0,
        })
    }

    /// Writes the next tensor's bytes.
    pub fn write_tensor(&mut self, data: &[u8]) -> Result<()> {
        let t = self
            .tensors
            .get(self.next)
            .ok_or_else(|| anyhow!("every tensor is already written"))?;
        if data.len() != t.n_bytes {
            bail!(
                "tensor '{}' takes {} bytes, got {}",
                t.name,
                t.n_bytes,
                data.len()
            );
        }
        self.w
            .write_all(data)
            .with_context(|| format!("writing tensor '{}'", t.name))?;
        self.next += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<W> {
        if let Some(t) = self.tensors.get(self.next) {
            bail!("tensor '{}' was never written", t.name);
        }
        self.w.flush().context("flushing the safetensors file")?;
        Ok(self.w)
    }
}
