"""
Fault-injection soak of ``LongTaskTrigger`` against the simulator, and focused trigger tests.

The soak (``-m soak``; ``make soak``, also part of ``make test``) runs a few hundred long tasks through
``LongTaskTrigger.run()`` at once, on one event loop as a triggerer would, against an in-process simulator
that injects random faults into a quarter of the status answers (429 and 503 with ``Retry-After``, 500, 502,
504, reset connections, slow answers) plus targeted ones (Retry-After as an HTTP date, in the past,
negative, garbage; client timeouts; double resets; HTML login pages on a small group of their own).
Every task's outcome is decided before the run and checked after it; the token of the connection is
a canary that must appear in no log record, event, serialized trigger or exception. The figures go to
stdout and, under ``make soak``, to ``RELIABILITY.md``.

HTML is a permanent error by design (a login page means a wrong URL or wrong credentials), so the
random fault mix leaves it out; a separate group of tasks gets one HTML page each and must end with an
``error`` event that names the HTML page.

The focused tests below it (not marked ``soak``, a few seconds each) cover what
``tests/triggers/test_longtask.py`` does not: a trigger rebuilt from ``serialize()`` mid-wait resumes to
its end with the original ``end_time`` and 404 grace window; two copies of a trigger under faults fire the
same event; an absurd ``Retry-After`` is capped and never sleeps past ``end_time``; garbage or negative
ones neither crash nor stall; and connections that share the pooled aiohttp session share no cookies.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import importlib
import json
import math
import os
import platform
import random
import re
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import airflow
import pytest
from aiohttp import web

from airflow_provider_confluence import core
from airflow_provider_confluence.hooks import confluence as hook_module
from airflow_provider_confluence.hooks.confluence import ConfluenceHook
from airflow_provider_confluence.testing import ConfluenceSimulator, Fault, TaskSpec
from airflow_provider_confluence.triggers.longtask import LongTaskTrigger
from tests.soak_support import (
    CANARY,
    CANARY_B64,
    EMAIL,
    CapturedLogs,
    Evidence,
    capture_all_logs,
    markdown_table,
    retry_waits,
    spread,
)

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "RELIABILITY.md"
COMMAND = ".venv/bin/python -m pytest tests/test_soak.py -m soak -s -q"

# ---------------------------------------------------------------------------- soak configuration
SEED = 20250917
#: Share of status GETs that get a random fault (the brief asks for at least 20 %).
FAULT_RATE = 0.25
#: The random mix (repeats weigh a kind). No "html": a login page is permanent by design (own group).
RANDOM_KINDS = ("429", "429", "503", "503", "500", "502", "504", "reset", "slow", "slow", "slow")
#: Share of random faults that fail an attempt (a slow answer still answers).
FAILING_SHARE = sum(1 for kind in RANDOM_KINDS if kind != "slow") / len(RANDOM_KINDS)
#: Wait of a random "slow" answer (answered normally afterwards).
SLOW_DELAY = 0.5
#: The connection's per-request timeout (extra ``timeout``); targeted slow faults outlast it.
CLIENT_TIMEOUT = 3.0
TIMEOUT_FAULT_DELAY = 4.0
#: Expected retry-budget exhaustions per soak that we accept when sizing ``max_retries``.
EXHAUSTION_BUDGET = 1e-3
#: Every trigger's deadline: generous, no task should come near it.
END_TIME_AFTER = 150.0
#: Retry-After values sent by targeted 429/503 faults; each is the first status answer of its task.
#: ``None`` marks a value computed at injection time (an HTTP date 3 s ahead).
RETRY_AFTER_VALUES: tuple[tuple[str, str | None], ...] = (
    ("http-date +3 s", None),
    ("http-date in the past", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ("garbage 'soon'", "soon"),
    ("negative '-5'", "-5"),
    ("'NaN'", "NaN"),
    ("overflow '1e400'", "1e400"),
    ("empty ''", ""),
    ("bad date (year 99999)", "Wed, 21 Oct 99999 07:28:00 GMT"),
    ("hex '0x10'", "0x10"),
)
#: Longest first retry wait allowed after each special value: a date honoured (<= 3 s, + rounding), the
#: past as 0, anything else ignored in favour of the first backoff step (1 s +- 30 % jitter).
FIRST_BACKOFF_MAX = core.RetryPolicy().backoff_base * (1 + core.RetryPolicy().jitter)
DATE_AHEAD = 3.0

GROUPS: tuple[tuple[str, int], ...] = (
    ("success", 50),
    ("success-details", 20),
    ("failure-errors", 25),
    ("failure-messages", 20),
    ("failure-translation", 20),
    ("warnings", 20),
    ("warnings-fatal", 10),
    ("dc-success", 25),
    ("dc-failure", 25),
    ("dc-stopped-clock", 10),
    ("late-visible", 15),
)
HTML_TASKS = 12
MISSING_TASKS = 4

ERROR_KEY_SETS = (
    ("ERROR_COPY_PAGE",),
    ("ERROR_LOCK_FAILED", "ERROR_RELINK"),
    ("ERROR_UNKNOWN",),
    ("ERROR_SOAK_CUSTOM_KEY",),
)
WARNING_KEY_SETS = (
    ("WARN_RENAME_PAGE",),
    ("WARN_IGNORE_COPY_PERMISSION", "WARN_IGNORE_VIEW_RESTRICTED"),
    ("WARN_IGNORE_COPY_ATTACHMENT",),
)
PLACEMENTS = ("errors", "messages", "translation")
CURVES = ("linear", "stepped", "stall")


@dataclass(frozen=True)
class Expected:
    """The one event a trigger must fire, decided before the run."""

    status: str
    error_keys: tuple[str, ...] = ()
    warning_keys: tuple[str, ...] = ()
    error_type: str | None = None
    stalled: bool = False
    message_parts: tuple[str, ...] = ()
    percent: int | None = None
    details: dict[str, Any] | None = None
    args: tuple[str, ...] = ()


@dataclass
class Planned:
    group: str
    spec: TaskSpec | None  # None: a task id the simulator does not know
    conn_id: str
    poll_interval: float
    options: dict[str, Any]
    expected: Expected
    faults: list[Fault] = field(default_factory=list)
    special: str | None = None  # label of the targeted Retry-After value
    task_id: str = ""
    # filled by the run
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    crash: BaseException | None = None
    started: float = 0.0


def _conn(sim: ConfluenceSimulator, deployment: str, auth_type: str) -> str:
    data = json.loads(sim.airflow_connection(deployment=deployment, auth_type=auth_type))
    data["extra"]["timeout"] = CLIENT_TIMEOUT
    return json.dumps(data)


def plan_soak(rng: random.Random) -> list[Planned]:
    """Every task of the soak, what it does, which faults it gets and which event it must end with."""
    planned: list[Planned] = []
    index = 0
    for group, count in GROUPS:
        for _ in range(count):
            planned.append(_plan_one(group, index, rng))
            index += 1
    for n in range(HTML_TASKS):
        spec = TaskSpec(duration=rng.uniform(4.0, 5.0), curve=rng.choice(CURVES))
        planned.append(
            Planned(
                group="html-login-page",
                spec=spec,
                conn_id="confluence_default" if n % 2 else "confluence_dc",
                poll_interval=rng.uniform(0.2, 0.5),
                options={},
                expected=Expected(
                    "error", error_type="ConfluenceAuthError", message_parts=("HTML page", "login")
                ),
                # after=0: the first answer is the page; after=1: the second (mid-wait: the task
                # runs >= 4 s, its second GET comes after <= 0.5 s or one retry).
                faults=[Fault("html", after=n % 2)],
            )
        )
    for n in range(MISSING_TASKS):
        planned.append(
            Planned(
                group="missing-404",
                spec=None,
                conn_id="confluence_default",
                poll_interval=0.3,
                options={"not_found_grace": 1.0},
                expected=Expected("error", error_type="ConfluenceNotFoundError", message_parts=("404",)),
                task_id=f"soak-missing-{n}",
            )
        )
    return planned


def _plan_one(group: str, index: int, rng: random.Random) -> Planned:
    duration = round(rng.uniform(0.5, 5.0), 2)
    poll = round(rng.uniform(0.2, 0.5), 2)
    curve = rng.choice(CURVES)
    first_poll = rng.random() < 0.3
    title = f"Soak page {index}"
    base: dict[str, Any] = {"curve": curve, "start_on_first_poll": first_poll}
    options: dict[str, Any] = {}
    conn = "confluence_default"
    faults: list[Fault] = []
    special = None
    if index % 5 == 0:  # a targeted Retry-After on the first status answer
        label, value = RETRY_AFTER_VALUES[(index // 5) % len(RETRY_AFTER_VALUES)]
        if value is None:
            value = "@date+3"  # resolved at injection
        kind = "429" if (index // 5) % 2 == 0 else "503"
        faults.append(Fault(kind, retry_after=value))
        special = label
        duration = max(duration, 2.0)
    elif index % 30 == 7:  # a client timeout (the answer comes after the connection's timeout)
        faults.append(Fault("slow", delay=TIMEOUT_FAULT_DELAY))
    elif index % 40 == 13:  # a reset that aiohttp's own single retry cannot hide
        faults.append(Fault("reset", times=2))

    if group in ("success", "success-details", "late-visible"):
        extra: dict[str, Any] = {}
        details: dict[str, Any] = {}
        if group == "success-details":
            details = {"destinationUrl": f"https://soak.example.invalid/pages/{index}", "spaceKey": "SOAK"}
            extra = {"additional_details": details, "pages": rng.choice([0, 7, 25])}
        if group == "late-visible":
            extra["not_found_for"] = round(rng.uniform(0.5, 1.5), 2)
            options["not_found_grace"] = 30.0
        spec = TaskSpec(duration=duration, outcome="success", **base, **extra)
        expected = Expected("success", details=details or None)
    elif group.startswith("failure-") or group == "dc-failure":
        keys = rng.choice(ERROR_KEY_SETS)
        placement = group.removeprefix("failure-") if group != "dc-failure" else rng.choice(PLACEMENTS)
        shape = "datacenter" if group == "dc-failure" else "cloud"
        conn = "confluence_dc" if shape == "datacenter" else conn
        spec = TaskSpec(
            duration=duration,
            outcome="failure",
            error_keys=keys,
            error_args=(title,),
            key_placement=placement,
            shape=shape,
            **base,
        )
        expected = Expected("failure", error_keys=keys, message_parts=keys, args=(title,))
    elif group in ("warnings", "warnings-fatal"):
        keys = rng.choice(WARNING_KEY_SETS)
        spec = TaskSpec(
            duration=duration,
            outcome="warnings",
            warning_keys=keys,
            error_args=(title,),
            key_placement=rng.choice(PLACEMENTS),
            **base,
        )
        if group == "warnings":
            expected = Expected("success", warning_keys=keys)
        else:
            options["warnings_fail"] = True
            expected = Expected(
                "failure", error_keys=keys, warning_keys=keys, message_parts=keys, args=(title,)
            )
    elif group == "dc-success":
        conn = "confluence_dc"
        spec = TaskSpec(duration=duration, outcome="success", shape="datacenter", **base)
        expected = Expected("success")
    elif group == "dc-stopped-clock":
        conn = "confluence_dc"
        keys = rng.choice(ERROR_KEY_SETS)
        stop = rng.randint(30, 90)
        spec = TaskSpec(
            duration=duration,
            outcome="failure",
            error_keys=keys,
            error_args=(title,),
            shape="datacenter",
            stop_at_percent=stop,
            **base,
        )
        options["stall_timeout"] = 1.0
        expected = Expected(
            "failure", error_keys=keys, stalled=True, percent=stop, message_parts=("stopped at", *keys)
        )
    else:  # pragma: no cover - a typo in GROUPS
        raise AssertionError(group)
    return Planned(group, spec, conn, poll, options, expected, faults, special)


def check_event(item: Planned) -> list[str]:
    """What is wrong with the task's events (empty when it ended exactly as planned)."""
    if item.crash is not None:
        return [f"run() raised {type(item.crash).__name__}: {item.crash}"]
    if len(item.events) != 1:
        return [f"{len(item.events)} events instead of one"]
    event = item.events[0][1]
    want = item.expected
    problems = []
    if event.get("status") != want.status:
        return [f"status {event.get('status')!r} instead of {want.status!r}: {event.get('message')}"]
    if event.get("long_task_id") != item.task_id:
        problems.append(f"long_task_id {event.get('long_task_id')!r}")
    message = str(event.get("message", ""))
    for part in want.message_parts:
        if part not in message:
            problems.append(f"message lacks {part!r}: {message}")
    task = event.get("task") or {}
    if want.status == "success":
        if not (task.get("successful") and task.get("finished") and task.get("percentage_complete") == 100):
            problems.append(f"summary is not a finished success: {task}")
        if tuple(task.get("warning_keys", ())) != want.warning_keys:
            problems.append(f"warning_keys {task.get('warning_keys')} instead of {list(want.warning_keys)}")
        if task.get("error_keys"):
            problems.append(f"error_keys on a success: {task.get('error_keys')}")
        if want.details is not None and task.get("additional_details") != want.details:
            problems.append(f"additional_details {task.get('additional_details')}")
    elif want.status == "failure":
        if item.task_id not in message:
            problems.append("failure message does not name the task id")
        if tuple(event.get("error_keys", ())) != want.error_keys:
            problems.append(f"error_keys {event.get('error_keys')} instead of {list(want.error_keys)}")
        if bool(event.get("stalled")) != want.stalled:
            problems.append(f"stalled is {event.get('stalled')}")
        errors = event.get("errors") or []
        if [e.get("key") for e in errors] != list(want.error_keys):
            problems.append(f"errors {errors}")
        if want.args and any(tuple(e.get("args", ())) != want.args for e in errors):
            problems.append(f"error args {[e.get('args') for e in errors]} instead of {list(want.args)}")
        if want.percent is not None and task.get("percentage_complete") != want.percent:
            problems.append(f"stopped at {task.get('percentage_complete')} instead of {want.percent}")
    elif want.status == "error" and event.get("error_type") != want.error_type:
        problems.append(f"error_type {event.get('error_type')} instead of {want.error_type}: {message}")
    return problems


