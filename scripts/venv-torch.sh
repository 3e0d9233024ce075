#!/usr/bin/env bash
# A virtualenv holding compressed-tensors' real loader at pinned versions (torch, compressed-tensors,
# and transformers, which compressed-tensors needs), for scripts/check_compressed.py: the tests of
# `quant export-compressed` have it load the folders the tool writes. It also holds bitsandbytes, whose
# CPU backend is the reference of the NF4/FP4 fixtures (scripts/gen_bnb_fixtures.py), and torch is
# the reference of the block-FP8 ones (scripts/gen_blockfp8_fixtures.py).
#
#   scripts/venv-torch.sh         create if missing, then print the virtualenv's python
#
# Cache: $QUANT_CACHE (default ~/.cache/quant)/venv-torch. PyPI's Linux torch wheel pulls NVIDIA's CUDA
# libraries: about 2.5 minutes and 5.6 GB the first time (the checks run on the CPU); --no-cache-dir
# keeps pip from holding a second copy. Progress goes to stderr, the python alone to stdout.
set -euo pipefail
cache=${QUANT_CACHE:-$HOME/.cache/quant}
venv=$cache/venv-torch
pins=(torch==2.15.0 compressed-tensors==0.20.1 transformers==5.25.0 bitsandbytes==0.50.2)

# Every pinned package importable at its version; an interrupted install fails this and is redone.
complete() {
    "$venv/bin/python" - "${pins[@]}" <<'PY' 2>/dev/null
import importlib, importlib.metadata, sys
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    importlib.import_module(name.replace("-", "_"))
    assert importlib.metadata.version(name) == version, pin
PY
}

if ! complete; then
    echo "   venv-torch: pip install ${pins[*]} into $venv (about 2.5 minutes and 5.6 GB, once)" >&2
    mkdir -p "$cache"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --no-cache-dir "${pins[@]}" >&2
    complete || { echo "venv-torch: $venv lacks ${pins[*]} after installing them" >&2; exit 1; }
fi
echo "$venv/bin/python"
