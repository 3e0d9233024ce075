#!/usr/bin/env bash
# The hardening CI job (see docs/security.md). From the repository root:
#
#   bash scripts/harden.sh            # everything: roughly 20 minutes from cold on a 2-core machine (its
#                                     # steps' sum; most of it builds faer: instrumented, for Miri,
#                                     # release for valgrind, dev for limits)
#   FUZZ_SECONDS=600 bash scripts/harden.sh fuzz    # one step, longer fuzzing
#
# Steps (each bounded by `timeout`; any failure fails the job, the summary lists every step):
#   setup     nightly toolchain with Miri and rust-src, valgrind, cmake (installed if missing)
#   fuzz      every cargo-fuzz target for FUZZ_SECONDS (default 30) on its committed corpus, two at a
#             time: the library's (fuzz/) and the model tool's file readers (cli/fuzz/); new inputs go
#             to a scratch directory, crashes to <fuzz dir>/artifacts/
#   asan      the C harness built with -fsanitize=address,undefined (shared and static) against the
#             library of the fuzz build (-Zsanitizer=address, with cargo-fuzz's coverage and debug
#             assertions), plus a canary that must be caught inside the library's code (proves the Rust
#             side is instrumented)
#   valgrind  memcheck over every C test, against the shared and the static library (test_algos: the
#             shared only; 0 errors, 0 bytes definitely/indirectly/possibly lost), and
#             helgrind over c_tests/test_threads.c
#   miri      the ffi tests under Miri: tests/ffi_miri.rs and the unit tests of src/ffi/
#   limits    tests/limits.rs (overflowing sizes, out-of-memory under a capped address space)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
source "$ROOT/scripts/apt-need.sh"
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
HOST=x86_64-unknown-linux-gnu
STEPS=${*:-setup fuzz asan valgrind miri limits}
LOG_DIR=${HARDEN_LOG_DIR:-$ROOT/target/harden}
mkdir -p "$LOG_DIR"
export CARGO_TERM_COLOR=never

declare -a SUMMARY=()
FAILED=0

step() { # step NAME TIMEOUT_SECONDS FUNCTION
    local name=$1 limit=$2 fn=$3 start rc
    start=$(date +%s)
    echo "=== harden: $name (limit ${limit}s)"
    timeout --kill-after=30 "$limit" bash -c "set -uo pipefail; source '$ROOT/scripts/harden.sh' --functions; $fn" 2>&1 |
        tee "$LOG_DIR/$name.log"
    rc=${PIPESTATUS[0]}
    local took=$(($(date +%s) - start))
    if [ "$rc" -eq 0 ]; then
        SUMMARY+=("ok    $name (${took}s)")
    else
        [ "$rc" -eq 124 ] && SUMMARY+=("FAIL  $name: timed out after ${limit}s") || SUMMARY+=("FAIL  $name: exit $rc (${took}s)")
        FAILED=1
    fi
}

# ---------------------------------------------------------------------------------------------------
do_setup() {
    apt_need valgrind:valgrind cmake:cmake gcc:gcc g++:g++ || return 1
    if ! rustup toolchain list | grep -q '^nightly'; then
        rustup toolchain install nightly --profile minimal --component miri,rust-src || return 1
    else
        rustup component add --toolchain nightly miri rust-src || return 1
    fi
    cargo +nightly miri setup >/dev/null || return 1
    echo "nightly: $(rustc +nightly --version); $(valgrind --version)"
}

# The fuzz targets are built with cargo-fuzz's instrumentation (ASan; SanitizerCoverage with 8-bit
# counters, a PC table and comparison tracing; `cfg(fuzzing)`), plus debug assertions and overflow
# checks, passed to cargo directly, so that CI need not build cargo-fuzz itself. `cargo +nightly fuzz
# run <target>` runs the same targets (with cargo-fuzz's own flags, which may differ). --target keeps build scripts and proc macros uninstrumented.
FUZZ_RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Zsanitizer=address -Cdebug-assertions -Coverflow-checks"
# The fuzz packages: the library's, and the model tool's (its own workspace, so the library's fuzz
# build does not compile the tool's dependencies).
FUZZ_DIRS="fuzz cli/fuzz"
fuzz_bin_dir() { echo "$ROOT/${1:-fuzz}/target/$HOST/release"; } # fuzz_bin_dir [DIR]
fuzz_build() { # fuzz_build [DIR]: the fuzz package in DIR (default fuzz/)
    (cd "${1:-fuzz}" && RUSTFLAGS="$FUZZ_RUSTFLAGS" cargo +nightly build --release --target "$HOST" --bins)
}

