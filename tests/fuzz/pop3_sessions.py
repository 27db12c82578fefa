#!/usr/bin/env python3
"""Random POP3 sessions against a real ternd, looking for a crash, a hang,
a malformed reply or a sanitizer report: what the libFuzzer targets cannot
reach (the command split, AUTHORIZATION with its pauses and pool checks,
TRANSACTION on a real locked Maildir, the RETR/TOP stream).

    TERN_BIN_DIR=build-dev tests/fuzz/pop3_sessions.py [SEED [SECONDS]]

Starts ternd (the harness of tests/integration) with a few messages for
demo (small ones, lines starting with ".", a few hundred KB one with lines
longer than the 64 KiB read chunk, one without a body, one dropped into
new/ by hand in CRLF form without a final line end), then keeps up to
three raw connections, most of them as demo, and takes random steps on
them: USER/PASS right and wrong, AUTH PLAIN/LOGIN/SCRAM-SHA-256 with valid
and garbage base64, initial responses and "*", CAPA, STAT, LIST, UIDL,
TOP, RETR, DELE, RSET, NOOP, QUIT, STLS (no TLS configured), and byte
mutations of them: numbers at the edges, extra and missing arguments,
runs of spaces, lowercase, empty lines, lines over 253 B, 2 KiB and 64 KiB,
NUL, bare CR and LF, pipelined bursts split at random, half-closed
sockets mid-command and resets in the middle of a RETR. Messages are
delivered again between steps as DELE+QUIT removes them.

Every reply is checked against a model of the server's line split and
command table: one line starting "+OK" or "-ERR" ("+ " inside AUTH),
multi-line answers ending with ".\r\n", RETR giving the octets it
announced, commands out of state or with bad arguments answered -ERR,
a second session of a logged-in user refused with [IN-USE], the
connection closed only after a reply that says so. Each reply must come
within 10 s. At the end ternd gets SIGTERM and its log must hold no
AddressSanitizer, UBSan or LeakSanitizer report. A finding prints the
seed and writes the byte transcript of the connections involved to
/tmp/tern-pop3-sessions-SEED/finding.txt.
Not part of make check (it is random); run it after changing src/pop3.
"""

import base64
import os
import smtplib
import socket
import sys
import time

from session_fuzz import Finding, RawConn, SessionFuzzer, main
from tern_harness import make_message

DEMO = "demo@example.test"
ALICE = "alice@example.test"
REPLY_TIMEOUT = 10.0
# auth_fail_delay_ms = 1 doubles up to 512 ms before auth_block_after = 10
# would block the address (for auth_block_seconds = 3; with 1 the count
# restarts at each second boundary): failed logins are slowed for real,
# and a reply still fits the timeout.
FAIL_DELAY_MAX = 0.6
LINE_MAX = 253          # POP3_LINE_MAX in pop3_session.c
READ_MAX = 2048         # POP3_READ_MAX
AUTH_MAX_FAILURES = 3   # the default auth_max_failures
BAD_LIMIT = 20

# name -> (states, min_args, max_args); max -1: PASS, the rest of the line.
TABLE = {
    b"CAPA": ("at", 0, 0), b"QUIT": ("at", 0, 0), b"STLS": ("a", 0, 0),
    b"USER": ("a", 1, 1), b"PASS": ("a", 1, -1), b"AUTH": ("a", 0, 2),
    b"STAT": ("t", 0, 0), b"LIST": ("t", 0, 1), b"UIDL": ("t", 0, 1),
    b"TOP": ("t", 2, 2), b"RETR": ("t", 1, 1), b"DELE": ("t", 1, 1),
    b"RSET": ("t", 0, 0), b"NOOP": ("t", 0, 0),
}
# The answers of pop3_reply_bad: each counts toward bad_command_limit.
BAD_REPLIES = (b"-ERR Unknown command", b"-ERR Command not valid in this state",
               b"-ERR Wrong number of arguments", b"-ERR Line too long",
               b"-ERR NUL in command", b"-ERR USER first", b"-ERR Invalid message number",
               b"-ERR Invalid line count", b"-ERR Invalid authentication exchange",
               b"-ERR Too many bad commands")
