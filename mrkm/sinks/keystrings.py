"""How routing keys (random octets) are written for routers that take keys as text.

FRR takes every key as text, and so does BIRD for Keyed-MD5 (it copies MD5
passwords as C strings, so octets after a zero would be lost; measured).
Both sinks therefore use the same mapping, so that a mixed FRR–BIRD link
agrees:

* Keyed-MD5 (OSPFv2, RFC 2328 App. D): FRR keeps at most 16 characters, and
  16 random octets cannot be written as 16 characters vtysh accepts (no NUL,
  no white space). The key string is the **unpadded base64url (RFC 4648 §5)
  of the first 12 key octets**: 16 characters from ``A-Za-z0-9-_``, so the
  effective secret is 96 bits.
* HMAC (the FRR OSPFv3 key chain): the **lowercase hex of all key octets**
  (64 characters for HMAC-SHA-256). FRR 8.4 keys HMAC with that string
  || 0x01 0x00, hashed because it is longer than L, so every key bit counts.
  BIRD takes HMAC keys as octets (``password 00:1f:...``) and needs no mapping.
"""

from __future__ import annotations

import base64

__all__ = ["MD5_KEY_OCTETS", "hmac_key_string", "md5_key_string"]

#: Key octets that reach a Keyed-MD5 key string (16 base64url characters).
MD5_KEY_OCTETS = 12


def md5_key_string(key: bytes) -> str:
    """The Keyed-MD5 key as text: unpadded base64url of the first 12 octets (16 chars)."""
    return base64.urlsafe_b64encode(key[:MD5_KEY_OCTETS]).rstrip(b"=").decode("ascii")


def hmac_key_string(key: bytes) -> str:
    """An HMAC key as text for FRR's key chain: the lowercase hex of every octet."""
    return key.hex()
