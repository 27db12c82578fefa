"""Several sessions on one mailbox (RFC 3501 §5.2, §7.4.1), \\Recent
(§2.3.2) and IDLE (RFC 2177): what one session, an SMTP delivery, POP3 or
a local Maildir tool changes reaches the others as untagged EXISTS,
EXPUNGE and FETCH, at their next command or at once while idling."""

import imaplib
import os
import poplib
import re
import smtplib
import time

import pytest

from tern_harness import TIMEOUT, Raw, free_ports, make_message

DEMO = "demo@example.test"
PW = "pw"


@pytest.fixture
def imap(tern_factory):
    port, = free_ports(1)
    return tern_factory(listen__imap=f"127.0.0.1:{port}"), port


def deliver(tern, n, tag="msg"):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for i in range(n):
            s.sendmail("sender@remote.test", [DEMO],
                       make_message(f"{tag} {i}", f"Body {i}.\n"))


def login(port):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    assert m.login(DEMO, PW)[0] == "OK"
    return m


class Idler:
    """A raw IMAP session, selected, for what imaplib cannot do: IDLE and
    reading untagged responses exactly as they come."""

    def __init__(self, port, mailbox="INBOX"):
        self.raw = Raw(port)
        assert self.raw.readline().startswith(b"* OK")
        self.cmd(f'a LOGIN {DEMO} {PW}')
        self.select = self.cmd(f"b SELECT {mailbox}")

    def cmd(self, line):
        """Sends a command; returns the untagged lines before its tagged OK."""
        tag = line.split()[0].encode()
        self.raw.send(line + "\r\n")
        lines = []
        while True:
            r = self.raw.readline()
            assert r, "connection closed"
            if r.startswith(tag + b" "):
                assert r.startswith(tag + b" OK"), r
                return lines
            lines.append(r)

    def idle(self):
        self.raw.send("i IDLE\r\n")
        assert self.raw.readline() == b"+ idling\r\n"

    def expect(self, pattern):
        """Reads untagged lines until one matches; returns all read."""
        seen = []
        while True:
            r = self.raw.readline()
            assert r, f"closed waiting for {pattern!r}; got {seen}"
            seen.append(r)
            if re.match(pattern, r):
                return seen

    def done(self):
        self.raw.send("DONE\r\n")
        return self.expect(rb"i OK IDLE")

    def close(self):
        self.raw.close()


def test_recent_belongs_to_the_first_session(imap):
    tern, port = imap
    deliver(tern, 2)
    ex = Idler.__new__(Idler)
    ex.raw = Raw(port)
    ex.raw.readline()
    ex.cmd(f"a LOGIN {DEMO} {PW}")
    # EXAMINE sees them recent but does not take them (§6.3.2).
    assert b"* 2 RECENT\r\n" in ex.cmd("b EXAMINE INBOX")
    a = Idler(port)
    assert b"* 2 RECENT\r\n" in a.select
    b = Idler(port)
    assert b"* 0 RECENT\r\n" in b.select
    assert a.cmd("c FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))\r\n"]
    assert b.cmd("c FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS ())\r\n"]
    # New mail is recent to the session that notices it first.
    deliver(tern, 1, "late")
    got = a.cmd("d NOOP")
    assert got == [b"* 3 EXISTS\r\n", b"* 3 RECENT\r\n"]
    assert b.cmd("d NOOP") == [b"* 3 EXISTS\r\n"]
    for s in (a, b, ex):
        s.close()


