#!/usr/bin/env bash
# The uaio command, as a user runs it: `uaio config` (table and --json) with good and bad
# settings, under the seccomp launcher, and a short `uaio bench --json` whose children prove
# they were served by glibc and by libuaio. Usage: Tests/cli/run.sh PREFIX
set -euo pipefail
prefix=${1:?usage: run.sh PREFIX}
uaio=$prefix/bin/uaio
pass=0 fail=0
check() {  # check NAME PYTHON-EXPR-over-j JSON
    local name=$1 expr=$2 json=$3
    if python3 -c "import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if ($expr) else 1)" "$json"; then
        pass=$((pass+1)); echo "PASS $name"
    else
        fail=$((fail+1)); echo "FAIL $name: $json" | head -c 2000; echo
    fi
}

check "config defaults" \
    'j["settings"]["UAIO_MAX_REQUESTS"] == {"value": "65536", "source": "default"} and j["problems"] == []' \
    "$(env -u UAIO_BACKEND -u UAIO_MAX_REQUESTS "$uaio" config --json)"
check "config from the environment" \
    'j["settings"]["UAIO_MAX_REQUESTS"] == {"value": "128", "source": "environment"}
     and j["settings"]["UAIO_MAX_BOUNDED_WORKERS"]["source"] == "default"
     and len(j["problems"]) == 1 and "UAIO_MAX_BOUNDED_WORKERS=\x27lots\x27" in j["problems"][0]' \
    "$(UAIO_MAX_REQUESTS=128 UAIO_MAX_BOUNDED_WORKERS=lots "$uaio" config --json)"
check "config pool routing" \
    'all(r["backend"] == "pool" and r["reason"] == "UAIO_BACKEND=pool" for r in j["routes"])' \
    "$(UAIO_BACKEND=pool "$uaio" config --json)"
check "config without io_uring" \
    'j["io_uring"].startswith("unavailable") and all(r["backend"] == "pool" for r in j["routes"])' \
    "$("$prefix/bin/uaio-no-uring" "$uaio" config --json)"
if env -u UAIO_MAX_REQUESTS "$uaio" config | grep -q '^UAIO_MAX_REQUESTS  *65536  *default$'; then pass=$((pass+1)); echo "PASS config table"
else fail=$((fail+1)); echo "FAIL config table"; "$uaio" config; fi

check "bench" \
    'len(j) == 3 and {r["engine"] for r in j} == {"glibc", "uaio/uring", "uaio/pool-noinline"}
     and all(r["iops"] > 0 and r["files"] == 2 and r["depth"] == 4 for r in j)' \
    "$("$uaio" bench --json --seconds 0.3 --runs 1 --depths 4 --files 2 --file-mib 4 --backends uring,pool-noinline)"
