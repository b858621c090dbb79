"""PIM under MRKM's AH shim in the Mininet testbed, the default (``Network(pim_auth=True)``).

Fast tests (no root) check the pieces: the PIM group a network adds to a
scenario's groups (with their timers) or refuses without ``pim_auth``, the
hello/hold timers in pimd.conf, the ``pim_ah`` sink a router hands its GM,
the shim's command line, and how a crashed run's shims are found by their
status files (never by name).

The root test builds a ring of five FRR routers with a chord, PIM protected:

* before MRKM runs, every router's shim is up and PIM fails closed: no
  router has a PIM neighbor (the shims drop pimd's hellos: no key yet);
* registration first, then OSPF Full, then PIM neighbors (under AH) and the
  rekey tree everywhere; every shim sends with the same SPI;
* a rekey of the PIM group rolls: every router installs the new key, every
  shim switches to the new SPI, and no OSPF adjacency or PIM neighbor flaps
  until the old SPI is no longer accepted plus a hold time; an OSPFv2 rekey
  afterwards still reaches every GM over the PIM tree and installs;
* a plain PIM hello sent with scapy from r1's namespace straight onto the
  r1-r2 link (bypassing r1's shim) is dropped by r2's shim as
  ``unprotected``, counted and logged;
* after the ``with`` block no namespace, process (shims included) or run
  record is left, and each shim logged its final counters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from testbed.cleanup import shim_pids
from testbed.frr_config import Port, RouterPlan, pimd_config
from testbed.mrkm_nodes import PIM_GROUP, default_groups, pim_group
from testbed.network import with_pim_group
from testbed.processes import wait_until
from testbed.router import FrrRouter, PimAhShim
from topologies import generators
from topologies.model import Link, Topology, TopologyError

V2 = "ospfv2-area0"


def _prefix(tag: str) -> str:
    return f"mkp{tag}{os.getpid() % 10000}"


# -- no root ------------------------------------------------------------------------------------


def test_the_network_adds_a_pim_group_with_the_scenarios_timers() -> None:
    groups = [{"name": V2, "protocol": "ospfv2", "algorithm": "md5", "atd": 3, "dtd": 6,
               "lifetime": 300, "rekey_margin": 30, "heartbeat": 5}]  # fmt: skip
    out = with_pim_group(groups)
    assert [g["name"] for g in out] == [V2, PIM_GROUP]
    pim = out[1]
    assert (pim["protocol"], pim["algorithm"]) == ("pim", "hmac-sha-256")
    assert (pim["atd"], pim["dtd"], pim["lifetime"], pim["rekey_margin"], pim["heartbeat"]) == (
        3,
        6,
        300,
        30,
        5,
    )
    assert groups[0] == out[0] and len(groups) == 1  # the caller's list is left alone
    # A scenario that names its own PIM group keeps it, and gets no second one.
    own = [*groups, {**pim_group(), "name": "pim-own", "atd": 1}]
    assert with_pim_group(own) == own
    # Without pim_auth the groups pass unchanged, and a PIM group is refused by name.
    assert with_pim_group(groups, pim_auth=False) == groups
    with pytest.raises(TopologyError, match=r"pim-own.*unprotected"):
        with_pim_group(own, pim_auth=False)
    with pytest.raises(TopologyError, match="taken"):
        with_pim_group([{"name": PIM_GROUP, "protocol": "ospfv2"}])


def test_default_groups_gain_the_pim_group_on_request() -> None:
    assert [g["name"] for g in default_groups()] == [V2, "ospfv3-area0"]
    groups = default_groups(atd=3, dtd=7, pim=True)
    assert [g["protocol"] for g in groups] == ["ospfv2", "ospfv3", "pim"]
    assert (groups[2]["atd"], groups[2]["dtd"]) == (3, 7)


def _plan(pim_hello: int = 0, pim_hold: int = 0) -> RouterPlan:
    return RouterPlan(
        "r1",
        "10.255.0.1",
        "10.255.0.2",
        (
            Port("r1-r2", "link", "10.100.1.1/24", "", "r2", "10.255.0.2", "10.100.1.2"),
            Port("gm0", "gm", "10.251.0.1/32"),
        ),
        pim_hello=pim_hello,
        pim_hold=pim_hold,
    )


def test_pimd_config_sets_hello_and_hold_on_links_only_when_asked() -> None:
    text = pimd_config(_plan(1, 4))
    link = text.split("interface r1-r2\n", 1)[1].split("exit", 1)[0]
    assert " ip pim hello 1 4" in link
    for other in ("lo", "gm0"):
        assert "hello" not in text.split(f"interface {other}\n", 1)[1].split("exit", 1)[0]
    assert "hello" not in pimd_config(_plan())


def test_a_router_with_a_shim_hands_its_gm_a_pim_ah_sink(tmp_path: Path) -> None:
    shim = PimAhShim("r1", ("mnexec", "-da", "1"), tmp_path / "state", tmp_path / "s.jsonl")
    router = FrrRouter(_plan(1, 4), tmp_path / "state", tmp_path / "r1", (), pim_ah=shim)
    sinks = router.sinks({"ospfv2": V2, "pim": PIM_GROUP})
    assert [s["type"] for s in sinks] == ["frr", "pim_ah"]
    assert sinks[1] == {
        "type": "pim_ah",
        "name": "pim_ah",
        "keys": str(tmp_path / "state" / "pim-ah.keys.json"),
        "status": str(tmp_path / "state" / "pim-ah.status.json"),
        "group": PIM_GROUP,
    }
    assert [s["type"] for s in router.sinks({"ospfv2": V2})] == ["frr"]  # no PIM group
    plain = FrrRouter(_plan(), tmp_path / "state", tmp_path / "r1", ())
    assert [s["type"] for s in plain.sinks({"ospfv2": V2, "pim": PIM_GROUP})] == ["frr"]
    argv = shim.command()
    assert argv[1:3] == ["-m", "mrkm.sinks.pim_ah"]
    assert argv[argv.index("--tag") + 1] == "r1" and argv[argv.index("--queue") + 1] == "7"
    assert shim.pid() is None and shim.stop() is None  # never started: nothing to stop
    assert FrrRouter.refuses("pim", "hmac-sha-256") is None
    assert "pim" in str(FrrRouter.refuses("pim", "md5"))


def test_clean_net_finds_shims_by_status_file_and_command_line(tmp_path: Path) -> None:
    """A status file naming a live process counts only if that process is the shim of
    that very status file (a recycled PID is never signalled)."""
    run = tmp_path / "run"
    (run / "r1").mkdir(parents=True)
    (run / "r2").mkdir()
    status = run / "r1" / "pim-ah.status.json"
    other = run / "r2" / "pim-ah.status.json"
    fake = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "mrkm.sinks.pim_ah", str(status)]
    )
    try:
        cmdline = Path(f"/proc/{fake.pid}/cmdline")
        wait_until(lambda: b"mrkm.sinks.pim_ah" in cmdline.read_bytes(), 10, "the exec")
        status.write_text(json.dumps({"pid": fake.pid}))
        other.write_text(json.dumps({"pid": os.getpid()}))  # alive, but not a shim
        assert shim_pids(run) == [fake.pid]
        status.write_text("{broken")
        assert shim_pids(run) == []
    finally:
        fake.kill()
        fake.wait(5)


# -- root ----------------------------------------------------------------------------------------


def _ring_with_chord() -> Topology:
    topology = generators.ring(5)
    topology.links.append(Link("r1", "r3"))
    return topology


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _send_spis(shims: dict[str, PimAhShim]) -> set[Any]:
    return {s.status().get("send_spi") for s in shims.values()}


PLAIN_HELLO = """
import sys
from scapy.all import IP, Ether, Raw, sendp
pim = bytes([0x20, 0x00, 0x00, 0x00, 0, 1, 0, 2, 0, 105])  # PIMv2 Hello, holdtime 105 s
total = sum(int.from_bytes(pim[i:i + 2], "big") for i in range(0, len(pim), 2))
while total >> 16:
    total = (total & 0xFFFF) + (total >> 16)
