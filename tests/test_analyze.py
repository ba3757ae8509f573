"""Post-hoc analyses, each against an independent computation written here, and `ltbench analyze` end to end."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ltbench.analysis import calibration, confusion, logit_adjust, priors
from ltbench.analysis.run import NO_PREDICTIONS, analyze_run
from ltbench.cli import app
from ltbench.predictions import write_predictions

CPU_STUDY = Path(__file__).resolve().parent.parent / "results" / "cpu-study"


def _a_cpu_study_run() -> Path:
    return sorted(CPU_STUDY.glob("fashion-mnist-h500-r100/erm/s0-*"))[0]


def _literal_prior(counts: list[int], rho: float, backward: bool) -> list[float]:
    c = len(counts)
    ranked = sorted(range(c), key=lambda k: (-counts[k], k))  # most frequent first
    if backward:
        ranked = ranked[::-1]
    weights = {cls: rho ** (-r / (c - 1)) for r, cls in enumerate(ranked)}
    total = sum(weights.values())
    return [weights[k] / total for k in range(c)]


def test_shifted_prior_accuracy_is_the_prior_weighted_class_mean_of_a_real_run():
    final = json.loads((_a_cpu_study_run() / "final.json").read_text())
    counts, acc = final["train_class_counts"], final["per_class_acc"]
    for label, p in priors.prior_grid(counts):
        direction, _, rho = label.partition("-")
        if direction == "uniform":
            expected = [1 / len(counts)] * len(counts)
        else:
            expected = _literal_prior(counts, float(rho), direction == "backward")
        assert np.allclose(p, expected)
        want = sum(pk * ak for pk, ak in zip(expected, acc, strict=True))
        assert priors.shifted_accuracy(acc, p) == pytest.approx(want, abs=1e-9)
    # uniform on the balanced test set is plain top-1 (per_class_acc is rounded to 4 decimals)
    uniform = dict(priors.prior_grid(counts))["uniform"]
    assert priors.shifted_accuracy(acc, uniform) == pytest.approx(final["top1"], abs=1e-3)


def test_forward_prior_weights_frequent_classes_most():
    counts = [5, 500, 50]
    p = priors.shifted_prior(counts, 10, "forward")
    assert p[1] == pytest.approx(10 * p[0]) and p[1] > p[2] > p[0]
    b = priors.shifted_prior(counts, 10, "backward")
    assert b[0] == pytest.approx(10 * b[1])


def test_ece_equals_a_literal_binning():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 5)) * 2
    labels = rng.integers(0, 5, size=300)
    conf = calibration.softmax_confidence(logits)
    correct = logits.argmax(1) == labels
    total = 0.0
    for b in range(15):  # bins (b/15, (b+1)/15]
        lo, hi = b / 15, (b + 1) / 15
        members = [i for i in range(300) if lo < conf[i] <= hi]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            avg = sum(conf[i] for i in members) / len(members)
            total += len(members) / 300 * abs(acc - avg)
    assert calibration.reliability(conf, correct)["ece"] == pytest.approx(total, abs=1e-12)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.allclose(conf, probs.max(1))


def test_bin_edges_belong_to_the_lower_bin():
    conf = np.array([0.19, 0.2, 0.21, 1.0, 0.0])  # 0.2 = 3/15 closes bin (2/15, 3/15]
    assert calibration.bin_index(conf).tolist() == [2, 2, 3, 14, 0]
    rel = calibration.reliability(conf[:3], np.array([1, 1, 0]))
    # bins {0.19, 0.2} (both right) and {0.21} (wrong): ECE = 2/3 * |1 - 0.195| + 1/3 * |0 - 0.21|
    assert rel["ece"] == pytest.approx(2 / 3 * 0.805 + 1 / 3 * 0.21)


def test_logit_adjustment_matches_the_literal_formula():
    rng = np.random.default_rng(1)
    counts = [400, 100, 20, 5]
    logits = rng.normal(size=(200, 4))
    labels = rng.integers(0, 4, size=200)
    rows = logit_adjust.curve(logits, labels, counts, "shots-100-20", taus=(0.0, 1.0, 1.5))
    n = sum(counts)
    for row in rows:
        hits = 0
        for x, y in zip(logits, labels, strict=True):
            scores = [x[j] - row["tau"] * math.log(counts[j] / n) for j in range(4)]
            hits += scores.index(max(scores)) == y
        assert row["top1"] == pytest.approx(100 * hits / 200)
    assert rows[0]["top1"] == pytest.approx(100 * float((logits.argmax(1) == labels).mean()))
    assert logit_adjust.select_tau([{"tau": 0.0, "top1": 1}, {"tau": 0.5, "top1": 3}, {"tau": 1, "top1": 3}]) == 0.5


def test_prior_aware_adjustment_under_the_training_prior_changes_nothing():
    rng = np.random.default_rng(2)
    counts = [300, 30, 3]
    logits, labels = rng.normal(size=(90, 3)), np.repeat(np.arange(3), 30)
    train_prior = np.array(counts) / sum(counts)
    acc = priors.prior_adjusted_per_class(logits, labels, counts, train_prior)
    plain = [100 * float((logits[labels == k].argmax(1) == k).mean()) for k in range(3)]
    assert np.allclose(acc, plain)


def test_most_confused_pairs_per_group():
    counts = [500, 200, 50, 10]  # many, many, medium, few
    conf = np.array([[90, 10, 0, 0], [5, 95, 0, 0], [0, 30, 70, 0], [8, 2, 0, 10]])
    pairs = confusion.most_confused(conf, counts, "shots-100-20", top=1)
    by_group = {p["group"]: (p["true"], p["predicted"], p["share"]) for p in pairs}
    assert by_group == {"many": (0, 1, 10.0), "medium": (2, 1, 30.0), "few": (3, 0, 40.0)}
    assert confusion.class_name("fashion-mnist", 6) == "6 Shirt"


def _run_with_predictions(tmp_path: Path, val: bool = False) -> Path:
    """A copy of a CPU-study record with fixed synthetic logits saved beside it."""
    run = tmp_path / "fashion-mnist-h500-r100" / "erm" / _a_cpu_study_run().name
    shutil.copytree(_a_cpu_study_run(), run)
    final = json.loads((run / "final.json").read_text())
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(10), 20)
    logits = rng.normal(size=(200, 10)) + 3 * np.eye(10)[labels]
    vals = (logits[::2] + 0.1, labels[::2]) if val else None
    final["predictions"] = write_predictions(run, logits, labels, val=vals)
    (run / "final.json").write_text(json.dumps(final))
    return run


def test_analysis_of_a_run_with_logits(tmp_path):
    a = analyze_run(_run_with_predictions(tmp_path, val=True))
    assert not a.missing and a.tau is not None and a.curve[0]["tau"] == 0.0
    assert a.confusion.sum() == 200 and {r["prior"] for r in a.shifted} >= {"uniform", "forward-50", "backward-2"}
    assert all(r["top1_adjusted"] is not None for r in a.shifted)


def test_an_older_run_without_predictions_still_gives_the_shifted_prior_table(tmp_path):
    run = tmp_path / "r"
    shutil.copytree(_a_cpu_study_run(), run)
    a = analyze_run(run)
    assert a.missing == [NO_PREDICTIONS] and a.curve is None and a.confusion is None
    assert len(a.shifted) == 9 and all(r["top1"] is not None for r in a.shifted)


def test_analyze_command_writes_tables_and_figures(tmp_path):
    run = _run_with_predictions(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["analyze", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    stem = f"fashion-mnist-h500-r100-erm-{run.name}-analysis"
    for suffix in (".md", ".tex", "-shifted.csv", "-curve.csv", "-calibration.csv", "-pairs.csv",
                   "-logit-adjustment.png", "-reliability.png", "-confusion.png", "-shifted-priors.png"):
        assert stem + suffix in names
    assert "test-selected" in res.output  # no val split: the curve is labelled as chosen on test


def test_analyze_refuses_a_damaged_predictions_file_in_one_line(tmp_path):
    run = _run_with_predictions(tmp_path)
    (run / "predictions.npz").write_bytes(b"not a zip")
    res = CliRunner().invoke(app, ["analyze", str(run), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "SHA-256" in res.output and "Traceback" not in res.output


def test_analyze_a_grid_of_the_cpu_study(tmp_path):
    res = CliRunner().invoke(app, ["analyze", "experiments/cpu-study.yaml", "--results-dir", str(CPU_STUDY),
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cpu-study-analysis-shifted.csv").exists()
    assert "no predictions.npz" in res.output
