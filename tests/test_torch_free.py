"""Reading records does not import torch: method definitions and spec resolution load without it.

Each check runs in a fresh interpreter (the test process has torch loaded already) and fails on the
modules that pulled torch in. ltbench/lazy.py says how a method file stays importable without torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("torch", "torchvision", "cv2")


def _loaded_after(code: str) -> list[str]:
    """The heavy modules loaded after running `code` in a fresh interpreter."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_method_definitions_load_without_torch():
    """Registry, every method's Hparams, defaults, resolution, branches and paper labels: no torch."""
    assert _loaded_after("""
        import dataclasses
        from ltbench.registry import get_method, list_methods
        from ltbench.pipelines import PIPELINES
        for entry in list_methods():
            cls = get_method(entry.name).cls
            hp = cls.resolve_hparams({**{f.name: f.default for f in dataclasses.fields(cls.Hparams)},
                                      **entry.defaults}, 200)
            cls.step_branches(hp, 200)
            cls.Hparams(**hp)
            entry.paper_label, entry.paper_ablations, cls.family_defaults, cls.train_defaults
    """) == []


def test_spec_resolution_loads_without_torch():
    """build_spec of every registered method (what `table` and `status` expand grids with): no torch."""
    assert _loaded_after("""
        from ltbench.config import build_spec
        from ltbench.registry import list_methods
        for entry in list_methods():
            for dataset in ("cifar100", "shapes"):
                build_spec(entry.name, dataset, 100, 0, "paper", {})
    """) == []
