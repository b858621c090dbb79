"""Benchmark of the protocol library: codec and crypto costs next to raw baselines.

``make bench-core`` runs it. Every figure is measured in the same run as its
baseline and reported as a ratio, because these machines are noisy:

* encode / decode of a GSA_AUTH response body and of a GSA_REKEY, against
  sealing the same octets with raw AES-GCM (the crypto such a message costs
  anyway);
* each MRKM crypto operation against the raw ``cryptography`` call it wraps.

Results go to ``results/bench/<timestamp>/bench-core.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cryptography
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from mrkm.crypto import dh, keywrap, prf, signatures, sk
from mrkm.protocol.group import GroupKeys, GroupPolicy, RoutingKey, make_gsa, make_kd
from mrkm.protocol.protect import sk_prefix
from mrkm.protocol.rekey import RekeySa, build_rekey, open_rekey
from mrkm.wire import decode_chain, encode_chain
from mrkm.wire.registry import EncrId, IntegId, KwaId, PrfId, ProtocolId


def per_call_us(fn: Callable[[], object], budget_s: float) -> float:
    """Median µs per call over repeated batches filling about ``budget_s`` seconds."""
    n = 1
    while True:  # find a batch size that takes about 10 ms
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 > 0.01:
            break
        n *= 2
    samples = []
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline or len(samples) < 5:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def run(b: float = 0.3) -> dict[str, Any]:
    """Measure every pair with ``b`` seconds per measurement; return the report."""
    policy = GroupPolicy("10.0.0.1", signature_alg_id=signatures.ALG_ID_ED25519)
    keys = GroupKeys(
        os.urandom(16),
        os.urandom(68),
        (
            RoutingKey(
                ProtocolId.OSPFV2, b"\x07", IntegId.ROUTING_HMAC_SHA256, os.urandom(32), 3600
            ),
        ),
        5,
    )
    kwk = os.urandom(32)
    signer = ed25519.Ed25519PrivateKey.generate()
    auth_key = signatures.public_key_der(signer.public_key())
    gsa = make_gsa(policy, keys, registration=True)
    kd = make_kd(policy, keys, kwk, KwaId.KW_5649_256, auth_key)
    first, body = encode_chain((gsa, kd))
    suite = sk.SkSuite(EncrId.ENCR_AES_GCM_16, 256)
    rekey_sa = RekeySa.from_keymat(keys.rekey_spi, suite, KwaId.KW_5649_256, os.urandom(68))
    rekey_inner = (
        make_gsa(policy, keys, registration=False),
        make_kd(policy, keys, rekey_sa.gsk_w, KwaId.KW_5649_256, None),
    )
    iv = os.urandom(8)
    rekey = build_rekey(rekey_sa, 5, rekey_inner, signer, iv)
    gcm = AESGCM(os.urandom(32))
    pub = signer.public_key()
    sk_key = os.urandom(36)
    aad = sk_prefix(rekey_sa.header(5), first, suite.body_len(len(body)))

    rows: list[tuple[str, float, str, float]] = []

    def pair(
        name: str, ours: Callable[[], object], base_name: str, base: Callable[[], object]
    ) -> None:
        rows.append((name, per_call_us(ours, b), base_name, per_call_us(base, b)))

    seal_body = lambda: gcm.encrypt(iv + b"salt", body, b"")  # noqa: E731
    pair(
        "encode GSA+KD (GSA_AUTH response)",
        lambda: encode_chain((gsa, kd)),
        f"raw AES-GCM seal of its {len(body)} octets",
        seal_body,
    )
    pair(
        "decode GSA+KD (GSA_AUTH response)",
        lambda: decode_chain(first, body),
        f"raw AES-GCM seal of its {len(body)} octets",
        seal_body,
    )
    pair(
        "build GSA_REKEY (encode+sign+seal)",
        lambda: build_rekey(rekey_sa, 5, rekey_inner, signer, iv),
        "raw Ed25519 sign + AES-GCM seal",
        lambda: (signer.sign(rekey), gcm.encrypt(iv + b"salt", rekey, b"")),
    )
    signature = signer.sign(rekey)
    sealed = gcm.encrypt(iv + b"salt", rekey, b"")
    pair(
        "open GSA_REKEY (open+decode+verify)",
        lambda: open_rekey(rekey_sa, rekey, pub),
        "raw Ed25519 verify + AES-GCM open",
        lambda: (pub.verify(signature, rekey), gcm.decrypt(iv + b"salt", sealed, b"")),
    )
    rng = os.urandom
    peer = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    pair(
        "X25519 generate + shared secret",
        lambda: dh.shared_secret(dh.generate(31, rng), peer),
        "raw X25519 generate + exchange",
        lambda: x25519.X25519PrivateKey.generate().exchange(
            x25519.X25519PublicKey.from_public_bytes(peer)
        ),
    )
    pair(
        "Ed25519 sign (signatures.sign)",
        lambda: signatures.sign(signer, rekey),
        "raw Ed25519 sign",
        lambda: signer.sign(rekey),
    )
    pair(
        "prf HMAC-SHA2-256",
        lambda: prf.prf(PrfId.PRF_HMAC_SHA2_256, kwk, body),
        "raw HMAC-SHA256",
        lambda: _raw_hmac(kwk, body),
    )
    pair(
        "SK seal AES-GCM-256",
        lambda: sk.seal(suite, sk_key, b"", aad, body, iv),
        "raw AES-GCM seal",
        seal_body,
    )
    pair(
        "key wrap KW_5649_256 (32-octet key)",
        lambda: keywrap.wrap(KwaId.KW_5649_256, kwk, kwk),
        "raw aes_key_wrap_with_padding",
        lambda: aes_key_wrap_with_padding(kwk, kwk),
    )

    return {
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "rows": [
            {
                "operation": n,
                "us": round(u, 3),
                "baseline": bn,
                "baseline_us": round(bu, 3),
                "ratio": round(u / bu, 3),
            }
            for n, u, bn, bu in rows
        ],
    }


def print_table(report: dict[str, Any]) -> None:
    """The report as a table: operation, µs, baseline, µs, ratio."""
    print(f"{'operation':40} {'µs':>9}   {'baseline':42} {'µs':>9} {'ratio':>7}")
    for r in report["rows"]:
        print(
            f"{r['operation']:40} {r['us']:9.2f}   {r['baseline']:42} "
            f"{r['baseline_us']:9.2f} {r['ratio']:7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per measurement")
    parser.add_argument("--out", default="results/bench", help="output folder")
    args = parser.parse_args()
    report = run(args.budget)
    print_table(report)
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-core.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out / 'bench-core.json'}")


def _raw_hmac(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


if __name__ == "__main__":
    main()
