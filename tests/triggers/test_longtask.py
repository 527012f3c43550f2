"""``LongTaskTrigger.run()`` against the simulator: one event per wait, for every outcome and trouble."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_provider_confluence.hooks import confluence as hook_module
from airflow_provider_confluence.testing import ConfluenceSimulator, Fault, TaskSpec
from airflow_provider_confluence.triggers.longtask import LongTaskTrigger
from tests.helpers import import_string, logs_without

# A garbage-collected aiohttp session that was never closed must fail the test, not just warn.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")

CANARY = "CANARY-trigger-token-5b7e21"
WRONG_CANARY = "CANARY-wrong-token-0c4d99"
EMAIL = "demo@example.com"
SECRETS = (
    CANARY,
    WRONG_CANARY,
    base64.b64encode(f"{EMAIL}:{CANARY}".encode()).decode(),
    base64.b64encode(f"{EMAIL}:{WRONG_CANARY}".encode()).decode(),
)
POLL = 0.05


# ---------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def sim() -> Iterator[ConfluenceSimulator]:
    with ConfluenceSimulator(email=EMAIL, api_token=CANARY, shutdown_timeout=0.2) as simulator:
        yield simulator


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch, sim: ConfluenceSimulator) -> Callable[..., None]:
    """Point ``confluence_default`` at the simulator, optionally changing fields or extras."""

    def connect(deployment: str = "cloud", *, extra: dict[str, Any] | None = None, **fields: Any) -> None:
        conn = json.loads(sim.airflow_connection(deployment=deployment))
        conn.update(fields)
        conn["extra"].update(extra or {})
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", json.dumps(conn))

    connect()
    return connect


@pytest.fixture(autouse=True)
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """What the trigger and its hook logged (structlog); no secret may appear in any of it."""
    with logs_without(caplog, SECRETS) as captured:
        yield captured


@pytest.fixture(autouse=True)
def pool_left_empty() -> Iterator[None]:
    """Every test gives back every pooled aiohttp session."""
    yield
    assert len(hook_module._POOL) == 0, "a trigger kept a pooled aiohttp session"


@pytest.fixture(autouse=True, scope="module")
def no_session_left_to_the_garbage_collector() -> Iterator[None]:
    yield
    gc.collect()  # an unclosed session found now fails the module's last test (see pytestmark)


def make(task_id: str, **kwargs: Any) -> LongTaskTrigger:
    kwargs.setdefault("poll_interval", POLL)
    return LongTaskTrigger(long_task_id=task_id, **kwargs)


async def collect(trigger: LongTaskTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


async def fire(trigger: LongTaskTrigger, *, within: float = 20.0) -> dict[str, Any]:
    """Run the trigger to its end; it must fire exactly one event."""
    events = await asyncio.wait_for(collect(trigger), within)
    assert len(events) == 1, events
    payload: dict[str, Any] = events[0]
    return payload


async def wait_until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def spy_sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every aiohttp session the shared pool hands out (a spy: the real pool still does the work)."""
    handed_out: list[Any] = []
    acquire = hook_module._POOL.acquire

    async def spy(settings: Any) -> Any:
        session = await acquire(settings)
        handed_out.append(session)
        return session

    monkeypatch.setattr(hook_module._POOL, "acquire", spy)
    return handed_out


def progress_lines(logs: list[dict[str, Any]], task_id: str) -> list[str]:
    prefix = f"Confluence task {task_id} ("
    return [e["event"] for e in logs if e.get("log_level") == "info" and str(e["event"]).startswith(prefix)]


