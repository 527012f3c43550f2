"""The I/O-free core: connection reading, URLs, auth, task ids, answers, the retry policy and ``exchange``."""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import math
import random
from collections.abc import Generator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_confluence import __version__, core
from airflow_provider_confluence.core import (
    AuthType,
    ConnectionSettings,
    Deployment,
    RawResponse,
    Request,
    RetryPolicy,
    TransportFailure,
    exchange,
    interpret,
    parse_retry_after,
    validate_task_id,
)
from airflow_provider_confluence.exceptions import (
    ConfluenceAPIError,
    ConfluenceAuthError,
    ConfluenceBadResponseError,
    ConfluenceConfigError,
    ConfluenceNotFoundError,
    ConfluenceRateLimitError,
    ConfluenceRequestError,
    ConfluenceTLSError,
    ConfluenceTransientError,
)

DATA = Path(__file__).parent / "data"
TOKEN = "CANARY-TOKEN-123"
LOGIN = "user@example.com"
CLOUD = "https://example.atlassian.net/wiki"
TASK_URL = f"{CLOUD}/rest/api/longtask/1180606"


def settings(
    host: str | None = "https://example.atlassian.net",
    *,
    login: str | None = LOGIN,
    password: str | None = TOKEN,
    schema: str | None = None,
    port: int | None = None,
    extra: dict[str, Any] | None = None,
) -> ConnectionSettings:
    return ConnectionSettings.from_connection(
        conn_id="confluence_default",
        host=host,
        login=login,
        password=password,
        schema=schema,
        port=port,
        extra=extra,
    )


