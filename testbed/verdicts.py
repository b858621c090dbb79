"""Numbers a scenario's assertions can name, derived from the summary and the faults.

:func:`testbed.metrics.summarize` counts every adjacency flap. A scenario
that takes links down or evicts a member expects some flaps; what must not
happen is a flap that no fault explains. A flap is *explained* when its
router or the router at the other end of its interface is a target of a
fault that was active from ``grace`` seconds before it until ``grace``
seconds after the fault ended (the dead interval plus SPF and hello
timers), or when a fault with no targets (the whole network, e.g. a GCKS
restart) was active.

Derived numbers (all in ``summary.json``):

* ``rekeys_converged_fraction``: rekeys every expected GM accepted and
  installed, over all rekeys;
* ``key_convergence_max_s`` / ``accept_convergence_max_s``: the slowest
  router over all rekeys;
* ``ospf_flaps`` / ``pim_flaps``: flaps by protocol family;
* ``unexplained_flaps``: flaps no fault explains (the number to keep at 0);
* ``evictions`` and ``evicted_cut_off``: evicted routers, and how many of
  them lost an OSPF adjacency after their eviction (forward access
  control made visible in routing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from topologies.model import Topology

__all__ = ["FLAP_GRACE_S", "derived", "explained", "flap_peer"]

#: Seconds around a fault in which a flap counts as its consequence: the OSPF
#: dead interval (4 s in the testbed) plus hello and SPF delays.
FLAP_GRACE_S = 10.0


def flap_peer(topology: Topology, flap: Mapping[str, Any]) -> str | None:
    """The router at the other end of the flap's interface (``neighbor`` is ``id@ifname``)."""
    ifname = str(flap.get("neighbor", "")).rpartition("@")[2]
    router = str(flap.get("router", ""))
    for link in topology.links:
        if router in (link.a, link.b) and link.interface(router) == ifname:
            return link.b if link.a == router else link.a
    return None


def explained(
    flap: Mapping[str, Any],
    faults: Sequence[Mapping[str, Any]],
    topology: Topology,
    grace: float = FLAP_GRACE_S,
) -> bool:
    """True if a fault active around ``flap`` touched its router or its peer."""
    involved = {str(flap.get("router")), flap_peer(topology, flap)}
    t = float(flap["t_down"])
    for record in faults:
        start = float(record["t"])
        until = record.get("until")
        end = float(until) if until is not None else float("inf")
        if not (start - grace <= t <= end + grace):
            continue
        targets = set(record.get("targets") or [])
        if not targets or targets & involved:
            return True
    return False


def derived(
    summary: Mapping[str, Any], faults: Sequence[Mapping[str, Any]], topology: Topology
) -> dict[str, Any]:
    """The module doc's numbers for one run."""
    count = summary.get("rekey_count") or 0
    incomplete = len(summary.get("incomplete_rekeys") or [])
    convergence = summary.get("key_convergence_ms") or {}
    install = convergence.get("install") or {}
    accept = convergence.get("accept") or {}
    flaps = list(summary.get("flaps") or [])
    evictions = [f for f in faults if f.get("kind") == "evict"]
    cut_off = {
        target
        for e in evictions
        for target in e.get("targets") or []
        if any(
            f["router"] == target
            and str(f["proto"]).startswith("ospf")
            and float(f["t_down"]) >= float(e["t"])
            for f in flaps
        )
    }
    return {
        "rekeys_converged_fraction": round((count - incomplete) / count, 4) if count else 0.0,
        "key_convergence_max_s": (install.get("max") or 0) / 1000 if install else None,
        "accept_convergence_max_s": (accept.get("max") or 0) / 1000 if accept else None,
        "ospf_flaps": sum(1 for f in flaps if str(f["proto"]).startswith("ospf")),
        "pim_flaps": sum(1 for f in flaps if f["proto"] == "pim"),
        "unexplained_flaps": sum(1 for f in flaps if not explained(f, faults, topology)),
        "evictions": len(evictions),
        "evicted_cut_off": len(cut_off),
    }
