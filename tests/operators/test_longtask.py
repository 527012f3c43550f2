"""``ConfluenceLongTaskOperator`` (through ``CopyPageHierarchyOperator``) against the simulator.

Start, XCom push, waiting in the worker or in the triggerer, ``soft_fail``, timeouts, and resuming a
previous try's task through ``task_state_store`` instead of starting the work twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk._shared.module_loading import import_string
from airflow.sdk.bases.operator import TriggerFailureReason
from airflow.sdk.exceptions import (
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferralError,
    TaskDeferred,
)

from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceError,
    ConfluenceNotFoundError,
    LongTaskFailed,
)
from airflow_provider_confluence.operators.longtask import (
    STATE_KEY,
    XCOM_KEY,
    ConfluenceLongTaskOperator,
)
from airflow_provider_confluence.operators.pages import CopyPageHierarchyOperator
from airflow_provider_confluence.testing import ConfluenceSimulator, Fault, TaskSpec
from airflow_provider_confluence.triggers.longtask import LongTaskTrigger
from tests.helpers import logs_without
from tests.operators import DictStateStore, FakeTaskInstance, make_context

CANARY = "CANARY-operator-token-3b9d52"
ERROR_KEYS = ("ERROR_LOCK_FAILED", "ERROR_RELINK")
FAILING = TaskSpec(duration=0.3, outcome="failure", error_keys=ERROR_KEYS, error_args=("DOCS",))


# ---------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConfluenceSimulator]:
    with ConfluenceSimulator(api_token=CANARY, operation_spec=TaskSpec(duration=0.3)) as simulator:
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", simulator.airflow_connection())
        yield simulator


@pytest.fixture(autouse=True)
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """What the operator, its hook and its trigger logged; the token may appear in none of it."""
    with logs_without(caplog, [CANARY]) as captured:
        yield captured


def make_copy(**kwargs: Any) -> CopyPageHierarchyOperator:
    kwargs.setdefault("task_id", "copy")
    kwargs.setdefault("page_id", "65601")
    kwargs.setdefault("destination_page_id", "98305")
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("timeout", 10)
    return CopyPageHierarchyOperator(**kwargs)


def warnings_logged(logs: list[dict[str, Any]]) -> list[str]:
    """Warnings, without Airflow's own about calling ``execute`` outside the task runner (as tests do)."""
    return [
        str(entry["event"])
        for entry in logs
        if entry.get("log_level") == "warning" and "outside of the Task Runner" not in str(entry["event"])
    ]


async def first_event(trigger: LongTaskTrigger) -> dict[str, Any] | None:
    async for event in trigger.run():
        payload: dict[str, Any] = event.payload
        return payload
    return None


def run_deferred(deferred: TaskDeferred, resumed: ConfluenceLongTaskOperator, context: dict[str, Any]) -> Any:
    """As Airflow: the trigger runs from its serialized form, then a fresh operator resumes with its event."""
    classpath, trigger_kwargs = deferred.trigger.serialize()
    trigger = import_string(classpath)(**json.loads(json.dumps(trigger_kwargs)))
    event = asyncio.run(first_event(trigger))
    assert deferred.method_name is not None
    return resumed.resume_execution(
        deferred.method_name, {"event": event, **(deferred.kwargs or {})}, context
    )


# ---------------------------------------------------------------------------- waiting in the worker
def test_starts_waits_in_the_worker_and_returns_the_summary(sim: ConfluenceSimulator) -> None:
    ti = FakeTaskInstance()

    summary = make_copy().execute(make_context(ti))  # type: ignore[arg-type]

    ((key, long_task_id),) = ti.pushed
    assert key == XCOM_KEY == "long_task_id"
    assert summary["id"] == long_task_id
    assert summary["successful"] is True
    assert summary["finished"] is True
    details = summary["additional_details"]
    assert details["destinationId"] == "98305"
    assert details["destinationUrl"].startswith(sim.url)
    assert details["destinationUrl"].endswith("pageId=98305")
    json.dumps(summary)
    assert sim.stats.requests_by_kind["copy"] == 1
    assert sim.stats.status_gets(long_task_id) >= 2  # it waited


