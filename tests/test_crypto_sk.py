"""The SK payload body: seal/open for every suite, tamper and malformed cases."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mrkm.crypto import sk
from mrkm.crypto.sk import SkSuite
from mrkm.errors import BadLength, DecodeError, IntegrityCheckFailed
from mrkm.wire.registry import EncrId, IntegId

GCM = EncrId.ENCR_AES_GCM_16
CBC = EncrId.ENCR_AES_CBC
SUITES = [SkSuite(GCM, bits) for bits in (128, 192, 256)] + [
    SkSuite(CBC, bits, integ)
    for bits in (128, 192, 256)
    for integ in (
        IntegId.AUTH_HMAC_SHA2_256_128,
        IntegId.AUTH_HMAC_SHA2_384_192,
        IntegId.AUTH_HMAC_SHA2_512_256,
    )
]
IDS = [f"{EncrId(s.encr_id).name}-{s.encr_key_bits}-{s.integ_id}" for s in SUITES]
CBC_HASH = {
    IntegId.AUTH_HMAC_SHA2_256_128: hashlib.sha256,
    IntegId.AUTH_HMAC_SHA2_384_192: hashlib.sha384,
    IntegId.AUTH_HMAC_SHA2_512_256: hashlib.sha512,
}


def aad_for(suite: SkSuite, inner_len: int, first_inner: int = 33) -> bytes:
    """IKE header (GSA_REKEY, final Length) | SK generic header (final Payload Length)."""
    body = suite.body_len(inner_len)
    header = (
        bytes(range(1, 17))  # SPIi | SPIr
        + bytes([46, 0x20, 41, 0x08])  # Next Payload SK, version 2.0, GSA_REKEY, I flag
        + (7).to_bytes(4, "big")  # Message ID
        + (28 + 4 + body).to_bytes(4, "big")
    )
    return header + bytes([first_inner, 0]) + (4 + body).to_bytes(2, "big")


def keys_for(suite: SkSuite) -> tuple[bytes, bytes]:
    return os.urandom(suite.encr_key_len), os.urandom(suite.integ_key_len)


def sealed(suite: SkSuite, inner: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    key_e, key_a = keys_for(suite)
    aad = aad_for(suite, len(inner))
    body = sk.seal(suite, key_e, key_a, aad, inner, os.urandom(suite.iv_len))
    return key_e, key_a, aad, body


# --- round trips and independent recomputation ----------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
@pytest.mark.parametrize("inner_len", [0, 1, 14, 15, 16, 17, 100, 1000])
def test_roundtrip(suite: SkSuite, inner_len: int) -> None:
    inner = os.urandom(inner_len)
    key_e, key_a, aad, body = sealed(suite, inner)
    assert len(body) == suite.body_len(inner_len)
    assert sk.open(suite, key_e, key_a, aad, body) == inner


@pytest.mark.parametrize(
    "suite", [s for s in SUITES if s.is_aead], ids=lambda s: str(s.encr_key_bits)
)
def test_gcm_matches_rfc5282_construction(suite: SkSuite) -> None:
    inner = b"inner payloads"
    key_e, _, aad, body = sealed(suite, inner)
    iv = body[:8]
    # nonce = salt (last 4 octets of SK_e) | IV; plaintext = inner | Pad Length 0.
    expected = AESGCM(key_e[:-4]).encrypt(key_e[-4:] + iv, inner + b"\x00", aad)
    assert body[8:] == expected
    assert len(body) == 8 + len(inner) + 1 + 16


@pytest.mark.parametrize("suite", [s for s in SUITES if not s.is_aead], ids=IDS[3:])
def test_cbc_matches_rfc7296_construction(suite: SkSuite) -> None:
    inner = os.urandom(21)
    key_e, key_a, aad, body = sealed(suite, inner)
    iv, icv = body[:16], body[len(body) - suite.icv_len :]
    ciphertext = body[16 : len(body) - suite.icv_len]
    assert len(ciphertext) % 16 == 0
    digest = hmac.new(key_a, aad + iv + ciphertext, CBC_HASH[suite.integ_id]).digest()
    assert icv == digest[: suite.icv_len]
    decryptor = Cipher(algorithms.AES(key_e), modes.CBC(iv)).decryptor()
    plaintext = decryptor.update(ciphertext) + decryptor.finalize()
    # 21 octets + 10 padding + Pad Length = 32: minimal padding.
    assert plaintext == inner + bytes(10) + bytes([10])


@pytest.mark.parametrize(
    ("suite", "encr_key_len", "integ_key_len", "iv_len", "icv_len"),
    [
        (SkSuite(GCM, 128), 20, 0, 8, 16),
        (SkSuite(GCM, 256), 36, 0, 8, 16),
        (SkSuite(CBC, 128, IntegId.AUTH_HMAC_SHA2_256_128), 16, 32, 16, 16),
        (SkSuite(CBC, 256, IntegId.AUTH_HMAC_SHA2_384_192), 32, 48, 16, 24),
        (SkSuite(CBC, 256, IntegId.AUTH_HMAC_SHA2_512_256), 32, 64, 16, 32),
    ],
)
def test_suite_lengths(
    suite: SkSuite, encr_key_len: int, integ_key_len: int, iv_len: int, icv_len: int
) -> None:
    assert (suite.encr_key_len, suite.integ_key_len, suite.iv_len, suite.icv_len) == (
        encr_key_len,
        integ_key_len,
        iv_len,
        icv_len,
    )
    assert suite.is_aead == (suite.encr_id == GCM)


@pytest.mark.parametrize(("inner_len", "body_len"), [(0, 48), (15, 48), (16, 64), (31, 64)])
def test_cbc_body_len(inner_len: int, body_len: int) -> None:
    suite = SkSuite(CBC, 128, IntegId.AUTH_HMAC_SHA2_256_128)
    assert suite.body_len(inner_len) == body_len


def test_gcm_body_len_has_no_padding() -> None:
    suite = SkSuite(GCM, 256)
    assert [suite.body_len(n) for n in (0, 1, 16, 17)] == [25, 26, 41, 42]


def test_body_len_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        SkSuite(GCM, 128).body_len(-1)


# --- tampering ------------------------------------------------------------------------------


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
@pytest.mark.parametrize(
    "where", ["aad-spi", "aad-msgid", "aad-length", "aad-sk-header", "iv", "ciphertext", "icv"]
)
def test_one_flipped_bit_fails_integrity(suite: SkSuite, where: str) -> None:
    key_e, key_a, aad, body = sealed(suite, b"GSA and KD payloads" * 3)
    index = {
        "aad-spi": 0,
        "aad-msgid": 23,
        "aad-length": 27,
        "aad-sk-header": 31,
        "iv": 0,
        "ciphertext": suite.iv_len + 5,
        "icv": len(body) - 1,
    }[where]
    if where.startswith("aad"):
        aad = flip(aad, index)
    else:
        body = flip(body, index)
    with pytest.raises(IntegrityCheckFailed):
        sk.open(suite, key_e, key_a, aad, body)


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_wrong_key_fails_integrity(suite: SkSuite) -> None:
    key_e, _, aad, body = sealed(suite, b"x" * 40)
    other_e, other_a = keys_for(suite)
    if suite.is_aead:
        # Another key or another salt: either breaks the GCM tag.
        for wrong_e in (other_e, key_e[:-4] + other_e[-4:]):
            with pytest.raises(IntegrityCheckFailed):
                sk.open(suite, wrong_e, b"", aad, body)
    else:
        # The ICV is checked with SK_a, before SK_e is ever used.
        with pytest.raises(IntegrityCheckFailed):
            sk.open(suite, key_e, other_a, aad, body)


# --- malformed bodies -----------------------------------------------------------------------


def _cbc_body(suite: SkSuite, key_e: bytes, key_a: bytes, aad: bytes, plaintext: bytes) -> bytes:
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(key_e), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    icv = hmac.new(key_a, aad + iv + ciphertext, CBC_HASH[suite.integ_id]).digest()
    return iv + ciphertext + icv[: suite.icv_len]


def test_cbc_pad_length_too_big() -> None:
    suite = SkSuite(CBC, 128, IntegId.AUTH_HMAC_SHA2_256_128)
    key_e, key_a = keys_for(suite)
    aad = aad_for(suite, 0)
    body = _cbc_body(suite, key_e, key_a, aad, bytes(15) + bytes([16]))
    with pytest.raises(BadLength, match="Pad Length 16") as info:
        sk.open(suite, key_e, key_a, aad, body)
    assert isinstance(info.value, DecodeError)


def test_gcm_pad_length_too_big() -> None:
    suite = SkSuite(GCM, 128)
    key_e = os.urandom(20)
    aad = aad_for(suite, 2)
    iv = os.urandom(8)
    body = iv + AESGCM(key_e[:16]).encrypt(key_e[16:] + iv, b"ab" + bytes([3]), aad)
    with pytest.raises(BadLength, match="Pad Length 3"):
        sk.open(suite, key_e, b"", aad, body)


def test_cbc_accepts_non_minimal_padding() -> None:
    # RFC 7296 §3.14: the receiver accepts any Pad Length that fits.
    suite = SkSuite(CBC, 256, IntegId.AUTH_HMAC_SHA2_512_256)
    key_e, key_a = keys_for(suite)
    aad = aad_for(suite, 3)
    body = _cbc_body(suite, key_e, key_a, aad, b"abc" + b"\xee" * 28 + bytes([28]))
    assert sk.open(suite, key_e, key_a, aad, body) == b"abc"


def test_gcm_accepts_padding() -> None:
    suite = SkSuite(GCM, 256)
    key_e = os.urandom(36)
    aad = aad_for(suite, 2)
    iv = os.urandom(8)
    body = iv + AESGCM(key_e[:32]).encrypt(key_e[32:] + iv, b"ab" + b"\x01\x02" + bytes([2]), aad)
    assert sk.open(suite, key_e, b"", aad, body) == b"ab"


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_body_too_short(suite: SkSuite) -> None:
    key_e, key_a = keys_for(suite)
    for length in (0, suite.iv_len, suite.iv_len + suite.icv_len):
        with pytest.raises(BadLength, match="cannot hold"):
            sk.open(suite, key_e, key_a, b"", os.urandom(length))


def test_cbc_ciphertext_not_whole_blocks() -> None:
    suite = SkSuite(CBC, 128, IntegId.AUTH_HMAC_SHA2_256_128)
    key_e, key_a = keys_for(suite)
    with pytest.raises(BadLength, match="multiple"):
        sk.open(suite, key_e, key_a, b"", os.urandom(16 + 17 + 16))


# --- caller errors --------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_wrong_key_lengths(suite: SkSuite) -> None:
    key_e, key_a = keys_for(suite)
    aad = aad_for(suite, 1)
    iv = os.urandom(suite.iv_len)
    with pytest.raises(ValueError, match="SK_e"):
        sk.seal(suite, key_e[:-1], key_a, aad, b"x", iv)
    with pytest.raises(ValueError, match="SK_a"):
        sk.seal(suite, key_e, key_a + b"\x00", aad, b"x", iv)
    with pytest.raises(ValueError, match="SK_e"):
        sk.open(suite, key_e + b"\x00", key_a, aad, os.urandom(64))


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_wrong_iv_length(suite: SkSuite) -> None:
    key_e, key_a = keys_for(suite)
    with pytest.raises(ValueError, match="IV must be"):
        sk.seal(suite, key_e, key_a, aad_for(suite, 1), b"x", os.urandom(suite.iv_len + 1))


def test_seal_refuses_stale_ike_length() -> None:
    suite = SkSuite(GCM, 128)
    key_e, key_a = keys_for(suite)
    aad = aad_for(suite, 10)  # lengths computed for 10 octets of inner payloads
    with pytest.raises(ValueError, match="IKE header Length"):
        sk.seal(suite, key_e, key_a, aad, b"x" * 11, os.urandom(8))


@pytest.mark.parametrize(
    ("encr_id", "bits", "integ_id", "message"),
    [
        (GCM, 128, IntegId.AUTH_HMAC_SHA2_256_128, "no INTEG"),
        (CBC, 128, 0, "needs an INTEG"),
        (CBC, 128, IntegId.AUTH_HMAC_SHA1_96, "needs an INTEG"),
        (GCM, 64, 0, "Key Length"),
        (CBC, 512, IntegId.AUTH_HMAC_SHA2_256_128, "Key Length"),
        (EncrId.ENCR_AES_GCM_8, 128, 0, "unsupported"),
        (EncrId.ENCR_AES_CTR, 128, IntegId.AUTH_HMAC_SHA2_256_128, "unsupported"),
        (EncrId.ENCR_NULL, 128, IntegId.AUTH_HMAC_SHA2_256_128, "unsupported"),
    ],
)
def test_suite_validation(encr_id: int, bits: int, integ_id: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SkSuite(encr_id, bits, integ_id)
