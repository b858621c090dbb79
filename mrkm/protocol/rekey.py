"""GSA_REKEY messages under a Rekey SA (RFC 9838 §2.4.1).

``HDR, SK{[GSA,] [KD,] [N,] [D,] [AUTH]}``, sent one way (usually to a
multicast group) and protected with the Rekey SA's GSK_e / GSK_a. The IKE SPI
pair is the Rekey SA's SPI and the Message ID is the replay counter. With the
Digital Signature GCAUTH method the AUTH payload carries the GCKS signature
of RFC 9838 §2.4.1.1 and is the last inner payload.

This module builds and opens such messages; the replay window and key
installation belong to the group member's state machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mrkm.crypto import sk
from mrkm.crypto.keys import split_rekey_keymat
from mrkm.crypto.keywrap import kwk_len
from mrkm.crypto.rekey_auth import sign_rekey_auth, verify_rekey_auth
from mrkm.crypto.signatures import SigningKey, VerifyingKey, algorithm_id_for
from mrkm.errors import AuthenticationFailed, BadLength, BadValue
from mrkm.protocol.protect import sk_prefix
from mrkm.wire import (
    FLAG_INITIATOR,
    HEADER_LEN,
    AuthPayload,
    EncryptedPayload,
    IkeHeader,
    Payload,
    decode_chain,
    decode_message,
    encode_chain,
)
from mrkm.wire.registry import AuthMethod, ExchangeType

__all__ = ["RekeySa", "build_rekey", "open_rekey"]

# RFC 9838 leaves the flags of GSA_REKEY open; MRKM sets I (the GCKS
# originates) and receivers ignore them (protocol.md §8, question 2).
REKEY_FLAGS = FLAG_INITIATOR


@dataclass(frozen=True)
class RekeySa:
    """The Rekey SA (GIKE_UPDATE) as both ends hold it (RFC 9838 §3.4)."""

    spi: bytes
    suite: sk.SkSuite
    kwa: int
    gsk_e: bytes = field(repr=False)
    gsk_a: bytes = field(repr=False)
    gsk_w: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.spi) != 16:
            raise BadValue("a Rekey SA SPI is the 16-octet IKE SPI pair")

    @classmethod
    def keymat_len(cls, suite: sk.SkSuite, kwa: int) -> int:
        """Octets of SA_KEY keying material this suite needs: GSK_e | GSK_a | GSK_w."""
        return suite.encr_key_len + suite.integ_key_len + kwk_len(kwa)

    @classmethod
    def from_keymat(cls, spi: bytes, suite: sk.SkSuite, kwa: int, keymat: bytes) -> RekeySa:
        """Split SA_KEY keying material into the Rekey SA's three keys."""
        gsk_e, gsk_a, gsk_w = split_rekey_keymat(
            keymat, suite.encr_key_len, suite.integ_key_len, kwk_len(kwa)
        )
        return cls(spi, suite, kwa, gsk_e, gsk_a, gsk_w)

    def header(self, message_id: int) -> IkeHeader:
        """The IKE header of a GSA_REKEY with this Message ID."""
        return IkeHeader(
            self.spi[:8], self.spi[8:], ExchangeType.GSA_REKEY, REKEY_FLAGS, message_id
        )


def build_rekey(
    sa: RekeySa,
    message_id: int,
    inner: tuple[Payload, ...],
    signer: SigningKey | None,
    iv: bytes,
) -> bytes:
    """Encode, sign (if ``signer``) and seal one GSA_REKEY message.

    The result is sent as is for every copy: copies must be bitwise
    identical (RFC 9838 §2.4.1.3).
    """
    header = sa.header(message_id)
    if signer is None:
        first, plain = encode_chain(inner)
    else:
        # Encode with an empty AUTH last so that the previous payload's Next
        # Payload names AUTH, then let the crypto layer fill the signature.
        placeholder = AuthPayload(AuthMethod.DIGITAL_SIGNATURE, b"", algorithm_id_for(signer))
        first, chain = encode_chain((*inner, placeholder))
        before_auth = chain[: len(chain) - 9 - len(placeholder.algorithm_id)]
        any_prefix = sk_prefix(header, first, 0)
        auth = sign_rekey_auth(
            signer, any_prefix[:HEADER_LEN], any_prefix[HEADER_LEN:], before_auth
        )
        plain = before_auth + auth
    prefix = sk_prefix(header, first, sa.suite.body_len(len(plain)))
    return prefix + sk.seal(sa.suite, sa.gsk_e, sa.gsk_a, prefix, plain, iv)


def open_rekey(
    sa: RekeySa,
    raw: bytes,
    verifier: VerifyingKey | None,
    expected_alg_id: bytes | None = None,
) -> tuple[int, tuple[Payload, ...]]:
    """Check one GSA_REKEY: ICV, then the GCKS signature; return (Message ID, payloads).

    Order as RFC 9838 §2.4.1 says: decrypt and verify the ICV with the
    current Rekey SA, then verify AUTH with AUTH_KEY. With ``verifier`` None
    (Implicit GCAUTH) an AUTH payload is not expected. The Message ID check
    against the replay counter is the caller's.
    """
    message = decode_message(raw)
    header = message.header
    if header.exchange_type != ExchangeType.GSA_REKEY:
        raise BadValue(f"exchange {header.exchange_type} is not GSA_REKEY")
    if header.spi_i + header.spi_r != sa.spi:
        raise BadValue("GSA_REKEY for another Rekey SA")
    if len(message.payloads) != 1 or not isinstance(message.payloads[0], EncryptedPayload):
        raise BadValue("a GSA_REKEY carries exactly one payload, SK")
    sealed = message.payloads[0]
    prefix = raw[: HEADER_LEN + 4]
    plain = sk.open(sa.suite, sa.gsk_e, sa.gsk_a, prefix, sealed.body)
    inner = decode_chain(sealed.first_inner, plain)
    if verifier is not None:
        if not inner or not isinstance(inner[-1], AuthPayload):
            raise AuthenticationFailed("GSA_REKEY lacks the GCKS signature (AUTH last)")
        verify_rekey_auth(
            verifier,
            prefix[:HEADER_LEN],
            prefix[HEADER_LEN:],
            plain,
            _last_offset(plain, len(inner)),
            expected_alg_id,
        )
    return header.message_id, inner


def _last_offset(plain: bytes, count: int) -> int:
    """Offset of the last of ``count`` payloads in a decoded chain."""
    offset = 0
    for _ in range(count - 1):
        length = int.from_bytes(plain[offset + 2 : offset + 4], "big")
        if length < 4:
            raise BadLength("payload length smaller than its header")
        offset += length
    return offset
