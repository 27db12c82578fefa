"""Password checks on the work pool (auth/userdb_async.c): many logins at
once over IMAP, POP3 and SMTP AUTH each get their own right answer, and a
client that goes away while its password is being checked leaves a server
that still serves everyone and stops clean (ASan, LeakSanitizer)."""

import base64
import imaplib
import poplib
import smtplib
import socket
import struct
import threading

import pytest

from tern_harness import TIMEOUT, Raw, free_ports, plain_b64

NUSERS = 12
USERS = {f"u{i}@example.test": f"pw{i}" for i in range(NUSERS)}


@pytest.fixture
def srv(tern_factory):
    """(tern, imap port): failures answered at once and never blocked, so
    that many wrong passwords in parallel do not slow or lock the test."""
    port, = free_ports(1)
    tern = tern_factory(users=USERS, listen__imap=f"127.0.0.1:{port}",
                        auth_fail_delay_ms="0", auth_block_after="0",
                        connections_per_client="100")
    return tern, port


def user(i):
    return f"u{i}@example.test"


def password(i, right):
    return f"pw{i}" if right else f"wrong{i}"


# --- one login per protocol and style, returning what the client saw ---------

def imap_login(port, i, right, style):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    try:
        if style == "LOGIN":
            typ, data = m.login(user(i), password(i, right))
        else:
            typ, data = m.authenticate(
                "PLAIN", lambda _: f"\0{user(i)}\0{password(i, right)}".encode())
        return typ, data[-1]
    except imaplib.IMAP4.error as e:
        text = e.args[0]
        return "NO", text if isinstance(text, bytes) else text.encode()
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.abort, OSError):
            pass


def pop3_login(port, i, right, style):
    if style == "USER":
        p = poplib.POP3("127.0.0.1", port, timeout=TIMEOUT)
        try:
            p.user(user(i))
            return p.pass_(password(i, right))
        except poplib.error_proto as e:
            return e.args[0]
        finally:
            try:
                p.quit()
            except (poplib.error_proto, OSError):
                pass
    with Raw(port) as r:
        r.pop_line()
        line = r.pop_cmd(f"AUTH PLAIN {plain_b64(user(i), password(i, right))}")
        if line.startswith(b"+OK"):
            assert r.pop_cmd("QUIT").startswith(b"+OK")
        return line


def smtp_login(port, i, right, style):
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as s:
        s.ehlo("client.test")
        # smtplib's login() would try the next mechanism after a 535.
        s.user, s.password = user(i), password(i, right)
        try:
            code, _ = s.auth(style, s.auth_plain if style == "PLAIN" else s.auth_login)
            return code
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code


def test_parallel_logins_all_protocols(srv):
    """36 logins started together (IMAP LOGIN and AUTHENTICATE, POP3
    USER/PASS and AUTH, SMTP AUTH PLAIN and LOGIN), every other one with a
    wrong password: each gets exactly its own answer."""
    tern, imap_port = srv
    jobs = []
    for i in range(NUSERS):
        right = i % 2 == 0
        jobs.append(("imap", i, right, "LOGIN" if i % 4 < 2 else "PLAIN"))
        jobs.append(("pop3", i, right, "USER" if i % 4 < 2 else "AUTH"))
        jobs.append(("smtp", i, right, "PLAIN" if i % 4 < 2 else "LOGIN"))
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(k):
        proto, i, right, style = jobs[k]
        barrier.wait(timeout=TIMEOUT)
        try:
            if proto == "imap":
                results[k] = imap_login(imap_port, i, right, style)
            elif proto == "pop3":
                results[k] = pop3_login(tern.pop3_port, i, right, style)
            else:
                results[k] = smtp_login(tern.smtp_port, i, right, style)
        except Exception as e:  # reported below with the job
            results[k] = e

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 3)
        assert not t.is_alive()

    for (proto, i, right, style), got in zip(jobs, results):
        what = (proto, i, right, style, got)
        if proto == "imap":
            if right:
                assert got[0] == "OK" and got[1].endswith(b"Logged in"), what
            else:
                assert got == ("NO", b"[AUTHENTICATIONFAILED] Authentication failed"), what
        elif proto == "pop3":
            if right:
                assert got == b"+OK Logged in, 0 messages", what
            else:
                assert got == b"-ERR [AUTH] Authentication failed", what
        else:
            assert got == (235 if right else 535), what

    log = tern.log()
    for i in range(0, NUSERS, 2):
        assert log.count(f": login user={user(i)} ") == 2  # IMAP and POP3
        assert log.count(f": auth ok user=<{user(i)}> ") == 1  # SMTP
    assert log.count("auth failed: proto=imap ") == NUSERS // 2
    assert log.count("auth failed: proto=pop3 ") == NUSERS // 2
    assert log.count("auth failed: proto=smtp ") == NUSERS // 2
    assert tern.stop() == 0
    log = tern.log()
    assert "Sanitizer" not in log and "runtime error" not in log, log


