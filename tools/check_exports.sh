#!/bin/sh
# check_exports.sh SO MAP OBJECT... — make test's check of the shared library's interface: the dynamic
# symbols SO defines are exactly the names of the version script MAP (the public headers' declarations,
# tools/export_map.sh) that the library's objects define: nothing internal leaks (kernels, helpers,
# statics, OpenMP's outlined bodies) and nothing public is missing. Declarations without a definition
# yet are listed as a note. Exits 1 naming the differences.
set -eu
so=$1 map=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$so" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/exported"
sed -n 's/^    \([A-Za-z_][A-Za-z0-9_]*\);$/\1/p' "$map" | sort -u >"$tmp/declared"
nm -g --defined-only "$@" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/defined"
comm -12 "$tmp/declared" "$tmp/defined" >"$tmp/expected"
status=0
leaked=$(comm -23 "$tmp/exported" "$tmp/expected")
missing=$(comm -13 "$tmp/exported" "$tmp/expected")
[ -z "$leaked" ] || { echo "$so exports names no public header declares:" $leaked; status=1; }
[ -z "$missing" ] || { echo "$so does not export these public functions:" $missing; status=1; }
# The two ends, checked by name: a public function is there, an internal kernel (global in the objects,
# declared in runtime/cpu/kernels.h only) and a static helper (runtime/cache.c) are not.
grep -qx eb_model_load "$tmp/exported" || { echo "$so: eb_model_load is not exported"; status=1; }
grep -qx linear_forward "$tmp/defined" || { echo "check_exports: linear_forward is no longer a kernel; pick another"; status=1; }
if grep -qx -e linear_forward -e cache_alloc "$tmp/exported"; then echo "$so exports linear_forward or cache_alloc"; status=1; fi
undefined=$(comm -23 "$tmp/declared" "$tmp/defined")
[ -z "$undefined" ] || echo "note: declared in a public header, not defined yet:" $undefined
[ $status = 1 ] || echo "$so: $(wc -l <"$tmp/exported") symbols, exactly the public headers' definitions"
exit $status
