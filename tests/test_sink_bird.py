"""The ``bird`` sink: pure checks of its file text and config, and BIRD 2.0.12 in namespaces.

Pure (no BIRD): config errors name the field; check() refuses what BIRD
cannot use; the password file text for given rows, to the microsecond; an
install against a stand-in ``birdc`` makes one call, keeps the old file when
BIRD refuses, and reads restarts from the pid file or the socket.

Root (real BIRD, GCKS and GM processes in namespaces, tests/bird_support.py):

1. three BIRD routers in a line, OSPFv2 HMAC-SHA-256 and the OSPFv3 trailer,
   keys only from MRKM: Full only after the keys are installed, 20 rekeys per
   group with zero adjacency drops (sampled every 100 ms), every captured
   packet authenticated and verified from the key the GM logged, and the key
   id switching at each activation time;
2. a mixed FRR-BIRD line on OSPFv2 Keyed-MD5;
3. a BIRD restart: the GM re-applies the table and the adjacency returns.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mrkm.config import ConfigError
from mrkm.keytable import KeyRow
from mrkm.runtime.control import request
from mrkm.sinks import SinkError, build_sinks
from mrkm.sinks.bird import BirdSink, bird_time, render_passwords
from testbed.processes import events_of, wait_until
from tests.bird_support import (
    BirdFleet,
    Capture,
    KeyCollector,
    NeighborSampler,
    OspfPacket,
    SwitchReport,
    line_adjacencies,
    line_topology,
    ospf_packets,
    switch_report,
)
from tests.lab import lab

# 2026-01-02 03:04:05 UTC
T0 = 1767323045.0
KEY32 = bytes(range(1, 33))


def row(
    key_id: int = 7,
    protocol: str = "ospfv2",
    algorithm: str = "hmac-sha-256",
    key: bytes = KEY32,
    start: float = T0,
    **times: float,
) -> KeyRow:
    lifetimes = {
        "accept_start": start - 1,
        "send_start": start,
        "send_end": start + 600,
        "accept_end": start + 610,
    }
    lifetimes.update(times)
    return KeyRow(
        "g2" if protocol == "ospfv2" else "g3", protocol, key_id, algorithm, key, **lifetimes
    )


@pytest.fixture
def utc() -> Iterator[None]:
    """Format local times in UTC, as on the testbed machine."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def sink_entry(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "bird",
        "socket": str(tmp_path / "bird.ctl"),
        "ospfv2": {"include": str(tmp_path / "v2.conf"), "group": "g2"},
        "ospfv3": {"include": str(tmp_path / "v3.conf"), "group": "g3"},
    }
    entry.update(extra)
    return entry


