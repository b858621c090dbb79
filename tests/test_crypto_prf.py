"""prf and prf+ (RFC 7296 §2.13) against RFC 4231 and a hand-built prf+."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from mrkm.crypto.prf import PRF_PLUS_MAX_BLOCKS, prf, prf_output_len, prf_plus
from mrkm.wire.registry import PrfId

VECTORS = Path(__file__).parent / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


RFC4231 = load("rfc4231_hmac_sha2.json")["vectors"]
PRF_FIELDS = [
    (PrfId.PRF_HMAC_SHA2_256, "hmac_sha256"),
    (PrfId.PRF_HMAC_SHA2_384, "hmac_sha384"),
    (PrfId.PRF_HMAC_SHA2_512, "hmac_sha512"),
]


@pytest.mark.parametrize("vector", RFC4231, ids=[v["id"] for v in RFC4231])
@pytest.mark.parametrize(("prf_id", "field"), PRF_FIELDS, ids=[f for _, f in PRF_FIELDS])
def test_prf_matches_rfc4231(vector: dict[str, Any], prf_id: int, field: str) -> None:
    expected = bytes.fromhex(vector[field])
    out = prf(prf_id, bytes.fromhex(vector["key"]), bytes.fromhex(vector["data"]))
    # Test Case 5 publishes only the first 128 bits of each output.
    assert out[: len(expected)] == expected
    assert len(out) == prf_output_len(prf_id)


def test_rfc4231_has_the_required_cases() -> None:
    assert {v["id"] for v in RFC4231} >= {"tc1", "tc2", "tc3", "tc4", "tc6", "tc7"}


@pytest.mark.parametrize(
    ("prf_id", "length"),
    [
        (PrfId.PRF_HMAC_SHA1, 20),
        (PrfId.PRF_HMAC_SHA2_256, 32),
        (PrfId.PRF_HMAC_SHA2_384, 48),
        (PrfId.PRF_HMAC_SHA2_512, 64),
    ],
)
def test_prf_output_len(prf_id: int, length: int) -> None:
    assert prf_output_len(prf_id) == length
    assert len(prf(prf_id, b"k", b"d")) == length


@pytest.mark.parametrize("bad", [0, 1, 3, 4, 8, 255])
def test_unknown_prf_is_named(bad: int) -> None:
    with pytest.raises(ValueError, match=rf"PRF transform ID {bad}\b"):
        prf(bad, b"k", b"d")
    with pytest.raises(ValueError, match=rf"PRF transform ID {bad}\b"):
        prf_output_len(bad)
    with pytest.raises(ValueError, match=rf"PRF transform ID {bad}\b"):
        prf_plus(bad, b"k", b"s", 10)


def _prf_plus_by_hand(key: bytes, seed: bytes, length: int) -> bytes:
    # T1 = prf(K, S | 0x01), Tn = prf(K, T(n-1) | S | n)   (RFC 7296 §2.13)
    blocks = [hmac.new(key, seed + b"\x01", hashlib.sha256).digest()]
    while sum(map(len, blocks)) < length:
        n = len(blocks) + 1
        blocks.append(hmac.new(key, blocks[-1] + seed + bytes([n]), hashlib.sha256).digest())
    return b"".join(blocks)[:length]


@pytest.mark.parametrize("length", [0, 1, 31, 32, 33, 64, 100, 1000])
def test_prf_plus_matches_definition(length: int) -> None:
    key, seed = b"\x42" * 32, b"Ni|Nr|SPIi|SPIr"
    assert prf_plus(PrfId.PRF_HMAC_SHA2_256, key, seed, length) == _prf_plus_by_hand(
        key, seed, length
    )


def test_prf_plus_is_a_prefix_family() -> None:
    long = prf_plus(PrfId.PRF_HMAC_SHA2_512, b"k", b"s", 500)
    assert prf_plus(PrfId.PRF_HMAC_SHA2_512, b"k", b"s", 77) == long[:77]


def test_prf_plus_stops_at_255_blocks() -> None:
    block = prf_output_len(PrfId.PRF_HMAC_SHA2_256)
    most = PRF_PLUS_MAX_BLOCKS * block
    assert len(prf_plus(PrfId.PRF_HMAC_SHA2_256, b"k", b"s", most)) == most
    with pytest.raises(ValueError, match="255"):
        prf_plus(PrfId.PRF_HMAC_SHA2_256, b"k", b"s", most + 1)


def test_prf_plus_rejects_negative_length() -> None:
    with pytest.raises(ValueError, match="negative"):
        prf_plus(PrfId.PRF_HMAC_SHA2_256, b"k", b"s", -1)
