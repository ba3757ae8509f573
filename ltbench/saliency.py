"""Saliency maps and box-centre locators for SMCL's saliency masking (arXiv 2406.02223 Section 3.1, eq. 1).

SMCL masks a box centred on the saliency peak of each image. This module gives the map, the peak and the
three locators of the SMCL Table 3 ablation (Section 4.4): ``saliency``, ``random`` and ``center``.

Inputs are batched images ``[N, C, H, W]`` with C = 3 (RGB) or C = 1 (grayscale), either ``uint8`` or
floating point holding *un-normalised* pixels in [0, 1]. All outputs live on the images' device.

Operators (``method``)
----------------------
``"fine-grained"`` (default, the reference operator)
    OpenCV ``cv2.saliency.StaticSaliencyFineGrained`` (Montabone & Soto), the operator SaliencyMix uses and
    SMCL cites. One detector is created lazily and reused. The batch goes to the host in a single copy (the
    only host sync, OpenCV needs host memory) and ``computeSaliency`` runs image by image. What OpenCV
    receives depends on ``input_repr`` (docs/methods.md §SMCL, row C):

    * ``input_repr="uint8"`` (default): a C-contiguous ``uint8`` array, ``H x W x 3`` for RGB with the
      channels in stored (RGB) order, no BGR swap (OpenCV then applies its BGR->gray weights to RGB data,
      as it does in SaliencyMix); ``H x W`` for grayscale. Float images are converted with
      ``round(x * 255)`` clamped to [0, 255], which is exact for pixels that are k/255.
    * ``input_repr="normalized"``: what the SaliencyMix code hands to OpenCV. The image as float32
      ``x = uint8 / 255`` (float inputs are used as given, cast to float32), normalised with
      ``(x - mean) / std`` in float32 (subtract, then divide, the torchvision ``Normalize`` order, so the
      bits match), then laid out as a C-contiguous float32 ``H x W x C`` array (``H x W`` for C = 1).
      ``mean``/``std`` default to SaliencyMix's CIFAR constants, ``SALIENCYMIX_CIFAR_MEAN`` =
      (125.3, 123.0, 113.9)/255 and ``SALIENCYMIX_CIFAR_STD`` = (63.0, 62.1, 66.7)/255 (source:
      afm-shahab-uddin/SaliencyMix ``SaliencyMix_CIFAR/saliencymix.py``); these differ from the LDAM/CMO
      values (0.4914, 0.4822, 0.4465)/(0.2023, 0.1994, 0.2010). Grayscale images need explicit values.

    **What OpenCV does with a float32 input** (opencv-contrib-python-headless 5.0.0, checked here; the
    logic is in opencv_contrib ``modules/saliency/src/staticSaliencyFineGrained.cpp``). The image is
    converted to gray (``cvtColor`` keeps float32) and blurred twice, and the integral image is built from
    these real float values. The centre value of every centre-surround comparison, however, is read with
    ``at<uchar>(y, x)``: byte ``x`` of row ``y`` of the float32 buffer, i.e. byte ``x % 4`` of the
    little-endian float at column ``x // 4``. Only the left quarter of each row supplies centre values,
    each float spread over four map columns, and the surround means (sums of values of magnitude ~1,
    divided by the window area) are negligible next to bytes of 0..255. Observed: a Python re-implementation
    of the C++ loops fed those bytes reproduces OpenCV's float32 maps exactly (RGB and gray); the map
    correlates with the raw bytes of the blurred gray's left quarter at r > 0.999; a constant float image
    gives a map with period 4 along columns (a constant uint8 image gives an all-zero map); on 200 random
    CIFAR-normalised images the peak never fell on a column with ``x % 4 == 3`` (the sign/exponent byte,
    at most 0xC0 for |v| < 4). The
    ``normalized`` map is therefore a byte-level pattern, not the image's saliency (docs/methods.md
    §SaliencyMix saliency).

    Following SaliencyMix, OpenCV's float map in [0, 1] is quantised with ``(map * 255).astype(uint8)``
    (numpy float32 product, truncation) before the argmax. The returned maps are those uint8 values
    divided by 255 (float32, exactly k/255), so the argmax and its ties are the reference's.

``"spectral-residual"``
    Hou & Zhang (CVPR 2007) spectral residual, batched on the device with ``torch.fft`` and no host sync
    (the steps of Hou & Zhang's paper): Rec.601 gray (0.299 R + 0.587 G + 0.114 B) -> ``fft2`` -> log
    amplitude minus its 3 x 3 local mean (``avg_pool2d``; circular padding because the DFT is periodic;
    for real images this equals reflect padding at the zero-frequency border) -> ``ifft2`` of
    ``exp(residual) * exp(i * phase)`` -> squared magnitude -> 5 x 5 Gaussian blur, sigma = 1 px
    (``conv2d``, replicate padding) -> per-image min-max to [0, 1] (an all-constant map becomes 0).
    The map is computed at the image's own resolution (Hou & Zhang work at 64 x 64; no resizing here)
    and is invariant to a global gain of the gray image. It is a different saliency map from the OpenCV
    one (a different operator with other peaks), a documented option, not a substitute.

Peak and locators
-----------------
``peak`` returns the (row, col) of the first maximum in row-major order, like SaliencyMix's
``np.unravel_index(np.argmax(...))``: ``torch.argmax`` documents that ties return the first index.
``locate`` gives the box centre per image for ``"saliency"`` (peak of the map), ``"random"`` (uniform
row in [0, H) then uniform column in [0, W), drawn with ``torch.randint`` on the images' device with the
given generator, as CutMix's random box centre) or ``"center"`` ((H // 2, W // 2)).

Crop padding (``pad``)
----------------------
A view made by RandomCrop(32, padding=4) carries a zero strip along the borders the crop ran past, and the
step from the strip to the image is itself salient, so the peak lands on the border and a clipped box
shrinks. ``pad="exclude"`` computes the map on each image's content box instead: the image without the
all-zero rows and columns at its borders (the strip; an image whose own border is black, as in
Fashion-MNIST, loses those rows too, which carry no saliency). The peak is mapped back to full-image
coordinates. ``pad="include"`` (default) is SaliencyMix's: the map of the whole view.
Measured on SMCL's x1 views (crop + flip + CutOut) of the CPU study's subsets (ratio 100, head 500, 1,236
images, fine-grained operator): the peak lies in the outer 4-px band for 60 % (shapes) / 64 % (Fashion-MNIST)
of the views with ``include`` and 43 % / 46 % with ``exclude`` (on the outermost row or column: 53 % / 54 %
-> 25 % / 21 %); the mean clipped masked share for lam~ ~ Beta(1, 1) rises from 0.23 / 0.24 to 0.29 / 0.28
(random centres: 0.28 / 0.29; the drawn box: 0.44 / 0.43, which ``box_clip="shift"`` gives every locator).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ltbench.device_constants import device_constant
from ltbench.lazy import no_grad

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:  # torch on first use: the methods that import this module are read without it (ltbench/lazy.py)
    from ltbench.lazy import F, torch

__all__ = [
    "INPUT_REPRS",
    "LOCATORS",
    "SALIENCY_METHODS",
    "SALIENCY_PADS",
    "SALIENCYMIX_CIFAR_MEAN",
    "SALIENCYMIX_CIFAR_STD",
    "SR_BLUR_KSIZE",
    "SR_BLUR_SIGMA",
    "content_boxes",
    "locate",
    "peak",
    "saliency_maps",
]

SALIENCY_METHODS = ("fine-grained", "spectral-residual")
LOCATORS = ("saliency", "random", "center")
INPUT_REPRS = ("uint8", "normalized")
SALIENCY_PADS = ("include", "exclude")
MIN_CONTENT = 4  # a content box thinner than this (nearly all-zero image) falls back to the whole image

# SaliencyMix CIFAR normalisation (afm-shahab-uddin/SaliencyMix, SaliencyMix_CIFAR/saliencymix.py).
SALIENCYMIX_CIFAR_MEAN = tuple(v / 255.0 for v in (125.3, 123.0, 113.9))
SALIENCYMIX_CIFAR_STD = tuple(v / 255.0 for v in (63.0, 62.1, 66.7))

# Spectral residual: Gaussian blur of the squared-magnitude map (kernel side, sigma in pixels).
SR_BLUR_KSIZE = 5
SR_BLUR_SIGMA = 1.0
_SR_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, applied to RGB order
_SR_LOG_EPS = 1e-8  # keeps log finite at exactly-zero spectral amplitudes


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(repr(c) for c in choices)}")


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, C, H, W] with C in (1, 3), got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")


def _as_unit_float(images: torch.Tensor) -> torch.Tensor:
    """float32 pixels in [0, 1]: uint8 / 255 (as torchvision ``ToTensor``), floats cast to float32."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div(255)
    return images.to(torch.float32)


