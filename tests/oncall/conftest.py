from tests.statuspage.conftest import history  # noqa: F401 (a fixture: the management API and metrics read it)