def build(entry: dict[str, Any]) -> BirdSink:
    (sink,) = build_sinks([entry])
    assert isinstance(sink, BirdSink)
    return sink


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"socket": None}, "gm.sinks[0].socket: missing"),
        ({"sokcet": "x"}, "gm.sinks[0]: unknown field(s) sokcet"),
        ({"ospfv2": None, "ospfv3": None}, "gm.sinks[0]: needs an ospfv2 or ospfv3 section"),
        ({"ospfv2": "v2.conf"}, "gm.sinks[0].ospfv2: expected a mapping"),
        ({"ospfv2": {"group": "g2"}}, "gm.sinks[0].ospfv2.include: missing"),
        ({"ospfv3": {"include": "x", "grp": "g"}}, "gm.sinks[0].ospfv3: unknown field(s) grp"),
        ({"ospfv3": {"include": "x", "group": ""}}, "gm.sinks[0].ospfv3.group"),
        ({"ospfv3": {"include": "SAME"}, "ospfv2": {"include": "SAME"}}, ".ospfv3.include"),
        ({"timeout": 0}, "gm.sinks[0].timeout"),
        ({"timeout": "fast"}, "gm.sinks[0].timeout"),
        ({"client": "birdc", "birdc": ""}, "gm.sinks[0].birdc: a program"),
        ({"birdc": "/usr/sbin/birdc"}, "gm.sinks[0].birdc: only with client: birdc"),
        ({"client": "vtysh"}, "gm.sinks[0].client: 'vtysh' is not socket or birdc"),
        ({"pidfile": ""}, "gm.sinks[0].pidfile"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    entry = sink_entry(tmp_path)
    for key, value in change.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    with pytest.raises(ConfigError) as err:
        build_sinks([entry])
    assert field in str(err.value)


def test_config_builds_a_sink_per_entry(tmp_path: Path) -> None:
    sink = build(sink_entry(tmp_path, name="edge", pidfile="/run/bird.pid", timeout=3))
    assert (sink.name, sink.kind, sink.timeout) == ("edge", "bird", 3.0)
    assert sink.pidfile == Path("/run/bird.pid")
    assert [(p.protocol, p.group) for p in sink.protocols] == [("ospfv2", "g2"), ("ospfv3", "g3")]
    only_v3 = build({"type": "bird", "socket": "s", "ospfv3": {"include": "v3"}})
    assert only_v3.relevant([row(), row(3, "ospfv3")]) == [row(3, "ospfv3")]
    # Without a group, every group of the protocol; with one, only that group.
    other = KeyRow("gx", "ospfv2", 9, "hmac-sha-256", KEY32, T0, T0, T0 + 9, T0 + 9)
    assert build(sink_entry(tmp_path)).relevant([row(), other]) == [row()]


# --------------------------------------------------------------------------- check()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (row(protocol="ospfv3", algorithm="md5", key=bytes(16)), "cannot use md5 for ospfv3"),
        (row(key=KEY32[:31]), "key of 31 octets; hmac-sha-256 keys must be exactly 32"),
        (row(algorithm="hmac-sha-512", key=KEY32), "must be exactly 64"),
        (row(algorithm="md5", key=KEY32[:17]), "must be exactly 16"),
        (row(key_id=256, protocol="ospfv3"), "password ids are 0-255"),
        (row(algorithm="hmac-sha-224"), "cannot use hmac-sha-224 for ospfv2"),
        (KeyRow("gx", "ospfv2", 1, "hmac-sha-256", KEY32, T0, T0, T0, T0), "no ospfv2 section"),
    ],
)
def test_check_refuses_what_bird_cannot_use(tmp_path: Path, bad: KeyRow, reason: str) -> None:
    with pytest.raises(SinkError) as err:
        build(sink_entry(tmp_path)).check(bad)
    assert reason in str(err.value)
    assert str(err.value).startswith("bird0: ")


def test_check_accepts_every_algorithm_bird_has(tmp_path: Path) -> None:
    sink = build(sink_entry(tmp_path))
    for algorithm, size in (("hmac-sha-1", 20), ("hmac-sha-384", 48), ("hmac-sha-512", 64)):
        sink.check(row(algorithm=algorithm, key=bytes(range(size))))
        sink.check(row(protocol="ospfv3", algorithm=algorithm, key=bytes(range(size))))
    sink.check(row(algorithm="md5", key=b"0123456789abcdef"))
    sink.check(row(algorithm="md5", key=b"AB\x00C" + bytes(12)))  # written as text: see below
    sink.check(row(key=bytes(32)))  # HMAC keys may hold any octets
    sink.check(row(key_id=255, protocol="ospfv3"))


# --------------------------------------------------------------------------- file text


def test_password_file_text_for_given_rows(utc: None) -> None:
    old = row(
        7,
        accept_start=T0 - 30.123456789,
        send_start=T0 - 29.5,
        send_end=T0 + 1.25,
        accept_end=T0 + 3.0000005,  # float: T0 + 3.00000048
    )
    new = row(8, key=bytes(range(32)), accept_start=T0 + 0.25, send_start=T0 + 1.25)
    assert render_passwords([old, new], "ospfv2 keys of group g2") == (
        "# Written by MRKM (mrkm.sinks.bird); every change is replaced. Do not edit.\n"
        "# ospfv2 keys of group g2\n"
        f"password {KEY32.hex(':')} {{\n"
        "  id 7;\n"
        "  algorithm hmac sha256;\n"
        '  generate from "2026-01-02 03:03:35.500000";\n'
        '  generate to "2026-01-02 03:04:06.250001";\n'
        '  accept from "2026-01-02 03:03:34.876543";\n'
        '  accept to "2026-01-02 03:04:08.000001";\n'
        "};\n"
        "password 00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:"
        "10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f {\n"
        "  id 8;\n"
        "  algorithm hmac sha256;\n"
        '  generate from "2026-01-02 03:04:06.250000";\n'
        '  generate to "2026-01-02 03:14:05.000001";\n'
        '  accept from "2026-01-02 03:04:05.250000";\n'
        '  accept to "2026-01-02 03:14:15.000000";\n'
        "};\n"
    )


