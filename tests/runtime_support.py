"""Helpers for the runtime and CLI tests: ports, configs, processes, logs, polling.

Processes are started as ``python -m mrkm ...`` and always stopped by their
own PID (never by name); readiness and progress are polled from the event
logs with deadlines, never awaited with fixed sleeps (STYLE.md item 14).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519

from mrkm.runtime.daemon import Daemon
from mrkm.runtime.pem import private_key_pem, write_new_file
from testbed.processes import REPO, Proc, Procs, read_events, wait_until
from testbed.processes import events_of as of

__all__ = ["REPO", "Proc", "Procs", "of", "read_events", "wait_until"]

PSK_HEX = "6d726b6d2d746573742d70736b2d3031323334353637"


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rekey_group() -> str:
    """A multicast group no other test uses (administratively scoped, RFC 2365)."""
    return f"239.255.{random.randrange(1, 255)}.{random.randrange(1, 255)}"


def write_signing_key(path: Path) -> Path:
    """A fresh Ed25519 GCKS signing key as PEM (mode 0600)."""
    write_new_file(path, private_key_pem(ed25519.Ed25519PrivateKey.generate()), 0o600)
    return path


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def gcks_yaml(
    members: list[str],
    port: int,
    group: str,
    rekey_port: int,
    group_name: str = "g1",
    **gcks: Any,
) -> dict[str, Any]:
    """A loopback GCKS configuration with short timers (lifetime 10 s, a rekey every 4 s)."""
    return {
        "gcks": {
            "identity": "gcks.mrkm",
            "listen": f"127.0.0.1:{port}",
            "rekey_interface": "lo",
            **gcks,
        },
        "groups": [
            {
                "name": group_name,
                "lifetime": 10,
                "rekey_margin": 6,
                "atd": 1,
                "dtd": 2,
                "rekey_address": group,
                "rekey_port": rekey_port,
                "copies": [0, 0.1, 0.3],
                "psk": PSK_HEX,
                "members": [{"id": m} for m in members],
            }
        ],
    }


def gm_yaml(
    name: str, port: int, group: str, rekey_port: int, group_name: str = "g1", **gm: Any
) -> dict[str, Any]:
    """A loopback GM configuration joining the rekey group on ``lo``."""
    return {
        "gm": {
            "identity": name,
            "gcks": f"127.0.0.1:{port}",
            "groups": [group_name],
            "psk": PSK_HEX,
            "interface": "lo",
            "rekey_groups": [f"{group}:{rekey_port}"],
            "retransmit_initial": 0.5,
            "retry_delay": 1,
            "repair_margin": 3,
            **gm,
        }
    }


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """:func:`wait_until` inside an event loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def start_daemon(daemon: Daemon) -> asyncio.Task[int]:
    """Run an in-process daemon as a task; return once it is ready."""
    task = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(daemon.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # raises what stopped it
        raise AssertionError("daemon exited during start")
    assert ready in done, "daemon did not become ready"
    return task


async def stop_daemons(*pairs: tuple[Daemon, Awaitable[int]]) -> list[int]:
    """Stop in-process daemons in reverse order; return their exit codes."""
    codes = []
    for daemon, task in reversed(pairs):
        daemon.stop("test over")
        codes.append(await asyncio.wait_for(task, 5))
    return codes[::-1]


@contextlib.contextmanager
def daemon_in_thread(daemon: Daemon) -> Iterator[None]:
    """Run an in-process daemon in its own event loop thread (for blocking clients)."""
    loop = asyncio.new_event_loop()
    codes: list[int] = []

    def runner() -> None:
        asyncio.set_event_loop(loop)
        try:
            codes.append(loop.run_until_complete(daemon.run()))
        finally:
            loop.close()

    thread = threading.Thread(target=runner, name="daemon", daemon=True)
    thread.start()
    try:
        wait_until(lambda: daemon.ready.is_set() or not thread.is_alive(), 10, "the daemon")
        assert daemon.ready.is_set(), "the daemon failed to start"
        yield
    finally:
        if thread.is_alive():
            loop.call_soon_threadsafe(daemon.stop, "test over")
        thread.join(10)
    assert codes == [0]
