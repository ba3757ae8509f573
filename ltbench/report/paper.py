"""Everything a report knows about the SMCL paper: its row labels, the settings of its tables, where its
reported numbers are (results/paper/*.csv), how a cell finds its paper number (the rows of its ablation
tables are declared by the methods: registry.MethodEntry.paper_ablations), and the caption sentences and
footnotes that cite it.

The paper: Saliency Masked Contrastive Learning for long-tailed recognition (SMCL). Its Table 1 is
top-1 on CIFAR-10/100-LT at imbalance ratios 100/50/10, its Table 2 ImageNet-LT (All/Many/Medium/Few),
its Tables 3-4 ablations (mask location; the contrastive loss on or off), inferred to be on CIFAR-100-LT
r=100 (ABLATION_SETTING).
The numbers are transcribed, as printed, in results/paper/*.csv.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ltbench.grid import repo_dir
from ltbench.report.labels import Warn, console_warn, fmt_ratio

if TYPE_CHECKING:
    from ltbench.report.table import Cell, Column, Row

# the order of rows the paper's own table does not place: its Table 1 rows, Table 2's Balanced Softmax,
# the plain mixing baselines, then the rows of results/paper/table1_extended.csv; other methods follow
ROW_ORDER = ("ERM", "DRW", "LDAM-DRW", "CB Focal", "DRW+Mixup", "DRW+CutMix", "DRW+CMO", "SCL", "SCL-DRW",
             "SMCL", "DRW+SMCL", "Balanced Softmax", "Mixup", "CutMix", "CMO", "BCL", "ConCutMix")

PAPER_FILES = {"table1": "table1_cifar_lt.csv", "table1-extended": "table1_extended.csv",
               "table2": "table2_imagenet_lt.csv",
               "ablations": "ablations.csv"}
TABLE1_SETTINGS = [("cifar100", 100.0), ("cifar100", 50.0), ("cifar100", 10.0),
                   ("cifar10", 100.0), ("cifar10", 50.0), ("cifar10", 10.0)]
ABLATION_SETTING = ("cifar100", 100.0, None)  # the setting the paper's Tables 3-4 are inferred to use

# footnotes on paper numbers (table.NOTES puts them among the others)
PAPER_NOTES = {
    "b": "no paper number",
    "c": "the paper's number is for CIFAR-100-LT r=100, another setting; no gap",
}
TITLES = {
    "table1": "SMCL Table 1: top-1 accuracy (%) on CIFAR-10/100-LT",
    "table1-extended": "Extended Table 1 (SMCL's rows + BCL, ConCutMix): top-1 accuracy (%) on CIFAR-10/100-LT",
    "ablate-masking": "SMCL Table 3 (masking location)",
    "ablate-contrastive": "SMCL Table 4 (contrastive loss)",
}


def table2_title(setting_text: str) -> str:
    return f"SMCL Table 2: top-1 accuracy (%) on {setting_text}, All / Many / Medium / Few"


# ----- row labels --------------------------------------------------------------------------------

def paper_names() -> dict[str, str]:
    """{ltbench method: the paper's row label} for every method the paper (or a cited source) prints: the
    `paper_label` each method file registers (ltbench.registry.register_method)."""
    from ltbench.registry import list_methods

    return {entry.name: entry.paper_label for entry in list_methods() if entry.paper_label}


def paper_label(method: str) -> str:
    """The row label of a method: the paper's name where it has one, else ltbench's."""
    return paper_names().get(method, method)


def method_of_paper(label: str) -> str | None:
    """The ltbench method behind a paper row label (None: a row ltbench does not run)."""
    return {v: k for k, v in paper_names().items()}.get(label)


def method_order(method: str) -> tuple[int, str]:
    """Sort key: methods in the paper's row order (ROW_ORDER), then the others by name."""
    label = paper_names().get(method)
    return (ROW_ORDER.index(label) if label in ROW_ORDER else len(ROW_ORDER), method)


# ----- reported numbers --------------------------------------------------------------------------

def paper_dir() -> Path:
    """$LTBENCH_PAPER_DIR, else results/paper next to the package (source checkout), else ./results/paper."""
    env = os.environ.get("LTBENCH_PAPER_DIR")
    if env:
        return Path(env)
    here = repo_dir("results") / "paper"
    return here if here.is_dir() else Path("results/paper")


def load_paper(which: str, warn: Warn | None = None) -> pd.DataFrame | None:
    """A reported-numbers CSV as strings (as printed); None with a warning if it cannot be read."""
    path = paper_dir() / PAPER_FILES[which]
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        (warn or console_warn)(f"reported numbers unavailable: cannot read {path} ({exc}); "
                               "set LTBENCH_PAPER_DIR to the folder holding the paper CSVs")
        return None


def _to_float(text: str | None) -> float | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _lookup(paper: pd.DataFrame, row_name: str, column: str) -> str | None:
    if column not in paper.columns:
        return None
    hit = paper.loc[paper["method"] == row_name, column]
    return hit.iloc[0] if len(hit) and hit.iloc[0].strip() else None


def is_table1_setting(dataset: str, ratio: float, head: int | None) -> bool:
    return head is None and (dataset, ratio) in TABLE1_SETTINGS


def attach_paper(cell: Cell, row: Row, col: Column, layout: str, t1: pd.DataFrame | None,
                 t2: pd.DataFrame | None, abl: pd.DataFrame | None) -> None:
    """Set the cell's paper number (text as printed, value) or note b (none) / c (another setting)."""
    text = None
    if layout in ("table1", "table1-extended") and t1 is not None:
        text = _lookup(t1, row.label, f"{col.dataset}_r{fmt_ratio(col.ratio)}")
    elif layout == "table2" and t2 is not None:
        text = _lookup(t2, row.label, col.metric if col.metric != "top1" else "all")
    elif layout.startswith("ablate-") and abl is not None and col.metric == "top1" and row.method:
        variant = ablation_variant(layout, row.method, row.vary)
        if variant is not None:
            hit = abl[(abl["ablation"] == layout.removeprefix("ablate-")) & (abl["variant"] == variant)]
            text = hit["accuracy"].iloc[0] if len(hit) else None
            if text and (col.dataset, col.ratio, col.head) != ABLATION_SETTING:
                cell.paper_note = "c"
    elif layout == "grid" and t1 is not None and col.metric == "top1" and not row.vary \
            and is_table1_setting(col.dataset, col.ratio, col.head):
        text = _lookup(t1, row.label, f"{col.dataset}_r{fmt_ratio(col.ratio)}")
    cell.paper_text = text or None
    cell.paper = _to_float(text)
    if cell.paper is None:
        cell.paper_note = "b"


def ablation_variant(layout: str, method: str, vary: dict[str, Any]) -> str | None:
    """The row of results/paper/ablations.csv (its `variant`) a (method, varied values) row of ours stands
    for: what the method's registration declares for the ablation (`MethodEntry.paper_ablations`; e.g.
    DRW+SMCL's mask_locator rows of Table 3, SMCL's and DRW+SMCL's w_sc rows of Table 4)."""
    from ltbench.registry import list_methods

    entry = next((e for e in list_methods() if e.name == method), None)
    rows = entry.paper_ablations.get(layout.removeprefix("ablate-")) if entry is not None else None
    return rows.variant(vary) if rows is not None else None


def paper_caption(layout: str, any_reported_row: bool) -> list[str]:
    """The caption sentences that say where the paper numbers come from."""
    src = {"table1": "results/paper/table1_cifar_lt.csv",
           "table2": "results/paper/table2_imagenet_lt.csv"}
    where = src.get(layout, "results/paper/ablations.csv" if layout.startswith("ablate-")
                    else "results/paper/table1_cifar_lt.csv")
    reported = " Rows marked reported are cited numbers that ltbench does not run." if any_reported_row else ""
    parts = [f"paper = the number the SMCL paper reports ({where}); Δ = ours − paper.{reported}"]
    if layout == "table1-extended":
        parts.append("BCL and ConCutMix rows: not from SMCL's paper but results/paper/table1_extended.csv; "
                     "ConCutMix's are its README's best test epoch of one run (an oracle selection), BCL's "
                     "a third-party listing not checked against the BCL paper.")
    return parts
