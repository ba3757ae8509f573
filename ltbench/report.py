"""Run directories -> one tidy DataFrame -> tables (Markdown, LaTeX, CSV, terminal) and figures.

Nothing here imports torch: `collect` reads spec.json / final.json with the standard library, grids
are read with `grid.load_grid` (no expansion), and matplotlib is imported only to draw.

    frame = collect(results_dir)                 # one row per finished run
    table = build_table(frame, grid, select="last")
    write_table(table, out_dir)                  # <name>.md, <name>.tex, <name>.csv

Numbers stay numeric until rendering; the CSV is long and numeric (one row per table cell).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ltbench import fingerprint
from ltbench.fingerprint import flatten_protocol
from ltbench.grid import Grid, repo_dir
from ltbench.protocol import protocol_of
from ltbench.results import jsonable, load_final, read_json, read_jsonl, run_state, spec_dict_hash, spec_with_defaults
from ltbench.stats import t975

Warn = Callable[[str], None]

# ----- names -------------------------------------------------------------------------------------

# ltbench method -> the name the SMCL paper prints (its row label)
PAPER_NAMES: dict[str, str] = {
    "erm": "ERM", "drw": "DRW", "ldam-drw": "LDAM-DRW", "cb-focal": "CB Focal",
    "drw+mixup": "DRW+Mixup", "drw+cutmix": "DRW+CutMix", "drw+cmo": "DRW+CMO", "scl": "SCL",
    "scl+drw": "SCL-DRW", "smcl": "SMCL", "drw+smcl": "DRW+SMCL", "balanced-softmax": "Balanced Softmax",
    "mixup": "Mixup", "cutmix": "CutMix", "cmo": "CMO", "bcl": "BCL", "concutmix": "ConCutMix",
}
METHOD_OF_PAPER = {v: k for k, v in PAPER_NAMES.items()}
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
SELECT_COLUMNS = {"last": {m: m for m in METRICS},
                  "best": {"top1": "best_top1", "many": "best_many", "medium": "best_medium",
                           "few": "best_few"},
                  # val_select runs: the test numbers of the epoch with the best val top-1 (final.json val_selected)
                  "val": {m: f"val_selected.{m}" for m in METRICS}}
SELECT_TEXT = {"last": "last epoch (the headline number)",
               "best": "best test epoch (an oracle: selected on the test set, optimistic)",
               "val": ("epoch with the best validation top-1 (val_select runs: a seeded balanced half of the test "
                       "set selects, the other half is reported; ImageNet-LT: its val list selects)")}
SHOT_RULE_TEXT = {"shots-100-20": "Many > 100, Medium 20-100, Few < 20 training images",
                  "shots-cmo-imagenet": "Many > 100, Medium 21-100, Few <= 20 training images",
                  "shots-oltr": "Many >= 100, Medium 21-99, Few <= 20 training images"}
PAPER_FILES = {"table1": "table1_cifar_lt.csv", "table1-extended": "table1_extended.csv",
               "table2": "table2_imagenet_lt.csv",
               "ablations": "ablations.csv"}
TABLE1_SETTINGS = [("cifar100", 100.0), ("cifar100", 50.0), ("cifar100", 10.0),
                   ("cifar10", 100.0), ("cifar10", 50.0), ("cifar10", 10.0)]
PAPER_W_SC = 0.3  # the contrastive weight of the paper's "with contrastive" rows (spec §4.10 row K)
ABLATION_SETTING = ("cifar100", 100.0, None)  # the setting the paper's Tables 3-4 are inferred to use

NOTES = {
    "a": "not run",
    "b": "no paper number",
    "c": "the paper's number is for CIFAR-100-LT r=100, another setting; no gap",
    "d": "empty shot group (no class of this setting falls in it)",
    "e": "not recorded: these runs predate the tail-only background gap (bg_gap_tail)",
}
SUPERSCRIPT = {"a": "ᵃ", "b": "ᵇ", "c": "ᶜ", "d": "ᵈ", "e": "ᵉ"}
NUMBERS = "¹²³⁴⁵⁶⁷⁸⁹"  # protocol notes on row labels
DASH = "—"


def _console_warn(msg: str) -> None:
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


# ----- collecting runs ---------------------------------------------------------------------------

def config_signature(spec: dict) -> str:
    """Hash of a spec without its seed: runs of one configuration share it."""
    rest = {k: v for k, v in spec.items() if k != "seed"}
    text = json.dumps(jsonable(rest), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _cell_value(v: Any) -> Any:
    return tuple(_cell_value(x) for x in v) if isinstance(v, list) else v


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif not isinstance(obj, list):
        out[prefix] = obj


def find_run_dirs(results_dir: Path) -> list[Path]:
    """Every directory under results_dir holding a spec.json or a final.json (hidden dirs skipped)."""
    found = []
    for root, dirs, files in os.walk(results_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if "spec.json" in files or "final.json" in files:
            found.append(Path(root))
    return sorted(found)


_LEAD = ["method", "dataset", "ratio", "max_per_class", "seed", "setting", "preset", "top1", "many",
         "medium", "few", "best_top1", "best_epoch", "best_many", "best_medium", "best_few", "shot_rule",
         "epochs", "run_id"]
_SPEC_REQUIRED = ("method", "dataset", "ratio", "seed", "train", "hparams")
_LIST_KEYS = ("per_class_acc", "train_class_counts")


def _check_hash(run_dir: Path, spec: dict[str, Any], final: dict[str, Any]) -> None:
    """A spec.json edited after the run (or a record moved into another run's directory) is not this run."""
    try:
        actual = spec_dict_hash(spec)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"{run_dir / 'spec.json'} cannot be hashed ({exc})") from None
    recorded = final.get("spec_hash")
    if recorded is not None and recorded != actual:
        raise ValueError(f"{run_dir / 'spec.json'} does not match the hash its final.json records "
                         f"({actual} != {recorded}): edited after the run?")
    suffix = run_dir.name.rsplit("-", 1)[-1]
    if run_dir.name.startswith("s") and len(suffix) == 12 and suffix != actual:
        raise ValueError(f"{run_dir} holds a spec whose hash is {actual}, not the {suffix} its name says")


