#!/usr/bin/env bash
# Runs the NEON (aarch64) kernel bodies under user-mode emulation (qemu-aarch64) on an x86-64 Debian
# machine, against the scalar references: the tests that cover every body of src/kernels/neon.rs, then
# the C harness's programs against the aarch64 static library. From the repository root:
#
#   bash scripts/test-neon.sh           # the default subset: about 5 minutes from a cold target
#                                       # directory on a quiet 2-core machine (3 of them building), 2
#                                       # minutes warm
#   bash scripts/test-neon.sh --full    # also the slow tests that use NEON only at the default level
#                                       # (about 30 more minutes)
#
# Installs what it needs when it is missing (apt: qemu-user, gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross; rustup: the aarch64-unknown-linux-gnu target). The cross linker is set in
# this script's environment only (CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_*), the test programs run
# under qemu-aarch64 two at a time, and the build goes to its own target directory (NEON_TARGET_DIR, default target/aarch64): the host build is
# not touched. A cold build takes about 3 minutes (faer for aarch64; see the dev profile in Cargo.toml).
#
# What runs, and why (every test below that quantizes runs on NEON: it is the default level on aarch64,
# and tests/simd_paths.rs checks that `available_levels()` is [Scalar, Neon] and that
# `quant_simd_level()` reports NEON):
#   --lib                 the unit tests (src/kernels/*: level names and scoping, the fixed cases of
#                         each kernel), without the five slow factorization tests (LIB_SLOW below;
#                         --full runs them)
#   --test simd_paths     every level the CPU has (scalar and NEON here) against the scalar references,
#                         bit for bit: absmax, INT8, INT4 min/max, quantize and dequantize, FP8 encode
#                         and decode (plain and scaled), BF16 both ways; ties, clamps, edge bit
#                         patterns, threads. This is the test that covers every NEON body.
#   --test quantize_one_pass  the quantizers against their references (their per-row checks at
#                         the NEON level; zero-filled outputs on a value error), every level,
#                         several thread counts
#   --test int_kernels    INT8/k-bit fast paths (NEON) against the references, property tests
#   --test casts          the casts (NEON for BF16 and FP8) against numpy/ml_dtypes golden fixtures,
#                         and the fast paths against the references on one f32 pattern in 199 (the
#                         host's default is one in 61; --full keeps it)
#   --test ffi_miri, ffi_exports, weight, types    the C ABI and the weight API (fast)
#   --test thread_exit    in place (QUANT_TLS_CHILD=1): the test re-executes itself in a child process,
#                         which needs binfmt_misc for aarch64, absent in containers
#   c_tests/test_*.c      cross-compiled against the aarch64 libquant.a and run under qemu (test_simd.c
#                         checks NEON is the default and runs every level against scalar)
# With --full also (measured alone under qemu on a 2-core machine): ggml (45 s), formats (70 s),
# real_data_rtn (85 s), algos_calib (3 s), algos_smoothquant (70 s), algos_weight (130 s), header,
# algos_gptq (430 s) and algos_awq (680 s); they reach the NEON bodies only through the default level.
# Never run here: algos_speed (a timing probe, ignored by default; emulation says nothing about speed)
# and limits (it re-executes itself, which needs binfmt_misc; in place, its RLIMIT_AS caps act on
# qemu's own address space, so the out-of-memory case dies and the thread caps refuse nothing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
TARGET=aarch64-unknown-linux-gnu
TARGET_DIR=${NEON_TARGET_DIR:-target/aarch64}
SYSROOT=/usr/aarch64-linux-gnu
FULL=0
case "${1:-}" in
"") ;;
--full) FULL=1 ;;
*) echo "usage: $0 [--full]" >&2; exit 2 ;;
esac

# ---------------------------------------------------------------------------------------------------
# Setup.
source scripts/apt-need.sh
apt_need qemu-aarch64:qemu-user aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu \
    "$SYSROOT/lib/libc.so.6:libc6-dev-arm64-cross"
if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "== rustup target add $TARGET"
    rustup target add "$TARGET"
