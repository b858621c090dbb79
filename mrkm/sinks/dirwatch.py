"""Wake up when a file in one directory is replaced: inotify(7) through ctypes over libc.

The PIM AH shim used to wake 20 times a second to ``stat`` its key file, so
that a new key reached it within 50 ms. With one shim per router that is
thousands of idle wake-ups a second on a 100-router testbed. A directory
watch lets it sleep until the GM's sink renames a new key file into place
(``IN_MOVED_TO``) or writes one in place (``IN_CLOSE_WRITE``).

:class:`DirectoryWatch` is a file descriptor to ``select`` on beside others;
:meth:`DirectoryWatch.drain` empties it. It does not parse events: the
caller looks at the file it cares about, as it would after a timeout. When
inotify is not available, :func:`watch_directory` returns None and the
caller keeps polling.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

__all__ = ["DirectoryWatch", "watch_directory"]

# linux/inotify.h
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENTS = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE


class DirectoryWatch:
    """An inotify descriptor watching one directory for files written or moved in."""

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        if libc.inotify_add_watch(fd, os.fsencode(directory), _EVENTS) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {directory}: {os.strerror(err)}")
        self._fd: int | None = fd

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("the directory watch is closed")
        return self._fd

    def drain(self) -> int:
        """Read every pending event; how many octets were read (0: none pending)."""
        total = 0
        while True:
            try:
                chunk = os.read(self.fileno(), 65536)
            except BlockingIOError:
                return total
            if not chunk:
                return total
            total += len(chunk)

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def watch_directory(directory: Path) -> DirectoryWatch | None:
    """A watch on ``directory``, or None where inotify is unavailable (the caller polls)."""
    try:
        return DirectoryWatch(directory)
    except (OSError, AttributeError):  # AttributeError: a libc without inotify_init1
        return None
