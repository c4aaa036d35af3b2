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
echo "cli: ${pass} passed, ${fail} failed"
[ "$fail" -eq 0 ]
