"""Methods: one file each; importing a module registers its names. Add one import line per new file."""

# relative: mypy checks these files as the package `methods` (pyproject.toml [tool.mypy])
from . import (  # noqa: F401
    balanced_softmax,
    bcl,
    cb_focal,
    cmo,
    concutmix,
    cutmix,
    erm,
    ldam,
    logit_adjust,
    mixup,
    smcl,
)