def read_run(run_dir: Path, results_dir: Path | None = None, include_lists: bool = False) -> dict[str, Any]:
    """One tidy row for a finished run (ValueError with the path when something is unreadable)."""
    run_dir = Path(run_dir)
    final = load_final(run_dir)
    if final is None:
        raise ValueError(f"{run_dir / 'final.json'} does not exist")
    spec_path = run_dir / "spec.json"
    try:
        spec = read_json(spec_path)
    except FileNotFoundError:
        raise ValueError(f"{spec_path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{spec_path} is not valid JSON ({exc})") from None
    if not isinstance(spec, dict) or any(k not in spec for k in _SPEC_REQUIRED) \
            or not isinstance(spec["train"], dict) or not isinstance(spec["hparams"], dict):
        raise ValueError(f"{spec_path} is not an ltbench spec (needs {', '.join(_SPEC_REQUIRED)})")
    try:
        ratio = float(spec["ratio"])
        seed = int(spec["seed"])
    except (TypeError, ValueError):
        raise ValueError(f"{spec_path} has a bad ratio or seed") from None
    _check_hash(run_dir, spec, final)
    spec = spec_with_defaults(spec)  # an older record ran with the later fields' defaults: say so
    head = spec.get("max_per_class")
    try:
        rel = run_dir.resolve().relative_to(Path(results_dir).resolve()).as_posix() if results_dir else None
    except ValueError:
        rel = None
    row: dict[str, Any] = {
        "method": spec["method"], "dataset": spec["dataset"], "ratio": ratio, "max_per_class": head,
        "seed": seed, "setting": setting_id(spec["dataset"], ratio, head), "preset": spec.get("preset"),
        "epochs": spec["train"].get("epochs", final.get("epochs")),
        "run_id": rel or final.get("run_id") or run_dir.name, "run_dir": str(run_dir),
        "config": config_signature(spec),
    }
    keys = []  # the spec fields this run records (older runs may lack fields added later)
    for k, v in spec.items():
        if k not in ("method", "dataset", "ratio", "max_per_class", "seed", "preset", "train", "hparams"):
            row[k] = _cell_value(v)
            keys.append(k)
    for k, v in spec["hparams"].items():
        row[f"hp.{k}"] = _cell_value(v)
        keys.append(f"hp.{k}")
    for k, v in spec["train"].items():
        row[f"train.{k}"] = _cell_value(v)
        keys.append(f"train.{k}")
    row["spec_keys"] = tuple(sorted(keys))
    try:  # the protocol fingerprint (None: an older record cannot tell), as protocol.<field> columns
        row.update(flatten_protocol(protocol_of(final, spec)))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"{run_dir / 'final.json'}: cannot derive its protocol ({exc})") from None
    flat: dict[str, Any] = {}
    _flatten("", {k: v for k, v in final.items() if k not in _LIST_KEYS}, flat)
    for k, v in flat.items():
        row.setdefault(k, v)
    for k in ("best_many", "best_medium", "best_few"):
        row.setdefault(k, None)
    best_epoch = final.get("best_epoch")
    if best_epoch is not None and (run_dir / "metrics.jsonl").exists():
        for line in read_jsonl(run_dir / "metrics.jsonl"):
            if line.get("epoch") == best_epoch:
                for g in ("many", "medium", "few"):
                    row[f"best_{g}"] = line.get(g)
    if include_lists:
        for k in _LIST_KEYS:
            row[k] = final.get(k)
    return row


def collect(results_dir: Path, warn: Warn | None = None, run_dirs: Iterable[Path] | None = None,
            include_lists: bool = False) -> pd.DataFrame:
    """One row per finished run under results_dir (or in run_dirs); damaged runs: skipped with a warning."""
    warn = warn or _console_warn
    results_dir = Path(results_dir)
    dirs = list(run_dirs) if run_dirs is not None else find_run_dirs(results_dir)
    rows = []
    for run_dir in dirs:
        if run_dirs is None and not (Path(run_dir) / "final.json").exists():
            continue  # unfinished: `ltbench status` reports these
        try:
            rows.append(read_run(run_dir, results_dir, include_lists))
        except ValueError as exc:
            warn(f"skipping a run: {exc}")
    return tidy_frame(rows)


