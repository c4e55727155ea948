from __future__ import annotations

import torch

from train.classification import confusion_matrix, topk_correct, video_scores


def test_video_scores_average_each_videos_clips():
    clip_scores = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    videos = torch.tensor([0, 0, 1, 1])
    torch.testing.assert_close(video_scores(clip_scores, videos, 2), torch.tensor([[0.6, 0.4], [0.4, 0.6]]))


def test_topk_and_confusion():
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
    labels = torch.tensor([2, 0])
    assert topk_correct(scores, labels, 1).tolist() == [False, True]
    assert topk_correct(scores, labels, 2).tolist() == [True, True]
    matrix = confusion_matrix(scores.argmax(1), labels, 3)
    assert matrix.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]
