"""Atomic, private state files: the GCKS snapshot survives ``kill -9``.

:func:`atomic_write` writes a temporary file in the target's folder, makes it
mode 0600 (the snapshot holds group keys), fsyncs it, renames it over the
target and fsyncs the folder. A crash at any point leaves either the old
file or the new one, never a torn one (rename(2) is atomic within a file
system).

The GCKS runtime saves ``KeyServer.snapshot()`` whenever
``KeyServer.state_version`` changes, and does so *before* it sends the
datagrams of that step: a GSA_REKEY leaves the host only once its Message
ID and key are on disk, so a restarted GCKS never reuses a Message ID
(RFC 9838 §2.4.1: members drop Message IDs they have seen) nor a live key id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mrkm.fileio import atomic_write

__all__ = ["StateError", "StateFile", "atomic_write"]


class StateError(Exception):
    """A state file that cannot be read, parsed or written; the message names it."""


class StateFile:
    """One JSON state file: load once at start, save after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saves = 0

    def load(self) -> dict[str, Any] | None:
        """The saved object, or None when there is no file yet.

        Raises :class:`StateError` naming the file when it exists but is
        unreadable, not JSON, or not a JSON object.
        """
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read state file: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StateError(f"{self.path}: corrupt state file: {exc}") from None
        if not isinstance(data, dict):
            raise StateError(f"{self.path}: corrupt state file: not a JSON object")
        return data

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically with mode 0600; :class:`StateError` on failure."""
        data = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
        try:
            atomic_write(self.path, data)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot write state file: {exc}") from None
        self.saves += 1
