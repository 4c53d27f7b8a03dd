"""The overlap checks of tests/support/serving.py must catch overlaps and accept hand-overs."""

from __future__ import annotations

import pytest

from tests.support.serving import Answer, PrimaryPoller, assert_no_overlap


def test_assert_no_overlap_accepts_touching_intervals() -> None:
    assert_no_overlap([(0, 1), (5, 6)], [(1, 2)], [])


def test_assert_no_overlap_reports_overlaps() -> None:
    with pytest.raises(AssertionError, match="overlap"):
        assert_no_overlap([(0, 1), (5, 6)], [(5.5, 7)])


def poller_with(answers: dict[str, list[tuple[float, float, int | None]]]) -> PrimaryPoller:
    poller = PrimaryPoller(list(answers))
    for url, rows in answers.items():
        poller._answers[url] = [Answer(url, s, r, status) for s, r, status in rows]
    return poller


def test_poller_accepts_a_clean_handover() -> None:
    poller = poller_with(
        {
            "a": [(0.0, 0.01, 200), (0.1, 0.11, 200), (0.2, 0.21, 503), (0.3, 0.31, 503)],
            "b": [(0.0, 0.01, 503), (0.1, 0.11, 503), (0.2, 0.21, 503), (0.3, 0.31, 200)],
        }
    )
    poller.check_no_overlap()


def test_poller_accepts_uncertain_windows() -> None:
    # One answer each, at overlapping windows: either may have come first.
    poller = poller_with({"a": [(0.0, 0.2, 200)], "b": [(0.1, 0.3, 200)]})
    poller.check_no_overlap()


def test_poller_reports_a_200_inside_anothers_certain_span() -> None:
    poller = poller_with(
        {
            "a": [(0.0, 0.01, 200), (0.1, 0.11, 200), (0.2, 0.21, 200), (0.3, 0.31, None)],
            "b": [(0.05, 0.06, 503), (0.15, 0.16, 200)],
        }
    )
    with pytest.raises(AssertionError, match="two primaries"):
        poller.check_no_overlap()
