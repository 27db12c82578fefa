"""Durability over IMAP: SIGKILL ternd while 8 sessions APPEND, STORE and
UID EXPUNGE; after a restart every acknowledged change is there.

What is proved, for alice and bob (4 concurrent sessions each, sharing INBOX
and a folder "Work" they all CREATE at the start), after a SIGKILL that lands
while the sessions are still sending, and a restart:
  1. each folder keeps the UIDVALIDITY its APPENDUIDs reported;
  2. every APPEND that got OK [APPENDUID] is there under exactly that UID,
     byte-exact, with at least the flags it was appended with, plus \\Flagged
     when a UID STORE of it got OK -- unless its expunge had begun (STORE
     \\Deleted sent), when it may be gone;
  3. every message whose UID EXPUNGE got OK is gone;
  4. no UID is listed twice and no message (tag) is stored twice; messages
     never acknowledged may or may not be there, as in test_crash.py, but
     only whole;
  5. a new APPEND to each folder gets a UID above every UID seen before the
     kill and found after it (UIDs are never reused), under the same
     UIDVALIDITY;
and, before the kill, no command got anything but OK.
"""

import imaplib
import random
import re
import threading
import time

import pytest

from tern_harness import TIMEOUT, free_ports, make_message, wait_for_port

USERS = {"alice@example.test": "alice-pw", "bob@example.test": "bob-pw"}
PER_USER = 4
KILL_AFTER = 150            # acknowledged APPENDs in total
FOLDERS = ("INBOX", "Work")
FLAG_CHOICES = (None, "\\Seen", "$Crash", "\\Seen $Crash")
DEAD = (OSError, EOFError, imaplib.IMAP4.abort)     # the server went away


@pytest.fixture
def imap(tern_factory):
    port, = free_ports(1)
    tern = tern_factory(listen__imap=f"127.0.0.1:{port}")
    assert wait_for_port(port, tern.proc)
    yield tern, port
    if tern.running():
        assert tern.stop() == 0
    log = tern.log()
    assert "Sanitizer" not in log and "runtime error" not in log, log


def login(port, user):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    assert m.login(user, USERS[user])[0] == "OK"
    return m


def body_for(user, tag, n):
    return make_message(tag, f"Crash test {tag}\n" + f"{tag} line\n" * n
                        + f"END {tag}\n", to=user)


