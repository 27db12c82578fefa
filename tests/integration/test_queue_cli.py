"""tern queue list/show/del/flush on mail spooled through SMTP, the state
file format shared with the runner, ternd's pid file and SIGUSR1, and the
DSN (RFC 3464) that `tern queue dsn` (a hidden debugging command) builds."""

import email
import email.policy
import os
import re
import smtplib
import time

from tern_harness import HOSTNAME, TIMEOUT, make_message

SENDER = "alice@example.test"
FOREIGN = ["bob@remote.test", "carol@other.test"]


def spool(tern, subject="queued", rcpts=FOREIGN, sender=SENDER):
    """Relays one message from the trusted loopback; returns (ID, message)."""
    before = set(queue_ids(tern))
    msg = make_message(subject, "body line\r\n", sender=sender, to=rcpts[0])
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        assert s.sendmail(sender, rcpts, msg) == {}
    new = set(queue_ids(tern)) - before
    assert len(new) == 1
    return new.pop(), msg


def queue_ids(tern):
    return [p.name for p in tern.queue_files() if re.fullmatch(r"[0-9A-Z]{12}", p.name)]


def state_path(tern, qid):
    return tern.data_dir / "spool" / "queue" / f"{qid}.state"


def test_list_show_del(tern_trusted):
    t = tern_trusted
    r = t.tern("queue", "list")
    assert r.returncode == 0 and r.stdout == "the queue is empty\n"
    qid, msg = spool(t)
    queue_file = t.data_dir / "spool" / "queue" / qid
    original = queue_file.read_bytes()
    size = len(original) - original.index(b"\n\n") - 2

    r = t.tern("queue", "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["QUEUE-ID", "SIZE", "ARRIVAL", "SENDER/RECIPIENTS"]
    m = re.fullmatch(r"(\S{12}) +(\d+)  (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)  <(.*)>", lines[1])
    assert m, lines[1]
    assert m.group(1) == qid and int(m.group(2)) == size and m.group(4) == SENDER
    assert lines[2:] == ["    <bob@remote.test> pending", "    <carol@other.test> pending",
                         f"1 message, {size} bytes"]

    r = t.tern("queue", "show", qid)
    assert r.returncode == 0, r.stderr
    head, headers = r.stdout.split("headers:\n")
    assert f"id: {qid}\n" in head and f"sender: <{SENDER}>\n" in head
    assert f"size: {size}\n" in head and "received-count: 1\n" in head
    assert "recipients:\n    <bob@remote.test> pending\n    <carol@other.test> pending\n" in head
    # The header section as received, with LF ends, Received: first.
    assert headers.startswith("Received: from ")
    assert headers.endswith(msg.split(b"\r\n\r\n")[0].decode().replace("\r\n", "\n") + "\n")

    # Listing and showing changed nothing on disk.
    assert queue_file.read_bytes() == original
    assert not state_path(t, qid).exists()

    r = t.tern("queue", "show", "NOSUCHID0000")
    assert r.returncode == 1 and "NOSUCHID0000" in r.stderr
    r = t.tern("queue", "show", "../../users")
    assert r.returncode == 1 and "not a queue ID" in r.stderr

    r = t.tern("queue", "del", qid)
    assert r.returncode == 0 and r.stdout == f"{qid}: deleted\n"
    assert t.queue_files() == []
    r = t.tern("queue", "del", qid)
    assert r.returncode == 1 and "no such message" in r.stderr
    assert t.tern("queue", "list").stdout == "the queue is empty\n"


def write_state(tern, qid, lines):
    state_path(tern, qid).write_text("tern-queue-state 1\n" + "".join(l + "\n" for l in lines))


def test_state_file_is_read(tern_trusted):
    """The runner's state file (format in queue_msg.c) shows in list and show."""
    t = tern_trusted
    qid, _ = spool(t)
    write_state(t, qid, [
        "rcpt 0 deferred 2 1700000000 1900000000 1 mx.remote.test 451 4.7.1 Greylisted",
        "rcpt 1 delivered 1 1700000000 0 0 - 250 2.0.0 Ok"])
    r = t.tern("queue", "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.fullmatch(r'    <bob@remote.test> deferred attempts=2 next="[-0-9 :]+"',
                        lines[2]), lines[2]
    assert lines[3] == "        451 4.7.1 Greylisted"
    assert lines[4] == "    <carol@other.test> delivered attempts=1"
    r = t.tern("queue", "show", qid)
    assert "remote=mx.remote.test notified=delay\n" in r.stdout
    # A damaged state file is an error, never silently "all pending".
    state_path(t, qid).write_text("tern-queue-state 1\nrcpt 5 pending\n")
    r = t.tern("queue", "show", qid)
    assert r.returncode == 1 and "damaged state file" in r.stderr


def test_flush_signals_ternd(tern_trusted):
    t = tern_trusted
    pid_file = t.data_dir / "ternd.pid"
    # Written once the listeners run, which may be just after the port accepts.
    deadline = time.monotonic() + TIMEOUT
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.read_text() == f"{t.proc.pid}\n"
    qid, _ = spool(t)
    write_state(t, qid, [
        "rcpt 0 deferred 1 1700000000 1900000000 0 - 451 try later",
        "rcpt 1 failed 1 1700000000 0 2 - 550 no"])
    r = t.tern("queue", "flush")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"1 message due now\nternd (pid {t.proc.pid}) told to run the queue\n"
    # Due now: next attempt 0; the failed recipient is left alone.
    state = state_path(t, qid).read_text().splitlines()
    assert state[1] == "rcpt 0 deferred 1 1700000000 0 0 - 451 try later"
    assert state[2] == "rcpt 1 failed 1 1700000000 0 2 - 550 no"
    deadline = time.monotonic() + TIMEOUT
    while "queue run requested" not in t.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "queue run requested" in t.log()
    assert t.running()  # SIGUSR1 must not kill it
    r = t.tern("queue", "flush", qid)
    assert r.returncode == 0 and r.stdout.startswith("1 message due now\n")
    # Stopped, ternd removes its pid file, and flush says so.
    assert t.stop() == 0
    assert not pid_file.exists()
    r = t.tern("queue", "flush")
    assert r.returncode == 0
    assert r.stdout.splitlines()[1].startswith("ternd is not running")


def dsn_parts(text):
    msg = email.message_from_string(text, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == \
        ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    return msg, parts


def test_dsn_failure_and_delay(tern_trusted):
    t = tern_trusted
    qid, msg = spool(t, "bounce me")
    write_state(t, qid, [
        "rcpt 0 failed 3 1700000000 0 0 mx.remote.test 550 5.1.1 <bob@remote.test>: unknown",
        "rcpt 1 deferred 1 1700000000 1900000000 0 - connect to other.test: timed out"])
    r = t.tern("queue", "dsn", qid, "failure")
    assert r.returncode == 0, r.stderr
    assert "\r\n" in r.stdout or "\n" in r.stdout
    m, parts = dsn_parts(r.stdout)
    assert m["From"] == f"Mail Delivery System <MAILER-DAEMON@{HOSTNAME}>"
    assert m["To"] == f"<{SENDER}>"
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["Date"] and m["Message-ID"]
    # message/delivery-status: per-message fields, then one group per recipient.
    groups = parts[1].get_payload()
    assert groups[0]["Reporting-MTA"] == f"dns; {HOSTNAME}"
    assert groups[0]["Arrival-Date"]
    assert len(groups) == 2
    g = groups[1]
    assert g["Final-Recipient"] == "rfc822; bob@remote.test"
    assert g["Action"] == "failed" and g["Status"] == "5.1.1"
    assert g["Remote-MTA"] == "dns; mx.remote.test"
    assert g["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@remote.test>: unknown"
    assert g["Last-Attempt-Date"] and g["Will-Retry-Until"] is None
    # The original header section, exactly.
    original = msg.split(b"\r\n\r\n")[0].decode().replace("\r\n", "\n")
    assert parts[2].get_payload().replace("\r\n", "\n").endswith(original + "\n")

    r = t.tern("queue", "dsn", qid, "delay")
    assert r.returncode == 0, r.stderr
    _, parts = dsn_parts(r.stdout)
    groups = parts[1].get_payload()
    assert len(groups) == 2
    g = groups[1]
    assert g["Final-Recipient"] == "rfc822; carol@other.test"
    assert g["Action"] == "delayed" and g["Status"] == "4.4.1"
    assert g["Will-Retry-Until"] and g["Diagnostic-Code"] is None


def test_dsn_null_sender(tern_trusted):
    t = tern_trusted
    qid, _ = spool(t, "a bounce", sender="")
    write_state(t, qid, ["rcpt 0 failed 1 1700000000 0 0 - 550 no"])
    r = t.tern("queue", "dsn", qid, "failure")
    assert r.returncode == 1 and r.stdout == "" and "null sender" in r.stderr
    r = t.tern("queue", "dsn", qid, "delay")
    assert r.returncode == 1 and "no recipient to report" in r.stderr
