"""``scaling bench encoder --models``: HSTU vs SASRec training steps on the CPU, per attention backend.

Where the layer comparison (:mod:`scaling.benchmarks.encoder`) times paper-sized layers on a GPU,
this times what a CPU run of the harness trains: the backbone (embeddings, input layer, encoder)
of ``hstu`` and ``sasrec`` built by the model registry at a shipped run setting, one forward and
backward on a fixed upstream gradient, in training mode (dropout on when the setting has it), with
``torch.set_num_threads(threads)``. Each model runs with the padded PyTorch reference attention
and with the CPU backend (kernels/cpu_attention.py), so one table shows both what the backend
buys and the HSTU / SASRec ratio. The loss and optimiser are left out: they are the same for
both models (the sampled softmax over the same items) and would only dilute the comparison.

Settings (:data:`MODEL_SETTINGS`, checked against the YAML files by the tests):

* ``table4``: sweeps/runs/table4-ml-100k-{hstu,sasrec}.yaml, 2 layers, 1 head, d = 50,
  dropout 0.2, n = 200, batch 128 sequences;
* ``quickstart``: the largest HSTU of sweeps/quickstart.yaml, 6 layers, 4 heads, d = 128, dropout 0,
  n = 128, batch 16 (SASRec at the same sizes for comparison).

Batches of ``batch_size`` sequences: ``full`` (every sequence n tokens) and ``jagged``
(:func:`model_batch_lengths`: lognormal lengths with median n / 3, clipped to n, close to
ml-100k's training chunks at n = 200: median 64, 15% at the cap). Timing is round-robin: each
repeat times every implementation once, so background load on a shared machine hits all of them
alike. A row's ``ms`` is the median wall-clock time of a step and ``cpu_ms`` the median CPU time
of the process (all threads) during it, which other jobs on the machine disturb far less.
``vs_sasrec_reference`` and ``vs_sasrec_cpu`` divide a row's ``cpu_ms`` by SASRec's on the same
batch with that backend. With ``bound`` one more row, model ``hstu-bound`` on the CPU backend, times
HSTU with the elementwise work of Eq. 1 and Eq. 3 removed (both LayerNorms, the SiLU of the U, V,
Q, K streams, the U gate and the dropout; the f1 and f2 matmuls and the attention with rab^{p,t}
stay): not a model, a lower bound on what fusing that work into the matmuls could reach.
``gflop`` is the step's model FLOPs (3 x the backbone's forward FLOPs, :mod:`model.flops`
conventions: jagged causal pairs, elementwise work 0), ``gflop_s`` those per CPU
second, and ``flops_vs_sasrec`` HSTU's FLOPs over SASRec's: a time ratio below it means HSTU runs
more FLOPs per second than SASRec, above it fewer. (At the Table 4 setting SASRec's feed-forward is
d wide, so HSTU does 0.9x its FLOPs, not the fraction a 4d-wide feed-forward would give.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

JAGGED_MEDIAN_FRACTION = 1 / 3
JAGGED_SIGMA = 1.0
WARMUP_STEPS = 2
IMPLEMENTATIONS = (("hstu", "reference"), ("hstu", "cpu"), ("sasrec", "reference"), ("sasrec", "cpu"))
BOUND_IMPLEMENTATION = ("hstu-bound", "cpu")  # HSTU without its Eq. 1 / Eq. 3 elementwise work (module docstring)
BATCHES = ("full", "jagged")
RESULT_COLUMNS = ("setting", "batch", "model", "backend", "sequences", "tokens", "gflop", "ms", "cpu_ms", "gflop_s",
                  "vs_sasrec_reference", "vs_sasrec_cpu", "flops_vs_sasrec")
TARGET_RATIO = 0.8  # HSTU's step with the CPU backend <= 0.8 x SASRec's at the Table 4 setting (issue 13)
TARGET_COLUMNS = ("target", "required", "measured", "status")


@dataclass(frozen=True)
class ModelSetting:
    """The model section and batch of a shipped run setting, the sizes a step is timed at."""

    source: str  # the config the numbers come from
    num_layers: int
    num_heads: int
    embedding_dim: int
    dropout: float
    max_seq_len: int  # n: data.max_seq_len, the longest sequence
    batch_size: int  # sequences per step: train.batch_size
    num_items: int  # catalogue size (embedding table rows)


MODEL_SETTINGS: dict[str, ModelSetting] = {
    "table4": ModelSetting("sweeps/runs/table4-ml-100k-hstu.yaml and -sasrec.yaml", num_layers=2, num_heads=1,
                           embedding_dim=50, dropout=0.2, max_seq_len=200, batch_size=128, num_items=1682),
    "quickstart": ModelSetting("sweeps/quickstart.yaml, group hstu, its largest size", num_layers=6, num_heads=4,
                               embedding_dim=128, dropout=0.0, max_seq_len=128, batch_size=16, num_items=2000),
}


@dataclass(frozen=True)
class ModelBenchConfig:
    """What ``scaling bench encoder --models`` runs."""

    settings: tuple[str, ...]  # keys of MODEL_SETTINGS
    threads: int  # torch.set_num_threads during the run
    repeats: int  # timed steps per implementation (the median is reported)
    seed: int  # seeds the lengths, weights and inputs
    bound: bool = False  # also time BOUND_IMPLEMENTATION

    @property
    def implementations(self) -> tuple[tuple[str, str], ...]:
        return IMPLEMENTATIONS + ((BOUND_IMPLEMENTATION,) if self.bound else ())


# Measures a dict of named steps: (wall ms, CPU ms) per name, or None per name when it does not time (dry runs).
Timing = "tuple[float, float] | None"
StepTimer = Callable[[dict[str, Callable[[], None]]], dict[str, Timing]]


def model_batch_lengths(setting: ModelSetting, batch: str, seed: int) -> list[int]:
    """``batch_size`` lengths: all n (``full``) or lognormal with median n / 3, clipped to [1, n] (``jagged``)."""
    n = setting.max_seq_len
    if batch == "full":
        return [n] * setting.batch_size
    if batch == "jagged":
        draws = np.random.default_rng((seed, n)).lognormal(np.log(n * JAGGED_MEDIAN_FRACTION), JAGGED_SIGMA,
                                                          setting.batch_size)
        return np.clip(np.rint(draws), 1, n).astype(int).tolist()
    raise ValueError(f"batch must be one of {', '.join(BATCHES)}; got {batch!r}")


def round_robin_timer(repeats: int) -> StepTimer:
    """Warm every step up, then time each once per round for ``repeats`` rounds; median (wall, CPU) ms per step."""

    def measure(steps: dict[str, Callable[[], None]]) -> dict[str, tuple[float, float] | None]:
        for step in steps.values():
            for _ in range(WARMUP_STEPS):
                step()
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
        for _ in range(repeats):
            for name, step in steps.items():
                wall, cpu = time.perf_counter(), time.process_time()
                step()
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
        return {name: (1e3 * float(np.median([w for w, _ in values])), 1e3 * float(np.median([c for _, c in values])))
                for name, values in times.items()}

    return measure


def untimed(steps: dict[str, Callable[[], None]]) -> dict[str, tuple[float, float] | None]:
    """The dry run's timer: every step runs once, nothing is timed."""
    for step in steps.values():
        step()
    return {name: None for name in steps}


