"""Configuration errors give one clear message naming the field (MRKM issue 8).

GCKS and GM files (:mod:`mrkm.config`), scenarios (:mod:`testbed.scenario`)
and topologies (:mod:`topologies.registry`), then the same through the
command lines: ``mrkm gcks|gm --config`` and ``python -m testbed.run``
exit 2 with one line on stderr and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mrkm.config import ConfigError, load_gcks_config, load_gm_config
from testbed.scenario import ScenarioError, load_scenario
from topologies.model import TopologyError
from topologies.registry import get_topology

ROOT = Path(__file__).resolve().parent.parent
PSK = "11" * 32


def _gcks(**group: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "ospfv2-area0", "psk": PSK, "members": [{"id": "r1.mrkm"}]}
    base.update(group)
    return {"gcks": {"identity": "gcks.mrkm", "listen": "127.0.0.1:848"}, "groups": [base]}


def _gm(**fields: Any) -> dict[str, Any]:
    gm: dict[str, Any] = {
        "identity": "r1.mrkm",
        "gcks": "127.0.0.1:848",
        "groups": ["ospfv2-area0"],
        "psk": PSK,
    }
    gm.update(fields)
    return {"gm": gm}


def _write(tmp_path: Path, doc: object, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def gcks_error(tmp_path: Path, doc: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_gcks_config(_write(tmp_path, doc))
    return str(info.value)


def gm_error(tmp_path: Path, doc: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_gm_config(_write(tmp_path, doc))
    return str(info.value)


def test_valid_files_load(tmp_path: Path) -> None:
    # The fixtures themselves are fine: each test below breaks one thing.
    assert load_gcks_config(_write(tmp_path, _gcks())).groups[0].atd == 5
    assert load_gm_config(_write(tmp_path, _gm(), "gm.yaml")).identity == "r1.mrkm"


# -- YAML and structure -------------------------------------------------------------------


def test_bad_yaml_syntax(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, "gcks: {identity: [unclosed\n")
    assert "c.yaml" in message and "not valid YAML" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_gcks_config(tmp_path / "absent.yaml")


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert "expected a mapping" in gcks_error(tmp_path, "- just\n- a list\n")


def test_unknown_top_level_field(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, {**_gcks(), "grups": []})
    assert "unknown field(s) grups" in message


def test_unknown_gcks_field(tmp_path: Path) -> None:
    doc = _gcks()
    doc["gcks"]["listn"] = "1.2.3.4"
    assert gcks_error(tmp_path, doc).startswith("gcks: unknown field(s) listn")


def test_unknown_group_field(tmp_path: Path) -> None:
    assert gcks_error(tmp_path, _gcks(aatd=3)).startswith("groups[0]: unknown field(s) aatd")


def test_unknown_member_field(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(members=[{"id": "r1", "key": "x"}]))
    assert message.startswith("groups[0].members[0]: unknown field(s) key")


def test_groups_must_be_a_list(tmp_path: Path) -> None:
    doc = _gcks()
    doc["groups"] = {"name": "x"}
    assert gcks_error(tmp_path, doc).startswith("groups: expected a list")


def test_missing_identity(tmp_path: Path) -> None:
    doc = _gcks()
    del doc["gcks"]["identity"]
    assert gcks_error(tmp_path, doc).startswith("gcks.identity: missing")


# -- impossible timers ------------------------------------------------------------------


def test_atd_not_shorter_than_lifetime(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(lifetime=60, atd=60, rekey_margin=30))
    assert message.startswith("groups[0].atd: ATD 60 s must be shorter than the key lifetime")


def test_atd_beyond_16_bits(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(atd=70000, lifetime=100000))
    assert message.startswith("groups[0].atd:") and "RFC 9838 §4.4.3" in message


def test_negative_dtd(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(dtd=-1))
    assert message.startswith("groups[0].dtd:") and "RFC 9838 §4.4.3" in message


def test_rekey_margin_leaves_no_time_for_copies_and_activation(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(rekey_margin=5, atd=5))
    assert message.startswith("groups[0].rekey_margin: 5 s leaves no time")


def test_rekey_margin_not_shorter_than_lifetime(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(lifetime=30, rekey_margin=30, atd=2))
    assert message.startswith("groups[0].rekey_margin: must be shorter than the key lifetime")


def test_lifetime_too_short(tmp_path: Path) -> None:
    assert gcks_error(tmp_path, _gcks(lifetime=5)).startswith("groups[0].lifetime:")


def test_copies_must_ascend_from_zero(tmp_path: Path) -> None:
    assert gcks_error(tmp_path, _gcks(copies=[0.5, 0])).startswith("groups[0].copies:")


def test_heartbeat_beyond_pim_keepalive(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(heartbeat=300))
    assert message.startswith("groups[0].heartbeat:") and "210" in message


def test_prime_outside_the_rekey_margin(tmp_path: Path) -> None:
    assert gcks_error(tmp_path, _gcks(prime=100)).startswith("groups[0].prime:")


def test_gm_retransmit_timers_impossible(tmp_path: Path) -> None:
    message = gm_error(tmp_path, _gm(retransmit_initial=10, retransmit_max=5))
    assert message.startswith("gm.retransmit_initial:")


def test_gm_timer_that_is_not_a_number(tmp_path: Path) -> None:
    message = gm_error(tmp_path, _gm(retry_delay="soon"))
    assert message.startswith("gm.retry_delay: 'soon' is not a float")


def test_group_delay_that_is_not_a_number(tmp_path: Path) -> None:
    assert gcks_error(tmp_path, _gcks(atd="soon")).startswith("groups[0].atd: 'soon'")


def test_group_lifetime_that_is_not_a_number(tmp_path: Path) -> None:
    # Today: "groups[0]: '>=' not supported between instances of 'str' and 'int'".
    assert gcks_error(tmp_path, _gcks(lifetime="soon")).startswith("groups[0].lifetime:")


# -- keys and algorithms ------------------------------------------------------------------


def test_group_psk_too_short(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(psk="00" * 8))
    assert message == "groups[0].psk: a PSK needs at least 16 octets"


def test_member_psk_not_hex(tmp_path: Path) -> None:
    members = [{"id": "r1.mrkm"}, {"id": "r2.mrkm", "psk": "zz"}]
    message = gcks_error(tmp_path, _gcks(members=members))
    assert message == "groups[0].members[1].psk: not a hex string"


def test_gm_psk_too_short(tmp_path: Path) -> None:
    assert gm_error(tmp_path, _gm(psk="ab" * 15)).startswith("gm.psk: a PSK needs at least 16")


def test_psk_missing_without_ca(tmp_path: Path) -> None:
    doc = _gcks()
    del doc["groups"][0]["psk"]
    assert gcks_error(tmp_path, doc).startswith("groups[0].psk: needed unless")


def test_unknown_algorithm(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(algorithm="sha-3"))
    assert message.startswith("groups[0].algorithm: 'sha-3' is not one of md5, hmac-sha-1")


def test_unknown_protocol(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(protocol="isis"))
    assert message.startswith("groups[0].protocol: 'isis' is not one of ospfv2")


def test_ospfv3_with_md5(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(protocol="ospfv3", algorithm="md5"))
    assert message == "groups[0].algorithm: the OSPFv3 trailer (RFC 7166) has no Keyed-MD5"


def test_gm_certificate_without_key(tmp_path: Path) -> None:
    assert gm_error(tmp_path, _gm(certificate="r1.pem")).startswith("gm.key:")


# -- addresses ------------------------------------------------------------------------------


def test_listen_is_not_an_address(tmp_path: Path) -> None:
    doc = _gcks()
    doc["gcks"]["listen"] = "gcks.example:848"
    assert gcks_error(tmp_path, doc) == "gcks.listen: 'gcks.example' is not an IP address"


def test_listen_port_out_of_range(tmp_path: Path) -> None:
    doc = _gcks()
    doc["gcks"]["listen"] = "127.0.0.1:70000"
    assert gcks_error(tmp_path, doc) == "gcks.listen: port 70000 out of range"


def test_gm_gcks_endpoint_without_port_number(tmp_path: Path) -> None:
    message = gm_error(tmp_path, _gm(gcks="127.0.0.1:http"))
    assert message == "gm.gcks: '127.0.0.1:http' is not ADDRESS:PORT"


def test_rekey_address_not_multicast(tmp_path: Path) -> None:
    message = gcks_error(tmp_path, _gcks(rekey_address="10.0.0.1"))
    assert message == "groups[0].rekey_address: must be a multicast group"


def test_gm_rekey_group_not_multicast(tmp_path: Path) -> None:
    message = gm_error(tmp_path, _gm(rekey_groups=["10.0.0.1:848"]))
    assert message == "gm.rekey_groups[0]: must be a multicast group"


# -- scenarios and topologies ------------------------------------------------------------


def test_unknown_scenario_lists_known_ones() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario("no-such-scenario")
    message = str(info.value)
    assert message.startswith("unknown scenario 'no-such-scenario'; known: ")
    assert "baseline" in message and "smoke" in message


def test_unknown_topology_lists_known_ones() -> None:
    with pytest.raises(TopologyError) as info:
        get_topology("no-such-topology")
    message = str(info.value)
    assert message.startswith("unknown topology 'no-such-topology'")
    assert "baseline" in message and "python -m topologies --list" in message


def _scenario(tmp_path: Path, **fields: Any) -> Path:
    doc: dict[str, Any] = {
        "name": "t",
        "question": "q?",
        "topology": "line5",
        "groups": [{"name": "ospfv2-area0"}],
        "timeline": [{"at": 1, "do": "rekey", "group": "ospfv2-area0"}],
    }
    doc.update(fields)
    return _write(tmp_path, doc, "scenario.yaml")


def test_scenario_unknown_field(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"unknown field\(s\) durtion"):
        load_scenario(str(_scenario(tmp_path, durtion=5)))


def test_scenario_unknown_action(tmp_path: Path) -> None:
    path = _scenario(tmp_path, timeline=[{"at": 1, "do": "reboot"}])
    with pytest.raises(ScenarioError, match=r"timeline\[0\]\.do: 'reboot' is not one of rekey"):
        load_scenario(str(path))


def test_scenario_rekey_of_unknown_group(tmp_path: Path) -> None:
    path = _scenario(tmp_path, timeline=[{"at": 1, "do": "rekey", "group": "nope"}])
    with pytest.raises(ScenarioError, match=r"timeline\[0\]\.group: no group named 'nope'"):
        load_scenario(str(path))


def test_scenario_bad_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: [x\n", "broken.yaml")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(str(path))


def test_scenario_group_with_impossible_timer(tmp_path: Path) -> None:
    # Refused when the scenario loads, not once the network is built.
    path = _scenario(tmp_path, groups=[{"name": "ospfv2-area0", "atd": 700}])
    with pytest.raises(ScenarioError, match=r"groups\[0\]\.atd"):
        load_scenario(str(path))


# -- command lines ----------------------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )


@pytest.mark.parametrize("command", ["gcks", "gm"])
def test_cli_reports_one_line_and_exits_2(tmp_path: Path, command: str) -> None:
    doc = _gcks(atd=700) if command == "gcks" else _gm(psk="00")
    path = _write(tmp_path, doc, "bad.yaml")
    proc = _run("-m", "mrkm", command, "--config", str(path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    field = "groups[0].atd" if command == "gcks" else "gm.psk"
    assert lines[0].startswith(f"mrkm {command}: configuration error: {field}: ")


def test_cli_bad_yaml_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, "gcks: [\n", "bad.yaml")
    proc = _run("-m", "mrkm", "gcks", "--config", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not valid YAML" in proc.stderr


def test_testbed_run_unknown_scenario_exits_2_without_root() -> None:
    # The name is checked before the root check, so this path needs no root.
    proc = _run("-m", "testbed.run", "--scenario", "no-such-scenario")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown scenario 'no-such-scenario'; known: " in proc.stderr
    assert "baseline" in proc.stderr


def test_testbed_run_unknown_topology_exits_2() -> None:
    proc = _run("-m", "testbed.run", "--scenario", "smoke", "--topo", "no-such-topology")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown topology 'no-such-topology'" in proc.stderr


@pytest.mark.parametrize("value", ["0", "11", "-1"])
def test_testbed_run_refuses_a_poll_period_out_of_range(value: str) -> None:
    proc = _run("-m", "testbed.run", "--scenario", "smoke", "--poll-period", value)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"--poll-period: {float(value)} s is outside 0.01 to 10 s" in proc.stderr


# -- inputs that today escape as a traceback (fixes in the fuzz/config report) ----------------


def test_copies_that_are_not_numbers(tmp_path: Path) -> None:
    assert gcks_error(tmp_path, _gcks(copies=["x"])).startswith("groups[0].copies:")


def test_cookie_threshold_that_is_not_a_number(tmp_path: Path) -> None:
    doc = _gcks()
    doc["gcks"]["cookie_threshold"] = "many"
    assert gcks_error(tmp_path, doc).startswith("gcks.cookie_threshold:")


def test_group_name_that_is_not_text(tmp_path: Path) -> None:
    assert gcks_error(tmp_path, _gcks(name=["a"])).startswith("groups[0].name:")
