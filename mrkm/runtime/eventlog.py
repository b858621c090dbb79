"""The JSON-lines event log of one node: the single source of truth for collectors.

Each line is one :class:`~mrkm.protocol.events.Event`'s ``to_json()`` with the
node's identity added::

    {"t": 1800000000.5, "event": "rekey_accepted", "node": "r1.mrkm", "group": ...}

``t`` is the injected clock (:mod:`mrkm.runtime.clock`). Lines are flushed
one by one, so a ``kill -9`` loses no line already written, and collectors
copy the files as they are (STYLE.md item 15). ``-`` writes to stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from mrkm.protocol.events import Event

__all__ = ["EventLog", "format_record"]


def format_record(event: Event, node: str) -> dict[str, Any]:
    """``event.to_json()`` with ``node`` placed after ``t`` and ``event``."""
    record = event.to_json()
    head = {"t": record.pop("t"), "event": record.pop("event"), "node": node}
    return head | record


class EventLog:
    """Append-only JSON lines for one node (a file path, or ``-`` for stdout)."""

    def __init__(self, target: str | Path | None, node: str) -> None:
        """Log to ``target``; ``None`` keeps records in memory only.

        A file is created at the first event, so a process that fails its
        configuration leaves no empty log behind.
        """
        self.node = node
        self.records: list[dict[str, Any]] | None = [] if target is None else None
        self._path = Path(target) if target is not None and str(target) != "-" else None
        self._out: TextIO | None = sys.stdout if target is not None and self._path is None else None

    def write(self, event: Event) -> dict[str, Any]:
        """Append one event as one line; return the record written."""
        record = format_record(event, self.node)
        if self.records is not None:
            self.records.append(record)
        if self._out is None and self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self._path.open("a", encoding="utf-8", buffering=1)
        if self._out is not None:
            self._out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            self._out.flush()
        return record

    def close(self) -> None:
        """Close the file (stdout stays open)."""
        if self._out is not None and self._path is not None:
            self._out.close()
        self._out = None
        self._path = None