# ---------------------------------------------------------------------------- the URL table
@pytest.mark.parametrize(
    ("host", "schema", "port", "extra", "task_url", "deployment"),
    [
        # Cloud site, every way of writing it
        pytest.param("example.atlassian.net", None, None, {}, TASK_URL, "cloud", id="cloud-bare-host"),
        pytest.param("https://example.atlassian.net", None, None, {}, TASK_URL, "cloud", id="cloud-scheme"),
        pytest.param("https://example.atlassian.net/", None, None, {}, TASK_URL, "cloud", id="cloud-slash"),
        pytest.param(
            "https://example.atlassian.net/wiki", None, None, {}, TASK_URL, "cloud", id="cloud-wiki"
        ),
        pytest.param(
            "https://example.atlassian.net/wiki/", None, None, {}, TASK_URL, "cloud", id="cloud-wiki-slash"
        ),
        pytest.param(
            "https://example.atlassian.net//wiki//",
            None,
            None,
            {},
            TASK_URL,
            "cloud",
            id="cloud-double-slashes",
        ),
        pytest.param(
            "  HTTPS://Example.Atlassian.NET/wiki  ",
            None,
            None,
            {},
            TASK_URL,
            "cloud",
            id="cloud-upper-case-and-blanks",
        ),
        pytest.param(
            "example.atlassian.net/wiki", None, None, {}, TASK_URL, "cloud", id="cloud-no-scheme-wiki"
        ),
        pytest.param(
            "example.atlassian.net", "wiki", None, {}, TASK_URL, "cloud", id="cloud-uri-path-in-schema"
        ),
        pytest.param(
            "https://example.atlassian.net/wiki/rest/api/longtask/42",
            None,
            None,
            {},
            TASK_URL,
            "cloud",
            id="cloud-pasted-api-url",
        ),
        pytest.param(
            "https://example.atlassian.net/wiki/rest/api",
            None,
            None,
            {},
            TASK_URL,
            "cloud",
            id="cloud-pasted-api-root",
        ),
        pytest.param(
            "https://example.atlassian.net/wiki/spaces/DOC/pages/123/Home",
            None,
            None,
            {},
            TASK_URL,
            "cloud",
            id="cloud-pasted-browser-url",
        ),
        pytest.param(
            "https://example.atlassian.net/wiki/home",
            None,
            None,
            {},
            TASK_URL,
            "cloud",
            id="cloud-pasted-home-url",
        ),
        # Data Center: context path kept, never /wiki added
        pytest.param(
            "https://wiki.example.com/confluence",
            None,
            None,
            {},
            "https://wiki.example.com/confluence/rest/api/longtask/1180606",
            "datacenter",
            id="dc-context",
        ),
        pytest.param(
            "https://wiki.example.com/confluence/",
            None,
            None,
            {},
            "https://wiki.example.com/confluence/rest/api/longtask/1180606",
            "datacenter",
            id="dc-context-slash",
        ),
        pytest.param(
            "wiki.example.com",
            None,
            None,
            {},
            "https://wiki.example.com/rest/api/longtask/1180606",
            "datacenter",
            id="dc-bare-host",
        ),
        pytest.param(
            "https://wiki.example.com///",
            None,
            None,
            {},
            "https://wiki.example.com/rest/api/longtask/1180606",
            "datacenter",
            id="dc-slashes",
        ),
        pytest.param(
            "http://127.0.0.1:8090/confluence",
            None,
            None,
            {},
            "http://127.0.0.1:8090/confluence/rest/api/longtask/1180606",
            "datacenter",
            id="dc-port-in-host",
        ),
        pytest.param(
            "wiki.example.com",
            None,
            8443,
            {},
            "https://wiki.example.com:8443/rest/api/longtask/1180606",
            "datacenter",
            id="dc-port-field",
        ),
        pytest.param(
            "https://wiki.example.com:8443/confluence",
            None,
            9999,
            {},
            "https://wiki.example.com:8443/confluence/rest/api/longtask/1180606",
            "datacenter",
            id="dc-port-in-host-wins",
        ),
        pytest.param(
            "wiki.example.com",
            "confluence",
            None,
            {},
            "https://wiki.example.com/confluence/rest/api/longtask/1180606",
            "datacenter",
            id="dc-uri-path-in-schema",
        ),
        pytest.param(
            "http://127.0.0.1",
            "/confluence/",
            8090,
            {},
            "http://127.0.0.1:8090/confluence/rest/api/longtask/1180606",
            "datacenter",
            id="dc-uri-port-and-schema",
        ),
        pytest.param(
            "https://wiki.example.com/confluence/rest/api/longtask/42",
            None,
            None,
            {},
            "https://wiki.example.com/confluence/rest/api/longtask/1180606",
            "datacenter",
            id="dc-pasted-api-url",
        ),
        pytest.param(
            "http://[::1]:8090/confluence",
            None,
            None,
            {},
            "http://[::1]:8090/confluence/rest/api/longtask/1180606",
            "datacenter",
            id="dc-ipv6",
        ),
        # explicit deployment overrides the inference
        pytest.param(
            "https://example.atlassian.net",
            None,
            None,
            {"deployment": "datacenter"},
            "https://example.atlassian.net/rest/api/longtask/1180606",
            "datacenter",
            id="override-datacenter",
        ),
        pytest.param(
            "http://127.0.0.1:8090",
            None,
            None,
            {"deployment": "cloud"},
            "http://127.0.0.1:8090/wiki/rest/api/longtask/1180606",
            "cloud",
            id="override-cloud",
        ),
        pytest.param(
            "http://127.0.0.1:8090/wiki/",
            None,
            None,
            {"deployment": "Cloud"},
            "http://127.0.0.1:8090/wiki/rest/api/longtask/1180606",
            "cloud",
            id="override-cloud-with-wiki",
        ),
        pytest.param(
            "https://wiki.example.com",
            None,
            None,
            {"deployment": "server"},
            "https://wiki.example.com/rest/api/longtask/1180606",
            "datacenter",
            id="override-server-alias",
        ),
        pytest.param(
            "https://wiki.example.com",
            None,
            None,
            {"deployment": "Data Center"},
            "https://wiki.example.com/rest/api/longtask/1180606",
            "datacenter",
            id="override-data-center-spaced",
        ),
        # the Cloud gateway
        pytest.param(
            None,
            None,
            None,
            {"cloud_id": "abc-123"},
            "https://api.atlassian.com/ex/confluence/abc-123/wiki/rest/api/longtask/1180606",
            "cloud",
            id="cloud-id-without-host",
        ),
        pytest.param(
            "https://example.atlassian.net/wiki",
            None,
            None,
            {"cloud_id": "abc-123"},
            "https://api.atlassian.com/ex/confluence/abc-123/wiki/rest/api/longtask/1180606",
            "cloud",
            id="cloud-id-with-site-host",
        ),
        pytest.param(
            "https://api.atlassian.com",
            None,
            None,
            {"cloud_id": "abc-123"},
            "https://api.atlassian.com/ex/confluence/abc-123/wiki/rest/api/longtask/1180606",
            "cloud",
            id="cloud-id-with-gateway-host",
        ),
        pytest.param(
            "http://127.0.0.1:8090",
            None,
            None,
            {"extra__confluence__cloud_id": "abc-123"},
            "http://127.0.0.1:8090/ex/confluence/abc-123/wiki/rest/api/longtask/1180606",
            "cloud",
            id="cloud-id-with-other-host",
        ),
        pytest.param(
            "https://api.atlassian.com/ex/confluence/abc-123",
            None,
            None,
            {},
            "https://api.atlassian.com/ex/confluence/abc-123/wiki/rest/api/longtask/1180606",
            "cloud",
            id="gateway-url-pasted",
        ),
    ],
)
def test_long_task_url(
    host: str | None,
    schema: str | None,
    port: int | None,
    extra: dict[str, Any],
    task_url: str,
    deployment: str,
) -> None:
    conn = settings(host, schema=schema, port=port, extra=extra)

    assert conn.long_task_url("1180606") == task_url
    assert conn.deployment is Deployment(deployment)
    assert conn.api_root + "/rest/api/longtask/1180606" == task_url


def test_long_task_url_quotes_the_id() -> None:
    assert settings().long_task_url("a b+c") == f"{CLOUD}/rest/api/longtask/a%20b%2Bc"


def test_origin_and_url_with_params() -> None:
    conn = settings("http://127.0.0.1:8090/confluence")

    assert conn.origin == "http://127.0.0.1:8090"
    assert conn.url("/rest/api/longtask", {"start": 0, "limit": 2}) == (
        "http://127.0.0.1:8090/confluence/rest/api/longtask?start=0&limit=2"
    )


