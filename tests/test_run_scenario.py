"""The scenario runner on a real Mininet network (root): the smoke scenario end to end,
with PIM under MRKM's AH (the default): its PIM rekey rolls like the OSPF ones."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from testbed.run import run_scenario
from testbed.scenario import load_scenario
from topologies.registry import get_topology


@pytest.mark.root
@pytest.mark.slow
def test_smoke_scenario_converges_without_flaps_and_leaves_nothing(tmp_path: Path) -> None:
    scenario = load_scenario("smoke")
    prefix = f"mks{os.getpid() % 10000}"
    code, summary, folder = run_scenario(
        scenario, get_topology(scenario.topology), tmp_path, prefix, plots=True
    )
    assert summary["failure"] is None, summary["failure"]
    assert code == 0
    # Every rekey reached every GM and was installed on every router.
    assert summary["rekey_count"] == 3 and summary["incomplete_rekeys"] == []
    assert summary["rekeys_converged_fraction"] == 1
    rows = summary["rekeys"]
    assert all(
        r["members_accepted"] == r["members_installed"] == r["members_expected"] == 5 for r in rows
    ), rows
    assert summary["adjacency_flaps"] == 0 and summary["pim_flaps"] == 0
    # The PIM rekey: every shim sent with the new SPI (its t_wire), no PIM flap.
    [pim] = [r for r in rows if r["group"] == "pim-sm"]
    assert pim["members_on_wire"] == 5 and pim["wire_first_ms"] > 0, pim
    assert summary["pim_ah"]["protected"] > 0 and summary["pim_ah"]["accepted"] > 0
    assert not any(k.startswith("in:") for k in summary["pim_ah"]["drops"]), summary["pim_ah"]
    # The faults of the timeline are in the bundle, with their spans.
    events = [json.loads(line) for line in (folder / "events.jsonl").open()]
    faults = {e["kind"] for e in events if e["event"] == "fault"}
    assert faults == {"loss", "gm_restart"}
    assert (folder / "plots" / "key-convergence.png").stat().st_size > 10_000
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "frr" in json.dumps(manifest["versions"]).lower()
    # Nothing of the run is left behind.
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in listed
    assert not Path(f"/run/mrkm-testbed/{prefix}").exists()


@pytest.mark.root
@pytest.mark.slow
def test_baseline_runs_on_a_real_network_from_the_topology_zoo(tmp_path: Path) -> None:
    """`make run-scenario SCENARIO=baseline TOPO=geant`: GEANT (22 routers) from topohub."""
    scenario = load_scenario("baseline")
    topology = get_topology("geant")
    assert len(topology.routers) == 22
    prefix = f"mkg{os.getpid() % 10000}"
    code, summary, _ = run_scenario(scenario, topology, tmp_path, prefix, plots=False)
    assert summary["failure"] is None, summary["failure"]
    assert summary["registration"]["registered"] == 22
    assert summary["rekeys_converged_fraction"] == 1, summary["incomplete_rekeys"]
    assert summary["adjacency_flaps"] == 0, summary["flaps"]
    assert code == 0