class Log:
    """What the server acknowledged, shared by all threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}          # tag -> body, for every APPEND begun
        self.appends = {}       # tag -> dict(user, folder, validity, uid, flags, body)
        self.flagged = set()    # tags whose UID STORE +FLAGS (\Flagged) got OK
        self.expunged = set()   # tags whose UID EXPUNGE got OK
        self.deleting = set()   # tags a STORE \Deleted was sent for: may be gone
        self.errors = []        # non-OK replies while the server was alive


def session(port, user, idx, log, stop):
    """One client: loops APPEND, sometimes STORE \\Flagged or expunge of one
    of its own acknowledged messages, until the server dies."""
    rnd = random.Random(idx)
    mine, selected, m = [], None, None

    def check(what, typ, data):
        if typ != "OK":
            with log.lock:
                log.errors.append((user, idx, what, typ, data))
        return typ == "OK"

    def select(folder):
        nonlocal selected
        if selected != folder:
            if check(f"SELECT {folder}", *m.select(folder)):
                selected = folder

    try:
        m = login(port, user)
        typ, data = m.create("Work")
        if typ != "OK" and not data[0].startswith(b"[ALREADYEXISTS]"):
            check("CREATE Work", typ, data)
        for n in range(1000):
            if stop.is_set():
                return
            tag = f"u{idx}n{n}"
            folder = rnd.choice(FOLDERS)
            flags = rnd.choice(FLAG_CHOICES)
            body = body_for(user, tag, rnd.randrange(1, 60))
            with log.lock:
                log.sent[tag] = body
            typ, data = m.append(folder, flags and f"({flags})", None, body)
            if not check(f"APPEND {tag}", typ, data):
                continue
            mt = re.match(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
            if not mt:
                check(f"APPENDUID {tag}", "no APPENDUID", data)
                continue
            with log.lock:
                log.appends[tag] = dict(
                    user=user, folder=folder, validity=int(mt.group(1)),
                    uid=int(mt.group(2)), body=body,
                    flags=set(flags.split()) if flags else set())
            mine.append(tag)
            r = rnd.random()
            if r < 0.4:
                continue
            tag = rnd.choice(mine)
            a = log.appends[tag]
            select(a["folder"])
            uid = str(a["uid"])
            if r < 0.8:
                if check(f"STORE {tag}", *m.uid("STORE", uid, "+FLAGS", "(\\Flagged)")):
                    with log.lock:
                        log.flagged.add(tag)
                continue
            with log.lock:
                log.deleting.add(tag)
            if (check(f"STORE \\Deleted {tag}", *m.uid("STORE", uid, "+FLAGS", "(\\Deleted)"))
                    and check(f"UID EXPUNGE {tag}", *m.uid("EXPUNGE", uid))):
                with log.lock:
                    log.expunged.add(tag)
                mine.remove(tag)
    except DEAD:
        return          # killed mid-command: its outcome is unknown
    finally:
        if m is not None:
            try:
                m.shutdown()
            except DEAD:
                pass


def folder_contents(m, folder):
    """(uidvalidity, uidnext, {uid: (flags, body)}, [uids in listing order])."""
    assert m.select(folder, readonly=True)[0] == "OK"
    validity = int(m.untagged_responses["UIDVALIDITY"][0])
    uidnext = int(m.untagged_responses["UIDNEXT"][0])
    flags, bodies, order = {}, {}, []
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS)")
    assert typ == "OK", data
    for line in data:
        if line is None:
            continue        # empty folder
        mt = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)", line)
        assert mt, line
        uid = int(mt.group(1) or mt.group(4))
        flags[uid] = set((mt.group(2) or mt.group(3) or b"").decode().split())
        order.append(uid)
    typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    assert typ == "OK", data
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            bodies[uid] = item[1]
    assert set(bodies) == set(flags), (sorted(bodies), sorted(flags))
    return validity, uidnext, {u: (flags[u], bodies[u]) for u in flags}, order


def test_sigkill_under_imap_load(imap):
    tern, port = imap
    log, stop = Log(), threading.Event()
    threads = [threading.Thread(target=session, daemon=True,
                                args=(port, user, i * len(USERS) + k, log, stop))
               for i in range(PER_USER) for k, user in enumerate(USERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(log.appends) < KILL_AFTER:
        assert any(t.is_alive() for t in threads), log.errors
        time.sleep(0.005)
    alive = sum(t.is_alive() for t in threads)
    tern.kill()         # SIGKILL, mid-stream
    stop.set()
    for t in threads:
        t.join(timeout=TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads)
    assert alive == len(threads), "sessions ended before the kill"
    with log.lock:
        appends, flagged, expunged = dict(log.appends), set(log.flagged), set(log.expunged)
        deleting = set(log.deleting)
        assert not log.errors, log.errors
    assert len(appends) >= KILL_AFTER, f"only {len(appends)} APPENDs acknowledged"

    tern.start()
    assert wait_for_port(port, tern.proc)
    found_tags = {}
    for user in USERS:
        m = login(port, user)
        for folder in FOLDERS:
            want = {t: a for t, a in appends.items()
                    if a["user"] == user and a["folder"] == folder}
            validity, uidnext, have, order = folder_contents(m, folder)
            where = f"{user} {folder}"
            assert {a["validity"] for a in want.values()} <= {validity}, where
            assert len(order) == len(set(order)), f"{where}: UID listed twice {order}"
            for uid, (_, body) in have.items():
                tag = re.search(rb"^Subject: (u\d+n\d+)\r$", body, re.M).group(1).decode()
                assert tag not in found_tags, \
                    f"{tag} stored twice: {found_tags[tag]} and {where} UID {uid}"
                found_tags[tag] = f"{where} UID {uid}"
                assert body == log.sent[tag], f"{where} UID {uid}: partial {tag}"
            for tag, a in want.items():
                if tag in expunged:
                    assert a["uid"] not in have, f"{where}: expunged {tag} UID {a['uid']} is back"
                    continue
                if a["uid"] not in have and tag in deleting:
                    continue    # its UID EXPUNGE was in flight at the kill
                assert a["uid"] in have, f"{where}: acknowledged {tag} UID {a['uid']} lost"
                flags, body = have[a["uid"]]
                assert body == a["body"], f"{where}: UID {a['uid']} is not {tag}"
                need = a["flags"] | ({"\\Flagged"} if tag in flagged else set())
                assert need <= flags, f"{where}: {tag} UID {a['uid']} has {flags}, needs {need}"
            # UIDs are never reused: a new APPEND goes above all seen.
            seen = max([a["uid"] for a in want.values()] + list(have) + [0])
            assert uidnext > seen, f"{where}: UIDNEXT {uidnext} <= {seen}"
            typ, data = m.append(folder, None, None, body_for(user, "after", 1))
            assert typ == "OK", data
            v, uid = map(int, re.match(rb"\[APPENDUID (\d+) (\d+)\]", data[0]).groups())
            assert v == validity and uid > seen, f"{where}: new UID {uid} <= {seen}"
        m.logout()
    print(f"acknowledged {len(appends)} APPENDs, {len(flagged)} \\Flagged, "
          f"{len(expunged)} expunges; {len(found_tags)} messages after restart")
