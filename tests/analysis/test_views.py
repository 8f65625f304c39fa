"""The paper-table views on small hand-built results tables: values, order, gains and the paper's numbers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.views import VIEWS, render_view, write_view
from analysis.views.common import ViewOptions, kendall_tau, seed_means, seed_spread_sentence
from scaling.cli import main

NAN = math.nan


def trial(trial_id: str, group: str, model: str, *, task: str = "retrieval", dataset: str = "synthetic-dp",
          status: str = "completed", seed: int = 42, evals: int = 2, family: str = "GR", axes: dict | None = None,
          **final: float) -> list[dict]:
    """A trial's rows in the results-table contract: ``evals`` evaluations, ``final`` (test metrics and totals,
    named as columns) on the last row when it completed."""
    rows = []
    for step in range(1, evals + 1):
        flops = 1e12 * step
        rows.append({
            "sweep": "views", "trial_id": trial_id, "group": group, "model": model, "family": family,
            "status": status, "failure_reason": None if status == "completed" else "training diverged",
            "seed": seed, "step": 10 * step, "epoch": float(step), "flops": flops, "pf_days": flops / 8.64e19,
            "params_embedding": 1000, "params_non_embedding": 500, "wall_seconds": 5.0 * step,
            "eval_set": f"holdout:{dataset}:{task}", "data.task": task, "data.dataset": dataset,
            **(axes or {}), "valid/ndcg@10" if task != "ranking" else "valid/ne": 0.1 * step,
        })
    if status == "completed":
        rows[-1].update(final)
    return rows


def table_of(*trials: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for rows in trials for row in rows])


def cells(output, table: int = 0) -> dict[str, tuple[str, ...]]:
    """First cell -> the row, of the ``table``-th render Table of a view's output."""
    tables = [block for block in output.blocks if hasattr(block, "rows")]
    return {row[0]: row for row in tables[table].rows}


# --- table2 ---------------------------------------------------------------------------------


def table2_results() -> pd.DataFrame:
    """In sweep order hstu_no_rab first; the transformer has two seeds; HSTU (-rab) is the best, as in the paper."""
    return table_of(
        trial("a", "hstu_no_rab", "hstu", **{"test/hr@10": 0.09, "test/hr@50": 0.30, "test/ndcg@10": 0.05,
                                             "test/log_pplx": 8.0, "train_wall_seconds": 3.0}),
        trial("b", "transformer", "sasrec", seed=1, **{"test/hr@10": 0.04, "test/hr@50": 0.18, "test/ndcg@10": 0.02,
                                                       "test/log_pplx": 9.0, "train_wall_seconds": 4.0}),
        trial("c", "transformer", "sasrec", seed=2, **{"test/hr@10": 0.06, "test/hr@50": 0.22, "test/ndcg@10": 0.04,
                                                       "test/log_pplx": 9.5, "train_wall_seconds": 6.0}),
        trial("d", "hstu_softmax_no_rab", "hstu", **{"test/hr@10": 0.075, "test/hr@50": 0.25, "test/ndcg@10": 0.03,
                                                     "test/log_pplx": 8.5, "train_wall_seconds": 3.5}),
    )


def test_table2_rows_follow_the_paper_with_seed_means_gains_and_the_papers_numbers():
    output = render_view("table2", table2_results(), ViewOptions())
    rows = cells(output)
    assert list(rows) == ["transformer", "hstu_softmax_no_rab", "hstu_no_rab"]
    assert rows["transformer"][1:3] == ("0.0500 (+0.0%)", "0.2000 (+0.0%)")  # mean of two seeds
    assert rows["hstu_no_rab"][1:3] == ("0.0900 (+80.0%)", "0.3000 (+50.0%)")
    assert rows["hstu_no_rab"][5:7] == ("0.0893", "0.3170")  # the paper's Table 2
    assert rows["transformer"][8:] == ("5", "2")  # mean training seconds, seeds
    frame = output.frame.set_index("variant")
    assert frame.loc["transformer", "hr@10"] == pytest.approx(0.05)
    assert frame.loc["hstu_softmax_no_rab", "paper_hr@10"] == 0.0617
    orderings = output.blocks[-1].items
    assert orderings[0].startswith("HR@10, best first: ours hstu_no_rab > hstu_softmax_no_rab > transformer; paper "
                                   "hstu_no_rab > hstu_softmax_no_rab > transformer")
    assert "+1.00" in orderings[0]


