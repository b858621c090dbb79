"""Run one MRKM IKE initiator or responder over a real UDP socket.

A small blocking driver around the sans-IO :class:`~mrkm.protocol.IkeInitiator`
and :class:`~mrkm.protocol.IkeResponder`, used to test them against other
IKEv2 implementations (strongSwan's charon) inside network namespaces::

    ip netns exec B .venv/bin/python tools/ike_peer.py initiate --peer 10.250.1.1 \\
        --id gm1.mrkm.test --remote-id gcks.mrkm.test --psk secret \\
        --suite aes256gcm16-prfsha256-x25519

It retransmits the last request every ``--retransmit`` seconds, gives up at
``--timeout`` and prints one JSON line with the outcome (state, peer
identity, suite, SPIs, error); the exit status is 0 only when the IKE SA is
ESTABLISHED. Suites use strongSwan's proposal syntax. On UDP port 4500 the
4-octet non-ESP marker is added and stripped (RFC 3948 §2.2). This is a test
tool, not the MRKM runtime: one SA, one peer, then exit.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from mrkm.errors import MrkmError
from mrkm.protocol import (
    AuthRequest,
    Identity,
    IkeInitiator,
    IkeResponder,
    IkeSuite,
    LocalCredentials,
    PeerTrust,
    SaState,
)
from mrkm.wire.registry import DhGroup, EncrId, ExchangeType, IntegId, KwaId, PrfId

NAT_T_PORT = 4500
NON_ESP_MARKER = bytes(4)  # RFC 3948 §2.2
MAX_DATAGRAM = 65535

# strongSwan proposal keywords (swanctl.conf "proposals") -> IkeSuite fields.
_ENCR = {
    "aes128": (EncrId.ENCR_AES_CBC, 128),
    "aes192": (EncrId.ENCR_AES_CBC, 192),
    "aes256": (EncrId.ENCR_AES_CBC, 256),
    "aes128gcm16": (EncrId.ENCR_AES_GCM_16, 128),
    "aes256gcm16": (EncrId.ENCR_AES_GCM_16, 256),
}
_INTEG = {
    "sha1": (IntegId.AUTH_HMAC_SHA1_96, PrfId.PRF_HMAC_SHA1),
    "sha256": (IntegId.AUTH_HMAC_SHA2_256_128, PrfId.PRF_HMAC_SHA2_256),
    "sha384": (IntegId.AUTH_HMAC_SHA2_384_192, PrfId.PRF_HMAC_SHA2_384),
    "sha512": (IntegId.AUTH_HMAC_SHA2_512_256, PrfId.PRF_HMAC_SHA2_512),
}
_PRF = {"prf" + name: prf for name, (_, prf) in _INTEG.items()}
_DH = {
    "modp2048": DhGroup.MODP_2048,
    "ecp256": DhGroup.ECP_256,
    "ecp384": DhGroup.ECP_384,
    "x25519": DhGroup.CURVE25519,
    "curve25519": DhGroup.CURVE25519,
}
_KWA = {"kw128": KwaId.KW_5649_128, "kw192": KwaId.KW_5649_192, "kw256": KwaId.KW_5649_256}


def parse_suite(text: str) -> IkeSuite:
    """Parse a strongSwan-style proposal such as ``aes256-sha256-modp2048``.

    One keyword per transform; an INTEG keyword implies the same PRF (as in
    strongSwan) unless a ``prf...`` keyword follows. ``kw256`` etc. add
    G-IKEv2's KWA transform (RFC 9838 §4.4.2.1.2); without one there is none.
    """
    fields: dict[str, int | None] = {"kwa": None}
    for word in text.lower().split("-"):
        if word in _ENCR:
            fields["encr"], fields["encr_key_bits"] = _ENCR[word]
        elif word in _INTEG:
            fields["integ"] = _INTEG[word][0]
            fields.setdefault("prf", _INTEG[word][1])
        elif word in _PRF:
            fields["prf"] = _PRF[word]
        elif word in _DH:
            fields["dh"] = _DH[word]
        elif word in _KWA:
            fields["kwa"] = _KWA[word]
        else:
            raise ValueError(f"unknown proposal keyword {word!r} in {text!r}")
    missing = {"encr", "prf", "dh"} - fields.keys()
    if missing:
        raise ValueError(f"proposal {text!r} lacks {', '.join(sorted(missing))}")
    return IkeSuite(**fields)  # type: ignore[arg-type]


def suite_name(suite: IkeSuite) -> str:
    """The strongSwan-style name of ``suite`` (inverse of :func:`parse_suite`)."""
    encr = next(k for k, v in _ENCR.items() if v == (suite.encr, suite.encr_key_bits))
    words = [encr]
    implied_prf = None
    if suite.integ != IntegId.NONE:
        integ, implied_prf = next((k, v[1]) for k, v in _INTEG.items() if v[0] == suite.integ)
        words.append(integ)
    if suite.prf != implied_prf:
        words.append(next(k for k, v in _PRF.items() if v == suite.prf))
    words.append(next(k for k, v in _DH.items() if v == suite.dh))
    if suite.kwa is not None:
        words.append(next(k for k, v in _KWA.items() if v == suite.kwa))
    return "-".join(words)


def parse_identity(text: str) -> Identity:
    """``name`` or ``fqdn:name`` -> ID_FQDN; ``keyid:HEX`` -> ID_KEY_ID."""
    kind, sep, value = text.partition(":")
    if sep and kind == "keyid":
        return Identity.key_id(bytes.fromhex(value))
    return Identity.fqdn(value if sep and kind == "fqdn" else text)


@dataclass
class Outcome:
    """What the run printed as its JSON line."""

    role: str
    state: str = SaState.FAILED.value
    local: str = ""
    peer: str | None = None
    peer_addr: str | None = None
    suite: str | None = None
    spi_i: str | None = None
    spi_r: str | None = None
    retransmits: int = 0
    elapsed_s: float = 0.0
    error: str | None = None


def _credentials(args: argparse.Namespace) -> tuple[LocalCredentials, PeerTrust]:
    me = parse_identity(args.id)
    remote = parse_identity(args.remote_id) if args.remote_id else None
    ca = x509.load_pem_x509_certificate(Path(args.ca).read_bytes()) if args.ca else None

    def authorize(peer: Identity) -> bool:
        return remote is None or peer == remote

    psk = args.psk.encode() if args.psk is not None else None
    trust = PeerTrust(group_psk=psk, ca=ca, authorize=authorize)
    if psk is not None:
        return LocalCredentials(me, psk=psk), trust
    if not (args.cert and args.key):
        raise ValueError("give --psk, or --cert and --key (and --ca to check the peer)")
    key = load_pem_private_key(Path(args.key).read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{args.key}: an Ed25519 or ECDSA P-256 key is needed")
    cert = x509.load_pem_x509_certificate(Path(args.cert).read_bytes())
    return LocalCredentials(me, signing_key=key, certificate=cert), trust


class Channel:
    """A UDP socket to one peer, with the non-ESP marker on port 4500."""

    def __init__(self, sock: socket.socket, marker: bool) -> None:
        self.sock, self.marker = sock, marker
        self.peer: tuple[str, int] | None = None

    def send(self, data: bytes) -> None:
        assert self.peer is not None
        self.sock.sendto(NON_ESP_MARKER + data if self.marker else data, self.peer)

    def recv(self, deadline: float) -> bytes | None:
        """One IKE message from the peer, or None when ``deadline`` (monotonic) passes."""
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                return None
            if self.peer is not None and addr != self.peer:
                continue
            if self.marker:
                if not data.startswith(NON_ESP_MARKER):
                    continue  # ESP or a keepalive, not IKE
                data = data[len(NON_ESP_MARKER) :]
            self.peer = addr  # a responder answers whoever spoke first
            return data
        return None


def run_initiator(args: argparse.Namespace, chan: Channel, out: Outcome, end: float) -> None:
    """Drive an IkeInitiator until ESTABLISHED, FAILED or ``end``."""
    local, trust = _credentials(args)
    init = IkeInitiator(
        local,
        trust,
        os.urandom,
        suites=tuple(parse_suite(s) for s in args.suite),
        exchange=ExchangeType[args.exchange.upper().replace("-", "_")],
        responder_id=parse_identity(args.remote_id) if args.remote_id else None,
    )
    request = init.initiate()
    chan.send(request)
    while init.state not in (SaState.ESTABLISHED, SaState.FAILED):
        data = chan.recv(min(end, time.monotonic() + args.retransmit))
        if data is None:
            if time.monotonic() >= end:
                out.error = f"timeout in state {init.state.value}"
                break
            chan.send(request)  # RFC 7296 §2.1: the initiator retransmits
            out.retransmits += 1
            continue
        try:
            reply = init.receive(data, time.time())
        except MrkmError as exc:
            out.error = f"{type(exc).__name__}: {exc}"  # dropped unless state is FAILED
            continue
        if reply is not None:
            request = reply
            chan.send(request)
    if init.state is SaState.ESTABLISHED:
        out.error = None
    out.state, out.peer = init.state.value, str(init.peer) if init.peer else None
    if init.sa is not None:
        out.suite, out.spi_i, out.spi_r = (
            suite_name(init.sa.suite),
            init.sa.spi_i.hex(),
            init.sa.spi_r.hex(),
        )


def run_responder(args: argparse.Namespace, chan: Channel, out: Outcome, end: float) -> None:
    """Answer one initiator until ESTABLISHED (plus ``--linger``), FAILED or ``end``."""
    local, trust = _credentials(args)
    resp = IkeResponder(
        local,
        trust,
        os.urandom,
        suites=tuple(parse_suite(s) for s in args.suite),
        exchanges=(ExchangeType[args.exchange.upper().replace("-", "_")],),
    )
    while True:
        data = chan.recv(end)
        if data is None:
            if resp.state is not SaState.ESTABLISHED:
                out.error = f"timeout in state {resp.state.value}"
            break
        try:
            answer = resp.receive(data, time.time())
        except MrkmError as exc:
            out.error = f"{type(exc).__name__}: {exc}"
            if resp.state is SaState.FAILED:
                if resp.failure_response:
                    chan.send(resp.failure_response)
                break
            continue
        if isinstance(answer, AuthRequest):
            answer = resp.accept()
        if answer is not None:
            chan.send(answer)
        if resp.state is SaState.FAILED:
            out.error = "no acceptable proposal (answered NO_PROPOSAL_CHOSEN)"
            break
        if resp.state is SaState.ESTABLISHED:
            out.error = None
            # Keep answering retransmits of the last request for a while.
            end = min(end, time.monotonic() + args.linger)
    out.state, out.peer = resp.state.value, str(resp.peer) if resp.peer else None
    if resp.sa is not None:
        out.suite, out.spi_i, out.spi_r = (
            suite_name(resp.sa.suite),
            resp.sa.spi_i.hex(),
            resp.sa.spi_r.hex(),
        )


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="ike_peer.py",
        description="Run one MRKM IKE initiator or responder over UDP; print one JSON line.",
    )
    p.add_argument("role", choices=("initiate", "respond"))
    p.add_argument("--peer", help="initiate: the responder's address")
    p.add_argument("--peer-port", type=int, default=500, help="initiate: its UDP port")
    p.add_argument("--bind", default="0.0.0.0", help="local address (default any)")
    p.add_argument("--port", type=int, default=500, help="local UDP port (default 500)")
    p.add_argument("--id", required=True, help="our identity: NAME, fqdn:NAME or keyid:HEX")
    p.add_argument("--remote-id", help="the peer's identity (sent as IDr; required of the peer)")
    p.add_argument("--psk", help="pre-shared key, used in both directions")
    p.add_argument("--cert", help="our certificate (PEM)")
    p.add_argument("--key", help="our Ed25519 or P-256 private key (PEM, unencrypted)")
    p.add_argument("--ca", help="CA certificate (PEM) that must have issued the peer's")
    p.add_argument(
        "--suite",
        action="append",
        help="IKE proposal in strongSwan syntax, repeatable, first preferred "
        "(default aes256gcm16-prfsha256-x25519)",
    )
    p.add_argument(
        "--exchange",
        default="ike-auth",
        choices=("ike-auth", "gsa-auth"),
        help="AUTH exchange: IKE_AUTH, childless (RFC 6023), or GSA_AUTH (RFC 9838)",
    )
    p.add_argument("--retransmit", type=float, default=0.5, help="seconds between retransmits")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds before giving up")
    p.add_argument("--linger", type=float, default=0.0, help="respond: seconds to stay after")
    p.add_argument("--ready-file", help="create this file once the socket is bound")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one exchange and print its outcome; 0 when ESTABLISHED."""
    args = build_parser().parse_args(argv)
    args.suite = args.suite or ["aes256gcm16-prfsha256-x25519"]
    started = time.monotonic()
    out = Outcome(role=args.role, local=str(parse_identity(args.id)))
    try:
        if args.role == "initiate" and not args.peer:
            raise ValueError("initiate needs --peer")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((args.bind, args.port))
            peer_port = args.peer_port if args.role == "initiate" else args.port
            chan = Channel(sock, marker=NAT_T_PORT in (args.port, peer_port))
            if args.ready_file:
                Path(args.ready_file).touch()
            end = started + args.timeout
            if args.role == "initiate":
                chan.peer = (args.peer, args.peer_port)
                run_initiator(args, chan, out, end)
            else:
                run_responder(args, chan, out, end)
            if chan.peer is not None:
                out.peer_addr = f"{chan.peer[0]}:{chan.peer[1]}"
    except (OSError, ValueError, MrkmError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    out.elapsed_s = round(time.monotonic() - started, 4)
    print(json.dumps(asdict(out), sort_keys=True), flush=True)
    return 0 if out.state == SaState.ESTABLISHED.value else 1


if __name__ == "__main__":
    sys.exit(main())
