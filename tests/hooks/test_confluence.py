"""The sync ``ConfluenceHook`` over requests-mock: connections in every form, calls, retries, secrets."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import requests_mock as rm
from airflow.sdk import Connection

import airflow_provider_confluence
from airflow_provider_confluence.core import RetryPolicy
from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceBadResponseError,
    ConfluenceConfigError,
    ConfluenceError,
    ConfluenceNotFoundError,
    ConfluenceTransientError,
)
from airflow_provider_confluence.hooks import confluence as hook_module
from airflow_provider_confluence.hooks.confluence import ConfluenceHook
from airflow_provider_confluence.longtask import LongTask, Outcome
from tests.helpers import logs_without

TOKEN = "CANARY-TOKEN-123"
LOGIN = "user@example.com"
CLOUD_ROOT = "https://example.atlassian.net/wiki"
DC_ROOT = "http://127.0.0.1:8090/confluence"
BASIC = "Basic " + base64.b64encode(f"{LOGIN}:{TOKEN}".encode()).decode()
BEARER = f"Bearer {TOKEN}"
USER_AGENT = f"airflow-provider-confluence/{airflow_provider_confluence.__version__}"


def status(task_id: str = "1180606", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": task_id,
        "name": {
            "key": "com.atlassian.confluence.pages.actions.CopyPageHierarchyAction.action.name",
            "args": [],
        },
        "elapsedTime": 4_000,
        "percentageComplete": 40,
        "successful": False,
        "finished": False,
        "messages": [],
        "_links": {"base": CLOUD_ROOT, "context": "/wiki"},
    }
    body.update(fields)
    return body


def env_json(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "confluence", **fields}))


def ui_fields(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    """A connection as saved from the UI form: a Connection object with its fields set."""
    conn = Connection(conn_id=conn_id, conn_type="confluence", **fields)
    monkeypatch.setattr(ConfluenceHook, "get_connection", classmethod(lambda cls, _id: conn))


@pytest.fixture(autouse=True)
def hook_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """
    What the hook logged. ``hook.log`` is Airflow's structlog logger (it does not go through the
    stdlib ``logging`` that ``caplog`` sees), so it is captured with structlog's own tool. The canary
    token must show up in no log entry of either kind, in any test of this module.
    """
    with logs_without(caplog, [TOKEN, BASIC.split(" ")[1]]) as captured:
        yield captured


def logged(captured: list[dict[str, Any]], level: str) -> list[str]:
    return [str(entry["event"]) for entry in captured if entry.get("log_level") == level]


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``time.sleep`` of the hook's sync transport, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(hook_module, "time", SimpleNamespace(sleep=recorded.append))
    return recorded


@pytest.fixture
def cloud_hook(monkeypatch: pytest.MonkeyPatch) -> ConfluenceHook:
    env_json(
        monkeypatch, "confluence_cloud", host="https://example.atlassian.net", login=LOGIN, password=TOKEN
    )
    return ConfluenceHook("confluence_cloud")


def assert_no_token(error: BaseException) -> None:
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    assert BASIC.split(" ")[1] not in str(error)


# ---------------------------------------------------------------------------- one Confluence, three forms
CLOUD_FORMS = [
    pytest.param(
        "ui",
        {"host": "https://example.atlassian.net/wiki/", "login": LOGIN, "password": TOKEN},
        id="cloud-ui",
    ),
    pytest.param(
        "json", {"host": "example.atlassian.net", "login": LOGIN, "password": TOKEN}, id="cloud-json"
    ),
    pytest.param(
        "uri", f"confluence://user%40example.com:{TOKEN}@example.atlassian.net/wiki", id="cloud-uri"
    ),
    pytest.param(
        "uri", f"confluence://user%40example.com:{TOKEN}@example.atlassian.net", id="cloud-uri-without-wiki"
    ),
]
DC_FORMS = [
    pytest.param("ui", {"host": "http://127.0.0.1:8090/confluence", "password": TOKEN}, id="dc-ui"),
    pytest.param("json", {"host": "http://127.0.0.1:8090/confluence/", "password": TOKEN}, id="dc-json"),
    pytest.param(
        "json",
        {"host": "http://127.0.0.1", "port": 8090, "schema": "confluence", "password": TOKEN},
        id="dc-json-port-and-schema",
    ),
    pytest.param(
        "uri", f"confluence://:{TOKEN}@http%3A%2F%2F127.0.0.1%3A8090%2Fconfluence", id="dc-uri-encoded-host"
    ),
]


def make_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, form: str, value: Any) -> None:
    if form == "ui":
        ui_fields(monkeypatch, conn_id, **value)
    elif form == "json":
        env_json(monkeypatch, conn_id, **value)
    else:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)


@pytest.mark.parametrize(
    ("form", "value", "root", "authorization"),
    [
        *[pytest.param(*p.values, CLOUD_ROOT, BASIC, id=p.id) for p in CLOUD_FORMS],
        *[pytest.param(*p.values, DC_ROOT, BEARER, id=p.id) for p in DC_FORMS],
    ],
)
def test_every_connection_form_gives_the_same_root_and_authorization(
    monkeypatch: pytest.MonkeyPatch,
    requests_mock: rm.Mocker,
    form: str,
    value: Any,
    root: str,
    authorization: str,
) -> None:
    make_connection(monkeypatch, "conf_forms", form, value)
    requests_mock.get(f"{root}/rest/api/longtask/1180606", json=status())
    hook = ConfluenceHook("conf_forms")

    task = hook.get_long_task("1180606")

    assert hook.settings.api_root == root
    assert hook.settings.authorization == authorization
    assert task.id == "1180606"
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.url == f"{root}/rest/api/longtask/1180606"
    assert requests_mock.last_request.headers["Authorization"] == authorization


# ---------------------------------------------------------------------------- get_long_task
def test_get_long_task_sends_one_get_with_the_right_headers(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    url = f"{CLOUD_ROOT}/rest/api/longtask/1180606"
    requests_mock.get(url, json=status(percentageComplete=100, finished=True, successful=True))

    task = cloud_hook.get_long_task("1180606")

    assert isinstance(task, LongTask)
    assert task.outcome() is Outcome.SUCCESS
    assert requests_mock.call_count == 1
    sent = requests_mock.last_request
    assert sent.method == "GET"
    assert sent.url == url
    assert sent.headers["Authorization"] == BASIC
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["User-Agent"] == USER_AGENT
    assert sent.timeout == (30.0, 30.0)
    assert sent.verify is True
    assert sent.body is None


def test_get_long_task_does_not_follow_a_redirect_to_another_host(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(
        f"{CLOUD_ROOT}/rest/api/longtask/1180606",
        status_code=302,
        headers={"Location": "https://sso.example.org/login"},
    )
    sso = requests_mock.get("https://sso.example.org/login", json=status())

    with pytest.raises(ConfluenceAuthError, match="redirected") as caught:
        cloud_hook.get_long_task("1180606")

    assert requests_mock.call_count == 1
    assert not sso.called
    assert_no_token(caught.value)


def test_get_long_task_follows_a_same_origin_redirect_itself(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(
        f"{CLOUD_ROOT}/rest/api/longtask/1180606",
        status_code=301,
        headers={"Location": "/wiki/rest/api/longtask/1180606/"},
    )
    requests_mock.get(f"{CLOUD_ROOT}/rest/api/longtask/1180606/", json=status())

    assert cloud_hook.get_long_task("1180606").id == "1180606"
    assert [r.url for r in requests_mock.request_history] == [
        f"{CLOUD_ROOT}/rest/api/longtask/1180606",
        f"{CLOUD_ROOT}/rest/api/longtask/1180606/",
    ]
    assert requests_mock.request_history[1].headers["Authorization"] == BASIC


def test_get_long_task_quotes_the_id(cloud_hook: ConfluenceHook, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{CLOUD_ROOT}/rest/api/longtask/a%20b", json=status("a b"))

    assert cloud_hook.get_long_task("a b").id == "a b"
    assert requests_mock.last_request.url == f"{CLOUD_ROOT}/rest/api/longtask/a%20b"


@pytest.mark.parametrize(
    "task_id",
    [pytest.param("", id="empty"), pytest.param("../admin", id="path"), pytest.param("1\n", id="newline")],
)
def test_get_long_task_rejects_a_bad_id_before_sending(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker, task_id: str
) -> None:
    with pytest.raises(ConfluenceConfigError, match="long_task_id"):
        cloud_hook.get_long_task(task_id)

    assert requests_mock.call_count == 0


def test_get_long_task_retries_503_with_retry_after_then_succeeds(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker, waits: list[float], hook_logs: list[dict[str, Any]]
) -> None:
    requests_mock.get(
        f"{CLOUD_ROOT}/rest/api/longtask/1180606",
        [
            {"status_code": 503, "headers": {"Retry-After": "7"}, "text": "Service Unavailable"},
            {"json": status(percentageComplete=55)},
        ],
    )

    task = cloud_hook.get_long_task("1180606")

    assert task.percentage_complete == 55
    assert waits == [7.0]
    assert requests_mock.call_count == 2
    (warning,) = logged(hook_logs, "warning")
    assert "rate-limited the long task 1180606 (503" in warning
    assert "Retry 1 of 5 in 7.0 s" in warning


def test_get_long_task_gives_up_after_max_retries(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker, waits: list[float]
) -> None:
    requests_mock.get(
        f"{CLOUD_ROOT}/rest/api/longtask/1180606", status_code=500, text="Internal Server Error"
    )

    with pytest.raises(ConfluenceTransientError) as caught:
        cloud_hook.get_long_task("1180606")

    max_retries = cloud_hook.retry_policy.max_retries
    assert requests_mock.call_count == max_retries + 1
    assert len(waits) == max_retries
    assert caught.value.status_code == 500
    assert caught.value.url == f"{CLOUD_ROOT}/rest/api/longtask/1180606"


def test_get_long_task_uses_the_hook_retry_policy(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker, waits: list[float]
) -> None:
    env_json(monkeypatch, "conf_policy", host="example.atlassian.net", login=LOGIN, password=TOKEN)
    hook = ConfluenceHook("conf_policy", retry_policy=RetryPolicy(max_retries=2, jitter=0.0))
    requests_mock.get(f"{CLOUD_ROOT}/rest/api/longtask/1", status_code=502)

    with pytest.raises(ConfluenceTransientError):
        hook.get_long_task("1")

    assert requests_mock.call_count == 3
    assert waits == [1.0, 2.0]


@pytest.mark.parametrize(
    ("status_code", "kind"),
    [
        pytest.param(401, ConfluenceAuthError, id="401"),
        pytest.param(403, ConfluenceAuthError, id="403"),
        pytest.param(404, ConfluenceNotFoundError, id="404"),
    ],
)
def test_get_long_task_fails_at_once_on_permanent_errors(
    cloud_hook: ConfluenceHook,
    requests_mock: rm.Mocker,
    waits: list[float],
    status_code: int,
    kind: type[ConfluenceError],
) -> None:
    requests_mock.get(
        f"{CLOUD_ROOT}/rest/api/longtask/1180606", status_code=status_code, json={"message": "no"}
    )

    with pytest.raises(kind) as caught:
        cloud_hook.get_long_task("1180606")

    assert requests_mock.call_count == 1
    assert waits == []
    assert_no_token(caught.value)


def test_get_long_task_bad_body_names_the_url(cloud_hook: ConfluenceHook, requests_mock: rm.Mocker) -> None:
    url = f"{CLOUD_ROOT}/rest/api/longtask/1180606"
    requests_mock.get(url, json={"id": "1180606", "percentageComplete": "half"})

    with pytest.raises(ConfluenceBadResponseError, match="'percentageComplete'") as caught:
        cloud_hook.get_long_task("1180606")

    assert url in str(caught.value)
    assert caught.value.url == url


def test_html_login_page_is_an_auth_error_without_the_token(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(
        f"{CLOUD_ROOT}/rest/api/longtask/1180606",
        text=(
            f"<html><head><title>Log in</title><script>var t='{TOKEN}'</script></head>"
            f"<body>{TOKEN}</body></html>"
        ),
        headers={"Content-Type": "text/html"},
    )

    with pytest.raises(ConfluenceAuthError, match="HTML page") as caught:
        cloud_hook.get_long_task("1180606")

    assert_no_token(caught.value)


def test_connection_errors_are_retried_and_redacted(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker, waits: list[float]
) -> None:
    import requests

    requests_mock.get(
        f"{CLOUD_ROOT}/rest/api/longtask/1180606",
        [
            {"exc": requests.exceptions.ConnectionError(f"reset while sending {TOKEN}")},
            {"exc": requests.exceptions.ReadTimeout("read timed out")},
            {"json": status()},
        ],
    )

    assert cloud_hook.get_long_task("1180606").id == "1180606"
    assert requests_mock.call_count == 3
    assert len(waits) == 2


def test_tls_errors_are_not_retried(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker, waits: list[float]
) -> None:
    import requests

    from airflow_provider_confluence.exceptions import ConfluenceTLSError

    requests_mock.get(
        f"{CLOUD_ROOT}/rest/api/longtask/1180606",
        exc=requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"),
    )

    with pytest.raises(ConfluenceTLSError, match="verify_ssl"):
        cloud_hook.get_long_task("1180606")

    assert requests_mock.call_count == 1
    assert waits == []


def test_extras_reach_the_session(monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker) -> None:
    env_json(
        monkeypatch,
        "conf_extras",
        host="https://wiki.example.com/confluence",
        password=TOKEN,
        extra={"verify_ssl": False, "timeout": 5, "proxy": "http://proxy.example.com:3128"},
    )
    requests_mock.get("https://wiki.example.com/confluence/rest/api/longtask/1", json=status("1"))
    hook = ConfluenceHook("conf_extras")

    hook.get_long_task("1")

    sent = requests_mock.last_request
    assert sent.verify is False
    assert sent.timeout == (5.0, 5.0)
    assert sent.proxies.get("https") == "http://proxy.example.com:3128"
    assert sent.headers["Authorization"] == BEARER
    assert hook.session.trust_env is False


# ---------------------------------------------------------------------------- list_long_tasks
def test_list_long_tasks_follows_next_links_across_three_pages(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    base = f"{CLOUD_ROOT}/rest/api/longtask"
    pages = [
        (0, ["1", "2"], "/rest/api/longtask?limit=2&start=2"),
        (2, ["3", "4"], "/rest/api/longtask?limit=2&start=4"),
        (4, ["5"], None),
    ]
    for start, ids, nxt in pages:
        links: dict[str, str] = {"base": CLOUD_ROOT, "context": "/wiki"}
        if nxt:
            links["next"] = nxt
        requests_mock.get(
            f"{base}?start={start}&limit=2",
            json={
                "results": [status(i) for i in ids],
                "start": start,
                "limit": 2,
                "size": len(ids),
                "_links": links,
            },
            complete_qs=True,
        )

    tasks = list(cloud_hook.list_long_tasks(page_size=2))

    assert [t.id for t in tasks] == ["1", "2", "3", "4", "5"]
    assert requests_mock.call_count == 3
    assert [r.qs for r in requests_mock.request_history] == [
        {"start": ["0"], "limit": ["2"]},
        {"start": ["2"], "limit": ["2"]},
        {"start": ["4"], "limit": ["2"]},
    ]


def test_list_long_tasks_without_next_link_pages_by_count(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    base = f"{CLOUD_ROOT}/rest/api/longtask"
    requests_mock.get(
        f"{base}?start=0&limit=2", json={"results": [status("1"), status("2")]}, complete_qs=True
    )
    requests_mock.get(f"{base}?start=2&limit=2", json={"results": [status("3")]}, complete_qs=True)

    assert [t.id for t in cloud_hook.list_long_tasks(page_size=2)] == ["1", "2", "3"]
    assert requests_mock.call_count == 2


def test_list_long_tasks_stops_when_the_server_does_not_advance(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(
        f"{CLOUD_ROOT}/rest/api/longtask",
        json={"results": [status("1")], "_links": {"next": "/rest/api/longtask?limit=1&start=0"}},
    )

    assert [t.id for t in cloud_hook.list_long_tasks(page_size=1)] == ["1"]
    assert requests_mock.call_count == 1


def test_list_long_tasks_rejects_a_page_without_results(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(f"{CLOUD_ROOT}/rest/api/longtask", json={"size": 0})

    with pytest.raises(ConfluenceBadResponseError, match="'results'"):
        list(cloud_hook.list_long_tasks())


@pytest.mark.parametrize("page_size", [pytest.param(0, id="zero"), pytest.param(101, id="too-large")])
def test_list_long_tasks_checks_the_page_size(cloud_hook: ConfluenceHook, page_size: int) -> None:
    with pytest.raises(ConfluenceConfigError, match="page_size"):
        list(cloud_hook.list_long_tasks(page_size=page_size))


# ---------------------------------------------------------------------------- test_connection
def test_test_connection_succeeds(cloud_hook: ConfluenceHook, requests_mock: rm.Mocker) -> None:
    requests_mock.get(
        f"{CLOUD_ROOT}/rest/api/longtask?start=0&limit=1", json={"results": []}, complete_qs=True
    )

    ok, message = cloud_hook.test_connection()

    assert ok is True
    assert message == f"Connected to Confluence cloud at {CLOUD_ROOT} (basic auth)."
    assert requests_mock.last_request.headers["Authorization"] == BASIC


def test_test_connection_reports_401_with_a_hint_and_no_token(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker, waits: list[float]
) -> None:
    requests_mock.get(f"{CLOUD_ROOT}/rest/api/longtask", status_code=401, json={"message": "Unauthorized"})

    ok, message = cloud_hook.test_connection()

    assert ok is False
    assert "401" in message
    assert "check that Login is the account e-mail and Password a valid API token" in message
    assert TOKEN not in message
    assert requests_mock.call_count == 1
    assert waits == []


def test_test_connection_does_not_retry(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker, waits: list[float]
) -> None:
    requests_mock.get(f"{CLOUD_ROOT}/rest/api/longtask", status_code=503)

    ok, message = cloud_hook.test_connection()

    assert ok is False
    assert "503" in message
    assert requests_mock.call_count == 1
    assert waits == []


def test_test_connection_reports_a_bad_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    env_json(monkeypatch, "conf_bad", host="https://api.atlassian.com", password=TOKEN)

    ok, message = ConfluenceHook("conf_bad").test_connection()

    assert ok is False
    assert "cloud_id" in message


def test_airflow_connection_test_button_uses_this_hook(requests_mock: rm.Mocker) -> None:
    """Airflow's own ``Connection.test_connection()`` (the UI's Test button) finds and runs this hook."""
    conn = Connection(conn_id="conf_button", conn_type="confluence", host=DC_ROOT, password=TOKEN)
    requests_mock.get(f"{DC_ROOT}/rest/api/longtask", json={"results": []})

    ok, message = conn.test_connection()

    assert (ok, message) == (True, f"Connected to Confluence datacenter at {DC_ROOT} (bearer auth).")
    assert requests_mock.last_request.headers["Authorization"] == BEARER


# ---------------------------------------------------------------------------- connection problems
def test_missing_connection_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONFLUENCE", raising=False)

    with pytest.raises(ConfluenceConfigError, match="AIRFLOW_CONN_NO_SUCH_CONFLUENCE") as caught:
        ConfluenceHook("no_such_confluence").get_long_task("1")

    assert "'no_such_confluence'" in str(caught.value)


def test_missing_token_is_a_config_error(monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker) -> None:
    env_json(monkeypatch, "conf_no_token", host="example.atlassian.net", login=LOGIN)

    with pytest.raises(ConfluenceConfigError, match="Password"):
        ConfluenceHook("conf_no_token").get_long_task("1")

    assert requests_mock.call_count == 0


def test_unknown_extras_are_logged_once(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker, hook_logs: list[dict[str, Any]]
) -> None:
    env_json(
        monkeypatch,
        "conf_unknown",
        host="example.atlassian.net",
        login=LOGIN,
        password=TOKEN,
        extra={"timeout": 10, "space_key": "DOC", "extra__confluence__verfy_ssl": "false"},
    )
    requests_mock.get(f"{CLOUD_ROOT}/rest/api/longtask/1", json=status("1"))
    hook = ConfluenceHook("conf_unknown")

    hook.get_long_task("1")
    hook.get_long_task("1")

    (warning,) = logged(hook_logs, "warning")
    assert "does not use" in warning
    assert "extra__confluence__verfy_ssl, space_key" in warning
    assert "'conf_unknown'" in warning


def test_reprs_hold_no_token(cloud_hook: ConfluenceHook, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{CLOUD_ROOT}/rest/api/longtask/1", json=status("1"))
    task = cloud_hook.get_long_task("1")

    for text in (repr(cloud_hook), repr(cloud_hook.settings), str(cloud_hook.settings), repr(task)):
        assert TOKEN not in text
        assert BASIC.split(" ")[1] not in text
    assert repr(cloud_hook) == "ConfluenceHook(confluence_conn_id='confluence_cloud')"


def test_hook_identity() -> None:
    assert ConfluenceHook.conn_type == "confluence"
    assert ConfluenceHook.conn_name_attr == "confluence_conn_id"
    assert ConfluenceHook.default_conn_name == "confluence_default"
    assert ConfluenceHook().confluence_conn_id == "confluence_default"


def test_close_and_context_manager(cloud_hook: ConfluenceHook, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{CLOUD_ROOT}/rest/api/longtask/1", json=status("1"))

    with cloud_hook as hook:
        hook.get_long_task("1")
        assert hook._session is not None

    assert cloud_hook._session is None


# ---------------------------------------------------------------------------- a fresh user's findings
def test_archive_pages_takes_a_single_id_string_as_one_page(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.post(f"{CLOUD_ROOT}/rest/api/content/archive", status_code=202, json={"id": "77"})

    assert cloud_hook.archive_pages("65601") == "77"
    assert requests_mock.last_request.json() == {"pages": [{"id": 65601}]}


def test_connection_test_404_says_the_host_is_wrong(
    cloud_hook: ConfluenceHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(f"{CLOUD_ROOT}/rest/api/longtask", status_code=404, text="Not Found")

    ok, message = cloud_hook.test_connection()

    assert not ok
    assert message.startswith(f"Confluence has no REST API at {CLOUD_ROOT}/rest/api/longtask")
    assert "check Host" in message


def test_an_unreachable_proxy_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    env_json(
        monkeypatch,
        "via_proxy",
        host=CLOUD_ROOT,
        login=LOGIN,
        password=TOKEN,
        extra={"proxy": "http://proxy-user:proxy-secret@127.0.0.1:1"},
    )
    hook = ConfluenceHook("via_proxy", retry_policy=RetryPolicy(max_retries=0))

    with pytest.raises(ConfluenceTransientError, match=r"through the proxy http://127\.0\.0\.1:1") as caught:
        hook.get_long_task("1")

    assert "proxy-secret" not in str(caught.value)
    assert_no_token(caught.value)
