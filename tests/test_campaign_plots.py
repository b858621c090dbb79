"""testbed.campaign_plots over a synthetic campaign whose bundles the real bundle writer made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.image import imread

from testbed import campaign as cp
from testbed import campaign_plots as plots
from tests.test_campaign import FakeRunner, write_campaign


def _campaign(tmp_path: Path, runner: FakeRunner | None = None, **fields: object) -> Path:
    """A finished synthetic campaign (loss 0/10 × 3/5 routers × 2 seeds); its folder."""
    fields = {"grid": {"loss": [0, 10], "routers": [3, 5]}, "repetitions": 1, **fields}
    campaign = cp.load_campaign(str(write_campaign(tmp_path, **fields)))
    cp.run_campaign(
        campaign, tmp_path / "results", runner or FakeRunner(), plots=False, say=lambda _: None
    )
    return tmp_path / "results" / "camp"


def test_every_campaign_figure_as_png_and_pdf(tmp_path: Path) -> None:
    folder = _campaign(tmp_path)
    written = plots.plot_campaign(folder)
    stems = {p.stem for p in written}
    assert stems == {
        "key-convergence-cdf",
        "convergence-vs-loss",
        "convergence-vs-group-size",
        "registration-storm",
        "timeline-loss-0_routers-3",
        "timeline-loss-0_routers-5",
        "timeline-loss-10_routers-3",
        "timeline-loss-10_routers-5",
    }
    for path in written:
        assert path.parent == folder / "plots"
        assert path.stat().st_size > 5_000, path
    assert {p.suffix for p in written} == {".png", ".pdf"}
    height, width, _ = imread(folder / "plots" / "convergence-vs-loss.png").shape
    assert width > 600 and height > 300  # a readable figure, not an empty canvas
    # The timeline is the one of the slowest run of the point, drawn in its bundle.
    row = max(
        (r for r in plots.CampaignData.read(folder).rows if r["point"] == "loss-10_routers-5"),
        key=lambda r: float(r["key_convergence_max_s"]),
    )
    assert (folder / row["bundle"] / "plots" / "timeline.png").is_file()


def test_versus_plots_need_two_values_on_their_axis(tmp_path: Path) -> None:
    folder = _campaign(tmp_path, grid={"loss": [5], "routers": [3, 4]})
    data = plots.CampaignData.read(folder)
    assert plots.plot_versus(data, "loss") == []
    assert [p.name for p in plots.plot_versus(data, "members")] == [
        "convergence-vs-group-size.png",
        "convergence-vs-group-size.pdf",
    ]


def test_failed_and_invalid_runs_are_left_out_unless_the_campaign_uses_them(
    tmp_path: Path,
) -> None:
    folder = _campaign(tmp_path, FakeRunner(fail_on={10.0}, saturate_on={0.0}))
    data = plots.CampaignData.read(folder)
    assert data.used() == []  # loss 10 failed, loss 0 ran on a saturated host
    assert plots.plot_cdf(data) == [] and plots.plot_registration_storm(data) == []
    data.info["include_invalid"] = True
    assert {r["loss"] for r in data.used()} == {"0"}
    assert plots.plot_cdf(data)  # the invalid runs are drawn now, and the caption says so


def test_registered_over_time_counts_a_gm_once_all_its_groups_registered() -> None:
    events = [
        {"t": 10.0, "event": "registration_started", "node": "a", "group": "v2"},
        {"t": 10.0, "event": "registration_started", "node": "a", "group": "v3"},
        {"t": 10.5, "event": "registration_started", "node": "b", "group": "v2"},
        {"t": 10.2, "event": "registration_completed", "node": "a", "group": "v2"},
        {"t": 10.7, "event": "registration_completed", "node": "b", "group": "v2"},
        {"t": 10.9, "event": "registration_completed", "node": "a", "group": "v3"},
        {"t": 12.0, "event": "registration_completed", "node": "a", "group": "v3"},  # again
        {"t": 10.1, "event": "registration_started", "node": "c", "group": "v2"},  # never done
    ]
    assert plots.registered_over_time(events) == pytest.approx([0.7, 0.9])
    assert plots.registered_over_time([]) == []


def test_registration_times_of_the_synthetic_runs(tmp_path: Path) -> None:
    folder = _campaign(tmp_path)
    data = plots.CampaignData.read(folder)
    run = next(r for r in data.rows if r["routers"] == "5")
    events = [json.loads(x) for x in (folder / run["bundle"] / "events.jsonl").open()]
    # GM i (from 0) registers 0.05 + 0.05·i s after the first registration_started.
    assert plots.registered_over_time(events) == pytest.approx(
        [0.05, 0.1, 0.15, 0.2, 0.25], abs=1e-5
    )


def test_cli_plots_every_campaign_and_names_a_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plots.main(["--results", str(tmp_path)]) == 0
    assert "no campaigns under" in capsys.readouterr().out
    folder = _campaign(tmp_path, grid={"loss": [0, 10], "routers": [3]}, seeds=[1])
    assert plots.main(["--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    # CDF, versus loss, two timelines and the storm (one group size: no versus group size)
    assert f"{folder}: 10 files" in out and "registration-storm.png" in out
    with pytest.raises(SystemExit):
        plots.main(["--results", str(tmp_path / "results"), "--campaign", "nope"])
    assert "nope: no campaign.json" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a campaign folder"):
        plots.CampaignData.read(tmp_path)
