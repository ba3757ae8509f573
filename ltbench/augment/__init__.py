"""Batched, per-sample training augmentation on the images' device (the shared ops every pipeline uses).

``core``: crop + flip, CutOut, CutMix / SMCL boxes and masks, paste, normalisation; ``sim``: SimAugment
(RandomResizedCrop, colour jitter, grayscale). The names are re-exported here, so callers import them
from ``ltbench.augment``.
"""

from ltbench.augment.core import BOX_CLIPS as BOX_CLIPS
from ltbench.augment.core import (
    box_masks,
    crop_flip_apply,
    crop_flip_params,
    cutmix_box,
    cutout,
    cutout_mask,
    normalize,
    paste,
    random_crop_flip,
    rgb_to_gray,
    square_mask,
)
from ltbench.augment.sim import color_jitter, resized_crop_flip, rrc_params, sim_augment

__all__ = [
    "BOX_CLIPS",
    "box_masks",
    "color_jitter",
    "crop_flip_apply",
    "crop_flip_params",
    "cutmix_box",
    "cutout",
    "cutout_mask",
    "normalize",
    "paste",
    "random_crop_flip",
    "resized_crop_flip",
    "rgb_to_gray",
    "rrc_params",
    "sim_augment",
    "square_mask",
]