def test_idle_sees_delivery_store_and_expunge(imap):
    tern, port = imap
    deliver(tern, 3)
    a = Idler(port)
    other = login(port)
    other.select("INBOX")
    a.idle()
    deliver(tern, 1, "while idling")
    lines = a.expect(rb"\* 4 EXISTS")
    assert lines[-1] == b"* 4 EXISTS\r\n"
    assert other.store("2", "+FLAGS", "(\\Flagged)")[0] == "OK"
    lines = a.expect(rb"\* 2 FETCH")
    # A took the new message as \Recent (it noticed it first), and had 1-3.
    assert lines[-1] == b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))\r\n", lines
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    lines = a.expect(rb"\* 1 EXPUNGE")
    assert lines[-1] == b"* 1 EXPUNGE\r\n"
    a.done()
    # The view after IDLE is the mailbox as it is: UIDs 2, 3, 4.
    fetched = a.cmd("f FETCH 1:* UID")
    assert [re.search(rb"UID (\d+)", f).group(1) for f in fetched] == [b"2", b"3", b"4"]
    other.logout()
    a.close()


def test_idle_map_with_gaps_survives_wakeups(imap):
    """While idling the session keeps its sequence-number map packed as
    runs of UIDs: gaps, several wake-ups and a second IDLE must still give
    exact sequence numbers."""
    tern, port = imap
    deliver(tern, 10)
    other = login(port)
    other.select("INBOX")

    def expunge_uid(uid):
        assert other.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert other.expunge()[0] == "OK"

    expunge_uid("3,7")
    # UIDs 1 2 4 5 6 8 9 10: three runs, smaller than the map.
    a = Idler(port)
    assert b"* 8 EXISTS\r\n" in a.select
    a.idle()
    expunge_uid(4)  # message 3
    assert a.expect(rb"\* \d+ EXPUNGE")[-1] == b"* 3 EXPUNGE\r\n"
    deliver(tern, 1, "while idling")  # UID 11
    assert a.expect(rb"\* \d+ EXISTS")[-1] == b"* 8 EXISTS\r\n"
    expunge_uid(1)  # message 1
    assert a.expect(rb"\* \d+ EXPUNGE")[-1] == b"* 1 EXPUNGE\r\n"
    a.done()
    fetched = a.cmd("f FETCH 1:* UID")
    assert [re.search(rb"UID (\d+)", f).group(1) for f in fetched] == \
        [b"2", b"5", b"6", b"8", b"9", b"10", b"11"]
    a.idle()
    expunge_uid(8)  # message 4
    assert a.expect(rb"\* \d+ EXPUNGE")[-1] == b"* 4 EXPUNGE\r\n"
    a.done()
    fetched = a.cmd("g UID FETCH 1:* FLAGS")
    assert [re.match(rb"\* (\d+) FETCH \(UID (\d+)", f).groups() for f in fetched] == \
        [(b"1", b"2"), (b"2", b"5"), (b"3", b"6"), (b"4", b"9"), (b"5", b"10"),
         (b"6", b"11")]
    other.logout()
    a.close()


def test_idle_sees_a_file_dropped_by_a_local_tool(imap):
    tern, port = imap
    deliver(tern, 1)
    a = Idler(port)
    a.idle()
    new = os.path.join(tern.maildir(DEMO), "new")
    tmp = os.path.join(tern.maildir(DEMO), "tmp", "1700000000.M1P1.tool")
    with open(tmp, "wb") as f:
        f.write(b"Subject: dropped\n\nby hand\n")
    os.rename(tmp, os.path.join(new, "1700000000.M1P1.tool"))
    assert a.expect(rb"\* 2 EXISTS")[-1] == b"* 2 EXISTS\r\n"
    a.done()
    assert b"by hand" in b"".join(a.cmd("g FETCH 2 BODY[TEXT]"))
    a.close()


def test_expunge_waits_outside_fetch_store_and_search(imap):
    """§7.4.1: no EXPUNGE while answering FETCH/STORE by sequence number;
    UID FETCH and NOOP may carry it."""
    tern, port = imap
    deliver(tern, 3)
    a = Idler(port)
    other = login(port)
    other.select("INBOX")
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    # The expunged message is still number 1 here: NO [EXPUNGEISSUED]
    # (RFC 5530), the others are fetched, and no EXPUNGE yet.
    a.raw.send("c FETCH 1:* UID\r\n")
    got = a.expect(rb"c ")
    assert got == [b"* 2 FETCH (UID 2)\r\n", b"* 3 FETCH (UID 3)\r\n",
                   b"c NO [EXPUNGEISSUED] Some messages were expunged\r\n"]
    assert not any(b"EXPUNGE" in g for g in a.cmd("d STORE 3 +FLAGS (\\Seen)"))
    assert a.cmd("e NOOP") == [b"* 1 EXPUNGE\r\n"]
    other.logout()
    b = Idler(port)
    other = login(port)
    other.select("INBOX")
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    got = b.cmd("c UID FETCH 1:* FLAGS")
    assert got[0] == b"* 1 EXPUNGE\r\n"
    other.logout()
    a.close()
    b.close()


