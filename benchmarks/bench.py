"""
Performance benchmark of airflow-provider-confluence against the simulator (``make bench``).

Measures, with the simulator in a separate process so that its CPU is not counted:

1. CPU time per poll of ``ConfluenceHook.aget_long_task`` against a bare aiohttp GET + ``json.loads``
   (the floor) and against ``HttpAsyncHook.run`` of apache-airflow-providers-http;
2. a triggerer's load: many ``LongTaskTrigger`` in one event loop (CPU per 1,000 polls, memory per
   trigger, TCP connections opened), and the same triggers against a slow Confluence (2b);
3. fixed versus adaptive polling (``PollSchedule``, default and recommended bounds) over a workload of
   tasks from seconds to an hour (time scaled down): requests per task and detection delay; then (3b)
   the same schedule in a model, without server or event loop, over a range of bounds.

``python benchmarks/bench.py`` prints the tables and writes BENCHMARKS.md; ``--quick`` is a short smoke
run (well under a minute) that writes nothing unless given ``--output``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from simproc import SimulatorProcess

if TYPE_CHECKING:
    from measure import CpuPerPoll, FleetResult, ModelPolicy, ModelResult, Policy, WorkloadResult

ROOT = Path(__file__).resolve().parent.parent
GOAL_OURS_OVER_FLOOR = 1.3
GOAL_BYTES_PER_TRIGGER = 50_000
GOAL_ADAPTIVE_REQUEST_SHARE = 1 / 3


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to run (times in seconds)."""

    quick: bool
    # 1. CPU per poll
    polls: int
    warmup: int
    repetitions: int
    # 2. many triggers
    fleet_triggers: int
    fleet_poll_interval: float
    fleet_durations: tuple[float, float]
    # 2b. many triggers against a slow Confluence
    slow_latency: float
    slow_timeout: float
    slow_durations: tuple[float, float]
    # 3. workload
    scale: float
    tasks_per_curve: int
    duration_range: tuple[float, float]
    fixed_interval: float
    stagger: float
    # 3b. model of the adaptive bounds
    model_tasks_per_curve: int
    model_round_trip: float

    @classmethod
    def full(cls) -> Plan:
        return cls(
            quick=False,
            polls=600,
            warmup=200,
            repetitions=10,
            fleet_triggers=1000,
            fleet_poll_interval=5.0,
            fleet_durations=(20.0, 30.0),
            slow_latency=0.25,
            slow_timeout=2.0,
            slow_durations=(1.0, 2.0),
            scale=100.0,
            tasks_per_curve=30,
            duration_range=(10.0, 3600.0),
            fixed_interval=30.0,
            stagger=10.0,
            model_tasks_per_curve=300,
            model_round_trip=0.1,
        )

    @classmethod
    def smoke(cls) -> Plan:
        return cls(
            quick=True,
            polls=100,
            warmup=40,
            repetitions=5,
            fleet_triggers=200,
            fleet_poll_interval=1.0,
            fleet_durations=(2.0, 3.0),
            slow_latency=0.3,
            slow_timeout=0.4,
            slow_durations=(1.0, 1.5),
            scale=100.0,
            tasks_per_curve=5,
            duration_range=(10.0, 600.0),
            fixed_interval=30.0,
            stagger=2.0,
            model_tasks_per_curve=30,
            model_round_trip=0.1,
        )


def recommended_bounds(fixed: float) -> tuple[float, float]:
    """
    The adaptive bounds BENCHMARKS.md recommends for ``poll_interval=fixed``: min = fixed / 6, max = 10 x.

    For a 30 s interval: 5 s and 300 s. The short minimum lets the schedule poll at the predicted end
    instead of up to ``poll_interval`` after it; the maximum is the default one, which bounds how late a
    task that ends before its progress promised is seen (section 3b shows both with figures).
    """
    return fixed / 6, fixed * 10


