"""Layers with TensorFlow's ``padding="same"`` (DeepOBS was written in TF), the weight-decay selection,
and the weight initialisations several networks share.

TF pads a "same" layer so the output has ceil(size / stride) pixels; when
the total padding is odd the extra pixel goes after (bottom/right). PyTorch
pads symmetrically, so a strided 3×3 convolution or an even kernel differs
by a one-pixel shift unless padded as TF does.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of one dimension under TF's "same"."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pads(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int, int, int]:
    top, bottom = same_padding(x.shape[-2], kernel[0], stride[0])
    left, right = same_padding(x.shape[-1], kernel[1], stride[1])
    return left, right, top, bottom


class SameConv2d(nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = _pads(x, self.kernel_size, self.stride)
        if left == right and top == bottom:  # symmetric: let the convolution pad (no copy)
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride)


class SameMaxPool2d(nn.Module):
    """TF's max pooling with "same" padding: padded cells never win (they are −∞)."""

    def __init__(self, kernel_size: int, stride: int):
        super().__init__()
        self.kernel, self.stride = (kernel_size, kernel_size), (stride, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = _pads(x, self.kernel, self.stride)
        if left == right and top == bottom and 2 * top <= self.kernel[0] and 2 * left <= self.kernel[1]:
            return F.max_pool2d(x, self.kernel, self.stride, (top, left))
        return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=-torch.inf), self.kernel, self.stride)


class SameConvTranspose2d(nn.ConvTranspose2d):
    """TF's transposed convolution with "same" padding: the output has input × stride pixels.

    It is the transpose of a "same" convolution from the output size back
    to the input size, so the full transposed output is cropped by that
    convolution's (before) padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = F.conv_transpose2d(x, self.weight, self.bias, self.stride)
        height, width = x.shape[-2] * self.stride[0], x.shape[-1] * self.stride[1]
        top, _ = same_padding(height, self.kernel_size[0], self.stride[0])
        left, _ = same_padding(width, self.kernel_size[1], self.stride[1])
        return full[..., top : top + height, left : left + width]


def decayed_weights(model: nn.Module) -> list[nn.Parameter]:
    """The weights an L2 penalty covers: of convolutions and linear layers, not biases or normalisations.

    That is DeepOBS's "weights but not biases". A model can narrow it by
    defining ``decayed_weights()`` itself (DeepOBS's VGG decays only its
    convolutions).
    """
    own = getattr(model, "decayed_weights", None)
    if own is not None:
        return list(own())
    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    return [m.weight for m in model.modules() if isinstance(m, layers)]


def l2_penalty(weights: list[nn.Parameter], weight_decay: float) -> torch.Tensor | float:
    """½ · wd · Σ‖w‖², whose gradient is wd · w (torch's ``weight_decay``)."""
    if weight_decay == 0 or not weights:
        return 0.0
    return 0.5 * weight_decay * sum(w.pow(2).sum() for w in weights)


def deepobs_init(model: nn.Module) -> None:
    """DeepOBS's CIFAR networks: Glorot-normal convolutions, Glorot-uniform dense layers, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_normal_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)


def he_init_convs(model: nn.Module) -> None:
    """He initialisation (fan-out, ReLU) of every convolution, as the ResNet/DenseNet/MobileNetV2 papers do."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