# Commands a correct server must answer +OK in TRANSACTION.
ALWAYS_OK = {b"CAPA", b"STAT", b"RSET", b"NOOP"}

NUMS = ["0", "-1", "+1", "01", "4294967295", "4294967296", "18446744073709551615",
        "18446744073709551616", "99999999999999999999999999", "1x", "x", "0x1",
        "1.0", "\xd9\xa1", "1\t", " ", "*", "%n%s%s%s", "2147483648", "-0"]


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


class Gen:
    """The lines (without CRLF, as str in latin-1) of a step."""

    def __init__(self, rnd):
        self.r = rnd

    def num(self, count):
        r = self.r
        if r.random() < 0.75:
            return str(r.randint(1, max(1, count + 1)))
        return r.choice(NUMS)

    def user(self):
        return self.r.choice(["demo", DEMO, DEMO, DEMO, "DEMO@EXAMPLE.TEST", ALICE,
                              "nobody@example.test", "demo@other.test", "", "@", "a" * 300,
                              "demo\tx", "%s%s%n"])

    def password(self, user):
        r = self.r
        if r.random() < 0.6:
            return {"demo": "pw", DEMO: "pw", ALICE: "alice-pw",
                    "DEMO@EXAMPLE.TEST": "pw"}.get(user, "pw")
        return r.choice(["wrong", "", "pw ", " pw", "p w", "pw\tpw", "x" * 250])

    def login(self, user=None):
        """A valid login of user, by USER/PASS or AUTH."""
        r = self.r
        user = user or r.choice([DEMO, DEMO, "demo", ALICE])
        pw = "alice-pw" if user == ALICE else "pw"
        c = r.randrange(4)
        if c == 0:
            return [f"USER {user}", f"PASS {pw}"]
        if c == 1:
            return ["AUTH PLAIN " + b64(f"\0{user}\0{pw}")]
        if c == 2:
            return ["AUTH PLAIN", b64(f"{r.choice(['', user])}\0{user}\0{pw}")]
        if r.random() < 0.5:
            return ["AUTH LOGIN", b64(user), b64(pw)]
        return ["AUTH LOGIN " + b64(user), b64(pw)]

    def sasl_line(self):
        r = self.r
        return r.choice([
            "*", "", "=", "!!!", "====", "AA", b64("\0demo\0pw"), b64("\0demo@example.test\0pw"),
            b64("\0demo@example.test\0wrong"), b64("x\0demo\0pw"), b64("\0\0"), b64("\0"),
            b64("demo"), b64("pw"), b64(""), b64("n,,n=demo,r=abcdefgh"),
            b64("n,,n=demo@example.test,r=" + "r" * 40), b64("c=biws,r=x,p=" + b64("x" * 32)),
            b64("p,,n=x,r=y"), b64("y,a=z,n=demo,r=q"), b64("n,,n=,r="), b64("\0" * 3000)[:1500],
            "A" * r.choice([1, 4, 1000, 2047, 2049, 4000]), b64("\xff" * 200), "AUTH PLAIN",
            "QUIT", "STAT", b64(os.urandom(r.randint(0, 300)))])

    def command(self, count):
        r = self.r
        c = r.randrange(24)
        if c == 0:
            return f"USER {self.user()}"
        if c == 1:
            return f"PASS {self.password(r.choice(['demo', DEMO, 'x']))}"
        if c == 2:
            mech = r.choice(["PLAIN", "LOGIN", "SCRAM-SHA-256", "plain", "CRAM-MD5", "X", "",
                             "SCRAM-SHA-1", "PLAIN PLAIN"])
            ir = r.choice(["", " =", " " + self.sasl_line()])
            return f"AUTH {mech}{ir}".rstrip() if r.random() < 0.9 else "AUTH"
        if c == 3:
            return self.sasl_line()
        if c == 4:
            return "CAPA"
        if c == 5:
            return "STAT"
        if c in (6, 7):
            return r.choice(["LIST", f"LIST {self.num(count)}"])
        if c == 8:
            return r.choice(["UIDL", f"UIDL {self.num(count)}"])
        if c in (9, 10):
            return f"TOP {self.num(count)} {r.choice(['0', '1', '2', '5', '100', self.num(3)])}"
        if c in (11, 12):
            return f"RETR {self.num(count)}"
        if c == 13:
            return f"DELE {self.num(count)}"
        if c == 14:
            return "RSET"
        if c == 15:
            return "NOOP"
        if c == 16:
            return "QUIT" if r.random() < 0.5 else "NOOP"
        if c == 17:
            return "STLS"
        if c == 18:
            return r.choice(["", " ", "FROB", "APOP demo 0123456789abcdef0123456789abcdef",
                             "XTND XMIT", "LAST", "UIDL\x00", "TOP", "TOP 1", "RETR", "DELE",
                             "LIST 1 2", "USER", "PASS", "AUTH a b c", "STAT 1", "QUIT now"])
        return self.mutate(self.command(count))

    def mutate(self, s):
        r = self.r
        c = r.randrange(12)
        if c == 0:
            return s.lower()
        if c == 1:
            return "".join(ch.lower() if r.random() < 0.5 else ch for ch in s)
        if c == 2:
            return s.replace(" ", " " * r.randint(2, 40))
        if c == 3:
            return s + " " * r.randint(1, 5) + r.choice(["", "x", "1", "1 2 3"])
        if c == 4:
            return s.split(" ")[0]
        if c == 5:
            i = r.randrange(len(s) + 1)
            return s[:i] + "\0" + s[i:]
        if c == 6:
            i = r.randrange(len(s) + 1)
            return s[:i] + "\r" + s[i:]
        if c == 7:
            n = r.choice([LINE_MAX - len(s), LINE_MAX + 1 - len(s), 254, 1025, 2047, 2049,
                          3000, 65537, 70000])
            return s + " " + "A" * max(0, n)
        if c == 8:
            return s.replace(" ", "\t")
        if c == 9:
            return " " + s
        b = bytearray(s.encode("latin-1") or b"x")
        for _ in range(r.randint(1, 3)):
            b[r.randrange(len(b))] = r.choice(b" \t\r\x00\x7f\xff0123456789-+*=.AZaz")
        return b.decode("latin-1")


