#!/usr/bin/env bash
# Calibrated GGUF files of the real model against llama.cpp's importance-matrix files: for each type,
# quant's round-to-nearest file (byte for byte llama-quantize's without an imatrix), llama-quantize's
# file with the imatrix of llama-imatrix, quant's file with quant's own imatrix (`quant imatrix`,
# `quant quantize --imatrix`), and quant's GPTQ file (`quant quantize --method gptq`: calibrated
# through the model, records fitted with importance weights), all calibrated on the same text (Hamlet
# and Macbeth, 40 x 512 tokens) and scored by llama-perplexity (-c 512) on held-out text (the first
# 300 KB of Austen's Emma).
#
#   scripts/calibrated-job.sh                    Q4_0 Q4_K_M Q3_K_M Q2_K, 40 chunks of 512 tokens
#   QUANT_TYPES=Q4_0 QUANT_CHUNKS=10 scripts/calibrated-job.sh
#   QUANT_TYPES="Q4_K_M Q3_K_M Q2_K" scripts/calibrated-job.sh
#
# QUANT_TYPES holds llama-quantize file types: single types (Q4_0, Q5_0, Q8_0, ...) or mixes (Q2_K,
# Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, Q6_K), which both tools name alike. In a mix, GPTQ goes onto each
# block linear layer's own type (the mix's K-quant, or its fallback where the rows do not hold whole
# 256-value super-blocks); the other tensors are the round-to-nearest file's.
#
# Installs what it needs like scripts/model-job.sh; outputs go to target/calibrated-job/. Progress on
# stderr, the table on stdout. GPTQ takes minutes per type on two cores (two forward passes of the
# calibration tokens and every layer's Hessian).
set -euo pipefail
cd "$(dirname "$0")/.."
types=${QUANT_TYPES:-"Q4_0 Q4_K_M Q3_K_M Q2_K"}
threads=$(nproc)
source scripts/model-common.sh
model_setup
calib=$inputs/texts/calibration.txt

out=target/calibrated-job
mkdir -p "$out"
# Every name is checked before the slow steps: one quant does not plan, or llama-quantize does not
# know, stops the job here.
lq_types=$("$bin/llama-quantize" --help 2>&1 || true)
for t in $types; do
    "$quant" inspect "$model" --type "$t" >/dev/null || { say "QUANT_TYPES: quant has no type $t"; exit 2; }
    grep -qE "^ *[0-9]+ +or +$t +:" <<<"$lq_types" || { say "QUANT_TYPES: llama-quantize has no type $t"; exit 2; }
done
mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'; }

say "llama-imatrix on the calibration text (40 chunks of 512 tokens)"
t0=$(now)
"$bin/llama-imatrix" -m "$model" -f "$calib" --chunks 40 -c 512 -t "$threads" -o "$out/imatrix.gguf" >"$out/imatrix.log" 2>&1
imatrix_secs=$(secs "$t0" "$(now)")
say "quant imatrix on the same text (40 samples of 512 tokens)"
t0=$(now)
"$quant" imatrix "$model" --calib "$calib" -o "$out/quant-imatrix.gguf" -q
qimatrix_secs=$(secs "$t0" "$(now)")

say "perplexity of the reference (llama-perplexity, $chunks chunks)"
rows=("| reference (shipped Q4_1) | $(mib "$model") | $(ppl_llama "$model") | | | | | |")
for t in $types; do
    say "$t: quant quantize (round-to-nearest)"
    "$quant" quantize "$model" "$out/rtn-$t.gguf" --type "$t" -q
    say "$t: quant quantize --imatrix (quant's imatrix)"
    t0=$(now)
    "$quant" quantize "$model" "$out/qimatrix-$t.gguf" --type "$t" --imatrix "$out/quant-imatrix.gguf" -q
    qim_secs=$(secs "$t0" "$(now)")
    say "$t: quant quantize --method gptq --calib (block by block through the model)"
    t0=$(now)
    "$quant" quantize "$model" "$out/gptq-$t.gguf" --type "$t" --method gptq --calib "$calib" -q
    gptq_secs=$(secs "$t0" "$(now)")
    say "$t: llama-quantize --imatrix"
    t0=$(now)
    "$bin/llama-quantize" --allow-requantize --imatrix "$out/imatrix.gguf" "$model" "$out/imatrix-$t.gguf" "$t" "$threads" \
        >"$out/llama-quantize-$t.log" 2>&1
    imq_secs=$(secs "$t0" "$(now)")
    say "$t: perplexities (llama-perplexity)"
    rows+=("| $t | $(mib "$out/gptq-$t.gguf") / $(mib "$out/imatrix-$t.gguf") | $(ppl_llama "$out/rtn-$t.gguf") | $(ppl_llama "$out/imatrix-$t.gguf") | $(ppl_llama "$out/qimatrix-$t.gguf") | $(ppl_llama "$out/gptq-$t.gguf") | $imatrix_secs + $imq_secs | $qimatrix_secs + $qim_secs / $gptq_secs |")
done

echo "llama-perplexity -c 512 --chunks $chunks on the first 300 KB of Emma; calibration: Hamlet + Macbeth, 40 x 512 tokens; $threads threads"
echo
echo "| type | MiB, quant GPTQ / llama.cpp imatrix | PPL, RTN | PPL, llama.cpp imatrix | PPL, quant imatrix | PPL, quant GPTQ | llama-imatrix + llama-quantize (s) | quant imatrix + quantize / quant GPTQ (s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