fi
echo "== $(rustc --version); $(qemu-aarch64 --version | head -n 1); $(aarch64-linux-gnu-gcc --version | head -n 1)"

export CARGO_TERM_COLOR=never
# Line tables only, no incremental state: the lane's target directory is about a quarter of what full
# debug information makes it (several GB: every test program and C harness program carries the
# library), and backtraces keep their file and line.
export CARGO_PROFILE_DEV_DEBUG=line-tables-only CARGO_INCREMENTAL=0
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# Code compiled only for aarch64 gets no clippy run in CI: at least its warnings fail the lane.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-D warnings"
# qemu-aarch64 finds the aarch64 loader and libc here (also for any aarch64 process a test starts,
# where binfmt_misc hands it to qemu).
export QEMU_LD_PREFIX=$SYSROOT
# A level forced from outside would hide the NEON paths.
unset QUANT_SIMD

cargo_aarch64() { # cargo SUBCOMMAND ARGS...: for the aarch64 target, in its own target directory
    local sub=$1
    shift
    nice cargo "$sub" --target "$TARGET" --target-dir "$TARGET_DIR" "$@"
}

# The unit tests that hold the split Cholesky factorization and inverse (src/algos/factor.rs) and GPTQ's
# in-place factor to faer's bits, on matrices up to 1500 x 1500: 552 of the 564 s the unit tests took
# under qemu (measured one at a time). They reach no NEON body of quant (faer has its own kernels), and
# on aarch64 the factorization is faer's own, whole (`factor::SPLITS` is x86-64 only), so the four
# factor tests (three in f64, one in f32) compare faer with itself here: only --full runs them; the
# host's `cargo test` runs all five in CI.
LIB_SLOW=(algos::factor::tests:: algos::gptq::tests::the_in_place_factor_has_the_bits_of_the_two_buffer_one)
LIB_SKIP=()
for t in "${LIB_SLOW[@]}"; do LIB_SKIP+=(--skip "$t"); done

tests=(--lib --test simd_paths --test quantize_one_pass --test int_kernels --test casts --test ffi_miri --test ffi_exports
    --test weight --test types --test thread_exit)
if [ "$FULL" = 1 ]; then
    tests+=(--test ggml --test formats --test real_data_rtn --test algos_calib --test algos_smoothquant
        --test algos_weight --test header --test algos_gptq --test algos_awq)
fi

