"""Helpers for the integration tests: a real ternd in a temporary directory.

A Tern object owns one server: its config, data directory, users and aliases
files and two ephemeral loopback ports (SMTP, POP3). Everything that talks to
the network or runs a program has a timeout, so a broken server fails a test
instead of hanging it.
"""

import base64
import os
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

TIMEOUT = 10.0          # seconds, for every socket and subprocess wait
HOSTNAME = "mail.example.test"
DOMAIN = "example.test"
PASSWORDS = {
    "alice@example.test": "alice-pw",
    "bob@example.test": "bob-pw",
    "demo@example.test": "pw",
}
ALIASES = "postmaster: alice@example.test\nteam: alice, bob\n"


def bin_dir():
    return Path(os.environ.get("TERN_BIN_DIR", "/work/main/build-itest"))


def ternd_bin():
    return str(bin_dir() / "ternd")


def tern_bin():
    return str(bin_dir() / "tern")


def ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


# Sockets that hold this process's ports until it exits; see reserve_port.
_held_ports = []


def reserve_port(port):
    """Binds port on 127.0.0.1 and holds it until this process exits; False
    if anyone has it. Another test process (ctest -j) probing the same port
    fails its plain bind, while ternd, which binds with SO_REUSEADDR, may
    listen there, and listen there again after a restart. The holding socket
    gets SO_REUSEADDR only once its own plain bind succeeded."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return False
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    _held_ports.append(s)
    return True


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1, reserved (reserve_port) and
    chosen below the kernel's ephemeral range, so no client socket is handed
    one."""
    lo = ephemeral_range()[0]
    first = 10000 if lo > 11000 else 1024
    ports = []
    while len(ports) < n:
        port = random.randrange(first, lo)
        if reserve_port(port):
            ports.append(port)
    return ports


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for_port(port, proc=None, timeout=TIMEOUT):
    """Polls until the port accepts; False if proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if port_accepts(port):
            return True
        time.sleep(0.05)
    return False


def run(args, input=None, timeout=TIMEOUT * 3, **kw):
    """Runs a program, capturing output as text; never hangs."""
    return subprocess.run(args, input=input, capture_output=True, text=True,
                          timeout=timeout, **kw)


class Tern:
    """One ternd with its own directory, config and ports."""

    def __init__(self, base_dir, users=None, aliases=ALIASES, tls=False,
                 submission=False, cmd_prefix=None, **settings):
        """tls=True makes a self-signed certificate for HOSTNAME and 127.0.0.1
        (tls_cert, tls_key); submission=True adds listen.submission and
        listen.submissions on two more ports (submission_port,
        submissions_port); cmd_prefix (a list, e.g. ["strace", ...]) runs
        ternd under that program."""
        self.cmd_prefix = list(cmd_prefix or [])
        self.dir = Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "tern.conf"
        self.data_dir = self.dir / "var"
        self.users_file = self.dir / "users"
        self.aliases_file = self.dir / "aliases"
        self.log_path = self.dir / "ternd.log"
        self.smtp_port, self.pop3_port = free_ports(2)
        self.proc = None
        self.logs = []          # logs of earlier runs of this server
        self.settings = {
            "hostname": HOSTNAME,
            "domains": DOMAIN,
            "data_dir": "var",
            "users_file": "users",
            "aliases_file": "aliases",
            "message_size_limit": "20M",
            "auth_fail_delay_ms": "200",
            "bad_command_limit": "5",
            "log_level": "debug",
            # Queued mail stays queued (tests look at it); test_relay
            # turns delivery on.
            "queue_hold": "yes",
            "listen.smtp": f"127.0.0.1:{self.smtp_port}",
            "listen.pop3": f"127.0.0.1:{self.pop3_port}",
        }
        self.submission_port = self.submissions_port = None
        self.cert = self.key = None
        if tls:
            self.make_cert()
            self.settings["tls_cert"] = str(self.cert)
            self.settings["tls_key"] = str(self.key)
        if submission:
            self.submission_port, self.submissions_port = free_ports(2)
            self.settings["listen.submission"] = f"127.0.0.1:{self.submission_port}"
            self.settings["listen.submissions"] = f"127.0.0.1:{self.submissions_port}"
        self.settings.update({k.replace("__", "."): v for k, v in settings.items()})
        self.write_config()
        self.users_file.write_text("")
        self.aliases_file.write_text(aliases)
        self.passwords = {}
        for addr, pw in (PASSWORDS if users is None else users).items():
            self.user_add(addr, pw)

    # --- config and admin tool -------------------------------------------

    def make_cert(self):
        """A self-signed certificate (cert.pem, key.pem) in the directory."""
        self.cert = self.dir / "cert.pem"
        self.key = self.dir / "key.pem"
        r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-days", "2", "-subj", f"/CN={HOSTNAME}",
                 "-addext", f"subjectAltName=DNS:{HOSTNAME},IP:127.0.0.1",
                 "-keyout", str(self.key), "-out", str(self.cert)])
        assert r.returncode == 0, f"openssl req: {r.stderr}"

    def write_config(self, extra_lines=""):
        lines = ["# written by tests/integration/tern_harness.py"]
        for k, v in self.settings.items():
            if v is not None:
                lines.append(f"{k} = {v}")
        self.conf.write_text("\n".join(lines) + "\n" + extra_lines)

    def tern(self, *args, input=None):
        return run([tern_bin(), "-c", str(self.conf), *args], input=input)

    def user_add(self, addr, pw):
        r = self.tern("user", "add", addr, "--password-stdin", input=pw + "\n")
        assert r.returncode == 0, f"tern user add {addr}: {r.stdout}{r.stderr}"
        self.passwords[addr] = pw
        return r

    # --- process ---------------------------------------------------------

    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None
        self.logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*self.cmd_prefix, ternd_bin(),
                                      "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logfile, stderr=self.logfile)
        if wait:
            ports = [self.smtp_port, self.pop3_port]
            for key, port in (("listen.submission", self.submission_port),
                              ("listen.submissions", self.submissions_port)):
                if port is not None and self.settings.get(key):
                    ports.append(port)
            for port in ports:
                if not wait_for_port(port, self.proc):
                    rc = self.proc.poll()
                    self.kill()
                    raise AssertionError(
                        f"ternd did not accept on port {port} (exit {rc})\n"
                        + self.log())
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=TIMEOUT):
        """Exit code, or None if still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=TIMEOUT):
        """SIGTERM, then SIGKILL if it does not go; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.proc.kill()
                self.proc.wait()
        self._closelog()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._closelog()

    def restart(self):
        self.stop()
        return self.start()

    def _closelog(self):
        f = getattr(self, "logfile", None)
        if f is not None:
            f.close()
            self.logfile = None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # --- mail store --------------------------------------------------------

    def maildir(self, addr):
        local, domain = addr.lower().split("@")
        return self.data_dir / "mail" / domain / local

    def message_files(self, addr):
        """Files in new/ and cur/, oldest first (by name, then mtime)."""
        md = self.maildir(addr)
        files = []
        for sub in ("new", "cur"):
            d = md / sub
            if d.is_dir():
                files.extend(p for p in d.iterdir() if p.is_file())
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        return files

    def messages(self, addr):
        return [p.read_bytes() for p in self.message_files(addr)]

    def queue_files(self):
        q = self.data_dir / "spool" / "queue"
        return sorted(p for p in q.iterdir() if p.is_file()) if q.is_dir() else []


# --- message helpers -----------------------------------------------------

ADDED = (b"return-path:", b"delivered-to:", b"received:")


def split_added(data, eol=b"\n"):
    """Splits a delivered message into (added header fields, message as sent).

    The delivery puts Return-Path, Delivered-To, then Received at the top; each
    field may be folded. Returns a dict name -> unfolded value and the rest.
    """
    added = {}
    order = []
    pos = 0
    for want in ADDED:
        end = data.find(eol, pos)
        assert end >= 0, f"no {want!r} header in {data[:300]!r}"
        line = data[pos:end]
        assert line.lower().startswith(want), \
            f"expected {want!r} field, got {line[:200]!r}"
        value = [line[len(want):].strip()]
        pos = end + len(eol)
        while data[pos:pos + 1] in (b" ", b"\t"):      # folded continuation
            end = data.find(eol, pos)
            value.append(data[pos:end].strip())
            pos = end + len(eol)
        added[want.decode().rstrip(":")] = b" ".join(value).decode("latin-1")
        order.append(want)
    return added, data[pos:]


def to_lf(data):
    return data.replace(b"\r\n", b"\n")


def check_maildir_name(path, data):
    """The Maildir name carries ,S=<size> and ,W=<size in CRLF form>."""
    m_s = re.search(r",S=(\d+)", path.name)
    m_w = re.search(r",W=(\d+)", path.name)
    assert m_s and m_w, f"no ,S= and ,W= in {path.name}"
    assert int(m_s.group(1)) == len(data), path.name
    crlf = len(data) + data.count(b"\n") - data.count(b"\r\n")
    assert int(m_w.group(1)) == crlf, path.name
    assert b"\r\n" not in data, "Maildir file must have LF line ends"


def make_message(subject, body, sender="sender@remote.test",
                 to="alice@example.test", extra=b""):
    """A message in wire form (CRLF) ending with CRLF."""
    if isinstance(body, str):
        body = body.encode()
    head = (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@test>\r\n").encode()
    body = to_lf(body).replace(b"\n", b"\r\n")
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return head + extra + b"\r\n" + body


# --- raw line-oriented client ---------------------------------------------

class Raw:
    """A plain socket speaking SMTP or POP3 by hand, for input smtplib and
    poplib cannot produce."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def readline(self):
        """One line with its CRLF; b"" on EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def eof(self):
        """True if the server closed the connection (nothing more to read)."""
        if self.buf:
            return False
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def smtp_reply(self):
        """(code, [text lines]) of one possibly multi-line SMTP reply."""
        lines = []
        while True:
            line = self.readline()
            assert line, f"connection closed; reply so far {lines!r}"
            assert line.endswith(b"\r\n"), f"reply line without CRLF: {line!r}"
            assert re.match(rb"^\d{3}[ -]", line), f"bad reply line {line!r}"
            lines.append(line[4:-2].decode("latin-1"))
            if line[3:4] == b" ":
                return int(line[:3]), lines

    def cmd(self, line):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.smtp_reply()

    def pop_line(self):
        line = self.readline()
        assert line.endswith(b"\r\n"), f"POP3 line without CRLF: {line!r}"
        return line[:-2]

    def pop_cmd(self, line):
        self.send(line + "\r\n")
        return self.pop_line()

    def pop_multi(self):
        """The lines of a POP3 multi-line body, dot-unstuffed."""
        out = []
        while True:
            line = self.pop_line()
            if line == b".":
                return out
            out.append(line[1:] if line.startswith(b".") else line)


def smtp_open(tern, ehlo="client.test"):
    """A Raw SMTP connection past greeting and EHLO."""
    r = Raw(tern.smtp_port)
    code, _ = r.smtp_reply()
    assert code == 220
    code, _ = r.cmd(f"EHLO {ehlo}")
    assert code == 250
    return r


def plain_b64(user, pw, authzid=""):
    return base64.b64encode(f"{authzid}\0{user}\0{pw}".encode()).decode()


def client_tls_context(tern):
    """An ssl context that trusts the server's self-signed certificate."""
    import ssl
    ctx = ssl.create_default_context(cafile=str(tern.cert))
    return ctx
