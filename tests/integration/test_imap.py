"""IMAP4rev1 (RFC 3501) connection, login and mailbox management, with
imaplib, raw sockets and curl."""

import imaplib
import re
import subprocess

import pytest

from tern_harness import TIMEOUT, Raw, free_ports, plain_b64, run
from tls_helpers import client_context, make_cert, tls_settings

DEMO = "demo@example.test"
PW = "pw"
DEFAULTS = ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("cert"))


@pytest.fixture
def imap(tern_factory):
    """(tern, imap port)"""
    port, = free_ports(1)
    return tern_factory(listen__imap=f"127.0.0.1:{port}"), port


@pytest.fixture
def imap_tls(tern_factory, cert):
    """(tern, imap port, imaps port) with TLS and no plaintext passwords."""
    settings, ports = tls_settings(cert[0], cert[1], "imaps")
    port, = free_ports(1)
    settings["listen__imap"] = f"127.0.0.1:{port}"
    settings["plaintext_auth_networks"] = ""
    return tern_factory(**settings), port, ports["imaps"]


def connect(port):
    return imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)


def login(port):
    m = connect(port)
    typ, _ = m.login(DEMO, PW)
    assert typ == "OK"
    return m


def listed(m, ref='""', pat="*", cmd="list"):
    """{name: set of attributes} of a LIST or LSUB reply."""
    typ, data = getattr(m, cmd)(ref, pat)
    assert typ == "OK", data
    out = {}
    for line in data:
        if line is None:
            continue
        mo = re.match(rb'^\(([^)]*)\) "/" "?(.*?)"?$', line)
        assert mo, line
        out[mo.group(2).decode()] = set(mo.group(1).decode().split())
    return out


class RawImap(Raw):
    def line(self):
        line = self.readline()
        assert line.endswith(b"\r\n"), f"line without CRLF: {line!r}"
        return line[:-2]

    def tagged(self, tag):
        """Lines up to and including the tagged reply."""
        out = []
        while True:
            line = self.line()
            out.append(line)
            if line.startswith(tag.encode() + b" "):
                return out

    def cmd(self, tag, text):
        self.send(f"{tag} {text}\r\n")
        return self.tagged(tag)


def test_capability_and_logout(imap):
    _, port = imap
    m = connect(port)
    assert m.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1")
    caps = m.capabilities
    for c in ("IMAP4REV1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "NAMESPACE",
              "AUTH=PLAIN", "AUTH=SCRAM-SHA-256"):
        assert c in caps, caps
    assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps
    typ, data = m.logout()
    assert typ == "BYE"


def test_login_ok_and_fail(imap):
    tern, port = imap
    m = connect(port)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(DEMO, "wrong")
    assert m.noop()[0] == "OK"
    typ, data = m.login(DEMO, PW)
    assert typ == "OK" and b"CAPABILITY" in data[0] or typ == "OK"
    assert m.noop()[0] == "OK"
    m.logout()
    assert "auth failed: proto=imap" in tern.log()


def test_authenticate_plain(imap):
    _, port = imap
    m = connect(port)
    typ, _ = m.authenticate("PLAIN", lambda _: f"\0{DEMO}\0{PW}".encode())
    assert typ == "OK"
    assert "INBOX" in listed(m)
    m.logout()


def test_authenticate_sasl_ir_raw(imap):
    _, port = imap
    with RawImap(port) as r:
        assert r.line().startswith(b"* OK")
        assert r.cmd("a", f"AUTHENTICATE PLAIN {plain_b64(DEMO, 'bad')}")[-1].startswith(
            b"a NO [AUTHENTICATIONFAILED]")
        r.send("b AUTHENTICATE PLAIN\r\n")
        assert r.line() == b"+ "
        assert r.cmd("b", "*")[-1].startswith(b"b BAD")
        assert r.cmd("c", f"AUTHENTICATE PLAIN {plain_b64(DEMO, PW)}")[-1].startswith(
            b"c OK")
        assert r.cmd("d", "LOGIN x y")[-1].startswith(b"d BAD")


def test_id_enable_namespace_state(imap):
    _, port = imap
    with RawImap(port) as r:
        r.line()
        assert r.cmd("a", "LIST \"\" *")[-1].startswith(b"a BAD")
        out = r.cmd("b", 'ID ("name" "test")')
        assert out[0] == b'* ID ("name" "tern")' and out[-1].startswith(b"b OK")
        r.cmd("c", f"LOGIN {DEMO} {PW}")
        assert r.cmd("d", "ENABLE CONDSTORE") == [b"* ENABLED", b"d OK ENABLE completed"]
        out = r.cmd("e", "NAMESPACE")
        assert out[0] == b'* NAMESPACE (("" "/")) NIL NIL'
        assert r.cmd("f", "SELECT Nowhere")[-1].startswith(b"f NO [NONEXISTENT]")
        out = r.cmd("g", 'LIST "" ""')
        assert out[0] == b'* LIST (\\Noselect) "/" ""'


