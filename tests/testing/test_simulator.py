"""The simulator's Confluence API: progress, outcomes, shapes, prefixes, auth, lists, operations, stats."""

from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_confluence.testing import ConfluenceSimulator, Fault, TaskSpec

EMAIL = "demo@example.com"
TOKEN = "sim-token"
REPO_ROOT = Path(__file__).resolve().parents[2]


def keys_of(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["key"] for entry in entries if "key" in entry]


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


# -- progress curves, outcomes, shapes --------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["cloud", "datacenter"])
@pytest.mark.parametrize("curve", ["linear", "stepped", "stall"])
def test_progress_grows_along_the_curve_and_ends_at_100(sim, api, curve, shape):
    task_id = sim.add_task(TaskSpec(duration=0.4, curve=curve, shape=shape))

    bodies = api.history(task_id, seconds=0.55)

    percents = [body["percentageComplete"] for body in bodies]
    assert percents == sorted(percents), "progress must never go backwards"
    assert percents[0] < 100
    assert percents[-1] == 100
    running = [body for body in bodies if body["percentageComplete"] < 100]
    assert running
    assert not any(body["successful"] for body in running), "successful is false while a task runs"
    running_values = {body["percentageComplete"] for body in running}
    if curve == "stepped":
        assert running_values <= {0, 25, 50, 75}
        assert len(running_values) >= 3
    elif curve == "stall":
        assert max(running_values) == 10
    else:
        assert len(running_values) >= 5
        assert any(30 <= value <= 90 for value in running_values)
    for body in bodies:
        if shape == "cloud":
            assert body["finished"] is (body["percentageComplete"] == 100)
        else:
            assert "finished" not in body
    assert bodies[-1]["successful"] is True


@pytest.mark.parametrize("shape", ["cloud", "datacenter"])
@pytest.mark.parametrize("outcome", ["success", "failure", "warnings"])
def test_outcome_is_reported_once_the_task_is_done(sim, api, outcome, shape):
    task_id = sim.add_task(TaskSpec(duration=0.2, outcome=outcome, shape=shape, error_args=("Q3 Plan",)))

    running = api.status_json(task_id)
    final = api.until_done(task_id)

    assert running["successful"] is False
    assert not running.get("errors")
    assert final["percentageComplete"] == 100
    assert ("finished" in final) is (shape == "cloud")
    errors = final.get("errors", [])
    if outcome == "success":
        assert final["successful"] is True
        assert errors == []
    elif outcome == "failure":
        assert final["successful"] is False
        assert keys_of(errors) == ["ERROR_COPY_PAGE"]
        assert errors[0]["args"] == ["Q3 Plan"]
        assert "Q3 Plan" in errors[0]["translation"]
    else:
        assert final["successful"] is True
        assert keys_of(errors) == ["WARN_IGNORE_COPY_ATTACHMENT"]
    if shape == "cloud":
        assert final["finished"] is True
        assert (
            final["status"] == {"success": "SUCCEEDED", "failure": "FAILED", "warnings": "SUCCEEDED"}[outcome]
        )


@pytest.mark.parametrize("shape", ["cloud", "datacenter"])
@pytest.mark.parametrize("placement", ["errors", "messages", "translation"])
def test_error_keys_sit_where_key_placement_says(sim, api, placement, shape):
    keys = ("ERROR_LOCK_FAILED", "ERROR_RELINK")
    task_id = sim.add_task(
        TaskSpec(
            duration=0,
            outcome="failure",
            error_keys=keys,
            error_args=("DEMO",),
            key_placement=placement,
            shape=shape,
        )
    )

    body = api.status_json(task_id)

    errors, messages = body.get("errors", []), body["messages"]
    if placement == "errors":
        assert keys_of(errors) == list(keys)
        assert not any(key.startswith("ERROR_") for key in keys_of(messages))
    elif placement == "messages":
        assert errors == []
        assert [key for key in keys_of(messages) if key.startswith("ERROR_")] == list(keys)
    else:
        assert errors == []
        assert not any(key.startswith("ERROR_") for key in keys_of(messages))
        texts = [message["translation"] for message in messages]
        assert [text.split(":")[0] for text in texts if text.startswith("ERROR_")] == list(keys)
        assert "ERROR_LOCK_FAILED: Could not get the lock on the destination space 'DEMO'" in texts


