"""The registration IKE SA: IKE_SA_INIT, then an AUTH exchange (RFC 7296 §1.2, RFC 9838 §2.3).

Two sans-IO classes, one per role. Neither opens a socket, reads a clock or
draws randomness on its own: datagrams go in and out as octets, ``now`` and
``rng`` are passed in (STYLE.md item 1).

* :class:`IkeInitiator` (the GM) sends IKE_SA_INIT, answers COOKIE and
  INVALID_KE_PAYLOAD, then sends the AUTH request: GSA_AUTH (39) with IDg for
  G-IKEv2, or a plain childless IKE_AUTH (35, RFC 6023) used to prove key
  derivation, AUTH and SK against strongSwan.
* :class:`IkeResponder` (the GCKS) answers one initiator. When the AUTH
  request verifies it stops and hands the caller an :class:`AuthRequest`;
  the caller decides (``accept`` with extra payloads such as GSA and KD, or
  ``reject`` with a Notify), so the core never calls back into its caller.

Transitions are a table from (state, exchange type) to a handler; anything
else raises :class:`~mrkm.protocol.errors.UnexpectedMessage`.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mrkm.crypto import auth, dh, signatures
from mrkm.crypto.keys import IkeSaKeys, derive_ike_sa_keys, gsk_w
from mrkm.errors import AuthenticationFailed
from mrkm.protocol.credentials import (
    CERT_ENCODING_X509_SIGNATURE,
    Identity,
    LocalCredentials,
    PeerTrust,
)
from mrkm.protocol.errors import (
    InvalidKePayload,
    NoProposalChosen,
    PeerReportedError,
    UnexpectedMessage,
)
from mrkm.protocol.protect import open_message, seal_message
from mrkm.protocol.suite import DEFAULT_SUITE, IkeSuite, choose_suite
from mrkm.wire import (
    FLAG_INITIATOR,
    FLAG_RESPONSE,
    AuthPayload,
    CertPayload,
    CertReqPayload,
    IdiPayload,
    IdrPayload,
    IkeHeader,
    KePayload,
    Message,
    NoncePayload,
    NotifyPayload,
    Payload,
    SaPayload,
    decode_message,
    encode_message,
    find,
)
from mrkm.wire.registry import AuthMethod, ExchangeType, NotifyType

__all__ = [
    "AuthRequest",
    "FollowUpRequest",
    "IkeInitiator",
    "IkeResponder",
    "IkeSa",
    "Rng",
    "SaState",
]

Rng = Callable[[int], bytes]
NONCE_LEN = 32
# RFC 7427 §4: SHA2-256 (2) and Identity (5, for Ed25519) as 16-bit hash IDs.
_SIGNATURE_HASHES = bytes([0, 2, 0, 5])
_AUTH_EXCHANGES = (ExchangeType.IKE_AUTH, ExchangeType.GSA_AUTH)


class SaState(enum.Enum):
    """Where an IKE SA setup stands; "EXPECT" names say what comes next."""

    INIT_EXPECT_SA_INIT_RESPONSE = "init-expect-sa-init-response"
    INIT_EXPECT_AUTH_RESPONSE = "init-expect-auth-response"
    RESP_EXPECT_SA_INIT_REQUEST = "resp-expect-sa-init-request"
    RESP_EXPECT_AUTH_REQUEST = "resp-expect-auth-request"
    RESP_DECIDING = "resp-deciding"
    RESP_DECIDING_FOLLOW_UP = "resp-deciding-follow-up"
    ESTABLISHED = "established"
    FAILED = "failed"


@dataclass(frozen=True)
class IkeSa:
    """The keys and facts of an established (or half-established) IKE SA."""

    spi_i: bytes
    spi_r: bytes
    suite: IkeSuite
    keys: IkeSaKeys
    ni: bytes
    nr: bytes

    @property
    def gsk_w(self) -> bytes:
        """The registration SA's default key wrap key (RFC 9838 §3.1.1)."""
        return gsk_w(self.suite.prf, self.keys.sk_d, self.suite.kwk_len)

    def header(self, exchange: int, flags: int, message_id: int) -> IkeHeader:
        """A header of this SA."""
        return IkeHeader(self.spi_i, self.spi_r, exchange, flags, message_id)

    def seal(self, header: IkeHeader, inner: tuple[Payload, ...], rng: Rng) -> bytes:
        """Protect ``inner`` in the direction ``header``'s I flag says."""
        suite = self.suite.sk_suite()
        if header.is_initiator:
            key_e, key_a = self.keys.sk_ei, self.keys.sk_ai
        else:
            key_e, key_a = self.keys.sk_er, self.keys.sk_ar
        return seal_message(header, inner, suite, key_e, key_a, rng(suite.iv_len))

    def open(
        self, raw: bytes, from_initiator: bool, message: Message | None = None
    ) -> tuple[Message, tuple[Payload, ...]]:
        """Check and decrypt a message sent by the initiator or by the responder."""
        suite = self.suite.sk_suite()
        if from_initiator:
            return open_message(raw, suite, self.keys.sk_ei, self.keys.sk_ai, message)
        return open_message(raw, suite, self.keys.sk_er, self.keys.sk_ar, message)


