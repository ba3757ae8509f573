"""Finished run directories -> one tidy DataFrame, one row per run (standard library + pandas, no torch).

A row holds the spec's fields (`hp.<key>`, `train.<key>`, the rest by name), final.json flattened
(`seen_split.seen.top1`, `val_selected.top1`, ...), the protocol fingerprint (`protocol.<field>`) and, for
the best test epoch, its shot-group accuracies from metrics.jsonl. Records are read through
`ltbench.rundir.RunDir` (load_final validates final.json); spec_with_defaults (ltbench.spec_hash) fills
fields added later.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ltbench.fingerprint import flatten_protocol
from ltbench.protocol import protocol_of
from ltbench.report.labels import Warn, console_warn, setting_id
from ltbench.rundir import RunDir
from ltbench.spec_hash import jsonable, spec_dict_hash, spec_with_defaults

LEAD = ["method", "dataset", "ratio", "max_per_class", "seed", "setting", "preset", "top1", "many",
        "medium", "few", "best_top1", "best_epoch", "best_many", "best_medium", "best_few", "shot_rule",
        "epochs", "run_id"]
_SPEC_REQUIRED = ("method", "dataset", "ratio", "seed", "train", "hparams")
_LIST_KEYS = ("per_class_acc", "train_class_counts")


def config_signature(spec: dict[str, Any]) -> str:
    """Hash of a spec without its seed: runs of one configuration share it."""
    rest = {k: v for k, v in spec.items() if k != "seed"}
    text = json.dumps(jsonable(rest), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def isna(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float) and math.isnan(v)


def norm(v: Any) -> Any:
    """A cell value in a form that compares equal across int/float, list/tuple and numpy scalars."""
    if isna(v):
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return tuple(norm(x) for x in v)
    if hasattr(v, "item"):  # numpy scalar
        return norm(v.item())
    return v


def value_column(df: pd.DataFrame, key: str) -> str | None:
    """The frame column of a spec key: `hp.<key>`, else `train.<key>`, else the key itself."""
    for col in (f"hp.{key}", f"train.{key}", key):
        if col in df.columns:
            return col
    return None


def _cell_value(v: Any) -> Any:
    return tuple(_cell_value(x) for x in v) if isinstance(v, list) else v


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif not isinstance(obj, list):
        out[prefix] = obj


def find_run_dirs(results_dir: Path) -> list[Path]:
    """Every directory under results_dir holding a spec.json or a final.json (hidden dirs skipped)."""
    found = []
    for root, dirs, files in os.walk(results_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if RunDir.holds_a_run(files):
            found.append(Path(root))
    return sorted(found)


def _check_hash(run_dir: Path, spec: dict[str, Any], final: dict[str, Any]) -> None:
    """A spec.json edited after the run (or a record moved into another run's directory) is not this run."""
    spec_path = RunDir(run_dir).spec_path
    try:
        actual = spec_dict_hash(spec)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"{spec_path} cannot be hashed ({exc})") from None
    recorded = final.get("spec_hash")
    if recorded is not None and recorded != actual:
        raise ValueError(f"{spec_path} does not match the hash its final.json records "
                         f"({actual} != {recorded}): edited after the run?")
    suffix = run_dir.name.rsplit("-", 1)[-1]
    if run_dir.name.startswith("s") and len(suffix) == 12 and suffix != actual:
        raise ValueError(f"{run_dir} holds a spec whose hash is {actual}, not the {suffix} its name says")


