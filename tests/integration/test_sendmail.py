"""tern sendmail: the sendmail(8) command line submitting to a real ternd
(-t, -i/-oi, -f, -F, -bs, unqualified addresses, exit codes), from a shell
script, through a link named sendmail, and from mail(1) (bsd-mailx)."""

import os
import pwd
import re
import shutil
import subprocess

import pytest

from tern_harness import TIMEOUT, run, split_added, tern_bin

ALICE = "alice@example.test"
BOB = "bob@example.test"
DEMO = "demo@example.test"
LOGIN = pwd.getpwuid(os.getuid()).pw_name


def sendmail(tern, args, data, **kw):
    if isinstance(data, str):
        data = data.encode()
    return subprocess.run([tern_bin(), "-c", str(tern.conf), "sendmail", *args],
                          input=data, capture_output=True, timeout=TIMEOUT * 3, **kw)


def only_message(tern, addr):
    files = tern.message_files(addr)
    assert len(files) == 1, f"{addr}: {len(files)} messages"
    return split_added(files[0].read_bytes())


def header_fields(head):
    """The header section (LF) as a list of (name, value) with unfolding."""
    fields = []
    for line in head.decode().split("\n"):
        if line[:1] in (" ", "\t"):
            fields[-1] = (fields[-1][0], fields[-1][1] + " " + line.strip())
        elif line:
            name, _, value = line.partition(":")
            fields.append((name, value.strip()))
    return fields


def test_t_from_shell_script(tern, tmp_path):
    """-t takes To, Cc and Bcc, removes Bcc; -f, -F and -i as sendmail."""
    script = tmp_path / "cron-job.sh"
    script.write_text(
        "#!/bin/sh\n"
        "printf 'To: Alice <alice@example.test>, bob\\n"
        "Cc: undisclosed:;\\nBcc: demo\\nSubject: nightly\\n\\n"
        "line one\\n.\\n..two dots\\nlast\\n' |\n"
        f"  '{tern_bin()}' -c '{tern.conf}' sendmail -t -i -f backup -F 'Backup Job'\n")
    script.chmod(0o755)
    r = run([str(script)])
    assert r.returncode == 0, r.stderr
    for rcpt in (ALICE, BOB, DEMO):
        added, rest = only_message(tern, rcpt)
        assert added["return-path"] == "<backup@example.test>"
        head, body = rest.split(b"\n\n", 1)
        # -i: a lone "." is text; the body arrives byte for byte.
        assert body == b"line one\n.\n..two dots\nlast\n"
        fields = header_fields(head)
        names = [n for n, _ in fields]
        assert names == ["To", "Cc", "Subject", "From", "Date", "Message-ID"]
        assert dict(fields)["From"] == "Backup Job <backup@example.test>"
        assert dict(fields)["To"] == "Alice <alice@example.test>, bob"
        assert re.fullmatch(r"<[^@>]+@mail\.example\.test>", dict(fields)["Message-ID"])
    assert b"Bcc" not in tern.messages(DEMO)[0]


def test_lone_dot_ends_input_without_i(tern):
    r = sendmail(tern, ["alice"], "Subject: dot\n\nbefore\n.\nafter\n")
    assert r.returncode == 0, r.stderr
    _, rest = only_message(tern, ALICE)
    assert rest.endswith(b"\n\nbefore\n")
    # -oi is -i.
    r = sendmail(tern, ["-oi", "bob"], "Subject: dot\n\nbefore\n.\nafter\n")
    assert r.returncode == 0, r.stderr
    _, rest = only_message(tern, BOB)
    assert rest.endswith(b"\n\nbefore\n.\nafter\n")


