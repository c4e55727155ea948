"""What every backbone provides: conv5 maps, a pooled vector, and the retrieval feature."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Backbone(nn.Module):
    """Subclasses define ``conv5`` (input -> the last conv block's map) and ``out_dim`` (its channels)."""

    out_dim: int

    def conv5(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,T,H,W) -> (B,out_dim,T',H',W')."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,T,H,W) -> (B,out_dim): global average of the conv5 map."""
        return self.conv5(x).mean(dim=(2, 3, 4))

    def retrieval_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,T,H,W) -> (B,D): conv5 max-pooled by 1x2x2 and flattened, as the paper does.

        For R3D at 16x112x112 (64-channel stem): 512 x 2 x 3 x 3 = 9,216 values; I3D and S3D:
        1024 x 2 x 2 x 2 = 8,192. A conv5 map narrower than 2 is pooled over what it has.
        """
        conv5 = self.conv5(x)
        kernel = (1, min(2, conv5.shape[3]), min(2, conv5.shape[4]))
        return F.max_pool3d(conv5, kernel_size=kernel).flatten(1)
