#!/usr/bin/env python3
"""Where the time of one O_DIRECT cycle goes, fio --ioengine=posixaio on libuaio.so against fio's own
io_uring. At a small depth on this virtio disk both engines run in bursts: the thread submits its
requests, sleeps in io_uring_enter, is woken once when the device returns them (all together),
reaps them and submits them again. So a cycle is

    wake -> first submission   (reaping, fio's bookkeeping, our submission path)
    first submission -> wake   (the device: about the same for both engines)

and the first part is where an engine can lose. This attaches `perf record` (tracepoints only:
io_uring_enter's entry and exit) to each fio run for a moment and prints medians per burst.
Tracing adds a microsecond or two per system call, so compare the engines, not the absolutes.

    bench/bursts.py --lib stage/lib/libuaio.so [--depth 8] [--file /var/tmp/FILE] [--runs 3]

Not a test: it prints numbers. Needs fio and perf (linux-perf), and root for the tracepoints."""
import argparse, os, re, statistics, subprocess, sys, tempfile, time

def record(engine, lib, path, depth, trace):
    env = {k: v for k, v in os.environ.items() if not k.startswith("UAIO_") and k != "LD_PRELOAD"}
    if engine == "uaio":
        env["LD_PRELOAD"] = lib
    cmd = ["fio", "--name=bench", f"--ioengine={'io_uring' if engine == 'fio io_uring' else 'posixaio'}",
           "--rw=randread", "--bs=4k", f"--iodepth={depth}", f"--filename={path}", "--direct=1",
           "--time_based", "--runtime=3", "--randrepeat=0", "--norandommap", "--output-format=terse"]
    fio = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1.5)
    # fio runs the job in a child process.
    job = subprocess.run(["pgrep", "-n", "-P", str(fio.pid)], capture_output=True, text=True).stdout.strip()
    if not job:
        sys.exit(f"no fio job process for {engine}")
    subprocess.run(["perf", "record", "-q", "-p", job, "-o", trace,
                    "-e", "syscalls:sys_enter_io_uring_enter,syscalls:sys_exit_io_uring_enter",
                    "--", "sleep", "0.3"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    fio.communicate()
    out = subprocess.run(["perf", "script", "-i", trace, "-F", "tid,time,event,trace"],
                         capture_output=True, text=True, check=True).stdout
    return bursts(out)

def bursts(script):
    """Per burst: wake -> first submission, the first submission's own length, the whole burst
    (wake -> the next wait), submissions in it, and the sleep (the wait's length), in us."""
    events = []
    for line in script.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
        if m:
            events.append((int(m[1]), float(m[2]) * 1e6, m[3], m[4]))
    enters = {}
    for tid, _, event, _ in events:
        if event.endswith("sys_enter_io_uring_enter"):
            enters[tid] = enters.get(tid, 0) + 1
    fio = max(enters, key=enters.get)  # the thread that submits
    rows, wake, first, first_len, submits, entered, waiting, slept_at, sleep = [], None, None, None, 0, 0, False, 0, 0
    for tid, ts, event, args in events:
        if tid != fio:
            continue
        if event.endswith("sys_enter_io_uring_enter"):
            entered = ts
            waiting = "to_submit: 0x00000000" in args and "min_complete: 0x00000000" not in args
            if waiting:
                if wake is not None and first is not None and submits:
                    rows.append((first - wake, first_len, ts - wake, submits, sleep))
                slept_at = ts
            elif wake is not None and first is None:
                first = ts
        elif event.endswith("sys_exit_io_uring_enter"):
            if waiting:
                sleep, wake, first, first_len, submits = ts - slept_at, ts, None, None, 0
            else:
                submits += 1
                if first_len is None and first is not None:
                    first_len = ts - entered
    return rows

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--file", help="an existing file of at least 64 MiB (default: one is written)")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    lib = os.path.abspath(a.lib)
    with tempfile.TemporaryDirectory(prefix="uaio-bursts.", dir="/var/tmp") as d:
        path = a.file
        if not path:
            path = os.path.join(d, "data")
            subprocess.run(["fio", "--name=lay", "--ioengine=psync", "--rw=write", "--bs=1m", "--size=64M",
                            f"--filename={path}", "--end_fsync=1", "--output-format=terse"],
                           stdout=subprocess.DEVNULL, check=True)
        rows = {"uaio": [], "fio io_uring": []}
        for r in range(a.runs):
            for e in (list(rows) if r % 2 == 0 else list(rows)[::-1]):
                rows[e] += record(e, lib, path, a.depth, os.path.join(d, "perf.data"))
    names = ["wake -> first submission", "first submission", "burst: wake -> next wait", "submissions per burst",
             "sleep: wait -> wake", "cycle: burst + sleep"]
    print(f"O_DIRECT 4 KiB random reads, QD{a.depth}, median per burst (us), {a.runs} alternated runs")
    print()
    print("| | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for i, name in enumerate(names):
        cells = []
        for e in rows:
            values = [r[2] + r[4] for r in rows[e]] if i == 5 else [r[i] for r in rows[e]]
            cells.append(f"{statistics.median(values):.1f}" if values else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"| bursts | " + " | ".join(str(len(rows[e])) for e in rows) + " |")

if __name__ == "__main__":
    main()
