"""The final epoch's test-set outputs, saved next to final.json so that finished runs can be analysed
without retraining (ltbench.analysis). No torch import: arrays are numpy, the file is a plain .npz.

What is stored (one file, `predictions.npz`, written atomically; its SHA-256 goes into final.json):

- `kind = "logits"` when classes x test images <= LOGITS_LIMIT (2,000,000 values, i.e. at most 4 MB of
  float16): the full logits [N, C] as float16 and the labels. CIFAR-100: 10k x 100 = 2 MB; CIFAR-10 and
  Fashion-MNIST: 10k x 10 = 200 KB.
- `kind = "summary"` above the limit (ImageNet-LT: 50k x 1000): the top-TOPK class indices and logits,
  the true class's logit, the softmax confidence of the top class, the labels and the [C, C] confusion
  matrix. This answers confusion and calibration questions; logit adjustment needs the full logits.

A run with a validation split also stores the val half's outputs (`val_*`, same kind), so that
post-hoc choices (e.g. the logit-adjustment tau) are made on val, never on the reported test images.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltbench.errors import LtbenchError
from ltbench.rundir import PREDICTIONS, RunDir

PREDICTIONS_FILE = PREDICTIONS  # the name final.json's "predictions" record carries
LOGITS_LIMIT = 2_000_000  # classes x test images stored as full float16 logits (<= 4 MB)
TOPK = 5
MAX_FILE_BYTES = 512 * 2**20  # a predictions file larger than this is refused on read (not ours)


@dataclass
class Outputs:
    """One evaluated set: labels, and either full logits or the bounded summary."""

    labels: np.ndarray  # int64 [N]
    logits: np.ndarray | None = None  # float32 [N, C] (stored as float16)
    topk_idx: np.ndarray | None = None  # int32 [N, k]
    topk_val: np.ndarray | None = None  # float32 [N, k]
    true_logit: np.ndarray | None = None  # float32 [N]
    confidence: np.ndarray | None = None  # float32 [N]: max softmax probability
    confusion: np.ndarray | None = None  # int64 [C, C], rows = true class

    @property
    def kind(self) -> str:
        return "logits" if self.logits is not None else "summary"

    @property
    def preds(self) -> np.ndarray:
        if self.logits is not None:
            best: np.ndarray = self.logits.argmax(axis=1)
            return best
        assert self.topk_idx is not None  # a summary always carries topk_idx (summarize_logits, _outputs)
        return self.topk_idx[:, 0].astype(np.int64)

    def confusion_matrix(self, num_classes: int) -> np.ndarray:
        if self.confusion is not None:
            return self.confusion
        flat = self.labels * num_classes + self.preds
        return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _softmax_max(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    top: np.ndarray = 1.0 / np.exp(z).sum(axis=1)  # the top class's probability: exp(0) / sum
    return top


def summarize_logits(logits: np.ndarray, labels: np.ndarray, k: int = TOPK) -> Outputs:
    """The bounded summary of full logits (what is stored above LOGITS_LIMIT)."""
    logits = np.asarray(logits, dtype=np.float32)
    n, c = logits.shape
    k = min(k, c)
    idx = np.argsort(-logits, axis=1, kind="stable")[:, :k].astype(np.int32)
    labels = np.asarray(labels, dtype=np.int64)
    conf = np.bincount(labels * c + idx[:, 0], minlength=c * c).reshape(c, c)
    return Outputs(labels=labels, topk_idx=idx, topk_val=np.take_along_axis(logits, idx, axis=1),
                   true_logit=logits[np.arange(n), labels], confidence=_softmax_max(logits), confusion=conf)


def _entries(prefix: str, out: Outputs) -> dict[str, np.ndarray]:
    if out.logits is not None:
        return {f"{prefix}labels": out.labels.astype(np.int64), f"{prefix}logits": out.logits.astype(np.float16)}
    # a summary (summarize_logits) fills every field
    assert out.topk_idx is not None and out.topk_val is not None and out.true_logit is not None
    assert out.confidence is not None and out.confusion is not None
    return {f"{prefix}labels": out.labels.astype(np.int64), f"{prefix}topk_idx": out.topk_idx.astype(np.int32),
            f"{prefix}topk_val": out.topk_val.astype(np.float16),
            f"{prefix}true_logit": out.true_logit.astype(np.float16),
            f"{prefix}confidence": out.confidence.astype(np.float16),
            f"{prefix}confusion": out.confusion.astype(np.int64)}


def encode(logits: np.ndarray, labels: np.ndarray, val: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[
        bytes, str]:
    """The .npz bytes and their kind: full float16 logits under LOGITS_LIMIT, else the summary."""
    logits = np.asarray(logits, dtype=np.float32)
    kind = "logits" if logits.size <= LOGITS_LIMIT else "summary"

    def pack(lg: np.ndarray, lb: np.ndarray) -> Outputs:
        lb = np.asarray(lb, dtype=np.int64)
        return Outputs(labels=lb, logits=np.asarray(lg, np.float32)) if kind == "logits" else summarize_logits(lg, lb)

    arrays: dict[str, Any] = {"kind": np.array(kind), **_entries("", pack(logits, labels))}
    if val is not None:
        arrays.update(_entries("val_", pack(*val)))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue(), kind


def write_predictions(run_dir: Path, logits: np.ndarray, labels: np.ndarray,
                      val: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Write predictions.npz atomically; returns the record final.json keeps (file, kind, bytes, sha256)."""
    data, kind = encode(logits, labels, val)
    RunDir(Path(run_dir)).write_predictions(data)
    return {"file": PREDICTIONS_FILE, "kind": kind, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "limit_values": LOGITS_LIMIT}


def _outputs(arrays: dict[str, np.ndarray], prefix: str) -> Outputs | None:
    if f"{prefix}labels" not in arrays:
        return None

    def get(name: str, dtype: type[np.generic]) -> np.ndarray | None:
        key = f"{prefix}{name}"
        return arrays[key].astype(dtype) if key in arrays else None

    return Outputs(labels=arrays[f"{prefix}labels"].astype(np.int64), logits=get("logits", np.float32),
                   topk_idx=get("topk_idx", np.int32), topk_val=get("topk_val", np.float32),
                   true_logit=get("true_logit", np.float32), confidence=get("confidence", np.float32),
                   confusion=get("confusion", np.int64))


def read_predictions(run_dir: Path, final: dict[str, Any]) -> tuple[Outputs, Outputs | None] | None:
    """(test, val or None) outputs of a finished run; None for a run saved before predictions existed.

    The file must match the SHA-256 final.json records; a mismatch, a symlink or a damaged file is an
    LtbenchError (one line), never a traceback.
    """
    record = final.get("predictions")
    if not isinstance(record, dict):
        return None
    path = RunDir(Path(run_dir)).predictions_path
    if path.is_symlink():
        raise LtbenchError(f"{path} is a symbolic link; run files are never followed through links")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise LtbenchError(f"{path} is larger than {MAX_FILE_BYTES >> 20} MB; not an ltbench predictions file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise LtbenchError(f"{path} is missing (final.json says it was written)") from None
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise LtbenchError(f"{path} does not match the SHA-256 in final.json: edited or damaged")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise LtbenchError(f"{path} cannot be read ({exc})") from None
    test = _outputs(arrays, "")
    if test is None or (test.logits is None and test.topk_idx is None):
        raise LtbenchError(f"{path} holds no test outputs")
    return test, _outputs(arrays, "val_")
