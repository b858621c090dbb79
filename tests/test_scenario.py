"""Scenario files: the shipped ones load; bad entries are named."""

from __future__ import annotations

import pytest

from testbed.scenario import (
    SCENARIO_DIR,
    ScenarioError,
    check_topology,
    load_scenario,
    parse_scenario,
)
from topologies.generators import line
from topologies.registry import get_topology

GOOD = {
    "name": "t",
    "question": "q?",
    "topology": "line5",
    "groups": [{"name": "g"}],
    "timeline": [{"at": 1, "do": "rekey", "group": "g"}],
    "duration": 5,
}


def test_baseline_loads() -> None:
    scenario = load_scenario("baseline")
    assert scenario.topology == "baseline" and scenario.timeline[0].do == "rekey"
    assert [a.metric for a in scenario.assertions] == [
        "adjacency_flaps",
        "rekeys_converged_fraction",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timeline": [{"at": 1, "do": "reboot"}]}, r"timeline\[0\].do: 'reboot' is not one of"),
        (
            {"timeline": [{"at": 1, "do": "rekey", "group": "x"}]},
            r"timeline\[0\].group: no group named 'x'",
        ),
        ({"timeline": [{"at": -1, "do": "rekey", "group": "g"}]}, r"timeline\[0\].at"),
        ({"timeline": [{"at": 1, "do": "link-down", "link": ["r1"]}]}, r"timeline\[0\].link"),
        (
            {"timeline": [{"at": 1, "do": "loss", "link": ["r1", "r2"], "percent": 150}]},
            r"timeline\[0\].percent",
        ),
        ({"duration": 0.5}, "shorter than the timeline"),
        ({"colour": "red"}, "unknown field"),
        ({"assertions": [{"metric": "x"}]}, r"assertions\[0\]"),
    ],
)
def test_bad_entries_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario({**GOOD, **change}, "t.yaml")


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match=r"unknown scenario 'nope'; known: .*baseline"):
        load_scenario("nope")


def test_assertion_messages_name_metric_and_miss() -> None:
    scenario = parse_scenario({**GOOD, "assertions": [{"metric": "flaps", "max": 0}]}, "t")
    assert scenario.assertions[0].check({"flaps": 2}) == "flaps = 2 exceeds 0 by 2"
    assert scenario.assertions[0].check({"flaps": 0}) is None


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"do": "rate", "link": ["r1", "r2"], "kbit": -1}, r"timeline\[0\].kbit"),
        ({"do": "kill-daemon", "router": "r1", "daemon": "bgpd"}, r"'bgpd' is not one of"),
        ({"do": "partition", "routers": []}, r"timeline\[0\].routers"),
        ({"do": "evict", "router": "r1", "group": "x"}, r"timeline\[0\].group: no group"),
        ({"do": "restart-daemon", "router": "r1"}, r"timeline\[0\].daemon: 'restart-daemon'"),
        ({"do": "attack"}, r"timeline\[0\].kind: 'attack' needs it"),
        ({"do": "attack", "kind": "smurf"}, r"timeline\[0\].kind: 'smurf' is not one of"),
        ({"do": "attack", "kind": "evicted-member", "router": "r1"}, r"\.group: attack"),
        ({"do": "attack", "kind": "replay-rekey", "group": "x"}, r"\.group: no group"),
        ({"do": "attack", "kind": "registration-flood", "packets": 0}, r"\.packets: expected"),
        ({"do": "attack", "kind": "registration-flood", "rate": -5}, r"\.rate: expected"),
        ({"do": "attack", "kind": "oversized", "size": 1.5}, r"\.size: expected a whole"),
        ({"do": "attack", "kind": "unauthorized-identity", "identity": "é"}, r"\.identity"),
    ],
)
def test_new_actions_check_their_fields(action: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario({**GOOD, "timeline": [{"at": 1, **action}]}, "t.yaml")


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"do": "restart-gm", "router": "r9"}, r"timeline\[0\]: line5 has no router r9"),
        ({"do": "link-down", "link": ["r1", "r3"]}, r"timeline\[0\].link: line5 has no link"),
        ({"do": "partition", "routers": ["r1", "x"]}, "has no router x"),
        (
            {"do": "loss", "link": ["r1", "r2"], "percent": 5, "from": "r3"},
            r"timeline\[0\].from: must name one end",
        ),
    ],
)
def test_names_are_checked_against_the_topology(action: dict[str, object], message: str) -> None:
    scenario = parse_scenario({**GOOD, "timeline": [{"at": 1, **action}]}, "t.yaml")
    with pytest.raises(ScenarioError, match=message):
        check_topology(scenario, line(5))


def test_every_shipped_scenario_fits_its_topology() -> None:
    for path in sorted(SCENARIO_DIR.glob("*.yaml")):
        scenario = load_scenario(str(path))
        check_topology(scenario, get_topology(scenario.topology))


def test_every_and_count_repeat_an_entry() -> None:
    entry = {"at": 2, "do": "rekey", "group": "g", "every": 1.5, "count": 3}
    scenario = parse_scenario({**GOOD, "timeline": [entry]}, "t.yaml")
    assert [(a.at, a.do) for a in scenario.timeline] == [(2, "rekey"), (3.5, "rekey"), (5, "rekey")]
    with pytest.raises(ScenarioError, match=r"timeline\[0\].count"):
        parse_scenario({**GOOD, "timeline": [{**entry, "count": 0}]}, "t.yaml")
    with pytest.raises(ScenarioError, match="shorter than the timeline"):
        parse_scenario({**GOOD, "timeline": [{**entry, "count": 9}]}, "t.yaml")


def test_loss_on_every_link_is_allowed_only_for_loss() -> None:
    lossy = {"at": 1, "do": "loss", "link": "all", "percent": 10}
    assert parse_scenario({**GOOD, "timeline": [lossy]}, "t.yaml").timeline[0].args["link"] == "all"
    with pytest.raises(ScenarioError, match=r"timeline\[0\].link"):
        parse_scenario({**GOOD, "timeline": [{"at": 1, "do": "link-down", "link": "all"}]}, "t")


def test_attack_actions_name_their_router_against_the_topology() -> None:
    action = {"at": 1, "do": "attack", "kind": "truncated", "router": "r9"}
    scenario = parse_scenario({**GOOD, "timeline": [action]}, "t.yaml")
    with pytest.raises(ScenarioError, match="line5 has no router r9"):
        check_topology(scenario, get_topology("line5"))
    attack = load_scenario("attack")
    assert {a.args["kind"] for a in attack.timeline} >= {"replay-rekey", "registration-flood"}
