"""The import layering of ltbench, read from the source: no import cycle, no import from a higher layer.

docs/architecture.md draws these layers. Every module under ltbench/ and methods/ (installed as
ltbench.methods) is parsed with `ast`; every `import`/`from ... import` of an ltbench module counts,
at module level and inside functions (a function-level import still runs, only later), and so does
`importlib.import_module("ltbench.x")` with a literal name (a computed name cannot be read). An import inside
`if TYPE_CHECKING:` never runs: it is a *type-only* edge, checked for layering (a type from a higher
layer is still a dependency on it) and for cycles separately (Python's usual way to name a type without
a runtime import; such a cycle must be a named allowance below).

How an import resolves to a module (the edge's target):
* `import a.b.c` -> the module a.b.c; `from a.b import c` -> a.b.c when c is a module, else a.b.
* A package's `__init__` is a facade: `from ltbench.report import build_table` is an edge to
  ltbench.report (its `__init__`, which runs) *and* to the module the `__init__` re-exports the name
  from (ltbench.report.build), including the names a lazy `__init__` (ltbench.data, ltbench.models)
  names under TYPE_CHECKING and loads on first use. The `__init__`'s own imports are its edges.
* Importing a submodule runs its package's `__init__` first; that implicit edge is not counted
  (otherwise every package whose `__init__` re-exports a submodule would be a cycle by construction).
  An explicit `from ltbench.x import name` inside ltbench.x's own submodules is counted.

A violation is fixed by moving the import (or the code) to the right layer; a deliberate exception is a
named entry in ALLOWED_EDGES or TYPE_ONLY_CYCLES with the reason, so it stays visible.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package name -> source folder (pyproject.toml [tool.setuptools] package-dir: methods/ is ltbench.methods)
SOURCES = {"ltbench": ROOT / "ltbench", "ltbench.methods": ROOT / "methods"}

# ----- the layer map: highest first; a module may import its own layer and the layers below it -----------
# A module's layer is that of the longest prefix naming it or one of its packages ("ltbench.report" covers
# ltbench.report.paper; "ltbench.method" does not cover ltbench.methods). "ltbench" is the root
# __init__ alone (test_every_module_has_a_layer refuses it as a catch-all).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cli", ("ltbench.cli", "ltbench.__main__")),
    # plans and drives many runs, or reads their records into tables, figures and checks
    ("orchestration", ("ltbench.sweep", "ltbench.launch", "ltbench.launchers", "ltbench.cells", "ltbench.report",
                       "ltbench.analysis", "ltbench.compare", "ltbench.bench", "ltbench.doctor", "ltbench.estimate")),
    # one run: the lifecycle (train), the loop (trainer), and the run directory it writes and others read
    ("run", ("ltbench.train", "ltbench.trainer", "ltbench.checkpoint", "ltbench.tracking", "ltbench.locks",
             "ltbench.predictions", "ltbench.distributed", "ltbench.rundir")),
    # what a run is: a RunConfig resolved from data presets, method registrations and overrides; grids of them
    ("spec", ("ltbench.config", "ltbench.grid", "ltbench.spec_rules", "ltbench.splits")),
    # the method contract, the registry and the method files
    ("methods", ("ltbench.methods", "ltbench.method", "ltbench.registry", "ltbench.mixing")),
    # pieces methods and the trainer compose: losses, augmentations, saliency, metrics, statistics
    ("shared", ("ltbench.losses", "ltbench.losses_balanced", "ltbench.augment", "ltbench.augment_imagenet",
                "ltbench.autoaugment", "ltbench.pipelines", "ltbench.saliency", "ltbench.saliency_cache",
                "ltbench.model_saliency", "ltbench.metrics", "ltbench.stats", "ltbench.protocol",
                "ltbench.fingerprint", "ltbench.background", "ltbench.schedules", "ltbench.sources",
                "ltbench.device_constants", "ltbench.cpu")),
    ("models/data", ("ltbench.models", "ltbench.data")),
    # no ltbench dependency beyond this layer: errors, torch-on-first-use, atomic files, spec hashing
    ("foundation", ("ltbench", "ltbench.errors", "ltbench.lazy", "ltbench.bounds", "ltbench.files",
                    "ltbench.faults", "ltbench.spec_hash")),
)

# Runtime edges left out of the cycle and layer checks, each with why it is right as it is.
ALLOWED_EDGES: dict[tuple[str, str], str] = {
    # Plugin discovery: the method files import the registry to register themselves, and the registry imports
    # the package of method files (in registry._load, on the first look-up) so that every name is registered.
    # This inversion is what lets the trainer and the report never name a method.
    ("ltbench.registry", "ltbench.methods"): "the registry loads the method files it registers",
}

# Cycles that exist only through `if TYPE_CHECKING:` imports (never at run time), each with why.
TYPE_ONLY_CYCLES: dict[frozenset[str], str] = {
    # report.table lists report.paper's footnotes among its own (NOTES, the order footnotes print in);
    # report.paper.attach_paper fills the table model's Cell/Row/Column, named for the type checker only.
    frozenset({"ltbench.report.paper", "ltbench.report.table"}):
        "the table model lists the paper's footnotes; the paper fills the table model's cells (types only)",
}


# ----- reading the imports ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    kind: str  # "module" (runs on import), "function" (runs when the function does), "type" (TYPE_CHECKING)

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line}, {self.kind})"


def module_files() -> dict[str, Path]:
    """Every module's dotted name -> its file (a package is its __init__.py)."""
    out: dict[str, Path] = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if package == "ltbench" and parts[0] == "methods":  # not there; methods/ is the source of truth
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _literal_import_module(node: ast.AST) -> str | None:
    """The module of `importlib.import_module("ltbench.x")` (a literal name: a dynamic import that is still an
    edge, e.g. the registry loading the method files); None for anything else, and for a computed name."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or \
        (isinstance(func, ast.Name) and func.id == "import_module")
    arg = node.args[0]
    return arg.value if named and isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None


def raw_imports(name: str, path: Path) -> list[tuple[str, str | None, int, str]]:
    """(module, imported name or None for `import module`, line, kind) for every import in the file."""
    is_package = path.name == "__init__.py"
    found: list[tuple[str, str | None, int, str]] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_statement(stmt, "type")
                for stmt in child.orelse:
                    visit_statement(stmt, kind)
            else:
                visit_statement(child, kind)

    def visit_statement(node: ast.AST, kind: str) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, None, node.lineno, kind) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            found.extend((base, alias.name, node.lineno, kind) for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            visit(node, "type" if kind == "type" else "function")
        else:
            dynamic = _literal_import_module(node)
            if dynamic is not None and isinstance(node, ast.Call):
                found.append((dynamic, None, node.lineno, kind))
            visit(node, kind)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), "module")
    return found


def _internal(module: str) -> bool:
    return module == "ltbench" or module.startswith("ltbench.")


def build_edges(files: dict[str, Path]) -> list[Edge]:
    """Every import between ltbench modules, resolved as the module docstring says."""
    imports = {name: raw_imports(name, path) for name, path in files.items()}
    # package -> {name it re-exports: the module it comes from} (eager, lazy or TYPE_CHECKING imports)
    reexports: dict[str, dict[str, str]] = {}
    for name, path in files.items():
        if path.name == "__init__.py":
            reexports[name] = {alias: module for module, alias, _, _ in imports[name]
                               if alias is not None and module in files and f"{module}.{alias}" not in files}
    edges: list[Edge] = []
    for source, found in imports.items():
        for module, alias, line, kind in found:
            if not _internal(module):
                continue
            if alias is None:  # import a.b.c: the longest known module
                parts = module.split(".")
                while parts and ".".join(parts) not in files:
                    parts.pop()
                targets = [".".join(parts)] if parts else []
            elif f"{module}.{alias}" in files:  # from a.b import c, c a module
                targets = [f"{module}.{alias}"]
            else:
                targets = [module]
                home = reexports.get(module, {}).get(alias)
                if home is not None:
                    targets.append(home)
            assert all(t in files for t in targets) and targets, f"{source} line {line}: cannot resolve {module}"
            edges.extend(Edge(source, t, line, kind) for t in targets if t != source)
    return sorted(set(edges), key=lambda e: (e.source, e.target, e.line, e.kind))


def layer_prefix(module: str) -> str | None:
    """The longest LAYERS prefix that is `module` or one of its packages."""
    best = None
    for _, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > len(best)):
                best = p
    return best


def layer_rank(module: str) -> int:
    """0 for the highest layer (cli), larger lower down."""
    prefix = layer_prefix(module)
    return next(i for i, (_, prefixes) in enumerate(LAYERS) if prefix in prefixes)


def layer_name(module: str) -> str:
    return LAYERS[layer_rank(module)][0]


def strongly_connected(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[set[str]]:
    """Tarjan's strongly connected components (iterative); only those with more than one module."""
    graph: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(component)
    return out


