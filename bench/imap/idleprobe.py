#!/usr/bin/env python3
"""Quick idle-memory probe of ternd alone, on a directory bench.py kept.

    bench.py --servers tern --no-ops --no-idle --keep ...   # makes DIR once
    idleprobe.py --dir DIR --build build-rel --n 1000 [--tls] [--env K=V]

Starts ternd from --build on DIR/tern/tern.conf (the Maildirs and indexes
bench.py made and warmed), measures PSS as bench.py does (settled, after
minus before, over the connections), prints one JSON line, stops ternd.
--env sets variables for ternd (MALLOC_ARENA_MAX=1, LD_PRELOAD=...), so
one directory serves many comparisons in seconds instead of a full
bench.py run each. --malloc-stats asks glibc (through gdb) for
malloc_stats() with the connections open; it lands in DIR/tern/ternd.log.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True)
    p.add_argument("--build", required=True)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--stage", default="idle",
                   choices=["login", "select", "idle"])
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--malloc-stats", action="store_true")
    p.add_argument("--trim", action="store_true",
                   help="also measure after malloc_trim(0) (through gdb): "
                   "what fragmentation costs")
    a = p.parse_args()
    tdir = Path(a.dir) / "tern"
    conf = (tdir / "tern.conf").read_text()
    ports = dict(ln.split(" = ") for ln in conf.splitlines()
                 if ln.startswith("listen.imap"))
    port = int(ports["listen.imaps" if a.tls else "listen.imap"]
               .rsplit(":", 1)[1])
    env = dict(os.environ)
    for kv in a.env:
        k, v = kv.split("=", 1)
        env[k] = v
    log = open(tdir / "ternd.log", "ab")
    proc = subprocess.Popen([str(Path(a.build).resolve() / "ternd"), "-c",
                             str(tdir / "tern.conf")], cwd=tdir, env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        if not bench.wait_port(port, proc) or proc.poll() is not None:
            raise SystemExit("ternd did not start (see ternd.log)")
        before, _ = bench.settled_pss(proc.pid, min_wait=1.0)
        g = subprocess.Popen(
            [sys.executable, str(HERE / "loadgen.py"), "idle",
             "--port", str(port), *(["--tls"] if a.tls else []),
             "--clients", str(a.n), "--users", str(a.users),
             "--password", bench.PASSWORD, "--concurrency",
             str(a.concurrency), "--stage", a.stage],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(g.stdout.readline())
        after, _ = bench.settled_pss(proc.pid, min_wait=2.0)
        trimmed = None
        if a.trim:
            subprocess.run(["gdb", "-p", str(proc.pid), "-batch", "-ex",
                            "call (int)malloc_trim(0)"], capture_output=True)
            trimmed, _ = bench.settled_pss(proc.pid, min_wait=1.0)
        if a.malloc_stats:
            subprocess.run(["gdb", "-p", str(proc.pid), "-batch", "-ex",
                            "call (void)malloc_stats()"],
                           capture_output=True)
        g.stdin.write("\n")
        g.stdin.flush()
        end = json.loads(g.stdout.readline())
        g.wait(timeout=120)
        n = max(1, ready["ready"])
        print(json.dumps({"n": a.n, "tls": a.tls, "stage": a.stage,
                          "env": a.env, "open": ready["ready"],
                          "alive": end["alive_at_end"],
                          "errors": sum(ready["errors"].values())
                          + ready["conn_errors"],
                          "before_kib": before, "after_kib": after,
                          "kib_per_conn": round((after - before) / n, 2),
                          **({"trimmed_kib_per_conn":
                              round((trimmed - before) / n, 2)}
                             if trimmed is not None else {})}))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        time.sleep(0.5)


if __name__ == "__main__":
    main()
