"""A BIRD 2.0.12 router as a testbed app: BIRD for OSPF, FRR's zebra and pimd for PIM.

One :class:`BirdRouter` per topology router of ``flavor: bird`` runs, inside
the router's Mininet host:

* **BIRD** (``bird -c <state>/bird.conf -s <state>/bird.ctl -P
  <state>/bird.pid``, reference/routers.md §4.1) with ``protocol ospf v2 o4``
  and ``protocol ospf v3 o6`` on every router link (``type ptp``) and LAN
  (broadcast, DR election), hello 1 s, dead 4 s, the topology's cost. Every
  keyed interface block says ``authentication cryptographic;`` and includes
  the password file MRKM's ``bird`` sink owns (``<state>/mrkm-ospfv2.conf``,
  ``<state>/mrkm-ospfv3.conf``). Those files start without a password: BIRD
  then sends AuType 2 packets without a digest (OSPFv3: the AT-bit without a
  trailer) and accepts nothing, so, as with FRR's lock keys, no adjacency
  forms until the GM installs a group key (fail closed). BIRD keeps the
  files' keys across its own restart: it reads them again when it starts.
  ``lo`` (its ``10.255/16`` address only, not 127.0.0.1), the GM bridge and
  the GCKS LAN are stub interfaces of o4, so the loopbacks, the GM
  addresses and the rekey source are routed. The ``kernel`` protocols export
  BIRD's OSPF routes into the kernel (``proto bird``), with ECMP merged.
* **zebra and pimd** of FRR (:class:`testbed.router.FrrRouter` with only
  those two daemons, the same state directory and ``pimd.conf``): BIRD has
  no PIM. zebra learns BIRD's kernel routes as ``K`` routes, and pimd's RPF
  lookups (``show ip rpf``) resolve through them, so GSA_REKEY reaches the
  GM bridge over the PIM tree exactly as on an FRR router. When the network
  protects PIM, the router's PIM AH shim (:class:`testbed.router.PimAhShim`)
  starts before zebra and pimd, as on an FRR router, and stops after them.

The GM of a BIRD router gets one ``bird`` sink for both protocols (one
``configure`` each time the keys of either change), and the shim's
``pim_ah`` sink for PIM. BIRD switches to a new key by itself at its
activation time (``generate from``), so an install is the moment BIRD holds
the key, not the moment it sends with it.

Neighbor states come from BIRD's control socket (``show ospf neighbors
o4``), spoken directly as birdc does, one connection per query, so that
samplers in several threads never share one.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mrkm.sinks.bird import BIRD_ALGORITHMS, BirdCliReader
from testbed.frr_config import RouterPlan
from testbed.router import (
    PIM_ALGORITHMS,
    FrrRouter,
    PimAhShim,
    RouterNode,
    pid_alive,
    poll,
)

__all__ = [
    "BIRD",
    "BIRD_DAEMONS",
    "BirdRouter",
    "bird_config",
    "bird_query",
    "parse_bird_neighbors",
]

BIRD = "/usr/sbin/bird"
#: Start order; stopped in reverse (BIRD first, zebra last).
BIRD_DAEMONS = ("zebra", "pimd", "bird")
#: MRKM protocol -> (BIRD protocol name, OSPF version, channel).
INSTANCES = {"ospfv2": ("o4", "v2", "ipv4"), "ospfv3": ("o6", "v3", "ipv6")}
LOOPBACKS = "10.255.0.0/16"  # topologies.addressing: router loopbacks


def bird_config(plan: RouterPlan, state: Path, includes: Mapping[str, Path]) -> str:
    """bird.conf for ``plan``: OSPFv2 and OSPFv3 on every link, keys from ``includes``."""
    lines = [
        f'log "{state / "bird.log"}" all;',
        f"router id {plan.router_id};",
        "protocol device { scan time 10; }",
        "protocol kernel k4 { ipv4 { export where source = RTS_OSPF; }; merge paths yes; }",
        "protocol kernel k6 { ipv6 { export where source = RTS_OSPF; }; merge paths yes; }",
    ]
    for protocol, (name, version, channel) in INSTANCES.items():
        lines += [
            f"protocol ospf {version} {name} {{",
            f"  {channel} {{ import all; export none; }};",
            "  area 0 {",
        ]
        if protocol == "ospfv2":
            stubs = [p.name for p in (*plan.of_kind("gm"), *plan.of_kind("gcks"))]
            lines.append(f'    interface "lo" {LOOPBACKS} {{ stub yes; }};')
            lines += [f'    interface "{name}" {{ stub yes; }};' for name in stubs]
        for port in plan.links:
            kind = "ptp" if port.kind == "link" else "broadcast"
            lines += [
                f'    interface "{port.name}" {{',
                f"      type {kind}; cost {port.cost}; hello {plan.hello}; dead {plan.dead};",
                "      retransmit 2;",
                "      authentication cryptographic;",
                f'      include "{includes[protocol]}";',
                "    };",
            ]
        lines += ["  };", "}"]
    return "\n".join(lines) + "\n"


def bird_query(path: Path, command: str, timeout: float = 2.0) -> tuple[int, str] | None:
    """One CLI command on BIRD's control socket: (code of the last line, the reply's
    text without codes); None when BIRD does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            reader = BirdCliReader(sock)
            reader.reply()  # 0001 BIRD 2.0.12 ready.
            sock.sendall(command.encode() + b"\n")
            return reader.reply()
    except (OSError, ConnectionError):
        return None


