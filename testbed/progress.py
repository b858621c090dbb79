"""Progress of a scenario run: a bar with the current timeline step on a terminal,
one line per step everywhere (CI logs, pipes).

    progress = RunProgress(duration=60)
    with progress:
        progress.note("network built")           # a line with the run's elapsed time
        progress.wait_until(start + 5, "t+5 s: rekey ospfv2-area0")  # bar moves while waiting
        progress.step(start, "rekey of ospfv2-area0 sent")           # the bar shows the step

Waiting here follows the scenario's own schedule (``at:`` times), not a
readiness condition, so it sleeps in short slices to keep the bar moving.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["RunProgress"]


class RunProgress:
    """A timeline bar (terminal only) plus timestamped progress lines."""

    def __init__(self, duration: float, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.duration = duration
        self.t0 = time.monotonic()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._start: float | None = None

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_bar()

    def note(self, text: str) -> None:
        """One line: seconds since the run began, and ``text``."""
        line = f"  [{time.monotonic() - self.t0:6.1f} s] {text}"
        if self._bar is not None:
            self._bar.console.print(line, markup=False)
        else:
            self.console.print(line, markup=False)

    def begin_timeline(self, start: float) -> None:
        """The timeline's t = 0 (monotonic); shows the bar on a terminal."""
        self._start = start
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn("  timeline"),
                BarColumn(),
                TextColumn("t+{task.completed:.0f}/{task.total:.0f} s"),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("starting", total=self.duration)

    def step(self, text: str) -> None:
        """A timeline step happened: a line, and the bar's label."""
        self.note(text)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=text)

    def wait_until(self, deadline: float, label: str | None = None) -> None:
        """Sleep until ``deadline`` (monotonic) in short slices, moving the bar."""
        if label is not None and self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=label)
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))  # the scenario's schedule, not a readiness wait
            self._advance()

    def _advance(self) -> None:
        if self._bar is not None and self._task is not None and self._start is not None:
            done = min(self.duration, time.monotonic() - self._start)
            self._bar.update(self._task, completed=done)

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
