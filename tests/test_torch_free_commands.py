"""The record-reading commands (`table`, `status`, `list`, `splits`, `compare`) run without importing torch.

Each command runs in a fresh interpreter through the real entry point (`ltbench.cli.main` with its argv)
on the golden fixture runs; the probe then reports whether torch (or torchvision / OpenCV) was loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
RUNS = FIXTURES / "runs"
GRID = FIXTURES / "grid.yaml"
HEAVY = ("torch", "torchvision", "cv2")

COMMANDS = {
    "table": ["table", str(GRID), "--results-dir", str(RUNS), "--out", "{tmp}", "--show"],
    "status": ["status", str(GRID), "--results-dir", str(RUNS)],
    "list": ["list", "methods"],
    "splits": ["splits", "--dataset", "cifar100", "--ratio", "100"],
    "compare": ["compare", str(GRID), "--results-dir", str(RUNS), "--a", "drw", "--b", "erm", "-m", "top1",
                "-m", "few"],
}


def _run(argv: list[str]) -> tuple[int, list[str], str]:
    """(exit code, heavy modules loaded, stderr) of `ltbench <argv>` run in-process in a fresh interpreter."""
    probe = textwrap.dedent(f"""
        import json, sys
        sys.argv = ["ltbench", *{argv!r}]
        from ltbench.cli import main
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))
    """)
    env = {**os.environ, "LTBENCH_PAPER_DIR": str(REPO / "results" / "paper"), "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env,
                         cwd=REPO)
    code, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    return code, heavy, out.stderr


@pytest.mark.parametrize("command", list(COMMANDS))
def test_record_reading_commands_do_not_import_torch(command, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in COMMANDS[command]]
    code, heavy, stderr = _run(argv)
    assert code == 0, stderr[-2000:]
    assert heavy == [], f"`ltbench {' '.join(argv)}` imported {heavy}"
