"""
Wait for a Confluence long task started elsewhere (a space export, a space deletion...).

Trigger it with the task id in the run's configuration::

    airflow dags trigger example_confluence_wait_for_long_task --conf '{"long_task_id": "1180606"}'

The sensor defers: it holds no worker slot while Confluence works, logs progress, and fails with
Confluence's error keys if the task fails. Its XCom is the final status; ``report`` uses it.
Needs a connection ``confluence_default`` (see the README). ``CONFLUENCE_EXAMPLE_POLL_SECONDS``
only exists so that ``make demo`` can poll quickly; in your own DAG write the interval you want.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_confluence.sensors.longtask import LongTaskSensor

POLL_SECONDS = float(os.environ.get("CONFLUENCE_EXAMPLE_POLL_SECONDS", "30"))

with DAG(
    dag_id="example_confluence_wait_for_long_task",
    description="Wait for a Confluence long-running task whose id comes from the run's configuration.",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    params={
        "long_task_id": Param(
            "", type="string", minLength=1, description="The id of the Confluence long task to wait for."
        ),
    },
    tags=["confluence", "example"],
) as dag:
    wait = LongTaskSensor(
        task_id="wait_for_confluence_task",
        long_task_id="{{ params.long_task_id }}",
        confluence_conn_id="confluence_default",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=timedelta(hours=6).total_seconds(),
        not_found_grace_period=60,
    )

    @task
    def report(status: dict[str, Any]) -> str:
        """Use the final status: here, say what finished and where its result is."""
        where = status["additional_details"].get("destinationUrl") or "(no download link)"
        line = f"Confluence task {status['id']} finished successfully; result: {where}"
        if status["warning_keys"]:
            line += f"; warnings: {', '.join(status['warning_keys'])}"
        print(line)
        return line

    report(wait.output)
