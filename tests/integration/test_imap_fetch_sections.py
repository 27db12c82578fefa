"""IMAP FETCH BODY[section] (RFC 3501 §6.4.5, §7.4.2): part numbers over
nested multiparts and message/rfc822, MIME, n.HEADER/n.TEXT,
HEADER.FIELDS[.NOT], partials; and the ENVELOPE/BODYSTRUCTURE cache in the
index. Every expected byte below is written by hand from the message."""

import imaplib
import re
import sqlite3
from pathlib import Path

import pytest

from tern_harness import TIMEOUT, free_ports, make_message
from test_imap_fetch import DEMO, deliver, login

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "mime" / "nested.eml"


@pytest.fixture
def imap(tern_factory):
    port, = free_ports(1)
    return tern_factory(listen__imap=f"127.0.0.1:{port}"), port


def nested():
    return FIXTURE.read_bytes().replace(b"\n", b"\r\n")


def fetch(m, spec, seq="1"):
    """(response text without literal, literal or None) of one item."""
    typ, data = m.fetch(seq, f"({spec})")
    assert typ == "OK", data
    if isinstance(data[0], tuple):
        rest = b"".join(d for d in data[1:] if isinstance(d, bytes))
        return data[0][0] + rest, data[0][1]
    return data[0], None


def section(m, spec, name=None, seq="1"):
    """The literal of BODY.PEEK[spec], checking the response names it
    BODY[name] (§7.4.2: the section as asked, without PEEK)."""
    text, lit = fetch(m, f"BODY.PEEK[{spec}]", seq)
    want = name if name is not None else spec
    assert text.startswith(f"{seq} (BODY[{want}] {{".encode()), text
    return lit


