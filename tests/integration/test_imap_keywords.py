"""IMAP keywords (RFC 3501 §2.3.2): STORE and UID STORE with keywords,
FETCH FLAGS, the FLAGS and PERMANENTFLAGS of SELECT, kept in the Maildir
as letters a-z after ":2," with the folder's tern-keywords map, so that a
restart, `tern reindex` and other Maildir tools agree."""

import imaplib
import re
import smtplib

import pytest

from tern_harness import TIMEOUT, Raw, free_ports, make_message

DEMO = "demo@example.test"
PW = "pw"
SENDER = "sender@remote.test"
SYSTEM = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


@pytest.fixture
def imap(tern_factory):
    """(tern, imap port)"""
    port, = free_ports(1)
    return tern_factory(listen__imap=f"127.0.0.1:{port}"), port


def three(tern):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for i in range(3):
            msg = make_message(f"keyword test {i}", f"Body {i}.\n")
            assert s.sendmail(SENDER, [DEMO], msg) == {}
        s.quit()
    take_recent(tern)


def take_recent(tern):
    """A first session takes the new messages' \\Recent (test_imap_idle
    checks it), so that the flags below are exactly the stored ones."""
    port = int(tern.settings["listen.imap"].rsplit(":", 1)[1])
    m = login(port)
    m.select("INBOX")
    m.logout()


def login(port):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    typ, _ = m.login(DEMO, PW)
    assert typ == "OK"
    return m


def select(m, readonly=False):
    """SELECT or EXAMINE INBOX: (FLAGS list, PERMANENTFLAGS list)."""
    typ, _ = m.select("INBOX", readonly=readonly)
    assert typ == "OK"
    return m.response("FLAGS")[1][0], m.response("PERMANENTFLAGS")[1][0]


def uids(m):
    typ, data = m.fetch("1:*", "UID")
    assert typ == "OK"
    return [int(re.search(rb"UID (\d+)", d).group(1)) for d in data if d]


def all_flags(m):
    typ, data = m.fetch("1:*", "FLAGS")
    assert typ == "OK"
    return [re.search(rb"FLAGS \(([^)]*)\)", d).group(1).decode() for d in data if d]


def file_of(tern, uid):
    files = [p for p in tern.message_files(DEMO) if f",U={uid}:" in p.name]
    assert len(files) == 1, files
    return files[0]


def keyword_map(tern):
    return (tern.maildir(DEMO) / "tern-keywords").read_text()


def test_store_fetch_keep(imap):
    tern, port = imap
    three(tern)
    m = login(port)
    flags, permanent = select(m)
    assert flags == b"(" + SYSTEM + b")"
    assert permanent == b"(" + SYSTEM + b" \\*)"
    u = uids(m)

    typ, data = m.store("1", "+FLAGS", "($Forwarded Junk)")
    assert typ == "OK" and data == [b"1 (FLAGS ($Forwarded Junk))"], data
    # The new keywords are announced (§7.2.6).
    assert m.response("FLAGS")[1] == [b"(" + SYSTEM + b" $Forwarded Junk)"]
    assert m.response("PERMANENTFLAGS")[1] == [
        b"(" + SYSTEM + b" $Forwarded Junk \\*)"]
    assert file_of(tern, u[0]).name.endswith(":2,ab")
    assert keyword_map(tern) == "a $Forwarded\nb Junk\n"

    # Case-insensitive: the first spelling stays; nothing new to announce.
    typ, data = m.store("2", "+FLAGS", "(\\Seen junk)")
    assert typ == "OK" and data == [b"2 (FLAGS (\\Seen Junk))"], data
    assert m.response("FLAGS")[1] == [None]
    assert file_of(tern, u[1]).name.endswith(":2,Sb")
    assert all_flags(m) == ["$Forwarded Junk", "\\Seen Junk", ""]

    typ, data = m.store("1", "-FLAGS", "(JUNK)")
    assert typ == "OK" and data == [b"1 (FLAGS ($Forwarded))"], data
    assert file_of(tern, u[0]).name.endswith(":2,a")
    typ, data = m.store("3", "FLAGS", "(\\Flagged Junk $Forwarded)")
    assert typ == "OK" and data == [b"3 (FLAGS (\\Flagged $Forwarded Junk))"], data
    assert file_of(tern, u[2]).name.endswith(":2,Fab")
    typ, data = m.uid("STORE", str(u[2]), "FLAGS", "(Junk)")
    assert typ == "OK" and data == [b"3 (UID %d FLAGS (Junk))" % u[2]], data
    m.untagged_responses.pop("FETCH", None)
    typ, data = m.store("2", "+FLAGS.SILENT", "($Forwarded)")
    assert typ == "OK" and data == [None], data
    expected = ["$Forwarded", "\\Seen $Forwarded Junk", "Junk"]
    assert all_flags(m) == expected

    typ, data = m._simple_command("STORE", "1", "+FLAGS", "(\\Bogus)")
    assert typ == "NO" and b"[CANNOT]" in data[0], data
    with pytest.raises(imaplib.IMAP4.error):
        m.store("1", "+FLAGS", "(bad])")
    m.logout()

    # Reselect, restart: the keywords are in the names and the map.
    m = login(port)
    flags, _ = select(m)
    assert flags == b"(" + SYSTEM + b" $Forwarded Junk)"
    assert all_flags(m) == expected
    m.logout()
    tern.restart()
    m = login(port)
    flags, permanent = select(m, readonly=True)
    assert flags == b"(" + SYSTEM + b" $Forwarded Junk)"
    assert permanent == b"()"
    assert all_flags(m) == expected
    typ, _ = m._simple_command("STORE", "1", "+FLAGS", "(Junk)")
    assert typ == "NO"
    m.logout()


