"""testbed.bundle (run folder, manifest, files), and testbed.plots / testbed.summary on it."""

from __future__ import annotations

import csv
import json
import math
import platform
import time
from pathlib import Path

import pytest
from rich.console import Console

from testbed import plots, summary
from testbed.bundle import RunBundle, fault, merge_events, new_run_folder, versions
from testbed.metrics import MEMBER_FIELDS, REKEY_FIELDS, read_jsonl
from tests import run_support as rs

NOW = 1_795_769_308.5  # 2026-11-27 05:28:28 UTC


def test_run_folder_is_scenario_utc_time_and_seed(tmp_path: Path) -> None:
    """``<root>/<scenario>/<UTC>-s<seed>``; a second run in the same second gets ``-2``."""
    first = new_run_folder(tmp_path, "baseline", 7, NOW)
    second = new_run_folder(tmp_path, "baseline", 7, NOW)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(NOW))
    assert first == tmp_path / "baseline" / f"{stamp}-s7" and first.is_dir()
    assert second == tmp_path / "baseline" / f"{stamp}-s7-2" and second.is_dir()
    with pytest.raises(ValueError, match="scenario name"):
        new_run_folder(tmp_path, "../up", 1, NOW)


def test_merge_events_sorts_stably_and_names_nodes(tmp_path: Path) -> None:
    """Same t keeps each log's order; a record without node gets the log's stem; lines that
    are not events are dropped; the runner's events are node "testbed"."""
    a = rs.write_jsonl(
        tmp_path / "a.jsonl",
        [{"t": 2, "event": "x", "node": "A"}, {"t": 2, "event": "y", "node": "A"}],
    )
    b = rs.write_jsonl(tmp_path / "b.jsonl", [{"t": 1, "event": "z"}, {"note": "no t"}])
    merged = merge_events([a, b], [{"t": 1.5, "event": "fault", "kind": "kill"}])
    assert [(e["t"], e["event"], e["node"]) for e in merged] == [
        (1, "z", "b"),
        (1.5, "fault", "testbed"),
        (2, "x", "A"),
        (2, "y", "A"),
    ]


def test_fault_event_shape() -> None:
    """A fault names its kind, targets and end."""
    assert fault("link_down", 10.0, 12.5, ["r1", "r2"], link="r1-r2") == {
        "t": 10.0,
        "event": "fault",
        "node": "testbed",
        "kind": "link_down",
        "targets": ["r1", "r2"],
        "until": 12.5,
        "link": "r1-r2",
    }


def test_versions_name_commit_and_tools() -> None:
    """Kernel and Python from this host; the MRKM commit is a git hash."""
    v = versions()
    assert v["kernel"] == platform.release() and v["python"] == platform.python_version()
    assert v["cryptography"] and len(v["mrkm"]["commit"] or "") == 40
    assert set(v) >= {"frr", "bird", "scapy", "matplotlib", "tcpdump"}


def _finished(tmp_path: Path) -> tuple[RunBundle, dict[str, object]]:
    bundle = RunBundle.create(tmp_path / "results", "synthetic", 42, {"members": 3})
    rs.write_collector_files(bundle.folder)
    logs = rs.write_logs(tmp_path / "work")
    faults = [fault("link_down", rs.T + 29, rs.T + 31, ["r1", "r2"])]
    done = bundle.finish(logs, exit_codes={"gcks": 0}, failure=None, testbed_events=faults)
    return bundle, done


def test_finish_writes_every_file_of_the_bundle(tmp_path: Path) -> None:
    """manifest, merged events, metrics.csv, members.csv, summary.json and logs/."""
    bundle, done = _finished(tmp_path)
    folder = bundle.folder
    assert folder.parent == tmp_path / "results" / "synthetic" and folder.name.endswith("-s42")
    assert sorted(p.name for p in (folder / "logs").iterdir()) == [
        "gcks.jsonl",
        "gcks.stderr",
        "r1.mrkm.jsonl",
        "r2.mrkm.jsonl",
        "r3.mrkm.jsonl",
    ]
    events = read_jsonl(folder / "events.jsonl")
    assert len(events) == len(rs.all_events()) + 1
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert next(e for e in events if e["event"] == "fault")["node"] == "testbed"

    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    assert list(rows[0]) == list(REKEY_FIELDS)
    assert [(r["reason"], r["accept_max_ms"], r["install_max_ms"], r["skew_ms"]) for r in rows] == [
        ("manual", "10.0", "1000.0", "1000.0"),
        ("eviction", "8.0", "", ""),
        ("after-eviction", "5.0", "30.0", "250.0"),
    ]
    members = list(csv.DictReader((folder / "members.csv").open()))
    assert list(members[0]) == list(MEMBER_FIELDS) and len(members) == 7

    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["scenario"], manifest["seed"], manifest["parameters"]) == (
        "synthetic",
        42,
        {"members": 3},
    )
    assert manifest["exit_codes"] == {"gcks": 0} and manifest["failure"] is None
    assert manifest["versions"]["kernel"] == platform.release()
    assert len(manifest["host"]["load_before"]) == 3 and len(manifest["host"]["load_after"]) == 3
    assert isinstance(manifest["valid"], bool)
    assert manifest["valid"] == (manifest["invalid_reasons"] == [])
    assert manifest["started_utc"].endswith("Z") and manifest["duration_s"] >= 0

    saved = json.loads((folder / "summary.json").read_text())
    assert saved == json.loads(json.dumps(done))
    assert saved["registration_convergence_s"] == 0.41 and saved["adjacency_flaps"] == 1
    assert saved["gcks_cpu"]["per_registration_ms"] == 27.333


