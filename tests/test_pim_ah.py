"""PIM protected with AH by MRKM, on three real FRR routers with pimd (root).

Layout (tests/lab.py, with ``p = mkpa<pid>``)::

    s (sender) --- r1 --- r2 (RP) --- r3 [r3gm: receiver]
                          |
                          x (attacker, no key)

Every router runs zebra, ospfd (plain, for the routes to the RP) and pimd
(hello 1 s, hold 3 s, so a gap of 3 s in hellos loses the neighbor), its
MRKM GM with a ``pim_ah`` sink, and the AH shim (``python -m
mrkm.sinks.pim_ah``), started before pimd so that no PIM ever flows
unprotected. The GCKS has one ``pim`` group; keys reach the GMs over the
management LAN.

What holds, and is checked:

* PIM neighbors form only through the shims, and a multicast stream to
  239.192.7.1 from ``s`` reaches a socket on r3's GM bridge (register to the
  RP and the shortest-path tree, all PIM messages under AH);
* tshark on the r1-r2 link sees AH with the SPI the routers send with;
* 20 rollovers (GCKS rekeys, ATD 1 s, DTD 2 s) lose no PIM neighbor (sampled
  every 0.25 s: a neighbor never missing, its uptime never going back) and
  the stream keeps flowing;
* from ``x``: a forged plain PIM hello is dropped as ``unprotected``, one
  with AH under the current SPI and a wrong key as ``bad-icv``; a captured
  AH hello replayed while its SA is still accepted passes (SN "32-bit
  Unspecified": no anti-replay, by design), and the same replay after its
  SA expired is dropped as ``unknown-spi``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mrkm.runtime.control import request
from testbed.processes import REPO, wait_until
from testbed.router import json_documents
from tests.frr_support import FrrRouter, _chown_frr, frr_lab
from tests.lab import Lab, Router, sh

pytestmark = [pytest.mark.root, pytest.mark.slow]

GROUP = "pim-sm"
STREAM = ("239.192.7.1", 5007)
RP = "10.255.60.2"
ROLLOVERS = 20


# -- routers --------------------------------------------------------------------------------


def ospfd_conf(router: Router, links: list[str], passive: list[str]) -> str:
    """Plain OSPFv2 (no authentication: this test is about PIM) for the routes to the RP."""
    lines = [f"hostname {router.name}", "!"]
    for ifname in links:
        lines += [
            f"interface {ifname}",
            " ip ospf area 0.0.0.0",
            " ip ospf network point-to-point",
            " ip ospf hello-interval 1",
            " ip ospf dead-interval 4",
            "exit",
        ]
    for ifname in ["lo", *passive]:
        lines += [f"interface {ifname}", " ip ospf area 0.0.0.0", " ip ospf passive", "exit"]
    lines += ["router ospf", f" ospf router-id {router.loopback}", " timers throttle spf 0 50 1000"]
    return "\n".join(lines) + "\n"


def pimd_conf(router: Router, links: list[str], stub: list[str], gm_bridge: str | None) -> str:
    """pimd: static RP r2, hello 1 s / hold 3 s on links, the GM bridge passive with IGMP."""
    lines = [f"hostname {router.name}", f"ip pim rp {RP} 224.0.0.0/4", "interface lo", " ip pim"]
    for ifname in links:
        lines += [f"interface {ifname}", " ip pim", " ip pim hello 1 3"]
    for ifname in stub:
        lines += [f"interface {ifname}", " ip pim", " ip igmp"]
    if gm_bridge:
        lines += [f"interface {gm_bridge}", " ip pim passive", " ip igmp"]
    return "\n".join(lines) + "\n"


def start_pim_router(router: Router, configs: dict[str, str]) -> FrrRouter:
    """zebra, ospfd, pimd with the given configurations, in tests/frr_support's manner."""
    state = Path(tempfile.mkdtemp(prefix=f"mrkm-frr-{router.netns}-"))
    os.chmod(state, 0o755)
    _chown_frr(state)
    for daemon, text in configs.items():
        (state / f"{daemon}.conf").write_text(text)
        _chown_frr(state / f"{daemon}.conf")
    frr = FrrRouter(router, state, tuple(configs), "mrkm")
    try:
        for daemon in configs:
            frr._start_daemon(daemon)
    except BaseException:
        frr.stop()
        raise
    return frr


