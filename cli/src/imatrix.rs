//! Importance matrices as llama.cpp keeps them: for every block linear layer, the sum over the
//! calibration tokens of each input column's square, and the number of tokens. llama-quantize weights
//! each column's rounding error by their ratio (the mean squared input); `quant quantize --imatrix`
//! does the same through the library's weighted GGUF quantizers.
//!
//! - [`Imatrix::read`] reads llama-imatrix's files: the GGUF format (`NAME.in_sum2` and `NAME.counts`
//!   f32 tensors, `imatrix.*` metadata) and the legacy `.dat` format.
//! - [`Imatrix::write`] writes the GGUF format, which llama-quantize reads.
//! - [`collect`] computes one with the model's own forward pass on a calibration text, as
//!   llama-imatrix does (the model as it is, every token of every chunk, the inputs of each
//!   `blk.*` matrix multiplication).
use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use crate::arch::llama::{Linear, Tap};
use crate::calibrate::{self, CalibOptions, SquareSums};
use crate::eval;
use crate::model::gguf::{Value, ValueType};
use crate::model::{DType, GgufFile};
use crate::write;
use crate::write::gguf::{GgufWriter, TensorSpec};

/// Metadata keys of llama-imatrix's GGUF files.
const KEY_DATASETS: &str = "imatrix.datasets";
const KEY_CHUNK_COUNT: &str = "imatrix.chunk_count";
const KEY_CHUNK_SIZE: &str = "imatrix.chunk_size";

/// One weight's statistics: `sums` holds `cols * nmat` values (one run of `cols` per expert matrix,
/// one matrix for a dense layer), `counts` one token count per matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Stat {
    pub sums: Vec<f32>,
    pub counts: Vec<u64>,
}

/// An importance matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Imatrix {
    /// GGUF weight name -> statistics, sorted by name (the order files store them in).
    pub entries: BTreeMap<String, Stat>,
    /// The calibration texts, as the file names them.
    pub datasets: Vec<String>,
    /// Chunks (samples) the statistics were computed on, and tokens per chunk.
    pub chunk_count: u32,
    pub chunk_size: u32,
    /// Read from a legacy `.dat` file, whose sums are already means times the call count.
    pub legacy: bool,
}

impl Imatrix {
    /// The per-column weights of `name` as llama-quantize derives them: each matrix's sums divided
    /// by its token count (in f32, as there), all ones for a matrix no token reached. `None` when
    /// the file has no entry for `name`.
    pub fn weights(&self, name: &str) -> Option<Vec<f32>> {
        let s = self.entries.get(name)?;
        if self.legacy {
            let ncall = s.counts.first().copied().unwrap_or(0);
            return Some(if ncall > 0 {
                s.sums.iter().map(|&v| v / ncall as f32).collect()
            } else {
                s.sums.clone()
            });
        }
        let per = s.sums.len() / s.counts.len().max(1);
        let mut w = vec![1f32; s.sums.len()];
        for (j, &c) in s.counts.iter().enumerate() {
            if c > 0 {
                for (o, &v) in w[j * per..(j + 1) * per]
                    .iter_mut()
                    .zip(&s.sums[j * per..(j + 1) * per])
                {
                    *o = v / c as f32;
                }
            }
        }
        Some(w)
    }

