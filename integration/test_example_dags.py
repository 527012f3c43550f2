"""
The example DAGs, triggered through Airflow's REST API and run by the real scheduler, LocalExecutor and
triggerer; every check goes through the API (states, the TI's trigger and triggerer job, XCom, logs).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest
from harness import quote, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Deployment

WAIT_DAG = "example_confluence_wait_for_long_task"
WAIT_TASK = "wait_for_confluence_task"
RUN_TIMEOUT = 240


def watch_deferral(dep: Deployment, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    """Poll the TI until it is ``deferred`` with a trigger held by a triggerer; that TI as seen then."""

    def deferred() -> dict[str, Any] | None:
        ti = dep.api.task_instance(dag_id, run_id, task_id)
        if ti["state"] in ("success", "failed", "upstream_failed"):
            pytest.fail(f"{task_id} ended ({ti['state']}) without being seen deferred")
        if ti["state"] == "deferred" and ti["trigger"] and ti["triggerer_job"]:
            return ti
        return None

    return dict(
        wait_for(deferred, timeout=120, what=f"{task_id} to be deferred in a triggerer", interval=0.5)
    )


def check_trigger_ran_in_triggerer(ti: dict[str, Any], task_log: str, long_task_id: str) -> None:
    """The TI was held by a TriggererJob, and the task log has that triggerer's part with our polls."""
    trigger, job = ti["trigger"], ti["triggerer_job"]
    assert trigger["classpath"] == "airflow_provider_confluence.triggers.longtask.LongTaskTrigger"
    assert job["job_type"] == "TriggererJob", job
    assert trigger["triggerer_id"] == job["id"]
    assert f".trigger.{job['id']}.log" in task_log, "the log has no part from that triggerer"
    assert "Deferring: waiting for Confluence task" in task_log  # the worker's part
    lines = task_log.splitlines()
    start = next(i for i, line in enumerate(lines) if "starting" in line and "trigger " in line)
    fired = next(i for i, line in enumerate(lines) if "Trigger fired event" in line)
    progress = [line for line in lines[start:fired] if f"Confluence task {long_task_id} (" in line]
    assert len(progress) >= 2, "the trigger's progress lines are missing from the task log"


def test_sensor_defers_and_its_trigger_runs_in_the_triggerer(dags_ready: Deployment) -> None:
    dep = dags_ready
    long_task_id = dep.sim.create_task(
        duration=16,
        outcome="success",
        start_on_first_poll=True,
        status_message="Exporting space",
        additional_details={"destinationUrl": f"{dep.sim.base_url}/wiki/download/export-it.zip"},
    )
    run_id = dep.api.trigger(WAIT_DAG, {"long_task_id": long_task_id})
    ti = watch_deferral(dep, WAIT_DAG, run_id, WAIT_TASK)
    polls_while_deferred = wait_for(
        lambda: dep.sim.status_gets(long_task_id) >= 3, timeout=60, what="the trigger's polls"
    )
    assert polls_while_deferred

    run = dep.api.wait_run_done(WAIT_DAG, run_id, RUN_TIMEOUT)
    assert run["state"] == "success", run
    states = {t["task_id"]: t["state"] for t in dep.api.task_instances(WAIT_DAG, run_id)}
    assert states == {WAIT_TASK: "success", "report": "success"}

    final = dep.api.task_instance(WAIT_DAG, run_id, WAIT_TASK)
    task_log = dep.api.task_log(WAIT_DAG, run_id, WAIT_TASK, final["try_number"])
    check_trigger_ran_in_triggerer(ti, task_log, long_task_id)
    # one check in the worker, then polls at ~2 s for ~16 s from the triggerer
    assert dep.sim.status_gets(long_task_id) >= 5

    status = dep.api.xcom(WAIT_DAG, run_id, WAIT_TASK)
    assert status["id"] == long_task_id
    assert status["additional_details"]["destinationUrl"].endswith("/export-it.zip")
    report = dep.api.xcom(WAIT_DAG, run_id, "report")
    assert f"Confluence task {long_task_id} finished successfully" in report


