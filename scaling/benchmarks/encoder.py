"""The encoder benchmark: one HSTU layer against one FlashAttention-2 Transformer layer (paper Section 4.2, Figure 5).

Configuration (the paper's): d = 512, h = 8, d_qk = d_v = 64, Transformer d_ff = 4d = 2048, bf16,
dropout off, HSTU without rab^{p,t} (the paper ablates it for this comparison; ``rab=True`` turns
it on). HSTU is :class:`model.hstu.HSTULayer` with the Triton attention kernels on CUDA (the
padded reference in CPU dry runs: like the kernels it keeps no O(n^2) tensor for the backward, so
activation bytes mean the same); the Transformer is
:class:`scaling.benchmarks.transformer_layer.TransformerLayer`. (``--models``, HSTU vs SASRec
training steps on the CPU, lives in :mod:`scaling.benchmarks.encoder_models`.)

Batches, per length n, all holding ``max(1, batch_tokens // n) * n`` tokens before SL:

* ``full``: every sequence has exactly n tokens;
* ``jagged``: skewed lognormal lengths clipped to n (:func:`scaling.benchmarks.attention.draw_jagged_lengths`);
* ``jagged-sl`` (training only): the ``jagged`` lengths after Stochastic Length (Eq. 4, alpha 1.6 by
  default, N = n), drawn with the repository's SL probabilities (:func:`stochastic_length_lengths`).
  SL is a training-time technique, so inference rows use the full lengths.

Both implementations always get the same batch: the same lengths, the same number of tokens.
By default the Transformer also skips padding (nested jagged tensors with FlashAttention-2's
variable-length kernel), so ``speedup`` compares layers, not padding policies. Each row reports, per
layer: milliseconds of a training step (forward + backward) or an inference forward (``ms``),
millions of tokens per second (``Mtok_s``), model TFLOP/s (``tflops``, :mod:`model.flops`
conventions: training = 3 x forward), and for training the activation memory per token:
``act_B_tok`` (bytes autograd saves for backward,
:func:`~scaling.benchmarks.measure.saved_activation_bytes`), ``peak_B_tok`` (CUDA peak of one
forward + backward above parameters, gradients and inputs) and ``paper_B_tok`` (Section 3.3's
analytic bf16 figures, 14d and 33d). Speedups:

* ``speedup``: Transformer time / HSTU time on the same batch (HSTU rows);
* ``speedup_no_sl`` (HSTU ``jagged-sl`` training rows): Transformer time on the ``jagged`` batch
  without SL / HSTU time on the same sequences after SL. This is HSTU + SL against a Transformer
  trained on the full sequences, which is how we read the paper's "up to 15.2x" for training.

Targets the team checks on an H100 (bf16, n = 8192, training), printed next to the measurements by
:func:`target_rows`:

* ``speedup`` on the ``full`` batch >= 2.0;
* ``speedup_no_sl`` with SL (alpha 1.6) >= 15.2 (paper, Section 4.2);
* HSTU's ``act_B_tok`` <= 0.5 x the Transformer's on the ``full`` batch (paper: 14d vs 33d).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from model.flops import TRAINING_FLOPS_PER_FORWARD_FLOP
from scaling.benchmarks.attention import batch_lengths, tflops_per_second
from scaling.benchmarks.measure import Timer, cuda_peak_bytes, saved_activation_bytes, torch_dtype
from scaling.data.stochastic_length import keep_whole_probability, subsequence_length

EMBEDDING_DIM = 512  # d
NUM_HEADS = 8  # h
HEAD_DIM = 64  # d_qk = d_v
FFN_DIM = 4 * EMBEDDING_DIM  # the Transformer's d_ff
TRAIN_BATCHES = ("full", "jagged", "jagged-sl")
INFER_BATCHES = ("full", "jagged")  # SL is training-only
SL_STREAM = 4  # third word of the seed sequence that draws the jagged-sl batch's coin flips (Eq. 4)
TARGET_LENGTH = 8192
# A dry run's Transformer attention: PyTorch's CPU FlashAttention, which like HSTU's reference keeps no
# n x n matrix and no fp32 copies for backward, so both layers' activation bytes are counted the same
# way (math SDPA keeps both).
DRY_RUN_TRANSFORMER_ATTENTION = "flash-padded"
TARGET_FULL_SPEEDUP = 2.0
TARGET_SL_SPEEDUP = 15.2
TARGET_MEMORY_RATIO = 0.5
RESULT_COLUMNS = ("n", "mode", "batch", "impl", "sequences", "tokens", "ms", "Mtok_s", "tflops", "speedup",
                  "speedup_no_sl", "act_B_tok", "peak_B_tok", "paper_B_tok", "note")
TARGET_COLUMNS = ("target", "required", "measured", "status")



@dataclass(frozen=True)
class EncoderBenchConfig:
    """What ``scaling bench encoder`` runs."""

    lengths: tuple[int, ...]  # the n values: longest sequence of each batch, and SL's N
    batch_tokens: int  # tokens per batch before SL (rounded down to a multiple of n, at least n)
    alpha: float  # Stochastic Length alpha, in (1, 2]
    layers: int  # layers stacked per timed step; times and memory are reported per layer
    dtype: str  # 'bf16' or 'fp16'
    device: str  # 'cuda', 'cuda:1', ... ('cpu' only for untimed dry runs)
    rab: bool  # HSTU with rab^{p,t} (position and time) instead of without
    transformer_attention: str  # TransformerLayer attention: 'flash-jagged', 'flash-padded' or 'math-padded'
    seed: int  # seeds the lengths, SL and the weights and inputs


def hstu_paper_activation_bytes(d: int, heads: int, qk_dim: int, v_dim: int) -> float:
    """Section 3.3: bf16 bytes per token one HSTU layer keeps, 2d + 2d + 4 h d_qk + 4 h d_v + 2 h d_v.

    Input and input LayerNorm (2d + 2d), Q and K (4 h d_qk), U and V (4 h d_v), attention output
    (2 h d_v), with SiLU(f1(.)) and LayerNorm + gating + f2 fused so nothing else is kept: 14d.
    """
    return 2 * d + 2 * d + 4 * heads * qk_dim + 4 * heads * v_dim + 2 * heads * v_dim


def transformer_paper_activation_bytes(d: int, heads: int, qk_dim: int, v_dim: int, ffn_dim: int) -> float:
    """Section 3.3: bf16 bytes per token one Transformer layer keeps; 33d when h d = d and d_ff = 4d.

    Input and input LayerNorm (4d), the Q, K, V projections (2 (2 h d_qk + h d_v)), W_o's input and
    its dropout mask (3 h d_v), then the FFN block's LayerNorm, linear, activation, linear and
    dropout mask (2d + 4 d_ff + 2d + 1d). The two 1-byte dropout masks (h d_v + d) are part of the
    paper's figure even though the benchmark runs without dropout.
    """
    return 4 * d + 2 * (2 * heads * qk_dim + heads * v_dim) + 3 * heads * v_dim + 4 * d + 4 * ffn_dim


def stochastic_length_lengths(lengths: Sequence[int], max_seq_len: int, alpha: float,
                              rng: np.random.Generator) -> list[int]:
    """Eq. 4 on sequence lengths: n > N^(alpha/2) becomes L = floor(N^(alpha/2)) with probability 1 - N^alpha / n^2.

    Uses the training path's :func:`keep_whole_probability` and :func:`subsequence_length`, and
    draws one uniform per sequence the way :func:`scaling.data.stochastic_length.kept_tokens` does,
    so for one-token events (retrieval streams) it returns the lengths ``stochastic_length`` leaves.
    """
    lengths_array = np.asarray(lengths, dtype=np.int64)
    shorten = rng.random(len(lengths_array)) >= keep_whole_probability(lengths_array, max_seq_len, alpha)
    return np.where(shorten, subsequence_length(max_seq_len, alpha), lengths_array).tolist()


def encoder_batch_lengths(n: int, batch_tokens: int, batch: str, alpha: float, seed: int) -> list[int]:
    """Sequence lengths of the ``full``, ``jagged`` or ``jagged-sl`` batch for length n (seeded)."""
    if batch in ("full", "jagged"):
        return batch_lengths(n, batch_tokens, batch, seed)
    if batch == "jagged-sl":
        jagged = batch_lengths(n, batch_tokens, "jagged", seed)
        # Its own stream: default_rng(seed + n), which drew the lengths, would tie SL's coin flips to them.
        return stochastic_length_lengths(jagged, n, alpha, np.random.default_rng((seed, n, SL_STREAM)))
    raise ValueError(f"batch must be one of full, jagged, jagged-sl; got {batch!r}")


def benchmark_cases(lengths: Sequence[int]) -> list[tuple[int, str, str]]:
    """(n, mode, batch) in the order they run: per n, training batches then inference batches."""
    return [(n, mode, batch) for n in lengths
            for mode, batches in (("train", TRAIN_BATCHES), ("infer", INFER_BATCHES)) for batch in batches]


def result_row(n: int, mode: str, batch: str, impl: str, lengths: Sequence[int], layers: int, *,
               milliseconds: float | None, forward_flops: float, act_bytes: int | None = None,
               peak_bytes: int | None = None, paper_bytes_per_token: float | None = None,
               note: str = "") -> dict[str, object]:
    """One table row, with time, FLOPs and memory of the whole ``layers``-deep stack turned into per-layer figures."""
    tokens = int(sum(lengths))
    per_layer_ms = None if milliseconds is None else milliseconds / layers
    flops = forward_flops * (TRAINING_FLOPS_PER_FORWARD_FLOP if mode == "train" else 1.0)

    def per_token_per_layer(total: int | None) -> float | None:
        return None if total is None else total / tokens / layers

    return {
        "n": n, "mode": mode, "batch": batch, "impl": impl, "sequences": len(lengths), "tokens": tokens,
        "ms": per_layer_ms,
        "Mtok_s": None if not per_layer_ms else tokens / (per_layer_ms * 1e-3) / 1e6,
        "tflops": tflops_per_second(flops / layers, per_layer_ms),
        "speedup": None, "speedup_no_sl": None,
        "act_B_tok": per_token_per_layer(act_bytes), "peak_B_tok": per_token_per_layer(peak_bytes),
        "paper_B_tok": paper_bytes_per_token, "note": note,
    }


def add_speedups(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Copies of ``rows`` with ``speedup`` and ``speedup_no_sl`` filled in on the HSTU rows that have a partner."""
    transformer_ms = {(row["n"], row["mode"], row["batch"]): row.get("ms")
                      for row in rows if str(row["impl"]).startswith("transformer")}
    out = []
    for row in rows:
        row = dict(row)
        if str(row["impl"]).startswith("hstu"):
            key = (row["n"], row["mode"], row["batch"])
            row["speedup"] = _ratio(transformer_ms.get(key), row.get("ms"))
            if row["batch"] == "jagged-sl":
                row["speedup_no_sl"] = _ratio(transformer_ms.get((row["n"], row["mode"], "jagged")), row.get("ms"))
        out.append(row)
    return out


