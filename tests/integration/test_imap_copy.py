"""IMAP COPY and UID COPY (RFC 3501 §6.4.7), MOVE and UID MOVE (RFC 6851),
with COPYUID (RFC 4315 §3) checked against what a later SELECT shows, with
imaplib and by hand for the exact order of MOVE's responses."""

import imaplib
import os
import re
import smtplib

import pytest

from tern_harness import TIMEOUT, Raw, free_ports, make_message

DEMO = "demo@example.test"
PW = "pw"
SENDER = "sender@remote.test"


@pytest.fixture
def imap(tern_factory):
    """(tern, imap port) with three messages in demo's INBOX."""
    port, = free_ports(1)
    tern = tern_factory(listen__imap=f"127.0.0.1:{port}")
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for i in range(3):
            msg = make_message(f"copy test {i}", f"Body {i}.\nline two\n")
            assert s.sendmail(SENDER, [DEMO], msg) == {}
        s.quit()
    yield tern, port
    # A clean stop, and nothing from ASan or UBSan on the way.
    if tern.running():
        assert tern.stop() == 0
    log = tern.log()
    assert "Sanitizer" not in log and "runtime error" not in log, log


def login(port):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    typ, _ = m.login(DEMO, PW)
    assert typ == "OK"
    return m


def select(m, name):
    typ, data = m.select(name)
    assert typ == "OK", data
    return int(m.untagged_responses["UIDVALIDITY"][0])


def uids(m):
    typ, data = m.fetch("1:*", "UID")
    assert typ == "OK"
    return [int(re.search(rb"UID (\d+)", d).group(1)) for d in data if d]


def bodies(m):
    """{uid: (flags, body)} of the selected mailbox."""
    typ, data = m.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
    assert typ == "OK"
    out = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
        flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode()
        out[uid] = (set(flags.split()), item[1])
    return out


def expand(uidset):
    out = []
    for part in uidset.split(","):
        a, _, b = part.partition(":")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def copyuid(text):
    """(uidvalidity, [src uids], [dst uids]) from a COPYUID response code."""
    if isinstance(text, bytes):
        text = text.decode()
    mt = re.search(r"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", text)
    assert mt, text
    return int(mt.group(1)), expand(mt.group(2)), expand(mt.group(3))


def folder_files(tern, name):
    cur = tern.maildir(DEMO) / f".{name}" / "cur"
    return sorted(cur.iterdir())


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


def test_copy_copyuid_bodies_flags(imap):
    tern, port = imap
    m = login(port)
    assert m.create("Work")[0] == "OK"
    src_validity = select(m, "INBOX")
    src = uids(m)
    assert m.store("2", "+FLAGS", "(\\Flagged \\Seen)")[0] == "OK"
    before = bodies(m)

    typ, data = m.copy("1:3", "Work")
    assert typ == "OK", data
    validity, s_uids, d_uids = copyuid(data[0])
    assert s_uids == src
    assert len(d_uids) == 3 and d_uids == sorted(d_uids)

    dst_validity = select(m, "Work")
    assert validity == dst_validity != 0
    assert uids(m) == d_uids
    after = bodies(m)
    for s, d in zip(s_uids, d_uids):
        assert after[d] == before[s]          # flags and bytes
    # A copy is \\Recent to the first session that sees it (§6.4.7).
    assert after[d_uids[1]][0] == {"\\Flagged", "\\Seen", "\\Recent"}
    assert src_validity != 0

    # Hard links of the source files, new names carrying the new UIDs.
    files = folder_files(tern, "Work")
    assert [int(re.search(r",U=(\d+):", p.name).group(1)) for p in files] \
        == d_uids
    inbox = sorted((tern.maildir(DEMO) / "cur").iterdir())
    assert {os.stat(p).st_ino for p in files} == \
        {os.stat(p).st_ino for p in inbox}
    assert not list((tern.maildir(DEMO) / ".Work" / "tmp").iterdir())

    # The source is untouched.
    select(m, "INBOX")
    assert uids(m) == src
    m.logout()


def test_copy_twice_and_into_selected(imap):
    tern, port = imap
    m = login(port)
    select(m, "INBOX")
    src = uids(m)
    _, d1 = m.copy("1", "Archive")
    _, d2 = m.copy("1", "Archive")
    u1, u2 = copyuid(d1[0])[2], copyuid(d2[0])[2]
    assert u2[0] > u1[0]
    names = [p.name for p in folder_files(tern, "Archive")]
    assert len(names) == 2
    assert names[0].split(",")[0] != names[1].split(",")[0]   # unique parts
    m.logout()

    # Into the selected mailbox: EXISTS comes before the tagged OK.
    r = raw_login(port)
    r.send("s SELECT INBOX\r\n")
    tagged(r, "s")
    r.send("c COPY 2 INBOX\r\n")
    lines, ok = tagged(r, "c")
    assert lines == [b"* 4 EXISTS\r\n", b"* 1 RECENT\r\n"]
    _, s_uids, d_uids = copyuid(ok)
    assert s_uids == [src[1]] and d_uids[0] > src[2]
    r.send(f"f UID FETCH {d_uids[0]} (UID)\r\n")
    lines, _ = tagged(r, "f")
    assert lines == [f"* 4 FETCH (UID {d_uids[0]})\r\n".encode()]
    r.close()


