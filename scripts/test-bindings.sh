#!/usr/bin/env bash
# Packaging and bindings tests of quant, on a fresh machine:
#   1. cmake -S . -B target/pkg && cmake --build target/pkg && cmake --install target/pkg --prefix <temp>
#   2. the out-of-tree C consumer (tests/consumer): find_package shared + static, pkg-config plain and
#      --static, exports/soname, QUANT_VERSION_* == quant_version(), examples/c/quantize.c
#   3. the C++17 layer include/quant.hpp: tests/cpp/test_quant_hpp.cpp and examples/cpp/quantize.cpp
#   4. the Go binding: go test in bindings/go (and examples/go)
#   5. the Zig binding: zig build test in bindings/zig (and examples/zig)
# against the installed prefix. Installs what is missing: cmake and pkg-config (apt), Go (Debian's
# golang-go, apt), Zig (PyPI's ziglang, pip; run as `python3 -m ziglang`).
#
# Environment: QUANT_BINDINGS_ONLY="consumer cpp go zig" runs a subset;
#              QUANT_BINDINGS_KEEP=1 keeps the temporary prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export CARGO_TERM_COLOR=never

# The Zig release this binding is written for (Zig changes its language and build API between
# releases; bump deliberately).
ZIG_VERSION=0.17.1

only="${QUANT_BINDINGS_ONLY:-consumer cpp go zig}"
wants() { [[ " $only " == *" $1 "* ]]; }
t_start=$(date +%s)
stamp() { echo "   [$(($(date +%s) - t_start)) s]"; }

# ---- toolchains -------------------------------------------------------------------------------------
source scripts/apt-need.sh
tools=(cmake:cmake pkg-config:pkg-config c++:g++)
if wants go; then tools+=(go:golang-go); fi
apt_need "${tools[@]}"
zig() { python3 -m ziglang "$@"; }
if wants zig; then
    have_zig=$(python3 -m ziglang version 2>/dev/null || true)
    if [ "$have_zig" != "$ZIG_VERSION" ]; then
        echo "== installing ziglang==$ZIG_VERSION (pip; had '${have_zig:-none}')"
        python3 -m pip install -q --disable-pip-version-check "ziglang==$ZIG_VERSION"
    fi
fi

# ---- 1. build and install ---------------------------------------------------------------------------
echo "== build (cargo through CMake: the dist profile) and install"
prefix="$(mktemp -d "${TMPDIR:-/tmp}/quant-prefix.XXXXXX")"
if [ "${QUANT_BINDINGS_KEEP:-0}" = 1 ]; then
    echo "   prefix kept: $prefix"
else
    trap 'rm -rf "$prefix"' EXIT
fi
mkdir -p target
cmake -S . -B target/pkg -DCMAKE_BUILD_TYPE=Release >target/pkg-configure.log 2>&1 ||
    { cat target/pkg-configure.log; exit 1; }
cmake --build target/pkg
cmake --install target/pkg --prefix "$prefix" >/dev/null
echo "   installed into $prefix"
stamp

results=()
record() { results+=("$1: $2"); }

# Every function of the installed quant.h is wrapped by each binding.
echo "== every function of quant.h has a wrapper in quant.hpp, bindings/go and bindings/zig"
coverage=ok
funcs=$(grep -o '\bquant_[a-z0-9_]*(' "$prefix/include/quant.h" | tr -d '(' | sort -u)
for f in $funcs; do
    for src in include/quant.hpp "bindings/go/[a-z]*[a-z].go" bindings/zig/src/quant.zig; do
        # shellcheck disable=SC2086
        if ! grep -qE "\b$f *[(,)]" $(ls $src | grep -v _test.go); then echo "   $f is not wrapped in $src"; coverage=FAILED; fi
    done
done
echo "   $(wc -w <<<"$funcs") functions"
record coverage $coverage

