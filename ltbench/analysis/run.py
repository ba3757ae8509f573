"""One finished run -> every post-hoc analysis it can answer (and a line for each it cannot)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ltbench.analysis import calibration, confusion, logit_adjust, priors
from ltbench.data.shots import GROUPS, shot_groups
from ltbench.errors import LtbenchError
from ltbench.predictions import Outputs, read_predictions
from ltbench.rundir import RunDir

NO_PREDICTIONS = ("no predictions.npz (a run saved before predictions were recorded): only the shifted-prior "
                  "table (from per_class_acc); rerun with --force for the rest")
SUMMARY_ONLY = ("predictions stored as a bounded summary (classes x test images above the limit): "
                "no logit adjustment and no prior-aware column, which need full logits")


@dataclass
class RunAnalysis:
    run_dir: Path
    run_id: str
    method: str
    dataset: str
    setting: str
    seed: int
    train_counts: list[int]
    rule: str
    eval_set: str  # "test" (the whole balanced test set) or "test-half" (a val split exists)
    shifted: list[dict[str, Any]] = field(default_factory=list)  # prior, top1, top1_adjusted
    curve: list[dict[str, Any]] | None = None  # logit adjustment on test, one row per tau
    val_curve: list[dict[str, Any]] | None = None  # the same on the val half / val list
    tau: float | None = None  # chosen on val (None: no val; the whole curve is test-selected)
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)  # all/many/medium/few -> reliability()
    confusion: np.ndarray | None = None
    pairs: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _setting(spec: dict[str, Any]) -> str:
    from ltbench.report.labels import setting_id

    return setting_id(spec["dataset"], float(spec["ratio"]), spec.get("max_per_class"))


def analyze_run(run_dir: Path) -> RunAnalysis:
    """Every analysis of one finished run directory (LtbenchError for an unfinished or damaged one)."""
    run_dir = Path(run_dir)
    try:
        final = RunDir(run_dir).load_final()
        spec = RunDir(run_dir).read_spec()
    except (ValueError, OSError) as exc:
        raise LtbenchError(f"{run_dir}: {exc}") from None
    if final is None:
        raise LtbenchError(f"{run_dir} is not a finished run (no final.json)")
    counts = [int(n) for n in final["train_class_counts"]]
    a = RunAnalysis(run_dir, str(final.get("run_id") or run_dir.name), spec["method"], spec["dataset"],
                    _setting(spec), int(spec["seed"]), counts, final["shot_rule"],
                    str(final.get("eval_set", "test")))
    outputs = read_predictions(run_dir, final)
    test, val = outputs if outputs is not None else (None, None)
    if test is None:
        a.missing.append(NO_PREDICTIONS)
    elif test.logits is None:
        a.missing.append(SUMMARY_ONLY)
    _shifted(a, final["per_class_acc"], test)
    if test is not None:
        _logit_adjustment(a, test, val)
        _calibration(a, test)
        a.confusion = test.confusion_matrix(len(counts))
        a.pairs = confusion.most_confused(a.confusion, counts, a.rule)
    return a


def _shifted(a: RunAnalysis, per_class_acc: list[float], test: Outputs | None) -> None:
    for label, p in priors.prior_grid(a.train_counts):
        row = {"prior": label, "top1": priors.shifted_accuracy(per_class_acc, p), "top1_adjusted": None}
        if test is not None and test.logits is not None:
            adjusted = priors.prior_adjusted_per_class(test.logits, test.labels, a.train_counts, p)
            row["top1_adjusted"] = priors.shifted_accuracy(list(adjusted), p)
        a.shifted.append(row)


def _logit_adjustment(a: RunAnalysis, test: Outputs, val: Outputs | None) -> None:
    if test.logits is None:
        return
    a.curve = logit_adjust.curve(test.logits, test.labels, a.train_counts, a.rule)
    if val is not None and val.logits is not None:
        a.val_curve = logit_adjust.curve(val.logits, val.labels, a.train_counts, a.rule)
        a.tau = logit_adjust.select_tau(a.val_curve)


def _confidence(test: Outputs) -> np.ndarray:
    if test.logits is not None:
        return calibration.softmax_confidence(test.logits)
    if test.confidence is None:  # a summary written here always has it (predictions.summarize_logits)
        raise LtbenchError("predictions.npz has neither logits nor the confidence of a summary")
    return test.confidence


def _calibration(a: RunAnalysis, test: Outputs) -> None:
    conf, correct = _confidence(test), test.preds == test.labels
    a.calibration["all"] = calibration.reliability(conf, correct)
    groups = shot_groups(a.train_counts, a.rule)
    for g in GROUPS:
        mask = np.isin(test.labels, groups[g])
        if mask.any():
            a.calibration[g] = calibration.reliability(conf[mask], correct[mask])
