#!/usr/bin/env bash
# Consumer tests of an installed quant (Linux): the install layout, the exported symbols and soname,
# then a small C project built four ways against the installation and run:
#   find_package(quant CONFIG) with quant::quant and with quant::quant_static,
#   pkg-config --cflags --libs quant, and pkg-config --cflags --libs --static quant.
#
#   tests/consumer/run.sh PREFIX WORKDIR [EXAMPLE.c]
#
# EXAMPLE.c (examples/c/quantize.c) is built and run beside check_version.c when given.
# Prints "consumer: N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
prefix="$(cd "$1" && pwd)"
work="$2"
example="${3:-}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok: $*"; }
bad() { failed=$((failed + 1)); echo "  FAILED: $*"; }
check() { local what="$1"; shift; if "$@" >"$work/last.log" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/    /' "$work/last.log"; fi; }

header="$prefix/include/quant.h"
major=$(sed -n 's/^#define QUANT_VERSION_MAJOR \([0-9]*\)$/\1/p' "$header")
version=$(sed -n 's/^#define QUANT_VERSION_STRING "\(.*\)"$/\1/p' "$header")
lib="$prefix/lib"

echo "== install layout ($prefix)"
check "lib/libquant.so.$version is a regular file" test -f "$lib/libquant.so.$version" -a ! -L "$lib/libquant.so.$version"
check "lib/libquant.so.$major -> libquant.so.$version" test "$(readlink "$lib/libquant.so.$major")" = "libquant.so.$version"
check "lib/libquant.so -> libquant.so.$major" test "$(readlink "$lib/libquant.so")" = "libquant.so.$major"
for f in lib/libquant.a include/quant.h include/quant.hpp lib/cmake/quant/quantConfig.cmake \
    lib/cmake/quant/quantConfigVersion.cmake lib/pkgconfig/quant.pc; do
    check "$f" test -f "$prefix/$f"
done

echo "== shared library: exports and soname"
exports_only_quant() {
    local syms bad_syms
    syms=$(nm -D --defined-only "$lib/libquant.so.$version" | awk '{print $3}')
    bad_syms=$(grep -v '^quant_' <<<"$syms" || true)
    [ -z "$bad_syms" ] || { echo "exported symbols other than quant_*:"; echo "$bad_syms"; return 1; }
    echo "$(grep -c '^quant_' <<<"$syms") quant_ symbols"
}
check "exports only quant_* symbols" exports_only_quant
soname_is() { [ "$(readelf -d "$1" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')" = "$2" ]; }
check "soname is libquant.so.$major" soname_is "$lib/libquant.so.$version" "libquant.so.$major"
# Every quant_ function the header declares is exported.
all_declared_exported() {
    local missing="" syms
    # The export list is read once: a `nm | grep -q` pipeline per name fails at random under pipefail
    # (grep -q exits at its first match and nm or awk then dies of SIGPIPE).
    syms=$(nm -D --defined-only "$lib/libquant.so.$version" | awk '{print $3}')
    for f in $(grep -o '\bquant_[a-z0-9_]*(' "$header" | tr -d '(' | sort -u); do
        grep -qx "$f" <<<"$syms" || missing="$missing $f"
    done
    [ -z "$missing" ] || { echo "declared but not exported:$missing"; return 1; }
}
check "every function of quant.h is exported" all_declared_exported

# An executable links libquant dynamically (NEEDED libquant.so.<major>) or not at all.
needs_shared() { readelf -d "$1" | grep -q "NEEDED.*\[libquant.so.$major\]"; }
needs_no_quant() { ! readelf -d "$1" | grep -q 'NEEDED.*libquant'; }

# The program's RUNPATH (or RPATH) holds a directory that is the installed lib/.
rpath_finds_lib() {
    local dirs d
    dirs=$(readelf -d "$1" | sed -n 's/.*R\(UN\)\{0,1\}PATH.*\[\(.*\)\].*/\2/p' | tr ':' ' ')
    for d in $dirs; do [ -d "$d" ] && [ "$(cd "$d" && pwd -P)" = "$(cd "$lib" && pwd -P)" ] && return 0; done
    echo "rpath: '${dirs:-none}', installed lib/: $lib"
    return 1
}

run_programs() { # kind dir
    local kind="$1" dir="$2"
    check "$kind: check_version runs (QUANT_VERSION_* == quant_version())" "$dir/check_version"
    if [ -n "$example" ]; then check "$kind: quantize example runs" "$dir/quantize_example"; fi
    if [ "$kind" = "${kind%static*}" ]; then
        check "$kind: linked against libquant.so.$major" needs_shared "$dir/check_version"
    else
        check "$kind: no libquant in NEEDED (static)" needs_no_quant "$dir/check_version"
    fi
}

for mode in shared static; do
    echo "== find_package(quant CONFIG REQUIRED), quant::quant$([ $mode = static ] && echo _static)"
    b="$work/cmake-$mode"
    rm -rf "$b"
    static=OFF; [ $mode = static ] && static=ON
    if cmake -S "$here" -B "$b" -DCMAKE_PREFIX_PATH="$prefix" -DQUANT_CONSUMER_STATIC=$static \
        -DQUANT_EXAMPLE_SOURCE="$example" >"$b.log" 2>&1 && cmake --build "$b" >>"$b.log" 2>&1; then
        ok "cmake $mode: configure and build"
        run_programs "cmake $mode" "$b"
    else
        bad "cmake $mode: configure and build"; tail -30 "$b.log"
    fi
done

echo "== pkg-config"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc=${CC:-cc}
for mode in shared static; do
    d="$work/pc-$mode"
    rm -rf "$d"; mkdir -p "$d"
    if [ $mode = shared ]; then
        # quant.pc's Libs carry an rpath to the installed lib/: nothing else is needed to run.
        flags="$(pkg-config --cflags --libs quant)"
        extra=""
    else
        flags="$(pkg-config --cflags --libs --static quant)"
        # -lquant would pick libquant.so when both are installed: ask GNU ld for the archive.
        flags="${flags/-lquant/-l:libquant.a}"
        extra=""
    fi
    echo "  pkg-config $mode: $cc ... $flags"
    built=1
    $cc -std=c99 -Wall -Wextra -o "$d/check_version" "$here/check_version.c" $flags $extra >"$d.log" 2>&1 || built=0
    if [ -n "$example" ]; then
        $cc -std=c99 -Wall -Wextra -o "$d/quantize_example" "$example" $flags $extra -lm >>"$d.log" 2>&1 || built=0
    fi
    if [ $built = 1 ]; then
        ok "pkg-config $mode: build"
        if [ $mode = shared ]; then
            check "pkg-config shared: the program's rpath leads to $lib" rpath_finds_lib "$d/check_version"
            # Run as a user would: no LD_LIBRARY_PATH, so only the rpath can find libquant.so.
            saved_ldpath=${LD_LIBRARY_PATH-}
            unset LD_LIBRARY_PATH
            run_programs "pkg-config $mode" "$d"
            [ -z "$saved_ldpath" ] || export LD_LIBRARY_PATH="$saved_ldpath"
        else
            run_programs "pkg-config $mode" "$d"
        fi
    else
        bad "pkg-config $mode: build"; tail -30 "$d.log"
    fi
done
check "pkg-config --modversion is $version" test "$(pkg-config --modversion quant)" = "$version"
libs_private_has() { pkg-config --static --libs quant | grep -q -- "$1"; }
check "pkg-config --static adds Libs.private (-lpthread)" libs_private_has -lpthread

echo "consumer: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
