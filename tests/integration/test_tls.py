"""TLS for SMTP: STARTTLS (RFC 3207) with openssl s_client, the minimum
protocol version, implicit TLS on submissions (RFC 8314), and the STARTTLS
command-injection defence (RFC 3207 §4.2)."""

import socket
import subprocess

import pytest

from tern_harness import HOSTNAME, TIMEOUT, Raw, client_tls_context


@pytest.fixture
def tls_srv(tern_factory):
    return tern_factory(tls=True, submission=True)


def s_client(port, *args, starttls=True):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief",
           "-crlf", "-ign_eof", "-servername", HOSTNAME, *args]
    if starttls:
        cmd[4:4] = ["-starttls", "smtp"]
    return subprocess.run(cmd, input="EHLO sclient.test\nQUIT\n", capture_output=True,
                          text=True, timeout=30)


def established(r):
    return "CONNECTION ESTABLISHED" in r.stderr


@pytest.mark.parametrize("which", ["smtp", "submission"])
def test_s_client_starttls(tls_srv, which):
    port = tls_srv.smtp_port if which == "smtp" else tls_srv.submission_port
    r = s_client(port)
    assert established(r), r.stdout + r.stderr
    assert "Protocol version: TLSv1.3" in r.stderr
    # After the handshake the session is fresh: EHLO answers, no STARTTLS.
    assert f"250-{HOSTNAME}" in r.stdout
    assert "250-STARTTLS" not in r.stdout
    assert "221 2.0.0" in r.stdout


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_modern_versions_accepted(tls_srv, version):
    r = s_client(tls_srv.smtp_port, version)
    assert established(r), r.stdout + r.stderr
    assert "221 2.0.0" in r.stdout


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_versions_refused(tls_srv, version):
    # SECLEVEL=0 lets the client offer them: the refusal is the server's.
    r = s_client(tls_srv.smtp_port, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert not established(r), r.stdout + r.stderr
    assert "alert protocol version" in r.stderr
    assert "221 2.0.0" not in r.stdout
    r = s_client(tls_srv.submissions_port, version, "-cipher", "DEFAULT@SECLEVEL=0",
                 starttls=False)
    assert not established(r), r.stdout + r.stderr


def test_implicit_tls_python(tls_srv):
    sock = socket.create_connection(("127.0.0.1", tls_srv.submissions_port),
                                    timeout=TIMEOUT)
    with client_tls_context(tls_srv).wrap_socket(sock, server_hostname=HOSTNAME) as t:
        r = Raw.__new__(Raw)
        r.sock, r.buf = t, b""
        code, lines = r.smtp_reply()
        assert code == 220 and lines[0].startswith(HOSTNAME)
        assert t.version() in ("TLSv1.2", "TLSv1.3")
        assert r.cmd("QUIT")[0] == 221


def test_tls13_prefers_aes128(tls_srv):
    """The server's TLS 1.3 order puts AES-128-GCM first, whatever the
    client's; a client that offers only another suite still gets it."""
    r = s_client(tls_srv.submissions_port, "-ciphersuites",
                 "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"
                 "TLS_AES_128_GCM_SHA256", starttls=False)
    assert established(r), r.stdout + r.stderr
    assert "Ciphersuite: TLS_AES_128_GCM_SHA256" in r.stderr
    r = s_client(tls_srv.submissions_port, "-ciphersuites",
                 "TLS_CHACHA20_POLY1305_SHA256", starttls=False)
    assert "Ciphersuite: TLS_CHACHA20_POLY1305_SHA256" in r.stderr


def test_implicit_tls_s_client(tls_srv):
    r = s_client(tls_srv.submissions_port, starttls=False)
    assert established(r), r.stdout + r.stderr
    assert f"220 {HOSTNAME}" in r.stdout
    assert "221 2.0.0" in r.stdout


def test_implicit_tls_without_cert(tern_factory):
    """A submissions listener with no certificate says 421 and hangs up."""
    srv = tern_factory(tls=False, submission=True)
    with Raw(srv.submissions_port) as r:
        code, _ = r.smtp_reply()
        assert code == 421
        assert r.eof()
    assert "without tls_cert" in srv.log()


def test_starttls_injection(tls_srv):
    """Commands pipelined after STARTTLS in clear are never acted on."""
    r = Raw(tls_srv.smtp_port)
    with r:
        assert r.smtp_reply()[0] == 220
        assert r.cmd("EHLO c.test")[0] == 250
        r.send("STARTTLS\r\nRSET\r\n")
        code, _ = r.smtp_reply()
        assert code == 220
        r.sock = client_tls_context(tls_srv).wrap_socket(r.sock, server_hostname=HOSTNAME)
        r.buf = b""
        # The first reply under TLS answers EHLO, not the injected RSET.
        code, lines = r.cmd("EHLO c.test")
        assert code == 250 and lines[0] == HOSTNAME, lines
        code, lines = r.cmd("NOOP")
        assert code == 250 and lines == ["2.0.0 Ok"]
        assert r.buf == b""


def test_ehlo_required_after_starttls(tls_srv):
    r = Raw(tls_srv.submission_port)
    with r:
        assert r.smtp_reply()[0] == 220
        assert r.cmd("EHLO c.test")[0] == 250
        assert r.cmd("STARTTLS")[0] == 220
        r.sock = client_tls_context(tls_srv).wrap_socket(r.sock, server_hostname=HOSTNAME)
        code, _ = r.cmd("MAIL FROM:<alice@example.test>")
        assert code == 503
        code, lines = r.cmd("EHLO c.test")
        assert code == 250 and "STARTTLS" not in lines
        # STARTTLS a second time is refused.
        assert r.cmd("STARTTLS")[0] == 502
