"""A run's lifecycle: skip it if done, lock its directory, claim it, resume it, record its failure or
finish it with final.json. Every method runs through `train(spec, runtime)`.

How each epoch is trained and evaluated is the Trainer's job (ltbench.trainer); which files a run
directory holds, and how each is written, is RunDir's (ltbench.rundir). This module decides when each
is written: under the run's lock, by rank 0 only under torchrun, final.json last.

Trainer, RuntimeOptions, RunDiverged and resolve_device are re-exported: callers import them from here.
"""

from __future__ import annotations

import math
import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from contextlib import ExitStack, closing
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from ltbench import __version__, cpu
from ltbench import distributed as ltdist
from ltbench.checkpoint import DamagedCheckpoint, load_checkpoint, save_checkpoint
from ltbench.config import RunSpec
from ltbench.data.bundle import DataBundle
from ltbench.data.datasets import build_bundle
from ltbench.errors import LtbenchError
from ltbench.files import warn_stderr
from ltbench.locks import RunLocked, run_lock
from ltbench.predictions import write_predictions
from ltbench.protocol import protocol_record
from ltbench.rundir import RunDir
from ltbench.tracking import NullTracker, make_tracker
from ltbench.trainer import RunDiverged, RuntimeOptions, Trainer, make_sources, resolve_device

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["DamagedCheckpoint", "RunDiverged", "RuntimeOptions", "Trainer", "environment", "make_sources",
           "resolve_device", "run_directory", "train"]


def environment(device: torch.device, runtime: RuntimeOptions, trainer: Trainer | None = None) -> dict[str, Any]:
    """env.json's content: the software, the machine and the command of this training session."""
    src = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=src, capture_output=True, text=True, timeout=10)
            return res.stdout.strip() if res.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    import torchvision

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "ltbench": __version__, "git_sha": git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "numpy": np.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": torch.get_num_threads(), "hostname": socket.gethostname(), "pid": os.getpid(),
        "argv": runtime.argv, "channels_last": trainer.channels_last if trainer else None,
        "compile": runtime.compile, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_env": cpu.process_settings(),
    }


def run_directory(spec: RunSpec, results_dir: Path) -> Path:
    return RunDir.of(results_dir, spec.run_id).path


def _finished(run_dir: RunDir, warn: bool = False) -> dict[str, Any] | None:
    try:
        return run_dir.load_final()
    except ValueError as exc:  # damaged or foreign final.json: never shown as this run's result; redone
        if warn:
            print(f"warning: {exc}; the run is trained again", file=sys.stderr, flush=True)
        return None


def train(spec: RunSpec, runtime: RuntimeOptions) -> dict[str, Any]:
    """Train (or resume, or skip) one run; returns its final.json content.

    Raises RunLocked when another live process holds the run directory's lock.
    """
    run_dir = RunDir.of(runtime.results_dir, spec.run_id)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # under torchrun, rank 0 decides for all (below)
        done = _finished(run_dir, warn=True)
        if done is not None and not runtime.force:
            return done
    device = resolve_device(runtime.device)
    if device.type == "cpu":
        cpu.keep_buffers_on_heap()  # speed only: big activation buffers are reused, not re-mmapped each step
    dist, device = ltdist.from_env(device)  # torchrun: join the process group (rank 0 writes the directory)
    try:
        return _train(spec, runtime, run_dir, device, dist)
    finally:
        dist.close()


def _train(spec: RunSpec, runtime: RuntimeOptions, run_dir: RunDir, device: torch.device,
           dist: ltdist.Dist) -> dict[str, Any]:
    bundle = build_bundle(spec.dataset, spec.ratio, spec.profile, spec.data_seed, spec.max_per_class,
                          runtime.data_dir, runtime.download, split_dir=runtime.split_dir,
                          with_val=spec.train.val_select, class_order=spec.class_order)
    # One trainer per run directory (two sweeps on one results folder): rank 0 takes the lock, only once
    # the inputs are known to be good (bad input leaves no directory behind), and tells every rank
    # whether to train, to return the result another process finished meanwhile, or to give up.
    with ExitStack() as held:
        verdict = ("train", "")
        if dist.is_main:
            run_dir.refuse_symlinks()  # before the lock: nothing in a run directory is written through a link
            try:
                held.enter_context(run_lock(run_dir.path))
                if _finished(run_dir) is not None and not runtime.force:
                    verdict = ("done", "")
            except RunLocked as exc:
                verdict = ("locked", str(exc))
        verdict = dist.gather_objects(verdict)[0]
        if verdict[0] == "locked":
            raise RunLocked(verdict[1])
        if verdict[0] == "done":
            finished = _finished(run_dir)
            # the main rank has just read this record under the run lock, and every rank reads the same directory
            assert finished is not None
            return finished
        if dist.is_main:
            _claim(run_dir, spec, runtime.force)
        dist.barrier()
        return _train_claimed(spec, runtime, run_dir, device, dist, bundle)


