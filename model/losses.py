"""Retrieval losses: sampled softmax over uniform negatives, alone or mixed with in-batch negatives.

Logits are taken to fp32 (``.float()``, a no-op on fp32 tensors) before the temperature and the
softmax, so a bf16 or fp16 autocast forward still reduces its loss in fp32.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Numbers per block of picked_logits on a CPU, measured best at the Table 4 shapes: 1M scores (4 MB, the
# dense path, 2^20-2^21 within noise) and 4M gathered item-vector numbers (the gathered path, 2^21.5-2^22.5).
PICK_BLOCK_ELEMENTS = 1 << 20
GATHER_BLOCK_ELEMENTS = 1 << 22
# picked_logits scores the whole table when it has fewer rows than this fraction of the K x d numbers a
# query gathers: the two paths cost the same at about 4,500 rows for K = 129, d = 50 on a CPU (Table 4).
DENSE_ROWS_PER_GATHERED_NUMBER = 0.7


def sampled_softmax_loss(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor,
    positive_ids: Tensor,
    negative_ids: Tensor,
    temperature: float,
) -> Tensor:
    """Mean over N targets of -log softmax of the positive among [positive, R negatives].

    query, positive: [N, d] (L2-normalised); negatives: [N, R, d]; positive_ids: [N];
    negative_ids: [N, R]. A negative that happens to be the positive item is masked out
    (it is not a negative), as in the reference implementation. This is the formula on given
    vectors; training calls :func:`sampled_softmax_over_table`, which the tests check against it.
    """
    logits = torch.cat([(query * positive).sum(-1, keepdim=True), torch.einsum("nd,nrd->nr", query, negatives)], 1)
    candidates = torch.cat([positive_ids.unsqueeze(1), negative_ids], dim=1)  # [N, 1 + R]
    return _softmax_loss_of_first_column(logits.float() / temperature, candidates, positive_ids)


def _softmax_loss_of_first_column(scores: Tensor, candidate_ids: Tensor, positive_ids: Tensor) -> Tensor:
    """Mean -log softmax of column 0 (the positive) of ``scores`` [N, C], the other columns of ``candidate_ids``
    [N, C] that are the positive item (accidental hits) masked out."""
    accidental_hit = candidate_ids == positive_ids.unsqueeze(1)
    accidental_hit[:, 0] = False
    scores = scores.masked_fill(accidental_hit, float("-inf"))
    return (torch.logsumexp(scores, dim=1) - scores[:, 0]).mean()


def sampled_softmax_over_table(
    query: Tensor, table: Tensor, positive_ids: Tensor, negative_ids: Tensor, temperature: float
) -> Tensor:
    """:func:`sampled_softmax_loss` with item vectors taken from the rows of a normalised table.

    ``table`` is [rows, d]: the whole catalogue (row = item id, [num_items + 1, d]), or the distinct
    items of a batch (:func:`distinct_items`, ids given as row numbers); distinct items have
    distinct rows, so an accidental hit is the same row id either way. The logits come from
    :func:`picked_logits`; the temperature divides the [N, 1 + R] picked ones only.
    """
    candidates = torch.cat([positive_ids.unsqueeze(1), negative_ids], dim=1)  # [N, 1 + R]
    return _softmax_loss_of_first_column(picked_logits(query, table, candidates).float() / temperature, candidates,
                                         positive_ids)


def picked_logits(query: Tensor, table: Tensor, ids: Tensor) -> Tensor:
    """[N, K] dot products of each query [N, d] with the table rows ``ids`` [N, K] picks for it.

    Two exact ways, the cheaper chosen by shape. When the table has fewer rows than
    DENSE_ROWS_PER_GATHERED_NUMBER x the K x d numbers gathered per query, one [N, d] x [d, rows]
    matmul scores every row and the picked columns are taken (a dense GEMM forward and backward);
    otherwise each query's K rows are gathered (``index_select``, whose backward is an
    ``index_add``) and dotted. Either runs a block of queries at a time on a CPU
    (PICK_BLOCK_ELEMENTS scores, GATHER_BLOCK_ELEMENTS gathered numbers), so no [N, rows] or
    [N, K, d] tensor (nor its gradient) is ever whole. At the Table 4
    setting on ml-100k (N = 11,500 targets, 1,683 items, K = 129, d = 50) the whole [N, rows] matrix
    was 78 MB and the loss, forward and backward, 224 ms of a 330 ms training step; in blocks it is
    95-115 ms. On amazon-beauty's 12,102 items the gathered path went from 464 to 261 ms.
    """
    rows, dim = table.shape
    dense = rows < DENSE_ROWS_PER_GATHERED_NUMBER * ids.shape[1] * dim
    per_query, budget = (rows, PICK_BLOCK_ELEMENTS) if dense else (ids.shape[1] * dim, GATHER_BLOCK_ELEMENTS)
    block = max(1, budget // max(1, per_query)) if query.device.type == "cpu" else query.shape[0]

    def scores(part: slice) -> Tensor:
        picked = ids[part]
        if dense:
            return (query[part] @ table.T).gather(1, picked)
        vectors = table.index_select(0, picked.reshape(-1)).view(*picked.shape, dim)  # [b, K, d]
        return torch.bmm(vectors, query[part].unsqueeze(2)).squeeze(2)

    if query.shape[0] <= block:
        return scores(slice(None))
    return torch.cat([scores(slice(start, start + block)) for start in range(0, query.shape[0], block)])


def distinct_items(item_ids: Tensor, num_items: int) -> tuple[Tensor, Tensor]:
    """The sorted distinct ids among ``item_ids`` (values in 0..num_items) and each id's row among them.

    Returns (distinct [U], rows shaped like ``item_ids``) with distinct[rows] == item_ids: what
    ``torch.unique(item_ids, sorted=True, return_inverse=True)`` returns. When the ids outnumber the
    catalogue (a training batch's targets and negatives) a presence mask over the catalogue finds
    them in O(ids + items) instead of sorting the ids (about 10 x faster on CPU).
    """
    if item_ids.numel() < num_items:
        return torch.unique(item_ids, sorted=True, return_inverse=True)
    present = torch.zeros(num_items + 1, dtype=torch.bool, device=item_ids.device)
    present[item_ids] = True
    row_of_item = present.cumsum(0) - 1  # [num_items + 1] row of each present item
    return present.nonzero().squeeze(1), row_of_item[item_ids]


def sample_uniform_negatives(
    num_targets: int, num_negatives: int, num_items: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """[N, R] item ids drawn uniformly from 1..num_items (0 is padding), independently per target."""
    return torch.randint(1, num_items + 1, (num_targets, num_negatives), generator=generator, device=device)


def mixed_negatives_softmax_loss(
    query: Tensor,
    positive: Tensor,
    positive_ids: Tensor,
    temperature: float,
    negatives: Tensor | None = None,
    negative_ids: Tensor | None = None,
    item_frequencies: Tensor | None = None,
    in_batch_rows: Tensor | None = None,
) -> Tensor:
    """Mean over N targets of -log softmax of the positive among in-batch and sampled negatives.

    Mixed negative sampling (Yang et al., WWW 2020). query, positive: [N, d]; positive_ids: [N].
    Row i's candidates are its positive, the positives of the rows ``in_batch_rows`` (default:
    all N, which costs [N, N] logits; pass a subset of B' rows for long jagged batches) and its
    own R sampled ``negatives`` [N, R, d] with ``negative_ids`` [N, R] (optional). A candidate
    with the positive's id is masked: it is not a negative.

    In-batch negatives are drawn in proportion to popularity, which over-penalises popular
    items. With ``item_frequencies`` [num_items + 1] (p_j: the share of training targets that
    are item j) every logit, the positive's included, is corrected by the log of the item's
    expected number of draws under the mixed proposal, log(B' p_j + R / num_items): the logQ
    correction of Yi et al. (RecSys 2019, Section 3.2) extended to uniform negatives.
    """
    shared_rows = torch.arange(query.shape[0], device=query.device) if in_batch_rows is None else in_batch_rows
    logits = [(query * positive).sum(-1, keepdim=True), query @ positive[shared_rows].T]  # [N, 1], [N, B']
    candidate_ids = [positive_ids.unsqueeze(1), positive_ids[shared_rows].unsqueeze(0).expand(query.shape[0], -1)]
    if negatives is not None:
        if negative_ids is None:
            raise ValueError("negative_ids are needed with negatives (to mask accidental hits and correct logQ)")
        logits.append(torch.einsum("nd,nrd->nr", query, negatives))  # [N, R]
        candidate_ids.append(negative_ids)
    scores = torch.cat(logits, dim=1).float() / temperature  # [N, 1 + B' + R]; column 0 is the positive
    ids = torch.cat(candidate_ids, dim=1)
    if item_frequencies is not None:
        num_sampled = 0 if negatives is None else negatives.shape[1]
        expected_draws = len(shared_rows) * item_frequencies + num_sampled / (item_frequencies.numel() - 1)
        scores = scores - torch.log(expected_draws.clamp(min=1e-12))[ids]
    return _softmax_loss_of_first_column(scores, ids, positive_ids)
