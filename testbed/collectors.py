"""Collectors of a testbed run: samplers, wire sniffers and the capture parser.

Everything here writes files into the run folder (:mod:`testbed.bundle`) and
nothing else (STYLE.md item 15); :mod:`testbed.metrics` reads them later.
Every collector is an app with ``start()`` and ``stop()`` (STYLE.md item 14):

* :class:`NeighborSampler` polls a callable per router every 100 ms and
  writes ``samples/neighbors-<router>.jsonl``: one ``neighbor_states`` line
  each time the answer differs from the previous one, then one
  ``sampler_stopped`` line (polls, errors, largest gap between polls); a
  run's samplers share :data:`NEIGHBOR_THREADS` threads
  (:class:`NeighborShard`);
  :func:`router_poll` makes that callable from a router object and
  :func:`frr_neighbor_states` reads vtysh's JSON;
* :class:`HostLoadSampler` reads ``/proc/stat`` and ``/proc/loadavg`` and
  writes ``samples/host.jsonl`` (``busy`` = fraction of all CPUs not idle
  since the previous sample);
* :class:`ProcessCpuSampler` reads ``/proc/<pid>/stat`` (utime + stime) of one
  process, the GCKS, and writes ``samples/cpu-<name>.jsonl``;
* :class:`WireSniffer` runs ``tcpdump`` on one router interface (inside the
  router's namespace through a command prefix) into ``wire/<router>-<if>.pcap``
  and is stopped by its PID, never by name;
* :func:`parse_captures` reads those pcaps with scapy and, through the
  public parsers of :mod:`mrkm.crypto.routing`, records for every router
  interface each change of the OSPFv2 Key ID / OSPFv3 SA ID it sends, and
  when a key id first appears at a router (``wire_key`` lines of
  ``wire/wire.jsonl``). The sender is the Router ID in the OSPF header, its
  interface the IP source address; a packet seen at both ends of a link
  counts once.

:class:`Collectors` holds them all for one run; ``stop()`` stops them in
reverse order and parses the captures. Times are the host clock
(:func:`time.time`), the clock of every event log; pcap time stamps are the
kernel's capture times on the same clock.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from mrkm.crypto.routing import ospfv2_verify, ospfv3_verify
from mrkm.errors import MrkmError
from testbed.router import json_documents

__all__ = [
    "OSPF_FILTER",
    "Collectors",
    "FrrNeighbors",
    "HostLoadSampler",
    "NeighborPoll",
    "NeighborSampler",
    "NeighborShard",
    "ProcessCpuSampler",
    "RouterTap",
    "WireSniffer",
    "cpu_times",
    "frr_neighbor_states",
    "neighbor_period",
    "parse_captures",
    "process_cpu_seconds",
    "router_poll",
    "shard",
    "write_jsonl",
]

NEIGHBOR_PERIOD = 0.1  # s between neighbor polls of one router (ARCHITECTURE.md: 100 ms)
NEIGHBOR_THREADS = 4  # sampler threads of a run, each polling its share of the routers
#: Daemon questions per second that every router's neighbor polls may ask together. Each
#: poll asks ospfd, ospf6d and pimd; at 50 routers and 100 ms the polls doubled the
#: host's load (0.5 -> 1.06 cores, most of it the daemons answering).
NEIGHBOR_BUDGET = 750.0

HOST_PERIOD = 0.5  # s between /proc/stat samples
PROCESS_PERIOD = 0.1  # s between /proc/<pid>/stat samples (the kernel counts in 10 ms ticks)
READY_TIMEOUT = 10.0  # s to wait for tcpdump to write its pcap header
STOP_TIMEOUT = 5.0  # s between SIGINT and SIGKILL for tcpdump
#: tcpdump filter: every OSPF packet, IPv4 (OSPFv2) and IPv6 (OSPFv3), IP protocol 89.
OSPF_FILTER = "ip proto 89 or ip6 proto 89"
#: s within which identical OSPF octets from one sender are one packet seen twice
DUPLICATE_WINDOW = 0.1
_PCAP_HEADER = 24  # octets of the pcap global header: the file is open once they are there
_CLK_TCK = os.sysconf("SC_CLK_TCK")

#: A router's neighbor states: protocol ("ospfv2", "ospfv3", "pim") -> {neighbor: state},
#: or None for a protocol whose daemon did not answer this poll.
NeighborStates = Mapping[str, Mapping[str, str] | None]
NeighborPoll = Callable[[], NeighborStates]


def neighbor_period(routers: int, budget: float = NEIGHBOR_BUDGET) -> float:
    """The neighbor poll period for ``routers`` routers: 100 ms up to 25 routers, then
    longer, so that all polls together stay within ``budget`` daemon questions a second.
    A flap shorter than the period can be missed; runs record the period they used."""
    return round(max(NEIGHBOR_PERIOD, 3 * routers / budget), 3)


def write_jsonl(out: TextIO, record: Mapping[str, Any]) -> None:
    """One compact JSON line, flushed (a killed run keeps every line written)."""
    out.write(json.dumps(record, separators=(",", ":")) + "\n")
    out.flush()


class _Periodic:
    """A thread that calls ``sample`` every ``period`` s and appends its records to ``path``.

    A slow poll keeps the period and skips the missed slots; it never bursts.
    """

    def __init__(self, path: Path, period: float, clock: Callable[[], float]) -> None:
        if period <= 0:
            raise ValueError(f"sampling period must be > 0 s, not {period}")
        self.path, self.period, self.clock = path, period, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._out: TextIO | None = None

    def start(self) -> _Periodic:
        """Open the file and begin polling."""
        self.open()
        self._thread = threading.Thread(target=self._run, name=self.path.stem, daemon=True)
        self._thread.start()
        return self

    def open(self) -> None:
        """Open the file only: a :class:`NeighborShard` calls ``sample`` from its thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.path.open("a", encoding="utf-8")

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            for record in self.sample():
                self._write(record)
            if self._done():
                return
            next_at += self.period
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at, delay = time.monotonic(), 0.0
            self._stop.wait(delay)

    def _write(self, record: Mapping[str, Any]) -> None:
        if self._out is not None:
            write_jsonl(self._out, record)

    def sample(self) -> list[dict[str, Any]]:
        """Take one sample now; return the records to log (the thread calls this)."""
        raise NotImplementedError

    def _done(self) -> bool:
        return False

    def _final(self) -> list[dict[str, Any]]:
        return []

    def request_stop(self) -> None:
        """Ask the thread to stop after its current sample, without waiting for it."""
        self._stop.set()

    def stop(self) -> None:
        """Stop polling, write the closing records, close the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.close()

    def close(self) -> None:
        """Write the closing records and close the file (idempotent)."""
        if self._out is not None:
            for record in self._final():
                self._write(record)
            self._out.close()
            self._out = None


# -- neighbor states ---------------------------------------------------------------------------


class NeighborSampler(_Periodic):
    """Poll one router's neighbor states every ``period`` s; log each change.

    ``poll`` returns ``{protocol: {neighbor: state} or None}``; an exception
    counts as "no daemon answered" (every protocol None) and is counted, so
    the sampler outlives a router that is being killed. ``t`` is when the
    answer arrived.
    """

    def __init__(
        self,
        router: str,
        poll: NeighborPoll,
        path: Path,
        period: float = NEIGHBOR_PERIOD,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(path, period, clock)
        self.router, self.poll = router, poll
        self.polls = self.errors = 0
        self._last: dict[str, dict[str, str] | None] | None = None
        self._last_t: float | None = None
        self._max_gap = 0.0
        self._protocols: set[str] = set()

    def sample(self) -> list[dict[str, Any]]:
        error = ""
        try:
            answer = self.poll()
            states = {
                proto: (None if s is None else {str(n): str(v) for n, v in s.items()})
                for proto, s in answer.items()
            }
        except Exception as exc:  # a router going down must not end the sampler
            error = f"{type(exc).__name__}: {exc}"
            states = {}
        t = self.clock()
        self.polls += 1
        if self._last_t is not None:
            self._max_gap = max(self._max_gap, t - self._last_t)
        self._last_t = t
        if error:
            self.errors += 1
            states = {proto: None for proto in self._protocols}
        self._protocols |= set(states)
        if states == self._last:
            return []
        self._last = states
        record: dict[str, Any] = {
            "t": round(t, 6),
            "event": "neighbor_states",
            "router": self.router,
            "states": states,
        }
        if error:
            record["error"] = error
        return [record]

    def _final(self) -> list[dict[str, Any]]:
        return [
            {
                "t": round(self.clock(), 6),
                "event": "sampler_stopped",
                "router": self.router,
                "polls": self.polls,
                "errors": self.errors,
                "max_gap_s": round(self._max_gap, 6),
            }
        ]


class NeighborShard(_Periodic):
    """One thread that polls several routers' :class:`NeighborSampler` in turn.

    A thread per router did not scale: at 50 routers the runner's 50 sampler
    threads, each waking ten times a second, used 0.7 of a core, mostly
    trading the GIL. A few shards do the same polls; each sampler still
    writes its own file and measures its own gaps between polls, so a sweep
    that takes longer than ``period`` shows in ``max_gap_s``.
    """

    def __init__(
        self, samplers: Sequence[NeighborSampler], period: float = NEIGHBOR_PERIOD
    ) -> None:
        if not samplers:
            raise ValueError("a neighbor shard needs at least one sampler")
        super().__init__(samplers[0].path, period, samplers[0].clock)
        self.samplers = list(samplers)

    def open(self) -> None:
        for sampler in self.samplers:
            sampler.open()

    def sample(self) -> list[dict[str, Any]]:
        for sampler in self.samplers:
            if self._stop.is_set():
                break
            for record in sampler.sample():
                sampler._write(record)
        return []

    def close(self) -> None:
        for sampler in self.samplers:
            sampler.close()


def shard(items: Sequence[Any], count: int) -> list[list[Any]]:
    """``items`` dealt round-robin into at most ``count`` non-empty lists."""
    count = max(1, min(count, len(items)))
    return [list(items[i::count]) for i in range(count)] if items else []


def frr_neighbor_states(text: str) -> dict[str, dict[str, str] | None]:
    """FRR's ``show ip ospf neighbor json`` + ``show ipv6 ospf6 neighbor json`` output
    (one vtysh call, two JSON documents) as ``{"ospfv2": ..., "ospfv3": ...}``.

    States are shortened to their first part ("Full/DR" -> "Full"); a
    protocol whose document is missing (daemon down) is None. Use it in a
    :data:`NeighborPoll` that runs ``vtysh -c "show ip ospf neighbor json"
    -c "show ipv6 ospf6 neighbor json"``.
    """
    out: dict[str, dict[str, str] | None] = {"ospfv2": None, "ospfv3": None}
    for doc in json_documents(text):
        if not isinstance(doc, dict):
            continue
        neighbors = doc.get("neighbors")
        if isinstance(neighbors, dict):  # ospfd: {router id: [entry, ...]}
            v2: dict[str, str] = {}
            for rid, entries in neighbors.items():
                for entry in entries if isinstance(entries, list) else [entries]:
                    state = entry.get("nbrState") or entry.get("state") or ""
                    v2[str(rid)] = str(state).split("/", 1)[0]
            out["ospfv2"] = v2
        elif isinstance(neighbors, list):  # ospf6d: [{"neighborId": ..., "state": ...}]
            out["ospfv3"] = {
                str(e.get("neighborId")): str(e.get("state", "")).split("/", 1)[0]
                for e in neighbors
            }
    return out


class FrrNeighbors(Protocol):
    """What :func:`router_poll` needs of a router (``testbed.router.FrrRouter`` has it)."""

    def ospf_neighbors(self) -> Mapping[tuple[str, str], str] | None: ...

    def ospf6_neighbors(self) -> Mapping[tuple[str, str], str] | None: ...

    def pim_neighbors(self) -> Mapping[str, Collection[str]] | None: ...


def router_poll(
    router: FrrNeighbors, protocols: Sequence[str] = ("ospfv2", "ospfv3", "pim")
) -> NeighborPoll:
    """A :data:`NeighborPoll` over a router's ``ospf_neighbors`` / ``ospf6_neighbors`` /
    ``pim_neighbors``: neighbors are named ``<router id or address>@<interface>``; a PIM
    neighbor that is listed is "Up" (a vanished one is a flap)."""

    def poll() -> dict[str, dict[str, str] | None]:
        out: dict[str, dict[str, str] | None] = {}
        for proto in protocols:
            if proto == "pim":
                pim = router.pim_neighbors()
                out[proto] = (
                    None
                    if pim is None
                    else {f"{a}@{ifname}": "Up" for ifname, addrs in pim.items() for a in addrs}
                )
                continue
            ospf = router.ospf_neighbors() if proto == "ospfv2" else router.ospf6_neighbors()
            out[proto] = (
                None
                if ospf is None
                else {f"{rid}@{ifname}": st for (ifname, rid), st in ospf.items()}
            )
        return out

    return poll


# -- CPU ----------------------------------------------------------------------------------------


def cpu_times(proc_stat: str) -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from the text of ``/proc/stat`` (proc(5)).

    The ``cpu`` line holds user nice system idle iowait irq softirq steal
    guest guest_nice; guest time is already inside user and nice, so total
    is the sum of the first eight and busy is total minus idle and iowait.
    """
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]]
            values += [0] * (8 - len(values))
            total = sum(values)
            return total - values[3] - values[4], total
    raise ValueError("no aggregate 'cpu' line in /proc/stat")


