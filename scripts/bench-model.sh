#!/usr/bin/env bash
# Scale and cost of the model tool, each figure beside llama.cpp's in the same run: quantize time
# (`quant quantize` against `llama-quantize`, same input file, output type and thread count), peak
# memory of both (anonymous and file-backed separately, scripts/peak-memory.py), and forward-pass
# speed (`quant eval` against `llama-perplexity`, same model, text, context of 512 and threads).
# Prints the medians of the runs and their ratios as markdown tables. A benchmark: nothing is asserted.
#
#   scripts/bench-model.sh                          3 runs on 1 thread and on every core
#   QUANT_BENCH_RUNS=5 QUANT_BENCH_THREADS="2" ...  runs and thread counts
#   QUANT_CHUNKS=10 ...                             chunks of 512 tokens per eval (default 4)
#
# Quantize cases: the f32 reference (the shipped Q4_1 weights dequantized, as in scripts/model-job.sh)
# to Q8_0, Q4_0 and Q4_K_M, and the shipped Q4_1 file itself to Q8_0 and Q4_K_M (llama-quantize with
# --allow-requantize). Inputs stay in the page cache between runs (both tools read warm files).
# Outputs and the raw figures (results.txt) go to target/bench-model/.
set -euo pipefail
cd "$(dirname "$0")/.."
export QUANT_CHUNKS=${QUANT_CHUNKS:-4}
runs=${QUANT_BENCH_RUNS:-3}
thread_counts=${QUANT_BENCH_THREADS:-$( ([ "$(nproc)" -gt 1 ] && echo "1 $(nproc)") || echo 1)}
source scripts/model-common.sh
model_setup

out=target/bench-model
mkdir -p "$out"
ref=$out/ref-f32.gguf
results=$out/results.txt
: >"$results"
fig=$out/figures.txt
wrap=(scripts/peak-memory.py --out "$fig" --)

say "the f32 reference: the shipped Q4_1 file dequantized (quant quantize --type F32)"
"$quant" quantize "$model" "$ref" --type F32 -q

# record KIND CASE THREADS TOOL [KEY=VALUE...]: one line of results, then the figures peak-memory.py
# wrote for the command just run.
record() { echo "$* $(cat "$fig")" >>"$results"; }

cases=("$ref Q8_0" "$ref Q4_0" "$ref Q4_K_M" "$model Q8_0" "$model Q4_K_M")
for run in $(seq "$runs"); do
    for t in $thread_counts; do
        for c in "${cases[@]}"; do
            read -r input type <<<"$c"
            name="$(basename "$input")->$type"
            say "run $run/$runs, $t thread(s): $(basename "$input") -> $type (quant quantize, llama-quantize)"
            "${wrap[@]}" "$quant" quantize "$input" "$out/quant.gguf" --type "$type" --threads "$t" -q
            record quantize "$name" "$t" quant
            "${wrap[@]}" "$bin/llama-quantize" --allow-requantize "$input" "$out/llama.gguf" "$type" "$t" \
                >"$out/llama-quantize.log" 2>&1
            record quantize "$name" "$t" llama
        done
        say "run $run/$runs, $t thread(s): $chunks chunks of 512 tokens of the f32 reference (quant eval, llama-perplexity)"
        r=$(eval_quant "$ref" "$t")
        record eval f32 "$t" quant "ppl=${r% *} tok_s=${r#* }"
        r=$(eval_llama "$ref" "$t")
        record eval f32 "$t" llama "ppl=${r% *} tok_s=${r#* }"
    done
done
rm -f "$out/quant.gguf" "$out/llama.gguf"

say "tensor sizes (gguf-py)"
sizes=$("$venv/bin/python" - "$ref" "$model" <<'EOF'
import os, sys, gguf
ref, shipped = sys.argv[1:3]
r = gguf.GGUFReader(ref)
big = max(r.tensors, key=lambda t: int(t.n_elements))
n = sum(int(t.n_elements) for t in r.tensors)
mib = lambda b: b / 1048576
print("largest tensor: %s %s, %.1f M values, %.1f MiB in f32; model: %.1f M values, %.1f MiB in f32 (%s: %.1f MiB)"
      % (big.name, "x".join(str(int(d)) for d in big.shape), int(big.n_elements) / 1e6,
         mib(4 * int(big.n_elements)), n / 1e6, mib(os.path.getsize(ref)), os.path.basename(shipped),
         mib(os.path.getsize(shipped))))
EOF
)

echo
echo "SmolLM2-135M-Instruct; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;"
echo "medians of $runs runs; $sizes."
python3 - "$results" <<'EOF'
import statistics, sys
from collections import defaultdict

rows = defaultdict(lambda: defaultdict(list))
order = []
for line in open(sys.argv[1]):
    words = line.split()
    kind, what, threads, tool = words[:4]
    key = (kind, what, int(threads))
    if key not in order:
        order.append(key)
    for kv in words[4:]:
        k, v = kv.split("=")
        rows[key][tool + "." + k].append(float(v))
med = lambda key, name: statistics.median(rows[key][name])

print()
print("Quantize: wall time and CPU time (user + system) of the whole command; peak memory: RssAnon (own")
print("memory) and RssFile (mapped file pages) sampled every 5 ms, VmHWM (total resident peak). Ratios:")
print("llama-quantize's time over quant's (above 1: quant is faster).")
print()
print("| input -> type | threads | wall (s) quant / llama | ratio | CPU (s) quant / llama | ratio | anon MiB quant / llama | file MiB quant / llama | VmHWM MiB quant / llama |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in order:
    if key[0] != "quantize":
        continue
    m = lambda n: med(key, n)
    print("| %s | %d | %.2f / %.2f | %.2f | %.2f / %.2f | %.2f | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f |" % (
        key[1].replace("->", " -> "),
        key[2], m("quant.wall_s"), m("llama.wall_s"), m("llama.wall_s") / m("quant.wall_s"),
        m("quant.cpu_s"), m("llama.cpu_s"), m("llama.cpu_s") / m("quant.cpu_s"),
        m("quant.anon_mib"), m("llama.anon_mib"), m("quant.file_mib"), m("llama.file_mib"),
        m("quant.hwm_mib"), m("llama.hwm_mib")))

print()
print("Eval of the f32 reference (context 512): tokens/s of the scoring passes as each tool times them")
print("(quant eval's --json tokens_per_sec over every chunk; llama-perplexity's first pass, a batch of")
print("up to 4 chunks), and the whole command's time (loading, tokenizing, dequantizing included).")
print("Ratio: quant's rate over llama-perplexity's.")
print()
print("| threads | quant eval tokens/s | llama-perplexity tokens/s | speed ratio | whole command (s) quant / llama | anon MiB quant / llama | PPL quant / llama |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for key in order:
    if key[0] != "eval":
        continue
    m = lambda n: med(key, n)
    print("| %d | %.0f | %.0f | %.2f | %.2f / %.2f | %.0f / %.0f | %.4f / %.4f |" % (
        key[2], m("quant.tok_s"), m("llama.tok_s"), m("quant.tok_s") / m("llama.tok_s"),
        m("quant.wall_s"), m("llama.wall_s"), m("quant.anon_mib"), m("llama.anon_mib"),
        m("quant.ppl"), m("llama.ppl")))
EOF
