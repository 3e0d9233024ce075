#!/usr/bin/env python3
"""Generates the golden fixtures of the plain casts (tests/data/golden) with numpy and ml_dtypes.

    pip install numpy ml_dtypes
    python3 scripts/gen_cast_fixtures.py            # writes tests/data/golden/*
    cargo test --test casts                         # checks the library against them

References: numpy `float16` for FP16, ml_dtypes `bfloat16`, `float8_e4m3fn` and `float8_e5m2` for BF16 and
FP8, each cast from float32 (encoding) or to float32 (decoding). Only the non-saturating conversions are
stored; the tests derive the saturating expectation from them as the header documents it (a non-NaN input whose
code is an infinity or a NaN becomes +-max). The layout of every file is in tests/data/golden/README.md,
which this script also writes.
"""
import os
import sys

import ml_dtypes
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "golden")
SEED = 20261122

F16, BF16 = np.float16, ml_dtypes.bfloat16
E4M3, E5M2 = ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2

# name -> (numpy type, significand bits, exponent bias, largest finite magnitude code, code width in bytes)
FORMATS = {
    "f16": (F16, 10, 15, 0x7BFF, 2),
    "bf16": (BF16, 7, 127, 0x7F7F, 2),
    "e4m3": (E4M3, 3, 7, 0x7E, 1),
    "e5m2": (E5M2, 2, 15, 0x7B, 1),
}


def f32(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def encode(x_bits, name):
    """Reference codes of the f32 patterns `x_bits` in format `name` (numpy / ml_dtypes casts)."""
    typ, _, _, _, width = FORMATS[name]
    with np.errstate(all="ignore"):
        out = f32(x_bits).astype(typ)
    return out.view(np.uint16 if width == 2 else np.uint8)


def value(code, man, bias):
    """Exact value (float) of a positive magnitude code read with the normal/subnormal formula only,
    the exponent unbounded (so the code after the largest finite one is the next power-of-two step)."""
    exp, m = code >> man, code & ((1 << man) - 1)
    if exp == 0:
        return m * 2.0 ** (1 - bias - man)
    return (2**man + m) * 2.0 ** (exp - bias - man)


def midpoints(name):
    """f32 bits of every rounding boundary of `name` on the positive axis: the midpoint between each
    pair of neighbouring codes from (0, smallest subnormal) up to (largest finite, overflow step)."""
    _, man, bias, max_code, _ = FORMATS[name]
    mids = []
    for k in range(0, max_code + 1):
        m = (value(k, man, bias) + value(k + 1, man, bias)) / 2
        assert float(np.float32(m)) == m, (name, k, m)  # every boundary is an f32
        mids.append(int(np.float32(m).view(np.uint32)))
    return np.array(mids, dtype=np.uint32)


def tie_records(name):
    width = FORMATS[name][4]
    code_t = "<u2" if width == 2 else "u1"
    mids = midpoints(name)
    rec = np.zeros(len(mids), dtype=[("mid", "<u4"), ("below", code_t), ("at", code_t), ("above", code_t)])
    rec["mid"] = mids
    sign = np.uint32(0x80000000)
    code_sign = 0x8000 if width == 2 else 0x80
    for field, d in (("below", -1), ("at", 0), ("above", 1)):
        x = mids + np.uint32(d) if d >= 0 else mids - np.uint32(1)
        pos = encode(x, name)
        neg = encode(x | sign, name)
        # The tests check -x against the sign-flipped code: make sure the reference agrees.
        assert np.array_equal(neg, pos | code_sign), (name, field)
        rec[field] = pos
    return rec


def special_inputs():
    """Signed zeros, infinities, NaNs of several payloads, f32 subnormals, and the neighbourhood (+-3
    f32 ulps) of every format's smallest subnormal, half of it, smallest normal, largest finite value,
    overflow threshold and twice its largest value, of powers of two and of some common values."""
    mags = {0, 0x7F800000}
    mags |= {0x7F800001, 0x7F800002, 0x7F801FFF, 0x7F802000, 0x7F80FFFF, 0x7F810000, 0x7FA00000,
             0x7FBFFFFF, 0x7FC00000, 0x7FC00001, 0x7FD55555, 0x7FE00000, 0x7FFFFFFF}
    mags |= {1, 2, 3, 0x1000, 0x3FFFFF, 0x400000, 0x400001, 0x7FFFFE, 0x7FFFFF}  # f32 subnormals
    centers = [2.0**-126, 3.4028234663852886e38, 1.0, 0.1, 1 / 3, np.pi, 2.0 / 3, 1e-3, 1e3, 1e-8, 1e8]
    centers += [2.0**e for e in range(-40, 25)]
    for name, (_, man, bias, max_code, _) in FORMATS.items():
        sub = value(1, man, bias)
        vmax = value(max_code, man, bias)
        over = (vmax + value(max_code + 1, man, bias)) / 2
        centers += [sub, sub / 2, sub * 1.5, value(1 << man, man, bias), vmax, over, 2 * vmax]
    centers += [448, 464, 480, 496, 512, 57344, 61440, 65504, 65520, 65536]
    for c in centers:
        with np.errstate(over="ignore"):  # twice the largest bf16 is beyond f32: infinity
            b = int(np.float32(c).view(np.uint32))
        mags |= {b + d for d in range(-3, 4) if 0 <= b + d <= 0x7F800000}
    mags = np.array(sorted(mags), dtype=np.uint32)
    return np.concatenate([mags, mags | np.uint32(0x80000000)])


def random_inputs(rng):
    """100,000 uniformly random f32 bit patterns, then 20,000 random values with exponents where the
    formats are finite and not zero (|x| in [2^-20, 2^18)), random sign and significand."""
    uniform = rng.integers(0, 2**32, size=100_000, dtype=np.uint64).astype(np.uint32)
    exp = rng.integers(127 - 20, 127 + 18, size=20_000, dtype=np.uint32)
    man = rng.integers(0, 2**23, size=20_000, dtype=np.uint32)
    sign = rng.integers(0, 2, size=20_000, dtype=np.uint32) << np.uint32(31)
    return uniform, sign | (exp << np.uint32(23)) | man


def value_records(x):
    rec = np.zeros(len(x), dtype=[("x", "<u4"), ("f16", "<u2"), ("bf16", "<u2"), ("e4m3", "u1"), ("e5m2", "u1")])
    rec["x"] = x
    for name in FORMATS:
        rec[name] = encode(x, name)
    return rec


def decode_all(name):
    typ, _, _, _, width = FORMATS[name]
    codes = np.arange(2 ** (8 * width), dtype=np.uint32).astype(np.uint16 if width == 2 else np.uint8)
    return codes.view(typ).astype(np.float32).view(np.uint32).astype("<u4")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(SEED)
    files = {}
    for name in FORMATS:
        files[f"ties_{name}.bin"] = tie_records(name)
        files[f"decode_{name}.bin"] = decode_all(name)
    files["special.bin"] = value_records(special_inputs())
    uniform, in_range = random_inputs(rng)
    files["random.bin"] = value_records(uniform)
    files["random_in_range.bin"] = value_records(in_range)
    total = 0
    for fname, arr in files.items():
        data = arr.tobytes()
        total += len(data)
        with open(os.path.join(OUT, fname), "wb") as f:
            f.write(data)
        print(f"{fname}: {len(arr)} records, {len(data)} bytes")
    print(f"total {total} bytes")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README.format(numpy=np.__version__, ml_dtypes=ml_dtypes.__version__,
                              python=sys.version.split()[0], seed=SEED, total=total,
                              counts="\n".join(f"| `{k}` | {len(v)} |" for k, v in files.items())))


