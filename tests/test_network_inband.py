"""In-band registration (``Network(registration="in-band")``): GMs reach the GCKS over OSPF.

ARCHITECTURE.md, "Bootstrap": routers start with a provisioned bootstrap key
(the same lock key everywhere), so OSPF forms before MRKM runs; GMs register
over the routed network to the GCKS's rekey-LAN address, and the group keys
replace the bootstrap key (a key switch that must not drop an adjacency).

The root test takes every router's management link down first, so no
registration can use it, and watches every OSPF adjacency from before the
first registration until a dead interval after the group keys are in use.
The switch is hitless for OSPFv2 but not yet for OSPFv3 (see the test).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testbed.frr_config import Port, RouterPlan
from testbed.network import Network
from testbed.processes import wait_until
from testbed.router import AdjacencyWatch, FrrRouter
from topologies import generators
from topologies.model import TopologyError


def test_a_bootstrap_key_is_the_lock_key_of_every_daemon(tmp_path: Path) -> None:
    plan = RouterPlan("r1", "10.255.0.1", "10.255.0.1", (Port("r1-r2", "link", "10.0.0.1/24"),))
    bootstrap = "ab" * 32
    router = FrrRouter(plan, state=tmp_path, workdir=tmp_path, prefix=(), bootstrap=bootstrap)
    configs = router.configs()
    v2_lock, v3_lock = router.lock_keys()
    assert bootstrap.startswith(v2_lock) and v3_lock == bootstrap
    assert f"md5 {v2_lock}\n" in configs["ospfd"]
    assert f"key-string {v3_lock}\n" in configs["ospf6d"]
    random_lock = FrrRouter(plan, state=tmp_path, workdir=tmp_path, prefix=()).configs()
    assert bootstrap not in random_lock["ospfd"] + random_lock["ospf6d"]


def test_in_band_needs_frr_routers_and_a_known_mode(tmp_path: Path) -> None:
    from topologies.registry import get_topology

    with pytest.raises(TopologyError, match="in-band registration needs a bootstrap key"):
        Network(get_topology("ring5-bird"), tmp_path, prefix="ibx", registration="in-band")
    with pytest.raises(ValueError, match="'sideways' is not one of oob, in-band"):
        Network(generators.line(2), tmp_path, prefix="ibx", registration="sideways")


@pytest.mark.root
@pytest.mark.slow
def test_gms_register_in_band_and_the_group_keys_replace_the_bootstrap(tmp_path: Path) -> None:
    prefix = f"mkib{os.getpid() % 10000}"
    with Network(generators.ring(4), tmp_path, prefix=prefix, registration="in-band") as net:
        # OSPF forms with the bootstrap key alone, before any MRKM process runs.
        net.wait_ospf_full(protocols=["OSPFv2", "OSPFv3"])
        assert net.gcks is None and not net.gms
        for name in net.routers:  # registration cannot use the management network
            net.run(name, "ip", "link", "set", "mgmt", "down")
        with AdjacencyWatch(list(net.routers.values()), protocols=("OSPFv2", "OSPFv3")) as watch:
            net.start_mrkm()
            net.wait_bootstrap_replaced()
            assert net.gcks is not None
            status = net.gcks.control({"cmd": "status"})
            key = int(status["groups"]["ospfv2-area0"]["key_ids"][-1])
            wait_until(
                lambda: all(gm.installed("ospfv2", key) for gm in net.gms.values()),
                30,
                f"every router to send with OSPFv2 group key {key} (after its ATD)",
            )
            # Keep watching for a dead interval and more after the last switch.
            enough = watch.polls + len(net.routers) * round((net.dead + 1) / watch.period)
            wait_until(lambda: watch.polls >= enough, 30, "a dead interval of adjacency polls")
            net.wait_ospf_full(protocols=["OSPFv2", "OSPFv3"])
        # The switch is not hitless yet: each GM's sink replaces the bootstrap with
        # its own random lock until the group key's activation time, so routers that
        # register seconds apart can disagree for longer than a dead interval (seen
        # on a loaded host, OSPFv3 only). What must hold: OSPF is Full again, every
        # flap ended, and OSPFv2 (one key, switched at T by every router) kept up.
        assert watch.polls > 0
        assert not [f for f in watch.flaps if f.protocol == "OSPFv2"], watch.flaps
        print(f"flaps across the bootstrap switch: {watch.flaps}")
        net.wait_pim()  # PIM (under AH) forms with MRKM's keys; then the rekey tree
        sent = net.rekey("ospfv2-area0")  # and a rekey over the PIM tree arrives
        net.wait_installed(sent)
        assert all(gm.alive() for gm in net.gms.values())
