"""``LongTaskSensor`` in poke, reschedule and deferrable mode against the simulator: one set of rules."""

from __future__ import annotations

import asyncio
import base64
import importlib
import importlib.util
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest.mock import MagicMock

import pytest
from airflow.sdk import conf
from airflow.sdk.exceptions import (
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceConfigError,
    ConfluenceError,
    ConfluenceNotFoundError,
    LongTaskFailed,
    LongTaskStalled,
)
from airflow_provider_confluence.hooks import confluence as hook_module
from airflow_provider_confluence.sensors import longtask as sensor_module
from airflow_provider_confluence.sensors.longtask import LongTaskSensor
from airflow_provider_confluence.testing import ConfluenceSimulator, TaskSpec
from airflow_provider_confluence.triggers.longtask import LongTaskTrigger
from tests.helpers import import_string, logs_without

CANARY = "CANARY-sensor-token-4e2a17"
WRONG_CANARY = "CANARY-sensor-wrong-token-88f0"
EMAIL = "demo@example.com"
SECRETS = (
    CANARY,
    WRONG_CANARY,
    base64.b64encode(f"{EMAIL}:{CANARY}".encode()).decode(),
    base64.b64encode(f"{EMAIL}:{WRONG_CANARY}".encode()).decode(),
)
DAGS = Path(__file__).resolve().parents[1] / "dags"
MODES = ["poke", "reschedule", "deferrable"]
DETAILS = {"destinationUrl": "https://example.test/export.zip"}


# ---------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def sim() -> Iterator[ConfluenceSimulator]:
    with ConfluenceSimulator(email=EMAIL, api_token=CANARY, shutdown_timeout=0.2) as simulator:
        yield simulator


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch, sim: ConfluenceSimulator) -> Callable[..., None]:
    def connect(deployment: str = "cloud", **fields: Any) -> None:
        conn = json.loads(sim.airflow_connection(deployment=deployment))
        conn.update(fields)
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", json.dumps(conn))

    connect()
    return connect


@pytest.fixture(autouse=True)
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """What the sensor, its hook and its trigger logged; no secret may appear in any of it."""
    with logs_without(caplog, SECRETS) as captured:
        yield captured
    assert len(hook_module._POOL) == 0


def make_sensor(long_task_id: str, **kwargs: Any) -> LongTaskSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 10)
    return LongTaskSensor(long_task_id=long_task_id, **kwargs)


def run_poke(long_task_id: str, **kwargs: Any) -> Any:
    sensor = make_sensor(long_task_id, mode="poke", deferrable=False, **kwargs)
    return sensor.execute({})  # type: ignore[arg-type]  # poke mode reads nothing from the context


def run_reschedule(long_task_id: str, **kwargs: Any) -> Any:
    """Like Airflow: each try is a new operator; between tries the worker slot is free."""
    first_try: datetime | None = None
    ti = MagicMock()
    ti.get_first_reschedule_date.side_effect = lambda context: first_try
    for _ in range(200):
        sensor = make_sensor(long_task_id, mode="reschedule", deferrable=False, **kwargs)
        started = datetime.now(timezone.utc)
        try:
            return sensor.execute({"ti": ti})  # type: ignore[typeddict-item]
        except AirflowRescheduleException as reschedule:
            first_try = first_try or started
            time.sleep(max(0.0, (reschedule.reschedule_date - datetime.now(timezone.utc)).total_seconds()))
    pytest.fail("the sensor was still rescheduling after 200 tries")


async def first_event(trigger: LongTaskTrigger) -> dict[str, Any] | None:
    async for event in trigger.run():
        payload: dict[str, Any] = event.payload
        return payload
    return None


def run_deferrable(long_task_id: str, **kwargs: Any) -> Any:
    """Like Airflow: execute; on deferral the trigger runs from its serialized form; then resume."""
    sensor = make_sensor(long_task_id, deferrable=True, **kwargs)
    try:
        return sensor.execute({})  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        classpath, trigger_kwargs = deferred.trigger.serialize()
        trigger = import_string(classpath)(**json.loads(json.dumps(trigger_kwargs)))
        event = asyncio.run(first_event(trigger))
        resumed = make_sensor(long_task_id, deferrable=True, **kwargs)
        return resumed.resume_execution(deferred.method_name, {"event": event}, {})  # type: ignore[arg-type]


