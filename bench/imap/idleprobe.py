#!/usr/bin/env python3
"""Quick idle-memory probe of ternd alone, on a directory bench.py kept.

    bench.py --servers tern --no-ops --no-idle --keep ...   # makes DIR once
    idleprobe.py --dir DIR --build build-rel --n 1000 [--tls] [--env K=V]

Starts ternd from --build on DIR/tern/tern.conf (the Maildirs and indexes
bench.py made and warmed), measures memory per connection as bench.py
does (bench.run_idle: cold and warm), prints one JSON line, stops ternd.
--env sets variables for ternd (MALLOC_ARENA_MAX=1, LD_PRELOAD=...), so
one directory serves many comparisons in seconds instead of a full
bench.py run each.
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


class Ternd:
    """What bench.run_idle needs of a server."""
    name = "tern"

    def __init__(self, proc, port):
        self.proc = proc
        self.port = self.tls_port = port

    def root_pid(self):
        return self.proc.pid


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
    a = p.parse_args()
    a.idle_stage = a.stage
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
        r = bench.run_idle(a, Ternd(proc, port), a.n, a.tls)
        print(json.dumps({"n": a.n, "tls": a.tls, "stage": a.stage,
                          "env": a.env, "open": r["open"],
                          "alive": r["alive_at_end"], "errors": r["errors"],
                          "fresh_kib": r["pss_fresh_kib"],
                          "warm_kib": r["pss_warm_kib"],
                          "after_kib": r["pss_after_kib"],
                          "cold": round(r["kib_per_conn"], 2),
                          "warm": round(r["warm_kib_per_conn"], 2)}))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        time.sleep(0.5)


if __name__ == "__main__":
    main()
