#!/usr/bin/env python3
"""Random IMAP sessions against a real ternd, looking for a crash, a hang
or a sanitizer report: what the libFuzzer targets cannot reach (the
command handlers, on a real Maildir and index).

    TERN_BIN_DIR=build-check tests/fuzz/imap_sessions.py [SEED [SECONDS]]

Starts ternd (the harness of tests/integration) with the MIME fixtures
delivered to one user, then runs sessions of 200 commands each: FETCH,
STORE, SEARCH, SELECT/EXAMINE, COPY/MOVE, mailbox commands, APPEND,
IDLE, and random byte changes of them, every argument drawn from values
near the edges. Each command must be answered with its tag within 15 s.
Not part of make check (it is random); run it after changing a handler.
"""

import glob
import os
import random
import smtplib
import socket
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "tests" / "integration"))
from tern_harness import Tern, free_ports  # noqa: E402

FIXTURES = sorted(glob.glob(str(TOP / "tests" / "fixtures" / "mime" / "*.eml")))
DEMO = "demo@example.test"

SEQ = ["1", "*", "1:*", "0", "4294967295", "2:1", "1,3:5", "1:2,*", "*:3", "x",
       "", "1:", "100:200", "3,3,3,3", ",", "1:4294967296"]
ITEMS = ["FLAGS", "UID", "ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.SIZE",
         "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "BODY[]",
         "BODY.PEEK[]<0.10>", "BODY[1]", "BODY[1.2]", "BODY[2.1.1]", "BODY[1.MIME]",
         "BODY[3.HEADER]", "BODY[TEXT]<5.0>", "BODY[HEADER.FIELDS (From To)]",
         "BODY[HEADER.FIELDS.NOT (Subject)]", "BODY[1.2.3.4.5.6.7.8.9]", "BODY[0]",
         "BODY[HEADER.FIELDS ()]", "BODY[MIME]", "BODY[99]",
         "BODY[]<4294967295.4294967295>", "ALL", "FAST", "FULL", "BINARY[1]",
         "BODY[1.TEXT]", "BODY[2.HEADER.FIELDS (x)]"]
BOXES = ["INBOX", "inbox", "a", "a/b", "a/b/c", "&Jjo-", "&", "..", "../x", "/", "",
         "a//b", "Trash", "Sent", "x" * 300, '"q\\"x"', "NIL", "INBOX/sub", "a/%", "*"]
FLAGS = ["\\Seen", "\\Deleted", "\\Flagged", "\\Answered", "\\Draft", "\\Recent",
         "$Junk", "kw1", "\\Bogus", "(", "\\*", "a]b"]
KEYS = ["ALL", "SEEN", "UNSEEN", "NEW", "OLD", "RECENT", "DELETED", "FROM alice",
        "TO x", "SUBJECT report", "BODY caf", "TEXT x", "HEADER X-Y z", "LARGER 10",
        "SMALLER 99999", "BEFORE 1-Jan-2030", "SINCE 31-Feb-2020", "ON 1-Jan-1970",
        "SENTBEFORE 1-Jan-2030", "UID 1:*", "1:3", "KEYWORD kw1", "UNKEYWORD $Junk",
        "OR SEEN NOT DELETED", "NOT", "OR", "(SEEN", ")", "CHARSET UTF-8 ALL",
        "CHARSET X ALL", "RETURN (MIN MAX COUNT) ALL", 'HEADER "" x', "BCC a",
        "CC b", "ANSWERED", "DRAFT", "FLAGGED", "UNANSWERED", "UNDRAFT",
        "UNFLAGGED", "UNDELETED"]
SIMPLE = ["CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "NOOP", "NAMESPACE", "CAPABILITY",
          "ID NIL", 'ID ("name" "x")', "ENABLE UTF8=ACCEPT CONDSTORE", "IDLE"]