RUNNERS: dict[str, Callable[..., Any]] = {
    "poke": run_poke,
    "reschedule": run_reschedule,
    "deferrable": run_deferrable,
}


def load_dags() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dags_sensor_modes", DAGS / "sensor_modes.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


# ---------------------------------------------------------------------------- the same rules in every mode
@pytest.mark.parametrize("mode", MODES)
def test_success_returns_the_summary_with_additional_details(
    sim: ConfluenceSimulator, connect: Any, mode: str
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.2, additional_details=DETAILS))

    summary = RUNNERS[mode](task_id)

    assert summary["id"] == task_id
    assert summary["successful"] is True
    assert summary["finished"] is True
    assert summary["additional_details"] == DETAILS
    json.dumps(summary)
    if mode != "poke":
        assert sim.stats.status_gets(task_id) >= 2  # it did wait (not a task that was already done)


@pytest.mark.parametrize("mode", MODES)
def test_failure_raises_long_task_failed_with_every_key(
    sim: ConfluenceSimulator, connect: Any, mode: str
) -> None:
    task_id = sim.add_task(
        TaskSpec(
            duration=0.2,
            outcome="failure",
            error_keys=("ERROR_LOCK_FAILED", "ERROR_RELINK"),
            error_args=("DOCS",),
        )
    )

    with pytest.raises(LongTaskFailed) as raised:
        RUNNERS[mode](task_id)

    failure = raised.value
    assert type(failure) is LongTaskFailed
    assert failure.task_id == task_id
    assert failure.error_keys == ("ERROR_LOCK_FAILED", "ERROR_RELINK")
    assert [(m.key, m.args) for m in failure.errors] == [
        ("ERROR_LOCK_FAILED", ("DOCS",)),
        ("ERROR_RELINK", ("DOCS",)),
    ]
    for needle in (task_id, "ERROR_LOCK_FAILED", "ERROR_RELINK", "DOCS", "Copy page hierarchy"):
        assert needle in str(failure)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fail_on_warnings", [False, True], ids=["warnings-logged", "warnings-fail"])
def test_warnings_only(
    sim: ConfluenceSimulator,
    connect: Any,
    logs: list[dict[str, Any]],
    mode: str,
    fail_on_warnings: bool,
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.2, outcome="warnings", warning_keys=("WARN_RENAME_PAGE",)))

    if fail_on_warnings:
        with pytest.raises(LongTaskFailed) as raised:
            RUNNERS[mode](task_id, fail_on_warnings=True)
        assert raised.value.error_keys == ("WARN_RENAME_PAGE",)
        assert "WARN_RENAME_PAGE" in str(raised.value)
    else:
        summary = RUNNERS[mode](task_id)
        assert summary["warning_keys"] == ["WARN_RENAME_PAGE"]
        warned = [e for e in logs if e.get("log_level") == "warning" and "WARN_RENAME_PAGE" in e["event"]]
        assert len(warned) == 1


@pytest.mark.parametrize("mode", MODES)
def test_timeout_is_airflow_sensor_timeout(sim: ConfluenceSimulator, connect: Any, mode: str) -> None:
    task_id = sim.add_task(TaskSpec(duration=60))

    started = time.monotonic()
    with pytest.raises(AirflowSensorTimeout):
        RUNNERS[mode](task_id, timeout=0.5, poke_interval=0.1)

    assert time.monotonic() - started < 3


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_stalled_clock_raises_long_task_stalled(sim: ConfluenceSimulator, connect: Any, mode: str) -> None:
    connect("datacenter")
    task_id = sim.add_task(TaskSpec(duration=0.2, outcome="failure", shape="datacenter", stop_at_percent=40))

    with pytest.raises(LongTaskStalled) as raised:
        RUNNERS[mode](task_id, stall_timeout=0.3)

    assert raised.value.error_keys == ("ERROR_COPY_PAGE",)
    assert "40%" in str(raised.value)


