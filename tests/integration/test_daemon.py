"""The daemon: start-up errors, signals, live users file, `tern init`."""

import poplib
import random
import re
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from tern_harness import (TIMEOUT, Raw, ephemeral_range, make_message,
                          port_accepts, reserve_port, run,
                          split_added, tern_bin, ternd_bin, wait_for_port)

SENDER = "sender@remote.test"


def start_fails(tern):
    """Starts ternd expecting it to exit by itself; returns (code, log)."""
    tern.start(wait=False)
    code = tern.wait(TIMEOUT)
    if code is None:
        tern.kill()
        raise AssertionError("ternd kept running\n" + tern.log())
    tern.stop()
    return code, tern.log()


def pop_login(tern, user, pw):
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    try:
        p.user(user)
        p.pass_(pw)
    except poplib.error_proto:
        p.close()
        raise
    return p


def smtp_roundtrip(tern, rcpt="alice@example.test", tag="roundtrip"):
    before = len(tern.message_files(rcpt))
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        s.sendmail(SENDER, [rcpt], make_message(tag, f"{tag} body\n", to=rcpt))
    assert len(tern.message_files(rcpt)) == before + 1


# --- start-up errors ------------------------------------------------------------

def config_line_count(tern):
    return len(tern.conf.read_text().splitlines())


@pytest.mark.parametrize("bad", ["this line has no equals sign",
                                 "frobnicate = 1",
                                 "message_size_limit = lots",
                                 "recipient_limit = -3",
                                 "trusted_networks = 10.0.0.0/99"])
def test_bad_config_line(tern_factory, bad):
    tern = tern_factory(start=False)
    tern.write_config(extra_lines="\n# a comment line\n" + bad + "\n")
    line = config_line_count(tern)
    code, log = start_fails(tern)
    assert code != 0
    assert f"tern.conf:{line}" in log, log
    assert not port_accepts(tern.smtp_port)


def test_unknown_key_named(tern_factory):
    tern = tern_factory(start=False)
    tern.write_config(extra_lines="smtp_greeting_delay = 5\n")
    line = config_line_count(tern)
    code, log = start_fails(tern)
    assert code != 0
    assert f"tern.conf:{line}" in log and "smtp_greeting_delay" in log, log


def test_missing_config_file(tmp_path):
    r = run([ternd_bin(), "-c", str(tmp_path / "nope.conf")], timeout=TIMEOUT)
    assert r.returncode != 0
    assert "nope.conf" in r.stderr


def test_port_in_use(tern_factory):
    tern = tern_factory(start=False)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # SO_REUSEADDR: the harness holds the port reserved (free_ports).
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        blocker.bind(("127.0.0.1", tern.smtp_port))
        blocker.listen(1)
        code, log = start_fails(tern)
    finally:
        blocker.close()
    assert code != 0
    assert str(tern.smtp_port) in log, log
    # Nothing half-started: the POP3 port is not left serving either.
    assert not port_accepts(tern.pop3_port)


# --- users file seen live ---------------------------------------------------------

def test_user_add_live(tern):
    with pytest.raises(poplib.error_proto):
        pop_login(tern, "carol@example.test", "carol-pw")
    tern.user_add("carol@example.test", "carol-pw")
    p = pop_login(tern, "carol@example.test", "carol-pw")
    assert p.stat() == (0, 0)
    p.quit()
    # And she can receive mail now, without a restart.
    smtp_roundtrip(tern, "carol@example.test")


def test_user_del_live(tern):
    pop_login(tern, "bob@example.test", "bob-pw").quit()
    r = tern.tern("user", "del", "bob@example.test")
    assert r.returncode == 0, r.stdout + r.stderr
    with pytest.raises(poplib.error_proto) as e:
        pop_login(tern, "bob@example.test", "bob-pw")
    assert e.value.args[0].startswith(b"-ERR [AUTH]")
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        s.ehlo()
        s.mail(SENDER)
        code, _ = s.rcpt("bob@example.test")
        assert code == 550


def test_user_passwd_live(tern):
    r = tern.tern("user", "passwd", "demo@example.test", "--password-stdin",
                  input="new-pw\n")
    assert r.returncode == 0, r.stdout + r.stderr
    with pytest.raises(poplib.error_proto):
        pop_login(tern, "demo@example.test", "pw")
    pop_login(tern, "demo@example.test", "new-pw").quit()


def test_user_list(tern):
    r = tern.tern("user", "list")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["alice@example.test", "bob@example.test",
                                "demo@example.test"]
    # No hashes, no passwords in the listing.
    assert "$" not in r.stdout


def test_user_add_duplicate_fails(tern):
    r = tern.tern("user", "add", "alice@example.test", "--password-stdin",
                  input="x\n")
    assert r.returncode != 0
    pop_login(tern, "alice@example.test", "alice-pw").quit()


def test_users_file_has_no_cleartext(tern):
    text = tern.users_file.read_text()
    for pw in ("alice-pw", "bob-pw"):
        assert pw not in text


# --- signals -----------------------------------------------------------------------

def test_sigterm_exits_zero(tern):
    smtp_roundtrip(tern)
    tern.signal(signal.SIGTERM)
    code = tern.wait(TIMEOUT)
    assert code == 0, tern.log()
    assert not port_accepts(tern.smtp_port)
    assert not port_accepts(tern.pop3_port)


