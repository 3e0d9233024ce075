//! GGUF reader: the file is mapped (memmap2) and parsed once into its metadata (every GGUF value
//! type, arrays included, in file order) and tensor infos; tensor data are borrowed from the map.
//!
//! Format (little-endian; ggml/src/gguf.cpp and gguf-py are the references): magic "GGUF", version
//! u32 (2 or 3; v1 is refused like llama.cpp refuses it), tensor count u64, metadata count u64; the
//! metadata (key string, value type u32, value); the tensor infos (name string, n_dims u32, dims u64
//! each with dims\[0\] the contiguous one, ggml type u32, offset u64 relative to the data section);
//! padding to `general.alignment` (u32, power of two, default 32); the data section.
//! A string is a u64 length and its bytes; an array is an element type u32, a count u64 and the
//! elements.
//!
//! Every length, count, shape and offset is checked against the file before it is used, so a
//! truncated or corrupt file is an error naming the file (and the key or tensor), never a panic or a
//! huge allocation.
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use memmap2::Mmap;

use super::dtype::{dequantize, DType};
use super::Tensor;

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's GGML_MAX_DIMS.
pub const MAX_DIMS: usize = 4;
/// Arrays nested deeper than this are refused (gguf.cpp refuses any nesting; gguf-py allows it).
const MAX_DEPTH: usize = 8;

/// GGUF metadata value types (`enum gguf_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_u32(v: u32) -> Option<Self> {
        use ValueType::*;
        Some(match v {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Bytes of one value in the file, for the fixed-size types.
    fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// Fewest bytes one value takes in the file (bounds array counts before any allocation).
    fn min_size(self) -> usize {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            t => t.fixed_size().unwrap_or(1),
        }
    }
}

