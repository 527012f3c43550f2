"""The example DAGs, run end to end through a real Airflow (``dag.test()``) against the simulator."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag

from airflow_provider_confluence.testing import ConfluenceSimulator, TaskSpec

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"
DAGS = Path(__file__).resolve().parent / "dags"
CANARY = "CANARY-e2e-token-7f3a91"


def _load(name: str) -> ModuleType:
    return _load_path(EXAMPLES / f"{name}.py")


def _load_path(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"dags_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Any:
    with ConfluenceSimulator(api_token=CANARY) as simulator:
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", simulator.airflow_connection())
        yield simulator


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_example_dags_import_without_errors_or_warnings(recwarn: pytest.WarningsRecorder) -> None:
    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "example_confluence_wait_for_long_task",
        "example_confluence_nightly_backup",
        "example_confluence_archive_old_pages",
    }
    assert [str(w.message) for w in recwarn if "airflow_provider_confluence" in str(w.filename)] == []


def test_wait_dag_defers_logs_progress_and_succeeds(sim: ConfluenceSimulator, capfd: Any) -> None:
    task_id = sim.add_task(
        TaskSpec(
            duration=3.0,
            curve="stepped",
            outcome="success",
            start_on_first_poll=True,
            additional_details={"destinationUrl": "https://example.test/export.zip"},
        )
    )
    dag = _load("example_confluence_wait").dag

    run = dag.test(run_conf={"long_task_id": task_id})

    out = capfd.readouterr()
    log = out.out + out.err
    assert str(run.state) == "success"
    assert _states(run) == {"wait_for_confluence_task": "success", "report": "success"}
    assert "Deferring" in log
    assert "50%" in log  # a progress line from the trigger
    assert "https://example.test/export.zip" in log  # the downstream task used the sensor's XCom
    assert sim.stats.status_gets(task_id) >= 3
    assert CANARY not in log


def test_wait_dag_fails_with_every_error_key(sim: ConfluenceSimulator, capfd: Any) -> None:
    task_id = sim.add_task(
        TaskSpec(
            duration=1.5,
            outcome="failure",
            error_keys=("ERROR_LOCK_FAILED", "ERROR_RELINK"),
            error_args=("DOCS",),
            start_on_first_poll=True,
        )
    )
    dag = _load("example_confluence_wait").dag

    run = dag.test(run_conf={"long_task_id": task_id})

    out = capfd.readouterr()
    log = out.out + out.err
    assert str(run.state) == "failed"
    assert _states(run) == {"wait_for_confluence_task": "failed", "report": "upstream_failed"}
    assert "LongTaskFailed" in log
    assert "ERROR_LOCK_FAILED" in log
    assert "ERROR_RELINK" in log
    assert "DOCS" in log  # the keys' arguments
    assert CANARY not in log


def test_backup_dag_starts_a_copy_waits_and_reports_destination(sim: ConfluenceSimulator, capfd: Any) -> None:
    dag = _load("example_confluence_backup").dag

    run = dag.test(run_conf={"source_page_id": "65601", "archive_parent_id": "98305"})

    out = capfd.readouterr()
    log = out.out + out.err
    assert str(run.state) == "success", log[-3000:]
    assert _states(run) == {"copy_page_tree": "success", "report": "success"}
    assert "Deferring" in log
    assert "Backup copied 10 page(s) to http://127.0.0.1" in log
    assert sim.stats.requests_by_kind.get("copy", 0) == 1  # started once, not twice
    assert CANARY not in log


def test_cleanup_dag_archives_pages_and_waits(sim: ConfluenceSimulator, capfd: Any) -> None:
    dag = _load("example_confluence_cleanup").dag

    run = dag.test(run_conf={"page_ids": ["11", "12"]})

    log = "".join(capfd.readouterr())
    assert str(run.state) == "success", log[-3000:]
    assert _states(run) == {"archive_stale_pages": "success"}
    assert sim.stats.requests_by_kind.get("archive", 0) == 1
    assert CANARY not in log


@pytest.mark.parametrize("soft_fail", [True, False], ids=["soft-fail-skips", "hard-timeout-fails"])
def test_deferrable_timeout(sim: ConfluenceSimulator, soft_fail: bool, capfd: Any) -> None:
    task_id = sim.add_task(TaskSpec(duration=600.0, curve="linear", outcome="success"))
    module = _load_path(DAGS / "sensor_timeouts.py")
    dag = getattr(module, f"confluence_sensor_timeout_soft_fail_{str(soft_fail).lower()}")

    run = dag.test(run_conf={"long_task_id": task_id})

    log = "".join(capfd.readouterr())
    assert _states(run) == {"wait": "skipped" if soft_fail else "failed"}
    if not soft_fail:
        assert "did not finish before the sensor's timeout" in log


def test_connection_json_from_simulator_is_valid() -> None:
    with ConfluenceSimulator() as simulator:
        conn = json.loads(simulator.airflow_connection())
    assert conn["conn_type"] == "confluence"
