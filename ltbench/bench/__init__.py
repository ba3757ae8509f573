"""`ltbench bench`: where a training step's time goes, measured with the real trainer in one process.

Every figure comes from *variants* (one step each: a bare model step, a full trainer step, an input
pipeline, a saliency call, ...) that run **interleaved** in a fresh random order in every round. A
round times `steps` calls of each variant, so a burst of outside load hits all variants alike. Each
variant reports its median over rounds with [min, max]; every ratio is computed **per round** (both
sides from the same round) and then summarised the same way. Speed is shown by this command, never
by timed tests (DESIGN.md "Performance stance").

What is measured (a *case* is one kind of training step: ERM, and each step branch the method declares
in `Method.step_branches`, e.g. SMCL's masked and plain steps):

1. ``bare:<case>``: forward + backward + optimiser step of the case's model on pre-staged,
   pre-normalised tensors of exactly the shapes the method forwarded (recorded on a warm-up step);
2. ``full:<case>``: what `Trainer.train_epoch` does per step: gather the batch, build the method's
   views, then the trainer's own `Trainer.train_step` (``method.training_step``: target sampling,
   saliency, masking, loss; backward, step, and the on-device log sums). ``overhead_ratio = full /
   bare``; ``step_vs_erm = full / full:erm``, against ``predicted_step_vs_erm`` = images forwarded per
   step / images forwarded by ERM. ``late_epoch_vs_erm`` mixes the branches' full steps by their
   ``late_share`` (``late_epoch_step_mix``: the first branch's share);
3. ``input:ours`` (gather + the method's view pipelines + normalisation, as the trainer feeds the
   model) against ``input:classic-w<k>``, a PIL + `DataLoader` pipeline with the same augmentations
   per sample (torchvision transforms); ``pipeline_speedup = classic-w0 / ours``;
4. ``saliency:<operator>`` on the batch's first view (SMCL masks that view), and its share of the
   ERM step; also two candidate replacements the trainer does not use yet (docs/performance.md):
   ``fine-grained-threaded`` (the same OpenCV maps over threads) and ``cached-map`` (per-image maps
   computed once, moved through the view's crop/flip; `ltbench.saliency_cache`); and ``model-cam``, the
   model-derived map of SMCL's ``mask_locator=model-saliency`` (one extra no-grad forward of the view,
   `ltbench.model_saliency`; a step that makes it counts it in ``predicted_step_vs_erm`` as a third of a
   trained image each, ``nograd_images_per_step``);
5. ERM bare-step variants: the other precision (bf16 autocast vs fp32), the other memory layout
   (channels-last vs contiguous), bf16 + channels-last, and, with ``compile=True``, ``torch.compile``.

Noise: the CPU is shared. Outside load shows in the per-round 1-minute load averages of the result's
``config``; with several busy processes, OpenMP's spinning threads can slow every variant several-fold
(docs/performance.md), so compare only rounds and runs taken under similar load.

Modules: `options` (BenchOptions), `cases` (one trainer per step kind; the full and bare steps),
`classic` (the PIL input path), `variants` (what is timed), `timing` (interleaved rounds), `result`
(the JSON and the targets), `run` (`run_bench`).
"""

from __future__ import annotations

from ltbench.bench.classic import ClassicDataset, classic_transform
from ltbench.bench.options import CHEAP_REPS, DEFAULT_WORKERS, BenchOptions
from ltbench.bench.result import MULTI_VIEW_LIMIT, TARGETS, targets_report
from ltbench.bench.run import run_bench
from ltbench.bench.timing import summarize
from ltbench.cpu import keep_buffers_on_heap

__all__ = ["CHEAP_REPS", "DEFAULT_WORKERS", "MULTI_VIEW_LIMIT", "TARGETS", "BenchOptions", "ClassicDataset",
           "classic_transform", "keep_buffers_on_heap", "run_bench", "summarize", "targets_report"]