def test_algorithm_keywords_and_empty_send_windows(utc: None) -> None:
    text = render_passwords(
        [
            row(1, algorithm="md5", key=b"0123456789abcdef"),
            row(2, algorithm="hmac-sha-1", key=bytes(20)),
            row(3, protocol="ospfv3", algorithm="hmac-sha-512", key=bytes(64)),
            # superseded before it was ever sent: generate from == generate to
            row(4, send_start=T0, send_end=T0),
            # send_end == accept_end: generate to stays inside the accept window
            row(5, send_end=T0 + 600, accept_end=T0 + 600),
        ]
    )
    # Keyed-MD5: the text the FRR sink gives ospfd (base64url of the first 12 octets).
    assert 'password "MDEyMzQ1Njc4OWFi" {\n  id 1;\n  algorithm keyed md5;' in text
    assert "algorithm hmac sha1;" in text and "algorithm hmac sha512;" in text
    block4 = text.split("id 4;")[1].split("};")[0]
    assert block4.count('"2026-01-02 03:04:05.000000"') == 2
    block5 = text.split("id 5;")[1].split("};")[0]
    assert 'generate to "2026-01-02 03:14:05.000000"' in block5


def test_md5_passwords_are_the_frr_sinks_key_text() -> None:
    import base64
    import random

    from mrkm.sinks.bird import password
    from mrkm.sinks.keystrings import md5_key_string

    rng = random.Random(3)
    for _ in range(200):
        key = rng.randbytes(16)
        text = password(row(algorithm="md5", key=key))
        assert text == f'"{md5_key_string(key)}"'
        assert text.strip('"').encode() == base64.urlsafe_b64encode(key[:12])
        assert len(text) == 18 and "\\" not in text
        assert password(row(key=key * 2)) == (key * 2).hex(":")


def test_times_round_outward_to_the_microsecond(utc: None) -> None:
    import random
    from fractions import Fraction

    rng = random.Random(5)
    for _ in range(2000):
        t = T0 + rng.uniform(0, 10**6)
        exact = Fraction(t) * 1_000_000
        down, up = _micros_of(bird_time(t, up=False)), _micros_of(bird_time(t, up=True))
        assert down <= exact <= up and up - down <= 1, (t, down, up)


def _micros_of(text: str) -> int:
    stamp, frac = text.split(".")
    return int(time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))) * 1_000_000 + int(frac)


# --------------------------------------------------------------------------- install (fake birdc)


def fake_birdc(tmp_path: Path, output: str, status: int = 0) -> Path:
    """A stand-in birdc that logs its arguments and prints ``output``."""
    script = tmp_path / "birdc"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{tmp_path / "calls"}"\n'
        f"cat <<'EOF'\n{output}\nEOF\n"
        f"exit {status}\n"
    )
    script.chmod(0o755)
    return script


def test_install_writes_changed_files_and_makes_one_call(tmp_path: Path, utc: None) -> None:
    birdc = fake_birdc(tmp_path, "BIRD 2.0.12 ready.\nReading configuration from x\nReconfigured")
    sink = build(sink_entry(tmp_path, client="birdc", birdc=str(birdc)))
    expired = row(5, accept_start=T0 - 99, send_start=T0 - 90, send_end=T0 - 20, accept_end=T0 - 10)
    rows = [expired, row(7), row(9, "ospfv3")]
    result = sink.install(rows, T0)
    assert result.ok and result.calls == 1 and result.key_ids == (7, 9)
    assert result.detail == "Reconfigured"
    assert (tmp_path / "calls").read_text().split("\n")[
        0
    ] == f"-s {tmp_path / 'bird.ctl'} configure"
    v2 = (tmp_path / "v2.conf").read_text()
    assert "id 7;" in v2 and "id 5;" not in v2 and "id 9;" not in v2
    assert "id 9;" in (tmp_path / "v3.conf").read_text()
    assert (tmp_path / "v2.conf").stat().st_mode & 0o777 == 0o600
    # Unchanged files are not rewritten; BIRD is still told to reconfigure.
    inode = (tmp_path / "v3.conf").stat().st_ino
    sink.install([row(7), row(8, start=T0 + 5), row(9, "ospfv3")], T0)
    assert (tmp_path / "v3.conf").stat().st_ino == inode
    assert "id 8;" in (tmp_path / "v2.conf").read_text()
    assert len((tmp_path / "calls").read_text().splitlines()) == 2


