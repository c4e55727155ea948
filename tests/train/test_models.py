from __future__ import annotations

import pytest
import torch

from train.models import BACKBONES, build_backbone

# conv5 at 16x112x112 and width 64, and the retrieval feature's size (conv5 max-pooled 1x2x2).
PAPER_SIZE = {arch: ((512, 2, 7, 7), 9216) for arch in ("r3d", "r21d", "r21d_tv", "c3d", "r3d18")}
PAPER_SIZE |= {arch: ((1024, 2, 4, 4), 8192) for arch in ("i3d", "s3d")}


@pytest.mark.parametrize("arch", sorted(BACKBONES))
def test_paper_size_output_shapes(arch):
    model = build_backbone(arch, 64).eval()
    x = torch.randn(2, 3, 16, 112, 112)
    conv5_shape, retrieval_dim = PAPER_SIZE[arch]
    with torch.no_grad():
        conv5 = model.conv5(x)
        assert conv5.shape == (2, *conv5_shape)
        assert model(x).shape == (2, model.out_dim) and model.out_dim == conv5_shape[0]
        # The paper's retrieval feature: conv5 max-pooled 1x2x2 and flattened.
        assert model.retrieval_features(x).shape == (2, retrieval_dim)


@pytest.mark.parametrize("arch", sorted(BACKBONES))
def test_narrow_demo_size(arch):
    model = build_backbone(arch, 16)
    out = model(torch.randn(2, 3, 16, 56, 56))
    assert out.shape == (2, model.out_dim) and model.out_dim == {"i3d": 256, "s3d": 256}.get(arch, 128)
    out.sum().backward()  # trainable end to end
    # At the demo's 40x40 crops conv5 is narrower than the 1x2x2 pool: it still gives a feature.
    assert model.retrieval_features(torch.randn(1, 3, 16, 40, 40)).ndim == 2


def test_i3d_is_inflated_and_s3d_is_separable():
    i3d_kernels = {m.kernel_size for m in build_backbone("i3d", 8).modules() if isinstance(m, torch.nn.Conv3d)}
    s3d_kernels = {m.kernel_size for m in build_backbone("s3d", 8).modules() if isinstance(m, torch.nn.Conv3d)}
    assert {(7, 7, 7), (3, 3, 3)} <= i3d_kernels
    assert (3, 3, 3) not in s3d_kernels and {(1, 7, 7), (7, 1, 1), (1, 3, 3), (3, 1, 1)} <= s3d_kernels


def test_r3d18_has_two_blocks_per_stage():
    assert len(build_backbone("r3d18", 8).layer1) == 2 and len(build_backbone("r3d", 8).layer1) == 1


def test_unknown_backbone():
    with pytest.raises(KeyError, match="resnet50"):
        build_backbone("resnet50", 64)


@pytest.mark.parametrize(
    "arch, parameters",
    [("r3d", 14_361_792), ("c3d", 27_661_440), ("r21d", 14_365_303), ("r21d_tv", 12_487_005)],
)
def test_width_64_parameter_counts_are_upstreams(arch, parameters):
    """r3d, c3d and r21d have upstream BestJuly/IIC's counts (r21d is VCOP's R(2+1)D, which the
    paper uses); r21d_tv is torchvision's R(2+1)D, kept for export into torchvision."""
    assert sum(p.numel() for p in build_backbone(arch, 64).parameters()) == parameters


def test_the_papers_r21d_factorises_every_convolution_with_its_own_middle_width():
    from train.models.r2plus1d import middle_channels

    model = build_backbone("r21d", 64)
    spatial = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size[0] == 1]
    # stem 83; layer1 144, 144; layer2 230, 288 and its factorised 1x1x1 shortcut 42; ...
    assert spatial[:6] == [83, 144, 144, 230, 288, 42]
    assert middle_channels((3, 7, 7), 3, 64) == 83 and middle_channels((1, 1, 1), 64, 128) == 42
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Conv3d))
