"""Small X.509 helpers for the MRKM testbed PKI (RFC 5280).

The testbed gives each GM and the GCKS a certificate from one test CA, sent in
CERT payloads of GSA_AUTH (RFC 7296 §3.6, encoding 4 "X.509 Certificate -
Signature"). These helpers build such a CA and its end-entity certificates and
check a certificate against the CA. They read no clock: every time is passed
in, as a timezone-aware ``datetime``. Keys are Ed25519 or ECDSA P-256 (see
:mod:`mrkm.crypto.signatures`).

Serial numbers are derived from the certificate's contents (subject, key,
validity), so the same inputs give the same serial; RFC 5280 §4.1.2.2 only
asks for uniqueness per CA, which distinct subjects or keys give.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from mrkm.crypto.signatures import (
    SigningKey,
    UnsupportedKeyType,
    VerifyingKey,
    algorithm_id_for,
    public_key_der,
)
from mrkm.errors import AuthenticationFailed

__all__ = [
    "cert_public_key",
    "issue_cert",
    "make_ca",
    "verify_chain",
]


def _aware(when: datetime, what: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return when


def _hash_for(key: SigningKey) -> hashes.SHA256 | None:
    # Ed25519 signs the TBSCertificate itself; ECDSA certificates use
    # ecdsa-with-SHA256 (RFC 8410, RFC 5758 §3.2).
    algorithm_id_for(key)
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _serial(subject: x509.Name, pub: VerifyingKey, not_before: datetime, days: int) -> int:
    digest = hashlib.sha256(
        subject.public_bytes()
        + public_key_der(pub)
        + not_before.isoformat().encode()
        + days.to_bytes(4, "big")
    ).digest()
    # Positive and at most 20 octets (RFC 5280 §4.1.2.2): take 127 bits, never 0.
    return (int.from_bytes(digest[:16], "big") >> 1) | 1


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(ca: bool) -> x509.KeyUsage:
    """Signing only; a CA also signs certificates and CRLs (RFC 5280 §4.2.1.3)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(name: str, key: SigningKey, not_before: datetime, days: int) -> x509.Certificate:
    """Create a self-signed CA certificate with CN ``name``, valid ``days`` days.

    The CA may only sign end-entity certificates (basicConstraints cA, path
    length 0, RFC 5280 §4.2.1.9).
    """
    _aware(not_before, "not_before")
    if days <= 0:
        raise ValueError(f"validity must be at least one day, got {days}")
    subject = _name(name)
    pub = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(pub)
        .serial_number(_serial(subject, pub, not_before, days))
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    )
    return builder.sign(key, _hash_for(key))


def issue_cert(
    ca_cert: x509.Certificate,
    ca_key: SigningKey,
    subject_name: str,
    subject_pub: VerifyingKey,
    not_before: datetime,
    days: int,
    san_dns: str | None,
) -> x509.Certificate:
    """Issue an end-entity certificate for ``subject_pub`` signed by the CA.

    ``san_dns``, if given, becomes a dNSName subjectAltName, which a peer can
    match against an ID_FQDN identity (RFC 7296 §3.5, RFC 4945).
    """
    _aware(not_before, "not_before")
    if days <= 0:
        raise ValueError(f"validity must be at least one day, got {days}")
    algorithm_id_for(subject_pub)
    subject = _name(subject_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(subject_pub)
        .serial_number(_serial(subject, subject_pub, not_before, days))
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_pub), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if san_dns is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(san_dns)]), critical=False
        )
    return builder.sign(ca_key, _hash_for(ca_key))


def _check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise AuthenticationFailed(
            f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}"
        )
    if now > cert.not_valid_after_utc:
        raise AuthenticationFailed(f"{what} expired at {cert.not_valid_after_utc.isoformat()}")


def verify_chain(cert: x509.Certificate, ca_cert: x509.Certificate, now: datetime) -> None:
    """Check that ``cert`` was issued by ``ca_cert`` and both are valid at ``now``.

    Checks, in order (RFC 5280 §6.1.3): the CA certificate is a CA
    (basicConstraints cA), ``cert``'s issuer is the CA's subject and its
    signature verifies with the CA key, and ``now`` lies within both
    validity periods. Any failure raises
    :class:`mrkm.errors.AuthenticationFailed` naming the reason.
    """
    _aware(now, "now")
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise AuthenticationFailed("CA certificate has no basicConstraints") from None
    if not constraints.ca:
        raise AuthenticationFailed("CA certificate is not marked as a CA (basicConstraints)")
    if cert.issuer != ca_cert.subject:
        raise AuthenticationFailed(
            f"certificate issuer {cert.issuer.rfc4514_string()} is not the CA "
            f"{ca_cert.subject.rfc4514_string()}"
        )
    try:
        cert.verify_directly_issued_by(ca_cert)
    except InvalidSignature:
        raise AuthenticationFailed(
            "certificate signature does not verify with the CA key"
        ) from None
    except (ValueError, TypeError) as exc:
        raise AuthenticationFailed(f"certificate cannot be checked against the CA: {exc}") from None
    _check_validity(ca_cert, now, "CA certificate")
    _check_validity(cert, now, "certificate")


def cert_public_key(cert: x509.Certificate) -> VerifyingKey:
    """Return the certificate's Ed25519 or P-256 public key.

    Raises :class:`mrkm.crypto.signatures.UnsupportedKeyType` for other keys.
    """
    key = cert.public_key()
    if isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        algorithm_id_for(key)
        return key
    raise UnsupportedKeyType(f"certificate holds an unsupported {type(key).__name__} key")
