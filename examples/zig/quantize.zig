//! Quantizes a matrix to INT4 (groups of 32) with the Zig binding, and shows an error with its detail.
//!     cd bindings/zig && zig build example -Dquant-prefix=$PREFIX
const std = @import("std");
const quant = @import("quant");

pub fn main() !void {
    const rows = 8;
    const cols = 64;
    var w: [rows * cols]f32 = undefined;
    for (&w, 0..) |*v, i| v.* = @sin(0.1 * @as(f32, @floatFromInt(i)));

    var q = try quant.Weight.quantize(quant.Method.int4(32), null, &w, rows, cols, null);
    defer q.deinit();
    var back: [rows * cols]f32 = undefined;
    try q.dequantize(&back);
    var max_err: f32 = 0;
    for (w, back) |a, b| max_err = @max(max_err, @abs(a - b));
    var name: [64]u8 = undefined;
    std.debug.print("{s}: {d} code bytes, {d} scales, max error {d:.4}\n", .{
        quant.Method.int4(32).name(&name), q.data().len, q.scales().len, max_err,
    });

    // GPTQ needs a calibration: an error union, and the library's detail for this thread.
    if (quant.Weight.quantize(quant.Method.gptq(4, 128), null, &w, rows, cols, null)) |unexpected| {
        var u = unexpected;
        u.deinit();
        return error.ExpectedAnError;
    } else |err| {
        var detail: [256]u8 = undefined;
        std.debug.print("GPTQ without a calibration is refused, as expected: {s} (status {d}): {s}\n", .{ @errorName(err), quant.statusOf(err), quant.lastError(&detail) });
    }
    if (max_err > 0.1) return error.TooLarge;
}
