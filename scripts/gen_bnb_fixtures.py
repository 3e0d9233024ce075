#!/usr/bin/env python3
"""Regenerates the bitsandbytes NF4/FP4 fixtures in tests/data/bnb4/ (read by tests/bnb4.rs).

    $(scripts/venv-torch.sh) scripts/gen_bnb_fixtures.py

The reference is bitsandbytes itself (version pinned by scripts/venv-torch.sh, recorded in
manifest.json) on the CPU: `bitsandbytes.functional.quantize_4bit(x, blocksize=..., quant_type=...,
compress_statistics=False)` and `dequantize_4bit` of its result; for double quantization the same
with `compress_statistics=True`, and bitsandbytes' 8-bit dynamic blockwise step on its own
(`quantize_blockwise` / `dequantize_blockwise`, blocks of 256, on the CPU native kernel).

What it writes (raw little-endian, shapes in manifest.json), per case and quant type:
- <case>.in.f32 (or .in.bf16 / .in.f16: raw bits; the MiniLM case reads tests/data/minilm instead),
- <case>.<nf4|fp4>.codes.u8 (bitsandbytes' packed bytes), .absmax.f32, .deq.f32 (dequantize_4bit
  to float32).
- Double quantization, per case and quant type: <case>.<t>.nested.qabsmax.u8 (the 8-bit codes of
  absmax - offset), .nested.absmax2.f32 (their absmax per 256), .nested.deq.f32 (dequantize_4bit of the
  nested state, float32), .nested.offset.f32 (the offset, one f32); the manifest's "offset_<t>" is the f32 bits of the offset bitsandbytes used
  (torch's f32 `mean`, whose summation order is the machine's) and "mean_<t>" the bits of the correctly
  rounded mean of the absmax values (exact rational mean rounded to f32).
- dynamic_map.f32: `create_dynamic_map(signed=True)`, the 256-entry 8-bit code book.
- dynamic.in.f32 / .codes.u8 / .absmax.f32 / .deq.f32: `quantize_blockwise(x, blocksize=256)` and
  `dequantize_blockwise` of values at every point of the native kernel's 65536-entry index grid, the
  code book's midpoints and their f32 neighbours, random values, a zero block and a partial last block.
"""
import importlib.metadata
import json
import pathlib
from fractions import Fraction

import numpy as np
import torch
import bitsandbytes.functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "bnb4"
MINILM = ROOT / "tests" / "data" / "minilm"


def wide(g, n):
    """Normal values times a log-uniform magnitude (1e-6 .. 1e3) per value."""
    mag = 10.0 ** (torch.rand(n, generator=g, dtype=torch.float64) * 9 - 6)
    return (torch.randn(n, generator=g, dtype=torch.float64) * mag).float()


def ties(ty):
    """Every midpoint of the sorted code book, and its f32 neighbours, in blocks of 64 whose absmax is
    1 (so the full blocks scale by exactly 1; the last block is partial and divides)."""
    code = F.get_4bit_type(ty, device="cpu")
    s = torch.sort(code).values
    mids = ((s[:-1] + s[1:]) / 2).tolist()
    vals = []
    for m in mids:
        m = np.float32(m)
        vals += [m, np.nextafter(m, np.float32(-2)), np.nextafter(m, np.float32(2)), -m]
    blocks = []
    for i in range(0, len(vals), 63):
        blocks += [1.0] + vals[i:i + 63]
    blocks += [0.0, -0.0, 1e-30, -1e-30, 0.5]
    return torch.tensor(blocks, dtype=torch.float32)


def f32_bits(v):
    return int(np.array([v], dtype="<f4").view("<u4")[0])


def exact_mean(a):
    """The mean of the f32 values `a`, exact, rounded once to f32 (nearest, ties to even)."""
    m = sum((Fraction(float(v)) for v in a.tolist()), Fraction(0)) / len(a)
    # Round the rational to f32: exact f64 candidates around it, then the nearest f32.
    lo = np.float32(float(m))
    cands = [lo, np.nextafter(lo, np.float32(np.inf)), np.nextafter(lo, np.float32(-np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - m), int(np.array([c]).view("<u4")[0]) & 1))
    return best


