"""The namespace lab itself: a GCKS and two GMs register over the management LAN."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testbed.processes import events_of, wait_until
from tests.lab import lab


@pytest.mark.root
def test_lab_registers_gms_over_the_management_lan_and_cleans_up(tmp_path: Path) -> None:
    with lab(tmp_path, "t") as net:
        r1, r2 = net.add_router("r1"), net.add_router("r2")
        net.link("r1", "r2")
        assert r1.exec("ping", "-c1", "-W2", "10.60.1.2").returncode == 0
        net.start_gcks(
            [{"name": "ospfv2-area0", "rekey_address": "239.192.0.1", "rekey_port": 848}],
            ["r1.mrkm", "r2.mrkm"],
        )
        for router in (r1, r2):
            net.start_gm(
                router,
                ["ospfv2-area0"],
                [{"type": "file", "path": str(router.workdir / "keys.json")}],
            )
        wait_until(
            lambda: len(events_of(net.events("gcks"), "member_registered")) == 2,
            20,
            "two registrations",
        )
        control = tmp_path / "gcks.sock"
        from mrkm.runtime.control import request

        answer = request(control, {"cmd": "rekey", "group": "ospfv2-area0"})
        assert answer["ok"]
        wait_until(
            lambda: all(
                len(json.loads((r.workdir / "keys.json").read_text())["rows"]) == 2
                for r in (r1, r2)
                if (r.workdir / "keys.json").exists()
            ),
            20,
            "the rekey on both routers",
        )
        namespaces = list(net.namespaces)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed.split() for ns in namespaces)
