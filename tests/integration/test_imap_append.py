"""IMAP APPEND (RFC 3501 §6.3.11) with APPENDUID (RFC 4315 §3), flags and
date-time, synchronizing and LITERAL+ (RFC 7888) literals, the size limit
(APPENDLIMIT, RFC 7889, NO [TOOBIG]) and [TRYCREATE], with imaplib and by
hand."""

import calendar
import imaplib
import re
import time

import pytest

from tern_harness import TIMEOUT, Raw, free_ports, make_message

DEMO = "demo@example.test"
PW = "pw"
LIMIT = 4096


@pytest.fixture
def imap(tern_factory):
    """(tern, imap port), message_size_limit 4K."""
    port, = free_ports(1)
    tern = tern_factory(listen__imap=f"127.0.0.1:{port}",
                        message_size_limit=str(LIMIT))
    yield tern, port
    if tern.running():
        assert tern.stop() == 0
    log = tern.log()
    assert "Sanitizer" not in log and "runtime error" not in log, log


def login(port):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    typ, _ = m.login(DEMO, PW)
    assert typ == "OK"
    return m


def appenduid(text):
    mt = re.match(rb"\[APPENDUID (\d+) (\d+)\]", text)
    assert mt, text
    return int(mt.group(1)), int(mt.group(2))


def raw_login(port):
    r = Raw(port)
    assert r.readline().startswith(b"* OK")
    r.send(f"l LOGIN {DEMO} {PW}\r\n")
    tagged(r, "l")
    return r


def tagged(r, tag, expect=b"OK"):
    """The untagged lines before the tagged reply, and that reply."""
    lines = []
    while True:
        line = r.readline()
        assert line.endswith(b"\r\n"), (line, lines)
        if line.startswith(tag.encode() + b" "):
            assert line.split(b" ")[1] == expect, (line, lines)
            return lines, line
        lines.append(line)