@pytest.mark.parametrize(
    ("host", "extra", "match"),
    [
        pytest.param("https://api.atlassian.com", {}, "cloud_id", id="gateway-without-cloud-id"),
        pytest.param("api.atlassian.com/wiki", {}, "cloud_id", id="gateway-wiki-without-cloud-id"),
        pytest.param(None, {}, "no Host", id="no-host"),
        pytest.param("   ", {}, "no Host", id="blank-host"),
        pytest.param("ftp://wiki.example.com", {}, "not an http", id="ftp-scheme"),
        pytest.param("https://", {}, "not an http", id="scheme-only"),
        pytest.param(
            "https://user:pw@wiki.example.com", {}, "must not carry credentials", id="credentials-in-host"
        ),
        pytest.param("https://wiki.example.com:http", {}, "invalid port", id="bad-port"),
        pytest.param(
            "https://wiki.example.com",
            {"cloud_id": "abc", "deployment": "datacenter"},
            "cloud_id",
            id="cloud-id-with-datacenter",
        ),
        pytest.param(None, {"cloud_id": "abc/../x"}, "cloud_id", id="cloud-id-malformed"),
        pytest.param(
            "https://wiki.example.com", {"deployment": "onprem"}, "'deployment'", id="bad-deployment"
        ),
        pytest.param(
            "https://wiki.example.com", {"auth_type": "kerberos"}, "'auth_type'", id="bad-auth-type"
        ),
        pytest.param("https://wiki.example.com", {"timeout": "soon"}, "timeout", id="timeout-not-a-number"),
        pytest.param("https://wiki.example.com", {"timeout": 0}, "timeout", id="timeout-zero"),
        pytest.param("https://wiki.example.com", {"timeout": -5}, "timeout", id="timeout-negative"),
        pytest.param("https://wiki.example.com", {"timeout": 4000}, "timeout", id="timeout-too-large"),
        pytest.param("https://wiki.example.com", {"timeout": "nan"}, "timeout", id="timeout-nan"),
        pytest.param("https://wiki.example.com", {"timeout": True}, "timeout", id="timeout-boolean"),
        pytest.param(
            "https://wiki.example.com", {"verify_ssl": "maybe"}, "verify_ssl", id="verify-ssl-garbage"
        ),
        pytest.param(
            "https://wiki.example.com", {"proxy": "ftp://proxy.example.com"}, "proxy", id="proxy-ftp"
        ),
        pytest.param(
            "https://wiki.example.com",
            {"proxy": "proxy.example.com:3128"},
            "proxy",
            id="proxy-without-scheme",
        ),
    ],
)
def test_bad_connection_settings_name_the_field(host: str | None, extra: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfluenceConfigError, match=match) as caught:
        settings(host, extra=extra)

    assert "'confluence_default'" in str(caught.value)
    assert TOKEN not in str(caught.value)


