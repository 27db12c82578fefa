"""IMAP STORE, UID STORE (RFC 3501 §6.4.6, §6.4.8), EXPUNGE (§6.4.3), UID
EXPUNGE (RFC 4315) and the expunge of CLOSE (§6.4.2), with imaplib and
poplib, checking the Maildir file names."""

import imaplib
import poplib
import re
import smtplib

import pytest

from tern_harness import TIMEOUT, free_ports, make_message

DEMO = "demo@example.test"
PW = "pw"
SENDER = "sender@remote.test"


@pytest.fixture
def imap(tern_factory):
    """(tern, imap port)"""
    port, = free_ports(1)
    return tern_factory(listen__imap=f"127.0.0.1:{port}"), port


def three(tern):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for i in range(3):
            msg = make_message(f"store test {i}", f"Body {i}.\n")
            assert s.sendmail(SENDER, [DEMO], msg) == {}
        s.quit()
    # A first session takes the messages' \\Recent (test_imap_idle checks
    # it), so that the flags below are exactly the stored ones.
    m = login(int(tern.settings["listen.imap"].rsplit(":", 1)[1]))
    m.select("INBOX")
    m.logout()


def login(port):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    typ, _ = m.login(DEMO, PW)
    assert typ == "OK"
    return m


def uids(m):
    typ, data = m.fetch("1:*", "UID")
    assert typ == "OK"
    return [int(re.search(rb"UID (\d+)", d).group(1)) for d in data if d]


def flags(m, seq):
    typ, data = m.fetch(str(seq), "FLAGS")
    assert typ == "OK"
    return re.search(rb"FLAGS \(([^)]*)\)", data[0]).group(1).decode()


def file_of(tern, uid):
    files = [p for p in tern.message_files(DEMO) if f",U={uid}:" in p.name]
    assert len(files) == 1, files
    return files[0]


def test_store_flags(imap):
    tern, port = imap
    three(tern)
    m = login(port)
    m.select("INBOX")
    u = uids(m)

    typ, data = m.store("1", "+FLAGS", "(\\Flagged)")
    assert typ == "OK" and data == [b"1 (FLAGS (\\Flagged))"], data
    assert flags(m, 1) == "\\Flagged"
    assert file_of(tern, u[0]).name.endswith(":2,F")
    typ, data = m.store("1", "+FLAGS", "\\Seen")   # a single flag, no list
    assert typ == "OK"
    assert file_of(tern, u[0]).name.endswith(":2,FS")
    assert set(flags(m, 1).split()) == {"\\Flagged", "\\Seen"}

    typ, data = m.store("1", "-FLAGS", "(\\Flagged)")
    assert typ == "OK" and data == [b"1 (FLAGS (\\Seen))"]
    assert file_of(tern, u[0]).name.endswith(":2,S")
    typ, data = m.store("1:2", "FLAGS", "(\\Answered \\Draft)")
    assert typ == "OK" and len(data) == 2
    assert file_of(tern, u[0]).name.endswith(":2,DR")
    assert file_of(tern, u[1]).name.endswith(":2,DR")

    m.untagged_responses.pop("FETCH", None)
    typ, data = m.store("3", "+FLAGS.SILENT", "(\\Flagged \\Recent)")
    assert typ == "OK" and data == [None], data
    assert flags(m, 3) == "\\Flagged"

    typ, data = m.uid("STORE", str(u[2]), "-FLAGS", "(\\Flagged)")
    assert typ == "OK"
    assert data == [b"3 (UID %d FLAGS ())" % u[2]], data

    typ, data = m._simple_command("STORE", "1", "+FLAGS", "(\\Seen \\Bogus)")
    assert typ == "NO" and b"[CANNOT]" in data[0], data
    assert flags(m, 1) == "\\Answered \\Draft"
    with pytest.raises(imaplib.IMAP4.error):
        m.store("1", "+BOGUS", "(\\Seen)")
    m.logout()

    tern.restart()
    m = login(port)
    m.select("INBOX", readonly=True)
    assert set(flags(m, 1).split()) == {"\\Answered", "\\Draft"}
    typ, _ = m._simple_command("STORE", "1", "+FLAGS", "(\\Seen)")
    assert typ == "NO"
    typ, _ = m._simple_command("EXPUNGE")
    assert typ == "NO"
    m.logout()


def test_expunge(imap):
    tern, port = imap
    three(tern)
    m = login(port)
    m.select("INBOX")
    u = uids(m)
    m.store("2", "+FLAGS", "(\\Deleted)")
    path = file_of(tern, u[1])
    assert path.name.endswith(":2,T")
    typ, data = m.expunge()
    assert typ == "OK" and data == [b"2"], data
    assert not path.exists()
    assert uids(m) == [u[0], u[2]]
    assert len(tern.message_files(DEMO)) == 2
    # Several at once: numbers sent highest first stay right (§7.4.1).
    m.store("1:2", "+FLAGS.SILENT", "(\\Deleted)")
    typ, data = m.expunge()
    assert typ == "OK" and data == [b"2", b"1"], data
    assert len(tern.message_files(DEMO)) == 0
    m.logout()


def test_expunge_pop3_and_close(imap):
    tern, port = imap
    three(tern)
    m = login(port)
    m.select("INBOX")
    m.store("2", "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.logout()
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    p.user(DEMO)
    p.pass_(PW)
    assert p.stat()[0] == 2
    p.quit()

    m = login(port)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Deleted)")
    typ, _ = m.close()
    assert typ == "OK"
    assert len(tern.message_files(DEMO)) == 1
    typ, data = m.select("INBOX")
    assert data == [b"1"]
    # EXAMINE then CLOSE expunges nothing.
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.select("INBOX", readonly=True)
    m.close()
    assert len(tern.message_files(DEMO)) == 1
    m.logout()


def test_uid_expunge(imap):
    tern, port = imap
    three(tern)
    m = login(port)
    m.select("INBOX")
    u = uids(m)
    m.store("1:2", "+FLAGS", "(\\Deleted)")
    typ, data = m.uid("EXPUNGE", f"{u[1]}:{u[2]}")
    assert typ == "OK"
    assert m.untagged_responses.pop("EXPUNGE") == [b"2"]
    assert uids(m) == [u[0], u[2]]
    assert "\\Deleted" in flags(m, 1)
    assert len(tern.message_files(DEMO)) == 2
    typ, data = m.uid("EXPUNGE", "*")
    assert typ == "OK" and "EXPUNGE" not in m.untagged_responses
    typ, data = m.expunge()
    assert data == [b"1"]
    assert uids(m) == [u[2]]
    m.logout()
