"""Figures that show uncertainty: ablations and per-class accuracy with 95 % intervals and per-seed points,
and the forest plot of paired differences that goes with `ltbench compare`.

Rules every figure here keeps (issue 19 of this project): categories are never joined by lines (a line
between "random" and "center" implies an order that is not there); legends sit outside the axes; class
names are printed where the data set has them; a paper's number from another setting gets its own axis,
never a place on ours. matplotlib is imported only to draw (through matplotlib.figure.Figure, no pyplot
state), and nothing here imports torch. `ablation_data` and `per_class_stats` are the numbers a figure
plots (returned beside its paths).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ltbench.report.labels import BACKGROUND_COLUMNS, METRIC_LABELS, fmt_value, setting_id
from ltbench.report.paper import ABLATION_SETTING, method_order, paper_label
from ltbench.report.selection import selection_rule
from ltbench.report.table import TableResult
from ltbench.stats import t975

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Fashion-MNIST label names, in label order (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747, Table 1)
FASHION_MNIST_NAMES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                       "ankle boot")
# CIFAR-10 label names, in label order (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny
# Images", the batches.meta of the python version)
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# ltbench's own `shapes` data set: the same tuple as ltbench.data.shapes.SHAPE_NAMES (a test keeps them equal;
# copied so that drawing does not import torch)
SHAPES_NAMES = ("disk", "ring", "square", "frame", "triangle", "plus", "ellipse", "crescent", "star", "bars")
CLASS_NAMES = {"fashion-mnist": FASHION_MNIST_NAMES, "cifar10": CIFAR10_NAMES, "shapes": SHAPES_NAMES}
NAMED_AXIS_MAX = 20  # more classes than this: per-class points against the (log) training count instead


def class_name(dataset: str, cls: int) -> str:
    names = CLASS_NAMES.get(dataset)
    return names[cls] if names is not None and 0 <= cls < len(names) else str(cls)


def half95(values: Sequence[float]) -> float | None:
    """95 % t half-width of the mean of `values` (None below 2 values)."""
    v = [x for x in values if x is not None and not math.isnan(x)]
    if len(v) < 2:
        return None
    mean = sum(v) / len(v)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))
    return t975(len(v) - 1) * sd / math.sqrt(len(v))


def _figure(figsize: tuple[float, float], ncols: int = 1, nrows: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(ncols * nrows)]
    return fig, axes


def _png_meta(ext: str) -> dict[str, Any]:
    return {"Software": None} if ext == "png" else {"Creator": None, "Producer": None, "CreationDate": None}


def _save(fig: Figure, paths: Sequence[Path]) -> list[Path]:
    out = []
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ext = path.suffix.lstrip(".")
        fig.savefig(path, dpi=150 if ext == "png" else None, metadata=_png_meta(ext))
        out.append(path)
    return out


def _legend_below(fig: Figure, axes: Sequence[Axes], ncol: int = 4) -> None:
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(labels)), fontsize=7,
                   frameon=False)


# ----- ablations ---------------------------------------------------------------------------------

def ablation_data(t: TableResult) -> pd.DataFrame:
    """What the ablation figure plots: one row per (method, setting, varied value, metric)."""
    records = []
    for row in t.rows:
        if row.method is None:
            continue
        for col in t.columns:
            c = t.cells[(row.key, col.key)]
            records.append({"method": row.method, "label": row.label,
                            "setting": setting_id(col.dataset, col.ratio, col.head),
                            "x": ", ".join(f"{k}={fmt_value(v)}" for k, v in row.vary.items()) if len(
                                row.vary) > 1 else fmt_value(next(iter(row.vary.values()), "")),
                            "metric": col.metric, "mean": c.mean, "std": c.std, "n": c.n, "paper": c.paper})
    data = pd.DataFrame(records, columns=["method", "label", "setting", "x", "metric", "mean", "std", "n",
                                          "paper"])
    for name in ("mean", "std", "paper"):
        data[name] = pd.to_numeric(data[name]).astype("float64")
    return data


def ablation_points(t: TableResult) -> pd.DataFrame:
    """Per-seed values behind each ablation cell: (label, setting, x, metric, seed, value)."""
    rule = selection_rule(t.select)
    records = []
    frame = t.frame
    if frame.empty:
        return pd.DataFrame(columns=["label", "setting", "x", "metric", "seed", "value"])
    for row in t.rows:
        if row.method is None:
            continue
        x = ", ".join(f"{k}={fmt_value(v)}" for k, v in row.vary.items()) if len(row.vary) > 1 else fmt_value(
            next(iter(row.vary.values()), ""))
        for col in t.columns:
            runs = frame.loc[t.cells[(row.key, col.key)].frame_index]  # the cell's runs, as the table has them
            # the seeds behind a background cell are drawn under every rule (the table shows them under last)
            source = rule.columns.get(col.metric) or BACKGROUND_COLUMNS.get(col.metric)
            if source not in runs:
                continue
            for seed, value in zip(runs["seed"], pd.to_numeric(runs[source], errors="coerce"), strict=True):
                if not math.isnan(value):
                    records.append({"label": row.label, "setting": setting_id(col.dataset, col.ratio, col.head),
                                    "x": x, "metric": col.metric, "seed": int(seed), "value": float(value)})
    return pd.DataFrame(records, columns=["label", "setting", "x", "metric", "seed", "value"])


def plot_ablation(t: TableResult, out_base: Path) -> tuple[list[Path], pd.DataFrame]:
    """One panel per metric: per varied value, each series' mean with its 95 % t-interval over seeds and the
    seeds as small dots, side by side, not joined. The paper's values (CIFAR-100-LT r=100) share our axis
    only when our setting is that one; otherwise they get a panel of their own."""
    data = ablation_data(t)
    data["half95"] = [None if n < 2 or pd.isna(s) else t975(int(n) - 1) * s / math.sqrt(n)
                      for s, n in zip(data["std"], data["n"], strict=True)]
    points = ablation_points(t)
    metrics = list(dict.fromkeys(c.metric for c in t.columns)) or ["top1"]
    # a metric no run records (say the tail background gap of older records) gets no empty panel
    metrics = [m for m in metrics if m == "top1" or data[data["metric"] == m]["mean"].notna().any()]
    foreign = not all((c.dataset, c.ratio, c.head) == ABLATION_SETTING for c in t.columns)
    has_paper = bool(data["paper"].notna().any())
    extra = 1 if (foreign and has_paper) else 0
    panels = len(metrics) + extra
    ncols = min(panels, 4)
    nrows = -(-panels // ncols)
    fig, axes = _figure((3.4 * ncols + 0.5, 3.2 * nrows + 0.9), ncols, nrows)
    for ax in axes[panels:]:
        fig.delaxes(ax)
    axes = axes[:panels]
    xs = list(dict.fromkeys(data["x"])) if not data.empty else []
    series = list(dict.fromkeys(zip(data["label"], data["setting"], strict=True))) if not data.empty else []
    one_setting = len({s for _, s in series}) == 1
    width = min(0.8 / max(len(series), 1), 0.25)
    colours: dict[tuple[str, str], Any] = {}
    for ax, metric in zip(axes, metrics, strict=False):
        part = data[data["metric"] == metric]
        for i, (label, setting) in enumerate(series):
            s = part[(part["label"] == label) & (part["setting"] == setting)].set_index("x").reindex(xs)
            offset = (i - (len(series) - 1) / 2) * width
            name = label if one_setting else f"{label} ({setting})"
            err = s["half95"].astype("float64").fillna(0.0)
            bars = ax.errorbar([j + offset for j in range(len(xs))], s["mean"], yerr=err, fmt="o", capsize=3,
                               markersize=5, linestyle="none", label=f"{name}: mean, 95 % CI",
                               color=colours.get((label, setting)))
            colours[(label, setting)] = bars[0].get_color()
            pts = points[(points["metric"] == metric) & (points["label"] == label) & (points["setting"] == setting)]
            if len(pts):
                pos = [xs.index(x) + offset + 0.35 * width for x in pts["x"]]
                ax.scatter(pos, pts["value"], s=9, alpha=0.5, color=colours[(label, setting)], zorder=3,
                           edgecolors="none")
            if metric == "top1" and not foreign and s["paper"].notna().any():
                ax.scatter([j + offset for j in range(len(xs))], s["paper"], marker="*", s=110,
                           facecolors="none", edgecolors=colours[(label, setting)], zorder=5,
                           label=f"paper: {label}")
        ax.set_xticks(range(len(xs)), xs)
        ax.set_xlim(-0.6, len(xs) - 0.4)
        lo, hi = ax.get_ylim()
        if hi - lo < 4.0:  # at least 4 points of accuracy: small differences are not blown up
            mid = (lo + hi) / 2
            ax.set_ylim(mid - 2.0, mid + 2.0)
        ax.set_title(METRIC_LABELS.get(metric, metric) if metric != "top1" else "All (top-1)")
        ax.set_xlabel(", ".join(t.vary_keys) or "variant")
        ax.grid(alpha=0.3, axis="y")
    for i in range(0, len(metrics), ncols):
        axes[i].set_ylabel(f"accuracy (%), {t.select} epoch")
    if extra:
        _paper_panel(axes[-1], data, xs)
    _legend_below(fig, axes)
    settings = sorted({f"{c.dataset} r{c.ratio:g}" + (f" h{c.head}" if c.head else "") for c in t.columns})
    fig.suptitle(f"{t.title}: {', '.join(settings)}; mean with 95 % t-interval over seeds "
                 f"{', '.join(map(str, t.seeds))}, dots = single seeds", fontsize=9)
    paths = _save(fig, [Path(f"{out_base}.png"), Path(f"{out_base}.pdf")])
    return paths, data


def _paper_panel(ax: Axes, data: pd.DataFrame, xs: list[str]) -> None:
    """The paper's ablation numbers on their own axis: another setting (CIFAR-100-LT r=100, ResNet-32)."""
    paper = data[(data["metric"] == "top1") & data["paper"].notna()].drop_duplicates(["label", "x"])
    for label, part in paper.groupby("label", sort=False):
        part = part.set_index("x").reindex(xs)
        ax.scatter(range(len(xs)), part["paper"], marker="*", s=110, label=f"paper: {label}")
    ax.set_xticks(range(len(xs)), xs)
    ax.set_xlim(-0.6, len(xs) - 0.4)
    lo, hi = ax.get_ylim()
    if hi - lo < 4.0:  # the same 4-point floor as our panels: 0.3 points must not look like a trend
        mid = (lo + hi) / 2
        ax.set_ylim(mid - 2.0, mid + 2.0)
    ax.set_ylabel("paper's top-1 accuracy (%)")
    ax.set_title("paper, CIFAR-100-LT r=100\n(another setting: not comparable)", fontsize=8)
    ax.grid(alpha=0.3, axis="y")


