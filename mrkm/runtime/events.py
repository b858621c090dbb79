"""Events of the runtime itself, logged next to the cores' events.

They share :class:`mrkm.protocol.events.Event` as their base, so every line
of a node's JSON-lines log has the same shape (``t``, ``event``, ``node``,
fields) whoever produced it (STYLE.md items 2 and 15).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mrkm.protocol.events import Event

__all__ = [
    "ControlRequest",
    "InternalError",
    "ProcessStarted",
    "ProcessStopped",
    "SocketError",
    "StateRestored",
]


@dataclass(frozen=True)
class ProcessStarted(Event):
    """The process is up: sockets bound, state restored, timers armed.

    ``listen`` is the bound unicast ``address:port``; ``restored`` is true
    when a GCKS continued from its state file.
    """

    name: ClassVar[str] = "process_started"
    role: str
    pid: int
    version: str
    listen: str
    restored: bool = False


@dataclass(frozen=True)
class ProcessStopped(Event):
    """The process stopped cleanly (a signal, or a fatal error named in ``reason``)."""

    name: ClassVar[str] = "process_stopped"
    reason: str
    exit_code: int = 0


@dataclass(frozen=True)
class StateRestored(Event):
    """The GCKS continued from ``path``; ``next_message_ids`` per group."""

    name: ClassVar[str] = "state_restored"
    path: str
    next_message_ids: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ControlRequest(Event):
    """A control-socket command that changed state, or failed (``error`` says why)."""

    name: ClassVar[str] = "control_request"
    cmd: str
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class SocketError(Event):
    """The kernel reported an error on a socket (e.g. ICMP port unreachable)."""

    name: ClassVar[str] = "socket_error"
    reason: str


@dataclass(frozen=True)
class InternalError(Event):
    """A core raised where it should not have; the datagram or timer was skipped."""

    name: ClassVar[str] = "internal_error"
    where: str
    reason: str
