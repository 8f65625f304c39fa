"""Training losses and evaluation metrics per task, so the training loop stays task-agnostic.

* Retrieval (``retrieval``, ``gr_retrieval``): sampled softmax over uniformly drawn negatives
  with a temperature on cosine similarities; evaluated by ranking each target against the full
  catalogue (history items excluded) and by the full-softmax log perplexity.
* Ranking: binary cross-entropy per task on the item tokens (or impressions); evaluated by NE
  and AUC per task.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.losses import distinct_items, sample_uniform_negatives, sampled_softmax_over_table
from scaling.data.batching import SequenceBatch, SequenceBatcher
from scaling.metrics import ranking_metrics, retrieval_metrics, target_ranks

SCORING_CHUNK = 1024  # targets scored against the catalogue at once (bounds the [S, I] matrices)


class Objective(Protocol):
    def sample_negatives(self, model: nn.Module, batch: SequenceBatch, generator: torch.Generator) -> Tensor | None:
        """The step's random negatives (drawn before the loss, so its FLOPs can count what it compares)."""
        ...

    def loss(self, model: nn.Module, batch: SequenceBatch, negatives: Tensor | None) -> Tensor: ...

    def evaluate(self, model: nn.Module, batches: Iterable[SequenceBatch], device: torch.device) -> dict[str, float]: ...


class RetrievalObjective:
    def __init__(self, num_negatives: int, temperature: float, batcher: SequenceBatcher, exclude_history: bool) -> None:
        self.num_negatives = num_negatives
        self.temperature = temperature
        self.batcher = batcher
        self.exclude_history = exclude_history

    def sample_negatives(self, model: nn.Module, batch: SequenceBatch, generator: torch.Generator) -> Tensor:
        """[S, R] uniformly drawn negatives of the batch's S targets, on the generator's device."""
        return sample_uniform_negatives(batch.num_targets, self.num_negatives, model.num_items, generator, generator.device)

    def loss(self, model: nn.Module, batch: SequenceBatch, negatives: Tensor) -> Tensor:
        """Sampled softmax of each target among itself and its ``negatives`` [S, R] (from :meth:`sample_negatives`)."""
        queries = model(batch.sequences)[batch.supervised_rows]  # [S, d]
        targets = batch.target_item_ids
        if getattr(model, "item_vectors_are_a_table", False):
            # Normalise the table once ([I, d]) rather than every gathered negative ([S, R, d]).
            return sampled_softmax_over_table(queries, model.catalogue_vectors(), targets, negatives, self.temperature)
        # Item vectors computed by a network (two-tower): once per distinct item the step compares,
        # then looked up by row, rather than once per (target, candidate) pair.
        distinct, rows = distinct_items(torch.cat([targets.unsqueeze(1), negatives], dim=1), model.num_items)  # [U], [S, 1 + R]
        table = model.item_vectors(distinct)  # [U, d]
        return sampled_softmax_over_table(queries, table, rows[:, 0], rows[:, 1:], self.temperature)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[SequenceBatch], device: torch.device) -> dict[str, float]:
        catalogue = model.catalogue_vectors()  # [I + 1, d]
        ranks, neg_log_likelihoods = [], []
        for batch in batches:
            batch = batch.to(device)
            queries = model(batch.sequences)[batch.supervised_rows]  # [S, d]
            for first in range(0, batch.num_targets, SCORING_CHUNK):
                chunk = slice(first, first + SCORING_CHUNK)
                scores = queries[chunk] @ catalogue.T  # [s, I + 1]
                targets = batch.target_item_ids[chunk]
                excluded = self._history_mask(batch.target_events[chunk], catalogue.shape[0]) if self.exclude_history else None
                ranks.append(target_ranks(scores, targets, excluded).cpu())
                neg_log_likelihoods.append(self._negative_log_likelihood(scores, targets).cpu())
        if not ranks:
            return {}
        metrics = retrieval_metrics(torch.cat(ranks))
        metrics["log_pplx"] = torch.cat(neg_log_likelihoods).mean().item()
        return metrics

    def _negative_log_likelihood(self, scores: Tensor, targets: Tensor) -> Tensor:
        """-log p(target) under the full softmax over the catalogue at the training temperature."""
        logits = scores[:, 1:] / self.temperature  # column 0 is padding
        return torch.logsumexp(logits, dim=1) - logits.gather(1, (targets - 1).unsqueeze(1)).squeeze(1)

    def _history_mask(self, target_events: Tensor, num_columns: int) -> Tensor:
        """[s, I + 1] True for items in each target's history (they do not compete)."""
        history, offsets = self.batcher.history_items(target_events)
        history, offsets = history.to(target_events.device), offsets.to(target_events.device)
        mask = torch.zeros(target_events.numel(), num_columns, dtype=torch.bool, device=target_events.device)
        rows = torch.repeat_interleave(torch.arange(target_events.numel(), device=offsets.device), offsets[1:] - offsets[:-1])
        mask[rows, history] = True
        return mask


def base_rate_logits(labels: Tensor, floor: float = 1e-4) -> Tensor:
    """[K] logit of each task's positive rate in ``labels`` [N, K] (rates clipped away from 0 and 1)."""
    rates = labels.to(torch.float64).mean(dim=0).clamp(floor, 1.0 - floor)
    return torch.log(rates / (1.0 - rates)).to(torch.float32)


class RankingObjective:
    """BCE per task on GR item tokens.

    ``prior_logits`` [K] is a fixed offset added to every model's logits: the logit of each task's
    training base rate. A fresh model then predicts the base rate (NE about 1) instead of 0.5,
    which for a 1%-positive task is an NE of about 12; it is the usual bias initialisation of
    CTR models, applied here so that every family gets it identically.
    """

    def __init__(self, task_names: tuple[str, ...], prior_logits: Tensor) -> None:
        self.task_names = task_names
        self.prior_logits = prior_logits

    def logits(self, model: nn.Module, batch: SequenceBatch) -> Tensor:
        return model(batch.sequences, rows=batch.supervised_rows) + self.prior_logits.to(batch.labels.device)  # [S, K]

    def sample_negatives(self, model: nn.Module, batch: SequenceBatch, generator: torch.Generator) -> None:
        return None  # ranking scores labels, not sampled items

    def loss(self, model: nn.Module, batch: SequenceBatch, negatives: Tensor | None) -> Tensor:
        # fp32 logits (a no-op in fp32): a bf16/fp16 autocast forward still reduces its loss in fp32
        return F.binary_cross_entropy_with_logits(self.logits(model, batch).float(), batch.labels)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[SequenceBatch], device: torch.device) -> dict[str, float]:
        logits, labels = [], []
        for batch in batches:
            batch = batch.to(device)
            logits.append(self.logits(model, batch).float().cpu())
            labels.append(batch.labels.cpu())
        if not logits:
            return {}
        return ranking_metrics(torch.cat(logits), torch.cat(labels), self.task_names)


class ImpressionRankingObjective(RankingObjective):
    """Binary cross-entropy per task for DLRMs scoring impressions from causal features (same prior offset)."""

    def logits(self, model: nn.Module, batch) -> Tensor:
        return model(batch.features) + self.prior_logits.to(batch.labels.device)  # [N, K]
