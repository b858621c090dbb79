"""Derived verdicts: which flaps a fault explains, and evicted routers cut off."""

from __future__ import annotations

from typing import Any

from testbed.bundle import fault
from testbed.verdicts import derived, explained, flap_peer
from topologies.addressing import assign
from topologies.generators import line

TOPO = assign(line(4))  # r1 - r2 - r3 - r4


def flap(router: str, peer: str, t: float, proto: str = "ospfv2") -> dict[str, Any]:
    link = next(lk for lk in TOPO.links if {lk.a, lk.b} == {router, peer})
    return {"router": router, "proto": proto, "neighbor": f"10.0.0.9@{link.interface(router)}",
            "t_down": t, "t_up": t + 1, "state": "Init"}  # fmt: skip


def test_the_peer_comes_from_the_interface_name() -> None:
    assert flap_peer(TOPO, flap("r2", "r3", 0)) == "r3"
    assert flap_peer(TOPO, {"router": "r2", "neighbor": "x@nope"}) is None


def test_a_flap_is_explained_only_near_a_fault_on_its_router_or_peer() -> None:
    down = [fault("link_down", 100, 110, ["r3", "r4"])]
    assert explained(flap("r2", "r3", 105), down, TOPO)  # peer r3 is a target
    assert not explained(flap("r1", "r2", 105), down, TOPO)  # far from the fault
    assert not explained(flap("r2", "r3", 130), down, TOPO)  # long after it
    # Faults that leave routing alone explain nothing: a GCKS restart, loss on the GM bridge.
    assert not explained(flap("r1", "r2", 105), [fault("gcks_restart", 100, 101, [])], TOPO)
    access = [fault("access_loss", 100, 110, ["r1", "r2", "r3", "r4"], percent=10)]
    assert not explained(flap("r1", "r2", 105), access, TOPO)


def test_derived_counts_unexplained_flaps_and_cut_off_evictees() -> None:
    faults = [fault("evict", 50, None, ["r4"], group="ospfv2-area0")]
    flaps = [flap("r4", "r3", 58), flap("r3", "r4", 58), flap("r1", "r2", 20, "pim")]
    summary = {
        "rekey_count": 4,
        "incomplete_rekeys": [3],
        "key_convergence_ms": {"install": {"max": 1500.0}, "accept": {"max": 40.0}},
        "flaps": flaps,
    }
    out = derived(summary, faults, TOPO)
    assert out["rekeys_converged_fraction"] == 0.75
    assert out["key_convergence_max_s"] == 1.5 and out["accept_convergence_max_s"] == 0.04
    assert (out["ospf_flaps"], out["pim_flaps"], out["unexplained_flaps"]) == (2, 1, 1)
    assert (out["evictions"], out["evicted_cut_off"]) == (1, 1)
    # an eviction without a later OSPF flap of the evicted router is not a cut-off
    assert derived({**summary, "flaps": flaps[2:]}, faults, TOPO)["evicted_cut_off"] == 0
