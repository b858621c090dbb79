"""The attacker's packets against real in-memory MRKM cores, and the attack verdicts.

Every crafted message goes to a real :class:`~mrkm.protocol.gm.GroupMember` or
:class:`~mrkm.protocol.gcks.KeyServer` (the harness of STYLE.md item 9), so
these tests show which check refuses each attack and that the GM's keys do
not move. The root test at the end runs ``scenarios/attack.yaml`` on Mininet.
"""

from __future__ import annotations

import ipaddress
import os
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from scapy.layers.inet import IP, UDP, defragment

from mrkm.crypto.signatures import public_key_der
from mrkm.protocol.gm import GroupMember
from mrkm.protocol.group import read_group
from mrkm.protocol.rekey import open_rekey
from mrkm.wire import GsaPayload, KdPayload, find
from testbed import attacks as A
from testbed.verdicts import daemon_rejections, derived, unauthorized_key_changes
from tests.harness import T0, Harness
from topologies.addressing import assign
from topologies.generators import line

GROUP = "ospfv2-area0"
SOURCE = ("10.252.0.2", 848)


def rng(seed: int = 7) -> A.Rng:
    return random.Random(seed).randbytes


@pytest.fixture
def lab() -> tuple[Harness, GroupMember, list[bytes]]:
    """Three registered GMs, two rekeys sent; every GSA_REKEY the network carried."""
    h = Harness(3)
    h.run_until(T0 + 5)
    seen: list[bytes] = []
    h.drop_filter = lambda data, src, dst: bool(data[18] == 41 and seen.append(data))
    for _ in range(2):
        h.gcks.rekey(GROUP, h.now)
        h.run_until(h.now + 3)
    gm = next(iter(h.gms.values()))
    assert seen and all(A._rekey_id(m)[1] <= 1 for m in seen)
    return h, gm, seen


def feed(h: Harness, gm: GroupMember, data: bytes) -> list[tuple[str, Any]]:
    gm.receive(data, SOURCE, h.now)
    return [(e.name, getattr(e, "reason", getattr(e, "message_id", None))) for e in gm.events()]


def keys(gm: GroupMember) -> list[tuple[Any, ...]]:
    return sorted((r.protocol, r.key_id, r.key) for r in gm.key_table.rows.values())


def test_every_forged_rekey_is_refused_by_its_own_check_and_no_key_moves(
    lab: tuple[Harness, GroupMember, list[bytes]],
) -> None:
    h, gm, seen = lab
    first = seen[0]  # Message ID 0, superseded by Message ID 1
    sa, next_id = A.rekey_sa_from_state(h.gcks.snapshot(), GROUP)
    assert next_id == 2 and sa.spi == first[:16]
    before = keys(gm)
    assert feed(h, gm, first) == [("rekey_duplicate", 0)]  # the Message ID replay counter
    (outcome,) = feed(h, gm, A.corrupt_ciphertext(first, rng()))
    assert outcome[0] == "rekey_rejected" and outcome[1].startswith("IntegrityCheckFailed")
    (outcome,) = feed(h, gm, A.forge_bad_signature(sa, first, next_id + 1000, rng()))
    assert outcome == (
        "rekey_rejected",
        "AuthenticationFailed: signature does not verify (RFC 7427)",
    )
    foreign = ed25519.Ed25519PrivateKey.generate()
    forged = A.forge_foreign_signer(sa, first, next_id + 1000, foreign, rng())
    (outcome,) = feed(h, gm, forged)
    assert outcome[0] == "rekey_rejected" and outcome[1].startswith("AuthenticationFailed")
    for short in A.truncations(first):
        (outcome,) = feed(h, gm, short)
        assert outcome[0] == "rekey_rejected" and outcome[1].startswith("BadLength")
    (outcome,) = feed(h, gm, A.oversize(first, A.OVERSIZE, rng()))
    assert outcome[0] == "rekey_rejected" and "datagram has 20000 octets" in outcome[1]
    assert keys(gm) == before
    assert gm.counters == {"rekey_duplicates": 9, "rekey_rejected": 7}  # 8 copies + 1 replay


def test_only_the_signature_stops_the_foreign_signed_rekey(
    lab: tuple[Harness, GroupMember, list[bytes]],
) -> None:
    """With the attacker's key as AUTH_KEY the forged message opens and plants key 250."""
    h, _gm, seen = lab
    sa, next_id = A.rekey_sa_from_state(h.gcks.snapshot(), GROUP)
    foreign = ed25519.Ed25519PrivateKey.generate()
    forged = A.forge_foreign_signer(sa, seen[0], next_id + 5, foreign, rng())
    message_id, inner = open_rekey(sa, forged, foreign.public_key())
    assert message_id == next_id + 5
    gsa, kd = find(inner, GsaPayload), find(inner, KdPayload)
    assert gsa is not None and kd is not None
    received = read_group(gsa, kd, sa.gsk_w, sa.kwa, previous_rekey=sa)
    assert [int.from_bytes(t.spi, "big") for t in received.teks] == [A.ATTACK_KEY_ID]
    assert public_key_der(foreign.public_key()) != public_key_der(h.signer.public_key())


