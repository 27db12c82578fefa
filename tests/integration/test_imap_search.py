"""IMAP SEARCH and UID SEARCH (RFC 3501 §6.4.4, §6.4.8, §7.2.5) and the
ESEARCH form (RFC 4731), with imaplib, over messages placed in the Maildir
the way a local delivery agent does (so that their internal dates are
known), plus one delivered over SMTP.

KEYWORD and UNKEYWORD are checked in tests/unit/test_imap_search.c: no
keyword can be stored over IMAP yet."""

import imaplib
import smtplib
import sqlite3

import pytest

from tern_harness import TIMEOUT, free_ports, make_message

DEMO = "demo@example.test"
PW = "pw"
SENDER = "sender@remote.test"

# (internal date as the Maildir name's seconds, message in LF form)
MESSAGES = [
    # Removed again before the tests, so that UIDs and numbers differ by one.
    (1767222000, b"Subject: placeholder\n\nto be expunged\n"),
    # 2026-01-05 09:00 UTC
    (1767603600,
     b"From: Alice Example <alice@example.org>\n"
     b"To: Bob <bob@example.net>\n"
     b"Cc: carol@example.com\n"
     b"Bcc: dave@example.com\n"
     b"Subject: Quarterly report\n"
     b"Date: Mon, 05 Jan 2026 10:00:00 +0100\n"
     b"X-Priority: 1\n"
     b"X-Empty:\n"
     b"\n"
     b"The numbers look good this quarter.\n"),
    # 2026-02-11 06:00 UTC; sent on the 10th in its own zone
    (1770789600,
     b"From: bob@example.net\n"
     b"To: alice@example.org\n"
     b"Subject: =?UTF-8?B?UsOpdW5pb24gw6AgUGFyaXM=?=\n"
     b"Date: Tue, 10 Feb 2026 23:30:00 -0800\n"
     b"MIME-Version: 1.0\n"
     b"Content-Type: text/plain; charset=utf-8\n"
     b"Content-Transfer-Encoding: quoted-printable\n"
     b"\n"
     b"Le caf=C3=A9 est pr=C3=AAt, venez =\n"
     b"vite.\n"),
    # 2026-03-15 12:00 UTC; no Date: field
    (1773576000,
     b"From: Carol <carol@example.com>\n"
     b"To: alice@example.org\n"
     b"Subject: base64 note\n"
     b"MIME-Version: 1.0\n"
     b"Content-Type: text/plain; charset=UTF-8\n"
     b"Content-Transfer-Encoding: base64\n"
     b"\n"
     b"R2VoZWltbmlzOiBTY2hsw7xzc2VsIHVudGVyIGRlciBNYXR0ZS4K\n"),
    # 2026-03-16 00:00:01 UTC
    (1773619201,
     b"From: Alice Example <alice@example.org>\n"
     b"To: bob@example.net\n"
     b"Subject: with attachment\n"
     b"Date: Mon, 16 Mar 2026 01:00:00 +0100\n"
     b"MIME-Version: 1.0\n"
     b"Content-Type: multipart/mixed; boundary=\"sep\"\n"
     b"\n"
     b"--sep\n"
     b"Content-Type: text/plain; charset=iso-8859-1\n"
     b"Content-Transfer-Encoding: quoted-printable\n"
     b"\n"
     b"Voil=E0 le fichier.\n"
     + b"padding line\n" * 100 +
     b"--sep\n"
     b"Content-Type: application/octet-stream\n"
     b"Content-Transfer-Encoding: base64\n"
     b"\n"
     b"YXR0YWNoZWR3b3JkIGluc2lkZQ==\n"
     b"--sep--\n"),
]


@pytest.fixture
def imap(tern_factory):
    """(tern, imap port, session) with MESSAGES as sequence numbers 1-4
    (UIDs 2-5) and message 5 delivered over SMTP (UID 6)."""
    port, = free_ports(1)
    tern = tern_factory(listen__imap=f"127.0.0.1:{port}")
    md = tern.maildir(DEMO)
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    for i, (when, data) in enumerate(MESSAGES):
        (md / "tmp" / f"{when}.M{i}P1.test").write_bytes(data)
        (md / "tmp" / f"{when}.M{i}P1.test").rename(md / "new" / f"{when}.M{i}P1.test")
    m = login(port)
    assert m.select("INBOX")[0] == "OK"
    assert m.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert m.expunge()[0] == "OK"
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        assert s.sendmail(SENDER, [DEMO], make_message("smtp delivered", "Short.\n")) == {}
    m.close()
    assert m.select("INBOX")[0] == "OK"
    yield tern, port, m
    m.logout()


def login(port):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    assert m.login(DEMO, PW)[0] == "OK"
    return m


def search(m, *criteria, charset=None, literal=None):
    """The numbers of SEARCH, as a list of ints."""
    if literal is not None:
        m.literal = literal.encode() if isinstance(literal, str) else literal
    typ, data = m.search(charset, *criteria)
    assert typ == "OK", (criteria, data)
    assert len(data) == 1
    return [int(n) for n in data[0].split()]


def uid_search(m, *criteria, literal=None):
    if literal is not None:
        m.literal = literal.encode()
    typ, data = m.uid("SEARCH", *criteria)
    assert typ == "OK", (criteria, data)
    return [int(n) for n in data[0].split()]


def bad(m, *criteria):
    """The reason of the BAD a program gets."""
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.search(None, *criteria)
    assert "BAD" in str(e.value)
    # A good command between, so that the bad-command limit is not reached.
    assert m.noop()[0] == "OK"
    return str(e.value)


def test_all_and_sequence_sets(imap):
    _, _, m = imap
    assert search(m, "ALL") == [1, 2, 3, 4, 5]
    assert search(m, "2:3") == [2, 3]
    assert search(m, "4:*") == [4, 5]
    assert search(m, "*") == [5]
    assert search(m, "1,3,5:5") == [1, 3, 5]
    assert search(m, "7:9") == []
    assert search(m, "UID", "2:3") == [1, 2]
    assert search(m, "UID", "6:*") == [5]
    assert uid_search(m, "ALL") == [2, 3, 4, 5, 6]
    assert uid_search(m, "2:3") == [3, 4]
    assert uid_search(m, "UID", "1:3") == [2, 3]
    # The raw reply: "* SEARCH" with no number when nothing matches.
    typ, data = m.search(None, "DELETED")
    assert typ == "OK" and data == [b""]


