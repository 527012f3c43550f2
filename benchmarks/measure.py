"""
The measurements of ``bench.py``. Imports Airflow: import this module only after ``AIRFLOW_HOME``
and the connections are in the environment (``bench.py`` does that).
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import random
import statistics
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiohttp
from airflow.providers.http.hooks.http import HttpAsyncHook

from airflow_provider_confluence.hooks.confluence import _POOL, ConfluenceHook
from airflow_provider_confluence.longtask import LongTask
from airflow_provider_confluence.polling import PollSchedule
from airflow_provider_confluence.testing.models import TaskSpec
from airflow_provider_confluence.testing.tasks import SimTask
from airflow_provider_confluence.triggers.longtask import LongTaskTrigger

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

    from airflow.triggers.base import TriggerEvent
    from simproc import SimulatorProcess

    from airflow_provider_confluence.testing.models import Curve

HTTP_CONN_ID = "confluence_bench_http"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------ event loop and process probes
class CountingEventLoop(asyncio.SelectorEventLoop):
    """The standard event loop, counting the TCP connections it opens (aiohttp opens each through it)."""

    connections_opened = 0

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.connections_opened += 1
        return await super().create_connection(*args, **kwargs)


def counting_loop() -> CountingEventLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, CountingEventLoop), "run the benchmark on a CountingEventLoop"
    return loop


def open_sockets() -> int:
    """Sockets this process holds open right now (from /proc/self/fd)."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE_SIZE


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ------------------------------------------------------------------ 1. CPU time per poll
@dataclass(frozen=True)
class CpuPerPoll:
    """CPU microseconds per poll of each client: one value per repetition."""

    polls: int
    repetitions: int
    samples: dict[str, list[float]]
    wall_samples: dict[str, list[float]]
    simulator_cpu_s: float

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def ratio(self, numerator: str, denominator: str) -> float:
        """Median over repetitions of the per-repetition ratio (both measured back to back)."""
        pairs = zip(self.samples[numerator], self.samples[denominator], strict=True)
        return statistics.median(a / b for a, b in pairs)


FLOOR, OURS, HTTP_HOOK = "aiohttp + json.loads (floor)", "ConfluenceHook.aget_long_task", "HttpAsyncHook.run"


