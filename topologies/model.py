"""The topology model every testbed piece shares: routers, links, LANs, addresses.

A :class:`Topology` is plain data. It comes from a YAML file
(:mod:`topologies.loader`), a generator (line, ring, grid, star, random) or a
real network by name (Topology Zoo / SNDlib through ``topohub``), and
:func:`topologies.addressing.assign` fills in every address. The Mininet
network builder (``testbed/``) reads nothing else.

Addressing plan (documented here so that logs and captures are readable):

* router ``i`` (1-based, in declaration order): loopback ``10.255.X.Y/32``
  with ``X.Y`` = ``i`` as 16 bits, which is also its OSPF router id;
* link ``L`` (1-based): ``10.(100 + L // 256).(L % 256).0/24`` with host
  part = the router's number modulo 250 + 1 on each end, and
  ``fd00:100:L::/64`` for IPv6;
* LAN ``N``: ``10.99.N.0/24`` and ``fd00:99:N::/64``;
* the management network (GCKS and GMs, out of band): ``10.250.0.0/16``,
  router ``i`` at ``10.250.X.Y`` and the GCKS at ``10.250.255.254``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Lan", "Link", "Router", "Topology", "TopologyError"]

FLAVORS = ("frr", "bird")


class TopologyError(ValueError):
    """A topology that cannot be built; the message names the bad entry."""


@dataclass
class Router:
    """One router: its name, routing daemon flavor and (after addressing) ids."""

    name: str  # short, used in interface names: "r1", "r2", ... (≤ 6 characters)
    flavor: str = "frr"
    label: str = ""  # a human name, e.g. the city of a Topology Zoo node
    number: int = 0  # 1-based, set by addressing
    loopback: str = ""  # IPv4, also the OSPF router id
    mgmt_address: str = ""  # on the out-of-band management network


@dataclass
class Link:
    """A point-to-point link; ``loss`` in percent, ``rate`` in Mbit/s (None: unlimited)."""

    a: str
    b: str
    loss: float = 0.0
    rate: float | None = None
    cost: int = 10  # OSPF cost, both directions
    number: int = 0  # 1-based, set by addressing
    a_ip: str = ""  # "10.100.1.1/24"
    b_ip: str = ""
    a_ip6: str = ""  # "fd00:100:1::1/64"
    b_ip6: str = ""

    def interface(self, router: str) -> str:
        """The interface name on ``router``'s side, e.g. ``r1-r2`` (≤ 15 characters)."""
        other = self.b if router == self.a else self.a
        name = f"{router}-{other}"
        return name if len(name) <= 15 else f"l{self.number}-{'a' if router == self.a else 'b'}"


@dataclass
class Lan:
    """A LAN segment (a Linux bridge) joining several routers."""

    name: str
    routers: list[str]
    number: int = 0
    addresses: dict[str, str] = field(default_factory=dict)  # router -> "10.99.N.h/24"


@dataclass
class Topology:
    """Routers, links, LANs, and where the GCKS sits."""

    name: str
    routers: list[Router]
    links: list[Link]
    lans: list[Lan] = field(default_factory=list)
    gcks_router: str | None = None  # the router whose LAN the GCKS shares; None = out of band
    rp: str | None = None  # PIM rendezvous point (router name); default: the first router
    description: str = ""

    def router(self, name: str) -> Router:
        """The router called ``name``."""
        for router in self.routers:
            if router.name == name:
                return router
        raise TopologyError(f"no router named {name!r} in topology {self.name!r}")

    def neighbors(self, name: str) -> list[str]:
        """Routers directly linked to ``name``."""
        return [
            link.b if link.a == name else link.a for link in self.links if name in (link.a, link.b)
        ]
