"""R3D, R3D-18 and torchvision's R(2+1)D with a configurable width, from torchvision's VideoResNet blocks.

The paper's R3D is a ResNet-3D with one BasicBlock per stage and a 64-channel stem (512-d
output); ``width`` scales every stage (width 64 is the paper's network).
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, Conv3DSimple

from train.models.backbone import Backbone


def _stem_3d(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(3, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    )


def _stem_2plus1d(width: int) -> nn.Sequential:
    # torchvision's R2Plus1dStem with its 45 middle channels scaled to the width (45 at width 64).
    mid = max(1, round(45 * width / 64))
    return nn.Sequential(
        nn.Conv3d(3, mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, width, (3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    )


class VideoResNet(Backbone):
    """Stem, then four stages of BasicBlocks with widths w, 2w, 4w, 8w (strides 1, 2, 2, 2)."""

    def __init__(self, conv_maker: type, layers: list[int], stem: nn.Module, width: int):
        super().__init__()
        self.stem = stem
        self.inplanes = width
        self.layer1 = self._make_layer(conv_maker, width, layers[0], stride=1)
        self.layer2 = self._make_layer(conv_maker, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(conv_maker, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(conv_maker, 8 * width, layers[3], stride=2)
        self.out_dim = 8 * width
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, conv_maker: Any, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            ds_stride = conv_maker.get_downsample_stride(stride)
            downsample = nn.Sequential(
                nn.Conv3d(self.inplanes, planes, kernel_size=1, stride=ds_stride, bias=False),
                nn.BatchNorm3d(planes),
            )
        layers = [BasicBlock(self.inplanes, planes, conv_maker, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes, conv_maker) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def conv5(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


def r3d(width: int) -> VideoResNet:
    return VideoResNet(Conv3DSimple, [1, 1, 1, 1], _stem_3d(width), width)


def r3d18(width: int) -> VideoResNet:
    return VideoResNet(Conv3DSimple, [2, 2, 2, 2], _stem_3d(width), width)


def r21d_tv(width: int) -> VideoResNet:
    """torchvision's R(2+1)D at [1, 1, 1, 1] (12,487,005 parameters at width 64); the paper's is ``r21d``."""
    return VideoResNet(Conv2Plus1D, [1, 1, 1, 1], _stem_2plus1d(width), width)
