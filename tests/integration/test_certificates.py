"""Several certificates, chosen by the name the client asks for (SNI)."""

import subprocess

import pytest

from tern_harness import Tern, run


def make_cert(dir, cn):
    key, cert = dir / f"{cn}.key", dir / f"{cn}.pem"
    r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(cert)])
    assert r.returncode == 0, r.stderr
    return cert, key


def subject_for(port, servername=None):
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
            "-starttls", "smtp"]
    if servername is not None:
        args += ["-servername", servername]
    r = subprocess.run(args, input="QUIT\n", capture_output=True, text=True, timeout=20)
    for line in r.stdout.splitlines():
        if line.startswith("subject="):
            return line.split("CN", 1)[1].strip(" =")
    raise AssertionError(r.stdout + r.stderr)


@pytest.fixture
def sni_server(tmp_path):
    default = make_cert(tmp_path, "mail.example.test")
    other = make_cert(tmp_path, "mail.other.test")
    wild = make_cert(tmp_path, "wild.third.test")
    srv = Tern(tmp_path / "srv", tls_cert=str(default[0]), tls_key=str(default[1]))
    srv.write_config(f"tls_sni = mail.other.test {other[0]} {other[1]}\n"
                     f"tls_sni = *.third.test {wild[0]} {wild[1]}\n")
    srv.start()
    yield srv
    srv.kill()


def test_certificate_by_sni(sni_server):
    port = sni_server.smtp_port
    assert subject_for(port) == "mail.example.test"
    assert subject_for(port, "mail.example.test") == "mail.example.test"
    assert subject_for(port, "MAIL.OTHER.TEST") == "mail.other.test"
    assert subject_for(port, "smtp.third.test") == "wild.third.test"
    # A wildcard covers one label only; unknown names get the default.
    assert subject_for(port, "a.b.third.test") == "mail.example.test"
    assert subject_for(port, "unknown.test") == "mail.example.test"


def test_bad_sni_line_is_a_startup_error(tmp_path):
    srv = Tern(tmp_path / "srv")
    srv.write_config("tls_sni = only-a-name\n")
    srv.start(wait=False)
    assert srv.wait() == 1
    srv.kill()
    assert "tern.conf:" in srv.log() and "tls_sni: expected HOSTNAME CERTFILE KEYFILE" in srv.log()


def test_sighup_reloads_certificate_keeping_open_sessions(tmp_path):
    import shutil
    import signal
    import smtplib
    import ssl
    import time

    first = make_cert(tmp_path, "first.example.test")
    second = make_cert(tmp_path, "second.example.test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(first[0], cert)
    shutil.copy(first[1], key)
    srv = Tern(tmp_path / "srv", tls_cert=str(cert), tls_key=str(key))
    srv.start()
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        open_session = smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10)
        open_session.starttls(context=ctx)
        assert subject_for(srv.smtp_port) == "first.example.test"

        shutil.copy(second[0], cert)
        shutil.copy(second[1], key)
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reloaded" not in srv.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert subject_for(srv.smtp_port) == "second.example.test"
        # The session opened before the reload goes on over its TLS.
        assert open_session.noop()[0] == 250
        open_session.quit()
    finally:
        srv.kill()