def process_cpu_seconds(proc_pid_stat: str, clock_ticks: int = _CLK_TCK) -> float:
    """utime + stime in seconds from the text of ``/proc/<pid>/stat`` (proc(5) fields 14, 15).

    The command name (field 2) may hold spaces and parentheses, so fields are
    counted after its last ``)``.
    """
    rest = proc_pid_stat.rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(rest[11]) + int(rest[12])) / clock_ticks


class HostLoadSampler(_Periodic):
    """CPU busy fraction of the whole host and its load averages every ``period`` s."""

    def __init__(
        self,
        path: Path,
        period: float = HOST_PERIOD,
        clock: Callable[[], float] = time.time,
        proc: Path = Path("/proc"),
    ) -> None:
        super().__init__(path, period, clock)
        self.proc = proc
        self._prev: tuple[int, int] | None = None

    def sample(self) -> list[dict[str, Any]]:
        busy_total = cpu_times((self.proc / "stat").read_text())
        load = [float(v) for v in (self.proc / "loadavg").read_text().split()[:3]]
        busy = None
        if self._prev is not None and busy_total[1] > self._prev[1]:
            busy = (busy_total[0] - self._prev[0]) / (busy_total[1] - self._prev[1])
        self._prev = busy_total
        return [
            {
                "t": round(self.clock(), 6),
                "event": "host_load",
                "busy": None if busy is None else round(busy, 4),
                "load1": load[0],
                "load5": load[1],
                "load15": load[2],
                "cpus": os.cpu_count() or 1,
            }
        ]