# ---------------------------------------------------------------------------- auth
def basic(login: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{token}".encode()).decode()


@pytest.mark.parametrize(
    ("login", "extra", "auth_type", "authorization"),
    [
        pytest.param(LOGIN, {}, AuthType.BASIC, basic(LOGIN, TOKEN), id="login-gives-basic"),
        pytest.param(None, {}, AuthType.BEARER, f"Bearer {TOKEN}", id="no-login-gives-bearer"),
        pytest.param("   ", {}, AuthType.BEARER, f"Bearer {TOKEN}", id="blank-login-gives-bearer"),
        pytest.param(
            LOGIN, {"auth_type": "bearer"}, AuthType.BEARER, f"Bearer {TOKEN}", id="explicit-bearer"
        ),
        pytest.param(LOGIN, {"auth_type": "PAT"}, AuthType.BEARER, f"Bearer {TOKEN}", id="pat-alias"),
        pytest.param(
            LOGIN,
            {"extra__confluence__auth_type": "basic"},
            AuthType.BASIC,
            basic(LOGIN, TOKEN),
            id="explicit-basic-prefixed",
        ),
    ],
)
def test_authorization_header(
    login: str | None, extra: dict[str, Any], auth_type: AuthType, authorization: str
) -> None:
    conn = settings(login=login, extra=extra)

    assert conn.auth_type is auth_type
    assert conn.authorization == authorization
    assert conn.request("GET", "/rest/api/longtask/1").headers["Authorization"] == authorization


def test_token_and_login_are_stripped() -> None:
    assert settings(login=f" {LOGIN} ", password=f" {TOKEN}\n").authorization == basic(LOGIN, TOKEN)


@pytest.mark.parametrize(
    ("login", "password", "extra", "match"),
    [
        pytest.param(LOGIN, None, {}, "Password", id="no-token"),
        pytest.param(LOGIN, "  ", {}, "Password", id="blank-token"),
        pytest.param(None, TOKEN, {"auth_type": "basic"}, "Login", id="basic-without-login"),
    ],
)
def test_missing_credentials_name_the_field(
    login: str | None, password: str | None, extra: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfluenceConfigError, match=match):
        settings(login=login, password=password, extra=extra)


def test_request_headers() -> None:
    conn = settings()

    get = conn.request("GET", "/rest/api/longtask/1", params={"expand": "x"})
    post = conn.request("POST", "/rest/api/content/1/pagehierarchy/copy", json_body={"a": 1})

    assert get.url == f"{CLOUD}/rest/api/longtask/1?expand=x"
    assert get.headers == {
        "Authorization": basic(LOGIN, TOKEN),
        "Accept": "application/json",
        "User-Agent": f"airflow-provider-confluence/{__version__}",
    }
    assert post.headers["X-Atlassian-Token"] == "no-check"
    assert post.headers["Content-Type"] == "application/json"
    assert post.json_body == {"a": 1}


# ---------------------------------------------------------------------------- extras
@pytest.mark.parametrize(
    "prefix", [pytest.param("", id="plain-names"), pytest.param("extra__confluence__", id="prefixed-names")]
)
def test_extras_are_read_under_both_names(prefix: str) -> None:
    conn = settings(
        "https://example.atlassian.net",
        extra={
            f"{prefix}deployment": "datacenter",
            f"{prefix}auth_type": "bearer",
            f"{prefix}verify_ssl": "false",
            f"{prefix}timeout": "12.5",
            f"{prefix}proxy": "http://proxy.example.com:3128",
        },
    )

    assert conn.deployment is Deployment.DATACENTER
    assert conn.auth_type is AuthType.BEARER
    assert conn.verify_ssl is False
    assert conn.timeout == 12.5
    assert conn.proxy == "http://proxy.example.com:3128"
    assert conn.unknown_extras == ()


@pytest.mark.parametrize(
    ("value", "verify"),
    [
        pytest.param(None, True, id="absent"),
        pytest.param("", True, id="empty"),
        pytest.param(True, True, id="true"),
        pytest.param(False, False, id="false"),
        pytest.param("No", False, id="no"),
        pytest.param("1", True, id="one"),
        pytest.param("/etc/ssl/certs/corp-ca.pem", "/etc/ssl/certs/corp-ca.pem", id="ca-bundle-path"),
        pytest.param("corp-ca.crt", "corp-ca.crt", id="relative-crt"),
    ],
)
def test_verify_ssl(value: Any, verify: bool | str) -> None:
    extra = {} if value is None else {"verify_ssl": value}

    assert settings(extra=extra).verify_ssl == verify


@pytest.mark.parametrize(
    ("value", "timeout"),
    [
        pytest.param(None, 30.0, id="default"),
        pytest.param("", 30.0, id="empty"),
        pytest.param(5, 5.0, id="int"),
        pytest.param("2.5", 2.5, id="string"),
        pytest.param(3600, 3600.0, id="upper-bound"),
    ],
)
def test_timeout(value: Any, timeout: float) -> None:
    extra = {} if value is None else {"timeout": value}

    assert settings(extra=extra).timeout == timeout


def test_unknown_extras_are_listed() -> None:
    conn = settings(extra={"timeout": 5, "foo": 1, "extra__confluence__bar": "x", "extra__http__baz": 2})

    assert conn.unknown_extras == ("extra__confluence__bar", "extra__http__baz", "foo")
    assert conn.timeout == 5.0


# ---------------------------------------------------------------------------- secrets
def test_reprs_contain_no_token() -> None:
    conn = settings(extra={"proxy": "http://proxyuser:proxy-secret@proxy.example.com:3128"})
    request = conn.request("GET", "/rest/api/longtask/1")
    encoded = conn.authorization.split(" ", 1)[1]

    for text in (repr(conn), str(conn), repr(request), str(request)):
        assert TOKEN not in text
        assert encoded not in text
        assert "proxy-secret" not in text
    assert "confluence_default" in repr(conn)
    assert request.url in repr(request)


def test_redact_removes_every_secret() -> None:
    conn = settings(extra={"proxy": "http://proxyuser:proxy-secret@proxy.example.com:3128"})
    encoded = conn.authorization.split(" ", 1)[1]

    text = conn.redact(f"token={TOKEN}; header={conn.authorization}; b64={encoded}; proxy=proxy-secret")

    assert text == "token=***; header=***; b64=***; proxy=***"


def test_redact_bearer() -> None:
    conn = settings(login=None)

    assert conn.redact(f"Authorization: Bearer {TOKEN}") == "Authorization: ***"
    assert conn.redact("nothing secret") == "nothing secret"


# ---------------------------------------------------------------------------- task ids
@pytest.mark.parametrize(
    ("task_id", "expected"),
    [
        pytest.param("1180606", "1180606", id="digits"),
        pytest.param("abc-DEF_1", "abc-DEF_1", id="letters-dash-underscore"),
        pytest.param(1180606, "1180606", id="int"),
        pytest.param("a" * 128, "a" * 128, id="128-chars"),
        pytest.param("007", "007", id="leading-zeros-kept"),
    ],
)
def test_validate_task_id_accepts(task_id: object, expected: str) -> None:
    assert validate_task_id(task_id) == expected


@pytest.mark.parametrize(
    "task_id",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="whitespace"),
        pytest.param(" 123", id="leading-space"),
        pytest.param("123\n", id="trailing-newline"),
        pytest.param("12\x003", id="nul"),
        pytest.param("12\t3", id="tab"),
        pytest.param("12\x7f", id="del"),
        pytest.param("../admin", id="dot-dot-slash"),
        pytest.param("..", id="dot-dot"),
        pytest.param(".", id="dot"),
        pytest.param("1/2", id="slash"),
        pytest.param("1\\2", id="backslash"),
        pytest.param("1?x=2", id="query"),
        pytest.param("1#x", id="fragment"),
        pytest.param("%2e%2e", id="percent-encoded"),
        pytest.param("a" * 129, id="129-chars"),
        pytest.param(None, id="none"),
        pytest.param(True, id="bool"),
        pytest.param(1.5, id="float"),
        pytest.param(["1"], id="list"),
    ],
)
def test_validate_task_id_rejects(task_id: object) -> None:
    with pytest.raises(ConfluenceConfigError, match="long_task_id"):
        validate_task_id(task_id)


