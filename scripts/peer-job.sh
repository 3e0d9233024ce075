#!/usr/bin/env bash
# Whole-model calibrated quantization of SmolLM2-135M on this machine, timed against its peers in the
# same run, on the same calibration tokens and thread count:
# - llama.cpp: llama-imatrix, then llama-quantize --imatrix (Q4_0);
# - quant: `quant quantize --method gptq` and `--method awq` (Q4_0 GGUF files), and
#   `quant export-gptq --calib` (a GPTQ 4-bit checkpoint, groups of 64) where the tool has it;
# - the Python peer: llm-compressor's GPTQ (4-bit, groups of 64) on CPU torch (scripts/peer_gptq.py), on the
#   f32 Hugging Face folder of the same weights (`quant export-hf`).
# Prints a markdown table of the times (and, where the tool reads the output, its perplexity by
# llama-perplexity or `quant eval` on $QUANT_CHUNKS chunks of the held-out text). A benchmark:
# nothing is asserted.
#
#   scripts/peer-job.sh                                   16 samples of 256 tokens, 4 chunks
#   QUANT_SAMPLES=40 QUANT_SEQ_LEN=512 QUANT_CHUNKS=40 scripts/peer-job.sh
#
# The peer's virtualenv ($QUANT_CACHE/venv-peer: torch 2.14.0 and llmcompressor 0.14.0.1, which pins
# torch <= 2.14, transformers <= 5.17 and compressed-tensors 0.19.0, so it cannot share venv-torch)
# takes about 6 GB and several minutes to install the first time (PyPI's torch wheel pulls NVIDIA's
# CUDA libraries; everything runs on the CPU). Outputs go to target/peer-job/.
set -euo pipefail
cd "$(dirname "$0")/.."
export QUANT_CHUNKS=${QUANT_CHUNKS:-4}
samples=${QUANT_SAMPLES:-16}
seq_len=${QUANT_SEQ_LEN:-256}
# Columns per group of the 4-bit checkpoints: 128, the usual choice, does not divide SmolLM2's width
# of 576; 64 does (and its 1536).
group=${QUANT_GROUP:-64}
threads=$(nproc)
source scripts/model-common.sh
model_setup
calib=$inputs/texts/calibration.txt
out=target/peer-job
rm -rf "$out" && mkdir -p "$out"

peer=$cache/venv-peer
pins=(torch==2.14.0 llmcompressor==0.14.0.1)
if ! "$peer/bin/python" -c 'import importlib.metadata as m; assert m.version("llmcompressor") == "0.14.0.1" and m.version("torch") == "2.14.0"' 2>/dev/null; then
    say "venv-peer: pip install ${pins[*]} into $peer (about 6 GB, once)"
    [ -x "$peer/bin/python" ] || python3 -m venv "$peer"
    "$peer/bin/pip" install --quiet --no-cache-dir "${pins[@]}" >&2
fi

rows=()
# timed LOG CMD...: runs CMD with its output in LOG, prints its wall-clock seconds.
timed() {
    local log=$1 t0
    shift
    t0=$(now)
    "$@" >"$log" 2>&1 || { say "failed: $* (see $log)"; tail -5 "$log" >&2; exit 1; }
    secs "$t0" "$(now)"
}

say "llama-imatrix ($samples chunks of $seq_len tokens) + llama-quantize --imatrix Q4_0"
s1=$(timed "$out/imatrix.log" "$bin/llama-imatrix" -m "$model" -f "$calib" --chunks "$samples" -c "$seq_len" \
    -t "$threads" -o "$out/imatrix.gguf")
s2=$(timed "$out/llama-quantize.log" "$bin/llama-quantize" --allow-requantize --imatrix "$out/imatrix.gguf" "$model" \
    "$out/llama-imatrix-Q4_0.gguf" Q4_0 "$threads")
rows+=("| llama.cpp: llama-imatrix + llama-quantize --imatrix | Q4_0 GGUF | $s1 + $s2 | $(ppl_llama "$out/llama-imatrix-Q4_0.gguf") |")

for method in gptq awq; do
    say "quant quantize --method $method --type Q4_0"
    s=$(timed "$out/quant-$method.log" "$quant" quantize "$model" "$out/quant-$method-Q4_0.gguf" --type Q4_0 \
        --method "$method" --calib "$calib" --samples "$samples" --seq-len "$seq_len" --threads "$threads")
    rows+=("| quant quantize --method $method | Q4_0 GGUF | $s | $(ppl_llama "$out/quant-$method-Q4_0.gguf") |")
done

if "$quant" export-gptq --help | grep -q -- --calib; then
    say "quant export-gptq --calib (4-bit, g$group)"
    s=$(timed "$out/quant-export-gptq.log" "$quant" export-gptq "$model" "$out/quant-gptq-g$group" --calib "$calib" \
        --samples "$samples" --seq-len "$seq_len" --group-size "$group")
    ppl=$(ppl_folder "$out/quant-gptq-g$group" || echo n/a)
    rows+=("| quant export-gptq --calib | GPTQ 4-bit g$group (asymmetric) | $s | $ppl (quant eval) |")
    say "quant export-awq --calib (4-bit, g$group)"
    s=$(timed "$out/quant-export-awq.log" "$quant" export-awq "$model" "$out/quant-awq-g$group" --calib "$calib" \
        --samples "$samples" --seq-len "$seq_len" --group-size "$group")
    rows+=("| quant export-awq --calib | AWQ GEMM 4-bit g$group (asymmetric) | $s | $(ppl_folder "$out/quant-awq-g$group" || echo n/a) (quant eval) |")
fi

say "the f32 Hugging Face folder for the peer (quant export-hf)"
"$quant" export-hf "$model" "$out/hf-f32" --dtype f32 >/dev/null 2>&1
say "llm-compressor GPTQ, 4-bit g$group ($samples x $seq_len tokens, $threads threads)"
"$peer/bin/python" scripts/peer_gptq.py "$out/hf-f32" "$calib" "$out/peer-w4a16" "$samples" "$seq_len" "$threads" "$group" \
    >"$out/peer.times" 2>"$out/peer.log" || { say "llm-compressor failed (see $out/peer.log)"; tail -5 "$out/peer.log" >&2; exit 1; }
# llm-compressor logs to stdout too: the times are the script's last line.
read -r load_s oneshot_s save_s < <(tail -1 "$out/peer.times")
ppl=$(ppl_folder "$out/peer-w4a16" || echo n/a)
rows+=("| llm-compressor 0.14.0.1 oneshot GPTQModifier, W4A16_ASYM recipe at g$group (torch 2.14.0, CPU) | compressed-tensors 4-bit g$group (asymmetric) | $oneshot_s (+ load $load_s, save $save_s) | $ppl (quant eval) |")

echo "Calibration: $samples x $seq_len tokens of $(basename "$calib"); $threads threads; perplexity on $QUANT_CHUNKS chunks of 512 tokens of $(basename "$text")"
echo
echo "| tool | output | seconds | perplexity |"
echo "|---|---|---:|---:|"
printf '%s\n' "${rows[@]}"
