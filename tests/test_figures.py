"""Figures with uncertainty: per-seed dots and 95 % intervals, categories not joined, legends off the axes,
class names, the paper's numbers of another setting on an axis of their own, and the forest plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from ltbench.grid import load_grid
from ltbench.report import build_table, collect, figures
from tests.records import fake_ablation

HERE = Path(__file__).parent
RUNS = HERE / "fixtures" / "runs"
REPO = HERE.parent


@pytest.fixture
def drawn(monkeypatch):
    """Keep the Figure objects the plotting functions save, to inspect what they drew."""
    figs = []
    real = figures._save

    def keep(fig, paths):
        figs.append(fig)
        return real(fig, paths)

    monkeypatch.setattr(figures, "_save", keep)
    return figs


def test_class_names_match_the_data_sets():
    from ltbench.data.shapes import SHAPE_NAMES

    assert figures.SHAPES_NAMES == SHAPE_NAMES
    assert figures.class_name("fashion-mnist", 6) == "shirt" and figures.class_name("cifar100", 7) == "7"


def test_per_class_intervals_against_a_hand_computation(tmp_path, drawn):
    frame = collect(RUNS, warn=lambda m: None, include_lists=True)
    (path,), data = figures.plot_per_class(frame, tmp_path / "pc.png")
    assert path.stat().st_size > 1000
    erm = frame[(frame["method"] == "erm") & (frame["setting"] == "cifar100-r100")]
    accs = [a[5] for a in erm["per_class_acc"]]
    mean = sum(accs) / 3
    half = 4.303 * math.sqrt(sum((a - mean) ** 2 for a in accs) / 2) / math.sqrt(3)
    got = data[(data["method"] == "erm") & (data["setting"] == "cifar100-r100") & (data["class"] == 5)].iloc[0]
    assert got["acc"] == pytest.approx(mean) and got["half95"] == pytest.approx(half) and got["n"] == 3
    fig = drawn[0]
    assert fig.legends and not any(ax.get_legend() for ax in fig.axes)  # the legend sits below the axes
    for ax in fig.axes:  # points per class, no line through the classes
        assert all(line.get_linestyle() in ("None", "none", "") or len(line.get_xdata()) < 2
                   for line in ax.get_lines() if line.get_linestyle() != "--")


def test_named_classes_on_a_small_data_set(tmp_path, drawn):
    frame = pd.DataFrame({"setting": ["fm"] * 2, "dataset": ["fashion-mnist"] * 2, "method": ["erm"] * 2,
                          "seed": [0, 1], "ratio": [100.0] * 2,
                          "per_class_acc": [[90.0 - i for i in range(10)], [80.0 - i for i in range(10)]],
                          "train_class_counts": [[500, 299, 179, 107, 64, 38, 23, 13, 8, 5]] * 2})
    figures.plot_per_class(frame, tmp_path / "fm.png")
    ticks = [t.get_text() for t in drawn[0].axes[0].get_xticklabels()]
    assert ticks[0] == "T-shirt/top (500)" and ticks[6] == "shirt (23)"


def test_ablation_figure_is_not_joined_and_keeps_the_paper_apart(tmp_path, drawn):
    fake_ablation(tmp_path / "runs")
    grid = load_grid(REPO / "experiments" / "ablate-masking.yaml")
    t = build_table(collect(tmp_path / "runs", warn=lambda m: None), grid, warn=lambda m: None)
    paths, data = figures.plot_ablation(t, tmp_path / "abl")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    sal = data[(data["metric"] == "top1") & (data["x"] == "saliency")].iloc[0]
    assert sal["half95"] == pytest.approx(12.706 * math.sqrt(0.5) / math.sqrt(2))  # 51, 52: t(0.975, 1)
    fig = drawn[0]
    assert fig.legends and not any(ax.get_legend() for ax in fig.axes)
    for ax in fig.axes:
        assert all(line.get_linestyle() in ("None", "none", "") for line in ax.get_lines())
    # our setting is the paper's (CIFAR-100-LT r100): stars on our top-1 axis, no separate panel
    assert not any(ax.get_title().startswith("paper") for ax in fig.axes)


def test_ablation_on_another_setting_puts_the_paper_on_its_own_axis(tmp_path, drawn):
    root = tmp_path / "runs"
    fake_ablation(root)
    for spec_path in root.rglob("spec.json"):  # the same runs, as if on CIFAR-100-LT r50
        spec = json.loads(spec_path.read_text())
        spec["ratio"] = 50
        final = json.loads((spec_path.parent / "final.json").read_text())
        from ltbench.spec_hash import spec_dict_hash

        digest = spec_dict_hash(spec)
        new = root / "cifar100-r50" / spec["method"] / f"s{spec['seed']}-{digest}"
        new.mkdir(parents=True)
        (new / "spec.json").write_text(json.dumps(spec))
        (new / "final.json").write_text(json.dumps({**final, "spec_hash": digest}))
    grid = load_grid(REPO / "experiments" / "ablate-masking.yaml")
    grid = type(grid)(**{**grid.__dict__, "ratios": (50.0,)})
    t = build_table(collect(root, warn=lambda m: None), grid, warn=lambda m: None)
    figures.plot_ablation(t, tmp_path / "abl50")
    titles = [ax.get_title() for ax in drawn[0].axes]
    assert titles[-1].startswith("paper, CIFAR-100-LT r=100")
    ours = drawn[0].axes[:-1]
    assert not any("paper" in (h.get_label() or "") for ax in ours for h in ax.collections)


def test_forest_plot_marks_holm_and_protocol(tmp_path, drawn):
    result = pd.DataFrame([
        {"a_arm": "smcl", "b_arm": "erm", "setting": "s", "metric": "top1", "diff": -2.0, "half_width": 1.0,
         "diffs": [-1.5, -2.5], "holm": "A < B"},
        {"a_arm": "drw", "b_arm": "erm", "setting": "s", "metric": "top1", "diff": 0.5, "half_width": None,
         "diffs": [0.5], "holm": "no test"}])
    result.attrs["family"] = 1
    (path,) = figures.plot_forest(result, tmp_path / "f.png", flagged=["smcl vs erm"])
    assert path.stat().st_size > 1000
    labels = [t.get_text() for t in drawn[0].axes[0].get_yticklabels()]
    assert labels == ["drw − erm · s · top1", "smcl − erm [protocol differs] · s · top1"]


@pytest.mark.parametrize(("a", "b", "label"), [
    ("drw", "erm", "drw − erm"),
    ("scl|budget=steps", "erm|budget=epochs", "scl|budget=steps − erm|budget=epochs"),
    ("smcl|budget=steps", "smcl|budget=epochs", "budget=steps − budget=epochs (smcl)"),
    ("drw+smcl|mask_locator=saliency|saliency_pad=include", "drw+smcl|mask_locator=random|saliency_pad=include",
     "mask_locator=saliency − mask_locator=random (drw+smcl, saliency_pad=include)"),
    ("smcl|mask_prob=0.5|target_sampler=instance", "smcl|mask_prob=0.2|target_sampler=class-level",
     "mask_prob=0.5|target_sampler=instance − mask_prob=0.2|target_sampler=class-level (smcl)"),
])
def test_forest_labels_name_what_differs_and_put_the_shared_part_aside(tmp_path, drawn, a, b, label):
    result = pd.DataFrame([{"a_arm": a, "b_arm": b, "setting": "s", "metric": "top1", "diff": 1.0,
                            "half_width": 0.5, "diffs": [0.6, 1.4], "holm": "A > B"}])
    figures.plot_forest(result, tmp_path / "f.png", flagged=[f"{a} vs {b}"])
    (text,) = [t.get_text() for t in drawn[0].axes[0].get_yticklabels()]
    assert text == f"{label} [protocol differs] · s · top1"


def test_forest_plot_keeps_its_text_inside_the_figure_whatever_the_label_length(tmp_path, drawn):
    """Long arm names (`smcl|budget=steps`) once pushed the x label past the right edge of the PNG."""
    arm = "smcl|budget=steps|target_sampler=instance|target_in_ce=false"
    result = pd.DataFrame([{"a_arm": arm, "b_arm": arm.replace("instance", "class-level"),
                            "setting": "fashion-mnist-h500-r100", "metric": "top1", "diff": 1.0,
                            "half_width": 0.5, "diffs": [0.6, 1.4], "holm": "A > B"}])
    figures.plot_forest(result, tmp_path / "f.png", flagged=[])
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = drawn[0]
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # the constrained layout as saved
    frame = fig.bbox
    texts = [fig.axes[0].xaxis.label, *fig.axes[0].get_yticklabels()]
    for text in texts:
        box = text.get_window_extent(renderer)
        assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1, (text.get_text(), box, frame)


def test_class_orders_get_panels_of_their_own(tmp_path, drawn):
    frame = pd.DataFrame({"setting": ["fm"] * 2, "dataset": ["fashion-mnist"] * 2, "method": ["erm"] * 2,
                          "seed": [0, 0], "ratio": [100.0] * 2, "protocol.class_order": [0, 1],
                          "per_class_acc": [[90.0] * 3, [50.0] * 3],
                          "train_class_counts": [[100, 10, 1], [1, 10, 100]]})
    _, data = figures.plot_per_class(frame, tmp_path / "orders.png")
    assert sorted(set(data["setting"])) == ["fm · class order 0", "fm · class order 1"]
    first = data[(data["setting"] == "fm · class order 1") & (data["class"] == 0)].iloc[0]
    assert (first["acc"], first["train_count"]) == (50.0, 1)  # not averaged with order 0's 90 % at 100 images
    assert [ax.get_title() for ax in drawn[0].axes] == ["fm · class order 0", "fm · class order 1"]