def test_failing_confluence_task_fails_the_run_with_its_error_keys(dags_ready: Deployment) -> None:
    dep = dags_ready
    long_task_id = dep.sim.create_task(
        duration=8,
        outcome="failure",
        error_keys=["ERROR_LOCK_FAILED", "ERROR_RELINK"],
        error_args=["ITSPACE"],
        start_on_first_poll=True,
    )
    run_id = dep.api.trigger(WAIT_DAG, {"long_task_id": long_task_id})
    watch_deferral(dep, WAIT_DAG, run_id, WAIT_TASK)
    run = dep.api.wait_run_done(WAIT_DAG, run_id, RUN_TIMEOUT)
    assert run["state"] == "failed", run

    states = {t["task_id"]: t["state"] for t in dep.api.task_instances(WAIT_DAG, run_id)}
    assert states == {WAIT_TASK: "failed", "report": "upstream_failed"}
    ti = dep.api.task_instance(WAIT_DAG, run_id, WAIT_TASK)
    assert ti["try_number"] == 1, "LongTaskFailed is final: Airflow must not retry it"
    task_log = dep.api.task_log(WAIT_DAG, run_id, WAIT_TASK, ti["try_number"])
    assert "LongTaskFailed" in task_log
    assert "ERROR_LOCK_FAILED" in task_log
    assert "ERROR_RELINK" in task_log


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


@pytest.mark.parametrize(
    ("dag_id", "conf", "logical_date", "report_task", "expect_in_report"),
    [
        (
            # as its @daily schedule would run it: with a logical date ({{ ds }} in the copy's title)
            "example_confluence_nightly_backup",
            {"source_page_id": "65601", "archive_parent_id": "98305"},
            now_iso,
            "report",
            "Backup copied 10 page(s) to ",
        ),
        ("example_confluence_archive_old_pages", {"page_ids": ["65601", "65602", "65603"]}, None, None, None),
    ],
    ids=["nightly-backup", "archive-old-pages"],
)
def test_operator_example_dags_succeed(
    dags_ready: Deployment,
    dag_id: str,
    conf: dict[str, Any],
    logical_date: Callable[[], str] | None,
    report_task: str | None,
    expect_in_report: str | None,
) -> None:
    dep = dags_ready
    before = dep.sim.stats()["requests_by_kind"]
    started = time.monotonic()
    run_id = dep.api.trigger(dag_id, conf, logical_date=logical_date() if logical_date else None)
    run = dep.api.wait_run_done(dag_id, run_id, RUN_TIMEOUT)
    tis = dep.api.task_instances(dag_id, run_id)
    assert run["state"] == "success", (run, [(t["task_id"], t["state"]) for t in tis])
    assert all(t["state"] == "success" and t["try_number"] == 1 for t in tis)
    after = dep.sim.stats()["requests_by_kind"]
    started_kind = "copy" if "backup" in dag_id else "archive"
    assert after.get(started_kind, 0) == before.get(started_kind, 0) + 1, "the work was started once"
    assert after.get("status", 0) > before.get("status", 0)
    if report_task and expect_in_report:
        assert expect_in_report in dep.api.xcom(dag_id, run_id, report_task)
    print(f"{dag_id}: success in {time.monotonic() - started:.0f} s")


def test_backup_example_runs_when_triggered_without_a_logical_date(dags_ready: Deployment) -> None:
    dep = dags_ready
    dag_id = "example_confluence_nightly_backup"
    run_id = dep.api.trigger(dag_id, {"source_page_id": "65601", "archive_parent_id": "98305"})
    try:

        def settled() -> dict[str, Any] | None:
            ti = dep.api.task_instance(dag_id, run_id, "copy_page_tree")
            return ti if ti["state"] in ("success", "failed", "up_for_retry", "deferred") else None

        ti = wait_for(settled, timeout=RUN_TIMEOUT, what="copy_page_tree to start waiting or fail")
        if ti["state"] == "up_for_retry":
            log = dep.api.task_log(dag_id, run_id, "copy_page_tree", ti["try_number"])
            pytest.fail(
                "copy_page_tree failed: " + ("'ds' is undefined" if "'ds' is undefined" in log else log)
            )
        run = dep.api.wait_run_done(dag_id, run_id, RUN_TIMEOUT)
        assert run["state"] == "success"
    finally:  # no retries 5 minutes later
        if dep.api.run(dag_id, run_id)["state"] not in ("success", "failed"):
            dep.api.patch(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}", {"state": "failed"})
