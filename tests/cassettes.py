"""Replay recorded real HTTP exchanges (VCR.py cassettes) at the `requests` seam with `responses`."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import responses
import yaml

RECORDED = Path(__file__).parent / "fixtures" / "recorded"


def interactions(name: str) -> list[dict]:
    return yaml.safe_load((RECORDED / name).read_text())["interactions"]


def replay(rsps: responses.RequestsMock, base_url: str, items: list[dict]) -> None:
    """Register each recorded response under `base_url`, matched on method and path (a trailing
    slash either way, as Mastodon routes both), in recorded order."""
    for item in items:
        request, response = item["request"], item["response"]
        path = urlsplit(request["uri"]).path.rstrip("/")
        headers = [(k, v) for k, values in response["headers"].items() for v in values
                   if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")]
        rsps.add(
            request["method"],
            re.compile(re.escape(base_url + path) + r"/?(\?.*)?$"),
            body=response["body"]["string"],
            status=response["status"]["code"],
            headers=headers,
        )


def recorded(name: str, index: int) -> dict:
    return interactions(name)[index]