def cycles(edges: list[Edge], nodes: Iterable[str], kinds: set[str]) -> list[set[str]]:
    pairs = [(e.source, e.target) for e in edges if e.kind in kinds and (e.source, e.target) not in ALLOWED_EDGES]
    return strongly_connected(nodes, pairs)


def upward(edges: list[Edge]) -> list[Edge]:
    """Imports of a higher layer (a smaller rank) than the importer's."""
    return [e for e in edges if (e.source, e.target) not in ALLOWED_EDGES
            and layer_rank(e.target) < layer_rank(e.source)]


def describe_cycle(component: set[str], edges: list[Edge]) -> str:
    inside = [str(e) for e in edges if e.source in component and e.target in component]
    return " | ".join(sorted(inside))


# ----- the checks --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return module_files()


@pytest.fixture(scope="module")
def edges(files: dict[str, Path]) -> list[Edge]:
    return build_edges(files)


def test_every_module_has_a_layer(files: dict[str, Path]) -> None:
    missing = [m for m in files if layer_prefix(m) is None or (layer_prefix(m) == "ltbench" and m != "ltbench")]
    assert not missing, f"add these modules to LAYERS in tests/test_layers.py (and docs/architecture.md): {missing}"
    stale = [p for _, prefixes in LAYERS for p in prefixes if not any(m == p or m.startswith(p + ".") for m in files)]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_no_import_cycles(files: dict[str, Path], edges: list[Edge]) -> None:
    found = cycles(edges, files, {"module", "function"})
    assert not found, "import cycles:\n" + "\n".join(describe_cycle(c, edges) for c in found)


