#!/usr/bin/env bash
# Regenerates tests/data/ggml/golden/: GGML blocks of every type the library has, written by ggml
# itself (ggml_quantize_chunk without an importance matrix, as llama-quantize runs it) and decoded by
# ggml's own dequantizers. scripts/ggml_golden.c says what the inputs and files are; tests/ggml.rs
# checks the library's bytes and values against them.
#
#   scripts/ggml-golden.sh              write the fixtures
#   scripts/ggml-golden.sh --verify N   instead compare target/release/libquant.so with ggml on N
#                                       random super-blocks per type (scripts/ggml_verify.c; builds
#                                       the library first); exits 1 on any difference
#
# It compiles scripts/ggml_golden.c against the headers and libggml-base of the llama.cpp build that
# scripts/llama-cpp.sh caches (built first if missing). QUANT_LLAMA_CPP=<folder> uses another folder
# laid out the same way (<folder>/src = llama.cpp's source, <folder>/build = its CMake build).
# The new folder replaces the old one only when every file is written.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.3.36
if [ -n "${QUANT_LLAMA_CPP:-}" ]; then
    root=$QUANT_LLAMA_CPP
else
    scripts/llama-cpp.sh >/dev/null
    root=${QUANT_CACHE:-$HOME/.cache/quant}/llama.cpp-$version
fi
include=$root/src/ggml/include
lib=$root/build/ggml/src/libggml-base.a
[ -f "$include/ggml.h" ] || { echo "ggml-golden: no $include/ggml.h" >&2; exit 1; }
[ -f "$lib" ] || { echo "ggml-golden: no $lib (build llama.cpp with scripts/llama-cpp.sh)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# No contraction into fused multiply-adds: the inputs are the same on every x86-64 compiler.
gcc -O2 -std=c11 -ffp-contract=off -Wall -Wextra -I "$include" -c scripts/ggml_golden.c -o "$work/ggml_golden.o"
# ggml-base uses OpenMP (its importance-matrix tables) and C++.
g++ "$work/ggml_golden.o" "$lib" -fopenmp -lm -lpthread -o "$work/ggml_golden"

if [ "${1:-}" = --verify ]; then
    cargo build --release --lib >&2
    gcc -O2 -std=c11 -ffp-contract=off -Wall -Wextra -I "$include" -I include -c scripts/ggml_verify.c \
        -o "$work/ggml_verify.o"
    g++ "$work/ggml_verify.o" "$lib" target/release/libquant.a -fopenmp -lm -lpthread -ldl \
        -o "$work/ggml_verify"
    "$work/ggml_verify" "${2:?--verify takes a number of blocks}"
    exit
fi

out=tests/data/ggml/golden
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
"$work/ggml_golden" tests/data/minilm "$out.tmp" "$version"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "wrote $out ($(du -sh "$out" | cut -f1)): $(ls "$out" | wc -l) files" >&2
