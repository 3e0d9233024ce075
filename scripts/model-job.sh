#!/usr/bin/env bash
# The main job: the model tool on a real model. Quantizes SmolLM2-135M-Instruct into each GGUF type with
# `quant quantize`, and with llama.cpp's `llama-quantize` beside it, then scores every file on held-out
# text (the first 300 KB of Austen's Emma) with the tool's own forward pass (`quant eval`) and with
# llama.cpp's `llama-perplexity`, and prints one table: type, size, bits per weight, time, perplexity.
#
#   scripts/model-job.sh                 every type below, 40 chunks of 512 tokens
#   QUANT_CHUNKS=8 scripts/model-job.sh  a quicker, noisier run
#   QUANT_TYPES="Q8_0 Q4_0" ...          a subset
#   QUANT_GPTQ_TYPES="Q4_0 Q5_0" ...     the types also written by GPTQ calibrated through the model
#                                        (quantize --method gptq, 40 x 512 tokens of Hamlet + Macbeth;
#                                        default Q4_0 Q4_K_M; "" for none)
#
# Installs what it needs on a fresh machine (scripts/inputs.sh, scripts/llama-cpp.sh, gguf-py in a
# virtualenv), builds the tool in release; outputs go to target/model-job/. Progress on stderr, the
# table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
types=${QUANT_TYPES:-"Q8_0 Q6_K Q5_K_M Q5_1 Q5_0 Q4_1 Q4_K_M Q4_0 Q3_K_M Q2_K"}
gptq_types=${QUANT_GPTQ_TYPES-"Q4_0 Q4_K_M"}
threads=$(nproc)
source scripts/model-common.sh
model_setup

out=target/model-job
mkdir -p "$out"

# Bits per weight of the tensors (metadata and tokenizer left out), and whether two files hold the same
# tensor bytes.
bpw() { "$venv/bin/python" - "$1" <<'EOF'
import sys, gguf
r = gguf.GGUFReader(sys.argv[1])
print("%.3f" % (8 * sum(int(t.n_bytes) for t in r.tensors) / sum(int(t.n_elements) for t in r.tensors)))
EOF
}
same_bytes() { "$venv/bin/python" - "$1" "$2" <<'EOF'
import sys, gguf
a, b = (gguf.GGUFReader(p) for p in sys.argv[1:3])
ta = {t.name: t for t in a.tensors}
diff = [t.name for t in b.tensors if t.name not in ta or bytes(ta[t.name].data.tobytes()) != bytes(t.data.tobytes())]
print("yes" if not diff and len(ta) == len(b.tensors) else "%d of %d differ" % (len(diff), len(b.tensors)))
EOF
}
say "the f32 reference: the shipped Q4_1 file dequantized (quant quantize --type F32)"
"$quant" quantize "$model" "$out/ref-f32.gguf" --type F32 -q
say "perplexity of the reference ($chunks chunks of 512 tokens; quant eval, then llama-perplexity)"
t0=$(now); ref_q=$(ppl_quant "$out/ref-f32.gguf"); t1=$(now)
ref_l=$(ppl_llama "$out/ref-f32.gguf"); t2=$(now)
# Forward-pass speed on the f32 reference, whole commands (loading and tokenizing included).
tps() { awk -v n="$((chunks * 512))" -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", n / (b - a) }'; }
speed="forward pass of the f32 reference: quant eval $(tps "$t0" "$t1") tokens/s, llama-perplexity $(tps "$t1" "$t2") tokens/s"

rows=()
for t in $types; do
    say "$t: quant quantize"
    t0=$(now); "$quant" quantize "$out/ref-f32.gguf" "$out/quant-$t.gguf" --type "$t" -q; t1=$(now)
    say "$t: llama-quantize"
    "$bin/llama-quantize" "$out/ref-f32.gguf" "$out/llama-$t.gguf" "$t" "$threads" >"$out/llama-quantize-$t.log" 2>&1
    t2=$(now)
    say "$t: perplexity of quant's file (quant eval, llama-perplexity) and of llama-quantize's (llama-perplexity)"
    pq=$(ppl_quant "$out/quant-$t.gguf")
    pl=$(ppl_llama "$out/quant-$t.gguf")
    pll=$(ppl_llama "$out/llama-$t.gguf")
    size=$(awk -v b="$(stat -c %s "$out/quant-$t.gguf")" 'BEGIN { printf "%.1f", b / 1048576 }')
    rows+=("| $t | $size | $(bpw "$out/quant-$t.gguf") | $(secs "$t0" "$t1") | $(secs "$t1" "$t2") | $pq | $pl | $pll | $(same_bytes "$out/quant-$t.gguf" "$out/llama-$t.gguf") |")
done

for t in $gptq_types; do
    say "$t GPTQ: quant quantize --method gptq --calib (block by block through the model)"
    t0=$(now)
    "$quant" quantize "$out/ref-f32.gguf" "$out/gptq-$t.gguf" --type "$t" --method gptq --calib "$inputs/texts/calibration.txt" -q
    t1=$(now)
    say "$t GPTQ: perplexity (quant eval, llama-perplexity)"
    pq=$(ppl_quant "$out/gptq-$t.gguf")
    pl=$(ppl_llama "$out/gptq-$t.gguf")
    size=$(awk -v b="$(stat -c %s "$out/gptq-$t.gguf")" 'BEGIN { printf "%.1f", b / 1048576 }')
    rows+=("| $t, GPTQ | $size | $(bpw "$out/gptq-$t.gguf") | $(secs "$t0" "$t1") | | $pq | $pl | | no: codes chosen by GPTQ |")
done

size=$(awk -v b="$(stat -c %s "$out/ref-f32.gguf")" 'BEGIN { printf "%.1f", b / 1048576 }')
echo
echo "SmolLM2-135M-Instruct; perplexity on the first 300 KB of Emma, $chunks chunks of 512 tokens;"
echo "$(nproc) threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
echo
echo "| type | file (MiB) | bits/weight | quant quantize (s) | llama-quantize (s) | PPL quant eval | PPL llama-perplexity | PPL of llama-quantize's file | same tensor bytes as llama-quantize |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
echo "| F32 reference | $size | $(bpw "$out/ref-f32.gguf") | | | $ref_q | $ref_l | | |"
printf '%s\n' "${rows[@]}"
echo
echo "$speed (whole commands)."