def required_max_retries(fail_probability: float, polls: float, budget: float = EXHAUSTION_BUDGET) -> int:
    """Smallest ``max_retries`` m with ``polls * q**(m+1) <= budget``: one poll exhausts its retries
    only when its first attempt and all m retries fail, each independently with probability q."""
    needed = math.log(budget / polls) / math.log(fail_probability)
    return max(1, math.ceil(needed) - 1)


def _expected_polls(planned: list[Planned], fail_probability: float) -> float:
    polls = 0.0
    for item in planned:
        duration = item.spec.duration if item.spec else 1.0
        polls += duration / item.poll_interval + 2
    return polls / (1 - fail_probability)


def _inject_targeted(sim: ConfluenceSimulator, item: Planned) -> None:
    for fault in item.faults:
        retry_after = fault.retry_after
        if retry_after == "@date+3":
            retry_after = email.utils.formatdate(time.time() + DATE_AHEAD, usegmt=True)
        sim.inject(
            Fault(
                fault.kind,
                times=fault.times,
                task_id=item.task_id,
                after=fault.after,
                retry_after=retry_after,
                delay=fault.delay,
            )
        )


async def _drive(trigger: LongTaskTrigger, item: Planned, evidence: Evidence) -> None:
    item.started = time.time()
    try:
        async for event in trigger.run():
            item.events.append((time.time(), event.payload))
            evidence.add(f"event.{item.group}", event.payload)
            evidence.add("event.repr", repr(event))
    except Exception as error:  # a crash: recorded, and fails the soak
        item.crash = error
        evidence.add_exception("exception.run", error)