def run_model_benchmark(config: ModelBenchConfig, timer: StepTimer,
                        progress: Callable[[dict[str, object]], None] | None = None) -> list[dict[str, object]]:
    """One row per (setting, batch, model, backend), ratios to SASRec filled in."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        rows = []
        for name in config.settings:
            setting = MODEL_SETTINGS[name]
            for batch in BATCHES:
                lengths = model_batch_lengths(setting, batch, config.seed)
                built = {f"{model}-{backend}": training_step(setting, model, backend, lengths, config.seed)
                         for model, backend in config.implementations}
                times = timer({key: step for key, (step, _) in built.items()})
                for model, backend in config.implementations:
                    timing = times[f"{model}-{backend}"]
                    flops = built[f"{model}-{backend}"][1]
                    row = {"setting": name, "batch": batch, "model": model, "backend": backend,
                           "sequences": len(lengths), "tokens": sum(lengths), "gflop": flops / 1e9,
                           "ms": None if timing is None else timing[0], "cpu_ms": None if timing is None else timing[1],
                           "gflop_s": None if not timing or timing[1] <= 0 else flops / 1e9 / (timing[1] / 1e3)}
                    rows.append(row)
                    if progress is not None:
                        progress(row)
        return add_ratios(rows)
    finally:
        torch.set_num_threads(threads)


def training_step(setting: ModelSetting, model_name: str, backend: str, lengths: Sequence[int],
                  seed: int) -> tuple[Callable[[], None], float]:
    """(forward and backward of the model's backbone on one seeded batch, that step's model FLOPs).

    Weights are seeded alike for every backend.
    """
    import torch

    from kernels.flops import allowed_pairs
    from model.flops import TRAINING_FLOPS_PER_FORWARD_FLOP, SequenceWorkload

    from model.config import ModelConfig
    from model.inputs import Vocabulary
    from model.registry import build_model

    torch.manual_seed(seed)
    bound = model_name == BOUND_IMPLEMENTATION[0]
    config = ModelConfig(name="hstu" if bound else model_name, num_layers=setting.num_layers,
                         num_heads=setting.num_heads, embedding_dim=setting.embedding_dim, dropout=setting.dropout,
                         attention_backend=backend)
    backbone = build_model(config, "retrieval", Vocabulary(setting.num_items, setting.max_seq_len)).backbone.train()
    if bound:
        for layer in backbone.encoder.layers:
            without_elementwise(layer)
    sequences = _sequences(lengths, setting.num_items, torch.Generator().manual_seed(seed))
    grad_out = torch.randn(sum(lengths), setting.embedding_dim, generator=torch.Generator().manual_seed(seed + 1))

    def step() -> None:
        backbone.zero_grad(set_to_none=True)
        backbone(sequences).backward(grad_out)

    workload = SequenceWorkload(num_sequences=len(lengths), num_tokens=sum(lengths),
                                attention_pairs=allowed_pairs(sequences.offsets, None, 0), num_scored=0,
                                items_per_scored=0)
    return step, TRAINING_FLOPS_PER_FORWARD_FLOP * backbone.forward_flops(workload)


def without_elementwise(layer) -> None:
    """Make an HSTU layer run Eq. 1 as Split(f1(X)) and Eq. 3 as f2(A V): its norms, SiLU, gate and dropout gone.

    For the bound row only (module docstring); the layer's matmuls, attention and rab^{p,t} are untouched.
    """
    import types

    import torch

    def split_streams(self, x):
        hv, hqk = self.num_heads * self.v_dim, self.num_heads * self.qk_dim
        u, v, q, k = torch.split(self.f1(x), [hv, hv, hqk, hqk], dim=-1)
        tokens = x.shape[0]
        return (u, v.reshape(tokens, self.num_heads, self.v_dim), q.reshape(tokens, self.num_heads, self.qk_dim),
                k.reshape(tokens, self.num_heads, self.qk_dim))

    def transform(self, attended, u):
        return self.f2(attended)

    layer.split_streams = types.MethodType(split_streams, layer)
    layer.transform = types.MethodType(transform, layer)


def _sequences(lengths: Sequence[int], num_items: int, generator):
    """Random items at increasing epoch-second timestamps, heavy-tailed gaps (rab^t spans many buckets)."""
    import torch

    from kernels.jagged import offsets_from_lengths
    from model.inputs import JaggedSequences

    tokens = sum(lengths)
    gaps = torch.exp(torch.randn(tokens, generator=generator) * 3.0 + 6.0).to(torch.int64)
    timestamps = 1_700_000_000 + torch.cumsum(gaps, 0)
    return JaggedSequences(item_ids=torch.randint(1, num_items + 1, (tokens,), generator=generator),
                           timestamps=timestamps, query_timestamps=timestamps + 60,
                           offsets=offsets_from_lengths(torch.tensor(lengths, dtype=torch.int64)))


def add_ratios(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Copies of ``rows`` with each CPU time divided by SASRec's on the same batch, per SASRec backend,
    and each step's FLOPs by SASRec's on that batch (the same for both backends)."""
    sasrec = {(row["setting"], row["batch"], row["backend"]): row["cpu_ms"] for row in rows if row["model"] == "sasrec"}
    sasrec_flops = {(row["setting"], row["batch"]): row.get("gflop") for row in rows if row["model"] == "sasrec"}
    out = []
    for row in rows:
        row = dict(row)
        flops, reference_flops = row.get("gflop"), sasrec_flops.get((row["setting"], row["batch"]))
        row["flops_vs_sasrec"] = flops / reference_flops if flops and reference_flops else None
        for backend in ("reference", "cpu"):
            sasrec_ms = sasrec.get((row["setting"], row["batch"], backend))
            ok = isinstance(row["cpu_ms"], float) and isinstance(sasrec_ms, float) and sasrec_ms > 0
            row[f"vs_sasrec_{backend}"] = row["cpu_ms"] / sasrec_ms if ok else None
        out.append(row)
    return out


def target_rows(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """HSTU (CPU backend) / SASRec at the Table 4 setting, against each SASRec backend, per batch."""
    targets = []
    for row in rows:
        if row["setting"] != "table4" or row["model"] != "hstu" or row["backend"] != "cpu":
            continue
        for backend in ("reference", "cpu"):
            measured = row[f"vs_sasrec_{backend}"]
            status = "not measured" if measured is None else ("met" if measured <= TARGET_RATIO else "MISSED")
            targets.append({"target": f"table4 {row['batch']}: hstu-cpu / sasrec-{backend}",
                            "required": f"<= {TARGET_RATIO:g}", "measured": measured, "status": status})
    return targets
