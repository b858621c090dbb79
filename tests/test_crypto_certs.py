"""The testbed PKI helpers (RFC 5280), with Ed25519 and ECDSA P-256."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mrkm.crypto import certs
from mrkm.crypto.signatures import UnsupportedKeyType, algorithm_id_for, sign, verify
from mrkm.errors import AuthenticationFailed

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


PAIRS = [(ca, leaf) for ca in (ed_key, ec_key) for leaf in (ed_key, ec_key)]
PAIR_IDS = [f"ca-{ca.__name__}-leaf-{leaf.__name__}" for ca, leaf in PAIRS]


def pki(
    make_ca_key: Any = ed_key, make_leaf_key: Any = ed_key
) -> tuple[Any, x509.Certificate, Any, x509.Certificate]:
    ca_key = make_ca_key()
    ca = certs.make_ca("MRKM test CA", ca_key, T0, 365)
    leaf_key = make_leaf_key()
    leaf = certs.issue_cert(ca, ca_key, "gcks", leaf_key.public_key(), T0, 30, "gcks.mrkm.test")
    return ca_key, ca, leaf_key, leaf


@pytest.mark.parametrize(("make_ca_key", "make_leaf_key"), PAIRS, ids=PAIR_IDS)
def test_chain_verifies(make_ca_key: Any, make_leaf_key: Any) -> None:
    _, ca, leaf_key, leaf = pki(make_ca_key, make_leaf_key)
    certs.verify_chain(leaf, ca, T0 + dt.timedelta(days=1))
    pub = certs.cert_public_key(leaf)
    signature = sign(leaf_key, b"signed octets")
    verify(pub, algorithm_id_for(pub), b"signed octets", signature)


def test_ca_fields() -> None:
    _, ca, _, _ = pki()
    assert ca.subject == ca.issuer
    assert ca.subject.rfc4514_string() == "CN=MRKM test CA"
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert ca.not_valid_before_utc == T0
    assert ca.not_valid_after_utc == T0 + dt.timedelta(days=365)
    ca.verify_directly_issued_by(ca)


def test_leaf_fields() -> None:
    _, ca, leaf_key, leaf = pki()
    assert leaf.issuer == ca.subject
    assert leaf.subject.rfc4514_string() == "CN=gcks"
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gcks.mrkm.test"]
    assert leaf.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == leaf_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def test_no_san_when_not_asked() -> None:
    ca_key = ed_key()
    ca = certs.make_ca("CA", ca_key, T0, 10)
    leaf = certs.issue_cert(ca, ca_key, "gm", ed_key().public_key(), T0, 10, None)
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_serial_is_deterministic_and_positive() -> None:
    ca_key = ed_key()
    a = certs.make_ca("CA", ca_key, T0, 10)
    b = certs.make_ca("CA", ca_key, T0, 10)
    c = certs.make_ca("CA", ca_key, T0, 11)
    assert a.serial_number == b.serial_number != c.serial_number
    assert 0 < a.serial_number < 2**127
    # Ed25519 signatures are deterministic too, so the whole certificate repeats.
    assert a.public_bytes(serialization.Encoding.DER) == b.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (T0 - dt.timedelta(seconds=1), "not valid before"),
        (T0 + dt.timedelta(days=30, seconds=1), "certificate expired"),
        (T0 + dt.timedelta(days=366), "CA certificate expired"),
    ],
    ids=["early", "leaf-expired", "ca-expired"],
)
def test_validity_window(when: dt.datetime, reason: str) -> None:
    _, ca, _, leaf = pki()
    with pytest.raises(AuthenticationFailed, match=reason):
        certs.verify_chain(leaf, ca, when)


def test_validity_edges_are_inclusive() -> None:
    _, ca, _, leaf = pki()
    certs.verify_chain(leaf, ca, T0)
    certs.verify_chain(leaf, ca, T0 + dt.timedelta(days=30))


def test_other_ca_with_same_name_fails_signature() -> None:
    _, _, _, leaf = pki()
    impostor = certs.make_ca("MRKM test CA", ed_key(), T0, 365)
    with pytest.raises(AuthenticationFailed, match="signature"):
        certs.verify_chain(leaf, impostor, T0)


def test_other_ca_name_fails_issuer() -> None:
    _, _, _, leaf = pki()
    other = certs.make_ca("Another CA", ed_key(), T0, 365)
    with pytest.raises(AuthenticationFailed, match="issuer"):
        certs.verify_chain(leaf, other, T0)


def test_tampered_certificate_fails() -> None:
    _, ca, _, leaf = pki()
    der = bytearray(leaf.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    tampered = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises(AuthenticationFailed, match="signature"):
        certs.verify_chain(tampered, ca, T0)


def test_leaf_cannot_act_as_ca() -> None:
    _, _, leaf_key, leaf = pki()
    grandchild = certs.issue_cert(leaf, leaf_key, "gm", ed_key().public_key(), T0, 10, None)
    with pytest.raises(AuthenticationFailed, match="not marked as a CA"):
        certs.verify_chain(grandchild, leaf, T0)


def test_naive_datetimes_are_refused() -> None:
    ca_key = ed_key()
    naive = dt.datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        certs.make_ca("CA", ca_key, naive, 10)
    _, ca, _, leaf = pki()
    with pytest.raises(ValueError, match="timezone-aware"):
        certs.verify_chain(leaf, ca, naive)


def test_bad_validity_days() -> None:
    with pytest.raises(ValueError, match="one day"):
        certs.make_ca("CA", ed_key(), T0, 0)


def test_unsupported_keys() -> None:
    with pytest.raises(UnsupportedKeyType):
        certs.make_ca("CA", ec.generate_private_key(ec.SECP384R1()), T0, 10)  # type: ignore[arg-type]
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "rsa")])
    rsa_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=1))
        .sign(rsa_key, hashes.SHA256())
    )
    with pytest.raises(UnsupportedKeyType):
        certs.cert_public_key(rsa_cert)
