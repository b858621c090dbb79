"""testbed.report over a synthetic campaign: Markdown and self-contained HTML agree."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from testbed import campaign as cp
from testbed import campaign_plots, report
from tests.test_campaign import FakeRunner, write_campaign

TARGETS = [
    {"metric": "key_convergence_max_s", "stat": "p95", "max": 0.1},
    {"metric": "adjacency_flaps", "stat": "max", "max": 0},
]


def _campaign(tmp_path: Path, runner: FakeRunner | None = None, plots: bool = True) -> Path:
    """loss 0/10 × 3 routers × 2 seeds; targets: p95 key convergence ≤ 0.1 s, no flap."""
    path = write_campaign(tmp_path, grid={"loss": [0, 10], "routers": [3]}, repetitions=1)
    path.write_text(path.read_text() + "targets:\n" + "".join(f"- {t}\n" for t in TARGETS))
    campaign = cp.load_campaign(str(path))
    cp.run_campaign(campaign, tmp_path / "results", runner or FakeRunner(), say=lambda _: None)
    folder = tmp_path / "results" / "camp"
    if plots:
        campaign_plots.plot_campaign(folder)
    return folder


def test_report_has_question_targets_statistics_figures_commands_versions(tmp_path: Path) -> None:
    folder = _campaign(tmp_path)
    md_path, html_path = report.write_report(folder)
    md = md_path.read_text()
    assert md.startswith("# MRKM campaign camp\n")
    assert "**Question.** Does a rekey survive 0 % loss?" in md
    assert "Runs: **4 valid**, **0 invalid** (host saturated), **0 failed**" in md
    # Key convergence is (12 + 10·loss + 30) ms: 0.042 s at 0 %, 0.142 s at 10 % loss.
    assert "| p95 of key_convergence_max_s ≤ 0.1 | loss 0 %, routers 3 | 0.042 | 2 | met |" in md
    assert (
        "| p95 of key_convergence_max_s ≤ 0.1 | loss 10 %, routers 3 | 0.142 | 2 | **missed** |"
    ) in md
    assert "| max of adjacency_flaps ≤ 0 | loss 10 %, routers 3 | 0 | 2 | met |" in md
    assert "| loss 10 %, routers 3 | 2 of 2 | 0.142 | 0.142 | 0.142 | 0.142 ± 0 |" in md
    for stem in ("key-convergence-cdf", "convergence-vs-loss", "registration-storm"):
        assert f"](plots/{stem}.png)" in md
        assert (folder / "plots" / f"{stem}.png").is_file()
    assert "](plots/timeline-loss-10_routers-3.png)" in md
    assert f"make campaign CAMPAIGN={tmp_path / 'camp.yaml'}" in md
    assert "make report CAMPAIGN=camp" in md
    assert re.search(r"\| python \| 3\.\d+\.\d+ \|", md)
    assert re.search(r"\| mrkm \| \S+ commit [0-9a-f]{12}", md)
    assert md.count("`runs/loss-") == 4  # the run list names every bundle

    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<strong>missed</strong>" in page
    assert 'src="plots/' not in page  # self-contained: every figure embedded
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == md.count("![")
    assert base64.b64decode(images[0]).startswith(b"\x89PNG")


def test_report_counts_failed_and_invalid_runs_and_says_what_is_used(tmp_path: Path) -> None:
    folder = _campaign(tmp_path, FakeRunner(fail_on={10.0}, saturate_on={0.0}), plots=False)
    md = report.render_markdown(report.build_report(folder))
    assert "Runs: **0 valid**, **2 invalid** (host saturated), **2 failed**" in md
    assert "Statistics use valid runs only" in md
    assert "| loss 0 %, routers 3 | 0 of 2 | - | - | - | - |" in md
    assert "| p95 of key_convergence_max_s ≤ 0.1 | loss 0 %, routers 3 | - | 0 | no data |" in md
    assert "failed: TimeoutError: a GM never accepted" in md
    assert "![" not in md  # no plots were drawn


def test_rendering_escapes_and_rejects_unknown_blocks(tmp_path: Path) -> None:
    blocks = [
        report.Block("heading", "a <b> & c", level=1),
        report.Block("text", "**bold** and `code` <i>"),
        report.Block("table", header=("x|y",), rows=(("1|2",),)),
    ]
    page = report.render_html(blocks, tmp_path)
    assert "<h1>a &lt;b&gt; &amp; c</h1>" in page
    assert "<p><strong>bold</strong> and <code>code</code> &lt;i&gt;</p>" in page
    md = report.render_markdown(blocks)
    assert "| x\\|y |" in md and "| 1\\|2 |" in md
    with pytest.raises(ValueError, match="unknown block kind 'video'"):
        report.render_markdown([report.Block("video")])


def test_cli_writes_both_files_and_names_a_missing_campaign(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _campaign(tmp_path, plots=False)
    assert report.main(["--campaign", "camp", "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "run `make plots` first" in out
    assert (folder / "report.md").is_file() and (folder / "report.html").is_file()
    with pytest.raises(SystemExit):
        report.main(["--campaign", "nope", "--results", str(tmp_path / "results")])
    assert "no campaign.json" in capsys.readouterr().err
