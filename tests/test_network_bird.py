"""BIRD routers in the Mininet testbed: all-BIRD and mixed FRR/BIRD networks keyed by MRKM.

Fast tests (no root) check the BIRD configuration (fail closed: keyed
interfaces with ``authentication cryptographic`` and no password until the
GM writes one), the neighbor parser, which groups a flavor refuses, the
daemon names ``start_daemon``/``stop_daemon`` take, and how a GM's
``router_install`` events of a ``bird`` sink count as installed.

Root tests build real networks (tests/test_network.py has the FRR one):

1. ``ring5-bird``: five BIRD routers (BIRD for OSPF, FRR's zebra + pimd for
   PIM, behind MRKM's PIM AH shim). No adjacency before MRKM's keys; every GM
   registered (in the PIM group too); OSPFv2 and OSPFv3 Full with
   HMAC-SHA-256, then PIM neighbors under AH; pimd's RPF resolves through the kernel
   routes BIRD installed; a rekey of each group is accepted and installed
   everywhere, and the adjacencies stay Full, with no flap, past the moment
   the old keys stop being accepted (so every router sends the new keys);
   the rekeys reach every GM bridge over the PIM tree; BIRD stopped and
   started again on one router returns to Full with the GM re-installing;
   zebra restarted (with pimd) on another rebuilds the rekey tree, and the
   next rekey reaches every GM.
2. ``ring5-mixed``: FRR and BIRD alternating on OSPFv2 Keyed-MD5: Full, a
   rekey with no flap; FRR's ospfd restarted comes back with MRKM's key (the
   GM notices the new PID and installs again).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from testbed.bird_router import BirdRouter, bird_config, parse_bird_neighbors
from testbed.frr_config import Port, RouterPlan
from testbed.mrkm_nodes import GmNode
from testbed.network import Network, group_problems
from testbed.processes import wait_until
from testbed.router import FrrRouter
from topologies import generators
from topologies.model import TopologyError
from topologies.registry import get_topology

V2, V3 = "ospfv2-area0", "ospfv3-area0"


def _group(name: str, protocol: str, algorithm: str, atd: int = 2, dtd: int = 4) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": protocol,
        "algorithm": algorithm,
        "lifetime": 600,
        "rekey_margin": 60,
        "atd": atd,
        "dtd": dtd,
        "rekey_address": "239.192.0.1",
        "rekey_port": 848,
    }


def _plan() -> RouterPlan:
    return RouterPlan(
        "r1",
        "10.255.0.1",
        "10.255.0.2",
        (
            Port("r1-r2", "link", "10.100.1.1/24", "fd00:100:1::1/64", "r2", "10.255.0.2", cost=7),
            Port("r1-lan1", "lan", "10.200.1.1/24", "fd00:200:1::1/64", "lan1"),
            Port("gm0", "gm", "10.251.0.1/32"),
            Port("gcks0", "gcks", "10.252.0.1/24"),
            Port("mgmt", "mgmt", "10.250.0.1/16"),
        ),
    )


def _prefix(tag: str) -> str:
    return f"mb{tag}{os.getpid() % 10000}"


# -- configuration (no root) ---------------------------------------------------------------


def _block(text: str, protocol: str, interface: str) -> str:
    body = text.split(f"protocol ospf {protocol} ", 1)[1].split("\n}", 1)[0]
    return body.split(f'interface "{interface}"', 1)[1].split("};\n", 1)[0]


def test_bird_config_keys_every_link_from_the_include_and_holds_no_password() -> None:
    includes = {"ospfv2": Path("/s/v2.conf"), "ospfv3": Path("/s/v3.conf")}
    text = bird_config(_plan(), Path("/s"), includes)
    assert "password" not in text  # fail closed: no adjacency before MRKM writes a key
    assert "router id 10.255.0.1;" in text
    for version, include in (("v2", "/s/v2.conf"), ("v3", "/s/v3.conf")):
        link = _block(text, version, "r1-r2")
        assert "type ptp; cost 7; hello 1; dead 4;" in link
        assert "authentication cryptographic;" in link
        assert f'include "{include}";' in link
        lan = _block(text, version, "r1-lan1")
        assert "type broadcast;" in lan and "authentication cryptographic;" in lan
    v2 = text.split("protocol ospf v2 ", 1)[1].split("\n}", 1)[0]
    assert 'interface "lo" 10.255.0.0/16 { stub yes; };' in v2  # not 127.0.0.1
    assert 'interface "gm0" { stub yes; };' in v2 and 'interface "gcks0" { stub yes; };' in v2
    assert "mgmt" not in text  # the management network stays out of OSPF
    assert "export where source = RTS_OSPF" in text  # OSPF routes reach the kernel (RPF)


def test_parse_bird_neighbors_reads_interface_router_id_and_state() -> None:
    text = (
        "o4:\nRouter ID   \tPri\t     State     \tDTime\tInterface  Router IP\n"
        "10.255.0.2  \t  1\tFull/PtP  \t 3.860\tr1-r2      10.100.1.2\n"
        "10.255.0.3  \t  1\t2-Way/Other\t 3.1\tr1-lan1    10.200.1.3\n"
        "10.255.0.4  \t  1\tInit/PtP  \t 3.9\tr1-r4      fe80::1\n"
    )
    assert parse_bird_neighbors(text) == {
        ("r1-r2", "10.255.0.2"): "Full",
        ("r1-lan1", "10.255.0.3"): "2-Way",
        ("r1-r4", "10.255.0.4"): "Init",
    }
    assert parse_bird_neighbors("o4:\nRouter ID   \tPri\t     State\n") == {}


def test_group_problems_name_the_group_the_routers_and_the_reason() -> None:
    mixed = get_topology("ring5-mixed")
    assert group_problems(mixed, [_group(V2, "ospfv2", "md5")]) == []
    [sha] = group_problems(mixed, [_group(V2, "ospfv2", "hmac-sha-256")])
    assert "group ospfv2-area0" in sha and "frr routers r1, r3, r5" in sha
    assert "md5 only" in sha
    [v3] = group_problems(mixed, [_group(V3, "ospfv3", "hmac-sha-256")])
    assert "group ospfv3-area0" in v3 and "r1-r2" in v3 and "r5-r1" not in v3
    bird = get_topology("ring5-bird")
    fine = [_group(V2, "ospfv2", "hmac-sha-512"), _group(V3, "ospfv3", "hmac-sha-256")]
    assert group_problems(bird, fine) == []
    # PIM is keyed through the AH shim on both flavors, in AH's algorithms only.
    assert group_problems(mixed, [_group("p", "pim", "hmac-sha-256")]) == []
    [keyed] = group_problems(
        bird,
        [_group(V2, "ospfv2", "hmac-sha-1"), {"name": "x", "protocol": "pim", "algorithm": "md5"}],
    )
    assert "group x (pim" in keyed and "bird routers r1, r2, r3, r4, r5" in keyed
    assert "hmac-sha-256, hmac-sha-1 only" in keyed


def test_start_mrkm_refuses_a_group_a_flavor_cannot_use(tmp_path: Path) -> None:
    net = Network(get_topology("ring5-mixed"), tmp_path, prefix="mbnever")
    with pytest.raises(ValueError, match=r"ospfv2-area0 .*frr routers r1, r3, r5"):
        net.start_mrkm([_group(V2, "ospfv2", "hmac-sha-256")])
    assert net.gcks is None and net.gms == {}  # nothing started


def test_an_unknown_flavor_is_refused_by_name(tmp_path: Path) -> None:
    topology = generators.line(2)
    topology.routers[1].flavor = "quagga"
    with pytest.raises(TopologyError, match=r"routers\[1\]\.flavor: 'quagga' is not one of"):
        Network(topology, tmp_path, prefix="mbnever")


def test_daemon_names_per_flavor(tmp_path: Path) -> None:
    bird = BirdRouter(_plan(), tmp_path / "s", tmp_path / "w", ["true"])
    frr = FrrRouter(_plan(), tmp_path / "s", tmp_path / "w", ["true"])
    assert bird.daemons == ("zebra", "pimd", "bird")
    assert frr.daemons == ("zebra", "ospfd", "ospf6d", "pimd")
    with pytest.raises(ValueError, match="no daemon 'ospfd' on this bird router"):
        bird.start_daemon("ospfd")
    with pytest.raises(ValueError, match="no daemon 'bird' on this frr router"):
        frr.stop_daemon("bird")
    with pytest.raises(RuntimeError, match="bird has no configuration"):
        bird.start_daemon("bird")  # never started
    [sink] = bird.sinks({"ospfv2": V2, "ospfv3": V3})
    assert (sink["type"], sink["socket"]) == ("bird", str(tmp_path / "s" / "bird.ctl"))
    assert sink["ospfv2"] == {"include": str(tmp_path / "s" / "mrkm-ospfv2.conf"), "group": V2}
    assert sink["ospfv3"] == {"include": str(tmp_path / "s" / "mrkm-ospfv3.conf"), "group": V3}
    [only_v2] = bird.sinks({"ospfv2": V2})
    assert "ospfv3" not in only_v2


def test_gm_installed_reads_bird_sink_events_per_protocol(tmp_path: Path) -> None:
    gm = GmNode("r1", tmp_path, [], "10.250.255.254", [V2, V3], "psk", "gm0", [])

    def rows(protocol: str, *ids: int) -> list[dict[str, Any]]:
        return [{"group": "g", "protocol": protocol, "key_id": i} for i in ids]

    events = [
        {"t": 1, "event": "keys_installed", "rows": rows("ospfv2", 1, 2)},
        {"t": 2, "event": "router_install", "sink": "bird", "ok": True, "key_ids": [1, 2]},
        {"t": 3, "event": "keys_installed", "rows": rows("ospfv3", 7, 9)},
        {"t": 4, "event": "router_install", "sink": "bird", "ok": False, "key_ids": [1, 2, 7, 9]},
        {"t": 5, "event": "router_install", "sink": "other", "ok": True, "key_ids": [1, 2, 9]},
    ]
    gm.log.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert gm.installed("ospfv2", 2)
    assert not gm.installed("ospfv3", 2)  # key 2 is an OSPFv2 key
    assert not gm.installed("ospfv3", 7)  # that install failed
    assert not gm.installed("ospfv3", 9)  # "other" is not the BIRD sink


# -- real networks (root) ---------------------------------------------------------------------


def _watch_past_old_keys(net: Network, sent: list[dict[str, Any]]) -> None:
    """Keep the watch running until every old key left its accept window, plus a dead
    interval: an adjacency whose routers still sent an old key would drop by then."""
    groups = {g["name"]: g for g in net.gcks.groups} if net.gcks else {}
    until = max(s["t"] + groups[s["group"]]["atd"] + groups[s["group"]]["dtd"] for s in sent)
    until += net.dead + 1
    while time.time() < until:
        time.sleep(0.2)


def _install_reasons(net: Network, router: str) -> list[str]:
    return [e["reason"] for e in net.gms[router].events("router_install") if e["ok"]]


@pytest.mark.root
@pytest.mark.slow
def test_bird_ring_keys_rekeys_without_flaps_and_survives_a_bird_restart(tmp_path: Path) -> None:
    from testbed.mrkm_nodes import REKEY_GROUP
    from testbed.network import GCKS_LAN, GM_INTERFACE
    from testbed.router import AdjacencyWatch

    prefix = _prefix("b")
    groups = [_group(V2, "ospfv2", "hmac-sha-256"), _group(V3, "ospfv3", "hmac-sha-256")]
    t0 = time.monotonic()
    with Network(get_topology("ring5-bird"), tmp_path, prefix=prefix) as net:
        routers = list(net.routers.values())
        assert {type(r) for r in routers} == {BirdRouter}
        assert all(r.pim_ah is not None and r.pim_ah.pid() for r in routers)
        for router in routers:  # BIRD has no password yet: nothing may be Full
            wait_until(lambda r=router: r.ospf_neighbors() is not None, 10, "BIRD to answer")
            assert "Full" not in (router.ospf_neighbors() or {}).values()
        net.start_mrkm(groups, timeout=30)
        assert net.gcks is not None
        assert [g["protocol"] for g in net.gcks.groups] == ["ospfv2", "ospfv3", "pim"]
        net.wait_ospf_full(timeout=40)
        net.wait_pim(timeout=30)  # PIM under AH: FRR's pimd behind the shim
        bring_up = time.monotonic() - t0
        # pimd on a BIRD router resolves RPF through the kernel routes BIRD installed.
        rpf = net.routers["r3"].vtysh(f"show ip rpf {GCKS_LAN}.2")
        assert 'Known via "kernel"' in rpf, rpf
        with AdjacencyWatch(routers) as watch:
            sent = [net.rekey(V2, timeout=20), net.rekey(V3, timeout=20)]
            for one in sent:
                net.wait_installed(one, timeout=20)
            _watch_past_old_keys(net, sent)
        assert watch.flaps == []
        assert watch.polls >= 5 * len(routers)
        assert net.missing_routes("r3") == []
        for router in routers:  # both rekeys came down the PIM tree to the GM bridge
            entry = router.mroute(f"{GCKS_LAN}.2", REKEY_GROUP)
            assert entry is not None and GM_INTERFACE in entry[1], (router.name, entry)
        for key in (sent[0]["key_ids"][0], sent[1]["key_ids"][0]):
            text = (net.routers["r2"].state / "mrkm-ospfv2.conf").read_text()
            text += (net.routers["r2"].state / "mrkm-ospfv3.conf").read_text()
            assert f"id {key};" in text

        # Kill BIRD on r2 and start it again: back to Full, and the GM re-applied its keys.
        r2 = net.routers["r2"]
        old_pid = r2.pid("bird")
        r2.stop_daemon("bird")
        assert r2.pid("bird") is None and r2.ospf_neighbors() is None
        t_restart = time.monotonic()
        r2.start_daemon("bird")
        assert r2.pid("bird") not in (None, old_pid)
        with pytest.raises(RuntimeError, match="already runs"):
            r2.start_daemon("bird")
        wait_until(
            lambda: "routing daemon restarted" in _install_reasons(net, "r2"),
            10,
            "the GM of r2 to re-install after BIRD restarted",
        )
        net.wait_ospf_full(timeout=30)
        restart_s = time.monotonic() - t_restart

        # zebra restarted on r3 takes pimd along (as watchfrr does); the tree returns
        # through r3 (wait_pim checks it) and the next rekey reaches every GM.
        r3 = net.routers["r3"]
        before = r3.pids()
        r3.stop_daemon("zebra")
        r3.start_daemon("zebra")
        after = r3.pids()
        assert after["zebra"] != before["zebra"] and after["pimd"] != before["pimd"]
        assert after["bird"] == before["bird"]
        t_zebra = time.monotonic()
        net.wait_pim(timeout=30)
        zebra_s = time.monotonic() - t_zebra
        assert net.missing_rekey_tree() == []
        net.rekey(V2, timeout=20)
        pids = list(net.process_pids())
    report = {
        "bring_up_s": round(bring_up, 2),
        "timings_s": {k: round(v, 3) for k, v in net.timings.items()},
        "rekey_accepted_s": [round(s["accepted_s"], 3) for s in sent],
        "bird_restart_to_full_s": round(restart_s, 2),
        "zebra_pimd_restart_to_tree_s": round(zebra_s, 2),
    }
    print(json.dumps(report))
    assert not [p for p in pids if _running(p)]  # the restarted BIRD was stopped too


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.root
@pytest.mark.slow
def test_mixed_ring_md5_rekey_without_flaps_and_ospfd_restart_gets_keys_back(
    tmp_path: Path,
) -> None:
    from testbed.router import AdjacencyWatch

    prefix = _prefix("m")
    with Network(get_topology("ring5-mixed"), tmp_path, prefix=prefix) as net:
        kinds = {name: r.flavor for name, r in net.routers.items()}
        assert kinds == {"r1": "frr", "r2": "bird", "r3": "frr", "r4": "bird", "r5": "frr"}
        # default groups: OSPFv2 MD5 only on a mixed network, and PIM (AH) on every flavor
        net.start_mrkm(timeout=30)
        assert net.gcks is not None and [g["name"] for g in net.gcks.groups] == [V2, "pim-sm"]
        net.wait_ospf_full(timeout=40)
        net.wait_pim(timeout=30)
        with AdjacencyWatch(list(net.routers.values())) as watch:
            sent = net.rekey(V2, timeout=20)
            net.wait_installed(sent, timeout=20)
            _watch_past_old_keys(net, [sent])
        assert watch.flaps == []

        # ospfd restarts from its file (lock key only); the GM sees the new PID and
        # installs the group key again, so the adjacencies come back.
        r3 = net.routers["r3"]
        r3.stop_daemon("ospfd")
        assert r3.ospf_neighbors() is None
        r3.start_daemon("ospfd")
        wait_until(
            lambda: "routing daemon restarted" in _install_reasons(net, "r3"),
            10,
            "the GM of r3 to re-install after ospfd restarted",
        )
        net.wait_ospf_full(timeout=30)
        key = sent["key_ids"][0]
        running = r3.vtysh("show running-config", daemon="ospfd")
        assert f"message-digest-key {key} md5" in running
