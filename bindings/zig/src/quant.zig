//! Zig binding of quant: LLM weight-quantization kernels and algorithms (INT8, INT4, FP8,
//! FP16/BF16, GPTQ, AWQ, SmoothQuant) behind a stable C ABI.
//!
//! - Every fallible function returns an error union over `Error`; the library's human-readable
//!   detail of the last failure on this thread is `lastError(&buf)`.
//! - Inputs and outputs are slices; every length is checked before the C call (a slice that is too
//!   short is `error.BufferTooSmall`), and nothing is written on error.
//! - Matrices are row-major `f32`, rows = output features, cols = input features. group_size 0 means
//!   one scale per row, k > 0 one scale per k consecutive columns of a row.
//! - Handles (`Calib`, `Options`, `Config`, `Weight`) own C memory: call `deinit`. They may be read
//!   from several threads at once but not modified while read.
//!
//! The raw C API (translated from quant.h) is `quant.c`.
const std = @import("std");

/// The C API, translated from quant.h by the build system.
pub const c = @import("c");

/// The failures of the C API, one per QUANT_ERR_* status.
pub const Error = error{
    NullPointer,
    InvalidArgument,
    BufferTooSmall,
    ShapeMismatch,
    NonFinite,
    Numerical,
    Unsupported,
    OutOfMemory,
    Internal,
    /// A status this binding does not know (a newer library).
    UnknownStatus,
};

/// Maps a quant_status to `Error` (QUANT_OK is success).
pub fn check(status: c.quant_status) Error!void {
    return switch (status) {
        c.QUANT_OK => {},
        c.QUANT_ERR_NULL_POINTER => error.NullPointer,
        c.QUANT_ERR_INVALID_ARGUMENT => error.InvalidArgument,
        c.QUANT_ERR_BUFFER_TOO_SMALL => error.BufferTooSmall,
        c.QUANT_ERR_SHAPE_MISMATCH => error.ShapeMismatch,
        c.QUANT_ERR_NON_FINITE => error.NonFinite,
        c.QUANT_ERR_NUMERICAL => error.Numerical,
        c.QUANT_ERR_UNSUPPORTED => error.Unsupported,
        c.QUANT_ERR_OUT_OF_MEMORY => error.OutOfMemory,
        c.QUANT_ERR_INTERNAL => error.Internal,
        else => error.UnknownStatus,
    };
}

/// The quant_status of an error of this binding.
pub fn statusOf(err: Error) c.quant_status {
    return switch (err) {
        error.NullPointer => c.QUANT_ERR_NULL_POINTER,
        error.InvalidArgument => c.QUANT_ERR_INVALID_ARGUMENT,
        error.BufferTooSmall => c.QUANT_ERR_BUFFER_TOO_SMALL,
        error.ShapeMismatch => c.QUANT_ERR_SHAPE_MISMATCH,
        error.NonFinite => c.QUANT_ERR_NON_FINITE,
        error.Numerical => c.QUANT_ERR_NUMERICAL,
        error.Unsupported => c.QUANT_ERR_UNSUPPORTED,
        error.OutOfMemory => c.QUANT_ERR_OUT_OF_MEMORY,
        error.Internal, error.UnknownStatus => c.QUANT_ERR_INTERNAL,
    };
}

/// The library's static description of a status (never null).
pub fn statusString(status: c.quant_status) [:0]const u8 {
    return std.mem.span(c.quant_status_string(status));
}

/// Copies this thread's last error detail into buf (truncated to fit) and returns it; "" if none.
/// Errors found by this binding before the C call (a slice too short) leave their own detail.
pub fn lastError(buf: []u8) []const u8 {
    if (binding_detail_len > 0) {
        const n = @min(binding_detail_len, buf.len);
        @memcpy(buf[0..n], binding_detail[0..n]);
        return buf[0..n];
    }
    if (buf.len == 0) return buf[0..0];
    const full = c.quant_last_error(buf.ptr, buf.len);
    return buf[0..@min(full, buf.len - 1)];
}

threadlocal var binding_detail: [160]u8 = undefined;
threadlocal var binding_detail_len: usize = 0;

/// Records a detail for an error found by the binding itself, and returns the error.
fn fail(err: Error, comptime fmt: []const u8, args: anytype) Error {
    const text = std.fmt.bufPrint(&binding_detail, fmt, args) catch binding_detail[0..];
    binding_detail_len = text.len;
    return err;
}

/// Runs one status-returning C call (clearing the binding's own detail first).
fn call(status: c.quant_status) Error!void {
    binding_detail_len = 0;
    return check(status);
}

/// A slice the C function reads or writes without a length must hold `need` elements.
fn need(have: usize, n: usize, comptime what: []const u8) Error!void {
    if (have < n) return fail(error.BufferTooSmall, what ++ " holds {d} elements, needs {d}", .{ have, n });
}

/// rows * cols, or null when it overflows (the C call then reports the overflow itself).
fn product(rows: usize, cols: usize) ?usize {
    return std.math.mul(usize, rows, cols) catch null;
}

fn srcCheck(have: usize, rows: usize, cols: usize) Error!void {
    if (product(rows, cols)) |n| try need(have, n, "src");
}

// ---- version --------------------------------------------------------------------------------------

/// The library's version as (major << 16) | (minor << 8) | patch.
pub fn version() u32 {
    return c.quant_version();
}

/// The library's version as text, e.g. "0.2.0".
pub fn versionString() [:0]const u8 {
    return std.mem.span(c.quant_version_string());
}

/// The version of quant.h this binding was built against.
pub const header_version: u32 = c.QUANT_VERSION_NUMBER;

// ---- SIMD level and kernel threads ----------------------------------------------------------------

/// The SIMD level the kernels use (c.QUANT_SIMD_SCALAR, _AVX2, _AVX512, _NEON).
pub fn simdLevel() i32 {
    return c.quant_simd_level();
}

/// Forces the process-wide SIMD level (c.QUANT_SIMD_AUTO: the best of the CPU); a level the CPU lacks
/// is error.Unsupported, an unknown value error.InvalidArgument (the level is then unchanged).
/// Results are the same at every level.
pub fn setSimdLevel(level: i32) Error!void {
    try call(c.quant_set_simd_level(level));
}

/// "scalar", "avx2", "avx512", "neon"; null for an unknown level.
pub fn simdLevelName(level: i32) ?[:0]const u8 {
    const p = c.quant_simd_level_name(level);
    return if (p == null) null else std.mem.span(p);
}

/// Largest count setThreads accepts (QUANT_MAX_THREADS).
pub const max_threads: usize = c.QUANT_MAX_THREADS;

/// Threads one large kernel call may use, process-wide (0 = all cores; default 1); above
/// max_threads error.InvalidArgument (the count is then unchanged). Results are bit-identical for
/// every count.
pub fn setThreads(n: usize) Error!void {
    try call(c.quant_set_threads(n));
}

/// The count set with setThreads.
pub fn threads() usize {
    return c.quant_threads();
}

// ---- levels ---------------------------------------------------------------------------------------

/// A storage precision of weights (quant_level).
pub const Level = enum(i32) {
    fp32 = 0,
    fp16 = 1,
    bf16 = 2,
    int8 = 3,
    int4 = 4,
    _,

    /// Bits per value: 32, 16, 16, 8, 4; 0 for an unknown level.
    pub fn bits(l: Level) u32 {
        return c.quant_level_bits(@backingInt(l));
    }
    /// Size reduction against FP32: 1, 2, 2, 4, 8; 0 for an unknown level.
    pub fn reductionFactor(l: Level) f64 {
        return c.quant_level_reduction_factor(@backingInt(l));
    }
    /// "FP32", "FP16", "BF16", "INT8", "INT4"; null for an unknown level.
    pub fn name(l: Level) ?[:0]const u8 {
        const p = c.quant_level_name(@backingInt(l));
        return if (p == null) null else std.mem.span(p);
    }
    /// The level of a bit width: 32, 16 (FP16), 8, 4; else error.InvalidArgument.
    pub fn fromBits(b: u32) Error!Level {
        var out: c.quant_level = 0;
        try call(c.quant_level_from_bits(b, &out));
        return @fromBackingInt(@intCast(out));
    }
};

