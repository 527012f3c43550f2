"""DAGs for the end-to-end tests of the sensor's deadlines (they must live in a DAG bundle for dag.test)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_confluence.sensors.longtask import LongTaskSensor

for soft_fail in (True, False):
    with DAG(
        dag_id=f"confluence_sensor_timeout_soft_fail_{str(soft_fail).lower()}",
        start_date=datetime(2026, 1, 1),
        schedule=None,
        params={"long_task_id": Param("", type="string")},
    ) as dag:
        LongTaskSensor(
            task_id="wait",
            long_task_id="{{ params.long_task_id }}",
            deferrable=True,
            poke_interval=0.3,
            timeout=2,
            soft_fail=soft_fail,
        )
    globals()[dag.dag_id] = dag
