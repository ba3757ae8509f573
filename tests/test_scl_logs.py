"""The names (and values) the plain SCL step logs: the trainer averages them per epoch into the run's
metrics columns (history.jsonl), so a renamed or dropped name changes every record's columns even
though the loss is the same (docs/testing.md, "Log names of the plain SCL step")."""

from __future__ import annotations

import pytest
import torch

from .reference import TOL, batch_for, logits_of, make, step, supcon, weighted_ce

# methods/smcl.py `plain_step`; "masked" and "mask_share" are 0 there so the columns line up with the masked step's
PLAIN_LOG_NAMES = {"ce", "supcon", "masked", "mask_share"}


@pytest.mark.parametrize("name", ["scl", "smcl"])
def test_the_plain_step_logs_exactly_its_names_with_their_values(name):
    # SCL is SMCL with mask_prob 0; SMCL before mask_start_epoch takes the same plain step
    method, sv = make(name, w_ce=1.3, w_sc=0.6, temperature=0.3, mask_start_epoch=5)
    batch = batch_for(method, sv)
    out, _, _ = step(method, sv, 1, batch)
    assert set(out.logs) == PLAIN_LOG_NAMES
    z, f = logits_of(sv, batch.views)
    y2 = torch.cat([batch.labels, batch.labels])
    assert out.logs["ce"].item() == pytest.approx(weighted_ce(z, y2), **TOL)
    assert out.logs["supcon"].item() == pytest.approx(supcon(f, y2, 0.3, 0.3), **TOL)
    assert out.logs["masked"].item() == 0.0 and out.logs["mask_share"].item() == 0.0
    assert all(not v.requires_grad for v in out.logs.values())  # logged values are detached


def test_the_masked_step_logs_the_same_names():
    method, sv = make("smcl", mask_prob=1.0, mask_start_epoch=0, mask_locator="random")
    out, _, _ = step(method, sv, 1, batch_for(method, sv))
    assert set(out.logs) == PLAIN_LOG_NAMES
    assert out.logs["masked"].item() == 1.0 and 0.0 < out.logs["mask_share"].item() < 1.0