def _record_exceptions(monkeypatch: pytest.MonkeyPatch, evidence: Evidence, seen: Counter[str]) -> None:
    """Every exception the core raises or builds, and every one that leaves the hook, goes to evidence."""
    real_interpret = core.interpret
    real_transport_error = core._transport_error
    real_aget = ConfluenceHook.aget_long_task

    def interpret(response: Any, settings: Any, *, what: str = "request") -> Any:
        try:
            return real_interpret(response, settings, what=what)
        except Exception as error:
            seen[type(error).__name__] += 1
            evidence.add_exception("exception.interpret", error)
            raise

    def transport_error(failure: Any, settings: Any, what: str) -> Any:
        error = real_transport_error(failure, settings, what)
        seen[f"{type(error).__name__} ({failure.kind})"] += 1
        evidence.add_exception("exception.transport", error)
        return error

    async def aget_long_task(self: ConfluenceHook, task_id: str, *, deadline: float | None = None) -> Any:
        try:
            return await real_aget(self, task_id, deadline=deadline)
        except Exception as error:
            evidence.add_exception("exception.hook", error)
            raise

    monkeypatch.setattr(core, "interpret", interpret)
    monkeypatch.setattr(core, "_transport_error", transport_error)
    monkeypatch.setattr(ConfluenceHook, "aget_long_task", aget_long_task)