def raw_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    f = s.makefile("rb")
    return s, f


def hang_up(sock, reset):
    """Closes at once; reset=True sends a RST instead of a FIN."""
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def start_and_leave(tern, imap_port, i, right, reset):
    """One login per protocol style, the connection closed right after the
    credentials are sent (before any answer)."""
    pw = password(i, right)
    plain = plain_b64(user(i), pw)
    # IMAP LOGIN and AUTHENTICATE PLAIN (SASL-IR).
    for line in (f"a LOGIN {user(i)} {pw}\r\n", f"a AUTHENTICATE PLAIN {plain}\r\n"):
        s, f = raw_connect(imap_port)
        assert f.readline().startswith(b"* OK")
        s.sendall(line.encode())
        f.close()
        hang_up(s, reset)
    # POP3 USER/PASS and AUTH PLAIN.
    for lines in (f"USER {user(i)}\r\nPASS {pw}\r\n", f"AUTH PLAIN {plain}\r\n"):
        s, f = raw_connect(tern.pop3_port)
        assert f.readline().startswith(b"+OK")
        s.sendall(lines.encode())
        f.close()
        hang_up(s, reset)
    # SMTP AUTH PLAIN, and AUTH LOGIN answered up to the password.
    login_lines = ["AUTH LOGIN", base64.b64encode(user(i).encode()).decode(),
                   base64.b64encode(pw.encode()).decode()]
    for cmds in ([f"AUTH PLAIN {plain}"], login_lines):
        r = Raw(tern.smtp_port)
        assert r.smtp_reply()[0] == 220
        assert r.cmd("EHLO client.test")[0] == 250
        for c in cmds[:-1]:
            assert r.cmd(c)[0] == 334
        r.send(cmds[-1] + "\r\n")
        hang_up(r.sock, reset)


def test_disconnect_during_check(srv):
    """Clients that hang up (FIN or RST) right after sending a password,
    right or wrong, on every protocol: the server goes on serving others,
    and stops clean."""
    tern, imap_port = srv
    for k in range(8):
        start_and_leave(tern, imap_port, k % 4, right=k % 2 == 0, reset=k >= 4)

    # Others are still served, on every protocol.
    assert imap_login(imap_port, 10, True, "LOGIN")[0] == "OK"
    assert imap_login(imap_port, 10, False, "PLAIN")[0] == "NO"
    assert pop3_login(tern.pop3_port, 10, True, "USER") == b"+OK Logged in, 0 messages"
    assert pop3_login(tern.pop3_port, 8, True, "AUTH") == b"+OK Logged in, 0 messages"
    assert smtp_login(tern.smtp_port, 10, True, "PLAIN") == 235
    assert smtp_login(tern.smtp_port, 10, False, "LOGIN") == 535
    assert tern.running()
    assert tern.stop() == 0
    log = tern.log()
    assert "Sanitizer" not in log and "runtime error" not in log, log


def test_stop_during_checks(srv):
    """SIGTERM while password checks are under way: the sessions close
    (IMAP and SMTP at once, whatever the check), the checks' results find
    them gone, and ternd exits 0 with nothing leaked."""
    tern, imap_port = srv
    socks = []
    for i in range(6):
        s, f = raw_connect(imap_port)
        assert f.readline().startswith(b"* OK")
        s.sendall(f"a LOGIN {user(i)} {password(i, i % 2 == 0)}\r\n".encode())
        socks.append((s, f))
        r = Raw(tern.smtp_port)
        assert r.smtp_reply()[0] == 220
        assert r.cmd("EHLO client.test")[0] == 250
        r.send(f"AUTH PLAIN {plain_b64(user(i), password(i, i % 2 == 1))}\r\n")
        socks.append((r.sock, None))
    assert tern.stop() == 0
    for s, f in socks:
        if f is not None:
            f.close()
        s.close()
    log = tern.log()
    assert "Sanitizer" not in log and "runtime error" not in log, log