# ---------------------------------------------------------------------------- Retry-After
NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("120", 120.0, id="seconds"),
        pytest.param(" 5 ", 5.0, id="seconds-with-blanks"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("1.5", 1.5, id="fraction"),
        pytest.param(email.utils.formatdate(NOW + 90, usegmt=True), 90.0, id="http-date-future"),
        pytest.param(email.utils.formatdate(NOW - 90, usegmt=True), 0.0, id="http-date-past"),
        pytest.param("Tue, 14 Nov 2023 22:13:50", 30.0, id="http-date-without-zone-is-utc"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("", None, id="empty"),
        pytest.param("NaN", None, id="nan"),
        pytest.param("inf", None, id="infinity"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_parse_retry_after_negative_is_garbage() -> None:
    # BUG: "-5" is not a delta-seconds value (RFC 9110 allows only non-negative integers); the
    # parser clamps it to 0, which makes a rate-limited call retry at once, without any backoff.
    assert parse_retry_after("-5", now=NOW) is None


def test_parse_retry_after_uses_the_clock_by_default() -> None:
    value = email.utils.formatdate(NOW + 60, usegmt=True)

    assert parse_retry_after(value) == 0.0  # NOW is in the past of the real clock


# ---------------------------------------------------------------------------- RetryPolicy
def transient(status: int = 503) -> ConfluenceTransientError:
    return ConfluenceTransientError("boom", url=TASK_URL, status_code=status)


def rate_limited(retry_after: float | None) -> ConfluenceRateLimitError:
    return ConfluenceRateLimitError("slow down", url=TASK_URL, status_code=429, retry_after=retry_after)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConfluenceAuthError("no", status_code=401), id="auth"),
        pytest.param(ConfluenceNotFoundError("no", status_code=404), id="not-found"),
        pytest.param(ConfluenceRequestError("no", status_code=400), id="request"),
        pytest.param(ConfluenceBadResponseError("no"), id="bad-response"),
        pytest.param(ConfluenceTLSError("no"), id="tls"),
    ],
)
def test_delay_is_none_for_permanent_errors(error: ConfluenceAPIError) -> None:
    assert RetryPolicy().delay(error, 0, random.Random(1)) is None


def test_delay_is_none_once_retries_are_spent() -> None:
    policy = RetryPolicy(max_retries=3)

    assert policy.delay(transient(), 2, random.Random(1)) is not None
    assert policy.delay(transient(), 3, random.Random(1)) is None
    assert policy.delay(rate_limited(1.0), 3) is None
    assert RetryPolicy(max_retries=0).delay(transient(), 0) is None


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [
        pytest.param(12.0, 12.0, id="honoured"),
        pytest.param(0.0, 0.0, id="zero"),
        pytest.param(10_000.0, 300.0, id="capped"),
    ],
)
def test_delay_honours_retry_after(retry_after: float, delay: float) -> None:
    assert RetryPolicy().delay(rate_limited(retry_after), 0, random.Random(1)) == delay


def test_delay_without_retry_after_backs_off() -> None:
    policy = RetryPolicy(jitter=0.0)

    assert policy.delay(rate_limited(None), 2) == 4.0


def test_delay_grows_exponentially_without_jitter() -> None:
    policy = RetryPolicy(max_retries=8, backoff_base=1.0, backoff_cap=30.0, jitter=0.0)

    assert [policy.delay(transient(), attempt) for attempt in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_delay_jitter_stays_within_bounds_and_varies() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base=1.0, backoff_cap=30.0, jitter=0.3)
    rng = random.Random(20240607)

    for attempt in range(10):
        nominal = min(30.0, 2.0**attempt)
        delays = [policy.delay(transient(), attempt, rng) for _ in range(50)]
        assert all(d is not None and nominal * 0.7 <= d <= nominal * 1.3 for d in delays), attempt
        assert len(set(delays)) > 1


def test_delay_is_reproducible_with_a_seeded_rng() -> None:
    policy = RetryPolicy()

    first = [policy.delay(transient(), n, random.Random(7)) for n in range(4)]
    second = [policy.delay(transient(), n, random.Random(7)) for n in range(4)]

    assert first == second


def test_retry_policy_to_dict_round_trips() -> None:
    policy = RetryPolicy(max_retries=2, backoff_base=0.5, backoff_cap=4.0, jitter=0.1, retry_after_cap=60.0)

    assert RetryPolicy(**json.loads(json.dumps(policy.to_dict()))) == policy


# ---------------------------------------------------------------------------- interpret
def answer(
    status: int, body: bytes | str = b"", headers: dict[str, str] | None = None, *, truncated: bool = False
) -> RawResponse:
    if isinstance(body, str):
        body = body.encode()
    return RawResponse(status=status, headers=headers or {}, body=body, url=TASK_URL, truncated=truncated)


