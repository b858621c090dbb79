"""Loopback demo: one GCKS and N GMs register over G-IKEv2 and follow signed multicast rekeys.

This is what ``make run-scenario`` runs until the Mininet testbed lands. It
uses only real parts: UDP sockets on 127.0.0.1, the rekey multicast group
joined on the loopback interface, and the protocol library end to end:

1. every GM runs IKE_SA_INIT + GSA_AUTH (PSK, IDg) with the GCKS, which
   answers with the group's GSA and KD (keys wrapped under GSK_w);
2. the GCKS rolls the OSPFv2 key ``--rekeys`` times with an Ed25519-signed
   GSA_REKEY, sent as bitwise-identical copies to the multicast group;
3. every GM checks ICV, signature and Message ID, unwraps the new key and
   records it; copies are counted and dropped.

It writes ``events.jsonl`` and ``summary.json`` under ``results/`` and, with
``--keys-out``, the SK keys as tshark's ``ikev2_decryption_table`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from mrkm.crypto.signatures import algorithm_id_for, load_public_key_der, public_key_der
from mrkm.errors import MrkmError
from mrkm.protocol import (
    AuthRequest,
    Identity,
    IkeInitiator,
    IkeResponder,
    LocalCredentials,
    PeerTrust,
    SaState,
)
from mrkm.protocol.group import (
    GroupKeys,
    GroupPolicy,
    ReceivedGroup,
    RoutingKey,
    TekPolicy,
    make_gsa,
    make_kd,
    read_group,
)
from mrkm.protocol.ikesa import IkeSa
from mrkm.protocol.rekey import RekeySa, build_rekey, open_rekey
from mrkm.wire import GsaPayload, IdgPayload, KdPayload, find
from mrkm.wire.registry import IdType, ProtocolId

SCENARIOS = {"baseline": "registration of every GM, then periodic signed multicast rekeys"}
GROUP_ID = b"ospfv2-area0"
COPY_SCHEDULE = (0.0, 0.05, 0.15)  # seconds after the first copy


@dataclass
class EventLog:
    """JSON-lines events stamped with the monotonic clock of this run."""

    path: Path
    t0: float = field(default_factory=time.monotonic)

    def __call__(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"t": round(time.monotonic() - self.t0, 6), "event": event, **fields}
        with self.path.open("a") as out:
            out.write(json.dumps(record) + "\n")
        return record


def decryption_line(spi_i: bytes, spi_r: bytes, sk_ei: bytes, sk_er: bytes) -> str:
    """One tshark ``ikev2_decryption_table`` line for an AES-GCM-16-256 SA."""
    alg = '"AES-GCM-256 with 16 octet ICV [RFC5282]"'
    return f'{spi_i.hex()},{spi_r.hex()},{sk_ei.hex()},{sk_er.hex()},{alg},,,"NONE [RFC4306]"'


class Datagrams(asyncio.DatagramProtocol):
    """Queue every datagram a socket receives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))


