"""Message submission (RFC 6409, RFC 8314) and SMTP AUTH (RFC 4954, 4616,
5802/7677) with swaks, curl, smtplib and raw sockets."""

import base64
import hashlib
import hmac
import os
import re
import smtplib
import socket
import ssl
import subprocess

import pytest

from tern_harness import (HOSTNAME, TIMEOUT, Raw, client_tls_context,
                          plain_b64, split_added)

ALICE = "alice@example.test"
BOB = "bob@example.test"
FOREIGN = "someone@remote.test"


@pytest.fixture
def sub(tern_factory):
    """A ternd with TLS and the submission ports."""
    return tern_factory(tls=True, submission=True)


def swaks(*args):
    r = subprocess.run(["swaks", "--timeout", "10", "--helo", "swaks.test", *args],
                       capture_output=True, text=True, timeout=60)
    return r


class TlsRaw(Raw):
    """Raw over implicit TLS (port 465)."""

    def __init__(self, tern, port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock = client_tls_context(tern).wrap_socket(sock, server_hostname=HOSTNAME)
        self.buf = b""


def starttls(r, tern):
    code, _ = r.cmd("STARTTLS")
    assert code == 220
    assert r.buf == b""
    r.sock = client_tls_context(tern).wrap_socket(r.sock, server_hostname=HOSTNAME)


def open_sub(tern, tls=True, ehlo=True):
    """Raw on the submission port, past greeting, STARTTLS and EHLO."""
    r = Raw(tern.submission_port)
    code, _ = r.smtp_reply()
    assert code == 220
    if tls:
        assert r.cmd("EHLO c.test")[0] == 250
        starttls(r, tern)
    if ehlo:
        code, lines = r.cmd("EHLO c.test")
        assert code == 250
        r.ehlo = lines
    return r


def login(r, user=ALICE, pw="alice-pw"):
    code, _ = r.cmd(f"AUTH PLAIN {plain_b64(user, pw)}")
    assert code == 235


def one_message(tern, addr):
    msgs = tern.messages(addr)
    assert len(msgs) == 1, f"{addr}: {len(msgs)} messages"
    return msgs[0]


# --- real clients -------------------------------------------------------------

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth(sub, mech):
    r = swaks("--server", f"127.0.0.1:{sub.submission_port}", "--tls",
              "--auth", mech, "--auth-user", ALICE, "--auth-password", "alice-pw",
              "--from", ALICE, "--to", f"{BOB},{FOREIGN}",
              "--header", f"Subject: via {mech}", "--body", "submitted")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout
    data = one_message(sub, BOB)
    added, rest = split_added(data)
    # RFC 3848: ESMTPSA = ESMTP + TLS + AUTH.
    assert " with ESMTPSA id " in added["received"]
    assert f"Subject: via {mech}".encode() in rest
    queued = sub.queue_files()
    assert len(queued) == 1
    q = queued[0].read_bytes()
    assert b"sender <alice@example.test>" in q
    assert b"rcpt <someone@remote.test>" in q
    assert re.search(rb"auth ok user=<alice@example.test> mech=" + mech.encode(),
                     sub.log().encode())


def test_swaks_implicit_tls(sub):
    r = swaks("--server", f"127.0.0.1:{sub.submissions_port}", "--tlsc",
              "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", "alice-pw",
              "--from", ALICE, "--to", BOB, "--body", "over 465")
    assert r.returncode == 0, r.stdout + r.stderr
    added, rest = split_added(one_message(sub, BOB))
    assert " with ESMTPSA " in added["received"]
    assert b"over 465" in rest


def test_curl_ssl_reqd(sub, tmp_path):
    msg = tmp_path / "msg.txt"
    msg.write_bytes(b"From: <alice@example.test>\r\nTo: <bob@example.test>\r\n"
                    b"Subject: by curl\r\n\r\nHello from curl.\r\n")
    r = subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "--cacert", str(sub.cert),
         f"smtp://127.0.0.1:{sub.submission_port}",
         "--mail-from", ALICE, "--mail-rcpt", BOB,
         "--user", f"{ALICE}:alice-pw", "-T", str(msg), "--max-time", "20"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    _, rest = split_added(one_message(sub, BOB))
    assert b"Subject: by curl\n" in rest
    assert b"Hello from curl." in rest


def test_smtplib_login_submission(sub):
    with smtplib.SMTP("127.0.0.1", sub.submission_port, timeout=TIMEOUT) as s:
        s.starttls(context=client_tls_context(sub))
        s.login(ALICE, "alice-pw")
        s.sendmail(ALICE, [BOB], b"Subject: smtplib\r\n\r\nbody\r\n")
    assert b"Subject: smtplib" in one_message(sub, BOB)


# --- rules of submission ------------------------------------------------------

def test_mail_before_auth_refused(sub):
    with open_sub(sub) as r:
        code, lines = r.cmd(f"MAIL FROM:<{ALICE}>")
        assert code == 530 and lines[0].startswith("5.7.0")


def test_mail_before_auth_refused_implicit(sub):
    with TlsRaw(sub, sub.submissions_port) as r:
        assert r.smtp_reply()[0] == 220
        assert r.cmd("EHLO c.test")[0] == 250
        code, _ = r.cmd(f"MAIL FROM:<{ALICE}>")
        assert code == 530


def test_port25_needs_no_auth(sub):
    with smtplib.SMTP("127.0.0.1", sub.smtp_port, timeout=TIMEOUT) as s:
        assert s.sendmail("x@remote.test", [BOB], b"Subject: mx\r\n\r\nhi\r\n") == {}
    added, _ = split_added(one_message(sub, BOB))
    assert " with ESMTP id " in added["received"]


def test_auth_relays_on_port25(sub):
    """Port 25 relays for an authenticated user (and only then)."""
    r = Raw(sub.smtp_port)
    with r:
        assert r.smtp_reply()[0] == 220
        assert r.cmd("EHLO c.test")[0] == 250
        assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
        assert r.cmd(f"RCPT TO:<{FOREIGN}>")[0] == 554
        assert r.cmd("RSET")[0] == 250
        login(r)
        assert r.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
        assert r.cmd(f"RCPT TO:<{FOREIGN}>")[0] == 250


def test_sender_must_be_owned(sub):
    with open_sub(sub) as r:
        login(r)
        code, lines = r.cmd(f"MAIL FROM:<{BOB}>")
        assert code == 553 and lines[0].startswith("5.7.1")
        code, _ = r.cmd("MAIL FROM:<>")
        assert code == 553
        code, _ = r.cmd("MAIL FROM:<alice@elsewhere.test>")
        assert code == 553
        # Case does not matter; an alias that reaches alice is hers.
        assert r.cmd("MAIL FROM:<Alice@Example.TEST>")[0] == 250
        assert r.cmd("RSET")[0] == 250
        assert r.cmd("MAIL FROM:<postmaster@example.test>")[0] == 250
        assert r.cmd("RSET")[0] == 250
        # team expands to alice and bob: alice may use it.
        assert r.cmd("MAIL FROM:<team@example.test>")[0] == 250


def test_auth_sequence_errors(sub):
    with open_sub(sub, ehlo=False) as r:
        code, _ = r.cmd(f"AUTH PLAIN {plain_b64(ALICE, 'alice-pw')}")
        assert code == 503     # EHLO first
        assert r.cmd("EHLO c.test")[0] == 250
        assert r.cmd("AUTH CRAM-MD5")[0] == 504
        code, lines = r.cmd("AUTH PLAIN")
        assert code == 334 and lines == [""]
        code, lines = r.cmd("*")
        assert code == 501 and lines[0].startswith("5.0.0")
        code, _ = r.cmd("AUTH LOGIN")
        assert code == 334
        assert r.cmd("not base64!")[0] == 501
        login(r)
        assert r.cmd(f"AUTH PLAIN {plain_b64(ALICE, 'alice-pw')}")[0] == 503
    # AUTH inside a transaction is refused (RFC 4954 §4).
    r = Raw(sub.smtp_port)
    with r:
        assert r.smtp_reply()[0] == 220
        assert r.cmd("EHLO c.test")[0] == 250
        assert r.cmd("MAIL FROM:<x@remote.test>")[0] == 250
        assert r.cmd(f"AUTH PLAIN {plain_b64(ALICE, 'alice-pw')}")[0] == 503


def test_auth_login_exchange(sub):
    with open_sub(sub) as r:
        code, lines = r.cmd("AUTH LOGIN")
        assert code == 334 and base64.b64decode(lines[0]) == b"Username:"
        code, lines = r.cmd(base64.b64encode(ALICE.encode()).decode())
        assert code == 334 and base64.b64decode(lines[0]) == b"Password:"
        code, lines = r.cmd(base64.b64encode(b"alice-pw").decode())
        assert code == 235 and lines[0].startswith("2.7.0")


def test_auth_answer_with_nul(sub):
    """RFC 4954 §4: an answer that is not base64 ends the exchange with
    501, even when what precedes its NUL is the right password."""
    with open_sub(sub) as r:
        assert r.cmd("AUTH LOGIN")[0] == 334
        assert r.cmd(base64.b64encode(ALICE.encode()).decode())[0] == 334
        code, lines = r.cmd(base64.b64encode(b"alice-pw") + b"\x00junk")
        assert (code, lines) == (501, ["5.5.2 Invalid authentication exchange"])
        assert r.cmd("AUTH LOGIN")[0] == 334   # not logged in
        assert r.cmd("*")[0] == 501


def test_auth_line_too_long(sub):
    with open_sub(sub) as r:
        assert r.cmd("AUTH PLAIN")[0] == 334
        code, _ = r.cmd("A" * 5000)
        assert code == 500
        assert r.cmd("NOOP")[0] == 250


def test_auth_needs_tls(tern_factory):
    srv = tern_factory(tls=True, submission=True, plaintext_auth_networks="")
    with open_sub(srv, tls=False) as r:
        assert not any(l.startswith("AUTH") for l in r.ehlo)
        assert "STARTTLS" in r.ehlo
        code, lines = r.cmd(f"AUTH PLAIN {plain_b64(ALICE, 'alice-pw')}")
        assert code == 538 and lines[0].startswith("5.7.11")
        starttls(r, srv)
        code, lines = r.cmd("EHLO c.test")
        assert "AUTH PLAIN LOGIN SCRAM-SHA-256" in lines
        login(r)


def test_wrong_password_then_blocked(tern_factory):
    srv = tern_factory(tls=True, submission=True, auth_fail_delay_ms="50",
                       auth_block_after="3", auth_max_failures="10")
    with open_sub(srv) as r:
        for _ in range(3):
            code, lines = r.cmd(f"AUTH PLAIN {plain_b64(ALICE, 'Guess-7f3q')}")
            assert code == 535 and lines[0].startswith("5.7.8")
        # Blocked now: even the right password gets a temporary failure.
        code, lines = r.cmd(f"AUTH PLAIN {plain_b64(ALICE, 'alice-pw')}")
        assert code == 454 and lines[0].startswith("4.7.0")
    with open_sub(srv) as r:
        assert r.cmd(f"AUTH PLAIN {plain_b64(ALICE, 'alice-pw')}")[0] == 454
    log = srv.log()
    assert "auth failed: proto=submission rip=127.0.0.1 user=<alice@example.test>" in log
    assert "auth blocked" in log
    assert "Guess-7f3q" not in log and "alice-pw" not in log


def test_too_many_failures_close(tern_factory):
    srv = tern_factory(tls=True, submission=True, auth_fail_delay_ms="20",
                       auth_block_after="100", auth_max_failures="2")
    with open_sub(srv) as r:
        assert r.cmd(f"AUTH PLAIN {plain_b64(ALICE, 'x')}")[0] == 535
        assert r.cmd(f"AUTH PLAIN {plain_b64(ALICE, 'y')}")[0] == 421
        assert r.eof()


# --- RFC 6409 §8: Message-ID and Date ----------------------------------------

def submit(r, data):
    assert r.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
    assert r.cmd(f"RCPT TO:<{BOB}>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    code, _ = r.cmd(data + b".")
    assert code == 250


def header_of(data):
    _, rest = split_added(data)
    return rest.split(b"\n\n", 1)[0]


def test_message_id_and_date_added(sub):
    with open_sub(sub) as r:
        login(r)
        submit(r, b"Subject: bare\r\nX-Note: date: none\r\n\r\nMessage-ID: body\r\n")
    head = header_of(one_message(sub, BOB))
    ids = re.findall(rb"(?im)^message-id: (.*)$", head)
    dates = re.findall(rb"(?im)^date: (.*)$", head)
    assert len(ids) == 1 and re.fullmatch(rb"<[^@<>]+@mail\.example\.test>", ids[0])
    assert len(dates) == 1
    assert re.fullmatch(rb"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}",
                        dates[0])
    assert b"Subject: bare" in head


def test_message_id_and_date_kept(sub):
    with open_sub(sub) as r:
        login(r)
        submit(r, b"DATE: Mon, 01 Jan 2024 10:00:00 +0000\r\nmessage-id: <mine@x>\r\n"
                  b"Subject: kept\r\n\r\nbody\r\n")
        # No header section at all, not even a body.
        submit(r, b"Subject: only header\r\n")
    msgs = sub.messages(BOB)
    assert len(msgs) == 2
    head = header_of(msgs[0])
    assert len(re.findall(rb"(?im)^message-id:", head)) == 1
    assert len(re.findall(rb"(?im)^date:", head)) == 1
    assert b"message-id: <mine@x>" in head
    head = header_of(msgs[1])
    assert len(re.findall(rb"(?im)^message-id:", head)) == 1
    assert b"Subject: only header" in head


def test_port25_adds_nothing(sub):
    with smtplib.SMTP("127.0.0.1", sub.smtp_port, timeout=TIMEOUT) as s:
        s.sendmail("x@remote.test", [BOB], b"Subject: raw\r\n\r\nhi\r\n")
    head = header_of(one_message(sub, BOB))
    assert not re.search(rb"(?im)^(message-id|date):", head)


# --- SCRAM-SHA-256 (RFC 5802, RFC 7677), a client written from the RFC --------

def b64(b):
    return base64.b64encode(b).decode()


def scram_exchange(r, user, pw):
    """Runs AUTH SCRAM-SHA-256; returns the final reply code. Verifies the
    server's signature (the server proves it knows the password too)."""
    cnonce = b64(os.urandom(18))
    gs2 = "n,,"
    first_bare = f"n={user},r={cnonce}"
    code, lines = r.cmd(f"AUTH SCRAM-SHA-256 {b64((gs2 + first_bare).encode())}")
    assert code == 334, lines
    server_first = base64.b64decode(lines[0]).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    assert attrs["r"].startswith(cnonce) and len(attrs["r"]) > len(cnonce)
    salt = base64.b64decode(attrs["s"])
    iters = int(attrs["i"])
    assert iters >= 4096
    salted = hashlib.pbkdf2_hmac("sha256", pw.encode(), salt, iters)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = f"c={b64(gs2.encode())},r={attrs['r']}"
    auth_msg = f"{first_bare},{server_first},{without_proof}".encode()
    client_sig = hmac.new(stored_key, auth_msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, client_sig))
    code, lines = r.cmd(b64(f"{without_proof},p={b64(proof)}".encode()))
    if code != 334:
        return code
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    server_sig = hmac.new(server_key, auth_msg, hashlib.sha256).digest()
    assert base64.b64decode(lines[0]).decode() == f"v={b64(server_sig)}"
    code, _ = r.cmd("")
    return code


def test_scram_sha256(sub):
    with open_sub(sub) as r:
        assert "AUTH PLAIN LOGIN SCRAM-SHA-256" in r.ehlo
        assert scram_exchange(r, ALICE, "alice-pw") == 235
        submit(r, b"Subject: scram\r\n\r\nx\r\n")
    assert b"Subject: scram" in one_message(sub, BOB)
    assert "mech=SCRAM-SHA-256" in sub.log()


def test_scram_wrong_password(sub):
    with open_sub(sub) as r:
        assert scram_exchange(r, ALICE, "nope") == 535


# --- access lists and implicit TLS ---------------------------------------------

def test_access_denied_before_greeting(tern_factory):
    srv = tern_factory(tls=True, submission=True,
                       access__submission__deny="127.0.0.0/8")
    with Raw(srv.submission_port) as r:
        line = r.readline()
        assert line.startswith(b"554 5.7.1"), line
        assert r.eof()
    # Other listeners are not affected.
    with Raw(srv.smtp_port) as r:
        assert r.smtp_reply()[0] == 220
    assert "access denied" in srv.log()


def test_access_denied_implicit_tls(tern_factory):
    srv = tern_factory(tls=True, submission=True,
                       access__submissions__deny="127.0.0.0/8")
    with TlsRaw(srv, srv.submissions_port) as r:
        line = r.readline()
        assert line.startswith(b"554 5.7.1"), line


def test_implicit_tls_greeting(sub):
    with TlsRaw(sub, sub.submissions_port) as r:
        code, lines = r.smtp_reply()
        assert code == 220 and lines[0].startswith(HOSTNAME)
        assert r.sock.version() in ("TLSv1.2", "TLSv1.3")
        code, lines = r.cmd("EHLO c.test")
        assert "STARTTLS" not in lines
        assert "AUTH PLAIN LOGIN SCRAM-SHA-256" in lines
