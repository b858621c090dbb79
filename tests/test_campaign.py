"""testbed.campaign: campaign files, parameter substitution, statistics, resumption.

The unit tests inject a fake runner (the layer below a campaign) that writes
real run bundles with :class:`testbed.bundle.RunBundle` from synthetic
process logs whose latencies follow the run's loss; the root test runs a
real two-run campaign on a Mininet network of FRR routers.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import campaign as cp
from testbed.bundle import RunBundle, fault
from testbed.scenario import Scenario, ScenarioError, substitute
from topologies.model import Topology

SCENARIO = {
    "name": "synthetic",
    "params": {"loss": 0, "routers": 3, "atd": 2},
    "question": "Does a rekey survive ${loss} % loss?",
    "topology": "line${routers}",
    "groups": [{"name": "g", "protocol": "ospfv2", "atd": "${atd}"}],
    "timeline": [
        {"at": 1, "do": "loss", "link": ["r1", "r2"], "percent": "${loss}"},
        {"at": 2, "do": "rekey", "group": "g"},
    ],
    "duration": 5,
    "assertions": [{"metric": "adjacency_flaps", "max": 0}],
}


def _e(t: float, event: str, node: str, **fields: Any) -> dict[str, Any]:
    return {"t": round(t, 6), "event": event, "node": node, **fields}


def synthetic_logs(work: Path, routers: int, loss: float, t0: float) -> list[Path]:
    """GCKS and GM logs of a run: every GM registers, then one rekey whose accept and
    install latencies grow with ``loss`` (GM i accepts after (10 + i + 10·loss) ms and
    its router installs 30 ms later)."""
    gms = [f"r{i}.mrkm" for i in range(1, routers + 1)]
    gcks = [_e(t0, "process_started", "gcks.mrkm", role="gcks")]
    gcks += [
        _e(t0 + 0.1 + 0.05 * i, "member_registered", "gcks.mrkm", group="g", member=gm)
        for i, gm in enumerate(gms)
    ]
    send = t0 + 5
    gcks.append(
        _e(send, "rekey_sent", "gcks.mrkm", group="g", message_id=0, key_ids=[2], octets=400,
           copies=3, reason="manual", sa="aa" * 16)
    )  # fmt: skip
    logs = [work / "gcks.jsonl"]
    logs[0].write_text("".join(json.dumps(e) + "\n" for e in gcks))
    for i, gm in enumerate(gms):
        accept = send + (10 + i + 10 * loss) / 1000
        events = [
            _e(t0 + 0.01, "process_started", gm, role="gm"),
            _e(t0 + 0.05, "registration_started", gm, group="g"),
            _e(t0 + 0.1 + 0.05 * i, "registration_completed", gm, group="g", key_ids=[1],
               seconds=0.05 + 0.05 * i),
            _e(accept, "rekey_accepted", gm, group="g", message_id=0, key_ids=[2], sa="aa" * 16),
            _e(accept + 0.03, "router_install", gm, sink="frr", ok=True, key_ids=[1, 2]),
        ]  # fmt: skip
        path = work / f"{gm}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        logs.append(path)
    return logs


class FakeRunner:
    """Stands in for testbed.run.run_scenario: writes a real bundle, records its calls."""

    def __init__(
        self, fail_on: set[float] | None = None, saturate_on: set[float] | None = None
    ) -> None:
        self.calls: list[tuple[str, int, str, str]] = []
        self.fail_on = fail_on or set()
        self.saturate_on = saturate_on or set()

    def __call__(
        self, scenario: Scenario, topology: Topology, out: Path, prefix: str, plots: bool
    ) -> tuple[int, dict[str, Any], Path]:
        loss = next(float(a.args["percent"]) for a in scenario.timeline if a.do == "loss")
        self.calls.append((scenario.name, scenario.seed, topology.name, prefix))
        params = {"topology": topology.name, "routers": len(topology.routers)}
        bundle = RunBundle.create(out, scenario.name, scenario.seed, params)
        bundle.load_before = [0.0, 0.0, 0.0]  # the shared host's load must not decide validity
        work = out / "work"
        work.mkdir(exist_ok=True)
        t0 = time.time() - 10
        if loss in self.saturate_on:  # host samples: all CPUs busy for 6 s
            samples = [{"t": t0 + i / 2, "event": "host_load", "busy": 1.0} for i in range(13)]
            (bundle.folder / "samples").mkdir(exist_ok=True)
            (bundle.folder / "samples" / "host.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in samples)
            )
        logs = synthetic_logs(work, len(topology.routers), loss, t0)
        faults = [fault("loss", t0 + 4, t0 + 8, ["r1", "r2"], percent=loss)] if loss else []
        failure = "TimeoutError: a GM never accepted" if loss in self.fail_on else None
        summary = bundle.finish(logs, failure=failure, testbed_events=faults)
        return (1 if failure else 0), summary, bundle.folder


def write_campaign(tmp_path: Path, **fields: Any) -> Path:
    """A scenario file and a campaign file in ``tmp_path``; return the campaign's path."""
    (tmp_path / "synthetic.yaml").write_text(yaml.safe_dump(SCENARIO))
    data = {
        "name": "camp",
        "scenario": str(tmp_path / "synthetic.yaml"),
        "grid": {"loss": [0, 10], "routers": [3]},
        "seeds": [1, 2],
        "repetitions": 2,
        **fields,
    }
    path = tmp_path / "camp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_fake(tmp_path: Path, **fields: Any) -> tuple[cp.Campaign, list[dict[str, Any]]]:
    """A finished synthetic campaign under ``tmp_path / "results"``."""
    campaign = cp.load_campaign(str(write_campaign(tmp_path, **fields)))
    rows = cp.run_campaign(
        campaign, tmp_path / "results", FakeRunner(), prefix="t", plots=False, say=lambda _: None
    )
    return campaign, rows


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# -- parameters -----------------------------------------------------------------------------------


