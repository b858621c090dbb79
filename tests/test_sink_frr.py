"""The ``frr`` sink: pure command generation, checks and config, then real FRR 8.4.4 routers.

Unit tests (no root) cover key strings, lifetimes, the vtysh batches for
given rows, check() refusals, config errors and install() against a fake
vtysh. The root tests run zebra/ospfd/ospf6d in namespaces
(tests/frr_support.py) with a real GCKS and real GMs whose only way to key
the routers is the ``frr`` sink:

* three routers in a line reach Full only once MRKM installed keys, then
  survive 20 rekeys of an OSPFv2 Keyed-MD5 group and an OSPFv3
  HMAC-SHA-256 group with zero adjacency drops (100 ms sampling), and every
  captured packet verifies with a key a GM logged (mrkm.crypto.routing);
* a router whose GM is not authorized never reaches Full;
* a restarted ospfd / ospf6d gets the keys again and its adjacencies return.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mrkm.config import ConfigError
from mrkm.crypto.routing import ospfv2_verify, ospfv3_verify
from mrkm.errors import MrkmError
from mrkm.keytable import KeyRow, KeyTable
from mrkm.sinks import SinkError, build_sinks
from mrkm.sinks.frr import FrrProtocol, FrrSink
from mrkm.sinks.frr_commands import (
    ALWAYS,
    LOCK_CHAIN_INDEX,
    LOCK_KEY_ID,
    NEVER,
    KnownState,
    after_batch,
    daemon_batches,
    desired_state,
    format_lifetime,
    hmac_key_string,
    md5_key_string,
    parse_running_config,
    vtysh_batch,
)
from mrkm.wire.registry import IntegId

# -- pure functions ---------------------------------------------------------------------------

NOW = 1_800_000_000.25  # 2027-01-15 08:00:00.25 UTC
LOCK = "LOCKLOCKLOCKLOCK"


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """FRR lifetimes are local time; pin the zone for exact strings."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def v2row(key_id: int, send_start: float, key: bytes | None = None, **kw: Any) -> KeyRow:
    fields: dict[str, Any] = {
        "group": "v2",
        "protocol": "ospfv2",
        "key_id": key_id,
        "algorithm": "md5",
        "key": key if key is not None else bytes([key_id % 256]) * 16,
        "accept_start": send_start - 1,
        "send_start": send_start,
        "send_end": send_start + 600,
        "accept_end": send_start + 600,
    }
    return KeyRow(**{**fields, **kw})


def v3row(key_id: int, send_start: float, **kw: Any) -> KeyRow:
    return v2row(
        key_id,
        send_start,
        **{"group": "v3", "protocol": "ospfv3", "algorithm": "hmac-sha-256", **kw},
        key=bytes([key_id % 256]) * 32,
    )


def test_md5_key_string_is_base64url_of_the_first_12_octets() -> None:
    key = bytes(range(16))
    assert md5_key_string(key) == "AAECAwQFBgcICQoL"
    assert len(md5_key_string(os.urandom(16))) == 16
    assert md5_key_string(b"\xff" * 16) == "________________"
    assert md5_key_string(b"\x00" * 3) == "AAAA"  # short keys: shorter strings, zero-padded by FRR


def test_hmac_key_string_is_hex_of_every_octet() -> None:
    assert hmac_key_string(bytes(range(32))) == bytes(range(32)).hex()
    assert len(hmac_key_string(os.urandom(32))) == 64


def test_lifetimes_round_send_up_accept_down(utc: None) -> None:
    # send [NOW, NOW + 10.5) -> whole seconds [08:00:01, 08:00:10]: never early
    assert (
        format_lifetime(NOW, NOW + 10.5, exact_start=True)
        == "08:00:01 15 Jan 2027 08:00:10 15 Jan 2027"
    )
    assert (
        format_lifetime(NOW, NOW + 10.5, exact_start=False)
        == "08:00:00 15 Jan 2027 08:00:10 15 Jan 2027"
    )
    # one key's send end and the next one's start never share a second
    first = format_lifetime(NOW - 100, NOW + 3.7, exact_start=True).split()[-4:]
    second = format_lifetime(NOW + 3.7, NOW + 50, exact_start=True).split()[:4]
    assert first[0] == "08:00:03" and second[0] == "08:00:04"
    assert format_lifetime(NOW, NOW + 1.2, exact_start=True) == NEVER  # < 2 s: FRR cannot
    assert format_lifetime(NOW, math.inf, exact_start=True).endswith("infinite")
    assert format_lifetime(NOW, 2_200_000_000, exact_start=True).endswith("infinite")  # 2039
    assert format_lifetime(100.0, NOW, exact_start=False).startswith("00:00:00 1 Jan 1993")


RUNNING = """\
key chain mrkm
 key 7
  key-string old
 exit
exit
key chain other
 key 9
 exit
exit
!
interface eth0
 ip ospf authentication message-digest
 ip ospf message-digest-key 255 md5 someLockKey12345
 ipv6 ospf6 authentication keychain mrkm
exit
!
interface eth1
 ip ospf message-digest-key 3 md5 x
exit
!
"""


def test_parse_running_config_finds_key_ids_only_of_ours() -> None:
    known = parse_running_config(RUNNING, ["eth0"], "mrkm")
    assert known.resync
    assert known.md5["eth0"].ids == {255} and known.md5["eth0"].last is None
    assert "eth1" not in known.md5
    assert known.chain == {7: None}


def _batch(known: KnownState, rows: Sequence[KeyRow], now: float) -> tuple[list[str], KnownState]:
    desired = desired_state(rows, now, ospfv2=True, ospfv3=True, lock=LOCK)
    commands = vtysh_batch(
        daemon_batches(
            known,
            desired,
            now,
            ospfv2_interfaces=["eth0"],
            ospfv3_interfaces=["eth0"],
            keychain="mrkm",
        )
    )
    return commands, after_batch(known, desired, commands, ospfv2_interfaces=["eth0"])


