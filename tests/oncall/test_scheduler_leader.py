"""Who schedules is visible on the on-call side: the dashboard names the lease holder, and /metrics
exports it as vigie_scheduler_leader (0 with an empty holder when no scheduler leads)."""
from __future__ import annotations

import pytest

from probes.lease import lease_hold, lease_release

TOKEN = "metrics-token-for-leader-tests"


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("oncall", password="x" * 20, is_staff=True))
    return client


@pytest.fixture
def metrics(settings, client):
    settings.VIGIE_METRICS_ENABLED = True
    settings.VIGIE_METRICS_TOKEN = TOKEN

    def leader_lines() -> list[str]:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        return [line for line in response.content.decode().splitlines() if line.startswith("vigie_scheduler_leader")]
    return leader_lines


@pytest.mark.django_db
def test_the_dashboard_and_metrics_name_the_leading_scheduler_and_say_when_none_leads(staff_client, metrics):
    assert "No scheduler holds the lease" in staff_client.get("/oncall/").content.decode()
    assert metrics() == ['vigie_scheduler_leader{holder=""} 0.0']

    assert lease_hold("machine-a:4242:abc123", seconds=60)
    assert not lease_hold("machine-b:77:def456", seconds=60)
    page = staff_client.get("/oncall/").content.decode()
    assert "machine-a:4242:abc123" in page and "machine-b" not in page
    assert metrics() == ['vigie_scheduler_leader{holder="machine-a:4242:abc123"} 1.0']

    lease_release("machine-a:4242:abc123")
    assert metrics() == ['vigie_scheduler_leader{holder=""} 0.0']
