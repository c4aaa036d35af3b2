#!/usr/bin/env bash
# Builds every compat/tests/*.c program twice and runs each build:
#   linked:   gcc ... -luaio            (a program ported to link with libuaio)
#   preload:  gcc ... (glibc only), run with LD_PRELOAD=libuaio.so
# Each program proves in both runs that libuaio, not glibc, served its calls (helpers.h).
# Exit codes: 0 pass, 1 fail, 77 skip. Usage: run.sh LIBDIR [PROGRAM...]
# Environment: UAIO_TEST_TIMEOUT (seconds per program, default 120), UAIO_TEST_MODES
# ("linked preload" by default), and any UAIO_* setting, passed to the programs.
set -u
here=$(cd "$(dirname "$0")" && pwd)
libdir=$(cd "${1:?usage: run.sh LIBDIR [PROGRAM...]}" && pwd)
shift
lib="$libdir/libuaio.so"
[ -f "$lib" ] || { echo "run.sh: no $lib" >&2; exit 2; }
out=$(mktemp -d /tmp/uaio-compat.XXXXXX)
trap 'rm -rf "$out"' EXIT
timeout_s=${UAIO_TEST_TIMEOUT:-120}
modes=${UAIO_TEST_MODES:-linked preload}
cflags=(-O1 -g -Wall -Wextra -Wno-unused-parameter -Werror -pthread -I"$here/../include")

if [ $# -gt 0 ]; then programs=("$@"); else programs=("$here"/*.c); fi
pass=0 fail=0 skip=0 failed=()
for src in "${programs[@]}"; do
    name=$(basename "$src" .c)
    for mode in $modes; do
        exe="$out/$name.$mode"
        if [ "$mode" = linked ]; then
            gcc "${cflags[@]}" -o "$exe" "$src" -L"$libdir" -luaio -Wl,-rpath,"$libdir" || { fail=$((fail+1)); failed+=("$name($mode: build)"); continue; }
            env=()
        else
            gcc "${cflags[@]}" -o "$exe" "$src" || { fail=$((fail+1)); failed+=("$name($mode: build)"); continue; }
            env=(LD_PRELOAD="$lib")
        fi
        start=$EPOCHREALTIME
        (cd "$out" && env "${env[@]}" UAIO_TEST_LIB="$lib" timeout -k 5 "$timeout_s" "$exe") >"$exe.log" 2>&1
        rc=$?
        secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
        case $rc in
            0) pass=$((pass+1)); echo "PASS $name ($mode, ${secs}s)";;
            77) skip=$((skip+1)); echo "SKIP $name ($mode): $(tail -n 1 "$exe.log")";;
            *) fail=$((fail+1)); failed+=("$name($mode)")
               echo "FAIL $name ($mode, exit $rc, ${secs}s)"; sed 's/^/    /' "$exe.log" | tail -n 20;;
        esac
    done
done
echo "compat: ${pass} passed, ${fail} failed, ${skip} skipped"
[ $fail -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
