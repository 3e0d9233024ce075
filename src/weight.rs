//! `QuantizedWeight`: the result of quantizing one weight matrix with any method, its dequantization to
//! the effective weight, and whole-layer quantization ([`quantize`], [`quantize_group`]).
//!
//! # Layout of a quantized weight
//! A `rows x cols` matrix (rows = output features, cols = input features) is cut into groups along its
//! rows (see [`Shape`]: `group_size` 0 = one group per row). Then:
//! - `data` holds the codes, row by row, each row starting on a byte: element `j`
//!   of a row takes bits `[j*b, (j+1)*b)` of the row's bit string, least significant bit first, with
//!   `b` = [`code_bits`]: 8 for INT8 and SmoothQuant (two's complement), 8 for FP8 (raw E4M3FN codes),
//!   4 for INT4, `bits` for AWQ and GPTQ (unsigned).
//! - `scales[r * groups_per_row + g]` is the f32 scale of group `g` of row `r`.
//! - `zero_points` (INT4, AWQ, GPTQ) has the layout of `scales` and holds integer-valued f32 zero points.
//! - `input_scales` (AWQ, SmoothQuant) holds the per-input-channel scales `s_j`: the stored codes
//!   quantize `W diag(s)`, and the layer computes `(x / s) . W_q^T`.
//! - `g_idx` (GPTQ with act-order) gives the group of each column; without it, column `j` belongs to group
//!   `j / group_len`.
//!
//! [`QuantizedWeight::dequantize`] reads any such result generically: it does not depend on which
//! algorithm produced it.
use crate::algos::QuantOptions;
use crate::calib::Calibration;
use crate::error::{try_vec, QuantError, Result};
use crate::kernels::fp8::{fp8_e4m3_quantize, fp8_e4m3_to_f32};
use crate::kernels::int4::int4_quantize;
use crate::kernels::int8::int8_quantize;
use crate::kernels::kbit::{packed_row_bytes, unpack_row};
use crate::kernels::{check_finite, check_len, Shape};
use crate::method::QuantMethod;

/// A quantized weight matrix. See the module docs for the
/// layout of each field. The fields are public so that the algorithms can build results; the
/// constructor [`QuantizedWeight::alloc`] and [`QuantizedWeight::check`] keep them consistent.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeight {
    /// The method (and its group size) that produced the codes.
    pub method: QuantMethod,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// Packed codes: `rows * row_bytes()` bytes, each row starting on a byte.
    pub data: Vec<u8>,
    /// One f32 scale per group, `rows * groups_per_row()`, row-major.
    pub scales: Vec<f32>,
    /// Integer-valued zero points with the layout of `scales` (INT4, AWQ, GPTQ); `None` for the
    /// symmetric kinds.
    pub zero_points: Option<Vec<f32>>,
    /// AWQ / SmoothQuant per-input-channel scales `s_j` (`cols` of them): the codes quantize
    /// `W diag(s)`; `None` for the other methods.
    pub input_scales: Option<Vec<f32>>,
    /// GPTQ act-order group index of each column (`cols` of them, each in `0..groups_per_row()`);
    /// `None` when columns belong to group `j / group_len`.
    pub g_idx: Option<Vec<i32>>,
}

/// How the codes of a method are stored and decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeKind {
    /// One two's-complement byte per element (INT8, SmoothQuant).
    Int8,
    /// One raw FP8 E4M3FN byte per element.
    Fp8E4m3,
    /// Unsigned codes of the given width, packed LSB first (INT4, AWQ, GPTQ).
    Unsigned(u32),
}

fn code_kind(method: &QuantMethod) -> CodeKind {
    match *method {
        QuantMethod::Int8Symmetric { .. } | QuantMethod::SmoothQuant { .. } => CodeKind::Int8,
        QuantMethod::Fp8E4m3 { .. } => CodeKind::Fp8E4m3,
        QuantMethod::Int4Asymmetric { .. } => CodeKind::Unsigned(4),
        QuantMethod::Awq { bits, .. } | QuantMethod::Gptq { bits, .. } => CodeKind::Unsigned(bits),
    }
}

