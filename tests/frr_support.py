"""FRR 8.4.4 routers in the namespace lab (tests/lab.py), for root tests and benchmarks.

One :class:`FrrRouter` per lab router runs zebra, ospfd and ospf6d the way
``reference/routers.md`` §1.1 does: a state directory of its own owned by
user ``frr`` (outside pytest's private tmp dirs, which ``frr`` cannot
enter), ``-d -f <conf> -i <pid> --vty_socket <dir> -P 0 -z <dir>/zserv.api
--log file:<log>``. vtysh talks to the daemons over the unix sockets in that
directory, from any namespace.

The initial configuration runs OSPF on the given interfaces (point-to-point,
hello 1 s, dead 4 s, retransmit 1 s, and the fast SPF/LSA timers of §1.6)
with authentication switched ON but no MRKM key: ``ip ospf authentication
message-digest`` with only a random lock key (ospfd 8.4 falls back to AuType 0
when the key list is empty, measured), and ``ipv6 ospf6 authentication
keychain <name>`` naming a key chain that holds only a random lock key
(without any key ospf6d sends hellos with the AT-bit but no trailer). Nobody
knows the locks, so no adjacency forms; only MRKM's ``frr`` sink creates keys
that work.

Daemons are stopped by the PIDs in their pid files (SIGTERM, then SIGKILL),
never by name. Use :func:`frr_lab` in place of :func:`tests.lab.lab`: it
stops the lab's MRKM processes, then every router started inside it, before
the namespaces are deleted.

:class:`NeighborSampler` polls ``show ip ospf neighbor json`` and ``show ipv6
ospf6 neighbor json`` of every router every 100 ms in a thread per router
and reports every adjacency that left Full.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrkm.sinks.frr_commands import LOCK_CHAIN_INDEX, LOCK_KEY_ID, MD5_KEY_OCTETS
from mrkm.sinks.frr_vty import vty_show
from testbed.router import frr_daemon_argv, json_documents
from tests.lab import Lab, Router, lab

__all__ = [
    "Capture",
    "FrrRouter",
    "NeighborSampler",
    "Sample",
    "drops",
    "frr_lab",
    "full_pairs",
    "start_frr",
    "stop_all",
]

VTYSH = "vtysh"
FULL = "Full"
_STARTED: list[FrrRouter] = []


def _chown_frr(path: Path) -> None:
    entry = pwd.getpwnam("frr")
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _deadline_poll(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def ospfd_config(router: Router, interfaces: Sequence[str], hello: int, dead: int) -> str:
    """ospfd.conf: OSPFv2 on ``interfaces``, MD5 authentication on, only a lock key.

    ospfd 8.4 with ``ip ospf authentication message-digest`` and no key at all
    sends AuType 0 and reaches Full with anyone; a random key nobody else
    knows keeps the interface closed until MRKM's sink installs a real key.
    """
    lock = secrets.token_urlsafe(MD5_KEY_OCTETS)
    lines = [f"hostname {router.name}", "!"]
    for ifname in interfaces:
        lines += [
            f"interface {ifname}",
            " ip ospf area 0.0.0.0",
            " ip ospf network point-to-point",
            f" ip ospf hello-interval {hello}",
            f" ip ospf dead-interval {dead}",
            " ip ospf retransmit-interval 1",
            " ip ospf authentication message-digest",
            f" ip ospf message-digest-key {LOCK_KEY_ID} md5 {lock}",
            "exit",
            "!",
        ]
    lines += [
        "interface lo",
        " ip ospf area 0.0.0.0",
        " ip ospf passive",
        "exit",
        "!",
        "router ospf",
        f" ospf router-id {router.loopback}",
        " timers throttle spf 0 50 1000",
        " timers throttle lsa all 100",
        " timers lsa min-arrival 50",
        "exit",
        "!",
    ]
    return "\n".join(lines) + "\n"


def ospf6d_config(
    router: Router, interfaces: Sequence[str], keychain: str, hello: int, dead: int
) -> str:
    """ospf6d.conf: OSPFv3 on ``interfaces``, trailer through key chain ``keychain``.

    The chain holds only a lock key (index 65536, random): with no valid key
    ospf6d would send packets without a trailer.
    """
    lines = [
        f"hostname {router.name}",
        "!",
        f"key chain {keychain}",
        f" key {LOCK_CHAIN_INDEX}",
        f"  key-string {secrets.token_hex(32)}",
        "  cryptographic-algorithm hmac-sha-256",
        " exit",
        "exit",
        "!",
    ]
    for ifname in interfaces:
        lines += [
            f"interface {ifname}",
            " ipv6 ospf6 area 0.0.0.0",
            " ipv6 ospf6 network point-to-point",
            f" ipv6 ospf6 hello-interval {hello}",
            f" ipv6 ospf6 dead-interval {dead}",
            " ipv6 ospf6 retransmit-interval 1",
            f" ipv6 ospf6 authentication keychain {keychain}",
            "exit",
            "!",
        ]
    lines += [
        "router ospf6",
        f" ospf6 router-id {router.loopback}",
        " timers throttle spf 0 50 1000",
        "exit",
        "!",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class FrrRouter:
    """zebra + ospfd + ospf6d of one lab router; ``vty`` is the ``--vty_socket`` directory."""

    router: Router
    vty: Path
    daemons: tuple[str, ...]
    keychain: str
    stopped: bool = False

    @property
    def name(self) -> str:
        return self.router.name

    # -- daemons --------------------------------------------------------------------------

    def _start_daemon(self, daemon: str) -> None:
        state = self.vty
        cmd = ["ip", "netns", "exec", self.router.netns, *frr_daemon_argv(daemon, state)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: {daemon} did not start: {result.stderr.strip()}")
        ok = _deadline_poll(
            lambda: self.pid(daemon) is not None and (state / f"{daemon}.vty").exists(), 10
        )
        if not ok:
            raise RuntimeError(f"{self.name}: {daemon} wrote no pid file / vty socket in 10 s")

    def pid(self, daemon: str) -> int | None:
        """The daemon's PID from its pid file, if that process is alive and is ``daemon``
        (a stale pid file may name a recycled PID: never signal that)."""
        try:
            pid = int((self.vty / f"{daemon}.pid").read_text().strip())
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError):
            return None
        return pid if comm == daemon and _pid_alive(pid) else None

    def stop_daemon(self, daemon: str, timeout: float = 5.0) -> None:
        """SIGTERM by PID (from the pid file), SIGKILL after ``timeout``; wait until gone."""
        pid = self.pid(daemon)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        if not _deadline_poll(lambda: not _pid_alive(pid), timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _deadline_poll(lambda: not _pid_alive(pid), 5)

    def restart(self, daemon: str) -> None:
        """Stop ``daemon`` and start it again from its configuration file (no MRKM key)."""
        self.stop_daemon(daemon)
        (self.vty / f"{daemon}.vty").unlink(missing_ok=True)
        self._start_daemon(daemon)

    def stop(self) -> None:
        """Stop every daemon by PID (clients first), keep the logs in the router's workdir."""
        if self.stopped:
            return
        self.stopped = True
        try:
            for daemon in reversed(self.daemons):
                self.stop_daemon(daemon)
        finally:
            logs = self.router.workdir / "frr"
            logs.mkdir(parents=True, exist_ok=True)
            for path in self.vty.glob("*.log"):
                with contextlib.suppress(OSError):
                    shutil.copyfile(path, logs / path.name)
            shutil.rmtree(self.vty, ignore_errors=True)
            if self in _STARTED:
                _STARTED.remove(self)

    # -- vtysh ----------------------------------------------------------------------------

    def vtysh(self, *commands: str, check: bool = True) -> str:
        """Run ``vtysh --vty_socket <dir> -c ...``; return its output."""
        args = [VTYSH, "--vty_socket", str(self.vty)]
        for command in commands:
            args += ["-c", command]
        result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=20)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{self.name}: vtysh {commands!r} exited {result.returncode}: "
                f"{(result.stdout + result.stderr).strip()}"
            )
        return result.stdout

    def neighbors(self) -> tuple[dict[str, str] | None, dict[str, str] | None]:
        """OSPFv2 and OSPFv3 neighbor states in one vtysh call: {router id: state}.

        None for a protocol whose daemon did not answer (down, restarting).
        """
        v2 = self._show_json("ospfd", "show ip ospf neighbor json")
        v3 = self._show_json("ospf6d", "show ipv6 ospf6 neighbor json")
        return (
            _v2_states(v2) if isinstance(v2, dict) else None,
            _v3_states(v3) if isinstance(v3, dict) else None,
        )

    def _show_json(self, daemon: str, command: str) -> Any:
        """One daemon's answer over its vty socket (no vtysh process); None if it is down."""
        if daemon not in self.daemons:
            return None
        try:
            docs = json_documents(vty_show(self.vty / f"{daemon}.vty", command))
        except OSError:
            return None
        return docs[0] if docs else None

    def neighbors_v2(self) -> dict[str, str]:
        """``show ip ospf neighbor json`` as {neighbor router id: state}, e.g. "Full"."""
        return self.neighbors()[0] or {}

    def neighbors_v3(self) -> dict[str, str]:
        """``show ipv6 ospf6 neighbor json`` as {neighbor router id: state}."""
        return self.neighbors()[1] or {}


