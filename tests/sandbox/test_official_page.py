"""The sandbox's official status page: Statuspage v2 JSON and Atom that follow the faults after a
delay (or never), steered by `manage.py sandbox official …` and a fault's --official-ack."""
from __future__ import annotations

from io import StringIO

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from .conftest import CONTROL_TOKEN


@pytest.fixture
def run(server):
    def run_command(*args: str) -> str:
        out = StringIO()
        call_command("sandbox", *args, "--url", server.url, "--token", CONTROL_TOKEN, stdout=out)
        return out.getvalue()

    return run_command


def get(server, path):
    response = requests.get(server.url + path, timeout=5)
    assert response.status_code == 200, response.text
    return response


def test_a_quiet_page_says_all_systems_operational_in_every_document(server):
    assert get(server, "/api/v2/status.json").json()["status"] == {"indicator": "none",
                                                                   "description": "All Systems Operational"}
    summary = get(server, "/api/v2/summary.json").json()
    assert {c["status"] for c in summary["components"]} == {"operational"}
    assert summary["incidents"] == [] and summary["scheduled_maintenances"] == []
    assert get(server, "/api/v2/incidents.json").json()["incidents"] == []
    assert "<feed" in get(server, "/history.atom").text


def test_a_fault_acknowledged_after_zero_seconds_is_declared_then_resolved(run, server):
    run("fault", "set", "quota_exceeded", "--action", "post", "--official-ack", "0s")
    [incident] = get(server, "/api/v2/incidents/unresolved.json").json()["incidents"]
    assert incident["status"] == "investigating" and [c["name"] for c in incident["components"]] == ["Posting"]
    assert get(server, "/api/v2/status.json").json()["status"]["indicator"] == "major"
    run("fault", "clear")
    assert get(server, "/api/v2/incidents/unresolved.json").json()["incidents"] == []
    assert get(server, "/api/v2/incidents.json").json()["incidents"][0]["status"] == "resolved"
    assert "Resolved</strong> - This incident has been resolved." in get(server, "/history.atom").text.replace(
        "&lt;", "<").replace("&gt;", ">")


def test_a_platform_that_never_acknowledges_stays_green(run, server):
    output = run("official", "never")
    assert "Acknowledges faults: never" in output
    run("fault", "set", "read_only", "--action", "*")
    assert get(server, "/api/v2/status.json").json()["status"]["indicator"] == "none"


def test_an_incident_probes_cannot_see_can_be_declared_and_resolved(run, server):
    output = run("official", "declare", "Billing delays", "--component", "Timeline", "--impact", "minor")
    assert output.startswith("Official incident ") and "Billing delays (Timeline)" in output
    statuses = {c["name"]: c["status"] for c in get(server, "/api/v2/components.json").json()["components"]}
    assert statuses["Timeline"] == "degraded_performance" and statuses["Posting"] == "operational"
    assert "Resolved 1 official incident(s)." in run("official", "resolve")
    assert get(server, "/api/v2/status.json").json()["status"]["indicator"] == "none"


def test_the_page_can_answer_badly_and_mistakes_are_explained(run, server):
    run("official", "answer", "error")
    assert requests.get(server.url + "/api/v2/status.json", timeout=5).status_code == 503
    with pytest.raises(CommandError, match="answer: one of ok, error, html, garbage, slow:<ms>"):
        run("official", "answer", "maybe")
    with pytest.raises(CommandError, match="components: Billing not on this page"):
        run("official", "declare", "x", "--component", "Billing")
    run("official", "clear")
    assert requests.get(server.url + "/api/v2/status.json", timeout=5).status_code == 200


def test_the_api_faults_do_not_reach_the_official_page(run, server):
    run("fault", "set", "drop", "--action", "*")
    assert get(server, "/api/v2/status.json").json()["status"]["indicator"] == "none"
