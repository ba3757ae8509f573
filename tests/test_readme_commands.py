"""Every `ltbench ...` line of README.md's code blocks that needs no download, no GPU, no cluster and no
long training runs as written (exit 0), in a scratch folder that holds the committed CPU-study records
plus stand-in records of the demo grid (numbers are made up; only their shape matters here)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltbench.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

# lines left out, each with why: they download, need ImageNet / a GPU / a scheduler, or train for long
SKIP = [
    (r"--download|data fetch|data cache", "downloads or needs the data"),
    (r"imagenet|ImageNet|--image-cache|table2", "needs ImageNet-LT"),
    (r"--launcher submitit|--launcher print|torchrun", "hands runs to a scheduler"),
    (r"^ltbench run .*(-d cifar|--dataset cifar)", "needs CIFAR on disk"),
    (r"^ltbench demo|^ltbench bench|^ltbench sweep (?!.*--dry-run)", "trains (minutes)"),
    (r"^ltbench ablate (?!.*--collect-only)", "trains the ablation grid"),
]


def readme_commands() -> list[str]:
    """`ltbench` lines of the README's ```bash blocks (continuations joined, trailing comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith("ltbench "):
                lines.append(line)
    return lines


def runnable() -> list[str]:
    return [c for c in readme_commands() if not any(re.search(p, c) for p, _ in SKIP)]


def _stand_in_final(n_classes: int, counts: list[int], spec_hash: str, epochs: int) -> dict:
    acc = [round(80.0 - 5.0 * i, 4) for i in range(n_classes)]
    return {"top1": 60.0, "many": 70.0, "medium": 55.0, "few": 40.0,
            "group_sizes": {"many": 3, "medium": 3, "few": 2}, "shot_rule": "shots-100-20",
            "per_class_acc": acc, "train_class_counts": counts, "best_epoch": epochs - 1, "best_top1": 60.0,
            "subset_sha": "standin", "wall_time_s": 1.0, "spec_hash": spec_hash, "epochs": epochs}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A working folder laid out like a checkout after `ltbench demo` and the CPU study."""
    from ltbench.data.longtail import longtail_counts
    from ltbench.files import atomic_write_json
    from ltbench.grid import expand, load_grid

    work = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "experiments", work / "experiments")
    runs = work / "results" / "runs"
    shutil.copytree(ROOT / "results" / "cpu-study", runs)
    for r in expand(load_grid(ROOT / "experiments" / "demo.yaml")):
        spec = r.spec
        counts = longtail_counts(10, spec.max_per_class, spec.ratio)  # shapes: 10 classes
        atomic_write_json(runs / spec.run_id / "spec.json", spec.to_dict())
        atomic_write_json(runs / spec.run_id / "final.json",
                          _stand_in_final(10, counts, spec.hash, spec.train.epochs))
    np = pytest.importorskip("numpy")
    np.save(work / "my_labels.npy", np.arange(10).repeat(500))
    return work


def test_the_readme_has_the_lines_this_test_is_about():
    cmds = runnable()
    assert "ltbench plot per-class experiments/demo.yaml" in cmds
    assert any(c.startswith("ltbench splits --labels") for c in cmds)
    assert "ltbench splits --dataset cifar100 --ratio 100 --json" in cmds
    assert len(cmds) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("command", runnable())
def test_a_readme_command_runs_as_written(scratch, monkeypatch, command):
    monkeypatch.chdir(scratch)
    monkeypatch.delenv("LTBENCH_RESULTS", raising=False)
    args = shlex.split(command)[1:]
    if args[:1] == ["run"]:
        args += ["--quiet"]  # the README's run line as written, without the progress bar
    result = runner.invoke(app, args)
    assert result.exit_code == 0, f"{command}\n{result.output}"
    if args[:2] == ["splits", "--labels"]:
        out = args[args.index("--out") + 1]
        assert (scratch / out).exists() and not (scratch / f"{out}.npy").exists()
        assert out in result.output
    if args[:2] == ["plot", "per-class"]:
        assert "wrote" in result.output and "demo-per-class.png" in result.output
    if "--json" in args and args[0] == "splits":
        assert json.loads(result.output)["dataset"] == "cifar100"
