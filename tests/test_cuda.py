"""The CUDA path: every method on the GPU, exact resume, bf16 + channels-last, device vs CPU ops, NCCL DDP,
and no hidden syncs (torch's own sync detector). Skipped where torch sees no CUDA device (tests/conftest.py);
`scripts/gpu-check.sh` runs them on a GPU machine.

Written for torch >= 2.4: nothing newer than that is called unguarded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings

import pytest
import torch

from ltbench.config import build_spec
from ltbench.registry import get_method, list_methods
from ltbench.train import RuntimeOptions, Trainer, run_directory, train
from tests.fakes import has_contrib_saliency

pytestmark = pytest.mark.cuda

METHODS = [entry.name for entry in list_methods()]
TINY = {"backbone": "resnet8", "max_per_class": 60, "batch_size": 64}


def _overrides(method: str, **extra) -> dict:
    """TINY + extra; methods with a `saliency` setting fall back to spectral residual without OpenCV contrib."""
    out = {**TINY, **extra}
    if "saliency" in _fields(method) and not has_contrib_saliency():
        out.setdefault("saliency", "spectral-residual")
    return out


def _fields(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(get_method(method).cls.Hparams)}


def _forcing(method: str) -> dict:
    """Every per-batch probability at 1 and every start epoch at 0 (as tests/test_host_sync.py)."""
    names = _fields(method)
    return {**{n: 1.0 for n in names if n.endswith("_prob")}, **{n: 0 for n in names if n.endswith("_start_epoch")}}


def _runtime(path, **kw) -> RuntimeOptions:
    return RuntimeOptions(results_dir=path, device="cuda", argv=["test-cuda"], **kw)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_one_epoch_on_cuda(method, tmp_path):
    spec = build_spec(method, "shapes", 10, 0, "paper", _overrides(method, epochs=1))
    final = train(spec, _runtime(tmp_path))
    assert 0.0 <= final["top1"] <= 100.0
    env = json.loads((run_directory(spec, tmp_path) / "env.json").read_text())
    assert env["device"].startswith("cuda") and env["channels_last"] is True  # channels-last is CUDA's default


@pytest.mark.parametrize("method", ["drw", "smcl"])
def test_resume_on_cuda_is_bit_identical_with_deterministic_algorithms(method, tmp_path):
    """With deterministic algorithms, a resumed run repeats the uninterrupted one bit for bit: the CUDA
    generator state and every other random stream are in last.pt. (Without them, cuDNN may pick
    non-deterministic kernels and two *uninterrupted* runs already differ in the last bits.)"""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism (CUDA >= 10.2)
    extra = {"epochs": 3, "drw_start_epoch": 1} if method == "drw" else {"epochs": 3, "mask_prob": 0.5,
                                                                           "mask_start_epoch": 1}
    spec = build_spec(method, "shapes", 10, 0, "paper", _overrides(method, **extra))
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        straight = train(spec, _runtime(tmp_path / "a"))
        assert train(spec, _runtime(tmp_path / "b", stop_after_epochs=1)) == {}
        resumed = train(spec, _runtime(tmp_path / "b"))
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]
    for key in ("top1", "many", "medium", "few", "per_class_acc", "best_top1", "best_epoch"):
        assert resumed[key] == straight[key], key
    a = torch.load(run_directory(spec, tmp_path / "a") / "last.pt", map_location="cpu", weights_only=False)["model"]
    b = torch.load(run_directory(spec, tmp_path / "b") / "last.pt", map_location="cpu", weights_only=False)["model"]
    diffs = {k: (a[k].double() - b[k].double()).abs().max().item() for k in a if not torch.equal(a[k], b[k])}
    assert not diffs, f"resumed weights differ from the uninterrupted run: {diffs}"


@pytest.mark.parametrize("method", ["erm", "smcl"])
def test_bf16_autocast_and_channels_last(method, tmp_path):
    spec = build_spec(method, "shapes", 10, 0, "paper",
                      _overrides(method, epochs=1, precision="bf16", mask_prob=1.0, mask_start_epoch=0)
                      if method == "smcl" else _overrides(method, epochs=1, precision="bf16"))
    from ltbench.data.datasets import build_bundle

    bundle = build_bundle("shapes", 10, max_per_class=TINY["max_per_class"])
    tr = Trainer(spec, bundle, torch.device("cuda"), _runtime(tmp_path, channels_last=True))
    conv = next(m for m in tr.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(4, 3, 32, 32, device="cuda")
    assert tr.normalize(x).is_contiguous(memory_format=torch.channels_last)
    with tr.autocast():
        logits, _ = tr.model(tr.normalize(x))
    assert logits.dtype == torch.bfloat16  # autocast really ran the model in bf16
    logs = tr.train_epoch(0)
    assert torch.isfinite(torch.tensor(logs["loss"]))
    final = train(spec, _runtime(tmp_path))
    assert 0.0 <= final["top1"] <= 100.0


def test_saliency_on_the_device_matches_cpu():
    from ltbench.saliency import locate, peak, saliency_maps

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), generator=g, dtype=torch.uint8)
    cpu = saliency_maps(images, "spectral-residual")
    gpu = saliency_maps(images.cuda(), "spectral-residual")
    assert gpu.device.type == "cuda"
    # cuFFT and the CPU FFT round differently; the maps agree to float32 precision
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
    assert torch.equal(peak(cpu.cuda())[0].cpu(), peak(cpu)[0])  # the same map gives the same peak
    if has_contrib_saliency():  # OpenCV runs on the host: identical maps, whatever the input's device
        assert torch.equal(saliency_maps(images.cuda(), "fine-grained").cpu(), saliency_maps(images, "fine-grained"))
        rows, cols = locate(images.cuda())
        assert rows.device.type == "cuda"
        ref = locate(images)
        assert torch.equal(rows.cpu(), ref[0]) and torch.equal(cols.cpu(), ref[1])


def test_augmentation_on_the_device_matches_cpu():
    from ltbench import augment as aug

    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (8, 3, 32, 32), generator=g, dtype=torch.uint8)
    top, left, flip = aug.crop_flip_params(8, 4, g, "cpu")
    cpu = aug.crop_flip_apply(x, top, left, flip, padding=4)
    gpu = aug.crop_flip_apply(x.cuda(), top.cuda(), left.cuda(), flip.cuda(), padding=4)
    assert torch.equal(gpu.cpu(), cpu)  # a gather: exact
    rows, cols = torch.randint(0, 32, (8,), generator=g), torch.randint(0, 32, (8,), generator=g)
    mask_c, lam_c = aug.box_masks(32, 32, 0.6, rows, cols)
    mask_g, lam_g = aug.box_masks(32, 32, 0.6, rows.cuda(), cols.cuda())
    assert torch.equal(mask_g.cpu(), mask_c) and torch.equal(lam_g.cpu(), lam_c)
    # the random draws themselves come from the CUDA generator: right device, right ranges
    gen = torch.Generator(device="cuda").manual_seed(0)
    out = aug.sim_augment(x.cuda(), generator=gen)
    assert out.device.type == "cuda" and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_no_hidden_syncs_on_cuda():
    """torch's sync detector (`torch.cuda.set_sync_debug_mode`, torch >= 1.10) over one step of every method.

    Allowed: fine-grained saliency copies the batch to the host and the maps back (OpenCV needs host
    memory; see tests/test_host_sync.py), and a sampler's probability vector is copied once on first use."""
    from ltbench.data.datasets import build_bundle

    set_mode = getattr(torch.cuda, "set_sync_debug_mode", None)
    if set_mode is None:
        pytest.skip("torch.cuda.set_sync_debug_mode is missing from this torch")
    bundle = build_bundle("shapes", 10, max_per_class=TINY["max_per_class"])
    found = {}
    for method in METHODS:
        for forced in (False, True):
            if forced and not _forcing(method):
                continue
            extra = {"epochs": 2, **(_forcing(method) if forced else {})}
            spec = build_spec(method, "shapes", 10, 0, "paper", _overrides(method, **extra))
            tr = Trainer(spec, bundle, torch.device("cuda"), _runtime("unused"))
            tr.method.on_epoch_start(1)
            perm = torch.randperm(len(tr.train), generator=tr.order_generator, device=tr.device)
            for step in range(2):  # the first step fills lazy caches
                images, labels = next(tr.train.batches(perm, TINY["batch_size"]))
                views = [tr.augment(p, images) for p in tr.method.views()]
                torch.cuda.synchronize()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    set_mode("warn")
                    try:
                        tr.train_step(images, labels, views, {})
                    finally:
                        set_mode("default")
                if step == 1:
                    found[(method, forced)] = sum("synchroniz" in str(w.message) for w in caught)
    fine_grained = has_contrib_saliency()
    masks = {m: get_method(m).cls.Hparams().__dict__ for m in METHODS}  # class defaults (locator, operator)
    allowed = {k: (2 if k[1] and fine_grained and masks[k[0]].get("mask_locator") == "saliency"
                   and masks[k[0]].get("saliency") == "fine-grained" else 0) for k in found}
    over = {f"{m}{' (forced)' if f else ''}": n for (m, f), n in found.items() if n > allowed[(m, f)]}
    assert not over, f"synchronising calls inside the CUDA step: {over}"


