"""Inference throughput of GR ranking: candidates scored per second by the three M-FALCON paths.

Builds a randomly initialised HSTU ranking model of a stated size (weights do not change the
work done, so quality is irrelevant here), one user request with a history of n tokens and m
candidates, and times naive per-candidate scoring, batched-mask scoring and M-FALCON with the
KV cache (``model/mfalcon.py``). Naive scoring costs the same for every candidate, so for large
m it is timed on a sample and extrapolated linearly; such rows say so. Each configuration is
also checked once: the three paths must give the same logits.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from model.config import HSTUConfig, ModelConfig
from model.inputs import JaggedSequences, Vocabulary
from model.mfalcon import RankingRequest, score_batched, score_cached, score_naive, scoring_flops
from model.registry import build_model

# name -> (embedding_dim d, layers, heads); per-head widths are d / heads
MODEL_SIZES: dict[str, tuple[int, int, int]] = {
    "small": (128, 2, 2),
    "medium": (256, 4, 4),
    "large": (512, 8, 8),
}
NUM_ITEMS = 100_000
NUM_ACTION_TOKENS = 16
TASKS = ("click", "like")


@dataclass(frozen=True)
class BenchSetup:
    """What one benchmark measures: model size, history length and the attention backend."""

    model_size: str
    history_len: int  # n, tokens (Phi_0, a_0, ... interleaved)
    attention_backend: str  # of the uncached paths' jagged_attention
    rab: str = "pos_time"

    def model_config(self) -> ModelConfig:
        d, layers, heads = MODEL_SIZES[self.model_size]
        return ModelConfig(name="hstu", num_layers=layers, num_heads=heads, embedding_dim=d, dropout=0.0,
                           attention_backend=self.attention_backend, hstu=HSTUConfig(rab=self.rab))

    def describe(self) -> str:
        d, layers, heads = MODEL_SIZES[self.model_size]
        return (f"randomly initialised HSTU ranking model '{self.model_size}': d={d}, {layers} layers, {heads} heads "
                f"(d_qk=d_v={d // heads}), rab={self.rab}, {NUM_ITEMS:,} items, {len(TASKS)} tasks, float32; "
                f"history n={self.history_len} tokens, N=max_seq_len={self.history_len + 1}; "
                f"attention backend '{self.attention_backend}' (uncached paths), PyTorch reference (cached path). "
                "Weights are random: throughput does not depend on them.")


def build_bench_model(setup: BenchSetup, device: torch.device, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    vocabulary = Vocabulary(NUM_ITEMS, setup.history_len + 1, num_action_tokens=NUM_ACTION_TOKENS, task_names=TASKS)
    return build_model(setup.model_config(), "ranking", vocabulary).to(device).eval()


def synthetic_request(history_len: int, num_candidates: int, device: torch.device, seed: int = 0) -> RankingRequest:
    """A user with ``history_len`` interleaved Phi/a tokens and ``num_candidates`` candidates, all requested now."""
    generator = torch.Generator().manual_seed(seed)
    items = torch.randint(1, NUM_ITEMS + 1, (history_len,), generator=generator)
    actions = torch.randint(1, NUM_ACTION_TOKENS + 1, (history_len,), generator=generator)
    is_item = torch.arange(history_len) % 2 == 0
    items, actions = torch.where(is_item, items, 0), torch.where(is_item, 0, actions)
    event_times = torch.cumsum(torch.randint(1, 6 * 3600, (history_len // 2 + 1,), generator=generator), 0)
    stamps = event_times[torch.arange(history_len) // 2]  # Phi_i and a_i share their event's time
    now = int(event_times[-1]) + 60
    query = torch.cat([stamps[1:], torch.tensor([now])]) if history_len else stamps
    history = JaggedSequences(items, stamps, query, torch.tensor([0, history_len]), action_ids=actions).to(device)
    candidates = torch.randint(1, NUM_ITEMS + 1, (num_candidates,), generator=generator)
    return RankingRequest(history, candidates.to(device), torch.full((num_candidates,), now, device=device))


def first_candidates(request: RankingRequest, count: int) -> RankingRequest:
    return RankingRequest(request.history, request.candidate_item_ids[:count], request.candidate_timestamps[:count])


def timed(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> tuple[float, torch.Tensor]:
    """(median wall seconds over ``repeats`` calls, the last result); CUDA work is synchronised."""
    seconds, result = [], None
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        result = fn()
        _synchronize(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class NaiveTiming:
    seconds_per_candidate: float
    sampled: int  # candidates actually scored
    logits: torch.Tensor  # [sampled, K]


def time_naive(model: torch.nn.Module, request: RankingRequest, sample: int, device: torch.device) -> NaiveTiming:
    """Per-candidate seconds of naive scoring, from the first ``sample`` candidates (one warm-up pass first)."""
    score_naive(model, request, [0])
    count = min(sample, request.num_candidates)
    seconds, logits = timed(lambda: score_naive(model, request, range(count)), device, 1)
    return NaiveTiming(seconds / count, count, logits)


def bench_rows(
    model: torch.nn.Module, setup: BenchSetup, request: RankingRequest, naive: NaiveTiming,
    microbatch_size: int, device: torch.device, repeats: int,
) -> list[dict]:
    """Batched-mask and cached rows for one (m, b_m), checked against each other and the naive sample."""
    m = request.num_candidates
    batched_s, batched = timed(lambda: score_batched(model, request, microbatch_size), device, repeats)
    cached_s, cached = timed(lambda: score_cached(model, request, microbatch_size), device, repeats)
    sample = min(naive.sampled, m)
    agreement = max(
        (batched - cached).abs().max().item(),
        (batched[:sample] - naive.logits[:sample]).abs().max().item(),
        (cached[:sample] - naive.logits[:sample]).abs().max().item(),
    )
    naive_s = naive.seconds_per_candidate * m
    rows = []
    for path, seconds in (("batched-mask", batched_s), ("batched+kv-cache", cached_s)):
        flops = scoring_flops("batched" if path == "batched-mask" else "cached", model.backbone.encoder,
                              setup.history_len, m, microbatch_size)
        rows.append(_row(device, setup, m, microbatch_size, path, seconds, naive_s, flops, "measured", agreement))
    return rows


def device_rows(setup: BenchSetup, device: torch.device, candidates: list[int], microbatches: list[int],
                naive_sample: int, repeats: int, progress: Callable[[str], None] = lambda line: None) -> list[dict]:
    """Every row of one device: naive, then batched-mask and cached at each (m, b_m), m and b_m ascending."""
    model = build_bench_model(setup, device)
    request = synthetic_request(setup.history_len, max(candidates), device)
    progress(f"timing naive scoring on {min(naive_sample, max(candidates))} candidates")
    naive = time_naive(model, request, naive_sample, device)
    rows = []
    for m in sorted(candidates):
        subset = first_candidates(request, m)
        rows.append(naive_row(model, setup, naive, m, device))
        for microbatch_size in sorted(microbatches):
            rows.extend(bench_rows(model, setup, subset, naive, microbatch_size, device, repeats))
            progress(f"m={m} b_m={microbatch_size}: {rows[-1]['candidates_per_s']:,.0f} candidates/s cached")
    return rows


def naive_row(model: torch.nn.Module, setup: BenchSetup, naive: NaiveTiming, m: int, device: torch.device) -> dict:
    seconds = naive.seconds_per_candidate * m
    how = "measured" if naive.sampled >= m else f"extrapolated from {naive.sampled}"
    flops = scoring_flops("naive", model.backbone.encoder, setup.history_len, m, 1)
    return _row(device, setup, m, None, "naive", seconds, seconds, flops, how, None)


def _row(device: torch.device, setup: BenchSetup, m: int, microbatch_size: int | None, path: str, seconds: float,
         naive_seconds: float, flops: float, timing: str, max_abs_diff: float | None) -> dict:
    return {
        "device": device.type,
        "model_size": setup.model_size,
        "history_len": setup.history_len,
        "candidates": m,
        "microbatch": microbatch_size if microbatch_size is not None else "",
        "path": path,
        "seconds": seconds,
        "candidates_per_s": m / seconds,
        "speedup_vs_naive": naive_seconds / seconds,
        "encoder_gflop": flops / 1e9,
        "timing": timing,
        "max_abs_diff": "" if max_abs_diff is None else max_abs_diff,
    }


def markdown_table(rows: list[dict]) -> str:
    header = ["device", "m", "b_m", "path", "seconds", "candidates/s", "x naive", "encoder GFLOP", "timing", "max |diff|"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        diff = row["max_abs_diff"]
        cells = [row["device"], str(row["candidates"]), str(row["microbatch"]) or "-", row["path"], f"{row['seconds']:.3f}",
                 f"{row['candidates_per_s']:,.0f}", f"{row['speedup_vs_naive']:.1f}", f"{row['encoder_gflop']:,.1f}",
                 row["timing"], "" if diff == "" else f"{diff:.1e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
