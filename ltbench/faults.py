"""Fault injection for the reliability tests: die (SIGKILL) at a named point of a real run.

`LTBENCH_FAULT=<point>:<n>` makes the process kill itself the n-th time (1-based) it reaches
`point`. The points are the places where a kill can leave something half-done:

- `step`: after a training step (mid-epoch);
- `write:<file name>`: inside an atomic write of that file, after half of the bytes went to the
  temp file and before the rename (e.g. `write:last.pt`, `write:final.json`).

Unset (always, outside tests) it costs one cached function call per pass. SIGKILL, not an exception,
because the point is to prove that nothing the process had not finished is ever read as valid.
"""

from __future__ import annotations

import functools
import os
import signal

_counts: dict[str, int] = {}


@functools.cache  # read once per process: reached() sits in the training step
def _target() -> tuple[str, int] | None:
    spec = os.environ.get("LTBENCH_FAULT")
    if not spec:
        return None
    point, _, nth = spec.rpartition(":")
    try:
        return point, int(nth)
    except ValueError:
        return None  # not of the form point:n: no fault (never break a real run over a test knob)


def reached(point: str) -> None:
    """Count a pass through `point`; SIGKILL this process on the pass LTBENCH_FAULT names."""
    target = _target()
    if target is None or target[0] != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
