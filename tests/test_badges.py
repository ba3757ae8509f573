"""Reproduction badges: the rule against scipy's t quantile, on the golden fixture, and opt-in only."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from ltbench.cli import app
from ltbench.grid import load_grid
from ltbench.report import build_table, collect, render_csv, render_markdown
from ltbench.report.badges import RULE, badge
from ltbench.report.badges import apply as apply_badges
from ltbench.report.compact import render_compact_markdown

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(autouse=True)
def _paper_dir(monkeypatch):
    monkeypatch.setenv("LTBENCH_PAPER_DIR", str(REPO / "results" / "paper"))


def _expected(mean: float, std: float, n: int, paper: float) -> str | None:
    if n < 2:
        return None
    half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n) + 0.5  # the rule's slack, in points
    if mean - half <= paper <= mean + half:
        return "reproduced"
    return f"{'above' if mean > paper else 'below'} {mean - paper:+.2f}"


@pytest.mark.parametrize("mean,std,n,paper", [
    (40.0, 1.0, 3, 42.0),   # inside: t(.975, 2) * 1 / sqrt(3) + 0.5 = 2.98
    (40.0, 1.0, 3, 43.5),   # outside, ours lower
    (45.0, 0.2, 5, 43.0),   # outside, ours higher
    (40.0, 0.0, 2, 40.4),   # no spread: the ±0.5 slack alone
    (40.0, 0.0, 2, 40.6),
])
def test_badge_matches_the_rule(mean, std, n, paper):
    got = badge(mean, std, n, paper)
    assert got.text() == _expected(mean, std, n, paper)


def test_no_badge_with_one_seed_or_no_paper_number():
    assert badge(40.0, None, 1, 41.0) is None
    assert badge(40.0, 1.0, 3, None) is None


def _table():
    return build_table(collect(FIXTURES / "runs"), load_grid(FIXTURES / "grid.yaml"), name="table")


def test_badges_on_the_fixture_table_follow_the_rule_and_are_opt_in():
    plain = _table()
    assert all(c.badge is None for c in plain.cells.values())
    t = _table()
    set_count = apply_badges(t)
    assert set_count > 0 and RULE in t.caption
    csv = pd.read_csv(pd.io.common.StringIO(render_csv(t)))
    for _, r in csv.iterrows():
        want = None if pd.isna(r["paper"]) or pd.isna(r["std"]) else _expected(r["mean"], r["std"], r["n"], r["paper"])
        got = None if pd.isna(r["badge"]) else r["badge"]
        assert got == want, r.to_dict()
    md = render_markdown(t)
    assert "reproduced" in md or "above" in md or "below" in md
    assert "badge" not in render_csv(plain)  # off: the golden CSV keeps its columns


def test_compact_layout_has_one_column_per_setting():
    t = _table()
    apply_badges(t)
    md = render_compact_markdown(t)
    header = md.splitlines()[2]
    assert header.count("|") - 1 == 2 + 6  # Method, ltbench, six Table 1 settings (wide: 2 + 6 x 3)
    row = next(line for line in md.splitlines() if line.startswith("| ERM "))
    cell = [c.strip() for c in row.split("|")][3]  # CIFAR-100-LT r=100
    c = t.cells[(next(r.key for r in t.rows if r.label == "ERM"), t.columns[0].key)]
    assert cell.startswith(f"{c.mean:.2f} ± {c.std:.2f} ({c.n})") and f"Δ {c.gap:+.2f} vs {c.paper_text}" in cell


def test_cli_table_flags(tmp_path):
    res = CliRunner().invoke(app, ["table", str(FIXTURES / "grid.yaml"), "--results-dir", str(FIXTURES / "runs"),
                                   "--out", str(tmp_path), "--badges", "--cost", "--layout", "compact"])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "grid.md").read_text()
    assert RULE in md.replace("\n", " ") and "Grid total" in md
    res = CliRunner().invoke(app, ["table", str(FIXTURES / "grid.yaml"), "--layout", "tall"])
    assert res.exit_code == 2 and "--layout must be wide or compact" in res.output
