"""The one figure style of MRKM's plots (STYLE.md item 15; mininet-tests ``lib/plot_defaults.py``).

Every plot is drawn inside :func:`context`, colored from :data:`COLORS` (the
Okabe-Ito palette, readable with color-vision deficiencies and in grey),
captioned with :func:`caption` (scenario, seed, commit, N, validity: a
reviewer can trace every figure to its run) and written by :func:`save` as
PNG (for reading) and PDF (for papers and drafts). Figures use matplotlib's
object API (:class:`~matplotlib.figure.Figure`), never pyplot's global
state, so plotting needs no display and no backend choice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure

__all__ = ["COLORS", "DPI", "caption", "context", "figure", "save"]

DPI = 150  # PNG resolution
WIDTH = 6.4  # inches: one column of a two-column paper at 2x, or a slide
#: Okabe-Ito, by meaning.
COLORS = {
    "accept": "#0072B2",  # blue: the GM verified and accepted the rekey
    "install": "#D55E00",  # vermillion: the router confirmed the key
    "wire": "#009E73",  # green: the first packet with the key on the wire
    "rekey": "#555555",  # grey: GCKS sends a rekey
    "down": "#CC79A7",  # purple: an adjacency not Full
    "fault": "#E69F00",  # orange: an injected fault
    "key": "#000000",  # black: key id in use
}
RC: dict[Any, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
    "legend.frameon": False,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, accepted by publishers
}


@contextmanager
def context() -> Iterator[None]:
    """Draw inside this: MRKM's rc settings, undone afterwards."""
    with mpl.rc_context(RC):
        yield


def figure(height: float, width: float = WIDTH) -> Figure:
    """A new figure of ``width`` × ``height`` inches, with constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def caption(fig: Figure, manifest: Mapping[str, Any], n: str = "") -> None:
    """A grey line under the figure: scenario, seed, commit, ``n`` and the run's validity."""
    commit = ((manifest.get("versions") or {}).get("mrkm") or {}).get("commit") or "?"
    parts = [
        f"scenario {manifest.get('scenario', '?')}",
        f"seed {manifest.get('seed', '?')}",
        f"MRKM {commit[:10]}",
    ]
    if n:
        parts.append(n)
    if manifest.get("valid") is False:
        parts.append("INVALID RUN: host saturated")
    fig.supxlabel("  ·  ".join(parts), fontsize=7, color="#666666")


def save(fig: Figure, folder: Path, stem: str) -> list[Path]:
    """Write ``folder/stem.png`` and ``folder/stem.pdf``; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=DPI)
    return paths
