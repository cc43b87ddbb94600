"""The embedded broker never shows a consumer a message that is still being written."""
from __future__ import annotations

import os

from kombu import Connection

from vigie import broker


def test_a_message_appears_in_the_queue_folder_only_once_complete(tmp_path, monkeypatch):
    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    seen_while_writing = []
    encode = broker.str_to_bytes

    def spying(text):
        seen_while_writing.append(sorted(n for n in os.listdir(folders["queue"]) if n.endswith(".msg")))
        return encode(text)

    monkeypatch.setattr(broker, "str_to_bytes", spying)
    options = {"data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
               "processed_folder": str(folders["processed"]), "control_folder": str(folders["control"])}
    with Connection(transport="vigie.broker:Transport", transport_options=options) as connection:
        queue = connection.SimpleQueue("probes.atlanta")
        queue.put({"run": 1})
        queue.put({"run": 2})
        # Each write sees only the messages finished before it: none, then the first.
        assert [len(names) for names in seen_while_writing] == [0, 1]
        # Both arrive whole (within one millisecond their order is the file names', as in kombu).
        assert sorted(queue.get(timeout=2).payload["run"] for _ in range(2)) == [1, 2]
        assert not [n for n in os.listdir(folders["queue"]) if n.startswith(".put-")]  # nothing left aside
        queue.close()


def test_the_embedded_default_uses_it():
    import vigie.celery  # noqa: F401  (registers the transport)
    from kombu.transport import resolve_transport

    assert resolve_transport("filesystem") is broker.Transport