// ---- methods --------------------------------------------------------------------------------------

/// A quantization method kind (quant_method_kind).
pub const MethodKind = enum(i32) {
    int8_symmetric = 0,
    int4_asymmetric = 1,
    fp8_e4m3 = 2,
    awq = 3,
    smoothquant = 4,
    gptq = 5,
    _,
};

/// How to quantize a matrix (quant_method).
pub const Method = struct {
    kind: MethodKind,
    /// GPTQ: 2..8; AWQ: 4; ignored by the fixed-width kinds.
    bits: u32 = 8,
    /// 0 = one scale per row; AWQ and GPTQ need > 0.
    group_size: u32 = 0,
    /// SmoothQuant migration strength, 0..1.
    alpha: f64 = 0,

    pub fn int8(group_size: u32) Method {
        return .{ .kind = .int8_symmetric, .bits = 8, .group_size = group_size };
    }
    pub fn int4(group_size: u32) Method {
        return .{ .kind = .int4_asymmetric, .bits = 4, .group_size = group_size };
    }
    pub fn fp8(group_size: u32) Method {
        return .{ .kind = .fp8_e4m3, .bits = 8, .group_size = group_size };
    }
    /// AWQ (needs a Calib).
    pub fn awq(bits: u32, group_size: u32) Method {
        return .{ .kind = .awq, .bits = bits, .group_size = group_size };
    }
    /// SmoothQuant W8A8 (needs a Calib).
    pub fn smoothQuant(alpha: f64) Method {
        return .{ .kind = .smoothquant, .bits = 8, .alpha = alpha };
    }
    /// GPTQ at 2..8 bits (needs a Calib).
    pub fn gptq(bits: u32, group_size: u32) Method {
        return .{ .kind = .gptq, .bits = bits, .group_size = group_size };
    }

    pub fn toC(m: Method) c.quant_method {
        var out: c.quant_method = std.mem.zeroes(c.quant_method);
        out.kind = @backingInt(m.kind);
        out.bits = m.bits;
        out.group_size = m.group_size;
        out.alpha = m.alpha;
        return out;
    }
    pub fn fromC(m: c.quant_method) Method {
        return .{ .kind = @fromBackingInt(@intCast(m.kind)), .bits = m.bits, .group_size = m.group_size, .alpha = m.alpha };
    }

    /// error.InvalidArgument (the detail says which rule) when the method is invalid.
    pub fn validate(m: Method) Error!void {
        const cm = m.toC();
        try call(c.quant_method_validate(&cm));
    }
    /// Nominal bits per weight.
    pub fn bitsPerWeight(m: Method) u32 {
        const cm = m.toC();
        return c.quant_method_bits_per_weight(&cm);
    }
    /// 16 / nominal bits.
    pub fn compressionRatio(m: Method) f64 {
        const cm = m.toC();
        return c.quant_method_compression_ratio(&cm);
    }
    /// Bits per weight including scales and zero points, for rows of `cols` inputs.
    pub fn effectiveBits(m: Method, cols: usize) f64 {
        const cm = m.toC();
        return c.quant_method_effective_bits(&cm, cols);
    }
    /// The display name (e.g. "GPTQ(4bit, group=128)") into buf, truncated to fit.
    pub fn name(m: Method, buf: []u8) []const u8 {
        const cm = m.toC();
        if (buf.len == 0) return buf[0..0];
        const full = c.quant_method_name(&cm, buf.ptr, buf.len);
        return buf[0..@min(full, buf.len - 1)];
    }
    /// The display name in memory from `allocator` (caller frees).
    pub fn nameAlloc(m: Method, allocator: std.mem.Allocator) std.mem.Allocator.Error![]u8 {
        const cm = m.toC();
        const full = c.quant_method_name(&cm, null, 0);
        const buf = try allocator.alloc(u8, full + 1);
        _ = c.quant_method_name(&cm, buf.ptr, buf.len);
        return allocator.realloc(buf, full);
    }
};

/// Bytes of `num_params` weights in FP16 and with a method.
pub const MemoryEstimate = struct { fp16_bytes: usize, quant_bytes: usize };

pub fn estimateMemory(num_params: usize, m: Method) Error!MemoryEstimate {
    const cm = m.toC();
    var out: MemoryEstimate = .{ .fp16_bytes = 0, .quant_bytes = 0 };
    try call(c.quant_estimate_memory(num_params, &cm, &out.fp16_bytes, &out.quant_bytes));
    return out;
}

/// A default method plus per-layer overrides by layer name (quant_config).
pub const Config = struct {
    handle: ?*c.quant_config,

    pub fn init(default_method: Method) Error!Config {
        const cm = default_method.toC();
        var h: ?*c.quant_config = null;
        try call(c.quant_config_new(&cm, &h));
        return .{ .handle = h };
    }
    pub fn deinit(self: *Config) void {
        c.quant_config_free(self.handle);
        self.handle = null;
    }
    /// Uses m for the layer `layer_name` (UTF-8).
    pub fn setLayer(self: *Config, layer_name: [:0]const u8, m: Method) Error!void {
        const cm = m.toC();
        try call(c.quant_config_set_layer(self.handle, layer_name.ptr, &cm));
    }
    /// The layer's override, else the default method.
    pub fn methodForLayer(self: Config, layer_name: [:0]const u8) Error!Method {
        var out: c.quant_method = std.mem.zeroes(c.quant_method);
        try call(c.quant_config_method_for_layer(self.handle, layer_name.ptr, &out));
        return Method.fromC(out);
    }
    /// error.InvalidArgument naming the first bad layer in the detail.
    pub fn validate(self: Config) Error!void {
        try call(c.quant_config_validate(self.handle));
    }
};

// ---- plain casts ----------------------------------------------------------------------------------
// Round to nearest, ties to even; half-precision and FP8 values are their bit patterns.
// dst holds at least src.len values.

pub fn f32ToF16(src: []const f32, dst: []u16) Error!void {
    try need(dst.len, src.len, "dst");
    try call(c.quant_f32_to_f16(src.ptr, dst.ptr, src.len));
}
pub fn f16ToF32(src: []const u16, dst: []f32) Error!void {
    try need(dst.len, src.len, "dst");
    try call(c.quant_f16_to_f32(src.ptr, dst.ptr, src.len));
}
pub fn f32ToBf16(src: []const f32, dst: []u16) Error!void {
    try need(dst.len, src.len, "dst");
    try call(c.quant_f32_to_bf16(src.ptr, dst.ptr, src.len));
}
pub fn bf16ToF32(src: []const u16, dst: []f32) Error!void {
    try need(dst.len, src.len, "dst");
    try call(c.quant_bf16_to_f32(src.ptr, dst.ptr, src.len));
}
/// FP8 E4M3FN; saturate clamps overflow and infinities to +-448 (else NaN, as ml_dtypes).
pub fn f32ToFp8E4m3(src: []const f32, dst: []u8, saturate: bool) Error!void {
    try need(dst.len, src.len, "dst");
    try call(c.quant_f32_to_fp8_e4m3(src.ptr, dst.ptr, src.len, saturate));
}
pub fn fp8E4m3ToF32(src: []const u8, dst: []f32) Error!void {
    try need(dst.len, src.len, "dst");
    try call(c.quant_fp8_e4m3_to_f32(src.ptr, dst.ptr, src.len));
}
/// FP8 E5M2; saturate clamps finite overflow and infinities to +-57344 (else infinity).
pub fn f32ToFp8E5m2(src: []const f32, dst: []u8, saturate: bool) Error!void {
    try need(dst.len, src.len, "dst");
    try call(c.quant_f32_to_fp8_e5m2(src.ptr, dst.ptr, src.len, saturate));
}
pub fn fp8E5m2ToF32(src: []const u8, dst: []f32) Error!void {
    try need(dst.len, src.len, "dst");
    try call(c.quant_fp8_e5m2_to_f32(src.ptr, dst.ptr, src.len));
}