ALT_BODY = (b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            b"Hello, plain.\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"\r\n<p>Hello, html.</p>\r\n--alt--")
INNER_HEADER = (b"From: Carol <carol@example.org>\r\nTo: alice@example.org\r\n"
                b"Subject: Inner\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
                b"MIME-Version: 1.0\r\n"
                b"Content-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n")
INNER_TEXT = (b"--inner\r\nContent-Type: text/plain\r\n\r\nInner text.\r\n"
              b"--inner\r\nContent-Type: text/plain; name=\"note.txt\"\r\n"
              b"Content-Disposition: attachment\r\n\r\nA note\r\n with two lines.\r\n"
              b"--inner--")


def test_part_numbers(imap):
    tern, port = imap
    deliver(tern, [nested()])
    m = login(port)
    m.select("INBOX")
    assert section(m, "1.1") == b"Hello, plain."
    assert section(m, "1.2") == b"<p>Hello, html.</p>"
    assert section(m, "1") == ALT_BODY
    assert section(m, "1.MIME") == \
        b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
    assert section(m, "1.2.MIME") == b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    assert section(m, "2") == b"AAECAwQF"
    assert section(m, "2.mime", "2.MIME") == (
        b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
        b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n")
    # A message/rfc822 part: its body is the whole message it holds.
    assert section(m, "3") == INNER_HEADER + INNER_TEXT
    assert section(m, "3.HEADER") == INNER_HEADER
    assert section(m, "3.TEXT") == INNER_TEXT
    assert section(m, "3.MIME") == \
        b"Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n"
    assert section(m, "3.1") == b"Inner text."
    assert section(m, "3.2") == b"A note\r\n with two lines."
    assert section(m, "3.2.MIME") == (b"Content-Type: text/plain; name=\"note.txt\"\r\n"
                                      b"Content-Disposition: attachment\r\n\r\n")
    assert section(m, "3.HEADER.FIELDS (subject)") == b"Subject: Inner\r\n\r\n"
    assert section(m, "3.HEADER.FIELDS.NOT (From To Date MIME-Version Content-Type)") \
        == b"Subject: Inner\r\n\r\n"
    # The top-level TEXT of a multipart: preamble to epilogue.
    text = section(m, "TEXT")
    assert text.startswith(b"This is the preamble.\r\n--outer\r\n")
    assert text.endswith(b"--outer--\r\nEpilogue.\r\n")
    assert b"\\Seen" not in fetch(m, "FLAGS")[0]
    m.logout()
    assert tern.stop() == 0 and "Sanitizer" not in tern.log()


def test_missing_parts(imap):
    """A part that is not there is the empty string (see imap_fetch.c)."""
    tern, port = imap
    deliver(tern, [nested(), make_message("single", "Just one part.\n")])
    m = login(port)
    m.select("INBOX")
    for spec in ("4", "1.3", "1.1.1", "2.1", "3.3", "1.1.HEADER", "2.TEXT",
                 "1.HEADER.FIELDS (From)"):
        text, lit = fetch(m, f"BODY.PEEK[{spec}]")
        assert lit is None and text == f'1 (BODY[{spec}] "")'.encode(), text
    # A message that is not multipart has one part: its body (§6.4.5).
    assert section(m, "1", seq="2") == b"Just one part.\r\n"
    assert section(m, "TEXT", seq="2") == b"Just one part.\r\n"
    text, lit = fetch(m, "BODY.PEEK[2]", seq="2")
    assert lit is None and text == b'2 (BODY[2] "")'
    text, lit = fetch(m, "BODY.PEEK[1.1]", seq="2")
    assert lit is None and text == b'2 (BODY[1.1] "")'
    m.logout()


def test_header_fields(imap):
    tern, port = imap
    deliver(tern, [nested()])
    m = login(port)
    m.select("INBOX")
    assert section(m, "HEADER.FIELDS (FROM SUBJECT)") == \
        b"From: Alice <alice@example.org>\r\nSubject: Nested\r\n\r\n"
    # Case-insensitive, message order kept, folds byte-exact, quoted names.
    assert section(m, 'HEADER.FIELDS (x-FOLDED "Subject")',
                   "HEADER.FIELDS (x-FOLDED Subject)") == \
        b"Subject: Nested\r\nX-Folded: one\r\n\ttwo\r\n\r\n"
    assert section(m, "header.fields.not (Return-Path Delivered-To Received From To "
                   "Subject Date X-Folded)",
                   "HEADER.FIELDS.NOT (Return-Path Delivered-To Received From To "
                   "Subject Date X-Folded)") == \
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
    assert section(m, "HEADER.FIELDS (No-Such-Field)") == b"\r\n"
    # §6.4.5: a partial of HEADER.FIELDS is taken after subsetting.
    text, lit = fetch(m, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]<9.100>")
    assert text.startswith(b"1 (BODY[HEADER.FIELDS (SUBJECT)]<9> {")
    assert lit == b"Nested\r\n\r\n"
    m.logout()


def test_partials_and_seen(imap):
    tern, port = imap
    deliver(tern, [nested()])
    m = login(port)
    m.select("INBOX")
    text, lit = fetch(m, "BODY.PEEK[3.2]<2.4>")
    assert text == b"1 (BODY[3.2]<2> {4})" and lit == b"note"
    # A partial from 0 is named as one even when it covers everything.
    text, lit = fetch(m, "BODY.PEEK[1.1]<0.1000>")
    assert text == b"1 (BODY[1.1]<0> {13})" and lit == b"Hello, plain."
    text, lit = fetch(m, "BODY.PEEK[1.1]<13.5>")
    assert text == b"1 (BODY[1.1]<13> {0})" and lit == b""
    # Several sections in one FETCH, in order.
    typ, data = m.fetch("1", "(BODY.PEEK[3.1] BODY.PEEK[1.2]<3.5>)")
    assert typ == "OK"
    lits = [d for d in data if isinstance(d, tuple)]
    assert lits[0][0] == b"1 (BODY[3.1] {11}" and lits[0][1] == b"Inner text."
    assert lits[1][0] == b" BODY[1.2]<3> {5}" and lits[1][1] == b"Hello"
    assert b"\\Seen" not in fetch(m, "FLAGS")[0]
    # Without PEEK, \Seen is set and reported.
    text, lit = fetch(m, "BODY[2]")
    assert lit == b"AAECAwQF" and text.endswith(b"FLAGS (\\Seen \\Recent))")
    m.logout()


def test_bad_sections(imap):
    tern, port = imap
    deliver(tern, [nested()])
    specs = ["MIME", "0", "1.0", "1.", "1HEADER", "1.MIME.TEXT",
             "HEADER.FIELDS ()", "HEADER.FIELDS", "HEADER.FIELDS (A", "TEXT.1",
             "HEADER.FIELDS (A)x", "BOGUS"]
    for i in range(0, len(specs), 4):   # a session closes after many BADs
        m = login(port)
        m.select("INBOX")
        for spec in specs[i:i + 4]:
            with pytest.raises(imaplib.IMAP4.error):
                m.fetch("1", f"(BODY.PEEK[{spec}])")
        assert fetch(m, "UID")[0].startswith(b"1 (UID ")
        m.logout()
    assert tern.stop() == 0 and "Sanitizer" not in tern.log()


def index_row(tern):
    db = sqlite3.connect(tern.maildir(DEMO) / "tern-index.sqlite")
    try:
        return db.execute("SELECT envelope, bodystructure FROM messages"
                          " LEFT JOIN cache USING (mailbox, uid)"
                          " WHERE mailbox = 'INBOX'").fetchall()
    finally:
        db.close()


def test_cache(imap):
    tern, port = imap
    deliver(tern, [nested()])
    m = login(port)
    m.select("INBOX")
    # Described at delivery, taken into the row by SELECT's sync.
    (pre_env, pre_bs), = index_row(tern)
    assert pre_env is not None and pre_bs is not None
    env = fetch(m, "ENVELOPE")[0]
    bs = fetch(m, "BODYSTRUCTURE")[0]
    body = fetch(m, "BODY")[0]
    assert re.match(rb'1 \(ENVELOPE \("Mon, 23 Nov 2026 10:00:00 \+0000" "Nested" ', env)
    assert bs.startswith(b'1 (BODYSTRUCTURE ((("TEXT" "PLAIN" ("CHARSET" "utf-8") '
                         b'NIL NIL "7BIT" 13 1 NIL NIL NIL NIL)')
    m.logout()
    (cached_env, cached_bs), = index_row(tern)
    assert env == b"1 (ENVELOPE " + cached_env.encode() + b")"
    assert bs == b"1 (BODYSTRUCTURE " + cached_bs.encode() + b")"

    # Replace the file's content under the same name: what comes from the
    # cache does not change, what comes from the file does.
    path, = tern.message_files(DEMO)
    path.write_bytes(b"Subject: replaced\n\nother\n")
    m = login(port)
    m.select("INBOX")
    assert fetch(m, "ENVELOPE")[0] == env
    assert fetch(m, "BODYSTRUCTURE")[0] == bs
    assert fetch(m, "BODY")[0] == body
    assert section(m, "HEADER") == b"Subject: replaced\r\n\r\n"

    # (Renaming the file away would not test the cache any more: the
    # next command's sync sees a rename in cur/ as an expunge and a new
    # message, as it must for other Maildir tools.)
    m.logout()
    assert tern.running()
    assert tern.stop() == 0 and "Sanitizer" not in tern.log()
