"""A run's identity: the canonical JSON of its spec and the hash that ends its run id. No torch import.

Kept apart from RunSpec (ltbench.config) so that readers of records (tables, status) can check a
record against its spec.json from the plain dict, without building the spec.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# TrainSettings fields added after run ids were first published: left at these defaults they stay out of
# the hash, so every earlier spec keeps its run id.
_HASH_OMITTED_DEFAULTS: dict[str, Any] = {"image_size": None, "val_select": False, "budget": "epochs",
                                          "budget_ref_batch": None, "budget_ref_epochs": None}
# the same for top-level spec fields and for method hyperparameters (by name, in any method's hparams)
_HASH_OMITTED_TOP: dict[str, Any] = {"class_order": 0}
_HASH_OMITTED_HPARAMS: dict[str, Any] = {"box_clip": "clip", "saliency_pad": "include",
                                          "supcon_weighting": "none"}


def jsonable(obj: Any) -> Any:
    """A spec as JSON holds it, with integral floats as ints (100.0 and 100 hash the same)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)  # 100.0 and 100 hash the same
    return obj


def canonical_spec_json(spec: dict[str, Any]) -> str:
    """The text a run's hash is taken of (a spec as RunSpec.to_dict or spec.json holds it)."""
    data = jsonable(spec)
    train = dict(data["train"])
    for key, default in _HASH_OMITTED_DEFAULTS.items():
        if train.get(key, default) == default:
            train.pop(key, None)
    data = _omit_defaults(data, _HASH_OMITTED_TOP)
    if isinstance(data.get("hparams"), dict):
        data["hparams"] = _omit_defaults(data["hparams"], _HASH_OMITTED_HPARAMS)
    return json.dumps({**data, "train": train}, sort_keys=True, separators=(",", ":"))


def spec_with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec.json with the fields added after it was written filled in at their defaults.

    A spec written before `class_order`, `budget`, `box_clip`, ... existed ran with their defaults (that is
    why those defaults stay out of the hash), so readers that compare configurations must see those values,
    not a missing field that agrees with anything: an old class-order-0 record is not a class-order-1 run.
    """
    out = dict(spec)
    for key, default in _HASH_OMITTED_TOP.items():
        out.setdefault(key, default)
    if isinstance(out.get("train"), dict):
        out["train"] = {**_HASH_OMITTED_DEFAULTS, **out["train"]}
    hparams = out.get("hparams")
    if isinstance(hparams, dict):  # only for the methods that have the field (told by a field they all record)
        out["hparams"] = {**{k: v for k, (marker, v) in _HPARAM_FAMILY_DEFAULTS.items() if marker in hparams},
                          **hparams}
    return out


# hparams added later, with a field every method that has them records (SMCL's family: mask_locator)
_HPARAM_FAMILY_DEFAULTS: dict[str, tuple[str, Any]] = {k: ("mask_locator", v) for k, v in _HASH_OMITTED_HPARAMS.items()}


def _omit_defaults(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not (k in defaults and v == defaults[k])}


def spec_dict_hash(spec: dict[str, Any]) -> str:
    """A run's spec hash (the suffix of its run id), computed from the plain dict: no torch needed."""
    return hashlib.sha256(canonical_spec_json(spec).encode()).hexdigest()[:12]
