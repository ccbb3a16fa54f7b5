"""DeepOBS's VGG 16 and 19 (Simonyan & Zisserman 2015) for CIFAR.

As in DeepOBS, the 32×32 images are resized to 224×224 (bilinear; TF's
``resize_images``, i.e. half-pixel centres, not corner-aligned) so the
ImageNet network applies unchanged: 13 (16) or 16 (19) "same" 3×3
convolutions with ReLUs in five blocks, each block closed by 2×2 max-pooling,
then dense 25088 → 4096 → 4096 → classes with ReLU and dropout 0.5.
Convolutions Glorot-normal, dense layers Glorot-uniform (TF's default),
biases zero. DeepOBS's TF model regularises the convolution kernels only,
so :meth:`decayed_weights` leaves out the dense layers.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from jobs.problems.nets.layers import SameConv2d, SameMaxPool2d, deepobs_init

#: convolutions per block
BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
INPUT_SIZE = 224


class VGG(nn.Module):
    def __init__(self, variant: int, classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for count, width in zip(BLOCKS[variant], WIDTHS, strict=True):
            for _ in range(count):
                layers += [SameConv2d(channels, width, 3), nn.ReLU()]
                channels = width
            layers.append(SameMaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(7 * 7 * 512, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, classes),
        )
        deepobs_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.classifier(self.features(x))

    def decayed_weights(self) -> Iterator[nn.Parameter]:
        return (m.weight for m in self.features if isinstance(m, nn.Conv2d))


def vgg16(classes: int) -> nn.Module:
    return VGG(16, classes)


def vgg19(classes: int) -> nn.Module:
    return VGG(19, classes)
