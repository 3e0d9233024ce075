//! Tests of the Zig binding against the installed library: every function on its success path and
//! its error paths (the error union and the detail), and real MiniLM layers (tests/data/minilm).
const std = @import("std");
const quant = @import("quant");
const build_options = @import("build_options");
const c = quant.c;
const testing = std.testing;

/// result must fail with `expected`, and a detail must be available.
fn expectFail(expected: quant.Error, result: anytype) !void {
    try testing.expectError(expected, result);
    var buf: [256]u8 = undefined;
    const detail = quant.lastError(&buf);
    if (detail.len == 0) {
        std.debug.print("no detail for {s}\n", .{@errorName(expected)});
        return error.NoDetail;
    }
}

fn testMatrix(comptime rows: usize, comptime cols: usize) [rows * cols]f32 {
    var w: [rows * cols]f32 = undefined;
    for (&w, 0..) |*v, i| v.* = @sin(@as(f32, @floatFromInt(i))) * @as(f32, @floatFromInt(1 + i / cols));
    return w;
}

/// n floats of tests/data/minilm/<name>.f32 (caller frees), or SkipZigTest without -Ddata-dir.
fn load(name: []const u8, n: usize) ![]f32 {
    const dir = build_options.data_dir orelse return error.SkipZigTest;
    const path = try std.fmt.allocPrint(testing.allocator, "{s}/minilm/{s}.f32", .{ dir, name });
    defer testing.allocator.free(path);
    const buf = try testing.allocator.alloc(f32, n);
    errdefer testing.allocator.free(buf);
    const got = try std.Io.Dir.cwd().readFile(testing.io, path, std.mem.sliceAsBytes(buf));
    try testing.expectEqual(n * 4, got.len);
    return buf;
}

/// ||X W^T - X Q^T||^2 / ||X W^T||^2 over n tokens.
fn outputError(x: []const f32, n: usize, w: []const f32, q: []const f32, rows: usize, cols: usize) f64 {
    var num: f64 = 0;
    var den: f64 = 0;
    for (0..n) |t| {
        const xt = x[t * cols ..][0..cols];
        for (0..rows) |r| {
            const wr = w[r * cols ..][0..cols];
            const qr = q[r * cols ..][0..cols];
            var y: f64 = 0;
            var yq: f64 = 0;
            for (xt, wr, qr) |xv, wv, qv| {
                y += @as(f64, xv) * wv;
                yq += @as(f64, xv) * qv;
            }
            num += (y - yq) * (y - yq);
            den += y * y;
        }
    }
    return num / den;
}

test "status and version" {
    try testing.expectEqual(quant.header_version, quant.version());
    var buf: [32]u8 = undefined;
    const v = quant.version();
    const want = try std.fmt.bufPrint(&buf, "{d}.{d}.{d}", .{ v >> 16, (v >> 8) & 0xff, v & 0xff });
    try testing.expectEqualStrings(want, quant.versionString());
    try testing.expectEqualStrings("success", quant.statusString(c.QUANT_OK));
    try testing.expect(quant.statusString(12345).len > 0);
    // Every status maps to its error and back.
    var s: c.quant_status = c.QUANT_ERR_NULL_POINTER;
    while (s <= c.QUANT_ERR_INTERNAL) : (s += 1) {
        const err = if (quant.check(s)) |_| unreachable else |e| e;
        try testing.expectEqual(s, quant.statusOf(err));
    }
    try quant.check(c.QUANT_OK);
    try testing.expectError(error.UnknownStatus, quant.check(77));
}

test "levels" {
    const L = quant.Level;
    try testing.expectEqual(@as(u32, 32), L.fp32.bits());
    try testing.expectEqual(@as(u32, 4), L.int4.bits());
    try testing.expectEqual(@as(f64, 2), L.bf16.reductionFactor());
    try testing.expectEqualStrings("INT8", L.int8.name().?);
    try testing.expectEqualStrings("FP16", L.fp16.name().?);
    const unknown: L = @fromBackingInt(@intCast(99));
    try testing.expectEqual(@as(u32, 0), unknown.bits());
    try testing.expectEqual(@as(f64, 0), unknown.reductionFactor());
    try testing.expect(unknown.name() == null);
    try testing.expectEqual(L.fp16, try L.fromBits(16));
    try testing.expectEqual(L.int4, try L.fromBits(4));
    try expectFail(error.InvalidArgument, L.fromBits(7));
    // The enum's values are the header's.
    try testing.expectEqual(@as(i32, c.QUANT_LEVEL_INT4), @backingInt(L.int4));
    try testing.expectEqual(@as(i32, c.QUANT_LEVEL_BF16), @backingInt(L.bf16));
}

test "methods, memory estimate and config" {
    const M = quant.Method;
    try testing.expectEqual(@as(i32, c.QUANT_GPTQ), @backingInt(quant.MethodKind.gptq));
    try testing.expectEqual(@as(i32, c.QUANT_SMOOTHQUANT), @backingInt(quant.MethodKind.smoothquant));
    const g = M.gptq(4, 128);
    try g.validate();
    var buf: [64]u8 = undefined;
    try testing.expectEqualStrings("GPTQ(4bit, group=128)", g.name(&buf));
    try testing.expectEqualStrings("GPT", g.name(buf[0..4])); // truncated to fit
    const owned = try g.nameAlloc(testing.allocator);
    defer testing.allocator.free(owned);
    try testing.expectEqualStrings("GPTQ(4bit, group=128)", owned);
    try testing.expectEqual(@as(u32, 4), g.bitsPerWeight());
    try testing.expectEqual(@as(f64, 4), g.compressionRatio());
    try testing.expect(g.effectiveBits(4096) > 4);
    for ([_]M{ M.int8(0), M.int4(128), M.fp8(0), M.awq(4, 128), M.smoothQuant(0.5) }) |m| {
        try m.validate();
        try testing.expect(m.bitsPerWeight() > 0);
    }
    try expectFail(error.InvalidArgument, M.gptq(9, 128).validate());
    try expectFail(error.InvalidArgument, M.smoothQuant(1.5).validate());
    try expectFail(error.InvalidArgument, (M{ .kind = @fromBackingInt(@intCast(42)) }).validate());

    const est = try quant.estimateMemory(1000, M.int8(0));
    try testing.expectEqual(@as(usize, 2000), est.fp16_bytes);
    try testing.expect(est.quant_bytes > 0 and est.quant_bytes < est.fp16_bytes);
    try expectFail(error.InvalidArgument, quant.estimateMemory(1000, M{ .kind = @fromBackingInt(@intCast(42)) }));

    var cfg = try quant.Config.init(M.int8(0));
    defer cfg.deinit();
    try cfg.setLayer("lm_head", M.fp8(0));
    try testing.expectEqual(quant.MethodKind.fp8_e4m3, (try cfg.methodForLayer("lm_head")).kind);
    try testing.expectEqual(quant.MethodKind.int8_symmetric, (try cfg.methodForLayer("other")).kind);
    try cfg.validate();
    try expectFail(error.InvalidArgument, cfg.setLayer("bad\xffutf8", M.int8(0)));
    try cfg.setLayer("bad.layer", M.gptq(4, 0));
    try expectFail(error.InvalidArgument, cfg.validate());
    var detail: [256]u8 = undefined;
    try testing.expect(std.mem.indexOf(u8, quant.lastError(&detail), "bad.layer") != null);
    try expectFail(error.InvalidArgument, quant.Config.init(M{ .kind = @fromBackingInt(@intCast(42)) })); // values: by validate
    // A released handle is a NULL handle to the library.
    var gone = try quant.Config.init(M.int8(0));
    gone.deinit();
    try expectFail(error.NullPointer, gone.validate());
    gone.deinit(); // NULL is accepted by the free functions
}

test "plain casts" {
    const x = [_]f32{ 1, -2, 0.5, 65504, std.math.inf(f32) };
    var h: [5]u16 = undefined;
    try quant.f32ToF16(&x, &h);
    try testing.expectEqualSlices(u16, &.{ 0x3c00, 0xc000, 0x3800, 0x7bff, 0x7c00 }, &h);
    var back: [5]f32 = undefined;
    try quant.f16ToF32(&h, &back);
    try testing.expectEqualSlices(f32, &x, &back);
    var b: [5]u16 = undefined;
    try quant.f32ToBf16(&x, &b);
    try testing.expectEqual(@as(u16, 0x3f80), b[0]);
    try quant.bf16ToF32(b[0..3], back[0..3]);
    try testing.expectEqualSlices(f32, x[0..3], back[0..3]);

    const big = [_]f32{ 1000, std.math.nan(f32), 448, -0.0 };
    var f8: [4]u8 = undefined;
    try quant.f32ToFp8E4m3(&big, &f8, true);
    try testing.expectEqual(@as(u8, 0x7e), f8[0]);
    try testing.expectEqual(@as(u8, 0x7f), f8[1] & 0x7f);
    try testing.expectEqual(@as(u8, 0x80), f8[3]);
    var dec: [4]f32 = undefined;
    try quant.fp8E4m3ToF32(&f8, &dec);
    try testing.expectEqual(@as(f32, 448), dec[0]);
    try testing.expect(std.math.isNan(dec[1]));
    try quant.f32ToFp8E4m3(&big, &f8, false);
    try testing.expectEqual(@as(u8, 0x7f), f8[0] & 0x7f); // overflow is NaN without saturation
    var e5: [2]u8 = undefined;
    try quant.f32ToFp8E5m2(&.{ -2, 1e6 }, &e5, true);
    try quant.fp8E5m2ToF32(&e5, dec[0..2]);
    try testing.expectEqual(@as(f32, -2), dec[0]);
    try testing.expectEqual(@as(f32, 57344), dec[1]);

    // Error paths: a destination too short is refused before the call, and left untouched.
    var small16 = [_]u16{0xAAAA};
    try expectFail(error.BufferTooSmall, quant.f32ToF16(&x, &small16));
    try expectFail(error.BufferTooSmall, quant.f32ToBf16(&x, &small16));
    try testing.expectEqual(@as(u16, 0xAAAA), small16[0]);
    var small_f = [_]f32{7};
    try expectFail(error.BufferTooSmall, quant.f16ToF32(&h, &small_f));
    try expectFail(error.BufferTooSmall, quant.bf16ToF32(&h, &small_f));
    try expectFail(error.BufferTooSmall, quant.fp8E4m3ToF32(&f8, &small_f));
    try expectFail(error.BufferTooSmall, quant.fp8E5m2ToF32(&f8, &small_f));
    var small8 = [_]u8{1};
    try expectFail(error.BufferTooSmall, quant.f32ToFp8E4m3(&x, &small8, true));
    try expectFail(error.BufferTooSmall, quant.f32ToFp8E5m2(&x, &small8, false));
    try testing.expectEqual(@as(f32, 7), small_f[0]);
    // The library's own NULL check, through the raw C API.
    try expectFail(error.NullPointer, quant.check(c.quant_f16_to_f32(null, &back, 2)));
}

