"""FRR 8.4.4 configuration of one testbed router, from its plan.

A :class:`RouterPlan` (name, router id, RP, :class:`Port` list, timers) is
everything a router's configuration is made from; :mod:`testbed.network`
builds one per topology router and :mod:`testbed.router` writes the files.
The writers are pure functions of the plan (and the random lock keys), so
the unit tests read their output without starting a daemon.

What the files say:

* **ospfd** — OSPFv2 area 0 on every router link (point-to-point) and LAN
  (broadcast, DR election): hello 1 s,
  dead 4 s, retransmit 1 s, and the fast SPF/LSA timers of §1.6.
  ``ip ospf authentication message-digest`` with only a random **lock key**
  (Key ID :data:`~mrkm.sinks.frr_commands.LOCK_KEY_ID`): ospfd 8.4 with an
  empty key list falls back to AuType 0, so without the lock it would talk
  to anyone. Nobody holds the lock, so no adjacency forms until MRKM's
  ``frr`` sink installs a group key. ``lo``, the GM interface and the GCKS
  LAN are passive.
* **ospf6d** — OSPFv3 on the same links, with the RFC 7166 trailer from key
  chain ``mrkm``, which holds only a random lock key at index
  :data:`~mrkm.sinks.frr_commands.LOCK_CHAIN_INDEX` (without any valid key
  ospf6d sends the AT-bit but no trailer).
* **pimd** — PIM-SM with a static RP (``ip pim rp <rp loopback>
  224.0.0.0/4``), ``ip pim`` on every link and on ``lo``; the GM interface
  (an empty bridge) gets ``ip pim passive`` + ``ip igmp`` and the GCKS LAN
  ``ip pim`` + ``ip igmp`` (``reference/pim-local-and-tshark.md`` §3).
  PIM has no authentication in FRR 8.4: MRKM protects it with AH in
  userspace (the shim of :mod:`testbed.router`); without that, neighbors form at once. Joins
  are refreshed every 10 s and the GM bridge's IGMP max response time is
  1 s, so that the rekey tree returns within seconds after a pimd restart
  (FRR 8.4 sends no triggered join on a neighbor's new GenID). With the
  shim, links say ``ip pim hello 1 4`` (:attr:`RouterPlan.pim_hello`,
  ``pim_hold``), so a neighbor lost to a missing or wrong key shows within
  4 s, not 105 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mrkm.sinks.frr_commands import LOCK_CHAIN_INDEX, LOCK_KEY_ID

__all__ = [
    "BFD_PROFILE",
    "JOIN_PRUNE_INTERVAL",
    "KEYCHAIN",
    "Port",
    "RouterPlan",
    "bfdd_config",
    "ospf6d_config",
    "ospfd_config",
    "pimd_config",
    "zebra_config",
]

BFD_PROFILE = "mrkm"
KEYCHAIN = "mrkm"
JOIN_PRUNE_INTERVAL = 10  # s, pimd's periodic (*,G) joins (see pimd_config)


# -- the plan of one router ----------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    """One interface of a router.

    ``kind`` is ``link`` (a point-to-point router link: OSPF and PIM),
    ``lan`` (a LAN segment: OSPF broadcast with a DR, PIM), ``gm`` (the GM
    bridge), ``gcks`` (the LAN of the GCKS's rekey sender) or ``mgmt`` (out
    of band: no routing protocol at all).
    """

    name: str
    kind: str
    ip: str  # "10.100.1.1/24"
    ip6: str = ""  # "fd00:100:1::1/64"
    peer: str = ""  # the neighbor router (links)
    peer_id: str = ""  # its router id
    peer_ip: str = ""  # its IPv4 address on the link, without prefix length
    cost: int = 10
    #: LANs: (router, router id, IPv4 address) of every other member.
    members: tuple[tuple[str, str, str], ...] = ()

    def peers(self) -> list[tuple[str, str, str]]:
        """(router, router id, IPv4 address) of every neighbor expected on this port."""
        return (
            list(self.members) if self.kind == "lan" else [(self.peer, self.peer_id, self.peer_ip)]
        )


@dataclass(frozen=True)
class RouterPlan:
    """Everything the configuration of one router is made from."""

    name: str
    router_id: str  # the IPv4 loopback
    rp: str  # the PIM rendezvous point (a loopback address)
    ports: tuple[Port, ...]
    hello: int = 1  # s, OSPF hello interval
    dead: int = 4  # s, OSPF dead interval
    pim_hello: int = 0  # s, PIM hello interval on links (0: pimd's default, 30 s)
    pim_hold: int = 0  # s, PIM hold time on links (with pim_hello)
    bfd: bool = False  # BFD (bfdd) on every OSPF link: silent failures seen in ~0.3 s

    def of_kind(self, kind: str) -> list[Port]:
        """The ports of one kind, in declaration order."""
        return [p for p in self.ports if p.kind == kind]

    @property
    def links(self) -> list[Port]:
        """Links and LANs: where OSPF runs with authentication and PIM has neighbors."""
        return [p for p in self.ports if p.kind in ("link", "lan")]


def _lines(*blocks: Sequence[str]) -> str:
    return "\n".join(line for block in blocks for line in block) + "\n"


def zebra_config(plan: RouterPlan) -> str:
    """zebra.conf: the host name (addresses are set on the interfaces by the builder)."""
    return _lines([f"hostname {plan.name}", "!"])


def ospfd_config(plan: RouterPlan, lock: str) -> str:
    """ospfd.conf: area 0 on every link, MD5 on with only the lock key; passive stubs."""
    out = [f"hostname {plan.name}", "!"]
    for port in plan.links:
        out += [
            f"interface {port.name}",
            " ip ospf area 0.0.0.0",
            *([" ip ospf network point-to-point"] if port.kind == "link" else []),
            f" ip ospf hello-interval {plan.hello}",
            f" ip ospf dead-interval {plan.dead}",
            " ip ospf retransmit-interval 1",
            f" ip ospf cost {port.cost}",
            " ip ospf authentication message-digest",
            f" ip ospf message-digest-key {LOCK_KEY_ID} md5 {lock}",
            *([" ip ospf bfd", f" ip ospf bfd profile {BFD_PROFILE}"] if plan.bfd else []),
            "exit",
            "!",
        ]
    for port in [Port("lo", "lo", ""), *plan.of_kind("gm"), *plan.of_kind("gcks")]:
        out += [f"interface {port.name}", " ip ospf area 0.0.0.0", " ip ospf passive", "exit", "!"]
    out += [
        "router ospf",
        f" ospf router-id {plan.router_id}",
        " timers throttle spf 0 50 1000",
        " timers throttle lsa all 100",
        " timers lsa min-arrival 50",
        "exit",
        "!",
    ]
    return _lines(out)


def bfdd_config(plan: RouterPlan) -> str:
    """bfdd.conf: the profile OSPF's links use (sessions are made by ospfd)."""
    return _lines(
        [
            f"hostname {plan.name}",
            "!",
            "bfd",
            f" profile {BFD_PROFILE}",
            "  detect-multiplier 3",
            "  receive-interval 100",
            "  transmit-interval 100",
            " !",
            "!",
        ]
    )


