"""Run-directory locks: exclusive while held, released by the kernel when the holder dies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from ltbench.locks import RunLocked, lock_is_live, read_lock, run_lock

HOLD = """
import sys, time
from ltbench.locks import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(run_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_is_exclusive_and_released(tmp_path):
    with run_lock(tmp_path / "run"):
        assert lock_is_live(tmp_path / "run")
        with pytest.raises(RunLocked, match="being trained by pid"):
            with run_lock(tmp_path / "run"):
                pass
    assert not (tmp_path / "run" / "lock").exists() and not lock_is_live(tmp_path / "run")


def test_a_live_holder_in_another_process_is_respected_and_named(tmp_path):
    proc = _holder(tmp_path / "run")
    try:
        assert lock_is_live(tmp_path / "run") and read_lock(tmp_path / "run")["pid"] == proc.pid
        with pytest.raises(RunLocked, match=f"pid {proc.pid}"):
            with run_lock(tmp_path / "run"):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holders_lock_is_free_at_once(tmp_path):
    proc = _holder(tmp_path / "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "run" / "lock").exists()  # the file stays behind, naming the dead holder ...
    assert not lock_is_live(tmp_path / "run")  # ... but nobody holds it
    with run_lock(tmp_path / "run"):
        assert read_lock(tmp_path / "run")["pid"] != proc.pid


@pytest.mark.parametrize("host", [None, "elsewhere.example"])
def test_a_lock_file_nobody_holds_is_taken_over(tmp_path, host):
    """A left-over file (any pid, any host) is not a lock: a live holder on any host would hold the flock."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "lock").write_text(json.dumps({"pid": 1, "host": host or "here", "since": time.time()}))
    assert not lock_is_live(run_dir)
    with run_lock(run_dir):
        assert lock_is_live(run_dir)


def test_orphan_temp_files_are_those_of_dead_writers(tmp_path):
    from ltbench.files import orphan_temp_files

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        names = {"dead": f".last.pt.{dead.pid}.k2j3.tmp", "live": f".spec.json.{live.pid}.a8f1.tmp",
                 "legacy": ".final.json.x7q2.tmp"}  # written before temp names carried the pid
        for name in names.values():
            (tmp_path / name).write_bytes(b"half")
        assert sorted(p.name for p in orphan_temp_files(tmp_path)) == sorted([names["dead"], names["legacy"]])
    finally:
        live.kill()
        live.wait()
