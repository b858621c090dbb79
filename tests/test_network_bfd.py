"""BFD on the OSPF links (``Network(bfd=True)``): a silent link failure is seen fast.

A silent failure (every frame dropped at both ends' ingress, carrier still
up) is what BFD is for: without it OSPF notices only when the dead interval
(4 s) runs out; with bfdd at 100 ms x 3 (``reference/pim-local-and-tshark.md``
§5) ospfd drops the neighbour in about 0.3 s. The root test measures both on
the same ring, with OSPF formed from an in-band bootstrap key (no MRKM
process needed to form it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from testbed.frr_config import BFD_PROFILE, Port, RouterPlan, bfdd_config, ospfd_config
from testbed.network import Network
from testbed.processes import wait_until
from testbed.router import DAEMONS_BFD
from topologies import generators


def test_bfd_adds_bfdd_and_the_profile_to_every_ospf_link() -> None:
    ports = (Port("r1-r2", "link", "10.0.0.1/24"), Port("gm0", "gm", "10.251.0.1/32"))
    plan = RouterPlan("r1", "10.255.0.1", "10.255.0.1", ports, bfd=True)
    ospfd = ospfd_config(plan, "lock")
    link = ospfd.split("interface r1-r2", 1)[1].split("exit", 1)[0]
    assert " ip ospf bfd\n" in link and f" ip ospf bfd profile {BFD_PROFILE}\n" in link
    assert "bfd" not in ospfd.split("interface gm0", 1)[1].split("exit", 1)[0]
    assert "transmit-interval 100" in bfdd_config(plan)
    assert DAEMONS_BFD.index("bfdd") < DAEMONS_BFD.index("ospfd")
    assert " ip ospf bfd" not in ospfd_config(RouterPlan("r1", "a", "a", ports), "lock")


def _time_to_notice_a_silent_failure(tmp_path: Path, bfd: bool) -> float:
    prefix = f"mkbf{int(bfd)}{os.getpid() % 10000}"
    with Network(
        generators.ring(4), tmp_path / prefix, prefix=prefix, registration="in-band", bfd=bfd
    ) as net:
        net.wait_ospf_full(protocols=["OSPFv2"])
        r1 = net.routers["r1"]
        if bfd:
            wait_until(
                lambda: r1.vtysh("show bfd peers brief", check=False).count("up") >= 2,
                15,
                "r1's BFD sessions with both ring neighbours",
            )
        link = next(lk for lk in net.topology.links if {lk.a, lk.b} == {"r1", "r2"})
        for router in ("r1", "r2"):  # drop every frame at both ends: carrier stays up
            ifname = link.interface(router)
            net.run(router, "nft", f"add table netdev cut; add chain netdev cut in "
                    f"{{ type filter hook ingress device {ifname} priority 0; }}; "
                    "add rule netdev cut in drop")  # fmt: skip
        cut = time.monotonic()
        ifname = link.interface("r1")

        def full_on_link() -> bool:
            states = r1.ospf_neighbors() or {}
            return any(i == ifname and s.startswith("Full") for (i, _), s in states.items())

        wait_until(lambda: not full_on_link(), 15, "r1 to drop its r2 adjacency", interval=0.02)
        return time.monotonic() - cut


@pytest.mark.root
@pytest.mark.slow
def test_bfd_notices_a_silent_failure_well_before_the_dead_interval(tmp_path: Path) -> None:
    with_bfd = _time_to_notice_a_silent_failure(tmp_path, bfd=True)
    without = _time_to_notice_a_silent_failure(tmp_path, bfd=False)
    print(f"silent failure noticed after {with_bfd:.2f} s with BFD, {without:.2f} s without")
    assert with_bfd < 1.5  # 3 x 100 ms detection, plus polling and a loaded host
    assert without > 2.0  # only the 4 s dead interval notices it
    assert with_bfd < without / 2
