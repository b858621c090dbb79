"""The ``mrkm`` command line: help, configuration errors, keygen, decode, status."""

from __future__ import annotations

import io
import json
import random
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from mrkm.cli import main
from mrkm.config import GcksConfig, GmConfig, load_gcks_config, load_gm_config
from mrkm.crypto.certs import verify_chain
from mrkm.protocol.credentials import Identity, LocalCredentials, PeerTrust
from mrkm.protocol.gcks import KeyServer
from mrkm.protocol.gm import GroupMember
from mrkm.runtime.eventlog import EventLog
from mrkm.runtime.gcks_process import GcksProcess
from mrkm.runtime.gm_process import GmProcess
from tests.harness import PSK, T0, make_group
from tests.runtime_support import (
    REPO,
    daemon_in_thread,
    free_udp_port,
    gcks_yaml,
    gm_yaml,
    rekey_group,
    write_yaml,
)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_python_dash_m_mrkm_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mrkm", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0
    for command in ("gcks", "gm", "keygen", "status", "decode"):
        assert command in done.stdout


def test_subcommand_help_names_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["gm", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--keytable" in out and "stdout, the default" in " ".join(out.split())


# -- configuration errors: one line, naming the field, exit 2 ----------------------------


def _gcks(**changes: Any) -> dict[str, Any]:
    """A loopback GCKS configuration with ``section__field=value`` changes (None removes)."""
    data = gcks_yaml(["r1.mrkm"], free_udp_port(), "239.255.1.1", free_udp_port())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        target = data[section][0] if section == "groups" else data[section]
        if value is None:
            target.pop(field)
        else:
            target[field] = value
    return data


@pytest.mark.parametrize(
    ("role", "data", "expected"),
    [
        ("gcks", _gcks(gcks__colour="blue"), "gcks: unknown field(s) colour"),
        ("gcks", _gcks(groups__psk=None), "groups[0].psk: needed unless every member"),
        ("gcks", _gcks(gcks__state="s.json"), "gcks.signing_key: needed with gcks.state"),
        ("gcks", _gcks(gcks__signing_key="none.key"), "gcks.signing_key: "),
        ("gcks", _gcks(gcks__multicast_ttl=300), "gcks.multicast_ttl: must be 0 to 255"),
        ("gcks", _gcks(gcks__multicast_ttl="many"), "gcks.multicast_ttl: 'many' is not a int"),
        (
            "gcks",
            _gcks(gcks__rekey_source="lo", gcks__rekey_interface=None),
            "gcks.rekey_source: 'lo' is not an IPv4",
        ),
        ("gcks", _gcks(gcks__rekey_source="not-an-ip"), "gcks.rekey_source: "),
        ("gcks", _gcks(groups__lifetime=3), "groups[0].lifetime: must be at least 10"),
        ("gm", gm_yaml("r1.mrkm", 848, "239.255.1.1", 848, psk=None), "gm.psk: needed unless"),
        ("gm", gm_yaml("r1.mrkm", 848, "10.0.0.1", 848), "gm.rekey_groups[0]: must be a multicast"),
        ("gm", gm_yaml("r1.mrkm", 848, "239.1.1.1", 848, listen="x"), "gm.listen: 'x' is not"),
        ("gm", gm_yaml("r1.mrkm", 848, "239.1.1.1", 848, key="k.pem"), "gm.certificate: "),
        ("gm", {"gm": {"identity": "r1"}}, "gm.gcks: missing"),
    ],
)
def test_config_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], role: str, data: Any, expected: str
) -> None:
    if role == "gm" and data["gm"].get("psk", "") is None:
        del data["gm"]["psk"]
    path = write_yaml(tmp_path / "c.yaml", data)
    code, out, err = _run([role, "--config", str(path), "--log", str(tmp_path / "l")], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err
    assert err.startswith(f"mrkm {role}: configuration error: ")
    assert not (tmp_path / "l").exists()  # nothing started, nothing logged


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["gcks", "--config", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "nope.yaml: cannot read: No such file or directory" in err


def test_unknown_interface_is_a_runtime_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_yaml(
        tmp_path / "gm.yaml",
        gm_yaml("r1.mrkm", free_udp_port(), rekey_group(), free_udp_port(), interface="nope0"),
    )
    code, _, err = _run(["gm", "--config", str(path), "--log", str(tmp_path / "l")], capsys)
    assert code == 1
    assert err == "mrkm gm: no such network interface 'nope0'\n"


# -- keygen ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_keygen_writes_a_pki_and_config_snippets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], algorithm: str
) -> None:
    out_dir = tmp_path / "pki"
    argv = ["keygen", "--out", str(out_dir), "--gcks", "gcks.mrkm", "--algorithm", algorithm]
    code, out, _ = _run([*argv, "--member", "r1.mrkm", "r2.mrkm"], capsys)
    assert code == 0
    ca = x509.load_pem_x509_certificate((out_dir / "ca.pem").read_bytes())
    for name in ("ca", "gcks.mrkm", "r1.mrkm", "r2.mrkm"):
        assert stat.S_IMODE((out_dir / f"{name}.key").stat().st_mode) == 0o600
        key = load_pem_private_key((out_dir / f"{name}.key").read_bytes(), None)
        want = ed25519.Ed25519PrivateKey if algorithm == "ed25519" else ec.EllipticCurvePrivateKey
        assert isinstance(key, want)
        if name != "ca":
            cert = x509.load_pem_x509_certificate((out_dir / f"{name}.pem").read_bytes())
            verify_chain(cert, ca, datetime.now(UTC))
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert san.get_values_for_type(x509.DNSName) == [name]
    # The printed snippets are working configurations.
    parts = out.split("# --- ")
    gcks_text = parts[1].split("---\n", 1)[1]
    gm_text = parts[2].split("---\n", 1)[1]
    (tmp_path / "gcks.yaml").write_text(gcks_text)
    (tmp_path / "r1.yaml").write_text(gm_text)
    gcks = load_gcks_config(tmp_path / "gcks.yaml")
    gm = load_gm_config(tmp_path / "r1.yaml")
    assert gcks.certificate == out_dir.resolve() / "gcks.mrkm.pem"
    assert [m.id for m in gcks.groups[0].members] == ["r1.mrkm", "r2.mrkm"]
    assert gm.key == out_dir.resolve() / "r1.mrkm.key" and gm.gcks_identity == "gcks.mrkm"
    # Never overwrites; bad names are usage errors.
    code, _, err = _run([*argv, "--member", "r3.mrkm"], capsys)
    assert code == 1 and "exists; keygen never overwrites keys" in err
    assert not (out_dir / "r3.mrkm.key").exists()
    code, _, err = _run([*argv, "--out", str(tmp_path / "x"), "--member", "../evil"], capsys)
    assert code == 2 and "'../evil' is not a usable identity" in err


# -- decode ---------------------------------------------------------------------------------


def _sa_init() -> bytes:
    config = GmConfig("r1.mrkm", ("127.0.0.1", 848), ("g1",), psk=PSK)
    gm = GroupMember(
        config,
        LocalCredentials(Identity.fqdn("r1.mrkm"), psk=PSK),
        PeerTrust(group_psk=PSK),
        random.Random(1).randbytes,
        T0,
    )
    gm.handle_timer(T0)
    [(data, _)] = gm.datagrams_to_send(T0)
    return data


def _rekey() -> bytes:
    rand = random.Random(2)
    config = GcksConfig("gcks.mrkm", ("10.0.0.1", 848), (make_group(1, name="g1"),))
    signer = ed25519.Ed25519PrivateKey.from_private_bytes(rand.randbytes(32))
    gcks = KeyServer(config, signer, rand.randbytes, T0)
    gcks.rekey("g1", T0)
    return gcks.datagrams_to_send(T0)[0][0]


def test_decode_file_prints_header_and_payload_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "init.bin"
    path.write_bytes(_sa_init())
    code, out, _ = _run(["decode", str(path)], capsys)
    assert code == 0
    assert "  exchange: IKE_SA_INIT (34)" in out
    assert "  flags: 0x08 (I)" in out and "  message_id: 0" in out
    for payload in ("SA (33)", "KE (34)", "NONCE (40)"):
        assert f"\n  {payload}\n" in out
    assert "type: ENCR (1)" in out and "group: " in out


def test_decode_hex_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = " ".join(f"{b:02x}" for b in _rekey()) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    code, out, _ = _run(["decode", "--hex", "-"], capsys)
    assert code == 0
    assert "exchange: GSA_REKEY (41)" in out
    assert "SK (46)" in out and "first_inner: GSA (51)" in out


@pytest.mark.parametrize(
    ("data", "hex_input", "reason"),
    [
        (b"\x00" * 10, False, "Truncated"),
        (b"zz", True, "input is not hex"),
        (None, False, "BadLength: IKE Length field says"),
    ],
)
def test_decode_errors_name_the_reason(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data: bytes | None,
    hex_input: bool,
    reason: str,
) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(data if data is not None else _sa_init() + b"\x00")
    code, out, err = _run(["decode", str(path), *(["--hex"] if hex_input else [])], capsys)
    assert code == 1 and out == ""
    assert err.startswith("mrkm decode: ") and reason in err


# -- status ---------------------------------------------------------------------------------


def test_status_of_a_running_gcks_and_gm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, group, rekey_port = free_udp_port(), rekey_group(), free_udp_port()
    gcks_config = GcksConfig(
        "gcks.mrkm",
        ("127.0.0.1", port),
        (make_group(1, name="g1", rekey_address=group, rekey_port=rekey_port),),
        rekey_interface="lo",
    )
    gm_config = GmConfig(
        "r0.mrkm",
        ("127.0.0.1", port),
        ("g1",),
        psk=PSK,
        interface="lo",
        rekey_groups=((group, rekey_port),),
    )
    gcks = GcksProcess(gcks_config, EventLog(None, "gcks.mrkm"), tmp_path / "g.sock", signals=False)
    gm = GmProcess(gm_config, EventLog(None, "r0.mrkm"), tmp_path / "m.sock", signals=False)
    with daemon_in_thread(gcks), daemon_in_thread(gm):
        from tests.runtime_support import wait_until

        wait_until(lambda: gm.core.key_table.rows != {}, 10, "the GM's registration")
        code, out, _ = _run(["status", "--control", str(tmp_path / "g.sock")], capsys)
        assert code == 0
        assert out.startswith("GCKS gcks.mrkm  pid ")
        assert "group g1\n  members (1): r0.mrkm\n  key ids: 1  (current 1)" in out
        code, out, _ = _run(["status", "--control", str(tmp_path / "g.sock"), "--json"], capsys)
        raw = json.loads(out)
        assert code == 0 and raw["groups"]["g1"]["members"] == ["r0.mrkm"]
        code, out, _ = _run(["status", "--control", str(tmp_path / "m.sock")], capsys)
        assert code == 0 and "group g1: member\n  ospfv2 key 1 hmac-sha-256" in out
    code, _, err = _run(["status", "--control", str(tmp_path / "g.sock")], capsys)
    assert code == 1 and "cannot reach" in err


def test_keygen_takes_repeated_member_options(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    assert (
        main(
            [
                "keygen",
                "--out",
                str(out),
                "--gcks",
                "g.mrkm",
                "--member",
                "a.mrkm",
                "--member",
                "b.mrkm",
                "c.mrkm",
            ]
        )
        == 0
    )
    assert {p.name for p in out.glob("*.pem")} >= {"a.mrkm.pem", "b.mrkm.pem", "c.mrkm.pem"}