def tidy_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in _LEAD})
    df = pd.DataFrame(rows)
    for col in _LEAD:
        if col not in df.columns:
            df[col] = None
    rest = sorted(c for c in df.columns if c not in _LEAD)
    hp = [c for c in rest if c.startswith("hp.")]
    tr = [c for c in rest if c.startswith("train.")]
    other = [c for c in rest if c not in hp and c not in tr]
    df = df[_LEAD + hp + tr + other]
    for col in ("top1", "many", "medium", "few", "best_top1", "best_many", "best_medium", "best_few"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["max_per_class"] = pd.array([None if _isna(v) else int(v) for v in df["max_per_class"]], dtype="Int64")
    df["seed"] = df["seed"].astype("int64")
    df["ratio"] = df["ratio"].astype("float64")
    return df.sort_values(["setting", "method", "seed", "run_id"], kind="stable").reset_index(drop=True)


def _isna(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float) and math.isnan(v)


def aggregate(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str] = ("top1",)) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and n (non-null runs) of each metric over the rows of each group."""
    cols = {}
    grouped = df.groupby(list(by), dropna=False, sort=True)
    for m in metrics:
        agg = grouped[m].agg(["mean", "std", "count"])
        cols[f"{m}_mean"], cols[f"{m}_std"], cols[f"{m}_n"] = agg["mean"], agg["std"], agg["count"]
    return pd.DataFrame(cols).reset_index()


# ----- which runs belong to a grid ---------------------------------------------------------------

def _norm(v: Any) -> Any:
    if _isna(v):
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    if hasattr(v, "item"):  # numpy scalar
        return _norm(v.item())
    return v


def value_column(df: pd.DataFrame, key: str) -> str | None:
    for col in (f"hp.{key}", f"train.{key}", key):
        if col in df.columns:
            return col
    return None


def _matches(df: pd.DataFrame, key: str, allowed: Sequence[Any]) -> pd.Series:
    col = value_column(df, key)
    if col is None:
        return pd.Series(False, index=df.index)
    want = {_norm(v) for v in allowed}
    return df[col].map(lambda v: _norm(v) in want)


def select_runs(df: pd.DataFrame, grid: Grid, methods: Sequence[str] | None = None,
                settings: Sequence[tuple[str, float, int | None]] | None = None,
                warn: Warn | None = None, expected_ids: Collection[str] | None = None) -> pd.DataFrame:
    """Rows of `df` that belong to the grid (torch-free: matched on spec fields, not on run ids).

    A run belongs if its method, setting, seed and preset are in the grid and every override / varied
    value matches. When one cell holds runs of several configurations (e.g. a manual run with another
    learning rate), the configuration that holds the grid's own runs is kept (`expected_ids`: the run ids
    the grid expands to, e.g. `grid_run_ids`), else the one with the most runs; the others are named in
    a warning. Without `expected_ids`, a hyperparameter the grid leaves at its default cannot tell two
    configurations apart (say mask_locator=saliency, the default, from another grid's random).
    Two runs have the same configuration when every spec field that both record is equal (a field
    added to ltbench later, which older spec.json files lack, does not split a cell).
    """
    warn = warn or _console_warn
    if df.empty:
        return df
    methods = list(grid.methods if methods is None else methods)
    settings = list(grid.settings() if settings is None else settings)
    keys = {(d, float(r), None if h is None else int(h)) for d, r, h in settings}
    heads = [None if _isna(h) else int(h) for h in df["max_per_class"]]
    where = zip(df["dataset"], df["ratio"], heads, strict=True)
    mask = pd.Series([(d, float(r), h) in keys for d, r, h in where], index=df.index)
    mask &= df["method"].isin(methods) & df["seed"].isin(list(grid.seeds)) & (df["preset"] == grid.preset)
    for key, value in grid.overrides.items():
        mask &= _matches(df, key, [value])
    for key, values in grid.vary.items():
        mask &= _matches(df, key, values)
    sel = df[mask]
    if sel.empty:
        return sel
    expected = set(expected_ids or ())
    cell_keys = ["method", "setting"] + [value_column(sel, k) for k in grid.vary]
    keep = []
    for _, cell in sel.groupby(cell_keys, dropna=False, sort=True):
        groups = _config_groups(cell)
        if len(groups) > 1:
            groups.sort(key=lambda idx: (-sum(r in expected for r in cell.loc[idx, "run_id"]), -len(idx),
                                         min(cell.loc[idx, "run_id"])))
            ref = cell.loc[groups[0][0]]
            for other in groups[1:]:
                row = cell.loc[other[0]]
                warn(f"{ref['setting']} {ref['method']}: ignoring {len(other)} run(s) of another "
                     f"configuration ({_spec_diff(ref, row)}); e.g. {row['run_id']}")
            cell = cell.loc[groups[0]]
        keep.append(cell)
    return pd.concat(keep).sort_values(["setting", "method", "seed", "run_id"], kind="stable")


def _compatible(a: pd.Series, b: pd.Series) -> bool:
    shared = set(a["spec_keys"]) & set(b["spec_keys"])
    return all(_norm(a[c]) == _norm(b[c]) for c in shared)


def _config_groups(cell: pd.DataFrame) -> list[list]:
    """Runs of a cell grouped by configuration (each run joins the first group it agrees with)."""
    groups: list[list] = []
    for idx, run in cell.iterrows():
        for group in groups:
            if all(_compatible(run, cell.loc[j]) for j in group):
                group.append(idx)
                break
        else:
            groups.append([idx])
    return groups


def _spec_diff(a: pd.Series, b: pd.Series, limit: int = 3) -> str:
    cols = sorted(set(a["spec_keys"]) & set(b["spec_keys"]))
    diffs = [f"{c} {fmt_value(b[c])} vs {fmt_value(a[c])}" for c in cols if _norm(a[c]) != _norm(b[c])]
    if not diffs:
        return "same settings, other spec fields"
    more = f", +{len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


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
        (warn or _console_warn)(f"reported numbers unavailable: cannot read {path} ({exc}); "
                                "set LTBENCH_PAPER_DIR to the folder holding the paper CSVs")
        return None


def _to_float(text: str | None) -> float | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


# ----- table model -------------------------------------------------------------------------------

@dataclass
class Column:
    key: str
    label: str
    dataset: str
    ratio: float
    head: int | None
    metric: str  # top1 / many / medium / few


@dataclass
class Row:
    key: str
    label: str  # the paper's name, or ours
    method: str | None  # None: a reported-only row
    vary: dict[str, Any] = field(default_factory=dict)
    mark: str = ""  # a numbered protocol note (TableResult.protocol_notes)


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None
    n: int = 0
    runs: int = 0  # runs in the cell (n counts those with a value for this metric)
    paper: float | None = None
    paper_text: str | None = None
    gap: float | None = None
    note: str | None = None  # footnote on ours
    paper_note: str | None = None  # footnote on the paper number
    best: bool = False
    half95: float | None = None  # INTERVAL_METRICS: 95 % t half-width over seeds
    frame_index: list = field(default_factory=list)  # the cell's runs (TableResult.frame index)
    badge: str | None = None  # opt-in (`table --badges`): ltbench.badges
    cost: Any = None  # opt-in (`table --cost`): ltbench.costs.CellCost


@dataclass
class TableResult:
    name: str
    title: str
    layout: str
    select: str
    rows: list[Row]
    columns: list[Column]
    cells: dict[tuple[str, str], Cell]
    vary_keys: list[str]
    seeds: tuple[int, ...]
    show_paper: bool  # any paper number at all
    caption: str
    frame: pd.DataFrame  # the selected runs
    notes: list[str] = field(default_factory=list)  # footnote letters used
    paper_cols: set[str] = field(default_factory=set)  # columns shown with paper and Δ beside ours
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run id, reason): not in any number
    protocol_notes: list[str] = field(default_factory=list)  # rows whose protocol differs from the others


def _grid_columns(grid: Grid, metrics: Sequence[str]) -> list[Column]:
    cols = []
    single = len(grid.settings()) == 1
    for d, r, h in grid.settings():
        for m in metrics:
            if single:
                label = METRIC_LABELS[m]
            elif len(metrics) == 1:
                label = setting_label(d, r, h)
            else:
                label = f"{setting_label(d, r, h)} {METRIC_LABELS[m]}"
            cols.append(Column(f"{setting_id(d, r, h)}:{m}", label, d, r, h, m))
    return cols


def _vary_rows(grid: Grid, methods: Sequence[str]) -> list[Row]:
    rows = []
    for m in methods:
        for combo in grid.vary_combos():
            suffix = "".join(f"|{k}={fmt_value(v)}" for k, v in combo.items())
            rows.append(Row(f"{m}{suffix}", PAPER_NAMES.get(m, m), m, combo))
    return rows


def _paper_rows(paper: pd.DataFrame | None, grid: Grid, frame: pd.DataFrame) -> list[Row]:
    """The paper's rows in its order, then our methods the paper lacks (grid order, then by name)."""
    rows, seen = [], set()
    if paper is not None:
        for name in paper["method"]:
            method = METHOD_OF_PAPER.get(name)
            rows.append(Row(name, name, method))
            if method:
                seen.add(method)
    extra = [m for m in grid.methods if m not in seen]
    ran = sorted(set(frame["method"]) - seen - set(extra)) if not frame.empty else []
    known = list(PAPER_NAMES)
    ran.sort(key=lambda m: (known.index(m) if m in known else len(known), m))
    for m in extra + ran:
        rows.append(Row(m, PAPER_NAMES.get(m, m), m))
    return rows


def build_table(df: pd.DataFrame, grid: Grid, select: str = "last", name: str | None = None,
                warn: Warn | None = None, expected_ids: Collection[str] | None = None) -> TableResult:
    """Aggregate the grid's runs into table cells (mean, std, n), next to the reported numbers
    (`expected_ids`: see select_runs)."""
    warn = warn or _console_warn
    if select not in SELECT_COLUMNS:
        raise ValueError(f"select must be last or best, got {select!r}")
    layout = grid.table or "grid"
    name = name or grid.name
    paper_t1 = paper_t2 = ablations = None
    if layout in ("table1", "table1-extended"):
        columns = [Column(f"{d}_r{fmt_ratio(r)}", setting_label(d, r), d, r, None, "top1")
                   for d, r in TABLE1_SETTINGS]
        paper_t1 = load_paper("table1", warn)
        if layout == "table1-extended":  # SMCL's rows, then BCL / ConCutMix from their own sources
            extra = load_paper("table1-extended", warn)
            if paper_t1 is not None and extra is not None:
                paper_t1 = pd.concat([paper_t1, extra], ignore_index=True)
        frame = select_runs(df, grid, methods=sorted(set(df["method"])) if not df.empty else [],
                            settings=[(d, r, None) for d, r in TABLE1_SETTINGS], warn=warn,
                            expected_ids=expected_ids)
        rows = _paper_rows(paper_t1, grid, frame)
        title = "SMCL Table 1: top-1 accuracy (%) on CIFAR-10/100-LT"
        if layout == "table1-extended":
            title = "Extended Table 1 (SMCL's rows + BCL, ConCutMix): top-1 accuracy (%) on CIFAR-10/100-LT"
    elif layout == "table2":
        d, r, h = grid.settings()[0]
        columns = [Column(m if m != "top1" else "all", METRIC_LABELS[m], d, r, h, m) for m in METRICS]
        paper_t2 = load_paper("table2", warn)
        frame = select_runs(df, grid, methods=sorted(set(df["method"])) if not df.empty else [],
                            settings=[(d, r, h)], warn=warn, expected_ids=expected_ids)
        rows = _paper_rows(paper_t2, grid, frame)
        title = f"SMCL Table 2: top-1 accuracy (%) on {setting_label(d, r, h)}, All / Many / Medium / Few"
    else:
        ablation = layout.startswith("ablate-")
        single = len(grid.settings()) == 1
        metrics = grid.metrics or (METRICS if (ablation or single) else ("top1",))
        metrics = tuple(dict.fromkeys(OLD_GAPS.get(m, m) for m in metrics))
        columns = _grid_columns(grid, metrics)
        frame = select_runs(df, grid, warn=warn, expected_ids=expected_ids)
        rows = _vary_rows(grid, grid.methods)
        if ablation:
            ablations = load_paper("ablations", warn)
        else:
            paper_t1 = load_paper("table1", warn) if any(
                (c.dataset, c.ratio) in TABLE1_SETTINGS and c.head is None for c in columns) else None
        title = {"ablate-masking": "SMCL Table 3 (masking location)",
                 "ablate-contrastive": "SMCL Table 4 (contrastive loss)",
                 "ablate": f"ablation {grid.name}"}.get(
            layout, f"accuracy (%) on {', '.join(setting_label(d, r, h) for d, r, h in grid.settings())}")

    vary_keys = list(grid.vary)
    vcols = {k: value_column(frame, k) for k in vary_keys} if not frame.empty else {}
    cells: dict[tuple[str, str], Cell] = {}
    metric_cols = SELECT_COLUMNS[select]
    row_of: dict[Any, str] = {}  # frame index -> row key (for the protocol notes)
    for row in rows:
        if row.method is None or frame.empty:
            sub_rows = frame.iloc[0:0]
        else:
            sub_rows = frame[frame["method"] == row.method]
            for k, v in row.vary.items():
                sub_rows = sub_rows[sub_rows[vcols[k]].map(lambda x, v=v: _norm(x) == _norm(v))]
            row_of.update(dict.fromkeys(sub_rows.index, row.key))
        for col in columns:
            sub = sub_rows[(sub_rows["dataset"] == col.dataset) & (sub_rows["ratio"] == col.ratio)]
            same_head = [(col.head is None) if _isna(h) else int(h) == col.head for h in sub["max_per_class"]]
            sub = sub.loc[pd.Series(same_head, index=sub.index, dtype=bool)]
            # background metrics exist for the last epoch only: empty cells under --select best
            source = metric_cols.get(col.metric) or (BACKGROUND_COLUMNS.get(col.metric) if select == "last" else None)
            values = pd.to_numeric(sub[source], errors="coerce") if len(sub) and source in sub else pd.Series(
                dtype="float64")
            cell = Cell(runs=len(sub), n=int(values.notna().sum()), frame_index=list(sub.index))
            if cell.n:
                cell.mean = float(values.mean())
                cell.std = float(values.std(ddof=1)) if cell.n > 1 else None
                if col.metric in INTERVAL_METRICS and cell.std is not None:
                    cell.half95 = t975(cell.n - 1) * cell.std / math.sqrt(cell.n)
            elif cell.runs:
                cell.note = "e" if col.metric in INTERVAL_METRICS and _has_background(sub) else "d"
            elif row.method is not None:
                cell.note = "a"  # reported-only rows say so in their ltbench column
            _attach_paper(cell, row, col, layout, paper_t1, paper_t2, ablations)
            if cell.mean is not None and cell.paper is not None and cell.paper_note is None:
                cell.gap = round(cell.mean - cell.paper, 10) + 0.0  # no -0.00
            cells[(row.key, col.key)] = cell
    # a background metric of a data set that has none (everything but `shapes`): drop the column
    columns = [col for col in columns if col.metric not in BACKGROUND_COLUMNS
               or any(cells[(r.key, col.key)].n or cells[(r.key, col.key)].note == "e" for r in rows)
               or not any(cells[(r.key, col.key)].runs for r in rows)]
    for col in columns:  # bold: best of ours per column (for a gap, the smallest: less background reliance)
        means = [cells[(r.key, col.key)].mean for r in rows if cells[(r.key, col.key)].mean is not None]
        if len(means) > 1:
            top = min(means) if col.metric in LOWER_IS_BETTER else max(means)
            for r in rows:
                c = cells[(r.key, col.key)]
                c.best = c.mean is not None and math.isclose(c.mean, top, rel_tol=0, abs_tol=1e-9)

    paper_cols = {col.key for col in columns if any(cells[(r.key, col.key)].paper is not None for r in rows)}
    for (_, col_key), c in cells.items():
        if col_key not in paper_cols:
            c.paper_note = None
    show_paper = bool(paper_cols)
    result = TableResult(name=name, title=title, layout=layout, select=select, rows=rows, columns=columns,
                         cells=cells, vary_keys=vary_keys, seeds=grid.seeds, show_paper=show_paper,
                         caption="", frame=frame, paper_cols=paper_cols)
    shown = [cells[(r.key, col.key)] for r in rows for col in columns]  # footnotes of dropped columns: gone
    used = {c.note for c in shown} | {c.paper_note for c in shown}
    result.notes = [k for k in NOTES if k in used]
    result.caption = _caption(result, grid, frame)
    _protocol_notes(result, row_of)
    return result


def _has_background(runs: pd.DataFrame) -> bool:
    """Runs of a data set with backgrounds (they record the seen/unseen split)."""
    col = BACKGROUND_COLUMNS["seen"]
    return col in runs and bool(pd.to_numeric(runs[col], errors="coerce").notna().any())


def _protocol_notes(t: TableResult, row_of: dict[Any, str]) -> None:
    """Caption: the fingerprint the runs share; numbered notes on rows whose runs differ from the other
    rows (same setting and seed) in a field the grid does not vary."""
    frame = t.frame.loc[[i for i in t.frame.index if i in row_of]] if not t.frame.empty else t.frame
    shared = fingerprint.shared_text(frame, t.vary_keys)
    if shared:
        t.caption += " " + shared
    by_key = {r.key: r for r in t.rows}
    for k, (keys, text) in enumerate(fingerprint.row_notes(frame, pd.Series(row_of, dtype=object), t.vary_keys,
                                                                 [r.key for r in t.rows])):
        mark = NUMBERS[k] if k < len(NUMBERS) else f"({k + 1})"
        names = []
        for key in keys:
            row = by_key[key]
            names.append(row.label + "".join(f"|{v}={fmt_value(x)}" for v, x in row.vary.items()))
            row.mark = mark
        t.protocol_notes.append(f"{mark} {', '.join(dict.fromkeys(names))}: {text} (the other rows)")


def _attach_paper(cell: Cell, row: Row, col: Column, layout: str, t1, t2, abl) -> None:
    text = None
    if layout in ("table1", "table1-extended") and t1 is not None:
        text = _lookup(t1, row.label, f"{col.dataset}_r{fmt_ratio(col.ratio)}")
    elif layout == "table2" and t2 is not None:
        text = _lookup(t2, row.label, col.metric if col.metric != "top1" else "all")
    elif layout.startswith("ablate-") and abl is not None and col.metric == "top1" and row.method:
        variant = _ablation_variant(layout, row)
        if variant is not None:
            hit = abl[(abl["ablation"] == layout.removeprefix("ablate-")) & (abl["variant"] == variant)]
            text = hit["accuracy"].iloc[0] if len(hit) else None
            if text and (col.dataset, col.ratio, col.head) != ABLATION_SETTING:
                cell.paper_note = "c"
    elif layout == "grid" and t1 is not None and col.metric == "top1" and not row.vary and col.head is None \
            and (col.dataset, col.ratio) in TABLE1_SETTINGS:
        text = _lookup(t1, row.label, f"{col.dataset}_r{fmt_ratio(col.ratio)}")
    cell.paper_text = text or None
    cell.paper = _to_float(text)
    if cell.paper is None:
        cell.paper_note = "b"


def _lookup(paper: pd.DataFrame, row_name: str, column: str) -> str | None:
    if column not in paper.columns:
        return None
    hit = paper.loc[paper["method"] == row_name, column]
    return hit.iloc[0] if len(hit) and hit.iloc[0].strip() else None


def _ablation_variant(layout: str, row: Row) -> str | None:
    if layout == "ablate-masking":
        loc = row.vary.get("mask_locator")
        return loc if row.method == "drw+smcl" and loc in ("random", "center", "saliency") else None
    if layout == "ablate-contrastive" and row.method in ("smcl", "drw+smcl") and "w_sc" in row.vary:
        w = _norm(row.vary["w_sc"])
        paper = PAPER_NAMES[row.method]
        if w == 0.0:
            return f"cross-entropy only ({paper})"
        if w is not None and math.isclose(w, PAPER_W_SC):
            return f"with contrastive ({paper})"
    return None


def _caption(t: TableResult, grid: Grid, frame: pd.DataFrame) -> str:
    seeds = ", ".join(map(str, t.seeds))
    rules = sorted(set(frame["shot_rule"].dropna())) if not frame.empty else []
    if not rules:
        rules = [str(grid.overrides.get("shot_rule", "shots-100-20"))]
    rule_txt = "; ".join(f"{r} ({SHOT_RULE_TEXT.get(r, 'see spec')})" for r in rules)
    parts = [
        f"{t.title}. Preset {grid.preset}; grid {grid.path.name}.",
        f"Selection: {SELECT_TEXT[t.select]}.",
        f"ours = mean ± sample std (ddof=1) over seeds {seeds}, n runs in parentheses; "
        f"† = fewer runs than the grid's {len(t.seeds)} seed(s).",
        f"Shot rule: {rule_txt}.",
    ]
    if t.show_paper:
        src = {"table1": "results/paper/table1_cifar_lt.csv",
               "table2": "results/paper/table2_imagenet_lt.csv"}
        where = src.get(t.layout, "results/paper/ablations.csv" if t.layout.startswith("ablate-")
                        else "results/paper/table1_cifar_lt.csv")
        reported = " Rows marked reported are cited numbers that ltbench does not run." if any(
            r.method is None for r in t.rows) else ""
        parts.append(f"paper = the number the SMCL paper reports ({where}); Δ = ours − paper.{reported}")
        if t.layout == "table1-extended":
            parts.append("BCL and ConCutMix rows: not from SMCL's paper but results/paper/table1_extended.csv; "
                         "ConCutMix's are its README's best test epoch of one run (an oracle selection), BCL's "
                         "a third-party listing not checked against the BCL paper.")
    if t.vary_keys:
        parts.append("Varied: " + ", ".join(t.vary_keys) + ".")
    return " ".join(parts)


# ----- rendering ---------------------------------------------------------------------------------

def _ours_text(c: Cell, expected: int, fmt: str) -> str:
    if c.mean is None:
        return _dash(c.note, fmt)
    dag = "†" if c.n < expected else ""
    if c.half95 is not None:
        text = f"{c.mean:.2f} [{c.mean - c.half95:.2f}, {c.mean + c.half95:.2f}] ({c.n}){dag}"
    elif c.std is None:
        text = f"{c.mean:.2f} ({c.n}){dag}"
    else:
        text = f"{c.mean:.2f} ± {c.std:.2f} ({c.n}){dag}"
    if c.best and fmt == "md":
        text = f"**{text}**"
    if c.best and fmt == "rich":
        text = f"[bold]{text}[/bold]"
    return text


def _dash(note: str | None, fmt: str) -> str:
    if note is None:
        return DASH
    return f"{DASH}{SUPERSCRIPT[note]}"


def _paper_text(c: Cell, fmt: str) -> str:
    if c.paper_text is None:
        return _dash(c.paper_note, fmt)
    return c.paper_text + (SUPERSCRIPT[c.paper_note] if c.paper_note else "")


def _gap_text(c: Cell) -> str:
    badge = f" {c.badge}" if c.badge else ""  # opt-in: ltbench.badges
    return DASH if c.gap is None else f"{round(c.gap, 2) + 0.0:+.2f}{badge}"


def _kind(row: Row) -> str:
    return "reported" if row.method is None else row.method


def display_frame(t: TableResult, fmt: str = "md") -> pd.DataFrame:
    """The table as strings, one column per (setting/metric, ours|paper|Δ)."""
    expected = len(t.seeds)
    records = []
    costs_on = any(c.cost is not None for c in t.cells.values())  # opt-in: `table --cost`
    for row in t.rows:
        rec: dict[str, str] = {"Method": row.label + row.mark, "ltbench": _kind(row)}
        for k in t.vary_keys:
            rec[k] = fmt_value(row.vary[k]) if k in row.vary else ""
        for col in t.columns:
            c = t.cells[(row.key, col.key)]
            rec[col.label] = _ours_text(c, expected, fmt)
            if col.key in t.paper_cols:
                rec[f"{col.label} paper"] = _paper_text(c, fmt)
                rec[f"{col.label} Δ"] = _gap_text(c)
        if costs_on:
            from ltbench.costs import row_cost_text

            rec["cost"] = row_cost_text(t, row)
        records.append(rec)
    return pd.DataFrame(records)


def _footnotes(t: TableResult) -> list[str]:
    lines = [f"{SUPERSCRIPT[k]} {NOTES[k]}" for k in t.notes] + t.protocol_notes
    return lines


def render_markdown(t: TableResult) -> str:
    df = display_frame(t, "md")
    lead = 2 + len(t.vary_keys)
    align = ("left",) * lead + ("right",) * (df.shape[1] - lead)
    body = df.to_markdown(index=False, disable_numparse=True, colalign=align)
    out = [f"### {t.name}: {t.title}", "", body, "", t.caption, *markdown_tail(t)]
    return "\n".join(out) + "\n"


def markdown_tail(t: TableResult) -> list[str]:
    """The lines under a Markdown table: its footnotes, then the grid's failed runs (every layout shares them)."""
    out: list[str] = []
    notes = _footnotes(t)
    if notes:
        out += ["", "  ".join(notes)]
    if t.failed:
        out += ["", f"Failed runs of this grid ({len(t.failed)}; not counted in any cell):", ""]
        out += [f"- failed: `{run_id}`: {reason}" for run_id, reason in t.failed]
    return out


def grid_run_ids(grid: Grid) -> list[str]:
    """The run ids the grid expands to, in its order (imports torch: a spec is built per run)."""
    from ltbench.grid import expand

    return [run.run_id for run in expand(grid)]


def grid_failures(grid: Grid, results_dir: Path, run_ids: Collection[str] | None = None) -> list[tuple[str, str]]:
    """(run id, first line of the reason) of every run of the grid that ended as failed (`run_ids`: the
    grid's, if already expanded)."""
    out = []
    for run_id in grid_run_ids(grid) if run_ids is None else run_ids:
        run_dir = Path(results_dir) / run_id
        if run_state(run_dir) != "failed":
            continue
        try:
            reason = str(read_json(run_dir / "failed.json").get("reason") or "no reason recorded")
        except (OSError, ValueError, AttributeError):
            reason = "failed.json is unreadable"
        out.append((run_id, reason.strip().splitlines()[0] if reason.strip() else "no reason recorded"))
    return out


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_UNICODE = {**{ch: f"$^{{{i + 1}}}$" for i, ch in enumerate(NUMBERS)}, "ᵉ": r"$^{e}$",
                "±": r"$\pm$", "†": r"$^\dagger$", "Δ": r"$\Delta$", "—": "---", "−": "$-$",
                "ᵃ": r"$^{a}$", "ᵇ": r"$^{b}$", "ᶜ": r"$^{c}$", "ᵈ": r"$^{d}$", "≤": r"$\leq$",
                ">": r"$>$", "<": r"$<$", "§": r"\S{}"}


def tex_escape(text: str) -> str:
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))
    return "".join(_TEX_UNICODE.get(ch, ch) for ch in out)


