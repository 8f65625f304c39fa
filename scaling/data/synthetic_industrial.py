"""A synthetic industrial ranking stream: drifting multi-interest users reacting to items with multi-hot actions.

Every size and rate is a :class:`~scaling.config.SyntheticIndustrialConfig` field. The model:

* **Catalogue.** Item ids ``1..num_items`` belong to one of ``num_categories`` categories (ids
  ``1..num_categories`` seed one category each, the rest are uniform). Within a category items
  have Zipf popularity (a random rank per item), a quality that correlates with popularity, and a
  random trait vector. Ids are released in id order: a fraction is available at time 0 and the
  rest arrive in equal daily batches over the span (the non-stationary vocabulary of Section 1).
* **Timestamps.** Events per user are lognormal (skewed, clipped). Each event after the first
  opens a new session with probability ``1 / mean_events_per_session``; gaps inside a session
  are lognormal (about a minute); the gaps between sessions are exponential and rescaled to fill
  the user's active window (a random fraction of the span at a random start), so heavy users
  have short breaks and light users long ones: per-user activity rates are heavy-tailed.
* **Interests drift.** A user holds 1..``max_interests_per_user`` interest categories (drawn
  from global Zipf category popularity) with log-weights ``theta`` that follow a random walk in
  time (std ``interest_drift_per_day`` per sqrt(day)); at rate ``interest_switch_rate_per_day``
  one interest is replaced by a new category entering at the strength of the current top one.
* **What is shown.** Inside a session the previous category repeats with probability
  ``session_stickiness``; otherwise the category is global popularity with probability
  ``exploration_prob``, else an interest drawn from ``softmax(theta)``. The item is drawn from
  the category's released items by popularity.
* **Actions** (events ``click, like, share, complete, skip``). An engagement score
  ``s = user_bias + intensity_coef * log(1 + I) + affinity_coef * affinity + quality_coef * quality
  + taste_coef * <taste, traits> / sqrt(taste_dim) + sequence_signal_coef * <recent, traits> / sqrt(taste_dim)
  + noise``, where the *intensity* ``I`` is the user's engagement count (click or complete) in the
  item's category decayed with half-life ``intensity_half_life_days``, the *affinity* is the
  latent interest weight of the category relative to uniform (``num_interests * softmax(theta)``,
  0 for non-interests) and ``recent`` is the user's short-term taste (below). Then
  ``click ~ sigmoid(click_bias + s)``, ``complete ~ sigmoid(complete_bias + s + complete_quality_coef
  * quality)``, ``like`` and ``share`` need a click (``sigmoid(bias + s)`` given it), and ``skip``
  needs neither click nor complete (``sigmoid(skip_bias - s)`` given that), so skip anti-correlates
  with the positive events. Each (device, task) adds a random logit offset.
* **Short-term taste** (the planted sequence-only signal, off by default). ``recent`` starts at 0
  and at each click becomes ``lambda * recent + sqrt(1 - lambda^2) * traits(clicked item)`` with
  ``lambda = 1/2``: an exponentially decayed sum over the user's clicks, about the last two, with
  about unit variance per coordinate once a user has clicked a few times (so ``sequence_signal_coef``
  is on the scale of ``taste_coef``). Items are shown by category and popularity, never by traits,
  so the term only moves the actions. A sequence model can learn it from the raw (item, action)
  tokens: item embeddings that learn the traits, and attention from the candidate to the last
  clicked items. Hand-crafted counters cannot: traits are independent of category, popularity and
  quality, and ``recent`` is a zero-mean direction that changes with every click, so decayed
  per-category counts, item, category and user rates, windows and recency mostly average it away
  (a logistic probe on all of them gains a sixth to a quarter of the oracle's NE gain, through
  the rates and the clicks the term itself lifts). Of the
  DLRM inputs (:mod:`scaling.data.features`) only the short history of item ids and action tokens
  carries it, and only partly: a target-independent mean pooling of ``e(item) + e(action)`` adds
  the action to the item instead of selecting the clicked items (so it pools what was shown,
  mostly unclicked), while DIN's target attention can weight clicked items similar to the
  candidate, but only within its ``model.dlrm.history_len`` most recent events. Part of the term (about a
  third of its variance on a quickstart-sized stream) is an item shown again soon after the user
  clicked it (``<traits, traits>`` is large): a per-(user, item) engagement counter, which
  :mod:`~scaling.data.features` does not compute, would catch that part, and so can a history
  that holds the candidate's id.
* **Contexts** (Section 2.1). Each session re-draws the device (locale) with a small probability;
  the per-session series is compressed to the earliest entry of every run of equal values.

So the labels are learnable from the raw sequence (categories, engagement recency, items,
device tokens) and approximable by hand-crafted counters (decayed per-category engagement, item
and user rates), while the latent drift, the taste match and session structure reward a
sequence model with capacity and context. The per-event action probabilities are known: the
dataset carries them (``SequenceDataset.oracle_probabilities``) and the fingerprint records the
oracle NE of every task over the whole stream, a floor below any model (it also knows the
per-event noise).

Determinism: the catalogue and every block of ``_USERS_PER_BLOCK`` users draw from their own
``numpy`` generator derived from ``seed``, so the stream depends only on the config and the seed.
The short-term taste draws nothing random, so ``sequence_signal_coef = 0`` gives exactly the
stream of earlier versions.
Generation is vectorised across the users of a block with a Python loop over event positions.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scaling.config import SyntheticIndustrialConfig
from scaling.data.sequences import ContextEvents, SequenceDataset

GENERATOR_NAME = "synthetic-industrial"
GENERATOR_VERSION = 1
EVENT_NAMES = ("click", "like", "share", "complete", "skip")
CONTEXT_FEATURES = ("device", "locale")
SECONDS_PER_DAY = 86_400.0
# Users simulated together; part of the definition of the stream (changing it changes the draws).
_USERS_PER_BLOCK = 1 << 15
# Zipf exponent of global device and locale popularity (a few devices and locales dominate).
_CONTEXT_ZIPF_EXPONENT = 1.0
# Spawn keys of the independent random streams.
_CATALOGUE_STREAM, _USER_BLOCK_STREAM = 0, 1
_CLICK, _LIKE, _SHARE, _COMPLETE, _SKIP = range(len(EVENT_NAMES))
# lambda of the short-term taste: each click halves the weight of the earlier ones.
_RECENT_CLICK_DECAY = 0.5


def encode_actions(labels: np.ndarray) -> np.ndarray:
    """[E, K] multi-hot events -> [E] int64 action tokens ``1 + sum_k labels[:, k] * 2^k``."""
    if labels.shape[1] > 62:
        raise ValueError(f"an int64 bitmask holds at most 62 events; got {labels.shape[1]}")
    packed = np.packbits(labels.astype(bool), axis=1, bitorder="little").astype(np.int64)  # [E, ceil(K / 8)]
    return 1 + (packed << (8 * np.arange(packed.shape[1], dtype=np.int64))).sum(axis=1)


def decode_actions(tokens: np.ndarray, num_events: int) -> np.ndarray:
    """[E] action tokens -> [E, K] bool multi-hot events (inverse of :func:`encode_actions`)."""
    mask = np.asarray(tokens, dtype=np.int64) - 1
    return ((mask[:, None] >> np.arange(num_events, dtype=np.int64)) & 1).astype(bool)


@dataclass(frozen=True)
class Catalogue:
    """Items and the world's fixed parameters, shared by every user block."""

    item_categories: np.ndarray  # [N + 1] int64 category 1..C of each item (row 0: padding, 0)
    item_quality: np.ndarray  # [N + 1] float64, ~unit variance
    item_traits: np.ndarray  # [N + 1, r] float32, standard normal
    sorted_items: np.ndarray  # [N] int64 item ids in sorted_keys order (by category, then release)
    cumulative_weight: np.ndarray  # [N + 1] float64 popularity cumsum in sorted order, starting at 0
    category_start: np.ndarray  # [C + 1] int64 first sorted row of category c (index 0 unused)
    released_end: np.ndarray  # [C + 1, days + 1] int64 end of category c's released rows on each day
    category_cdf: np.ndarray  # [C] float64 global category popularity CDF (entry i is category i + 1)
    device_cdf: np.ndarray  # [D] float64
    locale_cdf: np.ndarray  # [L] float64
    device_offsets: np.ndarray  # [D, num_events] float64 logit offset per (device, task)


