"""Shared test fakes: a trainer stand-in with a tiny deterministic model, for one method step at a time.

`FakeServices` implements `ltbench.method.TrainerServices` (the interface `ltbench.train.Trainer`
implements), so a method under test sees the same calls it sees in training. Unlike a zero-logit fake,
its logits and features depend on the pixels and on where they are (a fixed random linear map of the
normalised image pooled on a 2x2 grid), so a loss computed with the wrong labels, the wrong weights
or the wrong view comes out different. It records what reached it: `seen` (the views of the last
forward), `augmented` (pipeline names), `draws` (sampler kind and parameters).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ltbench.data.sampling import class_sampling_probabilities

COUNTS = [40, 20, 10, 5]


class TinyNet(torch.nn.Module):
    """logits = W g(x) + b, features = normalize(V g(x)); g = 2x2 average pooling of x, flattened."""

    def __init__(self, channels: int, num_classes: int, feat_dim: int = 6, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        d = channels * 4
        self.classifier = torch.nn.Linear(d, num_classes)
        self.head = torch.nn.Linear(d, feat_dim, bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.randn(num_classes, d, generator=gen))
            self.classifier.bias.copy_(torch.randn(num_classes, generator=gen) * 0.1)
            self.head.weight.copy_(torch.randn(feat_dim, d, generator=gen))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 2).flatten(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.embed(x)
        return self.classifier(g), F.normalize(self.head(g), dim=1)


def pattern_images(n: int, size: tuple[int, int], seed: int, channels: int = 3) -> torch.Tensor:
    """n uint8 images with structure (a bright square at a per-image place on a noisy background)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 90, (n, channels, *size), generator=gen, dtype=torch.uint8)
    h, w = size
    for i in range(n):
        top = int(torch.randint(0, h - 4, (1,), generator=gen))
        left = int(torch.randint(0, w - 4, (1,), generator=gen))
        images[i, :, top:top + 4, left:left + 4] = 200 + 10 * (i % 5)
    return images


class FakeServices:
    """Just enough of the trainer for one step, deterministic, with a model whose outputs depend on the input.

    Structurally a `TrainerServices` (no base class, so a member the protocol gains and this fake lacks
    fails tests/test_step_branches.py instead of inheriting a stub)."""

    def __init__(self, num_classes: int = 4, image: tuple[int, int] = (8, 8), epochs: int = 10, seed: int = 0,
                 model: torch.nn.Module | None = None):
        self.num_classes = num_classes
        self.class_counts = COUNTS[:num_classes]
        self.epochs = epochs
        self.device = torch.device("cpu")
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.image_size = image
        self.mean, self.std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
        self.model = model if model is not None else TinyNet(3, num_classes)  # any (logits, features) model
        # the pool the class samplers draw from: 3 images per class
        self.pool_labels = torch.arange(num_classes).repeat_interleave(3)
        self.pool_images = pattern_images(len(self.pool_labels), image, seed=99)
        self.seen: list[torch.Tensor] = []
        self.augmented: list[str] = []
        self.draws: list[tuple[str, dict[str, float]]] = []
        self.drawn: list[tuple[torch.Tensor, torch.Tensor]] = []  # what each draw returned

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (x - mean) / std

    def model_outputs(self, views: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """What `forward` returns for these views (for tests that recompute a loss independently)."""
        logits, feats = self.model(self.normalize(torch.cat(views)))
        sizes = [v.shape[0] for v in views]
        return list(zip(logits.split(sizes), feats.split(sizes), strict=True))

    def forward(self, views: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        self.seen = [v.detach().clone() for v in views]
        return list(self.model_outputs(views))

    def augment(self, pipeline: str, images: torch.Tensor) -> torch.Tensor:
        """Deterministic and different per pipeline, so a view built with the wrong pipeline shows."""
        self.augmented.append(pipeline)
        x = images.float() / 255
        if pipeline == "sim":
            return x.flip(-1)
        if pipeline == "randaug":
            return x.flip(-2)
        if pipeline == "cutout":  # shifted down by 2 rows over a zero strip, as a padded RandomCrop leaves
            out = torch.zeros_like(x)
            out[..., 2:, :] = x[..., :-2, :]
            return out
        if pipeline == "standard":
            return x.roll(1, dims=-1)
        return x  # none

    def draw(self, kind: str, n: int, **params: float) -> tuple[torch.Tensor, torch.Tensor]:
        self.draws.append((kind, dict(params)))
        probs = class_sampling_probabilities(self.class_counts, kind, **params)
        classes = torch.multinomial(torch.as_tensor(probs, dtype=torch.float32), n, replacement=True,
                                    generator=self.generator)
        within = torch.randint(0, 3, (n,), generator=self.generator)
        idx = classes * 3 + within
        self.drawn.append((self.pool_images[idx], self.pool_labels[idx]))
        return self.drawn[-1]


def has_contrib_saliency() -> bool:
    """Whether OpenCV's contrib saliency module (fine-grained saliency) is installed."""
    try:
        import cv2

        cv2.saliency.StaticSaliencyFineGrained_create()
        return True
    except (ImportError, AttributeError):
        return False
