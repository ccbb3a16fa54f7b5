"""DeepOBS's networks for 28×28 greyscale images (MNIST, Fashion-MNIST): logreg, mlp, 2c2d.

* logreg: one linear layer 784 → classes, weights and biases zero.
* mlp: 784 → 1000 → 500 → 100 → classes with ReLUs; weights from a normal
  of std 0.03 truncated at two standard deviations, biases zero.
* 2c2d: two 5×5 "same" convolutions (32, 64 filters, ReLU), each followed
  by 2×2 max-pooling, then dense 3136 → 1024 (ReLU) → classes; weights
  truncated normal of std 0.05, biases 0.05.
"""

from __future__ import annotations

from itertools import pairwise

from torch import nn

from jobs.problems.nets.layers import SameConv2d, SameMaxPool2d


def logreg(classes: int) -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, classes))
    nn.init.zeros_(model[1].weight)
    nn.init.zeros_(model[1].bias)
    return model


def mlp(classes: int) -> nn.Module:
    widths = (28 * 28, 1000, 500, 100)
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in, fan_out in pairwise(widths):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], classes))
    model = nn.Sequential(*layers)
    _init(model, std=0.03, bias=0.0)
    return model


def two_conv_two_dense(classes: int) -> nn.Module:
    model = nn.Sequential(
        SameConv2d(1, 32, 5), nn.ReLU(), SameMaxPool2d(2, 2),
        SameConv2d(32, 64, 5), nn.ReLU(), SameMaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Linear(1024, classes),
    )
    _init(model, std=0.05, bias=0.05)
    return model


def _init(model: nn.Module, std: float, bias: float) -> None:
    """TF's ``truncated_normal_initializer(stddev=std)``: redraw beyond two standard deviations."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.constant_(module.bias, bias)