declare -a SUMMARY=()
FAILED=0
JOBS=$(mktemp -d)
# NEON_DROP_TARGET=1 (CI, whose disk is limited): the lane's target directory goes when it ends.
trap 'rm -rf "$JOBS"; [ "${NEON_DROP_TARGET:-0}" != 1 ] || rm -rf "$TARGET_DIR"' EXIT
declare -a LABELS=()
# job LABEL COMMAND...: starts COMMAND in the background, two at a time (a test program under qemu keeps
# about one core busy), with its output and status going to $JOBS; `finish` waits for all of them and
# prints each one's output in the order they were started.
job() {
    local label=$1 k=${#LABELS[@]}
    shift
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
    LABELS+=("$label")
    (
        t0=$(date +%s)
        if "$@" >"$JOBS/$k.log" 2>&1; then rc=0; else rc=$?; fi
        echo "$rc $(($(date +%s) - t0))" >"$JOBS/$k.rc"
    ) &
}
finish() {
    wait
    local k rc took
    for k in "${!LABELS[@]}"; do
        echo "== ${LABELS[$k]}"
        cat "$JOBS/$k.log"
        read -r rc took <"$JOBS/$k.rc" || { rc=1 took=?; }
        if [ "$rc" = 0 ]; then
            SUMMARY+=("ok    ${LABELS[$k]} (${took}s)")
        else
            SUMMARY+=("FAIL  ${LABELS[$k]}: exit $rc")
            FAILED=1
        fi
    done
}
summary() {
    echo "== test-neon summary (qemu-aarch64 user-mode emulation: results only, nothing about speed)"
    printf '%s\n' "${SUMMARY[@]}"
    echo "test-neon took $(($(date +%s) - start)) s"
}

# ---------------------------------------------------------------------------------------------------
# Build (one cargo invocation: the shared dependencies are built once). The test programs are then run
# directly under qemu (not through `cargo test`, which would hold the target directory's lock while a
# test runs, so that only one could run at a time).
echo "== build tests: cargo test --no-run ${tests[*]}"
t0=$(date +%s)
if cargo_aarch64 test --no-run --message-format=json-render-diagnostics "${tests[@]}" >"$JOBS/build.json"; then
    SUMMARY+=("ok    build tests ($(($(date +%s) - t0))s)")
else
    SUMMARY+=("FAIL  build tests")
    FAILED=1
    summary
    exit 1
fi
# "LABEL<TAB>EXECUTABLE" for each test program, the slow ones first (casts: a dense sweep of the f32
# patterns; the unit tests).
mapfile -t BINS < <(python3 - "$JOBS/build.json" <<'PY'
import json, sys
found = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        t = m["target"]
        found.append(("--lib" if t["kind"] != ["test"] else "--test " + t["name"], m["executable"]))
slow = {"--test casts": 0, "--lib": 1}
for label, exe in sorted(found, key=lambda f: slow.get(f[0], 2)):
    print(label + "\t" + exe)
PY
)
if [ ${#BINS[@]} -ne $(($(printf '%s\n' "${tests[@]}" | grep -vc -- '^--test$'))) ]; then
    echo "expected one test program per entry of: ${tests[*]}; found ${#BINS[@]}"
    exit 1
fi

# The test starts itself again as a child process, which qemu-user cannot do without binfmt_misc; with
# QUANT_TLS_CHILD set it runs the scenario in place (an abort then fails the run).
for b in "${BINS[@]}"; do
    label=${b%%$'\t'*}
    exe=${b#*$'\t'}
    if [ "$label" = "--test thread_exit" ]; then
        job "$label (in place: QUANT_TLS_CHILD=1)" env QUANT_TLS_CHILD=1 qemu-aarch64 "$exe"
    elif [ "$label" = "--test casts" ] && [ "$FULL" = 0 ]; then
        # The dense sweep's stride: one f32 pattern in 199 (21.6 million, every exponent) instead of
        # one in 61, which took 2 x 116 s of CPU under qemu.
        job "$label (sweep stride 199)" env QUANT_SWEEP_STRIDE=199 qemu-aarch64 "$exe"
    elif [ "$label" = "--lib" ] && [ "$FULL" = 0 ]; then
        job "$label (without ${LIB_SLOW[*]})" qemu-aarch64 "$exe" "${LIB_SKIP[@]}"
    else
        job "$label" qemu-aarch64 "$exe"
    fi
done

# The C harness against the aarch64 static library (the C ABI on NEON). The test build above already
# made the library's staticlib (in deps/, with the dependencies' features of the test build); a
# separate `cargo build --lib` would build faer once more (a minute from cold), so it is the fallback.
lib="$TARGET_DIR/$TARGET/debug/deps/libquant.a"
if [ ! -f "$lib" ]; then
    cargo_aarch64 build --lib
    lib="$TARGET_DIR/$TARGET/debug/libquant.a"
fi
echo "== C harness against $lib"
out="$TARGET_DIR/c_tests"
mkdir -p "$out"
srcs=(c_tests/test_algos.c) # the slowest first
for src in c_tests/test_*.c; do [ "$src" = c_tests/test_algos.c ] || srcs+=("$src"); done
for src in "${srcs[@]}"; do
    name=$(basename "$src" .c)
    if aarch64-linux-gnu-gcc -std=c99 -O1 -Wall -Wextra -Wpedantic -Werror -Iinclude \
        -DQUANT_TEST_DATA_DIR="\"$PWD/tests/data\"" "$src" "$lib" -lpthread -ldl -lm -lrt -lgcc_s \
        -Wl,--compress-debug-sections=zlib -o "$out/$name"; then
        job "c_tests/$name.c under qemu" qemu-aarch64 "$out/$name"
    else
        SUMMARY+=("FAIL  c_tests/$name.c: does not compile for aarch64")
        FAILED=1
    fi
done
finish
summary
exit $FAILED
