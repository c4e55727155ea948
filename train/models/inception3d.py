"""I3D (inflated Inception-v1, Carreira & Zisserman 2017) and S3D (Xie et al. 2018), width-scaled.

Both follow Inception-v1's layout: a stem, inception blocks 3b-3c, 4b-4f and 5b-5c with max
pools between, 1024 output channels at width 64 (the original; ``width`` scales every
channel count by width / 64). I3D inflates every k x k convolution to k x k x k (the stem's
7x7 to 7x7x7); S3D separates them into 1 x k x k then k x 1 x 1, from torchvision's S3D
building blocks. At 16x112x112 conv5 (block 5c) is (1024, 2, 4, 4), so the retrieval feature
(max-pooled 1x2x2, flattened) has 1024 x 2 x 2 x 2 = 8,192 values.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torchvision.models.video.s3d import SepInceptionBlock3D, TemporalSeparableConv
from torchvision.ops.misc import Conv3dNormActivation

from train.models.backbone import Backbone

# Inception-v1 blocks: (in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection); in
# the 3D networks the "5x5" branch is a second 3x3 (as in I3D and S3D).
_BLOCKS = {
    "3b": (192, 64, 96, 128, 16, 32, 32),
    "3c": (256, 128, 128, 192, 32, 96, 64),
    "4b": (480, 192, 96, 208, 16, 48, 64),
    "4c": (512, 160, 112, 224, 24, 64, 64),
    "4d": (512, 128, 128, 256, 24, 64, 64),
    "4e": (512, 112, 144, 288, 32, 64, 64),
    "4f": (528, 256, 160, 320, 32, 128, 128),
    "5b": (832, 256, 160, 320, 32, 128, 128),
    "5c": (832, 384, 192, 384, 48, 128, 128),
}


def _scale(channels: int, width: int) -> int:
    return max(1, round(channels * width / 64))


class InceptionBlock3D(nn.Module):
    """I3D's inception block: four branches (1x1x1; 1x1x1 -> 3x3x3; 1x1x1 -> 3x3x3; pool -> 1x1x1), concatenated."""

    def __init__(self, in_planes: int, b0: int, b1_mid: int, b1: int, b2_mid: int, b2: int, b3: int, norm_layer):
        super().__init__()
        conv = partial(Conv3dNormActivation, norm_layer=norm_layer, bias=False)
        self.branch0 = conv(in_planes, b0, kernel_size=1)
        self.branch1 = nn.Sequential(conv(in_planes, b1_mid, kernel_size=1), conv(b1_mid, b1, kernel_size=3, padding=1))
        self.branch2 = nn.Sequential(conv(in_planes, b2_mid, kernel_size=1), conv(b2_mid, b2, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), conv(in_planes, b3, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class Inception3D(Backbone):
    """Stem, then blocks 3b-5c with Inception-v1's pools; ``separable`` selects S3D over I3D."""

    def __init__(self, width: int, separable: bool):
        super().__init__()
        norm_layer = partial(nn.BatchNorm3d, eps=0.001, momentum=0.01)
        s = partial(_scale, width=width)
        if separable:  # S3D: every k x k x k conv as 1 x k x k then k x 1 x 1
            stem_conv = TemporalSeparableConv(3, s(64), 7, 2, 3, norm_layer)
            conv3 = TemporalSeparableConv(s(64), s(192), 3, 1, 1, norm_layer)
            block = SepInceptionBlock3D
        else:  # I3D: inflated to full 3D kernels
            stem_conv = Conv3dNormActivation(
                3, s(64), kernel_size=7, stride=2, padding=3, norm_layer=norm_layer, bias=False
            )
            conv3 = Conv3dNormActivation(s(64), s(192), kernel_size=3, padding=1, norm_layer=norm_layer, bias=False)
            block = InceptionBlock3D

        def blocks(*names: str) -> list[nn.Module]:
            return [block(*(s(c) for c in _BLOCKS[n]), norm_layer=norm_layer) for n in names]

        self.features = nn.Sequential(
            stem_conv,
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            Conv3dNormActivation(s(64), s(64), kernel_size=1, norm_layer=norm_layer, bias=False),
            conv3,
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *blocks("3b", "3c"),
            nn.MaxPool3d(3, stride=2, padding=1),
            *blocks("4b", "4c", "4d", "4e", "4f"),
            nn.MaxPool3d(2, stride=2, ceil_mode=True),
            *blocks("5b", "5c"),
        )
        # Output channels: the four branches of block 5c.
        _, b0, _, b1, _, b2, b3 = (s(c) for c in _BLOCKS["5c"])
        self.out_dim = b0 + b1 + b2 + b3

    def conv5(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def i3d(width: int) -> Inception3D:
    return Inception3D(width, separable=False)


def s3d(width: int) -> Inception3D:
    return Inception3D(width, separable=True)
