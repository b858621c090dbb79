"""An attacker on the testbed: crafted GSA_REKEYs and registrations that MRKM must refuse.

The attacker lives in its own network namespace ``<prefix>-atk`` with up to
two kinds of links, made on first use:

* ``amg``, a veth onto the management bridge ``mgmt0`` of the GCKS host, at
  :data:`ATTACKER_MGMT` (registrations to the GCKS, spoofed floods);
* ``g<n>``, a veth into one router's GM bridge ``gm0`` (the link on which
  that router's GM hears GSA_REKEY): what a device plugged into that
  segment could send.

The namespace is added to the network's run record
(:class:`testbed.cleanup.RunRecord`), so the network's teardown and ``make
clean-net`` delete it even when the run crashes; :meth:`Attacker.close`
deletes it too and stops every helper it started, by PID.

Packets are crafted here with scapy (IPv4 + UDP, spoofed sources, IP
fragments for oversized datagrams) and sent from inside the namespace by a
small helper (``python -m testbed.attacks send``) over a raw socket; a
second helper (``listen``) captures GSA_REKEYs off the rekey tree.

Attacks (``kind`` of the timeline action ``attack``), each answered by the
daemons' own counters and event logs (RFC 9838 §8, RFC 7296 §2.6):

=========================  ==================================================
``replay-rekey``           a captured, older GSA_REKEY sent again: the GM's
                           replay counter (the Message ID) drops it
``forged-signature``       a captured GSA_REKEY with one ciphertext bit
                           flipped (an outsider: ICV), and one re-sealed under
                           the Rekey SA with a corrupted GCKS signature (an
                           insider who holds the Rekey SA keys)
``foreign-signer``         a well-formed GSA_REKEY carrying an attacker key,
                           sealed under the Rekey SA and signed by another
                           Ed25519 key
``truncated``              GSA_REKEYs and an IKE_SA_INIT cut short
``oversized``              GSA_REKEYs and an IKE_SA_INIT padded far beyond
                           their IKE Length (sent as IP fragments)
``registration-flood``     IKE_SA_INITs from spoofed sources; meanwhile a GM
                           restarts and must register (COOKIE, RFC 7296 §2.6)
``unauthorized-identity``  a real GM with the group PSK but an identity the
                           GCKS does not list
``evicted-member``         the GCKS evicts a member, whose GM then restarts
                           and tries to register again
=========================  ==================================================

The insider attacks read the Rekey SA keys from the GCKS's state file, as a
compromised member that holds them (every member does) would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519

from mrkm.config import GroupConfig
from mrkm.crypto.signatures import SigningKey, algorithm_id_for
from mrkm.protocol import Identity, IkeInitiator, LocalCredentials, PeerTrust
from mrkm.protocol.group import GroupKeys, GroupPolicy, RoutingKey, TekPolicy, make_gsa, make_kd
from mrkm.protocol.rekey import RekeySa, build_rekey, open_rekey
from mrkm.wire import AuthPayload, GsaPayload, IdgPayload
from mrkm.wire.registry import IdType, IntegId, ProtocolId, TransformType
from testbed.processes import REPO, Proc, wait_until
from testbed.scenario import ATTACK_KINDS

__all__ = [
    "ATTACKER_MGMT",
    "ATTACK_KEY_ID",
    "KINDS",
    "Attacker",
    "corrupt_ciphertext",
    "forge_bad_signature",
    "forge_foreign_signer",
    "ip_udp",
    "oversize",
    "rekey_sa_from_state",
    "sa_init",
    "spoofed_sources",
    "truncations",
]

KINDS = ATTACK_KINDS  # one list: the scenario checks timeline entries against it
ATTACKER_MGMT = "10.250.254.250"  # on the management network 10.250.0.0/16
SPOOF_NET = "10.250.200.0"  # spoofed flood sources: 10.250.200.0-10.250.203.255 (unused)
GCKS_ADDRESS = "10.250.255.254"  # topologies.addressing.GCKS_MGMT_ADDRESS
GCKS_REKEY_SOURCE = "10.252.0.2"  # the GCKS's rekey0 (testbed.network GCKS_LAN .2)
REKEY_GROUP, IKE_PORT = "239.192.0.1", 848
ATTACK_KEY_ID = 250  # the key id the forged rekeys try to plant
INTRUDER = "intruder.mrkm"
OVERSIZE = 20000  # octets of an oversized datagram (UDP payload)
HELPER_LIFETIME = 120.0  # s: a helper exits by itself after this, even if orphaned
Rng = Callable[[int], bytes]


# -- crafting (pure functions; tests/test_attacks.py checks them without root) ------------


def rekey_sa_from_state(state: Mapping[str, Any], group: str) -> tuple[RekeySa, int]:
    """The Rekey SA of ``group`` and its next Message ID, from a GCKS state snapshot.

    The suite and key wrap are the group policy's defaults, as the GCKS uses
    them (``KeyServer._rekey_sa``).
    """
    try:
        data = state["groups"][group]
        spi, keymat = bytes.fromhex(data["rekey_spi"]), bytes.fromhex(data["rekey_keymat"])
        next_id = int(data["next_message_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"GCKS state: no usable Rekey SA for group {group!r} ({exc})") from None
    policy = GroupPolicy("0.0.0.0")
    return RekeySa.from_keymat(spi, policy.rekey_suite, policy.kwa, keymat), next_id


def corrupt_ciphertext(raw: bytes, rng: Rng) -> bytes:
    """``raw`` with one bit flipped inside its SK payload's ciphertext (the ICV must fail)."""
    if len(raw) < 64:
        raise ValueError(f"{len(raw)} octets: too short to be a sealed GSA_REKEY")
    at = 28 + 4 + 16 + int.from_bytes(rng(2), "big") % (len(raw) - 28 - 4 - 16 - 16)
    return raw[:at] + bytes([raw[at] ^ (1 << (rng(1)[0] % 8))]) + raw[at + 1 :]


