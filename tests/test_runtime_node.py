"""The driver loop: a real GCKS and GMs in one event loop on loopback, and a fake core."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
from pathlib import Path

import pytest

from mrkm.config import GcksConfig, GmConfig
from mrkm.protocol import events as ev
from mrkm.protocol.gm import GmState
from mrkm.runtime.control import request
from mrkm.runtime.eventlog import EventLog
from mrkm.runtime.gcks_process import GcksProcess
from mrkm.runtime.gm_process import GmProcess
from mrkm.runtime.node import FatalError, Node
from mrkm.runtime.transport import Addr
from tests.harness import PSK, make_group
from tests.runtime_support import (
    free_udp_port,
    rekey_group,
    start_daemon,
    stop_daemons,
    until,
    write_signing_key,
)


class FakeCore:
    """A core that raises on request, to show the node survives it."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.timer: float | None = None
        self.fail_receive = False
        self.fail_timer = False
        self.outbox: list[tuple[bytes, Addr]] = []
        self.timer_calls = 0

    def receive(self, data: bytes, addr: Addr, now: float) -> None:
        if self.fail_receive:
            raise IndexError("a core bug")
        self.received.append(data)
        self.outbox.append((b"echo:" + data, addr))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self.outbox = self.outbox, []
        return out

    def next_timer(self) -> float | None:
        return self.timer

    def handle_timer(self, now: float) -> None:
        self.timer_calls += 1
        if self.fail_timer:
            raise ValueError("timer bug")
        self.timer = None

    def events(self) -> list[ev.Event]:
        return [ev.DatagramDropped(0.0, "fake")] if self.received else []


def test_node_survives_a_core_that_raises() -> None:
    async def scenario() -> None:
        core = FakeCore()
        log = EventLog(None, "n")
        node = Node(core, log, clock=lambda: 100.0)
        sent: list[tuple[bytes, Addr]] = []
        node.send = lambda data, addr: sent.append((data, addr))
        node.start()
        core.fail_receive = True
        node.datagram_received(b"x", ("1.2.3.4", 5))
        core.fail_receive = False
        node.datagram_received(b"y", ("1.2.3.4", 5))
        assert sent == [(b"echo:y", ("1.2.3.4", 5))]
        core.timer, core.fail_timer = 99.0, True  # overdue, and raising
        node.step(100.0)
        await until(lambda: core.timer_calls >= 1, 2, "the timer")
        # Backed off, not spinning on the failing timer: the next try is a second away.
        timer = node._timer
        assert timer is not None
        assert timer.when() - asyncio.get_running_loop().time() > 0.9
        assert core.timer_calls == 1
        errors = [r for r in log.records or [] if r["event"] == "internal_error"]
        assert [e["where"] for e in errors] == ["receive", "handle_timer"]
        assert "IndexError: a core bug" in errors[0]["reason"]
        node.stop()

    asyncio.run(scenario())


def test_fatal_hook_stops_before_anything_is_sent() -> None:
    async def scenario() -> None:
        core = FakeCore()
        node = Node(core, EventLog(None, "n"), clock=lambda: 1.0)
        sent: list[bytes] = []
        node.send = lambda data, addr: sent.append(data)

        def cannot_save(now: float) -> None:
            raise FatalError("state.json: cannot write state file: disk full")

        node.before_send.append(cannot_save)
        node.datagram_received(b"z", ("1.2.3.4", 5))
        assert sent == [] and node.stopped.is_set()
        assert node.fatal is not None and "disk full" in node.fatal

    asyncio.run(scenario())


def _send_garbage(data: bytes, addr: Addr) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        s.sendto(data, addr)


