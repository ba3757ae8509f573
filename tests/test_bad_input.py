"""The bad-input corpus: every case exits non-zero with one line naming the problem, no traceback, and
leaves the results folder (which already holds a finished run) exactly as it was."""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ltbench import rundir as rundir_mod
from ltbench.cli import app

runner = CliRunner()
FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs"
TINY = ["-r", "10", "--set", "backbone=resnet8", "--set", "max_per_class=60", "--set", "batch_size=64", "--epochs", "1",
        "--device", "cpu", "--quiet"]


GRID_HEAD = "methods: [erm]\ndatasets: [shapes]\nratios: [10]\n"
HARDENING_GRIDS = {
    "dup-methods.yaml": "methods: [erm]\ndatasets: [shapes]\nmethods: [drw]\nratios: [10]\nseeds: [0]\n",
    "dup-override.yaml": GRID_HEAD + "seeds: [0]\noverrides:\n  epochs: 1\n  epochs: 2\n",
    "dup-flow.yaml": GRID_HEAD + "seeds: [0]\noverrides: {lr: 0.1, lr: 0.2}\n",
    "huge.yaml": GRID_HEAD + f"seeds: {list(range(1000))}\n"
                             f"vary: {{lr: {[round(0.001 * i, 3) for i in range(1, 201)]}}}\n",
    "big-seed.yaml": GRID_HEAD + "seeds: [4294967296]\n",
    "bad-lr.yaml": GRID_HEAD + "seeds: [0]\noverrides: {lr: -1}\n",
    "bad-milestones.yaml": GRID_HEAD + "seeds: [0]\noverrides: {lr_milestones: [-1, 1000]}\n",
    "bad-vary.yaml": "methods: [smcl]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\nvary: {mask_prob: [0.5, 2]}\n",
    "empty-class.yaml": "methods: [erm, drw]\ndatasets: [shapes]\nratios: [100]\nseeds: [0]\nmax_per_class: 60\n",
}
TINY_SPEC = {"backbone": "resnet8", "max_per_class": 60, "batch_size": 64, "epochs": 1}


