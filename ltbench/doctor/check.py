"""The doctor's report item (`Check`), its statuses and the version floors the checks compare against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OK, FAIL, WARN, INFO, SKIP = "ok", "fail", "warn", "info", "skip"
MIN_PYTHON = (3, 10)
MIN_TORCH = (2, 1)  # pyproject.toml's floor


@dataclass
class Check:
    """One reported item: `status` is ok / fail / warn / info / skip; `required` items decide the exit code."""

    name: str
    status: str
    value: str
    hint: str = ""
    required: bool = False
    data: dict[str, Any] | None = None  # machine-readable details (JSON output)


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)
