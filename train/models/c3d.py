"""C3D (Tran et al. 2015) convolutional part, width-scaled (width 64 is the original)."""

from __future__ import annotations

from torch import nn

from train.models.backbone import Backbone


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]


class C3D(Backbone):
    """conv1 pool(1,2,2) conv2 pool conv3a/b pool conv4a/b pool conv5a/b; channels w..8w."""

    def __init__(self, width: int):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv(3, w),
            nn.MaxPool3d((1, 2, 2)),
            *_conv(w, 2 * w),
            nn.MaxPool3d(2),
            *_conv(2 * w, 4 * w),
            *_conv(4 * w, 4 * w),
            nn.MaxPool3d(2),
            *_conv(4 * w, 8 * w),
            *_conv(8 * w, 8 * w),
            nn.MaxPool3d(2),
            *_conv(8 * w, 8 * w),
            *_conv(8 * w, 8 * w),
        )
        self.out_dim = 8 * w

    def conv5(self, x):
        return self.features(x)


def c3d(width: int) -> C3D:
    return C3D(width)
