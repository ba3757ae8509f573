"""The doctor's checks of this machine's files and threads: data sets, the results folder, torch's threads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ltbench.doctor.check import FAIL, INFO, OK, WARN, Check

_CIFAR_FILES = {"cifar10": ("cifar-10-batches-py", ("data_batch_1", "data_batch_5", "test_batch")),
                "cifar100": ("cifar-100-python", ("train", "test"))}
_FASHION_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                  "t10k-labels-idx1-ubyte")


def find_dataset(name: str, root: Path) -> Path | None:
    """Where the data set's files are (the folder the loader would read), without loading them; None: absent."""
    if name in _CIFAR_FILES:
        folder, files = _CIFAR_FILES[name]
        path = root / folder
        return path if all((path / f).exists() for f in files) else None
    if name == "fashion-mnist":
        from ltbench.data.datasets import _fashion_mnist_dirs  # the loader's own search order

        for candidate in _fashion_mnist_dirs(root):
            if all((candidate / s).exists() or (candidate / (s + ".gz")).exists() for s in _FASHION_STEMS):
                return candidate
        return None
    if name == "imagenet-lt":
        from ltbench.data.imagenet_lt import LIST_NAMES, split_dir_for

        path = split_dir_for(None, root)
        return path if (path / LIST_NAMES["train"]).exists() else None
    raise ValueError(f"no file check for data set {name!r}")


def check_datasets(data_dir: Path | None) -> list[Check]:
    from ltbench.data.datasets import DATASETS, default_data_dir

    root = Path(data_dir) if data_dir else default_data_dir()
    out = []
    for name in DATASETS:
        if name == "shapes":
            out.append(Check("data: shapes", OK, "generated on the fly (no files)", required=True))
            continue
        where = find_dataset(name, root)
        if where is not None:
            out.append(Check(f"data: {name}", OK, str(where), data={"path": str(where)}))
        elif name == "imagenet-lt":
            out.append(Check(f"data: {name}", WARN, f"split lists not found under {root}",
                             "pass --split-dir / $LTBENCH_IMAGENET_LT_SPLITS and the ILSVRC-2012 images as --data-dir"))
        else:
            out.append(Check(f"data: {name}", WARN, f"not found under {root}",
                             f"ltbench data fetch {name} --data-dir {root}"))
    return out


def check_results_dir(results_dir: Path | None) -> Check:
    """Writable means a file can really be created there (or in the nearest existing parent)."""
    from ltbench.rundir import default_results_dir

    path = Path(results_dir) if results_dir else default_results_dir()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".ltbench-doctor-"):
            pass
    except OSError as exc:
        return Check("results folder", FAIL, f"{path}: not writable ({exc.strerror or exc})",
                     "pass --results-dir or set $LTBENCH_RESULTS to a writable folder", required=True)
    state = "exists" if path.exists() else f"will be created under {probe}"
    return Check("results folder", OK, f"{path.resolve()} ({state}, writable)", required=True)


def check_threads() -> Check:
    import torch

    from ltbench.cpu import process_settings

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    data: dict[str, Any] = {"torch_threads": torch.get_num_threads(),
                            "interop_threads": torch.get_num_interop_threads(),
                            "usable_cpus": usable, **env, **process_settings()}
    parts = [f"torch {data['torch_threads']} intra-op / {data['interop_threads']} inter-op threads",
             f"{usable} usable CPUs", *(f"{k}={v}" for k, v in env.items() if v)]
    value = ", ".join(parts)
    if usable and data["torch_threads"] > usable:
        return Check("threads", WARN, value, f"more torch threads than usable CPUs; set OMP_NUM_THREADS={usable}",
                     data=data)
    return Check("threads", INFO, value, data=data)
