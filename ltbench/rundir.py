"""One run directory on disk: the only code that knows its file names, and the one writer of its outcome.

A run directory (`<results>/<setting>/<method>/s<seed>-<hash>/`) holds:

- `spec.json`: the run's spec (written when the run is claimed, or by a launcher before its worker starts);
- `env.json`: where and with what software the latest session ran;
- `metrics.jsonl`: one line per finished epoch;
- `last.pt`: the latest checkpoint (ltbench.checkpoint reads and encodes it);
- `sessions.jsonl`: one line per training session (resumes, and by which process);
- `lock`: held by the training process (ltbench.locks);
- `predictions.npz`: the last epoch's outputs (ltbench.predictions encodes it; final.json holds its hash);
- `tensorboard/`: event files, when a run asks for them (ltbench.tracking; a view of metrics.jsonl);
- last, and atomically, `final.json` (done) or `failed.json` (why not).

Every write is atomic (ltbench.files); every read of final.json is validated (check_final) and checked
against the directory's spec.json. No torch import here: tables and `status` read records through this.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ltbench.files import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    json_bytes,
    jsonl_line,
    orphan_temp_files,
    read_json,
    read_jsonl,
    refuse_symlinks,
)
from ltbench.spec_hash import spec_dict_hash

SPEC = "spec.json"
ENV = "env.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "last.pt"
SESSIONS = "sessions.jsonl"
LOCK = "lock"
PREDICTIONS = "predictions.npz"
TENSORBOARD = "tensorboard"
FAILED = "failed.json"
FINAL = "final.json"

# what `--force` discards before training again (the spec, sessions and env stay: they are history)
_FORCE_DISCARDS = (FINAL, FAILED, CHECKPOINT, METRICS)
# what a failed attempt leaves that a fresh start must not resume from (moved into attempt-<k>/)
_ATTEMPT_FILES = (CHECKPOINT, METRICS, FAILED)

FINAL_KEYS = ("top1", "many", "medium", "few", "group_sizes", "shot_rule", "per_class_acc",
              "train_class_counts", "best_epoch", "best_top1", "subset_sha", "wall_time_s")

RunState = Literal["done", "damaged", "failed", "interrupted", "missing"]
# when record_failure writes: "always" (the trainer, under the run's lock); "unrecorded" (neither final.json
# nor failed.json exists: a worker's or launcher's note after the fact, never over the trainer's own);
# "unfinished" (no valid final.json: a launcher that stopped a job, whatever the job had recorded)
FailureWhen = Literal["always", "unrecorded", "unfinished"]


def default_results_dir() -> Path:
    """$LTBENCH_RESULTS, else results/runs (relative to the working directory); empty means unset."""
    return Path(os.environ.get("LTBENCH_RESULTS") or "results/runs")


@dataclass(frozen=True)
class RunDir:
    """A run directory; nothing else in ltbench spells the names of the files inside it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, results_dir: Path | str, run_id: str) -> RunDir:
        return cls(Path(results_dir) / run_id)

    @staticmethod
    def holds_a_run(file_names: Collection[str]) -> bool:
        """True for the listing of a folder that is a run directory (it has a spec.json or a final.json)."""
        return SPEC in file_names or FINAL in file_names

    # ----- where each file is ----------------------------------------------------------------
    @property
    def spec_path(self) -> Path:
        return self.path / SPEC

    @property
    def env_path(self) -> Path:
        return self.path / ENV

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def sessions_path(self) -> Path:
        return self.path / SESSIONS

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS

    @property
    def tensorboard_path(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def failed_path(self) -> Path:
        return self.path / FAILED

    @property
    def final_path(self) -> Path:
        return self.path / FINAL

    # ----- claiming the directory -------------------------------------------------------------
    def refuse_symlinks(self) -> None:
        """One line naming the first symbolic link in the directory (checked before a run writes)."""
        refuse_symlinks(self.path)

    def read_spec(self) -> Any:
        """spec.json as parsed JSON (OSError / ValueError as read_json raises them)."""
        return read_json(self.spec_path)

    def write_spec(self, spec: dict[str, Any]) -> None:
        atomic_write_json(self.spec_path, spec)

    @staticmethod
    def spec_bytes(spec: dict[str, Any]) -> bytes:
        """spec.json's bytes, for a launcher that writes the file itself when its job starts."""
        return json_bytes(spec)

    def prepare(self, force: bool) -> None:
        """Make the directory ready for a training session: create it; drop an earlier failure (and with
        `force` the earlier result, checkpoint and metrics); drop temp files of writers a kill interrupted."""
        self.path.mkdir(parents=True, exist_ok=True)
        if force:
            for name in _FORCE_DISCARDS:
                (self.path / name).unlink(missing_ok=True)
        self.failed_path.unlink(missing_ok=True)
        for tmp in orphan_temp_files(self.path):
            tmp.unlink(missing_ok=True)

    # ----- a training session -----------------------------------------------------------------
    def write_env(self, env: dict[str, Any]) -> None:
        atomic_write_json(self.env_path, env)

    def env(self) -> dict[str, Any] | None:
        """env.json, or None when there is no readable one (never followed through a link)."""
        if self.env_path.is_symlink() or not self.env_path.is_file():
            return None
        try:
            env = json.loads(self.env_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return env if isinstance(env, dict) else None

    def append_session(self, row: dict[str, Any]) -> None:
        append_jsonl(self.sessions_path, row)

    def sessions(self) -> list[dict[str, Any]]:
        return read_jsonl(self.sessions_path)

    def metrics(self, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
        """The valid metric rows (read_jsonl: up to the first bad line, reported through `warn`)."""
        return read_jsonl(self.metrics_path, warn)

    def keep_metrics_before(self, epoch: int, warn: Callable[[str], None] | None = None) -> None:
        """Keep only the rows of epochs before `epoch` (a kill may have landed after an append)."""
        rows = [r for r in self.metrics(warn) if r.get("epoch", epoch) < epoch]
        atomic_write_bytes(self.metrics_path, "".join(jsonl_line(r) for r in rows).encode())

    def append_metrics(self, row: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, row)

    def write_checkpoint(self, data: bytes) -> None:
        atomic_write_bytes(self.checkpoint_path, data)

    def write_predictions(self, data: bytes) -> None:
        atomic_write_bytes(self.predictions_path, data)

    # ----- the outcome ------------------------------------------------------------------------
    def has_final(self) -> bool:
        """True if a final.json is there (valid or not: load_final tells)."""
        return self.final_path.exists()

    def load_final(self) -> dict[str, Any] | None:
        """final.json if present and valid, else None; a damaged or foreign one raises ValueError naming
        its path. The one reader every command uses: the schema is checked (check_final) and, when the
        directory holds a spec.json, the record's spec_hash must be that spec's."""
        path = self.final_path
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
            problem = self._foreign(data)
        if problem is not None:
            raise ValueError(f"{path} is damaged: {problem}")
        return data

    def final_damage(self) -> str | None:
        """The warning for a damaged or foreign final.json (load_final's text, naming the path), else None."""
        try:
            self.load_final()
        except ValueError as exc:
            return str(exc)
        return None

    def write_final(self, final: dict[str, Any]) -> None:
        """The one writer of final.json: written last, atomically, by the process that holds the lock."""
        atomic_write_json(self.final_path, final)

    def read_failure(self) -> Any:
        """failed.json as parsed JSON (OSError / ValueError as read_json raises them)."""
        return read_json(self.failed_path)

    def failure_kind(self) -> str | None:
        """failed.json's "kind" (None if it has none or cannot be read)."""
        try:
            info = self.read_failure()
        except (OSError, ValueError):
            return None
        return info.get("kind") if isinstance(info, dict) else None

    def record_failure(self, reason: str, kind: str | None = None, *, when: FailureWhen = "always",
                       **details: Any) -> bool:
        """The one writer of failed.json: {"reason", "kind" (when given), **details}; True if written.

        `when` says whose note may stand (FailureWhen): the trainer writes under the run's lock and always;
        a launcher's or worker's note after the fact never replaces a record the run wrote itself.
        """
        if when == "unrecorded" and (self.final_path.exists() or self.failed_path.exists()):
            return False
        if when == "unfinished" and self.state() == "done":
            return False
        record: dict[str, Any] = {"reason": reason}
        if kind is not None:
            record["kind"] = kind
        atomic_write_json(self.failed_path, {**record, **details})
        return True

    def clear_failure(self) -> None:
        """Forget a recorded failure (a resubmission: its log stays in the launcher's log file)."""
        self.failed_path.unlink(missing_ok=True)

    def archive_attempt(self) -> Path:
        """Move a failed attempt's checkpoint, metrics and failed.json into attempt-<k>/ inside the run,
        so that the run starts over from epoch 0 and nothing of the attempt is lost."""
        k = 1
        while (self.path / f"attempt-{k}").exists():
            k += 1
        folder = self.path / f"attempt-{k}"
        folder.mkdir()
        for name in _ATTEMPT_FILES:
            if (self.path / name).exists():
                os.replace(self.path / name, folder / name)
        return folder

    def state(self) -> RunState:
        """done / damaged (final.json unreadable or foreign) / failed / interrupted (started, resumable) /
        missing."""
        try:
            if self.load_final() is not None:
                return "done"
        except ValueError:
            return "damaged"
        if self.failed_path.exists():
            return "failed"
        if self.spec_path.exists():
            return "interrupted"
        return "missing"

    def _foreign(self, data: dict[str, Any]) -> str | None:
        """Why this record is not the directory's run (None: it is, or nothing tells)."""
        recorded = data.get("spec_hash")
        if recorded is None or not self.spec_path.exists():
            return None
        try:
            actual = spec_dict_hash(self.read_spec())
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None  # a damaged spec.json is reported by the readers that need it
        if actual != recorded:
            return (f"its spec hash {recorded} does not match the hash {actual} of the directory's spec.json "
                    "(copied from another run, or the spec edited after the run)")
        return None


def load_final(run_dir: Path | str) -> dict[str, Any] | None:
    """RunDir(run_dir).load_final(): the validated final.json, None if absent, ValueError if damaged."""
    return RunDir(Path(run_dir)).load_final()


def final_damage(run_dir: Path | str) -> str | None:
    return RunDir(Path(run_dir)).final_damage()


def run_state(run_dir: Path | str) -> RunState:
    return RunDir(Path(run_dir)).state()


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
