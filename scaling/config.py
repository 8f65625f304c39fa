"""The run config: typed sections (data, model, train, eval) validated before anything runs.

A run is fully described by a :class:`RunConfig`; YAML files and ``--set key=value`` overrides
are turned into one by :func:`load_run_config`. Every field documents its meaning and unit
(``scaling config`` prints them all).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.configtools import SAFE_NAME, apply_overrides, from_dict, load_yaml, option, require
from core.results_schema import Task
from model.catalogue import check_task, model_spec
from model.config import ModelConfig
from scaling.metric_names import selection_metric_problem

MAX_SEED = 1 << 62  # seeds offset by small stream numbers must stay within numpy's and torch's seed ranges
DatasetName = Literal["ml-1m", "ml-20m", "ml-100k", "amazon-beauty", "amazon-books", "synthetic-dp", "synthetic-industrial", "csv", "yambda", "kuairand"]


@dataclass(frozen=True)
class SyntheticDPConfig:
    """Appendix C's Dirichlet-process stream over a progressively released vocabulary."""

    num_items: int = option(20_000, "item vocabulary size")
    num_categories: int = option(100, "categories; each item belongs to exactly one")
    num_records: int = option(1_000_000, "records (users) generated, in stream order")
    record_length: int = option(128, "items per record")
    max_categories_per_record: int = option(5, "a record draws its categories from up to this many")
    alpha_low: float = option(1.0, "lower end of the DP concentration alpha ~ U(low, high)")
    alpha_high: float = option(500.0, "upper end of the DP concentration alpha ~ U(low, high)")
    initial_item_fraction: float = option(0.4, "fraction of item ids available at the first record")

    def __post_init__(self) -> None:
        for key in ("num_items", "num_categories", "num_records", "record_length", "max_categories_per_record"):
            require(getattr(self, key) >= 1, key, f"must be >= 1; got {getattr(self, key)}")
        require(self.num_items >= self.num_categories, "num_items",
                f"must be >= num_categories ({self.num_categories}); got {self.num_items}")
        require(0 < self.alpha_low <= self.alpha_high, "alpha_low",
                f"must satisfy 0 < alpha_low <= alpha_high; got {self.alpha_low}, {self.alpha_high}")
        require(0 < self.initial_item_fraction <= 1, "initial_item_fraction",
                f"must be in (0, 1]; got {self.initial_item_fraction}")