def test_stall_timeout_is_not_applied_in_reschedule_mode(sim: ConfluenceSimulator, connect: Any) -> None:
    """Documented: each reschedule is a new operator, so the clock is not tracked; `timeout` still ends it."""
    connect("datacenter")
    task_id = sim.add_task(TaskSpec(duration=0.1, outcome="failure", shape="datacenter", stop_at_percent=40))

    with pytest.raises(AirflowSensorTimeout):
        run_reschedule(task_id, stall_timeout=0.2, timeout=0.8, poke_interval=0.1)


@pytest.mark.parametrize("mode", MODES)
def test_bad_credentials_fail_with_an_auth_error(sim: ConfluenceSimulator, connect: Any, mode: str) -> None:
    connect(password=WRONG_CANARY)
    task_id = sim.add_task(TaskSpec(duration=0.2))

    with pytest.raises(ConfluenceAuthError) as raised:
        RUNNERS[mode](task_id)

    assert WRONG_CANARY not in str(raised.value)
    assert sim.stats.responses_by_status == {401: 1}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("grace", [0, 0.3], ids=["no-grace", "grace-outlasted"])
def test_404_past_the_grace_period_fails(
    sim: ConfluenceSimulator, connect: Any, mode: str, grace: float
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.1, not_found_for=30))

    started = time.monotonic()
    with pytest.raises(ConfluenceNotFoundError, match=task_id):
        RUNNERS[mode](task_id, not_found_grace_period=grace, timeout=5, poke_interval=0.1)

    # The grace window counts from the start of the wait, also across reschedules and the deferral.
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("mode", MODES)
def test_404_inside_the_grace_period_then_found_succeeds(
    sim: ConfluenceSimulator, connect: Any, mode: str
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.1, not_found_for=0.3))

    summary = RUNNERS[mode](task_id, not_found_grace_period=5)

    assert summary["successful"] is True
    assert sim.stats.responses_by_status[404] >= 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "bad_id", ["", " x", "../x", "a/b"], ids=["empty", "leading-space", "dot-dot", "slash"]
)
def test_bad_long_task_id_fails_before_any_request(
    sim: ConfluenceSimulator, connect: Any, mode: str, bad_id: str
) -> None:
    with pytest.raises(ConfluenceConfigError, match="long_task_id"):
        RUNNERS[mode](bad_id)

    assert sim.stats.total_requests == 0


# ---------------------------------------------------------------------------- deferrable mode
def test_deferrable_returns_at_once_for_a_task_that_already_ended(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0, additional_details=DETAILS))
    sensor = make_sensor(task_id, deferrable=True)

    summary = sensor.execute({})  # type: ignore[arg-type]  # no TaskDeferred

    assert summary["additional_details"] == DETAILS
    assert sim.stats.status_gets(task_id) == 1


def test_deferrable_defers_a_running_task_with_an_absolute_deadline(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    task_id = sim.add_task(TaskSpec(duration=60))
    sensor = make_sensor(
        task_id,
        deferrable=True,
        timeout=3600,
        poke_interval=7,
        not_found_grace_period=12,
        fail_on_warnings=True,
        stall_timeout=90,
        max_retries=3,
        confluence_conn_id="confluence_default",
    )

    before = time.time()
    with pytest.raises(TaskDeferred) as raised:
        sensor.execute({})  # type: ignore[arg-type]
    after = time.time()

    deferred = raised.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=3600)
    trigger = deferred.trigger
    assert isinstance(trigger, LongTaskTrigger)
    assert before + 3600 <= trigger.end_time <= after + 3600
    assert before <= trigger.started_at <= after
    _, kwargs = trigger.serialize()
    assert {k: kwargs[k] for k in ("long_task_id", "confluence_conn_id", "poll_interval")} == {
        "long_task_id": task_id,
        "confluence_conn_id": "confluence_default",
        "poll_interval": 7,
    }
    assert kwargs["not_found_grace"] == 12
    assert kwargs["warnings_fail"] is True
    assert kwargs["stall_timeout"] == 90
    assert kwargs["max_retries"] == 3
    for secret in SECRETS:
        assert secret not in json.dumps(kwargs)
    assert sim.stats.status_gets(task_id) == 1  # one check before deferring


