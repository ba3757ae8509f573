"""The protocol fingerprint: its step count is the trainer's, it lands in final.json, old records load."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ltbench import distributed as ltdist
from ltbench.config import build_spec
from ltbench.protocol import FIELDS, protocol_of, protocol_record, shared_and_differing, steps_per_epoch
from ltbench.sources import ResidentSource
from ltbench.train import RuntimeOptions, train


def _runtime(tmp_path):
    return RuntimeOptions(results_dir=tmp_path, device="cpu", argv=["test"])


def test_final_json_holds_the_trainers_real_step_count(tmp_path, tiny, monkeypatch):
    steps = []
    real_step = torch.optim.SGD.step

    def counting_step(self, *args, **kwargs):
        steps.append(1)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", counting_step)
    spec = build_spec("erm", "shapes", 10, 0, "paper", {**tiny, "epochs": 2})
    final = train(spec, _runtime(tmp_path))
    proto = final["protocol"]
    n = sum(final["train_class_counts"])
    assert n % tiny["batch_size"]  # a short last batch: drop_last matters for this count
    assert proto["optimizer_steps"] == len(steps) == 2 * math.ceil(n / tiny["batch_size"])
    assert proto["sample_passes"] == n * 1 * 2 and proto["views"] == ["standard"]
    assert proto["image_size"] == 32 and proto["backbone"] == "resnet8" and proto["batch_size"] == 64
    assert proto["subset"] == {"dataset": "shapes", "profile": "exp", "ratio": 10, "max_per_class": 60,
                               "data_seed": 0, "n_train": n}
    assert proto["selection"] == "last" and proto["eval_set"] == "test" and proto["class_order"] == 0
    assert proto["budget"]["rule"] == "epochs"
    assert proto["schedule"]["milestones"] == list(spec.train.lr_milestones)
    stored = json.loads((tmp_path / spec.run_id / "final.json").read_text())
    assert stored["protocol"] == proto


@pytest.mark.parametrize("n,batch,world", [(240, 64, 1), (240, 64, 2), (1236, 256, 4), (7, 4, 2), (64, 64, 1)])
def test_steps_per_epoch_equals_sharded_batching(n, batch, world):
    """The count against the trainer's own shard + batches code, rank by rank."""
    source = ResidentSource(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.zeros(n, dtype=torch.int64),
                            torch.device("cpu"))
    counts = set()
    for rank in range(world):
        d = ltdist.Dist(world=world, rank=rank)
        order = d.shard(torch.arange(n))
        counts.add(sum(1 for _ in source.batches(order, batch // world)))
    assert counts == {steps_per_epoch(n, batch, world)}


def test_sample_passes_count_every_view():
    spec = build_spec("scl", "shapes", 10, 0, "paper", {"max_per_class": 60, "epochs": 3}).to_dict()
    rec = protocol_record(spec, [10, 5], ["cutout", "sim"])
    assert rec["sample_passes"] == 15 * 2 * 3
    assert rec["optimizer_steps"] == 3 * 1 and rec["batch_size"] == 256


def test_an_old_record_loads_with_unknowns():
    spec = build_spec("erm", "shapes", 10, 0, "paper", {"max_per_class": 60, "epochs": 4}).to_dict()
    old_final = {"top1": 50.0, "train_class_counts": [60, 40, 20]}
    rec = protocol_of(old_final, spec)
    assert set(rec) == set(FIELDS)
    assert rec["optimizer_steps"] == 4 * math.ceil(120 / 128) and rec["epochs"] == 4
    assert rec["views"] is None and rec["sample_passes"] is None and rec["image_size"] is None
    assert rec["class_order"] == 0 and rec["budget"]["rule"] == "epochs"  # older runs predate both
    stored = {"protocol": {"epochs": 9}}
    assert protocol_of(stored, spec)["epochs"] == 9 and protocol_of(stored, spec)["views"] is None


def test_shared_and_differing_fields():
    spec = build_spec("erm", "shapes", 10, 0, "paper", {"max_per_class": 60, "epochs": 4}).to_dict()
    a = protocol_record(spec, [60, 40], ["standard"])
    b = protocol_record({**spec, "train": {**spec["train"], "batch_size": 64}}, [60, 40], ["standard"])
    shared, differing = shared_and_differing([a, b])
    assert differing["batch_size"] == [128, 64] and differing["optimizer_steps"] == [4, 8]
    assert shared["epochs"] == 4 and "epochs" not in differing
