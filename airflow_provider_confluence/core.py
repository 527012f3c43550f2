"""
The I/O-free core shared by the sync (``requests``) and async (``aiohttp``) transports.

Everything that decides something lives here, once: reading the connection, building URLs and
headers, interpreting answers, and the retry policy. A call is a small generator (:func:`exchange`)
that yields what to do next (send a :class:`Request`, or sleep) and receives what happened (a
:class:`RawResponse` or a :class:`TransportFailure`). Each transport only drives it: it sends bytes,
sleeps, and maps its library's exceptions to a :class:`TransportFailure`. So both transports retry,
redirect and fail in exactly the same way.
"""

from __future__ import annotations

import base64
import email.utils
import enum
import html
import json
import logging
import math
import random
import re
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

from airflow_provider_confluence import __version__
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

log = logging.getLogger(__name__)

USER_AGENT = f"airflow-provider-confluence/{__version__}"
DEFAULT_TIMEOUT = 30.0
#: The largest body we read. A status is a few KB; a page of 100 statuses well under a MB.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Longest excerpt of an unexpected body quoted in an error message.
EXCERPT_CHARS = 160
MAX_TASK_ID_LENGTH = 128
MAX_REDIRECTS = 3
CLOUD_GATEWAY = "https://api.atlassian.com"

KNOWN_EXTRAS = frozenset({"deployment", "auth_type", "cloud_id", "verify_ssl", "timeout", "proxy"})
_EXTRA_PREFIX = "extra__confluence__"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_TASK_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\?#%]")


class Deployment(str, enum.Enum):
    CLOUD = "cloud"
    DATACENTER = "datacenter"


class AuthType(str, enum.Enum):
    BASIC = "basic"
    BEARER = "bearer"


