"""Who we are and how we prove it; whom we trust and how we check them.

Used by both ends of the registration IKE SA (RFC 7296 §2.15, RFC 7427):
a pre-shared key per peer or per group, or a signing key with an X.509
certificate issued by a CA both ends trust.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mrkm.crypto import signatures
from mrkm.errors import AuthenticationFailed
from mrkm.wire.registry import IdType

if TYPE_CHECKING:  # X.509 loads on first use: a PSK-only GM never pays for it (~3 MiB)
    from cryptography import x509

__all__ = ["Identity", "LocalCredentials", "PeerTrust", "identity_matches_cert"]

CERT_ENCODING_X509_SIGNATURE = 4  # RFC 7296 §3.6


@dataclass(frozen=True)
class Identity:
    """An IKE identity: ID Type and its data (RFC 7296 §3.5)."""

    id_type: int
    data: bytes

    @classmethod
    def fqdn(cls, name: str) -> Identity:
        """An ID_FQDN identity, the form MRKM uses for routers and the GCKS."""
        return cls(IdType.ID_FQDN, name.encode("ascii"))

    @classmethod
    def key_id(cls, value: bytes) -> Identity:
        """An ID_KEY_ID identity; also the mandatory IDg form (RFC 9838 §4.2)."""
        return cls(IdType.ID_KEY_ID, value)

    def __str__(self) -> str:
        try:
            kind = IdType(self.id_type).name
        except ValueError:
            kind = str(self.id_type)
        text = self.data.decode("ascii", "replace") if self.data.isascii() else self.data.hex()
        return f"{kind}:{text}"


@dataclass(frozen=True)
class LocalCredentials:
    """Our identity and either a PSK or a signing key with its certificate."""

    identity: Identity
    psk: bytes | None = field(default=None, repr=False)
    signing_key: signatures.SigningKey | None = field(default=None, repr=False)
    certificate: x509.Certificate | None = None

    def __post_init__(self) -> None:
        if (self.psk is None) == (self.signing_key is None):
            raise ValueError("local credentials need exactly one of psk and signing_key")
        if self.signing_key is not None and self.certificate is None:
            raise ValueError("a signing key needs its certificate (sent in the CERT payload)")


@dataclass(frozen=True)
class PeerTrust:
    """How to check a peer: PSKs by peer identity, and/or a CA for certificates."""

    psks: Mapping[Identity, bytes] = field(default_factory=dict, repr=False)
    group_psk: bytes | None = field(default=None, repr=False)
    ca: x509.Certificate | None = None
    authorize: Callable[[Identity], bool] | None = None

    def psk_for(self, peer: Identity) -> bytes | None:
        """The PSK this peer must prove: its own, else the group's."""
        return self.psks.get(peer, self.group_psk)

    def verify_certificate(self, peer: Identity, der: bytes, now: float) -> signatures.VerifyingKey:
        """Check ``der`` against our CA at time ``now`` and return its public key."""
        if self.ca is None:
            raise AuthenticationFailed("peer sent a certificate but no CA is trusted")
        from cryptography import x509

        from mrkm.crypto import certs

        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise AuthenticationFailed(f"peer certificate does not parse: {exc}") from None
        certs.verify_chain(cert, self.ca, datetime.fromtimestamp(now, UTC))
        if not identity_matches_cert(peer, cert):
            raise AuthenticationFailed(f"identity {peer} is not in the peer's certificate")
        key = certs.cert_public_key(cert)
        return key


def identity_matches_cert(identity: Identity, cert: x509.Certificate) -> bool:
    """True when the certificate names this identity (RFC 7296 §3.5, RFC 4945 §3.1)."""
    from cryptography import x509

    if identity.id_type == IdType.ID_DER_ASN1_DN:
        return cert.subject.public_bytes() == identity.data
    if identity.id_type != IdType.ID_FQDN:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    name = identity.data.decode("ascii", "replace").lower()
    return name in (n.lower() for n in san.get_values_for_type(x509.DNSName))
