"""The sandbox's OAuth: app registration, the authorization page, the token endpoint, over real HTTP."""
from __future__ import annotations

import base64
import re
import time

import pytest

from .conftest import PARTNER_TOKEN, PROBER_TOKEN, Client

OOB = "urn:ietf:wg:oauth:2.0:oob"
CODE = re.compile(r'<input class="oauth-code" readonly type="text" value="([^"]+)">')


def register(server, scopes: str = "read write follow", **extra) -> dict:
    response = Client(server.url, None).post("/api/v1/apps", data={
        "client_name": "Vigie", "redirect_uris": OOB, "scopes": scopes, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def authorize(server, app: dict, scope: str = "read write follow", **extra):
    return Client(server.url, None).get("/oauth/authorize", params={
        "response_type": "code", "client_id": app["client_id"], "redirect_uri": OOB, "scope": scope, **extra})


def code_of(page) -> str:
    assert page.status_code == 200, page.text
    found = CODE.search(page.text)
    assert found, page.text
    return found.group(1)


def exchange(server, app: dict, code: str, **override):
    return Client(server.url, None).post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": app["client_id"],
        "client_secret": app["client_secret"], "redirect_uri": OOB, **override})


def test_an_app_registers_with_its_scopes_and_gets_client_credentials(server):
    app = register(server, website="https://vigie.example")
    assert app["name"] == "Vigie" and app["website"] == "https://vigie.example"
    assert app["scopes"] == ["read", "write", "follow"]
    assert app["redirect_uris"] == [OOB] and app["redirect_uri"] == OOB
    assert len(app["client_id"]) >= 32 and len(app["client_secret"]) >= 32
    assert app["client_id"] != app["client_secret"]
    assert app["client_secret_expires_at"] == 0
    assert register(server)["client_id"] != app["client_id"]


@pytest.mark.parametrize("form,error", [
    ({"client_name": "Vigie", "redirect_uris": OOB, "scopes": "read wirte"},
     "Validation failed: Scopes doesn't match configured on the server."),
    ({"client_name": " ", "redirect_uris": OOB}, "Validation failed: Name can't be blank"),
    ({"client_name": "Vigie", "redirect_uris": "/callback"},
     "Validation failed: Redirect URI must be an absolute URI."),
    ({"client_name": "Vigie"}, "Validation failed: Redirect URI can't be blank"),
])
def test_registration_refuses_what_mastodon_refuses_with_422(server, form, error):
    response = Client(server.url, None).post("/api/v1/apps", data=form)
    assert response.status_code == 422
    assert response.json() == {"error": error}


def test_granular_scopes_register(server):
    assert register(server, scopes="read:accounts read:statuses write:statuses write:follows")["scopes"] == [
        "read:accounts", "read:statuses", "write:statuses", "write:follows"]


def test_authorize_approves_as_the_prober_and_shows_the_code_on_a_page(server):
    page = authorize(server, register(server))
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-store"
    assert "@vigie_prober" in page.text and "read write follow" in page.text
    assert "Copy this authorization code and paste it to the application." in page.text
    assert len(code_of(page)) >= 32


def test_the_code_is_exchanged_once_for_the_approving_accounts_token(server):
    app = register(server)
    code = code_of(authorize(server, app))
    first = exchange(server, app, code)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["access_token"] == PROBER_TOKEN
    assert body["token_type"] == "Bearer" and body["scope"] == "read write follow"
    assert abs(body["created_at"] - time.time()) < 60
    assert first.headers["Cache-Control"] == "no-store"
    me = Client(server.url, body["access_token"]).get("/api/v1/accounts/verify_credentials")
    assert me.status_code == 200 and me.json()["username"] == "vigie_prober"

    again = exchange(server, app, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.json()["error_description"].startswith("The provided authorization grant is invalid")


def test_login_names_the_account_that_approves(server):
    app = register(server)
    code = code_of(authorize(server, app, login="vigie_partner"))
    assert exchange(server, app, code).json()["access_token"] == PARTNER_TOKEN


def test_a_narrower_approval_grants_only_those_scopes(server):
    app = register(server)
    code = code_of(authorize(server, app, scope="read"))
    assert exchange(server, app, code).json()["scope"] == "read"


@pytest.mark.parametrize("override,status,error", [
    ({"code": "not-a-code"}, 400, "invalid_grant"),
    ({"redirect_uri": "https://elsewhere.example/cb"}, 400, "invalid_grant"),
    ({"client_secret": "wrong"}, 401, "invalid_client"),
    ({"client_id": "nobody"}, 401, "invalid_client"),
    ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ({"code": ""}, 400, "invalid_request"),
])
def test_a_bad_token_request_is_refused_with_an_oauth_error(server, override, status, error):
    app = register(server)
    code = code_of(authorize(server, app))
    response = exchange(server, app, override.pop("code", code), **override)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert exchange(server, app, code).status_code == 200  # a refused attempt did not use up the code


def test_a_code_of_another_app_is_invalid_grant(server):
    mine, theirs = register(server), register(server)
    code = code_of(authorize(server, theirs))
    assert exchange(server, mine, code).json()["error"] == "invalid_grant"


def test_client_credentials_may_come_by_http_basic(server):
    app = register(server)
    code = code_of(authorize(server, app))
    basic = base64.b64encode(f"{app['client_id']}:{app['client_secret']}".encode()).decode()
    response = Client(server.url, None).post("/oauth/token", headers={"Authorization": f"Basic {basic}"},
                                             data={"grant_type": "authorization_code", "code": code,
                                                   "redirect_uri": OOB})
    assert response.status_code == 200, response.text
    assert response.json()["access_token"] == PROBER_TOKEN


def test_a_code_expires_after_ten_minutes(server):
    app = register(server)
    code = code_of(authorize(server, app))
    server.state.clock = lambda: time.time() + 601
    try:
        response = exchange(server, app, code)
    finally:
        server.state.clock = time.time
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize("params,status,error", [
    ({"scope": "read write follow push"}, 400, "invalid_scope"),  # more than the app registered
    ({"client_id": "nobody"}, 401, "invalid_client"),
    ({"redirect_uri": "https://elsewhere.example/cb"}, 400, "invalid_redirect_uri"),
    ({"response_type": "token"}, 400, "unsupported_response_type"),
    ({"login": "nobody"}, 403, "access_denied"),
])
def test_authorize_shows_an_error_page_for_a_bad_request(server, params, status, error):
    app = register(server)
    page = authorize(server, app, **params)
    assert page.status_code == status
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert f"{error}:" in page.text
    assert not CODE.search(page.text)


def test_the_page_escapes_what_the_app_registered(server):
    app = register(server, client_name="<script>alert(1)</script>")
    page = authorize(server, app)
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_a_web_redirect_gets_the_code_in_its_query(server):
    app = register(server, redirect_uris="https://app.example/callback")
    page = Client(server.url, None).get("/oauth/authorize", allow_redirects=False, params={
        "response_type": "code", "client_id": app["client_id"], "redirect_uri": "https://app.example/callback"})
    assert page.status_code == 302
    location = page.headers["Location"]
    assert location.startswith("https://app.example/callback?code=")
    response = exchange(server, app, location.split("code=", 1)[1], redirect_uri="https://app.example/callback")
    assert response.json()["scope"] == "read"  # no scope asked: the server's default


def test_reset_forgets_apps_and_codes(server, control):
    app = register(server)
    code = code_of(authorize(server, app))
    assert control.post("/_sandbox/reset").status_code == 200
    assert exchange(server, app, code).json()["error"] == "invalid_client"
