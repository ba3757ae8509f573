"""ImageNet-LT: the real split lists (when the shared folder is there), a fake ILSVRC tree trained end to
end with ResNet-50 at 32 px on CPU, one-line errors, and a 2-process gloo DDP run under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from ltbench.config import build_spec
from ltbench.data.datasets import build_bundle
from ltbench.data.imagenet_lt import LIST_NAMES, read_list, train_counts
from ltbench.data.shots import shot_groups
from ltbench.distributed import Dist, torchrun_command
from ltbench.errors import LtbenchError
from ltbench.files import read_jsonl
from ltbench.sources import FileSource, build_cache
from ltbench.splits import split_summary
from ltbench.train import RuntimeOptions, run_directory, train

REPO = Path(__file__).resolve().parents[1]
COUNTS = [6, 3, 2, 1]  # a tiny long tail: 12 training images in 4 classes
SMALL = {"epochs": 1, "batch_size": 8, "image_size": 32}


@pytest.fixture(autouse=True)
def _one_thread():
    """ResNet-50 steps on a shared 2-core machine: one intra-op thread avoids OpenMP contention stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _shared_splits() -> Path:
    env = os.environ.get("LTBENCH_SHARED")
    folder = Path(env) / "data" / "imagenet_lt" if env else REPO.parent / "shared" / "data" / "imagenet_lt"
    if not (folder / LIST_NAMES["test"]).is_file():
        pytest.skip(f"the shared ImageNet-LT split lists are not at {folder} (set LTBENCH_SHARED)")
    return folder


