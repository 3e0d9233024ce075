#!/usr/bin/env python3
"""Generates the reference fixtures of the OCP MX formats and of NVFP4 (tests/data/mx).

    scripts/gen-mx-fixtures.sh          # runs both parts, each in its pinned virtualenv
    cargo test --release --test mx      # checks every byte and decoded value against them

Part `mx` (numpy + ml_dtypes): the OCP Microscaling v1.0 rule written out with ml_dtypes' element
casts. Per block of 32 values of a row: shared = clamp(floor(log2(amax)) - emax, -127, 127) with the
exact floor (np.frexp, not a float log2), an all-zero block getting -127 (E8M0 byte 0, as torchao's
to_mx, which reads the exponent bits of the f32 amax); elements = cast(clip(x / 2^shared, +-max))
with ml_dtypes float8_e4m3fn, float8_e5m2, float6_e2m3fn, float6_e3m2fn, float4_e2m1fn (round to
nearest even); MXINT8 = clip(rint(x / 2^shared * 64), -127, 127). Decoded: element * 2^shared in f32.

Part `nvfp4` (torch + compressed-tensors, the real package): generate_gparam for the global scale,
calculate_qparams (FP8 E4M3 block scales, zeros replaced by 0.125), quantize and pack_fp4_to_uint8
for the codes, dequantize for the decoded values. A row shorter than a multiple of 16 is padded with
zeros for the package (zeros change no block's amax), and the padding is cut off again. This part also
has the package's own unpackers read the MXFP4 and MXFP6 (E2M3) bytes of part `mx`, and asserts that
they give the same values (the packings are compressed-tensors').

File layout (little-endian): input_<name>.bin = u32 rows, u32 cols, f32[rows*cols];
<format>_<name>.bin = u32 codes_len, u32 scales_len, codes, scales, f32[rows*cols] decoded; NVFP4
adds the f32 global scale after the header (see tests/data/mx/README.md, written by this script).
"""
import os
import struct
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "mx")
SEED = 20261206
BLOCK = 32


def inputs():
    """name -> f32 matrix: wide dynamic range, zeros, element-subnormal values, ties, saturation."""
    rng = np.random.default_rng(SEED)
    out = {}
    rows, cols = 16, 80
    m = np.zeros((rows, cols), dtype=np.float32)
    m[0] = rng.standard_normal(cols) * 10.0 ** rng.uniform(-4, 4, cols)  # wide range within blocks
    m[1] = 0.0  # all-zero blocks
    m[1, 40] = -0.0
    # Row 2: one large value per block, the rest far below it (element subnormals and underflow).
    m[2] = rng.standard_normal(cols) * 2.0 ** rng.integers(-30, -4, cols)
    m[2, ::32] = 1.0
    # Row 3: multiples of 2^-12 under an amax of 1: exact ties for every element grid.
    m[3] = rng.integers(-4096, 4097, cols) / 4096.0
    m[3, 0] = 1.0
    m[3, 32] = -1.0
    m[3, 64] = 1.0
    # Row 4: amax just below a power of two (the element saturates at its max normal).
    m[4] = rng.uniform(-1, 1, cols) * 0.999
    m[4, ::16] = np.float32(np.nextafter(np.float32(2.0), np.float32(0)))
    m[4, 8::16] = -np.float32(1.9999)
    # Row 5: f32 subnormals in one block, huge values in another.
    m[5, :32] = rng.standard_normal(32) * 2.0**-140
    m[5, 32:64] = rng.standard_normal(32) * 1e37
    m[5, 64:] = rng.standard_normal(16) * 2.0**-126
    # Row 6: signed zeros mixed with values.
    m[6] = rng.standard_normal(cols)
    m[6, ::3] = -0.0
    for r in range(7, rows):
        m[r] = rng.standard_normal(cols) * 10.0 ** rng.uniform(-3, 3)
    out["a"] = m.astype(np.float32)
    # A short odd matrix: partial blocks, odd and non-multiple-of-4 rows.
    s = (rng.standard_normal((3, 37)) * 10.0 ** rng.uniform(-2, 2, (3, 1))).astype(np.float32)
    s[1, 5] = 0.0
    out["b"] = s
    # `a` without its huge block: NVFP4's per-tensor scale then leaves most blocks representable.
    c = m.copy()
    c[5, 32:64] *= np.float32(1e-37)
    out["c"] = c
    return out


def write_input(name, x):
    with open(os.path.join(OUT, f"input_{name}.bin"), "wb") as f:
        f.write(struct.pack("<II", *x.shape))
        f.write(x.astype("<f4").tobytes())


def read_input(name):
    with open(os.path.join(OUT, f"input_{name}.bin"), "rb") as f:
        rows, cols = struct.unpack("<II", f.read(8))
        return np.frombuffer(f.read(), dtype="<f4").reshape(rows, cols).copy()