def test_type_only_cycles_are_the_named_ones(files: dict[str, Path], edges: list[Edge]) -> None:
    found = {frozenset(c) for c in cycles(edges, files, {"module", "function", "type"})}
    unexpected = [c for c in found if c not in TYPE_ONLY_CYCLES]
    assert not unexpected, "cycles through TYPE_CHECKING imports:\n" + \
        "\n".join(describe_cycle(set(c), edges) for c in unexpected)
    gone = [sorted(c) for c in TYPE_ONLY_CYCLES if c not in found]
    assert not gone, f"TYPE_ONLY_CYCLES lists cycles that no longer exist (remove them): {gone}"


def test_no_import_from_a_higher_layer(edges: list[Edge]) -> None:
    bad = upward(edges)
    assert not bad, "imports from a higher layer:\n" + "\n".join(
        f"{e}: {layer_name(e.source)} imports {layer_name(e.target)}" for e in bad)


def test_allowances_are_still_needed(edges: list[Edge]) -> None:
    present = {(e.source, e.target) for e in edges}
    assert not [k for k in ALLOWED_EDGES if k not in present], "ALLOWED_EDGES lists imports that are gone"


def test_the_architecture_page_draws_these_layers() -> None:
    """docs/architecture.md's mermaid picture names the layers in this order, each with its modules."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    picture = page.split("```mermaid", 1)[1].split("```", 1)[0]
    nodes = dict(re.findall(r'<b>([^<]+)</b><br/>(.*?)"\]', picture))
    assert list(nodes) == [name for name, _ in LAYERS]
    for name, prefixes in LAYERS:
        words = set(re.findall(r"[\w.]+", nodes[name]))
        missing = [p for p in prefixes if p != "ltbench" and p not in words and p.removeprefix("ltbench.") not in words]
        assert not missing, f"docs/architecture.md's {name} box lacks {missing}"


# ----- the checker catches what it should (synthetic sources) --------------------------------------------

def _fake_package(tmp_path: Path, sources: dict[str, str]) -> dict[str, Path]:
    """Write modules named like ltbench's to tmp_path and return them as module_files() would."""
    out = {}
    for module, text in sources.items():
        is_package = any(other.startswith(module + ".") for other in sources)
        path = tmp_path.joinpath(*module.split("."), "__init__.py") if is_package else \
            tmp_path.joinpath(*module.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        out[module] = path
    return out


def test_the_checker_sees_a_function_level_cycle_and_an_upward_import(tmp_path: Path) -> None:
    fake = _fake_package(tmp_path, {
        "ltbench.losses": "def f():\n    from ltbench.augment import x\n",
        "ltbench.augment": "from ltbench.losses import f\n",
        "ltbench.metrics": "from ltbench.trainer import Trainer\n",
        "ltbench.trainer": "",
        "ltbench.stats": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ltbench.errors import E\n",
        "ltbench.errors": "def g():\n    from ltbench import stats\n",
        "ltbench.bounds": "import importlib\n\ndef h():\n    return importlib.import_module('ltbench.cli')\n",
        "ltbench.cli": "",
    })
    fake_edges = build_edges(fake)
    kinds = {(e.source, e.target): e.kind for e in fake_edges}
    assert kinds[("ltbench.losses", "ltbench.augment")] == "function"
    assert kinds[("ltbench.stats", "ltbench.errors")] == "type"
    assert cycles(fake_edges, fake, {"module", "function"}) == [{"ltbench.losses", "ltbench.augment"}]
    assert {frozenset(c) for c in cycles(fake_edges, fake, {"module", "function", "type"})} == \
        {frozenset({"ltbench.losses", "ltbench.augment"}), frozenset({"ltbench.stats", "ltbench.errors"})}
    bad = {(e.source, e.target) for e in upward(fake_edges)}
    assert bad == {("ltbench.metrics", "ltbench.trainer"), ("ltbench.errors", "ltbench.stats"),
                   ("ltbench.bounds", "ltbench.cli")}  # the last through importlib.import_module


def test_a_facade_import_reaches_the_reexporting_module(tmp_path: Path) -> None:
    fake = _fake_package(tmp_path, {
        "ltbench.report": "from ltbench.report.table import Cell\n",
        "ltbench.report.table": "",
        "ltbench.cells": "from ltbench.report import Cell\n",
    })
    targets = {e.target for e in build_edges(fake) if e.source == "ltbench.cells"}
    assert targets == {"ltbench.report", "ltbench.report.table"}
