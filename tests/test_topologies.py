"""Topologies: YAML loader, generators, Zoo/SNDlib imports, addressing, registry, CLI.

All fast and without root: nothing here builds a network.
"""

from __future__ import annotations

import copy
import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from topologies import generators, zoo
from topologies.__main__ import main
from topologies.addressing import GCKS_MGMT_ADDRESS, assign, lan_address6
from topologies.loader import load_topology, parse_topology
from topologies.model import Lan, Link, Router, Topology, TopologyError
from topologies.registry import DATA_DIR, get_topology, known_names, resolve, yaml_names
from topologies.validate import components, validate

ROOT = Path(__file__).resolve().parent.parent


def check_addressed(topology: Topology) -> None:
    """Everything the network builder relies on: valid, connected, unique addresses."""
    validate(topology)
    assert len(components(topology)) == 1
    assert [r.number for r in topology.routers] == list(range(1, len(topology.routers) + 1))
    assert [link.number for link in topology.links] == list(range(1, len(topology.links) + 1))
    v4: list[str] = []
    v6: list[str] = []
    for router in topology.routers:
        v4 += [router.loopback, router.mgmt_address]
        assert ipaddress.ip_address(router.loopback) in ipaddress.ip_network("10.255.0.0/16")
        assert ipaddress.ip_address(router.mgmt_address) in ipaddress.ip_network("10.250.0.0/16")
    assert GCKS_MGMT_ADDRESS not in v4
    interfaces: dict[str, set[str]] = {r.name: set() for r in topology.routers}
    for link in topology.links:
        for end, ip, ip6 in ((link.a, link.a_ip, link.a_ip6), (link.b, link.b_ip, link.b_ip6)):
            iface4 = ipaddress.ip_interface(ip)
            iface6 = ipaddress.ip_interface(ip6)
            assert iface4.network.prefixlen == 24 and iface6.network.prefixlen == 64
            v4.append(str(iface4.ip))
            v6.append(str(iface6.ip))
            name = link.interface(end)
            assert 1 <= len(name) <= 15
            assert name not in interfaces[end]
            interfaces[end].add(name)
        assert (
            ipaddress.ip_interface(link.a_ip).network == ipaddress.ip_interface(link.b_ip).network
        )
        net6_a = ipaddress.ip_interface(link.a_ip6).network
        assert net6_a == ipaddress.ip_interface(link.b_ip6).network
    for lan in topology.lans:
        assert set(lan.addresses) == set(lan.routers)
        for member in lan.routers:
            v4.append(str(ipaddress.ip_interface(lan.addresses[member]).ip))
            v6.append(str(ipaddress.ip_interface(lan_address6(lan, member)).ip))
    assert len(v4) == len(set(v4)), "duplicate IPv4 address"
    assert len(v6) == len(set(v6)), "duplicate IPv6 address"


# --- generators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topology", "routers", "links"),
    [
        (generators.line(2), 2, 1),
        (generators.line(7), 7, 6),
        (generators.ring(3), 3, 3),
        (generators.ring(12), 12, 12),
        (generators.grid(1, 2), 2, 1),
        (generators.grid(3, 4), 12, 17),
        (generators.star(2), 2, 1),
        (generators.star(9), 9, 8),
        (generators.random(2, seed=1), 2, 1),
        (generators.random(30, seed=5), 30, 45),
        (generators.random(30, degree=4, seed=5), 30, 60),
        (generators.random(30, edges=29, seed=5), 30, 29),
        (generators.random(6, edges=15, seed=5), 6, 15),  # complete graph
    ],
    ids=lambda value: value.name if isinstance(value, Topology) else str(value),
)
def test_generators_are_connected_and_addressable(
    topology: Topology, routers: int, links: int
) -> None:
    assert len(topology.routers) == routers
    assert len(topology.links) == links
    assert [r.name for r in topology.routers] == [f"r{i}" for i in range(1, routers + 1)]
    check_addressed(assign(topology))


def test_generator_shapes() -> None:
    assert [(link.a, link.b) for link in generators.ring(4).links] == [
        ("r1", "r2"),
        ("r1", "r4"),
        ("r2", "r3"),
        ("r3", "r4"),
    ]
    star = generators.star(5)
    assert sorted(star.neighbors("r1")) == ["r2", "r3", "r4", "r5"]
    grid = generators.grid(2, 3)
    assert sorted(grid.neighbors("r5")) == ["r2", "r4", "r6"]
    assert grid.router("r6").label == "row 2, column 3"


