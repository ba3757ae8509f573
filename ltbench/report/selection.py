"""Selection rules: which epoch of a run a table reports, as objects.

The idea follows DomainBed's model selection (facebookresearch/DomainBed, domainbed/model_selection.py),
where each way of picking a checkpoint is a `SelectionMethod` subclass with a name and a `run_acc` that
reads a run's records. Here a rule names the frame column (`report.collect`) that holds each metric's
value under it, says in one sentence what it selects (for captions), and picks one value per run.

- `last`: the last epoch, the headline number; the only epoch that records the background metrics.
- `best`: the best test epoch, an oracle (selected on the test set, so optimistic).
- `val`: the epoch with the best validation top-1, for runs trained with `val_select` (final.json
  `val_selected`).
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from ltbench.report.labels import BACKGROUND_COLUMNS, METRICS


class SelectionRule:
    """How one number per run and metric is chosen among the run's epochs."""

    name: ClassVar[str]
    text: ClassVar[str]  # the caption's "Selection: ..." sentence
    columns: ClassVar[dict[str, str]]  # metric -> the frame column holding it under this rule

    def column(self, metric: str) -> str | None:
        """The frame column of `metric` under this rule (None: the rule has no value for it)."""
        return self.columns.get(metric)

    def values(self, runs: pd.DataFrame, metric: str) -> pd.Series:
        """One number per run (NaN where a run lacks it); empty when no run records the metric."""
        source = self.column(metric)
        if len(runs) and source in runs:
            return pd.to_numeric(runs[source], errors="coerce")
        return pd.Series(dtype="float64")


class LastEpoch(SelectionRule):
    name = "last"
    text = "last epoch (the headline number)"
    columns = {m: m for m in METRICS}

    def column(self, metric: str) -> str | None:
        # the background metrics (shapes' seen/unseen split) exist for the last epoch only
        return self.columns.get(metric) or BACKGROUND_COLUMNS.get(metric)


class BestTestEpoch(SelectionRule):
    name = "best"
    text = "best test epoch (an oracle: selected on the test set, optimistic)"
    columns = {"top1": "best_top1", "many": "best_many", "medium": "best_medium", "few": "best_few"}


class ValSelected(SelectionRule):
    name = "val"
    text = ("epoch with the best validation top-1 (val_select runs: a seeded balanced half of the test "
            "set selects, the other half is reported; ImageNet-LT: its val list selects)")
    columns = {m: f"val_selected.{m}" for m in METRICS}


RULES: dict[str, SelectionRule] = {rule.name: rule for rule in (LastEpoch(), BestTestEpoch(), ValSelected())}
SELECT_COLUMNS = {name: dict(rule.columns) for name, rule in RULES.items()}  # the plain mapping, by rule name
SELECT_TEXT = {name: rule.text for name, rule in RULES.items()}


def selection_rule(name: str) -> SelectionRule:
    if name not in RULES:
        raise ValueError(f"select must be one of {', '.join(RULES)}, got {name!r}")
    return RULES[name]
