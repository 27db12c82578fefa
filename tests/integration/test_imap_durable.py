"""IMAP commands make their Maildir changes durable before the tagged OK,
and the fsyncs that do it run on worker threads, not on the event loop.

What is proved, for a real ternd under `strace -f`, driven over a socket:
  1. STORE +FLAGS (\\Seen): the rename of the file in cur/, then one fsync of
     cur/ on a thread other than the loop thread, then the tagged OK;
  2. EXPUNGE: the unlink of the \\Deleted file, then one fsync of cur/ on a
     worker thread, then the tagged OK;
  3. APPEND: the fsync of the file in tmp/ on a worker thread, then its
     rename into cur/, then an fsync of cur/ on a worker thread, then
     OK [APPENDUID];
  4. a STORE that changes nothing does no fsync at all before its OK;
  5. MOVE: the copy's rename into the target's cur/ and the source's
     unlink, then fsyncs of both cur/ directories on a worker thread,
     then the tagged OK;
  6. new mail: the sync that gives it its UID renames it from new/ to
     cur/ without an fsync on the loop thread; a worker thread fsyncs
     cur/ and new/ afterwards (not waited for: the message was durable
     in new/ already).

Why strace: durability and the thread a syscall runs on cannot be seen from
a client (the files look the same whether cur/ was fsynced or not). strace
-f logs every traced syscall with its thread id, in an order that respects
causality (a worker's fsync has returned before it wakes the loop, which then
writes the OK), so the order of lines in the log is the order to check.
Each reply is found in the log by its content (our own tags, -s large
enough), on the fd of the IMAP connection (-yy prints TCP:[local->peer]).
"""

import os
import re
import shutil
import signal
import smtplib
import subprocess
import time
from collections import namedtuple

import pytest

from tern_harness import TIMEOUT, Raw, free_ports, make_message

DEMO = "demo@example.test"
SYSCALLS = ("fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,"
            "write,writev,sendto,sendmsg")
SYNCS = ("fsync", "fdatasync")
RENAMES = ("rename", "renameat", "renameat2")
UNLINKS = ("unlink", "unlinkat")
WRITES = ("write", "writev", "sendto", "sendmsg")


# --- the strace log ------------------------------------------------------

# start/end: line numbers of the call and of its return (they differ when
# strace splits the call into "<unfinished ...>" and "<... resumed>").
Event = namedtuple("Event", "start end pid name args ret")

LINE = re.compile(r"^(\d+)\s+\d\d:\d\d:\d\d\.\d+\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")


def parse(text):
    """Events of a `strace -f -tt` log, in the order they returned."""
    events, pending = [], {}
    for i, line in enumerate(text.split("\n")[:-1]):   # complete lines only
        m = LINE.match(line)
        if not m:
            continue
        pid, rest = int(m.group(1)), m.group(2)
        start = i
        if rest.endswith("<unfinished ...>"):
            pending[pid] = (i, rest[:-len("<unfinished ...>")].rstrip())
            continue
        r = RESUMED.match(rest)
        if r:
            if pid not in pending:
                continue
            start, head = pending.pop(pid)
            rest = head + r.group(2)
        c = CALL.match(rest)
        if c:
            events.append(Event(start, i, pid, c.group(1), c.group(2),
                                c.group(3)))
    return events


def fd_path(ev):
    """The path -y prints for the first argument (an fd)."""
    m = re.match(r"\d+<(.*?)>", ev.args)
    return m.group(1) if m else None


def strings(ev):
    """The quoted arguments: (from, to) of a rename, (path,) of an unlink."""
    return [s.encode().decode("unicode_escape")
            for s in re.findall(r'"((?:[^"\\]|\\.)*)"', ev.args)]


def syncs(events, path=None):
    return [e for e in events if e.name in SYNCS and e.ret.startswith("0")
            and (path is None or fd_path(e) == str(path))]


def describe(events):
    return "\n".join(f"  [{e.start}-{e.end}] {e.pid} {e.name}({e.args[:160]})"
                     for e in events)


