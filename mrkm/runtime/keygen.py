"""``mrkm keygen``: a small PKI for a GCKS and its members (RFC 5280, RFC 7427).

One test CA signs one certificate for the GCKS and one per member; each
certificate carries its identity as a dNSName subjectAltName, so it matches
the ID_FQDN identity sent in GSA_AUTH (RFC 7296 §3.5, RFC 4945 §3.1).
Private keys are PKCS#8 PEM with mode 0600, certificates PEM with mode
0644. Existing files are never overwritten. The same GCKS key also signs
the GSA_REKEYs (its public key reaches members as AUTH_KEY, RFC 9838 §4.5.3).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding

from mrkm.crypto.signatures import SigningKey
from mrkm.runtime.pem import private_key_pem, write_new_file

__all__ = ["ALGORITHMS", "Issued", "KeygenResult", "gcks_snippet", "gm_snippet", "keygen"]

ALGORITHMS = ("ed25519", "ecdsa-p256")
CA_NAME = "MRKM test CA"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_]{0,252}$")
#: Certificates start this long before ``now``, for clocks a little behind.
BACKDATE = timedelta(hours=1)


@dataclass(frozen=True)
class Issued:
    """One identity's files."""

    name: str
    key: Path
    cert: Path


@dataclass(frozen=True)
class KeygenResult:
    """Everything :func:`keygen` wrote."""

    ca: Issued
    gcks: Issued
    members: tuple[Issued, ...]


def _new_key(algorithm: str) -> SigningKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")


def keygen(
    out: Path,
    gcks: str,
    members: Sequence[str],
    algorithm: str = "ed25519",
    days: int = 365,
    now: datetime | None = None,
) -> KeygenResult:
    """Write a CA, the GCKS's and each member's key and certificate under ``out``.

    Raises ValueError for an unusable name, algorithm or duplicate, and
    FileExistsError, before writing anything, if any target file exists.
    """
    names = [gcks, *members]
    for name in names:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"{name!r} is not a usable identity (letters, digits, . - _)")
    if len(set(names)) != len(names) or "ca" in names:
        raise ValueError("identities must be distinct and not 'ca'")
    if days <= 0:
        raise ValueError("--days must be positive")
    if now is None:
        now = datetime.now().astimezone()
    out.mkdir(parents=True, exist_ok=True)
    plan = {n: Issued(n, out / f"{n}.key", out / f"{n}.pem") for n in ["ca", *names]}
    existing = [p for i in plan.values() for p in (i.key, i.cert) if p.exists()]
    if existing:
        raise FileExistsError(f"{existing[0]} exists; keygen never overwrites keys")
    from mrkm.crypto.certs import issue_cert, make_ca  # X.509: loaded only to issue

    start = now - BACKDATE
    ca_key = _new_key(algorithm)
    ca_cert = make_ca(CA_NAME, ca_key, start, days)
    write_new_file(plan["ca"].key, private_key_pem(ca_key), 0o600)
    write_new_file(plan["ca"].cert, ca_cert.public_bytes(Encoding.PEM), 0o644)
    for name in names:
        key = _new_key(algorithm)
        cert = issue_cert(ca_cert, ca_key, name, key.public_key(), start, days, san_dns=name)
        write_new_file(plan[name].key, private_key_pem(key), 0o600)
        write_new_file(plan[name].cert, cert.public_bytes(Encoding.PEM), 0o644)
    return KeygenResult(plan["ca"], plan[gcks], tuple(plan[m] for m in members))


def gcks_snippet(result: KeygenResult, group: str = "ospfv2-area0") -> str:
    """A GCKS configuration using the generated files (absolute paths)."""
    members = "\n".join(f"      - id: {m.name}" for m in result.members)
    return f"""gcks:
  identity: {result.gcks.name}
  listen: 0.0.0.0:848
  signing_key: {result.gcks.key.resolve()}
  certificate: {result.gcks.cert.resolve()}
  ca: {result.ca.cert.resolve()}
  state: {result.gcks.name}-state.json
  multicast_ttl: 16
groups:
  - name: {group}
    protocol: ospfv2
    algorithm: hmac-sha-256
    rekey_address: 239.192.0.1
    members:
{members}
"""


def gm_snippet(
    result: KeygenResult, member: Issued, gcks: str = "192.0.2.1:848", group: str = "ospfv2-area0"
) -> str:
    """A GM configuration for ``member`` using the generated files."""
    return f"""gm:
  identity: {member.name}
  gcks: {gcks}
  gcks_identity: {result.gcks.name}
  groups: [{group}]
  certificate: {member.cert.resolve()}
  key: {member.key.resolve()}
  ca: {result.ca.cert.resolve()}
  rekey_groups: [239.192.0.1:848]
"""
