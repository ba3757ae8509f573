"""The trainer end to end on `shapes`: a complete run directory, no-op reruns, exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from ltbench.config import build_spec
from ltbench.errors import LtbenchError
from ltbench.files import read_jsonl
from ltbench.train import RuntimeOptions, run_directory, train
from tests.resume import check_exact_resume


def _runtime(tmp_path, **kw):
    return RuntimeOptions(results_dir=tmp_path, device="cpu", argv=["test"], **kw)


def test_run_writes_a_complete_directory_and_reruns_are_noops(tmp_path, tiny):
    spec = build_spec("erm", "shapes", 10, 0, "paper", {**tiny, "epochs": 2})
    final = train(spec, _runtime(tmp_path))
    run_dir = run_directory(spec, tmp_path)
    assert {p.name for p in run_dir.iterdir()} >= {"spec.json", "env.json", "metrics.jsonl", "last.pt", "final.json"}
    assert json.loads((run_dir / "spec.json").read_text()) == json.loads(json.dumps(spec.to_dict()))
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[-1]["top1"] == final["top1"]
    assert final["train_class_counts"] == [60, 46, 35, 27, 21, 16, 12, 10, 7, 6]
    assert final["group_sizes"] == {"many": 0, "medium": 5, "few": 5}
    assert len(final["per_class_acc"]) == 10 and final["best_selection"].startswith("oracle")
    assert final["seen_split"]["seen"]["top1"] is not None  # shapes' background metrics
    stamp = (run_dir / "final.json").stat().st_mtime_ns
    assert train(spec, _runtime(tmp_path)) == final
    assert (run_dir / "final.json").stat().st_mtime_ns == stamp


def test_resume_gives_exactly_the_uninterrupted_numbers(tmp_path, tiny):
    spec = build_spec("drw", "shapes", 10, 0, "paper", {**tiny, "epochs": 3, "drw_start_epoch": 1})
    check_exact_resume(spec, tmp_path)


def test_refuses_to_resume_across_specs(tmp_path, tiny):
    spec = build_spec("erm", "shapes", 10, 0, "paper", {**tiny, "epochs": 1})
    run_dir = run_directory(spec, tmp_path)
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(json.dumps(spec.to_dict()))
    torch.save({"spec_hash": "000000000000"}, run_dir / "last.pt")
    with pytest.raises(LtbenchError, match="another spec"):
        train(spec, _runtime(tmp_path))


def test_refuses_a_directory_holding_another_spec(tmp_path, tiny):
    spec = build_spec("erm", "shapes", 10, 0, "paper", {**tiny, "epochs": 1})
    other = build_spec("erm", "shapes", 10, 0, "paper", {**tiny, "epochs": 2})
    run_dir = run_directory(spec, tmp_path)
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(json.dumps(other.to_dict()))
    with pytest.raises(LtbenchError, match="does not match"):
        train(spec, _runtime(tmp_path))