def render_latex(t: TableResult) -> str:
    expected = len(t.seeds)
    lead = ["Method", "ltbench", *t.vary_keys]
    tuples = [(tex_escape(k), "") for k in lead]
    for col in t.columns:
        subs = ["ours", "paper", tex_escape("Δ")] if col.key in t.paper_cols else ["ours"]
        tuples += [(tex_escape(col.label), s) for s in subs]
    data, bold = [], []
    for row in t.rows:
        rec = [tex_escape(row.label + row.mark), tex_escape(_kind(row))]
        rec += [tex_escape(fmt_value(row.vary.get(k, ""))) for k in t.vary_keys]
        flags = [False] * len(rec)
        for col in t.columns:
            c = t.cells[(row.key, col.key)]
            rec.append(tex_escape(_ours_text(c, expected, "tex")))
            flags.append(c.best)
            if col.key in t.paper_cols:
                rec += [tex_escape(_paper_text(c, "tex")), tex_escape(_gap_text(c))]
                flags += [False, False]
        data.append(rec)
        bold.append(flags)
    frame = pd.DataFrame(data, columns=pd.MultiIndex.from_tuples(tuples))
    mask = pd.DataFrame(bold, columns=frame.columns)
    styler = frame.style.hide(axis="index").apply(
        lambda _: mask.map(lambda b: "textbf:--rwrap;" if b else ""), axis=None)
    caption = tex_escape(t.caption)
    notes = _footnotes(t)
    if notes:
        caption += " " + tex_escape("  ".join(notes))
    return styler.to_latex(hrules=True, caption=caption, label=f"tab:{t.name}",
                           column_format="l" * len(lead) + "r" * (frame.shape[1] - len(lead)),
                           multicol_align="c", position_float="centering")


