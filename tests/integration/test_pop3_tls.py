"""POP3 over TLS and safe logins: STLS (RFC 2595), POP3S (RFC 8314), AUTH
(RFC 5034) with PLAIN, LOGIN and SCRAM-SHA-256, plaintext-password policy,
the brute-force guard and access lists; with poplib, curl, openssl s_client
and raw sockets."""

import base64
import poplib
import re
import smtplib
import subprocess

import pytest

from tern_harness import TIMEOUT, Raw, make_message, plain_b64, run
from tls_helpers import RawTLS, ScramClient, client_context, make_cert, tls_settings

DEMO = "demo@example.test"
PW = "pw"
NEED_TLS = b"-ERR Plaintext authentication disallowed without TLS (use STLS)"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("cert"))


@pytest.fixture
def ctx(cert):
    return client_context(cert[0])


@pytest.fixture
def tls_factory(tern_factory, cert):
    """tls_factory(**settings) -> (tern, pop3s port), TLS on."""
    def make(**extra):
        settings, ports = tls_settings(cert[0], cert[1], "pop3s")
        settings.update(extra)
        return tern_factory(**settings), ports["pop3s"]
    return make


@pytest.fixture
def tls_tern(tls_factory):
    return tls_factory()[0]


def pop3s_port(tern):
    return int(tern.settings["listen.pop3s"].rsplit(":", 1)[1])


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def deliver(tern, n, rcpt=DEMO):
    """Sends n messages (one with a leading dot) and returns them, wire form."""
    msgs = []
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for i in range(n):
            body = f"Message {i}.\n.leading dot\nline three\n"
            m = make_message(f"tls test {i}", body, to=rcpt)
            assert s.sendmail("sender@remote.test", [rcpt], m) == {}
            msgs.append(m)
    return msgs


def stored_crlf(tern, i=0):
    return tern.messages(DEMO)[i].replace(b"\n", b"\r\n")


def capa(conn):
    assert conn.pop_cmd("CAPA") == b"+OK Capability list follows"
    return [line.decode() for line in conn.pop_multi()]


def stls(conn):
    assert conn.pop_cmd("STLS") == b"+OK Begin TLS negotiation"
    conn.starttls()


def greet(conn):
    assert conn.pop_line() == b"+OK tern POP3 ready"


# --- STLS and POP3S with real clients -----------------------------------

def test_poplib_stls_retr(tls_tern, cert):
    deliver(tls_tern, 1)
    p = poplib.POP3("127.0.0.1", tls_tern.pop3_port, timeout=TIMEOUT)
    try:
        assert "STLS" in p.capa()
        assert p.stls(context=client_context(cert[0])).startswith(b"+OK")
        caps = p.capa()
        assert "STLS" not in caps
        assert "USER" in caps and "SCRAM-SHA-256" in caps["SASL"]
        p.user(DEMO)
        assert p.pass_(PW).startswith(b"+OK Logged in")
        _, lines, _ = p.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == stored_crlf(tls_tern)
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    assert re.search(r"pop3 \w+: login user=demo@example.test mech=USER .*tls=yes",
                     tls_tern.log())


def test_poplib_pop3s(tls_tern, ctx):
    deliver(tls_tern, 2)
    t = tls_tern
    p = poplib.POP3_SSL("127.0.0.1", pop3s_port(t), timeout=TIMEOUT, context=ctx)
    try:
        assert p.getwelcome() == b"+OK tern POP3 ready"
        caps = p.capa()
        assert "STLS" not in caps and "USER" in caps
        p.user(DEMO)
        p.pass_(PW)
        assert p.stat()[0] == 2
        _, lines, _ = p.retr(2)
        assert b"\r\n".join(lines) + b"\r\n" == stored_crlf(t, 1)
        p.quit()
    finally:
        p.close()