def test_wire_order(imap):
    """The new FLAGS and PERMANENTFLAGS come before the FETCH and the tag."""
    tern, port = imap
    three(tern)
    with Raw(port) as r:
        assert r.readline().startswith(b"* OK")
        r.send(f"a LOGIN {DEMO} {PW}\r\n")
        while not r.readline().startswith(b"a OK"):
            pass
        r.send("b SELECT INBOX\r\n")
        while not r.readline().startswith(b"b OK"):
            pass
        r.send("c STORE 1 +FLAGS ($Forwarded)\r\nd STORE 2 +FLAGS $Forwarded\r\n")
        lines = [r.readline() for _ in range(6)]
        assert lines == [
            b"* FLAGS (" + SYSTEM + b" $Forwarded)\r\n",
            b"* OK [PERMANENTFLAGS (" + SYSTEM + b" $Forwarded \\*)] Flags permitted\r\n",
            b"* 1 FETCH (FLAGS ($Forwarded))\r\n",
            b"c OK STORE completed\r\n",
            b"* 2 FETCH (FLAGS ($Forwarded))\r\n",
            b"d OK STORE completed\r\n",
        ], lines


def test_other_tools_and_reindex(imap):
    tern, port = imap
    three(tern)
    m = login(port)
    select(m)
    u = uids(m)
    assert m.store("1", "+FLAGS", "(Junk)")[0] == "OK"
    m.logout()

    # mutt (or any Maildir tool) marks message 2 seen and Junk ('a').
    path = file_of(tern, u[1])
    base, info = path.name.split(":2,")
    assert info == ""
    path.rename(path.with_name(base + ":2,Sa"))
    m = login(port)
    select(m)
    assert all_flags(m) == ["Junk", "\\Seen Junk", ""]
    m.logout()

    tern.stop()
    for p in tern.maildir(DEMO).glob("tern-index.sqlite*"):
        p.unlink()
    r = tern.tern("reindex", DEMO)
    assert r.returncode == 0, r.stderr
    tern.start()
    take_recent(tern)   # a rebuilt index knows of no earlier session
    m = login(port)
    flags, _ = select(m)
    assert flags == b"(" + SYSTEM + b" Junk)"
    assert all_flags(m) == ["Junk", "\\Seen Junk", ""]
    assert uids(m) == u
    m.logout()


def test_limit(imap):
    tern, port = imap
    three(tern)
    m = login(port)
    select(m)
    names = " ".join(f"k{i}" for i in range(25))
    assert m.store("1", "+FLAGS", f"({names})")[0] == "OK"
    typ, data = m.store("2", "+FLAGS", "(Junk)")     # the 26th
    assert typ == "OK" and data == [b"2 (FLAGS (Junk))"], data
    # Full now: no \* any more (the first STORE's responses come first).
    assert m.response("PERMANENTFLAGS")[1][-1] == (
        b"(" + SYSTEM + b" " + names.encode() + b" Junk)")
    assert len(keyword_map(tern).splitlines()) == 26

    # The 27th: refused whole, nothing changes, even with known ones beside.
    typ, data = m._simple_command("STORE", "3", "+FLAGS", "(\\Seen Junk Spam)")
    assert typ == "NO" and b"[LIMIT]" in data[0], data
    assert all_flags(m)[1:] == ["Junk", ""]
    assert len(keyword_map(tern).splitlines()) == 26
    typ, data = m.store("3", "+FLAGS", "(k24 junk)")   # known ones still work
    assert typ == "OK" and data == [b"3 (FLAGS (k24 Junk))"], data
    m.logout()

    m = login(port)
    _, permanent = select(m)
    assert permanent == b"(" + SYSTEM + b" " + names.encode() + b" Junk)"
    m.logout()


def test_append_and_copy_carry_keywords(imap):
    """APPEND keeps keywords; COPY gives them the target folder's letters
    (each folder has its own map)."""
    tern, port = imap
    three(tern)
    m = login(port)
    assert m.create("Work")[0] == "OK"
    # Work's map gets "Other" first, so letters differ between folders.
    typ, data = m.append("Work", "(Other $Label1)", None, b"Subject: a\r\n\r\nx\r\n")
    assert typ == "OK", data
    select(m)
    assert m.store("1", "+FLAGS", "($Label1)")[0] == "OK"
    assert m.copy("1", "Work")[0] == "OK"
    m.select("Work")
    typ, data = m.fetch("1:2", "FLAGS")
    got = [re.search(rb"FLAGS \(([^)]*)\)", d).group(1).split() for d in data]
    assert set(got[0]) - {b"\\Recent"} == {b"Other", b"$Label1"}
    assert set(got[1]) - {b"\\Recent"} == {b"$Label1"}
    work = tern.maildir(DEMO) / ".Work"
    assert (work / "tern-keywords").read_text() == "a Other\nb $Label1\n"
    names = sorted(p.name.split(":2,")[1] for p in (work / "cur").iterdir())
    assert sorted(names) == ["ab", "b"]
    m.logout()
