"""The embedded broker: kombu's filesystem transport, with atomic writes and redelivery.

kombu creates a message's file and then writes it, so a worker listing the folder in between
takes an empty message, fails to decode it and dies (seen as "Unrecoverable error:
JSONDecodeError" when several processes share the folder). Here a message is written under a name
no consumer matches and renamed into place once complete; a rename within one folder is atomic.

kombu also deletes a message's file as soon as a worker takes it, so a worker killed before it
acknowledged the message (kill -9, the machine lost) loses it. Here, with `unacked_folder` set, a
worker takes a message by renaming it into that folder (the rename is the claim: of two workers
only one succeeds), deletes it there on acknowledgement, and any worker moves a message back to
its queue once it has been taken longer than `visibility_timeout` seconds ago — what Redis does
with the same option. A task still running past that time would run twice: keep it above the
longest task time limit.
"""
from __future__ import annotations

import os
import tempfile
import time
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.transport.virtual.base import Empty
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

# How often a consumer looks for messages whose worker is presumed dead (a folder listing).
RESTORE_CHECK_EVERY_S = 1.0
DEFAULT_VISIBILITY_TIMEOUT = 3600  # Redis' default


class QoS(virtual.QoS):
    def ack(self, delivery_tag):
        self.channel._unacked_forget(delivery_tag)
        super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        super().reject(delivery_tag, requeue=requeue)  # a requeue goes through Channel._restore
        self.channel._unacked_forget(delivery_tag)


class Channel(filesystem.Channel):
    QoS = QoS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._unacked_files: dict[str, str] = {}  # delivery tag -> its file in the unacked folder
        self._no_ack_queues: set[str] = set()  # consumed without acknowledgements (replies, broadcasts)
        self._next_restore_check = 0.0

    @cached_property
    def unacked_folder(self) -> str | None:
        return self.transport_options.get("unacked_folder")

    @cached_property
    def visibility_timeout(self) -> float:
        return float(self.transport_options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT))

    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        # ".put-…" has no "<queue>.msg" after its first dot, so no consumer picks it up half-written.
        handle, temporary = tempfile.mkstemp(dir=self.data_folder_out, prefix=".put-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.rename(temporary, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc

    def _get(self, queue):
        if not self.unacked_folder:
            return super()._get(queue)
        self._restore_expired()
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            # The claim: named with the time it was taken, the clock the visibility timeout runs on.
            taken = os.path.join(self.unacked_folder, f"{int(time.time())}+{name}")
            try:
                os.rename(os.path.join(self.data_folder_in, name), taken)
            except OSError:  # another consumer took it first
                continue
            try:
                with open(taken, "rb") as file:
                    payload = loads(bytes_to_str(file.read()))
            except (OSError, ValueError) as exc:
                raise ChannelError(f"Cannot read file {taken!r} from queue.") from exc
            tag = (payload.get("properties") or {}).get("delivery_tag")
            if tag and queue not in self._no_ack_queues:
                self._unacked_files[tag] = taken
            else:  # nothing will acknowledge it: gone once taken, as in kombu
                os.unlink(taken)
            return payload
        raise Empty()

    def basic_consume(self, queue, no_ack, *args, **kwargs):
        (self._no_ack_queues.add if no_ack else self._no_ack_queues.discard)(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_get(self, queue, no_ack=False, **kwargs):
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None and no_ack:
            self._unacked_forget(message.delivery_tag)
        return message

    def _restore(self, message):
        """Put an unacknowledged message back (a requeue, or this channel closing): its claim goes."""
        super()._restore(message)
        self._unacked_forget(message.delivery_tag)

    def _unacked_forget(self, delivery_tag) -> None:
        path = self._unacked_files.pop(delivery_tag, None)
        if path:
            try:
                os.unlink(path)
            except FileNotFoundError:  # moved back to its queue after the visibility timeout
                pass

    def _restore_expired(self) -> None:
        """Move back to their queue the messages taken longer ago than the visibility timeout."""
        now = monotonic()
        if now < self._next_restore_check:
            return
        self._next_restore_check = now + RESTORE_CHECK_EVERY_S
        oldest = time.time() - self.visibility_timeout
        for name in os.listdir(self.unacked_folder):
            taken_at, _, original = name.partition("+")
            if not original or not taken_at.isdigit() or int(taken_at) > oldest:
                continue
            try:
                os.rename(os.path.join(self.unacked_folder, name), os.path.join(self.data_folder_in, original))
            except OSError:  # acknowledged, or moved back by another consumer, meanwhile
                continue


class Transport(filesystem.Transport):
    Channel = Channel
