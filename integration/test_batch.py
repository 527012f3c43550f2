"""Fifty deferrable sensors in one run, all waiting in one triggerer; every outcome must be right."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from harness import wait_for

if TYPE_CHECKING:
    from conftest import Deployment

DAG_ID = "integration_batch_deferred_sensors"
BATCH = 50  # as in integration/dags/integration_batch.py


def expected_outcome(index: int) -> str:
    if index % 10 == 4:
        return "failure"
    if index % 10 == 7:
        return "warnings"
    return "success"


def test_fifty_deferred_sensors_complete_with_the_right_outcomes(dags_ready: Deployment) -> None:
    dep = dags_ready
    task_ids = []
    for index in range(BATCH):
        outcome = expected_outcome(index)
        spec: dict[str, object] = {
            "duration": 24 + (index % 5) * 3,  # 24 to 36 s, from each task's first poll
            "outcome": outcome,
            "start_on_first_poll": True,
            "status_message": f"batch item {index}",
        }
        if outcome == "failure":
            spec["error_keys"] = ["ERROR_COPY_PAGE", f"ERROR_BATCH_ITEM_{index:02d}"]
        if outcome == "warnings":
            spec["warning_keys"] = ["WARN_RENAME_PAGE"]
        task_ids.append(dep.sim.create_task(**spec))
    started = time.monotonic()
    run_id = dep.api.trigger(DAG_ID, {"task_ids": task_ids})

    seen_deferred: set[str] = set()
    peak = 0

    def finished() -> bool:
        nonlocal peak
        tis = dep.api.task_instances(DAG_ID, run_id)
        deferred = {t["task_id"] for t in tis if t["state"] == "deferred"}
        seen_deferred.update(deferred)
        peak = max(peak, len(deferred))
        run = dep.api.run(DAG_ID, run_id)
        return run["state"] in ("success", "failed")

    wait_for(finished, timeout=420, what=f"the {BATCH}-sensor run to end", interval=1)
    took = time.monotonic() - started

    tis = {t["task_id"]: t for t in dep.api.task_instances(DAG_ID, run_id)}
    assert len(tis) == BATCH
    wrong = []
    for index, long_task_id in enumerate(task_ids):
        task_id = f"wait_{index:02d}"
        want = "failed" if expected_outcome(index) == "failure" else "success"
        if tis[task_id]["state"] != want:
            wrong.append(f"{task_id}: {tis[task_id]['state']} (expected {want})")
        if tis[task_id]["try_number"] != 1:
            wrong.append(f"{task_id}: try {tis[task_id]['try_number']}")
        if dep.sim.status_gets(long_task_id) < 3:
            wrong.append(f"{task_id}: only {dep.sim.status_gets(long_task_id)} status polls")
    assert not wrong, "\n".join(wrong)
    assert seen_deferred == set(tis), f"never seen deferred: {sorted(set(tis) - seen_deferred)}"
    assert dep.api.run(DAG_ID, run_id)["state"] == "failed"  # five of them failed, as designed

    for index, long_task_id in enumerate(task_ids):
        task_id = f"wait_{index:02d}"
        outcome = expected_outcome(index)
        if outcome == "failure":
            log = dep.api.task_log(DAG_ID, run_id, task_id, 1)
            assert "LongTaskFailed" in log, task_id
            assert f"ERROR_BATCH_ITEM_{index:02d}" in log, task_id
        else:
            status = dep.api.xcom(DAG_ID, run_id, task_id)
            assert status["id"] == long_task_id, task_id
            assert status["warning_keys"] == (["WARN_RENAME_PAGE"] if outcome == "warnings" else [])
    print(f"{BATCH} sensors: ended in {took:.0f} s, at most {peak} deferred at once; all outcomes right")
