"""Retrieval metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scaling.metrics import random_ranker_expectation, retrieval_metrics, target_ranks


def test_rank_counts_items_scored_above_the_target():
    # items 1..5 (column 0 is padding); target 3 scores 0.5, items 1 (0.9) and 4 (0.7) beat it
    scores = torch.tensor([[9.0, 0.9, 0.1, 0.5, 0.7, 0.3]])
    assert target_ranks(scores, torch.tensor([3])).tolist() == [2]
    excluded = torch.tensor([[False, True, False, False, False, False]])  # item 1 is history
    assert target_ranks(scores, torch.tensor([3]), excluded).tolist() == [1]


def test_ties_count_against_the_target():
    scores = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [2]


def test_target_in_history_still_competes_only_with_others():
    scores = torch.tensor([[0.0, 0.2, 0.9, 0.5]])
    excluded = torch.tensor([[False, False, True, True]])  # the target (3) is also in history
    assert target_ranks(scores, torch.tensor([3]), excluded).tolist() == [0]


def test_metrics_of_known_ranks():
    metrics = retrieval_metrics(torch.tensor([0, 2, 60]))
    assert metrics["hr@1"] == pytest.approx(1 / 3)
    assert metrics["hr@10"] == pytest.approx(2 / 3)
    assert metrics["hr@100"] == pytest.approx(1.0)
    assert metrics["ndcg@10"] == pytest.approx((1.0 + 1 / math.log2(4)) / 3)
    assert metrics["ndcg@200"] == pytest.approx((1.0 + 1 / math.log2(4) + 1 / math.log2(62)) / 3)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 61) / 3)


def test_random_scores_match_the_random_ranker_expectation():
    generator = torch.Generator().manual_seed(0)
    users, items = 20000, 99
    scores = torch.rand(users, items + 1, generator=generator)
    targets = torch.randint(1, items + 1, (users,), generator=generator)
    got = retrieval_metrics(target_ranks(scores, targets))
    want = random_ranker_expectation(items - 1)
    assert got["hr@10"] == pytest.approx(want["hr@10"], abs=0.01)
    assert got["mrr"] == pytest.approx(want["mrr"], abs=0.01)


def test_normalized_entropy_of_base_rate_predictor_is_one():
    from scaling.metrics import normalized_entropy

    labels = torch.tensor([1.0, 0.0, 0.0, 0.0])
    base_logit = math.log(0.25 / 0.75)
    assert normalized_entropy(torch.full((4,), base_logit), labels) == pytest.approx(1.0)
    assert normalized_entropy(torch.tensor([5.0, -5.0, -5.0, -5.0]), labels) < 0.05


def test_auc_hand_computed_with_ties():
    from scaling.metrics import roc_auc

    # positives score 0.9 and 0.4; negatives 0.4 and 0.1: pairs (0.9>0.4, 0.9>0.1, 0.4=0.4 -> 1/2, 0.4>0.1) = 3.5/4
    assert roc_auc(torch.tensor([0.9, 0.4, 0.4, 0.1]), torch.tensor([1, 1, 0, 0])) == pytest.approx(3.5 / 4)
    assert math.isnan(roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])))


def test_average_ranks_are_scipys_rankdata_ties_averaged():
    from scipy.stats import rankdata

    from scaling.metrics import average_ranks

    rng = np.random.default_rng(0)
    for values in (rng.normal(size=500), rng.integers(0, 4, size=500).astype(float), np.array([2.0]), np.array([])):
        np.testing.assert_array_equal(average_ranks(values), rankdata(values))
    assert np.isnan(average_ranks(np.array([1.0, np.nan]))).all()
