"""--tensorboard: metrics.jsonl rows mirrored as scalars; no dependency unless used, a clear error if missing."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
from typer.testing import CliRunner

from ltbench.cli import app
from ltbench.config import build_spec
from ltbench.files import read_jsonl
from ltbench.train import RuntimeOptions, run_directory, train


class _FakeWriter:
    made: list[_FakeWriter] = []

    def __init__(self, log_dir: str):
        self.log_dir, self.scalars, self.closed = log_dir, [], False
        _FakeWriter.made.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_every_numeric_metric_becomes_a_scalar(tmp_path, tiny, monkeypatch):
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = _FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    _FakeWriter.made.clear()
    spec = build_spec("erm", "shapes", 10, 0, "paper", {**tiny, "epochs": 2})
    train(spec, RuntimeOptions(results_dir=tmp_path, device="cpu", argv=["test"], tracker="tensorboard"))
    (writer,) = _FakeWriter.made
    run_dir = run_directory(spec, tmp_path)
    assert writer.log_dir == str(run_dir / "tensorboard") and writer.closed
    expected = [(k, v, r["epoch"]) for r in read_jsonl(run_dir / "metrics.jsonl")
                for k, v in sorted(r.items()) if k != "epoch" and isinstance(v, (int, float))]
    assert writer.scalars == expected and any(tag == "top1" for tag, _, _ in expected)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed")
def test_a_missing_tensorboard_is_a_one_line_error(tmp_path):
    res = CliRunner().invoke(app, ["run", "-m", "erm", "--epochs", "1", "--tensorboard", "--results-dir",
                                   str(tmp_path), "--device", "cpu", "-q"])
    assert res.exit_code == 2 and "pip install tensorboard" in res.output and "Traceback" not in res.output
    assert not any(tmp_path.iterdir())  # nothing claimed