/// Bits per stored code of `method`: 8 for INT8, SmoothQuant and FP8; 4 for INT4; `bits` for AWQ and
/// GPTQ.
pub fn code_bits(method: &QuantMethod) -> u32 {
    match code_kind(method) {
        CodeKind::Int8 | CodeKind::Fp8E4m3 => 8,
        CodeKind::Unsigned(bits) => bits,
    }
}

impl QuantizedWeight {
    /// A result of the right sizes for `method` on a `rows x cols` matrix, filled with zeros: `data`
    /// (`rows * row_bytes`), `scales` and, for the kinds with zero points, `zero_points`
    /// (`rows * groups_per_row`). `input_scales` and `g_idx` are `None` (the algorithms that need them
    /// set them). Allocation is fallible: a matrix too large for memory is `OutOfMemory`, never an
    /// abort. Errors: an invalid method or shape is `InvalidArgument`.
    pub fn alloc(method: &QuantMethod, rows: usize, cols: usize) -> Result<Self> {
        method.validate()?;
        let shape = Shape::new(rows, cols, method.group_size())?;
        let row_bytes = packed_row_bytes(cols, code_bits(method));
        // Shape::new bounds rows * cols * 4, and a row takes at most cols bytes: no overflow.
        let data = try_vec(rows * row_bytes, 0u8, "quantized codes")?;
        let scales = try_vec(shape.n_groups(), 0f32, "scales")?;
        let zero_points = if method.has_zero_points() {
            Some(try_vec(shape.n_groups(), 0f32, "zero points")?)
        } else {
            None
        };
        Ok(Self {
            method: *method,
            rows,
            cols,
            data,
            scales,
            zero_points,
            input_scales: None,
            g_idx: None,
        })
    }

    /// The group geometry of this weight.
    pub fn shape(&self) -> Result<Shape> {
        Shape::new(self.rows, self.cols, self.method.group_size())
    }

    /// Bytes of one packed row: `ceil(cols * code_bits / 8)`.
    pub fn row_bytes(&self) -> usize {
        packed_row_bytes(self.cols, code_bits(&self.method))
    }

    /// Number of elements, `rows * cols`.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// True when the matrix has no element (never the case for a valid weight).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that the fields are consistent: a valid method and shape; `data`, `scales`,
    /// `zero_points`, `input_scales` and `g_idx` of the sizes the layout requires (`ShapeMismatch`);
    /// finite scales, zero points and input scales (`NonFinite`); non-zero input scales and group
    /// indices in `0..groups_per_row` (`InvalidArgument`).
    pub fn check(&self) -> Result<()> {
        self.method.validate()?;
        let shape = self.shape()?;
        let mismatch = |what: &str, got: usize, need: usize| {
            if got == need {
                Ok(())
            } else {
                Err(QuantError::ShapeMismatch(format!(
                    "quantized weight {} x {} ({}): {what} holds {got} elements but {need} are needed",
                    self.rows, self.cols, self.method
                )))
            }
        };
        mismatch("data", self.data.len(), self.rows * self.row_bytes())?;
        mismatch("scales", self.scales.len(), shape.n_groups())?;
        check_finite(&self.scales, "scales")?;
        if let Some(z) = &self.zero_points {
            mismatch("zero_points", z.len(), shape.n_groups())?;
            check_finite(z, "zero_points")?;
        }
        if let Some(s) = &self.input_scales {
            mismatch("input_scales", s.len(), self.cols)?;
            check_finite(s, "input_scales")?;
            if let Some(j) = s.iter().position(|&v| v == 0.0) {
                return Err(QuantError::invalid(format!(
                    "input_scales[{j}] is 0: the effective weight divides by it"
                )));
            }
        }
        if let Some(g) = &self.g_idx {
            mismatch("g_idx", g.len(), self.cols)?;
            let gpr = shape.groups_per_row();
            if let Some(j) = g.iter().position(|&v| v < 0 || v as usize >= gpr) {
                return Err(QuantError::invalid(format!(
                    "g_idx[{j}] is {}: groups of a row are 0..{gpr}",
                    g[j]
                )));
            }
        }
        Ok(())
    }

