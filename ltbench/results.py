"""Run directories on disk: atomic writes, locations, and the state of a run. No torch import here."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ltbench import faults

FINAL_KEYS = ("top1", "many", "medium", "few", "group_sizes", "shot_rule", "per_class_acc",
              "train_class_counts", "best_epoch", "best_top1", "subset_sha", "wall_time_s")


# TrainSettings fields added after run ids were first published: left at these defaults they stay out of
# the hash, so every earlier spec keeps its run id.
_HASH_OMITTED_DEFAULTS: dict[str, Any] = {"image_size": None, "val_select": False}


def jsonable(obj: Any) -> Any:
    """A spec as JSON holds it, with integral floats as ints (100.0 and 100 hash the same)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)  # 100.0 and 100 hash the same
    return obj


def canonical_spec_json(spec: dict[str, Any]) -> str:
    """The text a run's hash is taken of (a spec as RunSpec.to_dict or spec.json holds it)."""
    data = jsonable(spec)
    train = dict(data["train"])
    for key, default in _HASH_OMITTED_DEFAULTS.items():
        if train.get(key, default) == default:
            train.pop(key, None)
    return json.dumps({**data, "train": train}, sort_keys=True, separators=(",", ":"))


def spec_dict_hash(spec: dict[str, Any]) -> str:
    """A run's spec hash (the suffix of its run id), computed from the plain dict: no torch needed."""
    return hashlib.sha256(canonical_spec_json(spec).encode()).hexdigest()[:12]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def default_results_dir() -> Path:
    """$LTBENCH_RESULTS, else results/runs (relative to the working directory)."""
    return Path(os.environ.get("LTBENCH_RESULTS", "results/runs"))


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


def orphan_temp_files(folder: Path) -> list[Path]:
    """Temp files of atomic writes in `folder` whose writer (on this host) is no longer running."""
    from ltbench.locks import pid_alive

    orphans = []
    for tmp in Path(folder).glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .<name>.<pid>.<random>.tmp
        pid = int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None
        if pid is None or (pid != os.getpid() and not pid_alive(pid)):
            orphans.append(tmp)
    return orphans


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def append_jsonl(path: Path, obj: Any) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl(path: Path) -> list[dict]:
    """Lines of a JSONL file; a torn last line (killed mid-append) is dropped."""
    if not Path(path).exists():
        return []
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def load_final(run_dir: Path) -> dict | None:
    """final.json if present and complete, else None (a damaged file raises ValueError)."""
    path = Path(run_dir) / "final.json"
    if not path.exists():
        return None
    try:
        data = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    missing = [k for k in FINAL_KEYS if not isinstance(data, dict) or k not in data]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    return data


def run_state(run_dir: Path) -> str:
    """done / failed / interrupted (started, resumable) / missing."""
    run_dir = Path(run_dir)
    try:
        if load_final(run_dir) is not None:
            return "done"
    except ValueError:
        return "damaged"
    if (run_dir / "failed.json").exists():
        return "failed"
    if (run_dir / "spec.json").exists():
        return "interrupted"
    return "missing"
