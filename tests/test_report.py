"""Aggregation and tables: golden files from the fixture runs, hand-checked statistics, no torch."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ltbench.cli import app
from ltbench.grid import load_grid
from ltbench.report import (
    RENDERERS,
    aggregate,
    build_table,
    collect,
    plot_ablation,
    plot_per_class,
    select_runs,
    table_csv_frame,
    write_table,
)
from ltbench.spec_hash import spec_dict_hash
from tests.records import RUNS, fake_ablation, put_run

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
REPO = HERE.parent
runner = CliRunner()


@pytest.fixture(autouse=True)
def _paper_dir(monkeypatch):
    monkeypatch.setenv("LTBENCH_PAPER_DIR", str(REPO / "results" / "paper"))


def _no_warnings(msg: str) -> None:
    raise AssertionError(f"unexpected warning: {msg}")


def _table(runs: Path = RUNS, select: str = "last", warn=_no_warnings):
    grid = load_grid(FIXTURES / "grid.yaml")
    return build_table(collect(runs, warn=warn), grid, select=select, name="table", warn=warn)


# ----- golden files --------------------------------------------------------------------------------

def test_fixture_is_what_the_script_writes(tmp_path):
    sys.path.insert(0, str(FIXTURES))
    try:
        import make_fixture
    finally:
        sys.path.remove(str(FIXTURES))
    dirs = make_fixture.write_runs(tmp_path / "runs")
    assert len(dirs) == 14
    written = sorted(p.relative_to(tmp_path / "runs") for p in (tmp_path / "runs").rglob("*.json"))
    committed = sorted(p.relative_to(RUNS) for p in RUNS.rglob("*.json"))
    assert written == committed
    for rel in written:
        assert (tmp_path / "runs" / rel).read_bytes() == (RUNS / rel).read_bytes(), rel


@pytest.mark.parametrize("fmt", ["md", "tex", "csv"])
def test_golden_tables(fmt, tmp_path):
    """Regenerate with `python tests/fixtures/make_fixture.py --regen` after a deliberate format change."""
    table = _table()
    expected = (FIXTURES / "expected" / f"table.{fmt}").read_bytes()
    assert RENDERERS[fmt](table).encode("utf-8") == expected
    (path,) = write_table(table, tmp_path, [fmt])
    assert path.name == f"table.{fmt}" and path.read_bytes() == expected


# ----- the tidy frame and the statistics -----------------------------------------------------------

def test_tidy_frame():
    df = collect(RUNS, warn=_no_warnings)
    assert len(df) == 14
    for col in ("method", "dataset", "ratio", "max_per_class", "seed", "setting", "preset", "top1", "many",
                "medium", "few", "best_top1", "best_epoch", "shot_rule", "epochs", "run_id", "hp.drw",
                "hp.drw_beta", "train.lr", "group_sizes.many"):
        assert col in df.columns, col
    assert df["top1"].dtype == "float64" and df["seed"].dtype == "int64"
    assert set(df["setting"]) == {"cifar100-r100", "cifar100-r10"}
    smcl = df[df["method"] == "smcl"]
    assert smcl["hp.w_sc"].tolist() == [0.3] * 3
    assert df[df["method"] == "erm"]["hp.w_sc"].isna().all()
    run = df.iloc[0]
    assert (RUNS / run["run_id"] / "final.json").exists()
    assert df["few"][df["ratio"] == 10].isna().all()  # CIFAR-100-LT r10 has no Few class


def test_aggregation_by_hand():
    agg = aggregate(collect(RUNS, warn=_no_warnings), ["method", "setting"], ["top1"]).set_index(
        ["method", "setting"])
    erm = agg.loc[("erm", "cifar100-r100")]
    assert erm["top1_mean"] == pytest.approx((38.0 + 38.5 + 39.5) / 3)
    # deviations -2/3, -1/6, 5/6: sum of squares 7/6, over n - 1 = 2
    assert erm["top1_std"] == pytest.approx(math.sqrt(7 / 12))
    assert erm["top1_n"] == 3
    drw = agg.loc[("drw", "cifar100-r10")]  # seed 2 missing
    assert drw["top1_mean"] == pytest.approx(58.25)
    assert drw["top1_std"] == pytest.approx(0.7 / math.sqrt(2))
    assert drw["top1_n"] == 2
    assert ("smcl", "cifar100-r10") not in agg.index


def test_table_cells():
    t = _table()
    cell = t.cells[("ERM", "cifar100_r100")]
    assert cell.mean == pytest.approx(38.6667, abs=1e-4) and cell.n == 3
    assert cell.paper == 38.3 and cell.gap == pytest.approx(cell.mean - 38.3)
    drw10 = t.cells[("DRW", "cifar100_r10")]
    assert drw10.n == 2 and drw10.best  # best of ours in its column
    assert t.cells[("SMCL", "cifar100_r10")].note == "a" and t.cells[("SMCL", "cifar100_r10")].mean is None
    assert t.cells[("ReMix", "cifar100_r50")].paper_note == "b"
    assert [r.label for r in t.rows][:5] == ["ERM", "DRW", "LDAM-DRW", "CB Focal", "BBN"]
    assert [r.method for r in t.rows if r.label in ("BBN", "TSC")] == [None, None]
    md = RENDERERS["md"](t)
    assert "58.25 ± 0.49 (2)†" in md and "| BBN        | reported" in md
    assert "last epoch" in md and "seeds 0, 1, 2" in md and "shots-100-20" in md


def test_csv_is_numeric(tmp_path):
    (path,) = write_table(_table(), tmp_path, ["csv"])
    df = pd.read_csv(path)
    for col in ("mean", "std", "paper", "gap", "n", "n_expected"):
        assert pd.api.types.is_numeric_dtype(df[col]), col
    assert not df.astype(str).apply(lambda s: s.str.contains("±")).any().any()


def test_select_best_uses_the_oracle_epoch():
    t = _table(select="best")
    assert t.cells[("ERM", "cifar100_r100")].mean == pytest.approx(38.6667 + 0.7, abs=1e-4)
    assert "oracle" in t.caption


def test_unknown_methods_go_below_the_paper_rows(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(RUNS, runs)
    src = next((runs / "cifar100-r100" / "erm").iterdir())
    for name in ("zz-new", "balanced-softmax"):
        spec = json.loads((src / "spec.json").read_text())
        spec["method"] = name
        put_run(runs / "cifar100-r100", spec, json.loads((src / "final.json").read_text()))
    labels = [r.label for r in _table(runs).rows]
    assert labels[-2:] == ["Balanced Softmax", "zz-new"]
    assert labels.index("DRW+SMCL") == len(labels) - 3


# ----- damaged runs and mixed configurations -------------------------------------------------------

def test_damaged_runs_are_skipped_with_a_warning(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(RUNS, runs)
    dirs = sorted(p.parent for p in runs.rglob("final.json"))
    (dirs[0] / "final.json").write_text("{ torn")
    (dirs[1] / "spec.json").unlink()
    (dirs[2] / "final.json").write_text(json.dumps({"top1": 1.0}))
    edited = json.loads((dirs[3] / "spec.json").read_text())
    edited["train"]["lr"] = 0.2  # a hand edit after the run: the record no longer says what was run
    (dirs[3] / "spec.json").write_text(json.dumps(edited))
    (dirs[4] / "metrics.jsonl").write_text('{"epoch": 0, "loss": 1.0}\n{"epoch": 1, "lo')  # torn: harmless
    warnings: list[str] = []
    df = collect(runs, warn=warnings.append)
    assert len(df) == 10
    assert len(warnings) == 4
    for d, msg in zip(dirs[:4], warnings, strict=True):
        assert str(d) in msg
    assert "does not match the hash" in warnings[3]


def test_cli_table_warns_about_damaged_files(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(RUNS, runs)
    bad = next(runs.rglob("final.json"))
    bad.write_text("not json")
    result = runner.invoke(app, ["table", str(FIXTURES / "grid.yaml"), "--results-dir", str(runs),
                                 "--out", str(tmp_path / "out"), "--show"])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and str(bad) in result.output.replace("\n", "")
    for fmt in ("md", "tex", "csv"):
        assert (tmp_path / "out" / f"grid.{fmt}").exists()
    assert "DRW+SMCL" in result.output  # --show printed the rich table


def test_another_configuration_is_not_mixed_in(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(RUNS, runs)
    src = next((runs / "cifar100-r100" / "erm").iterdir())
    spec = json.loads((src / "spec.json").read_text())
    spec["train"]["lr"] = 0.05
    put_run(runs / "cifar100-r100", spec, json.loads((src / "final.json").read_text()))
    warnings: list[str] = []
    t = _table(runs, warn=warnings.append)
    assert t.cells[("ERM", "cifar100_r100")].n == 3
    assert any("train.lr 0.05 vs 0.1" in w for w in warnings), warnings


def test_a_field_added_later_does_not_split_a_cell(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(RUNS, runs)
    first, second = sorted((runs / "cifar100-r100" / "erm").iterdir())[:2]
    spec = json.loads((first / "spec.json").read_text())
    spec["train"]["val_select"] = False  # written by a newer ltbench; the older runs lack the field
    spec["data_version"] = 1
    put_run(runs / "cifar100-r100", spec, json.loads((first / "final.json").read_text()))
    shutil.rmtree(first)
    spec = json.loads((second / "spec.json").read_text())
    del spec["train"]["warmup_epochs"]
    put_run(runs / "cifar100-r100", spec, json.loads((second / "final.json").read_text()))
    shutil.rmtree(second)
    t = _table(runs)  # no warning
    assert t.cells[("ERM", "cifar100_r100")].n == 3


# ----- table2, ablations, figures ------------------------------------------------------------------

def test_table2_renders_reported_rows_without_runs(tmp_path):
    grid = load_grid(REPO / "experiments" / "table2.yaml")
    t = build_table(collect(tmp_path, warn=_no_warnings), grid, warn=_no_warnings)
    labels = [r.label for r in t.rows]
    assert labels[:4] == ["ERM", "Decouple-cRT", "Decouple-LWS", "DRW"]
    assert [c.label for c in t.columns] == ["All", "Many", "Med", "Few"]
    assert t.cells[("Decouple-cRT", "few")].paper == 26.1
    assert "shots-cmo-imagenet" in t.caption
    assert "| Decouple-LWS     | reported" in RENDERERS["md"](t)


def test_ablation_table_and_figure(tmp_path):
    fake_ablation(tmp_path / "runs")
    grid = load_grid(REPO / "experiments" / "ablate-masking.yaml")
    warnings: list[str] = []
    t = build_table(collect(tmp_path / "runs", warn=_no_warnings), grid, warn=warnings.append)
    assert [r.vary for r in t.rows] == [{"mask_locator": v} for v in ("random", "center", "saliency")]
    assert [c.label for c in t.columns] == ["All", "Many", "Med", "Few"]
    sal = t.cells[("drw+smcl|mask_locator=saliency", "cifar100-r100:top1")]
    assert sal.mean == pytest.approx(51.5) and sal.n == 2 and sal.paper == 50.14
    assert sal.gap == pytest.approx(51.5 - 50.14)
    assert "† = fewer runs than the grid's 3" in t.caption  # 2 of 3 seeds
    paths, data = plot_ablation(t, tmp_path / "out" / "ablate-masking")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)
    agg = aggregate(t.frame, ["hp.mask_locator"], ["top1", "few"]).set_index("hp.mask_locator")
    top1 = data[data["metric"] == "top1"].set_index("x")
    few = data[data["metric"] == "few"].set_index("x")
    for loc in ("random", "center", "saliency"):
        assert top1.loc[loc, "mean"] == pytest.approx(agg.loc[loc, "top1_mean"])
        assert top1.loc[loc, "std"] == pytest.approx(agg.loc[loc, "top1_std"])
        assert few.loc[loc, "mean"] == pytest.approx(agg.loc[loc, "few_mean"])
    assert top1["paper"].tolist() == [49.56, 49.82, 50.14]


def test_per_class_plot(tmp_path):
    frame = collect(RUNS, warn=_no_warnings, include_lists=True)
    (path,), data = plot_per_class(frame, tmp_path / "pc.png")
    assert path.exists() and path.stat().st_size > 1000
    erm = frame[(frame["method"] == "erm") & (frame["setting"] == "cifar100-r100")]
    expected = sum(accs[5] for accs in erm["per_class_acc"]) / 3
    got = data[(data["method"] == "erm") & (data["setting"] == "cifar100-r100") & (data["class"] == 5)]
    assert got["acc"].item() == pytest.approx(expected) and got["n"].item() == 3
    assert got["train_count"].item() == erm["train_class_counts"].iloc[0][5]


def test_cli_plot_per_class(tmp_path):
    out = tmp_path / "pc.png"
    result = runner.invoke(app, ["plot", "per-class", "--grid", str(FIXTURES / "grid.yaml"),
                                 "--results-dir", str(RUNS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "3 method(s)" in result.output


# ----- no torch on the report path -----------------------------------------------------------------

def test_report_path_does_not_import_torch():
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ltbench.grid import load_grid\n"
        "from ltbench.report import RENDERERS, build_table, collect\n"
        f"t = build_table(collect(Path({str(RUNS)!r})), load_grid(Path({str(FIXTURES / 'grid.yaml')!r})))\n"
        "for fn in RENDERERS.values():\n"
        "    fn(t)\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    env = {**os.environ, "LTBENCH_PAPER_DIR": str(REPO / "results" / "paper")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "NO-TORCH"


def test_csv_frame_has_one_row_per_cell():
    t = _table()
    df = table_csv_frame(t)
    assert len(df) == len(t.rows) * len(t.columns)


def test_background_metrics_columns_only_where_the_data_set_has_them(tmp_path):
    src = next((RUNS / "cifar100-r100" / "erm").iterdir())
    base_spec, base_final = json.loads((src / "spec.json").read_text()), json.loads((src / "final.json").read_text())
    for dataset in ("shapes", "fashion-mnist"):
        for seed, (seen, unseen) in enumerate([(90.0, 40.0), (92.0, 50.0)]):
            spec = {**base_spec, "dataset": dataset, "seed": seed, "max_per_class": 500}
            final = dict(base_final)
            if dataset == "shapes":
                final["seen_split"] = {"seen": {"top1": seen}, "unseen": {"top1": unseen},
                                       "gap": {"top1": seen - unseen}}
            put_run(tmp_path / "runs" / f"{dataset}-h500-r100", spec, final)
    grid_file = tmp_path / "bg.yaml"
    grid_file.write_text("methods: [erm]\ndatasets: [shapes, fashion-mnist]\nratios: [100]\nseeds: [0, 1]\n"
                         f"preset: {base_spec['preset']}\nmax_per_class: 500\nmetrics: [top1, seen, unseen, gap]\n")
    t = build_table(collect(tmp_path / "runs", warn=_no_warnings), load_grid(grid_file), warn=_no_warnings)
    labels = [c.label for c in t.columns]
    assert [lab for lab in labels if lab.startswith("shapes")] == [
        "shapes-LT h500 r100 All", "shapes-LT h500 r100 Seen", "shapes-LT h500 r100 Unseen",
        "shapes-LT h500 r100 BG gap (tail)"]  # the old head/tail-confounded gap is no longer a column
    assert [lab for lab in labels if lab.startswith("Fashion")] == ["Fashion-MNIST-LT h500 r100 All"]
    unseen = t.cells[("erm", "shapes-h500-r100:unseen")]
    assert (unseen.mean, unseen.n) == (45.0, 2) and unseen.std == pytest.approx(math.sqrt(50.0))
    gap = t.cells[("erm", "shapes-h500-r100:bg_gap_tail")]  # these records predate bg_gap_tail: unknown, not 0
    assert (gap.mean, gap.n, gap.note) == (None, 0, "e")


def test_a_cell_keeps_the_configuration_the_grid_expands_to(tmp_path):
    """Runs of another grid that differ only in a hyperparameter this grid leaves at its default (here
    SMCL's mask_locator) share the cell; `expected_ids` (the grid's own run ids) decides, not the count."""
    runs = tmp_path / "runs"
    shutil.copytree(RUNS / "cifar100-r100" / "smcl", runs / "cifar100-r100" / "smcl")
    own = sorted(p for p in (runs / "cifar100-r100" / "smcl").iterdir())
    other = []
    for run in own:  # the same runs with mask_locator=random, as an ablation grid would leave them
        spec = json.loads((run / "spec.json").read_text())
        spec["hparams"]["mask_locator"] = "random"
        twin = run.parent / f"{run.name.split('-')[0]}-{spec_dict_hash(spec)}"
        twin.mkdir()
        (twin / "spec.json").write_text(json.dumps(spec))
        final = json.loads((run / "final.json").read_text())
        twin_id = f"cifar100-r100/smcl/{twin.name}"
        (twin / "final.json").write_text(json.dumps({**final, "top1": 1.0, "run_id": twin_id,
                                                     "spec_hash": spec_dict_hash(spec)}))
        other.append(twin)
    grid = load_grid(FIXTURES / "grid.yaml")
    df = collect(runs, warn=_no_warnings)
    assert len(df) == 6
    ids = {p: f"cifar100-r100/smcl/{p.name}" for p in own + other}
    for keep in (own, other):
        sel = select_runs(df, grid, warn=lambda _: None, expected_ids={ids[p] for p in keep})
        assert set(sel["run_id"]) == {ids[p] for p in keep}
    assert (select_runs(df, grid, warn=lambda _: None, expected_ids={ids[p] for p in other})["top1"] == 1.0).all()
