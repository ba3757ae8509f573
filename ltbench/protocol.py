"""A run's protocol fingerprint: what a number was trained and evaluated under (no torch import).

Two numbers are only comparable when they share a protocol: epochs, optimiser steps, sample-passes,
batch, schedule, weight decay, views, backbone, image size, subset and class order, budget rule,
selection rule and evaluation set. `protocol_record` derives the fingerprint of a resolved spec (the
trainer stores it in final.json); `protocol_of` returns it for any record, with None ("unknown") for
what an older final.json cannot tell.

Counting follows the trainer (ltbench/train.py, Trainer.train_epoch): each epoch is one permutation of
the training subset, sharded over `world_size` processes (DistributedSampler-style padding by wrapping,
ltbench/distributed.py Dist.shard) and cut into batches of batch_size / world_size per process with
drop_last=False, the LDAM-DRW / CMO loaders' setting (kaidic/LDAM-DRW cifar_train.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

SELECTION = "last"  # top1/many/medium/few in final.json are the last epoch's (best_* is reported apart)
EVAL_SET = "test"

FIELDS = ("epochs", "optimizer_steps", "steps_per_epoch", "sample_passes", "batch_size", "schedule",
          "weight_decay", "views", "backbone", "image_size", "subset", "class_order", "budget", "selection",
          "eval_set", "world_size")


def eval_set(spec: dict[str, Any]) -> str:
    """'test', or 'test-half' for val_select runs of a data set without a val list: a seeded balanced half
    of the test set selects and the other half is reported (ltbench/data/val_split.py). ImageNet-LT
    selects on its own val list and reports the whole test set."""
    if spec["train"].get("val_select") and spec["dataset"] != "imagenet-lt":
        return "test-half"
    return EVAL_SET


def steps_per_epoch(n_train: int, batch_size: int, world_size: int = 1) -> int:
    """Optimiser steps per epoch in each process: ceil(ceil(n / W) / (batch / W)), no batch dropped."""
    if n_train < 0 or batch_size < 1 or world_size < 1:
        raise ValueError(f"need n >= 0, batch >= 1, world >= 1; got {n_train}, {batch_size}, {world_size}")
    per_rank = -(-n_train // world_size)
    return math.ceil(per_rank / (batch_size // world_size)) if per_rank else 0


def protocol_record(spec: dict[str, Any], train_class_counts: Sequence[int], views: Sequence[str] | int,
                    world_size: int = 1, image_size: int | None = None) -> dict[str, Any]:
    """The fingerprint of a resolved spec (RunSpec.to_dict() or spec.json).

    `views`: the method's augmentation pipelines, one view of each source image each (a count when the
    names are not known). `image_size`: the side of the views fed to the model (None: unknown).
    """
    train = spec["train"]
    n = int(sum(train_class_counts))
    names = list(views) if not isinstance(views, int) else None
    n_views = views if isinstance(views, int) else len(views)
    per_epoch = steps_per_epoch(n, int(train["batch_size"]), world_size)
    epochs = int(train["epochs"])
    return {
        "epochs": epochs,
        "steps_per_epoch": per_epoch,
        "optimizer_steps": per_epoch * epochs,
        "sample_passes": n * n_views * epochs,
        "batch_size": int(train["batch_size"]),
        "schedule": _schedule(train),
        "weight_decay": train["weight_decay"],
        "views": names,
        "backbone": train["backbone"],
        "image_size": image_size if image_size is not None else train.get("image_size"),
        "subset": _subset(spec, n),
        "class_order": int(spec.get("class_order", 0)),
        "budget": _budget(train),
        "selection": SELECTION,
        "eval_set": eval_set(spec),
        "world_size": world_size,
    }


def protocol_of(final: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The stored fingerprint, or for an older final.json what its spec and counts tell (None: unknown).

    Older records predate budget and class_order, so those are known: "epochs" and 0 (identity).
    The views and the image size need the method and the data set, which a plain record does not hold.
    """
    stored = final.get("protocol")
    if isinstance(stored, dict):
        return {**dict.fromkeys(FIELDS), **stored}
    counts = final.get("train_class_counts")
    world = int(final.get("world_size", 1))
    if not isinstance(counts, list):
        train = spec["train"]
        return {**dict.fromkeys(FIELDS), "epochs": int(train["epochs"]), "batch_size": int(train["batch_size"]),
                "schedule": _schedule(train), "weight_decay": train["weight_decay"], "backbone": train["backbone"],
                "subset": _subset(spec, None), "class_order": int(spec.get("class_order", 0)),
                "budget": _budget(train), "selection": SELECTION, "eval_set": eval_set(spec), "world_size": world}
    record = protocol_record(spec, counts, 0, world)
    record.update({"views": None, "sample_passes": None})
    return record


def shared_and_differing(records: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Fields equal in every record (field -> value) and fields that differ (field -> values, in order)."""
    shared, differing = {}, {}
    for key in FIELDS:
        values = [r.get(key) for r in records]
        if all(v == values[0] for v in values):
            shared[key] = values[0]
        else:
            differing[key] = values
    return shared, differing


def _schedule(train: dict[str, Any]) -> dict[str, Any]:
    marks = train.get("lr_milestones")
    return {"name": train["schedule"], "lr": train["lr"], "momentum": train.get("momentum"),
            "warmup_epochs": train.get("warmup_epochs"), "milestones": list(marks) if marks is not None else None}


def _subset(spec: dict[str, Any], n: int | None) -> dict[str, Any]:
    return {"dataset": spec["dataset"], "profile": spec.get("profile", "exp"), "ratio": spec["ratio"],
            "max_per_class": spec.get("max_per_class"), "data_seed": spec.get("data_seed", 0), "n_train": n}


def _budget(train: dict[str, Any]) -> dict[str, Any]:
    return {"rule": train.get("budget", "epochs"), "reference_batch_size": train.get("budget_ref_batch"),
            "reference_epochs": train.get("budget_ref_epochs")}