def _as_uint8(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images
    return images.to(torch.float32).mul(255).round_().clamp_(0, 255).to(torch.uint8)


def _channel_stats(values: Sequence[float] | None, default: tuple[float, ...], channels: int,
                   what: str) -> tuple[float, ...]:
    if values is None:
        if channels != len(default):
            raise ValueError(
                f"the default SaliencyMix CIFAR {what} has {len(default)} channels; "
                f"pass {what} explicitly for {channels}-channel images"
            )
        values = default
    values = tuple(float(v) for v in values)
    if len(values) not in (1, channels):
        raise ValueError(f"{what} must have 1 or {channels} values, got {len(values)}")
    return values


def _normalized(images: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor:
    channels = images.shape[1]
    mean_c = _channel_stats(mean, SALIENCYMIX_CIFAR_MEAN, channels, "mean")
    std_c = _channel_stats(std, SALIENCYMIX_CIFAR_STD, channels, "std")
    x = _as_unit_float(images)
    m = device_constant(mean_c, x.device, torch.float32).view(1, -1, 1, 1)
    s = device_constant(std_c, x.device, torch.float32).view(1, -1, 1, 1)
    return x.sub(m).div(s)  # torchvision Normalize order: subtract, then divide (float32)


_local = threading.local()


def _fine_grained_detector() -> Any:  # a cv2.saliency.StaticSaliencyFineGrained
    """One OpenCV detector per thread (a detector object is not shared across threads)."""
    if not hasattr(_local, "detector"):
        import cv2  # lazy: spectral residual and the other locators do not need OpenCV

        # contrib-only API, absent from the stubs opencv ships (they cover the main modules)
        _local.detector = cv2.saliency.StaticSaliencyFineGrained_create()  # type: ignore[attr-defined]
    return _local.detector


@functools.lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="ltbench-saliency")


def _fine_grained(images: torch.Tensor, input_repr: str, mean: Sequence[float] | None, std: Sequence[float] | None,
                  workers: int | None = None) -> torch.Tensor:
    """OpenCV's maps, one image at a time, split over `workers` threads (default: torch's intra-op
    thread count). OpenCV releases the GIL inside computeSaliency, so the threads overlap; each image's
    map is the same whatever the split (docs/performance.md: 21-23 ms -> ~18 ms a batch on 2 cores)."""
    n, c, h, w = images.shape
    prepared = _as_uint8(images) if input_repr == "uint8" else _normalized(images, mean, std)
    # One device->host copy of the whole batch in N x H x W x C layout (the host sync OpenCV needs).
    host = prepared.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    if c == 1:
        host = host[..., 0]
    quantised = np.empty((n, h, w), dtype=np.uint8)

    def work(lo: int, hi: int) -> None:
        detector = _fine_grained_detector()
        for i in range(lo, hi):
            ok, smap = detector.computeSaliency(np.ascontiguousarray(host[i]))
            if not ok:
                raise RuntimeError(f"OpenCV fine-grained saliency failed on image {i}")
            quantised[i] = (smap * 255).astype(np.uint8)  # SaliencyMix's quantisation before its argmax

    k = max(1, min(workers or torch.get_num_threads(), n))
    if k == 1:
        work(0, n)
    else:
        bounds = [round(i * n / k) for i in range(k + 1)]
        list(_pool(k).map(lambda a: work(*a), zip(bounds[:-1], bounds[1:], strict=True)))
    return torch.from_numpy(quantised).to(images.device).to(torch.float32).div_(255)


def _gaussian_kernel(ksize: int, sigma: float, device: torch.device) -> torch.Tensor:
    t = torch.arange(ksize, dtype=torch.float32, device=device) - (ksize - 1) / 2
    g = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, ksize, ksize)


