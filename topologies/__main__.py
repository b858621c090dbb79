"""``python -m topologies``: list the known topologies or show one, addressed.

Examples::

    python -m topologies --list
    python -m topologies geant            # summary, routers, links, LANs
    python -m topologies random50-s7 --brief
    python -m topologies baseline --json  # the addressed model as JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import textwrap
from collections import deque

from topologies import zoo
from topologies.addressing import GCKS_MGMT_ADDRESS, MGMT_NETWORK, lan_address6
from topologies.model import Topology, TopologyError
from topologies.registry import PATTERNS, get_topology, yaml_names

__all__ = ["main", "summary"]


def _adjacency(topology: Topology) -> dict[str, set[str]]:
    adjacency: dict[str, set[str]] = {r.name: set() for r in topology.routers}
    for link in topology.links:
        adjacency[link.a].add(link.b)
        adjacency[link.b].add(link.a)
    for lan in topology.lans:
        for member in lan.routers:
            adjacency[member].update(m for m in lan.routers if m != member)
    return adjacency


def _diameter(adjacency: dict[str, set[str]]) -> int:
    longest = 0
    for start in adjacency:
        hops = {start: 0}
        queue = deque([start])
        while queue:
            here = queue.popleft()
            for peer in adjacency[here]:
                if peer not in hops:
                    hops[peer] = hops[here] + 1
                    queue.append(peer)
        longest = max(longest, *hops.values())
    return longest


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def summary(topology: Topology, *, brief: bool = False) -> str:
    """A readable description of an addressed topology: counts, degrees, then tables."""
    adjacency = _adjacency(topology)
    interfaces = {r.name: 0 for r in topology.routers}
    for link in topology.links:
        interfaces[link.a] += 1
        interfaces[link.b] += 1
    for lan in topology.lans:
        for member in lan.routers:
            interfaces[member] += 1
    degrees = [len(peers) for peers in adjacency.values()]
    flavors = sorted({r.flavor for r in topology.routers})
    counts = ", ".join(f"{sum(r.flavor == f for r in topology.routers)} {f}" for f in flavors)
    gcks = (
        f"out of band on {MGMT_NETWORK} at {GCKS_MGMT_ADDRESS}"
        if topology.gcks_router is None
        else f"on router {topology.gcks_router}'s LAN"
    )
    rp = topology.rp or f"{topology.routers[0].name} (default: first router)"
    lines = [
        f"topology {topology.name}" + (f": {topology.description}" if topology.description else ""),
        f"  routers    {len(topology.routers)} ({counts})",
        f"  links      {len(topology.links)} point-to-point",
        f"  LANs       {len(topology.lans)}",
        f"  neighbors  min {min(degrees)}, mean {statistics.fmean(degrees):.2f}, "
        f"median {statistics.median(degrees):g}, max {max(degrees)}",
        f"  diameter   {_diameter(adjacency)} hops",
        f"  GCKS       {gcks}",
        f"  PIM RP     {rp}",
    ]
    if brief:
        return "\n".join(lines)
    lines += ["", "routers:"]
    lines += _table(
        ("name", "#", "flavor", "loopback", "mgmt", "ifaces", "label"),
        [
            (
                r.name,
                str(r.number),
                r.flavor,
                r.loopback,
                r.mgmt_address,
                str(interfaces[r.name]),
                r.label,
            )
            for r in topology.routers
        ],
    )
    if topology.links:
        lines += ["", "links:"]
        lines += _table(
            (
                "#",
                "a iface",
                "b iface",
                "a address",
                "b address",
                "a IPv6",
                "b IPv6",
                "cost",
                "loss",
                "rate",
            ),
            [
                (
                    str(link.number),
                    link.interface(link.a),
                    link.interface(link.b),
                    link.a_ip,
                    link.b_ip,
                    link.a_ip6,
                    link.b_ip6,
                    str(link.cost),
                    f"{link.loss:g} %",
                    "-" if link.rate is None else f"{link.rate:g} Mbit/s",
                )
                for link in topology.links
            ],
        )
    for lan in topology.lans:
        lines += ["", f"LAN {lan.name} (#{lan.number}):"]
        lines += _table(
            ("router", "address", "IPv6"),
            [(m, lan.addresses[m], lan_address6(lan, m)) for m in lan.routers],
        )
    return "\n".join(lines)


def _listing() -> str:
    def wrapped(words: list[str]) -> str:
        return textwrap.fill(
            ", ".join(words), width=96, initial_indent="  ", subsequent_indent="  "
        )

    groups = sorted({key.split("/")[0] for key in zoo.topohub_keys()})
    return "\n".join(
        [
            "YAML files in topologies/:",
            wrapped(list(yaml_names())),
            "generators:",
            wrapped(list(PATTERNS)),
            f"Topology Zoo and SNDlib networks ({len(zoo.zoo_names())}):",
            wrapped(list(zoo.zoo_names())),
            f"any topohub key group/name ({len(zoo.topohub_keys())} in {', '.join(groups)}),",
            "  e.g. topozoo/abilene, sndlib/polska, gabriel/25/0, backbone/europe",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m topologies",
        description="Show a topology (routers, links, addresses, degree statistics) by name.",
        epilog="Names: YAML files in topologies/ by stem, line<N>, ring<N>, grid<R>x<C>, "
        "star<N>, random<N>-s<seed>, Topology Zoo / SNDlib names (geant, abilene, "
        "nobel-eu, ...), or a path to a .yaml file.",
    )
    parser.add_argument("name", nargs="?", help="topology name or YAML path")
    parser.add_argument("--list", action="store_true", help="list the known names")
    parser.add_argument("--brief", action="store_true", help="the summary only, no tables")
    parser.add_argument("--json", action="store_true", help="print the addressed model as JSON")
    args = parser.parse_args(argv)
    if args.list:
        print(_listing())
        return 0
    if args.name is None:
        parser.print_usage(sys.stderr)
        print("python -m topologies: give a topology name, or --list", file=sys.stderr)
        return 2
    try:
        topology = get_topology(args.name)
    except TopologyError as err:
        print(f"python -m topologies: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(dataclasses.asdict(topology), indent=2))
    else:
        print(summary(topology, brief=args.brief))
    return 0


if __name__ == "__main__":
    sys.exit(main())