def dynamic_cases():
    """Inputs of the 8-bit dynamic step: every grid point (2 i / 65535 - 1 in f32) of the native
    kernel's index table, each code book midpoint and its f32 neighbours, random values; blocks of 256
    led by 1.0 (so the scale is exactly 1), then a block of zeros and a partial block of random values."""
    code = F.create_dynamic_map(signed=True).numpy().astype(np.float32)
    i = np.arange(65536, dtype=np.float32)
    grid = (i + i) / np.float32(65535) - np.float32(1)
    mids = ((code[:-1] + code[1:]) * np.float32(0.5)).astype(np.float32)
    near = np.concatenate([mids, np.nextafter(mids, np.float32(2)), np.nextafter(mids, np.float32(-2))])
    rnd = np.random.default_rng(20261207).uniform(-1, 1, 4096).astype(np.float32)
    vals = np.concatenate([grid, near, rnd]).astype(np.float32)
    blocks = []
    for k in range(0, len(vals), 255):
        blocks.append(np.concatenate([np.float32([1.0]), vals[k:k + 255]]))
    x = np.concatenate(blocks + [np.zeros(256, np.float32), rnd[:77] * np.float32(3e-3)]).astype(np.float32)
    return code, x


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(20261206)
    cases = []

    def add(name, x, blocksize, types=("nf4", "fp4"), dtype="f32", minilm=None, rows=None):
        n = x.numel()
        entry = {"name": name, "n": n, "blocksize": blocksize, "dtype": dtype, "types": list(types)}
        if minilm:
            entry["minilm"] = minilm
        elif dtype == "f32":
            x.float().numpy().astype("<f4").tofile(OUT / f"{name}.in.f32")
        else:
            x.view(torch.int16).numpy().astype("<i2").tofile(OUT / f"{name}.in.{dtype}")
        shaped = x.reshape(rows, -1) if rows else x
        for ty in types:
            q, st = F.quantize_4bit(shaped, blocksize=blocksize, quant_type=ty, compress_statistics=False)
            assert q.dtype == torch.uint8 and q.numel() == (n + 1) // 2, (q.shape, n)
            q.numpy().tofile(OUT / f"{name}.{ty}.codes.u8")
            st.absmax.float().numpy().astype("<f4").tofile(OUT / f"{name}.{ty}.absmax.f32")
            # Decoded as float32 (what the library's dequantizer writes) also for 16-bit sources,
            # whose default would round the products to the source's type.
            st.dtype = torch.float32
            d = F.dequantize_4bit(q, st).reshape(-1)
            assert d.dtype == torch.float32
            d.numpy().astype("<f4").tofile(OUT / f"{name}.{ty}.deq.f32")
            # Double quantization: the same codes, the absmax values 8-bit coded around their mean.
            qn, sn = F.quantize_4bit(shaped, blocksize=blocksize, quant_type=ty, compress_statistics=True)
            assert torch.equal(qn, q), name
            assert sn.nested and sn.state2.blocksize == 256 and sn.absmax.dtype == torch.uint8
            sn.absmax.numpy().tofile(OUT / f"{name}.{ty}.nested.qabsmax.u8")
            sn.state2.absmax.numpy().astype("<f4").tofile(OUT / f"{name}.{ty}.nested.absmax2.f32")
            entry[f"offset_{ty}"] = f32_bits(sn.offset.item())
            sn.offset.float().reshape(1).numpy().astype("<f4").tofile(OUT / f"{name}.{ty}.nested.offset.f32")
            entry[f"mean_{ty}"] = f32_bits(exact_mean(st.absmax.float().numpy()))
            sn.dtype = torch.float32
            dn = F.dequantize_4bit(qn, sn).reshape(-1)
            dn.numpy().astype("<f4").tofile(OUT / f"{name}.{ty}.nested.deq.f32")
        cases.append(entry)

    # Every block size bitsandbytes accepts, full blocks and a partial last one, wide range.
    for bs in (32, 64, 128, 256, 512, 1024, 2048, 4096):
        add(f"wide_bs{bs}", wide(g, 3 * bs + bs // 2 + 7), bs)
    # Zeros: an all-zero full block, an all-zero partial last block (its absmax is clamped to 1e-38),
    # tiny values whose reciprocal scale is huge.
    z = torch.randn(64 * 4 + 10, generator=g)
    z[:64] = 0
    z[64:128] *= 1e-38
    z[128] = -3e-39
    z[-10:] = 0
    add("zeros", z, 64)
    for ty in ("nf4", "fp4"):
        add(f"ties_{ty}", ties(ty), 64, types=(ty,))
    # Odd lengths (a pad nibble), one value, a 2-D shape whose rows do not hold whole blocks.
    add("odd_1", torch.tensor([-0.75]), 64)
    add("odd_101", wide(g, 101), 32)
    add("rows_7x45", torch.randn(7 * 45, generator=g) * 3, 64, rows=7)
    # 16-bit sources (bitsandbytes quantizes their exact f32 values).
    add("bf16_1000", (torch.randn(1000, generator=g) * 0.05).to(torch.bfloat16), 64, dtype="bf16")
    add("f16_777", (torch.randn(777, generator=g) * 4).to(torch.float16), 128, dtype="f16")
    # Real weights: the first 64 rows of MiniLM layer-0's query projection.
    name = "encoder.layer.0.attention.self.query.weight"
    w = np.fromfile(MINILM / f"{name}.f32", dtype="<f4")[: 64 * 384]
    add("minilm_q_64x384", torch.from_numpy(w.copy()), 64, minilm=name, rows=64)

    # Several 256-blocks of absmax values (the last partial) and blocks whose absmax all equal the
    # mean (every absmax - offset is 0: the nested blocks are all zero).
    add("nested_3blocks", wide(g, 64 * (2 * 256 + 37) + 5), 64)
    same = torch.randn(64 * 300, generator=g).clamp(-0.99, 0.99)
    same[::64] = 1.0
    add("nested_equal", same, 64)

    code, x = dynamic_cases()
    assert torch.equal(F.create_dynamic_map(signed=True), torch.from_numpy(code))
    code.astype("<f4").tofile(OUT / "dynamic_map.f32")
    x.astype("<f4").tofile(OUT / "dynamic.in.f32")
    xq, s2 = F.quantize_blockwise(torch.from_numpy(x), blocksize=256)
    xq.numpy().tofile(OUT / "dynamic.codes.u8")
    s2.absmax.numpy().astype("<f4").tofile(OUT / "dynamic.absmax.f32")
    xd = F.dequantize_blockwise(xq, s2)
    assert xd.dtype == torch.float32
    xd.numpy().astype("<f4").tofile(OUT / "dynamic.deq.f32")

    manifest = {
        "generator": "scripts/gen_bnb_fixtures.py",
        "bitsandbytes_version": importlib.metadata.version("bitsandbytes"),
        "torch_version": torch.__version__,
        "dynamic_n": int(x.size),
        "cases": cases,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