@dataclass(frozen=True)
class SyntheticIndustrialConfig:
    """An industrial-style ranking stream: drifting multi-interest users, multi-hot actions, contexts.

    See :mod:`scaling.data.synthetic_industrial` for the generative model. Times are in days or
    seconds as each name says; probabilities are per event or per session as each help says.
    """

    # Population and catalogue.
    num_users: int = option(100_000, "users generated")
    num_items: int = option(50_000, "item vocabulary size (ids 1..num_items, released in id order)")
    num_categories: int = option(200, "item categories; each item belongs to exactly one")
    category_zipf_exponent: float = option(0.8, "Zipf exponent of global category popularity (interests, exploration)")
    item_zipf_exponent: float = option(0.8, "Zipf exponent of item popularity within a category")
    initial_item_fraction: float = option(
        0.5, "fraction of item ids released at time 0; the rest arrive in equal daily batches over the span"
    )
    quality_popularity_correlation: float = option(0.5, "correlation of an item's quality with its standardised log popularity")
    # Sequence lengths and timestamps.
    mean_events_per_user: float = option(200.0, "mean of the lognormal events-per-user distribution (before clipping)")
    length_sigma: float = option(1.0, "sigma of log(events per user); larger is more skewed")
    min_events_per_user: int = option(5, "events per user are clipped below at this")
    max_events_per_user: int = option(2048, "events per user are clipped above at this")
    time_span_days: float = option(365.0, "users' active windows lie in [0, time_span_days] (days)")
    min_tenure_fraction: float = option(0.1, "a user's active window is U(min_tenure_fraction, 1) x the span")
    mean_events_per_session: float = option(8.0, "mean session size in events (geometric)")
    within_session_gap_seconds: float = option(60.0, "median gap between events of one session (lognormal, seconds)")
    within_session_gap_sigma: float = option(1.0, "sigma of log(within-session gap)")
    # Interests and their drift.
    max_interests_per_user: int = option(4, "a user holds U{1..max} interest categories at a time")
    interest_weight_std: float = option(1.0, "std of the initial log-weights of a user's interests")
    interest_drift_per_day: float = option(0.15, "std of the log-weight random walk per sqrt(day)")
    interest_switch_rate_per_day: float = option(0.01, "rate (per day) at which one interest is replaced by a new category")
    session_stickiness: float = option(0.5, "probability that a within-session event repeats the previous category")
    exploration_prob: float = option(0.1, "probability that an event's category comes from global popularity instead")
    # Action model (logistic; see the module docstring).
    intensity_half_life_days: float = option(7.0, "half-life of the decayed count of engagements per (user, category) (days)")
    intensity_coef: float = option(0.6, "weight of log(1 + intensity) in the engagement score")
    affinity_coef: float = option(0.4, "weight of the latent interest weight (relative to uniform) in the score")
    quality_coef: float = option(0.5, "weight of item quality in the score")
    taste_dim: int = option(8, "dimension of the user-taste / item-trait vectors")
    taste_coef: float = option(0.5, "weight of the user-item taste match in the score")
    sequence_signal_coef: float = option(
        0.0, "weight of the short-term taste <recently clicked items' traits, item traits> / sqrt(taste_dim) in the "
        "score, a signal only a model reading the raw sequence can use (0: off, the stream is unchanged)"
    )
    user_bias_std: float = option(0.5, "std of each user's engagement propensity")
    event_noise_std: float = option(0.5, "std of per-event noise in the score (shared by all tasks)")
    click_bias: float = option(-3.3, "logit offset of click")
    like_bias: float = option(-4.0, "logit offset of like given click")
    share_bias: float = option(-6.0, "logit offset of share given click")
    complete_bias: float = option(-3.3, "logit offset of complete")
    complete_quality_coef: float = option(0.5, "extra weight of item quality in complete (consumption follows quality)")
    skip_bias: float = option(1.5, "logit offset of skip given neither click nor complete (skip uses minus the score)")
    device_effect_std: float = option(0.3, "std of each (device, task) logit offset")
    # Slowly changing contexts (Section 2.1).
    num_devices: int = option(4, "device vocabulary size")
    num_locales: int = option(30, "locale vocabulary size")
    device_change_prob: float = option(0.05, "probability that a session re-draws the user's device")
    locale_change_prob: float = option(0.01, "probability that a session re-draws the user's locale")

    def __post_init__(self) -> None:
        for key in ("num_users", "num_items", "num_categories", "min_events_per_user", "max_interests_per_user",
                    "taste_dim", "num_devices", "num_locales"):
            require(getattr(self, key) >= 1, key, f"must be >= 1; got {getattr(self, key)}")
        require(self.num_items >= self.num_categories, "num_items",
                f"must be >= num_categories ({self.num_categories}) so every category has an item; got {self.num_items}")
        require(self.max_events_per_user >= self.min_events_per_user, "max_events_per_user",
                f"must be >= min_events_per_user ({self.min_events_per_user}); got {self.max_events_per_user}")
        for key in ("mean_events_per_user", "mean_events_per_session"):
            require(getattr(self, key) >= 1, key, f"must be >= 1; got {getattr(self, key)}")
        for key in ("time_span_days", "within_session_gap_seconds", "intensity_half_life_days"):
            require(getattr(self, key) > 0, key, f"must be > 0; got {getattr(self, key)}")
        # 2^(span / half-life) must stay finite in float64 (the decayed counts are kept in that form).
        require(self.time_span_days / self.intensity_half_life_days <= 1000, "intensity_half_life_days",
                f"must be >= time_span_days / 1000 ({self.time_span_days / 1000:g}); got {self.intensity_half_life_days}")
        for key in ("category_zipf_exponent", "item_zipf_exponent", "length_sigma", "within_session_gap_sigma",
                    "interest_weight_std", "interest_drift_per_day", "interest_switch_rate_per_day", "user_bias_std",
                    "event_noise_std", "device_effect_std"):
            require(getattr(self, key) >= 0, key, f"must be >= 0; got {getattr(self, key)}")
        for key in ("session_stickiness", "exploration_prob", "device_change_prob", "locale_change_prob"):
            require(0 <= getattr(self, key) <= 1, key, f"must be in [0, 1]; got {getattr(self, key)}")
        require(0 < self.initial_item_fraction <= 1, "initial_item_fraction",
                f"must be in (0, 1]; got {self.initial_item_fraction}")
        require(0 < self.min_tenure_fraction <= 1, "min_tenure_fraction", f"must be in (0, 1]; got {self.min_tenure_fraction}")
        require(-1 <= self.quality_popularity_correlation <= 1, "quality_popularity_correlation",
                f"must be in [-1, 1]; got {self.quality_popularity_correlation}")
        require(0 <= self.sequence_signal_coef < float("inf"), "sequence_signal_coef",
                f"must be a finite number >= 0 (0 turns the planted sequence signal off); got {self.sequence_signal_coef}")