def test_table2_shows_a_diverged_row_as_diverged():
    results = table_of(*[trial(str(i), g, "hstu", **{"test/hr@10": 0.05, "test/hr@50": 0.2})
                         for i, g in enumerate(["transformer", "hstu_no_rab"])],
                       trial("x", "hstu_softmax_no_rab", "hstu", status="diverged", evals=1))
    rows = cells(render_view("table2", results, ViewOptions()))
    assert rows["hstu_softmax_no_rab"][1].startswith("diverged")


# --- table5 ---------------------------------------------------------------------------------

TABLE5_OURS = {  # group: (log pplx, NE click, NE complete); HSTU best everywhere, Transformer++ beats the ablations
    "transformer": (6.6, NAN, NAN),
    "hstu_softmax_no_rab": (6.5, 0.90, 0.80),
    "hstu_no_rab": (6.4, 0.88, 0.79),
    "transformerpp": (6.3, 0.87, 0.78),
    "hstu_rab_pos": (6.35, 0.86, 0.77),
    "hstu": (6.2, 0.85, 0.76),
}


def table5_results() -> pd.DataFrame:
    trials = []
    for index, (group, (pplx, click, complete)) in enumerate(TABLE5_OURS.items()):
        model = "sasrec" if group == "transformer" else "transformerpp" if group == "transformerpp" else "hstu"
        trials.append(trial(f"r{index}", group, model, task="gr_retrieval", dataset="synthetic-industrial",
                            **{"test/log_pplx": pplx}))
        diverged = group == "transformer"
        trials.append(trial(f"k{index}", group, model, task="ranking", dataset="synthetic-industrial",
                            status="diverged" if diverged else "completed",
                            **{"test/ne/click": click, "test/ne/complete": complete, "test/ne": click}))
    return table_of(*trials)


def test_table5_prints_ours_beside_the_paper_with_ranks_and_orderings():
    output = render_view("table5", table5_results(), ViewOptions())
    rows = {row[1]: row for row in output.blocks[0].rows}
    assert list(rows) == list(TABLE5_OURS)  # the paper's row order
    assert output.blocks[0].header[4:6] == ("ours E-Task NE (click)", "paper E-Task NE")
    assert rows["hstu"][2:4] == ("6.2000 (1)", "3.9780 (1)")
    assert rows["hstu_rab_pos"][2:4] == ("6.3500 (3)", "4.0290 (5)")
    assert rows["transformer"][4:6] == ("diverged", "NaN")  # the paper's Transformer exploded in ranking too
    assert rows["hstu_softmax_no_rab"][4:8] == ("0.9000 (5)", "0.5067 (5)", "0.8000 (5)", "0.7931 (5)")
    log_pplx, e_task, c_task, spread = output.blocks[-1].items
    assert spread.startswith("One seed per row: no seed spread")
    assert e_task.startswith("E-Task NE, best first: ours hstu > hstu_rab_pos > transformerpp > hstu_no_rab > "
                             "hstu_softmax_no_rab; paper hstu > hstu_rab_pos > transformerpp > hstu_no_rab > "
                             "hstu_softmax_no_rab; Kendall's tau over the rows both rank +1.00")
    # the paper puts the original rab 5th in log pplx, ours 3rd: the sentence shows both orders
    assert "ours hstu > transformerpp > hstu_rab_pos > hstu_no_rab > hstu_softmax_no_rab > transformer" in log_pplx
    frame = output.frame.set_index("group")
    assert frame.loc["hstu", "paper_log_pplx"] == 3.978 and frame.loc["hstu", "ne/complete"] == 0.76
    assert frame.loc["transformer", "ranking_outcome"] == "diverged"


