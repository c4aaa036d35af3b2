#!/usr/bin/env python3
"""fio side by side: --ioengine=posixaio served by glibc, and by libuaio.so (LD_PRELOAD), with
fio's own --ioengine=io_uring as the reference. 4 KiB random reads from page-cached files.
Engines alternate within each round; the table shows medians, the ratio of medians to glibc, and
the median of the rounds' ratios to fio io_uring (paired: robust to the disk's drift).

    bench/fio-posixaio.py --lib stage/lib/libuaio.so [--runs 5] [--seconds 5] [--depths 1,32]
                          [--files 1,8] [--rw randread] [--env UAIO_TRY_INLINE=0 ...]
                          [--direct | --loop]

Not a test: it prints numbers. Needs Debian's fio."""
import argparse, json, os, resource, shutil, statistics, subprocess, sys, tempfile

def run_fio(engine, lib, directory, depth, nfiles, seconds, rw, extra_env, size_mib, direct, device=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("UAIO_") and k != "LD_PRELOAD"}
    ioengine = "io_uring" if engine == "fio io_uring" else "posixaio"
    if engine.startswith("uaio"):
        name, _, setting = engine.partition("+")  # uaio+UAIO_STATS=0: one more setting
        name, _, other = name.partition("@")  # uaio@/tmp/old/libuaio.so: another build
        env["LD_PRELOAD"] = other or lib
        env.update(extra_env)
        if setting:
            k, v = setting.split("=", 1)
            env[k] = v
        if ":" in name:  # uaio:pool, uaio:uring
            env["UAIO_BACKEND"] = name.split(":", 1)[1]
    target = ([f"--filename={device}", f"--size={size_mib}M"] if device else
             [f"--directory={directory}", f"--nrfiles={nfiles}", f"--size={size_mib * nfiles}M",
              "--file_service_type=random", "--invalidate=0", f"--pre_read={0 if direct else 1}"])
    cmd = ["fio", "--name=bench", f"--ioengine={ioengine}", f"--rw={rw}", "--bs=4k", f"--iodepth={depth}",
           *target, "--time_based", f"--runtime={seconds}", "--output-format=json",
           "--randrepeat=0", "--norandommap", f"--direct={1 if direct else 0}"]
    # CPU of the whole fio process, every thread (ours, glibc's, io_uring's iou-wrk): fio's own
    # usr_cpu and sys_cpu count only its job thread (RUSAGE_THREAD), which left out the worker
    # threads that do the I/O for every engine here but fio io_uring's inline path.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"fio failed for {engine}: {out.stderr.strip()[-2000:]}")
    job = json.loads(out.stdout[out.stdout.index("{"):])["jobs"][0]
    side = job["read"] if "read" in rw else job["write"]
    if job.get("error"):
        sys.exit(f"fio reported error {job['error']} for {engine}")
    ios = side["total_ios"] or 1
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    pct = side["clat_ns"].get("percentile", {})
    return {"iops": side["iops"], "p50": pct.get("50.000000", 0) / 1000, "p99": pct.get("99.000000", 0) / 1000,
            "cpu_us": cpu_s / ios * 1e6}