@pytest.mark.parametrize(
    ("event", "expected", "message"),
    [
        pytest.param(
            {"status": "failure", "message": "Task 7 failed with ERROR_A, ERROR_B", "long_task_id": "7",
             "error_keys": ["ERROR_A", "ERROR_B"],
             "errors": [{"key": "ERROR_A", "translation": "A broke", "args": ["x"]}], "stalled": False},
            LongTaskFailed, "ERROR_A, ERROR_B", id="failure",
        ),
        pytest.param(
            {"status": "failure", "message": "Task 7 stopped at 40%", "error_keys": [], "stalled": True},
            LongTaskStalled, "stopped at 40%", id="stalled",
        ),
        pytest.param(
            {"status": "timeout", "message": "Task 7 did not finish before the sensor's timeout"},
            AirflowSensorTimeout, "did not finish", id="timeout",
        ),
        pytest.param(
            {"status": "error", "message": "Confluence rejected the credentials",
             "error_type": "ConfluenceAuthError"},
            ConfluenceAuthError, "rejected the credentials", id="error-auth",
        ),
        pytest.param(
            {"status": "error", "message": "No task 7 (404)", "error_type": "ConfluenceNotFoundError"},
            ConfluenceNotFoundError, "No task 7", id="error-not-found",
        ),
        pytest.param(
            {"status": "error", "message": "boom", "error_type": "SystemExit"},
            ConfluenceError, "boom", id="error-garbage-type",
        ),
        pytest.param(
            {"status": "error", "message": "boom", "error_type": "LongTaskFailed"},
            ConfluenceError, "boom", id="error-type-outside-the-api-errors",
        ),
        pytest.param(
            {"status": "exploded", "message": "?"}, ConfluenceError, "unknown event status 'exploded'",
            id="unknown-status",
        ),
        pytest.param(None, ConfluenceError, "no usable event", id="none"),
        pytest.param({"message": "no status"}, ConfluenceError, "no usable event", id="no-status"),
    ],
)  # fmt: skip
def test_execute_complete_turns_events_into_exceptions(
    event: dict[str, Any] | None, expected: type[BaseException], message: str
) -> None:
    sensor = make_sensor("7", deferrable=True)

    with pytest.raises(expected, match=message) as raised:
        sensor.execute_complete({}, event)  # type: ignore[arg-type]

    assert type(raised.value) is expected  # the named class itself, not only a parent
    if expected is LongTaskFailed:
        assert raised.value.error_keys == ("ERROR_A", "ERROR_B")
        assert raised.value.task_id == "7"
        assert raised.value.errors[0].args == ("x",)


def test_execute_complete_returns_the_summary_on_success() -> None:
    summary = {"id": "7", "successful": True, "warning_keys": [], "additional_details": DETAILS}

    result = make_sensor("7", deferrable=True).execute_complete(
        {},  # type: ignore[arg-type]
        {"status": "success", "message": "Task 7 succeeded", "task": summary},
    )

    assert result == summary


@pytest.mark.parametrize("value", ["true", "false"])
def test_deferrable_defaults_to_operators_default_deferrable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    assert LongTaskSensor(task_id="t", long_task_id="1").deferrable is conf.getboolean(
        "operators", "default_deferrable", fallback=False
    )
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", value)
    # The default is read when the module is imported: load a private copy under the new setting.
    spec = importlib.util.spec_from_file_location("_sensor_copy", sensor_module.__file__)
    assert spec is not None
    assert spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)

    assert copy.LongTaskSensor(task_id="t", long_task_id="1").deferrable is (value == "true")


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max_retries": 51}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"not_found_grace_period": -1}, "not_found_grace_period"),
        ({"stall_timeout": 0}, "stall_timeout"),
        ({"min_poke_interval": 0}, "min_poke_interval"),
    ],
    ids=["retries-too-many", "retries-bool", "negative-grace", "zero-stall", "zero-min-interval"],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make_sensor("1", **kwargs)


