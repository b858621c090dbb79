"""One error hierarchy for MRKM, mapped to IKEv2 notify types.

Every error that can be caused by a peer's bytes derives from :class:`MrkmError`
and carries the notify type (RFC 7296 §3.10.1, RFC 9838 §4.7) that a responder
would send back for it. Decoders raise only :class:`DecodeError` subclasses,
never ``IndexError`` or ``struct.error``.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "BadLength",
    "BadValue",
    "CryptoError",
    "DecodeError",
    "IntegrityCheckFailed",
    "MrkmError",
    "Truncated",
    "UnsupportedCriticalPayload",
]

# Notify error types (RFC 7296 §3.10.1). Kept as plain ints here so that this
# module sits below every other one; mrkm.wire.registry has the full IntEnum.
_UNSUPPORTED_CRITICAL_PAYLOAD = 1
_INVALID_SYNTAX = 7
_AUTHENTICATION_FAILED = 24


class MrkmError(Exception):
    """Base of every MRKM error; ``notify_type`` is the IKEv2 notify to answer with."""

    notify_type: int = _INVALID_SYNTAX


class DecodeError(MrkmError):
    """Bytes that do not form a valid message or payload (INVALID_SYNTAX)."""

    notify_type = _INVALID_SYNTAX


class Truncated(DecodeError):
    """The input ended before a field or block that its lengths promise."""


class BadLength(DecodeError):
    """A length field disagrees with the data around it (too short, too long, trailing bytes)."""


class BadValue(DecodeError):
    """A field holds a value the format forbids (wrong version, reserved type, bad count)."""


class UnsupportedCriticalPayload(DecodeError):
    """A payload type we do not know has its critical bit set (RFC 7296 §2.5)."""

    notify_type = _UNSUPPORTED_CRITICAL_PAYLOAD

    def __init__(self, payload_type: int) -> None:
        super().__init__(f"unsupported critical payload type {payload_type}")
        self.payload_type = payload_type


class CryptoError(MrkmError):
    """A cryptographic check failed or a key has the wrong shape."""


class IntegrityCheckFailed(CryptoError):
    """An ICV, MAC or AEAD tag did not verify; the message must be dropped silently."""


class AuthenticationFailed(CryptoError):
    """An AUTH payload or signature did not verify (AUTHENTICATION_FAILED)."""

    notify_type = _AUTHENTICATION_FAILED
