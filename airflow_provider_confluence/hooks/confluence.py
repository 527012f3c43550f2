"""``ConfluenceHook``: the Confluence connection and its API calls, sync (requests) and async (aiohttp)."""

from __future__ import annotations

import asyncio
import ssl
import time
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import requests
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider_confluence.core import (
    MAX_BODY_BYTES,
    ConnectionSettings,
    Outcome,
    RawResponse,
    Request,
    RetryPolicy,
    TransportFailure,
    exchange,
    started_task_id,
    validate_task_id,
)
from airflow_provider_confluence.exceptions import (
    ConfluenceBadResponseError,
    ConfluenceConfigError,
    ConfluenceError,
    ConfluenceNotFoundError,
)
from airflow_provider_confluence.longtask import LongTask

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator, Mapping, Sequence

    from airflow.sdk import Connection

#: Connections one event loop keeps open to one Confluence, shared by all its triggers.
POOL_SIZE = 32
LIST_PAGE_SIZE = 100
_MAX_LIST_PAGES = 1000


def long_task_path(task_id: object) -> str:
    """The path of one task's status, below the API root. Validates and quotes the id."""
    return f"/rest/api/longtask/{quote(validate_task_id(task_id), safe='')}"


class ConfluenceHook(BaseHook):
    """
    Talks to Confluence's long-task API through an Airflow connection of type ``confluence``.

    Host is the site URL (``https://example.atlassian.net``, with or without ``/wiki``) or the Data
    Center base URL with its context path. Login is the Cloud account e-mail (empty for token auth),
    Password the API token, personal access token or OAuth access token. See the README for extras.

    :param confluence_conn_id: the Airflow connection id.
    :param retry_policy: how transient failures are retried (both transports use it).
    """

    conn_name_attr = "confluence_conn_id"
    default_conn_name = "confluence_default"
    conn_type = "confluence"
    hook_name = "Confluence"

    def __init__(
        self,
        confluence_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.confluence_conn_id = confluence_conn_id
        self.retry_policy = retry_policy or RetryPolicy()
        self._settings: ConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._async_session: aiohttp.ClientSession | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(confluence_conn_id={self.confluence_conn_id!r})"

    # ------------------------------------------------------------------ connection
    @property
    def settings(self) -> ConnectionSettings:
        """The connection, read once (sync). In a trigger use :meth:`aget_settings` instead."""
        if self._settings is None:
            try:
                conn = self.get_connection(self.confluence_conn_id)
            except AirflowNotFoundException:
                raise self._missing_connection() from None
            self._settings = self._read(conn)
        return self._settings

    async def aget_settings(self) -> ConnectionSettings:
        """The connection, read once without blocking the event loop (for triggers)."""
        if self._settings is None:
            try:
                conn = await self.aget_connection(self.confluence_conn_id)
            except AirflowNotFoundException:
                raise self._missing_connection() from None
            self._settings = self._read(conn)
        return self._settings

    def _read(self, conn: Connection) -> ConnectionSettings:
        settings = ConnectionSettings.from_connection(
            conn_id=conn.conn_id,
            host=conn.host,
            login=conn.login,
            password=conn.password,
            schema=conn.schema,
            port=conn.port,
            extra=conn.extra_dejson,
        )
        if settings.unknown_extras:
            self.log.warning(
                "Connection %r has extras this provider does not use, ignored: %s. Known extras: "
                "deployment, auth_type, cloud_id, verify_ssl, timeout, proxy.",
                settings.conn_id,
                ", ".join(settings.unknown_extras),
            )
        return settings

    def _missing_connection(self) -> ConfluenceConfigError:
        env = f"AIRFLOW_CONN_{self.confluence_conn_id.upper()}"
        return ConfluenceConfigError(
            f"Connection {self.confluence_conn_id!r} is not defined here. Create it (type 'confluence') in "
            f"the UI or with `airflow connections add`, or set {env}. A triggerer reads connections too: "
            "give it the same secrets backend or environment as the workers. Scripts, and triggers run by "
            "`airflow dags test`, cannot read the metadata database: give them the connection as "
            f"{env} or through a secrets backend."
        )

    # ------------------------------------------------------------------ sync API
    def get_long_task(self, task_id: str, *, deadline: float | None = None) -> LongTask:
        """The status of one long task. ``deadline`` (``time.time()``) bounds retry waits."""
        settings = self.settings
        request = settings.request("GET", long_task_path(task_id))
        data = self._call(request, what=f"long task {task_id}", deadline=deadline)
        return _parse(data, request.url)

    def list_long_tasks(self, *, page_size: int = LIST_PAGE_SIZE) -> Iterator[LongTask]:
        """Every long task visible to the user, following Confluence's pagination."""
        for data, url in _pages(self._call, self.settings, page_size):
            yield _parse(data, url)

    # ------------------------------------------------------------------ operations that start a long task
    def copy_page_hierarchy(
        self,
        page_id: str,
        *,
        destination_page_id: str,
        copy_attachments: bool = True,
        copy_permissions: bool = True,
        copy_properties: bool = True,
        copy_labels: bool = True,
        copy_custom_contents: bool = True,
        title_options: Mapping[str, str] | None = None,
    ) -> str:
        """Copy page ``page_id`` and its descendants under ``destination_page_id``; returns the task id."""
        body: dict[str, Any] = {
            "copyAttachments": copy_attachments,
            "copyPermissions": copy_permissions,
            "copyProperties": copy_properties,
            "copyLabels": copy_labels,
            "copyCustomContents": copy_custom_contents,
            "destinationPageId": _checked_id(destination_page_id, "destination_page_id"),
        }
        if title_options:
            body["titleOptions"] = dict(title_options)
        path = f"/rest/api/content/{_path_id(page_id, 'page_id')}/pagehierarchy/copy"
        return self._start("POST", path, body, what=f"copy of page tree {page_id}")

    def archive_pages(self, page_ids: Sequence[str] | str) -> str:
        """Archive pages (at most 300, one archive job at a time per site); returns the task id."""
        if isinstance(page_ids, (str, int)):  # one id, not a sequence of characters
            page_ids = [str(page_ids)]
        ids = [_checked_id(page_id, "page_ids") for page_id in page_ids]
        if not ids:
            raise ConfluenceConfigError("archive_pages needs at least one page id.")
        body = {"pages": [{"id": int(i) if i.isdigit() else i} for i in ids]}
        return self._start("POST", "/rest/api/content/archive", body, what=f"archive of {len(ids)} page(s)")

    def delete_page_tree(self, page_id: str) -> str:
        """Move page ``page_id`` and its descendants to the trash; returns the task id."""
        path = f"/rest/api/content/{_path_id(page_id, 'page_id')}/pageTree"
        return self._start("DELETE", path, None, what=f"deletion of page tree {page_id}")

    def delete_space(self, space_key: str) -> str:
        """Delete space ``space_key`` (to the trash on Cloud); returns the task id."""
        path = f"/rest/api/space/{_path_id(space_key, 'space_key')}"
        return self._start("DELETE", path, None, what=f"deletion of space {space_key}")

    def _start(self, method: str, path: str, body: Any, *, what: str) -> str:
        request = self.settings.request(method, path, json_body=body)
        data = self._call(request, what=what)
        task_id = started_task_id(data, request.url)
        self.log.info("Confluence started the %s as long task %s.", what, task_id)
        return task_id

    def test_connection(self) -> tuple[bool, str]:
        """A cheap authenticated call (one task of the list). Never raises; the message says what to fix."""
        try:
            settings = self.settings
            request = settings.request("GET", "/rest/api/longtask", params={"start": 0, "limit": 1})
            self._call(request, what="connection test", retry=False)
        except ConfluenceNotFoundError as error:
            return False, (
                f"Confluence has no REST API at {error.url}: check Host (the site URL, or the Data Center "
                "base URL with its context path) and extra deployment (cloud adds /wiki)."
            )
        except ConfluenceError as error:
            return False, str(error)
        except Exception as error:
            return False, f"{type(error).__name__}: {self._redact(str(error))}"
        return True, (
            f"Connected to Confluence {settings.deployment.value} at {settings.api_root} "
            f"({settings.auth_type.value} auth)."
        )

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> ConfluenceHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ async API
    async def aget_long_task(self, task_id: str, *, deadline: float | None = None) -> LongTask:
        """Async twin of :meth:`get_long_task`, for triggers: same URL, auth, retries and parsing."""
        settings = await self.aget_settings()
        request = settings.request("GET", long_task_path(task_id))
        data = await self._acall(request, what=f"long task {task_id}", deadline=deadline)
        return _parse(data, request.url)

    async def aclose(self) -> None:
        """Give back this hook's share of the pooled async session (closed when its last user leaves)."""
        if self._async_session is not None:
            session, self._async_session = self._async_session, None
            await _POOL.release(session)

    async def __aenter__(self) -> ConfluenceHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ transports
    @property
    def session(self) -> requests.Session:
        """The reused ``requests`` session: TLS verification and proxy from the connection, no env proxies."""
        if self._session is None:
            settings = self.settings
            session = requests.Session()
            session.trust_env = False
            session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # as the async pool: none
            session.verify = settings.verify_ssl
            if settings.proxy:
                session.proxies = {"http": settings.proxy, "https": settings.proxy}
            self._session = session
        return self._session

    def _call(self, request: Request, *, what: str, deadline: float | None = None, retry: bool = True) -> Any:
        steps = self._exchange(request, what, deadline, retry)
        outcome: Outcome = None
        try:
            while True:
                action = steps.send(outcome)
                if isinstance(action, Request):
                    outcome = self._send(action)
                else:
                    time.sleep(action)
                    outcome = None
        except StopIteration as done:
            return done.value

    async def _acall(self, request: Request, *, what: str, deadline: float | None = None) -> Any:
        steps = self._exchange(request, what, deadline, retry=True)
        session = await self._get_async_session()
        outcome: Outcome = None
        try:
            while True:
                action = steps.send(outcome)
                if isinstance(action, Request):
                    outcome = await self._asend(session, action)
                else:
                    await asyncio.sleep(action)
                    outcome = None
        except StopIteration as done:
            return done.value

    def _exchange(
        self, request: Request, what: str, deadline: float | None, retry: bool
    ) -> Generator[Request | float, Outcome, Any]:
        assert self._settings is not None
        policy = self.retry_policy if retry else RetryPolicy(max_retries=0)
        return exchange(self._settings, request, what=what, policy=policy, deadline=deadline, logger=self.log)

    def _send(self, request: Request) -> RawResponse | TransportFailure:
        timeout = self.settings.timeout
        try:
            with self.session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                json=request.json_body,
                timeout=(timeout, timeout),
                allow_redirects=False,
                stream=True,
            ) as response:
                body = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        break
                return RawResponse(
                    status=response.status_code,
                    headers=response.headers,
                    body=bytes(body[:MAX_BODY_BYTES]),
                    url=request.url,
                    truncated=len(body) > MAX_BODY_BYTES,
                )
        except requests.exceptions.SSLError as error:
            return TransportFailure("tls", _describe(error), request.url)
        except requests.exceptions.ProxyError as error:
            return TransportFailure("proxy", _describe(error), request.url)
        except requests.exceptions.Timeout as error:
            return TransportFailure("timeout", str(error), request.url)
        except requests.exceptions.RequestException as error:
            return TransportFailure("connection", _describe(error), request.url)

    async def _asend(
        self, session: aiohttp.ClientSession, request: Request
    ) -> RawResponse | TransportFailure:
        settings = self._settings
        assert settings is not None
        try:
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                json=request.json_body,
                allow_redirects=False,
                proxy=settings.proxy,
            ) as response:
                if (response.content_length or 0) > MAX_BODY_BYTES:
                    return RawResponse(response.status, response.headers, b"", request.url, truncated=True)
                if response.content_length is not None:
                    body = await response.read()
                else:
                    body = await _read_capped(response)
                return RawResponse(
                    status=response.status,
                    headers=response.headers,
                    body=body[:MAX_BODY_BYTES],
                    url=request.url,
                    truncated=len(body) > MAX_BODY_BYTES,
                )
        except (aiohttp.ClientSSLError, ssl.SSLError) as error:
            return TransportFailure("tls", _describe(error), request.url)
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as error:
            return TransportFailure("proxy", _describe(error), request.url)
        except asyncio.TimeoutError as error:
            return TransportFailure("timeout", str(error) or "timed out", request.url)
        except aiohttp.ClientError as error:
            return TransportFailure("connection", _describe(error), request.url)

    async def _get_async_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._async_session is not None and (self._async_session.closed or self._async_loop is not loop):
            self._async_session = None  # a session lives on the loop that opened it; that loop is gone
        if self._async_session is None:
            self._async_session = await _POOL.acquire(await self.aget_settings())
            self._async_loop = loop
        return self._async_session

    def _redact(self, text: str) -> str:
        return self._settings.redact(text) if self._settings else text