def test_substitute_keeps_types_inside_text_and_drops_params() -> None:
    data = substitute(SCENARIO, {"loss": 12.5, "routers": 5}, "s.yaml")
    assert "params" not in data
    assert data["topology"] == "line5"
    assert data["timeline"][0]["percent"] == 12.5  # a whole placeholder keeps the number
    assert data["groups"][0]["atd"] == 2  # the default
    assert data["question"] == "Does a rekey survive 12.5 % loss?"
    assert SCENARIO["timeline"][0]["percent"] == "${loss}"  # the raw dict is untouched


def test_substitute_names_the_field_of_an_unknown_placeholder_or_parameter() -> None:
    raw = {**SCENARIO, "duration": "${durration}"}
    with pytest.raises(ScenarioError, match=r"s.yaml: duration: \$\{durration\} is not a decl"):
        substitute(raw, {}, "s.yaml")
    with pytest.raises(ScenarioError, match=r"grid.los: not a parameter .*loss, routers"):
        substitute(SCENARIO, {"los": 1}, "s.yaml")
    # A top-level field may be replaced without being declared.
    assert substitute(SCENARIO, {"duration": 9}, "s.yaml")["duration"] == 9


def test_point_ids_are_folder_names() -> None:
    assert cp.point_id({"loss": 10, "topology": "ring5"}) == "loss-10_topology-ring5"
    assert cp.point_id({"loss": 2.5, "t": "topozoo/Abilene"}) == "loss-2.5_t-topozoo-Abilene"
    assert cp.point_id({}) == "default"


# -- the campaign file ----------------------------------------------------------------------------


