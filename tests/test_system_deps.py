"""bin/system-deps, as root with a package missing, while another apt holds its lock: it says
it waits, waits for the lock (up to a minute) and then installs. apt-get is a stand-in on PATH
that records its arguments; the lock is a file of the test's, held with fcntl as apt holds it."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bin/system-deps installs as root only")


@pytest.fixture
def script(tmp_path):
    """bin/system-deps wanting a package that is not installed, with a recording apt-get."""
    text = (ROOT / "bin" / "system-deps").read_text()
    text = text.replace("want=(libmariadb-dev pkg-config)", "want=(flagged-cron-missing-pkg)")
    copy = tmp_path / "system-deps"
    copy.write_text(text)
    copy.chmod(0o755)
    apt = tmp_path / "apt-get"
    apt.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/apt-calls\n')
    apt.chmod(0o755)
    return copy


def run(script, lock, timeout=90):
    env = {**os.environ, "PATH": f"{script.parent}:{os.environ['PATH']}", "APT_LOCKS": str(lock)}
    return subprocess.run(
        [str(script)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_it_waits_for_another_apt_and_says_so(script, tmp_path):
    lock = tmp_path / "lock-frontend"
    # fcntl locks belong to a process: hold it from another one, as another apt would.
    holder = subprocess.Popen(
        [
            "python3",
            "-c",
            "import fcntl, sys, time; fh = open(sys.argv[1], 'a'); "
            "fcntl.lockf(fh, fcntl.LOCK_EX); print('held', flush=True); time.sleep(3)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    started = time.monotonic()
    done = run(script, lock)
    holder.wait()
    assert done.returncode == 0, done.stderr
    assert f"waiting for another apt or dpkg to finish (it holds {lock}), up to a minute" in (
        done.stdout
    )
    assert time.monotonic() - started >= 2  # it did wait for the holder
    calls = (tmp_path / "apt-calls").read_text().splitlines()
    assert calls[0] == "-o DPkg::Lock::Timeout=60 update -qq"
    assert "install" in calls[1] and "flagged-cron-missing-pkg" in calls[1]


def test_without_a_holder_it_installs_at_once(script, tmp_path):
    done = run(script, tmp_path / "lock-frontend")
    assert done.returncode == 0, done.stderr
    assert "waiting" not in done.stdout
    assert "installing system packages: flagged-cron-missing-pkg" in done.stdout
