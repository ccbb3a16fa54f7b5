"""DeepOBS's plain convolutional networks for 32×32 colour images: 3c3d and All-CNN-C.

* 3c3d: conv 5×5 "valid" (64) → max-pool 3/2 "same" → conv 3×3 "valid"
  (96) → max-pool → conv 3×3 "same" (128) → max-pool → dense 1152 → 512 →
  256 → classes, ReLUs throughout. Convolutions Glorot-normal, dense layers
  Glorot-uniform, biases zero.
* All-CNN-C (Springenberg et al. 2015): dropout 0.2 on the input; three
  3×3 convs of 96 (the third with stride 2), dropout 0.5; three of 192 (the
  third with stride 2), dropout 0.5; conv 3×3 "valid" 192, conv 1×1 192,
  conv 1×1 classes, every conv followed by a ReLU (the last one too, as in
  DeepOBS), then the spatial mean. Glorot-normal weights, biases 0.1.
"""

from __future__ import annotations

import torch
from torch import nn

from jobs.problems.nets.layers import SameConv2d, SameMaxPool2d, deepobs_init


def three_conv_three_dense(classes: int) -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(3, 64, 5), nn.ReLU(), SameMaxPool2d(3, 2),
        nn.Conv2d(64, 96, 3), nn.ReLU(), SameMaxPool2d(3, 2),
        SameConv2d(96, 128, 3), nn.ReLU(), SameMaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(3 * 3 * 128, 512), nn.ReLU(),
        nn.Linear(512, 256), nn.ReLU(),
        nn.Linear(256, classes),
    )
    deepobs_init(model)
    return model


class SpatialMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def all_cnn_c(classes: int) -> nn.Module:
    def conv(fan_in: int, fan_out: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
        return [SameConv2d(fan_in, fan_out, kernel, stride), nn.ReLU()]

    model = nn.Sequential(
        nn.Dropout(0.2),
        *conv(3, 96), *conv(96, 96), *conv(96, 96, stride=2),
        nn.Dropout(0.5),
        *conv(96, 192), *conv(192, 192), *conv(192, 192, stride=2),
        nn.Dropout(0.5),
        nn.Conv2d(192, 192, 3), nn.ReLU(),
        *conv(192, 192, kernel=1), *conv(192, classes, kernel=1),
        SpatialMean(),
    )
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_normal_(module.weight)
            nn.init.constant_(module.bias, 0.1)
    return model