test "round-to-nearest kernels" {
    const rows = 3;
    const cols = 10;
    const group = 4;
    const w = testMatrix(rows, cols);
    try testing.expectEqual(@as(usize, 9), quant.scaleCount(rows, cols, group));
    try testing.expectEqual(@as(usize, 3), quant.scaleCount(rows, cols, 0));
    try testing.expectEqual(@as(usize, 15), quant.int4PackedSize(rows, cols));

    var codes: [rows * cols]i8 = undefined;
    var scales: [9]f32 = undefined;
    try quant.int8Quantize(&w, rows, cols, group, &codes, &scales);
    var back: [rows * cols]f32 = undefined;
    try quant.int8Dequantize(&codes, &scales, rows, cols, group, &back);
    for (w, back, 0..) |a, b, i| {
        const step = scales[(i / cols) * 3 + (i % cols) / group];
        try testing.expect(@abs(a - b) <= step * 0.5001);
    }
    var scales_untouched: [9]f32 = @splat(-1);
    try expectFail(error.BufferTooSmall, quant.int8Quantize(&w, rows, cols, group, codes[0 .. rows * cols - 1], &scales_untouched));
    try testing.expectEqual(@as(f32, -1), scales_untouched[0]);
    try expectFail(error.BufferTooSmall, quant.int8Quantize(&w, rows, cols, group, &codes, scales[0..8]));
    try expectFail(error.BufferTooSmall, quant.int8Quantize(w[0..5], rows, cols, group, &codes, &scales));
    try expectFail(error.InvalidArgument, quant.int8Quantize(&w, 0, cols, group, &codes, &scales));
    try expectFail(error.InvalidArgument, quant.int8Quantize(&w, std.math.maxInt(usize), 2, group, &codes, &scales));
    var bad = w;
    bad[7] = std.math.nan(f32);
    try expectFail(error.NonFinite, quant.int8Quantize(&bad, rows, cols, group, &codes, &scales));
    // A value error zero-fills the outputs; the argument errors above wrote nothing.
    {
        var c2: [rows * cols]i8 = undefined;
        var s2: [9]f32 = undefined;
        try quant.int8Quantize(&w, rows, cols, group, &codes, &scales);
        try quant.int8Quantize(&w, rows, cols, group, &c2, &s2);
        try testing.expectEqualSlices(i8, &codes, &c2);
        try expectFail(error.NonFinite, quant.int8Quantize(&bad, rows, cols, group, &c2, &s2));
        for (c2) |v| try testing.expectEqual(@as(i8, 0), v);
        for (s2) |v| try testing.expectEqual(@as(f32, 0), v);
        var p1: [15]u8 = undefined;
        var z1: [9]u8 = undefined;
        try expectFail(error.NonFinite, quant.int4Quantize(&bad, rows, cols, group, &p1, &s2, &z1));
        for (p1) |v| try testing.expectEqual(@as(u8, 0), v);
        for (z1) |v| try testing.expectEqual(@as(u8, 0), v);
        var f1: [rows * cols]u8 = undefined;
        try expectFail(error.NonFinite, quant.fp8E4m3Quantize(&bad, rows, cols, group, &f1, &s2));
        for (f1) |v| try testing.expectEqual(@as(u8, 0), v);
        try quant.int8Quantize(&w, rows, cols, group, &codes, &scales);
    }
    try expectFail(error.BufferTooSmall, quant.int8Dequantize(&codes, scales[0..2], rows, cols, group, &back));
    try expectFail(error.BufferTooSmall, quant.int8Dequantize(&codes, &scales, rows, cols, group, back[0..29]));

    var packed4: [15]u8 = undefined;
    var scales4: [9]f32 = undefined;
    var zeros4: [9]u8 = undefined;
    try quant.int4Quantize(&w, rows, cols, group, &packed4, &scales4, &zeros4);
    try quant.int4Dequantize(&packed4, &scales4, &zeros4, rows, cols, group, &back);
    for (w, back, 0..) |a, b, i| {
        const step = scales4[(i / cols) * 3 + (i % cols) / group];
        try testing.expect(@abs(a - b) <= step * 1.0001);
    }
    try expectFail(error.BufferTooSmall, quant.int4Quantize(&w, rows, cols, group, packed4[0..14], &scales4, &zeros4));
    try expectFail(error.ShapeMismatch, quant.int4Quantize(&w, rows, cols, group, &packed4, &scales4, zeros4[0..8]));
    try expectFail(error.NonFinite, quant.int4Quantize(&bad, rows, cols, group, &packed4, &scales4, &zeros4));
    try expectFail(error.BufferTooSmall, quant.int4Dequantize(packed4[0..14], &scales4, &zeros4, rows, cols, group, &back));
    try expectFail(error.BufferTooSmall, quant.int4Dequantize(&packed4, &scales4, zeros4[0..8], rows, cols, group, &back));
    try expectFail(error.BufferTooSmall, quant.int4Dequantize(&packed4, &scales4, &zeros4, rows, cols, group, back[0..1]));

    const vals = [_]i8{ -8, 7, 3, -1, 5 };
    var p: [3]u8 = undefined;
    try quant.packInt4(&vals, &p);
    try testing.expectEqual(@as(u8, 0x78), p[0]);
    var un: [5]i8 = undefined;
    try quant.unpackInt4(&p, 5, &un);
    try testing.expectEqualSlices(i8, &vals, &un);
    try expectFail(error.BufferTooSmall, quant.packInt4(&vals, p[0..2]));
    try expectFail(error.BufferTooSmall, quant.unpackInt4(&p, 5, un[0..4]));
    try expectFail(error.BufferTooSmall, quant.unpackInt4(p[0..2], 5, &un));
}

test "FP8 E4M3 with a scale per row" {
    const rows = 3;
    const cols = 10;
    const w = testMatrix(rows, cols);
    var bad = w;
    bad[7] = std.math.nan(f32);
    var back: [rows * cols]f32 = undefined;
    var f8: [rows * cols]u8 = undefined;
    var s8: [rows]f32 = undefined;
    try quant.fp8E4m3Quantize(&w, rows, cols, 0, &f8, &s8);
    try quant.fp8E4m3Dequantize(&f8, &s8, rows, cols, 0, &back);
    for (w, back) |a, b| try testing.expect(@abs(a - b) <= 0.07 * @abs(a) + 1e-3);
    try expectFail(error.BufferTooSmall, quant.fp8E4m3Quantize(&w, rows, cols, 0, &f8, s8[0..2]));
    try expectFail(error.NonFinite, quant.fp8E4m3Quantize(&bad, rows, cols, 0, &f8, &s8));
    try expectFail(error.BufferTooSmall, quant.fp8E4m3Dequantize(&f8, s8[0..1], rows, cols, 0, &back));
    try expectFail(error.BufferTooSmall, quant.fp8E4m3Dequantize(&f8, &s8, rows, cols, 0, back[0..3]));
}

