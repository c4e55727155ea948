"""The paper's R(2+1)D: VCOP's network (Xu et al. 2019), which upstream BestJuly/IIC trains.

Every 3D convolution t x k x k is factorised into a spatial 1 x k x k convolution to M channels,
batch norm and ReLU, then a temporal t x 1 x 1 convolution, with M chosen so that the pair has
as many parameters as the full convolution (Tran et al. 2018, section 3.5):
M = floor(t k^2 C_in C_out / (k^2 C_in + t C_out)). Unlike torchvision's R(2+1)D (``r21d_tv``),
each convolution computes its own M (the second one of a downsampling block has 288 at width
64, not the first one's 230), the stem is one factorised 3x7x7 convolution (M = 83, not 45),
and the downsampling shortcut is factorised too. One block per stage; at width 64 it has
14,365,303 parameters, as upstream's ``R2Plus1DNet((1, 1, 1, 1))``.
"""

from __future__ import annotations

import torch
from torch import nn

from train.models.backbone import Backbone


def middle_channels(kernel: tuple[int, int, int], c_in: int, c_out: int) -> int:
    """M of a factorised t x k x k convolution from c_in to c_out channels."""
    t, h, w = kernel
    return (t * h * w * c_in * c_out) // (h * w * c_in + t * c_out)


class FactorisedConv3d(nn.Sequential):
    """(B,C_in,T,H,W) -> (B,C_out,T',H',W'): spatial conv, BN, ReLU, temporal conv (no bias, no final BN)."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int],
                 padding: tuple[int, int, int]):  # fmt: skip
        mid = middle_channels(kernel, c_in, c_out)
        super().__init__(
            nn.Conv3d(c_in, mid, (1, *kernel[1:]), stride=(1, *stride[1:]), padding=(0, *padding[1:]), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, c_out, (kernel[0], 1, 1), stride=(stride[0], 1, 1), padding=(padding[0], 0, 0), bias=False),
        )


class FactorisedBlock(nn.Module):
    """Two factorised 3x3x3 convolutions with BN, a residual sum and ReLU; the first strides by 2
    when ``downsample``, and the shortcut is then a factorised 1x1x1 convolution with stride 2 and BN."""

    def __init__(self, c_in: int, c_out: int, downsample: bool):
        super().__init__()
        stride = (2, 2, 2) if downsample else (1, 1, 1)
        self.conv1 = FactorisedConv3d(c_in, c_out, (3, 3, 3), stride, (1, 1, 1))
        self.bn1 = nn.BatchNorm3d(c_out)
        self.conv2 = FactorisedConv3d(c_out, c_out, (3, 3, 3), (1, 1, 1), (1, 1, 1))
        self.bn2 = nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Sequential(FactorisedConv3d(c_in, c_out, (1, 1, 1), stride, (0, 0, 0)), nn.BatchNorm3d(c_out))
            if downsample
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(self.shortcut(x) + residual)


class R2Plus1D(Backbone):
    """Stem (factorised 3x7x7, stride 1x2x2), then one block per stage with widths w, 2w, 4w, 8w."""

    def __init__(self, width: int):
        super().__init__()
        self.stem = nn.Sequential(
            FactorisedConv3d(3, width, (3, 7, 7), (1, 2, 2), (1, 3, 3)), nn.BatchNorm3d(width), nn.ReLU(inplace=True)
        )
        self.layer1 = FactorisedBlock(width, width, downsample=False)
        self.layer2 = FactorisedBlock(width, 2 * width, downsample=True)
        self.layer3 = FactorisedBlock(2 * width, 4 * width, downsample=True)
        self.layer4 = FactorisedBlock(4 * width, 8 * width, downsample=True)
        self.out_dim = 8 * width

    def conv5(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


def r21d(width: int) -> R2Plus1D:
    return R2Plus1D(width)
