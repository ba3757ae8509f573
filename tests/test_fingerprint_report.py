"""Protocol fingerprints in tables: the caption names what the runs share, a row whose runs differ from the
others in a field the grid does not vary gets a numbered note, old records show "unknown"; the tail-only
background gap replaces the old seen-minus-unseen gap, with a 95 % interval, and old records show a dash."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ltbench.fingerprint import row_notes, shared_text
from ltbench.grid import load_grid
from ltbench.report import build_table, collect, render_markdown
from ltbench.spec_hash import spec_dict_hash

FIXTURES = Path(__file__).parent / "fixtures"
RUNS = FIXTURES / "runs"


def _quiet(msg: str) -> None:
    raise AssertionError(f"unexpected warning: {msg}")


def _counts() -> list[int]:
    final = json.loads(next((RUNS / "cifar100-r100" / "erm").glob("*/final.json")).read_text())
    return final["train_class_counts"]


def test_fixture_caption_and_the_batch_256_note():
    t = build_table(collect(RUNS, warn=_quiet), load_grid(FIXTURES / "grid.yaml"), warn=_quiet)
    n = sum(_counts())
    epochs = 200
    steps = {batch: math.ceil(n / batch) * epochs for batch in (128, 256)}  # drop_last=False, one process
    assert "Protocol shared by every run: epochs 200" in t.caption
    assert "Unknown (older records do not tell): sample passes, views" in t.caption
    assert "Differs between runs: optimiser steps" in t.caption
    smcl = next(r for r in t.rows if r.method == "smcl")
    assert smcl.mark == "¹" and all(r.mark == "" for r in t.rows if r.method != "smcl")
    assert t.protocol_notes[0].startswith(f"¹ SMCL: optimiser steps {steps[256]} vs {steps[128]}")
    text = render_markdown(t)
    assert "| SMCL¹ " in text and t.protocol_notes[0] in text


def test_a_field_the_grid_varies_is_not_flagged():
    frame = pd.DataFrame({"setting": ["x"] * 4, "seed": [0, 0, 1, 1], "protocol.epochs": [60, 120, 60, 120],
                          "protocol.optimizer_steps": [300, 600, 300, 600], "protocol.backbone": ["r8"] * 4})
    rows = pd.Series(["short", "long", "short", "long"], index=frame.index)
    # 2 rows, one value each: the "most common" is a tie; whichever is the reference, one row is flagged
    flagged = row_notes(frame, rows)
    assert len(flagged) == 1 and "epochs" in flagged[0][1] and "optimiser steps" in flagged[0][1]
    assert row_notes(frame, rows, vary_keys=["epochs"]) == []  # epochs varied: steps follow, no note
    assert "epochs (see" not in shared_text(frame, ["epochs"])
    assert "backbone r8" in shared_text(frame)


def _shapes_runs(root: Path, gaps: list[float | None]) -> None:
    src = next((RUNS / "cifar100-r100" / "erm").iterdir())
    spec0, final0 = json.loads((src / "spec.json").read_text()), json.loads((src / "final.json").read_text())
    for seed, gap in enumerate(gaps):
        spec = {**spec0, "dataset": "shapes", "seed": seed, "max_per_class": 500}
        final = {**final0, "seen_split": {"seen": {"top1": 90.0}, "unseen": {"top1": 40.0},
                                          "gap": {"top1": 50.0}}}
        if gap is not None:
            final["bg_gap_tail"] = gap
        run = root / "shapes-h500-r100" / "erm" / f"s{seed}-{spec_dict_hash(spec)}"
        run.mkdir(parents=True)
        (run / "spec.json").write_text(json.dumps(spec))
        (run / "final.json").write_text(json.dumps({**final, "spec_hash": spec_dict_hash(spec)}))


def _bg_table(tmp_path: Path, gaps: list[float | None]):
    _shapes_runs(tmp_path / "runs", gaps)
    grid = tmp_path / "g.yaml"
    spec = json.loads(next((RUNS / "cifar100-r100" / "erm").glob("*/spec.json")).read_text())
    grid.write_text(f"methods: [erm]\ndatasets: [shapes]\nratios: [100]\nseeds: {list(range(len(gaps)))}\n"
                    f"preset: {spec['preset']}\nmax_per_class: 500\nmetrics: [top1, unseen, gap]\n")
    return build_table(collect(tmp_path / "runs", warn=_quiet), load_grid(grid), warn=_quiet)


def test_tail_background_gap_with_its_interval(tmp_path):
    gaps = [12.0, 20.0, 16.5]
    t = _bg_table(tmp_path, gaps)
    assert [c.metric for c in t.columns] == ["top1", "unseen", "bg_gap_tail"]  # the old gap is not shown
    mean = sum(gaps) / 3
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / 2)
    half = 4.303 * sd / math.sqrt(3)  # t(0.975, 2)
    cell = t.cells[("erm", "shapes-h500-r100:bg_gap_tail")]
    assert cell.mean == pytest.approx(mean) and cell.half95 == pytest.approx(half)
    assert f"{mean:.2f} [{mean - half:.2f}, {mean + half:.2f}] (3)" in render_markdown(t)


def test_old_records_without_the_tail_gap_show_a_dash_and_a_note(tmp_path):
    t = _bg_table(tmp_path, [None, None])
    cell = t.cells[("erm", "shapes-h500-r100:bg_gap_tail")]
    assert (cell.mean, cell.note) == (None, "e")
    text = render_markdown(t)
    assert "—ᵉ" in text and "ᵉ not recorded: these runs predate the tail-only background gap" in text


def test_a_damaged_stored_fingerprint_falls_back_to_what_spec_and_counts_tell(tmp_path):
    src = next((RUNS / "cifar100-r100" / "erm").iterdir())
    run = tmp_path / "runs" / "cifar100-r100" / "erm" / src.name
    shutil.copytree(src, run)
    final = json.loads((run / "final.json").read_text())
    final["protocol"] = "not a record"  # a damaged fingerprint must not crash a reader
    (run / "final.json").write_text(json.dumps(final))
    warnings: list[str] = []
    frame = collect(tmp_path / "runs", warn=warnings.append)
    assert len(frame) == 1 and frame["protocol.epochs"].iloc[0] == 200  # recomputed from spec + counts
