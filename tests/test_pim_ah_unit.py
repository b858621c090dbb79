"""PIM AH without root: the ``pim`` group protocol, and the shim's packet logic and files.

The root test with real pimd routers is tests/test_pim_ah.py.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import pytest

from mrkm.config import ConfigError, load_gcks_config
from mrkm.crypto.routing_ah import ah_parse_ipv4, ah_protect_ipv4, ah_strip_ipv4
from mrkm.errors import BadValue
from mrkm.keytable import KeyRow
from mrkm.protocol.group import GroupKeys, GroupPolicy, RoutingKey, TekPolicy, make_gsa, read_group
from mrkm.sinks import SinkError, build_sinks
from mrkm.sinks.nfqueue import (
    NF_ACCEPT,
    NF_DROP,
    NF_INET_LOCAL_IN,
    NF_INET_LOCAL_OUT,
    Queue,
    QueuedPacket,
)
from mrkm.sinks.pim_ah import AhShim, PimAhSink, ShimDaemon, iptables_rules
from mrkm.wire import GsaPayload, GsaPolicy, KdPayload, Transform
from mrkm.wire.registry import IntegId, ProtocolId, SnId, TransformType
from tests.harness import Harness, make_group

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))


def pim_hello(src: str = "10.60.1.1", ttl: int = 1) -> bytes:
    """A PIMv2 Hello (RFC 7761 §4.9.2) with a Holdtime option, in an IPv4 packet."""
    pim = bytes([0x20, 0x00, 0x00, 0x00]) + bytes([0, 1, 0, 2, 0, 105])  # checksum left 0
    header = bytearray(20)
    header[0], header[8], header[9] = 0x45, ttl, 103
    header[2:4] = (20 + len(pim)).to_bytes(2, "big")
    header[4:6] = b"\x12\x34"
    header[12:16] = bytes(int(x) for x in src.split("."))
    header[16:20] = bytes([224, 0, 0, 13])
    total = sum(int.from_bytes(header[i : i + 2], "big") for i in range(0, 20, 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    header[10:12] = (~total & 0xFFFF).to_bytes(2, "big")
    return bytes(header) + pim


def row(spi: int, key: bytes, t: tuple[float, float, float, float], **kw: object) -> KeyRow:
    values: dict[str, object] = {
        "group": "pim-sm",
        "protocol": "pim-ah",
        "key_id": spi,
        "algorithm": "hmac-sha-256-128",
        "key": key,
        "accept_start": t[0],
        "send_start": t[1],
        "send_end": t[2],
        "accept_end": t[3],
    }
    values.update(kw)
    return KeyRow(**values)  # type: ignore[arg-type]


# -- the pim group protocol ------------------------------------------------------------------


def _gcks_yaml(tmp_path: Path, algorithm: str) -> Path:
    path = tmp_path / "gcks.yaml"
    path.write_text(
        "gcks: {identity: gcks.mrkm, listen: 127.0.0.1}\n"
        "groups:\n"
        f"  - {{name: pim-sm, protocol: pim, algorithm: {algorithm}, psk: {'ab' * 16},"
        " members: [{id: r1.mrkm}]}\n"
    )
    return path


@pytest.mark.parametrize("algorithm", ["hmac-sha-256", "hmac-sha-1"])
def test_config_takes_pim_with_the_ah_hmacs(tmp_path: Path, algorithm: str) -> None:
    group = load_gcks_config(_gcks_yaml(tmp_path, algorithm)).groups[0]
    assert (group.protocol, group.algorithm) == ("pim", algorithm)


@pytest.mark.parametrize(
    ("algorithm", "words"),
    [("md5", "has no Keyed-MD5"), ("hmac-sha-512", "hmac-sha-256 (AUTH_HMAC_SHA2_256_128)")],
)
def test_config_refuses_other_algorithms_for_pim(
    tmp_path: Path, algorithm: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=r"groups\[0\]\.algorithm: .*cannot protect PIM") as exc:
        load_gcks_config(_gcks_yaml(tmp_path, algorithm))
    assert words in str(exc.value)


def test_config_still_refuses_unknown_protocols() -> None:
    with pytest.raises(ConfigError, match=r"group\.protocol: 'rip' is not one of .*pim"):
        make_group(1, protocol="rip")


def test_tek_policy_pairs_ah_with_ipsec_hmacs_only() -> None:
    TekPolicy(ProtocolId.AH, IntegId.AUTH_HMAC_SHA2_256_128)
    with pytest.raises(ValueError, match="AH takes exactly the IPsec HMACs"):
        TekPolicy(ProtocolId.AH, IntegId.ROUTING_HMAC_SHA256)
    with pytest.raises(ValueError, match="AH takes exactly the IPsec HMACs"):
        TekPolicy(ProtocolId.OSPFV2, IntegId.AUTH_HMAC_SHA1_96)


def _ah_gsa(spi: bytes = b"\x00\x01\x02\x03") -> tuple[GsaPayload, GroupKeys, GroupPolicy]:
    tek = RoutingKey(ProtocolId.AH, spi, IntegId.AUTH_HMAC_SHA1_96, bytes(20), 30)
    policy = GroupPolicy("10.0.0.1", teks=(TekPolicy(ProtocolId.AH, IntegId.AUTH_HMAC_SHA1_96),))
    keys = GroupKeys(bytes(16), bytes(64), (tek,))
    return make_gsa(policy, keys, registration=False), keys, policy


def test_ah_policy_has_pim_selector_and_unspecified_sn() -> None:
    gsa, _, _ = _ah_gsa()
    (tek,) = gsa.data_policies
    assert tek.protocol == ProtocolId.AH and len(tek.spi) == 4
    assert tek.destination.ip_protocol == 103 and tek.source.ip_protocol == 103
    assert tek.destination.start_address == tek.destination.end_address == bytes([224, 0, 0, 13])
    sn = tek.transform(TransformType.SN)
    assert sn is not None and sn.id == SnId.UNSPECIFIED_32
    integ = tek.transform(TransformType.INTEG)
    assert integ is not None and integ.id == IntegId.AUTH_HMAC_SHA1_96


@pytest.mark.parametrize(("sn", "ok"), [(None, False), (SnId.ESN_64_PARTIAL, False), (0, True)])
def test_gm_checks_the_sn_transform_of_ah_policies(sn: int | None, ok: bool) -> None:
    from mrkm.protocol.group import make_kd

    gsa, keys, policy = _ah_gsa()
    (tek,) = gsa.data_policies
    transforms: tuple[Transform, ...] = (Transform(TransformType.INTEG, IntegId.AUTH_HMAC_SHA1_96),)
    if sn is not None:
        transforms += (Transform(TransformType.SN, sn),)
    changed = GsaPolicy(
        tek.protocol, tek.spi, tek.source, tek.destination, transforms, tek.attributes
    )
    gsa = GsaPayload((changed,))  # the TEK policy alone: no Rekey SA to unwrap
    kwk = bytes(32)
    kd: KdPayload = make_kd(policy, keys, kwk, policy.kwa, None)
    if ok:
        assert read_group(gsa, kd, kwk, policy.kwa).teks[0].spi == tek.spi
    else:
        with pytest.raises(BadValue, match=r"lacks transform type 5|SN transform 1"):
            read_group(gsa, kd, kwk, policy.kwa)


def test_gcks_issues_random_ah_spis_and_gms_get_pim_ah_rows() -> None:
    group = make_group(2, name="pim-sm", protocol="pim", algorithm="hmac-sha-256")
    h = Harness(2, group=group)
    h.run_until(h.now + 5)
    spis = []
    for _ in range(5):
        h.gcks.rekey("pim-sm", h.now)
        h.run_until(h.now + 3)
        gm = next(iter(h.gms.values()))
        newest = max(gm.key_table.rows.values(), key=lambda r: r.send_start)
        spis.append(newest.key_id)
    for gm in h.gms.values():
        rows = list(gm.key_table.rows.values())
        assert rows and all(r.protocol == "pim-ah" for r in rows)
        assert all(r.algorithm == "hmac-sha-256-128" and len(r.key) == 32 for r in rows)
    assert all(spi >= 256 for spi in spis) and len(set(spis)) == 5
    # Random, not counted up: no two successive SPIs are neighbours.
    assert not any(abs(a - b) == 1 for a, b in itertools.pairwise(spis))
    # Both GMs hold the same keys under the same SPIs.
    a, b = (sorted((r.key_id, r.key) for r in g.key_table.rows.values()) for g in h.gms.values())
    assert a == b


# -- AH strip ----------------------------------------------------------------------------------


def test_strip_undoes_protect_exactly() -> None:
    plain = pim_hello()
    wire = ah_protect_ipv4(IntegId.AUTH_HMAC_SHA1_96, bytes(20), plain, spi=300, sequence=1)
    assert wire[9] == 51 and len(wire) == len(plain) + 24
    assert ah_strip_ipv4(wire) == plain


# -- the shim's packet logic -------------------------------------------------------------------


def test_shim_without_keys_drops_everything() -> None:
    shim = AhShim()
    assert shim.outbound(pim_hello(), 10.0) is None and shim.last_drop == "no-send-sa"
    assert shim.inbound(pim_hello(), 10.0) is None and shim.last_drop == "unprotected"
    assert shim.counters == {"out_dropped.no-send-sa": 1, "in_dropped.unprotected": 1}


def test_shim_protects_with_counting_sn_and_verifies_and_strips() -> None:
    sender, receiver = AhShim(), AhShim()
    for shim in (sender, receiver):
        shim.load([row(0x1000, KEY_A, (0, 0, 100, 110))])
    wires = [sender.outbound(pim_hello(), 5.0) for _ in range(3)]
    assert all(w is not None for w in wires)
    headers = [ah_parse_ipv4(w) for w in wires if w is not None]
    assert [(h.spi, h.sequence, h.next_header) for h in headers] == [
        (0x1000, 1, 103),
        (0x1000, 2, 103),
        (0x1000, 3, 103),
    ]
    assert wires[0] is not None and receiver.inbound(wires[0], 6.0) == pim_hello()
    assert receiver.counters == {"in_accepted": 1}


def test_shim_rollover_follows_the_row_lifetimes() -> None:
    """Old SA (sent until 50, accepted until 55) and new SA (accepted from 40, sent from 50)."""
    shim, peer_old, peer_new = AhShim(), AhShim(), AhShim()
    old = row(0x1000, KEY_A, (0, 0, 50, 55))
    new = row(0x2000, KEY_B, (40, 50, 200, 210))
    shim.load([old, new])
    peer_old.load([row(0x1000, KEY_A, (0, 0, 300, 300))])
    peer_new.load([row(0x2000, KEY_B, (0, 0, 300, 300))])
    # Outbound switches at the activation time, not on receipt.
    for now, spi in ((45.0, 0x1000), (49.999, 0x1000), (50.0, 0x2000), (120.0, 0x2000)):
        wire = shim.outbound(pim_hello(), now)
        assert wire is not None and ah_parse_ipv4(wire).spi == spi
    # Inbound accepts both during the overlap...
    old_wire = peer_old.outbound(pim_hello(), 1.0)
    new_wire = peer_new.outbound(pim_hello(), 1.0)
    assert old_wire is not None and new_wire is not None
    assert shim.inbound(new_wire, 41.0) is not None and shim.inbound(old_wire, 54.9) is not None
    # ...not the new one before it is held, nor the old one after its DTD.
    assert shim.inbound(new_wire, 39.0) is None and shim.last_drop == "unknown-spi"
    assert shim.inbound(old_wire, 55.0) is None and shim.last_drop == "unknown-spi"


def test_shim_drops_forgeries_by_reason() -> None:
    shim, attacker = AhShim(), AhShim()
    shim.load([row(0x1000, KEY_A, (0, 0, 100, 110))])
    attacker.load([row(0x1000, KEY_B, (0, 0, 100, 110))])  # right SPI, wrong key
    forged = attacker.outbound(pim_hello(), 1.0)
    assert forged is not None
    assert shim.inbound(forged, 2.0) is None and shim.last_drop == "bad-icv"
    tampered = bytearray(forged)
    tampered[-1] ^= 1
    assert shim.inbound(bytes(tampered), 2.0) is None and shim.last_drop == "bad-icv"
    # The TTL is mutable (RFC 4302 §3.3.3.1.1.1): a changed TTL still verifies.
    good = AhShim()
    good.load([row(0x1000, KEY_A, (0, 0, 100, 110))])
    wire = bytearray(good.outbound(pim_hello(), 1.0) or b"")
    wire[8] = 7
    assert shim.inbound(bytes(wire), 2.0) is not None
    assert shim.inbound(forged[:30], 2.0) is None and shim.last_drop == "malformed"
    assert shim.inbound(b"\x45", 2.0) is None and shim.last_drop == "malformed"
    udp = bytearray(pim_hello())
    udp[9] = 17
    protected_udp = ah_protect_ipv4(
        IntegId.AUTH_HMAC_SHA2_256_128, KEY_A, bytes(udp), spi=0x1000, sequence=1
    )
    assert shim.inbound(protected_udp, 2.0) is None and shim.last_drop == "not-pim"
    assert shim.counters["in_dropped.bad-icv"] == 2
    assert shim.counters["in_dropped.malformed"] == 2


def test_shim_refuses_rows_it_cannot_use_and_keeps_its_keys() -> None:
    shim = AhShim()
    shim.load([row(0x1000, KEY_A, (0, 0, 100, 110))])
    with pytest.raises(ValueError, match="algorithm 'md5'"):
        shim.load([row(0x2000, KEY_A[:16], (0, 0, 1, 1), algorithm="md5")])
    with pytest.raises(ValueError, match="20 octets, hmac-sha-256-128 needs 32"):
        shim.load([row(0x2000, KEY_A[:20], (0, 0, 1, 1))])
    with pytest.raises(ValueError, match="256 to 2"):
        shim.load([row(17, KEY_A, (0, 0, 1, 1))])
    assert list(shim.sas) == [0x1000]
    # Rows of other protocols are ignored, not refused.
    assert shim.load([row(1, KEY_A, (0, 0, 1, 1), protocol="ospfv2")]) == []


# -- the daemon's files and handler (no queue, no rules) -----------------------------------


def _write_keys(path: Path, generation: int, rows: list[KeyRow]) -> None:
    path.write_text(
        json.dumps({"generation": generation, "rows": [r.to_json(with_key=True) for r in rows]})
    )


def test_daemon_loads_keys_acks_and_logs(tmp_path: Path) -> None:
    keys, status, log = tmp_path / "k.json", tmp_path / "s.json", tmp_path / "e.jsonl"
    clock = [5.0]
    daemon = ShimDaemon(keys, status, tag="t1", log=log, node="r1", clock=lambda: clock[0])
    assert daemon.reload() is False  # no key file yet
    _write_keys(keys, 41, [row(0x1000, KEY_A, (0, 0, 100, 110))])
    assert daemon.reload() is True and daemon.reload() is False
    state = json.loads(status.read_text())
    assert state["generation"] == 41 and state["send_spi"] == 0x1000
    assert state["accept_spis"] == [0x1000]
    # A bad key file is refused and logged; the old keys stay.
    keys.write_text('{"generation": 42, "rows": [{"protocol": "pim-ah"}]}')
    assert daemon.reload() is False and list(daemon.shim.sas) == [0x1000]
    # The queue handler: outbound protected, forged inbound dropped and logged once a second.
    out = daemon.handle(QueuedPacket(1, NF_INET_LOCAL_OUT, pim_hello()))
    assert out.verdict == NF_ACCEPT and out.payload is not None and out.payload[9] == 51
    for _ in range(3):
        verdict = daemon.handle(QueuedPacket(2, NF_INET_LOCAL_IN, pim_hello("10.9.9.9")))
        assert verdict.verdict == NF_DROP and verdict.payload is None
    clock[0] = 7.0
    daemon.handle(QueuedPacket(3, NF_INET_LOCAL_IN, pim_hello("10.9.9.9")))
    accepted = daemon.handle(QueuedPacket(4, NF_INET_LOCAL_IN, out.payload))
    assert accepted.verdict == NF_ACCEPT and accepted.payload == pim_hello()
    daemon.log.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    names = [e["event"] for e in events]
    assert names.count("pim_ah_keys_loaded") == 1 and "pim_ah_keys_rejected" in names
    assert names.count("pim_ah_send_switch") == 1
    drops = [e for e in events if e["event"] == "pim_ah_drop"]
    assert [(d["reason"], d["src"], d["suppressed"]) for d in drops] == [
        ("unprotected", "10.9.9.9", 0),
        ("unprotected", "10.9.9.9", 2),
    ]
    assert daemon.shim.counters == {
        "in_accepted": 1,
        "in_dropped.unprotected": 4,
        "out_protected": 1,
    }


def test_daemon_refuses_a_bad_tag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--tag"):
        ShimDaemon(tmp_path / "k", tmp_path / "s", tag="a b")
    with pytest.raises(ConfigError, match="--tag"):
        ShimDaemon(tmp_path / "k", tmp_path / "s", tag="x" * 21)


def test_iptables_rules_queue_pim_out_and_ah_and_pim_in() -> None:
    rules = iptables_rules("MRKM-AH-r1", 9)
    assert ["-N", "MRKM-AH-r1"] in rules
    assert ["-I", "OUTPUT", "1", "-p", "103", "-j", "MRKM-AH-r1"] in rules
    assert ["-I", "INPUT", "1", "-p", "51", "-j", "MRKM-AH-r1"] in rules
    assert ["-A", "MRKM-AH-r1", "-p", "103", "-j", "NFQUEUE", "--queue-num", "9"] in rules


def test_queue_rejects_a_bad_number() -> None:
    with pytest.raises(ValueError, match="queue number"):
        Queue(70000, lambda p: None)  # type: ignore[arg-type, return-value]


# -- the sink ------------------------------------------------------------------------------


def test_sink_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gm\.sinks\[0\]\.status: missing"):
        build_sinks([{"type": "pim_ah", "keys": "k"}])
    with pytest.raises(ConfigError, match=r"gm\.sinks\[0\]\.timeout"):
        build_sinks([{"type": "pim_ah", "keys": "k", "status": "s", "timeout": "soon"}])
    with pytest.raises(ConfigError, match=r"gm\.sinks\[0\]: unknown field\(s\) queue"):
        build_sinks([{"type": "pim_ah", "keys": "k", "status": "s", "queue": 3}])
    (sink,) = build_sinks([{"type": "pim_ah", "keys": "k", "status": "s", "group": "pim-sm"}])
    assert isinstance(sink, PimAhSink) and sink.group == "pim-sm"


def test_sink_filters_checks_and_waits_for_the_shims_ack(tmp_path: Path) -> None:
    keys, status = tmp_path / "k.json", tmp_path / "s.json"
    sink = PimAhSink("pim", keys, status, group="pim-sm", timeout=5)
    good = row(0x1000, KEY_A, (0, 0, 100, 110))
    other = row(5, KEY_A, (0, 0, 100, 110), protocol="ospfv2")
    assert sink.relevant([good, other, row(0x3000, KEY_A, (0, 0, 1, 1), group="x")]) == [good]
    with pytest.raises(SinkError, match="algorithm 'md5'"):
        sink.check(row(0x2000, KEY_A[:16], (0, 0, 1, 1), algorithm="md5"))
    daemon = ShimDaemon(keys, status, tag="t2")
    stop = threading.Event()

    def shim() -> None:  # the shim's loop, without the queue
        while not stop.is_set():
            daemon.reload()
            time.sleep(0.01)

    thread = threading.Thread(target=shim)
    thread.start()
    try:
        result = sink.install([good], 1.0)
        assert result.ok and result.key_ids == (0x1000,)
        assert json.loads(status.read_text())["generation"] == sink._generation
        assert sink.router_epoch() is not None
    finally:
        stop.set()
        thread.join()
    quick = PimAhSink("pim", keys, status, timeout=0.2)
    with pytest.raises(SinkError, match="did not load"):
        quick.install([good], 2.0)
    assert json.loads(keys.read_text())["rows"][0]["key_id"] == 0x1000
    assert keys.stat().st_mode & 0o777 == 0o600
