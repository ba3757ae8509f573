"""`python -m ltbench ...` = the `ltbench` command (what sweep workers run: `python -m ltbench run-spec`)."""

from ltbench.cli import main

main()