def test_failure_keeps_defaults_or_no_keys_at_all(sim, api):
    default_id = sim.add_task(TaskSpec(duration=0, outcome="failure"))
    keyless_id = sim.add_task(TaskSpec(duration=0, outcome="failure", error_keys=()))

    assert keys_of(api.status_json(default_id)["errors"]) == ["ERROR_COPY_PAGE"]
    keyless = api.status_json(keyless_id)
    assert keyless["errors"] == []
    assert keyless["successful"] is False


def test_zero_duration_task_is_already_finished(sim, api):
    task_id = sim.add_task(TaskSpec(duration=0))

    body = api.status_json(task_id)

    assert (body["finished"], body["successful"], body["percentageComplete"], body["elapsedTime"]) == (
        True,
        True,
        100,
        0,
    )


def test_elapsed_time_is_milliseconds_and_stops_at_the_end(sim, api):
    task_id = sim.add_task(TaskSpec(duration=0.3))
    time.sleep(0.1)

    running = api.status_json(task_id)["elapsedTime"]
    time.sleep(0.3)
    ended = api.status_json(task_id)["elapsedTime"]
    time.sleep(0.15)
    later = api.status_json(task_id)["elapsedTime"]

    assert isinstance(running, int)
    assert 80 <= running < 300
    assert ended == later == 300


@pytest.mark.parametrize("shape", ["cloud", "datacenter"])
def test_stop_at_percent_stops_the_clock_below_100(sim, api, shape):
    task_id = sim.add_task(TaskSpec(duration=0.25, outcome="failure", stop_at_percent=40, shape=shape))

    bodies = api.history(task_id, seconds=0.35)
    time.sleep(0.1)
    last = api.status_json(task_id)

    assert max(body["percentageComplete"] for body in bodies) == 40
    assert last["percentageComplete"] == 40
    assert last["elapsedTime"] == bodies[-1]["elapsedTime"] == 250, "a stopped task's clock must not grow"
    assert last["successful"] is False
    if shape == "datacenter":
        assert "finished" not in last, "a Data Center task that stopped early never reaches 100 %"
    else:
        assert last["finished"] is True


def test_start_on_first_poll_starts_the_clock_at_the_first_get(sim, api):
    task_id = sim.add_task(TaskSpec(duration=0.3, start_on_first_poll=True))
    time.sleep(0.35)

    listed = api.get("/wiki/rest/api/longtask").json()["results"][0]
    first = api.status_json(task_id)
    time.sleep(0.4)
    last = api.status_json(task_id)

    assert (listed["percentageComplete"], listed["elapsedTime"]) == (0, 0), "listing must not start the clock"
    assert first["percentageComplete"] < 50
    assert first["finished"] is False
    assert last["finished"] is True


def test_task_is_not_found_during_its_not_found_window(sim, api, load_data):
    task_id = sim.add_task(TaskSpec(duration=0, not_found_for=0.3))

    early = api.status(task_id)
    listed_early = api.get("/wiki/rest/api/longtask").json()
    time.sleep(0.35)
    later = api.status(task_id)

    assert early.status_code == 404
    assert early.json() == load_data("error-404.json")
    assert listed_early["size"] == 0
    assert later.status_code == 200
    assert later.json()["id"] == task_id


def test_unknown_task_is_404_with_confluence_error_body(api, load_data):
    response = api.status("999999999")

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == load_data("error-404.json")


def test_task_ids_are_opaque_numeric_strings_and_fixed_ids_are_kept(sim, api):
    first, second = sim.add_task(TaskSpec()), sim.add_task(TaskSpec())
    fixed = sim.add_task(TaskSpec(task_id="abc-123"))

    assert first.isdigit()
    assert int(second) == int(first) + 1
    assert fixed == "abc-123"
    assert api.status_json("abc-123")["id"] == "abc-123"
    with pytest.raises(ValueError, match="already exists"):
        sim.add_task(TaskSpec(task_id="abc-123"))


def test_add_task_accepts_field_changes(sim):
    task_id = sim.add_task(duration=0.5, outcome="warnings")

    assert sim.task_spec(task_id) == TaskSpec(duration=0.5, outcome="warnings")
    with pytest.raises(ValueError, match="curve"):
        sim.add_task(curve="exponential")


# -- prefixes ---------------------------------------------------------------------------------------------

PREFIXES = [
    pytest.param("/wiki", "/wiki", id="cloud-wiki"),
    pytest.param("/confluence", "/confluence", id="datacenter-context-path"),
    pytest.param("/ex/confluence/1a2b3c4d-cloud-id/wiki", "/wiki", id="api-gateway"),
]


@pytest.mark.parametrize(("prefix", "context"), PREFIXES)
def test_status_is_served_under_every_prefix(sim, api, prefix, context):
    task_id = sim.add_task(TaskSpec(duration=0))

    body = api.status_json(task_id, prefix)

    assert body["id"] == task_id
    assert body["_links"]["base"] == sim.url + prefix
    assert body["_links"]["context"] == context
    assert body["_links"]["self"] == f"{sim.url}{prefix}/rest/api/longtask/{task_id}"


def test_urls_name_the_prefixes(sim):
    assert sim.url == f"http://127.0.0.1:{sim.port}"
    assert sim.cloud_url == sim.url + "/wiki"
    assert sim.datacenter_url == sim.url + "/confluence"
    assert sim.gateway_url("c1") == sim.url + "/ex/confluence/c1/wiki"
    assert sim.status_url("7", deployment="datacenter") == sim.url + "/confluence/rest/api/longtask/7"


@pytest.mark.parametrize(
    ("context_path", "served", "not_served"),
    [
        pytest.param("/kb", "/kb", "/confluence", id="custom"),
        pytest.param("kb/", "/kb", "/confluence", id="normalised"),
        pytest.param("", "", "/confluence", id="root"),
    ],
)
def test_data_center_context_path_is_configurable(context_path, served, not_served):
    with ConfluenceSimulator(context_path=context_path) as sim, requests.Session() as session:
        session.auth = (EMAIL, TOKEN)
        task_id = sim.add_task(TaskSpec(duration=0))

        good = session.get(f"{sim.url}{served}/rest/api/longtask/{task_id}", timeout=5)
        bad = session.get(f"{sim.url}{not_served}/rest/api/longtask/{task_id}", timeout=5)

        assert sim.datacenter_url == sim.url + served
        assert good.status_code == 200
        assert good.json()["_links"]["context"] == served
        assert bad.status_code == 404


@pytest.mark.parametrize("context_path", ["/wiki", "/_simulator", "/a b", "/x?y"])
def test_context_path_that_collides_or_is_not_a_path_is_refused(context_path):
    with pytest.raises(ValueError, match="context_path"):
        ConfluenceSimulator(context_path=context_path)


# -- authentication ---------------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(basic(EMAIL, TOKEN), id="basic"),
        pytest.param(
            "basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode(), id="basic-lowercase-scheme"
        ),
        pytest.param(f"Bearer {TOKEN}", id="bearer-api-token-as-pat"),
    ],
)
def test_valid_credentials_are_accepted(sim, anonymous, authorization):
    task_id = sim.add_task(TaskSpec(duration=0))

    response = anonymous.status(task_id, headers={"Authorization": authorization})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param(basic(EMAIL, "wrong-token"), id="basic-wrong-token"),
        pytest.param(basic("someone@example.com", TOKEN), id="basic-wrong-email"),
        pytest.param("Basic not*base64", id="basic-malformed"),
        pytest.param("Bearer wrong-token", id="bearer-wrong"),
        pytest.param("Bearer ", id="bearer-empty"),
        pytest.param(f"Token {TOKEN}", id="unknown-scheme"),
    ],
)
def test_bad_credentials_get_401_with_json_and_www_authenticate(sim, anonymous, authorization):
    task_id = sim.add_task(TaskSpec(duration=0))
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = anonymous.status(task_id, headers=headers)

    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    body = response.json()
    assert body["statusCode"] == 401
    assert body["message"]
    assert TOKEN not in response.text
    assert TOKEN not in json.dumps(dict(response.headers))
    assert sim.stats.auth_failures == 1