def _inner(sa: RekeySa, raw: bytes) -> tuple[Any, ...]:
    """The inner payloads of a captured GSA_REKEY, AUTH included (no signature check)."""
    _message_id, inner = open_rekey(sa, raw, None)
    return inner


def forge_bad_signature(sa: RekeySa, raw: bytes, message_id: int, rng: Rng) -> bytes:
    """The payloads of ``raw`` re-sealed under ``sa`` with ``message_id`` and a corrupted
    GCKS signature: the ICV holds, the signature (RFC 9838 §2.4.1.1) must not."""
    inner = _inner(sa, raw)
    auth = inner[-1]
    if not isinstance(auth, AuthPayload) or not auth.data:
        raise ValueError("the captured GSA_REKEY carries no signature to corrupt")
    flipped = bytes([auth.data[0] ^ 0x80]) + auth.data[1:]
    bad = AuthPayload(auth.method, flipped, auth.algorithm_id)
    return build_rekey(sa, message_id, (*inner[:-1], bad), None, rng(sa.suite.iv_len))


def attacker_payloads(
    sa: RekeySa, raw: bytes, signer: SigningKey, rng: Rng, key_id: int = ATTACK_KEY_ID
) -> tuple[Any, ...]:
    """GSA + KD announcing an attacker routing key ``key_id`` for the captured group's
    protocol and digest, wrapped under the Rekey SA's GSK_w (what a member unwraps)."""
    gsa = next((p for p in _inner(sa, raw) if isinstance(p, GsaPayload)), None)
    tek = gsa.data_policies[0] if gsa is not None and gsa.data_policies else None
    protocol = int(tek.protocol) if tek is not None else int(ProtocolId.OSPFV2)
    found = tek.transform(TransformType.INTEG) if tek is not None else None
    integ = int(found.id) if found is not None else int(IntegId.ROUTING_KEYED_MD5)
    size = {int(ProtocolId.OSPFV2): 1, int(ProtocolId.OSPFV3_TRAILER): 2}.get(protocol, 4)
    tekp = TekPolicy(protocol, integ, 600)
    policy = GroupPolicy(GCKS_ADDRESS, signature_alg_id=algorithm_id_for(signer), teks=(tekp,))
    key = RoutingKey(protocol, key_id.to_bytes(size, "big"), integ, rng(tekp.key_len), 600)
    keymat = sa.gsk_e + sa.gsk_a + sa.gsk_w  # RFC 9838 §3.4 order: the same Rekey SA
    keys = GroupKeys(sa.spi, keymat, (key,), 0)
    return (
        make_gsa(policy, keys, registration=False),
        make_kd(policy, keys, sa.gsk_w, sa.kwa, None),
    )


