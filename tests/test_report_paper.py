"""The report's paper knowledge and selection rules: row labels from the registry, the ablation rows the
methods declare, and the three selection rules as objects. No torch, no runs."""

from __future__ import annotations

import pandas as pd
import pytest

from ltbench.report import paper
from ltbench.report.selection import RULES, SELECT_COLUMNS, BestTestEpoch, LastEpoch, ValSelected, selection_rule

# the SMCL paper's row labels of every method it (or a cited source: table1_extended.csv) prints, in the
# order rows the paper's table does not place are listed
LABELS = {
    "erm": "ERM", "drw": "DRW", "ldam-drw": "LDAM-DRW", "cb-focal": "CB Focal",
    "drw+mixup": "DRW+Mixup", "drw+cutmix": "DRW+CutMix", "drw+cmo": "DRW+CMO", "scl": "SCL",
    "scl+drw": "SCL-DRW", "smcl": "SMCL", "drw+smcl": "DRW+SMCL", "balanced-softmax": "Balanced Softmax",
    "mixup": "Mixup", "cutmix": "CutMix", "cmo": "CMO", "bcl": "BCL", "concutmix": "ConCutMix",
}


def test_row_labels_come_from_the_registry():
    names = paper.paper_names()
    assert {m: names[m] for m in LABELS} == LABELS
    assert paper.paper_label("drw+smcl") == "DRW+SMCL" and paper.paper_label("not-a-method") == "not-a-method"
    assert paper.method_of_paper("SCL-DRW") == "scl+drw" and paper.method_of_paper("BBN") is None


def test_methods_the_paper_lacks_sort_after_its_rows():
    shuffled = ["zeta", "concutmix", "erm", "alpha", "drw+smcl", "mixup", "balanced-softmax"]
    assert sorted(shuffled, key=paper.method_order) == ["erm", "drw+smcl", "balanced-softmax", "mixup",
                                                        "concutmix", "alpha", "zeta"]
    in_order = sorted(LABELS, key=paper.method_order)
    assert in_order == list(LABELS)


@pytest.mark.parametrize(("layout", "method", "vary", "variant"), [
    ("ablate-masking", "drw+smcl", {"mask_locator": "center"}, "center"),
    ("ablate-masking", "drw+smcl", {"mask_locator": "saliency"}, "saliency"),
    ("ablate-masking", "smcl", {"mask_locator": "random"}, None),  # Table 3 is DRW+SMCL's
    ("ablate-masking", "drw+smcl", {"mask_locator": "cam"}, None),
    ("ablate-contrastive", "smcl", {"w_sc": 0.0}, "cross-entropy only (SMCL)"),
    ("ablate-contrastive", "drw+smcl", {"w_sc": 0}, "cross-entropy only (DRW+SMCL)"),
    ("ablate-contrastive", "drw+smcl", {"w_sc": 0.3}, "with contrastive (DRW+SMCL)"),
    ("ablate-contrastive", "smcl", {"w_sc": 0.5}, None),
    ("ablate-contrastive", "erm", {"w_sc": 0.0}, None),
    ("ablate-contrastive", "not-a-method", {"w_sc": 0.0}, None),
    ("ablate", "drw+smcl", {"mask_locator": "center"}, None),
])
def test_ablation_rows_are_what_the_methods_declare(layout, method, vary, variant):
    assert paper.ablation_variant(layout, method, vary) == variant


def test_every_declared_variant_is_a_row_of_the_paper_csv():
    from ltbench.registry import list_methods

    table = pd.read_csv(paper.paper_dir() / paper.PAPER_FILES["ablations"], dtype=str)
    rows = set(zip(table["ablation"], table["variant"], strict=True))
    declared = {(name, label) for e in list_methods() for name, abl in e.paper_ablations.items()
                for _, label in abl.variants}
    assert declared and declared <= rows


def test_selection_rules_name_their_columns():
    assert list(RULES) == ["last", "best", "val"]
    assert isinstance(selection_rule("last"), LastEpoch) and isinstance(selection_rule("best"), BestTestEpoch)
    assert isinstance(selection_rule("val"), ValSelected)
    assert selection_rule("best").column("few") == "best_few"
    assert selection_rule("val").column("top1") == "val_selected.top1"
    # background metrics exist for the last epoch only
    assert selection_rule("last").column("bg_gap_tail") == "bg_gap_tail"
    assert selection_rule("best").column("bg_gap_tail") is None
    assert SELECT_COLUMNS["last"] == {"top1": "top1", "many": "many", "medium": "medium", "few": "few"}
    with pytest.raises(ValueError, match="last, best, val"):
        selection_rule("oracle")


def test_a_rule_picks_one_value_per_run():
    runs = pd.DataFrame({"top1": [40.0, 41.0], "best_top1": [42.0, None]})
    assert list(selection_rule("last").values(runs, "top1")) == [40.0, 41.0]
    best = selection_rule("best").values(runs, "top1")
    assert best.iloc[0] == 42.0 and pd.isna(best.iloc[1])
    assert selection_rule("val").values(runs, "top1").empty  # no run records val_selected