// ---- round-to-nearest kernels ---------------------------------------------------------------------

/// rows * ceil(cols / group_size) (group_size 0: rows).
pub fn scaleCount(rows: usize, cols: usize, group_size: usize) usize {
    return c.quant_scale_count(rows, cols, group_size);
}
/// rows * ceil(cols / 2).
pub fn int4PackedSize(rows: usize, cols: usize) usize {
    return c.quant_int4_packed_size(rows, cols);
}

/// INT8 symmetric: scale = absmax / 127 per group; dst holds rows*cols codes, scales scaleCount().
/// One pass over src: after an argument error nothing was written; after a value error (NonFinite,
/// or an overflowing group) dst and scales hold zeros.
pub fn int8Quantize(src: []const f32, rows: usize, cols: usize, group_size: usize, dst: []i8, scales: []f32) Error!void {
    try srcCheck(src.len, rows, cols);
    try call(c.quant_int8_quantize(src.ptr, rows, cols, group_size, dst.ptr, dst.len, scales.ptr, scales.len));
}
/// x' = code * scale.
pub fn int8Dequantize(src: []const i8, scales: []const f32, rows: usize, cols: usize, group_size: usize, dst: []f32) Error!void {
    try srcCheck(src.len, rows, cols);
    if (rows > 0 and cols > 0 and product(rows, cols) != null) try need(scales.len, scaleCount(rows, cols, group_size), "scales");
    try call(c.quant_int8_dequantize(src.ptr, scales.ptr, rows, cols, group_size, dst.ptr, dst.len));
}
/// INT4 asymmetric with integer zero points; dst holds int4PackedSize() bytes (two codes a byte,
/// even column in the low nibble), scales and zeros scaleCount() each. One pass over src; errors as
/// int8Quantize (a value error leaves dst, scales and zeros zero-filled).
pub fn int4Quantize(src: []const f32, rows: usize, cols: usize, group_size: usize, dst: []u8, scales: []f32, zeros: []u8) Error!void {
    try srcCheck(src.len, rows, cols);
    if (scales.len != zeros.len) return fail(error.ShapeMismatch, "scales ({d}) and zeros ({d}) differ in length", .{ scales.len, zeros.len });
    try call(c.quant_int4_quantize(src.ptr, rows, cols, group_size, dst.ptr, dst.len, scales.ptr, zeros.ptr, scales.len));
}
/// x' = (q - zero) * scale.
pub fn int4Dequantize(src: []const u8, scales: []const f32, zeros: []const u8, rows: usize, cols: usize, group_size: usize, dst: []f32) Error!void {
    if (rows > 0 and cols > 0 and product(rows, cols) != null) {
        try need(src.len, int4PackedSize(rows, cols), "src");
        try need(scales.len, scaleCount(rows, cols, group_size), "scales");
        try need(zeros.len, scaleCount(rows, cols, group_size), "zeros");
    }
    try call(c.quant_int4_dequantize(src.ptr, scales.ptr, zeros.ptr, rows, cols, group_size, dst.ptr, dst.len));
}
/// FP8 E4M3 scaled: scale = absmax / 448 per group, saturating codes. One pass over src; errors as
/// int8Quantize (a NaN or infinity leaves dst and scales zero-filled).
pub fn fp8E4m3Quantize(src: []const f32, rows: usize, cols: usize, group_size: usize, dst: []u8, scales: []f32) Error!void {
    try srcCheck(src.len, rows, cols);
    try call(c.quant_fp8_e4m3_quantize(src.ptr, rows, cols, group_size, dst.ptr, dst.len, scales.ptr, scales.len));
}
/// x' = f32(code) * scale.
pub fn fp8E4m3Dequantize(src: []const u8, scales: []const f32, rows: usize, cols: usize, group_size: usize, dst: []f32) Error!void {
    try srcCheck(src.len, rows, cols);
    if (rows > 0 and cols > 0 and product(rows, cols) != null) try need(scales.len, scaleCount(rows, cols, group_size), "scales");
    try call(c.quant_fp8_e4m3_dequantize(src.ptr, scales.ptr, rows, cols, group_size, dst.ptr, dst.len));
}
/// Packs signed 4-bit values two a byte, the first in the low nibble.
pub fn packInt4(values: []const i8, dst: []u8) Error!void {
    try call(c.quant_pack_int4(values.ptr, values.len, dst.ptr, dst.len));
}
/// Unpacks n sign-extended 4-bit values from ceil(n / 2) bytes.
pub fn unpackInt4(src: []const u8, n: usize, dst: []i8) Error!void {
    try need(src.len, n / 2 + n % 2, "src");
    try call(c.quant_unpack_int4(src.ptr, n, dst.ptr, dst.len));
}
/// SmoothQuant's s_j = act_absmax_j^alpha / weight_absmax_j^(1 - alpha); out holds n values.
pub fn smoothScales(weight_absmax: []const f32, act_absmax: []const f32, alpha: f64, out: []f32) Error!void {
    if (weight_absmax.len != act_absmax.len) return fail(error.ShapeMismatch, "weight_absmax ({d}) and act_absmax ({d}) differ in length", .{ weight_absmax.len, act_absmax.len });
    try need(out.len, weight_absmax.len, "out");
    try call(c.quant_smooth_scales(weight_absmax.ptr, act_absmax.ptr, weight_absmax.len, alpha, out.ptr));
}

// ---- calibration and options ----------------------------------------------------------------------

/// Activation statistics of one layer input of width cols (quant_calib).
pub const Calib = struct {
    handle: ?*c.quant_calib,
    cols: usize,

    pub fn init(cols: usize) Error!Calib {
        var h: ?*c.quant_calib = null;
        try call(c.quant_calib_new(cols, &h));
        return .{ .handle = h, .cols = cols };
    }
    /// Flag of initEx: accumulate the GPTQ Hessian.
    pub const hessian: u32 = c.QUANT_CALIB_HESSIAN;

    /// flags 0 (no Hessian: O(cols) memory, enough for AWQ and SmoothQuant; GPTQ rejects it) or
    /// `Calib.hessian`; opts (null = defaults) gives sample_tokens and threads.
    pub fn initEx(cols: usize, flags: u32, opts: ?*const Options) Error!Calib {
        var h: ?*c.quant_calib = null;
        try call(c.quant_calib_new_ex(cols, flags, if (opts) |o| o.handle else null, &h));
        return .{ .handle = h, .cols = cols };
    }
    pub fn deinit(self: *Calib) void {
        c.quant_calib_free(self.handle);
        self.handle = null;
    }
    /// Adds x.len / cols tokens (row-major); x.len must be a multiple of cols (else ShapeMismatch).
    pub fn add(self: *Calib, x: []const f32) Error!void {
        if (self.cols == 0 or x.len % self.cols != 0) return fail(error.ShapeMismatch, "x holds {d} floats, not a multiple of cols = {d}", .{ x.len, self.cols });
        try self.addTokens(x, x.len / self.cols, self.cols);
    }
    /// Adds n_tokens x cols activations; cols must equal the calibration's width.
    pub fn addTokens(self: *Calib, x: []const f32, n_tokens: usize, cols: usize) Error!void {
        if (product(n_tokens, cols)) |n| try need(x.len, n, "x");
        try call(c.quant_calib_add(self.handle, x.ptr, n_tokens, cols));
    }
    /// Replaces the Hessian by h (row-major cols x cols, H = (2/n) sum x x^T over n_tokens tokens,
    /// accumulated elsewhere; only the lower triangle is read).
    pub fn setHessian(self: *Calib, h: []const f64, cols: usize, n_tokens: u64) Error!void {
        try call(c.quant_calib_set_hessian(self.handle, h.ptr, h.len, cols, n_tokens));
    }
    /// Tokens added so far.
    pub fn tokens(self: Calib) u64 {
        return c.quant_calib_tokens(self.handle);
    }
    /// How many calibration tokens `kind` should be fitted on for a layer with `cols` input columns
    /// (quant_calib_recommended_tokens): 0 for round-to-nearest, 16 * cols for GPTQ, 512 for AWQ and
    /// SmoothQuant. Compare it with tokens().
    pub fn recommendedTokens(kind: MethodKind, cols: usize) Error!u64 {
        var t: u64 = 0;
        try call(c.quant_calib_recommended_tokens(@backingInt(kind), cols, &t));
        return t;
    }
};

