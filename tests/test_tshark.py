"""tshark 4.0 as an outside judge of MRKM's G-IKEv2 encoding, read with dissector/mrkm.lua.

A registration (IKE_SA_INIT + GSA_AUTH with IDg, answered with GSA and KD) and
one Ed25519-signed GSA_REKEY travel over real UDP sockets on 127.0.0.1 while
dumpcap captures lo. tshark then decrypts every SK payload itself, from
``-o uat:ikev2_decryption_table:...`` lines (pim-local-and-tshark.md §9), and
must agree with us: no malformed packet, every ICV correct, the inner payload
octets equal to our encoding, and mrkm.lua's fields equal to the values we put
in. With one wrong key byte tshark must report a bad ICV (negative control).

A second test feeds mrkm.lua truncated and corrupted GSA/KD/IDg bodies (in
correctly sealed messages written to a pcap file, UDP 848) and checks that it
flags them with its own expert info and never raises a Lua error.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import socket
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from mrkm.crypto.signatures import algorithm_id_for, load_public_key_der, public_key_der
from mrkm.crypto.sk import SkSuite
from mrkm.errors import DecodeError
from mrkm.protocol import (
    AuthRequest,
    Identity,
    IkeInitiator,
    IkeResponder,
    LocalCredentials,
    PeerTrust,
    SaState,
)
from mrkm.protocol.group import (
    GroupKeys,
    GroupPolicy,
    RoutingKey,
    TekPolicy,
    make_gsa,
    make_kd,
    read_group,
)
from mrkm.protocol.protect import seal_message
from mrkm.protocol.rekey import RekeySa, build_rekey, open_rekey
from mrkm.wire import (
    FLAG_INITIATOR,
    Buffer,
    GroupKeyBag,
    GroupWidePolicy,
    GsaPayload,
    GsaPolicy,
    IdgPayload,
    IkeHeader,
    KdPayload,
    MemberKeyBag,
    Payload,
    TrafficSelector,
    UnknownPayload,
    encode_chain,
    find,
)
from mrkm.wire.registry import (
    EncrId,
    ExchangeType,
    IdType,
    IntegId,
    PayloadType,
    ProtocolId,
    TransformAttr,
)

REPO = Path(__file__).resolve().parents[1]
LUA = REPO / "dissector" / "mrkm.lua"
GROUP_ID = b"ospfv2-area0"
GCM_256 = '"AES-GCM-256 with 16 octet ICV [RFC5282]"'
SEVERITY_ERROR = 0x00800000  # epan/proto.h PI_ERROR, as PDML shows _ws.expert.severity
TIMEOUT = 10.0  # seconds for any one wait: a datagram, the capture, a tshark run


# --------------------------------------------------------------------------- tools


def _require(tool: str) -> str:
    """The tool's path; a missing tool fails in CI and skips elsewhere."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed (make setup installs it)")
        pytest.skip(f"{tool} is not installed")
    return path