async def cpu_per_poll(sim: SimulatorProcess, *, polls: int, warmup: int, repetitions: int) -> CpuPerPoll:
    """Process CPU time over ``polls`` sequential polls of one running task, after a warm-up, per client."""
    task_id = sim.create_task({"duration": 86_400.0, "curve": "linear"})
    url = f"{sim.cloud_url}/rest/api/longtask/{task_id}"
    hook = ConfluenceHook()
    settings = await hook.aget_settings()  # the connection is read once, as a trigger's hook does
    authorization = {"Authorization": settings.authorization}
    http_hook = HttpAsyncHook(method="GET", http_conn_id=HTTP_CONN_ID)
    await http_hook.config()
    session = aiohttp.ClientSession()

    async def floor() -> Any:
        async with session.get(url, headers=authorization) as response:
            return json.loads(await response.read())

    async def ours() -> Any:
        return await hook.aget_long_task(task_id)

    async def http() -> Any:
        response = await http_hook.run(session=session, endpoint=sim.status_path(task_id))
        return json.loads(await response.read())

    clients: dict[str, Callable[[], Awaitable[Any]]] = {FLOOR: floor, OURS: ours, HTTP_HOOK: http}
    samples: dict[str, list[float]] = {name: [] for name in clients}
    wall: dict[str, list[float]] = {name: [] for name in clients}
    sim_cpu = sim.cpu_seconds()
    try:
        for poll in clients.values():  # the first warm-up opens the connections, imports lazy modules
            for _ in range(warmup):
                await poll()
        names = list(clients)
        for repetition in range(repetitions):
            order = names[repetition % 3 :] + names[: repetition % 3]  # rotate: no client always first
            for name in order:
                poll = clients[name]
                for _ in range(max(10, warmup // 4)):
                    await poll()
                gc.collect()
                cpu, start = time.process_time(), time.perf_counter()
                for _ in range(polls):
                    await poll()
                samples[name].append((time.process_time() - cpu) / polls * 1e6)
                wall[name].append((time.perf_counter() - start) / polls * 1e6)
    finally:
        await session.close()
        await hook.aclose()
    return CpuPerPoll(polls, repetitions, samples, wall, sim.cpu_seconds() - sim_cpu)


# ------------------------------------------------------------------ 2. a triggerer's worth of triggers
@dataclass(frozen=True)
class FleetResult:
    triggers: int
    poll_interval: float
    durations: tuple[float, float]
    wall_s: float
    cpu_s: float
    polls: int
    events: dict[str, int]
    connections_opened: int
    peak_open_sockets: int
    sessions_in_pool: int
    rss_growth_bytes: int
    traced_peak_bytes: int | None
    simulator_cpu_s: float
    first_problem: str | None = None  #: the message of the first event that is not a success

    @property
    def cpu_s_per_1000_polls(self) -> float:
        return self.cpu_s / self.polls * 1000 if self.polls else math.nan


async def _first_event(trigger: LongTaskTrigger, after: float = 0.0) -> tuple[dict[str, Any], float]:
    """What a triggerer does with a trigger: run it to its first event, then close it."""
    if after:
        await asyncio.sleep(after)
    # BaseTrigger.run() is typed as an AsyncIterator; it is an async generator, as the triggerer assumes.
    events = cast("AsyncGenerator[TriggerEvent, None]", trigger.run())
    try:
        event = await events.__anext__()
    finally:
        await events.aclose()
    payload: dict[str, Any] = event.payload
    return payload, time.time()


async def _sample(stop: asyncio.Event, peaks: dict[str, int], every: float = 0.1) -> None:
    while not stop.is_set():
        peaks["sockets"] = max(peaks["sockets"], open_sockets())
        peaks["rss"] = max(peaks["rss"], rss_bytes())
        peaks["sessions"] = max(peaks["sessions"], len(_POOL))
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            continue


async def fleet(
    sim: SimulatorProcess,
    *,
    triggers: int,
    poll_interval: float,
    durations: tuple[float, float],
    trace_memory: bool,
    conn_id: str = "confluence_default",
    seed: int = 7,
) -> FleetResult:
    """``triggers`` LongTaskTriggers in this event loop, each on its own task, run to their first event."""
    rng = random.Random(seed)
    task_ids = [
        sim.create_task({"duration": round(rng.uniform(*durations), 3), "start_on_first_poll": True})
        for _ in range(triggers)
    ]
    sim.reset_stats()
    loop = counting_loop()
    gc.collect()
    sockets_before, rss_before = open_sockets(), rss_bytes()
    peaks = {"sockets": sockets_before, "rss": rss_before, "sessions": 0}
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(stop, peaks))
    if trace_memory:
        tracemalloc.start()
        traced_before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    opened_before, sim_cpu = loop.connections_opened, sim.cpu_seconds()
    cpu, start = time.process_time(), time.perf_counter()
    end_time = time.time() + durations[1] + 10 * poll_interval + 60
    waiting = [
        LongTaskTrigger(
            long_task_id=task_id, confluence_conn_id=conn_id, poll_interval=poll_interval, end_time=end_time
        )
        for task_id in task_ids
    ]
    runs = [asyncio.create_task(_first_event(trigger)) for trigger in waiting]
    results = await asyncio.gather(*runs)
    cpu_s, wall_s = time.process_time() - cpu, time.perf_counter() - start
    traced_peak = None
    if trace_memory:
        traced_peak = tracemalloc.get_traced_memory()[1] - traced_before
        tracemalloc.stop()
    stop.set()
    await sampler
    stats = sim.stats()
    events: dict[str, int] = {}
    problems = [str(payload.get("message")) for payload, _ in results if payload["status"] != "success"]
    for payload, _ in results:
        events[payload["status"]] = events.get(payload["status"], 0) + 1
    return FleetResult(
        triggers=triggers,
        poll_interval=poll_interval,
        durations=durations,
        wall_s=wall_s,
        cpu_s=cpu_s,
        polls=stats["requests_by_kind"].get("status", 0),
        events=events,
        connections_opened=loop.connections_opened - opened_before,
        peak_open_sockets=peaks["sockets"] - sockets_before,
        sessions_in_pool=peaks["sessions"],
        rss_growth_bytes=peaks["rss"] - rss_before,
        traced_peak_bytes=traced_peak,
        simulator_cpu_s=sim.cpu_seconds() - sim_cpu,
        first_problem=problems[0] if problems else None,
    )


# ------------------------------------------------------------------ 3. fixed versus adaptive polling
CURVES = ("linear", "stepped", "stall")
#: The seed of the workload's durations (the model of 3b draws more with it: the first ones are the same).
WORKLOAD_SEED = 11


@dataclass(frozen=True)
class Policy:
    """One way of polling; intervals in real (unscaled) seconds."""

    name: str
    description: str
    trigger_kwargs: dict[str, Any]


@dataclass
class PolicyResult:
    policy: Policy
    requests: dict[str, list[int]] = field(default_factory=lambda: {curve: [] for curve in CURVES})
    delays: dict[str, list[float]] = field(default_factory=lambda: {curve: [] for curve in CURVES})
    non_success: int = 0

    def all_requests(self) -> list[int]:
        return [n for curve in CURVES for n in self.requests[curve]]

    def all_delays(self) -> list[float]:
        return [d for curve in CURVES for d in self.delays[curve]]


@dataclass(frozen=True)
class WorkloadResult:
    scale: float
    tasks_per_curve: int
    duration_range: tuple[float, float]
    durations: list[float]
    results: list[PolicyResult]
    stagger: float
    wall_s: float
    loop_lag_ms: list[float]  #: how late 10 ms sleeps woke up during the run (event-loop load)


def workload_durations(tasks_per_curve: int, duration_range: tuple[float, float], seed: int) -> list[float]:
    """Log-uniform real durations (seconds to an hour): as many short tasks per decade as long ones."""
    rng = random.Random(seed)
    low, high = (math.log(x) for x in duration_range)
    return [round(math.exp(rng.uniform(low, high)), 1) for _ in range(tasks_per_curve)]


def _scaled(kwargs: dict[str, Any], scale: float) -> dict[str, Any]:
    return {key: value / scale if isinstance(value, float) else value for key, value in kwargs.items()}


async def workload(
    sim: SimulatorProcess,
    policies: Sequence[Policy],
    *,
    scale: float,
    tasks_per_curve: int,
    duration_range: tuple[float, float],
    stall_timeout: float,
    stagger: float,
    seed: int = WORKLOAD_SEED,
) -> WorkloadResult:
    """
    Every policy polls its own copy of the same tasks, all at once, with time divided by ``scale``.

    Requests per task are the simulator's status GETs of that task; the detection delay is the time the
    trigger's event arrived minus the simulator's ``finished_at``, multiplied back by ``scale``. Triggers
    start at random moments within the first ``stagger`` (scaled) seconds, as deferrals arrive in a
    triggerer; all at once, their first polls would queue and delay the shortest tasks' detection.
    """
    durations = workload_durations(tasks_per_curve, duration_range, seed)
    jobs: list[tuple[PolicyResult, str, str, LongTaskTrigger]] = []
    results = [PolicyResult(policy) for policy in policies]
    for result in results:
        policy = result.policy
        kwargs = _scaled(policy.trigger_kwargs, scale)
        for curve in CURVES:
            for duration in durations:
                task_id = sim.create_task(
                    {"duration": duration / scale, "curve": curve, "start_on_first_poll": True}
                )
                trigger = LongTaskTrigger(long_task_id=task_id, stall_timeout=stall_timeout / scale, **kwargs)
                jobs.append((result, curve, task_id, trigger))
    rng = random.Random(seed)
    rng.shuffle(jobs)  # no policy always starts first
    offsets = [rng.uniform(0, stagger) for _ in jobs]
    lags: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_loop_lag(stop, lags))
    start = time.perf_counter()
    outcomes = await asyncio.gather(
        *(_first_event(trigger, after) for (*_, trigger), after in zip(jobs, offsets, strict=True))
    )
    wall_s = time.perf_counter() - start
    stop.set()
    await probe
    tasks = sim.stats()["tasks"]
    for (result, curve, task_id, _), (payload, received_at) in zip(jobs, outcomes, strict=True):
        stats = tasks[task_id]
        if payload["status"] != "success" or stats["finished_at"] is None:
            result.non_success += 1
            continue
        result.requests[curve].append(stats["status_gets"])
        result.delays[curve].append(max(0.0, received_at - stats["finished_at"]) * scale)
    return WorkloadResult(scale, tasks_per_curve, duration_range, durations, results, stagger, wall_s, lags)