def _spectral_residual(images: torch.Tensor) -> torch.Tensor:
    x = _as_unit_float(images)
    if x.shape[1] == 3:
        weights = device_constant(_SR_GRAY_WEIGHTS, x.device, torch.float32).view(1, 3, 1, 1)
        gray = (x * weights).sum(dim=1)
    else:
        gray = x[:, 0]
    spectrum = torch.fft.fft2(gray)
    log_amp = torch.log(spectrum.abs() + _SR_LOG_EPS)
    phase = torch.angle(spectrum)
    local_mean = F.avg_pool2d(F.pad(log_amp[:, None], (1, 1, 1, 1), mode="circular"), 3, stride=1)[:, 0]
    residual = log_amp - local_mean
    sal = torch.fft.ifft2(torch.polar(torch.exp(residual), phase)).abs().square()
    k = SR_BLUR_KSIZE
    kernel = _gaussian_kernel(k, SR_BLUR_SIGMA, sal.device)
    sal = F.conv2d(F.pad(sal[:, None], (k // 2,) * 4, mode="replicate"), kernel)[:, 0]
    lo = sal.amin(dim=(1, 2), keepdim=True)
    hi = sal.amax(dim=(1, 2), keepdim=True)
    return (sal - lo) / (hi - lo).clamp_min(torch.finfo(torch.float32).tiny)


@no_grad
def saliency_maps(
    images: torch.Tensor,
    method: str = "fine-grained",
    input_repr: str = "uint8",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """Per-image saliency maps.

    Args:
        images: ``[N, C, H, W]``, C in (1, 3), ``uint8`` or float un-normalised pixels in [0, 1].
        method: one of ``SALIENCY_METHODS`` (see the module docstring).
        input_repr: ``"uint8"`` or ``"normalized"``: what the fine-grained operator hands to OpenCV.
            Validated but unused by ``"spectral-residual"``.
        mean, std: per-channel normalisation for ``input_repr="normalized"`` (1 or C values); ``None``
            means SaliencyMix's CIFAR constants (RGB only).

    Returns:
        float32 ``[N, H, W]`` on ``images.device``. Fine-grained: SaliencyMix's uint8-quantised map / 255.
        Spectral residual: per-image min-max normalised to [0, 1].
    """
    _check_choice(method, SALIENCY_METHODS, "saliency method")
    _check_choice(input_repr, INPUT_REPRS, "saliency input representation")
    _check_images(images)
    if images.shape[0] == 0:
        return torch.empty(0, *images.shape[2:], dtype=torch.float32, device=images.device)
    if method == "fine-grained":
        return _fine_grained(images, input_repr, mean, std)
    return _spectral_residual(images)


def peak(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) int64 ``[N]`` of the first maximum of each ``[H, W]`` map in row-major order.

    ``torch.argmax`` over the flattened map returns the first maximal index on CPU and CUDA, which matches
    SaliencyMix's ``np.unravel_index(np.argmax(map), map.shape)``.
    """
    if maps.ndim != 3 or maps.shape[1] * maps.shape[2] == 0:
        raise ValueError(f"maps must be a non-empty [N, H, W] tensor, got shape {tuple(maps.shape)}")
    n, _, w = maps.shape
    flat_idx = torch.argmax(maps.reshape(n, -1), dim=1)
    return torch.div(flat_idx, w, rounding_mode="floor"), torch.remainder(flat_idx, w)


@no_grad
def locate(
    images: torch.Tensor,
    locator: str = "saliency",
    method: str = "fine-grained",
    input_repr: str = "uint8",
    generator: torch.Generator | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pad: str = "include",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Box centre (rows, cols), int64 ``[N]`` on ``images.device``, for each image.

    Args:
        images: ``[N, C, H, W]`` as for :func:`saliency_maps`.
        locator: ``"saliency"`` (peak of the saliency map), ``"random"`` (uniform rows in [0, H) then
            uniform cols in [0, W), ``torch.randint`` with ``generator``, which must live on the images'
            device) or ``"center"`` ((H // 2, W // 2) for every image).
        method, input_repr, mean, std: passed to :func:`saliency_maps` for ``"saliency"``; validated always.
        generator: random source for ``"random"``; ``None`` uses the global RNG of the device.
        pad: ``"include"`` (the map of the whole view) or ``"exclude"`` (the map of each image's content
            box, without the zero strip of crop padding; see the module docstring). ``"saliency"`` only.
    """
    _check_choice(locator, LOCATORS, "locator")
    _check_choice(pad, SALIENCY_PADS, "saliency padding rule")
    _check_choice(method, SALIENCY_METHODS, "saliency method")
    _check_choice(input_repr, INPUT_REPRS, "saliency input representation")
    _check_images(images)
    n, _, h, w = images.shape
    device = images.device
    if locator == "saliency":
        if not n:
            return _empty_pair(device)
        if pad == "exclude":
            return _content_peaks(images, method, input_repr, mean, std)
        return peak(saliency_maps(images, method, input_repr, mean, std))
    if locator == "random":
        rows = torch.randint(0, h, (n,), generator=generator, device=device)
        cols = torch.randint(0, w, (n,), generator=generator, device=device)
        return rows, cols
    return (
        torch.full((n,), h // 2, dtype=torch.int64, device=device),
        torch.full((n,), w // 2, dtype=torch.int64, device=device),
    )


def content_boxes(images: torch.Tensor) -> torch.Tensor:
    """int64 ``[N, 4]`` (top, bottom, left, right), bottom/right exclusive: each image without the
    all-zero rows and columns at its borders (all channels zero). An all-zero image keeps its full box."""
    n, _, h, w = images.shape
    nonzero = (images != 0).any(dim=1)  # [N, H, W]
    rows, cols = nonzero.any(dim=2), nonzero.any(dim=1)  # [N, H], [N, W]

    def span(hit: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = torch.argmax(hit.to(torch.int8), dim=1)  # first True (0 if none)
        last = size - torch.argmax(hit.flip(1).to(torch.int8), dim=1)
        empty = ~hit.any(dim=1)
        return torch.where(empty, 0, first), torch.where(empty, size, last)

    top, bottom = span(rows, h)
    left, right = span(cols, w)
    return torch.stack([top, bottom, left, right], dim=1)


def _content_peaks(images: torch.Tensor, method: str, input_repr: str, mean: Sequence[float] | None,
                   std: Sequence[float] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks of the maps of each image's content box, in full-image coordinates (one batched map call per
    content-box size)."""
    n, _, h, w = images.shape
    boxes = content_boxes(images).tolist()
    for b in boxes:  # a sliver of content: use the whole image
        if b[1] - b[0] < MIN_CONTENT or b[3] - b[2] < MIN_CONTENT:
            b[:] = [0, h, 0, w]
    rows = torch.empty(n, dtype=torch.int64, device=images.device)
    cols = torch.empty_like(rows)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (t, b, lo, r) in enumerate(boxes):
        groups.setdefault((b - t, r - lo), []).append(i)
    for (gh, gw), ids in groups.items():
        crops = torch.stack([images[i, :, boxes[i][0]:boxes[i][0] + gh, boxes[i][2]:boxes[i][2] + gw] for i in ids])
        r, c = peak(saliency_maps(crops, method, input_repr, mean, std))
        index = torch.tensor(ids, device=images.device)
        rows[index] = r + torch.tensor([boxes[i][0] for i in ids], device=images.device)
        cols[index] = c + torch.tensor([boxes[i][2] for i in ids], device=images.device)
    return rows, cols


def _empty_pair(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    empty = torch.empty(0, dtype=torch.int64, device=device)
    return empty, empty.clone()
