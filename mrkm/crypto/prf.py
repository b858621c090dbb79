"""IKEv2 pseudo-random functions and prf+ (RFC 7296 §2.13, RFC 4868 §2).

MRKM negotiates the PRF of the registration IKE SA in IKE_SA_INIT and uses it
for SKEYSEED, the SK_* keys, AUTH (RFC 7296 §2.14, §2.15) and the default key
wrap key GSK_w (RFC 9838 §3.1.1). Every PRF here is an HMAC whose preferred
key length equals its output length (RFC 4868 §2); keys of any length are
accepted, as HMAC allows (RFC 2104 §2).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from mrkm.crypto.errors import UnsupportedTransform
from mrkm.wire.registry import PrfId

__all__ = [
    "PRF_PLUS_MAX_BLOCKS",
    "prf",
    "prf_output_len",
    "prf_plus",
]

#: prf+ counts its blocks with one octet that starts at 0x01 (RFC 7296 §2.13).
PRF_PLUS_MAX_BLOCKS = 255

# PRF transform ID -> hash used inside HMAC (RFC 7296 §3.3.2, RFC 4868 §2).
_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    PrfId.PRF_HMAC_SHA1: hashes.SHA1,
    PrfId.PRF_HMAC_SHA2_256: hashes.SHA256,
    PrfId.PRF_HMAC_SHA2_384: hashes.SHA384,
    PrfId.PRF_HMAC_SHA2_512: hashes.SHA512,
}


def _hash_for(prf_id: int) -> hashes.HashAlgorithm:
    try:
        return _HASHES[prf_id]()
    except KeyError:
        known = ", ".join(f"{PrfId(i).name}={i}" for i in _HASHES)
        raise UnsupportedTransform(
            f"unsupported PRF transform ID {prf_id} (supported: {known})"
        ) from None


def prf_output_len(prf_id: int) -> int:
    """Return the output length in octets of PRF ``prf_id``.

    For the HMAC PRFs this is also the preferred key length, i.e. the length
    of SK_d, SK_pi and SK_pr (RFC 7296 §2.14, RFC 4868 §2).
    """
    return _hash_for(prf_id).digest_size


def prf(prf_id: int, key: bytes, data: bytes) -> bytes:
    """Compute ``prf(key, data)`` with the negotiated PRF (RFC 7296 §2.13)."""
    mac = HMAC(key, _hash_for(prf_id))
    mac.update(data)
    return mac.finalize()


def prf_plus(prf_id: int, key: bytes, seed: bytes, length: int) -> bytes:
    """Expand ``key`` and ``seed`` into ``length`` octets with prf+ (RFC 7296 §2.13).

    ``prf+(K, S) = T1 | T2 | ...`` with ``T1 = prf(K, S | 0x01)`` and
    ``Tn = prf(K, T(n-1) | S | n)``. The counter is one octet, so at most
    255 blocks can be produced; asking for more raises ``ValueError``.
    """
    if length < 0:
        raise ValueError(f"prf+ length must not be negative, got {length}")
    block = prf_output_len(prf_id)
    blocks = -(-length // block)
    if blocks > PRF_PLUS_MAX_BLOCKS:
        raise ValueError(
            f"prf+ cannot produce {length} octets: that needs {blocks} blocks of "
            f"{block} octets, and the one-octet counter stops at {PRF_PLUS_MAX_BLOCKS} "
            "(RFC 7296 §2.13)"
        )
    out = bytearray()
    previous = b""
    for counter in range(1, blocks + 1):
        previous = prf(prf_id, key, previous + seed + bytes([counter]))
        out += previous
    return bytes(out[:length])