class ProcessCpuSampler(_Periodic):
    """Cumulative CPU seconds (user + system) of process ``pid`` every ``period`` s.

    Stops by itself when the process is gone (a ``process_gone`` line).
    """

    def __init__(
        self,
        name: str,
        pid: int,
        path: Path,
        period: float = PROCESS_PERIOD,
        clock: Callable[[], float] = time.time,
        proc: Path = Path("/proc"),
    ) -> None:
        super().__init__(path, period, clock)
        self.name, self.pid, self.proc = name, pid, proc
        self._gone = False

    def sample(self) -> list[dict[str, Any]]:
        try:
            seconds = process_cpu_seconds((self.proc / str(self.pid) / "stat").read_text())
        except (OSError, IndexError, ValueError):
            self._gone = True
            return [{"t": round(self.clock(), 6), "event": "process_gone", "name": self.name}]
        return [
            {
                "t": round(self.clock(), 6),
                "event": "process_cpu",
                "name": self.name,
                "pid": self.pid,
                "cpu_s": round(seconds, 3),
            }
        ]

    def _done(self) -> bool:
        return self._gone


# -- wire -----------------------------------------------------------------------------------------


class WireSniffer:
    """tcpdump on one interface of one router, writing a pcap; stopped by PID.

    ``prefix`` runs tcpdump inside the router's namespace, for example
    ``("ip", "netns", "exec", "r1")`` or Mininet's ``("mnexec", "-a", pid)``;
    both exec tcpdump, so the PID we signal is tcpdump's. A prefix that
    forks instead (``mnexec -d`` in a new process group, ``sudo``) would hide
    tcpdump's PID: do not start it in a session of its own. tcpdump's own
    messages go to ``<pcap>.log`` untouched (copied, never parsed).
    """

    def __init__(
        self,
        router: str,
        interface: str,
        path: Path,
        prefix: Sequence[str] = (),
        bpf: str = OSPF_FILTER,
    ) -> None:
        self.router, self.interface, self.path = router, interface, path
        self.prefix, self.bpf = tuple(prefix), bpf
        self.log_path = path.with_suffix(".log")
        self.popen: subprocess.Popen[bytes] | None = None
        self._interrupted = False  # SIGINT sent (tcpdump is flushing)

    def start(self, timeout: float = READY_TIMEOUT) -> WireSniffer:
        """Start tcpdump; return once it has written its pcap header (deadline ``timeout``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [
                    *self.prefix,
                    "tcpdump",
                    "-i",
                    self.interface,
                    "-n",
                    "-U",  # write each packet as it comes: a killed run keeps its capture
                    "-Z",
                    "root",  # keep the file writable in the run folder
                    "-w",
                    str(self.path),
                    self.bpf,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while not (self.path.exists() and self.path.stat().st_size >= _PCAP_HEADER):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"tcpdump on {self.router}:{self.interface} did not start; see {self.log_path}"
                )
            time.sleep(0.02)
        return self

    def alive(self) -> bool:
        """True while tcpdump runs."""
        return self.popen is not None and self.popen.poll() is None

    def request_stop(self) -> None:
        """SIGINT by PID now (tcpdump flushes and closes the file); :meth:`stop` waits."""
        if self.popen is not None and self.popen.poll() is None and not self._interrupted:
            os.kill(self.popen.pid, signal.SIGINT)
            self._interrupted = True

    def stop(self) -> int | None:
        """SIGINT by PID (tcpdump flushes and closes the file), SIGKILL after 5 s."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.request_stop()  # once: a second SIGINT could cut tcpdump's flush short
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
        return self.popen.wait(STOP_TIMEOUT)


