from __future__ import annotations

import pytest
import torch

from train.models import BACKBONES, build_backbone


@pytest.mark.parametrize("arch", sorted(BACKBONES))
def test_paper_size_output_shapes(arch):
    model = build_backbone(arch, 64).eval()
    x = torch.randn(2, 3, 16, 112, 112)
    with torch.no_grad():
        conv5 = model.conv5(x)
        assert conv5.shape == (2, 512, 2, 7, 7)
        assert model(x).shape == (2, 512)
        # The paper's retrieval feature: conv5 max-pooled 1x2x2 and flattened.
        assert model.retrieval_features(x).shape == (2, 9216)


@pytest.mark.parametrize("arch", sorted(BACKBONES))
def test_narrow_demo_size(arch):
    model = build_backbone(arch, 16)
    out = model(torch.randn(2, 3, 16, 56, 56))
    assert out.shape == (2, 128)
    out.sum().backward()  # trainable end to end


def test_r3d18_has_two_blocks_per_stage():
    assert len(build_backbone("r3d18", 8).layer1) == 2 and len(build_backbone("r3d", 8).layer1) == 1


def test_unknown_backbone():
    with pytest.raises(KeyError, match="resnet50"):
        build_backbone("resnet50", 64)
