"""POP3 (RFC 1939, 2449, 3206, 5034) with poplib, raw sockets and curl."""

import poplib
import re
import smtplib
import socket
import subprocess
import time

import pytest

from tern_harness import TIMEOUT, Raw, make_message, plain_b64, run, split_added

DEMO = "demo@example.test"
PW = "pw"
SENDER = "sender@remote.test"


def deliver(tern, n, rcpt=DEMO):
    """Sends n messages to rcpt; returns them in wire form, in order."""
    msgs = []
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for i in range(n):
            body = f"Message {i}.\n.leading dot {i}\nline three\nline four\n"
            m = make_message(f"pop test {i}", body, to=rcpt)
            assert s.sendmail(SENDER, [rcpt], m) == {}
            msgs.append(m)
        s.quit()
    assert len(tern.message_files(rcpt)) == n
    return msgs


def login(tern, user=DEMO, pw=PW):
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    p.user(user)
    p.pass_(pw)
    return p


def joined(lines):
    return b"\r\n".join(lines) + b"\r\n"


def uidl_map(p):
    _, lines, _ = p.uidl()
    out = {}
    for line in lines:
        num, uid = line.split(b" ", 1)
        out[int(num)] = uid
    return out


def test_greeting_and_capa(tern):
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    try:
        assert p.getwelcome().startswith(b"+OK")
        caps = p.capa()
        # RESP-CODES (RFC 2449) and AUTH-RESP-CODE (RFC 3206): the server
        # answers with [IN-USE] and [AUTH].
        for c in ("USER", "UIDL", "TOP", "RESP-CODES", "AUTH-RESP-CODE"):
            assert c in caps, f"{c} missing from CAPA {caps}"
        assert "SASL" in caps and "PLAIN" in [m.upper() for m in caps["SASL"]]
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()


def test_all_commands(tern):
    msgs = deliver(tern, 3)
    stored = tern.messages(DEMO)
    sizes = [len(d.replace(b"\n", b"\r\n")) for d in stored]
    p = login(tern)
    try:
        count, octets = p.stat()
        assert (count, octets) == (3, sum(sizes))
        _, lines, _ = p.list()
        assert lines == [f"{i + 1} {sizes[i]}".encode() for i in range(3)]
        assert p.list(2) == f"+OK 2 {sizes[1]}".encode()
        uids = uidl_map(p)
        assert sorted(uids) == [1, 2, 3] and len(set(uids.values())) == 3
        for uid in uids.values():
            # RFC 1939 §7: 1 to 70 characters in 0x21..0x7E.
            assert re.fullmatch(rb"[\x21-\x7e]{1,70}", uid)
        assert p.uidl(3).split() == [b"+OK", b"3", uids[3]]

        for i in range(3):
            _, lines, _ = p.retr(i + 1)
            got = joined(lines)
            assert got == stored[i].replace(b"\n", b"\r\n")
            assert len(got) == sizes[i]
            assert split_added(got, b"\r\n")[1] == msgs[i]

        # TOP: the header, the empty line, then n lines of body.
        _, lines, _ = p.top(1, 0)
        head = stored[0].split(b"\n\n", 1)[0].split(b"\n")
        assert lines == head + [b""]
        _, lines, _ = p.top(1, 2)
        assert lines == head + [b"", b"Message 0.", b".leading dot 0"]
        _, lines, _ = p.top(1, 100)
        assert joined(lines) == stored[0].replace(b"\n", b"\r\n")

        assert p.noop().startswith(b"+OK")
        assert p.dele(2).startswith(b"+OK")
        assert p.stat() == (2, sizes[0] + sizes[2])
        with pytest.raises(poplib.error_proto):
            p.retr(2)
        with pytest.raises(poplib.error_proto):
            p.dele(2)
        with pytest.raises(poplib.error_proto):
            p.list(2)
        _, lines, _ = p.list()
        assert lines == [f"1 {sizes[0]}".encode(), f"3 {sizes[2]}".encode()]
        assert p.rset().startswith(b"+OK")
        assert p.stat() == (3, sum(sizes))
        assert p.dele(1).startswith(b"+OK")
        with pytest.raises(poplib.error_proto):
            p.retr(4)
        with pytest.raises(poplib.error_proto):
            p.retr(0)
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    left = tern.messages(DEMO)
    assert left == stored[1:]
    p = login(tern)
    assert p.stat()[0] == 2
    p.quit()


