"""The GSA_REKEY signature (RFC 9838 §2.4.1.1), alone and through SK seal/open."""

from __future__ import annotations

import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mrkm.crypto import rekey_auth, sk
from mrkm.crypto.signatures import (
    ALG_ID_ECDSA_SHA256,
    ALG_ID_ED25519,
    algorithm_id_for,
    encode_signature_auth,
)
from mrkm.crypto.sk import SkSuite
from mrkm.errors import AuthenticationFailed, BadLength, BadValue, DecodeError, Truncated
from mrkm.wire.registry import EncrId, IntegId

SK, GSA, KD, AUTH = 46, 51, 52, 39


def payload(next_payload: int, body: bytes) -> bytes:
    return bytes([next_payload, 0]) + (4 + len(body)).to_bytes(2, "big") + body


def ike_header(length: int, message_id: int = 5) -> bytes:
    spi = bytes.fromhex("0123456789abcdef fedcba9876543210")
    return (
        spi
        + bytes([SK, 0x20, 41, 0x08])
        + message_id.to_bytes(4, "big")
        + length.to_bytes(4, "big")
    )


def sk_header(length: int, first: int = GSA, reserved: int = 0) -> bytes:
    return bytes([first, reserved]) + length.to_bytes(2, "big")


# GSA (announced by the SK header) then KD, whose Next Payload is AUTH: correct
# generic headers, arbitrary bodies.
BEFORE_AUTH = payload(KD, b"\x06\x10\x00\x20" + bytes(28)) + payload(AUTH, b"\x06\x10" + bytes(40))


def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


KEYS = [ed_key, ec_key]


# --- A | P ----------------------------------------------------------------------------------


def test_rekey_signed_octets_known_bytes() -> None:
    header = ike_header(0xDEADBEEF)
    skh = sk_header(0x1234, first=AUTH, reserved=0x5A)
    inner = bytes(range(10))
    expected = (
        bytes.fromhex("0123456789abcdeffedcba9876543210")
        + bytes.fromhex("2e202908")  # Next Payload SK, 2.0, GSA_REKEY, I
        + bytes.fromhex("00000005")  # Message ID
        + bytes.fromhex("0000002a")  # AdjustedLen = 28 + 4 + 10 = 42
        + bytes.fromhex("275a000e")  # SK header: next AUTH, RESERVED kept, AdjustedPldLen 14
        + inner
    )
    assert rekey_auth.rekey_signed_octets(header, skh, inner) == expected


def test_rekey_signed_octets_ignores_incoming_lengths() -> None:
    inner = b"P" * 33
    a = rekey_auth.rekey_signed_octets(ike_header(1), sk_header(2), inner)
    b = rekey_auth.rekey_signed_octets(ike_header(999), sk_header(65535), inner)
    assert a == b
    assert int.from_bytes(a[24:28], "big") == len(a) == 28 + 4 + 33
    assert int.from_bytes(a[30:32], "big") == 4 + 33


@pytest.mark.parametrize(("hdr_len", "skh_len"), [(27, 4), (29, 4), (28, 3), (28, 5)])
def test_rekey_signed_octets_rejects_bad_headers(hdr_len: int, skh_len: int) -> None:
    with pytest.raises(ValueError):
        rekey_auth.rekey_signed_octets(bytes(hdr_len), bytes(skh_len), b"")


def test_rekey_signed_octets_rejects_overflow() -> None:
    with pytest.raises(ValueError, match="overflow"):
        rekey_auth.rekey_signed_octets(bytes(28), bytes(4), bytes(65532))


# --- the AUTH payload while signing ---------------------------------------------------------


def test_template_layout_ed25519() -> None:
    template = rekey_auth.rekey_auth_template(ALG_ID_ED25519, 64)
    assert template == (
        bytes.fromhex("00000050")  # next 0, C/RESERVED 0, Payload Length 80
        + bytes.fromhex("0e000000")  # Auth Method 14, RESERVED
        + bytes.fromhex("07300506032b6570")  # ASN.1 Length | AlgorithmIdentifier
        + bytes(64)  # Signature Value zeroed
    )


