"""The ``file`` sink: the key table as JSON, for inspection and tests.

Rollover semantics: none of its own. The file holds every row with its
absolute send and accept lifetimes, rewritten atomically (mode 0600) on
every change; whoever reads it applies the lifetimes.

Configuration::

    sinks:
      - type: file
        path: r1.keys.json
        with_keys: true        # write the key octets (default true)
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mrkm.config import ConfigError
from mrkm.fileio import atomic_write
from mrkm.keytable import KeyRow
from mrkm.sinks.base import InstallResult, Sink, SinkError, register_sink

__all__ = ["FileSink"]


class FileSink(Sink):
    """Write the key table to ``path`` as JSON."""

    kind = "file"

    def __init__(self, name: str, path: Path, with_keys: bool = True) -> None:
        super().__init__(name)
        self.path, self.with_keys = path, with_keys

    def check(self, row: KeyRow) -> None:
        """Every row can be written."""

    def install(self, rows: Sequence[KeyRow], now: float) -> InstallResult:
        """Rewrite the file with ``rows`` (atomic, mode 0600)."""
        table = {
            "updated": round(now, 6),
            "rows": [r.to_json(with_key=self.with_keys) for r in rows],
        }
        start = time.perf_counter()
        try:
            atomic_write(self.path, json.dumps(table, indent=1).encode() + b"\n")
        except OSError as exc:
            raise SinkError(f"{self.name}: cannot write {self.path}: {exc.strerror}") from None
        return InstallResult(
            self.name,
            True,
            time.perf_counter() - start,
            1,
            tuple(r.key_id for r in rows),
            keys=tuple(f"{r.protocol}:{r.key_id}" for r in rows),
        )


@register_sink("file")
def _build(name: str, entry: Mapping[str, Any], where: str) -> Sink:
    extra = sorted(set(entry) - {"type", "name", "path", "with_keys"})
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(extra)}")
    if "path" not in entry:
        raise ConfigError(f"{where}.path: missing")
    return FileSink(name, Path(str(entry["path"])), bool(entry.get("with_keys", True)))
