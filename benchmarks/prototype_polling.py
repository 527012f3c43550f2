"""
PROTOTYPE, benchmark only: an alternative adaptive poll interval, to compare with ``next_poll_interval``.

Nothing in the package uses this module. It exists so that BENCHMARKS.md can show, with figures, what a
change to the adaptive algorithm would buy. The idea ("progress bracket"):

* Confluence's ``percentageComplete`` is treated, as the current algorithm does, as a clock that moves
  linearly with time, but read as an *interval* instead of a point: a task at ``p`` % after ``e`` seconds,
  whose percentage moves in steps of ``g`` points (the smallest jump seen so far), ends in
  ``(100 e / (p + g), 100 e / p]``. Intersecting the brackets of every poll narrows it down.
* Before the bracket opens the end cannot come: sleep until its lower edge. Inside a bracket wider than
  ``poll_interval`` the end may come at any moment: poll every ``poll_interval`` (so the detection delay
  is no worse than fixed polling). A bracket narrower than that needs one poll, at its upper edge.
* A wait never exceeds ``max_interval``, nor the time the task has run so far (so that one early reading
  that turns out wrong cannot park the poll for long), nor goes below ``min_interval``.
* No signal (no progress yet), a contradiction (the brackets do not intersect: the progress is not
  linear, e.g. a stall) or an overdue task (past the upper edge): poll every ``no_signal_interval``,
  which is ``poll_interval`` unless told otherwise.

The current algorithm instead waits ``eta / 2`` with ``eta`` extrapolated from the *latest* poll, so a
percentage that stands still (steps, stalls) makes the ETA grow with every poll, the waits grow up to
``max_interval``, and the end is detected late.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.triggers.longtask import LongTaskTrigger

if TYPE_CHECKING:
    from airflow_provider_confluence.longtask import LongTask


class ProgressBracket:
    """PROTOTYPE: the state of the "progress bracket" interval for one task (see the module docstring)."""

    def __init__(
        self,
        *,
        poll_interval: float,
        min_interval: float,
        max_interval: float,
        no_signal_interval: float | None = None,
    ) -> None:
        self.poll_interval = poll_interval
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.no_signal_interval = poll_interval if no_signal_interval is None else no_signal_interval
        self._low = 0.0
        self._high = float("inf")
        self._last_percent: int | None = None
        self._granularity = 100
        self._broken = False

    def next_interval(self, task: LongTask | None) -> float:
        """Seconds until the next poll, after seeing ``task`` (None: no status, e.g. a 404)."""
        if task is None or task.is_done or self._broken:
            return self.no_signal_interval
        elapsed, percent = task.elapsed_seconds, task.percentage_complete
        if self._last_percent is not None and percent > self._last_percent:
            self._granularity = min(self._granularity, percent - self._last_percent)
        self._last_percent = percent
        if elapsed <= 0 or not 0 < percent < 100:
            return self.no_signal_interval
        # The smallest jump seen is the step of the percentage; before any jump, assume the worst (one
        # step to the end): the bracket then has no lower edge.
        step = self._granularity if self._granularity < 100 else 100 - percent
        self._low = max(self._low, 100 * elapsed / (percent + step))
        self._high = min(self._high, 100 * elapsed / percent)
        if self._low > self._high:  # progress is not linear in time (a stall, a burst): stop predicting
            self._broken = True
            return self.no_signal_interval
        if elapsed > self._high:  # overdue: the prediction was wrong
            return self.no_signal_interval
        # Never sleep longer than the task has run so far: one early, wrong reading cannot park the poll.
        longest = min(self.max_interval, max(self.min_interval, elapsed))
        if self._high - self._low <= self.poll_interval:  # narrow: one poll at its upper edge suffices
            return min(longest, max(self.min_interval, self._high - elapsed))
        if elapsed < self._low:  # the end cannot come before the bracket opens
            return min(longest, max(self.min_interval, self._low - elapsed))
        return min(self.poll_interval, longest)  # inside a wide bracket: the end may come at any moment


class PrototypeBracketTrigger(LongTaskTrigger):
    """
    PROTOTYPE, benchmark only: a ``LongTaskTrigger`` that waits what :class:`ProgressBracket` says.

    Everything else (hook, retries, events) is the real trigger's. Not serialisable as itself.
    """

    def __init__(self, *, no_signal_interval: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        low = self.poll_interval if self.min_poll_interval is None else self.min_poll_interval
        high = self.poll_interval * 10 if self.max_poll_interval is None else self.max_poll_interval
        self._bracket = ProgressBracket(
            poll_interval=self.poll_interval,
            min_interval=low,
            max_interval=max(low, high),
            no_signal_interval=no_signal_interval,
        )

    def _next_wait(self, task: LongTask | None) -> float:
        return self._bracket.next_interval(task)
