"""Many / Medium / Few shot groups from training counts under a named rule (each rule cites its source)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

# Each rule maps a training count n to "many", "medium" or "few".
_RULES: dict[str, Callable[[int], str]] = {
    # classifier-balancing / BCL / CCM / CMO-CIFAR: many > 100, 20 <= medium <= 100, few < 20
    "shots-100-20": lambda n: "many" if n > 100 else ("few" if n < 20 else "medium"),
    # CMO imagenet_train.py: many > 100, 20 < medium <= 100, few <= 20 (SMCL Table 2)
    "shots-cmo-imagenet": lambda n: "many" if n > 100 else ("few" if n <= 20 else "medium"),
    # OLTR utils.py at HEAD: many >= 100, 20 < medium < 100, few <= 20
    "shots-oltr": lambda n: "many" if n >= 100 else ("few" if n <= 20 else "medium"),
}
SHOT_RULES = tuple(_RULES)
GROUPS = ("many", "medium", "few")


def shot_groups(train_counts: Sequence[int], rule: str = "shots-100-20") -> dict[str, list[int]]:
    """Class ids per group, e.g. {"many": [0, 1], "medium": [2], "few": []}."""
    if rule not in _RULES:
        raise ValueError(f"unknown shot rule {rule!r}; choose from {', '.join(SHOT_RULES)}")
    groups: dict[str, list[int]] = {g: [] for g in GROUPS}
    for cls, n in enumerate(train_counts):
        groups[_RULES[rule](int(n))].append(cls)
    return groups