def _train_claimed(spec: RunSpec, runtime: RuntimeOptions, run_dir: RunDir, device: torch.device,
                   dist: ltdist.Dist, bundle: DataBundle) -> dict[str, Any]:
    """Train a claimed run; any failure is recorded in failed.json while the lock is still held."""
    try:
        return _loop(Trainer(spec, bundle, device, runtime, dist), run_dir, runtime)
    except RunDiverged as exc:
        _record_failure(run_dir, dist, exc, str(exc), "diverged")
        raise
    except DamagedCheckpoint:
        raise  # the user's to move away; the directory stays as it was (resumable once it is)
    except LtbenchError as exc:  # e.g. a last.pt of another spec: the user's to fix, the reason is kept
        _record_failure(run_dir, dist, exc, str(exc), "error")
        raise
    except KeyboardInterrupt:
        raise  # stopped, not failed: the run resumes from last.pt
    except Exception as exc:
        _record_failure(run_dir, dist, exc, f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        raise


def _record_failure(run_dir: RunDir, dist: ltdist.Dist, exc: BaseException, reason: str, kind: str | None = None,
                    **details: Any) -> None:
    if dist.is_main:
        run_dir.record_failure(reason, kind, **details)
    exc.failure_recorded = True  # type: ignore[attr-defined]  # callers (the sweep worker) must not write another


def _claim(run_dir: RunDir, spec: RunSpec, force: bool) -> None:
    """Create the run directory, or check that an existing one holds this very spec."""
    if run_dir.spec_path.exists():
        try:
            same = RunSpec.from_dict(run_dir.read_spec()).canonical_json() == spec.canonical_json()
        except (ValueError, TypeError, KeyError):
            same = False
        if not same:
            raise LtbenchError(f"{run_dir.spec_path} is damaged or does not match this run's spec; "
                               "move the directory away to rerun")
    run_dir.prepare(force)
    run_dir.write_spec(spec.to_dict())


def _loop(tr: Trainer, run_dir: RunDir, runtime: RuntimeOptions) -> dict[str, Any]:
    spec = tr.spec
    ckpt = load_checkpoint(run_dir, spec)
    best: dict[str, Any] = {"epoch": None, "top1": None}
    start, elapsed = 0, 0.0
    if ckpt is not None:
        try:
            tr.load_state(ckpt)
        except LtbenchError:
            raise
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError, AttributeError):
            raise DamagedCheckpoint(run_dir.checkpoint_path) from None  # right keys, wrong contents
        start, best, elapsed = ckpt["next_epoch"], ckpt["best"], ckpt["elapsed"]
    main = tr.dist.is_main  # only rank 0 writes the run directory
    if main:
        run_dir.keep_metrics_before(start, warn_stderr)  # a kill may have landed after an append
        # one line per training session: how often a run was resumed, by whom, from which epoch
        run_dir.append_session({"start_epoch": start, "pid": os.getpid(), "host": socket.gethostname(),
                                "started": time.time()})
        run_dir.write_env({**environment(tr.device, runtime, tr), "world_size": tr.dist.world})
    steps = math.ceil(len(tr.train) / spec.train.batch_size)
    progress = _Progress(runtime.progress and main, spec, start, steps)
    tracker = make_tracker(runtime.tracker, run_dir.path) if main else NullTracker()
    summary = None
    with progress, closing(tracker):
        for epoch in range(start, spec.train.epochs):
            if runtime.stop_after_epochs is not None and epoch - start >= runtime.stop_after_epochs:
                return {}
            t0 = time.perf_counter()
            logs = tr.train_epoch(epoch, progress.step)
            row = {"epoch": epoch, **logs, "epoch_time_s": time.perf_counter() - t0}
            last = epoch == spec.train.epochs - 1
            if last or (epoch + 1) % spec.train.eval_every == 0:
                summary = tr.evaluate()
                if best["top1"] is None or summary["top1"] > best["top1"]:
                    best = {"epoch": epoch, "top1": summary["top1"]}
                row.update({k: summary[k] for k in ("top1", "many", "medium", "few")})
                if tr.val is not None:  # val selection: the test numbers of the best-val epoch
                    row["val_top1"] = tr.evaluate_val()
                    if best.get("val") is None or row["val_top1"] > best["val"]["val_top1"]:
                        best["val"] = {"epoch": epoch, "val_top1": row["val_top1"],
                                       **{k: summary[k] for k in ("top1", "many", "medium", "few")}}
            elapsed += time.perf_counter() - t0
            state = tr.state(epoch + 1, best, elapsed)  # every rank: gathers the per-rank random streams
            if main:
                run_dir.append_metrics(row)
                tracker.log(row)
                save_checkpoint(run_dir, state)
            progress.epoch_done(epoch, row.get("top1"))
    if summary is None:  # killed after the last checkpoint but before final.json: evaluate that state
        summary = tr.evaluate()
    return _finish(tr, run_dir, summary, best, elapsed)


