"""One function judges a refused write for every adapter (issue 16, point 4): writes failing while
reads work is read_only whatever the shape (any 5xx, HTML or JSON, a 403/422 saying read-only);
a token refused in any shape (401, a 400 or 403 naming the token) is auth."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from platforms.adapters import bluesky, mastodon, x
from platforms.adapters.base import refusal_class, token_refused
from platforms.http import HttpResult
from probes.models import FailureClass

CLASSIFIERS = [mastodon.classify, bluesky.classify, x.classify]
HTML_500 = b"<!DOCTYPE html><html><head><title>Server Error</title></head><body><h1>Server Error</h1></body></html>"


def answer(status: int, body: bytes | dict, content_type: str = "application/json") -> HttpResult:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResult("POST", "/write", status, {"content-type": content_type}, data, 10)


@pytest.mark.parametrize("result", [
    answer(401, {"error": "The access token is invalid"}),
    answer(400, b"Invalid Bearer token", "text/html; charset=utf-8"),  # Takahe 0.11
    answer(403, {"error": "invalid_token", "error_description": "The access token was revoked"}),
])
@pytest.mark.parametrize("classify", CLASSIFIERS)
def test_a_token_refused_in_any_shape_is_auth_on_every_platform(classify, result):
    assert token_refused(result)
    assert classify(result) == FailureClass.AUTH


@pytest.mark.parametrize("result", [
    answer(500, HTML_500, "text/html"), answer(500, {"error": "boom"}), answer(502, b"Bad gateway", "text/html"),
    answer(503, {"error": "This server is in read-only mode."}),
    answer(403, {"error": "The server is read-only"}), answer(422, {"error": "Read only mode"}),
])
def test_writes_failing_while_reads_work_is_read_only_in_any_shape(result):
    assert refusal_class(result, reads_work=True) == FailureClass.READ_ONLY


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_everything_failing_is_a_server_error(status):
    assert refusal_class(answer(status, HTML_500, "text/html"), reads_work=False) == FailureClass.SERVER_ERROR
    assert refusal_class(answer(status, {}), reads_work=None) == FailureClass.SERVER_ERROR


def test_a_plain_403_is_a_refused_action_or_a_locked_out_account():
    assert refusal_class(answer(403, {"error": "not allowed"}), reads_work=True) == FailureClass.REJECTED
    assert refusal_class(answer(403, {"error": "not allowed"}), reads_work=False) == FailureClass.AUTH
    assert refusal_class(answer(422, {"error": "Text can't be blank"}), reads_work=True) == FailureClass.REJECTED


@given(status=st.integers(400, 599), body=st.binary(max_size=200), reads=st.sampled_from([True, False, None]))
def test_the_judge_always_answers_a_known_class(status, body, reads):
    result = answer(status, body, "text/html")
    assert refusal_class(result, reads_work=reads) in FailureClass.values
    for classify in CLASSIFIERS:
        assert classify(result) in FailureClass.values
