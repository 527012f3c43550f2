"""The async transport of ``ConfluenceHook`` (aiohttp) against real local servers: the simulator, and a
small recording server (stdlib, in a thread) for what the simulator does not show: headers, peer ports,
proxy request lines, TLS, redirects to other hosts and oversized bodies."""

from __future__ import annotations

import asyncio
import base64
import datetime
import gc
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import airflow_provider_confluence
from airflow_provider_confluence.core import MAX_BODY_BYTES, RetryPolicy
from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceBadResponseError,
    ConfluenceConfigError,
    ConfluenceTLSError,
    ConfluenceTransientError,
)
from airflow_provider_confluence.hooks import confluence as hook_module
from airflow_provider_confluence.hooks.confluence import ConfluenceHook
from airflow_provider_confluence.longtask import LongTask
from airflow_provider_confluence.testing import ConfluenceSimulator, Fault, TaskSpec

# A garbage-collected aiohttp session that was never closed must fail the test, not just warn.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")

EMAIL = "demo@example.com"
TOKEN = "CANARY-async-hook-token-93d1"
PAT = "CANARY-async-hook-pat-27be"
TASK_ID = "1180606"
BASIC = "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
USER_AGENT = f"airflow-provider-confluence/{airflow_provider_confluence.__version__}"
FAST = RetryPolicy(max_retries=1, backoff_base=0.05, jitter=0.0)


def status_body(task_id: str = TASK_ID, percent: int = 40) -> bytes:
    return json.dumps(
        {
            "id": task_id,
            "name": {"key": "com.atlassian.confluence.pages.actions.CopyPageHierarchyAction.action.name"},
            "elapsedTime": 4000,
            "percentageComplete": percent,
            "successful": False,
            "finished": False,
            "messages": [],
        }
    ).encode()


# ---------------------------------------------------------------------------- a recording HTTP server
@dataclass(frozen=True)
class Seen:
    request_line: str
    target: str
    headers: dict[str, str]
    peer_port: int


Answer = tuple[int, dict[str, str], bytes]
#: A pseudo-header of an answer: seconds the server keeps the connection open after the body, silent.
HOLD = "X-Test-Hold"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so that connection reuse is visible
    server: _Server

    def do_GET(self) -> None:
        recorder = self.server.recorder
        seen = Seen(self.requestline, self.path, dict(self.headers.items()), self.client_address[1])
        with recorder.lock:
            recorder.requests.append(seen)
        status, headers, body = recorder.respond(seen)
        hold = float(headers.pop(HOLD, "0"))
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers and headers.get("Connection") != "close":
                self.send_header("Content-Length", str(len(body)))  # else: as declared, or close-delimited
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            time.sleep(hold)  # keep the connection open without sending more
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading: that is what is tested

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder


class Recorder:
    """A threaded HTTP(S) server on 127.0.0.1 that records every request and answers with ``respond``."""

    def __init__(self, respond: Callable[[Seen], Answer] | None = None, tls: ssl.SSLContext | None = None):
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.respond = respond or (lambda seen: (200, {"Content-Type": "application/json"}, status_body()))
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.recorder = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self.scheme = "https" if tls is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(autouse=True)
def pool_left_empty() -> Iterator[None]:
    yield
    assert len(hook_module._POOL) == 0, "a hook kept a pooled aiohttp session"


@pytest.fixture(autouse=True, scope="module")
def no_session_left_to_the_garbage_collector() -> Iterator[None]:
    yield
    gc.collect()  # an unclosed session found now fails the module's last test (see pytestmark)


@pytest.fixture
def sim() -> Iterator[ConfluenceSimulator]:
    with ConfluenceSimulator(
        email=EMAIL, api_token=TOKEN, bearer_token=PAT, shutdown_timeout=0.2
    ) as simulator:
        yield simulator


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


@pytest.fixture
def use_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def use(conn_id: str = "confluence_default", **fields: Any) -> None:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "confluence", **fields})
        )

    return use


def spy_sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    handed_out: list[Any] = []
    acquire = hook_module._POOL.acquire

    async def spy(settings: Any) -> Any:
        session = await acquire(settings)
        handed_out.append(session)
        return session

    monkeypatch.setattr(hook_module._POOL, "acquire", spy)
    return handed_out


