"""Smoke tests of `ltbench bench`: it runs, and its JSON has the documented keys with sane numbers.

No timing assertions: speed is shown by the benchmark, never asserted by a test.
"""

from __future__ import annotations

import json
import math

from typer.testing import CliRunner

from ltbench.bench import BenchOptions, run_bench
from ltbench.cli import app

TINY_BENCH = {"backbone": "resnet8", "max_per_class": 100}  # ratio 100: the tail keeps 1 image
RATIOS = ("overhead_ratio", "pipeline_speedup", "step_vs_erm", "predicted_step_vs_erm", "bf16_speedup",
          "channels_last_speedup", "erm_overhead_ratio", "saliency_share_default")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _check_common(result: dict) -> None:
    for key in RATIOS:
        assert _positive(result[key]), key
    for key in ("overhead_ratio", "pipeline_speedup", "step_vs_erm", "bf16_speedup"):
        lo, hi = result[f"{key}_spread"]
        assert _positive(lo) and lo <= result[key] <= hi, key
    assert set(result["saliency_ms"]) == {"fine-grained", "spectral-residual", "fine-grained-threaded", "cached-map",
                                          "model-cam"}
    for op, ms in result["saliency_ms"].items():
        assert _positive(ms) and len(result["saliency_ms_spread"][op]) == 2
    for name, ms in result["medians_ms"].items():
        assert _positive(ms), name
        assert len(result["spreads_ms"][name]) == 2
    assert result["targets"] and all(isinstance(t["met"], bool) for t in result["targets"])


def test_bench_smcl_measures_masked_and_plain_steps():
    result = run_bench(BenchOptions(method="smcl", steps=1, rounds=1, batch_size=16, device="cpu", workers=(0,),
                                    cheap_reps=1, overrides=dict(TINY_BENCH)))
    _check_common(result)
    steps = result["steps"]
    assert set(steps) == {"erm", "smcl:masked", "smcl:plain"}
    assert steps["erm"]["images_per_step"] == 16
    assert steps["smcl:masked"]["images_per_step"] == 80  # 5 views of 16
    assert steps["smcl:plain"]["images_per_step"] == 32
    assert result["predicted_step_vs_erm"] == 5.0  # the primary step is the masked one
    assert steps["smcl:plain"]["predicted_step_vs_erm"] == 2.0
    assert _positive(result["late_epoch_vs_erm"])
    assert result["late_epoch_step_mix"] == 0.2  # the masked branch's late_share: SMCL's mask_prob
    assert result["config"]["views"] == ["cutout", "sim"]
    assert "input:classic-w0" in result["medians_ms"] and "bare:erm:bf16" in result["medians_ms"]


def test_bench_cli_json_for_erm():
    args = ["bench", "--method", "erm", "--steps", "1", "--rounds", "1", "--batch-size", "16", "--device", "cpu",
            "--workers", "0,2", "--json"] + [f"--set={k}={v}" for k, v in TINY_BENCH.items()]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    _check_common(result)
    assert set(result["steps"]) == {"erm"}
    assert result["predicted_step_vs_erm"] == 1.0
    assert _positive(result["pipeline_speedup_w2"])
    assert result["compile_speedup"] is None


def test_bench_cli_rejects_bad_input():
    res = CliRunner().invoke(app, ["bench", "--steps", "0", "--device", "cpu"])
    assert res.exit_code == 2
    assert "steps and rounds" in res.output