def test_commands_need_login(tern_factory):
    tern = tern_factory(bad_command_limit="20")
    with Raw(tern.pop3_port) as r:
        assert r.pop_line().startswith(b"+OK")
        for c in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL"):
            assert r.pop_cmd(c).startswith(b"-ERR"), c
        assert r.pop_cmd("PASS pw").startswith(b"-ERR")   # PASS without USER
        assert r.pop_cmd("FROB").startswith(b"-ERR")
        assert r.pop_cmd("QUIT").startswith(b"+OK")
        assert r.eof()


def test_bad_commands_in_a_row(tern):
    # bad_command_limit = 5 in the harness config: an -ERR each, then the
    # server hangs up.
    with Raw(tern.pop3_port) as r:
        assert r.pop_line().startswith(b"+OK")
        for i in range(7):
            try:
                r.send("FROB\r\n")
            except OSError:
                break
            line = r.readline()
            if not line:
                break
            assert line.startswith(b"-ERR"), line
        else:
            raise AssertionError("still talking after 7 bad commands")
        assert i >= 4, f"closed after only {i} bad commands"
        assert r.eof()


def test_lowercase_commands(tern):
    deliver(tern, 1)
    with Raw(tern.pop3_port) as r:
        assert r.pop_line().startswith(b"+OK")
        assert r.pop_cmd(f"user {DEMO}").startswith(b"+OK")
        assert r.pop_cmd(f"pass {PW}").startswith(b"+OK")
        assert r.pop_cmd("stat").startswith(b"+OK 1 ")
        assert r.pop_cmd("quit").startswith(b"+OK")


def test_empty_mailbox(tern):
    p = login(tern)
    assert p.stat() == (0, 0)
    assert p.list()[1] == []
    assert p.uidl()[1] == []
    with pytest.raises(poplib.error_proto):
        p.retr(1)
    p.quit()


def test_auth_plain_initial_response(tern):
    deliver(tern, 1)
    with Raw(tern.pop3_port) as r:
        assert r.pop_line().startswith(b"+OK")
        assert r.pop_cmd("AUTH PLAIN " + plain_b64(DEMO, PW)).startswith(b"+OK")
        assert r.pop_cmd("STAT").startswith(b"+OK 1 ")
        assert r.pop_cmd("QUIT").startswith(b"+OK")


def test_auth_plain_continuation(tern):
    with Raw(tern.pop3_port) as r:
        assert r.pop_line().startswith(b"+OK")
        assert r.pop_cmd("AUTH PLAIN").startswith(b"+")
        assert r.pop_cmd(plain_b64(DEMO, PW)).startswith(b"+OK")
        assert r.pop_cmd("STAT") == b"+OK 0 0"


def test_auth_plain_with_authzid_self(tern):
    with Raw(tern.pop3_port) as r:
        assert r.pop_line().startswith(b"+OK")
        line = r.pop_cmd("AUTH PLAIN " + plain_b64(DEMO, PW, authzid=DEMO))
        assert line.startswith(b"+OK")