def _ratio(numerator: object, denominator: object) -> float | None:
    if not isinstance(numerator, float) or not isinstance(denominator, float) or denominator <= 0:
        return None
    return numerator / denominator


def target_rows(rows: Sequence[dict[str, object]], n: int = TARGET_LENGTH) -> list[dict[str, object]]:
    """The three targets of the module docstring at length n, each with the measured value and met/MISSED."""
    def find(impl_prefix: str, batch: str) -> dict[str, object]:
        matches = [row for row in rows if row["n"] == n and row["mode"] == "train" and row["batch"] == batch
                   and str(row["impl"]).startswith(impl_prefix)]
        return matches[0] if matches else {}

    hstu_full, transformer_full = find("hstu", "full"), find("transformer", "full")
    checks = [
        (f"train speedup, full batch, n={n}", ">=", TARGET_FULL_SPEEDUP, hstu_full.get("speedup")),
        (f"train speedup with SL vs Transformer without, n={n}", ">=", TARGET_SL_SPEEDUP,
         find("hstu", "jagged-sl").get("speedup_no_sl")),
        (f"activation bytes/token HSTU / Transformer, full, n={n}", "<=", TARGET_MEMORY_RATIO,
         _ratio(hstu_full.get("act_B_tok"), transformer_full.get("act_B_tok"))),
    ]
    return [{"target": name, "required": f"{sign} {bound:g}", "measured": measured,
             "status": _status(measured, sign, bound)} for name, sign, bound, measured in checks]


