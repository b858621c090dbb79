"""Benchmark of the key server and group member cores, each figure next to its ceiling.

``make bench`` runs it (after ``bench_core``). All figures come from one run
on one core, because these machines are noisy:

* **registrations per second** of the GCKS, with X25519 + PSK and with
  X25519 + Ed25519 certificates (RFC 7427 AUTH), each (CPU time inside
  ``KeyServer.receive`` for IKE_SA_INIT + GSA_AUTH, plus the measured cost of
  the GCKS's share of two bare asyncio UDP round trips), against the ceiling
  of the same run: the raw crypto of one registration (X25519, key
  derivation, two PSK AUTHs, SK open + seal, key wraps) plus the same UDP cost;
* **GCKS CPU per periodic rekey** for N = 10, 100, 1000 members (the slope
  per member should be close to zero: one multicast message for all);
* **eviction rekeys**: wrapped keys and octets against N (key tree: about
  2 log2 N, not N);
* **GM CPU per rekey** against the raw verify + decrypt + unwrap it needs.

Results: ``results/bench/<time>/bench-gcks.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from mrkm.crypto import auth, certs, keys, keywrap
from mrkm.protocol.credentials import Identity, LocalCredentials, PeerTrust
from mrkm.protocol.gcks import KeyServer
from mrkm.protocol.gm import GroupMember
from tests.harness import GCKS_ADDR, PSK, T0, Harness, make_group

RNG = random.Random(1).randbytes


def cpu_us(fn: Any, repeat: int) -> float:
    """Median CPU µs of ``fn()`` over ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        t0 = time.process_time_ns()
        fn()
        samples.append((time.process_time_ns() - t0) / 1000)
    return statistics.median(samples)