# ----- per class ---------------------------------------------------------------------------------

def per_class_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, method, class): mean accuracy, 95 % t half-width and n over seeds, training count, name.

    Runs of several class orders are kept apart ("<setting> · class order k"): a class is head in one order
    and tail in another, so averaging it over orders would mix its shot groups."""
    records = []
    frame = _with_order_panels(frame)
    for _, run in frame.iterrows():
        accs, counts = run.get("per_class_acc"), run.get("train_class_counts")
        if not isinstance(accs, (list, tuple)) or not isinstance(counts, (list, tuple)) or len(accs) != len(counts):
            continue
        for cls, (acc, n) in enumerate(zip(accs, counts, strict=True)):
            records.append({"setting": run["panel"], "dataset": run["dataset"], "method": run["method"],
                            "seed": run["seed"], "class": cls, "train_count": n, "acc": acc})
    cols = ["setting", "method", "class", "name", "train_count", "acc", "half95", "n"]
    if not records:
        return pd.DataFrame(columns=cols)
    long = pd.DataFrame(records)
    out = []
    for (setting, method, cls), g in long.groupby(["setting", "method", "class"], sort=True):
        out.append({"setting": setting, "method": method, "class": cls,
                    "name": class_name(g["dataset"].iloc[0], int(cls)), "train_count": g["train_count"].mean(),
                    "acc": g["acc"].mean(), "half95": half95(list(g["acc"])), "n": len(g),
                    "seeds": list(g["acc"])})
    return pd.DataFrame(out)


def _with_order_panels(frame: pd.DataFrame) -> pd.DataFrame:
    col = "protocol.class_order"
    orders = frame[col] if col in frame else pd.Series(0, index=frame.index)
    orders = orders.fillna(0).astype(int)
    several = orders.groupby(frame["setting"]).transform("nunique") > 1
    panel = [f"{s} · class order {o}" if many else s
             for s, o, many in zip(frame["setting"], orders, several, strict=True)]
    return frame.assign(panel=panel)


def plot_per_class(frame: pd.DataFrame, out: Path, title: str = "") -> tuple[list[Path], pd.DataFrame]:
    """Per-class test accuracy, one panel per setting: classes ordered by training images (most first), named
    where the data set has names, each method's mean with its 95 % interval and the seeds as dots; no lines
    between classes. Settings with more than NAMED_AXIS_MAX classes use a log training-count axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    data = per_class_stats(frame)
    order = _with_order_panels(frame).drop_duplicates("panel").sort_values(["dataset", "ratio", "panel"],
                                                                           ascending=[True, False, True])
    settings = [s for s in order["panel"] if s in set(data["setting"])] or ["(no runs)"]
    fig, axes = _figure((max(7.0, 6.5 * len(settings)), 4.6), len(settings))
    for ax, setting in zip(axes, settings, strict=True):
        part = data[data["setting"] == setting]
        methods = sorted(set(part["method"]), key=method_order)
        classes = part.drop_duplicates("class").sort_values(["train_count", "class"], ascending=[False, True])
        named = 0 < len(classes) <= NAMED_AXIS_MAX
        pos_of = {c: i for i, c in enumerate(classes["class"])}
        width = min(0.8 / max(len(methods), 1), 0.2)
        for k, m in enumerate(methods):
            s = part[part["method"] == m]
            nseeds = int(s["n"].max()) if len(s) else 0
            if named:
                x = [pos_of[c] + (k - (len(methods) - 1) / 2) * width for c in s["class"]]
            else:
                x = list(s["train_count"] * (1.0 + 0.03 * (k - (len(methods) - 1) / 2)))
            bars = ax.errorbar(x, s["acc"], yerr=s["half95"].astype("float64").fillna(0.0), fmt="o", markersize=3,
                               capsize=2, linestyle="none", linewidth=0.8,
                               label=f"{paper_label(m)} (n={nseeds})")
            seed_x = [xi for xi, vals in zip(x, s["seeds"], strict=True) for _ in vals]
            seed_y = [v for vals in s["seeds"] for v in vals]
            ax.scatter(seed_x, seed_y, s=5, alpha=0.35, color=bars[0].get_color(), edgecolors="none")
        if named:
            ax.set_xticks(range(len(classes)), [f"{n} ({c:g})" for n, c in
                                                zip(classes["name"], classes["train_count"], strict=True)],
                          rotation=45, ha="right", fontsize=7)
            ax.set_xlim(-0.6, len(classes) - 0.4)
            _shot_bounds_named(ax, list(classes["train_count"]))
            ax.set_xlabel("class (training images), most frequent first")
        else:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            for bound in (20, 100):
                ax.axvline(bound, color="grey", linestyle="--", linewidth=0.8)
            ax.set_xlabel("training images of the class (log)")
        ax.set_ylabel("test accuracy of the class (%)")
        ax.set_title(setting)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3, axis="y")
    _legend_below(fig, axes, ncol=5)
    fig.suptitle((title + "; " if title else "") + "mean with 95 % t-interval over seeds, dots = single seeds",
                 fontsize=9)
    return _save(fig, [Path(out)]), data


