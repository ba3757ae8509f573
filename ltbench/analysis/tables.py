"""RunAnalysis objects -> tidy tables (one per analysis), averaged over seeds per (setting, method)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ltbench.analysis import calibration, confusion
from ltbench.analysis.run import RunAnalysis
from ltbench.data.shots import GROUPS

KEYS = ["setting", "method"]


def _cells(analyses: Sequence[RunAnalysis]) -> dict[tuple[str, str], list[RunAnalysis]]:
    cells: dict[tuple[str, str], list[RunAnalysis]] = {}
    for a in analyses:
        cells.setdefault((a.setting, a.method), []).append(a)
    return dict(sorted(cells.items()))


def _mean(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, 0
    return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else None), len(vals)


def shifted_table(analyses: Sequence[RunAnalysis]) -> pd.DataFrame:
    """Top-1 under each test prior: as trained (sum p_k acc_k) and after the prior-aware adjustment."""
    rows = []
    for (setting, method), runs in _cells(analyses).items():
        for i, prior in enumerate(r["prior"] for r in runs[0].shifted):
            mean, sd, n = _mean([a.shifted[i]["top1"] for a in runs])
            adj, _, n_adj = _mean([a.shifted[i]["top1_adjusted"] for a in runs])
            rows.append({"setting": setting, "method": method, "prior": prior, "top1": mean, "sd": sd, "n": n,
                         "top1_prior_adjusted": adj, "n_adjusted": n_adj})
    return pd.DataFrame(rows)


def curve_table(analyses: Sequence[RunAnalysis]) -> pd.DataFrame:
    """Post-hoc logit adjustment: mean top-1 / Many / Med / Few per tau, on test (and val if present)."""
    rows = []
    for (setting, method), runs in _cells(analyses).items():
        for split, attr in (("test", "curve"), ("val", "val_curve")):
            have = [getattr(a, attr) for a in runs if getattr(a, attr) is not None]
            if not have:
                continue
            for i, tau in enumerate(r["tau"] for r in have[0]):
                rec = {"setting": setting, "method": method, "split": split, "tau": tau, "n": len(have)}
                for k in ("top1", *GROUPS):
                    rec[k] = _mean([c[i][k] for c in have])[0]
                rows.append(rec)
    return pd.DataFrame(rows)


def tau_table(analyses: Sequence[RunAnalysis]) -> pd.DataFrame:
    """Per cell: top-1 at tau = 0, at each run's val-chosen tau (when a val split exists), and the best
    tau on test (an oracle, labelled test-selected)."""
    rows = []
    for (setting, method), runs in _cells(analyses).items():
        with_curve = [(a, a.curve) for a in runs if a.curve is not None]
        if not with_curve:
            continue
        curves = [c for _, c in with_curve]
        at0 = _mean([c[0]["top1"] for c in curves])[0]
        chosen = [(a.tau, c) for a, c in with_curve if a.tau is not None]
        at_val = _mean([next(r["top1"] for r in c if r["tau"] == tau) for tau, c in chosen])[0] if chosen else None
        mean_curve = [np.mean([c[i]["top1"] for c in curves]) for i in range(len(curves[0]))]
        best = int(np.argmax(mean_curve))
        rows.append({"setting": setting, "method": method, "n": len(curves), "top1_tau0": at0,
                     "tau_val": ", ".join(f"{tau:g}" for tau, _ in chosen) or None, "top1_tau_val": at_val,
                     "tau_test_selected": curves[0][best]["tau"], "top1_test_selected": float(mean_curve[best]),
                     "selection": "val" if chosen else "test-selected (no val split)"})
    return pd.DataFrame(rows)


def pooled_reliability(runs: Sequence[RunAnalysis], group: str) -> dict[str, Any] | None:
    """Bins summed over the runs of a cell (the diagram of all their test images together)."""
    parts = [a.calibration[group] for a in runs if group in a.calibration]
    if not parts:
        return None
    count = sum(p["count"] for p in parts)
    acc = sum(np.nan_to_num(p["accuracy"]) * p["count"] for p in parts)
    conf = sum(np.nan_to_num(p["confidence"]) * p["count"] for p in parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"count": count, "accuracy": np.where(count > 0, acc / count, np.nan),
                "confidence": np.where(count > 0, conf / count, np.nan),
                "bins": calibration.BINS}


def calibration_table(analyses: Sequence[RunAnalysis]) -> pd.DataFrame:
    rows = []
    for (setting, method), runs in _cells(analyses).items():
        for g in ("all", *GROUPS):
            mean, sd, n = _mean([100.0 * a.calibration[g]["ece"] for a in runs if g in a.calibration])
            if n:
                rows.append({"setting": setting, "method": method, "group": g, "ece": mean, "sd": sd, "n": n,
                             "images_per_run": int(np.mean([a.calibration[g]["n"] for a in runs
                                                            if g in a.calibration]))})
    return pd.DataFrame(rows)


def summed_confusion(runs: Sequence[RunAnalysis]) -> np.ndarray | None:
    mats = [a.confusion for a in runs if a.confusion is not None]
    return np.sum(mats, axis=0) if mats else None


def pairs_table(analyses: Sequence[RunAnalysis]) -> pd.DataFrame:
    """Most-confused (true, predicted) pairs per shot group, on the confusion summed over seeds."""
    rows = []
    for (setting, method), runs in _cells(analyses).items():
        conf = summed_confusion(runs)
        if conf is None:
            continue
        for p in confusion.most_confused(conf, runs[0].train_counts, runs[0].rule):
            rows.append({"setting": setting, "method": method, **p,
                         "true_name": confusion.class_name(runs[0].dataset, p["true"]),
                         "predicted_name": confusion.class_name(runs[0].dataset, p["predicted"])})
    return pd.DataFrame(rows)
