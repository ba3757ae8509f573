"""The vocabulary every part of a report shares: metric names and labels, setting names, footnote marks,
number formats, and the warning hook. No pandas, no torch: anything may import it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Warn = Callable[[str], None]

DATASET_LABELS = {"cifar100": "CIFAR-100-LT", "cifar10": "CIFAR-10-LT", "imagenet-lt": "ImageNet-LT",
                  "fashion-mnist": "Fashion-MNIST-LT", "shapes": "shapes-LT"}
METRICS = ("top1", "many", "medium", "few")
METRIC_LABELS = {"top1": "All", "many": "Many", "medium": "Med", "few": "Few", "seen": "Seen", "unseen": "Unseen",
                 "gap": "Gap", "few_gap": "Few gap",
                 "bg_gap_tail": "BG gap (tail)"}
# shapes' background metrics (final.json `seen_split`): test images whose (class, background) pair was seen
# in training vs not, and the gap between them ("background reliance"); last epoch only
LOWER_IS_BETTER = {"gap", "few_gap", "bg_gap_tail"}
BACKGROUND_COLUMNS = {"seen": "seen_split.seen.top1", "unseen": "seen_split.unseen.top1",
                      "gap": "seen_split.gap.top1", "few_gap": "seen_split.gap.few", "bg_gap_tail": "bg_gap_tail"}
# the old seen-minus-unseen gap compares head-heavy seen pairs with tail-only unseen pairs (head vs tail,
# not background); tables show the tail-only, same-classes metric in its place (old records: note e)
OLD_GAPS = {"gap": "bg_gap_tail", "few_gap": "bg_gap_tail"}
INTERVAL_METRICS = {"bg_gap_tail"}  # shown with a 95 % t-interval over seeds instead of the std
SHOT_RULE_TEXT = {"shots-100-20": "Many > 100, Medium 20-100, Few < 20 training images",
                  "shots-cmo-imagenet": "Many > 100, Medium 21-100, Few <= 20 training images",
                  "shots-oltr": "Many >= 100, Medium 21-99, Few <= 20 training images"}

SUPERSCRIPT = {"a": "ᵃ", "b": "ᵇ", "c": "ᶜ", "d": "ᵈ", "e": "ᵉ"}  # footnote letters (table.NOTES)
NUMBERS = "¹²³⁴⁵⁶⁷⁸⁹"  # protocol notes on row labels
DASH = "—"


def console_warn(msg: str) -> None:
    """The default warning hook: one yellow line on stderr."""
    from rich.console import Console

    Console(stderr=True).print(f"[yellow]warning:[/yellow] {msg}", highlight=False, soft_wrap=True)


def fmt_ratio(ratio: float) -> str:
    ratio = float(ratio)
    return str(int(ratio)) if ratio.is_integer() else str(ratio)


def setting_id(dataset: str, ratio: float, head: int | None = None) -> str:
    """Same string as RunSpec.setting, e.g. cifar100-r100 or fashion-mnist-h500-r100."""
    return f"{dataset}{f'-h{head}' if head else ''}-r{fmt_ratio(ratio)}"


def setting_label(dataset: str, ratio: float, head: int | None = None) -> str:
    head_txt = f" h{head}" if head else ""
    return f"{DATASET_LABELS.get(dataset, dataset)}{head_txt} r{fmt_ratio(ratio)}"


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def vary_row_key(method: str, combo: dict[str, Any]) -> str:
    """A varied grid row's key: `drw+smcl|mask_locator=center|saliency_pad=include`."""
    return method + "".join(f"|{k}={fmt_value(v)}" for k, v in combo.items())