async def _loop_lag(stop: asyncio.Event, lags: list[float], every: float = 0.01) -> None:
    """Sample how late the event loop wakes a sleeper: the timing noise of the delays."""
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(every)
        lags.append((time.perf_counter() - asked - every) * 1000)


def clairvoyant_bound(durations: Sequence[float], fixed: PolicyResult) -> tuple[float, float, float]:
    """
    A lower bound on the requests any policy needs for this workload at fixed polling's p95 delay.

    Every trigger polls once when it starts (the simulator counts that GET for every policy, and a
    trigger knows nothing of its task before it). Grant a policy perfect foresight of every linear and
    stepped task after that: one more request each, at its end, no delay. A stall-then-jump task gives
    no hint of its end, so it must be polled at a steady interval ``I``; its delay is then uniform in
    ``[0, I)``. With a third of the tasks stalling and the rest detected at once, the pooled 95th
    percentile is the stall tasks' 85th, ``0.85 I``: the longest interval that keeps fixed polling's
    p95 is ``I = p95 / 0.85``, and a stall task of duration ``D`` then needs ``ceil(D / I) + 1``
    requests, as fixed polling needs ``ceil(D / P) + 1``.
    Returns ``(I, requests as a share of fixed polling's, requests per stall task)``.
    """
    share_of_stalls = 1 / len(CURVES)
    interval = percentile(fixed.all_delays(), 95) / (1 - 0.05 / share_of_stalls)
    stall_requests = sum(math.ceil(d / interval) + 1 for d in durations)
    share = (2 * CLAIRVOYANT_REQUESTS * len(durations) + stall_requests) / sum(fixed.all_requests())
    return interval, share, stall_requests / len(durations)


