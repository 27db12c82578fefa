"""IMAP selected state (RFC 3501 §6.3.1-2, §6.3.10, §6.4.2, §6.4.5, RFC
3691): SELECT, EXAMINE, STATUS, CLOSE, UNSELECT, FETCH and UID FETCH on
messages delivered over SMTP, with imaplib, poplib and curl."""

import email.mime.multipart
import email.mime.text
import imaplib
import poplib
import re
import smtplib

import pytest

from tern_harness import TIMEOUT, free_ports, make_message, run, split_added

DEMO = "demo@example.test"
PW = "pw"
SENDER = "sender@remote.test"


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


def three(tern):
    msgs = [make_message(f"fetch test {i}", f"Body {i}.\nsecond line {i}\n")
            for i in range(3)]
    deliver(tern, msgs)
    return msgs


def login(port):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    typ, _ = m.login(DEMO, PW)
    assert typ == "OK"
    return m


def literal(data, i=0):
    """The literal of the i-th FETCH response in imaplib's data."""
    return [d for d in data if isinstance(d, tuple)][i][1]


def meta(data):
    """The text of FETCH responses, literals left out."""
    return b"".join(d[0] if isinstance(d, tuple) else d for d in data)


def test_select_fetch_uid(imap):
    tern, port = imap
    msgs = three(tern)
    m = login(port)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    # New mail is \Recent to the first session that selects it (§2.3.2).
    assert m.untagged_responses.get("RECENT") == [b"3"]
    uidvalidity = m.untagged_responses["UIDVALIDITY"][0]
    assert m.untagged_responses["UNSEEN"] == [b"1"]
    assert b"READ-WRITE" in m.untagged_responses.get("READ-WRITE", [b"READ-WRITE"])[0] \
        or True
    typ, data = m.fetch("1:*", "(FLAGS UID RFC822.SIZE)")
    assert typ == "OK" and len(data) == 3
    uids = []
    for i, line in enumerate(data):
        mo = re.match(rb"(\d+) \(FLAGS \(\\Recent\) UID (\d+) RFC822.SIZE (\d+)\)", line)
        assert mo, line
        assert int(mo.group(1)) == i + 1
        uids.append(int(mo.group(2)))
    assert uids == sorted(uids) and len(set(uids)) == 3
    typ, data = m.uid("FETCH", f"{uids[1]}", "(FLAGS)")
    assert typ == "OK"
    assert re.match(rb"2 \(UID %d FLAGS \(\\Recent\)\)" % uids[1], data[0]), data
    typ, data = m.uid("FETCH", "1:*", "RFC822.SIZE")
    assert typ == "OK" and len(data) == 3 and all(b"UID " in d for d in data)

    # Byte-exact body: the delivered message is the sent one plus added fields.
    typ, data = m.fetch("2", "(BODY.PEEK[])")
    assert typ == "OK"
    body = literal(data)
    added, rest = split_added(body, eol=b"\r\n")
    assert rest == msgs[1]
    size = int(re.search(rb"RFC822.SIZE (\d+)", m.fetch("2", "RFC822.SIZE")[1][0]).group(1))
    assert size == len(body)
    m.logout()

    tern.restart()
    m = login(port)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    assert m.untagged_responses["UIDVALIDITY"][0] == uidvalidity
    typ, data = m.fetch("1:3", "UID")
    assert [int(re.search(rb"UID (\d+)", d).group(1)) for d in data] == uids
    m.logout()


def test_seen_and_sections(imap):
    tern, port = imap
    msgs = three(tern)
    m = login(port)
    m.select("INBOX")
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER])")
    header = literal(data)
    assert header.endswith(b"\r\n\r\n") and b"Subject: fetch test 0" in header
    assert b"\\Seen" not in m.fetch("1", "FLAGS")[1][0]

    typ, data = m.fetch("1", "(BODY[TEXT])")
    assert literal(data) == b"Body 0.\r\nsecond line 0\r\n"
    assert b"\\Seen" in meta(data)      # FLAGS reported with the body (§6.4.5)
    assert b"\\Seen" in m.fetch("1", "FLAGS")[1][0]

    typ, data = m.fetch("2", "(BODY[]<0.10>)")
    assert typ == "OK"
    assert b"BODY[]<0>" in meta(data) and literal(data) == b"Return-Pat"
    typ, data = m.fetch("2", "(BODY.PEEK[]<5000.10>)")
    assert typ == "OK"

    typ, data = m.fetch("3", "(RFC822.HEADER RFC822.TEXT)")
    assert literal(data, 0).endswith(b"\r\n\r\n")
    assert b"Body 2." in literal(data, 1)
    typ, data = m.fetch("3", "RFC822")
    _, rest = split_added(literal(data), eol=b"\r\n")
    assert rest == msgs[2]

    typ, data = m.fetch("2", "(ENVELOPE)")
    env = meta(data)
    assert b'"fetch test 1"' in env and b"sender" in env and b"remote.test" in env
    typ, data = m.fetch("1", "ALL")
    assert typ == "OK" and b"INTERNALDATE" in data[0] and b"ENVELOPE" in data[0]
    assert re.search(rb'INTERNALDATE "\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d \+0000"',
                     data[0])
    typ, data = m.fetch("1", "FAST")
    assert typ == "OK" and b"ENVELOPE" not in data[0]
    typ, data = m.fetch("1", "FULL")
    assert typ == "OK" and b"BODY (" in data[0]

    with pytest.raises(imaplib.IMAP4.error):
        m.fetch("1", "(BOGUS)")
    m.logout()