def test_random_is_deterministic_for_a_seed() -> None:
    first = generators.random(40, degree=3.5, seed=11)
    again = generators.random(40, degree=3.5, seed=11)
    other = generators.random(40, degree=3.5, seed=12)
    pairs = [(link.a, link.b) for link in first.links]
    assert pairs == [(link.a, link.b) for link in again.links]
    assert pairs != [(link.a, link.b) for link in other.links]
    assert first.name == "random40-d3.5-s11"
    # A pinned sample guards against a change of algorithm that would silently
    # change every recorded random topology.
    assert [(link.a, link.b) for link in generators.random(8, edges=10, seed=2).links] == [
        ("r1", "r4"),
        ("r2", "r5"),
        ("r3", "r5"),
        ("r3", "r6"),
        ("r3", "r7"),
        ("r3", "r8"),
        ("r4", "r6"),
        ("r4", "r8"),
        ("r5", "r6"),
        ("r7", "r8"),
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: generators.line(1), "line: n = 1"),
        (lambda: generators.ring(2), "ring: n = 2"),
        (lambda: generators.grid(1, 1), "grid: needs at least 2"),
        (lambda: generators.grid(0, 3), "grid: rows = 0"),
        (lambda: generators.star(1), "star: n = 1"),
        (lambda: generators.random(5, edges=3), "random: 3 links for 5 routers"),
        (lambda: generators.random(5, edges=11), "random: 11 links for 5 routers"),
        (lambda: generators.random(5, degree=0), "random: degree"),
        (lambda: generators.random(5, degree=2, edges=4), "not both"),
    ],
)
def test_generator_arguments_are_checked(call: object, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        call()  # type: ignore[operator]


def test_large_random_topology_addresses_a_thousand_links() -> None:
    topology = assign(generators.random(600, edges=1000, seed=3))
    check_addressed(topology)
    last = topology.links[-1]
    assert last.number == 1000
    assert last.a_ip.startswith("10.103.232.")  # 1000 = 3 * 256 + 232
    assert last.a_ip6.startswith("fd00:100:1000::")


# --- addressing ---------------------------------------------------------------------------------


def test_addressing_follows_the_plan() -> None:
    topology = assign(generators.line(3))
    r1, r2, r3 = topology.routers
    assert (r1.number, r1.loopback, r1.mgmt_address) == (1, "10.255.0.1", "10.250.0.1")
    assert (r3.number, r3.loopback) == (3, "10.255.0.3")
    first, second = topology.links
    assert (first.a_ip, first.b_ip) == ("10.100.1.1/24", "10.100.1.2/24")
    assert (first.a_ip6, first.b_ip6) == ("fd00:100:1::1/64", "fd00:100:1::2/64")
    assert (second.a_ip, second.b_ip) == ("10.100.2.2/24", "10.100.2.3/24")
    assert first.interface("r1") == "r1-r2" and first.interface("r2") == "r2-r1"
    assert r2.name == "r2"


def test_addressing_of_many_routers_and_links() -> None:
    topology = assign(generators.line(300))
    router = topology.router("r300")
    assert (router.loopback, router.mgmt_address) == ("10.255.1.44", "10.250.1.44")
    link = topology.links[255]  # link 256: r256 - r257
    assert (link.number, link.a_ip, link.b_ip) == (256, "10.101.0.6/24", "10.101.0.7/24")
    assert link.a_ip6 == "fd00:100:256::6/64"
    check_addressed(topology)


def test_addressing_separates_hosts_that_fold_together() -> None:
    topology = generators.line(251)
    topology.links.append(Link(a="r1", b="r251"))
    addressed = assign(topology)
    link = addressed.links[-1]
    assert (link.a_ip, link.b_ip) == ("10.100.251.1/24", "10.100.251.251/24")
    lan = generators.line(251)
    lan.lans.append(Lan(name="big", routers=["r1", "r251", "r2"]))
    addressed = assign(lan)
    assert addressed.lans[0].addresses["r1"] == "10.99.1.1/24"
    assert addressed.lans[0].addresses["r251"] == "10.99.1.251/24"
    check_addressed(addressed)


def test_assign_leaves_its_input_alone() -> None:
    topology = generators.ring(4)
    before = copy.deepcopy(topology)
    assign(topology)
    assert topology == before


# --- YAML loader ------------------------------------------------------------------------------

GOOD = """\
routers: [r1, r2, r3, r4]
links:
  - [r1, r2]
  - {a: r2, b: r3, loss: 1.5, rate: 100, cost: 20}
  - [r3, r4]
"""


def load_text(tmp_path: Path, text: str) -> Topology:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return load_topology(path)


def test_loader_reads_every_field(tmp_path: Path) -> None:
    topology = load_text(
        tmp_path,
        """\
name: demo
description: all fields
defaults: {flavor: bird, loss: 0.5, rate: 50, cost: 7}
routers:
  - r1
  - {name: r2, flavor: frr, label: Chicago}
  - {name: r3}
links:
  - [r1, r2]
  - {a: r2, b: r3, loss: 3, rate: null, cost: 30}
lans:
  - {name: lan1, routers: [r1, r2, r3]}
gcks: r2
rp: r3
""",
    )
    assert topology.name == "demo" and topology.description == "all fields"
    assert [(r.name, r.flavor, r.label) for r in topology.routers] == [
        ("r1", "bird", ""),
        ("r2", "frr", "Chicago"),
        ("r3", "bird", ""),
    ]
    first, second = topology.links
    assert (first.loss, first.rate, first.cost) == (0.5, 50, 7)
    assert (second.loss, second.rate, second.cost) == (3, None, 30)
    assert topology.lans == [Lan(name="lan1", routers=["r1", "r2", "r3"])]
    assert (topology.gcks_router, topology.rp) == ("r2", "r3")


def test_loader_defaults(tmp_path: Path) -> None:
    topology = load_text(tmp_path, GOOD)
    assert topology.name == "t"
    assert topology.gcks_router is None and topology.rp is None
    assert (topology.links[0].loss, topology.links[0].rate, topology.links[0].cost) == (
        0.0,
        None,
        10,
    )
    assert load_text(tmp_path, GOOD + "gcks: oob\n").gcks_router is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "routerz: []\n", "unknown field 'routerz'"),
        ("links: []\n", "routers: missing"),
        ("- r1\n", "topology file: expected a mapping"),
        (GOOD.replace("[r3, r4]", "[r3, r9]"), "links[2].b: no router named 'r9'"),
        (GOOD.replace("[r1, r2]", "[r9, r2]"), "links[0].a: no router named 'r9'"),
        (GOOD.replace("[r1, r2]", "{a: r1}"), "links[0].b: missing"),
        (GOOD.replace("[r1, r2]", "[r1, r2, r3]"), "links[0]: a bare link is a pair"),
        (GOOD.replace("loss: 1.5", "los: 1.5"), "links[1]: unknown field 'los'"),
        (GOOD.replace("[r3, r4]", "[r3, r3]"), "links[2]: links 'r3' to itself"),
        (GOOD + "  - [r2, r1]\n", "links[3]: duplicates links[0]"),
        (GOOD.replace("loss: 1.5", "loss: 120"), "links[1].loss: 120 is outside 0–100"),
        (GOOD.replace("loss: 1.5", "loss: -1"), "links[1].loss: -1 is outside 0–100"),
        (GOOD.replace("loss: 1.5", "loss: lots"), "links[1].loss: expected a number"),
        (GOOD.replace("rate: 100", "rate: 0"), "links[1].rate: 0 is not a rate > 0"),
        (GOOD.replace("cost: 20", "cost: 0"), "links[1].cost: 0 is outside 1–65535"),
        (GOOD.replace("cost: 20", "cost: 2.5"), "links[1].cost: expected an integer"),
        (GOOD.replace("[r1, r2, r3, r4]", "[r1, r2, r3, r4, router5]"), "routers[4].name"),
        (GOOD.replace("[r1, r2, r3, r4]", "[R1, r2, r3, r4]"), "routers[0].name: 'R1'"),
        (GOOD.replace("[r1, r2, r3, r4]", "[r1, r2, r3, r4, r2]"), "routers[4].name: 'r2' dup"),
        (GOOD.replace("[r1, r2, r3, r4]", "[r1, r2, r3, r4, gcks]"), "routers[4].name: 'gcks'"),
        (
            GOOD.replace("[r1, r2, r3, r4]", "[r1, r2, r3, r4, {name: r5, flavor: quagga}]"),
            "routers[4].flavor: 'quagga'",
        ),
        (
            GOOD.replace("[r1, r2, r3, r4]", "[r1, r2, r3, r4, {name: r5, colour: red}]"),
            "routers[4]: unknown field 'colour'",
        ),
        (
            GOOD.replace("[r1, r2, r3, r4]", "[r1, r2, r3, r4, {label: x}]"),
            "routers[4].name: missing",
        ),
        (
            GOOD.replace("[r1, r2, r3, r4]", "[r1, r2, r3, r4, r5, r6]") + "  - [r5, r6]\n",
            "disconnected (2 parts): r5, r6 cannot reach r1",
        ),
        (GOOD + "lans:\n  - {name: lan1, routers: [r1]}\n", "lans[0].routers: a LAN needs"),
        (GOOD + "lans:\n  - {name: lan1, routers: [r1, r9]}\n", "lans[0].routers[1]: no router"),
        (GOOD + "lans:\n  - {name: lan1, routers: [r1, r1]}\n", "lans[0].routers[1]: 'r1'"),
        (GOOD + "lans:\n  - {name: Lan_1, routers: [r1, r2]}\n", "lans[0].name: 'Lan_1'"),
        (GOOD + "lans:\n  - {name: r1, routers: [r1, r2]}\n", "lans[0].name: 'r1' is reserved"),
        (GOOD + "lans:\n  - {name: l1, routers: [r1, r2], mtu: 9000}\n", "lans[0]: unknown"),
        (
            GOOD + "lans:\n  - {name: l1, routers: [r1, r2]}\n  - {name: l1, routers: [r3, r4]}\n",
            "lans[1].name: 'l1' duplicates lans[0]",
        ),
        (GOOD + "gcks: r9\n", "gcks: no router named 'r9'"),
        (GOOD + "rp: r9\n", "rp: no router named 'r9'"),
        (GOOD + "defaults: {loss: 200}\n", "defaults.loss: 200"),
        (GOOD + "defaults: {cost: 0}\n", "defaults.cost: 0"),
        (GOOD + "defaults: {delay: 5}\n", "defaults: unknown field 'delay'"),
        (GOOD + "name: [x]\n", "name: expected text"),
        ("routers: [r1\n", "not valid YAML"),
    ],
)
def test_loader_errors_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TopologyError) as caught:
        load_text(tmp_path, text)
    assert str(caught.value).startswith(f"{tmp_path / 't.yaml'}: ")
    assert message in str(caught.value)