def _tshark(tmp: Path, pcap: Path, *args: str) -> str:
    """Run tshark with mrkm.lua and a private, empty profile; return stdout.

    HOME and WIRESHARK_CONFIG_DIR point at empty folders so that no personal
    preference, decryption table or Lua plugin of the user takes part.
    """
    home = tmp / "home"
    config = tmp / "wireshark-config"
    home.mkdir(exist_ok=True)
    config.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "WIRESHARK_CONFIG_DIR": str(config)}
    env.pop("XDG_CONFIG_HOME", None)
    cmd = [_require("tshark"), "-n", "-r", str(pcap), "-X", f"lua_script:{LUA}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    if proc.returncode != 0 or "Lua" in proc.stderr:
        raise AssertionError(
            f"tshark failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr}\n"
            "If mrkm.lua did not load as root, check enable_lua and "
            "run_user_scripts_when_superuser in /etc/wireshark/init.lua (Debian 12: both true)."
        )
    return proc.stdout


def _decryption_line(spi_i: bytes, spi_r: bytes, key_i: bytes, key_r: bytes) -> str:
    """One ikev2_decryption_table UAT line for an AES-GCM-16-256 SA (§9.1)."""
    assert len(key_i) == len(key_r) == 36  # 32 key octets + 4 salt octets
    return f'{spi_i.hex()},{spi_r.hex()},{key_i.hex()},{key_r.hex()},{GCM_256},,,"NONE [RFC4306]"'


def _uat(*lines: str) -> list[str]:
    return [arg for line in lines for arg in ("-o", f"uat:ikev2_decryption_table:{line}")]


def _flip(key: bytes, index: int = 0) -> bytes:
    return key[:index] + bytes([key[index] ^ 0x01]) + key[index + 1 :]


def _body(payload: Payload) -> bytes:
    """The octets of a payload after its generic header: what tshark calls Data Payload."""
    return encode_chain((payload,))[1][4:]


# --------------------------------------------------------------------------- PDML


@dataclass
class Frame:
    """One packet of tshark's PDML output."""

    number: int
    root: ET.Element

    def all(self, name: str) -> list[ET.Element]:
        """Every element (field or proto) of this name, in document order."""
        return [e for e in self.root.iter() if e.get("name") == name]

    def shows(self, name: str) -> list[str]:
        return [e.get("show", "") for e in self.all(name)]

    def values(self, name: str) -> list[str]:
        """Raw hex of each occurrence (bytes fields)."""
        return [e.get("value", "") for e in self.all(name)]

    def ints(self, name: str) -> list[int]:
        return [int(s, 0) for s in self.shows(name)]

    def one(self, name: str) -> ET.Element:
        found = self.all(name)
        assert len(found) == 1, f"frame {self.number}: {len(found)} x {name}"
        return found[0]

    def inner_payloads(self) -> list[ET.Element]:
        """The payloads tshark decrypted from the SK payload, in order."""
        contained = self.one("isakmp.enc.contained")
        return [e for e in contained if e.get("name") == "isakmp.typepayload"]

    def data_payload(self, ptype: int) -> str:
        """Hex of the Data Payload of the (single) inner payload of type ``ptype``."""
        found = [p for p in self.inner_payloads() if int(p.get("show", "-1")) == ptype]
        assert len(found) == 1, f"frame {self.number}: {len(found)} payloads of type {ptype}"
        data = [e for e in found[0] if e.get("name") == "isakmp.datapayload"]
        assert len(data) == 1, f"frame {self.number}: payload {ptype} shows no Data Payload"
        return data[0].get("value", "")


def _pdml(text: str) -> list[Frame]:
    frames = []
    for packet in ET.fromstring(text).iter("packet"):
        number = next(int(e.get("show", "0")) for e in packet.iter() if e.get("name") == "num")
        frames.append(Frame(number, packet))
    return frames


def _problems(frame: Frame) -> list[str]:
    """Malformed-packet markers, error-severity expert infos and Lua errors in a frame."""
    out = [
        f"{e.get('name')}: {e.get('showname')}"
        for e in frame.root.iter()
        if (e.get("name") or "").startswith(("_ws.malformed", "_ws.lua.error"))
    ]
    for expert in frame.all("_ws.expert"):
        severity = [c for c in expert if c.get("name") == "_ws.expert.severity"]
        if severity and int(severity[0].get("show", "0")) >= SEVERITY_ERROR:
            out.append(f"expert error: {expert.get('showname')}")
    return out


# ------------------------------------------------- what mrkm.lua must show for our objects


def _ts_fields(prefix: str, selectors: list[TrafficSelector]) -> dict[str, list[str]]:
    return {
        f"{prefix}.type": [str(t.ts_type) for t in selectors],
        f"{prefix}.ip_protocol": [str(t.ip_protocol) for t in selectors],
        f"{prefix}.start_port": [str(t.start_port) for t in selectors],
        f"{prefix}.end_port": [str(t.end_port) for t in selectors],
        f"{prefix}.start_ipv4": [str(ipaddress.IPv4Address(t.start_address)) for t in selectors],
        f"{prefix}.end_ipv4": [str(ipaddress.IPv4Address(t.end_address)) for t in selectors],
    }


def _routing_ids(items: list[GsaPolicy] | list[GroupKeyBag]) -> list[str]:
    routing = (ProtocolId.OSPFV2, ProtocolId.OSPFV3_TRAILER)
    return [str(int.from_bytes(i.spi, "big")) for i in items if i.protocol in routing]


def _expected_gsa(gsa: GsaPayload) -> dict[str, list[str]]:
    """mrkm.lua's GSA fields (show, or hex for bytes) for a GSA we built."""
    policies = list(gsa.sa_policies)
    transforms = [t for p in policies for t in p.transforms]
    wide = [p for p in gsa.policies if isinstance(p, GroupWidePolicy)]
    sig = TransformAttr.SIGNATURE_ALGORITHM_IDENTIFIER
    return {
        "mrkm.gsa.protocol": [
            str(p.protocol) if isinstance(p, GsaPolicy) else "0" for p in gsa.policies
        ],
        "mrkm.gsa.spi": [p.spi.hex() for p in policies],
        "mrkm.gsa.routing_key_id": _routing_ids(policies),
        "mrkm.gsa.lifetime": [str(p.lifetime) for p in policies if p.lifetime is not None],
        "mrkm.gsa.initial_message_id": [
            str(a.as_int()) for p in policies for a in p.attributes if a.type == 2
        ],
        "mrkm.gsa.tf.type": [str(t.type) for t in transforms],
        "mrkm.gsa.tf.id": [str(t.id) for t in transforms],
        "mrkm.gsa.tf.key_length": [str(t.key_length) for t in transforms if t.key_length],
        "mrkm.gsa.tf.sig_alg": [
            a.as_bytes().hex() for t in transforms for a in t.attributes if a.type == sig
        ],
        **_ts_fields("mrkm.gsa.src", [p.source for p in policies]),
        **_ts_fields("mrkm.gsa.dst", [p.destination for p in policies]),
        "mrkm.gwp.atd": [str(w.atd) for w in wide if w.atd is not None],
        "mrkm.gwp.dtd": [str(w.dtd) for w in wide if w.dtd is not None],
    }


def _expected_kd(kd: KdPayload) -> dict[str, list[str]]:
    """mrkm.lua's KD fields for a KD we built."""
    bags = list(kd.group_bags)
    wrapped = [w for b in bags for w in b.sa_keys]
    members = [b for b in kd.bags if isinstance(b, MemberKeyBag)]
    return {
        "mrkm.kd.protocol": [
            str(b.protocol) if isinstance(b, GroupKeyBag) else "0" for b in kd.bags
        ],
        "mrkm.kd.spi": [b.spi.hex() for b in bags],
        "mrkm.kd.routing_key_id": _routing_ids(bags),
        "mrkm.kd.key_id": [str(w.key_id) for w in wrapped],
        "mrkm.kd.kwk_id": [str(w.kwk_id) for w in wrapped],
        "mrkm.kd.wrapped": [w.encrypted.hex() for w in wrapped],
        "mrkm.kd.wrapped_len": [str(len(w.encrypted)) for w in wrapped],
        "mrkm.kd.auth_key": [m.auth_key.hex() for m in members if m.auth_key is not None],
    }


def _expected_idg(idg: IdgPayload) -> dict[str, list[str]]:
    return {
        "mrkm.idg.type": [str(idg.id_type)],
        "mrkm.idg.data": [idg.data.hex()],
        "mrkm.idg.text": [idg.data.decode("ascii")],
    }


def _lua_fields(frame: Frame, names: list[str]) -> dict[str, list[str]]:
    bytes_fields = {"spi", "sig_alg", "wrapped", "auth_key", "data"}
    return {
        name: frame.values(name) if name.rsplit(".", 1)[1] in bytes_fields else frame.shows(name)
        for name in names
    }


# --------------------------------------------------------------------------- capture


def _udp_socket() -> socket.socket:
    """A UDP socket on 127.0.0.1 with a free port chosen by the kernel."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(TIMEOUT)
    return sock


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a process we started, by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=TIMEOUT)


@contextmanager
def _capture(pcap: Path, ports: list[int], probe: socket.socket) -> Iterator[None]:
    """Capture UDP on ``ports`` on lo with dumpcap while the body runs.

    Ready means a probe datagram (to ``probe``'s own port, which must be in
    ``ports``) is in the file; on exit a last probe is awaited the same way,
    so every datagram sent before it is on disk before dumpcap is stopped.
    """
    bpf = " or ".join(f"udp port {p}" for p in ports)
    errors = pcap.with_suffix(".dumpcap.txt")
    cmd = [_require("dumpcap"), "-q", "-i", "lo", "-f", bpf, "-P", "-w", str(pcap)]
    with errors.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        _await_probe(proc, pcap, probe, errors)
        yield
        _await_probe(proc, pcap, probe, errors)
    finally:
        _stop(proc)
    assert proc.returncode == 0, errors.read_text()


def _await_probe(
    proc: subprocess.Popen[bytes], pcap: Path, probe: socket.socket, errors: Path
) -> None:
    marker = b"mrkm-probe-" + os.urandom(8).hex().encode()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dumpcap exited with {proc.returncode}: {errors.read_text()}")
        probe.sendto(marker, probe.getsockname())
        assert probe.recv(2048) == marker
        if pcap.exists() and marker in pcap.read_bytes():
            return
        time.sleep(0.02)  # poll interval; dumpcap flushes its file every 100 ms
    raise AssertionError(f"dumpcap did not record a probe within {TIMEOUT} s")


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    """Everything one registration + rekey sent, and the keys tshark needs."""

    pcap: Path
    gcks_port: int
    rekey_port: int
    reg_lines: tuple[bytes, bytes, bytes, bytes]  # SPIi, SPIr, SK_ei, SK_er
    rekey_lines: tuple[bytes, bytes, bytes]  # SPIi, SPIr, GSK_e
    idg: IdgPayload
    request_inner: tuple[Payload, ...]
    gsa: GsaPayload
    kd: KdPayload
    response_inner: tuple[Payload, ...]
    rekey_gsa: GsaPayload
    rekey_kd: KdPayload
    rekey_inner: tuple[Payload, ...]
    keys: GroupKeys
    rekey_keys: GroupKeys
    signer: ed25519.Ed25519PrivateKey

    def uat(self, reg_er: bytes | None = None, gsk_e: bytes | None = None) -> list[str]:
        spi_i, spi_r, sk_ei, sk_er = self.reg_lines
        r_i, r_r, key = self.rekey_lines
        return _uat(
            _decryption_line(spi_i, spi_r, sk_ei, reg_er or sk_er),
            _decryption_line(r_i, r_r, gsk_e or key, gsk_e or key),
        )

    def tshark(self, tmp: Path, *args: str, uat: list[str] | None = None) -> str:
        return _tshark(
            tmp,
            self.pcap,
            "-o",
            f"mrkm.port:{self.gcks_port}",
            "-d",
            f"udp.port=={self.rekey_port},isakmp",
            *(self.uat() if uat is None else uat),
            *args,
        )


def _register_and_rekey(tmp: Path) -> Run:
    """GM <-> GCKS registration and one GSA_REKEY over UDP on lo, captured."""
    psk = os.urandom(32)
    signer = ed25519.Ed25519PrivateKey.generate()
    gm_id, gcks_id = Identity.fqdn("gm1.mrkm.test"), Identity.fqdn("gcks.mrkm.test")
    idg = IdgPayload(IdType.ID_KEY_ID, GROUP_ID)
    gm = IkeInitiator(
        LocalCredentials(gm_id, psk=psk),
        PeerTrust(psks={gcks_id: psk}),
        os.urandom,
        auth_payloads=(idg,),
    )
    gcks = IkeResponder(
        LocalCredentials(gcks_id, psk=psk), PeerTrust(psks={gm_id: psk}), os.urandom
    )
    pcap = tmp / "mrkm.pcap"
    socks = [_udp_socket() for _ in range(5)]
    gcks_s, gm_s, rekey_rx, rekey_tx, probe = socks
    try:
        gcks_addr, rekey_addr = gcks_s.getsockname(), rekey_rx.getsockname()
        policy = GroupPolicy(
            "127.0.0.1",
            rekey_address="239.192.0.1",
            rekey_port=_port(rekey_rx),
            rekey_lifetime=7200,
            signature_alg_id=algorithm_id_for(signer),
            teks=(
                TekPolicy(ProtocolId.OSPFV2, IntegId.ROUTING_HMAC_SHA256, 3600),
                TekPolicy(ProtocolId.OSPFV3_TRAILER, IntegId.ROUTING_HMAC_SHA1, 1800),
            ),
            atd=3,
            dtd=7,
        )
        suite, kwa = policy.rekey_suite, policy.kwa
        keys = GroupKeys(
            rekey_spi=os.urandom(16),
            rekey_keymat=os.urandom(RekeySa.keymat_len(suite, kwa)),
            teks=(
                RoutingKey(201, bytes([5]), IntegId.ROUTING_HMAC_SHA256, os.urandom(32), 3600),
                RoutingKey(202, bytes([1, 2]), IntegId.ROUTING_HMAC_SHA1, os.urandom(20), 1800),
            ),
        )
        with _capture(pcap, [_port(gcks_s), _port(rekey_rx), _port(probe)], probe):
            # IKE_SA_INIT, then GSA_AUTH: GM -> GCKS -> GM, twice.
            gm_s.sendto(gm.initiate(), gcks_addr)
            data, gm_addr = gcks_s.recvfrom(65535)
            reply = gcks.receive(data, time.time())
            assert isinstance(reply, bytes)
            gcks_s.sendto(reply, gm_addr)
            request = gm.receive(gm_s.recv(65535), time.time())
            assert request is not None
            gm_s.sendto(request, gcks_addr)
            decided = gcks.receive(gcks_s.recv(65535), time.time())
            assert isinstance(decided, AuthRequest)
            assert find(decided.payloads, IdgPayload) == idg
            sa = gcks.sa
            assert sa is not None and sa.suite.kwa is not None
            gsa = make_gsa(policy, keys, registration=True)
            kd = make_kd(policy, keys, sa.gsk_w, sa.suite.kwa, public_key_der(signer.public_key()))
            gcks_s.sendto(gcks.accept((gsa, kd)), gm_addr)
            assert gm.receive(gm_s.recv(65535), time.time()) is None
            assert gm.state is SaState.ESTABLISHED and gm.sa is not None
            assert find(gm.response_payloads, GsaPayload) == gsa
            assert find(gm.response_payloads, KdPayload) == kd
            group = read_group(gsa, kd, gm.sa.gsk_w, gm.sa.suite.kwa or 0)
            assert group.rekey_sa is not None and group.auth_key is not None

            # One GSA_REKEY under the Rekey SA: new OSPFv2 key, signed with Ed25519.
            rekey_sa = RekeySa.from_keymat(keys.rekey_spi, suite, kwa, keys.rekey_keymat)
            rekey_keys = GroupKeys(
                keys.rekey_spi,
                keys.rekey_keymat,
                (RoutingKey(201, bytes([6]), IntegId.ROUTING_HMAC_SHA256, os.urandom(32), 3600),),
                next_message_id=1,
            )
            rekey_gsa = make_gsa(policy, rekey_keys, registration=False)
            rekey_kd = make_kd(policy, rekey_keys, rekey_sa.gsk_w, kwa, None)
            raw = build_rekey(rekey_sa, 0, (rekey_gsa, rekey_kd), signer, os.urandom(8))
            rekey_tx.sendto(raw, rekey_addr)
            received = rekey_rx.recv(65535)
        message_id, rekey_inner = open_rekey(
            group.rekey_sa, received, load_public_key_der(group.auth_key), group.signature_alg_id
        )
        assert message_id == 0 and rekey_inner[:2] == (rekey_gsa, rekey_kd)
        new = read_group(rekey_gsa, rekey_kd, group.rekey_sa.gsk_w, group.rekey_sa.kwa)
        assert [t.key for t in new.teks] == [t.key for t in rekey_keys.teks]
    finally:
        for sock in socks:
            sock.close()
    return Run(
        pcap=pcap,
        gcks_port=gcks_addr[1],
        rekey_port=rekey_addr[1],
        reg_lines=(sa.spi_i, sa.spi_r, sa.keys.sk_ei, sa.keys.sk_er),
        rekey_lines=(rekey_sa.spi[:8], rekey_sa.spi[8:], rekey_sa.gsk_e),
        idg=idg,
        request_inner=decided.payloads,
        gsa=gsa,
        kd=kd,
        response_inner=gm.response_payloads,
        rekey_gsa=rekey_gsa,
        rekey_kd=rekey_kd,
        rekey_inner=rekey_inner,
        keys=keys,
        rekey_keys=rekey_keys,
        signer=signer,
    )


# --------------------------------------------------------------------------- tests


@pytest.mark.root
def test_tshark_decrypts_and_agrees_with_our_encoding(tmp_path: Path) -> None:
    run = _register_and_rekey(tmp_path)
    frames = _pdml(run.tshark(tmp_path, "-T", "pdml"))
    ike = [f for f in frames if f.all("isakmp")]
    exchanges = [f.ints("isakmp.exchangetype") for f in ike]
    assert exchanges == [[34], [34], [39], [39], [41]], exchanges
    init_req, init_resp, auth_req, auth_resp, rekey = ike
    assert len(frames) > len(ike)  # the capture's probes are there as well

    # (a) nothing malformed, no error-severity expert info, no Lua error, anywhere;
    # and mrkm.lua has nothing to complain about in our messages.
    for frame in frames:
        assert _problems(frame) == [], (frame.number, _problems(frame))
        for name in ("mrkm.malformed", "mrkm.bug", "mrkm.violation", "mrkm.undecrypted"):
            assert frame.all(name) == [], (frame.number, name)

    # (b) G-IKEv2 payload types recognized inside the decrypted data, exchanges named by Lua.
    def inner_types(frame: Frame) -> list[int]:
        return [int(p.get("show", "-1")) for p in frame.inner_payloads()]

    assert inner_types(auth_req) == [p.payload_type for p in run.request_inner]
    assert PayloadType.IDG in inner_types(auth_req)
    assert inner_types(auth_resp)[-2:] == [PayloadType.GSA, PayloadType.KD]
    assert inner_types(rekey) == [PayloadType.GSA, PayloadType.KD, PayloadType.AUTH]
    assert "Group Identification (50)" in str(auth_req.inner_payloads()[-1].get("showname"))
    for frame, name in ((auth_req, "GSA_AUTH"), (auth_resp, "GSA_AUTH"), (rekey, "GSA_REKEY")):
        item = frame.one("mrkm.exchange")
        assert item.get("showname") == f"Exchange type: {name} ({item.get('show')})"
    for frame in (init_req, init_resp):
        assert frame.all("mrkm") == []
    info = run.tshark(tmp_path, "-Y", "isakmp", "-T", "fields", "-e", "_ws.col.Info")
    assert [line.split(" MID=")[0] for line in info.splitlines()] == [
        "IKE_SA_INIT",
        "IKE_SA_INIT",
        "GSA_AUTH",
        "GSA_AUTH",
        "GSA_REKEY",
    ], info

    # (c) every SK payload decrypted and its ICV checked as correct.
    for frame in (auth_req, auth_resp, rekey):
        assert frame.ints("isakmp.typepayload")[0] == PayloadType.SK
        assert len(frame.all("isakmp.enc.decrypted")) == 1
        showname = frame.one("isakmp.enc.icd").get("showname", "")
        assert showname.endswith("[correct]"), showname
        assert frame.all("isakmp.ikev2.integrity_checksum") == []

    # (d) decrypted octets equal our encoding; mrkm.lua reads back what we put in.
    for frame, inner in (
        (auth_req, run.request_inner),
        (auth_resp, run.response_inner),
        (rekey, run.rekey_inner),
    ):
        shown = "".join(p.get("value", "") for p in frame.inner_payloads())
        assert shown == encode_chain(inner)[1].hex(), frame.number
    assert auth_req.data_payload(PayloadType.IDG) == _body(run.idg).hex()
    assert auth_resp.data_payload(PayloadType.GSA) == _body(run.gsa).hex()
    assert auth_resp.data_payload(PayloadType.KD) == _body(run.kd).hex()
    assert rekey.data_payload(PayloadType.GSA) == _body(run.rekey_gsa).hex()
    assert rekey.data_payload(PayloadType.KD) == _body(run.rekey_kd).hex()

    checks = (
        (auth_req, _expected_idg(run.idg)),
        (auth_resp, {**_expected_gsa(run.gsa), **_expected_kd(run.kd)}),
        (rekey, {**_expected_gsa(run.rekey_gsa), **_expected_kd(run.rekey_kd)}),
    )
    for frame, expected in checks:
        assert _lua_fields(frame, list(expected)) == expected, frame.number
    # The values named in the task, spelled out.
    kek_spi = run.keys.rekey_spi.hex()
    assert auth_resp.values("mrkm.gsa.spi")[0] == kek_spi == rekey.values("mrkm.kd.spi")[0]
    assert auth_resp.ints("mrkm.gsa.protocol") == [6, 201, 202, 0]
    assert auth_resp.ints("mrkm.gsa.routing_key_id") == [5, 0x0102]
    assert rekey.ints("mrkm.kd.routing_key_id") == [6]
    assert auth_resp.ints("mrkm.gsa.lifetime") == [7200, 3600, 1800]
    assert rekey.ints("mrkm.gsa.initial_message_id") == [1]
    assert auth_resp.ints("mrkm.gwp.atd") == [3] and auth_resp.ints("mrkm.gwp.dtd") == [7]
    assert auth_resp.ints("mrkm.kd.key_id") == [0, 0, 0] == auth_resp.ints("mrkm.kd.kwk_id")
    # RFC 5649 output: keymat rounded up to 8 octets, plus the 8-octet AIV.
    keymats = [len(run.keys.rekey_keymat), 32, 20]
    assert auth_resp.ints("mrkm.kd.wrapped_len") == [-(-n // 8) * 8 + 8 for n in keymats]
    assert auth_resp.values("mrkm.kd.auth_key") == [public_key_der(run.signer.public_key()).hex()]
    assert auth_resp.shows("mrkm.gsa.tf.sig_alg_oid") == ["1.3.101.112"]  # Ed25519
    assert auth_resp.ints("mrkm.gsa.dst.start_port") == [run.rekey_port, 0, 0]
    assert rekey.ints("udp.dstport") == [run.rekey_port]
    assert auth_req.shows("mrkm.idg.text") == [GROUP_ID.decode()]

    # (e) negative control: one wrong key byte (registration SK_er, Rekey SA GSK_e)
    # must make tshark report the ICV as incorrect; SK_ei stays right.
    _, _, _, sk_er = run.reg_lines
    bad = run.uat(reg_er=_flip(sk_er, 5), gsk_e=_flip(run.rekey_lines[2], 7))
    frames = _pdml(run.tshark(tmp_path, "-T", "pdml", uat=bad))
    _, _, auth_req, auth_resp, rekey = [f for f in frames if f.all("isakmp")]
    assert auth_req.one("isakmp.enc.icd").get("showname", "").endswith("[correct]")
    for frame in (auth_resp, rekey):
        assert "[incorrect, should be " in frame.one("isakmp.enc.icd").get("showname", "")
        assert len(frame.all("isakmp.ikev2.integrity_checksum")) == 1
        assert frame.all("mrkm.gsa.spi") == [] and frame.all("mrkm.kd.wrapped") == []


def _sealed(spi: bytes, key: bytes, message_id: int, inner: tuple[Payload, ...]) -> bytes:
    """A GSA_REKEY-shaped message, correctly sealed, around arbitrary inner payloads."""
    header = IkeHeader(spi[:8], spi[8:], ExchangeType.GSA_REKEY, FLAG_INITIATOR, message_id)
    suite = SkSuite(EncrId.ENCR_AES_GCM_16, 256)
    return seal_message(header, inner, suite, key, b"", os.urandom(suite.iv_len))


def _write_pcap(path: Path, datagrams: list[bytes], port: int) -> None:
    """A pcap file (LINKTYPE_RAW) of IPv4/UDP datagrams 127.0.0.1:40000 -> 127.0.0.1:port."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]
    for n, payload in enumerate(datagrams):
        udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBB", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0x4000, 64, 17)
        addresses = bytes([127, 0, 0, 1]) * 2
        total = sum(struct.unpack("!9H", ip + addresses))
        total = (total & 0xFFFF) + (total >> 16)
        checksum = ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF  # RFC 1071
        packet = ip + struct.pack("!H", checksum) + addresses + udp
        out.append(struct.pack("<IIII", n, 0, len(packet), len(packet)) + packet)
    path.write_bytes(b"".join(out))


def _structurally_broken(ptype: int, body: bytes) -> bool:
    """Whether our own decoder rejects a body (the oracle for mrkm.malformed)."""
    codec = {PayloadType.IDG: IdgPayload, PayloadType.GSA: GsaPayload, PayloadType.KD: KdPayload}
    try:
        codec[ptype].pull(Buffer(body))
    except DecodeError:
        return True
    return False


def test_lua_flags_malformed_bodies_without_lua_errors(tmp_path: Path) -> None:
    """Every truncation of a real GSA/KD/IDg body is flagged iff our decoder rejects it."""
    signer = ed25519.Ed25519PrivateKey.generate()
    policy = GroupPolicy("127.0.0.1", signature_alg_id=algorithm_id_for(signer))
    keys = GroupKeys(
        os.urandom(16),
        os.urandom(RekeySa.keymat_len(policy.rekey_suite, policy.kwa)),
        (RoutingKey(201, b"\x05", IntegId.ROUTING_HMAC_SHA256, os.urandom(32), 3600),),
    )
    kwk = os.urandom(32)
    bodies = {
        PayloadType.IDG: _body(IdgPayload(IdType.ID_KEY_ID, GROUP_ID)),
        PayloadType.GSA: _body(make_gsa(policy, keys, registration=True)),
        PayloadType.KD: _body(
            make_kd(policy, keys, kwk, policy.kwa, public_key_der(signer.public_key()))
        ),
    }
    cases: list[tuple[int, bytes, bool | None]] = []  # (type, body, expect mrkm.malformed)
    for ptype, body in bodies.items():
        cases.append((ptype, body, False))
        cases += [
            (ptype, body[:n], _structurally_broken(ptype, body[:n])) for n in range(1, len(body))
        ]
    rng = random.Random(9838)
    for ptype in (PayloadType.GSA, PayloadType.KD):
        body = bodies[ptype]
        for _ in range(150):  # corrupted octets: only robustness is asserted
            mutated = bytearray(body)
            mutated[rng.randrange(len(body))] = rng.randrange(256)
            cases.append((ptype, bytes(mutated), None))
    assert sum(1 for c in cases if c[2]) > 100 and sum(1 for c in cases if c[2] is False) > 3

    spi, key = os.urandom(16), os.urandom(36)
    pcap = tmp_path / "malformed.pcap"
    _write_pcap(
        pcap,
        [
            _sealed(spi, key, n, (UnknownPayload(ptype, body),))
            for n, (ptype, body, _) in enumerate(cases)
        ],
        848,  # mrkm.lua hands UDP 848 to isakmp by itself
    )
    line = _decryption_line(spi[:8], spi[8:], key, key)
    fields = [
        "frame.number",
        "mrkm.payload",
        "mrkm.malformed",
        "mrkm.bug",
        "_ws.lua.error",
        "_ws.malformed",
        "isakmp.ikev2.integrity_checksum",
    ]
    out = _tshark(
        tmp_path,
        pcap,
        *_uat(line),
        "-T",
        "fields",
        "-E",
        "occurrence=f",
        *(a for f in fields for a in ("-e", f)),
    )
    rows = [row.split("\t") for row in out.splitlines()]
    assert len(rows) == len(cases)
    for row, (ptype, body, expect) in zip(rows, cases, strict=True):
        got = dict(zip(fields, row, strict=True))
        where = f"frame {got['frame.number']}: type {ptype}, {len(body)} octets {body.hex()}"
        assert got["mrkm.payload"] == str(ptype), where  # decoded, at least partly
        assert got["mrkm.bug"] == got["_ws.lua.error"] == "", where
        assert got["isakmp.ikev2.integrity_checksum"] == "", where
        flagged = got["mrkm.malformed"] != ""
        # Wireshark marks every Malformed-group expert info with _ws.malformed as well;
        # nothing but mrkm.lua may find these (correctly sealed) messages malformed.
        assert (got["_ws.malformed"] != "") == flagged, where
        if expect is not None:
            assert flagged == expect, where
