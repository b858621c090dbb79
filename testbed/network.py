"""The network builder: a topology as Mininet hosts running FRR or BIRD, plus the GCKS and GMs.

:class:`Network` is a context manager. Entering it builds the network and
starts every router's daemons; leaving it (normally, on an exception or on
KeyboardInterrupt) stops the GMs, the GCKS and the routing daemons by PID, runs
Mininet's own teardown, deletes the namespaces, and checks that nothing of
the run survived. A scenario runner uses it like this::

    topology = get_topology("ring5")
    with Network(topology, run_folder, prefix="mk") as net:
        net.start_mrkm()                  # GCKS + one GM per router; all registered
        net.wait_ospf_full()              # adjacencies form with MRKM's keys only
        net.wait_pim()                    # PIM neighbors (under AH) and the rekey tree
        sent = net.rekey("ospfv2-area0")  # multicast over PIM; every GM accepted it
        net.wait_installed(sent)          # every router sends with the new key

The order matters when PIM is protected (``pim_auth``, the default): PIM
neighbors form only once the GMs, registered over the management network,
hand the PIM group's key to the routers' AH shims. Registration needs
neither OSPF nor PIM, so registering first always works; with
``pim_auth=False`` PIM comes up at once, as before, and ``wait_pim`` may
come first too.

Layout (addresses from :mod:`topologies.addressing`; ``P`` = the prefix):

* one Mininet host per router, its network namespace attached as
  ``P-<router>`` (``ip netns``; :mod:`testbed.cleanup` finds it by name and
  by the run record under ``/run/mrkm-testbed/P/``); forwarding on,
  ``rp_filter`` off; loopback ``10.255.X.Y/32``;
* one veth per link (``<a>-<b>``; IPv4 /24 and IPv6 /64 ``nodad``), rate
  (tbf) and loss (nft netdev ingress, both ends) from the topology; one
  bridge host ``P-L<lan>`` per LAN;
* ``gm0`` in every router: an empty Linux bridge, ``10.251.X.Y/32``, where
  the GM joins the rekey group (``reference/pim-local-and-tshark.md`` §3);
* the GCKS host ``P-gcks``: the out-of-band management bridge ``mgmt0``
  (``10.250.0.0/16``, the GCKS at ``10.250.255.254``) with a veth ``mgmt``
  from every router (no OSPF, no PIM there), and ``rekey0``
  (``10.252.0.2/24``), a veth to ``gcks0`` (``10.252.0.1/24``) on the GCKS
  router (the topology's ``gcks_router``, else its RP, else its first
  router): GSA_REKEY leaves there as a multicast source that PIM routes to
  every router's ``gm0``.

Routers: each topology router's ``flavor`` picks its class (:data:`FLAVORS`):
``frr`` is :class:`~testbed.router.FrrRouter` (zebra, ospfd, ospf6d, pimd),
``bird`` is :class:`~testbed.bird_router.BirdRouter` (BIRD for OSPFv2 and
OSPFv3, FRR's zebra and pimd for PIM). Both offer the same
:class:`~testbed.router.RouterNode` interface, so nothing above the routers
cares about the flavor; each router names the GM sinks that key it. A
group whose algorithm a flavor cannot use, or an OSPFv3 group across an
FRR-BIRD link (FRR 8.4's trailer does not interoperate, routers.md §2.3),
is refused by :meth:`Network.start_mrkm` with the routers and group named.

Bootstrap is out of band (ARCHITECTURE.md): routers start with OSPF
authentication on and no usable key (FRR: a random lock key; BIRD: no
password), so no adjacency forms until the GMs, registered over the
management network, install the group keys.

PIM (``pim_auth``, on by default): FRR 8.4's pimd has no authentication, so
every router runs MRKM's userspace AH shim (:class:`~testbed.router.PimAhShim`,
RFC 5796) from before pimd starts, with ``ip pim hello 1 <dead>`` on its links
(hold time = the OSPF dead interval, 4 s by default).
The shim fails closed, so no PIM neighbor forms until the GM installs the
key of the PIM group (:data:`~testbed.mrkm_nodes.PIM_GROUP`, protocol
``pim``, HMAC-SHA-256-128). :meth:`Network.start_mrkm` adds that group to
the groups it is given when they hold no ``pim`` group, with the timers of
their first group (:func:`~testbed.mrkm_nodes.pim_group`), so a scenario's
groups get PIM protected without naming it; a scenario that names a
``pim`` group keeps its own. With ``pim_auth=False`` PIM runs unprotected
and neighbors form at once (a ``pim`` group is then refused). Either way
the PIM tree to the RP follows once OSPF is Full.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from testbed.bird_router import BirdRouter
from testbed.cleanup import RunRecord, leftovers, namespaces
from testbed.frr_config import Port, RouterPlan
from testbed.mrkm_nodes import (
    REKEY_GROUP,
    V2_GROUP,
    V3_GROUP,
    GcksNode,
    GmNode,
    default_groups,
    member_id,
    pim_group,
    random_psk,
)
from testbed.router import (
    DAEMONS_BFD,
    FrrRouter,
    PimAhShim,
    RouterNode,
    memory_kib,
    pid_alive,
)
from topologies.addressing import GCKS_MGMT_ADDRESS, MGMT_PREFIXLEN, assign, lan_address6
from topologies.model import Topology, TopologyError

__all__ = [
    "FLAVORS",
    "GCKS_LAN",
    "GM_INTERFACE",
    "REGISTRATION_MODES",
    "Network",
    "gm_address",
    "gm_liveness",
    "group_problems",
    "with_pim_group",
]

GM_INTERFACE = "gm0"
MGMT_INTERFACE = "mgmt"  # in each router; its peer in the GCKS host is "m<router number>"
MGMT_BRIDGE = "mgmt0"
GCKS_LAN = "10.252.0"  # /24: the GCKS router's gcks0 is .1, the GCKS's rekey0 .2
GCKS_ROUTER_IF, GCKS_IF = "gcks0", "rekey0"
ROUTER_SYSCTLS = (
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    "net.ipv6.conf.all.accept_dad=0",  # link-locals usable at once (ospf6d uses them)
    "net.ipv6.conf.default.accept_dad=0",
)
#: s, PIM hello interval on links when PIM runs under AH; the hold time is the OSPF dead
#: interval (4 s by default), so a neighbor lost to a key shows within seconds, not 105 s,
#: and a lossy link drops PIM no more readily than OSPF.
PIM_HELLO = 1


#: Topology ``flavor`` -> the router class that runs it.
FLAVORS: dict[str, type[FrrRouter] | type[BirdRouter]] = {"frr": FrrRouter, "bird": BirdRouter}
#: How GMs reach the GCKS: the management network, or the routed network (module doc).
REGISTRATION_MODES = ("oob", "in-band")


def group_problems(topology: Topology, groups: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why ``groups`` cannot key ``topology``'s routers, one line per group and flavor
    (or per mixed link); [] when every router can use every group.

    A router flavor must take the group's algorithm for its protocol (FRR
    8.4 OSPFv2 is Keyed-MD5 only), and OSPFv3 cannot run over a link or LAN
    joining FRR and BIRD routers (FRR 8.4's trailer digest differs from
    BIRD's, reference/routers.md §2.3).
    """
    flavor = {r.name: r.flavor for r in topology.routers}
    problems = []
    for i, group in enumerate(groups):
        name = group.get("name", f"groups[{i}]")
        protocol = str(group.get("protocol", "ospfv2"))
        algorithm = str(group.get("algorithm", "hmac-sha-256"))
        for kind, cls in FLAVORS.items():
            routers = [r for r, f in flavor.items() if f == kind]
            reason = cls.refuses(protocol, algorithm) if routers else None
            if reason is not None:
                problems.append(
                    f"group {name} ({protocol}, {algorithm}) cannot key {kind} routers "
                    f"{', '.join(routers)}: {reason}"
                )
        if protocol == "ospfv3":
            mixed = [f"{lk.a}-{lk.b}" for lk in topology.links if flavor[lk.a] != flavor[lk.b]] + [
                f"LAN {lan.name}"
                for lan in topology.lans
                if len({flavor[r] for r in lan.routers}) > 1
            ]
            if mixed:
                problems.append(
                    f"group {name} (ospfv3) cannot run between FRR and BIRD routers on "
                    f"{', '.join(mixed)}: FRR 8.4's OSPFv3 trailer does not interoperate "
                    "with BIRD's (reference/routers.md §2.3); key OSPFv3 only on "
                    "single-flavor networks"
                )
    return problems


