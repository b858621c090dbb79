"""Digest algorithms shared by the routing-protocol authentication codecs.

The routing protocols that MRKM keys do not use IKEv2's truncated HMACs: they
use Keyed-MD5 (RFC 2328 App. D.4.3) or full-length HMAC-SHA digests with the
"Apad" construction (RFC 5709 §3.3, RFC 7166 §4.5). AH for PIM (RFC 5796)
uses the truncated IPsec transforms (RFC 2404, RFC 4868 §2). This module maps
MRKM's integrity transform IDs (:class:`~mrkm.wire.registry.IntegId`) to those
algorithms and implements the key preparations the RFCs and the daemons use.

Callers pass these functions local configuration (transform IDs, keys); a bad
value there is a programming error and raises :class:`ValueError`. Bytes from
the network are handled in :mod:`mrkm.crypto.routing_ospf` and
:mod:`mrkm.crypto.routing_ah`, which raise only :mod:`mrkm.errors` types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes, hmac

from mrkm.crypto.errors import UnsupportedTransform
from mrkm.wire.registry import IntegId

__all__ = [
    "APAD_WORD",
    "KeyPreparation",
    "digest_len",
]

#: The 4-octet word that fills the digest's place while it is computed
#: (RFC 5709 §3.3 "Apad", reused by RFC 7166 §4.5).
APAD_WORD = bytes.fromhex("878FE1F3")

#: How an HMAC-SHA key becomes the HMAC key:
#: ``"rfc5709"``: RFC 5709 §3.3 (and RFC 7166 §4.5): a key longer than L octets
#: is hashed first, a shorter one is zero-padded to L;
#: ``"plain"``: the key goes to RFC 2104 HMAC unchanged (hashed only when it is
#: longer than the block size B), which is what BIRD 2.0.12 does.
#: The two agree unless L < len(key) <= B.
KeyPreparation = Literal["rfc5709", "plain"]


@dataclass(frozen=True)
class DigestAlgorithm:
    """One digest: the hash behind it, its output length and how it is keyed."""

    hash_factory: type[hashes.HashAlgorithm]
    output_len: int
    keyed_md5: bool = False
    #: Exact key length the IPsec transform requires (RFC 2404 §3, RFC 4868 §2.1.1),
    #: or None when any length is allowed.
    ipsec_key_len: int | None = None


# RFC 2328 App. D.4.3 (Keyed-MD5), RFC 5709 §3.3 / RFC 7166 §4.5 (L = full hash length).
_ROUTING: dict[IntegId, DigestAlgorithm] = {
    IntegId.ROUTING_KEYED_MD5: DigestAlgorithm(hashes.MD5, 16, keyed_md5=True),
    IntegId.ROUTING_HMAC_SHA1: DigestAlgorithm(hashes.SHA1, 20),
    IntegId.ROUTING_HMAC_SHA256: DigestAlgorithm(hashes.SHA256, 32),
    IntegId.ROUTING_HMAC_SHA384: DigestAlgorithm(hashes.SHA384, 48),
    IntegId.ROUTING_HMAC_SHA512: DigestAlgorithm(hashes.SHA512, 64),
}

# IPsec integrity transforms for AH: RFC 2404 (HMAC-SHA-1-96), RFC 4868 §2.1-2.3
# (HMAC-SHA-256-128, -384-192, -512-256): the key is as long as the hash output,
# the ICV is its left half (or 96 bits for SHA-1).
_IPSEC: dict[IntegId, DigestAlgorithm] = {
    IntegId.AUTH_HMAC_SHA1_96: DigestAlgorithm(hashes.SHA1, 12, ipsec_key_len=20),
    IntegId.AUTH_HMAC_SHA2_256_128: DigestAlgorithm(hashes.SHA256, 16, ipsec_key_len=32),
    IntegId.AUTH_HMAC_SHA2_384_192: DigestAlgorithm(hashes.SHA384, 24, ipsec_key_len=48),
    IntegId.AUTH_HMAC_SHA2_512_256: DigestAlgorithm(hashes.SHA512, 32, ipsec_key_len=64),
}


def _integ(integ_id: int) -> IntegId:
    try:
        return IntegId(integ_id)
    except ValueError:
        raise UnsupportedTransform(f"unknown integrity transform {integ_id}") from None


def digest_len(integ_id: int) -> int:
    """Octets of digest (or ICV) that ``integ_id`` puts on the wire.

    Routing digests are untruncated: 16 for Keyed-MD5 (RFC 2328 App. D.4.3),
    L = 20/32/48/64 for HMAC-SHA-1/256/384/512 (RFC 5709 §3.3, RFC 7166 §4.5).
    AH ICVs are truncated: 12 for HMAC-SHA1-96 (RFC 2404), 16/24/32 for
    HMAC-SHA2-256-128/384-192/512-256 (RFC 4868 §2.3).
    """
    integ = _integ(integ_id)
    alg = _ROUTING.get(integ) or _IPSEC.get(integ)
    if alg is None:
        raise UnsupportedTransform(f"{integ.name} has no digest")
    return alg.output_len


def routing_algorithm(integ_id: int) -> DigestAlgorithm:
    """The routing digest behind ``integ_id``; ValueError for IPsec or unknown IDs."""
    integ = _integ(integ_id)
    alg = _ROUTING.get(integ)
    if alg is None:
        raise UnsupportedTransform(f"{integ.name} is not a routing-protocol digest")
    return alg


def ipsec_algorithm(integ_id: int) -> DigestAlgorithm:
    """The IPsec (AH) integrity transform behind ``integ_id``; ValueError otherwise."""
    integ = _integ(integ_id)
    alg = _IPSEC.get(integ)
    if alg is None:
        raise UnsupportedTransform(f"{integ.name} is not an AH integrity transform")
    return alg


def hash_bytes(alg: DigestAlgorithm, data: bytes) -> bytes:
    """H(data) with the algorithm's full hash."""
    h = hashes.Hash(alg.hash_factory())
    h.update(data)
    return h.finalize()


def hmac_bytes(alg: DigestAlgorithm, key: bytes, data: bytes) -> bytes:
    """RFC 2104 HMAC of ``data`` under ``key``, untruncated."""
    mac = hmac.HMAC(key, alg.hash_factory())
    mac.update(data)
    return mac.finalize()


def prepare_hmac_key(alg: DigestAlgorithm, key: bytes, preparation: KeyPreparation) -> bytes:
    """Turn a configured key into the key handed to RFC 2104 HMAC.

    RFC 5709 §3.3: a key longer than L is replaced by H(key); a shorter one is
    zero-padded to L. HMAC itself zero-pads its key to the block size B, so the
    padding step needs no code: only the hashing differs from plain HMAC.
    """
    if preparation == "rfc5709":
        return hash_bytes(alg, key) if len(key) > alg.output_len else key
    if preparation == "plain":
        return key
    raise ValueError(f"unknown key preparation {preparation!r}")


def apad(length: int) -> bytes:
    """Apad: 0x878FE1F3 repeated to ``length`` octets (RFC 5709 §3.3)."""
    return (APAD_WORD * (length // 4 + 1))[:length]