class Trace:
    """The log of one traced ternd whose IMAP port is port."""

    def __init__(self, path, port):
        self.path, self.port = path, port

    def events(self):
        try:
            return parse(self.path.read_text(errors="replace"))
        except FileNotFoundError:
            return []

    def ok_write(self, events, tag):
        """The write of "<tag> OK" to the IMAP connection, or None."""
        sock = f"<TCP:[127.0.0.1:{self.port}->"
        want = re.compile(r'(?:"|\\n)' + re.escape(tag) + r" OK ")
        for e in events:
            if e.name in WRITES and sock in e.args and want.search(e.args):
                return e
        return None

    def window(self, prev_tag, tag):
        """(events after prev_tag's OK up to tag's OK, tag's OK write),
        polling until that OK is in the log (strace writes as it goes)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            events = self.events()
            prev = self.ok_write(events, prev_tag)
            ok = self.ok_write(events, tag)
            if prev and ok:
                return [e for e in events
                        if e.start > prev.end and e.end < ok.start], ok
            assert time.monotonic() < deadline, \
                f"no write of '{tag} OK' in {self.path}"
            time.sleep(0.02)


def assert_durable_before_ok(events, change, cur, ok):
    """change (a rename or unlink in cur/) returned, then exactly one fsync
    of cur/ ran on a thread that is not the one writing OK (the loop), and
    returned before that write; the loop thread did no sync at all."""
    on_loop = [e for e in syncs(events) if e.pid == ok.pid]
    assert not on_loop, "sync on the loop thread:\n" + describe(on_loop)
    cur_syncs = syncs(events, cur)
    assert len(cur_syncs) == 1, \
        f"want one fsync of {cur}:\n" + describe(events)
    fs = cur_syncs[0]
    assert change.end < fs.start, "cur/ fsynced before the change:\n" + \
        describe([change, fs])
    assert fs.end < ok.start and fs.pid != ok.pid, describe([fs, ok])


def assert_append_durable(events, maildir, uid, ok):
    """The message file was fsynced in tmp/ on a worker thread, then renamed
    into cur/ under its UID, then cur/ was fsynced on a worker thread, then
    OK was written."""
    tmp, cur = maildir / "tmp", maildir / "cur"
    tmp_syncs = [e for e in syncs(events)
                 if (fd_path(e) or "").startswith(f"{tmp}/")]
    assert len(tmp_syncs) == 1, describe(events)
    tsync = tmp_syncs[0]
    assert tsync.pid != ok.pid, "tmp/ file fsynced on the loop thread"
    stem = os.path.basename(fd_path(tsync)).split(",")[0]
    into_cur = [e for e in events if e.name in RENAMES
                and os.path.dirname(strings(e)[0]) == str(tmp)
                and os.path.dirname(strings(e)[1]) == str(cur)
                and os.path.basename(strings(e)[1]).startswith(stem)]
    assert len(into_cur) == 1, f"no rename of {stem} into cur/:\n" + \
        describe(events)
    ren = into_cur[0]
    assert f",U={uid}:" in strings(ren)[1]
    assert tsync.end < ren.start, describe([tsync, ren])
    after = [e for e in syncs(events, cur) if e.start > ren.end]
    assert after and after[0].end < ok.start, \
        "no fsync of cur/ between the rename and the OK:\n" + describe(events)
    assert after[0].pid != ok.pid, "cur/ fsynced on the loop thread"


# --- fixtures ------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def strace_works():
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (scripts/deps.sh installs it)")
    r = subprocess.run(["strace", "-f", "-o", os.devnull, "true"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    if r.returncode != 0:
        pytest.skip("strace cannot trace here (ptrace not permitted, e.g. a "
                    "container without CAP_SYS_PTRACE): " + r.stderr.strip())


class Session:
    """A raw IMAP connection with our own tags, and the server's trace."""

    def __init__(self, port, trace):
        self.r, self.trace = Raw(port), trace
        assert self.r.readline().startswith(b"* OK")

    def cmd(self, tag, line):
        """Sends "<tag> <line>"; the reply lines, the last a tagged OK."""
        if isinstance(line, str):
            line = line.encode()
        self.r.send(tag.encode() + b" " + line + b"\r\n")
        lines = []
        while not lines or not lines[-1].startswith(tag.encode() + b" "):
            lines.append(self.r.readline())
            assert lines[-1], f"connection closed: {lines}"
        assert lines[-1].startswith(tag.encode() + b" OK "), lines
        return lines


@pytest.fixture
def traced(tern_factory, tmp_path, monkeypatch):
    """(tern, Session) for demo, logged in, INBOX selected (tag "s") with two
    delivered messages, ternd running under strace."""
    port, = free_ports(1)
    log = tmp_path / "strace.log"
    # LeakSanitizer cannot run under ptrace (it would make ternd exit 1).
    monkeypatch.setenv("ASAN_OPTIONS", ":".join(
        filter(None, [os.environ.get("ASAN_OPTIONS"), "detect_leaks=0"])))
    tern = tern_factory(
        listen__imap=f"127.0.0.1:{port}",
        cmd_prefix=["strace", "-f", "-yy", "-tt", "-s", "4096",
                    "-e", "trace=" + SYSCALLS, "-o", str(log)])
    try:
        with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as c:
            for i in range(2):
                msg = make_message(f"durable {i}", f"Body {i}.\n", to=DEMO)
                assert c.sendmail("sender@remote.test", [DEMO], msg) == {}
        s = Session(port, Trace(log, port))
        s.cmd("l", f"LOGIN {DEMO} pw")
        s.cmd("s", "SELECT INBOX")
        yield tern, s
        s.r.close()
    finally:
        # strace neither dies of SIGTERM nor passes it on, and a killed
        # strace leaves ternd running: stop ternd itself, strace follows.
        pidfile = tern.data_dir / "ternd.pid"
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
            assert tern.wait() is not None, "ternd did not stop"
    assert "Sanitizer" not in tern.log(), tern.log()

def cur_of(tern):
    return tern.maildir(DEMO) / "cur"


def renames_in_cur(events, cur):
    return [e for e in events if e.name in RENAMES and
            all(os.path.dirname(p) == str(cur) for p in strings(e)[:2])]


# --- tests ---------------------------------------------------------------

