"""ternd started as root drops to run_as_user after binding its ports."""

import os
import pwd
import shutil
import smtplib
import tempfile

import pytest

from tern_harness import Tern, make_message

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def uids_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line")


@pytest.fixture
def nobody_dir():
    # pytest's own temporary directories are root's alone (0700): the
    # unprivileged user could not reach its files there.
    d = tempfile.mkdtemp(prefix="tern-priv-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_drops_to_run_as_user(nobody_dir):
    nobody = pwd.getpwnam("nobody")
    srv = Tern(nobody_dir, run_as_user="nobody")
    os.chown(nobody_dir, nobody.pw_uid, nobody.pw_gid)
    for root, dirs, files in os.walk(nobody_dir):
        for name in dirs + files:
            os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)
    try:
        srv.start()
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as s:
            s.sendmail("sender@remote.test", ["alice@example.test"],
                       make_message("privileges", "dropped\r\n"))
        # A session was served, so the drop is done (the ports accept
        # connections from the moment they are bound, before it): every
        # uid (real, effective, saved, fs) is nobody's, with no way back.
        assert uids_of(srv.proc.pid) == [nobody.pw_uid] * 4
        files = srv.message_files("alice@example.test")
        assert len(files) == 1
        assert os.stat(files[0]).st_uid == nobody.pw_uid
    finally:
        srv.kill()


def test_unknown_run_as_user_is_a_startup_error(nobody_dir):
    srv = Tern(nobody_dir, run_as_user="no-such-user-here")
    srv.start(wait=False)
    assert srv.wait() == 1
    srv.kill()
    assert "run_as_user: no such user 'no-such-user-here'" in srv.log()
