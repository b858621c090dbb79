"""mrkm.sinks.dirwatch (inotify on a directory), and the PIM AH shim process that sleeps on it.

The unit tests use a real inotify descriptor on a temporary directory; the
root test runs ``python -m mrkm.sinks.pim_ah`` in a namespace of its own and
keys it through the real ``pim_ah`` sink.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mrkm.fileio import atomic_write
from mrkm.sinks.dirwatch import DirectoryWatch, watch_directory


def readable(watch: DirectoryWatch, timeout: float) -> bool:
    ready, _, _ = select.select([watch], [], [], timeout)
    return bool(ready)


def test_a_file_renamed_in_wakes_the_watch(tmp_path: Path) -> None:
    watch = DirectoryWatch(tmp_path)
    try:
        assert not readable(watch, 0) and watch.drain() == 0
        atomic_write(tmp_path / "keys.json", b"{}", 0o600)  # temp file + rename, as the sink does
        assert readable(watch, 5)
        assert watch.drain() > 0
        assert not readable(watch, 0)  # drained
        (tmp_path / "keys.json").write_text("[]")  # written in place: IN_CLOSE_WRITE
        assert readable(watch, 5)
    finally:
        watch.close()
        watch.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        watch.fileno()


def test_reading_a_file_does_not_wake_the_watch(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text("{}")
    watch = DirectoryWatch(tmp_path)
    try:
        (tmp_path / "keys.json").read_text()
        (tmp_path / "keys.json").stat()
        assert not readable(watch, 0.05)
    finally:
        watch.close()


def test_a_missing_directory_means_polling(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        DirectoryWatch(tmp_path / "absent")
    assert watch_directory(tmp_path / "absent") is None
    watch = watch_directory(tmp_path)
    assert watch is not None
    watch.close()


@pytest.mark.root
def test_the_shim_process_takes_new_keys_and_stops_on_sigterm(tmp_path: Path) -> None:
    from mrkm.keytable import KeyRow
    from mrkm.sinks.pim_ah import PimAhSink
    from testbed.processes import wait_until

    netns = f"mrkmdw{os.getpid() % 100000}"
    keys, status, log = tmp_path / "k.json", tmp_path / "s.json", tmp_path / "shim.jsonl"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    shim: subprocess.Popen[bytes] | None = None
    try:
        shim = subprocess.Popen(
            [
                *("ip", "netns", "exec", netns, sys.executable, "-m", "mrkm.sinks.pim_ah"),
                *("--keys", str(keys), "--status", str(status), "--log", str(log), "--tag", "dw"),
            ],
            stdin=subprocess.DEVNULL,
        )
        wait_until(status.exists, 20, "the shim's first status file")
        sink = PimAhSink("pim", keys, status, timeout=10)
        now = time.time()
        for spi in (0x1000, 0x2000):  # two generations: the second arrives while it sleeps
            row = KeyRow(
                "pim-sm",
                "pim-ah",
                spi,
                "hmac-sha-256-128",
                bytes(range(32)),
                now - 1,
                now,
                now + 600,
                now + 610,
            )
            assert sink.install([row], now).ok
            assert json.loads(status.read_text())["accept_spis"] == [spi]
        shim.send_signal(signal.SIGTERM)
        assert shim.wait(10) == 0
        events = [json.loads(line) for line in log.read_text().splitlines()]
        started = next(e for e in events if e["event"] == "pim_ah_started")
        assert started["key_watch"] == "inotify"
        assert [e["spis"] for e in events if e["event"] == "pim_ah_keys_loaded"] == [
            [0x1000],
            [0x2000],
        ]
        assert events[-1]["event"] == "pim_ah_stopped"
    finally:
        if shim is not None and shim.poll() is None:
            shim.kill()
            shim.wait(5)
        subprocess.run(["ip", "netns", "del", netns], check=False)