async def aget(task_id: str = TASK_ID, conn_id: str = "confluence_default", **hook_kwargs: Any) -> LongTask:
    """One async status call through a fresh hook, closed afterwards."""
    async with ConfluenceHook(conn_id, **hook_kwargs) as hook:
        return await hook.aget_long_task(task_id)


def sync_get(task_id: str = TASK_ID, conn_id: str = "confluence_default", **hook_kwargs: Any) -> LongTask:
    with ConfluenceHook(conn_id, **hook_kwargs) as hook:
        return hook.get_long_task(task_id)


# Every connection form, for the simulator (host filled in per test) and for the recording server.
FORMS = {
    "cloud-basic": ({"login": EMAIL, "password": TOKEN}, "/wiki", "basic"),
    "datacenter-basic": (
        {"login": EMAIL, "password": TOKEN, "extra": {"deployment": "datacenter"}},
        "/confluence",
        "basic",
    ),
    "datacenter-bearer": ({"password": PAT, "extra": {"deployment": "datacenter"}}, "/confluence", "bearer"),
    "gateway-cloud-id-bearer": (
        {"password": PAT, "extra": {"cloud_id": "sim-cloud-id"}},
        "/ex/confluence/sim-cloud-id/wiki",
        "bearer",
    ),
}


def form_fields(form: str, base_url: str) -> dict[str, Any]:
    fields, path, _ = FORMS[form]
    host = base_url if form.startswith("gateway") else base_url + path
    return {**fields, "host": host}


