"""The group member (GM) as a sans-IO state machine (RFC 9838 §2.3, §2.4).

One :class:`GroupMember` registers for each configured group with its own
registration IKE SA (IKE_SA_INIT + GSA_AUTH), then follows the group's
GSA_REKEY messages. What it learns becomes key table rows
(:mod:`mrkm.keytable`) with absolute send and accept times, which the router
sinks install.

Per group the GM is in one of these states:

* ``GM_IDLE``: nothing yet, or waiting for ``retry_at`` after a failure;
* ``GM_EXPECT_SA_INIT_RESPONSE`` / ``GM_EXPECT_AUTH_RESPONSE``: registering,
  retransmitting with exponential back-off and jitter;
* ``GM_MEMBER``: holding the Rekey SA and keys, accepting rekeys.

Repair (RFC 9838 §2.4.1.4, §4.4.2.2.3, §2.4.3): the GM re-registers, after a
random back-off, when its newest key nears expiry with no successor, when
its Rekey SA nears expiry, when told D(GIKE_UPDATE, SPI 0), when routing
traffic shows a promised next SPI it lacks, and when a rekey it cannot
decrypt arrives for its group's SPI.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from mrkm.config import GmConfig
from mrkm.crypto.signatures import load_public_key_der
from mrkm.errors import AuthenticationFailed, MrkmError
from mrkm.keytable import ALGORITHM_NAMES, PROTOCOL_NAMES, KeyRow, KeyTable
from mrkm.protocol import events as ev
from mrkm.protocol.credentials import LocalCredentials, PeerTrust
from mrkm.protocol.errors import PeerReportedError
from mrkm.protocol.group import ReceivedGroup, RoutingKey, read_group
from mrkm.protocol.ikesa import IkeInitiator, SaState
from mrkm.protocol.keytree import KeyPath, NotOnPath
from mrkm.protocol.rekey import RekeySa, open_rekey
from mrkm.wire import DeletePayload, GsaPayload, IdgPayload, KdPayload, NotifyPayload, find
from mrkm.wire.registry import ExchangeType, IdType, KwaId, NotifyType, ProtocolId

__all__ = ["GmState", "GroupMember"]

Rng = Callable[[int], bytes]
Addr = tuple[str, int]
# Notifies after which retrying soon is pointless: back off much longer.
_SLOW_RETRY = {
    NotifyType.AUTHENTICATION_FAILED,
    NotifyType.AUTHORIZATION_FAILED,
    NotifyType.INVALID_GROUP_ID,
    NotifyType.NO_PROPOSAL_CHOSEN,
}
SLOW_RETRY_FACTOR = 12.0


class GmState(enum.Enum):
    """Where one group's membership stands."""

    GM_IDLE = "idle"
    GM_EXPECT_SA_INIT_RESPONSE = "expect-sa-init-response"
    GM_EXPECT_AUTH_RESPONSE = "expect-auth-response"
    GM_MEMBER = "member"
    GM_EXPECT_LEAVE_RESPONSE = "expect-leave-response"
    GM_LEFT = "left"


_REGISTERING = (
    GmState.GM_EXPECT_SA_INIT_RESPONSE,
    GmState.GM_EXPECT_AUTH_RESPONSE,
    GmState.GM_EXPECT_LEAVE_RESPONSE,
)


@dataclass
class _Membership:
    """Everything the GM knows of one group."""

    name: str
    state: GmState = GmState.GM_IDLE
    attempt: int = 0
    initiator: IkeInitiator | None = None
    started: float = 0.0
    last_request: bytes = b""
    retransmit_at: float | None = None
    retransmit_interval: float = 0.0
    retry_at: float | None = None
    rekey_sa: RekeySa | None = None
    rekey_expires: float = 0.0
    auth_key: bytes | None = None
    signature_alg: bytes | None = None
    last_message_id: int = -1
    last_heard: float = 0.0  # last authenticated registration, rekey or heartbeat
    atd: float = 0.0
    dtd: float = 0.0
    newest_expiry: float = 0.0
    next_spis: set[bytes] = field(default_factory=set)
    last_rekey: bytes = b""  # octets of the last accepted GSA_REKEY
    key_path: KeyPath | None = None  # our key-tree path (RFC 9838 §3.3)
    leaving: bool = False
    rekey_destination: tuple[str, int] | None = None  # from the Rekey SA policy's TS


