"""Real networks by name: Internet Topology Zoo and SNDlib, through ``topohub``.

``topohub`` (PyPI, MIT, pinned in requirements.txt) ships its graphs inside
the wheel as NetworkX node-link JSON under ``topohub/data/``:
``topozoo/`` (203 Topology Zoo networks), ``sndlib/`` (26 SNDlib networks),
``gabriel/`` (synthetic), ``backbone/`` (continental backbones) and
``caida/`` (AS graphs). :func:`topohub.get` reads those files; nothing here
touches the network (topohub's ``providers`` modules, which download and
regenerate the data, are never imported).

Names (case-insensitive):

* an SNDlib name: ``abilene``, ``geant``, ``nobel-eu``, ``germany50``, ...;
* a Topology Zoo name: ``aarnet``, ``geant2012``, ``uninett2011``, ... (the
  only clash, ``abilene``, goes to SNDlib; the Zoo's is ``topozoo/abilene``);
* any topohub key ``group/name``: ``topozoo/Abilene``, ``sndlib/polska``,
  ``gabriel/25/0``, ``backbone/europe``.

Conversion: nodes become routers ``r1`` … ``rN`` in the file's node order,
``label`` = the node's real name; self-loops and duplicate edges are dropped
and only the largest connected component is kept (the description says what
was dropped). Link costs are uniform (10) unless ``costs="distance"``
(cost = the edge's length in km, rounded, 1–65535).
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from typing import Any, Literal

from topologies.model import Link, Router, Topology, TopologyError
from topologies.validate import MAX_COST, components, validate

__all__ = ["from_node_link", "topohub_key", "topohub_keys", "zoo_names", "zoo_topology"]

_BARE_GROUPS = ("sndlib", "topozoo")  # earlier wins when a bare name clashes


@functools.cache
def topohub_keys() -> dict[str, str]:
    """Every topology topohub ships, as ``lowercase key -> key`` (``topozoo/abilene -> ...``)."""
    root = importlib.resources.files("topohub") / "data"
    keys: dict[str, str] = {}
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                stack.append((entry, f"{prefix}{entry.name}/"))
            elif entry.name.endswith(".json"):
                key = f"{prefix}{entry.name[: -len('.json')]}"
                keys[key.lower()] = key
    return dict(sorted(keys.items()))


@functools.cache
def zoo_names() -> dict[str, str]:
    """Registry names of the Topology Zoo and SNDlib networks: ``name -> topohub key``."""
    names: dict[str, str] = {}
    for group in _BARE_GROUPS:
        for lowered, key in topohub_keys().items():
            head, _, tail = lowered.partition("/")
            if head == group and "/" not in tail:
                names.setdefault(tail, key)
    return dict(sorted(names.items()))


def topohub_key(name: str) -> str | None:
    """The topohub key for a registry name (case-insensitive), or None if there is none."""
    lowered = name.lower()
    if lowered in zoo_names():
        return zoo_names()[lowered]
    return topohub_keys().get(lowered)


def _cost(edge: Mapping[str, Any], costs: str) -> int:
    if costs == "uniform":
        return 10
    dist = edge.get("dist")
    if isinstance(dist, bool) or not isinstance(dist, int | float):
        return 10
    return max(1, min(MAX_COST, round(dist)))


def from_node_link(
    data: Mapping[str, Any],
    name: str,
    *,
    source: str = "",
    costs: Literal["uniform", "distance"] = "uniform",
) -> Topology:
    """Convert a NetworkX node-link dict (topohub's format) into a validated topology.

    Keeps the largest connected component, drops self-loops and duplicate
    edges, names routers ``r1`` … ``rN`` in node order with ``label`` = the
    node's ``name`` (or its id).
    """
    nodes = data.get("nodes")
    edges = data.get("edges", data.get("links"))
    if not isinstance(nodes, list) or not isinstance(edges, list) or not nodes:
        raise TopologyError(f"{source or name}: not a node-link graph with nodes and edges")
    ids = [node["id"] for node in nodes]
    labels = {node["id"]: str(node.get("name") or node["id"]) for node in nodes}
    router_of = {node_id: f"r{i}" for i, node_id in enumerate(ids, start=1)}
    seen: set[frozenset[str]] = set()
    links: list[Link] = []
    self_loops = duplicates = 0
    for edge in edges:
        a, b = router_of[edge["source"]], router_of[edge["target"]]
        if a == b:
            self_loops += 1
            continue
        pair = frozenset((a, b))
        if pair in seen:
            duplicates += 1
            continue
        seen.add(pair)
        links.append(Link(a=a, b=b, cost=_cost(edge, costs)))
    whole = Topology(
        name=name,
        routers=[Router(name=router_of[i], label=labels[i]) for i in ids],
        links=links,
    )
    kept = components(whole)[0]
    old_to_new = {old: f"r{i}" for i, old in enumerate(kept, start=1)}
    routers = [
        Router(name=old_to_new[r.name], label=r.label)
        for r in whole.routers
        if r.name in old_to_new
    ]
    links = [
        Link(a=old_to_new[link.a], b=old_to_new[link.b], cost=link.cost)
        for link in links
        if link.a in old_to_new
    ]
    dropped = [
        f"{count} {what}"
        for count, what in (
            (len(ids) - len(kept), "nodes outside the largest connected component"),
            (self_loops, "self-loops"),
            (duplicates, "duplicate edges"),
        )
        if count
    ]
    description = f"{source or name}: {len(routers)} routers, {len(links)} links"
    if dropped:
        description += f" (dropped {', '.join(dropped)})"
    topology = Topology(name=name, routers=routers, links=links, description=description)
    validate(topology)
    return topology


def zoo_topology(name: str, *, costs: Literal["uniform", "distance"] = "uniform") -> Topology:
    """The Topology Zoo / SNDlib / topohub network ``name`` (see the module docstring).

    Raises :class:`TopologyError` for an unknown name. The topology's name is
    the lowercased request with ``/`` replaced by ``-`` (``topozoo-abilene``).
    """
    key = topohub_key(name)
    if key is None:
        raise TopologyError(f"no Topology Zoo / SNDlib network named {name!r}")
    import topohub  # type: ignore[import-untyped]  # no type hints; imported on use only

    data = topohub.get(key)
    label = f"topohub {getattr(topohub, '__version__', '?')} {key}"
    return from_node_link(data, name.lower().replace("/", "-"), source=label, costs=costs)