def _special_first_wait_bound(label: str) -> tuple[float, float]:
    """(min, max) of the first retry wait after the special Retry-After ``label``."""
    if label == "http-date +3 s":
        return 0.0, DATE_AHEAD + 0.5
    if label == "http-date in the past":
        return 0.0, 0.05
    if label.startswith("negative"):  # a negative delta is garbage (backoff) or "now" (0): never longer
        return 0.0, FIRST_BACKOFF_MAX + 0.05
    return (1 - core.RetryPolicy().jitter) - 0.05, FIRST_BACKOFF_MAX + 0.05


REPORT_INTRO = """\
# Reliability: fault-injection soak of LongTaskTrigger

Run `{command}` (or `make soak`) on {date},
Python {python}, Airflow {airflow}, aiohttp {aiohttp}, {cpus} CPU(s).
This file is written by `tests/test_soak.py` at every run of the soak.

## What runs

{tasks} long tasks, each waited on by its own `LongTaskTrigger.run()`, all on one event loop (as in a
triggerer), against the in-process `ConfluenceSimulator` (in its own thread). Task durations 0.5-5 s,
poll intervals 0.2-0.5 s, one deadline (`end_time`) {end_after:g} s ahead, two connections (Cloud with basic
auth, Data Center with a bearer token) that share one pooled aiohttp session. The token of both is the
canary `{canary}`.

- Random faults: `set_fault_rate({rate}, kinds, seed={seed})` on status GETs, kinds weighted {kinds};
  a random `slow` answers after {slow:g} s. The simulator sends `Retry-After: 1` with its random 429 and 503
  (`set_fault_rate` takes no Retry-After), so the other values come from targeted faults.
- Targeted faults: every fifth task gets a 429 or 503 as its first status answer, with a Retry-After of:
  {retry_after_values}. Some tasks get an answer slower than the connection's {client_timeout:g} s timeout,
  some a reset twice in a row (aiohttp silently resends a request once after a dropped keep-alive).
- HTML login pages are a permanent error by design, so the random mix leaves them out: {html} tasks of
  their own get one (as first or second answer) and must end with an `error` event (ConfluenceAuthError
  naming the HTML page). {missing} unknown task ids must end with a 404 error after a 1 s grace window.
- Outcomes: success (Cloud, Data Center, with additionalDetails, 404 before becoming visible), failure
  with error keys in `errors[]`, in `messages[]` or only in the translation, warnings (success) and
  warnings made fatal (failure), Data Center tasks whose clock stops below 100 % (stalled failure).
- `max_retries` is computed: a poll exhausts it only when its first try and all retries fail, each with
  probability q = rate x share of failing kinds; the smallest value with
  expected polls x q^(max_retries+1) <= {budget:g} is used.
"""

REPORT_CHECKS = """\
## Checks

- every task fired exactly one event, equal to the one planned: status, error keys and their args,
  warning keys, additionalDetails, stalled flag, error type, a message naming the task and its keys;
- the canary token and the base64 of `email:token` appear in no log record at any level (the trigger's
  and hook's structlog loggers lowered to DEBUG, stdlib loggers at DEBUG through caplog), no event
  payload or repr, no `serialize()` output (before and after the run) or trigger repr, and no message of
  any exception the core raised or built or the hook let out;
- every logged retry wait stays within the policy (a backoff step x 1.3, or an honoured Retry-After);
  the first wait after each targeted Retry-After is the date honoured, the past as 0, garbage and
  negative values ignored for the first backoff step: nothing crashes, nothing stalls;
- at least 20 % of the status GETs got a fault; no pooled session outlives the triggers.

Verdict: {verdict}
"""


