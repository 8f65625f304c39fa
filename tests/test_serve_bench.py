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