class DemoGcks:
    """A GCKS for one group: answers registrations, rolls the OSPFv2 key."""

    def __init__(
        self, psk: bytes, policy: GroupPolicy, signer: ed25519.Ed25519PrivateKey, log: EventLog
    ) -> None:
        self.identity = Identity.fqdn("gcks.mrkm.local")
        self.psk, self.policy, self.signer, self.log = psk, policy, signer, log
        rekey_suite = policy.rekey_suite
        self.keys = GroupKeys(
            rekey_spi=os.urandom(16),
            rekey_keymat=os.urandom(RekeySa.keymat_len(rekey_suite, policy.kwa)),
            teks=(self._new_tek(1),),
        )
        self.rekey_sa = RekeySa.from_keymat(
            self.keys.rekey_spi, rekey_suite, policy.kwa, self.keys.rekey_keymat
        )
        self.sessions: dict[bytes, IkeResponder] = {}
        self.sas: list[IkeSa] = []

    def _new_tek(self, key_id: int) -> RoutingKey:
        tek = self.policy.teks[0]
        return RoutingKey(
            tek.protocol, bytes([key_id]), tek.integ, os.urandom(tek.key_len), tek.lifetime
        )

    def handle(self, data: bytes, now: float) -> bytes | None:
        """Answer one registration datagram (or drop it, logging why)."""
        spi_i = data[:8]
        responder = self.sessions.get(spi_i)
        if responder is None:
            trust = PeerTrust(group_psk=self.psk)
            responder = IkeResponder(
                LocalCredentials(self.identity, psk=self.psk), trust, os.urandom
            )
            self.sessions[spi_i] = responder
        try:
            out = responder.receive(data, now)
        except MrkmError as exc:
            self.log("datagram_dropped", reason=str(exc), kind=type(exc).__name__)
            return responder.failure_response or None
        if isinstance(out, bytes) or out is None:
            return out
        if not isinstance(out, AuthRequest):  # the demo's GMs never send GSA_REGISTRATION
            return None
        idg = find(out.payloads, IdgPayload)
        if idg is None or idg.data != GROUP_ID:
            self.log("registration_rejected", member=str(out.peer), reason="INVALID_GROUP_ID")
            return responder.reject(45)
        assert responder.sa is not None
        sa = responder.sa
        gsa = make_gsa(self.policy, self.keys, registration=True)
        kd = make_kd(
            self.policy,
            self.keys,
            sa.gsk_w,
            sa.suite.kwa or self.policy.kwa,
            public_key_der(self.signer.public_key()),
        )
        self.sas.append(sa)
        self.log("registration_completed", member=str(out.peer), key_id=self.keys.teks[0].spi[0])
        return responder.accept((gsa, kd))

    def next_rekey(self) -> tuple[int, int, bytes]:
        """Roll the OSPFv2 key; return (Message ID, new key id, the GSA_REKEY octets)."""
        key_id = self.keys.teks[0].spi[0] % 255 + 1  # 8-bit Key IDs, 0 never used
        message_id = self.keys.next_message_id
        self.keys = GroupKeys(
            self.keys.rekey_spi, self.keys.rekey_keymat, (self._new_tek(key_id),), message_id + 1
        )
        gsa = make_gsa(self.policy, self.keys, registration=False)
        kd = make_kd(self.policy, self.keys, self.rekey_sa.gsk_w, self.policy.kwa, None)
        raw = build_rekey(
            self.rekey_sa,
            message_id,
            (gsa, kd),
            self.signer,
            os.urandom(self.rekey_sa.suite.iv_len),
        )
        return message_id, key_id, raw


@dataclass
class DemoGm:
    """One group member: registers, then follows rekeys."""

    name: str
    psk: bytes
    initiator: IkeInitiator | None = None
    group: ReceivedGroup | None = None
    last_message_id: int = -1
    key_ids: list[int] = field(default_factory=list)
    copies_dropped: int = 0

    def start(self) -> bytes:
        me = Identity.fqdn(f"{self.name}.mrkm.local")
        self.initiator = IkeInitiator(
            LocalCredentials(me, psk=self.psk),
            PeerTrust(group_psk=self.psk),
            os.urandom,
            auth_payloads=(IdgPayload(IdType.ID_KEY_ID, GROUP_ID),),
        )
        return self.initiator.initiate()

    def on_registration(self, data: bytes, now: float) -> bytes | None:
        assert self.initiator is not None
        out = self.initiator.receive(data, now)
        if self.initiator.state is SaState.ESTABLISHED:
            sa = self.initiator.sa
            assert sa is not None
            payloads = self.initiator.response_payloads
            gsa, kd = find(payloads, GsaPayload), find(payloads, KdPayload)
            if gsa is None or kd is None:
                raise MrkmError("GSA_AUTH response without GSA and KD")
            self.group = read_group(gsa, kd, sa.gsk_w, sa.suite.kwa or 3)
            self.key_ids.append(self.group.teks[0].spi[0])
        return out

    def on_rekey(self, data: bytes) -> int | None:
        """Process one GSA_REKEY; return the new key id, None for a dropped copy."""
        assert self.group is not None and self.group.rekey_sa is not None
        if self.group.auth_key is None:
            raise MrkmError("no AUTH_KEY from registration")
        sa = self.group.rekey_sa
        message_id, inner = open_rekey(
            sa, data, load_public_key_der(self.group.auth_key), self.group.signature_alg_id
        )
        if message_id <= self.last_message_id:  # RFC 9838 §8.2.4: replay or copy
            self.copies_dropped += 1
            return None
        self.last_message_id = message_id
        gsa, kd = find(inner, GsaPayload), find(inner, KdPayload)
        if gsa is None or kd is None:
            raise MrkmError("GSA_REKEY without GSA and KD")
        received = read_group(gsa, kd, sa.gsk_w, sa.kwa, previous_rekey=sa)
        self.group = ReceivedGroup(
            sa,
            received.teks,
            received.atd,
            received.dtd,
            self.group.auth_key,
            self.group.signature_alg_id,
            received.initial_message_id,
        )
        key_id = received.teks[0].spi[0]
        self.key_ids.append(key_id)
        return key_id


