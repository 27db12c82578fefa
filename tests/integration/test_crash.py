"""Durability: SIGKILL ternd under load; every acknowledged message survives once."""

import re
import smtplib
import threading
import time

from tern_harness import TIMEOUT, check_maildir_name, make_message, split_added

TOTAL = 500
THREADS = 20
KILL_AFTER = 250
RCPTS = ["alice@example.test", "bob@example.test"]
SENDER = "sender@remote.test"
TRAILER = "END-OF-MESSAGE"


def body_for(tag):
    return (f"Durability test {tag}\n" + f"{tag} padding line\n" * 30
            + f"{TRAILER} {tag}\n")


def sender_thread(port, tags, acked, lock, stop):
    """Sends its share of the messages over one session (reconnecting if the
    server dropped it), recording every tag whose DATA got 250."""
    s = None
    try:
        for tag in tags:
            if stop.is_set():
                return
            rcpt = RCPTS[int(tag[1:]) % 2]
            msg = make_message(tag, body_for(tag), to=rcpt)
            try:
                if s is None:
                    s = smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT)
                s.sendmail(SENDER, [rcpt], msg)
            except (OSError, smtplib.SMTPException):
                return      # the server is gone: unknown outcome, not acked
            with lock:
                acked[tag] = rcpt
    finally:
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


def scan(tern):
    """tag -> number of complete copies in new/ and cur/ of its recipient."""
    seen = {}
    for rcpt in RCPTS:
        for path in tern.message_files(rcpt):
            data = path.read_bytes()
            check_maildir_name(path, data)
            _, rest = split_added(data)
            m = re.search(rb"^Subject: (m\d+)$", rest, re.M)
            assert m, f"no subject in {path}"
            tag = m.group(1).decode()
            # A complete file: byte-exact with what was sent.
            assert rest == make_message(tag, body_for(tag), to=rcpt).replace(
                b"\r\n", b"\n"), f"partial or altered file {path}"
            seen[tag] = seen.get(tag, 0) + 1
    return seen


def test_sigkill_under_load(tern):
    tags = [f"m{i}" for i in range(TOTAL)]
    acked, lock, stop = {}, threading.Lock(), threading.Event()
    threads = [threading.Thread(target=sender_thread,
                                args=(tern.smtp_port, tags[i::THREADS], acked,
                                      lock, stop), daemon=True)
               for i in range(THREADS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= KILL_AFTER:
                break
        if not any(t.is_alive() for t in threads):
            break
        time.sleep(0.005)
    tern.kill()         # SIGKILL, mid-stream
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    with lock:
        acked_now = dict(acked)
    assert len(acked_now) >= KILL_AFTER, \
        f"only {len(acked_now)} acknowledged before the deadline"

    tern.start()
    seen = scan(tern)
    print(f"acknowledged {len(acked_now)} of {TOTAL}; {len(seen)} in the Maildirs")
    missing = sorted(t for t in acked_now if seen.get(t, 0) == 0)
    duplicated = sorted(t for t, n in seen.items() if n > 1)
    assert not missing, f"{len(missing)} acknowledged messages lost: {missing[:10]}"
    assert not duplicated, f"duplicates: {duplicated[:10]}"
    # Unacknowledged messages may or may not be there, but only whole.

    # The restarted server serves the mailboxes and accepts more mail.
    import poplib
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    p.user("alice@example.test")
    p.pass_("alice-pw")
    count, _ = p.stat()
    p.quit()
    assert count == sum(1 for t in seen if int(t[1:]) % 2 == 0)
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        s.sendmail(SENDER, ["bob@example.test"],
                   make_message("m999999", body_for("m999999"), to="bob@example.test"))
    assert scan(tern).get("m999999") == 1
