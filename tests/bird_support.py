"""BIRD 2.0.12 routers in lab namespaces, and the instruments the BIRD sink tests read.

* :class:`Bird`: one ``bird -f`` per router (reference/routers.md §4.1), with
  ``protocol ospf v2 o4`` / ``v3 o6`` on the router's lab links (ptp, hello 1,
  dead 4), ``authentication cryptographic;`` and an ``include`` of the file the
  MRKM ``bird`` sink owns in every interface block. The files start empty: BIRD
  takes an interface with cryptographic authentication and no password, sends
  AuType 2 packets without a digest (OSPFv3: AT-bit, no trailer) and accepts
  nothing, so no adjacency can form before MRKM installs a key. Stopped by the
  PID in its pid file, never by name.
* :class:`BirdFleet`: the daemons of one test; a context manager that stops them.
* :class:`BirdCli`: the control socket protocol birdc speaks, kept open.
* :class:`NeighborSampler`: ``show ospf neighbors o4`` / ``o6`` on every router
  every 100 ms, plus the GMs' key files; adjacency drops are Full -> anything else.
* :class:`Capture`: dumpcap of OSPF on one interface, and :func:`ospf_packets`,
  which checks every captured packet's authentication from the keys the GMs
  logged (their ``file`` sinks), independently of MRKM's and BIRD's code paths.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrkm.crypto.routing import ospfv2_verify, ospfv3_verify
from mrkm.crypto.routing_core import apad
from mrkm.errors import MrkmError
from mrkm.keytable import ALGORITHM_NAMES, KeyRow
from testbed.processes import wait_until
from tests.lab import Lab, Router

INTEG_IDS = {name: integ for integ, name in ALGORITHM_NAMES.items()}
PROTOCOL_NAMES = {"ospfv2": "o4", "ospfv3": "o6"}
OSPF_PROTO = 89


# --------------------------------------------------------------------------- configuration


def bird_config(
    router: Router,
    workdir: Path,
    includes: Mapping[str, Path],
    interfaces: Sequence[str],
    hello: int = 1,
    dead: int = 4,
) -> str:
    """bird.conf for ``router``: OSPF on ``interfaces``, keys from ``includes`` per protocol."""
    lines = [
        f'log "{workdir / "bird.log"}" all;',
        f"router id {router.loopback};",
        "protocol device { scan time 10; }",
        'protocol direct { ipv4; ipv6; interface "lo"; }',
        "protocol kernel k4 { ipv4 { export where source = RTS_OSPF; }; }",
        "protocol kernel k6 { ipv6 { export where source = RTS_OSPF; }; }",
    ]
    for protocol, include in includes.items():
        v, name, channel = ("v2", "o4", "ipv4") if protocol == "ospfv2" else ("v3", "o6", "ipv6")
        lines += [
            f"protocol ospf {v} {name} {{",
            f"  {channel} {{ import all; export none; }};",
            "  area 0 {",
        ]
        if protocol == "ospfv2":
            lines.append('    interface "lo" { stub yes; };')
        for ifname in interfaces:
            lines += [
                f'    interface "{ifname}" {{',
                f"      type ptp; hello {hello}; dead {dead}; retransmit 2;",
                "      authentication cryptographic;",
                f'      include "{include}";',
                "    };",
            ]
        lines += ["  };", "}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the CLI socket


class BirdCli:
    """BIRD's control socket protocol (``NNNN-`` continued, ``NNNN `` last line), kept open."""

    def __init__(self, path: Path, timeout: float = 2.0) -> None:
        self.path, self.timeout = path, timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        self._sock, self._buffer = sock, b""
        self._reply()  # "0001 BIRD 2.0.12 ready."
        return sock

    def _reply(self) -> str:
        assert self._sock is not None
        lines: list[str] = []
        while True:
            while b"\n" not in self._buffer:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise ConnectionError("BIRD closed its control socket")
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
            text = line.decode(errors="replace")
            lines.append(text)
            if len(text) >= 5 and text[:4].isdigit() and text[4] == " ":
                return "\n".join(lines)

    def command(self, text: str) -> str:
        """Run one CLI command; reconnects once if BIRD restarted. Raises OSError."""
        for attempt in (0, 1):
            try:
                if self._sock is None:
                    self._connect()
                assert self._sock is not None
                self._sock.sendall(text.encode() + b"\n")
                return self._reply()
            except OSError:
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def parse_neighbors(reply: str) -> dict[str, str]:
    """``show ospf neighbors`` -> {neighbor router id: state}, e.g. ``"Full/PtP"``."""
    states: dict[str, str] = {}
    for line in reply.splitlines():
        body = line[5:] if line[:4].isdigit() else line
        fields = body.split()
        if len(fields) >= 3 and fields[0].count(".") == 3 and fields[1].isdigit():
            states[fields[0]] = fields[2]
    return states