def test_malformed_registrations_are_dropped_by_reason_at_the_gcks() -> None:
    h = Harness(1)
    oversized = A.oversize(A.sa_init("y.mrkm", rng(8)), 9000, rng())
    for data in [*A.truncations(A.sa_init("x.mrkm", rng())), oversized]:
        h.gcks.receive(data, ("10.250.254.250", 848), h.now)
    dropped = [e.reason for e in h.gcks.events()]
    assert len(dropped) == 4 and all(r.startswith("BadLength: IKE Length") for r in dropped)
    assert h.gcks.counters == {"dropped.BadLength": 4}


def test_a_spoofed_flood_gets_cookies_once_past_the_threshold() -> None:
    h = Harness(1)
    threshold = h.gcks_config.cookie_threshold
    for i, src in enumerate(A.spoofed_sources(threshold + 10, 3)):
        h.gcks.receive(A.sa_init(f"f{i}.mrkm", rng(i)), (src, 848), h.now)
    assert h.gcks.counters["cookies_sent"] == 10


def test_spoofed_sources_are_distinct_and_unused() -> None:
    sources = A.spoofed_sources(300, 1)
    net = ipaddress.ip_network("10.250.200.0/22")
    assert len(set(sources)) == 300 and all(ipaddress.ip_address(s) in net for s in sources)
    assert A.ATTACKER_MGMT not in sources and A.spoofed_sources(300, 1) == sources


def test_packets_carry_a_spoofed_source_and_oversized_ones_are_fragmented() -> None:
    (packet,) = A.ip_udp(A.GCKS_REKEY_SOURCE, A.REKEY_GROUP, b"rekey", 1)
    ip = IP(packet)
    assert (ip.src, ip.dst, ip.ttl, ip[UDP].dport, bytes(ip[UDP].payload)) == (
        "10.252.0.2", "239.192.0.1", 1, 848, b"rekey")  # fmt: skip
    payload = os.urandom(20000)
    fragments = A.ip_udp("10.250.200.9", A.GCKS_ADDRESS, payload, 2)
    assert len(fragments) > 10 and all(len(f) <= 1500 for f in fragments)
    (whole,) = defragment([IP(f) for f in fragments])
    assert bytes(whole[UDP].payload) == payload and whole.src == "10.250.200.9"


def test_bad_inputs_name_the_reason() -> None:
    with pytest.raises(ValueError, match="no usable Rekey SA for group 'nope'"):
        A.rekey_sa_from_state({"groups": {}}, "nope")
    with pytest.raises(ValueError, match="too short to truncate"):
        A.truncations(b"x" * 20)
    with pytest.raises(ValueError, match="too short to be a sealed GSA_REKEY"):
        A.corrupt_ciphertext(b"x" * 40, rng())


# -- verdicts ---------------------------------------------------------------------------


def ev(t: float, event: str, node: str, **fields: Any) -> dict[str, Any]:
    return {"t": t, "event": event, "node": node, **fields}


ROW = [{"protocol": "ospfv2", "key_id": 3}]
GCKS = [
    ev(1.0, "member_registered", "gcks.mrkm", group=GROUP, member="r1.mrkm", members=1),
    ev(5.0, "rekey_sent", "gcks.mrkm", group=GROUP, message_id=0, sa="aa", key_ids=[3]),
]
GM = [
    ev(1.1, "keys_installed", "r1.mrkm", group=GROUP, rows=ROW),
    ev(1.1, "registration_completed", "r1.mrkm", group=GROUP),
    ev(5.1, "keys_installed", "r1.mrkm", group=GROUP, rows=ROW),
    ev(5.1, "rekey_accepted", "r1.mrkm", group=GROUP, message_id=0, sa="aa"),
    ev(5.2, "rekey_duplicate", "r1.mrkm", group=GROUP, message_id=0),
]


def test_legitimate_key_changes_are_not_counted() -> None:
    assert unauthorized_key_changes(GCKS, {"r1": GM}) == []


def test_a_key_from_a_rekey_the_gcks_never_sent_is_counted() -> None:
    forged = [
        ev(9.0, "keys_installed", "r1.mrkm", group=GROUP, rows=[{"key_id": 250}]),
        ev(9.0, "rekey_accepted", "r1.mrkm", group=GROUP, message_id=1002, sa="aa"),
    ]
    problems = unauthorized_key_changes(GCKS, {"r1": GM + forged})
    assert len(problems) == 2
    assert "accepted rekey 1002" in problems[0] and "key ids [250]" in problems[1]
    stray = [ev(3.0, "registration_completed", "r1.mrkm", group="other")]
    assert "without the GCKS registering" in unauthorized_key_changes(GCKS, {"r1": stray})[0]