def _jpeg(path: Path, label: int, rng: np.random.Generator) -> None:
    from PIL import Image

    h, w = rng.integers(28, 48, size=2)
    base = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]][label], dtype=np.float64)
    img = np.clip(base + rng.normal(0, 30, size=(h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=90)


@pytest.fixture
def tree(tmp_path) -> tuple[Path, Path]:
    """A fake ILSVRC-2012 root and an ImageNet-LT split folder in the official list format."""
    rng = np.random.default_rng(0)
    root, splits = tmp_path / "ilsvrc", tmp_path / "ImageNet_LT"
    splits.mkdir()
    lines = {"train": [], "val": [], "test": []}
    for label, n in enumerate(COUNTS):
        wnid = f"n{label:08d}"
        for i in range(n + 1):  # the last train/ image of each class goes to the val list
            rel = f"train/{wnid}/{wnid}_{i}.JPEG"
            _jpeg(root / rel, label, rng)
            lines["train" if i < n else "val"].append(f"{rel} {label}")
        for i in range(2):
            rel = f"val/{wnid}/ILSVRC2012_val_{label * 10 + i:08d}.JPEG"
            _jpeg(root / rel, label, rng)
            lines["test"].append(f"{rel} {label}")
    for split, name in LIST_NAMES.items():
        (splits / name).write_text("\n".join(lines[split]) + "\n")
    return root, splits


def _runtime(results: Path, tree, **kw) -> RuntimeOptions:
    root, splits = tree
    return RuntimeOptions(results_dir=results, data_dir=root, split_dir=splits, device="cpu", argv=["test"],
                          workers=kw.pop("workers", 0), **kw)


# ----- the real split lists ----------------------------------------------------------------------

def test_official_val_and_test_lists():
    folder = _shared_splits()
    for split, per_class, prefix in (("val", 20, "train/"), ("test", 50, "val/")):
        images = read_list(folder / LIST_NAMES[split], Path("/nonexistent"))
        counts = np.bincount(images.labels, minlength=1000)
        assert len(counts) == 1000 and set(counts.tolist()) == {per_class}, split
        assert all(p.startswith(prefix) for p in images.paths)


def test_official_shot_groups_from_the_counts_json():
    counts = train_counts(_shared_splits())  # no train list in the shared folder: the JSON
    assert len(counts) == 1000 and sum(counts) == 115846 and (max(counts), min(counts)) == (1280, 5)
    sizes = {rule: {g: len(ids) for g, ids in shot_groups(counts, rule).items()}
             for rule in ("shots-100-20", "shots-cmo-imagenet")}
    assert sizes["shots-100-20"] == {"many": 385, "medium": 479, "few": 136}
    assert sizes["shots-cmo-imagenet"] == {"many": 385, "medium": 469, "few": 146}
    summary = split_summary("imagenet-lt", 256, split_dir=_shared_splits())
    assert summary["ratio"] == 256 and summary["group_sizes"]["shots-cmo-imagenet"]["few"] == 146


# ----- specs -------------------------------------------------------------------------------------

def test_paper_recipes_per_method():
    erm = build_spec("erm", "imagenet-lt", 256).train
    assert (erm.backbone, erm.epochs, erm.batch_size, erm.weight_decay, erm.schedule, erm.warmup_epochs,
            erm.lr_milestones, erm.shot_rule, erm.image_size) == \
        ("resnet50", 100, 128, 2e-4, "cmo-imagenet-step", 5, (60, 80), "shots-cmo-imagenet", 224)
    smcl = build_spec("drw+smcl", "imagenet-lt", 256)
    t = smcl.train
    assert (t.batch_size, t.weight_decay, t.schedule, t.warmup_epochs) == (256, 5e-4, "cosine", 0)
    hp = smcl.hparams
    assert (hp["view1"], hp["view2"], hp["mask_prob"], hp["mask_start_epoch"], hp["drw_start_epoch"],
            hp["head_hidden"], hp["w_sc"], hp["temperature"]) == ("randaug", "sim", 0.4, 80, 80, 2048, 0.35, 0.07)
    assert build_spec("erm", "imagenet-lt", 256, preset="quick").train.image_size == 64
    with pytest.raises(LtbenchError, match="use --ratio 256"):
        build_spec("erm", "imagenet-lt", 100)
    with pytest.raises(LtbenchError, match="image_size applies"):
        build_spec("erm", "shapes", 10, overrides={"image_size": 32})


def test_torchrun_command_drops_the_nproc_option():
    cmd = torchrun_command(["run", "-m", "erm", "--nproc-per-node", "4", "--nproc-per-node=4", "-q"], 4)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4"]
    assert cmd[5:] == ["-m", "ltbench", "run", "-m", "erm", "-q"]
    order = torch.arange(10)
    shards = [Dist(world=3, rank=r).shard(order) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # 10 padded to 12 by wrapping around
    assert set(torch.cat(shards).tolist()) == set(range(10))
    assert torch.equal(Dist().shard(order), order)  # a single process takes the whole permutation


# ----- errors ------------------------------------------------------------------------------------

def _one_line_error(match: str, **kw):
    with pytest.raises(LtbenchError, match=match) as info:
        build_bundle("imagenet-lt", 256, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_list_is_one_clear_line(tree):
    root, splits = tree
    (splits / LIST_NAMES["train"]).unlink()
    msg = _one_line_error("not found", data_dir=root, split_dir=splits)
    assert str(splits / LIST_NAMES["train"]) in msg and "OLTR" in msg


def test_missing_image_is_named(tree):
    root, splits = tree
    victim = root / "val" / "n00000002" / "ILSVRC2012_val_00000021.JPEG"
    victim.unlink()
    msg = _one_line_error("missing", data_dir=root, split_dir=splits)
    assert str(victim) in msg


def test_label_out_of_range(tree):
    root, splits = tree
    test_list = splits / LIST_NAMES["test"]
    test_list.write_text(test_list.read_text() + "val/n00000000/extra.JPEG 1000\n")
    msg = _one_line_error("out of range", data_dir=root, split_dir=splits)
    assert "label 1000" in msg and "line 9" in msg


def test_unreadable_image_in_a_worker_is_one_line(tree):
    root, splits = tree
    bundle = build_bundle("imagenet-lt", 256, data_dir=root, split_dir=splits)
    bad = root / bundle.files["train"].paths[3]
    bad.write_bytes(b"not a jpeg")
    source = FileSource(bundle.files["train"], torch.device("cpu"), 37, 37, workers=1)
    with pytest.raises(LtbenchError, match="cannot read image") as info:
        list(source.batches(torch.arange(12), 4))
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


# ----- sources -----------------------------------------------------------------------------------

def test_file_source_and_its_cache_give_the_same_batches(tree, tmp_path):
    root, splits = tree
    bundle = build_bundle("imagenet-lt", 256, data_dir=root, split_dir=splits)
    assert bundle.class_counts == COUNTS and bundle.info.num_classes == 4 and len(bundle.subset_sha) == 16
    files = bundle.files["train"]
    decoded = FileSource(files, torch.device("cpu"), 37, 37, workers=1)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    first = list(decoded.batches(order, 5))
    assert [b[0].shape for b in first] == [(5, 3, 37, 37), (5, 3, 37, 37), (2, 3, 37, 37)]
    assert torch.equal(torch.cat([b[1] for b in first]), bundle.train_labels[order])
    again = list(decoded.batches(order, 5))  # persistent workers, second pass: same data
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    with pytest.raises(LtbenchError, match="ltbench data cache"):
        FileSource(files, torch.device("cpu"), 37, 37, cache_dir=tmp_path / "cache")
    build_cache(files, 37, 37, tmp_path / "cache")
    cached = FileSource(files, torch.device("cpu"), 37, 37, cache_dir=tmp_path / "cache")
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, cached.batches(order, 5), strict=True))
    images, labels = cached.fetch(order[:3])
    assert torch.equal(images, first[0][0][:3]) and torch.equal(labels, first[0][1][:3])


def test_imagenet_pipelines_are_per_sample_and_reproducible():
    from ltbench.augment_imagenet import pipeline

    x = torch.randint(0, 256, (6, 3, 37, 37), dtype=torch.uint8)
    for name in ("standard", "sim", "randaug", "none"):
        a = pipeline(name, x, torch.Generator().manual_seed(1), 32)
        b = pipeline(name, x, torch.Generator().manual_seed(1), 32)
        assert a.shape == (6, 3, 32, 32) and torch.equal(a, b) and 0 <= float(a.min()) <= float(a.max()) <= 1
    same = pipeline("randaug", x[:1].expand(6, 3, 37, 37), torch.Generator().manual_seed(2), 32)
    assert not torch.equal(same[0], same[1])  # per-sample parameters


# ----- training ----------------------------------------------------------------------------------

RUN_FILES = {"spec.json", "env.json", "metrics.jsonl", "sessions.jsonl", "last.pt", "final.json", "predictions.npz"}


def test_erm_trains_one_epoch_with_resnet50(tree, tmp_path):
    spec = build_spec("erm", "imagenet-lt", 256, overrides=SMALL)
    assert "split" not in json.dumps(spec.to_dict()) and "/" not in json.dumps(spec.to_dict()["train"])
    final = train(spec, _runtime(tmp_path / "runs", tree, workers=1))
    run_dir = run_directory(spec, tmp_path / "runs")
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    assert final["train_class_counts"] == COUNTS and final["shot_rule"] == "shots-cmo-imagenet"
    assert len(final["per_class_acc"]) == 4 and final["group_sizes"] == {"many": 0, "medium": 0, "few": 4}
    train_list = (tree[1] / LIST_NAMES["train"]).read_bytes()
    import hashlib

    assert final["subset_sha"] == hashlib.sha256(train_list).hexdigest()[:16]
    assert str(tree[0]) not in (run_dir / "spec.json").read_text()


def test_drw_smcl_masked_steps_with_val_selection(tree, tmp_path):
    spec = build_spec("drw+smcl", "imagenet-lt", 256, overrides={
        **SMALL, "mask_start_epoch": 0, "mask_prob": 1.0, "drw_start_epoch": 0, "val_select": True})
    final = train(spec, _runtime(tmp_path / "runs", tree))
    (row,) = read_jsonl(run_directory(spec, tmp_path / "runs") / "metrics.jsonl")
    assert row["masked"] == 1.0 and np.isfinite(row["loss"]) and "val_top1" in row
    assert final["val_selected"]["epoch"] == 0 and final["val_selected"]["top1"] == final["top1"]


DDP_SCRIPT = """
import json, sys
from pathlib import Path
import torch.distributed as dist
import ltbench.rundir as R
import ltbench.train as T
from ltbench.config import build_spec

dist.init_process_group("gloo")
root, splits, results = map(Path, sys.argv[1:4])
written = []
_write = R.atomic_write_json
def counting(path, obj):
    written.append(Path(path).name)
    _write(path, obj)
R.atomic_write_json = counting
spec = build_spec("erm", "imagenet-lt", 256, overrides={"epochs": 2, "batch_size": 8, "image_size": 32})
rt = dict(results_dir=results, data_dir=root, split_dir=splits, device="cpu", workers=0, argv=["ddp-test"])
assert T.train(spec, T.RuntimeOptions(stop_after_epochs=1, **rt)) == {}  # a restart after epoch 0
final = T.train(spec, T.RuntimeOptions(**rt))
rank = dist.get_rank()
(results / f"rank{rank}.json").write_text(json.dumps({"written": written, "top1": final["top1"]}))
dist.destroy_process_group()
"""


def test_two_process_gloo_ddp_run(tree, tmp_path):
    root, splits = tree
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    results = tmp_path / "runs"
    results.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
           str(root), str(splits), str(results)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = build_spec("erm", "imagenet-lt", 256, overrides={"epochs": 2, "batch_size": 8, "image_size": 32})
    run_dir = run_directory(spec, results)
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    final = json.loads((run_dir / "final.json").read_text())
    assert final["world_size"] == 2 and final["train_class_counts"] == COUNTS
    assert [r["epoch"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [0, 1]
    ranks = [json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["written"].count("final.json") == 1 and ranks[1]["written"] == []
    assert ranks[0]["top1"] == ranks[1]["top1"] == final["top1"]  # sharded evaluation, gathered
    ckpt = torch.load(run_dir / "last.pt", weights_only=False)
    assert ckpt["world_size"] == 2 and len(ckpt["rank_generators"]) == 2 and ckpt["next_epoch"] == 2
    assert not torch.equal(ckpt["rank_generators"][0], ckpt["rank_generators"][1])


def test_cli_splits_cache_and_head_cap(tree, tmp_path):
    from typer.testing import CliRunner

    from ltbench.cli import app

    root, splits = tree
    result = CliRunner().invoke(app, ["splits", "--dataset", "imagenet-lt", "--split-dir", str(splits), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counts"] == COUNTS
    result = CliRunner().invoke(app, ["data", "cache", "imagenet-lt", "--cache-dir", str(tmp_path / "c"),
                                      "--image-size", "32", "--data-dir", str(root), "--split-dir", str(splits),
                                      "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name.split("-", 1)[1] for p in (tmp_path / "c").iterdir()) == ["r37-c32.u8", "r37-c37.u8"]
    capped = build_bundle("imagenet-lt", 256, max_per_class=2, data_dir=root, split_dir=splits)
    assert capped.class_counts == [2, 2, 2, 1] and capped.subset_sha != build_bundle(
        "imagenet-lt", 256, data_dir=root, split_dir=splits).subset_sha
