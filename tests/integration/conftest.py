"""pytest fixtures: real ternd servers in temporary directories.

Every server a test starts is killed at teardown, and when the test fails the
server's log (its stderr) is added to the report.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import tern_harness  # noqa: E402
from tern_harness import Tern  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for i, srv in enumerate(getattr(item, "_tern_servers", [])):
            report.sections.append((f"ternd log #{i} ({srv.dir})", srv.log()))


@pytest.fixture
def tern_factory(request, tmp_path):
    """tern_factory(start=True, **settings) -> a Tern; keys with '.' are given
    with '__' (listen__smtp), None drops a key."""
    servers = []
    request.node._tern_servers = servers

    def make(start=True, users=None, **settings):
        for name in ("ternd", "tern"):
            path = tern_harness.bin_dir() / name
            assert path.exists(), f"{path} missing: build first (TERN_BIN_DIR)"
        srv = Tern(tmp_path / f"srv{len(servers)}", users=users, **settings)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in servers:
        srv.kill()


@pytest.fixture
def tern(tern_factory):
    """A running ternd with users alice, bob, demo; no trusted networks."""
    return tern_factory()


@pytest.fixture
def tern_trusted(tern_factory):
    """A running ternd that relays for 127.0.0.0/8."""
    return tern_factory(trusted_networks="127.0.0.0/8")