class _Payload:
    """Unpickling it runs a shell command (what torch.load(weights_only=False) would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_runs(tmp: Path) -> None:
    """Started runs (spec.json, no final.json) of the TINY run, each with one planted file, under tmp/evil-*."""
    from ltbench.config import build_spec
    from ltbench.files import atomic_write_json
    from ltbench.train import run_directory

    spec = build_spec("erm", "shapes", 10, 0, "paper", TINY_SPEC)
    plants = {
        "pickle": lambda d: torch.save({"spec_hash": spec.hash, "x": _Payload(tmp / "pwned")}, d / "last.pt"),
        "list": lambda d: torch.save([1, 2, 3], d / "last.pt"),
        "nodict": lambda d: torch.save({"next_epoch": 1}, d / "last.pt"),
        "garbage": lambda d: (d / "last.pt").write_bytes(b"\x00\x01 not a checkpoint"),
        "lock": lambda d: (d / "lock").symlink_to(tmp / "victim.txt"),
        "sessions": lambda d: (d / "sessions.jsonl").symlink_to(tmp / "victim.txt"),
        "metrics": lambda d: (d / "metrics.jsonl").symlink_to(tmp / "victim.txt"),
        "env": lambda d: (d / "env.json").symlink_to(tmp / "victim.txt"),
    }
    for name, plant in plants.items():
        run_dir = run_directory(spec, tmp / f"evil-{name}")
        atomic_write_json(run_dir / "spec.json", spec.to_dict())
        plant(run_dir)


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


@pytest.fixture
def sandbox(tmp_path) -> dict[str, Path]:
    """A results folder with finished runs in it, a file, an empty folder and some experiment files."""
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RUNS / "cifar100-r100" / "erm", results / "cifar100-r100" / "erm")
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    grids = {
        "empty.yaml": "",
        "malformed.yaml": "methods: [erm\ndatasets: shapes",
        "list.yaml": "- erm\n- drw\n",
        "unknown-key.yaml": "methodz: [erm]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\n",
        "unknown-method.yaml": "methods: [nope]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\n",
        "bad-ratio.yaml": "methods: [erm]\ndatasets: [shapes]\nratios: [0]\nseeds: [0]\n",
        "unknown-dataset.yaml": "methods: [erm]\ndatasets: [mnist]\nratios: [10]\nseeds: [0]\n",
        "bad-override.yaml": "methods: [erm]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\n"
                             "overrides: {epochs: many}\n",
        "no-vary.yaml": "methods: [erm]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\n",
    }
    grids.update(HARDENING_GRIDS)
    for name, text in grids.items():
        (tmp_path / name).write_text(text)
    np.save(tmp_path / "labels.npy", np.arange(10).repeat(5))
    np.save(tmp_path / "huge-labels.npy", np.array([0, 10**12], dtype=np.int64))
    (tmp_path / "victim.txt").write_text("precious\n")
    _plant_runs(tmp_path)
    cifar = tmp_path / "bad-cifar" / "cifar-10-batches-py"  # the torchvision layout, with garbage inside
    cifar.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"):
        (cifar / name).write_bytes(pickle.dumps({"data": "truncated"})[:7])
    return {"tmp": tmp_path, "results": results}


R = "{results}"
T = "{tmp}"
CASES = [
    # ltbench run: names, numbers and settings
    (["run", "-m", "nope"], "unknown method"),
    (["run", "-m", "erm", "-d", "imagenet"], "unknown data set"),
    (["run", "-m", "erm", "-r", "0"], "ratio must be >= 1"),
    (["run", "-m", "erm", "-r", "-3"], "ratio must be >= 1"),
    (["run", "-m", "erm", "-r", "ten"], "ratio must be a number"),
    (["run", "-m", "erm", "-r", "nan"], "ratio"),
    (["run", "-m", "erm", "--set", "foo=1"], "unknown setting 'foo'"),
    (["run", "-m", "erm", "--set", "epochs=x"], "expects an integer"),
    (["run", "-m", "erm", "--set", "lr=fast"], "lr expects a number"),
    (["run", "-m", "erm", "--set", "lr=inf"], "expects a finite number"),
    (["run", "-m", "erm", "--set", "noequals"], "key=value"),
    (["run", "-m", "erm", "--epochs", "0"], "epochs must be >= 1"),
    (["run", "-m", "erm", "--set", "eval_every=0"], "eval_every must be >= 1"),
    (["run", "-m", "erm", "--preset", "huge"], "unknown preset"),
    (["run", "-m", "erm", "--device", "tpu"], "unknown device"),
    (["run", "-m", "erm", "--precision", "fp8"], "precision"),
    (["run", "-m", "smcl", "--set", "mask_fill=blur"], "mask_fill"),
    # data that is not there or not readable
    (["run", "-m", "erm", "-d", "cifar10", "--data-dir", "/nonexistent/x"], "cifar10 not found"),
    (["run", "-m", "erm", "-d", "cifar100", "--data-dir", f"{T}/empty"], "cifar100 not found"),
    (["run", "-m", "erm", "-d", "cifar10", "--data-dir", f"{T}/bad-cifar"], "cifar10"),
    # where results go
    (["run", "-m", "erm", *TINY, "--results-dir", f"{T}/a-file/runs"], "a-file"),
    # experiment files
    (["sweep", f"{T}/missing.yaml"], "missing.yaml"),
    (["sweep", f"{T}/empty.yaml"], "empty.yaml"),
    (["sweep", f"{T}/malformed.yaml"], "malformed.yaml"),
    (["sweep", f"{T}/list.yaml"], "list.yaml"),
    (["sweep", f"{T}/unknown-key.yaml"], "methodz"),
    (["sweep", f"{T}/unknown-method.yaml"], "unknown method"),
    (["sweep", f"{T}/bad-ratio.yaml"], "ratio"),
    (["sweep", f"{T}/unknown-dataset.yaml"], "unknown data set"),
    (["sweep", f"{T}/bad-override.yaml"], "expects an integer"),
    (["sweep", "experiments/demo.yaml", "--jobs", "0"], "--jobs"),
    (["sweep", "experiments/demo.yaml", "--launcher", "mpi"], "unknown launcher"),
    # tables, ablations, splits, listings
    (["table", "table9"], "table9"),
    (["table", "table1", "--format", "pdf"], "pdf"),
    (["table", "table1", "--select", "worst"], "worst"),
    (["ablate", "nothing"], "nothing"),
    (["ablate", f"{T}/no-vary.yaml", "--collect-only"], "no `vary` key"),
    (["splits", "-d", "cifar100", "-r", "0"], "ratio must be >= 1"),
    (["table", f"{T}/missing.yaml"], "missing.yaml"),
    (["data", "fetch", "imagenet"], "imagenet"),
    (["run-spec", f"{T}/a-file"], "not a readable ltbench spec"),
    # values out of their declared range (checked when the spec is built, before any file is written)
    (["run", "-m", "erm", "--set", "lr=-1"], "lr must be > 0, got -1.0"),
    (["run", "-m", "erm", "--set", "lr=0"], "lr must be > 0"),
    (["run", "-m", "erm", "--set", "lr=.nan"], "lr expects a finite number"),
    (["run", "-m", "erm", "--set", "weight_decay=-1"], "weight_decay must be >= 0"),
    (["run", "-m", "erm", "--set", "momentum=-1"], "momentum must be >= 0 and < 1"),
    (["run", "-m", "erm", "--set", "momentum=5"], "momentum must be >= 0 and < 1, got 5.0"),
    (["run", "-m", "erm", "--set", "momentum=1"], "momentum must be >= 0 and < 1"),
    (["run", "-m", "erm", "--seed", "-1"], "seed must be >= 0 and <= 4294967295, got -1"),
    (["run", "-m", "erm", "--seed", "18446744073709551616"], "seed must be >= 0 and <= 4294967295"),
    (["run", "-m", "erm", "--set", "data_seed=-1"], "data_seed must be >= 0"),
    (["run", "-m", "erm", "--set", "data_seed=4294967296"], "data_seed must be >= 0 and <= 4294967295"),
    (["run", "-m", "erm", "--set", "batch_size=0"], "batch_size must be >= 1"),
    (["run", "-m", "erm", "--set", "max_per_class=0"], "max_per_class must be"),
    (["run", "-m", "erm", "--set", "warmup_epochs=-5"], "warmup_epochs must be >= 0, got -5"),
    (["run", "-m", "erm", "--set", "warmup_epochs=200"], "warmup_epochs must be < epochs (200), got 200"),
    (["run", "-m", "erm", "--set", "lr_milestones=[-1,1000]"], "lr_milestones must be > 0"),
    (["run", "-m", "erm", "--set", "lr_milestones=[100,1000]"], "lr_milestones must each be > 0 and < epochs"),
    (["run", "-m", "erm", "--set", "lr_milestones=[180,160]"], "lr_milestones must be strictly increasing"),
    (["run", "-m", "erm", "--set", "lr_milestones=[10,20,30]"], "lr_milestones must be 2 epoch(s)"),
    (["run", "-m", "drw", "--set", "drw_beta=1"], "drw_beta must be >= 0 and < 1, got 1.0"),
    (["run", "-m", "erm", "--set", "drw_beta=1"], "drw_beta must be >= 0 and < 1"),
    (["run", "-m", "drw", "--set", "drw_start_epoch=500"], "drw_start_epoch must be <= epochs (200)"),
    (["run", "-m", "drw", "--set", "drw_start_epoch=-1"], "drw_start_epoch must be >= 0"),
    (["run", "-m", "smcl", "--set", "temperature=0"], "temperature must be > 0, got 0.0"),
    (["run", "-m", "smcl", "--set", "base_temperature=-0.1"], "base_temperature must be > 0"),
    (["run", "-m", "smcl", "--set", "mask_prob=2"], "mask_prob must be >= 0 and <= 1, got 2.0"),
    (["run", "-m", "smcl", "--set", "mask_start_epoch=-1"], "mask_start_epoch must be >= 0"),
    (["run", "-m", "smcl", "--set", "mask_beta=0"], "mask_beta must be > 0"),
    (["run", "-m", "smcl", "--set", "target_beta=1"], "target_beta must be >= 0 and < 1"),
    (["run", "-m", "smcl", "--set", "head_hidden=0"], "head_hidden must be >= 1"),
    (["run", "-m", "smcl", "--set", "feat_dim=0"], "feat_dim must be >= 1"),
    (["run", "-m", "smcl", "--set", "w_sc=-1"], "w_sc must be >= 0"),
    (["run", "-m", "cmo", "--set", "mix_prob=1.5"], "mix_prob must be >= 0 and <= 1"),
    (["run", "-m", "mixup", "--set", "mix_alpha=0"], "mix_alpha must be > 0"),
    (["run", "-m", "cmo", "--set", "weighted_alpha=-1"], "weighted_alpha must be >= 0"),
    (["run", "-m", "cb-focal", "--set", "cb_beta=1"], "cb_beta must be >= 0 and < 1"),
    (["run", "-m", "cb-focal", "--set", "gamma=-1"], "gamma must be >= 0"),
    (["run", "-m", "ldam-drw", "--set", "s=0"], "s must be > 0"),
    (["run", "-m", "ldam-drw", "--set", "max_m=-0.5"], "max_m must be >= 0"),
    # splits whose tail classes get no training images
    (["run", "-m", "erm", "-r", "100", "--set", "max_per_class=60"],
     "ratio 100 with max_per_class=60 leaves 1 class(es) of shapes without training images; use a ratio <= 60 "
     "or max_per_class >= 100"),
    (["run", "-m", "drw", "-r", "100", "--set", "max_per_class=60"], "without training images"),
    (["run", "-m", "erm", "-r", "1e9"], "use a ratio <= 500 or a smaller ratio"),
    (["run", "-m", "erm", "-r", "inf"], "ratio must be a finite number >= 1, got inf"),
    (["sweep", f"{T}/empty-class.yaml"], "without training images"),
    # experiment files: duplicated keys, sizes, values
    (["sweep", f"{T}/dup-methods.yaml"], "key 'methods' appears twice (lines 1 and 3)"),
    (["sweep", f"{T}/dup-override.yaml"], "key 'epochs' appears twice (lines 6 and 7)"),
    (["sweep", f"{T}/dup-flow.yaml"], "key 'lr' appears twice (line 5)"),
    (["sweep", f"{T}/huge.yaml", "--dry-run"], "the grid has 200,000 runs, more than the 100,000"),
    (["table", f"{T}/dup-methods.yaml"], "appears twice"),
    (["sweep", f"{T}/big-seed.yaml"], "seed must be >= 0 and <= 4294967295"),
    (["sweep", f"{T}/bad-lr.yaml"], "lr must be > 0"),
    (["sweep", f"{T}/bad-milestones.yaml"], "lr_milestones must be > 0"),
    (["sweep", f"{T}/bad-vary.yaml", "--dry-run"], "mask_prob must be >= 0 and <= 1"),
    # crafted checkpoints and planted links in a started run (a payload must not run; no target is written)
    (["run", "-m", "erm", *TINY, "--results-dir", f"{T}/evil-pickle"], "is damaged or not ltbench's"),
    (["run", "-m", "erm", *TINY, "--results-dir", f"{T}/evil-list"], "is damaged or not ltbench's"),
    (["run", "-m", "erm", *TINY, "--results-dir", f"{T}/evil-nodict"], "(move it away or --force)"),
    (["run", "-m", "erm", *TINY, "--results-dir", f"{T}/evil-garbage"], "is damaged or not ltbench's"),
    (["run", "-m", "erm", *TINY, "--results-dir", f"{T}/evil-lock"], "lock is a symbolic link"),
    (["run", "-m", "erm", *TINY, "--results-dir", f"{T}/evil-sessions"], "sessions.jsonl is a symbolic link"),
    (["run", "-m", "erm", *TINY, "--results-dir", f"{T}/evil-metrics"], "metrics.jsonl is a symbolic link"),
    (["run", "-m", "erm", *TINY, "--results-dir", f"{T}/evil-env"], "env.json is a symbolic link"),
    # results folders that are not there, or not folders
    (["status", "--results-dir", f"{T}/nowhere"], "results folder"),
    (["status", "--results-dir", f"{T}/a-file"], "is not a directory"),
    (["status", "experiments/demo.yaml", "--results-dir", f"{T}/nowhere"], "does not exist"),
    (["table", "experiments/demo.yaml", "--results-dir", f"{T}/nowhere"], "does not exist"),
    (["table", "table1", "--results-dir", f"{T}/a-file"], "is not a directory"),
    (["compare", "experiments/demo.yaml", "--a", "erm", "--b", "drw", "--results-dir", f"{T}/nowhere"],
     "does not exist"),
    (["plot", "per-class", "--results-dir", f"{T}/a-file"], "is not a directory"),
    (["ablate", "masking", "--collect-only", "--results-dir", f"{T}/nowhere"], "does not exist"),
    # splits and index export
    (["splits", "-d", "cifar100", "--max-per-class", "0"], "--max-per-class must be >= 1"),
    (["splits", "--labels", f"{T}/labels.npy", "--max-per-class", "0", "--out", f"{T}/x.npy"],
     "--max-per-class must be >= 1"),
    (["splits", "--labels", f"{T}/labels.npy", "--ratio", "2", "--out", f"{T}/empty"], "is a directory"),
    (["splits", "--labels", f"{T}/huge-labels.npy", "--ratio", "2", "--out", f"{T}/x.npy"],
     "has label 1000000000000"),
]


@pytest.mark.parametrize("args,needle", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_and_changes_nothing(sandbox, monkeypatch, args, needle):
    monkeypatch.setenv("LTBENCH_RESULTS", str(sandbox["results"]))
    monkeypatch.chdir(Path(__file__).parent.parent)  # experiments/ resolves as from the checkout
    args = [a.replace(T, str(sandbox["tmp"])).replace(R, str(sandbox["results"])) for a in args]
    before = _snapshot(sandbox["tmp"])
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert needle in lines[0], lines[0]
    assert _snapshot(sandbox["tmp"]) == before


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 80


def test_the_pickled_payload_would_have_run(sandbox):
    """The corpus' crafted last.pt is live: loading it the unsafe way runs its command (so the safe load
    refusing it, above, is what keeps the marker file from appearing)."""
    (ckpt,) = (sandbox["tmp"] / "evil-pickle").rglob("last.pt")
    torch.load(ckpt, weights_only=False)
    assert (sandbox["tmp"] / "pwned").exists()


def test_a_full_disk_is_one_line_and_keeps_finished_runs(sandbox, monkeypatch):
    """ENOSPC on the first checkpoint: one line, exit 2, the other runs untouched, no final.json."""
    real = rundir_mod.atomic_write_bytes

    def full_disk(path, data):
        if Path(path).name == "last.pt":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(rundir_mod, "atomic_write_bytes", full_disk)  # RunDir writes last.pt
    others = _snapshot(sandbox["results"])
    result = runner.invoke(app, ["run", "-m", "erm", *TINY, "--results-dir", str(sandbox["results"])])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"error: No space left on device: {result.output.split(': ')[-1]}"
                                                  .strip()]
    assert "last.pt" in result.output
    after = _snapshot(sandbox["results"])
    assert {k: v for k, v in after.items() if k in others} == others
    assert not any(k.endswith("final.json") for k in set(after) - set(others))


def test_debug_shows_the_traceback(sandbox):
    result = runner.invoke(app, ["--debug", "run", "-m", "nope"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "unknown method" in str(result.exception)


USAGE_CASES = [
    (["run", "--bogus"], "No such option: --bogus"),
    (["run", "-m", "erm", "--epochs", "x"], "Invalid value for '--epochs'"),
    (["run"], "Missing option '--method'"),
    (["compare", "experiments/demo.yaml"], "Missing option '--a'"),
    (["nosuch"], "No such command 'nosuch'"),
    (["run", "-m", "erm", "--results-dir", ""], "--results-dir is empty"),  # would write into the cwd
    (["table", "experiments/demo.yaml", "--results-dir="], "--results-dir is empty"),
    (["splits", "-d", "shapes", "-r", "10", "--out", " "], "--out is empty"),
]


@pytest.mark.parametrize("args,needle", USAGE_CASES, ids=[" ".join(a) for a, _ in USAGE_CASES])
def test_usage_errors_are_one_line_too(monkeypatch, capsys, args, needle):
    """What the parser rejects (through the real entry point, not CliRunner) gets the same one-line form."""
    from ltbench.cli import main

    monkeypatch.setattr("sys.argv", ["ltbench", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and needle in err[0] and "--help" in err[0], err[0]


def test_the_entry_point_keeps_exit_codes(monkeypatch, capsys):
    """A command's own exit code (here: a one-line user error, 2) and success (0) pass through main()."""
    from ltbench.cli import main

    monkeypatch.setattr("sys.argv", ["ltbench", "list", "presets"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 0 and "cpu" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", ["ltbench", "table", "/nonexistent/grid.yaml"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: experiment file /nonexistent/grid.yaml does not exist"]
