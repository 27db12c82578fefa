#!/usr/bin/env python3
"""The disk's own limit for durable file creation, in files per second.

Usage: fsync_rate.py DIR WRITERS SECONDS [SIZE]

WRITERS processes share DIR/tmp and DIR/new, as concurrent deliveries into
one Maildir do. Each one, until SECONDS have passed, repeats what a durable
Maildir delivery does: create a file in tmp/, write SIZE bytes (default
4096), fsync it, rename it into new/, fsync new/. Prints one line:
"WRITERS writers: N files in T s = R files/s". The files are removed after.
"""

import os
import sys
import time
import multiprocessing as mp


def writer(base, wid, size, start_at, stop_at, out):
    tmp = os.path.join(base, "tmp")
    new = os.path.join(base, "new")
    dfd = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
    data = b"x" * (size - 1) + b"\n"
    n = 0
    while time.monotonic() < start_at:
        time.sleep(0.001)
    while time.monotonic() < stop_at:
        name = f"{wid}.{n}"
        tp = os.path.join(tmp, name)
        fd = os.open(tp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.rename(tp, os.path.join(new, name))
        os.fsync(dfd)
        n += 1
    os.close(dfd)
    out.put((n, time.monotonic()))


def measure(base, writers, seconds, size=4096):
    """(files, elapsed seconds, files per second) for WRITERS writers."""
    for d in ("tmp", "new"):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    out = mp.Queue()
    start_at = time.monotonic() + 0.2
    stop_at = start_at + seconds
    procs = [mp.Process(target=writer,
                        args=(base, i, size, start_at, stop_at, out))
             for i in range(writers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    files = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results) - start_at
    for d in ("new", "tmp"):
        path = os.path.join(base, d)
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
    return files, elapsed, files / elapsed


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__.split("\n\n")[1])
    base, writers, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    size = int(sys.argv[4]) if len(sys.argv) == 5 else 4096
    files, elapsed, rate = measure(base, writers, seconds, size)
    print(f"{writers} writers: {files} files in {elapsed:.2f} s = {rate:.0f} files/s")


if __name__ == "__main__":
    main()
