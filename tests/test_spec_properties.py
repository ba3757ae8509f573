"""Property tests of the spec builder: for any `--set` value and any experiment file, building either
accepts a value inside its declared range or raises the one-line LtbenchError — never anything else.

The ranges are read from the fields' own metadata (ltbench.bounds), so the oracle below is independent of
the checker: it re-derives "in range" from the declared Bounds numbers with plain comparisons.
"""

from __future__ import annotations

import dataclasses
import math
import typing

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltbench.bounds import field_bounds
from ltbench.config import SPEC_KEYS, RunSpec, TrainSettings, build_spec, parse_set_pairs
from ltbench.errors import LtbenchError
from ltbench.registry import get_method

METHODS = ["erm", "drw", "ldam-drw", "cb-focal", "mixup", "cmo", "smcl"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bounded_fields(method: str) -> dict[str, tuple[object, object]]:
    """name -> (Bounds, annotation) for every bounded field a `--set` can reach for `method`."""
    out = {}
    for cls in (RunSpec, TrainSettings, get_method(method).cls.Hparams):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            b = field_bounds(f)
            settable = cls is not RunSpec or f.name in SPEC_KEYS  # `seed` is an argument, not a --set key
            if b is not None and settable:
                out[f.name] = (b, hints[f.name])
    return out


def _inside(b, v: float) -> bool:
    return ((b.gt is None or v > b.gt) and (b.ge is None or v >= b.ge) and (b.lt is None or v < b.lt)
            and (b.le is None or v <= b.le))


def _numbers(annotation) -> st.SearchStrategy:
    integral = int in typing.get_args(annotation) or annotation is int or "tuple" in str(annotation)
    edges = st.sampled_from([-1, 0, 1, 2, 5, 100, 199, 200, 201, 2**32 - 1, 2**32, 2**64])
    if integral:
        return st.one_of(edges, st.integers(-10**6, 10**6))
    return st.one_of(edges, st.floats(allow_nan=True, allow_infinity=True, width=64),
                     st.sampled_from([0.0, 0.5, 0.9999, 1.0, -0.0, 1e-12]))


@st.composite
def set_value(draw):
    method = draw(st.sampled_from(METHODS))
    fields = _bounded_fields(method)
    name = draw(st.sampled_from(sorted(fields)))
    bounds, annotation = fields[name]
    value = draw(_numbers(annotation))
    if "tuple" in str(annotation):
        value = [value, draw(_numbers(annotation))]
    return method, name, value, bounds, annotation


def _expected_ok(name, value, bounds, annotation) -> bool | None:
    """True: the builder must accept; False: it must refuse; None: cross-field rules decide (either)."""
    values = value if isinstance(value, list) else [value]
    integral = int in typing.get_args(annotation) or annotation is int or "tuple" in str(annotation)
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if integral and isinstance(v, float) and not v.is_integer():
            return False
        if not _inside(bounds, v):
            return False
    return None  # in range: epochs / milestones / schedule rules may still refuse it


@SETTINGS
@given(set_value())
def test_any_set_value_is_accepted_in_range_or_refused_in_one_line(case):
    method, name, value, bounds, annotation = case
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    expected = _expected_ok(name, value, bounds, annotation)
    try:
        overrides = parse_set_pairs([f"{name}={text}"])
        spec = build_spec(method, "shapes", 10, 0, "paper", overrides)
    except LtbenchError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.strip()
        if expected is None:
            return
        assert name in msg, msg  # the refusal names the key
        return
    assert expected is None, f"{name}={text} is out of range but was accepted"
    got = (spec.to_dict().get(name) if name in ("seed", "data_seed", "max_per_class")
           else spec.to_dict()["train"].get(name, spec.hparams.get(name)))
    got_list = list(got) if isinstance(got, (list, tuple)) else [got]
    assert all(_inside(bounds, v) for v in got_list if v is not None)


@SETTINGS
@given(st.one_of(st.integers(-2**70, 2**70), st.sampled_from([-1, 0, 2**32 - 1, 2**32, 2**64])))
def test_any_seed_is_accepted_in_0_to_2_32_or_refused_in_one_line(seed):
    try:
        spec = build_spec("erm", "shapes", 10, seed, "paper", {})
    except LtbenchError as exc:
        assert not 0 <= seed <= 2**32 - 1
        assert str(exc) == f"seed must be >= 0 and <= 4294967295, got {seed}"
        return
    assert 0 <= seed <= 2**32 - 1 and spec.seed == seed


YAML_SCALARS = st.one_of(st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True),
                         st.sampled_from(["x", "", None, True, "erm", "1e-4"]))
