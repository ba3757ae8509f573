"""Paired comparisons over seeds (`ltbench compare`), checked by hand on the golden fixture runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ltbench.cli import app
from ltbench.compare import Arm, paired, t_interval
from ltbench.errors import LtbenchError
from ltbench.grid import load_grid
from ltbench.report import collect, select_runs

HERE = Path(__file__).parent / "fixtures"
runner = CliRunner()


def test_t_interval_by_hand():
    mean, half = t_interval([3.0, 2.9, 2.6])
    sd = math.sqrt(((3.0 - 17 / 6) ** 2 + (2.9 - 17 / 6) ** 2 + (2.6 - 17 / 6) ** 2) / 2)
    assert mean == pytest.approx(17 / 6)
    assert half == pytest.approx(4.303 * sd / math.sqrt(3))  # t(0.975, 2) = 4.303
    assert t_interval([1.5]) == (1.5, None)


def test_drw_minus_erm_on_the_fixture():
    frame = select_runs(collect(HERE / "runs", warn=pytest.fail), load_grid(HERE / "grid.yaml"), warn=pytest.fail)
    result = paired(frame, Arm.parse("drw"), Arm.parse("erm")).set_index("setting")
    r100 = result.loc["cifar100-r100"]
    assert r100["seeds"] == [0, 1, 2]
    assert r100["diffs"] == pytest.approx([41.0 - 38.0, 41.4 - 38.5, 42.1 - 39.5])
    assert r100["verdict"] == "A > B"  # 2.83 ± 0.52
    r10 = result.loc["cifar100-r10"]  # drw lacks seed 2 there: only the common seeds are paired
    assert r10["seeds"] == [0, 1] and r10["diffs"] == pytest.approx([57.9 - 55.2, 58.6 - 55.8])


def test_arms_with_values_and_bad_arms():
    assert Arm.parse("drw+smcl|mask_locator=center") == Arm("drw+smcl", (("mask_locator", "center"),))
    with pytest.raises(LtbenchError, match="key=value"):
        Arm.parse("smcl|center")


def test_cli_compare_json_and_one_line_errors():
    args = ["compare", str(HERE / "grid.yaml"), "--a", "smcl", "--b", "erm", "--results-dir", str(HERE / "runs")]
    # the fixture's smcl runs use batch 256 (half the optimiser steps of erm's 128): refused by default
    refused = runner.invoke(app, [*args, "--json"])
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "optimiser steps 8600 vs 17000" in refused.output and "--allow-protocol-mismatch" in refused.output
    result = runner.invoke(app, [*args, "--json", "--allow-protocol-mismatch"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["setting"] for r in rows] == ["cifar100-r100"]  # smcl has no r10 runs
    assert rows[0]["diff"] == pytest.approx((6.0 + 6.4 + 5.7) / 3)
    assert any(m.startswith("batch size 256 vs 128") for m in rows[0]["protocol_mismatch"])
    bad = runner.invoke(app, [*args[:5], "nope", *args[6:], "--allow-protocol-mismatch"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1 and "no setting" in bad.output


def test_t_quantiles_between_and_beyond_the_table():
    from ltbench.stats import t975

    assert (t975(2), t975(11), t975(22), t975(500)) == (4.303, 2.201, 2.086, 1.96)


def test_an_arm_matching_several_configurations_must_be_pinned():
    import pandas as pd

    frame = pd.DataFrame({"method": ["smcl"] * 4 + ["scl"] * 2, "setting": ["s"] * 6, "seed": [0, 0, 1, 1, 0, 1],
                          "hp.mask_prob": [0.2, 0.5, 0.2, 0.5, None, None], "top1": [50, 40, 52, 41, 45, 46]})
    with pytest.raises(LtbenchError, match=r"several runs per seed.*smcl\|mask_prob="):
        paired(frame, Arm.parse("smcl"), Arm.parse("scl"))
    pinned = paired(frame, Arm.parse("smcl|mask_prob=0.20"), Arm.parse("scl")).iloc[0]
    assert pinned["diffs"] == [5.0, 6.0]


# ----- Holm over a call, protocol checks, crossed pairing, decomposition, forest plot ----------------------

def _p_two_sided(diffs: list[float]) -> float:
    """Closed forms of Student's t tail for 1 and 2 degrees of freedom (the fixture has 2 or 3 seeds)."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    t = abs(mean) / (sd / math.sqrt(n))
    return 1 - 2 * math.atan(t) / math.pi if n == 2 else 1 - t / math.sqrt(t * t + 2)


