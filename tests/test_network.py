"""The Mininet network builder: FRR routers keyed by MRKM, rekeys over PIM, guaranteed cleanup.

The root tests build real networks (Mininet hosts, FRR 8.4.4, the GCKS and a
GM per router) and check, after the ``with`` block, that no namespace,
process, root-namespace link or run record of the run is left. The fast
tests check the generated FRR configuration. The five-router test runs
with PIM unprotected (``pim_auth=False``): the behaviour from before PIM
was keyed holds there (PIM up before MRKM, no shim, no PIM group);
tests/test_network_pim_ah.py has the default, PIM under AH. The cleanup
tests run with the default, so a killed run's shims are cleaned up too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from testbed.frr_config import Port, RouterPlan, ospf6d_config, ospfd_config, pimd_config
from topologies import generators
from topologies.model import Link, Topology

V2_GROUP, V3_GROUP = "ospfv2-area0", "ospfv3-area0"
REPO = Path(__file__).resolve().parent.parent


def _prefix(tag: str) -> str:
    return f"mk{tag}{os.getpid() % 10000}"


def _ring_with_chord() -> Topology:
    topology = generators.ring(5)
    topology.links.append(Link("r1", "r3"))
    return topology


def _assert_gone(prefix: str, pids: list[int]) -> None:
    """No namespace ``<prefix>-*``, none of ``pids`` alive, no run record."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [line for line in listed.splitlines() if line.startswith(f"{prefix}-")]
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    assert alive == []
    assert not (Path("/run/mrkm-testbed") / prefix).exists()


# -- configuration (no root) ---------------------------------------------------------------


def _plan() -> RouterPlan:
    return RouterPlan(
        "r1",
        "10.255.0.1",
        "10.255.0.2",
        (
            Port("r1-r2", "link", "10.100.1.1/24", "fd00:100:1::1/64", "r2", "10.255.0.2"),
            Port("gm0", "gm", "10.251.0.1/32"),
            Port("gcks0", "gcks", "10.252.0.1/24"),
            Port("mgmt", "mgmt", "10.250.0.1/16"),
        ),
    )


def test_ospfd_config_locks_every_link_and_keeps_stubs_passive() -> None:
    text = ospfd_config(_plan(), "LOCKLOCKLOCKLOCK")
    block = text.split("interface r1-r2\n", 1)[1].split("exit", 1)[0]
    assert " ip ospf authentication message-digest" in block
    assert " ip ospf message-digest-key 255 md5 LOCKLOCKLOCKLOCK" in block
    assert " ip ospf network point-to-point" in block
    assert " ip ospf hello-interval 1" in block and " ip ospf dead-interval 4" in block
    for stub in ("lo", "gm0", "gcks0"):
        assert " ip ospf passive" in text.split(f"interface {stub}\n", 1)[1].split("exit", 1)[0]
    assert "mgmt" not in text  # the management network stays out of OSPF
    assert "ospf router-id 10.255.0.1" in text


def test_ospf6d_config_uses_a_chain_with_only_the_lock_key() -> None:
    text = ospf6d_config(_plan(), "ab" * 32)
    assert "key chain mrkm\n key 65536\n  key-string " + "ab" * 32 in text
    assert " ipv6 ospf6 authentication keychain mrkm" in text
    assert "interface gm0" not in text and "mgmt" not in text


def test_pimd_config_has_static_rp_and_a_passive_igmp_gm_bridge() -> None:
    text = pimd_config(_plan())
    assert "ip pim rp 10.255.0.2 224.0.0.0/4" in text
    gm = text.split("interface gm0\n", 1)[1].split("exit", 1)[0]
    assert " ip pim passive" in gm and " ip igmp" in gm
    gcks = text.split("interface gcks0\n", 1)[1].split("exit", 1)[0]
    assert " ip pim\n" in gcks and " ip igmp" in gcks
    assert " ip igmp query-max-response-time 10" in gm  # 1 s: fast rejoin after a restart
    assert "ip pim join-prune-interval 10" in text
    for pim in ("lo", "r1-r2"):
        assert " ip pim" in text.split(f"interface {pim}\n", 1)[1].split("exit", 1)[0]
    assert "mgmt" not in text


# -- real networks (root) ---------------------------------------------------------------------