/// Optional knobs of the methods (quant_options); every setter rejects a bad value with
/// error.InvalidArgument. null options mean the defaults.
pub const Options = struct {
    handle: ?*c.quant_options,

    pub fn init() Error!Options {
        var h: ?*c.quant_options = null;
        try call(c.quant_options_new(&h));
        return .{ .handle = h };
    }
    pub fn deinit(self: *Options) void {
        c.quant_options_free(self.handle);
        self.handle = null;
    }
    /// GPTQ: columns by decreasing Hessian diagonal (keeps g_idx).
    pub fn setActOrder(self: *Options, on: bool) Error!void {
        try call(c.quant_options_set_act_order(self.handle, on));
    }
    /// GPTQ damping as a fraction of the mean Hessian diagonal (default 0.01).
    pub fn setDampPercent(self: *Options, v: f64) Error!void {
        try call(c.quant_options_set_damp_percent(self.handle, v));
    }
    /// GPTQ columns per lazy block update (default 128).
    pub fn setBlockSize(self: *Options, v: usize) Error!void {
        try call(c.quant_options_set_block_size(self.handle, v));
    }
    /// GPTQ/AWQ symmetric codes instead of zero points.
    pub fn setSymmetric(self: *Options, on: bool) Error!void {
        try call(c.quant_options_set_symmetric(self.handle, on));
    }
    /// GPTQ with act-order: every group's scale from the original weights.
    pub fn setStaticGroups(self: *Options, on: bool) Error!void {
        try call(c.quant_options_set_static_groups(self.handle, on));
    }
    /// GPTQ: search a shrink grid for each group's scale.
    pub fn setMseSearch(self: *Options, on: bool) Error!void {
        try call(c.quant_options_set_mse_search(self.handle, on));
    }
    /// Tokens a calibration keeps for AWQ's searches (default 512).
    pub fn setSampleTokens(self: *Options, v: usize) Error!void {
        try call(c.quant_options_set_sample_tokens(self.handle, v));
    }
    /// Worker threads of GPTQ, AWQ and the Hessian: 0 = all cores, at most QUANT_MAX_THREADS, default 1.
    pub fn setThreads(self: *Options, v: usize) Error!void {
        try call(c.quant_options_set_threads(self.handle, v));
    }
};

// ---- W8A8 runtime (SmoothQuant layers) -------------------------------------------------------------

/// Per-token INT8 quantization of x / input_scales (null: no division); x is n_tokens x cols,
/// dst n_tokens * cols codes, token_scales n_tokens scales.
pub fn quantizeActivations(x: []const f32, n_tokens: usize, cols: usize, input_scales: ?[]const f32, dst: []i8, token_scales: []f32) Error!void {
    if (product(n_tokens, cols)) |n| try need(x.len, n, "x");
    if (input_scales) |s| try need(s.len, cols, "input_scales");
    try call(c.quant_quantize_activations(x.ptr, n_tokens, cols, if (input_scales) |s| s.ptr else null, dst.ptr, dst.len, token_scales.ptr, token_scales.len));
}

/// out (m x n) = (a . b^T, exact in i32) * a_scales[i] * b_scales[j]; a is m x k, b is n x k.
pub fn int8Gemm(a: []const i8, a_scales: []const f32, b: []const i8, b_scales: []const f32, m: usize, n: usize, k: usize, out: []f32) Error!void {
    if (product(m, k)) |len| try need(a.len, len, "a");
    if (product(n, k)) |len| try need(b.len, len, "b");
    try need(a_scales.len, m, "a_scales");
    try need(b_scales.len, n, "b_scales");
    try call(c.quant_int8_gemm(a.ptr, a_scales.ptr, b.ptr, b_scales.ptr, m, n, k, out.ptr, out.len));
}

// ---- whole-matrix quantization --------------------------------------------------------------------

