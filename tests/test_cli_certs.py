"""Certificate mode end to end: ``mrkm keygen`` output used by a GCKS and GMs on loopback.

The GCKS holds no PSK at all: members prove themselves with certificates
from the keygen CA, the GCKS with its own (RFC 7296 §2.15, RFC 7427). A
member whose certificate comes from another CA is refused with
AUTHENTICATION_FAILED.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mrkm.cli import main
from mrkm.runtime.control import request
from tests.runtime_support import (
    Procs,
    free_udp_port,
    gcks_yaml,
    gm_yaml,
    of,
    read_events,
    rekey_group,
    wait_until,
    write_yaml,
)


def _cert_gm(name: str, pki: Path, ca: Path, port: int, group: str, rekey_port: int) -> Any:
    data = gm_yaml(name, port, group, rekey_port, gcks_identity="gcks.mrkm")
    del data["gm"]["psk"]
    data["gm"] |= {
        "certificate": str(pki / f"{name}.pem"),
        "key": str(pki / f"{name}.key"),
        "ca": str(ca),
    }
    return data


def test_keygen_pki_runs_a_gcks_and_two_gms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki, other = tmp_path / "pki", tmp_path / "other-pki"
    assert (
        main(["keygen", "--out", str(pki), "--gcks", "gcks.mrkm", "--member", "r1.mrkm", "r2.mrkm"])
        == 0
    )
    assert main(["keygen", "--out", str(other), "--gcks", "gcks.mrkm", "--member", "r3.mrkm"]) == 0
    capsys.readouterr()
    port, group, rekey_port = free_udp_port(), rekey_group(), free_udp_port()
    gcks = gcks_yaml(["r1.mrkm", "r2.mrkm", "r3.mrkm"], port, group, rekey_port)
    del gcks["groups"][0]["psk"]  # certificates only
    gcks["gcks"] |= {
        "signing_key": str(pki / "gcks.mrkm.key"),
        "certificate": str(pki / "gcks.mrkm.pem"),
        "ca": str(pki / "ca.pem"),
        "state": "state.json",
    }
    write_yaml(tmp_path / "gcks.yaml", gcks)
    ca = pki / "ca.pem"
    for name in ("r1.mrkm", "r2.mrkm"):
        write_yaml(tmp_path / f"{name}.yaml", _cert_gm(name, pki, ca, port, group, rekey_port))
    # r3 is on the member list but its certificate is from another CA.
    write_yaml(tmp_path / "r3.mrkm.yaml", _cert_gm("r3.mrkm", other, ca, port, group, rekey_port))

    procs = Procs(tmp_path)
    control = tmp_path / "gcks.sock"
    logs = {n: tmp_path / f"{n}.jsonl" for n in ("gcks", "r1.mrkm", "r2.mrkm", "r3.mrkm")}
    try:
        procs.start(
            "gcks",
            "gcks",
            "--config",
            "gcks.yaml",
            "--log",
            "gcks.jsonl",
            "--control",
            str(control),
        )
        wait_until(control.exists, 10, "the GCKS control socket")
        for name in ("r1.mrkm", "r2.mrkm", "r3.mrkm"):
            procs.start(name, "gm", "--config", f"{name}.yaml", "--log", f"{name}.jsonl")
        wait_until(
            lambda: (
                len(of(read_events(logs["gcks"]), "member_registered")) == 2
                and of(read_events(logs["r3.mrkm"]), "registration_failed") != []
            ),
            15,
            "r1 and r2 registered, r3 refused",
        )
        answer = request(control, {"cmd": "rekey", "group": "g1"})
        assert answer["ok"], answer
        message_id = answer["result"]["message_id"]
        wait_until(
            lambda: all(
                message_id in [e["message_id"] for e in of(read_events(logs[n]), "rekey_accepted")]
                for n in ("r1.mrkm", "r2.mrkm")
            ),
            10,
            "both GMs to accept the rekey",
        )
        assert main(["status", "--control", str(control)]) == 0
        status = capsys.readouterr().out
    finally:
        codes = procs.stop_all()
    assert set(codes.values()) == {0}, codes
    assert "members (2): r1.mrkm, r2.mrkm" in status
    registered = of(read_events(logs["gcks"]), "member_registered")
    assert sorted(e["member"] for e in registered) == ["r1.mrkm", "r2.mrkm"]
    failed = of(read_events(logs["r3.mrkm"]), "registration_failed")[0]
    assert failed["notify_type"] == 24  # AUTHENTICATION_FAILED (RFC 7296 §2.21.2)
    assert of(read_events(logs["r3.mrkm"]), "keys_installed") == []
    sent = [e for e in of(read_events(logs["gcks"]), "rekey_sent") if e["message_id"] == message_id]
    for name in ("r1.mrkm", "r2.mrkm"):
        accepted = of(read_events(logs[name]), "rekey_accepted")
        assert [e["key_ids"] for e in accepted if e["message_id"] == message_id] == [
            sent[0]["key_ids"]
        ]