class _KeyIdProbe(Mapping[int, tuple[int, bytes]]):
    """A key table that holds no key but remembers which Key ID / SA ID was asked for.

    :func:`ospfv2_verify` and :func:`ospfv3_verify` look the packet's key up
    only after its header (and, for OSPFv3, the LLS block and trailer) parsed
    cleanly, so a recorded id is exactly the one the packet carries.
    """

    def __init__(self) -> None:
        self.asked: int | None = None

    def __getitem__(self, key: int) -> tuple[int, bytes]:
        self.asked = key
        raise KeyError(key)

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass(frozen=True)
class _Sighting:
    t: float
    router_id: str
    proto: str
    src: str  # IP source address: the sending interface
    key_id: int | None
    digest: bytes  # of the OSPF packet's octets: the same packet seen by two sniffers


def _key_id(proto: str, payload: bytes, src6: bytes = b"") -> int | None:
    """The Key ID (OSPFv2) or SA ID (OSPFv3) of one OSPF packet; None when it carries none."""
    probe = _KeyIdProbe()
    try:
        if proto == "ospfv2":
            ospfv2_verify(payload, probe)
        else:
            ospfv3_verify(payload, src6, probe)
    except MrkmError:
        pass
    return probe.asked


def _sightings(pcap: Path) -> Iterator[_Sighting]:
    """Every OSPF packet of one capture: (time, sender Router ID, protocol, key id)."""
    import socket

    from scapy.compat import raw
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import PcapReader

    with PcapReader(str(pcap)) as reader:
        for packet in reader:
            if packet.haslayer(IP) and packet[IP].proto == 89:
                ip = packet[IP]
                payload = raw(ip.payload)[: ip.len - ip.ihl * 4]
                proto, src, src6 = "ospfv2", str(ip.src), b""
            elif packet.haslayer(IPv6) and packet[IPv6].nh == 89:
                payload = raw(packet[IPv6].payload)[: packet[IPv6].plen]
                proto, src = "ospfv3", str(packet[IPv6].src)
                src6 = socket.inet_pton(socket.AF_INET6, src)
            else:
                continue
            if len(payload) < 8:
                continue
            router_id = socket.inet_ntoa(payload[4:8])  # RFC 2328 A.3.1, RFC 5340 A.3.1
            yield _Sighting(
                float(packet.time),
                router_id,
                proto,
                src,
                _key_id(proto, payload, src6),
                hashlib.blake2b(payload, digest_size=8).digest(),
            )