def _checked_id(value: object, name: str) -> str:
    """A page id or space key, checked (for a URL path or a JSON body)."""
    try:
        return validate_task_id(value)
    except ConfluenceConfigError:
        raise ConfluenceConfigError(f"{name} {value!r} is not a valid Confluence id or key.") from None


def _path_id(value: object, name: str) -> str:
    """A page id or space key checked and quoted for a URL path."""
    return quote(_checked_id(value, name), safe="")


def _parse(data: Any, url: str) -> LongTask:
    try:
        return LongTask.from_json(data)
    except ConfluenceBadResponseError as error:
        raise ConfluenceBadResponseError(f"{error.message} (from {url})", url=url) from None


def _pages(
    call: Any, settings: ConnectionSettings, page_size: int
) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Each task of the paginated list, with the URL it came from; follows ``_links.next`` or ``start``."""
    if not 1 <= page_size <= LIST_PAGE_SIZE:
        raise ConfluenceConfigError(f"page_size must be between 1 and {LIST_PAGE_SIZE}, got {page_size}.")
    params: dict[str, Any] = {"start": 0, "limit": page_size}
    for _ in range(_MAX_LIST_PAGES):
        request = settings.request("GET", "/rest/api/longtask", params=params)
        page = call(request, what="list of long tasks")
        results = page.get("results") if isinstance(page, dict) else None
        if not isinstance(results, list):
            raise ConfluenceBadResponseError(
                f"The list of long tasks at {request.url} has no 'results' list.", url=request.url
            )
        for item in results:
            yield item, request.url
        next_params = _next_params(page, params, len(results))
        if next_params is None:
            return
        params = next_params


def _next_params(page: Mapping[str, Any], params: dict[str, Any], count: int) -> dict[str, Any] | None:
    links = page.get("_links")
    nxt = links.get("next") if isinstance(links, dict) else None
    start = int(params["start"])
    if isinstance(nxt, str) and nxt:
        query = dict(parse_qsl(urlsplit(nxt).query))
        try:
            new_start = int(query.get("start", start + count))
        except ValueError:
            new_start = start + count
    elif count and count >= int(params["limit"]):
        new_start = start + count
    else:
        return None
    if new_start <= start:  # a server that does not advance would loop for ever
        return None
    return {**params, "start": new_start}


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            break
    return bytes(body)


def _describe(error: BaseException) -> str:
    """The innermost cause of a library error, without its class-path noise."""
    while error.__cause__ is not None or error.__context__ is not None:
        inner = error.__cause__ or error.__context__
        assert inner is not None
        if str(inner):
            error = inner
        else:
            break
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class _SessionPool:
    """
    aiohttp sessions shared by every hook of one event loop that talks to the same Confluence.

    One triggerer runs hundreds of triggers; sharing one keep-alive pool (at most ``POOL_SIZE``
    connections) per Confluence avoids a TLS handshake per poll and bounds the sockets. A session is
    closed when its last user releases it.
    """

    def __init__(self) -> None:
        # Keyed by the loop object itself (not its id, which a later loop may reuse).
        self._entries: dict[tuple[Any, ...], list[Any]] = {}

    async def acquire(self, settings: ConnectionSettings) -> aiohttp.ClientSession:
        key = (asyncio.get_running_loop(), *settings.pool_key)
        entry = self._entries.get(key)
        if entry is None or entry[0].closed:
            ssl_option = await _ssl_option(settings.verify_ssl)
            entry = self._entries.get(key)  # another coroutine may have opened it meanwhile
            if entry is None or entry[0].closed:
                session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=POOL_SIZE, ssl=ssl_option),
                    # Per connect and per read, as the sync transport: time spent waiting for a free
                    # pooled connection must not count (a busy triggerer would time out and churn).
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=settings.timeout, sock_read=settings.timeout
                    ),
                    trust_env=False,
                    # Every request carries its own Authorization: a cookie (JSESSIONID) set for one
                    # connection must never ride along with another connection's requests.
                    cookie_jar=aiohttp.DummyCookieJar(),
                )
                entry = self._entries[key] = [session, 0]
        entry[1] += 1
        shared: aiohttp.ClientSession = entry[0]
        return shared

    async def release(self, session: aiohttp.ClientSession) -> None:
        for key, entry in list(self._entries.items()):
            if entry[0] is session:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._entries[key]
                    await session.close()
                return
        if not session.closed:
            await session.close()

    def __len__(self) -> int:
        return len(self._entries)


async def _ssl_option(verify: bool | str) -> ssl.SSLContext | bool:
    if verify is False:
        return False
    if verify is True:
        return True
    # Loading a CA bundle reads files: keep it off the event loop.
    return await asyncio.to_thread(ssl.create_default_context, cafile=verify)


_POOL = _SessionPool()
