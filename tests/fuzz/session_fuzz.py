"""What the random session fuzzers (pop3_sessions.py, smtp_sessions.py)
share: a raw connection that keeps a byte transcript, and the run around
the steps: ternd started from the harness, a step at a time until the time
is up or something is found, then ternd stopped with SIGTERM and its log
searched for sanitizer reports, transcripts written under /tmp.
"""

import os
import random
import socket
import struct
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "tests" / "integration"))
from tern_harness import Tern  # noqa: E402


class Finding(Exception):
    pass


class RawConn:
    """One raw connection to ternd and the transcript of what crossed it."""

    def __init__(self, fz, port, timeout):
        self.fz = fz
        self.id = fz.nconns
        fz.nconns += 1
        self.log = []               # (">" or "<", bytes)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.eof = False
        self.reset = False          # a send or recv met a reset
        self.pending = b""          # sent bytes the server has not acted on
        self.skipping = False       # the rest of an overlong line is dropped

    def title(self):
        """What a transcript says of this connection after its number."""
        return f"state {self.state}"

    def close(self, rst=False):
        try:
            if rst:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.log.append((">", data))
        self.fz.bytes_sent += len(data)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            # A burst can run past a line the server hangs up on. ternd then
            # lingers (src/io/linger.h), reading our bytes for 2 s, so a
            # reset here should be rare; the summary counts them.
            self.reset = True

    def next_input_line(self, limit):
        """The next line the server's conn_read_line(limit) hands the
        session, from self.pending: ("line", bytes without the CR LF),
        ("long", its first 80 bytes) for a line over limit, whose rest is
        then dropped, or None while no line is complete."""
        while True:
            i = self.pending.find(b"\n")
            if i < 0:
                if not self.skipping and len(self.pending) > limit:
                    self.skipping = True
                    long = self.pending[:80]
                    self.pending = b""
                    return "long", long
                if self.skipping:
                    self.pending = b""
                return None
            line, self.pending = self.pending[:i], self.pending[i + 1:]
            if self.skipping:
                self.skipping = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > limit:
                return "long", line[:80]
            return "line", line

    def recv_line(self, deadline, what):
        """One line with its LF, or None at the end of the stream. A line
        cut by the end is a finding, unless a reset cut it."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Finding(f"no {what} within the time allowed")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(262144)
            except socket.timeout:
                raise Finding(f"no {what} within the time allowed")
            except ConnectionResetError:
                self.reset = True
                chunk = b""
            if not chunk:
                if self.buf and not self.reset:
                    self.log.append(("<", self.buf))
                    raise Finding(f"partial {what} before EOF: {self.buf[-200:]!r}")
                self.log.append(("<", self.buf + (b"<RST>" if self.reset else b"<EOF>")))
                self.buf = b""
                self.eof = True
                return None
            self.buf += chunk
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        self.log.append(("<", line))
        return line


class SessionFuzzer:
    """Subclasses set name, give step() and summary(), and may give
    start() (after ternd started) and check_end() (after the last step)."""

    name = "?"

    def __init__(self, seed, secs, **settings):
        self.seed = seed
        self.rnd = random.Random(seed)
        self.secs = secs
        self.conns = []
        self.closed = []            # the last few dropped, for transcripts
        self.nconns = self.commands = self.bytes_sent = self.steps = self.resets = 0
        self.notes = {}
        self.work = Path(f"/tmp/tern-{self.name}-sessions-{seed}")
        os.system(f"rm -rf '{self.work}'")
        self.tern = Tern(self.work, **settings)

    def start(self):
        pass

    def check_end(self):
        pass

    def drop(self, c, rst=False):
        c.close(rst)
        if c in self.conns:
            self.conns.remove(c)
        self.closed = (self.closed + [c])[-4:]

    def note(self, why, c):
        """A wrong answer that leaves the session usable: noted, the run goes on."""
        if why not in self.notes:
            self.notes[why] = self.dump(why, f"note{len(self.notes) + 1}.txt", [c])

    def dump(self, why, name="finding.txt", conns=None):
        path = self.work / name
        with open(path, "w") as f:
            f.write(f"seed {self.seed}: {why}\n")
            for c in conns or self.closed + self.conns:
                f.write(f"\n--- connection {c.id} ({c.title()}) ---\n")
                for d, data in c.log[-3000:]:
                    shown = data if len(data) <= 600 else \
                        data[:300] + b"...(%d bytes)..." % len(data) + data[-100:]
                    f.write(f"{d} {shown!r}\n")
        return path

    def run(self):
        """0 if nothing was found, else 1 with the finding printed."""
        self.tern.start()
        self.start()
        deadline = time.monotonic() + self.secs
        problem = None
        while time.monotonic() < deadline and problem is None:
            try:
                self.step()
            except Finding as e:
                problem = str(e)
            except (ConnectionResetError, BrokenPipeError) as e:
                problem = f"connection error {e}"
            if problem is None and not self.tern.running():
                problem = "ternd died"
            if problem is not None and not self.tern.running():
                problem += " (ternd died)"
        for c in list(self.conns):
            self.drop(c)
        if problem is None:
            try:
                self.check_end()
            except Finding as e:
                problem = str(e)
        print(f"seed {self.seed}: {self.summary()}, {self.resets} resets, "
              f"{self.bytes_sent} bytes sent")
        rc = self.tern.stop()
        log = self.tern.log()
        for needle in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"):
            if needle in log:
                problem = problem or f"{needle} in ternd.log"
        if problem is None and rc not in (0, None):
            problem = f"ternd exited {rc} on SIGTERM"
        for why, path in self.notes.items():
            print(f"NOTE (seed {self.seed}): {why}; transcript: {path}")
        if problem:
            print(f"FINDING (seed {self.seed}): {problem}")
            print(f"transcript: {self.dump(problem)}")
            print(f"log: {self.tern.log_path}")
            return 1
        return 0


def main(fuzzer_class):
    """The command line of a session fuzzer: [SEED [SECONDS]]."""
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 120
    return fuzzer_class(seed, secs).run()
