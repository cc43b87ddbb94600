"""An official source reading the sandbox's own status page over real HTTP."""
from __future__ import annotations

import pytest

from official.models import OfficialSource


@pytest.fixture
def official(sandbox):
    """Steer the sandbox's official page."""
    class Official:
        def set(self, **settings):
            response = sandbox.control("POST", "/_sandbox/official", json=settings)
            assert response.status_code == 200, response.text
            return response.json()

        def declare(self, name, components=(), impact="major"):
            response = sandbox.control("POST", "/_sandbox/official/incidents",
                                       json={"name": name, "components": list(components), "impact": impact})
            assert response.status_code == 201, response.text
            return response.json()

        def resolve(self, incident_id=None):
            path = f"/_sandbox/official/incidents/{incident_id}/resolve" if incident_id else "/_sandbox/official/resolve"
            assert sandbox.control("POST", path).status_code == 200

    return Official()


@pytest.fixture
def source(platform, sandbox):
    return OfficialSource.objects.create(platform=platform, kind="statuspage", url=sandbox.url)


@pytest.fixture
def feed_source(platform, sandbox):
    return OfficialSource.objects.create(platform=platform, kind="feed", url=sandbox.url + "/history.atom")