/// One quantized matrix (quant_weight). The slices it returns borrow its memory: they are valid
/// until deinit.
pub const Weight = struct {
    handle: ?*c.quant_weight,

    /// Quantizes the row-major rows x cols matrix w. calib may be null for INT8, INT4 and FP8;
    /// AWQ, SmoothQuant and GPTQ need it (error.InvalidArgument otherwise). opts null = defaults.
    pub fn quantize(m: Method, opts: ?*const Options, w: []const f32, rows: usize, cols: usize, calib: ?*const Calib) Error!Weight {
        if (product(rows, cols)) |n| try need(w.len, n, "w");
        const cm = m.toC();
        var h: ?*c.quant_weight = null;
        try call(c.quant_quantize(&cm, if (opts) |o| o.handle else null, w.ptr, rows, cols, if (calib) |k| k.handle else null, &h));
        return .{ .handle = h };
    }

    /// Quantizes matrices that read the same input (q, k, v; gate and up) together: AWQ and
    /// SmoothQuant give them one input scale. ws[i] holds rows[i] x cols floats; out receives
    /// ws.len weights (nothing on error). `allocator` holds the C pointer array during the call.
    pub fn quantizeGroup(allocator: std.mem.Allocator, m: Method, opts: ?*const Options, ws: []const []const f32, rows: []const usize, cols: usize, calib: ?*const Calib, out: []Weight) Error!void {
        if (ws.len != rows.len) return fail(error.ShapeMismatch, "{d} matrices but {d} row counts", .{ ws.len, rows.len });
        try need(out.len, ws.len, "out");
        const ptrs = try allocator.alloc([*c]const f32, ws.len);
        defer allocator.free(ptrs);
        const handles = try allocator.alloc(?*c.quant_weight, ws.len);
        defer allocator.free(handles);
        for (ws, rows, ptrs) |w, r, *p| {
            if (product(r, cols)) |n| try need(w.len, n, "ws[i]");
            p.* = if (w.len == 0) null else w.ptr;
        }
        const cm = m.toC();
        try call(c.quant_quantize_group(&cm, if (opts) |o| o.handle else null, if (ptrs.len == 0) null else ptrs.ptr, rows.ptr, ws.len, cols, if (calib) |k| k.handle else null, if (handles.len == 0) null else handles.ptr));
        for (out[0..ws.len], handles) |*o, h| o.* = .{ .handle = h };
    }

    /// The tensor lengths of packGptq: qweight cols*bits/32*rows, qzeros groups*rows*bits/32, scales
    /// groups*rows, g_idx cols. error.InvalidArgument for a weight that is not GPTQ (or INT4) or a shape
    /// whose rows*bits or cols*bits is not a multiple of 32; error.Unsupported for bits not 2, 3, 4, 8.
    pub fn gptqSizes(self: Weight) Error!GptqSizes {
        var s: GptqSizes = .{ .qweight = 0, .qzeros = 0, .scales = 0, .g_idx = 0 };
        try call(c.quant_weight_gptq_sizes(self.handle, &s.qweight, &s.qzeros, &s.scales, &s.g_idx));
        return s;
    }
    /// Writes the weight as the tensors of a GPTQ checkpoint (AutoGPTQ's QuantLinear layout): qweight
    /// int32 [cols*bits/32][rows] packed along the input dimension, lowest bits first; qzeros int32
    /// [groups][rows*bits/32], zero - 1 (format_version 1, AutoGPTQ) or the zero (2, GPTQModel);
    /// scales f16 bits [groups][rows]; g_idx int32 [cols]. Each slice holds at least its gptqSizes
    /// length; nothing is written on error.
    pub fn packGptq(self: Weight, format_version: u32, qweight: []i32, qzeros: []i32, scales_f16: []u16, g_idx: []i32) Error!void {
        try call(c.quant_weight_pack_gptq(self.handle, format_version, qweight.ptr, qweight.len, qzeros.ptr, qzeros.len, scales_f16.ptr, scales_f16.len, g_idx.ptr, g_idx.len));
    }
    /// The tensor lengths of packAwq: qweight cols*rows/8, qzeros groups*rows/8, scales groups*rows.
    /// error.InvalidArgument for a weight that is not AWQ, INT4 or GPTQ without act-order, rows not a
    /// multiple of 8 or cols not a multiple of the group size; error.Unsupported for codes not 4-bit.
    pub fn awqSizes(self: Weight) Error!AwqSizes {
        var s: AwqSizes = .{ .qweight = 0, .qzeros = 0, .scales = 0 };
        try call(c.quant_weight_awq_sizes(self.handle, &s.qweight, &s.qzeros, &s.scales));
        return s;
    }
    /// Writes the 4-bit weight as the tensors of an AWQ GEMM checkpoint (AutoAWQ's WQLinear_GEMM
    /// layout): qweight int32 [cols][rows/8], nibble i of word [j][c] holding output 8c + order[i],
    /// order = 0,2,4,6,1,3,5,7; qzeros int32 [groups][rows/8] packed the same way; scales f16 bits
    /// [groups][rows]. For AWQ the codes are those of W diag(s), s = inputScales(). Nothing is written
    /// on error.
    pub fn packAwq(self: Weight, qweight: []i32, qzeros: []i32, scales_f16: []u16) Error!void {
        try call(c.quant_weight_pack_awq(self.handle, qweight.ptr, qweight.len, qzeros.ptr, qzeros.len, scales_f16.ptr, scales_f16.len));
    }

    /// quantize of a weight given as f16 or bf16 bits; the result equals that of the f32
    /// function on the same values (INT8, INT4 and FP8 convert one row at a time).
    pub fn quantize16(m: Method, opts: ?*const Options, dtype: DType, w: []const u16, rows: usize, cols: usize, calib: ?*const Calib) Error!Weight {
        try halfCheck(dtype, w.len, rows, cols);
        const cm = m.toC();
        var h: ?*c.quant_weight = null;
        try call(c.quant_quantize_ex(&cm, if (opts) |o| o.handle else null, @backingInt(dtype), w.ptr, rows, cols, if (calib) |k| k.handle else null, &h));
        return .{ .handle = h };
    }

    pub fn deinit(self: *Weight) void {
        c.quant_weight_free(self.handle);
        self.handle = null;
    }

    pub const Shape = struct { rows: usize, cols: usize };
    pub fn shape(self: Weight) Error!Shape {
        var s: Shape = .{ .rows = 0, .cols = 0 };
        try call(c.quant_weight_shape(self.handle, &s.rows, &s.cols));
        return s;
    }
    /// The method it was quantized with.
    pub fn method(self: Weight) Error!Method {
        var out: c.quant_method = std.mem.zeroes(c.quant_method);
        try call(c.quant_weight_method(self.handle, &out));
        return Method.fromC(out);
    }
    /// Packed codes: each row starts on a byte, b bits per element, least significant bit first.
    pub fn data(self: Weight) []const u8 {
        var n: usize = 0;
        const p = c.quant_weight_data(self.handle, &n);
        return if (p == null or n == 0) &.{} else p[0..n];
    }
    /// The codes as signed bytes (INT8 and SmoothQuant weights, for int8Gemm).
    pub fn int8Data(self: Weight) []const i8 {
        const d = self.data();
        return @as([*]const i8, @ptrCast(d.ptr))[0..d.len];
    }
    /// One scale per group.
    pub fn scales(self: Weight) []const f32 {
        var n: usize = 0;
        const p = c.quant_weight_scales(self.handle, &n);
        return if (p == null or n == 0) &.{} else p[0..n];
    }
    /// Zero points; empty when the method has none.
    pub fn zeroPoints(self: Weight) []const f32 {
        var n: usize = 0;
        const p = c.quant_weight_zero_points(self.handle, &n);
        return if (p == null or n == 0) &.{} else p[0..n];
    }
    /// AWQ/SmoothQuant per-input-channel scales s; empty for the other methods.
    pub fn inputScales(self: Weight) []const f32 {
        var n: usize = 0;
        const p = c.quant_weight_input_scales(self.handle, &n);
        return if (p == null or n == 0) &.{} else p[0..n];
    }
    /// GPTQ act-order group index (one per column); empty otherwise.
    pub fn groupIndex(self: Weight) []const i32 {
        var n: usize = 0;
        const p = c.quant_weight_group_index(self.handle, &n);
        return if (p == null or n == 0) &.{} else p[0..n];
    }
    /// The effective weight in the original input basis into dst (rows * cols floats).
    pub fn dequantize(self: Weight, dst: []f32) Error!void {
        try call(c.quant_weight_dequantize(self.handle, dst.ptr, dst.len));
    }
};

// ---- GGUF blocks (GGML quant types) ----------------------------------------------------------------