def test_defaults_and_existing_fields(tern):
    """Unqualified recipients and sender get the first domain; the default
    sender is the login name; fields present are not added again; CRLF and
    LF input give the same message."""
    msg = (b"From: Someone <someone@example.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"Message-ID: <given@test>\r\nSubject: as is\r\n\r\nbody\r\n")
    r = sendmail(tern, ["-oem", "-odb", "alice", "bob@example.test"], msg)
    assert r.returncode == 0, r.stderr
    for rcpt in (ALICE, BOB):
        added, rest = only_message(tern, rcpt)
        assert added["return-path"] == f"<{LOGIN}@example.test>"
        assert rest == msg.replace(b"\r\n", b"\n")


def test_no_header_at_all(tern):
    """Input without a header section is all body; From, Date, Message-ID
    and the blank line come before it."""
    r = sendmail(tern, ["-f", "<>", "alice"], "just text: not a header\nsecond\n")
    assert r.returncode == 0, r.stderr
    added, rest = only_message(tern, ALICE)
    assert added["return-path"] == "<>"
    head, body = rest.split(b"\n\n", 1)
    assert [n for n, _ in header_fields(head)] == ["From", "Date", "Message-ID"]
    assert body == b"just text: not a header\nsecond\n"


def test_foreign_recipient_is_queued(tern_trusted):
    r = sendmail(tern_trusted, ["someone@remote.test"], "Subject: out\n\nhi\n")
    assert r.returncode == 0, r.stderr
    assert len(tern_trusted.queue_files()) == 1


def test_refused_recipient(tern):
    """A recipient refused for good: nothing is sent, EX_NOUSER (67)."""
    r = sendmail(tern, ["alice", "nosuchuser"], "Subject: x\n\nx\n")
    assert r.returncode == 67
    assert b"nosuchuser@example.test" in r.stderr
    assert tern.message_files(ALICE) == []
    # Relay is refused without trusted_networks (554 to RCPT): also 67.
    r = sendmail(tern, ["x@remote.test"], "Subject: x\n\nx\n")
    assert r.returncode == 67 and b"Relay access denied" in r.stderr


def test_ternd_down(tern):
    tern.stop()
    r = sendmail(tern, ["alice"], "Subject: x\n\nx\n")
    assert r.returncode == 75  # EX_TEMPFAIL: try again later
    assert b"cannot reach ternd" in r.stderr and b"not sent" in r.stderr
    r = sendmail(tern, ["-bs"], "QUIT\n")
    assert r.returncode == 75


def test_usage_errors(tern):
    r = sendmail(tern, ["-x", "alice"], "x\n")
    assert r.returncode == 64 and b"unknown flag -x" in r.stderr
    r = sendmail(tern, ["-f"], "x\n")
    assert r.returncode == 64
    r = sendmail(tern, [], "Subject: nobody\n\nx\n")
    assert r.returncode == 64 and b"no recipients" in r.stderr
    r = sendmail(tern, ["-t"], "Subject: nobody\n\nx\n")
    assert r.returncode == 64
    r = subprocess.run([tern_bin(), "sendmail", "-C", "/nonexistent.conf", "alice"],
                       input=b"x\n", capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 78  # EX_CONFIG


def test_bs_relays_the_dialogue(tern):
    dialogue = ("EHLO script\nMAIL FROM:<me@example.test>\nRCPT TO:<alice@example.test>\n"
                "DATA\nSubject: bs\n\nover stdin\n.\nQUIT\n")
    r = sendmail(tern, ["-bs"], dialogue)
    assert r.returncode == 0, r.stderr
    codes = [line[:4] for line in r.stdout.decode().split("\r\n") if line]
    assert codes[0] == "220 " and codes[-1] == "221 "
    assert "354 " in codes and codes.count("250 ") == 4
    added, rest = only_message(tern, ALICE)
    assert added["return-path"] == "<me@example.test>"
    assert rest == b"Subject: bs\n\nover stdin\n"


def test_link_named_sendmail(tern, tmp_path):
    link = tmp_path / "sendmail"
    link.symlink_to(tern_bin())
    r = subprocess.run([str(link), "-C", str(tern.conf), "-i", "--", "alice"],
                       input=b"Subject: link\n\nvia the link\n", capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    _, rest = only_message(tern, ALICE)
    assert rest.endswith(b"\n\nvia the link\n")


@pytest.mark.skipif(shutil.which("bsd-mailx") is None, reason="bsd-mailx not installed")
def test_mailx(tern, tmp_path):
    """mail(1) with its sendmail variable pointing at tern sendmail: what it
    hands over arrives byte for byte, plus From, Date and Message-ID."""
    captured = tmp_path / "captured"
    wrapper = tmp_path / "tern-sendmail"
    wrapper.write_text("#!/bin/sh\n"
                       f"tee '{captured}' | '{tern_bin()}' -c '{tern.conf}' sendmail \"$@\"\n")
    wrapper.chmod(0o755)
    mailrc = tmp_path / "mailrc"
    mailrc.write_text(f"set sendmail={wrapper}\n")
    env = dict(os.environ, MAILRC=str(mailrc), HOME=str(tmp_path))
    body = "Dear Alice,\n\n.a line with a dot\n.\n  indented\nbye\n"
    r = subprocess.run(["bsd-mailx", "-s", "from mailx", "alice", "bob@example.test"],
                       input=body.encode(), capture_output=True, timeout=TIMEOUT * 3,
                       env=env)
    assert r.returncode == 0, r.stderr
    sent = captured.read_bytes()
    sent_head, sent_body = sent.split(b"\n\n", 1)
    for rcpt in (ALICE, BOB):
        _, rest = only_message(tern, rcpt)
        head, got_body = rest.split(b"\n\n", 1)
        assert got_body == sent_body
        assert got_body.endswith(body.encode()[-30:])
        assert head.startswith(sent_head + b"\n")
        added = header_fields(head[len(sent_head) + 1:])
        assert [n for n, _ in added] == ["From", "Date", "Message-ID"]
        assert added[0][1] == f"{LOGIN}@example.test"
