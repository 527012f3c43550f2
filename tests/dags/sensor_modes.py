"""DAGs for the sensor's tests in every mode (they must live in a DAG bundle for dag.test)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_confluence.sensors.longtask import LongTaskSensor

_PARAMS = {"long_task_id": Param("", type="string")}

# The task id reaches the sensor through an upstream task's XCom; the sensor's XCom reaches `report`.
with DAG(
    dag_id="confluence_sensor_xcom_template",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    params=_PARAMS,
) as xcom_dag:

    @task
    def pick(params: dict[str, Any]) -> str:
        return str(params["long_task_id"])

    wait = LongTaskSensor(
        task_id="wait",
        long_task_id="{{ ti.xcom_pull(task_ids='pick') }}",
        mode="poke",
        poke_interval=0.1,
        timeout=20,
    )

    @task
    def report(status: dict[str, Any]) -> None:
        print(f"REPORT id={status['id']} url={status['additional_details'].get('destinationUrl')}")

    pick() >> wait
    report(wait.output)

# Reschedule mode, the id from the run's params.
with DAG(
    dag_id="confluence_sensor_reschedule",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    params=_PARAMS,
) as reschedule_dag:
    LongTaskSensor(
        task_id="wait",
        long_task_id="{{ params.long_task_id }}",
        mode="reschedule",
        poke_interval=0.2,
        timeout=30,
    )

# soft_fail in poke and in deferrable mode: a failed Confluence task must give the same state.
for _mode in ("poke", "deferrable"):
    with DAG(
        dag_id=f"confluence_sensor_soft_fail_{_mode}",
        start_date=datetime(2026, 1, 1),
        schedule=None,
        params=_PARAMS,
    ) as _dag:
        LongTaskSensor(
            task_id="wait",
            long_task_id="{{ params.long_task_id }}",
            deferrable=_mode == "deferrable",
            poke_interval=0.1,
            timeout=20,
            soft_fail=True,
        )
    globals()[_dag.dag_id] = _dag