def parse_captures(
    pcaps: Iterable[Path], routers: Mapping[str, tuple[str, str]] | None = None
) -> list[dict[str, Any]]:
    """Per router interface and protocol, every change of the key id it sends, from pcaps.

    ``routers`` maps OSPF Router ID to (router name, GM node identity). The
    sender of a packet is its Router ID; its interface is its IP source
    address (a router may use another key on each link, e.g. during a
    switch-over). The result is one ``wire_key`` record per change, sorted
    by time::

        {"t": ..., "event": "wire_key", "router": "r1", "node": "r1.mrkm",
         "router_id": "10.255.0.1", "proto": "ospfv2", "src": "10.100.1.2",
         "key_id": 2, "previous": 1, "first": true, "packets": 12}

    ``key_id`` is None for packets without cryptographic authentication (or
    malformed ones); ``previous`` is what this interface sent before;
    ``first`` says the router had sent with that id on no interface before
    (the "first appearance" of a key); ``packets`` counts the packets sent
    with it until the interface's next change. Captures are merged first, so
    a packet seen at both ends of a link, or by two sniffers, counts once,
    at its earliest time stamp.
    """
    names = routers or {}
    merged = sorted(
        (s for pcap in pcaps for s in _sightings(pcap)),
        key=lambda s: (s.t, s.router_id, s.proto, s.src),
    )
    records: list[dict[str, Any]] = []
    current: dict[tuple[str, str, str], dict[str, Any]] = {}
    seen: dict[tuple[str, str], set[int | None]] = {}
    recent: dict[tuple[str, str, bytes], float] = {}
    for s in merged:
        copy = recent.get((s.router_id, s.proto, s.digest))
        recent[(s.router_id, s.proto, s.digest)] = s.t
        if copy is not None and s.t - copy <= DUPLICATE_WINDOW:
            continue  # the same packet, captured again at the other end of the link
        interface = (s.router_id, s.proto, s.src)
        record = current.get(interface)
        if record is not None and record["key_id"] == s.key_id:
            record["packets"] += 1
            continue
        router, node = names.get(s.router_id, (s.router_id, None))
        used = seen.setdefault((s.router_id, s.proto), set())
        record = {
            "t": round(s.t, 6),
            "event": "wire_key",
            "router": router,
            "node": node,
            "router_id": s.router_id,
            "proto": s.proto,
            "src": s.src,
            "key_id": s.key_id,
            "previous": None if record is None else record["key_id"],
            "first": s.key_id not in used,
            "packets": 1,
        }
        used.add(s.key_id)
        current[interface] = record
        records.append(record)
    return records


