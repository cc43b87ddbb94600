"""The embedded broker: kombu's filesystem transport, with each message written atomically.

kombu creates a message's file and then writes it, so a worker listing the folder in between
takes an empty message, fails to decode it and dies (seen as "Unrecoverable error:
JSONDecodeError" when several processes share the folder). Here a message is written under a name
no consumer matches and renamed into place once complete; a rename within one folder is atomic.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
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


class Transport(filesystem.Transport):
    Channel = Channel