def test_bearer_token_when_configured_replaces_the_api_token_as_bearer():
    with ConfluenceSimulator(bearer_token="pat-123") as sim, requests.Session() as session:
        task_id = sim.add_task(TaskSpec(duration=0))
        url = sim.status_url(task_id)

        pat = session.get(url, headers={"Authorization": "Bearer pat-123"}, timeout=5)
        api_token_as_bearer = session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        basic_auth = session.get(url, headers={"Authorization": basic(EMAIL, TOKEN)}, timeout=5)

        assert (pat.status_code, api_token_as_bearer.status_code, basic_auth.status_code) == (200, 401, 200)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/wiki/rest/api/longtask", id="list"),
        pytest.param("POST", "/wiki/rest/api/content/1/pagehierarchy/copy", id="copy"),
        pytest.param("POST", "/wiki/rest/api/content/archive", id="archive"),
        pytest.param("DELETE", "/wiki/rest/api/content/1/pageTree", id="delete-page-tree"),
        pytest.param("DELETE", "/confluence/rest/api/space/DEMO", id="delete-space"),
    ],
)
def test_every_confluence_endpoint_requires_auth(sim, anonymous, method, path):
    response = anonymous.request(method, path, json={"destinationPageId": "2", "pages": [{"id": "1"}]})

    assert response.status_code == 401
    assert sim.task_ids == [], "an unauthenticated request must not start a task"


def test_repr_never_shows_the_token():
    with ConfluenceSimulator(api_token="s3cret-token", bearer_token="s3cret-pat") as sim:
        text = repr(sim)
    assert "s3cret" not in text


# -- the task list ----------------------------------------------------------------------------------------


def test_list_pages_through_next_links(sim, api):
    created = [sim.add_task(TaskSpec(duration=0)) for _ in range(7)]

    seen: list[str] = []
    sizes: list[int] = []
    page = api.get("/wiki/rest/api/longtask", params={"start": 0, "limit": 3}).json()
    for _ in range(10):  # bounded: a `next` link that never ends must fail, not hang
        seen += [result["id"] for result in page["results"]]
        sizes.append(page["size"])
        assert page["limit"] == 3
        if "next" not in page["_links"]:
            break
        assert page["_links"]["next"].startswith("/rest/api/longtask?")
        page = api.session.get(page["_links"]["base"] + page["_links"]["next"], timeout=5).json()
    else:
        pytest.fail("the list kept offering a next page")

    assert seen == created
    assert sizes == [3, 3, 1]
    assert "totalCount" not in page, "Cloud lists have no totalCount"


def test_list_limit_is_clamped_to_100(sim, api):
    for _ in range(150):
        sim.add_task(TaskSpec(duration=0))

    page = api.get("/wiki/rest/api/longtask", params={"limit": 500}).json()
    default = api.get("/wiki/rest/api/longtask").json()

    assert (page["limit"], page["size"], page["start"]) == (100, 100, 0)
    assert page["_links"]["next"] == "/rest/api/longtask?start=100&limit=100"
    assert default["limit"] == 100


def test_data_center_list_adds_total_count(sim, api):
    for _ in range(3):
        sim.add_task(TaskSpec(duration=0, shape="datacenter"))

    page = api.get("/confluence/rest/api/longtask", params={"limit": 2}).json()

    assert page["totalCount"] == 3
    assert page["size"] == 2
    assert page["_links"]["context"] == "/confluence"
    assert page["_links"]["next"] == "/rest/api/longtask?start=2&limit=2"


def test_list_filters_by_name_key(sim, api):
    sim.add_task(TaskSpec(duration=0))
    wanted = sim.add_task(TaskSpec(duration=0, name_key="com.example.Export"))

    page = api.get("/wiki/rest/api/longtask", params={"key": "com.example.Export"}).json()

    assert [result["id"] for result in page["results"]] == [wanted]


@pytest.mark.parametrize(
    "query", [{"start": "x"}, {"limit": "ten"}, {"start": "-1"}], ids=["start", "limit", "neg"]
)
def test_list_rejects_bad_paging_with_400(api, query):
    response = api.get("/wiki/rest/api/longtask", params=query)

    assert response.status_code == 400
    assert response.json()["statusCode"] == 400