def parse_bird_neighbors(text: str) -> dict[tuple[str, str], str]:
    """``show ospf neighbors`` text -> {(interface, router id): state}; "Full/PtP" -> "Full".

    Table rows are ``<router id> <pri> <state> <dtime> <interface> <router ip>``.
    """
    states: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0].count(".") == 3 and fields[1].isdigit():
            states[(fields[4], fields[0])] = fields[2].split("/", 1)[0]
    return states


@dataclass
class BirdRouter(RouterNode):
    """BIRD (OSPFv2, OSPFv3) plus FRR's zebra and pimd (PIM) of one router.

    ``state``, ``workdir`` and ``prefix`` as for :class:`FrrRouter`, which
    runs zebra and pimd in the same state directory.
    """

    flavor: ClassVar[str] = "bird"
    algorithms: ClassVar[Mapping[str, tuple[str, ...]]] = {
        **{protocol: tuple(names) for protocol, names in BIRD_ALGORITHMS.items()},
        "pim": PIM_ALGORITHMS,  # FRR's pimd with the PIM AH shim
    }

    plan: RouterPlan
    state: Path
    workdir: Path
    prefix: Sequence[str]
    daemons: tuple[str, ...] = BIRD_DAEMONS
    pim_ah: PimAhShim | None = None
    frr: FrrRouter = field(init=False)
    _bird_started: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.frr = FrrRouter(
            self.plan,
            self.state,
            self.workdir,
            self.prefix,
            daemons=("zebra", "pimd"),
            pim_ah=self.pim_ah,  # started and stopped with zebra and pimd
        )

    # -- files ------------------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.state / "bird.conf"

    @property
    def ctl(self) -> Path:
        """BIRD's control socket."""
        return self.state / "bird.ctl"

    @property
    def pidfile(self) -> Path:
        return self.state / "bird.pid"

    def include(self, protocol: str) -> Path:
        """The password file of ``protocol`` that the GM's ``bird`` sink writes."""
        return self.state / f"mrkm-{protocol}.conf"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start zebra and pimd, write bird.conf and empty password files, start BIRD."""
        self.frr.start(timeout)
        includes = {p: self.include(p) for p in INSTANCES}
        for path in includes.values():
            path.write_text("# no keys yet: MRKM's bird sink writes this file\n")
        text = bird_config(self.plan, self.state, includes)
        self.conf.write_text(text)
        (self.workdir / "bird.conf").write_text(text)
        self._start_bird(timeout)

    def _start_bird(self, timeout: float) -> None:
        self.pidfile.unlink(missing_ok=True)
        cmd = [*self.prefix, BIRD, "-c", str(self.conf), "-s", str(self.ctl)]
        cmd += ["-P", str(self.pidfile)]
        self._bird_started = True  # before it runs: stop() must look for its pid file
        result = subprocess.run(
            cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{self.name}: bird did not start: {(result.stderr or result.stdout).strip()}"
            )

        def ready() -> bool:
            return self.pid("bird") is not None and bird_query(self.ctl, "show status") is not None

        if not poll(ready, timeout, 0.05):
            raise TimeoutError(
                f"{self.name}: bird did not answer on {self.ctl} within {timeout} s "
                f"(log: {self.state / 'bird.log'})"
            )

    def start_daemon(self, daemon: str, timeout: float = 10.0) -> None:
        """Start a stopped ``bird``, ``zebra`` or ``pimd`` again with its configuration.

        BIRD reads the password files as the GM last wrote them, so it comes
        back with MRKM's keys; the GM also sees the new PID and configures it
        again. ValueError for another name, RuntimeError if it still runs.
        """
        self._check_daemon(daemon)
        if daemon != "bird":
            self.frr.start_daemon(daemon, timeout)
            return
        if not self.conf.exists():
            raise RuntimeError(f"{self.name}: bird has no configuration (router stopped?)")
        if (pid := self.pid("bird")) is not None:
            raise RuntimeError(f"{self.name}: bird already runs (pid {pid})")
        self._start_bird(timeout)

    def pid(self, daemon: str) -> int | None:
        """The daemon's PID while it runs (checked against /proc: never a recycled PID)."""
        if daemon != "bird":
            return self.frr.pid(daemon)
        try:
            pid = int(self.pidfile.read_text().split()[0])
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            return None
        return pid if comm == "bird" and pid_alive(pid) else None

    def stop(self) -> None:
        """Stop BIRD, then pimd and zebra, by PID; keep the logs in the workdir."""
        try:
            if self._bird_started:
                self.stop_daemon("bird")
        finally:
            self._bird_started = False
            for protocol in INSTANCES:
                with contextlib.suppress(OSError):
                    text = self.include(protocol).read_text()
                    # Keep which key ids BIRD held, never the keys themselves.
                    ids = [line.strip() for line in text.splitlines() if line.strip()[:3] == "id "]
                    (self.workdir / f"mrkm-{protocol}.ids").write_text("\n".join(ids) + "\n")
            self.frr.stop()  # copies every *.log (bird.log too), removes the state directory

    def sinks(self, groups: Mapping[str, str]) -> list[dict[str, Any]]:
        """One ``bird`` sink for the protocols in ``groups`` ({protocol: group name}).

        One sink, as for FRR: its ``router_install`` events hold the key ids of
        both protocols, and the first one after a rekey that holds the new key
        id is that rekey's install (testbed/metrics.py). A ``pim`` group gets the
        shim's ``pim_ah`` sink besides."""
        sink: dict[str, Any] = {
            "type": "bird",
            "name": "bird",
            "socket": str(self.ctl),
            "pidfile": str(self.pidfile),
        }
        for protocol, group in groups.items():
            if protocol in INSTANCES:
                sink[protocol] = {"include": str(self.include(protocol)), "group": group}
        return [sink, *self.pim_ah_sinks(groups)]

    # -- queries ----------------------------------------------------------------------------

    def birdc(self, command: str) -> str:
        """One CLI command (``show route``, ``show ospf interface o4``...); its text.

        RuntimeError when BIRD does not answer or answers with an error code.
        """
        reply = bird_query(self.ctl, command)
        if reply is None:
            raise RuntimeError(f"{self.name}: bird did not answer {command!r}")
        code, text = reply
        if code >= 8000:
            raise RuntimeError(f"{self.name}: bird refused {command!r}: {text.strip()}")
        return text

    def _neighbors(self, protocol: str) -> dict[tuple[str, str], str] | None:
        reply = bird_query(self.ctl, f"show ospf neighbors {INSTANCES[protocol][0]}")
        if reply is None or reply[0] >= 8000:
            return None
        return parse_bird_neighbors(reply[1])

    def ospf_neighbors(self) -> dict[tuple[str, str], str] | None:
        """BIRD's o4 neighbors {(interface, router id): state}; None if BIRD is down."""
        return self._neighbors("ospfv2")

    def ospf6_neighbors(self) -> dict[tuple[str, str], str] | None:
        """BIRD's o6 neighbors {(interface, router id): state}; None if BIRD is down."""
        return self._neighbors("ospfv3")

    def pim_neighbors(self) -> dict[str, set[str]] | None:
        return self.frr.pim_neighbors()

    def mroute(self, source: str, group: str) -> tuple[str, set[str]] | None:
        return self.frr.mroute(source, group)

    def vtysh(self, *commands: str, daemon: str | None = None, check: bool = True) -> str:
        """vtysh to zebra and pimd (``show ip rpf``, ``show ip route``...)."""
        return self.frr.vtysh(*commands, daemon=daemon, check=check)

    def show_json(self, command: str, daemon: str) -> Any:
        """``show ... json`` of zebra or pimd (FRR's, beside BIRD)."""
        return self.frr.show_json(command, daemon)