# --------------------------------------------------------------------------- daemons


@dataclass
class Bird:
    """One BIRD daemon in a router namespace; its files live in ``<router>/bird``."""

    router: Router
    protocols: tuple[str, ...] = ("ospfv2", "ospfv3")
    interfaces: tuple[str, ...] = ()
    hello: int = 1
    dead: int = 4
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def dir(self) -> Path:
        return self.router.workdir / "bird"

    @property
    def conf(self) -> Path:
        return self.dir / "bird.conf"

    @property
    def ctl(self) -> Path:
        return self.dir / "bird.ctl"

    @property
    def pidfile(self) -> Path:
        return self.dir / "bird.pid"

    @property
    def log(self) -> Path:
        return self.dir / "bird.log"

    def include(self, protocol: str) -> Path:
        """The password file MRKM's bird sink writes for ``protocol``."""
        return self.dir / f"mrkm-{protocol}.conf"

    def sink_entry(self, groups: Mapping[str, str], **extra: Any) -> dict[str, Any]:
        """The ``gm.sinks`` entry for this BIRD: {protocol: group name}."""
        entry: dict[str, Any] = {
            "type": "bird",
            "name": f"bird-{self.router.name}",
            "socket": str(self.ctl),
            "pidfile": str(self.pidfile),
        }
        for protocol, group in groups.items():
            entry[protocol] = {"include": str(self.include(protocol)), "group": group}
        entry.update(extra)
        return entry

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for protocol in self.protocols:
            if not self.include(protocol).exists():
                self.include(protocol).write_text("# no keys yet: MRKM writes this file\n")
        interfaces = self.interfaces or tuple(self.router.interfaces)
        includes = {p: self.include(p) for p in self.protocols}
        self.conf.write_text(
            bird_config(self.router, self.dir, includes, interfaces, self.hello, self.dead)
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start ``bird -f`` in the namespace; ready when its control socket answers."""
        self.write_config()
        self.pidfile.unlink(missing_ok=True)
        self.starts += 1
        cmd = ["ip", "netns", "exec", self.router.netns, "bird", "-f"]
        cmd += ["-c", str(self.conf), "-s", str(self.ctl), "-P", str(self.pidfile)]
        with (self.dir / "bird.stderr").open("ab") as err:
            self.popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        cli = BirdCli(self.ctl)

        def ready() -> bool:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(
                    f"bird in {self.router.name} exited: {(self.dir / 'bird.stderr').read_text()}"
                )
            try:
                cli.command("show status")
            except OSError:
                return False
            return self.pid() is not None

        try:
            wait_until(ready, timeout, f"BIRD in {self.router.name} to answer")
        finally:
            cli.close()

    def pid(self) -> int | None:
        """The daemon's PID from its pid file."""
        try:
            return int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to the PID in the pid file (the Popen PID if there is none), then SIGKILL."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            pid = self.pid() or self.popen.pid
            assert pid == self.popen.pid, f"pid file says {pid}, our bird is {self.popen.pid}"
            os.kill(pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.popen.wait(timeout)
        self.popen = None

    def birdc(self, *args: str) -> str:
        """Run ``birdc -s CTL ARGS`` (a fresh client process, as an operator would)."""
        done = subprocess.run(
            ["birdc", "-s", str(self.ctl), *args], capture_output=True, text=True, check=False
        )
        return done.stdout + done.stderr

    def log_lines(self, needle: str) -> list[str]:
        """Lines of BIRD's log that contain ``needle``."""
        try:
            return [line for line in self.log.read_text().splitlines() if needle in line]
        except FileNotFoundError:
            return []


class BirdFleet:
    """The BIRD daemons of one test, stopped (by PID) on exit, newest first."""

    def __init__(self) -> None:
        self.birds: list[Bird] = []

    def start(self, router: Router, **options: Any) -> Bird:
        bird = Bird(router, **options)
        self.birds.append(bird)
        bird.start()
        return bird

    def stop_all(self) -> None:
        for bird in reversed(self.birds):
            with contextlib.suppress(Exception):
                bird.stop()

    def __enter__(self) -> BirdFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def line_topology(net: Lab, count: int) -> list[Router]:
    """``count`` routers r1 .. rN in a line, linked r1-r2, r2-r3, ..."""
    routers = [net.add_router(f"r{i}") for i in range(1, count + 1)]
    for a, b in itertools.pairwise(routers):
        net.link(a.name, b.name)
    return routers


def line_adjacencies(routers: Sequence[Router]) -> dict[str, set[str]]:
    """{router name: the loopbacks (router ids) of its neighbours} for a line."""
    out: dict[str, set[str]] = {r.name: set() for r in routers}
    for a, b in itertools.pairwise(routers):
        out[a.name].add(b.loopback)
        out[b.name].add(a.loopback)
    return out


# --------------------------------------------------------------------------- key files


class KeyCollector:
    """Every row the GMs' ``file`` sinks ever held: {router: {(protocol, key id): row}}.

    Rows are trimmed when a successor arrives; the newest version of each is kept.
    """

    def __init__(self, files: Mapping[str, Path]) -> None:
        self.files = dict(files)
        self.rows: dict[str, dict[tuple[str, int], KeyRow]] = {name: {} for name in files}
        self._lock = threading.Lock()

    def poll(self) -> None:
        for name, path in self.files.items():
            try:
                table = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            with self._lock:
                for record in table["rows"]:
                    row = KeyRow.from_json(record)
                    self.rows[name][(row.protocol, row.key_id)] = row

    def of(self, router: str, protocol: str) -> list[KeyRow]:
        """``router``'s rows of ``protocol`` by send_start."""
        with self._lock:
            rows = [r for r in self.rows[router].values() if r.protocol == protocol]
        return sorted(rows, key=lambda r: r.send_start)

    def keys(self, protocol: str) -> dict[int, tuple[int, bytes, str]]:
        """{key id: (INTEG id, key, algorithm)} over all routers; they must agree."""
        out: dict[int, tuple[int, bytes, str]] = {}
        with self._lock:
            for table in self.rows.values():
                for (proto, key_id), row in table.items():
                    if proto != protocol:
                        continue
                    entry = (INTEG_IDS[row.algorithm], row.key, row.algorithm)
                    assert out.setdefault(key_id, entry) == entry, f"key {key_id} differs"
        return out


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Sample:
    t: float
    router: str
    protocol: str  # "ospfv2" | "ospfv3"
    states: Mapping[str, str]  # neighbour router id -> state; empty if BIRD did not answer


class NeighborSampler:
    """Poll ``show ospf neighbors`` of every BIRD every ``period`` s in a thread.

    ``also`` are called once per period (for example :meth:`KeyCollector.poll`).
    """

    def __init__(
        self,
        birds: Iterable[Bird],
        period: float = 0.1,
        also: Sequence[Callable[[], None]] = (),
        protocols: Sequence[str] = ("ospfv2", "ospfv3"),
    ) -> None:
        self.birds = list(birds)
        self.period, self.also, self.protocols = period, list(also), tuple(protocols)
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="neighbor-sampler", daemon=True)
        self._clis = {b.router.name: BirdCli(b.ctl, timeout=0.5) for b in self.birds}
        self.errors: list[str] = []

    def start(self) -> NeighborSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for cli in self._clis.values():
            cli.close()

    def __enter__(self) -> NeighborSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            for bird in self.birds:
                cli = self._clis[bird.router.name]
                for protocol in self.protocols:
                    if protocol not in bird.protocols:
                        continue
                    try:
                        reply = cli.command(f"show ospf neighbors {PROTOCOL_NAMES[protocol]}")
                        states = parse_neighbors(reply)
                    except OSError as exc:
                        states = {}
                        self.errors.append(f"{time.time():.3f} {bird.router.name}: {exc}")
                    self.samples.append(Sample(time.time(), bird.router.name, protocol, states))
            for fn in self.also:
                fn()
            next_at += self.period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    # -- reading the samples -------------------------------------------------------------

    def full(self, expected: Mapping[str, set[str]], protocol: str) -> bool:
        """True if the latest sample of every router shows all its neighbours Full."""
        latest: dict[str, Sample] = {}
        for s in list(self.samples):
            if s.protocol == protocol:
                latest[s.router] = s
        return all(
            name in latest and all(latest[name].states.get(n, "").startswith("Full") for n in nbrs)
            for name, nbrs in expected.items()
        )

    def first_full(self, router: str, protocol: str) -> float | None:
        """When ``router`` first showed any neighbour Full."""
        return next(
            (
                s.t
                for s in list(self.samples)
                if s.router == router
                and s.protocol == protocol
                and any(v.startswith("Full") for v in s.states.values())
            ),
            None,
        )

    def drops(
        self, expected: Mapping[str, set[str]], protocol: str, since: float, until: float
    ) -> list[str]:
        """Every Full -> not-Full transition of an expected adjacency in [since, until]."""
        out: list[str] = []
        was: dict[tuple[str, str], bool] = {}
        for s in list(self.samples):
            if s.protocol != protocol or s.router not in expected or not since <= s.t <= until:
                continue
            for nbr in expected[s.router]:
                full = s.states.get(nbr, "").startswith("Full")
                if was.get((s.router, nbr)) and not full:
                    out.append(f"{s.t:.3f} {s.router} lost {nbr} ({s.states.get(nbr, 'gone')})")
                was[(s.router, nbr)] = full
        return out

    def count(self, protocol: str, since: float, until: float) -> int:
        return sum(
            1 for s in list(self.samples) if s.protocol == protocol and since <= s.t <= until
        )


# --------------------------------------------------------------------------- capture


class Capture:
    """dumpcap of OSPF (IP protocol 89, v4 and v6) on one interface of a router."""

    def __init__(self, router: Router, ifname: str, path: Path) -> None:
        self.router, self.ifname, self.path = router, ifname, path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Capture:
        """Start dumpcap; ready when the first OSPF packet is in the file."""
        err = self.path.with_suffix(".dumpcap.txt")
        cmd = ["ip", "netns", "exec", self.router.netns, "dumpcap", "-q", "-P", "-i", self.ifname]
        cmd += ["-f", "ip proto 89 or ip6 proto 89", "-w", str(self.path)]
        with err.open("wb") as out:
            self.popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )

        def ready() -> bool:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise RuntimeError(f"dumpcap exited: {err.read_text()}")
            return self.path.exists() and self.path.stat().st_size > 24

        wait_until(ready, timeout, f"dumpcap on {self.ifname} to record OSPF")
        return self

    def stop(self) -> None:
        """SIGTERM by PID (dumpcap flushes and closes its file)."""
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self.popen = None

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- packets