test "block FP8 (DeepSeek-V3)" {
    const rows = 130;
    const cols = 140;
    const w = testMatrix(rows, cols);
    try testing.expectEqual(@as(usize, 128), quant.fp8_block_deepseek);
    try testing.expectEqual(@as(usize, 4), quant.fp8BlockScaleCount(rows, cols, 128, 128));
    try testing.expectEqual(@as(usize, 0), quant.fp8BlockScaleCount(rows, cols, 0, 128));
    var q: [rows * cols]u8 = undefined;
    var s: [4]f32 = undefined;
    var back: [rows * cols]f32 = undefined;
    try quant.fp8BlockQuantize(&w, rows, cols, 128, 128, &q, &s);
    try quant.fp8BlockDequantize(&q, &s, rows, cols, 128, 128, &back);
    for (w, back, 0..) |a, b, i| {
        const si = s[(i / cols / 128) * 2 + (i % cols) / 128];
        try testing.expect(@abs(a - b) <= @max(@abs(a) / 16, si / 1024) * 1.0001);
    }
    // Blocks of 1 x k are the grouped quantizer with groups of k (DeepSeek-V3's act_quant).
    var q1: [rows * cols]u8 = undefined;
    var q2: [rows * cols]u8 = undefined;
    var s1: [rows * 2]f32 = undefined;
    var s2: [rows * 2]f32 = undefined;
    try quant.fp8BlockQuantize(&w, rows, cols, 1, 128, &q1, &s1);
    try quant.fp8E4m3Quantize(&w, rows, cols, 128, &q2, &s2);
    try testing.expectEqualSlices(u8, &q2, &q1);
    try testing.expectEqualSlices(f32, &s2, &s1);
    var h: [rows * cols]u16 = undefined;
    for (&h, w) |*d, v| d.* = @as(u16, @truncate(@as(u32, @bitCast(v)) >> 16));
    try quant.fp8BlockQuantize16(.bf16, &h, rows, cols, 128, 128, &q, &s);
    try expectFail(error.InvalidArgument, quant.fp8BlockQuantize16(.f32, &h, rows, cols, 128, 128, &q, &s));
    try expectFail(error.InvalidArgument, quant.fp8BlockQuantize(&w, rows, cols, 128, 0, &q, &s));
    try expectFail(error.BufferTooSmall, quant.fp8BlockQuantize(&w, rows, cols, 128, 128, &q, s[0..3]));
    var bad = w;
    bad[5] = std.math.nan(f32);
    try expectFail(error.NonFinite, quant.fp8BlockQuantize(&bad, rows, cols, 128, 128, &q, &s));
    for (q) |v| try testing.expectEqual(@as(u8, 0), v);
    for (s) |v| try testing.expectEqual(@as(f32, 0), v);
    try expectFail(error.BufferTooSmall, quant.fp8BlockDequantize(&q, s[0..3], rows, cols, 128, 128, &back));
    s[2] = std.math.inf(f32);
    try expectFail(error.NonFinite, quant.fp8BlockDequantize(&q, &s, rows, cols, 128, 128, &back));
}

test "bitsandbytes NF4 / FP4" {
    const n = 301;
    const w = testMatrix(7, 43);
    try testing.expectEqual(@as(usize, 64), quant.bnb4_default_blocksize);
    try testing.expectEqual(@as(usize, 151), quant.bnb4PackedSize(n));
    try testing.expectEqual(@as(usize, 5), quant.bnb4AbsmaxCount(n, 64));
    try testing.expectEqual(@as(usize, 0), quant.bnb4AbsmaxCount(n, 48));
    var q: [151]u8 = undefined;
    var a: [5]f32 = undefined;
    var back: [n]f32 = undefined;
    for ([_]quant.Bnb4Type{ .nf4, .fp4 }) |ty| {
        try quant.bnb4Quantize(ty, &w, 64, &q, &a);
        try quant.bnb4Dequantize(ty, &q, &a, n, 64, &back);
        // Within half the widest gap of either code book (1/6) times the block's absmax.
        for (w, back, 0..) |x, y, i| try testing.expect(@abs(x - y) <= a[i / 64] / 6 * 1.0001);
    }
    var h: [n]u16 = undefined;
    for (&h, w) |*d, v| d.* = @as(u16, @truncate(@as(u32, @bitCast(v)) >> 16));
    try quant.bnb4Quantize16(.nf4, .bf16, &h, 64, &q, &a);
    try expectFail(error.InvalidArgument, quant.bnb4Quantize16(.nf4, .f32, &h, 64, &q, &a));
    try expectFail(error.InvalidArgument, quant.bnb4Quantize(@fromBackingInt(@intCast(0)), &w, 64, &q, &a));
    try expectFail(error.InvalidArgument, quant.bnb4Quantize(.nf4, &w, 100, &q, &a));
    try expectFail(error.BufferTooSmall, quant.bnb4Quantize(.nf4, &w, 64, q[0..150], &a));
    var bad = w;
    bad[300] = std.math.inf(f32);
    try expectFail(error.NonFinite, quant.bnb4Quantize(.fp4, &bad, 64, &q, &a));
    for (q) |v| try testing.expectEqual(@as(u8, 0), v);
    try expectFail(error.BufferTooSmall, quant.bnb4Dequantize(.nf4, &q, a[0..4], n, 64, &back));
    a[1] = std.math.nan(f32);
    try expectFail(error.NonFinite, quant.bnb4Dequantize(.nf4, &q, &a, n, 64, &back));
}

test "bitsandbytes double quantization" {
    const n = 64 * 300 + 5;
    var w: [n]f32 = undefined;
    for (&w, 0..) |*v, i| v.* = @sin(@as(f32, @floatFromInt(i))) * @as(f32, @floatFromInt(1 + i % 13));
    try testing.expectEqual(@as(usize, 256), quant.bnb4_nested_blocksize);
    try testing.expectEqual(@as(usize, 2), quant.bnb4NestedCount(n, 64));
    try testing.expectEqual(@as(usize, 0), quant.bnb4NestedCount(n, 48));
    const na = 301;
    var q: [n / 2 + 1]u8 = undefined;
    var q0: [n / 2 + 1]u8 = undefined;
    var a: [na]f32 = undefined;
    var qa: [na]u8 = undefined;
    var a2: [2]f32 = undefined;
    var rec: [na]f32 = undefined;
    var back: [n]f32 = undefined;
    var back2: [n]f32 = undefined;
    for ([_]quant.Bnb4Type{ .nf4, .fp4 }) |ty| {
        try quant.bnb4Quantize(ty, &w, 64, &q0, &a);
        const off = try quant.bnb4QuantizeNested(ty, &w, 64, null, &q, &qa, &a2);
        try testing.expectEqual(try quant.bnb4AbsmaxMean(&a), off);
        try testing.expectEqualSlices(u8, &q0, &q);
        try quant.bnb4NestedAbsmax(&qa, &a2, off, &rec);
        // Within half the widest step of the dynamic map (0.0703) times absmax2.
        for (a, rec, 0..) |x, y, i| try testing.expect(@abs(x - y) <= 0.0352 * a2[i / 256] + 1e-6 * off);
        try quant.bnb4DequantizeNested(ty, &q, &qa, &a2, off, n, 64, &back);
        try quant.bnb4Dequantize(ty, &q, &rec, n, 64, &back2);
        try testing.expectEqualSlices(u8, std.mem.sliceAsBytes(&back2), std.mem.sliceAsBytes(&back));
        try testing.expectEqual(@as(f32, 0.5), try quant.bnb4QuantizeNested(ty, &w, 64, 0.5, &q, &qa, &a2));
    }
    var h: [n]u16 = undefined;
    for (&h, w) |*d, v| d.* = @as(u16, @truncate(@as(u32, @bitCast(v)) >> 16));
    _ = try quant.bnb4QuantizeNested16(.nf4, .bf16, &h, 64, null, &q, &qa, &a2);
    try expectFail(error.InvalidArgument, quant.bnb4QuantizeNested16(.nf4, .f32, &h, 64, null, &q, &qa, &a2));
    try expectFail(error.InvalidArgument, quant.bnb4QuantizeNested(@fromBackingInt(@intCast(0)), &w, 64, null, &q, &qa, &a2));
    try expectFail(error.InvalidArgument, quant.bnb4QuantizeNested(.nf4, &w, 64, std.math.nan(f32), &q, &qa, &a2));
    try expectFail(error.BufferTooSmall, quant.bnb4QuantizeNested(.nf4, &w, 64, null, &q, qa[0..300], &a2));
    try expectFail(error.BufferTooSmall, quant.bnb4QuantizeNested(.nf4, &w, 64, null, &q, &qa, a2[0..1]));
    try expectFail(error.InvalidArgument, quant.bnb4AbsmaxMean(a[0..0]));
    var bad = w;
    bad[9000] = -std.math.inf(f32);
    try expectFail(error.NonFinite, quant.bnb4QuantizeNested(.fp4, &bad, 64, null, &q, &qa, &a2));
    for (qa) |v| try testing.expectEqual(@as(u8, 0), v);
    try expectFail(error.BufferTooSmall, quant.bnb4DequantizeNested(.nf4, &q, &qa, a2[0..1], 0, n, 64, &back));
    try expectFail(error.BufferTooSmall, quant.bnb4NestedAbsmax(&qa, a2[0..1], 0, &rec));
    try expectFail(error.InvalidArgument, quant.bnb4NestedAbsmax(&qa, &a2, std.math.inf(f32), &rec));
    a2[0] = std.math.nan(f32);
    try expectFail(error.NonFinite, quant.bnb4DequantizeNested(.nf4, &q, &qa, &a2, 0, n, 64, &back));
}

