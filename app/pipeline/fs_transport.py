"""kombu's filesystem transport, made safe for several processes on one folder.

kombu writes a message by creating its file and then writing into it under an advisory lock,
while a consumer takes a file by renaming it without looking at the lock. A consumer can
therefore take a message file that is still empty and die on it (seen here: a worker stopped
with "Unrecoverable error: JSONDecodeError"). Here a message is written and synced under a
name no consumer looks at, then renamed into place, so consumers only ever see whole messages.
A file that cannot be read anyway is set aside, not allowed to stop the worker.
"""

import logging
import os
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)

ALIAS = "histocr-fs"


class AtomicFilesystemChannel(filesystem.Channel):
    """A channel whose messages appear in the folder only once they are complete."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        folder = Path(self.data_folder_out)
        partial = folder / f".partial-{name}"
        try:
            with partial.open("wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, folder / name)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise filesystem.ChannelError(f"cannot add message {name!r} to {folder}") from exc

    def _get(self, queue: str, timeout: Any = None) -> Any:
        while True:
            try:
                return super()._get(queue)
            except ValueError as exc:  # an unreadable message: report it and take the next one
                logger.error("skipping an unreadable message on queue %s: %s", queue, exc)


class AtomicFilesystemTransport(filesystem.Transport):
    """The filesystem transport with atomic message files."""

    Channel = AtomicFilesystemChannel


TRANSPORT_ALIASES[ALIAS] = f"{__name__}:AtomicFilesystemTransport"