def test_sigterm_with_idle_sessions(tern):
    """Idle sessions do not hold the shutdown back."""
    smtp = Raw(tern.smtp_port)
    pop = Raw(tern.pop3_port)
    try:
        assert smtp.smtp_reply()[0] == 220
        assert pop.pop_line().startswith(b"+OK")
        tern.signal(signal.SIGTERM)
        code = tern.wait(3 * TIMEOUT)
        assert code == 0, tern.log()
    finally:
        smtp.close()
        pop.close()


def test_sigterm_finishes_running_transaction(tern):
    """A message whose DATA is under way when SIGTERM comes is either taken
    (250) or refused with a 4xx; never acknowledged and lost."""
    r = Raw(tern.smtp_port)
    try:
        assert r.smtp_reply()[0] == 220
        assert r.cmd("EHLO c.test")[0] == 250
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: during shutdown\r\n\r\nhalf")
        tern.signal(signal.SIGTERM)
        time.sleep(0.2)
        try:
            r.send(b" and the rest\r\n.\r\n")
            code, _ = r.smtp_reply()
        except (OSError, AssertionError):
            code = None
    finally:
        r.close()
    assert tern.wait(TIMEOUT) == 0, tern.log()
    msgs = tern.messages("alice@example.test")
    if code == 250:
        assert len(msgs) == 1
        assert split_added(msgs[0])[1] == \
            b"Subject: during shutdown\n\nhalf and the rest\n"
    else:
        assert code is None or 400 <= code < 500, code


def test_sighup_still_serving(tern):
    smtp_roundtrip(tern, tag="before-hup")
    tern.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert tern.running(), tern.log()
    assert wait_for_port(tern.smtp_port, tern.proc)
    smtp_roundtrip(tern, tag="after-hup")
    p = pop_login(tern, "alice@example.test", "alice-pw")
    assert p.stat()[0] == 2
    p.quit()


def test_sighup_reloads_config(tern):
    with Raw(tern.smtp_port) as r:
        r.smtp_reply()
        assert f"SIZE {20 * 1024 * 1024}" in r.cmd("EHLO c.test")[1]
    tern.settings["message_size_limit"] = "1M"
    tern.write_config()
    tern.signal(signal.SIGHUP)
    seen = []
    for _ in range(50):
        time.sleep(0.1)
        with Raw(tern.smtp_port) as r:
            r.smtp_reply()
            seen = r.cmd("EHLO c.test")[1]
        if f"SIZE {1024 * 1024}" in seen:
            break
    assert f"SIZE {1024 * 1024}" in seen, seen
    assert tern.running()


def test_sighup_bad_config_keeps_serving(tern):
    tern.write_config(extra_lines="frobnicate = 1\n")
    tern.signal(signal.SIGHUP)
    named = re.compile(r"tern\.conf:\d+")
    for _ in range(50):         # the reload error is logged, naming the line
        if named.search(tern.log()):
            break
        time.sleep(0.1)
    assert named.search(tern.log()), tern.log()
    assert tern.running(), tern.log()
    smtp_roundtrip(tern)


def test_restart_keeps_mail(tern):
    smtp_roundtrip(tern)
    before = tern.messages("alice@example.test")
    assert tern.stop() == 0
    tern.start()
    assert tern.messages("alice@example.test") == before
    p = pop_login(tern, "alice@example.test", "alice-pw")
    assert p.stat()[0] == 1
    p.quit()


# --- tern init --------------------------------------------------------------------

def free_port_base():
    """A base whose standard-port offsets are all free and now reserved."""
    offsets = (25, 587, 465, 110, 995, 143, 993)
    lo = ephemeral_range()[0]
    for _ in range(50):
        base = random.randrange(10000, lo - 1000, 1000)
        if all(reserve_port(base + o) for o in offsets):
            return base
    raise AssertionError("no free port base")


def test_tern_init_starts(tmp_path):
    base = free_port_base()
    d = tmp_path / "site"
    r = run([tern_bin(), "init", str(d), "--domain", "init.test",
             "--port-base", str(base)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MX" in r.stdout          # the DNS records to publish
    conf = d / "tern.conf"
    assert conf.exists(), list(d.iterdir())
    r = run([tern_bin(), "-c", str(conf), "user", "add", "u@init.test",
             "--password-stdin"], input="u-pw\n")
    assert r.returncode == 0, r.stdout + r.stderr
    log = open(tmp_path / "ternd.log", "wb")
    proc = subprocess.Popen([ternd_bin(), "-c", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    try:
        ok = wait_for_port(base + 25, proc) and wait_for_port(base + 110, proc)
        assert ok, (tmp_path / "ternd.log").read_text()
        with smtplib.SMTP("127.0.0.1", base + 25, timeout=TIMEOUT) as s:
            s.sendmail(SENDER, ["u@init.test"], b"Subject: init\r\n\r\nhi\r\n")
        p = poplib.POP3("127.0.0.1", base + 110, timeout=TIMEOUT)
        p.user("u@init.test")
        p.pass_("u-pw")
        assert p.stat()[0] == 1
        _, lines, _ = p.retr(1)
        assert lines[-3:] == [b"Subject: init", b"", b"hi"]
        p.quit()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