/// A GGML quant type, numbered as GGML numbers it (QUANT_GGML_TYPE_*).
pub const GgmlType = enum(i32) {
    /// 32 values in 18 bytes: f16 d, 4-bit codes, (q - 8) * d.
    q4_0 = c.QUANT_GGML_TYPE_Q4_0,
    /// 32 values in 20 bytes: f16 d, m, 4-bit codes, q * d + m.
    q4_1 = c.QUANT_GGML_TYPE_Q4_1,
    /// 32 values in 22 bytes: f16 d, 5-bit codes, (q - 16) * d.
    q5_0 = c.QUANT_GGML_TYPE_Q5_0,
    /// 32 values in 24 bytes: f16 d, m, 5-bit codes, q * d + m.
    q5_1 = c.QUANT_GGML_TYPE_Q5_1,
    /// 32 values in 34 bytes: f16 d, int8 codes, q * d.
    q8_0 = c.QUANT_GGML_TYPE_Q8_0,
    /// 256 values in 84 bytes (sixteen 4-bit sub-block scales and mins, 2-bit codes).
    q2_K = c.QUANT_GGML_TYPE_Q2_K,
    /// 256 values in 110 bytes (sixteen 6-bit sub-block scales, 3-bit codes).
    q3_K = c.QUANT_GGML_TYPE_Q3_K,
    /// 256 values in 144 bytes (super-block scales, eight 6-bit sub-block scales and mins).
    q4_K = c.QUANT_GGML_TYPE_Q4_K,
    /// 256 values in 176 bytes (Q4_K's sub-block scales and mins, 5-bit codes).
    q5_K = c.QUANT_GGML_TYPE_Q5_K,
    /// 256 values in 210 bytes (sixteen int8 sub-block scales, 6-bit codes).
    q6_K = c.QUANT_GGML_TYPE_Q6_K,
    /// 32 values in 18 bytes: f16 d, 4-bit codes into 16 non-linear levels, d * kvalues_iq4nl[q].
    iq4_nl = c.QUANT_GGML_TYPE_IQ4_NL,
    /// 32 values in 17 bytes: E8M0 exponent, 4-bit E2M1 codes (OCP MXFP4).
    mxfp4 = c.QUANT_GGML_TYPE_MXFP4,
    /// 256 values in 136 bytes: f16 d, eight 6-bit block scales, IQ4_NL's 4-bit codes.
    iq4_xs = c.QUANT_GGML_TYPE_IQ4_XS,
    /// 64 values in 36 bytes: four UE4M3 scales of 16 values, 4-bit E2M1 codes (no per-tensor scale).
    nvfp4 = c.QUANT_GGML_TYPE_NVFP4,
    /// 256 values in 54 bytes: f16 d (the largest magnitude), ternary codes five to a byte, (t - 1) * d.
    tq1_0 = c.QUANT_GGML_TYPE_TQ1_0,
    /// 256 values in 66 bytes: f16 d (the largest magnitude), ternary codes in 2 bits, (q - 1) * d.
    tq2_0 = c.QUANT_GGML_TYPE_TQ2_0,
    _,

    /// Values per block (32, 64 for NVFP4, 256 for the K-quants, IQ4_XS, TQ1_0 and TQ2_0); error.InvalidArgument
    /// for an unknown type.
    pub fn blockSize(t: GgmlType) Error!usize {
        binding_detail_len = 0;
        const n = c.quant_ggml_block_size(@backingInt(t));
        return if (n == 0) error.InvalidArgument else n;
    }
    /// Bytes per block (18, 20, 22, 24, 34, 84, 110, 144, 176, 210, 18, 17, 136, 36, 54, 66);
    /// error.InvalidArgument for an unknown type.
    pub fn typeSize(t: GgmlType) Error!usize {
        binding_detail_len = 0;
        const n = c.quant_ggml_type_size(@backingInt(t));
        return if (n == 0) error.InvalidArgument else n;
    }
    /// Bytes of one row of n_per_row values (0 for n_per_row 0); error.InvalidArgument for an
    /// unknown type or a row length that is not a multiple of the block size.
    pub fn rowSize(t: GgmlType, n_per_row: usize) Error!usize {
        binding_detail_len = 0;
        const n = c.quant_ggml_row_size(@backingInt(t), n_per_row);
        return if (n == 0 and n_per_row != 0) error.InvalidArgument else n;
    }
    /// GGML's name ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K",
    /// "iq4_nl", "mxfp4", "iq4_xs", "nvfp4", "tq1_0", "tq2_0"); error.InvalidArgument for an unknown type.
    pub fn name(t: GgmlType) Error![:0]const u8 {
        binding_detail_len = 0;
        const p = c.quant_ggml_type_name(@backingInt(t));
        return if (p == null) error.InvalidArgument else std.mem.span(p);
    }
    /// nrows * rowSize(n_per_row): the bytes ggmlQuantize writes.
    pub fn matrixSize(t: GgmlType, nrows: usize, n_per_row: usize) Error!usize {
        const row = try t.rowSize(n_per_row);
        return std.math.mul(usize, nrows, row) catch return fail(error.InvalidArgument, "{d} rows of {d} bytes overflow", .{ nrows, row });
    }
};

/// Element type of a 16-bit source (QUANT_DTYPE_*): f16 or bf16 bits in u16. The functions taking
/// f32 slices are the f32 case.
pub const DType = enum(i32) {
    f32 = c.QUANT_DTYPE_F32,
    f16 = c.QUANT_DTYPE_F16,
    bf16 = c.QUANT_DTYPE_BF16,
    _,
};

/// A 16-bit source must be f16 or bf16 (an unknown value is passed on, and the library rejects it).
fn halfCheck(dtype: DType, have: usize, rows: usize, cols: usize) Error!void {
    if (dtype == .f32) return fail(error.InvalidArgument, "DType.f32 with a u16 source (use the f32 function)", .{});
    try srcCheck(have, rows, cols);
}

/// Quantizes nrows x n_per_row floats to GGML blocks, byte for byte as ggml's reference quantizer;
/// dst holds at least `t.matrixSize(nrows, n_per_row)` bytes (only that prefix is written).
pub fn ggmlQuantize(t: GgmlType, src: []const f32, nrows: usize, n_per_row: usize, dst: []u8) Error!void {
    try srcCheck(src.len, nrows, n_per_row);
    try call(c.quant_ggml_quantize(@backingInt(t), src.ptr, nrows, n_per_row, dst.ptr, dst.len));
}
/// ggmlQuantize with an importance matrix (one weight per column, the imatrix of llama-quantize),
/// byte for byte as ggml_quantize_chunk with it. null weights means none (the bytes of
/// ggmlQuantize); otherwise weights holds exactly n_per_row finite values >= 0.
pub fn ggmlQuantizeWeighted(t: GgmlType, src: []const f32, nrows: usize, n_per_row: usize, weights: ?[]const f32, dst: []u8) Error!void {
    try srcCheck(src.len, nrows, n_per_row);
    var wp: ?[*]const f32 = null;
    if (weights) |w| {
        if (w.len != n_per_row) return fail(error.ShapeMismatch, "weights holds {d} values, n_per_row is {d}", .{ w.len, n_per_row });
        wp = w.ptr;
    }
    try call(c.quant_ggml_quantize_weighted(@backingInt(t), src.ptr, nrows, n_per_row, wp, dst.ptr, dst.len));
}
/// ggmlQuantize of f16 or bf16 bits (as llama.cpp quantizes 16-bit models); the bytes equal those
/// of ggmlQuantize on the same values.
pub fn ggmlQuantize16(t: GgmlType, dtype: DType, src: []const u16, nrows: usize, n_per_row: usize, dst: []u8) Error!void {
    try halfCheck(dtype, src.len, nrows, n_per_row);
    try call(c.quant_ggml_quantize_ex(@backingInt(t), @backingInt(dtype), src.ptr, nrows, n_per_row, dst.ptr, dst.len));
}
/// Decodes dst.len values (a positive multiple of the block size) of GGML blocks, bit for bit as
/// ggml's dequantize_row_*.
pub fn ggmlDequantize(t: GgmlType, src: []const u8, dst: []f32) Error!void {
    try call(c.quant_ggml_dequantize(@backingInt(t), src.ptr, src.len, dst.ptr, dst.len));
}

// ---- f16 / bf16 sources ----------------------------------------------------------------------------
// The round-to-nearest kernels on f16 or bf16 bits, converted one row at a time; the outputs equal
// bit for bit those of the f32 functions on the same values.

/// int8Quantize of f16 or bf16 bits.
pub fn int8Quantize16(dtype: DType, src: []const u16, rows: usize, cols: usize, group_size: usize, dst: []i8, scales: []f32) Error!void {
    try halfCheck(dtype, src.len, rows, cols);
    try call(c.quant_int8_quantize_ex(@backingInt(dtype), src.ptr, rows, cols, group_size, dst.ptr, dst.len, scales.ptr, scales.len));
}
/// int4Quantize of f16 or bf16 bits.
pub fn int4Quantize16(dtype: DType, src: []const u16, rows: usize, cols: usize, group_size: usize, dst: []u8, scales: []f32, zeros: []u8) Error!void {
    try halfCheck(dtype, src.len, rows, cols);
    if (scales.len != zeros.len) return fail(error.ShapeMismatch, "scales ({d}) and zeros ({d}) differ in length", .{ scales.len, zeros.len });
    try call(c.quant_int4_quantize_ex(@backingInt(dtype), src.ptr, rows, cols, group_size, dst.ptr, dst.len, scales.ptr, zeros.ptr, scales.len));
}
/// fp8E4m3Quantize of f16 or bf16 bits.
pub fn fp8E4m3Quantize16(dtype: DType, src: []const u16, rows: usize, cols: usize, group_size: usize, dst: []u8, scales: []f32) Error!void {
    try halfCheck(dtype, src.len, rows, cols);
    try call(c.quant_fp8_e4m3_quantize_ex(@backingInt(dtype), src.ptr, rows, cols, group_size, dst.ptr, dst.len, scales.ptr, scales.len));
}

// ---- block-scaled FP8 E4M3 (DeepSeek-V3's weight + weight_scale_inv) -------------------------------