def test_the_task_id_is_pushed_and_stored_before_waiting(sim: ConfluenceSimulator) -> None:
    ti = FakeTaskInstance(on_push=sim.stats.status_gets)  # status GETs of the pushed id when it was pushed
    store = DictStateStore()

    make_copy().execute(make_context(ti, store))  # type: ignore[arg-type]

    ((key, long_task_id),) = ti.pushed
    assert key == "long_task_id"
    assert ti.observed_at_push == [0]
    assert store.sets == [(STATE_KEY, long_task_id)]
    assert sim.stats.status_gets(long_task_id) >= 1


def test_a_failed_task_raises_long_task_failed_with_every_error_key(sim: ConfluenceSimulator) -> None:
    sim.operation_spec = FAILING
    ti = FakeTaskInstance()

    with pytest.raises(LongTaskFailed) as raised:
        make_copy().execute(make_context(ti))  # type: ignore[arg-type]

    failure = raised.value
    ((_, long_task_id),) = ti.pushed
    assert failure.task_id == long_task_id
    assert failure.error_keys == ERROR_KEYS
    assert [m.args for m in failure.errors] == [("DOCS",), ("DOCS",)]
    for needle in (long_task_id, *ERROR_KEYS, "DOCS"):
        assert needle in str(failure)


def test_soft_fail_skips_a_failed_task(sim: ConfluenceSimulator) -> None:
    sim.operation_spec = FAILING

    with pytest.raises(AirflowSkipException, match="ERROR_LOCK_FAILED") as raised:
        make_copy(soft_fail=True).execute(make_context())  # type: ignore[arg-type]

    assert isinstance(raised.value.__cause__, LongTaskFailed)
    assert raised.value.__cause__.error_keys == ERROR_KEYS


@pytest.mark.parametrize(
    ("soft_fail", "expected"),
    [(False, AirflowSensorTimeout), (True, AirflowSkipException)],
    ids=["timeout-fails", "timeout-soft-fail-skips"],
)
def test_a_short_timeout_ends_the_wait(
    sim: ConfluenceSimulator, soft_fail: bool, expected: type[BaseException]
) -> None:
    sim.operation_spec = TaskSpec(duration=60)
    ti = FakeTaskInstance()

    started = time.monotonic()
    with pytest.raises(expected) as raised:
        make_copy(timeout=0.5, soft_fail=soft_fail).execute(make_context(ti))  # type: ignore[arg-type]

    assert time.monotonic() - started < 3
    ((_, long_task_id),) = ti.pushed
    assert long_task_id in str(raised.value)
    assert "did not finish within 0.5 s" in str(raised.value)
    if soft_fail:
        assert isinstance(raised.value.__cause__, AirflowSensorTimeout)


def test_without_waiting_returns_the_task_id_at_once(sim: ConfluenceSimulator) -> None:
    sim.operation_spec = TaskSpec(duration=60)
    ti = FakeTaskInstance()

    started = time.monotonic()
    result = make_copy(wait_for_completion=False).execute(make_context(ti))  # type: ignore[arg-type]

    assert time.monotonic() - started < 2
    assert ti.pushed == [("long_task_id", result)]
    assert isinstance(result, str)
    assert sim.task_ids == [result]
    assert sim.stats.status_gets(result) == 0
    assert sim.stats.requests_by_kind["copy"] == 1


def test_the_hook_session_is_closed_after_execute(sim: ConfluenceSimulator) -> None:
    operator = make_copy()

    operator.execute(make_context())  # type: ignore[arg-type]

    assert operator.hook._session is None


def test_a_refused_start_fails_before_anything_is_pushed(sim: ConfluenceSimulator) -> None:
    ti = FakeTaskInstance()
    store = DictStateStore()

    sim.inject(Fault("403", endpoint="start"))

    with pytest.raises(ConfluenceAuthError):
        make_copy().execute(make_context(ti, store))  # type: ignore[arg-type]

    assert ti.pushed == []
    assert store.sets == []


