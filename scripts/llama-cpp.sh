#!/usr/bin/env bash
# Builds llama.cpp's CPU tools (llama-perplexity, llama-quantize, llama-imatrix, llama-tokenize) from the
# llama.cpp source vendored in the PyPI source distribution of llama-cpp-python, once, into a cache
# folder that later runs reuse. quant's end-to-end tests and the main job use them as the oracle: the
# engine that loads quant's GGUF files and scores them.
#
#   scripts/llama-cpp.sh          build if missing, then print the folder holding the tools
#
# Cache: $QUANT_CACHE (default ~/.cache/quant)/llama.cpp-<version>. About 7 minutes on 2 cores the first
# time; nothing afterwards. Progress goes to stderr, the folder alone to stdout.
set -euo pipefail
version=0.3.36
cache=${QUANT_CACHE:-$HOME/.cache/quant}
root=$cache/llama.cpp-$version
bin=$root/build/bin
tools=(llama-perplexity llama-quantize llama-imatrix llama-tokenize)

have_all() {
    local t
    for t in "${tools[@]}"; do [ -x "$bin/$t" ] || return 1; done
}

if ! have_all; then
    cd "$(dirname "$0")/.."
    mkdir -p "$cache"
    # One build at a time: a second run (another test script, CI beside a developer) waits for the first
    # and then finds the tools built.
    exec 9>"$root.lock"
    flock 9
fi
if ! have_all; then
    source scripts/apt-need.sh
    apt_need cmake:cmake c++:g++ >&2
    if [ ! -f "$root/src/CMakeLists.txt" ]; then
        echo "   llama.cpp: downloading the llama-cpp-python $version source distribution (pip)" >&2
        dl=$(mktemp -d)
        pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$dl" >&2
        rm -rf "$root.tmp" && mkdir -p "$root.tmp"
        tar xzf "$dl/llama_cpp_python-$version.tar.gz" -C "$root.tmp" --strip-components=3 \
            "llama_cpp_python-$version/vendor/llama.cpp"
        rm -rf "$dl" "$root"
        mkdir -p "$root" && mv "$root.tmp" "$root/src"
    fi
    echo "   llama.cpp: building ${tools[*]} into $bin (about 7 minutes on 2 cores, once)" >&2
    cmake -S "$root/src" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=ON \
        -DBUILD_SHARED_LIBS=OFF >"$root/configure.log" 2>&1 ||
        { cat "$root/configure.log" >&2; exit 1; }
    cmake --build "$root/build" -j "$(nproc)" --target "${tools[@]}" >"$root/build.log" 2>&1 ||
        { tail -50 "$root/build.log" >&2; exit 1; }
    have_all || { echo "llama.cpp: build finished without ${tools[*]}" >&2; exit 1; }
fi
echo "$bin"