README = """# Golden fixtures of the plain casts

Generated by `scripts/gen_cast_fixtures.py` (seed {seed}) with numpy {numpy} and ml_dtypes {ml_dtypes}
(Python {python}); checked by `tests/casts.rs`. Regenerate with

    pip install numpy ml_dtypes && python3 scripts/gen_cast_fixtures.py

All files are raw little-endian records without headers ({total} bytes in all).

| file | records |
|---|---|
{counts}

## References
- FP16: numpy `float16`; BF16, FP8: ml_dtypes `bfloat16`, `float8_e4m3fn`, `float8_e5m2`; each a cast
  from float32 (`astype`) or to float32.
- Only the non-saturating encodings are stored. The saturating expectation is derived as the header documents
  it: for a non-NaN input whose stored code is a NaN (E4M3FN) or an infinity (E5M2), +-max
  (`0x7E`/`0xFE`, `0x7B`/`0xFB`); otherwise the stored code.

## Layouts
- `decode_<fmt>.bin`: `u32` f32 bits of the decoded value of every code in order (65,536 for f16 and
  bf16, 256 for e4m3 and e5m2).
- `ties_<fmt>.bin`: one record per rounding boundary of the format on the positive axis, that is the
  midpoint between every two neighbouring codes, from (0, smallest subnormal) to (largest finite,
  overflow step): `u32 mid` (f32 bits), then the codes of the f32 patterns `mid - 1`, `mid`, `mid + 1`
  (one f32 ulp below, the tie itself, one ulp above), each `u16` (f16, bf16) or `u8` (e4m3, e5m2).
  Negative inputs are not stored: the generator asserts that the code of `-x` is the code of `x` with
  the sign bit set, and the test checks `-x` that way.
- `special.bin`, `random.bin` (100,000 uniformly random f32 patterns), `random_in_range.bin` (20,000
  random values with |x| in [2^-20, 2^18)): records of `u32 x` (f32 bits), `u16 f16`, `u16 bf16`,
  `u8 e4m3`, `u8 e5m2` (10 bytes). `special.bin` holds signed zeros, infinities, NaNs with several
  payloads (quiet and signalling), f32 subnormals, and +-3 f32 ulps around every format's smallest
  subnormal, half of it, smallest normal, largest finite value, overflow threshold, twice its largest
  value, around powers of two from 2^-40 to 2^24 and some common values, each with both signs.

## NaN
For FP8 the library matches ml_dtypes bit for bit, NaN included (a NaN input gives `0x7F`/`0xFF` in E4M3FN
and `0x7E`/`0xFE` in E5M2; NaN codes decode to `0x7FC00000`/`0xFFC00000`). For FP16 and BF16 the
reference of the library is the `half` crate, which quiets NaNs and keeps their payload's top bits;
numpy (f16 keeps a signalling payload unquieted) and ml_dtypes (bf16 encodes every NaN as
`0x7FC0`/`0xFFC0`, decodes NaN bits unchanged) differ there, so for those two formats the tests compare a
NaN expectation as "a NaN of the same sign" and compare the exact bits with `half` instead.
"""

if __name__ == "__main__":
    main()