def test_a_refused_configuration_keeps_the_old_file(tmp_path: Path, utc: None) -> None:
    good = fake_birdc(tmp_path, "Reconfigured")
    sink = build(sink_entry(tmp_path, client="birdc", birdc=str(good)))
    sink.install([row(7)], T0)
    before = (tmp_path / "v2.conf").read_text()
    bad = fake_birdc(
        tmp_path, "BIRD 2.0.12 ready.\nReading configuration from x\n/v2.conf:3:7 boom", 1
    )
    sink = build(sink_entry(tmp_path, client="birdc", birdc=str(bad)))
    with pytest.raises(SinkError, match=r"bird0: BIRD configure failed: /v2.conf:3:7 boom"):
        sink.install([row(7), row(8, start=T0 + 5)], T0)
    assert (tmp_path / "v2.conf").read_text() == before
    # BIRD not running: the new file stays for BIRD to read when it starts.
    down = fake_birdc(tmp_path, "Unable to connect to server control socket (x): No such file", 1)
    sink = build(sink_entry(tmp_path, client="birdc", birdc=str(down)))
    with pytest.raises(SinkError, match="Unable to connect"):
        sink.install([row(7), row(8, start=T0 + 5)], T0)
    assert "id 8;" in (tmp_path / "v2.conf").read_text()
    missing = build(sink_entry(tmp_path, client="birdc", birdc=str(tmp_path / "no-birdc")))
    with pytest.raises(SinkError, match="program not found"):
        missing.install([row(7)], T0)


class FakeBird:
    """A control socket that answers like BIRD 2.0.12 (replies captured from a real one)."""

    def __init__(self, path: Path, answer: bytes) -> None:
        self.path, self.answer = path, answer
        self.commands: list[bytes] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.server.settimeout(0.05)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                conn.sendall(b"0001 BIRD 2.0.12 ready.\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(100)
                    if not chunk:
                        break
                    data += chunk
                self.commands.append(data)
                # The answer arrives in pieces, as it may from a busy BIRD.
                for i in range(0, len(self.answer), 7):
                    conn.sendall(self.answer[i : i + 7])

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.server.close()


def test_the_socket_client_speaks_birdc_protocol(tmp_path: Path, utc: None) -> None:
    sink = build(sink_entry(tmp_path))
    assert sink.birdc is None
    with pytest.raises(SinkError, match=r"Unable to connect to server control socket"):
        sink.install([row(7)], T0)
    assert "id 7;" in (tmp_path / "v2.conf").read_text()  # kept for BIRD to read at start
    bird = FakeBird(
        tmp_path / "bird.ctl", b"0002-Reading configuration from /b.conf\n0003 Reconfigured\n"
    )
    try:
        result = sink.install([row(7), row(8, start=T0 + 5)], T0)
        assert (result.ok, result.calls, result.key_ids, result.detail) == (
            True,
            1,
            (7, 8),
            "Reconfigured",
        )
        assert bird.commands == [b"configure\n"]
    finally:
        bird.close()
    (tmp_path / "bird.ctl").unlink()
    before = (tmp_path / "v2.conf").read_text()
    refusal = b"0002-Reading configuration from /b.conf\n8002 /v2.conf:1:10 syntax error\n"
    bird = FakeBird(tmp_path / "bird.ctl", refusal)
    try:
        with pytest.raises(SinkError, match=r"BIRD configure failed: /v2.conf:1:10 syntax error"):
            sink.install([row(8, start=T0 + 5)], T0)
        assert (tmp_path / "v2.conf").read_text() == before
    finally:
        bird.close()


def test_router_epoch_from_pid_file_or_socket(tmp_path: Path) -> None:
    pidfile = tmp_path / "bird.pid"
    sink = build(sink_entry(tmp_path, pidfile=str(pidfile)))
    assert sink.router_epoch() is None
    pidfile.write_text(f"{os.getpid()}\n")
    epoch = sink.router_epoch()
    assert epoch is not None and epoch.startswith(f"pid {os.getpid()} started ")
    assert sink.router_epoch() == epoch
    by_socket = build(sink_entry(tmp_path))
    assert by_socket.router_epoch() is None
    epochs = []
    for _ in range(2):
        (tmp_path / "bird.ctl").unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(tmp_path / "bird.ctl"))
            epochs.append(by_socket.router_epoch())
    assert None not in epochs and epochs[0] != epochs[1]
    assert sink.next_change([row()], T0) is None


# --------------------------------------------------------------------------- root: BIRD line

V2 = "ospfv2-area0"
V3 = "ospfv3-area0"


def group(name: str, protocol: str, algorithm: str) -> dict[str, Any]:
    """A GCKS group with fast activation: ATD 1 s, DTD 2 s."""
    return {
        "name": name,
        "protocol": protocol,
        "algorithm": algorithm,
        "atd": 1,
        "dtd": 2,
        "rekey_address": "239.192.0.1",
        "rekey_port": 848,
    }