@dataclass
class SoakRun:
    planned: list[Planned]
    stats: Any
    wall: float
    logs: CapturedLogs
    evidence: Evidence
    exceptions: Counter[str]
    max_retries: int
    fail_probability: float
    polls_estimate: float


async def run_soak(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> SoakRun:
    planned = plan_soak(random.Random(SEED))
    fail_probability = FAULT_RATE * FAILING_SHARE
    polls_estimate = _expected_polls(planned, fail_probability)
    max_retries = required_max_retries(fail_probability, polls_estimate)
    assert 5 <= max_retries <= 12, max_retries
    evidence = Evidence()
    exceptions: Counter[str] = Counter()
    _record_exceptions(monkeypatch, evidence, exceptions)

    with ConfluenceSimulator(email=EMAIL, api_token=CANARY) as sim, capture_all_logs(caplog) as logs:
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", _conn(sim, "cloud", "basic"))
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DC", _conn(sim, "datacenter", "bearer"))
        # The capture must see DEBUG from the trigger's and the hook's loggers.
        LongTaskTrigger(long_task_id="probe").log.debug("soak debug probe %s", "trigger")
        ConfluenceHook().log.debug("soak debug probe %s", "hook")
        probes = [m for m in logs.messages() if m.startswith("soak debug probe")]
        assert probes == ["soak debug probe trigger", "soak debug probe hook"], probes

        sim.set_fault_rate(FAULT_RATE, RANDOM_KINDS, seed=SEED, delay=SLOW_DELAY)
        end_time = time.time() + END_TIME_AFTER
        triggers = []
        for item in planned:
            if item.spec is not None:
                item.task_id = sim.add_task(item.spec)
            _inject_targeted(sim, item)
            trigger = LongTaskTrigger(
                long_task_id=item.task_id,
                confluence_conn_id=item.conn_id,
                poll_interval=item.poll_interval,
                end_time=end_time,
                max_retries=max_retries,
                **item.options,
            )
            evidence.add("serialize.before", trigger.serialize())
            evidence.add("trigger.repr", repr(trigger))
            triggers.append((trigger, item))

        started = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(_drive(trigger, item, evidence) for trigger, item in triggers)),
            timeout=END_TIME_AFTER + 30,
        )
        wall = time.monotonic() - started
        stats = sim.stats
        sim.clear_faults()
        for trigger, _ in triggers:
            evidence.add("serialize.after", trigger.serialize())
        assert len(hook_module._POOL) == 0, "a pooled aiohttp session outlived every trigger"
    logs.add_to(evidence)
    return SoakRun(
        planned, stats, wall, logs, evidence, exceptions, max_retries, fail_probability, polls_estimate
    )


def _retry_wait_allowed(retry_number: int, seconds: float) -> bool:
    """A backoff step (with jitter), or an honoured Retry-After (random ones: 1 s; dates: <= 3 s)."""
    policy = core.RetryPolicy()
    backoff = min(policy.backoff_cap, policy.backoff_base * 2.0 ** (retry_number - 1))
    return seconds <= max(backoff * (1 + policy.jitter), DATE_AHEAD + 0.5) + 0.05


def soak_problems(run: SoakRun) -> dict[str, list[str]]:
    """Everything that went wrong, by check (empty lists when the soak passed)."""
    waits = retry_waits(run.logs.messages())
    special = []
    for item in run.planned:
        if item.special is None:
            continue
        names_it = re.compile(rf"long task {re.escape(item.task_id)}\b")
        mine = [(n, s) for n, s, m in waits if names_it.search(m)]
        low, high = _special_first_wait_bound(item.special)
        if not mine:
            special.append(f"{item.task_id} ({item.special}): no retry logged")
        elif not (mine[0][0] == 1 and low <= mine[0][1] <= high):
            special.append(f"{item.task_id} ({item.special}): first retry {mine[0]} outside [{low}, {high}]")
    ratio = _fault_ratio(run.stats)
    return {
        "wrong outcomes": [f"{i.task_id} {i.group}: {p}" for i in run.planned if (p := check_event(i))],
        "canary leaks": [f"{source}: {text!r}" for source, text in run.evidence.leaks()],
        "retry waits above the policy": [m for n, s, m in waits if not _retry_wait_allowed(n, s)],
        "targeted Retry-After": special,
        "fault ratio": [] if ratio >= 0.20 else [f"{ratio:.1%} of status GETs got a fault, below 20 %"],
    }


def _fault_ratio(stats: Any) -> float:
    gets = stats.requests_by_kind.get("status", 0)
    return sum(stats.faults_by_kind.values()) / gets if gets else 0.0


def _counts(counter: Any) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items(), key=lambda kv: str(kv[0])))


