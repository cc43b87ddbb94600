"""Every on-call number reads as a sentence: no "server_error ×1", no "0 failed runs in a row"."""
from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from probes.models import FailureClass, PlacementState
from oncall.selectors import matrix_sentence
from oncall.templatetags.oncall_words import failure_causes, failure_streak, failures_in_a_row

ODD = re.compile(r"×|\b0 failed|\b1 runs\b|\b1 failures\b|_")


def test_evidence_counts_read_as_a_sentence():
    assert failure_causes({"server_error": 1}) == "Server errors at 1 probe location."
    assert failure_causes({"quota_exceeded": 3, "timeout": 1}) == \
        "Writes refused with a daily-limit error at 3 probe locations; requests time out at 1 probe location."
    assert failure_causes({}) == ""


@given(st.dictionaries(st.sampled_from([c.value for c in FailureClass]), st.integers(1, 500), min_size=1))
def test_any_evidence_is_a_sentence_without_codes_or_signs(classes):
    text = failure_causes(classes)
    assert text[0].isupper() and text.endswith(".")
    assert not ODD.search(text), text


def placement(n: int, state: str = "failing", since=None):
    return SimpleNamespace(consecutive_failures=n, state=state, streak_started_at=since)


def test_a_failing_location_with_a_success_last_says_so_instead_of_zero_failures():
    text = failure_streak(placement(0))
    assert "0" not in text and "last run succeeded" in text and "failing" in text


@given(st.integers(0, 10_000), st.sampled_from([s.value for s in PlacementState]))
def test_any_streak_is_a_sentence(n, state):
    for text in (failure_streak(placement(n, state)), failures_in_a_row(n) or "x."):
        assert not ODD.search(text), text
    assert failure_streak(placement(n, state)).endswith(".")
    assert (str(n) in failure_streak(placement(n, state))) == (n > 1)


@given(st.dictionaries(st.sampled_from(list(PlacementState)), st.integers(0, 300)), st.integers(0, 300))
def test_the_matrix_summary_is_a_sentence(states, failures):
    text = matrix_sentence(Counter(states), failures)
    assert text.endswith(".") and not ODD.search(text), text
    assert " 0 " not in f" {text} "
