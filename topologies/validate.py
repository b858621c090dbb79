"""Checks that a :class:`~topologies.model.Topology` can be built and addressed.

Every source of topologies (YAML files, generators, Topology Zoo / SNDlib
imports) ends here, so the rules live in one place. A failed check raises
:class:`~topologies.model.TopologyError` whose message starts with the entry
at fault, written as a path into the data: ``links[3].b: no router named
'r9'``. Indices are 0-based and follow declaration order, so they point at
the same entry in a YAML file.

The rules come from how the testbed uses the names and from the addressing
plan in :mod:`topologies.model`:

* router names are 1–6 characters of ``[a-z0-9]`` so that interface names
  ``<router>-<peer>`` stay within Linux's 15 characters (IFNAMSIZ − 1);
* LAN names are 1–8 characters of ``[a-z0-9]`` (``<router>-<lan>`` ≤ 15);
* at most 9999 links (``fd00:100:L::/64`` writes ``L`` in decimal digits),
  255 LANs (``10.99.N.0/24``) and 65533 routers (``10.250.X.Y`` below the
  GCKS's ``10.250.255.254``);
* the graph of links and LANs is connected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from topologies.model import FLAVORS, Topology, TopologyError

__all__ = [
    "LAN_NAME_RE",
    "MAX_LANS",
    "MAX_LAN_SIZE",
    "MAX_LINKS",
    "MAX_ROUTERS",
    "RESERVED_NAMES",
    "ROUTER_NAME_RE",
    "components",
    "validate",
]

ROUTER_NAME_RE = re.compile(r"[a-z0-9]{1,6}")
LAN_NAME_RE = re.compile(r"[a-z0-9]{1,8}")
RESERVED_NAMES = frozenset({"gcks", "oob"})  # the GCKS node and the YAML `gcks: oob` value
MAX_ROUTERS = 65533  # 10.250.X.Y for X.Y = 1 .. 65533; 65534 is the GCKS
MAX_LINKS = 9999  # fd00:100:L::/64 with L as decimal digits in one hextet
MAX_LANS = 255  # 10.99.N.0/24
MAX_LAN_SIZE = 250  # hosts .1 .. .254 leave room for collisions (see addressing)
MAX_COST = 65535  # OSPF interface cost is 16 bits


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def components(topology: Topology) -> list[list[str]]:
    """The connected components (links and LANs both join routers), largest first.

    Each component lists router names in declaration order; components of
    equal size keep the order of their first router.
    """
    adjacency: dict[str, set[str]] = {router.name: set() for router in topology.routers}
    edges: list[tuple[str, str]] = [(link.a, link.b) for link in topology.links]
    for lan in topology.lans:
        edges.extend((lan.routers[0], member) for member in lan.routers[1:])
    for a, b in edges:
        if a in adjacency and b in adjacency:
            adjacency[a].add(b)
            adjacency[b].add(a)
    seen: set[str] = set()
    result: list[list[str]] = []
    for router in topology.routers:
        if router.name in seen:
            continue
        seen.add(router.name)
        members = {router.name}
        stack = [router.name]
        while stack:
            for peer in adjacency[stack.pop()]:
                if peer not in seen:
                    seen.add(peer)
                    members.add(peer)
                    stack.append(peer)
        result.append([r.name for r in topology.routers if r.name in members])
    result.sort(key=len, reverse=True)  # stable: ties keep declaration order
    return result


def _names(names: Iterable[str], limit: int = 8) -> str:
    listed = list(names)
    text = ", ".join(listed[:limit])
    return text + (f", … ({len(listed) - limit} more)" if len(listed) > limit else "")


def _check_routers(topology: Topology) -> None:
    if not topology.routers:
        raise TopologyError("routers: a topology needs at least one router")
    if len(topology.routers) > MAX_ROUTERS:
        raise TopologyError(
            f"routers: {len(topology.routers)} routers, the addressing plan allows {MAX_ROUTERS}"
        )
    first: dict[str, int] = {}
    for i, router in enumerate(topology.routers):
        where = f"routers[{i}]"
        name = router.name
        if not isinstance(name, str) or not ROUTER_NAME_RE.fullmatch(name):
            raise TopologyError(
                f"{where}.name: {name!r} is not 1–6 characters of [a-z0-9] "
                "(interface names <router>-<peer> must fit in 15 characters)"
            )
        if name in RESERVED_NAMES:
            raise TopologyError(f"{where}.name: {name!r} is reserved")
        if name in first:
            raise TopologyError(f"{where}.name: {name!r} duplicates routers[{first[name]}]")
        first[name] = i
        if router.flavor not in FLAVORS:
            raise TopologyError(
                f"{where}.flavor: {router.flavor!r} is not one of {', '.join(FLAVORS)}"
            )
        if not isinstance(router.label, str):
            raise TopologyError(f"{where}.label: expected text, got {router.label!r}")


def _check_links(topology: Topology, routers: set[str]) -> None:
    if len(topology.links) > MAX_LINKS:
        raise TopologyError(
            f"links: {len(topology.links)} links, the addressing plan allows {MAX_LINKS}"
        )
    pairs: dict[frozenset[str], int] = {}
    for i, link in enumerate(topology.links):
        where = f"links[{i}]"
        for end in ("a", "b"):
            name = getattr(link, end)
            if name not in routers:
                raise TopologyError(f"{where}.{end}: no router named {name!r}")
        if link.a == link.b:
            raise TopologyError(f"{where}: links {link.a!r} to itself")
        pair = frozenset((link.a, link.b))
        if pair in pairs:
            raise TopologyError(
                f"{where}: duplicates links[{pairs[pair]}] ({link.a}–{link.b}); "
                "one link per pair of routers"
            )
        pairs[pair] = i
        if not _is_number(link.loss) or not 0 <= link.loss <= 100:
            raise TopologyError(f"{where}.loss: {link.loss!r} is outside 0–100 %")
        if link.rate is not None and (not _is_number(link.rate) or link.rate <= 0):
            raise TopologyError(
                f"{where}.rate: {link.rate!r} is not a rate > 0 Mbit/s (leave it out: unlimited)"
            )
        if not isinstance(link.cost, int) or isinstance(link.cost, bool):
            raise TopologyError(f"{where}.cost: {link.cost!r} is not an integer")
        if not 1 <= link.cost <= MAX_COST:
            raise TopologyError(f"{where}.cost: {link.cost} is outside 1–{MAX_COST}")


def _check_lans(topology: Topology, routers: set[str]) -> None:
    if len(topology.lans) > MAX_LANS:
        raise TopologyError(
            f"lans: {len(topology.lans)} LANs, the addressing plan allows {MAX_LANS}"
        )
    first: dict[str, int] = {}
    for i, lan in enumerate(topology.lans):
        where = f"lans[{i}]"
        if not isinstance(lan.name, str) or not LAN_NAME_RE.fullmatch(lan.name):
            raise TopologyError(f"{where}.name: {lan.name!r} is not 1–8 characters of [a-z0-9]")
        if lan.name in RESERVED_NAMES or lan.name in routers:
            raise TopologyError(f"{where}.name: {lan.name!r} is reserved or already names a router")
        if lan.name in first:
            raise TopologyError(f"{where}.name: {lan.name!r} duplicates lans[{first[lan.name]}]")
        first[lan.name] = i
        if len(lan.routers) < 2:
            raise TopologyError(f"{where}.routers: a LAN needs at least 2 routers")
        if len(lan.routers) > MAX_LAN_SIZE:
            raise TopologyError(
                f"{where}.routers: {len(lan.routers)} routers, at most {MAX_LAN_SIZE}"
            )
        members: set[str] = set()
        for j, name in enumerate(lan.routers):
            if name not in routers:
                raise TopologyError(f"{where}.routers[{j}]: no router named {name!r}")
            if name in members:
                raise TopologyError(f"{where}.routers[{j}]: {name!r} is listed twice")
            members.add(name)


def validate(topology: Topology) -> None:
    """Raise :class:`TopologyError` naming the first entry that cannot be built.

    Checks router and LAN names, link ends, self-links, duplicate links, link
    loss (0–100 %), rate (> 0 Mbit/s) and cost (1–65535), LAN members, the
    GCKS router and the PIM RP, the addressing plan's limits and that the
    network is connected.
    """
    _check_routers(topology)
    routers = {router.name for router in topology.routers}
    _check_links(topology, routers)
    _check_lans(topology, routers)
    if topology.gcks_router is not None and topology.gcks_router not in routers:
        raise TopologyError(f"gcks: no router named {topology.gcks_router!r}")
    if topology.rp is not None and topology.rp not in routers:
        raise TopologyError(f"rp: no router named {topology.rp!r}")
    parts = components(topology)
    if len(parts) > 1:
        rest = [name for part in parts[1:] for name in part]
        raise TopologyError(
            f"links: the network is disconnected ({len(parts)} parts): "
            f"{_names(rest)} cannot reach {parts[0][0]}; add links or LANs between them"
        )
