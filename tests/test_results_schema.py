"""The results contract's own rules: how a column name reads (metric, split, direction, axis) and its column groups."""

from __future__ import annotations

from core import results_schema as schema


def test_metric_names_parse_and_know_their_direction():
    hr = schema.parse_metric("valid/hr@100")
    assert (hr.split, hr.base, hr.cutoff, hr.task, hr.higher_is_better) == ("valid", "hr", 100, None, True)
    ne = schema.parse_metric("test/ne/click")
    assert (ne.split, ne.base, ne.cutoff, ne.task, ne.higher_is_better) == ("test", "ne", None, "click", False)
    assert schema.parse_metric("valid/positive_rate/click") is None  # a metric of unknown direction
    assert schema.parse_metric("model.num_layers") is None
    # with or without the split, as checkpoint selection (``ne``) and the table (``valid/ne``) name them
    assert [schema.higher_is_better(n) for n in ("ne", "valid/ne/click", "train/loss", "log_pplx", "ndcg@10",
                                                 "valid/hr@10", "auc/click")] == [False] * 4 + [True] * 3


def test_columns_are_told_apart_by_name():
    columns = ["step", "data.task", "model.num_layers", "valid/ne", "test/hr@10", "train/loss", "oracle/ne",
               "progressive/ne", "data.max_seq_len"]
    assert schema.axis_columns(columns) == ["model.num_layers", "data.max_seq_len"]
    assert schema.sorted_metric_columns(columns) == ["train/loss", "valid/ne", "oracle/ne", "progressive/ne",
                                                     "test/hr@10"]
    assert not schema.is_metric_column("model.num_layers") and not schema.is_metric_column("valid")


def test_column_groups_are_consistent():
    numbers = [c for c in schema.FIXED_COLUMNS if schema.COLUMN_KINDS[c] == schema.NUMBER]
    assert sorted(numbers) == sorted(schema.INTEGER_COLUMNS + schema.FLOAT_COLUMNS)
    assert set(schema.FIXED_COLUMNS) - set(schema.REQUIRED_COLUMNS) == {schema.GROUP, *schema.TOTAL_COLUMNS}
    assert set(schema.STATUSES) == set(schema.USABLE_STATUSES) | set(schema.FAILED_STATUSES)
    assert set(schema.FINISHED_STATUSES) == set(schema.STATUSES) - {schema.RUNNING}
    assert schema.pf_days(8.64e19) == 1.0
