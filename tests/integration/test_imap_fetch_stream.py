"""A FETCH larger than the output buffer goes out as the client reads it:
bodies byte-exact and in order, pipelined commands answered after it, and
a client that stops reading leaves the server holding a bounded amount."""

import imaplib
import re
import socket
import time

import pytest

from tern_harness import TIMEOUT, free_ports

DEMO = "demo@example.test"
PW = "pw"
MIB = 1024 * 1024


@pytest.fixture
def imap(tern_factory):
    """(tern, imap port)"""
    port, = free_ports(1)
    return tern_factory(listen__imap=f"127.0.0.1:{port}"), port


def drop_messages(tern, count, size):
    """Writes count messages of about size bytes into new/ by hand (LF line
    ends, as Maildir keeps them); returns their CRLF forms, in order."""
    new = tern.maildir(DEMO) / "new"
    new.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        head = f"From: a@example.test\nSubject: big {i}\n\n"
        line = f"message {i:04d} " + "x" * 70 + "\n"
        body = line * (size // len(line))
        data = (head + body).encode()
        (new / f"{1700000000 + i}.M{i}P1.host").write_bytes(data)
        out.append(data.replace(b"\n", b"\r\n"))
    return out


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise AssertionError("no VmRSS")


def test_large_fetch_byte_exact(imap):
    tern, port = imap
    msgs = drop_messages(tern, 12, 200 * 1024)
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    m.login(DEMO, PW)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"12"]
    typ, data = m.fetch("1:*", "(UID BODY.PEEK[])")
    assert typ == "OK"
    lits = [d[1] for d in data if isinstance(d, tuple)]
    assert lits == msgs
    # The session goes on as usual after the long answer.
    typ, data = m.fetch("3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and data[0][1] == b"Subject: big 2\r\n\r\n"
    m.logout()


def read_until(sock, buf, pattern):
    """Reads into the bytearray buf until pattern matches its end part."""
    pat = re.compile(pattern)
    while not pat.search(buf, max(0, len(buf) - 4096)):
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed"
        buf += chunk
    return buf


def test_slow_reader_bounded(imap):
    """80 MiB asked for, nothing read: the server holds far less than that,
    and everything arrives intact once the client reads."""
    tern, port = imap
    count = 80
    msgs = drop_messages(tern, count, MIB)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(TIMEOUT)
    s.connect(("127.0.0.1", port))
    buf = read_until(s, bytearray(), rb"\* OK[^\r]*\r\n")
    s.sendall(f"a LOGIN {DEMO} {PW}\r\nb SELECT INBOX\r\n".encode())
    buf = read_until(s, buf, rb"b OK[^\r]*\r\n")
    buf = bytearray()
    before = vm_rss_kib(tern.proc.pid)
    s.sendall(b"c FETCH 1:* BODY.PEEK[]\r\nd NOOP\r\n")
    time.sleep(1.5)  # the server fills what it may, then must wait
    grown = vm_rss_kib(tern.proc.pid) - before
    assert grown < 40 * 1024, f"server grew {grown} KiB for a client not reading"
    buf = read_until(s, buf, rb"d OK[^\r]*\r\n")
    s.close()
    # Parse the literals back out, in order.
    buf = bytes(buf)
    got, pos = [], 0
    lit = re.compile(rb"\* (\d+) FETCH \(BODY\[\] \{(\d+)\}\r\n")
    while True:
        mt = lit.search(buf, pos)
        if mt is None:
            break
        n = int(mt.group(2))
        got.append((int(mt.group(1)), buf[mt.end():mt.end() + n]))
        pos = mt.end() + n
        assert buf[pos:pos + 3] == b")\r\n"
    assert [seq for seq, _ in got] == list(range(1, count + 1))
    assert [data for _, data in got] == msgs
    tail = buf[pos:]
    assert re.match(rb"\)\r\nc OK [^\r]*\r\n(\* [^\r]*\r\n)*d OK [^\r]*\r\n$", tail), tail[:200]