def json_answer(status: int, data: Any, headers: dict[str, str] | None = None) -> RawResponse:
    return answer(status, json.dumps(data), {"content-type": "application/json", **(headers or {})})


LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>Log in with Atlassian account</title>"
    "<script>window.secretBootstrap = {'csrf': 'abcdef'}; alert('x');</script>"
    "<style>body { color: red }</style></head>"
    "<body><h1>Log in to continue</h1>" + "<p>filler paragraph</p>" * 500 + "</body></html>"
)


def test_interpret_200_json() -> None:
    assert interpret(json_answer(200, {"id": "1"}), settings()) == {"id": "1"}


def test_interpret_204_is_none() -> None:
    assert interpret(answer(204), settings()) is None


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"content-type": "text/html; charset=UTF-8"}, id="html-content-type"),
        pytest.param({"content-type": "application/json"}, id="html-body-with-json-content-type"),
        pytest.param({}, id="html-body-without-content-type"),
    ],
)
def test_interpret_html_page_is_an_auth_error_with_a_short_clean_excerpt(headers: dict[str, str]) -> None:
    with pytest.raises(ConfluenceAuthError) as caught:
        interpret(answer(200, "\n  " + LOGIN_PAGE, headers), settings(), what="long task 1180606")

    error = caught.value
    message = str(error)
    assert "HTML page" in message
    assert "long task 1180606" in message
    assert "Log in with Atlassian account" in message
    assert "secretBootstrap" not in message
    assert "alert" not in message
    assert "color: red" not in message
    assert "<" not in message.split("Page excerpt:")[1]
    assert len(message) < 600
    assert error.status_code == 200
    assert error.url == TASK_URL


def test_interpret_html_excerpt_redacts_the_token() -> None:
    page = f"<html><body>Invalid token {TOKEN}</body></html>"

    with pytest.raises(ConfluenceAuthError) as caught:
        interpret(answer(200, page, {"content-type": "text/html"}), settings())

    assert TOKEN not in str(caught.value)
    assert "Invalid token ***" in str(caught.value)


@pytest.mark.parametrize(
    ("response", "match"),
    [
        pytest.param(answer(200, b""), "empty body", id="empty"),
        pytest.param(answer(200, b"  \n "), "empty body", id="blank"),
        pytest.param(answer(200, b'{"id": "1", '), "not valid JSON", id="invalid-json"),
        pytest.param(answer(200, b"\xff\xfe garbage"), "not valid JSON", id="binary"),
        pytest.param(answer(200, b'{"id": "1"}', truncated=True), "larger than", id="truncated"),
    ],
)
def test_interpret_bad_bodies(response: RawResponse, match: str) -> None:
    with pytest.raises(ConfluenceBadResponseError, match=match) as caught:
        interpret(response, settings())

    assert caught.value.status_code == 200
    assert caught.value.url == TASK_URL


def test_interpret_invalid_json_excerpt_is_short() -> None:
    with pytest.raises(ConfluenceBadResponseError) as caught:
        interpret(answer(200, "not json " * 1000), settings())

    assert len(str(caught.value)) < 400


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("https://id.atlassian.com/login?continue=x", id="absolute"),
        pytest.param("//sso.example.org/saml", id="scheme-relative"),
    ],
)
def test_interpret_redirect_to_another_host(location: str) -> None:
    with pytest.raises(ConfluenceAuthError) as caught:
        interpret(answer(302, b"", {"location": location}), settings(), what="long task 1180606")

    message = str(caught.value)
    assert "base URL" in message
    assert "authentication" in message
    assert "never sent to another host" in message
    assert "(302)" in message
    assert caught.value.status_code == 302
    assert caught.value.url == TASK_URL


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        pytest.param(400, {}, ConfluenceRequestError, None, id="400"),
        pytest.param(401, {}, ConfluenceAuthError, None, id="401"),
        pytest.param(403, {}, ConfluenceAuthError, None, id="403"),
        pytest.param(404, {}, ConfluenceNotFoundError, None, id="404"),
        pytest.param(405, {}, ConfluenceRequestError, None, id="405"),
        pytest.param(408, {}, ConfluenceTransientError, None, id="408"),
        pytest.param(409, {}, ConfluenceRequestError, None, id="409"),
        pytest.param(429, {"retry-after": "7"}, ConfluenceRateLimitError, 7.0, id="429-retry-after"),
        pytest.param(429, {}, ConfluenceRateLimitError, None, id="429-without-retry-after"),
        pytest.param(500, {}, ConfluenceTransientError, None, id="500"),
        pytest.param(502, {}, ConfluenceTransientError, None, id="502"),
        pytest.param(503, {}, ConfluenceTransientError, None, id="503-without-retry-after"),
        pytest.param(503, {"retry-after": "30"}, ConfluenceRateLimitError, 30.0, id="503-retry-after"),
        pytest.param(504, {}, ConfluenceTransientError, None, id="504"),
    ],
)
def test_interpret_error_statuses(
    status: int, headers: dict[str, str], kind: type[ConfluenceAPIError], retry_after: float | None
) -> None:
    response = json_answer(status, {"statusCode": status, "message": "Something happened"}, headers)

    with pytest.raises(ConfluenceAPIError) as caught:
        interpret(response, settings(), what="long task 1180606")

    error = caught.value
    assert type(error) is kind
    assert error.status_code == status
    assert error.url == TASK_URL
    assert f"({status}: Something happened)" in str(error)
    assert getattr(error, "retry_after", None) == retry_after