def test_curl_stls_and_pop3s(tls_factory, cert):
    t, port = tls_factory()
    deliver(t, 1)
    want = stored_crlf(t)
    for url, extra in ((f"pop3://127.0.0.1:{t.pop3_port}/1", ["--ssl-reqd"]),
                       (f"pop3s://127.0.0.1:{port}/1", [])):
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", cert[0],
                            *extra, "-u", f"{DEMO}:{PW}", url],
                           capture_output=True, timeout=TIMEOUT * 3)
        assert r.returncode == 0, r.stderr
        assert r.stdout == want
    # -k: no verification, still TLS.
    r = run(["curl", "-sS", "-k", "--max-time", "20", "--ssl-reqd", "-u",
             f"{DEMO}:{PW}", f"pop3://127.0.0.1:{t.pop3_port}/"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", str(len(want))]


def s_client(args, input="QUIT\n"):
    """openssl s_client; -crlf turns each LF of input into CRLF, -ign_eof
    keeps it reading until the server closes (after QUIT)."""
    return run(["openssl", "s_client", "-crlf", "-ign_eof", "-servername",
                "mail.example.test", *args], input=input)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client(tls_tern, cert, version):
    port = pop3s_port(tls_tern)
    for args in (["-starttls", "pop3", "-connect", f"127.0.0.1:{tls_tern.pop3_port}"],
                 ["-connect", f"127.0.0.1:{port}"]):
        r = s_client([*args, version, "-CAfile", cert[0], "-verify_return_error"],
                     input=f"USER {DEMO}\nPASS {PW}\nSTAT\nQUIT\n")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Verify return code: 0 (ok)" in r.stdout
        proto = "TLSv1.2" if version == "-tls1_2" else "TLSv1.3"
        assert re.search(rf"Protocol\s*:\s*{proto}", r.stdout) or \
            f"New, {proto}" in r.stdout, r.stdout
        assert "+OK Logged in, 0 messages" in r.stdout
        assert "+OK 0 0" in r.stdout
        assert "+OK Bye" in r.stdout


def test_old_tls_refused(tls_tern):
    port = pop3s_port(tls_tern)
    for args in (["-starttls", "pop3", "-connect", f"127.0.0.1:{tls_tern.pop3_port}"],
                 ["-connect", f"127.0.0.1:{port}"]):
        r = s_client([*args, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
        assert r.returncode != 0
        assert "+OK" not in r.stdout.split("---")[-1]
    # The server goes on serving everyone else.
    p = poplib.POP3("127.0.0.1", tls_tern.pop3_port, timeout=TIMEOUT)
    assert p.getwelcome().startswith(b"+OK")
    p.quit()


# --- STLS rules -----------------------------------------------------------

def test_stls_rules(tls_tern, ctx):
    with RawTLS(tls_tern.pop3_port, ctx=ctx) as c:
        greet(c)
        assert "STLS" in capa(c)
        # What was said in clear is forgotten (RFC 2595 §4).
        assert c.pop_cmd(f"USER {DEMO}") == b"+OK"
        stls(c)
        assert c.version() in ("TLSv1.2", "TLSv1.3")
        assert "STLS" not in capa(c)
        assert c.pop_cmd(f"PASS {PW}") == b"-ERR USER first"
        assert c.pop_cmd("STLS") == b"-ERR Command not permitted when TLS active"
        assert c.pop_cmd(f"USER {DEMO}") == b"+OK"
        assert c.pop_cmd(f"PASS {PW}").startswith(b"+OK Logged in")
        # Not in TRANSACTION state.
        assert c.pop_cmd("STLS") == b"-ERR Command not valid in this state"
        assert c.pop_cmd("QUIT").startswith(b"+OK")


def test_stls_without_certificate(tern):
    with Raw(tern.pop3_port) as c:
        greet(c)
        caps = capa(c)
        assert "STLS" not in caps and "USER" in caps
        assert c.pop_cmd("STLS") == b"-ERR TLS is not available"
        assert c.pop_cmd("QUIT") == b"+OK Bye"


def test_pop3s_without_certificate_closes(tern_factory):
    from tern_harness import free_ports
    (port,) = free_ports(1)
    t = tern_factory(listen__pop3s=f"127.0.0.1:{port}")
    with Raw(port) as c:
        assert c.readline() == b""
    assert "pop3s without tls_cert" in t.log()


def test_stls_pipelined_injection(tls_tern, ctx):
    """Commands pipelined behind STLS were sent in clear: they are dropped,
    and the first reply under TLS answers the first command sent in TLS."""
    with RawTLS(tls_tern.pop3_port, ctx=ctx) as c:
        greet(c)
        c.send("STLS\r\nCAPA\r\n")
        assert c.pop_line() == b"+OK Begin TLS negotiation"
        c.starttls()
        assert c.pop_cmd("QUIT") == b"+OK Bye"
        assert c.eof()


# --- passwords only where safe ---------------------------------------------

def test_no_plaintext_auth_without_tls(tls_factory, ctx):
    t, _ = tls_factory(plaintext_auth_networks="")
    with RawTLS(t.pop3_port, ctx=ctx) as c:
        greet(c)
        caps = capa(c)
        assert "STLS" in caps
        assert not any(x == "USER" or x.startswith("SASL") for x in caps), caps
        assert c.pop_cmd(f"USER {DEMO}") == NEED_TLS
        assert c.pop_cmd(f"PASS {PW}") == NEED_TLS
        assert c.pop_cmd(f"AUTH PLAIN {plain_b64(DEMO, PW)}") == NEED_TLS
        assert c.pop_cmd("AUTH") == b"+OK"
        assert c.pop_multi() == []
        stls(c)
        caps = capa(c)
        assert "USER" in caps and "SASL PLAIN LOGIN SCRAM-SHA-256" in caps
        assert c.pop_cmd(f"USER {DEMO}") == b"+OK"
        assert c.pop_cmd(f"PASS {PW}") == b"+OK Logged in, 0 messages"
        assert c.pop_cmd("QUIT").startswith(b"+OK")
    # Plain curl must not get in; --ssl-reqd does.
    r = run(["curl", "-sS", "--max-time", "20", "-u", f"{DEMO}:{PW}",
             f"pop3://127.0.0.1:{t.pop3_port}/"])
    assert r.returncode != 0
    assert not re.search(r"auth failed.*user=<demo", t.log())


# --- AUTH (RFC 5034) ----------------------------------------------------------

def test_auth_list_and_plain(tern):
    with Raw(tern.pop3_port) as c:
        greet(c)
        assert "SASL PLAIN LOGIN SCRAM-SHA-256" in capa(c)
        assert c.pop_cmd("AUTH") == b"+OK"
        assert c.pop_multi() == [b"PLAIN", b"LOGIN", b"SCRAM-SHA-256"]
        assert c.pop_cmd("AUTH CRAM-MD5") == b"-ERR Unsupported authentication mechanism"
        # No initial response: an empty challenge, then "*" cancels.
        assert c.pop_cmd("AUTH PLAIN") == b"+ "
        assert c.pop_cmd("*") == b"-ERR Authentication cancelled"
        # Bad base64 ends the exchange with -ERR.
        assert c.pop_cmd("AUTH PLAIN") == b"+ "
        assert c.pop_cmd("!!!") == b"-ERR Invalid authentication exchange"
        assert c.pop_cmd("AUTH PLAIN =") == b"-ERR Invalid authentication exchange"
        assert c.pop_cmd("AUTH PLAIN") == b"+ "
        assert c.pop_cmd(plain_b64(DEMO, PW)) == b"+OK Logged in, 0 messages"
        assert c.pop_cmd("AUTH PLAIN") == b"-ERR Command not valid in this state"
        assert c.pop_cmd("QUIT").startswith(b"+OK")
    with Raw(tern.pop3_port) as c:
        greet(c)
        assert c.pop_cmd(f"auth plain {plain_b64(DEMO, PW)}").startswith(b"+OK Logged in")
    assert re.search(r"login user=demo@example.test mech=PLAIN", tern.log())


def test_auth_login(tern):
    with Raw(tern.pop3_port) as c:
        greet(c)
        line = c.pop_cmd("AUTH LOGIN")
        assert line.startswith(b"+ ")
        line = c.pop_cmd(b64(DEMO))
        assert line.startswith(b"+ ")
        assert c.pop_cmd(b64(PW)) == b"+OK Logged in, 0 messages"
        c.pop_cmd("QUIT")


@pytest.mark.parametrize("initial", [True, False])
def test_auth_scram_sha_256(tls_tern, ctx, initial):
    deliver(tls_tern, 1)
    with RawTLS(tls_tern.pop3_port, ctx=ctx) as c:
        greet(c)
        stls(c)
        sc = ScramClient(DEMO, PW)
        if initial:
            line = c.pop_cmd(f"AUTH SCRAM-SHA-256 {b64(sc.first())}")
        else:
            assert c.pop_cmd("AUTH SCRAM-SHA-256") == b"+ "
            line = c.pop_cmd(b64(sc.first()))
        assert line.startswith(b"+ "), line
        line = c.pop_cmd(b64(sc.final(base64.b64decode(line[2:]))))
        assert line.startswith(b"+ "), line
        assert sc.verify(base64.b64decode(line[2:]))
        assert c.pop_cmd("") == b"+OK Logged in, 1 messages"
        assert c.pop_cmd("RETR 1").startswith(b"+OK")
        assert b"\r\n".join(c.pop_multi()) + b"\r\n" == stored_crlf(tls_tern)
        c.pop_cmd("QUIT")


def test_auth_scram_wrong_password(tern):
    with Raw(tern.pop3_port) as c:
        greet(c)
        sc = ScramClient(DEMO, "wrong")
        line = c.pop_cmd(f"AUTH SCRAM-SHA-256 {b64(sc.first())}")
        assert line.startswith(b"+ ")
        assert c.pop_cmd(b64(sc.final(base64.b64decode(line[2:])))) == \
            b"-ERR [AUTH] Authentication failed"


# --- brute force -------------------------------------------------------------

def test_wrong_password_then_blocked(tern_factory):
    t = tern_factory(auth_block_after="2", auth_block_seconds="60",
                     auth_max_failures="10", auth_fail_delay_ms="50")
    with Raw(t.pop3_port) as c:
        greet(c)
        assert c.pop_cmd("USER demo") == b"+OK"
        assert c.pop_cmd("PASS nope") == b"-ERR [AUTH] Authentication failed"
        assert c.pop_cmd(f"AUTH PLAIN {plain_b64(DEMO, 'nope')}") == \
            b"-ERR [AUTH] Authentication failed"
        # Blocked now: even the right password is refused.
        assert c.pop_cmd(f"USER {DEMO}") == b"+OK"
        assert c.pop_cmd(f"PASS {PW}") == b"-ERR [SYS/TEMP] Too many failures, try later"
        assert c.pop_cmd(f"AUTH PLAIN {plain_b64(DEMO, PW)}") == \
            b"-ERR [SYS/TEMP] Too many failures, try later"
    with Raw(t.pop3_port) as c:
        greet(c)
        assert c.pop_cmd("USER bob") == b"+OK"
        assert c.pop_cmd("PASS bob-pw") == b"-ERR [SYS/TEMP] Too many failures, try later"
    log = t.log()
    # One fail2ban line shape, from the shared guard; the name canonical.
    fails = re.findall(r"auth failed: proto=pop3 rip=127\.0\.0\.1 user=<([^>]*)>", log)
    assert fails == [DEMO, DEMO], log
    assert not re.search(r"auth failed user=", log)
    assert "auth blocked: proto=pop3" in log


def test_max_failures_closes(tern_factory):
    t = tern_factory(auth_max_failures="2", auth_block_after="0",
                     auth_fail_delay_ms="10")
    with Raw(t.pop3_port) as c:
        greet(c)
        c.pop_cmd("USER demo")
        assert c.pop_cmd("PASS x") == b"-ERR [AUTH] Authentication failed"
        c.pop_cmd("USER demo")
        assert c.pop_cmd("PASS y") == b"-ERR [AUTH] Authentication failed"
        assert c.eof()


# --- access lists and bad commands -----------------------------------------------

def test_access_denied(tls_factory, ctx):
    t, port = tls_factory(access__pop3__deny="127.0.0.0/8",
                          access__pop3s__deny="0.0.0.0/0",
                          access__pop3s__allow="127.0.0.1/32")
    with Raw(t.pop3_port) as c:
        assert c.pop_line() == b"-ERR [SYS/PERM] Access denied"
        assert c.eof()
    # On pop3s the allow list wins.
    with RawTLS(port, ctx=ctx, implicit=True) as c:
        greet(c)
    t2, port2 = tls_factory(access__pop3s__deny="127.0.0.1")
    with RawTLS(port2, ctx=ctx, implicit=True) as c:
        assert c.pop_line() == b"-ERR [SYS/PERM] Access denied"
        assert c.eof()
    assert "access denied" in t.log() and "access denied" in t2.log()


def test_bad_command_limit_one_reply_each(tern):
    # bad_command_limit = 5 (tern_harness): four errors, then only the final one.
    with Raw(tern.pop3_port) as c:
        greet(c)
        c.send("FOO\r\nBAR\r\nSTAT\r\nUSER\r\nBAZ\r\nNOOP\r\n")
        assert c.pop_line() == b"-ERR Unknown command"
        assert c.pop_line() == b"-ERR Unknown command"
        assert c.pop_line() == b"-ERR Command not valid in this state"
        assert c.pop_line() == b"-ERR Wrong number of arguments to USER"
        assert c.pop_line() == b"-ERR Too many bad commands"
        assert c.readline() == b""
