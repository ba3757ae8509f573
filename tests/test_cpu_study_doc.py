"""Every number in docs/cpu-study.md's prose comes from a generated report (issue 20).

The committed reports under results/reports/ are what experiments/cpu-study-report.sh gives from the
committed records (tests/test_cpu_study_records.py checks that byte for byte), and the papers' numbers
are results/paper/*.csv. A number written in the write-up must be one of those numbers, shown with at
most its report's precision (a report's -10.08 may be quoted as -10.1, never as -10.2). Numbers inside
code spans and code blocks (commands, settings) are not results and are skipped; so are the few
protocol constants listed in NOT_RESULTS, each with its reason. No training.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).parent.parent
DOC = ROOT / "docs" / "cpu-study.md"
SOURCES = [*sorted((ROOT / "results" / "reports").rglob("*.md")),  # rglob: the cost tables are in cost/
           *sorted((ROOT / "results" / "reports").rglob("*.csv")),
           *sorted((ROOT / "results" / "paper").glob("*.csv"))]

# Protocol constants the write-up states; they are settings, not results.
NOT_RESULTS = {
    "0.0001": "the learning-rate factor of the schedule's second step (x0.0001 at epoch 54), a protocol constant",
    "0.975": "the t quantile of a two-sided 95 % interval",
}

NUMBER = re.compile(r"(?<![\w.])[+\-−]?\d+\.\d+")


def prose_numbers(text: str) -> list[str]:
    """Decimal numbers outside code blocks and code spans, signs kept, minus sign normalised."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    return [n.replace("−", "-") for n in NUMBER.findall(text)]


def report_values() -> set[Decimal]:
    values: set[Decimal] = set()
    for path in SOURCES:
        for n in NUMBER.findall(path.read_text()):
            values.add(Decimal(n.replace("−", "-").lstrip("+")))
    return values


def quoted_from(number: str, values: set[Decimal]) -> bool:
    """`number` is a report value, or one rounded to the number's own decimals (half-up or half-even)."""
    d = Decimal(number.lstrip("+"))
    step = Decimal(1).scaleb(d.as_tuple().exponent)
    for v in values:
        if abs(v - d) <= step and any(v.quantize(step, rounding=r) == d for r in (ROUND_HALF_UP, ROUND_HALF_EVEN)):
            return True
    return False


def test_rounding_rule_is_strict():
    values = {Decimal("-10.08"), Decimal("17.79"), Decimal("0.50")}
    assert quoted_from("-10.08", values) and quoted_from("-10.1", values) and quoted_from("17.8", values)
    assert not quoted_from("-10.2", values) and not quoted_from("17.7", values) and not quoted_from("1.67", values)
    assert prose_numbers("All `--set lr=0.15` −7.0 ± 4.3\n```\n9.99\n```") == ["-7.0", "4.3"]


def test_every_number_in_the_write_up_is_in_a_generated_report():
    values = report_values()
    missing = sorted({n for n in prose_numbers(DOC.read_text())
                      if n not in NOT_RESULTS and not quoted_from(n, values)})
    assert not missing, f"numbers in docs/cpu-study.md found in no report under results/: {missing}"
