"""GCKS and GMs on virtual time: registration, rekeys under loss, repair, restart."""

from __future__ import annotations

import itertools

import pytest

from mrkm.protocol import events as ev
from mrkm.protocol.gm import GmState
from tests.harness import T0, Harness, make_group


def current_key_ids(h: Harness) -> set[int]:
    return set(h.gcks.status(h.now)["groups"]["ospfv2-area0"]["key_ids"])


def newest_key(h: Harness) -> int:
    return int(h.gcks.status(h.now)["groups"]["ospfv2-area0"]["key_ids"][-1])


def holds(gm: object, key_id: int, now: float) -> bool:
    rows = gm.key_table.rows.values()  # type: ignore[attr-defined]
    return any(r.key_id == key_id and r.accepting(now) for r in rows)


def test_registration_and_one_rekey() -> None:
    h = Harness(3)
    h.run_until(T0 + 5)
    assert all(gm.state("ospfv2-area0") is GmState.GM_MEMBER for gm in h.gms.values())
    first = newest_key(h)
    assert all(holds(gm, first, h.now) for gm in h.gms.values())
    h.run_until(T0 + 50)  # lifetime 60, margin 15: the rekey goes out at T0 + 45
    second = newest_key(h)
    assert second != first
    accepted = [e for e in h.events if isinstance(e, ev.RekeyAccepted)]
    assert len(accepted) == 3 and {e.key_ids for e in accepted} == {(second,)}
    duplicates = [e for e in h.events if isinstance(e, ev.RekeyDuplicate)]
    assert len(duplicates) == 3 * 4  # five bitwise-identical copies, four dropped
    for gm in h.gms.values():
        row = gm.key_table.rows[("ospfv2", second)]
        old = gm.key_table.rows[("ospfv2", first)]
        assert row.send_start == pytest.approx(row.accept_start + 2, abs=0.01)  # ATD
        assert old.send_end == row.send_start  # the old key stops sending then
        assert old.accept_end == pytest.approx(row.send_start + 4, abs=0.01)  # DTD


@pytest.mark.slow
def test_500_members_20_rekeys_with_10_percent_loss() -> None:
    h = Harness(500, loss=0.10, seed=7)
    h.run_until(T0 + 60)
    assert all(gm.state("ospfv2-area0") is GmState.GM_MEMBER for gm in h.gms.values())
    end = T0 + 45 * 20 + 20  # 20 rekeys, one every 45 s after the first key
    h.run_until(end)
    sent = [e for e in h.events if isinstance(e, ev.RekeySent)]
    assert len(sent) >= 20
    key = newest_key(h)
    lacking = [gm.config.identity for gm in h.gms.values() if not holds(gm, key, h.now)]
    assert lacking == []
    # Loss was real: registrations were retransmitted and some copies were lost.
    assert sum(gm.counters.get("retransmissions", 0) for gm in h.gms.values()) > 50


def test_lost_rekey_is_repaired_by_re_registration() -> None:
    h = Harness(2)
    h.run_until(T0 + 5)
    victim_addr = next(iter(h.gms))
    # Every copy of every GSA_REKEY to the victim is lost.
    h.drop_filter = lambda data, src, dst: dst == victim_addr and data[18] == 41
    h.run_until(T0 + 58)
    key = newest_key(h)
    assert holds(h.gms[victim_addr], key, h.now)
    repairs = [e for e in h.events if isinstance(e, ev.RepairScheduled)]
    assert repairs and "near expiry" in repairs[0].reason


