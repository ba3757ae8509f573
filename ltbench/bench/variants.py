"""The variants `ltbench bench` times, built from its cases (ltbench.bench.cases).

- per case: ``bare:<case>`` and ``full:<case>``;
- ERM bare steps in the other precision, the other memory layout, bf16 + channels-last, compiled;
- the input path: ``input:ours`` (the method's batched views + normalisation) against the classic PIL
  path ``input:classic-w<k>`` (ltbench.bench.classic);
- saliency on the batch's first view (the one SMCL masks): each operator of `ltbench.saliency`, the
  model-derived map (`ltbench.model_saliency`) and two candidate replacements (docs/performance.md).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ltbench.bench.cases import (
    Case,
    autocast_for,
    bare_step_fn,
    full_step,
    index_batches,
    model_of,
    sgd_like,
)
from ltbench.bench.classic import ClassicDataset, classic_transform, classic_variant
from ltbench.bench.timing import Variant


@dataclass(frozen=True)
class ErmLayout:
    """Which ERM bare-step variants were timed (names the result's speed-ups are computed from)."""

    precision: str  # the spec's
    other_precision: str
    layout_name: str  # "bare:erm:channels-last" or "bare:erm:contiguous": the layout the trainer does not use


def step_variants(cases: Sequence[Case], reps: int) -> list[Variant]:
    """``bare:<case>`` and ``full:<case>`` of every case."""
    out = []
    for case in cases:
        tr = case.trainer
        out.append(Variant(f"bare:{case.name}", bare_step_fn(model_of(tr), tr.optimizer, case.staged,
                                                             case.staged_labels, tr.autocast), reps))
        out.append(Variant(f"full:{case.name}", functools.partial(full_step, case), reps))
    return out


def erm_variants(erm: Case, device: torch.device, compile_: bool, reps: int) -> tuple[list[Variant], ErmLayout]:
    """ERM bare-step variants: the other precision, the other memory layout, bf16 + channels-last, compile."""
    etr, spec = erm.trainer, erm.spec
    precision = spec.train.precision
    other_precision = "fp32" if precision == "bf16" else "bf16"
    out = [Variant(f"bare:erm:{other_precision}",
                   bare_step_fn(etr.model, etr.optimizer, erm.staged, erm.staged_labels,
                                autocast_for(device, other_precision)), reps)]
    alt_cl = not etr.channels_last
    fmt = torch.channels_last if alt_cl else torch.contiguous_format
    layout_model = copy.deepcopy(etr.model).to(memory_format=fmt)
    layout_inputs = [x.contiguous(memory_format=fmt) for x in erm.staged]
    layout_name = "bare:erm:channels-last" if alt_cl else "bare:erm:contiguous"
    out.append(Variant(layout_name, bare_step_fn(layout_model, sgd_like(layout_model, spec), layout_inputs,
                                                 erm.staged_labels, etr.autocast), reps))
    if precision == "fp32" and alt_cl:  # the CPU's best combination, against the fp32 contiguous step
        out.append(Variant("bare:erm:bf16:channels-last",
                           bare_step_fn(layout_model, sgd_like(layout_model, spec), layout_inputs,
                                        erm.staged_labels, autocast_for(device, "bf16")), reps))
    if compile_:
        compiled_model = copy.deepcopy(etr.model)
        out.append(Variant("bare:erm:compiled",
                           bare_step_fn(torch.compile(compiled_model), sgd_like(compiled_model, spec),
                                        erm.staged, erm.staged_labels, etr.autocast), reps))
    return out, ErmLayout(precision, other_precision, layout_name)


def input_variants(case: Case, bundle: Any, workers: Sequence[int], n_batches: int, reps: int,
                   device: torch.device) -> tuple[list[Variant], Case]:
    """``input:ours`` and ``input:classic-w<k>`` for the case's views; also the case whose index
    batches they read (the saliency variants take its first batch)."""
    mtr = case.trainer
    view_names = tuple(mtr.method.views())
    input_case = Case("input", case.spec, mtr, indices=index_batches(mtr, case.spec.train.batch_size, n_batches))

    def ours() -> None:
        images, _labels = mtr.train.fetch(input_case.next_indices())
        views = [mtr.augment(p, images) for p in view_names]
        mtr.normalize(torch.cat(views))

    out = [Variant("input:ours", ours, reps)]
    info = bundle.info
    images_hwc = bundle.train_images.permute(0, 2, 3, 1).contiguous().numpy()
    classic = ClassicDataset(images_hwc, bundle.train_labels.numpy(),
                             [classic_transform(p, info.size, info.mean, info.std) for p in view_names])
    for w in workers:
        out.append(classic_variant(f"input:classic-w{w}", classic, case.spec.train.batch_size, w, reps, device))
    return out, input_case


def saliency_variants(case: Case, input_case: Case, info: Any, device: torch.device,
                      reps: int) -> tuple[list[Variant], str]:
    """Saliency of the batch's first view: every operator, the model's map, two candidate replacements.
    Also returns the case's default operator (the one its training step uses)."""
    from ltbench.augment import crop_flip_params
    from ltbench.model_saliency import class_activation_maps
    from ltbench.saliency import SALIENCY_METHODS, locate, peak
    from ltbench.saliency_cache import SaliencyBank, fine_grained_threaded

    mtr = case.trainer
    first_view = tuple(mtr.method.views())[0]
    images, labels = mtr.train.fetch(input_case.indices[0])
    sal_view = mtr.augment(first_view, images)
    hp = case.spec.hparams
    sal_input = hp.get("saliency_input", "uint8")
    default_op = hp.get("saliency", "fine-grained")
    stats = {} if sal_view.shape[1] == 3 else {"mean": info.mean, "std": info.std}
    out = [Variant(f"saliency:{op}", functools.partial(locate, sal_view, "saliency", op, sal_input, None, **stats),
                   reps) for op in SALIENCY_METHODS]
    # model-derived saliency (SMCL mask_locator=model-saliency): the extra no-grad forward + CAM of x1
    cam_x = mtr.normalize(sal_view)
    out.append(Variant("saliency:model-cam", lambda: class_activation_maps(mtr.model, cam_x, labels), reps))
    # candidate replacements of the default operator (not used by the trainer; docs/performance.md)
    out.append(Variant("saliency:fine-grained-threaded",
                       lambda: peak(fine_grained_threaded(sal_view, sal_input, None, **stats)), reps))
    bank = SaliencyBank.build(mtr.train.images, "fine-grained", sal_input, **stats)
    sal_idx = input_case.indices[0]

    def cached_peaks() -> None:
        top, left, flip = crop_flip_params(sal_idx.shape[0], 4, mtr.generator, device)
        bank.peaks(sal_idx, top, left, flip, 4)

    out.append(Variant("saliency:cached-map", cached_peaks, reps))
    return out, default_op