def table_csv_frame(t: TableResult) -> pd.DataFrame:
    """Long, numeric: one row per (table row, column)."""
    records = []
    for row in t.rows:
        for col in t.columns:
            c = t.cells[(row.key, col.key)]
            rec = {"table": t.name, "row": row.label, "method": row.method or "", "kind":
                   "reported" if row.method is None else "ours"}
            for k in t.vary_keys:
                rec[k] = row.vary.get(k)
            rec.update({"column": col.label, "dataset": col.dataset, "ratio": fmt_ratio(col.ratio),
                        "max_per_class": col.head, "metric": col.metric, "select": t.select,
                        "mean": c.mean, "std": c.std, "n": c.n, "n_expected": len(t.seeds),
                        "paper": c.paper, "gap": c.gap,
                        "note": "; ".join(NOTES[k] for k in (c.note, c.paper_note) if k)})
            if c.badge is not None or c.cost is not None:  # opt-in: ltbench.badges / ltbench.costs
                rec.update({"badge": c.badge, "mean_wall_s": c.cost.mean_wall_s if c.cost else None,
                            "device_hours": c.cost.device_hours if c.cost else None})
            records.append(rec)
    df = pd.DataFrame(records)
    for col in ("mean", "std", "paper", "gap"):
        df[col] = pd.to_numeric(df[col]).astype("float64").round(4) + 0.0  # + 0.0: no -0.0
    df["max_per_class"] = df["max_per_class"].astype("Int64")
    return df