@pytest.mark.root
@pytest.mark.slow
def test_five_routers_get_keys_and_every_gm_accepts_a_rekey_sent_over_pim(tmp_path: Path) -> None:
    from testbed.mrkm_nodes import REKEY_GROUP
    from testbed.network import GCKS_LAN, GM_INTERFACE, Network
    from testbed.router import AdjacencyWatch

    prefix = _prefix("n")
    t0 = time.monotonic()
    with Network(_ring_with_chord(), tmp_path, prefix=prefix, pim_auth=False) as net:
        routers = list(net.routers.values())
        assert all(r.pim_ah is None for r in routers)
        assert "hello" not in (tmp_path / "r1" / "pimd.conf").read_text()
        # PIM needs no key; OSPF has only the lock keys: no adjacency may form yet.
        net.wait_pim(timeout=30)
        for router in routers:
            assert not [s for s in (router.ospf_neighbors() or {}).values() if s == "Full"]
        net.start_mrkm(timeout=30)
        assert net.gcks is not None
        assert [g["name"] for g in net.gcks.groups] == [V2_GROUP, V3_GROUP]  # no PIM group
        net.wait_ospf_full(timeout=40)
        bring_up = time.monotonic() - t0
        with AdjacencyWatch(routers) as watch:
            sent = net.rekey(V2_GROUP, timeout=20)  # every GM: rekey_accepted
            net.wait_installed(sent, timeout=20)  # every router sends the new key
            # An adjacency that lost its key goes down within the dead interval: watch it.
            watch_until = time.monotonic() + net.dead + 1
            while time.monotonic() < watch_until:
                time.sleep(0.1)
        assert watch.flaps == []
        assert watch.polls >= 5 * len(routers)
        net.wait_ospf_full(timeout=5)
        # The rekey left the GCKS on its rekey LAN and PIM forwarded it to every gm0.
        for router in routers:
            entry = router.mroute(f"{GCKS_LAN}.2", REKEY_GROUP)
            assert entry is not None, router.name
            assert GM_INTERFACE in entry[1], (router.name, entry)
        memory = net.memory()
        pids = list(net.process_pids())
        assert len(pids) >= 5 * 5 + 1  # 4 daemons + GM per router, the GCKS
    _assert_gone(prefix, pids)
    report = {
        "bring_up_s": round(bring_up, 2),
        "timings_s": {k: round(v, 3) for k, v in net.timings.items()},
        "rekey_accepted_s": round(sent["accepted_s"], 3),
        "memory_kib": memory,
    }
    (tmp_path / "network-report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "memory_kib"}))


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_exception_inside_the_context_still_cleans_up(
    tmp_path: Path, error: type[BaseException]
) -> None:
    from testbed.network import Network

    prefix = _prefix("e")
    pids: list[int] = []
    with pytest.raises(error), Network(generators.line(2), tmp_path, prefix=prefix) as net:
        net.start_mrkm(timeout=30)
        pids = list(net.process_pids())
        raise error("inside the network")
    assert len(pids) >= 2 * 6 + 1  # 4 daemons, a PIM AH shim and a GM per router; the GCKS
    _assert_gone(prefix, pids)


@pytest.mark.root
@pytest.mark.slow
def test_clean_net_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    from testbed import cleanup

    prefix = _prefix("k")
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from testbed.network import Network
        from topologies import generators
        net = Network(generators.line(2), Path({str(tmp_path / "run")!r}), prefix={prefix!r})
        net.start()
        net.start_mrkm()
        Path({str(ready)!r}).write_text(" ".join(map(str, net.process_pids())))
        time.sleep(600)
        """
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO))
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert owner.poll() is None, "the run died before it was up"
            assert time.monotonic() < deadline, "the run did not come up in 60 s"
            time.sleep(0.1)
        pids = [int(p) for p in ready.read_text().split()]
    finally:
        owner.send_signal(signal.SIGKILL)  # a crash: no cleanup at all
        owner.wait(10)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{prefix}-r1" in listed  # the FRR daemons and GMs keep the namespaces alive
    shims = cleanup.shim_pids(cleanup.RUNTIME_DIR / prefix)
    assert len(shims) == 2 and set(shims) <= set(pids)  # found by their status files
    assert cleanup.main(["--prefix", prefix]) == 0
    _assert_gone(prefix, pids)


def test_gm_liveness_is_two_and_a_half_of_the_slowest_heartbeat() -> None:
    from testbed.network import gm_liveness

    assert gm_liveness([{"name": "a", "heartbeat": 3}, {"name": "b"}]) == 150.0  # default 60 s
    assert gm_liveness([{"name": "a", "heartbeat": 2}]) == 5.0
    assert gm_liveness([{"name": "a", "heartbeat": 2}, {"name": "b", "heartbeat": 0}]) == 0.0
