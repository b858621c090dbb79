"""testbed.metrics against values worked out by hand (tests/run_support.py explains them)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from testbed.metrics import (
    Distribution,
    adjacency_flaps,
    compute_metrics,
    cpu_at,
    expected_members,
    gcks_cpu,
    host_saturation,
    percentile,
    read_jsonl,
    registration,
    rekey_results,
    roles,
    summarize,
    write_csv,
)
from tests import run_support as rs

T = rs.T


def _rows() -> list[dict[str, Any]]:
    return [r.row() for r in rekey_results(rs.all_events(), rs.wire_records(), rs.cpu_records())]


# -- building blocks --------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    """p95 of 1..20 is the 19th value; of one value, that value; of nothing, None."""
    assert percentile(list(range(1, 21)), 95) == 19
    assert percentile([3.0, 1.0, 2.0], 95) == 3.0  # ceil(2.85) = 3rd
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 95) is None
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_distribution_median_averages_the_middle_pair() -> None:
    """max, median (mean of the middle two for even n) and p95, in ms on request."""
    d = Distribution.of([0.004, 0.001, 0.002, 0.010])
    assert (d.n, d.max, d.median, d.p95) == (4, 0.010, 0.003, 0.010)
    assert d.ms() == {"n": 4, "max": 10.0, "median": 3.0, "p95": 10.0}
    assert Distribution.of([]).ms() == {"n": 0, "max": None, "median": None, "p95": None}


def test_roles_come_from_process_started_or_from_what_nodes_logged() -> None:
    """process_started names the roles; without it, rekey_sent / registration_started do."""
    assert roles(rs.all_events()) == (rs.GCKS, list(rs.GMS))
    bare = [e for e in rs.all_events() if e["event"] != "process_started"]
    assert roles(bare) == (rs.GCKS, list(rs.GMS))


def test_expected_members_follow_the_gcks_log_order() -> None:
    """An eviction logged before a rekey with the same t removes the member from it."""
    assert expected_members(rs.gcks_events()) == [
        frozenset(rs.GMS),
        frozenset(rs.GMS),  # the heartbeat
        frozenset({"r1.mrkm", "r2.mrkm"}),
        frozenset({"r1.mrkm", "r2.mrkm"}),
    ]


def test_cpu_at_interpolates_and_holds_outside_the_samples() -> None:
    """Linear between samples; the first / last value before / after them."""
    samples = [(10.0, 1.0), (12.0, 2.0), (13.0, 2.0)]
    assert cpu_at(samples, 9.0) == 1.0
    assert cpu_at(samples, 11.5) == 1.75
    assert cpu_at(samples, 12.5) == 2.0
    assert cpu_at(samples, 99.0) == 2.0
    with pytest.raises(ValueError):
        cpu_at([], 1.0)


# -- per rekey --------------------------------------------------------------------------------


def test_rekeys_skip_heartbeats_and_match_on_sa_and_message_id() -> None:
    """Three rekeys; rekey 3 (SA bb, Message ID 1) ignores r2's accept of the heartbeat
    (SA aa, Message ID 1)."""
    rows = _rows()
    assert [(r["rekey"], r["reason"], r["rekey_sa"], r["message_id"]) for r in rows] == [
        (1, "manual", "aaaaaaaa", 0),
        (2, "eviction", "aaaaaaaa", 2),
        (3, "after-eviction", "bbbbbbbb", 1),
    ]
    assert [r["key_ids"] for r in rows] == ["2", "", "3"]
    assert [r["t_send"] for r in rows] == [T + 10, T + 20, T + 21]


def test_accept_install_and_wire_latencies_per_rekey() -> None:
    """Hand-computed: accept max / median / p95, install (latest sink), wire and skew."""
    r1, r2, r3 = _rows()
    assert {k: r1[k] for k in r1 if k.endswith("_ms") or k.startswith("members_")} == {
        "members_expected": 3,
        "members_accepted": 3,
        "members_installed": 3,
        "members_on_wire": 3,
        "accept_max_ms": 10.0,
        "accept_median_ms": 4.0,
        "accept_p95_ms": 10.0,
        "install_max_ms": 1000.0,  # r3: the failed install at +20 ms does not count
        "install_median_ms": 50.0,  # r1's two sinks: frr at 30 ms, file at 40 ms -> 40
        "install_p95_ms": 1000.0,
        "wire_first_ms": 2000.0,
        "wire_last_ms": 3000.0,
        "skew_ms": 1000.0,
        "gcks_cpu_ms": 30.0,
    }
    assert (r2["members_expected"], r2["members_accepted"]) == (2, 2)
    assert (r2["accept_max_ms"], r2["accept_median_ms"]) == (8.0, 7.0)
    assert (r2["members_installed"], r2["install_max_ms"], r2["skew_ms"]) == (0, None, None)
    assert r2["gcks_cpu_ms"] == 10.0  # the window ends at the next rekey, 1 s later
    assert (r3["accept_max_ms"], r3["accept_median_ms"], r3["accept_p95_ms"]) == (5.0, 4.0, 5.0)
    assert (r3["install_max_ms"], r3["install_median_ms"]) == (30.0, 25.0)
    # r2's OSPFv3 packet with id 3 at +1 s is not the group's protocol (OSPFv2).
    assert (r3["wire_first_ms"], r3["wire_last_ms"], r3["skew_ms"]) == (2000.0, 2250.0, 250.0)
    assert r3["gcks_cpu_ms"] == 40.0


def test_bytes_and_messages_per_rekey_are_copies_times_octets() -> None:
    """bytes = copies × octets; messages = copies."""
    rows = _rows()
    assert [(r["octets"], r["copies"], r["bytes"]) for r in rows] == [
        (472, 4, 1888),
        (497, 4, 1988),
        (472, 4, 1888),
    ]
    summary = summarize(rs.all_events()).summary
    assert summary["bytes_per_rekey"] == 1921.3  # (1888 + 1988 + 1888) / 3
    assert summary["messages_per_rekey"] == 4.0
    assert summary["heartbeats"] == {"count": 1, "bytes": 137}


def test_member_rows_list_every_expected_member() -> None:
    """members.csv: one row per (rekey, expected or accepting member)."""
    results = rekey_results(rs.all_events(), rs.wire_records())
    rows = [m for r in results for m in r.member_rows()]
    fields = ("rekey", "node", "accept_ms", "install_ms", "wire_ms")
    assert [tuple(m[f] for f in fields) for m in rows] == [
        (1, "r1.mrkm", 4.0, 40.0, 2000.0),
        (1, "r2.mrkm", 10.0, 50.0, 2500.0),
        (1, "r3.mrkm", 2.0, 1000.0, 3000.0),
        (2, "r1.mrkm", 6.0, None, None),
        (2, "r2.mrkm", 8.0, None, None),
        (3, "r1.mrkm", 3.0, 20.0, 2000.0),
        (3, "r2.mrkm", 5.0, 30.0, 2250.0),
    ]  # fmt: skip


def test_a_member_that_never_accepts_makes_the_rekey_incomplete() -> None:
    """r3 loses rekey 1 and never installs its key: it is still expected, counted as
    missing, and the maximum is over the members that did accept."""
    events = [
        e
        for e in rs.all_events()
        if not (e["node"] == "r3.mrkm" and e["event"] in ("rekey_accepted", "router_install"))
    ]
    summary = summarize(events).summary
    first = summary["rekeys"][0]
    assert (first["members_expected"], first["members_accepted"]) == (3, 2)
    assert first["accept_max_ms"] == 10.0
    assert summary["incomplete_rekeys"] == [1]


def test_a_member_that_repaired_instead_of_accepting_completes_the_rekey() -> None:
    """r3 missed every copy of rekey 1 but installed its key (after registering again)."""
    events = [
        e
        for e in rs.all_events()
        if not (e["node"] == "r3.mrkm" and e["event"] == "rekey_accepted")
    ]
    summary = summarize(events).summary
    assert summary["rekeys"][0]["members_accepted"] == 2
    assert summary["incomplete_rekeys"] == []


# -- registration, adjacencies, CPU, host ------------------------------------------------------


def test_registration_convergence_runs_from_first_start_to_last_completion() -> None:
    """0.61 - 0.2 = 0.41 s; latencies 210, 260, 310 ms."""
    reg = registration(rs.all_events())
    assert reg["convergence_s"] == 0.41
    assert (reg["members"], reg["registered"]) == (3, 3)
    assert reg["latency_ms"] == {"n": 3, "max": 310.0, "median": 260.0, "p95": 310.0}


def test_registration_has_not_converged_while_a_gm_is_missing() -> None:
    """No registration_completed of r3: convergence None, 2 of 3 registered."""
    events = [
        e
        for e in rs.all_events()
        if not (e["node"] == "r3.mrkm" and e["event"] == "registration_completed")
    ]
    reg = registration(events)
    assert (reg["convergence_s"], reg["registered"], reg["t_done"]) == (None, 2, None)


def test_adjacency_flaps_count_leaving_full_and_ignore_unanswered_polls() -> None:
    """Init before Full is no flap; an unanswered poll is no news; a vanished neighbor
    counts; PIM's Up is OSPF's Full."""

    def rec(t: float, states: dict[str, Any]) -> dict[str, Any]:
        return {"t": t, "event": "neighbor_states", "router": "r1", "states": states}

    records = [
        rec(1, {"ospfv2": {"B": "Init"}, "pim": {"P": "Up"}}),
        rec(2, {"ospfv2": {"B": "Full", "C": "Full"}, "pim": {"P": "Up"}}),
        rec(3, {"ospfv2": None, "pim": None}),  # ospfd did not answer
        rec(4, {"ospfv2": {"C": "Full"}, "pim": {"P": "Up"}}),  # B vanished
        rec(5, {"ospfv2": {"B": "ExStart", "C": "Full"}, "pim": {}}),  # P vanished
        rec(6, {"ospfv2": {"B": "Full", "C": "Full"}, "pim": {}}),
        rec(7, {"ospfv2": {"B": "Full", "C": "2-Way"}, "pim": {}}),
        {"t": 8, "event": "sampler_stopped", "router": "r1", "polls": 80},
    ]
    assert adjacency_flaps(records) == [
        {"router": "r1", "proto": "ospfv2", "neighbor": "B", "t_down": 4, "t_up": 6,
         "state": "absent"},
        {"router": "r1", "proto": "pim", "neighbor": "P", "t_down": 5, "t_up": None,
         "state": "absent"},
        {"router": "r1", "proto": "ospfv2", "neighbor": "C", "t_down": 7, "t_up": None,
         "state": "2-Way"},
    ]  # fmt: skip


def test_gcks_cpu_per_registration_and_per_rekey() -> None:
    """82 ms over 3 registrations; (30 + 10 + 40) / 3 ms per rekey; 1.55 s in all."""
    events = rs.all_events()
    results = rekey_results(events, (), rs.cpu_records())
    assert gcks_cpu(events, rs.cpu_records(), results) == {
        "total_s": 1.55,
        "per_registration_ms": 27.333,
        "registrations": 3,
        "per_rekey_ms": 26.667,
        "rekeys": 3,
    }
    assert gcks_cpu(events, [], results)["per_rekey_ms"] is None


def test_host_saturation_needs_five_busy_seconds_or_without_samples_a_high_load() -> None:
    """A stretch of busy samples lasts from the sample before it; a dip breaks it."""

    def samples(busy: list[float | None]) -> list[dict[str, Any]]:
        return [
            {"t": float(i), "event": "host_load", "busy": b, "load1": 0.5}
            for i, b in enumerate(busy)
        ]

    five = host_saturation(samples([None, 0.95, 0.95, 0.95, 0.95, 0.95]), cpus=2)
    assert five["saturated"] and five["busy_over_limit_s"] == 5.0
    assert five["reasons"] == ["CPU busy > 90% for 5.0 s (limit 5 s)"]
    broken = host_saturation(samples([None, 0.95, 0.95, 0.95, 0.95, 0.5, 0.95, 0.95]), cpus=2)
    assert not broken["saturated"] and broken["busy_over_limit_s"] == 4.0
    assert broken["busy_max"] == 0.95 and broken["load1_max"] == 0.5
    loaded = host_saturation([], [1.9, 1.0, 1.0], [1.84, 1.0, 1.0], cpus=2)
    assert loaded["saturated"] and "0.95 before and 0.92 after" in loaded["reasons"][0]
    assert not host_saturation([], [0.4, 1.0, 1.0], [1.9, 1.0, 1.0], cpus=2)["saturated"]
    # With samples of the timeline, a load left over from bring-up or a previous run
    # (the average trails by a minute) does not make the run invalid; the samples decide.
    quiet = host_saturation(samples([None, 0.3, 0.4, 0.3]), [30.0, 9, 4], [12.0, 9, 4], cpus=2)
    assert not quiet["saturated"] and quiet["reasons"] == []


# -- the whole run -------------------------------------------------------------------------------


def test_summary_of_the_synthetic_run() -> None:
    """Every headline number of the summary dict."""
    s = summarize(
        rs.all_events(), rs.wire_records(), rs.neighbor_records(), rs.cpu_records()
    ).summary
    assert (s["gcks"], s["members"], s["rekey_count"]) == (rs.GCKS, list(rs.GMS), 3)
    assert s["registration_convergence_s"] == 0.41
    assert s["key_convergence_ms"] == {
        "accept": {"n": 3, "max": 10.0, "median": 8.0, "p95": 10.0},  # maxima 10, 8, 5
        "install": {"n": 2, "max": 1000.0, "median": 515.0, "p95": 1000.0},  # 1000, 30
    }
    assert s["member_latency_ms"]["accept"] == {"n": 7, "max": 10.0, "median": 5.0, "p95": 10.0}
    assert s["switch_over_skew_ms"] == {"n": 2, "max": 1000.0, "median": 625.0, "p95": 1000.0}
    assert s["adjacency_flaps"] == 1
    assert s["flaps"][0] == {
        "router": "r1",
        "proto": "ospfv2",
        "neighbor": "10.255.0.2",
        "t_down": T + 30,
        "t_up": T + 32,
        "state": "Init",
    }
    assert s["copies_dropped_as_duplicates"] == 1
    assert s["excluded"] == ["r3.mrkm"]
    assert s["incomplete_rekeys"] == []
    assert s["gcks_cpu"]["per_rekey_ms"] == 26.667


def test_compute_metrics_reads_the_run_folder(tmp_path: Path) -> None:
    """The same numbers from files; a cut last line is skipped and counted."""
    text = "".join(json.dumps(e) + "\n" for e in rs.all_events()) + '{"t": 1, "ev'
    (tmp_path / "events.jsonl").write_text(text)
    rs.write_collector_files(tmp_path)
    metrics = compute_metrics(tmp_path)
    assert metrics.rows == _rows()
    assert metrics.summary["skipped_lines"] == 1
    assert metrics.summary["adjacency_flaps"] == 1
    assert len(read_jsonl(tmp_path / "events.jsonl")) == len(rs.all_events())


def test_write_csv_leaves_none_empty(tmp_path: Path) -> None:
    """None becomes an empty cell; columns follow ``fields``."""
    write_csv(tmp_path / "m.csv", [{"a": 1, "b": None, "c": "x"}], ["a", "b"])
    assert list(csv.DictReader((tmp_path / "m.csv").open())) == [{"a": "1", "b": ""}]


def test_install_time_tells_apart_groups_whose_key_ids_overlap() -> None:
    """OSPFv2 key 2 installed at 10.5 must not count as OSPFv3 key 2 (installed at 11)."""
    from testbed.metrics import _install_time

    first = {"t": 10.5, "sink": "frr", "ok": True, "key_ids": [2, 1]}
    second = {"t": 11.0, "sink": "frr", "ok": True, "key_ids": [2, 1, 2]}
    installs = [
        {**first, "keys": ["ospfv2:2", "ospfv3:1"]},
        {**second, "keys": ["ospfv2:2", "ospfv3:1", "ospfv3:2"]},
    ]
    assert _install_time(installs, {2}, 10.0, {"ospfv3"}) == 11.0
    assert _install_time(installs, {2}, 10.0, {"ospfv2"}) == 10.5
    # an older log without protocol-qualified keys is matched on the ids alone
    bare = [{k: v for k, v in e.items() if k != "keys"} for e in installs]
    assert _install_time(bare, {2}, 10.0, {"ospfv3"}) == 10.5


# -- PIM under AH ---------------------------------------------------------------------------


def _pim_run() -> list[dict[str, Any]]:
    """A PIM rekey (SPI 70000) to two GMs, and the shims of r1 and r2 (logging by router).

    r1's shim switches to the new SPI 2.5 s after the send, r2's 2.75 s after; r2's
    shim was killed (no ``pim_ah_stopped``), so its drops come from its drop events.
    """
    t = 1000.0
    keys = [{"protocol": "pim-ah", "key_id": 70000, "group": "pim-sm"}]
    return [
        {"t": t - 5, "event": "process_started", "node": "gcks", "role": "gcks"},
        {"t": t - 4, "event": "member_registered", "node": "gcks", "group": "pim-sm",
         "member": "r1.mrkm"},
        {"t": t - 4, "event": "member_registered", "node": "gcks", "group": "pim-sm",
         "member": "r2.mrkm"},
        {"t": t - 3, "event": "pim_ah_started", "node": "r1"},
        {"t": t - 3, "event": "pim_ah_started", "node": "r2"},
        {"t": t - 2.9, "event": "pim_ah_drop", "node": "r2", "direction": "out",
         "reason": "no-send-sa", "suppressed": 4},
        {"t": t, "event": "rekey_sent", "node": "gcks", "group": "pim-sm", "sa": "aa",
         "message_id": 1, "key_ids": [70000], "reason": "manual", "octets": 300, "copies": 3},
        *[{"t": t + 0.1, "event": "rekey_accepted", "node": n, "sa": "aa", "message_id": 1}
          for n in ("r1.mrkm", "r2.mrkm")],
        *[{"t": t + 0.2, "event": "keys_installed", "node": n, "group": "pim-sm", "rows": keys}
          for n in ("r1.mrkm", "r2.mrkm")],
        *[{"t": t + 0.3, "event": "router_install", "node": n, "sink": "pim_ah", "ok": True,
           "key_ids": [70000], "keys": ["pim-ah:70000"]} for n in ("r1.mrkm", "r2.mrkm")],
        {"t": t + 2.5, "event": "pim_ah_send_switch", "node": "r1", "spi": 70000,
         "previous": 512},
        {"t": t + 2.75, "event": "pim_ah_send_switch", "node": "r2", "spi": 70000,
         "previous": 512},
        {"t": t + 3, "event": "pim_ah_drop", "node": "r2", "direction": "in",
         "reason": "unprotected", "suppressed": 0},
        {"t": t + 9, "event": "pim_ah_stopped", "node": "r1",
         "counters": {"out_protected": 40, "in_accepted": 38, "in_dropped.bad-icv": 2,
                      "out_dropped.no-send-sa": 3}},
    ]  # fmt: skip


def test_pim_ah_send_switches_are_the_wire_of_a_pim_rekey() -> None:
    """t_wire of a PIM rekey is each shim's first packet with the new SPI, mapped to its GM."""
    from testbed.metrics import pim_ah_wire

    events = _pim_run()
    wire = pim_ah_wire(events, {"r1": "r1.mrkm", "r2": "r2.mrkm"})
    assert [(w["node"], w["proto"], w["key_id"]) for w in wire] == [
        ("r1.mrkm", "pim-ah", 70000),
        ("r2.mrkm", "pim-ah", 70000),
    ]
    [row] = summarize(events, routers={"r1": "r1.mrkm", "r2": "r2.mrkm"}).rows
    assert (row["members_accepted"], row["members_installed"], row["members_on_wire"]) == (2, 2, 2)
    assert (row["install_max_ms"], row["wire_first_ms"], row["wire_last_ms"]) == (
        300.0,
        2500.0,
        2750.0,
    )
    assert row["skew_ms"] == 250.0
    # Without the router -> GM map the shims' records match no member.
    [alone] = summarize(events).rows
    assert alone["members_on_wire"] == 0


def test_pim_ah_drops_per_reason_from_final_counters_or_drop_events() -> None:
    from testbed.metrics import pim_ah_counters

    counted = pim_ah_counters(_pim_run())
    assert counted == {
        "drops": {"in:bad-icv": 2, "in:unprotected": 1, "out:no-send-sa": 8},
        "drops_by_router": {
            "r1": {"in:bad-icv": 2, "out:no-send-sa": 3},
            "r2": {"in:unprotected": 1, "out:no-send-sa": 5},  # 1 + 4 suppressed
        },
        "protected": 40,
        "accepted": 38,
    }
    assert pim_ah_counters(rs.all_events()) is None  # no shim in that run
    assert summarize(_pim_run()).summary["pim_ah"] == counted


def test_compute_metrics_maps_shims_to_gms_through_routers_json(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in _pim_run()))
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "routers.json").write_text(
        json.dumps([{"name": "r1", "node": "r1.mrkm"}, {"name": "r2", "node": "r2.mrkm"}])
    )
    [row] = compute_metrics(tmp_path).rows
    assert row["members_on_wire"] == 2 and row["skew_ms"] == 250.0
