"""A platform's deeply nested JSON (issue 17, finding 7) is a bad_response with its HTTP status
kept, not an adapter crash with a traceback on every run."""
from __future__ import annotations

import json
import logging

import pytest
import responses
from hypothesis import given, settings as hsettings, strategies as st

from platforms.errors import ProbeError
from platforms.http import MAX_JSON_DEPTH, HttpResult, TooDeep, json_loads_bounded
from tests.platforms.adapters.test_x import BASE, location, run, x_platform  # noqa: F401

DEEP = '{"data": ' + "[" * 5000 + "]" * 5000 + "}"


def result(body: str, status: int = 200) -> HttpResult:
    return HttpResult(method="GET", path="/2/users/me", status=status, headers={"content-type": "application/json"},
                      body=body.encode(), elapsed_ms=5)


def test_nesting_up_to_the_limit_parses_and_beyond_is_refused():
    assert json_loads_bounded("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(TooDeep):
        json_loads_bounded("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    # Brackets inside strings are text, not nesting.
    assert json_loads_bounded(json.dumps({"text": "[" * 1000 + '\\"{' * 100})) == {"text": "[" * 1000 + '\\"{' * 100}


@hsettings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda inner: st.lists(inner) |
                    st.dictionaries(st.text(), inner), max_leaves=30))
def test_bounded_parsing_agrees_with_json_on_ordinary_documents(document):
    text = json.dumps(document)
    assert json_loads_bounded(text) == json.loads(text)


def test_a_deep_body_is_a_bad_response_with_its_status():
    with pytest.raises(ProbeError) as caught:
        result(DEEP, 200).json()
    assert caught.value.failure_class == "bad_response"
    assert "answered 200" in caught.value.message and f"deeper than {MAX_JSON_DEPTH}" in caught.value.message
    assert caught.value.result.status == 200
    # Reading the error text of a deep error body does not raise either.
    assert result(DEEP, 503).error_text().startswith('{"data"')


@pytest.mark.django_db
def test_a_run_answered_with_deep_json_is_recorded_as_bad_response_without_a_traceback(x_platform, location,
                                                                                     caplog):
    with responses.RequestsMock() as rsps, caplog.at_level(logging.WARNING):
        rsps.add("GET", BASE + "/2/users/me", body=DEEP, status=200, content_type="application/json")
        row = run(x_platform, "read", location)
    assert (row.outcome, row.failure_class) == ("failure", "bad_response")
    assert "answered 200" in row.error
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


JSON_SHAPES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                               st.sampled_from(["error", "detail", "message", "title", "errors", "data", "x"]) | st.text(),
                               inner, max_size=4), max_leaves=40)


@hsettings(max_examples=300, deadline=None)
@given(shape=JSON_SHAPES, status=st.sampled_from([200, 400, 401, 403, 422, 429, 500, 503]),
       nesting=st.integers(min_value=0, max_value=300))
def test_any_json_shape_or_depth_gives_an_error_text_and_a_classified_failure(shape, status, nesting):
    body = "[" * nesting + json.dumps(shape) + "]" * nesting
    text = result(body, status).error_text()
    assert isinstance(text, str) and len(text) <= 300
    try:
        result(body, status).json()
    except ProbeError as error:
        assert error.failure_class == "bad_response" and error.result.status == status
