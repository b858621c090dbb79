"""The Encrypted payload (SK): sealing and opening its body.

MRKM protects GSA_AUTH, GSA_REGISTRATION and GSA_INBAND_REKEY with the SK_e/SK_a
keys of the registration IKE SA and GSA_REKEY with the GSK_e/GSK_a keys of the
Rekey SA (RFC 9838 §3.4). The body of the payload, everything after its
4-octet generic header, is (RFC 7296 §3.14)::

    IV | encrypt(inner payloads | Padding | Pad Length) | ICV

Two families are supported:

* ENCR_AES_GCM_16 with 128/192/256-bit keys (RFC 5282): 8-octet explicit IV,
  nonce = 4-octet salt (the last octets of SK_e) | IV, AAD = everything from
  the first octet of the IKE header to the last octet of the SK generic header,
  16-octet tag as ICV (RFC 5282 §3, §4, §5.1, §7.1). No INTEG transform (§8).
* ENCR_AES_CBC with 128/192/256-bit keys plus AUTH_HMAC_SHA2_256_128,
  384_192 or 512_256 (RFC 3602, RFC 4868): 16-octet IV, plaintext padded to the
  16-octet block, ICV = truncated HMAC over the IKE header through the end of
  the ciphertext (RFC 7296 §3.14).

``aad`` is always "everything before the IV" (with its final lengths), so the
caller does not need to know which family is in use. The IV comes from the
caller: for GCM it must never repeat under one key (RFC 5282 §3), so the
protocol layer should draw it from one counter per SA and key, owned in one
place.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC

from mrkm.crypto.errors import UnsupportedTransform
from mrkm.errors import BadLength, IntegrityCheckFailed
from mrkm.wire.registry import EncrId, IntegId

__all__ = [
    "SkSuite",
    "open",
    "seal",
]

_GCM_SALT_LEN = 4
_GCM_IV_LEN = 8
_GCM_TAG_LEN = 16
_AES_BLOCK = 16
_AES_KEY_BITS = (128, 192, 256)
_IKE_HEADER_LEN = 28

# INTEG transform -> (hash, key length, ICV length) (RFC 4868 §2).
_INTEG: dict[int, tuple[type[hashes.HashAlgorithm], int, int]] = {
    IntegId.AUTH_HMAC_SHA2_256_128: (hashes.SHA256, 32, 16),
    IntegId.AUTH_HMAC_SHA2_384_192: (hashes.SHA384, 48, 24),
    IntegId.AUTH_HMAC_SHA2_512_256: (hashes.SHA512, 64, 32),
}


@dataclass(frozen=True)
class SkSuite:
    """The negotiated ENCR (and INTEG) transforms protecting an SK payload.

    ``encr_id`` is an ``EncrId``, ``encr_key_bits`` the Key Length attribute in
    bits (RFC 7296 §3.3.5) and ``integ_id`` an ``IntegId`` (0 = NONE, required
    with AES-GCM, RFC 5282 §8).
    """

    encr_id: int
    encr_key_bits: int
    integ_id: int = 0

    def __post_init__(self) -> None:
        if self.encr_id not in (EncrId.ENCR_AES_GCM_16, EncrId.ENCR_AES_CBC):
            raise UnsupportedTransform(
                f"unsupported SK encryption transform {self.encr_id}: MRKM supports "
                f"ENCR_AES_GCM_16={int(EncrId.ENCR_AES_GCM_16)} and "
                f"ENCR_AES_CBC={int(EncrId.ENCR_AES_CBC)}"
            )
        if self.encr_key_bits not in _AES_KEY_BITS:
            raise UnsupportedTransform(
                f"AES Key Length must be 128, 192 or 256 bits, got {self.encr_key_bits}"
            )
        if self.encr_id == EncrId.ENCR_AES_GCM_16:
            if self.integ_id != IntegId.NONE:
                raise UnsupportedTransform(
                    "ENCR_AES_GCM_16 is an AEAD cipher and takes no INTEG transform "
                    f"(got integ_id {self.integ_id}; RFC 5282 §8)"
                )
        elif self.integ_id not in _INTEG:
            known = ", ".join(f"{IntegId(i).name}={i}" for i in _INTEG)
            raise UnsupportedTransform(
                f"ENCR_AES_CBC needs an INTEG transform, one of {known}; got {self.integ_id}"
            )

    @property
    def is_aead(self) -> bool:
        """True for a combined-mode cipher (AES-GCM): no separate SK_a key."""
        return self.encr_id == EncrId.ENCR_AES_GCM_16

    @property
    def encr_key_len(self) -> int:
        """Length of SK_e in octets, including the 4-octet GCM salt (RFC 5282 §7.1)."""
        key = self.encr_key_bits // 8
        return key + _GCM_SALT_LEN if self.is_aead else key

    @property
    def integ_key_len(self) -> int:
        """Length of SK_a in octets; 0 for AEAD (RFC 4868 §2)."""
        return 0 if self.is_aead else _INTEG[self.integ_id][1]

    @property
    def iv_len(self) -> int:
        """Length of the IV in the SK body: 8 for GCM (RFC 5282 §3), 16 for CBC (RFC 3602 §3)."""
        return _GCM_IV_LEN if self.is_aead else _AES_BLOCK

    @property
    def icv_len(self) -> int:
        """Length of the Integrity Checksum Data: GCM tag or truncated HMAC (RFC 4868 §2)."""
        return _GCM_TAG_LEN if self.is_aead else _INTEG[self.integ_id][2]

    def pad_len(self, inner_len: int) -> int:
        """Minimal Padding (not counting the Pad Length octet) for ``inner_len`` octets.

        CBC pads inner payloads + Pad Length to a multiple of 16 octets; GCM
        needs no alignment, so MRKM sends no padding (RFC 5282 §3).
        """
        if inner_len < 0:
            raise ValueError(f"inner length must not be negative, got {inner_len}")
        return 0 if self.is_aead else -(inner_len + 1) % _AES_BLOCK

    def body_len(self, inner_len: int) -> int:
        """Length of IV | ciphertext | ICV for ``inner_len`` octets of inner payloads.

        Add 4 for the SK payload's Payload Length and 4 + ``len(aad)`` for the
        IKE header Length, both of which must be final before :func:`seal`.
        """
        return self.iv_len + inner_len + self.pad_len(inner_len) + 1 + self.icv_len


def _check_keys(suite: SkSuite, key_e: bytes, key_a: bytes) -> None:
    if len(key_e) != suite.encr_key_len:
        raise ValueError(f"SK_e must be {suite.encr_key_len} octets, got {len(key_e)}")
    if len(key_a) != suite.integ_key_len:
        raise ValueError(f"SK_a must be {suite.integ_key_len} octets, got {len(key_a)}")


def _cbc_icv(suite: SkSuite, key_a: bytes, covered: bytes) -> bytes:
    hash_type, _, icv_len = _INTEG[suite.integ_id]
    mac = HMAC(key_a, hash_type())
    mac.update(covered)
    return mac.finalize()[:icv_len]


def seal(suite: SkSuite, key_e: bytes, key_a: bytes, aad: bytes, inner: bytes, iv: bytes) -> bytes:
    """Encrypt ``inner`` and return the SK body ``IV | ciphertext | ICV``.

    ``aad`` is the message from the first octet of the IKE header up to and
    including the SK generic header, with the IKE header Length and the SK
    Payload Length already set to their final values (use
    :meth:`SkSuite.body_len`). Minimal padding of zero octets is used.
    Wrong key or IV lengths, or an IKE header Length that does not match the
    sealed message, raise ``ValueError``: those are caller bugs.
    """
    _check_keys(suite, key_e, key_a)
    if len(iv) != suite.iv_len:
        raise ValueError(f"IV must be {suite.iv_len} octets, got {len(iv)}")
    if len(aad) >= _IKE_HEADER_LEN:
        declared = int.from_bytes(aad[24:28], "big")
        actual = len(aad) + suite.body_len(len(inner))
        if declared != actual:
            raise ValueError(
                f"IKE header Length is {declared} but the sealed message will be {actual} "
                "octets; set the final lengths before sealing (RFC 7296 §3.14)"
            )
    pad = suite.pad_len(len(inner))
    plaintext = inner + bytes(pad) + bytes([pad])
    if suite.is_aead:
        key, salt = key_e[:-_GCM_SALT_LEN], key_e[-_GCM_SALT_LEN:]
        return iv + AESGCM(key).encrypt(salt + iv, plaintext, aad)
    encryptor = Cipher(algorithms.AES(key_e), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    return iv + ciphertext + _cbc_icv(suite, key_a, aad + iv + ciphertext)


def open(suite: SkSuite, key_e: bytes, key_a: bytes, aad: bytes, body: bytes) -> bytes:
    """Check and decrypt an SK body; return the inner payloads without padding.

    ``aad`` is everything before the IV as received. The ICV is checked
    before anything is decrypted (CBC, in constant time) or as part of the
    AEAD decryption (GCM); a mismatch raises
    :class:`mrkm.errors.IntegrityCheckFailed`, and the message must be
    dropped silently (RFC 7296 §2.21). A body too short for IV and ICV, a
    ciphertext that is not whole blocks, or a Pad Length that exceeds the
    plaintext raises :class:`mrkm.errors.BadLength`.
    """
    _check_keys(suite, key_e, key_a)
    iv_len, icv_len = suite.iv_len, suite.icv_len
    ct_len = len(body) - iv_len - icv_len
    if ct_len < 1:
        raise BadLength(
            f"SK body of {len(body)} octets cannot hold a {iv_len}-octet IV, "
            f"a Pad Length octet and a {icv_len}-octet ICV"
        )
    iv = body[:iv_len]
    ciphertext = body[iv_len : iv_len + ct_len]
    icv = body[iv_len + ct_len :]
    if suite.is_aead:
        key, salt = key_e[:-_GCM_SALT_LEN], key_e[-_GCM_SALT_LEN:]
        try:
            plaintext = AESGCM(key).decrypt(salt + iv, ciphertext + icv, aad)
        except InvalidTag:
            raise IntegrityCheckFailed("SK payload: AES-GCM tag does not verify") from None
    else:
        if ct_len % _AES_BLOCK:
            raise BadLength(
                f"SK ciphertext of {ct_len} octets is not a multiple of the "
                f"{_AES_BLOCK}-octet AES block"
            )
        expected = _cbc_icv(suite, key_a, aad + iv + ciphertext)
        if not hmac.compare_digest(expected, icv):
            raise IntegrityCheckFailed("SK payload: Integrity Checksum Data does not verify")
        decryptor = Cipher(algorithms.AES(key_e), modes.CBC(iv)).decryptor()
        plaintext = decryptor.update(ciphertext) + decryptor.finalize()
    pad = plaintext[-1]
    if pad + 1 > len(plaintext):
        raise BadLength(f"SK Pad Length {pad} exceeds the {len(plaintext) - 1} octets before it")
    return plaintext[: len(plaintext) - 1 - pad]