def test_kendall_tau_counts_concordant_pairs_over_common_names():
    assert kendall_tau(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert kendall_tau(["a", "b", "c"], ["c", "b", "a"]) == -1.0
    assert kendall_tau(["a", "b", "c", "x"], ["b", "a", "c"]) == pytest.approx(1 / 3)
    assert math.isnan(kendall_tau(["a"], ["a", "b"]))


def test_table5_without_its_groups_says_which_sweep_to_run():
    results = table_of(trial("a", "main", "hstu", **{"test/log_pplx": 1.0}))
    with pytest.raises(AnalysisError, match="table5.yaml"):
        render_view("table5", results, ViewOptions())


# --- table4 ---------------------------------------------------------------------------------


def table4_results(dataset: str = "ml-100k") -> pd.DataFrame:
    totals = {"passes": 20.0, "best_epoch": 10.0}
    return table_of(
        trial("s", "sasrec", "sasrec", dataset=dataset, **{"test/hr@10": 0.20, "test/ndcg@10": 0.10,
                                                           "train_wall_seconds": 40.0, "train_cpu_seconds": 60.0,
                                                           **totals}),
        trial("h", "hstu", "hstu", dataset=dataset, **{"test/hr@10": 0.25, "test/ndcg@10": 0.12,
                                                       "train_wall_seconds": 80.0, "train_cpu_seconds": 100.0,
                                                       **totals}),
        trial("b", "sasrec", "sasrec", dataset="amazon-beauty", **{"test/hr@10": 0.05, "test/ndcg@10": 0.02}),
    )


def test_table4_reuses_the_reports_table4_and_adds_training_time():
    output = render_view("table4", table4_results(), ViewOptions())
    metrics = cells(output, 0)
    assert metrics["hstu"][3:] == ("0.25 (+25.0%)", "0.12 (+20.0%)")  # gains over SASRec, the baseline
    assert metrics["sasrec"][3:] == ("0.2", "0.1")
    training = cells(output, 1)
    assert training["hstu"][1:] == ("20 (10)", "4.00", "5.00")  # epochs (best), s/epoch wall and CPU
    assert "ml-100k" in output.blocks[0].caption and "amazon-beauty" in output.blocks[2].caption
    frame = output.frame.set_index(["data.dataset", "label"])
    assert frame.loc[("ml-100k", "hstu"), "wall_s_per_epoch"] == 4.0
    assert frame.loc[("ml-100k", "sasrec"), "baseline"] and not frame.loc[("ml-100k", "hstu"), "baseline"]


def test_table4_on_a_paper_dataset_prints_the_papers_rows():
    output = render_view("table4", table4_results("ml-1m"), ViewOptions())
    paper = cells(output, 2)
    assert paper["HSTU-large"] == ("HSTU-large", "0.3294", "0.5935", "0.7839", "0.1893", "0.2771")


# --- ranking --------------------------------------------------------------------------------


def test_ranking_has_one_table_per_dataset_with_ne_and_auc_per_task():
    def ranking(trial_id, model, family, dataset, ne, **extra):
        return trial(trial_id, family.lower(), model, task="ranking", dataset=dataset, family=family,
                     **{"test/ne": ne, "test/ne/click": ne - 0.01, "test/auc/click": 1 - ne, **extra})
    results = table_of(ranking("1", "hstu", "GR", "synthetic-industrial", 0.80, **{"test/ne/like": 0.9}),
                       ranking("2", "dlrm", "DLRM", "synthetic-industrial", 0.85, **{"test/ne/like": 0.95}),
                       ranking("3", "hstu", "GR", "ml-100k", 0.70),
                       trial("4", "dlrm", "dcnv2", task="ranking", dataset="ml-100k", family="DLRM",
                             status="failed", evals=1))
    output = render_view("ranking", results, ViewOptions())
    headings = [block.text for block in output.blocks if hasattr(block, "level")]
    assert headings == ["synthetic-industrial", "ml-100k"]
    industrial = cells(output, 0)
    assert output.blocks[1].header[2:7] == ("NE (mean)", "NE click", "NE like", "AUC click", "AUC like")
    assert industrial["hstu"][2:6] == ("0.8000", "0.7900", "0.9000", "0.2000")
    assert cells(output, 1)["dcnv2"][2] == "failed"
    frame = output.frame.set_index(["data.dataset", "model"])
    assert frame.loc[("synthetic-industrial", "dlrm"), "ne/like"] == 0.95


# --- stochastic_length ----------------------------------------------------------------------


def test_stochastic_length_puts_the_baseline_first_and_compares_with_it():
    def sl(trial_id, alpha, ne, wall, s2, kept):
        axes = {"train.stochastic_length.alpha": alpha, "train.stochastic_length.selection": "greedy",
                "data.max_seq_len": 256}
        return trial(trial_id, "main", "hstu", task="ranking", axes=axes,
                     **{"test/ne": ne, "test/auc": 0.7, "passes": 1.0, "train_wall_seconds": wall,
                        "train_cpu_seconds": wall, "sparsity": s2 / 2, "s2": s2, "targets_trained_fraction": kept})
    results = table_of(sl("a", 1.6, 0.81, 5.0, 0.9, 0.5), sl("b", None, 0.80, 10.0, 0.5, NAN),
                       sl("c", 1.8, 0.802, 8.0, 0.75, 0.8))
    output = render_view("stochastic_length", results, ViewOptions())
    rows = output.blocks[0].rows
    assert [row[0] for row in rows] == ["2.0 (off)", "1.8", "1.6"]
    assert rows[0][1:6] == ("-", "256", "25.0%", "50.0%", "100%")
    assert rows[2][1:6] == ("greedy", "84", "45.0%", "90.0%", "50%")  # L = floor(256^0.8) = 84
    assert rows[2][6] == "0.8100 (+1.25%)"
    assert rows[2][-2:] == ("0.50x", "0.20x")  # time, and sum n^2 = (1 - 0.9) / (1 - 0.5)
    assert output.frame["subsequence_len"].tolist() == [256, 147, 84]


# --- writing and the command line -----------------------------------------------------------


def test_every_view_is_registered_with_a_description():
    assert set(VIEWS) == {"table2", "table4", "table5", "ranking", "stochastic_length"}
    assert all(description for _, description in VIEWS.values())


def test_analyze_view_prints_and_writes_markdown_and_csv(tmp_path, capsys):
    folder = tmp_path / "sweep"
    folder.mkdir()
    table2_results().to_parquet(folder / "results.parquet", index=False)
    assert main(["analyze", str(folder), "--view", "table2"]) == 0
    printed = capsys.readouterr().out
    assert "| hstu_no_rab | 0.0900 (+80.0%) |" in printed
    assert (folder / "table2.md").read_text().startswith("| model | HR@10 | HR@50 |")
    csv = pd.read_csv(folder / "table2.csv")
    assert csv["variant"].tolist() == ["transformer", "hstu_softmax_no_rab", "hstu_no_rab"]
    assert not list(folder.glob("*.tmp")) and not (folder / "report").exists()
    out = tmp_path / "elsewhere"
    write_view("table5", table5_results(), out, ViewOptions(), "x")
    assert (out / "table5.md").is_file() and (out / "table5.csv").is_file()


def test_analyze_view_rejects_an_unknown_view_in_one_line(tmp_path, capsys):
    table2_results().to_parquet(tmp_path / "results.parquet", index=False)
    assert main(["analyze", str(tmp_path), "--view", "table9"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "unknown view 'table9'; views: table2, table4, table5" in error
    assert not (tmp_path / "table9.md").exists()


def test_seed_spread_names_the_largest_range_of_each_column():
    finals = pd.DataFrame({"group": ["a", "a", "b", "b"], "status": ["completed"] * 4,
                           "test/ne": [0.90, 0.93, 0.80, 0.81]})
    stats = seed_means(finals, ["group"], ["test/ne"])
    assert stats["test/ne range"].round(6).tolist() == [0.03, 0.01]
    sentence = seed_spread_sentence(stats, {"NE": "test/ne"})
    assert sentence.startswith("Seed spread (max - min over the up to 2 completed seeds of a row): NE up to 0.03;")