def _status(measured: object, sign: str, bound: float) -> str:
    if not isinstance(measured, float):
        return "not measured"
    met = measured >= bound if sign == ">=" else measured <= bound
    return "met" if met else "MISSED"


def run_encoder_benchmark(config: EncoderBenchConfig, timer: Timer,
                          progress: Callable[[dict[str, object]], None] | None = None) -> list[dict[str, object]]:
    """Measure every (n, mode, batch, implementation) and return the rows with speedups filled in."""
    import torch

    torch.manual_seed(config.seed)
    rows = []
    for n, mode, batch in benchmark_cases(config.lengths):
        lengths = encoder_batch_lengths(n, config.batch_tokens, batch, config.alpha, config.seed)
        for family in ("hstu", "transformer"):
            row = _measure_case(config, n, mode, batch, family, lengths, timer)
            rows.append(row)
            if progress is not None:
                progress(row)
    return add_speedups(rows)


def _measure_case(config: EncoderBenchConfig, n: int, mode: str, batch: str, family: str,
                  lengths: list[int], timer: Timer) -> dict[str, object]:
    """Time one case and, for training, measure its activation memory; failures become the row's note."""
    import torch

    device = torch.device(config.device)
    name = impl_name(family, config, device)
    paper_bytes = paper_activation_bytes(family) if mode == "train" else None

    def row(note: str = "", forward_flops: float = 0.0, **measured) -> dict[str, object]:
        measured.setdefault("milliseconds", None)
        return result_row(n, mode, batch, name, lengths, config.layers, forward_flops=forward_flops,
                          paper_bytes_per_token=paper_bytes, note=note, **measured)

    encoder = None
    try:
        encoder = _build_encoder(family, config, n, lengths, device)
        flops = config.layers * encoder.forward_flops
        forward, train_step = _closures(encoder, lengths, device, torch_dtype(config.dtype))
        if mode == "infer":
            return row(forward_flops=flops, milliseconds=timer(forward))
        act_bytes = saved_activation_bytes(train_step.forward_only, encoder.excluded)
        peak_bytes = cuda_peak_bytes(train_step, device) if device.type == "cuda" else None
        return row(forward_flops=flops, milliseconds=timer(train_step), act_bytes=act_bytes, peak_bytes=peak_bytes)
    except torch.cuda.OutOfMemoryError:
        return row(note="out of memory")
    except RuntimeError as error:  # e.g. no flash kernel for this dtype, device or layout
        return row(note=str(error).splitlines()[0][:80])
    finally:
        del encoder
        if device.type == "cuda":
            torch.cuda.empty_cache()