test "bitsandbytes double quantization: bitsandbytes' bytes" {
    const dir = build_options.data_dir orelse return error.SkipZigTest;
    const n = 35141;
    const na = 550;
    const x = try testing.allocator.alloc(f32, n);
    defer testing.allocator.free(x);
    var buf: [4096]u8 = undefined;
    {
        const path = try std.fmt.allocPrint(testing.allocator, "{s}/bnb4/nested_3blocks.in.f32", .{dir});
        defer testing.allocator.free(path);
        const got = try std.Io.Dir.cwd().readFile(testing.io, path, std.mem.sliceAsBytes(x));
        try testing.expectEqual(n * 4, got.len);
    }
    const q = try testing.allocator.alloc(u8, (n + 1) / 2);
    defer testing.allocator.free(q);
    var qa: [na]u8 = undefined;
    var a2: [3]f32 = undefined;
    try testing.expectEqual(@as(usize, na), quant.bnb4AbsmaxCount(n, 64));
    try testing.expectEqual(@as(usize, 3), quant.bnb4NestedCount(n, 64));
    for ([_][]const u8{ "nf4", "fp4" }, [_]quant.Bnb4Type{ .nf4, .fp4 }) |t, ty| {
        const opath = try std.fmt.allocPrint(testing.allocator, "{s}/bnb4/nested_3blocks.{s}.nested.offset.f32", .{ dir, t });
        defer testing.allocator.free(opath);
        const ob = try std.Io.Dir.cwd().readFile(testing.io, opath, &buf);
        const offset: f32 = @bitCast(std.mem.readInt(u32, ob[0..4], .little));
        try testing.expectEqual(offset, try quant.bnb4QuantizeNested(ty, x, 64, offset, q, &qa, &a2));
        const qpath = try std.fmt.allocPrint(testing.allocator, "{s}/bnb4/nested_3blocks.{s}.nested.qabsmax.u8", .{ dir, t });
        defer testing.allocator.free(qpath);
        try testing.expectEqualSlices(u8, try std.Io.Dir.cwd().readFile(testing.io, qpath, &buf), &qa);
        const apath = try std.fmt.allocPrint(testing.allocator, "{s}/bnb4/nested_3blocks.{s}.nested.absmax2.f32", .{ dir, t });
        defer testing.allocator.free(apath);
        try testing.expectEqualSlices(u8, try std.Io.Dir.cwd().readFile(testing.io, apath, &buf), std.mem.sliceAsBytes(&a2));
    }
}

test "SmoothQuant scales" {
    var sm: [2]f32 = undefined;
    try quant.smoothScales(&.{ 1, 4 }, &.{ 4, 1 }, 0.5, &sm);
    try testing.expectApproxEqAbs(@as(f32, 2), sm[0], 1e-6);
    try testing.expectApproxEqAbs(@as(f32, 0.5), sm[1], 1e-6);
    try expectFail(error.InvalidArgument, quant.smoothScales(&.{ 1, 4 }, &.{ 4, 1 }, 1.5, &sm));
    try expectFail(error.ShapeMismatch, quant.smoothScales(&.{ 1, 4 }, &.{4}, 0.5, &sm));
    try expectFail(error.BufferTooSmall, quant.smoothScales(&.{ 1, 4 }, &.{ 4, 1 }, 0.5, sm[0..1]));
}

test "quantize a real layer (round to nearest)" {
    const rows = 384;
    const cols = 384;
    const tokens = 256;
    const w = try load("encoder.layer.0.attention.self.query.weight", rows * cols);
    defer testing.allocator.free(w);
    const x = try load("x_calib.layer0.attn_in", tokens * cols);
    defer testing.allocator.free(x);
    const deq = try testing.allocator.alloc(f32, rows * cols);
    defer testing.allocator.free(deq);

    var q8 = try quant.Weight.quantize(quant.Method.int8(0), null, w, rows, cols, null);
    defer q8.deinit();
    const s = try q8.shape();
    try testing.expectEqual(@as(usize, rows), s.rows);
    try testing.expectEqual(@as(usize, cols), s.cols);
    try testing.expectEqual(@as(usize, rows * cols), q8.data().len);
    try testing.expectEqual(@as(usize, rows), q8.scales().len);
    try testing.expectEqual(@as(usize, 0), q8.zeroPoints().len);
    try testing.expectEqual(@as(usize, 0), q8.inputScales().len);
    try testing.expectEqual(@as(usize, 0), q8.groupIndex().len);
    try testing.expectEqual(quant.MethodKind.int8_symmetric, (try q8.method()).kind);
    try q8.dequantize(deq);
    const e8 = outputError(x, tokens, w, deq, rows, cols);

    var q4 = try quant.Weight.quantize(quant.Method.int4(128), null, w, rows, cols, null);
    defer q4.deinit();
    try testing.expectEqual(@as(usize, rows * cols / 2), q4.data().len);
    try testing.expectEqual(@as(usize, rows * 3), q4.zeroPoints().len);
    try q4.dequantize(deq);
    const e4 = outputError(x, tokens, w, deq, rows, cols);
    std.debug.print("  layer 0 query, {d} tokens: INT8/channel {e:.4}, INT4 g128 {e:.4}\n", .{ tokens, e8, e4 });
    try testing.expect(e8 > 0 and e8 < 1e-4 and e4 > e8 and e4 < 2e-2);

    try expectFail(error.BufferTooSmall, q8.dequantize(deq[0 .. rows * cols - 1]));
    try expectFail(error.InvalidArgument, quant.Weight.quantize(quant.Method.int8(0), null, w, 0, cols, null));
    try expectFail(error.BufferTooSmall, quant.Weight.quantize(quant.Method.int8(0), null, w[0..10], rows, cols, null));
    try expectFail(error.InvalidArgument, quant.Weight.quantize(quant.Method.gptq(4, 128), null, w, rows, cols, null));
    var gone = try quant.Weight.quantize(quant.Method.fp8(0), null, w, rows, cols, null);
    gone.deinit();
    try expectFail(error.NullPointer, gone.shape());
    try expectFail(error.NullPointer, gone.dequantize(deq));
    try testing.expectEqual(@as(usize, 0), gone.data().len);
}

