#!/usr/bin/env bash
# Runs the model tool's eval tests (tokenizer and perplexity against llama.cpp) on the real inputs:
# fetches them and builds llama.cpp's tools if needed (both cached), then sets the variables that
# cli/tests/eval.rs reads. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
inputs=$(scripts/inputs.sh)
export QUANT_MODEL=$inputs/SmolLM2-135M-Instruct.Q4_1.gguf
export QUANT_TEXTS=$inputs
export QUANT_LLAMA_BIN=$(scripts/llama-cpp.sh)
cargo test --release -p quant-cli --test eval "$@" -- --nocapture --test-threads 1