class Conn(RawConn):
    """One raw connection and the model of its session."""

    def __init__(self, fz, port):
        super().__init__(fz, port, REPLY_TIMEOUT)
        self.state = "a"            # a: AUTHORIZATION, t: TRANSACTION, s: in AUTH
        self.closing = None         # why the server should hang up
        self.auth_failures = 0
        self.count = 0
        self.sizes = {}
        self.login_user = None      # the last USER argument
        self.sasl_mech = None       # the last AUTH: mechanism, responses
        self.sasl_resps = []
        self.address = None         # logged in as
        self.lines = 0
        self.badrow = 0             # bad commands in a row (bad_command_limit)
        g = self.reply_line()
        if g is None:
            # A refusal (too many connections) would say so.
            raise Finding("no greeting")
        if not g.startswith(b"+OK"):
            raise Finding(f"bad greeting {g!r}")

    def reply_line(self, deadline=None):
        """One line with its CRLF, or None at EOF."""
        line = self.recv_line(deadline or time.monotonic() + REPLY_TIMEOUT + FAIL_DELAY_MAX,
                              "reply line")
        if line is not None and not line.endswith(b"\r\n"):
            raise Finding(f"reply line without CRLF: {line[-200:]!r}")
        return line

    def multi(self, first, what):
        """The body of a multi-line reply, unstuffed, with CRLFs."""
        deadline = time.monotonic() + REPLY_TIMEOUT * 3
        out = []
        while True:
            line = self.reply_line(deadline)
            if line is None and self.reset:
                self.fz.resets += 1
                return b""
            if line is None:
                raise Finding(f"EOF inside the multi-line answer to {what!r}")
            if line == b".\r\n":
                return b"".join(out)
            if line.startswith(b"."):
                line = line[1:]
                if line == b"\r\n":
                    raise Finding("'..' alone, a broken dot-stuffing?")
            out.append(line)

    # --- the model of the server's split ---

    def feed(self, data):
        """Sends data; returns the lines the server will act on, in order:
        (kind, line) with kind "line", "long" or "nul"."""
        self.send_raw(data)
        out = []
        self.pending += data
        while (got := self.next_input_line(READ_MAX)) is not None:
            out.append(got)
        return out

    def expect(self, kind, line):
        """Reads and checks the answer to one line the server acts on.
        Returns False once the connection is over."""
        fz = self.fz
        if self.eof:
            return False
        if self.closing is not None:
            r = self.reply_line()
            if r is not None:
                raise Finding(f"reply {r!r} after the server said it was closing "
                              f"({self.closing})")
            return False
        self.lines += 1
        fz.commands += 1
        r = self.reply_line()
        if r is None:
            if self.reset:
                self.fz.resets += 1
                return False
            raise Finding(f"EOF, no reply to {line[:100]!r} (state {self.state})")
        head = r[:-2]
        ok = head.startswith(b"+OK") and head[3:4] in (b"", b" ")
        err = head.startswith(b"-ERR") and head[4:5] in (b"", b" ")
        sasl = self.state == "s"
        if kind == "line" and len(line) > (READ_MAX if sasl else LINE_MAX):
            kind = "long"
        if kind == "line" and b"\0" in line:
            kind = "nul"
        if kind != "line":
            if not err:
                raise Finding(f"{kind} line answered {head[:100]!r}")
            if self.state == "s":
                self.state = "a"
            self.bad(head)
            return self.closing is None
        if sasl:
            self.sasl_resps.append(line)
            if head.startswith(b"+ "):
                return True
            if ok:
                return self.logged_in(head)
            if not err:
                raise Finding(f"AUTH response answered {head[:100]!r}")
            self.state = "a"
            if any(head.startswith(b) for b in BAD_REPLIES):
                self.bad(head)
            else:
                self.auth_result(head, line)
            return self.closing is None
        word, _, rest = line.partition(b" ")
        go_on = head.startswith(b"+ ") and word.upper() == b"AUTH"
        if not (ok or err or go_on):
            raise Finding(f"reply {head[:100]!r} to {line[:100]!r}")
        cmd = TABLE.get(word.upper()) if word.isascii() else None
        good = cmd is not None and self.state in cmd[0]
        if good:
            states, lo, hi = cmd
            if hi < 0 and rest:
                args = [rest]
            else:
                args = [a for a in rest.split(b" ") if a]
                if len(args) > (hi if hi >= 0 else 2):
                    good = False
            good = good and len(args) >= lo
        if not good:
            if not err:
                raise Finding(f"{line[:100]!r} in state {self.state} answered "
                              f"{head[:100]!r}")
            self.bad(head)
            return self.closing is None
        word = word.upper()
        if word in ALWAYS_OK and not ok:
            raise Finding(f"{word} answered {head[:100]!r}")
        if word == b"QUIT":
            if self.state == "a" and not ok:
                raise Finding(f"QUIT answered {head[:100]!r}")
            self.closing = "QUIT"
            if self.state == "t" and head.startswith(b"+OK Bye"):
                fz.quits += 1
            self.state = "a"
            self.check_eof()
            return False
        multi = ok and (word in (b"CAPA", b"TOP", b"RETR")
                        or (word in (b"LIST", b"UIDL", b"AUTH") and not args))
        if multi:
            body = self.multi(head, line)
            if self.eof:
                return False
            if word == b"RETR":
                fz.retrs += 1
                n = int(head.split()[1])
                if len(body) != n:
                    fz.note(f"RETR announced {n} octets, sent {len(body)}", self)
                want = self.sizes.get(int(args[0]), n)
                if n != want:
                    raise Finding(f"RETR {args[0]!r}: {n} octets, LIST said {want}")
            if word == b"LIST":
                self.sizes = {int(a): int(b) for a, b in
                              (x.split() for x in body.splitlines())}
            if word == b"TOP":
                fz.tops += 1
        # pop3_reply_bad inside a handler: counted, and the handler says -1
        # (AUTH says 0 whatever the step said: the count starts over).
        if any(head.startswith(b) for b in BAD_REPLIES):
            self.bad(head)
            if self.closing is not None:
                return False
            if word == b"AUTH":
                self.badrow = 0
            return True
        self.badrow = 0
        if word == b"PASS":
            self.sasl_mech = None
            if ok:
                return self.logged_in(head)
            self.auth_result(head, line)
        if word == b"USER":
            self.login_user = args[0]
        if word == b"AUTH" and args:
            self.sasl_mech = args[0].upper()
            self.sasl_resps = args[1:]
            if head.startswith(b"+ "):
                self.state = "s"
            elif ok:
                return self.logged_in(head)
            else:
                self.auth_result(head, line)
        return self.closing is None

    def bad(self, head):
        self.badrow += 1
        if head.startswith(b"-ERR Too many bad commands"):
            if self.badrow != BAD_LIMIT:
                raise Finding(f"closed for bad commands after {self.badrow}")
            self.closing = "bad commands"
            self.check_eof()
        elif self.badrow >= BAD_LIMIT:
            raise Finding(f"{self.badrow} bad commands in a row and still open")

    def auth_result(self, head, line):
        if head.startswith(b"-ERR [AUTH]"):
            self.auth_failures += 1
            self.fz.auth_fails += 1
            if self.auth_failures >= AUTH_MAX_FAILURES:
                self.closing = "auth failures"
                self.check_eof()
        elif head.startswith(b"-ERR [IN-USE]") or head.startswith(b"-ERR [SYS/TEMP] Cannot"):
            self.fz.in_use += 1
            self.closing = "in use"
            self.check_eof()
        elif head.startswith(b"-ERR Authentication cancelled"):
            pass
        # Wrong base64, unknown mechanism, blocked: the session goes on.

    def who(self):
        """The address the login that just succeeded was for (USER, or the
        PLAIN or LOGIN responses)."""
        try:
            if self.sasl_mech == b"PLAIN":
                name = base64.b64decode(self.sasl_resps[-1]).split(b"\0")[1]
            elif self.sasl_mech == b"LOGIN":
                name = base64.b64decode(self.sasl_resps[0])
            else:
                name = self.login_user or b"?"
        except (IndexError, ValueError):
            return "?"
        name = name.decode("latin-1").lower()
        return name if "@" in name else name + "@example.test"

    def logged_in(self, head):
        self.address = self.who()
        # Another of our sessions holds this maildrop: IN-USE was due.
        for other in self.fz.conns:
            if other is not self and other.state == "t" and not other.eof and \
                    other.closing is None and other.address == self.address:
                raise Finding(f"logged in while connection {other.id} holds the "
                              f"maildrop: {head!r}")
        self.state = "t"
        self.badrow = 0
        self.fz.logins += 1
        try:
            self.count = int(head.split()[3])
        except (IndexError, ValueError):
            raise Finding(f"login reply {head!r}")
        self.sizes = {}
        return True

    def check_eof(self):
        r = self.reply_line()
        if r is not None:
            raise Finding(f"reply {r!r} after the server said it was closing "
                          f"({self.closing})")

    def run_lines(self, lines, split=False):
        """Sends lines (str, CRLF added unless they carry their own end) and
        checks each answer; split sends them in random pieces."""
        r = self.fz.rnd
        # Near READ_MAX, whether a CR counts depends on how the bytes arrive.
        lines = [l + "AAAA" if READ_MAX - 2 <= len(l) <= READ_MAX + 1 else l for l in lines]
        data = b"".join(l.encode("latin-1") + self.fz.eol() for l in lines)
        pieces = [data]
        if split and len(data) > 1:
            cuts = sorted(r.sample(range(1, len(data)), min(len(data) - 1, r.randint(1, 4))))
            pieces = [data[i:j] for i, j in zip([0] + cuts, cuts + [len(data)])]
        todo = []
        for p in pieces:
            todo.extend(self.feed(p))
            if split:
                time.sleep(r.choice([0, 0, 0.001, 0.02]))
        for kind, line in todo:
            if not self.expect(kind, line):
                return False
        return True


