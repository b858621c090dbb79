"""Timeline actions on a running network: rekeys, impairments, failures and churn.

:class:`Player` turns one scenario :class:`~testbed.scenario.Action` into
commands inside the routers' namespaces and records every fault as a
``fault`` event (:func:`testbed.bundle.fault`) with its start, its end and
the routers it touched, so the timeline plot can shade it and the metrics
can tell a fault's flaps from unexplained ones.

Actions (the fields each one takes; ``ACTIONS`` in :mod:`testbed.scenario`
checks them before anything runs):

===================  =======================================================
``rekey``            ``group``: one GSA_REKEY now; the timeline goes on at
                     once (convergence is measured from the logs)
``link-down/-up``    ``link: [a, b]``: both ends down (carrier lost) / up
``loss``             ``link`` (or ``all``), ``percent``, optional ``from: a``
                     for one direction: iptables ``statistic`` drops of
                     everything leaving that end (OUTPUT and FORWARD), 0
                     removes it
``access-loss``      ``percent``, optional ``routers`` (default all): drops
                     on each router's GM interface only, i.e. on its access
                     to the rekey tree; OSPF and PIM are untouched
``rate``             ``link``, ``kbit``, optional ``from``: tbf on the
                     egress; 0 removes it
``partition``        ``routers``: every link between them and the rest goes
                     down; ``mgmt: true`` also cuts their management link
                     (no registration, no repair); ``heal`` undoes it
``kill-/start-/``    ``router``: that router's GM (``start-gm`` after
``restart-gm``       ``kill-gm`` is a join with a fresh registration)
``kill-/start-/``    the GCKS; ``start``/``restart`` keep its signing key and
``restart-gcks``     state (``gcks-state.json``), so members stay registered
``kill-/start-/``    ``router``, ``daemon`` (``ospfd``, ``ospf6d``, ``pimd``,
``restart-daemon``   ``zebra``, ``bird``): one routing daemon, by PID
``evict``            ``router``, ``group``: the GCKS evicts the member; its
                     router must lose its adjacencies once the keys roll
``attack``           ``kind`` (one of :data:`testbed.attacks.KINDS`), optional
                     ``router`` (where the attacker plugs into the rekey
                     tree, or whose GM restarts), ``group`` and per-kind
                     ``packets``/``rate``/``size``/``identity``: crafted
                     packets from an attacker namespace
                     (:mod:`testbed.attacks`); recorded as an ``attack``
                     event with what was sent and what the daemons counted
===================  =======================================================

Attacks never explain a flap (:func:`testbed.verdicts.explained`): what they
do legitimately on the way (the GM restart of a registration flood, the
eviction before an evicted member's retry) is recorded as its own fault.
At :meth:`Player.finish` an ``attack_check`` record adds, from every event
log, the rejections each daemon counted by reason and every key a GM
installed without a legitimate registration or rekey
(:func:`testbed.verdicts.unauthorized_key_changes`).

The kernel has no netem, so there is no delay or jitter action.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from testbed.bundle import fault
from testbed.scenario import Action, ScenarioError
from testbed.verdicts import daemon_rejections, unauthorized_key_changes
from topologies.model import Topology

__all__ = ["GM_INTERFACE", "Player"]

GM_INTERFACE = "gm0"  # testbed.network.GM_INTERFACE; repeated to keep this module light
MGMT_INTERFACE = "mgmt"


class _Net(Protocol):
    """What the player needs of :class:`testbed.network.Network`."""

    topology: Topology
    gms: dict[str, Any]
    routers: dict[str, Any]
    gcks: Any

    def run(self, node: str, *argv: str, stdin: str | None = None) -> str: ...


def _link_ends(topology: Topology, pair: Sequence[str]) -> list[tuple[str, str]]:
    """(router, interface) for both ends of the link between ``pair``."""
    a, b = (str(x) for x in pair)
    for link in topology.links:
        if {link.a, link.b} == {a, b}:
            return [(a, link.interface(a)), (b, link.interface(b))]
    raise ScenarioError(f"no link between {a} and {b} in topology {topology.name}")


def _one_way(ends: list[tuple[str, str]], source: Any) -> list[tuple[str, str]]:
    """Both ends, or only the end named by ``from``."""
    if source is None:
        return ends
    picked = [e for e in ends if e[0] == str(source)]
    if not picked:
        names = " or ".join(r for r, _ in ends)
        raise ScenarioError(f"from: {source!r} is not an end of this link ({names})")
    return picked


class Player:
    """Plays timeline actions on a running network and records faults."""

    def __init__(self, net: _Net, clock: Callable[[], float] = time.time) -> None:
        self.net = net
        self.clock = clock
        self.faults: list[dict[str, Any]] = []
        self.rekeys: list[dict[str, Any]] = []
        self._open: dict[tuple[str, ...], dict[str, Any]] = {}
        self._rules: dict[tuple[str, ...], list[tuple[str, list[str]]]] = {}
        self._partitions: dict[str, list[tuple[str, str]]] = {}
        self._attacker: Any = None  # testbed.attacks.Attacker, made by the first attack

    def play(self, action: Action) -> str:
        """Run one action; a one-line description of what happened."""
        handler = getattr(self, "_" + action.do.replace("-", "_"), None)
        if handler is None:
            raise ScenarioError(f"action {action.do!r} has no player")
        return str(handler(action.args))

    # -- faults bookkeeping ----------------------------------------------------------------

    def _begin(
        self, key: tuple[str, ...], kind: str, targets: Sequence[str], **detail: Any
    ) -> None:
        self._close(key)
        self._open[key] = fault(kind, self.clock(), None, list(targets), **detail)

    def _close(self, key: tuple[str, ...]) -> None:
        record = self._open.pop(key, None)
        if record is not None:
            record["until"] = round(self.clock(), 6)
            self.faults.append(record)

    def _instant(self, kind: str, start: float, targets: Sequence[str], **detail: Any) -> None:
        self.faults.append(fault(kind, start, self.clock(), list(targets), **detail))

    def finish(self) -> list[dict[str, Any]]:
        """Close every open fault at the run's end; every fault, in order.

        After attacks it also removes the attacker and adds the ``attack_check``
        record (module doc), read from the event logs the daemons left.
        """
        for key in list(self._open):
            self._close(key)
        if self._attacker is not None:
            self._attacker.close()
            self.faults.append(self._attack_check())
            self._attacker = None
        return sorted(self.faults, key=lambda f: f["t"])

    def _attack_check(self) -> dict[str, Any]:
        gcks = self.net.gcks.events() if self.net.gcks is not None else []
        gms = {router: gm.events() for router, gm in self.net.gms.items()}
        changes = unauthorized_key_changes(gcks, gms)
        now = self.clock()
        return fault(
            "attack_check",
            now,
            now,
            [],
            keys_changed=len(changes),
            changes=changes[:20],
            daemon_rejections=daemon_rejections(gcks, gms),
            gcks_counters=dict(self._attacker.gcks_counters),
        )

    # -- MRKM ------------------------------------------------------------------------------

    def _rekey(self, args: dict[str, Any]) -> str:
        sent = self.net.gcks.rekey(str(args["group"]))
        self.rekeys.append(sent)
        return f"rekey of {args['group']} sent (Message ID {sent.get('message_id')})"

    def _evict(self, args: dict[str, Any]) -> str:
        router, group = str(args["router"]), str(args["group"])
        gm = self._gm(router)
        self.net.gcks.control({"cmd": "evict", "group": group, "member": gm.identity})
        # open until the run ends: the router is cut off from the next key roll on
        self._begin(("evict", router, group), "evict", [router], group=group)
        return f"{gm.identity} evicted from {group}"

    def _attack(self, args: dict[str, Any]) -> str:
        """One attack from the attacker namespace (:mod:`testbed.attacks`)."""
        from testbed.attacks import Attacker  # scapy and crypto: only for attack scenarios

        if self._attacker is None:
            self._attacker = Attacker(self.net, self._legit_rekey, clock=self.clock)
        kind, start = str(args["kind"]), self.clock()
        router = str(args.get("router", ""))
        if kind == "evicted-member":
            group = str(args.get("group") or "")
            if not router or not group:
                raise ScenarioError("attack evicted-member: needs router and group")
            self._evict({"router": router, "group": group})
            record = self._attacker.evicted_member(router, group, start)
        else:
            try:
                record = self._attacker.run(kind, args)
            except ValueError as exc:
                raise ScenarioError(f"attack {kind}: {exc}") from None
        if kind == "registration-flood":
            restart = float(record.get("restart_t", start))
            self.faults.append(fault("gm_restart", restart, restart, [record["router"]]))
        targets = [record["router"]] if record.get("router") else []
        self.faults.append(fault("attack", start, self.clock(), targets, **record))
        counted = sum(record.get("rejected", {}).values())
        return f"attack {kind}: {record.get('sent')} sent, {counted} counted as rejected"

    def _legit_rekey(self, group: str) -> dict[str, Any]:
        """A timeline-style rekey the attacker asks for (to capture or supersede one)."""
        sent = dict(self.net.gcks.rekey(group))
        self.rekeys.append(sent)
        return sent

    def _gm(self, router: str) -> Any:
        gm = self.net.gms.get(router)
        if gm is None:
            raise ScenarioError(f"router: no GM on {router!r}; known: {', '.join(self.net.gms)}")
        return gm

    def _kill_gm(self, args: dict[str, Any]) -> str:
        router = str(args["router"])
        self._gm(router).stop()
        self._begin(("gm", router), "gm_down", [router])
        return f"GM of {router} stopped"

    def _start_gm(self, args: dict[str, Any]) -> str:
        router = str(args["router"])
        self._gm(router).start()
        self._close(("gm", router))
        return f"GM of {router} started"

    def _restart_gm(self, args: dict[str, Any]) -> str:
        router, start = str(args["router"]), self.clock()
        gm = self._gm(router)
        gm.stop()
        gm.start()
        self._instant("gm_restart", start, [router])
        return f"GM of {router} restarted"

    def _kill_gcks(self, args: dict[str, Any]) -> str:
        self.net.gcks.stop()
        self._begin(("gcks",), "gcks_down", [])
        return "GCKS stopped"

    def _start_gcks(self, args: dict[str, Any]) -> str:
        self.net.gcks.restart()
        self._close(("gcks",))
        return "GCKS started from its saved state"

    def _restart_gcks(self, args: dict[str, Any]) -> str:
        start = self.clock()
        self.net.gcks.stop()
        self.net.gcks.restart()
        self._instant("gcks_restart", start, [])
        return "GCKS restarted from its saved state"

    # -- routing daemons -------------------------------------------------------------------

    def _router(self, name: str) -> Any:
        router = self.net.routers.get(name)
        if router is None:
            raise ScenarioError(f"router: unknown {name!r}; known: {', '.join(self.net.routers)}")
        return router

    def _kill_daemon(self, args: dict[str, Any]) -> str:
        name, daemon = str(args["router"]), str(args["daemon"])
        self._router(name).stop_daemon(daemon)
        self._begin(("daemon", name, daemon), "daemon_down", [name], daemon=daemon)
        return f"{daemon} on {name} stopped"

    def _start_daemon(self, args: dict[str, Any]) -> str:
        name, daemon = str(args["router"]), str(args["daemon"])
        self._router(name).start_daemon(daemon)
        self._close(("daemon", name, daemon))
        return f"{daemon} on {name} started"

    def _restart_daemon(self, args: dict[str, Any]) -> str:
        name, daemon = str(args["router"]), str(args["daemon"])
        start, router = self.clock(), self._router(name)
        router.stop_daemon(daemon)
        router.start_daemon(daemon)
        self._instant("daemon_restart", start, [name], daemon=daemon)
        return f"{daemon} on {name} restarted"

    # -- links -----------------------------------------------------------------------------

    def _set(self, ends: Sequence[tuple[str, str]], state: str) -> None:
        for router, ifname in ends:
            self.net.run(router, "ip", "link", "set", ifname, state)

    def _link_down(self, args: dict[str, Any]) -> str:
        ends = _link_ends(self.net.topology, args["link"])
        self._set(ends, "down")
        self._begin(("link", *sorted(args["link"])), "link_down", [r for r, _ in ends])
        return f"link {'-'.join(args['link'])} down"

    def _link_up(self, args: dict[str, Any]) -> str:
        self._set(_link_ends(self.net.topology, args["link"]), "up")
        self._close(("link", *sorted(args["link"])))
        return f"link {'-'.join(args['link'])} up"

    def _partition(self, args: dict[str, Any]) -> str:
        inside = {str(r) for r in args["routers"]}
        unknown = sorted(inside - set(self.net.routers))
        if unknown:
            raise ScenarioError(f"routers: unknown {', '.join(unknown)}")
        cut = [
            end
            for link in self.net.topology.links
            if (link.a in inside) != (link.b in inside)
            for end in ((link.a, link.interface(link.a)), (link.b, link.interface(link.b)))
        ]
        if args.get("mgmt"):
            cut += [(r, MGMT_INTERFACE) for r in sorted(inside)]
        self._set(cut, "down")
        name = str(args.get("name", "partition"))
        self._partitions[name] = cut
        self._begin(("partition", name), "partition", sorted(inside), links=len(cut) // 2)
        return f"partition {name}: {len(inside)} routers cut off ({len(cut)} interfaces down)"

    def _heal(self, args: dict[str, Any]) -> str:
        name = str(args.get("name", "partition"))
        cut = self._partitions.pop(name, None)
        if cut is None:
            raise ScenarioError(f"heal: no open partition named {name!r}")
        self._set(cut, "up")
        self._close(("partition", name))
        return f"partition {name} healed"

    # -- impairments -----------------------------------------------------------------------

    def _drops(
        self,
        key: tuple[str, ...],
        ends: Sequence[tuple[str, str]],
        percent: float,
        chains: Sequence[str],
    ) -> None:
        """Replace the drop rules under ``key`` by ``percent`` % on ``ends``' egress."""
        for router, rule in self._rules.pop(key, []):
            self.net.run(router, "iptables", "-D", *rule)
        if percent <= 0:
            return
        rules = []
        for router, ifname in ends:
            for chain in chains:
                rule = [chain, "-o", ifname, "-m", "statistic", "--mode", "random",
                        "--probability", f"{percent / 100:.4f}", "-j", "DROP"]  # fmt: skip
                self.net.run(router, "iptables", "-A", *rule)
                rules.append((router, rule))
        self._rules[key] = rules

    def _loss(self, args: dict[str, Any]) -> str:
        """Random loss on a link's egress (both ends, or ``from``'s): locally made packets
        (OSPF, PIM) in OUTPUT and forwarded ones (rekeys) in FORWARD."""
        percent = float(args["percent"])
        if args["link"] == "all":
            ends = [
                (router, link.interface(router))
                for link in self.net.topology.links
                for router in (link.a, link.b)
            ]
            key: tuple[str, ...] = ("loss", "all")
        else:
            ends = _one_way(_link_ends(self.net.topology, args["link"]), args.get("from"))
            key = ("loss", *sorted(args["link"]), str(args.get("from", "")))
        self._drops(key, ends, percent, ("OUTPUT", "FORWARD"))
        self._close(key)
        if percent > 0:
            self._begin(key, "loss", [r for r, _ in ends], percent=percent)
        way = f" from {args['from']}" if args.get("from") else ""
        where = "every link" if args["link"] == "all" else "-".join(args["link"])
        return f"loss {percent:g} % on {where}{way}"

    def _access_loss(self, args: dict[str, Any]) -> str:
        """Loss between each router and its GM only: multicast forwarded out ``gm0``."""
        percent = float(args["percent"])
        routers = args.get("routers", "all")
        names = list(self.net.routers) if routers == "all" else [str(r) for r in routers]
        for name in names:
            self._router(name)
        key = ("access-loss",)
        self._drops(key, [(r, GM_INTERFACE) for r in names], percent, ("FORWARD",))
        self._close(key)
        if percent > 0:
            self._begin(key, "access_loss", names, percent=percent)
        return f"loss {percent:g} % on the rekey access of {len(names)} routers"

    def _rate(self, args: dict[str, Any]) -> str:
        kbit = float(args["kbit"])
        ends = _one_way(_link_ends(self.net.topology, args["link"]), args.get("from"))
        key = ("rate", *sorted(args["link"]), str(args.get("from", "")))
        for router, ifname in ends:
            if kbit > 0:
                tbf = ["tbf", "rate", f"{kbit:g}kbit", "burst", "16kbit", "latency", "100ms"]
                self.net.run(router, "tc", "qdisc", "replace", "dev", ifname, "root", *tbf)
            else:
                self.net.run(router, "tc", "qdisc", "del", "dev", ifname, "root")
        self._close(key)
        if kbit > 0:
            self._begin(key, "rate", [r for r, _ in ends], kbit=kbit)
        return f"rate {kbit:g} kbit/s on {'-'.join(args['link'])}" if kbit else "rate limit removed"