def soak_figures(run: SoakRun, problems: dict[str, list[str]]) -> list[tuple[str, Any]]:
    stats, planned, evidence = run.stats, run.planned, run.evidence
    per_task = spread(stats.requests_by_task.get(item.task_id, 0) for item in planned)
    lag = spread(_detection_lags(run))
    waits = retry_waits(run.logs.messages())
    wrong = len(problems["wrong outcomes"])
    q, polls, m = run.fail_probability, run.polls_estimate, run.max_retries
    checked = ", ".join(
        f"{name} {evidence.count(prefix)}"
        for name, prefix in (
            ("log records", "log."),
            ("events", "event."),
            ("serialize", "serialize."),
            ("exceptions", "exception."),
        )
    )
    return [
        ("tasks (one trigger each, all concurrent)", len(planned)),
        ("tasks by group", _counts(Counter(item.group for item in planned))),
        ("expected outcomes", _counts(Counter(item.expected.status for item in planned))),
        ("outcomes correct", f"{len(planned) - wrong} / {len(planned)}"),
        ("status GETs", stats.requests_by_kind.get("status", 0)),
        ("faults injected by kind (sim.stats)", _counts(stats.faults_by_kind)),
        ("faults injected, total", sum(stats.faults_by_kind.values())),
        ("fault ratio of status GETs", f"{_fault_ratio(stats):.1%}"),
        ("responses by HTTP status", _counts(stats.responses_by_status)),
        ("targeted Retry-After values", ", ".join(label for label, _ in RETRY_AFTER_VALUES)),
        (
            "requests per task (mean / median / max)",
            f"{per_task['mean']:.1f} / {per_task['median']:.0f} / {per_task['max']:.0f}",
        ),
        ("retries logged (longest wait)", f"{len(waits)} ({max((s for _, s, _ in waits), default=0):.1f} s)"),
        (
            "detection lag after a task ended, s (mean / median / max)",
            f"{lag['mean']:.2f} / {lag['median']:.2f} / {lag['max']:.2f}",
        ),
        ("exceptions seen by type", _counts(run.exceptions)),
        ("log records by level", _counts(run.logs.by_level())),
        ("texts checked for the canary", f"{len(evidence.items)} ({checked})"),
        ("canary leaks (token, base64 of email:token)", len(problems["canary leaks"])),
        (
            "max_retries (computed)",
            f"{m}: q = {FAULT_RATE} x {FAILING_SHARE:.2f} = {q:.3f}, <= {polls:.0f} polls (upper estimate), "
            f"{polls:.0f} x q^{m + 1} = {polls * q ** (m + 1):.1e} expected exhaustions",
        ),
        ("wall time", f"{run.wall:.1f} s"),
    ]


def _detection_lags(run: SoakRun) -> list[float]:
    """Seconds from a task's end (simulator clock) to its event, for tasks that end by themselves."""
    lags = []
    for item in run.planned:
        task = run.stats.tasks.get(item.task_id)
        if (
            len(item.events) == 1
            and item.expected.status in ("success", "failure")
            and not item.expected.stalled
            and task is not None
            and task.finished_at is not None
        ):
            lags.append(item.events[0][0] - task.finished_at)
    return lags


def write_reliability(run: SoakRun, table: str, verdict: str) -> None:
    intro = REPORT_INTRO.format(
        command=COMMAND,
        date=f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        python=platform.python_version(),
        airflow=airflow.__version__,
        aiohttp=aiohttp.__version__,
        cpus=os.cpu_count(),
        tasks=len(run.planned),
        end_after=END_TIME_AFTER,
        canary=CANARY,
        rate=FAULT_RATE,
        seed=SEED,
        kinds=dict(Counter(RANDOM_KINDS)),
        slow=SLOW_DELAY,
        retry_after_values=", ".join(label for label, _ in RETRY_AFTER_VALUES),
        client_timeout=CLIENT_TIMEOUT,
        html=HTML_TASKS,
        missing=MISSING_TASKS,
        budget=EXHAUSTION_BUDGET,
    )
    text = f"{intro}\n## Figures\n\n{table}\n\n{REPORT_CHECKS.format(verdict=verdict)}"
    if os.environ.get("CONFLUENCE_SOAK_WRITE_REPORT"):  # `make soak` records; `make test` only prints
        REPORT.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------- the soak
