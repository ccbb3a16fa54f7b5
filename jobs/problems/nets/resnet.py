"""The CIFAR ResNets of He et al. (2016, §4.2): ResNet-20, -32, -56 (the line-search papers' networks).

Depth 6n + 2: a 3×3 convolution to 16 channels, then three stages of n
basic blocks (conv3×3-BN-ReLU-conv3×3-BN, add the shortcut, ReLU) with 16,
32 and 64 channels, the first block of stages two and three striding by
2; global average pooling and a dense layer. Shortcuts are the paper's
option A, parameter-free: identity, or where a block halves the size and
doubles the channels, every other pixel with zero channels appended
(0.27 M, 0.46 M, 0.85 M parameters for 10 classes). Our choices where the
paper is silent about PyTorch: convolutions (no bias) He-normal over
fan-out, BN γ = 1, β = 0, torch's default BN momentum and ε, torch's
default initialisation of the dense layer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from jobs.problems.nets.layers import he_init_convs


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride, self.extra_channels = stride, out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels)) if self.extra_channels else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, classes: int):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n + 2, not {depth}")
        blocks = (depth - 2) // 6
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
        channels = 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for index in range(blocks):
                layers.append(BasicBlock(channels, width, stride if index == 0 else 1))
                channels = width
        self.body = nn.Sequential(*layers)
        self.dense = nn.Linear(channels, classes)
        he_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.body(x).mean(dim=(2, 3)))


def resnet20(classes: int) -> nn.Module:
    return CifarResNet(20, classes)


def resnet32(classes: int) -> nn.Module:
    return CifarResNet(32, classes)


def resnet56(classes: int) -> nn.Module:
    return CifarResNet(56, classes)
