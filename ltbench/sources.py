"""Where the trainer's batches come from.

`ResidentSource` keeps a CIFAR-sized uint8 data set on the device: a batch is one gather, and
augmentation happens on the device afterwards (DESIGN.md "Performance stance"). A file-backed
source (`FileSource`, ImageNet-LT) implements the same calls with DataLoader workers that decode
each image to a fixed-size uint8 square; augmentation then happens on the device as for resident
data. The trainer's own generator produces the epoch order, so any source gives the same sample order.

Fidelity deviation of `FileSource` (also in the README): random-resized crops are taken from the
decoded image resized to a 256-px centre square (for 224-px crops), not from the full-resolution
JPEG as the reference's PIL pipeline does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.data

from ltbench.errors import LtbenchError


class ResidentSource:
    """A whole data set as device tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device):
        self.images = images.to(device)
        self.labels = labels.to(device)

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def image_size(self) -> tuple[int, int]:
        height, width = self.images.shape[-2:]
        return height, width

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 images and labels, `batch_size` at a time, in `order` (the last batch may be short)."""
        for start in range(0, order.shape[0], batch_size):
            idx = order[start:start + batch_size]
            yield self.images[idx], self.labels[idx]

    def fetch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Specific samples (a second batch drawn by a class sampler)."""
        return self.images[idx], self.labels[idx]


# ----- file-backed data (ImageNet-LT) ------------------------------------------------------------

def base_size(crop: int) -> int:
    """The stored square side for `crop`-pixel views: 256 for 224 (Resize(256) + CenterCrop(224) scale)."""
    return round(crop * 256 / 224)


def cache_file(cache_dir: Path, images: Any, resize: int, out: int) -> Path:
    """Where the pre-resized uint8 copy of a list lives: keyed by the list's SHA-256 and the two sizes."""
    return Path(cache_dir) / f"{images.sha[:16]}-r{resize}-c{out}.u8"


# one batch from `_ImageReader`: uint8 images and int64 labels, or the message of the error that stopped it
ReaderItem = tuple[torch.Tensor, torch.Tensor] | str


class _ImageReader(torch.utils.data.Dataset[ReaderItem]):
    """Decodes listed images into uint8 squares: shorter side resized to `resize`, centre crop to `out`.

    `reader[list_of_indices]` returns a whole batch (uint8 [B, 3, out, out], int64 labels), or the
    error message as a string so that the trainer can raise it as one clean line (an exception raised
    in a DataLoader worker is re-raised with the worker's traceback in its message).
    """

    def __init__(self, images: Any, resize: int, out: int, cache: Path | None = None) -> None:
        self.root = str(images.root)
        self.paths = np.asarray(images.paths)  # one numpy array: no per-string refcounts touched in workers
        self.labels = np.asarray(images.labels, dtype=np.int64)
        self.resize, self.out = resize, out
        self.cache = cache
        self._memmap: np.memmap[Any, np.dtype[np.uint8]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_memmap": None}  # every worker opens its own memory map

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, i: int) -> np.ndarray:
        from PIL import Image
        from torchvision.transforms import functional as TF

        path = os.path.join(self.root, str(self.paths[i]))
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except Exception as exc:  # missing, truncated or not an image
            raise LtbenchError(f"cannot read image {path} ({type(exc).__name__}: {exc})") from None
        img = TF.center_crop(TF.resize(img, self.resize), self.out)  # PIL bilinear, antialiased
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)

    def load(self, i: int) -> np.ndarray:
        if self.cache is None:
            return self.decode(i)
        if self._memmap is None:
            self._memmap = np.memmap(self.cache, dtype=np.uint8, mode="r", shape=(len(self), 3, self.out, self.out))
        return np.asarray(self._memmap[i])

    def __getitem__(self, idx: list[int]) -> ReaderItem:
        try:
            images = np.stack([self.load(i) for i in idx])
        except LtbenchError as exc:
            return str(exc)
        return torch.from_numpy(images), torch.from_numpy(self.labels[idx])