def test_pop3_deletion_reaches_imap(imap):
    tern, port = imap
    deliver(tern, 2)
    a = Idler(port)
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    p.user(DEMO)
    p.pass_(PW)
    p.dele(1)
    p.quit()
    assert a.cmd("n NOOP") == [b"* 1 EXPUNGE\r\n"]
    a.close()


def test_idle_needs_done(imap):
    tern, port = imap
    a = Idler(port)
    a.idle()
    a.raw.send("NOPE\r\n")
    assert a.raw.readline().startswith(b"i BAD")
    # The session goes on.
    assert a.cmd("j NOOP") == []
    # IDLE in the authenticated state waits for DONE just the same.
    a.cmd("k UNSELECT")
    a.idle()
    a.done()
    a.close()


def test_check_reports_new_mail_to_imaplib(imap):
    """CHECK (RFC 3501 §6.4.1) through imaplib: new mail delivered meanwhile
    arrives as EXISTS with it."""
    tern, port = imap
    deliver(tern, 1)
    m = login(port)
    assert m.select("INBOX") == ("OK", [b"1"])
    deliver(tern, 2, "more")
    typ, data = m.check()
    assert typ == "OK" and data == [b"CHECK completed"]
    # (imaplib keeps the EXISTS of SELECT too: the last one is the news)
    assert m.untagged_responses.get("EXISTS")[-1] == b"3"
    m.logout()


def index_open_in(tern):
    """True if ternd holds the user's index database open."""
    fd_dir = f"/proc/{tern.proc.pid}/fd"
    index = os.path.realpath(os.path.join(tern.maildir(DEMO), "tern-index.sqlite"))
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)) == index:
                return True
        except OSError:
            pass
    return False


def index_closes(tern):
    """Waits for the index to be closed: a wake-up's sync may hold it a
    moment (the file it moves to cur/ wakes the watch once more)."""
    deadline = time.monotonic() + TIMEOUT
    while index_open_in(tern):
        assert time.monotonic() < deadline, "index still open"
        time.sleep(0.05)
    return True


def test_index_closed_while_every_session_idles(imap):
    """While all of a user's sessions wait in IDLE the index connection is
    closed; a wake-up and the next command open it again as needed."""
    tern, port = imap
    new = os.path.join(tern.maildir(DEMO), "new")
    os.makedirs(new, exist_ok=True)
    with open(os.path.join(new, "1700000000.M1P1.tool"), "wb") as f:
        f.write(b"Subject: one\n\nfirst\n")
    a, b, c = Idler(port), Idler(port), Idler(port)
    assert index_open_in(tern)
    a.idle()
    b.idle()
    c.cmd("n NOOP")
    assert index_open_in(tern)  # c is not idling: the handle stays
    c.close()
    assert index_closes(tern)  # the sessions left all idle
    with open(os.path.join(new, "1700000001.M1P1.tool"), "wb") as f:
        f.write(b"Subject: two\n\nsecond\n")
    assert a.expect(rb"\* 2 EXISTS")[-1] == b"* 2 EXISTS\r\n"
    assert b.expect(rb"\* 2 EXISTS")[-1] == b"* 2 EXISTS\r\n"
    assert index_closes(tern)  # closed again after the wake-up
    a.done()
    assert b"second" in b"".join(a.cmd("g FETCH 2 BODY[TEXT]"))
    assert index_open_in(tern)
    a.close()
    b.close()