def installs(net: Any, router: str, sink: str) -> list[dict[str, Any]]:
    return [e for e in events_of(net.events(f"gm-{router}"), "router_install") if e["sink"] == sink]


def rekey_round(
    net: Any,
    groups: list[tuple[str, str]],
    collector: KeyCollector,
    sinks: dict[str, str],
) -> float:
    """Rekey ``groups`` at once; wait until every router's sink took the new keys.

    ``sinks`` maps router name to its router sink's name. Returns the latest
    activation time (send_start) of the new keys, once every key was sent for
    at least one hello interval.
    """
    names = list(sinks)
    before = {(n, g): {r.key_id for r in collector.of(n, p)} for n in names for g, p in groups}
    for g, _p in groups:
        assert request(net.workdir / "gcks.sock", {"cmd": "rekey", "group": g})["ok"]

    def new_rows() -> list[KeyRow] | None:
        rows = []
        for n in names:
            for g, p in groups:
                fresh = [r for r in collector.of(n, p) if r.key_id not in before[(n, g)]]
                if not fresh:
                    return None
                rows.append(fresh[-1])
        return rows

    wait_until(lambda: new_rows() is not None, 10, "every router to hold the new keys")
    rows = new_rows()
    assert rows is not None
    ids = {r.key_id for r in rows}
    wait_until(
        lambda: all(
            any(e["ok"] and ids & set(e["key_ids"]) for e in installs(net, n, sinks[n]))
            for n in names
        ),
        10,
        "every router to take the new keys",
    )
    activation = max(r.send_start for r in rows)
    # Each key is sent for at least one hello interval before the next rekey.
    wait_until(lambda: time.time() > activation + 1.1, 10, "the activation of the new keys")
    return activation


def summarize(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"n={len(values)} median={statistics.median(values) * 1000:.1f} ms "
        f"p99={p99 * 1000:.1f} ms max={ordered[-1] * 1000:.1f} ms min={ordered[0] * 1000:.1f} ms"
    )