@pytest.mark.parametrize(
    ("login", "hint"),
    [
        pytest.param(LOGIN, "account e-mail", id="basic"),
        pytest.param(None, "personal access token", id="bearer"),
    ],
)
def test_interpret_401_says_what_to_check(login: str | None, hint: str) -> None:
    with pytest.raises(ConfluenceAuthError) as caught:
        interpret(answer(401), settings(login=login), what="long task 1180606")

    assert hint in str(caught.value)
    assert "'confluence_default'" in str(caught.value)


def test_interpret_404_fixture_quotes_confluence_message() -> None:
    body = (DATA / "error-404.json").read_bytes()

    with pytest.raises(ConfluenceNotFoundError) as caught:
        interpret(answer(404, body, {"content-type": "application/json"}), settings(), what="long task 42")

    assert "No task with the given id" in str(caught.value)
    assert TASK_URL in str(caught.value)


def test_interpret_error_page_never_quotes_the_whole_page() -> None:
    with pytest.raises(ConfluenceTransientError) as caught:
        interpret(answer(502, LOGIN_PAGE, {"content-type": "text/html"}), settings())

    assert len(str(caught.value)) < 400
    assert "secretBootstrap" not in str(caught.value)


def test_interpret_error_body_echoing_the_token_is_redacted() -> None:
    # BUG: _error_text() builds the excerpt without the connection, so a proxy or gateway that echoes
    # the request headers into its error page puts the token into the exception message.
    body = f"Bad request. Authorization: Bearer {TOKEN}"

    with pytest.raises(ConfluenceRequestError) as caught:
        interpret(answer(400, body, {"content-type": "text/plain"}), settings(login=None))

    assert TOKEN not in str(caught.value)


# ---------------------------------------------------------------------------- exchange
class FakeClock:
    def __init__(self, start: float = NOW) -> None:
        self.now = start

    def time(self) -> float:
        return self.now


class Driver:
    """A transport that answers from a list and sleeps on a fake clock."""

    def __init__(
        self, outcomes: list[RawResponse | TransportFailure], clock: FakeClock | None = None
    ) -> None:
        self.outcomes = list(outcomes)
        self.clock = clock
        self.sent: list[Request] = []
        self.waits: list[float] = []

    def run(self, steps: Generator[Any, Any, Any]) -> Any:
        reply: Any = None
        try:
            while True:
                action = steps.send(reply)
                if isinstance(action, Request):
                    self.sent.append(action)
                    reply = self.outcomes.pop(0)
                else:
                    self.waits.append(action)
                    if self.clock is not None:
                        self.clock.now += action
                    reply = None
        except StopIteration as done:
            return done.value


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(core, "time", SimpleNamespace(time=fake.time))
    return fake


def call(
    conn: ConnectionSettings, policy: RetryPolicy | None = None, **kwargs: Any
) -> Generator[Any, Any, Any]:
    request = conn.request("GET", "/rest/api/longtask/1180606")
    return exchange(
        conn,
        request,
        what="long task 1180606",
        policy=policy or RetryPolicy(),
        rng=random.Random(3),
        **kwargs,
    )


OK = json_answer(200, {"id": "1180606", "percentageComplete": 10})


def test_exchange_returns_json_on_first_success() -> None:
    driver = Driver([OK])

    assert driver.run(call(settings())) == {"id": "1180606", "percentageComplete": 10}
    assert [r.url for r in driver.sent] == [TASK_URL]
    assert driver.waits == []


def test_exchange_retries_then_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    driver = Driver(
        [
            answer(503, b"", {"retry-after": "2"}),
            answer(500),
            TransportFailure("timeout", "read timed out", TASK_URL),
            TransportFailure("connection", "connection reset by peer", TASK_URL),
            OK,
        ]
    )

    with caplog.at_level(logging.WARNING, logger="airflow_provider_confluence.core"):
        result = driver.run(call(settings()))

    assert result["id"] == "1180606"
    assert len(driver.sent) == 5
    assert driver.waits[0] == 2.0
    assert 2 * 0.7 <= driver.waits[1] <= 2 * 1.3  # second retry: base * 2**1, +-30 %
    assert len(driver.waits) == 4
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 4
    assert "Retry 1 of 5 in 2.0 s" in caplog.records[0].getMessage()


def test_exchange_stops_after_max_retries() -> None:
    driver = Driver([answer(500)] * 10)

    with pytest.raises(ConfluenceTransientError) as caught:
        driver.run(call(settings(), RetryPolicy(max_retries=3)))

    assert len(driver.sent) == 4
    assert len(driver.waits) == 3
    assert caught.value.status_code == 500
    assert caught.value.deadline_reached is False


def test_exchange_never_waits_past_the_deadline(clock: FakeClock) -> None:
    deadline = clock.now + 10
    driver = Driver([answer(500)] * 10, clock)

    with pytest.raises(ConfluenceTransientError) as caught:
        driver.run(call(settings(), RetryPolicy(max_retries=10, jitter=0.0), deadline=deadline))

    assert driver.waits == [1.0, 2.0, 4.0]  # the next wait (8 s) would end after the deadline
    assert clock.now <= deadline
    assert caught.value.deadline_reached is True


