"""
Clean-up: archive pages that are no longer maintained, and wait until Confluence has archived them.

``ArchivePagesOperator`` starts one archive job (Confluence Cloud allows one at a time per site, and
at most 300 pages per job), then waits for it. The pages come from ``params`` here; in a real
pipeline an upstream task would select them (e.g. with a CQL search) and pass the list by XCom.
Needs a connection ``confluence_default`` (see the README).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_confluence.operators.pages import ArchivePagesOperator

POLL_SECONDS = float(os.environ.get("CONFLUENCE_EXAMPLE_POLL_SECONDS", "30"))

with DAG(
    dag_id="example_confluence_archive_old_pages",
    description="Archive stale Confluence pages and wait for the archive job.",
    start_date=datetime(2026, 1, 1),
    schedule="@weekly",
    catchup=False,
    params={
        "page_ids": Param(["65601", "65602", "65603"], type="array", description="Pages to archive."),
    },
    render_template_as_native_obj=True,  # {{ params.page_ids }} renders as a list
    tags=["confluence", "example", "housekeeping"],
) as dag:
    ArchivePagesOperator(
        task_id="archive_stale_pages",
        page_ids="{{ params.page_ids }}",
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=timedelta(hours=1).total_seconds(),
    )
