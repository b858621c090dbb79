"""Seal and open whole messages whose payloads travel inside SK (RFC 7296 §3.14).

The wire layer keeps SK sealed and the crypto layer works on octets; this
module joins them: it lays out the IKE header and the SK generic header with
their final lengths, which is the AAD (or the start of what the ICV covers),
and decodes the plaintext as a payload chain.
"""

from __future__ import annotations

from mrkm.crypto import sk
from mrkm.errors import BadValue
from mrkm.wire import (
    HEADER_LEN,
    EncryptedPayload,
    IkeHeader,
    Message,
    Payload,
    decode_chain,
    decode_message,
    encode_chain,
)
from mrkm.wire.registry import PayloadType

__all__ = ["open_message", "seal_message", "sk_prefix"]


def sk_prefix(header: IkeHeader, first_inner: int, body_len: int) -> bytes:
    """IKE header and SK generic header of a message whose only payload is SK."""
    sk_len = 4 + body_len
    return header.encode(PayloadType.SK, HEADER_LEN + sk_len) + bytes(
        [first_inner, 0, sk_len >> 8, sk_len & 0xFF]
    )


def seal_message(
    header: IkeHeader,
    inner: tuple[Payload, ...],
    suite: sk.SkSuite,
    key_e: bytes,
    key_a: bytes,
    iv: bytes,
) -> bytes:
    """Encode ``inner`` and protect it as the message's single SK payload."""
    first, plain = encode_chain(inner)
    aad = sk_prefix(header, first, suite.body_len(len(plain)))
    return aad + sk.seal(suite, key_e, key_a, aad, plain, iv)


def open_message(
    raw: bytes,
    suite: sk.SkSuite,
    key_e: bytes,
    key_a: bytes,
    message: Message | None = None,
) -> tuple[Message, tuple[Payload, ...]]:
    """Decode ``raw``, check its ICV and return the message and its inner payloads.

    ``message`` is ``raw`` already decoded, if the caller has it. Raises
    :class:`~mrkm.errors.DecodeError` for malformed octets and
    :class:`~mrkm.errors.IntegrityCheckFailed` for a bad ICV.
    """
    message = message or decode_message(raw)
    sealed = message.payloads[-1] if message.payloads else None
    if not isinstance(sealed, EncryptedPayload):
        raise BadValue("message carries no SK payload")
    aad = raw[: len(raw) - len(sealed.body)]
    plain = sk.open(suite, key_e, key_a, aad, sealed.body)
    return message, decode_chain(sealed.first_inner, plain)