# ---- 2. C consumer ----------------------------------------------------------------------------------
if wants consumer; then
    echo "== C consumer (tests/consumer)"
    if tests/consumer/run.sh "$prefix" target/consumer "$root/examples/c/quantize.c"; then record consumer ok; else record consumer FAILED; fi
    stamp
fi

# ---- 3. C++ -----------------------------------------------------------------------------------------
if wants cpp; then
    echo "== C++17 layer (include/quant.hpp): tests/cpp/test_quant_hpp.cpp, examples/cpp/quantize.cpp"
    mkdir -p target/cpp
    cxx=${CXX:-c++}
    link=(-L"$prefix/lib" -lquant -Wl,-rpath,"$prefix/lib")
    cpp_ok=ok
    { $cxx -std=c++17 -O2 -Wall -Wextra -Wpedantic -Werror -I"$prefix/include" \
        -DQUANT_TEST_DATA_DIR="\"$root/tests/data\"" tests/cpp/test_quant_hpp.cpp "${link[@]}" -o target/cpp/test_quant_hpp &&
        target/cpp/test_quant_hpp; } || cpp_ok=FAILED
    { $cxx -std=c++17 -O2 -Wall -Wextra -Wpedantic -Werror -I"$prefix/include" \
        examples/cpp/quantize.cpp "${link[@]}" -o target/cpp/quantize_example && target/cpp/quantize_example; } || cpp_ok=FAILED
    record cpp $cpp_ok
    stamp
fi

# ---- 4. Go -------------------------------------------------------------------------------------------
if wants go; then
    echo "== Go binding (bindings/go): go test, examples/go"
    go version
    go_ok=ok
    # The binding links through pkg-config; the tests find the shared library with LD_LIBRARY_PATH.
    (
        export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export GOFLAGS="-mod=mod" GOPROXY=off GOTOOLCHAIN=local QUANT_TEST_DATA_DIR="$root/tests/data"
        # A build cache of this run only: Go's cache key ignores the pkg-config --libs output and the
        # contents of quant.h, so a shared cache could link against an older prefix or header.
        export GOCACHE="$prefix/go-cache"
        cd bindings/go &&
            go vet ./... &&
            go test -count=1 ./... &&
            cd ../../examples/go && go run .
    ) || go_ok=FAILED
    record go $go_ok
    stamp
fi

# ---- 5. Zig ------------------------------------------------------------------------------------------
if wants zig; then
    echo "== Zig binding (bindings/zig): zig build test (shared and static), examples/zig"
    echo "   zig $(zig version)"
    zig_ok=ok
    zig_args=(-Dquant-prefix="$prefix" -Ddata-dir="$root/tests/data" --cache-dir "$root/target/zig-cache" --summary all)
    # zig's build runner reports any stderr output of a passing test as a "failed command": the log is
    # shown whole on failure, and only its outcome and the programs' own lines on success.
    zig_step() { # label, zig build arguments...
        local label=$1 log="$root/target/zig-$1.log"
        shift
        if (cd bindings/zig && zig build "$@" "${zig_args[@]}") >"$log" 2>&1; then
            grep -v -E '^(test|example)( success)?$|^ *[+|]|^failed command:|^Build Summary|^$' "$log" || true
            echo "   $label: $(grep -m1 -E '^Build Summary' "$log")"
        else
            cat "$log"
            echo "   $label: FAILED"
            return 1
        fi
    }
    zig_step test-shared test || zig_ok=FAILED
    zig_step test-static test -Dstatic=true || zig_ok=FAILED
    zig_step example example || zig_ok=FAILED
    record zig $zig_ok
    stamp
fi

echo
echo "== summary"
passed=0
failed=0
for r in "${results[@]}"; do
    echo "   $r"
    if [[ "$r" == *FAILED* ]]; then failed=$((failed + 1)); else passed=$((passed + 1)); fi
done
echo "   total $(($(date +%s) - t_start)) s"
echo "bindings: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
