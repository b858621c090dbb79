"""The registration IKE SA between our own initiator and responder, in memory."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mrkm.crypto import certs
from mrkm.errors import AuthenticationFailed, IntegrityCheckFailed
from mrkm.protocol import (
    AuthRequest,
    Identity,
    IkeInitiator,
    IkeResponder,
    IkeSuite,
    LocalCredentials,
    PeerTrust,
    SaState,
)
from mrkm.protocol.errors import PeerReportedError, UnexpectedMessage
from mrkm.wire import IdgPayload, NotifyPayload, decode_message
from mrkm.wire.registry import DhGroup, EncrId, ExchangeType, IntegId, NotifyType

NOW = datetime(2026, 11, 27, tzinfo=UTC).timestamp()
GM, GCKS = Identity.fqdn("gm1.mrkm.test"), Identity.fqdn("gcks.mrkm.test")
PSK = b"registration-psk-0123456789"


def rng(seed: int):  # type: ignore[no-untyped-def]
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def psk_pair(**kw):  # type: ignore[no-untyped-def]
    init = IkeInitiator(
        LocalCredentials(GM, psk=PSK),
        PeerTrust(psks={GCKS: PSK}),
        rng(1),
        auth_payloads=(IdgPayload(11, b"ospfv2-area0"),),
        **kw,
    )
    resp = IkeResponder(
        LocalCredentials(GCKS, psk=PSK),
        PeerTrust(psks={GM: PSK}),
        rng(2),
        suites=kw.get("suites", (IkeSuite(),)),
    )
    return init, resp


def run(init: IkeInitiator, resp: IkeResponder) -> AuthRequest:
    reply = resp.receive(init.initiate(), NOW)
    assert isinstance(reply, bytes)
    request = init.receive(reply, NOW)
    assert request is not None
    decided = resp.receive(request, NOW)
    assert isinstance(decided, AuthRequest)
    return decided


@pytest.mark.parametrize(
    "suite",
    [
        IkeSuite(),
        IkeSuite(encr_key_bits=128),
        IkeSuite(encr=EncrId.ENCR_AES_CBC, integ=IntegId.AUTH_HMAC_SHA2_256_128),
        IkeSuite(dh=DhGroup.ECP_256, prf=6),
        IkeSuite(dh=DhGroup.MODP_2048, kwa=None),
    ],
)
def test_psk_registration_completes(suite: IkeSuite) -> None:
    init, resp = psk_pair(suites=(suite,))
    decided = run(init, resp)
    assert decided.peer == GM and decided.exchange == ExchangeType.GSA_AUTH
    assert decided.payloads[-1] == IdgPayload(11, b"ospfv2-area0")
    assert init.receive(resp.accept((NotifyPayload(NotifyType.USE_TRANSPORT_MODE),)), NOW) is None
    assert init.state is resp.state is SaState.ESTABLISHED
    assert init.peer == GCKS
    assert init.sa is not None and resp.sa is not None
    assert init.sa.keys == resp.sa.keys and init.sa.gsk_w == resp.sa.gsk_w
    assert NotifyPayload(NotifyType.USE_TRANSPORT_MODE) in init.response_payloads


def test_wrong_psk_is_answered_with_authentication_failed() -> None:
    init = IkeInitiator(LocalCredentials(GM, psk=b"wrong"), PeerTrust(psks={GCKS: PSK}), rng(1))
    resp = IkeResponder(LocalCredentials(GCKS, psk=PSK), PeerTrust(psks={GM: PSK}), rng(2))
    reply = resp.receive(init.initiate(), NOW)
    assert isinstance(reply, bytes)
    request = init.receive(reply, NOW)
    assert request is not None
    with pytest.raises(AuthenticationFailed):
        resp.receive(request, NOW)
    assert resp.state is SaState.FAILED
    with pytest.raises(PeerReportedError) as info:
        init.receive(resp.failure_response, NOW)
    assert info.value.notify_type == NotifyType.AUTHENTICATION_FAILED
    assert init.state is SaState.FAILED


def test_rejection_notify_reaches_the_initiator() -> None:
    init, resp = psk_pair()
    run(init, resp)
    with pytest.raises(PeerReportedError, match="AUTHORIZATION_FAILED"):
        init.receive(resp.reject(NotifyType.AUTHORIZATION_FAILED), NOW)


def test_invalid_ke_payload_retry_uses_the_named_group() -> None:
    x25519, p256 = IkeSuite(), IkeSuite(dh=DhGroup.ECP_256)
    init = IkeInitiator(
        LocalCredentials(GM, psk=PSK), PeerTrust(psks={GCKS: PSK}), rng(1), suites=(x25519, p256)
    )
    resp = IkeResponder(
        LocalCredentials(GCKS, psk=PSK), PeerTrust(psks={GM: PSK}), rng(2), suites=(p256,)
    )
    reply = resp.receive(init.initiate(), NOW)
    assert isinstance(reply, bytes)
    notify = decode_message(reply).payloads[0]
    assert notify == NotifyPayload(NotifyType.INVALID_KE_PAYLOAD, (19).to_bytes(2, "big"))
    retry = init.receive(reply, NOW)
    assert retry is not None
    assert isinstance(resp.receive(retry, NOW), bytes)
    assert resp.sa is not None and resp.sa.suite == p256


def test_no_common_suite() -> None:
    init, _ = psk_pair()
    resp = IkeResponder(
        LocalCredentials(GCKS, psk=PSK),
        PeerTrust(psks={GM: PSK}),
        rng(2),
        suites=(IkeSuite(encr_key_bits=128),),
    )
    reply = resp.receive(init.initiate(), NOW)
    assert isinstance(reply, bytes)
    with pytest.raises(PeerReportedError, match="NO_PROPOSAL_CHOSEN"):
        init.receive(reply, NOW)


def test_retransmitted_request_gets_the_cached_response() -> None:
    init, resp = psk_pair()
    first = init.initiate()
    assert resp.receive(first, NOW) == resp.receive(first, NOW)


def test_tampered_auth_request_is_dropped() -> None:
    init, resp = psk_pair()
    reply = resp.receive(init.initiate(), NOW)
    assert isinstance(reply, bytes)
    request = bytearray(init.receive(reply, NOW) or b"")
    request[-1] ^= 1
    with pytest.raises(IntegrityCheckFailed):
        resp.receive(bytes(request), NOW)
    assert resp.state is SaState.RESP_EXPECT_AUTH_REQUEST


def test_response_in_wrong_state_is_rejected() -> None:
    init, resp = psk_pair()
    reply = resp.receive(init.initiate(), NOW)
    assert isinstance(reply, bytes)
    init.receive(reply, NOW)
    with pytest.raises(UnexpectedMessage):
        init.receive(reply, NOW)


@pytest.mark.parametrize(
    "make_key",
    [ed25519.Ed25519PrivateKey.generate, lambda: ec.generate_private_key(ec.SECP256R1())],
)
def test_certificate_registration(make_key) -> None:  # type: ignore[no-untyped-def]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ca_key = make_key()
    ca = certs.make_ca("MRKM test CA", ca_key, start, 3650)
    gm_key, gcks_key = make_key(), make_key()
    gm_cert = certs.issue_cert(ca, ca_key, "gm1", gm_key.public_key(), start, 365, "gm1.mrkm.test")
    gcks_cert = certs.issue_cert(
        ca, ca_key, "gcks", gcks_key.public_key(), start, 365, "gcks.mrkm.test"
    )
    init = IkeInitiator(
        LocalCredentials(GM, signing_key=gm_key, certificate=gm_cert), PeerTrust(ca=ca), rng(1)
    )
    resp = IkeResponder(
        LocalCredentials(GCKS, signing_key=gcks_key, certificate=gcks_cert),
        PeerTrust(ca=ca),
        rng(2),
    )
    assert run(init, resp).peer == GM
    assert init.receive(resp.accept(), NOW) is None
    assert init.state is SaState.ESTABLISHED

    # A certificate that names someone else does not authenticate GM's identity.
    other = certs.issue_cert(ca, ca_key, "x", gm_key.public_key(), start, 365, "x.mrkm.test")
    init = IkeInitiator(
        LocalCredentials(GM, signing_key=gm_key, certificate=other), PeerTrust(ca=ca), rng(3)
    )
    resp = IkeResponder(
        LocalCredentials(GCKS, signing_key=gcks_key, certificate=gcks_cert),
        PeerTrust(ca=ca),
        rng(4),
    )
    with pytest.raises(AuthenticationFailed, match="not in the peer's certificate"):
        run(init, resp)