class Fuzzer(SessionFuzzer):
    name = "pop3"

    def __init__(self, seed, secs):
        super().__init__(seed, secs, bad_command_limit=str(BAD_LIMIT), log_level="info",
                         auth_fail_delay_ms="1", auth_block_after="10",
                         auth_block_seconds="3")
        self.gen = Gen(self.rnd)
        self.logins = self.retrs = self.tops = self.quits = 0
        self.auth_fails = self.in_use = self.deliveries = 0
        self.port = self.tern.pop3_port

    def eol(self):
        r = self.rnd.random()
        return b"\r\n" if r < 0.85 else (b"\n" if r < 0.95 else b"\r\r\n")

    # --- mail ---

    def deliver(self, n=1):
        r = self.rnd
        with smtplib.SMTP("127.0.0.1", self.tern.smtp_port, timeout=30) as s:
            for _ in range(n):
                c = r.randrange(6)
                self.deliveries += 1
                subj = f"fuzz {self.deliveries}"
                if c == 0:
                    body = ".\n..\n.x\n...y\nplain\n.\n" * r.randint(1, 20)
                elif c == 1:
                    # A few hundred KB, lines longer than the 64 KiB chunk, dots
                    # at line starts everywhere.
                    parts = []
                    for i in range(r.randint(3, 8)):
                        parts.append("." * r.randint(1, 3) + "z" * r.randint(0, 70000))
                        parts.append(".\n." + "y" * 76)
                    body = "\n".join(parts)
                elif c == 2:
                    body = ""
                elif c == 3:
                    body = "\n".join(r.choice([".", "..", "", "a", ". x", "\tb"])
                                     for _ in range(r.randint(1, 300)))
                else:
                    body = f"short {self.deliveries}\n"
                m = make_message(subj, body, to=DEMO)
                if c == 2 and r.random() < 0.5:
                    m = m.split(b"\r\n\r\n")[0] + b"\r\n"      # no body at all
                rcpts = [DEMO] if r.random() < 0.9 else [DEMO, ALICE]
                s.sendmail("x@remote.test", rcpts, m)

    def drop_foreign(self):
        """A message put in new/ by another program: LF or CRLF, with or
        without a final line end."""
        md = self.tern.maildir(DEMO)
        if not (md / "new").is_dir():
            return
        name = f"{time.time():.6f}.foreign{self.rnd.randrange(10**6)}.otherhost"
        body = b"From: x@y\nSubject: foreign\n\n.dot\nline\n..\n.\nend"
        if self.rnd.random() < 0.5:
            body = body.replace(b"\n", b"\r\n")
        if self.rnd.random() < 0.5:
            body += self.rnd.choice([b"\n", b"\r\n"])
        (md / "tmp" / name).write_bytes(body)
        os.rename(md / "tmp" / name, md / "new" / name)

    # --- steps ---

    def new_conn(self):
        c = Conn(self, self.port)
        self.conns.append(c)
        return c

    def start(self):
        self.deliver(6)
        self.drop_foreign()

    def step(self):
        r = self.rnd
        self.steps += 1
        if r.random() < 0.02:
            self.deliver(r.randint(1, 3))
        if r.random() < 0.003:
            self.drop_foreign()
        if not self.conns or (len(self.conns) < 3 and r.random() < 0.08):
            c = self.new_conn()
            if r.random() < 0.7:
                user = DEMO if r.random() < 0.85 else ALICE
                if not c.run_lines(self.gen.login(user)):
                    self.drop(c)
                    return
        c = r.choice(self.conns)
        k = r.randrange(100)
        g = self.gen
        if k < 60:
            ok = c.run_lines([g.command(c.count)])
        elif k < 75:
            lines = [g.command(c.count) for _ in range(r.randint(2, 12))]
            if r.random() < 0.3:
                lines = g.login() + lines
            ok = c.run_lines(lines, split=r.random() < 0.5)
        elif k < 80:
            ok = c.run_lines(g.login(r.choice([DEMO, "demo", ALICE])))
        elif k < 84:
            # An overlong line with no end yet, then the rest.
            n = r.choice([300, 2049, 5000, 70000, 200000])
            ok = c.run_lines(["NOOP " + "N" * n], split=True)
        elif k < 88:
            self.half_close(c)
            return
        elif k < 92:
            self.abort_retr(c)
            return
        elif k < 94:
            ok = c.run_lines(["QUIT"])
        else:
            ok = c.run_lines([g.command(c.count)])
        if not ok:
            self.drop(c)

    def half_close(self, c):
        """Part of a command (or a few whole ones), then shutdown(SHUT_WR):
        whatever comes back must be well formed, then EOF."""
        r = self.rnd
        lines = [self.gen.command(c.count) for _ in range(r.randint(0, 3))]
        data = b"".join(l.encode("latin-1") + b"\r\n" for l in lines)
        tail = r.choice([b"", b"RE", b"RETR 1", b"STAT\r", b"AUTH PLAIN", b"\0\0",
                         b"X" * 3000])
        todo = c.feed(data + tail)
        c.sock.shutdown(socket.SHUT_WR)
        c.log.append((">", b"<SHUT_WR>"))
        # The server may answer what it has, or hang up at once; both are
        # fine, but each answer must be right and the end must come.
        try:
            for kind, line in todo:
                if not c.expect(kind, line):
                    break
            else:
                r2 = c.reply_line()
                if r2 is not None:
                    raise Finding(f"reply {r2!r} to an unfinished line after SHUT_WR")
        except Finding as e:
            if not (str(e).startswith("EOF, no reply") or
                    str(e).startswith("EOF inside")):
                raise
        self.drop(c)

    def abort_retr(self, c):
        """RETR (or TOP) of the largest message, then close or reset after a
        few bytes, or leave mid-AUTH / mid-PASS."""
        r = self.rnd
        if c.state == "t" and c.count:
            n = max(c.sizes, key=c.sizes.get) if c.sizes else r.randint(1, c.count)
            cmd = r.choice([f"RETR {n}", f"RETR {n}\r\nSTAT\r\nLIST", f"TOP {n} 99999",
                            f"RETR {n}\r\nQUIT"])
        else:
            cmd = r.choice(["PASS wrong", "AUTH PLAIN " + b64("\0demo\0wrong"),
                            "AUTH PLAIN " + b64("\0demo\0pw"), "AUTH LOGIN", "USER demo"])
        c.send_raw(cmd.encode() + b"\r\n")
        if r.random() < 0.6:
            try:
                c.sock.settimeout(REPLY_TIMEOUT)
                c.log.append(("<", c.sock.recv(r.choice([1, 100, 70000]))))
            except OSError:
                pass
        self.drop(c, rst=r.random() < 0.5)
        c.log.append((">", b"<CLOSE>"))

    def summary(self):
        return (f"{self.steps} steps, {self.nconns} connections, "
                f"{self.commands} command lines, {self.logins} logins, {self.retrs} RETR, "
                f"{self.tops} TOP, {self.quits} QUIT in TRANSACTION, {self.auth_fails} "
                f"failed logins, {self.in_use} IN-USE, {self.deliveries} deliveries")


if __name__ == "__main__":
    sys.exit(main(Fuzzer))
