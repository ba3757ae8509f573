"""Methods: one file each; importing a module registers its names. Add one import line per new file."""

from ltbench.methods import (  # noqa: F401
    balanced_softmax,
    bcl,
    cb_focal,
    cmo,
    concutmix,
    cutmix,
    erm,
    ldam,
    mixup,
    smcl,
)
