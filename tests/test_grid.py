"""Experiment grids: the shipped files load and expand to the right counts; bad files give one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltbench.cli import app
from ltbench.errors import LtbenchError
from ltbench.grid import expand, experiments_dir, load_grid, resolve_grid_path

runner = CliRunner()
EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
SHIPPED = ["table1", "table2", "ablate-masking", "ablate-contrastive", "quick-table1", "quick-ablate-masking",
           "quick-ablate-contrastive", "demo"]


def _write(tmp_path: Path, text: str, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_experiments_dir_is_the_repo_folder():
    assert experiments_dir().resolve() == EXPERIMENTS
    assert resolve_grid_path("table1") == EXPERIMENTS / "table1.yaml"
    assert resolve_grid_path("masking") == EXPERIMENTS / "ablate-masking.yaml"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_load(name):
    grid = load_grid(EXPERIMENTS / f"{name}.yaml")
    assert grid.methods and grid.seeds and grid.datasets and grid.ratios


# table2.yaml names imagenet-lt, which is not implemented: it is loaded above, never expanded here
@pytest.mark.parametrize("name,count", [
    ("table1", 2 * 3 * 11 * 3), ("ablate-masking", 3 * 3), ("ablate-contrastive", 2 * 2 * 3),
    ("quick-table1", 11 * 2), ("quick-ablate-masking", 3 * 2), ("quick-ablate-contrastive", 2 * 2 * 2),
    ("demo", 5),
])
def test_expansion_counts(name, count):
    grid = load_grid(EXPERIMENTS / f"{name}.yaml")
    assert grid.size == count
    runs = expand(grid)
    assert len(runs) == count
    assert len({r.run_id for r in runs}) == count


def test_table1_contents():
    grid = load_grid(EXPERIMENTS / "table1.yaml")
    assert grid.table == "table1" and grid.preset == "paper" and grid.seeds == (0, 1, 2)
    assert set(grid.methods) == {"erm", "drw", "ldam-drw", "cb-focal", "drw+mixup", "drw+cutmix", "drw+cmo",
                                 "scl", "scl+drw", "smcl", "drw+smcl"}
    assert {(d, r) for d, r, _ in grid.settings()} == {(d, r) for d in ("cifar10", "cifar100")
                                                       for r in (100.0, 50.0, 10.0)}


def test_overrides_vary_and_head_reach_the_spec(tmp_path):
    path = _write(tmp_path, "methods: [drw+smcl]\ndatasets: [shapes]\nratios: [10]\nseeds: [0, 1]\n"
                            "preset: quick\nmax_per_class: 60\noverrides: {epochs: 5, backbone: resnet8}\n"
                            "vary: {mask_locator: [random, center]}\n")
    # 5 epochs: masking starts at epoch 4 (with 2 it never would, and the locator would be normalised away)
    runs = expand(load_grid(path))
    assert len(runs) == 4
    seeds = [r.spec.seed for r in runs]
    assert seeds == [0, 0, 1, 1]  # seed-major: the first runs cover every cell once
    for r in runs:
        assert r.spec.train.epochs == 5 and r.spec.train.backbone == "resnet8"
        assert r.spec.max_per_class == 60 and r.spec.preset == "quick"
        assert r.spec.hparams["mask_locator"] == r.vary["mask_locator"]
        assert r.run_id.startswith("shapes-h60-r10/drw+smcl/")


def test_same_spec_runs_once(tmp_path):
    # 0.3 is w_sc's default: the two vary values give one spec each, the duplicate entry none
    path = _write(tmp_path, "methods: [smcl]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\npreset: quick\n"
                            "vary: {w_sc: [0.3, 0.30, 0.0]}\n")
    assert len(expand(load_grid(path))) == 2


def test_with_methods_restricts(tmp_path):
    grid = load_grid(EXPERIMENTS / "quick-table1.yaml").with_methods(["drw", "erm"])
    assert grid.methods == ("erm", "drw")  # the file's order
    with pytest.raises(LtbenchError, match="not in this grid"):
        grid.with_methods(["smcl"])


def test_unknown_dataset_fails_at_expansion(tmp_path):
    path = _write(tmp_path, "methods: [erm]\ndatasets: [places-lt]\nratios: [256]\nseeds: [0]\n")
    grid = load_grid(path)  # loading does not check names
    with pytest.raises(LtbenchError, match=r"grid.yaml: unknown data set 'places-lt'"):
        expand(grid)


BAD = [
    ("methods: [erm]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\nepochs: 3\n", "unknown key 'epochs'"),
    ("methods: [nope]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\n", "unknown method 'nope'"),
    ("methods: []\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\n", "`methods` is empty"),
    ("methods: [erm]\ndatasets: [shapes]\nratios: [10]\nseeds: []\n", "`seeds` is empty"),
    ("", "the file is empty"),
    ("methods: [erm\ndatasets: [shapes]\n", "YAML syntax error"),
    ("methods: [erm]\ndatasets: [shapes]\nratios: [10]\n", "missing key 'seeds'"),
    ("methods: [erm]\ndatasets: [shapes]\nratios: [0.5]\nseeds: [0]\n", "ratios must be numbers >= 1"),
    ("methods: [erm]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\noverrides: {lr: fast}\n",
     "expects a number"),
    ("methods: [erm]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\nvary: {lr: 0.1}\n", "non-empty list"),
    ("methods: [erm]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\ntable: fancy\n", "unknown table layout"),
    ("methods: [erm]\ndatasets: [mnist]\nratios: [10]\nseeds: [0]\n", "unknown data set 'mnist'"),
    ("- erm\n- drw\n", "expected a mapping"),
]


@pytest.mark.parametrize("text,needle", BAD)
@pytest.mark.parametrize("command", [["sweep", "--dry-run"], ["status"]])
def test_bad_files_give_one_line(tmp_path, text, needle, command):
    path = _write(tmp_path, text)
    args = [command[0], str(path), *command[1:], "--results-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert needle in result.output, result.output
    assert str(path) in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_missing_file_gives_one_line(tmp_path):
    for args in (["sweep", str(tmp_path / "nope.yaml"), "--dry-run"], ["status", str(tmp_path / "nope.yaml")],
                 ["table", str(tmp_path / "nope.yaml")], ["sweep", "no-such-grid"]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert "does not exist" in result.output


def test_table_rejects_bad_yaml(tmp_path):
    path = _write(tmp_path, "methods: [erm\n")
    result = runner.invoke(app, ["table", str(path), "--results-dir", str(tmp_path), "--out", str(tmp_path)])
    assert result.exit_code != 0 and "YAML syntax error" in result.output and "Traceback" not in result.output