def test_flags(imap):
    _, _, m = imap
    assert m.store("1", "+FLAGS", "(\\Answered \\Seen)")[0] == "OK"
    assert m.store("2", "+FLAGS", "(\\Flagged \\Seen)")[0] == "OK"
    assert m.store("3", "+FLAGS", "(\\Draft)")[0] == "OK"
    assert m.store("4", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert search(m, "ANSWERED") == [1]
    assert search(m, "UNANSWERED") == [2, 3, 4, 5]
    assert search(m, "FLAGGED") == [2]
    assert search(m, "UNFLAGGED") == [1, 3, 4, 5]
    assert search(m, "DRAFT") == [3]
    assert search(m, "UNDRAFT") == [1, 2, 4, 5]
    assert search(m, "DELETED") == [4]
    assert search(m, "UNDELETED") == [1, 2, 3, 5]
    assert search(m, "SEEN") == [1, 2]
    assert search(m, "UNSEEN") == [3, 4, 5]
    assert search(m, "seen", "flagged") == [2]
    # \Recent belongs to the session's map (RFC 3501 §2.3.2): whatever it
    # holds, RECENT and OLD split the mailbox, and NEW is RECENT UNSEEN.
    recent, old, new = search(m, "RECENT"), search(m, "OLD"), search(m, "NEW")
    assert sorted(recent + old) == [1, 2, 3, 4, 5]
    assert new == [n for n in recent if n in (3, 4, 5)]
    assert search(m, "NOT", "RECENT") == old


def test_sizes(imap):
    _, _, m = imap
    typ, data = m.fetch("1:*", "RFC822.SIZE")
    sizes = [int(d.split(b"RFC822.SIZE ")[1].rstrip(b")")) for d in data]
    big = sizes[3]
    assert big == max(sizes)
    assert search(m, "LARGER", str(big - 1)) == [4]
    assert search(m, "LARGER", str(big)) == []
    assert search(m, "SMALLER", str(big)) == [1, 2, 3, 5]
    assert search(m, "SMALLER", str(min(sizes))) == []
    assert search(m, "SMALLER", str(min(sizes) + 1)) == [sizes.index(min(sizes)) + 1]


def test_internal_dates(imap):
    _, _, m = imap
    assert search(m, "ON", "5-Jan-2026") == [1]
    assert search(m, "ON", "11-Feb-2026") == [2]
    assert search(m, "ON", "10-Feb-2026") == []
    assert search(m, "BEFORE", "15-Mar-2026") == [1, 2]
    assert search(m, "BEFORE", "16-Mar-2026") == [1, 2, 3]
    assert search(m, "SINCE", "15-Mar-2026") == [3, 4, 5]
    assert search(m, "SINCE", "16-Mar-2026") == [4, 5]
    assert search(m, "SINCE", "16-mar-2026", "BEFORE", "17-MAR-2026") == [4]
    assert search(m, "ON", '"15-Mar-2026"') == [3]


def test_sent_dates(imap):
    _, _, m = imap
    # The Date: field's own day; the zone is disregarded (§6.4.4).
    assert search(m, "SENTON", "5-Jan-2026") == [1]
    assert search(m, "SENTON", "10-Feb-2026") == [2]
    assert search(m, "SENTON", "11-Feb-2026") == []
    assert search(m, "SENTON", "16-Mar-2026") == [4]
    # Message 3 has no Date:, message 5 came over SMTP without one.
    assert search(m, "SENTBEFORE", "1-Jan-2100") == [1, 2, 4]
    assert search(m, "SENTBEFORE", "10-Feb-2026") == [1]
    assert search(m, "SENTSINCE", "10-Feb-2026") == [2, 4]
    assert search(m, "NOT", "SENTSINCE", "1-Jan-1970") == [3, 5]


def test_header_keys(imap):
    _, _, m = imap
    assert search(m, "FROM", "alice") == [1, 4]
    assert search(m, "FROM", '"Alice Example"') == [1, 4]
    assert search(m, "FROM", "ALICE@EXAMPLE.ORG") == [1, 4]
    assert search(m, "TO", "alice@example.org") == [2, 3]
    assert search(m, "TO", "alice@") == [2, 3, 5]
    assert search(m, "TO", "bob") == [1, 4]
    assert search(m, "CC", "carol") == [1]
    assert search(m, "BCC", "dave") == [1]
    assert search(m, "SUBJECT", "report") == [1]
    assert search(m, "SUBJECT", '"smtp delivered"') == [5]
    assert search(m, "HEADER", "X-Priority", "1") == [1]
    assert search(m, "HEADER", "x-priority", '""') == [1]
    assert search(m, "HEADER", "X-Empty", '""') == [1]
    assert search(m, "HEADER", "Message-ID", '""') == [5]
    assert search(m, "HEADER", "Content-Transfer-Encoding", "base64") == [3]
    assert search(m, "HEADER", "X-Nowhere", '""') == []
    # Header keys do not look into the body, BODY not into the header.
    assert search(m, "FROM", "numbers") == []
    assert search(m, "BODY", "alice") == []


def test_header_fields_kept_in_index(imap):
    """A SEARCH on FROM, TO, CC, BCC or SUBJECT keeps each message's folded
    fields in the index, so the next one reads no file: shown by changing a
    file behind the server's back (a Maildir file never changes, so the
    index may trust what it read). The fields go with the message."""
    tern, _, m = imap
    assert search(m, "SUBJECT", "report") == [1]
    md = tern.maildir(DEMO)
    f, = [p for p in (md / "cur").iterdir() if ",U=2:" in p.name]
    f.write_bytes(f.read_bytes().replace(b"Quarterly report", b"Quarterly budget"))
    assert search(m, "SUBJECT", "report") == [1]
    assert search(m, "HEADER", "Subject", "budget") == []
    assert search(m, "TEXT", "budget") == [1]      # TEXT reads the file
    db = sqlite3.connect(md / "tern-index.sqlite")
    try:
        kept = db.execute("SELECT uid FROM cache ORDER BY uid").fetchall()
        assert kept == [(2,), (3,), (4,), (5,), (6,)]
        assert m.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert m.expunge()[0] == "OK"
        kept = db.execute("SELECT uid FROM cache ORDER BY uid").fetchall()
        assert kept == [(3,), (4,), (5,), (6,)]
    finally:
        db.close()


def test_body_and_text(imap):
    _, _, m = imap
    assert search(m, "BODY", "numbers") == [1]
    assert search(m, "BODY", '"LOOK GOOD"') == [1]
    assert search(m, "TEXT", "quarterly") == [1]
    assert search(m, "TEXT", "numbers") == [1]
    assert search(m, "TEXT", "carol") == [1, 3]
    assert search(m, "BODY", "short.") == [5]
    # A soft line break of quoted-printable joins "venez vite".
    assert search(m, "BODY", '"venez vite"') == [2]
    # Only text parts are searched: not the attachment, not the markup.
    assert search(m, "BODY", "attachedword") == []
    assert search(m, "BODY", "YXR0YWNoZWR3b3Jk") == []
    assert search(m, "BODY", "padding") == [4]


def test_encoded_and_non_ascii(imap):
    _, _, m = imap
    # The subject is an RFC 2047 encoded word; the string comes as a
    # literal, as imaplib sends it.
    assert search(m, "SUBJECT", charset="UTF-8", literal="réunion À") == [2]
    assert search(m, "SUBJECT", charset="UTF-8", literal="RÉUNION") == [2]
    # quoted-printable "caf=C3=A9" is found by "é"
    assert search(m, "BODY", charset="UTF-8", literal="é") == [2]
    assert search(m, "BODY", charset="UTF-8", literal="CAFÉ EST PRÊT") == [2]
    # base64 UTF-8 body
    assert search(m, "BODY", charset="UTF-8", literal="schlüssel") == [3]
    assert search(m, "TEXT", charset="UTF-8", literal="SCHLÜSSEL UNTER") == [3]
    # an ISO-8859-1 part of a multipart, in quoted-printable
    assert search(m, "BODY", charset="UTF-8", literal="voilà") == [4]
    assert search(m, "BODY", charset="US-ASCII", literal="fichier") == [4]
    assert uid_search(m, "CHARSET", "UTF-8", "BODY", literal="é") == [3]


def test_logic(imap):
    _, _, m = imap
    assert search(m, "NOT", "FROM", "alice") == [2, 3, 5]
    assert search(m, "OR", "FROM", "carol", "CC", "carol") == [1, 3]
    assert search(m, "OR", "FROM", "carol", "TO", "carol") == [3]
    assert search(m, "OR", "ON", "5-Jan-2026", "BODY", "vite") == [1, 2]
    assert search(m, "(FROM alice SUBJECT attachment)") == [4]
    assert search(m, "OR", "(FROM alice SUBJECT attachment)", "(3)") == [3, 4]
    assert search(m, "NOT", "(OR 1 (OR 2 3))") == [4, 5]
    assert search(m, "FROM", "alice", "NOT", "BODY", "numbers") == [4]
    assert search(m, "1:4", "NOT", "NOT", "TEXT", "alice") == [1, 2, 3, 4]
    assert search(m, "OR", "OR", "1", "2", "NOT", "SINCE", "1-Jan-2026") == [1, 2]


def test_badcharset(imap):
    _, _, m = imap
    typ, data = m.search("ISO-8859-1", "ALL")
    assert typ == "NO"
    assert data == [b"[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"]
    typ, data = m.uid("SEARCH", "CHARSET", "KOI8-R", "FROM", "x")
    assert typ == "NO" and data[0].startswith(b"[BADCHARSET")
    # The session goes on.
    assert search(m, "ALL") == [1, 2, 3, 4, 5]


def test_malformed(imap):
    _, _, m = imap
    assert "Unknown search key" in bad(m, "FOO")
    assert "Unknown search key" in bad(m, "SEEN", "BOGUS")
    assert "Search key is missing its argument" in bad(m, "FROM")
    assert "Search key is missing its argument" in bad(m, "OR", "SEEN")
    # OR's second key runs past the end only after NOT took its own (found
    # by tests/fuzz: it read past the arguments).
    assert "Search key is missing its argument" in bad(m, "OR", "NOT", "SEEN")
    assert "Search key is missing its argument" in bad(m, "NOT", "OR", "NOT", "SEEN")
    assert "Invalid search key argument" in bad(m, "BEFORE", "2026-01-05")
    assert "Invalid search key argument" in bad(m, "ON", "31-Feb-2026")
    assert "Invalid search key argument" in bad(m, "LARGER", "big")
    assert "Empty search key list" in bad(m, "()")
    assert "Missing search keys" in bad(m, "CHARSET", "UTF-8")
    assert "too deeply nested" in bad(m, "NOT " * 100 + "SEEN")
    assert "Invalid RETURN options" in bad(m, "RETURN", "(FIRST)", "ALL")
    bad(m, "0:3")
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.search(None)
    assert "BAD" in str(e.value)
    # Still usable afterwards.
    assert search(m, "SUBJECT", "report") == [1]


def test_not_selected(tern_factory):
    port, = free_ports(1)
    tern_factory(listen__imap=f"127.0.0.1:{port}")
    m = login(port)
    m.state = "SELECTED"  # imaplib would refuse to send it
    with pytest.raises(imaplib.IMAP4.error, match="No mailbox selected"):
        m.search(None, "ALL")
    m.logout()


def test_expunged_meanwhile(imap):
    """A message another session removed no longer matches, though this
    session's numbers still count it (no EXPUNGE reported yet)."""
    _, port, m = imap
    other = login(port)
    assert other.select("INBOX")[0] == "OK"
    assert other.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert other.expunge()[0] == "OK"
    other.logout()
    assert search(m, "ALL") == [1, 3, 4, 5]
    assert search(m, "NOT", "BODY", "zzz") == [1, 3, 4, 5]
    assert uid_search(m, "ALL") == [2, 4, 5, 6]


def test_esearch(imap):
    _, _, m = imap
    assert "ESEARCH" in m.capabilities or "ESEARCH" in m.capability()[1][0].decode()

    def esearch(*args, uid=False):
        name = "SEARCH"
        if uid:
            typ, data = m._simple_command("UID", name, *args)
        else:
            typ, data = m._simple_command(name, *args)
        assert typ == "OK", data
        typ, data = m._untagged_response(typ, data, "ESEARCH")
        return data[0]

    tag = lambda d: d.split(b")")[0] + b")"  # noqa: E731
    d = esearch("RETURN", "(MIN MAX COUNT ALL)", "NOT", "2")
    assert d == tag(d) + b" MIN 1 MAX 5 ALL 1,3:5 COUNT 4"
    d = esearch("RETURN", "()", "FROM", "alice")
    assert d == tag(d) + b" ALL 1,4"
    d = esearch("RETURN", "(COUNT)", "DELETED")
    assert d == tag(d) + b" COUNT 0"
    d = esearch("RETURN", "(MIN MAX ALL)", "DELETED")
    assert d == tag(d)
    d = esearch("RETURN", "(MIN MAX)", "1:3", uid=True)
    assert d == tag(d) + b" UID MIN 2 MAX 4"
    assert tag(d).startswith(b'(TAG "')