test "calibration, options, GPTQ, AWQ and SmoothQuant on real layers" {
    const rows = 384;
    const cols = 384;
    const calib_tokens = 1024;
    const test_tokens = 256;
    const wq = try load("encoder.layer.5.attention.self.query.weight", rows * cols);
    defer testing.allocator.free(wq);
    const wv = try load("encoder.layer.5.attention.self.value.weight", rows * cols);
    defer testing.allocator.free(wv);
    const x = try load("x_calib.layer5.attn_in", (calib_tokens + test_tokens) * cols);
    defer testing.allocator.free(x);
    const held_out = x[calib_tokens * cols ..];
    const deq = try testing.allocator.alloc(f32, rows * cols);
    defer testing.allocator.free(deq);

    var cal = try quant.Calib.init(cols);
    defer cal.deinit();
    try cal.add(x[0 .. 512 * cols]);
    try cal.addTokens(x[512 * cols .. calib_tokens * cols], 512, cols);
    try testing.expectEqual(@as(u64, calib_tokens), cal.tokens());
    try testing.expectEqual(@as(u64, 16 * cols), try quant.Calib.recommendedTokens(.gptq, cols));
    try testing.expectEqual(@as(u64, 512), try quant.Calib.recommendedTokens(.awq, cols));
    try testing.expectEqual(@as(u64, 0), try quant.Calib.recommendedTokens(.int4_asymmetric, cols));
    try expectFail(error.InvalidArgument, quant.Calib.recommendedTokens(.gptq, 0));
    try expectFail(error.ShapeMismatch, cal.add(x[0 .. cols + 1]));
    try expectFail(error.ShapeMismatch, cal.addTokens(x, 1, cols + 1));
    try expectFail(error.BufferTooSmall, cal.addTokens(x[0..cols], 2, cols));
    var nan_x: [cols]f32 = @splat(1);
    nan_x[3] = std.math.nan(f32);
    try expectFail(error.NonFinite, cal.add(&nan_x));
    try testing.expectEqual(@as(u64, calib_tokens), cal.tokens());
    try expectFail(error.InvalidArgument, quant.Calib.init(0));

    var opts = try quant.Options.init();
    defer opts.deinit();
    try opts.setActOrder(true);
    try opts.setDampPercent(0.01);
    try opts.setBlockSize(128);
    try opts.setSymmetric(false);
    try opts.setStaticGroups(false);
    try opts.setMseSearch(false);
    try opts.setSampleTokens(256);
    try opts.setThreads(1);
    try expectFail(error.InvalidArgument, opts.setDampPercent(-1));
    try expectFail(error.InvalidArgument, opts.setBlockSize(0));
    try expectFail(error.InvalidArgument, opts.setSampleTokens(0));

    var rtn = try quant.Weight.quantize(quant.Method.int4(128), null, wq, rows, cols, null);
    defer rtn.deinit();
    try rtn.dequantize(deq);
    const e_rtn = outputError(held_out, test_tokens, wq, deq, rows, cols);
    var g = try quant.Weight.quantize(quant.Method.gptq(4, 128), &opts, wq, rows, cols, &cal);
    defer g.deinit();
    try testing.expectEqual(@as(usize, cols), g.groupIndex().len);
    try g.dequantize(deq);
    const e_gptq = outputError(held_out, test_tokens, wq, deq, rows, cols);
    var a = try quant.Weight.quantize(quant.Method.awq(4, 128), null, wq, rows, cols, &cal);
    defer a.deinit();
    try testing.expectEqual(@as(usize, cols), a.inputScales().len);
    try a.dequantize(deq);
    const e_awq = outputError(held_out, test_tokens, wq, deq, rows, cols);
    std.debug.print("  layer 5 query, held-out tokens: RTN INT4 g128 {e:.4}, GPTQ {e:.4}, AWQ {e:.4}\n", .{ e_rtn, e_gptq, e_awq });
    try testing.expect(e_gptq < e_rtn and e_awq < e_rtn);

    var pair: [2]quant.Weight = undefined;
    try quant.Weight.quantizeGroup(testing.allocator, quant.Method.awq(4, 128), null, &.{ wq, wv }, &.{ rows, rows }, cols, &cal, &pair);
    defer for (&pair) |*p| p.deinit();
    try testing.expectEqual(@as(usize, cols), pair[0].inputScales().len);
    try testing.expectEqualSlices(f32, pair[0].inputScales(), pair[1].inputScales());
    var sq: [2]quant.Weight = undefined;
    try quant.Weight.quantizeGroup(testing.allocator, quant.Method.smoothQuant(0.5), &opts, &.{ wq, wv }, &.{ rows, rows }, cols, &cal, &sq);
    defer for (&sq) |*p| p.deinit();
    try testing.expectEqualSlices(f32, sq[0].inputScales(), sq[1].inputScales());
    try testing.expectEqual(@as(usize, rows), sq[1].scales().len);

    // A calibration without the Hessian serves AWQ, not GPTQ; setHessian gives it one.
    const nh = 256;
    var light = try quant.Calib.initEx(cols, 0, &opts);
    defer light.deinit();
    try light.add(x[0 .. nh * cols]);
    try expectFail(error.InvalidArgument, quant.Weight.quantize(quant.Method.gptq(4, 128), null, wq, rows, cols, &light));
    const h = try testing.allocator.alloc(f64, cols * cols);
    defer testing.allocator.free(h);
    @memset(h, 0);
    for (0..nh) |tok| {
        const xt = x[tok * cols ..][0..cols];
        for (0..cols) |i| {
            for (0..i + 1) |j| h[i * cols + j] += 2 * @as(f64, xt[i]) * @as(f64, xt[j]) / nh;
        }
    }
    try expectFail(error.BufferTooSmall, light.setHessian(h[0 .. h.len - 1], cols, nh));
    try expectFail(error.ShapeMismatch, light.setHessian(h, cols + 1, nh));
    try expectFail(error.InvalidArgument, light.setHessian(h, cols, 0));
    try light.setHessian(h, cols, nh);
    var lg = try quant.Weight.quantize(quant.Method.gptq(4, 128), null, wq, rows, cols, &light);
    defer lg.deinit();
    var full = try quant.Calib.initEx(cols, quant.Calib.hessian, null);
    defer full.deinit();
    try full.add(x[0 .. nh * cols]);
    var fg = try quant.Weight.quantize(quant.Method.gptq(4, 128), null, wq, rows, cols, &full);
    defer fg.deinit();
    try lg.dequantize(deq);
    const e_light = outputError(held_out, test_tokens, wq, deq, rows, cols);
    try fg.dequantize(deq);
    const e_full = outputError(held_out, test_tokens, wq, deq, rows, cols);
    try testing.expect(@abs(e_light - e_full) <= 0.01 * e_full);
    try expectFail(error.InvalidArgument, quant.Calib.initEx(cols, 0x80, null));

    // W8A8: per-token INT8 activations of x / s times the SmoothQuant weight, exact against i32 sums.
    const m = 16;
    var codes: [m * cols]i8 = undefined;
    var token_scales: [m]f32 = undefined;
    try quant.quantizeActivations(held_out[0 .. m * cols], m, cols, sq[0].inputScales(), &codes, &token_scales);
    const y = try testing.allocator.alloc(f32, m * rows);
    defer testing.allocator.free(y);
    const b = sq[0].int8Data();
    const bs = sq[0].scales();
    try quant.int8Gemm(&codes, &token_scales, b, bs, m, rows, cols, y);
    var num: f64 = 0;
    var den: f64 = 0;
    for (0..m) |i| {
        for (0..rows) |j| {
            var acc: i32 = 0;
            var ref: f64 = 0;
            for (0..cols) |l| {
                acc += @as(i32, codes[i * cols + l]) * @as(i32, b[j * cols + l]);
                ref += @as(f64, held_out[i * cols + l]) * wq[j * cols + l];
            }
            try testing.expectEqual((@as(f32, @floatFromInt(acc)) * token_scales[i]) * bs[j], y[i * rows + j]);
            num += (y[i * rows + j] - ref) * (y[i * rows + j] - ref);
            den += ref * ref;
        }
    }
    try testing.expect(num / den < 1e-2);
    try expectFail(error.BufferTooSmall, quant.quantizeActivations(held_out, m, cols, sq[0].inputScales()[0 .. cols - 1], &codes, &token_scales));
    const zeros: [cols]f32 = @splat(0);
    try expectFail(error.InvalidArgument, quant.quantizeActivations(held_out, m, cols, &zeros, &codes, &token_scales));
    try expectFail(error.BufferTooSmall, quant.quantizeActivations(held_out, m, cols, null, codes[0..10], &token_scales));
    try expectFail(error.InvalidArgument, quant.int8Gemm(&codes, &token_scales, b, bs, m, rows, 0, y));
    try expectFail(error.BufferTooSmall, quant.int8Gemm(&codes, &token_scales, b, bs, m, rows, cols, y[0 .. y.len - 1]));
    try expectFail(error.BufferTooSmall, quant.int8Gemm(&codes, token_scales[0 .. m - 1], b, bs, m, rows, cols, y));

    var other = try quant.Calib.init(cols + 1);
    defer other.deinit();
    try expectFail(error.ShapeMismatch, quant.Weight.quantize(quant.Method.awq(4, 128), null, wq, rows, cols, &other));
    var empty = try quant.Calib.init(cols);
    defer empty.deinit();
    try expectFail(error.InvalidArgument, quant.Weight.quantize(quant.Method.gptq(4, 128), null, wq, rows, cols, &empty));
    var none: [1]quant.Weight = undefined;
    try expectFail(error.InvalidArgument, quant.Weight.quantizeGroup(testing.allocator, quant.Method.awq(4, 128), null, &.{}, &.{}, cols, &cal, &none));
    try expectFail(error.BufferTooSmall, quant.Weight.quantizeGroup(testing.allocator, quant.Method.awq(4, 128), null, &.{ wq, &.{} }, &.{ rows, rows }, cols, &cal, &pair));
    {
        // The library's own NULL check, through the raw C API.
        const cm = quant.Method.awq(4, 128).toC();
        const r = [_]usize{rows};
        var out_h: [1]?*c.quant_weight = .{null};
        try expectFail(error.NullPointer, quant.check(c.quant_quantize_group(&cm, null, null, &r, 1, cols, cal.handle, &out_h)));
    }
    try expectFail(error.ShapeMismatch, quant.Weight.quantizeGroup(testing.allocator, quant.Method.awq(4, 128), null, &.{wq}, &.{ rows, rows }, cols, &cal, &pair));
    try expectFail(error.BufferTooSmall, quant.Weight.quantizeGroup(testing.allocator, quant.Method.awq(4, 128), null, &.{ wq, wv }, &.{ rows, rows }, cols, &cal, &none));
}

test "GGML sizes and names" {
    const cases = [_]struct { t: quant.GgmlType, block: usize, size: usize, name: []const u8 }{
        .{ .t = .q4_0, .block = 32, .size = 18, .name = "q4_0" },
        .{ .t = .q4_1, .block = 32, .size = 20, .name = "q4_1" },
        .{ .t = .q5_0, .block = 32, .size = 22, .name = "q5_0" },
        .{ .t = .q5_1, .block = 32, .size = 24, .name = "q5_1" },
        .{ .t = .q8_0, .block = 32, .size = 34, .name = "q8_0" },
        .{ .t = .q2_K, .block = 256, .size = 84, .name = "q2_K" },
        .{ .t = .q3_K, .block = 256, .size = 110, .name = "q3_K" },
        .{ .t = .q4_K, .block = 256, .size = 144, .name = "q4_K" },
        .{ .t = .q5_K, .block = 256, .size = 176, .name = "q5_K" },
        .{ .t = .q6_K, .block = 256, .size = 210, .name = "q6_K" },
        .{ .t = .iq4_nl, .block = 32, .size = 18, .name = "iq4_nl" },
        .{ .t = .mxfp4, .block = 32, .size = 17, .name = "mxfp4" },
        .{ .t = .iq4_xs, .block = 256, .size = 136, .name = "iq4_xs" },
        .{ .t = .nvfp4, .block = 64, .size = 36, .name = "nvfp4" },
        .{ .t = .tq1_0, .block = 256, .size = 54, .name = "tq1_0" },
        .{ .t = .tq2_0, .block = 256, .size = 66, .name = "tq2_0" },
    };
    for (cases) |k| {
        try testing.expectEqual(k.block, try k.t.blockSize());
        try testing.expectEqual(k.size, try k.t.typeSize());
        try testing.expectEqual(4 * k.size, try k.t.rowSize(4 * k.block));
        try testing.expectEqual(12 * k.size, try k.t.matrixSize(3, 4 * k.block));
        try testing.expectEqualStrings(k.name, try k.t.name());
    }
    try testing.expectEqual(@as(usize, 0), try quant.GgmlType.q8_0.rowSize(0));
    const unknown: quant.GgmlType = @fromBackingInt(@intCast(1));
    try expectFail(error.InvalidArgument, unknown.blockSize());
    try expectFail(error.InvalidArgument, unknown.typeSize());
    try expectFail(error.InvalidArgument, unknown.name());
    try expectFail(error.InvalidArgument, quant.GgmlType.q8_0.rowSize(33));
    try expectFail(error.InvalidArgument, quant.GgmlType.q8_0.matrixSize(std.math.maxInt(usize), 32));
}

