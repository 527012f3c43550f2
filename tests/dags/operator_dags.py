"""DAGs for the operators' end-to-end tests (they must live in a DAG bundle for dag.test)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_confluence.operators.pages import CopyPageHierarchyOperator
from airflow_provider_confluence.operators.spaces import DeleteSpaceOperator

# Copy a page tree, deferrable; `report` reads the summary (XCom return value) and the pushed task id.
with DAG(
    dag_id="confluence_operator_copy_deferrable",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    params={"page_id": Param("65601", type="string"), "destination_page_id": Param("98305", type="string")},
) as copy_dag:
    copy = CopyPageHierarchyOperator(
        task_id="copy",
        page_id="{{ params.page_id }}",
        destination_page_id="{{ params.destination_page_id }}",
        title_options={"prefix": "[copy {{ ds }}] "},
        deferrable=True,
        poll_interval=0.2,
        timeout=30,
    )

    @task
    def report(status: dict[str, Any], **context: Any) -> None:
        pushed = context["ti"].xcom_pull(task_ids="copy", key="long_task_id")
        details = status["additional_details"]
        print(f"REPORT id={status['id']} pushed={pushed} destination={details.get('destinationId')}")

    report(copy.output)

# Delete a space, deferrable, confirmed.
with DAG(
    dag_id="confluence_operator_delete_space_deferrable",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    params={"space_key": Param("OLD", type="string")},
) as delete_space_dag:
    DeleteSpaceOperator(
        task_id="delete_space",
        space_key="{{ params.space_key }}",
        confirm_delete=True,
        deferrable=True,
        poll_interval=0.2,
        timeout=30,
    )