def assert_json_primitives(value: Any, where: str = "value") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{where} has a non-string key {key!r}"
            assert_json_primitives(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_json_primitives(item, f"{where}[{index}]")
    else:
        assert value is None or type(value) in (str, int, float, bool), f"{where} is {type(value).__name__}"


# ---------------------------------------------------------------------------- outcomes
async def test_success_event_carries_the_summary_with_additional_details(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    task_id = sim.add_task(
        TaskSpec(duration=0.3, additional_details={"destinationUrl": "https://example.test/export.zip"})
    )

    event = await fire(make(task_id))

    assert event["status"] == "success"
    assert event["long_task_id"] == task_id
    assert task_id in event["message"]
    summary = event["task"]
    assert summary["id"] == task_id
    assert summary["finished"] is True
    assert summary["successful"] is True
    assert summary["percentage_complete"] == 100
    assert summary["additional_details"] == {"destinationUrl": "https://example.test/export.zip"}
    assert_json_primitives(event, "event")
    json.dumps(event)


@pytest.mark.parametrize("placement", ["errors", "messages", "translation"])
async def test_failure_event_names_every_error_key_with_translation_and_args(
    sim: ConfluenceSimulator, connect: Any, placement: str
) -> None:
    task_id = sim.add_task(
        TaskSpec(
            duration=0.2,
            outcome="failure",
            error_keys=("ERROR_LOCK_FAILED", "ERROR_RELINK"),
            error_args=("DOCS",),
            key_placement=placement,
        )
    )

    event = await fire(make(task_id))

    assert event["status"] == "failure"
    assert event["stalled"] is False
    assert event["long_task_id"] == task_id
    assert event["error_keys"] == ["ERROR_LOCK_FAILED", "ERROR_RELINK"]
    assert [(e["key"], e["args"]) for e in event["errors"]] == [
        ("ERROR_LOCK_FAILED", ["DOCS"]),
        ("ERROR_RELINK", ["DOCS"]),
    ]
    assert "Could not get the lock on the destination space 'DOCS'" in event["errors"][0]["translation"]
    assert "Could not relink the pages and attachments of 'DOCS'" in event["errors"][1]["translation"]
    message = event["message"]
    for needle in (task_id, "Copy page hierarchy", "ERROR_LOCK_FAILED", "ERROR_RELINK", "DOCS"):
        assert needle in message
    assert event["task"]["successful"] is False
    assert_json_primitives(event, "event")


@pytest.mark.parametrize(
    ("warnings_fail", "expected"),
    [(False, "success"), (True, "failure")],
    ids=["warnings-logged-success", "warnings-fail-opt-in"],
)
async def test_warnings_only(
    sim: ConfluenceSimulator, connect: Any, warnings_fail: bool, expected: str
) -> None:
    task_id = sim.add_task(
        TaskSpec(duration=0.2, outcome="warnings", warning_keys=("WARN_RENAME_PAGE",), error_args=("Home",))
    )

    event = await fire(make(task_id, warnings_fail=warnings_fail))

    assert event["status"] == expected
    if expected == "success":
        assert event["task"]["warning_keys"] == ["WARN_RENAME_PAGE"]
        assert event["task"]["error_keys"] == []
    else:
        assert event["error_keys"] == ["WARN_RENAME_PAGE"]
        assert "WARN_RENAME_PAGE" in event["message"]
        assert "Home" in event["message"]


@pytest.mark.parametrize(
    ("outcome", "expected"), [("success", "success"), ("failure", "failure")], ids=["succeeds", "fails"]
)
async def test_data_center_shape_without_finished(
    sim: ConfluenceSimulator, connect: Any, outcome: str, expected: str
) -> None:
    connect("datacenter")
    task_id = sim.add_task(TaskSpec(duration=0.3, shape="datacenter", outcome=outcome))

    event = await fire(make(task_id))

    assert event["status"] == expected
    summary = event["task"]
    assert summary["percentage_complete"] == 100
    assert summary["finished"] is True  # done by percentage: the body has no `finished`
    if expected == "failure":
        assert event["error_keys"] == ["ERROR_COPY_PAGE"]


async def test_stalled_clock_is_a_failure_with_stalled_flag(sim: ConfluenceSimulator, connect: Any) -> None:
    connect("datacenter")
    task_id = sim.add_task(TaskSpec(duration=0.2, outcome="failure", shape="datacenter", stop_at_percent=40))

    started = time.monotonic()
    event = await fire(make(task_id, stall_timeout=0.3))

    assert event["status"] == "failure"
    assert event["stalled"] is True
    assert event["error_keys"] == ["ERROR_COPY_PAGE"]
    assert "40%" in event["message"]
    assert event["task"]["percentage_complete"] == 40
    assert time.monotonic() - started < 3


async def test_stalled_clock_without_stall_timeout_waits_for_the_deadline(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    connect("datacenter")
    task_id = sim.add_task(TaskSpec(duration=0.1, outcome="failure", shape="datacenter", stop_at_percent=40))

    event = await fire(make(task_id, stall_timeout=None, end_time=time.time() + 0.6))

    assert event["status"] == "timeout"
    assert event["task"]["percentage_complete"] == 40


# ---------------------------------------------------------------------------- permanent trouble
async def test_401_is_an_error_event_without_the_token(sim: ConfluenceSimulator, connect: Any) -> None:
    connect(password=WRONG_CANARY)
    task_id = sim.add_task(TaskSpec(duration=0.2))

    event = await fire(make(task_id))

    assert event["status"] == "error"
    assert event["error_type"] == "ConfluenceAuthError"
    assert "401" in event["message"]
    assert "confluence_default" in event["message"]
    assert WRONG_CANARY not in json.dumps(event)
    assert sim.stats.responses_by_status == {401: 1}  # not retried


@pytest.mark.parametrize(
    "spec",
    [None, TaskSpec(duration=0.2, not_found_for=30.0)],
    ids=["unknown-id", "404-outlasting-the-grace-window"],
)
async def test_404_past_the_grace_window_is_an_error(
    sim: ConfluenceSimulator, connect: Any, spec: TaskSpec | None
) -> None:
    task_id = sim.add_task(spec) if spec else "999999"

    event = await fire(make(task_id, not_found_grace=0.3))

    assert event["status"] == "error"
    assert event["error_type"] == "ConfluenceNotFoundError"
    assert task_id in event["message"]
    assert sim.status_url(task_id) in event["message"]
    assert sim.stats.status_gets(task_id) >= 2  # it did wait through the grace window


async def test_404_inside_the_grace_window_then_found_succeeds(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.2, not_found_for=0.4))

    event = await fire(make(task_id, not_found_grace=5.0))

    assert event["status"] == "success"
    assert sim.stats.responses_by_status[404] >= 2
    assert sim.stats.responses_by_status[200] >= 1


async def test_html_login_page_is_an_auth_error_with_a_short_excerpt(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.2))
    sim.inject(Fault("html", task_id=task_id))

    event = await fire(make(task_id))

    assert event["status"] == "error"
    assert event["error_type"] == "ConfluenceAuthError"
    assert "HTML" in event["message"]
    assert "Log in to continue" in event["message"]
    assert "<" not in event["message"]
    assert "form-login" not in event["message"]
    assert len(event["message"]) < 600
    assert sim.stats.status_gets(task_id) == 1


async def test_bad_task_id_is_an_error_before_any_request(sim: ConfluenceSimulator, connect: Any) -> None:
    event = await fire(make("../1180606"))

    assert event["status"] == "error"
    assert event["error_type"] == "ConfluenceConfigError"
    assert sim.stats.total_requests == 0


# ---------------------------------------------------------------------------- transient trouble
@pytest.mark.parametrize(
    "fault",
    [Fault("429", times=2, retry_after="0"), Fault("503", times=2, retry_after="0.1")],
    ids=["429-retry-after-0", "503-retry-after-0.1"],
)
async def test_rate_limits_honour_retry_after_then_succeed(
    sim: ConfluenceSimulator, connect: Any, logs: list[dict[str, Any]], fault: Fault
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.1))
    sim.inject(fault)

    started = time.monotonic()
    event = await fire(make(task_id))

    assert event["status"] == "success"
    assert sim.stats.responses_by_status[int(fault.kind)] == 2
    # Retry-After (0 / 0.1 s) was honoured, not the exponential backoff (about 1 s, then 2 s).
    assert time.monotonic() - started < 0.9
    retries = [e["event"] for e in logs if e.get("log_level") == "warning" and "Retry" in str(e["event"])]
    assert len(retries) == 2