def test_batches_for_a_rekey_of_each_protocol(utc: None) -> None:
    table = KeyTable()
    for row in (v2row(1, NOW - 50), v3row(1, NOW - 50)):
        table.install(row, 10)
    rows = list(table.rows.values())
    s1, h1 = md5_key_string(rows[0].key), hmac_key_string(rows[1].key)

    # First install: after a read, the lock and a stale chain key go, auth is re-asserted.
    commands, known = _batch(parse_running_config(RUNNING, ["eth0"], "mrkm"), rows, NOW)
    assert commands == [
        "configure terminal",
        "interface eth0",
        "ip ospf authentication message-digest",
        f"ip ospf message-digest-key 1 md5 {s1}",
        f"no ip ospf message-digest-key {LOCK_KEY_ID}",
        "exit",
        "key chain mrkm",
        "key 1",
        "send-lifetime 07:59:11 15 Jan 2027 08:09:10 15 Jan 2027",
        "accept-lifetime 07:59:09 15 Jan 2027 08:09:10 15 Jan 2027",
        "cryptographic-algorithm hmac-sha-256",
        f"key-string {h1}",
        "exit",
        "no key 7",
        "exit",
        "interface eth0",
        "ipv6 ospf6 authentication keychain mrkm",  # no final exit: vtysh ends there
    ]
    assert _batch(known, rows, NOW)[0] == []  # idempotent: nothing to do, no call

    # A rekey arrives at NOW + 1 with ATD 5: OSPFv2 keeps sending key 1 (FRR would
    # switch at once), the key chain gets key 2 and key 1's new end.
    received = NOW + 1
    for row in (v2row(2, received + 5), v3row(2, received + 5)):
        table.install(replace(row, accept_start=received), 10)
    rows = list(table.rows.values())
    commands, known = _batch(known, rows, received)
    assert commands == [
        "configure terminal",
        "key chain mrkm",
        "key 1",
        "send-lifetime 07:59:11 15 Jan 2027 08:00:06 15 Jan 2027",
        "accept-lifetime 07:59:09 15 Jan 2027 08:00:16 15 Jan 2027",
        "exit",
        "key 2",
        "send-lifetime 08:00:07 15 Jan 2027 08:10:06 15 Jan 2027",
        "accept-lifetime 08:00:01 15 Jan 2027 08:10:06 15 Jan 2027",
        "cryptographic-algorithm hmac-sha-256",
        f"key-string {hmac_key_string(bytes([2]) * 32)}",
    ]

    # At T the OSPFv2 key switches: the new key becomes the last (and only) one.
    t = received + 5
    commands, known = _batch(known, rows, t)
    assert commands == [
        "configure terminal",
        "interface eth0",
        f"ip ospf message-digest-key 2 md5 {md5_key_string(bytes([2]) * 16)}",
        "no ip ospf message-digest-key 1",
    ]

    # Key 1 of the chain expires: FRR's own lifetime already retired it, so its
    # removal waits for the next change (one router call per rekey).
    later = t + 20
    table.expire(later)
    rows = list(table.rows.values())
    commands, known = _batch(known, rows, later)
    assert commands == [] and set(known.chain) == {1, 2}
    table.install(v3row(3, later + 5, accept_start=later), 10)
    commands, known = _batch(known, list(table.rows.values()), later)
    assert "no key 1" in commands and "key 3" in commands and set(known.chain) == {2, 3}


def test_no_key_to_send_installs_the_lock(utc: None) -> None:
    row = v2row(4, NOW + 30)  # accepted, not yet sent
    commands, _ = _batch(KnownState(), [row], NOW)
    assert commands == [
        "configure terminal",
        "interface eth0",
        f"ip ospf message-digest-key {LOCK_KEY_ID} md5 {LOCK}",
    ]


def test_the_key_chain_always_ends_with_its_lock(utc: None) -> None:
    desired = desired_state(
        [v3row(5, NOW + 30)], NOW, ospfv2=False, ospfv3=True, lock=LOCK, chain_lock="ab" * 32
    )
    assert sorted(desired.chain) == [5, LOCK_CHAIN_INDEX]
    commands = vtysh_batch(
        daemon_batches(
            KnownState(),
            desired,
            NOW,
            ospfv2_interfaces=[],
            ospfv3_interfaces=["eth0"],
            keychain="mrkm",
        )
    )
    assert commands[:3] == ["configure terminal", "key chain mrkm", "key 5"]
    assert commands[-5:] == [  # last in index order: FRR sends it only when no key holds
        f"key {LOCK_CHAIN_INDEX}",
        f"send-lifetime {ALWAYS}",
        f"accept-lifetime {ALWAYS}",
        "cryptographic-algorithm hmac-sha-256",
        f"key-string {'ab' * 32}",
    ]


def _sink(tmp_path: Path, vtysh: str = "vtysh") -> FrrSink:
    return FrrSink(
        "r1-frr",
        tmp_path,
        FrrProtocol(("eth0",), "v2"),
        FrrProtocol(("eth0",), "v3", "mrkm"),
        vtysh=vtysh,
    )


