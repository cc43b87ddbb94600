"""kombu's Redis transport, with a worker that survives losing Redis while it holds a message.

When the broker connection drops, Celery's consumer collects the broken connection, which detaches
the transport from the connection's settings (`transport.client = None`), and then closes the
connection. Closing its channel drops the channel's pool of Redis connections and then gives back
the messages delivered but not acknowledged yet (`restore_unacked`): that needs a new pool, built
from the settings just detached — `AttributeError: 'NoneType' object has no attribute 'hostname'`.
It is not a connection error, so it escapes, and the worker stops for good ("Unrecoverable
error"). It happens whenever a task acknowledged late (every run: probes.tasks.run_batch) is held
by the worker at the moment Redis goes away: in the chaos run (bench/chaos.py, Redis stopped for a
minute), both locations' workers died in about half the runs, and no run was made afterwards.

Here the transport keeps the connection's settings. Giving the messages back then
fails as it should with Redis away — a connection error, which kombu and Celery expect and ignore
while closing — and the messages stay in Redis' set of unacknowledged ones (written there on
delivery), from which any consumer moves them back to their queue once the visibility timeout has
passed (`restore_visible`), as for a worker killed outright. A run given back after its slot
expires and is dropped, logged and counted (probes.tasks.run_expired). A task that finishes after
Redis is back acknowledges its message through the same settings, so it is not delivered again.
"""
from __future__ import annotations

from kombu.transport import redis


class Transport(redis.Transport):
    """The transport keeps the connection settings it was made with: Connection._do_close_transport
    detaches them (`client = None`, to break a reference cycle, which the garbage collector breaks
    anyway) while channels may still need them to finish closing."""

    @property
    def client(self):
        return self.__dict__.get("_client")

    @client.setter
    def client(self, value) -> None:
        if value is not None:
            self.__dict__["_client"] = value
