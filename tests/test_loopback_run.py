"""The loopback run behind `make run-scenario`: real processes, a bundle, honest metrics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from testbed.loopback import main


@pytest.mark.slow
def test_loopback_run_writes_a_bundle_with_every_rekey(tmp_path: Path) -> None:
    argv = [
        "--members",
        "4",
        "--rekeys",
        "2",
        "--evict",
        "1",
        "--seed",
        "5",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    (bundle,) = (tmp_path / "loopback-baseline").iterdir()
    assert bundle.name.endswith("-s5")
    summary = json.loads((bundle / "summary.json").read_text())
    reasons = [r["reason"] for r in summary["rekeys"]]
    assert reasons == ["manual", "manual", "eviction", "after-eviction"]
    assert [r["members_accepted"] for r in summary["rekeys"]] == [4, 4, 3, 3]
    assert [r["members_expected"] for r in summary["rekeys"]] == [4, 4, 3, 3]
    assert summary["excluded"] == ["r4.mrkm"]
    assert summary["failure"] is None and summary["incomplete_rekeys"] == []
    assert summary["registration"]["registered"] == 4
    assert summary["registration_convergence_s"] > 0
    rows = list(csv.DictReader((bundle / "metrics.csv").open()))
    assert all(float(r["accept_max_ms"]) > 0 for r in rows)
    assert all(int(r["bytes"]) == int(r["octets"]) * int(r["copies"]) for r in rows)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["exit_codes"].values()) == {0}
    assert manifest["seed"] == 5 and manifest["versions"]["mrkm"]["commit"]
    events = [json.loads(line) for line in (bundle / "events.jsonl").open()]
    assert {e["node"] for e in events} == {"gcks.mrkm", *(f"r{i}.mrkm" for i in range(1, 5))}
    logs = {p.name for p in (bundle / "logs").iterdir()}
    assert {"gcks.jsonl", "gcks.stderr", "r1.mrkm.jsonl"} <= logs
    assert not any(name.endswith((".key", ".keys.json", ".yaml")) for name in logs)  # no secrets
    assert (bundle / "samples" / "cpu-gcks.jsonl").stat().st_size > 0
    assert (bundle / "plots" / "key-convergence.png").stat().st_size > 0


def test_loopback_run_rejects_unknown_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--scenario", "nope"])
    assert info.value.code == 2
    assert "unknown scenario 'nope'; known: baseline" in capsys.readouterr().err
