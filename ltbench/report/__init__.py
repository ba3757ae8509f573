"""Run directories -> one tidy DataFrame -> tables (Markdown, LaTeX, CSV, terminal) and figures.

    frame = collect(results_dir)                 # one row per finished run
    table = build_table(frame, grid, select="last")
    write_table(table, out_dir)                  # <name>.md, <name>.tex, <name>.csv

One module per concern:

- `collect`: run directories -> the tidy frame (one row per finished run);
- `grid_runs`: which runs of the frame belong to a grid, and which of its runs failed;
- `selection`: selection rules (last epoch, best test epoch, validation-selected) as objects;
- `paper`: everything about the SMCL paper (row labels, its tables' settings, reported numbers, footnotes);
- `table`: the table model (rows, columns, cells with numbers); `build`: frame + grid -> table;
- `render`: Markdown, LaTeX, CSV and the terminal table; `compact`: the readable Markdown layout;
- `badges`, `costs`: opt-in cell annotations; `figures`: ablation, per-class and forest plots;
- `labels`: the names, marks and number formats all of them share.

Nothing here imports torch (grid_runs.grid_run_ids expands a grid through ltbench.grid, which builds
specs); matplotlib is imported only to draw. Numbers stay numeric until rendering; the CSV is long and
numeric (one row per table cell).
"""

from ltbench.report.build import build_table
from ltbench.report.collect import (
    aggregate,
    collect,
    config_signature,
    find_run_dirs,
    read_run,
    tidy_frame,
    value_column,
)
from ltbench.report.figures import ablation_data, plot_ablation, plot_per_class
from ltbench.report.grid_runs import grid_failures, grid_run_ids, select_runs
from ltbench.report.labels import (
    BACKGROUND_COLUMNS,
    DASH,
    DATASET_LABELS,
    INTERVAL_METRICS,
    LOWER_IS_BETTER,
    METRIC_LABELS,
    METRICS,
    fmt_ratio,
    fmt_value,
    setting_id,
    setting_label,
)
from ltbench.report.paper import ABLATION_SETTING, PAPER_FILES, TABLE1_SETTINGS, load_paper, paper_dir, paper_label
from ltbench.report.render import (
    RENDERERS,
    display_frame,
    markdown_tail,
    render_csv,
    render_latex,
    render_markdown,
    rich_table,
    table_csv_frame,
    tex_escape,
    write_table,
)
from ltbench.report.selection import RULES, SELECT_COLUMNS, SELECT_TEXT, SelectionRule, selection_rule
from ltbench.report.table import NOTES, Cell, Column, Row, TableResult

__all__ = [
    "ABLATION_SETTING", "BACKGROUND_COLUMNS", "DASH", "DATASET_LABELS", "INTERVAL_METRICS", "LOWER_IS_BETTER",
    "METRICS", "METRIC_LABELS", "NOTES", "PAPER_FILES", "RENDERERS", "RULES", "SELECT_COLUMNS", "SELECT_TEXT",
    "TABLE1_SETTINGS", "Cell", "Column", "Row", "SelectionRule", "TableResult", "ablation_data", "aggregate",
    "build_table", "collect", "config_signature", "display_frame", "find_run_dirs", "fmt_ratio", "fmt_value",
    "grid_failures", "grid_run_ids", "load_paper", "markdown_tail", "paper_dir", "paper_label", "plot_ablation",
    "plot_per_class", "read_run", "render_csv", "render_latex", "render_markdown", "rich_table", "select_runs",
    "selection_rule", "setting_id", "setting_label", "table_csv_frame", "tex_escape", "tidy_frame",
    "value_column", "write_table",
]
