# Sourced by scripts/model-job.sh and scripts/bench-model.sh (from the repository root): what both need
# to run the model tool beside llama.cpp's tools on the real model.
#
#   model_setup        installs the inputs (scripts/inputs.sh), llama.cpp's tools (scripts/llama-cpp.sh)
#                      and gguf-py (a virtualenv), builds the tool in release, and sets
#                      inputs, bin, venv, quant, model (the shipped Q4_1 file), text (held-out text)
#   say MSG            progress on stderr
#   now / secs A B     wall-clock time, and B - A in seconds with two decimals
#   ppl_quant FILE [THREADS]   quant eval's final perplexity ($chunks chunks of 512 tokens)
#   ppl_llama FILE [THREADS]   llama-perplexity's, on the same text, context and chunks
#   eval_quant FILE THREADS    "PPL TOKENS/S": quant eval, its own forward-pass rate (--json)
#   eval_llama FILE THREADS    "PPL TOKENS/S": llama-perplexity, the rate of its first pass
#   act_int8 FILE              quant eval's perplexity with INT8 per-token activations (--act-int8)
#   ppl_folder DIR             quant eval's perplexity of a checkpoint folder (source GGUF's tokenizer)
#
# Thread counts default to all cores; quant eval's matmuls run on rayon, so RAYON_NUM_THREADS sets them.
# The array `wrap`, when set, is a command the eval helpers run the tools under (scripts/bench-model.sh
# sets it to scripts/peak-memory.py).
cache=${QUANT_CACHE:-$HOME/.cache/quant}
chunks=${QUANT_CHUNKS:-40}

say() { echo "== $*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

model_setup() {
    say "inputs (model, texts) and llama.cpp's tools"
    inputs=$(scripts/inputs.sh)
    bin=$(scripts/llama-cpp.sh)
    venv=$cache/venv-gguf
    if ! "$venv/bin/python" -c 'import gguf, numpy' 2>/dev/null; then
        say "gguf-py: pip install gguf into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet gguf >&2
    fi
    say "building the model tool (cargo build --release -p quant-cli)"
    cargo build --release -p quant-cli >&2 2>/dev/null || cargo build --release -p quant-cli >&2
    quant=$PWD/target/release/quant
    model=$inputs/SmolLM2-135M-Instruct.Q4_1.gguf
    text=$inputs/texts/eval.txt
}

eval_quant() {
    RAYON_NUM_THREADS=${2:-$(nproc)} ${wrap[@]+"${wrap[@]}"} "$quant" eval "$1" --text "$text" --ctx 512 --chunks "$chunks" --json -q |
        python3 -c 'import json, sys; j = json.load(sys.stdin); print("%.4f %.1f" % (j["ppl"], j["tokens_per_sec"]))'
}
eval_llama() {
    # llama-perplexity times its first pass ("T seconds per pass"), a batch of n_seq chunks of 512
    # tokens; its llama_perf prompt-eval counters are not kept by this tool.
    ${wrap[@]+"${wrap[@]}"} "$bin/llama-perplexity" -m "$1" -f "$text" -c 512 --chunks "$chunks" -t "${2:-$(nproc)}" 2>&1 | awk '
        /Final estimate: PPL =/ { sub(/.*PPL = /, ""); ppl = $1 }
        /n_seq=/ { sub(/.*n_seq=/, ""); n_seq = $1 + 0 }
        /seconds per pass/ { sub(/ seconds per pass.*/, ""); secs = $NF }
        END { if (ppl == "" || secs == "" || n_seq == "") exit 1; printf "%s %.1f\n", ppl, 512 * n_seq / secs }'
}
ppl_quant() { eval_quant "$1" "${2:-}" | cut -d' ' -f1; }
# act_int8 FILE: quant eval's perplexity with INT8 per-token activations (a W8A8 engine).
act_int8() {
    "$quant" eval "$1" --text "$text" --ctx 512 --chunks "$chunks" --act-int8 --json -q |
        python3 -c 'import json, sys; print("%.4f" % json.load(sys.stdin)["ppl"])'
}
# ppl_folder DIR: quant eval's perplexity of a checkpoint folder, the source GGUF's tokenizer reading
# the text (as llama.cpp tokenizes it).
ppl_folder() {
    "$quant" eval "$1" --tokenizer "$model" --text "$text" --ctx 512 --chunks "$chunks" --json -q |
        python3 -c 'import json, sys; print("%.4f" % json.load(sys.stdin)["ppl"])'
}
ppl_llama() { eval_llama "$1" "${2:-}" | cut -d' ' -f1; }
