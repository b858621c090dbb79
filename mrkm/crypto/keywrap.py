"""Key wrapping for KD payloads: AES Key Wrap with Padding (RFC 5649).

Every key the GCKS sends in a KD payload travels wrapped (RFC 9838 §4.5.4):
the Encrypted Key field of SA_KEY and WRAP_KEY is the output of the Key Wrap
Algorithm negotiated for the SA, under the default KWK GSK_w or another KWK.
MRKM implements the KW_5649_* transforms (RFC 9838 §4.4.2.1.2), which are
AES-KWP of RFC 5649 with a 128-, 192- or 256-bit KWK. RFC 5649 checks
integrity with its Alternative Initial Value; a wrong KWK or a modified
Encrypted Key is detected on unwrap.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from mrkm.crypto.errors import UnsupportedTransform
from mrkm.errors import BadLength, IntegrityCheckFailed
from mrkm.wire.registry import KwaId

__all__ = [
    "kwk_len",
    "unwrap",
    "wrap",
]

# KWA transform ID -> KWK length in octets (RFC 9838 §4.4.2.1.2).
_KWK_LEN: dict[int, int] = {
    KwaId.KW_5649_128: 16,
    KwaId.KW_5649_192: 24,
    KwaId.KW_5649_256: 32,
}
# RFC 5649 §4.1: the wrapped output is a whole number of 64-bit semiblocks,
# at least two (the AIV block and one block of key data).
_SEMIBLOCK = 8


def kwk_len(kwa_id: int) -> int:
    """Return the KWK length in octets for KWA ``kwa_id`` (16, 24 or 32)."""
    try:
        return _KWK_LEN[kwa_id]
    except KeyError:
        known = ", ".join(f"{KwaId(k).name}={k}" for k in _KWK_LEN)
        raise UnsupportedTransform(
            f"unsupported key wrap algorithm {kwa_id} (supported: {known})"
        ) from None


def _check_kwk(kwa_id: int, kwk: bytes) -> None:
    expected = kwk_len(kwa_id)
    if len(kwk) != expected:
        raise ValueError(
            f"{KwaId(kwa_id).name} needs a {expected}-octet KWK, got {len(kwk)} octets"
        )


def wrap(kwa_id: int, kwk: bytes, key: bytes) -> bytes:
    """Wrap ``key`` (any non-empty length) under ``kwk`` with RFC 5649 §4.1.

    The output is ``8 * ceil(len(key) / 8) + 8`` octets and is deterministic.
    """
    _check_kwk(kwa_id, kwk)
    if not key:
        raise ValueError("cannot wrap an empty key (RFC 5649 §4.1)")
    return aes_key_wrap_with_padding(kwk, key)


def unwrap(kwa_id: int, kwk: bytes, wrapped: bytes) -> bytes:
    """Unwrap an RFC 5649 Encrypted Key and check its integrity (RFC 5649 §4.2).

    Raises :class:`mrkm.errors.BadLength` if ``wrapped`` is not a whole number
    of at least two 8-octet semiblocks, and
    :class:`mrkm.errors.IntegrityCheckFailed` if the Alternative Initial Value
    or the padding does not check out (wrong KWK or tampered data).
    """
    _check_kwk(kwa_id, kwk)
    if len(wrapped) < 2 * _SEMIBLOCK or len(wrapped) % _SEMIBLOCK:
        raise BadLength(
            f"wrapped key of {len(wrapped)} octets is not a multiple of 8 octets "
            "of at least 16 (RFC 5649 §4.2)"
        )
    try:
        return aes_key_unwrap_with_padding(kwk, wrapped)
    except InvalidUnwrap:
        raise IntegrityCheckFailed(
            "key unwrap failed: wrong KWK or modified Encrypted Key (RFC 5649 §4.2)"
        ) from None