def test_a_saturated_host_makes_the_run_invalid(tmp_path: Path) -> None:
    """Six host samples at 95 % busy, one second apart: invalid, and the reason says why."""
    bundle = RunBundle.create(tmp_path, "busy", 1, {})
    samples = [
        {"t": rs.T + i, "event": "host_load", "busy": None if i == 0 else 0.95, "load1": 0.1}
        for i in range(7)
    ]
    rs.write_jsonl(bundle.folder / "samples" / "host.jsonl", samples)
    done = bundle.finish(rs.write_logs(tmp_path / "work"))
    manifest = json.loads((bundle.folder / "manifest.json").read_text())
    assert done["valid"] is False and manifest["valid"] is False
    assert manifest["invalid_reasons"][0].startswith("CPU busy > 90% for 6.0 s")
    assert manifest["host"]["busy_over_limit_s"] == 6.0


def test_two_logs_with_one_name_are_refused(tmp_path: Path) -> None:
    """Copies are named by file name unless a mapping names them."""
    bundle = RunBundle.create(tmp_path, "x", 1, {})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = tmp_path / "a" / "ospfd.log", tmp_path / "b" / "ospfd.log"
    one.write_text("1")
    two.write_text("2")
    with pytest.raises(ValueError, match=r"logs/ospfd.log"):
        bundle.copy_logs([one, two])
    copies = RunBundle.create(tmp_path, "y", 1, {}).copy_logs(
        {"r1/ospfd.log": one, "r2/ospfd.log": two}
    )
    assert [c.read_text() for c in copies] == ["1", "2"]


# -- plots and the printed summary ---------------------------------------------------------------


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_plots_write_cdf_and_timeline_as_png_and_pdf(tmp_path: Path) -> None:
    """Both figures, PNG and PDF, non-empty, in plots/; reading only the bundle."""
    bundle, _ = _finished(tmp_path)
    paths = plots.plot_run(bundle.folder)
    names = sorted(p.name for p in paths)
    assert names == ["key-convergence.pdf", "key-convergence.png", "timeline.pdf", "timeline.png"]
    for path in paths:
        assert path.parent == bundle.folder / "plots"
        if path.suffix == ".png":
            assert _is_png(path)
        else:
            assert path.read_bytes()[:5] == b"%PDF-" and path.stat().st_size > 5_000


def test_plots_cli_and_an_empty_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints what it wrote; a run without GMs or accepts plots nothing."""
    bundle, _ = _finished(tmp_path)
    assert plots.main([str(bundle.folder)]) == 0
    assert "key-convergence.png" in capsys.readouterr().out
    empty = RunBundle.create(tmp_path, "empty", 1, {})
    empty.finish([])
    assert plots.plot_run(empty.folder) == []
    with pytest.raises(SystemExit):
        plots.main([str(tmp_path)])


def test_key_schedule_and_key_held_steps() -> None:
    """The key table's sending key per protocol (NaN after the last one ends); the newest
    key held after each registration or accept."""
    events = rs.all_events()
    (steps,) = plots.key_schedule(events, "r1.mrkm").values()
    assert steps[:-1] == [(rs.T + 10, 1.0), (rs.T + 20, 2.0), (rs.T + 30, 3.0)]
    assert steps[-1][0] == rs.T + 40 and math.isnan(steps[-1][1])
    assert plots.key_held(events, "r3.mrkm") == {"g": [(rs.T + 0.61, 1.0), (rs.T + 10.002, 2.0)]}


def test_summary_prints_the_rekey_table_and_headline_numbers(tmp_path: Path) -> None:
    """The table shows every rekey; the facts show convergence, flaps, CPU and validity."""
    _, done = _finished(tmp_path)
    console = Console(record=True, width=140)
    summary.print_summary(done, console=console)
    text = console.export_text()
    assert "after-eviction" in text and "10 / 4 / 10" in text
    assert "3/3 GMs in 0.410 s" in text
    assert "excluded by eviction      r3.mrkm" in text
    assert "27.333 ms per registration, 26.667 ms per rekey" in text
    assert "PIM AH" in text and "unprotected (no AH shim)" in text  # no shim in this run


def test_summary_shows_pim_ah_packets_and_drops_per_reason() -> None:
    pim = {"drops": {"in:unprotected": 3, "out:no-send-sa": 40}, "protected": 900, "accepted": 880}
    console = Console(record=True, width=140)
    summary.print_summary({"pim_ah": pim}, console=console)
    text = console.export_text()
    assert "900 packets protected, 880 accepted; drops: in:unprotected 3, out:no-send-sa 40" in text
