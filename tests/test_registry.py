"""What method files register besides the class: the paper's row labels and ablation rows."""

from __future__ import annotations

import math

import pytest

from ltbench.errors import LtbenchError
from ltbench.registry import PaperAblation, get_method, list_methods

# the SMCL paper's row labels (its Tables 1-2, and BCL / ConCutMix from the sources results/paper cites)
LABELS = {
    "erm": "ERM", "drw": "DRW", "ldam-drw": "LDAM-DRW", "cb-focal": "CB Focal",
    "drw+mixup": "DRW+Mixup", "drw+cutmix": "DRW+CutMix", "drw+cmo": "DRW+CMO", "scl": "SCL",
    "scl+drw": "SCL-DRW", "smcl": "SMCL", "drw+smcl": "DRW+SMCL", "balanced-softmax": "Balanced Softmax",
    "mixup": "Mixup", "cutmix": "CutMix", "cmo": "CMO", "bcl": "BCL", "concutmix": "ConCutMix",
}


def test_registered_paper_labels():
    assert {e.name: e.paper_label for e in list_methods() if e.paper_label is not None} == LABELS
    assert get_method("ldam").paper_label is None


def test_unknown_method_suggests_the_closest_name():
    with pytest.raises(LtbenchError, match="did you mean 'smcl'"):
        get_method("smlc")


def _previous_variant(layout: str, method: str, vary: dict) -> str | None:
    """The report's rule before methods declared their ablation rows (kept here literally)."""
    if layout == "ablate-masking":
        loc = vary.get("mask_locator")
        return loc if method == "drw+smcl" and loc in ("random", "center", "saliency") else None
    if layout == "ablate-contrastive" and method in ("smcl", "drw+smcl") and "w_sc" in vary:
        w = float(vary["w_sc"])
        label = LABELS[method]
        if w == 0.0:
            return f"cross-entropy only ({label})"
        if math.isclose(w, 0.3):
            return f"with contrastive ({label})"
    return None


VARIES = [{}, {"mask_locator": "random"}, {"mask_locator": "center"}, {"mask_locator": "saliency"},
          {"mask_locator": "model-saliency"}, {"w_sc": 0.0}, {"w_sc": 0}, {"w_sc": 0.3}, {"w_sc": 0.30000000001},
          {"w_sc": 0.5}, {"w_sc": 0.3, "mask_locator": "center"}]


@pytest.mark.parametrize("layout", ["ablate-masking", "ablate-contrastive", "ablate-other"])
def test_declared_ablation_rows_are_the_previous_rule(layout):
    for entry in list_methods():
        for vary in VARIES:
            ablation = entry.paper_ablations.get(layout.removeprefix("ablate-"))
            got = ablation.variant(vary) if ablation else None
            assert got == _previous_variant(layout, entry.name, vary), (entry.name, vary)


def test_paper_ablation_matches_numbers_loosely_and_strings_exactly():
    rows = PaperAblation("w", ((0.0, "off"), (0.3, "on")))
    assert [rows.variant({"w": v}) for v in (0, "0.3", 0.3 + 1e-12, 0.31, "x", None)] == \
        ["off", "on", "on", None, None, None]
    assert rows.variant({}) is None
    names = PaperAblation("loc", (("center", "centre box"),))
    assert (names.variant({"loc": "center"}), names.variant({"loc": "Center"})) == ("centre box", None)
