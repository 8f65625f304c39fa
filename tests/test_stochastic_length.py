"""Stochastic Length (Eq. 4): lengths, probabilities, selection methods, event pairing, targets, sparsity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.inputs import JaggedSequences
from scaling.config import load_run_config
from core.configtools import ConfigError
from scaling.data.batching import SequenceBatch, SequenceBatcher
from scaling.data.actions import with_rating_actions
from scaling.data.sequences import ContextEvents, SequenceDataset
from scaling.data.stochastic_length import (
    LengthTally,
    event_units,
    expected_sparsity,
    keep_whole_probability,
    kept_tokens,
    recency_weights,
    sparsity_of,
    stochastic_length,
    subsequence_length,
)
from scaling.data.tokens import build_token_stream


def single_token_batch(lengths: list[int], supervise_all: bool = True, stamps: np.ndarray | None = None) -> SequenceBatch:
    """Retrieval-like batch: one token per event; item id = position + 1 so kept positions can be read back."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.concatenate([np.arange(1, n + 1) for n in lengths]).astype(np.int64)
    times = np.concatenate([np.arange(n) * 10 for n in lengths]).astype(np.int64) if stamps is None else stamps
    rows = np.arange(offsets[-1]) if supervise_all else offsets[1:] - 1
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))  # noqa: E731
    return SequenceBatch(
        sequences=JaggedSequences(t(items), t(times), t(times + 5), t(offsets),
                                  action_ids=torch.zeros(len(items), dtype=torch.int64),
                                  context_ids=torch.zeros(len(items), dtype=torch.int64)),
        supervised_rows=t(rows),
        target_events=t(rows + 1000),
        target_item_ids=t(items[rows]),
        labels=None,
    )


def lengths_of(batch: SequenceBatch) -> np.ndarray:
    return np.diff(batch.sequences.offsets.numpy())


def test_subsequence_length_is_floor_of_n_to_the_alpha_over_two():
    assert subsequence_length(1024, 1.6) == 256  # 1024^0.8 = 2^8 exactly: no rounding down to 255
    assert subsequence_length(4096, 1.6) == 776  # Section 4.2: "a sequence of length 4096 ... length 776"
    assert subsequence_length(8192, 1.8) == math.floor(8192**0.9)
    assert subsequence_length(300, 2.0) == 300
    with pytest.raises(ValueError):
        subsequence_length(1024, 1.0)


def test_short_sequences_are_untouched_and_long_ones_cut_to_exactly_l():
    n_max, alpha = 256, 1.6  # L = 84
    budget = subsequence_length(n_max, alpha)
    batch = single_token_batch([budget, budget - 10, 3] + [256] * 200)
    out = stochastic_length(batch, n_max, alpha, "random", np.random.default_rng(0))
    lengths = lengths_of(out)
    assert lengths[:3].tolist() == [budget, budget - 10, 3]
    assert torch.equal(out.sequences.item_ids[: 2 * budget - 7], batch.sequences.item_ids[: 2 * budget - 7])
    assert set(lengths[3:].tolist()) == {budget, 256}


@pytest.mark.parametrize("selection", ["greedy", "random", "weighted"])
def test_fraction_kept_whole_matches_eq4(selection):
    n_max, alpha, n, count = 256, 1.6, 200, 4000
    batch = single_token_batch([n] * count, supervise_all=False)
    out = stochastic_length(batch, n_max, alpha, selection, np.random.default_rng(1))
    whole = float(np.mean(lengths_of(out) == n))
    p = n_max**alpha / n**2  # 0.177
    assert keep_whole_probability(np.array([n]), n_max, alpha)[0] == pytest.approx(p)
    assert abs(whole - p) < 4.5 * math.sqrt(p * (1 - p) / count)


def test_greedy_keeps_the_most_recent_tokens():
    n_max, alpha = 256, 1.6
    budget = subsequence_length(n_max, alpha)
    batch = single_token_batch([256] * 50)
    out = stochastic_length(batch, n_max, alpha, "greedy", np.random.default_rng(2))
    offsets = out.sequences.offsets.numpy()
    for b in np.flatnonzero(lengths_of(out) == budget):
        kept = out.sequences.item_ids[offsets[b]:offsets[b + 1]].tolist()
        assert kept == list(range(256 - budget + 1, 257))