def test_store_rename_fsync_on_worker_then_ok(traced):
    tern, s = traced
    reply = s.cmd("t1", "STORE 1 +FLAGS (\\Seen)")
    assert b"FLAGS (\\Seen" in reply[0], reply
    events, ok = s.trace.window("s", "t1")
    ren = renames_in_cur(events, cur_of(tern))
    assert len(ren) == 1, describe(events)
    assert strings(ren[0])[1].endswith(":2,S"), describe(ren)
    assert_durable_before_ok(events, ren[0], cur_of(tern), ok)


def test_expunge_unlink_fsync_on_worker_then_ok(traced):
    tern, s = traced
    s.cmd("d1", "STORE 2 +FLAGS (\\Deleted)")
    events, _ = s.trace.window("s", "d1")
    ren = renames_in_cur(events, cur_of(tern))
    assert len(ren) == 1 and strings(ren[0])[1].endswith(":2,T"), \
        describe(events)
    deleted = strings(ren[0])[1]

    reply = s.cmd("x1", "EXPUNGE")
    assert reply[0] == b"* 2 EXPUNGE\r\n", reply
    events, ok = s.trace.window("d1", "x1")
    unl = [e for e in events
           if e.name in UNLINKS and strings(e)[:1] == [deleted]]
    assert len(unl) == 1, f"no unlink of {deleted}:\n" + describe(events)
    assert_durable_before_ok(events, unl[0], cur_of(tern), ok)
    assert not os.path.exists(deleted)


def test_append_fsync_tmp_on_worker_rename_fsync_cur_then_ok(traced):
    tern, s = traced
    msg = make_message("durable append", "Appended.\n", to=DEMO)
    reply = s.cmd("ap", b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
    m = re.match(rb"ap OK \[APPENDUID \d+ (\d+)\]", reply[-1])
    assert m, reply
    uid = int(m.group(1))
    events, ok = s.trace.window("s", "ap")
    assert "APPENDUID" in ok.args
    assert_append_durable(events, tern.maildir(DEMO), uid, ok)


def test_store_without_change_does_not_fsync(traced):
    tern, s = traced
    s.cmd("t1", "STORE 1 +FLAGS (\\Seen)")
    events, _ = s.trace.window("s", "t1")
    assert syncs(events), "control: the first STORE must show its fsync"

    reply = s.cmd("t2", "STORE 1 +FLAGS (\\Seen)")
    assert b"FLAGS (\\Seen" in reply[0], reply
    events, _ = s.trace.window("t1", "t2")
    touched = [e for e in events if e.name in SYNCS + RENAMES + UNLINKS]
    assert not touched, "an unchanged STORE touched the disk:\n" + \
        describe(touched)


def test_move_fsyncs_both_folders_on_worker_then_ok(traced):
    tern, s = traced
    s.cmd("c1", "CREATE Kept")
    reply = s.cmd("m1", "MOVE 1 Kept")
    assert any(b"COPYUID" in ln for ln in reply), reply
    events, ok = s.trace.window("c1", "m1")
    src_cur = cur_of(tern)
    dst_cur = tern.maildir(DEMO) / ".Kept" / "cur"
    into = [e for e in events if e.name in RENAMES
            and os.path.dirname(strings(e)[1]) == str(dst_cur)]
    gone = [e for e in events if e.name in UNLINKS
            and os.path.dirname(strings(e)[0]) == str(src_cur)]
    assert len(into) == 1 and len(gone) == 1, describe(events)
    for cur, change in ((dst_cur, into[0]), (src_cur, gone[0])):
        fs = syncs(events, cur)
        assert len(fs) == 1, f"want one fsync of {cur}:\n" + describe(events)
        assert change.end < fs[0].start and fs[0].end < ok.start, \
            describe([change, fs[0], ok])
        assert fs[0].pid != ok.pid, f"{cur} fsynced on the loop thread"


def test_new_mail_renamed_without_fsync_on_loop(traced):
    tern, s = traced
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as c:
        msg = make_message("durable new", "New.\n", to=DEMO)
        assert c.sendmail("sender@remote.test", [DEMO], msg) == {}
    reply = s.cmd("n1", "NOOP")
    assert reply[0] == b"* 3 EXISTS\r\n", reply
    events, ok = s.trace.window("s", "n1")
    new, cur = tern.maildir(DEMO) / "new", cur_of(tern)
    moved = [e for e in events if e.name in RENAMES
             and os.path.dirname(strings(e)[0]) == str(new)
             and os.path.dirname(strings(e)[1]) == str(cur)]
    assert len(moved) == 1, describe(events)
    on_loop = [e for e in syncs(events) if e.pid == ok.pid]
    assert not on_loop, "sync on the loop thread:\n" + describe(on_loop)
    deadline = time.monotonic() + TIMEOUT
    while True:
        later = [e for e in s.trace.events() if e.start > moved[0].end]
        done = {fd_path(e) for e in syncs(later) if e.pid != ok.pid}
        if {str(cur), str(new)} <= done:
            break
        assert time.monotonic() < deadline, "no fsync of cur/ and new/:\n" + \
            describe(later)
        time.sleep(0.02)