def test_single_process_nccl_ddp(tmp_path):
    """DistributedDataParallel over NCCL in one process (world size 1): the trainer's DDP path runs and gives
    the same weights as the plain model (the all-reduce of one rank is the identity)."""
    import torch.distributed as dist

    from ltbench import distributed as ltdist
    from ltbench.data.datasets import build_bundle

    if not dist.is_nccl_available():
        pytest.skip("this torch has no NCCL")

    class OneRank(ltdist.Dist):
        @property
        def active(self) -> bool:  # take the multi-process code path with a single rank
            return True

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("nccl", store=store, rank=0, world_size=1)
    try:
        spec = build_spec("erm", "shapes", 10, 0, "paper", {**TINY, "epochs": 1})
        bundle = build_bundle("shapes", 10, max_per_class=TINY["max_per_class"])
        torch.backends.cudnn.deterministic = True
        ddp = Trainer(spec, bundle, torch.device("cuda", 0), _runtime(tmp_path), OneRank(world=1))
        assert type(ddp._forward).__name__ == "DistributedDataParallel"
        logs = ddp.train_epoch(0)
        assert torch.isfinite(torch.tensor(logs["loss"]))
        preds = ddp.predict()
        assert preds.shape[0] == bundle.test_labels.shape[0]
    finally:
        torch.backends.cudnn.deterministic = False
        dist.destroy_process_group()