class _OrderSampler(torch.utils.data.Sampler[list[int]]):
    """Yields the index lists of the current pass: the order comes from the trainer, not the DataLoader."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _loader(reader: _ImageReader, sampler: _OrderSampler, workers: int,
            pin: bool) -> torch.utils.data.DataLoader[ReaderItem]:
    return torch.utils.data.DataLoader(reader, batch_size=None, sampler=sampler, num_workers=workers,
                                       pin_memory=pin, persistent_workers=workers > 0,
                                       prefetch_factor=4 if workers > 0 else None)


class FileSource:
    """A listed image set decoded by DataLoader workers; the interface of `ResidentSource`.

    Workers decode each image and resize it to a fixed uint8 square (shorter side -> `resize`,
    centre crop `out`) and the batch goes to the device, where the trainer augments it in batched
    calls exactly as for resident data. For training views `out = resize = base_size(crop)` (256 for
    224 crops) and the random-resized crops are taken on the device from that square; a test source
    uses `resize = base_size(crop)`, `out = crop`, i.e. the reference's Resize(256) + CenterCrop(224).
    Fidelity deviation: the reference crops RandomResizedCrop boxes from the full-resolution JPEG
    (any aspect ratio); here they come from the 256-px centre square, which drops the borders of
    non-square images and caps the detail of small boxes at 256-px resolution.

    The order of every pass is the trainer's (`batches(order, ...)`); the DataLoader draws no random
    numbers. `fetch` (a class sampler's second batch) decodes in a thread pool of the main process
    (PIL releases the GIL while decoding). With `cache`, images are read from a pre-resized uint8
    file (`build_cache`) instead of being decoded.
    """

    def __init__(self, images: Any, device: torch.device, resize: int, out: int, workers: int = 0,
                 cache_dir: Path | None = None):
        cache = None
        if cache_dir is not None:
            cache = cache_file(cache_dir, images, resize, out)
            if not cache.is_file() or cache.stat().st_size != len(images) * 3 * out * out:
                raise LtbenchError(f"no image cache for {images.list_file.name} at {resize}/{out} px in {cache_dir} "
                                   f"({cache.name}); build it with: ltbench data cache imagenet-lt --cache-dir "
                                   f"{cache_dir} --image-size <crop> (or run without --image-cache)")
        self.reader = _ImageReader(images, resize, out, cache)
        self.device = device
        self.labels = torch.from_numpy(self.reader.labels).to(device)
        self.workers = max(0, int(workers))
        self._sampler = _OrderSampler()
        self._loader: torch.utils.data.DataLoader[ReaderItem] | None = None
        self._threads: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.reader)

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.reader.out, self.reader.out)

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 images and labels on the device, `batch_size` at a time, in `order` (the last may be short)."""
        idx = order.cpu()
        self._sampler.batches = [idx[s:s + batch_size].tolist() for s in range(0, idx.shape[0], batch_size)]
        if self._loader is None:  # created once: persistent workers survive across epochs
            self._loader = _loader(self.reader, self._sampler, self.workers, self.device.type == "cuda")
        for item in self._loader:
            if isinstance(item, str):
                raise LtbenchError(item)
            images, labels = item
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def fetch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Specific samples (a second batch drawn by a class sampler), decoded in a thread pool."""
        ids = idx.cpu().tolist()
        if self.workers > 1 and len(ids) > 1:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="ltbench-decode")
            arrays = list(self._threads.map(self.reader.load, ids))
        else:
            arrays = [self.reader.load(i) for i in ids]
        images = torch.from_numpy(np.stack(arrays))
        return images.to(self.device, non_blocking=True), self.labels[idx.to(self.device)]


def build_cache(images: Any, resize: int, out: int, cache_dir: Path, workers: int = 0, batch_size: int = 256) -> Path:
    """Decode a list once into a uint8 file [N, 3, out, out] (written to a temp file, then renamed)."""
    path = cache_file(cache_dir, images, resize, out)
    if path.is_file() and path.stat().st_size == len(images) * 3 * out * out:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    reader = _ImageReader(images, resize, out)
    sampler = _OrderSampler()
    n = len(reader)
    sampler.batches = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    memmap = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(n, 3, out, out))
    try:
        start = 0
        for item in _loader(reader, sampler, workers, False):
            if isinstance(item, str):
                raise LtbenchError(item)
            memmap[start:start + item[0].shape[0]] = item[0].numpy()
            start += item[0].shape[0]
        memmap.flush()
        del memmap
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
