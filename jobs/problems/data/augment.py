"""Image preprocessing and augmentation on the run's device, batch-wise.

Pixels stay uint8 in memory (a quarter of float32); each batch becomes
floats here. Random parameters come from the epoch's CPU generator (a few
numbers per image), the pixel work runs where the batch lives, so the GPU
never waits for a CPU loader.

Two recipes:

* ``deepobs``: DeepOBS's TensorFlow pipeline for CIFAR and SVHN. Training
  images are zero-padded to 36×36 and randomly cropped back to 32×32,
  flipped left-right (CIFAR only), then get random saturation (factor in
  [0.5, 1.5]) and contrast (factor in [0.2, 1.8]); every image, training or
  not, is then standardised on its own (TF's ``per_image_standardization``:
  zero mean, unit variance over its pixels, the deviation floored at
  1/√pixels). DeepOBS's random brightness is left out: it adds one constant
  to every pixel, which the per-image standardisation removes exactly.
  (DeepOBS's later PyTorch port normalises per channel instead; we follow
  the TensorFlow original.)
* ``standard``: the line-search papers' ResNet/DenseNet/MobileNet
  recipe (He et al. 2016): zero-pad 4, random 32×32 crop, flip (CIFAR
  only), then per-channel normalisation by the training split's mean and
  standard deviation.

MNIST-like data is only scaled to [0, 1] (``unit``), as DeepOBS does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Recipe:
    crop_padding: int = 0
    flip: bool = False
    lighting: bool = False
    normalise: str = "unit"  # unit: x/255; image: per-image standardisation; channel: training-set channel stats


def recipe(name: str, dataset: str) -> Recipe:
    flip = dataset in ("cifar10", "cifar100")  # mirrored digits are other digits
    if name == "deepobs":
        return Recipe(crop_padding=2, flip=flip, lighting=True, normalise="image")
    if name == "standard":
        return Recipe(crop_padding=4, flip=flip, normalise="channel")
    if name == "unit":
        return Recipe()
    raise ValueError(f"unknown image recipe {name!r}")


class ImagePipeline:
    """uint8 batches (B, C, H, W) → normalised floats, augmented when given a generator."""

    def __init__(self, recipe: Recipe, train_pixels: np.ndarray, augment: bool, device: torch.device,
                 dtype: torch.dtype):
        self.recipe, self.augment, self.dtype = recipe, augment, dtype
        if recipe.normalise == "channel":
            mean, std = channel_statistics(train_pixels)
            self.mean = torch.as_tensor(mean, dtype=dtype, device=device).view(1, -1, 1, 1)
            self.std = torch.as_tensor(std, dtype=dtype, device=device).view(1, -1, 1, 1)

    def __call__(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = pixels.to(self.dtype)
        recipe = self.recipe
        if generator is not None and self.augment:
            if recipe.crop_padding:
                x = random_crop(x, recipe.crop_padding, generator)
            if recipe.flip:
                x = random_flip(x, generator)
            if recipe.lighting:
                x = adjust_saturation(x, uniform(x, 0.5, 1.5, generator))
                x = adjust_contrast(x, uniform(x, 0.2, 1.8, generator))
        if recipe.normalise == "image":
            return standardise_per_image(x)
        if recipe.normalise == "channel":
            return (x / 255 - self.mean) / self.std
        return x / 255


def channel_statistics(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each channel of uint8 images (N, C, H, W), scaled to [0, 1].

    Exact, from each channel's histogram of the 256 values: no float copy of the data set.
    """
    levels = np.arange(256) / 255
    means, stds = [], []
    for channel in range(pixels.shape[1]):
        counts = np.bincount(pixels[:, channel].reshape(-1), minlength=256) / pixels[:, channel].size
        mean = counts @ levels
        means.append(mean)
        stds.append(np.sqrt(counts @ (levels - mean) ** 2))
    return np.array(means), np.array(stds)


def uniform(x: torch.Tensor, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """One factor per image, shaped to broadcast over (C, H, W)."""
    factors = low + (high - low) * torch.rand(len(x), generator=generator, dtype=torch.float64)
    return factors.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` on every side, then cut each image's own random window of the original size."""
    batch, channels, height, width = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (offsets[0, :, None] + torch.arange(height, device=x.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(width, device=x.device))[:, None, None, :]
    images = torch.arange(batch, device=x.device)[:, None, None, None]
    planes = torch.arange(channels, device=x.device)[None, :, None, None]
    return padded[images, planes, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability ½."""
    flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale HSV saturation by ``factor`` (clipped at 1), keeping hue and value, as TF's ``adjust_saturation``.

    With hue and value V = max(r, g, b) fixed, every channel c moves along
    V − s(V − c) when the saturation is scaled by s; saturation 1 means the
    smallest channel reaches 0, which caps s at V / (V − min).
    """
    value = x.amax(dim=1, keepdim=True)
    spread = value - x.amin(dim=1, keepdim=True)
    cap = torch.where(spread > 0, value / spread.clamp_min(torch.finfo(x.dtype).tiny), torch.inf)
    return value - torch.minimum(factor, cap) * (value - x)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale each channel's deviation from its mean by ``factor``, as TF's ``adjust_contrast``."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * factor + mean


def standardise_per_image(x: torch.Tensor) -> torch.Tensor:
    """TF's ``per_image_standardization``: (x − mean) / max(std, 1/√pixels) over each image."""
    flat = x.flatten(1)
    mean = flat.mean(dim=1)
    floor = 1.0 / float(flat.shape[1]) ** 0.5
    std = flat.std(dim=1, unbiased=False).clamp_min(floor)
    return (x - mean.view(-1, 1, 1, 1)) / std.view(-1, 1, 1, 1)