# ---------------------------------------------------------------------------- connection
@dataclass(frozen=True)
class ConnectionSettings:
    """Everything a transport needs, read once from an Airflow connection. Its repr shows no secret."""

    conn_id: str
    api_root: str  #: e.g. ``https://example.atlassian.net/wiki`` or ``https://wiki.example.com/confluence``
    deployment: Deployment
    auth_type: AuthType
    authorization: str = field(repr=False)
    verify_ssl: bool | str = True  #: True, False, or the path of a CA bundle
    timeout: float = DEFAULT_TIMEOUT
    proxy: str | None = field(default=None, repr=False)
    unknown_extras: tuple[str, ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``: the only place credentials are ever sent."""
        parts = urlsplit(self.api_root)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def pool_key(self) -> tuple[Any, ...]:
        """Connections whose requests may share one HTTP pool."""
        return (self.origin, self.verify_ssl, self.proxy, self.timeout)

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = self.api_root + path
        return f"{url}?{urlencode(params)}" if params else url

    def long_task_url(self, task_id: str) -> str:
        return self.url(f"/rest/api/longtask/{quote(validate_task_id(task_id), safe='')}")

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json_body: Any = None
    ) -> Request:
        headers = {
            "Authorization": self.authorization,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if method != "GET":
            headers["X-Atlassian-Token"] = "no-check"
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        return Request(method=method, url=self.url(path, params), headers=headers, json_body=json_body)

    def redact(self, text: str) -> str:
        """Remove every secret of this connection from a text (library error messages can quote them)."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    @classmethod
    def from_connection(
        cls,
        *,
        conn_id: str,
        host: str | None,
        login: str | None,
        password: str | None,
        schema: str | None = None,
        port: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ConnectionSettings:
        """
        Read an Airflow connection (UI fields, JSON or URI all end up here).

        :raises ConfluenceConfigError: with a message that names the field to fix.
        """
        extras, unknown = _read_extras(extra or {})
        cloud_id = _optional_text(extras.get("cloud_id"))
        api_root, deployment = _api_root(conn_id, host, schema, port, extras.get("deployment"), cloud_id)
        login = (login or "").strip() or None
        token = (password or "").strip()
        auth_type = _enum(AuthType, extras.get("auth_type"), "auth_type", conn_id)
        if auth_type is None:
            auth_type = AuthType.BASIC if login else AuthType.BEARER
        if not token:
            raise ConfluenceConfigError(
                f"Connection {conn_id!r} has no token: put the Cloud API token, the Data Center personal "
                "access token or the OAuth access token in the Password field."
            )
        if auth_type is AuthType.BASIC:
            if not login:
                raise ConfluenceConfigError(
                    f"Connection {conn_id!r} uses basic auth but has no Login: set Login to the Atlassian "
                    "account e-mail, or set extra auth_type to 'bearer' for a personal access token."
                )
            credentials = base64.b64encode(f"{login}:{token}".encode()).decode("ascii")
            authorization = f"Basic {credentials}"
        else:
            authorization = f"Bearer {token}"
        proxy = _proxy(extras.get("proxy"), conn_id)
        secrets = [token, authorization, authorization.split(" ", 1)[1]]
        if proxy:
            proxy_password = urlsplit(proxy).password
            if proxy_password:
                secrets.append(proxy_password)
        return cls(
            conn_id=conn_id,
            api_root=api_root,
            deployment=deployment,
            auth_type=auth_type,
            authorization=authorization,
            verify_ssl=_verify(extras.get("verify_ssl"), conn_id),
            timeout=_timeout(extras.get("timeout"), conn_id),
            proxy=proxy,
            unknown_extras=unknown,
            secrets=tuple(sorted(set(secrets), key=len, reverse=True)),
        )


def _read_extras(extra: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    known: dict[str, Any] = {}
    unknown = []
    for raw_name, value in extra.items():
        name = raw_name.removeprefix(_EXTRA_PREFIX)
        if name in KNOWN_EXTRAS:
            if value not in (None, ""):
                known[name] = value
        else:
            unknown.append(raw_name)
    return known, tuple(sorted(unknown))


def _optional_text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _enum(kind: type[enum.Enum], value: Any, name: str, conn_id: str) -> Any:
    if value is None:
        return None
    text = str(value).strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    aliases = {
        "server": "datacenter",
        "dc": "datacenter",
        "pat": "bearer",
        "oauth": "bearer",
        "token": "bearer",
    }
    text = aliases.get(text, text)
    for member in kind:
        if member.value == text:
            return member
    allowed = ", ".join(repr(m.value) for m in kind)
    raise ConfluenceConfigError(f"Connection {conn_id!r}: extra {name!r} is {value!r}; use one of {allowed}.")


def _api_root(
    conn_id: str,
    host: str | None,
    schema: str | None,
    port: int | None,
    deployment: Any,
    cloud_id: str | None,
) -> tuple[str, Deployment]:
    """The API root for every host form: scheme or none, ``/wiki`` or none, trailing slash, context path."""
    raw = (host or "").strip()
    if not raw and not cloud_id:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r} has no Host: set it to the site URL (https://example.atlassian.net) "
            "or the Data Center base URL with its context path (https://wiki.example.com/confluence)."
        )
    if raw and "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw) if raw else urlsplit(CLOUD_GATEWAY)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: Host {_without_userinfo(raw)!r} is not an http(s) URL; "
            "expected e.g. https://example.atlassian.net or https://wiki.example.com/confluence."
        )
    if parts.username or parts.password:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: Host must not carry credentials; use the Login and Password fields."
        )
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    try:
        url_port = parts.port
    except ValueError:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: Host {_without_userinfo(raw)!r} has an invalid port."
        ) from None
    if port is not None and not url_port and not (isinstance(port, int) and 0 < port < 65536):
        raise ConfluenceConfigError(f"Connection {conn_id!r}: Port {port!r} is not a TCP port (1-65535).")
    if url_port or port:
        netloc += f":{url_port or port}"
    path = re.sub(r"/{2,}", "/", parts.path).rstrip("/")
    if not path and schema and schema.strip("/"):
        path = "/" + schema.strip("/")  # the URI form puts the path into Connection.schema
    path = re.sub(r"/rest/api(/.*)?$", "", path)  # a pasted API URL
    hostname = parts.hostname.lower()
    is_cloud_host = hostname.endswith(".atlassian.net") or hostname == "api.atlassian.com"
    kind = _enum(Deployment, deployment, "deployment", conn_id)
    if kind is None:
        kind = Deployment.CLOUD if (is_cloud_host or cloud_id) else Deployment.DATACENTER
    if cloud_id:
        if kind is Deployment.DATACENTER:
            raise ConfluenceConfigError(
                f"Connection {conn_id!r}: extra cloud_id routes calls through Atlassian's Cloud gateway; "
                "it cannot be combined with deployment 'datacenter'."
            )
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", cloud_id):
            raise ConfluenceConfigError(
                f"Connection {conn_id!r}: extra cloud_id {cloud_id!r} is not a cloud id."
            )
        gateway = (
            CLOUD_GATEWAY
            if (not host or hostname.endswith(".atlassian.net"))
            else f"{parts.scheme}://{netloc}"
        )
        return f"{gateway}/ex/confluence/{cloud_id}/wiki", Deployment.CLOUD
    if hostname == "api.atlassian.com" and "/ex/confluence/" not in path:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: Host is Atlassian's API gateway; "
            "set extra cloud_id to your site's cloud id."
        )
    if kind is Deployment.CLOUD:
        wiki = path.find("/wiki")
        path = path[: wiki + len("/wiki")] if wiki >= 0 else path + "/wiki"
    return f"{parts.scheme}://{netloc}{path}", kind


