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
#   QUANT_AWQ_TYPES="Q4_0" ...           likewise by AWQ (quantize --method awq; default Q4_0)
#   QUANT_W8A8=0 ...                     skip the W8A8 rows: Q8_0 by round-to-nearest and by
#                                        SmoothQuant (quantize --method smoothquant), scored with INT8
#                                        per-token activations (quant eval --act-int8)
#   QUANT_FOLDERS=0 ...                  skip the checkpoint rows: 4-bit GPTQ and AWQ folders (groups of
#                                        64) by round-to-nearest and calibrated (export-gptq/export-awq
#                                        --calib), scored by quant eval
#   QUANT_SAMPLES=16 QUANT_SEQ_LEN=256   calibration samples and their length (default 40 x 512)
#
# Installs what it needs on a fresh machine (scripts/inputs.sh, scripts/llama-cpp.sh, gguf-py in a
# virtualenv), builds the tool in release; outputs go to target/model-job/. Progress on stderr, the
# table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
types=${QUANT_TYPES:-"Q8_0 Q6_K Q5_K_M Q5_1 Q5_0 Q4_1 Q4_K_M Q4_0 Q3_K_M Q2_K"}
gptq_types=${QUANT_GPTQ_TYPES-"Q4_0 Q4_K_M"}
awq_types=${QUANT_AWQ_TYPES-"Q4_0"}
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

calib=$inputs/texts/calibration.txt
cal=(--calib "$calib" --samples "${QUANT_SAMPLES:-40}" --seq-len "${QUANT_SEQ_LEN:-512}")
mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# calibrated METHOD LABEL TYPE: a row for `quant quantize --method METHOD` of TYPE, calibrated through
# the model on the calibration text.
calibrated() {
    local method=$1 label=$2 t=$3 f="$out/$1-$3.gguf" t0 t1
    say "$t $label: quant quantize --method $method --calib (block by block through the model)"
    t0=$(now)
    "$quant" quantize "$out/ref-f32.gguf" "$f" --type "$t" --method "$method" "${cal[@]}" -q
    t1=$(now)
    say "$t $label: perplexity (quant eval, llama-perplexity)"
    rows+=("| $t, $label | $(mib "$f") | $(bpw "$f") | $(secs "$t0" "$t1") | | $(ppl_quant "$f") | $(ppl_llama "$f") | | no: calibrated |")
}
for t in $gptq_types; do calibrated gptq GPTQ "$t"; done
for t in $awq_types; do calibrated awq AWQ "$t"; done

# W8A8: Q8_0 weights with INT8 per-token activations, as quant eval --act-int8 runs them.
w8a8=()
if [ "${QUANT_W8A8:-1}" != 0 ]; then
    [ -f "$out/quant-Q8_0.gguf" ] || "$quant" quantize "$out/ref-f32.gguf" "$out/quant-Q8_0.gguf" --type Q8_0 -q
    say "Q8_0 SmoothQuant: quant quantize --method smoothquant --calib"
    t0=$(now)
    "$quant" quantize "$out/ref-f32.gguf" "$out/smoothquant-Q8_0.gguf" --type Q8_0 --method smoothquant "${cal[@]}" -q
    t1=$(now)
    say "W8A8 perplexities (quant eval --act-int8)"
    w8a8+=("| Q8_0, round-to-nearest | $(ppl_quant "$out/quant-Q8_0.gguf") | $(act_int8 "$out/quant-Q8_0.gguf") | |")
    w8a8+=("| Q8_0, SmoothQuant (alpha 0.5) | $(ppl_quant "$out/smoothquant-Q8_0.gguf") | $(act_int8 "$out/smoothquant-Q8_0.gguf") | $(secs "$t0" "$t1") |")
fi

# Checkpoint folders (groups of 64: 128 does not divide SmolLM2's width of 576), scored by quant eval
# with the source's tokenizer.
folders=()
if [ "${QUANT_FOLDERS:-1}" != 0 ]; then
    for kind in gptq awq; do
        for how in rtn calibrated; do
            dir="$out/$kind-g64-$how"
            rm -rf "$dir"
            extra=()
            [ "$how" = calibrated ] && extra=("${cal[@]}" -q)
            say "export-$kind --group-size 64 ($how)"
            t0=$(now)
            "$quant" "export-$kind" "$model" "$dir" --group-size 64 "${extra[@]}" >"$out/export-$kind-$how.log" 2>&1
            t1=$(now)
            mibs=$(du -sm --apparent-size "$dir" | cut -f1)
            folders+=("| $kind, 4-bit g64, $how | $mibs | $(secs "$t0" "$t1") | $(ppl_folder "$dir") |")
        done
    done
fi

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
if [ ${#w8a8[@]} -gt 0 ]; then
    echo
    echo "| W8A8 | PPL quant eval | PPL, INT8 per-token activations (quant eval --act-int8) | quant quantize (s) |"
    echo "|---|---:|---:|---:|"
    printf '%s\n' "${w8a8[@]}"
fi
if [ ${#folders[@]} -gt 0 ]; then
    echo
    echo "| checkpoint folder | MiB | export (s) | PPL quant eval |"
    echo "|---|---:|---:|---:|"
    printf '%s\n' "${folders[@]}"
fi
