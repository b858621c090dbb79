"""Key exchange for IKE_SA_INIT: Curve25519, NIST P-256 and MODP-2048.

The bytes produced and accepted here are exactly the Key Exchange Data of the
KE payload (RFC 7296 §3.4) and the shared secret g^ir that feeds SKEYSEED
(RFC 7296 §2.14):

* group 31, Curve25519 (RFC 8031 §2): 32-octet X25519 public value; g^ir is
  the 32-octet X25519 output, and an all-zero output MUST be rejected
  (RFC 8031 §2, RFC 7748 §6.1).
* group 19, 256-bit random ECP (RFC 5903 §7): public value is x | y, 64
  octets, without the 0x04 prefix; g^ir is the x coordinate only (32 octets).
  The peer's point is checked to be on the curve (RFC 5903 §7, RFC 6989 §2).
* group 14, 2048-bit MODP (RFC 3526 §3, RFC 7296 §3.4): public value and g^ir
  are big-endian integers left-padded with zeros to 256 octets; the peer value
  must satisfy 1 < y < p - 1 (RFC 6989 §2). ``cryptography`` has deprecated
  finite-field DH, so this group is plain modular exponentiation on Python
  integers. That is not constant-time; MRKM offers MODP-2048 only for interop
  tests and defaults to Curve25519.

MRKM never draws randomness itself: :func:`generate` takes an ``rng`` callable
so that a test (or the simulated network) can make every key reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from mrkm.crypto.errors import UnsupportedTransform
from mrkm.errors import CryptoError
from mrkm.wire.registry import DhGroup

__all__ = [
    "MODP_2048_GENERATOR",
    "MODP_2048_PRIME",
    "DhPrivate",
    "InvalidKeyExchange",
    "ModpPrivateKey",
    "generate",
    "public_len",
    "shared_secret",
]

#: The 2048-bit MODP prime of RFC 3526 §3 (group 14):
#: p = 2^2048 - 2^1984 - 1 + 2^64 * ( [2^1918 pi] + 124476 ).
MODP_2048_PRIME = int(
    "FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1"
    "29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD"
    "EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245"
    "E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED"
    "EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D"
    "C2007CB8 A163BF05 98DA4836 1C55D39A 69163FA8 FD24CF5F"
    "83655D23 DCA3AD96 1C62F356 208552BB 9ED52907 7096966D"
    "670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B"
    "E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9"
    "DE2BCBF6 95581718 3995497C EA956AE5 15D22618 98FA0510"
    "15728E5A 8AACAA68 FFFFFFFF FFFFFFFF".replace(" ", ""),
    16,
)
#: The generator of RFC 3526 §3 group 14.
MODP_2048_GENERATOR = 2

_MODP_LEN = 256
# Private exponent size for MODP-2048: 512 bits, above the 220 to 320 bits that
# RFC 3526 §8 gives for this group.
_MODP_EXPONENT_LEN = 64
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_SCALAR_LEN = 32
# Rejection sampling of a P-256 scalar fails with probability < 2^-32 per draw;
# giving up after this many draws means the rng is broken.
_MAX_DRAWS = 64

_PUBLIC_LEN: dict[int, int] = {
    DhGroup.MODP_2048: _MODP_LEN,
    DhGroup.ECP_256: 64,
    DhGroup.CURVE25519: 32,
}


@dataclass(frozen=True)
class ModpPrivateKey:
    """A private exponent of the RFC 3526 2048-bit MODP group (group 14)."""

    exponent: int = field(repr=False)


PrivateKey = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey | ModpPrivateKey


class InvalidKeyExchange(CryptoError):
    """The peer's Key Exchange Data is malformed or yields an unusable secret.

    Raised for a wrong length, a point not on the curve, a MODP value outside
    (1, p - 1) or an all-zero X25519 result (RFC 8031 §2, RFC 7748 §6.1, RFC 6989).
    """


@dataclass(frozen=True)
class DhPrivate:
    """Our half of one key exchange.

    ``public_bytes`` is the Key Exchange Data to put in our KE payload
    (RFC 7296 §3.4), already in the group's wire encoding.
    """

    group: int
    key: PrivateKey = field(repr=False)
    public_bytes: bytes


def public_len(group: int) -> int:
    """Return the length in octets of the KE payload data of ``group``."""
    try:
        return _PUBLIC_LEN[group]
    except KeyError:
        raise UnsupportedTransform(_unsupported(group)) from None


def _unsupported(group: int) -> str:
    known = ", ".join(f"{DhGroup(g).name}={g}" for g in _PUBLIC_LEN)
    return f"unsupported key exchange method {group} (supported: {known})"


def _draw(rng: Callable[[int], bytes], n: int) -> bytes:
    data = rng(n)
    if len(data) != n:
        raise ValueError(f"rng returned {len(data)} octets, {n} were asked for")
    return data


def generate(group: int, rng: Callable[[int], bytes]) -> DhPrivate:
    """Create a key pair for ``group``, deterministic in the octets ``rng`` returns.

    X25519 uses 32 octets as the private scalar (clamped by X25519 itself,
    RFC 7748 §5); P-256 draws 32 octets until they form a scalar in
    [1, n - 1]; MODP-2048 turns 64 octets into an exponent in [2, p - 2].
    """
    if group == DhGroup.CURVE25519:
        xkey = x25519.X25519PrivateKey.from_private_bytes(_draw(rng, 32))
        public = xkey.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return DhPrivate(group, xkey, public)
    if group == DhGroup.ECP_256:
        for _ in range(_MAX_DRAWS):
            scalar = int.from_bytes(_draw(rng, _P256_SCALAR_LEN), "big")
            if 0 < scalar < _P256_ORDER:
                break
        else:
            raise ValueError("rng did not produce a valid P-256 scalar; is it constant?")
        ekey = ec.derive_private_key(scalar, ec.SECP256R1())
        numbers = ekey.public_key().public_numbers()
        public = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
        return DhPrivate(group, ekey, public)
    if group == DhGroup.MODP_2048:
        exponent = 2 + int.from_bytes(_draw(rng, _MODP_EXPONENT_LEN), "big") % (MODP_2048_PRIME - 3)
        y = pow(MODP_2048_GENERATOR, exponent, MODP_2048_PRIME)
        return DhPrivate(group, ModpPrivateKey(exponent), y.to_bytes(_MODP_LEN, "big"))
    raise UnsupportedTransform(_unsupported(group))


def shared_secret(priv: DhPrivate, peer_public: bytes) -> bytes:
    """Compute g^ir from our private half and the peer's KE payload data.

    Returns the group's g^ir encoding (RFC 8031 §2, RFC 5903 §7, RFC 7296
    §3.4). Raises :class:`InvalidKeyExchange` if the peer's value has the
    wrong length or is not a valid group element, or if the result is
    degenerate.
    """
    expected = public_len(priv.group)
    if len(peer_public) != expected:
        raise InvalidKeyExchange(
            f"KE data for {DhGroup(priv.group).name} must be {expected} octets, "
            f"got {len(peer_public)}"
        )
    key = priv.key
    if isinstance(key, x25519.X25519PrivateKey):
        return _x25519_secret(key, peer_public)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return _ecp_secret(key, peer_public)
    return _modp_secret(key, peer_public)


def _x25519_secret(key: x25519.X25519PrivateKey, peer_public: bytes) -> bytes:
    try:
        secret = key.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:
        # OpenSSL refuses low-order points because they give the zero output.
        raise InvalidKeyExchange(
            "X25519 peer value gives an all-zero shared secret (RFC 8031 §2, RFC 7748 §6.1)"
        ) from exc
    if secret == bytes(32):
        raise InvalidKeyExchange("X25519 shared secret is all zero (RFC 8031 §2, RFC 7748 §6.1)")
    return secret


def _ecp_secret(key: ec.EllipticCurvePrivateKey, peer_public: bytes) -> bytes:
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, b"\x04" + peer_public)
    except ValueError as exc:
        raise InvalidKeyExchange("ECP peer value is not a point on P-256 (RFC 5903 §7)") from exc
    # ECDH returns the x coordinate of the shared point only (RFC 5903 §7).
    return key.exchange(ec.ECDH(), peer)


def _modp_secret(key: ModpPrivateKey, peer_public: bytes) -> bytes:
    y = int.from_bytes(peer_public, "big")
    if not 1 < y < MODP_2048_PRIME - 1:
        raise InvalidKeyExchange("MODP peer value must lie strictly between 1 and p - 1")
    secret = pow(y, key.exponent, MODP_2048_PRIME)
    # g^ir is fixed-length, zero-padded on the left (RFC 7296 §3.4).
    return secret.to_bytes(_MODP_LEN, "big")
