"""M-FALCON: naive, batched-mask and KV-cached scoring give the same logits for every microbatch size."""

from __future__ import annotations

import pytest
import torch

from model.config import HSTUConfig, ModelConfig
from model.inputs import JaggedSequences, Vocabulary
from model.mfalcon import (
    EncoderShape,
    RankingRequest,
    encode_history,
    score_candidates,
    score_naive,
    scoring_flops,
)
from model.registry import build_model

HISTORY_LEN, NUM_CANDIDATES = 15, 10



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


@pytest.mark.parametrize("name, attention, rab", [
    ("hstu", "pointwise", "pos_time"),
    ("hstu", "pointwise", "none"),
    ("hstu", "softmax", "pos"),
    ("sasrec", "softmax", "none"),
])
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


def test_scores_depend_on_the_candidate_and_its_request_time():
    model, req = ranking_model(), request()
    base = score_candidates(model, req, "cached", 4)
    later = RankingRequest(req.history, req.candidate_item_ids, req.candidate_timestamps + 10**7)
    assert not torch.allclose(score_candidates(model, later, "cached", 4), base)
    torch.testing.assert_close(score_naive(model, later, [3]), score_candidates(model, later, "cached", 4)[3:4],
                               rtol=1e-4, atol=1e-5)
    assert not torch.allclose(base[0], base[1])


def test_cache_computes_the_history_once():
    model, req = ranking_model(), request()
    rows = []
    hook = model.backbone.encoder.layers[0].f1.register_forward_hook(lambda _m, inputs, _o: rows.append(inputs[0].shape[0]))
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


def test_scoring_needs_eval_mode_and_a_ranking_model():
    model = ranking_model().train()
    with pytest.raises(ValueError, match="model.eval"):
        score_candidates(model, request(), "cached", 4)
    retrieval = build_model(ModelConfig(num_heads=2, embedding_dim=16), "retrieval", Vocabulary(50, 16)).eval()
    with pytest.raises(TypeError, match="ranking model"):
        score_candidates(retrieval, request(), "batched", 4)


def test_cached_flops_are_linear_in_candidates_and_far_below_naive():
    shape = EncoderShape(num_layers=4, embedding_dim=256, num_heads=4, qk_dim=64, v_dim=64)
    n = 1024
    cached = [scoring_flops("cached", shape, n, m, 256) for m in (1024, 2048)]
    per_candidate = (cached[1] - cached[0]) / 1024
    # O(d^2 + n d) per candidate: f1, f2 on one token plus one row of attention over n + 1 keys
    linear = 2 * 256 * 4 * (4 * 64) + 2 * 4 * 64 * 256
    assert per_candidate == pytest.approx(4 * (linear + (n + 1) * 2 * 4 * 128))
    naive = scoring_flops("naive", shape, n, 1024, 256)
    batched = scoring_flops("batched", shape, n, 1024, 256)
    assert cached[0] < batched < naive
    assert scoring_flops("batched", shape, n, 1024, 1024) < batched  # fewer passes re-encode the history