def _short_state(state: str) -> str:
    """ "Full/-" -> "Full", "Full/DR" -> "Full"."""
    return state.split("/", 1)[0]


def _v2_states(doc: Any) -> dict[str, str]:
    states: dict[str, str] = {}
    for rid, entries in (doc.get("neighbors") or {}).items():
        for entry in entries if isinstance(entries, list) else [entries]:
            state = entry.get("nbrState") or entry.get("state") or ""
            states[rid] = _short_state(str(state))
    return states


def _v3_states(doc: Any) -> dict[str, str]:
    states: dict[str, str] = {}
    for entry in doc.get("neighbors") or []:
        states[str(entry.get("neighborId"))] = _short_state(str(entry.get("state", "")))
    return states


def start_frr(
    router: Router,
    ospfv2_interfaces: Sequence[str],
    ospfv3_interfaces: Sequence[str] = (),
    keychain: str = "mrkm",
    hello: int = 1,
    dead: int = 4,
) -> FrrRouter:
    """Start zebra, ospfd (if any OSPFv2 interface) and ospf6d (if any OSPFv3 interface)."""
    state = Path(tempfile.mkdtemp(prefix=f"mrkm-frr-{router.netns}-"))
    os.chmod(state, 0o755)
    _chown_frr(state)
    daemons = ["zebra"]
    configs = {"zebra": f"hostname {router.name}\n"}
    if ospfv2_interfaces:
        daemons.append("ospfd")
        configs["ospfd"] = ospfd_config(router, ospfv2_interfaces, hello, dead)
    if ospfv3_interfaces:
        daemons.append("ospf6d")
        configs["ospf6d"] = ospf6d_config(router, ospfv3_interfaces, keychain, hello, dead)
    for daemon, text in configs.items():
        path = state / f"{daemon}.conf"
        path.write_text(text)
        _chown_frr(path)
    frr = FrrRouter(router, state, tuple(daemons), keychain)
    _STARTED.append(frr)
    try:
        for daemon in daemons:
            frr._start_daemon(daemon)
    except BaseException:
        frr.stop()
        raise
    return frr