/// w as f16 or bf16 bits (h) and the f32 values they hold (back).
fn toHalf(dtype: quant.DType, w: []const f32, h: []u16, back: []f32) !void {
    if (dtype == .f16) {
        try quant.f32ToF16(w, h);
        try quant.f16ToF32(h, back);
    } else {
        try quant.f32ToBf16(w, h);
        try quant.bf16ToF32(h, back);
    }
}

test "GGML blocks: Q8_0 round trip of a real row, 16-bit sources, errors" {
    const rows = 4;
    const cols = 384;
    const w = try load("encoder.layer.0.attention.self.query.weight", rows * cols);
    defer testing.allocator.free(w);
    const q8: quant.GgmlType = .q8_0;
    const blocks = try testing.allocator.alloc(u8, try q8.matrixSize(rows, cols));
    defer testing.allocator.free(blocks);
    try testing.expectEqual(@as(usize, rows * 12 * 34), blocks.len);
    try quant.ggmlQuantize(q8, w, rows, cols, blocks);
    var back: [rows * cols]f32 = undefined;
    try quant.ggmlDequantize(q8, blocks, &back);
    // Q8_0: |x - x'| <= d/2 + 127 |d - f16(d)| < 0.6 d per block, d = amax / 127.
    for (0..rows * cols / 32) |b| {
        var amax: f32 = 0;
        for (w[b * 32 ..][0..32]) |v| amax = @max(amax, @abs(v));
        for (w[b * 32 ..][0..32], back[b * 32 ..][0..32]) |x, y| try testing.expect(@abs(x - y) <= 0.6 * amax / 127);
    }
    // The other types round-trip a real row within a loose bound (wider for 2 and 3 bits and for MXFP4).
    for ([_]quant.GgmlType{ .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_nl, .mxfp4, .iq4_xs, .nvfp4 }) |t| {
        var buf: [512]u8 = undefined;
        const n = try t.matrixSize(1, 512);
        try quant.ggmlQuantize(t, w[0..512], 1, 512, buf[0..n]);
        var d: [512]f32 = undefined;
        try quant.ggmlDequantize(t, buf[0..n], &d);
        var num: f64 = 0;
        var den: f64 = 0;
        for (w[0..512], d) |x, y| {
            num += (@as(f64, x) - y) * (@as(f64, x) - y);
            den += @as(f64, x) * x;
        }
        const bound: f64 = switch (t) {
            .q2_K => 0.15,
            .q3_K, .mxfp4 => 0.05,
            else => 0.02,
        };
        try testing.expect(num / den < bound);
    }
    // f16 and bf16 sources give the bytes of the same values as f32.
    for ([_]quant.DType{ .f16, .bf16 }) |dt| {
        var h: [rows * cols]u16 = undefined;
        var wf: [rows * cols]f32 = undefined;
        try toHalf(dt, w, &h, &wf);
        const q4: quant.GgmlType = .q4_0;
        var a: [rows * 12 * 18]u8 = undefined;
        var b: [rows * 12 * 18]u8 = undefined;
        try quant.ggmlQuantize16(q4, dt, &h, rows, cols, &a);
        try quant.ggmlQuantize(q4, &wf, rows, cols, &b);
        try testing.expectEqualSlices(u8, &b, &a);
    }

    // The importance-weighted path: null weights is ggmlQuantize; Q8_0 ignores them; a K-quant with
    // weights writes other bytes; the weights are checked and nothing is written on error.
    {
        var imp: [512]f32 = undefined;
        for (&imp, 0..) |*v, i| v.* = 1.0 + @as(f32, @floatFromInt(i % 5));
        const q4k: quant.GgmlType = .q4_K;
        // 512 values: 2 * 144 bytes as Q4_K, 16 * 34 as Q8_0.
        var plain: [16 * 34]u8 = undefined;
        var weighted: [16 * 34]u8 = undefined;
        try quant.ggmlQuantize(q4k, w[0..512], 1, 512, plain[0..288]);
        try quant.ggmlQuantizeWeighted(q4k, w[0..512], 1, 512, null, weighted[0..288]);
        try testing.expectEqualSlices(u8, plain[0..288], weighted[0..288]);
        try quant.ggmlQuantizeWeighted(q4k, w[0..512], 1, 512, &imp, weighted[0..288]);
        try testing.expect(!std.mem.eql(u8, plain[0..288], weighted[0..288]));
        try quant.ggmlQuantize(q8, w[0..512], 1, 512, plain[0..]);
        try quant.ggmlQuantizeWeighted(q8, w[0..512], 1, 512, &imp, weighted[0..]);
        try testing.expectEqualSlices(u8, &plain, &weighted);
        try expectFail(error.ShapeMismatch, quant.ggmlQuantizeWeighted(q4k, w[0..512], 1, 512, imp[0..511], weighted[0..288]));
        imp[3] = -1.0;
        @memset(&weighted, 0xAB);
        try expectFail(error.InvalidArgument, quant.ggmlQuantizeWeighted(q4k, w[0..512], 1, 512, &imp, weighted[0..288]));
        try testing.expect(std.mem.allEqual(u8, &weighted, 0xAB));
    }

    var nan_w: [64]f32 = w[0..64].*;
    nan_w[40] = std.math.nan(f32);
    var dst: [68]u8 = @splat(0xAB);
    try expectFail(error.NonFinite, quant.ggmlQuantize(q8, &nan_w, 2, 32, &dst));
    try testing.expect(std.mem.allEqual(u8, &dst, 0xAB));
    try expectFail(error.InvalidArgument, quant.ggmlQuantize(q8, w, 1, 33, &dst));
    try expectFail(error.InvalidArgument, quant.ggmlQuantize(@fromBackingInt(@intCast(5)), w, 1, 32, &dst));
    try expectFail(error.BufferTooSmall, quant.ggmlQuantize(q8, w[0..31], 1, 32, &dst));
    try expectFail(error.BufferTooSmall, quant.ggmlQuantize(q8, w, 1, 32, dst[0..33]));
    try testing.expect(std.mem.allEqual(u8, &dst, 0xAB));
    var h: [32]u16 = undefined;
    try quant.f32ToF16(w[0..32], &h);
    try expectFail(error.InvalidArgument, quant.ggmlQuantize16(q8, .f32, &h, 1, 32, &dst));
    try expectFail(error.InvalidArgument, quant.ggmlQuantize16(q8, @fromBackingInt(@intCast(7)), &h, 1, 32, &dst));
    h[5] = 0x7e00; // NaN
    try expectFail(error.NonFinite, quant.ggmlQuantize16(q8, .f16, &h, 1, 32, &dst));
    try expectFail(error.InvalidArgument, quant.ggmlDequantize(q8, blocks, back[0..33]));
    try expectFail(error.BufferTooSmall, quant.ggmlDequantize(q8, blocks[0..33], back[0..32]));
    var inf_block: [34]u8 = blocks[0..34].*;
    inf_block[0] = 0x00;
    inf_block[1] = 0x7c; // d = +inf
    try expectFail(error.NonFinite, quant.ggmlDequantize(q8, &inf_block, back[0..32]));
}

test "f16 and bf16 sources equal f32" {
    const rows = 8;
    const cols = 384;
    const w0 = try load("encoder.layer.0.attention.self.query.weight", rows * cols);
    defer testing.allocator.free(w0);
    var h: [rows * cols]u16 = undefined;
    var w: [rows * cols]f32 = undefined;
    for ([_]quant.DType{ .f16, .bf16 }) |dt| {
        try toHalf(dt, w0, &h, &w);
        var c1: [rows * cols]i8 = undefined;
        var c2: [rows * cols]i8 = undefined;
        var s1: [rows * 6]f32 = undefined;
        var s2: [rows * 6]f32 = undefined;
        try quant.int8Quantize16(dt, &h, rows, cols, 64, &c1, &s1);
        try quant.int8Quantize(&w, rows, cols, 64, &c2, &s2);
        try testing.expectEqualSlices(i8, &c2, &c1);
        try testing.expectEqualSlices(f32, &s2, &s1);
        var p1: [rows * cols / 2]u8 = undefined;
        var p2: [rows * cols / 2]u8 = undefined;
        var g1: [rows * 3]f32 = undefined;
        var g2: [rows * 3]f32 = undefined;
        var z1: [rows * 3]u8 = undefined;
        var z2: [rows * 3]u8 = undefined;
        try quant.int4Quantize16(dt, &h, rows, cols, 128, &p1, &g1, &z1);
        try quant.int4Quantize(&w, rows, cols, 128, &p2, &g2, &z2);
        try testing.expectEqualSlices(u8, &p2, &p1);
        try testing.expectEqualSlices(f32, &g2, &g1);
        try testing.expectEqualSlices(u8, &z2, &z1);
        var f1: [rows * cols]u8 = undefined;
        var f2: [rows * cols]u8 = undefined;
        try quant.fp8E4m3Quantize16(dt, &h, rows, cols, 0, &f1, s1[0..rows]);
        try quant.fp8E4m3Quantize(&w, rows, cols, 0, &f2, s2[0..rows]);
        try testing.expectEqualSlices(u8, &f2, &f1);
        try testing.expectEqualSlices(f32, s2[0..rows], s1[0..rows]);
        var a = try quant.Weight.quantize16(quant.Method.int4(128), null, dt, &h, rows, cols, null);
        defer a.deinit();
        var b = try quant.Weight.quantize(quant.Method.int4(128), null, &w, rows, cols, null);
        defer b.deinit();
        try testing.expectEqualSlices(u8, b.data(), a.data());
        try testing.expectEqualSlices(f32, b.scales(), a.scales());
    }
    try quant.f32ToF16(w0, &h);
    var inf: [cols]u16 = h[0..cols].*;
    inf[7] = 0x7c00;
    var codes: [rows * cols]i8 = undefined;
    var scales: [rows * 3]f32 = undefined;
    var zeros: [rows * 3]u8 = undefined;
    var packed_codes: [rows * cols / 2]u8 = undefined;
    var fp8: [rows * cols]u8 = undefined;
    try expectFail(error.NonFinite, quant.int8Quantize16(.f16, &inf, 1, cols, 0, &codes, &scales));
    try expectFail(error.InvalidArgument, quant.int8Quantize16(@fromBackingInt(@intCast(3)), &h, rows, cols, 0, &codes, &scales));
    try expectFail(error.BufferTooSmall, quant.int8Quantize16(.f16, &h, rows + 1, cols, 0, &codes, &scales));
    try expectFail(error.InvalidArgument, quant.int4Quantize16(.bf16, &h, 0, cols, 128, &packed_codes, &scales, &zeros));
    try expectFail(error.NonFinite, quant.int4Quantize16(.f16, &inf, 1, cols, 128, &packed_codes, &scales, &zeros));
    try expectFail(error.BufferTooSmall, quant.int4Quantize16(.f16, &h, rows, cols, 128, &packed_codes, scales[0 .. rows * 3 - 1], zeros[0 .. rows * 3 - 1]));
    try expectFail(error.ShapeMismatch, quant.int4Quantize16(.f16, &h, rows, cols, 128, &packed_codes, &scales, zeros[0..1]));
    try expectFail(error.InvalidArgument, quant.fp8E4m3Quantize16(.f32, &h, rows, cols, 0, &fp8, &scales));
    try expectFail(error.NonFinite, quant.fp8E4m3Quantize16(.f16, &inf, 1, cols, 0, &fp8, &scales));
    try expectFail(error.InvalidArgument, quant.Weight.quantize16(quant.Method.int8(0), null, @fromBackingInt(@intCast(-1)), &h, rows, cols, null));
    try expectFail(error.InvalidArgument, quant.Weight.quantize16(quant.Method.gptq(4, 128), null, .f16, &h, rows, cols, null));
    try expectFail(error.NonFinite, quant.Weight.quantize16(quant.Method.int8(0), null, .f16, &inf, 1, cols, null));
}

