"""Protocol fingerprints in reports: which fields a table's runs share, and which rows differ from the rest.

`ltbench.protocol.protocol_of` gives each run's fingerprint (None where an older record cannot tell);
`report.read_run` flattens it into `protocol.<field>[.<sub>]` columns. This module reads those columns:

- `shared_text`: the caption sentence naming every field all runs share ("unknown" for None);
- `row_notes`: inside one setting and one seed, rows (method cells) whose runs differ from the other
  rows in a field the grid does not vary, e.g. "optimiser steps 300 vs 600";
- `arm_mismatches`: the fields two compared arms differ in, besides the compared one.

A field the grid varies (its `vary` keys, the setting's data set and ratio) is not a confound and gets no
note; `views` are part of a method's definition, so rows of different methods may differ there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

PREFIX = "protocol."
LABELS = {
    "epochs": "epochs", "optimizer_steps": "optimiser steps", "steps_per_epoch": "steps per epoch",
    "sample_passes": "sample passes", "batch_size": "batch size", "schedule.name": "LR schedule",
    "schedule.lr": "LR", "schedule.momentum": "momentum", "schedule.warmup_epochs": "warm-up epochs",
    "schedule.milestones": "LR milestones", "weight_decay": "weight decay", "views": "views",
    "backbone": "backbone", "image_size": "image size", "subset.dataset": "data set",
    "subset.profile": "subset profile", "subset.ratio": "imbalance ratio", "subset.max_per_class": "head size",
    "subset.data_seed": "data seed", "subset.n_train": "training images", "class_order": "class order",
    "budget.rule": "budget", "budget.reference_batch_size": "budget reference batch",
    "budget.reference_epochs": "budget reference epochs", "selection": "selection", "eval_set": "evaluation set",
    "world_size": "processes",
}
# fields a setting fixes (each table column is one setting): never a confound between rows of a column
SETTING_FIELDS = {"subset.dataset", "subset.ratio", "subset.max_per_class", "subset.profile", "subset.n_train"}
# what a varied spec key moves in the fingerprint (a varied key is compared on purpose)
DERIVED = {
    "epochs": {"epochs", "optimizer_steps", "sample_passes", "schedule.milestones", "schedule.warmup_epochs"},
    "batch_size": {"batch_size", "optimizer_steps", "steps_per_epoch"},
    "budget": {"budget.rule", "epochs", "optimizer_steps", "sample_passes", "schedule.milestones",
               "schedule.warmup_epochs"},
    "backbone": {"backbone"}, "image_size": {"image_size"}, "lr": {"schedule.lr"},
    "lr_milestones": {"schedule.milestones"}, "schedule": {"schedule.name"}, "weight_decay": {"weight_decay"},
    "warmup_epochs": {"schedule.warmup_epochs"}, "class_order": {"class_order"},
    "data_seed": {"subset.data_seed"}, "profile": {"subset.profile"}, "view1": {"views"}, "view2": {"views"},
}
METHOD_FIELDS = {"views"}  # a method's own augmentation pipelines: differ between methods by design
UNKNOWN = "unknown"


def flatten_protocol(record: dict[str, Any]) -> dict[str, Any]:
    """{"schedule": {"lr": 0.1}} -> {"protocol.schedule.lr": 0.1}; lists become tuples (hashable)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}", v)
        else:
            out[prefix] = tuple(obj) if isinstance(obj, list) else obj

    walk(PREFIX.rstrip("."), record)
    return out


