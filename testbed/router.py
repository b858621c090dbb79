"""An FRR 8.4.4 router as a testbed app: configuration from the topology, daemons, state queries.

One :class:`FrrRouter` per topology router runs zebra, ospfd, ospf6d and pimd
inside the router's Mininet host, the way ``reference/routers.md`` §1.1 does:
a state directory of its own owned by user ``frr`` (under the run's runtime
directory, where :mod:`testbed.cleanup` finds the pid files after a crash),
``-d -f <conf> -i <pid> --vty_socket <dir> -P 0 -z <dir>/zserv.api --log
file:<log>``. vtysh talks to the daemons over the unix sockets in that
directory from the root namespace. Daemons are stopped by the PIDs in their
pid files (SIGTERM, then SIGKILL), never by name.

The daemons' configuration comes from :mod:`testbed.frr_config` (the
router's :class:`~testbed.frr_config.RouterPlan`); it is written to
``<workdir>/<router>/*.conf`` and copied into the state directory. Beside
the daemons runs

* **the PIM AH shim** (:class:`PimAhShim`, ``python -m mrkm.sinks.pim_ah``,
  RFC 5796 / RFC 4302 on NFQUEUE; module doc of :mod:`mrkm.sinks.pim_ah`),
  when the network protects PIM: started in the router's namespace before
  any daemon, so no PIM ever leaves unprotected, and stopped by PID after
  them. It fails closed: until the GM's ``pim_ah`` sink hands it the
  group's keys no PIM passes, so PIM neighbors form only after the GM
  registered. Its key and status files live in the state directory (tmpfs,
  removed at stop; :mod:`testbed.cleanup` finds a crashed run's shims
  there), its event log ``pim-ah-<router>.jsonl`` in the run's workdir.

:class:`RouterNode` is what the rest of the testbed uses of a router of any
flavor: start/stop, ``start_daemon``/``stop_daemon`` by name (the scenario
runner's "kill/restart a routing daemon"), PIDs, memory, OSPF and PIM
neighbors, readiness checks, and the GM sinks that key it.
:class:`FrrRouter` is one; :class:`testbed.bird_router.BirdRouter` (BIRD
for OSPF, zebra and pimd of FRR for PIM) the other. A restarted ospfd or
ospf6d reads its file again, so it holds only the lock key; the GM's
``frr`` sink sees the new PID within a second (``router_epoch``) and
installs the group keys again.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mrkm.sinks.frr_commands import MD5_KEY_OCTETS
from mrkm.sinks.frr_vty import vty_show
from testbed.frr_config import (
    KEYCHAIN,
    Port,
    RouterPlan,
    bfdd_config,
    ospf6d_config,
    ospfd_config,
    pimd_config,
    zebra_config,
)
from testbed.processes import REPO

__all__ = [
    "DAEMONS",
    "AdjacencyWatch",
    "FrrRouter",
    "PimAhShim",
    "RouterNode",
    "frr_daemon_argv",
    "pid_alive",
    "poll",
    "terminate",
]

DAEMON_DIR = Path("/usr/lib/frr")
#: Start order; stopped in reverse (clients before zebra).
DAEMONS = ("zebra", "ospfd", "ospf6d", "pimd")
#: With BFD: bfdd starts after zebra and before its client ospfd (pim-local-and-tshark.md §5).
DAEMONS_BFD = ("zebra", "bfdd", "ospfd", "ospf6d", "pimd")
#: The BFD profile of OSPF links: 100 ms x 3, so a silent failure is seen in about 0.3 s.
FULL = "Full"
SHIM = "pim-ah"  # the shim's name among a router's processes (pids(), memory())
SHIM_QUEUE = 7  # NFQUEUE number of the shim (one shim per namespace)
SHIM_START_TIMEOUT = 30.0  # s: a Python start on a loaded 2-core host
#: (protocol, algorithm) pairs the PIM AH shim takes (mrkm.config PIM_ALGORITHMS).
PIM_ALGORITHMS = ("hmac-sha-256", "hmac-sha-1")


# -- small process helpers ------------------------------------------------------------------


def frr_daemon_argv(daemon: str, state: Path) -> list[str]:
    """The command line that starts one FRR daemon on its own files in ``state``
    (``reference/routers.md`` §1.1): daemonized, config/pid/vty socket/zserv/log
    all in ``state``, no TCP vty."""
    return [
        str(DAEMON_DIR / daemon),
        "-d",
        "-f",
        str(state / f"{daemon}.conf"),
        "-i",
        str(state / f"{daemon}.pid"),
        "--vty_socket",
        str(state),
        "-P",
        "0",
        "-z",
        str(state / "zserv.api"),
        "--log",
        f"file:{state / daemon}.log",
        # bfdd's control socket is shared by every instance unless named (§8).
        *(["--bfdctl", str(state / "bfdd.sock")] if daemon == "bfdd" else []),
    ]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def poll(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` s pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def _chown_frr(path: Path) -> None:
    entry = pwd.getpwnam("frr")
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    """Pss of ``pid`` in KiB from smaps_rollup (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_kib(pid: int) -> dict[str, int]:
    """RSS and PSS of one process, KiB."""
    return {"rss": _rss_kib(pid), "pss": _pss_kib(pid)}


def json_documents(text: str) -> list[Any]:
    """Every JSON document in ``text`` (vtysh prints one per ``-c ... json``)."""
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return docs
        try:
            doc, index = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            return docs
        docs.append(doc)


# -- the router app ---------------------------------------------------------------------------


def terminate(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM ``pid``, SIGKILL after ``timeout`` s; return once it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not poll(lambda: not pid_alive(pid), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        poll(lambda: not pid_alive(pid), 5)


@dataclass
class PimAhShim:
    """The PIM AH shim of one router (``python -m mrkm.sinks.pim_ah``), an app with a
    lifecycle: started inside the router's namespace through ``prefix``, ready once
    its status file holds its PID, stopped by that PID (SIGTERM: it removes its
    iptables chain ``MRKM-AH-<router>``; SIGKILL after a deadline).

    ``state`` holds the key file (written by the GM's ``pim_ah`` sink, mode
    0600) and the status file; ``log`` is the shim's JSON-lines event log
    (``pim_ah_started``, ``pim_ah_keys_loaded``, ``pim_ah_send_switch``,
    ``pim_ah_drop``, ``pim_ah_stopped`` with its final counters), its stderr
    beside it.
    """

    router: str
    prefix: Sequence[str]
    state: Path
    log: Path
    node: str = ""
    queue: int = SHIM_QUEUE
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def keys(self) -> Path:
        """The key file the GM's ``pim_ah`` sink writes and the shim reads."""
        return self.state / "pim-ah.keys.json"

    @property
    def status_path(self) -> Path:
        """The status file the shim writes (PID, SPIs, counters; no keys)."""
        return self.state / "pim-ah.status.json"

    @property
    def stderr_path(self) -> Path:
        return self.log.with_suffix(".stderr")

    def command(self) -> list[str]:
        """The shim's command line, without the namespace prefix."""
        return [
            *(sys.executable, "-m", "mrkm.sinks.pim_ah"),
            *("--keys", str(self.keys), "--status", str(self.status_path)),
            *("--log", str(self.log), "--queue", str(self.queue)),
            *("--tag", self.router, "--node", self.node or self.router),
        ]

    def start(self, timeout: float = SHIM_START_TIMEOUT) -> None:
        """Start the shim; return once its status file names its PID (its rules are in).

        RuntimeError with its stderr if it exits first, TimeoutError after
        ``timeout`` s (the process is left for :meth:`stop`).
        """
        if self.pid() is not None:
            raise RuntimeError(f"{self.router}: the PIM AH shim already runs (pid {self.pid()})")
        self.state.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.status_path.unlink(missing_ok=True)
        with self.stderr_path.open("ab") as err:
            self.popen = subprocess.Popen(
                [*self.prefix, *self.command()],
                env=dict(os.environ, PYTHONPATH=str(REPO)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        popen = self.popen
        if not poll(
            lambda: self.status().get("pid") == popen.pid or popen.poll() is not None,
            timeout,
            0.05,
        ):
            raise TimeoutError(
                f"{self.router}: the PIM AH shim wrote no status in {timeout} s "
                f"(stderr: {self.stderr_path})"
            )
        if popen.poll() is not None:
            raise RuntimeError(
                f"{self.router}: the PIM AH shim exited {popen.returncode}: "
                f"{self.stderr_path.read_text(errors='replace').strip()[-2000:]}"
            )

    def pid(self) -> int | None:
        """The shim's PID while it runs (the Popen handle: never a recycled PID)."""
        if self.popen is None or self.popen.poll() is not None:
            return None
        return self.popen.pid

    def status(self) -> dict[str, Any]:
        """The status file as a dict ({} before the shim wrote it)."""
        try:
            data = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def counters(self) -> dict[str, int]:
        """The shim's packet counters (``in_dropped.unprotected``, ``out_protected``...)."""
        counters = self.status().get("counters")
        return {str(k): int(v) for k, v in counters.items()} if isinstance(counters, dict) else {}

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM by PID, SIGKILL after ``timeout`` s; the exit code (None: never started)."""
        popen = self.popen
        if popen is None:
            return None
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                return popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
        return popen.wait(5)


#: (protocol, algorithm) pairs the FRR 8.4.4 sink can install (reference/routers.md §0);
#: PIM through the PIM AH shim.
FRR_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "ospfv2": ("md5",),
    "ospfv3": ("md5", "hmac-sha-256"),
    "pim": PIM_ALGORITHMS,
}


class RouterNode(abc.ABC):
    """What the network builder, the adjacency watch, the collectors and the scenario
    runner use of a router, whichever daemons run it (:class:`FrrRouter`, or
    :class:`testbed.bird_router.BirdRouter`).

    Subclasses run their daemons and answer the neighbor queries; the
    readiness checks (:meth:`missing_ospf`, :meth:`missing_pim`) and the
    process bookkeeping are shared.
    """

    #: "frr" or "bird": the topology's ``flavor`` this class runs.
    flavor: ClassVar[str]
    #: {protocol: algorithms its MRKM sink can install}.
    algorithms: ClassVar[Mapping[str, tuple[str, ...]]]
    plan: RouterPlan
    state: Path
    workdir: Path
    daemons: tuple[str, ...]
    #: The router's PIM AH shim, None when the network leaves PIM unprotected.
    pim_ah: PimAhShim | None

    @property
    def name(self) -> str:
        return self.plan.name

    @classmethod
    def refuses(cls, protocol: str, algorithm: str) -> str | None:
        """Why this flavor cannot run ``protocol`` with ``algorithm`` keys (None: it can)."""
        allowed = cls.algorithms.get(protocol)
        if allowed is None:
            return f"{cls.flavor} routers have no MRKM sink for {protocol}"
        if algorithm not in allowed:
            return f"{cls.flavor} takes {protocol} keys in {', '.join(allowed)} only"
        return None

    # -- lifecycle (subclasses) -------------------------------------------------------------

    @abc.abstractmethod
    def start(self, timeout: float = 10.0) -> None:
        """Write the configuration and start every daemon; return once each answers."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop every daemon by PID; keep the logs in the workdir."""

    @abc.abstractmethod
    def start_daemon(self, daemon: str, timeout: float = 10.0) -> None:
        """Start one stopped daemon again with the configuration it started with."""

    @abc.abstractmethod
    def pid(self, daemon: str) -> int | None:
        """The PID of ``daemon`` while it runs."""

    @abc.abstractmethod
    def sinks(self, groups: Mapping[str, str]) -> list[dict[str, Any]]:
        """The GM's ``sinks`` entries that key this router; ``groups`` is {protocol: group}."""

    @abc.abstractmethod
    def ospf_neighbors(self) -> dict[tuple[str, str], str] | None:
        """OSPFv2 {(interface, neighbor router id): state ("Full", "2-Way", ...)}."""

    @abc.abstractmethod
    def ospf6_neighbors(self) -> dict[tuple[str, str], str] | None:
        """OSPFv3 {(interface, neighbor router id): state}."""

    @abc.abstractmethod
    def pim_neighbors(self) -> dict[str, set[str]] | None:
        """{interface: {PIM neighbor address, ...}}."""

    @abc.abstractmethod
    def mroute(self, source: str, group: str) -> tuple[str, set[str]] | None:
        """pimd's ``(source, group)`` entry: (incoming interface, outgoing interfaces)."""

    @abc.abstractmethod
    def vtysh(self, *commands: str, daemon: str | None = None, check: bool = True) -> str:
        """vtysh to the router's FRR daemons (every flavor runs zebra and pimd)."""

    @abc.abstractmethod
    def show_json(self, command: str, daemon: str) -> Any:
        """The JSON document one FRR daemon (zebra, pimd...) answers to ``show ... json``;
        None when it did not answer."""

    # -- shared -----------------------------------------------------------------------------

    def _check_daemon(self, daemon: str) -> None:
        if daemon not in self.daemons:
            raise ValueError(
                f"{self.name}: no daemon {daemon!r} on this {self.flavor} router "
                f"(it runs {', '.join(self.daemons)})"
            )

    def stop_daemon(self, daemon: str, timeout: float = 5.0) -> None:
        """SIGTERM ``daemon`` by PID, SIGKILL after ``timeout``; return once it is gone."""
        self._check_daemon(daemon)
        pid = self.pid(daemon)
        if pid is not None:
            terminate(pid, timeout)

    def pids(self) -> dict[str, int]:
        """{daemon: PID} of the daemons that run, and the PIM AH shim as ``pim-ah``."""
        out = {d: pid for d in self.daemons if (pid := self.pid(d)) is not None}
        if self.pim_ah is not None and (pid := self.pim_ah.pid()) is not None:
            out[SHIM] = pid
        return out

    def pim_ah_sinks(self, groups: Mapping[str, str]) -> list[dict[str, Any]]:
        """The ``pim_ah`` sink for the ``pim`` group of ``groups`` ({protocol: group}),
        if this router runs a shim; [] otherwise."""
        if self.pim_ah is None or "pim" not in groups:
            return []
        return [
            {
                "type": "pim_ah",
                "name": "pim_ah",
                "keys": str(self.pim_ah.keys),
                "status": str(self.pim_ah.status_path),
                "group": groups["pim"],
            }
        ]

    def memory(self) -> dict[str, dict[str, int]]:
        """{daemon: {"rss": KiB, "pss": KiB}} of the running daemons (and the shim)."""
        return {daemon: memory_kib(pid) for daemon, pid in self.pids().items()}

    def adjacencies(self) -> list[tuple[Port, str, str, str]]:
        """(port, neighbor, its router id, its address) of every expected adjacency."""
        return [(port, *peer) for port in self.plan.links for peer in port.peers()]

    @staticmethod
    def adjacency_ok(port: Port, state: str) -> bool:
        """Full; on a LAN of four or more routers two DROthers stay in 2-Way (RFC 2328 §10.4)."""
        return state == FULL or (port.kind == "lan" and len(port.members) >= 3 and state == "2-Way")

    def missing_ospf(self) -> list[str]:
        """Every adjacency that is not Full in OSPFv2 or OSPFv3, in words ([] = all Full)."""
        missing = []
        for proto, states in (
            ("OSPFv2", self.ospf_neighbors()),
            ("OSPFv3", self.ospf6_neighbors()),
        ):
            for port, peer, peer_id, _ in self.adjacencies():
                if states is None:
                    state = "no answer from the daemon"
                else:
                    state = states.get((port.name, peer_id), "no neighbor")
                if not self.adjacency_ok(port, state):
                    missing.append(
                        f"{self.name} {port.name} -> {peer} ({peer_id}): {proto} {state}"
                    )
        return missing

    def igmp_groups(self) -> dict[str, set[str]] | None:
        """pimd's IGMP memberships, ``show ip igmp groups json``: {interface: {group, ...}}."""
        doc = self.show_json("show ip igmp groups json", "pimd")
        if not isinstance(doc, dict):
            return None
        return {
            ifname: {str(g.get("group")) for g in entry.get("groups") or []}
            for ifname, entry in doc.items()
            if isinstance(entry, dict)
        }

    def pim_rpf(self, group: str, source: str = "*") -> tuple[str, str] | None:
        """pimd's RPF toward the RP (``source`` "*") or a source for ``group``:
        (interface, RPF neighbor address; "0.0.0.0" at the RP), from ``show ip pim
        rpf json``; None when pimd has no such entry or does not answer."""
        doc = self.show_json("show ip pim rpf json", "pimd")
        entry = doc.get(group, {}).get(source) if isinstance(doc, dict) else None
        if not isinstance(entry, dict):
            return None
        return str(entry.get("rpfInterface", "")), str(entry.get("rpfAddress", ""))

    def missing_igmp(self, group: str) -> list[str]:
        """The GM interfaces where pimd does not know the GM's membership of ``group``
        (no rekey reaches that GM until it does), in words ([] = all known)."""
        groups = self.igmp_groups()
        if groups is None:
            return [f"{self.name}: pimd did not answer"]
        return [
            f"{self.name} {port.name}: no IGMP membership of {group}"
            for port in self.plan.of_kind("gm")
            if group not in groups.get(port.name, set())
        ]

    def missing_pim(self) -> list[str]:
        """Every link or LAN neighbor without a PIM adjacency, in words ([] = all up)."""
        neighbors = self.pim_neighbors()
        if neighbors is None:
            return [f"{self.name}: pimd did not answer"]
        return [
            f"{self.name} {port.name} -> {peer} ({address}): no PIM neighbor"
            for port, peer, _, address in self.adjacencies()
            if address not in neighbors.get(port.name, set())
        ]


@dataclass
class FrrRouter(RouterNode):
    """zebra + ospfd + ospf6d + pimd of one router.

    ``state`` is the daemons' directory (pid files, vty sockets, logs; owned
    by ``frr``), ``workdir`` where the configuration and, after :meth:`stop`,
    the logs are kept. ``prefix`` runs a command inside the router's host
    (``mnexec -da <pid>`` for a Mininet host).
    """

    flavor: ClassVar[str] = "frr"
    algorithms: ClassVar[Mapping[str, tuple[str, ...]]] = FRR_ALGORITHMS

    plan: RouterPlan
    state: Path
    workdir: Path
    prefix: Sequence[str]
    daemons: tuple[str, ...] = DAEMONS
    keychain: str = KEYCHAIN
    started: list[str] = field(default_factory=list)
    pim_ah: PimAhShim | None = None
    #: In-band registration: a provisioned secret every router shares, used as the
    #: lock key so OSPF forms before MRKM; the group keys replace it (hex, 64 digits).
    bootstrap: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def lock_keys(self) -> tuple[str, str]:
        """(OSPFv2 MD5 key string, OSPFv3 key string): the bootstrap, else fresh random."""
        if self.bootstrap is not None:
            return self.bootstrap[:MD5_KEY_OCTETS], self.bootstrap
        return secrets.token_urlsafe(MD5_KEY_OCTETS), secrets.token_hex(32)

    def configs(self) -> dict[str, str]:
        """The configuration text of every daemon, with the lock keys of :meth:`lock_keys`."""
        v2_lock, v3_lock = self.lock_keys()
        makers: dict[str, Callable[[], str]] = {
            "zebra": lambda: zebra_config(self.plan),
            "bfdd": lambda: bfdd_config(self.plan),
            "ospfd": lambda: ospfd_config(self.plan, v2_lock),
            "ospf6d": lambda: ospf6d_config(self.plan, v3_lock, self.keychain),
            "pimd": lambda: pimd_config(self.plan),
        }
        return {daemon: makers[daemon]() for daemon in self.daemons}

    def start(self, timeout: float = 10.0) -> None:
        """Write the configuration and start every daemon, each polled until it answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o755)
        _chown_frr(self.state)
        for daemon, text in self.configs().items():
            (self.workdir / f"{daemon}.conf").write_text(text)
            path = self.state / f"{daemon}.conf"
            path.write_text(text)
            _chown_frr(path)
        if self.pim_ah is not None and "pimd" in self.daemons:
            # Before any daemon: pimd's first hello already goes through the shim.
            self.pim_ah.start(max(timeout, SHIM_START_TIMEOUT))
        for daemon in self.daemons:
            self._start_daemon(daemon, timeout)

    def start_daemon(self, daemon: str, timeout: float = 10.0) -> None:
        """Start a stopped daemon again from the configuration file it first started with
        (the lock keys: MRKM's GM sees the new PID and installs its keys again).

        Starting ``zebra`` restarts its running clients too, as FRR's watchfrr
        does: zebra removes its routes from the kernel when it stops, and a
        client that merely reconnects does not send them again (measured:
        ospfd's routes stayed gone). ValueError for a daemon this router does
        not run, RuntimeError if it still runs or the router was stopped.
        """
        self._check_daemon(daemon)
        if not (self.state / f"{daemon}.conf").exists():
            raise RuntimeError(f"{self.name}: {daemon} has no configuration (router stopped?)")
        if self.pid(daemon) is not None:
            raise RuntimeError(f"{self.name}: {daemon} already runs (pid {self.pid(daemon)})")
        clients = []
        if daemon == "zebra":
            clients = [d for d in self.daemons if d != "zebra" and self.pid(d) is not None]
            for client in reversed(clients):
                self.stop_daemon(client)
        for name in (daemon, *clients):
            self._vty(name).unlink(missing_ok=True)  # a SIGKILLed daemon leaves its socket
            self._start_daemon(name, timeout)

    def _start_daemon(self, daemon: str, timeout: float) -> None:
        state = self.state
        cmd = [*self.prefix, *frr_daemon_argv(daemon, state)]
        if daemon not in self.started:
            self.started.append(daemon)  # before it runs: stop() must look for its pid file
        result = subprocess.run(
            cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: {daemon} did not start: {result.stderr.strip()}")
        if not poll(lambda: self.pid(daemon) is not None and self._vty(daemon).exists(), timeout):
            raise TimeoutError(
                f"{self.name}: {daemon} wrote no pid file and vty socket in {timeout} s "
                f"(log: {state / daemon}.log)"
            )

    def _vty(self, daemon: str) -> Path:
        return self.state / f"{daemon}.vty"

    def pid(self, daemon: str) -> int | None:
        """The daemon's PID from its pid file, if that process is alive and is ``daemon``
        (a stale pid file may name a recycled PID: never signal that)."""
        try:
            pid = int((self.state / f"{daemon}.pid").read_text().split()[0])
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            return None
        return pid if comm == daemon and pid_alive(pid) else None

    def stop(self) -> None:
        """Stop the daemons by PID (newest first), then the PIM AH shim; keep their logs
        in the workdir."""
        try:
            for daemon in reversed(self.started):
                self.stop_daemon(daemon)
        finally:
            if self.pim_ah is not None:
                self.pim_ah.stop()
            self.started.clear()
            self.workdir.mkdir(parents=True, exist_ok=True)
            for path in self.state.glob("*.log"):
                with contextlib.suppress(OSError):
                    shutil.copyfile(path, self.workdir / path.name)
            shutil.rmtree(self.state, ignore_errors=True)

    def sinks(self, groups: Mapping[str, str]) -> list[dict[str, Any]]:
        """One ``frr`` sink (vty transport) on every OSPF link for the groups of ``groups``, and
        the ``pim_ah`` sink of its shim for a ``pim`` group."""
        interfaces = [p.name for p in self.plan.links]
        # The daemons' vty sockets, not vtysh: 100 routers installing at once started 100
        # vtysh processes, and installs trailed the accept by a second at 50 routers.
        sink: dict[str, Any] = {
            "type": "frr",
            "name": "frr",
            "vty_socket": str(self.state),
            "transport": "vty",
        }
        if "ospfv2" in groups:
            sink["ospfv2"] = {"interfaces": interfaces, "group": groups["ospfv2"]}
        if "ospfv3" in groups:
            sink["ospfv3"] = {
                "interfaces": interfaces,
                "keychain": self.keychain,
                "group": groups["ospfv3"],
            }
        return [sink, *self.pim_ah_sinks(groups)]

    # -- vtysh ----------------------------------------------------------------------------

    def vtysh(self, *commands: str, daemon: str | None = None, check: bool = True) -> str:
        """``vtysh --vty_socket <state> [-d daemon] -c ...``; its output."""
        args = ["vtysh", "--vty_socket", str(self.state)]
        if daemon is not None:
            args += ["-d", daemon]
        for command in commands:
            args += ["-c", command]
        result = subprocess.run(
            args, capture_output=True, text=True, check=False, timeout=20, stdin=subprocess.DEVNULL
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{self.name}: vtysh {commands!r} exited {result.returncode}: "
                f"{(result.stdout + result.stderr).strip()}"
            )
        return result.stdout

    def show_json(self, command: str, daemon: str) -> Any:
        """One ``show ... json`` of one daemon, asked over its vty socket (no vtysh
        process: :mod:`testbed.frr_vty`); None when it did not answer."""
        try:
            out = vty_show(self._vty(daemon), command)
        except OSError:
            return None
        docs = json_documents(out)
        return docs[0] if docs else None

    def ospf_neighbors(self) -> dict[tuple[str, str], str] | None:
        """``show ip ospf neighbor json``: {(interface, neighbor router id): state}.

        States are shortened to the adjacency ("Full/DR" -> "Full"); None when
        ospfd did not answer.
        """
        doc = self.show_json("show ip ospf neighbor json", "ospfd")
        if not isinstance(doc, dict):
            return None
        states: dict[tuple[str, str], str] = {}
        for rid, entries in (doc.get("neighbors") or {}).items():
            for entry in entries if isinstance(entries, list) else [entries]:
                ifname = str(entry.get("ifaceName", "")).split(":", 1)[0]
                state = str(entry.get("nbrState") or entry.get("state") or "")
                states[(ifname, rid)] = state.split("/", 1)[0]
        return states

    def ospf6_neighbors(self) -> dict[tuple[str, str], str] | None:
        """``show ipv6 ospf6 neighbor json``: {(interface, neighbor router id): state}."""
        doc = self.show_json("show ipv6 ospf6 neighbor json", "ospf6d")
        if not isinstance(doc, dict):
            return None
        return {
            (str(e.get("interfaceName")), str(e.get("neighborId"))): str(e.get("state", "")).split(
                "/", 1
            )[0]
            for e in doc.get("neighbors") or []
        }

    def pim_neighbors(self) -> dict[str, set[str]] | None:
        """``show ip pim neighbor json``: {interface: {neighbor address, ...}}."""
        doc = self.show_json("show ip pim neighbor json", "pimd")
        if not isinstance(doc, dict):
            return None
        return {
            ifname: set(neighbors)
            for ifname, neighbors in doc.items()
            if isinstance(neighbors, dict)
        }

    def mroute(self, source: str, group: str) -> tuple[str, set[str]] | None:
        """pimd's ``(source, group)`` entry: (incoming interface, outgoing interfaces)."""
        doc = self.show_json("show ip mroute json", "pimd")
        entry = doc.get(group, {}).get(source) if isinstance(doc, dict) else None
        if not isinstance(entry, dict):
            return None
        return str(entry.get("iif", "")), set(entry.get("oil") or {})


# -- adjacency watching -----------------------------------------------------------------------


@dataclass(frozen=True)
class Flap:
    """A poll in which an adjacency that was Full (OSPF) or Up (PIM) was not: when,
    where, what state."""

    t: float
    router: str
    interface: str
    peer: str
    protocol: str  # "OSPFv2" | "OSPFv3" | "PIM"
    state: str


def _pim_states(router: RouterNode) -> dict[tuple[str, str], str] | None:
    """PIM neighbors as {(interface, neighbor router id): "Up"} (None: pimd did not answer)."""
    neighbors = router.pim_neighbors()
    if neighbors is None:
        return None
    return {
        (port.name, peer_id): "Up"
        for port, _, peer_id, address in router.adjacencies()
        if address in neighbors.get(port.name, set())
    }


@dataclass
class AdjacencyWatch:
    """Poll every router's OSPF and PIM neighbors every ``period`` s (one thread per router).

    Every adjacency counts from the first poll in which it is Full (a PIM
    neighbor: listed, "Up"); any later poll that shows it otherwise is a
    :class:`Flap` (ARCHITECTURE.md "adjacency flaps"). A poll the daemon did
    not answer is skipped. ``protocols`` picks among OSPFv2, OSPFv3 and PIM.
    """

    routers: Sequence[RouterNode]
    period: float = 0.2
    protocols: tuple[str, ...] = ("OSPFv2", "OSPFv3", "PIM")
    flaps: list[Flap] = field(default_factory=list)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> AdjacencyWatch:
        for router in self.routers:
            thread = threading.Thread(target=self._run, args=(router,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, router: RouterNode) -> None:
        seen_full: set[tuple[str, str, str]] = set()
        queries: dict[str, Callable[[], Mapping[tuple[str, str], str] | None]] = {
            "OSPFv2": router.ospf_neighbors,
            "OSPFv3": router.ospf6_neighbors,
            "PIM": lambda: _pim_states(router),
        }
        while not self._stop.is_set():
            for proto in self.protocols:
                states = queries[proto]()
                if states is None:
                    continue
                now = time.time()
                for port, peer, peer_id, _ in router.adjacencies():
                    state = states.get((port.name, peer_id), "absent")
                    key = (proto, port.name, peer_id)
                    up = state == "Up" if proto == "PIM" else router.adjacency_ok(port, state)
                    if up:
                        seen_full.add(key)
                    elif key in seen_full:
                        with self._lock:
                            self.flaps.append(Flap(now, router.name, port.name, peer, proto, state))
            with self._lock:
                self.polls += 1
            self._stop.wait(self.period)

    def stop(self) -> list[Flap]:
        """Stop polling; the flaps seen."""
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        with self._lock:
            return list(self.flaps)

    def __enter__(self) -> AdjacencyWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