    /// Reads an imatrix file (GGUF or legacy `.dat`, told apart by the GGUF magic).
    pub fn read(path: &Path) -> Result<Imatrix> {
        let mut magic = [0u8; 4];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path)
                .with_context(|| format!("{}: cannot open the imatrix", path.display()))?;
            let n = f.read(&mut magic).unwrap_or(0);
            if n < 4 {
                bail!(
                    "{}: not an imatrix file (shorter than 4 bytes)",
                    path.display()
                );
            }
        }
        let m = if &magic == b"GGUF" {
            read_gguf(path)
        } else {
            let bytes = std::fs::read(path)
                .with_context(|| format!("{}: cannot read the imatrix", path.display()))?;
            parse_legacy(&bytes)
        }
        .with_context(|| format!("{}: imatrix", path.display()))?;
        m.check().with_context(|| format!("{}", path.display()))?;
        Ok(m)
    }

    /// Refuses what llama-quantize refuses (a non-finite value) and what no sum of squares can be.
    fn check(&self) -> Result<()> {
        for (name, s) in &self.entries {
            if s.counts.is_empty() || s.sums.is_empty() || s.sums.len() % s.counts.len() != 0 {
                bail!(
                    "imatrix entry '{name}': {} sums for {} matrices",
                    s.sums.len(),
                    s.counts.len()
                );
            }
            if let Some((i, v)) = s
                .sums
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_finite() || **v < 0.0)
            {
                bail!("imatrix entry '{name}': value {i} is {v} (sums of squares are finite and >= 0)");
            }
        }
        Ok(())
    }

    /// Writes the GGUF format (as llama-imatrix does: `general.type = imatrix`, the datasets, chunk
    /// count and size, then per weight in name order `NAME.in_sum2` `[cols, nmat]` and `NAME.counts`
    /// `[1, nmat]`, both f32). The file appears only when complete.
    pub fn write(&self, path: &Path) -> Result<()> {
        if self.legacy {
            bail!("a legacy imatrix holds means, not sums: it cannot be written as GGUF");
        }
        let metadata = vec![
            ("general.type".to_string(), Value::string("imatrix")),
            (
                KEY_DATASETS.to_string(),
                Value::Array(
                    ValueType::String,
                    self.datasets.iter().map(|d| Value::string(d)).collect(),
                ),
            ),
            (KEY_CHUNK_COUNT.to_string(), Value::U32(self.chunk_count)),
            (KEY_CHUNK_SIZE.to_string(), Value::U32(self.chunk_size)),
        ];
        let mut specs = Vec::new();
        for (name, s) in &self.entries {
            let nmat = s.counts.len() as u64;
            specs.push(TensorSpec {
                name: format!("{name}.in_sum2"),
                dims: vec![s.sums.len() as u64 / nmat, nmat],
                dtype: DType::F32,
            });
            specs.push(TensorSpec {
                name: format!("{name}.counts"),
                dims: vec![1, nmat],
                dtype: DType::F32,
            });
        }
        let tmp = write::file_beside(path)?;
        let ctx = || format!("{}", path.display());
        let mut w =
            GgufWriter::new(BufWriter::new(tmp.as_file()), &metadata, specs).with_context(ctx)?;
        let le = |v: &mut dyn Iterator<Item = f32>| -> Vec<u8> {
            v.flat_map(|x| x.to_le_bytes()).collect()
        };
        for s in self.entries.values() {
            w.write_tensor(&le(&mut s.sums.iter().copied()))
                .with_context(ctx)?;
            w.write_tensor(&le(&mut s.counts.iter().map(|&c| c as f32)))
                .with_context(ctx)?;
        }
        w.finish().with_context(ctx)?.flush().with_context(ctx)?;
        write::finish_file(tmp, path)
    }
}