def _shot_bounds_named(ax: Axes, counts: list[float]) -> None:
    """Dashed lines between the shot groups (Many > 100, Few < 20) on a categorical class axis."""
    for bound, text in ((100, "many | medium"), (20, "medium | few")):
        above = sum(c > bound if bound == 100 else c >= bound for c in counts)
        if 0 < above < len(counts):
            ax.axvline(above - 0.5, color="grey", linestyle="--", linewidth=0.8)
            ax.text(above - 0.5, 101, text, rotation=90, va="top", ha="right", fontsize=6, color="grey")


# ----- forest plot -------------------------------------------------------------------------------

def _forest_label(row: pd.Series, flagged: Sequence[str]) -> str:
    flag = " [protocol differs]" if f"{row['a_arm']} vs {row['b_arm']}" in flagged else ""
    return f"{_pair_text(str(row['a_arm']), str(row['b_arm']))}{flag} · {row['setting']} · {row['metric']}"


def _pair_text(a: str, b: str) -> str:
    """`A − B` naming only what differs, what the arms share in parentheses:
    'mask_locator=saliency − mask_locator=random (drw+smcl, saliency_pad=include)'."""
    (method_a, *keys_a), (method_b, *keys_b) = a.split("|"), b.split("|")
    values_a = dict(kv.split("=", 1) for kv in keys_a if "=" in kv)
    values_b = dict(kv.split("=", 1) for kv in keys_b if "=" in kv)
    if len(values_a) != len(keys_a) or len(values_b) != len(keys_b):
        return f"{a} − {b}"
    shared = {k: v for k, v in values_a.items() if values_b.get(k) == v}
    own_a = [f"{k}={v}" for k, v in values_a.items() if k not in shared]
    own_b = [f"{k}={v}" for k, v in values_b.items() if k not in shared]
    if method_a != method_b or not (own_a or own_b):
        own_a, own_b = [method_a, *own_a], [method_b, *own_b]
    common = ([method_a] if method_a == method_b and own_a[0] != method_a else []) + [
        f"{k}={v}" for k, v in shared.items()]
    text = f"{'|'.join(own_a)} − {'|'.join(own_b)}"
    return f"{text} ({', '.join(common)})" if common else text


