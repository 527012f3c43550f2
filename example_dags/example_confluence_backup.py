"""
Nightly backup: copy a page tree into an archive space, wait for the copy, report where it went.

``CopyPageHierarchyOperator`` starts the copy (a Confluence long task), pushes the task id to XCom
(key ``long_task_id``), then waits for it in the triggerer (deferrable) and returns the final status.
If the Airflow task is retried while the copy still runs, it resumes waiting on the same copy instead
of starting a second one. ``report`` reads the destination from the status. Set the page ids in
``params`` (or in the run's configuration). Needs a connection ``confluence_default`` (see the README).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_confluence.operators.pages import CopyPageHierarchyOperator

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
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["confluence", "example", "backup"],
) as dag:
    copy = CopyPageHierarchyOperator(
        task_id="copy_page_tree",
        page_id="{{ params.source_page_id }}",
        destination_page_id="{{ params.archive_parent_id }}",
        # run_after, not ds: a run triggered by hand in Airflow 3 may have no logical date
        title_options={"prefix": "[backup {{ dag_run.run_after | ds }}] "},
        copy_permissions=False,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=timedelta(hours=3).total_seconds(),
    )

    @task
    def report(status: dict[str, Any]) -> str:
        """Use the copy's final status: where the backup is and how many pages it holds."""
        details = status["additional_details"]
        line = (
            f"Backup copied {details.get('totalPageNeedToCopy', '?')} page(s) to "
            f"{details.get('destinationUrl', '(unknown)')}"
        )
        if status["warning_keys"]:
            line += f" with warnings {', '.join(status['warning_keys'])}"
        print(line)
        return line

    report(copy.output)
