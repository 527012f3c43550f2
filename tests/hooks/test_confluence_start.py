"""The hook's operations that start a Confluence long task, over requests-mock: requests, answers, retries."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import requests_mock as rm

from airflow_provider_confluence.core import RetryPolicy, started_task_id
from airflow_provider_confluence.exceptions import (
    ConfluenceAPIError,
    ConfluenceAuthError,
    ConfluenceBadResponseError,
    ConfluenceConfigError,
    ConfluenceNotFoundError,
    ConfluenceRateLimitError,
    ConfluenceRequestError,
    ConfluenceTransientError,
)
from airflow_provider_confluence.hooks import confluence as hook_module
from airflow_provider_confluence.hooks.confluence import ConfluenceHook
from tests.helpers import logs_without

TOKEN = "CANARY-start-token-5c1e"
LOGIN = "user@example.com"
ROOT = "https://example.atlassian.net/wiki"
BASIC = "Basic " + base64.b64encode(f"{LOGIN}:{TOKEN}".encode()).decode()
DATA = Path(__file__).resolve().parents[1] / "data"
STARTED = json.loads((DATA / "longtask-started-202.json").read_text())  # {"id": "1180606", ...}
ERROR_404 = json.loads((DATA / "error-404.json").read_text())

COPY_URL = f"{ROOT}/rest/api/content/65601/pagehierarchy/copy"
ARCHIVE_URL = f"{ROOT}/rest/api/content/archive"
TREE_URL = f"{ROOT}/rest/api/content/65601/pageTree"
SPACE_URL = f"{ROOT}/rest/api/space/DOCS"


def error_body(status: int, message: str) -> dict[str, Any]:
    """Confluence's error shape (as tests/data/error-404.json) with another status and message."""
    body = json.loads(json.dumps(ERROR_404))
    body["statusCode"] = status
    body["message"] = message
    body["reason"] = "Bad Request" if status == 400 else body["reason"]
    body["data"]["valid"] = False
    return body


# Each operation: how to call it, and the request it must send.
OPERATIONS: dict[str, tuple[Callable[[ConfluenceHook], str], str, str]] = {
    "copy": (
        lambda hook: hook.copy_page_hierarchy("65601", destination_page_id="98305"),
        "POST",
        COPY_URL,
    ),
    "archive": (lambda hook: hook.archive_pages(["65601", "65602"]), "POST", ARCHIVE_URL),
    "delete_page_tree": (lambda hook: hook.delete_page_tree("65601"), "DELETE", TREE_URL),
    "delete_space": (lambda hook: hook.delete_space("DOCS"), "DELETE", SPACE_URL),
}
OPERATION_NAMES = list(OPERATIONS)


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    with logs_without(caplog, [TOKEN, BASIC.split(" ")[1]]) as captured:
        yield captured


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``time.sleep`` of the sync transport, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(hook_module, "time", SimpleNamespace(sleep=recorded.append))
    return recorded


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConfluenceHook]:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CONF_START",
        json.dumps(
            {
                "conn_type": "confluence",
                "host": "https://example.atlassian.net",
                "login": LOGIN,
                "password": TOKEN,
            }
        ),
    )
    with ConfluenceHook("conf_start") as started:
        yield started


def register(requests_mock: rm.Mocker, method: str, url: str, *responses: dict[str, Any]) -> None:
    requests_mock.register_uri(method, url, list(responses))