@pytest.mark.root
@pytest.mark.slow
def test_three_bird_routers_rekey_20_times_without_a_drop(tmp_path: Path) -> None:
    rounds = 20
    started = time.monotonic()
    with lab(tmp_path, "b") as net, BirdFleet() as fleet:
        routers = line_topology(net, 3)
        names = [r.name for r in routers]
        birds = [fleet.start(r) for r in routers]
        expected = line_adjacencies(routers)
        key_files = {r.name: r.workdir / "keys.json" for r in routers}
        collector = KeyCollector(key_files)
        pcap = tmp_path / "r1-r2.pcap"
        with (
            Capture(routers[0], "r1-r2", pcap),
            NeighborSampler(birds, also=[collector.poll]) as sampler,
        ):
            net.start_gcks(
                [group(V2, "ospfv2", "hmac-sha-256"), group(V3, "ospfv3", "hmac-sha-256")],
                [f"{n}.mrkm" for n in names],
            )
            for router, bird in zip(routers, birds, strict=True):
                net.start_gm(
                    router,
                    [V2, V3],
                    [
                        bird.sink_entry({"ospfv2": V2, "ospfv3": V3}),
                        {"type": "file", "path": str(key_files[router.name])},
                    ],
                )
            wait_until(
                lambda: sampler.full(expected, "ospfv2") and sampler.full(expected, "ospfv3"),
                40,
                "Full adjacencies on OSPFv2 and OSPFv3",
            )
            t_full = time.time()
            setup = time.monotonic() - started
            # Full only after MRKM installed the keys: no router had a neighbour Full
            # before its own first successful install.
            for n in names:
                first = min(e["t"] for e in installs(net, n, f"bird-{n}") if e["ok"])
                for protocol in ("ospfv2", "ospfv3"):
                    full = sampler.first_full(n, protocol)
                    assert full is not None and full > first, (n, protocol, full, first)
            activations = [
                rekey_round(
                    net,
                    [(V2, "ospfv2"), (V3, "ospfv3")],
                    collector,
                    {n: f"bird-{n}" for n in names},
                )
                for _ in range(rounds)
            ]
            # Let the last keys take over and one dead interval pass.
            wait_until(lambda: time.time() > activations[-1] + 4.5, 10, "the last activation")
            t_end = time.time()
        rekey_seconds = t_end - t_full

        # -- adjacencies: sampled every 100 ms, not one Full -> not-Full transition
        for protocol in ("ospfv2", "ospfv3"):
            assert sampler.drops(expected, protocol, t_full, t_end) == [], protocol
            assert sampler.count(protocol, t_full, t_end) >= 3 * 8 * rekey_seconds
        assert not sampler.errors
        auth_failures = [line for b in birds for line in b.log_lines("Authentication failed")]
        late_failures = [line for line in auth_failures if _log_time(line) > t_full]

        # -- installs: one router call each, latency logged as an event
        latencies = [e["seconds"] for n in names for e in installs(net, n, f"bird-{n}") if e["ok"]]
        assert all(e["reason"] != "refused" for n in names for e in installs(net, n, f"bird-{n}"))
        assert len(latencies) >= 3 * rounds

        # -- the wire: every packet authenticated, verified from the GMs' logged keys
        packets = ospf_packets(pcap, collector.keys("ospfv2"), collector.keys("ospfv3"))
        rid = {r.loopback: r.name for r in routers}
        first_send = {
            (version, lb): min(r.send_start for r in collector.of(name, protocol))
            for lb, name in rid.items()
            for version, protocol in ((2, "ospfv2"), (3, "ospfv3"))
        }
        _assert_wire(packets, first_send)
        assert sum(1 for p in packets if p.version == 2 and p.status == "ok") > 30
        assert sum(1 for p in packets if p.version == 3 and p.status == "ok") > 30
        # BIRD 2.0.12 keys the OSPFv3 trailer with K || 0x0001 without RFC 7166's
        # hashing of a key longer than L: with MRKM's L-octet keys no packet of it
        # verifies the RFC way (tests/bird_support.ospfv3_bird_digest).
        assert not any(p.rfc7166 for p in packets if p.version == 3 and p.status == "ok")

        # BIRD got the exact key octets (bytestring passwords), zero octets included.
        verified = {(p.version, p.key_id or 0) for p in packets if p.status == "ok"}
        all_keys = {2: collector.keys("ospfv2"), 3: collector.keys("ospfv3")}
        with_zero = sum(1 for v, k in verified if b"\x00" in all_keys[v][k][1])

        # -- the key id changes at each activation time
        report_lines = []
        for version, protocol in ((2, "ospfv2"), (3, "ospfv3")):
            sent_by = {
                lb: collector.of(rid[lb], protocol)
                for lb in (routers[0].loopback, routers[1].loopback)
            }
            report = switch_report(packets, sent_by, version)
            assert report.wrong == [], report.wrong[:5]
            assert report.switches >= 2 * (rounds - 2)
            assert all(-0.02 <= s <= 1.1 for s in report.skews), report.skews
            assert all(s <= 0.02 for s in report.old_last), report.old_last
            report_lines.append(f"OSPFv{version} {_switches(report)}")
        print(
            f"\nBIRD line: setup to Full {setup:.1f} s, {rounds} rekeys x 2 groups in "
            f"{rekey_seconds:.1f} s, samples {len(sampler.samples)}, drops 0, "
            f"auth failures in BIRD logs: {len(auth_failures)} before Full, "
            f"{len(late_failures)} after\n"
            f"install latency {summarize(latencies)}\n"
            f"packets on r1-r2: {_tally(packets)}; {len(verified)} keys verified on the wire, "
            f"{with_zero} of them with a zero octet\n" + "\n".join(report_lines)
        )
        assert late_failures == [], late_failures[:5]


def _switches(report: SwitchReport) -> str:
    """The switch-over skew: where the last old-key and first new-key packets fell around T."""
    return (
        f"{report.switches} switches: old key last sent T{max(report.old_last) * 1000:+.0f} ms "
        f"at the latest (median T{statistics.median(report.old_last) * 1000:+.0f} ms), "
        f"new key first sent T{min(report.skews) * 1000:+.0f} ms at the earliest "
        f"(median T{statistics.median(report.skews) * 1000:+.0f} ms); hello 1 s"
    )


def _log_time(line: str) -> float:
    """The time of a BIRD log line ("2026-11-27 08:17:08.730 <AUTH> ...")."""
    stamp = " ".join(line.split()[:2])
    head, _, frac = stamp.partition(".")
    return time.mktime(time.strptime(head, "%Y-%m-%d %H:%M:%S")) + float(f"0.{frac or 0}")


def _tally(packets: list[OspfPacket]) -> str:
    counts: dict[str, int] = {}
    for p in packets:
        key = f"v{p.version} {p.status}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def _assert_wire(packets: list[OspfPacket], first_send: dict[tuple[int, str], float]) -> None:
    """No unauthenticated or bad packet; keyless ones only before the sender's first key.

    BIRD with no valid password sends AuType 2 without a digest (OSPFv3: AT-bit
    without a trailer), which every receiver rejects; that may happen only
    before the sender's first key became valid for sending.
    """
    assert packets, "no OSPF packet captured"
    for p in packets:
        assert p.status in ("ok", "no-key"), p
        if p.status == "no-key":
            assert p.t < first_send[(p.version, p.router_id)] + 0.05, p


