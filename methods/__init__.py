"""Methods: one file each; importing a module registers its names. Add one import line per new file."""

from ltbench.methods import erm  # noqa: F401