def forge_foreign_signer(
    sa: RekeySa, raw: bytes, message_id: int, signer: SigningKey, rng: Rng
) -> bytes:
    """A GSA_REKEY under ``sa`` with ``message_id`` planting :data:`ATTACK_KEY_ID`, signed
    by ``signer`` (not the GCKS's key): everything but the signature is right."""
    inner = attacker_payloads(sa, raw, signer, rng)
    return build_rekey(sa, message_id, inner, signer, rng(sa.suite.iv_len))


def truncations(raw: bytes) -> list[bytes]:
    """``raw`` cut after its IKE header, at half its length, and one octet short."""
    if len(raw) < 30:
        raise ValueError(f"{len(raw)} octets: too short to truncate")
    return [raw[:28], raw[: len(raw) // 2], raw[:-1]]


def oversize(raw: bytes, size: int, rng: Rng) -> bytes:
    """``raw`` padded with random octets to ``size`` (its IKE Length unchanged)."""
    return raw + rng(max(0, size - len(raw)))


def sa_init(identity: str, rng: Rng) -> bytes:
    """A well-formed IKE_SA_INIT request of a fresh registration (new SPI, nonce, KE)."""
    local = LocalCredentials(Identity.fqdn(identity), psk=bytes(32))
    init = IkeInitiator(
        local,
        PeerTrust(group_psk=bytes(32)),
        rng,
        auth_payloads=(IdgPayload(IdType.ID_KEY_ID, b"ospfv2-area0"),),
    )
    return init.initiate()


def spoofed_sources(count: int, seed: int) -> list[str]:
    """``count`` distinct unused management addresses from ``SPOOF_NET``/22."""
    base = struct.unpack("!I", socket.inet_aton(SPOOF_NET))[0]
    hosts = random.Random(seed).sample(range(1, 1023), min(count, 1022))
    return [socket.inet_ntoa(struct.pack("!I", base + h)) for h in hosts]


def ip_udp(
    src: str, dst: str, payload: bytes, ident: int, sport: int = IKE_PORT, mtu: int = 1500
) -> list[bytes]:
    """IPv4/UDP packet(s) from ``src`` (spoofable) to ``dst``:``848``, built by scapy and
    split into IP fragments when longer than ``mtu``."""
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.packet import Raw

    ttl = 1 if socket.inet_aton(dst)[0] >= 224 else 64
    packet = (
        IP(src=src, dst=dst, ttl=ttl, id=ident & 0xFFFF)
        / UDP(sport=sport, dport=IKE_PORT)
        / Raw(payload)
    )
    whole = bytes(packet)
    if len(whole) <= mtu:
        return [whole]
    return [bytes(f) for f in fragment(IP(whole), fragsize=mtu - 40)]  # type: ignore[no-untyped-call]


# -- the attacker node ------------------------------------------------------------------


def _rekey_id(raw: bytes) -> tuple[str, int]:
    """(Rekey SA SPI hex, Message ID) from a GSA_REKEY's IKE header."""
    return raw[:16].hex(), int.from_bytes(raw[20:24], "big")


class Attacker:
    """The attacker namespace, its links, and one method per attack (module doc).

    ``net`` is a running :class:`testbed.network.Network`; ``rekey`` sends one
    legitimate rekey of a group and returns the GCKS's ``rekey_sent`` event
    (the player's, so that it is recorded like any timeline rekey).
    """

    def __init__(
        self,
        net: Any,
        rekey: Callable[[str], dict[str, Any]],
        rng: Rng = os.urandom,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.net, self.rekey, self.rng, self.clock = net, rekey, rng, clock
        self.ns = f"{net.prefix}-atk"
        self.folder = Path(net.workdir) / "attack"  # not merged into the run's events
        self._links: dict[str, str] = {}  # router -> attacker interface on its gm0
        self._mgmt = False
        self._made = False
        self._helpers: list[subprocess.Popen[bytes]] = []
        self._procs: list[Proc] = []
        self._captured: dict[str, tuple[int, bytes]] = {}  # group -> older accepted rekey
        self._ident = int.from_bytes(rng(2), "big")
        self.gcks_counters: dict[str, int] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def _ip(self, *argv: str) -> None:
        result = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"attacker: ip {' '.join(argv)}: {result.stderr.strip()}")

    def _setup(self) -> None:
        """Create the namespace, recorded in the run record before anything is in it."""
        if self._made:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        record = self.net.record
        if self.ns not in record.namespaces:
            record.namespaces.append(self.ns)
            record.save()
        self._ip("netns", "add", self.ns)
        self._made = True
        self._ip("-n", self.ns, "link", "set", "lo", "up")

    def _mgmt_link(self) -> str:
        """``amg`` onto the GCKS host's management bridge, at :data:`ATTACKER_MGMT`."""
        self._setup()
        if not self._mgmt:
            gcks_ns = self.net.namespace("gcks")
            self._ip("link", "add", "amg", "netns", self.ns, "type", "veth",
                     "peer", "name", "atkm", "netns", gcks_ns)  # fmt: skip
            self._ip("-n", gcks_ns, "link", "set", "atkm", "master", "mgmt0", "up")
            self._ip("-n", self.ns, "addr", "add", f"{ATTACKER_MGMT}/16", "dev", "amg")
            self._ip("-n", self.ns, "link", "set", "amg", "up")
            self._mgmt = True
        return "amg"

    def _gm_link(self, router: str) -> str:
        """``g<n>`` into ``router``'s GM bridge ``gm0``."""
        self._setup()
        if router not in self.net.routers:
            raise ValueError(f"router: unknown {router!r}; known: {', '.join(self.net.routers)}")
        if router not in self._links:
            n = len(self._links)
            iface, router_ns = f"g{n}", self.net.namespace(router)
            self._ip("link", "add", iface, "netns", self.ns, "type", "veth",
                     "peer", "name", "atk0", "netns", router_ns)  # fmt: skip
            self._ip("-n", router_ns, "link", "set", "atk0", "master", "gm0", "up")
            self._ip("-n", self.ns, "addr", "add", f"10.251.254.{n + 1}/32", "dev", iface)
            self._ip("-n", self.ns, "link", "set", iface, "up")
            self._links[router] = iface
        return self._links[router]

    def close(self) -> None:
        """Stop every helper and process by PID, then delete the namespace (its veths go
        with it). Safe to call twice."""
        for proc in self._procs:
            proc.stop(5)
        for helper in self._helpers:
            if helper.poll() is None:
                helper.terminate()
                try:
                    helper.wait(5)
                except subprocess.TimeoutExpired:
                    helper.kill()
                    helper.wait(5)
        self._procs, self._helpers = [], []
        if self._made:
            subprocess.run(["ip", "netns", "delete", self.ns], capture_output=True, check=False)
            self._made = False

    # -- sending and listening ------------------------------------------------------------

    def _helper(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, sys.executable, "-m", "testbed.attacks", *argv]

    def _packets(self, datagrams: Sequence[tuple[str, str, bytes]], name: str) -> Path:
        """Write the IP packets of ``(src, dst, payload)`` datagrams to a file (hex lines)."""
        lines = []
        for src, dst, payload in datagrams:
            self._ident += 1
            lines += [p.hex() for p in ip_udp(src, dst, payload, self._ident)]
        path = self.folder / f"{name}.hex"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _start_send(self, iface: str, path: Path, rate: float = 0.0) -> subprocess.Popen[bytes]:
        helper = subprocess.Popen(
            self._helper("send", "--iface", iface, "--packets", str(path), "--rate", str(rate)),
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._helpers.append(helper)
        return helper

    def _send(self, iface: str, datagrams: Sequence[tuple[str, str, bytes]], name: str) -> None:
        helper = self._start_send(iface, self._packets(datagrams, name))
        _out, err = helper.communicate(timeout=60)
        if helper.returncode != 0:
            raise RuntimeError(f"attacker: sending {name} failed: {err.decode().strip()[-500:]}")

    def _to_gm(self, router: str, payloads: Sequence[bytes], name: str) -> None:
        """Multicast ``payloads`` to the rekey group on ``router``'s GM bridge, from the
        GCKS's own rekey source address (spoofed)."""
        iface = self._gm_link(router)
        self._send(iface, [(GCKS_REKEY_SOURCE, REKEY_GROUP, p) for p in payloads], name)

    def _to_gcks(self, payloads: Sequence[bytes], name: str) -> None:
        iface = self._mgmt_link()
        self._send(iface, [(ATTACKER_MGMT, GCKS_ADDRESS, p) for p in payloads], name)

    # -- what the daemons counted -----------------------------------------------------------

    def _gcks_status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.net.gcks.control({"cmd": "status"})
        self.gcks_counters = dict(status.get("counters") or {})
        return status

    def _gm_rejections(self, router: str, since: float) -> dict[str, int]:
        """``router``'s GM rejections since ``since``: ``rekey_rejected`` by error class."""
        out: dict[str, int] = {}
        for e in self.net.gms[router].events("rekey_rejected"):
            if e["t"] >= since:
                key = f"gm.rekey_rejected.{str(e.get('reason', '')).split(':')[0]}"
                out[key] = out.get(key, 0) + 1
        return out

    def _gcks_rejections(self, since: float, source: str = ATTACKER_MGMT) -> dict[str, int]:
        """GCKS drops of datagrams from ``source`` since ``since``, by error class."""
        out: dict[str, int] = {}
        for e in self.net.gcks.events("datagram_dropped"):
            if e["t"] >= since and str(e.get("source", "")).split(":")[0] == source:
                key = f"gcks.dropped.{str(e.get('reason', '')).split(':')[0]}"
                out[key] = out.get(key, 0) + 1
        return out

    def _await(self, count: Callable[[], int], expected: int, what: str, timeout: float) -> int:
        """Poll ``count`` until it reaches ``expected`` (or the deadline); its last value."""
        with contextlib.suppress(TimeoutError):  # the record shows any shortfall
            wait_until(lambda: count() >= expected, timeout, what, 0.1)
        return count()

    # -- captures ---------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((Path(self.net.workdir) / "gcks-state.json").read_text())
        return data

    def capture(self, router: str, group: str) -> tuple[int, bytes]:
        """An older GSA_REKEY of ``group`` heard on ``router``'s GM bridge, which the GM
        accepted and has since superseded: (Message ID, octets).

        Listens on the bridge, has the GCKS send one rekey (and waits until the GM
        heard all its copies), then a second one the GM accepts.
        """
        sa, _ = rekey_sa_from_state(self._state(), group)
        held = self._captured.get(group)
        if held is not None and held[1][:16] == sa.spi:
            return held
        iface = self._gm_link(router)
        out = self.folder / f"capture-{iface}.jsonl"
        out.unlink(missing_ok=True)
        listener = subprocess.Popen(
            self._helper("listen", "--iface", iface, "--out", str(out)),
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stderr=subprocess.PIPE,
        )
        self._helpers.append(listener)
        try:
            wait_until(lambda: out.exists() and "ready" in out.read_text(), 20, "the listener")
            sent = self.rekey(group)
            want = (str(sent["sa"]), int(sent["message_id"]))

            def heard() -> bytes | None:
                for line in out.read_text().splitlines():
                    record = json.loads(line)
                    if "hex" in record and _rekey_id(bytes.fromhex(record["hex"])) == want:
                        return bytes.fromhex(record["hex"])
                return None

            wait_until(lambda: heard() is not None, 15, f"rekey {want[1]} on {router}'s gm0")
            raw = heard()
            assert raw is not None
        finally:
            listener.terminate()
            listener.wait(5)
        gm = self.net.gms[router]

        def copies_heard() -> int:
            events = gm.events()
            return sum(
                1
                for e in events
                if (e["event"] == "rekey_accepted" and (e.get("sa"), e["message_id"]) == want)
                or (
                    e["event"] == "rekey_duplicate"
                    and e.get("group") == group
                    and e["message_id"] == want[1]
                )
            )

        # Copies lost on the way must not stall the attack: wait no longer than the
        # group's copy schedule (GroupConfig.copies) lasts.
        window = max(self._copy_window(group), 0.5) + 1.0
        self._await(copies_heard, int(sent.get("copies", 1)), "every copy at the GM", window)
        newer = self.rekey(group)
        wait_until(
            lambda: gm.accepted(newer), 15, f"{router} to accept rekey {newer['message_id']}"
        )
        self._captured[group] = (want[1], raw)
        return want[1], raw

    def _copy_window(self, group: str) -> float:
        """Seconds from a rekey's first copy to its last (the group's ``copies``)."""
        for g in self.net.gcks.groups:
            if g["name"] == group:
                return float(max(g.get("copies") or GroupConfig.copies))
        return float(max(GroupConfig.copies))

    # -- the attacks ------------------------------------------------------------------------

    def run(self, kind: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Play one attack; a record: what was sent, what was expected to be refused, and
        what the daemons counted (``rejected``, by reason)."""
        handler = getattr(self, "_" + kind.replace("-", "_"), None)
        if kind not in KINDS or handler is None:
            raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
        record: dict[str, Any] = handler(args)
        self._gcks_status()
        return {"attack": kind, **record}

    def _group(self, args: Mapping[str, Any]) -> str:
        return str(args.get("group") or self.net.gcks.groups[0]["name"])

    def _router(self, args: Mapping[str, Any]) -> str:
        router = str(args.get("router") or next(iter(self.net.routers)))
        if router not in self.net.gms:
            raise ValueError(f"router: no GM on {router!r}; known: {', '.join(self.net.gms)}")
        return router

    def _replay_rekey(self, args: Mapping[str, Any]) -> dict[str, Any]:
        router, group = self._router(args), self._group(args)
        message_id, raw = self.capture(router, group)
        count = int(args.get("packets", 3))
        gm, start = self.net.gms[router], self.clock()
        self._to_gm(router, [raw] * count, "replay")

        def replays() -> int:
            return sum(
                1
                for e in gm.events("rekey_duplicate")
                if e["t"] >= start and e.get("group") == group and e["message_id"] == message_id
            )

        seen = self._await(replays, count, "the GM to drop the replays", 10)
        return {"router": router, "group": group, "sent": count, "expected": count,
                "rejected": {"gm.rekey_duplicate": seen}, "message_id": message_id}  # fmt: skip

    def _insider(
        self, args: Mapping[str, Any], name: str, messages: Callable[..., list[bytes]]
    ) -> dict[str, Any]:
        router, group = self._router(args), self._group(args)
        _, raw = self.capture(router, group)
        sa, next_id = rekey_sa_from_state(self._state(), group)
        forged = messages(sa, raw, next_id + 1000)
        start = self.clock()
        self._to_gm(router, forged, name)
        self._await(
            lambda: sum(self._gm_rejections(router, start).values()),
            len(forged),
            "the GM to reject the forged rekeys",
            10,
        )
        rejected = self._gm_rejections(router, start)
        return {"router": router, "group": group, "sent": len(forged), "expected": len(forged),
                "rejected": rejected}  # fmt: skip

    def _forged_signature(self, args: Mapping[str, Any]) -> dict[str, Any]:
        def messages(sa: RekeySa, raw: bytes, message_id: int) -> list[bytes]:
            return [
                corrupt_ciphertext(raw, self.rng),
                forge_bad_signature(sa, raw, message_id, self.rng),
            ]

        return self._insider(args, "forged-signature", messages)

    def _foreign_signer(self, args: Mapping[str, Any]) -> dict[str, Any]:
        key = ed25519.Ed25519PrivateKey.generate()

        def messages(sa: RekeySa, raw: bytes, message_id: int) -> list[bytes]:
            return [forge_foreign_signer(sa, raw, message_id, key, self.rng)]

        return self._insider(args, "foreign-signer", messages)

    def _malformed(
        self, args: Mapping[str, Any], name: str, shape: Callable[[bytes], list[bytes]]
    ) -> dict[str, Any]:
        router, group = self._router(args), self._group(args)
        _, raw = self.capture(router, group)
        to_gm, to_gcks = shape(raw), shape(sa_init("attacker.mrkm", self.rng))
        start = self.clock()
        self._to_gm(router, to_gm, f"{name}-gm")
        self._to_gcks(to_gcks, f"{name}-gcks")
        self._await(
            lambda: (
                sum(self._gm_rejections(router, start).values())
                + sum(self._gcks_rejections(start).values())
            ),
            len(to_gm) + len(to_gcks),
            f"{name} datagrams to be rejected",
            10,
        )
        rejected = self._gm_rejections(router, start) | self._gcks_rejections(start)
        n = len(to_gm) + len(to_gcks)
        return {"router": router, "group": group, "sent": n, "expected": n, "rejected": rejected}

    def _truncated(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return self._malformed(args, "truncated", truncations)

    def _oversized(self, args: Mapping[str, Any]) -> dict[str, Any]:
        size = int(args.get("size", OVERSIZE))
        return self._malformed(args, "oversized", lambda raw: [oversize(raw, size, self.rng)])

    def _registration_flood(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Spoofed IKE_SA_INITs at ``rate``/s; the GM of ``router`` restarts meanwhile and
        must register (the GCKS answers the flood with COOKIEs past its threshold)."""
        router = self._router(args)
        count, rate = int(args.get("packets", 300)), float(args.get("rate", 150))
        sources = spoofed_sources(count, int.from_bytes(self.rng(4), "big"))
        datagrams = [(src, GCKS_ADDRESS, sa_init(f"flood{i}.mrkm", self.rng))
                     for i, src in enumerate(sources)]  # fmt: skip
        path = self._packets(datagrams, "flood")
        before = dict(self._gcks_status().get("counters") or {})
        iface = self._mgmt_link()
        start = self.clock()
        sender = self._start_send(iface, path, rate)

        def cookies() -> int:
            counters = self._gcks_status().get("counters") or {}
            return int(counters.get("cookies_sent", 0)) - int(before.get("cookies_sent", 0))

        self._await(cookies, 1, "the GCKS to answer with COOKIEs", 10)
        gm = self.net.gms[router]
        restart = self.clock()
        gm.stop()
        gm.start()
        groups = {str(g["name"]) for g in self.net.gcks.groups}

        def registered() -> int:
            done = {
                e["group"]
                for e in self.net.gcks.events("member_registered")
                if e["t"] >= restart and e["member"] == gm.identity
            }
            return len(done & groups)

        ok = self._await(registered, len(groups), f"{router} to register during the flood", 30)
        took = self.clock() - restart
        during = sender.poll() is None
        sender.communicate(timeout=60)
        status = self._gcks_status()
        after = dict(status.get("counters") or {})
        delta = {f"gcks.{k}": after.get(k, 0) - before.get(k, 0)
                 for k in sorted(set(after) | set(before))
                 if k == "cookies_sent" or k.startswith("dropped.")}  # fmt: skip
        return {"router": router, "sent": count, "expected": 0,
                "rejected": {k: v for k, v in delta.items() if v},
                "legit_registered": ok == len(groups), "registration_s": round(took, 3),
                "registered_during_flood": during, "restart_t": round(restart, 6),
                "flood_s": round(self.clock() - start, 3),
                "registration_sas": status.get("registration_sas")}  # fmt: skip

    def _gm_config(self, identity: str) -> Path:
        config = {
            "gm": {
                "identity": identity,
                "gcks": f"{GCKS_ADDRESS}:{IKE_PORT}",
                "groups": [str(g["name"]) for g in self.net.gcks.groups],
                "psk": self.net.psk,  # an insider who knows the group PSK
                "interface": self._mgmt_link(),
                "rekey_groups": [f"{REKEY_GROUP}:{IKE_PORT}"],
                "retransmit_initial": 0.5,
                "retry_delay": 1,
            }
        }
        path = self.folder / f"{identity}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _unauthorized_identity(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """A real GM process with the group PSK and an identity the GCKS does not list."""
        identity = str(args.get("identity", INTRUDER))
        config = self._gm_config(identity)
        groups = len(self.net.gcks.groups)
        start = self.clock()
        proc = Proc(
            ["gm", "--config", str(config), "--log", str(self.folder / f"{identity}.jsonl")],
            self.folder,
            identity,
            ["ip", "netns", "exec", self.ns],
        )
        self._procs.append(proc)
        try:
            self._await(lambda: sum(self._gcks_rejections(start).values()), groups,
                        "the GCKS to refuse the intruder", 20)  # fmt: skip
        finally:
            proc.stop(5)
        registered = [e for e in self.net.gcks.events("member_registered")
                      if e["member"] == identity]  # fmt: skip
        return {"identity": identity, "sent": groups, "expected": groups,
                "rejected": self._gcks_rejections(start),
                "registered": len(registered)}  # fmt: skip

    def evicted_member(self, router: str, group: str, since: float) -> dict[str, Any]:
        """Restart the GM of ``router`` (evicted from ``group`` at ``since``) and wait for
        the GCKS to refuse its registration (AUTHORIZATION_FAILED)."""
        gm = self.net.gms[router]
        gm.stop()
        gm.start()

        def refused() -> dict[str, int]:
            out: dict[str, int] = {}
            for e in self.net.gcks.events("registration_rejected"):
                if e["t"] >= since and e["member"] == gm.identity and e.get("group") == group:
                    key = f"gcks.registration_rejected.{e['reason']}"
                    out[key] = out.get(key, 0) + 1
            return out

        self._await(lambda: sum(refused().values()), 1, f"the GCKS to refuse {router}", 30)
        back = [
            e
            for e in self.net.gcks.events("member_registered")
            if e["t"] >= since and e["member"] == gm.identity and e["group"] == group
        ]
        return {"attack": "evicted-member", "router": router, "group": group, "sent": 1,
                "expected": 1, "rejected": refused(), "registered": len(back)}  # fmt: skip


# -- helpers run inside the attacker namespace ----------------------------------------------


def _send_main(args: argparse.Namespace) -> int:
    """Send every hex IP packet of ``--packets`` on ``--iface`` over a raw socket."""
    packets = [bytes.fromhex(x) for x in Path(args.packets).read_text().split()]
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.iface.encode())
    ifindex = socket.if_nametoindex(args.iface)
    mreqn = socket.inet_aton("0.0.0.0") * 2 + struct.pack("@i", ifindex)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
    gap = 1.0 / args.rate if args.rate > 0 else 0.0
    start, errors = time.monotonic(), 0
    for i, packet in enumerate(packets):
        if gap:
            delay = start + i * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing a flood, not waiting for state
        try:
            sock.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
        except OSError:
            errors += 1
    print(json.dumps({"sent": len(packets) - errors, "errors": errors}))
    return 0


def _listen_main(args: argparse.Namespace) -> int:
    """Append each GSA_REKEY heard on ``--iface`` to ``--out`` (JSON lines) until stopped."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.group, args.port))
    mreqn = socket.inet_aton(args.group) + socket.inet_aton("0.0.0.0")
    sock.setsockopt(
        socket.IPPROTO_IP,
        socket.IP_ADD_MEMBERSHIP,
        mreqn + struct.pack("@i", socket.if_nametoindex(args.iface)),
    )
    parent = os.getppid()
    end = time.monotonic() + args.lifetime
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock.settimeout(0.5)
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(json.dumps({"ready": True}) + "\n")
        out.flush()
        while time.monotonic() < end and os.getppid() == parent:
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            if len(data) >= 28 and data[18] == 41:
                out.write(json.dumps({"t": time.time(), "src": addr[0], "hex": data.hex()}) + "\n")
                out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.attacks send|listen``: the helpers the attacker runs in its
    namespace (the testbed starts them; they are not meant to be run by hand)."""
    parser = argparse.ArgumentParser(prog="testbed.attacks", description=main.__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    send = sub.add_parser("send", help="send hex IP packets over a raw socket")
    send.add_argument("--iface", required=True)
    send.add_argument("--packets", required=True, help="file of hex IP packets")
    send.add_argument("--rate", type=float, default=0.0, help="packets/s (0: at once)")
    listen = sub.add_parser("listen", help="capture GSA_REKEYs on one interface")
    listen.add_argument("--iface", required=True)
    listen.add_argument("--out", required=True)
    listen.add_argument("--group", default=REKEY_GROUP)
    listen.add_argument("--port", type=int, default=IKE_PORT)
    listen.add_argument("--lifetime", type=float, default=HELPER_LIFETIME)
    args = parser.parse_args(argv)
    return _send_main(args) if args.cmd == "send" else _listen_main(args)


if __name__ == "__main__":
    sys.exit(main())