fn f16Value(bits: u16) !f32 {
    var out: [1]f32 = undefined;
    try quant.f16ToF32(&.{bits}, &out);
    return out[0];
}

test "MX and NVFP4: the reference fixtures, 16-bit sources, errors" {
    const dir = build_options.data_dir orelse return error.SkipZigTest;
    const rows = 3;
    const cols = 37;
    var x: [rows * cols]f32 = undefined;
    {
        const path = try std.fmt.allocPrint(testing.allocator, "{s}/mx/input_b.bin", .{dir});
        defer testing.allocator.free(path);
        var raw: [8 + rows * cols * 4]u8 = undefined;
        const got = try std.Io.Dir.cwd().readFile(testing.io, path, &raw);
        try testing.expectEqual(raw.len, got.len);
        @memcpy(std.mem.sliceAsBytes(&x), raw[8..]);
    }
    const names = [_][]const u8{ "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4_e2m1", "mxint8" };
    var buf: [8 * 1024]u8 = undefined;
    var y: [rows * cols]f32 = undefined;
    for (names, 0..) |name, e| {
        const elem: quant.MxElem = @fromBackingInt(@intCast(e));
        const path = try std.fmt.allocPrint(testing.allocator, "{s}/mx/{s}_b.bin", .{ dir, name });
        defer testing.allocator.free(path);
        const want = try std.Io.Dir.cwd().readFile(testing.io, path, &buf);
        const np = std.mem.readInt(u32, want[0..4], .little);
        const ns = std.mem.readInt(u32, want[4..8], .little);
        try testing.expectEqual(@as(usize, np), quant.mxPackedSize(elem, rows, cols));
        try testing.expectEqual(@as(usize, ns), quant.mxScaleCount(rows, cols));
        var codes: [rows * cols]u8 = undefined;
        var scales: [rows * 2]u8 = undefined;
        try quant.mxQuantize(elem, &x, rows, cols, codes[0..np], scales[0..ns]);
        try testing.expectEqualSlices(u8, want[8..][0..np], codes[0..np]);
        try testing.expectEqualSlices(u8, want[8 + np ..][0..ns], scales[0..ns]);
        try quant.mxDequantize(elem, codes[0..np], scales[0..ns], rows, cols, &y);
        try testing.expectEqualSlices(u8, want[8 + np + ns ..][0 .. rows * cols * 4], std.mem.sliceAsBytes(&y));
    }
    {
        const path = try std.fmt.allocPrint(testing.allocator, "{s}/mx/nvfp4_b.bin", .{dir});
        defer testing.allocator.free(path);
        const want = try std.Io.Dir.cwd().readFile(testing.io, path, &buf);
        const np = std.mem.readInt(u32, want[0..4], .little);
        const ns = std.mem.readInt(u32, want[4..8], .little);
        var codes: [rows * cols]u8 = undefined;
        var scales: [rows * 3]u8 = undefined;
        const g = try quant.nvfp4Quantize(&x, rows, cols, codes[0..np], scales[0..ns]);
        try testing.expectEqualSlices(u8, want[8..12], std.mem.asBytes(&g));
        try testing.expectEqualSlices(u8, want[12..][0..np], codes[0..np]);
        try testing.expectEqualSlices(u8, want[12 + np ..][0..ns], scales[0..ns]);
        try quant.nvfp4Dequantize(codes[0..np], scales[0..ns], g, rows, cols, &y);
        try testing.expectEqualSlices(u8, want[12 + np + ns ..][0 .. rows * cols * 4], std.mem.sliceAsBytes(&y));
        var amax: f32 = 0;
        for (x) |v| amax = @max(amax, @abs(v));
        try testing.expectEqual(g, try quant.nvfp4GlobalScale(amax));
        try testing.expectError(error.InvalidArgument, quant.nvfp4GlobalScale(-1));
        // Under a given global scale (a fused group's larger member): compressed-tensors' bytes.
        const path3 = try std.fmt.allocPrint(testing.allocator, "{s}/mx/nvfp4_given3_b.bin", .{dir});
        defer testing.allocator.free(path3);
        var buf3: [4096]u8 = undefined;
        const given = try std.Io.Dir.cwd().readFile(testing.io, path3, &buf3);
        const g3: f32 = @bitCast(std.mem.readInt(u32, given[8..12], .little));
        try quant.nvfp4QuantizeWithGlobal(&x, rows, cols, g3, codes[0..np], scales[0..ns]);
        try testing.expectEqualSlices(u8, given[12..][0..np], codes[0..np]);
        try testing.expectEqualSlices(u8, given[12 + np ..][0..ns], scales[0..ns]);
        try testing.expectError(error.InvalidArgument, quant.nvfp4QuantizeWithGlobal(&x, rows, cols, 0, codes[0..np], scales[0..ns]));
    }
    // 16-bit sources give the bytes of their values as f32; errors.
    var h: [rows * cols]u16 = undefined;
    var xh: [rows * cols]f32 = undefined;
    try quant.f32ToBf16(&x, &h);
    try quant.bf16ToF32(&h, &xh);
    var c1: [rows * cols]u8 = undefined;
    var c2: [rows * cols]u8 = undefined;
    var s1: [rows * 3]u8 = undefined;
    var s2: [rows * 3]u8 = undefined;
    try quant.mxQuantize16(.fp6_e2m3, .bf16, &h, rows, cols, c1[0..90], s1[0..6]);
    try quant.mxQuantize(.fp6_e2m3, &xh, rows, cols, c2[0..90], s2[0..6]);
    try testing.expectEqualSlices(u8, c2[0..90], c1[0..90]);
    try testing.expectEqualSlices(u8, s2[0..6], s1[0..6]);
    const g1 = try quant.nvfp4Quantize16(.bf16, &h, rows, cols, c1[0..57], s1[0..9]);
    const g2 = try quant.nvfp4Quantize(&xh, rows, cols, c2[0..57], s2[0..9]);
    try testing.expectEqual(g2, g1);
    try testing.expectEqualSlices(u8, c2[0..57], c1[0..57]);
    try testing.expectEqual(@as(usize, 0), quant.mxPackedSize(@fromBackingInt(@intCast(6)), rows, cols));
    try expectFail(error.InvalidArgument, quant.mxQuantize(@fromBackingInt(@intCast(9)), &x, rows, cols, &c1, &s1));
    try expectFail(error.BufferTooSmall, quant.mxQuantize(.int8, &x, rows, cols, c1[0..110], &s1));
    try expectFail(error.InvalidArgument, quant.mxQuantize16(.int8, .f32, &h, rows, cols, &c1, &s1));
    var bad = x;
    bad[4] = std.math.inf(f32);
    try expectFail(error.NonFinite, quant.mxQuantize(.fp4_e2m1, &bad, rows, cols, c1[0..57], s1[0..6]));
    try expectFail(error.NonFinite, quant.nvfp4Quantize(&bad, rows, cols, c1[0..57], s1[0..9]));
    try expectFail(error.BufferTooSmall, quant.mxDequantize(.fp4_e2m1, c1[0..56], s1[0..6], rows, cols, &y));
    try expectFail(error.InvalidArgument, quant.nvfp4Dequantize(c1[0..57], s1[0..9], 0, rows, cols, &y));
}

