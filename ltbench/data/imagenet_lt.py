"""ImageNet-LT (the OLTR split): file lists + ILSVRC-2012 images, read from disk, never downloaded.

The split is fixed: `ImageNet_LT_train.txt` (115,846 images, 1280 .. 5 per class, imbalance ratio 256),
`ImageNet_LT_val.txt` (20 per class, drawn from ILSVRC-2012 *train*) and `ImageNet_LT_test.txt`
(50 per class, ILSVRC-2012 *val*). Each line is `<path relative to the ILSVRC-2012 root> <label>`.
The lists come from the OLTR release (zhmiao/OpenLongTailRecognition-OLTR, README "Data
preparation"); identical copies ship with the CMO and BCL repositories. They are read from a split
folder (`--split-dir`, else `$LTBENCH_IMAGENET_LT_SPLITS`, else `<data dir>/ImageNet_LT`); the images
from the data dir (the folder holding `train/` and `val/`).

Runs report on the 50k test list; the val list is read only when a run asks for val selection
(`--set val_select=true`). A run records the SHA-256 of the train list (`subset_sha`), never a path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from ltbench.data.bundle import DataBundle, DatasetInfo, default_data_dir
from ltbench.errors import LtbenchError

if TYPE_CHECKING:
    import torch
else:  # torch on first use: specs read the split's facts without it (ltbench/lazy.py)
    from ltbench.lazy import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_CLASSES = 1000
RATIO = 256  # 1280 / 5
LIST_NAMES = {"train": "ImageNet_LT_train.txt", "val": "ImageNet_LT_val.txt", "test": "ImageNet_LT_test.txt"}
COUNTS_JSON = "train_class_counts.json"
SPLITS_ENV = "LTBENCH_IMAGENET_LT_SPLITS"
OLTR = "https://github.com/zhmiao/OpenLongTailRecognition-OLTR (README, 'Data preparation')"


@dataclass(frozen=True)
class ImageList:
    """One split list: image paths (relative to `root`) and labels, plus the list file's identity."""

    root: Path
    paths: tuple[str, ...]
    labels: np.ndarray  # int64
    list_file: Path
    sha: str  # SHA-256 of the list file's bytes

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, index: np.ndarray) -> ImageList:
        return dataclasses.replace(self, paths=tuple(self.paths[i] for i in index), labels=self.labels[index])


def split_dir_for(split_dir: Path | None, data_dir: Path | None) -> Path:
    """--split-dir, else $LTBENCH_IMAGENET_LT_SPLITS, else <data dir>/ImageNet_LT."""
    if split_dir is not None:
        return Path(split_dir)
    env = os.environ.get(SPLITS_ENV)
    if env:
        return Path(env)
    return Path(data_dir or default_data_dir()) / "ImageNet_LT"


def read_list(path: Path, root: Path, num_classes: int = NUM_CLASSES) -> ImageList:
    """Parse `<relative path> <label>` lines; one-line LtbenchError for a missing file or a bad line."""
    path = Path(path)
    if not path.is_file():
        raise LtbenchError(f"ImageNet-LT split list {path} not found; get {path.name} from the OLTR release "
                           f"({OLTR}) and pass its folder with --split-dir or ${SPLITS_ENV}")
    data = path.read_bytes()
    paths: list[str] = []
    labels: list[int] = []
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        try:
            label = int(parts[1])
        except (IndexError, ValueError):
            raise LtbenchError(f"{path} line {lineno}: expected '<relative path> <label>', got {line.strip()!r}") \
                from None
        if not 0 <= label < num_classes:
            raise LtbenchError(f"{path} line {lineno}: label {label} is out of range 0..{num_classes - 1}")
        paths.append(parts[0])
        labels.append(label)
    if not paths:
        raise LtbenchError(f"{path} lists no images")
    return ImageList(Path(root), tuple(paths), np.asarray(labels, dtype=np.int64), path,
                     hashlib.sha256(data).hexdigest())