/// A metadata value. Strings keep their bytes as stored (GGUF strings are meant to be UTF-8, but
/// copying a file must not depend on it); [`Value::as_str`] gives them as text.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(Vec<u8>),
    U64(u64),
    I64(i64),
    F64(f64),
    /// Element type and elements (all of that type; nested arrays are `Array` elements).
    Array(ValueType, Vec<Value>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
            Value::Array(..) => ValueType::Array,
        }
    }

    pub fn string(s: &str) -> Value {
        Value::String(s.as_bytes().to_vec())
    }

    /// The string as UTF-8 text (`None` for other types or invalid UTF-8).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Any integer value that fits a u64 (GGUF writers differ on u32/i32/u64 for counts).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            Value::Bool(v) => Some(v.into()),
            _ => None,
        }
    }

    /// Any integer value that fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// Any numeric value as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The elements of an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(_, v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// Short form for listings: arrays show their type, length and first elements.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::String(b) => {
                let s = String::from_utf8_lossy(b);
                if s.chars().count() > 60 {
                    let head: String = s.chars().take(60).collect();
                    write!(f, "{head:?}...")
                } else {
                    write!(f, "{s:?}")
                }
            }
            Value::Array(t, v) => {
                write!(f, "[{t:?}; {}]", v.len())?;
                if !v.is_empty() {
                    write!(f, " ")?;
                    for (i, e) in v.iter().take(3).enumerate() {
                        if i > 0 {
                            write!(f, ", ")?;
                        }
                        write!(f, "{e}")?;
                    }
                    if v.len() > 3 {
                        write!(f, ", ...")?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// One tensor's header entry.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF dims (`ne`): `dims[0]` is the contiguous one (the row length).
    pub dims: Vec<u64>,
    pub dtype: DType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Bytes of data.
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Row-major shape (outermost first): GGUF dims reversed, so a matrix is `[ne1, ne0]`.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Row length (`ne0`; 1 for a scalar).
    pub fn cols(&self) -> usize {
        self.dims.first().copied().unwrap_or(1) as usize
    }

    /// Number of rows: the product of every dim but the first.
    pub fn rows(&self) -> usize {
        self.dims.iter().skip(1).product::<u64>() as usize
    }
}

/// The parsed header of a GGUF file: everything but the tensor data.
#[derive(Clone, Debug)]
pub struct Header {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// File offset of the data section.
    pub data_offset: u64,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let rest = self.buf.len() - self.pos;
        if n > rest {
            bail!(
                "truncated: {} needs {n} bytes at offset {} but the file ends {rest} bytes later",
                what(),
                self.pos
            );
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        Ok(self.take(N, what)?.try_into().expect("length checked"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let n = self.u64(&|| format!("the length of {}", what()))?;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or_else(|| {
                anyhow!(
                    "{} claims {n} bytes at offset {} but only {} remain in the file",
                    what(),
                    self.pos,
                    self.remaining()
                )
            })?;
        self.take(n, what)
    }

    fn value(&mut self, t: ValueType, depth: usize, what: &dyn Fn() -> String) -> Result<Value> {
        Ok(match t {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => bail!("{}: a bool holds {b}, not 0 or 1", what()),
            },
            ValueType::String => Value::String(self.string(what)?.to_vec()),
            ValueType::Array => {
                if depth >= MAX_DEPTH {
                    bail!("{}: arrays nested more than {MAX_DEPTH} deep", what());
                }
                let et = self.u32(&|| format!("the element type of {}", what()))?;
                let et = ValueType::from_u32(et)
                    .ok_or_else(|| anyhow!("{}: unknown array element type {et}", what()))?;
                let n = self.u64(&|| format!("the length of {}", what()))?;
                // Bound the count by the bytes left before allocating anything for it.
                let max = (self.remaining() / et.min_size()) as u64;
                if n > max {
                    bail!(
                        "{}: array of {n} {et:?} values cannot fit in the {} bytes left in the file",
                        what(),
                        self.remaining()
                    );
                }
                let mut items = Vec::with_capacity(n as usize);
                for i in 0..n {
                    items.push(self.value(et, depth + 1, &|| format!("{}[{i}]", what()))?);
                }
                Value::Array(et, items)
            }
        })
    }
}

impl Header {
    /// Parses the header of a GGUF file held in `buf`, checking every tensor's extent against
    /// `buf.len()`. Errors name the key or tensor (the caller adds the file name).
    pub fn parse(buf: &[u8]) -> Result<Header> {
        let mut c = Cursor { buf, pos: 0 };
        let magic = c.array::<4>(&|| "the magic".into())?;
        if &magic != MAGIC {
            bail!("not a GGUF file: it starts with {magic:02x?}, not \"GGUF\"");
        }
        let version = c.u32(&|| "the version".into())?;
        if version & 0xffff == 0 && version != 0 {
            bail!(
                "GGUF version {version:#x}: a big-endian file (or corrupt); only little-endian GGUF is read"
            );
        }
        match version {
            1 => bail!("GGUF version 1 is not supported (llama.cpp dropped it too): convert the file again"),
            2 | 3 => {}
            v => bail!("GGUF version {v} is not supported (versions 2 and 3 are)"),
        }
        let n_tensors = c.u64(&|| "the tensor count".into())?;
        let n_kv = c.u64(&|| "the metadata count".into())?;
        // The smallest key-value is 8 + 1 + 4 + 1 bytes, the smallest tensor info 8 + 4 + 4 + 8.
        if n_kv > (c.remaining() / 14) as u64 {
            bail!(
                "truncated or corrupt: {n_kv} metadata entries cannot fit in a {}-byte file",
                buf.len()
            );
        }
        if n_tensors > (c.remaining() / 24) as u64 {
            bail!(
                "truncated or corrupt: {n_tensors} tensors cannot fit in a {}-byte file",
                buf.len()
            );
        }

        let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv as usize);
        let mut keys = HashMap::new();
        for i in 0..n_kv {
            let key = c.string(&|| format!("metadata key {i}"))?;
            let key = std::str::from_utf8(key)
                .map_err(|_| anyhow!("metadata key {i} is not UTF-8: {key:02x?}"))?
                .to_string();
            if key.is_empty() {
                bail!("metadata key {i} is empty");
            }
            let t = c.u32(&|| format!("the type of metadata '{key}'"))?;
            let t = ValueType::from_u32(t)
                .ok_or_else(|| anyhow!("metadata '{key}' has unknown value type {t}"))?;
            let v = c.value(t, 0, &|| format!("metadata '{key}'"))?;
            if keys.insert(key.clone(), i).is_some() {
                bail!("metadata key '{key}' appears twice");
            }
            metadata.push((key, v));
        }

        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) if *a != 0 && a.is_power_of_two() => u64::from(*a),
            Some((_, v)) => bail!(
                "general.alignment is {v} ({:?}): it must be a u32 power of two",
                v.value_type()
            ),
        };

        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
        let mut names = HashMap::new();
        for i in 0..n_tensors {
            let name = c.string(&|| format!("the name of tensor {i}"))?;
            let name = std::str::from_utf8(name)
                .map_err(|_| anyhow!("the name of tensor {i} is not UTF-8: {name:02x?}"))?
                .to_string();
            if names.insert(name.clone(), i).is_some() {
                bail!("tensor '{name}' appears twice");
            }
            let what = |field: &str| format!("the {field} of tensor '{name}'");
            let n_dims = c.u32(&|| what("dimension count"))? as usize;
            if n_dims > MAX_DIMS {
                bail!("tensor '{name}' has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}");
            }
            let mut dims = Vec::with_capacity(n_dims);
            for d in 0..n_dims {
                let ne = c.u64(&|| what(&format!("dimension {d}")))?;
                if ne > i64::MAX as u64 {
                    bail!("tensor '{name}': dimension {d} is {ne}, beyond int64");
                }
                dims.push(ne);
            }
            let dtype = DType(c.u32(&|| what("type"))?);
            let offset = c.u64(&|| what("offset"))?;
            if !dtype.is_known() {
                bail!("tensor '{name}' has unknown ggml type {}", dtype.0);
            }
            let n = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .filter(|&n| n <= i64::MAX as u64)
                .ok_or_else(|| anyhow!("tensor '{name}': shape {dims:?} overflows"))?;
            let bs = dtype.block_size().expect("known") as u64;
            let ne0 = dims.first().copied().unwrap_or(1);
            if ne0 % bs != 0 {
                bail!(
                    "tensor '{name}' ({dtype}, shape {dims:?}): a row of {ne0} values is not a \
                     multiple of the {dtype} block size {bs}"
                );
            }
            let n_bytes = dtype.bytes_for(n).ok_or_else(|| {
                anyhow!("tensor '{name}': the size of {n} {dtype} values overflows")
            })?;
            if offset % alignment != 0 {
                bail!(
                    "tensor '{name}': data offset {offset} is not a multiple of the alignment {alignment}"
                );
            }
            tensors.push(TensorInfo {
                name,
                dims,
                dtype,
                offset,
                n_bytes,
            });
        }

        let pos = c.pos as u64;
        let data_offset = pos.div_ceil(alignment) * alignment;
        let len = buf.len() as u64;
        for t in &tensors {
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.n_bytes));
            match end {
                Some(end) if end <= len => {}
                _ => bail!(
                    "tensor '{}' ({} bytes at data offset {}) extends beyond the end of the file \
                     ({len} bytes, data section at {data_offset}): truncated or corrupt",
                    t.name,
                    t.n_bytes,
                    t.offset
                ),
            }
        }
        Ok(Header {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }
}