test "GPTQ and AWQ checkpoint packing of real weights" {
    const rows = 384;
    const cols = 384;
    const tokens = 256;
    const gs = 128;
    const groups = cols / gs;
    const a_l = testing.allocator;
    const w = try load("encoder.layer.5.attention.self.query.weight", rows * cols);
    defer a_l.free(w);
    const x = try load("x_calib.layer5.attn_in", tokens * cols);
    defer a_l.free(x);
    var cal = try quant.Calib.init(cols);
    defer cal.deinit();
    try cal.add(x);
    var opts = try quant.Options.init();
    defer opts.deinit();
    try opts.setActOrder(true);
    try opts.setSampleTokens(128);
    var g = try quant.Weight.quantize(quant.Method.gptq(4, gs), &opts, w, rows, cols, &cal);
    defer g.deinit();

    const s = try g.gptqSizes();
    try testing.expectEqual(quant.GptqSizes{ .qweight = cols * 4 / 32 * rows, .qzeros = groups * rows * 4 / 32, .scales = groups * rows, .g_idx = cols }, s);
    const qw = try a_l.alloc(i32, s.qweight);
    defer a_l.free(qw);
    const qw1 = try a_l.alloc(i32, s.qweight);
    defer a_l.free(qw1);
    var qz: [groups * rows * 4 / 32]i32 = undefined;
    var qz1: [groups * rows * 4 / 32]i32 = undefined;
    var sc: [groups * rows]u16 = undefined;
    var gi: [cols]i32 = undefined;
    try g.packGptq(2, qw, &qz, &sc, &gi);
    try g.packGptq(1, qw1, &qz1, &sc, &gi);
    try testing.expectEqualSlices(i32, qw, qw1);
    const deq = try a_l.alloc(f32, rows * cols);
    defer a_l.free(deq);
    try g.dequantize(deq);
    for (0..rows) |r| {
        for (0..cols) |j| {
            const grp: usize = @intCast(gi[j]);
            const q = (@as(u32, @bitCast(qw[(j / 8) * rows + r])) >> @intCast(4 * (j % 8))) & 15;
            const z = (@as(u32, @bitCast(qz[grp * (rows / 8) + r / 8])) >> @intCast(4 * (r % 8))) & 15;
            const z1 = (@as(u32, @bitCast(qz1[grp * (rows / 8) + r / 8])) >> @intCast(4 * (r % 8))) & 15;
            if (z > 0) try testing.expectEqual(z - 1, z1);
            const scale = try f16Value(sc[grp * rows + r]);
            const v = scale * (@as(f32, @floatFromInt(q)) - @as(f32, @floatFromInt(z)));
            try testing.expect(@abs(v - deq[r * cols + j]) <= 16 * @abs(scale) / 1024 + 1e-7);
        }
    }
    try expectFail(error.InvalidArgument, g.packGptq(3, qw, &qz, &sc, &gi));
    try expectFail(error.BufferTooSmall, g.packGptq(2, qw[0 .. qw.len - 1], &qz, &sc, &gi));
    var int8w = try quant.Weight.quantize(quant.Method.int8(0), null, w, rows, cols, null);
    defer int8w.deinit();
    try expectFail(error.InvalidArgument, int8w.gptqSizes());
    try expectFail(error.InvalidArgument, int8w.packGptq(2, qw, &qz, &sc, &gi));
    var g3 = try quant.Weight.quantize(quant.Method.gptq(3, gs), null, w, rows, cols, &cal);
    defer g3.deinit();
    const s3 = try g3.gptqSizes();
    try testing.expectEqual(@as(usize, cols * 3 / 32 * rows), s3.qweight);
    try testing.expectEqual(@as(usize, groups * rows * 3 / 32), s3.qzeros);
    try g3.packGptq(2, qw[0..s3.qweight], qz[0..s3.qzeros], &sc, &gi);

    // AWQ GEMM: the packed tensors hold W diag(s), the dequantized weight times the input scales.
    var a = try quant.Weight.quantize(quant.Method.awq(4, gs), &opts, w, rows, cols, &cal);
    defer a.deinit();
    const as = try a.awqSizes();
    try testing.expectEqual(quant.AwqSizes{ .qweight = cols * rows / 8, .qzeros = groups * rows / 8, .scales = groups * rows }, as);
    const aq = qw[0..as.qweight];
    var az: [groups * rows / 8]i32 = undefined;
    try a.packAwq(aq, &az, &sc);
    try a.dequantize(deq);
    const in_s = a.inputScales();
    try testing.expectEqual(@as(usize, cols), in_s.len);
    const inv = [8]u5{ 0, 4, 1, 5, 2, 6, 3, 7 }; // nibble of output 8c + k (order 0,2,4,6,1,3,5,7)
    for (0..rows) |r| {
        for (0..cols) |j| {
            const grp = j / gs;
            const shift: u5 = 4 * inv[r % 8];
            const q = (@as(u32, @bitCast(aq[j * (rows / 8) + r / 8])) >> shift) & 15;
            const z = (@as(u32, @bitCast(az[grp * (rows / 8) + r / 8])) >> shift) & 15;
            const scale = try f16Value(sc[grp * rows + r]);
            const v = scale * (@as(f32, @floatFromInt(q)) - @as(f32, @floatFromInt(z)));
            const want = deq[r * cols + j] * in_s[j];
            try testing.expect(@abs(v - want) <= 16 * @abs(scale) / 1024 + 1e-6 * @abs(want) + 1e-7);
        }
    }
    try expectFail(error.InvalidArgument, g.awqSizes()); // act-order GPTQ
    try expectFail(error.InvalidArgument, int8w.packAwq(aq, &az, &sc));
    try expectFail(error.Unsupported, g3.awqSizes());
    try expectFail(error.BufferTooSmall, a.packAwq(aq, az[0 .. az.len - 1], &sc));
}

test "SIMD level and threads: same results, failed settings change nothing" {
    const start = quant.simdLevel();
    const name = quant.simdLevelName(start) orelse return error.NoName;
    std.debug.print("  SIMD level {s}, threads {d}\n", .{ name, quant.threads() });
    var known = false;
    for ([_][]const u8{ "scalar", "avx2", "avx512", "neon" }) |n| known = known or std.mem.eql(u8, n, name);
    try testing.expect(known);
    try testing.expectEqualStrings("scalar", quant.simdLevelName(c.QUANT_SIMD_SCALAR).?);
    try testing.expectEqualStrings("avx2", quant.simdLevelName(c.QUANT_SIMD_AVX2).?);
    try testing.expectEqualStrings("avx512", quant.simdLevelName(c.QUANT_SIMD_AVX512).?);
    try testing.expectEqualStrings("neon", quant.simdLevelName(c.QUANT_SIMD_NEON).?);
    try testing.expectEqual(@as(?[:0]const u8, null), quant.simdLevelName(9));
    try testing.expectEqual(@as(?[:0]const u8, null), quant.simdLevelName(c.QUANT_SIMD_AUTO));

    const rows = 512; // 196608 values: enough for two threads
    const cols = 384;
    const w = try load("encoder.layer.0.intermediate.dense.weight", rows * cols);
    defer testing.allocator.free(w);
    var c0: [rows * cols / 2]u8 = undefined;
    var c1: [rows * cols / 2]u8 = undefined;
    var s0: [rows * 3]f32 = undefined;
    var s1: [rows * 3]f32 = undefined;
    var z0: [rows * 3]u8 = undefined;
    var z1: [rows * 3]u8 = undefined;
    try quant.int4Quantize(w, rows, cols, 128, &c0, &s0, &z0);
    try quant.setSimdLevel(c.QUANT_SIMD_SCALAR);
    defer quant.setSimdLevel(c.QUANT_SIMD_AUTO) catch {};
    try testing.expectEqual(@as(i32, c.QUANT_SIMD_SCALAR), quant.simdLevel());
    try quant.int4Quantize(w, rows, cols, 128, &c1, &s1, &z1);
    try testing.expectEqualSlices(u8, &c0, &c1);
    try testing.expectEqualSlices(f32, &s0, &s1);
    try testing.expectEqualSlices(u8, &z0, &z1);
    try expectFail(error.InvalidArgument, quant.setSimdLevel(7));
    switch (@import("builtin").cpu.arch) {
        .x86_64 => try expectFail(error.Unsupported, quant.setSimdLevel(c.QUANT_SIMD_NEON)),
        .aarch64 => try expectFail(error.Unsupported, quant.setSimdLevel(c.QUANT_SIMD_AVX2)),
        else => {},
    }
    try testing.expectEqual(@as(i32, c.QUANT_SIMD_SCALAR), quant.simdLevel());
    try quant.setSimdLevel(c.QUANT_SIMD_AUTO);
    try testing.expectEqual(start, quant.simdLevel());

    const before = quant.threads();
    defer quant.setThreads(before) catch {};
    try quant.setThreads(2);
    try testing.expectEqual(@as(usize, 2), quant.threads());
    @memset(&c1, 0);
    try quant.int4Quantize(w, rows, cols, 128, &c1, &s1, &z1);
    try testing.expectEqualSlices(u8, &c0, &c1);
    try testing.expectEqualSlices(f32, &s0, &s1);
    try expectFail(error.InvalidArgument, quant.setThreads(quant.max_threads + 1));
    try testing.expectEqual(@as(usize, 2), quant.threads());
}