# -- operations that start a task -------------------------------------------------------------------------

OPERATIONS = [
    pytest.param(
        "POST",
        "/rest/api/content/123/pagehierarchy/copy",
        {"destinationPageId": "456", "copyAttachments": True, "titleOptions": {"prefix": "Copy of "}},
        "CopyPageHierarchyAction",
        id="copy-page-hierarchy",
    ),
    pytest.param(
        "POST", "/rest/api/content/archive", {"pages": [{"id": "1"}, {"id": 2}]}, "Archive", id="archive"
    ),
    pytest.param(
        "DELETE", "/rest/api/content/123/pageTree", None, "RemovePageTreeAction", id="delete-page-tree"
    ),
    pytest.param("DELETE", "/rest/api/space/DEMO", None, "RemoveSpaceAction", id="delete-space"),
]


@pytest.mark.parametrize("prefix", ["/wiki", "/confluence"], ids=["cloud", "datacenter"])
@pytest.mark.parametrize(("method", "path", "body", "name_part"), OPERATIONS)
def test_operation_answers_202_and_starts_a_pollable_task(
    sim, api, load_data, prefix, method, path, body, name_part
):
    sim.operation_spec = TaskSpec(duration=0.2)
    expected = load_data("longtask-started-202.json")

    response = api.request(method, prefix + path, json=body)

    assert response.status_code == 202
    started = response.json()
    assert set(started) == set(expected)
    assert set(started["links"]) == set(expected["links"])
    assert isinstance(started["id"], str)
    assert started["id"].isdigit()
    assert started["links"]["status"] == f"/rest/api/longtask/{started['id']}", "the status link has no /wiki"
    first = api.status_json(started["id"], prefix)
    final = api.until_done(started["id"], prefix=prefix)
    assert first["percentageComplete"] < 100
    assert final["successful"] is True
    assert name_part in final["name"]["key"]
    assert ("finished" in final) is (prefix == "/wiki"), (
        "the task's shape follows the prefix it was started on"
    )


def test_copy_echoes_destination_and_reports_page_progress(sim, api):
    sim.operation_spec = TaskSpec(duration=0.3)

    response = api.request(
        "POST", "/wiki/rest/api/content/123/pagehierarchy/copy", json={"destinationPageId": "456"}
    )
    bodies = api.history(response.json()["id"], seconds=0.4)

    details = bodies[-1]["additionalDetails"]
    assert details["destinationId"] == "456"
    assert details["destinationUrl"] == f"{sim.cloud_url}/pages/viewpage.action?pageId=456"
    assert details["totalPageNeedToCopy"] == 10
    running_messages = [body["messages"][0] for body in bodies if not body["finished"]]
    assert {message["key"] for message in running_messages} == {"STATUS_COPYING_PAGES"}
    for message in running_messages:
        copied, total = message["args"]
        assert message["translation"] == f"Copied {copied} of {total} pages"
        assert total == "10"
    assert len({message["args"][0] for message in running_messages}) >= 3, "copied pages must go up"
    assert bodies[-1]["messages"][0] == {
        "translation": "Copied 10 pages",
        "key": "STATUS_COPIED_PAGES",
        "args": ["10"],
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-destination"),
        pytest.param([1], id="not-an-object"),
        pytest.param("{", id="bad-json"),
    ],
)
def test_copy_rejects_a_bad_body_with_400(sim, api, body):
    if isinstance(body, str):
        response = api.request("POST", "/wiki/rest/api/content/1/pagehierarchy/copy", data=body)
    else:
        response = api.request("POST", "/wiki/rest/api/content/1/pagehierarchy/copy", json=body)

    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
    assert sim.task_ids == []


@pytest.mark.parametrize(
    ("path", "nested"),
    [
        pytest.param(
            "/wiki/rest/api/content/1/pagehierarchy/copy", '{"a":' * 5000 + "1" + "}" * 5000, id="copy"
        ),
        pytest.param("/wiki/rest/api/content/archive", "[" * 5000 + "]" * 5000, id="archive"),
    ],
)
def test_deeply_nested_json_body_is_400_without_a_traceback(sim, api, caplog, path, nested):
    with caplog.at_level(logging.ERROR):
        response = api.request("POST", path, data=nested)

    assert response.status_code == 400
    assert response.json()["message"] == "The request body is not valid JSON"
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert sim.task_ids == []


