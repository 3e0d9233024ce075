#!/usr/bin/env bash
# Runs every test of quant: the Rust tests, the C harness (c_tests/) built against the shared and the
# static library under ctest, the install and the C++/Go/Zig bindings, then the C harness under valgrind
# (memcheck, and helgrind on the threads test).
# Works on a fresh machine: what is missing is installed, and each installation is announced:
#   apt-get: cmake, valgrind, pkg-config, g++, golang-go; pip: ziglang (scripts/test-bindings.sh).
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
