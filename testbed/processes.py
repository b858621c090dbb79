"""MRKM processes as testbed apps: start, poll their event logs, stop by PID.

Every GCKS and GM runs as ``python -m mrkm ...`` with its own log file
(STYLE.md item 14). A process is only ever stopped through its own PID:
SIGTERM, then SIGKILL after a deadline, never by name. Progress is read from
the JSON-lines event logs the daemons write, with deadlines, never with
fixed sleeps. The optional ``prefix`` runs a process somewhere else (for
example ``["ip", "netns", "exec", "r1"]`` on the Mininet testbed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Proc", "Procs", "events_of", "read_events", "wait_until"]

REPO = Path(__file__).resolve().parent.parent


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of an event log (a line still being written is skipped)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def events_of(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The events of one kind."""
    return [e for e in events if e["event"] == name]


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until it holds; raise TimeoutError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Proc:
    """One ``python -m mrkm`` process in ``workdir``, its stderr in ``<name>.stderr``."""

    def __init__(
        self, args: Sequence[str], workdir: Path, name: str, prefix: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.stderr_path = workdir / f"{name}.stderr"
        self.terminated = False
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with self.stderr_path.open("ab") as err:
            self.popen = subprocess.Popen(
                [*prefix, sys.executable, "-m", "mrkm", *args],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    @property
    def pid(self) -> int:
        """The process id, the only handle used to signal it."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no clean-up at all (crash experiments)."""
        os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self) -> None:
        """Send SIGTERM once (a second one during the clean stop would kill it)."""
        if self.alive() and not self.terminated:
            os.kill(self.pid, signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; return the exit code."""
        if self.alive():
            self.terminate()
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
        return self.popen.wait(10)

    def stderr(self) -> str:
        """What the process wrote to stderr."""
        return self.stderr_path.read_text()


class Procs:
    """The processes of one run, stopped in reverse start order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(self, name: str, *args: str, prefix: Sequence[str] = ()) -> Proc:
        """Start ``python -m mrkm <args>`` as ``name``."""
        proc = Proc(list(args), self.workdir, name, prefix)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every live process (newest first), then reap each; return exit codes."""
        for proc in reversed(self.procs):
            proc.terminate()
        return {proc.name: proc.stop() for proc in reversed(self.procs)}
