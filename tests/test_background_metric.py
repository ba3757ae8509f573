"""The background metric compares each tail class with itself: seen versus unseen backgrounds."""

from __future__ import annotations

import pytest
import torch

from ltbench.background import background_metrics
from ltbench.config import build_spec
from ltbench.data.shapes import NUM_BACKGROUNDS, ShapesConfig, allowed_backgrounds, generate
from ltbench.train import RuntimeOptions, train


def test_literal_values():
    labels = torch.tensor([0, 0, 1, 1, 1, 1, 2, 2, 2])
    seen = torch.tensor([1, 1, 1, 1, 0, 0, 1, 0, 0], dtype=torch.bool)
    preds = torch.tensor([0, 1, 1, 0, 1, 2, 2, 2, 0])
    out = background_metrics(preds, labels, seen, 4)
    # class 0: seen 1/2, no unseen; class 1: seen 1/2, unseen 1/2; class 2: seen 1/1, unseen 1/2; class 3: none
    assert out["per_class_background_acc"] == {"seen": [50.0, 50.0, 100.0, None], "unseen": [None, 50.0, 50.0, None]}
    assert out["bg_gap_tail"] == pytest.approx(((50 - 50) + (100 - 50)) / 2)


def test_no_background_effect_reads_zero_even_when_head_beats_tail():
    """The old seen/unseen gap mixes head vs tail: here it is large while the background does nothing."""
    labels = torch.arange(4).repeat_interleave(4)
    seen = torch.tensor([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0], dtype=torch.bool)  # 2, 3: tail
    correct = torch.tensor([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0], dtype=torch.bool)
    preds = torch.where(correct, labels, (labels + 1) % 4)
    out = background_metrics(preds, labels, seen, 4)
    old_gap = 100 * (correct[seen].double().mean() - correct[~seen].double().mean())
    assert old_gap > 20 and out["bg_gap_tail"] == 0.0


def test_shapes_tail_classes_are_the_background_limited_ones():
    cfg = ShapesConfig()
    data = generate(cfg)
    labels, seen = data["test_labels"], data["test_seen"]
    with_unseen = sorted(set(labels[~seen].tolist()))
    limited = [c for c, bgs in enumerate(allowed_backgrounds(cfg)) if len(bgs) < NUM_BACKGROUNDS]
    assert with_unseen == limited == list(range(cfg.num_classes // 2, cfg.num_classes))


def test_final_json_holds_the_metric(tmp_path, tiny):
    spec = build_spec("erm", "shapes", 10, 0, "paper", {**tiny, "epochs": 1})
    final = train(spec, RuntimeOptions(results_dir=tmp_path, device="cpu", argv=["test"]))
    acc = final["per_class_background_acc"]
    assert [v is None for v in acc["unseen"]] == [True] * 5 + [False] * 5
    assert all(v is not None for v in acc["seen"])
    gaps = [acc["seen"][c] - acc["unseen"][c] for c in range(5, 10)]
    assert final["bg_gap_tail"] == pytest.approx(sum(gaps) / 5, abs=1e-3)
