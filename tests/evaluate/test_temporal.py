"""The temporal-sensitivity measures against encoders whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluate.intervals import model_intervals, paired_entry
from evaluate.temporal import (
    ALTERATIONS,
    altered_features,
    arrow_of_time_accuracy,
    per_video_mean,
    reverse_time,
    similarity,
)
from pipeline.schema import IntervalsParams
from train.intra_negatives import INTRA_NEGATIVES

INTERVALS = IntervalsParams(resamples=200, seed=0, level=0.95)


def time_average(clips: torch.Tensor) -> torch.Tensor:
    """(B,C,T,H,W) -> (B,C*H*W): blind to the order of the frames."""
    return clips.mean(2).flatten(1)


def first_frame(clips: torch.Tensor) -> torch.Tensor:
    """(B,C,T,H,W) -> (B,C*H*W): sees frame 0 only."""
    return clips[:, :, 0].flatten(1)


def ramp_direction(clips: torch.Tensor) -> torch.Tensor:
    """(B,C,T,H,W) -> (B,2): the mean brightness change from frame to frame, and a constant:
    forward clips of a brightening video are positive, reversed ones negative."""
    steps = clips.mean((1, 3, 4)).diff(dim=1).mean(1, keepdim=True)
    return torch.cat([steps, torch.ones_like(steps)], dim=1)


def _clips(b: int = 6, t: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, t, 5, 5, generator=torch.Generator().manual_seed(seed))


def test_the_alterations_are_the_intra_negatives_of_pretraining_and_a_reversal():
    assert ALTERATIONS["repeat"] is INTRA_NEGATIVES["repeat"] and ALTERATIONS["shuffle"] is INTRA_NEGATIVES["shuffle"]
    clips = _clips()
    assert torch.equal(reverse_time(clips)[:, :, 0], clips[:, :, -1])
    assert torch.equal(reverse_time(reverse_time(clips)), clips)


def test_an_encoder_that_averages_over_time_gives_similarity_1_to_shuffled_and_reversed_clips():
    features, altered = altered_features(time_average, _clips(), ALTERATIONS, torch.Generator().manual_seed(1))
    for name in ("shuffle", "reverse"):
        assert torch.allclose(similarity(features, altered[name]), torch.ones(6), atol=1e-6), name
    assert (similarity(features, altered["repeat"]) < 0.999).all()  # one frame repeated is another clip


def test_an_encoder_that_sees_the_first_frame_gives_similarity_1_to_a_static_clip_of_that_frame():
    def static_first(clips: torch.Tensor, _generator: torch.Generator) -> torch.Tensor:
        return clips[:, :, :1].expand_as(clips)

    features, altered = altered_features(first_frame, _clips(), {"static": static_first}, torch.Generator())
    assert torch.allclose(similarity(features, altered["static"]), torch.ones(6), atol=1e-6)
    _, reversed_ = altered_features(first_frame, _clips(), {"reverse": reverse_time}, torch.Generator())
    assert (similarity(features, reversed_["reverse"]) < 0.999).all()  # its last frame is another image


def _arrow(encode, n_train=24, n_test=12, clips_per_video=2):
    """Brightening videos: frame t is brighter than frame t-1, plus noise."""
    g = torch.Generator().manual_seed(3)

    def videos(n):
        ramp = torch.linspace(0, 1, 8).view(1, 1, 8, 1, 1)
        return 0.5 * torch.rand(n, 3, 8, 5, 5, generator=g) + ramp

    train, test = videos(n_train), videos(n_test * clips_per_video)
    test_videos = torch.arange(n_test).repeat_interleave(clips_per_video)
    return arrow_of_time_accuracy(
        encode(train),
        encode(reverse_time(train)),
        encode(test),
        encode(reverse_time(test)),
        test_videos,
        n_test,
        0.01,
        100,
    )


def test_the_arrow_of_time_is_exactly_chance_for_a_time_average_and_right_for_a_direction_feature():
    blind = _arrow(time_average)
    assert blind.shape == (12,) and torch.all(blind == 0.5)  # each clip's two copies get one prediction
    assert torch.all(_arrow(ramp_direction) == 1.0)


def test_per_video_means_average_each_videos_clips_and_refuse_a_video_without_one():
    values = torch.tensor([1.0, 0.0, 0.5, 0.5])
    assert per_video_mean(values, torch.tensor([0, 0, 1, 1]), 2).tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="1 of 3 videos have no clip"):
        per_video_mean(values, torch.tensor([0, 0, 1, 1]), 3)


def test_a_model_paired_with_itself_has_an_interval_of_exactly_0():
    values = np.random.default_rng(0).random(50)
    assert paired_entry(values, values, INTERVALS) == {"diff": 0.0, "low": 0.0, "high": 0.0}


def test_iic_is_paired_with_its_baseline_and_random_init_on_the_same_resampled_videos():
    rng = np.random.default_rng(1)
    iic, baseline = rng.random(40), rng.random(40)
    hits = {m: {"rgb": {"reverse": v}} for m, v in (("iic", iic), ("baseline", baseline), ("random", iic))}
    out = model_intervals(hits, INTERVALS)
    assert list(out) == ["intervals", "paired", "paired_baseline"]
    assert out["paired"]["rgb"]["reverse"] == {"diff": 0.0, "low": 0.0, "high": 0.0}  # random: the same values
    assert out["paired_baseline"]["rgb"]["reverse"] == paired_entry(iic, baseline, INTERVALS)
    without = model_intervals({m: hits[m] for m in ("iic", "random")}, INTERVALS)
    assert list(without) == ["intervals", "paired"]  # no baseline pretrained: no such pair
