"""The simulator's HTTP server (aiohttp): Confluence's long-task endpoints, auth, faults, a control API."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import itertools
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from aiohttp import web

from airflow_provider_confluence.testing.models import FAULT_KINDS, Fault, TaskSpec
from airflow_provider_confluence.testing.stats import SimulatorStats, StatsRecorder
from airflow_provider_confluence.testing.tasks import SimTask

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["DEFAULT_RANDOM_FAULT_KINDS", "OPERATIONS", "ConfluenceSimulator"]

log = logging.getLogger(__name__)

OPERATIONS: tuple[str, ...] = ("copy", "archive", "delete_page_tree", "delete_space")
DEFAULT_RANDOM_FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "html", "slow", "reset")
FIRST_TASK_ID = 1180606
MAX_LIST_LIMIT = 100
MAX_ARCHIVE_PAGES = 300
DEFAULT_COPY_PAGES = 10

_JSON = "application/json; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_GATEWAY_PREFIX = "/ex/confluence/{cloud_id}/wiki"
_CLOUD_PREFIX = "/wiki"

# What each operation's task looks like unless ``operation_spec`` says otherwise.
_OPERATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "copy": {
        "name_key": "com.atlassian.confluence.pages.actions.CopyPageHierarchyAction.action.name",
        "status_message": "Copying pages",
        "status_key": "STATUS_COPYING_PAGES",
    },
    "archive": {
        "name_key": "com.atlassian.confluence.pages.actions.ArchivePagesAction.action.name",
        "status_message": "Archiving pages",
    },
    "delete_page_tree": {
        "name_key": "com.atlassian.confluence.pages.actions.RemovePageTreeAction.action.name",
        "status_message": "Deleting pages",
        "status_key": "STATUS_DELETING_PAGES",
    },
    "delete_space": {
        "name_key": "com.atlassian.confluence.spaces.actions.RemoveSpaceAction.action.name",
        "status_message": "Deleting space",
    },
}

_LOGIN_PAGE = (
    b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    b"<title>Log in with Atlassian account</title>"
    b'</head><body><form id="form-login" action="https://sso.example.invalid/login" method="post">'
    b'<h1>Log in to continue</h1><input name="username" type="email"><input name="password" '
    b'type="password"><button type="submit">Continue</button></form></body></html>\n'
)


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error_body(
    status: int, message: str, *, authorized: bool = True, valid: bool = True, errors: Iterable[str] = ()
) -> bytes:
    """Confluence's JSON error body (the shape of ``tests/data/error-404.json``)."""
    return _dumps(
        {
            "statusCode": status,
            "data": {
                "authorized": authorized,
                "valid": valid,
                "allowedInReadOnlyMode": True,
                "errors": [{"message": {"translation": text, "args": []}} for text in errors],
                "successful": False,
            },
            "message": message,
            "reason": HTTPStatus(status).phrase,
        }
    )


_NOT_FOUND_BODY = _error_body(404, "No task with the given id", authorized=False)
_UNAUTHORIZED_BODY = _error_body(
    401, "Client must be authenticated to access this resource.", authorized=False
)
_WWW_AUTHENTICATE = 'Basic realm="Confluence", Bearer realm="Confluence"'
_FAULT_BODIES: dict[str, bytes] = {
    "403": _error_body(
        403, "The calling user does not have permission to view the content", authorized=False
    ),
    "429": _error_body(429, "Rate limit exceeded. Please retry after the time given in Retry-After."),
    "500": _error_body(500, "An internal error occurred while processing the request"),
    "503": _error_body(503, "Service Unavailable. Please retry after the time given in Retry-After."),
    "502": b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n",
    "504": b"<html><head><title>504 Gateway Timeout</title></head>"
    b"<body><h1>504 Gateway Timeout</h1></body></html>\n",
}


def _json_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> web.Response:
    response = web.Response(status=status, body=body, headers=headers)
    response.headers["Content-Type"] = _JSON
    return response


