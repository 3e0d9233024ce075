#!/usr/bin/env python3
"""Regenerates the block-FP8 fixtures in tests/data/blockfp8/ (read by tests/blockfp8.rs).

    $(scripts/venv-torch.sh) scripts/gen_blockfp8_fixtures.py

The reference is DeepSeek-V3's block FP8 (inference/kernel.py: `act_quant`, `weight_dequant`; the
weights ship as E4M3FN with one f32 `weight_scale_inv` per 128 x 128 block, edge blocks included)
evaluated with torch on the CPU:

    scale_inv = amax(|block|) / 448          (f32)
    code      = (block / scale_inv).to(torch.float8_e4m3fn)
    deq       = code.float() * scale_inv

A block whose scale_inv is 0 gets codes 0 (the library's rule; DeepSeek's formula would divide 0 by
0). Activations (`act_quant`) are the same with blocks of 1 x 128.

What it writes (raw little-endian, shapes in manifest.json):
- <case>.in.f32 (or .in.bf16 / .in.f16: the raw 16-bit bits; or, for the MiniLM slice, no input file
  but the name of the tests/data/minilm weight and the number of leading rows), <case>.codes.u8,
  <case>.scale_inv.f32, <case>.deq.f32.
"""
import json
import math
import pathlib

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "blockfp8"
MINILM = ROOT / "tests" / "data" / "minilm"


def block_quant(x, br, bc):
    """DeepSeek-V3's formulas on every br x bc block of the f32 matrix x (edge blocks smaller)."""
    m, n = x.shape
    gm, gn = math.ceil(m / br), math.ceil(n / bc)
    # Zero padding does not change a block's amax.
    pad = torch.zeros(gm * br, gn * bc, dtype=torch.float32)
    pad[:m, :n] = x
    blocks = pad.reshape(gm, br, gn, bc)
    amax = blocks.abs().amax(dim=(1, 3))
    s = amax / 448.0
    s_full = s[:, None, :, None]
    safe = torch.where(s_full == 0, torch.ones_like(s_full), s_full)
    codes = (blocks / safe).to(torch.float8_e4m3fn)
    codes = torch.where(s_full == 0, torch.zeros_like(codes.float()), codes.float()).to(torch.float8_e4m3fn)
    deq = codes.float() * s_full
    codes = codes.reshape(gm * br, gn * bc)[:m, :n].contiguous()
    deq = deq.reshape(gm * br, gn * bc)[:m, :n].contiguous()
    return codes, s.contiguous(), deq


def ties_block():
    """A 128 x 128 block with amax 448 (scale_inv exactly 1): every midpoint between neighbouring
    E4M3 values (ties to even), the subnormal ones included, and values just beside them."""
    vals = torch.arange(0, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    mids = ((vals[:-1] + vals[1:]) / 2).tolist()
    cells = [448.0]
    for v in mids:
        cells += [v, -v, np.nextafter(np.float32(v), np.float32(0)).item(),
                  np.nextafter(np.float32(v), np.float32(1000)).item()]
    b = torch.zeros(128 * 128, dtype=torch.float32)
    b[: len(cells)] = torch.tensor(cells, dtype=torch.float32)
    return b.reshape(128, 128)


def wide_random(g, m, n):
    """Normal values times a log-uniform magnitude per element (1e-8 .. 1e4): every block spans a
    wide range, so many codes are subnormal or zero."""
    mag = 10.0 ** (torch.rand(m, n, generator=g, dtype=torch.float64) * 12 - 8)
    return (torch.randn(m, n, generator=g, dtype=torch.float64) * mag).float()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(20261206)
    cases = []

    def add(name, x, br, bc, dtype="f32", minilm=None):
        xf = x.float()
        codes, s, deq = block_quant(xf, br, bc)
        entry = {"name": name, "rows": x.shape[0], "cols": x.shape[1], "block_rows": br,
                 "block_cols": bc, "dtype": dtype}
        if minilm:
            entry["minilm"] = minilm
        elif dtype == "f32":
            xf.numpy().astype("<f4").tofile(OUT / f"{name}.in.f32")
        else:
            x.view(torch.int16).numpy().astype("<i2").tofile(OUT / f"{name}.in.{dtype}")
        codes.view(torch.uint8).numpy().tofile(OUT / f"{name}.codes.u8")
        s.numpy().astype("<f4").tofile(OUT / f"{name}.scale_inv.f32")
        deq.numpy().astype("<f4").tofile(OUT / f"{name}.deq.f32")
        cases.append(entry)

    # Edge blocks on both sides, wide range.
    add("wide_300x260", wide_random(g, 300, 260), 128, 128)
    # Zeros: an all-zero block, a block whose only non-zero value is tiny (amax / 448 underflows to
    # a subnormal or to 0), and a row of zeros inside a block.
    z = torch.randn(200, 200, generator=g) * 3
    z[:128, :128] = 0
    z[128:, :128] = 0
    z[130, 5] = 1e-44
    z[190, 100] = -3e-39
    z[:128, 150] = 0
    add("zeros_200x200", z, 128, 128)
    add("ties_128x128", ties_block(), 128, 128)
    # Shapes smaller than a block and of one row or column.
    add("tiny_1x1", torch.tensor([[-2.5]]), 128, 128)
    add("row_1x300", wide_random(g, 1, 300), 128, 128)
    add("col_300x1", wide_random(g, 300, 1), 128, 128)
    add("exact_128x256", torch.randn(128, 256, generator=g) * 0.02, 128, 128)
    # Other block shapes (vLLM's weight_block_size is configurable).
    add("blocks64x32_100x70", wide_random(g, 100, 70), 64, 32)
    # Activations: DeepSeek-V3's act_quant, per token per 128 channels.
    add("act_7x384", torch.randn(7, 384, generator=g) * 10 ** torch.randn(7, 1, generator=g), 1, 128)
    # 16-bit sources: the reference quantizes their exact f32 values.
    add("bf16_140x260", (torch.randn(140, 260, generator=g) * 0.05).to(torch.bfloat16), 128, 128, "bf16")
    add("f16_130x140", (torch.randn(130, 140, generator=g) * 4).to(torch.float16), 128, 128, "f16")
    # Real weights: the leading rows of MiniLM layer-0's query projection (a file already committed).
    name = "encoder.layer.0.attention.self.query.weight"
    w = np.fromfile(MINILM / f"{name}.f32", dtype="<f4").reshape(384, 384)[:200]
    add("minilm_q_200x384", torch.from_numpy(w.copy()), 128, 128, minilm=name)

    manifest = {"generator": "scripts/gen_blockfp8_fixtures.py", "torch_version": torch.__version__,
                "cases": cases}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