/// A mapped GGUF file.
pub struct GgufFile {
    path: PathBuf,
    map: Option<Mmap>,
    header: Header,
    index: HashMap<String, usize>,
}

impl GgufFile {
    /// Maps and parses `path`. The map assumes nobody rewrites the file while it is open (the usual
    /// contract of memory-mapped model loaders).
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).with_context(|| format!("{}: cannot open", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("{}: cannot stat", path.display()))?
            .len();
        // Mapping an empty file fails on some systems: parse an empty buffer instead.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only and private to this process; the file is an input that
            // this program never writes (the usual caveat of mapped loaders applies if another
            // process truncates it meanwhile).
            Some(
                unsafe { Mmap::map(&file) }
                    .with_context(|| format!("{}: cannot map", path.display()))?,
            )
        };
        let buf: &[u8] = map.as_deref().unwrap_or(&[]);
        let header = Header::parse(buf).with_context(|| format!("{}", path.display()))?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path,
            map,
            header,
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn version(&self) -> u32 {
        self.header.version
    }

    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.header.metadata
    }

    /// The value of metadata `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.header
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// `general.architecture` ("llama", ...).
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    /// `{architecture}.{suffix}`, e.g. `arch_get("block_count")` for `llama.block_count`.
    pub fn arch_get(&self, suffix: &str) -> Option<&Value> {
        self.get(&format!("{}.{suffix}", self.architecture()?))
    }

    /// llama.cpp's `n_gqa()`: query heads over KV heads in layer 0 (the head counts may be per-layer
    /// arrays; a missing KV count means as many KV heads as query heads), 0 when unknown.
    pub fn n_gqa(&self) -> usize {
        let first = |v: &Value| match v {
            Value::Array(_, items) => items.first().and_then(Value::as_u64),
            v => v.as_u64(),
        };
        let n_head = self
            .arch_get("attention.head_count")
            .and_then(first)
            .unwrap_or(0);
        let n_head_kv = self
            .arch_get("attention.head_count_kv")
            .and_then(first)
            .unwrap_or(n_head);
        n_head.checked_div(n_head_kv).unwrap_or(0) as usize
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.header.tensors[i])
    }

    /// `name`'s info, or an error naming the file and the tensor.
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| anyhow!("{}: no tensor named '{name}'", self.path.display()))
    }

    /// The raw bytes of a tensor of this file (bounds checked when the file was opened).
    pub fn data(&self, t: &TensorInfo) -> &[u8] {
        let buf: &[u8] = self.map.as_deref().unwrap_or(&[]);
        let start = (self.header.data_offset + t.offset) as usize;
        &buf[start..start + t.n_bytes as usize]
    }

    /// Tells the kernel that this tensor's mapped pages are no longer needed, so that a pass over
    /// the whole model keeps one tensor resident rather than the whole file (a later access reads
    /// them again from the file).
    pub fn release(&self, t: &TensorInfo) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            let start = (self.header.data_offset + t.offset) as usize;
            // SAFETY: the map is read-only and file-backed: MADV_DONTNEED only drops clean pages,
            // which the next access faults in again from the file with the same contents.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    t.n_bytes as usize,
                )
            };
        }
        #[cfg(not(unix))]
        let _ = t;
    }

    /// Dequantizes a tensor to f32 into `out` (exactly `n_elements` long).
    pub fn dequantize_into(&self, t: &TensorInfo, out: &mut [f32]) -> Result<()> {
        dequantize(t.dtype, self.data(t), out)
            .with_context(|| format!("{}: tensor '{}' ({})", self.path.display(), t.name, t.dtype))
    }

    /// Tensor `name` dequantized to f32, row-major with shape [`TensorInfo::shape`] (a matrix is
    /// `[rows, cols]` = GGUF `[ne1, ne0]`).
    pub fn tensor_f32(&self, name: &str) -> Result<Tensor> {
        let t = self.tensor_info(name)?;
        let mut data = vec![0f32; t.n_elements() as usize];
        self.dequantize_into(t, &mut data)?;
        Ok(Tensor {
            name: t.name.clone(),
            shape: t.shape(),
            data,
        })
    }
}

