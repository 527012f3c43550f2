"""
Integration tier: deferred sensors that must survive a triggerer killed with SIGKILL.

Run configuration: ``{"done_task": "<id>", "late_task": "<id>"}``. ``wait_until_done`` waits for a
task that ends well within its timeout (it must succeed after the restart); ``wait_past_deadline``
waits for a task that outlives its timeout (it must fail at the original deadline, not at one reset
by the restart).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_confluence.sensors.longtask import LongTaskSensor

POLL_SECONDS = float(os.environ.get("CONFLUENCE_EXAMPLE_POLL_SECONDS", "30"))
DONE_TIMEOUT = 150
LATE_TIMEOUT = 75

with DAG(
    dag_id="integration_triggerer_restart",
    description="Deferred sensors across a triggerer killed with SIGKILL (integration tier).",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["confluence", "integration"],
) as dag:
    LongTaskSensor(
        task_id="wait_until_done",
        long_task_id="{{ dag_run.conf['done_task'] }}",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=DONE_TIMEOUT,
    )
    LongTaskSensor(
        task_id="wait_past_deadline",
        long_task_id="{{ dag_run.conf['late_task'] }}",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=LATE_TIMEOUT,
    )