def test_next_change_is_the_next_ospfv2_send_boundary(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    rows = [v2row(1, NOW - 50, send_end=NOW + 5), v2row(2, NOW + 5), v3row(3, NOW + 2)]
    assert sink.next_change(rows, NOW) == NOW + 5
    assert sink.next_change(rows, NOW + 5) == NOW + 605  # key 2's end
    assert sink.next_change([v3row(3, NOW + 2)], NOW) is None  # key chains switch alone
    other = v2row(9, NOW + 1, group="elsewhere")
    assert sink.next_change([other], NOW) is None
    v3only = FrrSink("x", tmp_path, None, FrrProtocol(("eth0",)))
    assert v3only.next_change(rows, NOW) is None


@pytest.mark.parametrize(
    ("row", "words"),
    [
        (v2row(1, NOW, algorithm="hmac-sha-256", key=b"k" * 32), "Keyed-MD5 only"),
        (v2row(1, NOW, key=b"k" * 17), "17 octets"),
        (v2row(1, NOW, key=b""), "empty key"),
        (v2row(0, NOW), "1 to 255"),
        (v3row(1, NOW, algorithm="hmac-sha-384"), "--with-crypto=openssl"),
        (v3row(1, NOW, algorithm="hmac-sha-1"), "md5 and hmac-sha-256 only"),
        (v3row(70000, NOW), "16 bits"),
        (v3row(1, 2_200_000_000), "after 2035"),
        (v2row(1, NOW, protocol="pim-ah", group="v2"), "OSPFv2 and OSPFv3 keys only"),
    ],
)
def test_check_refuses_keys_frr_cannot_use(tmp_path: Path, row: KeyRow, words: str) -> None:
    with pytest.raises(SinkError, match=words.replace("-", r"\-")):
        _sink(tmp_path).check(row)


def test_check_accepts_what_frr_can_use(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.check(v2row(255, NOW, key=b"k" * 16))
    sink.check(v2row(1, NOW, key=b"short"))
    sink.check(v3row(0xFFFF, NOW))
    sink.check(v3row(1, NOW, algorithm="md5"))


def test_relevant_keeps_the_configured_groups(tmp_path: Path) -> None:
    rows = [v2row(1, NOW), v3row(2, NOW), v2row(3, NOW, group="other")]
    assert [r.key_id for r in _sink(tmp_path).relevant(rows)] == [1, 2]
    v2only = FrrSink("x", tmp_path, FrrProtocol(("eth0",)))
    assert [r.key_id for r in v2only.relevant(rows)] == [1, 3]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"ospfv2": {"interfaces": ["e0"]}}, r"gm\.sinks\[0\]\.vty_socket: missing"),
        ({"vty_socket": "/run/frr"}, r"gm\.sinks\[0\]: give ospfv2, ospfv3 or both"),
        ({"vty_socket": "/r", "ospfv2": {}}, r"gm\.sinks\[0\]\.ospfv2\.interfaces"),
        ({"vty_socket": "/r", "ospfv2": ["e0"]}, r"gm\.sinks\[0\]\.ospfv2: expected a mapping"),
        (
            {"vty_socket": "/r", "ospfv2": {"interfaces": ["has space"]}},
            r"gm\.sinks\[0\]\.ospfv2\.interfaces\[0\]",
        ),
        (
            {"vty_socket": "/r", "ospfv2": {"interfaces": ["e0", "e0"]}},
            r"listed twice",
        ),
        (
            {"vty_socket": "/r", "ospfv2": {"interfaces": ["e0"], "keychain": "k"}},
            r"gm\.sinks\[0\]\.ospfv2: unknown field\(s\) keychain",
        ),
        (
            {"vty_socket": "/r", "ospfv3": {"interfaces": ["e0"], "keychain": "a b"}},
            r"gm\.sinks\[0\]\.ospfv3\.keychain",
        ),
        (
            {"vty_socket": "/r", "ospfv3": {"interfaces": ["e0"], "group": 5}},
            r"gm\.sinks\[0\]\.ospfv3\.group",
        ),
        (
            {"vty_socket": "/r", "ospfv2": {"interfaces": ["e0"]}, "timeout": 0},
            r"gm\.sinks\[0\]\.timeout",
        ),
        (
            {"vty_socket": "/r", "ospfv2": {"interfaces": ["e0"]}, "socket": "x"},
            r"gm\.sinks\[0\]: unknown field\(s\) socket",
        ),
    ],
)
def test_config_errors_name_the_field(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_sinks([{"type": "frr", **entry}])


def test_config_builds_the_sink() -> None:
    (sink,) = build_sinks(
        [
            {
                "type": "frr",
                "name": "r1",
                "vty_socket": "/run/frr/r1",
                "ospfv2": {"interfaces": ["r1-r2"], "group": "g2"},
                "ospfv3": {"interfaces": ["r1-r2", "r1-r3"]},
                "timeout": 5,
            }
        ]
    )
    assert isinstance(sink, FrrSink)
    assert sink.vty_socket == Path("/run/frr/r1") and sink.daemons == ("ospfd", "ospf6d")
    assert sink.ospfv2 == FrrProtocol(("r1-r2",), "g2")
    assert sink.ospfv3 == FrrProtocol(("r1-r2", "r1-r3"), None, "mrkm")
    assert sink.timeout == 5.0


FAKE_VTYSH = """\
#!{python}
import json, pathlib, sys
here = pathlib.Path({here!r})
with (here / "calls.jsonl").open("a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if (here / "fail").exists():
    print("OSPF: something failed for " + " ".join(sys.argv[1:]))
    sys.exit(13)
if "show running-config" in sys.argv:
    print((here / "running.txt").read_text())
"""


@pytest.fixture
def fake_vtysh(tmp_path: Path) -> Path:
    script = tmp_path / "vtysh"
    script.write_text(FAKE_VTYSH.format(python=sys.executable, here=str(tmp_path)))
    script.chmod(0o755)
    (tmp_path / "running.txt").write_text(RUNNING)
    for daemon in ("ospfd", "ospf6d"):
        (tmp_path / f"{daemon}.pid").write_text(f"{os.getpid()}\n")
    return tmp_path


def _calls(here: Path) -> list[list[str]]:
    path = here / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_install_reads_once_then_one_call_per_change(fake_vtysh: Path) -> None:
    sink = _sink(fake_vtysh, vtysh=str(fake_vtysh / "vtysh"))
    rows = [v2row(1, NOW - 5), v3row(1, NOW - 5)]
    first = sink.install(rows, NOW)
    assert first.ok and first.calls == 2 and first.key_ids == (1, 1)
    read, write = _calls(fake_vtysh)
    assert read == ["--vty_socket", str(fake_vtysh), "-c", "show running-config"]
    assert write[:4] == ["--vty_socket", str(fake_vtysh), "-c", "configure terminal"]
    assert write.count("-c") == len(write[2:]) // 2  # every command its own -c

    again = sink.install(rows, NOW + 1)
    assert again.calls == 0 and "unchanged" in again.detail and len(_calls(fake_vtysh)) == 2

    rows.append(v2row(2, NOW + 4, accept_start=NOW + 2))
    assert sink.install(rows, NOW + 2).calls == 0  # received: OSPFv2 waits for T
    switch = sink.install(rows, NOW + 4)
    assert switch.calls == 1 and switch.key_ids[0] == 2 and "ospfv2 send=2" in switch.detail


def test_install_rereads_after_a_daemon_restart(fake_vtysh: Path) -> None:
    sink = _sink(fake_vtysh, vtysh=str(fake_vtysh / "vtysh"))
    rows = [v2row(1, NOW - 5), v3row(1, NOW - 5)]
    sink.install(rows, NOW)
    epoch = sink.router_epoch()
    assert epoch.startswith(f"ospfd:{os.getpid()}:") and ",ospf6d:" in epoch
    (fake_vtysh / "ospfd.pid").write_text("1\n")  # "restarted": another live process
    assert sink.router_epoch() != epoch
    again = sink.install(rows, NOW + 1)
    assert again.calls == 2
    assert _calls(fake_vtysh)[-2][-1] == "show running-config"
    (fake_vtysh / "ospfd.pid").unlink()
    assert sink.router_epoch().startswith("ospfd:down,")


def test_install_failure_is_a_sink_error_without_keys_and_forces_a_read(fake_vtysh: Path) -> None:
    sink = _sink(fake_vtysh, vtysh=str(fake_vtysh / "vtysh"))
    rows = [v2row(1, NOW - 5), v3row(1, NOW - 5)]
    sink.install(rows, NOW)
    (fake_vtysh / "fail").touch()
    rows.append(v2row(2, NOW + 1))
    with pytest.raises(SinkError, match="exited 13") as info:
        sink.install(rows, NOW + 1)
    assert md5_key_string(rows[-1].key) not in str(info.value) and "<key>" in str(info.value)
    (fake_vtysh / "fail").unlink()
    assert sink.install(rows, NOW + 1).calls == 2  # state unknown: read first


def test_missing_vtysh_is_a_sink_error(tmp_path: Path) -> None:
    sink = _sink(tmp_path, vtysh=str(tmp_path / "no-such-vtysh"))
    with pytest.raises(SinkError, match="not found"):
        sink.install([v2row(1, NOW)], NOW)


class FakeVtyDaemons:
    """ospfd.vty and ospf6d.vty in one folder, speaking FRR's vty protocol (command + NUL
    in; output + ``00 00 00 status`` out), one session per connection. Every command is
    logged per daemon; a command that contains ``refuse`` gets status 2. As in FRR, a
    session starts in VIEW_NODE: ``show running-config`` and ``configure terminal``
    are unknown until ``enable``."""

    def __init__(self, folder: Path, running: str, refuse: str = "") -> None:
        self.folder, self.running, self.refuse = folder, running, refuse
        self.sessions: dict[str, list[list[str]]] = {"ospfd": [], "ospf6d": []}
        self.socks = []
        for daemon in self.sessions:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(str(folder / f"{daemon}.vty"))
            sock.listen(8)
            sock.settimeout(0.2)
            self.socks.append((daemon, sock))
            (folder / f"{daemon}.pid").write_text(f"{os.getpid()}\n")
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for daemon, sock in self.socks:
                try:
                    conn, _ = sock.accept()
                except TimeoutError:
                    continue
                with conn:
                    self._session(daemon, conn)

    def _session(self, daemon: str, conn: socket.socket) -> None:
        log: list[str] = []
        self.sessions[daemon].append(log)
        buffer, enabled = b"", False
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                command = raw.decode()
                log.append(command)
                enabled = enabled or command == "enable"
                needs_enable = command in ("show running-config", "configure terminal")
                if (self.refuse and self.refuse in command) or (needs_enable and not enabled):
                    conn.sendall(f"% Unknown command: {command}\n".encode() + b"\0\0\0\x02")
                elif command == "show running-config":
                    conn.sendall(self.running.encode() + b"\0\0\0\0")
                else:
                    conn.sendall(b"\0\0\0\0")

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        for _, sock in self.socks:
            sock.close()


def test_vty_transport_reads_each_daemon_and_writes_each_its_part(tmp_path: Path) -> None:
    daemons = FakeVtyDaemons(tmp_path, RUNNING)
    try:
        sink = FrrSink(
            "r1-frr",
            tmp_path,
            FrrProtocol(("eth0",), "v2"),
            FrrProtocol(("eth0",), "v3", "mrkm"),
            vtysh=str(tmp_path / "no-vtysh-needed"),
            transport="vty",
        )
        rows = [v2row(1, NOW - 5), v3row(1, NOW - 5)]
        first = sink.install(rows, NOW)
        assert first.ok and first.calls == 2 and first.key_ids == (1, 1)
        v2_read, v2_write = daemons.sessions["ospfd"]
        v3_read, v3_write = daemons.sessions["ospf6d"]
        assert v2_read == v3_read == ["enable", "show running-config"]
        # Each daemon gets only its own part, as vtysh would have forwarded it.
        assert v2_write[:3] == ["enable", "configure terminal", "interface eth0"]
        assert "no ip ospf message-digest-key 255" in v2_write  # the lock key of RUNNING
        assert v2_write[-1] == "end" and not any("ospf6" in c or "key chain" in c for c in v2_write)
        assert "key chain mrkm" in v3_write and "no key 7" in v3_write
        assert not any("message-digest" in c for c in v3_write)
        assert sink.install(rows, NOW + 1).calls == 0  # unchanged: no session at all
        assert len(daemons.sessions["ospfd"]) == 2
    finally:
        daemons.close()


def test_vty_transport_refusal_is_a_sink_error_without_keys(tmp_path: Path) -> None:
    daemons = FakeVtyDaemons(tmp_path, RUNNING, refuse="message-digest-key 2 md5")
    try:
        sink = FrrSink("r1-frr", tmp_path, FrrProtocol(("eth0",), "v2"), transport="vty", timeout=5)
        rows = [v2row(1, NOW - 5)]
        sink.install(rows, NOW)
        rows.append(v2row(2, NOW + 1))
        with pytest.raises(SinkError, match=r"ospfd over .*ospfd.vty: .*status 2") as info:
            sink.install(rows, NOW + 1)
        assert md5_key_string(rows[-1].key) not in str(info.value) and "<key>" in str(info.value)
        daemons.refuse = ""
        assert sink.install(rows, NOW + 1).calls == 2  # state unknown: read first
    finally:
        daemons.close()
    with pytest.raises(SinkError, match="ospfd over"):  # nobody listens any more
        sink.install([v2row(3, NOW + 2)], NOW + 2)


def test_transport_must_be_known(tmp_path: Path) -> None:
    entry = {"type": "frr", "vty_socket": str(tmp_path), "ospfv2": {"interfaces": ["eth0"]}}
    with pytest.raises(
        ConfigError, match=r"gm.sinks\[0\].transport: 'ssh' is not one of vtysh, vty"
    ):
        build_sinks([{**entry, "transport": "ssh"}])
    assert build_sinks([{**entry, "transport": "vty"}])[0].transport == "vty"  # type: ignore[attr-defined]


# -- real FRR routers -------------------------------------------------------------------------

V2_GROUP = "ospfv2-area0"
V3_GROUP = "ospfv3-area0"
REKEYS = 20
ATD, DTD = 1, 3


def _group(name: str, protocol: str, algorithm: str) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": protocol,
        "algorithm": algorithm,
        "lifetime": 600,
        "rekey_margin": 60,
        "atd": ATD,
        "dtd": DTD,
        "rekey_address": "239.192.0.1",
        "rekey_port": 848,
        "copies": [0, 0.25, 0.5],
        "heartbeat": 0,
        "prime": 0,
    }


