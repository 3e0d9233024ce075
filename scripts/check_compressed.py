#!/usr/bin/env python3
"""Loads a compressed-tensors folder written by `quant export-compressed` with compressed-tensors'
own loaders and compares every decompressed weight with the tool's dequantization of the same codes.

    check_compressed.py FOLDER REFERENCE.safetensors [FOLDER REFERENCE.safetensors ...]

REFERENCE holds `<module>.weight` (f32) for every quantized linear layer of FOLDER: the tool's own
dequantization of the folder's codes. Two loaders decompress FOLDER:
1. compressed-tensors' model-free dequantizer (`CompressedTensorsDequantizer`): reads config.json and
   decompresses the folder's state dict with the compressor of each scheme; its `validate` fails on
   quantization parameters left over;
2. transformers' `from_pretrained` through compressed-tensors (`CompressedTensorsConfig(dequantize=
   True)`): the model built from config.json, every checkpoint tensor loaded with its shape checked
   (a missing, unexpected or mismatched tensor fails), each linear weight decompressed by the
   compressor that the config's `format` names; the folder's other tensors must load unchanged.

Both must give the reference rounded to f16 (the folder's dtype), bit for bit: the loaders compute
`(q - zp) * scale` or `fp8(q) * scale` in f16, where the codes (integers of at most 9 bits, E4M3
values) are exact and the product is rounded once; the reference's f32 product of the same codes and
the same f16 scale is exact (at most 9 + 11 significant bits), so rounding it to f16 is that same
single rounding. NVFP4, MXFP4, MXFP6 and MXFP8 (`nvfp4-`, `mxfp4-`, `mxfp6-pack-quantized`,
`mxfp8-quantized`) are decompressed in bfloat16 whatever the folder's dtype: there the loaders'
weights must be the reference (NVFP4: the f32 product of an E2M1 value and `scale / global_scale`, as
the library computes it; MX: an E2M1, E2M3 or E4M3 value times a power of two, exact in bfloat16)
rounded to bfloat16 and then converted to f16.
Prints one line per loader; exits 1 naming the first difference.

Needs torch, compressed-tensors and transformers (scripts/test-model.sh builds the virtualenv).
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

QPARAMS = ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx",
           "weight_global_scale")


def fail(msg):
    print(f"check_compressed: {msg}", file=sys.stderr)
    sys.exit(1)


# Formats that compressed-tensors decompresses in bfloat16 whatever the model's dtype
# (`unpack_fp4_from_uint8` and `unpack_fp6_from_uint8` return bfloat16 values, `decompress_mx_scale`
# bfloat16 scales, and `dequantize` rounds the product of a code and the scale to that dtype); the
# loaders then convert the weight to float16.
BF16_FORMATS = ("nvfp4-pack-quantized", "mxfp4-pack-quantized", "mxfp6-pack-quantized",
                "mxfp8-quantized")


def compare(who, name, got, ref, fmt):
    """`got` (the loader's weight) must be `ref` (f32) rounded to f16, bit for bit (for the formats
    of BF16_FORMATS, rounded to bfloat16 and then converted to f16)."""
    if got is None:
        fail(f"{who}: no weight '{name}'")
    if tuple(got.shape) != tuple(ref.shape):
        fail(f"{who}: '{name}' has shape {tuple(got.shape)}, the reference {tuple(ref.shape)}")
    if got.dtype != torch.float16:
        fail(f"{who}: '{name}' is {got.dtype}, not the folder's float16")
    want = ref.to(torch.bfloat16) if fmt in BF16_FORMATS else ref
    want = want.to(torch.float16)
    same = got.view(torch.int16) == want.view(torch.int16)
    if not bool(same.all()):
        i = int((~same).flatten().nonzero()[0])
        r, c = divmod(i, ref.shape[1])
        fail(
            f"{who}: '{name}' [{r}, {c}] is {float(got.flatten()[i])!r}, the reference "
            f"{float(ref.flatten()[i])!r} (f16 {float(want.flatten()[i])!r}); "
            f"{int((~same).sum())} of {same.numel()} elements differ"
        )


def folder_tensors(folder):
    tensors = {}
    for f in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(f))
    if not tensors:
        fail(f"{folder}: no safetensors files")
    return tensors


def check_formats(folder):
    """compressed-tensors' own format inference must agree with the format the config declares
    (it calls FP8 weights `float-quantized` only with quantized input activations)."""
    from compressed_tensors.compressors.format import infer_module_format
    from compressed_tensors.quantization import QuantizationConfig

    config = json.loads((folder / "config.json").read_text())["quantization_config"]
    qc = QuantizationConfig.model_validate(config)
    for name, scheme in qc.config_groups.items():
        inferred = infer_module_format(torch.nn.Linear, scheme).value
        if inferred != qc.format:
            fail(f"{folder}: config group {name} is '{inferred}' to compressed-tensors, "
                 f"the config says '{qc.format}'")
    return qc.format


def check_model_free(folder, tensors, reference, fmt):
    from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import (
        CompressedTensorsDequantizer,
    )

    # It matches layers by tensor name only ("Linear" targets every `<module>.weight`), so with FP8,
    # whose codes are named `weight` too, it would take the embedding for a quantized layer; the
    # modules stored unquantized (a `weight` and no `weight_scale`) are passed as ignored.
    plain = sorted(
        n.rpartition(".")[0]
        for n in tensors
        if n.endswith(".weight") and n.rpartition(".")[0] + ".weight_scale" not in tensors
    )
    dequantizer = CompressedTensorsDequantizer(folder, ignore=plain, dtype=torch.float16)
    out = dequantizer.validate(dict(tensors))
    for name, ref in reference.items():
        compare("compressed-tensors", name, out.get(name), ref, fmt)


def check_transformers(folder, tensors, reference, fmt):
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    model, info = AutoModelForCausalLM.from_pretrained(
        folder,
        quantization_config=CompressedTensorsConfig(dequantize=True),
        dtype="auto",
        output_loading_info=True,
    )
    problems = {k: v for k, v in info.items() if v}
    if problems:
        fail(f"transformers: loading {folder}: {problems}")
    params = dict(model.named_parameters())
    for name, ref in reference.items():
        compare("transformers", name, params.get(name), ref.detach(), fmt)
    # The tensors stored as they are (embeddings, norms) load unchanged.
    plain = 0
    for name, t in tensors.items():
        module, _, leaf = name.rpartition(".")
        if leaf in QPARAMS or (leaf == "weight" and name in reference):
            continue
        got = params.get(name)
        if got is None or not torch.equal(got.detach(), t):
            fail(f"transformers: '{name}' does not load as the folder holds it")
        plain += 1
    return plain


def check(folder, reference):
    fmt = check_formats(folder)
    tensors = folder_tensors(folder)
    # The reference covers every quantized layer (each has a weight_scale), and nothing else.
    quantized = {n.rpartition(".")[0] + ".weight" for n in tensors if n.endswith(".weight_scale")}
    if quantized != set(reference):
        fail(f"{folder}: quantized layers without a reference: "
             f"{sorted(quantized - set(reference))[:5]}, references without a layer: "
             f"{sorted(set(reference) - quantized)[:5]}")
    n = len(reference)
    check_model_free(folder, tensors, reference, fmt)
    print(f"{folder.name}: {fmt}: compressed-tensors decompressed {n} weights, equal to the reference")
    plain = check_transformers(folder, tensors, reference, fmt)
    print(f"{folder.name}: {fmt}: transformers loaded {n} weights equal to the reference "
          f"and {plain} other tensors unchanged", flush=True)


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        fail("usage: check_compressed.py FOLDER REFERENCE.safetensors [FOLDER REFERENCE ...]")
    # Several folders in one run: importing torch and transformers takes longer than a check.
    for folder, reference in zip(args[::2], args[1::2]):
        ref = load_file(reference)
        if not ref:
            fail(f"{reference}: no reference weights")
        check(Path(folder), ref)


if __name__ == "__main__":
    main()
