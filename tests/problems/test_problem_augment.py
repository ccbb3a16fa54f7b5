"""Image preprocessing and augmentation against their definitions (TF's ops, He et al.'s recipe)."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from jobs.problems.data.augment import (
    ImagePipeline,
    adjust_contrast,
    adjust_saturation,
    random_crop,
    random_flip,
    recipe,
    standardise_per_image,
)

CPU = torch.device("cpu")


def pixels(count: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("padding", [2, 4])
def test_random_crop_is_a_window_of_the_zero_padded_image(padding):
    x = pixels().double()
    crops = random_crop(x, padding, torch.Generator().manual_seed(0))
    assert crops.shape == x.shape
    padded = F.pad(x, (padding,) * 4)
    offsets = set()
    for image, crop in zip(padded, crops, strict=True):
        matches = [(i, j) for i in range(2 * padding + 1) for j in range(2 * padding + 1)
                   if torch.equal(image[:, i : i + 32, j : j + 32], crop)]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 4  # every image draws its own window


def test_random_flip_mirrors_about_half_of_the_images():
    x = pixels(64).double()
    flipped = random_flip(x, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(f, i.flip(-1)) for f, i in zip(flipped, x, strict=True)]
    kept = [torch.equal(f, i) for f, i in zip(flipped, x, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and 16 < sum(mirrored) < 48


def test_saturation_scales_hsv_saturation_keeping_hue_and_value():
    x = pixels(4).double()
    factors = torch.tensor([0.0, 0.5, 1.0, 1.5], dtype=torch.float64).view(-1, 1, 1, 1)
    out = adjust_saturation(x, factors)
    for image, result, factor in zip(x, out, factors.flatten().tolist(), strict=True):
        for row, col in ((0, 0), (5, 17), (31, 31)):
            h, s, v = colorsys.rgb_to_hsv(*(image[:, row, col] / 255).tolist())
            expected = colorsys.hsv_to_rgb(h, min(s * factor, 1.0), v)
            assert result[:, row, col].numpy() / 255 == pytest.approx(expected, abs=1e-12)


def test_contrast_scales_deviations_from_each_channel_mean():
    x = pixels(2).double()
    out = adjust_contrast(x, torch.tensor([0.2, 1.8], dtype=torch.float64).view(-1, 1, 1, 1))
    assert torch.allclose(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)))
    deviation = x - x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(out[1] - out[1].mean(dim=(1, 2), keepdim=True), 1.8 * deviation[1])


def test_per_image_standardisation_is_tensorflows():
    x = pixels(3).double()
    out = standardise_per_image(x)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(out.std(dim=(1, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64))
    flat = torch.full((1, 3, 32, 32), 7.0, dtype=torch.float64)
    assert torch.equal(standardise_per_image(flat), torch.zeros_like(flat))  # std floored at 1/sqrt(3072)


def test_pipelines_augment_training_batches_only_and_reproducibly():
    train = pixels(32).numpy()
    for name, dataset in (("deepobs", "cifar10"), ("deepobs", "svhn"), ("standard", "cifar100")):
        pipeline = ImagePipeline(recipe(name, dataset), train, True, CPU, torch.float64)
        batch = torch.as_tensor(train[:8])
        assert torch.equal(pipeline(batch), pipeline(batch))  # evaluation: no randomness
        first = pipeline(batch, torch.Generator().manual_seed(5))
        assert torch.equal(first, pipeline(batch, torch.Generator().manual_seed(5)))
        assert not torch.equal(first, pipeline(batch))
        assert not torch.equal(first, pipeline(batch, torch.Generator().manual_seed(6)))
    off = ImagePipeline(recipe("deepobs", "cifar10"), train, False, CPU, torch.float64)
    assert torch.equal(off(batch, torch.Generator()), off(batch))  # augment=False


def test_channel_normalisation_uses_the_training_split_statistics():
    train = pixels(32).numpy()
    pipeline = ImagePipeline(recipe("standard", "cifar10"), train, False, CPU, torch.float64)
    out = pipeline(torch.as_tensor(train))
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(out.std(dim=(0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64))


def test_recipes():
    assert recipe("deepobs", "cifar10").flip and not recipe("deepobs", "svhn").flip
    assert recipe("deepobs", "cifar10").crop_padding == 2 and recipe("standard", "svhn").crop_padding == 4
    unit = ImagePipeline(recipe("unit", "mnist"), np.zeros((1, 1, 28, 28), np.uint8), False, CPU, torch.float32)
    assert torch.equal(unit(torch.tensor([[[[0, 255]]]], dtype=torch.uint8)), torch.tensor([[[[0.0, 1.0]]]]))