def test_gcks_and_two_gms_in_one_loop(tmp_path: Path) -> None:
    group_address, rekey_port, port = rekey_group(), free_udp_port(), free_udp_port()
    group = make_group(2, name="g1", rekey_address=group_address, rekey_port=rekey_port)
    gcks_config = GcksConfig(
        "gcks.mrkm",
        ("127.0.0.1", port),
        (group,),
        signing_key=write_signing_key(tmp_path / "gcks.key"),
        state=tmp_path / "state.json",
        rekey_source="127.0.0.1",
    )
    gcks_log = EventLog(tmp_path / "gcks.jsonl", "gcks.mrkm")
    control = tmp_path / "gcks.sock"
    gcks = GcksProcess(gcks_config, gcks_log, control, signals=False)
    gms = [
        GmProcess(
            GmConfig(
                f"r{i}.mrkm",
                ("127.0.0.1", port),
                ("g1",),
                psk=PSK,
                listen=("127.0.0.1", 0),
                interface="lo",
                rekey_groups=((group_address, rekey_port),),
            ),
            EventLog(tmp_path / f"r{i}.jsonl", f"r{i}.mrkm"),
            keytable=tmp_path / f"r{i}.keys.json",
            signals=False,
        )
        for i in range(2)
    ]

    async def scenario() -> list[int]:
        running = [(gcks, await start_daemon(gcks))]
        try:
            running += [(gm, await start_daemon(gm)) for gm in gms]
            await until(
                lambda: all(g.core.state("g1") is GmState.GM_MEMBER for g in gms),
                10,
                "both GMs registered",
            )
            # Garbage to the GCKS and to the rekey group: dropped, counted, harmless.
            _send_garbage(b"\x00" * 40, ("127.0.0.1", port))
            _send_garbage(b"\x01" * 12, (group_address, rekey_port))
            await until(
                lambda: all(g.core.counters.get("dropped.unknown_sa") for g in gms),
                5,
                "the GMs to drop the garbage",
            )
            answer = await asyncio.to_thread(request, control, {"cmd": "rekey", "group": "g1"})
            assert answer["ok"], answer
            new_key = gcks.core.status(gcks.clock())["groups"]["g1"]["key_ids"][-1]

            def holds_new_key() -> bool:
                return all(("ospfv2", new_key) in g.core.key_table.rows for g in gms)

            await until(holds_new_key, 5, "both GMs to accept the manual rekey")
            await until(
                lambda: all(
                    new_key in [r["key_id"] for r in json.loads(g.keytable.read_text())["rows"]]  # type: ignore[union-attr]
                    for g in gms
                ),
                5,
                "the key table files",
            )
            snapshot = gcks.core.snapshot()["groups"]["g1"]
            assert snapshot["next_message_id"] == answer["result"]["message_id"] + 1
            key_hex = next(t["key"] for t in snapshot["teks"] if int(t["spi"], 16) == new_key)
            for g in gms:
                assert g.keytable is not None
                assert stat.S_IMODE(g.keytable.stat().st_mode) == 0o600
                rows = json.loads(g.keytable.read_text())["rows"]
                assert key_hex in [r["key"] for r in rows]
            assert control.exists()
        finally:
            codes = await stop_daemons(*running)
        return codes

    assert asyncio.run(scenario()) == [0, 0, 0]
    assert not control.exists()  # removed on stop
    gcks_events = [json.loads(line) for line in (tmp_path / "gcks.jsonl").read_text().splitlines()]
    names = [e["event"] for e in gcks_events]
    assert names[0] == "process_started" and names[-1] == "process_stopped"
    assert names.count("member_registered") == 2
    assert any(e["event"] == "datagram_dropped" for e in gcks_events)
    manual = [e for e in gcks_events if e["event"] == "rekey_sent" and e["reason"] == "manual"]
    assert len(manual) == 1
    assert {"event": "control_request", "cmd": "rekey", "ok": True}.items() <= next(
        e for e in gcks_events if e["event"] == "control_request"
    ).items()
    # The state on disk is the state at the stop.
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved == gcks.core.snapshot()


def test_a_bad_interface_is_a_clear_error(tmp_path: Path) -> None:
    from mrkm.runtime.transport import TransportError, rekey_receiver

    with pytest.raises(TransportError, match="no such network interface 'nope0'"):
        rekey_receiver("239.255.0.1", free_udp_port(), "nope0", None)
