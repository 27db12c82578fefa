#!/usr/bin/env python3
"""Random SMTP sessions against a real ternd, looking for a crash, a hang,
a malformed or misplaced reply, a lost message or a sanitizer report: what
the libFuzzer targets cannot reach (the command loop and its state, the
DATA stream and its dot-unstuffing across reads, AUTH with its pauses and
pool checks, delivery to a real Maildir before the 250).

    TERN_BIN_DIR=build-dev tests/fuzz/smtp_sessions.py [SEED [SECONDS]]

Starts ternd (the harness of tests/integration) with port 25 and a
submission port (no TLS: AUTH is allowed in clear from loopback), a small
message_size_limit, recipient_limit and bad_command_limit, then keeps up
to three raw connections and takes random steps on them: EHLO/HELO, MAIL
FROM with SIZE/BODY and unsupported SMTPUTF8/RET/ENVID, RCPT TO local,
aliased, unknown and foreign, with NOTIFY/ORCPT, DATA with bodies built
from lines of ".", "..", ". x", empty lines, lines of 1 KiB to 100 KiB,
bare CR and LF, "\\n.\\r\\n" smuggling attempts, 8-bit bytes and NUL, both
stuffed and raw; RSET, NOOP, VRFY, EXPN, HELP, QUIT, STARTTLS (no TLS
configured), AUTH PLAIN/LOGIN/SCRAM-SHA-256 right and wrong (now and
then a run of failures fast enough to be blocked), garbage base64 and
"*"; and mutations of them: commands out of order, missing and
extra arguments, malformed paths (<>, source routes, unbalanced
brackets, 300 B addresses), NUL, lines over 2 KiB and 64 KiB, pipelined
bursts split at random, half-closed sockets, resets in the middle of DATA
and of AUTH, RCPTs past recipient_limit, SIZE past the limit, bodies past
it. ternd has no CHUNKING, SMTPUTF8 or DSN: BDAT is an unknown command and
those parameters are refused with 555.

The server's input is modelled byte by byte (the line split of
conn_read_line, the DATA stream ended only by CRLF "." CRLF), so every
reply is tied to the line or message it answers, in order, as RFC 2920
wants: well-formed lines (3 digits, "-" or " ", CRLF, one code per
reply), a code that fits the command and the state (503 out of sequence,
the bad_command_limit'th bad line in a row answered 421 and the
connection closed, 452 past recipient_limit, 354 to a DATA with a
recipient, 250/552/554 at its end as its size and bytes say, the third
failed AUTH answered 421), no bytes after a 221 or 421. Each reply must
come within 10 s. Every message answered 250 must be in the Maildir of
each local recipient with exactly the bytes sent, unstuffed and in LF
form, after the Return-Path, Delivered-To and Received fields (and, on
submission, the Message-ID and Date it may add). At the end ternd gets
SIGTERM and its log must hold no AddressSanitizer, UBSan or LeakSanitizer
report. A finding prints the seed and writes the byte transcript of the
connections involved to /tmp/tern-smtp-sessions-SEED/finding.txt.
Not part of make check (it is random); run it after changing src/smtp.
"""

import base64
import os
import re
import socket
import sys
import time

from session_fuzz import Finding, RawConn, SessionFuzzer, main

HOST = b"mail.example.test"
REPLY_TIMEOUT = 10.0
# auth_fail_delay_ms = 1 doubles up to 512 ms before auth_block_after = 10
# blocks the address for auth_block_seconds = 3. (With 1 s, as in
# pop3_sessions.py, an entry expires as soon as time() passes a second
# boundary between two failures, and 10 failures in a row never happen.)
FAIL_DELAY_MAX = 0.6
LINE_MAX = 2048         # the default line_length_limit
SIZE_LIMIT = 300 * 1024  # message_size_limit = 300k
RCPT_LIMIT = 12
BAD_LIMIT = 8
AUTH_MAX_FAILURES = 3   # the default auth_max_failures

USERS = {"demo@example.test": "pw", "alice@example.test": "alice-pw",
         "bob@example.test": "bob-pw"}
# RCPT address -> the local users it reaches (None: refused as no such
# user, "foreign": relayed only for a logged-in client).
RCPTS = {
    "demo@example.test": {"demo"}, "alice@example.test": {"alice"},
    "bob@example.test": {"bob"}, "DEMO@EXAMPLE.TEST": {"demo"},
    "Alice@Example.Test": {"alice"}, '"demo"@example.test': {"demo"},
    "postmaster@example.test": {"alice"}, "Postmaster": {"alice"},
    "team@example.test": {"alice", "bob"}, "nobody@example.test": None,
    '"no body"@example.test': None, "x@remote.test": "foreign",
    "someone@[127.0.0.1]": "foreign",
}
SENDERS = ["sender@remote.test", "", "demo@example.test", "alice@example.test",
           "bob@example.test", "team@example.test", "postmaster@example.test",
           "DEMO@example.test", '"odd one"@remote.test']
# The replies of smtp_reply_bad: each counts toward bad_command_limit
# (EXPN's 502 and "501 5.0.0 Authentication cancelled" do not).
BAD_CODES = {500, 501, 502, 503, 504, 555}


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


def canonical(addr):
    addr = addr.lower()
    return addr if "@" in addr else addr + "@example.test"