    /// Writes the effective weight, in the ORIGINAL input basis, to `dst[..rows * cols]` (row-major):
    /// `dst[r][j] = (v - zero) * scale / s_j`, where `v` is the value of the code (the signed integer,
    /// the FP8 value, or the unsigned integer), `scale` and `zero` those of the element's group
    /// (`g_idx[j]` when present, else `j / group_len`; zero 0 without zero points) and `s_j` the input
    /// scale (1 without input scales). Without input scales and group index this is bit-exact with the
    /// kernels' dequantizers.
    ///
    /// Errors (nothing written): an inconsistent weight (see [`check`](Self::check)), `dst` shorter than
    /// `rows * cols` (`BufferTooSmall`), or no memory for one row of scratch (`OutOfMemory`).
    pub fn dequantize(&self, dst: &mut [f32]) -> Result<()> {
        self.check()?;
        check_len("dst", dst.len(), self.len())?;
        let shape = self.shape()?;
        let (cols, glen, gpr) = (self.cols, shape.group_len(), shape.groups_per_row());
        let kind = code_kind(&self.method);
        let row_bytes = self.row_bytes();
        let mut values = try_vec(cols, 0f32, "dequantization scratch")?;
        let mut codes = match kind {
            CodeKind::Unsigned(_) => try_vec(cols, 0u8, "dequantization scratch")?,
            _ => Vec::new(),
        };
        let rows = self
            .data
            .chunks_exact(row_bytes)
            .zip(dst[..self.len()].chunks_exact_mut(cols))
            .enumerate();
        for (r, (packed, out)) in rows {
            // 1. The value of every code of the row.
            match kind {
                CodeKind::Int8 => {
                    for (v, &b) in values.iter_mut().zip(packed) {
                        *v = f32::from(b as i8);
                    }
                }
                CodeKind::Fp8E4m3 => fp8_e4m3_to_f32(packed, &mut values)?,
                CodeKind::Unsigned(bits) => {
                    unpack_row(packed, bits, &mut codes);
                    for (v, &q) in values.iter_mut().zip(&codes) {
                        *v = f32::from(q);
                    }
                }
            }
            // 2. Scale (and zero) of each element's group, then the input scale.
            let row_scales = &self.scales[r * gpr..(r + 1) * gpr];
            let row_zeros = self
                .zero_points
                .as_ref()
                .map(|z| &z[r * gpr..(r + 1) * gpr]);
            match (&self.g_idx, &self.input_scales) {
                (None, None) => {
                    for (g, (v, o)) in values.chunks(glen).zip(out.chunks_mut(glen)).enumerate() {
                        let s = row_scales[g];
                        match row_zeros {
                            Some(z) => {
                                let z = z[g];
                                for (o, &v) in o.iter_mut().zip(v) {
                                    *o = (v - z) * s;
                                }
                            }
                            None => {
                                for (o, &v) in o.iter_mut().zip(v) {
                                    *o = v * s;
                                }
                            }
                        }
                    }
                }
                (g_idx, input_scales) => {
                    for (j, (o, &v)) in out.iter_mut().zip(&values).enumerate() {
                        let g = g_idx.as_ref().map_or(j / glen, |g| g[j] as usize);
                        let x = match row_zeros {
                            Some(z) => (v - z[g]) * row_scales[g],
                            None => v * row_scales[g],
                        };
                        *o = match input_scales {
                            Some(s) => x / s[j],
                            None => x,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// [`dequantize`](Self::dequantize) into a new vector of `rows * cols` elements.
    pub fn dequantize_to_vec(&self) -> Result<Vec<f32>> {
        let mut out = try_vec(self.len(), 0f32, "dequantized weight")?;
        self.dequantize(&mut out)?;
        Ok(out)
    }
}

/// Quantizes one `rows x cols` row-major weight matrix `w` with `method`.
///
/// - INT8, INT4 and FP8 (round-to-nearest) run the kernels; `options` and `calib` are ignored (`calib`
///   may be `None`).
/// - AWQ, SmoothQuant and GPTQ need `calib`, the statistics of this layer's input: `None` is
///   `InvalidArgument`, a calibration of another width `ShapeMismatch`, one without tokens
///   `InvalidArgument`.
///
/// Errors: an invalid method or shape (`InvalidArgument`), `w.len() != rows * cols` (`ShapeMismatch`),
/// NaN or infinity in `w` (`NonFinite`, naming the first index), a group whose range overflows f32
/// (`InvalidArgument`), no memory for the result (`OutOfMemory`).
pub fn quantize(
    method: &QuantMethod,
    options: &QuantOptions,
    w: &[f32],
    rows: usize,
    cols: usize,
    calib: Option<&Calibration>,
) -> Result<QuantizedWeight> {
    let mut out = quantize_matrices(method, options, &[w], &[rows], cols, calib, &|_| {
        "w".to_string()
    })?;
    out.pop()
        .ok_or_else(|| QuantError::Internal("quantize produced no result".to_string()))
}

/// Quantizes several matrices that read the same input of width `cols` (q, k and v; gate and up):
/// `ws[i]` is `rows[i] x cols`. The round-to-nearest kinds quantize each matrix on its own; AWQ and
/// SmoothQuant choose one per-input-channel scale for all of them. The results are in the order of
/// `ws`. All or nothing: on error no result is returned.
///
/// Errors: those of [`quantize`] (naming the matrix as `ws[i]`), no matrix (`InvalidArgument`), or
/// `rows.len() != ws.len()` (`ShapeMismatch`).
pub fn quantize_group(
    method: &QuantMethod,
    options: &QuantOptions,
    ws: &[&[f32]],
    rows: &[usize],
    cols: usize,
    calib: Option<&Calibration>,
) -> Result<Vec<QuantizedWeight>> {
    quantize_matrices(method, options, ws, rows, cols, calib, &|i| {
        format!("ws[{i}]")
    })
}

/// The shared body of [`quantize`] and [`quantize_group`]; `name(i)` names matrix `i` in errors.
fn quantize_matrices(
    method: &QuantMethod,
    options: &QuantOptions,
    ws: &[&[f32]],
    rows: &[usize],
    cols: usize,
    calib: Option<&Calibration>,
    name: &dyn Fn(usize) -> String,
) -> Result<Vec<QuantizedWeight>> {
    if ws.is_empty() {
        return Err(QuantError::invalid(
            "quantize_group needs at least one matrix (n is 0)",
        ));
    }
    if rows.len() != ws.len() {
        return Err(QuantError::ShapeMismatch(format!(
            "{} matrices but {} row counts",
            ws.len(),
            rows.len()
        )));
    }
    method.validate()?;
    for (i, (&w, &r)) in ws.iter().zip(rows).enumerate() {
        let shape = Shape::new(r, cols, method.group_size())
            .map_err(|e| QuantError::invalid(format!("{}: {e}", name(i))))?;
        if w.len() != shape.len() {
            return Err(QuantError::ShapeMismatch(format!(
                "{} holds {} elements but {r} x {cols} are needed",
                name(i),
                w.len()
            )));
        }
    }
    match method {
        QuantMethod::Int8Symmetric { .. }
        | QuantMethod::Int4Asymmetric { .. }
        | QuantMethod::Fp8E4m3 { .. } => {
            let mut out = Vec::new();
            out.try_reserve_exact(ws.len())
                .map_err(|_| QuantError::OutOfMemory("quantized weights".to_string()))?;
            for (i, (&w, &r)) in ws.iter().zip(rows).enumerate() {
                out.push(quantize_rtn(method, w, r, cols, &name(i))?);
            }
            Ok(out)
        }
        QuantMethod::Awq { .. } | QuantMethod::SmoothQuant { .. } | QuantMethod::Gptq { .. } => {
            let calib = require_calibration(method, calib, cols)?;
            for (i, &w) in ws.iter().enumerate() {
                check_finite(w, &name(i))?;
            }
            let out = crate::algos::quantize_calibrated(method, options, ws, rows, cols, calib)?;
            // Near the top of the float range the effective weight (q - zero) * scale / s_j can round
            // to infinity: report it as the round-to-nearest kernels do, never hand it out.
            for (i, q) in out.iter().enumerate() {
                let values = q.dequantize_to_vec()?;
                if let Some(k) = values.iter().position(|v| !v.is_finite()) {
                    return Err(QuantError::invalid(format!(
                        "{}: element ({}, {}) of the quantized weight would be {} (its group's range is too close to the float limit)",
                        name(i),
                        k / cols,
                        k % cols,
                        values[k]
                    )));
                }
            }
            Ok(out)
        }
    }
}

/// The statistics a calibrated method needs: present, of width `cols`, with at least one token.
fn require_calibration<'a>(
    method: &QuantMethod,
    calib: Option<&'a Calibration>,
    cols: usize,
) -> Result<&'a Calibration> {
    let calib = calib.ok_or_else(|| {
        QuantError::invalid(format!(
            "{method} needs calibration statistics of the layer input: calib is NULL"
        ))
    })?;
    if calib.cols() != cols {
        return Err(QuantError::ShapeMismatch(format!(
            "the calibration has width {} but the weight has {cols} columns",
            calib.cols()
        )));
    }
    if calib.tokens() == 0 {
        return Err(QuantError::invalid(
            "the calibration holds no tokens: add activations with quant_calib_add first",
        ));
    }
    Ok(calib)
}

/// Round-to-nearest quantization of one validated matrix with the INT8, INT4 or FP8 kernel, in one
/// pass over `w` (the kernel checks each group as it goes; the result is dropped on error). A NaN or
/// infinity is `NonFinite` naming `name` and the first bad index.
fn quantize_rtn(
    method: &QuantMethod,
    w: &[f32],
    rows: usize,
    cols: usize,
    name: &str,
) -> Result<QuantizedWeight> {
    // Allocate first: a matrix too large for memory fails here, before its elements are read.
    let mut q = QuantizedWeight::alloc(method, rows, cols)?;
    let shape = q.shape()?;
    let named = |e: QuantError| match e {
        QuantError::NonFinite { index, value, .. } => QuantError::NonFinite {
            what: name.to_string(),
            index,
            value,
        },
        other => other,
    };
    match method {
        QuantMethod::Int8Symmetric { .. } => {
            // The codes as two's-complement bytes: the same storage seen as i8.
            let codes: &mut [i8] = bytemuck::cast_slice_mut(&mut q.data);
            int8_quantize(w, shape, codes, &mut q.scales).map_err(named)?;
        }
        QuantMethod::Int4Asymmetric { .. } => {
            let mut zeros = try_vec(shape.n_groups(), 0u8, "zero points")?;
            int4_quantize(w, shape, &mut q.data, &mut q.scales, &mut zeros).map_err(named)?;
            if let Some(z) = q.zero_points.as_mut() {
                for (o, &v) in z.iter_mut().zip(&zeros) {
                    *o = f32::from(v);
                }
            }
        }
        QuantMethod::Fp8E4m3 { .. } => {
            fp8_e4m3_quantize(w, shape, &mut q.data, &mut q.scales).map_err(named)?;
        }
        other => {
            return Err(QuantError::Internal(format!(
                "{other} is not a round-to-nearest method"
            )))
        }
    }
    Ok(q)
}
