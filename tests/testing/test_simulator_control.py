"""The control API (``/_simulator/...``) that shell users and scripts drive the simulator with."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_confluence.testing import Fault, TaskSpec


def test_health_needs_no_auth(anonymous, sim):
    sim.add_task(TaskSpec())

    response = anonymous.get("/_simulator/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "tasks": 1}


def test_create_task_returns_an_id_and_a_status_url_that_works(anonymous, api):
    response = anonymous.request("POST", "/_simulator/tasks", json={"duration": 0, "outcome": "warnings"})

    assert response.status_code == 201
    created = response.json()
    assert created["status_url"] == f"{api.sim.cloud_url}/rest/api/longtask/{created['id']}"
    status = api.session.get(created["status_url"], timeout=5).json()
    assert status["id"] == created["id"]
    assert status["successful"] is True
    assert status["errors"][0]["key"] == "WARN_IGNORE_COPY_ATTACHMENT"


def test_create_datacenter_task_with_fixed_id(anonymous, api):
    response = anonymous.request("POST", "/_simulator/tasks", json={"task_id": "dc-1", "shape": "datacenter"})

    assert response.json() == {"id": "dc-1", "status_url": f"{api.sim.datacenter_url}/rest/api/longtask/dc-1"}
    assert "finished" not in api.status_json("dc-1", "/confluence")


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        pytest.param({"duration": 1, "colour": "red"}, "colour", id="unknown-field"),
        pytest.param({"duration": "1"}, "duration", id="duration-as-string"),
        pytest.param({"duration": -1}, "duration", id="negative-duration"),
        pytest.param({"curve": "exponential"}, "curve", id="unknown-curve"),
        pytest.param({"outcome": "maybe"}, "outcome", id="unknown-outcome"),
        pytest.param({"error_keys": "ERROR_COPY_PAGE"}, "error_keys", id="keys-as-string"),
        pytest.param({"stop_at_percent": 50}, "stop_at_percent", id="stop-without-failure"),
        pytest.param([1, 2], "JSON object", id="array-body"),
        pytest.param("{not json", "not valid JSON", id="malformed-json"),
    ],
)
def test_bad_task_specs_get_400_with_a_clear_error(anonymous, sim, body, mentions):
    if isinstance(body, str):
        response = anonymous.request("POST", "/_simulator/tasks", data=body)
    else:
        response = anonymous.request("POST", "/_simulator/tasks", json=body)

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert mentions in response.json()["error"]
    assert "Traceback" not in response.text
    assert sim.task_ids == []


def test_duplicate_fixed_id_is_400(anonymous):
    assert anonymous.request("POST", "/_simulator/tasks", json={"task_id": "7"}).status_code == 201

    response = anonymous.request("POST", "/_simulator/tasks", json={"task_id": "7"})

    assert response.status_code == 400
    assert "already exists" in response.json()["error"]


def test_list_tasks_shows_ids_and_specs(anonymous, sim):
    task_id = sim.add_task(TaskSpec(duration=3, curve="stall"))

    tasks = anonymous.get("/_simulator/tasks").json()["tasks"]

    assert tasks == [{"id": task_id, "spec": TaskSpec(duration=3, curve="stall").to_dict()}]


def test_inject_fault_over_http(anonymous, api, sim):
    task_id = sim.add_task(TaskSpec(duration=0))

    response = anonymous.request("POST", "/_simulator/faults", json={"kind": "429", "retry_after": "3"})
    faulted = api.status(task_id)

    assert response.status_code == 201
    assert response.json()["fault"] == Fault("429", retry_after="3").to_dict()
    assert faulted.status_code == 429
    assert faulted.headers["Retry-After"] == "3"
    assert api.status(task_id).status_code == 200


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        pytest.param({"kind": "418"}, "kind", id="unknown-kind"),
        pytest.param({"times": 2}, "kind", id="missing-kind"),
        pytest.param({"kind": "500", "times": 0}, "times", id="zero-times"),
        pytest.param({"kind": "500", "when": "now"}, "when", id="unknown-field"),
    ],
)
def test_bad_faults_get_400(anonymous, body, mentions):
    response = anonymous.request("POST", "/_simulator/faults", json=body)

    assert response.status_code == 400
    assert mentions in response.json()["error"]


def test_clear_faults_over_http(anonymous, api, sim):
    task_id = sim.add_task(TaskSpec(duration=0))
    anonymous.request("POST", "/_simulator/faults", json={"kind": "500", "times": 5})

    response = anonymous.request("DELETE", "/_simulator/faults")

    assert response.status_code == 200
    assert api.status(task_id).status_code == 200


def test_fault_rate_over_http(anonymous, api, sim):
    task_id = sim.add_task(TaskSpec(duration=0))

    response = anonymous.request(
        "POST", "/_simulator/fault-rate", json={"rate": 1, "kinds": ["503"], "seed": 3}
    )
    bad = anonymous.request("POST", "/_simulator/fault-rate", json={"rate": 2})

    assert response.status_code == 200
    assert api.status(task_id).status_code == 503
    assert bad.status_code == 400
    assert "rate" in bad.json()["error"]


def test_stats_over_http_and_reset(anonymous, api, sim):
    task_id = sim.add_task(TaskSpec(duration=0))
    api.status(task_id)

    stats = anonymous.get("/_simulator/stats").json()
    reset = anonymous.request("DELETE", "/_simulator/stats")
    after = anonymous.get("/_simulator/stats").json()

    assert stats["total_requests"] == 1
    assert stats["requests_by_task"] == {task_id: 1}
    assert stats["responses_by_status"] == {"200": 1}
    assert stats["tasks"][task_id]["status_gets"] == 1
    assert reset.status_code == 200
    assert after["total_requests"] == 0
    assert after["control_requests"] == 1, "control requests are counted apart, from the reset on"


def test_unknown_paths_are_404_json(anonymous, sim):
    response = anonymous.get("/rest/api/nothing-here")

    assert response.status_code == 404
    assert response.json()["statusCode"] == 404
    assert sim.stats.requests_by_kind == {"other": 1}


DEEPLY_NESTED_JSON = '{"a":' * 5000 + "1" + "}" * 5000


@pytest.mark.parametrize("path", ["/_simulator/tasks", "/_simulator/faults", "/_simulator/fault-rate"])
def test_deeply_nested_json_is_400_without_a_traceback(anonymous, sim, caplog, path):
    with caplog.at_level(logging.ERROR):
        response = anonymous.request("POST", path, data=DEEPLY_NESTED_JSON)

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert "not valid JSON" in response.json()["error"]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert sim.task_ids == []