def label(field: str) -> str:
    return LABELS.get(field, field.replace("_", " "))


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return UNKNOWN
    if isinstance(value, tuple):
        return "/".join(fmt(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fields(frame: pd.DataFrame) -> list[str]:
    """The frame's fingerprint fields, in LABELS order (then any others by name)."""
    found = [c[len(PREFIX):] for c in frame.columns if c.startswith(PREFIX)]
    known = list(LABELS)
    return sorted(found, key=lambda f: (known.index(f) if f in known else len(known), f))


def exempt(vary_keys: Iterable[str]) -> set[str]:
    """Fingerprint fields the grid moves on purpose (so differences there are not flagged)."""
    out = set(SETTING_FIELDS)
    for key in vary_keys:
        out |= DERIVED.get(key, set())
    return out


def _value(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    if hasattr(v, "item") and not isinstance(v, tuple):
        return v.item()
    return v


def shared_text(frame: pd.DataFrame, vary_keys: Sequence[str] = ()) -> str:
    """"Protocol shared by every run: epochs 60, ...; varies with the setting: ...; differs: ... (notes)."""
    if frame.empty or not fields(frame):
        return ""
    shared, unknown, by_setting, differ = [], [], [], []
    skip = exempt(vary_keys) - SETTING_FIELDS
    for f in fields(frame):
        col = frame[PREFIX + f].map(_value)
        values = set(map(fmt, col))
        if values == {UNKNOWN} and f.startswith("budget.reference"):
            continue  # set only under budget=steps/samples
        if values == {UNKNOWN}:
            unknown.append(label(f))
        elif len(values) == 1:
            shared.append(f"{label(f)} {values.pop()}")
        elif f == "subset.dataset":
            continue  # the column headers say it
        elif f in skip:
            continue
        elif all(len(set(map(fmt, g))) == 1 for _, g in col.groupby(frame["setting"], sort=True)):
            parts = [f"{s} {fmt(g.iloc[0])}" for s, g in col.groupby(frame["setting"], sort=True)]
            by_setting.append(f"{label(f)} ({'; '.join(parts)})")
        else:
            differ.append(label(f))
    text = "Protocol shared by every run: " + ", ".join(shared) + "."
    if unknown:
        text += " Unknown (older records do not tell): " + ", ".join(unknown) + "."
    if by_setting:
        text += " Per setting: " + ", ".join(by_setting) + "."
    if differ:
        text += " Differs between runs: " + ", ".join(differ) + " (see the numbered notes)."
    return text


def row_notes(frame: pd.DataFrame, row_of: pd.Series, vary_keys: Sequence[str] = (),
              order: Sequence[str] | None = None) -> list[tuple[list[str], str]]:
    """[(row keys, "field a vs b, ...")]: per setting and seed, each row's runs against the most common
    value among the rows (the other rows' value); rows with the same deviation share a note. `order`:
    the row keys in display order."""
    if frame.empty or not fields(frame):
        return []
    skip = exempt(vary_keys) | METHOD_FIELDS
    dev: dict[str, dict[str, set[str]]] = {}  # row -> "field" -> {"a vs b"}
    order = list(order) if order is not None else list(dict.fromkeys(row_of.loc[frame.index]))
    for f in fields(frame):
        if f in skip:
            continue
        col = frame[PREFIX + f].map(lambda v: fmt(_value(v)))
        for _, idx in frame.groupby(["setting", "seed"], sort=True).groups.items():
            per_row: dict[str, set[str]] = {}
            for i in idx:
                per_row.setdefault(row_of[i], set()).add(col[i])
            if len(per_row) < 2:
                continue
            counts = Counter(v for vals in per_row.values() for v in vals)
            if len(counts) < 2:
                continue
            ref = counts.most_common(1)[0][0]
            for r, vals in per_row.items():
                for v in vals - {ref}:
                    dev.setdefault(r, {}).setdefault(f, set()).add(f"{v} vs {ref}")
    groups: dict[str, list[str]] = {}
    for r in order:
        if r in dev:
            text = "; ".join(f"{label(f)} {', '.join(sorted(vs))}" for f, vs in dev[r].items())
            groups.setdefault(text, []).append(r)
    return [(rows, text) for text, rows in groups.items()]


def arm_mismatches(runs_a: pd.DataFrame, runs_b: pd.DataFrame, compared: Iterable[str] = ()) -> list[str]:
    """"field a vs b" for every fingerprint field where the arms' runs (same setting and seed) disagree,
    leaving out the compared keys (and what they move) and the methods' own views."""
    skip = exempt(compared) | METHOD_FIELDS
    both = pd.concat([runs_a.assign(_arm="a"), runs_b.assign(_arm="b")])
    out = []
    for f in fields(both):
        if f in skip:
            continue
        col = both[PREFIX + f].map(lambda v: fmt(_value(v)))
        pairs = set()
        for _, g in both.groupby(["setting", "seed"], sort=True):
            va = set(col[g.index[g["_arm"] == "a"]])
            vb = set(col[g.index[g["_arm"] == "b"]])
            if va and vb and va != vb:
                pairs.add(f"{'/'.join(sorted(va))} vs {'/'.join(sorted(vb))}")
        if pairs:
            out.append(f"{label(f)} {', '.join(sorted(pairs))}")
    return out
