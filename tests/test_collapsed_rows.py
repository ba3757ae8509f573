"""Grid rows that name one computation (a varied setting that cannot act in that combination).

SMCL's `saliency_pad` is never read with a random or center box, and a center box is the same under
`box_clip=shift` as under `clip`, so the spec resets them (methods/smcl.py `_drop_masking_noops`) and
such combinations share a run id. The CPU study's locator grid (experiments/cpu-study2-locator.yaml)
crosses `mask_locator` with `saliency_pad` under `box_clip=shift`: once its center runs (recorded with
`clip`) dropped out of every table and comparison, and `ablate` crashed with a KeyError traceback on
the row left empty. No training: the records are written from the grid's own specs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltbench.grid import expand, load_grid
from ltbench.report import build_table, collect
from ltbench.report.grid_runs import grid_expansion
from tests.records import RUNS, put_run

GRID = """\
methods: [drw+smcl]
datasets: [cifar100]
ratios: [100]
seeds: [0, 1]
preset: paper
overrides:
  box_clip: shift
vary:
  mask_locator: [saliency, random, center]
  saliency_pad: [include, exclude]
table: ablate
metrics: [top1]
"""
TOP1 = {"saliency": 50.0, "random": 40.0, "center": 30.0}


@pytest.fixture
def grid(tmp_path: Path):
    path = tmp_path / "locator.yaml"
    path.write_text(GRID)
    return load_grid(path)


def _records(grid, root: Path) -> None:
    """One record per expanded run (a committed fixture's final.json), top-1 by locator (+1 for
    saliency_pad=exclude) plus the seed."""
    final = json.loads(next((RUNS / "cifar100-r100" / "smcl").iterdir()).joinpath("final.json").read_text())
    for run in expand(grid):
        spec = run.spec.to_dict()
        hp = spec["hparams"]
        top1 = TOP1[hp["mask_locator"]] + (hp["saliency_pad"] == "exclude") + spec["seed"]
        put_run(root / run.spec.setting, spec, {**final, "top1": top1})


def test_collapsed_combinations_share_one_run_and_say_which(grid):
    runs = expand(grid)
    assert len(runs) == 2 * 4  # per seed: saliency x 2 pads, random, center
    random = next(r for r in runs if r.vary["mask_locator"] == "random" and r.spec.seed == 0)
    assert random.vary["saliency_pad"] == "include"
    assert random.aliases == ({"mask_locator": "random", "saliency_pad": "exclude"},)
    center = next(r for r in runs if r.vary["mask_locator"] == "center" and r.spec.seed == 0)
    assert center.spec.hparams["box_clip"] == "clip"  # reset: a center box never crosses the border

    ids, rows = grid_expansion(grid)
    assert ids == [r.run_id for r in runs]
    key = "drw+smcl|mask_locator={}|saliency_pad={}".format
    assert rows[key("random", "exclude")] == rows[key("random", "include")]
    assert rows[key("saliency", "exclude")].isdisjoint(rows[key("saliency", "include")])
    assert len(rows) == 6 and all(len(v) == 2 for v in rows.values())


def test_every_row_shows_its_runs_though_a_recorded_setting_differs(grid, tmp_path):
    _records(grid, tmp_path / "runs")
    ids, row_ids = grid_expansion(grid)
    warnings: list[str] = []
    t = build_table(collect(tmp_path / "runs", warn=warnings.append), grid, warn=warnings.append,
                    expected_ids=ids, row_ids=row_ids)
    means = {r.key.split("|", 1)[1]: t.cells[(r.key, "cifar100-r100:top1")].mean for r in t.rows}
    assert means == {"mask_locator=saliency|saliency_pad=include": 50.5,
                     "mask_locator=saliency|saliency_pad=exclude": 51.5,
                     "mask_locator=random|saliency_pad=include": 40.5,
                     "mask_locator=random|saliency_pad=exclude": 40.5,
                     "mask_locator=center|saliency_pad=include": 30.5,  # recorded box_clip=clip: still the grid's
                     "mask_locator=center|saliency_pad=exclude": 30.5}
    assert ("Same runs: drw+smcl|mask_locator=random|saliency_pad=exclude = "
            "drw+smcl|mask_locator=random|saliency_pad=include;") in t.caption
    assert "center|saliency_pad=exclude = drw+smcl|mask_locator=center|saliency_pad=include" in t.caption
    assert "saliency_pad=exclude = drw+smcl|mask_locator=saliency" not in t.caption


def test_a_row_without_runs_is_empty_not_a_crash(grid, tmp_path):
    """Without the grid's row ids (older callers), the collapsed rows have no run of their values: their
    cells are empty, and the table is still built (an empty object-dtype mask once selected columns)."""
    _records(grid, tmp_path / "runs")
    t = build_table(collect(tmp_path / "runs", warn=lambda m: None), grid, warn=lambda m: None,
                    expected_ids=grid_expansion(grid)[0])
    empty = t.cells[("drw+smcl|mask_locator=random|saliency_pad=exclude", "cifar100-r100:top1")]
    assert (empty.n, empty.runs, empty.mean) == (0, 0, None)
    center = t.cells[("drw+smcl|mask_locator=center|saliency_pad=include", "cifar100-r100:top1")]
    assert center.mean == 30.5 and center.n == 2
    assert "Same runs" not in t.caption


@pytest.mark.parametrize("with_row_ids", [True, False])
def test_the_ablation_figure_plots_the_seeds_the_table_shows(grid, tmp_path, with_row_ids):
    """The figure's seed dots are each cell's runs (an empty row once crashed it with a KeyError)."""
    from ltbench.report.figures import ablation_points

    _records(grid, tmp_path / "runs")
    ids, row_ids = grid_expansion(grid)
    t = build_table(collect(tmp_path / "runs", warn=lambda m: None), grid, warn=lambda m: None,
                    expected_ids=ids, row_ids=row_ids if with_row_ids else None)
    points = ablation_points(t)
    by_x = {x: sorted(g["value"]) for x, g in points.groupby("x")}
    assert by_x["mask_locator=center, saliency_pad=include"] == [30.0, 31.0]
    assert by_x["mask_locator=saliency, saliency_pad=exclude"] == [51.0, 52.0]
    collapsed = by_x.get("mask_locator=random, saliency_pad=exclude")
    assert collapsed == ([40.0, 41.0] if with_row_ids else None)


def test_a_protocol_note_on_shared_runs_marks_the_first_of_their_rows(grid, tmp_path):
    """Runs two rows share are numbered once, on the row that names them first (the later one points
    to it through the caption's "Same runs")."""
    _records(grid, tmp_path / "runs")
    for final in (tmp_path / "runs").rglob("final.json"):
        spec = json.loads((final.parent / "spec.json").read_text())
        if spec["hparams"]["mask_locator"] == "random":  # a fingerprint the other rows lack
            final.write_text(json.dumps({**json.loads(final.read_text()), "protocol": {"image_size": 28}}))
    ids, row_ids = grid_expansion(grid)
    t = build_table(collect(tmp_path / "runs", warn=lambda m: None), grid, warn=lambda m: None,
                    expected_ids=ids, row_ids=row_ids)
    marks = {r.key.split("|", 1)[1]: r.mark for r in t.rows}
    assert marks["mask_locator=random|saliency_pad=include"] != ""
    assert marks["mask_locator=random|saliency_pad=exclude"] == ""
    assert marks["mask_locator=saliency|saliency_pad=include"] == ""