# --------------------------------------------------------------------------- root: restart


@pytest.mark.root
@pytest.mark.slow
def test_a_restarted_bird_gets_the_key_table_again(tmp_path: Path) -> None:
    """BIRD restarts from a key-less include file; the GM notices and re-applies."""
    with lab(tmp_path, "r") as net, BirdFleet() as fleet:
        routers = line_topology(net, 2)
        birds = [fleet.start(r) for r in routers]
        names = [r.name for r in routers]
        expected = line_adjacencies(routers)
        with NeighborSampler(birds) as sampler:
            net.start_gcks(
                [group(V2, "ospfv2", "hmac-sha-256"), group(V3, "ospfv3", "hmac-sha-384")],
                [f"{n}.mrkm" for n in names],
            )
            for router, bird in zip(routers, birds, strict=True):
                net.start_gm(router, [V2, V3], [bird.sink_entry({"ospfv2": V2, "ospfv3": V3})])

            def both_full() -> bool:
                return sampler.full(expected, "ospfv2") and sampler.full(expected, "ospfv3")

            wait_until(both_full, 40, "Full adjacencies before the restart")
            bird = birds[1]
            old_pid = bird.pid()
            bird.stop()
            # As after a fresh deployment: the operator's include files hold no key.
            for protocol in bird.protocols:
                bird.include(protocol).write_text("# no keys yet: MRKM writes this file\n")
            t_restart = time.time()
            bird.start()
            assert bird.pid() != old_pid

            def reapplied() -> list[dict[str, Any]]:
                return [
                    e
                    for e in installs(net, "r2", "bird-r2")
                    if e["reason"] == "routing daemon restarted" and e["t"] > t_restart
                ]

            def diagnosis() -> str:
                return (
                    f"restart at {t_restart:.3f}; r2 installs: {installs(net, 'r2', 'bird-r2')}; "
                    f"sampler errors: {sampler.errors[-3:]}; BIRD log: "
                    f"{bird.log.read_text()[-1500:] if bird.log.exists() else '-'}"
                )

            try:
                wait_until(lambda: any(e["ok"] for e in reapplied()), 15, "the GM to re-apply")
                t_reapply = min(e["t"] for e in reapplied() if e["ok"])
                for protocol in bird.protocols:
                    assert "password " in bird.include(protocol).read_text()
                wait_until(both_full, 30, "Full adjacencies after the restart")
            except (TimeoutError, AssertionError) as exc:
                raise AssertionError(f"{exc}\n{diagnosis()}") from None
            t_back = time.time()
        # r2 had no key between its start and the re-apply: no adjacency before it.
        for protocol in ("ospfv2", "ospfv3"):
            back = [
                s.t
                for s in sampler.samples
                if s.router == "r2"
                and s.protocol == protocol
                and s.t > t_restart
                and any(v.startswith("Full") for v in s.states.values())
            ]
            assert back and back[0] > t_reapply, (protocol, back[:1], t_reapply, diagnosis())
        assert [e for e in reapplied() if not e["ok"]] == [], diagnosis()
        print(
            f"\nBIRD restart: re-applied {t_reapply - t_restart:.2f} s after the restart, "
            f"Full again after {t_back - t_restart:.2f} s"
        )


# --------------------------------------------------------------------------- root: FRR + BIRD

MD5 = "ospfv2-md5"