def policies(fixed: float) -> list[Policy]:
    from measure import Policy

    low, high = recommended_bounds(fixed)
    return [
        Policy("fixed", f"poll_interval={fixed:g}", {"poll_interval": fixed}),
        Policy(
            "adaptive, default bounds",
            f"adaptive_polling=True, poll_interval={fixed:g} (min = poll_interval = {fixed:g}, "
            f"max = 10 x = {10 * fixed:g})",
            {"poll_interval": fixed, "adaptive_polling": True},
        ),
        Policy(
            "adaptive, recommended bounds",
            f"adaptive_polling=True, poll_interval={fixed:g}, min_poll_interval={low:g}, "
            f"max_poll_interval={high:g}",
            {
                "poll_interval": fixed,
                "adaptive_polling": True,
                "min_poll_interval": low,
                "max_poll_interval": high,
            },
        ),
    ]


def model_policies(fixed: float) -> list[ModelPolicy]:
    from measure import ModelPolicy

    low, high = recommended_bounds(fixed)
    rows = [ModelPolicy("fixed", adaptive=False), ModelPolicy("default bounds", adaptive=True)]
    for min_interval, max_interval in (
        (fixed / 2, high),
        (low, 5 * fixed),
        (low, high),
        (low, 20 * fixed),
        (low, 60 * fixed),
    ):
        name = f"min {min_interval:g}, max {max_interval:g}"
        if (min_interval, max_interval) == (low, high):
            name += " (recommended)"
        rows.append(ModelPolicy(name, adaptive=True, min_interval=min_interval, max_interval=max_interval))
    return rows


# ---------------------------------------------------------------------------- running
def prepare_environment(workdir: Path) -> None:
    """A throw-away AIRFLOW_HOME (set before Airflow is first imported) and quiet logs."""
    home = workdir / "airflow-home"
    home.mkdir()
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # Progress lines (INFO) and retry warnings (part 2b has thousands) would flood this terminal; a
    # triggerer sends them to its own log handlers, whose cost is not ours to measure. Filtered out, a
    # line costs about a microsecond.
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
    warnings.filterwarnings("ignore", message="BasicAuth is deprecated", category=DeprecationWarning)


@dataclass(frozen=True)
class Results:
    plan: Plan
    cpu: CpuPerPoll
    fleet: FleetResult
    fleet_memory: FleetResult
    slow: FleetResult
    workload: WorkloadResult
    model: list[ModelResult]
    model_durations: list[float]


SLOW_CONN_ID = "confluence_bench_slow"


async def run_all(sim: SimulatorProcess, plan: Plan) -> Results:
    import measure

    settle()
    step("1/5 CPU time per poll")
    cpu = await measure.cpu_per_poll(sim, polls=plan.polls, warmup=plan.warmup, repetitions=plan.repetitions)
    fleets = []
    for trace_memory in (False, True):
        what = "again, under tracemalloc" if trace_memory else "(CPU, sockets, RSS)"
        settle()
        step(f"{2 + trace_memory}/5 {plan.fleet_triggers} concurrent triggers {what}")
        fleets.append(
            await measure.fleet(
                sim,
                triggers=plan.fleet_triggers,
                poll_interval=plan.fleet_poll_interval,
                durations=plan.fleet_durations,
                trace_memory=trace_memory,
            )
        )
    settle()
    step(f"4/5 {plan.fleet_triggers} concurrent triggers against a slow Confluence")
    sim.set_latency(plan.slow_latency)
    try:
        slow = await measure.fleet(
            sim,
            triggers=plan.fleet_triggers,
            poll_interval=plan.fleet_poll_interval,
            durations=plan.slow_durations,
            trace_memory=False,
            conn_id=SLOW_CONN_ID,
        )
    finally:
        sim.set_latency(0.0)
    settle()
    step("5/5 fixed versus adaptive polling workload, then the model of the adaptive bounds")
    workload = await measure.workload(
        sim,
        policies(plan.fixed_interval),
        scale=plan.scale,
        tasks_per_curve=plan.tasks_per_curve,
        duration_range=plan.duration_range,
        stall_timeout=600.0,
        stagger=plan.stagger,
    )
    # The first durations of this longer draw (same seed) are the workload's own.
    model_durations = measure.workload_durations(
        plan.model_tasks_per_curve, plan.duration_range, seed=measure.WORKLOAD_SEED
    )
    model = measure.bounds_model(
        model_policies(plan.fixed_interval),
        model_durations,
        poll_interval=plan.fixed_interval,
        round_trip=plan.model_round_trip,
    )
    return Results(plan, cpu, fleets[0], fleets[1], slow, workload, model, model_durations)