/// The GGUF format: pairs of `NAME.in_sum2` / `NAME.counts` f32 tensors.
fn read_gguf(path: &Path) -> Result<Imatrix> {
    let g = GgufFile::open(path)?;
    let mut sums: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for t in g.tensors() {
        let (name, is_sums) = if let Some(n) = t.name.strip_suffix(".in_sum2") {
            (n, true)
        } else if let Some(n) = t.name.strip_suffix(".counts") {
            (n, false)
        } else {
            continue;
        };
        if t.dtype != DType::F32 {
            bail!("tensor '{}' is {}, not F32", t.name, t.dtype);
        }
        let v: Vec<f32> = g
            .data(t)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if is_sums {
            sums.insert(name.to_string(), v);
        } else {
            // llama.cpp rounds the stored f32 counts to integers (lround).
            let c = v
                .iter()
                .map(|&c| {
                    if c.is_finite() && c >= 0.0 {
                        Ok(c.round() as u64)
                    } else {
                        Err(anyhow!("tensor '{}': count {c}", t.name))
                    }
                })
                .collect::<Result<_>>()?;
            counts.insert(name.to_string(), c);
        }
    }
    let mut entries = BTreeMap::new();
    for (name, s) in sums {
        let c = counts
            .remove(&name)
            .ok_or_else(|| anyhow!("'{name}.in_sum2' has no '{name}.counts'"))?;
        entries.insert(name, Stat { sums: s, counts: c });
    }
    if let Some(name) = counts.keys().next() {
        bail!("'{name}.counts' has no '{name}.in_sum2'");
    }
    let u32_of = |k: &str| g.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
    let datasets = match g.get(KEY_DATASETS).and_then(Value::as_array) {
        Some(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        None => vec![],
    };
    Ok(Imatrix {
        entries,
        datasets,
        chunk_count: u32_of(KEY_CHUNK_COUNT),
        chunk_size: u32_of(KEY_CHUNK_SIZE),
        legacy: false,
    })
}

/// The legacy format: `i32 n`, then per entry `i32 len, name, i32 ncall, i32 nval, f32[nval]`
/// (means times ncall), then optionally `i32 chunks` and `i32 len, dataset`.
fn parse_legacy(b: &[u8]) -> Result<Imatrix> {
    let mut at = 0usize;
    let mut take = |n: usize, what: &str| -> Result<&[u8]> {
        let end = at
            .checked_add(n)
            .filter(|&e| e <= b.len())
            .ok_or_else(|| anyhow!("truncated at byte {at} (reading {what})"))?;
        let s = &b[at..end];
        at = end;
        Ok(s)
    };
    fn i32_of(s: &[u8]) -> i32 {
        i32::from_le_bytes([s[0], s[1], s[2], s[3]])
    }
    let n = i32_of(take(4, "the entry count")?);
    if n < 1 {
        bail!("{n} entries: not a legacy imatrix (nor a GGUF one)");
    }
    let mut entries = BTreeMap::new();
    for i in 0..n {
        let len = i32_of(take(4, "a name length")?);
        if !(1..=4096).contains(&len) {
            bail!("entry {i}: name length {len}");
        }
        let name = String::from_utf8(take(len as usize, "a name")?.to_vec())
            .map_err(|_| anyhow!("entry {i}: the name is not UTF-8"))?;
        let ncall = i32_of(take(4, "a call count")?);
        let nval = i32_of(take(4, "a value count")?);
        if ncall < 0 || nval < 1 {
            bail!("entry '{name}': {ncall} calls, {nval} values");
        }
        let sums = take(nval as usize * 4, "the values")?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        entries.insert(
            name,
            Stat {
                sums,
                counts: vec![ncall as u64],
            },
        );
    }
    let mut chunk_count = 0;
    let mut datasets = vec![];
    if let Ok(c) = take(4, "the chunk count") {
        chunk_count = i32_of(c).max(0) as u32;
        if let Ok(l) = take(4, "the dataset name length") {
            let l = i32_of(l);
            if l > 0 {
                let d = take(l as usize, "the dataset name")?;
                datasets.push(String::from_utf8_lossy(d).into_owned());
            }
        }
    }
    Ok(Imatrix {
        entries,
        datasets,
        chunk_count,
        chunk_size: 0,
        legacy: true,
    })
}

/// The importance matrix of the GGUF Llama model `g` on the calibration text of `opts` (samples cut
/// as `quant quantize --method gptq` and llama-imatrix cut them): each block runs with the model's
/// own weights, and the inputs its seven linear layers read are squared and summed per column.
pub fn collect(g: &GgufFile, opts: &CalibOptions, quiet: bool) -> Result<Imatrix> {
    let t0 = Instant::now();
    let samples = calibrate::model_samples(g, opts)?.calib;
    let model = eval::llama(g)?;
    let n_layer = model.config().n_layer;
    let mut xs: Vec<Vec<f32>> = samples
        .iter()
        .map(|s| model.embed(s))
        .collect::<Result<_>>()?;
    let bar = calibrate::block_bar("imatrix", n_layer, quiet);
    let mut entries = BTreeMap::new();
    for l in 0..n_layer {
        let mut acc: HashMap<Tap, SquareSums> = HashMap::new();
        for x in &mut xs {
            model.block(l, x, &mut |tap, data| {
                let width = tap_width(&model, tap);
                acc.entry(tap)
                    .or_insert_with(|| SquareSums::new(width))
                    .add(data);
            })?;
        }
        for which in Linear::ALL {
            let a = acc
                .get(&which.input())
                .ok_or_else(|| anyhow!("block {l}: the input of {which:?} was never computed"))?;
            if let Some((i, v)) = a.sums.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                bail!(
                    "{}: column {i} of its input sums to {v}: the activations overflow",
                    which.gguf_name(l)
                );
            }
            entries.insert(
                which.gguf_name(l),
                Stat {
                    sums: a.as_f32(),
                    counts: vec![a.tokens],
                },
            );
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !quiet {
        eprintln!(
            "imatrix: {} entries from {} samples of {} tokens in {:.1} s",
            entries.len(),
            samples.len(),
            opts.seq_len,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(Imatrix {
        entries,
        datasets: vec![opts.text.display().to_string()],
        chunk_count: samples.len() as u32,
        chunk_size: opts.seq_len as u32,
        legacy: false,
    })
}

/// Columns of the input `tap`.
pub fn tap_width(model: &crate::arch::llama::Llama, tap: Tap) -> usize {
    let c = model.config();
    match tap {
        Tap::AttnIn | Tap::FfnIn => c.n_embd,
        Tap::AttnOut => c.n_head * c.head_dim(),
        Tap::FfnAct => c.n_ff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Imatrix {
        let mut entries = BTreeMap::new();
        entries.insert(
            "blk.0.attn_q.weight".to_string(),
            Stat {
                sums: vec![3.0, 0.5, 0.0, 12.25],
                counts: vec![4],
            },
        );
        entries.insert(
            "blk.0.ffn_down.weight".to_string(),
            Stat {
                sums: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                counts: vec![3, 0],
            },
        );
        Imatrix {
            entries,
            datasets: vec!["calib.txt".into()],
            chunk_count: 2,
            chunk_size: 2,
            legacy: false,
        }
    }

    #[test]
    fn gguf_round_trip_and_weights() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        let m = sample();
        m.write(&p).unwrap();
        let r = Imatrix::read(&p).unwrap();
        assert_eq!(r, m);
        assert_eq!(
            r.weights("blk.0.attn_q.weight").unwrap(),
            vec![0.75, 0.125, 0.0, 3.0625]
        );
        // A matrix no token reached weighs 1 everywhere (llama-quantize's rule).
        assert_eq!(
            r.weights("blk.0.ffn_down.weight").unwrap(),
            vec![1.0 / 3.0, 2.0 / 3.0, 1.0, 1.0, 1.0, 1.0]
        );
        assert!(r.weights("output.weight").is_none());
    }

    #[test]
    fn legacy_format() {
        let mut b = Vec::new();
        b.extend(1i32.to_le_bytes());
        let name = b"blk.3.ffn_up.weight";
        b.extend((name.len() as i32).to_le_bytes());
        b.extend(name);
        b.extend(4i32.to_le_bytes());
        b.extend(2i32.to_le_bytes());
        for v in [8.0f32, 2.0] {
            b.extend(v.to_le_bytes());
        }
        b.extend(10i32.to_le_bytes());
        b.extend(3i32.to_le_bytes());
        b.extend(b"a.t");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.dat");
        std::fs::write(&p, &b).unwrap();
        let m = Imatrix::read(&p).unwrap();
        assert!(m.legacy);
        assert_eq!(m.chunk_count, 10);
        assert_eq!(m.datasets, vec!["a.t".to_string()]);
        assert_eq!(m.weights("blk.3.ffn_up.weight").unwrap(), vec![2.0, 0.5]);
        // Every truncation is an error, never a panic.
        // (The trailer after the entries is optional.)
        for n in 0..4 + 4 + name.len() + 8 + 8 {
            std::fs::write(&p, &b[..n]).unwrap();
            assert!(Imatrix::read(&p).is_err(), "truncated at {n}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        for bad in [f32::NAN, f32::INFINITY, -1.0] {
            let mut m = sample();
            m.entries.get_mut("blk.0.attn_q.weight").unwrap().sums[2] = bad;
            m.write(&p).unwrap();
            let e = format!("{:#}", Imatrix::read(&p).unwrap_err());
            assert!(
                e.contains("blk.0.attn_q.weight") && e.contains("value 2"),
                "{e}"
            );
        }
    }
}