def owners(sender):
    """The users that may send as sender on submission."""
    s = canonical(sender) if sender else ""
    return {"postmaster@example.test": {"alice@example.test"},
            "team@example.test": {"alice@example.test", "bob@example.test"}
            }.get(s, {s} if s in USERS else set())


def unstuff(msg):
    """RFC 5321 §4.5.2, independently of dotstuff.c: the first "." of
    each line (a line starts after CRLF) goes."""
    return (b"\r\n" + msg).replace(b"\r\n.", b"\r\n")[2:]


class Gen:
    """Command lines (bytes without the line end) and message bodies."""

    def __init__(self, rnd):
        self.r = rnd

    def sender(self):
        return self.r.choice(SENDERS)

    def params(self, mail):
        """(text, kind): kind "ok", "big", "badsize", "unsup" or "syntax"."""
        r = self.r
        if r.random() < 0.5:
            return "", "ok"
        if mail:
            c = r.randrange(10)
            if c == 0:
                return f" SIZE={r.randint(0, SIZE_LIMIT)}", "ok"
            if c == 1:
                return f" SIZE={r.choice([SIZE_LIMIT + 1, 10**12, 2**64 - 1])}", "big"
            if c == 2:
                return f" SIZE={r.choice(['-1', 'x', '1x', '99999999999999999999999', ' 1'])}", \
                    "badsize"
            if c == 3:
                return f" BODY={r.choice(['8BITMIME', '7BIT', '8bitmime'])}", "ok"
            if c == 4:
                return f" BODY=8BITMIME SIZE={r.randint(1, 5000)}", "ok"
            if c == 5:
                return r.choice([" SMTPUTF8", " RET=HDRS", " RET=FULL", " ENVID=abc+2Bdef",
                                 " BODY=BINARYMIME", " SIZE", " AUTH=<>", " BODY=8BITMIME SMTPUTF8"]), \
                    "unsup"
            if c == 6:
                return r.choice([" SIZE=", " =x", " -X=1", " SIZE==1", " A=b=c"]), "syntax"
            return " " + " ".join(f"X{i}=1" for i in range(r.choice([1, 16, 17]))), "many"
        c = r.randrange(4)
        if c == 0:
            return r.choice([" NOTIFY=SUCCESS,FAILURE", " NOTIFY=NEVER",
                             " ORCPT=rfc822;demo@example.test", " NOTIFY=DELAY ORCPT=rfc822;x+40y"]), \
                "unsup"
        if c == 1:
            return r.choice([" NOTIFY=", " =", " ORCPT=a=b"]), "syntax"
        return " X-FOO", "unsup"

    def mail(self):
        """(line, info) of a MAIL FROM; info None when the line is mangled."""
        r = self.r
        if r.random() < 0.7:
            sender = self.sender()
            p, kind = self.params(True)
            return f"MAIL FROM:<{sender}>{p}".encode(), ("mail", sender, kind)
        return ("MAIL " + r.choice([
            "FROM:<>", "FROM: <sender@remote.test>", "from:<sender@remote.test>",
            "FROM:<@a.test,@b.test:x@y.test>", "FROM:<@a.test:x@y.test>", "FROM:<@:x@y>",
            "FROM:sender@remote.test", "FROM:<sender@remote.test", "FROM:sender@remote.test>",
            "FROM:<<x@y>>", "FROM:<x@y>>", "FROM:<x@>", "FROM:<@y>", "FROM:<x..y@z>",
            "FROM:<.x@z>", "FROM:<x@-z>", "FROM:<x@z->", "FROM:<x@[]>", "FROM:<x@[1.2.3.4]>",
            "FROM:<" + "a" * 64 + "@remote.test>", "FROM:<" + "a" * 65 + "@remote.test>",
            "FROM:<x@" + "d" * 250 + ".t>", "FROM:<x@" + ("d" * 60 + ".") * 5 + "t>",
            "FROM:<" + "a" * 300 + "@b>", "FROM:<x@y> SIZE=1 " + "P=1 " * 20, "FROM:",
            "FROM", "TO:<x@y>", "", "FROM:<\"a\\\"b\"@y>", "FROM:<\"\"@y>", "FROM:<\"\\\x01\"@y>",
            "FROM:<x@y>x", "FROM:<x@y>\tSIZE=1", "FROM:<x y@z>", "FROM:<\xe9@z>",
        ])).encode("latin-1"), None

    def rcpt(self):
        r = self.r
        if r.random() < 0.75:
            addr = r.choice(list(RCPTS))
            p, kind = self.params(False)
            return f"RCPT TO:<{addr}>{p}".encode(), ("rcpt", addr, kind)
        return ("RCPT " + r.choice([
            "TO:<>", "TO:<@a,@b:x@y>", "TO:<@a.test,@b.test:demo@example.test>",
            "TO:demo@example.test", "TO:<demo@example.test", "TO:<postmaster>", "TO:<POSTMASTER>",
            "TO:<postmaster> NOTIFY=NEVER", "TO:<demo>", "TO:<" + "d" * 300 + "@example.test>",
            "TO:<demo@example.test> <x>", "to:<bob@example.test>", "TO: <bob@example.test>",
            "FROM:<demo@example.test>", "TO:", "", "TO:<demo@" + "e" * 254 + ">",
            "TO:<demo@example..test>", "TO:<\"demo\"@example.test>",
        ])).encode("latin-1"), None

    def auth(self, right=None):
        """Lines of an AUTH exchange."""
        r = self.r
        user = r.choice(list(USERS) + ["demo", "nobody@example.test", "ALICE@example.test"])
        pw = USERS.get(canonical(user), "x")
        if right is None:
            right = r.random() < 0.5
        if not right:
            pw = r.choice(["wrong", "", "pw ", "x" * 300])
        c = r.randrange(5)
        if c == 0:
            return [b"AUTH PLAIN " + b64(f"\0{user}\0{pw}").encode()]
        if c == 1:
            return [b"AUTH PLAIN", b64(f"{r.choice(['', user])}\0{user}\0{pw}").encode()]
        if c == 2:
            return [b"AUTH LOGIN", b64(user).encode(), b64(pw).encode()]
        if c == 3:
            return [f"AUTH LOGIN {b64(user)}".encode(), b64(pw).encode()]
        return [f"AUTH {r.choice(['plain', 'Login', 'PLAIN'])}".encode(), self.sasl_line()]

    def sasl_line(self):
        r = self.r
        return r.choice([
            "*", "", "=", "!!!", "====", "AA", b64("\0demo\0pw"), b64("\0\0"), b64("\0"),
            b64("demo"), b64(""), b64("n,,n=demo,r=abcdefgh"), b64("\0" * 3000)[:1500],
            "A" * r.choice([1, 4, 1000, 2100, 4000, 70000]), b64("\xff" * 200),
            "AUTH PLAIN", "QUIT", "MAIL FROM:<demo@example.test>", b64(os.urandom(r.randint(0, 300))),
        ]).encode("latin-1")

    def command(self):
        r = self.r
        c = r.randrange(26)
        if c in (0, 1):
            return r.choice([b"EHLO client.test", b"HELO client.test", b"EHLO [127.0.0.1]",
                             b"EHLO", b"HELO", b"EHLO " + b"h" * 300, b"EHLO a b c",
                             b"ehlo x\x01\x7f\xff", b"HELO  \t"])
        if c in (2, 3, 4):
            return self.mail()[0]
        if c in (5, 6, 7, 8):
            return self.rcpt()[0]
        if c in (9, 10):
            return r.choice([b"DATA", b"DATA", b"DATA x", b"data"])
        if c == 11:
            return b"RSET"
        if c == 12:
            return r.choice([b"NOOP", b"NOOP x y"])
        if c == 13:
            return r.choice([b"VRFY demo", b"VRFY", b"VRFY <alice@example.test>"])
        if c == 14:
            return r.choice([b"EXPN team", b"EXPN"])
        if c == 15:
            return r.choice([b"HELP", b"HELP MAIL"])
        if c == 16:
            return r.choice([b"STARTTLS", b"STARTTLS x"])
        if c == 17:
            return r.choice([b"QUIT", b"NOOP"])
        if c == 18:
            return r.choice(self.auth())
        if c == 19:
            return self.sasl_line()
        if c == 20:
            return r.choice([b"", b" ", b"BDAT 10 LAST", b"BDAT 0", b"BDAT", b"TURN", b"ETRN x",
                             b"XCLIENT ADDR=1.2.3.4", b"ABCDEFGHIJKLMNOPQRS", b"MAIL:", b"RCPT\x00TO",
                             b"\x00", b"AUTH", b"AUTH PLAIN a b", b"AUTH X", b"AUTH PLAIN *",
                             b"AUTH PLAIN =", b"AUTH SCRAM-SHA-256 " + b64("n,,n=demo,r=xyz").encode()])
        return self.mutate(self.command())

    def mutate(self, s):
        r = self.r
        c = r.randrange(11)
        if c == 0:
            return s.lower()
        if c == 1:
            return s.replace(b" ", b" " * r.randint(2, 10))
        if c == 2:
            return s + b" " * r.randint(1, 3) + r.choice([b"", b"x", b"SIZE=1", b"<a@b>"])
        if c == 3:
            return s.split(b" ")[0]
        if c in (4, 5):
            i = r.randrange(len(s) + 1)
            return s[:i] + r.choice([b"\0", b"\r", b"\n", b"\t", b"\xff"]) + s[i:]
        if c == 6:
            n = r.choice([1025, 2000, 2100, 5000, 65537, 70000])
            return s + b" " + b"A" * n
        if c == 7:
            return s.replace(b" ", b"\t")
        if c == 8:
            return b" " + s
        b = bytearray(s or b"x")
        for _ in range(r.randint(1, 3)):
            b[r.randrange(len(b))] = r.choice(b" \t\r\x00\x7f\xff<>@:,.\"\\0123=AZaz")
        return bytes(b)

    def body(self):
        """The wire bytes of a message, with the end marker: mostly stuffed
        text, sometimes raw bytes that the server must unstuff."""
        r = self.r
        parts = [b"From: <x@remote.test>\r\nSubject: fuzz\r\n"]
        if r.random() < 0.5:
            parts.append(b"Message-ID: <m%d@remote.test>\r\nDate: Sun, 6 Dec 2026 12:00:00 +0000\r\n"
                         % r.randrange(10**9))
        if r.random() < 0.1:
            parts = [r.choice([b"", b" folded\r\n", b"no header at all", b"X: y\r\n" * 3000])]
        else:
            parts.append(b"\r\n")
        for _ in range(r.choice([0, 1, 3, 10, 50])):
            c = r.randrange(16)
            if c < 6:
                line = r.choice([b".", b"..", b"...", b". x", b".x", b"", b"text", b" .",
                                 b"\t.", b"-- ", b"From x", b"\xc3\xa9t\xc3\xa9 8bit \xff"])
            elif c == 6:
                line = b"L" * r.choice([998, 1000, 1025, 4097, 65535, 65536, 70000, 100000])
            elif c == 7:
                line = b"." * r.randint(1, 5) + b"y" * r.randint(0, 5000)
            elif c == 8:
                line = r.choice([b"bare\rCR", b"bare\nLF", b"\r", b"\n", b"a\r\rb", b"\r\r"])
            elif c == 9:
                line = os.urandom(r.randint(1, 200)).replace(b"\0", b"0")
            elif c == 10 and r.random() < 0.2:
                line = b"NUL\0in a line"
            elif c == 11:
                # Smuggling: only CRLF "." CRLF ends the data.
                line = r.choice([b"x\n.\r\nMAIL FROM:<a@b>", b"x\r.\r\nRSET", b"x\r\n.\nQUIT",
                                 b"x\r\n.\r", b".\n", b".\r"])
            else:
                line = b"plain line %d" % r.randrange(1000)
            parts.append(line + b"\r\n")
        if r.random() < 0.03:
            parts.append(b"B" * (SIZE_LIMIT + r.choice([-300, 1, 5000])) + b"\r\n")
        text = b"".join(parts)
        if r.random() < 0.15:
            raw = text        # not stuffed: lines starting with "." lose one
        else:
            raw = (b"\r\n" + text).replace(b"\r\n.", b"\r\n..")[2:]
        # A last line without its end: the marker must then bring a CRLF.
        if not raw.endswith(b"\r\n") and raw:
            raw += b"\r\n"
        return raw + b".\r\n"


