"""Run directories on disk: atomic writes, locations, and the state of a run. No torch import here."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ltbench import faults
from ltbench.errors import LtbenchError

FINAL_KEYS = ("top1", "many", "medium", "few", "group_sizes", "shot_rule", "per_class_acc",
              "train_class_counts", "best_epoch", "best_top1", "subset_sha", "wall_time_s")


# TrainSettings fields added after run ids were first published: left at these defaults they stay out of
# the hash, so every earlier spec keeps its run id.
_HASH_OMITTED_DEFAULTS: dict[str, Any] = {"image_size": None, "val_select": False, "budget": "epochs",
                                          "budget_ref_batch": None, "budget_ref_epochs": None}
# the same for top-level spec fields and for method hyperparameters (by name, in any method's hparams)
_HASH_OMITTED_TOP: dict[str, Any] = {"class_order": 0}
_HASH_OMITTED_HPARAMS: dict[str, Any] = {"box_clip": "clip", "saliency_pad": "include",
                                          "supcon_weighting": "none"}


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
    data = _omit_defaults(data, _HASH_OMITTED_TOP)
    if isinstance(data.get("hparams"), dict):
        data["hparams"] = _omit_defaults(data["hparams"], _HASH_OMITTED_HPARAMS)
    return json.dumps({**data, "train": train}, sort_keys=True, separators=(",", ":"))


def spec_with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec.json with the fields added after it was written filled in at their defaults.

    A spec written before `class_order`, `budget`, `box_clip`, ... existed ran with their defaults (that is
    why those defaults stay out of the hash), so readers that compare configurations must see those values,
    not a missing field that agrees with anything: an old class-order-0 record is not a class-order-1 run.
    """
    out = dict(spec)
    for key, default in _HASH_OMITTED_TOP.items():
        out.setdefault(key, default)
    if isinstance(out.get("train"), dict):
        out["train"] = {**_HASH_OMITTED_DEFAULTS, **out["train"]}
    hparams = out.get("hparams")
    if isinstance(hparams, dict):  # only for the methods that have the field (told by a field they all record)
        out["hparams"] = {**{k: v for k, (marker, v) in _HPARAM_FAMILY_DEFAULTS.items() if marker in hparams},
                          **hparams}
    return out


# hparams added later, with a field every method that has them records (SMCL's family: mask_locator)
_HPARAM_FAMILY_DEFAULTS: dict[str, tuple[str, Any]] = {k: ("mask_locator", v) for k, v in _HASH_OMITTED_HPARAMS.items()}


def _omit_defaults(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not (k in defaults and v == defaults[k])}


def spec_dict_hash(spec: dict[str, Any]) -> str:
    """A run's spec hash (the suffix of its run id), computed from the plain dict: no torch needed."""
    return hashlib.sha256(canonical_spec_json(spec).encode()).hexdigest()[:12]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def default_results_dir() -> Path:
    """$LTBENCH_RESULTS, else results/runs (relative to the working directory); empty means unset."""
    return Path(os.environ.get("LTBENCH_RESULTS") or "results/runs")


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


