"""Figures of ltbench analyze (matplotlib's object API, no pyplot state): one panel per method."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ltbench.analysis import tables
from ltbench.analysis.run import RunAnalysis

if TYPE_CHECKING:  # matplotlib and pandas load only when a figure is drawn
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_PANELS = 12


def _panels(n: int, width: float = 3.2, height: float = 3.0) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    cols = min(n, 4)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def _save(fig: Figure, base: Path) -> list[Path]:
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = base.with_suffix(f".{ext}")
        fig.savefig(path, dpi=130, metadata={"Software": None} if ext == "png" else {"CreationDate": None})
        paths.append(path)
    return paths


def _cells(analyses: Sequence[RunAnalysis]) -> list[tuple[tuple[str, str], list[RunAnalysis]]]:
    return list(tables._cells(analyses).items())[:MAX_PANELS]


def logit_adjustment(analyses: Sequence[RunAnalysis], base: Path) -> list[Path]:
    """Test top-1 and Few vs tau per cell; the val curve dashed and the val-chosen tau marked when present."""
    cells = [(k, [(a, a.curve) for a in v if a.curve is not None]) for k, v in _cells(analyses)]
    cells = [(k, v) for k, v in cells if v]
    if not cells:
        return []
    fig, axes = _panels(len(cells))
    for ax, ((setting, method), runs) in zip(axes, cells, strict=True):
        taus = [r["tau"] for r in runs[0][1]]
        for key, style in (("top1", "-o"), ("few", "-s")):
            ys = [np.mean([c[i][key] for _, c in runs if c[i][key] is not None] or [np.nan])
                  for i in range(len(taus))]
            ax.plot(taus, ys, style, ms=3, label=f"test {key}")
        vals = [(a, a.val_curve) for a, _ in runs if a.val_curve is not None]
        if vals:
            ax.plot(taus, [np.mean([vc[i]["top1"] for _, vc in vals]) for i in range(len(taus))], "--",
                    color="gray", label="val top1")
            for a, _ in vals:
                assert a.tau is not None  # analysis/run.py sets tau with val_curve
                ax.axvline(a.tau, color="tab:red", lw=0.8, alpha=0.6)
            note = "τ chosen on val (red)"
        else:
            note = "no val split: test-selected, whole curve shown"
        ax.set_title(f"{method}, {setting}\n{note}", fontsize=8)
        ax.set_xlabel("τ (logits − τ·log prior)")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7)
    return _save(fig, base)


def shifted_priors(frame: pd.DataFrame, base: Path) -> list[Path]:
    """Top-1 vs test prior (forward LT ... uniform ... backward LT), one line per method, per setting."""
    if frame.empty:
        return []
    settings = sorted(set(frame["setting"]))
    fig, axes = _panels(len(settings), width=5.0, height=3.4)
    for ax, setting in zip(axes, settings, strict=True):
        part = frame[frame["setting"] == setting]
        for method, rows in part.groupby("method", sort=True):
            ax.plot(rows["prior"], rows["top1"], "-o", ms=3, label=method)
            if rows["top1_prior_adjusted"].notna().any():
                ax.plot(rows["prior"], rows["top1_prior_adjusted"], ":", color=ax.lines[-1].get_color())
        ax.set_title(f"{setting}: accuracy under shifted test priors\n(dotted: prior-aware logit adjustment)",
                     fontsize=8)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.set_ylabel("top-1 (%)")
        ax.legend(fontsize=7)
    return _save(fig, base)


def reliability(analyses: Sequence[RunAnalysis], base: Path) -> list[Path]:
    """Reliability diagram per cell (all test images of its runs): accuracy per confidence bin."""
    pooled = [(k, tables.pooled_reliability(v, "all"), v) for k, v in _cells(analyses)]
    cells = [(k, rel, v) for k, rel, v in pooled if rel is not None]
    if not cells:
        return []
    fig, axes = _panels(len(cells))
    for ax, ((setting, method), rel, runs) in zip(axes, cells, strict=True):
        bins = rel["bins"]
        centers = (np.arange(bins) + 0.5) / bins
        ax.bar(centers, np.nan_to_num(rel["accuracy"]), width=1 / bins, edgecolor="black", lw=0.5, label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="gray", lw=0.8)
        ece = np.mean([a.calibration["all"]["ece"] for a in runs if "all" in a.calibration])
        ax.set_title(f"{method}, {setting}\nECE {100 * ece:.2f} % (15 bins)", fontsize=8)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    return _save(fig, base)


def confusion(analyses: Sequence[RunAnalysis], base: Path) -> list[Path]:
    """Row-normalised confusion per cell (summed over seeds), classes in training-frequency order."""
    from ltbench.analysis.confusion import CLASS_NAMES
    from ltbench.analysis.priors import frequency_rank

    summed = [(k, tables.summed_confusion(v), v[0]) for k, v in _cells(analyses)]
    cells = [(k, conf, a) for k, conf, a in summed if conf is not None]
    if not cells:
        return []
    fig, axes = _panels(len(cells), width=4.2, height=4.0)
    for ax, ((setting, method), conf, a) in zip(axes, cells, strict=True):
        order = frequency_rank(a.train_counts)
        mat = conf[np.ix_(order, order)].astype(float)
        mat = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
        ax.imshow(mat, vmin=0, vmax=1, cmap="Blues")
        names = CLASS_NAMES.get(a.dataset)
        if len(order) <= 20:
            labels = [f"{names[c] if names else c} ({a.train_counts[c]})" for c in order]
            ax.set_xticks(range(len(order)), labels, rotation=90, fontsize=6)
            ax.set_yticks(range(len(order)), labels, fontsize=6)
            for i in range(len(order)):
                for j in range(len(order)):
                    if mat[i, j] >= 0.05:
                        ax.text(j, i, f"{100 * mat[i, j]:.0f}", ha="center", va="center", fontsize=5,
                                color="white" if mat[i, j] > 0.5 else "black")
        ax.set_title(f"{method}, {setting}: row-normalised confusion\n(classes by training count)", fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true (training images)")
    return _save(fig, base)