async def _udp_round_trip_us(count: int) -> float:
    """CPU µs one side spends on one bare asyncio UDP request + response (loopback)."""
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.t.sendto(data, addr)  # type: ignore[attr-defined]

    class Client(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.got: asyncio.Queue[bytes] = asyncio.Queue()

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.got.put_nowait(data)

    server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    port = server.get_extra_info("sockname")[1]
    client, proto = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    payload = bytes(300)
    t0 = time.process_time_ns()
    for _ in range(count):
        client.sendto(payload)
        await proto.got.get()
    spent = (time.process_time_ns() - t0) / 1000
    client.close()
    server.close()
    # Both ends ran in this process: half the CPU is the server's share.
    return spent / count / 2


def registration_ceiling_us(repeat: int) -> float:
    """Raw crypto a GCKS spends on one registration, measured with ``cryptography``."""
    peer = x25519.X25519PrivateKey.generate().public_key()
    key_e = RNG(36)
    aad = bytes(32)
    gcm = AESGCM(key_e[:32])
    body = gcm.encrypt(key_e[32:] + bytes(8), bytes(400), aad)

    def one() -> None:
        own = x25519.X25519PrivateKey.generate()
        own.public_key().public_bytes_raw()
        shared = own.exchange(peer)
        keys.derive_ike_sa_keys(5, bytes(32), bytes(32), shared, bytes(8), bytes(8), 36, 0)
        auth.psk_auth(5, PSK, bytes(300))
        auth.psk_auth(5, PSK, bytes(300))
        gcm.decrypt(key_e[32:] + bytes(8), body, aad)
        gcm.encrypt(key_e[32:] + bytes(8), bytes(600), aad)
        for _ in range(4):
            keywrap.wrap(3, key_e[:32], bytes(32))

    return cpu_us(one, repeat)


def signature_ceiling_us(repeat: int) -> float:
    """Raw crypto a GCKS spends on one Ed25519-certificate registration.

    The PSK ceiling's work with the two PSK AUTHs replaced by what RFC 7427
    AUTH with certificates costs the GCKS: verify the member's AUTH
    signature, verify its certificate's CA signature, sign its own AUTH.
    """
    peer = x25519.X25519PrivateKey.generate().public_key()
    key_e = RNG(36)
    aad = bytes(32)
    gcm = AESGCM(key_e[:32])
    body = gcm.encrypt(key_e[32:] + bytes(8), bytes(700), aad)
    member, ca_key, own = (ed25519.Ed25519PrivateKey.generate() for _ in range(3))
    octets = bytes(300)
    member_sig, ca_sig = member.sign(octets), ca_key.sign(octets)
    member_pub, ca_pub = member.public_key(), ca_key.public_key()

    def one() -> None:
        dh_key = x25519.X25519PrivateKey.generate()
        dh_key.public_key().public_bytes_raw()
        shared = dh_key.exchange(peer)
        keys.derive_ike_sa_keys(5, bytes(32), bytes(32), shared, bytes(8), bytes(8), 36, 0)
        member_pub.verify(member_sig, octets)
        ca_pub.verify(ca_sig, octets)
        own.sign(octets)
        gcm.decrypt(key_e[32:] + bytes(8), body, aad)
        gcm.encrypt(key_e[32:] + bytes(8), bytes(900), aad)
        for _ in range(4):
            keywrap.wrap(3, key_e[:32], bytes(32))

    return cpu_us(one, repeat)


def _use_certificates(h: Harness) -> None:
    """Rebuild ``h`` so that the GCKS and every GM authenticate with Ed25519 certificates."""
    not_before = datetime.fromtimestamp(T0 - 86400, UTC)
    ca_key = ed25519.Ed25519PrivateKey.from_private_bytes(h.rand.randbytes(32))
    ca = certs.make_ca("mrkm bench CA", ca_key, not_before, 30)

    def cert(name: str, key: ed25519.Ed25519PrivateKey) -> Any:
        return certs.issue_cert(ca, ca_key, name, key.public_key(), not_before, 30, name)

    group = replace(h.group, psk=None)
    pem = Path("unused.pem")  # the cores take objects; the paths only satisfy GcksConfig
    h.gcks_config = replace(
        h.gcks_config,
        groups=(group,),
        signing_key=pem,
        certificate=pem,
        ca=pem,
        cookie_threshold=h.gcks_config.max_half_open,
    )
    gcks_cert = cert("gcks.mrkm", h.signer)  # type: ignore[arg-type]
    h.gcks = KeyServer(h.gcks_config, h.signer, h.rand.randbytes, h.now, gcks_cert, ca)
    trust = PeerTrust(ca=ca)
    for addr, old in list(h.gms.items()):
        key = ed25519.Ed25519PrivateKey.from_private_bytes(h.rand.randbytes(32))
        name = old.config.identity
        config = replace(old.config, psk=None, certificate=pem, key=pem, ca=pem)
        local = LocalCredentials(Identity.fqdn(name), signing_key=key, certificate=cert(name, key))
        h.gms[addr] = GroupMember(
            config, local, trust, random.Random(h.rand.random()).randbytes, h.now
        )


def registration_cost_us(members: int, certificates: bool = False) -> float:
    """GCKS CPU µs per registration, inside KeyServer.receive, for ``members`` GMs.

    With ``certificates`` both sides authenticate with Ed25519 certificates
    (RFC 7427 AUTH); otherwise with the group PSK.
    """
    h = Harness(members, seed=3)
    if certificates:
        _use_certificates(h)
    else:
        # Compare like with like: the ceiling has no COOKIE round trip, so the
        # measured GCKS answers every IKE_SA_INIT without demanding one.
        h.gcks_config = replace(h.gcks_config, cookie_threshold=h.gcks_config.max_half_open)
        h.gcks = KeyServer(h.gcks_config, h.signer, h.rand.randbytes, h.now)
    gcks = h.gcks
    spent = [0]
    original = gcks.receive

    def timed(data: bytes, addr: tuple[str, int], now: float) -> None:
        t0 = time.process_time_ns()
        original(data, addr, now)
        spent[0] += time.process_time_ns() - t0

    gcks.receive = timed  # type: ignore[method-assign]
    h.run_until(T0 + 30)
    registered = len(gcks.status(h.now)["groups"]["ospfv2-area0"]["members"])
    assert registered == members, f"only {registered} of {members} registered"
    return spent[0] / 1000 / members


def rekey_cost(members: int, repeat: int) -> dict[str, float]:
    """GCKS CPU per rekey and per eviction with ``members`` registered."""
    h = Harness(members, seed=5, group=make_group(members, lifetime=3600, rekey_margin=60))
    h.run_until(T0 + 30)
    gcks = h.gcks
    us = cpu_us(lambda: gcks.rekey("ospfv2-area0", h.now), repeat)
    gcks.datagrams_to_send(h.now + 10)
    victims = [gm.config.identity for gm in list(h.gms.values())[:3]]
    t0 = time.process_time_ns()
    for victim in victims:
        gcks.evict("ospfv2-area0", victim, h.now)
    evict_us = (time.process_time_ns() - t0) / 1000 / len(victims)
    evict_events = [e for e in gcks.events() if getattr(e, "reason", "") == "eviction"]
    return {
        "members": members,
        "rekey_us": round(us, 1),
        "eviction_us": round(evict_us, 1),
        "eviction_wrapped_keys": max(e.wrapped_keys for e in evict_events),  # type: ignore[attr-defined]
        "eviction_octets": max(e.octets for e in evict_events),  # type: ignore[attr-defined]
    }


def gm_rekey_cost(repeat: int) -> dict[str, float]:
    """GM CPU per accepted rekey against raw verify + decrypt + unwrap."""
    h = Harness(1, seed=9)
    h.run_until(T0 + 5)
    gm = next(iter(h.gms.values()))
    group = gm._groups["ospfv2-area0"]
    sa = group.rekey_sa
    assert sa is not None and group.auth_key is not None
    raws: list[bytes] = []
    for _ in range(repeat):
        h.gcks.rekey("ospfv2-area0", h.now)
        raws += [d for d, _ in h.gcks.datagrams_to_send(h.now) if d[18] == 41][:1]
    it = iter(raws)
    us = cpu_us(lambda: gm.receive(next(it), GCKS_ADDR, h.now), len(raws))
    accepted = gm.counters.get("rekey_rejected", 0) == 0
    signer = ed25519.Ed25519PrivateKey.generate()
    sig = signer.sign(raws[0])
    pub = signer.public_key()
    gcm = AESGCM(sa.gsk_e[:32])
    ct = gcm.encrypt(sa.gsk_e[32:] + bytes(8), raws[0], b"")
    wrapped = keywrap.wrap(3, sa.gsk_w, bytes(32))

    def raw() -> None:
        pub.verify(sig, raws[0])
        gcm.decrypt(sa.gsk_e[32:] + bytes(8), ct, b"")
        aes_key_unwrap_with_padding(sa.gsk_w, wrapped)
        aes_key_unwrap_with_padding(sa.gsk_w, wrapped)

    base = cpu_us(raw, repeat)
    return {
        "gm_rekey_us": round(us, 1),
        "raw_verify_decrypt_unwrap_us": round(base, 1),
        "ratio": round(us / base, 2),
        "all_accepted": accepted,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Every GCKS and GM figure with its same-run ceiling; ``quick`` for CI smoke."""
    repeat = 20 if quick else 200
    members = [10, 100] if quick else [10, 100, 1000]
    reg_members = 50 if quick else 200

    udp_us = asyncio.run(_udp_round_trip_us(200 if quick else 2000))
    registration = {}
    for auth_name, ceiling_fn, certificates in (
        ("psk", registration_ceiling_us, False),
        ("ed25519", signature_ceiling_us, True),
    ):
        ceiling_us = ceiling_fn(repeat) + 2 * udp_us
        reg_us = registration_cost_us(reg_members, certificates) + 2 * udp_us
        registration[auth_name] = {
            "auth": "X25519 + PSK" if auth_name == "psk" else "X25519 + Ed25519 certificates",
            "members": reg_members,
            "gcks_us": round(reg_us, 1),
            "per_second_one_core": round(1e6 / reg_us),
            "ceiling_us": round(ceiling_us, 1),
            "ceiling_per_second": round(1e6 / ceiling_us),
            "ratio_to_ceiling": round(ceiling_us / reg_us, 3),
            "udp_round_trip_share_us": round(udp_us, 1),
        }
    rekeys = [rekey_cost(n, repeat) for n in members]
    slope = (rekeys[-1]["rekey_us"] - rekeys[0]["rekey_us"]) / (members[-1] - members[0])
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_avg": os.getloadavg(),
        "registration": registration,
        "rekey": rekeys,
        "rekey_slope_us_per_member": round(slope, 4),
        "gm": gm_rekey_cost(repeat),
    }


def print_table(report: dict[str, Any]) -> None:
    """The report in a few lines."""
    for r in report["registration"].values():
        print(
            f"registrations/s on one core, {r['auth']}: {r['per_second_one_core']} "
            f"(ceiling {r['ceiling_per_second']}/s, ratio {r['ratio_to_ceiling']})"
        )
    for row in report["rekey"]:
        print(
            f"N={row['members']:5}: rekey {row['rekey_us']:8.1f} µs CPU; eviction "
            f"{row['eviction_us']:8.1f} µs, {row['eviction_wrapped_keys']} wrapped keys, "
            f"{row['eviction_octets']} octets"
        )
    print(f"rekey CPU slope: {report['rekey_slope_us_per_member']:.4f} µs per member")
    gm = report["gm"]
    print(
        f"GM per rekey: {gm['gm_rekey_us']} µs vs raw verify+decrypt+unwrap "
        f"{gm['raw_verify_decrypt_unwrap_us']} µs (ratio {gm['ratio']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench", help="output folder")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (for CI smoke)")
    args = parser.parse_args()
    report = run(args.quick)
    print_table(report)
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-gcks.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out / 'bench-gcks.json'}")


if __name__ == "__main__":
    main()
