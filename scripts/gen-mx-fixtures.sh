#!/usr/bin/env bash
# Writes tests/data/mx: the MX fixtures with numpy + ml_dtypes (a small pinned virtualenv,
# $QUANT_CACHE/venv-mx), the NVFP4 ones with compressed-tensors (scripts/venv-torch.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${QUANT_CACHE:-$HOME/.cache/quant}
venv=$cache/venv-mx
pins=(numpy==2.4.6 ml_dtypes==0.5.4)
if ! "$venv/bin/python" -c "import numpy, ml_dtypes; assert numpy.__version__ == '2.4.6' and ml_dtypes.__version__ == '0.5.4'" 2>/dev/null; then
    mkdir -p "$cache"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "${pins[@]}" >&2
fi
"$venv/bin/python" "$here/gen_mx_fixtures.py" mx
"$("$here/venv-torch.sh")" "$here/gen_mx_fixtures.py" nvfp4
