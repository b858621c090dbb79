"""The key server (GCKS) as a sans-IO state machine (RFC 9838 §2.3, §2.4).

:class:`KeyServer` answers registrations (IKE_SA_INIT + GSA_AUTH), keeps each
group's Rekey SA and routing keys, and rolls the keys with signed GSA_REKEY
messages to the group's multicast address, each sent as bitwise-identical
copies on the group's schedule (§2.4.1.3). Datagrams, time and randomness
go in and out through the methods below; nothing here touches a socket or
a clock (STYLE.md item 1):

* ``receive(data, addr, now)`` takes a datagram;
* ``datagrams_to_send(now)`` returns ``(octets, (address, port))`` pairs;
* ``next_timer()`` / ``handle_timer(now)`` drive rekeys, copies and cleanup;
* ``events()`` drains what happened (:mod:`mrkm.protocol.events`).

Group state survives a crash through :meth:`snapshot` / :meth:`restore`: the
runtime persists it after every change, so a restarted GCKS never reuses a
Message ID or a live key id, and members need not re-register.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from cryptography import x509

from mrkm.config import GcksConfig, GroupConfig
from mrkm.crypto.signatures import SigningKey, algorithm_id_for, public_key_der
from mrkm.errors import AuthenticationFailed, BadValue, DecodeError, MrkmError
from mrkm.protocol import events as ev
from mrkm.protocol.credentials import Identity, LocalCredentials, PeerTrust
from mrkm.protocol.group import GroupKeys, GroupPolicy, RoutingKey, TekPolicy, make_gsa, make_kd
from mrkm.protocol.ikesa import AuthRequest, FollowUpRequest, IkeResponder, SaState
from mrkm.protocol.keytree import KeyTree
from mrkm.protocol.rekey import RekeySa, build_rekey
from mrkm.wire import (
    DeletePayload,
    GsaPayload,
    IdgPayload,
    IkeHeader,
    KdPayload,
    NoncePayload,
    NotifyPayload,
    encode_message,
    find,
)
from mrkm.wire.message import FLAG_RESPONSE, decode_message
from mrkm.wire.registry import ExchangeType, IntegId, NotifyType, ProtocolId

__all__ = ["KeyServer"]

Rng = Callable[[int], bytes]
Addr = tuple[str, int]

_INTEG = {
    "md5": IntegId.ROUTING_KEYED_MD5,
    "hmac-sha-1": IntegId.ROUTING_HMAC_SHA1,
    "hmac-sha-256": IntegId.ROUTING_HMAC_SHA256,
    "hmac-sha-384": IntegId.ROUTING_HMAC_SHA384,
    "hmac-sha-512": IntegId.ROUTING_HMAC_SHA512,
}
# PIM is protected with AH (RFC 5796): the same names mean the truncated IPsec HMACs.
_AH_INTEG = {
    "hmac-sha-1": IntegId.AUTH_HMAC_SHA1_96,
    "hmac-sha-256": IntegId.AUTH_HMAC_SHA2_256_128,
}
_PROTOCOL = {
    "ospfv2": ProtocolId.OSPFV2,
    "ospfv3": ProtocolId.OSPFV3_TRAILER,
    "pim": ProtocolId.AH,
}
# RFC 4302 §2.4: SPIs 1-255 are reserved by IANA and 0 is local; AH SPIs are 32 bits.
AH_SPI_MIN = 256
_SPI_DRAWS = 64  # random draws before giving up on finding a free AH SPI
# RFC 2328 App. D: OSPFv2 Key IDs are 8 bits. RFC 7166 SA IDs are 16 bits, but
# BIRD 2.0.12 takes password ids 0-255 only, so OSPFv3 ids wrap at 255 as well.
_KEY_ID_SPACE = {"ospfv2": 255, "ospfv3": 255}
HALF_OPEN_LIFETIME = 30.0  # s an unfinished registration IKE SA is kept
IKE_SA_LINGER = 10.0  # s an established registration SA is kept for retransmits
# GSA_REGISTRATION notifies that mean "remove me from this group" (RFC 9838 §2.3.2).
_LEAVE_NOTIFIES = (NotifyType.REGISTRATION_FAILED, NotifyType.NO_PROPOSAL_CHOSEN)
FOLLOW_UP_DELAY = 0.5  # s after an eviction rekey's last copy before the new TEK is sent


def _integ(cfg: GroupConfig) -> int:
    """The INTEG transform ID of a group's routing key."""
    return _AH_INTEG[cfg.algorithm] if cfg.protocol == "pim" else _INTEG[cfg.algorithm]


