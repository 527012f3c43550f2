"""
How a wait proceeds between polls: when progress is worth a log line, when a task's clock has
stopped, and how long to wait before the next poll. Pure, shared by the sensor and the trigger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_confluence.exceptions import LongTaskFailed, LongTaskStalled
from airflow_provider_confluence.longtask import LongTask, Outcome, format_duration

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Default seconds a not-done task's clock (``elapsedTime``) may stand still before the wait ends.
DEFAULT_STALL_TIMEOUT = 600.0


@dataclass
class ProgressTracker:
    """
    Remembers the previous status of one task.

    ``observe`` answers two questions about each new status: did the progress (percent or status)
    change, so that it deserves a log line; and has the task's clock stopped. A running Confluence
    task's ``elapsedTime`` grows at every poll; once the task stops, its clock stops. A task that is
    not reported done but whose clock stood still for ``stall_timeout`` seconds (and at least two
    polls) is *stalled*: Data Center stops failed tasks below 100 % this way.
    """

    stall_timeout: float | None = DEFAULT_STALL_TIMEOUT
    _progress: tuple[int, str | None] | None = field(default=None, init=False)
    _elapsed_ms: int | None = field(default=None, init=False)
    _still_since: float | None = field(default=None, init=False)
    _still_polls: int = field(default=0, init=False)

    def already_logged(self, percent: int, status: str | None) -> None:
        """The progress someone else already logged (the sensor, before it deferred)."""
        self._progress = (percent, status)

    def observe(self, task: LongTask, now: float) -> tuple[bool, bool]:
        """``(changed, stalled)`` for this status seen at ``now`` (``time.time()``)."""
        progress = (task.percentage_complete, task.status)
        changed = progress != self._progress
        self._progress = progress
        moving = changed or task.elapsed_time_ms != self._elapsed_ms
        if task.is_done or task.elapsed_time_ms == 0 or moving:
            self._elapsed_ms = task.elapsed_time_ms
            self._still_since, self._still_polls = now, 0
            return changed, False
        self._still_polls += 1
        since = self._still_since if self._still_since is not None else now
        stalled = (
            self.stall_timeout is not None and self._still_polls >= 2 and now - since >= self.stall_timeout
        )
        return changed, stalled


@dataclass(frozen=True)
class Verdict:
    """What one poll concluded: keep waiting, or done with a result or a failure."""

    done: bool
    task: LongTask | None = None
    failure: LongTaskFailed | None = None
    progress_line: str | None = None


class LongTaskWait:
    """
    The rules of waiting on one task, for the sensor (poke and reschedule) and the trigger alike.

    ``started_at`` is when the wait began (``time.time()``): a 404 is tolerated for
    ``not_found_grace`` seconds after it (a task just started may not be visible yet).
    """

    def __init__(
        self,
        task_id: str,
        *,
        started_at: float,
        not_found_grace: float = 0.0,
        warnings_fail: bool = False,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
    ) -> None:
        self.task_id = task_id
        self.started_at = started_at
        self.not_found_grace = not_found_grace
        self.warnings_fail = warnings_fail
        self.tracker = ProgressTracker(stall_timeout)
        self.last_seen: LongTask | None = None

    def on_status(self, task: LongTask, now: float) -> Verdict:
        self.last_seen = task
        changed, stalled = self.tracker.observe(task, now)
        line = task.describe() if changed else None
        outcome = task.outcome(warnings_fail=self.warnings_fail)
        if outcome is Outcome.SUCCESS:
            return Verdict(done=True, task=task, progress_line=line)
        if outcome is Outcome.FAILURE:
            return Verdict(done=True, task=task, failure=task.to_failure(), progress_line=line)
        if stalled:
            return Verdict(done=True, task=task, failure=self._stalled(task), progress_line=line)
        return Verdict(done=False, task=task, progress_line=line)

    def tolerates_not_found(self, now: float) -> bool:
        """True while a 404 is still inside the grace window after the wait started."""
        return now < self.started_at + self.not_found_grace

    def _stalled(self, task: LongTask) -> LongTaskStalled:
        stall = self.tracker.stall_timeout or 0
        failure = task.to_failure()
        keys = f" Error keys: {', '.join(failure.error_keys)}." if failure.error_keys else ""
        message = (
            f"Confluence task {task.id} ({task.display_name}) stopped at {task.percentage_complete}% after "
            f"{format_duration(task.elapsed_seconds)}: its clock (elapsedTime) has not moved for "
            f"{format_duration(stall)} and it never reported being done. Data Center stops a failed task "
            f"this way; check the task in Confluence.{keys}"
        )
        return LongTaskStalled(
            message, task_id=task.id, error_keys=failure.error_keys, errors=failure.errors, task=task
        )


class PollSchedule:
    """
    How long to wait before the next poll of one task.

    Fixed polling waits ``poll_interval``. Adaptive polling reads ``percentageComplete`` as a clock:
    a task at ``p`` % after ``e`` seconds, whose percentage moves in steps of ``g`` points (the
    smallest jump seen so far), ends somewhere in ``(100 e / (p + g), 100 e / p]``. Each poll narrows
    that window, and the schedule

    * sleeps until the window opens (the end cannot come before it);
    * polls every ``poll_interval`` inside a window wider than that (so the detection delay is no
      worse than fixed polling's);
    * polls once at the upper edge of a window narrower than that;
    * never sleeps longer than the task has run so far, nor outside ``[min_interval, max_interval]``
      (by default ``poll_interval / 6`` and ``10 * poll_interval``);
    * falls back to ``poll_interval`` when progress says nothing (no progress yet, a 404, a task past
      its predicted end, or progress that is not linear in time, such as a stall then a jump).

    The window is rebuilt from later polls after a triggerer restart; nothing needs serialising.
    """

    def __init__(
        self,
        poll_interval: float,
        *,
        adaptive: bool = False,
        min_interval: float | None = None,
        max_interval: float | None = None,
    ) -> None:
        self.poll_interval = poll_interval
        self.adaptive = adaptive
        self.min_interval = poll_interval / 6 if min_interval is None else min_interval
        self.max_interval = max(
            self.min_interval, poll_interval * 10 if max_interval is None else max_interval
        )
        self._low = 0.0
        self._high = math.inf
        self._last_percent: int | None = None
        self._step = 100
        self._nonlinear = False

    def next_interval(self, task: LongTask | None) -> float:
        """Seconds until the next poll, after seeing ``task`` (None: no status, e.g. a 404)."""
        if not self.adaptive or task is None or task.is_done or self._nonlinear:
            return self.poll_interval
        elapsed, percent = task.elapsed_seconds, task.percentage_complete
        if self._last_percent is not None and percent > self._last_percent:
            self._step = min(self._step, percent - self._last_percent)
        self._last_percent = percent
        if elapsed <= 0 or not 0 < percent < 100:
            return self.poll_interval
        # Before any jump is seen, assume the worst: one step to the end (the window opens now).
        step = self._step if self._step < 100 else 100 - percent
        self._low = max(self._low, 100 * elapsed / (percent + step))
        self._high = min(self._high, 100 * elapsed / percent)
        # The window is (low, high]: empty once low reaches high (elapsedTime has a 1 ms resolution).
        if self._low >= self._high - 0.001:  # the readings contradict a linear clock: stop predicting
            self._nonlinear = True
            return self.poll_interval
        if elapsed > self._high:  # past the predicted end
            return self.poll_interval
        longest = min(self.max_interval, max(self.min_interval, elapsed))
        if self._high - self._low <= self.poll_interval:
            return min(longest, max(self.min_interval, self._high - elapsed))
        if elapsed < self._low:
            return min(longest, max(self.min_interval, self._low - elapsed))
        return min(self.poll_interval, longest)


def check_wait_arguments(
    *,
    confluence_conn_id: object,
    positive: Mapping[str, object],
    non_negative: Mapping[str, object],
    flags: Mapping[str, object],
    max_retries: object,
    bounds: tuple[str, str] | None = None,
) -> None:
    """
    Check, when a DAG is parsed, the waiting arguments the sensor and the operators share.

    ``positive`` and ``non_negative`` map argument names to seconds (None: not set), ``flags`` to
    booleans; ``bounds`` names a (min, max) pair among ``positive``.

    :raises ValueError: naming the argument and what it must be.
    """
    if not isinstance(confluence_conn_id, str) or not confluence_conn_id.strip():
        raise ValueError(f"confluence_conn_id must name an Airflow connection, got {confluence_conn_id!r}.")
    for name, value in positive.items():
        _seconds(name, value, allow_zero=False)
    for name, value in non_negative.items():
        _seconds(name, value, allow_zero=True)
    if bounds is not None:
        low, high = positive.get(bounds[0]), positive.get(bounds[1])
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
            raise ValueError(f"{bounds[0]} ({low}) is larger than {bounds[1]} ({high}).")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 50:
        raise ValueError(f"max_retries must be a whole number from 0 to 50, got {max_retries!r}.")
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}.")


def _seconds(name: str, value: object, *, allow_zero: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"{name} must be a number of seconds {'>= 0' if allow_zero else '> 0'}, got {value!r}."
        )