def generate_synthetic_industrial(config: SyntheticIndustrialConfig, seed: int) -> SequenceDataset:
    """The stream described in this module's docstring, deterministic in ``(config, seed)``."""
    catalogue = build_catalogue(config, _generator(seed, _CATALOGUE_STREAM))
    blocks = [
        _generate_block(config, catalogue, num_users, _generator(seed, _USER_BLOCK_STREAM, index))
        for index, num_users in enumerate(block_sizes(config.num_users))
    ]
    return _assemble(config, catalogue, blocks, seed)


def block_sizes(num_users: int) -> list[int]:
    """Users per simulated block: full blocks of ``_USERS_PER_BLOCK``, then the remainder."""
    return [min(_USERS_PER_BLOCK, num_users - first) for first in range(0, num_users, _USERS_PER_BLOCK)]


def _generator(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=stream))


def zipf_cdf(size: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """[size] CDF of a Zipf law over a random permutation of ``size`` outcomes."""
    ranks = rng.permutation(size)
    weights = (ranks + 1.0) ** -exponent
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return cdf


def draw_from_cdf(cdf: np.ndarray, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """0-based outcomes of the distribution with CDF ``cdf``."""
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)


def initial_released_items(config: SyntheticIndustrialConfig) -> int:
    """Ids released at time 0: ``floor(f * num_items)``, and at least one item per category."""
    return max(config.num_categories, math.floor(config.initial_item_fraction * config.num_items + 1e-9))


def release_days(config: SyntheticIndustrialConfig) -> int:
    """Daily release batches over the span (at least one)."""
    return max(1, math.ceil(config.time_span_days))


def release_day(timestamps: np.ndarray, config: SyntheticIndustrialConfig) -> np.ndarray:
    """[E] the release batch in force at each timestamp (seconds): its day, clipped to the span."""
    return np.clip(np.asarray(timestamps) // int(SECONDS_PER_DAY), 0, release_days(config)).astype(np.int64)


def released_item_limit(days: np.ndarray, config: SyntheticIndustrialConfig) -> np.ndarray:
    """Largest item id available on each day: the initial ids, then equal daily batches."""
    initial = initial_released_items(config)
    return initial + (config.num_items - initial) * np.asarray(days, dtype=np.int64) // release_days(config)


def build_catalogue(config: SyntheticIndustrialConfig, rng: np.random.Generator) -> Catalogue:
    """Categories, popularity, quality and traits of every item, and the context distributions."""
    num_items, num_categories = config.num_items, config.num_categories
    item_ids = np.arange(1, num_items + 1, dtype=np.int64)
    # Ids 1..C seed one category each, so every category has an item released at time 0.
    others = rng.integers(1, num_categories + 1, num_items - num_categories)
    categories = np.concatenate([item_ids[:num_categories], others])  # [N]
    sorted_keys = categories * (num_items + 1) + item_ids
    order = np.argsort(sorted_keys, kind="stable")
    sorted_keys, sorted_items = sorted_keys[order], item_ids[order]
    category_start = np.zeros(num_categories + 1, dtype=np.int64)
    category_start[1:] = np.searchsorted(sorted_keys, np.arange(1, num_categories + 1) * (num_items + 1))
    log_popularity = -config.item_zipf_exponent * np.log1p(_rank_within_category(categories, rng))  # [N]
    standardised = (log_popularity - log_popularity.mean()) / max(log_popularity.std(), 1e-12)
    rho = config.quality_popularity_correlation
    quality = rho * standardised + math.sqrt(1.0 - rho * rho) * rng.standard_normal(num_items)
    cumulative = np.concatenate([[0.0], np.cumsum(np.exp(log_popularity)[sorted_items - 1])])  # [N + 1]
    traits = rng.standard_normal((num_items, config.taste_dim), dtype=np.float32)  # [N, r]
    # Inside a category rows are in id (= release) order, so the released items are a prefix.
    limits = released_item_limit(np.arange(release_days(config) + 1), config)  # [days + 1]
    category_keys = np.arange(num_categories + 1)[:, None] * (num_items + 1)  # [C + 1, 1]
    released_end = np.searchsorted(sorted_keys, category_keys + limits[None, :], side="right")  # [C + 1, days + 1]
    return Catalogue(
        item_categories=np.concatenate([[0], categories]).astype(np.int64),
        item_quality=np.concatenate([[0.0], quality]),
        item_traits=np.concatenate([np.zeros((1, config.taste_dim), np.float32), traits]),
        sorted_items=sorted_items,
        cumulative_weight=cumulative,
        category_start=category_start,
        released_end=released_end,
        category_cdf=zipf_cdf(num_categories, config.category_zipf_exponent, rng),
        device_cdf=zipf_cdf(config.num_devices, _CONTEXT_ZIPF_EXPONENT, rng),
        locale_cdf=zipf_cdf(config.num_locales, _CONTEXT_ZIPF_EXPONENT, rng),
        device_offsets=rng.normal(0.0, config.device_effect_std, (config.num_devices, len(EVENT_NAMES))),
    )


def _rank_within_category(categories: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[N] a uniformly random popularity rank 0.. of each item among its category's items."""
    order = np.lexsort((rng.random(categories.size), categories))  # by category, random inside
    sorted_categories = categories[order]
    first_of_category = np.searchsorted(sorted_categories, sorted_categories, side="left")
    ranks = np.empty(categories.size, dtype=np.int64)
    ranks[order] = np.arange(categories.size) - first_of_category
    return ranks


def draw_lengths(config: SyntheticIndustrialConfig, num_users: int, rng: np.random.Generator) -> np.ndarray:
    """[U] events per user: lognormal with mean ``mean_events_per_user`` before clipping."""
    sigma = config.length_sigma
    mu = math.log(config.mean_events_per_user) - 0.5 * sigma * sigma  # E[lognormal] = exp(mu + sigma^2 / 2)
    lengths = np.rint(rng.lognormal(mu, sigma, num_users))
    return np.clip(lengths, config.min_events_per_user, config.max_events_per_user).astype(np.int64)


@dataclass(frozen=True)
class CsrLayout:
    """Where every event of a block of users sits: its user and its position in that user's sequence."""

    offsets: np.ndarray  # [U + 1] int64
    user: np.ndarray  # [E] int64
    position: np.ndarray  # [E] int64

    @staticmethod
    def of(lengths: np.ndarray) -> "CsrLayout":
        offsets = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        user = np.repeat(np.arange(lengths.size), lengths)
        return CsrLayout(offsets, user, np.arange(offsets[-1], dtype=np.int64) - offsets[:-1][user])

    @property
    def num_users(self) -> int:
        return self.offsets.size - 1

    @property
    def num_events(self) -> int:
        return int(self.offsets[-1])


def draw_timeline(
    config: SyntheticIndustrialConfig, layout: CsrLayout, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """[E] int64 timestamps (seconds, non-decreasing per user) and [E] bool session starts."""
    offsets, user, position = layout.offsets, layout.user, layout.position
    num_events, num_users = layout.num_events, layout.num_users
    session_start = (position == 0) | (rng.random(num_events) < 1.0 / config.mean_events_per_session)
    # Gap before each event: lognormal inside a session, exponential before a later session.
    within = rng.lognormal(math.log(config.within_session_gap_seconds), config.within_session_gap_sigma, num_events)
    within *= ~session_start
    between = rng.exponential(1.0, num_events) * (session_start & (position > 0))
    span = config.time_span_days * SECONDS_PER_DAY
    tenure = rng.uniform(config.min_tenure_fraction, 1.0, num_users) * span  # [U] active window
    start = rng.random(num_users) * (span - tenure)  # [U]
    # Rescale the breaks so the user's events fill the window: heavy users get short breaks.
    room = np.maximum(tenure - np.bincount(user, within, num_users), 0.0)
    between_total = np.bincount(user, between, num_users)
    scale = np.divide(room, between_total, out=np.zeros(num_users), where=between_total > 0)
    elapsed = np.cumsum(within + between * scale[user])
    elapsed -= elapsed[offsets[:-1]][user]  # restart at 0 for each user (the first gap is 0)
    return np.floor(start[user] + elapsed).astype(np.int64), session_start


def draw_context_series(
    first_session: np.ndarray, cdf: np.ndarray, change_prob: float, rng: np.random.Generator
) -> np.ndarray:
    """[S] 0-based value per session: drawn at a user's first session, re-drawn with ``change_prob``."""
    redraw = first_session | (rng.random(first_session.size) < change_prob)
    run = np.cumsum(redraw) - 1
    return draw_from_cdf(cdf, int(redraw.sum()), rng)[run]


def run_starts(values: np.ndarray, first_session: np.ndarray) -> np.ndarray:
    """[S] bool: the earliest entry of each run of equal values per user (Section 2.1's compression)."""
    changed = np.ones(values.size, dtype=bool)
    changed[1:] = values[1:] != values[:-1]
    return changed | first_session


@dataclass(frozen=True)
class _Contexts:
    tokens: np.ndarray  # [C] int64
    timestamps: np.ndarray  # [C] int64
    lengths: np.ndarray  # [U] context events per user
    event_device: np.ndarray  # [E] int64 0-based device of every event (drives the device offsets)


def draw_contexts(
    config: SyntheticIndustrialConfig,
    catalogue: Catalogue,
    layout: CsrLayout,
    timestamps: np.ndarray,
    session_start: np.ndarray,
    rng: np.random.Generator,
) -> _Contexts:
    """Device and locale per session, compressed to their changes, as one token vocabulary."""
    user, position = layout.user, layout.position
    sessions = np.flatnonzero(session_start)  # [S] event row opening each session
    first = position[sessions] == 0
    device = draw_context_series(first, catalogue.device_cdf, config.device_change_prob, rng)
    locale = draw_context_series(first, catalogue.locale_cdf, config.locale_change_prob, rng)
    # Tokens 1..D are devices, D+1..D+L locales; row-major order puts device before locale.
    tokens = np.stack([1 + device, 1 + config.num_devices + locale], axis=1).ravel()  # [2S]
    keep = np.stack([run_starts(device, first), run_starts(locale, first)], axis=1).ravel()  # [2S]
    context_user = np.repeat(user[sessions], 2)[keep]
    return _Contexts(
        tokens=tokens[keep].astype(np.int64),
        timestamps=np.repeat(timestamps[sessions], 2)[keep],
        lengths=np.bincount(context_user, minlength=layout.num_users).astype(np.int64),
        event_device=device[np.cumsum(session_start) - 1],
    )


@dataclass(frozen=True)
class StepOrder:
    """Events reordered position-major over users sorted longest first.

    Step p (every user's p-th event) is then the contiguous slice ``step_offsets[p]:step_offsets[p+1]``
    and its users are the first ``active[p]`` sorted users, so the position loop reads and writes
    slices instead of scattered rows.
    """

    users: np.ndarray  # [B] block user of each sorted user (longest first)
    active: np.ndarray  # [P] users with more than p events
    step_offsets: np.ndarray  # [P + 1] int64
    csr_rows: np.ndarray  # [E] CSR row of each event in step order

    @staticmethod
    def of(layout: CsrLayout) -> "StepOrder":
        lengths = np.diff(layout.offsets)
        users = np.argsort(-lengths, kind="stable")
        active = np.searchsorted(-lengths[users], -np.arange(int(lengths.max())), side="left")
        step_offsets = np.zeros(active.size + 1, dtype=np.int64)
        np.cumsum(active, out=step_offsets[1:])
        first_rows = layout.offsets[:-1][users]
        csr_rows = np.concatenate([first_rows[:count] + position for position, count in enumerate(active)])
        return StepOrder(users, active, step_offsets, csr_rows)


@dataclass
class _UserState:
    """Latent state of one block's users in length-sorted order, so active users form a prefix.

    The position loop mutates it in place: it is the only mutable state of the generator.
    """

    num_interests: np.ndarray  # [B] int64 interests held (1..max_interests_per_user)
    interest_categories: np.ndarray  # [B, M] int64 category of each interest slot
    interest_logits: np.ndarray  # [B, M] float64 log-weights theta; -inf for unused slots
    interest_cdf: np.ndarray  # [B, M] float64 cumulative softmax(theta), cached between sessions
    affinities: np.ndarray  # [B, M] float64 num_interests * softmax(theta): 1 = an average interest
    interest_time: np.ndarray  # [B] float64 seconds when the interests were last evolved
    bias: np.ndarray  # [B] float64 engagement propensity
    taste: np.ndarray  # [B, r] float32
    previous_category: np.ndarray  # [B] int64
    origin: np.ndarray  # [B] float64 seconds, the user's first event (reference of the decayed counts)
    # Flattened [B, C + 1]: the sum over engaged events e of 2^((t_e - origin) / half-life). The
    # decayed count at time t is this times 2^(-(t - origin) / half-life), so an update touches one
    # entry instead of decaying a whole row.
    engagement: np.ndarray  # [B * (C + 1)] float64
    recent_traits: np.ndarray  # [B, r] float64 short-term taste: decayed sum of clicked items' traits


def _initial_state(
    config: SyntheticIndustrialConfig, catalogue: Catalogue, first_times: np.ndarray, rng: np.random.Generator
) -> _UserState:
    num_users, slots = first_times.size, config.max_interests_per_user
    num_interests = rng.integers(1, slots + 1, num_users)
    # Interests are drawn with replacement: a repeated category simply holds more weight.
    logits = rng.normal(0.0, config.interest_weight_std, (num_users, slots))
    logits[np.arange(slots)[None, :] >= num_interests[:, None]] = -np.inf
    cdf = softmax_cdf(logits)
    return _UserState(
        num_interests=num_interests,
        interest_categories=1 + draw_from_cdf(catalogue.category_cdf, (num_users, slots), rng),
        interest_logits=logits,
        interest_cdf=cdf,
        affinities=num_interests[:, None] * np.diff(cdf, axis=1, prepend=0.0),
        interest_time=first_times.astype(np.float64),
        bias=rng.normal(0.0, config.user_bias_std, num_users),
        taste=rng.standard_normal((num_users, config.taste_dim), dtype=np.float32),
        previous_category=np.zeros(num_users, dtype=np.int64),
        origin=first_times.astype(np.float64),
        engagement=np.zeros(num_users * (config.num_categories + 1)),
        recent_traits=np.zeros((num_users, config.taste_dim)),
    )


def softmax_cdf(logits: np.ndarray) -> np.ndarray:
    """[n, M] cumulative softmax of each row (the last column is 1)."""
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(weights, axis=1)
    return cdf / cdf[:, -1:]


def _evolve_interests(
    state: _UserState, users: np.ndarray, now: np.ndarray, config: SyntheticIndustrialConfig, catalogue: Catalogue,
    rng: np.random.Generator,
) -> None:
    """Random-walk ``users``' interest log-weights up to ``now`` and maybe switch one interest each.

    Called at session starts only: a Brownian walk sampled there has exactly the law of one
    updated at every event, and interests barely move within a session (minutes).
    """
    elapsed_days = (now - state.interest_time[users]) / SECONDS_PER_DAY  # [s]
    logits = state.interest_logits[users]  # [s, M] copy
    logits += rng.standard_normal(logits.shape) * (config.interest_drift_per_day * np.sqrt(elapsed_days))[:, None]
    switched = np.flatnonzero(rng.random(users.size) < -np.expm1(-config.interest_switch_rate_per_day * elapsed_days))
    slots = (rng.random(switched.size) * state.num_interests[users[switched]]).astype(np.int64)
    state.interest_categories[users[switched], slots] = 1 + draw_from_cdf(catalogue.category_cdf, switched.size, rng)
    logits[switched, slots] = logits[switched].max(axis=1)  # the new interest enters as strong as the top one
    cdf = softmax_cdf(logits)
    state.interest_logits[users], state.interest_cdf[users], state.interest_time[users] = logits, cdf, now
    state.affinities[users] = state.num_interests[users, None] * np.diff(cdf, axis=1, prepend=0.0)


def _choose_categories(
    state: _UserState, count: int, session_start: np.ndarray, config: SyntheticIndustrialConfig, catalogue: Catalogue,
    rng: np.random.Generator,
) -> np.ndarray:
    """[a] category shown: stick to the previous one in-session, else explore, else an interest."""
    slot = (state.interest_cdf[:count] < rng.random(count)[:, None]).sum(axis=1)  # slot ~ softmax(theta)
    category = state.interest_categories[:count].ravel()[np.arange(count) * state.interest_categories.shape[1] + slot]
    explore = np.flatnonzero(rng.random(count) < config.exploration_prob)
    category[explore] = 1 + draw_from_cdf(catalogue.category_cdf, explore.size, rng)
    stick = ~session_start & (rng.random(count) < config.session_stickiness)
    return np.where(stick, state.previous_category[:count], category)


def sample_released_items(
    categories: np.ndarray, days: np.ndarray, catalogue: Catalogue, rng: np.random.Generator
) -> np.ndarray:
    """[a] item of each category, by popularity among the items released by each day."""
    start = catalogue.category_start[categories]
    end = catalogue.released_end[categories, days]
    low, high = catalogue.cumulative_weight[start], catalogue.cumulative_weight[end]
    target = low + rng.random(categories.size) * (high - low)
    order = np.argsort(target)  # sorted queries search several times faster (cache locality)
    row = np.empty_like(start)
    row[order] = np.searchsorted(catalogue.cumulative_weight, target[order], side="right") - 1
    return catalogue.sorted_items[np.clip(row, start, end - 1)]


def _engagement_score(
    state: _UserState, count: int, categories: np.ndarray, items: np.ndarray, decay: np.ndarray,
    config: SyntheticIndustrialConfig, catalogue: Catalogue, rng: np.random.Generator,
) -> np.ndarray:
    """[a] the shared engagement score s of the module docstring; ``decay`` = 2^(-(t - origin) / half-life)."""
    cell = np.arange(count) * (config.num_categories + 1) + categories
    intensity = np.take(state.engagement, cell) * decay  # decayed engagements with this category
    held = state.interest_categories[:count] == categories[:, None]  # [a, M]
    affinity = np.einsum("um,um->u", state.affinities[:count], held.astype(np.float64))
    traits = np.take(catalogue.item_traits, items, axis=0)  # [a, r]
    taste = np.einsum("ur,ur->u", state.taste[:count], traits) / math.sqrt(config.taste_dim)
    score = (
        state.bias[:count]
        + config.intensity_coef * np.log(1.0 + intensity)
        + config.affinity_coef * affinity
        + config.quality_coef * np.take(catalogue.item_quality, items)
        + config.taste_coef * taste
        + config.event_noise_std * rng.standard_normal(count)
    )
    if config.sequence_signal_coef:  # skipped when off, so the stream stays bit-identical
        recent = np.einsum("ur,ur->u", state.recent_traits[:count], traits) / math.sqrt(config.taste_dim)
        score += config.sequence_signal_coef * recent
    return score


def action_probabilities(
    score: np.ndarray, quality: np.ndarray, device: np.ndarray, config: SyntheticIndustrialConfig, catalogue: Catalogue
) -> np.ndarray:
    """[a, K] per-task probabilities; like and share are given a click, skip given neither click nor complete."""
    biases = np.array([config.click_bias, config.like_bias, config.share_bias, config.complete_bias, config.skip_bias])
    signs = np.array([1.0, 1.0, 1.0, 1.0, -1.0])  # skip falls as engagement rises
    logits = biases + score[:, None] * signs + np.take(catalogue.device_offsets, device, axis=0)  # [a, K]
    logits[:, _COMPLETE] += config.complete_quality_coef * quality
    return 1.0 / (1.0 + np.exp(-logits))


def draw_events(conditional: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """[a, K] bool events and their [a, K] marginal probabilities from the conditional ones."""
    drawn = rng.random(conditional.shape) < conditional
    click, complete = drawn[:, _CLICK], drawn[:, _COMPLETE]
    drawn[:, _LIKE] &= click
    drawn[:, _SHARE] &= click
    drawn[:, _SKIP] &= ~click & ~complete
    marginal = conditional.copy()
    marginal[:, _LIKE] *= conditional[:, _CLICK]
    marginal[:, _SHARE] *= conditional[:, _CLICK]
    marginal[:, _SKIP] *= (1.0 - conditional[:, _CLICK]) * (1.0 - conditional[:, _COMPLETE])
    return drawn, marginal


def _record_engagement(
    state: _UserState, categories: np.ndarray, decay: np.ndarray, events: np.ndarray, num_categories: int
) -> None:
    """Add each engaged (click or complete) event to its user's decayed count for its category."""
    users = np.flatnonzero(events[:, _CLICK] | events[:, _COMPLETE])
    state.engagement[users * (num_categories + 1) + categories[users]] += 1.0 / decay[users]


def _record_clicks(state: _UserState, items: np.ndarray, events: np.ndarray, catalogue: Catalogue) -> None:
    """Fold each clicked item's traits into its user's short-term taste (the AR(1) of the module docstring)."""
    users = np.flatnonzero(events[:, _CLICK])
    traits = np.take(catalogue.item_traits, items[users], axis=0)  # [c, r]
    decay = _RECENT_CLICK_DECAY
    state.recent_traits[users] = decay * state.recent_traits[users] + math.sqrt(1.0 - decay * decay) * traits


@dataclass(frozen=True)
class _Block:
    """One block of users' events, in user order."""

    lengths: np.ndarray  # [B]
    item_ids: np.ndarray  # [E] int64
    timestamps: np.ndarray  # [E] int64
    labels: np.ndarray  # [E, K] bool
    probabilities: np.ndarray  # [E, K] float32 true marginal probability of each event
    contexts: _Contexts
    oracle_log_loss: np.ndarray  # [K] summed log loss of the true marginal probabilities


def _generate_block(
    config: SyntheticIndustrialConfig, catalogue: Catalogue, num_users: int, rng: np.random.Generator
) -> _Block:
    lengths = draw_lengths(config, num_users, rng)
    layout = CsrLayout.of(lengths)
    timestamps, session_start = draw_timeline(config, layout, rng)
    contexts = draw_contexts(config, catalogue, layout, timestamps, session_start, rng)
    steps = StepOrder.of(layout)
    state = _initial_state(config, catalogue, timestamps[layout.offsets[:-1][steps.users]], rng)
    items, labels, probabilities, log_loss = _simulate_steps(
        config, catalogue, state, steps,
        now=timestamps[steps.csr_rows].astype(np.float64),
        session_start=session_start[steps.csr_rows],
        days=release_day(timestamps, config)[steps.csr_rows],
        device=contexts.event_device[steps.csr_rows],
        rng=rng,
    )
    item_ids, csr_labels, csr_probabilities = np.empty_like(items), np.empty_like(labels), np.empty_like(probabilities)
    item_ids[steps.csr_rows], csr_labels[steps.csr_rows], csr_probabilities[steps.csr_rows] = items, labels, probabilities
    return _Block(lengths, item_ids, timestamps, csr_labels, csr_probabilities, contexts, log_loss)


def _simulate_steps(
    config: SyntheticIndustrialConfig, catalogue: Catalogue, state: _UserState, steps: StepOrder,
    now: np.ndarray, session_start: np.ndarray, days: np.ndarray, device: np.ndarray, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Items [E], events [E, K], their true probabilities [E, K] and the oracle log loss [K], in step order (inputs too)."""
    half_life = config.intensity_half_life_days * SECONDS_PER_DAY
    items = np.zeros(now.size, dtype=np.int64)
    labels = np.zeros((now.size, len(EVENT_NAMES)), dtype=bool)
    probabilities = np.zeros((now.size, len(EVENT_NAMES)), dtype=np.float32)
    log_loss = np.zeros(len(EVENT_NAMES))
    for position, count in enumerate(steps.active):
        step = slice(steps.step_offsets[position], steps.step_offsets[position + 1])
        starting = np.flatnonzero(session_start[step])
        _evolve_interests(state, starting, now[step][starting], config, catalogue, rng)
        categories = _choose_categories(state, count, session_start[step], config, catalogue, rng)
        items[step] = sample_released_items(categories, days[step], catalogue, rng)
        decay = np.exp2((state.origin[:count] - now[step]) / half_life)
        score = _engagement_score(state, count, categories, items[step], decay, config, catalogue, rng)
        quality = np.take(catalogue.item_quality, items[step])
        events, marginal = draw_events(action_probabilities(score, quality, device[step], config, catalogue), rng)
        _record_engagement(state, categories, decay, events, config.num_categories)
        if config.sequence_signal_coef:
            _record_clicks(state, items[step], events, catalogue)
        state.previous_category[:count] = categories
        labels[step], probabilities[step] = events, marginal
        log_loss -= np.log(np.where(events, marginal, 1.0 - marginal)).sum(axis=0)
    return items, labels, probabilities, log_loss


def binary_entropy(rate: np.ndarray) -> np.ndarray:
    """Entropy (nats) of a Bernoulli(rate): the log loss of always predicting the base rate."""
    rate = np.clip(rate, 1e-12, 1.0 - 1e-12)
    return -(rate * np.log(rate) + (1.0 - rate) * np.log1p(-rate))


def _assemble(
    config: SyntheticIndustrialConfig, catalogue: Catalogue, blocks: list[_Block], seed: int
) -> SequenceDataset:
    lengths = np.concatenate([block.lengths for block in blocks])
    labels = np.concatenate([block.labels for block in blocks])
    context_lengths = np.concatenate([block.contexts.lengths for block in blocks])
    num_context_tokens = config.num_devices + config.num_locales
    token_feature = np.concatenate([[-1], np.zeros(config.num_devices), np.ones(config.num_locales)]).astype(np.int64)
    contexts = ContextEvents(
        tokens=np.concatenate([block.contexts.tokens for block in blocks]),
        timestamps=np.concatenate([block.contexts.timestamps for block in blocks]),
        offsets=CsrLayout.of(context_lengths).offsets,
        num_tokens=num_context_tokens,
        feature_names=CONTEXT_FEATURES,
        token_feature=token_feature,  # row 0 (padding) is -1
    )
    rates = labels.mean(axis=0)
    oracle_ne = sum(block.oracle_log_loss for block in blocks) / (labels.shape[0] * binary_entropy(rates))
    fingerprint: dict[str, Any] = {
        "generator": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "seed": seed,
        "config": dataclasses.asdict(config),
        "num_users": int(lengths.size),
        "num_items": config.num_items,
        "num_events": int(lengths.sum()),
        "num_context_events": int(context_lengths.sum()),
        "positive_rates": {name: float(rate) for name, rate in zip(EVENT_NAMES, rates)},
        "oracle_ne": {name: float(ne) for name, ne in zip(EVENT_NAMES, oracle_ne)},
    }
    return SequenceDataset(
        item_ids=np.concatenate([block.item_ids for block in blocks]),
        timestamps=np.concatenate([block.timestamps for block in blocks]),
        offsets=CsrLayout.of(lengths).offsets,
        num_items=config.num_items,
        fingerprint=fingerprint,
        action_tokens=encode_actions(labels),
        num_action_tokens=1 << len(EVENT_NAMES),
        labels=labels.astype(np.float32),
        task_names=EVENT_NAMES,
        item_categories=catalogue.item_categories,
        num_categories=config.num_categories,
        contexts=contexts,
        oracle_probabilities=np.concatenate([block.probabilities for block in blocks]),
    )
