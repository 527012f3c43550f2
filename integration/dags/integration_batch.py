"""
Integration tier: fifty deferrable ``LongTaskSensor`` tasks in one run, all waiting in the triggerer.

The test creates the fifty Confluence tasks through the simulator's control API and passes their ids
in the run's configuration: ``{"task_ids": ["...", ...]}`` (``wait_00`` waits on the first id...).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_confluence.sensors.longtask import LongTaskSensor

BATCH_SIZE = 50
POLL_SECONDS = float(os.environ.get("CONFLUENCE_EXAMPLE_POLL_SECONDS", "30"))

with DAG(
    dag_id="integration_batch_deferred_sensors",
    description="Fifty deferred sensors in one run (integration tier).",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["confluence", "integration"],
) as dag:
    for index in range(BATCH_SIZE):
        LongTaskSensor(
            task_id=f"wait_{index:02d}",
            long_task_id=f"{{{{ dag_run.conf['task_ids'][{index}] }}}}",
            deferrable=True,
            poke_interval=POLL_SECONDS,
            timeout=600,
        )