def _derive(
    suite: IkeSuite, ni: bytes, nr: bytes, shared: bytes, spi_i: bytes, spi_r: bytes
) -> IkeSa:
    sk_suite = suite.sk_suite()
    keys = derive_ike_sa_keys(
        suite.prf, ni, nr, shared, spi_i, spi_r, sk_suite.encr_key_len, sk_suite.integ_key_len
    )
    return IkeSa(spi_i, spi_r, suite, keys, ni, nr)


def _auth_payload(
    local: LocalCredentials, prf_id: int, octets: bytes, pair_psk: bytes | None = None
) -> AuthPayload:
    """Our AUTH: with a PSK, the one shared with this peer if known (RFC 7296 §2.15)."""
    if local.psk is not None:
        psk = pair_psk or local.psk
        return AuthPayload(AuthMethod.SHARED_KEY_MIC, auth.psk_auth(prf_id, psk, octets))
    assert local.signing_key is not None  # guaranteed by LocalCredentials
    key = local.signing_key
    return AuthPayload(
        AuthMethod.DIGITAL_SIGNATURE, signatures.sign(key, octets), signatures.algorithm_id_for(key)
    )


def _cert_payloads(local: LocalCredentials) -> tuple[Payload, ...]:
    if local.certificate is None:
        return ()
    der = local.certificate.public_bytes(Encoding.DER)
    return (CertPayload(CERT_ENCODING_X509_SIGNATURE, der),)


def _cert_requests(trust: PeerTrust) -> tuple[Payload, ...]:
    """CERTREQ naming our CA by the SHA-1 hash of its public key (RFC 7296 §3.7)."""
    if trust.ca is None:
        return ()
    spki = trust.ca.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return (CertReqPayload(CERT_ENCODING_X509_SIGNATURE, hashlib.sha1(spki).digest()),)


def _verify_peer_auth(
    trust: PeerTrust,
    peer: Identity,
    inner: tuple[Payload, ...],
    prf_id: int,
    octets: bytes,
    now: float,
) -> None:
    payload = find(inner, AuthPayload)
    if payload is None:
        raise AuthenticationFailed("no AUTH payload")
    if trust.authorize is not None and not trust.authorize(peer):
        raise AuthenticationFailed(f"identity {peer} is not known")
    if payload.method == AuthMethod.SHARED_KEY_MIC:
        psk = trust.psk_for(peer)
        if psk is None:
            raise AuthenticationFailed(f"no pre-shared key for {peer}")
        auth.verify_psk_auth(prf_id, psk, octets, payload.data)
    elif payload.method == AuthMethod.DIGITAL_SIGNATURE:
        cert = find(inner, CertPayload)
        if cert is None:
            raise AuthenticationFailed("signature AUTH without a CERT payload")
        key = trust.verify_certificate(peer, cert.data, now)
        signatures.verify(key, payload.algorithm_id, octets, payload.data)
    else:
        raise AuthenticationFailed(f"AUTH method {payload.method} is not supported")


def _error_notify(payloads: tuple[Payload, ...]) -> NotifyPayload | None:
    return next((p for p in payloads if isinstance(p, NotifyPayload) and p.is_error), None)