# ---------------------------------------------------------------------------- soft_fail
@pytest.mark.parametrize("flag", ["soft_fail", "never_fail"])
@pytest.mark.parametrize(
    ("mode", "duration"),
    [("poke", 0.0), ("reschedule", 0.0), ("deferrable", 0.3), ("deferrable", 0.0)],
    ids=["poke", "reschedule", "deferrable-failed-while-deferred", "deferrable-failed-before-deferring"],
)
def test_a_failed_task_is_skipped_with_soft_fail_or_never_fail_in_every_mode(
    sim: ConfluenceSimulator, connect: Any, mode: str, duration: float, flag: str
) -> None:
    task_id = sim.add_task(TaskSpec(duration=duration, outcome="failure"))

    with pytest.raises(AirflowSkipException) as raised:
        RUNNERS[mode](task_id, **{flag: True})

    assert isinstance(raised.value.__cause__, LongTaskFailed)


@pytest.mark.parametrize("mode", MODES)
def test_soft_fail_does_not_hide_bad_credentials(sim: ConfluenceSimulator, connect: Any, mode: str) -> None:
    connect(password=WRONG_CANARY)
    task_id = sim.add_task(TaskSpec(duration=0.2))

    with pytest.raises(ConfluenceAuthError):
        RUNNERS[mode](task_id, soft_fail=True)


def test_soft_fail_does_not_skip_an_auth_error_event() -> None:
    """An error event after deferral is re-raised as itself, so soft_fail does not turn it into a skip."""
    event = {"status": "error", "message": "401", "error_type": "ConfluenceAuthError"}

    with pytest.raises(ConfluenceAuthError):
        make_sensor("7", deferrable=True, soft_fail=True).resume_execution(
            "execute_complete",
            {"event": event},
            {},  # type: ignore[arg-type]
        )


# ---------------------------------------------------------------------------- through a real Airflow
@pytest.fixture
def dags(airflow_db: Path) -> ModuleType:
    return load_dags()


@pytest.mark.e2e
def test_long_task_id_renders_from_xcom_and_the_summary_reaches_downstream(
    sim: ConfluenceSimulator, connect: Any, dags: ModuleType, capfd: pytest.CaptureFixture[str]
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.4, start_on_first_poll=True, additional_details=DETAILS))

    run = dags.xcom_dag.test(run_conf={"long_task_id": task_id})

    out = capfd.readouterr()
    log = out.out + out.err
    assert states(run) == {"pick": "success", "wait": "success", "report": "success"}
    assert f"REPORT id={task_id} url={DETAILS['destinationUrl']}" in log
    assert sim.stats.status_gets(task_id) >= 2
    assert sim.stats.requests_by_task.keys() == {task_id}  # the rendered id, never the template text
    for secret in SECRETS:
        assert secret not in log


@pytest.mark.e2e
def test_reschedule_mode_renders_params_and_succeeds(
    sim: ConfluenceSimulator, connect: Any, dags: ModuleType, capfd: pytest.CaptureFixture[str]
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.5, start_on_first_poll=True))

    run = dags.reschedule_dag.test(run_conf={"long_task_id": task_id})

    log = "".join(capfd.readouterr())
    assert states(run) == {"wait": "success"}
    assert sim.stats.status_gets(task_id) >= 2  # at least one reschedule
    assert sim.stats.requests_by_task.keys() == {task_id}
    for secret in SECRETS:
        assert secret not in log


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_soft_fail_gives_the_same_state_in_a_dag_run(
    sim: ConfluenceSimulator, connect: Any, dags: ModuleType, mode: str
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0, outcome="failure"))

    run = getattr(dags, f"confluence_sensor_soft_fail_{mode}").test(run_conf={"long_task_id": task_id})

    assert states(run) == {"wait": "skipped"}
