"""`shapes`: a procedural 32x32 RGB data set with the background bias SMCL is about.

Each class is a foreground shape drawn with random colour, scale, position and rotation on one of
K background textures. In the training pool, head classes (the first half of the classes, which are
the frequent ones after the long-tail cut) appear on all K backgrounds; tail classes only on a small
class-specific subset. The balanced test set shows every class on every background equally often and
records, per image, its background and whether that (class, background) pair occurs in training, so
a model's reliance on background can be measured (accuracy on seen vs unseen pairs).

Generated with a private torch.Generator: the same parameters give the same bytes on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

SHAPE_NAMES = (
    "disk", "ring", "square", "frame", "triangle", "plus", "ellipse", "crescent", "star", "bars",
)
NUM_BACKGROUNDS = 6


@dataclass(frozen=True)
class ShapesConfig:
    num_classes: int = 10
    train_per_class: int = 500
    test_per_class: int = 120
    tail_backgrounds: int = 2
    size: int = 32
    seed: int = 1234


def _shape_mask(cls: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inside-test of shape `cls` in its local, unit-radius coordinates."""
    r = torch.sqrt(u * u + v * v)
    box = torch.maximum(u.abs(), v.abs())
    name = SHAPE_NAMES[cls % len(SHAPE_NAMES)]
    if name == "disk":
        return r < 1.0
    if name == "ring":
        return (r < 1.0) & (r > 0.6)
    if name == "square":
        return box < 0.8
    if name == "frame":
        return (box < 0.9) & (box > 0.55)
    if name == "triangle":
        s3 = math.sqrt(3.0)
        return (v > -0.5) & (s3 * u + v < 1.0) & (-s3 * u + v < 1.0)
    if name == "plus":
        return ((u.abs() < 0.3) & (v.abs() < 0.95)) | ((v.abs() < 0.3) & (u.abs() < 0.95))
    if name == "ellipse":
        return (u * u + (v / 0.45) ** 2) < 1.0
    if name == "crescent":
        return (r < 1.0) & (torch.sqrt((u - 0.45) ** 2 + v * v) > 0.75)
    if name == "star":
        theta = torch.atan2(v, u)
        return r < 0.55 + 0.4 * torch.cos(5 * theta)
    # bars: two parallel bars
    return (((v - 0.5).abs() < 0.2) | ((v + 0.5).abs() < 0.2)) & (u.abs() < 0.9)


def _backgrounds(kind: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Textures [N, 3, S, S] in [0, 1]: a fixed colour pair and pattern per background kind."""
    n = kind.numel()
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing="ij")
    phase = torch.rand(n, 1, 1, generator=gen) * 2 * math.pi
    period = 4.0 + 3.0 * torch.rand(n, 1, 1, generator=gen)
    x, y = xs.unsqueeze(0), ys.unsqueeze(0)
    patterns = torch.stack([
        torch.sin(2 * math.pi * y / period + phase),                       # horizontal stripes
        torch.sin(2 * math.pi * x / period + phase),                       # vertical stripes
        torch.sin(math.pi * x / period * 2 + phase) * torch.sin(math.pi * y / period * 2),  # checker
        torch.sin(2 * math.pi * (x + y) / (1.4 * period) + phase),         # diagonal stripes
        torch.cos(2 * math.pi * x / period) * torch.cos(2 * math.pi * y / period + phase),  # dots
        torch.sin(2 * math.pi * torch.sqrt((x - 16) ** 2 + (y - 16) ** 2) / period + phase),  # rings
    ])  # [K, N, S, S]
    pattern = patterns[kind, torch.arange(n)]  # [N, S, S]
    t = (pattern > 0).float().unsqueeze(1)  # two-tone texture
    # each background kind has its own hue; the texture's two tones are that hue at two
    # brightness levels, so the texture is a clear cue without drowning the shape's edges
    palette = torch.tensor([
        [0.85, 0.75, 0.35], [0.35, 0.65, 0.85], [0.70, 0.70, 0.70],
        [0.45, 0.75, 0.45], [0.85, 0.50, 0.70], [0.60, 0.55, 0.90],
    ])
    jitter = 0.08 * (torch.rand(n, 3, generator=gen) - 0.5)
    c0 = (palette[kind] + jitter).clamp(0, 1).view(n, 3, 1, 1)
    c1 = 0.7 * c0
    return c0 * t + c1 * (1 - t)


def render(labels: torch.Tensor, backgrounds: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Draw one image per (label, background) pair; returns uint8 [N, 3, S, S]."""
    n = labels.numel()
    img = _backgrounds(backgrounds, size, gen)
    radius = size * (0.25 + 0.12 * torch.rand(n, generator=gen))
    lo, span = radius, size - 2 * radius
    cx = lo + span * torch.rand(n, generator=gen)
    cy = lo + span * torch.rand(n, generator=gen)
    angle = 2 * math.pi * torch.rand(n, generator=gen)
    colour = torch.rand(n, 3, generator=gen) * 0.35  # dark shapes on the lighter textures
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32) + 0.5,
                            torch.arange(size, dtype=torch.float32) + 0.5, indexing="ij")
    dx = xs.unsqueeze(0) - cx.view(n, 1, 1)
    dy = ys.unsqueeze(0) - cy.view(n, 1, 1)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    u = (dx * cos + dy * sin) / radius.view(n, 1, 1)
    v = (-dx * sin + dy * cos) / radius.view(n, 1, 1)
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for cls in labels.unique().tolist():
        sel = labels == cls
        mask[sel] = _shape_mask(cls, u[sel], v[sel])
    img = torch.where(mask.unsqueeze(1), colour.view(n, 3, 1, 1), img)
    return (img * 255).round().to(torch.uint8)


def allowed_backgrounds(cfg: ShapesConfig) -> list[list[int]]:
    """Backgrounds each class appears on in training: all for the head half, a few for the tail."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    allowed = []
    for cls in range(cfg.num_classes):
        if cls < cfg.num_classes // 2:
            allowed.append(list(range(NUM_BACKGROUNDS)))
        else:
            perm = torch.randperm(NUM_BACKGROUNDS, generator=gen)[: cfg.tail_backgrounds]
            allowed.append(sorted(perm.tolist()))
    return allowed


@lru_cache(maxsize=2)
def generate(cfg: ShapesConfig = ShapesConfig()) -> dict[str, torch.Tensor]:
    """The training pool and the balanced test set, with per-test-image background metadata.

    Cached per process (callers must not modify the returned tensors in place).
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    allowed = allowed_backgrounds(cfg)
    train_y = torch.arange(cfg.num_classes).repeat_interleave(cfg.train_per_class)
    choice = torch.randint(0, 10**6, (train_y.numel(),), generator=gen)
    pairs = zip(train_y.tolist(), choice.tolist(), strict=True)
    train_bg = torch.tensor([allowed[c][k % len(allowed[c])] for c, k in pairs])
    test_y = torch.arange(cfg.num_classes).repeat_interleave(cfg.test_per_class)
    test_bg = torch.arange(test_y.numel()) % NUM_BACKGROUNDS
    seen = torch.tensor([b in allowed[c] for c, b in zip(test_y.tolist(), test_bg.tolist(), strict=True)])
    return {
        "train_images": render(train_y, train_bg, cfg.size, gen),
        "train_labels": train_y,
        "train_backgrounds": train_bg,
        "test_images": render(test_y, test_bg, cfg.size, gen),
        "test_labels": test_y,
        "test_backgrounds": test_bg,
        "test_seen": seen,
    }