def ospf6d_config(plan: RouterPlan, lock: str, keychain: str = KEYCHAIN) -> str:
    """ospf6d.conf: OSPFv3 on every link, trailer from ``keychain`` holding only the lock."""
    out = [
        f"hostname {plan.name}",
        "!",
        f"key chain {keychain}",
        f" key {LOCK_CHAIN_INDEX}",
        f"  key-string {lock}",
        "  cryptographic-algorithm hmac-sha-256",
        " exit",
        "exit",
        "!",
    ]
    for port in plan.links:
        out += [
            f"interface {port.name}",
            " ipv6 ospf6 area 0.0.0.0",
            *([" ipv6 ospf6 network point-to-point"] if port.kind == "link" else []),
            f" ipv6 ospf6 hello-interval {plan.hello}",
            f" ipv6 ospf6 dead-interval {plan.dead}",
            " ipv6 ospf6 retransmit-interval 1",
            f" ipv6 ospf6 cost {port.cost}",
            f" ipv6 ospf6 authentication keychain {keychain}",
            "exit",
            "!",
        ]
    out += [
        "router ospf6",
        f" ospf6 router-id {plan.router_id}",
        " timers throttle spf 0 50 1000",
        "exit",
        "!",
    ]
    return _lines(out)


def pimd_config(plan: RouterPlan) -> str:
    """pimd.conf: static RP, PIM on links and lo (hello/hold from the plan), the GM bridge
    and GCKS LAN with IGMP."""
    out = [f"hostname {plan.name}", "!", f"ip pim rp {plan.rp} 224.0.0.0/4"]
    # Periodic joins every 10 s (default 60): FRR 8.4 sends no triggered join when a
    # neighbor's pimd restarts (new GenID), so the tree through it returns only with
    # the next periodic join (measured: about 60 s with the default).
    out += [f"ip pim join-prune-interval {JOIN_PRUNE_INTERVAL}", "!"]
    timers = [f" ip pim hello {plan.pim_hello} {plan.pim_hold}"] if plan.pim_hello else []
    out += ["interface lo", " ip pim", "exit", "!"]
    for port in plan.links:
        out += [f"interface {port.name}", " ip pim", *timers, "exit", "!"]
    for port in plan.of_kind("gcks"):  # the rekey source's first-hop router
        out += [f"interface {port.name}", " ip pim", " ip igmp", "exit", "!"]
    for port in plan.of_kind("gm"):  # §3: `ip igmp` alone forwards nothing
        # Max response 1 s (in deciseconds): a restarted pimd learns the GM's
        # membership from the GM's kernel within 1 s of its first query, not 10 s.
        out += [f"interface {port.name}", " ip pim passive", " ip igmp"]
        out += [" ip igmp query-max-response-time 10", "exit", "!"]
    return _lines(out)
