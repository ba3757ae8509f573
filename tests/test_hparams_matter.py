"""Every hyperparameter of every registered method changes the computation, or leaves the run id.

A setting that changes nothing but the spec gives two run ids for one computation (and a table
with a difference that is not one). For each registered method and each field of its hyperparameter
dataclass, this sets a value different from the resolved default and requires one of:
  - the resolved spec (the run id) is unchanged: the combination is normalised away, or
  - the spec builder refuses the value with a one-line error, or
  - something the trainer sees changes: the model options, the views, the model set-up, the optimiser
    groups, or, over a short run of steps at every epoch, the losses, the logs, the forwarded views
    or the sampler calls.
Methods registered later are walked automatically. Intentional exceptions go in EXCEPTIONS, with
the reason.
"""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest
import torch

from ltbench.config import build_spec
from ltbench.errors import LtbenchError
from ltbench.method import Batch
from ltbench.models import build_model
from ltbench.registry import get_method, list_methods

from .fakes import FakeServices, pattern_images

EPOCHS = 4  # epoch-fraction defaults land on epoch 3 (round(0.8 * 4)), so both sides of a switch are run
STEPS = 6  # steps per epoch: enough per-batch draws that SMCL's masking (p = 0.2) happens in epoch 3
LABELS = torch.tensor([0, 0, 1, 2, 3, 1, 0, 2])

# (method, field) -> why a change of this field may leave the observed computation unchanged
EXCEPTIONS: dict[tuple[str, str], str] = {
    **{(m, "saliency_pad"): "acts only on views with a zero border strip (crop padding), which the fake views "
       "lack; tests/test_box_clip.py shows it moving the peaks" for m in ("smcl", "drw+smcl")},
}


def _fields(name: str) -> list[tuple[str, typing.Any]]:
    cls = get_method(name).cls.Hparams
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls)]


