//! Zig binding of quant. Builds against an installed quant (see the top-level CMakeLists.txt):
//!
//!     zig build test -Dquant-prefix=/usr/local [-Ddata-dir=../../tests/data]
//!
//! Other packages use the module "quant" (its C API is the module "quant_c"):
//!
//!     const quant = b.dependency("quant", .{ .@"quant-prefix" = prefix }).module("quant");
//!
//! Written for Zig 0.17.1 (pip install ziglang==0.17.1).
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const prefix = b.option([]const u8, "quant-prefix", "Prefix where quant is installed (include/quant.h, lib/libquant.*)") orelse "/usr/local";
    const data_dir = b.option([]const u8, "data-dir", "The repository's tests/data, for the real-layer tests");
    const link_static = b.option(bool, "static", "Link libquant.a instead of the shared library") orelse false;
    const include_dir = b.pathJoin(&.{ prefix, "include" });
    const lib_dir = b.pathJoin(&.{ prefix, "lib" });

    // quant.h translated to Zig: the raw C API.
    const translate = b.addTranslateC(.{
        .root_source_file = b.path("src/c.h"),
        .target = target,
        .optimize = optimize,
    });
    translate.addIncludePath(.{ .cwd_relative = include_dir });
    const c_mod = translate.addModule("quant_c");

    const mod = b.addModule("quant", .{
        .root_source_file = b.path("src/quant.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .imports = &.{.{ .name = "c", .module = c_mod }},
    });
    mod.addLibraryPath(.{ .cwd_relative = lib_dir });
    if (link_static) {
        mod.linkSystemLibrary("quant", .{ .preferred_link_mode = .static, .search_strategy = .no_fallback });
        // rustc's native-static-libs on Linux (see quant.pc's Libs.private).
        for ([_][]const u8{ "gcc_s", "util", "rt", "pthread", "m", "dl" }) |lib| mod.linkSystemLibrary(lib, .{});
    } else {
        mod.linkSystemLibrary("quant", .{});
        mod.addRPath(.{ .cwd_relative = lib_dir });
    }

    const options = b.addOptions();
    options.addOption(?[]const u8, "data_dir", data_dir);

    const tests = b.addTest(.{ .root_module = b.createModule(.{
        .root_source_file = b.path("src/tests.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .imports = &.{
            .{ .name = "quant", .module = mod },
            .{ .name = "build_options", .module = options.createModule() },
        },
    }) });
    const run_tests = b.addRunArtifact(tests);
    const test_step = b.step("test", "Run the binding's tests");
    test_step.dependOn(&run_tests.step);

    // The README's Zig example.
    const example = b.addExecutable(.{ .name = "quantize", .root_module = b.createModule(.{
        .root_source_file = b.path("../../examples/zig/quantize.zig"),
        .target = target,
        .optimize = optimize,
        .imports = &.{.{ .name = "quant", .module = mod }},
    }) });
    const run_example = b.addRunArtifact(example);
    const example_step = b.step("example", "Run examples/zig/quantize.zig");
    example_step.dependOn(&run_example.step);
}