@pytest.mark.root
@pytest.mark.slow
def test_a_mixed_frr_bird_line_on_ospfv2_md5(tmp_path: Path) -> None:
    """BIRD r1 - FRR r2 - BIRD r3 on OSPFv2 Keyed-MD5, keys only from MRKM.

    FRR 8.4 sends and accepts only its last-configured key: the FRR sink makes
    the new key the only one at the activation time T (a vtysh call at T);
    BIRD switches by ``generate from`` at its own T and keeps accepting the
    old key for DTD. Both get the MD5 key as the same text (md5_key_string).
    """
    from tests import frr_support

    rounds = 8
    with frr_support.frr_lab(tmp_path, "x") as net, BirdFleet() as fleet:
        routers = line_topology(net, 3)
        r1, r2, r3 = routers
        b1 = fleet.start(r1, protocols=("ospfv2",))
        b3 = fleet.start(r3, protocols=("ospfv2",))
        frr = frr_support.start_frr(r2, r2.interfaces)
        expected = line_adjacencies(routers)
        bird_expected = {n: expected[n] for n in ("r1", "r3")}
        key_files = {r.name: r.workdir / "keys.json" for r in routers}
        collector = KeyCollector(key_files)
        sinks = {"r1": "bird-r1", "r2": "frr-r2", "r3": "bird-r3"}
        pcap = tmp_path / "r1-r2.pcap"
        with (
            Capture(r1, "r1-r2", pcap),
            NeighborSampler([b1, b3], protocols=("ospfv2",), also=[collector.poll]) as sampler,
            frr_support.NeighborSampler([frr]) as frr_sampler,
        ):
            net.start_gcks([group(MD5, "ospfv2", "md5")], [f"{n}.mrkm" for n in sinks])
            for router in routers:
                file_sink = {"type": "file", "path": str(key_files[router.name])}
                if router is r2:
                    router_sink: dict[str, Any] = {
                        "type": "frr",
                        "name": "frr-r2",
                        "vty_socket": str(frr.vty),
                        "ospfv2": {"interfaces": list(r2.interfaces), "group": MD5},
                    }
                else:
                    bird = b1 if router is r1 else b3
                    router_sink = bird.sink_entry({"ospfv2": MD5})
                net.start_gm(router, [MD5], [router_sink, file_sink])

            def all_full() -> bool:
                frr_full = frr_support.full_pairs(frr_sampler.snapshot(), "r2", "v2")
                return sampler.full(bird_expected, "ospfv2") and frr_full >= expected["r2"]

            wait_until(all_full, 40, "Full adjacencies on the mixed line")
            t_full = time.time()
            for n in ("r1", "r3"):
                first = min(e["t"] for e in installs(net, n, sinks[n]) if e["ok"])
                full = sampler.first_full(n, "ospfv2")
                assert full is not None and full > first, (n, full, first)
            activations = [
                rekey_round(net, [(MD5, "ospfv2")], collector, sinks) for _ in range(rounds)
            ]
            wait_until(lambda: time.time() > activations[-1] + 4.5, 10, "the last activation")
            t_end = time.time()
        frr_samples = [s for s in frr_sampler.snapshot() if s.t <= t_end]

        assert sampler.drops(bird_expected, "ospfv2", t_full, t_end) == []
        assert frr_support.drops(frr_samples, {"r2": expected["r2"]}, "v2", t_full) == []
        assert sum(1 for s in frr_samples if s.t >= t_full) >= 8 * (t_end - t_full)
        assert not any(e["reason"] == "refused" for n in sinks for e in installs(net, n, sinks[n]))

        # The wire on r1-r2: BIRD r1 and FRR r2, every digest recomputed from the
        # logged key through the documented MD5 text mapping.
        packets = ospf_packets(pcap, collector.keys("ospfv2"), {})
        rid = {r.loopback: r.name for r in routers}
        first_send = {
            (2, lb): min(r.send_start for r in collector.of(name, "ospfv2"))
            for lb, name in rid.items()
        }
        _assert_wire(packets, first_send)
        by_router = {
            lb: sum(1 for p in packets if p.status == "ok" and p.router_id == lb) for lb in rid
        }
        assert by_router[r1.loopback] > 10 and by_router[r2.loopback] > 10, by_router
        bird_report = switch_report(packets, {r1.loopback: collector.of("r1", "ospfv2")}, 2)
        # FRR switches with a vtysh call at T (about 25 ms, more under load).
        frr_report = switch_report(
            packets, {r2.loopback: collector.of("r2", "ospfv2")}, 2, tolerance=0.3
        )
        for report in (bird_report, frr_report):
            assert report.wrong == [], report.wrong[:5]
            assert report.switches >= rounds - 2
        assert all(-0.02 <= s <= 1.1 for s in bird_report.skews), bird_report.skews
        assert all(s <= 0.02 for s in bird_report.old_last), bird_report.old_last
        assert all(-0.02 <= s <= 1.4 for s in frr_report.skews), frr_report.skews
        assert all(s <= 0.3 for s in frr_report.old_last), frr_report.old_last
        print(
            f"\nFRR-BIRD MD5 line: {rounds} rekeys in {t_end - t_full:.1f} s, drops 0; "
            f"packets on r1-r2: {_tally(packets)}\n"
            f"BIRD r1 {_switches(bird_report)}\n"
            f"FRR r2 {_switches(frr_report)}"
        )