def _without_userinfo(url: str) -> str:
    """A URL for messages: anything before an ``@`` in the authority (credentials) is dropped."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    authority = authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


def _verify(value: Any, conn_id: str) -> bool | str:
    if value is None or isinstance(value, bool):
        return True if value is None else value
    text = str(value).strip()
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    if text.startswith("/") or text.endswith((".pem", ".crt")):
        return text  # a CA bundle
    raise ConfluenceConfigError(
        f"Connection {conn_id!r}: extra verify_ssl is {value!r}; use true, false or the path of a CA bundle."
    )


def _timeout(value: Any, conn_id: str) -> float:
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not (0 < seconds <= 3600):
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: extra timeout is {value!r}; use a number of seconds greater than 0 "
            "and at most 3600."
        )
    return seconds


def _proxy(value: Any, conn_id: str) -> str | None:
    text = _optional_text(value)
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: extra proxy must be an http(s) URL such as http://proxy.example.com:3128."
        )
    return text


def validate_task_id(task_id: object) -> str:
    """
    Check a long-task id before it goes into a URL.

    Ids are opaque strings; we accept any printable text without path or query characters.
    :raises ConfluenceConfigError: empty, blank, control characters, too long, or path-like.
    """
    if isinstance(task_id, bool) or not isinstance(task_id, (str, int)):
        raise ConfluenceConfigError(
            f"long_task_id must be a string, got {type(task_id).__name__}. "
            "If it comes from XCom, check that the upstream task pushed the task id."
        )
    text = str(task_id)
    if not text.strip():
        raise ConfluenceConfigError(
            "long_task_id is empty: pass the id returned when the long task was started."
        )
    if text != text.strip():
        raise ConfluenceConfigError(f"long_task_id {text!r} has leading or trailing white space.")
    if len(text) > MAX_TASK_ID_LENGTH:
        raise ConfluenceConfigError(f"long_task_id is {len(text)} characters long; ids are short strings.")
    if _TASK_ID_FORBIDDEN.search(text) or text in (".", ".."):
        raise ConfluenceConfigError(
            f"long_task_id {text!r} contains characters that no Confluence task id has "
            "(control characters, '/', '\\', '?', '#', '%'), or is a path."
        )
    return text


def started_task_id(data: Any, url: str) -> str:
    """The task id out of the 202 answer of an operation that starts a long task."""
    task_id = data.get("id") if isinstance(data, Mapping) else None
    try:
        return validate_task_id(task_id)
    except ConfluenceConfigError:
        raise ConfluenceBadResponseError(
            f"Confluence accepted the request at {url} but its answer names no long-task id that can be "
            f"polled (got {excerpt(repr(task_id).encode())}).",
            url=url,
        ) from None


# ---------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    json_body: Any = None


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]  #: lower-cased names
    body: bytes
    url: str
    truncated: bool = False


@dataclass(frozen=True)
class TransportFailure:
    """A request that got no answer. ``kind`` is ``timeout``, ``connection``, ``proxy`` or ``tls``."""

    kind: str
    detail: str
    url: str


Action = Request | float
Outcome = RawResponse | TransportFailure | None


# ---------------------------------------------------------------------------- retry policy
@dataclass(frozen=True)
class RetryPolicy:
    """
    Which failures retry and how long to wait: one policy for both transports.

    Atlassian's advice: honour ``Retry-After``, otherwise exponential backoff capped at 30 s with
    about 30 % jitter. ``max_retries`` bounds the consecutive retries of one call.
    """

    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    jitter: float = 0.3
    retry_after_cap: float = 300.0

    def delay(
        self,
        error: ConfluenceAPIError,
        attempt: int,
        rng: random.Random | None = None,
        *,
        idempotent: bool = True,
    ) -> float | None:
        """
        Seconds to wait before retry number ``attempt + 1``, or None when ``error`` must be raised.

        A request that starts work (POST, DELETE) is retried only when Confluence said it did not
        process it (429, 503 with ``Retry-After``): a 500 or a reset may hide a started task.
        """
        if not isinstance(error, ConfluenceTransientError) or attempt >= self.max_retries:
            return None
        if not idempotent and not isinstance(error, ConfluenceRateLimitError):
            return None
        if isinstance(error, ConfluenceRateLimitError) and error.retry_after is not None:
            return float(min(error.retry_after, self.retry_after_cap))
        backoff: float = min(self.backoff_cap, self.backoff_base * 2.0**attempt)
        spread: float = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, backoff * (1.0 + spread))

    def to_dict(self) -> dict[str, float]:
        return {
            "max_retries": self.max_retries,
            "backoff_base": self.backoff_base,
            "backoff_cap": self.backoff_cap,
            "jitter": self.jitter,
            "retry_after_cap": self.retry_after_cap,
        }


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date. Garbage gives None, the past 0."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
        if seconds < 0:  # not a delta-seconds value: garbage, so the caller backs off instead
            return None
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


# ---------------------------------------------------------------------------- answers
def interpret(response: RawResponse, settings: ConnectionSettings, *, what: str = "request") -> Any:
    """
    Turn an answer into decoded JSON, or raise the error that explains it.

    ``what`` names the object for messages, e.g. ``"long task 1180606"``.
    """
    status, url = response.status, response.url
    if 200 <= status < 300:
        if status == 204:
            return None
        return _decode_json(response, settings, what)
    if 300 <= status < 400:
        target = urljoin(url, response.headers.get("location", ""))
        raise ConfluenceAuthError(
            f"Confluence redirected the {what} to {_origin(target) or 'an unknown place'} ({status}). "
            "That is usually a login or SSO page: the base URL or the authentication is probably wrong. "
            "Credentials are never sent to another host.",
            url=url,
            status_code=status,
        )
    reason = _error_text(response, settings)
    if status == 401:
        hint = (
            "check that Login is the account e-mail and Password a valid API token"
            if settings.auth_type is AuthType.BASIC
            else "check that Password holds a valid personal access token or OAuth access token "
            "(and that Login is empty for token auth)"
        )
        raise ConfluenceAuthError(
            f"Confluence rejected the credentials of connection {settings.conn_id!r} for the {what} "
            f"(401{reason}): {hint}.",
            url=url,
            status_code=status,
        )
    if status == 403:
        raise ConfluenceAuthError(
            f"Confluence refused the {what} to connection {settings.conn_id!r} (403{reason}): the user lacks "
            "permission, or an OAuth or scoped token lacks the scope (read:confluence-space.summary).",
            url=url,
            status_code=status,
        )
    if status == 404:
        raise ConfluenceNotFoundError(
            f"Confluence has no {what} at {url} (404{reason}). The id may be wrong, the task may have been "
            "removed after it ended, or (Data Center) it was started by another user.",
            url=url,
            status_code=status,
        )
    if status == 429 or (status == 503 and "retry-after" in response.headers):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise ConfluenceRateLimitError(
            f"Confluence rate-limited the {what} ({status}{reason}).",
            url=url,
            status_code=status,
            retry_after=retry_after,
        )
    if status >= 500 or status == 408:
        raise ConfluenceTransientError(
            f"Confluence failed to answer the {what} ({status}{reason}).", url=url, status_code=status
        )
    raise ConfluenceRequestError(
        f"Confluence refused the {what} ({status}{reason}).", url=url, status_code=status
    )


def _decode_json(response: RawResponse, settings: ConnectionSettings, what: str) -> Any:
    if response.truncated:
        raise ConfluenceBadResponseError(
            f"The answer to the {what} is larger than {MAX_BODY_BYTES // 1024} KiB; that is not a "
            "Confluence status. Check the base URL.",
            url=response.url,
            status_code=response.status,
        )
    body = response.body
    content_type = response.headers.get("content-type", "")
    if "html" in content_type or body.lstrip()[:1] == b"<":
        raise ConfluenceAuthError(
            f"Confluence answered the {what} with an HTML page instead of JSON, probably a login or SSO "
            f"page: check the base URL and the credentials of connection {settings.conn_id!r}. "
            f"Page excerpt: {excerpt(body, settings)!r}",
            url=response.url,
            status_code=response.status,
        )
    if not body.strip():
        raise ConfluenceBadResponseError(
            f"Confluence answered the {what} with an empty body ({response.status}).",
            url=response.url,
            status_code=response.status,
        )
    try:
        return json.loads(body)
    except ValueError:
        raise ConfluenceBadResponseError(
            f"Confluence answered the {what} with a body that is not valid JSON: {excerpt(body, settings)!r}",
            url=response.url,
            status_code=response.status,
        ) from None


def excerpt(body: bytes, settings: ConnectionSettings | None = None) -> str:
    """A short, cleaned excerpt of a body: tags and scripts dropped, white space folded, secrets redacted."""
    text = body[: 64 * 1024].decode("utf-8", errors="replace")
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
    text = re.sub(r"(?s)<[^>]*>", " ", text)
    text = " ".join(html.unescape(text).split())
    text = "".join(ch for ch in text if ch.isprintable())
    if settings is not None:
        text = settings.redact(text)
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _error_text(response: RawResponse, settings: ConnectionSettings) -> str:
    """``: <Confluence's message>`` from a JSON error body, or an excerpt of anything else."""
    if not response.body.strip():
        return ""
    try:
        data = json.loads(response.body)
    except ValueError:
        return f": {excerpt(response.body, settings)}" if not response.truncated else ""
    if isinstance(data, Mapping):
        message = data.get("message") or data.get("reason")
        if isinstance(message, str) and message.strip():
            return f": {excerpt(message.encode(), settings)}"
    return ""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" if parts.hostname else ""