async def test_500s_until_retries_are_spent_is_an_error(sim: ConfluenceSimulator, connect: Any) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.1))
    sim.inject(Fault("500", times=50, task_id=task_id))

    event = await fire(make(task_id, max_retries=1))

    assert event["status"] == "error"
    assert event["error_type"] == "ConfluenceTransientError"
    assert "500" in event["message"]
    assert sim.stats.status_gets(task_id) == 2  # the first try and one retry: nothing retries forever


async def test_retries_that_do_not_fit_before_the_deadline_end_in_a_timeout(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    task_id = sim.add_task(TaskSpec(duration=60))
    sim.inject(Fault("500", times=50, task_id=task_id))
    end_time = time.time() + 0.5  # the first backoff (about 1 s) would pass it

    event = await fire(make(task_id, end_time=end_time, max_retries=5))

    assert event["status"] == "timeout"
    assert end_time <= time.time() < end_time + 0.4
    assert sim.stats.status_gets(task_id) == 1


async def test_reset_connection_is_retried_then_succeeds(sim: ConfluenceSimulator, connect: Any) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.1))
    # aiohttp itself resends an idempotent request once after a drop: two resets reach the retry policy.
    sim.inject(Fault("reset", times=2, task_id=task_id))

    event = await fire(make(task_id, max_retries=2))

    assert event["status"] == "success"
    assert sim.stats.faults_by_kind["reset"] == 2


