"""Stochastic Length (paper Section 3.2, Eq. 4; Appendix F): randomly shorten long training sequences.

With N = ``data.max_seq_len`` tokens and L = floor(N^(alpha/2)), a training sequence of n tokens

* is kept whole when n <= L;
* otherwise is replaced, with probability 1 - N^alpha / n^2, by a subsequence of about L tokens,
  and kept whole with probability N^alpha / n^2,

so the expected attention cost per sequence, E[n'^2] <= L^2 + N^alpha, is O(N^alpha) (Eq. 4).

Subsequences are made of whole *events*, never half of one: an interleaved ranking item token
Phi_i keeps its action token a_i, and a run of contextual tokens travels with the event that
follows it (the context change that was in effect when that event happened). Events are offered
in an order set by the selection method (Appendix F.1, with f_i = t_n - t_i the time elapsed
between event i and the sequence's most recent token) and taken while they fit in L tokens:

* ``greedy``: most recent first (smallest f_i), i.e. the last L tokens;
* ``random``: a uniformly random order;
* ``weighted``: successive sampling without replacement with weights w_i = 1 - f_i / sum_j f_j,
  the sum running over all events of the sequence. We read the paper's "1 - f_{n,i} /
  (sum_{j=1}^L f_{j,i})" this way (an upper limit of L would not normalise anything: the
  candidates are all n events). The weights lie in [0, 1], the newest event weighs 1, and for long
  sequences they are all close to 1, so this is a *mild* preference for recent events, much closer
  to ``random`` than to ``greedy``.

Events holding a supervised token are offered before the others (each group in the method's
order). When every event is supervised (leave-one-out retrieval and ranking streams) this changes
nothing; when only a few are (a streaming window's targets after a long history) it shortens the
*history* instead of throwing the step's targets away, which is what SL is for.

The selection stops at the first event that does not fit, so a subsequence has exactly L tokens
when events are single tokens (retrieval streams) and L - 1 or L tokens for item/action pairs;
the first event offered is always taken, so a sequence never becomes empty. Kept tokens keep
their order, their timestamps and their query timestamps; positions are re-indexed because they
derive from the batch offsets. A supervised token that is kept stays supervised with its
original target and labels (a retrieval token still predicts the event that followed it in the
full stream); a supervised token that is dropped is simply not trained on in that step (its
target is not moved to another token).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from scaling.data.batching import SequenceBatch

Selection = Literal["greedy", "random", "weighted"]
SELECTIONS: tuple[str, ...] = ("greedy", "random", "weighted")


def subsequence_length(max_seq_len: int, alpha: float) -> int:
    """L = floor(N^(alpha/2)) tokens (Eq. 4); exact powers such as 1024^0.8 = 256 are not rounded down."""
    _check_alpha(alpha)
    return int(math.floor(max_seq_len ** (alpha / 2.0) * (1.0 + 1e-12)))


def keep_whole_probability(lengths: np.ndarray, max_seq_len: int, alpha: float) -> np.ndarray:
    """[B] probability that Eq. 4 keeps each sequence whole: 1 if n <= N^(alpha/2), else N^alpha / n^2."""
    lengths = np.asarray(lengths, dtype=np.float64)
    long = lengths > subsequence_length(max_seq_len, alpha)
    safe = np.where(long, lengths, 1.0)
    return np.where(long, float(max_seq_len) ** alpha / safe**2, 1.0)


@dataclass(frozen=True)
class Sparsity:
    """Table 3's statistics of the sequences a model is trained on (Appendix F.2).

    ``sparsity`` = 1 - mean(n) / N. ``s2`` = 1 - mean(n^2) / N^2: the fraction of the N x N
    attention score matrices that is never computed. The paper words s2 as "one minus the
    sparsity of the attention matrix"; taken literally that is a density, which contradicts its
    Tables 3, 14 and 15 (s2 is small exactly when sparsity is, and always >= sparsity), so we
    use the definition those numbers satisfy. Causal halving cancels in the ratio.
    """

    sparsity: float
    s2: float

    def as_dict(self) -> dict[str, float]:
        return {"sparsity": self.sparsity, "s2": self.s2}


def sparsity_of(lengths: np.ndarray, max_seq_len: int) -> Sparsity:
    """:class:`Sparsity` of sequences with these ``lengths`` (tokens) under maximum length N."""
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.size == 0:
        return Sparsity(float("nan"), float("nan"))
    n = float(max_seq_len)
    return Sparsity(1.0 - lengths.mean() / n, 1.0 - (lengths**2).mean() / n**2)


def expected_sparsity(
    lengths: np.ndarray, probabilities: np.ndarray | None, max_seq_len: int, alpha: float | None
) -> Sparsity:
    """Expected :class:`Sparsity` after Eq. 4 for a distribution of sequence lengths.

    ``lengths`` [K] are token counts (each <= N) with ``probabilities`` [K] (None: an empirical
    sample, equally weighted); ``alpha`` None means SL off. For n > L the shortened length is L
    with probability 1 - p and n with probability p = N^alpha / n^2, so E[n'] = L(1 - p) + n p
    and E[n'^2] = L^2 (1 - p) + N^alpha.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    weights = np.full(lengths.shape, 1.0 / max(lengths.size, 1)) if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    if weights.shape != lengths.shape or np.any(weights < 0) or not math.isclose(weights.sum(), 1.0, rel_tol=1e-9):
        raise ValueError("probabilities must be non-negative, shaped like lengths, and sum to 1")
    if np.any(lengths > max_seq_len):
        raise ValueError(f"lengths must be <= max_seq_len ({max_seq_len}); the batcher never builds longer sequences")
    mean, mean_square = lengths, lengths**2
    if alpha is not None:
        short = float(subsequence_length(max_seq_len, alpha))
        whole = keep_whole_probability(lengths, max_seq_len, alpha)
        mean = whole * lengths + (1.0 - whole) * short
        mean_square = whole * lengths**2 + (1.0 - whole) * short**2
    n = float(max_seq_len)
    return Sparsity(1.0 - float(weights @ mean) / n, 1.0 - float(weights @ mean_square) / n**2)


def event_units(item_ids: np.ndarray, action_ids: np.ndarray, context_ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """[T] id of the event unit each token belongs to (ids increase along the batch).

    A token continues the previous token's unit when it is an action token right after an item
    token (the pair Phi_i, a_i of one event; the ranking stream always places them adjacently) or
    when the previous token is contextual (contexts attach to the event that follows them).
    Units never cross sequence boundaries.
    """
    tokens = len(item_ids)
    continues = np.zeros(tokens, dtype=bool)
    if tokens > 1:
        is_context = context_ids > 0
        paired_action = (item_ids[1:] == 0) & (action_ids[1:] > 0) & ~is_context[1:] & (item_ids[:-1] > 0)
        continues[1:] = paired_action | is_context[:-1]
    continues[offsets[:-1][offsets[:-1] < tokens]] = False  # a sequence's first token starts a unit
    return np.cumsum(~continues) - 1


def selection_order(unit_times: np.ndarray, selection: Selection, rng: np.random.Generator) -> np.ndarray:
    """[U] unit indices (of one sequence, chronological) in the order they are offered (Appendix F.1)."""
    count = len(unit_times)
    if selection == "greedy":
        return np.arange(count)[::-1]  # smallest f_i first; ties keep the later (more recent) unit first
    if selection == "random":
        return rng.permutation(count)
    if selection == "weighted":
        return _weighted_order(unit_times, rng)
    raise ValueError(f"stochastic length selection must be one of {', '.join(SELECTIONS)}; got {selection!r}")


def recency_weights(unit_times: np.ndarray) -> np.ndarray:
    """[U] Appendix F.1's feature weights w_i = 1 - f_i / sum_j f_j, f_i = t_n - t_i (all 1 if every f_i is 0)."""
    elapsed = (unit_times.max() - unit_times).astype(np.float64)  # f_i >= 0
    total = elapsed.sum()
    return 1.0 - elapsed / total if total > 0 else np.ones_like(elapsed)


def _weighted_order(unit_times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Successive sampling without replacement, P(next = i) proportional to :func:`recency_weights`.

    Efraimidis & Spirakis (2006): sorting log(u_i) / w_i (u_i ~ U(0, 1)) in decreasing order draws
    that sequence in one pass. A zero weight sorts last.
    """
    weights = recency_weights(unit_times)
    with np.errstate(divide="ignore"):
        keys = np.log(rng.random(len(unit_times))) / weights  # -inf where the weight is 0
    return np.argsort(-keys, kind="stable")


def supervised_first(order: np.ndarray, supervised: np.ndarray) -> np.ndarray:
    """``order`` with the units holding a supervised token moved to the front (each group keeps its order)."""
    first = supervised[order]
    return np.concatenate([order[first], order[~first]])


def choose_units(unit_sizes: np.ndarray, order: np.ndarray, budget: int) -> np.ndarray:
    """[U] bool: the units taken when offered in ``order`` while their tokens fit in ``budget``.

    The first unit offered is taken even if it alone exceeds the budget (never an empty sequence).
    """
    fits = np.cumsum(unit_sizes[order]) <= budget  # a prefix: sizes are >= 1
    fits[:1] = True
    chosen = np.zeros(len(unit_sizes), dtype=bool)
    chosen[order[fits]] = True
    return chosen


def kept_tokens(
    batch: SequenceBatch, max_seq_len: int, alpha: float, selection: Selection, rng: np.random.Generator
) -> np.ndarray:
    """[T] bool: the tokens of ``batch`` that Eq. 4 keeps (the whole sequence, or a subsequence)."""
    sequences = batch.sequences
    offsets = sequences.offsets.numpy()
    lengths = np.diff(offsets)
    keep = np.ones(int(offsets[-1]), dtype=bool)
    shorten = rng.random(len(lengths)) >= keep_whole_probability(lengths, max_seq_len, alpha)  # [B]
    if not shorten.any():
        return keep
    item_ids = sequences.item_ids.numpy()
    units = event_units(item_ids, _ids_or_zeros(sequences.action_ids, item_ids), _ids_or_zeros(sequences.context_ids, item_ids), offsets)
    timestamps = sequences.timestamps.numpy()
    supervised = np.zeros(len(keep), dtype=bool)
    supervised[batch.supervised_rows.numpy()] = True
    budget = subsequence_length(max_seq_len, alpha)
    for b in np.flatnonzero(shorten):
        start, end = offsets[b], offsets[b + 1]
        local = units[start:end] - units[start]  # [n] unit of each token, 0..U-1
        sizes = np.bincount(local)  # [U]
        unit_times = timestamps[start:end][np.cumsum(sizes) - 1]  # time of each unit's last token
        unit_supervised = np.bincount(local, weights=supervised[start:end], minlength=len(sizes)) > 0
        order = supervised_first(selection_order(unit_times, selection, rng), unit_supervised)
        keep[start:end] = choose_units(sizes, order, budget)[local]
    return keep


def _ids_or_zeros(ids: torch.Tensor | None, like: np.ndarray) -> np.ndarray:
    return np.zeros_like(like) if ids is None else ids.numpy()


def subsample_batch(batch: SequenceBatch, keep: np.ndarray) -> SequenceBatch:
    """``batch`` restricted to the tokens ``keep`` [T] marks; dropped supervised tokens leave with their targets."""
    sequences = batch.sequences
    if sequences.num_targets is not None:
        raise ValueError("stochastic length shortens training sequences; this batch has candidate targets (num_targets)")
    keep_t = torch.from_numpy(keep)
    counts = torch.zeros(sequences.num_sequences, dtype=torch.int64)
    counts.index_add_(0, _sequence_of_token(sequences.offsets), keep_t.to(torch.int64))
    offsets = torch.zeros_like(sequences.offsets)
    offsets[1:] = torch.cumsum(counts, 0)
    new_row = torch.cumsum(keep_t.to(torch.int64), 0) - 1  # [T] row of each kept token in the new batch
    survives = keep_t[batch.supervised_rows]  # [S]
    return batch.with_targets(sequences.with_tokens(keep_t, offsets), new_row[batch.supervised_rows[survives]], survives)


def _sequence_of_token(offsets: torch.Tensor) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(offsets.numel() - 1), offsets[1:] - offsets[:-1])


def stochastic_length(
    batch: SequenceBatch, max_seq_len: int, alpha: float, selection: Selection, rng: np.random.Generator
) -> SequenceBatch:
    """Eq. 4 applied to every sequence of a (CPU) training batch, with randomness drawn from ``rng``."""
    return subsample_batch(batch, kept_tokens(batch, max_seq_len, alpha, selection, rng))


@dataclass
class LengthTally:
    """Running count of trained sequence lengths, for :class:`Sparsity` over a pass or a run."""

    num_sequences: int = 0
    sum_lengths: int = 0
    sum_squared_lengths: int = 0

    def add(self, offsets: torch.Tensor) -> None:
        lengths = (offsets[1:] - offsets[:-1]).to(torch.int64)
        self.num_sequences += lengths.numel()
        self.sum_lengths += int(lengths.sum())
        self.sum_squared_lengths += int((lengths * lengths).sum())

    def sparsity(self, max_seq_len: int) -> Sparsity:
        if self.num_sequences == 0:
            return Sparsity(float("nan"), float("nan"))
        n = float(max_seq_len)
        return Sparsity(
            1.0 - self.sum_lengths / self.num_sequences / n,
            1.0 - self.sum_squared_lengths / self.num_sequences / n**2,
        )


@dataclass
class TargetTally:
    """Supervised tokens offered to Stochastic Length and those still supervised after it."""

    offered: int = 0
    trained: int = 0

    def add(self, before: SequenceBatch, after: SequenceBatch) -> None:
        self.offered += before.num_targets
        self.trained += after.num_targets

    def fraction_trained(self) -> float:
        return self.trained / self.offered if self.offered else float("nan")


def _check_alpha(alpha: float) -> None:
    if not 1.0 < alpha <= 2.0:
        raise ValueError(f"stochastic length alpha must be in (1, 2]; got {alpha}")
