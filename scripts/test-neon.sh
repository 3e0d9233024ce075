#!/usr/bin/env bash
# Runs the NEON (aarch64) kernel bodies under user-mode emulation (qemu-aarch64) on an x86-64 Debian
# machine, against the scalar references: the tests that cover every body of src/kernels/neon.rs, then
# the C harness's programs against the aarch64 static library. From the repository root:
#
#   bash scripts/test-neon.sh           # the default subset: about 7 minutes from a cold target
#                                       # directory on a quiet 2-core machine (5 of them building; 12
#                                       # when the machine is busy), 1.5 minutes warm
#   bash scripts/test-neon.sh --full    # also the slow tests that use NEON only at the default level
#                                       # (about 30 more minutes)
#
# Installs what it needs when it is missing (apt: qemu-user, gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross; rustup: the aarch64-unknown-linux-gnu target). The cross linker and the qemu
# runner are set in this script's environment only (CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_*), and the
# build goes to its own target directory (NEON_TARGET_DIR, default target/aarch64): the host build is
# not touched. A cold build (faer for aarch64) takes most of the time.
#
# What runs, and why (every test below that quantizes runs on NEON: it is the default level on aarch64,
# and tests/simd_paths.rs checks that `available_levels()` is [Scalar, Neon] and that
# `quant_simd_level()` reports NEON):
#   --lib                 every unit test (src/kernels/*: level names and scoping, the fixed cases of
#                         each kernel)
#   --test simd_paths     every level the CPU has (scalar and NEON here) against the scalar references,
#                         bit for bit: absmax, INT8, INT4 min/max, quantize and dequantize, FP8 encode
#                         and decode (plain and scaled), BF16 both ways; ties, clamps, edge bit
#                         patterns, threads. This is the test that covers every NEON body.
#   --test streaming      the one-pass quantizers against the checked ones (their per-row checks at
#                         the NEON level), every level, several thread counts
#   --test int_kernels    INT8/k-bit fast paths (NEON) against the references, property tests
#   --test casts          the casts (NEON for BF16 and FP8) against numpy/ml_dtypes golden fixtures
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
need=()
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
[ -e "$SYSROOT/lib/libc.so.6" ] || need+=(libc6-dev-arm64-cross)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "== rustup target add $TARGET"
    rustup target add "$TARGET"
fi
echo "== $(rustc --version); $(qemu-aarch64 --version | head -n 1); $(aarch64-linux-gnu-gcc --version | head -n 1)"

export CARGO_TERM_COLOR=never
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
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

tests=(--lib --test simd_paths --test streaming --test int_kernels --test casts --test ffi_miri --test ffi_exports
    --test weight --test types --test thread_exit)
if [ "$FULL" = 1 ]; then
    tests+=(--test ggml --test formats --test real_data_rtn --test algos_calib --test algos_smoothquant
        --test algos_weight --test header --test algos_gptq --test algos_awq)
fi

declare -a SUMMARY=()
FAILED=0
run() { # run LABEL COMMAND...: runs and records the result
    local label=$1 t0 rc
    shift
    echo "== $label: $*"
    t0=$(date +%s)
    if "$@"; then rc=0; else rc=$?; fi
    if [ "$rc" -eq 0 ]; then
        SUMMARY+=("ok    $label ($(($(date +%s) - t0))s)")
    else
        SUMMARY+=("FAIL  $label: exit $rc")
        FAILED=1
    fi
}

# The test starts itself again as a child process, which qemu-user cannot do without binfmt_misc; with
# QUANT_TLS_CHILD set it runs the scenario in place (an abort then fails the run).
thread_exit_in_place() { QUANT_TLS_CHILD=1 cargo_aarch64 test --test thread_exit; }

# ---------------------------------------------------------------------------------------------------
# Build (one cargo invocation: the shared dependencies are built once), then each test binary.
run "build tests" cargo_aarch64 test --no-run "${tests[@]}"
for ((i = 0; i < ${#tests[@]}; i++)); do
    t=${tests[$i]}
    if [ "$t" = --test ]; then
        i=$((i + 1))
        t="--test ${tests[$i]}"
    fi
    if [ "$t" = "--test thread_exit" ]; then
        run "$t (in place: QUANT_TLS_CHILD=1)" thread_exit_in_place
    else
        # shellcheck disable=SC2086 # $t is one or two words
        run "$t" cargo_aarch64 test $t
    fi
done

# The C harness against the aarch64 static library (the C ABI on NEON). The test build above already
# made the library's staticlib (in deps/, with the dependencies' features of the test build); a
# separate `cargo build --lib` would build faer once more (a minute from cold), so it is the fallback.
c_tests() {
    local lib="$TARGET_DIR/$TARGET/debug/deps/libquant.a" out="$TARGET_DIR/c_tests" src name status=0
    if [ ! -f "$lib" ]; then
        cargo_aarch64 build --lib || return 1
        lib="$TARGET_DIR/$TARGET/debug/libquant.a"
    fi
    echo "static library: $lib"
    mkdir -p "$out"
    for src in c_tests/test_*.c; do
        name=$(basename "$src" .c)
        aarch64-linux-gnu-gcc -std=c99 -O1 -Wall -Wextra -Wpedantic -Werror -Iinclude \
            -DQUANT_TEST_DATA_DIR="\"$PWD/tests/data\"" "$src" "$lib" -lpthread -ldl -lm -lrt -lgcc_s \
            -o "$out/$name" || { status=1; continue; }
        if qemu-aarch64 "$out/$name"; then :; else
            echo "$name FAILED under qemu-aarch64"
            status=1
        fi
    done
    return $status
}
run "c_tests under qemu" c_tests

echo "== test-neon summary (qemu-aarch64 user-mode emulation: results only, nothing about speed)"
printf '%s\n' "${SUMMARY[@]}"
echo "test-neon took $(($(date +%s) - start)) s"
exit $FAILED