def test_template_layout_ecdsa() -> None:
    template = rekey_auth.rekey_auth_template(ALG_ID_ECDSA_SHA256, 71, next_payload=KD)
    assert template[:4] == bytes([KD, 0]) + (8 + 1 + 12 + 71).to_bytes(2, "big")
    assert template[4:8] == bytes([14, 0, 0, 0])
    assert template[8:21] == bytes([12]) + ALG_ID_ECDSA_SHA256
    assert template[21:] == bytes(71)


@pytest.mark.parametrize(("sig_len", "next_payload"), [(0, 0), (-1, 0), (64, 256), (64, -1)])
def test_template_rejects_bad_arguments(sig_len: int, next_payload: int) -> None:
    with pytest.raises(ValueError):
        rekey_auth.rekey_auth_template(ALG_ID_ED25519, sig_len, next_payload)


# --- signing and verifying ------------------------------------------------------------------


def _verify_independently(pub: Any, header: bytes, skh: bytes, inner: bytes, sig: bytes) -> None:
    """Rebuild A | P by hand from the RFC text and verify with cryptography directly."""
    adjusted_pld = 4 + len(inner)
    a = (
        header[:24]
        + (28 + adjusted_pld).to_bytes(4, "big")
        + skh[:2]
        + adjusted_pld.to_bytes(2, "big")
    )
    if isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(sig, a + inner)
    else:
        pub.verify(sig, a + inner, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("make", KEYS)
def test_sign_rekey_auth_then_verify(make: Any) -> None:
    key = make()
    header, skh = ike_header(0), sk_header(0)
    for _ in range(8 if isinstance(key, ec.EllipticCurvePrivateKey) else 1):
        auth = rekey_auth.sign_rekey_auth(key, header, skh, BEFORE_AUTH)
        alg_id = algorithm_id_for(key)
        signature = auth[8 + 1 + len(alg_id) :]
        # The signed P had the same AUTH payload with the Signature Value zeroed.
        template = rekey_auth.rekey_auth_template(alg_id, len(signature))
        assert auth[: -len(signature)] == template[: -len(signature)]
        assert int.from_bytes(auth[2:4], "big") == len(auth)
        _verify_independently(key.public_key(), header, skh, BEFORE_AUTH + template, signature)
        inner = BEFORE_AUTH + auth
        rekey_auth.verify_rekey_auth(key.public_key(), header, skh, inner, len(BEFORE_AUTH))


def test_ecdsa_signature_lengths_vary_but_always_match() -> None:
    key = ec_key()
    lengths = set()
    for i in range(24):
        auth = rekey_auth.sign_rekey_auth(key, ike_header(0, i), sk_header(0), BEFORE_AUTH)
        sig_len = len(auth) - 8 - 13
        lengths.add(sig_len)
        assert int.from_bytes(auth[2:4], "big") == len(auth)
        rekey_auth.verify_rekey_auth(
            key.public_key(), ike_header(0, i), sk_header(0), BEFORE_AUTH + auth, len(BEFORE_AUTH)
        )
    assert lengths <= {68, 69, 70, 71, 72}


@pytest.mark.parametrize("make", KEYS)
def test_sign_rekey_verify_rekey_raw(make: Any) -> None:
    key = make()
    alg_id = algorithm_id_for(key)
    inner = BEFORE_AUTH + rekey_auth.rekey_auth_template(alg_id, 64)
    signature = rekey_auth.sign_rekey(key, ike_header(0), sk_header(0), inner)
    rekey_auth.verify_rekey(
        key.public_key(), alg_id, ike_header(77), sk_header(9), inner, signature
    )
    with pytest.raises(AuthenticationFailed):
        rekey_auth.verify_rekey(
            key.public_key(), alg_id, ike_header(0, 6), sk_header(0), inner, signature
        )


@pytest.mark.parametrize("make", KEYS)
@pytest.mark.parametrize(
    "suite",
    [
        SkSuite(EncrId.ENCR_AES_GCM_16, 256),
        SkSuite(EncrId.ENCR_AES_CBC, 128, IntegId.AUTH_HMAC_SHA2_256_128),
    ],
    ids=["gcm", "cbc"],
)
def test_full_gsa_rekey_message(make: Any, suite: SkSuite) -> None:
    """GCKS: sign, restore lengths, encrypt. GM: decrypt, verify (RFC 9838 §2.4.1.1)."""
    key = make()
    # GCKS side: the lengths in the header are placeholders while signing.
    auth = rekey_auth.sign_rekey_auth(key, ike_header(0), sk_header(0), BEFORE_AUTH)
    inner = BEFORE_AUTH + auth
    body_len = suite.body_len(len(inner))
    header = ike_header(28 + 4 + body_len)
    skh = sk_header(4 + body_len)
    key_e, key_a = os.urandom(suite.encr_key_len), os.urandom(suite.integ_key_len)
    body = sk.seal(suite, key_e, key_a, header + skh, inner, os.urandom(suite.iv_len))
    message = header + skh + body
    assert len(message) == int.from_bytes(message[24:28], "big")
    # GM side: the received header carries the real lengths.
    got_header, got_skh, got_body = message[:28], message[28:32], message[32:]
    plain = sk.open(suite, key_e, key_a, got_header + got_skh, got_body)
    assert plain == inner
    rekey_auth.verify_rekey_auth(
        key.public_key(), got_header, got_skh, plain, len(BEFORE_AUTH), algorithm_id_for(key)
    )


# --- rejection ------------------------------------------------------------------------------


def _signed(make: Any = ed_key) -> tuple[Any, bytes, bytes, bytes]:
    key = make()
    auth = rekey_auth.sign_rekey_auth(key, ike_header(0), sk_header(0), BEFORE_AUTH)
    return key, ike_header(0), sk_header(0), BEFORE_AUTH + auth


@pytest.mark.parametrize("make", KEYS)
@pytest.mark.parametrize("where", ["kd-body", "gsa-header", "signature", "auth-reserved"])
def test_modified_inner_payloads_fail(make: Any, where: str) -> None:
    key, header, skh, inner = _signed(make)
    index = {
        "kd-body": 10,
        "gsa-header": 0,
        "signature": len(inner) - 1,
        "auth-reserved": len(BEFORE_AUTH) + 6,
    }[where]
    bad = bytearray(inner)
    bad[index] ^= 0x04
    with pytest.raises(AuthenticationFailed):
        rekey_auth.verify_rekey_auth(key.public_key(), header, skh, bytes(bad), len(BEFORE_AUTH))


@pytest.mark.parametrize("where", [0, 16, 18, 19, 20, 23])
def test_modified_ike_header_fails(where: int) -> None:
    key, header, skh, inner = _signed()
    bad = bytearray(header)
    bad[where] ^= 0x01
    with pytest.raises(AuthenticationFailed):
        rekey_auth.verify_rekey_auth(key.public_key(), bytes(bad), skh, inner, len(BEFORE_AUTH))


@pytest.mark.parametrize(
    "skh", [sk_header(0, first=KD), sk_header(0, reserved=1)], ids=["next", "reserved"]
)
def test_modified_sk_header_fails(skh: bytes) -> None:
    key, header, _, inner = _signed()
    with pytest.raises(AuthenticationFailed):
        rekey_auth.verify_rekey_auth(key.public_key(), header, skh, inner, len(BEFORE_AUTH))


def test_other_key_fails() -> None:
    _, header, skh, inner = _signed()
    with pytest.raises(AuthenticationFailed):
        rekey_auth.verify_rekey_auth(ed_key().public_key(), header, skh, inner, len(BEFORE_AUTH))


def test_key_of_other_algorithm_fails() -> None:
    _, header, skh, inner = _signed(ed_key)
    with pytest.raises(AuthenticationFailed, match="does not match"):
        rekey_auth.verify_rekey_auth(ec_key().public_key(), header, skh, inner, len(BEFORE_AUTH))


def test_wrong_auth_method_fails() -> None:
    key, header, skh, inner = _signed()
    bad = bytearray(inner)
    bad[len(BEFORE_AUTH) + 4] = 2  # SHARED_KEY_MIC
    with pytest.raises(AuthenticationFailed, match="Auth Method 2"):
        rekey_auth.verify_rekey_auth(key.public_key(), header, skh, bytes(bad), len(BEFORE_AUTH))


def test_unexpected_algorithm_identifier_fails() -> None:
    key, header, skh, inner = _signed()
    with pytest.raises(AuthenticationFailed, match="differs"):
        rekey_auth.verify_rekey_auth(
            key.public_key(), header, skh, inner, len(BEFORE_AUTH), ALG_ID_ECDSA_SHA256
        )


def test_unzeroed_signing_is_not_accepted() -> None:
    """A signature over P with the real signature in place (not zeroed) must not verify."""
    key = ed_key()
    template = rekey_auth.rekey_auth_template(ALG_ID_ED25519, 64)
    first = rekey_auth.sign_rekey(key, ike_header(0), sk_header(0), BEFORE_AUTH + template)
    filled = BEFORE_AUTH + template[:-64] + first
    second = rekey_auth.sign_rekey(key, ike_header(0), sk_header(0), filled)
    with pytest.raises(AuthenticationFailed):
        rekey_auth.verify_rekey_auth(
            key.public_key(),
            ike_header(0),
            sk_header(0),
            BEFORE_AUTH + template[:-64] + second,
            len(BEFORE_AUTH),
        )


@pytest.mark.parametrize(
    ("inner_tail", "error"),
    [
        (b"", Truncated),  # no AUTH payload at all
        (payload(0, b"\x0e\x00\x00"), Truncated),  # 7 octets: header cut short
        (bytes([0, 0, 0x01, 0x00]) + bytes([14, 0, 0, 0]) + b"\x07", BadLength),  # length past end
        (bytes([0, 0, 0x00, 0x06]) + bytes([14, 0, 0, 0]), BadLength),  # length below 8
        (payload(0, bytes([14, 0, 0, 0]) + b"\x07\x30\x05"), Truncated),  # alg id cut
        (payload(0, bytes([14, 0, 0, 0]) + b"\x07" + ALG_ID_ED25519), Truncated),  # no signature
        (payload(0, bytes([14, 0, 0, 0]) + b"\x00sig"), BadValue),  # ASN.1 Length 0
    ],
    ids=[
        "missing",
        "short-header",
        "length-past-end",
        "length-too-small",
        "alg-cut",
        "no-sig",
        "asn1-zero",
    ],
)
def test_malformed_auth_payload(inner_tail: bytes, error: type[DecodeError]) -> None:
    inner = BEFORE_AUTH + inner_tail
    with pytest.raises(error):
        rekey_auth.verify_rekey_auth(
            ed_key().public_key(), ike_header(0), sk_header(0), inner, len(BEFORE_AUTH)
        )


def test_negative_offset_is_truncated() -> None:
    _, header, skh, inner = _signed()
    with pytest.raises(Truncated):
        rekey_auth.verify_rekey_auth(ed_key().public_key(), header, skh, inner, -1)


def test_encoded_auth_matches_signature_module() -> None:
    _, _, _, inner = _signed()
    auth = inner[len(BEFORE_AUTH) :]
    signature = auth[16:]
    assert auth[8:] == encode_signature_auth(ALG_ID_ED25519, signature)
    assert len(signature) == 64
