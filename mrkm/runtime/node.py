"""The driver loop around one sans-IO core (STYLE.md item 1; aioquic's asyncio layer).

A :class:`Node` owns no protocol logic. It

1. feeds every datagram to ``core.receive(data, addr, now)``;
2. arms one timer for ``core.next_timer()`` and calls
   ``core.handle_timer(now)`` when it fires;
3. after every such step runs the *before-send hooks* (the GCKS saves its
   state there, so nothing leaves the host that the disk does not know),
   sends ``core.datagrams_to_send(now)``, runs the *after-send hooks* (the GM
   writes its key table) and drains ``core.events()`` to the event log.

Everything runs in event-loop callbacks, one step at a time, so a core is
never entered twice. A core that raises (it should not: the cores drop bad
input themselves) costs one datagram or one timer, logged as
``internal_error``; the daemon keeps running. A hook that raises
:class:`FatalError` stops the node instead, before anything is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from mrkm.protocol.events import Event
from mrkm.runtime.clock import Clock
from mrkm.runtime.eventlog import EventLog
from mrkm.runtime.events import InternalError, SocketError
from mrkm.runtime.transport import Addr

__all__ = ["Core", "FatalError", "Node"]

#: After a core raised in handle_timer, wait at least this long (s) before retrying.
TIMER_ERROR_BACKOFF = 1.0


class Core(Protocol):
    """The sans-IO interface shared by ``KeyServer`` and ``GroupMember``."""

    def receive(self, data: bytes, addr: Addr, now: float) -> None: ...
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]: ...
    def next_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...
    def events(self) -> list[Event]: ...


class FatalError(Exception):
    """Raised by a hook when the node must not go on (e.g. state cannot be saved)."""


Hook = Callable[[float], None]


class Node:
    """One core, its clock, its event log and a way to send datagrams."""

    def __init__(self, core: Core, log: EventLog, clock: Clock) -> None:
        self.core = core
        self.log = log
        self.clock = clock
        self.before_send: list[Hook] = []
        self.after_send: list[Hook] = []
        self.send: Callable[[bytes, Addr], None] | None = None
        self.stopped = asyncio.Event()
        self.fatal: str | None = None
        self.counters: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._not_before = 0.0

    # -- inputs ------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        """A datagram arrived on any of the node's sockets."""
        if self.stopped.is_set():
            return
        self._count("datagrams_in")
        now = self.clock()
        try:
            self.core.receive(data, addr, now)
        except Exception as exc:  # a core bug must not take the daemon down
            self._internal_error(now, "receive", exc)
        self.step(now)

    def socket_error(self, reason: str) -> None:
        """The kernel reported an error on a socket: log it, keep going."""
        self._count("socket_errors")
        self.log.write(SocketError(self.clock(), reason))

    def _on_timer(self) -> None:
        self._timer = None
        if self.stopped.is_set():
            return
        now = self.clock()
        due = self.core.next_timer()
        if due is not None and due <= now:
            try:
                self.core.handle_timer(now)
            except Exception as exc:
                self._internal_error(now, "handle_timer", exc)
                self._not_before = now + TIMER_ERROR_BACKOFF
        self.step(now)

    # -- one step ----------------------------------------------------------------------

    def step(self, now: float) -> None:
        """Persist, send, log and re-arm the timer after the core changed."""
        if self.stopped.is_set():
            return
        try:
            for hook in self.before_send:
                hook(now)
        except FatalError as exc:
            self.stop(str(exc))
            self.drain_events()
            return
        for data, addr in self.core.datagrams_to_send(now):
            self._count("datagrams_out")
            if self.send is not None:
                self.send(data, addr)
        for hook in self.after_send:
            try:
                hook(now)
            except Exception as exc:
                self._internal_error(now, "after_send", exc)
        self.drain_events()
        self._arm(now)

    def drain_events(self) -> None:
        """Write every queued core event to the log."""
        for event in self.core.events():
            self.log.write(event)

    def _arm(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.core.next_timer()
        if due is None:
            return
        due = max(due, self._not_before)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, due - now), self._on_timer)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Run the first step (due timers, first datagrams) and arm the timer."""
        now = self.clock()
        due = self.core.next_timer()
        if due is not None and due <= now:
            self._on_timer()
        else:
            self.step(now)

    def stop(self, fatal: str | None = None) -> None:
        """Stop stepping; ``fatal`` says why when it is an error."""
        if fatal is not None and self.fatal is None:
            self.fatal = fatal
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.stopped.set()

    # -- helpers -----------------------------------------------------------------------

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _internal_error(self, now: float, where: str, exc: Exception) -> None:
        self._count("internal_errors")
        self.log.write(InternalError(now, where, f"{type(exc).__name__}: {exc}"))
