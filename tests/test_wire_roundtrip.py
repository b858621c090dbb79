"""decode(encode(x)) == x for every payload and for whole messages (STYLE.md item 10)."""

from __future__ import annotations

from hypothesis import given, settings

from mrkm.wire import Buffer, Message, decode_chain, decode_message, encode_chain, encode_message
from tests import strategies as s


def _roundtrip_body(payload: object) -> object:
    buf = Buffer()
    payload.push(buf)  # type: ignore[attr-defined]
    return type(payload).pull(Buffer(buf.data()))  # type: ignore[attr-defined]


@given(s.sa_payloads)
def test_sa_roundtrip(payload: object) -> None:
    assert _roundtrip_body(payload) == payload


@given(s.gsa_payloads)
def test_gsa_roundtrip(payload: object) -> None:
    assert _roundtrip_body(payload) == payload


@given(s.kd_payloads)
def test_kd_roundtrip(payload: object) -> None:
    assert _roundtrip_body(payload) == payload


@given(s.wrapped_keys)
def test_wrapped_key_roundtrip(key: s.WrappedKey) -> None:
    assert s.WrappedKey.decode(key.encode()) == key


@given(s.payloads)
def test_every_payload_roundtrips_in_a_chain(payload: object) -> None:
    first, data = encode_chain((payload,))  # type: ignore[arg-type]
    assert decode_chain(first, data) == (payload,)


@settings(max_examples=300)
@given(s.headers, s.payload_chains())
def test_message_roundtrip(header: s.IkeHeader, chain: tuple[object, ...]) -> None:
    data = encode_message(header, chain)  # type: ignore[arg-type]
    message = decode_message(data)
    assert message == Message(header, chain)  # type: ignore[arg-type]
    # ... and the encoder reproduces the very same octets.
    assert encode_message(message.header, message.payloads) == data