def render_csv(t: TableResult) -> str:
    return table_csv_frame(t).to_csv(index=False, lineterminator="\n")


RENDERERS = {"md": render_markdown, "tex": render_latex, "csv": render_csv}


def write_table(t: TableResult, out_dir: Path, formats: Sequence[str] = ("md", "tex", "csv")) -> list[Path]:
    from ltbench.results import atomic_write_bytes

    paths = []
    for fmt in formats:
        path = Path(out_dir) / f"{t.name}.{fmt}"
        atomic_write_bytes(path, RENDERERS[fmt](t).encode("utf-8"))
        paths.append(path)
    return paths


def rich_table(t: TableResult):
    """A terminal table: one column per setting/metric; ours on top, the paper number and Δ below."""
    from rich.table import Table

    expected = len(t.seeds)
    caption = t.caption + ("\n" + "  ".join(_footnotes(t)) if t.notes else "")
    table = Table(title=f"{t.name}: {t.title}", caption=caption, caption_justify="left",
                  show_lines=t.show_paper)
    table.add_column("Method", no_wrap=True)
    table.add_column("ltbench", no_wrap=True, style="dim")
    for k in t.vary_keys:
        table.add_column(k, no_wrap=True)
    for col in t.columns:
        table.add_column(col.label, justify="right", overflow="fold")
    for row in t.rows:
        cells = [row.label + row.mark, _kind(row), *(fmt_value(row.vary.get(k, "")) for k in t.vary_keys)]
        for col in t.columns:
            c = t.cells[(row.key, col.key)]
            text = _ours_text(c, expected, "rich")
            if col.key in t.paper_cols:
                gap = "" if c.gap is None else f" Δ{_gap_text(c)}"
                text += f"\n[dim]paper {_paper_text(c, 'rich')}{gap}[/dim]"
            cells.append(text)
        table.add_row(*cells)
    return table


