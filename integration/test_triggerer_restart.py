"""
A triggerer killed with SIGKILL while sensors wait in it, then started again: the new triggerer takes
the triggers over, polls resume, and each sensor ends as it should, by its ORIGINAL deadline.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from harness import wait_for

if TYPE_CHECKING:
    from conftest import Deployment

DAG_ID = "integration_triggerer_restart"
DONE, LATE = "wait_until_done", "wait_past_deadline"
DONE_TIMEOUT, LATE_TIMEOUT = 150, 75  # as in integration/dags/integration_restart.py
DOWN_SECONDS = 10
#: how late a sensor may end after its deadline: the trigger's last poll, the event, the worker resuming
END_SLACK = 30


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_killed_triggerer_is_replaced_and_sensors_keep_their_deadlines(dags_ready: Deployment) -> None:
    dep = dags_ready
    done_task = dep.sim.create_task(duration=40, start_on_first_poll=True, status_message="Exporting")
    late_task = dep.sim.create_task(duration=900, start_on_first_poll=True, status_message="Deleting")
    run_id = dep.api.trigger(DAG_ID, {"done_task": done_task, "late_task": late_task})

    # 1. both sensors deferred to the running triggerer, which polls Confluence
    def both_deferred() -> dict[str, dict[str, Any]] | None:
        tis = {t["task_id"]: t for t in dep.api.task_instances(DAG_ID, run_id)}
        ready = all(tis[t]["state"] == "deferred" and tis[t]["triggerer_job"] for t in (DONE, LATE))
        return tis if ready else None

    tis = wait_for(both_deferred, timeout=120, what="both sensors to be deferred", interval=0.5)
    first_job = tis[DONE]["triggerer_job"]["id"]
    started = {t: when(tis[t]["start_date"]) for t in (DONE, LATE)}
    wait_for(
        lambda: dep.sim.status_gets(done_task) >= 3 and dep.sim.status_gets(late_task) >= 3,
        timeout=60,
        what="the triggerer's polls",
        interval=0.5,
    )

    # 2. SIGKILL the triggerer (its whole process group: supervisor and trigger runner), keep it down
    dep.processes.kill_group("triggerer")
    killed_at = time.time()
    time.sleep(2)  # a poll already on the wire may still land
    polls_at_kill = {t: dep.sim.status_gets(t) for t in (done_task, late_task)}
    time.sleep(DOWN_SECONDS)
    polls_while_down = {t: dep.sim.status_gets(t) for t in (done_task, late_task)}
    assert polls_while_down == polls_at_kill, "something still polled with the triggerer dead"
    states = {t["task_id"]: t["state"] for t in dep.api.task_instances(DAG_ID, run_id)}
    assert states == {DONE: "deferred", LATE: "deferred"}, states

    # 3. a new triggerer takes the orphaned triggers over and polls again
    dep.start_triggerer()
    restarted_at = time.time()

    def taken_over() -> int | None:
        ti = dep.api.task_instance(DAG_ID, run_id, LATE)
        job = ti["triggerer_job"]
        return job["id"] if ti["state"] == "deferred" and job and job["id"] != first_job else None

    new_job = wait_for(taken_over, timeout=90, what="a new triggerer to take the triggers", interval=1)
    wait_for(
        lambda: dep.sim.status_gets(late_task) > polls_while_down[late_task],
        timeout=60,
        what="polls after the restart",
        interval=0.5,
    )
    took_over_after = time.time() - restarted_at

    # 4. outcomes and deadlines
    run = dep.api.wait_run_done(DAG_ID, run_id, timeout=LATE_TIMEOUT + DONE_TIMEOUT)
    final = {t["task_id"]: t for t in dep.api.task_instances(DAG_ID, run_id)}
    assert final[DONE]["state"] == "success", final[DONE]
    assert final[LATE]["state"] == "failed", final[LATE]
    assert run["state"] == "failed"  # because of the late one; the done one succeeded

    done_end = when(final[DONE]["end_date"])
    assert done_end <= started[DONE] + timedelta(seconds=DONE_TIMEOUT), "succeeded, but past its timeout"
    assert dep.sim.status_gets(done_task) > polls_while_down[done_task]
    status = dep.api.xcom(DAG_ID, run_id, DONE)
    assert status["id"] == done_task

    late_end = when(final[LATE]["end_date"])
    late_took = (late_end - started[LATE]).total_seconds()
    assert LATE_TIMEOUT <= late_took <= LATE_TIMEOUT + END_SLACK, (
        f"{LATE} ended {late_took:.0f} s after it started; its timeout is {LATE_TIMEOUT} s (the restart "
        f"came {restarted_at - killed_at:.0f} s after the kill: a deadline counted from the restart "
        f"would end after {LATE_TIMEOUT + restarted_at - killed_at:.0f} s or more)"
    )
    late_log = dep.api.task_log(DAG_ID, run_id, LATE, final[LATE]["try_number"])
    assert f".trigger.{first_job}.log" in late_log, "the first triggerer's part of the log"
    assert f".trigger.{new_job}.log" in late_log, "the new triggerer's part of the log"
    assert "AirflowSensorTimeout" in late_log or "timeout" in late_log.lower()
    print(
        f"triggerer {first_job} killed; triggerer {new_job} took over {took_over_after:.0f} s after its "
        f"start; {DONE} succeeded at +{(done_end - started[DONE]).total_seconds():.0f} s "
        f"(timeout {DONE_TIMEOUT} s); {LATE} timed out at +{late_took:.0f} s (timeout {LATE_TIMEOUT} s); "
        f"provider's timeout message: {'did not finish before the sensor' in late_log}"
    )