def test_exchange_does_not_wait_for_a_retry_after_beyond_the_deadline(clock: FakeClock) -> None:
    driver = Driver([answer(429, b"", {"retry-after": "120"}), OK], clock)

    with pytest.raises(ConfluenceRateLimitError) as caught:
        driver.run(call(settings(), deadline=clock.now + 60))

    assert driver.waits == []
    assert len(driver.sent) == 1
    assert caught.value.deadline_reached is True
    assert caught.value.retry_after == 120.0


def test_exchange_follows_a_same_origin_redirect() -> None:
    moved = f"{CLOUD}/rest/api/longtask/1180606?moved=1"
    driver = Driver(
        [
            answer(302, b"", {"location": "/wiki/rest/api/longtask/1180606?moved=1"}),
            OK,
        ]
    )

    assert driver.run(call(settings()))["id"] == "1180606"
    assert [r.url for r in driver.sent] == [TASK_URL, moved]
    assert driver.sent[1].headers["Authorization"] == basic(LOGIN, TOKEN)
    assert driver.waits == []


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("https://id.atlassian.com/login", id="other-host"),
        pytest.param("http://example.atlassian.net/wiki/rest/api/longtask/1180606", id="scheme-downgrade"),
        pytest.param("https://example.atlassian.net:8443/wiki/rest/api/longtask/1180606", id="other-port"),
        pytest.param("https://example.atlassian.net.evil.example/x", id="lookalike-host"),
    ],
)
def test_exchange_does_not_follow_a_cross_origin_redirect(location: str) -> None:
    driver = Driver([answer(302, b"", {"location": location}), OK])

    with pytest.raises(ConfluenceAuthError, match="redirected"):
        driver.run(call(settings()))

    assert len(driver.sent) == 1


def test_exchange_stops_following_redirects_after_a_few() -> None:
    loop = answer(307, b"", {"location": "/wiki/rest/api/longtask/1180606"})
    driver = Driver([loop] * 10)

    with pytest.raises(ConfluenceAuthError):
        driver.run(call(settings()))

    assert len(driver.sent) == 1 + core.MAX_REDIRECTS


def test_exchange_does_not_retry_a_tls_failure() -> None:
    driver = Driver([TransportFailure("tls", "CERTIFICATE_VERIFY_FAILED", TASK_URL), OK])

    with pytest.raises(ConfluenceTLSError, match="verify_ssl") as caught:
        driver.run(call(settings()))

    assert len(driver.sent) == 1
    assert driver.waits == []
    assert caught.value.url == TASK_URL


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(400, id="400"),
        pytest.param(401, id="401"),
        pytest.param(403, id="403"),
        pytest.param(404, id="404"),
    ],
)
def test_exchange_does_not_retry_permanent_errors(status: int) -> None:
    driver = Driver([answer(status), OK])

    with pytest.raises(ConfluenceAPIError) as caught:
        driver.run(call(settings()))

    assert caught.value.status_code == status
    assert len(driver.sent) == 1


def test_exchange_redacts_the_token_from_transport_failures() -> None:
    driver = Driver([TransportFailure("connection", f"proxy said: bad token {TOKEN}", TASK_URL)] * 2)

    with pytest.raises(ConfluenceTransientError) as caught:
        driver.run(call(settings(), RetryPolicy(max_retries=1)))

    assert TOKEN not in str(caught.value)
    assert "https://example.atlassian.net" in str(caught.value)


def test_exchange_timeout_names_the_extra() -> None:
    driver = Driver([TransportFailure("timeout", "", TASK_URL)])

    with pytest.raises(ConfluenceTransientError, match=r"timed out after 7 s \(extra timeout\)"):
        driver.run(call(settings(extra={"timeout": 7}), RetryPolicy(max_retries=0)))


def test_math_nan_is_not_a_valid_timeout() -> None:
    with pytest.raises(ConfluenceConfigError):
        settings(extra={"timeout": math.nan})


def test_a_tls_failure_suggests_plain_http_and_a_ca_bundle() -> None:
    driver = Driver([TransportFailure("tls", "WRONG_VERSION_NUMBER", TASK_URL)])

    with pytest.raises(ConfluenceTLSError) as caught:
        driver.run(call(settings()))

    assert "write http:// in Host" in str(caught.value)
    assert "verify_ssl" in str(caught.value)


@pytest.mark.parametrize("port", [0, 70000, -1], ids=["zero", "too-big", "negative"])
def test_a_bad_port_field_is_refused(port: int) -> None:
    with pytest.raises(ConfluenceConfigError, match=r"Port .* is not a TCP port"):
        ConnectionSettings.from_connection(
            conn_id="c", host="wiki.example.com/confluence", login=None, password="t", port=port
        )


def test_the_port_field_is_used_when_the_host_has_none() -> None:
    conn = ConnectionSettings.from_connection(
        conn_id="c", host="http://wiki.example.com/confluence", login=None, password="t", port=8090
    )
    assert conn.api_root == "http://wiki.example.com:8090/confluence"
