"""testbed.collectors: samplers, the capture parser on synthetic and real pcaps, tcpdump (root)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scapy.all import UDP, Ether, IPv6, Raw, send, wrpcap
from scapy.layers.inet import IP

from mrkm.crypto.routing import ospfv2_sign, ospfv3_sign
from mrkm.wire.registry import IntegId
from testbed.collectors import (
    NEIGHBOR_BUDGET,
    Collectors,
    HostLoadSampler,
    NeighborSampler,
    NeighborShard,
    ProcessCpuSampler,
    RouterTap,
    WireSniffer,
    cpu_times,
    frr_neighbor_states,
    neighbor_period,
    parse_captures,
    process_cpu_seconds,
    router_poll,
    shard,
)
from testbed.metrics import read_jsonl
from testbed.processes import wait_until

VECTORS = Path(__file__).parent / "vectors" / "routing"
T = 1_800_000_000.0
ROUTERS = {"10.255.0.1": ("r1", "r1.mrkm"), "10.255.0.2": ("r2", "r2.mrkm")}


# -- packets -------------------------------------------------------------------------------------


def _hello_v2(router: int, autype: int = 0) -> bytes:
    """An OSPFv2 Hello (RFC 2328 A.3.2), 44 octets, from router 10.255.0.<router>."""
    return (
        bytes.fromhex("0201002c")
        + bytes([10, 255, 0, router])
        + bytes(4)  # area 0
        + bytes(2)  # checksum
        + autype.to_bytes(2, "big")
        + bytes(8)  # authentication
        + bytes.fromhex("ffffff00000a0201000000280000000000000000")
    )


def v2(t: float, router: int, key_id: int | None, seq: int = 1, src: str = "") -> Ether:
    """An OSPFv2 Hello signed with Keyed-MD5 under ``key_id`` (None: AuType 0), at ``t``."""
    hello = _hello_v2(router)
    payload = (
        hello
        if key_id is None
        else ospfv2_sign(
            IntegId.ROUTING_KEYED_MD5, hello, key_id=key_id, key=b"k" * 16, sequence=seq
        )
    )
    packet = Ether() / IP(src=src or f"10.100.1.{router}", dst="224.0.0.5", proto=89, ttl=1)
    packet = packet / Raw(payload)
    packet.time = t
    return packet


def v3(t: float, router: int, sa_id: int) -> Ether:
    """An OSPFv3 Hello (RFC 5340 A.3.2, AT-bit set) with an RFC 7166 trailer under ``sa_id``."""
    hello = (
        bytes.fromhex("03010024")
        + bytes([10, 255, 0, router])
        + bytes.fromhex("0000000000000000")
        + bytes.fromhex("0000000501000413000100040000000000000000")
    )
    src = f"fe80::{router}"
    signed = ospfv3_sign(
        IntegId.ROUTING_HMAC_SHA256,
        hello,
        sa_id=sa_id,
        key=b"s" * 32,
        sequence=1,
        src_ipv6=bytes.fromhex(f"fe80{'0' * 26}{router:02x}"),
    )
    packet = Ether() / IPv6(src=src, dst="ff02::5", nh=89, hlim=1) / Raw(signed)
    packet.time = t
    return packet


def _strip(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (r["t"], r["router"], r["proto"], r["src"], r["key_id"], r["previous"], r["first"],
         r["packets"])
        for r in records
    ]  # fmt: skip


def test_parse_captures_records_key_changes_per_interface(tmp_path: Path) -> None:
    """Two captures of one link: r1 switches from key 1 to 2 (and back on one packet), r2
    follows; a packet in both captures counts once; AuType 0 has no key; not OSPF: ignored."""
    a = [
        v2(T + 0.0, 1, 1, seq=1),
        v2(T + 0.5, 2, 1),
        v2(T + 1.0, 1, 1, seq=2),
        v2(T + 2.0, 1, 2, seq=3),
        v2(T + 2.2, 1, 1, seq=4),
        v2(T + 2.4, 1, 2, seq=5),
        v2(T + 2.6, 1, 2, seq=6, src="10.100.2.1"),  # r1's other interface: a key is first seen
        v2(T + 3.0, 3, None),
        v3(T + 3.5, 1, 5),
    ]
    udp = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(b"x" * 30)
    udp.time = T + 0.1
    a.append(udp)
    b = [v2(T + 0.50005, 2, 1), v2(T + 2.00004, 1, 2, seq=3), v2(T + 2.5, 2, 2, seq=2)]
    # scapy keeps each packet's own time stamp
    wrpcap(str(tmp_path / "a.pcap"), a)
    wrpcap(str(tmp_path / "b.pcap"), b)
    records = parse_captures([tmp_path / "a.pcap", tmp_path / "b.pcap"], ROUTERS)
    assert _strip(records) == [
        (T + 0.0, "r1", "ospfv2", "10.100.1.1", 1, None, True, 2),
        (T + 0.5, "r2", "ospfv2", "10.100.1.2", 1, None, True, 1),
        (T + 2.0, "r1", "ospfv2", "10.100.1.1", 2, 1, True, 1),
        (T + 2.2, "r1", "ospfv2", "10.100.1.1", 1, 2, False, 1),
        (T + 2.4, "r1", "ospfv2", "10.100.1.1", 2, 1, False, 1),
        (T + 2.5, "r2", "ospfv2", "10.100.1.2", 2, 1, True, 1),
        (T + 2.6, "r1", "ospfv2", "10.100.2.1", 2, None, False, 1),
        (T + 3.0, "10.255.0.3", "ospfv2", "10.100.1.3", None, None, True, 1),
        (T + 3.5, "r1", "ospfv3", "fe80::1", 5, None, True, 1),
    ]
    assert {r["node"] for r in records} == {"r1.mrkm", "r2.mrkm", None}
    assert all(r["event"] == "wire_key" for r in records)


def test_parse_captures_reads_real_frr_and_bird_captures() -> None:
    """The routing vectors: FRR MD5 Key ID 7, BIRD HMAC Key ID 9, FRR OSPFv3 SA IDs 5 and 3
    (one per link); every packet is counted once."""
    v2 = parse_captures([VECTORS / "ospfv2-md5-frr-8.4.4.pcap"])
    assert {(r["router_id"], r["key_id"]) for r in v2} == {("10.255.77.1", 7), ("10.255.77.2", 7)}
    assert sum(r["packets"] for r in v2) == 12
    bird = parse_captures([VECTORS / "ospfv2-hmac-sha256-bird-2.0.12.pcap"])
    assert {r["key_id"] for r in bird} == {9} and sum(r["packets"] for r in bird) == 14
    v3 = parse_captures([VECTORS / "ospfv3-trailer-hmac-sha256-frr-8.4.4.pcap"])
    assert {(r["router_id"], r["src"], r["key_id"]) for r in v3} == {
        ("10.255.76.1", "fe80::76:1a", 5),
        ("10.255.76.1", "fe80::76:2a", 3),
        ("10.255.76.2", "fe80::76:1b", 5),
        ("10.255.76.2", "fe80::76:2b", 3),
    }
    assert sum(r["packets"] for r in v3) == 62 and all(r["previous"] is None for r in v3)


# -- /proc parsers and samplers -------------------------------------------------------------------


def test_cpu_times_sums_the_aggregate_line() -> None:
    """busy = user+nice+system+irq+softirq+steal; guest is inside user already."""
    text = "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\nintr 1 2\n"
    assert cpu_times(text) == (160, 1000)
    with pytest.raises(ValueError):
        cpu_times("intr 1\n")


def test_process_cpu_seconds_counts_fields_after_the_command_name() -> None:
    """A command name with spaces and ')' does not shift utime (14) and stime (15)."""
    text = "42 (we ird) name) S 1 42 42 0 -1 4194304 99 0 0 0 250 70 0 0 20 0 1 0 1 2 3"
    assert process_cpu_seconds(text, clock_ticks=100) == 3.2


class _Clock:
    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> float:
        self.now += 0.1
        return round(self.now, 6)


def test_neighbor_sampler_logs_changes_and_survives_a_failing_poll(tmp_path: Path) -> None:
    """Unchanged answers are not logged; an exception becomes 'no answer' and is counted."""
    answers: Iterator[Any] = iter(
        [
            {"ospfv2": {"10.255.0.2": "Init"}},
            {"ospfv2": {"10.255.0.2": "Full"}},
            {"ospfv2": {"10.255.0.2": "Full"}},
            RuntimeError("vtysh: ospfd is not running"),
            {"ospfv2": {"10.255.0.2": "Full"}},
        ]
    )

    def poll() -> dict[str, Any]:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    sampler = NeighborSampler("r1", poll, tmp_path / "n.jsonl", clock=_Clock())
    records = [r for _ in range(5) for r in sampler.sample()]
    assert [(round(r["t"] - T, 1), r["states"]) for r in records] == [
        (0.1, {"ospfv2": {"10.255.0.2": "Init"}}),
        (0.2, {"ospfv2": {"10.255.0.2": "Full"}}),
        (0.4, {"ospfv2": None}),
        (0.5, {"ospfv2": {"10.255.0.2": "Full"}}),
    ]
    assert records[2]["error"] == "RuntimeError: vtysh: ospfd is not running"
    assert (sampler.polls, sampler.errors) == (5, 1)


def test_neighbor_sampler_thread_writes_its_file(tmp_path: Path) -> None:
    """start()/stop(): the changes, then a sampler_stopped line with the poll count."""
    sampler = NeighborSampler("r1", lambda: {"ospfv2": {"x": "Full"}}, tmp_path / "n.jsonl", 0.01)
    sampler.start()
    deadline = time.monotonic() + 5
    while sampler.polls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    records = read_jsonl(tmp_path / "n.jsonl")
    assert [r["event"] for r in records] == ["neighbor_states", "sampler_stopped"]
    assert records[1]["polls"] >= 3 and records[1]["errors"] == 0


def test_neighbor_period_grows_past_25_routers_to_keep_the_budget() -> None:
    periods = {n: neighbor_period(n) for n in (1, 10, 25, 50, 100, 200)}
    assert periods == {1: 0.1, 10: 0.1, 25: 0.1, 50: 0.2, 100: 0.4, 200: 0.8}
    for n, period in periods.items():
        assert 3 * n / period <= NEIGHBOR_BUDGET + 1e-9  # ospfd + ospf6d + pimd per poll


def test_shard_deals_routers_round_robin() -> None:
    assert shard(list(range(7)), 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert shard([1, 2], 4) == [[1], [2]]  # never an empty shard
    assert shard([], 4) == []


def test_a_neighbor_shard_polls_every_router_into_its_own_file(tmp_path: Path) -> None:
    """One thread, three routers: each file gets its states and its own closing line."""
    polled: list[str] = []

    def poll_of(name: str) -> Any:
        def poll() -> dict[str, Any]:
            polled.append(name)
            if name == "r2":
                raise OSError("ospfd is not there")
            return {"ospfv2": {f"{name}-peer": "Full"}}

        return poll

    samplers = [
        NeighborSampler(n, poll_of(n), tmp_path / f"n-{n}.jsonl", 0.01) for n in ("r1", "r2", "r3")
    ]
    part = NeighborShard(samplers, 0.01).start()
    wait_until(lambda: all(s.polls >= 3 for s in samplers), 5, "three sweeps")
    part.stop()
    assert set(polled) == {"r1", "r2", "r3"}
    for name in ("r1", "r2", "r3"):
        records = read_jsonl(tmp_path / f"n-{name}.jsonl")
        assert records[-1]["event"] == "sampler_stopped" and records[-1]["router"] == name
        assert records[-1]["polls"] >= 3
    assert read_jsonl(tmp_path / "n-r1.jsonl")[0]["states"] == {"ospfv2": {"r1-peer": "Full"}}
    r2 = read_jsonl(tmp_path / "n-r2.jsonl")
    assert r2[0]["error"] == "OSError: ospfd is not there" and r2[-1]["errors"] >= 3
    with pytest.raises(ValueError, match="at least one"):
        NeighborShard([])


def test_frr_neighbor_states_reads_both_json_documents() -> None:
    """ospfd's dict and ospf6d's list; "Full/DR" becomes "Full"; a missing document is None."""
    ospfd = {
        "neighbors": {
            "10.255.0.2": [{"nbrState": "Full/-"}],
            "10.255.0.3": [{"nbrState": "Init/DROther"}],
        }
    }
    ospf6d = {"neighbors": [{"neighborId": "10.255.0.2", "state": "Full"}]}
    text = json.dumps(ospfd, indent=2) + "\n" + json.dumps(ospf6d) + "\n"
    assert frr_neighbor_states(text) == {
        "ospfv2": {"10.255.0.2": "Full", "10.255.0.3": "Init"},
        "ospfv3": {"10.255.0.2": "Full"},
    }
    assert frr_neighbor_states(json.dumps(ospfd)) == {
        "ospfv2": {"10.255.0.2": "Full", "10.255.0.3": "Init"},
        "ospfv3": None,
    }


class _Router:
    """A router whose ospf6d is down."""

    def ospf_neighbors(self) -> dict[tuple[str, str], str] | None:
        return {("r1-r2", "10.255.0.2"): "Full", ("r1-r3", "10.255.0.3"): "ExStart"}

    def ospf6_neighbors(self) -> dict[tuple[str, str], str] | None:
        return None

    def pim_neighbors(self) -> dict[str, set[str]] | None:
        return {"r1-r2": {"10.100.1.2"}, "r1-r3": set()}


def test_router_poll_names_neighbors_by_id_and_interface() -> None:
    """``<id>@<interface>``; a listed PIM neighbor is Up; a daemon down is None."""
    assert router_poll(_Router())() == {
        "ospfv2": {"10.255.0.2@r1-r2": "Full", "10.255.0.3@r1-r3": "ExStart"},
        "ospfv3": None,
        "pim": {"10.100.1.2@r1-r2": "Up"},
    }
    assert router_poll(_Router(), ("pim",))() == {"pim": {"10.100.1.2@r1-r2": "Up"}}


def test_host_load_sampler_reads_proc(tmp_path: Path) -> None:
    """busy is the share of non-idle jiffies since the previous sample."""
    (tmp_path / "loadavg").write_text("0.50 0.40 0.30 1/100 42\n")
    (tmp_path / "stat").write_text("cpu  100 0 0 900 0 0 0 0 0 0\n")
    sampler = HostLoadSampler(tmp_path / "host.jsonl", clock=_Clock(), proc=tmp_path)
    first = sampler.sample()[0]
    (tmp_path / "stat").write_text("cpu  190 0 0 910 0 0 0 0 0 0\n")
    second = sampler.sample()[0]
    assert (first["busy"], first["load1"]) == (None, 0.5)
    assert (second["busy"], second["load5"], second["load15"]) == (0.9, 0.4, 0.3)


def test_process_cpu_sampler_follows_a_process_until_it_is_gone(tmp_path: Path) -> None:
    """Our own process has a CPU time; a PID without /proc entry ends the sampler."""
    me = ProcessCpuSampler("me", os.getpid(), tmp_path / "cpu.jsonl")
    (record,) = me.sample()
    assert record["event"] == "process_cpu" and record["cpu_s"] > 0
    gone = ProcessCpuSampler("gone", 1, tmp_path / "cpu.jsonl", proc=tmp_path)
    assert gone.sample()[0]["event"] == "process_gone" and gone._done()


def test_collectors_write_routers_host_and_neighbor_files(tmp_path: Path) -> None:
    """Without interfaces no tcpdump runs; stop() leaves every sample file closed."""
    tap = RouterTap("r1", "r1.mrkm", "10.255.0.1", neighbors=lambda: {"ospfv2": {}})
    collectors = Collectors(tmp_path, [tap], neighbor_period=0.01).start()
    collectors.watch_process("gcks", os.getpid())
    samples = tmp_path / "samples"
    wait_until(
        lambda: all(
            (samples / name).exists() and (samples / name).read_text()
            for name in ("host.jsonl", "cpu-gcks.jsonl", "neighbors-r1.jsonl")
        ),
        5,
        "a first sample in every file",
        interval=0.01,
    )
    assert collectors.stop() == []
    assert json.loads((tmp_path / "samples" / "routers.json").read_text()) == [
        {"name": "r1", "node": "r1.mrkm", "router_id": "10.255.0.1", "interfaces": []}
    ]
    assert read_jsonl(tmp_path / "samples" / "host.jsonl")[0]["event"] == "host_load"
    assert read_jsonl(tmp_path / "samples" / "cpu-gcks.jsonl")[0]["event"] == "process_cpu"
    neighbors = read_jsonl(tmp_path / "samples" / "neighbors-r1.jsonl")
    assert neighbors[0]["states"] == {"ospfv2": {}}
    assert not (tmp_path / "wire").exists()


# -- tcpdump (root) -------------------------------------------------------------------------------


@pytest.mark.root
def test_wire_sniffer_captures_ospf_on_lo_and_stops_by_pid(tmp_path: Path) -> None:
    """tcpdump on lo sees the OSPF packets we send (and not the UDP one); the parser finds
    their Key IDs; stop() ends tcpdump by its PID with a complete file."""
    sniffer = WireSniffer("r1", "lo", tmp_path / "wire" / "r1-lo.pcap").start()
    try:
        for seq, key_id in enumerate((1, 1, 2), start=1):
            payload = bytes(v2(0, 1, key_id, seq=seq)[Raw])
            send(IP(dst="127.0.0.1", proto=89) / Raw(payload), verbose=0)
        send(IP(dst="127.0.0.1") / UDP(dport=9) / Raw(b"not ospf"), verbose=0)
        deadline = time.monotonic() + 5  # tcpdump -U writes each packet as it comes
        while sum(r["packets"] for r in parse_captures([sniffer.path])) < 3:
            assert time.monotonic() < deadline, "tcpdump wrote fewer than 3 OSPF packets"
            time.sleep(0.05)
    finally:
        code = sniffer.stop()
    assert code == 0 and not sniffer.alive()
    records = parse_captures([sniffer.path], ROUTERS)
    assert [(r["router"], r["key_id"], r["packets"]) for r in records] == [
        ("r1", 1, 2),
        ("r1", 2, 1),
    ]


@pytest.mark.root
def test_collectors_sniff_through_a_prefix_and_write_wire_jsonl(tmp_path: Path) -> None:
    """A tap's prefix runs tcpdump (``env`` execs it, as ``ip netns exec`` does); stop()
    parses every capture into wire/wire.jsonl, naming the router and its GM."""
    tap = RouterTap("r1", "r1.mrkm", "10.255.0.1", prefix=("env",), interfaces=("lo",))
    collectors = Collectors(tmp_path, [tap], host=False).start()
    pcap = tmp_path / "wire" / "r1-lo.pcap"
    try:
        send(IP(dst="127.0.0.1", proto=89) / Raw(bytes(v2(0, 1, 4)[Raw])), verbose=0)
        deadline = time.monotonic() + 5
        while not parse_captures([pcap]):
            assert time.monotonic() < deadline, "tcpdump wrote no OSPF packet"
            time.sleep(0.05)
    finally:
        records = collectors.stop()
    assert [(r["router"], r["node"], r["key_id"]) for r in records] == [("r1", "r1.mrkm", 4)]
    assert read_jsonl(tmp_path / "wire" / "wire.jsonl") == records
    assert (tmp_path / "wire" / "r1-lo.log").exists()
