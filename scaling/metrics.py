"""Retrieval metrics over the full catalogue, computed from each target's 0-based rank.

rank = number of competing items scored strictly above the target, plus the number tied with
it (ties are broken against the target, so a constant scorer gets no credit). Competing items
are every catalogue item except padding, the target itself and, optionally, the user's
history. HR@K = [rank < K]; NDCG@K = 1 / log2(rank + 2) if rank < K else 0 (one relevant
item, so the ideal DCG is 1); MRR = 1 / (rank + 1). All are means over users.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

# whether a larger value is better (checkpoint selection, early stopping) is the results contract's to say
from core.results_schema import higher_is_better  # noqa: F401

from scaling.metric_names import HIT_RATE_CUTOFFS, NDCG_CUTOFFS  # noqa: E402  (the names configs may select by)
# True probabilities are clipped into [floor, 1 - floor] before taking logits, so log(0) never occurs.
_PROBABILITY_FLOOR = 1e-12


def target_ranks(scores: Tensor, target_ids: Tensor, excluded: Tensor | None = None) -> Tensor:
    """[B] ranks of ``target_ids`` among ``scores`` [B, num_items + 1] (column 0 is padding).

    ``excluded`` [B, num_items + 1] marks items that do not compete (e.g. history items).
    """
    target_scores = scores.gather(1, target_ids.unsqueeze(1))  # [B, 1]
    competes = torch.ones_like(scores, dtype=torch.bool)
    competes[:, 0] = False
    if excluded is not None:
        competes &= ~excluded
    competes.scatter_(1, target_ids.unsqueeze(1), False)
    return ((scores >= target_scores) & competes).sum(dim=1)


def retrieval_metrics(ranks: Tensor) -> dict[str, float]:
    """HR@K, NDCG@K and MRR averaged over the given [U] ranks."""
    ranks = ranks.to(torch.float64)
    metrics: dict[str, float] = {}
    for cutoff in HIT_RATE_CUTOFFS:
        metrics[f"hr@{cutoff}"] = (ranks < cutoff).to(torch.float64).mean().item()
    gains = 1.0 / torch.log2(ranks + 2.0)
    for cutoff in NDCG_CUTOFFS:
        metrics[f"ndcg@{cutoff}"] = torch.where(ranks < cutoff, gains, 0.0).mean().item()
    metrics["mrr"] = (1.0 / (ranks + 1.0)).mean().item()
    return metrics


def random_ranker_expectation(num_candidates: int) -> dict[str, float]:
    """What a uniformly random ranker scores on average with ``num_candidates`` competing items + target."""
    n = num_candidates + 1  # the target's rank is uniform over 0..n-1
    metrics = {f"hr@{k}": min(k, n) / n for k in HIT_RATE_CUTOFFS}
    for k in NDCG_CUTOFFS:
        metrics[f"ndcg@{k}"] = sum(1 / math.log2(r + 2) for r in range(min(k, n))) / n
    metrics["mrr"] = sum(1 / (r + 1) for r in range(n)) / n
    return metrics


def binary_entropy(rate: float) -> float:
    """Entropy (nats) of a Bernoulli(rate) label: the log loss of always predicting the base rate."""
    if rate <= 0.0 or rate >= 1.0:
        return 0.0
    return -(rate * math.log(rate) + (1.0 - rate) * math.log(1.0 - rate))


def normalized_entropy(logits: Tensor, labels: Tensor) -> float:
    """NE (He et al. 2014): mean log loss divided by the entropy of the labels' base rate.

    1.0 is no better than predicting the base rate; lower is better. NaN when every label is equal
    (the base-rate entropy is 0 and NE is undefined).
    """
    labels = labels.to(torch.float64)
    log_loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.to(torch.float64), labels).item()
    baseline = binary_entropy(labels.mean().item())
    return log_loss / baseline if baseline > 0 else float("nan")


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) statistic, ties averaged; NaN if one class."""
    labels = labels.to(torch.bool).cpu().numpy()
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = average_ranks(scores.to(torch.float64).cpu().numpy())
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """[N] 1-based ranks of ``values``, tied values sharing the mean of their ranks (scipy's rankdata
    'average', without importing scipy.stats into every training process); all NaN if any value is NaN."""
    if np.isnan(values).any():
        return np.full(len(values), np.nan)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_tie = np.ones(len(values), dtype=bool)
    starts_tie[1:] = ordered[1:] != ordered[:-1]
    first = np.flatnonzero(starts_tie)  # 0-based position of each tie group's first value
    after = np.append(first[1:], len(values))  # and one past its last
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((first + 1 + after) / 2.0)[np.cumsum(starts_tie) - 1]  # mean of ranks first+1 .. after
    return ranks


def ranking_metrics(logits: Tensor, labels: Tensor, task_names: tuple[str, ...]) -> dict[str, float]:
    """Per-task NE and AUC for [N, K] logits and labels, plus their means ``ne`` and ``auc``."""
    metrics: dict[str, float] = {}
    for k, task in enumerate(task_names):
        metrics[f"ne/{task}"] = normalized_entropy(logits[:, k], labels[:, k])
        metrics[f"auc/{task}"] = roc_auc(logits[:, k], labels[:, k])
        metrics[f"positive_rate/{task}"] = labels[:, k].to(torch.float64).mean().item()
    metrics["ne"] = _nanmean([metrics[f"ne/{t}"] for t in task_names])
    metrics["auc"] = _nanmean([metrics[f"auc/{t}"] for t in task_names])
    return metrics


def oracle_ranking_metrics(probabilities: np.ndarray, labels: np.ndarray, task_names: Sequence[str]) -> dict[str, float]:
    """NE per task and its mean ``ne`` of the true probabilities [N, K] on these labels [N, K] (synthetic data).

    The floor under any model on exactly these events, with :func:`normalized_entropy`'s definition
    (the base rate is these labels'), scored from the probabilities' logits, clipped off 0 and 1.
    """
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), _PROBABILITY_FLOOR, 1.0 - _PROBABILITY_FLOOR)
    logits = torch.from_numpy(np.log(clipped) - np.log1p(-clipped))  # [N, K]
    targets = torch.from_numpy(np.asarray(labels, dtype=np.float64))  # [N, K]
    if logits.shape != targets.shape or logits.shape[1:] != (len(task_names),):
        raise ValueError(f"probabilities {tuple(logits.shape)} and labels {tuple(targets.shape)} must both be "
                         f"[N, {len(task_names)}] (one column per task of {tuple(task_names)})")
    metrics = {f"ne/{task}": normalized_entropy(logits[:, k], targets[:, k]) for k, task in enumerate(task_names)}
    metrics["ne"] = _nanmean([metrics[f"ne/{task}"] for task in task_names])
    return metrics


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")

