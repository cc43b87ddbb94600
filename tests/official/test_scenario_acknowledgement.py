"""The feb-2023 scenario's acknowledgement, at small scale and on the sandbox's clock: the time to
acknowledge Vigie measures is the delay the official page was given, within one poll interval."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from detection.models import Incident
from detection.scenarios import SCENARIOS
from official.acknowledgement import acknowledgement_refresh
from official.models import OfficialSource
from official.state import official_source_read

pytestmark = pytest.mark.django_db


def test_the_measured_time_to_acknowledge_is_the_delay_the_page_was_given(platform, sandbox, monkeypatch):
    scale, poll_s = 0.01, 10
    truth = SCENARIOS["feb-2023"].official_ack_s * scale
    clock = [time.time()]
    monkeypatch.setattr(sandbox.server.state, "clock", lambda: clock[0])
    fault_from = datetime.fromtimestamp(clock[0], tz=timezone.utc)
    source = OfficialSource.objects.create(platform=platform, kind="statuspage", url=sandbox.url,
                                           poll_interval_s=poll_s)
    response = sandbox.control("POST", "/_sandbox/faults", json={"kind": "quota_exceeded", "action": "post",
                                                                   "official_ack_s": truth})
    assert response.status_code == 201
    incident = Incident.objects.create(title="Writes failing", platform=platform, started_at=fault_from,
                                       detected_at=fault_from + timedelta(seconds=2))
    for read in range(1, 4):  # Vigie's reads, one poll interval apart
        clock[0] += poll_s
        official_source_read(source_id=source.id, now=fault_from + timedelta(seconds=read * poll_s))
    ack = acknowledgement_refresh(incident_id=incident.id, now=fault_from + timedelta(seconds=3 * poll_s))
    assert ack.official_incident is not None
    assert abs(ack.time_to_acknowledge_s - truth) <= poll_s
    assert ack.time_to_acknowledge_s == pytest.approx(truth, abs=0.01)  # the declared time, read exactly
    assert ack.seen_at == fault_from + timedelta(seconds=poll_s)
