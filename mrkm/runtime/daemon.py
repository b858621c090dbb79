"""What every MRKM daemon shares: lifecycle, signals, control socket, event log.

A :class:`Daemon` (STYLE.md item 14: an app with ``start``/``stop`` and a
log file) builds its core, opens its sockets, arms the core's timer, serves
its control socket and waits. SIGTERM and SIGINT stop it cleanly: the stop
is logged (``process_stopped``), the last state is saved, sockets and the
control socket are closed and removed, and the exit code is 0. A fatal
error (the GCKS cannot save its state) stops it the same way with exit
code 1. Subclasses add the role: :mod:`mrkm.runtime.gcks_process` and
:mod:`mrkm.runtime.gm_process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import mrkm
from mrkm.runtime.clock import Clock
from mrkm.runtime.control import ControlServer, Handler
from mrkm.runtime.eventlog import EventLog
from mrkm.runtime.events import ControlRequest, ProcessStarted, ProcessStopped
from mrkm.runtime.node import Core, Node
from mrkm.runtime.transport import DatagramEndpoint

__all__ = ["Daemon"]


class Daemon:
    """One protocol core as a process; subclasses say which core and which sockets."""

    role: ClassVar[str] = "node"
    #: Commands worth a ``control_request`` line even when they succeed.
    logged_commands: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self, log: EventLog, control: Path | None, clock: Clock, signals: bool = True
    ) -> None:
        self.log = log
        self.control_path = control
        self.clock = clock
        self.signals = signals
        self.endpoints: list[DatagramEndpoint] = []
        self.listen = ""
        self.restored = False
        self.started_at = 0.0
        self.ready = asyncio.Event()
        self.stop_reason = "stopped"
        self._node: Node | None = None
        self._control: ControlServer | None = None

    # -- what a subclass provides --------------------------------------------------------

    def build(self) -> Core:
        """Create (and restore) the core; raise ConfigError/StateError when impossible."""
        raise NotImplementedError

    async def open_sockets(self, node: Node) -> None:
        """Open the sockets, set ``node.send`` and ``self.listen``."""
        raise NotImplementedError

    def commands(self) -> Mapping[str, Handler]:
        """The control commands of this role."""
        return {}

    def after_start(self, now: float) -> None:
        """Log what the role wants logged once it runs."""

    def before_stop(self, now: float) -> None:
        """Save what must survive the stop."""

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def node(self) -> Node:
        """The running node (only after :meth:`run` built it)."""
        assert self._node is not None, "the daemon has not started"
        return self._node

    def stop(self, reason: str = "stopped") -> None:
        """Ask the daemon to stop (signal handlers and tests call this)."""
        self.stop_reason = reason
        if self._node is not None:
            self._node.stop()

    async def run(self) -> int:
        """Run until stopped; return the exit code (0 clean, 1 fatal error)."""
        self._node = node = Node(self.build(), self.log, self.clock)
        loop = asyncio.get_running_loop()
        try:
            await self.open_sockets(node)
            if self.control_path is not None:
                self._control = ControlServer(self.control_path, self.commands(), self._logged)
                await self._control.start()
            if self.signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, self.stop, sig.name)
            self.started_at = now = self.clock()
            self.log.write(
                ProcessStarted(
                    now, self.role, os.getpid(), mrkm.__version__, self.listen, self.restored
                )
            )
            self.after_start(now)
            node.start()
            self.ready.set()
            await node.stopped.wait()
        finally:
            code = await self._shutdown(loop)
        return code

    async def _shutdown(self, loop: asyncio.AbstractEventLoop) -> int:
        node = self.node
        node.stop()
        now = self.clock()
        if node.fatal is None:
            try:
                self.before_stop(now)
            except Exception as exc:
                node.fatal = str(exc)
        code = 1 if node.fatal is not None else 0
        reason = node.fatal if node.fatal is not None else self.stop_reason
        if self._control is not None:
            await self._control.close()
        for endpoint in self.endpoints:
            if endpoint.transport is not None:
                endpoint.transport.close()
        if self.ready.is_set():
            self.log.write(ProcessStopped(now, reason, code))
        with contextlib.suppress(OSError):
            self.log.close()
        if self.signals:  # last: a second SIGTERM during the stop is absorbed
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return code

    # -- control helpers -----------------------------------------------------------------

    def _logged(self, cmd: str, ok: bool, error: str) -> None:
        if not ok or cmd in self.logged_commands:
            self.log.write(ControlRequest(self.clock(), cmd, ok, error))

    def runtime_status(self) -> dict[str, Any]:
        """What the runtime adds to a core's status."""
        return {
            "role": self.role,
            "pid": os.getpid(),
            "listen": self.listen,
            "uptime": round(self.clock() - self.started_at, 3),
            "counters": dict(self.node.counters),
        }