# ---------------------------------------------------------------------------- the requests
def test_copy_page_hierarchy_sends_the_documented_request(
    hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    register(requests_mock, "POST", COPY_URL, {"status_code": 202, "json": STARTED})

    task_id = hook.copy_page_hierarchy(
        "65601",
        destination_page_id="98305",
        copy_attachments=False,
        copy_permissions=True,
        copy_properties=False,
        copy_labels=True,
        copy_custom_contents=False,
        title_options={"prefix": "[backup] ", "replace": "Old", "search": "New"},
    )

    assert task_id == "1180606"
    assert requests_mock.call_count == 1
    sent = requests_mock.last_request
    assert sent.method == "POST"
    assert sent.url == COPY_URL
    assert sent.json() == {
        "copyAttachments": False,
        "copyPermissions": True,
        "copyProperties": False,
        "copyLabels": True,
        "copyCustomContents": False,
        "destinationPageId": "98305",
        "titleOptions": {"prefix": "[backup] ", "replace": "Old", "search": "New"},
    }
    assert sent.headers["X-Atlassian-Token"] == "no-check"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Authorization"] == BASIC
    assert sent.headers["Accept"] == "application/json"


def test_copy_page_hierarchy_defaults_copy_everything_without_title_options(
    hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    register(requests_mock, "POST", COPY_URL, {"status_code": 202, "json": STARTED})

    hook.copy_page_hierarchy("65601", destination_page_id=98305)  # type: ignore[arg-type]

    assert requests_mock.last_request.json() == {
        "copyAttachments": True,
        "copyPermissions": True,
        "copyProperties": True,
        "copyLabels": True,
        "copyCustomContents": True,
        "destinationPageId": "98305",
    }


def test_archive_pages_posts_the_page_ids(hook: ConfluenceHook, requests_mock: rm.Mocker) -> None:
    register(requests_mock, "POST", ARCHIVE_URL, {"status_code": 202, "json": STARTED})

    task_id = hook.archive_pages(["65601", "65602", "65603"])

    assert task_id == "1180606"
    sent = requests_mock.last_request
    assert (sent.method, sent.url) == ("POST", ARCHIVE_URL)
    assert sent.json() == {"pages": [{"id": 65601}, {"id": 65602}, {"id": 65603}]}
    assert sent.headers["X-Atlassian-Token"] == "no-check"


@pytest.mark.parametrize(
    ("call", "url"),
    [
        pytest.param(lambda hook: hook.delete_page_tree("65601"), TREE_URL, id="delete-page-tree"),
        pytest.param(lambda hook: hook.delete_space("DOCS"), SPACE_URL, id="delete-space"),
        pytest.param(
            lambda hook: hook.delete_space("~5b0c6a"),
            f"{ROOT}/rest/api/space/~5b0c6a",
            id="personal-space-key",
        ),
    ],
)
def test_deletes_send_a_bodyless_delete(
    hook: ConfluenceHook, requests_mock: rm.Mocker, call: Callable[[ConfluenceHook], str], url: str
) -> None:
    register(requests_mock, "DELETE", url, {"status_code": 202, "json": STARTED})

    task_id = call(hook)

    assert task_id == "1180606"
    assert requests_mock.call_count == 1
    sent = requests_mock.last_request
    assert (sent.method, sent.url) == ("DELETE", url)
    assert not sent.body
    assert sent.headers["X-Atlassian-Token"] == "no-check"
    assert "Content-Type" not in sent.headers


@pytest.mark.parametrize("operation", OPERATION_NAMES)
def test_the_started_id_is_returned_as_an_opaque_string(
    hook: ConfluenceHook, requests_mock: rm.Mocker, operation: str
) -> None:
    call, method, url = OPERATIONS[operation]
    register(requests_mock, method, url, {"status_code": 202, "json": {"id": 42, "links": {}}})

    assert call(hook) == "42"


def test_data_center_paths_have_no_wiki_prefix(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CONF_DC",
        json.dumps(
            {"conn_type": "confluence", "host": "https://wiki.example.com/confluence", "password": TOKEN}
        ),
    )
    url = "https://wiki.example.com/confluence/rest/api/space/DOCS"
    register(requests_mock, "DELETE", url, {"status_code": 202, "json": STARTED})

    with ConfluenceHook("conf_dc") as dc_hook:
        assert dc_hook.delete_space("DOCS") == "1180606"

    assert requests_mock.last_request.headers["Authorization"] == f"Bearer {TOKEN}"


# ---------------------------------------------------------------------------- bad ids: nothing is sent
@pytest.mark.parametrize(
    "bad_id", ["", "../x", "a/b", " 1", None], ids=["empty", "dot-dot", "slash", "space", "none"]
)
@pytest.mark.parametrize(
    ("call", "name"),
    [
        pytest.param(
            lambda h, v: h.copy_page_hierarchy(v, destination_page_id="98305"), "page_id", id="copy-page"
        ),
        pytest.param(lambda h, v: h.archive_pages(["65601", v]), "page_ids", id="archive"),
        pytest.param(lambda h, v: h.delete_page_tree(v), "page_id", id="delete-page-tree"),
        pytest.param(lambda h, v: h.delete_space(v), "space_key", id="delete-space"),
    ],
)
def test_bad_ids_are_rejected_before_any_request(
    hook: ConfluenceHook, requests_mock: rm.Mocker, call: Callable[..., str], name: str, bad_id: str | None
) -> None:
    requests_mock.register_uri(rm.ANY, rm.ANY, status_code=202, json=STARTED)  # so a leak shows as a count

    with pytest.raises(ConfluenceConfigError, match=name):
        call(hook, bad_id)

    assert requests_mock.call_count == 0


@pytest.mark.parametrize("bad_id", ["", "../x", None], ids=["empty", "dot-dot", "none"])
def test_a_bad_destination_page_id_is_rejected_before_any_request(
    hook: ConfluenceHook, requests_mock: rm.Mocker, bad_id: str | None
) -> None:
    """An unrendered or missing destination (``""``, ``None`` -> ``"None"``) must not reach Confluence."""
    register(requests_mock, "POST", COPY_URL, {"status_code": 202, "json": STARTED})

    with pytest.raises(ConfluenceConfigError, match="destination_page_id"):
        hook.copy_page_hierarchy("65601", destination_page_id=bad_id)  # type: ignore[arg-type]

    assert requests_mock.call_count == 0


def test_archive_pages_needs_at_least_one_page(hook: ConfluenceHook, requests_mock: rm.Mocker) -> None:
    with pytest.raises(ConfluenceConfigError, match="at least one page id"):
        hook.archive_pages([])

    assert requests_mock.call_count == 0


# ---------------------------------------------------------------------------- refusals and bad answers
@pytest.mark.parametrize(
    "message",
    [
        "Another archive job is already running. Wait for it to complete.",
        "Cannot archive 301 pages: at most 300 pages can be archived at once",
    ],
    ids=["archive-already-running", "more-than-300-pages"],
)
def test_a_400_raises_a_request_error_quoting_confluence(
    hook: ConfluenceHook, requests_mock: rm.Mocker, waits: list[float], message: str
) -> None:
    register(requests_mock, "POST", ARCHIVE_URL, {"status_code": 400, "json": error_body(400, message)})

    with pytest.raises(ConfluenceRequestError) as raised:
        hook.archive_pages(["65601"])

    assert type(raised.value) is ConfluenceRequestError
    assert message in str(raised.value)
    assert "archive" in str(raised.value)
    assert raised.value.status_code == 400
    assert requests_mock.call_count == 1
    assert waits == []


@pytest.mark.parametrize("operation", OPERATION_NAMES)
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"status_code": 500, "text": "Internal Server Error"}, id="500"),
        pytest.param({"status_code": 502, "text": "Bad Gateway"}, id="502"),
        pytest.param({"status_code": 503, "text": "Service Unavailable"}, id="503-without-retry-after"),
        pytest.param({"exc": requests.exceptions.ConnectionError("reset by peer")}, id="connection-reset"),
        pytest.param({"exc": requests.exceptions.ReadTimeout("read timed out")}, id="read-timeout"),
    ],
)
def test_a_start_that_may_have_happened_is_not_retried(
    hook: ConfluenceHook, requests_mock: rm.Mocker, waits: list[float], operation: str, answer: dict[str, Any]
) -> None:
    """A 5xx or a lost answer may hide a started task: sending again could start the work twice."""
    call, method, url = OPERATIONS[operation]
    register(requests_mock, method, url, answer, {"status_code": 202, "json": STARTED})

    with pytest.raises(ConfluenceTransientError):
        call(hook)

    assert requests_mock.call_count == 1
    assert waits == []


