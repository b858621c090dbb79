"""Our IKEv2 core against strongSwan's charon over real UDP, in two network namespaces.

charon runs in one namespace (its own /run in a private mount namespace, as in
routers.md §5), ``tools/ike_peer.py`` in the other, with one veth between them.
Every exchange is IKE_SA_INIT plus a childless IKE_AUTH (RFC 6023): the kernel
has no ESP. ``mobike = no`` keeps it on one UDP port.

* Our :class:`~mrkm.protocol.IkeInitiator` against charon as responder: PSK and
  certificates (Ed25519 and ECDSA P-256, AUTH method 14 of RFC 7427, issued by
  a CA from :mod:`mrkm.crypto.certs`), with AES-GCM-16 and AES-CBC/HMAC suites,
  and once on UDP 4500 with the non-ESP marker (RFC 3948 §2.2).
* charon as initiator (``swanctl --initiate --ike``) against our
  :class:`~mrkm.protocol.IkeResponder`, with the same credentials and suites.

Each side must report the SA ESTABLISHED with the same SPIs, the other's
identity and the expected algorithms. ESTABLISHED on our side means that we
decrypted and verified charon's IKE_AUTH, so both derived the same SK_* keys.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mrkm.crypto import certs

pytestmark = pytest.mark.root

CHARON = Path("/usr/lib/ipsec/charon")
PLUGINS = Path("/usr/lib/ipsec/plugins")
DRIVER = Path(__file__).resolve().parents[1] / "tools" / "ike_peer.py"
OURS, THEIRS = "mrkm.interop.test", "charon.interop.test"
PSK = "mrkm-interop-psk-0123456789"
DEADLINE_S = 10.0
POLL_S = 0.02

GCM_X25519 = "aes256gcm16-prfsha256-x25519"
CBC_MODP2048 = "aes256-sha256-modp2048"
CBC_ECP256 = "aes256-sha256-ecp256"
# What `swanctl --list-sas` reports for each proposal.
CHARON_ALGS = {
    GCM_X25519: {
        "encr-alg": "AES_GCM_16",
        "encr-keysize": "256",
        "prf-alg": "PRF_HMAC_SHA2_256",
        "dh-group": "CURVE_25519",
    },
    CBC_MODP2048: {
        "encr-alg": "AES_CBC",
        "encr-keysize": "256",
        "integ-alg": "HMAC_SHA2_256_128",
        "prf-alg": "PRF_HMAC_SHA2_256",
        "dh-group": "MODP_2048",
    },
    CBC_ECP256: {
        "encr-alg": "AES_CBC",
        "encr-keysize": "256",
        "integ-alg": "HMAC_SHA2_256_128",
        "prf-alg": "PRF_HMAC_SHA2_256",
        "dh-group": "ECP_256",
    },
}
# How charon's log names the signature scheme it verified (RFC 7427, RFC 8420).
CHARON_SCHEME = {"ed25519": "ED25519", "ecdsa": "ECDSA_WITH_SHA256_DER"}


def _run(*cmd: str, timeout: float = DEADLINE_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _must(*cmd: str) -> None:
    done = _run(*cmd)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed: {done.stderr.strip()}")


# --- two namespaces and a veth ------------------------------------------------


@dataclass(frozen=True)
class Net:
    """The charon namespace and ours, joined by one veth in 10.250.1.0/24."""

    charon_ns: str
    our_ns: str
    charon_addr: str = "10.250.1.1"
    our_addr: str = "10.250.1.2"


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    missing = [
        p
        for p in (CHARON, *(PLUGINS / f"libstrongswan-{n}.so" for n in ("gcm", "openssl")))
        if not p.exists()
    ]
    if missing or shutil.which("swanctl") is None:
        pytest.fail(
            f"strongSwan is incomplete (missing {', '.join(map(str, missing)) or 'swanctl'}): "
            "install strongswan-charon, strongswan-swanctl and libstrongswan-standard-plugins "
            "(make setup)"
        )
    tag = f"mrkmsw{os.getpid() % 10000}"
    n = Net(f"{tag}a", f"{tag}b")
    created: list[str] = []
    try:
        for ns in (n.charon_ns, n.our_ns):
            _must("ip", "netns", "add", ns)
            created.append(ns)
            _must("ip", "-n", ns, "link", "set", "lo", "up")
        # Created inside the namespaces, so nothing lands in the root namespace.
        _must(
            "ip", "link", "add", f"{tag}a0", "netns", n.charon_ns, "type", "veth",
            "peer", "name", f"{tag}b0", "netns", n.our_ns,
        )  # fmt: skip
        for ns, dev, addr in (
            (n.charon_ns, f"{tag}a0", n.charon_addr),
            (n.our_ns, f"{tag}b0", n.our_addr),
        ):
            _must("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _must("ip", "-n", ns, "link", "set", dev, "up")
        yield n
    finally:
        for ns in reversed(created):
            _run("ip", "netns", "del", ns)


# --- charon as a testbed node ---------------------------------------------------


def parse_list_sas(text: str) -> list[dict[str, str]]:
    """The IKE SAs in `swanctl --list-sas --pretty` output, as key -> value maps.

    Nested sections are skipped, except that "child-sas" holds their count.
    """
    sas: list[dict[str, str]] = []
    stack: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("{"):
            stack.append(line[:-1].strip())
            if len(stack) == 2 and stack[0] == "list-sa event":
                sas.append({"name": stack[1]})
            elif len(stack) == 3 and stack[2] == "child-sas":
                sas[-1]["child-sas"] = "0"
            elif len(stack) == 4 and stack[2] == "child-sas":
                sas[-1]["child-sas"] = str(int(sas[-1]["child-sas"]) + 1)
        elif line == "}":
            if stack:
                stack.pop()
        elif len(stack) == 2 and stack[0] == "list-sa event" and " = " in line:
            key, value = line.split(" = ", 1)
            sas[-1][key] = value
    return sas


@dataclass
class Charon:
    """One charon in ``netns`` with its config and log under ``workdir``."""

    netns: str
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    rundir: Path = field(init=False)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        # A short path: the vici socket's name must fit in sun_path (108 octets).
        self.rundir = Path(tempfile.mkdtemp(prefix="mrkmsw-", dir="/tmp"))
        self.log = self.workdir / "charon.log"
        for sub in ("x509", "x509ca", "private"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return f"unix://{self.rundir}/charon.vici"

    def start(self) -> None:
        """Start charon and wait until vici answers `swanctl --stats`."""
        conf = self.workdir / "strongswan.conf"
        conf.write_text(
            "charon {\n"
            "  load_modular = yes\n"
            "  install_routes = no\n"
            "  install_virtual_ip = no\n"
            "  retransmit_timeout = 1.0\n"
            f'  filelog {{ interop {{ path = "{self.log}"\n'
            "    time_format = %T\n    flush_line = yes\n    default = 1\n    ike = 2\n"
            "    cfg = 2\n  } }\n"
            "  syslog { daemon { default = -1 } }\n"
            "  plugins {\n"
            "    include /etc/strongswan.d/charon/*.conf\n"
            f"    vici {{ socket = {self.uri} }}\n"
            "  }\n"
            "}\n"
        )
        script = f"mount --bind {shlex.quote(str(self.rundir))} /run && exec {CHARON}"
        with (self.workdir / "charon.out").open("wb") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, "unshare", "-m", "--propagation", "private",
                 "sh", "-c", script],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "STRONGSWAN_CONF": str(conf)},
            )  # fmt: skip
        deadline = time.monotonic() + DEADLINE_S
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"charon exited with {self.proc.returncode}\n{self.tail()}")
            sock = self.rundir / "charon.vici"
            if sock.exists() and self.swanctl("--stats").returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"charon's vici did not answer in {DEADLINE_S} s")
            time.sleep(POLL_S)
        # `ip netns exec`, `unshare` and `sh -c "... && exec"` all exec: one process.
        pid = int((self.rundir / "charon.pid").read_text())
        assert pid == self.proc.pid, f"charon.pid {pid} is not the process we started"

    def swanctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run swanctl against this charon."""
        return _run(
            "env", f"SWANCTL_DIR={self.workdir}",
            "ip", "netns", "exec", self.netns, "swanctl", *args, "--uri", self.uri,
            timeout=DEADLINE_S + 5,
        )  # fmt: skip

    def load(self, conf: str) -> None:
        """Write swanctl.conf (credentials go in x509/, x509ca/, private/) and load all."""
        path = self.workdir / "swanctl.conf"
        path.write_text(conf)
        done = self.swanctl("--load-all", "--clear", "--file", str(path))
        assert done.returncode == 0, f"swanctl --load-all failed:\n{done.stdout}{done.stderr}"

    def ike_sa(self, spi_i: str) -> dict[str, str]:
        """The IKE SA whose initiator SPI is ``spi_i`` (hex), as swanctl lists it."""
        done = self.swanctl("--list-sas", "--pretty")
        assert done.returncode == 0, done.stderr
        sas = [sa for sa in parse_list_sas(done.stdout) if sa.get("initiator-spi") == spi_i]
        assert len(sas) == 1, f"no IKE SA with SPIi {spi_i}:\n{done.stdout}\n{self.tail()}"
        return sas[0]

    def tail(self, lines: int = 60) -> str:
        """The end of charon's log, for failure messages."""
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return "--- charon.log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop exactly the charon we started, then drop its /run."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=DEADLINE_S)
        shutil.rmtree(self.rundir, ignore_errors=True)