# ----- figures -----------------------------------------------------------------------------------

def _figure(figsize: tuple[float, float], ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


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
    for col in ("mean", "std", "paper"):
        data[col] = pd.to_numeric(data[col]).astype("float64")
    return data


def plot_ablation(t: TableResult, out_base: Path) -> tuple[list[Path], pd.DataFrame]:
    """The ablation figure (ltbench.figures.plot_ablation): 95 % intervals and seeds, categories not joined."""
    from ltbench.figures import plot_ablation as draw

    return draw(t, out_base)


def _png_meta(ext: str) -> dict:
    return {"Software": None} if ext == "png" else {"Creator": None, "Producer": None, "CreationDate": None}


def per_class_data(frame: pd.DataFrame) -> pd.DataFrame:
    """Per class: mean accuracy over seeds and the training count, per (setting, method)."""
    records = []
    for _, run in frame.iterrows():
        accs, counts = run.get("per_class_acc"), run.get("train_class_counts")
        if not isinstance(accs, (list, tuple)) or not isinstance(counts, (list, tuple)) \
                or len(accs) != len(counts):
            continue
        for cls, (acc, n) in enumerate(zip(accs, counts, strict=True)):
            records.append({"setting": run["setting"], "method": run["method"], "seed": run["seed"],
                            "class": cls, "train_count": n, "acc": acc})
    if not records:
        return pd.DataFrame(columns=["setting", "method", "class", "train_count", "acc", "n"])
    long = pd.DataFrame(records)
    return (long.groupby(["setting", "method", "class"], sort=True)
            .agg(train_count=("train_count", "mean"), acc=("acc", "mean"), n=("seed", "count"))
            .reset_index())


def plot_per_class(frame: pd.DataFrame, out: Path, title: str = "") -> tuple[list[Path], pd.DataFrame]:
    """The per-class figure (ltbench.figures.plot_per_class): named classes, 95 % intervals and seeds."""
    from ltbench.figures import plot_per_class as draw

    return draw(frame, out, title)