@dataclass
class _Tek:
    """One routing key of a group and when it expires (absolute seconds)."""

    key: RoutingKey
    created: float
    expires: float


@dataclass
class _Group:
    """A group's live state on the GCKS."""

    config: GroupConfig
    rekey_spi: bytes
    rekey_keymat: bytes
    next_message_id: int
    teks: list[_Tek]
    tree: KeyTree
    members: dict[str, float] = field(default_factory=dict)  # identity -> registered at
    evicted: set[str] = field(default_factory=set)
    follow_up_at: float | None = None  # the TEK rekey that follows an eviction
    reserved_id: int | None = None  # key id promised by GSA_NEXT_SPI
    last_sent: float = 0.0  # when anything was last multicast to the group

    def live_teks(self, now: float) -> list[_Tek]:
        return [t for t in self.teks if t.expires > now]


@dataclass
class _Session:
    responder: IkeResponder
    addr: Addr
    created: float
    expires: float


class KeyServer:
    """Registrations and rekeys for every configured group."""

    def __init__(
        self,
        config: GcksConfig,
        signer: SigningKey,
        rng: Rng,
        now: float,
        certificate: x509.Certificate | None = None,
        ca: x509.Certificate | None = None,
    ) -> None:
        """Start with fresh keys for every group (use :meth:`restore` to continue).

        ``signer`` signs GSA_REKEYs; with ``certificate`` it also authenticates
        the GCKS in GSA_AUTH (RFC 7427), and ``ca`` lets members authenticate
        with certificates; otherwise both sides use the groups' PSKs.
        """
        self.config, self.signer, self._rng = config, signer, rng
        self._certificate, self._ca = certificate, ca
        #: Bumped whenever persistent state changes; the runtime saves on change.
        self.state_version = 0
        self.identity = Identity.fqdn(config.identity)
        self._alg_id = algorithm_id_for(signer)
        self._auth_key = public_key_der(signer.public_key())
        self._psk = self._psk_table()
        self._allowed = {g.name: {m.id for m in g.members} for g in config.groups}
        self._known = {Identity.fqdn(m) for ids in self._allowed.values() for m in ids}
        self._cookie_secret = rng(32)
        self._groups: dict[str, _Group] = {g.name: self._new_group(g, now) for g in config.groups}
        self._sessions: dict[bytes, _Session] = {}
        self._half_open_spis: set[bytes] = set()  # sessions still expecting GSA_AUTH
        self._outbox: list[tuple[bytes, Addr]] = []
        self._copies: list[tuple[float, bytes, Addr]] = []
        self._events: list[ev.Event] = []
        self.counters: dict[str, int] = {}

    # -- configuration and state ---------------------------------------------------

    def _psk_table(self) -> dict[Identity, bytes]:
        table: dict[Identity, bytes] = {}
        for group in self.config.groups:
            for member in group.members:
                psk = member.psk or group.psk
                if psk is not None:
                    table.setdefault(Identity.fqdn(member.id), psk)
        return table

    def _authorized(self, peer: Identity) -> bool:
        return peer in self._psk or peer in self._known

    def _new_group(self, config: GroupConfig, now: float) -> _Group:
        tree = KeyTree(max(2, len(config.members)), GroupPolicy("0.0.0.0").kwa, self._rng)
        group = _Group(config, self._rng(16), self._rng(self._keymat_len()), 0, [], tree)
        group.teks.append(self._new_tek(group, now))
        group.last_sent = now
        return group

    def _keymat_len(self) -> int:
        policy = GroupPolicy("0.0.0.0")
        return RekeySa.keymat_len(policy.rekey_suite, policy.kwa)

    def _policy(self, group: _Group, atd: int | None = None) -> GroupPolicy:
        cfg = group.config
        return GroupPolicy(
            gcks_address=self.config.listen[0],
            rekey_address=cfg.rekey_address,
            rekey_port=cfg.rekey_port,
            signature_alg_id=self._alg_id,
            teks=(TekPolicy(_PROTOCOL[cfg.protocol], _integ(cfg), max(1, int(cfg.lifetime))),),
            atd=cfg.atd if atd is None else atd,
            dtd=cfg.dtd,
        )

    def _rekey_sa(self, group: _Group) -> RekeySa:
        policy = self._policy(group)
        return RekeySa.from_keymat(
            group.rekey_spi, policy.rekey_suite, policy.kwa, group.rekey_keymat
        )

    def _new_tek(self, group: _Group, now: float) -> _Tek:
        """A fresh routing key whose id no live key of the group uses (wraps at 8/16 bits).

        It takes the id promised by its predecessor's GSA_NEXT_SPI when that
        id is free, and reserves the one after it for its own successor.
        """
        cfg = group.config
        in_use = {int.from_bytes(t.key.spi, "big") for t in group.live_teks(now)}
        last = int.from_bytes(group.teks[-1].key.spi, "big") if group.teks else 0
        key_id = group.reserved_id if group.reserved_id not in (None, *in_use) else None
        if cfg.protocol == "pim":
            key_id = key_id or self._random_spi(in_use, cfg.name)
            group.reserved_id = self._random_spi(in_use | {key_id}, cfg.name)
        else:
            key_id = key_id or self._free_id(cfg.protocol, last, in_use, cfg.name)
            group.reserved_id = self._free_id(cfg.protocol, key_id, in_use | {key_id}, cfg.name)
        size = {"ospfv2": 1, "ospfv3": 2, "pim": 4}[cfg.protocol]
        key = RoutingKey(
            _PROTOCOL[cfg.protocol],
            key_id.to_bytes(size, "big"),
            _integ(cfg),
            self._rng(cfg.key_len),
            int(cfg.lifetime),
            group.reserved_id.to_bytes(size, "big"),
        )
        return _Tek(key, now, now + cfg.lifetime)

    def _random_spi(self, in_use: set[int], name: str) -> int:
        """A random AH SPI (RFC 4302 §2.4: 32 bits, at least 256) no live key uses.

        Drawn from the injected rng, so that tests are reproducible and the
        next SPI cannot be guessed from the current one.
        """
        for _ in range(_SPI_DRAWS):
            spi = int.from_bytes(self._rng(4), "big")
            if spi >= AH_SPI_MIN and spi not in in_use:
                return spi
        raise MrkmError(f"group {name}: no free AH SPI in {_SPI_DRAWS} random draws")

    @staticmethod
    def _free_id(protocol: str, after: int, in_use: set[int], name: str) -> int:
        space = _KEY_ID_SPACE[protocol]
        for step in range(1, space + 1):
            key_id = (after + step - 1) % space + 1  # 1..space, never 0
            if key_id not in in_use:
                return key_id
        raise MrkmError(f"group {name}: every key id is in use")

    def _keys(self, group: _Group, teks: list[_Tek], now: float) -> GroupKeys:
        # GSA_KEY_LIFETIME carries what is left of each key's life (RFC 9838 §4.4.2.2.1).
        remaining = tuple(
            RoutingKey(
                t.key.protocol,
                t.key.spi,
                t.key.integ,
                t.key.key,
                max(1, round(t.expires - now)),
                t.key.next_spi,
            )
            for t in teks
        )
        return GroupKeys(group.rekey_spi, group.rekey_keymat, remaining, group.next_message_id)

    # -- sans-IO interface ---------------------------------------------------------

    def receive(self, data: bytes, addr: Addr, now: float) -> None:
        """Process one datagram from ``addr``; never raises for bad input."""
        try:
            self._receive(data, addr, now)
        except MrkmError as exc:
            self._drop(now, addr, f"{type(exc).__name__}: {exc}")

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        """Datagrams due now: responses and rekey copies."""
        due = [(d, a) for t, d, a in self._copies if t <= now]
        if due:  # pending copies are persistent state: a restart still sends the rest
            self._copies = [c for c in self._copies if c[0] > now]
            self.state_version += 1
        out, self._outbox = self._outbox + due, []
        return out

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work."""
        times = [self._next_rekey_at(g) for g in self._groups.values()]
        times += [t for g in self._groups.values() if (t := self._next_heartbeat_at(g))]
        times += [t for t, _, _ in self._copies]
        times += [s.expires for s in self._sessions.values()]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """Roll keys that are due, send heartbeats, expire stale registration SAs."""
        for group in self._groups.values():
            if self._next_rekey_at(group) <= now:
                reason = "after-eviction" if group.follow_up_at is not None else "periodic"
                self.rekey(group.config.name, now, reason=reason)
            heartbeat = self._next_heartbeat_at(group)
            if heartbeat is not None and heartbeat <= now:
                self._heartbeat(group, now)
        for spi, session in list(self._sessions.items()):
            if session.expires <= now:
                del self._sessions[spi]
                self._half_open_spis.discard(spi)

    def events(self) -> list[ev.Event]:
        """Drain the queued events."""
        out, self._events = self._events, []
        return out

    # -- registration ---------------------------------------------------------------

    def _drop(self, now: float, addr: Addr, reason: str) -> None:
        key = reason.split(":")[0]
        self.counters[f"dropped.{key}"] = self.counters.get(f"dropped.{key}", 0) + 1
        self._events.append(ev.DatagramDropped(now, reason, f"{addr[0]}:{addr[1]}"))

    def _receive(self, data: bytes, addr: Addr, now: float) -> None:
        if len(data) < 28:
            raise DecodeError(f"{len(data)} octets cannot hold an IKE header")
        spi_i, spi_r, exchange = data[:8], data[8:16], data[18]
        session = self._sessions.get(spi_i)
        opened = False
        if exchange == ExchangeType.IKE_SA_INIT and spi_r == bytes(8):
            if session is None:
                if not self._admit(data, addr, now):
                    return
                session = self._open_session(addr, now)
                self._sessions[spi_i] = session
                self._half_open_spis.add(spi_i)
                opened = True
        elif session is None or (
            session.responder.sa is not None and session.responder.sa.spi_r != spi_r
        ):
            raise DecodeError("no registration IKE SA with these SPIs")
        if session.addr != addr:
            raise DecodeError("datagram for an IKE SA from another address")
        try:
            out = session.responder.receive(data, now)
            if session.responder.state is not SaState.RESP_EXPECT_AUTH_REQUEST:
                self._half_open_spis.discard(spi_i)
        except AuthenticationFailed:
            self._half_open_spis.discard(spi_i)
            # RFC 7296 §2.21.2: tell the member at once, then forget the SA.
            self._outbox.append((session.responder.failure_response, addr))
            raise
        except MrkmError:
            if opened:  # an IKE_SA_INIT that does not decode holds no half-open slot
                del self._sessions[spi_i]
                self._half_open_spis.discard(spi_i)
            raise
        if isinstance(out, AuthRequest):
            out = self._decide(session, out, now)
        elif isinstance(out, FollowUpRequest):
            out = self._follow_up(session, out, now)
        if out is not None:
            self._outbox.append((out, addr))

    def _open_session(self, addr: Addr, now: float) -> _Session:
        trust = PeerTrust(psks=self._psk, ca=self._ca, authorize=self._authorized)
        if self._certificate is not None:
            local = LocalCredentials(
                self.identity, signing_key=self.signer, certificate=self._certificate
            )
        else:
            local = LocalCredentials(self.identity, psk=self._first_psk())
        responder = IkeResponder(local, trust, self._rng)
        return _Session(responder, addr, now, now + HALF_OPEN_LIFETIME)

    def _first_psk(self) -> bytes:
        # The GCKS proves itself with the group PSK its members share.
        for group in self.config.groups:
            if group.psk is not None:
                return group.psk
        return next(iter(self._psk.values()))

    def _half_open(self) -> int:
        return len(self._half_open_spis)

    def _admit(self, data: bytes, addr: Addr, now: float) -> bool:
        """Bound half-open SAs; above the threshold demand a COOKIE (RFC 7296 §2.6)."""
        half_open = self._half_open()
        if half_open >= self.config.max_half_open:
            self._drop(now, addr, "overload: too many half-open IKE SAs")
            return False
        if half_open < self.config.cookie_threshold:
            return True
        message = decode_message(data)
        nonce = find(message.payloads, NoncePayload)
        if nonce is None:
            raise DecodeError("IKE_SA_INIT without a Nonce")
        expected = self._cookie(nonce.data, addr, data[:8])
        first = message.payloads[0] if message.payloads else None
        if (
            isinstance(first, NotifyPayload)
            and first.notify_type == NotifyType.COOKIE
            and hmac.compare_digest(first.data, expected)
        ):
            return True
        header = IkeHeader(data[:8], bytes(8), ExchangeType.IKE_SA_INIT, FLAG_RESPONSE, 0)
        self._outbox.append(
            (encode_message(header, (NotifyPayload(NotifyType.COOKIE, expected),)), addr)
        )
        self.counters["cookies_sent"] = self.counters.get("cookies_sent", 0) + 1
        return False

    def _cookie(self, ni: bytes, addr: Addr, spi_i: bytes) -> bytes:
        mac = hmac.new(self._cookie_secret, ni + addr[0].encode() + spi_i, sha256)
        return b"\x01" + mac.digest()[:16]

    def _decide(self, session: _Session, request: AuthRequest, now: float) -> bytes:
        responder = session.responder
        member = request.peer.data.decode("ascii", "replace")
        idg = find(request.payloads, IdgPayload)
        refusal = self._refusal(member, idg, now)
        if refusal is not None or request.exchange != ExchangeType.GSA_AUTH:
            return responder.reject(refusal or NotifyType.INVALID_GROUP_ID)
        assert idg is not None
        group = self._groups[idg.data.decode("ascii", "replace")]
        session.expires = now + IKE_SA_LINGER  # RFC 9838 §2.3.3: the GCKS closes it
        return responder.accept(self._grant(session, group, member, now))

    def _refusal(self, member: str, idg: IdgPayload | None, now: float) -> int | None:
        """The notify refusing ``member`` for the group ``idg`` names, or None."""
        group = self._groups.get(idg.data.decode("ascii", "replace")) if idg else None
        if group is None:
            self._events.append(
                ev.RegistrationRejected(
                    now, member, "INVALID_GROUP_ID", idg.data.hex() if idg else ""
                )
            )
            return NotifyType.INVALID_GROUP_ID
        if member in group.evicted or member not in self._allowed[group.config.name]:
            self._events.append(
                ev.RegistrationRejected(now, member, "AUTHORIZATION_FAILED", group.config.name)
            )
            return NotifyType.AUTHORIZATION_FAILED
        return None

    def _grant(
        self, session: _Session, group: _Group, member: str, now: float
    ) -> tuple[GsaPayload, KdPayload]:
        """GSA and KD for ``member``: policy, current keys, its key-tree path, AUTH_KEY."""
        sa = session.responder.sa
        assert sa is not None
        # A member that registers late must not wait a whole ATD before sending
        # with a key the others already send with: GWP_ATD in a registration is
        # what is left of the newest key's activation delay (RFC 9838 §4.4.3).
        newest = group.teks[-1]
        left = max(0, math.ceil(newest.created + group.config.atd - now))
        policy = self._policy(group, atd=left)
        keys = self._keys(group, group.live_teks(now), now)
        gsa = make_gsa(policy, keys, registration=True)
        kwa = sa.suite.kwa or policy.kwa
        path = tuple(group.tree.member_path(member, sa.gsk_w, kwa))
        kd = make_kd(policy, keys, sa.gsk_w, kwa, self._auth_key, wrap_keys=path)
        group.members[member] = now
        self.state_version += 1
        self._events.append(ev.MemberRegistered(now, group.config.name, member, len(group.members)))
        return gsa, kd

    def _follow_up(self, session: _Session, request: FollowUpRequest, now: float) -> bytes:
        """GSA_REGISTRATION: join a further group, or leave one (RFC 9838 §2.3.2)."""
        responder = session.responder
        member = request.peer.data.decode("ascii", "replace")
        idg = find(request.payloads, IdgPayload)
        leave = any(
            isinstance(p, NotifyPayload) and p.notify_type in _LEAVE_NOTIFIES
            for p in request.payloads
        )
        refusal = self._refusal(member, idg, now)
        session.expires = now + IKE_SA_LINGER
        if refusal is not None:
            return responder.answer((NotifyPayload(refusal),))
        assert idg is not None
        group = self._groups[idg.data.decode("ascii", "replace")]
        if leave:
            if member in group.tree.leaves:
                self._exclude(group, member, now, "leave")
            self._events.append(ev.MemberLeft(now, group.config.name, member))
            return responder.answer(())  # HDR, SK{} (RFC 9838 §2.3.2)
        return responder.answer(self._grant(session, group, member, now))

    # -- rekey ---------------------------------------------------------------------

    def _next_rekey_at(self, group: _Group) -> float:
        periodic = group.teks[-1].expires - group.config.rekey_margin
        return min(periodic, group.follow_up_at) if group.follow_up_at is not None else periodic

    def _next_heartbeat_at(self, group: _Group) -> float | None:
        """When the group's rekey channel next needs a heartbeat, if ever."""
        cfg = group.config
        times = [group.last_sent + cfg.heartbeat] if cfg.heartbeat else []
        if cfg.prime:
            primed = self._next_rekey_at(group) - cfg.prime
            if group.last_sent < primed:
                times.append(primed)
        return min(times) if times else None

    def _heartbeat(self, group: _Group, now: float) -> None:
        """One signed GSA_REKEY with no keys: ``HDR, SK{AUTH}`` (RFC 9838 §2.4.1).

        It keeps PIM's (S,G) state for the rekey group alive and primes it
        before a rekey, so that rekeys are not lost as the first packet of a
        new (S,G) (pim-local-and-tshark.md §6).
        """
        sa = self._rekey_sa(group)
        message_id = group.next_message_id
        group.next_message_id += 1
        raw = build_rekey(sa, message_id, (), self.signer, self._rng(sa.suite.iv_len))
        self._copies.append((now, raw, (group.config.rekey_address, group.config.rekey_port)))
        group.last_sent = now
        self.state_version += 1
        self._events.append(
            ev.RekeySent(
                now, group.config.name, message_id, (), len(raw), 1, "heartbeat", sa=sa.spi.hex()
            )
        )

    def rekey(self, name: str, now: float, reason: str = "manual") -> int:
        """Create the group's next routing key and multicast it; return the Message ID."""
        group = self._groups[name]
        group.follow_up_at = None
        tek = self._new_tek(group, now)
        group.teks = [*group.live_teks(now), tek]
        message_id = group.next_message_id
        group.next_message_id += 1
        self.state_version += 1
        policy = self._policy(group)
        sa = self._rekey_sa(group)
        keys = self._keys(group, [tek], now)
        gsa = make_gsa(policy, keys, registration=False)
        kd = make_kd(policy, keys, sa.gsk_w, sa.kwa, None)
        raw = build_rekey(sa, message_id, (gsa, kd), self.signer, self._rng(sa.suite.iv_len))
        dest = (group.config.rekey_address, group.config.rekey_port)
        self._copies += [(now + at, raw, dest) for at in group.config.copies]
        group.last_sent = now
        self._events.append(
            ev.RekeySent(
                now,
                name,
                message_id,
                (int.from_bytes(tek.key.spi, "big"),),
                len(raw),
                len(group.config.copies),
                reason,
                1,
                sa=sa.spi.hex(),
            )
        )
        return message_id

    def evict(self, name: str, member: str, now: float) -> int:
        """Exclude ``member`` for good; return the eviction rekey's Message ID.

        The member stays refused until the GCKS is reconfigured.
        """
        group = self._groups.get(name)
        if group is None:
            raise BadValue(f"no group named {name!r}")
        if member not in group.tree.leaves:
            raise BadValue(f"{member} is not a member of {name}")
        group.evicted.add(member)
        self._events.append(ev.MemberEvicted(now, name, member))
        return self._exclude(group, member, now, "eviction")

    def _exclude(self, group: _Group, member: str, now: float, reason: str) -> int:
        """Rekey so that ``member`` reads nothing later (forward access control).

        RFC 9838 §3.2.1: the rekey that changes membership carries only a new
        Rekey SA, its keymat wrapped down the key tree so that the departed
        member cannot unwrap it; the new routing key follows in a second
        rekey under the new Rekey SA, once the copies of the first are out.
        """
        wrap_keys = group.tree.evict(member)
        group.members.pop(member, None)
        old_sa = self._rekey_sa(group)
        new_spi, new_keymat = self._rng(16), self._rng(self._keymat_len())
        sa_keys = tuple(group.tree.wrap_root(new_keymat))
        keys = GroupKeys(new_spi, new_keymat, (), 0)
        policy = self._policy(group)
        gsa = make_gsa(policy, keys, registration=False)
        kd = make_kd(policy, keys, old_sa.gsk_w, old_sa.kwa, None, tuple(wrap_keys), sa_keys)
        message_id = group.next_message_id
        raw = build_rekey(
            old_sa, message_id, (gsa, kd), self.signer, self._rng(old_sa.suite.iv_len)
        )
        dest = (group.config.rekey_address, group.config.rekey_port)
        self._copies += [(now + at, raw, dest) for at in group.config.copies]
        group.last_sent = now
        group.rekey_spi, group.rekey_keymat, group.next_message_id = new_spi, new_keymat, 0
        group.follow_up_at = now + group.config.copies[-1] + FOLLOW_UP_DELAY
        self.state_version += 1
        self._events.append(
            ev.RekeySent(
                now,
                group.config.name,
                message_id,
                (),
                len(raw),
                len(group.config.copies),
                reason,
                len(wrap_keys) + len(sa_keys),
                sa=old_sa.spi.hex(),
            )
        )
        return message_id

    def reset(self, name: str, now: float) -> int:
        """Exclude every member: D(GIKE_UPDATE, SPI 0) under the current Rekey SA.

        RFC 9838 §2.4.3: members must re-register, after a random delay, and
        get a new Rekey SA and a new routing key. Returns the Message ID.
        """
        group = self._groups.get(name)
        if group is None:
            raise BadValue(f"no group named {name!r}")
        old_sa = self._rekey_sa(group)
        tek = group.teks[-1].key
        deletes = (
            DeletePayload(tek.protocol, len(tek.spi), (bytes(len(tek.spi)),)),
            DeletePayload(ProtocolId.GIKE_UPDATE, 16, (bytes(16),)),
        )
        message_id = group.next_message_id
        raw = build_rekey(old_sa, message_id, deletes, self.signer, self._rng(old_sa.suite.iv_len))
        dest = (group.config.rekey_address, group.config.rekey_port)
        self._copies += [(now + at, raw, dest) for at in group.config.copies]
        group.last_sent = now
        group.rekey_spi, group.rekey_keymat = self._rng(16), self._rng(self._keymat_len())
        group.next_message_id = 0
        group.members.clear()
        group.teks = [*group.live_teks(now), self._new_tek(group, now)]
        self.state_version += 1
        self._events.append(
            ev.RekeySent(
                now,
                name,
                message_id,
                (),
                len(raw),
                len(group.config.copies),
                "reset",
                sa=old_sa.spi.hex(),
            )
        )
        return message_id

    # -- inspection and persistence ------------------------------------------------

    def group_names(self) -> list[str]:
        """The configured group names."""
        return list(self._groups)

    def status(self, now: float) -> dict[str, Any]:
        """What ``mrkm status`` shows: groups, members, current key ids, counters."""
        return {
            "identity": self.config.identity,
            "groups": {
                name: {
                    "members": sorted(g.members),
                    "evicted": sorted(g.evicted),
                    "key_ids": [int.from_bytes(t.key.spi, "big") for t in g.live_teks(now)],
                    "next_message_id": g.next_message_id,
                    "next_rekey_in": round(self._next_rekey_at(g) - now, 3),
                }
                for name, g in self._groups.items()
            },
            "registration_sas": len(self._sessions),
            "counters": dict(self.counters),
        }

    def snapshot(self) -> dict[str, Any]:
        """All group state as JSON-ready data (keys included: store it privately)."""
        return {
            "version": 1,
            # Copies not yet sent, so that a restart still sends them (§2.4.1.3).
            "copies": [[at, raw.hex(), list(dest)] for at, raw, dest in self._copies],
            "groups": {
                name: {
                    "rekey_spi": g.rekey_spi.hex(),
                    "rekey_keymat": g.rekey_keymat.hex(),
                    "next_message_id": g.next_message_id,
                    "members": g.members,
                    "evicted": sorted(g.evicted),
                    "follow_up_at": g.follow_up_at,
                    "reserved_id": g.reserved_id,
                    "tree": g.tree.snapshot(),
                    "teks": [
                        {
                            "spi": t.key.spi.hex(),
                            "key": t.key.key.hex(),
                            "integ": t.key.integ,
                            "protocol": t.key.protocol,
                            "created": t.created,
                            "expires": t.expires,
                            "next_spi": t.key.next_spi.hex() if t.key.next_spi else None,
                        }
                        for t in g.teks
                    ],
                }
                for name, g in self._groups.items()
            },
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from a snapshot; groups no longer configured are ignored."""
        if snapshot.get("version") != 1:
            raise ValueError("unknown GCKS state version")
        self._copies = [
            (float(at), bytes.fromhex(raw), (str(dest[0]), int(dest[1])))
            for at, raw, dest in snapshot.get("copies", ())
        ]
        for name, data in snapshot["groups"].items():
            group = self._groups.get(name)
            if group is None:
                continue
            group.rekey_spi = bytes.fromhex(data["rekey_spi"])
            group.rekey_keymat = bytes.fromhex(data["rekey_keymat"])
            group.next_message_id = int(data["next_message_id"])
            group.members = {str(k): float(v) for k, v in data["members"].items()}
            group.evicted = {str(m) for m in data.get("evicted", ())}
            follow_up = data.get("follow_up_at")
            group.follow_up_at = float(follow_up) if follow_up is not None else None
            group.tree.restore(data["tree"])
            reserved = data.get("reserved_id")
            group.reserved_id = int(reserved) if reserved is not None else None
            group.teks = [
                _Tek(
                    RoutingKey(
                        int(t["protocol"]),
                        bytes.fromhex(t["spi"]),
                        int(t["integ"]),
                        bytes.fromhex(t["key"]),
                        int(group.config.lifetime),
                        bytes.fromhex(t["next_spi"]) if t.get("next_spi") else None,
                    ),
                    float(t["created"]),
                    float(t["expires"]),
                )
                for t in data["teks"]
            ]