impl crate::model::Source for GgufFile {
    fn path(&self) -> &Path {
        GgufFile::path(self)
    }

    fn metadata(&self) -> Vec<(String, Value)> {
        GgufFile::metadata(self).to_vec()
    }

    fn tensors(&self) -> Vec<crate::model::TensorMeta> {
        GgufFile::tensors(self)
            .iter()
            .map(|t| crate::model::TensorMeta {
                name: t.name.clone(),
                dims: t.dims.clone(),
                dtype: t.dtype,
            })
            .collect()
    }

    fn info(&self) -> crate::model::ModelInfo {
        crate::model::ModelInfo {
            arch: self.architecture().unwrap_or("").to_string(),
            n_layer: self
                .arch_get("block_count")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize,
            n_expert: self
                .arch_get("expert_count")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize,
            n_gqa: self.n_gqa(),
        }
    }

    fn raw(&self, name: &str) -> Result<std::borrow::Cow<'_, [u8]>> {
        Ok(std::borrow::Cow::Borrowed(
            self.data(self.tensor_info(name)?),
        ))
    }

    fn read_f32(&self, name: &str, out: &mut Vec<f32>) -> Result<()> {
        let t = self.tensor_info(name)?;
        out.clear();
        out.resize(t.n_elements() as usize, 0.0);
        self.dequantize_into(t, out)
    }

    fn f32_in_place(&self, name: &str) -> Option<&[f32]> {
        let t = self.tensor(name)?;
        if t.dtype != DType::F32 {
            return None;
        }
        crate::model::f32_in_place(self.data(t))
    }

    fn release(&self, name: &str) {
        if let Some(t) = self.tensor(name) {
            GgufFile::release(self, t);
        }
    }
}

#[cfg(test)]
mod tests;
