"""``scaling serve-bench``: a tiny run writes one row per (m, path, b_m) and the paths agree."""

from __future__ import annotations

import csv

import pytest
import torch

from scaling.cli import main



def test_tiny_bench_writes_rows_and_labels_extrapolation(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    code = main(["serve-bench", "--device", "cpu", "--candidates", "2", "6", "--microbatch", "4", "--history-len", "9",
                 "--model-size", "small", "--naive-sample", "3", "--csv", str(out)])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["candidates"], r["path"]) for r in rows] == [
        ("2", "naive"), ("2", "batched-mask"), ("2", "batched+kv-cache"),
        ("6", "naive"), ("6", "batched-mask"), ("6", "batched+kv-cache"),
    ]
    assert rows[0]["timing"] == "measured" and rows[3]["timing"] == "extrapolated from 3"
    assert all(float(r["max_abs_diff"]) < 1e-4 for r in rows if r["path"] != "naive")
    assert "randomly initialised HSTU ranking model" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu_is_a_one_line_error(capsys):
    assert main(["serve-bench", "--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip() == "error: --device cuda: no CUDA device is available on this machine; use --device cpu"


def _parsed(*argv: str):
    import argparse

    from scaling.commands import serve_bench

    parser = argparse.ArgumentParser()
    serve_bench.add_arguments(parser)
    return serve_bench._with_size_defaults(parser.parse_args(list(argv)))


def test_the_default_size_is_small_and_paper_scale_is_one_flag_away():
    small, paper = _parsed(), _parsed("--size", "paper")
    assert (small.model_size, small.history_len, small.naive_sample) == ("small", 256, 4)
    assert (paper.model_size, paper.history_len, paper.candidates, paper.microbatch, paper.naive_sample) == (
        "medium", 1024, [1024, 4096, 16384], [64, 256, 1024], 8)
    explicit = _parsed("--size", "paper", "--history-len", "64", "--candidates", "8")
    assert (explicit.history_len, explicit.candidates, explicit.model_size) == (64, [8], "medium")