# Inspection: a real child (Tests/cli/busy.c) does 100 reads and a write, and leaves one read
# blocked on a pipe; ps, stat, requests, top must report exactly that, on the ring and in the pool.
work=$(mktemp -d /tmp/uaio-cli.XXXXXX)
trap 'rm -rf "$work"' EXIT
gcc -O1 -Wall -o "$work/busy" "$(dirname "$0")/busy.c"
inspect() {  # inspect BACKEND: starts busy with that backend and checks what uaio reports
    local backend=$1
    mkfifo "$work/in.$backend"
    "$uaio" run --backend "$backend" --max-bounded-workers 3 -- "$work/busy" <"$work/in.$backend" >"$work/out.$backend" &
    local child=$!
    exec 7>"$work/in.$backend"
    for _ in $(seq 100); do grep -q ready "$work/out.$backend" 2>/dev/null && break; sleep 0.05; done
    local pid fd
    read -r _ pid fd _ <"$work/out.$backend"
    check "ps ($backend)" "any(p['pid'] == $pid and p['command'] == 'busy' and p['in_flight'] == 1 for p in j)" \
        "$("$uaio" ps --json)"
    check "stat ($backend)" \
        "j['pid'] == $pid and j['in_flight'] == 1 and j['submitted']['read'] == 101 and j['submitted']['write'] == 1
         and sum(c['completed'] for c in j['completions'] if c['operation'] == 'read') == 100
         and sum(c['bytes'] for c in j['completions'] if c['operation'] == 'read') == 409600
         and any(c['operation'] == 'write' and c['completed'] == 1 and c['bytes'] == 512 for c in j['completions'])
         and all(l['p50_ns'] <= l['p99_ns'] <= l['p999_ns'] for l in j['latency'])
         and j['ring']['in_use'] == ('$backend' != 'pool')
         and (j['ring']['sq_pending'], j['ring']['cq_pending']) == ((None, None) if '$backend' == 'pool' else (0, 0))
         and [w['limit'] for w in j['workers']] == [3, 256]" \
        "$("$uaio" stat "$pid" --json)"
    local want_worker="r['worker_tid'] is None"
    [ "$backend" = pool ] && want_worker="r['worker_tid'] > 0 and r['wchan'] not in (None, '', '?')"
    check "requests ($backend)" \
        "len(j) == 1 and [(r['state'], r['backend'], r['operation'], r['fd'], r['length']) for r in j]
             == [('running', '$backend' if '$backend' == 'pool' else 'uring', 'read', $fd, 8)]
         and j[0]['path'].startswith('pipe:') and j[0]['age_ns'] > 0 and all($want_worker for r in j)" \
        "$("$uaio" requests "$pid" --json)"
    # top, on a pseudo-terminal as a person sees it: two screens, each cleared first.
    if python3 - "$uaio" "$pid" <<'PY'
import os, pty, sys
child, fd = pty.fork()
if child == 0:
    os.execv(sys.argv[1], [sys.argv[1], "top", sys.argv[2], "--count", "2", "--interval", "0.2"])
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(child, 0)
text = out.decode(errors="replace")
ok = status == 0 and text.count("\x1b[2J") == 2 and text.count("requests in flight") == 2 and "pipe:" in text
sys.exit(0 if ok else 1)
PY
    then pass=$((pass+1)); echo "PASS top ($backend)"
    else fail=$((fail+1)); echo "FAIL top ($backend)"; fi
    # Another user cannot read it (mode 0600); the command says so with exit code 4.
    if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
        local rc=0
        setpriv --reuid=65534 --regid=65534 --clear-groups "$uaio" stat "$pid" >/dev/null 2>"$work/err" || rc=$?
        if [ $rc = 4 ] && grep -q "not readable by this user" "$work/err"; then pass=$((pass+1)); echo "PASS other user ($backend)"
        else fail=$((fail+1)); echo "FAIL other user ($backend): exit $rc, $(cat "$work/err")"; fi
    fi
    echo go >&7
    exec 7>&-
    wait "$child" || { fail=$((fail+1)); echo "FAIL busy ($backend) exited $?"; }
    # Gone: its region is removed by the next ps, and stat says so (exit 3).
    "$uaio" ps --json >/dev/null
    local rc=0
    "$uaio" stat "$pid" >/dev/null 2>&1 || rc=$?
    if [ $rc = 3 ] && [ ! -e "/dev/shm/uaio.$pid" ]; then pass=$((pass+1)); echo "PASS ended ($backend)"
    else fail=$((fail+1)); echo "FAIL ended ($backend): exit $rc"; fi
}
inspect pool
if "$uaio" probe >/dev/null 2>&1; then inspect uring; else echo "SKIP inspect uring: no io_uring here"; fi

