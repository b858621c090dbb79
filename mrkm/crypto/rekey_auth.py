"""The GCKS signature in GSA_REKEY messages (RFC 9838 §2.4.1.1).

A GSA_REKEY message is ``HDR, SK{[GSA,] [KD,] [N,] [D,] [AUTH]}``, multicast
to all GMs. With the Digital Signature GCAUTH method the AUTH payload carries
the GCKS's RFC 7427 signature (Auth Method 14), made with the private key
whose public half the GMs received as AUTH_KEY. What is signed is, in
RFC 9838 §2.4.1.1's words paraphrased:

* The signature covers ``A | P``. ``A`` runs from the first octet of the
  IKE header (without the four zero octets prepended on port 4500) to the
  last octet of the Encrypted (SK) payload's generic header. ``P`` is the
  inner payloads of the SK payload in plaintext: no IV, no Padding, no Pad
  Length, no ICV.
* The inner payloads are fully formed, ready for encryption, except the
  AUTH payload. The AUTH payload has correct values in its generic header
  (Next Payload, C, RESERVED and the final Payload Length), in Auth Method
  and in RESERVED. Its Authentication Data is zeroed, except that with the
  Digital Signature method the ASN.1 Length and the AlgorithmIdentifier are
  filled in (RFC 7427). So only the Signature Value octets are zero, and
  there are exactly as many of them as the signature will have.
* While signing, the IKE header Length is set to ``len(A) + len(P)``
  ("AdjustedLen") and the SK Payload Length to ``len(P) + 4``
  ("AdjustedPldLen"): neither counts IV, Padding, Pad Length or ICV.
* Then the signature is written into the AUTH payload, both lengths are
  restored, the SK content is encrypted and the ICV computed with the Rekey
  SA's GSK_e/GSK_a.
* The AUTH is computed over whole messages, before IKE fragmentation
  (RFC 7383); a receiver reassembles first and sets the SK header's RESERVED
  field from the Encrypted Fragment payload of fragment number 1.

Because a DER ECDSA signature varies in length (about 70 to 72 octets for
P-256) while the zeroed field and every length before it must already have the
final size, :func:`sign_rekey_auth` signs with a guessed length and signs
again until the signature has the length it guessed. Ed25519 signatures are
always 64 octets.

A GM decrypts the message, then calls :func:`verify_rekey_auth` with the
offset of the AUTH payload inside the decrypted inner payloads; the function
zeroes the Signature Value itself.
"""

from __future__ import annotations

from mrkm.crypto.signatures import (
    ALG_ID_ED25519,
    SigningKey,
    VerifyingKey,
    algorithm_id_for,
    decode_signature_auth,
    encode_signature_auth,
    sign,
    verify,
)
from mrkm.errors import AuthenticationFailed, BadLength, CryptoError, Truncated
from mrkm.wire.registry import AuthMethod

__all__ = [
    "IKE_HEADER_LEN",
    "SK_HEADER_LEN",
    "rekey_auth_template",
    "rekey_signed_octets",
    "sign_rekey",
    "sign_rekey_auth",
    "verify_rekey",
    "verify_rekey_auth",
]

IKE_HEADER_LEN = 28
SK_HEADER_LEN = 4
_GENERIC_HEADER_LEN = 4
# AUTH payload body before the Authentication Data: Auth Method (1) | RESERVED (3).
_AUTH_FIXED_LEN = _GENERIC_HEADER_LEN + 4
_MAX_PAYLOAD_LEN = 0xFFFF
# Each ECDSA attempt matches its guessed length with probability >= 1/4.
_MAX_SIGN_ATTEMPTS = 64
_ED25519_SIG_LEN = 64
_ECDSA_P256_TYPICAL_SIG_LEN = 71


def rekey_signed_octets(ike_header: bytes, sk_generic_header: bytes, inner_plain: bytes) -> bytes:
    """Return ``A | P`` with AdjustedLen and AdjustedPldLen patched in (RFC 9838 §2.4.1.1).

    ``ike_header`` is the 28-octet IKE header and ``sk_generic_header`` the
    4-octet SK generic header, each with any value in its length field;
    ``inner_plain`` is P: the plaintext inner payloads, whose AUTH payload has
    its Signature Value zeroed. The IKE header Length becomes
    ``32 + len(P)`` and the SK Payload Length ``4 + len(P)``.
    """
    if len(ike_header) != IKE_HEADER_LEN:
        raise ValueError(f"IKE header must be {IKE_HEADER_LEN} octets, got {len(ike_header)}")
    if len(sk_generic_header) != SK_HEADER_LEN:
        raise ValueError(
            f"SK generic header must be {SK_HEADER_LEN} octets, got {len(sk_generic_header)}"
        )
    adjusted_pld_len = SK_HEADER_LEN + len(inner_plain)
    if adjusted_pld_len > _MAX_PAYLOAD_LEN:
        raise ValueError(f"inner payloads of {len(inner_plain)} octets overflow Payload Length")
    adjusted_len = IKE_HEADER_LEN + adjusted_pld_len
    return (
        ike_header[:24]
        + adjusted_len.to_bytes(4, "big")
        + sk_generic_header[:2]
        + adjusted_pld_len.to_bytes(2, "big")
        + inner_plain
    )


