"""Between polls: progress tracking, stall detection, the wait's verdicts and the next poll interval."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_confluence.exceptions import LongTaskFailed, LongTaskStalled
from airflow_provider_confluence.longtask import LongTask
from airflow_provider_confluence.polling import (
    DEFAULT_STALL_TIMEOUT,
    LongTaskWait,
    PollSchedule,
    ProgressTracker,
    check_wait_arguments,
)

NAME = {"key": "com.atlassian.confluence.spaces.actions.RemoveSpaceAction.action.name", "args": []}


def task(
    percent: int = 40,
    elapsed_ms: int = 10_000,
    *,
    finished: bool | None = None,
    successful: bool = False,
    status: str | None = None,
    **fields: Any,
) -> LongTask:
    body: dict[str, Any] = {
        "id": "885174",
        "name": NAME,
        "percentageComplete": percent,
        "elapsedTime": elapsed_ms,
        "successful": successful,
        "messages": [],
        **fields,
    }
    if finished is not None:
        body["finished"] = finished
    if status is not None:
        body["status"] = status
    return LongTask.from_json(body)


# ---------------------------------------------------------------------------- ProgressTracker: changes
def test_first_status_is_a_change() -> None:
    assert ProgressTracker().observe(task(), now=0.0) == (True, False)


@pytest.mark.parametrize(
    ("second", "changed"),
    [
        pytest.param(task(40, 12_000), False, id="only-clock-moved"),
        pytest.param(task(40, 10_000), False, id="nothing-moved"),
        pytest.param(task(41, 12_000), True, id="percent-moved"),
        pytest.param(task(40, 12_000, status="RELINKING"), True, id="status-changed"),
        pytest.param(task(100, 12_000, finished=True, successful=True), True, id="finished-at-100"),
    ],
)
def test_changed_only_when_percent_or_status_changes(second: LongTask, changed: bool) -> None:
    tracker = ProgressTracker()
    tracker.observe(task(40, 10_000), now=0.0)

    assert tracker.observe(second, now=5.0)[0] is changed


def test_status_change_back_and_forth_is_reported_each_time() -> None:
    tracker = ProgressTracker()
    seen = [
        tracker.observe(task(40, 1_000 * n, status=s), now=float(n))[0]
        for n, s in enumerate(["COPYING", "COPYING", "RELINKING", "RELINKING", "COPYING"], start=1)
    ]

    assert seen == [True, False, True, False, True]


# ---------------------------------------------------------------------------- ProgressTracker: stalls
def test_stalled_only_after_stall_timeout_and_two_polls() -> None:
    tracker = ProgressTracker(stall_timeout=60)

    assert tracker.observe(task(40, 5_000), now=0.0) == (True, False)
    assert tracker.observe(task(40, 5_000), now=30.0) == (False, False)  # 1 still poll, 30 s
    assert tracker.observe(task(40, 5_000), now=59.9) == (False, False)  # 2 still polls, 59.9 s
    assert tracker.observe(task(40, 5_000), now=60.0) == (False, True)  # 3 still polls, 60 s


def test_one_still_poll_is_not_a_stall_however_long() -> None:
    tracker = ProgressTracker(stall_timeout=60)
    tracker.observe(task(40, 5_000), now=0.0)

    assert tracker.observe(task(40, 5_000), now=3600.0) == (False, False)
    assert tracker.observe(task(40, 5_000), now=3601.0) == (False, True)


def test_a_moving_clock_restarts_the_stall_window() -> None:
    tracker = ProgressTracker(stall_timeout=60)
    tracker.observe(task(40, 5_000), now=0.0)
    tracker.observe(task(40, 5_000), now=50.0)
    tracker.observe(task(40, 6_000), now=55.0)  # the clock moved: window restarts at 55 s

    assert tracker.observe(task(40, 6_000), now=100.0) == (False, False)
    assert tracker.observe(task(40, 6_000), now=114.9) == (False, False)
    assert tracker.observe(task(40, 6_000), now=115.0) == (False, True)


@pytest.mark.parametrize(
    "still",
    [
        pytest.param(task(100, 5_000), id="datacenter-done-at-100"),
        pytest.param(task(60, 5_000, finished=True), id="cloud-finished"),
        pytest.param(task(0, 0), id="elapsed-zero-not-started"),
        pytest.param(task(40, 0), id="elapsed-zero"),
    ],
)
def test_never_stalled_when_done_or_without_a_clock(still: LongTask) -> None:
    tracker = ProgressTracker(stall_timeout=1)

    results = [tracker.observe(still, now=float(t))[1] for t in range(0, 1000, 100)]

    assert results == [False] * 10


def test_never_stalled_without_a_stall_timeout() -> None:
    tracker = ProgressTracker(stall_timeout=None)

    assert [tracker.observe(task(40, 5_000), now=float(t))[1] for t in range(0, 10_000, 1000)] == [False] * 10


def test_default_stall_timeout() -> None:
    assert ProgressTracker().stall_timeout == DEFAULT_STALL_TIMEOUT == 600.0


# ---------------------------------------------------------------------------- LongTaskWait verdicts
def test_running_task_keeps_waiting_and_logs_only_changes() -> None:
    wait = LongTaskWait("885174", started_at=0.0)

    first = wait.on_status(task(10, 1_000), now=1.0)
    idle = wait.on_status(task(10, 2_000), now=2.0)
    moved = wait.on_status(task(20, 3_000), now=3.0)

    assert (first.done, idle.done, moved.done) == (False, False, False)
    assert first.failure is None
    assert first.progress_line is not None
    assert first.progress_line.startswith("Confluence task 885174 (Remove space): 10%")
    assert idle.progress_line is None
    assert moved.progress_line is not None
    assert "20%" in moved.progress_line
    assert wait.last_seen is not None
    assert wait.last_seen.percentage_complete == 20


def test_success_is_done_without_failure() -> None:
    wait = LongTaskWait("885174", started_at=0.0)
    done = task(100, 5_000, successful=True, additionalDetails={"destinationUrl": "https://x/wiki/spaces/A"})

    verdict = wait.on_status(done, now=1.0)

    assert verdict.done is True
    assert verdict.failure is None
    assert verdict.task is done
    assert verdict.progress_line is not None
    assert "succeeded" in verdict.progress_line


def test_failure_is_done_with_the_error_keys() -> None:
    wait = LongTaskWait("885174", started_at=0.0)
    failed = task(
        100,
        5_000,
        successful=False,
        errors=[{"key": "ERROR_LOCK_FAILED", "translation": "Could not lock the space", "args": ["DOC"]}],
    )

    verdict = wait.on_status(failed, now=1.0)

    assert verdict.done is True
    assert isinstance(verdict.failure, LongTaskFailed)
    assert not isinstance(verdict.failure, LongTaskStalled)
    assert verdict.failure.error_keys == ("ERROR_LOCK_FAILED",)
    assert "ERROR_LOCK_FAILED: Could not lock the space (args: DOC)" in str(verdict.failure)


@pytest.mark.parametrize(
    ("warnings_fail", "failed"),
    [pytest.param(False, False, id="warnings-logged"), pytest.param(True, True, id="warnings-fatal")],
)
def test_warnings_fail_only_when_asked(warnings_fail: bool, failed: bool) -> None:
    wait = LongTaskWait("885174", started_at=0.0, warnings_fail=warnings_fail)
    warned = task(100, 5_000, successful=True, errors=[{"key": "WARN_RENAME_PAGE", "translation": "Renamed"}])

    verdict = wait.on_status(warned, now=1.0)

    assert verdict.done is True
    assert (verdict.failure is not None) is failed
    if verdict.failure is not None:
        assert verdict.failure.error_keys == ("WARN_RENAME_PAGE",)


def test_stalled_task_is_done_with_a_stall_failure() -> None:
    wait = LongTaskWait("885174", started_at=0.0, stall_timeout=60)
    stuck = task(45, 30_000, errors=[{"key": "ERROR_UNKNOWN", "translation": "Something broke", "args": []}])

    verdicts = [wait.on_status(stuck, now=t) for t in (0.0, 30.0, 61.0)]

    assert [v.done for v in verdicts] == [False, False, True]
    failure = verdicts[-1].failure
    assert isinstance(failure, LongTaskStalled)
    assert failure.task_id == "885174"
    assert failure.error_keys == ("ERROR_UNKNOWN",)
    message = str(failure)
    for part in ("885174", "Remove space", "45%", "30.0 s", "1 min 00 s", "elapsedTime", "ERROR_UNKNOWN"):
        assert part in message, part


def test_done_task_wins_over_a_stall() -> None:
    wait = LongTaskWait("885174", started_at=0.0, stall_timeout=1)
    done = task(100, 5_000, successful=True)

    verdicts = [wait.on_status(done, now=t) for t in (0.0, 10.0, 20.0)]

    assert all(v.done and v.failure is None for v in verdicts)


@pytest.mark.parametrize(
    ("grace", "now", "tolerated"),
    [
        pytest.param(30.0, 100.0, True, id="at-start"),
        pytest.param(30.0, 129.9, True, id="inside-window"),
        pytest.param(30.0, 130.0, False, id="window-over"),
        pytest.param(0.0, 100.0, False, id="no-grace"),
    ],
)
def test_tolerates_not_found(grace: float, now: float, tolerated: bool) -> None:
    wait = LongTaskWait("885174", started_at=100.0, not_found_grace=grace)

    assert wait.tolerates_not_found(now) is tolerated


# ---------------------------------------------------------------------------- PollSchedule
def intervals(readings: list[tuple[int, int] | None], **kwargs: Any) -> list[float]:
    """The waits a schedule (poll_interval 30 s) asks for after each reading (percent, elapsed ms)."""
    schedule = PollSchedule(30.0, **kwargs)
    return [schedule.next_interval(None if r is None else task(*r)) for r in readings]


@pytest.mark.parametrize(
    ("readings", "kwargs", "expected"),
    [
        pytest.param([(1, 10_000), (2, 20_000)], {}, [30.0, 30.0], id="fixed-ignores-progress"),
        pytest.param([None], {"adaptive": True}, [30.0], id="adaptive-without-a-status"),
        pytest.param([(0, 10_000)], {"adaptive": True}, [30.0], id="adaptive-no-progress-yet"),
        pytest.param([(40, 0)], {"adaptive": True}, [30.0], id="adaptive-no-elapsed-time"),
        pytest.param([(100, 10_000)], {"adaptive": True}, [30.0], id="adaptive-done"),
        # one reading: the end may come at the next step, so the window is open: poll again soon,
        # but never later than the 10 s the task has run so far (default min is poll_interval / 6)
        pytest.param([(1, 10_000)], {"adaptive": True}, [10.0], id="adaptive-one-reading"),
        # 10 % at 30 s and still 10 % at 300 s: the window (300 s, 300 s] is empty: a stall, fall back
        pytest.param(
            [(10, 30_000), (10, 300_000)], {"adaptive": True}, [30.0, 30.0], id="empty-window-is-a-stall"
        ),
        # 10 % per 10 s: after 40 s the window is (80 s, 100 s]: one poll at 100 s, then one at the end
        pytest.param(
            [(10, 10_000), (20, 20_000), (40, 40_000), (80, 80_000)],
            {"adaptive": True, "min_interval": 1.0},
            [10.0, 20.0, 40.0, 20.0],
            id="linear-task-polls-at-its-predicted-end",
        ),
        # far from the end: waits grow with the time the task has run, up to max_interval
        pytest.param(
            [(1, 100_000), (2, 200_000)],
            {"adaptive": True, "min_interval": 1.0, "max_interval": 120.0},
            [30.0, 120.0],
            id="far-end-held-at-max-interval",
        ),
        pytest.param(
            [(1, 100_000), (2, 200_000)],
            {"adaptive": True, "min_interval": 1.0, "max_interval": 1000.0},
            [30.0, 200.0],
            id="far-end-never-longer-than-the-task-ran",
        ),
        # readings that contradict a linear clock (a stall, then a jump) end the predictions
        pytest.param(
            [(50, 50_000), (60, 100_000), (90, 110_000)],
            {"adaptive": True, "min_interval": 1.0},
            [30.0, 30.0, 30.0],
            id="non-linear-progress-falls-back",
        ),
        # 50 % at 50 s predicted the end by 100 s; at 101 s it is overdue: fixed interval
        pytest.param(
            [(50, 50_000), (99, 101_000)],
            {"adaptive": True, "min_interval": 1.0},
            [30.0, 30.0],
            id="overdue-falls-back",
        ),
        pytest.param(
            [(10, 10_000), (20, 20_000)],
            {"adaptive": True, "min_interval": 90.0, "max_interval": 10.0},
            [30.0, 90.0],
            id="max-below-min-uses-min",
        ),
    ],
)
def test_poll_schedule(
    readings: list[tuple[int, int] | None], kwargs: dict[str, Any], expected: list[float]
) -> None:
    assert intervals(readings, **kwargs) == pytest.approx(expected)


def test_adaptive_polls_a_linear_task_far_less_often_than_fixed_polling() -> None:
    """A 1-hour linear task, one percent per 36 s: adaptive needs a handful of polls, fixed 120."""
    schedule = PollSchedule(30.0, adaptive=True, min_interval=5.0, max_interval=600.0)
    now, polls = 0.0, 0
    while now < 3600:
        polls += 1
        percent = int(now / 36)
        now += schedule.next_interval(
            task(percent, int(now * 1000)) if percent < 100 else task(100, 3_600_000)
        )
    assert polls <= 3600 / 30 / 3
    assert now - 3600 <= 30  # and it is not later at the end than fixed polling would be


# ---------------------------------------------------------------------------- check_wait_arguments
GOOD: dict[str, Any] = {
    "confluence_conn_id": "confluence_default",
    "positive": {
        "poke_interval": 30.0,
        "stall_timeout": None,
        "min_poke_interval": 5,
        "max_poke_interval": 300,
    },
    "non_negative": {"not_found_grace_period": 0},
    "flags": {"deferrable": True},
    "max_retries": 5,
    "bounds": ("min_poke_interval", "max_poke_interval"),
}


def test_check_wait_arguments_accepts_good_arguments() -> None:
    check_wait_arguments(**GOOD)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param({"confluence_conn_id": ""}, "confluence_conn_id", id="empty-conn-id"),
        pytest.param({"positive": {"poke_interval": 0}}, "poke_interval must be .* > 0", id="zero-interval"),
        pytest.param({"positive": {"poke_interval": "fast"}}, "poke_interval", id="text-interval"),
        pytest.param({"positive": {"poke_interval": float("nan")}}, "poke_interval", id="nan-interval"),
        pytest.param(
            {"non_negative": {"not_found_grace_period": -1}}, "not_found_grace_period", id="negative"
        ),
        pytest.param(
            {"positive": {"min_poke_interval": 100, "max_poke_interval": 5}},
            "min_poke_interval .* is larger than max_poke_interval",
            id="min-above-max",
        ),
        pytest.param(
            {"flags": {"fail_on_warnings": "no"}}, "fail_on_warnings must be True or False", id="flag"
        ),
        pytest.param({"max_retries": -1}, "max_retries", id="negative-retries"),
        pytest.param({"max_retries": True}, "max_retries", id="bool-retries"),
    ],
)
def test_check_wait_arguments_names_the_bad_argument(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_wait_arguments(**{**GOOD, **change})