def test_default_mailboxes(imap):
    _, port = imap
    m = login(port)
    boxes = listed(m)
    assert sorted(boxes) == sorted(DEFAULTS)
    for name in DEFAULTS[1:]:
        assert "\\" + name in boxes[name], boxes
    assert set(listed(m, cmd="lsub")) == set(DEFAULTS)
    assert set(listed(m, pat="inbox")) == {"INBOX"}
    m.logout()


def test_create_rename_delete(imap):
    _, port = imap
    m = login(port)
    assert m.create("a/b")[0] == "OK"
    boxes = listed(m)
    assert "\\HasChildren" in boxes["a"] and "a/b" in boxes
    assert set(listed(m, pat="%")) == set(DEFAULTS) | {"a"}
    assert set(listed(m, pat="a/%")) == {"a/b"}
    typ, data = m.create("a/b")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0]
    assert m.rename("a", "c")[0] == "OK"
    boxes = listed(m)
    assert "a" not in boxes and "c/b" in boxes
    typ, data = m.delete("nothere")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0]
    assert m.delete("c/b")[0] == "OK"
    assert m.delete("c")[0] == "OK"
    assert set(listed(m)) == set(DEFAULTS)
    typ, data = m.create("..")
    assert typ == "NO" and b"[CANNOT]" in data[0]
    typ, data = m.create("x/../y")
    assert typ == "NO"
    m.logout()


def test_rename_inbox(imap):
    """RFC 3501 6.3.5: renaming INBOX moves its messages to the new name
    and leaves INBOX there, empty; the messages keep their bytes."""
    _, port = imap
    m = login(port)
    bodies = [f"Subject: n{i}\r\n\r\nbody {i}\r\n".encode() for i in (1, 2)]
    for b in bodies:
        assert m.append("INBOX", None, None, b)[0] == "OK"
    assert m.rename("INBOX", "Old/Inbox")[0] == "OK"
    boxes = listed(m)
    assert "INBOX" in boxes and "Old/Inbox" in boxes
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"0"]
    typ, data = m.select("Old/Inbox")
    assert typ == "OK" and data == [b"2"]
    typ, data = m.fetch("1:2", "(BODY.PEEK[])")
    assert typ == "OK"
    assert [d[1] for d in data if isinstance(d, tuple)] == bodies
    typ, data = m.rename("Old/Inbox", "INBOX")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0]
    m.logout()


def test_subscribe_and_utf7(imap):
    _, port = imap
    m = login(port)
    assert m.create('"&ZeVnLIqe-"')[0] == "OK"
    assert "&ZeVnLIqe-" in listed(m)
    assert m.subscribe('"&ZeVnLIqe-"')[0] == "OK"
    assert "&ZeVnLIqe-" in listed(m, cmd="lsub")
    assert m.unsubscribe('"&ZeVnLIqe-"')[0] == "OK"
    assert "&ZeVnLIqe-" not in listed(m, cmd="lsub")
    typ, data = m.unsubscribe('"&ZeVnLIqe-"')
    assert typ == "NO"
    typ, _ = m.create('"&Jjo"')  # not closed: bad modified UTF-7
    assert typ == "NO"
    m.logout()


def test_malformed_input(imap):
    _, port = imap
    with RawImap(port) as r:
        r.line()
        assert r.cmd("a", 'NOOP "unterminated')[-1].startswith(b"a BAD")
        assert r.cmd("b", "NOOP") == [b"b OK NOOP completed"]
        # A synchronizing literal too large: refused, no "+", still alive.
        assert r.cmd("c", "LOGIN {100000000000}")[-1].startswith(b"c BAD")
        assert r.cmd("d", "NOOP") == [b"d OK NOOP completed"]
        assert r.cmd("e", "ID " + "(" * 100 + ")" * 100)[-1].startswith(b"e BAD")
        assert r.cmd("f", "NOOP") == [b"f OK NOOP completed"]
        # A literal within limits works (synchronizing and LITERAL+).
        r.send("g LOGIN {%d}\r\n" % len(DEMO))
        assert r.line().startswith(b"+ ")
        r.send(DEMO + " {2+}\r\npw\r\n")
        assert r.tagged("g")[-1].startswith(b"g OK")
        # A non-synchronizing literal over our 64 KiB: BAD, bytes dropped.
        r.send(b"h CREATE {70000+}\r\n" + b"x" * 70000 + b"\r\n")
        assert r.tagged("h")[-1].startswith(b"h BAD")
        assert r.cmd("i", "NOOP") == [b"i OK NOOP completed"]
        r.send(b"k NOOP " + b"x" * 70000 + b"\r\n")
        assert r.line() == b"k BAD Line too long"
        r.send(b"x" * 70000 + b"\r\n")
        assert r.line() == b"* BAD Line too long"
        # A NUL: the BAD carries the tag, or the client would wait for it
        # (found with a session fuzzer).
        r.send(b"m STATUS INBOX (\x00MESSAGES)\r\n")
        assert r.tagged("m") == [b"m BAD NUL in command"]
        assert r.cmd("l", "NOOP") == [b"l OK NOOP completed"]
        # Beyond what the parser would wait for: BYE.
        r.send("j CREATE {100000000000+}\r\n")
        lines = [r.line(), r.line()]
        assert lines[0].startswith(b"j BAD") and lines[1].startswith(b"* BYE")
        assert r.eof()