def refuse_symlinks(run_dir: Path) -> None:
    """One line naming the first file in `run_dir` that is a symbolic link (checked before a run writes)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for entry in sorted(run_dir.iterdir()):
        if entry.is_symlink():
            raise LtbenchError(f"{entry} is a symbolic link; ltbench does not write through links in a run "
                               "directory (remove it)")


def append_jsonl(path: Path, obj: Any) -> None:
    fd = open_no_follow(Path(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl(path: Path, warn: Callable[[str], None] | None = None) -> list[dict]:
    """The JSON-object lines of a JSONL file up to the first bad one (torn by a kill mid-append, not JSON,
    not UTF-8, not an object, or an object with a non-integer "epoch"): that line ends the valid log.
    A bad line before the last is reported once through `warn` with the path and line number."""
    if not Path(path).exists():
        return []
    rows: list[dict] = []
    lines = Path(path).read_bytes().splitlines()
    for number, raw in enumerate(lines, 1):
        row = _json_object(raw)
        if row is None:
            if warn is not None and number < len(lines):  # a torn last line is a kill mid-append
                warn(f"{path} line {number} is not a valid record; the log is read up to line {number - 1}")
            break
        rows.append(row)
    return rows


def _json_object(raw: bytes) -> dict | None:
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


def load_final(run_dir: Path) -> dict | None:
    """final.json if present and valid, else None; a damaged or foreign one raises ValueError naming its path.

    The one reader every command uses (run, status, table, compare, plot, ablate): the schema is checked
    (check_final) and, when the directory holds a spec.json, the record's spec_hash must be that spec's.
    """
    path = Path(run_dir) / "final.json"
    if not path.is_symlink() and not path.exists():
        return None
    try:
        data = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is damaged: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ValueError(f"{path} is damaged: cannot be read ({exc.strerror or exc})") from None
    problem = check_final(data)
    if problem is None:
        problem = _foreign(Path(run_dir), data)
    if problem is not None:
        raise ValueError(f"{path} is damaged: {problem}")
    return data


def _number(v: Any, lo: float = 0.0, hi: float = math.inf) -> bool:
    return (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi)


def _count(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and v >= 0


def check_final(data: Any) -> str | None:
    """What is wrong with a final.json's content (None: a well-formed record).

    Accuracies are percentages in [0, 100] (None only where a group or class is empty), counts are
    non-negative integers, and the per-class lists have one entry per class.
    """
    if not isinstance(data, dict):
        return f"not a JSON object but {type(data).__name__}"
    missing = [k for k in FINAL_KEYS if k not in data]
    if missing:
        return f"lacks {', '.join(missing)}"
    if not _number(data["top1"], 0, 100):
        return f"top1 is not a percentage: {data['top1']!r}"
    for key in ("many", "medium", "few", "best_top1"):
        if data[key] is not None and not _number(data[key], 0, 100):
            return f"{key} is not a percentage: {data[key]!r}"
    counts, accs = data["train_class_counts"], data["per_class_acc"]
    if not isinstance(counts, list) or not counts or not all(_count(c) for c in counts):
        return "train_class_counts is not a list of non-negative integers"
    if not isinstance(accs, list) or not all(a is None or _number(a, 0, 100) for a in accs):
        return "per_class_acc is not a list of percentages"
    if len(accs) != len(counts):
        return f"per_class_acc has {len(accs)} entries for {len(counts)} classes"
    sizes = data["group_sizes"]
    if not isinstance(sizes, dict) or not all(_count(v) for v in sizes.values()):
        return "group_sizes is not a mapping of group to class count"
    if sum(sizes.values()) > len(counts):
        return f"group_sizes count {sum(sizes.values())} classes, the record has {len(counts)}"
    if not isinstance(data["shot_rule"], str):
        return "shot_rule is not a name"
    if data["best_epoch"] is not None and not _count(data["best_epoch"]):
        return f"best_epoch is not an epoch: {data['best_epoch']!r}"
    if not _number(data["wall_time_s"]):
        return f"wall_time_s is not a duration: {data['wall_time_s']!r}"
    if "spec_hash" in data and not isinstance(data["spec_hash"], str):
        return "spec_hash is not a hash"
    return None


def _foreign(run_dir: Path, data: dict) -> str | None:
    """Why this record is not the directory's run (None: it is, or nothing tells)."""
    recorded = data.get("spec_hash")
    spec_path = run_dir / "spec.json"
    if recorded is None or not spec_path.exists():
        return None
    try:
        actual = spec_dict_hash(read_json(spec_path))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # a damaged spec.json is reported by the readers that need it
    if actual != recorded:
        return (f"its spec hash {recorded} does not match the hash {actual} of the directory's spec.json "
                "(copied from another run, or the spec edited after the run)")
    return None


def final_damage(run_dir: Path) -> str | None:
    """The warning for a damaged or foreign final.json (load_final's text, naming the path), else None."""
    try:
        load_final(run_dir)
    except ValueError as exc:
        return str(exc)
    return None


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