def with_pim_group(
    groups: Sequence[Mapping[str, Any]], pim_auth: bool = True
) -> list[dict[str, Any]]:
    """``groups`` as the GCKS gets them: with ``pim_auth`` and no ``pim`` group among
    them, :func:`~testbed.mrkm_nodes.pim_group` is added with the first group's
    timers. Without ``pim_auth`` a ``pim`` group is refused (no shim would take its
    keys): :class:`TopologyError` naming it.
    """
    out = [dict(g) for g in groups]
    pim = [str(g.get("name")) for g in out if g.get("protocol") == "pim"]
    if not pim_auth:
        if pim:
            raise TopologyError(
                f"group(s) {', '.join(pim)} key PIM, but this network leaves PIM "
                "unprotected (pim_auth off: no AH shim in the routers)"
            )
        return out
    if not pim:
        taken = {str(g.get("name")) for g in out}
        group = pim_group(out[0] if out else None)
        if group["name"] in taken:
            raise TopologyError(f"group name {group['name']!r} is taken by a non-PIM group")
        out.append(group)
    return out


def gm_liveness(groups: Sequence[Mapping[str, Any]]) -> float:
    """A GM's ``liveness``: 2.5 of the slowest group's heartbeats (0 if a group has none).

    With it a GM that stops hearing its rekey tree (a partition, a lost PIM
    branch) registers again over the management network instead of waiting
    for its keys to near expiry.
    """
    beats = [float(g.get("heartbeat", 60.0)) for g in groups]
    return 0.0 if not beats or min(beats) <= 0 else round(2.5 * max(beats), 3)


def gm_address(number: int) -> str:
    """Router ``number``'s GM bridge address, ``10.251.X.Y/32`` (unique, so no anycast)."""
    return f"10.251.{number // 256}.{number % 256}/32"


