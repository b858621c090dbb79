"""SKEYSEED, SK_*, GSK_w and Rekey SA keys (RFC 7296 §2.14, RFC 9838 §3)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from mrkm.crypto import keys
from mrkm.crypto.keys import GSK_W_LABEL, IkeSaKeys
from mrkm.crypto.prf import prf_output_len, prf_plus
from mrkm.errors import BadLength, DecodeError
from mrkm.wire.registry import PrfId

VECTORS = Path(__file__).parent / "vectors"
NIST = json.loads((VECTORS / "nist_cavp_ikev2_kdf.json").read_text())["vectors"]


def h(vector: dict[str, Any], name: str) -> bytes:
    return bytes.fromhex(vector[name])


@pytest.mark.parametrize("vector", NIST, ids=lambda v: v["id"])
def test_skeyseed_nist(vector: dict[str, Any]) -> None:
    got = keys.skeyseed(vector["prf_id"], h(vector, "ni"), h(vector, "nr"), h(vector, "gir"))
    assert got == h(vector, "skeyseed")


@pytest.mark.parametrize("vector", NIST, ids=lambda v: v["id"])
def test_dkm_nist(vector: dict[str, Any]) -> None:
    seed = h(vector, "ni") + h(vector, "nr") + h(vector, "spi_i") + h(vector, "spi_r")
    dkm = h(vector, "dkm")
    assert prf_plus(vector["prf_id"], h(vector, "skeyseed"), seed, len(dkm)) == dkm


@pytest.mark.parametrize(
    ("vector", "encr_key_len", "integ_key_len"),
    [(NIST[0], 16, 0), (NIST[0], 18, 0), (NIST[1], 16, 20), (NIST[1], 36, 0)],
    ids=[
        "sha256-encr16",
        "sha256-encr18-fills-dkm",
        "sha1-encr16-integ20-fills-dkm",
        "sha1-encr36",
    ],
)
def test_derive_ike_sa_keys_cuts_nist_dkm(
    vector: dict[str, Any], encr_key_len: int, integ_key_len: int
) -> None:
    prf_id = vector["prf_id"]
    sa = keys.derive_ike_sa_keys(
        prf_id,
        h(vector, "ni"),
        h(vector, "nr"),
        h(vector, "gir"),
        h(vector, "spi_i"),
        h(vector, "spi_r"),
        encr_key_len,
        integ_key_len,
    )
    p = prf_output_len(prf_id)
    order = [p, integ_key_len, integ_key_len, encr_key_len, encr_key_len, p, p]
    assert sum(order) <= len(h(vector, "dkm"))
    dkm = h(vector, "dkm")
    expected = []
    offset = 0
    for length in order:
        expected.append(dkm[offset : offset + length])
        offset += length
    assert sa == IkeSaKeys(*expected)
    assert sa.sk_d == dkm[:p]


@pytest.mark.parametrize("vector", NIST, ids=lambda v: v["id"])
def test_skeyseed_rekey_nist(vector: dict[str, Any]) -> None:
    sk_d = h(vector, "dkm")[: prf_output_len(vector["prf_id"])]
    got = keys.skeyseed_rekey(
        vector["prf_id"], sk_d, h(vector, "gir_new"), h(vector, "ni"), h(vector, "nr")
    )
    assert got == h(vector, "skeyseed_rekey")


def test_child_sa_keymat_nist() -> None:
    # KEYMAT = prf+(SK_d, Ni | Nr) and, with PFS, prf+(SK_d, g^ir (new) | Ni | Nr) (§2.17).
    vector = NIST[1]
    sk_d = h(vector, "dkm")[:20]
    ni, nr = h(vector, "ni"), h(vector, "nr")
    assert prf_plus(vector["prf_id"], sk_d, ni + nr, 132) == h(vector, "dkm_child_sa")
    pfs_seed = h(vector, "gir_new") + ni + nr
    assert prf_plus(vector["prf_id"], sk_d, pfs_seed, 132) == h(vector, "dkm_child_sa_dh")


def test_ike_sa_keys_hide_secrets_in_repr() -> None:
    sa = IkeSaKeys(b"\x11" * 4, b"", b"", b"\x22" * 4, b"\x33" * 4, b"\x44" * 4, b"\x55" * 4)
    assert "11111111" not in repr(sa)
    assert "\\x11" not in repr(sa)


@pytest.mark.parametrize(("spi_i", "spi_r"), [(bytes(7), bytes(8)), (bytes(8), bytes(9))])
def test_derive_rejects_bad_spi_length(spi_i: bytes, spi_r: bytes) -> None:
    with pytest.raises(ValueError, match="8-octet IKE SPI"):
        keys.derive_ike_sa_keys(
            PrfId.PRF_HMAC_SHA2_256, b"n" * 16, b"r" * 16, b"g", spi_i, spi_r, 20, 0
        )


def test_derive_rejects_negative_lengths() -> None:
    with pytest.raises(ValueError, match="negative"):
        keys.derive_ike_sa_keys(
            PrfId.PRF_HMAC_SHA2_256, b"n", b"r", b"g", bytes(8), bytes(8), -1, 0
        )


# --- GSK_w (RFC 9838 §3.1.1) ----------------------------------------------------------------


def test_gsk_w_label_is_20_ascii_octets() -> None:
    assert GSK_W_LABEL == b"Key Wrap for G-IKEv2"
    assert len(GSK_W_LABEL) == 20


@pytest.mark.parametrize("kwk_len", [16, 24, 32])
def test_gsk_w_is_prf_plus_of_sk_d(kwk_len: int) -> None:
    sk_d = bytes(range(32))
    # prf+ by hand: one block of HMAC-SHA-256 covers every KW_5649 key size.
    block = hmac.new(sk_d, b"Key Wrap for G-IKEv2\x01", hashlib.sha256).digest()
    assert keys.gsk_w(PrfId.PRF_HMAC_SHA2_256, sk_d, kwk_len) == block[:kwk_len]


def test_gsk_w_spans_blocks_with_sha1() -> None:
    sk_d = bytes(range(20))
    t1 = hmac.new(sk_d, GSK_W_LABEL + b"\x01", hashlib.sha1).digest()
    t2 = hmac.new(sk_d, t1 + GSK_W_LABEL + b"\x02", hashlib.sha1).digest()
    assert keys.gsk_w(PrfId.PRF_HMAC_SHA1, sk_d, 32) == (t1 + t2)[:32]


def test_gsk_w_rejects_empty_length() -> None:
    with pytest.raises(ValueError, match="positive"):
        keys.gsk_w(PrfId.PRF_HMAC_SHA2_256, bytes(32), 0)


# --- Rekey SA keymat (RFC 9838 §3.4) --------------------------------------------------------


def test_split_rekey_keymat_cbc() -> None:
    keymat = bytes(range(16 + 32 + 32))
    e, a, w = keys.split_rekey_keymat(keymat, 16, 32, 32)
    assert (e, a, w) == (keymat[:16], keymat[16:48], keymat[48:])


def test_split_rekey_keymat_aead_has_empty_gsk_a() -> None:
    keymat = bytes(range(36 + 32))
    e, a, w = keys.split_rekey_keymat(keymat, 36, 0, 32)
    assert (e, a, w) == (keymat[:36], b"", keymat[36:])


@pytest.mark.parametrize("delta", [-1, 1])
def test_split_rekey_keymat_wrong_length(delta: int) -> None:
    with pytest.raises(BadLength, match="needs 68") as info:
        keys.split_rekey_keymat(bytes(68 + delta), 36, 0, 32)
    assert isinstance(info.value, DecodeError)


def test_split_rekey_keymat_rejects_nonsense_policy() -> None:
    with pytest.raises(ValueError):
        keys.split_rekey_keymat(bytes(32), 0, 0, 32)
    with pytest.raises(ValueError):
        keys.split_rekey_keymat(bytes(32), 32, -1, 1)