class Conn(RawConn):
    """One raw connection and the model of its session."""

    def __init__(self, fz, sub):
        super().__init__(fz, fz.tern.submission_port if sub else fz.tern.smtp_port,
                         REPLY_TIMEOUT)
        self.sub = sub              # the submission port
        self.state = "greeted"      # greeted, ready, mail, data, sasl
        self.closing = None         # why the server should hang up
        self.bad = 0                # bad lines in a row
        self.auth_user = None       # canonical address, "?" if unknown
        self.auth_failures = 0
        self.sasl = None            # (mechanism, [responses])
        self.infos = []             # (line, info) of clean lines sent, in order
        self.dstream = None         # CRLF + the DATA bytes so far
        self.dscan = 0
        self.nrcpts = 0
        self.refused = False
        self.users = set()          # local users of the transaction
        self.sender = None
        code, lines = self.reply()
        if code != 220 or not lines[0].startswith(b"220 " + HOST + b" ESMTP"):
            raise Finding(f"bad greeting {lines!r}")

    def title(self):
        return f"{'submission' if self.sub else 'smtp'}, state {self.state}"

    # --- replies ---

    def reply(self, eof_ok=False):
        """(code, lines) of one reply; (None, []) at EOF if eof_ok."""
        deadline = time.monotonic() + REPLY_TIMEOUT + FAIL_DELAY_MAX
        lines = []
        while True:
            line = self.recv_line(deadline, "reply line")
            if line is None:
                if lines:
                    raise Finding(f"EOF inside a multi-line reply {lines!r}")
                if eof_ok or self.reset:
                    return None, []
                raise Finding("EOF where a reply was due")
            if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                raise Finding(f"reply line not ended by one CRLF: {line[-200:]!r}")
            if not re.match(rb"[2-5][0-9][0-9][ -]", line):
                raise Finding(f"malformed reply line {line[:200]!r}")
            if lines and line[:3] != lines[0][:3]:
                raise Finding(f"codes differ inside one reply: {lines + [line]!r}")
            if len(line) > 512:
                self.fz.note(f"reply line of {len(line)} bytes (RFC 5321 4.5.3.1.5: 512)", self)
            lines.append(line)
            if line[3:4] != b"-":
                self.fz.replies += 1
                return int(line[:3]), lines

    def check_eof(self):
        code, lines = self.reply(eof_ok=True)
        if code is not None:
            raise Finding(f"reply {lines!r} after the server said it was closing ({self.closing})")

    # --- the model of the server's input ---

    def send(self, data, infos=()):
        """Sends bytes; infos (line -> what the generator meant) lets
        clean lines be checked for their exact code."""
        self.infos.extend(infos)
        self.send_raw(data)
        if self.dstream is not None:
            self.dstream += data
        else:
            self.pending += data

    def next_line(self):
        """The next line the server acts on: (kind, line) or None."""
        return self.next_input_line(LINE_MAX)

    def drain(self):
        """Reads and checks every reply the bytes sent so far must bring.
        False once the connection is over."""
        while not self.eof:
            if self.closing is not None:
                self.check_eof()
                return False
            if self.dstream is not None:
                end = self.dstream.find(b"\r\n.\r\n", self.dscan)
                if end < 0:
                    self.dscan = max(0, len(self.dstream) - 4)
                    return True
                msg = self.dstream[2:end + 2]
                rest = self.dstream[end + 5:]
                self.dstream = None
                self.pending = rest
                self.data_end(unstuff(msg))
                continue
            got = self.next_line()
            if got is None:
                return True
            self.act(*got)
        return False

    def info_for(self, line):
        for i, (l, info) in enumerate(self.infos):
            if l == line:
                del self.infos[:i + 1]
                return info
        return None

    def act(self, kind, line):
        """The reply to one line, checked against the model."""
        fz = self.fz
        fz.commands += 1
        info = self.info_for(line) if kind == "line" else None
        nul = kind == "line" and b"\0" in line
        code, lines = self.reply()
        if code is None:
            fz.resets += 1
            self.eof = True
            return
        head = lines[0][:-2]
        if code == 421 and b"Too many errors" in head:
            if self.bad != BAD_LIMIT:
                raise Finding(f"421 after {self.bad} bad lines in a row, limit {BAD_LIMIT}")
            self.closing = "bad commands"
            fz.bad_closes += 1
            return
        if nul:
            # The whole line is refused: 501 ends an AUTH exchange
            # (RFC 4954 §4), 500 answers a command.
            want = 501 if self.state == "sasl" else 500
            if code != want:
                raise Finding(f"line with a NUL {line[:120]!r} in state {self.state} "
                              f"answered {head[:200]!r}, expected {want}")
            if self.state == "sasl":
                self.state = "ready"
            return self.count_bad(True)
        if self.state == "sasl":
            self.sasl_reply(kind, line, code, lines)
            return
        if kind == "long":
            if code != 500:
                raise Finding(f"overlong line answered {head!r}")
            return self.count_bad(True)
        m = re.match(rb"([A-Za-z]{1,15})(?:[ \t](.*))?\Z", line, re.S)
        word = m.group(1).upper() if m else b""
        args = (m.group(2) or b"").strip(b" \t\r\n") if m else b""
        args = args.lstrip(b" \t")
        expect = self.expect(word, args, info)
        if code not in expect:
            raise Finding(f"{line[:120]!r} in state {self.state} (rcpts {self.nrcpts}) answered "
                          f"{head[:200]!r}, expected one of {sorted(expect)}")
        bad = code in BAD_CODES and word != b"EXPN" and b"Authentication cancelled" not in head
        self.count_bad(bad)
        self.update(word, args, info, code, lines)

    def count_bad(self, bad):
        if bad:
            self.bad += 1
            if self.bad > BAD_LIMIT:
                raise Finding(f"{self.bad} bad lines in a row and still open")
        else:
            self.bad = 0

    def expect(self, word, args, info):
        """The codes a correct server may give."""
        st = self.state
        if word in (b"HELO", b"EHLO"):
            return {501} if not args else {250}
        if word == b"RSET" or word == b"NOOP":
            return {250}
        if word == b"QUIT":
            return {221}
        if word == b"VRFY":
            return {501} if not args else {252}
        if word == b"EXPN":
            return {502}
        if word == b"HELP":
            return {214}
        if word == b"STARTTLS":
            return {502}
        if word == b"MAIL":
            if st == "greeted":
                return {503}
            if st == "mail":
                return {503}
            if info is None:
                return {250, 501, 555, 552, 530, 553}
            _, sender, kind = info
            if kind in ("badsize", "syntax"):
                return {501}
            if kind == "many":
                return {501, 555}
            if kind == "unsup":
                return {555}
            if kind == "big":
                return {552}
            if not self.sub and self.auth_user is None:
                return {250}
            if self.auth_user is None:
                return {530}
            if self.auth_user == "?":
                return {250, 553}
            return {250} if self.auth_user in owners(sender) else {553}
        if word == b"RCPT":
            if st != "mail":
                return {503}
            if self.nrcpts >= RCPT_LIMIT:
                return {452}
            if info is None:
                return {250, 550, 554, 501, 555}
            _, addr, kind = info
            if kind == "syntax":
                return {501}
            if kind == "unsup":
                return {555}
            dest = RCPTS[addr]
            if dest is None:
                return {550}
            if dest == "foreign":
                return {554} if self.auth_user is None else {250}
            return {250}
        if word == b"DATA":
            if st != "mail":
                return {503}
            if args:
                return {501}
            if self.nrcpts == 0:
                return {554} if self.refused else {503}
            return {354, 451}
        if word == b"AUTH":
            if st == "greeted":
                return {503}
            if self.auth_user is not None or st == "mail":
                return {503}
            return {334, 235, 535, 421, 501, 504, 454}
        return {500}

    def update(self, word, args, info, code, lines):
        fz = self.fz
        if word in (b"HELO", b"EHLO") and code == 250:
            self.new_transaction("ready")
            if word == b"EHLO":
                text = b"".join(lines)
                for want in (b"250-PIPELINING", b"250-SIZE %d" % SIZE_LIMIT, b"250-8BITMIME",
                             b"250-AUTH PLAIN LOGIN SCRAM-SHA-256", b"250 ENHANCEDSTATUSCODES"):
                    if want not in text:
                        raise Finding(f"EHLO reply without {want!r}: {lines!r}")
                if b"STARTTLS" in text:
                    raise Finding("STARTTLS offered without TLS")
        elif word == b"RSET":
            if self.state != "greeted":
                self.new_transaction("ready")
        elif word == b"QUIT":
            self.closing = "QUIT"
        elif word == b"MAIL" and code == 250:
            self.state = "mail"
            fz.mails += 1
        elif word == b"RCPT":
            if code == 250:
                self.nrcpts += 1
                dest = RCPTS.get(info[1]) if info else "?"
                if isinstance(dest, set):
                    self.users |= dest
                elif dest != "foreign":
                    self.users.add("?")
            elif code in (550, 554):
                self.refused = True
        elif word == b"DATA" and code == 354:
            self.state = "data"
            self.dstream = b"\r\n" + self.pending
            self.pending = b""
            self.dscan = 0
            self.skipping = False
        elif word == b"AUTH" and code in (334, 235, 535, 421, 454):
            self.sasl_result(code, lines, args, start=True)

    def new_transaction(self, state):
        self.state = state
        self.nrcpts = 0
        self.refused = False
        self.users = set()

    # --- AUTH ---

    def sasl_reply(self, kind, line, code, lines):
        head = lines[0][:-2]
        if kind == "long":
            if code != 500:
                raise Finding(f"overlong AUTH response answered {head!r}")
            self.state = "ready"
            self.count_bad(True)
            return
        if line == b"*":
            if code != 501 or b"cancelled" not in head:
                raise Finding(f"AUTH '*' answered {head!r}")
            self.state = "ready"
            return
        if code not in (334, 235, 535, 421, 501, 454):
            raise Finding(f"AUTH response {line[:80]!r} answered {head!r}")
        if code in BAD_CODES:
            self.count_bad(True)
        self.sasl[1].append(line)
        self.sasl_result(code, lines, None, start=False)

    def sasl_result(self, code, lines, args, start):
        head = lines[0][:-2]
        if start:
            mech, _, ir = args.partition(b" ")
            self.sasl = (mech.upper(), [ir] if ir else [])
        if code == 334:
            self.state = "sasl"
            return
        self.state = "ready"
        if code == 235:
            self.auth_user = self.who()
            self.fz.logins += 1
        elif code == 535:
            self.auth_failures += 1
            self.fz.auth_fails += 1
            if self.auth_failures >= AUTH_MAX_FAILURES:
                raise Finding(f"failed AUTH number {self.auth_failures} answered {head!r}, not 421")
        elif code == 421:
            if b"too many failed authentications" not in head:
                raise Finding(f"AUTH answered {head!r}")
            self.auth_failures += 1
            if self.auth_failures != AUTH_MAX_FAILURES:
                raise Finding(f"421 after {self.auth_failures} failed AUTHs")
            self.closing = "auth failures"
        elif code == 454:
            self.fz.blocked += 1

    def who(self):
        mech, resps = self.sasl
        try:
            if mech == b"PLAIN":
                name = base64.b64decode(resps[-1], validate=True).split(b"\0")[1]
            elif mech == b"LOGIN":
                name = base64.b64decode(resps[0], validate=True)
            else:
                return "?"
            return canonical(name.decode())
        except (IndexError, ValueError):
            return "?"

    # --- DATA ---

    def data_end(self, msg):
        fz = self.fz
        code, lines = self.reply()
        if code is None:
            fz.resets += 1
            self.eof = True
            if self.users:
                fz.maybe_delivered(self.users)
            return
        head = lines[0][:-2]
        if b"\0" in msg:
            want = {554}
        elif len(msg) > SIZE_LIMIT:
            want = {552}
        else:
            want = {250, 451}
        if code not in want:
            raise Finding(f"end of a {len(msg)} byte message answered {head!r}, "
                          f"expected {sorted(want)}")
        if code == 451:
            fz.note("451 at the end of DATA", self)
        if code == 250:
            fz.accepted += 1
            if "?" in self.users:
                fz.unverified += 1
            else:
                for u in self.users:
                    fz.expected.append((u, msg, self.sub, self.id, fz.accepted))
        self.new_transaction("ready")


