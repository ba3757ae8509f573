"""The bad-input corpus: every case exits non-zero with one line naming the problem, no traceback, and
leaves the results folder (which already holds a finished run) exactly as it was."""

from __future__ import annotations

import errno
import hashlib
import pickle
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltbench import results as results_mod
from ltbench.cli import app

runner = CliRunner()
FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs"
TINY = ["--set", "backbone=resnet8", "--set", "max_per_class=60", "--set", "batch_size=64", "--epochs", "1",
        "--device", "cpu", "--quiet"]


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
    for name, text in grids.items():
        (tmp_path / name).write_text(text)
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
    assert len(CASES) >= 30


def test_a_full_disk_is_one_line_and_keeps_finished_runs(sandbox, monkeypatch):
    """ENOSPC on the first checkpoint: one line, exit 2, the other runs untouched, no final.json."""
    real = results_mod.atomic_write_bytes

    def full_disk(path, data):
        if Path(path).name == "last.pt":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(results_mod, "atomic_write_bytes", full_disk)
    monkeypatch.setattr("ltbench.train.atomic_write_bytes", full_disk)
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
