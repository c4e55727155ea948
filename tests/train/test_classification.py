from __future__ import annotations

import torch

from train.classification import CLIP_SCORES, confusion_matrix, topk_correct, video_scores


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


def test_the_clip_rule_decides_a_video_whose_clips_disagree_with_unequal_confidence():
    """One clip very sure of class 0 (logits 8, 0), three clips mildly for class 1 (0, 1): mean
    logits (2, 3/4) pick class 0; mean probabilities of class 1, (0.0003 + 3 x 0.731) / 4 = 0.55, pick 1."""
    logits = torch.tensor([[8.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    videos = torch.zeros(4, dtype=torch.long)
    by_logits = video_scores(CLIP_SCORES["logits"](logits), videos, 1)
    by_softmax = video_scores(CLIP_SCORES["softmax"](logits), videos, 1)
    torch.testing.assert_close(by_logits, torch.tensor([[2.0, 0.75]]))
    p = torch.sigmoid(torch.tensor(1.0))  # softmax([0, 1])[1]
    torch.testing.assert_close(by_softmax[0, 1], (torch.sigmoid(torch.tensor(-8.0)) + 3 * p) / 4)
    assert by_logits.argmax(1).item() == 0 and by_softmax.argmax(1).item() == 1