# ---------------------------------------------------------------------------- against the simulator
@pytest.mark.parametrize("form", list(FORMS))
async def test_aget_long_task_against_the_simulator(
    sim: ConfluenceSimulator, use_connection: Any, form: str
) -> None:
    use_connection(**form_fields(form, sim.url))
    shape = "cloud" if "cloud" in form else "datacenter"
    task_id = sim.add_task(TaskSpec(duration=0, shape=shape, additional_details={"destinationId": "98305"}))

    async with ConfluenceHook() as hook:
        task = await hook.aget_long_task(task_id)
        api_root = (await hook.aget_settings()).api_root

    assert api_root == sim.url + FORMS[form][1]
    assert task.id == task_id
    assert task.is_done
    assert task.successful
    assert dict(task.additional_details) == {"destinationId": "98305"}
    assert (task.finished is None) == (shape == "datacenter")
    stats = sim.stats
    assert stats.auth_failures == 0
    assert stats.requests_by_kind == {"status": 1}  # a real status route, not the catch-all 404
    assert stats.responses_by_status == {200: 1}


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        (f"confluence://demo%40example.com:{TOKEN}@{{url}}%2Fwiki?deployment=cloud", "/wiki"),
        (f"confluence://:{PAT}@{{url}}%2Fconfluence", "/confluence"),
    ],
    ids=["cloud-basic-uri", "datacenter-bearer-uri-with-encoded-host"],
)
async def test_aget_long_task_with_a_uri_connection(
    sim: ConfluenceSimulator, monkeypatch: pytest.MonkeyPatch, uri: str, path: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", uri.format(url=quote(sim.url, safe="")))
    task_id = sim.add_task(TaskSpec(duration=0))

    async with ConfluenceHook() as hook:
        task = await hook.aget_long_task(task_id)
        assert (await hook.aget_settings()).api_root == sim.url + path

    assert task.id == task_id
    assert sim.stats.responses_by_status == {200: 1}


@pytest.mark.parametrize(
    ("kind", "error", "match"),
    [
        ("empty", ConfluenceBadResponseError, "empty body"),
        ("truncated", ConfluenceBadResponseError, "not valid JSON"),
        ("list", ConfluenceBadResponseError, "JSON list"),
        ("html", ConfluenceAuthError, "HTML page"),
        ("403", ConfluenceAuthError, "403"),
    ],
)
async def test_bad_answers_fail_at_once_naming_the_url(
    sim: ConfluenceSimulator, use_connection: Any, kind: str, error: type[Exception], match: str
) -> None:
    use_connection(host=sim.cloud_url, login=EMAIL, password=TOKEN)
    task_id = sim.add_task(TaskSpec(duration=0))
    sim.inject(Fault(kind, task_id=task_id))

    with pytest.raises(error, match=match) as raised:
        await aget(task_id)

    assert raised.value.url == sim.status_url(task_id)  # type: ignore[attr-defined]
    assert sim.stats.status_gets(task_id) == 1  # permanent: not retried
    assert TOKEN not in str(raised.value)


@pytest.mark.parametrize("bad_id", ["", "../x", "a/b", "x?y"], ids=["empty", "dot-dot", "slash", "query"])
async def test_bad_task_id_is_refused_before_any_request(
    recorder: Recorder, use_connection: Any, bad_id: str
) -> None:
    use_connection(host=recorder.url + "/wiki", login=EMAIL, password=TOKEN)

    with pytest.raises(ConfluenceConfigError, match="long_task_id"):
        await aget(bad_id)

    assert recorder.requests == []


@pytest.mark.parametrize("form", list(FORMS))
async def test_async_and_sync_send_the_same_request(
    recorder: Recorder, use_connection: Any, form: str
) -> None:
    use_connection(**form_fields(form, recorder.url))

    async_task = await aget()
    sync_task = await asyncio.to_thread(sync_get)

    assert async_task == sync_task
    assert len(recorder.requests) == 2
    sent_async, sent_sync = recorder.requests
    expected_target = FORMS[form][1] + f"/rest/api/longtask/{TASK_ID}"
    for sent in (sent_async, sent_sync):
        assert sent.request_line == f"GET {expected_target} HTTP/1.1"
        assert sent.headers["Accept"] == "application/json"
        assert sent.headers["User-Agent"] == USER_AGENT
    assert sent_async.headers["Authorization"] == sent_sync.headers["Authorization"]
    expected_auth = BASIC if FORMS[form][2] == "basic" else f"Bearer {PAT}"
    assert sent_async.headers["Authorization"] == expected_auth


async def test_rate_limit_is_retried_like_the_sync_transport(
    sim: ConfluenceSimulator, use_connection: Any
) -> None:
    use_connection(**form_fields("cloud-basic", sim.url))
    task_id = sim.add_task(TaskSpec(duration=0))

    sim.inject(Fault("429", retry_after="0"))
    async_task = await aget(task_id)
    async_statuses = dict(sim.stats.responses_by_status)
    sim.reset_stats()
    sim.inject(Fault("429", retry_after="0"))
    sync_task = await asyncio.to_thread(sync_get, task_id)

    assert async_task == sync_task
    assert async_statuses == sim.stats.responses_by_status == {429: 1, 200: 1}


async def test_401_is_an_auth_error_without_the_token(sim: ConfluenceSimulator, use_connection: Any) -> None:
    wrong = "CANARY-not-the-right-token-71"
    use_connection(host=sim.cloud_url, login=EMAIL, password=wrong)

    with pytest.raises(ConfluenceAuthError) as raised:
        await aget(sim.add_task(TaskSpec(duration=0)))

    assert raised.value.status_code == 401
    assert wrong not in str(raised.value)
    assert base64.b64encode(f"{EMAIL}:{wrong}".encode()).decode() not in str(raised.value)
    assert sim.stats.responses_by_status == {401: 1}


# ---------------------------------------------------------------------------- the pooled session
async def test_connection_is_reused_across_polls_and_hooks(
    recorder: Recorder, use_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(host=recorder.url + "/wiki", login=EMAIL, password=TOKEN)
    sessions = spy_sessions(monkeypatch)
    first, second = ConfluenceHook(), ConfluenceHook()

    for hook in (first, second, first, second, first):
        await hook.aget_long_task(TASK_ID)
    assert len(hook_module._POOL) == 1
    await first.aclose()
    assert len(hook_module._POOL) == 1  # the other hook still uses it
    assert not sessions[0].closed
    await second.aclose()

    assert len(recorder.requests) == 5
    assert len({seen.peer_port for seen in recorder.requests}) == 1  # one TCP connection for every poll
    assert len({id(session) for session in sessions}) == 1
    assert sessions[0].closed
    assert len(hook_module._POOL) == 0


async def test_aclose_is_idempotent_and_a_closed_hook_can_poll_again(
    recorder: Recorder, use_connection: Any
) -> None:
    use_connection(host=recorder.url + "/wiki", login=EMAIL, password=TOKEN)
    hook = ConfluenceHook()

    await hook.aget_long_task(TASK_ID)
    await hook.aclose()
    await hook.aclose()
    assert len(hook_module._POOL) == 0
    await hook.aget_long_task(TASK_ID)
    assert len(hook_module._POOL) == 1
    await hook.aclose()

    assert len(recorder.requests) == 2


# ---------------------------------------------------------------------------- connection extras
async def test_timeout_extra_is_honoured_then_retried_then_a_transient_error(
    sim: ConfluenceSimulator, use_connection: Any
) -> None:
    use_connection(host=sim.cloud_url, login=EMAIL, password=TOKEN, extra={"timeout": 0.2})
    task_id = sim.add_task(TaskSpec(duration=0))
    sim.inject(Fault("slow", delay=1.5, times=2, task_id=task_id))

    started = time.monotonic()
    with pytest.raises(ConfluenceTransientError, match=r"timed out after 0\.2 s") as raised:
        await aget(task_id, retry_policy=FAST)

    assert time.monotonic() - started < 1.2  # two 0.2 s attempts, not the 1.5 s answers
    assert sim.stats.status_gets(task_id) == 2  # the first try and one retry
    assert TOKEN not in str(raised.value)


async def test_one_slow_answer_is_retried_and_succeeds(sim: ConfluenceSimulator, use_connection: Any) -> None:
    use_connection(host=sim.cloud_url, login=EMAIL, password=TOKEN, extra={"timeout": 0.2})
    task_id = sim.add_task(TaskSpec(duration=0))
    sim.inject(Fault("slow", delay=1.0, times=1, task_id=task_id))

    task = await aget(task_id, retry_policy=FAST)

    assert task.id == task_id
    assert sim.stats.status_gets(task_id) == 2


async def test_proxy_extra_reaches_aiohttp_like_requests(recorder: Recorder, use_connection: Any) -> None:
    use_connection(
        host="http://confluence.example.test/confluence",
        password=PAT,
        extra={"deployment": "datacenter", "proxy": recorder.url},
    )

    async_task = await aget()
    sync_task = await asyncio.to_thread(sync_get)

    assert async_task == sync_task
    expected = f"GET http://confluence.example.test/confluence/rest/api/longtask/{TASK_ID} HTTP/1.1"
    assert [seen.request_line for seen in recorder.requests] == [expected, expected]
    for seen in recorder.requests:
        assert seen.headers["Host"] == "confluence.example.test"
        assert seen.headers["Authorization"] == f"Bearer {PAT}"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (usable as its own CA bundle) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "ca.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize(
    "verify_ssl",
    [None, "false", "ca-bundle"],
    ids=["verified-by-default-fails", "verify-off-connects", "own-ca-bundle-connects"],
)
async def test_verify_ssl_extra_reaches_aiohttp(
    tls_files: tuple[Path, Path], use_connection: Any, verify_ssl: str | None
) -> None:
    cert_path, key_path = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    extra = (
        {} if verify_ssl is None else {"verify_ssl": str(cert_path) if verify_ssl == "ca-bundle" else "false"}
    )

    with Recorder(tls=context) as server:
        use_connection(host=server.url + "/wiki", login=EMAIL, password=TOKEN, extra=extra)
        if verify_ssl is None:
            with pytest.raises(ConfluenceTLSError, match="verify_ssl"):
                await aget(retry_policy=FAST)
            assert server.requests == []  # nothing, credentials included, went over the unverified link
        else:
            assert (await aget(retry_policy=FAST)).id == TASK_ID
            assert len(server.requests) == 1


# ---------------------------------------------------------------------------- redirects and bodies
async def test_redirect_to_an_sso_host_is_not_followed(sim: ConfluenceSimulator, use_connection: Any) -> None:
    use_connection(host=sim.cloud_url, login=EMAIL, password=TOKEN)
    task_id = sim.add_task(TaskSpec(duration=0))
    sim.inject(Fault("redirect", task_id=task_id))

    with pytest.raises(ConfluenceAuthError) as raised:
        await aget(task_id)

    assert raised.value.status_code == 302
    assert "https://sso.example.invalid" in str(raised.value)
    assert sim.stats.status_gets(task_id) == 1  # not retried either


async def test_redirect_to_another_port_sends_nothing_there(recorder: Recorder, use_connection: Any) -> None:
    with Recorder() as elsewhere:
        recorder.respond = lambda seen: (302, {"Location": f"{elsewhere.url}/wiki/x"}, b"")
        use_connection(host=recorder.url + "/wiki", login=EMAIL, password=TOKEN)

        with pytest.raises(ConfluenceAuthError, match="redirected"):
            await aget()

        assert len(recorder.requests) == 1
        assert elsewhere.requests == []


async def test_same_origin_redirect_is_followed_with_the_credentials(
    recorder: Recorder, use_connection: Any
) -> None:
    def respond(seen: Seen) -> Answer:
        if "moved" not in seen.target:
            return 302, {"Location": f"/wiki/rest/api/longtask/{TASK_ID}?moved=1"}, b""
        return 200, {"Content-Type": "application/json"}, status_body()

    recorder.respond = respond
    use_connection(host=recorder.url + "/wiki", login=EMAIL, password=TOKEN)

    assert (await aget()).id == TASK_ID

    assert [seen.target for seen in recorder.requests] == [
        f"/wiki/rest/api/longtask/{TASK_ID}",
        f"/wiki/rest/api/longtask/{TASK_ID}?moved=1",
    ]
    assert recorder.requests[1].headers["Authorization"] == BASIC


@pytest.mark.parametrize(
    ("declared_length", "sent"),
    [(MAX_BODY_BYTES + 1, 100), (None, MAX_BODY_BYTES + 1)],
    ids=["declared-too-long-not-read", "close-delimited-reading-stops-at-the-cap"],
)
async def test_oversized_body_is_a_bad_response_without_reading_it_all(
    recorder: Recorder, use_connection: Any, declared_length: int | None, sent: int
) -> None:
    headers = {"Content-Type": "application/json", HOLD: "2"}
    headers.update({"Content-Length": str(declared_length)} if declared_length else {"Connection": "close"})
    body = (b'{"id": "' + b"9" * sent)[:sent]
    # The server then stays silent: a client that waited for the whole body would time out instead.
    recorder.respond = lambda seen: (200, dict(headers), body)
    use_connection(host=recorder.url + "/wiki", login=EMAIL, password=TOKEN, extra={"timeout": 1.5})

    started = time.monotonic()
    with pytest.raises(ConfluenceBadResponseError, match="larger than") as raised:
        await aget(retry_policy=FAST)

    assert time.monotonic() - started < 1.0
    assert raised.value.url == f"{recorder.url}/wiki/rest/api/longtask/{TASK_ID}"
    assert len(recorder.requests) == 1  # a bad answer is not retried


async def test_body_just_under_the_cap_is_read(recorder: Recorder, use_connection: Any) -> None:
    padding = b" " * (MAX_BODY_BYTES - len(status_body()) - 1)
    recorder.respond = lambda seen: (200, {"Connection": "close"}, status_body() + padding)
    use_connection(host=recorder.url + "/wiki", login=EMAIL, password=TOKEN)

    assert (await aget()).percentage_complete == 40


def test_one_hook_works_on_successive_event_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio.run() twice with one hook: the second loop gets its own pooled session."""
    with ConfluenceSimulator() as simulator:
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", simulator.airflow_connection())
        task_id = simulator.add_task(TaskSpec(duration=0))
        hook = ConfluenceHook()

        async def poll_and_close() -> bool:
            async with hook:
                return (await hook.aget_long_task(task_id)).is_done

        assert asyncio.run(poll_and_close()) is True
        assert asyncio.run(poll_and_close()) is True
        assert len(hook_module._POOL) == 0
