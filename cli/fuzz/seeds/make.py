#!/usr/bin/env python3
"""Writes the seed inputs of the model tool's fuzz targets into ../corpus/<target>/ (python3 only).

gguf: small valid GGUF v3 files (metadata of each value type, tensors of F32, F16, BF16, Q8_0, Q4_0).
safetensors: small valid shards of the fuzz target's one-layer Llama (f32, f16, bf16).
imatrix: llama-imatrix's files, GGUF (in_sum2 / counts pairs, imatrix.* metadata) and legacy .dat.
"""
import json
import pathlib
import struct

OUT = pathlib.Path(__file__).resolve().parent.parent / "corpus"


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


MODEL_KV = [
    ("general.architecture", 8, gguf_string("llama")),
    ("llama.block_count", 4, struct.pack("<I", 1)),
    ("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
    ("general.flag", 7, struct.pack("<?", True)),
    ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + gguf_string("a") + gguf_string("b")),
]


def gguf(tensors, align=32, kv=MODEL_KV):
    """tensors: (name, dims, ggml type id, data bytes); kv: (key, value type, value bytes)."""
    kv = kv + [("general.alignment", 4, struct.pack("<I", align))]
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for k, t, v in kv:
        out += gguf_string(k) + struct.pack("<I", t) + v
    offset = 0
    for name, dims, ty, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", ty, offset)
        offset += (len(data) + align - 1) // align * align
    out += b"\0" * (-len(out) % align)
    for _, _, _, data in tensors:
        out += data + b"\0" * (-len(data) % align)
    return out


def f32(n, seed):
    return struct.pack(f"<{n}f", *[((i * 37 + seed) % 17 - 8) / 8.0 for i in range(n)])


def main():
    (OUT / "gguf").mkdir(parents=True, exist_ok=True)
    q8_0 = struct.pack("<e", 0.01) + bytes(range(32))
    q4_0 = struct.pack("<e", 0.02) + bytes(range(0, 256, 16))
    files = {
        "f32": [("token_embd.weight", [8, 4], 0, f32(32, 1)), ("output_norm.weight", [8], 0, f32(8, 2))],
        "f16": [("blk.0.attn_q.weight", [8, 8], 1, struct.pack("<64e", *[i / 64 for i in range(64)]))],
        "bf16": [("blk.0.ffn_up.weight", [8, 2], 30, bytes(32))],
        "q8_0": [("blk.0.ffn_down.weight", [32, 2], 8, q8_0 * 2)],
        "q4_0": [("blk.0.attn_v.weight", [32, 1], 2, q4_0)],
    }
    for name, tensors in files.items():
        (OUT / "gguf" / name).write_bytes(gguf(tensors))

    (OUT / "safetensors").mkdir(parents=True, exist_ok=True)
    shapes = {
        "model.embed_tokens.weight": [4, 8],
        "model.norm.weight": [8],
        "model.layers.0.self_attn.q_proj.weight": [8, 8],
        "model.layers.0.self_attn.k_proj.weight": [4, 8],
        "model.layers.0.mlp.down_proj.weight": [8, 16],
    }
    for dtype, size in [("F32", 4), ("F16", 2), ("BF16", 2)]:
        header, data = {}, b""
        for name, shape in shapes.items():
            n = 1
            for d in shape:
                n *= d
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n * size]}
            data += bytes((i * 7) % 63 for i in range(n * size))
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        (OUT / "safetensors" / dtype.lower()).write_bytes(struct.pack("<Q", len(h)) + h + data)

    (OUT / "imatrix").mkdir(parents=True, exist_ok=True)
    kv = [
        ("general.type", 8, gguf_string("imatrix")),
        ("imatrix.datasets", 9, struct.pack("<IQ", 8, 1) + gguf_string("calib.txt")),
        ("imatrix.chunk_count", 4, struct.pack("<I", 2)),
        ("imatrix.chunk_size", 4, struct.pack("<I", 512)),
    ]
    tensors = []
    for name, n, nmat in [("blk.0.attn_q.weight", 8, 1), ("blk.0.ffn_down.weight", 16, 2)]:
        tensors.append((name + ".in_sum2", [n, nmat], 0, f32(n * nmat, 3)))
        tensors.append((name + ".counts", [1, nmat], 0, struct.pack(f"<{nmat}f", *([1024.0] * nmat))))
    (OUT / "imatrix" / "gguf").write_bytes(gguf(tensors, kv=kv))
    dat = struct.pack("<i", 1)
    name = b"blk.0.ffn_up.weight"
    dat += struct.pack("<i", len(name)) + name + struct.pack("<ii", 4, 8)
    dat += struct.pack("<8f", *[i + 0.5 for i in range(8)])
    dat += struct.pack("<ii", 10, 3) + b"a.t"
    (OUT / "imatrix" / "legacy.dat").write_bytes(dat)


if __name__ == "__main__":
    main()
