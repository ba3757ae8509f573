"""Saved test outputs: full float16 logits under the limit, the bounded summary above it, hashed in final.json."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from ltbench import predictions as P
from ltbench.config import build_spec
from ltbench.errors import LtbenchError
from ltbench.train import RuntimeOptions, run_directory, train


def _fake(n: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c)).astype(np.float32) * 3, rng.integers(0, c, size=n)


def test_small_outputs_keep_full_float16_logits(tmp_path):
    logits, labels = _fake(200, 10)
    record = P.write_predictions(tmp_path, logits, labels)
    data = (tmp_path / P.PREDICTIONS_FILE).read_bytes()
    assert record["kind"] == "logits" and record["sha256"] == hashlib.sha256(data).hexdigest()
    test, val = P.read_predictions(tmp_path, {"predictions": record})
    assert val is None
    assert np.array_equal(test.logits, logits.astype(np.float16).astype(np.float32))
    assert np.array_equal(test.labels, labels)


def test_above_the_limit_a_bounded_summary_is_stored(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "LOGITS_LIMIT", 100)
    logits, labels = _fake(50, 8, seed=1)
    record = P.write_predictions(tmp_path, logits, labels)
    test, _ = P.read_predictions(tmp_path, {"predictions": record})
    assert record["kind"] == "summary" and test.logits is None
    order = np.argsort(-logits, axis=1)[:, :P.TOPK]
    assert np.array_equal(test.topk_idx, order)
    assert np.allclose(test.true_logit, logits[np.arange(50), labels], atol=1e-2)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(test.confidence, probs.max(axis=1), atol=1e-3)
    expected = np.zeros((8, 8), dtype=int)
    for y, p in zip(labels, logits.argmax(axis=1), strict=True):
        expected[y, p] += 1
    assert np.array_equal(test.confusion, expected)


def test_a_run_without_predictions_reads_as_none(tmp_path):
    assert P.read_predictions(tmp_path, {"top1": 50.0}) is None


def test_edited_linked_or_missing_files_are_one_line_errors(tmp_path):
    logits, labels = _fake(20, 4)
    record = P.write_predictions(tmp_path, logits, labels)
    path = tmp_path / P.PREDICTIONS_FILE
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(LtbenchError, match="SHA-256"):
        P.read_predictions(tmp_path, {"predictions": record})
    other = tmp_path / "elsewhere.npz"
    path.rename(other)
    os.symlink(other, path)
    with pytest.raises(LtbenchError, match="symbolic link"):
        P.read_predictions(tmp_path, {"predictions": record})
    path.unlink()
    with pytest.raises(LtbenchError, match="missing"):
        P.read_predictions(tmp_path, {"predictions": record})


def test_a_run_writes_its_predictions_and_their_hash(tmp_path, tiny):
    spec = build_spec("erm", "shapes", 10, 0, "paper", {**tiny, "epochs": 1})
    final = train(spec, RuntimeOptions(results_dir=tmp_path, device="cpu", argv=["test"]))
    run_dir = run_directory(spec, tmp_path)
    data = (run_dir / P.PREDICTIONS_FILE).read_bytes()
    assert final["predictions"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads((run_dir / "final.json").read_text())["predictions"] == final["predictions"]
    test, val = P.read_predictions(run_dir, final)
    assert val is None and test.logits.shape == (len(test.labels), 10)
    # the saved logits reproduce the recorded per-class accuracy (float16 may flip a near-tie)
    for cls, acc in enumerate(final["per_class_acc"]):
        mask = test.labels == cls
        assert 100.0 * float((test.logits[mask].argmax(1) == cls).mean()) == pytest.approx(acc, abs=5.0)
    assert 100.0 * float((test.logits.argmax(1) == test.labels).mean()) == pytest.approx(final["top1"], abs=0.5)
