"""The pipeline registry: one list of names for the trainer, the methods' view fields and the families."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from ltbench import augment_imagenet, pipelines
from ltbench.errors import LtbenchError
from ltbench.registry import list_methods


def test_names_per_family():
    assert pipelines.names() == ("standard", "cutout", "sim", "autoaug", "randaug", "none")
    assert set(pipelines.names("imagenet")) == set(augment_imagenet.PIPELINES)
    assert pipelines.names("cifar") == ("standard", "cutout", "sim", "autoaug", "none")


def test_every_view_field_of_every_method_takes_the_registry_names():
    views = 0
    for entry in list_methods():
        hints = typing.get_type_hints(entry.cls.Hparams)
        for f in dataclasses.fields(entry.cls.Hparams):
            if f.name.startswith("view"):
                assert typing.get_args(hints[f.name]) == pipelines.names(), (entry.name, f.name)
                views += 1
    assert views


@pytest.mark.parametrize("family", ["cifar", "imagenet"])
def test_each_family_pipeline_applies_and_the_others_are_refused(family):
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    for name in pipelines.names():
        gen = torch.Generator().manual_seed(0)
        if name in pipelines.names(family):
            out = pipelines.apply(name, images, gen, family, 16)
            assert out.dtype == torch.float32 and out.shape == (2, 3, 16, 16)
        else:
            with pytest.raises(LtbenchError, match=name):
                pipelines.apply(name, images, gen, family, 16)
    with pytest.raises(LtbenchError, match="unknown"):
        pipelines.apply("jitter", images, torch.Generator(), family, 16)