def _same_origin(url: str, origin: str) -> bool:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() == origin.lower()


# ---------------------------------------------------------------------------- one call
def exchange(
    settings: ConnectionSettings,
    request: Request,
    *,
    what: str,
    policy: RetryPolicy,
    deadline: float | None = None,
    logger: Any = None,
    rng: random.Random | None = None,
) -> Generator[Action, Outcome, Any]:
    """
    One API call with retries and same-origin redirects: yields actions, returns decoded JSON.

    A transport sends each yielded :class:`Request` and sends back its outcome; for each yielded
    float it sleeps that many seconds and sends back None. Waits never reach past ``deadline``
    (``time.time()`` based): the error that would need them is raised instead.
    """
    logger = logger or log
    attempt = redirects = 0
    while True:
        outcome = yield request
        try:
            if isinstance(outcome, TransportFailure):
                raise _transport_error(outcome, settings, what)
            assert outcome is not None, "a transport must send back the outcome of a request"
            location = outcome.headers.get("location", "")
            if outcome.status in (301, 302, 303, 307, 308) and location:
                target = urljoin(outcome.url, location)
                if _same_origin(target, settings.origin) and redirects < MAX_REDIRECTS:
                    redirects += 1
                    request = Request(request.method, target, request.headers, request.json_body)
                    continue
            return interpret(outcome, settings, what=what)
        except ConfluenceAPIError as error:
            wait = policy.delay(error, attempt, rng, idempotent=request.method in ("GET", "HEAD"))
            if wait is None:
                raise
            if deadline is not None and time.time() + wait > deadline:
                if isinstance(error, ConfluenceTransientError):
                    error.deadline_reached = True
                raise
            attempt += 1
            logger.warning("%s Retry %d of %d in %.1f s.", error.message, attempt, policy.max_retries, wait)
            yield wait


def _transport_error(
    failure: TransportFailure, settings: ConnectionSettings, what: str
) -> ConfluenceAPIError:
    detail = settings.redact(failure.detail)[:300]
    if failure.kind == "tls":
        return ConfluenceTLSError(
            f"The TLS handshake with {settings.origin} failed for the {what} ({detail}). If that server "
            "speaks plain HTTP, write http:// in Host; if its certificate comes from a private CA, set extra "
            "verify_ssl to the path of your CA bundle (false only for testing).",
            url=failure.url,
        )
    if failure.kind == "timeout":
        message = f"The {what} timed out after {settings.timeout:g} s (extra timeout)."
    elif failure.kind == "proxy":
        proxy = _without_userinfo(settings.proxy or "")
        message = (
            f"Could not reach Confluence through the proxy {proxy} (extra proxy) for the {what}: {detail}."
        )
    else:
        message = f"Could not reach Confluence at {settings.origin} for the {what}: {detail}."
    return ConfluenceTransientError(message, url=failure.url)