GROUPS = [_group(V2_GROUP, "ospfv2", "md5"), _group(V3_GROUP, "ospfv3", "hmac-sha-256")]


def _sinks(frr: Any, transport: str = "vtysh") -> list[dict[str, Any]]:
    ifs = list(frr.router.interfaces)
    return [
        {
            "type": "frr",
            "name": f"{frr.name}-frr",
            "vty_socket": str(frr.vty),
            "ospfv2": {"interfaces": ifs, "group": V2_GROUP},
            "ospfv3": {"interfaces": ifs, "group": V3_GROUP, "keychain": frr.keychain},
            "transport": transport,
        },
        {"type": "file", "name": "keys", "path": str(frr.router.workdir / "keys.json")},
    ]


class KeyLog:
    """Every key row the GMs' file sinks showed (keys included), polled every 100 ms."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = paths
        self.rows: dict[tuple[str, int], bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _poll(self) -> None:
        for path in self.paths:
            try:
                table = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for row in table["rows"]:
                self.rows[(row["protocol"], row["key_id"])] = bytes.fromhex(row["key"])

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._poll()

    def __enter__(self) -> KeyLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._poll()


def _installs(events: list[dict[str, Any]], sink: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "router_install" and e["sink"] == sink]


def _send_starts(events: list[dict[str, Any]], protocol: str) -> dict[int, float]:
    """Key id -> the GM's activation time T (send_start when the key first arrived)."""
    out: dict[int, float] = {}
    for event in events:
        if event["event"] == "keys_installed":
            for row in event["rows"]:
                if row["protocol"] == protocol:
                    out.setdefault(row["key_id"], row["send_start"])
    return out


