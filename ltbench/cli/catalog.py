"""What is there to run on: list (methods, data sets, presets), data (fetch, cache) and splits."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ltbench.cli.app import console, user_errors
from ltbench.errors import LtbenchError

# ----- list --------------------------------------------------------------------------------------

def list_methods_cmd() -> None:
    """Registered methods with a one-line description."""
    from ltbench.registry import list_methods

    table = Table("method", "description")
    for entry in list_methods():
        table.add_row(entry.name, entry.description)
    console.print(table)


def list_datasets_cmd() -> None:
    """Data sets, their size and where they come from."""
    from ltbench.data import DATASETS

    table = Table("dataset", "classes", "per class", "image", "description")
    for info in DATASETS.values():
        table.add_row(info.name, str(info.num_classes), str(info.max_per_class),
                      f"{info.channels}x{info.size}x{info.size}", info.description)
    console.print(table)


def list_presets_cmd() -> None:
    """Training presets per data-set family."""
    from ltbench.config import PRESETS, TrainSettings

    table = Table("preset", "family", "settings (over the defaults)")
    table.add_row("(defaults)", "", json.dumps({k: v for k, v in TrainSettings().__dict__.items()}))
    for name, fams in PRESETS.items():
        for fam, values in fams.items():
            table.add_row(name, fam, json.dumps(values))
    console.print(table)


# ----- data --------------------------------------------------------------------------------------

def data_fetch(
    name: str = typer.Argument(..., help="cifar10, cifar100 or fashion-mnist."),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
) -> None:
    """Download a data set with torchvision into the data dir."""
    with user_errors():
        from ltbench.data.datasets import default_data_dir, get_dataset

        info = get_dataset(name)
        if name == "shapes":
            raise LtbenchError("shapes is generated on the fly; nothing to fetch")
        root = data_dir or default_data_dir()
        info.load(root, True)
        console.print(f"{name} is ready under {root}", highlight=False)


def data_cache(
    name: str = typer.Argument(..., help="A file-backed data set (imagenet-lt)."),
    cache_dir: Path = typer.Option(..., "--cache-dir", help="Where to write the uint8 copies."),
    image_size: int = typer.Option(224, "--image-size", help="View size of the runs that will read it."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="The image root (ILSVRC-2012)."),
    split_dir: Path | None = typer.Option(None, "--split-dir", help="The split lists."),
    workers: int = typer.Option(8, "--workers", help="Decode processes."),
    val: bool = typer.Option(False, "--val", help="Also cache the val list (for val_select runs)."),
) -> None:
    """Decode a file-backed data set once into pre-resized uint8 files (train at base size, test cropped)."""
    with user_errors():
        from ltbench.data.datasets import build_bundle, get_dataset
        from ltbench.sources import base_size, build_cache

        info = get_dataset(name)
        if info.bundle is None:
            raise LtbenchError(f"{name} is held in memory; only file-backed data sets (imagenet-lt) are cached")
        bundle = build_bundle(name, info.fixed_ratio or 1, data_dir=data_dir, split_dir=split_dir, with_val=val)
        if bundle.files is None:  # a file-backed data set's bundle always lists its files (datasets.build_bundle)
            raise LtbenchError(f"{name}: the bundle lists no image files to cache")
        base = base_size(image_size)
        for split, files in bundle.files.items():
            out = base if split == "train" else image_size
            path = build_cache(files, base, out, cache_dir, workers)
            console.print(f"{split}: {len(files)} images -> {path}", highlight=False)


# ----- splits ------------------------------------------------------------------------------------

def splits(
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Data set whose split to print."),
    ratio: str = typer.Option("100", "--ratio", "-r"),
    profile: str = typer.Option("exp", "--profile", help="exp or step."),
    max_per_class: int | None = typer.Option(None, "--max-per-class", help="Head size (default: the full class)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    labels: Path | None = typer.Option(None, "--labels", help="A .npy label array to cut a subset from."),
    seed: int = typer.Option(0, "--seed", help="Subset seed (data_seed) for --labels."),
    out: Path | None = typer.Option(None, "--out", help="Write the subset indices (.npy) for --labels."),
    split_dir: Path | None = typer.Option(None, "--split-dir", help="Fixed splits (imagenet-lt): the folder "
                                          "of the list files or train_class_counts.json."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="For the default --split-dir."),
    class_order: int = typer.Option(0, "--class-order", help="Which classes are head and tail (0: identity; "
                                    "the runs' class_order setting)."),
) -> None:
    """Per-class counts, totals and shot groups of a long-tailed split (no images needed)."""
    with user_errors():
        from ltbench.splits import export_indices, split_summary

        if labels is not None:
            n = export_indices(labels, ratio, seed, profile, max_per_class, out)
            console.print(f"{n} indices written to {out}", highlight=False)
            return
        if dataset is None:
            raise LtbenchError("splits needs --dataset (or --labels FILE.npy --out FILE.npy)")
        summary = split_summary(dataset, ratio, profile, max_per_class, split_dir=split_dir, data_dir=data_dir,
                                class_order=class_order)
        if as_json:
            typer.echo(json.dumps(summary, indent=1))
            return
        counts = summary["counts"]
        console.print(f"{summary['dataset']} ratio {summary['ratio']}: {summary['total']} images, "
                      f"{len(counts)} classes, {max(counts)} .. {min(counts)} per class", highlight=False)
        table = Table("rule", "many", "medium", "few")
        for rule, sizes in summary["group_sizes"].items():
            table.add_row(rule, *(str(sizes[g]) for g in ("many", "medium", "few")))
        console.print(table)
        console.print("counts: " + ", ".join(map(str, summary["counts"])), highlight=False)
        if class_order:
            console.print(f"class order {class_order}, head to tail: " + ", ".join(map(str, summary["permutation"])),
                          highlight=False)
