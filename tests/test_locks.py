"""Run-directory locks: exclusive while held, stale locks of dead processes are taken over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from ltbench.locks import RunLocked, lock_is_live, run_lock


def _write_lock(run_dir, pid, host=None):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "lock").write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "since": 0}))


def test_lock_is_exclusive_and_released(tmp_path):
    with run_lock(tmp_path / "run"):
        assert lock_is_live(tmp_path / "run")
        with pytest.raises(RunLocked, match="being trained by pid"):
            with run_lock(tmp_path / "run"):
                pass
    assert not (tmp_path / "run" / "lock").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(tmp_path / "run", dead.pid)
    assert not lock_is_live(tmp_path / "run")
    with run_lock(tmp_path / "run"):
        assert json.loads((tmp_path / "run" / "lock").read_text())["pid"] != dead.pid


def test_live_lock_of_another_process_is_respected(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _write_lock(tmp_path / "run", live.pid)
        with pytest.raises(RunLocked):
            with run_lock(tmp_path / "run"):
                pass
    finally:
        live.kill()
        live.wait()


def test_lock_from_another_host_is_respected(tmp_path):
    _write_lock(tmp_path / "run", 1, host="elsewhere.example")
    with pytest.raises(RunLocked, match="elsewhere.example"):
        with run_lock(tmp_path / "run"):
            pass
