#!/usr/bin/env python3
"""Regenerates the GGML block fixtures in tests/data/ggml/ (read by tests/ggml.rs).

    pip install gguf numpy              # gguf-py, the reference (version recorded in manifest.json)
    cargo build --release               # only for the K-quant part (libquant.so via ctypes)
    python3 scripts/gen_ggml_fixtures.py [--lib target/release/libquant.so] [--verify N]

--verify N also compares the library with gguf-py on N random blocks per 32-value type and prints the
differences (only the sign bit of a zero f16 scale/min is expected to differ; see src/kernels/ggml.rs).

What it writes (raw little-endian files, shapes in manifest.json):
- Inputs (float32, row-major): random.f32 (normal data at several scales), real.f32 (rows 0..16 of
  the MiniLM layer-0 query weight), special.f32 (one row of hand-made 32-value blocks: all zero,
  largest magnitude negative, exact ties of each rounding, constant, tiny, huge, equal magnitudes of
  both signs).
- For each input and each of Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: <input>.<type>.bin = gguf-py's
  gguf.quants.quantize (which reproduces ggml's quantize_row_*_ref byte for byte) and
  <input>.<type>.deq.f32 = gguf-py's dequantize of those bytes.
- records.<type>.bin: random records of every type (the K-quants included) with random finite f16
  headers, and records.<type>.deq.f32 = gguf-py's dequantize: the dequantizers on every bit pattern.
- With --lib (gguf-py has no K-quant quantizer): kinput.f32 (random and real super-blocks,
  an all-zero one and one with an all-zero sub-block), kq.<type>.bin = this library's
  quant_ggml_quantize (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4, NVFP4, TQ1_0, TQ2_0),
  kq.<type>.deq.f32 = gguf-py's dequantize of
  those blocks. The test then checks that the library still writes the same blocks and decodes them
  exactly as gguf-py does. (ggml's own bytes for every type are in golden/, by scripts/ggml-golden.sh.)
"""
import argparse
import ctypes
import importlib.metadata
import json
import pathlib

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "ggml"
MINILM = ROOT / "tests" / "data" / "minilm"

BASIC = {"q8_0": T.Q8_0, "q4_0": T.Q4_0, "q4_1": T.Q4_1, "q5_0": T.Q5_0, "q5_1": T.Q5_1}
KQ = {"q2_k": T.Q2_K, "q3_k": T.Q3_K, "q4_k": T.Q4_K, "q5_k": T.Q5_K, "q6_k": T.Q6_K}
# Byte offsets of the f16 headers of each record (kept finite in the random records).
HEADERS = {"q8_0": [0], "q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2],
           "q2_k": [80, 82], "q3_k": [108], "q4_k": [0, 2], "q5_k": [0, 2], "q6_k": [208]}
ALL = {**BASIC, **KQ}
# Types gguf-py decodes but whose blocks come from the library only (their bytes are checked against
# ggml itself in golden/): with --lib, kq.<type>.bin and gguf-py's decoding of it, as for KQ.
NONLINEAR = {"iq4_nl": T.IQ4_NL, "iq4_xs": T.IQ4_XS, "mxfp4": T.MXFP4, "nvfp4": T.NVFP4}
# The ternary types, likewise.
TERNARY = {"tq1_0": T.TQ1_0, "tq2_0": T.TQ2_0}


def special_blocks(rng):
    blocks = []
    blocks.append(np.zeros(32))                                   # all zero
    b = rng.standard_normal(32); b[7] = -4.0 * np.abs(b).max()    # largest magnitude negative
    blocks.append(b)
    blocks.append(-np.abs(rng.standard_normal(32)))               # all negative
    blocks.append(np.concatenate([[127.0], np.arange(-15.5, 15.0)]))        # Q8_0 d = 1: ties of roundf
    blocks.append(np.concatenate([[-8.0], np.arange(-7.5, 8.0, 0.5)]))      # Q4_0 d = 1: x + 8.5 exact
    blocks.append(np.concatenate([[0.0, 15.0], np.arange(0.5, 15.5, 0.5)]))  # Q4_1 d = 1: ties of + 0.5
    blocks.append(np.concatenate([[0.0, 31.0], np.arange(0.25, 30.25, 1.0)]))  # Q5_1 d = 1
    blocks.append(np.full(32, 0.37))                              # constant: Q4_1 d = 0
    blocks.append(rng.standard_normal(32) * 1e-6)                 # f16-subnormal scales
    blocks.append(rng.standard_normal(32) * 5000.0)               # large (checked headers path)
    b = rng.standard_normal(32) * 0.1; b[0], b[1] = 2.0, -2.0     # equal magnitudes: first wins
    blocks.append(b)
    b = rng.standard_normal(32) * 0.1; b[0], b[1] = -2.0, 2.0
    blocks.append(b)
    blocks = [np.asarray(b, dtype=np.float64)[:32] for b in blocks]
    assert all(len(b) == 32 for b in blocks)
    return np.concatenate(blocks).astype(np.float32).reshape(1, -1)


def random_records(rng, name, qtype, n=64):
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    rec = rng.integers(0, 256, size=(n, type_size), dtype=np.uint8)
    for off in HEADERS[name]:
        h = (rng.standard_normal(n) * rng.choice([1e-4, 1e-2, 1.0], size=n)).astype(np.float16)
        rec[:, off:off + 2] = h.view(np.uint8).reshape(n, 2)
    return rec