# ---------------------------------------------------------------------------- deferrable
def test_deferrable_defers_with_a_trigger_for_the_started_task(sim: ConfluenceSimulator) -> None:
    sim.operation_spec = TaskSpec(duration=60)
    ti = FakeTaskInstance()
    operator = make_copy(
        deferrable=True,
        timeout=3600,
        poll_interval=7,
        not_found_grace_period=12,
        fail_on_warnings=True,
        stall_timeout=90,
        max_retries=3,
    )

    before = time.time()
    with pytest.raises(TaskDeferred) as raised:
        operator.execute(make_context(ti))  # type: ignore[arg-type]
    after = time.time()

    ((key, long_task_id),) = ti.pushed
    assert key == "long_task_id"
    deferred = raised.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=3600)
    trigger = deferred.trigger
    assert isinstance(trigger, LongTaskTrigger)
    assert trigger.long_task_id == long_task_id
    assert before + 3600 <= trigger.end_time <= after + 3600
    assert before <= trigger.started_at <= after
    _, kwargs = trigger.serialize()
    assert kwargs["confluence_conn_id"] == "confluence_default"
    assert kwargs["poll_interval"] == 7
    assert kwargs["not_found_grace"] == 12
    assert kwargs["warnings_fail"] is True
    assert kwargs["stall_timeout"] == 90
    assert kwargs["max_retries"] == 3
    assert CANARY not in json.dumps(kwargs)
    assert sim.stats.requests_by_kind["copy"] == 1
    assert operator.hook._session is None  # closed before handing over to the triggerer


@pytest.mark.parametrize("soft_fail", [False, True], ids=["fails", "soft-fail-skips"])
def test_deferrable_round_trip_of_a_failed_task(sim: ConfluenceSimulator, soft_fail: bool) -> None:
    sim.operation_spec = FAILING
    context = make_context()

    with pytest.raises(TaskDeferred) as raised:
        make_copy(deferrable=True, soft_fail=soft_fail).execute(context)  # type: ignore[arg-type]
    with pytest.raises(AirflowSkipException if soft_fail else LongTaskFailed) as failed:
        run_deferred(raised.value, make_copy(deferrable=True, soft_fail=soft_fail), context)

    failure = failed.value.__cause__ if soft_fail else failed.value
    assert isinstance(failure, LongTaskFailed)
    assert failure.error_keys == ERROR_KEYS
    assert "ERROR_RELINK" in str(failed.value)


def test_deferrable_round_trip_returns_the_summary(sim: ConfluenceSimulator) -> None:
    context = make_context()

    with pytest.raises(TaskDeferred) as raised:
        make_copy(deferrable=True).execute(context)  # type: ignore[arg-type]
    summary = run_deferred(raised.value, make_copy(deferrable=True), context)

    assert summary["id"] == raised.value.trigger.long_task_id
    assert summary["successful"] is True
    assert summary["additional_details"]["destinationId"] == "98305"


SUMMARY = {"id": "7", "successful": True, "warning_keys": [], "additional_details": {"destinationId": "9"}}
FAILURE_EVENT = {
    "status": "failure",
    "long_task_id": "7",
    "message": "Confluence task 7 failed with error keys ERROR_A, ERROR_B",
    "error_keys": ["ERROR_A", "ERROR_B"],
    "errors": [{"key": "ERROR_A", "translation": "A broke", "args": ["x"]}],
    "stalled": False,
}
TIMEOUT_EVENT = {
    "status": "timeout",
    "long_task_id": "7",
    "message": "Task 7 did not finish before the timeout",
}
AUTH_EVENT = {
    "status": "error",
    "message": "Confluence rejected the credentials",
    "error_type": "ConfluenceAuthError",
}