def test_auth_plain_failures(tern):
    with Raw(tern.pop3_port) as r:
        assert r.pop_line().startswith(b"+OK")
        # Client cancels (RFC 5034 §4).
        assert r.pop_cmd("AUTH PLAIN").startswith(b"+")
        assert r.pop_cmd("*").startswith(b"-ERR")
        # Not base64.
        assert r.pop_cmd("AUTH PLAIN !!!notbase64").startswith(b"-ERR")
        # Wrong password.
        line = r.pop_cmd("AUTH PLAIN " + plain_b64(DEMO, "wrong"))
        assert line.startswith(b"-ERR [AUTH]")
        # Unknown mechanism.
        assert r.pop_cmd("AUTH FROBNICATE").startswith(b"-ERR")
        # The session still works.
        assert r.pop_cmd("AUTH PLAIN " + plain_b64(DEMO, PW)).startswith(b"+OK")


def test_wrong_password(tern):
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    try:
        p.user(DEMO)
        with pytest.raises(poplib.error_proto) as e:
            p.pass_("wrong")
        assert e.value.args[0].startswith(b"-ERR [AUTH]")
    finally:
        p.close()


def test_unknown_user_same_reply(tern):
    with Raw(tern.pop3_port) as r:
        assert r.pop_line().startswith(b"+OK")
        # USER must not reveal whether the user exists.
        assert r.pop_cmd("USER nobody@example.test").startswith(b"+OK")
        assert r.pop_cmd("PASS pw").startswith(b"-ERR [AUTH]")
        assert r.pop_cmd("USER demo").startswith(b"+OK")
        # A bare local part gets the default domain.
        assert r.pop_cmd("PASS pw").startswith(b"+OK")


def test_in_use(tern):
    deliver(tern, 1)
    p1 = login(tern)
    try:
        p2 = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
        try:
            p2.user(DEMO)
            with pytest.raises(poplib.error_proto) as e:
                p2.pass_(PW)
            assert e.value.args[0].startswith(b"-ERR [IN-USE]")
        finally:
            p2.close()
        assert p1.stat()[0] == 1
        p1.quit()
    finally:
        p1.close()
    # Once the first session is over, the maildrop is free again.
    p3 = login(tern)
    assert p3.stat()[0] == 1
    p3.quit()


def test_in_use_released_on_drop(tern):
    p1 = login(tern)
    p1.close()          # dropped, no QUIT
    # The server notices the close; allow it a moment by retrying.
    for _ in range(50):
        try:
            p = login(tern)
            break
        except poplib.error_proto as e:
            assert e.args[0].startswith(b"-ERR [IN-USE]")
            time.sleep(0.1)
    else:
        raise AssertionError("maildrop lock not released after a dropped session")
    p.quit()


def test_dele_only_at_quit(tern):
    deliver(tern, 3)
    before = tern.messages(DEMO)
    with Raw(tern.pop3_port) as r:
        assert r.pop_line().startswith(b"+OK")
        assert r.pop_cmd(f"USER {DEMO}").startswith(b"+OK")
        assert r.pop_cmd(f"PASS {PW}").startswith(b"+OK")
        for n in (1, 2, 3):
            assert r.pop_cmd(f"DELE {n}").startswith(b"+OK")
        assert r.pop_cmd("STAT") == b"+OK 0 0"
    # Dropped without QUIT: nothing deleted (RFC 1939 §6).
    for _ in range(50):
        try:
            p = login(tern)
            break
        except poplib.error_proto:
            time.sleep(0.1)
    else:
        raise AssertionError("could not log in again")
    assert p.stat()[0] == 3
    assert tern.messages(DEMO) == before
    p.dele(2)
    p.quit()
    after = tern.messages(DEMO)
    assert after == [before[0], before[2]]


def test_uidl_stable_across_sessions_and_restart(tern):
    deliver(tern, 3)
    p = login(tern)
    first = uidl_map(p)
    p.quit()
    p = login(tern)
    assert uidl_map(p) == first
    p.retr(1)     # reading does not change the UID (new/ -> cur/ may happen)
    p.quit()
    p = login(tern)
    assert uidl_map(p) == first
    p.dele(1)
    p.quit()
    tern.restart()
    p = login(tern)
    after = uidl_map(p)
    p.quit()
    assert after == {1: first[2], 2: first[3]}