fuzz_one() { # fuzz_one DIR/TARGET: runs it for FUZZ_SECONDS into its own log; prints the log when done
    local dir=${1%/*} t=${1##*/} scratch log rc
    scratch=$(mktemp -d)
    log=$(mktemp)
    # The first directory receives new inputs (scratch); the committed corpus is only read.
    # allocator_may_return_null: a huge allocation fails as it would without ASan (the library then
    # reports OUT_OF_MEMORY) instead of ASan aborting on it.
    (cd "$dir" && ASAN_OPTIONS=allocator_may_return_null=1 "$(fuzz_bin_dir "$dir")/$t" "$scratch" "corpus/$t" \
        -max_total_time="$FUZZ_SECONDS" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$t-" \
        >"$log" 2>&1)
    rc=$?
    echo "--- fuzz $dir/$t for ${FUZZ_SECONDS}s: exit $rc"
    grep -E '^(INFO: seed corpus|#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==|thread .* panicked|SUMMARY|Done)' "$log" |
        tail -n 20
    [ "$rc" -eq 0 ] || echo "FUZZ FAILURE in $dir/$t: see $dir/artifacts/$t-*"
    rm -rf "$scratch" "$log"
    return $rc
}

# two_at_a_time FUNCTION ARG...: FUNCTION ARG for each ARG, two at a time (libFuzzer, memcheck and
# helgrind run a program on one core; the machine has two), in the order given; fails if any failed.
two_at_a_time() {
    local fn=$1 a status=0
    shift
    local -a pids=()
    for a in "$@"; do
        "$fn" "$a" &
        pids+=($!)
        if [ ${#pids[@]} -ge 2 ]; then
            wait "${pids[0]}" || status=1
            pids=("${pids[@]:1}")
        fi
    done
    for a in "${pids[@]}"; do wait "$a" || status=1; done
    return $status
}

do_fuzz() {
    local d t
    local -a targets=()
    for d in $FUZZ_DIRS; do
        fuzz_build "$d" || return 1
        mkdir -p "$d/artifacts"
        for t in "$d"/fuzz_targets/*.rs; do targets+=("$d/$(basename "$t" .rs)"); done
    done
    two_at_a_time fuzz_one "${targets[@]}"
}

do_asan() {
    # The library of the fuzz build (its dependency build of quant also makes the staticlib and the
    # cdylib): ASan-instrumented Rust code, without building faer once more with other flags.
    fuzz_build || return 1
    local lib build=target/c_tests-asan flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
    lib=$(fuzz_bin_dir)/deps
    [ -f "$lib/libquant.a" ] && [ -f "$lib/libquant.so" ] || { echo "no libquant.a/.so in $lib"; return 1; }
    cmake -S c_tests -B "$build" -DQUANT_LIB_DIR="$lib" -DCMAKE_BUILD_TYPE=Debug \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
        -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null || return 1
    cmake --build "$build" -j2 >"$build.log" 2>&1 || { cat "$build.log"; return 1; }
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$build" --output-on-failure || return 1
    # The canary writes past a buffer from inside the library: ASan must catch it in a quant frame.
    gcc -fsanitize=address -Iinclude scripts/asan_canary.c "$lib/libquant.a" -lpthread -ldl -lm -o "$build/asan_canary" || return 1
    local out
    out=$("$build/asan_canary" 2>&1)
    if echo "$out" | grep -q 'heap-buffer-overflow' && echo "$out" | grep -A2 'WRITE of size' | grep -q 'quant7kernels'; then
        echo "asan canary: caught inside the library, as it must be"
    else
        echo "asan canary NOT caught in the library's code:"
        echo "$out" | head -20
        return 1
    fi
}

do_valgrind() {
    cargo build --release || return 1
    local build=target/c_tests-valgrind t status=0
    cmake -S c_tests -B "$build" -DQUANT_LIB_DIR="$ROOT/target/release" >/dev/null || return 1
    cmake --build "$build" -j2 >"$build.log" 2>&1 || { cat "$build.log"; return 1; }
    # Two programs at a time (valgrind runs a program on one core): the step's time halves on 2 cores.
    memcheck_one() {
        local t0=$SECONDS
        if valgrind -q --suppressions=scripts/memcheck.supp --leak-check=full --show-leak-kinds=definite,indirect,possible \
            --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 "$1" >"$1.memcheck.log" 2>&1; then
            echo "memcheck ok: $1 ($((SECONDS - t0)) s)"
        else
            echo "memcheck FAILED: $1"
            cat "$1.memcheck.log"
            return 1
        fi
    }
    # The slowest first (test_algos takes about 100 s under memcheck, the next one 15 s): the other
    # core runs the rest meanwhile. test_algos runs against the shared library only: the static one
    # holds the same compiled code (one rustc invocation makes both), its linkage is checked by the
    # other ten static programs, and a second run took 100 s more of CI's CPU.
    local -a order=("$build"/test_algos_shared)
    for t in "$build"/test_*_shared "$build"/test_*_static; do
        case $t in */test_algos_*) ;; *) order+=("$t") ;; esac
    done
    two_at_a_time memcheck_one "${order[@]}" || status=1
    # QUANT_TEST_KEEP_SETTINGS: the process-wide SIMD level and thread count are relaxed atomics, which
    # helgrind cannot see; under helgrind the threads only read them. helgrind.supp holds the false
    # positives of Rust's std (atomic-based thread start and stack-overflow bookkeeping).
    helgrind_one() {
        local t0=$SECONDS
        if QUANT_TEST_KEEP_SETTINGS=1 valgrind -q --tool=helgrind --suppressions=scripts/helgrind.supp \
            --error-exitcode=99 "$1" >"$1.helgrind.log" 2>&1; then
            echo "helgrind ok: $1 ($((SECONDS - t0)) s)"
        else
            echo "helgrind FAILED: $1"
            cat "$1.helgrind.log"
            return 1
        fi
    }
    two_at_a_time helgrind_one "$build"/test_threads_shared "$build"/test_threads_static || status=1
    return $status
}

do_miri() {
    cargo +nightly miri test --test ffi_miri --test thread_exit || return 1
    cargo +nightly miri test --lib ffi:: || return 1
}

do_limits() {
    cargo test --test limits
}

if [ "${1:-}" = "--functions" ]; then
    return 0 2>/dev/null || exit 0
fi

for s in $STEPS; do
    case $s in
    setup) step setup 900 do_setup ;;
    fuzz) step fuzz $((FUZZ_SECONDS * 6 + 2100)) do_fuzz ;; # the instrumented builds of faer (library, tool) take minutes
    asan) step asan 900 do_asan ;;
    valgrind) step valgrind 900 do_valgrind ;;
    miri) step miri 1500 do_miri ;;
    limits) step limits 600 do_limits ;;
    *) echo "unknown step $s"; exit 2 ;;
    esac
done

echo "=== harden summary"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
