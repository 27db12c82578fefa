"""Deterministic, real-looking test messages written into a Maildir.

The same seed gives the same bytes and the same file names, so the tern
and the Dovecot mailboxes of a benchmark hold identical mail. Messages are
2-8 KB: plain text, multipart/alternative (text + HTML) and now and then
multipart/mixed with a small base64 attachment. Files have LF line ends
and Maildir names with ,S=<size>,W=<size with CRLF> (what both servers
read without opening the file).
"""

import base64
import os
import random
from pathlib import Path

FIRST = ["Anna", "Ben", "Chloe", "David", "Elif", "Farid", "Greta", "Hugo",
         "Ines", "Jonas", "Kenji", "Lea", "Marta", "Nils", "Olga", "Pavel"]
LAST = ["Schmidt", "Martin", "Rossi", "Kowalski", "Novak", "Garcia",
        "Jensen", "Dubois", "Yilmaz", "Tanaka", "Silva", "Berg"]
DOMAINS = ["example.org", "example.net", "lists.example.com", "corp.test"]
SUBJ = ["Quarterly report", "Lunch on Friday?", "Re: build failure on arm64",
        "Invoice 2024-118", "Meeting notes", "Fwd: travel plans",
        "[tern-dev] patch review", "Weekly status", "Question about the API",
        "Your order has shipped", "Re: Re: holiday schedule", "Draft proposal"]
WORDS = ("the a of to and in that is for it with as was on be at by this "
         "from or have an they which one you were all we her she there "
         "would their will when who him been has more if no out so said "
         "what up its about than into them can only other new some could "
         "time these two may then do first any my now such like our over "
         "man me even most made after also did many before must through "
         "server message mailbox release schedule review budget meeting "
         "draft deadline customer report network storage").split()
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
          "Oct", "Nov", "Dec"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _person(rnd):
    f, l = rnd.choice(FIRST), rnd.choice(LAST)
    return f"{f} {l}", f"{f.lower()}.{l.lower()}@{rnd.choice(DOMAINS)}"


def _paragraphs(rnd, size):
    out, n = [], 0
    while n < size:
        words = [rnd.choice(WORDS) for _ in range(rnd.randint(30, 90))]
        words[0] = words[0].capitalize()
        text = " ".join(words) + "."
        lines, line = [], ""
        for w in text.split():
            if len(line) + len(w) + 1 > 72:
                lines.append(line)
                line = w
            else:
                line = f"{line} {w}" if line else w
        lines.append(line)
        para = "\n".join(lines)
        out.append(para)
        n += len(para) + 2
    return "\n\n".join(out) + "\n"


def message(rnd, to_addr, i):
    """One message as bytes with LF line ends."""
    name, addr = _person(rnd)
    day = rnd.randint(1, 28)
    date = (f"{DAYS[(day + i) % 7]}, {day} {MONTHS[rnd.randrange(12)]} "
            f"{rnd.choice([2023, 2024, 2025])} {rnd.randint(0, 23):02d}:"
            f"{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d} +0100")
    mid = f"<{rnd.getrandbits(64):016x}.{i}@{addr.split('@')[1]}>"
    head = [
        f"Return-Path: <{addr}>",
        f"Delivered-To: {to_addr}",
        f"Received: from mx.{addr.split('@')[1]} (mx.{addr.split('@')[1]} "
        f"[192.0.2.{rnd.randint(1, 254)}])\n\tby mail.example.test with ESMTPS"
        f" id {rnd.getrandbits(40):010x}\n\tfor <{to_addr}>; {date}",
        f"From: {name} <{addr}>",
        f"To: {to_addr}",
        f"Subject: {rnd.choice(SUBJ)} #{i}",
        f"Date: {date}",
        f"Message-ID: {mid}",
        "MIME-Version: 1.0",
    ]
    if rnd.random() < 0.3:
        head.append(f"Cc: {_person(rnd)[1]}")
    text = _paragraphs(rnd, rnd.randint(1500, 5000))
    kind = rnd.random()
    if kind < 0.55:
        head.append("Content-Type: text/plain; charset=utf-8")
        head.append("Content-Transfer-Encoding: 8bit")
        body = text
    elif kind < 0.85:
        b = f"alt-{rnd.getrandbits(48):012x}"
        html = "<html><body>\n" + "".join(
            f"<p>{p}</p>\n" for p in text.split("\n\n")) + "</body></html>\n"
        head.append(f'Content-Type: multipart/alternative; boundary="{b}"')
        body = (f"--{b}\nContent-Type: text/plain; charset=utf-8\n"
                f"Content-Transfer-Encoding: 8bit\n\n{text}\n"
                f"--{b}\nContent-Type: text/html; charset=utf-8\n"
                f"Content-Transfer-Encoding: 8bit\n\n{html}\n--{b}--\n")
    else:
        b = f"mix-{rnd.getrandbits(48):012x}"
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(800, 2500)))
        enc = base64.encodebytes(blob).decode()
        head.append(f'Content-Type: multipart/mixed; boundary="{b}"')
        body = (f"This is a multi-part message in MIME format.\n\n"
                f"--{b}\nContent-Type: text/plain; charset=utf-8\n\n{text}\n"
                f"--{b}\nContent-Type: application/pdf; name=\"doc{i}.pdf\"\n"
                f"Content-Disposition: attachment; filename=\"doc{i}.pdf\"\n"
                f"Content-Transfer-Encoding: base64\n\n{enc}\n--{b}--\n")
    return ("\n".join(head) + "\n\n" + body).encode()


def fill_maildirs(roots, to_addr, count, seed, base_time=1700000000):
    """Writes the same count messages into every Maildir in roots (each
    root gets cur/ new/ tmp/). Returns the total bytes of one copy."""
    rnd = random.Random(seed)
    total = 0
    files = []
    for i in range(count):
        data = message(rnd, to_addr, i)
        crlf = len(data) + data.count(b"\n")
        flags = "S" if rnd.random() < 0.7 else ""
        if rnd.random() < 0.05:
            flags = "FS"
        name = (f"{base_time + i * 60}.M{i:06d}P{seed}.bench,S={len(data)},"
                f"W={crlf}:2,{flags}")
        files.append((name, data, base_time + i * 60))
        total += len(data)
    for root in roots:
        root = Path(root)
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for name, data, mtime in files:
            p = root / "cur" / name
            p.write_bytes(data)
            os.utime(p, (mtime, mtime))
    return total


if __name__ == "__main__":
    import sys
    rnd = random.Random(1)
    sys.stdout.buffer.write(message(rnd, "user1@example.test", 0))
