"""Output targets are checked before any work: a file where a folder goes, or a folder that cannot be written."""

from __future__ import annotations

import os
import time

import pytest

from core.errors import UserError
from core.files import check_output_folder
from scaling.cli import main

TINY = ["data.synthetic_dp.num_items=100", "data.synthetic_dp.num_records=60", "data.synthetic_dp.record_length=8",
        "data.max_seq_len=8", "train.epochs=1"]


def test_train_into_an_out_folder_that_is_a_file_fails_before_training(tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("not a folder")
    started = time.perf_counter()
    config = tmp_path / "run.yaml"
    config.write_text("name: tiny\n")
    code = main(["train", str(config), "--out", str(out), "--quiet",
                 *[f"--set={o}" for o in [*TINY, f"data.cache_dir={tmp_path / 'cache'}"]]])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: --out {out} is a file, not a folder; pass a folder\n"
    assert not (tmp_path / "cache").exists()  # refused before the data were even built
    assert time.perf_counter() - started < 30


def test_folders_under_a_file_or_not_writable_are_refused(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file, so the folder cannot be created"):
        check_output_folder(tmp_path / "file" / "sub" / "run", "--out")
    assert check_output_folder(tmp_path / "new" / "run", "--out") is None  # created later, by the writer
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root ignores permission bits: simulate read-only
    with pytest.raises(UserError, match="is not writable"):
        check_output_folder(tmp_path / "run", "--out")


def test_low_free_space_is_a_warning(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 << 30, 10 << 30, 5 << 20))
    assert check_output_folder(tmp_path, "--out") == f"--out {tmp_path}: only 5 MiB free; the run may fail when " \
                                                     "writing its results"


def test_analyze_into_a_file_fails_before_the_fits(tmp_path, capsys, monkeypatch):
    import analysis.report

    def never(*args, **kwargs):
        raise AssertionError("the fits ran before --out was checked")

    monkeypatch.setattr(analysis.report, "load_results", lambda results: None)
    monkeypatch.setattr(analysis.report, "run_study", never)
    (tmp_path / "report").write_text("x")
    assert main(["analyze", str(tmp_path), "--out", str(tmp_path / "report")]) == 2
    assert "is a file" in capsys.readouterr().err
