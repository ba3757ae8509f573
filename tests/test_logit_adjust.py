"""Logit adjustment (methods/logit_adjust.py): its training step against the formula written out literally
(Menon et al., ICLR 2021, arXiv 2007.07314, Section 4: CE(z + tau * log pi, y), pi the training class
prior), on fixed tensors; then one short training run on shapes through the one trainer, read back by the
report like any other method's."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import yaml
from ltbench.methods.logit_adjust import LogitAdjust, LogitAdjustHparams

from ltbench.cells import grid_records
from ltbench.config import build_spec
from ltbench.errors import LtbenchError
from ltbench.files import read_jsonl
from ltbench.grid import load_grid
from ltbench.method import Batch
from ltbench.registry import get_method
from ltbench.train import RuntimeOptions, run_directory, train

from .fakes import COUNTS, FakeServices, pattern_images

LABELS = torch.tensor([0, 0, 1, 2, 3, 1])


def literal_loss(z: torch.Tensor, y: torch.Tensor, counts: list[int], tau: float,
                 weights: list[float] | None = None) -> float:
    """mean_b -log softmax(z_b + tau * log pi)_{y_b}, pi_k = n_k / sum n; with per-class weights, PyTorch's
    weighted mean sum_b w_{y_b} l_b / sum_b w_{y_b}. Plain Python floats, one row at a time."""
    total_n = sum(counts)
    num = den = 0.0
    for row, label in zip(z.tolist(), y.tolist(), strict=True):
        adjusted = [zk + tau * math.log(n / total_n) for zk, n in zip(row, counts, strict=True)]
        top = max(adjusted)
        loss = top + math.log(sum(math.exp(a - top) for a in adjusted)) - adjusted[label]
        w = 1.0 if weights is None else weights[label]
        num += w * loss
        den += w
    return num / den


def step(tau: float, counts: list[int] | None = None, **hp: Any) -> tuple[float, torch.Tensor, FakeServices]:
    """The method's loss on a fixed batch, and the plain logits its fake trainer gave for that batch."""
    sv = FakeServices(image=(8, 8))
    if counts is not None:
        sv.class_counts = list(counts)
    method = LogitAdjust(LogitAdjustHparams(tau=tau, **hp), sv)
    method.on_epoch_start(sv.epochs - 1)
    views = [pattern_images(len(LABELS), (8, 8), seed=1).float() / 255]
    loss = method.training_step(Batch(torch.zeros(len(LABELS), 3, 8, 8, dtype=torch.uint8), LABELS, views)).loss
    with torch.no_grad():
        ((z, _),) = sv.model_outputs(views)
    return float(loss.detach()), z, sv


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_step_is_the_logit_adjusted_cross_entropy(tau: float) -> None:
    got, z, _ = step(tau)
    assert got == pytest.approx(literal_loss(z, LABELS, COUNTS, tau), rel=1e-5, abs=1e-6)


def test_tau_and_the_prior_change_the_loss() -> None:
    """A step that ignored tau, or the class counts, would match at most one of these literal values."""
    _, z, _ = step(1.0)
    by_tau = [literal_loss(z, LABELS, COUNTS, tau) for tau in (0.0, 0.5, 1.0, 2.0)]
    assert min(abs(a - b) for i, a in enumerate(by_tau) for b in by_tau[i + 1:]) > 1e-3
    reversed_counts = COUNTS[::-1]  # another prior, the same classes and logits
    got, z2, _ = step(1.0, reversed_counts)
    assert torch.equal(z, z2)
    assert got == pytest.approx(literal_loss(z, LABELS, reversed_counts, 1.0), rel=1e-5)
    assert abs(literal_loss(z, LABELS, reversed_counts, 1.0) - literal_loss(z, LABELS, COUNTS, 1.0)) > 1e-3
    uniform = [1] * len(COUNTS)  # a uniform prior adds a constant to every logit: plain cross-entropy
    assert literal_loss(z, LABELS, uniform, 1.0) == pytest.approx(literal_loss(z, LABELS, COUNTS, 0.0), rel=1e-9)


def test_by_hand() -> None:
    """Zero logits, counts (30, 10): softmax(log pi) = pi, so the loss of label 1 is -log 0.25 = log 4."""
    assert literal_loss(torch.zeros(1, 2), torch.tensor([1]), [30, 10], 1.0) == pytest.approx(math.log(4.0))


def test_drw_weights_the_adjusted_cross_entropy() -> None:
    got, z, sv = step(1.0, drw=True, drw_start_epoch=0)
    beta = 0.9999  # BaseHparams.drw_beta; class-balanced weights (Cui et al., arXiv 1901.05555), sum = C
    raw = [(1 - beta) / (1 - beta ** n) for n in sv.class_counts]
    weights = [w * len(raw) / sum(raw) for w in raw]
    assert got == pytest.approx(literal_loss(z, LABELS, sv.class_counts, 1.0, weights), rel=1e-5)


def test_registration_and_a_class_without_images() -> None:
    entry = get_method("logit-adjust")
    assert entry.cls is LogitAdjust and entry.paper_label is None and entry.description
    assert LogitAdjustHparams().tau == 1.0
    sv = FakeServices()
    sv.class_counts = [5, 0, 3, 1]
    with pytest.raises(LtbenchError, match="at least one training image per class"):
        LogitAdjust(LogitAdjustHparams(), sv)


def test_trains_on_shapes_through_the_trainer(tmp_path, tiny) -> None:
    spec = build_spec("logit-adjust", "shapes", 10, 0, "paper", {**tiny, "epochs": 2})
    assert spec.hparams["tau"] == 1.0
    assert build_spec("logit-adjust", "shapes", 10, 0, "paper", {**tiny, "epochs": 2, "tau": 0.5}).hash != spec.hash
    final = train(spec, RuntimeOptions(results_dir=tmp_path, device="cpu", argv=["test"]))
    assert 0.0 <= final["top1"] <= 100.0
    run_dir = run_directory(spec, tmp_path)
    assert (run_dir / "final.json").exists()
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) for r in rows)
    # the report reads it as it reads every method: a grid file naming it, its table row, the run's number
    grid_file = tmp_path / "la.yaml"
    grid_file.write_text(yaml.safe_dump({"methods": ["logit-adjust"], "datasets": ["shapes"], "ratios": [10],
                                         "seeds": [0], "preset": "paper", "overrides": {**tiny, "epochs": 2}}))
    warnings: list[str] = []
    records = grid_records(load_grid(grid_file), tmp_path, warnings.append)
    assert list(records.expected_ids) == [spec.run_id]
    table = records.table(warnings.append)
    (row,) = table.rows
    (top1,) = [col for col in table.columns if col.metric == "top1"]
    cell = table.cells[(row.key, top1.key)]
    assert (row.label, cell.n, cell.mean) == ("logit-adjust", 1, pytest.approx(final["top1"]))