class GroupMember:
    """A router's group member for every group in its configuration."""

    def __init__(
        self, config: GmConfig, local: LocalCredentials, trust: PeerTrust, rng: Rng, now: float
    ) -> None:
        self.config, self.local, self.trust, self._rng = config, local, trust, rng
        self.key_table = KeyTable()
        self._groups = {name: _Membership(name, retry_at=now) for name in config.groups}
        self._outbox: list[tuple[bytes, Addr]] = []
        self._events: list[ev.Event] = []
        self.counters: dict[str, int] = {}

    # -- sans-IO interface ---------------------------------------------------------

    def receive(self, data: bytes, addr: Addr, now: float) -> None:
        """Process a datagram: a registration response or a GSA_REKEY."""
        if len(data) >= 28 and data[18] == ExchangeType.GSA_REKEY:
            self._on_rekey(data, now)
            return
        for group in self._groups.values():
            init = group.initiator
            if init is not None and data[:8] == init.spi_i and group.state in _REGISTERING:
                self._on_registration(group, data, now)
                return
        self._count("dropped.unknown_sa")

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        """Requests and retransmissions due now, to the GCKS."""
        out, self._outbox = self._outbox, []
        return out

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work."""
        times: list[float] = []
        for g in self._groups.values():
            times += [t for t in (g.retransmit_at, g.retry_at) if t is not None]
            if g.state is GmState.GM_MEMBER and g.retry_at is None:
                times.append(self._repair_at(g))
                if self.config.liveness > 0:
                    times.append(g.last_heard + self.config.liveness)
        expiry = [r.accept_end for r in self.key_table.rows.values()]
        return min(times + expiry) if times or expiry else None

    def handle_timer(self, now: float) -> None:
        """Start, retransmit, time out and repair registrations; expire keys."""
        for group in self._groups.values():
            if group.retry_at is not None and group.retry_at <= now:
                group.retry_at = None
                self._start(group, now, "start" if group.attempt == 0 else "retry")
            elif group.retransmit_at is not None and group.retransmit_at <= now:
                self._retransmit(group, now)
            elif group.state is GmState.GM_MEMBER and self._repair_at(group) <= now:
                self.schedule_repair(group.name, now, "keys near expiry without a rekey")
            elif (
                group.state is GmState.GM_MEMBER
                and self.config.liveness > 0
                and group.last_heard + self.config.liveness <= now
            ):
                silent = now - group.last_heard
                self.schedule_repair(group.name, now, f"no rekey or heartbeat for {silent:.1f} s")
        for _row in self.key_table.expire(now):
            self._count("keys_expired")

    def events(self) -> list[ev.Event]:
        """Drain the queued events."""
        out, self._events = self._events, []
        return out

    def state(self, group: str) -> GmState:
        """The state of one group's membership."""
        return self._groups[group].state

    def observed_spi(self, protocol: int, spi: bytes, now: float) -> None:
        """A sink saw routing traffic with ``spi``; a promised one we lack means repair."""
        for group in self._groups.values():
            held = any(
                r.key_id == int.from_bytes(spi, "big")
                and r.protocol == PROTOCOL_NAMES.get(protocol)
                for r in self.key_table.rows.values()
                if r.group == group.name
            )
            if spi in group.next_spis and not held:
                self.schedule_repair(group.name, now, "traffic on a promised SPI we lack")

    def rekey_destination(self, name: str) -> tuple[str, int] | None:
        """The multicast address and port the GCKS announced for ``name``'s rekeys."""
        return self._groups[name].rekey_destination

    def join(self, name: str, now: float) -> None:
        """Register (again) for ``name`` now, e.g. after leaving it."""
        group = self._groups[name]
        if group.state in (GmState.GM_LEFT, GmState.GM_IDLE):
            group.state, group.retry_at = GmState.GM_IDLE, now

    def leave(self, name: str, now: float) -> None:
        """Leave ``name``: register once more, then GSA_REGISTRATION with
        ``IDg, N(REGISTRATION_FAILED)`` (RFC 9838 §2.3.2); keys are dropped on the answer."""
        group = self._groups[name]
        if group.state is GmState.GM_LEFT:
            return
        group.leaving = True
        group.retry_at = None
        self._start(group, now, "leave")

    def schedule_repair(self, name: str, now: float, reason: str) -> None:
        """Re-register ``name`` after a random back-off (avoids stampedes, RFC 9838 §2.4.3)."""
        group = self._groups[name]
        if group.retry_at is not None or group.state in (*_REGISTERING, GmState.GM_LEFT):
            return
        at = now + self._jitter(self.config.retry_delay)
        group.retry_at = at
        self._events.append(ev.RepairScheduled(now, name, reason, at))

    # -- registration ---------------------------------------------------------------

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _jitter(self, base: float) -> float:
        """``base`` scaled by a random factor in [0.5, 1.5) from the injected rng."""
        return base * (0.5 + int.from_bytes(self._rng(2), "big") / 65536)

    def _start(self, group: _Membership, now: float, reason: str) -> None:
        group.attempt += 1
        group.initiator = IkeInitiator(
            self.local,
            self.trust,
            self._rng,
            auth_payloads=(IdgPayload(IdType.ID_KEY_ID, group.name.encode()),),
        )
        group.started = now
        self._send(group, group.initiator.initiate(), now, first=True)
        group.state = GmState.GM_EXPECT_SA_INIT_RESPONSE
        self._events.append(ev.RegistrationStarted(now, group.name, group.attempt, reason))

    def _send(self, group: _Membership, request: bytes, now: float, first: bool) -> None:
        group.last_request = request
        group.retransmit_interval = (
            self.config.retransmit_initial
            if first
            else min(group.retransmit_interval * 2, self.config.retransmit_max)
        )
        group.retransmit_at = now + self._jitter(group.retransmit_interval)
        self._outbox.append((request, self.config.gcks))

    def _retransmit(self, group: _Membership, now: float) -> None:
        if now - group.started >= self.config.registration_timeout:
            self._fail(group, now, "timeout: no answer from the GCKS", None)
            return
        self._count("retransmissions")
        self._send(group, group.last_request, now, first=False)

    def _fail(self, group: _Membership, now: float, reason: str, notify: int | None) -> None:
        delay = self.config.retry_delay * (SLOW_RETRY_FACTOR if notify in _SLOW_RETRY else 1)
        group.retry_at = now + self._jitter(delay)
        group.retransmit_at = None
        group.initiator = None
        if group.rekey_sa is None:
            group.state = GmState.GM_IDLE
        else:  # keep following rekeys with what we hold while we retry
            group.state = GmState.GM_MEMBER
        self._events.append(ev.RegistrationFailed(now, group.name, reason, notify, group.retry_at))

    def _on_registration(self, group: _Membership, data: bytes, now: float) -> None:
        assert group.initiator is not None
        init = group.initiator
        try:
            request = init.receive(data, now)
        except PeerReportedError as exc:
            self._fail(group, now, str(exc), exc.notify_type)
            return
        except AuthenticationFailed as exc:
            self._fail(
                group, now, f"GCKS authentication failed: {exc}", NotifyType.AUTHENTICATION_FAILED
            )
            return
        except MrkmError as exc:  # malformed or foreign: drop, keep waiting
            self._count("dropped.registration")
            self._events.append(ev.DatagramDropped(now, f"{type(exc).__name__}: {exc}"))
            return
        if group.state is GmState.GM_EXPECT_LEAVE_RESPONSE:
            self._left(group, now)
            return
        if request is not None:
            group.state = GmState.GM_EXPECT_AUTH_RESPONSE
            self._send(group, request, now, first=True)
            return
        if init.state is not SaState.ESTABLISHED or init.sa is None:
            return
        group.retransmit_at = None
        if group.leaving:
            leave = (
                IdgPayload(IdType.ID_KEY_ID, group.name.encode()),
                NotifyPayload(NotifyType.REGISTRATION_FAILED),
            )
            group.state = GmState.GM_EXPECT_LEAVE_RESPONSE
            self._send(group, init.request(leave), now, first=True)
            return
        payloads = init.response_payloads
        gsa, kd = find(payloads, GsaPayload), find(payloads, KdPayload)
        if gsa is None or kd is None:
            self._fail(group, now, "GSA_AUTH response without GSA and KD", None)
            return
        sa = init.sa
        try:
            received = read_group(gsa, kd, sa.gsk_w, sa.suite.kwa or KwaId.KW_5649_256)
        except MrkmError as exc:
            self._fail(group, now, f"unusable group policy: {exc}", None)
            return
        # A successful registration replaces everything held for the group (§2.3).
        self.key_table.drop_group(group.name)
        group.auth_key, group.signature_alg = received.auth_key, received.signature_alg_id
        if received.rekey_sa is not None and kd.member_bag is not None:
            group.key_path = KeyPath(received.rekey_sa.kwa)
            try:
                group.key_path.learn(
                    kd.member_bag.wrap_keys, sa.gsk_w, sa.suite.kwa or KwaId.KW_5649_256
                )
            except MrkmError as exc:
                self._fail(group, now, f"unusable key-tree path: {exc}", None)
                return
        # GSA_INITIAL_MESSAGE_ID: the first rekey Message ID to expect (RFC 9838 §2.3.3).
        same_sa = (
            group.rekey_sa is not None
            and received.rekey_sa is not None
            and group.rekey_sa.spi == received.rekey_sa.spi
        )
        floor = received.initial_message_id - 1
        group.last_message_id = max(group.last_message_id, floor) if same_sa else floor
        self._take(group, received, gsa, now, registration=True)
        group.state = GmState.GM_MEMBER
        group.last_heard = now
        group.initiator = None
        self._events.append(
            ev.RegistrationCompleted(
                now,
                group.name,
                tuple(int.from_bytes(t.spi, "big") for t in received.teks),
                received.initial_message_id,
                round(now - group.started, 6),
            )
        )

    def _left(self, group: _Membership, now: float) -> None:
        self.key_table.drop_group(group.name)
        group.state, group.initiator, group.retransmit_at = GmState.GM_LEFT, None, None
        group.rekey_sa, group.key_path, group.leaving = None, None, False
        self._events.append(ev.GroupLeft(now, group.name))

    def _take(
        self,
        group: _Membership,
        received: ReceivedGroup,
        gsa: GsaPayload,
        now: float,
        registration: bool,
    ) -> None:
        """Adopt a Rekey SA and install routing keys as key table rows."""
        if received.rekey_sa is not None and received.rekey_sa is not group.rekey_sa:
            group.rekey_sa = received.rekey_sa
            policy = gsa.rekey_policy
            group.rekey_expires = now + float(policy.lifetime or 0) if policy else 0.0
            if policy is not None:  # where GSA_REKEY will arrive (RFC 9838 §4.4.2)
                dst = policy.destination
                group.rekey_destination = (
                    str(ipaddress.ip_address(dst.start_address)),
                    dst.start_port,
                )
        group.atd = float(received.atd or 0)
        group.dtd = float(received.dtd or 0)
        group.next_spis = {s for p in gsa.data_policies for s in p.next_spis}
        changed: list[KeyRow] = []
        for i, tek in enumerate(received.teks):
            newest = i == len(received.teks) - 1
            # At registration older keys are already in use: send them at once.
            delay = group.atd if newest or not registration else 0.0
            row = self._row(group.name, tek, now, delay)
            changed += self.key_table.install(row, group.dtd)
            group.newest_expiry = row.accept_end
        self._events.append(ev.KeysInstalled(now, group.name, tuple(r.to_json() for r in changed)))

    def _row(self, name: str, tek: RoutingKey, now: float, delay: float) -> KeyRow:
        expires = now + tek.lifetime
        start = min(now + delay, expires)
        return KeyRow(
            name,
            PROTOCOL_NAMES.get(tek.protocol, str(tek.protocol)),
            int.from_bytes(tek.spi, "big"),
            ALGORITHM_NAMES.get(tek.integ, str(tek.integ)),
            tek.key,
            now,
            start,
            expires,
            expires,
        )

    def _repair_at(self, group: _Membership) -> float:
        times = [group.newest_expiry - self.config.repair_margin]
        if group.rekey_expires:
            times.append(group.rekey_expires - self.config.repair_margin)
        return min(times)

    # -- rekey ---------------------------------------------------------------------

    def _on_rekey(self, data: bytes, now: float) -> None:
        spi = data[:16]
        group = next(
            (g for g in self._groups.values() if g.rekey_sa is not None and g.rekey_sa.spi == spi),
            None,
        )
        if group is None or group.rekey_sa is None:
            self._count("dropped.rekey_unknown_sa")
            return
        if data == group.last_rekey:  # a bitwise-identical copy (RFC 9838 §2.4.1.3)
            self._count("rekey_duplicates")
            self._events.append(ev.RekeyDuplicate(now, group.name, group.last_message_id))
            return
        try:
            verifier = load_public_key_der(group.auth_key) if group.auth_key else None
            message_id, inner = open_rekey(group.rekey_sa, data, verifier, group.signature_alg)
        except MrkmError as exc:
            self._count("rekey_rejected")
            self._events.append(ev.RekeyRejected(now, group.name, f"{type(exc).__name__}: {exc}"))
            return
        group.last_heard = now  # authenticated: the GCKS reaches us
        if message_id <= group.last_message_id:  # RFC 9838 §8.2.4: copy or replay
            self._count("rekey_duplicates")
            self._events.append(ev.RekeyDuplicate(now, group.name, message_id))
            return
        group.last_message_id = message_id
        group.last_rekey = data
        for delete in (p for p in inner if isinstance(p, DeletePayload)):
            if delete.protocol == ProtocolId.GIKE_UPDATE and any(not any(s) for s in delete.spis):
                self._events.append(ev.RekeyAccepted(now, group.name, message_id, (), sa=spi.hex()))
                self.schedule_repair(group.name, now, "excluded: D(GIKE_UPDATE, SPI 0)")
                return
        gsa, kd = find(inner, GsaPayload), find(inner, KdPayload)
        if gsa is None and kd is None:  # a heartbeat: HDR, SK{AUTH}
            self._count("heartbeats")
            return
        if gsa is None or kd is None:
            self._events.append(ev.RekeyRejected(now, group.name, "GSA without KD or KD alone"))
            return
        sa = group.rekey_sa
        try:
            received = read_group(
                gsa, kd, sa.gsk_w, sa.kwa, previous_rekey=sa, key_path=group.key_path
            )
        except NotOnPath as exc:
            self._count("rekey_excluded")
            self._events.append(ev.RekeyRejected(now, group.name, f"excluded: {exc}"))
            self.schedule_repair(group.name, now, "excluded by a key-tree rekey")
            return
        except MrkmError as exc:
            self._count("rekey_rejected")
            self._events.append(ev.RekeyRejected(now, group.name, f"unwrap: {exc}"))
            self.schedule_repair(group.name, now, "cannot use a rekey for our group")
            return
        new_sa = received.rekey_sa is not None and received.rekey_sa.spi != sa.spi
        if new_sa:
            group.last_message_id = received.initial_message_id - 1
        self._take(group, received, gsa, now, registration=False)
        self._events.append(
            ev.RekeyAccepted(
                now,
                group.name,
                message_id,
                tuple(int.from_bytes(t.spi, "big") for t in received.teks),
                new_sa,
                sa=spi.hex(),
            )
        )