def write_format(path, codes, scales, decoded, global_scale=None):
    codes, scales = np.asarray(codes, np.uint8), np.asarray(scales, np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack("<II", codes.size, scales.size))
        if global_scale is not None:
            f.write(struct.pack("<f", global_scale))
        f.write(codes.tobytes())
        f.write(scales.tobytes())
        f.write(np.asarray(decoded, dtype="<f4").tobytes())


def pack4(codes):
    """Two 4-bit codes a byte, the even index in the low nibble; a row padded to even length."""
    rows, cols = codes.shape
    c = np.zeros((rows, cols + cols % 2), np.uint8)
    c[:, :cols] = codes
    return (c[:, 0::2] | (c[:, 1::2] << 4)).astype(np.uint8)


def pack6(codes):
    """Four 6-bit codes in three bytes, little-endian (compressed-tensors' pack_fp6_to_uint8); a row
    padded with zero codes to a multiple of 4."""
    rows, cols = codes.shape
    c = np.zeros((rows, -(-cols // 4) * 4), np.uint32)
    c[:, :cols] = codes
    c = c.reshape(rows, -1, 4)
    word = c[..., 0] | c[..., 1] << 6 | c[..., 2] << 12 | c[..., 3] << 18
    b = np.stack([word & 0xFF, (word >> 8) & 0xFF, (word >> 16) & 0xFF], axis=-1)
    return b.reshape(rows, -1).astype(np.uint8)


def mx_part():
    import ml_dtypes

    # name -> (ml_dtypes type or None for INT8, emax, packing bits)
    formats = {
        "mxfp8_e4m3": (ml_dtypes.float8_e4m3fn, 8, 8),
        "mxfp8_e5m2": (ml_dtypes.float8_e5m2, 15, 8),
        "mxfp6_e2m3": (ml_dtypes.float6_e2m3fn, 2, 6),
        "mxfp6_e3m2": (ml_dtypes.float6_e3m2fn, 4, 6),
        "mxfp4_e2m1": (ml_dtypes.float4_e2m1fn, 2, 4),
        "mxint8": (None, 0, 8),
    }
    for name, x in inputs().items():
        write_input(name, x)
        rows, cols = x.shape
        for fmt, (typ, emax, bits) in formats.items():
            codes = np.zeros((rows, cols), np.uint8)
            decoded = np.zeros((rows, cols), np.float32)
            scales = []
            for r in range(rows):
                for b0 in range(0, cols, BLOCK):
                    blk = x[r, b0 : b0 + BLOCK]
                    amax = np.max(np.abs(blk))
                    if amax == 0:
                        shared = -127
                    else:
                        floor_log2 = int(np.frexp(np.float64(amax))[1]) - 1  # exact
                        shared = min(max(floor_log2 - emax, -127), 127)
                    scales.append(shared + 127)
                    scale = np.float32(2.0**shared)  # exact, 2^-127 is an f32 subnormal
                    y = (blk / scale).astype(np.float32)
                    if typ is None:
                        q = np.clip(np.rint(y * np.float32(64)), -127, 127).astype(np.int8)
                        codes[r, b0 : b0 + BLOCK] = q.view(np.uint8)
                        val = q.astype(np.float32) * np.float32(2.0 ** (shared - 6))
                    else:
                        mx = np.float32(float(ml_dtypes.finfo(typ).max))
                        e = np.clip(y, -mx, mx).astype(typ)
                        codes[r, b0 : b0 + BLOCK] = e.view(np.uint8)
                        val = e.astype(np.float32) * scale
                    decoded[r, b0 : b0 + BLOCK] = val
            packed = {8: codes, 6: pack6(codes) if bits == 6 else None, 4: pack4(codes)}[bits]
            write_format(os.path.join(OUT, f"{fmt}_{name}.bin"), packed, scales, decoded)
            print(f"{fmt}_{name}: {packed.size} code bytes, {len(scales)} scales")


def nvfp4_part():
    import torch
    from compressed_tensors.compressors.nvfp4.helpers import pack_fp4_to_uint8
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import dequantize, quantize
    from compressed_tensors.quantization.quant_scheme import NVFP4
    from compressed_tensors.quantization.utils.helpers import calculate_qparams, generate_gparam

    args: QuantizationArgs = NVFP4["weights"]
    g = args.group_size
    # (fixture, input, factor): the global scale from the tensor's own range times `factor`; 3 is a
    # fused group whose largest member peaks at 3x this one, 1/8 makes the largest blocks saturate.
    for out_name, name, factor in (
        ("a", "a", None),
        ("b", "b", None),
        ("c", "c", None),
        ("given3_b", "b", 3.0),
        ("given8th_c", "c", 0.125),
    ):
        x = read_input(name)
        rows, cols = x.shape
        padded = -(-cols // g) * g
        xp = np.zeros((rows, padded), np.float32)
        xp[:, :cols] = x
        t = torch.from_numpy(xp)
        if factor is None:
            gs = generate_gparam(t.min(), t.max())
        else:
            gs = generate_gparam(t.min() * factor, t.max() * factor)
        blocks = t.reshape(rows, padded // g, g)
        scale, _ = calculate_qparams(blocks.amin(-1), blocks.amax(-1), args, global_scale=gs)
        q = quantize(x=t, scale=scale, zero_point=None, args=args, global_scale=gs)
        dec = dequantize(x_q=q, scale=scale, zero_point=None, args=args, global_scale=gs)
        packed = pack_fp4_to_uint8(q).numpy()[:, : (cols + 1) // 2].copy()
        if cols % 2:  # the padding's zero code in the high nibble of each row's last byte
            packed[:, -1] &= 0x0F
        codes = packed
        scales = scale.to(torch.float8_e4m3fn).view(torch.uint8).numpy()
        decoded = dec.to(torch.float32).numpy()[:, :cols]
        path = os.path.join(OUT, f"nvfp4_{out_name}.bin")
        write_format(path, codes, scales, decoded, global_scale=float(gs.item()))
        print(f"nvfp4_{out_name}: global scale {gs.item()!r}, {codes.size} code bytes")
    check_mx_packing_with_compressed_tensors()


def read_format(path):
    with open(path, "rb") as f:
        nc, ns = struct.unpack("<II", f.read(8))
        codes = np.frombuffer(f.read(nc), np.uint8)
        scales = np.frombuffer(f.read(ns), np.uint8)
        decoded = np.frombuffer(f.read(), "<f4")
    return codes, scales, decoded


def check_mx_packing_with_compressed_tensors():
    """The MXFP4 and MXFP6 (E2M3) bytes written above, unpacked by compressed-tensors' own
    unpack_fp4_from_uint8 / unpack_fp6_from_uint8 and scaled by 2^(scale - 127), give the decoded
    values of the fixtures: the packings are the package's (rows whose length it accepts: a, c)."""
    import torch
    from compressed_tensors.compressors.mxfp6.helpers import unpack_fp6_from_uint8
    from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8

    for name in ("a", "c"):
        rows, cols = read_input(name).shape
        for fmt, unpack in (("mxfp4_e2m1", unpack_fp4_from_uint8), ("mxfp6_e2m3", unpack_fp6_from_uint8)):
            codes, scales, decoded = read_format(os.path.join(OUT, f"{fmt}_{name}.bin"))
            packed = torch.from_numpy(codes.reshape(rows, -1).copy())
            values = unpack(packed, rows, cols, dtype=torch.float32).numpy()
            scale = (2.0 ** (scales.astype(np.int32) - 127)).astype(np.float32).reshape(rows, -1)
            got = values * np.repeat(scale, BLOCK, axis=1)[:, :cols]
            want = decoded.reshape(rows, cols)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), f"{fmt}_{name}"
            print(f"{fmt}_{name}: compressed-tensors unpacks the same values")


README = """# MX and NVFP4 reference fixtures

Written by `scripts/gen-mx-fixtures.sh` (scripts/gen_mx_fixtures.py); checked by `tests/mx.rs`.
Little-endian throughout.

- `input_<m>.bin`: u32 rows, u32 cols, then rows*cols f32 (row-major). `a` is 16 x 80 (rows of wide
  dynamic range, zeros, element subnormals, exact ties, saturating maxima, f32 subnormals and huge
  values, signed zeros), `b` is 3 x 37 (partial blocks, odd rows), `c` is `a` with its huge block scaled down
  (for NVFP4, whose one per-tensor scale follows the largest value).
- `<format>_<m>.bin` for mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2, mxfp4_e2m1, mxint8:
  u32 codes_len, u32 scales_len, codes (packed rows), E8M0 scale bytes (one per 32-value block,
  row-major), rows*cols f32 decoded values. Reference: numpy + ml_dtypes element casts under the OCP
  floor scale rule (see the script's docstring).
- `nvfp4_<m>.bin`: u32 codes_len, u32 scales_len, f32 global scale, codes (two E2M1 a byte, even
  column in the low nibble), FP8 E4M3 block scales (one per 16-value block), rows*cols f32 decoded.
  Reference: compressed-tensors 0.20.1 (torch 2.15.0 on the CPU).
- `nvfp4_given3_b.bin`, `nvfp4_given8th_c.bin`: the same layout for inputs `b` and `c` quantized under
  a global scale given from outside (`generate_gparam` of 3x and 1/8 of the tensor's range: a fused
  group's larger member; blocks that saturate).
"""


def main():
    part = sys.argv[1] if len(sys.argv) > 1 else ""
    os.makedirs(OUT, exist_ok=True)
    if part == "mx":
        mx_part()
        with open(os.path.join(OUT, "README.md"), "w") as f:
            f.write(README)
    elif part == "nvfp4":
        nvfp4_part()
    else:
        sys.exit("usage: gen_mx_fixtures.py mx|nvfp4 (run by scripts/gen-mx-fixtures.sh)")


if __name__ == "__main__":
    main()