def test_a_silent_rekey_tree_triggers_repair_after_the_liveness_time() -> None:
    # Heartbeats every 5 s; the GM re-registers after 12 s without any of them.
    group = make_group(2, heartbeat=5, lifetime=600.0, rekey_margin=60.0)
    h = Harness(2, group=group, gm_overrides={"liveness": 12.0})
    h.run_until(T0 + 20)
    assert not [e for e in h.events if isinstance(e, ev.RepairScheduled)]  # heartbeats arrive
    victim_addr = next(iter(h.gms))
    # A partition: nothing multicast reaches the victim any more (unicast still does).
    h.drop_filter = lambda data, src, dst: dst == victim_addr and data[18] == 41
    cut = h.now
    h.gcks.rekey("ospfv2-area0", h.now, reason="manual")
    h.run_until(cut + 30)
    repairs = [e for e in h.events if isinstance(e, ev.RepairScheduled)]
    assert repairs and repairs[0].reason.startswith("no rekey or heartbeat for")
    assert 12 <= repairs[0].time - cut <= 12 + 5  # liveness after the last heartbeat heard
    assert holds(h.gms[victim_addr], newest_key(h), h.now)  # repaired by registering again


def test_unauthorized_member_is_refused_and_retries_slowly() -> None:
    h = Harness(2, group=make_group(1))  # only r0 is on the authorization list
    h.run_until(T0 + 5)
    gms = list(h.gms.values())
    assert gms[0].state("ospfv2-area0") is GmState.GM_MEMBER
    assert gms[1].state("ospfv2-area0") is GmState.GM_IDLE
    failed = [e for e in h.events if isinstance(e, ev.RegistrationFailed)]
    # No PSK is known for r1, so its AUTH cannot verify (RFC 7296 §2.21.2).
    assert failed and failed[0].notify_type == 24 and "AUTHENTICATION_FAILED" in failed[0].reason
    assert failed[0].retry_at is not None and failed[0].retry_at - h.now > 20


def test_gcks_restart_from_snapshot_continues_without_re_registration() -> None:
    h = Harness(3)
    h.run_until(T0 + 50)
    snapshot = h.gcks.snapshot()
    before = h.gcks.status(h.now)["groups"]["ospfv2-area0"]
    from mrkm.protocol.gcks import KeyServer

    h.gcks = KeyServer(h.gcks_config, h.signer, h.rand.randbytes, h.now)
    h.gcks.restore(snapshot)
    after = h.gcks.status(h.now)["groups"]["ospfv2-area0"]
    assert after["next_message_id"] == before["next_message_id"]
    assert after["key_ids"] == before["key_ids"]
    started = len([e for e in h.events if isinstance(e, ev.RegistrationStarted)])
    h.run_until(T0 + 100)
    key = newest_key(h)
    assert all(holds(gm, key, h.now) for gm in h.gms.values())
    assert len([e for e in h.events if isinstance(e, ev.RegistrationStarted)]) == started


def test_garbage_and_replayed_rekeys_are_counted_not_fatal() -> None:
    h = Harness(1)
    h.run_until(T0 + 50)
    gm = next(iter(h.gms.values()))
    sent = [e for e in h.events if isinstance(e, ev.RekeySent)]
    assert sent
    gm.receive(b"\x00" * 10, ("10.9.9.9", 1), h.now)
    h.gcks.receive(b"\x01" * 40, ("10.9.9.9", 1), h.now)
    dropped = [e for e in h.gcks.events() if isinstance(e, ev.DatagramDropped)]
    assert dropped and "IKE" in dropped[0].reason
    assert gm.state("ospfv2-area0") is GmState.GM_MEMBER


