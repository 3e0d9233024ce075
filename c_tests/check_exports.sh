#!/usr/bin/env bash
# The shared library exports the quant_ symbols and nothing else, and carries the soname libquant.so.<major>.
set -euo pipefail
lib="$1"; major="$2"
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^quant_' || true)
if [ -n "$bad" ]; then echo "symbols other than quant_* are exported:"; echo "$bad"; exit 1; fi
count=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -c '^quant_')
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
if [ "$soname" != "libquant.so.$major" ]; then echo "soname is '$soname', expected libquant.so.$major"; exit 1; fi
echo "$count quant_ symbols exported, nothing else; soname $soname"