def _latest_key_id(gcks_events: list[dict[str, Any]], group: str) -> int:
    sent = [e for e in gcks_events if e["event"] == "rekey_sent" and e["group"] == group]
    return int(sent[-1]["key_ids"][0])


def _analyse(pcap: Path, keys: dict[tuple[str, int], bytes]) -> dict[str, Any]:
    """Verify every OSPF packet of the capture with the keys the GMs logged."""
    from scapy.all import IP, IPv6, raw, rdpcap

    from mrkm.sinks.frr_commands import hmac_key_string, md5_key_string

    v2keys = {
        kid: (IntegId.ROUTING_KEYED_MD5, md5_key_string(k).encode())
        for (p, kid), k in keys.items()
        if p == "ospfv2"
    }
    v3keys = {
        kid: (IntegId.ROUTING_HMAC_SHA256, hmac_key_string(k).encode())
        for (p, kid), k in keys.items()
        if p == "ospfv3"
    }
    seen: dict[str, list[tuple[float, str, int]]] = {"v2": [], "v3": []}
    bad: list[str] = []
    for packet in rdpcap(str(pcap)):
        t = float(packet.time)
        if packet.haslayer(IP) and packet[IP].proto == 89:
            payload = raw(packet[IP].payload)[: packet[IP].len - packet[IP].ihl * 4]
            rid = socket.inet_ntoa(payload[4:8])
            autype = int.from_bytes(payload[14:16], "big")
            try:
                info = ospfv2_verify(payload, v2keys)
                seen["v2"].append((t, rid, info.key_id))
            except MrkmError as exc:
                bad.append(f"v2 {t:.3f} {rid} AuType {autype}: {exc}")
        elif packet.haslayer(IPv6) and packet[IPv6].nh == 89:
            payload = raw(packet[IPv6].payload)[: packet[IPv6].plen]
            rid = socket.inet_ntoa(payload[4:8])
            src = socket.inet_pton(socket.AF_INET6, packet[IPv6].src)
            try:
                info3 = ospfv3_verify(payload, src, v3keys, key_preparation="frr8")
                seen["v3"].append((t, rid, info3.sa_id))
            except MrkmError as exc:
                bad.append(f"v3 {t:.3f} {rid}: {exc}")
    return {"seen": seen, "bad": bad}


