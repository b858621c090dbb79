"""Key derivation for the registration IKE SA and the Rekey SA.

* SKEYSEED and the seven SK_* keys of an IKE SA (RFC 7296 §2.14), used by the
  GM and the GCKS for IKE_SA_INIT / GSA_AUTH / GSA_REGISTRATION.
* SKEYSEED of a rekeyed IKE SA (RFC 7296 §2.18).
* GSK_w, the default key wrap key of the registration IKE SA (RFC 9838 §3.1.1).
* The split of SA_KEY keying material of a Rekey SA into GSK_e | GSK_a | GSK_w
  (RFC 9838 §3.4).

Lengths follow RFC 7296 §2.14: SK_d, SK_pi and SK_pr are as long as the PRF's
preferred key (its output for HMAC PRFs); SK_a* as long as the integrity key;
SK_e* as long as the encryption key, which for AES-GCM includes the 4-octet
salt (RFC 5282 §7.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mrkm.crypto.prf import prf, prf_output_len, prf_plus
from mrkm.errors import BadLength

__all__ = [
    "GSK_W_LABEL",
    "IkeSaKeys",
    "derive_ike_sa_keys",
    "gsk_w",
    "skeyseed",
    "skeyseed_rekey",
    "split_rekey_keymat",
]

#: prf+ seed for the default KWK of the registration IKE SA: 20 ASCII octets,
#: no terminating NUL (RFC 9838 §3.1.1).
GSK_W_LABEL = b"Key Wrap for G-IKEv2"


@dataclass(frozen=True)
class IkeSaKeys:
    """The keys of one IKE SA, in the order prf+ produces them (RFC 7296 §2.14).

    ``sk_ai``/``sk_ei`` protect messages sent by the original initiator (the
    GM), ``sk_ar``/``sk_er`` those sent by the responder (the GCKS). ``sk_ai``
    and ``sk_ar`` are empty with an AEAD cipher.
    """

    sk_d: bytes = field(repr=False)
    sk_ai: bytes = field(repr=False)
    sk_ar: bytes = field(repr=False)
    sk_ei: bytes = field(repr=False)
    sk_er: bytes = field(repr=False)
    sk_pi: bytes = field(repr=False)
    sk_pr: bytes = field(repr=False)


def skeyseed(prf_id: int, ni: bytes, nr: bytes, shared: bytes) -> bytes:
    """Return ``SKEYSEED = prf(Ni | Nr, g^ir)`` (RFC 7296 §2.14).

    ``ni`` and ``nr`` are the Nonce Data of the two IKE_SA_INIT nonces and
    ``shared`` the g^ir of :func:`mrkm.crypto.dh.shared_secret`. HMAC PRFs take
    the whole ``Ni | Nr`` as the key.
    """
    return prf(prf_id, ni + nr, shared)


def skeyseed_rekey(prf_id: int, sk_d_old: bytes, shared_new: bytes, ni: bytes, nr: bytes) -> bytes:
    """Return ``SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)`` (RFC 7296 §2.18).

    Used when the registration IKE SA is rekeyed with CREATE_CHILD_SA; the
    nonces are those of the rekeying exchange.
    """
    return prf(prf_id, sk_d_old, shared_new + ni + nr)


def derive_ike_sa_keys(
    prf_id: int,
    ni: bytes,
    nr: bytes,
    shared: bytes,
    spi_i: bytes,
    spi_r: bytes,
    encr_key_len: int,
    integ_key_len: int,
) -> IkeSaKeys:
    """Derive ``{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}`` (RFC 7296 §2.14).

    The keys are ``prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)`` cut in order.
    ``encr_key_len`` is the length of each SK_e in octets and includes the
    4-octet salt of an AEAD cipher such as AES-GCM (RFC 5282 §7.1);
    ``integ_key_len`` is 0 with an AEAD cipher. ``spi_i`` and ``spi_r`` are the
    8-octet IKE SPIs.
    """
    for name, spi in (("spi_i", spi_i), ("spi_r", spi_r)):
        if len(spi) != 8:
            raise ValueError(f"{name} must be the 8-octet IKE SPI, got {len(spi)} octets")
    if encr_key_len < 0 or integ_key_len < 0:
        raise ValueError("key lengths must not be negative")
    prf_len = prf_output_len(prf_id)
    seed = skeyseed(prf_id, ni, nr, shared)
    lengths = (
        prf_len,
        integ_key_len,
        integ_key_len,
        encr_key_len,
        encr_key_len,
        prf_len,
        prf_len,
    )
    keymat = prf_plus(prf_id, seed, ni + nr + spi_i + spi_r, sum(lengths))
    parts: list[bytes] = []
    offset = 0
    for length in lengths:
        parts.append(keymat[offset : offset + length])
        offset += length
    sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr = parts
    return IkeSaKeys(sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr)


def gsk_w(prf_id: int, sk_d: bytes, kwk_len: int) -> bytes:
    """Return the default KWK of a registration IKE SA (RFC 9838 §3.1.1).

    ``GSK_w = prf+(SK_d, "Key Wrap for G-IKEv2")``, ``kwk_len`` octets long:
    the key size of the negotiated key wrap algorithm (16/24/32 for
    KW_5649_128/192/256, see :func:`mrkm.crypto.keywrap.kwk_len`).
    """
    if kwk_len <= 0:
        raise ValueError(f"KWK length must be positive, got {kwk_len}")
    return prf_plus(prf_id, sk_d, GSK_W_LABEL, kwk_len)


def split_rekey_keymat(
    keymat: bytes, encr_key_len: int, integ_key_len: int, kwk_len: int
) -> tuple[bytes, bytes, bytes]:
    """Split the SA_KEY keying material of a Rekey SA into (GSK_e, GSK_a, GSK_w).

    RFC 9838 §3.4: the keys are taken in that order, leftmost first; GSK_e
    and GSK_a protect GSA_REKEY messages (SK payload), GSK_w is the default
    KWK of the Rekey SA. With an AEAD cipher ``integ_key_len`` is 0 and GSK_a
    is empty; ``encr_key_len`` includes the AES-GCM salt. The keying material
    comes from the GCKS, so a length that does not match the policy raises
    :class:`mrkm.errors.BadLength`.
    """
    if encr_key_len <= 0 or integ_key_len < 0 or kwk_len <= 0:
        raise ValueError("encr_key_len and kwk_len must be positive and integ_key_len not negative")
    needed = encr_key_len + integ_key_len + kwk_len
    if len(keymat) != needed:
        raise BadLength(
            f"Rekey SA keying material is {len(keymat)} octets, the policy needs "
            f"{needed} (GSK_e {encr_key_len} + GSK_a {integ_key_len} + GSK_w {kwk_len})"
        )
    gsk_e = keymat[:encr_key_len]
    gsk_a = keymat[encr_key_len : encr_key_len + integ_key_len]
    return gsk_e, gsk_a, keymat[encr_key_len + integ_key_len :]
