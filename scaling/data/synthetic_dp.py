"""The synthetic stream of Appendix C: Dirichlet-process categories over a progressively released vocabulary.

Setup (paper, Appendix C; every size is a :class:`SyntheticDPConfig` field):

* each item id ``1..num_items`` is assigned to one of ``num_categories`` categories, uniformly
  and independently at random;
* record ``r`` (0-based, in stream order, one record per user) may only use item ids up to
  ``released_item_limit(r)`` = ``(f + (1 - f) * r / num_records) * num_items`` with ``f`` the
  ``initial_item_fraction`` (the appendix's example: record 500,000 of 1,000,000 with
  f = 0.4 and 20,000 items may use ids up to 14,000);
* a record picks ``k ~ U{1..max_categories_per_record}`` distinct categories, a prior
  ``H_c ~ Dirichlet(1, ..., 1)`` over them and ``alpha ~ U(alpha_low, alpha_high)``;
* position 1 draws its category from ``H_c``; position ``n > 1`` draws a new category from
  ``H_c`` with probability ``alpha / (alpha + n - 1)`` and otherwise repeats category ``c``
  with probability ``n_c / (alpha + n - 1)`` ("rich get richer"); the repeat is implemented
  by copying the category of a uniformly chosen earlier position, which has exactly that law;
* the item is drawn uniformly among the released items of the chosen category.

A category none of whose items is released yet cannot be drawn from, so a record chooses its
categories only among categories that already have a released item (and takes fewer than
``k`` when fewer exist). With the paper's sizes (about 200 items per category, 40% released
at the start) this never binds; it matters only for small vocabularies or a tiny
``initial_item_fraction``. At least one id is always released.

The paper's data has no timestamps; records get a monotone synthetic clock,
``record * record_length + position``. Generation is vectorised over records (in chunks of
a fixed size, so the result depends only on the config and the seed) with a Python loop over
positions: on a 2-core machine 20,000 x 128 takes about a second and the paper's 1,000,000 x 128
under a minute (about two with sequence building and caching; later loads read the cache).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scaling.config import SyntheticDPConfig
from scaling.data.readers import RawInteractions

# Records generated per vectorised block; part of the definition of the stream (changing it
# changes the draws), not a tuning knob.
_RECORDS_PER_BLOCK = 1 << 15

SYNTHETIC_CLOCK = "synthetic clock: record * record_length + position (the paper's data has no timestamps)"


@dataclass(frozen=True)
class DirichletProcessStream:
    """The generated records and the ground truth needed to check them."""

    items: np.ndarray  # [R, L] int32 raw item ids in 1..num_items
    item_categories: np.ndarray  # [num_items + 1] int32 category of each item id (index 0: padding, -1)
    record_categories: np.ndarray  # [R, max_categories_per_record] int32 categories a record draws from (-1: unused)
    released_limits: np.ndarray  # [R] int64 largest item id a record may use

    def to_interactions(self) -> RawInteractions:
        """Records as users in stream order, with the synthetic clock as timestamps."""
        num_records, record_length = self.items.shape
        return RawInteractions(
            users=np.repeat(np.arange(num_records, dtype=np.int64), record_length),
            items=self.items.reshape(-1).astype(np.int64),
            timestamps=np.arange(num_records * record_length, dtype=np.int64),
            ratings=None,
        )


def released_item_limit(record_index: np.ndarray, config: SyntheticDPConfig) -> np.ndarray:
    """[R] largest item id available to each 0-based record (Appendix C's linear release)."""
    # Integer arithmetic so that the appendix's example lands exactly on 14,000.
    initial = initial_released_items(config)
    record_index = np.asarray(record_index, dtype=np.int64)
    return initial + (config.num_items - initial) * record_index // config.num_records


def initial_released_items(config: SyntheticDPConfig) -> int:
    """Ids available to the first record: ``floor(f * num_items)``, at least one."""
    return max(1, math.floor(config.initial_item_fraction * config.num_items + 1e-9))


def generate_dirichlet_process(config: SyntheticDPConfig, seed: int) -> DirichletProcessStream:
    """Generate the whole stream, deterministically from ``config`` and ``seed``."""
    rng = np.random.default_rng(seed)
    catalogue = _Catalogue.assign(config.num_items, config.num_categories, rng)
    items = np.empty((config.num_records, config.record_length), dtype=np.int32)
    record_categories = np.empty((config.num_records, config.max_categories_per_record), dtype=np.int32)
    limits = released_item_limit(np.arange(config.num_records), config)
    for start in range(0, config.num_records, _RECORDS_PER_BLOCK):
        stop = min(start + _RECORDS_PER_BLOCK, config.num_records)
        categories = _choose_record_categories(limits[start:stop], catalogue, config, rng)
        slots = _dirichlet_process_slots(categories, config, rng)
        items[start:stop] = _draw_items(categories, slots, limits[start:stop], catalogue, rng)
        record_categories[start:stop] = categories
    return DirichletProcessStream(items, catalogue.item_categories, record_categories, limits)


@dataclass(frozen=True)
class _Catalogue:
    """Items grouped by category, ascending id within each, for "uniform among released" draws."""

    item_categories: np.ndarray  # [N + 1] int32, index 0 = -1
    items_by_category: np.ndarray  # [N] int64 item ids sorted by (category, id)
    category_start: np.ndarray  # [C + 1] int64 offsets of each category in items_by_category
    category_order: np.ndarray  # [C] int64 categories sorted by their smallest item id
    first_release: np.ndarray  # [C] int64 smallest item id per category, ascending (order above)
    # [N] int64 category * (N + 1) + id along items_by_category: ascending, so one searchsorted
    # counts the ids <= a limit inside any category
    category_id_keys: np.ndarray

    @staticmethod
    def assign(num_items: int, num_categories: int, rng: np.random.Generator) -> _Catalogue:
        categories = rng.integers(0, num_categories, size=num_items)
        by_category = np.argsort(categories, kind="stable")  # stable: ids ascend within a category
        start = np.searchsorted(categories[by_category], np.arange(num_categories + 1))
        smallest = np.full(num_categories, num_items + 1, dtype=np.int64)  # empty: never released
        non_empty = start[1:] > start[:-1]
        smallest[non_empty] = by_category[start[:-1][non_empty]] + 1
        order = np.argsort(smallest, kind="stable")
        items_by_category = by_category.astype(np.int64) + 1
        return _Catalogue(
            item_categories=np.concatenate([[-1], categories]).astype(np.int32),
            items_by_category=items_by_category,
            category_start=start.astype(np.int64),
            category_order=order,
            first_release=smallest[order],
            category_id_keys=categories[by_category].astype(np.int64) * (num_items + 1) + items_by_category,
        )

    def released_counts(self, categories: np.ndarray, limits: np.ndarray) -> np.ndarray:
        """[B, M] released items (ids <= the record's limit) in each category slot (0 for -1)."""
        num_items = len(self.items_by_category)
        safe = np.maximum(categories, 0).astype(np.int64)  # int64: category * (N + 1) overflows int32
        bound = np.searchsorted(self.category_id_keys, safe * (num_items + 1) + limits[:, None], side="right")
        return np.where(categories >= 0, bound - self.category_start[safe], 0)


def _choose_record_categories(
    limits: np.ndarray, catalogue: _Catalogue, config: SyntheticDPConfig, rng: np.random.Generator
) -> np.ndarray:
    """[B, M] distinct categories per record among those with a released item (-1 pads)."""
    num_live = np.searchsorted(catalogue.first_release, limits, side="right")  # >= 1: item 1 is released
    wanted = rng.integers(1, config.max_categories_per_record + 1, size=len(limits))
    ranks = _distinct_ranks(num_live, np.minimum(wanted, num_live), config.max_categories_per_record, rng)
    return np.where(ranks >= 0, catalogue.category_order[np.maximum(ranks, 0)], -1).astype(np.int32)


def _distinct_ranks(population: np.ndarray, count: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """[B, width] a uniform random ``count``-subset of ``0..population-1`` per row (-1 pads).

    Floyd's algorithm, one step per column: for j = n-k .. n-1 draw t in 0..j and take t,
    or j if t was already taken.
    """
    chosen = np.full((len(population), width), -1, dtype=np.int64)
    for step in range(width):
        active = step < count
        candidate = population - count + step
        draw = np.floor(rng.random(len(population)) * np.maximum(candidate + 1, 1)).astype(np.int64)
        taken = (chosen == draw[:, None]).any(axis=1)
        chosen[:, step] = np.where(active, np.where(taken, candidate, draw), -1)
    return chosen


def _dirichlet_process_slots(categories: np.ndarray, config: SyntheticDPConfig, rng: np.random.Generator) -> np.ndarray:
    """[B, L] which of the record's category slots each position uses (the Pólya-urn draws)."""
    num_records, length = len(categories), config.record_length
    active = categories >= 0
    prior = rng.standard_exponential(categories.shape) * active  # Dirichlet(1,...,1) via normalised Exp(1)
    prior_cdf = np.cumsum(prior / prior.sum(axis=1, keepdims=True), axis=1)  # [B, M]
    alpha = rng.uniform(config.alpha_low, config.alpha_high, size=num_records)
    # Every random number up front, so the sequential part below is one gather per position.
    # Position-major [L, B] arrays, so each step of the sequential loop reads contiguous rows.
    uniforms = rng.random((length, num_records))
    slot_type = np.int8 if categories.shape[1] <= np.iinfo(np.int8).max else np.int32
    slots = np.zeros((length, num_records), dtype=slot_type)  # a draw from H_c for every position
    for slot in range(categories.shape[1] - 1):
        slots += uniforms > prior_cdf[:, slot]
    np.minimum(slots, (active.sum(axis=1) - 1).astype(slot_type), out=slots)  # float rounding at the top
    position = np.arange(length)[:, None]  # 0-based; the paper's n = position + 1
    # new draw w.p. alpha / (alpha + n - 1); else repeat category c w.p. n_c / (alpha + n - 1),
    # i.e. copy the category of a uniformly chosen earlier position
    new_draw = rng.random((length, num_records)) * (alpha + position) < alpha
    earlier = (rng.random((length, num_records)) * position).astype(np.int64)  # uniform in 0..position-1
    records = np.arange(num_records)
    for n in range(1, length):
        slots[n] = np.where(new_draw[n], slots[n], slots[earlier[n], records])
    return slots.T


def _draw_items(
    categories: np.ndarray,
    slots: np.ndarray,
    limits: np.ndarray,
    catalogue: _Catalogue,
    rng: np.random.Generator,
) -> np.ndarray:
    """[B, L] an item uniformly among the released items of each position's category."""
    width = categories.shape[1]
    released = catalogue.released_counts(categories, limits).reshape(-1)  # [B * M]
    start = catalogue.category_start[np.maximum(categories, 0)].reshape(-1)  # [B * M]
    slot_index = np.arange(len(categories), dtype=np.int64)[:, None] * width + slots  # [B, L] into [B * M]
    offset = (rng.random(slots.shape) * released[slot_index]).astype(np.int64)
    return catalogue.items_by_category[start[slot_index] + offset]