def _locked_packets(pcap: Path, router_id: str) -> dict[str, Any]:
    """Count ``router_id``'s packets that carry authentication with a lock key only."""
    from scapy.all import IP, IPv6, raw, rdpcap

    from mrkm.errors import IntegrityCheckFailed

    out: dict[str, Any] = {"v2": 0, "v3": 0, "other": []}
    for packet in rdpcap(str(pcap)):
        if packet.haslayer(IP) and packet[IP].proto == 89:
            payload = raw(packet[IP].payload)[: packet[IP].len - packet[IP].ihl * 4]
            proto, check = "v2", "Key ID 255"
        elif packet.haslayer(IPv6) and packet[IPv6].nh == 89:
            payload = raw(packet[IPv6].payload)[: packet[IPv6].plen]
            proto, check = "v3", "SA ID 0"
        else:
            continue
        if socket.inet_ntoa(payload[4:8]) != router_id:
            continue
        try:
            if proto == "v2":
                ospfv2_verify(payload, {})
            else:
                src = socket.inet_pton(socket.AF_INET6, packet[IPv6].src)
                ospfv3_verify(payload, src, {}, key_preparation="frr8")
        except IntegrityCheckFailed as exc:  # well-formed, authenticated, unknown key
            if check in str(exc):
                out[proto] += 1
                continue
            out["other"].append(f"{proto}: {exc}")
        except MrkmError as exc:  # AuType 0, no trailer, ...
            out["other"].append(f"{proto}: {exc}")
    return out


def _switches(
    seen: list[tuple[float, str, int]], key_ids: Sequence[int]
) -> dict[int, dict[str, tuple[float | None, float | None]]]:
    """For each new key: per router (last packet with the previous key, first with the new)."""
    out: dict[int, dict[str, tuple[float | None, float | None]]] = {}
    routers = sorted({rid for _, rid, _ in seen})
    for prev, new in itertools.pairwise(key_ids):
        out[new] = {}
        for rid in routers:
            old_t = [t for t, r, k in seen if r == rid and k == prev]
            new_t = [t for t, r, k in seen if r == rid and k == new]
            out[new][rid] = (max(old_t, default=None), min(new_t, default=None))
    return out


def _spread(values: Sequence[float]) -> float:
    return max(values) - min(values) if values else 0.0