# ---------------------------------------------------------------------------- deadlines
async def test_end_time_in_the_past_times_out_at_once_without_a_request(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    task_id = sim.add_task(TaskSpec(duration=60))

    started = time.monotonic()
    event = await fire(make(task_id, end_time=time.time() - 1))

    assert time.monotonic() - started < 0.5
    assert event["status"] == "timeout"
    assert event["task"] is None
    assert "never seen" in event["message"]
    assert sim.stats.total_requests == 0


async def test_near_end_time_fires_timeout_on_time_even_with_a_long_poll_interval(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    task_id = sim.add_task(TaskSpec(duration=60))
    end_time = time.time() + 0.6

    event = await fire(make(task_id, end_time=end_time, poll_interval=30))

    assert event["status"] == "timeout"
    assert end_time <= time.time() < end_time + 0.4
    assert task_id in event["message"]
    assert "did not finish before the sensor's timeout" in event["message"]
    assert event["task"]["id"] == task_id  # the last status seen
    assert event["task"]["finished"] is False


async def test_slow_answer_does_not_delay_the_timeout_past_end_time(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    """A Confluence that hangs near the deadline must not hold the timeout back (extra timeout: 30 s)."""
    task_id = sim.add_task(TaskSpec(duration=60))
    sim.inject(Fault("slow", delay=2.5, after=1, task_id=task_id))
    end_time = time.time() + 0.5

    event = await fire(make(task_id, end_time=end_time, poll_interval=0.1))

    assert event["status"] == "timeout"
    assert time.time() < end_time + 0.5, f"the timeout event came {time.time() - end_time:.1f} s late"


async def test_rebuilt_trigger_keeps_the_original_end_time(sim: ConfluenceSimulator, connect: Any) -> None:
    task_id = sim.add_task(TaskSpec(duration=60))
    original = make(task_id, end_time=time.time() + 0.8, poll_interval=0.1)
    classpath, kwargs = original.serialize()

    running = asyncio.create_task(collect(original))
    await asyncio.sleep(0.35)
    running.cancel()  # the triggerer goes away mid-wait
    with pytest.raises(asyncio.CancelledError):
        await running
    rebuilt = import_string(classpath)(**json.loads(json.dumps(kwargs)))

    assert rebuilt.end_time == original.end_time
    assert rebuilt.started_at == original.started_at
    event = await fire(rebuilt)
    assert event["status"] == "timeout"
    # It fired at the original deadline, not 0.8 s after it was rebuilt.
    assert abs(time.time() - kwargs["end_time"]) < 0.3


# ---------------------------------------------------------------------------- serialisation
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {
            "confluence_conn_id": "confluence_other",
            "poll_interval": 7,
            "end_time": 1_900_000_000.5,
            "started_at": 1_899_990_000.25,
            "not_found_grace": 12,
            "warnings_fail": True,
            "stall_timeout": None,
            "adaptive_polling": True,
            "min_poll_interval": 2,
            "max_poll_interval": 90,
            "max_retries": 3,
        },
    ],
    ids=["defaults", "every-argument"],
)
def test_serialize_round_trips_through_json(kwargs: dict[str, Any]) -> None:
    trigger = LongTaskTrigger(long_task_id="1180606", **kwargs)

    classpath, serialized = trigger.serialize()
    text = json.dumps([classpath, serialized])
    classpath_back, kwargs_back = json.loads(text)
    rebuilt = import_string(classpath_back)(**kwargs_back)

    assert classpath == "airflow_provider_confluence.triggers.longtask.LongTaskTrigger"
    assert isinstance(rebuilt, LongTaskTrigger)
    assert rebuilt.serialize() == (classpath, serialized)
    assert_json_primitives(serialized, "kwargs")
    for name, value in kwargs.items():
        assert serialized[name] == value
    assert CANARY not in text


def test_serialize_holds_no_token_even_with_the_connection_set(connect: Any) -> None:
    _, kwargs = make("1180606", end_time=time.time() + 60).serialize()

    text = json.dumps(kwargs)
    for secret in SECRETS:
        assert secret not in text
    assert set(kwargs) >= {"long_task_id", "confluence_conn_id", "end_time", "started_at"}


# ---------------------------------------------------------------------------- several triggers
async def test_two_triggers_on_the_same_task_end_with_the_same_event(
    sim: ConfluenceSimulator, connect: Any
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.4, outcome="failure", error_keys=("ERROR_RELINK",)))

    first, second = await asyncio.gather(fire(make(task_id)), fire(make(task_id, poll_interval=0.07)))

    assert first["status"] == "failure"
    assert first == second