def inclusion_rate(selection: str, stamps: np.ndarray, draws: int = 600) -> np.ndarray:
    """[n] how often each position of one sequence is kept when it is cut."""
    n = len(stamps)
    batch = single_token_batch([n] * draws, supervise_all=False, stamps=np.tile(stamps, draws))
    keep = kept_tokens(batch, n, 1.5, selection, np.random.default_rng(3)).reshape(draws, n)
    cut = keep.sum(1) < n
    return keep[cut].mean(0)


def test_weighted_prefers_recent_events_and_random_does_not():
    # One ancient event dominates sum_j f_j, so its weight 1 - f_0 / sum f is near 0: weighted
    # selection almost never keeps it; random keeps it at the base rate L / n.
    stamps = np.concatenate([[0], 10**7 + np.arange(63) * 10]).astype(np.int64)
    weighted, uniform = inclusion_rate("weighted", stamps), inclusion_rate("random", stamps)
    base = subsequence_length(64, 1.5) / 64  # the last token is supervised and always kept
    assert weighted[0] < 0.05 < base - 0.1 < uniform[0]
    assert abs(uniform[1:-1].mean() - uniform[0]) < 0.1



def test_recency_weights_are_one_minus_elapsed_share():
    weights = recency_weights(np.array([0, 60, 90, 100]))  # f = 100, 40, 10, 0; sum 150
    np.testing.assert_allclose(weights, [1 - 100 / 150, 1 - 40 / 150, 1 - 10 / 150, 1.0])
    # evenly spaced times: every weight within 2/n of 1, i.e. a mild preference for recent events
    even = recency_weights(np.arange(64) * 10)
    assert np.all(np.diff(even) > 0) and even.min() == pytest.approx(1 - 2 / 64)
    assert recency_weights(np.array([5, 5, 5])).tolist() == [1.0, 1.0, 1.0]


def ranking_batch() -> tuple[SequenceBatch, SequenceDataset]:
    """Two users' interleaved ranking chunks (Phi, a pairs and contextual tokens), every item supervised."""
    rng = np.random.default_rng(0)
    users, per_user = 2, 60
    stamps = np.concatenate([np.sort(rng.integers(0, 10**6, per_user)) for _ in range(users)])
    items = rng.integers(1, 40, users * per_user)
    ratings = rng.integers(1, 6, users * per_user).astype(np.float32)
    context_times = np.concatenate([np.sort(rng.integers(0, 10**6, 6)) for _ in range(users)])
    contexts = ContextEvents(rng.integers(1, 4, 12), context_times, np.array([0, 6, 12]), num_tokens=3)
    dataset = with_rating_actions(SequenceDataset(items, stamps, np.array([0, 60, 120]), num_items=40,
                                                  ratings=ratings, contexts=contexts))
    stream = build_token_stream(dataset, "ranking")
    batcher = SequenceBatcher(dataset, stream, max_seq_len=200)
    chunks = batcher.chunks(np.flatnonzero(batcher.supervisable()))
    return batcher.batch(chunks, np.arange(len(chunks.start))), dataset


def test_events_stay_whole_and_kept_targets_stay_supervised():
    batch, dataset = ranking_batch()
    seq = batch.sequences
    # Tag every token with its row so the subsample can be traced back.
    tagged = SequenceBatch(
        sequences=JaggedSequences(seq.item_ids, seq.timestamps, torch.arange(seq.num_tokens), seq.offsets,
                                  action_ids=seq.action_ids, context_ids=seq.context_ids),
        supervised_rows=batch.supervised_rows, target_events=batch.target_events,
        target_item_ids=batch.target_item_ids, labels=batch.labels,
    )
    n_max, alpha = 200, 1.7  # L = 90 tokens
    budget = subsequence_length(n_max, alpha)
    units = event_units(seq.item_ids.numpy(), seq.action_ids.numpy(), seq.context_ids.numpy(), seq.offsets.numpy())
    for selection in ("greedy", "random", "weighted"):
        for draw in range(5):
            out = stochastic_length(tagged, n_max, alpha, selection, np.random.default_rng(draw))
            source = out.sequences.query_timestamps.numpy()  # original row of each kept token
            lengths = lengths_of(out)
            assert np.all(((lengths <= budget) & (lengths >= budget - 3)) | (lengths == lengths_of(batch)))
            # whole units only: every unit is kept entirely or not at all
            kept_per_unit = np.bincount(units[source], minlength=units.max() + 1)
            assert np.all((kept_per_unit == 0) | (kept_per_unit == np.bincount(units)))
            # every kept action token directly follows its own item token
            actions = np.flatnonzero((out.sequences.action_ids.numpy() > 0) & (out.sequences.item_ids.numpy() == 0))
            assert np.all(source[actions - 1] == source[actions] - 1)
            assert np.all(out.sequences.item_ids.numpy()[actions - 1] > 0)
            # kept targets point at their original token with their original event and labels
            original_rows = source[out.supervised_rows.numpy()]
            position = {int(r): i for i, r in enumerate(batch.supervised_rows.tolist())}
            index = [position[int(r)] for r in original_rows]
            assert torch.equal(out.target_events, batch.target_events[index])
            assert torch.equal(out.labels, batch.labels[index])
            assert np.all(out.sequences.item_ids.numpy()[out.supervised_rows.numpy()] > 0)
            # timestamps keep their values
            assert torch.equal(out.sequences.timestamps, seq.timestamps[torch.from_numpy(source)])


