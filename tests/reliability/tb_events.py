"""TensorBoard event files read as TensorBoard shows them (the suite has no tensorboard package)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, List, Tuple


def visible_scalars(folder: Path) -> Dict[str, List[Tuple[int, float]]]:
    """tag -> [(step, value)] in the order written, after TensorBoard's purge rule: a SessionLog
    START at step s hides the events with step >= s read before it (files in name order, which is
    the order they were started in); a trailing partial record (a killed writer's) ends its file."""
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    scalars: Dict[str, List[Tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos + 12 <= len(data):
            (size,) = struct.unpack("Q", data[pos : pos + 8])  # length, its crc, the record, its crc
            if pos + 16 + size > len(data):
                break
            event = Event.FromString(data[pos + 12 : pos + 12 + size])
            pos += 16 + size
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                scalars = {tag: [(s, v) for s, v in points if s < event.step] for tag, points in scalars.items()}
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars
