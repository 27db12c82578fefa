"""Clients nobody here wrote: swaks (SMTP), fetchmail and getmail (POP3)."""

import os
import pwd
import shutil
import smtplib
import subprocess
import tempfile
from pathlib import Path

import pytest

from tern_harness import TIMEOUT, make_message, split_added

DEMO = "demo@example.test"
PW = "pw"
SENDER = "sender@remote.test"


def client_env(home):
    env = dict(os.environ)
    env.update(HOME=str(home), FETCHMAILUSER="root", LC_ALL="C", TZ="UTC")
    return env


def deliver_many(tern, n, rcpt=DEMO):
    bodies = []
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for i in range(n):
            body = (f"client test body number {i}\n.dotted line {i}\n"
                    + f"filler {i} " * 200 + "\nend\n")
            s.sendmail(SENDER, [rcpt], make_message(f"client {i}", body, to=rcpt))
            bodies.append(body)
        s.quit()
    assert len(tern.message_files(rcpt)) == n
    return bodies


def body_of(data):
    return data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]


def test_swaks(tern):
    r = subprocess.run(
        ["swaks", "--to", "alice@example.test", "--from", SENDER,
         "--server", f"127.0.0.1:{tern.smtp_port}", "--helo", "swaks.test",
         "--header", "Subject: from swaks", "--body",
         "Hello from swaks.\n.dot line\nbye", "--timeout", "10"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<~  250" in r.stdout or "<-  250" in r.stdout
    msgs = tern.messages("alice@example.test")
    assert len(msgs) == 1
    added, rest = split_added(msgs[0])
    assert added["return-path"] == f"<{SENDER}>"
    assert b"Subject: from swaks\n" in rest
    # swaks itself appends blank lines after the body.
    assert b"\n\nHello from swaks.\n.dot line\nbye\n" in rest


def test_swaks_unknown_user(tern):
    r = subprocess.run(
        ["swaks", "--to", "nobody@example.test", "--from", SENDER,
         "--server", f"127.0.0.1:{tern.smtp_port}", "--timeout", "10"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "550 5.1.1" in r.stdout


def test_swaks_pipelining(tern):
    r = subprocess.run(
        ["swaks", "--pipeline", "--to", "alice@example.test,bob@example.test",
         "--from", SENDER, "--server", f"127.0.0.1:{tern.smtp_port}",
         "--body", "piped by swaks", "--timeout", "10"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for a in ("alice@example.test", "bob@example.test"):
        msgs = tern.messages(a)
        assert len(msgs) == 1 and b"piped by swaks" in msgs[0]


def test_fetchmail(tern, tmp_path):
    n = 5
    bodies = deliver_many(tern, n)
    out = tmp_path / "fetched"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 with proto POP3 port {tern.pop3_port} timeout 10\n"
        f"  user \"{DEMO}\" there with password \"{PW}\" is \"root\" here\n"
        f"  sslproto ''\n"
        f"  mda \"/bin/sh -c 'cat > $(mktemp {out}/msgXXXXXX)'\"\n"
        "  nokeep\n")
    rc.chmod(0o600)
    r = subprocess.run(
        ["fetchmail", "-f", str(rc), "--pidfile", str(tmp_path / "fm.pid"),
         "--nosyslog", "--nodetach", "-v", "--idfile", str(tmp_path / "fm.ids")],
        capture_output=True, text=True, timeout=60, env=client_env(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    files = sorted(out.iterdir())
    assert len(files) == n, r.stdout + r.stderr
    got = sorted(f.read_bytes() for f in files)
    for body in bodies:
        hits = [g for g in got if g.replace(b"\r\n", b"\n").endswith(
            b"\n\n" + body.encode())]
        assert len(hits) == 1, body[:40]
    # nokeep: deleted on the server.
    assert tern.message_files(DEMO) == []


@pytest.fixture
def maildir_dest():
    """A Maildir for getmail. getmail refuses to write a Maildir as root, so
    as root it delivers as 'nobody' into a directory nobody can reach."""
    top = Path(tempfile.mkdtemp(prefix="tern-getmail-"))
    dest = top / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (dest / sub).mkdir(parents=True)
    user = None
    if os.geteuid() == 0:
        user = "nobody"
        pw = pwd.getpwnam(user)
        top.chmod(0o755)
        for p in [dest] + [dest / sub for sub in ("new", "cur", "tmp")]:
            os.chown(p, pw.pw_uid, pw.pw_gid)
    yield dest, user
    shutil.rmtree(top, ignore_errors=True)


def test_getmail(tern, tmp_path, maildir_dest):
    n = 5
    bodies = deliver_many(tern, n)
    dest, user = maildir_dest
    gdir = tmp_path / "getmail"
    gdir.mkdir()
    rc = tmp_path / "getmailrc"
    rc.write_text(
        "[retriever]\n"
        "type = SimplePOP3Retriever\n"
        "server = 127.0.0.1\n"
        f"port = {tern.pop3_port}\n"
        f"username = {DEMO}\n"
        f"password = {PW}\n"
        "timeout = 10\n"
        "\n[destination]\n"
        "type = Maildir\n"
        f"path = {dest}/\n"
        + (f"user = {user}\n" if user else "") +
        "\n[options]\n"
        "delete = true\n"
        "read_all = true\n"
        "verbose = 1\n"
        "message_log_syslog = false\n")
    r = subprocess.run(["getmail", "--rcfile", str(rc), "--getmaildir", str(gdir)],
                       capture_output=True, text=True, timeout=60,
                       env=client_env(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    files = list((dest / "new").iterdir())
    assert len(files) == n, r.stdout + r.stderr
    got = [f.read_bytes() for f in files]
    for body in bodies:
        hits = [g for g in got if body_of(g) == body.encode()]
        assert len(hits) == 1, body[:40]
    assert tern.message_files(DEMO) == []
    # A second run finds nothing and keeps nothing.
    r = subprocess.run(["getmail", "--rcfile", str(rc), "--getmaildir", str(gdir)],
                       capture_output=True, text=True, timeout=60,
                       env=client_env(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((dest / "new").iterdir())) == n
