"""
Process and HTTP plumbing of the integration tier: start, watch and stop processes; talk to the
Airflow REST API and to the Confluence simulator's control API (stdlib only).

Every process is started in a process group of its own (``start_new_session``) with the marker
``CONFLUENCE_INTEGRATION_RUN=<run id>`` in its environment, which its children inherit. Stopping a
process stops its whole group; :func:`marked_processes` finds anything that escaped its group (the
final check of ``integration/run.sh`` uses the same marker), so nothing started here outlives the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

MARKER = "CONFLUENCE_INTEGRATION_RUN"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 1.0) -> Any:
    """Call ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
        except Exception as error:  # a server that is still starting, a transient answer...
            last_error = error
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------- processes
@dataclass
class Started:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Processes:
    """The processes of one run; each in its own process group, all stopped by :meth:`stop_all`."""

    run_id: str
    log_dir: Path
    started: dict[str, Started] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        user: str | None = None,
    ) -> Started:
        if name in self.started and self.started[name].alive():
            raise RuntimeError(f"{name} is already running")
        number = self.generation.get(name, 0) + 1
        self.generation[name] = number
        log = self.log_dir / (f"{name}.log" if number == 1 else f"{name}.{number}.log")
        full_env = dict(env)
        full_env[MARKER] = self.run_id
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                env=full_env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
                group=user,
            )
        started = Started(name, popen, log)
        self.started[name] = started
        return started

    def kill_group(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group of ``name`` (e.g. SIGKILL: a crash, an OOM kill)."""
        started = self.started[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.pid, sig)
        if sig == signal.SIGKILL:
            started.popen.wait(timeout=10)

    def stop(self, name: str, *, sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
        """Ask the group of ``name`` to stop with ``sig``; SIGKILL what is left of it after ``grace`` s."""
        started = self.started.get(name)
        if started is None:
            return
        _signal_group(started.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            started.popen.wait(timeout=grace)
        deadline = time.monotonic() + 5  # the rest of the group follows its leader, or is killed
        while _group_alive(started.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_group(started.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            started.popen.wait(timeout=10)

    def stop_many(self, names: Iterable[str]) -> None:
        """Stop these, in this order (PostgreSQL with SIGINT: its fast shutdown)."""
        for name in names:
            try:
                self.stop(name, sig=signal.SIGINT if name == "postgres" else signal.SIGTERM)
            except Exception as error:  # keep stopping the others
                print(f"[integration] could not stop {name}: {error!r}", flush=True)

    def stop_all(self, order: Iterable[str] = ()) -> None:
        """Stop everything started: first those named in ``order``, then the rest, newest first."""
        names = [n for n in order if n in self.started]
        self.stop_many(names + [n for n in reversed(list(self.started)) if n not in names])


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def marked_processes(run_id: str) -> list[tuple[int, str]]:
    """Processes (pid, command line) whose environment carries this run's marker, other than us."""
    needle = f"{MARKER}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if needle not in environ.split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(entry.name), cmdline.strip()))
    return found


def kill_marked(run_id: str) -> list[tuple[int, str]]:
    """SIGKILL every process left with this run's marker; returns what was left."""
    left = marked_processes(run_id)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


# -------------------------------------------------------------------------------------------- HTTP
class HttpError(Exception):
    def __init__(self, status: int, body: str, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {body[:500]}")
        self.status = status
        self.body = body


def http(
    method: str,
    url: str,
    *,
    body: object = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    raw: bool = False,
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Accept": "application/json"}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read().decode()
    except urllib.error.HTTPError as error:
        raise HttpError(error.code, error.read().decode(errors="replace"), url) from None
    if raw:
        return payload
    return json.loads(payload) if payload else None


class AirflowApi:
    """The Airflow 3 REST API (``/api/v2``), the UI API (``/ui``) and ``/auth/token``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            # [core] simple_auth_manager_all_admins: /auth/token hands out an admin token, no password
            answer = http("GET", f"{self.base_url}/auth/token")
            self._token = str(answer["access_token"])
        return self._token

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token()}"}
        headers.update(extra or {})
        return headers

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params, doseq=True)}" if params else ""
        return http("GET", f"{self.base_url}{path}{query}", headers=self._headers())

    def post(self, path: str, body: object) -> Any:
        return http("POST", f"{self.base_url}{path}", body=body, headers=self._headers())

    def patch(self, path: str, body: object) -> Any:
        return http("PATCH", f"{self.base_url}{path}", body=body, headers=self._headers())

    # -- conveniences --------------------------------------------------------------------------
    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        """A manual run; like `airflow dags trigger`, it has no logical date unless one is given."""
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        return str(self.post(f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}"))

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        answer = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances", limit=100)
        return list(answer["task_instances"])

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The task's log as the UI shows it (worker and triggerer parts), one line per record."""
        answer = self.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/logs/{try_number}",
            full_content="true",
        )
        return "\n".join(_log_line(item) for item in answer["content"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        answer = self.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/xcomEntries/{key}",
            deserialize="true",
        )
        return answer["value"]

    def wait_run_done(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run = self.run(dag_id, run_id)
            return run if run["state"] in ("success", "failed") else None

        return dict(wait_for(done, timeout=timeout, what=f"run {run_id} of {dag_id} to end", interval=2))


def _log_line(item: object) -> str:
    if not isinstance(item, dict):
        return str(item)
    rest = {k: v for k, v in item.items() if k not in ("timestamp", "level", "event", "logger")}
    line = f"{item.get('timestamp', '')} [{item.get('level', '')}] {item.get('event', '')}"
    return f"{line} {json.dumps(rest, default=str)}" if rest else line


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class Simulator:
    """The simulator's control API (no auth) and its Confluence API (basic auth)."""

    def __init__(self, base_url: str, email: str = "demo@example.com", token: str = "sim-token") -> None:
        self.base_url = base_url.rstrip("/")
        self.email = email
        self.token = token

    def create_task(self, **spec: Any) -> str:
        return str(http("POST", f"{self.base_url}/_simulator/tasks", body=spec)["id"])

    def stats(self) -> dict[str, Any]:
        return dict(http("GET", f"{self.base_url}/_simulator/stats"))

    def status_gets(self, task_id: str) -> int:
        return int(self.stats()["requests_by_task"].get(task_id, 0))
