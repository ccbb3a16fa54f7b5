"""MobileNetV2 (Sandler et al. 2018) adapted to 32×32 images, the line-search papers' MobileNet.

The paper's network (width 1): a 3×3 convolution to 32 channels, inverted
residual blocks (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2)
(6,96,3,1) (6,160,3,2) (6,320,1,1), a 1×1 convolution to 1280, global
average pooling and a dense layer. A block expands by t with a 1×1
convolution (skipped when t = 1), filters depthwise 3×3 with stride s,
projects linearly with a 1×1 convolution, each followed by BN (ReLU6 after
the first two); it adds its input when s = 1 and the channels agree. For
32×32 inputs (as the common CIFAR ports do) the stem and the second stage
do not stride, so the image shrinks 32 → 16 → 8 → 4 over the stages
that do. Our choices: no dropout before the dense layer; convolutions
He-normal over fan-out, BN γ = 1, β = 0, the dense layer torch's default.
"""

from __future__ import annotations

import torch
from torch import nn

from jobs.problems.nets.layers import he_init_convs

#: (expansion t, channels c, blocks n, stride s) with the CIFAR strides
STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
            activation: bool = True) -> list[nn.Module]:
    layers = [nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(out_channels)]
    return layers + [nn.ReLU6()] if activation else layers


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int):
        super().__init__()
        hidden = in_channels * expansion
        layers = conv_bn(in_channels, hidden, 1) if expansion != 1 else []
        layers += conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += conv_bn(hidden, out_channels, 1, activation=False)
        self.layers = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        layers: list[nn.Module] = conv_bn(3, 32, 3)
        channels = 32
        for expansion, width, blocks, stride in STAGES:
            for index in range(blocks):
                layers.append(InvertedResidual(channels, width, expansion, stride if index == 0 else 1))
                channels = width
        self.body = nn.Sequential(*layers, *conv_bn(channels, 1280, 1))
        self.dense = nn.Linear(1280, classes)
        he_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.body(x).mean(dim=(2, 3)))


def mobilenetv2(classes: int) -> nn.Module:
    return MobileNetV2(classes)