class IkeInitiator:
    """The GM side of the registration IKE SA (or a plain IKEv2 initiator)."""

    def __init__(
        self,
        local: LocalCredentials,
        trust: PeerTrust,
        rng: Rng,
        *,
        suites: tuple[IkeSuite, ...] = (DEFAULT_SUITE,),
        exchange: int = ExchangeType.GSA_AUTH,
        auth_payloads: tuple[Payload, ...] = (),
        responder_id: Identity | None = None,
    ) -> None:
        if exchange not in _AUTH_EXCHANGES:
            raise ValueError(f"exchange {exchange} is not IKE_AUTH (35) or GSA_AUTH (39)")
        if not suites:
            raise ValueError("at least one suite is needed")
        self.local, self.trust, self._rng = local, trust, rng
        self.suites, self.exchange = suites, exchange
        self._extra = auth_payloads
        self._responder_id = responder_id
        self.state = SaState.INIT_EXPECT_SA_INIT_RESPONSE
        self.spi_i = rng(8)
        self._ni = rng(NONCE_LEN)
        self._dh = dh.generate(suites[0].dh, rng)
        self._cookie: bytes | None = None
        self._init_request = b""
        self._init_response = b""
        self.sa: IkeSa | None = None
        self.peer: Identity | None = None
        self.response_payloads: tuple[Payload, ...] = ()
        self._table: dict[tuple[SaState, int], Callable[[bytes, Message, float], bytes | None]] = {
            (SaState.INIT_EXPECT_SA_INIT_RESPONSE, ExchangeType.IKE_SA_INIT): self._on_sa_init,
            (SaState.INIT_EXPECT_AUTH_RESPONSE, exchange): self._on_auth,
            (SaState.ESTABLISHED, ExchangeType.GSA_REGISTRATION): self._on_follow_up_response,
        }
        self._next_message_id = 2
        #: Message ID of a GSA_REGISTRATION request awaiting its response.
        self.pending_request: int | None = None
        self._last_request = b""

    def initiate(self) -> bytes:
        """The IKE_SA_INIT request (RFC 7296 §1.2)."""
        proposals = tuple(s.to_proposal(num=i + 1) for i, s in enumerate(self.suites))
        payloads: list[Payload] = []
        if self._cookie is not None:  # COOKIE goes first (RFC 7296 §2.6)
            payloads.append(NotifyPayload(NotifyType.COOKIE, self._cookie))
        payloads += [
            SaPayload(proposals),
            KePayload(self._dh.group, self._dh.public_bytes),
            NoncePayload(self._ni),
            NotifyPayload(NotifyType.SIGNATURE_HASH_ALGORITHMS, _SIGNATURE_HASHES),
            NotifyPayload(NotifyType.CHILDLESS_IKEV2_SUPPORTED),  # RFC 6023 §3
        ]
        header = IkeHeader(self.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, FLAG_INITIATOR, 0)
        self._init_request = encode_message(header, tuple(payloads))
        return self._init_request

    def receive(self, data: bytes, now: float) -> bytes | None:
        """Take a response; return the next request, or None when done.

        Raises a :class:`~mrkm.errors.MrkmError`; after one the SA is FAILED
        unless the error was a malformed or foreign datagram (dropped as is).
        """
        message = decode_message(data)
        header = message.header
        if not header.is_response or header.spi_i != self.spi_i:
            raise UnexpectedMessage("not a response to our IKE SA")
        handler = self._table.get((self.state, header.exchange_type))
        if handler is None:
            raise UnexpectedMessage(f"exchange {header.exchange_type} in state {self.state.value}")
        try:
            return handler(data, message, now)
        except (PeerReportedError, NoProposalChosen, AuthenticationFailed):
            self.state = SaState.FAILED
            raise

    def _on_sa_init(self, data: bytes, message: Message, now: float) -> bytes | None:
        notify = _error_notify(message.payloads)
        cookie = find(message.payloads, NotifyPayload)
        if cookie is not None and cookie.notify_type == NotifyType.COOKIE:
            self._cookie = cookie.data
            return self.initiate()
        if notify is not None and notify.notify_type == NotifyType.INVALID_KE_PAYLOAD:
            return self._retry_group(notify.data)
        if notify is not None:
            raise PeerReportedError(notify.notify_type)
        sa = find(message.payloads, SaPayload)
        ke = find(message.payloads, KePayload)
        nonce = find(message.payloads, NoncePayload)
        if sa is None or ke is None or nonce is None or len(sa.proposals) != 1:
            raise UnexpectedMessage("IKE_SA_INIT response lacks SA, KE or Nonce")
        suite = IkeSuite.from_proposal(sa.proposals[0])
        if suite is None or suite not in self.suites:
            raise NoProposalChosen("responder chose a suite we did not offer")
        if ke.group != self._dh.group or suite.dh != self._dh.group:
            raise UnexpectedMessage(f"responder used KE group {ke.group}")
        shared = dh.shared_secret(self._dh, ke.data)
        self.sa = sa_ = _derive(
            suite, self._ni, nonce.data, shared, self.spi_i, message.header.spi_r
        )
        id_payload = IdiPayload(self.local.identity.id_type, self.local.identity.data)
        octets = auth.signed_octets(
            suite.prf, self._init_request, nonce.data, sa_.keys.sk_pi, id_payload.body
        )
        inner: tuple[Payload, ...] = (
            id_payload,
            *_cert_payloads(self.local),
            *_cert_requests(self.trust),
        )
        if self._responder_id is not None:
            inner += (IdrPayload(self._responder_id.id_type, self._responder_id.data),)
        inner += (_auth_payload(self.local, suite.prf, octets), *self._extra)
        self._init_response = data
        self.state = SaState.INIT_EXPECT_AUTH_RESPONSE
        return sa_.seal(sa_.header(self.exchange, FLAG_INITIATOR, 1), inner, self._rng)

    def _retry_group(self, data: bytes) -> bytes:
        group = int.from_bytes(data[:2], "big") if len(data) >= 2 else -1
        ordered = sorted(self.suites, key=lambda s: s.dh != group)
        if ordered[0].dh != group or group == self._dh.group:
            self.state = SaState.FAILED
            raise PeerReportedError(NotifyType.INVALID_KE_PAYLOAD, f"asks for group {group}")
        self.suites = tuple(ordered)
        self._dh = dh.generate(group, self._rng)
        return self.initiate()

    def _on_auth(self, data: bytes, decoded: Message, now: float) -> bytes | None:
        assert self.sa is not None  # set on the way into this state
        message, inner = self.sa.open(data, from_initiator=False, message=decoded)
        if message.header.message_id != 1:
            raise UnexpectedMessage(f"AUTH response with Message ID {message.header.message_id}")
        idr = find(inner, IdrPayload)
        if idr is None:
            notify = _error_notify(inner)
            raise PeerReportedError(notify.notify_type if notify else NotifyType.INVALID_SYNTAX)
        self.peer = Identity(idr.id_type, idr.data)
        octets = auth.signed_octets(
            self.sa.suite.prf, self._init_response, self.sa.ni, self.sa.keys.sk_pr, idr.body
        )
        _verify_peer_auth(self.trust, self.peer, inner, self.sa.suite.prf, octets, now)
        notify = _error_notify(inner)
        if notify is not None:
            raise PeerReportedError(notify.notify_type)
        self.response_payloads = inner
        self.state = SaState.ESTABLISHED
        return None

    def request(self, inner: tuple[Payload, ...]) -> bytes:
        """A GSA_REGISTRATION request on the established SA (RFC 9838 §2.3.2).

        Used to join a further group (``IDg [, SAg]``) or to leave one
        (``IDg, N(REGISTRATION_FAILED)``). One request at a time (window 1).
        """
        if self.state is not SaState.ESTABLISHED or self.sa is None:
            raise UnexpectedMessage(f"no GSA_REGISTRATION in state {self.state.value}")
        if self.pending_request is not None:
            raise UnexpectedMessage("a GSA_REGISTRATION request is still outstanding")
        message_id, self._next_message_id = self._next_message_id, self._next_message_id + 1
        header = self.sa.header(ExchangeType.GSA_REGISTRATION, FLAG_INITIATOR, message_id)
        self.pending_request = message_id
        self._last_request = self.sa.seal(header, inner, self._rng)
        return self._last_request

    @property
    def last_request(self) -> bytes:
        """The request to retransmit while its response is missing."""
        return self._last_request

    def _on_follow_up_response(self, data: bytes, decoded: Message, now: float) -> bytes | None:
        assert self.sa is not None
        message, inner = self.sa.open(data, from_initiator=False, message=decoded)
        if message.header.message_id != self.pending_request:
            raise UnexpectedMessage(f"response with Message ID {message.header.message_id}")
        self.pending_request = None
        self.response_payloads = inner  # error notifies are the caller's to read
        return None