def fetch_one(m, uid):
    """(flags, internaldate line, body) of one UID in the selected mailbox."""
    typ, data = m.uid("FETCH", str(uid), "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert typ == "OK" and isinstance(data[0], tuple), data
    head = data[0][0]
    flags = set(re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split())
    date = re.search(rb'INTERNALDATE "([^"]+)"', head).group(1).decode()
    return flags, date, data[0][1]


def epoch_of(internaldate):
    """Seconds since 1970 of an IMAP date-time, whatever its zone."""
    t = imaplib.Internaldate2tuple(f'INTERNALDATE "{internaldate}"'.encode())
    return int(time.mktime(t))      # the tuple is in local time


MSG = make_message("append test", "Hello.\nSecond line.\n")


def test_append_flags_date_appenduid_restart(imap):
    tern, port = imap
    m = login(port)
    typ, caps = m.capability()
    words = caps[0].split()
    assert b"UIDPLUS" in words and f"APPENDLIMIT={LIMIT}".encode() in words
    assert m.create("Work")[0] == "OK"
    typ, data = m.append("Work", "(\\Seen \\Flagged $Label1)",
                         '"05-Jan-2024 10:00:00 +0100"', MSG)
    assert typ == "OK", data
    validity, uid = appenduid(data[0])
    typ, data = m.append("Work", None, None, MSG + b"again\r\n")
    assert typ == "OK"
    validity2, uid2 = appenduid(data[0])
    assert validity2 == validity and uid2 == uid + 1

    want = calendar.timegm((2024, 1, 5, 9, 0, 0))
    for restart in (False, True):
        if restart:
            m.logout()
            tern.restart()
            m = login(port)
        typ, _ = m.select("Work")
        assert typ == "OK"
        assert int(m.untagged_responses["UIDVALIDITY"][0]) == validity
        flags, date, body = fetch_one(m, uid)
        # \\Recent: in the first session to see it, not after the restart.
        assert flags == {"\\Seen", "\\Flagged", "$Label1"} | (set() if restart else {"\\Recent"})
        assert epoch_of(date) == want
        assert body == MSG
        assert fetch_one(m, uid2)[2] == MSG + b"again\r\n"
    m.logout()

    # On disk: LF line ends, sizes and UID in the name, flags in the info.
    files = sorted((tern.maildir(DEMO) / ".Work" / "cur").iterdir())
    assert len(files) == 2
    name = next(p.name for p in files if f",U={uid}:" in p.name)
    assert name.endswith(":2,FSa")     # a: the folder's first keyword
    assert name.startswith(f"{want}.")
    lf = MSG.replace(b"\r\n", b"\n")
    assert f",S={len(lf)},W={len(MSG)},U={uid}:".encode() in name.encode()
    assert (tern.maildir(DEMO) / ".Work" / "cur" / name).read_bytes() == lf
    assert not list((tern.maildir(DEMO) / ".Work" / "tmp").iterdir())


def test_append_toobig_trycreate_bad(imap):
    tern, port = imap
    m = login(port)
    big = MSG + b"x" * LIMIT + b"\r\n"
    typ, data = m.append("INBOX", None, None, big)
    assert typ == "NO" and data[0].startswith(b"[TOOBIG]"), data
    typ, data = m.append("Nope", None, None, MSG)
    assert typ == "NO" and data[0].startswith(b"[TRYCREATE]"), data
    assert m.noop()[0] == "OK"
    m.select("INBOX")
    assert m.untagged_responses["EXISTS"] == [b"0"]
    m.logout()

    r = raw_login(port)
    # A LITERAL+ message over the limit: NO, its bytes are skipped, and the
    # session goes on.
    r.send(f"a APPEND INBOX {{{len(big)}+}}\r\n".encode() + big + b"\r\n")
    lines, line = tagged(r, "a", expect=b"NO")
    assert line.startswith(b"a NO [TOOBIG]") and lines == []
    r.send("b NOOP\r\n")
    tagged(r, "b")
    r.send('c APPEND INBOX (\\Bogus) {3+}\r\nabc\r\n')
    tagged(r, "c", expect=b"BAD")
    r.send('d APPEND INBOX "32-Jan-2024 10:00:00 +0000" {3+}\r\nabc\r\n')
    tagged(r, "d", expect=b"BAD")
    r.send("e APPEND INBOX\r\n")
    tagged(r, "e", expect=b"BAD")
    r.close()
    assert tern.message_files(DEMO) == []


def test_append_literal_plus_into_selected(imap):
    tern, port = imap
    r = raw_login(port)
    r.send("s SELECT INBOX\r\n")
    tagged(r, "s")
    # LITERAL+: no "+" continuation; the new message is announced (EXISTS)
    # before the tagged OK, since it went into the selected mailbox.
    r.send(f"a APPEND INBOX (\\Draft) {{{len(MSG)}+}}\r\n".encode() + MSG + b"\r\n")
    lines, ok = tagged(r, "a")
    assert lines == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n"]
    _, uid = appenduid(ok[len(b"a OK "):])
    # A synchronizing literal, with a space-padded day in the date.
    r.send(f'b APPEND INBOX () " 7-Feb-2025 23:59:59 -0500" {{{len(MSG)}}}\r\n')
    assert r.readline().startswith(b"+ ")
    r.send(MSG + b"\r\n")
    lines, ok = tagged(r, "b")
    assert lines == [b"* 2 EXISTS\r\n", b"* 2 RECENT\r\n"]
    _, uid2 = appenduid(ok[len(b"b OK "):])
    assert uid2 == uid + 1
    r.send(f"f UID FETCH {uid}:{uid2} (UID FLAGS)\r\n")
    lines, _ = tagged(r, "f")
    assert lines == [f"* 1 FETCH (UID {uid} FLAGS (\\Draft \\Recent))\r\n".encode(),
                     f"* 2 FETCH (UID {uid2} FLAGS (\\Recent))\r\n".encode()]
    r.close()

    m = login(port)
    m.select("INBOX")
    _, date, body = fetch_one(m, uid2)
    assert epoch_of(date) == calendar.timegm((2025, 2, 8, 4, 59, 59))
    assert body == MSG
    m.logout()


def test_two_sessions_append_distinct_uids(imap):
    tern, port = imap
    a, b = raw_login(port), raw_login(port)
    seen = []
    for i in range(3):
        for r, t in ((a, "a"), (b, "b")):
            tag = f"{t}{i}"
            r.send(f"{tag} APPEND Archive {{{len(MSG)}+}}\r\n".encode() + MSG + b"\r\n")
            _, ok = tagged(r, tag)
            seen.append(appenduid(ok[len(tag) + 4:])[1])
    assert seen == list(range(seen[0], seen[0] + 6))
    a.close()
    b.close()


def test_append_large_message(tern_factory):
    """A message far larger than the connection's input buffer (256 KiB)."""
    port, = free_ports(1)
    tern = tern_factory(listen__imap=f"127.0.0.1:{port}")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    big = make_message("big", "") + line * (3 * 1024 * 1024 // len(line))
    m = login(port)
    typ, caps = m.capability()
    assert f"APPENDLIMIT={20 * 1024 * 1024}".encode() in caps[0].split()
    typ, data = m.append("INBOX", None, None, big)
    assert typ == "OK", data
    _, uid = appenduid(data[0])
    m.select("INBOX")
    assert fetch_one(m, uid)[2] == big
    m.logout()
    assert tern.stop() == 0
    log = tern.log()
    assert "Sanitizer" not in log and "runtime error" not in log, log


def test_pipelined_commands_wait_for_append(imap):
    """Commands sent right behind an APPEND (whose file is written on a
    worker thread while the session reads nothing) are answered after it,
    in order, and see the appended message."""
    _, port = imap
    r = raw_login(port)
    msg = make_message("pipelined", "Behind the append.\n").replace(b"\n", b"\r\n")
    r.send(b"a APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n"
           b"s SELECT INBOX\r\n"
           b"f UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n"
           b"t STORE 1 +FLAGS (\\Seen)\r\n"
           b"x LOGOUT\r\n")
    _, ok = tagged(r, "a")
    assert appenduid(ok.split(b"OK ", 1)[1])[1] == 1
    untagged, _ = tagged(r, "s")
    assert b"* 1 EXISTS\r\n" in untagged
    untagged, _ = tagged(r, "f")
    assert any(b"Subject: pipelined" in ln for ln in untagged), untagged
    untagged, _ = tagged(r, "t")
    assert untagged == [b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n"], untagged
    untagged, _ = tagged(r, "x")
    assert untagged[0].startswith(b"* BYE"), untagged
    r.close()