def test_uid_copy_sets_and_trycreate(imap):
    tern, port = imap
    m = login(port)
    select(m, "INBOX")
    src = uids(m)
    typ, data = m._simple_command("UID", "COPY", f"{src[0]},{src[2]}", "Archive")
    assert typ == "OK"
    _, s_uids, d_uids = copyuid(data[0])
    assert s_uids == [src[0], src[2]]
    assert d_uids == [d_uids[0], d_uids[0] + 1]

    # UIDs that do not exist: OK, and no COPYUID (RFC 4315 §3).
    typ, data = m._simple_command("UID", "COPY", "999", "Archive")
    assert typ == "OK" and b"COPYUID" not in data[0]

    typ, data = m.copy("1", "Nope")
    assert typ == "NO" and data[0].startswith(b"[TRYCREATE]")
    typ, data = m._simple_command("UID", "COPY", str(src[0]), "Nope")
    assert typ == "NO" and data[0].startswith(b"[TRYCREATE]")

    select(m, "Archive")
    assert uids(m) == d_uids
    m.logout()


def test_copy_survives_restart_and_reindex(imap):
    tern, port = imap
    m = login(port)
    select(m, "INBOX")
    _, data = m.copy("1:2", "Archive")
    validity, _, d_uids = copyuid(data[0])
    m.logout()
    tern.restart()
    m = login(port)
    assert select(m, "Archive") == validity
    assert uids(m) == d_uids
    m.logout()
    tern.stop()
    os.remove(tern.maildir(DEMO) / "tern-index.sqlite")
    tern.start()
    m = login(port)
    assert select(m, "Archive") == validity
    assert uids(m) == d_uids
    # A new message after the rebuild gets a UID above the copies.
    _, data = m.copy("1", "Archive")
    assert copyuid(data[0])[2][0] > d_uids[-1]
    m.logout()


def test_move(imap):
    tern, port = imap
    m = login(port)
    select(m, "INBOX")
    src = uids(m)
    before = bodies(m)
    m.logout()

    r = raw_login(port)
    r.send("s SELECT INBOX\r\n")
    tagged(r, "s")
    r.send("m1 MOVE 1,3 Archive\r\n")
    lines, ok = tagged(r, "m1")
    assert ok == b"m1 OK MOVE completed\r\n"
    assert len(lines) == 3, lines
    assert lines[0].startswith(b"* OK [COPYUID ")
    _, s_uids, d_uids = copyuid(lines[0])
    assert s_uids == [src[0], src[2]]
    # Highest first, so that each number is right when it is sent.
    assert lines[1:] == [b"* 3 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]

    r.send(f"m2 UID MOVE {src[1]} Trash\r\n")
    lines, ok = tagged(r, "m2")
    assert ok == b"m2 OK UID MOVE completed\r\n"
    _, s2, d2 = copyuid(lines[0])
    assert s2 == [src[1]]
    assert lines[1:] == [b"* 1 EXPUNGE\r\n"]

    r.send("m3 MOVE 1 Trash\r\n")       # nothing left
    lines, ok = tagged(r, "m3")
    assert lines == []
    r.send("m4 MOVE 1:* Nope\r\n")
    tagged(r, "m4", expect=b"NO")
    r.close()

    m = login(port)
    select(m, "INBOX")
    assert uids(m) == []
    assert list((tern.maildir(DEMO) / "cur").iterdir()) == []
    select(m, "Archive")
    assert uids(m) == d_uids
    moved = bodies(m)
    for s, d in zip(s_uids, d_uids):
        assert moved[d] == before[s]
    select(m, "Trash")
    assert uids(m) == d2
    assert bodies(m)[d2[0]] == before[src[1]]
    m.logout()


def test_move_read_only_and_capability(imap):
    tern, port = imap
    m = login(port)
    typ, caps = m.capability()
    words = caps[0].split()
    assert b"UIDPLUS" in words and b"MOVE" in words
    assert m.select("INBOX", readonly=True)[0] == "OK"
    typ, data = m._simple_command("MOVE", "1", "Archive")
    assert typ == "NO" and data[0].startswith(b"[READ-ONLY]"), data
    m.logout()
    m = login(port)
    select(m, "INBOX")
    assert len(uids(m)) == 3
    m.logout()