@dataclass(frozen=True)
class OspfPacket:
    """One captured OSPF packet and what its authentication said."""

    t: float
    version: int  # 2 or 3
    router_id: str
    packet_type: int
    #: "ok" (verified with a logged key); "no-key" (the sender had no MRKM key: BIRD's
    #: AuType 2 without digest or AT-bit without trailer, or a key id no GM logged, such
    #: as the FRR sink's lock key); "unauthenticated" (AuType 0/1, or no AT-bit); "bad"
    #: (a logged key id whose digest does not verify)
    status: str
    key_id: int | None
    detail: str = ""
    #: OSPFv3 only: whether RFC 7166's own key preparation verifies it too.
    rfc7166: bool | None = None


def _pcap_records(path: Path) -> Iterator[tuple[float, int, bytes]]:
    """(time, link type, frame) of a classic pcap file (dumpcap -P)."""
    data = path.read_bytes()
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}.get(magic)
    nano = {b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    order = endian or nano
    assert order is not None, f"{path}: not a pcap file"
    scale = 1e-9 if nano else 1e-6
    linktype = struct.unpack_from(order + "I", data, 20)[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(order + "IIII", data, off)
        off += 16
        yield sec + frac * scale, linktype, data[off : off + incl]
        off += incl


def _ip_payload(linktype: int, frame: bytes) -> tuple[int, bytes, bytes] | None:
    """(IP version, source address octets, OSPF payload) or None if not OSPF."""
    if linktype == 1:  # Ethernet
        ethertype = int.from_bytes(frame[12:14], "big")
        packet = frame[14:]
    elif linktype == 113:  # Linux cooked
        ethertype = int.from_bytes(frame[14:16], "big")
        packet = frame[16:]
    else:
        raise AssertionError(f"link type {linktype}")
    if ethertype == 0x0800 and packet[9] == OSPF_PROTO:
        ihl = (packet[0] & 0x0F) * 4
        total = int.from_bytes(packet[2:4], "big")
        return 4, packet[12:16], packet[ihl:total]
    if ethertype == 0x86DD and packet[6] == OSPF_PROTO:
        length = int.from_bytes(packet[4:6], "big")
        return 6, packet[8:24], packet[40 : 40 + length]
    return None


def effective_v2_key(key: bytes, algorithm: str) -> bytes:
    """The key octets an OSPFv2 router digests with: MRKM's Keyed-MD5 text mapping.

    Keyed-MD5 keys go to BIRD and FRR as the unpadded base64url text of the
    first 12 key octets (mrkm/sinks/bird.py, mrkm/sinks/frr_commands.py);
    HMAC-SHA keys as they are. Written from that rule, not imported.
    """
    if algorithm == "md5":
        return base64.urlsafe_b64encode(key[:12]).rstrip(b"=")
    return key


def ospfv3_bird_digest(algorithm: str, covered: bytes, key: bytes, src: bytes) -> bytes:
    """BIRD 2.0.12's OSPFv3 trailer digest: plain HMAC keyed with K || 0x0001.

    RFC 7166 §4.5 hashes Ks = K || Protocol ID when it is longer than L; BIRD
    hands Ks to HMAC as is (like its OSPFv2, routers.md Addendum). Written here
    from the RFC text with hashlib so that it does not share code with MRKM.
    """
    digest = {
        "hmac-sha-1": hashlib.sha1,
        "hmac-sha-256": hashlib.sha256,
        "hmac-sha-384": hashlib.sha384,
        "hmac-sha-512": hashlib.sha512,
    }[algorithm]
    size = digest().digest_size
    return hmac.new(key + b"\x00\x01", covered + src + apad(size - 16), digest).digest()


def _v3_trailer(payload: bytes) -> tuple[int, bool]:
    """(offset of the trailer, AT-bit set?) of an OSPFv3 packet (RFC 7166, RFC 5613)."""
    length = int.from_bytes(payload[2:4], "big")
    ptype = payload[1]
    at = l_bit = True  # LSU/LSR/LSAck have no Options: a trailer follows when present
    if ptype in (1, 2):
        opt_at = 16 + (5 if ptype == 1 else 1)
        options = int.from_bytes(payload[opt_at : opt_at + 3], "big")
        at, l_bit = bool(options & 0x000400), bool(options & 0x000200)
    else:
        l_bit = False
    start = length
    if l_bit:
        start += 4 * int.from_bytes(payload[start + 2 : start + 4], "big")
    return start, at


def ospf_packets(
    pcap: Path,
    v2_keys: Mapping[int, tuple[int, bytes, str]],
    v3_keys: Mapping[int, tuple[int, bytes, str]],
) -> list[OspfPacket]:
    """Classify every OSPF packet of ``pcap`` against the logged keys (see OspfPacket.status)."""
    out: list[OspfPacket] = []
    for t, linktype, frame in _pcap_records(pcap):
        parsed = _ip_payload(linktype, frame)
        if parsed is None:
            continue
        version, src, payload = parsed
        ptype = payload[1]
        rid = ".".join(str(b) for b in payload[4:8])
        if version == 4:
            autype = int.from_bytes(payload[14:16], "big")
            key_id, auth_len = payload[18], payload[19]
            if autype != 2:
                out.append(
                    OspfPacket(t, 2, rid, ptype, "unauthenticated", None, f"AuType {autype}")
                )
                continue
            if auth_len == 0:
                out.append(OspfPacket(t, 2, rid, ptype, "no-key", key_id, "no digest"))
                continue
            if key_id not in v2_keys:  # FRR's lock key before its first MRKM key
                out.append(OspfPacket(t, 2, rid, ptype, "no-key", key_id, "key id not logged"))
                continue
            keys = {
                k: (integ, effective_v2_key(key, alg)) for k, (integ, key, alg) in v2_keys.items()
            }
            try:
                ospfv2_verify(payload, keys, key_preparation="plain")
                out.append(OspfPacket(t, 2, rid, ptype, "ok", key_id))
            except MrkmError as exc:
                out.append(OspfPacket(t, 2, rid, ptype, "bad", key_id, str(exc)))
            continue
        start, at = _v3_trailer(payload)
        if not at:
            out.append(OspfPacket(t, 3, rid, ptype, "unauthenticated", None, "AT-bit clear"))
            continue
        if len(payload) < start + 16:
            out.append(OspfPacket(t, 3, rid, ptype, "no-key", None, "no trailer"))
            continue
        auth_type, auth_len, _res, sa_id = struct.unpack_from("!HHHH", payload, start)
        entry = v3_keys.get(sa_id)
        if auth_type != 1:
            out.append(OspfPacket(t, 3, rid, ptype, "bad", sa_id, f"trailer type {auth_type}"))
            continue
        if entry is None:
            out.append(OspfPacket(t, 3, rid, ptype, "no-key", sa_id, "SA ID not logged"))
            continue
        integ, key, algorithm = entry
        covered, received = payload[: start + 16], payload[start + 16 : start + auth_len]
        good = hmac.compare_digest(ospfv3_bird_digest(algorithm, covered, key, src), received)
        try:
            ospfv3_verify(payload, src, {sa_id: (integ, key)})
            rfc = True
        except MrkmError:
            rfc = False
        out.append(OspfPacket(t, 3, rid, ptype, "ok" if good else "bad", sa_id, "", rfc7166=rfc))
    return out


@dataclass
class SwitchReport:
    """How a router's packets followed its key table's send windows."""

    #: first packet with the new key minus its activation time (send_start), per switch
    skews: list[float] = field(default_factory=list)
    #: last packet with the old key minus the activation time, per switch (< 0: before T)
    old_last: list[float] = field(default_factory=list)
    #: packets whose key id is not the one the table says to send at that moment
    wrong: list[str] = field(default_factory=list)
    switches: int = 0


def switch_report(
    packets: Iterable[OspfPacket],
    rows_by_router: Mapping[str, Sequence[KeyRow]],
    version: int,
    tolerance: float = 0.02,
) -> SwitchReport:
    """Compare each authenticated packet's key id with the sender's table.

    ``rows_by_router`` maps a router id to its rows (one protocol) by
    send_start. A packet more than ``tolerance`` s away from a switch must
    carry the key whose send window holds it (the latest send_start wins).
    Each switch old -> new is bracketed by the last packet with the old key
    and the first with the new one (``old_last``, ``skews``, relative to T).
    """
    report = SwitchReport()
    mine = [p for p in packets if p.version == version and p.status == "ok"]
    for rid, rows in rows_by_router.items():
        sent = sorted((p for p in mine if p.router_id == rid), key=lambda p: p.t)
        for p in sent:
            live = [r for r in rows if r.send_start <= p.t < r.send_end]
            expect = max(live, key=lambda r: r.send_start) if live else None
            if expect is not None and expect.key_id == p.key_id:
                continue
            near = any(abs(p.t - r.send_start) <= tolerance for r in rows)
            if not near:
                want = expect.key_id if expect else None
                report.wrong.append(f"{p.t:.3f} {rid} sent key {p.key_id}, table says {want}")
        for old, new in itertools.pairwise(rows):
            if new.send_start <= old.send_start:
                continue
            first = next((p for p in sent if p.key_id == new.key_id), None)
            last = [p for p in sent if p.key_id == old.key_id]
            if first is not None and last:
                report.switches += 1
                report.skews.append(first.t - new.send_start)
                report.old_last.append(last[-1].t - new.send_start)
    return report
