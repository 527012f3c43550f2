"""
Nightly backup: copy a page tree into an archive space, wait for the copy, report where it went.

Confluence runs the copy as a long task. The first task starts it and returns the task id; the
sensor waits for it without holding a worker slot (deferrable); the last task reads the
destination page from the sensor's result (its XCom). Set the page ids in ``params`` (or in the
run's configuration). Needs a connection ``confluence_default`` (see the README).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_confluence.hooks.confluence import ConfluenceHook
from airflow_provider_confluence.sensors.longtask import LongTaskSensor

POLL_SECONDS = float(os.environ.get("CONFLUENCE_EXAMPLE_POLL_SECONDS", "30"))

with DAG(
    dag_id="example_confluence_nightly_backup",
    description="Copy a Confluence page tree into an archive space every night and wait for the copy.",
    start_date=datetime(2026, 1, 1),
    schedule="@daily",
    catchup=False,
    params={
        "source_page_id": Param("65601", type="string", description="Root page of the tree to back up."),
        "archive_parent_id": Param("98305", type="string", description="Page that receives the copy."),
    },
    tags=["confluence", "example", "backup"],
) as dag:

    @task
    def start_copy(params: dict[str, Any] | None = None, ds: str | None = None) -> str:
        """Start the copy; the return value (XCom) is the Confluence long-task id."""
        assert params is not None
        hook = ConfluenceHook("confluence_default")
        return hook.copy_page_hierarchy(
            params["source_page_id"],
            destination_page_id=params["archive_parent_id"],
            copy_attachments=True,
            copy_labels=True,
            title_options={"prefix": f"[backup {ds}] "},
        )

    wait = LongTaskSensor(
        task_id="wait_for_copy",
        long_task_id="{{ ti.xcom_pull(task_ids='start_copy') }}",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=timedelta(hours=3).total_seconds(),
        not_found_grace_period=120,
    )

    @task
    def report(status: dict[str, Any]) -> str:
        details = status["additional_details"]
        line = (
            f"Backup copied {details.get('totalPageNeedToCopy', '?')} page(s) to "
            f"{details.get('destinationUrl', '(unknown)')}"
        )
        print(line)
        return line

    start_copy() >> wait
    report(wait.output)