class Fuzzer(SessionFuzzer):
    name = "smtp"

    def __init__(self, seed, secs):
        super().__init__(seed, secs, submission=True, listen__submissions=None,
                         bad_command_limit=str(BAD_LIMIT), recipient_limit=str(RCPT_LIMIT),
                         message_size_limit="300k", log_level="info",
                         auth_fail_delay_ms="1", auth_block_after="10", auth_block_seconds="3")
        self.gen = Gen(self.rnd)
        self.replies = self.logins = self.auth_fails = self.blocked = 0
        self.mails = self.accepted = self.unverified = self.bad_closes = 0
        self.aborts = self.verified = 0
        self.expected = []          # (user, body, submission, conn id, n)
        self.maybe = {}             # user -> messages perhaps delivered, unanswered

    def eol(self):
        r = self.rnd.random()
        return b"\r\n" if r < 0.9 else (b"\n" if r < 0.97 else b"\r\r\n")

    def maybe_delivered(self, users):
        for u in users:
            self.maybe[u] = self.maybe.get(u, 0) + 1

    # --- steps ---

    def new_conn(self):
        c = Conn(self, sub=self.rnd.random() < 0.4)
        self.conns.append(c)
        return c

    def lines_bytes(self, lines):
        out = []
        for l in lines:
            # Near LINE_MAX whether a line is too long depends on how its
            # bytes arrive (a CR without its LF yet counts).
            if LINE_MAX - 3 <= len(l) <= LINE_MAX + 3:
                l += b"AAAAAAAA"
            out.append(l + self.eol())
        return out

    def run_lines(self, c, lines, split=False, infos=()):
        r = self.rnd
        data = b"".join(self.lines_bytes(lines))
        pieces = [data]
        if split and len(data) > 1:
            cuts = sorted(r.sample(range(1, len(data)), min(len(data) - 1, r.randint(1, 4))))
            pieces = [data[i:j] for i, j in zip([0] + cuts, cuts + [len(data)])]
        for i, p in enumerate(pieces):
            c.send(p, infos if i == 0 else ())
            if split:
                time.sleep(r.choice([0, 0, 0.001, 0.02]))
        return c.drain()

    def transaction(self, c):
        """A mostly valid transaction, pipelined (RFC 2920) or one by one;
        the body goes after the 354."""
        r = self.rnd
        g = self.gen
        lines = []
        infos = []
        if c.state == "greeted" or r.random() < 0.2:
            lines.append(r.choice([b"EHLO client.test", b"HELO client.test"]))
        if c.sub and c.auth_user is None and r.random() < 0.8:
            lines += g.auth(right=r.random() < 0.85)
        if r.random() < 0.8:
            sender = r.choice(["sender@remote.test", ""]) if not c.sub else \
                r.choice(["demo@example.test", "alice@example.test", "bob@example.test",
                          "team@example.test", "postmaster@example.test"])
            p, kind = g.params(True) if r.random() < 0.3 else ("", "ok")
            lines.append(f"MAIL FROM:<{sender}>{p}".encode())
            infos.append((lines[-1], ("mail", sender, kind)))
        else:
            l, info = g.mail()
            lines.append(l)
            infos.append((l, info))
        for _ in range(r.choice([1, 1, 2, 3, RCPT_LIMIT + 2])):
            if r.random() < 0.7:
                addr = r.choice(["demo@example.test", "alice@example.test", "bob@example.test",
                                 "team@example.test", "Postmaster", "DEMO@EXAMPLE.TEST"])
                lines.append(f"RCPT TO:<{addr}>".encode())
                infos.append((lines[-1], ("rcpt", addr, "ok")))
            else:
                l, info = g.rcpt()
                lines.append(l)
                infos.append((l, info))
        lines.append(b"DATA")
        piped = r.random() < 0.6
        if piped:
            if not self.run_lines(c, lines, split=r.random() < 0.5, infos=infos):
                return False
        else:
            for l in lines:
                if not self.run_lines(c, [l], infos=[x for x in infos if x[0] == l][:1]):
                    return False
        if c.state != "data":
            return True
        body = self.gen.body()
        if r.random() < 0.3:
            # In pieces: the marker may be cut anywhere.
            cuts = sorted(r.sample(range(1, len(body)), min(len(body) - 1, r.randint(1, 6))))
            for i, j in zip([0] + cuts, cuts + [len(body)]):
                c.send(body[i:j])
                time.sleep(r.choice([0, 0.001, 0.01]))
        else:
            c.send(body)
        more = []
        if r.random() < 0.3:
            # Commands right behind the marker, in the same write.
            more = [r.choice([b"RSET", b"NOOP", b"QUIT", b"MAIL FROM:<sender@remote.test>"])]
            c.send(b"".join(self.lines_bytes(more)))
        return c.drain()

    def step(self):
        r = self.rnd
        self.steps += 1
        if not self.conns or (len(self.conns) < 3 and r.random() < 0.08):
            c = self.new_conn()
            if r.random() < 0.7 and not self.run_lines(c, [b"EHLO client.test"]):
                self.drop(c)
                return
        c = r.choice(self.conns)
        k = r.randrange(100)
        g = self.gen
        if c.state == "data":
            ok = self.in_data(c)
        elif c.state == "sasl":
            ok = self.run_lines(c, [g.sasl_line() if r.random() < 0.5 else g.command()])
        elif k < 35:
            ok = self.transaction(c)
        elif k < 65:
            line = g.command()
            ok = self.run_lines(c, [line])
        elif k < 77:
            lines = [g.command() for _ in range(r.randint(2, 12))]
            ok = self.run_lines(c, lines, split=r.random() < 0.5)
        elif k < 82:
            ok = self.run_lines(c, g.auth())
        elif k < 85:
            n = r.choice([3000, 5000, 70000, 200000])
            ok = self.run_lines(c, [b"NOOP " + b"N" * n], split=True)
        elif k < 89:
            self.half_close(c)
            return
        elif k < 94:
            self.abort(c)
            return
        elif k < 95:
            ok = self.run_lines(c, [b"QUIT"])
        elif k < 96:
            self.hammer()
            return
        else:
            ok = self.run_lines(c, [g.command() for _ in range(RCPT_LIMIT + 3)])
        if not ok:
            self.drop(c)

    def hammer(self):
        """Wrong passwords in quick succession on new connections, to
        reach auth_block_after: AUTH then answers 454, right or wrong."""
        r = self.rnd
        n = r.randint(4, 6)
        for i in range(n):
            c = self.new_conn()
            lines = [b"EHLO client.test"]
            for _ in range(3):
                lines += self.gen.auth(right=i == n - 1 and r.random() < 0.5)
            if not self.run_lines(c, lines, split=r.random() < 0.3):
                self.drop(c)
            elif len(self.conns) > 3:
                self.drop(c)

    def in_data(self, c):
        """A connection left inside DATA (a pipelined DATA got its 354)."""
        r = self.rnd
        if r.random() < 0.5:
            c.send(self.gen.body())
        else:
            c.send(r.choice([b"more text\r\n", b".\r\n", b"\r\n.\r\n", b"..\r\n"]))
        return c.drain()

    def half_close(self, c):
        """A few whole lines and part of one, then shutdown(SHUT_WR): the
        answers must be right, then EOF."""
        r = self.rnd
        lines = [self.gen.command() for _ in range(r.randint(0, 3))]
        data = b"".join(self.lines_bytes(lines))
        tail = r.choice([b"", b"MA", b"MAIL FROM:<x@y>", b"NOOP\r", b"\0\0", b"X" * 3000,
                         b"DATA"])
        c.send(data + tail)
        c.sock.shutdown(socket.SHUT_WR)
        c.log.append((">", b"<SHUT_WR>"))
        try:
            c.drain()
            if not c.eof:
                c.closing = c.closing or "SHUT_WR"
                c.check_eof()
        except Finding as e:
            if not str(e).startswith("EOF where a reply was due"):
                raise
            self.maybe_delivered(c.users)
        self.drop(c)

    def abort(self, c):
        """Leaves in the middle: inside DATA (part of a body, or all of it
        with the marker, no reply read), mid-AUTH or mid-line."""
        r = self.rnd
        self.aborts += 1
        if c.state == "mail" and c.nrcpts:
            c.send(b"DATA\r\n")
            body = self.gen.body()
            if r.random() < 0.3:
                # Whole: it may be delivered before the server sees us go.
                c.send_raw(body)
                self.maybe_delivered(c.users)
            else:
                c.send_raw(body[:r.randint(0, len(body) - 3)])
                self.maybe_delivered(c.users)   # a raw body may end early
        elif c.state == "data":
            c.send_raw(self.gen.body()[:-3])
            self.maybe_delivered(c.users)
        else:
            c.send_raw(r.choice([b"AUTH LOGIN\r\n", b"AUTH PLAIN " + b64("\0demo@example.test\0wrong").encode(),
                                 b"MAIL FROM:<x@y>", b"EHLO x\r\nMAIL FROM:<x@y>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nSubj"]))
        if r.random() < 0.5:
            try:
                c.sock.settimeout(0.2)
                c.log.append(("<", c.sock.recv(r.choice([1, 100, 70000]))))
            except OSError:
                pass
        self.drop(c, rst=r.random() < 0.5)
        c.log.append((">", b"<CLOSE>"))

    # --- the end ---

    PREFIX = re.compile(
        rb"Return-Path: <[^\n]*>\nDelivered-To: [^\n]*\nReceived: from [^\n]* "
        rb"\(rdns-not-done \[[^\n]*\]\)\n\tby mail\.example\.test \(tern\) with E?SMTPA? id "
        rb"[^\n]+(\n\tfor <[^\n]*>)?; [^\n]+\n"
        rb"(?P<added>(Message-ID: <[^\n]*@mail\.example\.test>\n)?(Date: [^\n]*\n)?)\Z")

    def verify(self):
        """Every message answered 250 is in each local recipient's Maildir
        with exactly its bytes."""
        files = {}
        for u in ("demo", "alice", "bob"):
            files[u] = [p.read_bytes() for p in self.tern.message_files(u + "@example.test")]
        self.verified = 0
        for user, msg, sub, cid, n in self.expected:
            want = msg.replace(b"\r\n", b"\n")
            for i, data in enumerate(files[user]):
                if not data.endswith(want):
                    continue
                m = self.PREFIX.match(data[:len(data) - len(want)])
                if m and (sub or not m.group("added")):
                    del files[user][i]
                    self.verified += 1
                    break
            else:
                (self.work / "lost-message.bin").write_bytes(msg)
                raise Finding(f"message {n} (connection {cid}, {len(msg)} bytes, in "
                              f"{self.work}/lost-message.bin) answered 250 "
                              f"is not in {user}'s Maildir as sent: {want[:200]!r}")
        for user, left in files.items():
            if len(left) > self.maybe.get(user, 0) + self.unverified:
                raise Finding(f"{len(left)} messages in {user}'s Maildir that no 250 "
                              f"answered (at most {self.maybe.get(user, 0) + self.unverified} "
                              f"possible): {[d[:300] for d in left[:3]]!r}")

    def check_end(self):
        time.sleep(0.5)
        self.verify()

    def summary(self):
        return (f"{self.steps} steps, {self.nconns} connections, "
                f"{self.commands} command lines, {self.replies} replies, {self.mails} MAIL "
                f"accepted, {self.accepted} messages accepted, {self.verified} copies verified, "
                f"{self.unverified} unverified, {self.logins} logins, {self.auth_fails} failed "
                f"AUTH, {self.blocked} blocked, {self.bad_closes} closed for bad lines, "
                f"{self.aborts} aborts")


if __name__ == "__main__":
    sys.exit(main(Fuzzer))
