"""Paired comparisons over seeds (`ltbench compare`), checked by hand on the golden fixture runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

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
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["setting"] for r in rows] == ["cifar100-r100"]  # smcl has no r10 runs
    assert rows[0]["diff"] == pytest.approx((6.0 + 6.4 + 5.7) / 3)
    bad = runner.invoke(app, [*args[:5], "nope", *args[6:]])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1 and "no setting" in bad.output


def test_t_quantiles_between_and_beyond_the_table():
    from ltbench.compare import t975

    assert (t975(2), t975(11), t975(22), t975(500)) == (4.303, 2.201, 2.086, 1.96)


def test_an_arm_matching_several_configurations_must_be_pinned():
    import pandas as pd

    frame = pd.DataFrame({"method": ["smcl"] * 4 + ["scl"] * 2, "setting": ["s"] * 6, "seed": [0, 0, 1, 1, 0, 1],
                          "hp.mask_prob": [0.2, 0.5, 0.2, 0.5, None, None], "top1": [50, 40, 52, 41, 45, 46]})
    with pytest.raises(LtbenchError, match=r"several runs per seed.*smcl\|mask_prob="):
        paired(frame, Arm.parse("smcl"), Arm.parse("scl"))
    pinned = paired(frame, Arm.parse("smcl|mask_prob=0.20"), Arm.parse("scl")).iloc[0]
    assert pinned["diffs"] == [5.0, 6.0]