@dataclass(frozen=True)
class DataConfig:
    dataset: DatasetName = option("synthetic-dp", "dataset format and name")
    path: str | None = option(
        None,
        "raw data file or folder (null: $GR_SCALING_DATA/<dataset>, else <cache_dir>/datasets/<dataset>;"
        " a missing known dataset is downloaded there if allowed)",
    )
    max_seq_len: int = option(
        200, "longest token sequence a sequence model reads, in tokens (most recent kept; also sizes its position "
        "tables): retrieval has 1 token per event; gr_retrieval 1 per event (item and action summed) and ranking 2 "
        "(item, then action), both plus 1 per change of a contextual feature (device, locale). Impression models (the DLRM "
        "baselines) read model.dlrm.history_len items instead",
    )
    task: Task = option(
        "retrieval",
        "retrieval: next item; gr_retrieval: interleaved (item, action) tokens, next positive item; "
        "ranking: interleaved item/action tokens, predict each item's actions (Table 1)",
    )
    positive_task: str | None = option(
        None, "action task whose label makes an event positive for gr_retrieval (null: the dataset's first task)"
    )
    min_user_interactions: int = option(3, "users with fewer interactions are dropped (leave-one-out needs 3)")
    min_item_interactions: int = option(1, "items with fewer interactions are dropped before users are counted")
    k_core: bool = option(
        False, "repeat the item then user filters until neither drops anything (a k-core); false: one pass"
    )
    duplicate_events: Literal["drop", "refuse"] = option(
        "drop", "events repeating an earlier one's user, item and timestamp exactly: drop (counted in `scaling data "
        "stats` and result.json) or refuse the file; kept, a duplicate of a test item sits in the history and leaks it"
    )
    seed: int = option(
        42, "seeds the synthetic generators (the data themselves); the run's own seed never changes the data, "
        "so a sweep's seeds vary initialisation, order, negatives and dropout on one dataset"
    )
    download: bool = option(True, "download a known public dataset that is missing from disk")
    cache_dir: str | None = option(None, "preprocessed-data cache (null: $GR_SCALING_CACHE or ~/.cache/gr-scaling)")
    synthetic_dp: SyntheticDPConfig = option(SyntheticDPConfig, "synthetic-dp generator settings")
    synthetic_industrial: SyntheticIndustrialConfig = option(
        SyntheticIndustrialConfig, "synthetic-industrial generator settings (ranking stream with actions and contexts)"
    )

    def __post_init__(self) -> None:
        require(0 <= self.seed <= MAX_SEED, "seed", f"must be an integer in [0, 2^62]; got {self.seed}")
        require(self.max_seq_len >= 2, "max_seq_len", f"must be >= 2; got {self.max_seq_len}")
        require(self.min_user_interactions >= 3, "min_user_interactions",
                f"must be >= 3 (one training item plus the validation and test items); got {self.min_user_interactions}")
        require(self.min_item_interactions >= 1, "min_item_interactions", f"must be >= 1; got {self.min_item_interactions}")
        require(self.dataset != "csv" or self.path is not None, "path",
                "is required when data.dataset is 'csv' (a .csv or .parquet file with user,item,timestamp)")