GRID_KEYS = ["methods", "datasets", "ratios", "seeds", "preset", "overrides", "vary", "max_per_class"]


@st.composite
def experiment_file(draw):
    """YAML text of a grid: sometimes valid, often not (wrong types, ranges, duplicate keys, junk)."""
    lines = []
    keys = draw(st.lists(st.sampled_from(GRID_KEYS), min_size=0, max_size=9))
    for key in keys:
        if key == "methods":
            val = draw(st.lists(st.sampled_from(["erm", "drw", "smcl", "nope", 3]), min_size=0, max_size=2))
        elif key == "datasets":
            val = draw(st.lists(st.sampled_from(["shapes", "mnist", 1]), min_size=0, max_size=2))
        elif key == "ratios":
            val = draw(st.lists(st.one_of(st.sampled_from([1, 10, 100, 1e9]), YAML_SCALARS), max_size=2))
        elif key == "seeds":
            val = draw(st.lists(st.one_of(st.sampled_from([0, 1, -1, 2**32]), YAML_SCALARS), max_size=2))
        elif key == "preset":
            val = draw(st.sampled_from(["paper", "quick", "nope", 5]))
        elif key == "max_per_class":
            val = draw(st.one_of(st.sampled_from([None, 60, 0, 500, 501]), YAML_SCALARS))
        else:
            name = draw(st.sampled_from(["lr", "momentum", "epochs", "warmup_epochs", "lr_milestones",
                                         "drw_beta", "mask_prob", "temperature", "batch_size", "bogus"]))
            val = {name: draw(YAML_SCALARS)} if key == "overrides" else {name: draw(st.lists(YAML_SCALARS,
                                                                                                max_size=2))}
        lines.append(f"{key}: {yaml.safe_dump(val, default_flow_style=True).strip().removesuffix('...').strip()}")
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["junk", ": :", "- a", "methods: [erm", "\t"])))
    return "\n".join(lines) + "\n"


@SETTINGS
@given(experiment_file())
def test_any_experiment_file_expands_or_is_refused_in_one_line(tmp_path_factory, text):
    from ltbench.grid import expand, load_grid

    path = tmp_path_factory.mktemp("grid") / "g.yaml"
    path.write_text(text)
    try:
        runs = expand(load_grid(path))
    except LtbenchError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith(str(path)), msg
        return
    for r in runs:  # what was accepted is in range
        assert 0 <= r.spec.seed <= 2**32 - 1 and r.spec.train.lr > 0 and 0 <= r.spec.train.momentum < 1
        assert r.spec.train.epochs >= 1 and 0 <= r.spec.train.warmup_epochs < r.spec.train.epochs


def test_every_default_spec_passes_its_own_ranges():
    """The checker is not stricter than the shipped recipes: every registered method builds under the
    paper, quick and cpu presets, and every shipped experiment file expands."""
    from pathlib import Path

    from ltbench.grid import expand, load_grid
    from ltbench.registry import list_methods

    for entry in list_methods():
        for preset in ("paper", "quick", "cpu"):
            build_spec(entry.name, "shapes", 10, 0, preset, {"max_per_class": 60})
    for path in sorted((Path(__file__).parent.parent / "experiments").glob("*.yaml")):
        assert expand(load_grid(path)), path