# -- the collectors of one run ------------------------------------------------------------------


@dataclass(frozen=True)
class RouterTap:
    """What the collectors need to know about one router.

    ``prefix`` runs a command in the router's namespace; ``interfaces`` are
    sniffed (none: no capture); ``neighbors`` is polled every 100 ms (None:
    no sampler); ``router_id`` attributes captured packets to the router and
    ``node`` to its GM (the GM's identity in the event logs).
    """

    name: str
    node: str
    router_id: str
    prefix: tuple[str, ...] = ()
    interfaces: tuple[str, ...] = ()
    neighbors: NeighborPoll | None = None


@dataclass
class Collectors:
    """Every collector of one run, writing under ``folder`` (the run bundle).

    Typical use by a scenario runner::

        collectors = Collectors(bundle.folder, taps)
        collectors.start()                    # routers.json, host load, samplers, sniffers
        collectors.watch_process("gcks", gcks.pid)
        try:
            ...                               # the scenario
        finally:
            collectors.stop()                 # reverse order; writes wire/wire.jsonl
    """

    folder: Path
    taps: Sequence[RouterTap] = ()
    host: bool = True
    neighbor_period: float = NEIGHBOR_PERIOD
    neighbor_threads: int = NEIGHBOR_THREADS
    _apps: list[_Periodic | WireSniffer] = field(default_factory=list)
    _pcaps: list[Path] = field(default_factory=list)

    @property
    def samples(self) -> Path:
        return self.folder / "samples"

    @property
    def wire(self) -> Path:
        return self.folder / "wire"

    def start(self) -> Collectors:
        """Start the host sampler, then per router its neighbor sampler and sniffers.

        If one fails to start, the ones already started are stopped and the
        error is raised.
        """
        self.samples.mkdir(parents=True, exist_ok=True)
        taps = [
            {"name": t.name, "node": t.node, "router_id": t.router_id, "interfaces": t.interfaces}
            for t in self.taps
        ]
        (self.samples / "routers.json").write_text(json.dumps(taps, indent=1) + "\n")
        try:
            if self.host:
                self._add(HostLoadSampler(self.samples / "host.jsonl"))
            samplers = [
                NeighborSampler(
                    tap.name,
                    tap.neighbors,
                    self.samples / f"neighbors-{tap.name}.jsonl",
                    self.neighbor_period,
                )
                for tap in self.taps
                if tap.neighbors is not None
            ]
            for part in shard(samplers, self.neighbor_threads):
                self._add(NeighborShard(part, self.neighbor_period))
            for tap in self.taps:
                for ifname in tap.interfaces:
                    pcap = self.wire / f"{tap.name}-{ifname}.pcap"
                    self._add(WireSniffer(tap.name, ifname, pcap, tap.prefix))
                    self._pcaps.append(pcap)
        except BaseException:
            self.stop(parse=False)
            raise
        return self

    def watch_process(self, name: str, pid: int) -> ProcessCpuSampler:
        """Sample the CPU time of process ``pid`` (the GCKS: ``name`` "gcks") from now on."""
        sampler = ProcessCpuSampler(name, pid, self.samples / f"cpu-{name}.jsonl")
        self._add(sampler)
        return sampler

    def _add(self, app: _Periodic | WireSniffer) -> None:
        app.start()
        self._apps.append(app)

    def stop(self, parse: bool = True) -> list[dict[str, Any]]:
        """Stop every collector (newest first); parse the captures into ``wire/wire.jsonl``."""
        errors: list[BaseException] = []
        # Everyone winds down at once: on a loaded host with hundreds of collectors,
        # stopping them one after the other took minutes (each waits out a sample).
        for app in self._apps:
            try:
                app.request_stop()
            except OSError as exc:
                errors.append(exc)
        while self._apps:
            try:
                self._apps.pop().stop()
            except (OSError, subprocess.SubprocessError) as exc:
                errors.append(exc)
        records: list[dict[str, Any]] = []
        if parse and self._pcaps:
            ids = {tap.router_id: (tap.name, tap.node) for tap in self.taps}
            records = parse_captures([p for p in self._pcaps if p.exists()], ids)
            with (self.wire / "wire.jsonl").open("w", encoding="utf-8") as out:
                for record in records:
                    write_jsonl(out, record)
        if errors:
            raise errors[0]
        return records