@dataclass(frozen=True)
class FollowUpRequest:
    """A GSA_REGISTRATION request on an established registration SA."""

    peer: Identity
    message_id: int
    payloads: tuple[Payload, ...]


@dataclass(frozen=True)
class AuthRequest:
    """An AUTH request that verified: who the peer is and what else it sent."""

    peer: Identity
    exchange: int
    payloads: tuple[Payload, ...]


class IkeResponder:
    """The GCKS side of one registration IKE SA (or a plain IKEv2 responder)."""

    def __init__(
        self,
        local: LocalCredentials,
        trust: PeerTrust,
        rng: Rng,
        *,
        suites: tuple[IkeSuite, ...] = (DEFAULT_SUITE,),
        exchanges: tuple[int, ...] = _AUTH_EXCHANGES,
    ) -> None:
        self.local, self.trust, self._rng = local, trust, rng
        self.suites, self.exchanges = suites, exchanges
        self.state = SaState.RESP_EXPECT_SA_INIT_REQUEST
        self.sa: IkeSa | None = None
        self.peer: Identity | None = None
        self._init_request = b""
        self._init_response = b""
        self._last_request = b""
        self._last_response = b""
        self._exchange = 0
        self._next_request_id = 2
        self._pending_id = 0

    def receive(self, data: bytes, now: float) -> bytes | AuthRequest | FollowUpRequest | None:
        """Take a request; return the response, an :class:`AuthRequest` to decide, or None.

        A retransmitted request gets the cached response again (RFC 7296 §2.1).
        """
        if data == self._last_request and self._last_response:
            return self._last_response
        message = decode_message(data)
        header = message.header
        if header.is_response:
            raise UnexpectedMessage("a responder takes requests only")
        if self.state is SaState.RESP_EXPECT_SA_INIT_REQUEST:
            if header.exchange_type != ExchangeType.IKE_SA_INIT or header.message_id != 0:
                raise UnexpectedMessage("expected IKE_SA_INIT with Message ID 0")
            response = self._on_sa_init(message, data)
        elif self.state is SaState.RESP_EXPECT_AUTH_REQUEST:
            if header.exchange_type not in self.exchanges:
                raise UnexpectedMessage(f"exchange {header.exchange_type} is not allowed here")
            return self._on_auth(data, now, message)
        elif self.state is SaState.ESTABLISHED:
            return self._on_follow_up(data)
        else:
            raise UnexpectedMessage(f"no request is expected in state {self.state.value}")
        self._last_request, self._last_response = data, response
        return response

    def _on_sa_init(self, message: Message, raw: bytes) -> bytes:
        header = message.header
        sa = find(message.payloads, SaPayload)
        ke = find(message.payloads, KePayload)
        nonce = find(message.payloads, NoncePayload)
        if sa is None or ke is None or nonce is None:
            raise UnexpectedMessage("IKE_SA_INIT request lacks SA, KE or Nonce")
        suite = choose_suite(sa.proposals, self.suites)
        reply = IkeHeader(header.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, FLAG_RESPONSE, 0)
        if suite is None:
            self.state = SaState.FAILED
            return encode_message(reply, (NotifyPayload(NoProposalChosen.notify_type),))
        if ke.group != suite.dh:
            # Stateless answer; the initiator retries with the group we name.
            group = InvalidKePayload(suite.dh)
            return encode_message(
                reply, (NotifyPayload(group.notify_type, suite.dh.to_bytes(2, "big")),)
            )
        num = next(p.num for p in sa.proposals if choose_suite((p,), (suite,)) == suite)
        spi_r = self._rng(8)
        nr = self._rng(NONCE_LEN)
        own = dh.generate(suite.dh, self._rng)
        shared = dh.shared_secret(own, ke.data)
        self.sa = _derive(suite, nonce.data, nr, shared, header.spi_i, spi_r)
        response = encode_message(
            IkeHeader(header.spi_i, spi_r, ExchangeType.IKE_SA_INIT, FLAG_RESPONSE, 0),
            (
                SaPayload((suite.to_proposal(num=num),)),
                KePayload(suite.dh, own.public_bytes),
                NoncePayload(nr),
                *_cert_requests(self.trust),
                NotifyPayload(NotifyType.SIGNATURE_HASH_ALGORITHMS, _SIGNATURE_HASHES),
                NotifyPayload(NotifyType.CHILDLESS_IKEV2_SUPPORTED),  # RFC 6023 §3
            ),
        )
        self._init_request, self._init_response = raw, response
        self.state = SaState.RESP_EXPECT_AUTH_REQUEST
        return response

    def _on_auth(self, data: bytes, now: float, decoded: Message) -> AuthRequest:
        assert self.sa is not None
        message, inner = self.sa.open(data, from_initiator=True, message=decoded)
        if message.header.message_id != 1:
            raise UnexpectedMessage(f"AUTH request with Message ID {message.header.message_id}")
        idi = find(inner, IdiPayload)
        if idi is None:
            raise UnexpectedMessage("AUTH request lacks IDi")
        peer = Identity(idi.id_type, idi.data)
        octets = auth.signed_octets(
            self.sa.suite.prf, self._init_request, self.sa.nr, self.sa.keys.sk_pi, idi.body
        )
        self._exchange = message.header.exchange_type
        self._last_request = data
        try:
            _verify_peer_auth(self.trust, peer, inner, self.sa.suite.prf, octets, now)
        except AuthenticationFailed:
            # RFC 7296 §2.21.2: answer AUTHENTICATION_FAILED, then forget the SA.
            self._last_response = self.sa.seal(
                self.sa.header(self._exchange, FLAG_RESPONSE, 1),
                (NotifyPayload(NotifyType.AUTHENTICATION_FAILED),),
                self._rng,
            )
            self.state = SaState.FAILED
            raise
        self.peer = peer
        self.state = SaState.RESP_DECIDING
        return AuthRequest(peer, self._exchange, inner)

    def _on_follow_up(self, data: bytes) -> FollowUpRequest:
        assert self.sa is not None and self.peer is not None
        message, inner = self.sa.open(data, from_initiator=True)
        header = message.header
        if header.exchange_type != ExchangeType.GSA_REGISTRATION:
            raise UnexpectedMessage(f"exchange {header.exchange_type} on an established SA")
        if header.message_id != self._next_request_id:  # RFC 7296 §2.2, window 1
            raise UnexpectedMessage(
                f"request Message ID {header.message_id}, expected {self._next_request_id}"
            )
        self._last_request, self._last_response = data, b""
        self._pending_id = header.message_id
        self.state = SaState.RESP_DECIDING_FOLLOW_UP
        return FollowUpRequest(self.peer, header.message_id, inner)

    def answer(self, inner: tuple[Payload, ...]) -> bytes:
        """Answer the pending GSA_REGISTRATION request with ``inner`` (may be empty)."""
        if self.state is not SaState.RESP_DECIDING_FOLLOW_UP or self.sa is None:
            raise UnexpectedMessage(f"nothing to answer in state {self.state.value}")
        header = self.sa.header(ExchangeType.GSA_REGISTRATION, FLAG_RESPONSE, self._pending_id)
        self._last_response = self.sa.seal(header, inner, self._rng)
        self._next_request_id += 1
        self.state = SaState.ESTABLISHED
        return self._last_response

    @property
    def failure_response(self) -> bytes:
        """The AUTHENTICATION_FAILED response to send after a failed AUTH request."""
        return self._last_response

    def accept(self, extra: tuple[Payload, ...] = ()) -> bytes:
        """Answer the verified AUTH request with IDr, [CERT,] AUTH and ``extra``."""
        return self._answer(extra, SaState.ESTABLISHED)

    def reject(self, notify_type: int) -> bytes:
        """Answer the verified AUTH request with an error Notify (RFC 9838 §2.3.1)."""
        return self._answer((NotifyPayload(notify_type),), SaState.FAILED)

    def _answer(self, extra: tuple[Payload, ...], state: SaState) -> bytes:
        if self.state is not SaState.RESP_DECIDING or self.sa is None:
            raise UnexpectedMessage(f"nothing to answer in state {self.state.value}")
        idr = IdrPayload(self.local.identity.id_type, self.local.identity.data)
        octets = auth.signed_octets(
            self.sa.suite.prf, self._init_response, self.sa.ni, self.sa.keys.sk_pr, idr.body
        )
        inner = (
            idr,
            *_cert_payloads(self.local),
            _auth_payload(
                self.local,
                self.sa.suite.prf,
                octets,
                self.trust.psk_for(self.peer) if self.peer is not None else None,
            ),
            *extra,
        )
        response = self.sa.seal(self.sa.header(self._exchange, FLAG_RESPONSE, 1), inner, self._rng)
        self._last_response = response
        self.state = state
        return response