pim = pim[:2] + (~total & 0xFFFF).to_bytes(2, "big") + pim[4:]
packet = Ether(dst="01:00:5e:00:00:0d") / IP(src=sys.argv[2], dst="224.0.0.13", ttl=1,
                                               proto=103) / Raw(pim)
sendp(packet, iface=sys.argv[1], count=int(sys.argv[3]), verbose=False)
"""


@pytest.mark.root
@pytest.mark.slow
def test_pim_under_ah_by_default_rolls_without_flaps_and_drops_plain_pim(tmp_path: Path) -> None:
    from testbed.metrics import pim_ah_counters, read_jsonl
    from testbed.mrkm_nodes import REKEY_GROUP
    from testbed.network import GCKS_LAN, GM_INTERFACE, Network
    from testbed.router import AdjacencyWatch

    prefix = _prefix("a")
    t0 = time.monotonic()
    with Network(_ring_with_chord(), tmp_path, prefix=prefix) as net:
        routers = list(net.routers.values())
        shims = {r.name: r.pim_ah for r in routers if r.pim_ah is not None}
        assert len(shims) == 5 and all(s.pid() is not None for s in shims.values())
        # Fail closed: pimd sends hellos, the shims drop them (no key yet), no neighbor.
        wait_until(
            lambda: all(s.counters().get("out_dropped.no-send-sa", 0) >= 2 for s in shims.values()),
            30,
            "every shim to drop pimd's first hellos for want of a key",
        )
        for router in routers:
            neighbors = router.pim_neighbors()
            assert neighbors is not None and not any(neighbors.values()), (router.name, neighbors)
            assert shims[router.name].status().get("send_spi") is None

        net.start_mrkm(timeout=60)  # registration needs neither OSPF nor PIM
        assert net.gcks is not None
        assert [g["protocol"] for g in net.gcks.groups] == ["ospfv2", "ospfv3", "pim"]
        net.wait_ospf_full(timeout=60)
        net.wait_pim(timeout=60)  # neighbors under AH, IGMP on gm0, the rekey tree
        bring_up = time.monotonic() - t0
        first = _send_spis(shims)
        assert len(first) == 1 and None not in first, first
        first_spi = int(first.pop())

        pim = next(g for g in net.gcks.groups if g["name"] == PIM_GROUP)
        with AdjacencyWatch(routers) as watch:
            sent = net.rekey(PIM_GROUP, timeout=20)
            new_spi = int(sent["key_ids"][0])
            assert new_spi != first_spi
            net.wait_installed(sent, timeout=20)  # every shim loaded the new SA
            wait_until(
                lambda: _send_spis(shims) == {new_spi},
                pim["atd"] + 15,
                "every shim to send with the new SPI",
            )
            # Watch until the old SPI is no longer accepted, plus a PIM hold time.
            until = sent["t"] + pim["atd"] + pim["dtd"] + net.dead + 1
            wait_until(lambda: time.time() > until, 30, "the old SPI's accept window to end")
            assert all(first_spi not in s.status().get("accept_spis", []) for s in shims.values())
            # The rekey tree still carries OSPF rekeys after the PIM rollover.
            sent_v2 = net.rekey(V2, timeout=20)
            net.wait_installed(sent_v2, timeout=20)
        assert watch.flaps == [], watch.flaps[:10]
        assert watch.polls >= 5 * len(routers)
        assert net.missing_rekey_tree() == []
        for router in routers:
            entry = router.mroute(f"{GCKS_LAN}.2", REKEY_GROUP)
            assert entry is not None and GM_INTERFACE in entry[1], (router.name, entry)
        switches = [
            e
            for e in read_jsonl(tmp_path / "pim-ah-r1.jsonl")
            if e["event"] == "pim_ah_send_switch"
        ]
        assert [e["spi"] for e in switches][-2:] == [first_spi, new_spi]

        # A plain hello from r1's namespace, sent below r1's shim, dies at r2's shim.
        link = next(p for p in net.plans["r1"].links if p.peer == "r2")
        r2 = shims["r2"]
        before = r2.counters().get("in_dropped.unprotected", 0)
        t_inject = time.time()
        net.run("r1", sys.executable, "-c", PLAIN_HELLO, link.name, link.ip.split("/")[0], "3")
        wait_until(
            lambda: r2.counters().get("in_dropped.unprotected", 0) >= before + 3,
            10,
            "r2's shim to drop 3 plain hellos",
        )
        wait_until(
            lambda: any(
                e["event"] == "pim_ah_drop"
                and e["reason"] == "unprotected"
                and e["src"] == link.ip.split("/")[0]
                and e["t"] >= t_inject
                for e in read_jsonl(tmp_path / "pim-ah-r2.jsonl")
            ),
            5,
            "r2's shim to log the drop",
        )
        assert not net.routers["r2"].missing_pim()  # the real neighbor is untouched
        memory = net.memory()
        pids = list(net.process_pids())
        assert {s.pid() for s in shims.values()} <= set(pids)
        assert len(pids) >= 5 * 6 + 1  # 4 daemons, a shim and a GM per router; the GCKS
        state = net.record.folder
        assert sorted(shim_pids(state)) == sorted(s.pid() or 0 for s in shims.values())
    # Nothing left: processes (shims included), namespaces, the run record.
    assert [p for p in pids if _alive(p)] == []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [line for line in listed.splitlines() if line.startswith(f"{prefix}-")]
    assert not state.exists()
    # Each shim logged its final counters; the metrics read them per reason.
    events = [e for n in shims for e in read_jsonl(tmp_path / f"pim-ah-{n}.jsonl")]
    assert {e["node"] for e in events if e["event"] == "pim_ah_stopped"} == set(shims)
    counted = pim_ah_counters(sorted(events, key=lambda e: e["t"]))
    assert counted is not None
    assert counted["drops_by_router"]["r2"]["in:unprotected"] >= 3
    assert counted["protected"] > 0 and counted["accepted"] > 0
    report = {
        "bring_up_s": round(bring_up, 2),
        "timings_s": {k: round(v, 3) for k, v in net.timings.items()},
        "pim_rekey_accepted_s": round(sent["accepted_s"], 3),
        "shim_rss_kib": {r: m.get("pim-ah", {}).get("rss") for r, m in memory.items()},
        "drops": counted["drops"],
    }
    print(json.dumps(report))
