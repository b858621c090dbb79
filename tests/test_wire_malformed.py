"""Every byte string decodes to a message or raises one of MRKM's own errors.

Random bytes and mutations of valid messages (Hypothesis), plus one negative
test per malformed shape that has a name.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrkm.errors import BadLength, BadValue, DecodeError, Truncated, UnsupportedCriticalPayload
from mrkm.wire import (
    Buffer,
    GsaPayload,
    IkeHeader,
    NoncePayload,
    decode_chain,
    decode_message,
    encode_chain,
    encode_message,
)
from mrkm.wire.registry import NotifyType, PayloadType
from tests import strategies as s

HDR = IkeHeader(b"\x11" * 8, b"\x22" * 8, 34, 0x08, 0)


def _decode_or_own_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    _decode_or_own_error(data)


@settings(max_examples=500)
@given(st.binary(min_size=28, max_size=28), st.binary(max_size=200))
def test_random_bytes_behind_a_plausible_header(head: bytes, rest: bytes) -> None:
    # Fix version and Length so decoding reaches the payload chain.
    data = bytearray(head + rest)
    data[17] = 0x20
    data[24:28] = len(data).to_bytes(4, "big")
    _decode_or_own_error(bytes(data))


@settings(max_examples=500)
@given(s.headers, s.payload_chains(), st.data())
def test_mutations_of_valid_messages(
    header: IkeHeader, chain: tuple[object, ...], data: st.DataObject
) -> None:
    raw = bytearray(encode_message(header, chain))  # type: ignore[arg-type]
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[pos : pos + data.draw(st.integers(1, 8))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _decode_or_own_error(bytes(raw))
    # With the Length field repaired, the chain parser is exercised too.
    if len(raw) >= 28:
        raw[24:28] = len(raw).to_bytes(4, "big")
        _decode_or_own_error(bytes(raw))


def test_truncated_header() -> None:
    with pytest.raises(Truncated):
        decode_message(b"\x00" * 27)


def test_length_field_must_match_datagram() -> None:
    data = encode_message(HDR, (NoncePayload(b"n" * 16),))
    with pytest.raises(BadLength, match="Length field"):
        decode_message(data + b"\x00")


def test_wrong_major_version() -> None:
    data = bytearray(encode_message(HDR, ()))
    data[17] = 0x10
    with pytest.raises(BadValue, match="major version 1"):
        decode_message(bytes(data))


def test_unknown_critical_payload_maps_to_notify_1() -> None:
    # Payload type 99 with the critical bit set, empty body.
    chain = bytes([0, 0x80, 0, 4])
    with pytest.raises(UnsupportedCriticalPayload) as info:
        decode_chain(99, chain)
    assert info.value.notify_type == NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD
    assert info.value.payload_type == 99


def test_unknown_noncritical_payload_is_kept() -> None:
    (payload,) = decode_chain(99, bytes([0, 0, 0, 7]) + b"abc")
    assert payload.payload_type == 99 and payload.data == b"abc"  # type: ignore[union-attr]


def test_payload_length_shorter_than_header() -> None:
    with pytest.raises(BadLength):
        decode_chain(PayloadType.NONCE, bytes([0, 0, 0, 3]))


def test_payload_length_beyond_data() -> None:
    with pytest.raises(Truncated):
        decode_chain(PayloadType.NONCE, bytes([0, 0, 0, 40]) + b"x" * 16)


def test_octets_after_last_payload() -> None:
    _, chain = encode_chain((NoncePayload(b"n" * 16),))
    with pytest.raises(BadLength, match="after the last payload"):
        decode_chain(PayloadType.NONCE, chain + b"\x00")


def test_sk_must_be_last() -> None:
    # SK (46) followed by a Nonce that is still inside the datagram.
    raw = bytes([40, 0, 0, 4]) + bytes([0, 0, 0, 20]) + b"n" * 16
    with pytest.raises(BadLength, match="SK payload"):
        decode_chain(PayloadType.SK, raw)


def test_nonce_too_short() -> None:
    with pytest.raises(BadLength, match="nonce of 15"):
        decode_chain(PayloadType.NONCE, bytes([0, 0, 0, 19]) + b"n" * 15)


def test_transform_with_bad_last_marker() -> None:
    # Proposal 1, IKE, no SPI, 1 transform whose Last Substruc is 5.
    transform = bytes([5, 0, 0, 8, 1, 0, 0, 20])
    proposal = bytes([0, 0, 0, 8 + len(transform), 1, 1, 0, 1]) + transform
    with pytest.raises(BadValue, match="Last Substruc is 5"):
        decode_chain(PayloadType.SA, bytes([0, 0, 0, 4 + len(proposal)]) + proposal)


def test_transform_count_disagrees_with_last_marker() -> None:
    transform = bytes([0, 0, 0, 8, 1, 0, 0, 20])
    proposal = bytes([0, 0, 0, 8 + 2 * len(transform), 1, 1, 0, 2]) + transform * 2
    with pytest.raises(BadValue, match="transform count"):
        decode_chain(PayloadType.SA, bytes([0, 0, 0, 4 + len(proposal)]) + proposal)


def test_traffic_selector_length_must_fit_type() -> None:
    ts = bytes([7, 17, 0, 20]) + bytes(12)
    policy = bytes([201, 1, 0, 4 + 1 + len(ts) * 2, 7]) + ts + ts
    with pytest.raises(BadLength, match="traffic selector"):
        GsaPayload.pull(Buffer(policy))


def test_gsa_policy_spi_size_must_fit_protocol() -> None:
    # An OSPFv2 policy (201) claims a 4-octet SPI: MRKM fixes it at 1 (the Key ID).
    ts = bytes([7, 0, 0, 16, 0, 0, 255, 255]) + bytes(8)
    transform = bytes([0, 0, 0, 8, 3, 0, 4, 2])
    body = bytes([201, 4, 0, 0]) + b"\x00" * 4 + ts + ts + transform
    body = body[:2] + len(body).to_bytes(2, "big") + body[4:]
    with pytest.raises(BadValue, match="want 1"):
        GsaPayload.pull(Buffer(body))


def test_delete_spis_must_fill_payload() -> None:
    with pytest.raises(BadLength, match="delete"):
        decode_chain(PayloadType.DELETE, bytes([0, 0, 0, 11, 6, 16, 0, 1, 1, 2, 3]))


def test_auth_signature_algorithm_identifier_must_be_der_sequence() -> None:
    body = bytes([14, 0, 0, 0, 3, 0x04, 1, 0]) + b"sig"
    with pytest.raises(BadValue, match="AlgorithmIdentifier"):
        decode_chain(PayloadType.AUTH, bytes([0, 0, 0, 4 + len(body)]) + body)


def test_wrapped_key_too_short() -> None:
    from mrkm.wire import WrappedKey

    with pytest.raises(BadLength, match="RFC 5649"):
        WrappedKey.decode(bytes(8) + bytes(8))
    with pytest.raises(Truncated):
        WrappedKey.decode(bytes(5))


def test_address_identity_must_have_address_size() -> None:
    # ID_IPV4_ADDR (1) with 3 octets of data (RFC 7296 §3.5 wants 4).
    with pytest.raises(BadLength, match="ID type 1 needs 4"):
        decode_chain(PayloadType.IDI, bytes([0, 0, 0, 11, 1, 0, 0, 0, 10, 0, 0]))