def settle() -> None:
    """
    Collect, then freeze what survives (``gc.freeze``) before a measurement.

    Airflow's imports leave about a million long-lived objects: a full collection walks them all, a
    pause of about half a second that lands at random in a measurement (in part 3, time scaled 100x, it
    adds some 50 s to whichever task ends then). A triggerer would pay it too, but it is not this
    package's cost. Objects the measurement itself creates are collected as usual.
    """
    gc.collect()
    gc.freeze()


def run(plan: Plan, workdir: Path) -> Results:
    with SimulatorProcess(workdir) as sim:
        os.environ["AIRFLOW_CONN_CONFLUENCE_DEFAULT"] = sim.confluence_connection()
        os.environ[f"AIRFLOW_CONN_{SLOW_CONN_ID.upper()}"] = sim.slow_confluence_connection(plan.slow_timeout)
        from measure import HTTP_CONN_ID, CountingEventLoop

        os.environ[f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}"] = sim.http_connection()
        loop = CountingEventLoop()
        try:
            results = loop.run_until_complete(run_all(sim, plan))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
    return results


_STARTED = time.perf_counter()


def step(text: str) -> None:
    print(f"[bench {time.perf_counter() - _STARTED:5.1f} s] {text} ...", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- reporting
def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table padded so that it also reads well in a terminal; numeric columns right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    right = [all(_numeric(row[i]) for row in rows if row[i]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rules = [("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right, strict=True)]
    return "\n".join([line(header), "|" + "|".join(rules) + "|", *(line(row) for row in rows)])


def _numeric(cell: str) -> bool:
    return bool(cell) and (cell[0].isdigit() or cell[0] in "-+.~")


def verdict(met: bool) -> str:
    return "**met**" if met else "**NOT met**"


def counts(events: dict[str, int]) -> str:
    return ", ".join(f"{count} {status}" for status, count in sorted(events.items()))


def machine() -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu_model = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [
            t.split(":", 1)[1].strip() for t in cpuinfo.read_text().splitlines() if t.startswith("model name")
        ]
        cpu_model = models[0] if models else cpu_model
    return (
        f"nproc {os.cpu_count()} ({cpu_model}), {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; aiohttp {version('aiohttp')}; "
        f"apache-airflow {version('apache-airflow')}; "
        f"apache-airflow-providers-http {version('apache-airflow-providers-http')}; "
        f"airflow-provider-confluence {version('airflow-provider-confluence')}"
    )


def cpu_section(cpu: CpuPerPoll) -> tuple[str, list[str]]:
    from measure import FLOOR, HTTP_HOOK, OURS

    over_floor, over_http = cpu.ratio(OURS, FLOOR), cpu.ratio(OURS, HTTP_HOOK)
    rows = [
        [
            name,
            f"{cpu.median(name):.0f}",
            f"{min(cpu.samples[name]):.0f}-{max(cpu.samples[name]):.0f}",
            f"{statistics.median(cpu.wall_samples[name]):.0f}",
            f"{cpu.ratio(name, FLOOR):.2f}",
        ]
        for name in (FLOOR, OURS, HTTP_HOOK)
    ]
    floor_met, http_met = over_floor <= GOAL_OURS_OVER_FLOOR, over_http < 1
    text = [
        f"### 1. CPU time per poll ({cpu.repetitions} repetitions x {cpu.polls} sequential polls)",
        "",
        table(["client", "CPU us/poll (median)", "min-max", "wall us/poll", "x floor"], rows),
        "",
        f"- ours / floor = **{over_floor:.2f}** (goal <= {GOAL_OURS_OVER_FLOOR}): {verdict(floor_met)}",
        f"- ours / HttpAsyncHook = **{over_http:.2f}** (goal < 1): {verdict(http_met)}",
        f"- simulator CPU meanwhile, in its own process (not counted): {cpu.simulator_cpu_s:.1f} s",
    ]
    goals = [
        f"CPU per poll, ours / floor <= {GOAL_OURS_OVER_FLOOR}: {over_floor:.2f}, {verdict(floor_met)}",
        f"CPU per poll, ours / HttpAsyncHook < 1: {over_http:.2f}, {verdict(http_met)}",
    ]
    return "\n".join(text), goals


def fleet_section(fleet: FleetResult, memory: FleetResult) -> tuple[str, list[str]]:
    from airflow_provider_confluence.hooks.confluence import POOL_SIZE

    n = fleet.triggers
    traced = (memory.traced_peak_bytes or 0) / n
    rss = fleet.rss_growth_bytes / n
    memory_met = traced < GOAL_BYTES_PER_TRIGGER and rss < GOAL_BYTES_PER_TRIGGER
    sockets_met = fleet.connections_opened <= POOL_SIZE and fleet.peak_open_sockets <= POOL_SIZE
    low, high = fleet.durations
    rows = [
        ["poll interval / task durations", f"{fleet.poll_interval:g} s / {low:g}-{high:g} s, linear"],
        ["events", counts(fleet.events)],
        ["wall time to the last event", f"{fleet.wall_s:.1f} s"],
        ["polls served by the simulator", f"{fleet.polls}"],
        ["CPU time of this process", f"{fleet.cpu_s:.2f} s"],
        ["**CPU per 1,000 polls**", f"{fleet.cpu_s_per_1000_polls:.3f} s"],
        ["**tracemalloc peak per trigger** (2nd run)", f"{traced / 1000:.1f} KB"],
        ["**RSS growth per trigger** (1st run)", f"{rss / 1000:.1f} KB"],
        ["**TCP connections opened**", f"{fleet.connections_opened}"],
        ["peak sockets open at once", f"{fleet.peak_open_sockets}"],
        ["pooled aiohttp sessions (peak)", f"{fleet.sessions_in_pool}"],
        ["POOL_SIZE", f"{POOL_SIZE}"],
        ["simulator CPU (own process, not counted)", f"{fleet.simulator_cpu_s:.1f} s"],
        ["2nd run under tracemalloc: events / polls", f"{counts(memory.events)} / {memory.polls}"],
    ]
    if fleet.first_problem:
        rows.append(["first event that is not a success", fleet.first_problem[:160]])
    text = [
        f"### 2. {n} concurrent LongTaskTriggers in one event loop",
        "",
        table(["measure", "value"], rows),
        "",
        f"- memory per trigger < 50 KB: {traced / 1000:.1f} KB traced, {rss / 1000:.1f} KB RSS: "
        f"{verdict(memory_met)}",
        f"- sockets bounded by POOL_SIZE ({POOL_SIZE}), not by the {n} triggers: {fleet.connections_opened} "
        f"opened, at most {fleet.peak_open_sockets} open at once: {verdict(sockets_met)}",
    ]
    goals = [
        f"memory per trigger < 50 KB: {traced / 1000:.1f} KB traced, {rss / 1000:.1f} KB RSS, "
        f"{verdict(memory_met)}",
        f"TCP connections bounded by POOL_SIZE = {POOL_SIZE}: {fleet.connections_opened} opened for {n} "
        f"triggers, {verdict(sockets_met)}",
    ]
    return "\n".join(text), goals


def slow_section(slow: FleetResult, plan: Plan) -> tuple[str, list[str]]:
    from airflow_provider_confluence.hooks.confluence import POOL_SIZE

    n = slow.triggers
    demand, capacity = n / slow.poll_interval, POOL_SIZE / plan.slow_latency
    met = slow.connections_opened <= POOL_SIZE
    low, high = slow.durations
    rows = [
        ["answer latency (every status GET)", f"{plan.slow_latency:g} s"],
        ["connection extra `timeout`", f"{plan.slow_timeout:g} s"],
        ["poll interval / task durations", f"{slow.poll_interval:g} s / {low:g}-{high:g} s"],
        ["polls asked for / pool capacity", f"{demand:.0f} / {capacity:.0f} per s"],
        ["events", counts(slow.events)],
        ["wall time to the last event", f"{slow.wall_s:.1f} s"],
        ["status GETs served", f"{slow.polls} ({slow.polls / n:.1f} per task)"],
        ["**TCP connections opened**", f"{slow.connections_opened} (POOL_SIZE {POOL_SIZE})"],
        ["CPU per 1,000 polls", f"{slow.cpu_s_per_1000_polls:.3f} s"],
    ]
    if slow.first_problem:
        rows.append(["first event that is not a success", slow.first_problem[:160]])
    text = [
        f"### 2b. The same {n} triggers against a slow Confluence (extra check, not one of the goals)",
        "",
        "Every status GET is answered late (the simulator's `slow` fault), so that the triggers ask for more "
        f"polls per second than {POOL_SIZE} pooled connections can carry: polls queue for a connection. "
        "A request that times out while it holds a connection closes it, so connections opened beyond "
        "POOL_SIZE count requests that timed out in flight (each one retried, its answer thrown away).",
        "",
        table(["measure", "value"], rows),
        "",
        "- queueing for a pooled connection causes no timeout in flight "
        f"(connections opened <= {POOL_SIZE}): {verdict(met)}",
    ]
    goals = [
        f"(extra) queueing for the pool causes no timeouts in flight: {slow.connections_opened} connections "
        f"opened (POOL_SIZE {POOL_SIZE}), {slow.polls} GETs for {n} tasks, {counts(slow.events)}: "
        f"{verdict(met)}"
    ]
    return "\n".join(text), goals


GOAL_ADAPTIVE = (
    "adaptive polling needs at most a third of fixed polling's requests at an equal or better p95 delay"
)


def workload_section(workload: WorkloadResult) -> tuple[str, list[str]]:
    from measure import CLAIRVOYANT_REQUESTS, CURVES, clairvoyant_bound, percentile

    fixed = workload.results[0]
    fixed_requests = sum(fixed.all_requests())
    fixed_p95 = percentile(fixed.all_delays(), 95)
    fixed_linear = sum(fixed.requests["linear"])
    fixed_linear_p95 = percentile(fixed.delays["linear"], 95)
    interval, bound, stall_requests = clairvoyant_bound(workload.durations, fixed)
    rows, goal_lines, linear_lines = [], [], []
    for result in workload.results:
        requests, delays = result.all_requests(), result.all_delays()
        share = sum(requests) / fixed_requests
        linear_share = sum(result.requests["linear"]) / fixed_linear
        p95, linear_p95 = percentile(delays, 95), percentile(result.delays["linear"], 95)
        rows.append(
            [
                result.policy.name,
                f"{sum(requests) / max(1, len(requests)):.1f}",
                " / ".join(f"{statistics.fmean(result.requests[c] or [math.nan]):.1f}" for c in CURVES),
                f"{share:.2f}",
                f"{linear_share:.2f}",
                f"{percentile(delays, 50):.1f}",
                f"{p95:.1f}",
                " / ".join(f"{percentile(result.delays[c], 95):.0f}" for c in CURVES),
                f"{max(delays, default=math.nan):.0f}",
                f"{result.non_success}",
            ]
        )
        if result is fixed:
            continue
        clean = result.non_success == 0
        met = clean and share <= GOAL_ADAPTIVE_REQUEST_SHARE and p95 <= fixed_p95
        linear_met = clean and linear_share <= GOAL_ADAPTIVE_REQUEST_SHARE and linear_p95 <= fixed_linear_p95
        failed = "" if clean else f", {result.non_success} not a success"
        reach = "out of reach for any policy on this mix" if bound > GOAL_ADAPTIVE_REQUEST_SHARE else "bound"
        name = "adaptive polling, " + result.policy.name.removeprefix("adaptive, ")
        goal_lines.append(
            f"{name}, whole mix: {share:.2f} of fixed polling's requests at a p95 delay of {p95:.1f} s "
            f"(goal: <= 0.33 at <= fixed polling's {fixed_p95:.1f} s){failed}: {verdict(met)}"
            + ("" if met else f" ({reach}: {bound:.2f}, see 3)")
        )
        linear_lines.append(
            f"{name}, linear tasks: {linear_share:.2f} of fixed polling's requests at a p95 delay of "
            f"{linear_p95:.1f} s (goal: <= 0.33 at <= fixed polling's {fixed_linear_p95:.1f} s on the same "
            f"tasks){failed}: {verdict(linear_met)}"
        )
    linear_stepped = f"{CLAIRVOYANT_REQUESTS:.1f}"
    rows.append(
        [
            "bound (analytic, see below)",
            f"{(2 * CLAIRVOYANT_REQUESTS + stall_requests) / 3:.1f}",
            f"{linear_stepped} / {linear_stepped} / {stall_requests:.1f}",
            f"{bound:.2f}",
            "",
            "",
            f"{fixed_p95:.1f}",
            "",
            "",
            "",
        ]
    )
    n = workload.tasks_per_curve
    low, high = workload.duration_range
    text = [
        "### 3. Fixed versus adaptive polling: realistic durations and progress curves",
        "",
        f"{n} tasks per progress curve (linear; stepped in 25 % steps; stall: 10 % then nothing until a "
        f"jump to 100 %), the same log-uniform durations from {low:g} s to {high:g} s for each curve, time "
        f"scaled down {workload.scale:g}x (1 h runs {3600 / workload.scale:g} s). Every policy polls its "
        f"own copy of the same {3 * n} tasks; all policies ran at once, the triggers starting at random in "
        f"the first {workload.stagger:g} s, in {workload.wall_s:.0f} s, while "
        f"the event loop woke 10 ms sleepers {percentile(workload.loop_lag_ms, 50):.1f} / "
        f"{percentile(workload.loop_lag_ms, 95):.1f} / {max(workload.loop_lag_ms, default=math.nan):.0f} ms "
        f"late (median / p95 / max; x{workload.scale:g} in the delays below). "
        "Intervals and delays are in real (unscaled) seconds. Delay = trigger event received minus the "
        "simulator's `finished_at`. Adaptive polling is the package's own `PollSchedule`, through "
        "`LongTaskTrigger(adaptive_polling=True)`.",
        "",
        *(f"- **{r.policy.name}**: {r.policy.description}" for r in workload.results),
        "",
        table(
            [
                "policy",
                "requests/task",
                "lin / step / stall",
                "x fixed",
                "x fixed, linear",
                "delay p50 s",
                "delay p95 s",
                "p95 lin / step / stall",
                "max s",
                "failed",
            ],
            rows,
        ),
        "",
        f"Goal: {GOAL_ADAPTIVE}.",
        "",
        *(f"- {line}" for line in goal_lines + linear_lines),
        "",
        "**What is reachable on this mix.** A third of the tasks stall, then jump to 100 %: nothing in their "
        "progress says when they end, so any policy must keep polling them at a steady pace. Every trigger "
        "also polls once when it starts (the simulator counts that GET for every policy). Grant a policy "
        "perfect foresight of every linear and stepped task after that first poll: one more request each, "
        f"at its end, no delay ({CLAIRVOYANT_REQUESTS} per task). To keep the pooled p95 at fixed "
        f"polling's {fixed_p95:.1f} s it must still poll the stall third every {interval:.0f} s at most "
        "(with the other two thirds detected at once, the pooled p95 is the stall tasks' 85th percentile, "
        f"0.85 x the interval): that is **{bound:.2f}** of fixed polling's requests (the bound row). "
        f"Below about {bound:.2f}, the p95 goal cannot hold on this mix, whatever the policy; "
        "`PollSchedule` goes back to `poll_interval` for a stall task once its readings contradict a "
        "linear clock, so the stall third costs about what fixed polling costs, and the whole mix lands "
        "near the mean of the three curves' shares.",
        "",
        "The goal is therefore also judged where progress does predict the end: on the linear tasks alone "
        "(`x fixed, linear`, and their p95 against fixed polling's on the same tasks). Stepped tasks (4 "
        "jumps of 25 %) say too little for a third: one reading of 25 % only places the end between 2 and "
        "4 times the elapsed time.",
        "",
        "One caveat about the simulator: its stall curve climbs linearly to 10 % over the first tenth of "
        "the duration, so its first readings do point at the real end. A policy that trusted them through "
        "the stall would beat the bound here, but only because of how the curve is simulated: a real stall "
        "says nothing about when it ends, and `PollSchedule` rightly stops predicting.",
    ]
    return "\n".join(text), goal_lines + linear_lines


def model_section(model: list[ModelResult], durations: list[float], plan: Plan) -> str:
    from measure import ENDS_EARLY, percentile

    fixed = model[0]
    fixed_requests = fixed.pooled()[0]
    fixed_linear = sum(fixed.requests["linear"])
    rows = []
    by_bounds: dict[tuple[float | None, float | None], list[float]] = {}
    for result in model:
        requests, delays = result.pooled()
        figures = [
            requests / fixed_requests,
            percentile(delays, 50),
            percentile(delays, 95),
            sum(result.requests["linear"]) / fixed_linear,
            percentile(result.delays["linear"], 50),
            percentile(result.delays["linear"], 95),
            max(delays),
            percentile(result.delays[ENDS_EARLY], 95),
            max(result.delays[ENDS_EARLY]),
        ]
        if result.policy.adaptive:
            by_bounds[(result.policy.min_interval, result.policy.max_interval)] = figures
        rows.append(
            [result.policy.name, *(f"{v:.2f}" if i in (0, 3) else f"{v:.0f}" for i, v in enumerate(figures))]
        )
    p = plan.fixed_interval
    low, high = recommended_bounds(p)
    default, recommended, half = by_bounds[(None, None)], by_bounds[(low, high)], by_bounds[(p / 2, high)]
    shorter, longer, longest = by_bounds[(low, 5 * p)], by_bounds[(low, 20 * p)], by_bounds[(low, 60 * p)]
    n = len(durations)
    return "\n".join(
        [
            "### 3b. Choosing the bounds: the same `PollSchedule` in a model",
            "",
            f"{n} tasks per curve (the workload's {plan.tasks_per_curve} durations, then "
            f"{n - plan.tasks_per_curve} more from the same log-uniform draw), each polled by the package's "
            "`PollSchedule` through the simulator's own progress curves (`SimTask`) and "
            "`LongTask.from_json`, in simulated time: each poll costs a "
            f"{plan.model_round_trip:g} s round trip on top of the wait, nothing else varies (no server, no "
            f"event loop, no time scaling), with poll_interval = {p:g} s. Requests and delays pool the "
            "workload's three curves as in 3. One more curve, in the model only: *ends early*, a linear "
            "task whose progress runs at the pace of a task twice as long and that ends at half of it (the "
            "rest of a page tree turned out to be empty, say). Its end comes before the window the schedule "
            "reads from its progress, which is where a long wait costs delay: fixed polling sees it within "
            f"{p:g} s.",
            "",
            table(
                [
                    "bounds",
                    "x fixed",
                    "p50 s",
                    "p95 s",
                    "x fixed, linear",
                    "p50 linear s",
                    "p95 linear s",
                    "max delay s",
                    "ends early: p95 s",
                    "ends early: max s",
                ],
                rows,
            ),
            "",
            f"**Recommended for poll_interval = {p:g} s: min_poll_interval = {low:g} s, max_poll_interval = "
            f"{high:g} s** (poll_interval / 6 and 10 x poll_interval, the default maximum):",
            "",
            f"- *min*: the default minimum (= poll_interval) waits {p:g} s even when the window says the "
            f"end is due in a few seconds. {low:g} s costs hardly any requests ({recommended[0]:.2f} of "
            f"fixed polling's against {default[0]:.2f}; linear tasks {recommended[3]:.2f} against "
            f"{default[3]:.2f}), because the schedule polls once at the upper edge of a narrow window and "
            "at poll_interval after it, never repeatedly at the minimum; it cuts the delay of linear tasks "
            f"from {default[4]:.0f} s to {recommended[4]:.0f} s at the median and from {default[5]:.0f} s "
            f"to {recommended[5]:.0f} s at the p95. {p / 2:g} s is nearly as good (median {half[1]:.1f} s "
            f"against {recommended[1]:.1f} s over the mix, {half[4]:.1f} s against {recommended[4]:.1f} s on "
            "linear tasks); the gap is in short tasks, whose window edge is often only seconds away.",
            f"- *max*: a longer maximum saves little ({longer[3]:.2f} and {longest[3]:.2f} of fixed "
            f"polling's requests on linear tasks with {20 * p:g} s and {60 * p:g} s, against "
            f"{recommended[3]:.2f}), but it is the price of a wrong prediction: a task that ends early is "
            f"seen up to {longer[8]:.0f} s and {longest[8]:.0f} s late, against {recommended[8]:.0f} s. "
            f"A shorter one ({5 * p:g} s) costs requests ({shorter[3]:.2f} on linear tasks) and bounds that "
            f"delay at {shorter[8]:.0f} s: 10 x poll_interval is the middle ground, and the default.",
        ]
    )


METHOD = """\
- **CPU per poll**: one running task polled sequentially over keep-alive connections. *Floor*:
  `aiohttp.ClientSession.get` with the same Authorization header, then `json.loads`. *Ours*: one
  `ConfluenceHook` reused across polls (connection read once, pooled session), as a trigger uses it.
  *HttpAsyncHook*: `run(session=..., endpoint=...)` with an `http` connection to the same server and
  credentials, hook and session reused, then `json.loads` of the body. Each repetition runs the three back
  to back in rotating order after a short warm-up; ratios are medians of per-repetition ratios.
- **Triggers**: each trigger's `run()` is driven to its first event on its own asyncio task, all started at
  once, as one triggerer would hold them. CPU is `time.process_time` over the whole run (trigger creation,
  connection reads and events included) divided by the polls the simulator served. Memory: the tracemalloc
  peak minus the level before the triggers were created, in a second identical run (tracemalloc slows
  everything down); RSS growth (peak, sampled every 0.1 s, minus the level before) in the first.
  Connections: the event loop counts its `create_connection` calls (aiohttp opens every connection through
  it); open sockets are sampled from /proc/self/fd. Log lines below ERROR are filtered out
  (`AIRFLOW__LOGGING__LOGGING_LEVEL=ERROR`): where they go in a triggerer is not this package's cost.
- **Workload**: requests per task are the simulator's status GETs of that task; each task starts its clock
  at its first poll. Time is divided by the scale factor, so event-loop latency is multiplied by it in the
  delays (a few ms become a few tenths of a second): the triggers start at random within the first
  seconds, as deferrals reach a triggerer, since several hundred first polls at once would queue for tenths
  of a second, i.e. tens of (scaled) seconds of delay for the shortest tasks. `elapsedTime` is in
  milliseconds, i.e. 0.1 s of scaled time, far below the intervals compared.
- **Garbage collection**: before each part the benchmark collects and then freezes (`gc.freeze`) what
  survives, mostly Airflow's own imports; otherwise a full collection over them, a pause of about half a
  second, lands at random in the figures (in part 3, 50 s of "delay" for whichever task ends then).
- **Bounds model (3b)**: no measurement at all, a replay of the real `PollSchedule` against the
  simulator's progress curves in simulated time; it shows how the bounds trade requests for delay on
  more tasks than the workload can run, and on a curve the simulator does not serve (*ends early*).
"""


def report(results: Results, command: str, total_s: float) -> str:
    cpu_text, cpu_goals = cpu_section(results.cpu)
    fleet_text, fleet_goals = fleet_section(results.fleet, results.fleet_memory)
    slow_text, slow_goals = slow_section(results.slow, results.plan)
    workload_text, workload_goals = workload_section(results.workload)
    model_text = model_section(results.model, results.model_durations, results.plan)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = (
        "a quick smoke run (`--quick`, small samples: do not quote)" if results.plan.quick else "a full run"
    )
    return "\n".join(
        [
            "# Benchmarks",
            "",
            f"Written by `benchmarks/bench.py` on {now}: {mode}, {total_s:.0f} s in all.",
            "",
            f"- Machine: {machine()}. Shared and noisy: compare figures within one run, not across runs.",
            f"- Reproduce: `{command}`.",
            "- The simulator (`python -m airflow_provider_confluence.testing --scenario empty`) runs in its "
            "own process: only the benchmark process's CPU time is counted.",
            "",
            "## Goals",
            "",
            *(f"- {line}" for line in cpu_goals + fleet_goals + workload_goals + slow_goals),
            "",
            "## Results",
            "",
            cpu_text,
            "",
            fleet_text,
            "",
            slow_text,
            "",
            workload_text,
            "",
            model_text,
            "",
            "## Method",
            "",
            METHOD,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 60 s); writes no file")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the report (default: BENCHMARKS.md for a full run, nothing for --quick)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    plan = Plan.smoke() if args.quick else Plan.full()
    output = args.output if args.output is not None else (None if args.quick else ROOT / "BENCHMARKS.md")
    workdir = Path(tempfile.mkdtemp(prefix="confluence-bench-"))
    try:
        prepare_environment(workdir)
        results = run(plan, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    command = "python benchmarks/bench.py --quick" if args.quick else "make bench"
    text = report(results, command, time.perf_counter() - started)
    print(text)
    if output is not None:
        output.write_text(text)
        print(f"[bench] wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
