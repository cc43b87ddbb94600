"""The fault tests run one after another in a single test process under `make test` (pytest-xdist,
`--dist loadgroup`): each starts its own workers, beat, web server, Redis or PostgreSQL cluster and
waits on them with deadlines, so two side by side would only slow each other past those deadlines."""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks to group the tests
def pytest_collection_modifyitems(items):
    for item in items:
        if Path(item.path).resolve().parent == HERE:
            item.add_marker(pytest.mark.xdist_group("faults"))