def impl_name(family: str, config: EncoderBenchConfig, device) -> str:
    """The row's implementation: 'hstu-<attention backend>[+rab]' or 'transformer-<attention>'."""
    if family == "transformer":
        return f"transformer-{config.transformer_attention}"
    return f"hstu-{hstu_backend(device)}{'+rab' if config.rab else ''}"


def hstu_backend(device) -> str:
    """HSTU's attention backend here: the Triton kernels on CUDA, the padded reference in CPU dry runs."""
    return "triton" if device.type == "cuda" else "reference"


def paper_activation_bytes(family: str) -> float:
    """Section 3.3's bf16 activation bytes per token of one layer at the benchmark's dimensions (14d or 33d)."""
    if family == "hstu":
        return hstu_paper_activation_bytes(EMBEDDING_DIM, NUM_HEADS, HEAD_DIM, HEAD_DIM)
    return transformer_paper_activation_bytes(EMBEDDING_DIM, NUM_HEADS, HEAD_DIM, HEAD_DIM, FFN_DIM)


@dataclass
class _Encoder:
    """A ``layers``-deep stack of one implementation, ready to run on one batch."""

    run: Callable  # x [T, d] -> [T, d] through the stack
    parameters: list  # every parameter of the stack
    excluded: list  # tensors that are not activations: parameters and the batch's index tensors
    forward_flops: float  # forward FLOPs of one layer on this batch


