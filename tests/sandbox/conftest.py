"""Fixtures: a sandbox server on a free port in a thread, and small HTTP clients for its accounts."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
import requests

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, make_server

PROBER_TOKEN = "test-prober-token"
PARTNER_TOKEN = "test-partner-token"
CONTROL_TOKEN = "test-control-token"


class Client:
    """A requests session bound to the sandbox URL, a bearer token and a User-Agent."""

    def __init__(self, base: str, token: str | None, user_agent: str = "Vigie/0.1 (probe; location=sacramento)"):
        self.base = base
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return self.session.request(method, self.base + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def toot(self, text: str = "Vigie probe", visibility: str = "public", **extra: Any) -> dict:
        response = self.post("/api/v1/statuses", data={"status": text, "visibility": visibility, **extra})
        assert response.status_code == 200, response.text
        return response.json()


def start(config: SandboxConfig) -> SandboxServer:
    server = make_server("127.0.0.1", 0, config=config)
    server.start()
    return server


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig(prober_token=PROBER_TOKEN, partner_token=PARTNER_TOKEN, control_token=CONTROL_TOKEN)


@pytest.fixture
def server(config: SandboxConfig) -> Iterator[SandboxServer]:
    srv = start(config)
    yield srv
    srv.stop()


@pytest.fixture
def prober(server: SandboxServer) -> Client:
    return Client(server.url, PROBER_TOKEN)


@pytest.fixture
def partner(server: SandboxServer) -> Client:
    return Client(server.url, PARTNER_TOKEN)


@pytest.fixture
def control(server: SandboxServer) -> Client:
    return Client(server.url, CONTROL_TOKEN, user_agent="vigie-tests")


@pytest.fixture
def add_fault(control: Client):
    """Inject a fault through the control endpoint; returns its JSON."""

    def add(kind: str, action: str, **extra: Any) -> dict:
        response = control.post("/_sandbox/faults", json={"kind": kind, "action": action, **extra})
        assert response.status_code == 201, response.text
        return response.json()

    return add