def test_operation_spec_can_be_set_per_operation(sim, api):
    sim.operation_spec = {
        "delete_space": TaskSpec(duration=0, outcome="failure", error_keys=("ERROR_LOCK_FAILED",)),
        "delete_page_tree": TaskSpec(duration=0),
    }

    space = api.request("DELETE", "/wiki/rest/api/space/DEMO").json()["id"]
    tree = api.request("DELETE", "/wiki/rest/api/content/9/pageTree").json()["id"]

    failed = api.status_json(space)
    assert failed["successful"] is False
    assert keys_of(failed["errors"]) == ["ERROR_LOCK_FAILED"]
    assert failed["name"]["key"] == "com.atlassian.confluence.spaces.actions.RemoveSpaceAction.action.name"
    assert failed["messages"][0]["translation"] == "Deleting space"
    assert api.status_json(tree)["successful"] is True


def test_archive_refuses_more_than_300_pages(sim, api):
    sim.operation_spec = TaskSpec(duration=0)

    too_many = api.request(
        "POST", "/wiki/rest/api/content/archive", json={"pages": [{"id": str(i)} for i in range(301)]}
    )
    at_limit = api.request(
        "POST", "/wiki/rest/api/content/archive", json={"pages": [{"id": str(i)} for i in range(300)]}
    )

    assert too_many.status_code == 400
    body = too_many.json()
    assert body["statusCode"] == 400
    assert "300" in body["message"]
    assert at_limit.status_code == 202


def test_archive_refuses_while_another_archive_runs(sim, api):
    sim.operation_spec = TaskSpec(duration=0.3)
    pages = {"pages": [{"id": "1"}]}

    first = api.request("POST", "/wiki/rest/api/content/archive", json=pages)
    second = api.request("POST", "/wiki/rest/api/content/archive", json=pages)
    other = api.request("DELETE", "/wiki/rest/api/content/1/pageTree")
    time.sleep(0.35)
    third = api.request("POST", "/wiki/rest/api/content/archive", json=pages)

    assert first.status_code == 202
    assert second.status_code == 400
    assert "already running" in second.json()["message"]
    assert other.status_code == 202, "only archive jobs block each other"
    assert third.status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-pages"),
        pytest.param({"pages": []}, id="empty"),
        pytest.param({"pages": [{"title": "x"}]}, id="no-id"),
        pytest.param({"pages": "1"}, id="not-a-list"),
    ],
)
def test_archive_rejects_a_bad_body_with_400(api, body):
    response = api.request("POST", "/wiki/rest/api/content/archive", json=body)

    assert response.status_code == 400
    assert response.json()["data"]["valid"] is False


# -- stats ------------------------------------------------------------------------------------------------


def test_stats_count_requests_statuses_faults_and_auth_failures(sim, api, anonymous):
    task_id = sim.add_task(TaskSpec(duration=0))
    sim.inject(Fault("500", task_id=task_id))

    for _ in range(3):
        api.status(task_id)
    api.status("404404")
    api.get("/wiki/rest/api/longtask")
    anonymous.status(task_id)
    anonymous.get("/_simulator/health")

    stats = sim.stats
    assert stats.total_requests == 6
    assert stats.control_requests == 1
    assert stats.requests_by_kind == {"status": 5, "list": 1}
    assert stats.requests_by_task == {task_id: 4, "404404": 1}
    assert stats.status_gets(task_id) == 4
    assert stats.responses_by_status == {200: 3, 500: 1, 404: 1, 401: 1}
    assert stats.faults_by_kind == {"500": 1}
    assert stats.auth_failures == 1
    assert stats.tasks[task_id].status_gets == 4
    assert json.loads(json.dumps(stats.to_dict()))["responses_by_status"]["200"] == 3


def test_reset_stats_zeroes_the_counters(sim, api):
    task_id = sim.add_task(TaskSpec(duration=0))
    api.status(task_id)

    sim.reset_stats()

    stats = sim.stats
    assert (stats.total_requests, stats.requests_by_task, stats.responses_by_status) == (0, {}, {})
    assert stats.tasks[task_id].status_gets == 0
    assert stats.tasks[task_id].final_status_served_at is None


