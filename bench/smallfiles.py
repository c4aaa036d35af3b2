#!/usr/bin/env python3
"""Small-file metadata side by side: stat, open-read-close and
create-write-fsync-close-unlink over N files of 4 KiB, by a synchronous loop, a thread pool
doing the same calls, and libuaio on the ring and on the pool (bench/smallfiles.c). Engines
alternate within every round; the table shows medians and ratios to the loop.

    bench/smallfiles.py --prefix stage [--files 20000] [--runs 5] [--threads 8] [--depth 32]

Not a test: it prints numbers."""
import argparse, os, shutil, statistics, subprocess, sys, tempfile

PHASES = {"s": "stat", "r": "open-read-close", "c": "create-write-fsync-unlink"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", default="stage", help="where make install put lib/ and include/")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--create-files", type=int, default=0, help="files for the fsync phase (default: --files)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--depth", type=int, default=32)
    ap.add_argument("--dir", default="/var/tmp", help="a disk file system (fsync must reach a device)")
    ap.add_argument("--phases", default="s,r,c")
    a = ap.parse_args()
    lib, inc = os.path.join(a.prefix, "lib"), os.path.join(a.prefix, "include")
    work = tempfile.mkdtemp(prefix="uaio-smallfiles.", dir=a.dir)
    try:
        exe = os.path.join(work, "smallfiles")
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smallfiles.c")
        subprocess.run(["gcc", "-O2", "-I", inc, "-o", exe, src, "-L", lib, "-luaio", "-pthread",
                        f"-Wl,-rpath,{os.path.abspath(lib)}"], check=True)
        files = os.path.join(work, "files")
        os.mkdir(files)
        subprocess.run([exe, "setup", files, str(a.files)], check=True)
        engines = [("sync", "sync", {}), (f"threads x{a.threads}", "threads", {}),
                   ("uaio ring", "uaio", {"UAIO_BACKEND": "uring"}), ("uaio pool", "uaio", {"UAIO_BACKEND": "pool"})]
        samples = {}
        for _ in range(a.runs):
            for phase in a.phases.split(","):
                n = a.create_files or a.files if phase == "c" else a.files
                for name, mode, env in engines:
                    arg = str(a.threads if mode == "threads" else a.depth)
                    e = {k: v for k, v in os.environ.items() if not k.startswith("UAIO_")}
                    e.update(env)
                    out = subprocess.run([exe, "run", files, str(n), mode, phase, arg], env=e,
                                         capture_output=True, text=True)
                    if out.returncode != 0:
                        sys.exit(f"{name} {PHASES[phase]} failed: {out.stderr.strip()}")
                    samples.setdefault((phase, name), []).append(float(out.stdout.split()[3]))
        print(f"{a.files} files of 4 KiB in {a.dir} (create phase: {a.create_files or a.files}), "
              f"median of {a.runs} alternated runs; uaio: {a.depth} files in flight, aio_waitcomplete\n")
        print("| operation | engine | files/s | vs sync loop | vs thread pool |")
        print("|---|---|---|---|---|")
        for phase in a.phases.split(","):
            base = statistics.median(samples[(phase, "sync")])
            pool = statistics.median(samples[(phase, f"threads x{a.threads}")])
            for name, _, _ in engines:
                m = statistics.median(samples[(phase, name)])
                print(f"| {PHASES[phase]} | {name} | {m / 1000:.1f}k | {m / base:.2f}x | {m / pool:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