@dataclass(frozen=True)
class StochasticLengthConfig:
    """Stochastic Length (Section 3.2, Eq. 4): randomly shorten long training sequences (never evaluation)."""

    alpha: float | None = option(
        None,
        "Eq. 4 exponent in (1, 2]: a training sequence of n > N^(alpha/2) tokens (N = data.max_seq_len) is cut "
        "to floor(N^(alpha/2)) tokens with probability 1 - N^alpha / n^2 (null: off; 2.0 never cuts)",
    )
    selection: Literal["greedy", "random", "weighted"] = option(
        "greedy",
        "which events a cut sequence keeps (Appendix F.1): greedy = most recent, random = uniform, "
        "weighted = sampled with weights 1 - f_i / sum_j f_j, f_i = time elapsed since event i",
    )

    def __post_init__(self) -> None:
        require(self.alpha is None or 1.0 < self.alpha <= 2.0, "alpha",
                f"must be in (1, 2] (Eq. 4), or null to switch Stochastic Length off; got {self.alpha}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = option(100, "passes over the training users")
    batch_size: int = option(128, "users (sequences) per step")
    lr: float = option(1e-3, "AdamW learning rate")
    weight_decay: float = option(0.0, "AdamW decoupled weight decay")
    num_negatives: int = option(128, "uniformly sampled negatives per target for the sampled softmax")
    temperature: float = option(0.05, "softmax temperature on cosine similarities")
    eval_every: int = option(
        1, "validate every this many epochs (multi_epoch) or training windows (streaming); the last epoch or window, "
        "and the pass where a budget runs out, are always validated, so the best checkpoint and the test are defined"
    )
    patience: int = option(10, "stop after this many validations without improvement (0: never stop early)")
    max_steps: int | None = option(None, "stop after this many optimizer steps (null: no step budget)")
    max_flops: float | None = option(
        None, "stop once cumulative training FLOPs (3 x analytic forward) reach this (null: no compute budget)"
    )
    max_wall_seconds: float | None = option(
        None, "stop once this many seconds have passed since the run started, data loading included (null: no time budget)"
    )
    device: Literal["auto", "cpu", "cuda"] = option("auto", "auto picks cuda when available")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto", "training arithmetic (scaling/precision.py): fp32; bf16 or fp16 autocast of forward and loss over fp32 "
        "master weights (fp16 with dynamic loss scaling); auto: bf16 on a CUDA device that supports it, else fp32"
    )
    compile: bool = option(
        False, "torch.compile each model's forward (the dense layers; jagged attention and data-dependent shapes run "
        "eagerly between compiled graphs); off by default: compiling costs seconds to minutes per run and pays only "
        "on long GPU runs"
    )
    regime: Literal["multi_epoch", "streaming"] = option(
        "multi_epoch",
        "multi_epoch: leave-one-out split, shuffled epochs (Table 4); streaming: one pass over time windows, "
        "every evaluation on one held-out window (Tables 2 and 5)",
    )
    num_windows: int = option(
        10, "streaming: consecutive time windows of about equal event counts; training reads all but the last two, "
        "the second last is the held-out validation window of every evaluation, the last the test window"
    )
    stochastic_length: StochasticLengthConfig = option(StochasticLengthConfig, "Stochastic Length (Eq. 4) on training batches")

    def __post_init__(self) -> None:
        require(self.regime != "streaming" or self.epochs == 1, "epochs",
                f"must be 1 with train.regime 'streaming' (one pass over the stream); got {self.epochs}")
        require(self.num_windows >= 3, "num_windows", f"must be >= 3 (train, validate, test); got {self.num_windows}")
        for key in ("epochs", "batch_size", "num_negatives", "eval_every"):
            require(getattr(self, key) >= 1, key, f"must be >= 1; got {getattr(self, key)}")
        require(0 < self.lr < math.inf, "lr", f"must be > 0 and finite; got {self.lr}")
        require(0 <= self.weight_decay < math.inf, "weight_decay", f"must be >= 0 and finite; got {self.weight_decay}")
        require(0 < self.temperature < math.inf, "temperature", f"must be > 0 and finite; got {self.temperature}")
        require(self.patience >= 0, "patience", f"must be >= 0; got {self.patience}")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", f"must be >= 1 or null; got {self.max_steps}")
        for key in ("max_flops", "max_wall_seconds"):
            value = getattr(self, key)
            require(value is None or value > 0, key, f"must be > 0 or null; got {value}")


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = option(256, "users scored against the full catalogue at once")
    exclude_history: bool = option(True, "never rank items already in the user's history")
    selection_metric: str | None = option(
        None, "validation metric for early stopping and the best checkpoint (null: ndcg@10 for retrieval, ne for ranking)"
    )
    progressive: bool = option(
        False, "streaming: also score each evaluation on the next, not yet trained window (progressive validation; "
        "recorded as progressive/<metric>, never fitted: each point is on other data)"
    )
    max_users: int | None = option(
        None, "validation set (the held-out window, or leave-one-out's validation targets): score only the events of "
        "this many of its users, a sample drawn from the data alone (the same in every trial on the same data, whatever "
        "the seed); its events, hence eval_set, differ from the full set's, so sizes never share a frontier (null: all "
        "users). The test set is always scored whole"
    )

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "batch_size", f"must be >= 1; got {self.batch_size}")
        require(self.max_users is None or self.max_users >= 1, "max_users", f"must be >= 1 or null; got {self.max_users}")


