"""Real IMAP clients against ternd: mbsync (isync) syncing a mailbox both
ways with a local Maildir, and mutt reading a folder over IMAPS."""

import os
import pty
import select
import shutil
import smtplib
import subprocess
import time

import pytest

from tern_harness import TIMEOUT, free_ports, make_message, to_lf

DEMO = "demo@example.test"
PW = "pw"


@pytest.fixture
def imap(tern_factory):
    port, tls_port = free_ports(2)
    tern = tern_factory(tls=True, listen__imap=f"127.0.0.1:{port}",
                        listen__imaps=f"127.0.0.1:{tls_port}")
    return tern, port, tls_port


def deliver(tern, msgs):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for m in msgs:
            assert s.sendmail("sender@remote.test", [DEMO], m) == {}


def local_files(d):
    return sorted(os.path.join(d, sub, n) for sub in ("cur", "new")
                  for n in os.listdir(os.path.join(d, sub)))


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync not installed")
def test_mbsync_both_ways(imap, tmp_path):
    tern, port, _ = imap
    msgs = [make_message(f"sync {i}", f"Synced body {i}.\n", to=DEMO) for i in range(3)]
    deliver(tern, msgs)
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""IMAPAccount tern
Host 127.0.0.1
Port {port}
User {DEMO}
Pass {PW}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account tern

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel inbox
Far :remote:INBOX
Near :local:INBOX
Create Near
Sync All
SyncState *
""")

    def mbsync():
        r = subprocess.run(["mbsync", "-c", str(rc), "inbox"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr

    mbsync()
    inbox = str(local / "INBOX")
    files = local_files(inbox)
    assert len(files) == 3
    # mbsync keeps the server's bytes with LF line ends, less its own
    # X-TUID field; tern's trace fields come first.
    bodies = [b"".join(line for line in open(f, "rb") if not line.startswith(b"X-TUID:"))
              for f in files]
    for i, msg in enumerate(msgs):
        body, = [b for b in bodies if f"Subject: sync {i}\n".encode() in b]
        assert body.startswith(b"Return-Path: <sender@remote.test>\n"), body
        assert body.endswith(to_lf(msg)), body

    # Near → far: a message written locally is APPENDed, a flag set locally
    # is STOREd.
    new_local = b"From: me@example.test\nSubject: from mutt\n\nWritten locally.\n"
    with open(os.path.join(inbox, "new", "1700000000.local1.host"), "wb") as f:
        f.write(new_local)
    first = [f for f in files if "sync 0" in open(f, "rb").read().decode()][0]
    base = os.path.basename(first).split(":2,")[0]
    os.rename(first, os.path.join(inbox, "cur", base + ":2,FS"))
    mbsync()
    server = tern.messages(DEMO)
    assert len(server) == 4
    assert any(m.replace(b"\r\n", b"\n").endswith(b"Written locally.\n") for m in server)
    names = [p.name for p in tern.message_files(DEMO)]
    flagged = [n for n in names if n.endswith(":2,FS")]
    assert len(flagged) == 1, names
    # And a second run changes nothing.
    mbsync()
    assert len(tern.messages(DEMO)) == 4 and len(local_files(inbox)) == 4


def run_in_pty(argv, keys, timeout=30):
    """Runs a curses program on a pseudo-terminal, typing keys once it has
    drawn its screen; returns when it exits."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "vt100"
        os.execvp(argv[0], argv)
    out = b""
    end = time.time() + timeout
    sent = False
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif not sent and out:
            os.write(fd, keys)
            sent = True
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise AssertionError(f"mutt did not finish: {out[-2000:]!r}")
    os.close(fd)
    return out


@pytest.mark.skipif(shutil.which("mutt") is None, reason="mutt not installed")
def test_mutt_reads_over_imaps(imap, tmp_path):
    tern, _, tls_port = imap
    msg = make_message("for mutt", "Read by mutt over IMAPS.\nLine two.\n", to=DEMO)
    deliver(tern, [msg])
    out = tmp_path / "piped"
    rc = tmp_path / "muttrc"
    rc.write_text(f"""set imap_user = "{DEMO}"
set imap_pass = "{PW}"
set ssl_starttls = no
set ssl_force_tls = yes
set certificate_file = "{tmp_path}/certs"
set ssl_verify_host = no
set folder = "imaps://127.0.0.1:{tls_port}/"
set spoolfile = "+INBOX"
set header_cache = ""
set message_cachedir = ""
set mail_check = 0
set wait_key = no
set confirmappend = no
set pipe_decode = no
set move = no
set mbox_type = Maildir
set mark_old = no
""")
    # The certificate is self-signed: trust it for this test.
    (tmp_path / "certs").write_bytes(tern.cert.read_bytes())
    # Open the first message (a FETCH that sets \\Seen), pipe it, leave.
    keys = b"\r" + (f"|cat > {out}\r").encode() + b"qq"
    run_in_pty(["mutt", "-n", "-F", str(rc), "-f", f"imaps://127.0.0.1:{tls_port}/INBOX"],
               keys)
    data = out.read_bytes()
    # mutt pipes the message as the server sent it (headers and body).
    assert data.endswith(b"Read by mutt over IMAPS.\nLine two.\n"), data
    assert b"Subject: for mutt" in data
    # Reading it marked it \Seen on the server.
    names = [p.name for p in tern.message_files(DEMO)]
    assert len(names) == 1 and names[0].endswith(":2,S"), names
