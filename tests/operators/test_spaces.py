"""``DeleteSpaceOperator``: refuses to exist without ``confirm_delete=True``; deletes and waits with it."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests_mock as rm
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from airflow_provider_confluence.exceptions import ConfluenceConfigError, LongTaskFailed
from airflow_provider_confluence.operators.longtask import require_confirmation
from airflow_provider_confluence.operators.spaces import DeleteSpaceOperator
from airflow_provider_confluence.testing import ConfluenceSimulator, TaskSpec
from tests.operators import FakeTaskInstance, make_context

CANARY = "CANARY-spaces-token-0e77aa"
ROOT = "https://example.atlassian.net/wiki"
DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConfluenceSimulator]:
    with ConfluenceSimulator(api_token=CANARY, operation_spec=TaskSpec(duration=0.3)) as simulator:
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", simulator.airflow_connection())
        yield simulator


def make_delete(**kwargs: Any) -> DeleteSpaceOperator:
    kwargs.setdefault("task_id", "delete_space")
    kwargs.setdefault("space_key", "OLD")
    kwargs.setdefault("confirm_delete", True)
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("timeout", 10)
    return DeleteSpaceOperator(**kwargs)


# ---------------------------------------------------------------------------- confirmation
@pytest.mark.parametrize(
    "confirm",
    [
        {},
        {"confirm_delete": False},
        {"confirm_delete": None},
        {"confirm_delete": "True"},
        {"confirm_delete": 1},
    ],
    ids=["missing", "false", "none", "truthy-string", "truthy-int"],
)
def test_delete_space_needs_confirm_delete_true(confirm: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="confirm_delete=True") as raised:
        DeleteSpaceOperator(task_id="delete_space", space_key="DOCS", **confirm)

    message = str(raised.value)
    assert "DeleteSpaceOperator" in message
    assert "space 'DOCS'" in message


def test_require_confirmation_names_the_operator_and_the_target() -> None:
    require_confirmation("AnyOperator", True, "thing 'x'")  # confirmed: no error

    with pytest.raises(ValueError, match=r"^AnyOperator deletes the thing 'x' and everything in it\."):
        require_confirmation("AnyOperator", "yes", "thing 'x'")


def test_a_dag_that_forgets_confirm_delete_fails_to_parse(tmp_path: Path) -> None:
    forgetful = tmp_path / "forgetful_space.py"
    forgetful.write_text(
        textwrap.dedent(
            """
            from datetime import datetime
            from airflow.sdk import DAG
            from airflow_provider_confluence.operators.spaces import DeleteSpaceOperator

            with DAG(dag_id="forgetful_space", start_date=datetime(2026, 1, 1), schedule=None):
                DeleteSpaceOperator(task_id="delete_space", space_key="DOCS")
            """
        )
    )
    careful = tmp_path / "careful_space.py"
    careful.write_text(
        forgetful.read_text()
        .replace("forgetful_space", "careful_space")
        .replace('space_key="DOCS"', 'space_key="DOCS", confirm_delete=True')
    )

    bag = DagBag(dag_folder=str(tmp_path))

    assert set(bag.dag_ids) == {"careful_space"}
    assert list(bag.import_errors) == [str(forgetful)]
    error = bag.import_errors[str(forgetful)]
    assert "confirm_delete=True" in error
    assert "DeleteSpaceOperator" in error
    assert "'DOCS'" in error


def test_space_key_is_templated() -> None:
    assert "space_key" in DeleteSpaceOperator.template_fields


# ---------------------------------------------------------------------------- deleting
def test_delete_space_sends_one_delete_to_the_space(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CONFLUENCE_DEFAULT",
        json.dumps({"conn_type": "confluence", "host": ROOT, "login": "a@example.com", "password": CANARY}),
    )
    requests_mock.delete(f"{ROOT}/rest/api/space/OLD", status_code=202, json={"id": "77", "links": {}})

    result = make_delete(wait_for_completion=False).execute(make_context())  # type: ignore[arg-type]

    assert result == "77"
    assert [(r.method, r.url) for r in requests_mock.request_history] == [
        ("DELETE", f"{ROOT}/rest/api/space/OLD")
    ]
    assert requests_mock.last_request.headers["X-Atlassian-Token"] == "no-check"


@pytest.mark.parametrize("space_key", ["", "../OLD", "a/b"], ids=["empty", "dot-dot", "slash"])
def test_a_bad_space_key_is_rejected_before_any_request(sim: ConfluenceSimulator, space_key: str) -> None:
    ti = FakeTaskInstance()

    with pytest.raises(ConfluenceConfigError, match="space_key"):
        make_delete(space_key=space_key).execute(make_context(ti))  # type: ignore[arg-type]

    assert sim.stats.total_requests == 0
    assert ti.pushed == []


def test_delete_space_deletes_and_waits(sim: ConfluenceSimulator) -> None:
    ti = FakeTaskInstance()

    summary = make_delete().execute(make_context(ti))  # type: ignore[arg-type]

    assert summary["successful"] is True
    assert "RemoveSpace" in summary["name"]
    assert sim.stats.requests_by_kind["delete_space"] == 1
    assert sim.stats.requests_by_kind.get("delete_page_tree", 0) == 0
    ((key, long_task_id),) = ti.pushed
    assert key == "long_task_id"
    assert summary["id"] == long_task_id
    assert sim.stats.status_gets(long_task_id) >= 2


@pytest.mark.parametrize("soft_fail", [False, True], ids=["fails", "soft-fail-skips"])
def test_a_failed_space_deletion(sim: ConfluenceSimulator, soft_fail: bool) -> None:
    sim.operation_spec = TaskSpec(duration=0.2, outcome="failure", error_keys=("ERROR_LOCK_FAILED",))

    with pytest.raises(AirflowSkipException if soft_fail else LongTaskFailed, match="ERROR_LOCK_FAILED"):
        make_delete(soft_fail=soft_fail).execute(make_context())  # type: ignore[arg-type]

    assert sim.stats.requests_by_kind["delete_space"] == 1


def test_a_data_center_space_deletion_without_finished_field_succeeds(
    sim: ConfluenceSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", sim.airflow_connection(deployment="datacenter"))

    summary = make_delete().execute(make_context())  # type: ignore[arg-type]

    assert summary["successful"] is True
    assert summary["percentage_complete"] == 100
    assert sim.stats.requests_by_kind["delete_space"] == 1


def test_delete_space_defers_on_the_started_task(sim: ConfluenceSimulator) -> None:
    ti = FakeTaskInstance()

    with pytest.raises(TaskDeferred) as raised:
        make_delete(deferrable=True, timeout=120).execute(make_context(ti))  # type: ignore[arg-type]

    assert ti.pushed == [("long_task_id", raised.value.trigger.long_task_id)]
    assert sim.stats.requests_by_kind["delete_space"] == 1


# ---------------------------------------------------------------------------- through a real Airflow
def load_dags() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dags_operator_dags_spaces", DAGS / "operator_dags.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.e2e
def test_delete_space_dag_renders_the_key_defers_and_succeeds(
    sim: ConfluenceSimulator, airflow_db: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = load_dags().delete_space_dag.test(run_conf={"space_key": "OLD"})

    log = "".join(capfd.readouterr())
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {"delete_space": "success"}, log[-3000:]
    assert "Deferring" in log
    assert "deletion of space OLD" in log  # the rendered key, never the template
    assert sim.stats.requests_by_kind["delete_space"] == 1
    assert CANARY not in log
