"""Cost per cell: mean wall time per run and device-hours from final.json, the grid total in the caption."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ltbench.grid import load_grid
from ltbench.report import build_table, collect
from ltbench.report.costs import apply as apply_costs
from ltbench.report.costs import run_device

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(autouse=True)
def _paper_dir(monkeypatch):
    monkeypatch.setenv("LTBENCH_PAPER_DIR", str(REPO / "results" / "paper"))


def test_cell_cost_and_grid_total_from_final_json(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES / "runs", runs)
    walls = {}
    for i, final_path in enumerate(sorted(runs.rglob("final.json"))):
        final = json.loads(final_path.read_text())
        final["wall_time_s"] = 600.0 + 60 * i
        if i == 0:
            final["world_size"] = 4
        final_path.write_text(json.dumps(final))
        walls[final_path.parent] = (final["wall_time_s"], final.get("world_size", 1))
    t = build_table(collect(runs), load_grid(FIXTURES / "grid.yaml"), name="table")
    total = apply_costs(t)
    assert total.runs == len(t.frame)
    selected = [walls[Path(d)] for d in t.frame["run_dir"]]
    assert total.device_hours == pytest.approx(sum(w * p for w, p in selected) / 3600)
    assert f"Grid total: {total.device_hours:.2f} device-hours" in t.caption
    for cell in t.cells.values():
        if not cell.frame_index:
            assert cell.cost is None
            continue
        mine = [walls[Path(t.frame.loc[i, "run_dir"])] for i in cell.frame_index]
        assert cell.cost.mean_wall_s == pytest.approx(sum(w for w, _ in mine) / len(mine))
        assert cell.cost.device_hours == pytest.approx(sum(w * p for w, p in mine) / 3600)


def test_device_comes_from_env_json(tmp_path):
    assert run_device(tmp_path) == "not recorded"
    (tmp_path / "env.json").write_text(json.dumps({"device": "cuda:0", "device_name": "NVIDIA H200"}))
    assert run_device(tmp_path) == "NVIDIA H200"
    (tmp_path / "env.json").write_text(json.dumps({"device": "cpu"}))
    assert run_device(tmp_path) == "cpu"