class Commands:
    def __init__(self, rnd):
        self.rnd = rnd

    def astring(self, s):
        """s as an atom, a quoted string or a non-synchronizing literal."""
        quoted = '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')
        literal = "{%d+}\r\n%s" % (len(s.encode()), s)
        return self.rnd.choice([s, quoted, literal])

    def any(self):
        r = self.rnd
        c = r.randrange(30)
        uid = r.choice(["", "UID "])
        if c < 5:
            return f"{uid}FETCH {r.choice(SEQ)} ({' '.join(r.sample(ITEMS, r.randint(1, 4)))})"
        if c < 7:
            op = r.choice(["+FLAGS", "-FLAGS", "FLAGS", "+FLAGS.SILENT", "X"])
            return f"{uid}STORE {r.choice(SEQ)} {op} ({' '.join(r.sample(FLAGS, r.randint(0, 3)))})"
        if c < 9:
            return f"{uid}SEARCH {' '.join(r.sample(KEYS, r.randint(0, 4)))}"
        if c < 11:
            return f"{r.choice(['SELECT', 'EXAMINE'])} {self.astring(r.choice(BOXES))}"
        if c == 11:
            return f"{uid}{r.choice(['COPY', 'MOVE'])} {r.choice(SEQ)} {self.astring(r.choice(BOXES))}"
        if c == 12:
            return f"{r.choice(['CREATE', 'DELETE', 'SUBSCRIBE', 'UNSUBSCRIBE'])} {self.astring(r.choice(BOXES))}"
        if c == 13:
            return f"RENAME {self.astring(r.choice(BOXES))} {self.astring(r.choice(BOXES))}"
        if c == 14:
            ref = self.astring(r.choice(["", "a", "INBOX"]))
            pattern = self.astring(r.choice(["*", "%", "a/%", "*/*", "%%%", "INBOX*", ""]))
            return f"{r.choice(['LIST', 'LSUB'])} {ref} {pattern}"
        if c == 15:
            items = r.sample(["MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "X"],
                             r.randint(0, 3))
            return f"STATUS {self.astring(r.choice(BOXES))} ({' '.join(items)})"
        if c == 16:
            body = r.choice(["Subject: x\r\n\r\nhi\r\n", "", "x" * 1000,
                             Path(r.choice(FIXTURES)).read_text()])
            flags = r.choice(["", "(\\Seen) ", "(kw2 \\Draft) "])
            date = r.choice(["", '"01-Jan-2024 00:00:00 +0000" ', '"bad" '])
            return (f"APPEND {self.astring(r.choice(BOXES))} {flags}{date}"
                    f"{{{len(body.encode())}+}}\r\n{body}")
        if c == 17:
            return r.choice(SIMPLE)
        if c == 18:
            return f"UID EXPUNGE {r.choice(SEQ)}"
        # A command without literals (their sizes must stay true), bytes changed.
        base = self.any()
        while "{" in base:
            base = self.any()
        s = bytearray(base.encode())
        for _ in range(r.randint(1, 3)):
            s[r.randrange(len(s))] = r.choice(b"()[]{}<>\"\\ *%:,.0123456789\x00\x7f\xffaZ+")
        return s.decode("latin-1")


def session(port, password, commands, deadline, history):
    """One connection: LOGIN, then up to 200 commands; how it ended."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as so:
        f = so.makefile("rb")
        f.readline()
        so.sendall(f"a LOGIN {DEMO} {password}\r\n".encode())
        while not f.readline().startswith(b"a "):
            pass
        for n in range(1, 201):
            if time.monotonic() >= deadline:
                break
            c = commands.any()
            tag = f"t{n}"
            line = f"{tag} {c}\r\n".encode("latin-1")
            history.append(line)
            so.sendall(line + (b"DONE\r\n" if c == "IDLE" else b""))
            while True:
                r = f.readline()
                if not r:
                    return "eof"
                if r.startswith(tag.encode() + b" "):
                    break
                if r.startswith(b"* BYE"):
                    return "bye"
    return "ok"


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 120
    commands = Commands(random.Random(seed))
    port, = free_ports(1)
    work = Path(f"/tmp/tern-imap-sessions-{seed}")
    os.system(f"rm -rf '{work}'")
    tern = Tern(work, listen__imap=f"127.0.0.1:{port}", bad_command_limit="100000",
                log_level="info")
    tern.start()
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        for f in FIXTURES:
            s.sendmail("x@remote.test", [DEMO], Path(f).read_bytes())
    history, ends = [], {}
    deadline = time.monotonic() + secs
    problem = None
    while time.monotonic() < deadline and problem is None:
        try:
            how = session(port, tern.passwords[DEMO], commands, deadline, history)
        except (socket.timeout, TimeoutError):
            problem = "no answer within 15 s"
            break
        except OSError as e:
            how = f"error {e}"
        ends[how] = ends.get(how, 0) + 1
        if not tern.running():
            problem = "ternd died"
    print(f"seed {seed}: {len(history)} commands, sessions ended: {ends}")
    tern.stop()
    log = tern.log()
    for needle in ("AddressSanitizer", "runtime error", "LeakSanitizer"):
        if needle in log:
            problem = problem or "sanitizer report in ternd.log"
    if problem:
        print(f"{problem}; last commands:")
        for line in history[-5:]:
            print("  ", line)
        print(f"log: {tern.log_path}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