def _rekey_datagrams(h: Harness) -> list[bytes]:
    """Record every GSA_REKEY the GCKS sends from now on."""
    seen: list[bytes] = []
    previous = h.drop_filter

    def spy(data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bool:
        if data[18] == 41 and data not in seen:
            seen.append(data)
        return previous(data, src, dst) if previous else False

    h.drop_filter = spy
    return seen


@pytest.mark.parametrize("members", [8, 100])
def test_eviction_uses_the_key_tree_and_excludes_only_the_evicted(members: int) -> None:
    from math import ceil, log2

    from mrkm.crypto import keywrap
    from mrkm.errors import IntegrityCheckFailed
    from mrkm.protocol.rekey import open_rekey
    from mrkm.wire import KdPayload, find

    h = Harness(members)
    h.run_until(T0 + 5)
    addrs = list(h.gms)
    victim = h.gms[addrs[3]]
    held = victim._groups["ospfv2-area0"]  # everything the victim ever knew
    assert held.key_path is not None and held.rekey_sa is not None
    victim_keys = [k for _, k in held.key_path.keys] + [held.rekey_sa.gsk_w]
    old_sa = held.rekey_sa
    rekeys = _rekey_datagrams(h)
    h.gcks.evict("ospfv2-area0", victim.config.identity, h.now)
    h.run_until(T0 + 10)

    sent = [e for e in h.events if isinstance(e, ev.RekeySent)]
    eviction = next(e for e in sent if e.reason == "eviction")
    assert eviction.wrapped_keys <= 2 * ceil(log2(members))
    assert any(e.reason == "after-eviction" for e in sent)
    new_key = newest_key(h)
    others = [gm for a, gm in h.gms.items() if a != addrs[3]]
    assert all(holds(gm, new_key, h.now) for gm in others)
    assert not holds(victim, new_key, h.now)
    # Outside judge of forward access control: no key the victim held unwraps
    # anything in the eviction rekey, which it can still decrypt.
    _, inner = open_rekey(old_sa, rekeys[0], None)
    kd = find(inner, KdPayload)
    assert kd is not None
    wrapped = [w for b in kd.group_bags for w in b.sa_keys]
    wrapped += list(kd.member_bag.wrap_keys) if kd.member_bag else []
    assert len(wrapped) == eviction.wrapped_keys
    for w in wrapped:
        for key in victim_keys:
            with pytest.raises(IntegrityCheckFailed):
                keywrap.unwrap(3, key, w.encrypted)

    # Every later rekey stays out of the victim's reach; its re-registration is refused.
    h.run_until(T0 + 200)
    assert all(holds(gm, newest_key(h), h.now) for gm in others)
    assert not any(r.accepting(h.now) for r in victim.key_table.rows.values())
    refused = [e for e in h.events if isinstance(e, ev.RegistrationRejected)]
    assert refused and refused[0].reason == "AUTHORIZATION_FAILED"
    assert victim.config.identity not in h.gcks.status(h.now)["groups"]["ospfv2-area0"]["members"]


def test_cookies_above_the_half_open_threshold_still_admit_members() -> None:
    from dataclasses import replace

    h = Harness(12)
    h.gcks_config = replace(h.gcks_config, cookie_threshold=2)
    from mrkm.protocol.gcks import KeyServer

    h.gcks = KeyServer(h.gcks_config, h.signer, h.rand.randbytes, h.now)
    h.run_until(T0 + 20)
    assert h.gcks.counters.get("cookies_sent", 0) > 0
    assert all(gm.state("ospfv2-area0") is GmState.GM_MEMBER for gm in h.gms.values())


def test_registration_flood_without_cookie_keeps_no_state() -> None:
    import random

    from mrkm.protocol.ikesa import IkeInitiator

    h = Harness(1)
    from dataclasses import replace

    from mrkm.protocol.credentials import Identity, LocalCredentials, PeerTrust
    from mrkm.protocol.gcks import KeyServer

    h.gcks = KeyServer(
        replace(h.gcks_config, cookie_threshold=4), h.signer, h.rand.randbytes, h.now
    )
    rng = random.Random(3).randbytes
    for i in range(200):  # spoofed sources that never answer the COOKIE
        spoof = IkeInitiator(LocalCredentials(Identity.fqdn("x"), psk=b"p" * 16), PeerTrust(), rng)
        h.gcks.receive(spoof.initiate(), (f"192.0.2.{i % 250}", 500), h.now)
    assert h.gcks.status(h.now)["registration_sas"] <= 4
    assert h.gcks.counters["cookies_sent"] >= 196
    h.run_until(T0 + 10)  # the legitimate member answers the COOKIE and registers
    assert next(iter(h.gms.values())).state("ospfv2-area0") is GmState.GM_MEMBER


def test_delete_gike_update_spi_zero_makes_every_member_re_register() -> None:
    h = Harness(4)
    h.run_until(T0 + 5)
    h.gcks.reset("ospfv2-area0", h.now)
    h.run_until(T0 + 30)
    repairs = [e for e in h.events if isinstance(e, ev.RepairScheduled)]
    assert len(repairs) == 4 and all("D(GIKE_UPDATE, SPI 0)" in e.reason for e in repairs)
    assert len({round(e.at, 3) for e in repairs}) == 4  # random back-off, no stampede
    key = newest_key(h)
    assert all(holds(gm, key, h.now) for gm in h.gms.values())
    assert len(h.gcks.status(h.now)["groups"]["ospfv2-area0"]["members"]) == 4


def test_traffic_on_a_promised_next_spi_triggers_repair() -> None:
    h = Harness(2)
    h.run_until(T0 + 5)
    victim_addr = next(iter(h.gms))
    victim = h.gms[victim_addr]
    h.drop_filter = lambda data, src, dst: dst == victim_addr and data[18] == 41
    h.run_until(T0 + 46)  # the rekey at T0 + 45 never reaches the victim
    promised = newest_key(h)
    assert not holds(victim, promised, h.now)
    # A sink sees a neighbour's OSPF packet with the promised Key ID.
    victim.observed_spi(201, bytes([promised]), h.now)
    repairs = [e for e in victim.events() if isinstance(e, ev.RepairScheduled)]
    assert repairs and "promised SPI" in repairs[0].reason
    h.drop_filter = None
    h.run_until(T0 + 52)
    assert holds(victim, promised, h.now)


def test_heartbeats_keep_the_rekey_channel_warm_and_prime_each_rekey() -> None:
    group = make_group(2, lifetime=300.0, rekey_margin=30.0, heartbeat=60.0, prime=1.0)
    h = Harness(2, group=group)
    h.run_until(T0 + 275)  # the periodic rekey is due at T0 + 270
    sent = [e for e in h.events if isinstance(e, ev.RekeySent)]
    beats = [e.time - T0 for e in sent if e.reason == "heartbeat"]
    assert beats[:4] == pytest.approx([60, 120, 180, 240])
    assert 269 in [round(b) for b in beats]  # the primer, one second before the rekey
    rekey = next(e for e in sent if e.reason == "periodic")
    assert rekey.time - T0 == pytest.approx(270)
    for gm in h.gms.values():
        assert gm.counters["heartbeats"] == len(beats)
        assert holds(gm, rekey.key_ids[0], h.now)


def test_gm_retransmits_with_backoff_then_times_out_and_retries() -> None:
    from tests.harness import GCKS_ADDR

    h = Harness(
        1,
        gm_overrides={
            "retransmit_initial": 0.5,
            "retransmit_max": 4.0,
            "registration_timeout": 10.0,
            "retry_delay": 5.0,
        },
    )
    h.drop_filter = lambda data, src, dst: dst == GCKS_ADDR  # the GCKS is unreachable
    sends: list[float] = []
    previous = h.drop_filter
    h.drop_filter = lambda data, src, dst: (
        (sends.append(h.now) if dst == GCKS_ADDR else None) or previous(data, src, dst)
    )
    h.run_until(T0 + 20)
    failed = [e for e in h.events if isinstance(e, ev.RegistrationFailed)]
    first_attempt = [t for t in sends if not failed or t <= failed[0].time]
    gaps = [b - a for a, b in itertools.pairwise(first_attempt)]
    # First retry about 0.5 s, then doubling up to 4 s, each with jitter 0.5x to 1.5x.
    for i, gap in enumerate(gaps):
        base = min(0.5 * 2**i, 4.0)
        assert 0.5 * base <= gap < 1.5 * base, (i, gap)
    assert len(gaps) >= 4
    assert failed and failed[0].reason.startswith("timeout")
    assert failed[0].retry_at is not None and 2.5 <= failed[0].retry_at - failed[0].time < 7.5
    h.drop_filter = None
    h.run_until(T0 + 60)  # a retry succeeds once the GCKS is back
    assert next(iter(h.gms.values())).state("ospfv2-area0") is GmState.GM_MEMBER


def test_gsa_registration_joins_a_further_group_on_the_same_sa() -> None:
    from mrkm.config import GcksConfig
    from mrkm.protocol.credentials import Identity, LocalCredentials, PeerTrust
    from mrkm.protocol.gcks import KeyServer
    from mrkm.protocol.group import read_group
    from mrkm.protocol.ikesa import IkeInitiator
    from mrkm.wire import GsaPayload, IdgPayload, KdPayload, NotifyPayload, find
    from tests.harness import GCKS_ADDR, PSK

    groups = (
        make_group(1),
        make_group(1, name="ospfv3-area0", protocol="ospfv3", rekey_address="239.192.0.2"),
    )
    import random

    rng = random.Random(5).randbytes
    gcks = KeyServer(GcksConfig("gcks.mrkm", GCKS_ADDR, groups), h_signer(), rng, T0)
    gm = IkeInitiator(
        LocalCredentials(Identity.fqdn("r0.mrkm"), psk=PSK),
        PeerTrust(psks={Identity.fqdn("gcks.mrkm"): PSK}),
        rng,
        auth_payloads=(IdgPayload(11, b"ospfv2-area0"),),
    )

    def exchange(request: bytes) -> bytes:
        gcks.receive(request, ("10.1.0.1", 848), T0)
        ((reply, _),) = gcks.datagrams_to_send(T0)
        return reply

    request = gm.initiate()
    while (request := gm.receive(exchange(request), T0)) is not None:
        pass
    assert gm.sa is not None
    reply = exchange(gm.request((IdgPayload(11, b"ospfv3-area0"),)))
    assert gm.receive(reply, T0) is None
    gsa, kd = find(gm.response_payloads, GsaPayload), find(gm.response_payloads, KdPayload)
    assert gsa is not None and kd is not None
    received = read_group(gsa, kd, gm.sa.gsk_w, 3)
    assert received.teks[0].protocol == 202 and len(received.teks[0].spi) == 2
    # ... and a request for a group it is not authorized for is refused with a Notify.
    reply = exchange(gm.request((IdgPayload(11, b"no-such-group"),)))
    gm.receive(reply, T0)
    assert NotifyPayload(45) in gm.response_payloads


def h_signer():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))


