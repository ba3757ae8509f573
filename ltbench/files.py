"""File primitives for run records: atomic writes, appends and reads that never follow a planted link.

No torch import here. Which files a run directory holds, and who writes each, is ltbench.rundir's job;
this module only knows how to write and read one file safely.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ltbench import faults
from ltbench.errors import LtbenchError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the temp name: whoever claims the run later can tell an orphan (dead writer,
    # e.g. killed mid-write) from another live process's write in progress (see orphan_temp_files)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            view = memoryview(data)  # halves without copying (a checkpoint can be hundreds of MB)
            fh.write(view[: len(data) // 2])
            fh.flush()
            faults.reached(f"write:{path.name}")  # tests: die with half a temp file on disk
            fh.write(view[len(data) // 2:])
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_bytes(obj: Any) -> bytes:
    """A JSON record file's bytes as every writer spells them (sorted keys, indent 1, final newline)."""
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host (or may: it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphan_temp_files(folder: Path) -> list[Path]:
    """Temp files of atomic writes in `folder` whose writer (on this host) is no longer running."""
    orphans = []
    for tmp in Path(folder).glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .<name>.<pid>.<random>.tmp
        pid = int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None
        if pid is None or (pid != os.getpid() and not pid_alive(pid)):
            orphans.append(tmp)
    return orphans


def open_no_follow(path: Path, flags: int, mode: int = 0o666) -> int:
    """os.open that refuses a symbolic link at `path` (O_NOFOLLOW): a link planted in a run directory
    must not get its target truncated or appended to. The refusal is an LtbenchError naming the file."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LtbenchError(f"{path} is a symbolic link; ltbench does not write through links in a run "
                               "directory (remove it)") from None
        raise


def refuse_symlinks(folder: Path) -> None:
    """One line naming the first file in `folder` that is a symbolic link (checked before a run writes)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            raise LtbenchError(f"{entry} is a symbolic link; ltbench does not write through links in a run "
                               "directory (remove it)")


def append_jsonl(path: Path, obj: Any) -> None:
    fd = open_no_follow(Path(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(jsonl_line(obj))
        fh.flush()
        os.fsync(fh.fileno())


def jsonl_line(obj: Any) -> str:
    """One JSONL record as every writer spells it (sorted keys, one line)."""
    return json.dumps(obj, sort_keys=True) + "\n"


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl(path: Path, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The JSON-object lines of a JSONL file up to the first bad one (torn by a kill mid-append, not JSON,
    not UTF-8, not an object, or an object with a non-integer "epoch"): that line ends the valid log.
    A bad line before the last is reported once through `warn` with the path and line number."""
    if not Path(path).exists():
        return []
    rows: list[dict[str, Any]] = []
    lines = Path(path).read_bytes().splitlines()
    for number, raw in enumerate(lines, 1):
        row = _json_object(raw)
        if row is None:
            if warn is not None and number < len(lines):  # a torn last line is a kill mid-append
                warn(f"{path} line {number} is not a valid record; the log is read up to line {number - 1}")
            break
        rows.append(row)
    return rows


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(row, dict):
        return None
    epoch = row.get("epoch", 0)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        return None
    return row


def warn_stderr(message: str) -> None:
    """The warning form of the command line (stderr, one line)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
