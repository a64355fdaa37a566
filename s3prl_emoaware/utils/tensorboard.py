"""TensorBoard logs that a full disk cannot hang or crash: tensorboardX's writer, guarded.

tensorboardX writes events from a background thread. When a write fails there (no space left,
quota, an I/O error), the thread dies with a traceback, its bounded queue fills, and the
trainer's next ``add_scalar`` blocks forever. :func:`summary_writer` wraps the event file's
writer: the first failure is one warning line naming the events file; logging stops there (the
file keeps its whole records up to that point, a trailing partial one TensorBoard skips) and the
job goes on. Logs are not trusted by any later run; a checkpoint on a disk that is still full
ends the job with its own :class:`~s3prl_emoaware.utils.atomic.DiskFullError` line.

``purge_step``: a resumed run's events from that step on hide those of the interrupted run, so
TensorBoard shows one curve, not the killed run's tail under the resumed one.
"""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path
from typing import Optional, Union

logger = logging.getLogger(__name__)

__all__ = ["summary_writer"]

_FULL = (errno.ENOSPC, errno.EDQUOT)


class _GuardedRecords:
    """The event file's record writer; after the first ``OSError`` it drops every record."""

    def __init__(self, inner, path: str):
        self._inner, self.path = inner, path
        self.failed: Optional[str] = None
        self._lock = threading.Lock()

    def _call(self, name: str, *args) -> None:
        if self.failed is not None:
            return
        try:
            getattr(self._inner, name)(*args)
        except OSError as err:
            with self._lock:
                if self.failed is None:
                    why = "no space left on device" if err.errno in _FULL else (err.strerror or str(err))
                    self.failed = why
                    logger.warning("%s: %s; TensorBoard logging stopped (the job goes on)", self.path, why)

    def write(self, data) -> None:
        self._call("write", data)

    def flush(self) -> None:
        self._call("flush")

    def close(self) -> None:
        self._call("close")


def summary_writer(folder: Union[str, Path], purge_step: Optional[int] = None):
    """A tensorboardX ``SummaryWriter`` for ``folder`` whose failed writes are one warning (see the
    module docstring); ``purge_step`` (a resumed run's first step) hides the interrupted run's
    events from that step on."""
    from tensorboardX import SummaryWriter
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    try:
        writer = SummaryWriter(str(folder))
    except OSError as err:  # the events file could not even be created
        why = "no space left on device" if err.errno in _FULL else (err.strerror or str(err))
        logger.warning("%s: %s; no TensorBoard logs for this run (the job goes on)", folder, why)
        return SummaryWriter(str(folder), write_to_disk=False)
    events = writer.file_writer.event_writer._ev_writer  # tensorboardX 2.6: EventsWriter
    events._py_recordio_writer = _GuardedRecords(events._py_recordio_writer, events._file_name)
    if purge_step:  # what SummaryWriter(purge_step=...) adds, here after the guard is in place
        writer.file_writer.add_event(Event(step=purge_step, file_version="brain.Event:2"))
        writer.file_writer.add_event(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))
    return writer
