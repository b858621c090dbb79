"""The ``frr`` sink: OSPFv2 Keyed-MD5 and the OSPFv3 trailer key chain of FRR 8.4.

Every install is one call holding all commands for the state the key table
calls for at ``now``, computed by :mod:`mrkm.sinks.frr_commands` as the
difference to what the router holds. When nothing differs, no call is made.
The call goes one of two ways (``transport``):

* ``vtysh`` (default): one ``vtysh --vty_socket DIR -c 'configure terminal'
  -c ...`` process, which forwards each line to the daemons that know it;
* ``vty``: one session per daemon on its vty socket
  (:mod:`mrkm.sinks.frr_vty`: ``enable``, ``configure terminal``, the
  daemon's part of the batch, ``end``), the way vtysh itself talks to them.
  No process starts and no key appears on a command line; on a router
  running many GMs' worth of installs at once (the testbed) it keeps the
  install within milliseconds of the accept.

Rollover semantics:

* **OSPFv2** (ospfd, Keyed-MD5 only): FRR 8.4 sends and accepts only the
  last-configured ``message-digest-key``, so it cannot hold two keys for a
  hitless overlap. The sink makes the key whose send window holds *now* the
  last (and only) key, and :meth:`FrrSink.next_change` asks the runtime to
  call again at the next ``send_start``: every router switches at the
  activation time T (received + ATD), not on receipt. Switch-over skew is
  the spread of the GMs' T plus the call latency, so the group's ATD must
  exceed the key convergence time. Without a key to send, the interface
  gets a random lock key: ospfd with an empty key list falls back to
  AuType 0 and would talk to anyone.
* **OSPFv3** (ospf6d, key chain ``keychain``): every row of the table is a
  ``key N`` (N = SA ID) with ``send-lifetime`` and ``accept-lifetime`` from
  the row's absolute times (local time, whole seconds, the send start rounded
  up), so FRR switches by itself at the first second ≥ T and keeps
  accepting the old key until its DTD ends: hitless. Keys FRR no longer uses
  are deleted with the next change. A lock key at index 65536 (random,
  always valid, above every SA ID) keeps a trailer on every packet when no
  MRKM key is valid.

Key strings: see :mod:`mrkm.sinks.frr_commands` (base64url of the first 12
octets for Keyed-MD5, hex for HMAC).

The first install, and the first after a daemon restart
(:meth:`FrrSink.router_epoch`: PID and start time of ospfd / ospf6d from the
pid files in ``vty_socket``), reads ``show running-config`` first to learn
which keys exist (two calls). Caveat of the ``vtysh`` transport: vtysh
gets the commands, keys included, on its command line for the ~25 ms it
runs; mount /proc with ``hidepid=2`` where other local users must not see
them, or use ``transport: vty``.

Configuration::

    sinks:
      - type: frr
        vty_socket: /var/run/frr      # directory of the daemons' .vty sockets and .pid files
        ospfv2:
          interfaces: [eth0, eth1]
          group: ospfv2-area0         # optional: only this group's keys
        ospfv3:
          interfaces: [eth0]
          keychain: mrkm              # default mrkm
          group: ospfv3-area0
        transport: vty                # optional: vtysh (default) or vty (the daemons' sockets)
        vtysh: /usr/bin/vtysh         # optional, for transport vtysh
        timeout: 10                   # optional, s per vtysh call or vty answer
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrkm.config import ConfigError
from mrkm.keytable import KeyRow
from mrkm.sinks.base import InstallResult, Sink, SinkError, register_sink
from mrkm.sinks.frr_commands import (
    CHAIN_ALGORITHMS,
    LOCK_CHAIN_INDEX,
    MD5_KEY_OCTETS,
    YEAR_MAX,
    KnownState,
    after_batch,
    daemon_batches,
    desired_state,
    parse_running_config,
    vtysh_batch,
)
from mrkm.sinks.frr_vty import VtySession

__all__ = ["FrrProtocol", "FrrSink", "build_frr_sink"]

#: A daemon younger than this may still be reading its configuration file; wait for it.
SETTLE = 1.0
#: How the sink reaches the daemons: a vtysh process per change, or their vty sockets.
TRANSPORTS = ("vtysh", "vty")
_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,63}$")
_IFNAME = re.compile(r"^[^\s/]{1,15}$")


@dataclass(frozen=True)
class FrrProtocol:
    """One protocol section: the interfaces to key, and optionally the only group to take."""

    interfaces: tuple[str, ...]
    group: str | None = None
    keychain: str = "mrkm"


def _proc_start(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), None if gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


class FrrSink(Sink):
    """Install key table rows into one FRR 8.4 instance: one call (vtysh, or a session
    per daemon on its vty socket) per change."""

    kind = "frr"

    def __init__(
        self,
        name: str,
        vty_socket: Path,
        ospfv2: FrrProtocol | None = None,
        ospfv3: FrrProtocol | None = None,
        vtysh: str = "vtysh",
        timeout: float = 10.0,
        rng: Callable[[int], bytes] = os.urandom,
        transport: str = "vtysh",
    ) -> None:
        super().__init__(name)
        if transport not in TRANSPORTS:
            raise ValueError(f"transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
        self.vty_socket, self.ospfv2, self.ospfv3 = vty_socket, ospfv2, ospfv3
        self.vtysh, self.timeout, self.transport = vtysh, timeout, transport
        # The lock key: a secret nobody else holds, sent while no MRKM key may be.
        self.lock = base64.urlsafe_b64encode(rng(MD5_KEY_OCTETS)).rstrip(b"=").decode()
        self.chain_lock = rng(32).hex()
        self.daemons = tuple(
            d for d, section in (("ospfd", ospfv2), ("ospf6d", ospfv3)) if section is not None
        )
        self._known: KnownState | None = None
        self._epoch: str | None = None

    # -- Sink -----------------------------------------------------------------------------

    def check(self, row: KeyRow) -> None:
        """Refuse, naming why, a key FRR 8.4.4 cannot use exactly as given."""
        what = f"{self.name}: {row.protocol} key {row.key_id} ({row.algorithm})"
        if row.protocol == "ospfv2":
            if row.algorithm != "md5":
                raise SinkError(
                    f"{what}: FRR 8.4 ospfd has Keyed-MD5 only; "
                    "OSPFv2 HMAC-SHA (RFC 5709) arrived in FRR 9.1"
                )
            if len(row.key) > 16:
                raise SinkError(
                    f"{what}: a Keyed-MD5 key of {len(row.key)} octets; FRR silently cuts "
                    "keys to 16, so the router would not use the key it was given"
                )
            if not row.key:
                raise SinkError(f"{what}: empty key")
            if not 1 <= row.key_id <= 255:
                raise SinkError(f"{what}: FRR message-digest-key ids are 1 to 255")
        elif row.protocol == "ospfv3":
            if row.algorithm not in CHAIN_ALGORITHMS:
                raise SinkError(
                    f"{what}: this FRR 8.4.4 ospf6d (built without OpenSSL) offers "
                    "md5 and hmac-sha-256 only; hmac-sha-1/-384/-512 need --with-crypto=openssl"
                )
            if not row.key:
                raise SinkError(f"{what}: empty key")
            if not 0 <= row.key_id <= 0xFFFF:
                raise SinkError(f"{what}: the trailer's SA ID has 16 bits")
            if time.localtime(max(row.send_start, row.accept_start)).tm_year > YEAR_MAX:
                raise SinkError(f"{what}: FRR key lifetimes cannot start after {YEAR_MAX}")
        else:
            raise SinkError(f"{what}: the frr sink installs OSPFv2 and OSPFv3 keys only")

    def relevant(self, rows: Sequence[KeyRow]) -> list[KeyRow]:
        """Rows of a configured protocol (and of its group, when one is named)."""
        sections = {"ospfv2": self.ospfv2, "ospfv3": self.ospfv3}
        out = []
        for row in rows:
            section = sections.get(row.protocol)
            if section is not None and section.group in (None, row.group):
                out.append(row)
        return out

    def install(self, rows: Sequence[KeyRow], now: float) -> InstallResult:
        """Make FRR hold the keys for ``now``: one call, none when nothing differs."""
        calls, seconds = 0, 0.0
        epoch = self.router_epoch()
        try:
            if self._known is None or epoch != self._epoch:
                self._settle()
                text, seconds = self._read_config()
                calls += 1
                keychain = self.ospfv3.keychain if self.ospfv3 else None
                v2_ifs = self.ospfv2.interfaces if self.ospfv2 else ()
                self._known = parse_running_config(text, v2_ifs, keychain)
                self._epoch = epoch
            desired = desired_state(
                rows,
                now,
                ospfv2=self.ospfv2 is not None,
                ospfv3=self.ospfv3 is not None,
                lock=self.lock,
                chain_lock=self.chain_lock,
            )
            per_daemon = daemon_batches(
                self._known,
                desired,
                now,
                ospfv2_interfaces=self.ospfv2.interfaces if self.ospfv2 else (),
                ospfv3_interfaces=self.ospfv3.interfaces if self.ospfv3 else (),
                keychain=self.ospfv3.keychain if self.ospfv3 else "",
            )
            commands = [line for lines in per_daemon.values() for line in lines]
            if commands:
                secrets = [k.string for k in desired.chain.values()]
                secrets += [desired.md5[1]] if desired.md5 else []
                seconds += self._apply(per_daemon, secrets)
                calls += 1
                self._known = after_batch(
                    self._known,
                    desired,
                    commands,
                    ospfv2_interfaces=self.ospfv2.interfaces if self.ospfv2 else (),
                )
        except SinkError:
            self._known = None  # what the router holds is unknown now: read it next time
            raise
        sent = desired.md5_row.key_id if desired.md5_row is not None else None
        chain = sorted(i for i in desired.chain if i != LOCK_CHAIN_INDEX)
        key_ids = ((sent,) if sent is not None else ()) + tuple(chain)
        parts = [f"calls={calls}"]
        if self.ospfv2 is not None:
            parts.append(f"ospfv2 send={sent if sent is not None else 'lock'}")
        if self.ospfv3 is not None:
            parts.append(f"ospfv3 chain={','.join(map(str, chain)) or '-'}")
        if not commands:
            parts.append("unchanged")
        keys = ((f"ospfv2:{sent}",) if sent is not None else ()) + tuple(
            f"ospfv3:{i}" for i in chain
        )
        return InstallResult(self.name, True, seconds, calls, key_ids, "; ".join(parts), keys)

    def next_change(self, rows: Sequence[KeyRow], now: float) -> float | None:
        """The next OSPFv2 send_start / send_end after ``now`` (key chains switch themselves)."""
        if self.ospfv2 is None:
            return None
        times = []
        for row in self.relevant(rows):
            if row.protocol != "ospfv2":
                continue
            try:
                self.check(row)
            except SinkError:
                continue
            times += [t for t in (row.send_start, row.send_end) if t > now]
        return min(times, default=None)

    def router_epoch(self) -> str:
        """``ospfd:<pid>:<start ticks>`` (and ospf6d): changes when a daemon restarts."""
        parts = []
        for daemon in self.daemons:
            pid = self._pid(daemon)
            start = _proc_start(pid) if pid is not None else None
            parts.append(f"{daemon}:{pid}:{start}" if start is not None else f"{daemon}:down")
        return ",".join(parts)

    # -- helpers --------------------------------------------------------------------------

    def _pid(self, daemon: str) -> int | None:
        try:
            return int((self.vty_socket / f"{daemon}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _settle(self) -> None:
        """Wait until every daemon is SETTLE s old: a fresh one may still read its config
        file, whose keys would land after (and so in front of) ours."""
        ticks = os.sysconf("SC_CLK_TCK")
        boot = _boot_time()
        for daemon in self.daemons:
            pid = self._pid(daemon)
            start = _proc_start(pid) if pid is not None else None
            if start is None:
                continue
            age = time.time() - (boot + int(start) / ticks)
            if 0 <= age < SETTLE:
                time.sleep(SETTLE - age)

    def _read_config(self) -> tuple[str, float]:
        """``show running-config`` of every daemon we key; (text, seconds)."""
        if self.transport == "vtysh":
            return self._run(["show running-config"], ())
        start = time.perf_counter()
        texts = [self._vty(d, ["enable", "show running-config"], ()) for d in self.daemons]
        return "".join(texts), time.perf_counter() - start

    def _apply(self, parts: Mapping[str, Sequence[str]], secrets: Sequence[str]) -> float:
        """Send each daemon its commands (one vtysh call for all of them, or one vty
        session per daemon); the seconds it took."""
        if self.transport == "vtysh":
            return self._run(vtysh_batch(parts), secrets)[1]
        start = time.perf_counter()
        for daemon, lines in parts.items():
            self._vty(daemon, ["enable", *lines, "end"], secrets)
        return time.perf_counter() - start

    def _vty(self, daemon: str, commands: Sequence[str], secrets: Sequence[str]) -> str:
        """Run ``commands`` in one session with ``daemon``; the last one's output.
        SinkError names the daemon and the failure, keys redacted."""
        path = self.vty_socket / f"{daemon}.vty"
        try:
            with VtySession(path, self.timeout) as session:
                out = ""
                for command in commands:
                    out = session.run(command)
                return out
        except OSError as exc:  # VtyError included: a refused command
            message = str(exc) or type(exc).__name__
            for secret in [*secrets, self.lock, self.chain_lock]:
                message = message.replace(secret, "<key>")
            raise SinkError(f"{self.name}: {daemon} over {path}: {message}") from None

    def _run(self, commands: Sequence[str], secrets: Sequence[str]) -> tuple[str, float]:
        """One vtysh call; (stdout, seconds). SinkError names the failure, keys redacted."""
        args = [self.vtysh, "--vty_socket", str(self.vty_socket)]
        for command in commands:
            args += ["-c", command]
        start = time.perf_counter()
        try:
            result = subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise SinkError(f"{self.name}: {self.vtysh} not found") from None
        except subprocess.TimeoutExpired:
            raise SinkError(f"{self.name}: vtysh took longer than {self.timeout} s") from None
        took = time.perf_counter() - start
        if result.returncode != 0:
            message = " ".join((result.stdout + " " + result.stderr).split())
            for secret in [*secrets, self.lock, self.chain_lock]:
                message = message.replace(secret, "<key>")
            raise SinkError(
                f"{self.name}: vtysh --vty_socket {self.vty_socket} exited "
                f"{result.returncode}: {message or 'no output'}"
            )
        return result.stdout, took


# -- configuration ----------------------------------------------------------------------------


def _section(entry: Any, where: str, v3: bool) -> FrrProtocol:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping with 'interfaces'")
    allowed = {"interfaces", "group"} | ({"keychain"} if v3 else set())
    extra = sorted(set(entry) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(map(str, extra))}")
    interfaces = entry.get("interfaces")
    if not isinstance(interfaces, list) or not interfaces:
        raise ConfigError(f"{where}.interfaces: expected a non-empty list of interface names")
    for i, ifname in enumerate(interfaces):
        if not isinstance(ifname, str) or not _IFNAME.match(ifname):
            raise ConfigError(f"{where}.interfaces[{i}]: {ifname!r} is not an interface name")
    if len(set(interfaces)) != len(interfaces):
        raise ConfigError(f"{where}.interfaces: an interface is listed twice")
    group = entry.get("group")
    if group is not None and (not isinstance(group, str) or not group):
        raise ConfigError(f"{where}.group: expected a group name")
    keychain = entry.get("keychain", "mrkm")
    if not isinstance(keychain, str) or not _NAME.match(keychain):
        raise ConfigError(f"{where}.keychain: {keychain!r} is not a key chain name")
    return FrrProtocol(tuple(interfaces), group, keychain)


@register_sink("frr")
def build_frr_sink(name: str, entry: Mapping[str, Any], where: str) -> Sink:
    """An :class:`FrrSink` from a ``gm.sinks`` entry; ConfigError names the field."""
    allowed = {"type", "name", "vty_socket", "ospfv2", "ospfv3", "vtysh", "timeout", "transport"}
    extra = sorted(set(entry) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(map(str, extra))}")
    vty = entry.get("vty_socket")
    if not isinstance(vty, str) or not vty:
        raise ConfigError(f"{where}.vty_socket: missing (the directory of FRR's .vty sockets)")
    if "ospfv2" not in entry and "ospfv3" not in entry:
        raise ConfigError(f"{where}: give ospfv2, ospfv3 or both")
    v2 = _section(entry["ospfv2"], f"{where}.ospfv2", False) if "ospfv2" in entry else None
    v3 = _section(entry["ospfv3"], f"{where}.ospfv3", True) if "ospfv3" in entry else None
    vtysh = entry.get("vtysh", "vtysh")
    if not isinstance(vtysh, str) or not vtysh:
        raise ConfigError(f"{where}.vtysh: expected the vtysh program")
    timeout = entry.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where}.timeout: expected a positive number of seconds")
    transport = entry.get("transport", "vtysh")
    if transport not in TRANSPORTS:
        raise ConfigError(f"{where}.transport: {transport!r} is not one of {', '.join(TRANSPORTS)}")
    return FrrSink(name, Path(vty), v2, v3, vtysh, float(timeout), transport=str(transport))