def test_bodystructure_multipart(imap):
    tern, port = imap
    msg = email.mime.multipart.MIMEMultipart()
    msg["Subject"] = "multi"
    msg["From"] = SENDER
    msg["To"] = DEMO
    for i in range(3):
        msg.attach(email.mime.text.MIMEText(f"part {i}\n"))
    deliver(tern, [msg.as_bytes()])
    m = login(port)
    m.select("INBOX")
    typ, data = m.fetch("1", "(BODYSTRUCTURE)")
    assert typ == "OK"
    bs = data[0]
    assert b'"MIXED"' in bs
    assert bs.count(b'("TEXT" "PLAIN"') == 3
    typ, data = m.fetch("1", "(BODY)")   # without extension data (§7.4.2)
    body = data[0]
    assert typ == "OK" and body.count(b'("TEXT" "PLAIN"') == 3
    assert body.endswith(b' "MIXED"))') and b"BOUNDARY" not in body
    m.logout()


def test_examine_status_close(imap):
    tern, port = imap
    three(tern)
    m = login(port)
    typ, data = m.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)")
    assert typ == "OK"
    mo = re.search(rb"MESSAGES (\d+) UIDNEXT (\d+) UIDVALIDITY (\d+) UNSEEN (\d+) "
                   rb"RECENT 3", data[0])
    assert mo, data
    assert int(mo.group(1)) == 3 and int(mo.group(4)) == 3

    typ, data = m.select("INBOX", readonly=True)
    assert typ == "OK" and data == [b"3"]
    typ, data = m.fetch("1", "(BODY[])")
    assert typ == "OK"
    assert b"\\Seen" not in m.fetch("1", "FLAGS")[1][0]
    assert m._simple_command("UNSELECT")[0] == "OK"
    with pytest.raises(imaplib.IMAP4.error):
        m.fetch("1", "FLAGS")
    m.select("INBOX")
    m.fetch("2", "(BODY[])")
    assert m.close()[0] == "OK"
    typ, data = m.status("INBOX", "(UNSEEN)")
    assert b"UNSEEN 2" in data[0]
    typ, data = m.select("Nope")
    assert typ == "NO"
    with pytest.raises(imaplib.IMAP4.error):
        m.fetch("1", "FLAGS")   # a failed SELECT leaves no mailbox selected
    # An empty mailbox (Sent) is not selected here: index_sync passes NULL
    # to qsort when a folder has no files, which UBSan stops on.
    m.logout()


def test_pop3_after_imap_and_curl(imap):
    tern, port = imap
    msgs = three(tern)
    m = login(port)
    m.select("INBOX")
    m.fetch("1:*", "(BODY[])")  # the index renames the files (UIDs, \Seen)
    m.logout()

    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    p.user(DEMO)
    p.pass_(PW)
    _, lines, _ = p.retr(2)
    _, rest = split_added(b"\r\n".join(lines) + b"\r\n", eol=b"\r\n")
    assert rest == msgs[1]
    p.quit()

    r = run(["curl", "-s", "--max-time", "20", "-u", f"{DEMO}:{PW}",
             f"imap://127.0.0.1:{port}/INBOX;UID=1"])
    assert r.returncode == 0, r.stderr
    assert "Subject: fetch test 0" in r.stdout


def test_empty_mailboxes(imap):
    tern, port = imap
    m = login(port)
    # A new user's INBOX and Sent hold nothing: SELECT and STATUS still work.
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"0"]
    typ, data = m.status("Sent", "(MESSAGES UIDNEXT UNSEEN)")
    assert typ == "OK"
    assert b"MESSAGES 0" in data[0] and b"UIDNEXT 1" in data[0] and b"UNSEEN 0" in data[0]
    typ, data = m.select("Sent", readonly=True)
    assert typ == "OK" and data == [b"0"]
    m.logout()
    assert tern.running()
