"""GSA_AUTH signed octets and shared-key AUTH (RFC 7296 §2.15)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mrkm.crypto import auth
from mrkm.crypto.prf import prf
from mrkm.errors import AuthenticationFailed
from mrkm.wire.registry import PrfId

PRFS = [
    (PrfId.PRF_HMAC_SHA1, hashlib.sha1),
    (PrfId.PRF_HMAC_SHA2_256, hashlib.sha256),
    (PrfId.PRF_HMAC_SHA2_384, hashlib.sha384),
    (PrfId.PRF_HMAC_SHA2_512, hashlib.sha512),
]

REAL_MESSAGE_1 = bytes(range(200))  # stands in for the IKE_SA_INIT request as sent
NONCE_R = bytes.fromhex("c0ffee00" * 8)
SK_PI = bytes(range(32, 64))
# IDi body: ID Type ID_FQDN (2) | RESERVED | "gm1.mrkm.test"
IDI_BODY = bytes([2, 0, 0, 0]) + b"gm1.mrkm.test"


def test_key_pad_is_17_ascii_octets() -> None:
    assert auth.KEY_PAD == b"Key Pad for IKEv2"
    assert len(auth.KEY_PAD) == 17


@pytest.mark.parametrize(("prf_id", "hash_ctor"), PRFS, ids=[p.name for p, _ in PRFS])
def test_signed_octets_layout(prf_id: int, hash_ctor: type) -> None:
    octets = auth.signed_octets(prf_id, REAL_MESSAGE_1, NONCE_R, SK_PI, IDI_BODY)
    maced_id = hmac.new(SK_PI, IDI_BODY, hash_ctor).digest()
    assert octets == REAL_MESSAGE_1 + NONCE_R + maced_id


@pytest.mark.parametrize(("prf_id", "hash_ctor"), PRFS, ids=[p.name for p, _ in PRFS])
def test_psk_auth_two_ways(prf_id: int, hash_ctor: type) -> None:
    psk = b"correct horse battery staple"
    octets = auth.signed_octets(prf_id, REAL_MESSAGE_1, NONCE_R, SK_PI, IDI_BODY)
    # Way 1: the standard library, straight from the RFC 7296 §2.15 formula.
    inner = hmac.new(psk, b"Key Pad for IKEv2", hash_ctor).digest()
    expected = hmac.new(inner, octets, hash_ctor).digest()
    # Way 2: composed from mrkm's own prf.
    composed = prf(prf_id, prf(prf_id, psk, auth.KEY_PAD), octets)
    assert auth.psk_auth(prf_id, psk, octets) == expected == composed


def test_verify_psk_auth_accepts_the_right_mac() -> None:
    prf_id = PrfId.PRF_HMAC_SHA2_256
    octets = auth.signed_octets(prf_id, REAL_MESSAGE_1, NONCE_R, SK_PI, IDI_BODY)
    data = auth.psk_auth(prf_id, b"psk", octets)
    assert auth.verify_psk_auth(prf_id, b"psk", octets, data) is None


@pytest.mark.parametrize(
    "change",
    ["psk", "octets", "flip", "truncate", "extend", "empty"],
)
def test_verify_psk_auth_rejects(change: str) -> None:
    prf_id = PrfId.PRF_HMAC_SHA2_256
    octets = auth.signed_octets(prf_id, REAL_MESSAGE_1, NONCE_R, SK_PI, IDI_BODY)
    data = auth.psk_auth(prf_id, b"psk", octets)
    psk = b"psk"
    if change == "psk":
        psk = b"psK"
    elif change == "octets":
        octets = octets[:-1] + bytes([octets[-1] ^ 1])
    elif change == "flip":
        data = bytes([data[0] ^ 0x80]) + data[1:]
    elif change == "truncate":
        data = data[:-1]
    elif change == "extend":
        data = data + b"\x00"
    else:
        data = b""
    with pytest.raises(AuthenticationFailed):
        auth.verify_psk_auth(prf_id, psk, octets, data)


def test_authentication_failed_maps_to_notify_24() -> None:
    assert AuthenticationFailed.notify_type == 24


def test_each_input_changes_signed_octets() -> None:
    prf_id = PrfId.PRF_HMAC_SHA2_256
    base = auth.signed_octets(prf_id, REAL_MESSAGE_1, NONCE_R, SK_PI, IDI_BODY)
    variants = [
        auth.signed_octets(prf_id, REAL_MESSAGE_1 + b"\x00", NONCE_R, SK_PI, IDI_BODY),
        auth.signed_octets(prf_id, REAL_MESSAGE_1, NONCE_R[:-1], SK_PI, IDI_BODY),
        auth.signed_octets(prf_id, REAL_MESSAGE_1, NONCE_R, SK_PI[::-1], IDI_BODY),
        auth.signed_octets(prf_id, REAL_MESSAGE_1, NONCE_R, SK_PI, IDI_BODY + b"x"),
    ]
    assert all(v != base for v in variants)