_Handler = Callable[[web.Request, "_Flavour"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class _Flavour:
    """Which of the served URL prefixes a route belongs to."""

    deployment: str  # "cloud" or "datacenter": the shape of lists and of the tasks that operations start
    context: str  # ``_links.context``


@dataclass
class _ActiveFault:
    fault: Fault
    skipped: int = 0
    remaining: int = 0


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _normalise_context_path(context_path: str) -> str:
    if not isinstance(context_path, str):
        raise ValueError(f"context_path must be a string such as '/confluence', got {context_path!r}")
    path = context_path.strip()
    if path in ("", "/"):
        return ""
    if not path.startswith("/"):
        path = "/" + path
    path = path.rstrip("/")
    if any(ch in path for ch in "?#{} \t") or "//" in path:
        raise ValueError(f"context_path must be a plain URL path such as '/confluence', got {context_path!r}")
    if path in (_CLOUD_PREFIX, "/ex", "/_simulator") or path.startswith(("/ex/", "/_simulator/", "/wiki/")):
        raise ValueError(
            f"context_path {context_path!r} would collide with the Cloud, gateway or control routes"
        )
    return path


class ConfluenceSimulator:
    """A local Confluence that answers the long-task API; see the package docstring.

    Use it as ``with ConfluenceSimulator() as sim:`` (own event loop in a daemon thread) or as
    ``async with ConfluenceSimulator() as sim:`` (on the running loop). ``operation_spec`` is what the tasks
    started by the four operations do: one :class:`TaskSpec` for all, or a mapping from operation name
    (``copy``, ``archive``, ``delete_page_tree``, ``delete_space``) to a spec. Fields left at their defaults
    are filled in per operation (name key, messages, copy details); the shape follows the URL prefix used.
    """

    def __init__(
        self,
        *,
        email: str = "demo@example.com",
        api_token: str = "sim-token",
        bearer_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        context_path: str = "/confluence",
        operation_spec: TaskSpec | Mapping[str, TaskSpec] | None = None,
        allow_remote: bool = False,
        access_log: bool = False,
        shutdown_timeout: float = 0.5,
    ) -> None:
        for name, value in (("email", email), ("api_token", api_token)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        if bearer_token is not None and (not isinstance(bearer_token, str) or not bearer_token):
            raise ValueError("bearer_token must be a non-empty string or None")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer between 0 and 65535, got {port!r}")
        if not allow_remote and not is_loopback_host(host):
            raise ValueError(
                f"refusing to listen on {host!r}: the simulator accepts a fixed, public demo token, "
                "so it only listens on loopback (127.0.0.1, ::1, localhost) unless allow_remote=True"
            )
        self.email = email
        self.api_token = api_token
        self.bearer_token = bearer_token
        self.host = "127.0.0.1" if host.lower() == "localhost" else host.strip("[]")
        self.context_path = _normalise_context_path(context_path)
        self.operation_spec: TaskSpec | Mapping[str, TaskSpec] = operation_spec or TaskSpec(duration=2.0)
        self._requested_port = port
        self._access_log = access_log
        self._shutdown_timeout = shutdown_timeout
        self._basic_secret = f"{email}:{api_token}".encode()
        self._bearer_secret = (bearer_token if bearer_token is not None else api_token).encode()

        self._lock = threading.Lock()
        self._tasks: dict[str, SimTask] = {}
        self._ids = itertools.count(FIRST_TASK_ID)
        self._faults: list[_ActiveFault] = []
        self._fault_rate = 0.0
        self._fault_kinds: tuple[str, ...] = DEFAULT_RANDOM_FAULT_KINDS
        self._fault_delay = 0.5
        self._rng = random.Random()
        self._stats = StatsRecorder()

        self._port: int | None = None
        self._socket: socket.socket | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never shows the tokens
        where = self.url if self._port is not None else "not running"
        return f"ConfluenceSimulator({where}, email={self.email!r}, tasks={len(self._tasks)})"

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port (the free port picked when ``port=0``)."""
        if self._port is None:
            raise RuntimeError(
                "the simulator is not running: use `with ConfluenceSimulator() as sim:` or start()"
            )
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def cloud_url(self) -> str:
        """The Cloud site URL with its ``/wiki`` prefix."""
        return self.url + _CLOUD_PREFIX

    @property
    def datacenter_url(self) -> str:
        """The Data Center base URL with its context path."""
        return self.url + self.context_path

    def gateway_url(self, cloud_id: str = "sim-cloud-id") -> str:
        """The Atlassian API gateway form: ``{url}/ex/confluence/{cloud_id}/wiki``."""
        return f"{self.url}/ex/confluence/{quote(cloud_id, safe='')}/wiki"

    def status_url(self, task_id: str, *, deployment: str = "cloud") -> str:
        """The full status URL of ``task_id`` under the Cloud (default) or Data Center prefix."""
        base = self.datacenter_url if deployment == "datacenter" else self.cloud_url
        return f"{base}/rest/api/longtask/{quote(task_id, safe='')}"

    def airflow_connection(self, *, deployment: str = "cloud", auth_type: str = "basic") -> str:
        """A JSON Airflow connection for this simulator (e.g. for ``AIRFLOW_CONN_CONFLUENCE_DEFAULT``)."""
        if deployment not in ("cloud", "datacenter") or auth_type not in ("basic", "bearer"):
            raise ValueError("deployment must be 'cloud' or 'datacenter', auth_type 'basic' or 'bearer'")
        bearer = auth_type == "bearer"
        token = (self.bearer_token or self.api_token) if bearer else self.api_token
        return json.dumps(
            {
                "conn_type": "confluence",
                "host": self.cloud_url if deployment == "cloud" else self.datacenter_url,
                "login": None if bearer else self.email,
                "password": token,
                "extra": {"deployment": deployment, "auth_type": auth_type},
            }
        )

    # -- tasks, faults, stats ----------------------------------------------------------------------

    def add_task(self, spec: TaskSpec | None = None, **changes: Any) -> str:
        """Create a task from ``spec`` (or ``TaskSpec(**changes)``) and return its id."""
        if spec is not None and not isinstance(spec, TaskSpec):
            raise ValueError(f"add_task() expects a TaskSpec, got {type(spec).__name__}")
        spec = (spec or TaskSpec()).replace(**changes) if changes else (spec or TaskSpec())
        return self._create_task(spec)

    def _create_task(self, spec: TaskSpec, operation: str | None = None) -> str:
        with self._lock:
            if spec.task_id is not None:
                if spec.task_id in self._tasks:
                    raise ValueError(f"TaskSpec.task_id: a task with id {spec.task_id!r} already exists")
                task_id = spec.task_id
            else:
                task_id = str(next(self._ids))
                while task_id in self._tasks:
                    task_id = str(next(self._ids))
            self._tasks[task_id] = SimTask(task_id, spec, operation=operation)
        return task_id

    def task_spec(self, task_id: str) -> TaskSpec:
        """The spec of an existing task (``KeyError`` for unknown ids)."""
        return self._tasks[task_id].spec

    @property
    def task_ids(self) -> list[str]:
        """Ids of all tasks, in creation order."""
        with self._lock:
            return list(self._tasks)

    def inject(self, fault: Fault) -> None:
        """Queue ``fault`` for the next matching requests (faults apply in the order injected)."""
        if not isinstance(fault, Fault):
            raise ValueError(f"inject() expects a Fault, got {type(fault).__name__}")
        with self._lock:
            self._faults.append(_ActiveFault(fault, remaining=fault.times))

    def clear_faults(self) -> None:
        """Drop queued faults and turn random faults off."""
        with self._lock:
            self._faults.clear()
            self._fault_rate = 0.0

    def set_fault_rate(
        self,
        rate: float,
        kinds: Iterable[str] = DEFAULT_RANDOM_FAULT_KINDS,
        seed: int | None = None,
        delay: float = 0.5,
    ) -> None:
        """Give each status GET a ``rate`` chance of a random fault of ``kinds`` (reproducible with ``seed``).

        Random faults apply to long-task status GETs only; ``delay`` is the wait of a random ``slow`` fault.
        """
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be a number between 0 and 1, got {rate!r}")
        kinds = tuple(str(kind) for kind in kinds) if not isinstance(kinds, str) else (kinds,)
        unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
        if unknown or not kinds:
            raise ValueError(
                f"fault kinds must be a non-empty list of {', '.join(sorted(FAULT_KINDS))}; got {list(kinds)}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        delay_value = Fault("slow", delay=delay).delay  # same validation as a Fault's delay
        with self._lock:
            self._fault_rate = float(rate)
            self._fault_kinds = kinds
            self._fault_delay = delay_value
            self._rng = random.Random(seed)

    @property
    def stats(self) -> SimulatorStats:
        """A snapshot of the counters and of every task's timings."""
        with self._lock:
            tasks = list(self._tasks.values())
        return self._stats.snapshot(tasks, time.time())

    def reset_stats(self) -> None:
        """Zero the counters (task timings other than ``final_status_served_at`` stay)."""
        with self._lock:
            tasks = list(self._tasks.values())
        self._stats.reset(tasks)

    # -- lifecycle ---------------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        return sock

    async def _serve(self, sock: socket.socket) -> None:
        runner = web.AppRunner(
            self._build_app(),
            handle_signals=False,
            access_log=logging.getLogger("aiohttp.access") if self._access_log else None,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        try:
            # A large backlog: a benchmark opens a thousand connections at once.
            await web.SockSite(runner, sock, backlog=2048).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = sock.getsockname()[1]

    async def _shutdown(self) -> None:
        runner, self._runner = self._runner, None
        self._port = None
        if runner is not None:
            await runner.cleanup()

    def start(self) -> ConfluenceSimulator:
        """Serve on a new event loop in a daemon thread; returns once the port is listening."""
        if self._runner is not None or self._thread is not None:
            raise RuntimeError("the simulator is already running")
        sock = self._bind()
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                try:
                    loop.run_until_complete(self._serve(sock))
                except BaseException as exc:
                    failure.append(exc)
                    return
                finally:
                    ready.set()
                loop.run_forever()
                loop.run_until_complete(self._shutdown())
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                sock.close()
                asyncio.set_event_loop(None)
                loop.close()

        thread = threading.Thread(target=run, name="confluence-simulator", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise RuntimeError(f"the simulator could not start: {failure[0]}") from failure[0]
        self._loop, self._thread = loop, thread
        thread.name = f"confluence-simulator-{self._port}"
        return self

    def stop(self) -> None:
        """Stop the threaded server, close its sockets and wait for its thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may already be closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=self._shutdown_timeout + 10)
        self._loop = self._thread = None

    async def astart(self) -> ConfluenceSimulator:
        """Serve on the running event loop; returns once the port is listening."""
        if self._runner is not None or self._thread is not None:
            raise RuntimeError("the simulator is already running")
        sock = self._bind()
        try:
            await self._serve(sock)
        except BaseException:
            sock.close()
            raise
        self._socket = sock
        return self

    async def astop(self) -> None:
        """Stop a server started with :meth:`astart` (idempotent)."""
        await self._shutdown()
        sock = self._socket
        if sock is not None:
            sock.close()
            self._socket = None

    def __enter__(self) -> ConfluenceSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> ConfluenceSimulator:
        return await self.astart()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()

    # -- the aiohttp application -------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        router = app.router
        flavours = [
            (_CLOUD_PREFIX, _Flavour("cloud", _CLOUD_PREFIX)),
            (_GATEWAY_PREFIX, _Flavour("cloud", "/wiki")),
        ]
        flavours.append((self.context_path, _Flavour("datacenter", self.context_path)))

        def bind(
            handler: _Handler, flavour: _Flavour
        ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
            async def bound(request: web.Request) -> web.StreamResponse:
                return await handler(request, flavour)

            return bound

        for prefix, flavour in flavours:
            api = prefix + "/rest/api"
            router.add_get(api + "/longtask/{task_id}", bind(self._handle_status, flavour), allow_head=False)
            router.add_get(api + "/longtask", bind(self._handle_list, flavour), allow_head=False)
            router.add_post(api + "/content/archive", bind(self._handle_archive, flavour))
            router.add_post(api + "/content/{page_id}/pagehierarchy/copy", bind(self._handle_copy, flavour))
            router.add_delete(api + "/content/{page_id}/pageTree", bind(self._handle_delete_tree, flavour))
            router.add_delete(api + "/space/{space_key}", bind(self._handle_delete_space, flavour))

        control = "/_simulator"
        router.add_get(control + "/health", self._control_health)
        router.add_get(control + "/tasks", self._control_list_tasks)
        router.add_post(control + "/tasks", self._control_create_task)
        router.add_get(control + "/stats", self._control_stats)
        router.add_delete(control + "/stats", self._control_reset_stats)
        router.add_post(control + "/faults", self._control_add_fault)
        router.add_delete(control + "/faults", self._control_clear_faults)
        router.add_post(control + "/fault-rate", self._control_fault_rate)
        router.add_route("*", "/{tail:.*}", self._handle_unknown)
        return app

    # -- request plumbing --------------------------------------------------------------------------

    def _record(self, response: web.Response) -> web.Response:
        self._stats.response(response.status)
        return response

    def _authenticate(self, request: web.Request) -> web.Response | None:
        """``None`` for valid credentials, else the 401 to send. Never logs or echoes credentials."""
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
            if decoded and hmac.compare_digest(decoded, self._basic_secret):
                return None
        elif (
            scheme == "bearer"
            and credentials
            and hmac.compare_digest(credentials.encode(), self._bearer_secret)
        ):
            return None
        self._stats.auth_failure()
        return _json_response(401, _UNAUTHORIZED_BODY, {"WWW-Authenticate": _WWW_AUTHENTICATE})

    def _pick_fault(self, endpoint: str, task_id: str | None) -> tuple[str, Fault | None] | None:
        """The fault for this request, if any: ``(kind, fault)``; ``fault`` is None for a random one."""
        faults = self._faults
        if faults:
            with self._lock:
                for active in faults:
                    fault = active.fault
                    if fault.endpoint != "any" and fault.endpoint != endpoint:
                        continue
                    if fault.task_id is not None and fault.task_id != task_id:
                        continue
                    if active.skipped < fault.after:
                        active.skipped += 1
                        continue
                    active.remaining -= 1
                    if active.remaining <= 0:
                        faults.remove(active)
                    return fault.kind, fault
        if endpoint == "status" and self._fault_rate > 0.0:
            with self._lock:
                if self._rng.random() < self._fault_rate:
                    return self._rng.choice(self._fault_kinds), None
        return None

    async def _fault_response(
        self,
        request: web.Request,
        picked: tuple[str, Fault | None],
        normal: Callable[[], tuple[int, bytes]] | None,
    ) -> web.StreamResponse | None:
        """The faulty answer to send, or ``None`` to answer normally (after a ``slow`` fault's delay)."""
        kind, fault = picked
        self._stats.fault(kind)
        if kind == "slow":
            await asyncio.sleep(fault.delay if fault is not None else self._fault_delay)
            return None
        if kind == "reset":
            transport = request.transport
            if transport is not None:
                transport.abort()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        if kind == "429":
            retry_after = fault.retry_after if fault is not None and fault.retry_after is not None else "1"
            headers = {"Retry-After": retry_after, "X-RateLimit-Remaining": "0"}
            return self._record(_json_response(429, _FAULT_BODIES["429"], headers))
        if kind in ("403", "500", "503"):
            headers = {}
            if kind == "503":
                retry_after_503 = fault.retry_after if fault is not None else "1"
                if retry_after_503 is not None:
                    headers["Retry-After"] = retry_after_503
            return self._record(_json_response(int(kind), _FAULT_BODIES[kind], headers))
        if kind in ("502", "504"):
            return self._record(
                web.Response(status=int(kind), body=_FAULT_BODIES[kind], content_type="text/html")
            )
        if kind == "html":
            response = web.Response(status=200, body=_LOGIN_PAGE)
            response.headers["Content-Type"] = _HTML
            return self._record(response)
        if kind == "redirect":
            location = "https://sso.example.invalid/login?continue=" + quote(request.path_qs, safe="")
            response = web.Response(status=302, headers={"Location": location}, body=b"")
            return self._record(response)
        if kind == "empty":
            return self._record(_json_response(200, b""))
        normal_body = (
            normal()[1] if normal is not None else b'{"id":"0","links":{"status":"/rest/api/longtask/0"}}'
        )
        if kind == "truncated":
            return self._record(_json_response(200, normal_body[: max(1, len(normal_body) // 2)]))
        # "list": a JSON array where an object was expected.
        return self._record(_json_response(200, b"[" + normal_body + b"]"))

    def _links(self, request: web.Request, flavour: _Flavour) -> dict[str, str]:
        path = request.rel_url.raw_path
        base = self.url + path.split("/rest/api/", 1)[0]
        return {"base": base, "context": flavour.context, "self": self.url + path}

    async def _guard(
        self,
        request: web.Request,
        endpoint: str,
        task_id: str | None = None,
        normal: Callable[[], tuple[int, bytes]] | None = None,
    ) -> web.StreamResponse | None:
        """Auth and faults shared by every Confluence endpoint: a response to send, or None to go on."""
        denied = self._authenticate(request)
        if denied is not None:
            return self._record(denied)
        picked = self._pick_fault(endpoint, task_id)
        if picked is not None:
            return await self._fault_response(request, picked, normal)
        return None

    # -- Confluence endpoints ----------------------------------------------------------------------

    async def _handle_status(self, request: web.Request, flavour: _Flavour) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        task = self._tasks.get(task_id)
        self._stats.request("status", task, task_id)

        def payload() -> tuple[int, bytes]:
            now = time.monotonic()
            if task is None or not task.visible(now):
                return 404, _NOT_FOUND_BODY
            task.start(now)  # the same clock reading as the body: elapsedTime never below 0
            body = task.status_body(now, self._links(request, flavour))
            if task.final_status_served_at is None and task.ended(now):
                task.final_status_served_at = time.time()
            return 200, body

        early = await self._guard(request, "status", task_id, payload)
        if early is not None:
            return early
        status, body = payload()
        return self._record(_json_response(status, body))

    def _list_payload(self, request: web.Request, flavour: _Flavour) -> tuple[int, bytes]:
        query = request.query
        try:
            start = int(query.get("start", "0"))
            limit = int(query.get("limit", str(MAX_LIST_LIMIT)))
        except ValueError:
            return 400, _error_body(400, "start and limit must be integers", valid=False)
        if start < 0 or limit < 0:
            return 400, _error_body(400, "start and limit must not be negative", valid=False)
        limit = max(1, min(limit, MAX_LIST_LIMIT))
        key = query.get("key")
        now = time.monotonic()
        with self._lock:
            tasks = [
                task
                for task in self._tasks.values()
                if task.visible(now) and (key is None or task.spec.name_key == key)
            ]
        page = tasks[start : start + limit]
        links = self._links(request, flavour)
        extra = {"key": key} if key is not None else {}
        links["self"] = (
            links["base"] + "/rest/api/longtask?" + urlencode({"start": start, "limit": limit, **extra})
        )
        body: dict[str, Any] = {
            "results": [task.status(now) for task in page],
            "start": start,
            "limit": limit,
            "size": len(page),
            "_links": links,
        }
        if start + len(page) < len(tasks):
            links["next"] = "/rest/api/longtask?" + urlencode(
                {"start": start + len(page), "limit": limit, **extra}
            )
        if flavour.deployment == "datacenter":
            body["totalCount"] = len(tasks)
        return 200, _dumps(body)

    async def _handle_list(self, request: web.Request, flavour: _Flavour) -> web.StreamResponse:
        self._stats.request("list")

        def payload() -> tuple[int, bytes]:
            return self._list_payload(request, flavour)

        early = await self._guard(request, "list", None, payload)
        if early is not None:
            return early
        status, body = payload()
        return self._record(_json_response(status, body))

    def _operation_spec(self, operation: str, flavour: _Flavour, **details: Any) -> TaskSpec:
        configured = self.operation_spec
        spec = (
            configured.get(operation, TaskSpec(duration=2.0))
            if isinstance(configured, Mapping)
            else configured
        )
        defaults = TaskSpec()
        changes: dict[str, Any] = {"task_id": None, "start_on_first_poll": spec.start_on_first_poll}
        for name, value in _OPERATION_DEFAULTS[operation].items():
            if getattr(spec, name) == getattr(defaults, name):
                changes[name] = value
        if flavour.deployment == "datacenter" and spec.shape == defaults.shape:
            changes["shape"] = "datacenter"
        if operation == "copy":
            pages = spec.pages or DEFAULT_COPY_PAGES
            changes["pages"] = pages
            changes["additional_details"] = {
                **details,
                "totalPageNeedToCopy": pages,
                **spec.additional_details,
            }
        return spec.replace(**changes)

    def _started(self, spec: TaskSpec, operation: str) -> web.Response:
        task_id = self._create_task(spec, operation)
        body = _dumps({"id": task_id, "links": {"status": f"/rest/api/longtask/{quote(task_id, safe='')}"}})
        return self._record(_json_response(202, body))

    def _bad_request(self, message: str) -> web.Response:
        return self._record(_json_response(400, _error_body(400, message, valid=False, errors=[message])))

    async def _read_json(self, request: web.Request) -> tuple[Any, str | None]:
        try:
            raw = await request.read()
            return json.loads(raw), None
        except (ValueError, RecursionError):  # RecursionError: deeply nested arrays or objects
            return None, "The request body is not valid JSON"

    async def _handle_copy(self, request: web.Request, flavour: _Flavour) -> web.StreamResponse:
        self._stats.request("copy")
        early = await self._guard(request, "start")
        if early is not None:
            return early
        body, problem = await self._read_json(request)
        if problem is not None:
            return self._bad_request(problem)
        if not isinstance(body, dict):
            return self._bad_request("The request body must be a JSON object")
        destination = body.get("destinationPageId")
        if isinstance(destination, int) and not isinstance(destination, bool):
            destination = str(destination)
        if not isinstance(destination, str) or not destination.strip():
            return self._bad_request("destinationPageId is required")
        links = self._links(request, flavour)
        spec = self._operation_spec(
            "copy",
            flavour,
            destinationId=destination,
            destinationUrl=f"{links['base']}/pages/viewpage.action?pageId={quote(destination, safe='')}",
        )
        return self._started(spec, "copy")

    async def _handle_archive(self, request: web.Request, flavour: _Flavour) -> web.StreamResponse:
        self._stats.request("archive")
        early = await self._guard(request, "start")
        if early is not None:
            return early
        body, problem = await self._read_json(request)
        if problem is not None:
            return self._bad_request(problem)
        pages = body.get("pages") if isinstance(body, dict) else None
        if not isinstance(pages, list) or not pages:
            return self._bad_request('The request body must look like {"pages": [{"id": "123"}]}')
        if not all(isinstance(page, dict) and isinstance(page.get("id"), (str, int)) for page in pages):
            return self._bad_request('Every entry of "pages" needs an "id"')
        if len(pages) > MAX_ARCHIVE_PAGES:
            return self._bad_request(
                f"Cannot archive {len(pages)} pages: "
                f"at most {MAX_ARCHIVE_PAGES} pages can be archived at once"
            )
        now = time.monotonic()
        with self._lock:
            running = any(
                task.operation == "archive" and not task.ended(now) for task in self._tasks.values()
            )
        if running:
            return self._bad_request("Another archive job is already running. Wait for it to complete.")
        return self._started(self._operation_spec("archive", flavour), "archive")

    async def _handle_delete_tree(self, request: web.Request, flavour: _Flavour) -> web.StreamResponse:
        self._stats.request("delete_page_tree")
        early = await self._guard(request, "start")
        if early is not None:
            return early
        return self._started(self._operation_spec("delete_page_tree", flavour), "delete_page_tree")

    async def _handle_delete_space(self, request: web.Request, flavour: _Flavour) -> web.StreamResponse:
        self._stats.request("delete_space")
        early = await self._guard(request, "start")
        if early is not None:
            return early
        return self._started(self._operation_spec("delete_space", flavour), "delete_space")

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        self._stats.request("other")
        message = f"No resource at {request.method} {request.path}"
        return self._record(_json_response(404, _error_body(404, message, authorized=False)))

    # -- control API (no auth: it is the test's own remote control) --------------------------------

    @staticmethod
    def _control_json(status: int, value: object) -> web.Response:
        return _json_response(status, _dumps(value))

    async def _control_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read() or b"null")
        except (ValueError, RecursionError):  # RecursionError: deeply nested arrays or objects
            raise ValueError("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        return body

    async def _control(
        self, request: web.Request, action: Callable[[dict[str, Any]], tuple[int, object]], *, has_body: bool
    ) -> web.Response:
        self._stats.control_request()
        try:
            body = await self._control_body(request) if has_body else {}
            status, value = action(body)
        except (ValueError, TypeError, KeyError) as exc:
            return self._control_json(400, {"error": str(exc) or type(exc).__name__})
        return self._control_json(status, value)

    async def _control_health(self, request: web.Request) -> web.Response:
        return await self._control(
            request, lambda _: (200, {"status": "ok", "tasks": len(self._tasks)}), has_body=False
        )

    async def _control_list_tasks(self, request: web.Request) -> web.Response:
        def action(_: dict[str, Any]) -> tuple[int, object]:
            with self._lock:
                tasks = list(self._tasks.values())
            return 200, {"tasks": [{"id": task.task_id, "spec": task.spec.to_dict()} for task in tasks]}

        return await self._control(request, action, has_body=False)

    async def _control_create_task(self, request: web.Request) -> web.Response:
        def action(body: dict[str, Any]) -> tuple[int, object]:
            task_id = self._create_task(TaskSpec.from_dict(body))
            deployment = "datacenter" if self._tasks[task_id].spec.shape == "datacenter" else "cloud"
            return 201, {"id": task_id, "status_url": self.status_url(task_id, deployment=deployment)}

        return await self._control(request, action, has_body=True)

    async def _control_stats(self, request: web.Request) -> web.Response:
        return await self._control(request, lambda _: (200, self.stats.to_dict()), has_body=False)

    async def _control_reset_stats(self, request: web.Request) -> web.Response:
        def action(_: dict[str, Any]) -> tuple[int, object]:
            self.reset_stats()
            return 200, {"reset": True}

        return await self._control(request, action, has_body=False)

    async def _control_add_fault(self, request: web.Request) -> web.Response:
        def action(body: dict[str, Any]) -> tuple[int, object]:
            fault = Fault.from_dict(body)
            self.inject(fault)
            return 201, {"fault": fault.to_dict()}

        return await self._control(request, action, has_body=True)

    async def _control_clear_faults(self, request: web.Request) -> web.Response:
        def action(_: dict[str, Any]) -> tuple[int, object]:
            self.clear_faults()
            return 200, {"cleared": True}

        return await self._control(request, action, has_body=False)

    async def _control_fault_rate(self, request: web.Request) -> web.Response:
        def action(body: dict[str, Any]) -> tuple[int, object]:
            unknown = sorted(set(body) - {"rate", "kinds", "seed", "delay"})
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(unknown)}; allowed: delay, kinds, rate, seed")
            if "rate" not in body:
                raise ValueError("rate is required (a number between 0 and 1)")
            kinds = body.get("kinds", list(DEFAULT_RANDOM_FAULT_KINDS))
            if not isinstance(kinds, list):
                raise ValueError("kinds must be a list of fault kinds")
            self.set_fault_rate(body["rate"], kinds, body.get("seed"), body.get("delay", 0.5))
            return 200, {"rate": body["rate"], "kinds": kinds, "seed": body.get("seed")}

        return await self._control(request, action, has_body=True)