def read_run(run_dir: Path, results_dir: Path | None = None, include_lists: bool = False) -> dict[str, Any]:
    """One tidy row for a finished run (ValueError with the path when something is unreadable)."""
    run_dir = Path(run_dir)
    rd = RunDir(run_dir)
    final = rd.load_final()
    if final is None:
        raise ValueError(f"{rd.final_path} does not exist")
    spec_path = rd.spec_path
    try:
        spec = rd.read_spec()
    except FileNotFoundError:
        raise ValueError(f"{spec_path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{spec_path} is not valid JSON ({exc})") from None
    if not isinstance(spec, dict) or any(k not in spec for k in _SPEC_REQUIRED) \
            or not isinstance(spec["train"], dict) or not isinstance(spec["hparams"], dict):
        raise ValueError(f"{spec_path} is not an ltbench spec (needs {', '.join(_SPEC_REQUIRED)})")
    try:
        ratio = float(spec["ratio"])
        seed = int(spec["seed"])
    except (TypeError, ValueError):
        raise ValueError(f"{spec_path} has a bad ratio or seed") from None
    _check_hash(run_dir, spec, final)
    spec = spec_with_defaults(spec)  # an older record ran with the later fields' defaults: say so
    head = spec.get("max_per_class")
    try:
        rel = run_dir.resolve().relative_to(Path(results_dir).resolve()).as_posix() if results_dir else None
    except ValueError:
        rel = None
    row: dict[str, Any] = {
        "method": spec["method"], "dataset": spec["dataset"], "ratio": ratio, "max_per_class": head,
        "seed": seed, "setting": setting_id(spec["dataset"], ratio, head), "preset": spec.get("preset"),
        "epochs": spec["train"].get("epochs", final.get("epochs")),
        "run_id": rel or final.get("run_id") or run_dir.name, "run_dir": str(run_dir),
        "config": config_signature(spec),
    }
    keys = []  # the spec fields this run records (older runs may lack fields added later)
    for k, v in spec.items():
        if k not in ("method", "dataset", "ratio", "max_per_class", "seed", "preset", "train", "hparams"):
            row[k] = _cell_value(v)
            keys.append(k)
    for k, v in spec["hparams"].items():
        row[f"hp.{k}"] = _cell_value(v)
        keys.append(f"hp.{k}")
    for k, v in spec["train"].items():
        row[f"train.{k}"] = _cell_value(v)
        keys.append(f"train.{k}")
    row["spec_keys"] = tuple(sorted(keys))
    try:  # the protocol fingerprint (None: an older record cannot tell), as protocol.<field> columns
        row.update(flatten_protocol(protocol_of(final, spec)))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"{rd.final_path}: cannot derive its protocol ({exc})") from None
    flat: dict[str, Any] = {}
    _flatten("", {k: v for k, v in final.items() if k not in _LIST_KEYS}, flat)
    for k, v in flat.items():
        row.setdefault(k, v)
    for k in ("best_many", "best_medium", "best_few"):
        row.setdefault(k, None)
    best_epoch = final.get("best_epoch")
    if best_epoch is not None:
        for line in rd.metrics():  # [] when the run kept no metrics.jsonl
            if line.get("epoch") == best_epoch:
                for g in ("many", "medium", "few"):
                    row[f"best_{g}"] = line.get(g)
    if include_lists:
        for k in _LIST_KEYS:
            row[k] = final.get(k)
    return row


def collect(results_dir: Path, warn: Warn | None = None, run_dirs: Iterable[Path] | None = None,
            include_lists: bool = False) -> pd.DataFrame:
    """One row per finished run under results_dir (or in run_dirs); damaged runs: skipped with a warning."""
    warn = warn or console_warn
    results_dir = Path(results_dir)
    dirs = list(run_dirs) if run_dirs is not None else find_run_dirs(results_dir)
    rows = []
    for run_dir in dirs:
        if run_dirs is None and not RunDir(run_dir).has_final():
            continue  # unfinished: `ltbench status` reports these
        try:
            rows.append(read_run(run_dir, results_dir, include_lists))
        except ValueError as exc:
            warn(f"skipping a run: {exc}")
    return tidy_frame(rows)


def tidy_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in LEAD})
    df = pd.DataFrame(rows)
    for col in LEAD:
        if col not in df.columns:
            df[col] = None
    rest = sorted(c for c in df.columns if c not in LEAD)
    hp = [c for c in rest if c.startswith("hp.")]
    tr = [c for c in rest if c.startswith("train.")]
    other = [c for c in rest if c not in hp and c not in tr]
    df = df[LEAD + hp + tr + other]
    for col in ("top1", "many", "medium", "few", "best_top1", "best_many", "best_medium", "best_few"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["max_per_class"] = pd.array([None if isna(v) else int(v) for v in df["max_per_class"]], dtype="Int64")
    df["seed"] = df["seed"].astype("int64")
    df["ratio"] = df["ratio"].astype("float64")
    return df.sort_values(["setting", "method", "seed", "run_id"], kind="stable").reset_index(drop=True)


def aggregate(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str] = ("top1",)) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and n (non-null runs) of each metric over the rows of each group."""
    cols = {}
    grouped = df.groupby(list(by), dropna=False, sort=True)
    for m in metrics:
        agg = grouped[m].agg(["mean", "std", "count"])
        cols[f"{m}_mean"], cols[f"{m}_std"], cols[f"{m}_n"] = agg["mean"], agg["std"], agg["count"]
    return pd.DataFrame(cols).reset_index()
