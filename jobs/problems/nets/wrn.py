"""DeepOBS's Wide Residual Networks (Zagoruyko & Komodakis 2016): WRN-16-4 and WRN-40-4.

Depth d gives (d − 4)/6 pre-activation units per group; three groups of
16k, 32k, 64k channels (k the widening factor) with strides 1, 2, 2, after
a 3×3 convolution to 16 channels. A unit is BN-ReLU-conv3×3-BN-ReLU-conv3×3
plus a shortcut; in each group's first unit the shortcut is a 1×1
convolution of the activated input (BN-ReLU applied first, as in
DeepOBS). Then BN-ReLU, the spatial mean and a dense layer. Convolutions
have no bias and "same" padding (TF's: a strided 3×3 pads only after);
convolution and dense weights Glorot-uniform, dense bias zero, BN
γ = 1, β = 0, ε = 1e-5; DeepOBS's TF batch-norm momentum 0.9 (the running
average keeps 90 % of its old value) is torch's momentum 0.1.
"""

from __future__ import annotations

import torch
from torch import nn

from jobs.problems.nets.layers import SameConv2d

BN_MOMENTUM = 0.1


class Unit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, first: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, momentum=BN_MOMENTUM)
        self.conv1 = SameConv2d(in_channels, out_channels, 3, stride, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.conv2 = SameConv2d(out_channels, out_channels, 3, 1, bias=False)
        self.projection = SameConv2d(in_channels, out_channels, 1, stride, bias=False) if first else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = torch.relu(self.bn1(x))
        shortcut = x if self.projection is None else self.projection(activated)
        residual = self.conv2(torch.relu(self.bn2(self.conv1(activated))))
        return residual + shortcut


class WideResNet(nn.Module):
    def __init__(self, depth: int, widening: int, classes: int):
        super().__init__()
        units = (depth - 4) // 6
        widths = (16, 16 * widening, 32 * widening, 64 * widening)
        layers: list[nn.Module] = [SameConv2d(3, 16, 3, bias=False)]
        for group, stride in enumerate((1, 2, 2)):
            layers.append(Unit(widths[group], widths[group + 1], stride, first=True))
            layers += [Unit(widths[group + 1], widths[group + 1], 1, first=False) for _ in range(units - 1)]
        self.body = nn.Sequential(*layers, nn.BatchNorm2d(widths[-1], momentum=BN_MOMENTUM), nn.ReLU())
        self.dense = nn.Linear(widths[-1], classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(self.dense.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.body(x).mean(dim=(2, 3)))


def wrn164(classes: int) -> nn.Module:
    return WideResNet(16, 4, classes)


def wrn404(classes: int) -> nn.Module:
    return WideResNet(40, 4, classes)