def _multicast_socket(group: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((group, port))
    membership = socket.inet_aton(group) + socket.inet_aton("127.0.0.1")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    sock.setblocking(False)
    return sock


async def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    """Run the demo; return its summary."""
    out_dir = Path(args.out) / time.strftime("demo-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    log = EventLog(out_dir / "events.jsonl")
    loop = asyncio.get_running_loop()
    psk = os.urandom(32)
    signer = ed25519.Ed25519PrivateKey.generate()
    policy = GroupPolicy(
        "127.0.0.1",
        rekey_port=args.port + 1,
        signature_alg_id=algorithm_id_for(signer),
        teks=(TekPolicy(ProtocolId.OSPFV2),),
    )
    gcks = DemoGcks(psk, policy, signer, log)
    gcks_t, gcks_p = await loop.create_datagram_endpoint(
        Datagrams, local_addr=("127.0.0.1", args.port)
    )
    gms = [DemoGm(f"gm{i + 1}", psk) for i in range(args.members)]
    transports = []
    try:
        gm_ends = []
        for _gm in gms:
            t, p = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
            mt, mp = await loop.create_datagram_endpoint(
                Datagrams, sock=_multicast_socket(policy.rekey_address, policy.rekey_port)
            )
            transports += [t, mt]
            gm_ends.append((t, p, mp))

        async def serve() -> None:
            while True:
                data, addr = await gcks_p.queue.get()
                reply = gcks.handle(data, time.time())
                if reply:
                    gcks_t.sendto(reply, addr)

        server = asyncio.create_task(serve())
        t_start = time.monotonic()
        log("registration_phase_started", members=len(gms))

        async def register(gm: DemoGm, t: asyncio.DatagramTransport, p: Datagrams) -> None:
            request: bytes | None = gm.start()
            log("registration_started", member=gm.name)
            while request is not None:
                t.sendto(request, ("127.0.0.1", args.port))
                data, _ = await asyncio.wait_for(p.queue.get(), args.timeout)
                request = gm.on_registration(data, time.time())
            log(
                "registration_completed_gm",
                member=gm.name,
                key_id=gm.key_ids[-1],
                seconds=round(time.monotonic() - t_start, 6),
            )

        await asyncio.gather(
            *(register(gm, t, p) for gm, (t, p, _) in zip(gms, gm_ends, strict=True))
        )
        registration_s = time.monotonic() - t_start
        print(f"registered {len(gms)} GMs in {registration_s * 1000:.1f} ms")

        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        convergence = []
        try:
            for n in range(args.rekeys):
                await asyncio.sleep(args.interval)
                message_id, key_id, raw = gcks.next_rekey()
                t_send = time.monotonic()
                log(
                    "rekey_sent",
                    message_id=message_id,
                    key_id=key_id,
                    octets=len(raw),
                    copies=len(COPY_SCHEDULE),
                )

                async def copies(raw: bytes = raw, t_send: float = t_send) -> None:
                    for i, at in enumerate(COPY_SCHEDULE):
                        delay = t_send + at - time.monotonic()
                        if i and delay > 0:
                            await asyncio.sleep(delay)
                        sender.sendto(raw, (policy.rekey_address, policy.rekey_port))

                async def accept(
                    gm: DemoGm, mp: Datagrams, key_id: int = key_id, t_send: float = t_send
                ) -> float:
                    while True:
                        data, _ = await asyncio.wait_for(mp.queue.get(), args.timeout)
                        got = gm.on_rekey(data)
                        if got is not None:
                            dt = time.monotonic() - t_send
                            log(
                                "rekey_accepted",
                                member=gm.name,
                                message_id=gm.last_message_id,
                                key_id=got,
                                seconds=round(dt, 6),
                            )
                            if got != key_id:
                                raise MrkmError(f"{gm.name} got key {got}, expected {key_id}")
                            return dt

                sending = asyncio.create_task(copies())
                times = await asyncio.gather(
                    *(accept(gm, mp) for gm, (_, _, mp) in zip(gms, gm_ends, strict=True))
                )
                await sending
                convergence.append(max(times))
                print(
                    f"rekey {n + 1}/{args.rekeys}: key id {key_id} reached all {len(gms)} GMs"
                    f" in {max(times) * 1000:.2f} ms"
                )
        finally:
            sender.close()
        await asyncio.sleep(COPY_SCHEDULE[-1] + 0.05)
        for gm, (_, _, mp) in zip(gms, gm_ends, strict=True):
            while not mp.queue.empty():
                data, _ = mp.queue.get_nowait()
                gm.on_rekey(data)
        server.cancel()
    finally:
        gcks_t.close()
        for t in transports:
            t.close()
    if args.keys_out:
        lines = [
            decryption_line(sa.spi_i, sa.spi_r, sa.keys.sk_ei, sa.keys.sk_er) for sa in gcks.sas
        ]
        rk = gcks.rekey_sa
        lines.append(decryption_line(rk.spi[:8], rk.spi[8:], rk.gsk_e, rk.gsk_e))
        Path(args.keys_out).write_text("\n".join(lines) + "\n")
    summary = {
        "scenario": args.scenario,
        "members": len(gms),
        "registration_seconds": round(registration_s, 6),
        "rekeys": args.rekeys,
        "key_convergence_seconds": [round(c, 6) for c in convergence],
        "copies_dropped_per_gm": {gm.name: gm.copies_dropped for gm in gms},
        "key_ids_per_gm": {gm.name: gm.key_ids for gm in gms},
        "all_gms_current": all(gm.key_ids[-1] == gcks.keys.teks[0].spi[0] for gm in gms),
        "events": str(log.path),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m mrkm.demo --help``."""
    parser = argparse.ArgumentParser(
        prog="mrkm-demo",
        description="Loopback G-IKEv2 demo: a GCKS and N GMs register (IKE_SA_INIT + GSA_AUTH)"
        " and follow Ed25519-signed multicast GSA_REKEYs on 127.0.0.1. This is what"
        " `make run-scenario` runs until the Mininet testbed exists.",
    )
    parser.add_argument("--scenario", default="baseline", help="scenario name (only 'baseline')")
    parser.add_argument("--topo", default=None, help="topology (needs the Mininet testbed)")
    parser.add_argument("--members", type=int, default=5, help="number of GMs (default 5)")
    parser.add_argument("--rekeys", type=int, default=3, help="rekeys to send (default 3)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between rekeys")
    parser.add_argument(
        "--port",
        type=int,
        default=18848,
        help="GCKS UDP port on 127.0.0.1; rekeys use port+1 (default 18848)",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait per reply")
    parser.add_argument("--out", default="results", help="folder for the run bundle")
    parser.add_argument("--keys-out", help="write tshark ikev2_decryption_table lines here")
    args = parser.parse_args(argv)
    if args.scenario not in SCENARIOS:
        known = ", ".join(f"{k} ({v})" for k, v in SCENARIOS.items())
        parser.error(f"unknown scenario {args.scenario!r}; known: {known}")
    if args.topo:
        parser.error("--topo needs the Mininet testbed, which is not built yet; omit it")
    if not 1 <= args.members <= 500 or args.rekeys < 0 or args.interval < 0:
        parser.error("--members must be 1..500, --rekeys and --interval non-negative")
    print(f"MRKM loopback demo, scenario '{args.scenario}': {SCENARIOS[args.scenario]}")
    print(
        f"  {args.members} GMs, {args.rekeys} rekeys, GCKS on 127.0.0.1:{args.port},"
        f" rekeys to 239.192.0.1:{args.port + 1} on lo"
    )
    try:
        summary = asyncio.run(run_demo(args))
    except (TimeoutError, MrkmError, OSError) as exc:
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    conv = summary["key_convergence_seconds"]
    print(
        f"summary: {summary['members']} GMs registered in "
        f"{summary['registration_seconds'] * 1000:.1f} ms; "
        f"{summary['rekeys']} rekeys, worst key convergence "
        f"{max(conv) * 1000 if conv else 0:.2f} ms; every GM holds the current key: "
        f"{summary['all_gms_current']}"
    )
    print(f"events: {summary['events']}")
    return 0 if summary["all_gms_current"] else 1


if __name__ == "__main__":
    sys.exit(main())