@dataclass(frozen=True)
class LayerShape:
    """The widths of the compared layers: d, h, d_qk = d_v and the Transformer's d_ff."""

    embedding_dim: int
    num_heads: int
    head_dim: int
    ffn_dim: int

    @classmethod
    def paper_scaled(cls, embedding_dim: int) -> "LayerShape":
        """The benchmark's proportions at another d: 8 heads of d / 8, d_ff = 4d (h d_v = d, as in Section 3.3)."""
        if embedding_dim % NUM_HEADS:
            raise ValueError(f"embedding_dim must be a multiple of {NUM_HEADS} heads; got {embedding_dim}")
        return cls(embedding_dim, NUM_HEADS, embedding_dim // NUM_HEADS, 4 * embedding_dim)


BENCH_SHAPE = LayerShape(EMBEDDING_DIM, NUM_HEADS, HEAD_DIM, FFN_DIM)


def layer_activation_bytes_per_token(family: str, shape: LayerShape, lengths: Sequence[int], *, dtype: str = "bf16",
                                     rab: bool = False, transformer_attention: str = "flash-padded",
                                     seed: int = 0) -> float:
    """Bytes autograd keeps for backward per token of one layer's training forward on the CPU (``act_B_tok``).

    The count the benchmark reports, for one HSTU (``family='hstu'``, the reference attention) or
    Transformer layer of ``shape`` on a batch of sequences of ``lengths``.
    """
    import torch

    config = EncoderBenchConfig(lengths=(max(lengths),), batch_tokens=int(sum(lengths)), alpha=2.0, layers=1,
                                dtype=dtype, device="cpu", rab=rab, transformer_attention=transformer_attention,
                                seed=seed)
    torch.manual_seed(seed)
    device = torch.device("cpu")
    encoder = _build_encoder(family, config, max(lengths), list(lengths), device, shape)
    _, train_step = _closures(encoder, list(lengths), device, torch_dtype(dtype), shape.embedding_dim)
    return saved_activation_bytes(train_step.forward_only, encoder.excluded) / sum(lengths)


def _build_encoder(family: str, config: EncoderBenchConfig, n: int, lengths: list[int], device,
                   shape: LayerShape = BENCH_SHAPE) -> _Encoder:
    """The HSTU or Transformer stack for this batch, in the benchmark's dtype on its device."""
    import torch

    from kernels.flops import causal_pairs
    from model.flops import SequenceWorkload
    from model.hstu import HSTULayer
    from scaling.benchmarks.transformer_layer import JaggedLayout, TransformerLayer

    dtype = torch_dtype(config.dtype)
    layout = JaggedLayout.from_lengths(lengths, device)
    pairs = sum(causal_pairs(length) for length in lengths)
    if family == "transformer":
        layers = [TransformerLayer(shape.embedding_dim, shape.num_heads, shape.head_dim, shape.ffn_dim,
                                   config.transformer_attention)
                  for _ in range(config.layers)]
        stack = torch.nn.ModuleList(layers).to(device=device, dtype=dtype)
        return _Encoder(run=lambda x: _run_stack(stack, x, layout), parameters=list(stack.parameters()),
                        excluded=[*stack.parameters(), layout.offsets],
                        forward_flops=layers[0].forward_flops(sum(lengths), pairs))
    # recompute_in_backward: what a CUDA run keeps ('auto' there), counted the same in CPU dry runs.
    layers = [HSTULayer(shape.embedding_dim, shape.num_heads, shape.head_dim, shape.head_dim, dropout=0.0,
                        max_seq_len=n, rab="pos_time" if config.rab else "none",
                        attention_backend=hstu_backend(device), recompute_in_backward="always")
              for _ in range(config.layers)]
    stack = torch.nn.ModuleList(layers).to(device=device, dtype=dtype)
    sequences = _jagged_sequences(layout.offsets)
    workload = SequenceWorkload(num_sequences=len(lengths), num_tokens=sum(lengths), attention_pairs=pairs,
                                num_scored=0, items_per_scored=0)
    return _Encoder(run=lambda x: _run_stack(stack, x, sequences), parameters=list(stack.parameters()),
                    excluded=[*stack.parameters(), sequences.offsets, sequences.timestamps, sequences.query_timestamps],
                    forward_flops=layers[0].forward_flops(workload))


def _run_stack(stack, x, batch):
    for layer in stack:
        x = layer(x, batch)
    return x


def _jagged_sequences(offsets):
    """HSTU's batch: only offsets matter without rab; timestamps one minute apart feed rab^t when it is on."""
    import torch

    from model.inputs import JaggedSequences

    tokens = int(offsets[-1])
    timestamps = 1_700_000_000 + 60 * torch.arange(tokens, device=offsets.device)
    return JaggedSequences(item_ids=torch.zeros(tokens, dtype=torch.int64, device=offsets.device),
                           timestamps=timestamps, query_timestamps=timestamps + 60, offsets=offsets)


class _TrainStep:
    """Forward + backward of the stack on fixed inputs and upstream gradient; gradients reset each call."""

    def __init__(self, encoder: _Encoder, x, grad_out) -> None:
        self.encoder, self.grad_out = encoder, grad_out
        self.x = x.detach().requires_grad_()

    def forward_only(self):
        """The training forward alone (graph built, no backward): what activation memory is measured on."""
        return self.encoder.run(self.x)

    def __call__(self) -> None:
        self.x.grad = None
        for parameter in self.encoder.parameters:
            parameter.grad = None
        self.encoder.run(self.x).backward(self.grad_out)


def _closures(encoder: _Encoder, lengths: list[int], device, dtype, width: int = EMBEDDING_DIM):
    """(inference forward under no_grad, training step) on random inputs [T, d] for this batch."""
    import torch

    x = torch.randn(sum(lengths), width, device=device, dtype=dtype)
    grad_out = torch.randn_like(x)

    def forward() -> None:
        with torch.no_grad():
            encoder.run(x)

    return forward, _TrainStep(encoder, x, grad_out)