@pytest.fixture
def charon(net: Net, tmp_path: Path) -> Iterator[Charon]:
    node = Charon(net.charon_ns, tmp_path / "charon")
    try:
        node.start()
        yield node
    finally:
        node.stop()


# --- credentials ----------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """One CA and a certificate + key each for charon and for us (PEM files)."""

    ca: Path
    charon_cert: Path
    charon_key: Path
    our_cert: Path
    our_key: Path


def _pem_key(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pki]:
    # charon checks validity against the real clock, and so does ike_peer.py.
    start = datetime.now(UTC) - timedelta(hours=1)
    makers = {
        "ed25519": ed25519.Ed25519PrivateKey.generate,
        "ecdsa": lambda: ec.generate_private_key(ec.SECP256R1()),
    }
    out: dict[str, Pki] = {}
    for kind, make in makers.items():
        d = tmp_path_factory.mktemp(f"pki-{kind}")
        ca_key = make()
        ca = certs.make_ca(f"MRKM interop CA {kind}", ca_key, start, 2)
        paths = {"ca": d / "ca.pem"}
        paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        for who, name in (("charon", THEIRS), ("our", OURS)):
            key = make()
            cert = certs.issue_cert(ca, ca_key, name, key.public_key(), start, 2, name)
            paths[f"{who}_cert"] = d / f"{who}.pem"
            paths[f"{who}_key"] = d / f"{who}.key"
            paths[f"{who}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            paths[f"{who}_key"].write_bytes(_pem_key(key))
        out[kind] = Pki(**paths)
    return out


@dataclass(frozen=True)
class Case:
    """One interop run: how both sides authenticate, the suite, the UDP port."""

    auth: str  # "psk", "ed25519" or "ecdsa"
    proposal: str  # strongSwan syntax; tools/ike_peer.py --suite takes the same
    port: int = 500


CASES = [
    pytest.param(Case("psk", GCM_X25519), id="psk-gcm-x25519"),
    pytest.param(Case("psk", CBC_MODP2048), id="psk-cbc-modp2048"),
    pytest.param(Case("ed25519", GCM_X25519), id="ed25519-gcm-x25519"),
    pytest.param(Case("ecdsa", CBC_ECP256), id="ecdsa-cbc-ecp256"),
]


def swanctl_conf(net: Net, case: Case, charon: Charon, pki: dict[str, Pki], initiator: bool) -> str:
    """One connection named ``interop`` for charon, installing its credentials."""
    conn = [
        "version = 2",
        f"local_addrs = {net.charon_addr}",
        f"remote_addrs = {net.our_addr}",
        f"local_port = {case.port}",
        f"remote_port = {case.port}",
        "mobike = no",
        f"proposals = {case.proposal}",
    ]
    if initiator:
        conn.append("childless = force")  # `swanctl --initiate --ike`: no CHILD_SA at all
    secrets = ""
    if case.auth == "psk":
        local = remote = ["auth = psk"]
        secrets = f"secrets {{\n  ike-interop {{\n    id-a = {OURS}\n    id-b = {THEIRS}\n"
        secrets += f'    secret = "{PSK}"\n  }}\n}}\n'
    else:
        files = pki[case.auth]
        shutil.copy(files.charon_cert, charon.workdir / "x509" / "charon.pem")
        shutil.copy(files.charon_key, charon.workdir / "private" / "charon.pem")
        shutil.copy(files.ca, charon.workdir / "x509ca" / "ca.pem")
        local = ["auth = pubkey", "certs = charon.pem"]
        remote = ["auth = pubkey", "cacerts = ca.pem"]
        conn.append("send_cert = always")  # we send no CERTREQ
    local, remote = [*local, f"id = {THEIRS}"], [*remote, f"id = {OURS}"]
    lines = ["connections {", "  interop {", *(f"    {c}" for c in conn)]
    for name, body in (("local", local), ("remote", remote)):
        lines += [f"    {name} {{", *(f"      {b}" for b in body), "    }"]
    return "\n".join([*lines, "  }", "}", ""]) + secrets


def peer_args(case: Case, pki: dict[str, Pki]) -> list[str]:
    """tools/ike_peer.py arguments for our side of ``case``."""
    args = ["--id", OURS, "--remote-id", THEIRS, "--suite", case.proposal]
    args += ["--port", str(case.port), "--timeout", str(DEADLINE_S)]
    if case.auth == "psk":
        return [*args, "--psk", PSK]
    f = pki[case.auth]
    return [*args, "--cert", str(f.our_cert), "--key", str(f.our_key), "--ca", str(f.ca)]


def check_both_sides(
    outcome: dict[str, object], sa: dict[str, str], case: Case, charon: Charon, net: Net
) -> None:
    """Our JSON outcome and charon's listing describe the same ESTABLISHED SA."""
    log = charon.tail()
    assert outcome["state"] == "established", f"{outcome}\n{log}"
    assert outcome["error"] is None, outcome
    assert outcome["peer"] == f"ID_FQDN:{THEIRS}", outcome
    assert outcome["suite"] == case.proposal, outcome
    assert outcome["peer_addr"] == f"{net.charon_addr}:{case.port}", outcome
    assert sa["state"] == "ESTABLISHED", f"{sa}\n{log}"
    assert sa["responder-spi"] == outcome["spi_r"], sa
    assert (sa["local-id"], sa["remote-id"]) == (THEIRS, OURS), sa
    assert (sa["remote-host"], sa["remote-port"]) == (net.our_addr, str(case.port)), sa
    algs = {k: sa.get(k) for k in ("encr-alg", "encr-keysize", "integ-alg", "prf-alg", "dh-group")}
    assert algs == {"integ-alg": None, **CHARON_ALGS[case.proposal]}, sa
    assert sa["child-sas"] == "0", sa  # childless (RFC 6023)
    if case.auth != "psk":
        line = f"authentication of '{OURS}' with {CHARON_SCHEME[case.auth]} successful"
        assert line in charon.log.read_text(), log


# --- the tests ------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", [*CASES, pytest.param(Case("psk", GCM_X25519, port=4500), id="psk-gcm-udp4500")]
)
def test_our_initiator_with_charon_responder(
    net: Net, charon: Charon, pki: dict[str, Pki], case: Case
) -> None:
    charon.load(swanctl_conf(net, case, charon, pki, initiator=False))
    done = _run(
        "ip", "netns", "exec", net.our_ns, sys.executable, str(DRIVER), "initiate",
        "--peer", net.charon_addr, "--peer-port", str(case.port), *peer_args(case, pki),
        timeout=DEADLINE_S + 5,
    )  # fmt: skip
    assert done.stdout, f"ike_peer.py printed nothing: {done.stderr}\n{charon.tail()}"
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert done.returncode == 0, f"{outcome}\n{done.stderr}\n{charon.tail()}"
    check_both_sides(outcome, charon.ike_sa(str(outcome["spi_i"])), case, charon, net)


