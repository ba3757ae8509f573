"""TableResult -> text: Markdown, LaTeX, a long numeric CSV, and a rich table for the terminal.

Every format shows the same cells: ours = mean ± sd (n), then the paper's number and Δ = ours − paper
where the column has paper numbers; footnote marks (labels.SUPERSCRIPT) and protocol marks (NUMBERS).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ltbench.report.costs import row_cost_text
from ltbench.report.labels import DASH, NUMBERS, SUPERSCRIPT, fmt_ratio, fmt_value
from ltbench.report.table import NOTES, Cell, Row, TableResult


def ours_text(c: Cell, expected: int, fmt: str) -> str:
    """Our number of a cell: mean ± sd (n), † below the grid's seed count; bold where best."""
    if c.mean is None:
        return dash(c.note, fmt)
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


def dash(note: str | None, fmt: str) -> str:
    if note is None:
        return DASH
    return f"{DASH}{SUPERSCRIPT[note]}"


def paper_text(c: Cell, fmt: str) -> str:
    if c.paper_text is None:
        return dash(c.paper_note, fmt)
    return c.paper_text + (SUPERSCRIPT[c.paper_note] if c.paper_note else "")


def gap_text(c: Cell) -> str:
    badge = f" {c.badge}" if c.badge else ""  # opt-in: report.badges
    return DASH if c.gap is None else f"{round(c.gap, 2) + 0.0:+.2f}{badge}"


def kind(row: Row) -> str:
    """The `ltbench` column: the method that ran, or `reported` for a cited row."""
    return "reported" if row.method is None else row.method


def display_frame(t: TableResult, fmt: str = "md") -> pd.DataFrame:
    """The table as strings, one column per (setting/metric, ours|paper|Δ)."""
    expected = len(t.seeds)
    records = []
    costs_on = any(c.cost is not None for c in t.cells.values())  # opt-in: `table --cost`
    for row in t.rows:
        rec: dict[str, str] = {"Method": row.label + row.mark, "ltbench": kind(row)}
        for k in t.vary_keys:
            rec[k] = fmt_value(row.vary[k]) if k in row.vary else ""
        for col in t.columns:
            c = t.cells[(row.key, col.key)]
            rec[col.label] = ours_text(c, expected, fmt)
            if col.key in t.paper_cols:
                rec[f"{col.label} paper"] = paper_text(c, fmt)
                rec[f"{col.label} Δ"] = gap_text(c)
        if costs_on:
            rec["cost"] = row_cost_text(t, row)
        records.append(rec)
    return pd.DataFrame(records)


def footnotes(t: TableResult) -> list[str]:
    return [f"{SUPERSCRIPT[k]} {NOTES[k]}" for k in t.notes] + t.protocol_notes


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
    notes = footnotes(t)
    if notes:
        out += ["", "  ".join(notes)]
    if t.failed:
        out += ["", f"Failed runs of this grid ({len(t.failed)}; not counted in any cell):", ""]
        out += [f"- failed: `{run_id}`: {reason}" for run_id, reason in t.failed]
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
        rec = [tex_escape(row.label + row.mark), tex_escape(kind(row))]
        rec += [tex_escape(fmt_value(row.vary.get(k, ""))) for k in t.vary_keys]
        flags = [False] * len(rec)
        for col in t.columns:
            c = t.cells[(row.key, col.key)]
            rec.append(tex_escape(ours_text(c, expected, "tex")))
            flags.append(c.best)
            if col.key in t.paper_cols:
                rec += [tex_escape(paper_text(c, "tex")), tex_escape(gap_text(c))]
                flags += [False, False]
        data.append(rec)
        bold.append(flags)
    frame = pd.DataFrame(data, columns=pd.MultiIndex.from_tuples(tuples))
    mask = pd.DataFrame(bold, columns=frame.columns)
    styler = frame.style.hide(axis="index").apply(
        lambda _: mask.map(lambda b: "textbf:--rwrap;" if b else ""), axis=None)
    caption = tex_escape(t.caption)
    notes = footnotes(t)
    if notes:
        caption += " " + tex_escape("  ".join(notes))
    return str(styler.to_latex(hrules=True, caption=caption, label=f"tab:{t.name}",
                           column_format="l" * len(lead) + "r" * (frame.shape[1] - len(lead)),
                           multicol_align="c", position_float="centering"))


