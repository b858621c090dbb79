"""Ask one FRR daemon a ``show`` command over its vty unix socket, without vtysh.

vtysh is a process of its own: about 23 ms of CPU per call
(``reference/routers.md``), and the testbed's neighbor samplers ask three
daemons of every router ten times a second. At 10 routers that is 300 vtysh
processes a second, more than two cores can start, so the samplers fell
behind and the host ran saturated. Talking to the daemon's socket directly
costs about 0.06 ms a question (measured against FRR 8.4.4's ospfd).

The protocol is the one vtysh itself speaks to each daemon (FRR
``lib/vty.c``, ``vtysh_read``/``vtysh_flush``): the client writes the command
line followed by one NUL; the daemon runs it in VIEW_NODE and answers with
the command's output followed by four octets ``00 00 00 <status>``, where
status 0 is CMD_SUCCESS. VIEW_NODE has every ``show`` command but no
``configure terminal``: configuration still goes through vtysh (the GM's
``frr`` sink), which also keeps the daemons' running config consistent.

Each question opens its own connection, so a daemon that restarted between
two questions is simply asked again; a daemon that is down is an
:class:`OSError` (no socket, connection refused), which callers treat as
"did not answer".
"""

from __future__ import annotations

import socket
from pathlib import Path

__all__ = ["VtyError", "vty_show"]

_TERMINATOR = b"\0\0\0"  # the first three octets of the daemon's end-of-output marker
MAX_REPLY = 16 << 20  # octets; a reply longer than this is a runaway, not an answer


class VtyError(OSError):
    """The daemon answered with a non-zero status, closed early, or sent too much."""


def vty_show(socket_path: Path | str, command: str, timeout: float = 5.0) -> str:
    """Run ``command`` (one line, e.g. ``show ip ospf neighbor json``) in the daemon
    listening on ``socket_path`` (``<vty_socket dir>/<daemon>.vty``); its output.

    Raises :class:`OSError` when the daemon is not there or did not answer
    within ``timeout`` s, and :class:`VtyError` when it refused the command
    (the error text, e.g. "% Unknown command", is in the message).
    """
    if "\0" in command or "\n" in command:
        raise ValueError(f"vty command must be one line without NUL: {command!r}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(command.encode() + b"\0")
        reply = bytearray()
        while not (len(reply) >= 4 and reply[-4:-1] == _TERMINATOR):
            chunk = sock.recv(65536)
            if not chunk:
                raise VtyError(f"{socket_path}: closed before the end of the reply to {command!r}")
            reply += chunk
            if len(reply) > MAX_REPLY:
                raise VtyError(f"{socket_path}: reply to {command!r} exceeds {MAX_REPLY} octets")
    status, text = reply[-1], reply[:-4].decode(errors="replace")
    if status != 0:
        raise VtyError(f"{socket_path}: {command!r} failed (status {status}): {text.strip()}")
    return text