@dataclass(frozen=True)
class RunConfig:
    seed: int = option(42, "seeds initialisation, shuffling, negative sampling and dropout (data.seed seeds the data)")
    name: str = option("run", "a label for the run, used in output folder names")
    data: DataConfig = option(DataConfig, "what to train on")
    model: ModelConfig = option(ModelConfig, "which network and its size")
    train: TrainConfig = option(TrainConfig, "optimisation")
    eval: EvalConfig = option(EvalConfig, "evaluation")

    def __post_init__(self) -> None:
        require(0 <= self.seed <= MAX_SEED, "seed", f"must be an integer in [0, 2^62]; got {self.seed}")
        require(bool(SAFE_NAME.match(self.name)), "name", "must be letters, digits, '.', '_' or '-' (it names the "
                f"output folder runs/NAME-TIME); got {self.name!r}")
        check_model_fits_run(self)
        if self.eval.selection_metric is not None:
            problem = selection_metric_problem(self.eval.selection_metric, self.data.task)
            require(problem is None, "eval.selection_metric", str(problem))


def check_model_fits_run(config: RunConfig) -> None:
    """The model's cross-section checks, in one place: what the catalogue says it can read and train on.

    Run once per run config (by :class:`RunConfig` itself), so ``scaling train``, ``scaling config``
    and every sweep trial (``scaling sweep --dry-run`` included) refuse the same configs before anything runs.
    """
    name = config.model.name
    check_task(name, config.data.task)
    require(
        config.train.stochastic_length.alpha is None or model_spec(name).input == "sequence",
        "train.stochastic_length.alpha",
        f"model '{name}' reads impressions, not token sequences, so Stochastic Length cannot apply; set it to null",
    )


def load_run_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML run config (or start from defaults), apply ``key=value`` overrides, validate."""
    data: dict[str, Any] = load_yaml(path) if path is not None else {}
    return run_config_from_dict(apply_overrides(data, list(overrides)))


def run_config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Validate a plain mapping into a :class:`RunConfig` (paths made absolute)."""
    config = from_dict(RunConfig, data)
    if config.data.path is not None and not _is_uri(config.data.path):
        absolute = str(Path(os.path.expanduser(config.data.path)).resolve())
        config = _replace_path(config, "data", "path", absolute)
    return config


def _is_uri(text: str) -> bool:
    return "://" in text


def _replace_path(config: RunConfig, section: str, key: str, value: str) -> RunConfig:
    from dataclasses import replace

    return replace(config, **{section: replace(getattr(config, section), **{key: value})})