def test_pipelined_commands(tern):
    deliver(tern, 2)
    with Raw(tern.pop3_port) as r:
        assert r.pop_line().startswith(b"+OK")
        r.send(f"USER {DEMO}\r\nPASS {PW}\r\nSTAT\r\nUIDL\r\nNOOP\r\n")
        assert r.pop_line().startswith(b"+OK")
        assert r.pop_line().startswith(b"+OK")
        assert r.pop_line().startswith(b"+OK 2 ")
        assert r.pop_line().startswith(b"+OK")
        assert len(r.pop_multi()) == 2
        assert r.pop_line().startswith(b"+OK")


def test_retr_dot_stuffing_raw(tern):
    """On the wire, lines starting with '.' are stuffed."""
    m = make_message("dots", b".one\r\n..two\r\n.\r\nend\r\n", to=DEMO)
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        s.sendmail(SENDER, [DEMO], m)
    with Raw(tern.pop3_port) as r:
        r.pop_line()
        r.pop_cmd(f"USER {DEMO}")
        assert r.pop_cmd(f"PASS {PW}").startswith(b"+OK")
        r.send("RETR 1\r\n")
        assert r.pop_line().startswith(b"+OK")
        raw = []
        while True:
            line = r.pop_line()
            if line == b".":
                break
            raw.append(line)
        assert raw[-4:] == [b"..one", b"...two", b"..", b"end"]


# --- curl -----------------------------------------------------------------------

def test_curl_retr_and_list(tern):
    deliver(tern, 2)
    stored = tern.messages(DEMO)
    url = f"pop3://127.0.0.1:{tern.pop3_port}"
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "10", "--user",
                          f"{DEMO}:{PW}", f"{url}/1"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == stored[0].replace(b"\n", b"\r\n")
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "10", "--user",
                          f"{DEMO}:{PW}", f"{url}/"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    sizes = [len(d.replace(b"\n", b"\r\n")) for d in stored]
    assert out.stdout == f"1 {sizes[0]}\r\n2 {sizes[1]}\r\n".encode()


def test_curl_wrong_password(tern):
    r = run(["curl", "-s", "--max-time", "10", "--user", f"{DEMO}:nope",
             f"pop3://127.0.0.1:{tern.pop3_port}/"])
    assert r.returncode == 67       # CURLE_LOGIN_DENIED


def test_curl_sasl_plain(tern):
    """curl picks AUTH PLAIN from the SASL capability when told to."""
    deliver(tern, 1)
    stored = tern.messages(DEMO)
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "10", "--login-options",
                          "AUTH=PLAIN", "--user", f"{DEMO}:{PW}",
                          f"pop3://127.0.0.1:{tern.pop3_port}/1"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == stored[0].replace(b"\n", b"\r\n")


def test_input_after_quit_loses_no_reply(tern):
    """A client that sends more behind QUIT while a large RETR is still
    queued gets the whole message and the +OK of QUIT: ternd shuts its
    side and reads the rest before closing (a close with unread input
    would make the kernel reset the connection and drop what it had not
    sent yet)."""
    body = "".join(f"line {i:06d} of a long message\n" for i in range(20000))
    m = make_message("big", body)
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        assert s.sendmail(SENDER, [DEMO], m) == {}
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", tern.pop3_port))
    sock.sendall(f"USER {DEMO}\r\nPASS {PW}\r\nRETR 1\r\nQUIT\r\n".encode())
    time.sleep(0.3)
    # Arrives while RETR streams: still unread when the session ends.
    sock.sendall(b"NOOP\r\n" * 10)
    time.sleep(0.3)
    got = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    sock.close()
    wire = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    stuffed = re.sub(rb"(?m)^\.", b"..", wire)
    assert got.endswith(b"\r\n" + stuffed + b".\r\n+OK Bye, 0 messages deleted\r\n"), \
        got[-200:]