async def test_fifty_triggers_share_one_aiohttp_session(
    sim: ConfluenceSimulator, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = spy_sessions(monkeypatch)
    task_ids = [sim.add_task(TaskSpec(duration=0.8)) for _ in range(50)]

    running = asyncio.gather(*(fire(make(task_id, poll_interval=0.1)) for task_id in task_ids))
    await wait_until(lambda: len(sessions) == 50)
    assert len(hook_module._POOL) == 1
    assert len({id(session) for session in sessions}) == 1
    events = await running

    assert [event["status"] for event in events] == ["success"] * 50
    assert len(hook_module._POOL) == 0
    assert sessions[0].closed


# ---------------------------------------------------------------------------- cancellation
@pytest.mark.parametrize(
    ("poll_interval", "fault"),
    [(5.0, None), (0.05, Fault("slow", delay=2.0, after=1))],
    ids=["while-sleeping", "while-a-request-is-in-flight"],
)
async def test_cancelled_trigger_stops_and_gives_back_its_session(
    sim: ConfluenceSimulator,
    connect: Any,
    monkeypatch: pytest.MonkeyPatch,
    poll_interval: float,
    fault: Fault | None,
) -> None:
    sessions = spy_sessions(monkeypatch)
    task_id = sim.add_task(TaskSpec(duration=60))
    if fault is not None:
        sim.inject(fault)

    running = asyncio.create_task(collect(make(task_id, poll_interval=poll_interval)))
    await wait_until(lambda: sim.stats.status_gets(task_id) >= (2 if fault else 1))
    await asyncio.sleep(0.05)
    assert len(hook_module._POOL) == 1
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    gets = sim.stats.status_gets(task_id)
    await asyncio.sleep(0.3)

    assert sim.stats.status_gets(task_id) == gets  # it stopped polling
    assert len(hook_module._POOL) == 0
    assert len(sessions) == 1
    assert sessions[0].closed
    del sessions[:], running
    gc.collect()  # nothing unclosed is left for the collector (an unraisable warning fails the test)
    assert set(sim.stats.requests_by_kind) == {"status"}  # only status GETs, nothing started or changed


# ---------------------------------------------------------------------------- logging and secrets
async def test_progress_is_logged_on_change_not_per_poll(
    sim: ConfluenceSimulator, connect: Any, logs: list[dict[str, Any]]
) -> None:
    task_id = sim.add_task(TaskSpec(duration=0.6, curve="stepped"))  # 0, 25, 50, 75, 100 %

    event = await fire(make(task_id, poll_interval=0.03))

    assert event["status"] == "success"
    lines = progress_lines(logs, task_id)
    polls = sim.stats.status_gets(task_id)
    assert polls >= 10
    assert 2 <= len(lines) <= 5, lines
    assert len(set(lines)) == len(lines)
    assert "100%" in lines[-1]


@pytest.mark.parametrize(
    "scenario", ["success", "failure", "401", "html", "timeout"], ids=lambda s: f"scenario-{s}"
)
async def test_the_token_is_in_no_event_and_no_serialized_trigger(
    sim: ConfluenceSimulator, connect: Any, logs: list[dict[str, Any]], scenario: str
) -> None:
    outcome = "failure" if scenario == "failure" else "success"
    task_id = sim.add_task(TaskSpec(duration=0.1, outcome=outcome))
    if scenario == "401":
        connect(password=WRONG_CANARY)
    if scenario == "html":
        sim.inject(Fault("html"))
    end_time = time.time() + (0.05 if scenario == "timeout" else 30)
    trigger = make(task_id, end_time=end_time)

    event = await fire(trigger)

    text = json.dumps([event, trigger.serialize(), repr(trigger)])
    for secret in SECRETS:
        assert secret not in text
    assert logs, "the trigger logged nothing: the log check would prove nothing"


@pytest.mark.parametrize("handed_over", [True, False], ids=["sensor-logged-0%", "nothing-logged-yet"])
async def test_progress_the_sensor_logged_is_not_logged_again(
    sim: ConfluenceSimulator, connect: Any, logs: list[dict[str, Any]], handed_over: bool
) -> None:
    task_id = sim.add_task(TaskSpec(duration=2.0, curve="stepped", start_on_first_poll=True))  # 0 % for 0.5 s
    status = json.loads(requests_status(sim, task_id))["status"]  # the sensor's check before deferring
    logs.clear()

    event = await fire(
        make(task_id, poll_interval=0.03, logged_progress=[0, status] if handed_over else None)
    )

    assert event["status"] == "success"
    zero_lines = [line for line in progress_lines(logs, task_id) if ": 0% after" in line]
    assert len(zero_lines) == (0 if handed_over else 1), progress_lines(logs, task_id)


def requests_status(sim: ConfluenceSimulator, task_id: str) -> str:
    response = requests.get(sim.status_url(task_id), auth=(sim.email, sim.api_token), timeout=5)
    response.raise_for_status()
    return response.text
