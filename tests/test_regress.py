"""The regression gate's baseline file and its verdicts (the runs themselves are CI's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.regress import BASELINE, GateRun, check, load_baseline, lookup
from testbed.scenario import ScenarioError, load_scenario


def test_the_shipped_baseline_names_real_scenarios() -> None:
    runs = load_baseline()
    assert runs and all(run.bounds for run in runs)
    for run in runs:
        load_scenario(run.scenario)
    assert BASELINE.parent.name == "regress"


def test_a_missed_bound_names_run_metric_value_and_miss() -> None:
    (run,) = load_baseline_text(
        "runs:\n  - scenario: smoke\n    bounds:\n"
        "      key_convergence_ms.install.p95: {max: 4000, measured: 1800}\n"
        "      adjacency_flaps: {max: 0}\n"
    )
    summary = {"key_convergence_ms": {"install": {"p95": 5000.0}}, "adjacency_flaps": 0}
    (miss,) = check(run, summary)
    assert miss == (
        "smoke: key_convergence_ms.install.p95 = 5000.0 exceeds 4000 by 1e+03 "
        "(baseline measured 1800)"
    )
    assert check(run, {**summary, "key_convergence_ms": {"install": {"p95": 10.0}}}) == []
    assert "no numeric value" in check(run, {"adjacency_flaps": 0})[0]


def test_lookup_follows_dotted_paths() -> None:
    assert lookup({"a": {"b": 3}}, "a.b") == 3
    assert lookup({"a": 1}, "a.b") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runs: []\n", "at least one entry"),
        ("runs:\n  - {scenario: smoke}\n", r"runs\[0\].bounds: at least one bound"),
        ("runs:\n  - {scenario: smoke, bounds: {x: 3}}\n", r"runs\[0\].bounds.x"),
        ("runs:\n  - {scenario: smoke, bounds: {x: {top: 3}}}\n", r"runs\[0\].bounds.x"),
        ("runs: [: bad\n", "cannot read"),
    ],
)
def test_bad_baselines_are_named(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_baseline_text(text)


def load_baseline_text(text: str) -> list[GateRun]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.yaml"
        path.write_text(text)
        return load_baseline(path)
