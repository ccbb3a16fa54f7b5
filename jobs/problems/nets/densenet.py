"""DenseNet-40 (Huang et al. 2017) for 32×32 images, the line-search papers' DenseNet.

The basic DenseNet with L = 40, growth rate k = 12: a 3×3 convolution to
16 channels, three dense blocks of 12 layers (BN-ReLU-conv3×3 producing k
channels, concatenated to the block's input), between blocks a transition
(BN-ReLU-conv1×1 keeping the channel count, 2×2 average pooling), then
BN-ReLU, global average pooling and a dense layer: about 1.0 M parameters.
No bottlenecks or compression (that would be DenseNet-BC), and no dropout:
the paper drops only when training without augmentation. Convolutions
have no bias, He-normal over fan-out; BN γ = 1, β = 0; the dense layer
keeps torch's default initialisation (our choices).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from jobs.problems.nets.layers import he_init_convs


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(torch.relu(self.bn(x)))], dim=1)


class Transition(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(torch.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    def __init__(self, depth: int, growth: int, classes: int):
        super().__init__()
        per_block = (depth - 4) // 3
        channels = 16
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, 1, 1, bias=False)]
        for block in range(3):
            for _ in range(per_block):
                layers.append(DenseLayer(channels, growth))
                channels += growth
            if block < 2:
                layers.append(Transition(channels))
        self.body = nn.Sequential(*layers, nn.BatchNorm2d(channels), nn.ReLU())
        self.dense = nn.Linear(channels, classes)
        he_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.body(x).mean(dim=(2, 3)))


def densenet40(classes: int) -> nn.Module:
    return DenseNet(40, 12, classes)
