"""PEM files for the runtime: signing keys and X.509 certificates.

Load errors become :class:`~mrkm.config.ConfigError` naming the config field
and the file, so ``mrkm gcks`` prints one clear line and exits 2. Private
keys are written with mode 0600 and never over an existing file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mrkm.config import ConfigError
from mrkm.crypto.signatures import SigningKey, UnsupportedKeyType, algorithm_id_for

if TYPE_CHECKING:  # X.509 loads on first use: a PSK-only GM never pays for it
    from cryptography import x509

__all__ = [
    "load_certificate",
    "load_signing_key",
    "private_key_pem",
    "write_new_file",
]


def _read(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: {path}: cannot read: {exc.strerror}") from None


def load_signing_key(path: Path, where: str) -> SigningKey:
    """An unencrypted PEM private key, Ed25519 or ECDSA P-256 (RFC 7427 signers)."""
    try:
        key = serialization.load_pem_private_key(_read(path, where), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {path}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{where}: {path}: {type(key).__name__} keys are not supported")
    try:
        algorithm_id_for(key)
    except UnsupportedKeyType as exc:
        raise ConfigError(f"{where}: {path}: {exc}") from None
    return key


def load_certificate(path: Path, where: str) -> x509.Certificate:
    """One PEM X.509 certificate."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(_read(path, where))
    except ValueError as exc:
        raise ConfigError(f"{where}: {path}: not a PEM certificate: {exc}") from None


def private_key_pem(key: SigningKey) -> bytes:
    """PKCS#8 PEM, unencrypted (the testbed's keys protect nothing beyond it)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (never replacing a file) and write ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)  # the umask must not widen or narrow it
        out.write(data)