/// Block side of DeepSeek-V3's FP8 checkpoints (weight_block_size [128, 128]).
pub const fp8_block_deepseek: usize = c.QUANT_FP8_BLOCK_DEEPSEEK;
/// ceil(rows / block_rows) * ceil(cols / block_cols) scale_inv values; 0 for an invalid geometry.
pub fn fp8BlockScaleCount(rows: usize, cols: usize, block_rows: usize, block_cols: usize) usize {
    return c.quant_fp8_block_scale_count(rows, cols, block_rows, block_cols);
}
/// Per block_rows x block_cols block (edge blocks smaller): scale_inv = amax / 448, code =
/// fp8_e4m3(x / scale_inv) saturating; scale_inv row-major over the grid of blocks. One pass over src;
/// a NaN or infinity leaves dst and scale_inv zero-filled.
pub fn fp8BlockQuantize(src: []const f32, rows: usize, cols: usize, block_rows: usize, block_cols: usize, dst: []u8, scale_inv: []f32) Error!void {
    try srcCheck(src.len, rows, cols);
    try call(c.quant_fp8_block_quantize(src.ptr, rows, cols, block_rows, block_cols, dst.ptr, dst.len, scale_inv.ptr, scale_inv.len));
}
/// fp8BlockQuantize of f16 or bf16 bits (the results equal those of the same values as f32).
pub fn fp8BlockQuantize16(dtype: DType, src: []const u16, rows: usize, cols: usize, block_rows: usize, block_cols: usize, dst: []u8, scale_inv: []f32) Error!void {
    try halfCheck(dtype, src.len, rows, cols);
    try call(c.quant_fp8_block_quantize_ex(@backingInt(dtype), src.ptr, rows, cols, block_rows, block_cols, dst.ptr, dst.len, scale_inv.ptr, scale_inv.len));
}
/// x' = f32(code) * scale_inv of its block (DeepSeek-V3's weight_dequant).
pub fn fp8BlockDequantize(src: []const u8, scale_inv: []const f32, rows: usize, cols: usize, block_rows: usize, block_cols: usize, dst: []f32) Error!void {
    try srcCheck(src.len, rows, cols);
    const nb = fp8BlockScaleCount(rows, cols, block_rows, block_cols);
    if (nb != 0) try need(scale_inv.len, nb, "scale_inv");
    try call(c.quant_fp8_block_dequantize(src.ptr, scale_inv.ptr, rows, cols, block_rows, block_cols, dst.ptr, dst.len));
}

// ---- bitsandbytes NF4 / FP4 (quantize_4bit without double quantization) ---------------------------

/// bitsandbytes' 4-bit code books, numbered as bitsandbytes numbers them.
pub const Bnb4Type = enum(i32) {
    fp4 = c.QUANT_BNB4_FP4,
    nf4 = c.QUANT_BNB4_NF4,
    _,
};
/// bitsandbytes' default block size (64).
pub const bnb4_default_blocksize: usize = c.QUANT_BNB4_DEFAULT_BLOCKSIZE;
/// ceil(n / 2) bytes of packed codes; 0 for n 0.
pub fn bnb4PackedSize(n: usize) usize {
    return c.quant_bnb4_packed_size(n);
}
/// ceil(n / blocksize) absmax values; 0 for n 0 or a block size bitsandbytes does not accept.
pub fn bnb4AbsmaxCount(n: usize, blocksize: usize) usize {
    return c.quant_bnb4_absmax_count(n, blocksize);
}
/// Byte for byte bitsandbytes' quantize_4bit of src (flattened): packed codes, first value in the
/// high nibble, and one absmax per block. A NaN or infinity leaves the outputs zero-filled.
pub fn bnb4Quantize(ty: Bnb4Type, src: []const f32, blocksize: usize, dst: []u8, absmax: []f32) Error!void {
    try call(c.quant_bnb4_quantize(@backingInt(ty), src.ptr, src.len, blocksize, dst.ptr, dst.len, absmax.ptr, absmax.len));
}
/// bnb4Quantize of f16 or bf16 bits.
pub fn bnb4Quantize16(ty: Bnb4Type, dtype: DType, src: []const u16, blocksize: usize, dst: []u8, absmax: []f32) Error!void {
    if (dtype == .f32) return fail(error.InvalidArgument, "DType.f32 with a u16 source (use bnb4Quantize)", .{});
    try call(c.quant_bnb4_quantize_ex(@backingInt(ty), @backingInt(dtype), src.ptr, src.len, blocksize, dst.ptr, dst.len, absmax.ptr, absmax.len));
}
/// x' = code_book[code] * absmax of its block, n values into dst.
pub fn bnb4Dequantize(ty: Bnb4Type, src: []const u8, absmax: []const f32, n: usize, blocksize: usize, dst: []f32) Error!void {
    try need(src.len, n / 2 + n % 2, "src");
    const na = bnb4AbsmaxCount(n, blocksize);
    if (na != 0) try need(absmax.len, na, "absmax");
    try call(c.quant_bnb4_dequantize(@backingInt(ty), src.ptr, absmax.ptr, n, blocksize, dst.ptr, dst.len));
}

// ---- bitsandbytes double quantization (quantize_4bit with compress_statistics=True) ---------------
// See quant_bnb4_quantize_nested in quant.h: the block absmax values minus an offset, coded to 8 bits
// on bitsandbytes' signed dynamic map in blocks of 256.

/// The block size of the 8-bit step over the absmax values (256).
pub const bnb4_nested_blocksize: usize = c.QUANT_BNB4_NESTED_BLOCKSIZE;
/// ceil(ceil(n / blocksize) / 256) absmax2 values; 0 for n 0 or a block size bitsandbytes does not
/// accept.
pub fn bnb4NestedCount(n: usize, blocksize: usize) usize {
    return c.quant_bnb4_nested_count(n, blocksize);
}
/// The library's offset rule: the mean of absmax as its f64 sum in index order over the count,
/// rounded once to f32.
pub fn bnb4AbsmaxMean(absmax: []const f32) Error!f32 {
    var mean: f32 = undefined;
    try call(c.quant_bnb4_absmax_mean(absmax.ptr, absmax.len, &mean));
    return mean;
}
/// Byte for byte bitsandbytes' quantize_4bit(compress_statistics=True) of src given the offset: the
/// codes of bnb4Quantize into dst, the 8-bit codes of absmax - offset into qabsmax (bnb4AbsmaxCount
/// bytes), their absmax per 256 into absmax2 (bnb4NestedCount). offset null: the library's mean rule
/// (bitsandbytes' own is torch's f32 mean, whose last bits depend on the machine). Returns the offset
/// used. A NaN or infinity leaves the outputs zero-filled.
pub fn bnb4QuantizeNested(ty: Bnb4Type, src: []const f32, blocksize: usize, offset: ?f32, dst: []u8, qabsmax: []u8, absmax2: []f32) Error!f32 {
    return bnb4QuantizeNestedRaw(ty, .f32, src.ptr, src.len, blocksize, offset, dst, qabsmax, absmax2);
}
/// bnb4QuantizeNested of f16 or bf16 bits.
pub fn bnb4QuantizeNested16(ty: Bnb4Type, dtype: DType, src: []const u16, blocksize: usize, offset: ?f32, dst: []u8, qabsmax: []u8, absmax2: []f32) Error!f32 {
    if (dtype == .f32) return fail(error.InvalidArgument, "DType.f32 with a u16 source (use bnb4QuantizeNested)", .{});
    return bnb4QuantizeNestedRaw(ty, dtype, src.ptr, src.len, blocksize, offset, dst, qabsmax, absmax2);
}
fn bnb4QuantizeNestedRaw(ty: Bnb4Type, dtype: DType, src: *const anyopaque, n: usize, blocksize: usize, offset: ?f32, dst: []u8, qabsmax: []u8, absmax2: []f32) Error!f32 {
    var used: f32 = undefined;
    var given: f32 = offset orelse 0;
    const offset_ptr: ?*const f32 = if (offset != null) &given else null;
    try call(c.quant_bnb4_quantize_nested(@backingInt(ty), @backingInt(dtype), src, n, blocksize, offset_ptr, dst.ptr, dst.len, qabsmax.ptr, qabsmax.len, absmax2.ptr, absmax2.len, &used));
    return used;
}
/// The absmax values the statistics decode to (dequantize_blockwise + offset), for bnb4Dequantize:
/// qabsmax.len of them into dst.
pub fn bnb4NestedAbsmax(qabsmax: []const u8, absmax2: []const f32, offset: f32, dst: []f32) Error!void {
    try need(absmax2.len, (qabsmax.len + bnb4_nested_blocksize - 1) / bnb4_nested_blocksize, "absmax2");
    try call(c.quant_bnb4_nested_absmax(qabsmax.ptr, absmax2.ptr, offset, qabsmax.len, dst.ptr, dst.len));
}
/// n values of a tensor with double-quantized statistics into dst (dequantize_4bit of a nested state).
pub fn bnb4DequantizeNested(ty: Bnb4Type, src: []const u8, qabsmax: []const u8, absmax2: []const f32, offset: f32, n: usize, blocksize: usize, dst: []f32) Error!void {
    try need(src.len, n / 2 + n % 2, "src");
    const na = bnb4AbsmaxCount(n, blocksize);
    if (na != 0) {
        try need(qabsmax.len, na, "qabsmax");
        try need(absmax2.len, bnb4NestedCount(n, blocksize), "absmax2");
    }
    try call(c.quant_bnb4_dequantize_nested(@backingInt(ty), src.ptr, qabsmax.ptr, absmax2.ptr, offset, n, blocksize, dst.ptr, dst.len));
}

