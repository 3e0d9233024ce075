#!/usr/bin/env python3
"""Regenerates the bitsandbytes NF4/FP4 fixtures in tests/data/bnb4/ (read by tests/bnb4.rs).

    $(scripts/venv-torch.sh) scripts/gen_bnb_fixtures.py

The reference is bitsandbytes itself (version pinned by scripts/venv-torch.sh, recorded in
manifest.json) on the CPU: `bitsandbytes.functional.quantize_4bit(x, blocksize=..., quant_type=...,
compress_statistics=False)` and `dequantize_4bit` of its result.

What it writes (raw little-endian, shapes in manifest.json), per case and quant type:
- <case>.in.f32 (or .in.bf16 / .in.f16: raw bits; the MiniLM case reads tests/data/minilm instead),
- <case>.<nf4|fp4>.codes.u8 (bitsandbytes' packed bytes), .absmax.f32, .deq.f32 (dequantize_4bit
  to float32).
"""
import importlib.metadata
import json
import pathlib

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

    manifest = {
        "generator": "scripts/gen_bnb_fixtures.py",
        "bitsandbytes_version": importlib.metadata.version("bitsandbytes"),
        "torch_version": torch.__version__,
        "cases": cases,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