def plot_forest(result: pd.DataFrame, out: Path, title: str = "", flagged: Sequence[str] = ()) -> list[Path]:
    """Paired differences A − B, one line per (pair, setting, metric): the mean with its raw 95 % t-interval,
    the seeds' differences as dots; filled = resolved after Holm over the call, hollow = not. `flagged`:
    pairs ("A vs B") whose protocols differ beyond the compared keys; their labels say so."""
    rows = result.reset_index(drop=True)
    labels = [_forest_label(r, flagged) for _, r in rows.iterrows()]
    # the y labels take the left of the figure: widen it with the longest one (about 0.06 in per 7-pt
    # character) so the plotting area keeps its width and the x label is not cut off
    width = 4.5 + 0.06 * max((len(label) for label in labels), default=0)
    fig, (ax,) = _figure((width, 1.2 + 0.32 * len(rows)))
    for i, r in rows.iterrows():
        y = len(rows) - 1 - i
        resolved = r.get("holm") in ("A > B", "A < B")
        hw = r["half_width"] if r["half_width"] is not None and not pd.isna(r["half_width"]) else 0.0
        ax.errorbar([r["diff"]], [y], xerr=[hw], fmt="o", color="C0" if resolved else "C7", capsize=3,
                    markerfacecolor="C0" if resolved else "white", markersize=6,
                    label="resolved after Holm" if resolved else "not resolved after Holm")
        ax.scatter(r["diffs"], [y + 0.18] * len(r["diffs"]), s=8, color="C1", alpha=0.6, edgecolors="none",
                   label="single seeds")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), labels[::-1], fontsize=7)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("A − B (percentage points)\nbars: 95 % t-interval, not adjusted", fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    _legend_below(fig, [ax], ncol=3)
    family = result.attrs.get("family", len(rows))
    fig.suptitle((title + "\n" if title else "") + f"Holm over the {family} comparison(s) of the call", fontsize=9)
    out = Path(out)
    return _save(fig, [out])