def check_images(images: ImageList) -> None:
    """Every listed image must exist under the root (checked once, before training starts)."""
    missing = [p for p in images.paths if not os.path.isfile(os.path.join(images.root, p))]
    if missing:
        raise LtbenchError(f"{len(missing)} of the {len(images)} images listed in {images.list_file.name} are "
                           f"missing under {images.root}, e.g. {images.root / missing[0]}; --data-dir must be the "
                           "ILSVRC-2012 root that holds train/ and val/")


def train_counts(split_dir: Path) -> list[int]:
    """Per-class training counts: from ImageNet_LT_train.txt if present, else train_class_counts.json."""
    split_dir = Path(split_dir)
    train_list = split_dir / LIST_NAMES["train"]
    if train_list.is_file():
        labels = read_list(train_list, split_dir).labels
        return np.bincount(labels, minlength=int(labels.max()) + 1).tolist()
    counts_json = split_dir / COUNTS_JSON
    if counts_json.is_file():
        try:
            counts = json.loads(counts_json.read_text())
        except ValueError as exc:
            raise LtbenchError(f"{counts_json} is not valid JSON ({exc})") from None
        if not isinstance(counts, list) or not all(isinstance(n, int) and n >= 0 for n in counts):
            raise LtbenchError(f"{counts_json} must hold a list of per-class counts (index = label)")
        return counts
    raise LtbenchError(f"neither {train_list} nor {counts_json} exists; get {train_list.name} from the OLTR "
                       f"release ({OLTR}) and pass its folder with --split-dir or ${SPLITS_ENV}")


def build_imagenet_lt(info: DatasetInfo, root: Path, split_dir: Path | None, max_per_class: int | None = None,
                      with_val: bool = False) -> DataBundle:
    """The DataBundle of a file-backed split: labels and counts in memory, images left on disk."""
    folder = split_dir_for(split_dir, root)
    lists = {"train": read_list(folder / LIST_NAMES["train"], root),
             "test": read_list(folder / LIST_NAMES["test"], root)}
    if with_val:
        lists["val"] = read_list(folder / LIST_NAMES["val"], root)
    train = lists["train"]
    num_classes = int(train.labels.max()) + 1  # 1000 for the official lists; fewer for a test tree
    counts = np.bincount(train.labels, minlength=num_classes)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise LtbenchError(f"class {int(empty[0])} has no images in {train.list_file}; the labels must be 0..C-1")
    for name in ("test", "val"):
        if name in lists and int(lists[name].labels.max()) >= num_classes:
            raise LtbenchError(f"{lists[name].list_file} has label {int(lists[name].labels.max())}, but the train "
                               f"list only has classes 0..{num_classes - 1}")
    sha = train.sha[:16]
    if max_per_class is not None and max_per_class < int(counts.max()):  # a smaller head: first k of each class
        seen = np.zeros(num_classes, dtype=np.int64)
        keep = []
        for i, y in enumerate(train.labels):
            if seen[y] < max_per_class:
                keep.append(i)
                seen[y] += 1
        keep_idx = np.asarray(keep, dtype=np.int64)
        sha = hashlib.sha256(f"{train.sha}:head{max_per_class}".encode()).hexdigest()[:16]
        lists["train"] = train = train.select(keep_idx)
        counts = np.bincount(train.labels, minlength=num_classes)
    for images in lists.values():
        check_images(images)
    info = dataclasses.replace(info, num_classes=num_classes, max_per_class=int(counts.max()))
    empty_images = torch.empty(0, info.channels, 0, 0, dtype=torch.uint8)
    return DataBundle(info, empty_images, torch.from_numpy(train.labels.copy()), empty_images,
                      torch.from_numpy(lists["test"].labels.copy()), counts.tolist(), sha, files=lists)


def load_unavailable(root: Path, download: bool) -> NoReturn:
    raise LtbenchError("ImageNet-LT cannot be downloaded by ltbench: get ILSVRC-2012 (train/ and val/) from "
                       f"image-net.org into --data-dir and the split lists from the OLTR release ({OLTR})")