@pytest.mark.root
@pytest.mark.slow
def test_three_frr_routers_keep_full_through_20_rekeys(tmp_path: Path) -> None:
    from mrkm.runtime.control import request
    from testbed.processes import wait_until
    from tests.frr_support import Capture, NeighborSampler, drops, frr_lab, start_frr

    with frr_lab(tmp_path, "fa") as net:
        routers = [net.add_router(n) for n in ("r1", "r2", "r3")]
        net.link("r1", "r2")
        net.link("r2", "r3")
        frrs = [start_frr(r, r.interfaces, r.interfaces) for r in routers]
        rid = {r.name: r.loopback for r in routers}
        expected = {"r1": {rid["r2"]}, "r2": {rid["r1"], rid["r3"]}, "r3": {rid["r2"]}}
        sampler = NeighborSampler(frrs).start()
        try:
            net.start_gcks(GROUPS, [f"{r.name}.mrkm" for r in routers])
            for frr in frrs:
                net.start_gm(frr.router, [V2_GROUP, V3_GROUP], _sinks(frr))

            def all_full() -> bool:
                return all(
                    f.neighbors_v2().keys() >= expected[f.name]
                    and all(s == "Full" for s in f.neighbors_v2().values())
                    and all(f.neighbors_v3().get(n) == "Full" for n in expected[f.name])
                    for f in frrs
                )

            wait_until(all_full, 40, "Full adjacencies keyed by MRKM", interval=0.1)
            t_full = time.time()

            def sampled_full() -> bool:  # the sampler polls every 100 ms: let it catch up
                samples = sampler.snapshot()
                return all(
                    any(s.router == f.name and "Full" in getattr(s, v).values() for s in samples)
                    for f in frrs
                    for v in ("v2", "v3")
                )

            wait_until(sampled_full, 5, "the sampler to see every router Full", interval=0.05)
            # Full only after MRKM installed a key to send on that router.
            for frr in frrs:
                installs = [
                    e
                    for e in _installs(net.events(f"gm-{frr.name}"), f"{frr.name}-frr")
                    if e["ok"] and not e["detail"].startswith("calls=0")
                ]
                keyed_v2 = min(e["t"] for e in installs if "ospfv2 send=lock" not in e["detail"])
                keyed_v3 = min(e["t"] for e in installs if "ospfv3 chain=-" not in e["detail"])
                mine = [s for s in sampler.snapshot() if s.router == frr.name]
                assert min(s.t for s in mine if "Full" in s.v2.values()) >= keyed_v2
                assert min(s.t for s in mine if "Full" in s.v3.values()) >= keyed_v3
                assert mine[0].t < keyed_v2 and mine[0].v2 == {} and mine[0].v3 == {}

            with (
                KeyLog([r.workdir / "keys.json" for r in routers]) as keylog,
                Capture(routers[1], tmp_path / "r2.pcap"),
            ):
                first = net.events("gm-r1")
                ids: dict[str, list[int]] = {
                    V2_GROUP: list(_send_starts(first, "ospfv2")),
                    V3_GROUP: list(_send_starts(first, "ospfv3")),
                }
                assert len(ids[V2_GROUP]) == len(ids[V3_GROUP]) == 1
                control = tmp_path / "gcks.sock"
                for _ in range(REKEYS):
                    for group in (V2_GROUP, V3_GROUP):
                        assert request(control, {"cmd": "rekey", "group": group})["ok"]
                        ids[group].append(_latest_key_id(net.events("gcks"), group))
                    new2, new3 = ids[V2_GROUP][-1], ids[V3_GROUP][-1]

                    def switched(new2: int = new2, new3: int = new3) -> bool:
                        t_v3 = []
                        for frr in frrs:
                            events = net.events(f"gm-{frr.name}")
                            if not any(
                                e["ok"] and f"ospfv2 send={new2};" in e["detail"]
                                for e in _installs(events, f"{frr.name}-frr")
                            ):
                                return False
                            starts = _send_starts(events, "ospfv3")
                            if new3 not in starts:
                                return False
                            t_v3.append(starts[new3])
                        return time.time() > math.ceil(max(t_v3)) + 0.3

                    wait_until(switched, 15, f"the switch to keys {new2}/{new3}", interval=0.05)

                def last_keys_on_wire() -> bool:
                    seen = _analyse(tmp_path / "r2.pcap", keylog.rows)["seen"]
                    return all(
                        {r for _, r, k in seen[proto] if k == ids[group][-1]} == set(rid.values())
                        for proto, group in (("v2", V2_GROUP), ("v3", V3_GROUP))
                    )

                wait_until(last_keys_on_wire, 10, "every router sending the last keys", 0.5)
            samples = sampler.stop()
        finally:
            sampler.stop()
        gm_events = {f.name: net.events(f"gm-{f.name}") for f in frrs}

    # Zero adjacency drops from the first all-Full moment to the end.
    assert drops(samples, expected, "v2", t_full) == []
    assert drops(samples, expected, "v3", t_full) == []
    assert len(samples) > 3 * 10 * (samples[-1].t - t_full) * 0.8  # ~100 ms sampling held

    # Every packet verifies with a key a GM logged (the lock, AuType 0, no trailer: fail).
    result = _analyse(tmp_path / "r2.pcap", keylog.rows)
    assert result["bad"] == [], result["bad"][:5]
    seen = result["seen"]
    assert len(seen["v2"]) > 100 and len(seen["v3"]) > 100
    assert {rid for _, rid, _ in seen["v2"]} == set(rid.values())

    # Key id changes on the wire at the activation time T of each router's GM.
    report: dict[str, Any] = {}
    for proto, group, row_proto in (("v2", V2_GROUP, "ospfv2"), ("v3", V3_GROUP, "ospfv3")):
        names = {r.loopback: r.name for r in routers}
        starts = {names[r]: _send_starts(gm_events[names[r]], row_proto) for r in names}
        lags, spreads, late = [], [], []
        for new, per_router in _switches(seen[proto], ids[group]).items():
            firsts = []
            for router_id, (last_old, first_new) in per_router.items():
                t_act = starts[names[router_id]][new]
                boundary = math.ceil(t_act) if proto == "v3" else t_act
                assert first_new is not None, (proto, new, router_id)
                assert first_new >= t_act - 0.005, (proto, new, router_id, first_new, t_act)
                if last_old is not None:
                    late.append(last_old - boundary)
                    assert last_old <= boundary + 0.5, (proto, new, router_id, last_old, t_act)
                lags.append(first_new - boundary)
                firsts.append(first_new)
            spreads.append(_spread(firsts))
        report[proto] = {
            "switches": len(spreads),
            "first_packet_spread_s": {"median": statistics.median(spreads), "max": max(spreads)},
            "first_packet_after_T_s": {"median": statistics.median(lags), "max": max(lags)},
            "last_old_packet_after_T_s": {"max": max(late) if late else None},
        }
    # The OSPFv2 switch itself, from the routers' confirmations (router_install t).
    v2_spread, v2_latency = [], []
    for new in ids[V2_GROUP][1:]:
        confirmed, t_acts = [], []
        for name, events in gm_events.items():
            install = next(
                e
                for e in _installs(events, f"{name}-frr")
                if f"ospfv2 send={new};" in e["detail"] and e["ok"]
            )
            confirmed.append(install["t"])
            t_acts.append(_send_starts(events, "ospfv2")[new])
            v2_latency.append(install["t"] - t_acts[-1])
        v2_spread.append(_spread(confirmed))
    report["v2"]["switch_confirmed_spread_s"] = {
        "median": statistics.median(v2_spread),
        "max": max(v2_spread),
    }
    report["v2"]["switch_confirmed_after_T_s"] = {
        "median": statistics.median(v2_latency),
        "max": max(v2_latency),
    }
    # One router call per rekey per router: each rekey of either group is one call.
    calls = {
        name: sum(
            int(e["detail"].split(";")[0].split("=")[1])
            for e in _installs(events, f"{name}-frr")
            if e["ok"] and e["t"] > t_full
        )
        for name, events in gm_events.items()
    }
    report["router_calls_during_rekeys"] = calls
    report["packets"] = {"v2": len(seen["v2"]), "v3": len(seen["v3"])}
    (tmp_path / "frr-rekeys.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    for name, count in calls.items():
        assert count == 2 * REKEYS, (name, count)
    assert report["v2"]["switch_confirmed_spread_s"]["max"] < 0.5


@pytest.mark.root
@pytest.mark.slow
def test_router_whose_gm_is_not_authorized_never_reaches_full(tmp_path: Path) -> None:
    from testbed.processes import events_of, wait_until
    from tests.frr_support import Capture, NeighborSampler, frr_lab, start_frr

    with frr_lab(tmp_path, "fu") as net:
        routers = [net.add_router(n) for n in ("r1", "r2", "r3")]
        net.link("r1", "r2")
        net.link("r2", "r3")
        frrs = [start_frr(r, r.interfaces, r.interfaces) for r in routers]
        r1, r2, r3 = frrs
        with NeighborSampler(frrs) as sampler, Capture(r3.router, tmp_path / "r3.pcap"):
            net.start_gcks(GROUPS, ["r1.mrkm", "r2.mrkm"])  # r3 is not a member
            for frr in frrs:
                net.start_gm(frr.router, [V2_GROUP, V3_GROUP], _sinks(frr))
            wait_until(
                lambda: (
                    r1.neighbors_v2().get(r2.router.loopback) == "Full"
                    and r1.neighbors_v3().get(r2.router.loopback) == "Full"
                ),
                40,
                "r1-r2 Full",
                interval=0.1,
            )
            wait_until(
                lambda: len(events_of(net.events("gm-r3"), "registration_failed")) >= 2,
                20,
                "r3's registrations to be refused",
            )
            t_keyed = time.time()
            # Three dead intervals with r2 keyed and r3 trying: at least 12 hellos of each
            # protocol from r3, whatever the bring-up before took (the counts below).
            wait_until(lambda: time.time() > t_keyed + 12, 18, "three dead intervals")
        samples = sampler.snapshot()
        r3_installs = [e for e in net.events("gm-r3") if e["event"] == "router_install"]
    r3_id = r3.router.loopback
    assert not any(s.v2.get(r3_id) == "Full" or s.v3.get(r3_id) == "Full" for s in samples)
    assert not any(
        "Full" in s.v2.values() or "Full" in s.v3.values() for s in samples if s.router == "r3"
    )
    # r3 still authenticates every packet, with keys nobody else has: its locks.
    locked = _locked_packets(tmp_path / "r3.pcap", r3_id)
    assert locked["v2"] > 10 and locked["v3"] > 10 and locked["other"] == [], locked
    # Its GM never held a key, so it never touched the router, which keeps
    # the lock keys of its initial configuration (fail closed).
    assert [e for e in r3_installs if e["sink"] == "r3-frr"] == []
    assert len([s for s in samples if s.router == "r3"]) > 50


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("transport", ["vtysh", "vty"])
def test_restarted_daemons_get_the_keys_again(tmp_path: Path, transport: str) -> None:
    from testbed.processes import wait_until
    from tests.frr_support import NeighborSampler, drops, frr_lab, start_frr

    with frr_lab(tmp_path, "fr") as net:
        routers = [net.add_router(n) for n in ("r1", "r2")]
        net.link("r1", "r2")
        r1, r2 = (start_frr(r, r.interfaces, r.interfaces) for r in routers)
        peer = r1.router.loopback
        net.start_gcks(GROUPS, ["r1.mrkm", "r2.mrkm"])
        for frr in (r1, r2):
            net.start_gm(frr.router, [V2_GROUP, V3_GROUP], _sinks(frr, transport))

        def full(v2: bool = True, v3: bool = True) -> bool:
            return (not v2 or r2.neighbors_v2().get(peer) == "Full") and (
                not v3 or r2.neighbors_v3().get(peer) == "Full"
            )

        wait_until(full, 40, "r1-r2 Full", interval=0.1)

        def restarted(daemon: str) -> list[dict[str, Any]]:
            return [
                e
                for e in _installs(net.events("gm-r2"), "r2-frr")
                if e["reason"] == "routing daemon restarted" and e["ok"]
            ]

        t_ospf6d = math.inf
        with NeighborSampler([r2]) as sampler:
            wait_until(lambda: sampler.snapshot() != [], 5, "a first sample")
            for daemon, v2 in (("ospfd", True), ("ospf6d", False)):
                t_ospf6d = time.time() if daemon == "ospf6d" else t_ospf6d
                before = len(restarted(daemon))
                t_restart = time.time()
                r2.restart(daemon)
                # The restarted daemon read its key-less config: only the GM can key it.
                wait_until(
                    lambda d=daemon, n=before: len(restarted(d)) > n, 15, f"{daemon} re-keyed"
                )
                install = restarted(daemon)[-1]
                assert install["detail"].startswith("calls=2"), install  # read + write
                wait_until(lambda v2=v2: full(v2=v2, v3=not v2), 25, f"Full after {daemon} restart")
                t_back = time.time()
                print(
                    f"{daemon}: re-keyed {install['t'] - t_restart:.2f} s after the restart, "
                    f"Full again after {t_back - t_restart:.2f} s"
                )
            running = r2.vtysh("show running-config")
        samples = sampler.snapshot()
        keys = json.loads((r2.router.workdir / "keys.json").read_text())["rows"]
    sending = max(
        (r for r in keys if r["protocol"] == "ospfv2" and r["send_start"] <= time.time()),
        key=lambda r: r["send_start"],
    )
    md5 = md5_key_string(bytes.fromhex(sending["key"]))
    assert f"ip ospf message-digest-key {sending['key_id']} md5 {md5}" in running
    assert f"message-digest-key {LOCK_KEY_ID} " not in running
    # ospf6d stayed Full while ospfd restarted (the re-applied chain did not disturb it).
    ospfd_window = [s for s in samples if s.t < t_ospf6d]
    assert drops(ospfd_window, {"r2": {peer}}, "v3") == []
