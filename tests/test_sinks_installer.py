"""Sinks driven by the GM runtime: the file sink end to end, the installer's rules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from mrkm.config import ConfigError, GcksConfig, GmConfig
from mrkm.keytable import KeyRow
from mrkm.runtime.eventlog import EventLog
from mrkm.runtime.gcks_process import GcksProcess
from mrkm.runtime.gm_process import GmProcess
from mrkm.runtime.installer import Installer
from mrkm.sinks import InstallResult, Sink, SinkError, build_sinks
from tests.harness import PSK, make_group
from tests.runtime_support import (
    free_udp_port,
    rekey_group,
    start_daemon,
    stop_daemons,
    until,
    write_signing_key,
)


def row(key_id: int, send_start: float, key: bytes = b"k" * 32) -> KeyRow:
    return KeyRow(
        "g",
        "ospfv2",
        key_id,
        "hmac-sha-256",
        key,
        send_start - 2,
        send_start,
        send_start + 100,
        send_start + 104,
    )


class FakeRouter(Sink):
    """Records installs; refuses key id 13; asks for a switch at each send_start."""

    kind = "fake"

    def __init__(self) -> None:
        super().__init__("fake")
        self.installs: list[tuple[int, ...]] = []
        self.epoch = "pid-1"

    def check(self, row: KeyRow) -> None:
        if row.key_id == 13:
            raise SinkError("key id 13 is unlucky for this router")

    def install(self, rows: Sequence[KeyRow], now: float) -> InstallResult:
        self.installs.append(tuple(r.key_id for r in rows))
        return InstallResult(self.name, True, 0.001, 1, tuple(r.key_id for r in rows))

    def next_change(self, rows: Sequence[KeyRow], now: float) -> float | None:
        return min((r.send_start for r in rows if r.send_start > now), default=None)

    def router_epoch(self) -> str | None:
        return self.epoch


def test_installer_installs_on_change_on_schedule_and_after_restart() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        clock = loop.time
        table = [row(1, clock() - 10)]
        log = EventLog(None, "r1")
        router = FakeRouter()
        installer = Installer([router], lambda: list(table), log, clock)
        installer.start()
        installer.after_step(clock())
        await until(lambda: router.installs == [(1,)], 2, "the first install")
        installer.after_step(clock())  # nothing changed: no second call
        table.append(row(2, clock() + 0.3))  # a new key whose sending starts in 0.3 s
        table.append(row(13, clock() + 0.5))
        installer.after_step(clock())
        await until(lambda: len(router.installs) >= 2, 2, "the install of key 2")
        assert router.installs[1] == (1, 2)  # key 13 refused, the rest installed
        await until(lambda: len(router.installs) >= 4, 2, "both scheduled switches")
        # Nothing is pending now; a successful install adopts the router's epoch,
        # so only the restart can cause the next one.
        router.epoch = "pid-2"  # the routing daemon restarted

        def reasons() -> list[str]:
            return [r["reason"] for r in log.records or [] if r["event"] == "router_install"]

        await until(lambda: "routing daemon restarted" in reasons(), 5, "re-install")
        installer.close()
        records = log.records or []
        assert "refused" in reasons() and "scheduled switch" in reasons()
        refused = next(r for r in records if r["reason"] == "refused")
        assert tuple(refused["key_ids"]) == (13,) and "unlucky" in refused["detail"]

    asyncio.run(scenario())


def test_a_switch_that_falls_during_an_install_is_not_skipped() -> None:
    """The install judges the rows at 10.0; the switch is due at 10.05; the loop only
    gets to re-arm at 10.1 (a busy host). The switch must still happen, at once."""

    class SlowRouter(FakeRouter):
        def install(self, rows: Sequence[KeyRow], now: float) -> InstallResult:
            result = super().install(rows, now)
            fake[0] = max(fake[0], 10.1)  # the call and the loop's latency: past the switch
            return result

    fake = [10.0]

    async def scenario() -> None:
        table = [row(1, 0.0), row(2, 10.05)]
        log = EventLog(None, "r1")
        router = SlowRouter()
        installer = Installer([router], lambda: list(table), log, lambda: fake[0])
        installer.after_step(fake[0])
        await until(lambda: len(router.installs) >= 2, 2, "the scheduled switch")
        installer.close()
        reasons = [r["reason"] for r in log.records or [] if r["event"] == "router_install"]
        assert reasons == ["keys changed", "scheduled switch"]

    asyncio.run(scenario())


def test_unknown_sink_type_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"gm.sinks\[0\].type: 'juniper' is not one of"):
        build_sinks([{"type": "juniper"}])
    with pytest.raises(ConfigError, match=r"gm.sinks\[0\].path: missing"):
        build_sinks([{"type": "file"}])


def test_file_sink_installs_what_the_gm_learned(tmp_path: Path) -> None:
    group_address, rekey_port, port = rekey_group(), free_udp_port(), free_udp_port()
    group = make_group(1, name="g1", rekey_address=group_address, rekey_port=rekey_port)
    gcks = GcksProcess(
        GcksConfig(
            "gcks.mrkm",
            ("127.0.0.1", port),
            (group,),
            signing_key=write_signing_key(tmp_path / "gcks.key"),
            rekey_source="127.0.0.1",
        ),
        EventLog(tmp_path / "gcks.jsonl", "gcks.mrkm"),
        tmp_path / "gcks.sock",
        signals=False,
    )
    keys = tmp_path / "r0.keys.json"
    gm_log = EventLog(tmp_path / "r0.jsonl", "r0.mrkm")
    gm = GmProcess(
        GmConfig(
            "r0.mrkm",
            ("127.0.0.1", port),
            ("g1",),
            psk=PSK,
            interface="lo",
            rekey_groups=((group_address, rekey_port),),
            sinks=({"type": "file", "path": str(keys)},),
        ),
        gm_log,
        signals=False,
    )

    async def scenario() -> None:
        gcks_task = await start_daemon(gcks)
        gm_task = await start_daemon(gm)
        try:
            await until(lambda: keys.exists(), 10, "the key table file")
            gcks.core.rekey("g1", gcks.clock())
            gcks.node.step(gcks.clock())
            await until(
                lambda: len(json.loads(keys.read_text())["rows"]) == 2,
                10,
                "the second key in the file",
            )
        finally:
            await stop_daemons((gcks, gcks_task), (gm, gm_task))

    asyncio.run(scenario())
    rows = json.loads(keys.read_text())["rows"]
    held = {r["key_id"]: r for r in rows}
    assert set(held) == set(gcks.core.status(gcks.clock())["groups"]["g1"]["key_ids"])
    assert all(len(bytes.fromhex(r["key"])) == 32 for r in rows)
    installs = [
        json.loads(line)
        for line in (tmp_path / "r0.jsonl").read_text().splitlines()
        if '"router_install"' in line
    ]
    assert len(installs) >= 2 and all(i["ok"] for i in installs)
    assert installs[-1]["key_ids"] == sorted(held, key=lambda k: held[k]["send_start"])
