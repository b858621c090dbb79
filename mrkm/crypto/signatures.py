"""Digital Signature authentication (RFC 7427) with Ed25519 and ECDSA P-256.

MRKM uses one signature encoding in three places: the GSA_AUTH AUTH payload
(Auth Method 14), the GSA_REKEY AUTH payload (RFC 9838 §2.4.1.1) and the
GCKS's AUTH_KEY / SIGNATURE_ALGORITHM_IDENTIFIER attribute (RFC 9838 §4.4.2.1.1,
§4.5.3). The Authentication Data of method 14 is (RFC 7427 §3)::

    ASN.1 Length (1 octet) | AlgorithmIdentifier (DER) | Signature Value

* Ed25519 (RFC 8420): AlgorithmIdentifier ``30 05 06 03 2B 65 70``
  (id-Ed25519, no parameters), signature = the raw 64-octet EdDSA signature
  of the whole signed octets (PureEdDSA, no pre-hash).
* ECDSA P-256 with SHA-256 (RFC 7427 App. A): AlgorithmIdentifier
  ``30 0A 06 08 2A 86 48 CE 3D 04 03 02`` (ecdsa-with-SHA256, parameters
  absent), signature = DER ``ECDSA-Sig-Value`` (RFC 3279 §2.2.3), so its
  length varies between signatures (typically 70 to 72 octets).

Ed25519 signing is deterministic. ECDSA signing draws its nonce inside
OpenSSL: that is the one place MRKM crypto uses randomness it was not given.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mrkm.errors import AuthenticationFailed, BadValue, CryptoError, Truncated

__all__ = [
    "ALG_ID_ECDSA_SHA256",
    "ALG_ID_ED25519",
    "SigningKey",
    "UnsupportedKeyType",
    "VerifyingKey",
    "algorithm_id_for",
    "decode_signature_auth",
    "encode_signature_auth",
    "load_public_key_der",
    "public_key_der",
    "sign",
    "verify",
]

#: AlgorithmIdentifier { id-Ed25519 } (RFC 8420, RFC 8410 §3).
ALG_ID_ED25519 = bytes.fromhex("3005 0603 2B6570")
#: AlgorithmIdentifier { ecdsa-with-SHA256 } (RFC 7427 App. A, RFC 5758 §3.2).
ALG_ID_ECDSA_SHA256 = bytes.fromhex("300A 0608 2A8648CE3D040302")

SigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
VerifyingKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class UnsupportedKeyType(CryptoError):
    """A key or certificate uses an algorithm MRKM does not sign with.

    MRKM supports Ed25519 and ECDSA on P-256 (secp256r1) only.
    """


def _check_ec_curve(curve: ec.EllipticCurve) -> None:
    if not isinstance(curve, ec.SECP256R1):
        raise UnsupportedKeyType(
            f"ECDSA key on {curve.name}: MRKM signs with P-256 (secp256r1) only"
        )


def algorithm_id_for(key: SigningKey | VerifyingKey) -> bytes:
    """Return the DER AlgorithmIdentifier MRKM uses with ``key`` (RFC 7427 §3)."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return ALG_ID_ED25519
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        _check_ec_curve(key.curve)
        return ALG_ID_ECDSA_SHA256
    raise UnsupportedKeyType(f"unsupported key type {type(key).__name__}")


def sign(key: SigningKey, data: bytes) -> bytes:
    """Sign ``data``; return the Signature Value field of RFC 7427 §3.

    Ed25519: 64 octets, deterministic. ECDSA P-256/SHA-256: DER
    ECDSA-Sig-Value, randomized, variable length.
    """
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _check_ec_curve(key.curve)
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    raise UnsupportedKeyType(f"unsupported signing key type {type(key).__name__}")


def verify(pub: VerifyingKey, alg_id: bytes, data: bytes, signature: bytes) -> None:
    """Check ``signature`` over ``data`` made with the algorithm ``alg_id``.

    Raises :class:`mrkm.errors.AuthenticationFailed` if the signature does
    not verify, or if ``alg_id`` is not the algorithm that goes with ``pub``
    (a key must not be used with another algorithm, RFC 7427 §3).
    """
    try:
        expected = algorithm_id_for(pub)
    except UnsupportedKeyType as exc:
        raise AuthenticationFailed(str(exc)) from exc
    if alg_id != expected:
        raise AuthenticationFailed(
            f"AlgorithmIdentifier {alg_id.hex()} does not match the "
            f"{type(pub).__name__} key (expected {expected.hex()})"
        )
    try:
        if isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(signature, data)
        else:
            pub.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise AuthenticationFailed("signature does not verify (RFC 7427)") from None


def encode_signature_auth(alg_id: bytes, signature: bytes) -> bytes:
    """Build the Authentication Data of Auth Method 14 (RFC 7427 §3)."""
    if not 0 < len(alg_id) < 256:
        raise ValueError(f"AlgorithmIdentifier must be 1..255 octets, got {len(alg_id)}")
    return bytes([len(alg_id)]) + alg_id + signature


def decode_signature_auth(data: bytes) -> tuple[bytes, bytes]:
    """Split method-14 Authentication Data into (AlgorithmIdentifier, Signature Value).

    Raises :class:`mrkm.errors.Truncated` if the data ends inside the
    AlgorithmIdentifier or holds no signature, and
    :class:`mrkm.errors.BadValue` if the ASN.1 Length is 0 or the
    AlgorithmIdentifier is not a short-form DER SEQUENCE of that length.
    """
    if not data:
        raise Truncated("signature Authentication Data is empty (RFC 7427 §3)")
    n = data[0]
    if n < 2:
        raise BadValue(f"ASN.1 Length {n} is too short for an AlgorithmIdentifier")
    if len(data) < 1 + n:
        raise Truncated(f"AlgorithmIdentifier of {n} octets does not fit in {len(data) - 1} octets")
    alg_id, signature = data[1 : 1 + n], data[1 + n :]
    if alg_id[0] != 0x30 or alg_id[1] != n - 2:
        raise BadValue(f"AlgorithmIdentifier {alg_id.hex()} is not a DER SEQUENCE of {n} octets")
    if not signature:
        raise Truncated("signature Authentication Data holds no Signature Value")
    return alg_id, signature


def public_key_der(pub: VerifyingKey) -> bytes:
    """Encode ``pub`` as DER SubjectPublicKeyInfo, as carried in AUTH_KEY (RFC 9838 §4.5.3)."""
    algorithm_id_for(pub)
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key_der(der: bytes) -> VerifyingKey:
    """Decode a DER SubjectPublicKeyInfo from AUTH_KEY into a verifying key.

    Raises :class:`mrkm.errors.BadValue` for bytes that are not a public key
    and :class:`UnsupportedKeyType` for keys other than Ed25519 or P-256.
    """
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadValue(f"not a DER SubjectPublicKeyInfo: {exc}") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        _check_ec_curve(key.curve)
        return key
    raise UnsupportedKeyType(f"unsupported public key type {type(key).__name__}")
