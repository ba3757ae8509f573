"""Write the analyses of one run or a grid: <name>-analysis.md / .tex, one CSV per table, figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ltbench.analysis import figures, tables
from ltbench.analysis.run import RunAnalysis

CAPTIONS = {
    "shifted": ("Accuracy (%) under shifted test class priors (SADE's protocol, arXiv:2107.09249): p_k ∝ "
                "ρ^(−k/(C−1)) over classes ranked by training count, forward-ρ follows the training order, "
                "backward-ρ reverses it. top1 = Σ p_k·acc_k from the balanced test set's per-class accuracy; "
                "top1_prior_adjusted = the same after logits − log π_train + log p (needs saved logits)."),
    "curve": ("Post-hoc logit adjustment (Menon et al., arXiv:2007.07314): logits − τ·log π_train, accuracy (%) per "
              "τ. Rows with split=test are on the reported test images; split=val on the validation split."),
    "tau": ("τ chosen per run on the validation split (top1_tau_val), when the run has one; without it the "
            "best τ on test is shown and labelled test-selected (an oracle, optimistic)."),
    "calibration": "Expected calibration error (%), 15 equal-width confidence bins (Guo et al., arXiv:1706.04599), "
                   "overall and per shot group (images whose true class is in the group).",
    "pairs": ("Most-confused (true → predicted) class pairs per shot group: share (%) of the true class's test "
              "images predicted as the other class, on the confusion matrix summed over seeds."),
}


@dataclass
class AnalysisReport:
    name: str
    analyses: list[RunAnalysis]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def build(name: str, analyses: Sequence[RunAnalysis]) -> AnalysisReport:
    rep = AnalysisReport(name, list(analyses))
    rep.tables = {"shifted": tables.shifted_table(analyses), "curve": tables.curve_table(analyses),
                  "tau": tables.tau_table(analyses), "calibration": tables.calibration_table(analyses),
                  "pairs": tables.pairs_table(analyses)}
    for a in analyses:
        for line in a.missing:
            rep.notes.append(f"{a.run_id}: {line}")
    evals = sorted({a.eval_set for a in analyses})
    if "test-half" in evals:
        rep.notes.append("runs with a validation split report on the test half (ltbench.data.val_split); "
                         "their numbers are not on the same images as runs without one")
    return rep


def _round(df: pd.DataFrame) -> pd.DataFrame:
    return df.round(4)


def markdown(rep: AnalysisReport) -> str:
    out = [f"# {rep.name}: post-hoc analyses ({len(rep.analyses)} run(s))", ""]
    for key, df in rep.tables.items():
        out += [f"## {key}", ""]
        out.append(_round(df).to_markdown(index=False) if not df.empty else "(nothing to show: see notes)")
        out += ["", CAPTIONS[key], ""]
    if rep.notes:
        out += ["## notes", ""] + [f"- {n}" for n in rep.notes] + [""]
    return "\n".join(out)


def latex(rep: AnalysisReport) -> str:
    from ltbench.report.render import tex_escape

    parts = []
    for key, df in rep.tables.items():
        if df.empty:
            continue
        shown = _round(df).astype(object).where(df.notna(), "")
        shown = shown.map(lambda v: tex_escape(f"{v:g}" if isinstance(v, float) else str(v)))
        shown.columns = [tex_escape(c) for c in shown.columns]
        parts.append(shown.style.hide(axis="index").to_latex(
            hrules=True, caption=tex_escape(CAPTIONS[key]), label=f"tab:{rep.name}-{key}",
            position_float="centering"))
    return "\n".join(parts)


def write(rep: AnalysisReport, out_dir: Path) -> list[Path]:
    from ltbench.files import atomic_write_bytes

    base = Path(out_dir) / f"{rep.name}-analysis"
    paths = []
    for path, text in ((base.with_suffix(".md"), markdown(rep)), (base.with_suffix(".tex"), latex(rep))):
        atomic_write_bytes(path, text.encode("utf-8"))
        paths.append(path)
    for key, df in rep.tables.items():
        path = Path(f"{base}-{key}.csv")
        atomic_write_bytes(path, _round(df).to_csv(index=False, lineterminator="\n").encode("utf-8"))
        paths.append(path)
    paths += figures.logit_adjustment(rep.analyses, Path(f"{base}-logit-adjustment"))
    paths += figures.shifted_priors(rep.tables["shifted"], Path(f"{base}-shifted-priors"))
    paths += figures.reliability(rep.analyses, Path(f"{base}-reliability"))
    paths += figures.confusion(rep.analyses, Path(f"{base}-confusion"))
    return paths