def table_csv_frame(t: TableResult) -> pd.DataFrame:
    """Long, numeric: one row per (table row, column)."""
    records = []
    for row in t.rows:
        for col in t.columns:
            c = t.cells[(row.key, col.key)]
            rec: dict[str, Any] = {"table": t.name, "row": row.label, "method": row.method or "",
                                   "kind": "reported" if row.method is None else "ours"}
            for k in t.vary_keys:
                rec[k] = row.vary.get(k)
            rec.update({"column": col.label, "dataset": col.dataset, "ratio": fmt_ratio(col.ratio),
                        "max_per_class": col.head, "metric": col.metric, "select": t.select,
                        "mean": c.mean, "std": c.std, "n": c.n, "n_expected": len(t.seeds),
                        "paper": c.paper, "gap": c.gap,
                        "note": "; ".join(NOTES[k] for k in (c.note, c.paper_note) if k)})
            if c.badge is not None or c.cost is not None:  # opt-in: report.badges / report.costs
                rec.update({"badge": c.badge, "mean_wall_s": c.cost.mean_wall_s if c.cost else None,
                            "device_hours": c.cost.device_hours if c.cost else None})
            records.append(rec)
    df = pd.DataFrame(records)
    for name in ("mean", "std", "paper", "gap"):
        df[name] = pd.to_numeric(df[name]).astype("float64").round(4) + 0.0  # + 0.0: no -0.0
    df["max_per_class"] = df["max_per_class"].astype("Int64")
    return df


def render_csv(t: TableResult) -> str:
    return str(table_csv_frame(t).to_csv(index=False, lineterminator="\n"))


RENDERERS: dict[str, Callable[[TableResult], str]] = {"md": render_markdown, "tex": render_latex,
                                                      "csv": render_csv}


def write_table(t: TableResult, out_dir: Path, formats: Sequence[str] = ("md", "tex", "csv")) -> list[Path]:
    from ltbench.files import atomic_write_bytes

    paths = []
    for fmt in formats:
        path = Path(out_dir) / f"{t.name}.{fmt}"
        atomic_write_bytes(path, RENDERERS[fmt](t).encode("utf-8"))
        paths.append(path)
    return paths


def rich_table(t: TableResult) -> Any:
    """A terminal table (rich.table.Table): one column per setting/metric; ours on top, the paper number
    and Δ below."""
    from rich.table import Table

    expected = len(t.seeds)
    caption = t.caption + ("\n" + "  ".join(footnotes(t)) if t.notes else "")
    table = Table(title=f"{t.name}: {t.title}", caption=caption, caption_justify="left",
                  show_lines=t.show_paper)
    table.add_column("Method", no_wrap=True)
    table.add_column("ltbench", no_wrap=True, style="dim")
    for k in t.vary_keys:
        table.add_column(k, no_wrap=True)
    for col in t.columns:
        table.add_column(col.label, justify="right", overflow="fold")
    for row in t.rows:
        cells = [row.label + row.mark, kind(row), *(fmt_value(row.vary.get(k, "")) for k in t.vary_keys)]
        for col in t.columns:
            c = t.cells[(row.key, col.key)]
            text = ours_text(c, expected, "rich")
            if col.key in t.paper_cols:
                gap = "" if c.gap is None else f" Δ{gap_text(c)}"
                text += f"\n[dim]paper {paper_text(c, 'rich')}{gap}[/dim]"
            cells.append(text)
        table.add_row(*cells)
    return table
