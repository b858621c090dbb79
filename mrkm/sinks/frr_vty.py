"""Talk to one FRR daemon over its vty unix socket, the way vtysh does, without vtysh.

vtysh is a process of its own: about 23 ms of CPU per call
(``reference/routers.md``). The testbed's neighbor samplers ask three
daemons of every router ten times a second, and at 50 routers the GMs'
``frr`` sinks start 50 vtysh processes at once on every rekey (installs
then trailed the accept by about a second). Talking to the daemon's socket
directly costs about 0.06 ms a question (measured against FRR 8.4.4's
ospfd) and keeps keys off every process's command line.

The protocol is the one vtysh speaks to each daemon (FRR ``lib/vty.c``,
``vtysh_read``/``vtysh_flush``): the client writes one command line
followed by a NUL; the daemon runs it and answers with the command's output
followed by four octets ``00 00 00 <status>``, where status 0 is
CMD_SUCCESS. A connection starts in VIEW_NODE, which has every ``show``
command; ``enable`` then ``configure terminal`` reach the configuration
nodes, exactly as vtysh does before it forwards configuration.

:func:`vty_show` opens a connection per question, so a daemon that
restarted in between is simply asked again; :class:`VtySession` keeps one
connection for a sequence (``enable``, ``configure terminal``, the
commands, ``end``). A daemon that is down is an :class:`OSError` (no
socket, connection refused); a refused command is a :class:`VtyError`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import TracebackType

__all__ = ["MAX_REPLY", "VtyError", "VtySession", "vty_show"]

_TERMINATOR = b"\0\0\0"  # the first three octets of the daemon's end-of-output marker
MAX_REPLY = 16 << 20  # octets; a reply longer than this is a runaway, not an answer


class VtyError(OSError):
    """The daemon answered with a non-zero status, closed early, or sent too much."""


class VtySession:
    """One connection to one daemon: commands run in order, each answered before the next."""

    def __init__(self, socket_path: Path | str, timeout: float = 5.0) -> None:
        self.path = str(socket_path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(self.path)
        except BaseException:
            self._sock.close()
            raise

    def run(self, command: str) -> str:
        """Run one command line; its output. VtyError if the daemon refused it (its
        message, e.g. "% Unknown command", is in the error)."""
        if "\0" in command or "\n" in command:
            raise ValueError(f"vty command must be one line without NUL: {command!r}")
        self._sock.sendall(command.encode() + b"\0")
        reply = bytearray()
        while not (len(reply) >= 4 and reply[-4:-1] == _TERMINATOR):
            chunk = self._sock.recv(65536)
            if not chunk:
                raise VtyError(f"{self.path}: closed before the end of the reply to {command!r}")
            reply += chunk
            if len(reply) > MAX_REPLY:
                raise VtyError(f"{self.path}: reply to {command!r} exceeds {MAX_REPLY} octets")
        status, text = reply[-1], reply[:-4].decode(errors="replace")
        if status != 0:
            raise VtyError(f"{self.path}: {command!r} failed (status {status}): {text.strip()}")
        return text

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> VtySession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def vty_show(socket_path: Path | str, command: str, timeout: float = 5.0) -> str:
    """Run ``command`` (one line, e.g. ``show ip ospf neighbor json``) in the daemon
    listening on ``socket_path`` (``<vty_socket dir>/<daemon>.vty``); its output.

    Raises :class:`OSError` when the daemon is not there or did not answer
    within ``timeout`` s, and :class:`VtyError` when it refused the command.
    """
    if "\0" in command or "\n" in command:
        raise ValueError(f"vty command must be one line without NUL: {command!r}")
    with VtySession(socket_path, timeout) as session:
        return session.run(command)