def test_bad_command_limit(imap):
    _, port = imap
    with RawImap(port) as r:
        r.line()
        for i in range(4):
            assert r.cmd(f"t{i}", "BOGUS")[-1].startswith(f"t{i} BAD".encode())
        r.send("t5 BOGUS\r\n")
        assert r.line().startswith(b"t5 BAD")
        assert r.line().startswith(b"* BYE")
        assert r.eof()


def test_access_denied(tern_factory):
    port, = free_ports(1)
    tern_factory(listen__imap=f"127.0.0.1:{port}", access__imap__deny="127.0.0.0/8")
    with RawImap(port) as r:
        assert r.line() == b"* BYE Access denied"
        assert r.eof()


def test_logindisabled_and_starttls(imap_tls, cert):
    _, port, _ = imap_tls
    m = connect(port)
    assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities
    assert "AUTH=PLAIN" not in m.capabilities
    typ, data = m._simple_command("LOGIN", DEMO, PW)
    assert typ == "NO" and b"[PRIVACYREQUIRED]" in data[0]
    m.starttls(ssl_context=client_context(cert[0]))
    assert "LOGINDISABLED" not in m.capabilities and "STARTTLS" not in m.capabilities
    assert m.login(DEMO, PW)[0] == "OK"
    assert "INBOX" in listed(m)
    m.logout()


def test_imaps(imap_tls, cert):
    _, _, port = imap_tls
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=client_context(cert[0]),
                          timeout=TIMEOUT)
    assert "STARTTLS" not in m.capabilities
    assert m.login(DEMO, PW)[0] == "OK"
    assert "Sent" in listed(m)
    m.logout()


def test_curl_list(imap):
    _, port = imap
    r = run(["curl", "-s", "--user", f"{DEMO}:{PW}", f"imap://127.0.0.1:{port}/"])
    assert r.returncode == 0, r.stderr
    out = r.stdout if isinstance(r.stdout, str) else r.stdout.decode()
    for name in DEFAULTS:
        assert f'"/" {name}' in out or f'"/" "{name}"' in out, out


def test_shutdown_with_sessions_open(imap):
    """SIGTERM with sessions in every state: BYE, clean exit, no leaks."""
    tern, port = imap
    m = login(port)
    raws = [RawImap(port) for _ in range(3)]
    for r in raws:
        r.line()
    raws[0].send("a AUTHENTICATE PLAIN\r\n")
    assert raws[0].line() == b"+ "
    raws[1].send("b LOGIN {5}\r\n")
    assert raws[1].line().startswith(b"+ ")
    raws[2].send(f"c LOGIN {DEMO} wrong\r\n")  # answered after a delay
    assert tern.stop() == 0
    for r in raws:
        while True:
            line = r.readline()
            if not line or line.startswith(b"* BYE"):
                break
        r.close()
    m.shutdown()
    log = tern.log()
    assert "Sanitizer" not in log and "runtime error" not in log, log


def test_huge_sequence_sets(imap):
    """A 100,000-item sequence set is past the line limit: BAD, and the
    session and the server go on; a large set within it is answered."""
    tern, port = imap
    import smtplib
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=10) as s:
        for i in range(3):
            s.sendmail("x@remote.test", [DEMO], f"Subject: {i}\r\n\r\nbody\r\n")
    with RawImap(port) as r, RawImap(port) as other:
        r.line()
        other.line()
        assert r.cmd("a", f"LOGIN {DEMO} pw")[-1].startswith(b"a OK")
        assert r.cmd("b", "SELECT INBOX")[-1].startswith(b"b OK")
        huge = ",".join(str(i) for i in range(1, 100001))
        r.send(f"c FETCH {huge} FLAGS\r\n")
        assert r.line() == b"c BAD Line too long"
        # Meanwhile another client is served.
        assert other.cmd("x", "NOOP") == [b"x OK NOOP completed"]
        # RFC 7162 §4 asks clients to keep lines near 8192 octets.
        big = ",".join(str(i) for i in range(1, 2801, 2))
        assert 6000 < len(big) < 8192
        got = r.cmd("d", f"FETCH {big} UID")
        assert got[-1] == b"d OK FETCH completed" and len(got) == 3
        got = r.cmd("e", f"UID SEARCH UID {big}")
        assert got == [b"* SEARCH 1 3", b"e OK UID SEARCH completed"]
        too_long = ",".join(str(i) for i in range(1, 5001, 2))
        assert r.cmd("g", f"FETCH {too_long} UID")[-1] == b"g BAD Atom too long"
        assert r.cmd("f", "NOOP") == [b"f OK NOOP completed"]
