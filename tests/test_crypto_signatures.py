"""RFC 7427 signatures with Ed25519 (RFC 8032 vectors) and ECDSA P-256."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from mrkm.crypto import signatures as sig
from mrkm.crypto.signatures import ALG_ID_ECDSA_SHA256, ALG_ID_ED25519, UnsupportedKeyType
from mrkm.errors import AuthenticationFailed, BadValue, CryptoError, DecodeError, Truncated

RFC8032 = json.loads((Path(__file__).parent / "vectors" / "rfc8032_ed25519.json").read_text())[
    "vectors"
]


def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


KEYS = [ed_key, ec_key]


# --- RFC 8032 §7.1 --------------------------------------------------------------------------


@pytest.mark.parametrize("vector", RFC8032, ids=lambda v: v["id"])
def test_ed25519_rfc8032(vector: dict[str, Any]) -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["secret_key"]))
    pub = key.public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw == bytes.fromhex(vector["public_key"])
    message = bytes.fromhex(vector["message"])
    signature = sig.sign(key, message)
    assert signature == bytes.fromhex(vector["signature"])
    sig.verify(pub, ALG_ID_ED25519, message, signature)


@pytest.mark.parametrize("vector", RFC8032, ids=lambda v: v["id"])
def test_ed25519_rfc8032_verify_only(vector: dict[str, Any]) -> None:
    pub = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public_key"]))
    message = bytes.fromhex(vector["message"])
    signature = bytes.fromhex(vector["signature"])
    sig.verify(pub, ALG_ID_ED25519, message, signature)
    with pytest.raises(AuthenticationFailed):
        sig.verify(pub, ALG_ID_ED25519, message + b"\x00", signature)


# --- AlgorithmIdentifiers -------------------------------------------------------------------


def _cert_signed_by(
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "alg-id")])
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(when)
        .not_valid_after(when + dt.timedelta(days=1))
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


@pytest.mark.parametrize(
    ("make", "alg_id"), [(ed_key, ALG_ID_ED25519), (ec_key, ALG_ID_ECDSA_SHA256)]
)
def test_algorithm_identifier_matches_x509_encoding(make: Any, alg_id: bytes) -> None:
    key = make()
    assert sig.algorithm_id_for(key) == alg_id
    assert sig.algorithm_id_for(key.public_key()) == alg_id
    # X.509 encodes the signature AlgorithmIdentifier the same way (RFC 5280 §4.1.1.2):
    # Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }.
    cert = _cert_signed_by(key)
    der = cert.public_bytes(serialization.Encoding.DER)
    outer_header = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    start = outer_header + len(cert.tbs_certificate_bytes)
    assert der[start : start + len(alg_id)] == alg_id


def test_algorithm_identifier_bytes() -> None:
    assert ALG_ID_ED25519.hex(" ") == "30 05 06 03 2b 65 70"
    assert ALG_ID_ECDSA_SHA256.hex(" ") == "30 0a 06 08 2a 86 48 ce 3d 04 03 02"


# --- sign / verify --------------------------------------------------------------------------


@pytest.mark.parametrize("make", KEYS)
def test_sign_verify(make: Any) -> None:
    key = make()
    data = b"InitiatorSignedOctets"
    signature = sig.sign(key, data)
    sig.verify(key.public_key(), sig.algorithm_id_for(key), data, signature)


def test_ecdsa_signature_is_der_ecdsa_sig_value() -> None:
    key = ec_key()
    signature = sig.sign(key, b"data")
    r, s = decode_dss_signature(signature)
    assert r > 0 and s > 0
    assert 8 <= len(signature) <= 72


def test_ed25519_signature_is_64_octets_and_deterministic() -> None:
    key = ed_key()
    assert sig.sign(key, b"x") == sig.sign(key, b"x")
    assert len(sig.sign(key, b"x")) == 64


@pytest.mark.parametrize("make", KEYS)
@pytest.mark.parametrize("change", ["data", "signature", "key", "truncated", "empty"])
def test_verify_rejects(make: Any, change: str) -> None:
    key = make()
    data = b"ResponderSignedOctets"
    signature = sig.sign(key, data)
    pub = key.public_key()
    if change == "data":
        data += b"!"
    elif change == "signature":
        signature = signature[:-1] + bytes([signature[-1] ^ 1])
    elif change == "key":
        pub = make().public_key()
    elif change == "truncated":
        signature = signature[:-2]
    else:
        signature = b""
    with pytest.raises(AuthenticationFailed):
        sig.verify(pub, sig.algorithm_id_for(pub), data, signature)


@pytest.mark.parametrize(
    ("make", "wrong"), [(ed_key, ALG_ID_ECDSA_SHA256), (ec_key, ALG_ID_ED25519), (ed_key, b"")]
)
def test_verify_rejects_algorithm_key_mismatch(make: Any, wrong: bytes) -> None:
    key = make()
    signature = sig.sign(key, b"d")
    with pytest.raises(AuthenticationFailed, match="does not match"):
        sig.verify(key.public_key(), wrong, b"d", signature)


def test_p384_is_unsupported() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(UnsupportedKeyType, match="P-256"):
        sig.algorithm_id_for(key)
    with pytest.raises(UnsupportedKeyType):
        sig.sign(key, b"d")
    with pytest.raises(AuthenticationFailed):
        sig.verify(key.public_key(), ALG_ID_ECDSA_SHA256, b"d", b"\x30\x00")
    assert issubclass(UnsupportedKeyType, CryptoError)


# --- Authentication Data encoding (RFC 7427 §3) ---------------------------------------------


@pytest.mark.parametrize("alg_id", [ALG_ID_ED25519, ALG_ID_ECDSA_SHA256])
def test_signature_auth_encode_decode(alg_id: bytes) -> None:
    signature = bytes(range(64))
    data = sig.encode_signature_auth(alg_id, signature)
    assert data == bytes([len(alg_id)]) + alg_id + signature
    assert sig.decode_signature_auth(data) == (alg_id, signature)


def test_signature_auth_known_bytes() -> None:
    data = sig.encode_signature_auth(ALG_ID_ED25519, b"\xaa" * 64)
    assert data[:8].hex() == "07300506032b6570"
    assert len(data) == 1 + 7 + 64


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", Truncated),
        (b"\x07\x30\x05\x06", Truncated),
        (b"\x07" + ALG_ID_ED25519, Truncated),
        (b"\x00\x30\x05", BadValue),
        (b"\x01\x30abc", BadValue),
        (b"\x07\x31\x05\x06\x03\x2b\x65\x70sig", BadValue),
        (b"\x07\x30\x06\x06\x03\x2b\x65\x70sig", BadValue),
    ],
    ids=[
        "empty",
        "short-alg",
        "no-signature",
        "zero-length",
        "one-octet",
        "not-sequence",
        "bad-len",
    ],
)
def test_signature_auth_malformed(data: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        sig.decode_signature_auth(data)


@pytest.mark.parametrize("alg_id", [b"", bytes(256)])
def test_encode_signature_auth_rejects_bad_alg_id(alg_id: bytes) -> None:
    with pytest.raises(ValueError):
        sig.encode_signature_auth(alg_id, b"s")


# --- AUTH_KEY: SubjectPublicKeyInfo ---------------------------------------------------------


@pytest.mark.parametrize("make", KEYS)
def test_public_key_der_roundtrip(make: Any) -> None:
    pub = make().public_key()
    der = sig.public_key_der(pub)
    loaded = sig.load_public_key_der(der)
    assert sig.public_key_der(loaded) == der
    assert der[0] == 0x30


def test_public_key_der_ed25519_known_prefix() -> None:
    pub = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(RFC8032[0]["public_key"]))
    # RFC 8410 §10.1: 302a300506032b6570032100 | 32-octet key.
    assert sig.public_key_der(pub) == bytes.fromhex(
        "302a300506032b6570032100" + RFC8032[0]["public_key"]
    )


@pytest.mark.parametrize("junk", [b"", b"\x30\x00", b"not a key", bytes(91)])
def test_load_public_key_der_junk(junk: bytes) -> None:
    with pytest.raises(BadValue):
        sig.load_public_key_der(junk)


def test_load_public_key_der_unsupported_types() -> None:
    rsa_pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    rsa_der = rsa_pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(UnsupportedKeyType):
        sig.load_public_key_der(rsa_der)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    p384_der = p384.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(UnsupportedKeyType):
        sig.load_public_key_der(p384_der)
