"""KW_5649_* key wrap (RFC 5649, RFC 9838 §4.5.4)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mrkm.crypto import keywrap
from mrkm.errors import BadLength, IntegrityCheckFailed
from mrkm.wire.registry import KwaId

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc5649_keywrap.json").read_text())[
    "vectors"
]
KWAS = [(KwaId.KW_5649_128, 16), (KwaId.KW_5649_192, 24), (KwaId.KW_5649_256, 32)]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["id"])
def test_rfc5649_wrap(vector: dict[str, Any]) -> None:
    kek = bytes.fromhex(vector["kek"])
    assert len(kek) == keywrap.kwk_len(KwaId.KW_5649_192)
    wrapped = keywrap.wrap(KwaId.KW_5649_192, kek, bytes.fromhex(vector["key"]))
    assert wrapped == bytes.fromhex(vector["wrapped"])


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["id"])
def test_rfc5649_unwrap(vector: dict[str, Any]) -> None:
    kek = bytes.fromhex(vector["kek"])
    key = keywrap.unwrap(KwaId.KW_5649_192, kek, bytes.fromhex(vector["wrapped"]))
    assert key == bytes.fromhex(vector["key"])


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["id"])
@pytest.mark.parametrize("index", [0, 7, 8, -1])
def test_rfc5649_tampered(vector: dict[str, Any], index: int) -> None:
    wrapped = bytearray(bytes.fromhex(vector["wrapped"]))
    wrapped[index] ^= 0x80
    with pytest.raises(IntegrityCheckFailed):
        keywrap.unwrap(KwaId.KW_5649_192, bytes.fromhex(vector["kek"]), bytes(wrapped))


@pytest.mark.parametrize(("kwa_id", "length"), KWAS)
def test_kwk_len(kwa_id: int, length: int) -> None:
    assert keywrap.kwk_len(kwa_id) == length


@pytest.mark.parametrize("kwa_id", [0, 4, 5, 255])
def test_unknown_kwa(kwa_id: int) -> None:
    with pytest.raises(ValueError, match=f"key wrap algorithm {kwa_id}"):
        keywrap.kwk_len(kwa_id)
    with pytest.raises(ValueError, match=f"key wrap algorithm {kwa_id}"):
        keywrap.wrap(kwa_id, bytes(32), b"key")


@pytest.mark.parametrize(("kwa_id", "length"), KWAS)
@pytest.mark.parametrize("key_len", [1, 7, 8, 9, 16, 20, 32, 36, 64, 100, 256])
def test_roundtrip(kwa_id: int, length: int, key_len: int) -> None:
    kwk, key = os.urandom(length), os.urandom(key_len)
    wrapped = keywrap.wrap(kwa_id, kwk, key)
    assert len(wrapped) == 8 * -(-key_len // 8) + 8
    assert keywrap.unwrap(kwa_id, kwk, wrapped) == key


@pytest.mark.parametrize(("kwa_id", "length"), KWAS)
def test_wrong_kwk_fails_integrity(kwa_id: int, length: int) -> None:
    wrapped = keywrap.wrap(kwa_id, os.urandom(length), os.urandom(36))
    with pytest.raises(IntegrityCheckFailed):
        keywrap.unwrap(kwa_id, os.urandom(length), wrapped)


@pytest.mark.parametrize(("kwa_id", "length"), KWAS)
@pytest.mark.parametrize("delta", [-8, -1, 1, 8])
def test_wrong_kwk_length(kwa_id: int, length: int, delta: int) -> None:
    with pytest.raises(ValueError, match=f"{length}-octet KWK"):
        keywrap.wrap(kwa_id, bytes(length + delta), b"key")
    with pytest.raises(ValueError, match=f"{length}-octet KWK"):
        keywrap.unwrap(kwa_id, bytes(length + delta), bytes(16))


@pytest.mark.parametrize("size", [0, 8, 15, 17, 23])
def test_unwrap_bad_length(size: int) -> None:
    with pytest.raises(BadLength):
        keywrap.unwrap(KwaId.KW_5649_256, bytes(32), bytes(size))


def test_wrap_empty_key() -> None:
    with pytest.raises(ValueError, match="empty"):
        keywrap.wrap(KwaId.KW_5649_256, bytes(32), b"")
