"""Data sets: where their images come from, and the long-tailed bundle the trainer consumes.

DataBundle, DatasetInfo, Pool and default_data_dir live in ltbench.data.bundle (shared with the
per-data-set loaders) and are re-exported here for the callers that import them from this module.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ltbench.data import imagenet_lt
from ltbench.data.bundle import DataBundle, DatasetInfo, Pool, default_data_dir
from ltbench.data.longtail import longtail_counts, longtail_indices, ordered_counts, subset_sha
from ltbench.errors import LtbenchError

if TYPE_CHECKING:
    import torch
else:  # torch on first use: specs read a data set's facts (get_dataset) without it (ltbench/lazy.py)
    from ltbench.lazy import torch

__all__ = ["DATASETS", "DataBundle", "DatasetInfo", "Pool", "build_bundle", "default_data_dir", "get_dataset"]

# CIFAR normalisation of every CIFAR-LT run, as LDAM-DRW sets it (kaidic/LDAM-DRW, cifar_train.py:
# transforms.Normalize) and CMO copies it.
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _to_nchw(images: np.ndarray) -> torch.Tensor:
    arr = np.asarray(images, dtype=np.uint8)
    if arr.ndim == 3:
        arr = arr[:, None]
    else:
        arr = arr.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _load_cifar(name: str) -> Callable[[Path, bool], Pool]:
    def load(root: Path, download: bool) -> Pool:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        try:
            train = cls(str(root), train=True, download=download)
            test = cls(str(root), train=False, download=download)
        except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
            raise LtbenchError(
                f"{name} not found under {root} ({exc}); fetch it with: "
                f"ltbench data fetch {name} --data-dir {root}"
            ) from None
        except Exception as exc:  # unreadable or damaged batch files
            raise LtbenchError(f"{name} under {root} could not be read: {exc}") from None
        return Pool(_to_nchw(train.data), torch.as_tensor(train.targets, dtype=torch.int64),
                    _to_nchw(test.data), torch.as_tensor(test.targets, dtype=torch.int64))

    return load


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped); torchvision's reader does not open .gz files."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise LtbenchError(f"{path} is truncated or damaged ({arr.size} bytes, expected shape {shape})")
    return arr.reshape(shape).copy()  # frombuffer is read-only; torch wants writable memory


def _fashion_mnist_dirs(root: Path) -> list[Path]:
    return [root / "FashionMNIST" / "raw", root / "fashion-mnist", root, DEBIAN_FASHION_MNIST]


def _load_fashion_mnist(root: Path, download: bool) -> Pool:
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    if download:
        import torchvision

        torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
    for folder in _fashion_mnist_dirs(root):
        found = []
        for stem in stems:
            hits = [folder / stem, folder / (stem + ".gz")]
            found.append(next((h for h in hits if h.exists()), None))
        paths = [p for p in found if p is not None]
        if len(paths) == len(found):
            tr_x, tr_y, te_x, te_y = (_read_idx(p) for p in paths)
            return Pool(_to_nchw(tr_x), torch.from_numpy(tr_y.astype(np.int64)),
                        _to_nchw(te_x), torch.from_numpy(te_y.astype(np.int64)))
    looked = ", ".join(str(p) for p in _fashion_mnist_dirs(root))
    raise LtbenchError(
        f"fashion-mnist not found (looked in {looked}); install it with: "
        "apt-get install dataset-fashion-mnist  (or: ltbench data fetch fashion-mnist)"
    )


def _load_shapes(root: Path, download: bool) -> Pool:
    from ltbench.data.shapes import generate

    data = generate()
    meta = {"background": data["test_backgrounds"], "seen": data["test_seen"]}
    return Pool(data["train_images"], data["train_labels"], data["test_images"], data["test_labels"], meta)


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, 5000, 3, 32, "cifar", CIFAR_MEAN, CIFAR_STD,
                           "CIFAR-10-LT (torchvision; LDAM-DRW subset)", _load_cifar("cifar10")),
    "cifar100": DatasetInfo("cifar100", 100, 500, 3, 32, "cifar", CIFAR_MEAN, CIFAR_STD,
                            "CIFAR-100-LT (torchvision; LDAM-DRW subset)", _load_cifar("cifar100")),
    "fashion-mnist": DatasetInfo("fashion-mnist", 10, 6000, 1, 28, "cifar", (0.2860,), (0.3530,),
                                 "Fashion-MNIST-LT (real 28x28 images; Debian dataset-fashion-mnist)",
                                 _load_fashion_mnist),
    "shapes": DatasetInfo("shapes", 10, 500, 3, 32, "cifar", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
                          "procedural shapes on textures; tail classes seen on few backgrounds "
                          "(no download)", _load_shapes, version="shapes-2"),
    "imagenet-lt": DatasetInfo("imagenet-lt", imagenet_lt.NUM_CLASSES, 1280, 3, 224, "imagenet",
                               imagenet_lt.IMAGENET_MEAN, imagenet_lt.IMAGENET_STD,
                               "ImageNet-LT (OLTR split lists + ILSVRC-2012 images; read from files, no download)",
                               imagenet_lt.load_unavailable, bundle=imagenet_lt.build_imagenet_lt,
                               split_counts=imagenet_lt.train_counts, fixed_ratio=imagenet_lt.RATIO),
}


def get_dataset(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise LtbenchError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]


def build_bundle(name: str, ratio: float, profile: str = "exp", data_seed: int = 0,
                 max_per_class: int | None = None, data_dir: Path | None = None,
                 download: bool = False, split_dir: Path | None = None, with_val: bool = False,
                 class_order: int = 0) -> DataBundle:
    """Load a data set and cut its long-tailed training subset (test set stays balanced).

    File-backed data sets (`info.bundle`) read their fixed split from list files in `split_dir`
    instead; `with_val` also reads (and checks) their val list. For the others, `with_val` cuts the
    balanced test set into a val half (selection) and a test half (reported): ltbench.data.val_split.
    """
    info = get_dataset(name)
    if info.bundle is not None:
        if class_order:
            raise LtbenchError(f"{name} is a fixed split; class_order does not apply")
        root = Path(data_dir) if data_dir else default_data_dir()
        return info.bundle(info, root, split_dir, max_per_class, with_val)
    pool = info.load(Path(data_dir) if data_dir else default_data_dir(), download)
    head = max_per_class or info.max_per_class
    if head > info.max_per_class:
        raise LtbenchError(f"{name} has {info.max_per_class} images per class; max_per_class={head} is too many")
    # class_order: which classes take the head and tail ranks (0: class k gets the k-th count)
    counts = ordered_counts(longtail_counts(info.num_classes, head, ratio, profile), class_order)
    idx = longtail_indices(pool.train_labels.numpy(), counts, seed=data_seed)
    index = torch.from_numpy(idx)
    bundle = DataBundle(info, pool.train_images[index].contiguous(), pool.train_labels[index],
                        pool.test_images, pool.test_labels, counts, subset_sha(idx), pool.test_meta)
    return _split_val(bundle) if with_val else bundle


def _split_val(bundle: DataBundle) -> DataBundle:
    """The test set's seeded balanced halves: val (selection only) and test (what is reported)."""
    from ltbench.data.val_split import balanced_halves

    val_idx, test_idx = (torch.from_numpy(i) for i in balanced_halves(bundle.test_labels.numpy()))
    bundle.val_images, bundle.val_labels = bundle.test_images[val_idx], bundle.test_labels[val_idx]
    bundle.test_meta = {k: v[test_idx] for k, v in bundle.test_meta.items()}
    bundle.test_images, bundle.test_labels = bundle.test_images[test_idx], bundle.test_labels[test_idx]
    return bundle