def stop_all() -> None:
    """Stop every FRR router this process started and has not stopped (by PID)."""
    for frr in list(reversed(_STARTED)):
        frr.stop()


@contextlib.contextmanager
def frr_lab(workdir: Path, tag: str) -> Iterator[Lab]:
    """:func:`tests.lab.lab` that also stops every FRR router started inside it, first."""
    with lab(workdir, tag) as the_lab:
        try:
            yield the_lab
        finally:
            try:  # GMs first: they would see the daemons go and try to re-key them
                the_lab.procs.stop_all()
            finally:
                stop_all()


# -- neighbor sampling -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One poll of one router: wall time, OSPFv2 and OSPFv3 neighbor states.

    ``answered`` says whether ospfd / ospf6d answered; an unanswered poll has
    empty states and is neither Full nor a drop.
    """

    t: float
    router: str
    v2: dict[str, str]
    v3: dict[str, str]
    answered: tuple[bool, bool] = (True, True)

    def states(self, proto: str) -> dict[str, str] | None:
        """The states of ``proto`` ("v2" or "v3"), None if that daemon did not answer."""
        index = 0 if proto == "v2" else 1
        if not self.answered[index]:
            return None
        return self.v2 if index == 0 else self.v3


@dataclass
class NeighborSampler:
    """Poll every router's neighbors every ``period`` s (one thread per router)."""

    routers: Sequence[FrrRouter]
    period: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> NeighborSampler:
        for frr in self.routers:
            thread = threading.Thread(target=self._run, args=(frr,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, frr: FrrRouter) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                v2, v3 = frr.neighbors()
            except (OSError, subprocess.SubprocessError):
                v2, v3 = None, None
            sample = Sample(
                time.time(), frr.name, v2 or {}, v3 or {}, (v2 is not None, v3 is not None)
            )
            with self._lock:
                self.samples.append(sample)
            next_at += self.period
            delay = next_at - time.monotonic()
            if delay < 0:  # a slow poll: keep the period, skip the missed slots
                next_at = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def stop(self) -> list[Sample]:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        return self.snapshot()

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def __enter__(self) -> NeighborSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def full_pairs(samples: Sequence[Sample], router: str, proto: str) -> set[str]:
    """Neighbors ``router`` saw Full over ``proto`` ("v2" or "v3") in its last answered poll."""
    for sample in reversed(samples):
        states = sample.states(proto) if sample.router == router else None
        if states is not None:
            return {n for n, s in states.items() if s == FULL}
    return set()


def drops(
    samples: Sequence[Sample], expected: dict[str, set[str]], proto: str, since: float = 0.0
) -> list[tuple[float, str, str, str]]:
    """(t, router, neighbor, state) of every sample after ``since`` in which an expected
    neighbor was not Full ("unanswered" when the daemon gave no answer at all)."""
    out: list[tuple[float, str, str, str]] = []
    for sample in samples:
        if sample.t < since:
            continue
        states = sample.states(proto)
        for neighbor in sorted(expected.get(sample.router, set())):
            state = "unanswered" if states is None else states.get(neighbor, "absent")
            if state != FULL:
                out.append((sample.t, sample.router, neighbor, state))
    return out


# -- packet capture ---------------------------------------------------------------------------


class Capture:
    """tcpdump of every OSPF packet (IP protocol 89, v4 and v6) in one router namespace.

    ``-i any`` sees each packet once: what the router sends on every link and
    what its neighbors send to it. Stopped by PID (SIGINT, so the file is
    complete), never by name.
    """

    def __init__(self, router: Router, path: Path) -> None:
        self.router, self.path = router, path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Capture:
        self.popen = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.router.netns,
                "tcpdump",
                "-Z",
                "root",
                "-U",
                "-n",
                "-i",
                "any",
                "-w",
                str(self.path),
                "ip proto 89 or ip6 proto 89",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ok = _deadline_poll(lambda: self.path.exists() and self.path.stat().st_size >= 24, 10)
        if not ok:
            self.stop()
            raise RuntimeError(f"tcpdump in {self.router.netns} did not start")
        return self

    def stop(self) -> None:
        """SIGINT by PID (``ip netns exec`` execs tcpdump: same PID), SIGKILL after 5 s."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGINT)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