def test_late_registrant_sends_an_active_key_at_once() -> None:
    h = Harness(2)
    h.run_until(T0 + 50)  # the rekey at T0 + 45 has been active since T0 + 47 (ATD 2 s)
    gm = h.add_gm(1, {})  # same identity registers again, like a restarted GM
    h.run_until(T0 + 52)
    key = newest_key(h)
    row = gm.key_table.rows[("ospfv2", key)]
    assert row.send_start == row.accept_start  # no second ATD for an active key
    early = Harness(2)
    early.run_until(T0 + 45.5)  # registering inside the ATD of a fresh key
    late = early.add_gm(1, {})
    early.run_until(T0 + 46)
    row = late.key_table.rows[("ospfv2", newest_key(early))]
    assert row.send_start - row.accept_start == pytest.approx(2, abs=1)


def test_undecodable_ike_sa_inits_hold_no_half_open_slot() -> None:
    h = Harness(1)
    for port in range(5):
        # An IKE header alone (RFC 7296 §3.1): IKE_SA_INIT (34), version 2.0, no payload.
        header = bytes([port + 1] * 8) + bytes(8) + bytes([0, 0x20, 34, 0x08]) + bytes(4)
        header += (28).to_bytes(4, "big")
        h.gcks.receive(header, ("10.9.9.9", 5000 + port), h.now)  # dropped and counted
    assert sum(v for k, v in h.gcks.counters.items() if k.startswith("dropped")) == 5
    assert h.gcks._half_open() == 0
    h.run_until(T0 + 5)  # and the real member still registers without a cookie
    assert all(gm.state("ospfv2-area0") is GmState.GM_MEMBER for gm in h.gms.values())
