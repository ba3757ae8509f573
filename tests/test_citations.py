"""Comments and docs cite sources a reader can open: a paper, a reference repository and file, or docs/.

They must not cite a specification or research note kept outside this repository ("spec §4.10",
"spec/methods.md", "perf-anchors"), or a path on the machine the project was written on (/work/...,
../shared/...). docs/methods.md holds what such citations used to point to, and every
"docs/methods.md §<section>" citation must name one of its sections.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCOPE = ("ltbench", "methods", "tests", "scripts", "docs", "experiments", "README.md")
BINARY = {".png", ".jpg", ".jpeg", ".gif", ".pdf", ".pt", ".pth", ".npy", ".npz", ".gz", ".zip", ".pyc"}
FORBIDDEN = {
    "a section of an outside spec": re.compile(
        r"\bspec\b[`'\" ]*(methods\.md)?[`'\" ]*§|\bspec\s+\d+\.\d|\bspec\s+(appendix|open question)", re.IGNORECASE),
    "the outside spec file": re.compile(r"spec/methods"),
    "an outside research note or seed text": re.compile(r"perf-anchors|harness-anchors|\bseed 00\d\b|seeds/"),
    "a machine path": re.compile(r"/work/|\.\./shared"),
}


def _files() -> list[Path]:
    """Tracked and not-ignored files in scope (a checkout without git: every file in scope)."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *SCOPE],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        paths = [ROOT / line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for name in SCOPE for p in ([ROOT / name] if (ROOT / name).is_file()
                                                else (ROOT / name).rglob("*"))]
    this = Path(__file__).resolve()
    return sorted(p for p in paths
                  if p.is_file() and p.resolve() != this and p.suffix.lower() not in BINARY)


def _violations(text: str) -> list[str]:
    return [f"{lineno}: {what}: {line.strip()[:120]}"
            for lineno, line in enumerate(text.splitlines(), 1)
            for what, pattern in FORBIDDEN.items() if pattern.search(line)]


def test_the_patterns_catch_what_they_should():
    assert _violations("# see spec §4.10.3 row A")
    assert _violations('"""Sampler (spec ``methods.md`` §4.7)."""')
    assert _violations("description (reconstructed, spec 4.10)")
    assert _violations("| recipe (`../shared/spec/methods.md`) |")
    assert _violations("Spec references are to ``/work/shared/spec/methods.md``")
    assert _violations("(CPU otherwise). Spec Appendix B: head 0.0449") and _violations("(spec open question 13)")
    assert _violations("# the recipe of perf-anchors §4.3") and _violations("# (seed 002)")
    assert not _violations("# docs/methods.md §SMCL, row K; the run spec's hash; LaTeX '§' -> \\S{}")


def _texts() -> dict[Path, str]:
    out = {}
    for path in _files():
        try:
            out[path] = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
    return out


METHODS_DOC = ROOT / "docs" / "methods.md"
CITE = re.compile(r"methods\.md(?:\]\([^)]*\))?\s*(?:#\s*)?§")  # "methods.md §X", "[methods.md](..) §X"
ANCHOR = re.compile(r"methods\.md#([\w-]+)")


def _sections() -> list[str]:
    return [line[3:].strip() for line in METHODS_DOC.read_text(encoding="utf-8").splitlines()
            if line.startswith("## ")]


def _anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_methods_doc_citations_name_its_sections():
    sections = sorted(_sections(), key=len, reverse=True)
    anchors = {_anchor(s) for s in sections}
    assert "SMCL" in sections and "smcl" in anchors
    bad = []
    for path, text in _texts().items():
        for m in CITE.finditer(text):
            rest = text[m.end():m.end() + 60]
            if not any(rest.startswith(s) for s in sections):
                bad.append(f"{path.relative_to(ROOT)}: §{rest.splitlines()[0]}")
        bad += [f"{path.relative_to(ROOT)}: #{a}" for a in ANCHOR.findall(text) if a not in anchors]
    assert not bad, "no such section in docs/methods.md:\n" + "\n".join(bad)


def test_no_outside_spec_or_machine_path_is_cited():
    texts = _texts()
    assert METHODS_DOC in texts
    bad = [f"{path.relative_to(ROOT)}:{v}" for path, text in texts.items() for v in _violations(text)]
    assert not bad, "cite the paper, the reference code or docs/methods.md instead:\n" + "\n".join(bad)
