"""`tern reindex`: a lost IMAP index is rebuilt with the same UIDs."""

import imaplib
import smtplib

from tern_harness import TIMEOUT, free_ports, make_message

DEMO, PW = "demo@example.test", "pw"


def uids_and_validity(port):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    assert m.login(DEMO, PW)[0] == "OK"
    assert m.select("INBOX")[0] == "OK"
    validity = m.response("UIDVALIDITY")[1][0]
    typ, data = m.fetch("1:*", "(UID)")
    assert typ == "OK"
    m.logout()
    return validity, [d for d in data if d]


def test_reindex_keeps_uids(tern_factory):
    port, = free_ports(1)
    tern = tern_factory(listen__imap=f"127.0.0.1:{port}")
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for i in range(3):
            s.sendmail("sender@remote.test", [DEMO], make_message(f"reindex {i}", "x\n"))
    before = uids_and_validity(port)
    assert len(before[1]) == 3
    tern.stop()

    user_dir = tern.maildir(DEMO)
    removed = [p for p in user_dir.glob("tern-index.sqlite*")]
    assert removed, list(user_dir.iterdir())
    for p in removed:
        p.unlink()
    r = tern.tern("reindex", "demo")
    assert r.returncode == 0, r.stderr
    assert "INBOX: 3 messages" in r.stdout
    assert "Sent: 0 messages" in r.stdout

    tern.start()
    assert uids_and_validity(port) == before


def test_reindex_unknown_user(tern):
    r = tern.tern("reindex", "nobody-here@example.test")
    assert r.returncode == 1
    assert "no such user" in r.stderr