// ---- OCP MX and NVFP4 --------------------------------------------------------------------------------
// See quant_mx_quantize and quant_nvfp4_quantize in quant.h for the rules and the byte layouts.

/// Element type of an MX block (QUANT_MX_*): 32 values of a row share one E8M0 scale byte.
pub const MxElem = enum(i32) {
    fp8_e4m3 = c.QUANT_MX_FP8_E4M3,
    fp8_e5m2 = c.QUANT_MX_FP8_E5M2,
    fp6_e2m3 = c.QUANT_MX_FP6_E2M3,
    fp6_e3m2 = c.QUANT_MX_FP6_E3M2,
    fp4_e2m1 = c.QUANT_MX_FP4_E2M1,
    int8 = c.QUANT_MX_INT8,
    _,
};

/// Bytes of the packed codes of a rows x cols MX matrix (0 for an unknown type or shape).
pub fn mxPackedSize(elem: MxElem, rows: usize, cols: usize) usize {
    return c.quant_mx_packed_size(@backingInt(elem), rows, cols);
}
/// E8M0 scale bytes of a rows x cols MX matrix: rows * ceil(cols / 32) (0 for an invalid shape).
pub fn mxScaleCount(rows: usize, cols: usize) usize {
    return c.quant_mx_scale_count(rows, cols);
}
/// MX quantization (the OCP floor scale rule, elements rounded to nearest even, saturating); dst holds
/// mxPackedSize() bytes, scales mxScaleCount(). A NaN or infinity leaves both zero-filled.
pub fn mxQuantize(elem: MxElem, src: []const f32, rows: usize, cols: usize, dst: []u8, scales: []u8) Error!void {
    try srcCheck(src.len, rows, cols);
    try call(c.quant_mx_quantize(@backingInt(elem), src.ptr, rows, cols, dst.ptr, dst.len, scales.ptr, scales.len));
}
/// mxQuantize of f16 or bf16 bits; the bytes equal those of the same values as f32.
pub fn mxQuantize16(elem: MxElem, dtype: DType, src: []const u16, rows: usize, cols: usize, dst: []u8, scales: []u8) Error!void {
    try halfCheck(dtype, src.len, rows, cols);
    try call(c.quant_mx_quantize_ex(@backingInt(elem), @backingInt(dtype), src.ptr, rows, cols, dst.ptr, dst.len, scales.ptr, scales.len));
}
/// x' = value(code) * 2^(scale - 127) into dst (rows * cols floats).
pub fn mxDequantize(elem: MxElem, src: []const u8, scales: []const u8, rows: usize, cols: usize, dst: []f32) Error!void {
    try call(c.quant_mx_dequantize(@backingInt(elem), src.ptr, src.len, scales.ptr, scales.len, rows, cols, dst.ptr, dst.len));
}
/// Bytes of the packed NVFP4 codes, rows * ceil(cols / 2) (0 for an invalid shape).
pub fn nvfp4PackedSize(rows: usize, cols: usize) usize {
    return c.quant_nvfp4_packed_size(rows, cols);
}
/// E4M3 block scales of a rows x cols NVFP4 matrix, rows * ceil(cols / 16) (0 for an invalid shape).
pub fn nvfp4ScaleCount(rows: usize, cols: usize) usize {
    return c.quant_nvfp4_scale_count(rows, cols);
}
/// NVFP4 quantization as compressed-tensors computes it; returns the per-tensor global scale.
pub fn nvfp4Quantize(src: []const f32, rows: usize, cols: usize, dst: []u8, scales: []u8) Error!f32 {
    try srcCheck(src.len, rows, cols);
    var g: f32 = 0;
    try call(c.quant_nvfp4_quantize(src.ptr, rows, cols, dst.ptr, dst.len, scales.ptr, scales.len, &g));
    return g;
}
/// nvfp4Quantize of f16 or bf16 bits.
pub fn nvfp4Quantize16(dtype: DType, src: []const u16, rows: usize, cols: usize, dst: []u8, scales: []u8) Error!f32 {
    try halfCheck(dtype, src.len, rows, cols);
    var g: f32 = 0;
    try call(c.quant_nvfp4_quantize_ex(@backingInt(dtype), src.ptr, rows, cols, dst.ptr, dst.len, scales.ptr, scales.len, &g));
    return g;
}
/// The global scale nvfp4Quantize computes for a tensor whose largest magnitude is amax; for fused
/// layers (q/k/v, gate/up), the scale of the group's largest amax, shared by its members.
/// error.InvalidArgument for an amax that is NaN, infinite or negative.
pub fn nvfp4GlobalScale(amax: f32) Error!f32 {
    binding_detail_len = 0;
    const g = c.quant_nvfp4_global_scale(amax);
    return if (g == 0) error.InvalidArgument else g;
}
/// nvfp4Quantize under a given global scale (finite, > 0) instead of the matrix's own.
pub fn nvfp4QuantizeWithGlobal(src: []const f32, rows: usize, cols: usize, global_scale: f32, dst: []u8, scales: []u8) Error!void {
    try srcCheck(src.len, rows, cols);
    try call(c.quant_nvfp4_quantize_with_global(c.QUANT_DTYPE_F32, src.ptr, rows, cols, global_scale, dst.ptr, dst.len, scales.ptr, scales.len));
}
/// x' = e2m1(code) * (e4m3(scale) / global_scale) into dst (rows * cols floats).
pub fn nvfp4Dequantize(src: []const u8, scales: []const u8, global_scale: f32, rows: usize, cols: usize, dst: []f32) Error!void {
    try call(c.quant_nvfp4_dequantize(src.ptr, src.len, scales.ptr, scales.len, global_scale, rows, cols, dst.ptr, dst.len));
}

// ---- GPTQ and AWQ checkpoint tensors (methods of Weight) -------------------------------------------

/// Lengths, in elements, of the tensors of a GPTQ checkpoint (Weight.packGptq).
pub const GptqSizes = struct { qweight: usize, qzeros: usize, scales: usize, g_idx: usize };
/// Lengths, in elements, of the tensors of an AWQ GEMM checkpoint (Weight.packAwq).
pub const AwqSizes = struct { qweight: usize, qzeros: usize, scales: usize };