def _started(pid: int) -> str | None:
    """The start time of a running ``pid`` (None once it is gone or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


class Network:
    """A topology built in Mininet with FRR or BIRD routers; MRKM on demand. See the module
    doc."""

    def __init__(
        self,
        topology: Topology,
        workdir: Path,
        prefix: str = "mk",
        *,
        hello: int = 1,
        dead: int = 4,
        pim_auth: bool = True,
        registration: str = "oob",
        bfd: bool = False,
    ) -> None:
        """``pim_auth``: protect PIM with MRKM's AH shim in every router (module doc).

        ``bfd``: BFD on every OSPF link of FRR routers (bfdd, 100 ms x 3), so a
        silent link failure is seen in about 0.3 s instead of a dead interval.

        ``registration``: ``oob`` (default) registers GMs over the management
        network; ``in-band`` over the routed network itself, to the GCKS's
        rekey-LAN address: FRR routers then start with a shared bootstrap key,
        so OSPF forms before MRKM, and the group keys replace it.
        """
        if registration not in REGISTRATION_MODES:
            raise ValueError(
                f"registration {registration!r} is not one of {', '.join(REGISTRATION_MODES)}"
            )
        if not prefix.isalnum() or len(prefix) > 12:
            raise ValueError(f"prefix {prefix!r}: 1 to 12 letters or digits")
        self.topology = assign(topology)
        for router in self.topology.routers:
            if router.flavor not in FLAVORS:
                raise TopologyError(
                    f"router {router.name}: flavor {router.flavor!r} is not one of "
                    f"{', '.join(FLAVORS)}"
                )
        self.workdir = workdir.resolve()
        self.prefix = prefix
        self.hello, self.dead = hello, dead
        self.pim_auth = pim_auth
        self.registration = registration
        self.bfd = bfd
        self.bootstrap = secrets.token_hex(32) if registration == "in-band" else None
        if self.bootstrap is not None:
            birds = [r.name for r in self.topology.routers if r.flavor != "frr"]
            if birds:
                raise TopologyError(
                    f"in-band registration needs a bootstrap key in every router; "
                    f"only FRR routers take one so far, not {', '.join(birds)}"
                )
        self.record = RunRecord.new(prefix, self.workdir)
        first = self.topology.routers[0].name
        self.rp_router = self.topology.rp or first
        self.gcks_router = self.topology.gcks_router or self.rp_router
        self.plans = {r.name: self._plan(r.name) for r in self.topology.routers}
        self.routers: dict[str, RouterNode] = {}
        self.gcks: GcksNode | None = None
        self.gms: dict[str, GmNode] = {}
        self.psk = random_psk()
        self.timings: dict[str, float] = {}
        self.net: Any = None  # mininet.net.Mininet
        self.hosts: dict[str, Any] = {}  # node name -> mininet Host
        self._stack = contextlib.ExitStack()
        self._pids: dict[int, str] = {}  # every PID we started -> its start time
        self._interfaces: set[str] = set()
        self._stopped = False

    # -- names and plans ------------------------------------------------------------------

    def namespace(self, node: str) -> str:
        """The ``ip netns`` name of a router, ``gcks`` or ``L<lan>``: ``<prefix>-<node>``."""
        return f"{self.prefix}-{node}"

    def exec_prefix(self, node: str) -> list[str]:
        """The command prefix that runs a program inside ``node`` (Mininet's own way)."""
        return ["mnexec", "-da", str(self.hosts[node].pid)]

    def _plan(self, name: str) -> RouterPlan:
        topo = self.topology
        router = topo.router(name)
        ids = {r.name: r.loopback for r in topo.routers}
        ports: list[Port] = []
        for link in topo.links:
            if name not in (link.a, link.b):
                continue
            mine_a = name == link.a
            peer = link.b if mine_a else link.a
            ip, ip6 = (link.a_ip, link.a_ip6) if mine_a else (link.b_ip, link.b_ip6)
            peer_ip = (link.b_ip if mine_a else link.a_ip).split("/")[0]
            ports.append(
                Port(link.interface(name), "link", ip, ip6, peer, ids[peer], peer_ip, link.cost)
            )
        for lan in topo.lans:
            if name in lan.routers:
                members = tuple(
                    (other, ids[other], lan.addresses[other].split("/")[0])
                    for other in lan.routers
                    if other != name
                )
                ports.append(
                    Port(
                        self._lan_interface(name, lan.name),
                        "lan",
                        lan.addresses[name],
                        lan_address6(lan, name),
                        peer=lan.name,
                        members=members,
                    )
                )
        ports.append(Port(GM_INTERFACE, "gm", gm_address(router.number)))
        ports.append(Port(MGMT_INTERFACE, "mgmt", f"{router.mgmt_address}/{MGMT_PREFIXLEN}"))
        if name == self.gcks_router:
            ports.append(Port(GCKS_ROUTER_IF, "gcks", f"{GCKS_LAN}.1/24"))
        rp = topo.router(self.rp_router).loopback
        pim = (PIM_HELLO, max(self.dead, 3 * PIM_HELLO)) if self.pim_auth else (0, 0)
        return RouterPlan(
            name, router.loopback, rp, tuple(ports), self.hello, self.dead, *pim, bfd=self.bfd
        )

    @staticmethod
    def _lan_interface(router: str, lan: str) -> str:
        return f"{router}-{lan}"[:15]

    # -- commands inside nodes ------------------------------------------------------------

    def run(self, node: str, *argv: str, stdin: str | None = None) -> str:
        """Run ``argv`` inside ``node``; its stdout, or RuntimeError naming node and command."""
        result = subprocess.run(
            [*self.exec_prefix(node), *argv],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{node}: {' '.join(argv)} exited {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        return result.stdout

    def _ip_batch(self, node: str, commands: Sequence[str]) -> None:
        if commands:
            self.run(node, "ip", "-batch", "-", stdin="\n".join(commands) + "\n")

    def _remember(self, pid: int | None) -> None:
        if pid is not None and (start := _started(pid)) is not None:
            self._pids[pid] = start

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Network:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        left = self.stop()
        if left:
            message = f"testbed cleanup left: {'; '.join(left)} (run `make clean-net`)"
            if exc is None:
                raise RuntimeError(message)
            exc.add_note(message)

    def start(self, timeout: float = 30) -> None:
        """Build the network and start every router; on any failure, undo all of it."""
        try:
            t0 = time.monotonic()
            self._build()
            t1 = time.monotonic()
            self._start_routers(timeout)
            t2 = time.monotonic()
            self.timings |= {"build_s": t1 - t0, "frr_start_s": t2 - t1}
        except BaseException:
            self.stop()
            raise

    def stop(self) -> list[str]:
        """Undo everything in reverse order (SIGINT held off meanwhile); what failed or
        survived, in words ([] = all gone). Never raises but for a deferred Ctrl-C.

        Order: GMs, GCKS, routing daemons (each by PID), Mininet's teardown of
        its links and hosts, the namespaces, the run record.
        """
        if self._stopped:
            return []
        self._stopped = True
        t0 = time.monotonic()
        errors = []
        with _sigint_deferred():
            try:
                self._stack.close()  # runs every step even when one fails; re-raises the last
            except Exception as exc:
                errors.append(f"a teardown step failed: {type(exc).__name__}: {exc}")
            left = self.leftovers()
        self.timings["teardown_s"] = time.monotonic() - t0
        return errors + left

    def leftovers(self) -> list[str]:
        """What of this run still exists: processes, namespaces, root-namespace links."""
        out = [f"process {pid}" for pid, start in self._pids.items() if _started(pid) == start]
        out += leftovers(self.record)
        if self._interfaces:
            result = subprocess.run(
                ["ip", "-o", "link", "show"], capture_output=True, text=True, check=False
            )
            names = {
                line.split(":")[1].strip().split("@")[0] for line in result.stdout.splitlines()
            }
            out += [
                f"link {name} in the root namespace" for name in sorted(names & self._interfaces)
            ]
        return out

    # -- building ---------------------------------------------------------------------------

    def _build(self) -> None:
        from mininet.net import Mininet  # Debian's package; imported only when building

        taken = [ns for ns in namespaces() if ns.startswith(f"{self.prefix}-")]
        if taken or (self.record.folder / "run.json").exists():
            raise RuntimeError(
                f"prefix {self.prefix!r} is in use ({', '.join(taken) or self.record.folder}); "
                "pick another prefix, or run `make clean-net` if a run crashed"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.record.save()
        self._stack.callback(self._drop_record)
        self._stack.callback(self._delete_namespaces)
        self.net = Mininet(controller=None, build=False, cleanup=False)
        self._stack.callback(self._stop_mininet)
        nodes = [r.name for r in self.topology.routers] + ["gcks"]
        nodes += [f"L{lan.name}" for lan in self.topology.lans]
        for node in nodes:
            self._add_host(node)
        for name in self.plans:
            self.run(name, "sysctl", "-qw", *ROUTER_SYSCTLS)
        for lan in self.topology.lans:
            self._ip_batch(
                f"L{lan.name}",
                [
                    "link add br0 type bridge mcast_snooping 0",
                    "link set br0 up",
                    "link set lo up",
                ],
            )
        self._ip_batch(
            "gcks",
            [
                "link set lo up",
                f"link add {MGMT_BRIDGE} type bridge mcast_snooping 0",
                f"addr add {GCKS_MGMT_ADDRESS}/{MGMT_PREFIXLEN} dev {MGMT_BRIDGE}",
                f"link set {MGMT_BRIDGE} up",
            ],
        )
        self._wire()
        for plan in self.plans.values():
            self._address(plan)
        self._impair()

    def _add_host(self, node: str) -> None:
        host = self.net.addHost(self.namespace(node))
        self.hosts[node] = host
        self._remember(host.pid)
        ns = self.namespace(node)
        subprocess.run(["ip", "netns", "attach", ns, str(host.pid)], check=True)
        self.record.namespaces.append(ns)
        self.record.save()

    def _link(self, a: str, b: str, if_a: str, if_b: str) -> None:
        self.net.addLink(self.hosts[a], self.hosts[b], intfName1=if_a, intfName2=if_b)
        self._interfaces |= {if_a, if_b}

    def _wire(self) -> None:
        for link in self.topology.links:
            self._link(link.a, link.b, link.interface(link.a), link.interface(link.b))
        for lan in self.topology.lans:
            for i, member in enumerate(lan.routers, start=1):
                self._link(member, f"L{lan.name}", self._lan_interface(member, lan.name), f"p{i}")
            self._ip_batch(
                f"L{lan.name}",
                [f"link set p{i} master br0" for i in range(1, len(lan.routers) + 1)],
            )
        bridge = []
        for router in self.topology.routers:
            peer = f"m{router.number}"
            self._link(router.name, "gcks", MGMT_INTERFACE, peer)
            bridge.append(f"link set {peer} master {MGMT_BRIDGE}")
        self._ip_batch("gcks", bridge)
        self._link(self.gcks_router, "gcks", GCKS_ROUTER_IF, GCKS_IF)
        self._ip_batch(
            "gcks", [f"addr add {GCKS_LAN}.2/24 dev {GCKS_IF}", f"link set {GCKS_IF} up"]
        )

    def _address(self, plan: RouterPlan) -> None:
        commands = ["link set lo up", f"addr add {plan.router_id}/32 dev lo"]
        for port in plan.ports:
            if port.kind == "gm":
                commands.append(f"link add {port.name} type bridge")
            commands.append(f"addr add {port.ip} dev {port.name}")
            if port.ip6:
                commands.append(f"addr add {port.ip6} dev {port.name} nodad")
            commands.append(f"link set {port.name} up")
        self._ip_batch(plan.name, commands)

    def _impair(self) -> None:
        """Rate (tbf) and loss (nft netdev ingress) of impaired links, on both ends."""
        for link in self.topology.links:
            for router in (link.a, link.b):
                ifname = link.interface(router)
                if link.rate:
                    self.run(
                        router,
                        *f"tc qdisc add dev {ifname} root tbf rate {link.rate}mbit "
                        "burst 32kbit latency 50ms".split(),
                    )
                if link.loss:
                    per_10k = round(link.loss * 100)
                    chain = f"in_{ifname.replace('-', '_')}"
                    self.run(
                        router,
                        "nft",
                        f"add table netdev mrkm; "
                        f"add chain netdev mrkm {chain} "
                        f"{{ type filter hook ingress device {ifname} priority 0; }}; "
                        f"add rule netdev mrkm {chain} numgen random mod 10000 < {per_10k} drop",
                    )

    def _start_routers(self, timeout: float) -> None:
        for name, plan in self.plans.items():
            cls = FLAVORS[self.topology.router(name).flavor]
            shim = None
            if self.pim_auth:
                shim = PimAhShim(
                    name,
                    self.exec_prefix(name),
                    state=self.record.folder / name,
                    log=self.workdir / f"pim-ah-{name}.jsonl",
                    node=name,
                )
            node = cls(
                plan,
                state=self.record.folder / name,
                workdir=self.workdir / name,
                prefix=self.exec_prefix(name),
                pim_ah=shim,
            )
            if isinstance(node, FrrRouter):
                node.bootstrap = self.bootstrap  # None: random lock keys (fail closed)
                if self.bfd:
                    node.daemons = DAEMONS_BFD
            self.routers[name] = node
        self._stack.callback(self._stop_routers)
        # Parallel start: each router waits on its own daemons' sockets.
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(router.start, timeout) for router in self.routers.values()]
            for future in futures:
                future.result()
        for router in self.routers.values():
            for pid in router.pids().values():
                self._remember(pid)

    def _stop_mininet(self) -> None:
        """Mininet's own teardown: deletes the links it made, SIGHUPs its host shells."""
        net, self.net = self.net, None
        if net is not None:
            net.stop()

    def _stop_routers(self) -> None:
        """Stop every router's daemons by PID, routers in parallel (each in reverse order)."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(router.stop) for router in reversed(self.routers.values())]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise RuntimeError(f"stopping the routers: {errors[0]}") from errors[0]

    def _delete_namespaces(self) -> None:
        for ns in reversed(self.record.namespaces):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)

    def _drop_record(self) -> None:
        """Remove the run record once nothing of the run is left (else keep it for cleanup)."""
        record = self.record
        alive = [p for p, s in self._pids.items() if _started(p) == s]
        if not alive and not set(record.namespaces) & set(namespaces()):
            (record.folder / "run.json").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                for path in sorted(record.folder.rglob("*"), reverse=True):
                    path.unlink() if path.is_file() else path.rmdir()
                record.folder.rmdir()

    # -- readiness --------------------------------------------------------------------------

    def _wait(
        self, missing: Callable[[], list[str]], timeout: float, what: str, interval: float = 0.2
    ) -> float:
        """Poll ``missing`` until it is empty; TimeoutError listing what is still missing."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            left = missing()
            if not left:
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                shown = "\n  ".join(left[:20]) + (
                    f"\n  ... {len(left) - 20} more" if len(left) > 20 else ""
                )
                raise TimeoutError(
                    f"timed out after {timeout} s waiting for {what}; missing:\n  {shown}"
                )
            time.sleep(interval)

    def wait_bootstrap_replaced(self, timeout: float = 30) -> float:
        """In-band registration: wait until no router's running configuration holds the
        bootstrap key any more (the group keys replaced it: ``show running-config``)."""
        bootstrap = self.bootstrap
        if bootstrap is None:
            return 0.0

        def missing(router: RouterNode) -> list[str]:
            if not isinstance(router, FrrRouter):
                return []
            config = router.vtysh("show running-config", check=False).splitlines()
            return [
                f"{router.name}: {proto} still holds the bootstrap key"
                for proto, secret in zip(("OSPFv2", "OSPFv3"), router.lock_keys(), strict=True)
                if any(line.rstrip().endswith(f" {secret}") for line in config)
            ]

        took = self._wait(
            lambda: self._each_router(missing), timeout, "the group keys to replace the bootstrap"
        )
        self.timings["bootstrap_replaced_s"] = took
        return took

    def _each_router(self, check: Callable[[RouterNode], list[str]]) -> list[str]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return [m for found in pool.map(check, self.routers.values()) for m in found]

    def wait_pim(self, timeout: float = 30) -> float:
        """Wait until every router has its PIM neighbor on every link and, once the GMs
        run, knows its GM's membership of the rekey group (IGMP on the GM bridge: a
        restarted pimd learns it only from the GM's answer to its query) and the rekey
        tree reaches it (:meth:`missing_rekey_tree`, which needs OSPF's routes).
        Seconds waited.

        With ``pim_auth`` PIM neighbors need the PIM group's key: call
        :meth:`start_mrkm` first (the module doc's order)."""

        def missing(router: RouterNode) -> list[str]:
            out = router.missing_pim()
            return out + router.missing_igmp(REKEY_GROUP) if router.name in self.gms else out

        def missing_all() -> list[str]:
            out = self._each_router(missing)
            return out or (self.missing_rekey_tree() if self.gms else [])

        took = self._wait(missing_all, timeout, "PIM neighbors and the rekey tree")
        self.timings.setdefault("pim_s", took)
        return took

    def missing_rekey_tree(self, group: str = REKEY_GROUP) -> list[str]:
        """Every router whose upstream does not forward ``group`` to it on the shared
        tree, in words ([] = the tree reaches every router).

        For each router but the RP: its RPF neighbor toward the RP (``show ip
        pim rpf``) must hold the router's interface in its ``(*, group)``
        outgoing list. A restarted pimd, or its neighbors, rebuild that state
        from triggered joins (RFC 7761 §4.3.1, GenID change) only seconds
        after the PIM neighbors are back; a rekey sent before is lost.
        """
        owner = {
            port.ip.split("/")[0]: name
            for name, plan in self.plans.items()
            for port in plan.ports
            if port.ip
        }
        names = [n for n in self.routers if n != self.rp_router]
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = pool.map(lambda n: self.routers[n].pim_rpf(group), names)
            rpfs = dict(zip(names, found, strict=True))
            uppers = sorted({owner.get(r[1], "") for r in rpfs.values() if r is not None} - {""})
            entries = pool.map(lambda n: self.routers[n].mroute("*", group), uppers)
            mroutes = dict(zip(uppers, entries, strict=True))
        missing = []
        for name, rpf in rpfs.items():
            upstream = owner.get(rpf[1]) if rpf is not None else None
            if rpf is None or upstream is None:
                missing.append(f"{name}: no RPF neighbor toward the RP for {group} ({rpf})")
                continue
            ports = [
                p.name
                for p in self.plans[upstream].links
                if p.peer == name or any(m[0] == name for m in p.members)
            ]
            entry = mroutes.get(upstream)
            if entry is None or not set(ports) & entry[1]:
                missing.append(f"{upstream} does not forward {group} to {name} (on {ports})")
        return missing

    def wait_ospf_full(self, timeout: float = 60, protocols: Sequence[str] | None = None) -> float:
        """Wait until every link is Full in ``protocols`` (default: those MRKM keys) and,
        with OSPFv2, until every router routes to every loopback and to the GCKS LAN
        (:meth:`wait_routes`): Full is not yet routed (BIRD retransmits LSAs every
        2 s at best), and PIM needs the routes for its tree. Seconds waited."""
        wanted = tuple(protocols) if protocols is not None else self._keyed_protocols()

        def missing(router: RouterNode) -> list[str]:
            return [m for m in router.missing_ospf() if any(f": {p} " in m for p in wanted)]

        t0 = time.monotonic()
        self._wait(
            lambda: self._each_router(missing), timeout, f"{'/'.join(wanted)} Full on every link"
        )
        if "OSPFv2" in wanted:
            self.wait_routes(max(1.0, timeout - (time.monotonic() - t0)))
        took = time.monotonic() - t0
        self.timings.setdefault("ospf_full_s", took)
        return took

    def expected_routes(self, name: str) -> set[str]:
        """The IPv4 destinations router ``name`` must route to once OSPFv2 converged:
        every other loopback, and the GCKS LAN (where GSA_REKEY comes from)."""
        out = {r.loopback for r in self.topology.routers if r.name != name}
        if name != self.gcks_router:
            out.add(f"{GCKS_LAN}.0/24")
        return out

    def missing_routes(self, name: str) -> list[str]:
        """The expected destinations (:meth:`expected_routes`) missing from the kernel
        routing table of router ``name``, in words."""
        try:
            routes = json.loads(self.run(name, "ip", "-4", "-j", "route", "show") or "[]")
        except (RuntimeError, ValueError) as exc:
            return [f"{name}: no routing table ({exc})"]
        have = {str(r.get("dst", "")) for r in routes}
        return [f"{name}: no route to {dst}" for dst in sorted(self.expected_routes(name) - have)]

    def wait_routes(self, timeout: float = 30) -> float:
        """Wait until every router's kernel routes to every loopback and the GCKS LAN."""
        took = self._wait(
            lambda: [m for name in self.routers for m in self.missing_routes(name)],
            timeout,
            "OSPFv2 routes on every router",
        )
        self.timings.setdefault("routes_s", took)
        return took

    def _keyed_protocols(self) -> tuple[str, ...]:
        if self.gcks is None:
            return ("OSPFv2", "OSPFv3")
        protocols = {str(g.get("protocol", "ospfv2")) for g in self.gcks.groups}
        return tuple(
            p for p, name in (("OSPFv2", "ospfv2"), ("OSPFv3", "ospfv3")) if name in protocols
        )

    # -- MRKM -------------------------------------------------------------------------------

    def start_mrkm(
        self, groups: Sequence[Mapping[str, Any]] | None = None, timeout: float = 30
    ) -> float:
        """Start the GCKS with ``groups`` and one GM per router with the sinks its router
        names (``frr`` or ``bird``); wait until every GM is registered in every group.
        Returns the registration time in seconds.

        ``groups`` defaults to :func:`default_groups`, without its OSPFv3 group when
        a link joins FRR and BIRD routers. With ``pim_auth`` the PIM group is
        added unless ``groups`` hold a ``pim`` group (:func:`with_pim_group`).
        :class:`TopologyError` (a ValueError), naming the groups and routers,
        when a group cannot key some routers (:func:`group_problems`) or keys
        PIM without ``pim_auth``; nothing is started then.
        """
        if groups is None:
            groups = default_groups()
            if group_problems(self.topology, [g for g in groups if g["name"] == V3_GROUP]):
                groups = [g for g in groups if g["name"] != V3_GROUP]
        try:
            groups = with_pim_group(groups, self.pim_auth)
        except TopologyError as exc:
            raise TopologyError(f"topology {self.topology.name}: {exc}") from None
        problems = group_problems(self.topology, groups)
        if problems:  # a TopologyError is a ValueError the scenario runner reports
            raise TopologyError(f"topology {self.topology.name}: " + "; ".join(problems))
        members = [member_id(name) for name in self.plans]
        # Registration on the management network, or in band to the GCKS LAN
        # address (routed by OSPF; the GCKS answers through the GCKS router).
        # GSA_REKEY leaves rekey0 from the GCKS LAN address, a source PIM has
        # an RPF route to (rekey_source).
        registrar = GCKS_MGMT_ADDRESS
        if self.registration == "in-band":
            registrar = f"{GCKS_LAN}.2"
            self.run("gcks", "ip", "route", "replace", "default", "via", f"{GCKS_LAN}.1")
        self.gcks = GcksNode(
            self.workdir,
            self.exec_prefix("gcks"),
            registrar,
            GCKS_IF,
            groups,
            members,
            self.psk,
            rekey_source=f"{GCKS_LAN}.2",
        )
        self._stack.callback(self.gcks.stop)
        t0 = time.monotonic()
        self.gcks.start()
        self._remember(self.gcks.pid())
        by_protocol: dict[str, str] = {}
        for group in groups:
            by_protocol.setdefault(str(group.get("protocol", "ospfv2")), str(group["name"]))
        names = [str(g["name"]) for g in groups]
        self._stack.callback(self._stop_gms)
        for name, router in self.routers.items():
            gm = GmNode(
                name,
                self.workdir,
                self.exec_prefix(name),
                registrar,
                names,
                self.psk,
                GM_INTERFACE,
                router.sinks(by_protocol),
                liveness=gm_liveness(groups),
            )
            self.gms[name] = gm
            gm.start()
            self._remember(gm.pid())
        took = self.wait_registered(timeout, t0)
        self.timings["registration_s"] = took
        return took

    def _stop_gms(self) -> None:
        """SIGTERM every GM at once, then reap each (SIGKILL after 10 s)."""
        for gm in self.gms.values():
            if gm.proc is not None:
                gm.proc.terminate()
        for gm in self.gms.values():
            gm.stop()

    def wait_registered(self, timeout: float = 30, since: float | None = None) -> float:
        """Wait until every GM is registered in every group (GCKS ``member_registered``)."""
        assert self.gcks is not None, "start_mrkm() first"
        gcks = self.gcks
        t0 = time.monotonic() if since is None else since

        def missing() -> list[str]:
            for gm in self.gms.values():
                gm.check_running("its registration")
            done = gcks.registered()
            return [
                f"{gm.identity} in {group}"
                for group in (str(g["name"]) for g in gcks.groups)
                for gm in self.gms.values()
                if gm.identity not in done.get(group, set())
            ]

        self._wait(missing, timeout, "every GM's registration", interval=0.05)
        return time.monotonic() - t0

    def rekey(self, group: str = V2_GROUP, timeout: float = 20) -> dict[str, Any]:
        """One rekey of ``group`` now; wait until every GM accepted it. The ``rekey_sent``
        event, with ``accepted_s`` (last GM's accept minus the send) added."""
        assert self.gcks is not None, "start_mrkm() first"
        sent = self.gcks.rekey(group)

        def missing() -> list[str]:
            return [f"{gm.name}" for gm in self.gms.values() if not gm.accepted(sent)]

        self._wait(
            missing, timeout, f"every GM to accept rekey {sent['message_id']} of {group}", 0.05
        )
        accepts = [
            e["t"]
            for gm in self.gms.values()
            for e in gm.events("rekey_accepted")
            if (e["sa"], e["message_id"]) == (sent["sa"], sent["message_id"])
        ]
        return {**sent, "accepted_s": max(accepts) - sent["t"]}

    def wait_installed(self, sent: Mapping[str, Any], timeout: float = 20) -> float:
        """Wait until every router confirmed the key(s) of ``sent`` (``router_install``)."""
        protocol = "ospfv3" if str(sent["group"]) == V3_GROUP else "ospfv2"
        if self.gcks is not None:
            for g in self.gcks.groups:
                if g["name"] == sent["group"]:
                    protocol = str(g.get("protocol", "ospfv2"))
        key_id = int(sent["key_ids"][0])

        def missing() -> list[str]:
            return [
                f"{gm.router}: {protocol} key {key_id}"
                for gm in self.gms.values()
                if not gm.installed(protocol, key_id)
            ]

        return self._wait(
            missing, timeout, f"every router to install {protocol} key {key_id}", 0.05
        )

    # -- measurements -----------------------------------------------------------------------

    def memory(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per router {process: {"rss": KiB, "pss": KiB}}: its routing daemons, its PIM AH
        shim (``pim-ah``) and its GM."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for name, router in self.routers.items():
            out[name] = router.memory()
            gm = self.gms.get(name)
            pid = gm.pid() if gm is not None else None
            if pid is not None:
                out[name]["gm"] = memory_kib(pid)
        return out

    def process_pids(self) -> Iterator[int]:
        """Every PID this network started that still runs (for tests and collectors)."""
        return (p for p, s in self._pids.items() if _started(p) == s and pid_alive(p))


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold SIGINT off during teardown (re-raised as KeyboardInterrupt after it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.network --topo NAME``: bring a network up, measure, tear it down."""
    from topologies.registry import get_topology

    parser = argparse.ArgumentParser(
        prog="testbed.network",
        description="Build a topology in Mininet with FRR or BIRD routers (each router's "
        "flavor), start the GCKS and a GM per router, "
        "wait for registration, OSPF Full and PIM (under AH unless --no-pim-auth), send one "
        "rekey over PIM, print bring-up "
        "times and memory per router, and tear everything down.",
    )
    parser.add_argument("--topo", default="ring5", help="topology name (topologies.registry)")
    parser.add_argument("--workdir", default="results/network", help="folder for configs and logs")
    parser.add_argument("--prefix", default="mk", help="namespace prefix (default mk)")
    parser.add_argument("--timeout", type=float, default=120, help="s for each readiness wait")
    parser.add_argument(
        "--no-pim-auth", action="store_true", help="leave PIM unprotected (no AH shims)"
    )
    args = parser.parse_args(argv)
    topology = get_topology(args.topo)
    t0 = time.monotonic()
    workdir = Path(args.workdir)
    with Network(topology, workdir, prefix=args.prefix, pim_auth=not args.no_pim_auth) as net:
        net.start_mrkm(timeout=args.timeout)
        net.wait_ospf_full(args.timeout)
        net.wait_pim(args.timeout)
        bring_up = time.monotonic() - t0
        sent = net.rekey(V2_GROUP, args.timeout)
        memory = net.memory()
    per_router = [sum(p["rss"] for p in procs.values()) for procs in memory.values()]
    frr = [
        sum(v["rss"] for k, v in procs.items() if k not in ("gm", "pim-ah"))
        for procs in memory.values()
    ]
    shim = [procs["pim-ah"]["rss"] for procs in memory.values() if "pim-ah" in procs]
    pss = [sum(p["pss"] for p in procs.values()) for procs in memory.values()]
    report = {
        "topology": topology.name,
        "routers": len(topology.routers),
        "links": len(topology.links),
        "pim_auth": not args.no_pim_auth,
        "bring_up_s": round(bring_up, 3),
        "timings_s": {k: round(v, 3) for k, v in net.timings.items()},
        "rekey_accepted_by_all_s": round(sent["accepted_s"], 3),
        "rss_per_router_mib": round(sum(per_router) / len(per_router) / 1024, 1),
        "frr_rss_per_router_mib": round(sum(frr) / len(frr) / 1024, 1),
        "pss_per_router_mib": round(sum(pss) / len(pss) / 1024, 1),
        "shim_rss_per_router_mib": round(sum(shim) / len(shim) / 1024, 1) if shim else None,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
