"""``CopyPageHierarchyOperator``, ``ArchivePagesOperator`` and ``DeletePageTreeOperator``.

Requests over requests-mock (what reaches Confluence), waits against the simulator, one DAG run each way
through a real Airflow (``dag.test``).
"""

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

from airflow_provider_confluence.exceptions import ConfluenceRequestError, LongTaskFailed
from airflow_provider_confluence.operators.pages import (
    ArchivePagesOperator,
    CopyPageHierarchyOperator,
    DeletePageTreeOperator,
)
from airflow_provider_confluence.testing import ConfluenceSimulator, TaskSpec
from tests.operators import FakeTaskInstance, make_context

CANARY = "CANARY-pages-token-81d0c4"
ROOT = "https://example.atlassian.net/wiki"
STARTED = {"id": "1180606", "links": {"status": "/rest/api/longtask/1180606"}}
DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConfluenceSimulator]:
    with ConfluenceSimulator(api_token=CANARY, operation_spec=TaskSpec(duration=0.3)) as simulator:
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", simulator.airflow_connection())
        yield simulator


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker) -> rm.Mocker:
    """A Cloud connection whose start endpoints answer 202 (requests-mock records what was sent)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_CONFLUENCE_DEFAULT",
        json.dumps({"conn_type": "confluence", "host": ROOT, "login": "a@example.com", "password": CANARY}),
    )
    requests_mock.post(f"{ROOT}/rest/api/content/archive", status_code=202, json=STARTED)
    requests_mock.post(f"{ROOT}/rest/api/content/65601/pagehierarchy/copy", status_code=202, json=STARTED)
    requests_mock.delete(f"{ROOT}/rest/api/content/65601/pageTree", status_code=202, json=STARTED)
    return requests_mock


def no_wait(**kwargs: Any) -> dict[str, Any]:
    return {"task_id": "t", "wait_for_completion": False, "deferrable": False, **kwargs}


def load_dags() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dags_operator_dags", DAGS / "operator_dags.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


# ---------------------------------------------------------------------------- CopyPageHierarchyOperator
def test_copy_forwards_every_option_to_confluence(mocked: rm.Mocker) -> None:
    operator = CopyPageHierarchyOperator(
        **no_wait(
            page_id="65601",
            destination_page_id="98305",
            copy_attachments=False,
            copy_permissions=False,
            copy_properties=True,
            copy_labels=False,
            copy_custom_contents=True,
            title_options={"prefix": "[backup] "},
        )
    )

    assert operator.execute(make_context()) == "1180606"  # type: ignore[arg-type]

    sent = mocked.last_request
    assert (sent.method, sent.url) == ("POST", f"{ROOT}/rest/api/content/65601/pagehierarchy/copy")
    assert sent.json() == {
        "copyAttachments": False,
        "copyPermissions": False,
        "copyProperties": True,
        "copyLabels": False,
        "copyCustomContents": True,
        "destinationPageId": "98305",
        "titleOptions": {"prefix": "[backup] "},
    }
    assert sent.headers["X-Atlassian-Token"] == "no-check"


def test_copy_templates_its_ids_and_title_options() -> None:
    assert {"page_id", "destination_page_id", "title_options", "confluence_conn_id"} <= set(
        CopyPageHierarchyOperator.template_fields
    )


def test_copy_waits_and_returns_where_the_copy_went(sim: ConfluenceSimulator) -> None:
    operator = CopyPageHierarchyOperator(
        task_id="copy",
        page_id="65601",
        destination_page_id="98305",
        deferrable=False,
        poll_interval=0.1,
        timeout=10,
    )

    summary = operator.execute(make_context())  # type: ignore[arg-type]

    assert summary["successful"] is True
    assert (
        summary["additional_details"]["destinationUrl"]
        == f"{sim.cloud_url}/pages/viewpage.action?pageId=98305"
    )
    assert summary["additional_details"]["totalPageNeedToCopy"] == 10
    assert sim.stats.requests_by_kind == {"copy": 1, "status": sim.stats.requests_by_kind["status"]}


# ---------------------------------------------------------------------------- ArchivePagesOperator
@pytest.mark.parametrize(
    ("page_ids", "expected"),
    [
        pytest.param(["65601", "65602"], [65601, 65602], id="list"),
        pytest.param(("65601", "65602"), [65601, 65602], id="tuple"),
        pytest.param([65601, 65602], [65601, 65602], id="list-of-ints"),
        pytest.param("['65601', '65602']", [65601, 65602], id="rendered-list"),
        pytest.param('["65601", "65602"]', [65601, 65602], id="rendered-json-list"),
        pytest.param(" [65601, 65602] ", [65601, 65602], id="rendered-int-list-with-spaces"),
        pytest.param("65601,65602", [65601, 65602], id="comma-separated"),
        pytest.param("65601, 65602,", [65601, 65602], id="comma-separated-with-spaces"),
        pytest.param("65601", [65601], id="one-id"),
        pytest.param(65601, [65601], id="one-int-id"),
    ],
)
def test_archive_accepts_the_forms_page_ids_come_in(
    mocked: rm.Mocker, page_ids: Any, expected: list[int]
) -> None:
    ti = FakeTaskInstance()

    result = ArchivePagesOperator(**no_wait(page_ids=page_ids)).execute(make_context(ti))  # type: ignore[arg-type]

    assert result == "1180606"
    assert ti.pushed == [("long_task_id", "1180606")]
    assert mocked.call_count == 1
    assert mocked.last_request.url == f"{ROOT}/rest/api/content/archive"
    assert mocked.last_request.json() == {"pages": [{"id": page_id} for page_id in expected]}


@pytest.mark.parametrize(
    "page_ids",
    [
        pytest.param("[65601, 65602", id="unparsable-list"),
        pytest.param("[]", id="rendered-empty-list"),
        pytest.param("", id="empty-string"),
        pytest.param([], id="empty-list"),
        pytest.param(None, id="none"),
        pytest.param({"65601": True}, id="dict"),
        pytest.param(1.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(["65601", "../x"], id="path-like-id"),
        pytest.param("None", id="rendered-missing-xcom"),
        pytest.param(["65601", None], id="list-with-none"),
        pytest.param([["65601", "65602"]], id="nested-list"),
        pytest.param([{"id": "65601"}], id="list-of-dicts"),
    ],
)
def test_archive_rejects_garbage_before_any_request(mocked: rm.Mocker, page_ids: Any) -> None:
    ti = FakeTaskInstance()
    operator = ArchivePagesOperator(**no_wait(page_ids=page_ids))

    with pytest.raises(ValueError, match=r"page_ids|page id") as raised:
        operator.execute(make_context(ti))  # type: ignore[arg-type]

    assert mocked.call_count == 0
    assert ti.pushed == []
    assert CANARY not in str(raised.value)


def test_archive_templates_page_ids() -> None:
    assert "page_ids" in ArchivePagesOperator.template_fields


def test_archive_waits_for_the_archive_job(sim: ConfluenceSimulator) -> None:
    operator = ArchivePagesOperator(
        task_id="archive", page_ids=["11", "12"], deferrable=False, poll_interval=0.1
    )

    summary = operator.execute(make_context())  # type: ignore[arg-type]

    assert summary["successful"] is True
    assert "ArchivePages" in summary["name"]
    assert sim.stats.requests_by_kind["archive"] == 1


@pytest.mark.parametrize(
    ("running_first", "count", "message"),
    [
        pytest.param(True, 2, "Another archive job is already running", id="archive-already-running"),
        pytest.param(False, 301, "at most 300 pages", id="more-than-300-pages"),
    ],
)
def test_archive_refused_by_confluence_raises_its_message(
    sim: ConfluenceSimulator, running_first: bool, count: int, message: str
) -> None:
    sim.operation_spec = TaskSpec(duration=60)
    if running_first:
        ArchivePagesOperator(**no_wait(page_ids=["1"])).execute(make_context())  # type: ignore[arg-type]
    ti = FakeTaskInstance()
    operator = ArchivePagesOperator(**no_wait(page_ids=[str(i) for i in range(1, count + 1)]))

    with pytest.raises(ConfluenceRequestError, match=message):
        operator.execute(make_context(ti))  # type: ignore[arg-type]

    assert ti.pushed == []
    assert sim.stats.requests_by_kind["archive"] == 1 + running_first  # a 400 is not retried


# ---------------------------------------------------------------------------- DeletePageTreeOperator
@pytest.mark.parametrize(
    "confirm",
    [{}, {"confirm_delete": False}, {"confirm_delete": "True"}, {"confirm_delete": 1}],
    ids=["missing", "false", "truthy-string", "truthy-int"],
)
def test_delete_page_tree_needs_confirm_delete_true(confirm: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="confirm_delete=True") as raised:
        DeletePageTreeOperator(task_id="delete", page_id="65601", **confirm)

    assert "DeletePageTreeOperator" in str(raised.value)
    assert "page tree '65601'" in str(raised.value)


def test_a_dag_that_forgets_confirm_delete_fails_to_parse(tmp_path: Path) -> None:
    dag_file = tmp_path / "forgetful_page_tree.py"
    dag_file.write_text(
        textwrap.dedent(
            """
            from datetime import datetime
            from airflow.sdk import DAG
            from airflow_provider_confluence.operators.pages import DeletePageTreeOperator

            with DAG(dag_id="forgetful_page_tree", start_date=datetime(2026, 1, 1), schedule=None):
                DeletePageTreeOperator(task_id="delete", page_id="65601")
            """
        )
    )

    bag = DagBag(dag_folder=str(tmp_path))

    assert "forgetful_page_tree" not in bag.dag_ids
    assert list(bag.import_errors) == [str(dag_file)]
    error = bag.import_errors[str(dag_file)]
    assert "confirm_delete=True" in error
    assert "DeletePageTreeOperator" in error


def test_delete_page_tree_sends_one_delete(mocked: rm.Mocker) -> None:
    operator = DeletePageTreeOperator(**no_wait(page_id="65601", confirm_delete=True))

    assert operator.execute(make_context()) == "1180606"  # type: ignore[arg-type]

    assert [(r.method, r.url) for r in mocked.request_history] == [
        ("DELETE", f"{ROOT}/rest/api/content/65601/pageTree")
    ]


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_delete_page_tree_deletes_and_waits(sim: ConfluenceSimulator, outcome: str) -> None:
    sim.operation_spec = TaskSpec(duration=0.3, outcome=outcome, error_keys=("ERROR_DELETE_PAGE",))  # type: ignore[arg-type]
    operator = DeletePageTreeOperator(
        task_id="delete",
        page_id="65601",
        confirm_delete=True,
        deferrable=False,
        poll_interval=0.1,
        timeout=10,
    )
    ti = FakeTaskInstance()

    if outcome == "success":
        summary = operator.execute(make_context(ti))  # type: ignore[arg-type]
        assert summary["successful"] is True
        assert "RemovePageTree" in summary["name"]
    else:
        with pytest.raises(LongTaskFailed, match="ERROR_DELETE_PAGE"):
            operator.execute(make_context(ti))  # type: ignore[arg-type]
    assert sim.stats.requests_by_kind["delete_page_tree"] == 1
    ((_, long_task_id),) = ti.pushed
    assert sim.stats.status_gets(long_task_id) >= 2  # it waited


# ---------------------------------------------------------------------------- through a real Airflow
@pytest.fixture
def dags(airflow_db: Path) -> ModuleType:
    return load_dags()


@pytest.mark.e2e
def test_copy_dag_defers_succeeds_and_reports(
    sim: ConfluenceSimulator, dags: ModuleType, capfd: pytest.CaptureFixture[str]
) -> None:
    run = dags.copy_dag.test(run_conf={"page_id": "65601", "destination_page_id": "98305"})

    log = "".join(capfd.readouterr())
    assert states(run) == {"copy": "success", "report": "success"}, log[-3000:]
    assert "Deferring" in log
    (task_id,) = sim.task_ids
    assert f"REPORT id={task_id} pushed={task_id} destination=98305" in log
    assert sim.stats.requests_by_kind["copy"] == 1  # started once, not again on resume
    assert CANARY not in log


@pytest.mark.e2e
def test_copy_dag_fails_with_the_error_keys_in_the_log(
    sim: ConfluenceSimulator, dags: ModuleType, capfd: pytest.CaptureFixture[str]
) -> None:
    sim.operation_spec = TaskSpec(
        duration=0.5,
        outcome="failure",
        error_keys=("ERROR_LOCK_FAILED", "ERROR_RELINK"),
        error_args=("DOCS",),
    )

    run = dags.copy_dag.test(run_conf={"page_id": "65601", "destination_page_id": "98305"})

    log = "".join(capfd.readouterr())
    assert states(run) == {"copy": "failed", "report": "upstream_failed"}, log[-3000:]
    assert "Deferring" in log
    assert "LongTaskFailed" in log
    for needle in ("ERROR_LOCK_FAILED", "ERROR_RELINK", "DOCS"):
        assert needle in log
    assert sim.stats.requests_by_kind["copy"] == 1
    assert CANARY not in log
