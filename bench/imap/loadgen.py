"""IMAP load generator: asyncio over raw sockets, one process.

Two modes, each printing one JSON object on stdout at the end:

  ops   N clients, each looping: connect, LOGIN, SELECT INBOX, the mix,
        LOGOUT. Every command (LOGIN, SELECT, each of the mix, LOGOUT) that
        completes inside the measured window counts as one operation; a
        tagged NO or BAD, or a broken connection, counts as an error.
  idle  opens N connections: LOGIN, SELECT INBOX, IDLE; prints
        {"ready": ...} once all idle, then waits for a line on stdin and
        closes them all.

The generator reports its own CPU time (getrusage) so the caller can tell
whether it, and not the server, was the bottleneck.
"""

import argparse
import asyncio
import json
import random
import re
import resource
import ssl
import sys
import time

# The full mix, in the order one session runs it (issue 4): 3x header
# fetch, 2x body fetch, 1x SEARCH, 2x STORE, 1x APPEND, 1x EXPUNGE of
# what was appended. The second STORE marks the appended message \Deleted.
FULL_MIX = ["fetch_hdr", "fetch_body", "search", "fetch_hdr", "store",
            "append", "fetch_body", "fetch_hdr", "store_del", "expunge"]
KINDS = ["login", "select", "fetch_hdr", "fetch_body", "search", "store",
         "append", "store_del", "expunge", "logout"]

LIT_RE = re.compile(rb"\{(\d+)\+?\}\r\n$")
EXISTS_RE = re.compile(rb"^\* (\d+) EXISTS")
APPENDUID_RE = re.compile(rb"\[APPENDUID \d+ (\d+)\]")

APPEND_MSG = (
    b"From: Load Generator <loadgen@example.org>\r\n"
    b"To: someone@example.test\r\n"
    b"Subject: appended by the benchmark\r\n"
    b"Date: Mon, 2 Sep 2024 10:00:00 +0000\r\n"
    b"Message-ID: <bench-append@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n" + b"This message was appended and will be expunged again.\r\n" * 40)

SEARCHES = [b"SEARCH UNSEEN", b'SEARCH FROM "martin"',
            b'SEARCH SUBJECT "report"', b"SEARCH FLAGGED SINCE 1-Jan-2024"]


class ImapError(Exception):
    pass


class Session:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.n = 0

    async def line(self):
        """One logical response line, literals included."""
        parts = []
        while True:
            ln = await self.r.readline()
            if not ln:
                raise ImapError("connection closed")
            parts.append(ln)
            m = LIT_RE.search(ln)
            if not m:
                return b"".join(parts)
            parts.append(await self.r.readexactly(int(m.group(1))))

    async def cmd(self, text, literal=None):
        """Sends a command; returns (ok, tagged line, untagged lines)."""
        self.n += 1
        tag = b"t%d" % self.n
        if literal is None:
            self.w.write(tag + b" " + text + b"\r\n")
        else:
            self.w.write(tag + b" " + text + b" {%d}\r\n" % len(literal))
            ln = await self.line()
            if not ln.startswith(b"+"):
                return False, ln, []
            self.w.write(literal + b"\r\n")
        untagged = []
        while True:
            ln = await self.line()
            if ln.startswith(tag + b" "):
                return ln[len(tag) + 1:].startswith(b"OK"), ln, untagged
            untagged.append(ln)


async def connect(host, port, ctx):
    r, w = await asyncio.open_connection(host, port, ssl=ctx,
                                         limit=1 << 20)
    s = Session(r, w)
    g = await s.line()
    if not g.startswith(b"* OK"):
        raise ImapError(f"greeting {g[:80]!r}")
    return s


def tls_ctx(use_tls):
    if not use_tls:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Stats:
    def __init__(self):
        self.ops = {k: 0 for k in KINDS}
        self.lat = {k: 0.0 for k in KINDS}
        self.errors = {k: 0 for k in KINDS}
        self.conn_errors = 0
        self.samples = []

    def error(self, kind, line):
        self.errors[kind] += 1
        if len(self.samples) < 10:
            self.samples.append(f"{kind}: {line[:160]!r}")