def lay_out(directory, nfiles, size_mib, bs):
    """Writes the files out sequentially in `bs` writes and syncs them, before write runs. The
    file's history decides what a random 4 KiB write costs the kernel, for every engine alike
    (fio io_uring, QD32, this machine): 650k IOPS on a file written in 4 KiB writes, 190k on
    one written in 1 MiB writes (large folios, it seems), and 85k on a file fio has just laid
    out (unwritten ext4 extents until writeback). The first shows the engines' own costs best."""
    out = subprocess.run(["fio", "--name=bench", "--ioengine=psync", "--rw=write", f"--bs={bs}",
                          f"--directory={directory}", f"--nrfiles={nfiles}", f"--size={size_mib * nfiles}M",
                          "--end_fsync=1", "--output-format=terse"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"fio could not lay out the files: {out.stderr.strip()[-2000:]}")

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--depths", default="1,32")
    ap.add_argument("--files", default="1,8")
    ap.add_argument("--rw", default="randread")
    ap.add_argument("--size-mib", type=int, default=64, help="per file")
    ap.add_argument("--engines", default="glibc,uaio,fio io_uring",
                    help="comma list of glibc, uaio, uaio:pool, uaio:uring, fio io_uring; "
                         "uaio+NAME=VALUE adds a setting (uaio+UAIO_STATS=0); "
                         "uaio@PATH preloads another build, to compare two side by side")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the uaio runs")
    ap.add_argument("--dir", default=os.environ.get("TMPDIR", "/var/tmp"))
    ap.add_argument("--direct", action="store_true", help="O_DIRECT: from the disk, not the page cache")
    ap.add_argument("--loop", action="store_true",
                    help="O_DIRECT on a loop device backed by a file in /dev/shm (needs root): a fast "
                         "device (a few us per request, no virtual disk's noise), one file")
    ap.add_argument("--layout", choices=["4k", "1m", "fio"], default="4k",
                    help="writes: files written in 4 KiB or 1 MiB writes and synced, or as fio lays them out")
    a = ap.parse_args()
    if not shutil.which("fio"):
        sys.exit("fio is not installed (apt-get install fio)")
    lib = os.path.abspath(a.lib)
    extra = dict(kv.split("=", 1) for kv in a.env)
    engines = a.engines.split(",")
    directory = tempfile.mkdtemp(prefix="uaio-fio.", dir="/dev/shm" if a.loop else a.dir)
    device = None
    if a.loop:
        a.direct, a.files = True, "1"
        backing = os.path.join(directory, "backing")
        with open(backing, "wb") as f:  # written, not sparse: reads copy real pages
            for _ in range(a.size_mib):
                f.write(os.urandom(1 << 20))
        out = subprocess.run(["losetup", "-f", "--show", backing], capture_output=True, text=True)
        if out.returncode != 0:
            shutil.rmtree(directory, ignore_errors=True)
            sys.exit(f"losetup failed (root?): {out.stderr.strip()}")
        device = out.stdout.strip()
    where = "O_DIRECT" if a.direct else "page-cached"
    if device:
        where = f"O_DIRECT loop device ({device} on tmpfs)"
    if "write" in a.rw:
        where += ", as fio lays them out," if a.layout == "fio" else f", written in {a.layout} writes and synced,"
    print(f"fio {subprocess.run(['fio', '--version'], capture_output=True, text=True).stdout.strip()}, "
          f"{a.rw} 4 KiB, {a.size_mib} MiB {where} file(s), {a.seconds} s runs, median of {a.runs} "
          f"alternated runs; libuaio env: {extra or 'defaults'}; CPU: the fio process's, every thread, "
          f"start-up included")
    print()
    ref = "fio io_uring" if "fio io_uring" in engines else None
    print("| files | QD | engine | IOPS | p50 us | p99 us | CPU us/IO | vs glibc | vs fio io_uring, paired |")
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        for nfiles in map(int, a.files.split(",")):
            if "write" in a.rw and a.layout != "fio":
                lay_out(directory, nfiles, a.size_mib, a.layout)
            for depth in map(int, a.depths.split(",")):
                samples = {e: [] for e in engines}
                for r in range(a.runs):
                    for e in (engines if r % 2 == 0 else engines[::-1]):
                        samples[e].append(run_fio(e, lib, directory, depth, nfiles, a.seconds, a.rw, extra,
                                                  a.size_mib, a.direct, device))
                med = {e: {k: statistics.median(s[k] for s in samples[e]) for k in samples[e][0]} for e in engines}
                base = med.get("glibc", {}).get("iops")
                for e in engines:
                    m = med[e]
                    ratio = f"{m['iops'] / base:.2f}x" if base else "-"
                    # The median of each round's ratio: the disk's speed drifts between rounds,
                    # and the engines of one round see the same disk.
                    paired = (f"{statistics.median(a['iops'] / b['iops'] for a, b in zip(samples[e], samples[ref])):.2f}x"
                              if ref and e != ref else "-")
                    print(f"| {nfiles} | {depth} | {e} | {m['iops'] / 1000:.1f}k | {m['p50']:.1f} | {m['p99']:.1f} "
                          f"| {m['cpu_us']:.2f} | {ratio} | {paired} |", flush=True)
    finally:
        if device:
            subprocess.run(["losetup", "-d", device])
        shutil.rmtree(directory, ignore_errors=True)

if __name__ == "__main__":
    main()
