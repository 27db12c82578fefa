"""tern against Dovecot: IMAP operations per second and memory per idle
IDLE connection. Run it through bench/imap/run (which installs Dovecot,
builds tern in Release and raises the fd limit); see bench/README.md.
"""

import argparse
import array
import asyncio
import collections
import ctypes
import datetime
import json
import mmap
import os
import platform
import pwd
import grp
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import loadgen  # noqa: E402
import mailgen  # noqa: E402

DOMAIN = "example.test"
PASSWORD = "bench-pw"
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr,
          flush=True)


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_port(port, proc, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# --- /proc measures ----------------------------------------------------------

def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def pss_kib(pids):
    """The kernel's PSS summed over pids: quick, used to see memory settle."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for ln in f:
                    if ln.startswith("Pss:"):
                        total += int(ln.split()[1])
                        break
        except OSError:
            pass
    return total


def zero_frame():
    """The kernel's shared zero page, which a read of untouched anonymous
    memory maps and which PSS never counts."""
    m = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m[0]  # a read fault maps the zero page
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    with open("/proc/self/pagemap", "rb") as pm:
        pm.seek(addr // PAGE * 8)
        return int.from_bytes(pm.read(8), "little") & ((1 << 55) - 1)


def resident_frames(pid):
    """Physical page frames resident in pid's memory (root reads them)."""
    out = []
    try:
        with open(f"/proc/{pid}/maps") as maps, \
                open(f"/proc/{pid}/pagemap", "rb") as pm:
            for ln in maps:
                lo, hi = (int(x, 16) for x in ln.split(None, 1)[0].split("-"))
                if lo >= 1 << 47:  # [vsyscall]: no pagemap entries
                    continue
                pm.seek(lo // PAGE * 8)
                entries = array.array("Q")
                entries.frombytes(pm.read((hi - lo) // PAGE * 8))
                out.extend(e & ((1 << 55) - 1) for e in entries if e >> 63)
    except OSError:
        pass  # the process ended
    return out


def server_pss_kib(pids):
    """PSS as if the server ran alone: a frame that k of pids map counts
    1/k to each of them, however many other processes map it. The
    kernel's PSS also divides by the load generator's mappings: Python's
    ssl maps the same libcrypto as the server, so the server looked 2 MB
    smaller once 1,000 TLS clients were connected."""
    zero = zero_frame()
    frames = [resident_frames(p) for p in pids]
    count = collections.Counter()
    for f in frames:
        count.update(f)
    pages = sum(1.0 / count[x] for f in frames for x in f if x != zero)
    return round(pages * PAGE / 1024)


def cpu_seconds(root):
    """CPU of root, its live descendants and its reaped children."""
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])          # utime stime
        if p == root:
            total += int(fields[13]) + int(fields[14])      # cutime cstime
    return total / CLK


def fd_count(pids):
    n = 0
    for p in pids:
        try:
            n += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return n


def settled_pss(root, min_wait=2.0, max_wait=20.0):
    """The server's memory (server_pss_kib) once the kernel's PSS of its
    processes stops moving, and how many processes it has."""
    time.sleep(min_wait)
    last = pss_kib(tree(root))
    end = time.monotonic() + max_wait
    while time.monotonic() < end:
        time.sleep(1.0)
        now = pss_kib(tree(root))
        if abs(now - last) <= max(64, last * 0.005):
            break
        last = now
    pids = tree(root)
    return server_pss_kib(pids), len(pids)


# --- the two servers -----------------------------------------------------------

class Server:
    name = "?"
    proc = None

    def root_pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Tern(Server):
    name = "tern"

    def __init__(self, base, build, cert, key, users, hash_kind):
        self.dir = base / "tern"
        self.dir.mkdir()
        self.bin = build
        self.port, self.tls_port, smtp = free_ports(3)
        conf = [
            "hostname = mail.example.test", f"domains = {DOMAIN}",
            "data_dir = var", "users_file = users", "aliases_file = aliases",
            f"tls_cert = {cert}", f"tls_key = {key}", "log_level = warning",
            f"listen.smtp = 127.0.0.1:{smtp}",
            f"listen.imap = 127.0.0.1:{self.port}",
            f"listen.imaps = 127.0.0.1:{self.tls_port}",
            # 10,000 idle connections all come from 127.0.0.1.
            "connections_per_client = 30000", "max_connections = 30000",
        ]
        self.conf = self.dir / "tern.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        (self.dir / "users").write_text("")
        (self.dir / "aliases").write_text(
            f"postmaster: user1@{DOMAIN}\nabuse: user1@{DOMAIN}\n")
        if hash_kind == "yescrypt":
            # What `tern user add` writes today (yescrypt, and SCRAM secrets).
            for u in users:
                r = subprocess.run([str(build / "tern"), "-c", str(self.conf),
                                    "user", "add", u, "--password-stdin"],
                                   input=PASSWORD + "\n", text=True,
                                   capture_output=True)
                if r.returncode != 0:
                    raise SystemExit(f"tern user add {u}: {r.stdout}{r.stderr}")
        else:
            # SHA-512-crypt with glibc's default 5000 rounds: a login costs
            # a few ms instead of yescrypt's ~100 ms, so the runs measure
            # IMAP and not the password hash (10,000 logins per memory run).
            lines = []
            for u in users:
                h = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                                   input=PASSWORD + "\n", text=True,
                                   capture_output=True, check=True)
                lines.append(f"{u}:{h.stdout.strip()}\n")
            (self.dir / "users").write_text("".join(lines))

    def hashes(self):
        """user -> crypt(3) hash, read back from tern's users file."""
        out = {}
        for ln in (self.dir / "users").read_text().splitlines():
            if ln and not ln.startswith("#"):
                user, rest = ln.split(":", 1)
                out[user] = rest.split(":")[0]
        return out

    def maildir(self, user):
        local, dom = user.split("@")
        return self.dir / "var" / "mail" / dom / local

    def start(self):
        self.log = open(self.dir / "ternd.log", "ab")
        self.proc = subprocess.Popen([str(self.bin / "ternd"), "-c",
                                      str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        for p in (self.port, self.tls_port):
            if not wait_port(p, self.proc):
                raise SystemExit("ternd did not start:\n" +
                                 (self.dir / "ternd.log").read_text()[-3000:])


class Dovecot(Server):
    name = "dovecot"

    def __init__(self, base, cert, key, hashes, hibernate=False):
        self.dir = base / ("dovecot-hib" if hibernate else "dovecot")
        self.dir.mkdir()
        for sub in ("run", "state", "mail"):
            (self.dir / sub).mkdir()
        self.port, self.tls_port = free_ports(2)
        (self.dir / "passwd").write_text(
            "".join(f"{u}:{h}\n" for u, h in hashes.items()))
        os.chmod(self.dir / "passwd", 0o644)
        d = self.dir
        # Dovecot's defaults, except what a private instance needs and the
        # limits for 10,000 connections (one imap process per connection,
        # one imap-login process per connection in high-security mode).
        conf = f"""# written by bench/imap/bench.py
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~
passdb {{
  driver = passwd-file
  args = scheme=CRYPT username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%d/%n
}}
default_client_limit = 12000
service imap-login {{
  process_limit = 10500
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = {self.tls_port}
    ssl = yes
  }}
}}
service imap {{
  process_limit = 10500
}}
protocol imap {{
  mail_max_userip_connections = 20000
}}
"""
        if hibernate:
            # Labelled separately: idle IDLE sessions are handed to the
            # imap-hibernate process after 2 s (not Dovecot's default).
            conf = conf.replace("service imap {\n", """service imap {
  unix_listener imap-master {
    mode = 0666
  }
""")
            conf += """imap_hibernate_timeout = 2s
service imap-hibernate {
  unix_listener imap-hibernate {
    mode = 0666
  }
}
"""
        self.conf = d / "dovecot.conf"
        self.conf.write_text(conf)

    def maildir(self, user):
        local, dom = user.split("@")
        return self.dir / "mail" / dom / local

    def chown_mail(self):
        uid = pwd.getpwnam("nobody").pw_uid
        gid = grp.getgrnam("nogroup").gr_gid
        for root, dirs, files in os.walk(self.dir / "mail"):
            os.chown(root, uid, gid)
            for f in files:
                os.chown(os.path.join(root, f), uid, gid)

    def start(self):
        self.log = open(self.dir / "stdout.log", "ab")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        for p in (self.port, self.tls_port):
            if not wait_port(p, self.proc):
                raise SystemExit("dovecot did not start:\n" + self.logtail())

    def logtail(self):
        out = ""
        for f in ("stdout.log", "dovecot.log"):
            p = self.dir / f
            if p.exists():
                out += p.read_text(errors="replace")[-3000:]
        return out


# --- warm-up and probe -----------------------------------------------------------

async def warm(port, users, conc=8):
    """Every user logs in and reads its INBOX once, so both servers build
    their indexes before anything is measured."""
    sem = asyncio.Semaphore(conc)

    async def one(u):
        async with sem:
            s = await loadgen.connect("127.0.0.1", port, None)
            for c in (b"LOGIN %s %s" % (u.encode(), PASSWORD.encode()),
                      b"SELECT INBOX", b"FETCH 1:* (UID FLAGS RFC822.SIZE "
                      b"ENVELOPE BODYSTRUCTURE)", b"LOGOUT"):
                ok, t, _ = await s.cmd(c)
                if not ok:
                    raise SystemExit(f"warm-up {u}: {c!r} -> {t!r}")
            s.w.close()
    await asyncio.gather(*(one(u) for u in users))


async def probe(port, user, kinds):
    """Which kinds of the mix the server answers OK; the others are left
    out of the mix (for both servers) and named in the results."""
    bad = {}
    s = await loadgen.connect("127.0.0.1", port, None)
    await s.cmd(b"LOGIN %s %s" % (user.encode(), PASSWORD.encode()))
    await s.cmd(b"SELECT INBOX")
    tests = {
        "fetch_hdr": [b"FETCH 1:10 (UID FLAGS RFC822.SIZE ENVELOPE)",
                      b"FETCH 1 (UID BODY.PEEK[HEADER])"],
        "fetch_body": [b"FETCH 1 (BODY.PEEK[])"],
        "search": list(loadgen.SEARCHES),
        "store": [b"STORE 1 +FLAGS (\\Flagged)", b"STORE 1 -FLAGS (\\Flagged)"],
        "store_del": [b"STORE 1 +FLAGS (\\Flagged)"],
        "expunge": [b"EXPUNGE"],
    }
    for k in kinds:
        if k == "append":
            ok, t, _ = await s.cmd(b"APPEND INBOX (\\Seen)", loadgen.APPEND_MSG)
            if ok:
                m = loadgen.APPENDUID_RE.search(t)
                if m:
                    await s.cmd(b"UID STORE %s +FLAGS.SILENT (\\Deleted)"
                                % m.group(1))
                    await s.cmd(b"EXPUNGE")
            else:
                bad[k] = t.decode(errors="replace").strip()
            continue
        for c in tests[k]:
            ok, t, _ = await s.cmd(c)
            if not ok:
                bad[k] = f"{c.decode()} -> {t.decode(errors='replace').strip()}"
                break
    await s.cmd(b"LOGOUT")
    s.w.close()
    return bad


# --- runs -------------------------------------------------------------------------

def run_ops(a, srv, clients, mix):
    procs = max(1, min(a.procs, clients))
    start_at = time.time() + 1.0
    gens = []
    per = [clients // procs + (1 if i < clients % procs else 0)
           for i in range(procs)]
    base = 0
    for n in per:
        gens.append(subprocess.Popen(
            [sys.executable, str(HERE / "loadgen.py"), "ops",
             "--port", str(srv.port), "--clients", str(n),
             "--clients-total", str(clients), "--client-base", str(base),
             "--users", str(a.users), "--password", PASSWORD,
             "--mix", ",".join(mix), "--duration", str(a.duration),
             "--warmup", str(a.warmup), "--start-at", str(start_at),
             "--base-messages", str(a.messages)],
            stdout=subprocess.PIPE, text=True))
        base += n
    time.sleep(max(0, start_at + a.warmup - time.time()))
    c0 = cpu_seconds(srv.root_pid())
    time.sleep(a.duration)
    c1 = cpu_seconds(srv.root_pid())
    res = [json.loads(g.communicate(timeout=120)[0]) for g in gens]
    ops = {k: sum(r["ops"][k] for r in res) for k in loadgen.KINDS}
    lat = {k: sum(r["lat_sum"][k] for r in res) for k in loadgen.KINDS}
    errs = {k: sum(r["errors"][k] for r in res) for k in loadgen.KINDS}
    total = sum(ops.values())
    out = {
        "server": srv.name, "clients": clients, "ops": total,
        "ops_per_s": total / a.duration, "by_kind": ops,
        "mean_ms": {k: (1000 * lat[k] / ops[k]) if ops[k] else None
                    for k in loadgen.KINDS},
        "errors": sum(errs.values()) + sum(r["conn_errors"] for r in res),
        "errors_by_kind": errs,
        "samples": sum((r["samples"] for r in res), [])[:10],
        "server_cpu": (c1 - c0) / a.duration,
        "gen_cpu": sum(r["cpu"] for r in res) / max(r["wall"] for r in res),
        "gen_procs": procs,
    }
    log(f"  {srv.name} {clients} clients: {out['ops_per_s']:.0f} ops/s, "
        f"errors {out['errors']}, server CPU {out['server_cpu']:.2f}, "
        f"generator CPU {out['gen_cpu']:.2f} cores")
    if out["samples"]:
        log(f"  error samples: {out['samples']}")
    return out


def idle_clients(a, srv, n, tls):
    """Starts the load generator's n idle connections; returns it and its
    report once they are all open (or failed)."""
    g = subprocess.Popen(
        [sys.executable, str(HERE / "loadgen.py"), "idle",
         "--port", str(srv.tls_port if tls else srv.port),
         *(["--tls"] if tls else []), "--clients", str(n),
         "--users", str(a.users), "--password", PASSWORD,
         "--concurrency", str(a.concurrency), "--stage", a.idle_stage],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return g, json.loads(g.stdout.readline())


def close_clients(g):
    """Closes the generator's connections; how many were still alive."""
    g.stdin.write("\n")
    g.stdin.flush()
    end = json.loads(g.stdout.readline())
    g.wait(timeout=120)
    return end["alive_at_end"]


def run_idle(a, srv, n, tls):
    """Memory per idle connection, twice: from the fresh server ("cold":
    everything it pays once, such as SQLite's code and the TLS handshake's
    paged in, spread over the n connections) and from after one session
    of the same kind came and went ("warm": what each connection costs)."""
    root = srv.root_pid()
    fresh, nproc0 = settled_pss(root, min_wait=1.0)
    g, _ = idle_clients(a, srv, 1, tls)
    close_clients(g)
    warm, _ = settled_pss(root, min_wait=1.0)
    fds0 = fd_count(tree(root))
    g, ready = idle_clients(a, srv, n, tls)
    after, nproc1 = settled_pss(root, min_wait=6.0 if "hib" in srv.name else 2.0)
    fds1 = fd_count(tree(root))
    alive = close_clients(g)
    opened = max(1, ready["ready"])
    per = (after - fresh) / opened
    out = {"server": srv.name, "n": n, "tls": tls, "open": ready["ready"],
           "alive_at_end": alive,
           "pss_fresh_kib": fresh, "pss_warm_kib": warm,
           "pss_after_kib": after,
           "kib_per_conn": per, "warm_kib_per_conn": (after - warm) / opened,
           "processes": nproc1,
           "fds_per_conn": (fds1 - fds0) / opened,
           "open_seconds": ready["open_seconds"], "gen_cpu": ready["cpu"],
           "errors": sum(ready["errors"].values()) + ready["conn_errors"],
           "samples": ready["samples"]}
    log(f"  {srv.name} {n} {'TLS' if tls else 'plain'}: {ready['ready']} "
        f"open ({alive} alive at end), {per:.1f} KiB/conn cold, "
        f"{out['warm_kib_per_conn']:.1f} warm, "
        f"{nproc1} processes, "
        f"{out['fds_per_conn']:.1f} fds/conn, opened in {ready['open_seconds']:.0f}s")
    if ready["samples"]:
        log(f"  error samples: {ready['samples']}")
    # Let the server close and forget them before the next measure.
    time.sleep(3)
    return out


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith("MemAvailable:"):
                return int(ln.split()[1])
    return 0


# --- report ----------------------------------------------------------------------

def fmt(x, nd=0):
    return "-" if x is None else f"{x:,.{nd}f}"


def cold_warm(r):
    """"cold / warm" KiB per connection of an idle run's result."""
    if not r:
        return "-"
    return f"{fmt(r['kib_per_conn'], 1)} / {fmt(r.get('warm_kib_per_conn'), 1)}"


def marginal_kib(res, server, tls):
    """KiB each further idle connection costs: the memory of the largest
    run minus the smallest's, over the difference in connections. Both
    runs start from a fresh server, so what it pays once cancels out, and
    so does what a burst of logins leaves behind."""
    runs = sorted((r for r in res["idle"] if r["server"] == server
                   and r["tls"] == tls and not r.get("extrapolated")),
                  key=lambda r: r["open"])
    if len(runs) < 2 or runs[-1]["open"] == runs[0]["open"]:
        return None
    lo, hi = runs[0], runs[-1]
    return ((hi["pss_after_kib"] - lo["pss_after_kib"])
            / (hi["open"] - lo["open"]), lo["open"], hi["open"])


def report(a, res, mix, dropped, started):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    dv = subprocess.run(["dovecot", "--version"], capture_output=True,
                        text=True).stdout.strip()
    L = [f"# IMAP benchmark, tern against Dovecot ({started:%Y-%m-%d %H:%M} UTC)",
         "",
         f"Machine: {os.cpu_count()} CPUs ({cpu}), kernel "
         f"{platform.release()}, "
         f"{round(int(open('/proc/meminfo').readline().split()[1]) / 1048576)} "
         f"GiB RAM. Dovecot {dv}. tern {a.tern_rev}.",
         f"Setup: {a.users} users, {a.messages} messages each "
         f"({a.mail_kib:,} KiB per mailbox), the same in both Maildirs. "
         f"Ops runs: {a.duration:g} s measured after {a.warmup:g} s warm-up, "
         f"{a.procs} generator process(es).",
         f"Mix per session: LOGIN, SELECT, {', '.join(mix)}, LOGOUT.",
         ]
    if dropped:
        L.append("")
        L.append("**Reduced mix**: left out for both servers because tern "
                 "refused them: " + "; ".join(f"`{k}` ({v})"
                                               for k, v in dropped.items()))
    if a.note:
        L += ["", a.note]
    if res["ops"]:
        L += ["", "## Operations per second (plaintext, port 143)", "",
              "| clients | tern ops/s | Dovecot ops/s | tern/Dovecot | errors "
              "(tern / Dovecot) | server CPU cores (tern / Dovecot) | "
              "generator CPU cores (tern / Dovecot run) |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for n in a.clients:
            t = next((r for r in res["ops"] if r["server"] == "tern"
                      and r["clients"] == n), None)
            d = next((r for r in res["ops"] if r["server"] == "dovecot"
                      and r["clients"] == n), None)
            ratio = (t["ops_per_s"] / d["ops_per_s"]) if t and d and \
                d["ops_per_s"] else None
            L.append(f"| {n} | {fmt(t and t['ops_per_s'])} | "
                     f"{fmt(d and d['ops_per_s'])} | {fmt(ratio, 2)} | "
                     f"{t and t['errors']} / {d and d['errors']} | "
                     f"{fmt(t and t['server_cpu'], 2)} / "
                     f"{fmt(d and d['server_cpu'], 2)} | "
                     f"{fmt(t and t['gen_cpu'], 2)} / "
                     f"{fmt(d and d['gen_cpu'], 2)} |")
        L += ["", "Mean latency per command in ms (tern / Dovecot):", "",
              "| clients | " + " | ".join(loadgen.KINDS) + " |",
              "| ---: |" + " ---: |" * len(loadgen.KINDS)]
        for n in a.clients:
            t = next((r for r in res["ops"] if r["server"] == "tern"
                      and r["clients"] == n), None)
            d = next((r for r in res["ops"] if r["server"] == "dovecot"
                      and r["clients"] == n), None)
            cells = []
            for k in loadgen.KINDS:
                cells.append(f"{fmt(t and t['mean_ms'][k], 1)} / "
                             f"{fmt(d and d['mean_ms'][k], 1)}")
            L.append(f"| {n} | " + " | ".join(cells) + " |")
    if res["idle"]:
        L += ["", "## Server memory per idle IDLE connection", "",
              "The server's memory with the connections open minus before, "
              "divided by the connections: PSS over the server's processes, "
              "a page shared with k of them counting 1/k (pages shared with "
              "the load generator count whole). **cold**: from the fresh "
              "server, so what it pays once (code paged in, per-user "
              "state) is spread over the connections; **warm**: from after "
              "one session of the same kind came and went."
              + ("" if a.idle_stage == "idle" else
                 f" **Connections stopped after {a.idle_stage.upper()}, "
                 "not in IDLE.**"), "",
              "| connections | transport | tern KiB/conn (cold / warm) "
              "| Dovecot KiB/conn (cold / warm) | tern/Dovecot (cold) | Dovecot processes | open (tern / Dovecot) "
              "| server fds per conn (tern / Dovecot) |",
              "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for tls in (False, True):
            for n in a.idle:
                t = next((r for r in res["idle"] if r["server"] == "tern"
                          and r["n"] == n and r["tls"] == tls), None)
                d = next((r for r in res["idle"] if r["server"] == "dovecot"
                          and r["n"] == n and r["tls"] == tls), None)
                if not t and not d:
                    continue
                ratio = (t["kib_per_conn"] / d["kib_per_conn"]) if t and d \
                    and d["kib_per_conn"] else None
                dcell = cold_warm(d)
                if d and d.get("extrapolated"):
                    dcell = f"({dcell}: the {min(a.idle):,} figure, not measured)"
                L.append(f"| {n:,} | {'TLS 993' if tls else 'plain 143'} | "
                         f"{cold_warm(t)} | "
                         f"{dcell} | "
                         f"{fmt(ratio, 3)} | {d and not d.get('extrapolated') and d['processes'] or '-'} | "
                         f"{t and t['open']} / "
                         f"{'-' if d and d.get('extrapolated') else d and d['open']} | "
                         f"{fmt(t and t.get('fds_per_conn'), 1)} / "
                         f"{fmt(d and d.get('fds_per_conn'), 1)} |")
        hib = [r for r in res["idle"] if r["server"] == "dovecot-hibernate"]
        for r in hib:
            L.append(f"| {r['n']:,} | {'TLS 993' if r['tls'] else 'plain 143'}"
                     f" | | {cold_warm(r)} (Dovecot with "
                     f"imap_hibernate_timeout) | | {r['processes']} | "
                     f"{r['open']} |")
        for tls in (False, True):
            m = marginal_kib(res, "tern", tls)
            if m:
                L.append(f"\ntern, each further {'TLS' if tls else 'plain'} "
                         f"connection: {m[0]:.1f} KiB (the {m[2]:,} run's "
                         f"memory minus the {m[1]:,} run's, over "
                         f"{m[2] - m[1]:,} connections).")
        for s in res.get("skipped", []):
            L.append(f"\nSkipped: {s}")
    L += ["", "Goals (issue 4): at least 2x Dovecot's ops/s; at most 16 KiB "
          "per idle IDLE connection, plaintext or TLS.", ""]
    return "\n".join(L)


# --- main ---------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True, help="tern build directory")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--clients", default="10,100")
    p.add_argument("--idle", default="1000,10000")
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--mix", default=",".join(loadgen.FULL_MIX))
    p.add_argument("--strict", action="store_true",
                   help="fail instead of leaving out what tern refuses")
    p.add_argument("--hash", choices=["sha512", "yescrypt"], default="sha512",
                   help="password hash of the test users (same in both)")
    p.add_argument("--idle-stage", choices=["login", "select", "idle"],
                   default="idle", help="memory runs: stop each connection "
                   "after LOGIN or SELECT instead of IDLE (to see what costs)")
    p.add_argument("--dovecot-max-idle", type=int, default=1000,
                   help="measure Dovecot idle only up to this many "
                   "connections; larger N reuse that figure (labelled)")
    p.add_argument("--servers", default="tern,dovecot")
    p.add_argument("--no-ops", action="store_true")
    p.add_argument("--no-idle", action="store_true")
    p.add_argument("--no-tls", action="store_true")
    p.add_argument("--dovecot-hibernate", action="store_true",
                   help="also measure Dovecot with imap_hibernate_timeout")
    p.add_argument("--note", default="")
    p.add_argument("--out", default=str(HERE.parent / "results"))
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    a = p.parse_args()
    a.clients = [int(x) for x in a.clients.split(",") if x]
    a.idle = [int(x) for x in a.idle.split(",") if x]
    servers = a.servers.split(",")
    started = datetime.datetime.now(datetime.timezone.utc)
    repo = HERE.parent.parent
    a.tern_rev = subprocess.run(["git", "-C", str(repo), "rev-parse",
                                 "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < max(a.idle + [0]) + 1000:
        log(f"warning: ulimit -n is {soft}; 10,000 connections need more")

    base = Path(tempfile.mkdtemp(prefix="tern-bench-"))
    os.chmod(base, 0o755)
    log(f"working in {base}")
    build = Path(a.build).resolve()
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "2", "-subj", "/CN=mail.example.test",
                    "-addext", "subjectAltName=DNS:mail.example.test,"
                    "IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    os.chmod(key, 0o644)   # Dovecot reads it as root; tern as root too
    users = [f"user{i}@{DOMAIN}" for i in range(1, a.users + 1)]
    started_servers = []
    res = {"ops": [], "idle": [], "skipped": []}
    try:
        log(f"creating {a.users} users ({a.hash} hashes)")
        tern = Tern(base, build, cert, key, users, a.hash)
        dove = Dovecot(base, cert, key, tern.hashes())
        dove_h = Dovecot(base, cert, key, tern.hashes(), hibernate=True) \
            if a.dovecot_hibernate else None
        log(f"writing {a.messages} messages into each of {a.users} "
            f"mailboxes, for each server")
        for i, u in enumerate(users):
            roots = [tern.maildir(u), dove.maildir(u)]
            if dove_h:
                roots.append(dove_h.maildir(u))
            size = mailgen.fill_maildirs(roots, u, a.messages, seed=i + 1)
        a.mail_kib = size // 1024
        dove.chown_mail()
        if dove_h:
            dove_h.chown_mail()
        srvs = {"tern": tern, "dovecot": dove}
        for name in servers:
            srvs[name].start()
            started_servers.append(srvs[name])
            log(f"{name} up (imap {srvs[name].port}, imaps "
                f"{srvs[name].tls_port}); warming up")
            t0 = time.monotonic()
            asyncio.run(warm(srvs[name].port, users))
            log(f"  warm-up took {time.monotonic() - t0:.1f}s")
        mix = [k for k in a.mix.split(",") if k]
        dropped = {}
        if "tern" in servers:
            dropped = asyncio.run(probe(tern.port, users[0], sorted(set(mix))))
            if dropped:
                msg = f"tern refuses {dropped}"
                if a.strict:
                    raise SystemExit(msg)
                log(f"WARNING: {msg}; leaving those out of the mix for both")
                mix = [k for k in mix if k not in dropped]
        if "dovecot" in servers:
            bad = asyncio.run(probe(dove.port, users[0], sorted(set(mix))))
            if bad:
                raise SystemExit(f"Dovecot refuses part of the mix: {bad}")
        if not a.no_ops:
            log("operations per second")
            for n in a.clients:
                for name in servers:
                    res["ops"].append(run_ops(a, srvs[name], n, mix))
        if not a.no_idle:
            log("memory per idle IDLE connection")
            for tls in ([False] if a.no_tls else [False, True]):
                for n in a.idle:
                    for name in servers:
                        srv = srvs[name]
                        prev = [r for r in res["idle"] if r["server"] == name
                                and r["tls"] == tls and r["n"] < n
                                and not r.get("extrapolated")]
                        if name == "dovecot" and n > a.dovecot_max_idle \
                                and prev:
                            # One imap process per connection (and one
                            # imap-login per TLS one): the figure per
                            # connection does not fall with N, and 10,000
                            # Dovecot logins take 5+ minutes here.
                            r = dict(prev[-1], n=n, extrapolated=True)
                            res["idle"].append(r)
                            log(f"  dovecot {n}: not measured (above "
                                f"--dovecot-max-idle), using the "
                                f"{prev[-1]['n']} figure")
                            continue
                        if prev:
                            need = prev[-1]["kib_per_conn"] * n * 1.3 + 2e6
                            if need > mem_available_kib():
                                s = (f"{name} {n} {'TLS' if tls else 'plain'}"
                                     f": needs about {need / 1048576:.1f} GiB"
                                     f", {mem_available_kib() / 1048576:.1f}"
                                     f" GiB available")
                                log("skipped: " + s)
                                res["skipped"].append(s)
                                continue
                        # A fresh server for each measure: memory freed by
                        # earlier rounds stays in the heap and would be
                        # reused for free (run_idle's warm-up is one
                        # session, a few kilobytes).
                        srv.stop()
                        srv.start()
                        res["idle"].append(run_idle(a, srv, n, tls))
            if dove_h:
                dove.stop()
                dove_h.start()
                started_servers.append(dove_h)
                asyncio.run(warm(dove_h.port, users))
                dove_h.name = "dovecot-hibernate"
                for tls in ([False] if a.no_tls else [False, True]):
                    r = run_idle(a, dove_h, min(a.idle), tls)
                    res["idle"].append(r)
    finally:
        for s in started_servers:
            s.stop()
        if a.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    text = report(a, res, mix, dropped, started)
    print(text)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"imap-{started:%Y-%m-%d}"
    path = stem.with_suffix(".md")
    i = 2
    while path.exists():
        path = Path(f"{stem}-{i}.md")
        i += 1
    path.write_text(text)
    path.with_suffix(".json").write_text(json.dumps(res, indent=1))
    log(f"written {path} and {path.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