@pytest.mark.parametrize("case", CASES)
def test_charon_initiator_with_our_responder(
    net: Net, charon: Charon, pki: dict[str, Pki], case: Case, tmp_path: Path
) -> None:
    charon.load(swanctl_conf(net, case, charon, pki, initiator=True))
    ready = tmp_path / "peer.ready"
    peer = subprocess.Popen(
        ["ip", "netns", "exec", net.our_ns, sys.executable, str(DRIVER), "respond",
         "--bind", net.our_addr, "--ready-file", str(ready), *peer_args(case, pki)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not ready.exists():
            assert peer.poll() is None, f"ike_peer.py exited: {peer.communicate()}"
            assert time.monotonic() < deadline, "ike_peer.py did not bind its socket"
            time.sleep(POLL_S)
        initiated = charon.swanctl("--initiate", "--ike", "interop", "--timeout", "10")
        stdout, stderr = peer.communicate(timeout=DEADLINE_S + 5)
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()
    assert stdout, f"ike_peer.py printed nothing: {stderr}\n{charon.tail()}"
    outcome = json.loads(stdout.splitlines()[-1])
    assert initiated.returncode == 0, f"{initiated.stdout}\n{outcome}\n{charon.tail()}"
    assert peer.returncode == 0, f"{outcome}\n{stderr}"
    check_both_sides(outcome, charon.ike_sa(str(outcome["spi_i"])), case, charon, net)
