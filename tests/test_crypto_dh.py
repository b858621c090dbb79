"""KE payload data and g^ir for groups 31, 19 and 14 (RFC 8031, RFC 5903, RFC 3526)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mrkm.crypto import dh
from mrkm.crypto.dh import MODP_2048_PRIME, InvalidKeyExchange
from mrkm.errors import CryptoError
from mrkm.wire.registry import DhGroup

VECTORS = Path(__file__).parent / "vectors"
P25519 = 2**255 - 19
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def fixed(*chunks: bytes) -> Callable[[int], bytes]:
    """An rng that hands out ``chunks`` in order, each exactly as asked."""
    queue = list(chunks)

    def rng(n: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) == n
        return chunk

    return rng


X25519 = load("rfc7748_x25519.json")
ECP256 = load("rfc5903_ecp256.json")


# --- group 31, Curve25519 (RFC 8031 §2, RFC 7748) -------------------------------------------


@pytest.mark.parametrize("vector", X25519["scalar_mult"], ids=lambda v: v["id"])
def test_x25519_scalar_mult_rfc7748_5_2(vector: dict[str, str]) -> None:
    priv = dh.generate(DhGroup.CURVE25519, fixed(bytes.fromhex(vector["scalar"])))
    # RFC 7748 §5 masks the top bit of an incoming u-coordinate; vector 2 sets it.
    assert dh.shared_secret(priv, bytes.fromhex(vector["u"])) == bytes.fromhex(vector["output"])


def test_x25519_iterated_rfc7748_5_2() -> None:
    k = u = bytes.fromhex(X25519["iterated"]["start"])
    for i in range(1, 1001):
        k, u = dh.shared_secret(dh.generate(DhGroup.CURVE25519, fixed(k)), u), k
        if i == 1:
            assert k == bytes.fromhex(X25519["iterated"]["after_1"])
    assert k == bytes.fromhex(X25519["iterated"]["after_1000"])


def test_x25519_diffie_hellman_rfc7748_6_1() -> None:
    v = X25519["diffie_hellman"]
    alice = dh.generate(DhGroup.CURVE25519, fixed(bytes.fromhex(v["alice_private"])))
    bob = dh.generate(DhGroup.CURVE25519, fixed(bytes.fromhex(v["bob_private"])))
    assert alice.public_bytes == bytes.fromhex(v["alice_public"])
    assert bob.public_bytes == bytes.fromhex(v["bob_public"])
    assert dh.shared_secret(alice, bob.public_bytes) == bytes.fromhex(v["shared"])
    assert dh.shared_secret(bob, alice.public_bytes) == bytes.fromhex(v["shared"])


@pytest.mark.parametrize(
    "u",
    [
        0,
        1,
        P25519 - 1,
        P25519,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
    ],
    ids=["zero", "one", "p-1", "p", "order-8"],
)
def test_x25519_rejects_low_order_points(u: int) -> None:
    priv = dh.generate(DhGroup.CURVE25519, os.urandom)
    with pytest.raises(InvalidKeyExchange, match="all-zero"):
        dh.shared_secret(priv, u.to_bytes(32, "little"))


# --- group 19, 256-bit random ECP (RFC 5903) ------------------------------------------------


def test_ecp256_rfc5903_8_1() -> None:
    v = ECP256
    assert v["group"] == DhGroup.ECP_256
    i = dh.generate(DhGroup.ECP_256, fixed(bytes.fromhex(v["i"])))
    r = dh.generate(DhGroup.ECP_256, fixed(bytes.fromhex(v["r"])))
    # KE data is x | y, 64 octets, no 0x04 prefix (RFC 5903 §7).
    assert i.public_bytes == bytes.fromhex(v["gi_x"] + v["gi_y"])
    assert r.public_bytes == bytes.fromhex(v["gr_x"] + v["gr_y"])
    # g^ir is the x coordinate only (RFC 5903 §7).
    assert dh.shared_secret(i, r.public_bytes) == bytes.fromhex(v["gir_x"])
    assert dh.shared_secret(r, i.public_bytes) == bytes.fromhex(v["gir_x"])


def test_ecp256_rejection_samples_scalars() -> None:
    too_big = P256_ORDER.to_bytes(32, "big")
    priv = dh.generate(DhGroup.ECP_256, fixed(bytes(32), too_big, bytes.fromhex(ECP256["i"])))
    assert priv.public_bytes == bytes.fromhex(ECP256["gi_x"] + ECP256["gi_y"])


def test_ecp256_gives_up_on_a_stuck_rng() -> None:
    with pytest.raises(ValueError, match="P-256 scalar"):
        dh.generate(DhGroup.ECP_256, lambda n: b"\xff" * n)


def test_ecp256_rejects_point_off_curve() -> None:
    priv = dh.generate(DhGroup.ECP_256, os.urandom)
    good = bytearray(bytes.fromhex(ECP256["gr_x"] + ECP256["gr_y"]))
    good[-1] ^= 1
    with pytest.raises(InvalidKeyExchange, match="not a point"):
        dh.shared_secret(priv, bytes(good))
    with pytest.raises(InvalidKeyExchange):
        dh.shared_secret(priv, bytes(64))


# --- group 14, 2048-bit MODP (RFC 3526) -----------------------------------------------------


def _pi_times_2_to(bits: int) -> int:
    """floor(pi * 2^bits) by Machin's formula in integer arithmetic."""
    guard = 64
    scale = 1 << (bits + guard)

    def arctan_inv(x: int) -> int:
        total, term, k, sign = 0, scale // x, 1, 1
        while term:
            total += sign * (term // k)
            term //= x * x
            k += 2
            sign = -sign
        return total

    return (16 * arctan_inv(5) - 4 * arctan_inv(239)) >> guard


def test_modp_2048_prime_is_rfc3526_formula() -> None:
    # RFC 3526 §3: p = 2^2048 - 2^1984 - 1 + 2^64 * { [2^1918 pi] + 124476 }
    formula = 2**2048 - 2**1984 - 1 + 2**64 * (_pi_times_2_to(1918) + 124476)
    assert formula == MODP_2048_PRIME
    assert MODP_2048_PRIME.bit_length() == 2048


def test_modp_2048_agreement_and_encoding() -> None:
    a = dh.generate(DhGroup.MODP_2048, os.urandom)
    b = dh.generate(DhGroup.MODP_2048, os.urandom)
    assert len(a.public_bytes) == len(b.public_bytes) == 256
    secret = dh.shared_secret(a, b.public_bytes)
    assert secret == dh.shared_secret(b, a.public_bytes)
    assert len(secret) == 256


def test_modp_2048_public_value_is_g_to_the_x() -> None:
    seed = bytes(range(64))
    priv = dh.generate(DhGroup.MODP_2048, fixed(seed))
    exponent = 2 + int.from_bytes(seed, "big") % (MODP_2048_PRIME - 3)
    assert priv.public_bytes == pow(2, exponent, MODP_2048_PRIME).to_bytes(256, "big")


def test_modp_2048_small_results_are_left_padded() -> None:
    # Peer value 2 with exponent 1000 gives 2^1000: 126 significant octets.
    priv = dh.DhPrivate(DhGroup.MODP_2048, dh.ModpPrivateKey(1000), b"")
    secret = dh.shared_secret(priv, (2).to_bytes(256, "big"))
    assert secret == (2**1000).to_bytes(256, "big")
    assert secret[:130] == bytes(130)


@pytest.mark.parametrize(
    "y",
    [0, 1, MODP_2048_PRIME - 1, MODP_2048_PRIME, 2**2048 - 1],
    ids=["0", "1", "p-1", "p", "max"],
)
def test_modp_2048_rejects_degenerate_values(y: int) -> None:
    priv = dh.generate(DhGroup.MODP_2048, os.urandom)
    with pytest.raises(InvalidKeyExchange, match="between 1 and p - 1"):
        dh.shared_secret(priv, y.to_bytes(256, "big"))


# --- all groups -----------------------------------------------------------------------------

GROUPS = [DhGroup.CURVE25519, DhGroup.ECP_256, DhGroup.MODP_2048]


@pytest.mark.parametrize(("group", "length"), [(31, 32), (19, 64), (14, 256)])
def test_public_len(group: int, length: int) -> None:
    assert dh.public_len(group) == length
    assert len(dh.generate(group, os.urandom).public_bytes) == length


@pytest.mark.parametrize("group", GROUPS)
def test_generate_is_deterministic_in_rng(group: int) -> None:
    def rng(n: int) -> bytes:
        return bytes((7 * i + 3) % 256 for i in range(n))

    assert dh.generate(group, rng).public_bytes == dh.generate(group, rng).public_bytes


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_peer_length(group: int, delta: int) -> None:
    priv = dh.generate(group, os.urandom)
    peer = dh.generate(group, os.urandom).public_bytes
    bad = peer[:delta] if delta < 0 else peer + b"\x00"
    with pytest.raises(InvalidKeyExchange, match=f"must be {dh.public_len(group)} octets"):
        dh.shared_secret(priv, bad)


def test_invalid_key_exchange_is_a_crypto_error() -> None:
    assert issubclass(InvalidKeyExchange, CryptoError)


@pytest.mark.parametrize("group", GROUPS)
def test_rng_returning_wrong_length_is_refused(group: int) -> None:
    with pytest.raises(ValueError, match="rng returned"):
        dh.generate(group, lambda n: bytes(n - 1))


@pytest.mark.parametrize("group", [0, 2, 20, 32, 35])
def test_unknown_group(group: int) -> None:
    with pytest.raises(ValueError, match=f"key exchange method {group}"):
        dh.generate(group, os.urandom)
    with pytest.raises(ValueError, match=f"key exchange method {group}"):
        dh.public_len(group)


def test_private_key_is_not_in_repr() -> None:
    priv = dh.generate(DhGroup.MODP_2048, fixed(bytes(range(64))))
    assert "exponent" not in repr(priv)
    assert "key=" not in repr(priv)