def test_holm_over_every_comparison_of_a_call_matches_a_literal_computation():
    args = ["compare", str(HERE / "grid.yaml"), "--results-dir", str(HERE / "runs"), "--json",
            "--a", "drw", "--b", "erm", "--a", "smcl", "--b", "drw", "--allow-protocol-mismatch"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["a_arm"], r["setting"]) for r in rows] == [("drw", "cifar100-r10"), ("drw", "cifar100-r100"),
                                                         ("smcl", "cifar100-r100")]
    raw = [_p_two_sided(r["diffs"]) for r in rows]
    assert [r["p"] for r in rows] == pytest.approx(raw)
    order = sorted(range(3), key=lambda i: raw[i])
    literal, running = [0.0] * 3, 0.0
    for rank, i in enumerate(order):  # Holm (1979): (m - rank) * p, running maximum, capped at 1
        running = max(running, min(1.0, (3 - rank) * raw[i]))
        literal[i] = running
    assert [r["p_holm"] for r in rows] == pytest.approx(literal)
    assert all(r["holm_family"] == 3 for r in rows)
    assert [r["holm"] for r in rows] == [("A > B" if p < 0.05 else "not resolved") for p in literal]


def test_markdown_header_says_holm_and_names_the_protocol_difference():
    args = ["compare", str(HERE / "grid.yaml"), "--results-dir", str(HERE / "runs"), "--md",
            "--a", "smcl", "--b", "erm", "--allow-protocol-mismatch"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Holm: verdicts adjusted over the 1 comparison(s)" in result.output
    assert "PROTOCOL DIFFERS (smcl vs erm): optimiser steps 8600 vs 17000" in result.output
    assert "Holm p" in result.output and "Holm verdict" in result.output


def test_same_protocol_arms_are_not_refused_and_a_plot_is_written(tmp_path):
    out = tmp_path / "forest.png"
    args = ["compare", str(HERE / "grid.yaml"), "--results-dir", str(HERE / "runs"), "--a", "drw", "--b", "erm",
            "--plot", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.exists() and out.stat().st_size > 1000


def _crossed_frame() -> pd.DataFrame:
    """Two methods on a 2 data seeds x 2 class orders x 2 training seeds grid: value = 10 d + 3 c + s (+1 for a)."""
    rows = []
    for method, bump in (("a", 1.0), ("b", 0.0)):
        for d in (0, 1):
            for c in (0, 1):
                for s in (0, 1):
                    rows.append({"method": method, "setting": "x", "seed": s, "protocol.subset.data_seed": d,
                                 "protocol.class_order": c, "top1": 10.0 * d + 3.0 * c + s + bump + 0.1 * s * c})
    return pd.DataFrame(rows)


def test_a_crossed_grid_pairs_runs_on_seed_data_seed_and_class_order():
    frame = _crossed_frame()
    result = paired(frame, Arm.parse("a"), Arm.parse("b")).iloc[0]
    assert result["seeds"] == ["s0.d0.c0", "s0.d0.c1", "s0.d1.c0", "s0.d1.c1",
                               "s1.d0.c0", "s1.d0.c1", "s1.d1.c0", "s1.d1.c1"]
    assert result["diffs"] == pytest.approx([1.0] * 8)  # paired within the unit, the 10 d + 3 c cancel


def test_decomposition_of_arms_and_of_their_difference():
    from ltbench.compare import decomposition

    table = decomposition(_crossed_frame(), [(Arm.parse("a"), Arm.parse("b"))], ["top1"])
    a = table[table["subject"] == "a"].set_index("component")["variance"]
    # the method of moments on a balanced 2 x 2 x 2 grid, by hand: cell means m[d][c] = 10 d + 3 c + 0.5 + 0.05 c
    cell = np.array([[10 * d + 3 * c + 0.5 + 0.05 * c for c in (0, 1)] for d in (0, 1)])
    grand = cell.mean()
    ms_d = 2 * 2 * ((cell.mean(axis=1) - grand) ** 2).sum() / 1
    ms_c = 2 * 2 * ((cell.mean(axis=0) - grand) ** 2).sum() / 1
    inter = cell - cell.mean(axis=1)[:, None] - cell.mean(axis=0)[None, :] + grand
    ms_dc = 2 * (inter ** 2).sum() / 1
    within = [0.5 * (0.1 * c + 1) ** 2 for d in (0, 1) for c in (0, 1)]  # two seeds: (x1 - x0)^2 / 2
    ms_e = sum(within) / 4
    assert a["data seed"] == pytest.approx((ms_d - ms_dc) / 4)
    assert a["class order"] == pytest.approx((ms_c - ms_dc) / 4)
    assert a["data seed x class order"] == pytest.approx(max(0.0, (ms_dc - ms_e) / 2))
    assert a["training seed"] == pytest.approx(ms_e)
    diff = table[table["subject"] == "a − b"]
    assert diff["variance"].sum() == pytest.approx(0.0)  # a − b is 1 everywhere


def test_the_compared_key_is_not_a_protocol_mismatch():
    from ltbench.compare import protocol_mismatches

    frame = pd.DataFrame({"method": ["drw"] * 4, "setting": ["x"] * 4, "seed": [0, 1, 0, 1],
                          "train.backbone": ["resnet8", "resnet8", "resnet32", "resnet32"],
                          "protocol.backbone": ["resnet8", "resnet8", "resnet32", "resnet32"],
                          "protocol.epochs": [60, 60, 60, 30]})
    a, b = Arm.parse("drw|backbone=resnet8"), Arm.parse("drw|backbone=resnet32")
    assert protocol_mismatches(frame, a, b) == ["epochs 60 vs 30"]  # seed 1 only
    frame.loc[3, "protocol.epochs"] = 60
    assert protocol_mismatches(frame, a, b) == []  # backbone is what is compared


def test_an_unbalanced_subject_is_named_not_fatal():
    from ltbench.compare import decomposition

    frame = _crossed_frame()
    frame = frame.drop(frame.index[(frame["method"] == "a") & (frame["seed"] == 1)
                                   & (frame["protocol.class_order"] == 1) & (frame["protocol.subset.data_seed"] == 1)])
    table = decomposition(frame, [(Arm.parse("a"), Arm.parse("b"))], ["top1"])
    a = table[table["subject"] == "a"]
    assert len(a) == 1 and a["component"].iloc[0].startswith("not decomposed: the grid is not balanced")
    assert set(table[table["subject"] == "b"]["component"]) == {"data seed", "class order",
                                                                "data seed x class order", "training seed"}


def test_an_arm_whose_value_matches_no_run_selects_none_and_keeps_the_columns():
    """A value no run has (or a method without runs) leaves an empty selection with every column, so the
    command says "no setting has finished runs" in one line; an empty object-dtype mask once selected
    *columns* instead (a KeyError traceback)."""
    frame = select_runs(collect(HERE / "runs", warn=pytest.fail), load_grid(HERE / "grid.yaml"), warn=pytest.fail)
    for text in ("drw|seed=99", "nope|seed=0", "drw|seed=99|batch_size=128"):
        rows = Arm.parse(text).rows(frame)
        assert rows.empty and list(rows.columns) == list(frame.columns), text
    assert paired(frame, Arm.parse("drw|seed=99"), Arm.parse("erm")).empty
    args = ["compare", str(HERE / "grid.yaml"), "--a", "nope|seed=1", "--b", "erm", "--results-dir", str(HERE / "runs")]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1 and "no setting" in res.output