def pim_neighbors(frr: FrrRouter) -> dict[str, int] | None:
    """``show ip pim neighbor json`` as {neighbor address: uptime seconds}; None if no answer."""
    try:
        out = frr.vtysh("show ip pim neighbor json", check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    docs = [d for d in json_documents(out) if isinstance(d, dict)]
    if not docs:
        return None
    found: dict[str, int] = {}
    for per_if in docs[0].values():
        for address, entry in (per_if or {}).items():
            h, m, s = (int(x) for x in str(entry.get("upTime", "0:0:0")).split(":"))
            found[address] = h * 3600 + m * 60 + s
    return found


@dataclass
class PimSampler:
    """Poll every router's PIM neighbors every ``period`` s; record losses and uptime resets."""

    routers: list[FrrRouter]
    expected: dict[str, set[str]]
    period: float = 0.25
    losses: list[tuple[float, str, str, str]] = field(default_factory=list)
    polls: int = 0
    last_poll: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        last: dict[tuple[str, str], int] = {}
        while not self._stop.wait(self.period):
            for frr in self.routers:
                seen = pim_neighbors(frr)
                if seen is None:
                    continue
                self.polls += 1
                for neighbor in self.expected[frr.name]:
                    up = seen.get(neighbor)
                    if up is None:
                        self.losses.append((time.time(), frr.name, neighbor, "absent"))
                        continue
                    before = last.get((frr.name, neighbor))
                    if before is not None and up + 1 < before:
                        self.losses.append(
                            (time.time(), frr.name, neighbor, f"uptime {before}->{up}")
                        )
                    last[(frr.name, neighbor)] = up
            self.last_poll = time.time()

    def start(self) -> PimSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


# -- shims, stream, capture -------------------------------------------------------------------


@dataclass
class Shim:
    """The AH shim of one router (``python -m mrkm.sinks.pim_ah``), stopped by PID."""

    router: Router
    popen: subprocess.Popen[bytes]

    @property
    def status_path(self) -> Path:
        return self.router.workdir / "pim-ah.status.json"

    @property
    def log_path(self) -> Path:
        return self.router.workdir / "pim-ah.jsonl"

    def status(self) -> dict[str, Any]:
        try:
            data = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def counter(self, name: str) -> int:
        return int(self.status().get("counters", {}).get(name, 0))

    def events(self, name: str) -> list[dict[str, Any]]:
        try:
            lines = self.log_path.read_text().splitlines()
        except OSError:
            return []
        return [e for e in map(json.loads, lines) if e["event"] == name]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def start_shim(router: Router) -> Shim:
    work = router.workdir
    popen = subprocess.Popen(
        [
            *("ip", "netns", "exec", router.netns, sys.executable, "-m", "mrkm.sinks.pim_ah"),
            *(
                "--keys",
                str(work / "pim-ah.keys.json"),
                "--status",
                str(work / "pim-ah.status.json"),
            ),
            *("--log", str(work / "pim-ah.jsonl"), "--queue", "7", "--tag", router.name),
            *("--node", router.name),
        ],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(work / "pim-ah.stderr").open("wb"),
    )
    shim = Shim(router, popen)
    wait_until(
        lambda: shim.status().get("pid") == popen.pid or popen.poll() is not None,
        15,
        f"the shim of {router.name} to start",
    )
    assert popen.poll() is None, (work / "pim-ah.stderr").read_text()
    return shim


SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 16)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
seq = 0
while True:
    s.sendto(b"MRKM %d %.6f" % (seq, time.time()), (sys.argv[2], int(sys.argv[3])))
    seq += 1
    time.sleep(0.05)
"""
RECEIVER = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2])))
mreqn = socket.inet_aton(sys.argv[1]) + socket.inet_aton("0.0.0.0") + struct.pack(
    "@i", socket.if_nametoindex(sys.argv[3]))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
out = open(sys.argv[4], "a", buffering=1)
while True:
    data = s.recv(2048)
    out.write("%s %.6f\\n" % (data.split()[1].decode(), time.time()))
"""