# /dev/shm shared with another pid namespace (a container): a region published there names a
# pid of that namespace, which is another process here (or none): `uaio ps` neither lists it
# nor removes it, also once it is older than the 2 s a region nobody maps is given.
if [ "$(id -u)" = 0 ] && unshare --pid --fork true 2>/dev/null; then
    mkfifo "$work/in.ns"
    unshare --pid --fork "$uaio" run --backend pool -- "$work/busy" <"$work/in.ns" >"$work/out.ns" &
    nschild=$!
    exec 8>"$work/in.ns"
    for _ in $(seq 100); do grep -q ready "$work/out.ns" 2>/dev/null && break; sleep 0.05; done
    read -r _ nspid _ <"$work/out.ns"
    sleep 3
    listed=$("$uaio" ps --json)
    if [ -n "$nspid" ] && [ -e "/dev/shm/uaio.$nspid" ] \
        && python3 -c "import json,sys; sys.exit(any(p['pid'] == $nspid for p in json.loads(sys.argv[1])))" "$listed"; then
        pass=$((pass+1)); echo "PASS another pid namespace's region"
    else
        fail=$((fail+1)); echo "FAIL another pid namespace's region (pid $nspid there): $(ls /dev/shm | grep uaio) $listed"
    fi
    echo >&8; exec 8>&-
    wait $nschild
else
    echo "SKIP another pid namespace's region: needs root and unshare --pid"
fi

check "probe" 'j["kernel"] and j["liburing"] and (j["io_uring"] == ("READ" in j["opcodes"]))
     and {"read", "write", "fsync", "fdatasync", "readv", "writev", "openat", "statx", "getdents64", "syncfs"} <= {r["operation"] for r in j["routes"]}
     and len(j["routes"]) == 31
     and [r["backend"] for r in j["routes"] if r["operation"] == "getdents64"] == ["pool"]' \
    "$("$uaio" probe --json || true)"
check "probe without io_uring" 'not j["io_uring"] and "seccomp" in j["why_not"] and j["opcodes"] == []' \
    "$("$prefix/bin/uaio-no-uring" "$uaio" probe --json || true)"
# A layout this uaio does not know is refused clearly (exit 5): a fake region with version 99.
sleep 300 & fake=$!
python3 -c "
import struct,sys
hdr = struct.pack('<QII', 0x314d48534f494155, 99, 4096) + bytes(1 << 20)
open('/dev/shm/uaio.$fake', 'wb').write(hdr)"
rc=0; "$uaio" stat "$fake" >/dev/null 2>"$work/err" || rc=$?
kill $fake; rm -f "/dev/shm/uaio.$fake"
if [ $rc = 5 ] && grep -q "layout version 99" "$work/err"; then pass=$((pass+1)); echo "PASS unknown layout"
else fail=$((fail+1)); echo "FAIL unknown layout: exit $rc $(cat "$work/err")"; fi
# Crafted regions (any process of the user can write one): extreme counters, latencies, times
# and sizes are reported, never a trap (Tests/cli/crafted.c).
gcc -O1 -Wall -Werror -I"$(dirname "$0")/../../Sources/CUAIO/include" -o "$work/crafted" "$(dirname "$0")/crafted.c"
crafted_failed=""
for mode in counters-sum counter-int64 rejected latency-sum latency-bucket started-future submitted-future nbytes; do
    for sub in stat requests; do "$work/crafted" "$uaio" "$mode" "$sub" || crafted_failed+=" $mode/$sub"; done
done
"$work/crafted" "$uaio" mtime-past ps || crafted_failed+=" mtime-past/ps"
# Not this process's region (a FIFO, another owner, another pid), and a command name made of
# terminal escapes: refused, never a hang; escaped in the text output.
for mode in fifo owner pid; do
    for sub in stat requests; do
        "$work/crafted" "$uaio" "$mode" "$sub"; rc=$?
        [ $rc = 0 ] || [ $rc = 77 ] || crafted_failed+=" $mode/$sub"
    done
done
for sub in stat ps requests; do "$work/crafted" "$uaio" escape "$sub" || crafted_failed+=" escape/$sub"; done
if [ -z "$crafted_failed" ]; then pass=$((pass+1)); echo "PASS crafted regions"
else fail=$((fail+1)); echo "FAIL crafted regions:$crafted_failed"; fi

echo "cli: ${pass} passed, ${fail} failed"
[ "$fail" -eq 0 ]