def save(path, array):
    np.ascontiguousarray(array).tofile(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", help="libquant shared library, for the K-quant fixtures")
    ap.add_argument("--verify", type=int, default=0, metavar="N",
                    help="also compare the library with gguf-py on N random blocks per type "
                         "(needs --lib; prints the mismatches, writes nothing more)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261122)
    manifest = {"generator": "scripts/gen_ggml_fixtures.py", "gguf_py_version": importlib.metadata.version("gguf"), "inputs": {}, "records": 64}

    row_scales = np.array([1.0, 1e-3, 50.0, 1.0, 0.02, 3.0, 1.0, 1e-5], dtype=np.float32)
    inputs = {
        "random": (rng.standard_normal((8, 256)).astype(np.float32) * row_scales[:, None]),
        "real": np.fromfile(MINILM / "encoder.layer.0.attention.self.query.weight.f32",
                            dtype="<f4").reshape(384, 384)[:16].copy(),
        "special": special_blocks(rng),
    }
    for name, x in inputs.items():
        x = x.astype(np.float32)
        save(OUT / f"{name}.f32", x)
        manifest["inputs"][name] = list(x.shape)
        for tname, qtype in BASIC.items():
            q = quantize(x, qtype)
            assert q.dtype == np.uint8
            save(OUT / f"{name}.{tname}.bin", q)
            save(OUT / f"{name}.{tname}.deq.f32", dequantize(q, qtype).astype(np.float32))

    for tname, qtype in ALL.items():
        rec = random_records(rng, tname, qtype)
        save(OUT / f"records.{tname}.bin", rec)
        save(OUT / f"records.{tname}.deq.f32", dequantize(rec, qtype).astype(np.float32))

    if args.lib:
        lib = ctypes.CDLL(args.lib)
        lib.quant_ggml_quantize.restype = ctypes.c_int32
        lib.quant_ggml_quantize.argtypes = [ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t,
                                            ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
        real = np.fromfile(MINILM / "encoder.layer.0.output.dense.weight.f32",
                           dtype="<f4").reshape(384, 1536)[:8]
        rand = rng.standard_normal((4, 512)).astype(np.float32) * row_scales[:4, None]
        special = np.zeros((1, 512), dtype=np.float32)
        special[0, 256:] = rng.standard_normal(256)
        special[0, 256 + 16:256 + 48] = 0.0   # all-zero sub-blocks of every K type
        kin = np.concatenate([real.reshape(-1, 512), rand, special]).astype(np.float32)
        save(OUT / "kinput.f32", kin)
        manifest["inputs"]["kinput"] = list(kin.shape)
        for tname, qtype in {**KQ, **NONLINEAR, **TERNARY}.items():
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
            nbytes = kin.size // block * type_size
            dst = np.zeros(nbytes, dtype=np.uint8)
            status = lib.quant_ggml_quantize(int(qtype), kin.ctypes.data, kin.shape[0], kin.shape[1],
                                             dst.ctypes.data, nbytes)
            assert status == 0, f"quant_ggml_quantize({tname}) gave {status}"
            save(OUT / f"kq.{tname}.bin", dst)
            save(OUT / f"kq.{tname}.deq.f32",
                 dequantize(dst.reshape(kin.shape[0], -1), qtype).astype(np.float32))

    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if args.lib and args.verify:
        verify(ctypes.CDLL(args.lib), args.verify, np.random.default_rng(7))


def verify(lib, n, rng):
    """Byte comparison of quant_ggml_quantize with gguf-py on n random blocks per 32-value type,
    drawn from several distributions (normal at many scales, uniform, sparse, integers, halves)."""
    lib.quant_ggml_quantize.argtypes = [ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t,
                                        ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
    scale = 10.0 ** rng.uniform(-6, 3, size=(n, 1))
    kinds = rng.integers(0, 5, size=(n, 1))
    normal = rng.standard_normal((n, 32))
    x = np.where(kinds == 0, normal,
        np.where(kinds == 1, rng.uniform(-1, 1, (n, 32)),
        np.where(kinds == 2, normal * (rng.uniform(size=(n, 32)) < 0.2),
        np.where(kinds == 3, np.round(normal * 8), np.round(normal * 16) / 2)))) * scale
    x = x.astype(np.float32)
    for tname, qtype in BASIC.items():
        want = quantize(x, qtype)
        got = np.zeros_like(want)
        status = lib.quant_ggml_quantize(int(qtype), x.ctypes.data, n, 32, got.ctypes.data, got.size)
        assert status == 0, status
        bad = np.nonzero((got != want).any(axis=1))[0]
        # gguf-py's numpy min/argmax may pick +0.0 where ggml's C loop keeps -0.0 (or the reverse)
        # for the min of Q4_1/Q5_1 or the max of Q4_0/Q5_0 of a block whose extreme is a zero: the
        # f16 header then differs in its sign bit only. The library follows ggml's C.
        zero_sign = [i for i in bad if signed_zero_only(got[i], want[i], HEADERS[tname])]
        other = [i for i in bad if i not in set(zero_sign)]
        print(f"{tname}: {n} blocks, {len(bad)} differ: {len(zero_sign)} in the sign of a zero "
              f"f16 header only, {len(other)} otherwise" + (f" (first {other[:5]})" if other else ""))


def signed_zero_only(got, want, headers):
    diff = np.nonzero(got != want)[0]
    for off in headers:
        g = got[off:off + 2].view(np.uint16)[0]
        w = want[off:off + 2].view(np.uint16)[0]
        if g != w and not (g & 0x7FFF == 0 and w & 0x7FFF == 0):
            return False
    return all(any(off <= d < off + 2 for off in headers) for d in diff)


if __name__ == "__main__":
    main()
