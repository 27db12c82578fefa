"""ENVELOPE and BODYSTRUCTURE computed at delivery (RFC 3501 §7.4.2): a
message received over SMTP is described by the delivery itself and kept in
the user's index, so that SELECT files it with the message's UID and a
FETCH of them never parses the file."""

import imaplib
import poplib
import smtplib
import sqlite3

import pytest

from tern_harness import TIMEOUT, free_ports

DEMO = "demo@example.test"
PW = "pw"
SENDER = "sender@remote.test"

MULTI = (b"From: Alice <alice@example.org>\r\n"
         b"To: demo@example.test\r\n"
         b"Subject: multi\r\n"
         b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
         b"Message-ID: <m1@example.org>\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
         b"\r\n"
         b"preamble\r\n"
         b"--b1\r\n"
         b"Content-Type: text/plain; charset=us-ascii\r\n"
         b"\r\n"
         b"part one\r\n"
         b"--b1\r\n"
         b"Content-Type: text/html\r\n"
         b"\r\n"
         b"<p>two</p>\r\n"
         b"--b1--\r\n")

ENVELOPE = (b'("Mon, 1 Jan 2024 10:00:00 +0000" "multi"'
            b' (("Alice" NIL "alice" "example.org"))'
            b' (("Alice" NIL "alice" "example.org"))'
            b' (("Alice" NIL "alice" "example.org"))'
            b' ((NIL NIL "demo" "example.test")) NIL NIL NIL'
            b' "<m1@example.org>")')
# The CRLF before a delimiter is part of it (RFC 2046 §5.1.1): "part one"
# is 8 octets, "<p>two</p>" 10.
BODYSTRUCTURE = (b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 8 1'
                 b' NIL NIL NIL NIL)'
                 b'("TEXT" "HTML" NIL NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)'
                 b' "MIXED" ("BOUNDARY" "b1") NIL NIL NIL)')


@pytest.fixture
def imap(tern_factory):
    """(tern, imap port)"""
    port, = free_ports(1)
    return tern_factory(listen__imap=f"127.0.0.1:{port}"), port


def deliver(tern, msgs):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for m in msgs:
            assert s.sendmail(SENDER, [DEMO], m) == {}
        s.quit()


def query(tern, sql):
    """Rows of the user's index, read as another program would."""
    db = sqlite3.connect(tern.maildir(DEMO) / "tern-index.sqlite")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def login(port):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    typ, _ = m.login(DEMO, PW)
    assert typ == "OK"
    return m


def test_described_at_delivery(imap):
    tern, port = imap
    deliver(tern, [MULTI])
    # The 250 came after the delivery described it: no IMAP session yet.
    files = list((tern.maildir(DEMO) / "new").iterdir())
    assert len(files) == 1
    unique = files[0].name.split(",")[0]
    assert query(tern, "SELECT mailbox, name, envelope, bodystructure"
                 " FROM delivered") == [
        ("INBOX", unique, ENVELOPE.decode(), BODYSTRUCTURE.decode())]

    m = login(port)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    # SELECT gave the message its UID and its texts, before any FETCH;
    # the delivered row is gone.
    assert query(tern, "SELECT uid, envelope, bodystructure FROM messages"
                 " LEFT JOIN cache USING (mailbox, uid)") == [
        (1, ENVELOPE.decode(), BODYSTRUCTURE.decode())]
    assert query(tern, "SELECT count(*) FROM delivered") == [(0,)]

    typ, data = m.fetch("1", "(ENVELOPE BODYSTRUCTURE)")
    assert typ == "OK"
    assert data == [b"1 (ENVELOPE " + ENVELOPE + b" BODYSTRUCTURE "
                    + BODYSTRUCTURE + b")"]
    typ, data = m.fetch("1", "(BODY)")
    assert data == [b'1 (BODY (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL'
                    b' "7BIT" 8 1)("TEXT" "HTML" NIL NIL NIL "7BIT" 10 1)'
                    b' "MIXED"))']
    m.logout()


def test_pop3_deleted_leaves_no_row(imap):
    tern, port = imap
    second = MULTI.replace(b"Subject: multi", b"Subject: kept")
    deliver(tern, [MULTI, second])
    assert query(tern, "SELECT count(*) FROM delivered") == [(2,)]

    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    p.user(DEMO)
    p.pass_(PW)
    p.dele(1)
    p.quit()
    # QUIT removed the file and, with it, its row.
    files = list((tern.maildir(DEMO) / "new").iterdir())
    assert len(files) == 1
    assert query(tern, "SELECT name FROM delivered") == [
        (files[0].name.split(",")[0],)]

    m = login(port)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    assert query(tern, "SELECT count(*) FROM delivered") == [(0,)]
    kept = ENVELOPE.replace(b'"multi"', b'"kept"')
    assert query(tern, "SELECT uid, envelope FROM messages"
                 " LEFT JOIN cache USING (mailbox, uid)") == [
        (1, kept.decode())]
    typ, data = m.fetch("1", "(ENVELOPE)")
    assert data == [b"1 (ENVELOPE " + kept + b")"]
    m.logout()


def test_append_and_copy_described(imap):
    """APPEND describes the message it stores, COPY gives the copy its
    source's texts: both rows are filled before any FETCH."""
    tern, port = imap
    m = login(port)
    typ, data = m.append("INBOX", None, None, MULTI)
    assert typ == "OK"
    uid = int(data[0].split(b"APPENDUID ")[1].split()[1].rstrip(b"]"))
    rows = query(tern, "SELECT uid, envelope, bodystructure FROM messages"
                       " LEFT JOIN cache USING (mailbox, uid)"
                       " WHERE mailbox = 'INBOX'")
    assert rows == [(uid, ENVELOPE.decode(), BODYSTRUCTURE.decode())]
    m.select("INBOX")
    typ, _ = m.uid("COPY", str(uid), "Archive")
    assert typ == "OK"
    rows = query(tern, "SELECT uid, envelope, bodystructure FROM messages"
                       " LEFT JOIN cache USING (mailbox, uid)"
                       " WHERE mailbox = 'Archive'")
    assert len(rows) == 1
    copied = rows[0][0]
    assert rows[0][1:] == (ENVELOPE.decode(), BODYSTRUCTURE.decode())
    m.select("Archive")
    typ, data = m.uid("FETCH", str(copied), "(ENVELOPE BODYSTRUCTURE)")
    assert typ == "OK"
    assert data[0] == (b"1 (UID %d ENVELOPE " % copied + ENVELOPE
                       + b" BODYSTRUCTURE " + BODYSTRUCTURE + b")")
    # The texts go with the message.
    m.uid("STORE", str(copied), "+FLAGS.SILENT", "(\\Deleted)")
    typ, _ = m.expunge()
    assert typ == "OK"
    assert query(tern, "SELECT mailbox, uid FROM cache") == [("INBOX", uid)]
    m.logout()