def test_daemon_rejections_count_by_reason() -> None:
    gcks = [
        ev(2, "datagram_dropped", "gcks.mrkm", reason="BadLength: x", source="1.2.3.4:848"),
        ev(
            3, "registration_rejected", "gcks.mrkm", member="r5.mrkm", reason="AUTHORIZATION_FAILED"
        ),
    ]
    gm = [ev(4, "rekey_rejected", "r1.mrkm", group=GROUP, reason="AuthenticationFailed: sig")]
    assert daemon_rejections(gcks, {"r1": GM + gm}) == {
        "gcks.dropped.BadLength": 1,
        "gcks.registration_rejected.AUTHORIZATION_FAILED": 1,
        "gm.rekey_duplicate": 1,
        "gm.rekey_rejected.AuthenticationFailed": 1,
    }


def attack(kind: str, t: float, router: str | None, **detail: Any) -> dict[str, Any]:
    targets = [router] if router else []
    return {"t": t, "event": "fault", "kind": "attack", "targets": targets, "until": t + 1,
            "attack": kind, **({"router": router} if router else {}), **detail}  # fmt: skip


def test_attack_numbers_and_flaps_attacks_do_not_explain() -> None:
    topo = assign(line(3))
    link = topo.links[0]
    flap = {"router": "r1", "proto": "ospfv2", "neighbor": f"x@{link.interface('r1')}",
            "t_down": 10.5, "t_up": 12, "state": "Init"}  # fmt: skip
    faults = [
        attack("replay-rekey", 10, "r1", sent=3, expected=3, rejected={"gm.rekey_duplicate": 3}),
        attack(
            "truncated", 20, "r1", sent=6, expected=6, rejected={"gm.rekey_rejected.BadLength": 5}
        ),
        attack(
            "registration-flood",
            30,
            "r2",
            sent=300,
            expected=0,
            legit_registered=True,
            registration_s=1.5,
            rejected={"gcks.cookies_sent": 236},
        ),
        attack(
            "unauthorized-identity",
            40,
            None,
            sent=2,
            expected=2,
            registered=0,
            rejected={"gcks.dropped.AuthenticationFailed": 2},
        ),
    ]
    summary = {"rekey_count": 0, "flaps": [flap]}
    out = derived(summary, faults, topo)
    assert out["unexplained_flaps"] == 1  # the replay on r1 does not excuse r1's flap
    assert out["attacks"] == 4 and out["attack_datagrams"] == 311
    assert out["attacks_uncounted"] == 1  # one truncated datagram went uncounted
    assert out["attacks_rejected"]["gm.rekey_duplicate"] == 3
    assert out["keys_changed_by_attacks"] is None  # no attack_check: unknown, not 0
    assert (out["flood_registrations_ok"], out["flood_registration_s"]) == (1, 1.5)
    check = {"t": 50, "event": "fault", "kind": "attack_check", "targets": [], "until": 50,
             "keys_changed": 0, "daemon_rejections": {"gm.rekey_duplicate": 40}}  # fmt: skip
    out = derived(summary, [*faults, check], topo)
    assert out["keys_changed_by_attacks"] == 0 and out["unexplained_flaps"] == 1
    assert "attacks" not in derived(summary, [], topo)  # other scenarios keep their summary


@pytest.mark.root
@pytest.mark.slow
def test_attack_scenario_end_to_end(tmp_path: Path) -> None:
    """``scenarios/attack.yaml`` on Mininet: every attack refused, counted, no key moved."""
    from testbed.run import run_scenario
    from testbed.scenario import load_scenario
    from topologies.registry import get_topology

    scenario = load_scenario("attack")
    code, summary, _folder = run_scenario(
        scenario, get_topology(scenario.topology), tmp_path, f"ta{os.getpid() % 10000}", False
    )
    rejected = summary["attacks_rejected"]
    assert summary["attacks"] == 9 and summary["attacks_uncounted"] == 0
    assert summary["keys_changed_by_attacks"] == 0 and summary["attacks_accepted"] == 0
    assert rejected["gm.rekey_duplicate"] == 3  # the replays
    assert rejected["gm.rekey_rejected.AuthenticationFailed"] == 3  # bad signature, 2 foreign
    assert rejected["gm.rekey_rejected.IntegrityCheckFailed"] == 1
    assert rejected["gm.rekey_rejected.BadLength"] == 4 and rejected["gcks.dropped.BadLength"] == 4
    assert rejected["gcks.dropped.AuthenticationFailed"] >= 1  # the unknown identity
    assert rejected["gcks.registration_rejected.AUTHORIZATION_FAILED"] >= 1  # the evictee
    assert rejected["gcks.cookies_sent"] >= 1 and summary["flood_registrations_ok"] == 1
    assert code == 0, summary.get("failure")