def test_stats_record_when_a_task_finished_and_when_that_was_served(sim, api):
    task_id = sim.add_task(TaskSpec(duration=0.2))

    before = sim.stats.tasks[task_id]
    api.until_done(task_id)
    after = sim.stats.tasks[task_id]

    assert before.finished_at is None
    assert before.final_status_served_at is None
    assert after.started_at is not None
    assert after.finished_at == pytest.approx(after.started_at + 0.2)
    assert after.final_status_served_at is not None
    assert after.finished_at <= after.final_status_served_at <= time.time()


def test_stats_is_a_snapshot(sim, api):
    task_id = sim.add_task(TaskSpec(duration=0))
    snapshot = sim.stats

    api.status(task_id)

    assert snapshot.total_requests == 0
    assert sim.stats.total_requests == 1


# -- lifecycle --------------------------------------------------------------------------------------------


def test_threaded_simulator_stops_cleanly():
    before = {thread.ident for thread in threading.enumerate()}
    with ConfluenceSimulator() as sim:
        port = sim.port
        assert any(thread.name == f"confluence-simulator-{port}" for thread in threading.enumerate())
        assert not port_is_closed(port)

    assert port_is_closed(port)
    assert {thread.ident for thread in threading.enumerate()} <= before
    with pytest.raises(RuntimeError, match="not running"):
        _ = sim.port


def test_stop_does_not_wait_for_a_slow_request():
    with ConfluenceSimulator() as sim:
        task_id = sim.add_task(TaskSpec(duration=0))
        sim.inject(Fault("slow", delay=30))
        errors: list[BaseException] = []

        def slow_get() -> None:
            try:
                requests.get(sim.status_url(task_id), auth=(EMAIL, TOKEN), timeout=20).close()
            except requests.RequestException as exc:
                errors.append(exc)

        client = threading.Thread(target=slow_get)
        client.start()
        time.sleep(0.2)
        started = time.monotonic()
    stop_took = time.monotonic() - started
    client.join(timeout=5)

    assert stop_took < 5
    assert not client.is_alive()
    assert errors, "the in-flight request is cut off when the simulator stops"


def test_a_taken_port_is_reported():
    with ConfluenceSimulator() as first, pytest.raises(OSError, match="in use"):
        ConfluenceSimulator(port=first.port).start()


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "::"])
def test_non_loopback_hosts_are_refused_without_allow_remote(host):
    with pytest.raises(ValueError, match="allow_remote"):
        ConfluenceSimulator(host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.0.0.2"])
def test_loopback_hosts_are_accepted(host):
    with ConfluenceSimulator(host=host) as sim, requests.Session() as session:
        response = session.get(sim.url + "/_simulator/health", timeout=5)
    assert response.json()["status"] == "ok"


def test_airflow_connection_points_at_the_simulator(sim):
    cloud = json.loads(sim.airflow_connection())
    datacenter = json.loads(sim.airflow_connection(deployment="datacenter", auth_type="bearer"))

    assert cloud == {
        "conn_type": "confluence",
        "host": sim.cloud_url,
        "login": EMAIL,
        "password": TOKEN,
        "extra": {"deployment": "cloud", "auth_type": "basic"},
    }
    assert (datacenter["host"], datacenter["login"], datacenter["password"]) == (
        sim.datacenter_url,
        None,
        TOKEN,
    )


def test_pytest_plugin_gives_dag_authors_a_running_simulator(tmp_path):
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["airflow_provider_confluence.testing.pytest_plugin"]\n'
    )
    (tmp_path / "test_dag_author.py").write_text(
        "import requests\n"
        "\n"
        "def test_uses_simulator(confluence_simulator):\n"
        "    task_id = confluence_simulator.add_task(duration=0)\n"
        "    response = requests.get(confluence_simulator.status_url(task_id),\n"
        "                            auth=('demo@example.com', 'sim-token'), timeout=5)\n"
        "    assert response.json()['finished'] is True\n"
    )

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error::ResourceWarning", "."],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