def test_campaign_file_gives_the_grid_in_repetition_major_order(tmp_path: Path) -> None:
    campaign = cp.load_campaign(str(write_campaign(tmp_path)))
    runs = campaign.runs()
    assert len(runs) == 2 * 2 * 2
    assert [(r.repetition, r.seed, r.point["loss"]) for r in runs[:4]] == [
        (1, 1, 0), (1, 1, 10), (1, 2, 0), (1, 2, 10)
    ]  # fmt: skip
    scenario = campaign.scenario_for(runs[3])
    assert scenario.seed == 2 and scenario.topology == "line3"
    assert scenario.timeline[0].args["percent"] == 10
    assert campaign.question == "Does a rekey survive 0 % loss?"  # the scenario's, first point
    assert cp.load_campaign(str(write_campaign(tmp_path, seeds=3))).seeds == (1, 2, 3)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "a b"}, r"camp.yaml: name: letters"),
        ({"grid": {"loss": []}}, r"grid.loss: expected a non-empty list"),
        ({"grid": {"loss": [1, 1]}}, r"grid.loss: repeats a value"),
        ({"grid": {"speed": [1]}}, r"grid.speed: not a parameter"),
        ({"grid": {"loss": [150]}}, r"timeline\[0\].percent: expected 0 to 100"),
        ({"grid": {"routers": [0]}}, r"topology 'line0'"),
        ({"seeds": [1, 1]}, r"seeds: expected a count or a list of distinct integers"),
        ({"seeds": 0}, r"seeds: a count must be at least 1"),
        ({"repetitions": 0}, r"repetitions: expected an integer >= 1"),
        ({"targets": [{"metric": "speed", "max": 1}]}, r"targets\[0\].metric: 'speed' is not"),
        ({"targets": [{"metric": "adjacency_flaps", "stat": "p50", "max": 0}]}, r"\.stat: 'p50'"),
        ({"scenario": "no-such-scenario"}, r"scenario: unknown 'no-such-scenario'"),
        ({"colour": "red"}, r"unknown field\(s\) colour"),
    ],
)
def test_bad_campaign_files_name_the_field(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(cp.CampaignError, match=message):
        cp.load_campaign(str(write_campaign(tmp_path, **fields)))


def test_cli_reports_a_bad_campaign_and_lists_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cp.main(["--campaign", "no-such-campaign"])
    assert exc.value.code == 2
    assert "unknown campaign 'no-such-campaign'" in capsys.readouterr().err
    path = write_campaign(tmp_path)
    assert cp.main(["--campaign", str(path), "--results", str(tmp_path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and all(line.endswith("to run") for line in lines)


# -- statistics -----------------------------------------------------------------------------------


def test_student_t_interval_by_hand() -> None:
    stats = cp.describe([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, s = 1.290994, t(0.975, 3) = 3.182 -> half width 2.054
    assert stats["mean"] == 2.5 and stats["median"] == 2.5
    assert stats["ci95_low"] == pytest.approx(2.5 - 3.182 * 1.290994 / 2, abs=1e-5)
    assert stats["ci95_high"] == pytest.approx(2.5 + 3.182 * 1.290994 / 2, abs=1e-5)
    assert stats["p95"] == 4.0 and stats["p99"] == 4.0 and stats["n"] == 4
    one = cp.describe([7.0])
    assert one["mean"] == 7.0 and one["ci95_low"] is None
    assert cp.describe([])["median"] is None
    assert cp.student_t95(1) == 12.706 and cp.student_t95(1000) == 1.96
    with pytest.raises(ValueError, match="degrees of freedom"):
        cp.student_t95(0)
    values = [float(v) for v in range(1, 101)]
    assert cp.describe(values)["p99"] == 99.0 and cp.describe(values)["p95"] == 95.0


def test_stats_use_ok_runs_and_count_the_others() -> None:
    rows = [
        {"point": "p", "loss": 0, "status": "ok", "key_convergence_max_s": 1.0},
        {"point": "p", "loss": 0, "status": "ok", "key_convergence_max_s": 3.0},
        {"point": "p", "loss": 0, "status": "invalid", "key_convergence_max_s": 100.0},
        {"point": "p", "loss": 0, "status": "failed", "key_convergence_max_s": ""},
    ]
    by_metric = {s["metric"]: s for s in cp.stats_rows(rows, ["loss"])}
    conv = by_metric["key_convergence_max_s"]
    assert (conv["n"], conv["mean"], conv["runs"]) == (2, 2.0, 4)
    assert (conv["runs_invalid"], conv["runs_failed"], conv["invalid_used"]) == (1, 1, False)
    with_invalid = {s["metric"]: s for s in cp.stats_rows(rows, ["loss"], include_invalid=True)}
    assert with_invalid["key_convergence_max_s"]["n"] == 3
    assert with_invalid["key_convergence_max_s"]["max"] == 100.0
    assert by_metric["adjacency_flaps"]["n"] == 0


def test_run_metrics_from_a_summary() -> None:
    summary = {
        "key_convergence_ms": {"install": {"max": 1500.0, "median": 40.0}, "accept": {"max": 9.0}},
        "rekey_count": 4,
        "incomplete_rekeys": [2],
        "adjacency_flaps": 1,
        "switch_over_skew_ms": {"max": 12.5},
        "gcks_cpu": {"per_rekey_ms": 0.2},
    }
    m = cp.run_metrics(summary)
    assert m["key_convergence_max_s"] == 1.5 and m["key_convergence_median_s"] == 0.04
    assert m["accept_convergence_max_s"] == 0.009
    assert m["rekeys_converged_fraction"] == 0.75 and m["adjacency_flaps"] == 1
    assert m["switch_over_skew_max_ms"] == 12.5 and m["gcks_cpu_per_rekey_ms"] == 0.2
    assert cp.run_metrics({})["rekeys_converged_fraction"] is None


# -- running and resuming -------------------------------------------------------------------------


def test_campaign_runs_every_point_and_writes_the_csvs(tmp_path: Path) -> None:
    campaign, rows = run_fake(tmp_path)
    root = tmp_path / "results" / "camp"
    table = read_csv(root / "campaign.csv")
    assert len(rows) == len(table) == 8
    assert {(r["loss"], r["seed"], r["repetition"]) for r in table} == {
        (loss, seed, rep) for loss in ("0", "10") for seed in ("1", "2") for rep in ("1", "2")
    }
    for row in table:
        bundle = root / row["bundle"]
        assert (bundle / "summary.json").is_file(), bundle
        assert bundle.is_relative_to(root / "runs" / row["point"])
        assert row["members"] == "3" and row["routers"] == "3"
        # GM 3 accepts after (12 + 10·loss) ms and its router installs 30 ms later.
        expected = (12 + 10 * float(row["loss"]) + 30) / 1000
        assert float(row["key_convergence_max_s"]) == pytest.approx(expected, abs=1e-5)
        assert row["rekeys_converged_fraction"] == "1.0"
    stats = read_csv(root / "stats.csv")
    assert len(stats) == 2 * len(cp.METRICS)
    conv = {s["loss"]: s for s in stats if s["metric"] == "key_convergence_max_s"}
    assert float(conv["10"]["median"]) == pytest.approx(0.142, abs=1e-5)
    # Synthetic runs have no host samples, so they are valid, and used: 4 runs each.
    assert conv["0"]["n"] == conv["10"]["n"] == "4"
    info = json.loads((root / "campaign.json").read_text())
    assert info["runs_planned"] == info["runs_finished"] == 8
    assert info["grid"] == {"loss": [0, 10], "routers": [3]}
    assert campaign.name == "camp"


def test_a_second_invocation_runs_nothing_and_a_lost_run_is_redone(tmp_path: Path) -> None:
    campaign, first = run_fake(tmp_path)
    runner = FakeRunner()
    again = cp.run_campaign(campaign, tmp_path / "results", runner, say=lambda _: None)
    assert runner.calls == []
    assert again == first
    # A run interrupted before its summary.json was written is run again, alone.
    victim = tmp_path / "results" / "camp" / first[5]["bundle"]
    (victim / "summary.json").unlink()
    cp.run_campaign(campaign, tmp_path / "results", runner, prefix="x", say=lambda _: None)
    assert len(runner.calls) == 1
    assert runner.calls[0][3] == "xr5"  # each run has its own namespace prefix
    assert len(read_csv(tmp_path / "results" / "camp" / "campaign.csv")) == 8


def test_failed_runs_are_kept_counted_and_retried_on_request(tmp_path: Path) -> None:
    campaign = cp.load_campaign(str(write_campaign(tmp_path)))
    results = tmp_path / "results"
    rows = cp.run_campaign(campaign, results, FakeRunner({10.0}), say=lambda _: None)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 4 and all("TimeoutError" in r["failure"] for r in failed)
    stats = {
        s["loss"]: s
        for s in read_csv(results / "camp" / "stats.csv")
        if s["metric"] == "key_convergence_max_s"
    }
    assert stats["10"]["runs_failed"] == "4" and stats["10"]["n"] == "0"
    assert stats["0"]["n"] == "4"
    assert stats["10"]["invalid_used"] == "False"
    runner = FakeRunner()
    cp.run_campaign(campaign, results, runner, retry_failed=True, say=lambda _: None)
    assert len(runner.calls) == 4
    assert all(r["status"] == "ok" for r in read_csv(results / "camp" / "campaign.csv"))


def test_invalid_runs_are_used_only_when_the_campaign_says_so(tmp_path: Path) -> None:
    for include in (False, True):
        campaign = cp.load_campaign(str(write_campaign(tmp_path, include_invalid=include)))
        results = tmp_path / f"results-{include}"
        rows = cp.run_campaign(
            campaign, results, FakeRunner(saturate_on={10.0}), say=lambda _: None
        )
        assert {r["status"] for r in rows if r["loss"] == 10} == {"invalid"}
        assert {r["status"] for r in rows if r["loss"] == 0} == {"ok"}
        stats = read_csv(results / "camp" / "stats.csv")
        conv = {s["loss"]: s for s in stats if s["metric"] == "key_convergence_max_s"}
        assert conv["10"]["runs_invalid"] == "4"
        assert conv["10"]["n"] == ("4" if include else "0") and conv["0"]["n"] == "4"


def test_ctrl_c_keeps_what_finished(tmp_path: Path) -> None:
    campaign = cp.load_campaign(str(write_campaign(tmp_path)))
    inner = FakeRunner()

    def interrupted(*args: Any) -> tuple[int, dict[str, Any], Path]:
        if len(inner.calls) == 3:
            raise KeyboardInterrupt
        return inner(*args)

    with pytest.raises(KeyboardInterrupt):
        cp.run_campaign(campaign, tmp_path / "results", interrupted, say=lambda _: None)
    assert len(read_csv(tmp_path / "results" / "camp" / "campaign.csv")) == 3
    rows = cp.run_campaign(campaign, tmp_path / "results", inner, say=lambda _: None)
    assert len(inner.calls) == 8 and len(rows) == 8


class FakeHost:
    """CPU busy shares that follow a list, and a clock that sleep advances."""

    def __init__(self, shares: list[float]) -> None:
        self.shares, self.now = shares, 0.0
        self.sleeps: list[float] = []

    def busy(self) -> float:
        return self.shares.pop(0) if len(self.shares) > 1 else self.shares[0]

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_settle_waits_for_the_cpus_to_quiet_down_then_runs() -> None:
    said: list[str] = []
    quiet = FakeHost([0.1])
    assert cp.settle_host(60, said.append, quiet.busy, quiet.sleep, lambda: quiet.now) == 0.1
    assert quiet.sleeps == [] and said == []  # a quiet host: no wait, no words
    busy = FakeHost([1.0, 0.6, 0.2])
    assert cp.settle_host(60, said.append, busy.busy, busy.sleep, lambda: busy.now) == 0.2
    assert busy.sleeps == [3.0, 3.0]
    assert said[0] == "    waiting up to 60 s for the host to settle: CPUs 100% busy (limit 25%)"
    assert said[1] == "    host settled after 6 s (20% busy)"


def test_settle_gives_up_at_its_deadline() -> None:
    said: list[str] = []
    loaded = FakeHost([0.9])
    assert cp.settle_host(10, said.append, loaded.busy, loaded.sleep, lambda: loaded.now) == 0.9
    assert sum(loaded.sleeps) == pytest.approx(10) and loaded.sleeps[-1] == pytest.approx(1)
    assert said[-1] == "    host still 90% busy: running anyway"


def test_host_busy_measures_this_machine() -> None:
    share = cp.host_busy(0.2)
    assert 0.0 <= share <= 1.0


def test_campaign_settles_before_each_run_and_retries_invalid_runs(tmp_path: Path) -> None:
    campaign = cp.load_campaign(str(write_campaign(tmp_path, repetitions=1)))
    results = tmp_path / "results"
    host = FakeHost([0.8, 0.1])
    rows = cp.run_campaign(
        campaign,
        results,
        FakeRunner(saturate_on={10.0}),
        say=lambda _: None,
        settle=30,
        busy=host.busy,
        sleep=host.sleep,
    )
    assert host.sleeps == [3.0]  # the first run waited once; the rest found the host quiet
    assert sorted(r["status"] for r in rows) == ["invalid", "invalid", "ok", "ok"]
    runner = FakeRunner()
    cp.run_campaign(campaign, results, runner, say=lambda _: None, retry_failed=True)
    assert runner.calls == []  # invalid is not failed
    again = cp.run_campaign(campaign, results, runner, say=lambda _: None, retry_invalid=True)
    assert len(runner.calls) == 2
    assert [r["status"] for r in again] == ["ok"] * 4


def test_cli_runs_with_an_injected_runner_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_campaign(tmp_path, repetitions=1)
    args = ["--campaign", str(path), "--results", str(tmp_path / "r"), "--no-plots"]
    assert cp.main([*args, "--settle", "0"], runner=FakeRunner()) == 0
    out = capsys.readouterr().out
    assert "4 runs (2 points × 2 seeds × 1 repetitions)" in out
    assert "loss-10_routers-3" in out and "campaign.csv" in out


def test_example_campaigns_load() -> None:
    for name in ("example-loss", "rekey-loss"):
        campaign = cp.load_campaign(name)
        assert campaign.points and not math.isnan(len(campaign.runs()))
    assert len(cp.load_campaign("rekey-loss").runs()) == 5 * 3


# -- a real campaign ------------------------------------------------------------------------------


@pytest.mark.root
@pytest.mark.slow
def test_real_two_run_campaign_writes_csvs_and_resumes(tmp_path: Path) -> None:
    """Two real runs (loss 0 and 20 % on a 3-router line), then a resume that runs nothing."""
    path = tmp_path / "tiny.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "scenario": "campaign-example",
                "grid": {"loss": [0, 20], "topology": ["line3"]},
                "seeds": [1],
                "include_invalid": True,
            }
        )
    )
    campaign = cp.load_campaign(str(path))
    prefix = f"mct{os.getpid() % 10000}"
    rows = cp.run_campaign(campaign, tmp_path / "results", prefix=prefix, plots=False)
    root = tmp_path / "results" / "tiny"
    table = read_csv(root / "campaign.csv")
    assert [r["loss"] for r in table] == ["0", "20"]
    for row in table:
        assert row["failure"] == "", row["failure"]
        assert row["members"] == "3" and row["topology"] == "line3"
        assert float(row["key_convergence_max_s"]) > 0
        assert row["rekeys"] == "2"
    events = [
        json.loads(line)
        for line in (root / table[1]["bundle"] / "events.jsonl").read_text().splitlines()
    ]
    losses = [e for e in events if e["event"] == "fault" and e["kind"] == "loss"]
    assert {e["percent"] for e in losses} == {20.0}  # the parameter reached the network
    stats = read_csv(root / "stats.csv")
    assert {s["point"] for s in stats} == {"loss-0_topology-line3", "loss-20_topology-line3"}
    # A second invocation finds both runs finished and runs nothing.
    calls: list[Any] = []
    again = cp.run_campaign(
        campaign, tmp_path / "results", lambda *a: calls.append(a) or (0, {}, Path()), prefix=prefix
    )
    assert calls == [] and [r["bundle"] for r in again] == [r["bundle"] for r in rows]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in listed