def test_contexts_travel_with_the_next_event():
    items = np.array([0, 5, 0, 0, 0, 6, 0, 7])
    actions = np.array([0, 0, 2, 0, 0, 0, 3, 0])
    contexts = np.array([1, 0, 0, 2, 3, 0, 0, 0])
    # ctx1 Phi5 a | ctx2 ctx3 Phi6 a | Phi7 (the supervised last item, its action not yet seen)
    assert event_units(items, actions, contexts, np.array([0, 8])).tolist() == [0, 0, 0, 1, 1, 1, 1, 2]


def test_supervised_events_are_offered_first():
    # A streaming-style chunk: a long history with only its last two tokens supervised. Random
    # selection still keeps both targets and shortens the history around them.
    batch = single_token_batch([256] * 30, supervise_all=False)
    rows = torch.stack([batch.supervised_rows - 1, batch.supervised_rows], 1).flatten()
    batch = SequenceBatch(batch.sequences, rows, rows + 1000, batch.sequences.item_ids[rows], None)
    out = stochastic_length(batch, 256, 1.6, "random", np.random.default_rng(4))
    assert out.num_targets == batch.num_targets


def test_same_seed_same_subsequence():
    batch = single_token_batch([256] * 20)
    first = stochastic_length(batch, 256, 1.6, "weighted", np.random.default_rng(7))
    second = stochastic_length(batch, 256, 1.6, "weighted", np.random.default_rng(7))
    assert torch.equal(first.sequences.item_ids, second.sequences.item_ids)
    assert torch.equal(first.supervised_rows, second.supervised_rows)


def test_expected_sparsity_matches_monte_carlo():
    rng = np.random.default_rng(5)
    n_max, alpha = 512, 1.7
    support = np.arange(1, n_max + 1)
    pmf = np.exp(-support / 180.0)
    pmf /= pmf.sum()  # a skewed length distribution, as user histories are
    lengths = rng.choice(support, size=20_000, p=pmf)
    out = stochastic_length(single_token_batch(lengths.tolist(), supervise_all=False), n_max, alpha, "greedy", rng)
    simulated = sparsity_of(lengths_of(out), n_max)
    expected = expected_sparsity(support, pmf, n_max, alpha)
    assert simulated.sparsity == pytest.approx(expected.sparsity, abs=0.01)
    assert simulated.s2 == pytest.approx(expected.s2, abs=0.01)
    off = expected_sparsity(support, pmf, n_max, None)
    assert off.sparsity < expected.sparsity and off.s2 < expected.s2  # SL only ever adds sparsity
    assert expected_sparsity(support, pmf, n_max, 2.0) == off  # alpha = 2 never cuts


def test_sparsity_definitions():
    tally = LengthTally()
    tally.add(torch.tensor([0, 50, 150]))  # lengths 50, 100
    got = tally.sparsity(100)
    assert got.sparsity == pytest.approx(1 - 75 / 100)
    assert got.s2 == pytest.approx(1 - (50**2 + 100**2) / 2 / 100**2)
    assert got == sparsity_of(np.array([50, 100]), 100)


def test_config_validates_alpha_and_selection():
    config = load_run_config(None, ["train.stochastic_length.alpha=1.6", "train.stochastic_length.selection=weighted"])
    assert config.train.stochastic_length.alpha == 1.6
    with pytest.raises(ConfigError, match="train.stochastic_length.alpha"):
        load_run_config(None, ["train.stochastic_length.alpha=2.5"])
    with pytest.raises(ConfigError, match="train.stochastic_length.selection"):
        load_run_config(None, ["train.stochastic_length.selection=oldest"])