#: Requests of a linear or stepped task under perfect foresight: the first poll, then one at its end.
CLAIRVOYANT_REQUESTS = 2


# ------------------------------------------------------------------ 3b. adaptive bounds, in a model
#: A model-only progress curve: linear at the pace of a task twice as long, then done at half of it
#: (a task that speeds up: its progress promised an end later than the real one).
ENDS_EARLY = "ends early"
MODEL_CURVES = (*CURVES, ENDS_EARLY)


@dataclass(frozen=True)
class ModelPolicy:
    """Fixed polling (``adaptive`` False) or ``PollSchedule`` with these bounds (None: the default)."""

    name: str
    adaptive: bool
    min_interval: float | None = None
    max_interval: float | None = None


@dataclass
class ModelResult:
    policy: ModelPolicy
    requests: dict[str, list[int]] = field(default_factory=lambda: {curve: [] for curve in MODEL_CURVES})
    delays: dict[str, list[float]] = field(default_factory=lambda: {curve: [] for curve in MODEL_CURVES})

    def pooled(self, curves: Sequence[str] = CURVES) -> tuple[int, list[float]]:
        """Requests and delays over ``curves`` (by default the three curves the workload measures)."""
        return (
            sum(n for curve in curves for n in self.requests[curve]),
            [d for curve in curves for d in self.delays[curve]],
        )


def _model_poll(schedule: PollSchedule, curve: str, duration: float, round_trip: float) -> tuple[int, float]:
    """Polls one simulated task as the trigger does (first poll at its start); ``(requests, delay)``."""
    early = curve == ENDS_EARLY
    spec = TaskSpec(
        duration=2 * duration if early else duration,
        curve=cast("Curve", "linear" if early else curve),
        start_on_first_poll=True,
    )
    task = SimTask("model", spec)
    task.start(0.0)  # the clock starts at the first poll, at t = 0
    now, requests = 0.0, 0
    while True:
        requests += 1
        if now >= duration:
            return requests, now - duration
        status = LongTask.from_json(task.status(now))
        now += schedule.next_interval(status) + round_trip


def bounds_model(
    policies: Sequence[ModelPolicy], durations: Sequence[float], *, poll_interval: float, round_trip: float
) -> list[ModelResult]:
    """
    Every policy polls every duration on every curve of :data:`MODEL_CURVES`, in simulated time.

    The real ``PollSchedule`` and the simulator's own progress curves (``SimTask``), without a server
    or an event loop: each poll costs ``round_trip`` seconds on top of the wait, nothing else varies.
    """
    results = []
    for policy in policies:
        result = ModelResult(policy)
        for curve in MODEL_CURVES:
            for duration in durations:
                schedule = PollSchedule(
                    poll_interval,
                    adaptive=policy.adaptive,
                    min_interval=policy.min_interval,
                    max_interval=policy.max_interval,
                )
                requests, delay = _model_poll(schedule, curve, duration, round_trip)
                result.requests[curve].append(requests)
                result.delays[curve].append(delay)
        results.append(result)
    return results
