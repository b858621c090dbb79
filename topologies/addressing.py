"""Fill in every number and address of a topology, per the plan in :mod:`topologies.model`.

The plan, with the choices it leaves open made explicit:

* router ``i`` (1-based, declaration order): ``number = i``; loopback
  ``10.255.X.Y`` (``X.Y`` = ``i`` as 16 bits: ``X = i // 256``,
  ``Y = i % 256``), also the OSPF router id, stored *without* a prefix
  length (it is a /32); management address ``10.250.X.Y``, also stored
  without a prefix length (the management network is ``10.250.0.0/16``,
  :data:`MGMT_NETWORK`; the GCKS is :data:`GCKS_MGMT_ADDRESS`);
* link ``L`` (1-based): ``10.(100 + L // 256).(L % 256).0/24`` and
  ``fd00:100:L::/64`` with ``L`` written in decimal digits (link 12 is
  ``fd00:100:12::/64``, so captures read like the IPv4 plan). Each end's
  host part is its router's number folded into 1–250, ``(i - 1) % 250 + 1``:
  router ``r7`` is ``.7`` / ``::7`` on every link while there are at most
  250 routers. If both ends fold to the same host part (routers 1 and 251),
  the ``b`` end takes ``.251``;
* LAN ``N``: ``10.99.N.0/24`` and ``fd00:99:N::/64``, members get the same
  folded host part, and a member that collides takes the next free one of
  251–254, then of 1–250. :attr:`Lan.addresses` holds the IPv4 addresses;
  :func:`lan_address6` gives the IPv6 one.

Addresses carry their prefix length where the model's comments show one
(``a_ip = "10.100.1.1/24"``, LAN addresses) and not where they are router
ids or management hosts.
"""

from __future__ import annotations

import copy

from topologies.model import Lan, Topology, TopologyError
from topologies.validate import validate

__all__ = [
    "GCKS_MGMT_ADDRESS",
    "MGMT_NETWORK",
    "MGMT_PREFIXLEN",
    "assign",
    "host_part",
    "lan_address6",
    "link_networks",
    "loopback_address",
    "mgmt_address",
]

MGMT_NETWORK = "10.250.0.0/16"
MGMT_PREFIXLEN = 16
GCKS_MGMT_ADDRESS = "10.250.255.254"
_SPARE_HOSTS = (251, 252, 253, 254)


def _sixteen_bits(i: int) -> str:
    if not 1 <= i <= 65533:
        raise TopologyError(f"router number {i} is outside the addressing plan (1–65533)")
    return f"{i // 256}.{i % 256}"


def loopback_address(number: int) -> str:
    """Router ``number``'s loopback and OSPF router id, ``10.255.X.Y`` (a /32)."""
    return f"10.255.{_sixteen_bits(number)}"


def mgmt_address(number: int) -> str:
    """Router ``number``'s address on the management network ``10.250.0.0/16``."""
    return f"10.250.{_sixteen_bits(number)}"


def host_part(number: int) -> int:
    """A router's host part on links and LANs: its number folded into 1–250."""
    return (number - 1) % 250 + 1


def link_networks(number: int) -> tuple[str, str]:
    """Link ``number``'s IPv4 /24 and IPv6 /64 prefixes, e.g. ``10.100.1.`` and ``fd00:100:1::``."""
    if not 1 <= number <= 9999:
        raise TopologyError(f"link number {number} is outside the addressing plan (1–9999)")
    return f"10.{100 + number // 256}.{number % 256}.", f"fd00:100:{number}::"


def lan_address6(lan: Lan, router: str) -> str:
    """``router``'s IPv6 address on ``lan`` (``fd00:99:N::h/64``), from its IPv4 host part."""
    try:
        ipv4 = lan.addresses[router]
    except KeyError:
        raise TopologyError(
            f"LAN {lan.name!r} has no address for {router!r} (run addressing.assign)"
        ) from None
    host = ipv4.split("/")[0].rsplit(".", 1)[1]
    return f"fd00:99:{lan.number}::{host}/64"


def _lan_hosts(members: list[tuple[str, int]]) -> dict[str, int]:
    used: set[int] = set()
    hosts: dict[str, int] = {}
    for name, number in members:
        host = host_part(number)
        if host in used:
            spare = [h for h in (*_SPARE_HOSTS, *range(1, 251)) if h not in used]
            host = spare[0]
        used.add(host)
        hosts[name] = host
    return hosts


def assign(topology: Topology) -> Topology:
    """A copy of ``topology`` with every number and address filled in (input unchanged).

    Validates first, so the result is always buildable; raises
    :class:`TopologyError` otherwise.
    """
    validate(topology)
    result = copy.deepcopy(topology)
    numbers: dict[str, int] = {}
    for i, router in enumerate(result.routers, start=1):
        router.number = i
        router.loopback = loopback_address(i)
        router.mgmt_address = mgmt_address(i)
        numbers[router.name] = i
    for number, link in enumerate(result.links, start=1):
        link.number = number
        net4, net6 = link_networks(number)
        host_a = host_part(numbers[link.a])
        host_b = host_part(numbers[link.b])
        if host_b == host_a:
            host_b = _SPARE_HOSTS[0]
        link.a_ip, link.b_ip = f"{net4}{host_a}/24", f"{net4}{host_b}/24"
        link.a_ip6, link.b_ip6 = f"{net6}{host_a}/64", f"{net6}{host_b}/64"
    for number, lan in enumerate(result.lans, start=1):
        lan.number = number
        hosts = _lan_hosts([(name, numbers[name]) for name in lan.routers])
        lan.addresses = {name: f"10.99.{number}.{host}/24" for name, host in hosts.items()}
    return result