async def ops_client(a, idx, users, t_start, t_end, st, ctx):
    rnd = random.Random(idx)
    mix = a.mix.split(",") if a.mix else []
    k = idx
    while time.monotonic() < t_end:
        user = users[k % len(users)]
        k += a.clients_total
        try:
            s = await connect(a.host, a.port, ctx)
        except (OSError, ImapError, ssl.SSLError) as e:
            st.conn_errors += 1
            if len(st.samples) < 10:
                st.samples.append(f"connect: {e}")
            await asyncio.sleep(0.1)
            continue
        appended = None
        exists = 1

        async def op(kind, text, literal=None):
            t0 = time.monotonic()
            ok, tagged, untagged = await s.cmd(text, literal)
            t1 = time.monotonic()
            if t_start <= t1 <= t_end:
                st.ops[kind] += 1
                st.lat[kind] += t1 - t0
                if not ok:
                    st.error(kind, tagged)
            return ok, tagged, untagged

        try:
            await op("login", b"LOGIN %s %s" % (user.encode(),
                                               a.password.encode()))
            ok, _, unt = await op("select", b"SELECT INBOX")
            for ln in unt:
                m = EXISTS_RE.match(ln)
                if m:
                    exists = max(1, int(m.group(1)))
            for kind in mix:
                if time.monotonic() >= t_end:
                    break
                n = rnd.randint(1, min(exists, a.base_messages))
                if kind == "fetch_hdr":
                    if rnd.random() < 0.5:
                        lo = rnd.randint(1, max(1, exists - 9))
                        await op(kind, b"FETCH %d:%d (UID FLAGS RFC822.SIZE "
                                 b"ENVELOPE)" % (lo, min(exists, lo + 9)))
                    else:
                        await op(kind, b"FETCH %d (UID BODY.PEEK[HEADER])" % n)
                elif kind == "fetch_body":
                    await op(kind, b"FETCH %d (BODY.PEEK[])" % n)
                elif kind == "search":
                    await op(kind, rnd.choice(SEARCHES))
                elif kind == "store":
                    f = rnd.choice([b"+FLAGS (\\Seen)", b"-FLAGS (\\Seen)",
                                    b"+FLAGS (\\Flagged)",
                                    b"-FLAGS (\\Flagged)"])
                    await op(kind, b"STORE %d %s" % (n, f))
                elif kind == "append":
                    ok, tagged, _ = await op(kind, b"APPEND INBOX (\\Seen)",
                                             APPEND_MSG)
                    m = APPENDUID_RE.search(tagged)
                    appended = m.group(1) if (ok and m) else None
                elif kind == "store_del":
                    if appended is not None:
                        await op(kind, b"UID STORE %s +FLAGS.SILENT "
                                 b"(\\Deleted)" % appended)
                    else:
                        await op(kind, b"STORE %d +FLAGS (\\Flagged)" % n)
                elif kind == "expunge":
                    await op(kind, b"EXPUNGE")
                    appended = None
                else:
                    raise SystemExit(f"unknown mix item {kind}")
            await op("logout", b"LOGOUT")
        except (OSError, ImapError, ssl.SSLError,
                asyncio.IncompleteReadError) as e:
            st.conn_errors += 1
            if len(st.samples) < 10:
                st.samples.append(f"session: {e}")
        finally:
            s.w.close()


async def run_ops(a):
    users = [f"{a.user_prefix}{i}@{a.domain}" for i in range(1, a.users + 1)]
    st = Stats()
    ctx = tls_ctx(a.tls)
    now = time.time()
    if a.start_at > now:
        await asyncio.sleep(a.start_at - now)
    t0 = time.monotonic()
    t_start = t0 + a.warmup
    t_end = t_start + a.duration
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    tasks = [asyncio.create_task(ops_client(a, a.client_base + i, users,
                                            t_start, t_end, st, ctx))
             for i in range(a.clients)]
    await asyncio.gather(*tasks)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    wall = time.monotonic() - t0
    print(json.dumps({
        "ops": st.ops, "lat_sum": st.lat, "errors": st.errors,
        "conn_errors": st.conn_errors, "samples": st.samples,
        "duration": a.duration, "cpu": cpu, "wall": wall}))


async def idle_one(a, i, users, ctx, sem, conns, st):
    async with sem:
        for attempt in range(5):
            try:
                s = await asyncio.wait_for(connect(a.host, a.port, ctx), 60)
                user = users[i % len(users)]
                ok, t, _ = await s.cmd(b"LOGIN %s %s" % (
                    user.encode(), a.password.encode()))
                if not ok:
                    st.error("login", t)
                    return
                if a.stage == "login":
                    conns.append(s)
                    return
                ok, t, _ = await s.cmd(b"SELECT INBOX")
                if not ok:
                    st.error("select", t)
                    return
                if a.stage == "select":
                    conns.append(s)
                    return
                s.n += 1
                s.w.write(b"i%d IDLE\r\n" % s.n)
                ln = await s.line()
                if not ln.startswith(b"+"):
                    st.error("select", ln)
                    return
                conns.append(s)
                return
            except (OSError, ImapError, ssl.SSLError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError) as e:
                if attempt == 4:
                    st.conn_errors += 1
                    if len(st.samples) < 10:
                        st.samples.append(f"idle connect: {e!r}")
                await asyncio.sleep(0.2 * (attempt + 1))


async def run_idle(a):
    users = [f"{a.user_prefix}{i}@{a.domain}" for i in range(1, a.users + 1)]
    st = Stats()
    ctx = tls_ctx(a.tls)
    sem = asyncio.Semaphore(a.concurrency)
    conns = []
    t0 = time.monotonic()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(idle_one(a, i, users, ctx, sem, conns, st)
                           for i in range(a.clients)))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"ready": len(conns), "errors": st.errors,
                      "conn_errors": st.conn_errors, "samples": st.samples,
                      "open_seconds": time.monotonic() - t0,
                      "cpu": (ru1.ru_utime - ru0.ru_utime)
                      + (ru1.ru_stime - ru0.ru_stime)}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    # Are they all still there? A closed connection reads EOF at once.
    alive = sum(1 for s in conns if not s.r.at_eof())
    for s in conns:
        s.w.close()
    print(json.dumps({"alive_at_end": alive}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["ops", "idle"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--clients-total", type=int, default=0,
                   help="clients over all generator processes")
    p.add_argument("--client-base", type=int, default=0)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--user-prefix", default="user")
    p.add_argument("--domain", default="example.test")
    p.add_argument("--password", default="bench-pw")
    p.add_argument("--mix", default=",".join(FULL_MIX))
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--base-messages", type=int, default=1 << 30,
                   help="messages that are never expunged (fetched, stored)")
    p.add_argument("--start-at", type=float, default=0)
    p.add_argument("--stage", choices=["login", "select", "idle"],
                   default="idle", help="idle mode: how far each "
                   "connection goes before it waits")
    p.add_argument("--concurrency", type=int, default=64)
    a = p.parse_args()
    if not a.clients_total:
        a.clients_total = a.clients
    asyncio.run(run_ops(a) if a.mode == "ops" else run_idle(a))


if __name__ == "__main__":
    main()