@pytest.mark.parametrize("operation", OPERATION_NAMES)
@pytest.mark.parametrize(
    ("answer", "wait"),
    [
        pytest.param({"status_code": 429, "headers": {"Retry-After": "0"}}, 0.0, id="429-retry-after-0"),
        pytest.param({"status_code": 503, "headers": {"Retry-After": "2"}}, 2.0, id="503-with-retry-after"),
    ],
)
def test_a_start_confluence_did_not_process_is_retried(
    hook: ConfluenceHook,
    requests_mock: rm.Mocker,
    waits: list[float],
    operation: str,
    answer: dict[str, Any],
    wait: float,
) -> None:
    call, method, url = OPERATIONS[operation]
    register(requests_mock, method, url, answer, {"status_code": 202, "json": STARTED})

    assert call(hook) == "1180606"

    assert requests_mock.call_count == 2
    assert waits == [wait]
    first, second = requests_mock.request_history
    assert (first.method, first.url, first.body) == (second.method, second.url, second.body)


def test_a_start_rate_limited_past_the_retries_raises_the_rate_limit(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker, waits: list[float]
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CONF_FEW",
        json.dumps(
            {"conn_type": "confluence", "host": "example.atlassian.net", "login": LOGIN, "password": TOKEN}
        ),
    )
    register(requests_mock, "DELETE", SPACE_URL, {"status_code": 429, "headers": {"Retry-After": "1"}})

    with (
        ConfluenceHook("conf_few", retry_policy=RetryPolicy(max_retries=2)) as few,
        pytest.raises(ConfluenceRateLimitError),
    ):
        few.delete_space("DOCS")

    assert requests_mock.call_count == 3
    assert waits == [1.0, 1.0]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"links": {"status": "/rest/api/longtask/1"}}, id="no-id"),
        pytest.param({"id": "", "links": {}}, id="empty-id"),
        pytest.param({"id": "   "}, id="blank-id"),
        pytest.param({"id": None}, id="null-id"),
        pytest.param({"id": True}, id="boolean-id"),
        pytest.param({"id": ["1"]}, id="list-id"),
        pytest.param(["1180606"], id="a-list"),
    ],
)
@pytest.mark.parametrize("operation", ["copy", "delete_space"])
def test_a_202_without_a_task_id_is_a_bad_response(
    hook: ConfluenceHook, requests_mock: rm.Mocker, waits: list[float], operation: str, body: Any
) -> None:
    call, method, url = OPERATIONS[operation]
    register(requests_mock, method, url, {"status_code": 202, "json": body})

    with pytest.raises(ConfluenceBadResponseError, match="names no long-task id") as raised:
        call(hook)

    assert raised.value.url == url
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        pytest.param({"status_code": 202, "text": ""}, ConfluenceBadResponseError, id="empty-body"),
        pytest.param({"status_code": 202, "text": "accepted"}, ConfluenceBadResponseError, id="not-json"),
        pytest.param(
            {
                "status_code": 200,
                "text": "<html><body>Log in</body></html>",
                "headers": {"Content-Type": "text/html"},
            },
            ConfluenceAuthError,
            id="login-page",
        ),
        pytest.param({"status_code": 401, "json": {"message": "no"}}, ConfluenceAuthError, id="401"),
        pytest.param({"status_code": 403, "json": {"message": "no"}}, ConfluenceAuthError, id="403"),
        pytest.param(
            {"status_code": 404, "json": error_body(404, "No content with the given id")},
            ConfluenceNotFoundError,
            id="404-no-such-page",
        ),
    ],
)
def test_other_answers_to_a_start_raise_the_matching_error(
    hook: ConfluenceHook,
    requests_mock: rm.Mocker,
    waits: list[float],
    answer: dict[str, Any],
    kind: type[ConfluenceAPIError],
) -> None:
    register(requests_mock, "POST", COPY_URL, answer)

    with pytest.raises(kind) as raised:
        hook.copy_page_hierarchy("65601", destination_page_id="98305")

    assert type(raised.value) is kind
    assert requests_mock.call_count == 1
    assert TOKEN not in str(raised.value)


