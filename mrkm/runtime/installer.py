"""Drive a GM's router sinks from its key table (ARCHITECTURE.md ``mrkm/sinks``).

After every step of the GM's node, :class:`Installer` compares the key table
with what each sink last installed. When rows changed, when a sink's
:meth:`~mrkm.sinks.Sink.next_change` comes due (a router that cannot
schedule a switch itself, such as FRR 8.4 OSPFv2 MD5), or when the routing
daemon restarted (:meth:`~mrkm.sinks.Sink.router_epoch` changed, checked
every ``watch_interval`` seconds), it installs the whole current table with
one router call.

Router calls block (``vtysh`` takes about 24 ms), so each sink runs its calls
in a thread of its own, one at a time and in order; the event loop never
waits for a router. Each install is logged as a ``router_install`` event
with its latency: ``t`` is when the router confirmed the keys, the
``t_install`` of ARCHITECTURE.md "Measurements". Rows a router cannot use
are refused with a ``router_install`` event naming the reason and are left
out; the rest is installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

from mrkm.keytable import KeyRow
from mrkm.protocol.events import Event
from mrkm.runtime.clock import Clock
from mrkm.runtime.eventlog import EventLog
from mrkm.sinks.base import Sink, SinkError

__all__ = ["Installer", "RouterInstall"]

WATCH_INTERVAL = 1.0  # s between checks that the routing daemon did not restart


@dataclass(frozen=True)
class RouterInstall(Event):
    """A sink's router call: which keys, whether it worked, how long it took."""

    name: ClassVar[str] = "router_install"
    sink: str
    ok: bool
    seconds: float
    key_ids: tuple[int, ...]
    reason: str
    detail: str = ""
    keys: tuple[str, ...] = ()  # "protocol:key id" the router confirmed (InstallResult.keys)


@dataclass
class _State:
    sink: Sink
    executor: ThreadPoolExecutor
    installed: tuple[KeyRow, ...] | None = None  # what the router confirmed last
    scheduled: tuple[KeyRow, ...] | None = None  # what the last queued install carries
    epoch: str | None = None
    timer: asyncio.TimerHandle | None = None
    checked_at: float | None = None  # the ``now`` the last install judged the rows at


class Installer:
    """Keep every sink's router in step with the key table."""

    def __init__(
        self, sinks: Sequence[Sink], rows: Callable[[], list[KeyRow]], log: EventLog, clock: Clock
    ) -> None:
        self._rows, self._log, self._clock = rows, log, clock
        self._states = [
            _State(s, ThreadPoolExecutor(1, thread_name_prefix=f"sink-{s.name}")) for s in sinks
        ]
        self._tasks: set[asyncio.Future[None]] = set()
        self._watch: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin watching the routing daemons for restarts."""
        if self._states:
            self._watch = asyncio.get_running_loop().create_task(self._watch_epochs())

    def close(self) -> None:
        """Stop watching; let a running router call finish."""
        if self._watch is not None:
            self._watch.cancel()
        for state in self._states:
            if state.timer is not None:
                state.timer.cancel()
            state.executor.shutdown(wait=True)

    def after_step(self, now: float) -> None:
        """Node hook: install wherever the table changed (once per change)."""
        rows = tuple(self._rows())
        for state in self._states:
            relevant = tuple(state.sink.relevant(rows))
            if not relevant and state.scheduled is None:
                # A GM that just started holds no keys yet; the router may still
                # hold its predecessor's. Wait for registration, do not wipe them.
                continue
            if state.scheduled != relevant:
                self._schedule(state, rows, "keys changed")

    async def _watch_epochs(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            for state in self._states:
                epoch = await asyncio.get_running_loop().run_in_executor(
                    state.executor, state.sink.router_epoch
                )
                if state.epoch is None:
                    continue  # nothing installed yet
                if state.installed is None:  # the last install failed (daemon down?)
                    self._schedule(state, tuple(self._rows()), "retry after a failed install")
                elif epoch is not None and epoch != state.epoch:
                    self._schedule(state, tuple(self._rows()), "routing daemon restarted")

    def _schedule(self, state: _State, rows: tuple[KeyRow, ...], reason: str) -> None:
        state.scheduled = tuple(state.sink.relevant(rows))
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(state.executor, self._install, state, rows, reason)
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)
        future.add_done_callback(lambda _f: self._arm(state))

    def _install(self, state: _State, rows: tuple[KeyRow, ...], reason: str) -> None:
        """In the sink's thread: check the rows, make the router call, log the outcome."""
        sink = state.sink
        usable: list[KeyRow] = []
        for row in sink.relevant(rows):
            try:
                sink.check(row)
                usable.append(row)
            except SinkError as exc:
                self._log.write(
                    RouterInstall(
                        self._clock(), sink.name, False, 0.0, (row.key_id,), "refused", str(exc)
                    )
                )
        now = self._clock()
        state.checked_at = now
        try:
            result = sink.install(usable, now)
        except SinkError as exc:
            state.installed = state.scheduled = None  # the next step or watch round retries
            self._log.write(
                RouterInstall(
                    self._clock(),
                    sink.name,
                    False,
                    0.0,
                    tuple(r.key_id for r in usable),
                    reason,
                    str(exc),
                )
            )
            return
        state.installed = tuple(sink.relevant(rows))
        # Adopted only by a successful install, so a failed re-apply is retried.
        state.epoch = sink.router_epoch()
        self._log.write(
            RouterInstall(
                self._clock(),
                sink.name,
                result.ok,
                round(result.seconds, 6),
                result.key_ids,
                reason,
                result.detail,
                result.keys,
            )
        )

    def _arm(self, state: _State) -> None:
        """Re-install when the sink says its router must change without a new row."""
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        rows = tuple(self._rows())
        now = self._clock()
        # The next change after the moment the install judged the rows, not after now:
        # on a busy host this callback can run after a switch time that fell between the
        # two, and asking from now would skip that switch until the next rekey.
        since = state.checked_at if state.checked_at is not None else now
        due = state.sink.next_change(list(rows), min(since, now))
        if due is None:
            return
        loop = asyncio.get_running_loop()
        state.timer = loop.call_later(
            max(0.0, due - now),
            lambda: self._schedule(state, tuple(self._rows()), "scheduled switch"),
        )