def rekey_auth_template(alg_id: bytes, signature_len: int, next_payload: int = 0) -> bytes:
    """Build the AUTH payload as it must look while signing (RFC 9838 §2.4.1.1).

    Generic header (``next_payload``, C = 0, RESERVED = 0, final Payload
    Length) | Auth Method 14 | RESERVED (3 zero octets) | ASN.1 Length |
    AlgorithmIdentifier | ``signature_len`` zero octets. Replacing the last
    ``signature_len`` octets by the signature gives the payload to send.
    """
    if signature_len <= 0:
        raise ValueError(f"signature length must be positive, got {signature_len}")
    if not 0 <= next_payload <= 0xFF:
        raise ValueError(f"Next Payload must fit in one octet, got {next_payload}")
    data = encode_signature_auth(alg_id, bytes(signature_len))
    length = _AUTH_FIXED_LEN + len(data)
    if length > _MAX_PAYLOAD_LEN:
        raise ValueError(f"AUTH payload of {length} octets overflows Payload Length")
    return (
        bytes([next_payload, 0])
        + length.to_bytes(2, "big")
        + bytes([AuthMethod.DIGITAL_SIGNATURE, 0, 0, 0])
        + data
    )


def sign_rekey(
    key: SigningKey, ike_header: bytes, sk_generic_header: bytes, inner_plain: bytes
) -> bytes:
    """Sign ``A | P`` as given; return the raw Signature Value.

    ``inner_plain`` must already hold the AUTH payload with the Signature
    Value zeroed at its final length. For ECDSA that length is only known
    after signing; :func:`sign_rekey_auth` handles that.
    """
    return sign(key, rekey_signed_octets(ike_header, sk_generic_header, inner_plain))


def verify_rekey(
    pub: VerifyingKey,
    alg_id: bytes,
    ike_header: bytes,
    sk_generic_header: bytes,
    inner_plain: bytes,
    signature: bytes,
) -> None:
    """Check ``signature`` over ``A | P``, P having its Signature Value zeroed.

    Raises :class:`mrkm.errors.AuthenticationFailed` on mismatch or if
    ``alg_id`` does not go with ``pub``.
    """
    verify(pub, alg_id, rekey_signed_octets(ike_header, sk_generic_header, inner_plain), signature)


def sign_rekey_auth(
    key: SigningKey,
    ike_header: bytes,
    sk_generic_header: bytes,
    inner_before_auth: bytes,
    next_payload: int = 0,
) -> bytes:
    """Sign a GSA_REKEY message whose AUTH payload is the last inner payload.

    ``inner_before_auth`` is every inner payload before AUTH, fully encoded
    (the last one's Next Payload is already AUTH, 39). Returns the complete
    AUTH payload with the signature in place; the plaintext to encrypt is
    ``inner_before_auth + result`` (followed by padding as usual).
    """
    alg_id = algorithm_id_for(key)
    guess = _ED25519_SIG_LEN if alg_id == ALG_ID_ED25519 else _ECDSA_P256_TYPICAL_SIG_LEN
    for _ in range(_MAX_SIGN_ATTEMPTS):
        template = rekey_auth_template(alg_id, guess, next_payload)
        signature = sign_rekey(key, ike_header, sk_generic_header, inner_before_auth + template)
        if len(signature) == guess:
            return template[:-guess] + signature
        guess = len(signature)
    raise CryptoError("could not produce a signature of a stable length for GSA_REKEY AUTH")


def verify_rekey_auth(
    pub: VerifyingKey,
    ike_header: bytes,
    sk_generic_header: bytes,
    inner_plain: bytes,
    auth_offset: int,
    expected_alg_id: bytes | None = None,
) -> None:
    """Verify the AUTH payload found at ``auth_offset`` in the decrypted inner payloads.

    ``inner_plain`` is P as decrypted (padding removed); ``auth_offset`` is
    where the AUTH payload's generic header starts in it. The Auth Method
    must be 14; if ``expected_alg_id`` is given (the GCAUTH transform's
    SIGNATURE_ALGORITHM_IDENTIFIER, RFC 9838 §4.4.2.1.1) the payload's
    AlgorithmIdentifier must equal it. The Signature Value is zeroed and the
    signature checked over ``A | P``. Raises
    :class:`mrkm.errors.AuthenticationFailed` on any mismatch and a
    :class:`mrkm.errors.DecodeError` subclass on a malformed AUTH payload.
    """
    if auth_offset < 0 or auth_offset + _AUTH_FIXED_LEN > len(inner_plain):
        raise Truncated(f"no AUTH payload header at offset {auth_offset} of {len(inner_plain)}")
    length = int.from_bytes(inner_plain[auth_offset + 2 : auth_offset + 4], "big")
    end = auth_offset + length
    if length < _AUTH_FIXED_LEN or end > len(inner_plain):
        raise BadLength(
            f"AUTH Payload Length {length} at offset {auth_offset} does not fit the "
            f"{len(inner_plain)} octets of inner payloads"
        )
    method = inner_plain[auth_offset + _GENERIC_HEADER_LEN]
    if method != AuthMethod.DIGITAL_SIGNATURE:
        raise AuthenticationFailed(
            f"GSA_REKEY AUTH uses Auth Method {method}, the group requires "
            f"DIGITAL_SIGNATURE ({int(AuthMethod.DIGITAL_SIGNATURE)})"
        )
    alg_id, signature = decode_signature_auth(inner_plain[auth_offset + _AUTH_FIXED_LEN : end])
    if expected_alg_id is not None and alg_id != expected_alg_id:
        raise AuthenticationFailed(
            f"AUTH AlgorithmIdentifier {alg_id.hex()} differs from the group's "
            f"{expected_alg_id.hex()} (RFC 9838 §4.4.2.1.1)"
        )
    sig_start = end - len(signature)
    zeroed = inner_plain[:sig_start] + bytes(len(signature)) + inner_plain[end:]
    verify_rekey(pub, alg_id, ike_header, sk_generic_header, zeroed, signature)