def test_the_start_is_logged_with_the_task_id(
    hook: ConfluenceHook, requests_mock: rm.Mocker, no_secret_in_logs: list[dict[str, Any]]
) -> None:
    register(requests_mock, "DELETE", SPACE_URL, {"status_code": 202, "json": STARTED})

    hook.delete_space("DOCS")

    events = [str(entry["event"]) for entry in no_secret_in_logs if entry.get("log_level") == "info"]
    assert any("space DOCS" in event and "1180606" in event for event in events), events


# ---------------------------------------------------------------------------- core: the rules themselves
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(STARTED, "1180606", id="fixture-202"),
        pytest.param({"id": 7}, "7", id="integer-id"),
        pytest.param({"id": "abc-7"}, "abc-7", id="opaque-id"),
    ],
)
def test_started_task_id_reads_the_id(data: Any, expected: str) -> None:
    assert started_task_id(data, "https://x/wiki/rest/api/space/DOCS") == expected


@pytest.mark.parametrize("data", [None, {}, {"id": False}, {"id": 1.5}, "1180606"], ids=str)
def test_started_task_id_rejects_answers_without_an_id(data: Any) -> None:
    with pytest.raises(ConfluenceBadResponseError, match="https://x/start"):
        started_task_id(data, "https://x/start")


TRANSIENT = ConfluenceTransientError("500", status_code=500)
RATE_LIMITED = ConfluenceRateLimitError("429", status_code=429, retry_after=4.0)
RATE_LIMITED_NO_HINT = ConfluenceRateLimitError("429", status_code=429, retry_after=None)


@pytest.mark.parametrize(
    ("error", "idempotent", "expected"),
    [
        pytest.param(TRANSIENT, True, 1.0, id="get-500-backs-off"),
        pytest.param(TRANSIENT, False, None, id="post-500-not-retried"),
        pytest.param(RATE_LIMITED, False, 4.0, id="post-429-honours-retry-after"),
        pytest.param(RATE_LIMITED, True, 4.0, id="get-429-honours-retry-after"),
        pytest.param(RATE_LIMITED_NO_HINT, False, 1.0, id="post-429-without-retry-after-backs-off"),
        pytest.param(ConfluenceRequestError("400", status_code=400), True, None, id="400-never"),
        pytest.param(ConfluenceRequestError("400", status_code=400), False, None, id="post-400-never"),
    ],
)
def test_retry_policy_delay_by_idempotence(
    error: ConfluenceAPIError, idempotent: bool, expected: float | None
) -> None:
    policy = RetryPolicy(jitter=0.0)

    assert policy.delay(error, 0, random.Random(1), idempotent=idempotent) == expected


def test_retry_policy_delay_defaults_to_idempotent_and_stops_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=2, jitter=0.0)

    assert policy.delay(TRANSIENT, 1) == 2.0
    assert policy.delay(TRANSIENT, 2) is None
    assert policy.delay(RATE_LIMITED, 2, idempotent=False) is None