LONG_RECORDS = [
    "data.dataset=synthetic-dp",
    "data.synthetic_dp.num_items=200",
    "data.synthetic_dp.num_categories=10",
    "data.synthetic_dp.num_records=60",
    "data.synthetic_dp.record_length=64",
    "data.max_seq_len=64",
    "model.embedding_dim=16",
    "model.num_heads=2",
    "train.batch_size=16",
    "train.num_negatives=16",
    "train.epochs=1",
    "eval.batch_size=64",
]



def test_training_batches_are_shortened_and_evaluation_batches_are_not(one_thread):
    from scaling.train import build_run, evaluate, train_pass

    config = load_run_config(None, [*LONG_RECORDS, "train.stochastic_length.alpha=1.5"])
    budget = subsequence_length(64, 1.5)  # 22 tokens
    lengths: dict[str, list[int]] = {"train": [], "eval": []}
    runs = []
    for _ in range(2):
        run = build_run(config)
        loss, evaluate_all = run.objective.loss, run.objective.evaluate

        def recording_loss(model, batch, generator, _loss=loss):
            lengths["train"].extend(lengths_of(batch).tolist())
            return _loss(model, batch, generator)

        def recording_evaluate(model, batches, device, _evaluate=evaluate_all):
            batches = list(batches)
            lengths["eval"].extend(n for batch in batches for n in lengths_of(batch).tolist())
            return _evaluate(model, batches, device)

        run.objective.loss, run.objective.evaluate = recording_loss, recording_evaluate
        train_pass(run, run.batcher.chunks(run.split.train), "shuffle", None)
        evaluate(run, run.batcher.chunks(run.split.valid))
        runs.append(run)
    trained, evaluated = np.array(lengths["train"]), np.array(lengths["eval"])
    half = len(trained) // 2
    assert np.array_equal(trained[:half], trained[half:])  # the same seed gives the same subsequences
    assert np.mean(trained[:half] == budget) > 0.5  # records are long: most training chunks are cut to L
    assert np.all(evaluated[:len(evaluated) // 2] > budget)  # evaluation sees full-length sequences
    tally = runs[0].trained_lengths
    assert tally.num_sequences == half and tally.sum_lengths == trained[:half].sum()


def test_history_and_result_report_sparsity(one_thread):
    from scaling.train import train

    off = train(load_run_config(None, LONG_RECORDS), progress=False)
    on = train(load_run_config(None, [*LONG_RECORDS, "train.stochastic_length.alpha=1.5"]), progress=False)
    for result in (off, on):
        assert set(result["training_sparsity"]) == {"sparsity", "s2", "targets_trained_fraction"}
        assert {"sparsity", "s2"} <= set(result["history"][0])
    assert on["training_sparsity"]["sparsity"] > off["training_sparsity"]["sparsity"] + 0.3
    assert on["training_sparsity"]["s2"] > on["training_sparsity"]["sparsity"]
    # leave-one-out retrieval supervises every token, so a cut to L = 22 of ~60 tokens drops most targets
    assert 0.2 < on["training_sparsity"]["targets_trained_fraction"] < 0.8
    assert math.isnan(off["training_sparsity"]["targets_trained_fraction"])


def test_reproduction_sweep_runs_the_baseline_first_and_rejects_bad_alphas(capsys):
    from pathlib import Path

    from scaling.cli import main
    from scaling.sweep.expand import expand_sweep
    from scaling.sweep.spec import load_sweep

    sweep_file = Path(__file__).resolve().parents[1] / "sweeps" / "stochastic_length.yaml"
    trials = expand_sweep(load_sweep(sweep_file), sweep_file)
    assert [t.config.train.stochastic_length.alpha for t in trials] == [None, 1.8, 1.6]
    assert {t.config.data.max_seq_len for t in trials} == {256}
    bad = "grid={train.stochastic_length.alpha: [null, 1.0]}"
    assert main(["reproduce", "stochastic-length", "--set", bad, "--dry-run"]) == 2  # one-line error, no training
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "train.stochastic_length.alpha" in error


def test_the_view_cuts_to_the_length_training_cuts_to():
    from analysis.views.stochastic_length import subsequence_length as view_length

    for max_seq_len in (64, 200, 256, 1024, 4096):
        for alpha in (1.1, 1.5, 1.6, 1.8, 1.9, 2.0):
            assert view_length(max_seq_len, alpha) == subsequence_length(max_seq_len, alpha)
