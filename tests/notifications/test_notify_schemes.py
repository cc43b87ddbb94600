"""Apprise's non-HTTP schemes go through the network guard too (issue 17, finding 4): mailto://
(SMTP) connects are checked against loopback and private addresses, only the schemes in
VIGIE_NOTIFY_SCHEMES are accepted, and socket failures read the same whatever happened (no
port-scan oracle)."""
from __future__ import annotations

import socket
import threading
import uuid

import pytest
from django.core.management import CommandError, call_command

from notifications import tasks
from notifications.admin import ChannelForm
from notifications.models import Channel, Delivery
from notifications.transports import UNIFORM_FAILURE, apprise_scheme_problem
from oncall.config import ConfigError, config_load
from tests.notifications.test_delivery import make_event


class Listener:
    """A TCP port that records whether anyone connected, and answers with a non-SMTP banner."""

    def __init__(self, banner: bytes = b"HTTP/1.1 400 Bad Request\r\n\r\n"):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.banner = banner
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                conn.sendall(self.banner)
            finally:
                conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def deliver_to(url: str) -> Delivery:
    Channel.objects.create(name="Mail", kind=Channel.Kind.APPRISE, url=url)
    delivery = make_event(key=f"incident-update:{uuid.uuid4().hex[:12]}").deliveries.get()
    tasks.deliver(delivery.id)
    delivery.refresh_from_db()
    return delivery


@pytest.mark.django_db
def test_a_mailto_target_on_loopback_is_refused_before_any_connect(enqueued, settings, listener):
    settings.VIGIE_ALLOW_PRIVATE_TARGETS = []
    delivery = deliver_to(f"mailto://vigie:pw@127.0.0.1:{listener.port}?to=ops@example.org&from=vigie@example.org")
    assert delivery.status == Delivery.Status.FAILED
    assert "SSRF guard" in delivery.last_error and "loopback" in delivery.last_error
    assert listener.connections == 0


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "192.168.1.1", "[::1]"])
def test_a_mailto_target_on_a_private_address_is_refused(enqueued, settings, host):
    settings.VIGIE_ALLOW_PRIVATE_TARGETS = []
    delivery = deliver_to(f"mailto://vigie:pw@{host}:25?to=ops@example.org&from=vigie@example.org")
    assert delivery.status == Delivery.Status.FAILED and "SSRF guard" in delivery.last_error


@pytest.mark.django_db
def test_socket_failures_read_the_same_for_a_closed_and_an_open_port(enqueued, listener):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    first = deliver_to(f"mailto://vigie:pw@127.0.0.1:{closed_port}?to=ops@example.org&from=vigie@example.org")
    Channel.objects.all().delete()
    second = deliver_to(f"mailto://vigie:pw@127.0.0.1:{listener.port}?to=ops@example.org&from=vigie@example.org")
    assert listener.connections >= 1  # loopback is allowed in tests: the open port was reached
    assert first.last_error == second.last_error == UNIFORM_FAILURE


@pytest.mark.django_db
def test_a_scheme_outside_the_allow_list_is_refused_everywhere(enqueued, settings, monkeypatch):
    assert "VIGIE_NOTIFY_SCHEMES" in apprise_scheme_problem("syslog://127.0.0.1")
    assert apprise_scheme_problem("mailtos://u:p@smtp.example.org") is None
    delivery = deliver_to("rsyslog://127.0.0.1:514")
    assert delivery.status == Delivery.Status.FAILED and "VIGIE_NOTIFY_SCHEMES" in delivery.last_error
    form = ChannelForm(data={"name": "Log", "kind": "apprise", "url": "syslog://local", "enabled": True,
                             "event_kinds": []})
    assert not form.is_valid() and "not allowed" in str(form.errors["url"])
    with pytest.raises(CommandError, match="VIGIE_NOTIFY_SCHEMES"):
        call_command("notify", "add", "Log", "apprise", "rsyslog://10.0.0.1")
    with pytest.raises(ConfigError, match="VIGIE_NOTIFY_SCHEMES"):
        monkeypatch.setenv("VIGIE_TEST_SYSLOG_URL", "syslog://local")
        config_load('channels:\n  - name: Log\n    kind: apprise\n    url: "${VIGIE_TEST_SYSLOG_URL}"\n')
    settings.VIGIE_NOTIFY_SCHEMES = frozenset({"mailto"})
    assert apprise_scheme_problem("json://example.org") is not None
