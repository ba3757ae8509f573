"""The `ltbench` command line: thin wrappers that parse options and call the library.

    app.py       the Typer app, its consoles, error handling and `main` (the entry point)
    run.py       run, run-spec (the sweep's worker), doctor, bench
    catalog.py   list methods/datasets/presets, data fetch/cache, splits
    sweep.py     sweep (the console view of `ltbench.sweep`)
    grids.py     status, table, ablate, demo
    analysis.py  compare, analyze, plot per-class

The command modules only define functions; they are registered here, in the order `ltbench --help`
lists them, so no command module imports another's registration and none imports this package.
"""

from __future__ import annotations

from ltbench.cli import analysis, catalog, grids, run, sweep
from ltbench.cli.app import app, data_app, list_app, main, plot_app

app.command()(run.run)
app.command()(catalog.splits)
app.command()(run.doctor)
app.command()(run.bench)
app.command("run-spec", hidden=True)(run.run_spec)
app.command()(sweep.sweep)
app.command()(grids.status)
app.command()(grids.table)
app.command()(grids.ablate)
app.command()(grids.demo)
app.command()(analysis.compare)
app.command()(analysis.analyze)
list_app.command("methods")(catalog.list_methods_cmd)
list_app.command("datasets")(catalog.list_datasets_cmd)
list_app.command("presets")(catalog.list_presets_cmd)
data_app.command("fetch")(catalog.data_fetch)
data_app.command("cache")(catalog.data_cache)
plot_app.command("per-class")(analysis.plot_per_class)

__all__ = ["app", "main"]
