"""Every network: output shapes, and a parameter count worked out by hand from its reference definition.

Counts are computed on the meta device (no memory, no initialisation), so
even VGG costs nothing; forward passes use batch 2.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from jobs.problems.image_classification import NETS
from jobs.problems.nets.char_rnn import CharRNN
from jobs.problems.nets.layers import SameConv2d, SameConvTranspose2d, SameMaxPool2d, same_padding
from jobs.problems.nets.vae import VAE


def conv(k: int, fan_in: int, fan_out: int, bias: bool = True) -> int:
    return k * k * fan_in * fan_out + (fan_out if bias else 0)


def dense(fan_in: int, fan_out: int, bias: bool = True) -> int:
    return fan_in * fan_out + (fan_out if bias else 0)


def bn(channels: int) -> int:
    return 2 * channels  # γ and β; running statistics are buffers


def logreg(c):
    return dense(784, c)


def mlp(c):
    return dense(784, 1000) + dense(1000, 500) + dense(500, 100) + dense(100, c)


def two_c_two_d(c):  # 28 → pool 14 → pool 7
    return conv(5, 1, 32) + conv(5, 32, 64) + dense(7 * 7 * 64, 1024) + dense(1024, c)


def three_c_three_d(c):  # 32 → conv5 valid 28 → pool 14 → conv3 valid 12 → pool 6 → conv3 same 6 → pool 3
    convolutions = conv(5, 3, 64) + conv(3, 64, 96) + conv(3, 96, 128)
    return convolutions + dense(3 * 3 * 128, 512) + dense(512, 256) + dense(256, c)


def all_cnn_c(c):
    return (conv(3, 3, 96) + 2 * conv(3, 96, 96) + conv(3, 96, 192) + 2 * conv(3, 192, 192) + conv(3, 192, 192)
            + conv(1, 192, 192) + conv(1, 192, c))


def vgg(c, variant):
    blocks = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}[variant]
    total, channels = 0, 3
    for count, width in zip(blocks, (64, 128, 256, 512, 512), strict=True):
        for _ in range(count):
            total += conv(3, channels, width)
            channels = width
    return total + dense(7 * 7 * 512, 4096) + dense(4096, 4096) + dense(4096, c)


def wrn(c, depth, k):
    units, widths = (depth - 4) // 6, (16, 16 * k, 32 * k, 64 * k)
    total = conv(3, 3, 16, bias=False)
    for fan_in, width in zip(widths, widths[1:], strict=False):
        total += bn(fan_in) + conv(3, fan_in, width, False) + bn(width) + conv(3, width, width, False)
        total += conv(1, fan_in, width, False)  # the projection shortcut of the group's first unit
        total += (units - 1) * (2 * bn(width) + 2 * conv(3, width, width, False))
    return total + bn(widths[-1]) + dense(widths[-1], c)


def resnet(c, depth):  # option A shortcuts have no parameters
    n, total, channels = (depth - 2) // 6, conv(3, 3, 16, False) + bn(16), 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += conv(3, channels, width, False) + bn(width) + conv(3, width, width, False) + bn(width)
            channels = width
    return total + dense(64, c)


def densenet40(c):
    total, channels = conv(3, 3, 16, False), 16
    for block in range(3):
        for _ in range(12):
            total += bn(channels) + conv(3, channels, 12, False)
            channels += 12
        if block < 2:
            total += bn(channels) + conv(1, channels, channels, False)
    return total + bn(channels) + dense(channels, c)


def mobilenetv2(c):
    stages = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))
    total, channels = conv(3, 3, 32, False) + bn(32), 32
    for t, width, n in stages:
        for _ in range(n):
            hidden = channels * t
            if t != 1:
                total += conv(1, channels, hidden, False) + bn(hidden)
            total += 9 * hidden + bn(hidden)  # depthwise: one 3x3 filter per channel
            total += conv(1, hidden, width, False) + bn(width)
            channels = width
    return total + conv(1, 320, 1280, False) + bn(1280) + dense(1280, c)


def cnn3192(c):
    return conv(4, 1, 1, False) + dense(784, 4, False) + dense(4, c, False)


EXPECTED = {
    "logreg": logreg, "mlp": mlp, "2c2d": two_c_two_d, "3c3d": three_c_three_d, "allcnnc": all_cnn_c,
    "vgg16": lambda c: vgg(c, 16), "vgg19": lambda c: vgg(c, 19),
    "wrn164": lambda c: wrn(c, 16, 4), "wrn404": lambda c: wrn(c, 40, 4),
    "resnet20": lambda c: resnet(c, 20), "resnet32": lambda c: resnet(c, 32), "resnet56": lambda c: resnet(c, 56),
    "densenet40": densenet40, "mobilenetv2": mobilenetv2, "cnn3192": cnn3192,
}
GREY = {"logreg", "mlp", "2c2d", "cnn3192"}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_network_has_a_hand_count():
    assert set(EXPECTED) == set(NETS)


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("classes", [10, 100])
def test_parameter_counts_match_the_reference_definitions(net, classes):
    with torch.device("meta"):
        model = NETS[net](classes)
    assert count(model) == EXPECTED[net](classes)


def test_hand_counts_agree_with_the_published_sizes():
    assert EXPECTED["cnn3192"](10) == 3192  # the thesis: 4·4 + 784·4 + 4·10
    assert EXPECTED["vgg16"](1000) == 138_357_544 and EXPECTED["vgg19"](1000) == 143_667_240  # ImageNet VGG
    assert EXPECTED["mobilenetv2"](1000) == 3_504_872  # MobileNetV2 1.0 on ImageNet (strides do not count)
    # He et al. 2016 Table 6; Huang et al. 2017 Table 2; Zagoruyko & Komodakis 2016: rounded to their digits
    assert [round(EXPECTED[f"resnet{d}"](10) / 1e6, 2) for d in (20, 32, 56)] == [0.27, 0.46, 0.85]
    assert round(EXPECTED["densenet40"](10) / 1e6, 1) == 1.0
    assert round(EXPECTED["wrn164"](100) / 1e6, 1) == 2.8 and round(EXPECTED["wrn404"](100) / 1e6, 1) == 9.0


#: one forward pass each on batch 2 (VGG's input is resized to 224x224, the slowest here)
@pytest.mark.parametrize("net", sorted(NETS))
def test_forward_pass_shapes(net):
    torch.manual_seed(0)
    model = NETS[net](7).eval()
    x = torch.randn(2, 1, 28, 28) if net in GREY else torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_vae_and_char_rnn_shapes_and_counts():
    vae = VAE()
    images, mean, log_std = vae(torch.rand(3, 1, 28, 28))
    assert images.shape == (3, 1, 28, 28) and mean.shape == log_std.shape == (3, 8)
    assert 0 <= images.min() and images.max() <= 1
    encoder = conv(4, 1, 64) + 2 * conv(4, 64, 64) + 2 * dense(7 * 7 * 64, 8)
    decoder = dense(8, 24) + dense(24, 49) + conv(4, 1, 64) + 2 * conv(4, 64, 64) + dense(14 * 14 * 64, 784)
    assert count(vae) == encoder + decoder

    rnn = CharRNN(83)
    assert rnn(torch.randint(0, 83, (4, 50))).shape == (4, 50, 83)
    lstm_layer = 4 * 128 * (128 + 128) + 2 * 4 * 128  # four gates; torch keeps two bias vectors
    assert count(rnn) == 83 * 128 + 2 * lstm_layer + dense(128, 83)


@pytest.mark.parametrize(("size", "kernel", "stride", "expected"), [
    (28, 5, 1, (2, 2)), (28, 4, 1, (1, 2)), (28, 3, 2, (0, 1)), (32, 3, 2, (0, 1)), (14, 2, 2, (0, 0)),
    (12, 3, 2, (0, 1)), (7, 1, 1, (0, 0)),
])
def test_tensorflow_same_padding(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_same_layers_keep_tensorflow_sizes_and_the_transpose_is_the_adjoint():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 28, 28, dtype=torch.float64)
    assert SameConv2d(3, 4, 4, 2).double()(x).shape == (2, 4, 14, 14)
    assert SameConv2d(3, 4, 3, 2).double()(x).shape == (2, 4, 14, 14)
    assert SameMaxPool2d(3, 2)(x).shape == (2, 3, 14, 14)
    # padded cells never win a max: all-negative inputs stay negative at the edges
    assert (SameMaxPool2d(3, 2)(-x.abs() - 1) < 0).all()
    for kernel, stride in ((4, 2), (4, 1), (3, 2)):
        forward = SameConv2d(3, 5, kernel, stride, bias=False).double()
        transpose = SameConvTranspose2d(5, 3, kernel, stride).double()
        transpose.weight.data.copy_(forward.weight.data)
        transpose.bias.data.zero_()
        y = torch.randn(2, 5, 28 // stride, 28 // stride, dtype=torch.float64)
        assert transpose(y).shape == x.shape
        # <conv(x), y> = <conv_T(y), x>: the transposed layer is exactly TF's "same" transpose
        assert torch.allclose((forward(x) * y).sum(), (transpose(y) * x).sum(), rtol=1e-12)


def test_same_convolution_matches_explicit_tensorflow_padding():
    torch.manual_seed(0)
    layer, x = SameConv2d(2, 3, 4), torch.randn(1, 2, 9, 9)
    expected = F.conv2d(F.pad(x, (1, 2, 1, 2)), layer.weight, layer.bias)
    assert torch.allclose(layer(x), expected)