@pytest.mark.parametrize(
    ("event", "expected", "message"),
    [
        pytest.param(FAILURE_EVENT, LongTaskFailed, "ERROR_A, ERROR_B", id="failure"),
        pytest.param(TIMEOUT_EVENT, AirflowSensorTimeout, "did not finish", id="timeout"),
        pytest.param(AUTH_EVENT, ConfluenceAuthError, "rejected the credentials", id="error-auth"),
        pytest.param(
            {"status": "error", "message": "gone", "error_type": "ConfluenceNotFoundError"},
            ConfluenceNotFoundError,
            "gone",
            id="error-not-found",
        ),
        pytest.param(None, ConfluenceError, "no usable event", id="no-event"),
    ],
)
def test_execute_complete_turns_events_into_exceptions(
    event: dict[str, Any] | None, expected: type[BaseException], message: str
) -> None:
    with pytest.raises(expected, match=message) as raised:
        make_copy(deferrable=True).execute_complete(make_context(), event)  # type: ignore[arg-type]

    assert type(raised.value) is expected
    if expected is LongTaskFailed:
        assert raised.value.error_keys == ("ERROR_A", "ERROR_B")
        assert raised.value.task_id == "7"
        assert raised.value.errors[0].args == ("x",)


def test_execute_complete_returns_the_summary_of_a_success_event() -> None:
    event = {"status": "success", "long_task_id": "7", "message": "Task 7 succeeded", "task": SUMMARY}

    assert make_copy(deferrable=True).execute_complete(make_context(), event) == SUMMARY  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("next_method", "next_kwargs", "soft_fail", "expected"),
    [
        pytest.param(
            "execute_complete", {"event": FAILURE_EVENT}, True, AirflowSkipException, id="failure-skips",
        ),
        pytest.param(
            "execute_complete", {"event": TIMEOUT_EVENT}, True, AirflowSkipException, id="timeout-skips",
        ),
        pytest.param(
            "execute_complete", {"event": AUTH_EVENT}, True, ConfluenceAuthError, id="auth-error-not-skipped"
        ),
        pytest.param(
            "__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, False, AirflowSensorTimeout,
            id="deferral-timeout-fails",
        ),
        pytest.param(
            "__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, True, AirflowSkipException,
            id="deferral-timeout-skips",
        ),
        pytest.param(
            "__fail__", {"error": TriggerFailureReason.TRIGGER_FAILURE}, True, TaskDeferralError,
            id="trigger-failure-not-skipped",
        ),
    ],
)  # fmt: skip
def test_resume_execution_applies_soft_fail_like_the_sensor(
    next_method: str, next_kwargs: dict[str, Any], soft_fail: bool, expected: type[BaseException]
) -> None:
    operator = make_copy(deferrable=True, soft_fail=soft_fail)

    with pytest.raises(expected) as raised:
        operator.resume_execution(next_method, next_kwargs, make_context())  # type: ignore[arg-type]

    assert type(raised.value) is expected


# ---------------------------------------------------------------------------- resuming a previous try
def test_a_retry_resumes_the_running_task_instead_of_starting_again(sim: ConfluenceSimulator) -> None:
    sim.operation_spec = TaskSpec(duration=1.0)
    store = DictStateStore()
    with pytest.raises(TaskDeferred):  # try 1 starts the copy and defers; then its worker is lost
        make_copy(deferrable=True).execute(make_context(store=store))  # type: ignore[arg-type]
    (first_id,) = sim.task_ids
    assert store.data == {STATE_KEY: first_id}

    ti = FakeTaskInstance()
    summary = make_copy().execute(make_context(ti, store))  # type: ignore[arg-type]  # try 2

    assert sim.stats.requests_by_kind["copy"] == 1
    assert sim.task_ids == [first_id]
    assert ti.pushed == [("long_task_id", first_id)]
    assert summary["id"] == first_id
    assert summary["successful"] is True
    assert sim.stats.status_gets(first_id) >= 2  # checked, then waited on
    assert store.data == {STATE_KEY: first_id}


def test_a_retry_defers_on_the_running_task_instead_of_starting_again(sim: ConfluenceSimulator) -> None:
    running = sim.add_task(TaskSpec(duration=60))
    store = DictStateStore(**{STATE_KEY: running})

    with pytest.raises(TaskDeferred) as raised:
        make_copy(deferrable=True).execute(make_context(store=store))  # type: ignore[arg-type]

    assert raised.value.trigger.long_task_id == running
    assert sim.stats.requests_by_kind.get("copy", 0) == 0