def test_loader_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology(tmp_path / "absent.yaml")


def test_validate_applies_to_models_built_in_code() -> None:
    topology = Topology(name="t", routers=[Router(name="r1")], links=[Link(a="r1", b="r2")])
    with pytest.raises(TopologyError, match=r"links\[0\]\.b: no router named 'r2'"):
        validate(topology)
    with pytest.raises(TopologyError, match="routers: a topology needs"):
        validate(Topology(name="t", routers=[], links=[]))
    with pytest.raises(TopologyError, match=r"links\[0\]\.loss"):
        assign(
            Topology(name="t", routers=[Router("r1"), Router("r2")], links=[Link("r1", "r2", 101)])
        )


@pytest.mark.parametrize("path", sorted(DATA_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_yaml_files_load(path: Path) -> None:
    topology = load_topology(path)
    assert topology.name == path.stem
    assert topology.description
    check_addressed(assign(topology))


def test_shipped_examples() -> None:
    line5 = load_topology(DATA_DIR / "line5.yaml")
    generated = generators.line(5)
    assert (line5.routers, line5.links) == (generated.routers, generated.links)
    lan = load_topology(DATA_DIR / "lan-example.yaml")
    assert lan.gcks_router == "r4" and lan.router("r4").flavor == "bird"
    assert lan.lans[0].routers == ["r1", "r2", "r3"]
    baseline = load_topology(DATA_DIR / "baseline.yaml")
    assert len(baseline.routers) == 10 and len(baseline.links) == 15
    for i in range(len(baseline.links)):  # no single link failure partitions it
        cut = copy.deepcopy(baseline)
        del cut.links[i]
        assert len(components(cut)) == 1


def test_parse_topology_takes_parsed_data() -> None:
    topology = parse_topology({"routers": ["a1", "b2"], "links": [["a1", "b2"]]}, "x")
    assert topology.name == "x" and topology.links == [Link(a="a1", b="b2")]


# --- Topology Zoo / SNDlib --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(zoo.zoo_names()))
def test_every_zoo_network_imports(name: str) -> None:
    topology = get_topology(name)
    assert topology.name == name
    assert [r.name for r in topology.routers] == [
        f"r{i}" for i in range(1, len(topology.routers) + 1)
    ]
    assert all(r.label for r in topology.routers)
    check_addressed(topology)


def test_zoo_names_and_contents() -> None:
    names = zoo.zoo_names()
    assert {"abilene", "geant", "nobel-eu", "germany50", "aarnet", "geant2012"} <= set(names)
    assert names["abilene"] == "sndlib/abilene"  # the clash goes to SNDlib
    assert len(names) >= 200
    geant = zoo.zoo_topology("GEANT")
    assert (len(geant.routers), len(geant.links)) == (22, 36)
    assert geant.description.startswith("topohub ")
    zoo_abilene = zoo.zoo_topology("topozoo/Abilene")
    assert zoo_abilene.name == "topozoo-abilene"
    assert "New York" in [r.label for r in zoo_abilene.routers]
    with pytest.raises(TopologyError, match="no Topology Zoo / SNDlib network named 'nowhere'"):
        zoo.zoo_topology("nowhere")


def test_zoo_distance_costs() -> None:
    uniform = zoo.zoo_topology("abilene")
    by_distance = zoo.zoo_topology("abilene", costs="distance")
    assert {link.cost for link in uniform.links} == {10}
    assert len({link.cost for link in by_distance.links}) > 5


def test_node_link_conversion_cleans_the_graph() -> None:
    data = {
        "nodes": [
            {"id": "7", "name": "Paris"},
            {"id": "8", "name": "Berlin"},
            {"id": "9", "name": "Rome"},
            {"id": "10", "name": "Oslo"},
            {"id": "11"},
            {"id": "12", "name": "Island"},
        ],
        "edges": [
            {"source": "7", "target": "8"},
            {"source": "8", "target": "7"},  # duplicate, reversed
            {"source": "8", "target": "8"},  # self-loop
            {"source": "8", "target": "9"},
            {"source": "9", "target": "11"},
            {"source": "10", "target": "12"},  # a smaller component
        ],
    }
    topology = zoo.from_node_link(data, "test")
    assert [(r.name, r.label) for r in topology.routers] == [
        ("r1", "Paris"),
        ("r2", "Berlin"),
        ("r3", "Rome"),
        ("r4", "11"),
    ]
    assert [(link.a, link.b) for link in topology.links] == [
        ("r1", "r2"),
        ("r2", "r3"),
        ("r3", "r4"),
    ]
    assert "dropped 2 nodes outside the largest connected component" in topology.description
    assert "1 self-loops" in topology.description and "1 duplicate edges" in topology.description
    with pytest.raises(TopologyError, match="not a node-link graph"):
        zoo.from_node_link({"nodes": []}, "empty")


# --- registry and command line ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "routers", "links"),
    [
        ("line5", 5, 4),
        ("LINE5", 5, 4),
        ("line9", 9, 8),
        ("ring6", 6, 6),
        ("grid3x4", 12, 17),
        ("star5", 5, 4),
        ("random20-s7", 20, 30),
        ("random20-d4-s7", 20, 40),
        ("random20-e25-s7", 20, 25),
        ("baseline", 10, 15),
        ("lan-example", 4, 2),
        ("geant", 22, 36),
        ("GEANT", 22, 36),
        ("abilene", 12, 15),
        ("nobel-eu", 28, 41),
        ("topozoo/Abilene", 11, 14),
        ("gabriel/25/0", 25, 40),
    ],
)
def test_registry_names_resolve(name: str, routers: int, links: int) -> None:
    topology = get_topology(name)
    assert (len(topology.routers), len(topology.links)) == (routers, links)
    check_addressed(topology)


def test_registry_yaml_path_and_listing(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD)
    assert get_topology(str(path)).name == "mine"
    assert set(yaml_names()) >= {"baseline", "lan-example", "line5"}
    names = known_names()
    assert "baseline" in names and "geant" in names
    assert resolve("random10-s1")().name == "random10-s1"


def test_registry_unknown_name_lists_known_ones() -> None:
    with pytest.raises(TopologyError) as caught:
        get_topology("geamt")
    message = str(caught.value)
    assert "unknown topology 'geamt'" in message
    assert "Did you mean: geant" in message
    assert "baseline, lan-example, line5" in message
    assert "grid<R>x<C>" in message and "random<N>-s<seed>" in message
    with pytest.raises(TopologyError, match="line: n = 0"):
        get_topology("line0")


def test_cli_shows_a_topology(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["baseline"]) == 0
    out = capsys.readouterr().out
    assert "topology baseline" in out
    assert "routers    10" in out and "links      15" in out
    assert "neighbors  min 2, mean 3.00" in out
    assert "Kansas City" in out and "10.100.1.1/24" in out
    assert main(["lan-example", "--brief"]) == 0
    out = capsys.readouterr().out
    assert "LANs       1" in out and "GCKS       on router r4" in out and "routers:" not in out
    assert main(["ring3", "--json"]) == 0
    assert '"loopback": "10.255.0.1"' in capsys.readouterr().out


def test_cli_list_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "nobel-eu" in out and "star<N>" in out
    assert main(["nowhere"]) == 1
    assert "unknown topology 'nowhere'" in capsys.readouterr().err
    assert main([]) == 2


def test_python_dash_m_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "topologies", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "usage: python -m topologies" in done.stdout and "--list" in done.stdout