def _alternatives(annotation: typing.Any, value: typing.Any) -> list[list[typing.Any]]:
    """Values different from the resolved default `value`, in groups of which one must make a difference.

    Every other choice of a Literal or bool must make a difference on its own. A number gets a smaller
    and a larger value, of which one must: a probability halved may keep every draw of this short run
    on the same side of it, and a larger one may be out of range (refused).
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return [[a] for a in args if a != value]
    if value is None:  # resolved by the method itself (e.g. from the class count)
        return [[1, 2]] if annotation is int else [[0.5, 0.1]]
    if annotation is bool:
        return [[not value]]
    if annotation is int:
        return [[value // 2 if value // 2 != value else value + 1, value + 1]]
    if annotation is float:
        return [[value * 0.5, value * 1.5] if value else [0.5]]
    raise AssertionError(f"no alternative for a field of type {annotation!r}: extend _alternatives")


def _observe(name: str, hparams: dict) -> list:
    """What the trainer would see of this method over EPOCHS x STEPS fixed batches."""
    entry = get_method(name)
    sv = FakeServices(image=(16, 16), epochs=EPOCHS, seed=3)
    method = entry.cls(entry.cls.Hparams(**hparams), sv)
    try:
        return _run(method, sv)
    except AttributeError as exc:
        if "TinyNet" not in str(exc):
            raise
    # the method's model has parts the tiny model lacks: the smallest real backbone with its options
    torch.manual_seed(0)
    model = build_model("resnet8", 4, 3, method.model_options())
    sv = FakeServices(image=(16, 16), epochs=EPOCHS, seed=3, model=model)
    return _run(entry.cls(entry.cls.Hparams(**hparams), sv), sv)


def _bias(model: torch.nn.Module) -> list | None:
    bias = getattr(model.classifier, "bias", None)  # a cosine classifier has none
    return None if bias is None else bias.tolist()


def _run(method, sv: FakeServices) -> list:
    method.setup_model(sv.model)
    groups = method.param_groups(sv.model)
    seen: list = [repr(method.model_options()), method.views(), _bias(sv.model),
                  None if groups is None else [(len(g["params"]), g.get("weight_decay")) for g in groups]]
    images = pattern_images(len(LABELS), sv.image_size, seed=7)
    for epoch in range(EPOCHS):
        method.on_epoch_start(epoch)
        for _ in range(STEPS):
            views = [sv.augment(p, images) for p in method.views()]
            out = method.training_step(Batch(images, LABELS, views))
            seen.append((round(out.loss.item(), 6), {k: round(float(v), 6) for k, v in sorted(out.logs.items())},
                         [round(v.sum().item(), 4) for v in sv.seen], list(sv.draws)))
    return seen


def _spec(name: str, overrides: dict):
    return build_spec(name, "shapes", 10, overrides={"epochs": EPOCHS, **overrides})


CASES = [(m.name, f, ann) for m in list_methods() for f, ann in _fields(m.name)]


@pytest.fixture(scope="module")
def baselines() -> dict:
    return {}


@pytest.mark.slow  # about 2 CPU-minutes for the whole walk
@pytest.mark.parametrize(("name", "field", "annotation"), CASES, ids=[f"{n}-{f}" for n, f, _ in CASES])
def test_every_hyperparameter_changes_the_computation_or_leaves_the_run_id(name, field, annotation, baselines):
    if (name, field) in EXCEPTIONS:
        pytest.skip(EXCEPTIONS[(name, field)])
    base = _spec(name, {})
    if name not in baselines:
        baselines[name] = _observe(name, base.hparams)
    for group in _alternatives(annotation, base.hparams[field]):
        silent = []
        for value in group:
            try:
                spec = _spec(name, {field: value})
            except LtbenchError:
                break  # refused with one line: fine
            if spec.hash == base.hash or _observe(name, spec.hparams) != baselines[name]:
                break  # normalised away (one computation, one run id), or it makes a difference
            silent.append(value)
        assert len(silent) < len(group), \
            f"{name}: {field}={silent!r} change(s) the run id but not the computation"


def test_the_walk_sees_masked_and_mixed_batches():
    """The observation covers the branches the fields act in (else every masking field would pass)."""
    logs = [step[1] for step in _observe("smcl", _spec("smcl", {}).hparams)[4:]]
    assert any(log["masked"] == 1.0 for log in logs)
    draws = [len(step[3]) for step in _observe("cmo", _spec("cmo", {}).hparams)[4:]]  # cumulative
    assert draws[-1] > 0 and any(a == b for a, b in zip(draws, draws[1:], strict=False))  # mixed and plain steps


@pytest.mark.parametrize(("name", "noop", "same_as"), [
    ("smcl", {"mask_locator": "random", "saliency_input": "normalized"}, {"mask_locator": "random"}),
    ("smcl", {"mask_locator": "center", "saliency": "spectral-residual"}, {"mask_locator": "center"}),
    ("smcl", {"saliency": "spectral-residual", "saliency_input": "normalized"}, {"saliency": "spectral-residual"}),
    ("smcl", {"target_sampler": "cmo"}, {"target_sampler": "uniform"}),
    ("smcl", {"target_sampler": "uniform", "target_beta": 0.9}, {"target_sampler": "uniform"}),
    ("smcl", {"mask_locator": "center", "box_per": "batch"}, {"mask_locator": "center"}),
    ("smcl", {"box_per": "batch", "lambda_per_sample": True}, {"box_per": "batch"}),
    ("scl", {"mask_fill": "paste-target", "target_sampler": "instance"}, {}),
    ("erm", {"drw_beta": 0.9, "drw_weighting": "inverse", "drw_start_epoch": 1}, {}),
    ("drw", {"drw_weighting": "inverse", "drw_beta": 0.9}, {"drw_weighting": "inverse"}),
    ("cmo", {"mix_prob": 0.0, "weighted_alpha": 2.0, "mix_alpha": 0.3}, {"mix_prob": 0.0}),
    ("cb-focal", {"drw": True}, {}),
])
def test_no_op_combinations_resolve_to_one_run_id(name, noop, same_as):
    assert _spec(name, noop).hash == _spec(name, same_as).hash


def test_meaningful_combinations_keep_their_own_run_id():
    assert _spec("smcl", {"saliency_input": "normalized"}).hash != _spec("smcl", {}).hash
    assert _spec("cb-focal", {"drw": True, "drw_beta": 0.999}).hash != _spec("cb-focal", {}).hash
    assert _spec("smcl", {"mask_locator": "random", "box_per": "batch"}).hash != \
        _spec("smcl", {"mask_locator": "random"}).hash


def test_normalisation_keeps_every_committed_record_as_it_is():
    """Rebuilt from its own spec.json, each record of the CPU study keeps every hyperparameter value it has
    (fields added after the record was written are not compared), so no committed run id moves."""
    import json
    from pathlib import Path

    specs = sorted((Path(__file__).resolve().parents[1] / "results" / "cpu-study").rglob("spec.json"))
    assert specs
    for path in specs:
        s = json.loads(path.read_text())
        train = dict(s["train"])
        if train.get("budget_ref_epochs") is not None:  # an equal-budget run records its rescaled epochs and
            train.update(epochs=train["budget_ref_epochs"], budget_ref_epochs=None)  # the reference's; rebuild
        spec = build_spec(s["method"], s["dataset"], s["ratio"], s["seed"], s["preset"],  # from the latter
                          {**s["hparams"], **train, "data_seed": s["data_seed"], "profile": s["profile"],
                           "max_per_class": s["max_per_class"]})
        assert {k: spec.hparams[k] for k in s["hparams"]} == s["hparams"], path
