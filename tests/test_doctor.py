"""`ltbench doctor`: an honest CPU report, exit 0 when ready, 1 when a required item is missing, --json."""

from __future__ import annotations

import gzip
import json
import sys
import types

import pytest
import torch
from typer.testing import CliRunner

from ltbench import doctor
from ltbench.cli import app

runner = CliRunner()


def _doctor(*args: str):
    return runner.invoke(app, ["doctor", *args])


def _by_name(payload: dict) -> dict:
    return {c["name"]: c for c in payload["checks"]}


def test_cpu_report_json(tmp_path):
    res = _doctor("--device", "cpu", "--json", "--results-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path))
    payload = json.loads(res.output)
    checks = _by_name(payload)
    expected_exit = 0 if all(c["status"] != "fail" for c in payload["checks"] if c["required"]) else 1
    assert res.exit_code == expected_exit == (0 if payload["ready"] else 1), res.output
    assert payload["device"] == "cpu"
    for name in ("python", "torch", "torchvision", "cuda / cudnn", "device", "bf16", "tf32", "torch.compile",
                 "opencv (contrib saliency)", "data: shapes", "data: cifar10", "results folder", "threads"):
        assert name in checks, name
    assert checks["torch"]["value"] == torch.__version__
    assert checks["device"]["status"] == "ok" and "conv forward/backward ran" in checks["device"]["value"]
    assert checks["tf32"]["status"] == "info"  # CUDA only
    assert checks["torch.compile"]["status"] == "skip"  # opt-in
    assert checks["data: cifar10"]["status"] == "warn"  # empty data dir: reported, never fatal
    assert checks["threads"]["data"]["torch_threads"] == torch.get_num_threads()
    assert not (tmp_path / "runs").exists()  # the writability probe leaves nothing behind


def test_text_report_marks_each_line(tmp_path):
    res = _doctor("--device", "cpu", "--results-dir", str(tmp_path))
    lines = res.output.strip().splitlines()
    assert lines[-1].startswith("device cpu: ")
    assert any(line.startswith("✓ torch: ") for line in lines)
    assert any(line.startswith("– torch.compile: ") for line in lines)


def test_unwritable_results_dir_fails(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = _doctor("--device", "cpu", "--json", "--results-dir", str(blocker / "runs"))
    assert res.exit_code == 1
    check = _by_name(json.loads(res.output))["results folder"]
    assert check["status"] == "fail" and check["required"] and "LTBENCH_RESULTS" in check["hint"]


def test_plain_opencv_fails_with_the_pip_name(tmp_path, monkeypatch):
    plain = types.ModuleType("cv2")
    plain.__version__ = "4.10.0"  # opencv-python-headless: no `saliency` attribute
    monkeypatch.setitem(sys.modules, "cv2", plain)
    res = _doctor("--device", "cpu", "--json", "--results-dir", str(tmp_path))
    assert res.exit_code == 1
    check = _by_name(json.loads(res.output))["opencv (contrib saliency)"]
    assert check["status"] == "fail"
    assert "opencv-contrib-python-headless" in check["hint"] and "spectral-residual" in check["hint"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the report of a machine without CUDA")
def test_cuda_requested_without_cuda_exits_1(tmp_path):
    res = _doctor("--device", "cuda", "--json", "--results-dir", str(tmp_path))
    assert res.exit_code == 1
    checks = _by_name(json.loads(res.output))
    assert checks["device"]["status"] == "fail" and checks["device"]["required"]
    assert checks["cuda / cudnn"]["status"] == "fail"


def test_bad_device_is_a_one_line_error():
    res = _doctor("--device", "tpu")
    assert res.exit_code == 2
    assert "unknown device 'tpu'" in res.output and "Traceback" not in res.output


def test_compile_probe_honours_its_time_limit():
    check = doctor.check_compile("cpu", True, timeout_s=0.01)
    assert check.status == "warn" and "no result within" in check.value and not check.required


def test_find_dataset_follows_the_loaders_layouts(tmp_path, monkeypatch):
    monkeypatch.setattr("ltbench.data.datasets.DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    fm = tmp_path / "FashionMNIST" / "raw"
    fm.mkdir(parents=True)
    for stem in doctor._FASHION_STEMS[:-1]:
        with gzip.open(fm / f"{stem}.gz", "wb") as fh:
            fh.write(b"")
    assert doctor.find_dataset("fashion-mnist", tmp_path) is None  # one file short
    (fm / doctor._FASHION_STEMS[-1]).write_bytes(b"")  # the last file, uncompressed
    assert doctor.find_dataset("fashion-mnist", tmp_path) == fm
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    assert doctor.find_dataset("cifar10", tmp_path) is None
    for name in ("data_batch_1", "data_batch_5", "test_batch"):
        (c10 / name).write_bytes(b"")
    assert doctor.find_dataset("cifar10", tmp_path) == c10


def test_ready_needs_every_required_check():
    C = doctor.Check
    assert doctor.ready([C("a", "ok", "", required=True), C("b", "warn", ""), C("c", "fail", "")])
    assert not doctor.ready([C("a", "ok", "", required=True), C("b", "fail", "", required=True)])


def test_version_floor_compare():
    assert doctor._version_tuple("2.4.0+cu121") == (2, 4, 0)
    assert doctor._version_tuple("2.11.0a0") >= doctor.MIN_TORCH
    assert doctor._version_tuple("2.0.1") < doctor.MIN_TORCH
