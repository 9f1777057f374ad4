"""A dataset too small for a meaningful split is never split silently."""

from __future__ import annotations

from microemo.training.data import MIN_ROWS_FOR_SPLIT, choose_test_fraction, seeded_split


def test_a_two_row_dataset_trains_on_both_rows_and_says_there_is_no_held_out_set():
    fraction, warning = choose_test_fraction(2, None)
    split = seeded_split(["a", "b"], fraction, seed=0)
    assert split == {"train": ["a", "b"], "test": []}
    assert "no held-out set" in warning and "--test_fraction" in warning


def test_every_size_under_the_threshold_keeps_all_rows_by_default():
    for rows in range(1, MIN_ROWS_FOR_SPLIT):
        fraction, warning = choose_test_fraction(rows, None)
        assert fraction == 0.0 and warning, rows
        assert seeded_split([str(i) for i in range(rows)], fraction, seed=3)["test"] == []


def test_an_explicit_share_on_few_rows_is_honoured_with_a_warning_that_counts_the_held_out_rows():
    fraction, warning = choose_test_fraction(6, 0.2)
    assert fraction == 0.2
    assert "holds out 1 of them" in warning and "only 6 rows" in warning


def test_enough_rows_split_quietly_with_the_default_share():
    assert choose_test_fraction(MIN_ROWS_FOR_SPLIT, None) == (0.2, None)
    assert choose_test_fraction(50, 0.1) == (0.1, None)
    assert choose_test_fraction(4, 0.0) == (0.0, None)