@pytest.mark.soak
async def test_soak_triggers_under_injected_faults(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = await run_soak(monkeypatch, caplog)
    problems = soak_problems(run)
    table = markdown_table(soak_figures(run, problems))
    failed = {check: found for check, found in problems.items() if found}
    verdict = (
        "PASS"
        if not failed
        else "FAIL\n\n"
        + "\n".join(f"- {check} ({len(found)}): " + "; ".join(found[:5]) for check, found in failed.items())
    )
    print(f"\n\n{table}\n\nverdict: {verdict}\n")
    write_reliability(run, table, verdict)  # written before the asserts: a failed run is on record too

    assert len(run.planned) >= 200
    assert not problems["wrong outcomes"], problems["wrong outcomes"]
    assert not problems["canary leaks"], problems["canary leaks"][:5]
    assert not problems["retry waits above the policy"], problems["retry waits above the policy"][:5]
    assert not problems["targeted Retry-After"], problems["targeted Retry-After"]
    assert not problems["fault ratio"], problems["fault ratio"]


# ---------------------------------------------------------------------------- focused trigger tests
# Covered in tests/triggers/test_longtask.py, so not repeated here: a rebuilt trigger times out at the
# original end_time (test_rebuilt_trigger_keeps_the_original_end_time), two triggers on one task end
# alike without faults (test_two_triggers_on_the_same_task_end_with_the_same_event), cancellation stops
# polling, sends only status GETs and gives the session back (test_cancelled_trigger_stops_and_gives_
# back_its_session), and a slow answer does not hold the timeout past end_time.
@pytest.fixture
def canary_sim(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Any:
    """A simulator whose token is the canary, as the default connection; no log line may show the token."""
    with ConfluenceSimulator(email=EMAIL, api_token=CANARY) as sim, capture_all_logs(caplog) as logs:
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", sim.airflow_connection())
        sim.logs = logs  # type: ignore[attr-defined]
        yield sim
    evidence = Evidence()
    logs.add_to(evidence)
    assert not evidence.leaks(), evidence.leaks()[:3]
    assert len(hook_module._POOL) == 0, "a trigger kept a pooled aiohttp session"


async def _collect(trigger: LongTaskTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def _rebuild(trigger: LongTaskTrigger) -> LongTaskTrigger:
    """What the triggerer does after a restart: import the classpath, pass the (JSON) kwargs back."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    for value in (CANARY, CANARY_B64):
        assert value not in json.dumps(kwargs)
    rebuilt: LongTaskTrigger = cls(**json.loads(json.dumps(kwargs)))
    return rebuilt


async def _stop_after(trigger: LongTaskTrigger, seconds: float) -> None:
    """Run a trigger for ``seconds``, then cancel it as a stopping triggerer would."""
    running = asyncio.ensure_future(_collect(trigger))
    await asyncio.sleep(seconds)
    assert not running.done(), "the trigger ended before the simulated restart"
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running


async def test_trigger_rebuilt_from_serialize_mid_wait_resumes_and_keeps_its_end_time(
    canary_sim: ConfluenceSimulator,
) -> None:
    sim = canary_sim
    task_id = sim.add_task(TaskSpec(duration=1.5, outcome="failure", error_keys=("ERROR_RELINK",)))
    first = LongTaskTrigger(long_task_id=task_id, poll_interval=0.2, end_time=time.time() + 30)
    await _stop_after(first, 0.6)
    seen_before = sim.stats.status_gets(task_id)
    assert seen_before >= 2

    await asyncio.sleep(0.3)  # the triggerer is down for a moment
    resumed = _rebuild(first)
    assert resumed.serialize() == first.serialize()
    assert (resumed.end_time, resumed.started_at) == (first.end_time, first.started_at)

    events = await asyncio.wait_for(_collect(resumed), 10)
    assert [e["status"] for e in events] == ["failure"]
    assert events[0]["error_keys"] == ["ERROR_RELINK"]
    assert sim.stats.status_gets(task_id) > seen_before  # it polled again after the restart
    assert resumed.end_time == first.end_time  # running did not move the deadline either


async def test_rebuilt_trigger_keeps_the_not_found_grace_of_the_original_start(
    canary_sim: ConfluenceSimulator,
) -> None:
    start = time.time()
    first = LongTaskTrigger(long_task_id="soak-never-there", poll_interval=0.2, not_found_grace=1.5)
    await _stop_after(first, 1.0)
    resumed = _rebuild(first)
    assert resumed.started_at == first.started_at
    events = await asyncio.wait_for(_collect(resumed), 10)
    assert [e["status"] for e in events] == ["error"]
    assert events[0]["error_type"] == "ConfluenceNotFoundError"
    # The 1.5 s grace counts from the first start (the restart came at ~1.0 s), not from the restart.
    assert time.time() - start < 1.5 + 0.2 + 0.6


async def test_two_copies_polling_the_same_task_under_faults_fire_the_same_event(
    canary_sim: ConfluenceSimulator,
) -> None:
    sim = canary_sim
    pairs = []
    for outcome in ("success", "failure", "warnings"):
        task_id = sim.add_task(TaskSpec(duration=1.0, outcome=outcome, error_args=("Two copies",)))
        # Trouble for whichever copy asks at that moment: a 503, then a reset aiohttp cannot hide.
        sim.inject(Fault("503", task_id=task_id, after=2, retry_after="0"))
        sim.inject(Fault("reset", task_id=task_id, after=4, times=2))
        original = LongTaskTrigger(long_task_id=task_id, poll_interval=0.2, end_time=time.time() + 20)
        pairs.append((outcome, original, _rebuild(original)))
    results = await asyncio.wait_for(
        asyncio.gather(*(_collect(t) for _, original, copy in pairs for t in (original, copy))), 20
    )
    for n, (outcome, _, _) in enumerate(pairs):
        first, second = results[2 * n], results[2 * n + 1]
        assert len(first) == len(second) == 1
        assert first == second
        assert first[0]["status"] == ("failure" if outcome == "failure" else "success")
    assert sim.stats.faults_by_kind == {"503": 3, "reset": 6}


@pytest.mark.parametrize(
    ("kind", "retry_after"),
    [("429", "999999"), ("503", "Fri, 31 Dec 2099 23:59:59 GMT")],
    ids=["429-seconds", "503-http-date"],
)
async def test_absurd_retry_after_is_capped_and_never_sleeps_past_end_time(
    canary_sim: ConfluenceSimulator, kind: str, retry_after: str
) -> None:
    sim = canary_sim
    policy = core.RetryPolicy()
    error = core.ConfluenceRateLimitError("limited", retry_after=core.parse_retry_after(retry_after))
    assert policy.delay(error, 0) == policy.retry_after_cap  # capped, not 999999 s
    task_id = sim.add_task(TaskSpec(duration=60.0))
    sim.inject(Fault(kind, task_id=task_id, after=1, retry_after=retry_after))
    end_time = time.time() + 3.0
    trigger = LongTaskTrigger(long_task_id=task_id, poll_interval=0.2, end_time=end_time)
    events = await asyncio.wait_for(_collect(trigger), 10)
    arrived = time.time()
    assert [e["status"] for e in events] == ["timeout"]
    assert end_time - 0.05 <= arrived <= end_time + 0.5
    assert events[0]["task"] is not None  # the status seen before the 429 is reported
    assert sim.stats.faults_by_kind == {kind: 1}  # the absurd answer was served, and not retried
    assert sim.stats.status_gets(task_id) == 2
    messages = sim.logs.messages()  # type: ignore[attr-defined]
    assert any("No retry fits before the deadline" in m for m in messages), messages


async def test_garbage_or_negative_retry_after_neither_crashes_nor_stalls(
    canary_sim: ConfluenceSimulator,
) -> None:
    sim = canary_sim
    values = ["soon", "-5", "NaN", "1e400", "", "Wed, 21 Oct 99999 07:28:00 GMT", "-1e400", "0x10"]
    tasks = []
    for n, value in enumerate(values):
        task_id = sim.add_task(TaskSpec(duration=1.0))
        sim.inject(Fault("429" if n % 2 else "503", task_id=task_id, after=1, retry_after=value))
        tasks.append(task_id)
    start = time.time()
    triggers = [LongTaskTrigger(long_task_id=t, poll_interval=0.2, end_time=start + 20) for t in tasks]
    results = await asyncio.wait_for(asyncio.gather(*(_collect(t) for t in triggers)), 15)
    took = time.time() - start
    assert [[e["status"] for e in events] for events in results] == [["success"]] * len(values)
    # One ignored Retry-After costs at most one backoff step (1 s + 30 %): no stall.
    assert took < 1.0 + FIRST_BACKOFF_MAX + 1.0, took
    waits = retry_waits(sim.logs.messages())  # type: ignore[attr-defined]
    assert len(waits) == len(values)
    assert all(seconds <= FIRST_BACKOFF_MAX + 0.05 for _, seconds, _ in waits), waits


async def test_connections_sharing_the_pooled_session_do_not_share_cookies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    The soak's two connections share one pooled aiohttp session: the pool key is origin, TLS, proxy and
    timeout, not the credentials. Confluence answers with session cookies (JSESSIONID, and on Cloud
    cloud.session.token); kept in the shared session's cookie jar, a cookie set for one connection's user
    rides along with every other connection's requests to that site. (The simulator sets no cookie, so a
    small server on localhost does; aiohttp keeps no cookie of a bare IP address.)
    """
    seen: list[tuple[str, str | None]] = []

    async def status(request: web.Request) -> web.Response:
        user = request.headers.get("Authorization", "").removeprefix("Bearer ").split("-")[0]
        seen.append((user, request.headers.get("Cookie")))
        body = {"id": request.match_info["id"], "percentageComplete": 50, "elapsedTime": 5, "finished": False}
        response = web.json_response(body)
        response.set_cookie("JSESSIONID", f"session-of-{user}", httponly=True)
        return response

    app = web.Application()
    app.router.add_get("/confluence/rest/api/longtask/{id}", status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    host = f"http://localhost:{sock.getsockname()[1]}/confluence"
    for user in ("alice", "bob"):
        conn = {"conn_type": "confluence", "host": host, "password": f"{user}-{CANARY}"}
        monkeypatch.setenv(f"AIRFLOW_CONN_SOAK_{user.upper()}", json.dumps(conn))
    try:
        async with ConfluenceHook("soak_alice") as alice, ConfluenceHook("soak_bob") as bob:
            await alice.aget_long_task("1")
            await bob.aget_long_task("2")
            assert len(hook_module._POOL) == 1  # one session for both connections
    finally:
        await runner.cleanup()
        sock.close()
    assert seen[0] == ("alice", None)
    assert seen[1][0] == "bob"
    assert seen[1][1] is None, f"bob's request carried alice's session cookie: {seen[1][1]}"


def test_soak_plan_is_reproducible_and_its_outcomes_are_known() -> None:
    first, second = plan_soak(random.Random(SEED)), plan_soak(random.Random(SEED))
    assert [(p.group, p.spec, p.poll_interval, p.expected) for p in first] == [
        (p.group, p.spec, p.poll_interval, p.expected) for p in second
    ]
    assert len(first) >= 200
    assert all(0.5 <= p.spec.duration <= 5.0 for p in first if p.spec is not None)
    assert all(0.2 <= p.poll_interval <= 0.5 for p in first)
    assert all(f.kind != "html" for p in first if p.group != "html-login-page" for f in p.faults)
    assert "html" not in RANDOM_KINDS
    assert FAULT_RATE >= 0.20
