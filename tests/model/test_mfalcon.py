"""M-FALCON: naive, batched-mask and KV-cached scoring give the same logits for every microbatch size,
for every encoder whose layers implement the cached passes (HSTU, SASRec, Transformer++)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from kernels import AttentionLayout, CachedKeyValues
from model.config import HSTUConfig, ModelConfig
from model.hstu import HSTUEncoder, HSTULayer
from model.inputs import JaggedSequences, Vocabulary
from model.mfalcon import (
    CachingLayer,
    RankingRequest,
    encode_history,
    score_candidates,
    score_naive,
    scoring_flops,
)
from model.registry import build_model

HISTORY_LEN, NUM_CANDIDATES = 15, 10
ENCODERS = [  # (model.name, attention, rab): every encoder, HSTU's attention and bias variants
    ("hstu", "pointwise", "pos_time"),
    ("hstu", "pointwise", "none"),
    ("hstu", "softmax", "pos"),
    ("sasrec", "softmax", "none"),
    ("transformerpp", "softmax", "none"),
]
ENCODER_IDS = [f"{name}-{attention}-{rab}" for name, attention, rab in ENCODERS]


def ranking_model(name: str = "hstu", attention: str = "pointwise", rab: str = "pos_time") -> torch.nn.Module:
    torch.manual_seed(0)
    vocabulary = Vocabulary(50, 2 * HISTORY_LEN, num_action_tokens=5, task_names=("click", "like"))
    # SASRec is softmax attention without rab by construction and reads no model.hstu section.
    hstu = HSTUConfig(attention=attention, rab=rab) if name == "hstu" else HSTUConfig()
    config = ModelConfig(name=name, num_layers=2, num_heads=2, embedding_dim=16, dropout=0.3, attention_backend="reference",
                         hstu=hstu)
    model = build_model(config, "ranking", vocabulary).eval()
    with torch.no_grad():  # large rab tables and position embeddings: a wrong position or bucket shows
        for name_, parameter in model.named_parameters():
            if "relative_bias" in name_ or "positions" in name_:
                parameter.normal_(0.0, 1.0)
    return model


def request(seed: int = 0) -> RankingRequest:
    generator = torch.Generator().manual_seed(seed)
    n = HISTORY_LEN  # Phi_0, a_0, ..., Phi_7 (odd: the history may end on an item)
    items = torch.randint(1, 51, (n,), generator=generator)
    items[1::2] = 0
    actions = torch.randint(1, 6, (n,), generator=generator)
    actions[0::2] = 0
    stamps = torch.cumsum(torch.randint(1, 10**5, (n,), generator=generator), 0)
    now = int(stamps[-1]) + 4321
    query = torch.cat([stamps[1:], torch.tensor([now])])
    history = JaggedSequences(items, stamps, query, torch.tensor([0, n]), action_ids=actions)
    candidates = torch.randint(1, 51, (NUM_CANDIDATES,), generator=generator)
    # candidates requested at slightly different times, so the time bias differs between them
    times = now + torch.randint(0, 10**6, (NUM_CANDIDATES,), generator=generator)
    return RankingRequest(history, candidates, times)


@pytest.mark.parametrize("name, attention, rab", ENCODERS, ids=ENCODER_IDS)
def test_three_paths_agree_for_every_microbatch_size(name, attention, rab):
    model, req = ranking_model(name, attention, rab), request()
    naive = score_candidates(model, req, "naive")
    assert naive.shape == (NUM_CANDIDATES, 2)
    for microbatch_size in (1, 3, 4, NUM_CANDIDATES, 64):  # 3 and 4 do not divide m = 10
        batched = score_candidates(model, req, "batched", microbatch_size)
        cached = score_candidates(model, req, "cached", microbatch_size)
        torch.testing.assert_close(batched, naive, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(cached, naive, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(cached, batched, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, attention, rab", ENCODERS, ids=ENCODER_IDS)
def test_cached_scores_equal_the_full_forward_in_float64(name, attention, rab):
    """In float64 only rounding separates the paths: any difference in the layers' maths shows."""
    model, req = ranking_model(name, attention, rab).double(), request(seed=1)
    batched = score_candidates(model, req, "batched", NUM_CANDIDATES)  # the model's own forward, target-masked
    for microbatch_size in (1, 4, NUM_CANDIDATES):
        cached = score_candidates(model, req, "cached", microbatch_size)
        assert cached.dtype == torch.float64
        torch.testing.assert_close(cached, batched, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(score_candidates(model, req, "naive"), batched, rtol=1e-12, atol=1e-12)


def test_scores_depend_on_the_candidate_and_its_request_time():
    model, req = ranking_model(), request()
    base = score_candidates(model, req, "cached", 4)
    later = RankingRequest(req.history, req.candidate_item_ids, req.candidate_timestamps + 10**7)
    assert not torch.allclose(score_candidates(model, later, "cached", 4), base)
    torch.testing.assert_close(score_naive(model, later, [3]), score_candidates(model, later, "cached", 4)[3:4],
                               rtol=1e-4, atol=1e-5)
    assert not torch.allclose(base[0], base[1])


@pytest.mark.parametrize("name", ["hstu", "sasrec", "transformerpp"])
def test_cache_computes_the_history_once(name):
    model, req = ranking_model(name, "pointwise" if name == "hstu" else "softmax"), request()
    first_projection = next(m for m in model.backbone.encoder.layers[0].modules() if isinstance(m, nn.Linear))
    rows = []
    hook = first_projection.register_forward_hook(lambda _m, inputs, _o: rows.append(inputs[0].shape[0]))
    try:
        score_candidates(model, req, "cached", 3)
        cached_rows, rows[:] = sum(rows), []
        score_candidates(model, req, "batched", 3)
        batched_rows = sum(rows)
    finally:
        hook.remove()
    assert cached_rows == HISTORY_LEN + NUM_CANDIDATES  # history once, then candidates only
    assert batched_rows == 4 * HISTORY_LEN + NUM_CANDIDATES  # ceil(10 / 3) = 4 passes re-encode it
    caches = encode_history(model, req.history)
    assert len(caches) == 2 and caches[0].k.shape == (HISTORY_LEN, 2, 8)


class DoubledLayer(nn.Module):
    """A layer M-FALCON has never heard of: twice another layer's output, with the caching protocol."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def attention_layout(self, sequences: JaggedSequences) -> AttentionLayout | None:
        return self.inner.attention_layout(sequences)

    def forward(self, x: Tensor, sequences: JaggedSequences, layout: AttentionLayout | None = None) -> Tensor:
        return 2.0 * self.inner(x, sequences, layout)

    def forward_history(self, x: Tensor, history: JaggedSequences) -> tuple[Tensor, CachedKeyValues]:
        out, cache = self.inner.forward_history(x, history)
        return 2.0 * out, cache

    def forward_candidates(self, x: Tensor, cache: CachedKeyValues, candidates: JaggedSequences, backend) -> Tensor:
        return 2.0 * self.inner.forward_candidates(x, cache, candidates, backend)


class ForwardOnlyLayer(nn.Module):
    """A layer with an encoder layer's forward (and the batch layout it shares) and nothing else."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def attention_layout(self, sequences: JaggedSequences) -> AttentionLayout | None:
        return self.inner.attention_layout(sequences)

    def forward(self, x: Tensor, sequences: JaggedSequences, layout: AttentionLayout | None = None) -> Tensor:
        return self.inner(x, sequences, layout)


def test_any_layer_implementing_the_protocol_is_cached():
    model, req = ranking_model(), request()  # HSTU: no final norm to undo the doubling
    before = score_candidates(model, req, "batched", 4)
    model.backbone.encoder.layers[1] = DoubledLayer(model.backbone.encoder.layers[1])
    assert isinstance(model.backbone.encoder.layers[1], CachingLayer)
    batched = score_candidates(model, req, "batched", 4)
    assert not torch.allclose(batched, before)
    torch.testing.assert_close(score_candidates(model, req, "cached", 4), batched, rtol=1e-4, atol=1e-5)


def test_a_layer_without_the_cached_passes_is_named():
    model, req = ranking_model(), request()
    model.backbone.encoder.layers[0] = ForwardOnlyLayer(model.backbone.encoder.layers[0])
    assert score_candidates(model, req, "batched", 4).shape == (NUM_CANDIDATES, 2)  # uncached paths still run
    with pytest.raises(TypeError, match="ForwardOnlyLayer has none"):
        score_candidates(model, req, "cached", 4)


def test_scoring_needs_eval_mode_and_a_ranking_model():
    model = ranking_model().train()
    with pytest.raises(ValueError, match="model.eval"):
        score_candidates(model, request(), "cached", 4)
    retrieval = build_model(ModelConfig(num_heads=2, embedding_dim=16), "retrieval", Vocabulary(50, 16)).eval()
    with pytest.raises(TypeError, match="ranking model"):
        score_candidates(retrieval, request(), "batched", 4)


def hstu_encoder(num_layers: int, d: int, heads: int, max_seq_len: int) -> HSTUEncoder:
    return HSTUEncoder([HSTULayer(d, heads, d // heads, d // heads, dropout=0.0, max_seq_len=max_seq_len)
                        for _ in range(num_layers)])


def test_cached_flops_are_linear_in_candidates_and_far_below_naive():
    n = 1024
    encoder = hstu_encoder(num_layers=4, d=256, heads=4, max_seq_len=n + 1)
    cached = [scoring_flops("cached", encoder, n, m, 256) for m in (1024, 2048)]
    per_candidate = (cached[1] - cached[0]) / 1024
    # O(d^2 + n d) per candidate: f1, f2 on one token plus one row of attention over n + 1 keys
    linear = 2 * 256 * 4 * (4 * 64) + 2 * 4 * 64 * 256
    assert per_candidate == pytest.approx(4 * (linear + (n + 1) * 2 * 4 * 128))
    naive = scoring_flops("naive", encoder, n, 1024, 256)
    batched = scoring_flops("batched", encoder, n, 1024, 256)
    assert cached[0] < batched < naive
    assert scoring_flops("batched", encoder, n, 1024, 1024) < batched  # fewer passes re-encode the history
    # The history pass: causal over n tokens, n (n + 1) / 2 pairs (the diagonal included)
    history = 4 * (n * linear + n * (n + 1) // 2 * 2 * 4 * 128)
    assert cached[0] == pytest.approx(history + 1024 * per_candidate)


@pytest.mark.parametrize("name", ["hstu", "sasrec", "transformerpp"])
def test_uncached_scoring_flops_are_what_the_flop_counter_sees(name):
    """Per pass, the encoder over [history ; candidates]: the counter counts the reference op by its mask."""
    model, req = ranking_model(name, "pointwise" if name == "hstu" else "softmax", "none"), request()
    encoder, backbone = model.backbone.encoder, model.backbone
    for path, count in (("naive", 1), ("batched", 4)):
        sequences = req.with_candidates(0, count, as_targets=path == "batched")
        x = backbone.input_layer(backbone.embedding(sequences), sequences.offsets, sequences.num_targets)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            encoder(x, sequences)
        expected = scoring_flops(path, encoder, HISTORY_LEN, count, count)
        assert counter.get_total_flops() == pytest.approx(expected, rel=1e-12)