def _finish(tr: Trainer, run_dir: RunDir, summary: dict[str, Any], best: dict[str, Any],
            elapsed: float) -> dict[str, Any]:
    """final.json's content; rank 0 writes predictions.npz, then final.json (last: its presence means done)."""
    spec = tr.spec
    final = {
        **summary, "train_class_counts": tr.class_counts, "best_epoch": best["epoch"],
        "best_top1": best["top1"], "best_selection": "oracle (test-selected)",
        "subset_sha": tr.bundle.subset_sha, "wall_time_s": round(elapsed, 3),
        "run_id": spec.run_id, "spec_hash": spec.hash, "epochs": spec.train.epochs,
        "protocol": protocol_record(spec.to_dict(), tr.class_counts, tr.method.views(), tr.dist.world,
                                    tr.image_size[0]),
    }
    if tr.dist.active:
        final["world_size"] = tr.dist.world
    if tr.val is not None:
        final["val_selected"] = best.get("val")
        if tr.bundle.val_labels is not None:  # reported numbers are on the test half (ltbench.data.val_split)
            final["eval_set"] = "test-half"
        if id(tr.val) not in tr.last_logits:  # killed before final.json: the val outputs once more
            tr.evaluate_val()
    if tr.dist.is_main:  # the last epoch's outputs beside final.json, their hash inside it (ltbench.predictions)
        final["predictions"] = _save_predictions(tr, run_dir)
        run_dir.write_final(final)
    tr.dist.barrier()  # the other ranks return once final.json exists
    return final


def _save_predictions(tr: Trainer, run_dir: RunDir) -> dict[str, Any]:
    def outputs(source: Any) -> tuple[np.ndarray, np.ndarray]:
        return tr.last_logits[id(source)].float().numpy(), source.labels.cpu().numpy()

    return write_predictions(run_dir.path, *outputs(tr.test), val=outputs(tr.val) if tr.val is not None else None)


class _Progress:
    """A rich progress bar with ETA over all steps of the run (silent when disabled)."""

    def __init__(self, enabled: bool, spec: RunSpec, start_epoch: int, steps_per_epoch: int):
        self.enabled = enabled
        self.steps_per_epoch = steps_per_epoch
        self.spec = spec
        self.start_epoch = start_epoch
        self.bar: Progress | None = None
        self.task: TaskID

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task(f"{self.spec.run_id} epoch {self.start_epoch}",
                                          total=(self.spec.train.epochs - self.start_epoch) * self.steps_per_epoch)
        return self

    def step(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def epoch_done(self, epoch: int, top1: float | None) -> None:
        if self.bar is not None:
            shown = "" if top1 is None else f" top1 {top1:.2f}"
            self.bar.update(self.task, description=f"{self.spec.run_id} epoch {epoch + 1}/{self.spec.train.epochs}"
                                                   f"{shown}")

    def __exit__(self, *exc: Any) -> Literal[False]:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