def test_a_retry_after_the_task_succeeded_returns_its_summary_without_starting(
    sim: ConfluenceSimulator,
) -> None:
    done = sim.add_task(TaskSpec(duration=0, additional_details={"destinationId": "98305"}))
    store = DictStateStore(**{STATE_KEY: done})
    ti = FakeTaskInstance()

    summary = make_copy(deferrable=True).execute(make_context(ti, store))  # type: ignore[arg-type]

    assert summary["id"] == done
    assert summary["successful"] is True
    assert summary["additional_details"] == {"destinationId": "98305"}
    assert ti.pushed == [("long_task_id", done)]
    assert sim.stats.requests_by_kind.get("copy", 0) == 0
    assert sim.stats.status_gets(done) == 1
    assert store.sets == []


@pytest.mark.parametrize("previous", ["failed", "gone"], ids=["previous-failed", "previous-gone-404"])
def test_a_retry_starts_again_when_the_previous_task_failed_or_is_gone(
    sim: ConfluenceSimulator, logs: list[dict[str, Any]], previous: str
) -> None:
    old = sim.add_task(TaskSpec(duration=0, outcome="failure")) if previous == "failed" else "4040404"
    store = DictStateStore(**{STATE_KEY: old})
    ti = FakeTaskInstance()

    summary = make_copy().execute(make_context(ti, store))  # type: ignore[arg-type]

    assert sim.stats.requests_by_kind["copy"] == 1
    ((_, new_id),) = ti.pushed
    assert new_id != old
    assert summary["id"] == new_id
    assert summary["successful"] is True
    assert store.data == {STATE_KEY: new_id}
    assert sim.stats.status_gets(old) == 1
    assert any(old in w and "starting again" in w for w in warnings_logged(logs)), warnings_logged(logs)


def test_without_a_task_state_store_it_starts_and_warns(
    sim: ConfluenceSimulator, logs: list[dict[str, Any]]
) -> None:
    ti = FakeTaskInstance()

    summary = make_copy().execute(make_context(ti, with_store=False))  # type: ignore[arg-type]

    assert sim.stats.requests_by_kind["copy"] == 1
    assert summary["id"] == ti.pushed[0][1]
    assert any("task_state_store" in w for w in warnings_logged(logs)), warnings_logged(logs)


def test_with_a_task_state_store_there_is_no_warning(
    sim: ConfluenceSimulator, logs: list[dict[str, Any]]
) -> None:
    make_copy().execute(make_context())  # type: ignore[arg-type]

    assert warnings_logged(logs) == []


def test_a_retry_without_waiting_returns_the_running_task_id(sim: ConfluenceSimulator) -> None:
    running = sim.add_task(TaskSpec(duration=60))
    store = DictStateStore(**{STATE_KEY: running})

    result = make_copy(wait_for_completion=False).execute(make_context(store=store))  # type: ignore[arg-type]

    assert result == running
    assert sim.stats.requests_by_kind.get("copy", 0) == 0


def test_a_retry_without_waiting_returns_the_task_id_also_when_it_already_succeeded(
    sim: ConfluenceSimulator,
) -> None:
    """The documented result without waiting is the task id, whatever the previous try left behind.

    Downstream tasks template it into e.g. ``LongTaskSensor(long_task_id=...)``: a summary dict there
    would break the DAG only on the retry path.
    """
    done = sim.add_task(TaskSpec(duration=0))
    store = DictStateStore(**{STATE_KEY: done})

    result = make_copy(wait_for_completion=False).execute(make_context(store=store))  # type: ignore[arg-type]

    assert result == done
    assert sim.stats.requests_by_kind.get("copy", 0) == 0


# ---------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"poll_interval": True}, "poll_interval"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "60"}, "timeout"),
    ],
    ids=["zero-interval", "negative-interval", "bool-interval", "zero-timeout", "string-timeout"],
)
def test_bad_waiting_arguments_fail_at_construction(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make_copy(**kwargs)


def test_the_base_operator_needs_a_subclass_to_start_anything() -> None:
    operator = ConfluenceLongTaskOperator(task_id="base")

    with pytest.raises(NotImplementedError):
        operator.start_long_task(make_context())  # type: ignore[arg-type]