@contextlib.contextmanager
def in_netns(router: Router, script: str, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """A Python script in ``router``'s namespace, stopped by PID on exit."""
    popen = subprocess.Popen(
        ["ip", "netns", "exec", router.netns, sys.executable, "-c", script, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield popen
    finally:
        popen.kill()
        popen.wait(5)


def arrivals(path: Path) -> list[tuple[int, float]]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return [(int(a), float(b)) for a, b in (ln.split() for ln in lines if ln.count(" ") == 1)]


def capture(router: Router, ifname: str, path: Path, seconds: float) -> None:
    """tcpdump of AH on one interface for ``seconds`` (it exits by itself)."""
    sh(
        "ip",
        "netns",
        "exec",
        router.netns,
        "timeout",
        "-s",
        "INT",
        str(seconds),
        "tcpdump",
        "-Z",
        "root",
        "-U",
        "-n",
        "-i",
        ifname,
        "-w",
        str(path),
        "ip proto 51",
        check=False,
    )


def scapy_send(router: Router, ifname: str, ip_packets: list[bytes]) -> None:
    """Send raw IPv4 packets as Ethernet frames to 01:00:5e:00:00:0d with scapy."""
    script = (
        "import sys\n"
        "from scapy.all import Ether, Raw, sendp\n"
        "mac = '01:00:5e:00:00:0d'\n"
        "frames = [Ether(dst=mac, type=0x0800) / Raw(bytes.fromhex(h)) for h in sys.argv[2:]]\n"
        "sendp(frames, iface=sys.argv[1], verbose=False)\n"
    )
    sh(
        "ip",
        "netns",
        "exec",
        router.netns,
        sys.executable,
        "-c",
        script,
        ifname,
        *(p.hex() for p in ip_packets),
    )


def forged_hello(src: str) -> bytes:
    """A plain PIMv2 Hello from ``src`` to 224.0.0.13 built with scapy."""
    from scapy.layers.inet import IP
    from scapy.packet import Raw

    pim = bytes([0x20, 0x00, 0x00, 0x00, 0, 1, 0, 2, 0, 105])
    checksum = _inet_checksum(pim)
    pim = pim[:2] + checksum.to_bytes(2, "big") + pim[4:]
    return bytes(IP(src=src, dst="224.0.0.13", ttl=1, proto=103) / Raw(pim))


def _inet_checksum(data: bytes) -> int:
    total = sum(
        int.from_bytes(data[i : i + 2].ljust(2, b"\0"), "big") for i in range(0, len(data), 2)
    )
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ah_hellos(pcap: Path, source: str) -> list[bytes]:
    """The IPv4 packets from ``source`` in a capture that carry AH around a PIM Hello."""
    from scapy.layers.inet import IP
    from scapy.utils import rdpcap

    out = []
    for frame in rdpcap(str(pcap)):
        if IP not in frame or frame[IP].src != source:
            continue
        raw = bytes(frame[IP])
        ihl = (raw[0] & 0x0F) * 4
        if raw[9] == 51 and raw[ihl] == 103:
            ah_len = (raw[ihl + 1] + 2) * 4
            if raw[ihl + ah_len] == 0x20:  # PIM version 2, type 0 (Hello)
                out.append(raw)
    return out


# -- the test ---------------------------------------------------------------------------------


def test_pim_under_ah_keyed_by_mrkm(tmp_path: Path) -> None:
    with frr_lab(tmp_path, "pa") as lab:
        _run(lab, tmp_path)


def _run(lab: Lab, tmp_path: Path) -> None:
    names = ["r1", "r2", "r3", "s", "x"]
    routers = {n: lab.add_router(n) for n in names}
    lab.link("r1", "r2")
    lab.link("r2", "r3")
    lab.link("r1", "s")
    lab.link("r2", "x")
    r3 = routers["r3"]
    sh("ip", "-n", r3.netns, "link", "add", "r3gm", "type", "bridge")
    sh("ip", "-n", r3.netns, "addr", "add", "10.62.3.1/24", "dev", "r3gm")
    sh("ip", "-n", r3.netns, "link", "set", "r3gm", "up")
    src = routers["s"]
    sh("ip", "-n", src.netns, "route", "add", "default", "via", "10.60.3.1")
    links = {"r1": ["r1-r2"], "r2": ["r2-r1", "r2-r3"], "r3": ["r3-r2"]}
    stubs = {"r1": ["r1-s"], "r2": ["r2-x"], "r3": []}

    lab.start_gcks(
        [
            {
                "name": GROUP,
                "protocol": "pim",
                "algorithm": "hmac-sha-256",
                "lifetime": 120,  # no periodic rekey during the test: only the 20 below
                "rekey_margin": 10,
                "atd": 1,
                "dtd": 2,
                "copies": [0, 0.25, 0.5],
                "prime": 0,
            }
        ],
        [f"{n}.mrkm" for n in ("r1", "r2", "r3")],
    )
    shims: dict[str, Shim] = {}
    frrs: list[FrrRouter] = []
    sampler: PimSampler | None = None
    try:
        for name in ("r1", "r2", "r3"):
            router = routers[name]
            shims[name] = start_shim(router)  # before pimd: no PIM ever leaves unprotected
            frrs.append(
                start_pim_router(
                    router,
                    {
                        "zebra": f"hostname {name}\n",
                        "ospfd": ospfd_conf(
                            router, links[name], stubs[name] + (["r3gm"] if name == "r3" else [])
                        ),
                        "pimd": pimd_conf(
                            router, links[name], stubs[name], "r3gm" if name == "r3" else None
                        ),
                    },
                )
            )
            work = router.workdir
            lab.start_gm(
                router,
                [GROUP],
                [
                    {
                        "type": "pim_ah",
                        "keys": str(work / "pim-ah.keys.json"),
                        "status": str(work / "pim-ah.status.json"),
                    }
                ],
            )
        by_name = {f.name: f for f in frrs}
        expected = {"r1": {"10.60.1.2"}, "r2": {"10.60.1.1", "10.60.2.3"}, "r3": {"10.60.2.2"}}

        def neighbors_up() -> bool:
            return all(
                expected[n] <= set(pim_neighbors(by_name[n]) or {}) for n in ("r1", "r2", "r3")
            )

        wait_until(neighbors_up, 60, "PIM neighbors through the AH shims")
        spis = {shims[n].status().get("send_spi") for n in shims}
        assert len(spis) == 1 and None not in spis, spis
        first_spi = int(spis.pop() or 0)
        assert first_spi >= 256

        # -- a multicast stream reaches the far end over the AH-protected tree --
        received = tmp_path / "received.txt"
        with (
            in_netns(r3, RECEIVER, STREAM[0], str(STREAM[1]), "r3gm", str(received)),
            in_netns(src, SENDER, "10.60.3.4", STREAM[0], str(STREAM[1])),
        ):
            wait_until(lambda: len(arrivals(received)) >= 20, 60, "the stream to reach r3")

            # -- tshark sees AH with the expected SPI; keep hellos for the replays --
            pcap = tmp_path / "r2-r1.pcap"
            capture(routers["r2"], "r2-r1", pcap, 3.5)
            out = sh(
                "tshark",
                "-r",
                str(pcap),
                "-Y",
                "ah",
                "-T",
                "fields",
                "-e",
                "ah.spi",
                "-e",
                "ah.next_header",
            ).stdout.split()
            wire_spis = {int(v, 16) for v in out[0::2]}
            assert wire_spis == {first_spi}, (wire_spis, first_spi)
            assert set(out[1::2]) == {"103"}
            # r1's hellos only: r2's own, replayed to r2, would be martians (local source).
            hellos = ah_hellos(pcap, "10.60.1.1")
            assert hellos, "no AH-protected hello captured from r1"
            captured = hellos[-1]

            # -- forgeries from x, which holds no key --
            shim2 = shims["r2"]
            before = {
                k: shim2.counter(k)
                for k in ("in_dropped.unprotected", "in_dropped.bad-icv", "in_dropped.unknown-spi")
            }
            scapy_send(routers["x"], "x-r2", [forged_hello("10.60.4.5")] * 3)
            wait_until(
                lambda: (
                    shim2.counter("in_dropped.unprotected") == before["in_dropped.unprotected"] + 3
                ),
                10,
                "r2 to drop 3 unprotected hellos",
            )
            from mrkm.crypto.routing_ah import ah_protect_ipv4
            from mrkm.wire.registry import IntegId

            wrong = [
                ah_protect_ipv4(
                    IntegId.AUTH_HMAC_SHA2_256_128,
                    os.urandom(32),
                    forged_hello("10.60.1.1"),
                    spi=first_spi,
                    sequence=i + 1,
                )
                for i in range(2)
            ]
            scapy_send(routers["x"], "x-r2", wrong)
            wait_until(
                lambda: shim2.counter("in_dropped.bad-icv") == before["in_dropped.bad-icv"] + 2,
                10,
                "r2 to drop 2 hellos with a wrong key",
            )
            # A replay within the SA's life passes: no anti-replay with unspecified SNs.
            # A plain hello sent after the replays marks when the queue has judged them.
            unprotected = shim2.counter("in_dropped.unprotected")
            t_replay = time.time()
            scapy_send(routers["x"], "x-r2", [captured, captured, forged_hello("10.60.4.5")])
            wait_until(
                lambda: shim2.counter("in_dropped.unprotected") == unprotected + 1,
                10,
                "r2 to judge the replays and the marker",
            )
            assert shim2.counter("in_dropped.unknown-spi") == before["in_dropped.unknown-spi"]
            assert shim2.counter("in_dropped.bad-icv") == before["in_dropped.bad-icv"] + 2
            replay_drops = [
                e
                for e in shim2.events("pim_ah_drop")
                if e["t"] >= t_replay and e["reason"] != "unprotected"  # the marker
            ]
            assert replay_drops == []

            # -- 20 rollovers: no neighbor lost, the stream keeps flowing --
            sampler = PimSampler(frrs, expected).start()
            t_roll = time.time()
            current = first_spi
            for i in range(ROLLOVERS):
                answer = request(tmp_path / "gcks.sock", {"cmd": "rekey", "group": GROUP})
                assert answer["ok"], answer
                previous = current

                def switched(previous: int = previous) -> bool:
                    sends = {shims[n].status().get("send_spi") for n in shims}
                    return len(sends) == 1 and None not in sends and previous not in sends

                wait_until(switched, 20, f"every shim to send with the key of rollover {i + 1}")
                current = int(shims["r1"].status()["send_spi"])
            # Keep sampling past the last old key's DTD (2 s) plus a hold time (3 s).
            t_last = time.time()
            wait_until(lambda: sampler.last_poll > t_last + 6, 20, "6 s more neighbor samples")
            sampler.stop()
            t_end = time.time()
            assert sampler.losses == [], sampler.losses[:10]
            assert neighbors_up()
            during = [a for a in arrivals(received) if t_roll <= a[1] <= t_end]
            gaps = [b[1] - a[1] for a, b in itertools.pairwise(during)]
            assert during and max(gaps) < 1.0, (len(during), max(gaps, default=None))
            sent_during = (t_end - t_roll) / 0.05
            assert len(during) >= 0.8 * sent_during, (len(during), sent_during)

            switches = {n: len(shims[n].events("pim_ah_send_switch")) for n in shims}
            assert all(v >= ROLLOVERS + 1 for v in switches.values()), switches

            # -- the captured hello replayed after its SA expired is dropped --
            assert first_spi not in shim2.status().get("accept_spis", [])
            unknown = shim2.counter("in_dropped.unknown-spi")
            scapy_send(routers["x"], "x-r2", [captured])
            wait_until(
                lambda: shim2.counter("in_dropped.unknown-spi") == unknown + 1,
                10,
                "r2 to drop the stale replay",
            )
            wait_until(
                lambda: any(
                    e.get("spi") == first_spi and e["reason"] == "unknown-spi"
                    for e in shim2.events("pim_ah_drop")
                ),
                5,
                "the drop event",
            )
    finally:
        if sampler is not None:
            sampler.stop()
        try:
            lab.procs.stop_all()
        finally:
            for frr in reversed(frrs):
                frr.stop()
            for shim in shims.values():
                shim.stop()
    # A stopped shim removes its rules (checked after the stop, namespaces still exist).
    for name in ("r1", "r2", "r3"):
        rules = sh(
            "ip", "netns", "exec", routers[name].netns, "iptables", "-t", "mangle", "-S"
        ).stdout
        assert "MRKM-AH" not in rules, rules
